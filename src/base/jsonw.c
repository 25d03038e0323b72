/* jsonw.c — compact JSON writer with shortest round-trip reals (see jsonw.h). */
#include "base/jsonw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/common.h>

#define MAX_DEPTH 1000

int sl__json_write_string(sl_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int rc = sl__buf_append(out, "\"", 1);
    size_t run = 0; /* bytes copied as they are, flushed in one append */
    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[6];
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
        else if (c < 0x20) {
            memcpy(u, "\\u00", 4);
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
        } else {
            run++;
            continue;
        }
        rc = sl__buf_append(out, s + i - run, run);
        run = 0;
        if (!rc)
            rc = esc ? sl__buf_append_str(out, esc) : sl__buf_append(out, u, 6);
    }
    if (!rc)
        rc = sl__buf_append(out, s + n - run, run);
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
        return sl__buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
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
