/* Losses (torch.nn.functional's): values and gradients against PyTorch 1.13 in
 * float64 (and float32), conventions at kinks, gradcheck and gradgradcheck of
 * each loss, and the errors naming the loss and the shapes.
 *
 * References come from /usr/bin/python3 with torch 1.13, float64 default:
 *   import torch, torch.nn.functional as F
 *   torch.set_default_dtype(torch.float64)
 *   def run(fn, *inputs):
 *       xs = [torch.tensor(i, requires_grad=True) for i in inputs]
 *       y = fn(*xs); print(y, torch.autograd.grad(y.sum(), xs))
 *   X = [[0.2, -1.3, 0.7], [1.1, 0.4, -0.6], [-0.8, 0.9, 0.3], [0.5, -0.2, 1.6]]
 *   T = torch.tensor([1, -100, 0, 2]); W = torch.tensor([0.5, 2.0, 1.5])
 * with each test's own line below. */
#include "test_util.h"

#include "autodiff/layers.h"

static const double X[12] = {0.2, -1.3, 0.7, 1.1, 0.4, -0.6, -0.8, 0.9, 0.3, 0.5, -0.2, 1.6};
static const int64_t T[4] = {1, -100, 0, 2};
static const double W[3] = {0.5, 2.0, 1.5};

#define RTOL 1e-12
#define ATOL 1e-14

static ad_tensor *f64(ad_tape *tape, int ndim, const int64_t *shape, const double *values)
{
    return leaf(tape, AD_F64, ndim, shape, values);
}

static ad_tensor *classes(ad_tape *tape, int ndim, const int64_t *shape, const int64_t *values)
{
    ad_tensor *t = ad_tape_tensor(tape, AD_I64, ndim, shape, values);
    assert_non_null(t);
    return t;
}

/* d sum(y) / dx, keeping the graph for the gradient of another input. */
static ad_tensor *gradient(ad_tensor *y, ad_tensor *x)
{
    assert_non_null(y);
    ad_tensor *sum = ad_sum_all(y), *g = NULL;
    ad_backward_opts keep = {.retain_graph = true};
    assert_int_equal(ad_grad(1, &sum, NULL, 1, &x, &g, &keep), AD_OK);
    return g;
}

/* y's values, then d sum(y) / dx. */
static void check_loss(ad_tensor *y, int64_t n, const double *value, ad_tensor *x, int64_t nx,
                       const double *grad)
{
    assert_values(y, n, value, RTOL, ATOL);
    assert_values(gradient(y, x), nx, grad, RTOL, ATOL);
}

static ad_nn_class_loss_opts opts(ad_reduction reduction, ad_tensor *weight, double smoothing)
{
    ad_nn_class_loss_opts o = ad_nn_class_loss_defaults();
    o.reduction = reduction;
    o.weight = weight;
    o.label_smoothing = smoothing;
    return o;
}

/* ---- nll_loss ---------------------------------------------------------------------------- */

/* run(lambda x: F.nll_loss(x, T, weight=W, reduction=red), X), and without weight */
static void test_nll_loss_matches_pytorch_with_weights_and_ignore_index(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = f64(tape, 2, (int64_t[]){4, 3}, X);
    ad_tensor *t = classes(tape, 1, (int64_t[]){4}, T);
    ad_tensor *w = tensor(tape, AD_F64, 1, (int64_t[]){3}, W);
    const double gw[12] = {0, -2.0, 0, 0, 0, 0, -0.5, 0, 0, 0, 0, -1.5};
    const double g[12] = {0, -1.0, 0, 0, 0, 0, -1.0, 0, 0, 0, 0, -1.0};
    ad_nn_class_loss_opts o = opts(AD_REDUCE_NONE, w, 0);
    check_loss(ad_nn_nll_loss(x, t, &o), 4, (double[]){2.6, 0.0, 0.4, -2.4000000000000004}, x, 12,
               gw);
    o.reduction = AD_REDUCE_SUM;
    check_loss(ad_nn_nll_loss(x, t, &o), 1, (double[]){0.5999999999999996}, x, 12, gw);
    /* The mean divides by w[1] + w[0] + w[2] = 4, the weights of the kept targets. */
    o.reduction = AD_REDUCE_MEAN;
    const double gm[12] = {0, -0.5, 0, 0, 0, 0, -0.125, 0, 0, 0, 0, -0.375};
    check_loss(ad_nn_nll_loss(x, t, &o), 1, (double[]){0.1499999999999999}, x, 12, gm);
    /* Without weights the mean divides by the 3 kept targets; NULL opts: torch's defaults. */
    check_loss(ad_nn_nll_loss(x, t, NULL), 1, (double[]){0.16666666666666666}, x, 12,
               (double[]){0, -1.0 / 3, 0, 0, 0, 0, -1.0 / 3, 0, 0, 0, 0, -1.0 / 3});
    o = opts(AD_REDUCE_NONE, NULL, 0);
    check_loss(ad_nn_nll_loss(x, t, &o), 4, (double[]){1.3, 0.0, 0.8, -1.6}, x, 12, g);
    o.reduction = AD_REDUCE_SUM;
    check_loss(ad_nn_nll_loss(x, t, &o), 1, (double[]){0.5}, x, 12, g);
}

/* F.nll_loss(x, torch.full((4,), -100)): nan; with reduction='sum': 0 */
static void test_nll_loss_with_every_target_ignored_is_nan_mean_and_zero_sum(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = f64(tape, 2, (int64_t[]){4, 3}, X);
    ad_tensor *t = classes(tape, 1, (int64_t[]){4}, (int64_t[]){-100, -100, -100, -100});
    assert_true(isnan(ad_value(ad_nn_nll_loss(x, t, NULL))));
    ad_nn_class_loss_opts o = opts(AD_REDUCE_SUM, NULL, 0);
    ad_tensor *sum = ad_nn_nll_loss(x, t, &o);
    assert_true(ad_value(sum) == 0.0);
    assert_exact(grad_of_sum(sum, x), 12, (double[12]){0});
    /* Another ignore_index: class 0 ignored, -100 now out of range. */
    o = opts(AD_REDUCE_SUM, NULL, 0);
    o.ignore_index = 0;
    ad_tensor *t0 = classes(tape, 1, (int64_t[]){4}, (int64_t[]){1, 0, 0, 2});
    assert_close(1.3 - 1.6, ad_value(ad_nn_nll_loss(x, t0, &o)), RTOL, ATOL);
}

