/* The gradient checks: every case of every family table (tests/cases_*.c) is
 * gradchecked, jvpchecked (forward mode) and, unless marked first-order only,
 * gradgradchecked, each as
 * its own CMocka test; then the coverage test (every differentiable op in the
 * op table has a case) and tests of gradcheck itself. */
#include "grad_cases.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

typedef struct family {
    const char *name;
    const grad_case *cases;
    const size_t *count;
} family;

static const family families[] = {
    {"elementwise", cases_elementwise, &n_cases_elementwise},
    {"reduce", cases_reduce, &n_cases_reduce},
    {"linalg", cases_linalg, &n_cases_linalg},
    {"shape", cases_shape, &n_cases_shape},
    {"fused", cases_fused, &n_cases_fused},
    {"norm", cases_norm, &n_cases_norm},
    {"rnn", cases_rnn, &n_cases_rnn},
    {"conv", cases_conv, &n_cases_conv},
    {"custom", cases_custom, &n_cases_custom},
};
#define N_FAMILIES (sizeof families / sizeof families[0])

/* One case, as a CMocka test's state. */
typedef struct case_run {
    const family *family;
    const grad_case *c;
    char title[200];
} case_run;

/* FNV-1a of the case's op and name: a seed that follows the case, not its
 * position in the table, so adding a case does not change the others' inputs. */
static uint64_t case_seed(const grad_case *c)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int k = 0; k < 2; k++) {
        for (const char *s = k ? c->name : c->op; *s; s++) {
            h ^= (unsigned char)*s;
            h *= 0x100000001b3ull;
        }
        h ^= 0xff;
        h *= 0x100000001b3ull;
    }
    return h;
}

static void test_case_gradients(void **state)
{
    const case_run *run = *state;
    const grad_case *c = run->c;
    assert_true(c->n_inputs >= 0 && c->n_inputs <= CASE_MAX_INPUTS);
    double lo = c->lo, hi = c->hi;
    if (lo == 0 && hi == 0)
        lo = -1, hi = 1;

    ad_tape *tape = test_tape();
    uint64_t rng = case_seed(c);
    ad_tensor *inputs[CASE_MAX_INPUTS] = {NULL};
    for (int i = 0; i < c->n_inputs; i++)
        inputs[i] = test_random(tape, &rng, c->ndim[i], c->shape[i], lo, hi);

    ad_gradcheck_opts opts = {.atol = c->atol, .rtol = c->rtol};
    ad_gradcheck_result r;
    bool failed = false;
    ad_status st = ad_gradcheck(c->f, c->ctx, (size_t)c->n_inputs, inputs, &opts, &r);
    if (st != AD_OK || !r.passed) {
        print_error("%s / %s: gradcheck (%s): %s\n", c->op, c->name, ad_status_string(st),
                    r.message);
        failed = true;
    }
    st = ad_jvpcheck(c->f, c->ctx, (size_t)c->n_inputs, inputs, &opts, &r);
    if (st != AD_OK || !r.passed) {
        print_error("%s / %s: jvpcheck (%s): %s\n", c->op, c->name, ad_status_string(st),
                    r.message);
        failed = true;
    }
    if (!c->first_order_only) {
        st = ad_gradgradcheck(c->f, c->ctx, (size_t)c->n_inputs, inputs, rng, &opts, &r);
        if (st != AD_OK || !r.passed) {
            print_error("%s / %s: gradgradcheck (%s): %s\n", c->op, c->name, ad_status_string(st),
                        r.message);
            failed = true;
        }
    }
    ad_tape_free(tape);
    if (failed)
        fail_msg("%s", run->title);
}

/* ---- Coverage ------------------------------------------------------------------- */

/* A case that checks the op to the second order (gradgradcheck) as well. */
static bool op_has_case(const char *name)
{
    for (size_t f = 0; f < N_FAMILIES; f++)
        for (size_t i = 0; i < *families[f].count; i++)
            if (strcmp(families[f].cases[i].op, name) == 0 &&
                !families[f].cases[i].first_order_only)
                return true;
    return false;
}

/* The op table marks the ops without a gradient (AD_OPF_NONDIFF); every
 * other op needs a case checked to first and second order and in forward
 * mode. An op added without one fails here, so a forgotten flag cannot
 * silently drop a gradient. */
