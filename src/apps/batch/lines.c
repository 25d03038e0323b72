/* lines.c — streaming line reader with a cap on one line (see lines.h). */
#include "apps/batch/lines.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/common.h>

#include "apps/batch/idset.h"

#define DEFAULT_MAX_LINE (8u * 1024 * 1024)
#define KEEP_LINE_BUF    (1u << 20) /* a larger line buffer is released after its line */

int sl__batch_lines_init(sl_batch_lines *r, FILE *f, int fd, const void *mem, size_t mem_len,
                         size_t max_line)
{
    memset(r, 0, sizeof *r);
    r->f = f;
    r->fd = fd;
    r->mem = mem;
    r->mem_len = mem ? mem_len : 0;
    r->max_line = max_line ? max_line : DEFAULT_MAX_LINE;
    r->fingerprint = SL_BATCH_FNV_OFFSET;
    sl__buf_init(&r->line, r->max_line);
    if (!mem && !f && fd < 0)
        return SL_EINVAL;
    if (!mem) {
        r->chunk = malloc(SL_BATCH_CHUNK);
        if (!r->chunk)
            return SL_ENOMEM;
    }
    return 0;
}

void sl__batch_lines_free(sl_batch_lines *r)
{
    sl__buf_free(&r->line);
    free(r->chunk);
    r->chunk = NULL;
    r->cur = NULL;
}

/* Make unread bytes available in cur: 1 if there are some, 0 at EOF, SL_EIO. Memory
 * sources are used in place, in windows of the chunk size; the others are read into the
 * fixed chunk. */
static int fill(sl_batch_lines *r)
{
    if (r->cur_pos < r->cur_len)
        return 1;
    if (r->err)
        return SL_EIO;
    if (r->eof)
        return 0;
    size_t n;
    const unsigned char *p = r->chunk;
    if (r->mem) {
        n = r->mem_len - r->mem_pos;
        if (n > SL_BATCH_CHUNK)
            n = SL_BATCH_CHUNK;
        p = r->mem + r->mem_pos;
        r->mem_pos += n;
    } else if (r->f) {
        n = fread(r->chunk, 1, SL_BATCH_CHUNK, r->f);
        if (n == 0 && ferror(r->f)) {
            r->err = errno ? errno : EIO;
            return SL_EIO;
        }
    } else {
        ssize_t k;
        do
            k = read(r->fd, r->chunk, SL_BATCH_CHUNK);
        while (k < 0 && errno == EINTR);
        if (k < 0) {
            r->err = errno;
            return SL_EIO;
        }
        n = (size_t)k;
    }
    if (n == 0) {
        r->eof = 1;
        return 0;
    }
    r->fingerprint = sl__batch_fnv1a(r->fingerprint, p, n);
    r->bytes += n;
    r->cur = p;
    r->cur_len = n;
    r->cur_pos = 0;
    return 1;
}

/* Take n bytes of the current line: keep them unless the line is already over the cap. */
static int take(sl_batch_lines *r, const unsigned char *p, size_t n)
{
    r->raw_len += n;
    if (r->too_long)
        return 0;
    if (r->line.len + n > r->max_line) {
        r->too_long = 1;
        /* a line over the cap is dropped at once: memory stays at most max_line */
        sl__buf_reset(&r->line);
        return 0;
    }
    return sl__buf_append(&r->line, p, n);
}

int sl__batch_lines_next(sl_batch_lines *r, sl_batch_line_view *v)
{
    /* one huge line must not pin its memory for the rest of the file */
    if (r->line.cap > KEEP_LINE_BUF)
        sl__buf_free(&r->line);
    sl__buf_reset(&r->line);
    r->too_long = 0;
    r->raw_len = 0;
    int terminated = 0;
    for (;;) {
        int rc = fill(r);
        if (rc < 0)
            return rc;
        if (rc == 0)
            break;
        const unsigned char *p = r->cur + r->cur_pos;
        size_t avail = r->cur_len - r->cur_pos;
        const unsigned char *nl = memchr(p, '\n', avail);
        size_t n = nl ? (size_t)(nl - p) : avail;
        rc = take(r, p, n);
        if (rc)
            return rc;
        r->cur_pos += n;
        if (nl) {
            r->cur_pos++;
            terminated = 1;
            break;
        }
    }
    if (!terminated && r->raw_len == 0)
        return 0; /* end of input, no partial line */
    memset(v, 0, sizeof *v);
    v->p = r->too_long || !r->line.data ? "" : r->line.data;
    v->len = r->too_long ? 0 : r->line.len;
    v->raw_len = r->raw_len;
    v->line_no = ++r->line_no;
    v->offset = r->offset;
    v->terminated = terminated;
    v->too_long = r->too_long;
    r->offset += r->raw_len + (terminated ? 1 : 0);
    return 1;
}