/* ---- cross_entropy ---------------------------------------------------------------------- */

/* run(lambda x: F.cross_entropy(x, T, weight=W, label_smoothing=0.2, reduction=red), X) */
static void test_cross_entropy_matches_pytorch_with_weights_smoothing_and_ignore_index(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = f64(tape, 2, (int64_t[]){4, 3}, X);
    ad_tensor *t = classes(tape, 1, (int64_t[]){4}, T);
    ad_tensor *w = tensor(tape, AD_F64, 1, (int64_t[]){3}, W);
    const double g[12] = {0.6166538653829718,
                          -1.588301585589335,
                          0.9716477202063634,
                          0.0,
                          0.0,
                          0.0,
                          -0.3629958476514019,
                          0.2516903629559246,
                          0.11130548469547714,
                          0.2925381845236285,
                          0.028489673358633758,
                          -0.3210278578822621};
    ad_nn_class_loss_opts o = opts(AD_REDUCE_NONE, w, 0.2);
    check_loss(ad_nn_cross_entropy_tensor(x, t, &o), 4,
               (double[]){4.5192529166650495, 0.0, 1.1626568597846474, 0.8695583720202156}, x, 12,
               g);
    o.reduction = AD_REDUCE_SUM;
    check_loss(ad_nn_cross_entropy_tensor(x, t, &o), 1, (double[]){6.551468148469913}, x, 12, g);
    o.reduction = AD_REDUCE_MEAN;
    check_loss(ad_nn_cross_entropy_tensor(x, t, &o), 1, (double[]){1.6378670371174782}, x, 12,
               (double[]){0.15416346634574296, -0.39707539639733375, 0.24291193005159084, 0.0, 0.0,
                          0.0, -0.09074896191285048, 0.06292259073898115, 0.027826371173869286,
                          0.07313454613090713, 0.0071224183396584395, -0.08025696447056553});
}

/* the same without weight (label_smoothing=0.2), and with weight but no smoothing */
static void test_cross_entropy_matches_pytorch_with_smoothing_or_weights_alone(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = f64(tape, 2, (int64_t[]){4, 3}, X);
    ad_tensor *t = classes(tape, 1, (int64_t[]){4}, T);
    ad_tensor *w = tensor(tape, AD_F64, 1, (int64_t[]){3}, W);
    ad_nn_class_loss_opts o = opts(AD_REDUCE_NONE, NULL, 0.2);
    const double gs[12] = {0.2815407612170682,
                           -0.7889710875180961,
                           0.5074303263010279,
                           0.0,
                           0.0,
                           0.0,
                           -0.7611604381437695,
                           0.5108688777672203,
                           0.2502915603765491,
                           0.15551845914489815,
                           0.04366720153240178,
                           -0.19918566067729992};
    check_loss(ad_nn_cross_entropy_tensor(x, t, &o), 4,
               (double[]){2.3216235863086574, 0.0, 2.0623186230103046, 0.5975776778925713}, x, 12,
               gs);
    /* The smoothing term's mean divides by the 3 kept targets, as torch 1.13. */
    o.reduction = AD_REDUCE_MEAN;
    check_loss(ad_nn_cross_entropy_tensor(x, t, &o), 1, (double[]){1.6605066290705113}, x, 12,
               (double[]){0.09384692040568937, -0.262990362506032, 0.1691434421003426, 0.0, 0.0,
                          0.0, -0.25372014604792315, 0.17028962592240673, 0.08343052012551634,
                          0.051839486381632716, 0.014555733844133922, -0.06639522022576662});
    o.reduction = AD_REDUCE_SUM;
    check_loss(ad_nn_cross_entropy_tensor(x, t, &o), 1, (double[]){4.981519887211533}, x, 12, gs);
    o = opts(AD_REDUCE_MEAN, w, 0);
    check_loss(ad_nn_cross_entropy_tensor(x, t, &o), 1, (double[]){1.710193250240331}, x, 12,
               (double[]){0.17410371394186744, -0.4611522104257147, 0.2870484964838473, 0.0, 0.0,
                          0.0, -0.11181172143463786, 0.07219194305423587, 0.03961977838040197,
                          0.08331942217933681, 0.04137520057465067, -0.12469462275398746});
    o.reduction = AD_REDUCE_SUM;
    check_loss(ad_nn_cross_entropy_tensor(x, t, &o), 1, (double[]){6.840773000961324}, x, 12,
               (double[]){0.6964148557674698, -1.8446088417028588, 1.1481939859353891, 0.0, 0.0,
                          0.0, -0.4472468857385514, 0.2887677722169435, 0.15847911352160787,
                          0.33327768871734725, 0.16550080229860267, -0.49877849101594984});
}

/* F.cross_entropy(x, torch.tensor([1, 0, 0, 2])): the fused op, and the array form */
static void test_cross_entropy_plain_mean_is_the_fused_op_and_matches_the_array_form(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = f64(tape, 2, (int64_t[]){4, 3}, X);
    const int64_t y[4] = {1, 0, 0, 2};
    ad_tensor *t = classes(tape, 1, (int64_t[]){4}, y);
    const double g[12] = {0.08705185697093372,  -0.23057610521285735, 0.14352424824192364,
                          -0.10112568288369195, 0.07392879799194046,  0.027196884891751507,
                          -0.2236234428692757,  0.14438388610847175,  0.07923955676080394,
                          0.05554628145289121,  0.02758346704976711,  -0.08312974850265831};
    ad_tensor *fused = ad_nn_cross_entropy_tensor(x, t, NULL);
    check_loss(fused, 1, (double[]){1.4316362577589126}, x, 12, g);
    assert_string_equal(ad_op_name(ad_tensor_op(fused)), "cross_entropy");
    check_loss(ad_nn_cross_entropy(x, 4, y, 0, AD_REDUCE_MEAN), 1, (double[]){1.4316362577589126},
               x, 12, g);
    /* The array form now takes AD_REDUCE_NONE too: one loss per row. */
    ad_tensor *rows = ad_nn_cross_entropy(x, 4, y, 0, AD_REDUCE_NONE);
    assert_shape(rows, 1, (int64_t[]){4});
    assert_close(4 * 1.4316362577589126, ad_value(ad_sum_all(rows)), RTOL, ATOL);
}