static void test_every_differentiable_op_has_a_gradcheck_case(void **state)
{
    (void)state;
    char missing[1024] = "";
    size_t used = 0;
    int n_missing = 0;
    for (int op = 0; op < ad_op_count(); op++) {
        if (!ad_op_differentiable(op) || op_has_case(ad_op_name(op)))
            continue;
        n_missing++;
        int w = snprintf(missing + used, sizeof missing - used, " %s", ad_op_name(op));
        if (w > 0 && (size_t)w < sizeof missing - used)
            used += (size_t)w;
    }
    if (n_missing)
        fail_msg("%d differentiable op(s) without a gradcheck case:%s", n_missing, missing);
}

/* Every case names an op that is in the op table (a typo would pass coverage
 * for nothing). */
static void test_every_case_names_an_op_of_the_table(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t f = 0; f < N_FAMILIES; f++) {
        for (size_t i = 0; i < *families[f].count; i++) {
            const grad_case *c = &families[f].cases[i];
            bool found = false;
            for (int op = 0; op < ad_op_count() && !found; op++)
                found = strcmp(ad_op_name(op), c->op) == 0;
            if (!found) {
                print_error("%s / %s: op \"%s\" is not in the op table\n", families[f].name,
                            c->name, c->op);
                bad++;
            }
        }
    }
    assert_int_equal(bad, 0);
}

/* ---- gradcheck checks itself ------------------------------------------------------ */

/* y = a + b * detach(b): the analytic derivative in b is b (the detached
 * factor is a constant), the numeric one 2b. */
static ad_tensor *drops_a_gradient_path(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_add(in[0], ad_mul(in[1], ad_detach(in[1])));
}

static void test_gradcheck_detects_a_dropped_gradient_path_at_the_worst_element(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    int64_t shape[2] = {2, 3};
    const double a[6] = {0.5, -0.5, 0.25, -0.25, 0.75, -0.75};
    /* The error |b - 2b| / (atol + rtol |2b|) grows with |b|: worst at the
     * largest |b|, b[3] = 0.9. */
    const double b[6] = {0.1, -0.2, 0.3, 0.9, -0.5, 0.4};
    ad_tensor *in[2] = {ad_tape_tensor_from_doubles(tape, AD_F64, 2, shape, a),
                        ad_tape_tensor_from_doubles(tape, AD_F64, 2, shape, b)};
    ad_gradcheck_result r;
    assert_int_equal(ad_gradcheck(drops_a_gradient_path, NULL, 2, in, NULL, &r), AD_OK);
    assert_false(r.passed);
    assert_int_equal(r.input, 1);
    assert_int_equal(r.index, 3);
    assert_int_equal(r.output, 3);
    assert_close(0.9, r.analytic, 1e-12, 0);
    assert_close(1.8, r.numeric, 1e-6, 0);
    assert_true(r.error > 1);
    assert_non_null(strstr(r.message, "FAILED"));
    /* The inputs are not changed by the check. */
    for (int i = 0; i < 6; i++)
        assert_true(ad_tensor_get(in[1], i) == b[i]);
    ad_tape_free(tape);
}

/* f(x) = d^3 + (x - d) 3 d^2 with d = detach(x): its value is x^3 and its
 * analytic gradient 3 d^2 is right, but that gradient is built from detached
 * values only, so its own derivative is 0 instead of 6 x. */
static ad_tensor *loses_the_second_derivative(ad_tape *tape, size_t n, ad_tensor *const *in,
                                              void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    ad_tensor *d = ad_detach(in[0]);
    ad_tensor *slope = ad_mul_scalar(ad_square(d), 3.0);
    return ad_add(ad_pow_scalar(d, 3.0), ad_mul(ad_sub(in[0], d), slope));
}

static void test_gradgradcheck_detects_a_second_derivative_lost_to_detach(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    int64_t shape[1] = {3};
    const double x[3] = {0.5, -1.0, 2.0};
    ad_tensor *in[1] = {ad_tape_tensor_from_doubles(tape, AD_F64, 1, shape, x)};
    ad_gradcheck_result r;
    assert_int_equal(ad_gradcheck(loses_the_second_derivative, NULL, 1, in, NULL, &r), AD_OK);
    assert_true(r.passed);
    assert_int_equal(ad_gradgradcheck(loses_the_second_derivative, NULL, 1, in, 3, NULL, &r),
                     AD_OK);
    assert_false(r.passed);
    assert_non_null(strstr(r.message, "second order"));
    /* The worst element is a derivative in x (input 0), not in the seed. */
    assert_int_equal(r.input, 0);
    assert_close(0.0, r.analytic, 0, 1e-12);
    ad_tape_free(tape);
}

