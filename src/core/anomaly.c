/* Anomaly mode: where nodes were made, and the first NaN or infinity in a
 * value or a gradient, reported as an error that names both. */
#include "core.h"

#include <math.h>

#define KERNELS "core/core_kernels.h"
#include "kernels.h"

#include <math.h>
#include <stdio.h>

bool ad_tape_set_anomaly(ad_tape *tape, bool enabled)
{
    if (!tape)
        return false;
    bool old = tape->anomaly;
    tape->anomaly = enabled;
    return old;
}

bool ad_tape_anomaly(const ad_tape *tape)
{
    return tape && tape->anomaly;
}

void ad_tape_set_location(ad_tape *tape, const char *file, int line)
{
    if (tape) {
        tape->here.file = file;
        tape->here.line = line;
    }
}

void ad_tape_set_label(ad_tape *tape, const char *label)
{
    if (tape)
        tape->here.label = label;
}

ad_status ad__record_where(ad_tape *tape)
{
    size_t id = tape->n_nodes;
    if (id >= tape->cap_where) {
        size_t cap = tape->cap_where ? tape->cap_where * 2 : 1024;
        while (cap <= id)
            cap *= 2;
        ad__where *w = ad__heap_alloc(&tape->allocator, cap * sizeof *w);
        if (!w)
            return ad__fail(tape, AD_ERR_NOMEM, "anomaly: out of memory for node provenance");
        if (tape->n_where)
            memcpy(w, tape->where, tape->n_where * sizeof *w);
        ad__heap_free(&tape->allocator, tape->where);
        tape->where = w;
        tape->cap_where = cap;
    }
    /* Nodes recorded while the mode was off have no provenance. */
    for (size_t i = tape->n_where; i < id; i++)
        tape->where[i] = (ad__where){NULL, NULL, 0};
    tape->where[id] = tape->here;
    tape->n_where = id + 1;
    return AD_OK;
}

/* The provenance of t, or of the tape's current location when t is not
 * recorded (a value checked as it is made). */
static ad__where where_of(const ad_tensor *t)
{
    const ad_tape *tape = t->tape;
    if (!tape)
        return (ad__where){NULL, NULL, 0};
    if (t->flags & AD_TF_RECORDED)
        return t->id < tape->n_where ? tape->where[t->id] : (ad__where){NULL, NULL, 0};
    return tape->here;
}

static const char *where_str(ad__where w, char *buf, size_t size)
{
    if (!buf || !size)
        return buf;
    buf[0] = '\0';
    if (w.file && w.label)
        snprintf(buf, size, "%s:%d %s", w.file, w.line, w.label);
    else if (w.file)
        snprintf(buf, size, "%s:%d", w.file, w.line);
    else if (w.label)
        snprintf(buf, size, "%s", w.label);
    return buf;
}

const char *ad__where_str(const ad_tensor *t, char *buf, size_t size)
{
    return where_str(where_of(t), buf, size);
}

const char *ad_tensor_provenance(const ad_tensor *t, char *buf, size_t size)
{
    /* Only recorded nodes have one: for any other tensor, where_of gives the
     * tape's current location, which says nothing of where t was made. */
    if (!t || !(t->flags & AD_TF_RECORDED))
        return where_str((ad__where){NULL, NULL, 0}, buf, size);
    return ad__where_str(t, buf, size);
}

/* The first element of t that is NaN or infinite, or -1. */
static int64_t first_nonfinite(const ad_tensor *t)
{
    switch ((ad_dtype)t->dtype) {
    case AD_F32:
        return first_nonfinite_f32(t->data, t->numel);
    case AD_F64:
        return first_nonfinite_f64(t->data, t->numel);
    case AD_I64:
    case AD_BOOL:
        return -1; /* integers are always finite */
    }
    return -1;
}

/* "name (inputs [2,3], [3])" of node y into buf. */
static const char *describe(const ad_tensor *y, char *buf, size_t size)
{
    const char *name = ad__ops[y->op].name;
    if (y->op == AD_OP_custom || y->op == AD_OP_custom_output)
        name = ad__custom_name(y);
    size_t used = 0;
    int w = snprintf(buf, size, "%s (inputs ", name);
    used = w > 0 ? (size_t)w : 0;
    for (int i = 0; i < y->nsrc && used < size; i++) {
        char s[AD__SHAPE_BUF];
        w = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", AD__SHAPE(y->src[i], s));
        if (w < 0)
            break;
        used += (size_t)w;
    }
    if (used < size)
        snprintf(buf + used, size - used, y->nsrc ? ")" : "none)");
    return buf;
}

ad_status ad__check_finite(ad_tensor *y, const ad_tensor *t, bool backward, int k)
{
    int64_t at = first_nonfinite(t);
    if (at < 0)
        return AD_OK;
    ad_tape *tape = y->tape;
    char what[4 * AD__SHAPE_BUF], ts[AD__SHAPE_BUF], where[256];
    double v = ad__get(t, at);
    if (!backward && tape->rule_node) {
        /* An op inside a backward or jvp rule: the rule's node is to blame. */
        char inner[4 * AD__SHAPE_BUF];
        ad_tensor *r = tape->rule_node;
        ad__where_str(r, where, sizeof where);
        return ad__fail(tape, AD_ERR_NONFINITE,
                        "anomaly: %s of %s gave %g at element %lld of %s (computed by its rule's "
                        "%s); node made at %s",
                        tape->rule_is_jvp ? "forward mode (jvp)" : "backward",
                        describe(r, what, sizeof what), v, (long long)at, AD__SHAPE(t, ts),
                        describe(y, inner, sizeof inner),
                        where[0] ? where : "(unknown: no location set)");
    }
    describe(y, what, sizeof what);
    ad__where_str(y, where, sizeof where);
    if (backward && k >= 0)
        return ad__fail(tape, AD_ERR_NONFINITE,
                        "anomaly: backward of %s gave %g at element %lld of the gradient of "
                        "input %d %s; node made at %s",
                        what, v, (long long)at, k, AD__SHAPE(t, ts),
                        where[0] ? where : "(unknown: no location set)");
    if (backward)
        return ad__fail(tape, AD_ERR_NONFINITE,
                        "anomaly: forward mode (jvp) of %s gave %g at element %lld of its "
                        "tangent %s; node made at %s",
                        what, v, (long long)at, AD__SHAPE(t, ts),
                        where[0] ? where : "(unknown: no location set)");
    return ad__fail(tape, AD_ERR_NONFINITE,
                    "anomaly: forward of %s gave %g at element %lld of its output %s; made at %s",
                    what, v, (long long)at, AD__SHAPE(t, ts),
                    where[0] ? where : "(unknown: no location set)");
}
