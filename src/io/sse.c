/* sse.c — incremental Server-Sent Events parser and writer.
 *
 * Sits in io/ under the LLM provider adapters (which read OpenAI-style streams through
 * the parser) and the gateway (which writes events with the writer). The input is
 * untrusted bytes from the network: every buffer is capped, nothing here aborts, and
 * the events do not depend on how the input was split into feeds (see sse.h). */
#include "io/sse.h"

#include <limits.h>
#include <string.h>

static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};

void sl__sse_init(sl_sse_parser *p, size_t max_line, size_t max_event, sl_sse_event_cb cb,
                  void *user)
{
    memset(p, 0, sizeof *p);
    p->on_event = cb;
    p->user = user;
    p->max_line = max_line ? max_line : SL_SSE_DEFAULT_MAX_LINE;
    p->max_event = max_event ? max_event : SL_SSE_DEFAULT_MAX_EVENT;
    /* Type and id are the value of one line, so the line cap bounds them too. */
    sl__buf_init(&p->line, p->max_line);
    sl__buf_init(&p->data, p->max_event);
    sl__buf_init(&p->type, p->max_line);
    sl__buf_init(&p->id, p->max_line);
    p->retry_ms = -1;
}

void sl__sse_free(sl_sse_parser *p)
{
    sl__buf_free(&p->line);
    sl__buf_free(&p->data);
    sl__buf_free(&p->type);
    sl__buf_free(&p->id);
}

static sl_str buf_str(const sl_buf *b)
{
    sl_str s = {b->data ? b->data : "", b->len};
    return s;
}

static void reset_event(sl_sse_parser *p)
{
    sl__buf_reset(&p->data);
    p->data_is_ref = 0;
    sl__buf_reset(&p->type);
    p->have_data = 0;
}

/* The empty line. Returns the callback's value; *stopped says it asked to stop. */
static int dispatch(sl_sse_parser *p, int *stopped)
{
    int rc = 0;
    /* WHATWG: an empty data buffer resets the event and dispatches nothing. */
    if (!p->have_data) {
        reset_event(p);
        return 0;
    }
    sl_sse_event ev;
    ev.type = buf_str(&p->type);
    if (ev.type.len == 0) {
        ev.type.ptr = "message";
        ev.type.len = 7;
    }
    ev.data = p->data_is_ref ? (sl_str){p->data_ref, p->data_ref_len} : buf_str(&p->data);
    ev.id = buf_str(&p->id);
    ev.retry_ms = p->retry_ms;
    if (p->on_event)
        rc = p->on_event(p->user, &ev);
    reset_event(p);
    p->retry_ms = -1;
    if (rc)
        *stopped = 1;
    return rc;
}

static int field_is(const char *name, size_t nlen, const char *want)
{
    size_t wlen = strlen(want);
    return nlen == wlen && memcmp(name, want, wlen) == 0;
}

static void set_retry(sl_sse_parser *p, const char *v, size_t vlen)
{
    if (vlen == 0)
        return;
    long ms = 0;
    for (size_t i = 0; i < vlen; i++) {
        if (v[i] < '0' || v[i] > '9')
            return;
    }
    for (size_t i = 0; i < vlen; i++) {
        int d = v[i] - '0';
        ms = ms > (LONG_MAX - d) / 10 ? LONG_MAX : ms * 10 + d;
    }
    p->retry_ms = ms;
}

/* The data line held in place goes into the data buffer (the feed it is in ends, or
 * another line joins it). */
static int copy_data_ref(sl_sse_parser *p)
{
    if (!p->data_is_ref)
        return 0;
    int rc = sl__buf_append(&p->data, p->data_ref, p->data_ref_len);
    if (!rc)
        p->data_is_ref = 0;
    return rc;
}

/* One complete line (without its line end), at most max_line bytes. in_place: it lies in
 * the caller's feed, which lasts until the feed returns. */
static int process_line(sl_sse_parser *p, const char *s, size_t n, int in_place, int *stopped)
{
    int rc = 0;
    if (n == 0)
        return dispatch(p, stopped);
    if (s[0] == ':')
        return 0;
    const char *name = s, *v = "";
    size_t nlen = n, vlen = 0;
    const char *colon = memchr(s, ':', n);
    if (colon) {
        nlen = (size_t)(colon - s);
        v = colon + 1;
        vlen = n - nlen - 1;
        if (vlen && v[0] == ' ') {
            v++;
            vlen--;
        }
    }
    if (field_is(name, nlen, "data")) {
        if (!p->have_data && in_place) {
            if (vlen > p->max_event)
                return SL_ELIMIT;
            p->data_ref = v;
            p->data_ref_len = vlen;
            p->data_is_ref = 1;
            p->have_data = 1;
            return 0;
        }
        if ((rc = copy_data_ref(p)))
            return rc;
        /* Reserve first so a failed append leaves the event as it was. */
        size_t need = vlen + (p->have_data ? 1 : 0);
        rc = sl__buf_reserve(&p->data, need);
        if (rc)
            return rc;
        if (p->have_data)
            sl__buf_append(&p->data, "\n", 1);
        sl__buf_append(&p->data, v, vlen);
        p->have_data = 1;
    } else if (field_is(name, nlen, "event")) {
        sl__buf_reset(&p->type);
        rc = sl__buf_append(&p->type, v, vlen);
    } else if (field_is(name, nlen, "id")) {
        if (vlen && memchr(v, '\0', vlen))
            return 0;
        sl__buf_reset(&p->id);
        rc = sl__buf_append(&p->id, v, vlen);
    } else if (field_is(name, nlen, "retry")) {
        set_retry(p, v, vlen);
    }
    return rc;
}

