/* Modules: a tree of named parameters and children, the names derived from
 * it, and the forward dispatch through each module's type. Built-in layers
 * (layers.c) and users' layers go through the same code. */
#include "nn.h"

#include "../core/util.h"

#include <stdio.h>
#include <string.h>

typedef struct param {
    ad_tensor *tensor;
    char *name;      /* as registered: "weight" */
    char *full_name; /* the dotted path from the root: "encoder.0.weight" */
} param;

struct ad_module {
    const ad_module_type *type;
    void *context;
    bool training;
    ad_module *parent;
    char *name; /* in the parent; NULL at a root */
    /* The dotted path from the root ("encoder.0"); NULL at a root. Every
     * full_name below this module starts with path and a dot, so the name
     * relative to this module is full_name + path_len + 1: ad_nn_params
     * needs no allocation and no name is ever rewritten in place. */
    char *path;
    size_t path_len;
    param *params;
    size_t n_params, params_cap;
    ad_module **children;
    size_t n_children, children_cap;
    size_t total_params; /* parameters of this module and all below it */
};

/* Lives on the stack of forward() for one callback. */
struct ad_module_call {
    ad_module *module;
    ad_tape *tape;
    /* NULL, or stand-ins for the parameters of module and everything below
     * it, in ad_nn_params order (checked by ad__module_params_fit). */
    ad_tensor *const *params;
};

/* "path.name", or "name" at a root (path NULL). */
static char *join(const char *path, const char *name)
{
    if (!path)
        return ad__strdup(name);
    size_t a = strlen(path), b = strlen(name);
    char *s = ad__malloc(a + b + 2);
    if (s) {
        memcpy(s, path, a);
        s[a] = '.';
        memcpy(s + a + 1, name, b + 1);
    }
    return s;
}

/* Grows *array (of *cap elements of size `size`) to hold one more than n. */
static bool reserve(void **array, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return true;
    size_t want = *cap ? 2 * *cap : 4;
    void *a = ad__realloc(*array, *cap * size, want * size);
    if (!a)
        return false;
    *array = a;
    *cap = want;
    return true;
}

/* ---- Lifecycle ------------------------------------------------------------------------- */

ad_status ad_module_create(ad_module **out, const ad_module_type *type, void *context)
{
    if (out)
        *out = NULL;
    if (!out || !type || !type->name) {
        if (type && type->free_context)
            type->free_context(context);
        return AD_ERR_ARG;
    }
    ad_module *m = ad__calloc(1, sizeof *m);
    if (!m) {
        if (type->free_context)
            type->free_context(context);
        return AD_ERR_NOMEM;
    }
    m->type = type;
    m->context = context;
    m->training = true;
    *out = m;
    return AD_OK;
}

/* The context goes first, while the children and parameters it may point at
 * are still alive. */
static void destroy(ad_module *m)
{
    if (m->type->free_context)
        m->type->free_context(m->context);
    for (size_t i = 0; i < m->n_children; i++)
        destroy(m->children[i]);
    for (size_t i = 0; i < m->n_params; i++) {
        ad_tensor_free(m->params[i].tensor);
        ad__free(m->params[i].name);
        ad__free(m->params[i].full_name);
    }
    ad__free(m->params);
    ad__free(m->children);
    ad__free(m->name);
    ad__free(m->path);
    ad__free(m);
}

void ad_nn_free(ad_module *m)
{
    /* A child belongs to its parent: freeing it here would free it twice. */
    if (m && !m->parent)
        destroy(m);
}

/* ---- Building the tree ------------------------------------------------------------------ */

static bool valid_name(const char *name)
{
    return name && name[0] && !strchr(name, '.');
}

/* True when name is already used by a parameter or a child of m. */
static bool name_taken(const ad_module *m, const char *name)
{
    for (size_t i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i].name, name) == 0)
            return true;
    for (size_t i = 0; i < m->n_children; i++)
        if (strcmp(m->children[i]->name, name) == 0)
            return true;
    return false;
}

