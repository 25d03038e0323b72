/* h1c.c — httpc's HTTP/1.1 transport for plain http://: libuv TCP and http-parser.
 *
 * A streamed LLM answer is one request and a few hundred small reads on a kept-alive
 * connection. This transport does exactly that and nothing else: per origin (host, port)
 * a pool of connections (idle ones reused most recent first, at most
 * max_host_connections, requests over the cap wait in FIFO order), one request at a time
 * per connection (no pipelining), the request head and body sent with one write, the
 * response parsed by http-parser straight out of one read buffer that every connection
 * shares (the bytes handed to on_data are borrowed until it returns; nothing is copied
 * unless a pause leaves bytes unparsed).
 *
 * Rules kept from httpc.h: on_done once, from the loop, never inside a caller; pause stops
 * reading (bytes already read wait in the request, unparsed); cancel and free close the
 * connection of an unfinished response. A request sent on a reused connection that closes
 * before any response byte is sent again once on a new connection: the server dropped an
 * idle keep-alive connection as the request went out (what every HTTP client does).
 *
 * It must never block: names that are not IP literals are resolved with uv_getaddrinfo. */
#include "io/httpc_int.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/clock.h"

#define READ_BUFFER_BYTES (64u << 10)
#define MAX_URL_HOST      255

typedef struct origin origin;
typedef struct conn conn;
typedef struct hreq hreq;

struct sl_h1c {
    sl_httpc *front;
    uv_loop_t *loop;
    sl_httpc_opts o;
    origin *origins;
    sl_link reqs;  /* requests not yet finalized */
    sl_link conns; /* open connections */
    char *rbuf;    /* the read buffer: parsing is synchronous, so one serves every connection */
    int dying;
};

struct origin {
    origin *next;
    char host[MAX_URL_HOST + 1]; /* without IPv6 brackets */
    char authority[MAX_URL_HOST + 8];
    int port;
    int nconns;      /* open connections */
    sl_link idle;    /* idle connections, most recently used last */
    sl_link waiting; /* requests waiting for a connection, oldest first */
};

enum { CONN_RESOLVING, CONN_CONNECTING, CONN_BUSY, CONN_IDLE };

typedef struct resolve {
    uv_getaddrinfo_t gai;
    conn *conn; /* NULL: the connection went first */
} resolve;

struct conn {
    sl_h1c *c;
    origin *o;
    uv_tcp_t tcp;
    uv_connect_t connect;
    http_parser parser;
    sl_link link;                  /* origin's idle list */
    sl_link all;                   /* c->conns */
    hreq *req;                     /* the request on this connection; NULL when idle */
    resolve *rs;                   /* while resolving */
    struct addrinfo *ai, *ai_next; /* resolved addresses, the next to try */
    int state;
    unsigned reused : 1; /* a response has been read on it before */
    unsigned closed : 1;
};

typedef struct wctx {
    uv_write_t w;
    conn *conn;
} wctx;

enum { HDR_NONE, HDR_FIELD, HDR_VALUE };

struct hreq {
    sl_httpc_req base; /* kind SL_HTTPC_REQ_H1; first member */
    sl_h1c *c;
    origin *o;
    conn *conn;
    sl_link link; /* c->reqs */
    sl_link wait; /* origin's waiting list */
    sl_httpc_task task;
    uv_timer_t timer; /* connect / first-byte / idle / total deadlines */
    sl_httpc_head head;
    sl_httpc_head_cb on_head;
    sl_httpc_data_cb on_data;
    sl_httpc_done_cb on_done;
    void *user;
    char *out; /* request line, Host and the request's own header lines */
    size_t out_len;
    const sl_httpc_headers *hs; /* the client's header lines, sent after out; or NULL */
    char tail[48];              /* "Content-Length: n" and the blank line */
    unsigned char tail_len;
    const char *body; /* borrowed until the request is freed */
    size_t body_len;
    char *held; /* bytes read but not parsed because of a pause */
    size_t held_len;
    sl_httpc_clock clk; /* connect / first-byte / idle / total deadlines */
    int hdr;            /* the last header callback: HDR_* */
    int depth;          /* > 0 while one of the owner's callbacks runs */
    int have_retry_ms;
    int pending_err; /* an error to report from the task (found while starting) */
    int abort_err;
    char abort_msg[120];
    unsigned is_head : 1;
    unsigned status_written : 1;
    unsigned head_done : 1;
    unsigned complete : 1;
    unsigned resume_wanted : 1;
    unsigned canceled : 1;
    unsigned freed : 1;
    unsigned done : 1;
    unsigned finalized : 1;
    unsigned retried : 1;
};

