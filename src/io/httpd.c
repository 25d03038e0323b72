/* httpd.c — a small HTTP/1.1 server on libuv; http-parser parses the requests.
 *
 * Sits in io/, under the mock and the gateway. Each accepted socket gets one struct conn:
 * the parser, the input not parsed yet, the one request in progress, and one uv_timer
 * that serves every deadline of the connection (idle, header, linger, throttle, and the
 * deferred resume of pipelined input). The application is never called from inside an
 * http-parser callback: the callbacks only record and pause the parser, and the driver
 * (conn_process) acts once the parser has returned. Requests are answered strictly one
 * at a time per connection. A connection's memory is freed in its close callbacks only,
 * and nothing a peer sends can make it abort or grow past the caps in sl_httpd_limits. */
#include "io/httpd.h"

#include <http_parser.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"

#define SLAB_SIZE (64 * 1024) /* one read, shared by all connections of a server */
#define IN_HIGH   (64 * 1024) /* stop reading once this much input waits unparsed */
#define IN_READ   (16 * 1024) /* read size when appending to input that waits */
#define IN_MAX    (IN_HIGH + SLAB_SIZE + IN_READ)
#define LINGER_MS 2000       /* after our FIN, how long to drain what the peer still sends */
#define BACKLOG   4096       /* the kernel caps it at net.core.somaxconn (4096 on Debian 12) */
#define HEAD_KEEP (8 * 1024) /* buffers bigger than these are freed between requests */
#define BODY_KEEP (64 * 1024)
#define FLUSH_NOW (32 * 1024) /* pending output sent at once rather than at the end of the pass */

enum req_state {
    REQ_NONE,      /* between requests */
    REQ_HEAD,      /* request line and headers being read */
    REQ_BODY,      /* headers complete, body being read */
    REQ_ACTIVE,    /* handed to on_request, no response yet */
    REQ_STREAMING, /* sl__httpd_start called */
    REQ_DONE,      /* response ended */
};
enum { DL_NONE, DL_IDLE, DL_HEADER, DL_LINGER };
enum { EV_NONE, EV_HEADERS, EV_MESSAGE };
enum { CB_NONE, CB_FIELD, CB_VALUE };
enum { FR_LENGTH, FR_CHUNKED, FR_CLOSE, FR_NONE };

typedef struct hdr_ent {
    size_t no, nl, vo, vl; /* name and value: offset and length in req.head */
} hdr_ent;

typedef struct conn conn;

struct sl_httpd_req {
    conn *c;
    int state;
    int notify;  /* the application holds the request: on_close is owed if the socket goes */
    sl_buf head; /* the URL, then header names and values */
    hdr_ent *hdrs;
    int nhdr, hdr_cap;
    int last_cb;
    size_t url_len;
    size_t path_off, path_len, query_off, query_len;
    int path_root; /* absolute-form URL without a path: the path is "/" */
    sl_buf body;
    unsigned method;
    int is_head;
    int keep_alive;
    int chunked_ok; /* HTTP/1.1: the peer understands chunked responses */
    int expect_continue;
    int resp_chunked;
    void *user;
    sl_httpd_close_cb on_close;
    sl_httpd_drain_cb on_drain;
    long throttle_ms;
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown;
    sl_httpd *srv;
    conn *prev, *next;
    http_parser parser;
    sl_buf in; /* input received but not parsed yet (a pipelined request waits here) */
    sl_httpd_req req;
    int event;
    int err_status;
    char err_msg[128];
    int handles; /* open uv handles; memory goes when it reaches 0 */
    unsigned closing : 1, want_close : 1, lingering : 1, reading : 1, in_dispatch : 1, above : 1,
        resume_pending : 1, close_after : 1, fake : 1;
    int dl_kind;
    uint64_t deadline, throttle_until, timer_due;
    uint64_t fake_now;
    size_t queued;       /* bytes handed to uv_write and not written yet */
    sl_buf out;          /* bytes written by the application this loop pass, not sent yet */
    conn *dprev, *dnext; /* in srv->dirty while out holds bytes */
    unsigned dirty : 1;
    char peer[64];
};

struct sl_httpd {
    uv_loop_t *loop;
    sl_httpd_limits lim;
    sl_httpd_handlers h;
    uv_tcp_t listener;
    int listening, port, freeing, listener_closed;
    unsigned long accepted, open, rejecting;
    conn *conns;
    /* Write coalescing: everything a connection is given during one loop pass goes out
     * in one syscall, from the prepare (before the loop blocks) or check (after I/O)
     * phase. A 20-chunk stream produced at once is one write, not 20. */
    conn *dirty;
    uv_prepare_t flush_prepare;
    uv_check_t flush_check;
    int flush_active, flush_closed;
    sl_buf scratch; /* response head being built */
    sl_buf ebody;   /* JSON error body being built */
    int64_t (*clock)(void);
    int64_t date_sec;
    char date[128];
    unsigned long fake_sink;
    char slab[SLAB_SIZE];
};

typedef struct wreq {
    uv_write_t w;
    size_t len;
    char data[];
} wreq;

static void conn_close(conn *c);
static void conn_shutdown(conn *c);
static void send_error(conn *c, int status, const char *msg);
static void on_timer(uv_timer_t *t);
static void flush_all(sl_httpd *s);
static void on_flush_prepare(uv_prepare_t *h);
static void on_flush_check(uv_check_t *h);
static void flush_conn(conn *c, int notify);

/* ---------------------------------------------------------------- limits, server */

void sl__httpd_limits_init(sl_httpd_limits *l)
{
    l->max_header_bytes = 16 * 1024;
    l->max_headers = 100;
    l->max_body = 1024 * 1024;
    l->header_timeout_ms = 10000;
    l->idle_timeout_ms = 60000;
    l->write_high_watermark = 256 * 1024;
    l->max_connections = 10000;
}

static void limits_fill(sl_httpd_limits *out, const sl_httpd_limits *in)
{
    sl_httpd_limits d;
    sl__httpd_limits_init(&d);
    *out = in ? *in : d;
    if (!out->max_header_bytes)
        out->max_header_bytes = d.max_header_bytes;
    if (out->max_headers <= 0)
        out->max_headers = d.max_headers;
    if (!out->max_body)
        out->max_body = d.max_body;
    if (!out->write_high_watermark)
        out->write_high_watermark = d.write_high_watermark;
    if (out->max_connections <= 0)
        out->max_connections = d.max_connections;
}