static const ad_module *root_of(const ad_module *m)
{
    while (m->parent)
        m = m->parent;
    return m;
}

/* True when t is a parameter of m or of a module below it. */
static bool holds_tensor(const ad_module *m, const ad_tensor *t)
{
    for (size_t i = 0; i < m->n_params; i++)
        if (m->params[i].tensor == t)
            return true;
    for (size_t i = 0; i < m->n_children; i++)
        if (holds_tensor(m->children[i], t))
            return true;
    return false;
}

/* True when some parameter of `from` (or below) is also one of `tree`'s. */
static bool shares_tensor(const ad_module *from, const ad_module *tree)
{
    for (size_t i = 0; i < from->n_params; i++)
        if (holds_tensor(tree, from->params[i].tensor))
            return true;
    for (size_t i = 0; i < from->n_children; i++)
        if (shares_tensor(from->children[i], tree))
            return true;
    return false;
}

ad_status ad_module_add_param(ad_module *m, const char *name, ad_tensor *tensor)
{
    if (!m || !valid_name(name) || !tensor || ad_tensor_tape(tensor) || name_taken(m, name) ||
        holds_tensor(root_of(m), tensor))
        return AD_ERR_ARG;
    if (!reserve((void **)&m->params, &m->params_cap, m->n_params, sizeof *m->params))
        return AD_ERR_NOMEM;
    char *local = ad__strdup(name), *full = join(m->path, name);
    if (!local || !full) {
        ad__free(local);
        ad__free(full);
        return AD_ERR_NOMEM;
    }
    m->params[m->n_params++] = (param){tensor, local, full};
    for (ad_module *u = m; u; u = u->parent)
        u->total_params++;
    return AD_OK;
}

ad_status ad_module_create_param(ad_module *m, const char *name, ad_dtype dtype, int ndim,
                                 const int64_t *shape, ad_tensor **out)
{
    if (out)
        *out = NULL;
    if (!m || !valid_name(name) || name_taken(m, name))
        return AD_ERR_ARG; /* before allocating anything */
    ad_tensor *t = NULL;
    ad_status st = ad_tensor_create(&t, dtype, ndim, shape, true);
    if (st == AD_OK && (st = ad_module_add_param(m, name, t)) != AD_OK) {
        ad_tensor_free(t);
        t = NULL;
    }
    if (out)
        *out = t;
    return st;
}

/* Modules plus parameters in m's subtree: the strings a renaming makes. */
static size_t count_names(const ad_module *m)
{
    size_t n = 1 + m->n_params;
    for (size_t i = 0; i < m->n_children; i++)
        n += count_names(m->children[i]);
    return n;
}

/* Makes the new names of u's subtree when u's path becomes `path` (already
 * made by the caller; NULL if that failed): fresh[*at...] receives, depth
 * first, each module's path followed by its parameters' full names. Returns
 * false when an allocation failed (the strings made so far are in fresh). */
static bool make_names(const ad_module *u, char *path, char **fresh, size_t *at)
{
    fresh[(*at)++] = path;
    if (!path)
        return false;
    for (size_t i = 0; i < u->n_params; i++)
        if (!(fresh[(*at)++] = join(path, u->params[i].name)))
            return false;
    for (size_t i = 0; i < u->n_children; i++)
        if (!make_names(u->children[i], join(path, u->children[i]->name), fresh, at))
            return false;
    return true;
}

/* Puts the names of make_names in place, in the same order, freeing the old. */
static void apply_names(ad_module *u, char **fresh, size_t *at)
{
    ad__free(u->path);
    u->path = fresh[(*at)++];
    u->path_len = strlen(u->path);
    for (size_t i = 0; i < u->n_params; i++) {
        ad__free(u->params[i].full_name);
        u->params[i].full_name = fresh[(*at)++];
    }
    for (size_t i = 0; i < u->n_children; i++)
        apply_names(u->children[i], fresh, at);
}

