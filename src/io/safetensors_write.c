/* safetensors checkpoints, the writer: checks the names and tensors, lays the
 * tensors out, emits the JSON header, and writes next to the destination
 * before renaming over it, so that a failed save keeps the old file. Uses only
 * the public API, ad__error_message and the process-wide allocator. */
#include "safetensors.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* One save: its arguments, and what it builds and must free. */
typedef struct save {
    const char *fn, *path;
    size_t n;
    const char *const *names;
    ad_tensor *const *tensors;
    char *err;
    size_t err_size;
    size_t *order;   /* indices into tensors, in the order of the buffer */
    uint64_t *begin; /* begin[i]: tensors[i]'s first byte in the buffer */
    char *header;    /* the JSON header, padded with spaces */
    size_t header_len;
    char *tmp_path; /* beside path; removed unless renamed */
    bool created;
} save;

static ad_status no_memory(const save *sv, const char *what)
{
    return ad__error_message(sv->err, sv->err_size, AD_ERR_NOMEM, "%s: '%s': out of memory%s",
                             sv->fn, sv->path, what);
}

/* ---- Checks ------------------------------------------------------------------ */

static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    while (n) {
        size_t len = ad__utf8_sequence(p, n);
        if (!len)
            return false;
        p += len;
        n -= len;
    }
    return true;
}

/* Names a file can hold and tensors of a dtype it can store. */
static ad_status check_tensors(const save *sv)
{
    for (size_t i = 0; i < sv->n; i++) {
        const char *name = sv->names[i];
        if (!utf8_valid(name))
            return ad__error_message(sv->err, sv->err_size, AD_ERR_ARG,
                                     "%s: '%s': names[%zu] is not valid UTF-8", sv->fn, sv->path,
                                     i);
        if (strcmp(name, "__metadata__") == 0)
            return ad__error_message(
                sv->err, sv->err_size, AD_ERR_ARG,
                "%s: '%s': \"__metadata__\" is reserved and cannot name a tensor", sv->fn,
                sv->path);
        const ad_tensor *t = sv->tensors[i];
        if (!ad__safetensors_dtype_of(ad_tensor_dtype(t)) || !ad_tensor_data(t))
            return ad__error_message(sv->err, sv->err_size, AD_ERR_DTYPE,
                                     "%s: '%s': tensor '%s' is not F32/F64", sv->fn, sv->path,
                                     name);
    }
    return AD_OK;
}

static int cstr_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* No name given twice (the reader refuses such a file). */
static ad_status check_unique_names(const save *sv)
{
    const char **sorted = ad__malloc((sv->n ? sv->n : 1) * sizeof *sorted);
    if (!sorted)
        return no_memory(sv, "");
    ad_status s = AD_OK;
    if (sv->n) {
        memcpy(sorted, sv->names, sv->n * sizeof *sorted);
        qsort(sorted, sv->n, sizeof *sorted, cstr_cmp);
    }
    for (size_t i = 1; i < sv->n && s == AD_OK; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0)
            s = ad__error_message(sv->err, sv->err_size, AD_ERR_ARG,
                                  "%s: '%s': tensor name '%s' given twice", sv->fn, sv->path,
                                  sorted[i]);
    ad__free(sorted);
    return s;
}

/* ---- Layout ------------------------------------------------------------------ */

/* A tensor's place in the buffer's order. */
typedef struct placed {
    size_t index, element_size;
} placed;

