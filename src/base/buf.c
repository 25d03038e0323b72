/* buf.c — a growable byte buffer with a hard maximum (see buf.h). */
#include "base/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/common.h>

void sl__buf_init(sl_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max ? max : SIZE_MAX / 2;
}

void sl__buf_free(sl_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void sl__buf_reset(sl_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

int sl__buf_reserve(sl_buf *b, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return SL_ELIMIT;
    size_t need = b->len + n + 1; /* + NUL */
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 4 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return SL_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int sl__buf_append_slow(sl_buf *b, const void *p, size_t n)
{
    int rc = sl__buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int sl__buf_append_str(sl_buf *b, const char *s)
{
    return sl__buf_append(b, s, strlen(s));
}

int sl__buf_vprintf(sl_buf *b, const char *fmt, va_list ap)
{
    /* Format once into the room there is; only a text that does not fit is formatted
     * again after growing. */
    size_t room = b->data ? b->cap - b->len : 0;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        if (b->data)
            b->data[b->len] = '\0';
        return SL_EINVAL;
    }
    if ((size_t)n < room) {
        if ((size_t)n > b->max || b->len > b->max - (size_t)n) {
            b->data[b->len] = '\0'; /* over the cap: as if nothing was written */
            return SL_ELIMIT;
        }
        b->len += (size_t)n;
        return 0;
    }
    if (b->data)
        b->data[b->len] = '\0';
    int rc = sl__buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int sl__buf_append_int(sl_buf *b, long long v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    /* in unsigned arithmetic, so that LLONG_MIN negates */
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[--i] = '-';
    return sl__buf_append(b, tmp + i, sizeof tmp - i);
}

int sl__buf_printf(sl_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = sl__buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void sl__buf_consume(sl_buf *b, size_t n)
{
    if (n >= b->len) {
        sl__buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *sl__buf_steal(sl_buf *b)
{
    char *p = b->data;
    if (!p)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