/* X3 = [[[0.2, -1.3], [0.7, 1.1], [0.4, -0.6]], [[-0.8, 0.9], [0.3, 0.5], [-0.2, 1.6]]]
 * run(lambda x: F.cross_entropy(x, torch.tensor([[2, 0], [-100, 1]]), weight=W,
 *                               label_smoothing=0.1), X3)
 * run(lambda x: F.cross_entropy(x, torch.tensor(2), label_smoothing=0.1, reduction='none'),
 *     [0.2, -1.3, 0.7]) */
static void test_cross_entropy_takes_extra_dims_and_a_single_row(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = f64(tape, 3, (int64_t[]){2, 3, 2},
                       (double[]){0.2, -1.3, 0.7, 1.1, 0.4, -0.6, -0.8, 0.9, 0.3, 0.5, -0.2, 1.6});
    ad_tensor *t = classes(tape, 2, (int64_t[]){2, 2}, (int64_t[]){2, 0, -100, 1});
    ad_tensor *w = tensor(tape, AD_F64, 1, (int64_t[]){3}, W);
    ad_nn_class_loss_opts o = opts(AD_REDUCE_MEAN, w, 0.1);
    check_loss(ad_nn_cross_entropy_tensor(x, t, &o), 1, (double[]){1.5681995819530825}, x, 12,
               (double[]){0.09165282918616753, -0.1062774047121527, 0.1413129742936638,
                          0.09785600032263017, -0.2329658034798314, 0.008421404389522527, 0.0,
                          0.12702871563769938, 0.0, -0.37872377196074075, 0.0,
                          0.25169505632304134});
    o = opts(AD_REDUCE_NONE, w, 0.1);
    assert_shape(ad_nn_cross_entropy_tensor(x, t, &o), 2, (int64_t[]){2, 2});

    ad_tensor *row = f64(tape, 1, (int64_t[]){3}, (double[]){0.2, -1.3, 0.7});
    ad_tensor *y = classes(tape, 0, NULL, (int64_t[]){2});
    o = opts(AD_REDUCE_NONE, NULL, 0.1);
    ad_tensor *loss = ad_nn_cross_entropy_tensor(row, y, &o);
    assert_shape(loss, 0, NULL);
    check_loss(loss, 1, (double[]){0.6382902529753239}, row, 3,
               (double[]){0.31487409455040155, 0.04436224581523724, -0.3592363403656388});
}

/* torch.set_default_dtype(torch.float32); F.cross_entropy(x, T, weight=W,
 * label_smoothing=0.2) and F.huber_loss(a, b, delta=0.8) (A, B below) */
static void test_losses_in_float32_match_pytorch(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = leaf(tape, AD_F32, 2, (int64_t[]){4, 3}, X);
    ad_tensor *t = classes(tape, 1, (int64_t[]){4}, T);
    ad_tensor *w = tensor(tape, AD_F32, 1, (int64_t[]){3}, W);
    ad_nn_class_loss_opts o = opts(AD_REDUCE_MEAN, w, 0.2);
    ad_tensor *ce = ad_nn_cross_entropy_tensor(x, t, &o);
    assert_int_equal(ad_tensor_dtype(ce), AD_F32);
    assert_values(ce, 1, (double[]){1.6378669738769531}, 1e-6, 0);
    assert_values(grad_of_sum(ce, x), 12,
                  (double[]){0.15416346490383148, -0.3970754146575928, 0.2429119497537613, 0.0, 0.0,
                             0.0, -0.09074896574020386, 0.06292258948087692, 0.027826374396681786,
                             0.07313454896211624, 0.007122416980564594, -0.08025695383548737},
                  1e-5, 1e-7);
    ad_tensor *a =
        leaf(tape, AD_F32, 2, (int64_t[]){2, 3}, (double[]){0.3, -1.2, 2.5, 0.1, 0.9, -0.4});
    ad_tensor *b =
        tensor(tape, AD_F32, 2, (int64_t[]){2, 3}, (double[]){1.0, -0.7, 0.2, 0.6, -0.3, 0.05});
    ad_tensor *h = ad_nn_huber_loss(a, b, AD_REDUCE_MEAN, 0.8);
    assert_values(h, 1, (double[]){0.4593749940395355}, 1e-6, 0);
    assert_values(grad_of_sum(h, a), 6,
                  (double[]){-0.11666666716337204, -0.0833333432674408, 0.13333334028720856,
                             -0.0833333358168602, 0.13333334028720856, -0.07500000298023224},
                  1e-6, 1e-8);
}

/* ---- l1, smooth_l1, huber ----------------------------------------------------------------- */

/* K = [-2., -1., -0.5, 0., 0.5, 1., 2.]; Z = [0.] * 7
 * run(lambda a, b: F.smooth_l1_loss(a, b, reduction='none', beta=1.0), K, Z), with beta=0.0,
 * F.huber_loss(..., delta=1.0) and F.l1_loss(a, b, reduction='sum') */
static void test_regression_losses_at_their_kinks_follow_pytorch(void **state)
{
    ad_tape *tape = *state;
    const double k[7] = {-2, -1, -0.5, 0, 0.5, 1, 2};
    const int64_t shape[1] = {7};
    ad_tensor *a = f64(tape, 1, shape, k);
    ad_tensor *z = f64(tape, 1, shape, (double[7]){0});
    ad_tensor *y = ad_nn_l1_loss(a, z, AD_REDUCE_SUM);
    check_loss(y, 1, (double[]){7.0}, a, 7, (double[]){-1, -1, -1, 0, 1, 1, 1});
    assert_values(gradient(y, z), 7, (double[]){1, 1, 1, 0, -1, -1, -1}, 0, 0);
    /* At |d| = beta the slope is +-1 either way; beta = 0 gives -1 at d = 0. */
    const double quadratic[7] = {1.5, 0.5, 0.125, 0, 0.125, 0.5, 1.5};
    const double slope[7] = {-1, -1, -0.5, 0, 0.5, 1, 1};
    check_loss(ad_nn_smooth_l1_loss(a, z, AD_REDUCE_NONE, 1.0), 7, quadratic, a, 7, slope);
    check_loss(ad_nn_huber_loss(a, z, AD_REDUCE_NONE, 1.0), 7, quadratic, a, 7, slope);
    y = ad_nn_smooth_l1_loss(a, z, AD_REDUCE_NONE, 0.0);
    check_loss(y, 7, (double[]){2, 1, 0.5, 0, 0.5, 1, 2}, a, 7,
               (double[]){-1, -1, -1, -1, 1, 1, 1});
    assert_values(gradient(y, z), 7, (double[]){1, 1, 1, -1, -1, -1, -1}, 0, 0);
}

