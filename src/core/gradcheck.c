/* Gradient checking: the analytic Jacobian (one backward per output element)
 * against central finite differences, in float64, element by element. */
#include "core.h"

#include <math.h>
#include <stdio.h>

typedef struct check {
    ad_function f;
    void *ctx;
    size_t n;
    double **values;          /* the inputs' values, perturbed in place */
    ad_tensor *const *shapes; /* the caller's inputs, for shapes */
    bool forward;             /* the analytic Jacobian by columns from ad_jvp */
} check;

/* Builds fresh float64 leaves on tape from the current values and calls f. */
static ad_tensor *evaluate(ad_tape *tape, const check *c, ad_tensor **leaves)
{
    for (size_t i = 0; i < c->n; i++) {
        const ad_tensor *x = c->shapes[i];
        leaves[i] = ad_requires_grad(ad_tape_tensor(tape, AD_F64, x->ndim, x->shape, c->values[i]));
        if (!leaves[i])
            return NULL;
    }
    return c->f(tape, c->n, leaves, c->ctx);
}

static void fail_message(ad_gradcheck_result *r, ad_tape *tape, const char *what)
{
    snprintf(r->message, sizeof r->message, "gradcheck: %s: %.200s", what,
             tape && tape->message[0] ? tape->message : "function returned NULL");
}

/* Out of memory outside a tape: says for what, and returns AD_ERR_NOMEM. */
static ad_status no_memory(ad_gradcheck_result *r, const char *what)
{
    snprintf(r->message, sizeof r->message, "gradcheck: out of memory for %s", what);
    return AD_ERR_NOMEM;
}

/* One run_check: its tape and scratch, and the analytic Jacobian. */
typedef struct check_run {
    const check *c;
    ad_gradcheck_result *r;
    double eps, atol, rtol;
    ad_tape *tape;
    ad_tensor **leaves, **grads;
    size_t m, total; /* elements of the output, of all inputs */
    double *jac;     /* m rows of total columns: jac[j * total + col] = dy_j / dx_col */
} check_run;

/* The tape and the leaf and gradient lists; counts the inputs' elements. */
static ad_status start(check_run *u)
{
    const check *c = u->c;
    u->leaves = ad__calloc(c->n, sizeof *u->leaves);
    u->grads = ad__calloc(c->n, sizeof *u->grads);
    for (size_t i = 0; i < c->n; i++)
        u->total += (size_t)c->shapes[i]->numel;
    if (!u->leaves || !u->grads || ad_tape_create(&u->tape) != AD_OK)
        return no_memory(u->r, "its tape");
    return AD_OK;
}

/* f at the point checked, in *out, and room for its Jacobian. */
static ad_status first_evaluation(check_run *u, ad_tensor **out)
{
    ad_tensor *y = evaluate(u->tape, u->c, u->leaves);
    if (!y) {
        ad_status st = u->tape->status != AD_OK ? u->tape->status : AD_ERR_NULL;
        fail_message(u->r, u->tape, "function failed");
        return st;
    }
    if (y->dtype != AD_F64) {
        snprintf(u->r->message, sizeof u->r->message,
                 "gradcheck: the function must return float64");
        return AD_ERR_DTYPE;
    }
    u->m = (size_t)y->numel;
    u->jac = ad__calloc(u->m * u->total + 1, sizeof *u->jac);
    if (!u->jac)
        return no_memory(u->r, "the Jacobian");
    *out = y;
    return AD_OK;
}

/* Analytic: row j of the Jacobian from a backward seeded with e_j. */
static ad_status reverse_rows(check_run *u, ad_tensor *y)
{
    const check *c = u->c;
    for (size_t j = 0; j < u->m; j++) {
        ad_tensor *seed = ad_full(u->tape, AD_F64, y->ndim, y->shape, 0.0);
        if (!seed) {
            ad_status st = u->tape->status;
            fail_message(u->r, u->tape, "making a seed");
            return st;
        }
        ad__set(seed, (int64_t)j, 1.0);
        ad_backward_opts o = {.retain_graph = true};
        ad_status st = ad_grad(1, &y, &seed, c->n, u->leaves, u->grads, &o);
        if (st != AD_OK) {
            fail_message(u->r, u->tape, "backward failed");
            return st;
        }
        size_t col = 0;
        for (size_t i = 0; i < c->n; i++)
            for (int64_t e = 0; e < u->grads[i]->numel; e++)
                u->jac[j * u->total + col++] = ad__get(u->grads[i], e);
    }
    return AD_OK;
}