/* True when a is m or above m. */
static bool is_ancestor(const ad_module *a, const ad_module *m)
{
    for (; m; m = m->parent)
        if (m == a)
            return true;
    return false;
}

ad_status ad_module_add_child(ad_module *m, const char *name, ad_module *child)
{
    if (!m || !child || !valid_name(name) || child->parent || is_ancestor(child, m) ||
        name_taken(m, name) || shares_tensor(child, root_of(m)))
        return AD_ERR_ARG;
    if (!reserve((void **)&m->children, &m->children_cap, m->n_children, sizeof *m->children))
        return AD_ERR_NOMEM;
    /* Every new string is made before anything changes, so running out of
     * memory half way leaves both trees as they were. */
    size_t n = count_names(child), at = 0;
    char **fresh = ad__calloc(n, sizeof *fresh);
    char *local = ad__strdup(name);
    bool made = fresh && local && make_names(child, join(m->path, name), fresh, &at);
    if (!made) {
        for (size_t i = 0; fresh && i < at; i++)
            ad__free(fresh[i]);
        ad__free(fresh);
        ad__free(local);
        return AD_ERR_NOMEM;
    }
    at = 0;
    apply_names(child, fresh, &at);
    ad__free(fresh);
    child->name = local;
    child->parent = m;
    m->children[m->n_children++] = child;
    for (ad_module *u = m; u; u = u->parent)
        u->total_params += child->total_params;
    return AD_OK;
}

/* ---- Accessors -------------------------------------------------------------------------- */

void *ad_module_context(const ad_module *m)
{
    return m ? m->context : NULL;
}

const ad_module_type *ad_module_type_of(const ad_module *m)
{
    return m ? m->type : NULL;
}

bool ad_module_training(const ad_module *m)
{
    return m && m->training;
}

size_t ad_module_child_count(const ad_module *m)
{
    return m ? m->n_children : 0;
}

ad_module *ad_module_child(const ad_module *m, size_t index)
{
    return m && index < m->n_children ? m->children[index] : NULL;
}

ad_module *ad_module_find_child(const ad_module *m, const char *name)
{
    for (size_t i = 0; m && name && i < m->n_children; i++)
        if (strcmp(m->children[i]->name, name) == 0)
            return m->children[i];
    return NULL;
}

ad_tape *ad_module_call_tape(const ad_module_call *call)
{
    return call ? call->tape : NULL;
}

ad_module *ad_module_call_module(const ad_module_call *call)
{
    return call ? call->module : NULL;
}

void *ad_module_call_context(const ad_module_call *call)
{
    return call ? call->module->context : NULL;
}

/* ---- Forward ---------------------------------------------------------------------------- */

/* The error a forward that failed without recording one leaves behind: the
 * caller would have nothing to report. */
static void check_recorded(ad_module *m, ad_tape *tape)
{
    if (ad_tape_status(tape) == AD_OK)
        ad_tape_set_error(tape, AD_ERR_NULL, "%s: forward returned NULL and recorded no error",
                          m->type->name);
}

/* params: NULL, or stand-ins for the parameters of m and below (checked). */
static ad_tensor *forward(ad_module *m, ad_tape *tape, ad_tensor *x, ad_tensor *const *params)
{
    x = ad_tape_use(tape, x);
    if (!x)
        return NULL;
    ad_module_call call = {m, tape, params};
    if (m->type->forward) {
        ad_tensor *y = m->type->forward(&call, x);
        if (!y)
            check_recorded(m, tape);
        return y;
    }
    if (!m->type->forward_n) {
        ad_tape_set_error(tape, AD_ERR_UNSUPPORTED, "%s: has no forward of its own", m->type->name);
        return NULL;
    }
    ad_tensor *y = NULL;
    if (m->type->forward_n(&call, 1, &x, 1, &y) != AD_OK || !y) {
        check_recorded(m, tape);
        return NULL;
    }
    return y;
}

/* The inputs of a forward_n as tensors on tape (NULL stays NULL, but in[0]
 * may not be), in a heap array the caller frees; NULL after an error. */
