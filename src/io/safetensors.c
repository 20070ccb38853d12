/* safetensors checkpoints: a strict reader with its own small JSON parser for
 * the header, and an atomic writer. Uses only the public API,
 * ad__error_message and the process-wide allocator (ad__malloc and friends,
 * so that ad_set_allocator sees every allocation and tests can fail each).
 *
 * Why a dedicated parser: the header is a fixed shape (an object of entries
 * plus an optional "__metadata__"), and the checks that matter (duplicate keys,
 * integers beyond 2^53, exact tiling) are the ones general JSON libraries get
 * wrong or hide. Nothing is trusted: every length is checked against what was
 * actually read, and the destinations are written only after every check. */
#include "../core/util.h"
#include "autodiff/nn.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* As the reference implementation: a larger header is refused unread. */
#define MAX_HEADER ((uint64_t)100000000)

/* ---- Messages ------------------------------------------------------------- */

static void clear_err(char *err, size_t err_size)
{
    if (err && err_size)
        err[0] = '\0';
}

/* "[2,3]"; long shapes end in "...]". */
static const char *shape_text(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t n = 0;
    buf[n++] = '[';
    for (int i = 0; i < ndim; i++) {
        int w = snprintf(buf + n, size - n, "%s%" PRId64, i ? "," : "", shape[i]);
        if (w < 0 || (size_t)w >= size - n - 1) {
            snprintf(buf + (size > 5 ? size - 5 : 1), 5, "...]");
            return buf;
        }
        n += (size_t)w;
    }
    buf[n++] = ']';
    buf[n] = '\0';
    return buf;
}

/* The status of a failed open: fopen and fdopen allocate their FILE, so they
 * can fail for lack of memory (errno ENOMEM), which is not an I/O error. */
static ad_status open_status(int error)
{
    return error == ENOMEM ? AD_ERR_NOMEM : AD_ERR_IO;
}

/* ---- Byte order ----------------------------------------------------------- */

static bool host_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