static void finalize(hreq *r);
static void conn_close(conn *k);
static void conn_start(sl_h1c *c, origin *o, hreq *r);
static conn *conn_new(sl_h1c *c, origin *o);
static void conn_try(conn *k);
static void conn_send(conn *k);

/* k (kept alive and free) takes r: r's request goes out on it now. */
static void take(conn *k, hreq *r)
{
    k->state = CONN_BUSY;
    k->req = r;
    r->conn = k;
    conn_send(k);
}
static void origin_kick(origin *o);
static void feed(conn *k, const char *p, size_t n);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);

/* ---- transport lifetime ----------------------------------------------------------- */

int sl__h1c_new(sl_httpc *front, sl_h1c **out)
{
    *out = NULL;
    sl_h1c *c = calloc(1, sizeof *c);
    if (!c)
        return SL_ENOMEM;
    c->rbuf = malloc(READ_BUFFER_BYTES);
    if (!c->rbuf) {
        free(c);
        return SL_ENOMEM;
    }
    c->front = front;
    c->loop = front->loop;
    c->o = front->o;
    sl__list_init(&c->reqs);
    sl__list_init(&c->conns);
    *out = c;
    return 0;
}

/* Called by the front's teardown, outside every callback of ours. */
void sl__h1c_free(sl_h1c *c)
{
    if (!c)
        return;
    c->dying = 1;
    while (!sl__list_empty(&c->reqs)) {
        hreq *r = SL_CONTAINER_OF(c->reqs.next, hreq, link);
        r->freed = 1;
        finalize(r);
    }
    while (!sl__list_empty(&c->conns))
        conn_close(SL_CONTAINER_OF(c->conns.next, conn, all));
    while (c->origins) {
        origin *o = c->origins;
        c->origins = o->next;
        free(o);
    }
    free(c->rbuf);
    free(c);
}

static int gone(const sl_h1c *c)
{
    return c->dying || c->front->dying;
}

/* ---- requests: lifetime and callbacks ----------------------------------------------- */

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Let go of the connection: back to the pool when the response was read whole and the
 * connection may be kept, else closed. */
static void detach(hreq *r, int reusable)
{
    conn *k = r->conn;
    if (!k)
        return;
    r->conn = NULL;
    k->req = NULL;
    if (!reusable || gone(r->c)) {
        conn_close(k);
        return;
    }
    k->reused = 1;
    origin *o = k->o;
    if (!sl__list_empty(&o->waiting)) { /* straight to the next request */
        hreq *w = SL_CONTAINER_OF(o->waiting.next, hreq, wait);
        sl__list_remove(&w->wait);
        take(k, w);
        return;
    }
    k->state = CONN_IDLE;
    sl__list_push(&o->idle, &k->link);
    uv_unref((uv_handle_t *)&k->tcp); /* an idle connection keeps no loop alive */
}

static void finalize(hreq *r)
{
    if (r->finalized)
        return;
    r->finalized = 1;
    sl__httpc_undefer(&r->task);
    sl__list_remove(&r->wait);
    detach(r, r->complete && !r->held_len);
    free(r->out);
    free(r->held);
    sl__buf_free(&r->head.raw);
    sl__list_remove(&r->link);
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}

static void deliver_done(hreq *r, int err, const char *msg)
{
    if (r->done || r->freed)
        return;
    r->done = 1;
    uv_timer_stop(&r->timer);
    r->depth++;
    r->on_done(&r->base, err, msg, r->user);
    r->depth--;
    if (r->freed && r->depth == 0)
        finalize(r);
}

/* End r with an error now (we are in a loop callback): its connection closes. */
static void fail(hreq *r, int err, const char *msg)
{
    sl__list_remove(&r->wait);
    detach(r, 0);
    deliver_done(r, err, msg);
}

static void set_abort(hreq *r, int err, const char *msg)
{
    if (r->abort_err)
        return;
    r->abort_err = err;
    snprintf(r->abort_msg, sizeof r->abort_msg, "%s", msg);
}

/* ---- deadlines ---------------------------------------------------------------------- */

static void on_req_timer(uv_timer_t *t);

static void arm(hreq *r)
{
    sl__httpc_clock_arm(&r->timer, &r->clk, !(r->done || r->canceled || r->freed), on_req_timer);
}

static void on_req_timer(uv_timer_t *t)
{
    hreq *r = t->data;
    sl_httpc *front = r->c->front;
    char msg[160];
    if (!sl__httpc_clock_expired(t, &r->clk, on_req_timer, r->o->authority, msg, sizeof msg))
        return;
    sl__httpc_enter(front);
    fail(r, SL_ETIMEDOUT, msg);
    sl__httpc_leave(front);
}