static void server_setup(sl_httpd *s, uv_loop_t *loop, const sl_httpd_limits *limits,
                         const sl_httpd_handlers *h)
{
    memset(s, 0, offsetof(sl_httpd, slab));
    s->loop = loop;
    limits_fill(&s->lim, limits);
    s->h = *h;
    sl__buf_init(&s->scratch, 0);
    sl__buf_init(&s->ebody, 0);
    s->clock = sl__clock_unix;
    s->date_sec = -1;
}

int sl__httpd_new(uv_loop_t *loop, const sl_httpd_limits *limits, const sl_httpd_handlers *h,
                  sl_httpd **out)
{
    if (!loop || !h || !h->on_request || !out)
        return SL_EINVAL;
    *out = NULL;
    /* libuv writes with writev(): a peer that resets mid-response would raise SIGPIPE and
     * kill the process. Ignore it unless the application installed its own handler. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    sl_httpd *s = malloc(sizeof *s);
    if (!s)
        return SL_ENOMEM;
    server_setup(s, loop, limits, h);
    if (uv_tcp_init(loop, &s->listener)) {
        free(s);
        return SL_ENOMEM;
    }
    s->listener.data = s;
    uv_prepare_init(loop, &s->flush_prepare);
    uv_check_init(loop, &s->flush_check);
    s->flush_prepare.data = s->flush_check.data = s;
    *out = s;
    return 0;
}

void sl__httpd_set_clock(sl_httpd *s, int64_t (*now_unix)(void))
{
    s->clock = now_unix ? now_unix : sl__clock_unix;
    s->date_sec = -1;
}

static void server_maybe_free(sl_httpd *s)
{
    if (!s->freeing || !s->listener_closed || s->open || s->rejecting || s->flush_closed < 2)
        return;
    sl__buf_free(&s->scratch);
    sl__buf_free(&s->ebody);
    free(s);
}

static void on_listener_closed(uv_handle_t *h)
{
    sl_httpd *s = h->data;
    s->listener_closed = 1;
    server_maybe_free(s);
}

static void on_flush_closed(uv_handle_t *h)
{
    sl_httpd *s = h->data;
    s->flush_closed++;
    server_maybe_free(s);
}

void sl__httpd_free(sl_httpd *s)
{
    if (!s || s->freeing)
        return;
    s->freeing = 1;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    for (conn *c = s->conns; c; c = c->next)
        conn_close(c);
    uv_close((uv_handle_t *)&s->flush_prepare, on_flush_closed);
    uv_close((uv_handle_t *)&s->flush_check, on_flush_closed);
}

int sl__httpd_port(const sl_httpd *s)
{
    return s->port;
}

unsigned long sl__httpd_accepted(const sl_httpd *s)
{
    return s->accepted;
}

unsigned long sl__httpd_open_connections(const sl_httpd *s)
{
    return s->open;
}

/* ---------------------------------------------------------------- timers, reading */

static uint64_t conn_now(const conn *c)
{
    return c->fake ? c->fake_now : uv_now(c->srv->loop);
}

static void set_deadline(conn *c, int kind, long ms)
{
    if (kind == DL_NONE || ms <= 0) {
        c->deadline = 0;
        c->dl_kind = DL_NONE;
        return;
    }
    c->deadline = conn_now(c) + (uint64_t)ms;
    c->dl_kind = kind;
}

/* The one timer fires at the earliest of the connection's deadlines. It is re-armed only
 * when a deadline moves earlier; a timer that fires early just re-arms (fewer heap ops on
 * the hot path, where every request sets and clears a header deadline). */
static void arm_timer(conn *c)
{
    if (c->closing || c->fake)
        return;
    uint64_t now = uv_now(c->srv->loop), due = UINT64_MAX;
    if (c->resume_pending)
        due = now;
    if (c->deadline && c->deadline < due)
        due = c->deadline;
    if (c->throttle_until && c->throttle_until < due)
        due = c->throttle_until;
    if (due == UINT64_MAX)
        return;
    if (c->timer_due && c->timer_due <= due)
        return;
    c->timer_due = due;
    uv_timer_start(&c->timer, on_timer, due > now ? due - now : 0, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void update_reading(conn *c)
{
    if (c->closing)
        return;
    int want = c->lingering || (!c->want_close && !c->throttle_until && c->in.len < IN_HIGH);
    if (want == (int)c->reading)
        return;
    c->reading = want;
    if (c->fake)
        return;
    if (want) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read))
            conn_close(c);
    } else {
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
}

/* ---------------------------------------------------------------- connection lifetime */

static void req_reset(sl_httpd_req *r)
{
    r->state = REQ_NONE;
    r->notify = 0;
    if (r->head.cap > HEAD_KEEP)
        sl__buf_free(&r->head);
    sl__buf_reset(&r->head);
    if (r->body.cap > BODY_KEEP)
        sl__buf_free(&r->body);
    sl__buf_reset(&r->body);
    r->nhdr = 0;
    r->last_cb = CB_NONE;
    r->url_len = 0;
    r->path_off = r->path_len = r->query_off = r->query_len = 0;
    r->path_root = 0;
    r->method = 0;
    r->is_head = 0;
    r->keep_alive = 0;
    r->chunked_ok = 0;
    r->expect_continue = 0;
    r->resp_chunked = 0;
    r->user = NULL;
    r->on_close = NULL;
    r->on_drain = NULL;
    r->throttle_ms = 0;
}

static conn *conn_new(sl_httpd *s)
{
    conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->srv = s;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    sl__buf_init(&c->in, IN_MAX);
    sl__buf_init(&c->out, 0);
    sl__buf_init(&c->req.head, 0);
    sl__buf_init(&c->req.body, s->lim.max_body);
    c->req.c = c;
    req_reset(&c->req);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->open++;
    return c;
}

static void conn_finalize(conn *c)
{
    sl_httpd *s = c->srv;
    sl_httpd_req *r = &c->req;
    if (r->notify && r->on_close) {
        r->notify = 0;
        r->on_close(r, r->user);
    }
    r->notify = 0;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->open--;
    sl__buf_free(&c->in);
    sl__buf_free(&c->out);
    sl__buf_free(&r->head);
    sl__buf_free(&r->body);
    free(r->hdrs);
    free(c);
    server_maybe_free(s);
}

static void dirty_unlink(conn *c)
{
    if (!c->dirty)
        return;
    if (c->dprev)
        c->dprev->dnext = c->dnext;
    else
        c->srv->dirty = c->dnext;
    if (c->dnext)
        c->dnext->dprev = c->dprev;
    c->dprev = c->dnext = NULL;
    c->dirty = 0;
}

static void on_conn_closed(uv_handle_t *h)
{
    conn *c = h->data;
    if (--c->handles == 0)
        conn_finalize(c);
}

/* Close at once. Pending writes are cancelled; on_close (if owed) fires in the close
 * callback, never from inside a call the application made. */
static void conn_close(conn *c)
{
    if (c->closing)
        return;
    if (c->dirty) {
        /* What the application wrote before closing (a stream cut after N chunks) still
         * goes out, best effort, ahead of the FIN. */
        dirty_unlink(c);
        if (c->queued == 0)
            uv_try_write((uv_stream_t *)&c->tcp, &(uv_buf_t){c->out.data, c->out.len}, 1);
    }
    c->closing = 1;
    c->reading = 0;
    if (c->fake)
        return;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_shutdown(uv_shutdown_t *sr, int status)
{
    conn *c = sr->handle->data;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    /* Our FIN is out. Closing now could turn unread input into an RST that destroys the
     * response in the peer's receive buffer, so read and discard until its FIN. */
    c->lingering = 1;
    set_deadline(c, DL_LINGER, LINGER_MS);
    update_reading(c);
    arm_timer(c);
}

/* The last response is queued: send it, then FIN, then linger, then close. */
static void conn_shutdown(conn *c)
{
    if (c->closing || c->want_close)
        return;
    c->want_close = 1;
    c->resume_pending = 0;
    c->throttle_until = 0;
    set_deadline(c, DL_NONE, 0);
    if (c->fake) {
        conn_close(c);
        return;
    }
    if (c->dirty) {
        dirty_unlink(c);
        flush_conn(c, 0);
        if (c->closing)
            return;
    }
    update_reading(c);
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown))
        conn_close(c);
}