/* Forward mode: column by column, each input element's tangent alone. */
static ad_status forward_columns(check_run *u, ad_tensor *y)
{
    const check *c = u->c;
    ad_tensor **tangents = u->grads;
    for (size_t i = 0, col = 0; i < c->n; i++) {
        for (int64_t e = 0; e < u->leaves[i]->numel; e++, col++) {
            for (size_t k = 0; k < c->n; k++)
                tangents[k] = NULL;
            ad_tensor *x = u->leaves[i];
            tangents[i] = ad_full(u->tape, AD_F64, x->ndim, x->shape, 0.0);
            if (!tangents[i]) {
                ad_status st = u->tape->status;
                fail_message(u->r, u->tape, "making a tangent");
                return st;
            }
            ad__set(tangents[i], e, 1.0);
            ad_tensor *t;
            ad_status st = ad_jvp(1, &y, c->n, u->leaves, tangents, &t, NULL);
            if (st != AD_OK) {
                fail_message(u->r, u->tape, "jvp failed");
                return st;
            }
            for (size_t j = 0; j < u->m; j++)
                u->jac[j * u->total + col] = ad__get(t, (int64_t)j);
        }
    }
    return AD_OK;
}

/* f on a fresh tape with element e of input i set to x; its m values in out.
 * The caller restores the element. */
static ad_status evaluate_at(check_run *u, size_t i, int64_t e, double x, double *out)
{
    u->c->values[i][e] = x;
    ad_tape_reset(u->tape);
    ad_tensor *ys = evaluate(u->tape, u->c, u->leaves);
    if (!ys || (size_t)ys->numel != u->m) {
        ad_status st = u->tape->status != AD_OK ? u->tape->status : AD_ERR_SHAPE;
        fail_message(u->r, u->tape, "function failed at a perturbed point");
        return st;
    }
    for (size_t j = 0; j < u->m; j++)
        out[j] = ad__get(ys, (int64_t)j);
    return AD_OK;
}

/* Keeps in r the worst element of column col (element e of input i). The
 * error is relative to the numeric value, with atol for values near 0; a NaN
 * on one side only counts as infinitely wrong. */
static void compare_column(check_run *u, size_t i, int64_t e, size_t col, const double *plus,
                           const double *minus)
{
    ad_gradcheck_result *r = u->r;
    for (size_t j = 0; j < u->m; j++) {
        double numeric = (plus[j] - minus[j]) / (2 * u->eps);
        double analytic = u->jac[j * u->total + col];
        double err = fabs(analytic - numeric) / (u->atol + u->rtol * fabs(numeric));
        bool both_nan = isnan(analytic) && isnan(numeric);
        if (isnan(err) && !both_nan)
            err = INFINITY;
        if (err > r->error) {
            r->error = err;
            r->input = i;
            r->index = e;
            r->output = (int64_t)j;
            r->analytic = analytic;
            r->numeric = numeric;
        }
    }
}

/* Numeric: column col by central differences, against the analytic one. Up
 * to 64 outputs fit on the stack. */
static ad_status numeric_column(check_run *u, size_t i, int64_t e, size_t col)
{
    size_t m = u->m;
    double saved = u->c->values[i][e];
    double out[2][64], *plus = NULL, *minus = NULL;
    double *buf = m > 64 ? ad__malloc(2 * m * sizeof *buf) : NULL;
    if (m > 64 && !buf)
        return no_memory(u->r, "the finite differences");
    plus = buf ? buf : out[0];
    minus = buf ? buf + m : out[1];
    ad_status st = AD_OK;
    for (int side = 0; side < 2 && st == AD_OK; side++)
        st = evaluate_at(u, i, e, saved + (side ? -u->eps : u->eps), side ? minus : plus);
    u->c->values[i][e] = saved;
    if (st == AD_OK)
        compare_column(u, i, e, col, plus, minus);
    ad__free(buf);
    return st;
}

