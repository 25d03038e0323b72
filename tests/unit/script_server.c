/* script_server.c — a tiny scripted TCP server for unit tests (see script_server.h).
 *
 * Included by the test programs that use it (one cmocka program per test file, no
 * shared test library), hence the static-free but test-only names. */
#include "script_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define SS_MAX_REQUESTS      64
#define SS_MAX_REQUEST_BYTES (1u << 20)

typedef struct ss_conn ss_conn;

struct ss_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    const ss_step *const *scripts;
    size_t nscripts;
    int port;
    int accepts;
    int open;
    ss_conn *conns;
    char *requests[SS_MAX_REQUESTS];
    double request_ms[SS_MAX_REQUESTS];
    size_t nrequests;
    int busy, max_busy;
    int freed;
    int closing; /* handles of the server struct itself still closing */
    char url[256];
};

struct ss_conn {
    ss_server *s;
    ss_conn *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    const ss_step *script;
    size_t step;
    char *in; /* bytes received and not yet consumed by SS_READ */
    size_t in_len;
    int reading_wanted; /* current step is SS_READ */
    int writing;
    int closed;
    int handles; /* open handles */
    int counted; /* closed after ss_free: the server waits for it */
    int busy;    /* between a request read and the end of its answer */
};

static void set_busy(ss_conn *c, int on)
{
    if (c->busy == on)
        return;
    c->busy = on;
    c->s->busy += on ? 1 : -1;
    if (c->s->busy > c->s->max_busy)
        c->s->max_busy = c->s->busy;
}

static void run_steps(ss_conn *c);

static void unlink_conn(ss_conn *c)
{
    for (ss_conn **p = &c->s->conns; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            return;
        }
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    ss_conn *c = h->data;
    if (--c->handles == 0) {
        ss_server *s = c->s;
        int counted = c->counted;
        free(c->in);
        free(c);
        if (counted && --s->closing == 0)
            free(s);
    }
}

static void conn_close(ss_conn *c)
{
    if (c->closed)
        return;
    set_busy(c, 0);
    c->closed = 1;
    c->s->open--;
    unlink_conn(c);
    if (c->s->freed) {
        c->counted = 1;
        c->s->closing++;
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

/* One complete request at the start of c->in: its length, or 0. */
static size_t request_len(const ss_conn *c)
{
    const char *end = NULL;
    for (size_t i = 0; i + 4 <= c->in_len; i++)
        if (!memcmp(c->in + i, "\r\n\r\n", 4)) {
            end = c->in + i + 4;
            break;
        }
    if (!end)
        return 0;
    size_t head = (size_t)(end - c->in);
    size_t body = 0;
    for (size_t i = 0; i + 15 < head; i++) {
        if ((i == 0 || c->in[i - 1] == '\n') && !strncasecmp(c->in + i, "content-length:", 15)) {
            body = strtoul(c->in + i + 15, NULL, 10);
            break;
        }
    }
    if (c->in_len - head < body)
        return 0;
    return head + body;
}

static void on_timer(uv_timer_t *t)
{
    ss_conn *c = t->data;
    c->step++;
    run_steps(c);
}

static void on_written(uv_write_t *w, int status)
{
    ss_conn *c = w->data;
    free(w);
    c->writing = 0;
    if (c->closed)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    c->step++;
    run_steps(c);
}

static void run_steps(ss_conn *c)
{
    while (!c->closed && !c->writing) {
        const ss_step *st = &c->script[c->step];
        c->reading_wanted = 0;
        if (st->op != SS_SEND && st->op != SS_WAIT)
            set_busy(c, 0);
        switch (st->op) {
        case SS_END:
        case SS_STALL:
            return;
        case SS_READ: {
            size_t n = request_len(c);
            if (!n) {
                c->reading_wanted = 1;
                return;
            }
            ss_server *s = c->s;
            if (s->nrequests < SS_MAX_REQUESTS) {
                char *r = malloc(n + 1);
                memcpy(r, c->in, n);
                r[n] = '\0';
                s->request_ms[s->nrequests] = (double)uv_hrtime() / 1e6;
                s->requests[s->nrequests++] = r;
            }
            set_busy(c, 1);
            memmove(c->in, c->in + n, c->in_len - n);
            c->in_len -= n;
            c->step++;
            break;
        }
        case SS_SEND: {
            uv_write_t *w = malloc(sizeof *w + st->len);
            char *copy = (char *)(w + 1);
            memcpy(copy, st->data, st->len);
            uv_buf_t b = uv_buf_init(copy, (unsigned)st->len);
            w->data = c;
            c->writing = 1;
            if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
                free(w);
                c->writing = 0;
                conn_close(c);
            }
            return;
        }
        case SS_WAIT:
            uv_timer_start(&c->timer, on_timer, (uint64_t)st->ms, 0);
            return;
        case SS_CLOSE:
            conn_close(c);
            return;
        }
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char slab[65536];
    *buf = uv_buf_init(slab, sizeof slab);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    ss_conn *c = st->data;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (n == 0)
        return;
    if (c->in_len + (size_t)n > SS_MAX_REQUEST_BYTES) {
        conn_close(c);
        return;
    }
    c->in = realloc(c->in, c->in_len + (size_t)n);
    memcpy(c->in + c->in_len, buf->base, (size_t)n);
    c->in_len += (size_t)n;
    if (c->reading_wanted)
        run_steps(c);
}

static void on_connection(uv_stream_t *l, int status)
{
    ss_server *s = l->data;
    if (status < 0)
        return;
    ss_conn *c = calloc(1, sizeof *c);
    c->s = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles = 2;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        c->closed = 1;
        uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
        uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
        return;
    }
    size_t i = (size_t)s->accepts < s->nscripts ? (size_t)s->accepts : s->nscripts - 1;
    c->script = s->scripts[i];
    s->accepts++;
    s->open++;
    c->next = s->conns;
    s->conns = c;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    run_steps(c);
}

static void on_listener_closed(uv_handle_t *h);

int ss_start(uv_loop_t *loop, const ss_step *const *scripts, size_t nscripts, ss_server **out)
{
    ss_server *s = calloc(1, sizeof *s);
    s->loop = loop;
    s->scripts = scripts;
    s->nscripts = nscripts;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    int rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
    if (!rc)
        rc = uv_listen((uv_stream_t *)&s->listener, 64, on_connection);
    if (rc) {
        s->freed = 1;
        s->closing = 1;
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
        return rc;
    }
    struct sockaddr_storage name;
    int len = sizeof name;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&name, &len);
    s->port = ntohs(((struct sockaddr_in *)&name)->sin_port);
    *out = s;
    return 0;
}