static void swap_bytes(void *data, size_t count, size_t size)
{
    unsigned char *p = data;
    for (size_t i = 0; i < count; i++, p += size)
        for (size_t a = 0, b = size - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

/* ---- UTF-8 ---------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if invalid:
 * no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
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

static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    while (n) {
        size_t len = utf8_sequence(p, n);
        if (!len)
            return false;
        p += len;
        n -= len;
    }
    return true;
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

/* ---- Dtypes --------------------------------------------------------------- */

/* Every safetensors dtype, so that entries we cannot load are still checked
 * for their byte length. Sizes in bits: F4 and F6 are packed. */
static const struct {
    const char *name;
    int bits;
} dtypes[] = {
    {"F32", 32},    {"F64", 64},    {"BOOL", 8},    {"U8", 8},      {"I8", 8},
    {"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8}, {"I16", 16},    {"U16", 16},
    {"F16", 16},    {"BF16", 16},   {"I32", 32},    {"U32", 32},    {"I64", 64},
    {"U64", 64},    {"C64", 64},    {"F4", 4},      {"F6_E2M3", 6}, {"F6_E3M2", 6},
};
enum { DTYPE_F32 = 0, DTYPE_F64 = 1, N_DTYPES = sizeof dtypes / sizeof dtypes[0] };

static int dtype_find(const char *name, size_t len)
{
    for (int i = 0; i < (int)N_DTYPES; i++)
        if (strlen(dtypes[i].name) == len && memcmp(dtypes[i].name, name, len) == 0)
            return i;
    return -1;
}

/* ---- The open file -------------------------------------------------------- */

typedef struct entry {
    char *name; /* decoded, NUL-terminated (may hold an escaped NUL before name_len) */
    size_t name_len;
    int dtype; /* index into dtypes */
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

/* ---- Header parser -------------------------------------------------------- */

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
    const unsigned char *s = ps->p + 1, *q = s;
    while (q < ps->end && *q != '"') {
        if (*q == '\\' && ps->end - q < 2)
            break;
        q += *q == '\\' ? 2 : 1;
    }
    if (q >= ps->end || *q != '"')
        return bad(ps, "unterminated string");
    const unsigned char *close = q;
    char *buf = ad__malloc((size_t)(close - s) + 1);
    if (!buf)
        return ad__error_message(ps->err, ps->err_size, AD_ERR_NOMEM,
                                 "%s: '%s': out of memory for the header", ps->fn, ps->st->path);
    size_t n = 0;
    for (q = s; q < close;) {
        ps->p = q; /* for the byte position in messages */
        if (*q == '\\') {
            unsigned char c = q[1];
            static const char escapes[] = "\"\\/bfnrt", decoded[] = "\"\\/\b\f\n\r\t";
            const char *simple = c ? strchr(escapes, c) : NULL;
            if (simple) {
                buf[n++] = decoded[simple - escapes];
                q += 2;
                continue;
            }
            if (c != 'u') {
                ad__free(buf);
                return bad(ps, "bad escape in string: %s after '\\'", describe(found, c));
            }
            int32_t cp = close - q >= 6 ? hex4(q + 2) : -1;
            if (cp < 0) {
                ad__free(buf);
                return bad(ps, "bad \\u escape in string");
            }
            q += 6;
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                ad__free(buf);
                return bad(ps, "unpaired low surrogate \\u%04" PRIX32 " in string", (uint32_t)cp);
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                int32_t low = close - q >= 6 && q[0] == '\\' && q[1] == 'u' ? hex4(q + 2) : -1;
                if (low < 0xDC00 || low > 0xDFFF) {
                    ad__free(buf);
                    return bad(ps, "unpaired high surrogate \\u%04" PRIX32 " in string",
                               (uint32_t)cp);
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                q += 6;
            }
            n += utf8_encode((uint32_t)cp, buf + n);
        } else if (*q < 0x20) {
            ad__free(buf);
            return bad(ps, "control character 0x%02x in string", *q);
        } else {
            size_t len_here = utf8_sequence(q, (size_t)(close - q));
            if (!len_here) {
                ad__free(buf);
                return bad(ps, "invalid UTF-8 in string");
            }
            memcpy(buf + n, q, len_here);
            n += len_here;
            q += len_here;
        }
    }
    buf[n] = '\0';
    ps->p = close + 1;
    *out = buf;
    *len = n;
    return AD_OK;
}

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
            return ad__error_message(ps->err, ps->err_size, AD_ERR_NOMEM,
                                     "%s: '%s': out of memory for the header", ps->fn, st->path);
        st->shapes = shapes;
        st->cap_shapes = cap;
    }
    st->shapes[st->n_shapes++] = dim;
    return AD_OK;
}

/* {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}: each key once,
 * nothing else. */
static ad_status parse_entry(parser *ps, entry *e)
{
    ad_status s;
    bool seen_dtype = false, seen_shape = false, seen_offsets = false;
    if ((s = expect(ps, '{')) != AD_OK)
        return s;
    if (accept(ps, '}'))
        return bad(ps, "tensor '%s': empty entry (needs dtype, shape and data_offsets)", e->name);
    do {
        const unsigned char *key_at = ps->p;
        char *key;
        size_t key_len;
        if ((s = parse_string(ps, &key, &key_len)) != AD_OK)
            return s;
        bool *seen = NULL;
        int which = 0;
        if (key_len == 5 && strcmp(key, "dtype") == 0)
            seen = &seen_dtype, which = 1;
        else if (key_len == 5 && strcmp(key, "shape") == 0)
            seen = &seen_shape, which = 2;
        else if (key_len == 12 && strcmp(key, "data_offsets") == 0)
            seen = &seen_offsets, which = 3;
        if (!seen || *seen) {
            ps->p = key_at;
            s = bad(ps, "tensor '%s': %s key \"%s\"", e->name, seen ? "duplicate" : "unknown", key);
            ad__free(key);
            return s;
        }
        ad__free(key);
        *seen = true;
        if ((s = expect(ps, ':')) != AD_OK)
            return s;
        if (which == 1) {
            const unsigned char *value_at = ps->p;
            char *dtype;
            size_t dtype_len;
            if ((s = parse_string(ps, &dtype, &dtype_len)) != AD_OK)
                return s;
            e->dtype = dtype_find(dtype, dtype_len);
            if (e->dtype < 0) {
                ps->p = value_at;
                s = bad(ps, "tensor '%s': unknown dtype \"%s\"", e->name, dtype);
            }
            ad__free(dtype);
            if (s != AD_OK)
                return s;
        } else if (which == 2) {
            if ((s = expect(ps, '[')) != AD_OK)
                return s;
            e->shape_at = ps->st->n_shapes;
            e->ndim = 0;
            if (!accept(ps, ']')) {
                do {
                    uint64_t dim;
                    if ((s = parse_count(ps, "dim", e->name, &dim)) != AD_OK ||
                        (s = push_dim(ps, (int64_t)dim)) != AD_OK)
                        return s;
                    if (e->ndim == INT32_MAX)
                        return bad(ps, "tensor '%s': too many dims", e->name);
                    e->ndim++;
                } while (accept(ps, ','));
                if ((s = expect(ps, ']')) != AD_OK)
                    return s;
            }
        } else {
            uint64_t begin, end;
            if ((s = expect(ps, '[')) != AD_OK ||
                (s = parse_count(ps, "begin offset", e->name, &begin)) != AD_OK ||
                (s = expect(ps, ',')) != AD_OK ||
                (s = parse_count(ps, "end offset", e->name, &end)) != AD_OK)
                return s;
            if (!accept(ps, ']'))
                return bad(ps, "tensor '%s': data_offsets must be [begin, end]", e->name);
            if (end < begin)
                return bad(ps,
                           "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] end before begin",
                           e->name, begin, end);
            e->begin = begin;
            e->end = end;
        }
    } while (accept(ps, ','));
    if ((s = expect(ps, '}')) != AD_OK)
        return s;
    if (!seen_dtype || !seen_shape || !seen_offsets)
        return bad(ps, "tensor '%s': entry lacks \"%s\"", e->name,
                   !seen_dtype   ? "dtype"
                   : !seen_shape ? "shape"
                                 : "data_offsets");
    return AD_OK;
}

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

/* "__metadata__": null, or an object of string values with unique keys. */
static ad_status parse_metadata(parser *ps)
{
    ad_status s = AD_OK;
    skip_ws(ps);
    if (ps->end - ps->p >= 4 && memcmp(ps->p, "null", 4) == 0) {
        ps->p += 4;
        return AD_OK;
    }
    if ((s = expect(ps, '{')) != AD_OK)
        return s;
    if (accept(ps, '}'))
        return AD_OK;
    key_list k = {0};
    do {
        if (k.n == k.cap) {
            size_t cap = k.cap ? k.cap * 2 : 16;
            entry *keys = ad__realloc(k.keys, k.cap * sizeof *keys, cap * sizeof *keys);
            if (!keys) {
                s = ad__error_message(ps->err, ps->err_size, AD_ERR_NOMEM,
                                      "%s: '%s': out of memory for the header", ps->fn,
                                      ps->st->path);
                break;
            }
            k.keys = keys;
            k.cap = cap;
        }
        entry *key = &k.keys[k.n];
        memset(key, 0, sizeof *key);
        if ((s = parse_string(ps, &key->name, &key->name_len)) != AD_OK)
            break;
        k.n++;
        char *value;
        size_t value_len;
        if ((s = expect(ps, ':')) != AD_OK)
            break;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p != '"') {
            s = bad(ps, "__metadata__ value of \"%s\" is not a string", key->name);
            break;
        }
        if ((s = parse_string(ps, &value, &value_len)) != AD_OK)
            break;
        ad__free(value);
    } while (accept(ps, ','));
    if (s == AD_OK)
        s = expect(ps, '}');
    if (s == AD_OK && k.n > 1) {
        entry **sorted = ad__malloc(k.n * sizeof *sorted);
        if (!sorted) {
            s = ad__error_message(ps->err, ps->err_size, AD_ERR_NOMEM,
                                  "%s: '%s': out of memory for the header", ps->fn, ps->st->path);
        } else {
            for (size_t i = 0; i < k.n; i++)
                sorted[i] = &k.keys[i];
            qsort(sorted, k.n, sizeof *sorted, by_name_cmp);
            for (size_t i = 1; i < k.n && s == AD_OK; i++)
                if (name_cmp(sorted[i - 1], sorted[i]) == 0)
                    s = ad__error_message(ps->err, ps->err_size, AD_ERR_FORMAT,
                                          "%s: '%s': duplicate __metadata__ key \"%s\"", ps->fn,
                                          ps->st->path, sorted[i]->name);
            ad__free(sorted);
        }
    }
    key_list_free(&k);
    return s;
}