/* A = [[0.3, -1.2, 2.5], [0.1, 0.9, -0.4]]; B = [[1.0, -0.7, 0.2], [0.6, -0.3, 0.05]]
 * run(lambda a, b: F.smooth_l1_loss(a, b, reduction=red, beta=0.5), A, B), and
 * F.huber_loss(a, b, reduction=red, delta=0.8), F.l1_loss(a, b, reduction=red) */
static const double A[6] = {0.3, -1.2, 2.5, 0.1, 0.9, -0.4};
static const double B[6] = {1.0, -0.7, 0.2, 0.6, -0.3, 0.05};

static void test_regression_losses_match_pytorch_for_each_reduction(void **state)
{
    ad_tape *tape = *state;
    const int64_t shape[2] = {2, 3};
    ad_tensor *a = f64(tape, 2, shape, A);
    ad_tensor *b = f64(tape, 2, shape, B);
    const double sixth = 1.0 / 6;
    check_loss(ad_nn_smooth_l1_loss(a, b, AD_REDUCE_MEAN, 0.5), 1, (double[]){0.6920833333333333},
               a, 6, (double[]){-sixth, -sixth, sixth, -sixth, sixth, -0.15});
    check_loss(ad_nn_smooth_l1_loss(a, b, AD_REDUCE_SUM, 0.5), 1, (double[]){4.1525}, a, 6,
               (double[]){-1, -1, 1, -1, 1, -0.9});
    check_loss(ad_nn_huber_loss(a, b, AD_REDUCE_MEAN, 0.8), 1, (double[]){0.45937500000000003}, a,
               6,
               (double[]){-0.11666666666666665, -0.08333333333333333, 0.13333333333333333,
                          -0.08333333333333333, 0.13333333333333333, -0.075});
    check_loss(ad_nn_huber_loss(a, b, AD_REDUCE_SUM, 0.8), 1, (double[]){2.75625}, a, 6,
               (double[]){-0.7, -0.5, 0.8, -0.5, 0.8, -0.45});
    check_loss(ad_nn_l1_loss(a, b, AD_REDUCE_MEAN), 1, (double[]){0.9416666666666665}, a, 6,
               (double[]){-sixth, -sixth, sixth, -sixth, sixth, -sixth});
    check_loss(ad_nn_l1_loss(a, b, AD_REDUCE_SUM), 1, (double[]){5.6499999999999995}, a, 6,
               (double[]){-1, -1, 1, -1, 1, -1});
    check_loss(ad_nn_mse_loss(a, b, AD_REDUCE_NONE), 6,
               (double[]){0.49, 0.25, 5.29, 0.25, 1.44, 0.2025}, a, 6,
               (double[]){-1.4, -1.0, 4.6, -1.0, 2.4, -0.9});
}

/* ---- kl_div ------------------------------------------------------------------------------ */

/* KI = [[-1.2, -0.9, -1.3], [-0.5, -2.0, -1.4]]
 * run(lambda i, t: F.kl_div(i, t, reduction=red), KI, [[0.1, 0.6, 0.3], [0.2, 0.5, 0.3]])
 * run(lambda i, t: F.kl_div(i, t, reduction=red, log_target=True), KI,
 *     [[-2.3, -0.5, -1.2], [-1.6, -0.7, -1.2]]) */
static void test_kl_div_matches_pytorch_for_each_reduction_and_log_target(void **state)
{
    ad_tape *tape = *state;
    const int64_t shape[2] = {2, 3};
    ad_tensor *in = f64(tape, 2, shape, (double[]){-1.2, -0.9, -1.3, -0.5, -2.0, -1.4});
    ad_tensor *p = f64(tape, 2, shape, (double[]){0.1, 0.6, 0.3, 0.2, 0.5, 0.3});
    ad_tensor *lp = f64(tape, 2, shape, (double[]){-2.3, -0.5, -1.2, -1.6, -0.7, -1.2});
    ad_tensor *y = ad_nn_kl_div(in, p, AD_REDUCE_NONE, false);
    check_loss(y, 6,
               (double[]){-0.11025850929940456, 0.2335046257404056, 0.0288081587022192,
                          -0.22188758248682008, 0.6534264097200273, 0.05880815870221917},
               in, 6, (double[]){-0.1, -0.6, -0.3, -0.2, -0.5, -0.3});
    assert_values(gradient(y, p), 6,
                  (double[]){-0.1025850929940455, 1.3891743762340094, 1.096027195674064,
                             -0.10943791243410028, 2.3068528194400546, 1.1960271956740638},
                  RTOL, ATOL);
    assert_values(ad_nn_kl_div(in, p, AD_REDUCE_MEAN, false), 1, (double[]){0.1070668768464411},
                  RTOL, ATOL);
    assert_values(ad_nn_kl_div(in, p, AD_REDUCE_SUM, false), 1, (double[]){0.6424012610786466},
                  RTOL, ATOL);
    check_loss(ad_nn_kl_div(in, p, AD_REDUCE_BATCHMEAN, false), 1, (double[]){0.3212006305393233},
               in, 6, (double[]){-0.05, -0.3, -0.15, -0.1, -0.25, -0.15});
    y = ad_nn_kl_div(in, lp, AD_REDUCE_NONE, true);
    check_loss(y, 6,
               (double[]){-0.1102847280950841, 0.2426122638850534, 0.03011942119122024,
                          -0.22208616979412094, 0.6455608949288324, 0.06023884238244041},
               in, 6,
               (double[]){-0.10025884372280375, -0.6065306597126334, -0.30119421191220214,
                          -0.20189651799465538, -0.4965853037914095, -0.30119421191220214});
    assert_values(gradient(y, lp), 6,
                  (double[]){-0.010025884372280358, 0.8491429235976868, 0.3313136331034224,
                             -0.020189651799465552, 1.142146198720242, 0.36143305429464256},
                  RTOL, ATOL);
    assert_values(ad_nn_kl_div(in, lp, AD_REDUCE_MEAN, true), 1, (double[]){0.10769342074972359},
                  RTOL, ATOL);
    assert_values(ad_nn_kl_div(in, lp, AD_REDUCE_SUM, true), 1, (double[]){0.6461605244983415},
                  RTOL, ATOL);
    assert_values(ad_nn_kl_div(in, lp, AD_REDUCE_BATCHMEAN, true), 1,
                  (double[]){0.32308026224917075}, RTOL, ATOL);
    /* A zero target contributes 0 (xlogy): F.kl_div(KI, [[0.0, 0.7, 0.3], [0.2, 0.5, 0.3]],
     * reduction='sum') */
    ad_tensor *p0 = tensor(tape, AD_F64, 2, shape, (double[]){0.0, 0.7, 0.3, 0.2, 0.5, 0.3});
    check_loss(ad_nn_kl_div(in, p0, AD_REDUCE_SUM, false), 1, (double[]){0.8994826838805328}, in, 6,
               (double[]){0.0, -0.7, -0.3, -0.2, -0.5, -0.3});
}

