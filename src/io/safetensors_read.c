/* safetensors checkpoints, the reader: a strict parser of its own for the
 * header, checks of the entries against each other and the file, and reads
 * that write their destinations only after every check. Also what the writer
 * shares (safetensors.h): the dtypes, UTF-8, byte swapping, the list checks.
 * Uses only the public API, ad__error_message and the process-wide
 * allocator (ad__malloc and friends, so that ad_set_allocator sees every
 * allocation and tests can fail each).
 *
 * Why a dedicated parser: the header is a fixed shape (an object of entries
 * plus an optional "__metadata__"), and the checks that matter (duplicate keys,
 * integers beyond 2^53, exact tiling) are the ones general JSON libraries get
 * wrong or hide. Nothing is trusted: every length is checked against what was
 * actually read, and the destinations are written only after every check. */
#include "safetensors.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>

/* As the reference implementation: a larger header is refused unread. */
#define MAX_HEADER ((uint64_t)100000000)

/* ---- What the writer shares ------------------------------------------------ */

/* Every safetensors dtype (safetensors.h). */
static const ad__safetensors_dtype dtypes[] = {
    {"F32", 32, true, AD_F32},      {"F64", 64, true, AD_F64},      {.name = "BOOL", .bits = 8},
    {.name = "U8", .bits = 8},      {.name = "I8", .bits = 8},      {.name = "F8_E5M2", .bits = 8},
    {.name = "F8_E4M3", .bits = 8}, {.name = "F8_E8M0", .bits = 8}, {.name = "I16", .bits = 16},
    {.name = "U16", .bits = 16},    {.name = "F16", .bits = 16},    {.name = "BF16", .bits = 16},
    {.name = "I32", .bits = 32},    {.name = "U32", .bits = 32},    {.name = "I64", .bits = 64},
    {.name = "U64", .bits = 64},    {.name = "C64", .bits = 64},    {.name = "F4", .bits = 4},
    {.name = "F6_E2M3", .bits = 6}, {.name = "F6_E3M2", .bits = 6},
};
enum { N_DTYPES = sizeof dtypes / sizeof dtypes[0] };

const ad__safetensors_dtype *ad__safetensors_dtype_named(const char *name, size_t len)
{
    for (size_t i = 0; i < N_DTYPES; i++) {
        const ad__safetensors_dtype *d = &dtypes[i];
        if (strlen(d->name) == len && memcmp(d->name, name, len) == 0)
            return d;
    }
    return NULL;
}

const ad__safetensors_dtype *ad__safetensors_dtype_of(ad_dtype dtype)
{
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtypes[i].loadable && dtypes[i].ad_type == dtype)
            return &dtypes[i];
    return NULL;
}

ad_status ad__safetensors_check_lists(const char *fn, const char *path, size_t n,
                                      const char *const *names, ad_tensor *const *tensors,
                                      bool need_persistent, char *err, size_t err_size)
{
    if (!path)
        return ad__error_message(err, err_size, AD_ERR_ARG, "%s: path is NULL", fn);
    if (n && (!names || !tensors))
        return ad__error_message(err, err_size, AD_ERR_ARG, "%s: '%s': %s is NULL for %zu tensors",
                                 fn, path, !names ? "names" : "tensors", n);
    for (size_t i = 0; i < n; i++) {
        if (!names[i])
            return ad__error_message(err, err_size, AD_ERR_ARG, "%s: '%s': names[%zu] is NULL", fn,
                                     path, i);
        if (!tensors[i])
            return ad__error_message(err, err_size, AD_ERR_ARG, "%s: '%s': tensor '%s' is NULL", fn,
                                     path, names[i]);
        if (need_persistent && !persistent(tensors[i]))
            return ad__error_message(
                err, err_size, AD_ERR_ARG,
                "%s: '%s': destination of '%s' is a tape tensor, not a persistent one", fn, path,
                names[i]);
    }
    return AD_OK;
}