static void note_rx(hreq *r)
{
    r->clk.t_last_rx = uv_now(r->c->loop);
    if (!r->clk.got_byte) {
        r->clk.got_byte = 1;
        r->head.first_byte_ms = sl__clock_ms();
        arm(r); /* the idle deadline may be sooner than the first-byte one */
    }
}

/* ---- response parsing --------------------------------------------------------------- */

/* After any callback of the owner: stop the parser when the request no longer wants
 * bytes (paused, cancelled, freed, aborted) or the response is complete. */
static int must_stop(const hreq *r)
{
    return r->clk.paused || r->canceled || r->freed || r->abort_err || r->complete;
}

static int raw_append(hreq *r, const char *p, size_t n)
{
    if (sl__buf_append(&r->head.raw, p, n) == 0)
        return 0;
    char msg[96];
    snprintf(msg, sizeof msg, "response headers over %zu bytes", r->head.raw.max);
    set_abort(r, SL_ELIMIT, msg);
    return -1;
}

static hreq *req_of(http_parser *p)
{
    return ((conn *)p->data)->req;
}

static int write_status(hreq *r, http_parser *p)
{
    if (r->status_written)
        return 0;
    r->status_written = 1;
    char line[48];
    int n =
        snprintf(line, sizeof line, "HTTP/%u.%u %u ", p->http_major, p->http_minor, p->status_code);
    return raw_append(r, line, (size_t)n);
}

static int on_message_begin(http_parser *p)
{
    hreq *r = req_of(p);
    sl__httpc_head_reset(&r->head);
    r->have_retry_ms = 0;
    r->status_written = 0;
    r->hdr = HDR_NONE;
    return 0;
}

static int on_status(http_parser *p, const char *at, size_t n)
{
    hreq *r = req_of(p);
    if (write_status(r, p) || raw_append(r, at, n))
        http_parser_pause(p, 1);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    hreq *r = req_of(p);
    int rc = write_status(r, p);
    if (!rc && r->hdr != HDR_FIELD)
        rc = raw_append(r, "\r\n", 2);
    if (!rc)
        rc = raw_append(r, at, n);
    r->hdr = HDR_FIELD;
    if (rc)
        http_parser_pause(p, 1);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    hreq *r = req_of(p);
    int rc = 0;
    if (r->hdr != HDR_VALUE)
        rc = raw_append(r, ": ", 2);
    if (!rc)
        rc = raw_append(r, at, n);
    r->hdr = HDR_VALUE;
    if (rc)
        http_parser_pause(p, 1);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    hreq *r = req_of(p);
    sl_httpc_head *hd = &r->head;
    if (write_status(r, p) || raw_append(r, "\r\n\r\n", r->hdr == HDR_NONE ? 2 : 4)) {
        http_parser_pause(p, 1);
        return 0;
    }
    hd->status = (int)p->status_code;
    /* every line after the status line: "name: value" */
    const char *s = hd->raw.data, *end = hd->raw.data + hd->raw.len;
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    s = nl ? nl + 1 : end;
    while (s < end) {
        nl = memchr(s, '\n', (size_t)(end - s));
        const char *e = nl ? nl : end;
        size_t len = (size_t)(e - s);
        if (len && s[len - 1] == '\r')
            len--;
        if (len)
            sl__httpc_head_line(hd, s, len, &r->have_retry_ms);
        s = nl ? nl + 1 : end;
    }
    if (hd->status < 200)
        return 0; /* an interim 1xx head: the real one follows */
    r->head_done = 1;
    if (r->on_head) {
        r->depth++;
        int rc = r->on_head(&r->base, hd, r->user);
        r->depth--;
        if (rc)
            set_abort(r, rc, "aborted by the receiver");
        if (must_stop(r))
            http_parser_pause(p, 1);
    }
    sl__buf_free(&hd->raw);    /* the lines live until on_head returns (httpc.h) */
    return r->is_head ? 1 : 0; /* a response to HEAD has no body */
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    hreq *r = req_of(p);
    if (!r->on_data || n == 0)
        return 0;
    r->depth++;
    int rc = r->on_data(&r->base, at, n, r->user);
    r->depth--;
    if (rc)
        set_abort(r, rc, "aborted by the receiver");
    if (must_stop(r))
        http_parser_pause(p, 1);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    hreq *r = req_of(p);
    if (r->head.status < 200 && r->head.status != 0) {
        r->head_done = 0;
        return 0; /* the end of a 1xx: parse on */
    }
    r->complete = 1;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings SETTINGS = {
    .on_message_begin = on_message_begin,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* The request on k stops here with what the parser left: complete, cancelled, freed,
 * aborted, or paused with (p, n) unparsed. */
static void after_stop(conn *k, const char *p, size_t n)
{
    hreq *r = k->req;
    if (r->freed) {
        if (r->depth == 0)
            finalize(r);
        else
            detach(r, 0);
        return;
    }
    if (r->canceled) {
        detach(r, 0); /* the task reports it */
        return;
    }
    if (r->abort_err) {
        fail(r, r->abort_err, r->abort_msg);
        return;
    }
    if (r->complete) {
        /* bytes after the response: the server is confused; do not reuse the connection */
        detach(r, n == 0 && http_should_keep_alive(&k->parser));
        deliver_done(r, 0, "");
        return;
    }
    /* paused: keep the rest for the resume, stop reading */
    if (n) {
        char *h = realloc(r->held, r->held_len + n);
        if (!h) {
            fail(r, SL_ENOMEM, "out of memory holding paused data");
            return;
        }
        memcpy(h + r->held_len, p, n);
        r->held = h;
        r->held_len += n;
    }
    uv_read_stop((uv_stream_t *)&k->tcp);
}

/* Parse (p, n) for the request on k. */
static void feed(conn *k, const char *p, size_t n)
{
    hreq *r = k->req;
    note_rx(r);
    while (n) {
        size_t used = http_parser_execute(&k->parser, &SETTINGS, p, n);
        p += used;
        n -= used;
        enum http_errno e = HTTP_PARSER_ERRNO(&k->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&k->parser, 0);
            if (must_stop(r)) {
                after_stop(k, p, n);
                return;
            }
            continue;
        }
        if (e != HPE_OK) {
            char msg[128];
            snprintf(msg, sizeof msg, "bad HTTP response: %s", http_errno_description(e));
            fail(r, SL_ETRANSPORT, msg);
            return;
        }
        if (used == 0)
            break;
    }
}

/* ---- connections -------------------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h)
{
    free(h->data);
}

static void conn_close(conn *k)
{
    if (k->closed)
        return;
    k->closed = 1;
    if (k->req) {
        k->req->conn = NULL;
        k->req = NULL;
    }
    if (k->rs) {
        k->rs->conn = NULL; /* its callback frees it */
        k->rs = NULL;
    }
    if (k->ai)
        uv_freeaddrinfo(k->ai);
    k->ai = k->ai_next = NULL;
    sl__list_remove(&k->link);
    sl__list_remove(&k->all);
    origin *o = k->o;
    o->nconns--;
    uv_close((uv_handle_t *)&k->tcp, on_conn_closed);
    if (!k->c->dying)
        origin_kick(o);
}

