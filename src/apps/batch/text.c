/* text.c — JSON string quoting and UTF-8 checks (see text.h). */
#include "apps/batch/text.h"

#include <stdio.h>

size_t sl__batch_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned int min, cp;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        min = 0x80;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        min = 0x800;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        min = 0x10000;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

int sl__batch_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t k = sl__batch_utf8_seq(p + i, n - i);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

int sl__batch_json_quote(sl_buf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    int rc = sl__buf_append(b, "\"", 1);
    size_t i = 0;
    while (!rc && i < n) {
        /* copy the longest run that needs no escaping in one append */
        size_t j = i;
        while (j < n && p[j] >= 0x20 && p[j] < 0x7f && p[j] != '"' && p[j] != '\\')
            j++;
        if (j > i) {
            rc = sl__buf_append(b, p + i, j - i);
            i = j;
            continue;
        }
        unsigned char c = p[i];
        char esc[8];
        switch (c) {
        case '"':
            rc = sl__buf_append(b, "\\\"", 2);
            break;
        case '\\':
            rc = sl__buf_append(b, "\\\\", 2);
            break;
        case '\n':
            rc = sl__buf_append(b, "\\n", 2);
            break;
        case '\r':
            rc = sl__buf_append(b, "\\r", 2);
            break;
        case '\t':
            rc = sl__buf_append(b, "\\t", 2);
            break;
        case '\b':
            rc = sl__buf_append(b, "\\b", 2);
            break;
        case '\f':
            rc = sl__buf_append(b, "\\f", 2);
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                rc = sl__buf_append(b, esc, 6);
            } else {
                size_t k = sl__batch_utf8_seq(p + i, n - i);
                if (k) {
                    rc = sl__buf_append(b, p + i, k);
                    i += k;
                    continue;
                }
                rc = sl__buf_append(b, "\\ufffd", 6);
            }
        }
        i++;
    }
    if (!rc)
        rc = sl__buf_append(b, "\"", 1);
    return rc;
}