/* ---- binary cross-entropy --------------------------------------------------------------- */

/* run(lambda p: F.binary_cross_entropy(p, torch.tensor([1., 1., 0., 1., 0., 0.]),
 *                                      reduction='none'), [0.0, 1e-13, 0.3, 0.9, 1.0, 0.5]) */
static void test_binary_cross_entropy_clamps_its_logs_and_gradient_as_pytorch(void **state)
{
    ad_tape *tape = *state;
    const int64_t shape[1] = {6};
    ad_tensor *p = f64(tape, 1, shape, (double[]){0.0, 1e-13, 0.3, 0.9, 1.0, 0.5});
    ad_tensor *t = tensor(tape, AD_F64, 1, shape, (double[]){1, 1, 0, 1, 0, 0});
    /* -ln p clamped at 100; dp = (p - t) / max(p (1 - p), 1e-12f). */
    check_loss(ad_nn_binary_cross_entropy(p, t, NULL, AD_REDUCE_NONE), 6,
               (double[]){100.0, 29.933606208922594, 0.35667494393873245, 0.10536051565782628,
                          100.0, 0.6931471805599453},
               p, 6,
               (double[]){-1000000003995.8029, -1000000003995.7028, 1.4285714285714286,
                          -1.1111111111111112, 1000000003995.8029, 2.0});
}

/* P2 = [[0.2, 0.7, 0.45], [0.9, 0.05, 0.6]]; T2 = [[0., 1., 0.3], [1., 0., 1.]]
 * BW = [[1.0, 2.0, 0.5], [0.3, 1.0, 1.5]]
 * run(lambda p, t: F.binary_cross_entropy(p, t, weight=torch.tensor(BW), reduction=red), P2, T2) */
static const double P2[6] = {0.2, 0.7, 0.45, 0.9, 0.05, 0.6};
static const double T2[6] = {0, 1, 0.3, 1, 0, 1};
static const double BW[6] = {1.0, 2.0, 0.5, 0.3, 1.0, 1.5};

static void test_binary_cross_entropy_matches_pytorch_with_weight(void **state)
{
    ad_tape *tape = *state;
    const int64_t shape[2] = {2, 3};
    ad_tensor *p = f64(tape, 2, shape, P2);
    ad_tensor *t = f64(tape, 2, shape, T2);
    ad_tensor *w = tensor(tape, AD_F64, 2, shape, BW);
    const double gp[6] = {1.2499999999999998,  -2.857142857142857, 0.30303030303030304,
                          -0.3333333333333333, 1.0526315789473684, -2.5};
    const double gt[6] = {1.3862943611198906,  -1.694595720774407, 0.10033534773107561,
                          -0.6591673732008658, 2.9444389791664403, -0.6081976621622465};
    ad_tensor *y = ad_nn_binary_cross_entropy(p, t, w, AD_REDUCE_NONE);
    check_loss(y, 6,
               (double[]){0.2231435513142097, 0.7133498878774649, 0.32901910469713286,
                          0.03160815469734788, 0.05129329438755058, 0.7662384356489861},
               p, 6, gp);
    assert_values(gradient(y, t), 6, gt, RTOL, ATOL);
    check_loss(ad_nn_binary_cross_entropy(p, t, w, AD_REDUCE_SUM), 1, (double[]){2.114652428622692},
               p, 6, gp);
    double gm[6];
    for (int i = 0; i < 6; i++)
        gm[i] = gp[i] / 6;
    check_loss(ad_nn_binary_cross_entropy(p, t, w, AD_REDUCE_MEAN), 1,
               (double[]){0.3524420714371153}, p, 6, gm);
}

/* LX = [[0.4, -1.7, 2.2], [-0.3, 0.8, -25.0]]; PW = [2.0, 0.5, 3.0]
 * run(lambda x, t: F.binary_cross_entropy_with_logits(x, t, weight=torch.tensor(BW),
 *     pos_weight=torch.tensor(PW), reduction=red), LX, T2) */
