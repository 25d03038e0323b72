/* jsontok.c — a validating JSON tokenizer for hot paths (see jsontok.h).
 *
 * The input is untrusted bytes from the network. The rules are jansson's (the reference:
 * a text is accepted here exactly when sl__json_parse accepts it; fuzz_jsontok checks
 * it), nesting is capped before anything is pushed, the token array grows geometrically
 * and is kept between texts, and nothing here aborts. */
#include "base/jsontok.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/jsonw.h"

#define DEPTH_CAP 1024 /* the stack below; callers ask for far less */

void sl__jtoks_init(sl_jtoks *t)
{
    memset(t, 0, sizeof *t);
}

void sl__jtoks_free(sl_jtoks *t)
{
    free(t->v);
    memset(t, 0, sizeof *t);
}

/* Bytes that end the fast loop of a string: '"', '\\', controls and non-ASCII. */
static int special(unsigned char c)
{
    return (unsigned char)(c - 0x20) >= 0x60 || c == '"' || c == '\\';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Four hex digits at u[i]; -1 if not there. */
static long hex4(const unsigned char *u, size_t n, size_t i)
{
    if (i > n || n - i < 4)
        return -1;
    long v = 0;
    for (int k = 0; k < 4; k++) {
        int d = hex(u[i + k]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Length of the valid UTF-8 sequence at u[i] (2 to 4 bytes), or 0: no overlong forms,
 * no surrogates, nothing above U+10FFFF. */
static size_t utf8_len(const unsigned char *u, size_t n, size_t i)
{
    unsigned c = u[i];
    size_t k;
    unsigned long cp;
    if (c < 0xc2)
        return 0;
    if (c < 0xe0) {
        k = 2, cp = c & 0x1f;
    } else if (c < 0xf0) {
        k = 3, cp = c & 0x0f;
    } else if (c < 0xf5) {
        k = 4, cp = c & 0x07;
    } else {
        return 0;
    }
    if (n - i < k)
        return 0;
    for (size_t j = 1; j < k; j++) {
        if ((u[i + j] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (u[i + j] & 0x3f);
    }
    if ((k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return k;
}

/* The index of the first special byte at or after u[i] (n if none). Eight bytes at a
 * time where it can: a byte's high bit in the word below is set when the byte is below
 * 0x20, '"', '\\' or 0x80 and above; a borrow can only carry into a byte after one that
 * is itself special, so the lowest flagged byte is the first special one. */
static inline size_t plain_run(const unsigned char *u, size_t n, size_t i)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    while (n - i >= 8) {
        uint64_t x;
        memcpy(&x, u + i, 8);
        uint64_t f =
            (x - ones * 0x20) | ((x ^ (ones * '"')) - ones) | ((x ^ (ones * '\\')) - ones) | x;
        f &= high;
        if (f)
            return i + ((size_t)__builtin_ctzll(f) >> 3);
        i += 8;
    }
#endif
    while (i < n && !special(u[i]))
        i++;
    return i;
}

/* The string whose opening quote is at s[i]: *end is just past its closing quote. *esc
 * says it has escapes, *nul that one of them is \u0000. */
static int scan_string(const char *s, size_t n, size_t i, size_t *end, int *esc, int *nul)
{
    const unsigned char *u = (const unsigned char *)s;
    i++;
    for (;;) {
        i = plain_run(u, n, i);
        if (i >= n)
            return SL_EPARSE;
        unsigned c = u[i];
        if (c == '"') {
            *end = i + 1;
            return 0;
        }
        if (c < 0x20)
            return SL_EPARSE;
        if (c != '\\') {
            size_t k = utf8_len(u, n, i);
            if (!k)
                return SL_EPARSE;
            i += k;
            continue;
        }
        *esc = 1;
        if (i + 1 >= n)
            return SL_EPARSE;
        c = u[i + 1];
        if (c != 'u') {
            if (!memchr("\"\\/bfnrt", (int)c, 8))
                return SL_EPARSE;
            i += 2;
            continue;
        }
        long cp = hex4(u, n, i + 2);
        if (cp < 0)
            return SL_EPARSE;
        i += 6;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            /* a high surrogate: its low half must follow at once */
            if (n - i < 2 || u[i] != '\\' || u[i + 1] != 'u')
                return SL_EPARSE;
            long lo = hex4(u, n, i + 2);
            if (lo < 0xdc00 || lo > 0xdfff)
                return SL_EPARSE;
            i += 6;
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            return SL_EPARSE;
        } else if (cp == 0) {
            *nul = 1;
        }
    }
}

/* strtod's verdict on a real that may overflow, read the way jansson reads it (its '.'
 * replaced by the locale's decimal point). Rare: only reals near 1e308. */
static int real_overflows(const char *s, size_t n)
{
    char *tmp = malloc(n + 1);
    if (!tmp)
        return SL_ENOMEM;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    const char *point = localeconv()->decimal_point;
    char *dot = memchr(tmp, '.', n);
    if (dot && point && *point)
        *dot = *point;
    errno = 0;
    double v = strtod(tmp, NULL);
    free(tmp);
    return (v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE;
}

/* The number at s[i]: *end just past it, *real set for a real. Rejects what jansson does:
 * leading zeros, a missing digit, an integer outside long long, a real that overflows. */
static int scan_number(const char *s, size_t n, size_t i, size_t *end, int *real)
{
    size_t st = i;
    if (s[i] == '-')
        i++;
    size_t is = i;
    if (i < n && s[i] == '0') {
        i++;
        if (i < n && is_digit(s[i]))
            return SL_EPARSE;
    } else if (i < n && is_digit(s[i])) {
        while (i < n && is_digit(s[i]))
            i++;
    } else {
        return SL_EPARSE;
    }
    size_t int_digits = i - is;
    size_t fs = i, fe = i;
    long long exp = 0;
    *real = 0;
    if (i < n && s[i] == '.') {
        *real = 1;
        fs = ++i;
        if (i >= n || !is_digit(s[i]))
            return SL_EPARSE;
        while (i < n && is_digit(s[i]))
            i++;
        fe = i;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        *real = 1;
        i++;
        int neg = 0;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            neg = s[i++] == '-';
        if (i >= n || !is_digit(s[i]))
            return SL_EPARSE;
        while (i < n && is_digit(s[i])) {
            if (exp < 1000000000000LL)
                exp = exp * 10 + (s[i] - '0');
            i++;
        }
        if (neg)
            exp = -exp;
    }
    *end = i;
    if (!*real) {
        if (int_digits < 19)
            return 0;
        if (int_digits > 19)
            return SL_EPARSE;
        const char *lim = s[st] == '-' ? "9223372036854775808" : "9223372036854775807";
        return memcmp(s + is, lim, 19) > 0 ? SL_EPARSE : 0;
    }
    /* The value is 0.d... x 10^e10 with d the first non-zero digit: below 1e308 it cannot
     * overflow, from 1e309 on it does; in between strtod decides. */
    long long pos;
    if (!(int_digits == 1 && s[is] == '0')) {
        pos = (long long)int_digits;
    } else {
        size_t z = fs;
        while (z < fe && s[z] == '0')
            z++;
        if (z == fe)
            return 0; /* zero */
        pos = -(long long)(z - fs);
    }
    long long e10 = pos + exp;
    if (e10 < 309)
        return 0;
    if (e10 > 309)
        return SL_EPARSE;
    int rc = real_overflows(s + st, i - st);
    return rc < 0 ? rc : rc ? SL_EPARSE : 0;
}

static inline size_t skip_ws(const char *s, size_t n, size_t i)
{
    if (i < n && (unsigned char)s[i] > ' ')
        return i; /* the usual case: compact JSON */
    while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t'))
        i++;
    return i;
}

/* The usual string: plain bytes up to its closing quote. The end (just past the quote),
 * or 0 when it has an escape, a control or non-ASCII byte, or no end: then scan_string
 * decides. */
static inline size_t quick_string(const char *s, size_t n, size_t i)
{
    size_t j = plain_run((const unsigned char *)s, n, i + 1);
    return j < n && s[j] == '"' ? j + 1 : 0;
}

/* Room for one more token. */
static __attribute__((noinline)) int grow(sl_jtoks *t)
{
    if (t->cap >= UINT32_MAX / 2)
        return SL_ELIMIT;
    uint32_t cap = t->cap ? t->cap * 2 : 32;
    sl_jtok *v = realloc(t->v, (size_t)cap * sizeof *v);
    if (!v)
        return SL_ENOMEM;
    t->v = v;
    t->cap = cap;
    return 0;
}

/* The tokenizer, for sl__jtok_parse (store: tokens into t) and sl__jtok_check (no t:
 * only the verdict). Inlined into both, so the checker carries no token code. */
static inline __attribute__((always_inline)) int tokenize(sl_jtoks *t, const char *p, size_t n,
                                                          int max_depth, const int store)
{
    uint32_t stack[DEPTH_CAP]; /* the open containers' tokens (store only) */
    uint8_t is_obj[DEPTH_CAP]; /* and whether each is an object */
    int depth = 0, rc;
    uint32_t k = 0;
    if (n >= UINT32_MAX)
        return SL_ELIMIT;
    if (max_depth <= 0)
        max_depth = SL_JSON_MAX_DEPTH;
    if (max_depth > DEPTH_CAP)
        max_depth = DEPTH_CAP;
/* A new token of type ty at i; k is its index. */
#define PUSH(ty)                                                                                   \
    do {                                                                                           \
        if (store) {                                                                               \
            if (t->n == t->cap && (rc = grow(t)))                                                  \
                return rc;                                                                         \
            k = t->n++;                                                                            \
            t->v[k] = (sl_jtok){.type = (ty), .start = (uint32_t)i};                               \
        }                                                                                          \
    } while (0)
/* Token tk ends just before byte e. */
#define CLOSE(tk, e)                                                                               \
    do {                                                                                           \
        if (store) {                                                                               \
            t->v[tk].len = (uint32_t)((e)-t->v[tk].start);                                         \
            t->v[tk].next = t->n;                                                                  \
        }                                                                                          \
    } while (0)
    size_t i = skip_ws(p, n, 0), end;
    for (;;) {
        /* a value starts at i */
        if (i >= n)
            return SL_EPARSE;
        char c = p[i];
        int scalar = 1; /* a number or a literal: see the NUL quirk below */
        if (c == '"') {
            int esc = 0, nul = 0;
            PUSH(SL_JTOK_STRING);
            if (!(end = quick_string(p, n, i)) && (rc = scan_string(p, n, i, &end, &esc, &nul)))
                return rc;
            if (store)
                t->v[k].esc = (uint8_t)esc;
            CLOSE(k, end);
            i = end;
            scalar = 0;
        } else if (c == '{' || c == '[') {
            if (depth >= max_depth)
                return SL_ELIMIT;
            int obj = c == '{';
            PUSH(obj ? SL_JTOK_OBJECT : SL_JTOK_ARRAY);
            if (store)
                stack[depth] = k;
            is_obj[depth++] = (uint8_t)obj;
            i = skip_ws(p, n, i + 1);
            if (i < n && p[i] == (obj ? '}' : ']')) {
                CLOSE(k, i + 1);
                depth--;
                i++;
                scalar = 0;
            } else if (obj) {
                goto key;
            } else {
                continue;
            }
        } else if (c == '-' || is_digit(c)) {
            int real;
            PUSH(SL_JTOK_INT);
            if ((rc = scan_number(p, n, i, &end, &real)))
                return rc;
            if (store && real)
                t->v[k].type = SL_JTOK_REAL;
            CLOSE(k, end);
            i = end;
        } else if (n - i >= 4 && !memcmp(p + i, "true", 4)) {
            PUSH(SL_JTOK_TRUE);
            CLOSE(k, i + 4);
            i += 4;
        } else if (n - i >= 5 && !memcmp(p + i, "false", 5)) {
            PUSH(SL_JTOK_FALSE);
            CLOSE(k, i + 5);
            i += 5;
        } else if (n - i >= 4 && !memcmp(p + i, "null", 4)) {
            PUSH(SL_JTOK_NULL);
            CLOSE(k, i + 4);
            i += 4;
        } else {
            return SL_EPARSE;
        }
        /* jansson's lexer reads one character past a number or a literal, and a NUL byte
         * it puts back that way is lost: it accepts "[1\0]". So do we. */
        if (scalar && i < n && p[i] == '\0')
            i++;

        /* after a value: a separator, or the end of one or more containers */
        for (;;) {
            i = skip_ws(p, n, i);
            if (depth == 0)
                return i == n ? 0 : SL_EPARSE;
            if (i >= n)
                return SL_EPARSE;
            if (p[i] == ',') {
                i = skip_ws(p, n, i + 1);
                break;
            }
            if (p[i] != (is_obj[depth - 1] ? '}' : ']'))
                return SL_EPARSE;
            depth--;
            if (store)
                CLOSE(stack[depth], i + 1);
            i++;
        }
        if (!is_obj[depth - 1])
            continue;
    key:
        /* an object member: "key" : value */
        if (i >= n || p[i] != '"')
            return SL_EPARSE;
        PUSH(SL_JTOK_STRING);
        int esc = 0, nul = 0;
        if (!(end = quick_string(p, n, i)) && (rc = scan_string(p, n, i, &end, &esc, &nul)))
            return rc;
        if (nul)
            return SL_EPARSE; /* jansson keys are C strings */
        if (store)
            t->v[k].esc = (uint8_t)esc;
        CLOSE(k, end);
        i = skip_ws(p, n, end);
        if (i >= n || p[i] != ':')
            return SL_EPARSE;
        i = skip_ws(p, n, i + 1);
    }
#undef PUSH
#undef CLOSE
}

int sl__jtok_parse(sl_jtoks *t, const char *p, size_t n, int max_depth)
{
    t->n = 0;
    t->src = p;
    return tokenize(t, p, n, max_depth, 1);
}

size_t sl__jtok_scan_string(const char *p, size_t n, size_t i, int *esc)
{
    size_t end;
    int e = 0, nul = 0;
    if (i >= n || p[i] != '"' || scan_string(p, n, i, &end, &e, &nul))
        return 0;
    *esc = e;
    return end;
}

int sl__jtok_check(const char *p, size_t n, int max_depth)
{
    return tokenize(NULL, p, n, max_depth, 0);
}

/* ---- reading tokens --------------------------------------------------------------------- */

static void put_utf8(unsigned long cp, char *out, size_t *j)
{
    if (cp < 0x80) {
        out[(*j)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*j)++] = (char)(0xc0 | (cp >> 6));
        out[(*j)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out[(*j)++] = (char)(0xe0 | (cp >> 12));
        out[(*j)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*j)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        out[(*j)++] = (char)(0xf0 | (cp >> 18));
        out[(*j)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[(*j)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*j)++] = (char)(0x80 | (cp & 0x3f));
    }
}

/* One character of a valid string's inside at s[*i]: its UTF-8 bytes into out (4 bytes of
 * room), their count returned. An escape is never longer than what it writes. */
static size_t unescape_one(const char *s, size_t n, size_t *i, char *out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t j = 0;
    if (u[*i] != '\\') {
        out[j++] = s[(*i)++];
        return j;
    }
    char c = s[*i + 1];
    *i += 2;
    switch (c) {
    case 'b':
        out[j++] = '\b';
        break;
    case 'f':
        out[j++] = '\f';
        break;
    case 'n':
        out[j++] = '\n';
        break;
    case 'r':
        out[j++] = '\r';
        break;
    case 't':
        out[j++] = '\t';
        break;
    case 'u': {
        unsigned long cp = (unsigned long)hex4(u, n, *i);
        *i += 4;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            unsigned long lo = (unsigned long)hex4(u, n, *i + 2);
            *i += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        put_utf8(cp, out, &j);
        break;
    }
    default: /* '"', '\\', '/' */
        out[j++] = c;
        break;
    }
    return j;
}

size_t sl__jtok_unescape(const char *s, size_t n, char *out)
{
    size_t i = 0, j = 0;
    while (i < n) {
        const char *b = memchr(s + i, '\\', n - i);
        size_t run = b ? (size_t)(b - (s + i)) : n - i;
        memcpy(out + j, s + i, run);
        i += run, j += run;
        if (i < n)
            j += unescape_one(s, n, &i, out + j);
    }
    return j;
}

int sl__jtok_str_is(const sl_jtoks *t, uint32_t k, const char *key, size_t klen)
{
    const sl_jtok *v = &t->v[k];
    const char *s = t->src + v->start + 1;
    size_t n = v->len - 2;
    if (!v->esc)
        return n == klen && !memcmp(s, key, klen);
    if (klen > n)
        return 0;
    size_t i = 0, j = 0;
    char tmp[4];
    while (i < n) {
        size_t w = unescape_one(s, n, &i, tmp);
        if (w > klen - j || memcmp(tmp, key + j, w))
            return 0;
        j += w;
    }
    return j == klen;
}

uint32_t sl__jtok_get(const sl_jtoks *t, uint32_t obj, const char *key, size_t klen)
{
    if (obj >= t->n || t->v[obj].type != SL_JTOK_OBJECT)
        return 0;
    uint32_t found = 0;
    for (uint32_t k = obj + 1; k < t->v[obj].next; k = t->v[k + 1].next)
        if (sl__jtok_str_is(t, k, key, klen))
            found = k + 1;
    return found;
}

int sl__jtok_str(const sl_jtoks *t, uint32_t k, sl_buf *scratch, sl_str *out)
{
    const sl_jtok *v = &t->v[k];
    const char *s = t->src + v->start + 1;
    size_t n = v->len - 2;
    if (!v->esc) {
        *out = (sl_str){s, n};
        return 0;
    }
    sl__buf_reset(scratch);
    int rc = sl__buf_reserve(scratch, n);
    if (rc)
        return rc;
    scratch->len = sl__jtok_unescape(s, n, scratch->data);
    scratch->data[scratch->len] = '\0';
    *out = (sl_str){scratch->data, scratch->len};
    return 0;
}

long long sl__jtok_int(const sl_jtoks *t, uint32_t k)
{
    const char *s = t->src + t->v[k].start;
    size_t n = t->v[k].len, i = 0;
    int neg = s[0] == '-';
    long long v = 0;
    for (i = (size_t)neg; i < n; i++)
        v = neg ? v * 10 - (s[i] - '0') : v * 10 + (s[i] - '0');
    return v;
}

json_t *sl__jtok_json(const sl_jtoks *t, uint32_t k)
{
    return json_loadb(t->src + t->v[k].start, t->v[k].len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
}

json_t *sl__jtok_tree(const sl_jtoks *t, uint32_t k, sl_buf *scratch)
{
    const sl_jtok *v = &t->v[k];
    switch (v->type) {
    case SL_JTOK_NULL:
        return json_null();
    case SL_JTOK_TRUE:
        return json_true();
    case SL_JTOK_FALSE:
        return json_false();
    case SL_JTOK_INT:
        return json_integer(sl__jtok_int(t, k));
    case SL_JTOK_REAL:
        return json_real(sl__jtok_real(t, k));
    case SL_JTOK_STRING: {
        sl_str str;
        if (sl__jtok_str(t, k, scratch, &str))
            return NULL;
        return json_stringn_nocheck(str.ptr, str.len); /* UTF-8 checked by the tokenizer */
    }
    case SL_JTOK_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = k + 1; a && i < v->next; i = t->v[i].next)
            if (json_array_append_new(a, sl__jtok_tree(t, i, scratch))) {
                json_decref(a);
                a = NULL;
            }
        return a;
    }
    default: { /* SL_JTOK_OBJECT */
        json_t *o = json_object();
        for (uint32_t i = k + 1; o && i < v->next; i = t->v[i + 1].next) {
            /* the value first: the key's unescaped text may live in scratch, which the
             * value's strings would overwrite */
            json_t *val = sl__jtok_tree(t, i + 1, scratch);
            sl_str key;
            int bad = !val;
            if (!bad && sl__jtok_str(t, i, scratch, &key)) {
                json_decref(val);
                bad = 1;
            }
            /* a repeated name replaces the value in place, as jansson's reader does (the
             * reference to val is taken even on failure) */
            if (bad || json_object_setn_new_nocheck(o, key.ptr, key.len, val)) {
                json_decref(o);
                o = NULL;
            }
        }
        return o;
    }
    }
}

/* ---- members as jansson sees them ----------------------------------------------------- */

void sl__jmembers_init(sl_jmembers *m)
{
    memset(m, 0, sizeof *m);
}

void sl__jmembers_free(sl_jmembers *m)
{
    free(m->v);
    free(m->tmp);
    memset(m, 0, sizeof *m);
}

/* The unescaped bytes of a string token, one at a time. */
typedef struct key_reader {
    const char *s;
    size_t n, i;
    char buf[4];
    size_t bl, bi;
} key_reader;

static void reader_init(key_reader *r, const sl_jtoks *t, uint32_t k)
{
    r->s = t->src + t->v[k].start + 1;
    r->n = t->v[k].len - 2;
    r->i = r->bl = r->bi = 0;
}

static int reader_next(key_reader *r)
{
    if (r->bi == r->bl) {
        if (r->i >= r->n)
            return -1;
        r->bl = unescape_one(r->s, r->n, &r->i, r->buf);
        r->bi = 0;
    }
    return (unsigned char)r->buf[r->bi++];
}

/* Order of two names (unescaped), as memcmp would order them. */
static int key_cmp(const sl_jtoks *t, uint32_t a, uint32_t b)
{
    const sl_jtok *x = &t->v[a], *y = &t->v[b];
    if (!x->esc && !y->esc) {
        size_t xn = x->len - 2, yn = y->len - 2;
        int c = memcmp(t->src + x->start + 1, t->src + y->start + 1, xn < yn ? xn : yn);
        return c ? c : (xn > yn) - (xn < yn);
    }
    key_reader ra, rb;
    reader_init(&ra, t, a);
    reader_init(&rb, t, b);
    for (;;) {
        int ca = reader_next(&ra), cb = reader_next(&rb);
        if (ca != cb)
            return ca < cb ? -1 : 1;
        if (ca < 0)
            return 0;
    }
}

static int same_key(const sl_jtoks *t, uint32_t a, uint32_t b)
{
    const sl_jtok *x = &t->v[a], *y = &t->v[b];
    if (!x->esc && !y->esc)
        return x->len == y->len &&
               !memcmp(t->src + x->start + 1, t->src + y->start + 1, x->len - 2);
    return key_cmp(t, a, b) == 0;
}

/* By name, then by place: each run of one name starts at its first appearance. */
static int by_key(const void *pa, const void *pb, void *ctx)
{
    const sl_jtoks *t = ctx;
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    int c = key_cmp(t, a, b);
    return c ? c : (a > b) - (a < b);
}

static int by_first(const void *pa, const void *pb)
{
    uint32_t a = ((const sl_jmember *)pa)->key, b = ((const sl_jmember *)pb)->key;
    return (a > b) - (a < b);
}

#define FEW_MEMBERS 16

static uint32_t count_members(const sl_jtoks *t, uint32_t obj)
{
    uint32_t count = 0;
    for (uint32_t k = obj + 1; k < t->v[obj].next; k = t->v[k + 1].next)
        count++;
    return count;
}

/* A handful of members: compare each name with the distinct ones before it. out has room
 * for all of them; returns how many it holds. */
static uint32_t few_members(const sl_jtoks *t, uint32_t obj, sl_jmember *out)
{
    /* Usually every name differs in length or ends: a bit per (length, first, last byte)
     * shows it without comparing names; a shared bit or an escape means comparing. */
    uint64_t seen = 0;
    uint32_t n = 0;
    for (uint32_t k = obj + 1; k < t->v[obj].next; k = t->v[k + 1].next) {
        const sl_jtok *v = &t->v[k];
        const unsigned char *s = (const unsigned char *)t->src + v->start;
        uint64_t bit = (uint64_t)1 << ((v->len * 7u + s[1] + s[v->len - 2] * 3u) & 63);
        if (v->esc || (seen & bit))
            goto compare;
        seen |= bit;
        out[n++] = (sl_jmember){k, k + 1};
    }
    return n;
compare:
    n = 0;
    for (uint32_t k = obj + 1; k < t->v[obj].next; k = t->v[k + 1].next) {
        uint32_t j = 0;
        while (j < n && !same_key(t, out[j].key, k))
            j++;
        if (j < n)
            out[j].val = k + 1;
        else
            out[n++] = (sl_jmember){k, k + 1};
    }
    return n;
}

int sl__jtok_members(const sl_jtoks *t, uint32_t obj, sl_jmembers *m)
{
    m->n = 0;
    if (obj >= t->n || t->v[obj].type != SL_JTOK_OBJECT)
        return 0;
    uint32_t count = count_members(t, obj);
    if (count > m->cap) {
        sl_jmember *v = realloc(m->v, (size_t)count * sizeof *v);
        if (!v)
            return SL_ENOMEM;
        m->v = v;
        m->cap = count;
    }
    if (count <= FEW_MEMBERS) {
        m->n = few_members(t, obj, m->v);
        return 0;
    }
    /* many: sort the names, keep the first place and the last value of each, then put
     * them back in the order of their first places */
    if (count > m->tmpcap) {
        uint32_t *tmp = realloc(m->tmp, (size_t)count * sizeof *tmp);
        if (!tmp)
            return SL_ENOMEM;
        m->tmp = tmp;
        m->tmpcap = count;
    }
    uint32_t i = 0;
    for (uint32_t k = obj + 1; k < t->v[obj].next; k = t->v[k + 1].next)
        m->tmp[i++] = k;
    qsort_r(m->tmp, count, sizeof *m->tmp, by_key, (void *)t);
    uint32_t runs = 0;
    for (i = 0; i < count;) {
        uint32_t j = i + 1;
        while (j < count && same_key(t, m->tmp[i], m->tmp[j]))
            j++;
        m->v[runs++] = (sl_jmember){m->tmp[i], m->tmp[j - 1] + 1};
        i = j;
    }
    /* token indices grow with the place in the object */
    qsort(m->v, runs, sizeof *m->v, by_first);
    m->n = runs;
    return 0;
}

/* ---- writing tokens back --------------------------------------------------------------- */

double sl__jtok_real(const sl_jtoks *t, uint32_t k)
{
    const char *s = t->src + t->v[k].start;
    size_t n = t->v[k].len;
    char small[64];
    char *tmp = n < sizeof small ? small : malloc(n + 1);
    if (!tmp)
        return 0;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    const char *point = localeconv()->decimal_point;
    char *dot = memchr(tmp, '.', n);
    if (dot && point && *point)
        *dot = *point;
    double v = strtod(tmp, NULL);
    if (tmp != small)
        free(tmp);
    return v;
}

static int write_str_tok(sl_buf *out, const sl_jtoks *t, uint32_t k, sl_buf *scratch)
{
    sl_str s;
    int rc = sl__jtok_str(t, k, scratch, &s);
    return rc ? rc : sl__json_write_string(out, s.ptr, s.len);
}

static int write_tok(sl_buf *out, const sl_jtoks *t, uint32_t k, sl_buf *scratch)
{
    const sl_jtok *v = &t->v[k];
    int rc = 0;
    switch (v->type) {
    case SL_JTOK_NULL:
        return sl__buf_append(out, "null", 4);
    case SL_JTOK_TRUE:
        return sl__buf_append(out, "true", 4);
    case SL_JTOK_FALSE:
        return sl__buf_append(out, "false", 5);
    case SL_JTOK_INT:
        /* written as read, but "-0" (jansson reads the integer 0) */
        if (v->len == 2 && t->src[v->start] == '-' && t->src[v->start + 1] == '0')
            return sl__buf_append(out, "0", 1);
        return sl__buf_append(out, t->src + v->start, v->len);
    case SL_JTOK_REAL:
        return sl__json_write_real(out, sl__jtok_real(t, k));
    case SL_JTOK_STRING:
        /* without escapes it holds nothing the writer would escape: as it is */
        if (!v->esc)
            return sl__buf_append(out, t->src + v->start, v->len);
        return write_str_tok(out, t, k, scratch);
    case SL_JTOK_ARRAY:
        rc = sl__buf_append(out, "[", 1);
        for (uint32_t i = k + 1; i < v->next && !rc; i = t->v[i].next) {
            if (i != k + 1)
                rc = sl__buf_append(out, ",", 1);
            if (!rc)
                rc = write_tok(out, t, i, scratch);
        }
        return rc ? rc : sl__buf_append(out, "]", 1);
    case SL_JTOK_OBJECT: {
        sl_jmember few[FEW_MEMBERS];
        sl_jmembers many;
        sl__jmembers_init(&many);
        const sl_jmember *m = few;
        uint32_t n;
        if (count_members(t, k) <= FEW_MEMBERS) {
            n = few_members(t, k, few);
        } else {
            if ((rc = sl__jtok_members(t, k, &many)))
                return rc;
            m = many.v;
            n = many.n;
        }
        rc = sl__buf_append(out, "{", 1);
        for (uint32_t i = 0; i < n && !rc; i++) {
            if (i)
                rc = sl__buf_append(out, ",", 1);
            if (!rc)
                rc = write_str_tok(out, t, m[i].key, scratch);
            if (!rc)
                rc = sl__buf_append(out, ":", 1);
            if (!rc)
                rc = write_tok(out, t, m[i].val, scratch);
        }
        sl__jmembers_free(&many);
        return rc ? rc : sl__buf_append(out, "}", 1);
    }
    }
    return SL_EINVAL;
}

int sl__jtok_write(sl_buf *out, const sl_jtoks *t, uint32_t k)
{
    size_t mark = out->len;
    sl_buf scratch;
    sl__buf_init(&scratch, 0);
    int rc = write_tok(out, t, k, &scratch);
    sl__buf_free(&scratch);
    if (rc && out->data) {
        out->len = mark; /* all or nothing */
        out->data[mark] = '\0';
    }
    return rc;
}