/* ---------------------------------------------------------------- writing */

static void written(conn *c)
{
    sl_httpd_req *r = &c->req;
    if (c->closing || !c->above || c->queued + c->out.len > c->srv->lim.write_high_watermark / 2)
        return;
    c->above = 0;
    if (r->notify && r->on_drain && (r->state == REQ_ACTIVE || r->state == REQ_STREAMING))
        r->on_drain(r, r->user);
}

static void on_write(uv_write_t *w, int status)
{
    wreq *wr = (wreq *)w;
    conn *c = w->handle->data;
    c->queued -= wr->len;
    free(wr);
    if (status < 0) {
        conn_close(c);
        return;
    }
    written(c);
}

/* Send out what the connection holds. Tries the socket directly first; what it does not
 * take is handed to one uv_write. notify: may call on_drain (only from the loop, never
 * from inside a call the application made). */
static void flush_conn(conn *c, int notify)
{
    size_t total = c->out.len, done = 0;
    if (c->closing || total == 0)
        return;
    if (c->queued == 0) {
        uv_buf_t b = uv_buf_init(c->out.data, (unsigned)total);
        int rc = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (rc < 0 && rc != UV_EAGAIN) {
            sl__buf_reset(&c->out);
            conn_close(c);
            return;
        }
        done = rc > 0 ? (size_t)rc : 0;
    }
    size_t rem = total - done;
    if (rem) {
        wreq *w = malloc(sizeof *w + rem);
        if (!w) {
            sl__buf_reset(&c->out);
            conn_close(c);
            return;
        }
        w->len = rem;
        memcpy(w->data, c->out.data + done, rem);
        uv_buf_t b = uv_buf_init(w->data, (unsigned)rem);
        if (uv_write(&w->w, (uv_stream_t *)&c->tcp, &b, 1, on_write)) {
            free(w);
            sl__buf_reset(&c->out);
            conn_close(c);
            return;
        }
        c->queued += rem;
    }
    if (c->out.cap > BODY_KEEP)
        sl__buf_free(&c->out);
    else
        sl__buf_reset(&c->out);
    if (c->queued >= c->srv->lim.write_high_watermark)
        c->above = 1;
    else if (notify)
        written(c);
}

static void flush_all(sl_httpd *s)
{
    while (s->dirty) {
        conn *c = s->dirty;
        dirty_unlink(c);
        flush_conn(c, 1);
    }
    if (s->flush_active) {
        s->flush_active = 0;
        uv_prepare_stop(&s->flush_prepare);
        uv_check_stop(&s->flush_check);
    }
}

static void on_flush_prepare(uv_prepare_t *h)
{
    flush_all(h->data);
}

static void on_flush_check(uv_check_t *h)
{
    flush_all(h->data);
}

/* Queue bufs, in order, for this loop pass's single write. 0, or SL_EIO/SL_ENOMEM (the
 * connection is then closing). */
static int conn_send(conn *c, const uv_buf_t *bufs, unsigned n)
{
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    if (c->closing)
        return SL_EIO;
    if (total == 0)
        return 0;
    if (c->fake) {
        c->srv->fake_sink += total;
        c->queued += total;
        if (c->queued >= c->srv->lim.write_high_watermark)
            c->above = 1;
        return 0;
    }
    if (sl__buf_reserve(&c->out, total)) {
        conn_close(c);
        return SL_ENOMEM;
    }
    for (unsigned i = 0; i < n; i++)
        sl__buf_append(&c->out, bufs[i].base, bufs[i].len);
    sl_httpd *s = c->srv;
    if (!c->dirty) {
        c->dirty = 1;
        c->dprev = NULL;
        c->dnext = s->dirty;
        if (s->dirty)
            s->dirty->dprev = c;
        s->dirty = c;
        if (!s->flush_active && !s->freeing) {
            s->flush_active = 1;
            uv_prepare_start(&s->flush_prepare, on_flush_prepare);
            uv_check_start(&s->flush_check, on_flush_check);
        }
    }
    /* A big response goes out as it is produced: the buffer stays small, and the
     * socket's own buffer fills before the application is told to stop. */
    if (c->out.len >= FLUSH_NOW) {
        dirty_unlink(c);
        flush_conn(c, 0);
        if (c->closing)
            return SL_EIO;
    }
    if (c->queued + c->out.len >= s->lim.write_high_watermark)
        c->above = 1;
    return 0;
}

