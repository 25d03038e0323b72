/* jsonw.c — compact JSON writer with shortest round-trip reals (see jsonw.h). */
#include "base/jsonw.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/common.h>

#define MAX_DEPTH 1000

static int needs_escape(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

/* The index of the first byte at or after s[i] that needs an escape (n if none), eight
 * bytes at a time where it can: in the word below a byte's high bit is set when it is
 * below 0x20, '"' or '\\' (0x80 and above are UTF-8, copied as they are); a borrow only
 * carries past a byte that is flagged itself, so the lowest flag is the first such byte. */
static size_t plain_run(const unsigned char *s, size_t n, size_t i)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    while (n - i >= 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
        uint64_t f = (((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b)) & high;
        if (f)
            return i + ((size_t)__builtin_ctzll(f) >> 3);
        i += 8;
    }
#endif
    while (i < n && !needs_escape(s[i]))
        i++;
    return i;
}

int sl__json_write_string(sl_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    /* room for the usual string, which needs no escape: quotes and the bytes */
    int rc = n < SIZE_MAX / 2 ? sl__buf_reserve(out, n + 2) : SL_ELIMIT;
    if (rc)
        return rc;
    size_t i = plain_run(u, n, 0);
    if (i == n) {
        char *d = out->data + out->len;
        d[0] = '"';
        if (n)
            memcpy(d + 1, s, n);
        d[n + 1] = '"';
        out->len += n + 2;
        out->data[out->len] = '\0';
        return 0;
    }
    rc = sl__buf_append(out, "\"", 1);
    size_t from = 0; /* bytes from here to i are copied as they are */
    while (!rc && i < n) {
        unsigned char c = u[i];
        const char *esc = NULL;
        char e[6];
        size_t elen = 2;
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c == '\b')
            esc = "\\b";
        else if (c == '\f')
            esc = "\\f";
        else {
            memcpy(e, "\\u00", 4);
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
            esc = e;
            elen = 6;
        }
        rc = sl__buf_append(out, s + from, i - from);
        if (!rc)
            rc = sl__buf_append(out, esc, elen);
        from = i + 1;
        i = plain_run(u, n, from);
    }
    if (!rc)
        rc = sl__buf_append(out, s + from, n - from);
    return rc ? rc : sl__buf_append(out, "\"", 1);
}

int sl__json_write_real(sl_buf *out, double d)
{
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    int rc = sl__buf_append_str(out, tmp);
    if (!rc && !strpbrk(tmp, ".eEni"))
        rc = sl__buf_append(out, ".0", 2); /* stays a real when read back */
    return rc;
}

static int write_value(sl_buf *out, const json_t *v, int depth)
{
    int rc = 0;
    if (depth > MAX_DEPTH)
        return SL_ELIMIT;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        rc = sl__buf_append(out, "{", 1);
        int first = 1;
        for (void *it = json_object_iter((json_t *)v); it && !rc;
             it = json_object_iter_next((json_t *)v, it)) {
            if (!first)
                rc = sl__buf_append(out, ",", 1);
            first = 0;
            const char *k = json_object_iter_key(it);
            if (!rc)
                rc = sl__json_write_string(out, k, json_object_iter_key_len(it));
            if (!rc)
                rc = sl__buf_append(out, ":", 1);
            if (!rc)
                rc = write_value(out, json_object_iter_value(it), depth + 1);
        }
        return rc ? rc : sl__buf_append(out, "}", 1);
    }
    case JSON_ARRAY: {
        rc = sl__buf_append(out, "[", 1);
        for (size_t i = 0; i < json_array_size(v) && !rc; i++) {
            if (i)
                rc = sl__buf_append(out, ",", 1);
            if (!rc)
                rc = write_value(out, json_array_get(v, i), depth + 1);
        }
        return rc ? rc : sl__buf_append(out, "]", 1);
    }
    case JSON_STRING:
        return sl__json_write_string(out, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return sl__buf_append_int(out, (long long)json_integer_value(v));
    case JSON_REAL:
        return sl__json_write_real(out, json_real_value(v));
    case JSON_TRUE:
        return sl__buf_append(out, "true", 4);
    case JSON_FALSE:
        return sl__buf_append(out, "false", 5);
    case JSON_NULL:
        return sl__buf_append(out, "null", 4);
    }
    return SL_EINVAL;
}

int sl__json_write(sl_buf *out, const json_t *v)
{
    size_t mark = out->len;
    int rc = write_value(out, v, 0);
    if (rc && out->data) {
        out->len = mark; /* all or nothing */
        out->data[mark] = '\0';
    }
    return rc;
}

char *sl__json_dump_exact(const json_t *v, size_t *len)
{
    sl_buf b;
    sl__buf_init(&b, 0);
    if (sl__json_write(&b, v) != 0) {
        sl__buf_free(&b);
        return NULL;
    }
    if (len)
        *len = b.len;
    return sl__buf_steal(&b);
}
