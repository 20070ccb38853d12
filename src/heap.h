/* Heap memory for the library's own files. Not installed.
 *
 * Separate from internal.h so that the layers, modules and optimizers
 * (nn_*.c), which use only the public API, can allocate like the engine
 * without seeing its internals. */
#ifndef AD_HEAP_H
#define AD_HEAP_H

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

#endif