static ad_tensor **inputs_on_tape(ad_module *m, ad_tape *tape, size_t n_in, ad_tensor *const *in)
{
    if (!n_in || !in || !in[0]) {
        ad_tape_set_error(tape, AD_ERR_ARG, "%s: the first input is missing (NULL)",
                          m->type->name);
        return NULL;
    }
    ad_tensor **used = ad__calloc(n_in, sizeof *used);
    if (!used) {
        ad_tape_set_error(tape, AD_ERR_NOMEM, "%s: out of memory for %zu inputs", m->type->name,
                          n_in);
        return NULL;
    }
    for (size_t i = 0; i < n_in; i++)
        if (in[i] && !(used[i] = ad_tape_use(tape, in[i]))) {
            ad__free(used);
            return NULL;
        }
    return used;
}

/* forward() for several inputs and outputs; out[0..n_out) is set. */
static ad_status forward_n(ad_module *m, ad_tape *tape, size_t n_in, ad_tensor *const *in,
                           size_t n_out, ad_tensor **out, ad_tensor *const *params)
{
    if (!out || !n_out) {
        ad_tape_set_error(tape, AD_ERR_ARG, "%s: no room for outputs", m->type->name);
        return AD_ERR_ARG;
    }
    for (size_t i = 0; i < n_out; i++)
        out[i] = NULL;
    if (!m->type->forward_n) {
        for (size_t i = 1; in && i < n_in; i++)
            if (in[i]) {
                ad_tape_set_error(tape, AD_ERR_ARG, "%s: takes one input, given input %zu",
                                  m->type->name, i);
                return AD_ERR_ARG;
            }
        out[0] = n_in && in ? forward(m, tape, in[0], params) : NULL;
        if (!out[0] && ad_tape_status(tape) == AD_OK)
            ad_tape_set_error(tape, AD_ERR_ARG, "%s: the first input is missing (NULL)",
                              m->type->name);
        return ad_tape_status(tape);
    }
    ad_tensor **used = inputs_on_tape(m, tape, n_in, in);
    if (!used)
        return ad_tape_status(tape);
    ad_module_call call = {m, tape, params};
    ad_status st = m->type->forward_n(&call, n_in, used, n_out, out);
    ad__free(used);
    if (st != AD_OK || ad_tape_status(tape) != AD_OK) {
        check_recorded(m, tape);
        for (size_t i = 0; i < n_out; i++)
            out[i] = NULL;
        return ad_tape_status(tape);
    }
    return AD_OK;
}

ad_tensor *ad_module_call_param(ad_module_call *call, size_t index)
{
    if (!call)
        return NULL;
    const ad_module *m = call->module;
    if (index >= m->n_params) {
        ad_tape_set_error(call->tape, AD_ERR_ARG, "%s: parameter %zu asked for, it has %zu",
                          m->type->name, index, m->n_params);
        return NULL;
    }
    return ad_tape_use(call->tape, call->params ? call->params[index] : m->params[index].tensor);
}

/* The stand-ins of child `index` of call's module, which follow the module's
 * own and those of the children before it (NULL without stand-ins). Only
 * forward_with pays for this walk. */
static ad_tensor *const *child_params(const ad_module_call *call, size_t index)
{
    if (!call->params)
        return NULL;
    const ad_module *m = call->module;
    size_t offset = m->n_params;
    for (size_t i = 0; i < index; i++)
        offset += m->children[i]->total_params;
    return call->params + offset;
}

ad_tensor *ad_module_forward_child(ad_module_call *call, size_t index, ad_tensor *x)
{
    if (!call)
        return NULL;
    const ad_module *m = call->module;
    if (index >= m->n_children) {
        ad_tape_set_error(call->tape, AD_ERR_ARG, "%s: child %zu asked for, it has %zu",
                          m->type->name, index, m->n_children);
        return NULL;
    }
    return forward(m->children[index], call->tape, x, child_params(call, index));
}

