/* Failure injection for functions that allocate through the process-wide
 * allocator (ad_set_allocator): run an operation with its k-th allocation
 * failing, for k = 1, 2, ... until it succeeds. Used by the loaders' tests. */
#ifndef AD_FAIL_EACH_ALLOC_H
#define AD_FAIL_EACH_ALLOC_H

#include "test_util.h"

typedef struct fail_each_alloc {
    /* The operation: returns its status and writes its message to err. */
    ad_status (*run)(void *ctx, char *err, size_t err_size);
    /* Called after each failed run: asserts that the destination is unchanged. */
    void (*unchanged)(void *ctx);
    /* Called after the successful run, with the sweep's allocator still set:
     * frees what the operation handed out (a handle, a data set). May be NULL. */
    void (*release)(void *ctx);
    void *ctx;
} fail_each_alloc;

/*
 * Each failure must give AD_ERR_NOMEM and a message saying "out of memory",
 * leave no block allocated and change nothing (op->unchanged); the run that
 * succeeds must free, with op->release, everything it allocated. Returns the
 * number of allocations of that run (so callers can check that the
 * allocator saw them at all).
 */
static inline size_t fail_each_alloc_run(const fail_each_alloc *op)
{
    for (size_t k = 1;; k++) {
        counting_allocator c = {.fail_at = k};
        ad_allocator a = allocator_of(&c);
        char err[512] = "unset";
        ad_set_allocator(&a);
        ad_status s = op->run(op->ctx, err, sizeof err);
        if (!c.failures && s == AD_OK && op->release)
            op->release(op->ctx);
        ad_set_allocator(NULL);
        if (!c.failures) {
            if (s != AD_OK)
                fail_msg("no allocation failed, yet status %s: %s", ad_status_string(s), err);
            if (c.live != 0)
                fail_msg("the successful run left %ld blocks allocated", c.live);
            return c.allocs;
        }
        if (s != AD_ERR_NOMEM || !strstr(err, "out of memory") || c.live != 0)
            fail_msg("with allocation %zu failing: status %s, message \"%s\", %ld blocks leaked", k,
                     ad_status_string(s), err, c.live);
        if (op->unchanged)
            op->unchanged(op->ctx);
    }
}

#endif
