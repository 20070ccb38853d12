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
        leaves[i] = ad_requires_grad(ad_tensor_new(tape, AD_F64, x->ndim, x->shape, c->values[i]));
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

static ad_status run_check(const check *c, const ad_gradcheck_opts *opts, ad_gradcheck_result *r)
{
    double eps = opts && opts->eps > 0 ? opts->eps : 1e-6;
    double atol = opts && opts->atol > 0 ? opts->atol : 1e-5;
    double rtol = opts && opts->rtol > 0 ? opts->rtol : 1e-3;
    memset(r, 0, sizeof *r);
    r->passed = true;
    r->error = -INFINITY;

    ad_tape *tape = NULL;
    ad_status st = AD_OK;
    ad_tensor **leaves = ad__calloc(c->n, sizeof *leaves);
    ad_tensor **grads = ad__calloc(c->n, sizeof *grads);
    double *jac = NULL;
    size_t total = 0;
    for (size_t i = 0; i < c->n; i++)
        total += (size_t)c->shapes[i]->numel;
    if (!leaves || !grads || ad_tape_create(&tape) != AD_OK) {
        st = no_memory(r, "its tape");
        goto done;
    }

    /* Analytic: row j of the Jacobian from a backward seeded with e_j. */
    ad_tensor *y = evaluate(tape, c, leaves);
    if (!y) {
        st = tape->status != AD_OK ? tape->status : AD_ERR_NULL;
        fail_message(r, tape, "function failed");
        goto done;
    }
    if (y->dtype != AD_F64) {
        st = AD_ERR_DTYPE;
        snprintf(r->message, sizeof r->message, "gradcheck: the function must return float64");
        goto done;
    }
    size_t m = (size_t)y->numel;
    jac = ad__calloc(m * total + 1, sizeof *jac);
    if (!jac) {
        st = no_memory(r, "the Jacobian");
        goto done;
    }
    bool connected = (y->flags & AD_TF_RECORDED) != 0;
    for (size_t j = 0; j < m && connected && !c->forward; j++) {
        ad_tensor *seed = ad_full(tape, AD_F64, y->ndim, y->shape, 0.0);
        if (!seed) {
            st = tape->status;
            fail_message(r, tape, "making a seed");
            goto done;
        }
        ad__set(seed, (int64_t)j, 1.0);
        ad_backward_opts o = {.retain_graph = true};
        st = ad_grad(1, &y, &seed, c->n, leaves, grads, &o);
        if (st != AD_OK) {
            fail_message(r, tape, "backward failed");
            goto done;
        }
        size_t col = 0;
        for (size_t i = 0; i < c->n; i++)
            for (int64_t e = 0; e < grads[i]->numel; e++)
                jac[j * total + col++] = ad__get(grads[i], e);
    }
    /* Forward mode: column by column, each input element's tangent alone. */
    for (size_t i = 0, col = 0; i < c->n && connected && c->forward; i++) {
        for (int64_t e = 0; e < leaves[i]->numel; e++, col++) {
            for (size_t k = 0; k < c->n; k++)
                grads[k] = NULL;
            grads[i] = ad_full(tape, AD_F64, leaves[i]->ndim, leaves[i]->shape, 0.0);
            if (!grads[i]) {
                st = tape->status;
                fail_message(r, tape, "making a tangent");
                goto done;
            }
            ad__set(grads[i], e, 1.0);
            ad_tensor *t;
            st = ad_jvp(1, &y, c->n, leaves, grads, &t, NULL);
            if (st != AD_OK) {
                fail_message(r, tape, "jvp failed");
                goto done;
            }
            for (size_t j = 0; j < m; j++)
                jac[j * total + col] = ad__get(t, (int64_t)j);
        }
    }

    /* Numeric: column by column, central differences. */
    size_t col = 0;
    for (size_t i = 0; i < c->n; i++) {
        for (int64_t e = 0; e < c->shapes[i]->numel; e++, col++) {
            double saved = c->values[i][e];
            double out[2][64], *plus = NULL, *minus = NULL;
            double *buf = m > 64 ? ad__malloc(2 * m * sizeof *buf) : NULL;
            if (m > 64 && !buf) {
                st = no_memory(r, "the finite differences");
                goto done;
            }
            plus = buf ? buf : out[0];
            minus = buf ? buf + m : out[1];
            for (int side = 0; side < 2; side++) {
                c->values[i][e] = saved + (side ? -eps : eps);
                ad_tape_reset(tape);
                ad_tensor *ys = evaluate(tape, c, leaves);
                if (!ys || (size_t)ys->numel != m) {
                    st = tape->status != AD_OK ? tape->status : AD_ERR_SHAPE;
                    fail_message(r, tape, "function failed at a perturbed point");
                    c->values[i][e] = saved;
                    ad__free(buf);
                    goto done;
                }
                for (size_t j = 0; j < m; j++)
                    (side ? minus : plus)[j] = ad__get(ys, (int64_t)j);
            }
            c->values[i][e] = saved;
            for (size_t j = 0; j < m; j++) {
                double numeric = (plus[j] - minus[j]) / (2 * eps);
                double analytic = jac[j * total + col];
                double err = fabs(analytic - numeric) / (atol + rtol * fabs(numeric));
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
            ad__free(buf);
        }
    }
    r->passed = !(r->error > 1);
    if (total == 0 || m == 0)
        r->error = 0;
    snprintf(r->message, sizeof r->message,
             "%s: worst at input %zu index %lld (output %lld): analytic %.10g, numeric %.10g",
             r->passed ? "passed" : "FAILED", r->input, (long long)r->index, (long long)r->output,
             r->analytic, r->numeric);
done:
    ad__free(jac);
    ad__free(grads);
    ad__free(leaves);
    ad_tape_free(tape);
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
    args[n] = ad_tensor_new(tape, AD_F64, y->ndim, y->shape, NULL);
    all[n] = ad__malloc(((size_t)y->numel + 1) * sizeof **all);
    if (!args[n] || !all[n]) {
        st = no_memory(result, "the random direction");
        goto done;
    }
    uint64_t s = seed;
    for (int64_t e = 0; e < y->numel; e++)
        all[n][e] = (double)(splitmix(&s) >> 11) / 9007199254740992.0 * 2.0 - 1.0;
    result->passed = true;
    for (size_t k = 0; k < n && result->passed; k++) {
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