/* Numeric: column by column, element by element of each input. */
static ad_status numeric_columns(check_run *u)
{
    const check *c = u->c;
    size_t col = 0;
    for (size_t i = 0; i < c->n; i++) {
        for (int64_t e = 0; e < c->shapes[i]->numel; e++, col++) {
            ad_status st = numeric_column(u, i, e, col);
            if (st != AD_OK)
                return st;
        }
    }
    return AD_OK;
}

/* The verdict and its message, from the worst element. */
static void summarize(const check_run *u)
{
    ad_gradcheck_result *r = u->r;
    r->passed = !(r->error > 1);
    if (u->total == 0 || u->m == 0)
        r->error = 0;
    snprintf(r->message, sizeof r->message,
             "%s: worst at input %zu index %lld (output %lld): analytic %.10g, numeric %.10g",
             r->passed ? "passed" : "FAILED", r->input, (long long)r->index, (long long)r->output,
             r->analytic, r->numeric);
}

static ad_status run_check(const check *c, const ad_gradcheck_opts *opts, ad_gradcheck_result *r)
{
    check_run u = {.c = c,
                   .r = r,
                   .eps = opts && opts->eps > 0 ? opts->eps : 1e-6,
                   .atol = opts && opts->atol > 0 ? opts->atol : 1e-5,
                   .rtol = opts && opts->rtol > 0 ? opts->rtol : 1e-3};
    memset(r, 0, sizeof *r);
    r->passed = true;
    r->error = -INFINITY;
    ad_tensor *y = NULL;
    ad_status st = start(&u);
    if (st == AD_OK)
        st = first_evaluation(&u, &y);
    /* An output that does not depend on the inputs: the Jacobian stays 0. */
    if (st == AD_OK && (y->flags & AD_TF_RECORDED))
        st = c->forward ? forward_columns(&u, y) : reverse_rows(&u, y);
    if (st == AD_OK)
        st = numeric_columns(&u);
    if (st == AD_OK)
        summarize(&u);
    ad__free(u.jac);
    ad__free(u.grads);
    ad__free(u.leaves);
    ad_tape_free(u.tape);
    if (st != AD_OK)
        r->passed = false;
    return st;
}

/* Copies each input's values as doubles; NULL on error (message in r). */
static double **copy_values(size_t n, ad_tensor *const *inputs, ad_gradcheck_result *r,
                            ad_status *st)
{
    double **v = ad__calloc(n, sizeof *v);
    *st = AD_ERR_NOMEM;
    if (!v) {
        *st = no_memory(r, "a copy of the inputs");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!inputs[i] || inputs[i]->dtype != AD_F64) {
            snprintf(r->message, sizeof r->message,
                     "gradcheck: input %zu is %s (inputs must be float64 tensors)", i,
                     inputs[i] ? "float32" : "NULL");
            *st = inputs[i] ? AD_ERR_DTYPE : AD_ERR_NULL;
            goto fail;
        }
        v[i] = ad__malloc(((size_t)inputs[i]->numel + 1) * sizeof **v);
        if (!v[i]) {
            *st = no_memory(r, "a copy of the inputs");
            goto fail;
        }
        ad_tensor_copy_to_doubles(inputs[i], v[i]);
    }
    *st = AD_OK;
    return v;
fail:
    for (size_t i = 0; i < n; i++)
        ad__free(v[i]);
    ad__free(v);
    return NULL;
}

static void free_values(size_t n, double **v)
{
    for (size_t i = 0; v && i < n; i++)
        ad__free(v[i]);
    ad__free(v);
}

/* First order, by rows (reverse mode) or by columns (forward mode). */
static ad_status first_order(ad_function f, void *ctx, size_t n, ad_tensor *const *inputs,
                             const ad_gradcheck_opts *opts, ad_gradcheck_result *result,
                             bool forward)
{
    memset(result, 0, sizeof *result);
    ad_status st;
    double **values = copy_values(n, inputs, result, &st);
    if (!values)
        return st;
    check c = {f, ctx, n, values, inputs, forward};
    st = run_check(&c, opts, result);
    free_values(n, values);
    return st;
}