int ss_listen_fd(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 64) ||
        getsockname(fd, (struct sockaddr *)&a, &len)) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

int ss_start_fd(uv_loop_t *loop, int fd, const ss_step *const *scripts, size_t nscripts,
                ss_server **out)
{
    ss_server *s = calloc(1, sizeof *s);
    s->loop = loop;
    s->scripts = scripts;
    s->nscripts = nscripts;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    int rc = uv_tcp_open(&s->listener, fd);
    if (!rc)
        rc = uv_listen((uv_stream_t *)&s->listener, 64, on_connection);
    if (rc) {
        s->freed = 1;
        s->closing = 1;
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
        return rc;
    }
    struct sockaddr_storage name;
    int len = sizeof name;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&name, &len);
    s->port = ntohs(((struct sockaddr_in *)&name)->sin_port);
    *out = s;
    return 0;
}

int ss_port(const ss_server *s)
{
    return s->port;
}

const char *ss_url(ss_server *s, const char *suffix)
{
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d%s", s->port, suffix ? suffix : "");
    return s->url;
}

int ss_accepts(const ss_server *s)
{
    return s->accepts;
}

size_t ss_nrequests(const ss_server *s)
{
    return s->nrequests;
}

const char *ss_request(const ss_server *s, size_t i)
{
    return i < s->nrequests ? s->requests[i] : NULL;
}

double ss_request_ms(const ss_server *s, size_t i)
{
    return i < s->nrequests ? s->request_ms[i] : -1;
}

int ss_busy(const ss_server *s)
{
    return s->busy;
}

int ss_max_busy(const ss_server *s)
{
    return s->max_busy;
}

int ss_open_connections(const ss_server *s)
{
    return s->open;
}

static void on_listener_closed(uv_handle_t *h)
{
    ss_server *s = h->data;
    if (--s->closing == 0)
        free(s);
}

void ss_free(ss_server *s)
{
    for (size_t i = 0; i < s->nrequests; i++)
        free(s->requests[i]);
    s->nrequests = 0;
    s->freed = 1;
    s->closing = 1;
    while (s->conns)
        conn_close(s->conns);
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}
