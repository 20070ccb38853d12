/* Optimizers, following torch.optim's documented update rules. State is
 * allocated when the optimizer is made; a step allocates nothing. */
#include "autodiff/layers.h"

#include "../core/util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef enum { OPT_SGD, OPT_ADAM } optim_kind;

struct ad_optim {
    optim_kind kind;
    bool decoupled; /* AdamW */
    ad_sgd_config sgd;
    ad_adam_config adam;
    size_t n;
    ad_tensor **params;
    ad_tensor **state[2]; /* SGD: momentum; Adam: exp_avg, exp_avg_sq */
    char **state_name[2];
    ad_tensor *step; /* 0-d float64 step counter, saved with the state */
    char *step_name;
};

void ad_optim_free(ad_optim *opt)
{
    if (!opt)
        return;
    for (int s = 0; s < 2; s++) {
        for (size_t i = 0; opt->state[s] && i < opt->n; i++) {
            ad_tensor_free(opt->state[s][i]);
            if (opt->state_name[s])
                ad__free(opt->state_name[s][i]);
        }
        ad__free(opt->state[s]);
        ad__free(opt->state_name[s]);
    }
    ad_tensor_free(opt->step);
    ad__free(opt->step_name);
    ad__free(opt->params);
    ad__free(opt);
}

static ad_status make_state(ad_optim *opt, int slots, const char *const *slot_names,
                            const ad_nn_param *named)
{
    for (int s = 0; s < slots; s++) {
        opt->state[s] = ad__calloc(opt->n, sizeof *opt->state[s]);
        opt->state_name[s] = ad__calloc(opt->n, sizeof *opt->state_name[s]);
        if (!opt->state[s] || !opt->state_name[s])
            return AD_ERR_NOMEM;
        for (size_t i = 0; i < opt->n; i++) {
            ad_tensor *p = opt->params[i];
            ad_status st = ad_tensor_create(&opt->state[s][i], ad_tensor_dtype(p),
                                            ad_tensor_ndim(p), ad_tensor_shape(p), false);
            if (st != AD_OK)
                return st;
            /* Exactly as long as it needs: nested module names have no limit. */
            char index[24];
            snprintf(index, sizeof index, "%zu", i);
            const char *param = named ? named[i].name : index;
            size_t len = strlen("state.") + strlen(param) + 1 + strlen(slot_names[s]) + 1;
            if (!(opt->state_name[s][i] = ad__malloc(len)))
                return AD_ERR_NOMEM;
            snprintf(opt->state_name[s][i], len, "state.%s.%s", param, slot_names[s]);
        }
    }
    if (ad_tensor_create(&opt->step, AD_F64, 0, NULL, false) != AD_OK ||
        !(opt->step_name = ad__strdup("state.step")))
        return AD_ERR_NOMEM;
    return AD_OK;
}

static ad_status optim_new(ad_optim **out, optim_kind kind, size_t n, ad_tensor *const *params,
                           const ad_nn_param *named)
{
    *out = NULL;
    for (size_t i = 0; i < n; i++)
        if (!params[i] || ad_tensor_tape(params[i]))
            return AD_ERR_ARG; /* persistent tensors only (frozen ones are skipped) */
    ad_optim *opt = ad__calloc(1, sizeof *opt);
    if (!opt)
        return AD_ERR_NOMEM;
    opt->kind = kind;
    opt->n = n;
    opt->params = ad__calloc(n, sizeof *opt->params);
    if (!opt->params) {
        ad_optim_free(opt);
        return AD_ERR_NOMEM;
    }
    memcpy(opt->params, params, n * sizeof *params);
    static const char *const sgd_slots[] = {"momentum_buffer"};
    static const char *const adam_slots[] = {"exp_avg", "exp_avg_sq"};
    ad_status st = kind == OPT_SGD ? make_state(opt, 1, sgd_slots, named)
                                   : make_state(opt, 2, adam_slots, named);
    if (st != AD_OK) {
        ad_optim_free(opt);
        return st;
    }
    *out = opt;
    return AD_OK;
}

/* Runs make with the module's parameters as a list. */
static ad_status from_module(ad_optim **out, optim_kind kind, ad_module *m)
{
    *out = NULL;
    if (!m)
        return AD_ERR_ARG;
    size_t n = ad_nn_param_count(m);
    ad_nn_param *named = ad__calloc(n, sizeof *named);
    ad_tensor **params = ad__calloc(n, sizeof *params);
    ad_status st = AD_ERR_NOMEM;
    if (named && params) {
        ad_nn_params(m, named, n);
        for (size_t i = 0; i < n; i++)
            params[i] = named[i].tensor;
        st = optim_new(out, kind, n, params, named);
    }
    ad__free(named);
    ad__free(params);
    return st;
}