static void test_binary_cross_entropy_with_logits_matches_pytorch_with_pos_weight(void **state)
{
    ad_tape *tape = *state;
    const int64_t shape[2] = {2, 3};
    ad_tensor *x = f64(tape, 2, shape, (double[]){0.4, -1.7, 2.2, -0.3, 0.8, -25.0});
    ad_tensor *t = f64(tape, 2, shape, T2);
    ad_tensor *w = tensor(tape, AD_F64, 2, shape, BW);
    ad_tensor *pw = tensor(tape, AD_F64, 1, (int64_t[]){3}, (double[]){2.0, 0.5, 3.0});
    const double gx[6] = {0.598687660112452,    -0.8455347349164652, 0.27019960870425186,
                          -0.34466551008699536, 0.6899744811276125,  -4.499999999937504};
    ad_tensor *y = ad_nn_binary_cross_entropy_with_logits_weighted(x, t, w, pw, AD_REDUCE_NONE);
    check_loss(y, 6,
               (double[]){0.9130152523999525, 1.8677860293862658, 0.8540666558149568,
                          0.5126131466811161, 1.1711006659477778, 112.5000000000625},
               x, 6, gx);
    assert_values(gradient(y, t), 6,
                  (double[]){0.11301525239995258, 1.5322139706137339, -0.9949166802313043,
                             0.34630657334055814, -0.985550332973889, 112.50000000004167},
                  RTOL, ATOL);
    check_loss(ad_nn_binary_cross_entropy_with_logits_weighted(x, t, w, pw, AD_REDUCE_SUM), 1,
               (double[]){117.81858175029258}, x, 6, gx);
    assert_values(ad_nn_binary_cross_entropy_with_logits_weighted(x, t, w, pw, AD_REDUCE_MEAN), 1,
                  (double[]){19.63643029171543}, RTOL, ATOL);
}

/* ---- cosine_similarity ------------------------------------------------------------------ */

/* run(lambda a, b: F.cosine_similarity(a, b, dim=1), A, B), dim=0, and
 * run(lambda a, b: F.cosine_similarity(a, b, dim=-1), [[0.3, -1.2, 2.5]], B) */
static void test_cosine_similarity_matches_pytorch(void **state)
{
    ad_tape *tape = *state;
    const int64_t shape[2] = {2, 3};
    ad_tensor *a = f64(tape, 2, shape, A);
    ad_tensor *b = f64(tape, 2, shape, B);
    ad_tensor *y = ad_nn_cosine_similarity(a, b, 1, 1e-8);
    check_loss(y, 2, (double[]){0.4753443477493746, -0.34538661766387563}, a, 6,
               (double[]){0.2715146409177255, -0.12957298588252592, -0.09477679013373952,
                          0.9362521002334869, -0.1333124921772723, -0.06589008234049086});
    assert_values(gradient(y, b), 6,
                  (double[]){-0.2237293458839516, -0.13033513121774662, 0.6624737701576452,
                             0.6081393003786232, 1.122527248857131, -0.562508111400691},
                  RTOL, ATOL);
    check_loss(ad_nn_cosine_similarity(a, b, 0, 1e-8), 3,
               (double[]){0.976187060183953, 0.4989644448669457, 0.9196397984570484}, a, 6,
               (double[]){-0.2169304578186555, -0.34664898274966754, 0.024509381004120534,
                          0.6507913734559685, -0.46219864366622343, 0.15318363127575316});
    ad_tensor *row = f64(tape, 2, (int64_t[]){1, 3}, A);
    check_loss(ad_nn_cosine_similarity(row, b, -1, 1e-8), 2,
               (double[]){0.4753443477493746, 0.35442353675164145}, row, 3,
               (double[]){0.5776285582253989, -0.23479643379224652, -0.1820177152073262});
}

/* Each norm is clamped on its own (torch 1.13), not their product:
 * run(lambda a, b: F.cosine_similarity(a, b, dim=1, eps=1e-8),
 *     [[1e-9, 0.0, 0.0], [0., 0., 0.]], [[3., 4., 0.], [1., 2., 2.]]) */
static void test_cosine_similarity_below_eps_clamps_each_norm_as_pytorch(void **state)
{
    ad_tape *tape = *state;
    const int64_t shape[2] = {2, 3};
    ad_tensor *a = f64(tape, 2, shape, (double[]){1e-9, 0, 0, 0, 0, 0});
    ad_tensor *b = f64(tape, 2, shape, (double[]){3, 4, 0, 1, 2, 2});
    ad_tensor *y = ad_nn_cosine_similarity(a, b, 1, 1e-8);
    check_loss(y, 2, (double[]){0.06, 0.0}, a, 6,
               (double[]){59400000.0, 80000000.0, 0.0, 33333333.333333332, 66666666.666666664,
                          66666666.666666664});
    assert_values(gradient(y, b), 6,
                  (double[]){0.012799999999999999, -0.009600000000000001, 0, 0, 0, 0}, RTOL, ATOL);
}

/* ---- gradcheck and gradgradcheck ------------------------------------------------------- */

typedef enum {
    NLL,
    NLL_WEIGHTED,
    CROSS_ENTROPY,
    CROSS_ENTROPY_WEIGHTED,
    L1,
    SMOOTH_L1,
    HUBER,
    KL_DIV,
    KL_DIV_LOG_TARGET,
    BCE,
    BCE_WITH_LOGITS,
    COSINE,
} loss_kind;

typedef struct loss_case {
    loss_kind kind;
    ad_reduction reduction;
} loss_case;

static ad_tensor *loss_function(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n;
    const loss_case *c = ctx;
    ad_tensor *t = ad_tape_tensor(tape, AD_I64, 1, (int64_t[]){4}, T);
    ad_nn_class_loss_opts o = opts(c->reduction, NULL, 0);
    switch (c->kind) {
    case NLL_WEIGHTED:
        o.weight = in[1];
        return ad_nn_nll_loss(in[0], t, &o);
    case NLL:
        return ad_nn_nll_loss(in[0], t, &o);
    case CROSS_ENTROPY_WEIGHTED:
        o.weight = in[1];
        o.label_smoothing = 0.2;
        return ad_nn_cross_entropy_tensor(in[0], t, &o);
    case CROSS_ENTROPY:
        o.label_smoothing = 0.3;
        return ad_nn_cross_entropy_tensor(in[0], t, &o);
    case L1:
        return ad_nn_l1_loss(in[0], in[1], c->reduction);
    case SMOOTH_L1:
        return ad_nn_smooth_l1_loss(in[0], in[1], c->reduction, 0.6);
    case HUBER:
        return ad_nn_huber_loss(in[0], in[1], c->reduction, 0.8);
    case KL_DIV:
        return ad_nn_kl_div(in[0], in[1], c->reduction, false);
    case KL_DIV_LOG_TARGET:
        return ad_nn_kl_div(in[0], in[1], c->reduction, true);
    case BCE:
        return ad_nn_binary_cross_entropy(in[0], in[1], in[2], c->reduction);
    case BCE_WITH_LOGITS:
        return ad_nn_binary_cross_entropy_with_logits_weighted(in[0], in[1], in[2], in[3],
                                                               c->reduction);
    case COSINE:
        return ad_nn_cosine_similarity(in[0], in[1], 1, 1e-8);
    }
    return NULL;
}