/* A line that ended inside this feed: [s, s+n). Joins it to the held part, if any. */
static int take_line(sl_sse_parser *p, const char *s, size_t n, int *stopped)
{
    int rc;
    if (p->line.len == 0) {
        if (n > p->max_line)
            return SL_ELIMIT;
        return process_line(p, s, n, 1, stopped);
    }
    rc = sl__buf_append(&p->line, s, n);
    if (rc)
        return rc;
    rc = process_line(p, p->line.data, p->line.len, 0, stopped);
    sl__buf_reset(&p->line);
    return rc;
}

/* Everything after the BOM check. Sets p->consumed. */
static int parse(sl_sse_parser *p, const char *data, size_t len, size_t base)
{
    int rc = 0, stopped = 0;
    size_t i = 0;
    if (len && p->last_was_cr) {
        /* The LF of a CRLF whose CR ended the previous feed. */
        if (data[0] == '\n')
            i = 1;
        p->last_was_cr = 0;
    }

    /* Next LF and CR at or after i; len when there is none. Each is searched again only
     * once i passes it, so the whole feed is scanned about twice at most. */
    const char *q;
    size_t lf = len, cr = len;
    if (i < len) {
        q = memchr(data + i, '\n', len - i);
        lf = q ? (size_t)(q - data) : len;
        q = memchr(data + i, '\r', len - i);
        cr = q ? (size_t)(q - data) : len;
    }
    while (i < len) {
        if (lf < i) {
            q = memchr(data + i, '\n', len - i);
            lf = q ? (size_t)(q - data) : len;
        }
        if (cr < i) {
            q = memchr(data + i, '\r', len - i);
            cr = q ? (size_t)(q - data) : len;
        }
        size_t eol = lf < cr ? lf : cr;
        if (eol == len) {
            /* An incomplete line: hold it, within the line cap. */
            rc = sl__buf_append(&p->line, data + i, len - i);
            if (rc)
                goto out;
            i = len;
            break;
        }
        size_t next = eol + 1;
        if (data[eol] == '\r') {
            if (next < len) {
                if (data[next] == '\n')
                    next++;
            } else {
                p->last_was_cr = 1;
            }
        }
        rc = take_line(p, data + i, eol - i, &stopped);
        i = next;
        if (rc)
            goto out;
    }
out:
    p->consumed = base + i;
    if (!rc)
        rc = copy_data_ref(p); /* the feed's bytes go when it returns */
    if (rc && !stopped)
        p->failed = rc;
    return rc;
}

int sl__sse_feed(sl_sse_parser *p, const char *data, size_t len)
{
    size_t i = 0;
    int rc;
    p->consumed = 0;
    if (p->failed)
        return p->failed;
    if (!p->bom_checked) {
        while (i < len && p->bom_matched < 3 && (unsigned char)data[i] == bom[p->bom_matched]) {
            p->bom_matched++;
            i++;
        }
        if (p->bom_matched == 3) {
            p->bom_checked = 1;
        } else if (i < len) {
            /* Not a BOM after all: the bytes held back start the first line. They hold
             * no line end, so this only appends them to the line. */
            p->bom_checked = 1;
            rc = parse(p, (const char *)bom, (size_t)p->bom_matched, 0);
            if (rc) {
                p->consumed = 0;
                return rc;
            }
        } else {
            p->consumed = len;
            return 0;
        }
    }
    return parse(p, data + i, len - i, i);
}

int sl__sse_finish(sl_sse_parser *p)
{
    sl__buf_reset(&p->line);
    reset_event(p);
    p->retry_ms = -1;
    p->bom_checked = 0;
    p->bom_matched = 0;
    p->last_was_cr = 0;
    return 0;
}

/* ---- writer ---- */

static int has_line_end(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

/* Appends prefix + each line of (s, n) + "\n", splitting on LF, CR, CRLF. */
static int write_lines(sl_buf *out, const char *prefix, const char *s, size_t n)
{
    size_t plen = strlen(prefix);
    size_t i = 0;
    int rc;
    for (;;) {
        size_t j = i;
        while (j < n && s[j] != '\n' && s[j] != '\r')
            j++;
        if ((rc = sl__buf_append(out, prefix, plen)) || (rc = sl__buf_append(out, s + i, j - i)) ||
            (rc = sl__buf_append(out, "\n", 1)))
            return rc;
        if (j == n)
            return 0;
        if (s[j] == '\r' && j + 1 < n && s[j + 1] == '\n')
            j++;
        i = j + 1;
    }
}

static void truncate_to(sl_buf *out, size_t len)
{
    out->len = len;
    if (out->data)
        out->data[len] = '\0';
}

int sl__sse_write(sl_buf *out, const char *type, const char *id, const char *data, size_t len)
{
    size_t start = out->len;
    int rc = 0;
    if ((type && has_line_end(type)) || (id && has_line_end(id)))
        return SL_EINVAL;
    if (type && (rc = write_lines(out, "event: ", type, strlen(type))))
        goto out;
    if (id && (rc = write_lines(out, "id: ", id, strlen(id))))
        goto out;
    if ((rc = write_lines(out, "data: ", data ? data : "", data ? len : 0)))
        goto out;
    rc = sl__buf_append(out, "\n", 1);
out:
    if (rc)
        truncate_to(out, start);
    return rc;
}

int sl__sse_write_comment(sl_buf *out, const char *text)
{
    size_t start = out->len;
    if (!text)
        text = "";
    int rc = write_lines(out, ": ", text, strlen(text));
    if (!rc)
        rc = sl__buf_append(out, "\n", 1);
    if (rc)
        truncate_to(out, start);
    return rc;
}