ad_status ad_gradcheck(ad_function f, void *ctx, size_t n, ad_tensor *const *inputs,
                       const ad_gradcheck_opts *opts, ad_gradcheck_result *result)
{
    return first_order(f, ctx, n, inputs, opts, result, false);
}

ad_status ad_jvpcheck(ad_function f, void *ctx, size_t n, ad_tensor *const *inputs,
                      const ad_gradcheck_opts *opts, ad_gradcheck_result *result)
{
    ad_status st = first_order(f, ctx, n, inputs, opts, result, true);
    if (!result->passed && st == AD_OK) {
        char msg[sizeof result->message];
        snprintf(msg, sizeof msg, "forward mode: %.200s", result->message);
        memcpy(result->message, msg, sizeof msg);
    }
    return st;
}

/* ---- Second order ---------------------------------------------------------------------
 * For each input k, gradcheck (x..., v) -> d<f(x), v>/dx_k, the gradient built
 * with create_graph so that it is itself differentiated. */

typedef struct gradgrad {
    ad_function f;
    void *ctx;
    size_t n; /* inputs of f; the checked function has n + 1 (v last) */
    size_t k;
} gradgrad;

static ad_tensor *gradient_of(ad_tape *tape, size_t n1, ad_tensor *const *in, void *vctx)
{
    gradgrad *g = vctx;
    (void)n1;
    ad_tensor *y = g->f(tape, g->n, in, g->ctx);
    if (!y)
        return NULL;
    ad_tensor *v = in[g->n];
    if (!ad__same_shape(v, y)) {
        ad__fail(tape, AD_ERR_SHAPE, "gradgradcheck: output shape changed");
        return NULL;
    }
    if (!(y->flags & AD_TF_RECORDED))
        return ad_zeros_like(tape, in[g->k]);
    ad_tensor **grads = ad__alloc(tape, g->n * sizeof *grads);
    if (!grads)
        return NULL;
    ad_backward_opts o = {.create_graph = true};
    if (ad_grad(1, &y, &v, g->n, in, grads, &o) != AD_OK)
        return NULL;
    return grads[g->k];
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* <d f / d input i, v> at the probe's point, with or without create_graph,
 * into out[i] (numel doubles each; zeros where f does not reach input i). */
static ad_status vjp_at(ad_tape *tape, const check *probe, const double *v_values, bool graph,
                        double **out)
{
    ad_tape_reset(tape);
    ad_tensor **leaves = ad__alloc(tape, (probe->n + 1) * sizeof *leaves);
    ad_tensor **grads = ad__alloc(tape, (probe->n + 1) * sizeof *grads);
    ad_tensor *y = leaves && grads ? evaluate(tape, probe, leaves) : NULL;
    if (!y)
        return tape->status != AD_OK ? tape->status : AD_ERR_NULL;
    for (size_t i = 0; i < probe->n; i++)
        memset(out[i], 0, (size_t)probe->shapes[i]->numel * sizeof **out);
    if (!(y->flags & AD_TF_RECORDED))
        return AD_OK;
    ad_tensor *v = ad_tape_tensor(tape, AD_F64, y->ndim, y->shape, v_values);
    ad_backward_opts o = {.create_graph = graph};
    ad_status st = v ? ad_grad(1, &y, &v, probe->n, leaves, grads, &o) : tape->status;
    for (size_t i = 0; st == AD_OK && i < probe->n; i++)
        for (int64_t e = 0; grads[i] && e < grads[i]->numel; e++)
            out[i][e] = ad__get(grads[i], e);
    return st;
}

/* The gradient recorded with create_graph (whose derivative the second-order
 * check then takes) must be the gradient itself: an op whose recorded
 * backward differs from its fast one would otherwise pass both checks. */
static ad_status graph_gradient_matches(const check *probe, const double *v_values,
                                        const ad_gradcheck_opts *opts, ad_gradcheck_result *r)
{
    ad_tape *tape = NULL;
    if (ad_tape_create(&tape) != AD_OK)
        return no_memory(r, "its tape");
    double atol = opts && opts->atol > 0 ? opts->atol : 1e-5;
    double rtol = opts && opts->rtol > 0 ? opts->rtol : 1e-3;
    size_t n = probe->n;
    double **plain = ad__calloc(2 * n + 1, sizeof *plain), **graph = plain ? plain + n : NULL;
    ad_status st = plain ? AD_OK : no_memory(r, "the gradients");
    for (size_t i = 0; st == AD_OK && i < 2 * n; i++)
        if (!(plain[i] = ad__malloc(((size_t)probe->shapes[i % n]->numel + 1) * sizeof **plain)))
            st = no_memory(r, "the gradients");
    if (st == AD_OK && (st = vjp_at(tape, probe, v_values, false, plain)) == AD_OK)
        st = vjp_at(tape, probe, v_values, true, graph);
    if (st != AD_OK && !r->message[0])
        fail_message(r, tape, "gradient at the point failed");
    for (size_t i = 0; st == AD_OK && i < n && r->passed; i++)
        for (int64_t e = 0; e < probe->shapes[i]->numel; e++) {
            double a = graph[i][e], b = plain[i][e];
            if (fabs(a - b) <= atol + rtol * fabs(b) || (isnan(a) && isnan(b)))
                continue;
            r->passed = false;
            snprintf(r->message, sizeof r->message,
                     "gradgradcheck: input %zu element %lld: the gradient recorded with "
                     "create_graph is %.10g, without it %.10g",
                     i, (long long)e, a, b);
            break;
        }
    for (size_t i = 0; plain && i < 2 * n; i++)
        ad__free(plain[i]);
    ad__free(plain);
    ad_tape_free(tape);
    return st;
}

ad_status ad_gradgradcheck(ad_function f, void *ctx, size_t n, ad_tensor *const *inputs,
                           uint64_t seed, const ad_gradcheck_opts *opts,
                           ad_gradcheck_result *result)
{
    memset(result, 0, sizeof *result);
    ad_status st;
    double **values = copy_values(n, inputs, result, &st);
    if (!values)
        return st;
    /* One evaluation to learn the output's shape, for v. */
    ad_tape *tape = NULL;
    ad_tensor **args = ad__calloc(n + 1, sizeof *args);
    double **all = ad__calloc(n + 1, sizeof *all);
    if (!args || !all || ad_tape_create(&tape) != AD_OK) {
        st = no_memory(result, "its tape");
        goto done;
    }
    check probe = {f, ctx, n, values, inputs, false};
    ad_tensor *y = evaluate(tape, &probe, args);
    if (!y) {
        st = tape->status != AD_OK ? tape->status : AD_ERR_NULL;
        fail_message(result, tape, "function failed");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        args[i] = inputs[i];
        all[i] = values[i];
    }
    /* v: a persistent-free stand-in, a tape tensor holding random values. */
    args[n] = ad_tape_tensor(tape, AD_F64, y->ndim, y->shape, NULL);
    all[n] = ad__malloc(((size_t)y->numel + 1) * sizeof **all);
    if (!args[n] || !all[n]) {
        st = no_memory(result, "the random direction");
        goto done;
    }
    uint64_t s = seed;
    for (int64_t e = 0; e < y->numel; e++)
        all[n][e] = (double)(splitmix(&s) >> 11) / 9007199254740992.0 * 2.0 - 1.0;
    result->passed = true;
    st = graph_gradient_matches(&probe, all[n], opts, result);
    for (size_t k = 0; st == AD_OK && k < n && result->passed; k++) {
        gradgrad g = {f, ctx, n, k};
        check c = {gradient_of, &g, n + 1, all, args, false};
        st = run_check(&c, opts, result);
        if (st != AD_OK)
            break;
        if (!result->passed) {
            char msg[sizeof result->message];
            snprintf(msg, sizeof msg, "second order, gradient of input %zu: %.200s", k,
                     result->message);
            memcpy(result->message, msg, sizeof msg);
        }
    }
done:
    if (all)
        ad__free(all[n]);
    ad__free(all);
    ad__free(args);
    ad_tape_free(tape);
    free_values(n, values);
    if (st != AD_OK)
        result->passed = false;
    return st;
}