static void test_every_loss_passes_gradcheck_and_gradgradcheck(void **state)
{
    ad_tape *tape = *state;
    const int64_t shape[2] = {2, 3}, logits[2] = {4, 3};
    const ad_reduction reductions[4] = {AD_REDUCE_NONE, AD_REDUCE_MEAN, AD_REDUCE_SUM,
                                        AD_REDUCE_BATCHMEAN};
    static const char *const names[] = {"nll",
                                        "nll weighted",
                                        "cross_entropy",
                                        "cross_entropy weighted",
                                        "l1",
                                        "smooth_l1",
                                        "huber",
                                        "kl_div",
                                        "kl_div log_target",
                                        "bce",
                                        "bce_with_logits",
                                        "cosine_similarity"};
    for (int kind = NLL; kind <= COSINE; kind++)
        for (int r = 0; r < 4; r++) {
            if ((r == 3 && kind != KL_DIV && kind != KL_DIV_LOG_TARGET) || (kind == COSINE && r))
                continue;
            uint64_t seed = 100 + 7 * (uint64_t)kind + (uint64_t)r;
            ad_tensor *in[4];
            size_t n = 2;
            if (kind <= CROSS_ENTROPY_WEIGHTED) {
                in[0] = test_random(tape, &seed, 2, logits, -2, 2);
                in[1] = test_random(tape, &seed, 1, (int64_t[]){3}, 0.5, 2);
                n = kind == NLL_WEIGHTED || kind == CROSS_ENTROPY_WEIGHTED ? 2 : 1;
            } else if (kind == KL_DIV) {
                in[0] = test_random(tape, &seed, 2, shape, -2, -0.1);
                in[1] = test_random(tape, &seed, 2, shape, 0.1, 1);
            } else if (kind == BCE) {
                in[0] = test_random(tape, &seed, 2, shape, 0.1, 0.9);
                in[1] = test_random(tape, &seed, 2, shape, 0, 1);
                in[2] = test_random(tape, &seed, 2, shape, 0.5, 2);
                n = 3;
            } else if (kind == BCE_WITH_LOGITS) {
                in[0] = test_random(tape, &seed, 2, shape, -3, 3);
                in[1] = test_random(tape, &seed, 2, shape, 0, 1);
                in[2] = test_random(tape, &seed, 2, shape, 0.5, 2);
                in[3] = test_random(tape, &seed, 1, (int64_t[]){3}, 0.5, 3);
                n = 4;
            } else {
                /* Differences away from 0 and from beta = 0.6 and delta = 0.8. */
                const double a[6] = {0.3, -1.2, 2.5, 0.1, 0.9, -0.4};
                const double b[6] = {1.0, -0.7, 0.2, 0.65, -0.3, 0.05};
                in[0] = tensor(tape, AD_F64, 2, shape, a);
                in[1] = tensor(tape, AD_F64, 2, shape, b);
            }
            loss_case c = {(loss_kind)kind, reductions[r]};
            char what[96];
            snprintf(what, sizeof what, "%s reduction %d", names[kind], (int)reductions[r]);
            check_gradients(what, loss_function, &c, n, in, seed);
        }
}

/* ---- errors ------------------------------------------------------------------------------- */

static void test_class_losses_reject_bad_targets_naming_the_loss_and_shapes(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = ad_full(tape, AD_F64, 2, (int64_t[]){4, 3}, 0);

    ad_tensor *floats = ad_full(tape, AD_F64, 1, (int64_t[]){4}, 1);
    assert_null(ad_nn_nll_loss(x, floats, NULL));
    assert_int_equal(ad_tape_status(tape), AD_ERR_DTYPE);
    assert_message_has(tape, "nll_loss: target is float64 [4], not int64");
    assert_message_has(tape, "[4,3]");

    ad_tape_reset(tape);
    x = ad_full(tape, AD_F64, 2, (int64_t[]){4, 3}, 0);
    ad_tensor *three = classes(tape, 1, (int64_t[]){3}, (int64_t[]){0, 1, 2});
    assert_null(ad_nn_cross_entropy_tensor(x, three, NULL));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "cross_entropy: target of shape [3] for input of shape [4,3]");

    ad_tape_reset(tape);
    x = ad_full(tape, AD_F64, 2, (int64_t[]){4, 3}, 0);
    ad_tensor *out = classes(tape, 1, (int64_t[]){4}, (int64_t[]){0, 1, 3, 2});
    assert_null(ad_nn_nll_loss(x, out, NULL));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_message_has(tape, "nll_loss: target 3 (flat index 2 of target [4]) out of range [0, 3)");
    assert_message_has(tape, "input of shape [4,3]");

    ad_tape_reset(tape);
    x = ad_full(tape, AD_F64, 2, (int64_t[]){4, 3}, 0);
    ad_tensor *t = classes(tape, 1, (int64_t[]){4}, T);
    ad_tensor *w2 = ad_full(tape, AD_F64, 1, (int64_t[]){2}, 1);
    ad_nn_class_loss_opts o = opts(AD_REDUCE_MEAN, w2, 0);
    assert_null(ad_nn_cross_entropy_tensor(x, t, &o));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "cross_entropy: weight is float64 [2] for input float64 [4,3]");

    ad_tape_reset(tape);
    x = ad_full(tape, AD_F64, 2, (int64_t[]){4, 3}, 0);
    t = classes(tape, 1, (int64_t[]){4}, T);
    o = opts(AD_REDUCE_MEAN, NULL, 1.5);
    assert_null(ad_nn_cross_entropy_tensor(x, t, &o));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_message_has(tape, "cross_entropy: label_smoothing 1.5 not in [0, 1]");
    ad_tape_reset(tape);
    x = ad_full(tape, AD_F64, 2, (int64_t[]){4, 3}, 0);
    t = classes(tape, 1, (int64_t[]){4}, T);
    o = opts(AD_REDUCE_MEAN, NULL, 0.1);
    assert_null(ad_nn_nll_loss(x, t, &o));
    assert_message_has(tape, "nll_loss: label_smoothing 0.1");
    ad_tape_reset(tape);
    x = ad_full(tape, AD_F64, 2, (int64_t[]){4, 3}, 0);
    t = classes(tape, 1, (int64_t[]){4}, T);
    o = opts(AD_REDUCE_BATCHMEAN, NULL, 0);
    assert_null(ad_nn_nll_loss(x, t, &o));
    assert_message_has(tape, "nll_loss: reduction 3 is not mean, sum or none");
}