static const char *date_now(sl_httpd *s)
{
    static const char wd[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int64_t now = s->clock();
    if (now == s->date_sec)
        return s->date;
    time_t t = (time_t)now;
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        memset(&tm, 0, sizeof tm);
    snprintf(s->date, sizeof s->date, "%s, %02d %s %04d %02d:%02d:%02d GMT", wd[tm.tm_wday % 7],
             tm.tm_mday, mon[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    s->date_sec = now;
    return s->date;
}

#define LIT(b, s) sl__buf_append((b), (s), sizeof(s) - 1)

/* Build the status line and headers into s->scratch; decides Connection and close_after. */
static int head_build(conn *c, int status, const char *ctype, const char *extra, int framing,
                      size_t clen)
{
    sl_httpd *s = c->srv;
    sl_buf *b = &s->scratch;
    char num[32];
    int rc = 0;
    if (!c->req.keep_alive || s->freeing || framing == FR_CLOSE)
        c->close_after = 1;
    const char *reason = http_status_str((enum http_status)status);
    if (!reason || reason[0] == '<')
        reason = "";
    sl__buf_reset(b);
    snprintf(num, sizeof num, "%d ", status);
    rc |= LIT(b, "HTTP/1.1 ");
    rc |= sl__buf_append_str(b, num);
    rc |= sl__buf_append_str(b, reason);
    rc |= LIT(b, "\r\nDate: ");
    rc |= sl__buf_append_str(b, date_now(s));
    if (c->close_after)
        rc |= LIT(b, "\r\nConnection: close\r\n");
    else
        rc |= LIT(b, "\r\nConnection: keep-alive\r\n");
    if (ctype) {
        rc |= LIT(b, "Content-Type: ");
        rc |= sl__buf_append_str(b, ctype);
        rc |= LIT(b, "\r\n");
    }
    if (framing == FR_LENGTH) {
        snprintf(num, sizeof num, "%zu", clen);
        rc |= LIT(b, "Content-Length: ");
        rc |= sl__buf_append_str(b, num);
        rc |= LIT(b, "\r\n");
    } else if (framing == FR_CHUNKED) {
        rc |= LIT(b, "Transfer-Encoding: chunked\r\n");
    }
    if (extra)
        rc |= sl__buf_append_str(b, extra);
    rc |= LIT(b, "\r\n");
    return rc ? SL_ENOMEM : 0;
}

/* A header value from the application must not smuggle a line break. */
static int text_ok(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 && *s != '\t')
            return 0;
    return 1;
}

/* NULL, or "Name: value\r\n" lines: no bare CR or LF, no empty line. */
static int extra_ok(const char *s)
{
    if (!s)
        return 1;
    while (*s) {
        const char *e = s;
        while (*e && *e != '\r' && *e != '\n')
            e++;
        if (e == s || e[0] != '\r' || e[1] != '\n' || !memchr(s, ':', (size_t)(e - s)))
            return 0;
        for (const char *p = s; p < e; p++)
            if ((unsigned char)*p < 0x20 && *p != '\t')
                return 0;
        s = e + 2;
    }
    return 1;
}

static int no_body_status(int status)
{
    return status == 204 || status == 304;
}

static int error_body(sl_buf *b, int status, const char *type, const char *msg)
{
    int rc = 0;
    if (!type)
        type = status >= 500 ? "server_error" : "invalid_request_error";
    sl__buf_reset(b);
    rc |= LIT(b, "{\"error\":{\"message\":\"");
    rc |= sl__json_escape(b, msg ? msg : "", msg ? strlen(msg) : 0, "\\ufffd");
    rc |= LIT(b, "\",\"type\":\"");
    rc |= sl__json_escape(b, type, strlen(type), "\\ufffd");
    rc |= LIT(b, "\",\"param\":null,\"code\":null}}");
    return rc ? SL_ENOMEM : 0;
}

/* The response has ended (or the request is over): move on to the next request. */
static void response_ended(conn *c)
{
    sl_httpd_req *r = &c->req;
    r->state = REQ_DONE;
    r->notify = 0;
    if (c->closing || c->want_close)
        return;
    if (c->close_after) {
        conn_shutdown(c);
        return;
    }
    if (c->in_dispatch)
        return; /* the driver goes on when on_request returns */
    req_reset(r);
    /* Pipelined input waits: parse it from the timer, not from inside this call, so the
     * application is never re-entered with the next request. */
    if (c->in.len)
        c->resume_pending = 1;
    else
        set_deadline(c, DL_IDLE, c->srv->lim.idle_timeout_ms);
    update_reading(c);
    arm_timer(c);
}

/* An answer from the server itself (a cap, a timeout, bad syntax): JSON error, then close. */
static void send_error(conn *c, int status, const char *msg)
{
    sl_httpd *s = c->srv;
    if (c->closing || c->want_close)
        return;
    c->req.keep_alive = 0;
    c->req.state = REQ_DONE;
    if (error_body(&s->ebody, status, NULL, msg) ||
        head_build(c, status, "application/json", NULL, FR_LENGTH, s->ebody.len)) {
        conn_close(c);
        return;
    }
    uv_buf_t b[2] = {uv_buf_init(s->scratch.data, (unsigned)s->scratch.len),
                     uv_buf_init(s->ebody.data, (unsigned)s->ebody.len)};
    if (conn_send(c, b, 2) == 0)
        conn_shutdown(c);
}

/* ---------------------------------------------------------------- parser callbacks */

/* Record why parsing must stop; the driver answers with status and closes. */
static int set_err(conn *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int set_err(conn *c, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    c->err_status = status;
    vsnprintf(c->err_msg, sizeof c->err_msg, fmt, ap);
    va_end(ap);
    return -1;
}

static int head_add(conn *c, const char *at, size_t n)
{
    sl_httpd_req *r = &c->req;
    size_t max = c->srv->lim.max_header_bytes;
    if (r->head.len + n + 4 * (size_t)r->nhdr > max)
        return set_err(c, 431, "request headers too large (max %zu bytes)", max);
    if (sl__buf_append(&r->head, at, n))
        return set_err(c, 500, "out of memory");
    return 0;
}

static int cb_message_begin(http_parser *p)
{
    conn *c = p->data;
    req_reset(&c->req);
    c->req.state = REQ_HEAD;
    c->close_after = 0;
    set_deadline(c, DL_HEADER, c->srv->lim.header_timeout_ms);
    return 0;
}

static int cb_url(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    if (head_add(c, at, n))
        return -1;
    c->req.url_len += n;
    return 0;
}

static int cb_header_field(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    sl_httpd_req *r = &c->req;
    if (r->last_cb != CB_FIELD) {
        int max = c->srv->lim.max_headers;
        if (r->nhdr >= max)
            return set_err(c, 431, "too many request headers (max %d)", max);
        if (r->nhdr == r->hdr_cap) {
            int cap = r->hdr_cap ? r->hdr_cap * 2 : 16;
            if (cap > max)
                cap = max;
            hdr_ent *h = realloc(r->hdrs, (size_t)cap * sizeof *h);
            if (!h)
                return set_err(c, 500, "out of memory");
            r->hdrs = h;
            r->hdr_cap = cap;
        }
        hdr_ent *e = &r->hdrs[r->nhdr++];
        e->no = r->head.len;
        e->nl = e->vo = e->vl = 0;
        r->last_cb = CB_FIELD;
    }
    if (head_add(c, at, n))
        return -1;
    r->hdrs[r->nhdr - 1].nl += n;
    return 0;
}

static int cb_header_value(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    sl_httpd_req *r = &c->req;
    if (r->nhdr == 0)
        return set_err(c, 400, "malformed request: header value without a name");
    hdr_ent *e = &r->hdrs[r->nhdr - 1];
    if (r->last_cb != CB_VALUE) {
        e->vo = r->head.len;
        r->last_cb = CB_VALUE;
    }
    if (head_add(c, at, n))
        return -1;
    e->vl += n;
    return 0;
}

static int hdr_is(const sl_httpd_req *r, const hdr_ent *e, const char *name, size_t n)
{
    return e->nl == n && strncasecmp(r->head.data + e->no, name, n) == 0;
}

static int cb_headers_complete(http_parser *p)
{
    conn *c = p->data;
    sl_httpd *s = c->srv;
    sl_httpd_req *r = &c->req;
    const char *url = r->head.data ? r->head.data : "";

    r->method = p->method;
    r->is_head = p->method == HTTP_HEAD;
    if (p->http_major != 1)
        return set_err(c, 505, "HTTP version not supported");
    if (p->method == HTTP_CONNECT)
        return set_err(c, 501, "method CONNECT is not supported");
    if (r->url_len > UINT16_MAX)
        return set_err(c, 431, "request target too long (max %d bytes)", UINT16_MAX);
    if (r->url_len == 1 && url[0] == '*') {
        r->path_off = 0;
        r->path_len = 1;
    } else {
        struct http_parser_url u;
        http_parser_url_init(&u);
        if (http_parser_parse_url(url, r->url_len, 0, &u))
            return set_err(c, 400, "malformed request: invalid URL");
        if (u.field_set & (1 << UF_PATH)) {
            r->path_off = u.field_data[UF_PATH].off;
            r->path_len = u.field_data[UF_PATH].len;
        } else {
            r->path_root = 1;
        }
        if (u.field_set & (1 << UF_QUERY)) {
            r->query_off = u.field_data[UF_QUERY].off;
            r->query_len = u.field_data[UF_QUERY].len;
        }
    }
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > s->lim.max_body)
        return set_err(c, 413, "request body too large (max %zu bytes)", s->lim.max_body);
    /* Reserve for the announced body, but not much before the bytes really come. */
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > 0 &&
        sl__buf_reserve(&r->body, p->content_length < BODY_KEEP ? p->content_length : BODY_KEEP))
        return set_err(c, 500, "out of memory");
    for (int i = 0; i < r->nhdr; i++) {
        hdr_ent *e = &r->hdrs[i];
        while (e->vl &&
               (r->head.data[e->vo + e->vl - 1] == ' ' || r->head.data[e->vo + e->vl - 1] == '\t'))
            e->vl--;
        if (hdr_is(r, e, "expect", 6) && e->vl == 12 &&
            strncasecmp(r->head.data + e->vo, "100-continue", 12) == 0)
            r->expect_continue = 1;
    }
    r->keep_alive = http_should_keep_alive(p);
    r->chunked_ok = p->http_minor >= 1;
    if (!r->chunked_ok ||
        !((p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length > 0)))
        r->expect_continue = 0;
    r->state = REQ_BODY;
    if (s->h.on_headers || r->expect_continue) {
        c->event = EV_HEADERS;
        http_parser_pause(p, 1);
    }
    return 0;
}

static int cb_body(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    int rc = sl__buf_append(&c->req.body, at, n);
    if (rc == SL_ELIMIT)
        return set_err(c, 413, "request body too large (max %zu bytes)", c->srv->lim.max_body);
    if (rc)
        return set_err(c, 500, "out of memory");
    return 0;
}

static int cb_message_complete(http_parser *p)
{
    conn *c = p->data;
    c->event = EV_MESSAGE;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings SETTINGS = {
    .on_message_begin = cb_message_begin,
    .on_url = cb_url,
    .on_header_field = cb_header_field,
    .on_header_value = cb_header_value,
    .on_headers_complete = cb_headers_complete,
    .on_body = cb_body,
    .on_message_complete = cb_message_complete,
};

/* ---------------------------------------------------------------- the driver */

static void headers_event(conn *c, size_t avail)
{
    sl_httpd *s = c->srv;
    sl_httpd_req *r = &c->req;
    if (s->h.on_headers) {
        r->notify = 1;
        c->in_dispatch = 1;
        int st = s->h.on_headers(r, s->h.user);
        c->in_dispatch = 0;
        if (c->closing || c->want_close)
            return;
        if (st) {
            if (st < 400 || st > 599)
                st = 500;
            r->notify = 0;
            const char *reason = http_status_str((enum http_status)st);
            send_error(c, st, reason && reason[0] != '<' ? reason : "error");
            return;
        }
    }
    /* A client that already sent body bytes is not waiting for the interim answer. The
     * parser pauses on the LF that ends the headers and parses it again on resume, so
     * one byte of what is left is still the header section. */
    if (r->expect_continue && avail <= 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t b = uv_buf_init((char *)cont, sizeof cont - 1);
        conn_send(c, &b, 1);
    }
}

static void dispatch(conn *c)
{
    sl_httpd *s = c->srv;
    sl_httpd_req *r = &c->req;
    r->state = REQ_ACTIVE;
    r->notify = 1;
    set_deadline(c, DL_NONE, 0);
    c->in_dispatch = 1;
    s->h.on_request(r, s->h.user);
    c->in_dispatch = 0;
    if (r->state == REQ_DONE && !c->closing && !c->want_close)
        req_reset(r);
}

static void parse_failed(conn *c, enum http_errno e)
{
    char msg[160];
    if (c->err_status) {
        send_error(c, c->err_status, c->err_msg);
    } else if (e == HPE_HEADER_OVERFLOW) {
        send_error(c, 431, "request headers too large");
    } else {
        snprintf(msg, sizeof msg, "malformed request: %s", http_errno_description(e));
        send_error(c, 400, msg);
    }
}

/* Parse (data, len) until it is used up, a request waits for its response, or the
 * connection is done. Returns the bytes consumed; the rest must be kept, in order. */
static size_t conn_process(conn *c, const char *data, size_t len)
{
    size_t off = 0;
    while (off < len && !c->closing && !c->want_close && c->req.state < REQ_ACTIVE) {
        size_t n = http_parser_execute(&c->parser, &SETTINGS, data + off, len - off);
        off += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            int ev = c->event;
            c->event = EV_NONE;
            http_parser_pause(&c->parser, 0);
            if (ev == EV_HEADERS)
                headers_event(c, len - off);
            else if (ev == EV_MESSAGE)
                dispatch(c);
            continue;
        }
        if (e != HPE_OK) {
            parse_failed(c, e);
            break;
        }
        /* An Upgrade request makes the parser return early; the upgrade is ignored (RFC
         * 9110 7.8 allows it) and parsing goes on. */
        if (n == 0)
            break;
    }
    return off;
}

static void after_process(conn *c)
{
    if (c->closing || c->want_close)
        return;
    sl_httpd_req *r = &c->req;
    if (r->state == REQ_BODY && r->throttle_ms > 0)
        c->throttle_until = conn_now(c) + (uint64_t)r->throttle_ms;
    if (r->state == REQ_NONE && c->dl_kind != DL_IDLE)
        set_deadline(c, DL_IDLE, c->srv->lim.idle_timeout_ms);
    update_reading(c);
    arm_timer(c);
}

/* Input that arrived in c->in. */
static void conn_input_buffered(conn *c)
{
    size_t used = conn_process(c, c->in.data, c->in.len);
    sl__buf_consume(&c->in, used);
    if (c->in.len == 0 && c->in.cap > BODY_KEEP)
        sl__buf_free(&c->in);
    after_process(c);
}

/* Input outside c->in (the shared slab): parse in place, keep only the leftover. */
static void conn_input(conn *c, const char *data, size_t n)
{
    if (c->in.len) {
        if (sl__buf_append(&c->in, data, n)) {
            conn_close(c);
            return;
        }
        conn_input_buffered(c);
        return;
    }
    size_t used = conn_process(c, data, n);
    if (used < n && !c->closing && !c->want_close && sl__buf_append(&c->in, data + used, n - used))
        conn_close(c);
    after_process(c);
}

static void conn_tick(conn *c, uint64_t now)
{
    if (c->closing)
        return;
    if (c->resume_pending) {
        c->resume_pending = 0;
        conn_input_buffered(c);
        if (c->closing)
            return;
    }
    if (c->throttle_until && now >= c->throttle_until) {
        c->throttle_until = 0;
        update_reading(c);
    }
    if (c->deadline && now >= c->deadline) {
        int kind = c->dl_kind;
        set_deadline(c, DL_NONE, 0);
        if (kind == DL_HEADER)
            send_error(c, 408, "request timed out");
        else
            conn_close(c);
        if (c->closing)
            return;
    }
    arm_timer(c);
}

static void on_timer(uv_timer_t *t)
{
    conn *c = t->data;
    c->timer_due = 0;
    conn_tick(c, uv_now(c->srv->loop));
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn *c = h->data;
    if (c->in.len == 0 || c->lingering || c->want_close) {
        *buf = uv_buf_init(c->srv->slab, SLAB_SIZE);
        return;
    }
    if (sl__buf_reserve(&c->in, IN_READ)) {
        *buf = uv_buf_init(NULL, 0); /* on_read gets UV_ENOBUFS */
        return;
    }
    size_t room = c->in.cap - c->in.len - 1;
    if (room > IN_MAX - c->in.len)
        room = IN_MAX - c->in.len;
    *buf = uv_buf_init(c->in.data + c->in.len, (unsigned)room);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = st->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        /* EOF or error. During a response this is a client abort: on_close is owed. */
        conn_close(c);
        return;
    }
    if (c->closing || c->lingering || c->want_close)
        return;
    if (buf->base == c->srv->slab) {
        conn_input(c, buf->base, (size_t)nread);
    } else {
        c->in.len += (size_t)nread;
        c->in.data[c->in.len] = '\0';
        conn_input_buffered(c);
    }
}