size_t ad__utf8_sequence(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, cp = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

void ad__swap_bytes(void *data, size_t count, size_t size)
{
    unsigned char *p = data;
    for (size_t i = 0; i < count; i++, p += size)
        for (size_t a = 0, b = size - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

/* ---- The open file --------------------------------------------------------- */

typedef struct entry {
    char *name; /* decoded, NUL-terminated (may hold an escaped NUL before name_len) */
    size_t name_len;
    const ad__safetensors_dtype *dtype;
    int ndim;
    size_t shape_at; /* first dim in ad_safetensors.shapes */
    int64_t numel;
    uint64_t begin, end;
} entry;

struct ad_safetensors {
    FILE *file;
    char *path;
    uint64_t data_start; /* 8 + header length */
    uint64_t buffer_size;
    entry *entries;
    size_t n_entries, cap_entries;
    int64_t *shapes;
    size_t n_shapes, cap_shapes;
    entry **by_name; /* entries sorted by name, for duplicates and lookup */
};

/* The dims of e, NULL for a 0-d entry: when every entry is 0-d, st->shapes is
 * NULL, and even NULL + 0 is undefined behaviour. */
static const int64_t *entry_shape(const ad_safetensors *st, const entry *e)
{
    return e->ndim ? st->shapes + e->shape_at : NULL;
}

void ad_safetensors_close(ad_safetensors *st)
{
    if (!st)
        return;
    if (st->file)
        fclose(st->file);
    for (size_t i = 0; i < st->n_entries; i++)
        ad__free(st->entries[i].name);
    ad__free(st->entries);
    ad__free(st->shapes);
    ad__free(st->by_name);
    ad__free(st->path);
    ad__free(st);
}

static int name_cmp(const entry *a, const entry *b)
{
    size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = memcmp(a->name, b->name, n);
    if (c)
        return c;
    return (a->name_len > b->name_len) - (a->name_len < b->name_len);
}

static int by_name_cmp(const void *a, const void *b)
{
    return name_cmp(*(entry *const *)a, *(entry *const *)b);
}

static int by_offset_cmp(const void *a, const void *b)
{
    const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

/* The second of the first two equal names in sorted[0..n), or NULL. */
static const entry *first_duplicate(entry *const *sorted, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (name_cmp(sorted[i - 1], sorted[i]) == 0)
            return sorted[i];
    return NULL;
}

/* ---- Header parser --------------------------------------------------------- */

/* One open in progress: the handle being filled, the public function and the
 * caller's buffer for messages, and the header text being parsed. */
typedef struct parser {
    const unsigned char *start, *p, *end;
    ad_safetensors *st;
    const char *fn; /* the public function, for messages */
    char *err;
    size_t err_size;
} parser;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static ad_status
bad(parser *ps, const char *format, ...)
{
    if (ps->err && ps->err_size) {
        int w = snprintf(ps->err, ps->err_size, "%s: '%s': bad header at byte %zu: ", ps->fn,
                         ps->st->path, (size_t)(ps->p - ps->start));
        if (w >= 0 && (size_t)w < ps->err_size) {
            va_list ap;
            va_start(ap, format);
            vsnprintf(ps->err + w, ps->err_size - (size_t)w, format, ap);
            va_end(ap);
        }
    }
    return AD_ERR_FORMAT;
}

static ad_status no_memory_for_header(const parser *ps)
{
    return ad__error_message(ps->err, ps->err_size, AD_ERR_NOMEM,
                             "%s: '%s': out of memory for the header", ps->fn, ps->st->path);
}

/* A header byte for a message: 'x', or byte 0x00 when not printable. */
static const char *describe(char *buf, unsigned char c)
{
    if (c >= 0x20 && c < 0x7f)
        snprintf(buf, 16, "'%c'", c);
    else
        snprintf(buf, 16, "byte 0x%02x", c);
    return buf;
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

/* Skips whitespace and consumes c. */
static ad_status expect(parser *ps, char c)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return bad(ps, "expected '%c', found the end of the header", c);
    if (*ps->p != (unsigned char)c) {
        char found[16];
        return bad(ps, "expected '%c', found %s", c, describe(found, *ps->p));
    }
    ps->p++;
    return AD_OK;
}

/* Skips whitespace; true (and consumes it) if the next character is c. */
static bool accept(parser *ps, char c)
{
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == (unsigned char)c) {
        ps->p++;
        return true;
    }
    return false;
}

/* ---- Strings ---------------------------------------------------------------- */

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Four hex digits at s (bounds checked by the caller). */
static int32_t hex4(const unsigned char *s)
{
    int32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(s[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The closing quote of the string whose opening quote is at ps->p, or NULL
 * when the header ends first: an escape always takes the next byte along. */
static const unsigned char *string_end(const parser *ps)
{
    const unsigned char *q = ps->p + 1;
    while (q < ps->end && *q != '"') {
        if (*q == '\\' && ps->end - q < 2)
            break;
        q += *q == '\\' ? 2 : 1;
    }
    return q < ps->end && *q == '"' ? q : NULL;
}

/* Decodes the escape at *at (a backslash before close) into buf + *n and
 * moves *at past it; a \u escape of a surrogate needs its pair. */
static ad_status decode_escape(parser *ps, const unsigned char **at, const unsigned char *close,
                               char *buf, size_t *n)
{
    const unsigned char *q = *at;
    unsigned char c = q[1];
    static const char escapes[] = "\"\\/bfnrt", decoded[] = "\"\\/\b\f\n\r\t";
    const char *simple = c ? strchr(escapes, c) : NULL;
    if (simple) {
        buf[(*n)++] = decoded[simple - escapes];
        *at = q + 2;
        return AD_OK;
    }
    char found[16];
    if (c != 'u')
        return bad(ps, "bad escape in string: %s after '\\'", describe(found, c));
    int32_t cp = close - q >= 6 ? hex4(q + 2) : -1;
    if (cp < 0)
        return bad(ps, "bad \\u escape in string");
    q += 6;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return bad(ps, "unpaired low surrogate \\u%04" PRIX32 " in string", (uint32_t)cp);
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        int32_t low = close - q >= 6 && q[0] == '\\' && q[1] == 'u' ? hex4(q + 2) : -1;
        if (low < 0xDC00 || low > 0xDFFF)
            return bad(ps, "unpaired high surrogate \\u%04" PRIX32 " in string", (uint32_t)cp);
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        q += 6;
    }
    *n += utf8_encode((uint32_t)cp, buf + *n);
    *at = q;
    return AD_OK;
}

/* Decodes the raw string text [s, close) into buf, *n bytes. */
static ad_status decode_string(parser *ps, const unsigned char *s, const unsigned char *close,
                               char *buf, size_t *n)
{
    for (const unsigned char *q = s; q < close;) {
        ps->p = q; /* for the byte position in messages */
        if (*q == '\\') {
            ad_status st = decode_escape(ps, &q, close, buf, n);
            if (st != AD_OK)
                return st;
            continue;
        }
        if (*q < 0x20)
            return bad(ps, "control character 0x%02x in string", *q);
        size_t len = ad__utf8_sequence(q, (size_t)(close - q));
        if (!len)
            return bad(ps, "invalid UTF-8 in string");
        memcpy(buf + *n, q, len);
        *n += len;
        q += len;
    }
    return AD_OK;
}

/*
 * A JSON string, decoded into a new NUL-terminated buffer (*out, owned by the
 * caller) of *len bytes. The decoded text is never longer than the raw text,
 * so one allocation of the raw length suffices.
 */
static ad_status parse_string(parser *ps, char **out, size_t *len)
{
    *out = NULL;
    skip_ws(ps);
    char found[16];
    if (ps->p >= ps->end)
        return bad(ps, "expected a string, found the end of the header");
    if (*ps->p != '"')
        return bad(ps, "expected a string, found %s", describe(found, *ps->p));
    const unsigned char *s = ps->p + 1, *close = string_end(ps);
    if (!close)
        return bad(ps, "unterminated string");
    char *buf = ad__malloc((size_t)(close - s) + 1);
    if (!buf)
        return no_memory_for_header(ps);
    size_t n = 0;
    ad_status st = decode_string(ps, s, close, buf, &n);
    if (st != AD_OK) {
        ad__free(buf);
        return st;
    }
    buf[n] = '\0';
    ps->p = close + 1;
    *out = buf;
    *len = n;
    return AD_OK;
}

/* ---- Numbers and entries ------------------------------------------------------ */

/* A non-negative JSON integer (no sign, fraction or exponent) up to INT64_MAX. */
static ad_status parse_count(parser *ps, const char *what, const char *tensor, uint64_t *out)
{
    skip_ws(ps);
    const unsigned char *s = ps->p;
    if (s < ps->end && *s == '-')
        return bad(ps, "tensor '%s': negative %s", tensor, what);
    if (s >= ps->end || *s < '0' || *s > '9')
        return bad(ps, "tensor '%s': %s is not a non-negative integer", tensor, what);
    uint64_t v = 0;
    const unsigned char *q = s;
    for (; q < ps->end && *q >= '0' && *q <= '9'; q++) {
        if (v > ((uint64_t)INT64_MAX - (uint64_t)(*q - '0')) / 10)
            return bad(ps, "tensor '%s': %s is too large", tensor, what);
        v = v * 10 + (uint64_t)(*q - '0');
    }
    if (*s == '0' && q - s > 1)
        return bad(ps, "tensor '%s': %s has a leading zero", tensor, what);
    if (q < ps->end && (*q == '.' || *q == 'e' || *q == 'E'))
        return bad(ps, "tensor '%s': %s is not an integer", tensor, what);
    ps->p = q;
    *out = v;
    return AD_OK;
}

static ad_status push_dim(parser *ps, int64_t dim)
{
    ad_safetensors *st = ps->st;
    if (st->n_shapes == st->cap_shapes) {
        size_t cap = st->cap_shapes ? st->cap_shapes * 2 : 64;
        int64_t *shapes =
            ad__realloc(st->shapes, st->cap_shapes * sizeof *shapes, cap * sizeof *shapes);
        if (!shapes)
            return no_memory_for_header(ps);
        st->shapes = shapes;
        st->cap_shapes = cap;
    }
    st->shapes[st->n_shapes++] = dim;
    return AD_OK;
}

/* The keys of an entry, each required once. */
enum { KEY_DTYPE, KEY_SHAPE, KEY_OFFSETS, N_KEYS };
static const char *const entry_keys[N_KEYS] = {"dtype", "shape", "data_offsets"};

/* Reads a key of e's entry into *which, refusing unknown and repeated keys. */
static ad_status parse_entry_key(parser *ps, const entry *e, bool seen[N_KEYS], int *which)
{
    const unsigned char *key_at = ps->p;
    char *key;
    size_t key_len;
    ad_status s = parse_string(ps, &key, &key_len);
    if (s != AD_OK)
        return s;
    *which = -1;
    for (int k = 0; k < N_KEYS; k++)
        if (key_len == strlen(entry_keys[k]) && strcmp(key, entry_keys[k]) == 0)
            *which = k;
    if (*which < 0 || seen[*which]) {
        ps->p = key_at;
        s = bad(ps, "tensor '%s': %s key \"%s\"", e->name, *which >= 0 ? "duplicate" : "unknown",
                key);
    } else {
        seen[*which] = true;
    }
    ad__free(key);
    return s;
}

static ad_status parse_dtype(parser *ps, entry *e)
{
    const unsigned char *value_at = ps->p;
    char *dtype;
    size_t dtype_len;
    ad_status s = parse_string(ps, &dtype, &dtype_len);
    if (s != AD_OK)
        return s;
    e->dtype = ad__safetensors_dtype_named(dtype, dtype_len);
    if (!e->dtype) {
        ps->p = value_at;
        s = bad(ps, "tensor '%s': unknown dtype \"%s\"", e->name, dtype);
    }
    ad__free(dtype);
    return s;
}

/* [d0, d1, ...]: the dims go to the handle's shape store. */
static ad_status parse_shape(parser *ps, entry *e)
{
    ad_status s = expect(ps, '[');
    if (s != AD_OK)
        return s;
    e->shape_at = ps->st->n_shapes;
    e->ndim = 0;
    if (accept(ps, ']'))
        return AD_OK;
    do {
        uint64_t dim;
        if ((s = parse_count(ps, "dim", e->name, &dim)) != AD_OK ||
            (s = push_dim(ps, (int64_t)dim)) != AD_OK)
            return s;
        if (e->ndim == INT32_MAX)
            return bad(ps, "tensor '%s': too many dims", e->name);
        e->ndim++;
    } while (accept(ps, ','));
    return expect(ps, ']');
}

static ad_status parse_offsets(parser *ps, entry *e)
{
    uint64_t begin, end;
    ad_status s;
    if ((s = expect(ps, '[')) != AD_OK ||
        (s = parse_count(ps, "begin offset", e->name, &begin)) != AD_OK ||
        (s = expect(ps, ',')) != AD_OK ||
        (s = parse_count(ps, "end offset", e->name, &end)) != AD_OK)
        return s;
    if (!accept(ps, ']'))
        return bad(ps, "tensor '%s': data_offsets must be [begin, end]", e->name);
    if (end < begin)
        return bad(ps, "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] end before begin",
                   e->name, begin, end);
    e->begin = begin;
    e->end = end;
    return AD_OK;
}

/* {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}: each key once,
 * nothing else. */
static ad_status parse_entry(parser *ps, entry *e)
{
    bool seen[N_KEYS] = {false};
    ad_status s = expect(ps, '{');
    if (s != AD_OK)
        return s;
    if (accept(ps, '}'))
        return bad(ps, "tensor '%s': empty entry (needs dtype, shape and data_offsets)", e->name);
    do {
        int which;
        if ((s = parse_entry_key(ps, e, seen, &which)) != AD_OK || (s = expect(ps, ':')) != AD_OK)
            return s;
        s = which == KEY_DTYPE   ? parse_dtype(ps, e)
            : which == KEY_SHAPE ? parse_shape(ps, e)
                                 : parse_offsets(ps, e);
        if (s != AD_OK)
            return s;
    } while (accept(ps, ','));
    if ((s = expect(ps, '}')) != AD_OK)
        return s;
    for (int k = 0; k < N_KEYS; k++)
        if (!seen[k])
            return bad(ps, "tensor '%s': entry lacks \"%s\"", e->name, entry_keys[k]);
    return AD_OK;
}

/* ---- Metadata and the top-level object ------------------------------------------ */

typedef struct key_list {
    entry *keys;
    size_t n, cap;
} key_list;

static void key_list_free(key_list *k)
{
    for (size_t i = 0; i < k->n; i++)
        ad__free(k->keys[i].name);
    ad__free(k->keys);
}

/* A zeroed slot after the last key (not yet counted), or NULL. */
static entry *key_list_slot(key_list *k)
{
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 16;
        entry *keys = ad__realloc(k->keys, k->cap * sizeof *keys, cap * sizeof *keys);
        if (!keys)
            return NULL;
        k->keys = keys;
        k->cap = cap;
    }
    memset(&k->keys[k->n], 0, sizeof k->keys[k->n]);
    return &k->keys[k->n];
}

/* "key": "value" pairs of __metadata__; the keys are kept in k. */
static ad_status parse_metadata_pairs(parser *ps, key_list *k)
{
    ad_status s;
    do {
        entry *key = key_list_slot(k);
        if (!key)
            return no_memory_for_header(ps);
        if ((s = parse_string(ps, &key->name, &key->name_len)) != AD_OK)
            return s;
        k->n++;
        if ((s = expect(ps, ':')) != AD_OK)
            return s;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p != '"')
            return bad(ps, "__metadata__ value of \"%s\" is not a string", key->name);
        char *value;
        size_t value_len;
        if ((s = parse_string(ps, &value, &value_len)) != AD_OK)
            return s;
        ad__free(value);
    } while (accept(ps, ','));
    return AD_OK;
}

static ad_status unique_metadata_keys(parser *ps, key_list *k)
{
    entry **sorted = ad__malloc(k->n * sizeof *sorted);
    if (!sorted)
        return no_memory_for_header(ps);
    for (size_t i = 0; i < k->n; i++)
        sorted[i] = &k->keys[i];
    qsort(sorted, k->n, sizeof *sorted, by_name_cmp);
    const entry *twice = first_duplicate(sorted, k->n);
    ad_status s = AD_OK;
    if (twice)
        s = ad__error_message(ps->err, ps->err_size, AD_ERR_FORMAT,
                              "%s: '%s': duplicate __metadata__ key \"%s\"", ps->fn, ps->st->path,
                              twice->name);
    ad__free(sorted);
    return s;
}

/* "__metadata__": null, or an object of string values with unique keys. */
static ad_status parse_metadata(parser *ps)
{
    skip_ws(ps);
    if (ps->end - ps->p >= 4 && memcmp(ps->p, "null", 4) == 0) {
        ps->p += 4;
        return AD_OK;
    }
    ad_status s = expect(ps, '{');
    if (s != AD_OK || accept(ps, '}'))
        return s;
    key_list k = {0};
    s = parse_metadata_pairs(ps, &k);
    if (s == AD_OK)
        s = expect(ps, '}');
    if (s == AD_OK && k.n > 1)
        s = unique_metadata_keys(ps, &k);
    key_list_free(&k);
    return s;
}

/* A new entry named name (owned by it from now on), or NULL. */
static entry *push_entry(ad_safetensors *st, char *name, size_t name_len)
{
    if (st->n_entries == st->cap_entries) {
        size_t cap = st->cap_entries ? st->cap_entries * 2 : 16;
        entry *entries =
            ad__realloc(st->entries, st->cap_entries * sizeof *entries, cap * sizeof *entries);
        if (!entries)
            return NULL;
        st->entries = entries;
        st->cap_entries = cap;
    }
    entry *e = &st->entries[st->n_entries++];
    memset(e, 0, sizeof *e);
    e->name = name;
    e->name_len = name_len;
    return e;
}

/* One member of the top-level object: "__metadata__" or a tensor's entry. */
static ad_status parse_member(parser *ps, bool *seen_metadata)
{
    const unsigned char *key_at = ps->p;
    char *name;
    size_t name_len;
    ad_status s = parse_string(ps, &name, &name_len);
    if (s != AD_OK)
        return s;
    if (name_len == 12 && strcmp(name, "__metadata__") == 0) {
        ad__free(name);
        if (*seen_metadata) {
            ps->p = key_at;
            return bad(ps, "duplicate key \"__metadata__\"");
        }
        *seen_metadata = true;
        if ((s = expect(ps, ':')) != AD_OK)
            return s;
        return parse_metadata(ps);
    }
    entry *e = push_entry(ps->st, name, name_len);
    if (!e) {
        ad__free(name);
        return no_memory_for_header(ps);
    }
    if ((s = expect(ps, ':')) != AD_OK)
        return s;
    return parse_entry(ps, e);
}

static ad_status parse_header(parser *ps)
{
    bool seen_metadata = false;
    ad_status s = expect(ps, '{');
    if (s != AD_OK)
        return s;
    if (!accept(ps, '}')) {
        do {
            if ((s = parse_member(ps, &seen_metadata)) != AD_OK)
                return s;
        } while (accept(ps, ','));
        if ((s = expect(ps, '}')) != AD_OK)
            return s;
    }
    skip_ws(ps);
    if (ps->p != ps->end) {
        char found[16];
        return bad(ps, "unexpected %s after the JSON object", describe(found, *ps->p));
    }
    return AD_OK;
}

/* ---- Entries against each other --------------------------------------------------- */

/* e's element count within the library's bound and its byte length against
 * its data_offsets. Sets e->numel. */
static ad_status check_entry_size(const parser *ps, entry *e)
{
    const int64_t *shape = entry_shape(ps->st, e);
    /* The library's bound on shapes (ad_tensor_create): 2^60 elements,
     * counting each 0 as 1, so that an empty [0, 2^63-1] is refused as
     * no tensor could take it. */
    e->numel = ad__numel(e->ndim, shape);
    if (e->numel < 0)
        return ad__error_message(ps->err, ps->err_size, AD_ERR_FORMAT,
                                 "%s: '%s': tensor '%s': shape product overflows 2^60 "
                                 "elements (each 0 counted as 1)",
                                 ps->fn, ps->st->path, e->name);
    uint64_t bits = (uint64_t)e->dtype->bits;
    if ((uint64_t)e->numel > UINT64_MAX / bits)
        return ad__error_message(ps->err, ps->err_size, AD_ERR_FORMAT,
                                 "%s: '%s': tensor '%s': byte size overflows", ps->fn, ps->st->path,
                                 e->name);
    uint64_t total_bits = (uint64_t)e->numel * bits;
    if (total_bits % 8)
        return ad__error_message(ps->err, ps->err_size, AD_ERR_FORMAT,
                                 "%s: '%s': tensor '%s': %" PRId64
                                 " elements of %s are not whole bytes",
                                 ps->fn, ps->st->path, e->name, e->numel, e->dtype->name);
    if (e->end - e->begin != total_bits / 8) {
        char text[AD__SHAPE_BUF];
        return ad__error_message(ps->err, ps->err_size, AD_ERR_FORMAT,
                                 "%s: '%s': tensor '%s': shape %s of %s needs %" PRIu64
                                 " bytes but data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64,
                                 ps->fn, ps->st->path, e->name, ad__shape_str(text, e->ndim, shape),
                                 e->dtype->name, total_bits / 8, e->begin, e->end,
                                 e->end - e->begin);
    }
    return AD_OK;
}

/* by_offset[0..n) must cover [0, buffer size) exactly, without gaps or
 * overlaps; *size is where the last ends. */
static ad_status check_tiling(const parser *ps, entry *const *by_offset, size_t n, uint64_t *size)
{
    uint64_t at = 0;
    const entry *previous = NULL;
    for (size_t i = 0; i < n; i++) {
        const entry *e = by_offset[i];
        if (e->begin != at) {
            char where[96];
            if (previous)
                snprintf(where, sizeof where, "tensor '%.40s' ends", previous->name);
            else
                snprintf(where, sizeof where, "the buffer starts");
            return ad__error_message(
                ps->err, ps->err_size, AD_ERR_FORMAT,
                "%s: '%s': tensors do not tile the buffer: tensor '%s' begins at byte %" PRIu64
                " but %s at byte %" PRIu64 " (%s)",
                ps->fn, ps->st->path, e->name, e->begin, where, at,
                e->begin > at ? "gap" : "overlap");
        }
        at = e->end;
        previous = e;
    }
    *size = at;
    return AD_OK;
}

/* Entry-level checks once the header parsed: byte lengths, unique names,
 * exact tiling. Sets st->by_name and st->buffer_size. */
static ad_status check_entries(const parser *ps)
{
    ad_safetensors *st = ps->st;
    ad_status s;
    for (size_t i = 0; i < st->n_entries; i++)
        if ((s = check_entry_size(ps, &st->entries[i])) != AD_OK)
            return s;
    st->buffer_size = 0;
    if (!st->n_entries)
        return AD_OK;
    st->by_name = ad__malloc(st->n_entries * sizeof *st->by_name);
    entry **by_offset = ad__malloc(st->n_entries * sizeof *by_offset);
    if (!st->by_name || !by_offset) {
        ad__free(by_offset);
        return no_memory_for_header(ps);
    }
    for (size_t i = 0; i < st->n_entries; i++)
        st->by_name[i] = by_offset[i] = &st->entries[i];
    qsort(st->by_name, st->n_entries, sizeof *st->by_name, by_name_cmp);
    qsort(by_offset, st->n_entries, sizeof *by_offset, by_offset_cmp);
    const entry *twice = first_duplicate(st->by_name, st->n_entries);
    if (twice)
        s = ad__error_message(ps->err, ps->err_size, AD_ERR_FORMAT,
                              "%s: '%s': duplicate tensor name '%s'", ps->fn, st->path,
                              twice->name);
    else
        s = check_tiling(ps, by_offset, st->n_entries, &st->buffer_size);
    ad__free(by_offset);
    return s;
}

/* ---- Opening ---------------------------------------------------------------- */

/* A read that came short: an I/O error if the stream failed, or else the file
 * ended early, described by the message format makes. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static ad_status
short_read(const parser *ps, const char *format, ...)
{
    if (ferror(ps->st->file))
        return ad__error_message(ps->err, ps->err_size, AD_ERR_IO, "%s: cannot read '%s': %s",
                                 ps->fn, ps->st->path, strerror(errno));
    if (ps->err && ps->err_size) {
        va_list ap;
        va_start(ap, format);
        vsnprintf(ps->err, ps->err_size, format, ap);
        va_end(ap);
    }
    return AD_ERR_FORMAT;
}

/* Opens the handle's path, which must be a regular file; *size: its bytes. */
static ad_status open_regular(const parser *ps, uint64_t *size)
{
    ad_safetensors *st = ps->st;
    st->file = fopen(st->path, "rb");
    if (!st->file)
        return ad__error_message(ps->err, ps->err_size, open_status(errno),
                                 "%s: cannot open '%s': %s", ps->fn, st->path, strerror(errno));
    struct stat info;
    if (fstat(fileno(st->file), &info) != 0)
        return ad__error_message(ps->err, ps->err_size, AD_ERR_IO, "%s: cannot stat '%s': %s",
                                 ps->fn, st->path, strerror(errno));
    if (!S_ISREG(info.st_mode))
        return ad__error_message(ps->err, ps->err_size, AD_ERR_IO, "%s: '%s' is not a regular file",
                                 ps->fn, st->path);
    *size = (uint64_t)info.st_size;
    return AD_OK;
}

/* The 8-byte little-endian header length, within the limit and the file. */
static ad_status read_header_length(const parser *ps, uint64_t file_size, uint64_t *length)
{
    const char *path = ps->st->path;
    unsigned char prefix[8];
    size_t got = fread(prefix, 1, 8, ps->st->file);
    if (got != 8)
        return short_read(ps,
                          "%s: '%s' is truncated: %zu bytes, shorter than the 8-byte header length",
                          ps->fn, path, got);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | prefix[i];
    if (n > MAX_HEADER)
        return ad__error_message(ps->err, ps->err_size, AD_ERR_FORMAT,
                                 "%s: '%s': header length %" PRIu64 " exceeds the limit of %" PRIu64
                                 " bytes",
                                 ps->fn, path, n, MAX_HEADER);
    if (file_size < 8 || n > file_size - 8)
        return ad__error_message(ps->err, ps->err_size, AD_ERR_FORMAT,
                                 "%s: '%s': header length %" PRIu64 " exceeds the file (%" PRIu64
                                 " bytes)",
                                 ps->fn, path, n, file_size);
    *length = n;
    return AD_OK;
}

/* The n bytes of header text into *header (the caller frees it). */
static ad_status read_header(const parser *ps, uint64_t n, unsigned char **header)
{
    *header = ad__malloc(n ? (size_t)n : 1);
    if (!*header)
        return ad__error_message(ps->err, ps->err_size, AD_ERR_NOMEM,
                                 "%s: '%s': out of memory for a %" PRIu64 "-byte header", ps->fn,
                                 ps->st->path, n);
    size_t got = fread(*header, 1, (size_t)n, ps->st->file);
    if (got != n)
        return short_read(ps, "%s: '%s' is truncated: header of %" PRIu64 " bytes, found %zu",
                          ps->fn, ps->st->path, n, got);
    return AD_OK;
}

/* The file must end exactly where the buffer the entries tile ends. */
static ad_status check_file_size(const parser *ps, uint64_t file_size, uint64_t header_length)
{
    ad_safetensors *st = ps->st;
    st->data_start = 8 + header_length;
    uint64_t expected = st->data_start + st->buffer_size;
    if (file_size < expected)
        return ad__error_message(
            ps->err, ps->err_size, AD_ERR_FORMAT,
            "%s: '%s' is truncated: expected %" PRIu64 " bytes (8 + header %" PRIu64
            " + data %" PRIu64 "), found %" PRIu64,
            ps->fn, st->path, expected, header_length, st->buffer_size, file_size);
    if (file_size > expected)
        return ad__error_message(ps->err, ps->err_size, AD_ERR_FORMAT,
                                 "%s: '%s': %" PRIu64 " bytes of trailing data after the %" PRIu64
                                 "-byte buffer (expected %" PRIu64 " bytes in all)",
                                 ps->fn, st->path, file_size - expected, st->buffer_size, expected);
    return AD_OK;
}

/* Opens, reads and checks the header, and checks the file against it. */
static ad_status open_file(ad_safetensors **out, const char *fn, const char *path, char *err,
                           size_t err_size)
{
    *out = NULL;
    ad_safetensors *st = ad__calloc(1, sizeof *st);
    if (!st || !(st->path = ad__strdup(path))) {
        ad__free(st);
        return ad__error_message(err, err_size, AD_ERR_NOMEM, "%s: out of memory", fn);
    }
    parser ps = {.st = st, .fn = fn, .err = err, .err_size = err_size};
    uint64_t file_size = 0, length = 0;
    unsigned char *header = NULL;
    ad_status s = open_regular(&ps, &file_size);
    if (s == AD_OK && (s = read_header_length(&ps, file_size, &length)) == AD_OK)
        s = read_header(&ps, length, &header);
    if (s == AD_OK) {
        ps.start = ps.p = header;
        ps.end = header + length;
        s = parse_header(&ps);
    }
    if (s == AD_OK && (s = check_entries(&ps)) == AD_OK)
        s = check_file_size(&ps, file_size, length);
    ad__free(header);
    if (s != AD_OK) {
        ad_safetensors_close(st);
        return s;
    }
    *out = st;
    return AD_OK;
}

ad_status ad_safetensors_open(ad_safetensors **out, const char *path, char *err, size_t err_size)
{
    clear_err(err, err_size);
    if (!out)
        return ad__error_message(err, err_size, AD_ERR_ARG, "ad_safetensors_open: out is NULL");
    *out = NULL;
    if (!path)
        return ad__error_message(err, err_size, AD_ERR_ARG, "ad_safetensors_open: path is NULL");
    return open_file(out, "ad_safetensors_open", path, err, err_size);
}

/* ---- Entries and reads ------------------------------------------------------------ */

size_t ad_safetensors_count(const ad_safetensors *st)
{
    return st ? st->n_entries : 0;
}

bool ad_safetensors_entry_at(const ad_safetensors *st, size_t i, ad_safetensors_entry *out)
{
    if (!st || !out || i >= st->n_entries)
        return false;
    const entry *e = &st->entries[i];
    out->name = e->name;
    out->dtype = e->dtype->name;
    out->ndim = e->ndim;
    out->shape = entry_shape(st, e);
    out->numel = e->numel;
    out->begin = e->begin;
    out->end = e->end;
    out->loadable = e->dtype->loadable;
    out->ad_type = e->dtype->ad_type;
    return true;
}

static const entry *find(const ad_safetensors *st, const char *name)
{
    if (!st || !name || !st->n_entries)
        return NULL;
    entry key = {0};
    key.name = (char *)(uintptr_t)name; /* only compared, never written */
    key.name_len = strlen(name);
    const entry *k = &key;
    entry *const *hit = bsearch(&k, st->by_name, st->n_entries, sizeof *st->by_name, by_name_cmp);
    return hit ? *hit : NULL;
}

int64_t ad_safetensors_find(const ad_safetensors *st, const char *name)
{
    const entry *e = find(st, name);
    return e ? (int64_t)(e - st->entries) : -1;
}

/* Checks that entry `name` exists and fits the persistent tensor t. */
static ad_status check_target(const parser *ps, const char *name, const ad_tensor *t,
                              const entry **found)
{
    const ad_safetensors *st = ps->st;
    const char *fn = ps->fn;
    char *err = ps->err;
    size_t err_size = ps->err_size;
    const entry *e = find(st, name);
    if (!e)
        return ad__error_message(err, err_size, AD_ERR_FORMAT, "%s: tensor '%s' not found in '%s'",
                                 fn, name, st->path);
    if (!e->dtype->loadable)
        return ad__error_message(
            err, err_size, AD_ERR_UNSUPPORTED,
            "%s: '%s': tensor '%s' has dtype %s; only F32 and F64 can be loaded", fn, st->path,
            name, e->dtype->name);
    const ad__safetensors_dtype *want = ad__safetensors_dtype_of(ad_tensor_dtype(t));
    if (want != e->dtype)
        return ad__error_message(
            err, err_size, AD_ERR_DTYPE,
            "%s: '%s': tensor '%s' is %s in the file but the destination is %s", fn, st->path, name,
            e->dtype->name, want ? want->name : ad_dtype_name(ad_tensor_dtype(t)));
    const int64_t *file_shape = entry_shape(st, e), *shape = ad_tensor_shape(t);
    bool same = e->ndim == ad_tensor_ndim(t);
    for (int d = 0; same && d < e->ndim; d++)
        same = file_shape[d] == shape[d];
    if (!same) {
        char expected[AD__SHAPE_BUF], got[AD__SHAPE_BUF];
        return ad__error_message(
            err, err_size, AD_ERR_SHAPE,
            "%s: '%s': tensor '%s': expected shape %s (destination), found %s in the file", fn,
            st->path, name, ad__shape_str(expected, ad_tensor_ndim(t), shape),
            ad__shape_str(got, e->ndim, file_shape));
    }
    *found = e;
    return AD_OK;
}

/* Reads the bytes of e into dst (end - begin bytes), host byte order. */
static ad_status read_entry(const parser *ps, const entry *e, void *dst)
{
    ad_safetensors *st = ps->st;
    size_t bytes = (size_t)(e->end - e->begin);
    if (!bytes)
        return AD_OK;
    uint64_t offset = st->data_start + e->begin;
    if (offset > (uint64_t)INT64_MAX || fseeko(st->file, (off_t)offset, SEEK_SET) != 0)
        return ad__error_message(ps->err, ps->err_size, AD_ERR_IO, "%s: cannot seek in '%s': %s",
                                 ps->fn, st->path, strerror(errno));
    size_t got = fread(dst, 1, bytes, st->file);
    if (got != bytes)
        return short_read(ps, "%s: '%s' is truncated: tensor '%s' needs %zu bytes, found %zu",
                          ps->fn, st->path, e->name, bytes, got);
    if (!host_little_endian()) {
        size_t size = (size_t)e->dtype->bits / 8;
        ad__swap_bytes(dst, bytes / size, size);
    }
    return AD_OK;
}

ad_status ad_safetensors_read(ad_safetensors *st, const char *name, ad_tensor *t, char *err,
                              size_t err_size)
{
    static const char fn[] = "ad_safetensors_read";
    clear_err(err, err_size);
    if (!st || !name)
        return ad__error_message(err, err_size, AD_ERR_ARG, "%s: %s is NULL", fn,
                                 !st ? "handle" : "name");
    if (!persistent(t))
        return ad__error_message(err, err_size, AD_ERR_ARG,
                                 "%s: destination of '%s' is %s, not a persistent tensor", fn, name,
                                 t ? "a tape tensor" : "NULL");
    const parser ps = {.st = st, .fn = fn, .err = err, .err_size = err_size};
    const entry *e;
    ad_status s = check_target(&ps, name, t, &e);
    if (s != AD_OK)
        return s;
    size_t bytes = (size_t)(e->end - e->begin);
    void *tmp = ad__malloc(bytes ? bytes : 1);
    if (!tmp)
        return ad__error_message(err, err_size, AD_ERR_NOMEM,
                                 "%s: out of memory for tensor '%s' (%zu bytes)", fn, name, bytes);
    s = read_entry(&ps, e, tmp);
    if (s == AD_OK && bytes)
        memcpy(ad_tensor_data(t), tmp, bytes);
    ad__free(tmp);
    return s;
}

/* Reads every found[i] into a buffer of its own, data[i] (NULL when empty). */
static ad_status read_all(const parser *ps, size_t n, const char *const *names, const entry **found,
                          void **data)
{
    for (size_t i = 0; i < n; i++) {
        size_t bytes = (size_t)(found[i]->end - found[i]->begin);
        if (!bytes)
            continue;
        data[i] = ad__malloc(bytes);
        if (!data[i])
            return ad__error_message(ps->err, ps->err_size, AD_ERR_NOMEM,
                                     "%s: '%s': out of memory for tensor '%s' (%zu bytes)", ps->fn,
                                     ps->st->path, names[i], bytes);
        ad_status s = read_entry(ps, found[i], data[i]);
        if (s != AD_OK)
            return s;
    }
    return AD_OK;
}

ad_status ad_safetensors_load(const char *path, size_t n, const char *const *names,
                              ad_tensor *const *tensors, char *err, size_t err_size)
{
    static const char fn[] = "ad_safetensors_load";
    clear_err(err, err_size);
    ad_status s = ad__safetensors_check_lists(fn, path, n, names, tensors, true, err, err_size);
    ad_safetensors *st;
    if (s != AD_OK || (s = open_file(&st, fn, path, err, err_size)) != AD_OK)
        return s;
    const entry **found = ad__calloc(n ? n : 1, sizeof *found);
    void **data = ad__calloc(n ? n : 1, sizeof *data);
    if (!found || !data)
        s = ad__error_message(err, err_size, AD_ERR_NOMEM, "%s: '%s': out of memory", fn, path);
    /* Every check first, then every read, then every copy. */
    const parser ps = {.st = st, .fn = fn, .err = err, .err_size = err_size};
    for (size_t i = 0; i < n && s == AD_OK; i++)
        s = check_target(&ps, names[i], tensors[i], &found[i]);
    if (s == AD_OK)
        s = read_all(&ps, n, names, found, data);
    for (size_t i = 0; s == AD_OK && i < n; i++)
        if (data[i])
            memcpy(ad_tensor_data(tensors[i]), data[i], (size_t)(found[i]->end - found[i]->begin));
    for (size_t i = 0; data && i < n; i++)
        ad__free(data[i]);
    ad__free(data);
    ad__free(found);
    ad_safetensors_close(st);
    return s;
}