static void test_pointwise_losses_reject_bad_arguments_naming_the_loss(void **state)
{
    ad_tape *tape = *state;
    const int64_t shape[2] = {2, 3};
    ad_tensor *a = ad_full(tape, AD_F64, 2, shape, 0.5);
    ad_tensor *b = ad_full(tape, AD_F64, 2, shape, 0.5);
    struct {
        ad_tensor *y;
        ad_status status;
        const char *message;
    } cases[] = {
        {NULL, AD_ERR_ARG, "mse_loss: reduction 3 is not mean, sum or none"},
        {NULL, AD_ERR_ARG, "smooth_l1_loss: beta -1 is negative"},
        {NULL, AD_ERR_ARG, "huber_loss: delta 0 is not positive"},
        {NULL, AD_ERR_ARG, "kl_div: reduction 7 is not mean, sum or none or batchmean"},
        {NULL, AD_ERR_ARG,
         "binary_cross_entropy: input 1.5 (flat index 4) of input of shape [2,3]"},
        {NULL, AD_ERR_SHAPE, "binary_cross_entropy: target of shape [3] for input of shape [2,3]"},
        {NULL, AD_ERR_AXIS, "cosine_similarity: dim 2 is not one of the 2 dims of shapes [2,3]"},
        {NULL, AD_ERR_SHAPE, "cosine_similarity: shapes [2,3] and [2] do not broadcast"},
        {NULL, AD_ERR_ARG, "cosine_similarity: eps 0 is not positive"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ad_tape_reset(tape);
        a = ad_full(tape, AD_F64, 2, shape, 0.5);
        b = ad_full(tape, AD_F64, 2, shape, 0.5);
        ad_tensor *y = NULL;
        switch (i) {
        case 0:
            y = ad_nn_mse_loss(a, b, AD_REDUCE_BATCHMEAN);
            break;
        case 1:
            y = ad_nn_smooth_l1_loss(a, b, AD_REDUCE_MEAN, -1);
            break;
        case 2:
            y = ad_nn_huber_loss(a, b, AD_REDUCE_MEAN, 0);
            break;
        case 3:
            y = ad_nn_kl_div(a, b, (ad_reduction)7, false);
            break;
        case 4:
            a = ad_tape_tensor_from_doubles(tape, AD_F64, 2, shape,
                                            (double[]){0.5, 0.5, 0.5, 0.5, 1.5, 0.5});
            y = ad_nn_binary_cross_entropy(a, b, NULL, AD_REDUCE_MEAN);
            break;
        case 5:
            y = ad_nn_binary_cross_entropy(a, ad_full(tape, AD_F64, 1, (int64_t[]){3}, 0), NULL,
                                           AD_REDUCE_MEAN);
            break;
        case 6:
            y = ad_nn_cosine_similarity(a, b, 2, 1e-8);
            break;
        case 7:
            y = ad_nn_cosine_similarity(a, ad_full(tape, AD_F64, 1, (int64_t[]){2}, 0), 1, 1e-8);
            break;
        case 8:
            y = ad_nn_cosine_similarity(a, b, 1, 0);
            break;
        }
        if (y)
            fail_msg("case %zu (%s) gave a result", i, cases[i].message);
        assert_int_equal(ad_tape_status(tape), cases[i].status);
        assert_message_has(tape, cases[i].message);
    }
    /* A NULL input (an earlier op failed) passes through without a new error. */
    ad_tape_reset(tape);
    assert_null(ad_nn_l1_loss(NULL, b, AD_REDUCE_MEAN));
    assert_null(ad_nn_nll_loss(NULL, NULL, NULL));
    assert_null(ad_nn_cosine_similarity(NULL, NULL, 0, 1e-8));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TAPE_TEST(test_nll_loss_matches_pytorch_with_weights_and_ignore_index),
        TAPE_TEST(test_nll_loss_with_every_target_ignored_is_nan_mean_and_zero_sum),
        TAPE_TEST(test_cross_entropy_matches_pytorch_with_weights_smoothing_and_ignore_index),
        TAPE_TEST(test_cross_entropy_matches_pytorch_with_smoothing_or_weights_alone),
        TAPE_TEST(test_cross_entropy_plain_mean_is_the_fused_op_and_matches_the_array_form),
        TAPE_TEST(test_cross_entropy_takes_extra_dims_and_a_single_row),
        TAPE_TEST(test_losses_in_float32_match_pytorch),
        TAPE_TEST(test_regression_losses_at_their_kinks_follow_pytorch),
        TAPE_TEST(test_regression_losses_match_pytorch_for_each_reduction),
        TAPE_TEST(test_kl_div_matches_pytorch_for_each_reduction_and_log_target),
        TAPE_TEST(test_binary_cross_entropy_clamps_its_logs_and_gradient_as_pytorch),
        TAPE_TEST(test_binary_cross_entropy_matches_pytorch_with_weight),
        TAPE_TEST(test_binary_cross_entropy_with_logits_matches_pytorch_with_pos_weight),
        TAPE_TEST(test_cosine_similarity_matches_pytorch),
        TAPE_TEST(test_cosine_similarity_below_eps_clamps_each_norm_as_pytorch),
        TAPE_TEST(test_every_loss_passes_gradcheck_and_gradgradcheck),
        TAPE_TEST(test_class_losses_reject_bad_targets_naming_the_loss_and_shapes),
        TAPE_TEST(test_pointwise_losses_reject_bad_arguments_naming_the_loss),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