/* ---------------------------------------------------------------- accept, listen */

static void on_reject_closed(uv_handle_t *h)
{
    sl_httpd *s = h->data;
    free(h);
    s->rejecting--;
    server_maybe_free(s);
}

static void reject(sl_httpd *s, uv_stream_t *ls)
{
    uv_tcp_t *t = malloc(sizeof *t);
    if (!t || uv_tcp_init(s->loop, t)) {
        free(t);
        return;
    }
    t->data = s;
    s->rejecting++;
    if (uv_accept(ls, (uv_stream_t *)t) == 0)
        s->accepted++;
    uv_close((uv_handle_t *)t, on_reject_closed);
}

static void on_connection(uv_stream_t *ls, int status)
{
    sl_httpd *s = ls->data;
    if (status < 0 || s->freeing) {
        SL_DEBUG("httpd: accept: %s", uv_strerror(status));
        return;
    }
    if (s->open >= (unsigned long)s->lim.max_connections) {
        reject(s, ls);
        return;
    }
    conn *c = conn_new(s);
    if (!c) {
        reject(s, ls);
        return;
    }
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles = 2;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp)) {
        conn_close(c);
        return;
    }
    s->accepted++;
    uv_tcp_nodelay(&c->tcp, 1);
    set_deadline(c, DL_IDLE, s->lim.idle_timeout_ms);
    update_reading(c);
    arm_timer(c);
}