/* A connection could not be made or broke: its request fails unless it may go again on
 * a new connection (nothing of the response arrived on a reused connection). */
static void conn_broke(conn *k, int err, const char *what)
{
    hreq *r = k->req;
    int may_retry = r && k->reused && !r->clk.got_byte && !r->retried && !r->held_len;
    if (!r) {
        conn_close(k);
        return;
    }
    char msg[160];
    if (k->state == CONN_CONNECTING || k->state == CONN_RESOLVING)
        snprintf(msg, sizeof msg, "cannot connect to %.80s: %s", k->o->authority, what);
    else if (err == UV_EOF)
        snprintf(msg, sizeof msg, "connection closed before the response was complete");
    else
        snprintf(msg, sizeof msg, "connection lost: %s", what);
    if (may_retry) {
        r->retried = 1;
        r->clk.sent = 0;
        detach(r, 0);
        conn_start(r->c, r->o, r);
        return;
    }
    fail(r, SL_ETRANSPORT, msg);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *k = s->data;
    sl_httpc *front = k->c->front;
    if (nread == 0)
        return;
    sl__httpc_enter(front);
    if (!k->req) { /* idle: the server closed it, or sent what nobody asked for */
        conn_close(k);
    } else if (nread > 0) {
        feed(k, buf->base, (size_t)nread);
    } else if (nread == UV_EOF && k->req->clk.got_byte) {
        /* the end of a close-delimited body completes the response */
        hreq *r = k->req;
        http_parser_execute(&k->parser, &SETTINGS, NULL, 0);
        if (HTTP_PARSER_ERRNO(&k->parser) == HPE_PAUSED)
            http_parser_pause(&k->parser, 0);
        if (r->complete) {
            detach(r, 0);
            deliver_done(r, 0, "");
        } else {
            conn_broke(k, UV_EOF, "closed");
        }
    } else {
        conn_broke(k, (int)nread, uv_strerror((int)nread));
    }
    sl__httpc_leave(front);
}