static ad_tensor *product(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_mul(in[0], ad_exp(in[1]));
}

static void test_gradcheck_passes_a_correct_function(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    uint64_t rng = 7;
    int64_t shape[1] = {4};
    ad_tensor *in[2] = {test_random(tape, &rng, 1, shape, -1, 1),
                        test_random(tape, &rng, 1, shape, -1, 1)};
    ad_gradcheck_result r;
    assert_int_equal(ad_gradcheck(product, NULL, 2, in, NULL, &r), AD_OK);
    assert_true(r.passed);
    assert_true(r.error <= 1);
    assert_non_null(strstr(r.message, "passed"));
    assert_int_equal(ad_gradgradcheck(product, NULL, 2, in, 11, NULL, &r), AD_OK);
    assert_true(r.passed);
    ad_tape_free(tape);
}

static ad_tensor *mismatched(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_add(in[0], in[1]);
}

static void test_gradcheck_reports_the_error_of_a_failing_function(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    int64_t s2[1] = {2}, s3[1] = {3};
    ad_tensor *in[2] = {ad_full(tape, AD_F64, 1, s2, 1.0), ad_full(tape, AD_F64, 1, s3, 1.0)};
    ad_gradcheck_result r;
    assert_int_equal(ad_gradcheck(mismatched, NULL, 2, in, NULL, &r), AD_ERR_SHAPE);
    assert_false(r.passed);
    assert_non_null(strstr(r.message, "add"));
    assert_non_null(strstr(r.message, "[2]"));
    assert_non_null(strstr(r.message, "[3]"));
    ad_tape_free(tape);
}

static void test_gradcheck_rejects_float32_inputs(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    int64_t s[1] = {2};
    ad_tensor *in[1] = {ad_full(tape, AD_F32, 1, s, 1.0)};
    ad_gradcheck_result r;
    assert_int_equal(ad_gradcheck(product, NULL, 1, in, NULL, &r), AD_ERR_DTYPE);
    assert_false(r.passed);
    assert_non_null(strstr(r.message, "float"));
    ad_tape_free(tape);
}

/* ---- Runner ------------------------------------------------------------------- */

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_every_differentiable_op_has_a_gradcheck_case),
        cmocka_unit_test(test_every_case_names_an_op_of_the_table),
        cmocka_unit_test(test_gradcheck_detects_a_dropped_gradient_path_at_the_worst_element),
        cmocka_unit_test(test_gradgradcheck_detects_a_second_derivative_lost_to_detach),
        cmocka_unit_test(test_gradcheck_passes_a_correct_function),
        cmocka_unit_test(test_gradcheck_reports_the_error_of_a_failing_function),
        cmocka_unit_test(test_gradcheck_rejects_float32_inputs),
    };
    size_t n_fixed = sizeof fixed / sizeof fixed[0], n_cases = 0;
    for (size_t f = 0; f < N_FAMILIES; f++)
        n_cases += *families[f].count;

    struct CMUnitTest *tests = calloc(n_fixed + n_cases, sizeof *tests);
    case_run *runs = calloc(n_cases ? n_cases : 1, sizeof *runs);
    if (!tests || !runs) {
        free(tests);
        free(runs);
        fprintf(stderr, "test_grad: out of memory\n");
        return 1;
    }
    memcpy(tests, fixed, sizeof fixed);
    size_t k = 0;
    for (size_t f = 0; f < N_FAMILIES; f++) {
        for (size_t i = 0; i < *families[f].count; i++, k++) {
            case_run *run = &runs[k];
            run->family = &families[f];
            run->c = &families[f].cases[i];
            snprintf(run->title, sizeof run->title, "gradients of %s %s: %s", families[f].name,
                     run->c->op, run->c->name);
            tests[n_fixed + k] = (struct CMUnitTest){
                .name = run->title, .test_func = test_case_gradients, .initial_state = run};
        }
    }
    int failed = _cmocka_run_group_tests("grad", tests, n_fixed + n_cases, NULL, NULL);
    free(runs);
    free(tests);
    return failed;
}