int sl__httpd_listen(sl_httpd *s, const char *host, int port, int reuseport)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (!s || !host || port < 0 || port > 65535 || s->listening || s->freeing)
        return SL_EINVAL;
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    memset(&ss, 0, sizeof ss);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss))
        return SL_EADDR;
    if (reuseport) {
        int one = 1;
        int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return SL_EADDR;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) ||
            uv_tcp_open(&s->listener, fd)) {
            close(fd);
            return SL_EADDR;
        }
    }
    if (uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0) ||
        uv_listen((uv_stream_t *)&s->listener, BACKLOG, on_connection) ||
        uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len))
        return SL_EADDR;
    s->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    s->listening = 1;
    return 0;
}

/* ---------------------------------------------------------------- the request */

sl_str sl__httpd_req_method(const sl_httpd_req *r)
{
    const char *m = http_method_str((enum http_method)r->method);
    return (sl_str){m, strlen(m)};
}

sl_str sl__httpd_req_path(const sl_httpd_req *r)
{
    if (r->path_root || !r->head.data)
        return (sl_str){"/", r->path_root ? 1 : 0};
    return (sl_str){r->head.data + r->path_off, r->path_len};
}

sl_str sl__httpd_req_query(const sl_httpd_req *r)
{
    if (!r->query_len)
        return (sl_str){"", 0};
    return (sl_str){r->head.data + r->query_off, r->query_len};
}

