/* What the core offers the layers above it that is not public: heap memory
 * through the process-wide allocator, error messages into a caller's buffer
 * and shape formatting. Not installed. src/nn/ and src/io/, which otherwise
 * use only the public API, include this and not core.h, so they cannot see
 * the tensor or tape structs. */
#ifndef AD_UTIL_H
#define AD_UTIL_H

#include "autodiff/autodiff.h"

/* Heap memory from allocator a, or from the process-wide allocator
 * (ad_set_allocator) when a is NULL or has no alloc. */
void *ad__heap_alloc(const ad_allocator *a, size_t size);
void ad__heap_free(const ad_allocator *a, void *p);

/* malloc and free, as an allocator: what a tape or persistent tensor made
 * while the process-wide allocator is the default keeps, so that it goes
 * back to malloc even if the process-wide allocator changes later. */
extern const ad_allocator ad__malloc_allocator;

/* malloc, calloc, realloc, strdup and free through the process-wide
 * allocator: the library's only way to heap memory without an allocator of
 * its own. ad__malloc(0) gives a distinct pointer; ad__realloc needs the old
 * size (allocators have no realloc) and leaves p alone on failure;
 * ad__free(NULL) does nothing. Memory from these goes back through the
 * process-wide allocator of the moment it is freed: see ad_set_allocator
 * for when it may change. */
void *ad__malloc(size_t size);
void *ad__calloc(size_t n, size_t size);
void *ad__realloc(void *p, size_t old_size, size_t size);
char *ad__strdup(const char *s);
void ad__free(void *p);

/* Writes the formatted message into err (when err is not NULL and err_size is
 * not 0) and returns code: the error reports of the functions that take an
 * err buffer instead of a tape (src/io/). */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
ad_status
ad__error_message(char *err, size_t err_size, ad_status code, const char *format, ...);

/* The library's one bound on tensor sizes: at most 2^60 elements, so that
 * numel * 8 bytes fits every size type, counted with each 0 as 1, so that an
 * empty shape such as [0, 2^62] is refused too (its strides and the loops over
 * its other dims would overflow or run for hours). ad__numel returns a
 * shape's element count, or -1 for a negative dim or a shape over the bound. */
#define AD__MAX_NUMEL ((int64_t)1 << 60)
int64_t ad__numel(int ndim, const int64_t *shape);

/* Writes "[2,3]" into buf (at least AD__SHAPE_BUF bytes) and returns buf. */
#define AD__SHAPE_BUF 96
const char *ad__shape_str(char *buf, int ndim, const int64_t *shape);

#endif
