/* Shared by the libFuzzer targets (fuzz/run builds them): the input as a
 * file, an allocator that counts, caps and fails on request, and the check
 * that turns a broken invariant into abort() so that libFuzzer reports it. */
#ifndef AD_FUZZ_COMMON_H
#define AD_FUZZ_COMMON_H

#include "autodiff/autodiff.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- Invariants ----------------------------------------------------------- */

/* A broken invariant: say which, then abort (libFuzzer saves the input). */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "\n%s:%d: invariant broken: %s\n    ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* FNV-1a: the per-input choices that must not disturb the input itself
 * (which allocation fails) are a pure function of its bytes. */
static inline uint64_t fuzz_hash(const uint8_t *data, size_t size)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 0x100000001b3u;
    return h;
}

/* ---- The allocator -------------------------------------------------------- */

/*
 * Counts live blocks (a leak check that does not wait for the process to
 * end), refuses blocks above FUZZ_MAX_BLOCK (a file may promise gigabytes;
 * the library must then say AD_ERR_NOMEM, not make libFuzzer's malloc limit
 * fire) and fails allocation number fail_at (1-based; 0: none).
 */
#define FUZZ_MAX_BLOCK ((size_t)256 << 20)

typedef struct fuzz_allocator {
    size_t allocs, failures;
    long live;
    size_t fail_at;
    size_t max_block; /* 0: FUZZ_MAX_BLOCK */
    bool trace;       /* print where each failing allocation comes from */
} fuzz_allocator;

void __sanitizer_print_stack_trace(void);

static inline void *fuzz_alloc(size_t size, void *ctx)
{
    fuzz_allocator *c = ctx;
    c->allocs++;
    if (c->allocs == c->fail_at || size > (c->max_block ? c->max_block : FUZZ_MAX_BLOCK)) {
        c->failures++;
        if (c->trace) {
            fprintf(stderr, "  allocation %zu (%zu bytes) fails here:\n", c->allocs, size);
            __sanitizer_print_stack_trace();
        }
        return NULL;
    }
    void *p = malloc(size);
    if (p)
        c->live++;
    return p;
}

static inline void fuzz_free(void *p, void *ctx)
{
    fuzz_allocator *c = ctx;
    if (p)
        c->live--;
    free(p);
}

static inline ad_allocator fuzz_allocator_of(fuzz_allocator *c)
{
    return (ad_allocator){fuzz_alloc, fuzz_free, c};
}

/* Plain malloc as an allocator, for the tensors a target owns: they must
 * neither be counted nor fail. */
static inline void *plain_alloc(size_t size, void *ctx)
{
    (void)ctx;
    return malloc(size);
}

static inline void plain_free(void *p, void *ctx)
{
    (void)ctx;
    free(p);
}

static const ad_allocator fuzz_plain_allocator = {plain_alloc, plain_free, NULL};

/* ---- The input as a file --------------------------------------------------- */

/*
 * The loaders take a path, so each input is written to a memory file (one
 * memfd for the process, rewritten per input) and read through
 * /proc/self/fd/N; a temporary file where memfd_create is missing. slot
 * selects one of two files, for targets that need two at once.
 */
static inline const char *fuzz_file(int slot, const void *data, size_t size)
{
    static int fds[2] = {-1, -1};
    static char paths[2][64];
    if (fds[slot] < 0) {
#ifdef MFD_CLOEXEC
        fds[slot] = memfd_create(slot ? "fuzz-input-1" : "fuzz-input-0", MFD_CLOEXEC);
#endif
        if (fds[slot] >= 0) {
            snprintf(paths[slot], sizeof paths[slot], "/proc/self/fd/%d", fds[slot]);
        } else {
            const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
            snprintf(paths[slot], sizeof paths[slot], "%s/ad-fuzz-XXXXXX", dir);
            fds[slot] = mkstemp(paths[slot]);
            CHECK(fds[slot] >= 0, "cannot create a temporary file: %s", strerror(errno));
        }
    }
    CHECK(ftruncate(fds[slot], 0) == 0, "ftruncate: %s", strerror(errno));
    const unsigned char *p = data;
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(fds[slot], p + done, size - done, (off_t)done);
        CHECK(w > 0, "pwrite: %s", strerror(errno));
        done += (size_t)w;
    }
    return paths[slot];
}

/* A private directory for files the targets write (ad_safetensors_save
 * writes a temporary file next to its path and renames it), removed at exit
 * with what is in it. */
static char fuzz_dir_path[64];

static inline void fuzz_dir_remove(void)
{
    DIR *d = opendir(fuzz_dir_path);
    if (d) {
        struct dirent *e;
        char path[400];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(path, sizeof path, "%s/%s", fuzz_dir_path, e->d_name);
                remove(path);
            }
        closedir(d);
    }
    rmdir(fuzz_dir_path);
}

static inline const char *fuzz_dir(void)
{
    if (!fuzz_dir_path[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/ad-fuzz-XXXXXX", base);
        CHECK(mkdtemp(fuzz_dir_path), "mkdtemp: %s", strerror(errno));
        atexit(fuzz_dir_remove);
    }
    return fuzz_dir_path;
}

/* Number of entries in the private directory. */
static inline int fuzz_dir_count(void)
{
    DIR *d = opendir(fuzz_dir());
    CHECK(d, "opendir: %s", strerror(errno));
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

#endif