sl_str sl__httpd_req_body(const sl_httpd_req *r)
{
    if (!r->body.data)
        return (sl_str){"", 0};
    return (sl_str){r->body.data, r->body.len};
}

sl_str sl__httpd_req_header(const sl_httpd_req *r, const char *name)
{
    size_t n = name ? strlen(name) : 0;
    for (int i = 0; i < r->nhdr && n; i++)
        if (hdr_is(r, &r->hdrs[i], name, n))
            return (sl_str){r->head.data + r->hdrs[i].vo, r->hdrs[i].vl};
    return (sl_str){NULL, 0};
}

int sl__httpd_req_header_count(const sl_httpd_req *r)
{
    return r->nhdr;
}

void sl__httpd_req_header_at(const sl_httpd_req *r, int i, sl_str *name, sl_str *value)
{
    if (i < 0 || i >= r->nhdr) {
        *name = *value = (sl_str){NULL, 0};
        return;
    }
    *name = (sl_str){r->head.data + r->hdrs[i].no, r->hdrs[i].nl};
    *value = (sl_str){r->head.data + r->hdrs[i].vo, r->hdrs[i].vl};
}

const char *sl__httpd_req_peer(const sl_httpd_req *r)
{
    conn *c = r->c;
    if (c->peer[0])
        return c->peer;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    snprintf(c->peer, sizeof c->peer, "unknown");
    if (!c->fake && !c->closing && uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof c->peer);
        else
            uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof c->peer);
    }
    return c->peer;
}

void sl__httpd_req_set_user(sl_httpd_req *r, void *user)
{
    r->user = user;
}

void *sl__httpd_req_user(const sl_httpd_req *r)
{
    return r->user;
}

void sl__httpd_req_on_close(sl_httpd_req *r, sl_httpd_close_cb cb)
{
    r->on_close = cb;
}

void sl__httpd_req_on_drain(sl_httpd_req *r, sl_httpd_drain_cb cb)
{
    r->on_drain = cb;
}

void sl__httpd_req_throttle(sl_httpd_req *r, long ms)
{
    r->throttle_ms = ms > 0 ? ms : 0;
}

/* ---------------------------------------------------------------- the response */

int sl__httpd_respond(sl_httpd_req *r, int status, const char *content_type,
                      const char *extra_headers, const char *body, size_t len)
{
    if (!r || r->state != REQ_ACTIVE || status < 200 || status > 999 || (!body && len) ||
        len > UINT32_MAX || !text_ok(content_type) || !extra_ok(extra_headers))
        return SL_EINVAL;
    conn *c = r->c;
    sl_httpd *s = c->srv;
    int nobody = no_body_status(status);
    int rc = SL_EIO;
    if (!c->closing) {
        rc = head_build(c, status, content_type, extra_headers, nobody ? FR_NONE : FR_LENGTH, len);
        if (rc == 0) {
            uv_buf_t b[2] = {uv_buf_init(s->scratch.data, (unsigned)s->scratch.len),
                             uv_buf_init((char *)body, (unsigned)len)};
            rc = conn_send(c, b, (nobody || r->is_head || len == 0) ? 1 : 2);
        } else {
            conn_close(c);
        }
    }
    response_ended(c);
    return rc;
}

int sl__httpd_respond_error(sl_httpd_req *r, int status, const char *type, const char *message)
{
    if (!r || r->state != REQ_ACTIVE || status < 200 || status > 999 || no_body_status(status))
        return SL_EINVAL;
    sl_httpd *s = r->c->srv;
    if (error_body(&s->ebody, status, type, message))
        return SL_ENOMEM;
    return sl__httpd_respond(r, status, "application/json", NULL, s->ebody.data, s->ebody.len);
}

int sl__httpd_start(sl_httpd_req *r, int status, const char *content_type,
                    const char *extra_headers)
{
    if (!r || r->state != REQ_ACTIVE || status < 200 || status > 999 || no_body_status(status) ||
        !text_ok(content_type) || !extra_ok(extra_headers))
        return SL_EINVAL;
    conn *c = r->c;
    sl_httpd *s = c->srv;
    r->state = REQ_STREAMING;
    if (c->closing)
        return SL_EIO;
    /* HTTP/1.0 has no chunked encoding: the body ends when the connection does. */
    r->resp_chunked = r->chunked_ok;
    int rc = head_build(c, status, content_type, extra_headers,
                        r->resp_chunked ? FR_CHUNKED : FR_CLOSE, 0);
    if (rc) {
        conn_close(c);
        return rc;
    }
    uv_buf_t b = uv_buf_init(s->scratch.data, (unsigned)s->scratch.len);
    return conn_send(c, &b, 1);
}

int sl__httpd_write(sl_httpd_req *r, const char *data, size_t len)
{
    if (!r || r->state != REQ_STREAMING || (!data && len) || len > UINT32_MAX)
        return SL_EINVAL;
    conn *c = r->c;
    if (c->closing)
        return SL_EIO;
    if (len == 0 || r->is_head)
        return 0;
    if (!r->resp_chunked) {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        return conn_send(c, &b, 1);
    }
    char pre[24];
    int n = snprintf(pre, sizeof pre, "%zx\r\n", len);
    uv_buf_t b[3] = {uv_buf_init(pre, (unsigned)n), uv_buf_init((char *)data, (unsigned)len),
                     uv_buf_init((char *)"\r\n", 2)};
    return conn_send(c, b, 3);
}