/* Larger elements first, then in the order given. */
static int by_element_size(const void *a, const void *b)
{
    const placed *x = a, *y = b;
    if (x->element_size != y->element_size)
        return x->element_size > y->element_size ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

static uint64_t byte_size(const ad_tensor *t)
{
    return (uint64_t)ad_tensor_numel(t) * ad_dtype_size(ad_tensor_dtype(t));
}

/* The buffer holds the tensors by decreasing element size (float64 first,
 * then float32), so that each stays aligned to its element size. */
static ad_status lay_out(save *sv)
{
    size_t slots = sv->n ? sv->n : 1;
    placed *order = ad__malloc(slots * sizeof *order);
    sv->order = ad__malloc(slots * sizeof *sv->order);
    sv->begin = ad__malloc(slots * sizeof *sv->begin);
    if (!order || !sv->order || !sv->begin) {
        ad__free(order);
        return no_memory(sv, "");
    }
    for (size_t i = 0; i < sv->n; i++)
        order[i] = (placed){i, ad_dtype_size(ad_tensor_dtype(sv->tensors[i]))};
    qsort(order, sv->n, sizeof *order, by_element_size);
    uint64_t at = 0;
    for (size_t k = 0; k < sv->n; k++) {
        size_t i = sv->order[k] = order[k].index;
        sv->begin[i] = at;
        at += byte_size(sv->tensors[i]);
    }
    ad__free(order);
    return AD_OK;
}

/* ---- The JSON header ------------------------------------------------------------ */

/* Text that grows; after a failed allocation it stays as it was and says so. */
typedef struct text {
    char *d;
    size_t len, cap;
    bool nomem;
} text;

static void put(text *t, const char *s, size_t n)
{
    if (t->nomem)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *d = ad__realloc(t->d, t->cap, cap);
        if (!d) {
            t->nomem = true;
            return;
        }
        t->d = d;
        t->cap = cap;
    }
    memcpy(t->d + t->len, s, n);
    t->len += n;
    t->d[t->len] = '\0';
}

static void puts_text(text *t, const char *s)
{
    put(t, s, strlen(s));
}

static void put_u64(text *t, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    puts_text(t, buf);
}

/* A JSON string literal; s is valid UTF-8. */
static void put_json_string(text *t, const char *s)
{
    put(t, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char buf[8];
        if (*p == '"' || *p == '\\') {
            buf[0] = '\\';
            buf[1] = (char)*p;
            put(t, buf, 2);
        } else if (*p < 0x20) {
            const char *named = *p == '\n'   ? "\\n"
                                : *p == '\t' ? "\\t"
                                : *p == '\r' ? "\\r"
                                : *p == '\b' ? "\\b"
                                : *p == '\f' ? "\\f"
                                             : NULL;
            if (named) {
                puts_text(t, named);
            } else {
                snprintf(buf, sizeof buf, "\\u%04x", *p);
                puts_text(t, buf);
            }
        } else {
            put(t, (const char *)p, 1);
        }
    }
    put(t, "\"", 1);
}

/* "name":{"dtype":"F32","shape":[2,3],"data_offsets":[begin,end]} */
static void put_entry(text *h, const char *name, const ad_tensor *t, uint64_t begin)
{
    put_json_string(h, name);
    puts_text(h, ":{\"dtype\":\"");
    puts_text(h, ad__safetensors_dtype_of(ad_tensor_dtype(t))->name);
    puts_text(h, "\",\"shape\":[");
    for (int d = 0; d < ad_tensor_ndim(t); d++) {
        if (d)
            puts_text(h, ",");
        put_u64(h, (uint64_t)ad_tensor_shape(t)[d]);
    }
    puts_text(h, "],\"data_offsets\":[");
    put_u64(h, begin);
    puts_text(h, ",");
    put_u64(h, begin + byte_size(t));
    puts_text(h, "]}");
}

/* The header, in the order of the arguments, padded with spaces to a multiple
 * of 8 bytes so that the buffer after it stays aligned. */
static ad_status emit_header(save *sv)
{
    text h = {0};
    puts_text(&h, "{");
    for (size_t i = 0; i < sv->n; i++) {
        if (i)
            puts_text(&h, ",");
        put_entry(&h, sv->names[i], sv->tensors[i], sv->begin[i]);
    }
    puts_text(&h, "}");
    while (!h.nomem && h.len % 8)
        puts_text(&h, " ");
    if (h.nomem) {
        ad__free(h.d);
        return no_memory(sv, " for the header");
    }
    sv->header = h.d;
    sv->header_len = h.len;
    return AD_OK;
}

/* ---- Writing ---------------------------------------------------------------------- */

