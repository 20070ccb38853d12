/* Gradient-check cases for linear algebra (src/ops/linalg.c): matmul and
 * permute are op-table rows. ad_matmul's 1-D rules and ad_transpose are built
 * on them and filed under their rows. The matmul cases cover all four
 * transpose flags, the 1-D forms, broadcast batch dims (both the per-batch
 * loop and the folded single GEMM of a batch against one matrix), size-1
 * dims, and one input used on both sides. */
#include "grad_cases.h"

#include <stddef.h>

/* ---- matmul ----------------------------------------------------------------------------- */

static ad_tensor *f_matmul(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_matmul(in[0], in[1]);
}

/* Transpose flags for matmul_t. */
typedef struct flags_ctx {
    bool ta, tb;
} flags_ctx;

static ad_tensor *f_matmul_t(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const flags_ctx *f = ctx;
    (void)tape, (void)n;
    return ad_matmul_t(in[0], in[1], f->ta, f->tb);
}

/* x x^T: the same input on both sides, so both contributions must add. */
static ad_tensor *f_gram(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_matmul_t(in[0], in[0], false, true);
}

/* tanh(a b) c: matmul in the middle of a chain, so its backward sees a
 * gradient that is not constant, and the second derivative mixes a, b, c. */
static ad_tensor *f_matmul_chain(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_matmul(ad_tanh(ad_matmul(in[0], in[1])), in[2]);
}

/* a^T b through an explicit transpose, against the flag form. */
static ad_tensor *f_transpose_then_matmul(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_matmul(ad_transpose(in[0], -1, -2), in[1]);
}

static flags_ctx nn = {false, false};
static flags_ctx nt = {false, true};
static flags_ctx tn = {true, false};
static flags_ctx tt = {true, true};

/* ---- permute, transpose ------------------------------------------------------------------ */

typedef struct perm_ctx {
    int perm[AD_MAX_DIMS];
} perm_ctx;

static ad_tensor *f_permute(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const perm_ctx *p = ctx;
    (void)tape, (void)n;
    return ad_permute(in[0], p->perm);
}

typedef struct axes2_ctx {
    int axis0, axis1;
} axes2_ctx;

static ad_tensor *f_transpose(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const axes2_ctx *a = ctx;
    (void)tape, (void)n;
    return ad_transpose(in[0], a->axis0, a->axis1);
}

/* permute(x) * x': the permuted values meet a second, non-constant factor. */
static ad_tensor *f_permute_product(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const perm_ctx *p = ctx;
    (void)tape, (void)n;
    return ad_mul(ad_permute(in[0], p->perm), in[1]);
}

static perm_ctx p10 = {{1, 0}};
static perm_ctx p201 = {{2, 0, 1}};
static perm_ctx p120 = {{1, 2, 0}};
static perm_ctx p021 = {{0, 2, 1}};
static perm_ctx p3102 = {{3, 1, 0, 2}};
static axes2_ctx t01 = {0, 1};
static axes2_ctx t0_last = {0, -1};
static axes2_ctx t_neg = {-1, -2};

/* ---- factorizations and solves (src/ops/linalg_solve.c) ---------------------------------- */

/* m + shift I for m [.., n, n]: well conditioned for |m_ij| < 1 and shift = n. */
static ad_tensor *shifted(ad_tape *tape, ad_tensor *m, double shift)
{
    int64_t n = ad_tensor_shape(m)[ad_tensor_ndim(m) - 1], shape[2] = {n, n};
    double eye[64] = {0};
    for (int64_t i = 0; i < n; i++)
        eye[i * n + i] = shift;
    return ad_add(m, ad_tape_tensor_from_doubles(tape, AD_F64, 2, shape, eye));
}

static int64_t size_of(ad_tensor *m)
{
    return ad_tensor_shape(m)[ad_tensor_ndim(m) - 1];
}

/* m m^T + n I: symmetric positive definite. */
static ad_tensor *spd(ad_tape *tape, ad_tensor *m)
{
    return shifted(tape, ad_matmul_t(m, m, false, true), (double)size_of(m));
}

static ad_tensor *f_cholesky(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return ad_cholesky(spd(tape, in[0]));
}

typedef struct triangular_ctx {
    bool upper, left, unit;
} triangular_ctx;

static ad_tensor *f_solve_triangular(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const triangular_ctx *c = ctx;
    (void)n;
    return ad_solve_triangular(shifted(tape, in[0], (double)size_of(in[0])), in[1], c->upper,
                               c->left, c->unit);
}

static ad_tensor *f_solve(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return ad_solve(shifted(tape, in[0], (double)size_of(in[0])), in[1]);
}

