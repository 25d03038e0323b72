/* json.c — jansson helpers with caps for untrusted input (see json.h). */
#include "base/json.h"

#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include <sluice/common.h>

#include "base/jsontok.h"

/* Nesting depth of a JSON text, counting only brackets outside strings. Linear, no
 * allocation; stops as soon as the cap is passed. */
static int depth_exceeds(const char *p, size_t n, int max)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                return 1;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 0;
}

int sl__json_parse(const char *p, size_t n, int max_depth, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    sl_jtoks t;
    sl__jtoks_init(&t);
    if (sl__jtok_parse(&t, p, n, max_depth) == 0) {
        sl_buf scratch;
        sl__buf_init(&scratch, 0);
        json_t *v = sl__jtok_tree(&t, 0, &scratch);
        sl__buf_free(&scratch);
        sl__jtoks_free(&t);
        if (v) {
            *out = v;
            return 0;
        }
    } else {
        sl__jtoks_free(&t);
    }
    /* rejected (or out of memory): jansson says why, in its words */
    return sl__json_load(p, n, max_depth, out, err, errlen);
}

int sl__json_load(const char *p, size_t n, int max_depth, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (max_depth <= 0)
        max_depth = SL_JSON_MAX_DEPTH;
    if (depth_exceeds(p, n, max_depth)) {
        if (errlen)
            snprintf(err, errlen, "JSON nested deeper than %d levels", max_depth);
        return SL_ELIMIT;
    }
    json_error_t je;
    json_t *v = json_loadb(p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!v) {
        if (errlen)
            snprintf(err, errlen, "invalid JSON at column %d: %s", je.column, je.text);
        return SL_EPARSE;
    }
    *out = v;
    return 0;
}

const char *sl__json_str(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

long long sl__json_int(const json_t *obj, const char *key, long long def)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : def;
}

size_t sl__utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0], min, cp;
    size_t k;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        k = 2, min = 0x80, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        k = 3, min = 0x800, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        k = 4, min = 0x10000, cp = c & 0x07;
    else
        return 0;
    if (n < k)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return k;
}

/* The index of the first byte at or after p[i] that is not printable ASCII other than
 * '"' and '\\' (n if none), eight bytes at a time where it can: in the word below a byte's
 * high bit is set when it is below 0x20, 0x7f and above, '"' or '\\'; carries and borrows
 * only start at such a byte and go up, so the lowest flag is the first one. */
static size_t plain_ascii(const unsigned char *p, size_t n, size_t i)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    while (n - i >= 8) {
        uint64_t x;
        memcpy(&x, p + i, 8);
        uint64_t f = (x - ones * 0x20) | (x + ones) | ((x ^ (ones * '"')) - ones) |
                     ((x ^ (ones * '\\')) - ones) | x;
        f &= high;
        if (f)
            return i + ((size_t)__builtin_ctzll(f) >> 3);
        i += 8;
    }
#endif
    while (i < n && p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
        i++;
    return i;
}

int sl__json_escape(sl_buf *b, const char *s, size_t n, const char *invalid)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0; /* start of the bytes copied as they are */
    int rc = 0;
    for (size_t i = 0; i < n && !rc;) {
        i = plain_ascii(p, n, i);
        if (i == n)
            break;
        unsigned c = p[i];
        if (c >= 0x20 && c != 0x7f && c != '"' && c != '\\' && (c < 0x80 || !invalid)) {
            i++;
            continue;
        }
        if (c >= 0x80) { /* invalid != NULL: check the sequence */
            size_t k = sl__utf8_seq(p + i, n - i);
            if (k) {
                i += k;
                continue;
            }
        }
        rc = sl__buf_append(b, s + run, i - run);
        if (rc)
            break;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t k = 2;
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            if (c >= 0x80) {
                rc = sl__buf_append_str(b, invalid);
                k = 0;
                break;
            }
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            k = 6;
        }
        if (k && !rc)
            rc = sl__buf_append(b, esc, k);
        run = ++i;
    }
    return rc ? rc : sl__buf_append(b, s + run, n - run);
}

char *sl__json_dump(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}