/* Marks a config made by a defaults function. A compound literal or a zeroed
 * struct leaves it 0, and its other unset fields 0 too: Adam would then run
 * with beta2 = 0, a silent wrong answer, so such configs are refused. Not a
 * small number, so leftover stack bytes are unlikely to match. */
#define CONFIG_VERSION 0x61640001u

ad_sgd_config ad_sgd_defaults(void)
{
    return (ad_sgd_config){.lr = 0.01, .version = CONFIG_VERSION};
}

ad_adam_config ad_adam_defaults(void)
{
    return (ad_adam_config){
        .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .version = CONFIG_VERSION};
}

ad_adam_config ad_adamw_defaults(void)
{
    ad_adam_config c = ad_adam_defaults();
    c.weight_decay = 0.01;
    return c;
}

/* The config to use (NULL: the defaults), or false for one torch.optim
 * refuses, negative or NaN settings included, or one no defaults function made. */
static bool sgd_config(const ad_sgd_config *given, ad_sgd_config *use)
{
    const ad_sgd_config c = given ? *given : ad_sgd_defaults();
    if (c.version != CONFIG_VERSION)
        return false;
    if (!(c.lr >= 0 && c.momentum >= 0 && c.dampening >= 0 && c.weight_decay >= 0))
        return false;
    /* Nesterov needs momentum and no dampening (as PyTorch). */
    if (c.nesterov && !(c.momentum > 0 && c.dampening == 0))
        return false;
    *use = c;
    return true;
}

static bool adam_config(const ad_adam_config *given, bool decoupled, ad_adam_config *use)
{
    const ad_adam_config c = given ? *given : decoupled ? ad_adamw_defaults() : ad_adam_defaults();
    if (c.version != CONFIG_VERSION)
        return false;
    if (!(c.lr >= 0 && c.beta1 >= 0 && c.beta1 < 1 && c.beta2 >= 0 && c.beta2 < 1 && c.eps >= 0 &&
          c.weight_decay >= 0))
        return false;
    *use = c;
    return true;
}

ad_status ad_optim_sgd_params(ad_optim **out, size_t n, ad_tensor *const *params,
                              const ad_sgd_config *config)
{
    ad_sgd_config c;
    if (!out)
        return AD_ERR_ARG;
    *out = NULL;
    if ((n && !params) || !sgd_config(config, &c))
        return AD_ERR_ARG;
    ad_status st = optim_new(out, OPT_SGD, n, params, NULL);
    if (st == AD_OK)
        (*out)->sgd = c;
    return st;
}

ad_status ad_optim_adam_params(ad_optim **out, size_t n, ad_tensor *const *params,
                               const ad_adam_config *config, bool decoupled)
{
    ad_adam_config c;
    if (!out)
        return AD_ERR_ARG;
    *out = NULL;
    if ((n && !params) || !adam_config(config, decoupled, &c))
        return AD_ERR_ARG;
    ad_status st = optim_new(out, OPT_ADAM, n, params, NULL);
    if (st == AD_OK) {
        (*out)->adam = c;
        (*out)->decoupled = decoupled;
    }
    return st;
}

ad_status ad_optim_sgd(ad_optim **out, ad_module *m, const ad_sgd_config *config)
{
    ad_sgd_config c;
    if (!out)
        return AD_ERR_ARG;
    *out = NULL;
    if (!sgd_config(config, &c))
        return AD_ERR_ARG;
    ad_status st = from_module(out, OPT_SGD, m);
    if (st == AD_OK)
        (*out)->sgd = c;
    return st;
}

static ad_status adam_from_module(ad_optim **out, ad_module *m, const ad_adam_config *config,
                                  bool decoupled)
{
    ad_adam_config c;
    if (!out)
        return AD_ERR_ARG;
    *out = NULL;
    if (!adam_config(config, decoupled, &c))
        return AD_ERR_ARG;
    ad_status st = from_module(out, OPT_ADAM, m);
    if (st == AD_OK) {
        (*out)->adam = c;
        (*out)->decoupled = decoupled;
    }
    return st;
}

ad_status ad_optim_adam(ad_optim **out, ad_module *m, const ad_adam_config *config)
{
    return adam_from_module(out, m, config, false);
}

ad_status ad_optim_adamw(ad_optim **out, ad_module *m, const ad_adam_config *config)
{
    return adam_from_module(out, m, config, true);
}

/* ---- Update rules, one definition for both dtypes ------------------------------------ */

#define KERNELS "nn/optim_kernels.h"
#include "../core/kernels.h"