/* Writes count elements of the given size little-endian. */
static bool write_le(FILE *f, const void *data, size_t count, size_t size)
{
    if (!count)
        return true;
    if (host_little_endian())
        return fwrite(data, size, count, f) == count;
    unsigned char chunk[4096];
    const unsigned char *p = data;
    size_t per = sizeof chunk / size;
    while (count) {
        size_t m = count < per ? count : per;
        memcpy(chunk, p, m * size);
        ad__swap_bytes(chunk, m, size);
        if (fwrite(chunk, size, m, f) != m)
            return false;
        p += m * size;
        count -= m;
    }
    return true;
}

/* The header length, the header and the buffer, flushed to the disk. */
static bool write_contents(const save *sv, FILE *f, int fd)
{
    unsigned char prefix[8];
    for (int i = 0; i < 8; i++)
        prefix[i] = (unsigned char)((uint64_t)sv->header_len >> (8 * i));
    bool ok = fchmod(fd, 0644) == 0 && fwrite(prefix, 1, 8, f) == 8 &&
              fwrite(sv->header, 1, sv->header_len, f) == sv->header_len;
    for (size_t k = 0; k < sv->n && ok; k++) {
        const ad_tensor *t = sv->tensors[sv->order[k]];
        ok = write_le(f, ad_tensor_data(t), (size_t)ad_tensor_numel(t),
                      ad_dtype_size(ad_tensor_dtype(t)));
    }
    return ok && fflush(f) == 0 && fsync(fd) == 0;
}

/* Creates sv->tmp_path beside path and opens it as *f. */
static ad_status create_temporary(save *sv, FILE **f, int *fd)
{
    size_t path_len = strlen(sv->path);
    sv->tmp_path = ad__malloc(path_len + 8);
    if (!sv->tmp_path)
        return no_memory(sv, "");
    memcpy(sv->tmp_path, sv->path, path_len);
    memcpy(sv->tmp_path + path_len, ".XXXXXX", 8);
    *fd = mkstemp(sv->tmp_path);
    if (*fd < 0)
        return ad__error_message(sv->err, sv->err_size, open_status(errno),
                                 "%s: cannot create a temporary file for '%s': %s", sv->fn,
                                 sv->path, strerror(errno));
    sv->created = true;
    *f = fdopen(*fd, "wb");
    if (!*f) {
        ad_status s =
            ad__error_message(sv->err, sv->err_size, open_status(errno),
                              "%s: cannot write '%s': %s", sv->fn, sv->tmp_path, strerror(errno));
        close(*fd);
        return s;
    }
    return AD_OK;
}

/* Write next to path and rename over it: a failed save keeps the old file. */
static ad_status write_file(save *sv)
{
    FILE *f = NULL;
    int fd = -1;
    ad_status s = create_temporary(sv, &f, &fd);
    if (s != AD_OK)
        return s;
    bool ok = write_contents(sv, f, fd);
    int saved = errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        saved = errno;
    }
    if (!ok)
        return ad__error_message(sv->err, sv->err_size, AD_ERR_IO, "%s: cannot write '%s': %s",
                                 sv->fn, sv->tmp_path, strerror(saved));
    if (rename(sv->tmp_path, sv->path) != 0)
        return ad__error_message(sv->err, sv->err_size, AD_ERR_IO,
                                 "%s: cannot rename '%s' to '%s': %s", sv->fn, sv->tmp_path,
                                 sv->path, strerror(errno));
    sv->created = false;
    return AD_OK;
}

ad_status ad_safetensors_save(const char *path, size_t n, const char *const *names,
                              ad_tensor *const *tensors, char *err, size_t err_size)
{
    save sv = {.fn = "ad_safetensors_save",
               .path = path,
               .n = n,
               .names = names,
               .tensors = tensors,
               .err = err,
               .err_size = err_size};
    clear_err(err, err_size);
    ad_status s = ad__safetensors_check_lists(sv.fn, path, n, names, tensors, false, err, err_size);
    if (s == AD_OK && (s = check_tensors(&sv)) == AD_OK && (s = check_unique_names(&sv)) == AD_OK &&
        (s = lay_out(&sv)) == AD_OK && (s = emit_header(&sv)) == AD_OK)
        s = write_file(&sv);
    if (sv.created)
        remove(sv.tmp_path);
    ad__free(sv.tmp_path);
    ad__free(sv.header);
    ad__free(sv.begin);
    ad__free(sv.order);
    return s;
}