ad_status ad_module_forward_child_n(ad_module_call *call, size_t index, size_t n_in,
                                    ad_tensor *const *in, size_t n_out, ad_tensor **out)
{
    if (!call)
        return AD_ERR_ARG;
    const ad_module *m = call->module;
    if (index >= m->n_children) {
        ad_tape_set_error(call->tape, AD_ERR_ARG, "%s: child %zu asked for, it has %zu",
                          m->type->name, index, m->n_children);
        return AD_ERR_ARG;
    }
    return forward_n(m->children[index], call->tape, n_in, in, n_out, out,
                     child_params(call, index));
}

ad_status ad_nn_forward_n(ad_module *m, ad_tape *tape, size_t n_in, ad_tensor *const *in,
                          size_t n_out, ad_tensor **out)
{
    return ad_nn_forward_n_with(m, tape, n_in, in, n_out, out, 0, NULL);
}

ad_status ad_nn_forward_n_with(ad_module *m, ad_tape *tape, size_t n_in, ad_tensor *const *in,
                               size_t n_out, ad_tensor **out, size_t n_params,
                               ad_tensor *const *params)
{
    for (size_t i = 0; out && i < n_out; i++)
        out[i] = NULL;
    if (!tape)
        return AD_ERR_ARG;
    if (ad_tape_status(tape) != AD_OK)
        return ad_tape_status(tape);
    if (!m) {
        ad_tape_set_error(tape, AD_ERR_ARG, "nn_forward_n: the module is NULL");
        return AD_ERR_ARG;
    }
    if (params && !ad__module_params_fit(m, tape, n_params, params))
        return ad_tape_status(tape);
    return forward_n(m, tape, n_in, in, n_out, out, n_params ? params : NULL);
}

ad_tensor *ad_nn_forward(ad_module *m, ad_tape *tape, ad_tensor *x)
{
    if (!tape)
        return NULL;
    if (!m) {
        ad_tape_set_error(tape, AD_ERR_ARG, "nn_forward: the module is NULL");
        return NULL;
    }
    return forward(m, tape, x, NULL);
}

/* Checks params[*at...] against the parameters of m and below, named from
 * `skip` characters into their full names; advances *at. */
static bool params_fit_below(const ad_module *m, size_t skip, ad_tape *tape,
                             ad_tensor *const *params, size_t *at)
{
    for (size_t i = 0; i < m->n_params; i++) {
        const ad_tensor *own = m->params[i].tensor, *p = params[(*at)++];
        const char *name = m->params[i].full_name + skip;
        if (!p) {
            ad_tape_set_error(tape, AD_ERR_NULL, "nn_forward_with: parameter %s is NULL", name);
            return false;
        }
        int nd = ad_tensor_ndim(p);
        bool same = nd == ad_tensor_ndim(own) &&
                    (nd == 0 || memcmp(ad_tensor_shape(p), ad_tensor_shape(own),
                                       (size_t)nd * sizeof(int64_t)) == 0);
        if (!same || ad_tensor_dtype(p) != ad_tensor_dtype(own)) {
            char given[96], want[96];
            ad_shape_string(given, sizeof given, nd, ad_tensor_shape(p));
            ad_shape_string(want, sizeof want, ad_tensor_ndim(own), ad_tensor_shape(own));
            ad_tape_set_error(tape, same ? AD_ERR_DTYPE : AD_ERR_SHAPE,
                              "nn_forward_with: parameter %s given %s %s, expected %s %s", name,
                              ad_dtype_name(ad_tensor_dtype(p)), given,
                              ad_dtype_name(ad_tensor_dtype(own)), want);
            return false;
        }
    }
    for (size_t i = 0; i < m->n_children; i++)
        if (!params_fit_below(m->children[i], skip, tape, params, at))
            return false;
    return true;
}

/* The length of the prefix ("path.") that makes full names relative to m. */
static size_t prefix_length(const ad_module *m)
{
    return m->path ? m->path_len + 1 : 0;
}