/* Read k (already reading is fine). 0 or a libuv error. */
static int start_reading(conn *k)
{
    int rc = uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
    return rc == UV_EALREADY ? 0 : rc;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    conn *k = h->data;
    buf->base = k->c->rbuf;
    buf->len = READ_BUFFER_BYTES;
}

static void on_write(uv_write_t *w, int status)
{
    wctx *x = (wctx *)w;
    conn *k = x->conn;
    free(x);
    if (status == UV_ECANCELED || k->closed)
        return; /* the connection is closing: whoever closed it has told the request */
    if (status < 0) {
        sl__httpc_enter(k->c->front);
        conn_broke(k, status, uv_strerror(status));
        sl__httpc_leave(k->c->front);
    }
}

/* Send k's request: head and body in one write (the rest queued if the socket is full). */
static void conn_send(conn *k)
{
    hreq *r = k->req;
    http_parser_init(&k->parser, HTTP_RESPONSE);
    k->parser.data = k;
    r->clk.connecting = 0;
    r->clk.sent = 1;
    r->clk.t_sent = uv_now(k->c->loop);
    arm(r);
    uv_ref((uv_handle_t *)&k->tcp);
    uv_buf_t b[4];
    unsigned nb = 0;
    b[nb++] = uv_buf_init(r->out, (unsigned)r->out_len);
    if (r->hs && r->hs->block_len)
        b[nb++] = uv_buf_init(r->hs->block, (unsigned)r->hs->block_len);
    b[nb++] = uv_buf_init(r->tail, r->tail_len);
    if (r->body_len)
        b[nb++] = uv_buf_init((char *)r->body, (unsigned)r->body_len);
    int n = uv_try_write((uv_stream_t *)&k->tcp, b, nb);
    if (n < 0 && n != UV_EAGAIN && k->reused && !r->retried) {
        /* the server closed this kept-alive connection: once more on a new one */
        r->retried = 1;
        r->clk.sent = 0;
        detach(r, 0);
        conn_start(r->c, r->o, r);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        /* report from the loop: conn_send may run inside a caller (start) */
        r->pending_err = SL_ETRANSPORT;
        snprintf(r->abort_msg, sizeof r->abort_msg, "cannot send the request: %s", uv_strerror(n));
        sl__httpc_defer(k->c->front, &r->task);
        return;
    }
    size_t left = n > 0 ? (size_t)n : 0;
    unsigned i = 0;
    while (i < nb && left >= b[i].len)
        left -= b[i++].len;
    if (i < nb) {
        b[i].base += left;
        b[i].len -= left;
        wctx *x = malloc(sizeof *x);
        if (!x || uv_write(&x->w, (uv_stream_t *)&k->tcp, b + i, nb - i, on_write)) {
            free(x);
            r->pending_err = x ? SL_ETRANSPORT : SL_ENOMEM;
            snprintf(r->abort_msg, sizeof r->abort_msg, "cannot send the request");
            sl__httpc_defer(k->c->front, &r->task);
            return;
        }
        x->conn = k;
    }
    if (start_reading(k) && !r->pending_err) {
        r->pending_err = SL_ETRANSPORT;
        snprintf(r->abort_msg, sizeof r->abort_msg, "cannot read the connection");
        sl__httpc_defer(k->c->front, &r->task);
    }
}

static void on_connect(uv_connect_t *cr, int status);

/* Try the next resolved address, or fail the connection. */
static void conn_try(conn *k)
{
    int rc = UV_EADDRNOTAVAIL;
    while (k->ai_next) {
        struct addrinfo *a = k->ai_next;
        k->ai_next = a->ai_next;
        if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
            continue;
        rc = uv_tcp_connect(&k->connect, &k->tcp, a->ai_addr, on_connect);
        if (rc == 0)
            return;
    }
    conn_broke(k, rc, uv_strerror(rc));
}

static void on_connect(uv_connect_t *cr, int status)
{
    conn *k = cr->data;
    if (k->closed)
        return;
    sl__httpc_enter(k->c->front);
    if (status < 0) {
        conn *k2 = k->ai_next && k->req ? conn_new(k->c, k->o) : NULL;
        if (k2) { /* the next address, on a fresh socket */
            hreq *r = k->req;
            k2->ai = k->ai;
            k2->ai_next = k->ai_next;
            k->ai = k->ai_next = NULL;
            k->req = NULL;
            r->conn = k2;
            k2->req = r;
            k2->state = CONN_CONNECTING;
            conn_close(k);
            conn_try(k2);
        } else {
            conn_broke(k, status, uv_strerror(status));
        }
    } else {
        if (k->ai)
            uv_freeaddrinfo(k->ai);
        k->ai = k->ai_next = NULL;
        uv_tcp_nodelay(&k->tcp, 1);
        k->state = CONN_BUSY;
        if (k->req)
            conn_send(k);
        else
            conn_close(k); /* its request went while it connected */
    }
    sl__httpc_leave(k->c->front);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    resolve *rs = (resolve *)g;
    conn *k = rs->conn;
    free(rs);
    if (!k) {
        uv_freeaddrinfo(res);
        return;
    }
    k->rs = NULL;
    sl__httpc_enter(k->c->front);
    if (status < 0) {
        conn_broke(k, status, uv_strerror(status));
    } else {
        k->ai = k->ai_next = res;
        k->state = CONN_CONNECTING;
        conn_try(k);
    }
    sl__httpc_leave(k->c->front);
}

