/* The tape: an arena of chained blocks, the list of recorded nodes, and the
 * sticky error. Nothing on a tape is freed alone: reset recycles the arena,
 * free releases it. */
#include "core.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define FIRST_BLOCK_SIZE ((size_t)64 * 1024)

/* Checked mode is on by default in builds with assertions (see
 * ad_tape_set_checked): one extra chain, so a handle kept across one reset
 * is always caught. */
#ifdef NDEBUG
#define AD__CHECKED_DEFAULT 0
#else
#define AD__CHECKED_DEFAULT 1
#endif
#define MIN_BLOCK_SIZE ((size_t)4096) /* after out of memory (ad__alloc) */
#define BLOCK_ALIGN ((size_t)64)

static const char *const status_text[] = {
#define AD_STATUS_TEXT(code, text) text,
    AD_STATUS_LIST(AD_STATUS_TEXT)
#undef AD_STATUS_TEXT
};

const char *ad_status_string(ad_status status)
{
    size_t n = sizeof status_text / sizeof status_text[0];
    return (size_t)status < n ? status_text[status] : "unknown status";
}

static void *default_alloc(size_t size, void *ctx)
{
    (void)ctx;
    return malloc(size);
}

static void default_free(void *ptr, void *ctx)
{
    (void)ctx;
    free(ptr);
}

const ad_allocator ad__malloc_allocator = {default_alloc, default_free, NULL};

/* The process-wide allocator (ad_set_allocator); alloc NULL means malloc. */
static ad_allocator global;

void ad_set_allocator(const ad_allocator *allocator)
{
    global = allocator && allocator->alloc && allocator->free ? *allocator : (ad_allocator){0};
}

ad_allocator ad_get_allocator(void)
{
    return global;
}

void *ad__heap_alloc(const ad_allocator *a, size_t size)
{
    if (!a || !a->alloc)
        a = &global;
    return a->alloc ? a->alloc(size, a->ctx) : malloc(size);
}

void ad__heap_free(const ad_allocator *a, void *p)
{
    if (!a || !a->alloc)
        a = &global;
    if (a->free)
        a->free(p, a->ctx);
    else
        free(p);
}

void *ad__malloc(size_t size)
{
    return ad__heap_alloc(NULL, size ? size : 1);
}

void *ad__calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    size_t bytes = n * size;
    void *p = ad__malloc(bytes);
    if (p && bytes)
        memset(p, 0, bytes);
    return p;
}

void *ad__realloc(void *p, size_t old_size, size_t size)
{
    void *q = ad__malloc(size);
    if (q && p)
        memcpy(q, p, old_size < size ? old_size : size);
    if (q)
        ad__heap_free(NULL, p);
    return q;
}

char *ad__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = ad__malloc(n);
    if (c)
        memcpy(c, s, n);
    return c;
}

void ad__free(void *p)
{
    if (p)
        ad__heap_free(NULL, p);
}

/* ---- Arena ---------------------------------------------------------------- */

static size_t block_header(void)
{
    return (sizeof(ad__block) + BLOCK_ALIGN - 1) & ~(BLOCK_ALIGN - 1);
}

static ad__block *block_new(ad_tape *tape, size_t size)
{
    /* Extra BLOCK_ALIGN bytes let us align the payload whatever malloc gives. */
    ad__block *b = ad__heap_alloc(&tape->allocator, block_header() + size + BLOCK_ALIGN);
    if (!b)
        return NULL;
    b->next = NULL;
    b->size = size;
    b->used = 0;
    tape->reserved += size;
    return b;
}

static unsigned char *block_base(ad__block *b)
{
    uintptr_t p = (uintptr_t)b + block_header();
    p = (p + BLOCK_ALIGN - 1) & ~(uintptr_t)(BLOCK_ALIGN - 1);
    return (unsigned char *)p;
}

