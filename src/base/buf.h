/* buf.h — a growable byte buffer with a hard maximum.
 *
 * Every buffer that holds untrusted input is an sl_buf with a cap: appending past it
 * fails with SL_ELIMIT and leaves the buffer unchanged. The data is always followed by
 * a NUL byte (not counted in len) so it can be handed to C string functions. */
#ifndef SL_BASE_BUF_H
#define SL_BASE_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

typedef struct sl_buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t cap;
    size_t max; /* hard cap on len; 0 means SIZE_MAX/2 */
} sl_buf;

void sl__buf_init(sl_buf *b, size_t max);
void sl__buf_free(sl_buf *b);
/* Empty the buffer, keep its memory. */
void sl__buf_reset(sl_buf *b);
/* Make room for n more bytes. 0, SL_ELIMIT or SL_ENOMEM. */
int sl__buf_reserve(sl_buf *b, size_t n);
/* Append n bytes (a hot path everywhere: inline when they fit, else sl__buf_append_slow). */
int sl__buf_append_slow(sl_buf *b, const void *p, size_t n);
static inline int sl__buf_append(sl_buf *b, const void *p, size_t n)
{
    /* cap is 0 until there is data; len never passes max, but checked: no wrap */
    if (n < b->cap - b->len && b->len <= b->max && n <= b->max - b->len) {
        if (n)
            memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
    }
    return sl__buf_append_slow(b, p, n);
}
int sl__buf_append_str(sl_buf *b, const char *s);
int sl__buf_printf(sl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sl__buf_vprintf(sl_buf *b, const char *fmt, va_list ap);
/* v in decimal, as "%lld" writes it. */
int sl__buf_append_int(sl_buf *b, long long v);
/* Drop the first n bytes (n <= len). */
void sl__buf_consume(sl_buf *b, size_t n);
/* Hand the data over: returns it (NUL-terminated, caller frees), leaves b empty. */
char *sl__buf_steal(sl_buf *b);

#endif