/* A connection of o, not yet connected, or NULL. */
static conn *conn_new(sl_h1c *c, origin *o)
{
    conn *k = calloc(1, sizeof *k);
    if (!k || uv_tcp_init(c->loop, &k->tcp)) {
        free(k);
        return NULL;
    }
    k->c = c;
    k->o = o;
    k->tcp.data = k;
    k->connect.data = k;
    sl__list_init(&k->link);
    sl__list_push(&c->conns, &k->all);
    o->nconns++;
    return k;
}

/* A new connection for r to o. Errors reach r from the loop. */
static void conn_start(sl_h1c *c, origin *o, hreq *r)
{
    conn *k = conn_new(c, o);
    if (!k) {
        r->pending_err = SL_ENOMEM;
        snprintf(r->abort_msg, sizeof r->abort_msg, "out of memory for a connection");
        sl__httpc_defer(c->front, &r->task);
        return;
    }
    k->req = r;
    r->conn = k;
    r->clk.connecting = 1;
    r->clk.t_connect = uv_now(c->loop);
    arm(r);

    struct sockaddr_storage sa;
    if (uv_ip4_addr(o->host, o->port, (struct sockaddr_in *)&sa) == 0 ||
        uv_ip6_addr(o->host, o->port, (struct sockaddr_in6 *)&sa) == 0) {
        k->state = CONN_CONNECTING;
        int rc = uv_tcp_connect(&k->connect, &k->tcp, (struct sockaddr *)&sa, on_connect);
        if (rc) {
            r->pending_err = SL_ETRANSPORT;
            snprintf(r->abort_msg, sizeof r->abort_msg, "cannot connect to %.80s: %s", o->authority,
                     uv_strerror(rc));
            sl__httpc_defer(c->front, &r->task);
        }
        return;
    }
    k->state = CONN_RESOLVING;
    resolve *rs = calloc(1, sizeof *rs);
    char port[8];
    snprintf(port, sizeof port, "%d", o->port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (!rs || uv_getaddrinfo(c->loop, &rs->gai, on_resolved, o->host, port, &hints)) {
        free(rs);
        r->pending_err = SL_ETRANSPORT;
        snprintf(r->abort_msg, sizeof r->abort_msg, "cannot resolve %.80s", o->host);
        sl__httpc_defer(c->front, &r->task);
        return;
    }
    rs->conn = k;
    k->rs = rs;
}

/* Give r a connection: an idle one, a new one under the cap, or a place in the queue. */
static void assign(hreq *r)
{
    origin *o = r->o;
    if (!sl__list_empty(&o->idle)) {
        conn *k = SL_CONTAINER_OF(o->idle.prev, conn, link);
        sl__list_remove(&k->link);
        take(k, r);
        return;
    }
    int cap = r->c->o.max_host_connections;
    if (cap > 0 && o->nconns >= cap) {
        sl__list_push(&o->waiting, &r->wait);
        return;
    }
    conn_start(r->c, o, r);
}

/* A connection of o closed: waiting requests may open new ones. */
static void origin_kick(origin *o)
{
    while (!sl__list_empty(&o->waiting)) {
        hreq *r = SL_CONTAINER_OF(o->waiting.next, hreq, wait);
        int cap = r->c->o.max_host_connections;
        if (sl__list_empty(&o->idle) && cap > 0 && o->nconns >= cap)
            return;
        sl__list_remove(&r->wait);
        assign(r);
    }
}

/* ---- starting a request ------------------------------------------------------------- */

/* Split an http:// URL. host gets the name without brackets, authority "host[:port]" as
 * written, *path the rest (at least "/"). 0 or SL_EINVAL. */
static int split_url(const char *url, char *host, char *authority, int *port, const char **path)
{
    const char *a = url + 7; /* after "http://" */
    size_t alen = strcspn(a, "/?#");
    if (alen == 0 || alen > MAX_URL_HOST || memchr(a, '@', alen))
        return SL_EINVAL; /* no host, too long, or credentials in the URL */
    memcpy(authority, a, alen);
    authority[alen] = '\0';
    const char *hs = a, *he;
    const char *portp = NULL;
    if (*a == '[') {
        const char *rb = memchr(a, ']', alen);
        if (!rb)
            return SL_EINVAL;
        hs = a + 1;
        he = rb;
        if (rb + 1 < a + alen) {
            if (rb[1] != ':')
                return SL_EINVAL;
            portp = rb + 2;
        }
    } else {
        const char *colon = memchr(a, ':', alen);
        he = colon ? colon : a + alen;
        if (colon)
            portp = colon + 1;
    }
    if (he == hs)
        return SL_EINVAL;
    for (const char *s = hs; s < he; s++)
        if (*s <= ' ' || *s == '%' || *s == '\\' || (unsigned char)*s >= 0x7f)
            return SL_EINVAL;
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    *port = 80;
    if (portp) {
        long v = 0;
        const char *e = a + alen;
        if (portp == e)
            return SL_EINVAL;
        for (const char *s = portp; s < e; s++) {
            if (*s < '0' || *s > '9' || (v = v * 10 + (*s - '0')) > 65535)
                return SL_EINVAL;
        }
        if (v == 0)
            return SL_EINVAL;
        *port = (int)v;
    }
    *path = a + alen;
    return 0;
}

static origin *origin_get(sl_h1c *c, const char *host, const char *authority, int port)
{
    for (origin *o = c->origins; o; o = o->next)
        if (o->port == port && !strcasecmp(o->host, host))
            return o;
    origin *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    snprintf(o->host, sizeof o->host, "%s", host);
    snprintf(o->authority, sizeof o->authority, "%s", authority);
    o->port = port;
    sl__list_init(&o->idle);
    sl__list_init(&o->waiting);
    o->next = c->origins;
    c->origins = o;
    return o;
}

static int line_ok(const char *s, size_t n)
{
    return n && !memchr(s, '\r', n) && !memchr(s, '\n', n) && memchr(s, ':', n);
}

static int is_token_char(int ch)
{
    return ch > ' ' && ch < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", ch);
}

/* The request line and header lines, ending with the blank line. 0, SL_EINVAL, SL_ENOMEM. */
static int build_head(hreq *r, const char *method, const char *path, const sl_httpc_req_opts *o,
                      int with_length)
{
    size_t plen = strcspn(path, "#");
    for (const char *m = method; *m; m++)
        if (!is_token_char((unsigned char)*m))
            return SL_EINVAL;
    for (size_t i = 0; i < plen; i++)
        if ((unsigned char)path[i] <= ' ' || (unsigned char)path[i] == 0x7f)
            return SL_EINVAL;
    /* a header set lives as long as the client: it is sent from where it is */
    size_t hdr = 0;
    if (!o->header_set) {
        for (size_t i = 0; i < o->nheaders; i++) {
            size_t n = strlen(o->headers[i]);
            if (!line_ok(o->headers[i], n))
                return SL_EINVAL;
            hdr += n + 2;
        }
    }
    size_t cap = strlen(method) + plen + strlen(r->o->authority) + hdr + 32;
    char *b = malloc(cap);
    if (!b)
        return SL_ENOMEM;
    int n = snprintf(b, cap, "%s %s%.*s HTTP/1.1\r\nHost: %s\r\n", method,
                     path[0] == '/' ? "" : "/", (int)plen, path, r->o->authority);
    size_t len = (size_t)n;
    if (!o->header_set) {
        for (size_t i = 0; i < o->nheaders; i++) {
            size_t l = strlen(o->headers[i]);
            memcpy(b + len, o->headers[i], l);
            memcpy(b + len + l, "\r\n", 2);
            len += l + 2;
        }
    }
    r->out = b;
    r->out_len = len;
    r->hs = o->header_set;
    n = with_length ? snprintf(r->tail, sizeof r->tail, "Content-Length: %zu\r\n\r\n", o->body_len)
                    : snprintf(r->tail, sizeof r->tail, "\r\n");
    r->tail_len = (unsigned char)n;
    return 0;
}

static void req_task(sl_httpc_task *t);

int sl__h1c_start(sl_h1c *c, const sl_httpc_req_opts *o, sl_httpc_req **out)
{
    *out = NULL;
    char host[MAX_URL_HOST + 1], authority[MAX_URL_HOST + 1];
    int port;
    const char *path;
    if (split_url(o->url, host, authority, &port, &path))
        return SL_EINVAL;
    origin *org = origin_get(c, host, authority, port);
    if (!org)
        return SL_ENOMEM;
    hreq *r = calloc(1, sizeof *r);
    if (!r)
        return SL_ENOMEM;
    r->base.kind = SL_HTTPC_REQ_H1;
    r->c = c;
    r->o = org;
    r->on_head = o->on_head;
    r->on_data = o->on_data;
    r->on_done = o->on_done;
    r->user = o->user;
    r->body = o->body;
    r->body_len = o->body ? o->body_len : 0;
    const char *method = o->method ? o->method : (o->body ? "POST" : "GET");
    r->is_head = !strcmp(method, "HEAD");
    int rc = build_head(r, method, path, o, o->body || !strcmp(method, "POST"));
    if (rc) {
        free(r);
        return rc;
    }
    r->clk.first_byte_ms =
        sl__httpc_pick_timeout(o->first_byte_timeout_ms, c->o.first_byte_timeout_ms);
    r->clk.idle_ms = sl__httpc_pick_timeout(o->idle_timeout_ms, c->o.idle_timeout_ms);
    r->clk.total_ms = sl__httpc_pick_timeout(o->total_timeout_ms, c->o.total_timeout_ms);
    r->clk.connect_ms = sl__httpc_pick_timeout(o->connect_timeout_ms, c->o.connect_timeout_ms);
    sl__list_init(&r->link);
    sl__list_init(&r->wait);
    sl__httpc_task_init(&r->task, req_task);
    sl__buf_init(&r->head.raw, c->o.max_header_bytes);
    sl__httpc_head_reset(&r->head);
    r->head.first_byte_ms = -1;
    r->clk.t_start = uv_now(c->loop);
    uv_timer_init(c->loop, &r->timer);
    r->timer.data = r;
    sl__list_push(&c->reqs, &r->link);
    assign(r);
    *out = &r->base;
    return 0;
}

/* ---- the owner's calls -------------------------------------------------------------- */

static void req_task(sl_httpc_task *t)
{
    hreq *r = SL_CONTAINER_OF(t, hreq, task);
    if (r->freed) {
        finalize(r);
        return;
    }
    if (r->done)
        return;
    if (r->canceled) {
        sl__list_remove(&r->wait);
        detach(r, 0);
        deliver_done(r, SL_ECANCELED, "cancelled");
        return;
    }
    if (r->pending_err) {
        fail(r, r->pending_err, r->abort_msg);
        return;
    }
    if (r->resume_wanted && !r->clk.paused) {
        r->resume_wanted = 0;
        conn *k = r->conn;
        if (!k)
            return;
        if (r->held_len) {
            char *held = r->held;
            size_t n = r->held_len;
            r->held = NULL;
            r->held_len = 0;
            feed(k, held, n);
            free(held);
            if (r->conn != k || r->clk.paused || r->done || r->freed || r->canceled)
                return;
        }
        if (start_reading(k))
            fail(r, SL_ETRANSPORT, "cannot read the connection");
    }
}

static hreq *h1(sl_httpc_req *br)
{
    return (hreq *)br;
}

void sl__h1c_pause(sl_httpc_req *br)
{
    hreq *r = h1(br);
    if (r->clk.paused || r->done || r->canceled || r->freed)
        return;
    r->clk.paused = 1;
    r->resume_wanted = 0;
    /* inside on_data the parser stops after the callback; outside, stop reading now */
    if (r->conn && r->depth == 0 && r->conn->state == CONN_BUSY)
        uv_read_stop((uv_stream_t *)&r->conn->tcp);
    arm(r);
}

void sl__h1c_resume(sl_httpc_req *br)
{
    hreq *r = h1(br);
    if (!r->clk.paused || r->done || r->canceled || r->freed)
        return;
    r->clk.paused = 0;
    r->resume_wanted = 1;
    r->clk.t_last_rx = uv_now(r->c->loop);
    arm(r);
    /* held bytes are parsed from the loop, not from here */
    sl__httpc_defer(r->c->front, &r->task);
}

void sl__h1c_cancel(sl_httpc_req *br)
{
    hreq *r = h1(br);
    if (r->done || r->canceled || r->freed)
        return;
    r->canceled = 1;
    uv_timer_stop(&r->timer);
    sl__list_remove(&r->wait);
    if (r->depth == 0)
        detach(r, 0); /* the connection closes now */
    sl__httpc_defer(r->c->front, &r->task);
}

void sl__h1c_req_free(sl_httpc_req *br)
{
    hreq *r = h1(br);
    if (r->freed)
        return;
    r->freed = 1;
    if (r->depth) {
        uv_timer_stop(&r->timer);
        return; /* the parser stops after the callback and finalizes */
    }
    finalize(r);
}

const sl_httpc_head *sl__h1c_head(const sl_httpc_req *br)
{
    return &((const hreq *)br)->head;
}
