/* Gradient hooks on tape tensors (kept in the tape's arena, ended by a reset)
 * and accumulate hooks on persistent tensors (heap, ended by free). */
#include "core.h"

#include <stdatomic.h>

_Atomic size_t ad__accumulate_hooks;
static _Atomic uint64_t next_id = 1;

ad_status ad_tensor_register_hook(ad_tensor *t, ad_grad_hook fn, void *ctx, ad_hook_id *id)
{
    if (id)
        *id = 0;
    if (!t)
        return ad__misuse(0, NULL, AD_ERR_NULL, "register_hook: the tensor is NULL");
    if (!t->tape)
        return ad__misuse(0, NULL, AD_ERR_ARG,
                          "register_hook: a persistent tensor (use an accumulate hook)");
    ad_tape *tape = t->tape;
    /* A hook that cannot be registered is not the tape's error: the graph
     * is fine. The message goes to the thread (ad_thread_message). */
    if (!fn)
        return ad__misuse(0, NULL, AD_ERR_ARG, "register_hook: the hook function is NULL");
    if (t->generation != tape->generation)
        return ad__fail(tape, AD_ERR_FREED, "register_hook: the tensor was freed by ad_tape_reset");
    if (!(t->flags & AD_TF_RECORDED)) {
        char s[AD__SHAPE_BUF];
        return ad__misuse(0, NULL, AD_ERR_NO_GRAD,
                          "register_hook: the tensor %s does not require grad", AD__SHAPE(t, s));
    }
    ad__hook *h = ad__alloc(tape, sizeof *h);
    if (!h)
        return tape->status;
    *h = (ad__hook){.tensor = t, .grad_fn = fn, .ctx = ctx, .id = next_id++};
    /* Appended, so that hooks run in registration order. */
    ad__hook **end = &tape->hooks;
    while (*end)
        end = &(*end)->next;
    *end = h;
    t->flags |= AD_TF_HOOKED;
    if (id)
        *id = h->id;
    return AD_OK;
}

ad_status ad_tensor_register_accumulate_hook(ad_tensor *t, ad_accumulate_hook fn, void *ctx,
                                             ad_hook_id *id)
{
    if (id)
        *id = 0;
    if (!t)
        return ad__misuse(0, NULL, AD_ERR_NULL, "register_accumulate_hook: the tensor is NULL");
    if (!fn || t->tape || !(t->flags & AD_TF_PERSISTENT))
        return ad__misuse(0, NULL, AD_ERR_ARG, "register_accumulate_hook: %s",
                          !fn ? "the hook function is NULL"
                              : "a tape tensor (use ad_tensor_register_hook)");
    if (!(t->flags & AD_TF_REQUIRES_GRAD))
        return ad__misuse(0, NULL, AD_ERR_NO_GRAD,
                          "register_accumulate_hook: the tensor does not require grad (frozen)");
    const ad_allocator *a = t->allocator->alloc ? t->allocator : NULL;
    ad__hook *h = ad__heap_alloc(a, sizeof *h);
    if (!h)
        return ad__misuse(0, NULL, AD_ERR_NOMEM, "register_accumulate_hook: out of memory");
    *h = (ad__hook){.tensor = t, .accumulate_fn = fn, .ctx = ctx, .id = next_id++};
    ad__hook **end = &t->hooks;
    while (*end)
        end = &(*end)->next;
    *end = h;
    ad__accumulate_hooks++;
    if (id)
        *id = h->id;
    return AD_OK;
}

ad_status ad_tensor_remove_hook(ad_tensor *t, ad_hook_id id)
{
    if (!t)
        return ad__misuse(0, NULL, AD_ERR_NULL, "remove_hook: the tensor is NULL");
    bool persistent = (t->flags & AD_TF_PERSISTENT) != 0;
    ad__hook **link = persistent ? &t->hooks : &t->tape->hooks;
    bool others = false;
    ad__hook *found = NULL;
    for (ad__hook **l = link; *l;) {
        ad__hook *h = *l;
        if (h->tensor == t && h->id == id && !found) {
            found = h;
            *l = h->next;
            continue;
        }
        others |= h->tensor == t;
        l = &h->next;
    }
    if (!found) /* not the tape's error: the tape is fine */
        return ad__misuse(0, NULL, AD_ERR_ARG, "remove_hook: the tensor has no hook %llu",
                          (unsigned long long)id);
    if (persistent) {
        /* The head carries the sweep stamp: keep it on the new head. */
        if (t->hooks)
            t->hooks->stamp = found->stamp;
        ad__heap_free(t->allocator->alloc ? t->allocator : NULL, found);
        ad__accumulate_hooks--;
    } else if (!others) {
        t->flags &= (uint8_t)~AD_TF_HOOKED;
    }
    return AD_OK;
}

ad_tensor *ad__run_grad_hooks(ad_tensor *t, ad_tensor *g)
{
    ad_tape *tape = t->tape;
    for (ad__hook *h = tape->hooks; h && g; h = h->next) {
        if (h->tensor != t)
            continue;
        ad_tensor *r = h->grad_fn(t, g, h->ctx);
        if (tape->status != AD_OK)
            return NULL;
        if (!r)
            continue;
        if (r->tape != tape || r->dtype != g->dtype || !ad__same_shape(r, g)) {
            char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
            ad__fail(tape, AD_ERR_SHAPE,
                     "hook %llu: returned %s %s for a gradient of %s %s (or from another tape)",
                     (unsigned long long)h->id, ad_dtype_name((ad_dtype)r->dtype), AD__SHAPE(r, s0),
                     ad_dtype_name((ad_dtype)g->dtype), AD__SHAPE(g, s1));
            return NULL;
        }
        g = r;
    }
    return g;
}

void ad__run_accumulate_hooks(ad_tensor *p)
{
    for (ad__hook *h = p->hooks; h; h = h->next)
        h->accumulate_fn(p, h->ctx);
}

void ad__free_hooks(ad_tensor *p)
{
    const ad_allocator *a = p->allocator && p->allocator->alloc ? p->allocator : NULL;
    for (ad__hook *h = p->hooks, *next; h; h = next) {
        next = h->next;
        ad__heap_free(a, h);
        ad__accumulate_hooks--;
    }
    p->hooks = NULL;
}
