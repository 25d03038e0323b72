/* fuzz_h1c.c — libFuzzer target for the HTTP client's response path (io/h1c.c).
 *
 * The input is what a server answers on one connection: a loopback server in the same
 * loop reads the request, writes the input's bytes in two writes and closes. The first
 * input byte picks what the receiver does (pause in the first on_data and resume from a
 * timer, cancel in on_head, free itself in a later on_data, abort from on_data) and where
 * the bytes split. A broken promise of the client is reported as a crash: on_done not
 * exactly once, a callback after on_done or while paused, more body bytes than were
 * sent, or a handle left behind. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/httpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static uv_loop_t loop;
static uv_tcp_t listener;
static int port;

typedef struct peer {
    uv_tcp_t tcp;
    const uint8_t *p;
    size_t n, split;
    int wrote;
    int closed;
} peer;

typedef struct state {
    unsigned flags;
    int heads, datas, dones;
    size_t body;
    int paused;
    int freed;
    sl_httpc_req *req;
    uv_timer_t resume;
} state;

static peer *cur_peer;

static void on_peer_closed(uv_handle_t *h)
{
    ((peer *)h->data)->closed = 1;
}

static void on_peer_written(uv_write_t *w, int status)
{
    peer *p = w->data;
    free(w);
    if (++p->wrote == 2 && !uv_is_closing((uv_handle_t *)&p->tcp))
        uv_close((uv_handle_t *)&p->tcp, on_peer_closed);
}

static void peer_write(peer *p, const uint8_t *d, size_t n)
{
    uv_write_t *w = malloc(sizeof *w);
    CHECK(w);
    w->data = p;
    uv_buf_t b = uv_buf_init((char *)d, (unsigned)n);
    if (uv_write(w, (uv_stream_t *)&p->tcp, &b, 1, on_peer_written))
        on_peer_written(w, -1);
}

static void on_peer_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    static char buf[4096];
    b->base = buf;
    b->len = sizeof buf;
}

/* The request arrives (one small read): answer with the input. */
static void on_peer_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    peer *p = s->data;
    if (nread < 0) {
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, on_peer_closed);
        return;
    }
    if (nread == 0 || p->wrote || uv_is_closing((uv_handle_t *)s))
        return;
    uv_read_stop(s);
    peer_write(p, p->p, p->split);
    peer_write(p, p->p + p->split, p->n - p->split);
}

static void on_accept(uv_stream_t *server, int status)
{
    peer *p = cur_peer;
    CHECK(status == 0 && p);
    uv_tcp_init(&loop, &p->tcp);
    p->tcp.data = p;
    CHECK(uv_accept(server, (uv_stream_t *)&p->tcp) == 0);
    uv_read_start((uv_stream_t *)&p->tcp, on_peer_alloc, on_peer_read);
}

static void on_resume(uv_timer_t *t)
{
    state *s = t->data;
    if (s->freed || s->dones)
        return;
    s->paused = 0;
    sl__httpc_resume(s->req);
}

static int on_head(sl_httpc_req *r, const sl_httpc_head *h, void *user)
{
    state *s = user;
    CHECK(!s->dones && !s->paused && h->status >= 200 && h->status <= 999);
    s->heads++;
    if (s->flags & 2)
        sl__httpc_cancel(r);
    return 0;
}

static int on_data(sl_httpc_req *r, const char *p, size_t n, void *user)
{
    state *s = user;
    CHECK(!s->dones && !s->paused && n > 0);
    s->datas++;
    s->body += n;
    if ((s->flags & 1) && s->datas == 1) {
        s->paused = 1;
        sl__httpc_pause(r);
        uv_timer_start(&s->resume, on_resume, 0, 0);
    }
    if ((s->flags & 4) && s->datas == 2) {
        s->freed = 1;
        sl__httpc_req_free(r);
        return 0;
    }
    if ((s->flags & 8) && s->datas == 3)
        return SL_EPROTO;
    return 0;
}

static void on_done(sl_httpc_req *r, int err, const char *msg, void *user)
{
    state *s = user;
    CHECK(!s->freed && msg);
    s->dones++;
}

static void init_once(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    CHECK(uv_loop_init(&loop) == 0);
    uv_tcp_init(&loop, &listener);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    CHECK(uv_tcp_bind(&listener, (const struct sockaddr *)&a, 0) == 0);
    CHECK(uv_listen((uv_stream_t *)&listener, 16, on_accept) == 0);
    struct sockaddr_storage name;
    int len = sizeof name;
    uv_tcp_getsockname(&listener, (struct sockaddr *)&name, &len);
    port = ntohs(((struct sockaddr_in *)&name)->sin_port);
    uv_unref((uv_handle_t *)&listener);
}

static void on_nothing_closed(uv_handle_t *h) {}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    init_once();
    peer p;
    memset(&p, 0, sizeof p);
    p.p = data + 1;
    p.n = size - 1;
    p.split = p.n ? (size_t)(data[0] >> 4) * p.n / 15 : 0;
    state s;
    memset(&s, 0, sizeof s);
    s.flags = data[0] & 0x0f;
    cur_peer = &p;
    uv_timer_init(&loop, &s.resume);
    s.resume.data = &s;

    sl_httpc_opts o;
    sl__httpc_opts_init(&o);
    o.idle_timeout_ms = 2000; /* a safety net: the peer always closes */
    o.max_header_bytes = 4096;
    sl_httpc *h = NULL;
    CHECK(sl__httpc_new(&loop, &o, &h) == 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", port);
    static const char *hdrs[] = {"Content-Type: application/json"};
    sl_httpc_req_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.url = url;
    ro.headers = hdrs;
    ro.nheaders = 1;
    ro.body = "{}";
    ro.body_len = 2;
    ro.on_head = on_head;
    ro.on_data = on_data;
    ro.on_done = on_done;
    ro.user = &s;
    CHECK(sl__httpc_start(h, &ro, &s.req) == 0);
    while (!s.dones && !s.freed)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK(s.freed || s.dones == 1);
    CHECK(s.body <= p.n);
    if (!s.freed)
        sl__httpc_req_free(s.req);
    sl__httpc_free(h);
    uv_close((uv_handle_t *)&s.resume, on_nothing_closed);
    if (p.tcp.data && !uv_is_closing((uv_handle_t *)&p.tcp))
        uv_close((uv_handle_t *)&p.tcp, on_peer_closed);
    /* every handle of this run closes; only the (unreferenced) listener stays */
    int guard = 0;
    while (uv_run(&loop, UV_RUN_NOWAIT) && guard++ < 100000)
        ;
    CHECK(!uv_loop_alive(&loop));
    CHECK(s.dones <= 1);
    cur_peer = NULL;
    return 0;
}