static void sgd_step(const ad_sgd_config *c, ad_tensor *p, ad_tensor *buf, bool first)
{
    int64_t numel = ad_tensor_numel(p);
    void *grad = ad_tensor_data(ad_tensor_grad(p));
    switch (ad_tensor_dtype(p)) {
    case AD_F32:
        sgd_update_f32(numel, ad_tensor_data(p), grad, ad_tensor_data(buf), c, first);
        break;
    case AD_F64:
        sgd_update_f64(numel, ad_tensor_data(p), grad, ad_tensor_data(buf), c, first);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

static void adam_step(const ad_optim *opt, ad_tensor *p, ad_tensor *m1, ad_tensor *m2, double t)
{
    const ad_adam_config *c = &opt->adam;
    double bc1 = 1 - pow(c->beta1, t), bc2 = 1 - pow(c->beta2, t);
    int64_t numel = ad_tensor_numel(p);
    void *grad = ad_tensor_data(ad_tensor_grad(p));
    void *m = ad_tensor_data(m1), *v = ad_tensor_data(m2);
    switch (ad_tensor_dtype(p)) {
    case AD_F32:
        adam_update_f32(numel, ad_tensor_data(p), grad, m, v, c, opt->decoupled, bc1, bc2);
        break;
    case AD_F64:
        adam_update_f64(numel, ad_tensor_data(p), grad, m, v, c, opt->decoupled, bc1, bc2);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

void ad_optim_step(ad_optim *opt)
{
    if (!opt)
        return;
    double t = ad_value(opt->step) + 1;
    ad_tensor_set(opt->step, 0, t);
    for (size_t k = 0; k < opt->n; k++) {
        ad_tensor *p = opt->params[k];
        if (!ad_tensor_requires_grad(p))
            continue; /* frozen: no update, no weight decay, state untouched (torch) */
        if (opt->kind == OPT_SGD)
            sgd_step(&opt->sgd, p, opt->state[0][k], t == 1);
        else
            adam_step(opt, p, opt->state[0][k], opt->state[1][k], t);
    }
}

void ad_optim_zero_grad(ad_optim *opt)
{
    for (size_t k = 0; opt && k < opt->n; k++)
        if (ad_tensor_requires_grad(opt->params[k]))
            ad_zero_grad(opt->params[k]);
}

void ad_optim_set_lr(ad_optim *opt, double lr)
{
    if (!opt)
        return;
    if (opt->kind == OPT_SGD)
        opt->sgd.lr = lr;
    else
        opt->adam.lr = lr;
}

double ad_optim_lr(const ad_optim *opt)
{
    return !opt ? 0 : opt->kind == OPT_SGD ? opt->sgd.lr : opt->adam.lr;
}

size_t ad_optim_state(const ad_optim *opt, ad_nn_param *out, size_t max)
{
    if (!opt)
        return 0;
    size_t at = 0;
    int slots = opt->kind == OPT_SGD ? 1 : 2;
    for (int s = 0; s < slots; s++)
        for (size_t i = 0; i < opt->n; i++, at++)
            if (out && at < max)
                out[at] = (ad_nn_param){opt->state_name[s][i], opt->state[s][i]};
    if (out && at < max)
        out[at] = (ad_nn_param){opt->step_name, opt->step};
    return at + 1;
}

/* ---- Gradient clipping and schedules --------------------------------------------------- */

static void scale(ad_tensor *x, double coef)
{
    switch (ad_tensor_dtype(x)) {
    case AD_F32:
        scale_f32(ad_tensor_numel(x), ad_tensor_data(x), coef);
        break;
    case AD_F64:
        scale_f64(ad_tensor_numel(x), ad_tensor_data(x), coef);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

double ad_optim_clip_grad_norm(size_t n, ad_tensor *const *params, double max_norm)
{
    double sq = 0;
    for (size_t k = 0; k < n; k++) {
        ad_tensor *g = ad_tensor_requires_grad(params[k]) ? ad_tensor_grad(params[k]) : NULL;
        for (int64_t i = 0; g && i < ad_tensor_numel(g); i++) {
            double v = ad_tensor_get(g, i);
            sq += v * v;
        }
    }
    double norm = sqrt(sq);
    double coef = max_norm / (norm + 1e-6); /* as torch.nn.utils.clip_grad_norm_ */
    if (coef < 1) {
        for (size_t k = 0; k < n; k++) {
            ad_tensor *g = ad_tensor_requires_grad(params[k]) ? ad_tensor_grad(params[k]) : NULL;
            if (g)
                scale(g, coef);
        }
    }
    return norm;
}

double ad_optim_lr_step(double base, int64_t epoch, int64_t step_size, double gamma)
{
    if (step_size <= 0)
        return base;
    return base * pow(gamma, (double)(epoch / step_size));
}

double ad_optim_lr_cosine(double base, double min_lr, int64_t step, int64_t warmup, int64_t total)
{
    if (step < warmup)
        return base * (double)(step + 1) / (double)warmup;
    if (total <= warmup)
        return min_lr;
    double progress = (double)(step - warmup) / (double)(total - warmup);
    if (progress > 1)
        progress = 1;
    const double pi = 3.14159265358979323846;
    return min_lr + (base - min_lr) * 0.5 * (1 + cos(pi * progress));
}