void *ad__alloc(ad_tape *tape, size_t size)
{
    /* Small pieces (nodes, scalars) pack at 16 bytes; larger buffers start on
     * a cache line, for vector loads. */
    size_t align = size >= 256 ? BLOCK_ALIGN : 16;
    if (size > SIZE_MAX / 4) {
        ad__fail(tape, AD_ERR_NOMEM, "tape: out of memory allocating %zu bytes", size);
        return NULL;
    }
    size = (size + 15) & ~(size_t)15;
    if (size == 0)
        size = 16;
    ad__block *b = tape->current, *was = b;
    size_t was_before = tape->used_before_current;
    while (b && ((b->used + align - 1) & ~(align - 1)) + size > b->size) {
        /* The current block is full: move on to the next one, kept from an
         * earlier step, or (below) to a new one at the end of the chain. */
        tape->used_before_current += b->used;
        b = b->next;
        tape->current = b;
        if (b)
            b->used = 0;
    }
    if (!b) {
        /* A new block at the end of the chain, as large as all the arena
         * holds, so that a growing tape needs few of them; when that cannot
         * be had, one of the size this piece needs (and not less than a
         * page), so that one buffer too big for the memory left does not
         * leave the tape unable to hold even a scalar. */
        size_t want = tape->reserved > FIRST_BLOCK_SIZE ? tape->reserved : FIRST_BLOCK_SIZE;
        size_t least = size > MIN_BLOCK_SIZE ? size : MIN_BLOCK_SIZE;
        if (want < size)
            want = size;
        b = block_new(tape, want);
        if (!b && want > least)
            b = block_new(tape, least);
        if (!b) {
            /* The arena stays where it was: walked off its end it would
             * have no current block, and a mark taken then (a checkpoint's)
             * would look like an empty arena, so that releasing to it would
             * give back every tensor on the tape. */
            tape->current = was;
            tape->used_before_current = was_before;
            ad__fail(tape, AD_ERR_NOMEM, "tape: out of memory allocating %zu bytes", size);
            return NULL;
        }
        if (!tape->first) {
            tape->first = b;
        } else {
            ad__block *last = tape->first;
            while (last->next)
                last = last->next;
            last->next = b;
        }
        tape->current = b;
    }
    b->used = (b->used + align - 1) & ~(align - 1);
    void *p = block_base(b) + b->used;
    b->used += size;
    if (tape->used_before_current + b->used > tape->peak)
        tape->peak = tape->used_before_current + b->used;
    return p;
}

ad__mark ad__arena_mark(const ad_tape *tape)
{
    ad_hook_id last_hook = 0;
    for (const ad__hook *h = tape->hooks; h; h = h->next)
        last_hook = h->id;
    return (ad__mark){tape->current, tape->current ? tape->current->used : 0,
                      tape->used_before_current, tape->n_nodes, last_hook};
}

void ad__arena_release(ad_tape *tape, const ad__mark *m)
{
    /* Nodes recorded since the mark are forgotten; poison them so that a
     * stale handle fails where it can be checked. */
    for (size_t i = m->n_nodes; i < tape->n_nodes; i++)
        tape->nodes[i]->flags |= AD_TF_FREED;
    tape->n_nodes = m->n_nodes;
    if (tape->n_where > m->n_nodes)
        tape->n_where = m->n_nodes;
    /* Cut the hooks registered since the mark off the list (not just off
     * its head: they may follow hooks that stay). */
    ad__hook **link = &tape->hooks;
    while (*link && (*link)->id <= m->last_hook)
        link = &(*link)->next;
    *link = NULL;
    if (!m->block) {
        /* Nothing was allocated before the mark. */
        tape->current = tape->first;
        if (tape->first)
            tape->first->used = 0;
        tape->used_before_current = 0;
        return;
    }
    tape->current = m->block;
    m->block->used = m->used;
    tape->used_before_current = m->used_before;
}

void *ad__alloc_zero(ad_tape *tape, size_t size)
{
    void *p = ad__alloc(tape, size);
    if (p)
        memset(p, 0, size);
    return p;
}

/* ---- Tape lifecycle ------------------------------------------------------- */

ad_status ad_tape_create(ad_tape **out)
{
    return ad_tape_create_with(out, NULL);
}

ad_status ad_tape_create_with(ad_tape **out, const ad_allocator *allocator)
{
    /* The tape keeps the allocator it was made with: the given one, else
     * the process-wide one of the moment, else malloc. */
    ad_allocator a = ad__malloc_allocator;
    if (allocator && allocator->alloc && allocator->free)
        a = *allocator;
    else if (global.alloc)
        a = global;
    if (!out)
        return AD_ERR_ARG;
    *out = NULL;
    ad_tape *tape = a.alloc(sizeof *tape, a.ctx);
    if (!tape)
        return AD_ERR_NOMEM;
    memset(tape, 0, sizeof *tape);
    tape->allocator = a;
    tape->grad_enabled = true;
    tape->n_chains = 1 + AD__CHECKED_DEFAULT;
    *out = tape;
    return AD_OK;
}

static void free_chain(ad_tape *tape, ad__block *b)
{
    while (b) {
        ad__block *next = b->next;
        ad__heap_free(&tape->allocator, b);
        b = next;
    }
}

static void free_blocks(ad_tape *tape)
{
    tape->chains[tape->chain] = tape->first;
    for (int k = 0; k < AD__MAX_CHAINS; k++) {
        free_chain(tape, tape->chains[k]);
        tape->chains[k] = NULL;
    }
    tape->first = tape->current = NULL;
    tape->reserved = 0;
}