static ad_tensor *f_inv(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return ad_inv(shifted(tape, in[0], (double)size_of(in[0])));
}

/* A shifted by -n I when ctx is set: a negative determinant (n odd). */
static ad_tensor *f_slogdet(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n;
    double s = (double)size_of(in[0]);
    return ad_slogdet(shifted(tape, in[0], ctx ? -s : s), NULL);
}

static ad_tensor *f_det(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n;
    double s = (double)size_of(in[0]);
    return ad_det(shifted(tape, in[0], ctx ? -s : s));
}

static ad_tensor *f_logdet(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return ad_logdet(spd(tape, in[0]));
}

/* (m + m^T) + diag(0, 4, 8, ..): symmetric with eigenvalues well apart. */
static ad_tensor *separated(ad_tape *tape, ad_tensor *m)
{
    int64_t n = size_of(m), shape[2] = {n, n};
    double d[64] = {0};
    for (int64_t i = 0; i < n; i++)
        d[i * n + i] = 4.0 * (double)i;
    return ad_add(ad_add(m, ad_transpose(m, -1, -2)),
                  ad_tape_tensor_from_doubles(tape, AD_F64, 2, shape, d));
}

static ad_tensor *f_eigvalsh(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return ad_eigvalsh(separated(tape, in[0]));
}

static ad_tensor *f_eigenvectors(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    ad_tensor *v = NULL;
    ad_eigh(separated(tape, in[0]), &v);
    return v;
}

/* Both outputs at once: w' V (scaled columns), so dw and dV meet. */
static ad_tensor *f_eigh_both(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    ad_tensor *v = NULL, *w = ad_eigh(separated(tape, in[0]), &v);
    return ad_mul(v, ad_unsqueeze(w, -2));
}

static ad_tensor *f_nuclear(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_matrix_norm(in[0], AD_NORM_NUC);
}

static triangular_ctx lower_left = {false, true, false};
static triangular_ctx upper_left = {true, true, false};
static triangular_ctx lower_left_unit = {false, true, true};
static triangular_ctx upper_right = {true, false, false};
static triangular_ctx lower_right_unit = {false, false, true};
static int negative = 1;

// clang-format off
#define TWO(d0, s0, d1, s1) .n_inputs = 2, .ndim = {d0, d1}, .shape = {s0, s1}
#define S(...) {__VA_ARGS__}