bool ad__module_params_fit(const ad_module *m, ad_tape *tape, size_t n, ad_tensor *const *params)
{
    if (n != m->total_params || (n && !params)) {
        ad_tape_set_error(tape, AD_ERR_ARG,
                          "nn_forward_with: %zu parameters given, the module has %zu",
                          params ? n : 0, m->total_params);
        return false;
    }
    size_t at = 0;
    return params_fit_below(m, prefix_length(m), tape, params, &at);
}

ad_tensor *ad_nn_forward_with(ad_module *m, ad_tape *tape, ad_tensor *x, size_t n,
                              ad_tensor *const *params)
{
    if (!tape || ad_tape_status(tape) != AD_OK)
        return NULL;
    if (!m) {
        ad_tape_set_error(tape, AD_ERR_ARG, "nn_forward_with: the module is NULL");
        return NULL;
    }
    if (!ad__module_params_fit(m, tape, n, params))
        return NULL;
    return forward(m, tape, x, n ? params : NULL);
}

void ad_nn_set_training(ad_module *m, bool training)
{
    if (!m)
        return;
    m->training = training;
    if (m->type->set_training)
        m->type->set_training(m, training);
    for (size_t i = 0; i < m->n_children; i++)
        ad_nn_set_training(m->children[i], training);
}

/* ---- Parameters, counts and checkpoints ------------------------------------------------- */

static size_t collect(const ad_module *m, size_t skip, ad_nn_param *out, size_t max, size_t at)
{
    for (size_t i = 0; i < m->n_params; i++, at++)
        if (at < max)
            out[at] = (ad_nn_param){m->params[i].full_name + skip, m->params[i].tensor};
    for (size_t i = 0; i < m->n_children; i++)
        at = collect(m->children[i], skip, out, max, at);
    return at;
}

size_t ad_nn_params(const ad_module *m, ad_nn_param *out, size_t max)
{
    if (!m)
        return 0;
    return out ? collect(m, prefix_length(m), out, max, 0) : m->total_params;
}

size_t ad_nn_param_count(const ad_module *m)
{
    return m ? m->total_params : 0;
}

int64_t ad_nn_param_numel(const ad_module *m)
{
    if (!m)
        return 0;
    int64_t total = 0;
    for (size_t i = 0; i < m->n_params; i++)
        total += ad_tensor_numel(m->params[i].tensor);
    for (size_t i = 0; i < m->n_children; i++)
        total += ad_nn_param_numel(m->children[i]);
    return total;
}

/* Runs the safetensors save or load over the parameters as (names, tensors) arrays. */
static ad_status with_params(const ad_module *m, const char *path, char *err, size_t err_size,
                             bool save)
{
    size_t n = ad_nn_param_count(m);
    ad_nn_param *p = ad__calloc(n, sizeof *p);
    const char **names = ad__calloc(n, sizeof *names);
    ad_tensor **tensors = ad__calloc(n, sizeof *tensors);
    ad_status st = AD_ERR_NOMEM;
    if (p && names && tensors) {
        ad_nn_params(m, p, n);
        for (size_t i = 0; i < n; i++) {
            names[i] = p[i].name;
            tensors[i] = p[i].tensor;
        }
        st = save ? ad_safetensors_save(path, n, names, tensors, err, err_size)
                  : ad_safetensors_load(path, n, names, tensors, err, err_size);
    } else if (err && err_size) {
        snprintf(err, err_size, "ad_nn_%s: out of memory for %zu parameter names",
                 save ? "save" : "load", n);
    }
    ad__free(p);
    ad__free(names);
    ad__free(tensors);
    return st;
}

ad_status ad_nn_save(const ad_module *m, const char *path, char *err, size_t err_size)
{
    return m ? with_params(m, path, err, err_size, true) : AD_ERR_ARG;
}

ad_status ad_nn_load(ad_module *m, const char *path, char *err, size_t err_size)
{
    return m ? with_params(m, path, err, err_size, false) : AD_ERR_ARG;
}