ad_status ad_tape_set_checked(ad_tape *tape, int generations)
{
    if (!tape)
        return AD_ERR_NULL;
    if (generations < 0 || generations >= AD__MAX_CHAINS)
        return ad__fail(tape, AD_ERR_ARG, "set_checked: %d generations (0 to %d)", generations,
                        AD__MAX_CHAINS - 1);
    tape->n_chains = generations + 1; /* takes effect at the next reset */
    return AD_OK;
}

int ad_tape_checked(const ad_tape *tape)
{
    return tape ? tape->n_chains - 1 : 0;
}

void ad_tape_free(ad_tape *tape)
{
    if (!tape)
        return;
    free_blocks(tape);
    ad__heap_free(&tape->allocator, tape->nodes);
    ad__heap_free(&tape->allocator, tape->where);
    if (tape->ext.free)
        tape->ext.free(tape, tape->ext.data);
    ad__heap_free(&tape->allocator, tape);
}

void ad_tape_reset(ad_tape *tape)
{
    if (!tape)
        return;
    /* Poison the recorded nodes so stale handles are caught where possible. */
    for (size_t i = 0; i < tape->n_nodes; i++)
        tape->nodes[i]->flags |= AD_TF_FREED;
    tape->n_nodes = 0;
    tape->hooks = NULL;
    tape->peak = 0;
    tape->n_where = 0;
    if (tape->ext.reset)
        tape->ext.reset(tape, tape->ext.data);
    tape->generation++;
    tape->status = AD_OK;
    tape->message[0] = '\0';
    tape->used_before_current = 0;
    /* Keep the chain: the next step reuses the blocks in order, so a step
     * like the last one lands every piece where it was and allocates (and
     * frees) nothing, from the second step on. In checked mode the next
     * generation takes the next chain instead, and the one it leaves keeps
     * its tensors' generation stamps: stale handles into it stay stale. */
    int n = tape->anomaly && tape->n_chains < 2 ? 2 : tape->n_chains;
    tape->chains[tape->chain] = tape->first;
    tape->chain = (int)(tape->generation % (uint32_t)n);
    tape->first = tape->chains[tape->chain];
    tape->chains[tape->chain] = NULL;
    tape->current = tape->first;
    if (tape->first)
        tape->first->used = 0;
}

ad_status ad_tape_status(const ad_tape *tape)
{
    return tape ? tape->status : AD_ERR_NULL;
}

const char *ad_tape_message(const ad_tape *tape)
{
    return tape ? tape->message : "no tape";
}

void ad_tape_clear_error(ad_tape *tape)
{
    if (tape) {
        tape->status = AD_OK;
        tape->message[0] = '\0';
    }
}

bool ad_tape_set_grad_enabled(ad_tape *tape, bool enabled)
{
    if (!tape)
        return false;
    bool old = tape->grad_enabled;
    tape->grad_enabled = enabled;
    return old;
}

bool ad_tape_grad_enabled(const ad_tape *tape)
{
    return tape && tape->grad_enabled;
}

size_t ad_tape_node_count(const ad_tape *tape)
{
    return tape ? tape->n_nodes : 0;
}

size_t ad_tape_bytes_used(const ad_tape *tape)
{
    if (!tape || !tape->current)
        return 0;
    return tape->used_before_current + tape->current->used;
}

size_t ad_tape_bytes_reserved(const ad_tape *tape)
{
    return tape ? tape->reserved : 0;
}

size_t ad_tape_bytes_peak(const ad_tape *tape)
{
    return tape ? tape->peak : 0;
}

/* Errors with no tape to hold them (an op whose inputs are all persistent,
 * ad_tape_set_error(NULL, ...)): sticky per thread, like a tape's. */
static _Thread_local struct {
    ad_status status;
    char message[512];
} orphan;

ad_status ad_thread_status(void)
{
    return orphan.status;
}

const char *ad_thread_message(void)
{
    return orphan.message;
}

void ad_thread_clear_error(void)
{
    orphan.status = AD_OK;
    orphan.message[0] = '\0';
}

ad_status ad_tape_set_error(ad_tape *tape, ad_status code, const char *format, ...)
{
    ad_status *status = tape ? &tape->status : &orphan.status;
    char *message = tape ? tape->message : orphan.message;
    size_t size = tape ? sizeof tape->message : sizeof orphan.message;
    if (*status != AD_OK || code == AD_OK)
        return code;
    *status = code;
    va_list ap;
    va_start(ap, format);
    vsnprintf(message, size, format, ap);
    va_end(ap);
    return code;
}

const char *ad__shape_str(char *buf, int ndim, const int64_t *shape)
{
    return ad_shape_string(buf, AD__SHAPE_BUF, ndim, shape);
}

const char *ad_shape_string(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t n = 0;
    if (!buf || cap < 3)
        return buf;
    if (ndim > 0 && !shape) {
        /* A caller's NULL shape array, as in an error message about it. */
        snprintf(buf, cap, "NULL");
        return buf;
    }
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
    return buf;
}