const grad_case cases_linalg[] = {
    /* matmul: torch.matmul rules */
    {.op = "matmul", .name = "[2,3] . [3,4]", .f = f_matmul, TWO(2, S(2, 3), 2, S(3, 4))},
    {.op = "matmul", .name = "1-D . 1-D [3] . [3] (dot, 0-d)", .f = f_matmul,
     TWO(1, S(3), 1, S(3))},
    {.op = "matmul", .name = "1-D . 2-D [3] . [3,4]", .f = f_matmul, TWO(1, S(3), 2, S(3, 4))},
    {.op = "matmul", .name = "2-D . 1-D [2,3] . [3]", .f = f_matmul, TWO(2, S(2, 3), 1, S(3))},
    {.op = "matmul", .name = "1-D . batched [3] . [2,3,4]", .f = f_matmul,
     TWO(1, S(3), 3, S(2, 3, 4))},
    {.op = "matmul", .name = "batched . 1-D [2,2,3] . [3]", .f = f_matmul,
     TWO(3, S(2, 2, 3), 1, S(3))},
    {.op = "matmul", .name = "broadcast batch [2,1,3,4] . [3,4,2]", .f = f_matmul,
     TWO(4, S(2, 1, 3, 4), 3, S(3, 4, 2))},
    {.op = "matmul", .name = "matrix . batch [3,4] . [2,4,5]", .f = f_matmul,
     TWO(2, S(3, 4), 3, S(2, 4, 5))},
    {.op = "matmul", .name = "batch . matrix [2,3,4] . [4,5] (one folded GEMM)", .f = f_matmul,
     TWO(3, S(2, 3, 4), 2, S(4, 5))},
    {.op = "matmul", .name = "size-1 dims [1,3] . [3,1]", .f = f_matmul,
     TWO(2, S(1, 3), 2, S(3, 1))},
    {.op = "matmul", .name = "inner size 1 [2,1] . [1,3] (outer product)", .f = f_matmul,
     TWO(2, S(2, 1), 2, S(1, 3))},
    {.op = "matmul", .name = "size-1 batch on both sides [1,2,3] . [1,3,2]", .f = f_matmul,
     TWO(3, S(1, 2, 3), 3, S(1, 3, 2))},

    /* matmul_t: the four flag combinations, plain and batched */
    {.op = "matmul", .name = "matmul_t a b [2,3] [3,4]", .f = f_matmul_t, .ctx = &nn,
     TWO(2, S(2, 3), 2, S(3, 4))},
    {.op = "matmul", .name = "matmul_t a b^T [2,3] [4,3]", .f = f_matmul_t, .ctx = &nt,
     TWO(2, S(2, 3), 2, S(4, 3))},
    {.op = "matmul", .name = "matmul_t a^T b [3,2] [3,4]", .f = f_matmul_t, .ctx = &tn,
     TWO(2, S(3, 2), 2, S(3, 4))},
    {.op = "matmul", .name = "matmul_t a^T b^T [3,2] [4,3]", .f = f_matmul_t, .ctx = &tt,
     TWO(2, S(3, 2), 2, S(4, 3))},
    {.op = "matmul", .name = "matmul_t a b^T batch . matrix [2,3,4] [5,4] (folded)",
     .f = f_matmul_t, .ctx = &nt, TWO(3, S(2, 3, 4), 2, S(5, 4))},
    {.op = "matmul", .name = "matmul_t a^T b batch . matrix [2,4,3] [4,5]", .f = f_matmul_t,
     .ctx = &tn, TWO(3, S(2, 4, 3), 2, S(4, 5))},
    {.op = "matmul", .name = "matmul_t a^T b^T batched [2,4,3] [2,5,4]", .f = f_matmul_t,
     .ctx = &tt, TWO(3, S(2, 4, 3), 3, S(2, 5, 4))},
    {.op = "matmul", .name = "matmul_t a^T b matrix . batch [4,3] [2,4,5]", .f = f_matmul_t,
     .ctx = &tn, TWO(2, S(4, 3), 3, S(2, 4, 5))},
    {.op = "matmul", .name = "matmul_t a b^T broadcast [2,1,3,4] [3,2,4]", .f = f_matmul_t,
     .ctx = &nt, TWO(4, S(2, 1, 3, 4), 3, S(3, 2, 4))},
    {.op = "matmul", .name = "x x^T, one input on both sides [3,2]", .f = f_gram,
     .n_inputs = 1, .ndim = {2}, .shape = {S(3, 2)}},
    {.op = "matmul", .name = "tanh(a b) c [2,3] [3,4] [4,2]", .f = f_matmul_chain,
     .n_inputs = 3, .ndim = {2, 2, 2}, .shape = {S(2, 3), S(3, 4), S(4, 2)}},

    /* permute and transpose */
    {.op = "permute", .name = "[3,4] by {1,0}", .f = f_permute, .ctx = &p10,
     .n_inputs = 1, .ndim = {2}, .shape = {S(3, 4)}},
    {.op = "permute", .name = "[2,3,4] by {2,0,1}", .f = f_permute, .ctx = &p201,
     .n_inputs = 1, .ndim = {3}, .shape = {S(2, 3, 4)}},
    {.op = "permute", .name = "[2,3,4] by {0,2,1}", .f = f_permute, .ctx = &p021,
     .n_inputs = 1, .ndim = {3}, .shape = {S(2, 3, 4)}},
    {.op = "permute", .name = "[2,1,3,2] by {3,1,0,2} (size-1 dim)", .f = f_permute,
     .ctx = &p3102, .n_inputs = 1, .ndim = {4}, .shape = {S(2, 1, 3, 2)}},
    {.op = "permute", .name = "permute([2,3,4], {1,2,0}) * [3,4,2]", .f = f_permute_product,
     .ctx = &p120, TWO(3, S(2, 3, 4), 3, S(3, 4, 2))},
    {.op = "permute", .name = "transpose [3,4] axes 0,1", .f = f_transpose, .ctx = &t01,
     .n_inputs = 1, .ndim = {2}, .shape = {S(3, 4)}},
    {.op = "permute", .name = "transpose [2,3,4] axes 0,-1", .f = f_transpose, .ctx = &t0_last,
     .n_inputs = 1, .ndim = {3}, .shape = {S(2, 3, 4)}},
    {.op = "permute", .name = "transpose [2,3,4] axes -1,-2", .f = f_transpose, .ctx = &t_neg,
     .n_inputs = 1, .ndim = {3}, .shape = {S(2, 3, 4)}},
    {.op = "permute", .name = "transpose(a, -1, -2) . b [3,2] [3,4]",
     .f = f_transpose_then_matmul, TWO(2, S(3, 2), 2, S(3, 4))},

    /* cholesky of m m^T + n I */
    {.op = "cholesky", .name = "[3,3]", .f = f_cholesky, .n_inputs = 1, .ndim = {2},
     .shape = {S(3, 3)}},
    {.op = "cholesky", .name = "batched [2,3,3]", .f = f_cholesky, .n_inputs = 1, .ndim = {3},
     .shape = {S(2, 3, 3)}},
    {.op = "cholesky", .name = "[1,1]", .f = f_cholesky, .n_inputs = 1, .ndim = {2},
     .shape = {S(1, 1)}},

    /* solve_triangular of m + n I (one triangle read) */
    {.op = "solve_triangular", .name = "lower left [3,3] [3,2]", .f = f_solve_triangular,
     .ctx = &lower_left, TWO(2, S(3, 3), 2, S(3, 2))},
    {.op = "solve_triangular", .name = "upper left batched [2,3,3] [2,3,2]",
     .f = f_solve_triangular, .ctx = &upper_left, TWO(3, S(2, 3, 3), 3, S(2, 3, 2))},
    {.op = "solve_triangular", .name = "lower unit left broadcast [3,3] [2,3,1]",
     .f = f_solve_triangular, .ctx = &lower_left_unit, TWO(2, S(3, 3), 3, S(2, 3, 1))},
    {.op = "solve_triangular", .name = "upper right [3,3] [2,3]", .f = f_solve_triangular,
     .ctx = &upper_right, TWO(2, S(3, 3), 2, S(2, 3))},
    {.op = "solve_triangular", .name = "lower unit right batch broadcast [2,3,3] [1,2,3]",
     .f = f_solve_triangular, .ctx = &lower_right_unit, TWO(3, S(2, 3, 3), 3, S(1, 2, 3))},

    /* solve and inv of m + n I */
    {.op = "solve", .name = "[3,3] [3,2]", .f = f_solve, TWO(2, S(3, 3), 2, S(3, 2))},
    {.op = "solve", .name = "vector [3,3] [3]", .f = f_solve, TWO(2, S(3, 3), 1, S(3))},
    {.op = "solve", .name = "batch of vectors [2,3,3] [2,3]", .f = f_solve,
     TWO(3, S(2, 3, 3), 2, S(2, 3))},
    {.op = "solve", .name = "broadcast batch [2,1,3,3] [3,3,2]", .f = f_solve,
     TWO(4, S(2, 1, 3, 3), 3, S(3, 3, 2))},
    {.op = "solve", .name = "inv [3,3]", .f = f_inv, .n_inputs = 1, .ndim = {2},
     .shape = {S(3, 3)}},
    {.op = "solve", .name = "inv batched [2,2,2]", .f = f_inv, .n_inputs = 1, .ndim = {3},
     .shape = {S(2, 2, 2)}},

    /* slogdet, det, logdet */
    {.op = "logabsdet", .name = "slogdet [3,3]", .f = f_slogdet, .n_inputs = 1, .ndim = {2},
     .shape = {S(3, 3)}},
    {.op = "logabsdet", .name = "slogdet negative det [3,3]", .f = f_slogdet,
     .ctx = &negative, .n_inputs = 1, .ndim = {2}, .shape = {S(3, 3)}},
    {.op = "logabsdet", .name = "det batched [2,3,3]", .f = f_det, .n_inputs = 1, .ndim = {3},
     .shape = {S(2, 3, 3)}},
    {.op = "logabsdet", .name = "det negative [3,3]", .f = f_det, .ctx = &negative,
     .n_inputs = 1, .ndim = {2}, .shape = {S(3, 3)}},
    {.op = "logabsdet", .name = "logdet of m m^T + n I [3,3]", .f = f_logdet, .n_inputs = 1,
     .ndim = {2}, .shape = {S(3, 3)}},

    /* eigh of (m + m^T) + diag(0, 4, 8, ..) */
    {.op = "eigh", .name = "eigvalsh [3,3]", .f = f_eigvalsh, .n_inputs = 1, .ndim = {2},
     .shape = {S(3, 3)}},
    {.op = "eigh", .name = "eigvalsh batched [2,4,4]", .f = f_eigvalsh, .n_inputs = 1,
     .ndim = {3}, .shape = {S(2, 4, 4)}},
    {.op = "eigh", .name = "eigenvectors [3,3]", .f = f_eigenvectors, .n_inputs = 1,
     .ndim = {2}, .shape = {S(3, 3)}},
    {.op = "eigh", .name = "w and V together [3,3]", .f = f_eigh_both, .n_inputs = 1,
     .ndim = {2}, .shape = {S(3, 3)}},
    {.op = "eigh", .name = "nuclear norm [3,2]", .f = f_nuclear, .n_inputs = 1, .ndim = {2},
     .shape = {S(3, 2)}},
};
// clang-format on

const size_t n_cases_linalg = sizeof cases_linalg / sizeof cases_linalg[0];