int sl__httpd_end(sl_httpd_req *r)
{
    if (!r || r->state != REQ_STREAMING)
        return SL_EINVAL;
    conn *c = r->c;
    int rc = SL_EIO;
    if (!c->closing) {
        rc = 0;
        if (r->resp_chunked && !r->is_head) {
            uv_buf_t b = uv_buf_init((char *)"0\r\n\r\n", 5);
            rc = conn_send(c, &b, 1);
        }
    }
    response_ended(c);
    return rc;
}

void sl__httpd_abort(sl_httpd_req *r)
{
    if (!r || r->state == REQ_NONE || r->state == REQ_DONE)
        return;
    r->notify = 0;
    r->state = REQ_DONE;
    conn_close(r->c);
}

int sl__httpd_writable(const sl_httpd_req *r)
{
    return r->c->queued + r->c->out.len < r->c->srv->lim.write_high_watermark;
}

/* ---------------------------------------------------------------- fuzzing entry point */

/* A canned application, driven by sl__httpd_fuzz_feed, that answers in every way the real
 * ones do (at once, later, streamed, aborted) and checks the server's promises: one
 * request at a time, on_close only for a request it holds, and at most once. */
static struct {
    sl_httpd_req *held;
    int phase; /* 0 holds nothing, 1 saw on_headers, 2 saw on_request */
    int mode;
    int bad;
} fz;

static void fz_close(sl_httpd_req *r, void *u)
{
    if (fz.phase == 0 || r != fz.held)
        fz.bad = 1;
    fz.phase = 0;
    fz.held = NULL;
}

static int fz_headers(sl_httpd_req *r, void *u)
{
    if (fz.phase != 0)
        fz.bad = 1;
    fz.phase = 1;
    fz.held = r;
    sl__httpd_req_on_close(r, fz_close);
    sl_str ct = sl__httpd_req_header(r, "content-type");
    if (sl__httpd_req_header_count(r) == 5 || (ct.len && ct.ptr[0] == 'x')) {
        fz.phase = 0;
        fz.held = NULL;
        return 401;
    }
    sl_str p = sl__httpd_req_path(r);
    if (memchr(p.ptr, 't', p.len))
        sl__httpd_req_throttle(r, 10);
    return 0;
}

static void fz_done(int rc)
{
    (void)rc;
    fz.phase = 0;
    fz.held = NULL;
}

static void fz_request(sl_httpd_req *r, void *u)
{
    if (fz.phase == 2 || (fz.phase == 1 && r != fz.held))
        fz.bad = 1;
    fz.phase = 2;
    fz.held = r;
    sl__httpd_req_on_close(r, fz_close);
    sl__httpd_req_on_drain(r, NULL);
    sl_str path = sl__httpd_req_path(r), body = sl__httpd_req_body(r);
    sl_str q = sl__httpd_req_query(r), m = sl__httpd_req_method(r);
    sl_str name, value;
    sl__httpd_req_header_at(r, r->nhdr - 1, &name, &value);
    fz.mode = (int)((path.len + body.len + q.len + m.len + name.len + value.len) % 8);
    switch (fz.mode) {
    case 0:
        fz_done(sl__httpd_respond(r, 200, "text/plain", "X-A: b\r\n", "ok", 2));
        break;
    case 1:
        fz_done(sl__httpd_respond_error(r, 404, NULL, path.len ? path.ptr : "\"\n\x01\xff"));
        break;
    case 2:
        sl__httpd_start(r, 200, "text/event-stream", NULL);
        sl__httpd_write(r, body.ptr, body.len);
        fz_done(sl__httpd_end(r));
        break;
    case 4:
    case 6:
        sl__httpd_start(r, 200, NULL, NULL);
        sl__httpd_write(r, "a", 1);
        break;
    case 5:
        sl__httpd_abort(r);
        fz_done(0);
        break;
    case 7:
        fz_done(sl__httpd_respond(r, 201, NULL, NULL, body.ptr, body.len));
        break;
    default: /* 3: answered later */
        break;
    }
}

static void fz_step(conn *c, unsigned step)
{
    if (fz.phase == 2 && !c->closing) {
        sl_httpd_req *r = fz.held;
        if (fz.mode == 3) {
            fz_done(sl__httpd_respond(r, 200, NULL, NULL, "later", 5));
        } else if (fz.mode == 4) {
            if (sl__httpd_write(r, "bb", 2) != 0 || step % 2)
                fz_done(sl__httpd_end(r));
        } else if (fz.mode == 6) {
            sl__httpd_abort(r);
            fz_done(0);
        }
    }
    if (step % 3 == 2 && !c->closing) {
        c->queued = 0;
        written(c);
    }
    if (step % 7 == 6)
        c->fake_now += 40;
    conn_tick(c, c->fake_now);
}

int sl__httpd_fuzz_feed(const uint8_t *data, size_t len)
{
    static sl_httpd *s;
    if (!s) {
        static const sl_httpd_handlers h = {fz_request, fz_headers, NULL};
        sl_httpd_limits l;
        sl__httpd_limits_init(&l);
        l.max_header_bytes = 1024;
        l.max_headers = 12;
        l.max_body = 4096;
        l.header_timeout_ms = 200;
        l.idle_timeout_ms = 400;
        l.write_high_watermark = 64;
        s = malloc(sizeof *s);
        if (!s)
            return SL_ENOMEM;
        server_setup(s, NULL, &l, &h);
    }
    memset(&fz, 0, sizeof fz);
    conn *c = conn_new(s);
    if (!c)
        return SL_ENOMEM;
    c->fake = 1;
    c->fake_now = 1000;
    set_deadline(c, DL_IDLE, s->lim.idle_timeout_ms);
    update_reading(c);

    /* Chunk sizes come from the input itself, so a given input always splits the same way. */
    uint32_t seed = 2166136261u;
    for (size_t i = 0; i < len; i++)
        seed = (seed ^ data[i]) * 16777619u;
    size_t off = 0;
    unsigned step = 0;
    while (off < len && !c->closing && step < 4 * len + 64) {
        if (c->reading) {
            seed = seed * 1103515245u + 12345u;
            size_t n = 1 + (seed >> 16) % 97;
            if (n > len - off)
                n = len - off;
            conn_input(c, (const char *)data + off, n);
            off += n;
        } else if (!c->closing) {
            c->fake_now += 20; /* throttled or full: let time pass */
        }
        fz_step(c, step++);
    }
    for (int i = 0; i < 8 && !c->closing; i++)
        fz_step(c, step++);
    conn_close(c);
    conn_finalize(c);
    return fz.bad || fz.phase ? -1 : 0;
}