static ad_status parse_header(parser *ps)
{
    ad_safetensors *st = ps->st;
    bool seen_metadata = false;
    ad_status s = expect(ps, '{');
    if (s != AD_OK)
        return s;
    if (!accept(ps, '}')) {
        do {
            const unsigned char *key_at = ps->p;
            char *name;
            size_t name_len;
            if ((s = parse_string(ps, &name, &name_len)) != AD_OK)
                return s;
            if (name_len == 12 && strcmp(name, "__metadata__") == 0) {
                ad__free(name);
                if (seen_metadata) {
                    ps->p = key_at;
                    return bad(ps, "duplicate key \"__metadata__\"");
                }
                seen_metadata = true;
                if ((s = expect(ps, ':')) != AD_OK || (s = parse_metadata(ps)) != AD_OK)
                    return s;
                continue;
            }
            if (st->n_entries == st->cap_entries) {
                size_t cap = st->cap_entries ? st->cap_entries * 2 : 16;
                entry *entries = ad__realloc(st->entries, st->cap_entries * sizeof *entries,
                                             cap * sizeof *entries);
                if (!entries) {
                    ad__free(name);
                    return ad__error_message(ps->err, ps->err_size, AD_ERR_NOMEM,
                                             "%s: '%s': out of memory for the header", ps->fn,
                                             st->path);
                }
                st->entries = entries;
                st->cap_entries = cap;
            }
            entry *e = &st->entries[st->n_entries++];
            memset(e, 0, sizeof *e);
            e->name = name;
            e->name_len = name_len;
            e->dtype = -1;
            if ((s = expect(ps, ':')) != AD_OK || (s = parse_entry(ps, e)) != AD_OK)
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

/* Entry-level checks once the header parsed: byte lengths, unique names,
 * exact tiling. Sets st->buffer_size. */
static ad_status check_entries(ad_safetensors *st, const char *fn, char *err, size_t err_size)
{
    for (size_t i = 0; i < st->n_entries; i++) {
        entry *e = &st->entries[i];
        const int64_t *shape = entry_shape(st, e);
        bool zero = false;
        for (int d = 0; d < e->ndim; d++)
            zero |= shape[d] == 0;
        /* The library's bound on shapes (ad_tensor_create): 2^60 elements,
         * counting each 0 as 1, so that an empty [0, 2^63-1] is refused as
         * no tensor could take it. */
        int64_t span = 1;
        for (int d = 0; d < e->ndim; d++) {
            int64_t dim = shape[d] ? shape[d] : 1;
            if (span > ((int64_t)1 << 60) / dim)
                return ad__error_message(err, err_size, AD_ERR_FORMAT,
                                         "%s: '%s': tensor '%s': shape product overflows 2^60 "
                                         "elements (each 0 counted as 1)",
                                         fn, st->path, e->name);
            span *= dim;
        }
        e->numel = zero ? 0 : span;
        uint64_t bits = (uint64_t)dtypes[e->dtype].bits;
        if ((uint64_t)e->numel > UINT64_MAX / bits)
            return ad__error_message(err, err_size, AD_ERR_FORMAT,
                                     "%s: '%s': tensor '%s': byte size overflows", fn, st->path,
                                     e->name);
        uint64_t total_bits = (uint64_t)e->numel * bits;
        if (total_bits % 8)
            return ad__error_message(err, err_size, AD_ERR_FORMAT,
                                     "%s: '%s': tensor '%s': %" PRId64
                                     " elements of %s are not whole bytes",
                                     fn, st->path, e->name, e->numel, dtypes[e->dtype].name);
        if (e->end - e->begin != total_bits / 8) {
            char buf[128];
            return ad__error_message(
                err, err_size, AD_ERR_FORMAT,
                "%s: '%s': tensor '%s': shape %s of %s needs %" PRIu64
                " bytes but data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64,
                fn, st->path, e->name, shape_text(buf, sizeof buf, e->ndim, shape),
                dtypes[e->dtype].name, total_bits / 8, e->begin, e->end, e->end - e->begin);
        }
    }
    if (!st->n_entries) {
        st->buffer_size = 0;
        return AD_OK;
    }
    st->by_name = ad__malloc(st->n_entries * sizeof *st->by_name);
    entry **by_offset = ad__malloc(st->n_entries * sizeof *by_offset);
    if (!st->by_name || !by_offset) {
        ad__free(by_offset);
        return ad__error_message(err, err_size, AD_ERR_NOMEM,
                                 "%s: '%s': out of memory for the header", fn, st->path);
    }
    for (size_t i = 0; i < st->n_entries; i++)
        st->by_name[i] = by_offset[i] = &st->entries[i];
    qsort(st->by_name, st->n_entries, sizeof *st->by_name, by_name_cmp);
    qsort(by_offset, st->n_entries, sizeof *by_offset, by_offset_cmp);
    ad_status s = AD_OK;
    for (size_t i = 1; i < st->n_entries && s == AD_OK; i++)
        if (name_cmp(st->by_name[i - 1], st->by_name[i]) == 0)
            s = ad__error_message(err, err_size, AD_ERR_FORMAT,
                                  "%s: '%s': duplicate tensor name '%s'", fn, st->path,
                                  st->by_name[i]->name);
    uint64_t at = 0;
    const entry *previous = NULL;
    for (size_t i = 0; i < st->n_entries && s == AD_OK; i++) {
        const entry *e = by_offset[i];
        if (e->begin != at) {
            char where[96];
            if (previous)
                snprintf(where, sizeof where, "tensor '%.40s' ends", previous->name);
            else
                snprintf(where, sizeof where, "the buffer starts");
            s = ad__error_message(
                err, err_size, AD_ERR_FORMAT,
                "%s: '%s': tensors do not tile the buffer: tensor '%s' begins at byte %" PRIu64
                " but %s at byte %" PRIu64 " (%s)",
                fn, st->path, e->name, e->begin, where, at, e->begin > at ? "gap" : "overlap");
        }
        at = e->end;
        previous = e;
    }
    ad__free(by_offset);
    st->buffer_size = at;
    return s;
}

static ad_status open_file(ad_safetensors **out, const char *fn, const char *path, char *err,
                           size_t err_size)
{
    *out = NULL;
    ad_safetensors *st = ad__calloc(1, sizeof *st);
    if (!st)
        return ad__error_message(err, err_size, AD_ERR_NOMEM, "%s: out of memory", fn);
    st->path = ad__strdup(path);
    if (!st->path) {
        ad__free(st);
        return ad__error_message(err, err_size, AD_ERR_NOMEM, "%s: out of memory", fn);
    }
    ad_status s = AD_OK;
    unsigned char *header = NULL;
    st->file = fopen(path, "rb");
    struct stat info;
    if (!st->file) {
        s = ad__error_message(err, err_size, open_status(errno), "%s: cannot open '%s': %s", fn,
                              path, strerror(errno));
        goto done;
    }
    if (fstat(fileno(st->file), &info) != 0) {
        s = ad__error_message(err, err_size, AD_ERR_IO, "%s: cannot stat '%s': %s", fn, path,
                              strerror(errno));
        goto done;
    }
    if (!S_ISREG(info.st_mode)) {
        s = ad__error_message(err, err_size, AD_ERR_IO, "%s: '%s' is not a regular file", fn, path);
        goto done;
    }
    uint64_t file_size = (uint64_t)info.st_size;
    unsigned char prefix[8];
    size_t got = fread(prefix, 1, 8, st->file);
    if (got != 8) {
        s = ferror(st->file)
                ? ad__error_message(err, err_size, AD_ERR_IO, "%s: cannot read '%s': %s", fn, path,
                                    strerror(errno))
                : ad__error_message(
                      err, err_size, AD_ERR_FORMAT,
                      "%s: '%s' is truncated: %zu bytes, shorter than the 8-byte header length", fn,
                      path, got);
        goto done;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | prefix[i];
    if (n > MAX_HEADER) {
        s = ad__error_message(err, err_size, AD_ERR_FORMAT,
                              "%s: '%s': header length %" PRIu64 " exceeds the limit of %" PRIu64
                              " bytes",
                              fn, path, n, MAX_HEADER);
        goto done;
    }
    if (file_size < 8 || n > file_size - 8) {
        s = ad__error_message(err, err_size, AD_ERR_FORMAT,
                              "%s: '%s': header length %" PRIu64 " exceeds the file (%" PRIu64
                              " bytes)",
                              fn, path, n, file_size);
        goto done;
    }
    header = ad__malloc(n ? (size_t)n : 1);
    if (!header) {
        s = ad__error_message(err, err_size, AD_ERR_NOMEM,
                              "%s: '%s': out of memory for a %" PRIu64 "-byte header", fn, path, n);
        goto done;
    }
    got = fread(header, 1, (size_t)n, st->file);
    if (got != n) {
        s = ferror(st->file)
                ? ad__error_message(err, err_size, AD_ERR_IO, "%s: cannot read '%s': %s", fn, path,
                                    strerror(errno))
                : ad__error_message(err, err_size, AD_ERR_FORMAT,
                                    "%s: '%s' is truncated: header of %" PRIu64 " bytes, found %zu",
                                    fn, path, n, got);
        goto done;
    }
    parser ps = {header, header, header + n, st, fn, err, err_size};
    if ((s = parse_header(&ps)) != AD_OK || (s = check_entries(st, fn, err, err_size)) != AD_OK)
        goto done;
    st->data_start = 8 + n;
    uint64_t expected = st->data_start + st->buffer_size;
    if (file_size < expected) {
        s = ad__error_message(err, err_size, AD_ERR_FORMAT,
                              "%s: '%s' is truncated: expected %" PRIu64
                              " bytes (8 + header %" PRIu64 " + data %" PRIu64 "), found %" PRIu64,
                              fn, path, expected, n, st->buffer_size, file_size);
        goto done;
    }
    if (file_size > expected) {
        s = ad__error_message(err, err_size, AD_ERR_FORMAT,
                              "%s: '%s': %" PRIu64 " bytes of trailing data after the %" PRIu64
                              "-byte buffer "
                              "(expected %" PRIu64 " bytes in all)",
                              fn, path, file_size - expected, st->buffer_size, expected);
        goto done;
    }
done:
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
    out->dtype = dtypes[e->dtype].name;
    out->ndim = e->ndim;
    out->shape = entry_shape(st, e);
    out->numel = e->numel;
    out->begin = e->begin;
    out->end = e->end;
    out->loadable = e->dtype == DTYPE_F32 || e->dtype == DTYPE_F64;
    out->ad_type = e->dtype == DTYPE_F64 ? AD_F64 : AD_F32;
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
static ad_status check_target(const ad_safetensors *st, const char *fn, const char *name,
                              const ad_tensor *t, const entry **found, char *err, size_t err_size)
{
    const entry *e = find(st, name);
    if (!e)
        return ad__error_message(err, err_size, AD_ERR_FORMAT, "%s: tensor '%s' not found in '%s'",
                                 fn, name, st->path);
    if (e->dtype != DTYPE_F32 && e->dtype != DTYPE_F64)
        return ad__error_message(
            err, err_size, AD_ERR_UNSUPPORTED,
            "%s: '%s': tensor '%s' has dtype %s; only F32 and F64 can be loaded", fn, st->path,
            name, dtypes[e->dtype].name);
    ad_dtype have = e->dtype == DTYPE_F64 ? AD_F64 : AD_F32;
    if (ad_tensor_dtype(t) != have)
        return ad__error_message(
            err, err_size, AD_ERR_DTYPE,
            "%s: '%s': tensor '%s' is %s in the file but the destination is %s", fn, st->path, name,
            dtypes[e->dtype].name, ad_tensor_dtype(t) == AD_F64 ? "F64" : "F32");
    const int64_t *file_shape = entry_shape(st, e);
    const int64_t *shape = ad_tensor_shape(t);
    bool same = e->ndim == ad_tensor_ndim(t);
    for (int d = 0; same && d < e->ndim; d++)
        same = file_shape[d] == shape[d];
    if (!same) {
        char want[128], got[128];
        return ad__error_message(
            err, err_size, AD_ERR_SHAPE,
            "%s: '%s': tensor '%s': expected shape %s (destination), found %s in the file", fn,
            st->path, name, shape_text(want, sizeof want, ad_tensor_ndim(t), shape),
            shape_text(got, sizeof got, e->ndim, file_shape));
    }
    *found = e;
    return AD_OK;
}

/* Reads the bytes of e into dst (end - begin bytes), host byte order. */
static ad_status read_entry(ad_safetensors *st, const char *fn, const entry *e, void *dst,
                            char *err, size_t err_size)
{
    size_t bytes = (size_t)(e->end - e->begin);
    if (!bytes)
        return AD_OK;
    uint64_t offset = st->data_start + e->begin;
    if (offset > (uint64_t)INT64_MAX || fseeko(st->file, (off_t)offset, SEEK_SET) != 0)
        return ad__error_message(err, err_size, AD_ERR_IO, "%s: cannot seek in '%s': %s", fn,
                                 st->path, strerror(errno));
    size_t got = fread(dst, 1, bytes, st->file);
    if (got != bytes)
        return ferror(st->file)
                   ? ad__error_message(err, err_size, AD_ERR_IO, "%s: cannot read '%s': %s", fn,
                                       st->path, strerror(errno))
                   : ad__error_message(
                         err, err_size, AD_ERR_FORMAT,
                         "%s: '%s' is truncated: tensor '%s' needs %zu bytes, found %zu", fn,
                         st->path, e->name, bytes, got);
    if (!host_little_endian()) {
        size_t size = (size_t)dtypes[e->dtype].bits / 8;
        swap_bytes(dst, bytes / size, size);
    }
    return AD_OK;
}

static bool persistent(const ad_tensor *t)
{
    return t && !ad_tensor_tape(t) && ad_tensor_data(t);
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
    const entry *e;
    ad_status s = check_target(st, fn, name, t, &e, err, err_size);
    if (s != AD_OK)
        return s;
    size_t bytes = (size_t)(e->end - e->begin);
    void *tmp = ad__malloc(bytes ? bytes : 1);
    if (!tmp)
        return ad__error_message(err, err_size, AD_ERR_NOMEM,
                                 "%s: out of memory for tensor '%s' (%zu bytes)", fn, name, bytes);
    s = read_entry(st, fn, e, tmp, err, err_size);
    if (s == AD_OK && bytes)
        memcpy(ad_tensor_data(t), tmp, bytes);
    ad__free(tmp);
    return s;
}

/* Checks names[] and tensors[] of a save or load. */
static ad_status check_lists(const char *fn, const char *path, size_t n, const char *const *names,
                             ad_tensor *const *tensors, bool need_persistent, char *err,
                             size_t err_size)
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

ad_status ad_safetensors_load(const char *path, size_t n, const char *const *names,
                              ad_tensor *const *tensors, char *err, size_t err_size)
{
    static const char fn[] = "ad_safetensors_load";
    clear_err(err, err_size);
    ad_status s = check_lists(fn, path, n, names, tensors, true, err, err_size);
    if (s != AD_OK)
        return s;
    ad_safetensors *st;
    if ((s = open_file(&st, fn, path, err, err_size)) != AD_OK)
        return s;
    const entry **found = ad__calloc(n ? n : 1, sizeof *found);
    void **data = ad__calloc(n ? n : 1, sizeof *data);
    if (!found || !data)
        s = ad__error_message(err, err_size, AD_ERR_NOMEM, "%s: '%s': out of memory", fn, path);
    /* Every check first, then every read, then every copy. */
    for (size_t i = 0; i < n && s == AD_OK; i++)
        s = check_target(st, fn, names[i], tensors[i], &found[i], err, err_size);
    for (size_t i = 0; i < n && s == AD_OK; i++) {
        size_t bytes = (size_t)(found[i]->end - found[i]->begin);
        if (!bytes)
            continue;
        data[i] = ad__malloc(bytes);
        if (!data[i])
            s = ad__error_message(err, err_size, AD_ERR_NOMEM,
                                  "%s: '%s': out of memory for tensor '%s' (%zu bytes)", fn, path,
                                  names[i], bytes);
        else
            s = read_entry(st, fn, found[i], data[i], err, err_size);
    }
    if (s == AD_OK)
        for (size_t i = 0; i < n; i++)
            if (data[i])
                memcpy(ad_tensor_data(tensors[i]), data[i],
                       (size_t)(found[i]->end - found[i]->begin));
    if (data)
        for (size_t i = 0; i < n; i++)
            ad__free(data[i]);
    ad__free(data);
    ad__free(found);
    ad_safetensors_close(st);
    return s;
}

/* ---- Writer --------------------------------------------------------------- */

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

static int cstr_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

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
        swap_bytes(chunk, m, size);
        if (fwrite(chunk, size, m, f) != m)
            return false;
        p += m * size;
        count -= m;
    }
    return true;
}

ad_status ad_safetensors_save(const char *path, size_t n, const char *const *names,
                              ad_tensor *const *tensors, char *err, size_t err_size)
{
    static const char fn[] = "ad_safetensors_save";
    clear_err(err, err_size);
    ad_status s = check_lists(fn, path, n, names, tensors, false, err, err_size);
    if (s != AD_OK)
        return s;
    for (size_t i = 0; i < n; i++) {
        if (!utf8_valid(names[i]))
            return ad__error_message(err, err_size, AD_ERR_ARG,
                                     "%s: '%s': names[%zu] is not valid UTF-8", fn, path, i);
        if (strcmp(names[i], "__metadata__") == 0)
            return ad__error_message(
                err, err_size, AD_ERR_ARG,
                "%s: '%s': \"__metadata__\" is reserved and cannot name a tensor", fn, path);
        ad_dtype dt = ad_tensor_dtype(tensors[i]);
        if ((dt != AD_F32 && dt != AD_F64) || !ad_tensor_data(tensors[i]))
            return ad__error_message(err, err_size, AD_ERR_DTYPE,
                                     "%s: '%s': tensor '%s' is not F32/F64", fn, path, names[i]);
    }
    uint64_t *begin = ad__malloc((n ? n : 1) * sizeof *begin);
    const char **sorted = ad__malloc((n ? n : 1) * sizeof *sorted);
    text h = {0};
    char *tmp_path = NULL;
    FILE *f = NULL;
    bool created = false;
    if (!begin || !sorted) {
        s = ad__error_message(err, err_size, AD_ERR_NOMEM, "%s: '%s': out of memory", fn, path);
        goto done;
    }
    if (n) {
        memcpy(sorted, names, n * sizeof *sorted);
        qsort(sorted, n, sizeof *sorted, cstr_cmp);
        for (size_t i = 1; i < n; i++)
            if (strcmp(sorted[i - 1], sorted[i]) == 0) {
                s = ad__error_message(err, err_size, AD_ERR_ARG,
                                      "%s: '%s': tensor name '%s' given twice", fn, path,
                                      sorted[i]);
                goto done;
            }
    }
    /* Layout: float64 tensors first, then float32, so each stays aligned. */
    uint64_t at = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++)
            if (ad_tensor_dtype(tensors[i]) == (pass == 0 ? AD_F64 : AD_F32)) {
                begin[i] = at;
                at += (uint64_t)ad_tensor_numel(tensors[i]) *
                      ad_dtype_size(ad_tensor_dtype(tensors[i]));
            }
    puts_text(&h, "{");
    for (size_t i = 0; i < n; i++) {
        ad_tensor *t = tensors[i];
        uint64_t bytes = (uint64_t)ad_tensor_numel(t) * ad_dtype_size(ad_tensor_dtype(t));
        if (i)
            puts_text(&h, ",");
        put_json_string(&h, names[i]);
        puts_text(&h, ad_tensor_dtype(t) == AD_F64 ? ":{\"dtype\":\"F64\",\"shape\":["
                                                   : ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < ad_tensor_ndim(t); d++) {
            if (d)
                puts_text(&h, ",");
            put_u64(&h, (uint64_t)ad_tensor_shape(t)[d]);
        }
        puts_text(&h, "],\"data_offsets\":[");
        put_u64(&h, begin[i]);
        puts_text(&h, ",");
        put_u64(&h, begin[i] + bytes);
        puts_text(&h, "]}");
    }
    puts_text(&h, "}");
    while (!h.nomem && h.len % 8)
        puts_text(&h, " ");
    if (h.nomem) {
        s = ad__error_message(err, err_size, AD_ERR_NOMEM, "%s: '%s': out of memory for the header",
                              fn, path);
        goto done;
    }

    /* Write next to path and rename over it: a failed save keeps the old file. */
    size_t path_len = strlen(path);
    tmp_path = ad__malloc(path_len + 8);
    if (!tmp_path) {
        s = ad__error_message(err, err_size, AD_ERR_NOMEM, "%s: '%s': out of memory", fn, path);
        goto done;
    }
    memcpy(tmp_path, path, path_len);
    memcpy(tmp_path + path_len, ".XXXXXX", 8);
    int fd = mkstemp(tmp_path);
    if (fd < 0) {
        s = ad__error_message(err, err_size, open_status(errno),
                              "%s: cannot create a temporary file for '%s': %s", fn, path,
                              strerror(errno));
        goto done;
    }
    created = true;
    f = fdopen(fd, "wb");
    if (!f) {
        s = ad__error_message(err, err_size, open_status(errno), "%s: cannot write '%s': %s", fn,
                              tmp_path, strerror(errno));
        close(fd);
        goto done;
    }
    unsigned char prefix[8];
    for (int i = 0; i < 8; i++)
        prefix[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    bool ok =
        fchmod(fd, 0644) == 0 && fwrite(prefix, 1, 8, f) == 8 && fwrite(h.d, 1, h.len, f) == h.len;
    for (int pass = 0; pass < 2 && ok; pass++)
        for (size_t i = 0; i < n && ok; i++) {
            ad_dtype dt = ad_tensor_dtype(tensors[i]);
            if (dt == (pass == 0 ? AD_F64 : AD_F32))
                ok = write_le(f, ad_tensor_data(tensors[i]), (size_t)ad_tensor_numel(tensors[i]),
                              ad_dtype_size(dt));
        }
    ok = ok && fflush(f) == 0 && fsync(fd) == 0;
    int saved = errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        saved = errno;
    }
    f = NULL;
    if (!ok) {
        s = ad__error_message(err, err_size, AD_ERR_IO, "%s: cannot write '%s': %s", fn, tmp_path,
                              strerror(saved));
        goto done;
    }
    if (rename(tmp_path, path) != 0) {
        s = ad__error_message(err, err_size, AD_ERR_IO, "%s: cannot rename '%s' to '%s': %s", fn,
                              tmp_path, path, strerror(errno));
        goto done;
    }
    created = false;
done:
    if (created)
        remove(tmp_path);
    ad__free(tmp_path);
    ad__free(h.d);
    ad__free(sorted);
    ad__free(begin);
    return s;
}
