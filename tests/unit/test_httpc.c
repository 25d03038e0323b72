/* test_httpc.c — io/httpc against the scripted server: heads, bodies, reuse, errors,
 * timeouts, pause/resume, cancel, header parsing. Every test ends with the loop running
 * dry and closing with no live handle. The whole suite runs twice: once with the default
 * transports (our HTTP/1.1 client for http://) and once with every URL through libcurl,
 * so both keep the same contract. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/httpc.h"
#include "script_server.c"
#include "loop_harness.h"

static int transport; /* SL_HTTPC_AUTO or SL_HTTPC_CURL, per group */

typedef struct rec {
    int heads;
    int datas;
    int dones;
    int err;
    char msg[256];
    int status;
    sl_httpc_head head;
    char body[4096];
    size_t body_len;
    int data_while_paused;
    int paused;
    int raw_has_request_id; /* seen in on_head: the raw lines live that long */
    /* actions */
    int pause_after_datas;  /* pause once this many on_data ran (0: never) */
    int cancel_after_datas; /* cancel inside on_data (0: never) */
    int free_after_datas;   /* free inside on_data */
    int free_in_done;
    sl_httpc_req *req;
} rec;

static int on_head(sl_httpc_req *r, const sl_httpc_head *h, void *user)
{
    rec *x = user;
    uv_stop(&loop); /* see run_until */
    x->heads++;
    x->status = h->status;
    x->head = *h;
    x->head.raw.data = NULL;
    x->raw_has_request_id = h->raw.data && strstr(h->raw.data, "x-request-id: req_1\r\n") != NULL;
    return 0;
}

static int on_data(sl_httpc_req *r, const char *p, size_t n, void *user)
{
    rec *x = user;
    uv_stop(&loop);
    x->datas++;
    if (x->paused)
        x->data_while_paused++;
    if (x->body_len + n < sizeof x->body) {
        memcpy(x->body + x->body_len, p, n);
        x->body_len += n;
    }
    if (x->pause_after_datas && x->datas == x->pause_after_datas) {
        x->paused = 1;
        sl__httpc_pause(r);
    }
    if (x->cancel_after_datas && x->datas == x->cancel_after_datas)
        sl__httpc_cancel(r);
    if (x->free_after_datas && x->datas == x->free_after_datas) {
        sl__httpc_req_free(r);
        x->req = NULL;
    }
    return 0;
}

static void on_done(sl_httpc_req *r, int err, const char *msg, void *user)
{
    rec *x = user;
    uv_stop(&loop);
    x->dones++;
    x->err = err;
    snprintf(x->msg, sizeof x->msg, "%s", msg);
    if (x->free_in_done) {
        sl__httpc_req_free(r);
        x->req = NULL;
    }
}

static sl_httpc *client(long fb, long idle, long total)
{
    sl_httpc_opts o;
    sl__httpc_opts_init(&o);
    o.first_byte_timeout_ms = fb;
    o.idle_timeout_ms = idle;
    o.total_timeout_ms = total;
    o.transport = transport;
    sl_httpc *h = NULL;
    assert_int_equal(sl__httpc_new(&loop, &o, &h), 0);
    return h;
}

static sl_httpc_req *start(sl_httpc *h, const char *url, rec *x)
{
    static const char *hdrs[] = {"X-Test: yes", "Content-Type: application/json"};
    sl_httpc_req_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.url = url;
    ro.headers = hdrs;
    ro.nheaders = 2;
    ro.body = "{\"a\":1}";
    ro.body_len = 7;
    ro.on_head = on_head;
    ro.on_data = on_data;
    ro.on_done = on_done;
    ro.user = x;
    sl_httpc_req *r = NULL;
    assert_int_equal(sl__httpc_start(h, &ro, &r), 0);
    x->req = r;
    return r;
}

#define OK_HEAD "HTTP/1.1 200 OK\r\nContent-Type: Text/Event-Stream\r\nx-request-id: req_1\r\n"

static void test_status_headers_body(void **state)
{
    static const ss_step s0[] = {SS_STEP_READ,
                                 SS_STEP_SEND(OK_HEAD "Content-Length: 11\r\n\r\nhello"),
                                 SS_STEP_WAIT(5), SS_STEP_SEND(" world"), SS_STEP_END};
    static const ss_step *const scripts[] = {s0};
    ss_server *ss;
    assert_int_equal(ss_start(&loop, scripts, 1, &ss), 0);
    sl_httpc *h = client(0, 0, 0);
    rec x = {0};
    sl_httpc_req *r = start(h, ss_url(ss, "/v1/x"), &x);
    assert_int_equal(x.dones, 0); /* never from inside start */
    run_until(&x.dones);
    assert_int_equal(x.err, 0);
    assert_int_equal(x.heads, 1);
    assert_int_equal(x.status, 200);
    assert_string_equal(x.head.content_type, "text/event-stream");
    assert_string_equal(x.head.request_id, "req_1");
    assert_true(x.head.first_byte_ms > 0);
    assert_int_equal(x.body_len, 11);
    assert_memory_equal(x.body, "hello world", 11);
    assert_int_equal(sl__httpc_head(r)->status, 200);
    assert_true(x.raw_has_request_id);
    assert_int_equal(sl__httpc_head(r)->raw.len, 0); /* freed after on_head */
    const char *req = ss_request(ss, 0);
    assert_non_null(req);
    assert_true(!strncmp(req, "POST /v1/x HTTP/1.1\r\n", 21));
    assert_non_null(strstr(req, "\r\nX-Test: yes\r\n"));
    assert_null(strstr(req, "Expect:"));
    assert_non_null(strstr(req, "\r\n\r\n{\"a\":1}"));
    sl__httpc_req_free(r);
    sl__httpc_free(h);
    ss_free(ss);
}

/* Header lines made once (sl__httpc_headers_add) go out with every request that names
 * them, "Expect:" added as with per-request lines; the set lives as long as the client. */
static void test_header_set(void **state)
{
    static const ss_step s0[] = {SS_STEP_READ, SS_STEP_SEND(OK_HEAD "Content-Length: 3\r\n\r\none"),
                                 SS_STEP_READ, SS_STEP_SEND(OK_HEAD "Content-Length: 3\r\n\r\ntwo"),
                                 SS_STEP_END};
    static const ss_step *const scripts[] = {s0};
    static const char *lines[] = {"X-Set: 1", "Content-Type: application/json"};
    ss_server *ss;
    assert_int_equal(ss_start(&loop, scripts, 1, &ss), 0);
    sl_httpc *h = client(0, 0, 0);
    const sl_httpc_headers *hs = NULL;
    assert_int_equal(sl__httpc_headers_add(h, lines, 2, &hs), 0);
    assert_non_null(hs);
    rec x[2] = {{0}};
    for (int i = 0; i < 2; i++) {
        sl_httpc_req_opts ro;
        memset(&ro, 0, sizeof ro);
        ro.url = ss_url(ss, i ? "/two" : "/one");
        ro.header_set = hs;
        ro.body = "{}";
        ro.body_len = 2;
        ro.on_done = on_done;
        ro.on_data = on_data;
        ro.user = &x[i];
        assert_int_equal(sl__httpc_start(h, &ro, &x[i].req), 0);
        run_until(&x[i].dones);
        assert_int_equal(x[i].err, 0);
        const char *req = ss_request(ss, i);
        assert_non_null(req);
        assert_true(!strncmp(req, i ? "POST /two HTTP/1.1\r\n" : "POST /one HTTP/1.1\r\n", 20));
        assert_non_null(strstr(req, "\r\nX-Set: 1\r\n"));
        assert_null(strstr(req, "Expect:"));
        sl__httpc_req_free(x[i].req);
    }
    assert_memory_equal(x[1].body, "two", 3);
    sl__httpc_free(h);
    ss_free(ss);
}

/* Finished easy handles are reset and reused: a request on a reused handle carries its
 * own URL, body and headers, nothing of the one before (freed inside on_done, as the call
 * layer does), including after a cancelled one. */
static void test_easy_handle_reuse(void **state)
{
    static const ss_step s0[] = {
        SS_STEP_READ, SS_STEP_SEND(OK_HEAD "Content-Length: 1\r\n\r\n1"),
        SS_STEP_READ, SS_STEP_SEND(OK_HEAD "Content-Length: 1\r\n\r\n2"),
        SS_STEP_READ, SS_STEP_SEND(OK_HEAD "Content-Length: 1\r\n\r\n3"),
        SS_STEP_READ, SS_STEP_SEND(OK_HEAD "Content-Length: 9\r\n\r\npart"),
        SS_STEP_STALL};
    static const ss_step s1[] = {SS_STEP_READ, SS_STEP_SEND(OK_HEAD "Content-Length: 1\r\n\r\n4"),
                                 SS_STEP_END};
    static const ss_step *const scripts[] = {s0, s1};
    static const char *lines[] = {"X-Set: 1"};
    ss_server *ss;
    assert_int_equal(ss_start(&loop, scripts, 2, &ss), 0);
    sl_httpc *h = client(0, 0, 0);
    const sl_httpc_headers *hs = NULL;
    assert_int_equal(sl__httpc_headers_add(h, lines, 1, &hs), 0);
    rec x[4] = {{0}};
    for (int i = 0; i < 3; i++) {
        x[i].free_in_done = 1;
        if (i == 1) {
            sl_httpc_req_opts ro;
            memset(&ro, 0, sizeof ro);
            ro.url = ss_url(ss, "/set");
            ro.header_set = hs;
            ro.on_done = on_done;
            ro.on_data = on_data;
            ro.user = &x[i];
            assert_int_equal(sl__httpc_start(h, &ro, &x[i].req), 0); /* a GET */
        } else {
            start(h, ss_url(ss, i ? "/three" : "/one"), &x[i]);
        }
        run_until(&x[i].dones);
        assert_int_equal(x[i].err, 0);
        assert_int_equal(x[i].body_len, 1);
        assert_int_equal(x[i].body[0], '1' + i);
    }
    const char *r1 = ss_request(ss, 1), *r2 = ss_request(ss, 2);
    assert_true(!strncmp(r1, "GET /set HTTP/1.1\r\n", 19));
    assert_non_null(strstr(r1, "\r\nX-Set: 1\r\n"));
    assert_null(strstr(r1, "X-Test"));
    assert_null(strstr(r1, "{\"a\":1}"));
    assert_true(!strncmp(r2, "POST /three HTTP/1.1\r\n", 22));
    assert_non_null(strstr(r2, "\r\nX-Test: yes\r\n"));
    assert_null(strstr(r2, "X-Set"));
    assert_non_null(strstr(r2, "\r\n\r\n{\"a\":1}"));

    /* a request cancelled halfway (its connection closed) does not leave its handle in
     * the pool; the next request works all the same, on a new connection */
    rec c = {0};
    c.cancel_after_datas = 1;
    sl_httpc_req *rc = start(h, ss_url(ss, "/cut"), &c);
    run_until(&c.dones);
    assert_int_equal(c.err, SL_ECANCELED);
    sl__httpc_req_free(rc);
    x[3].free_in_done = 1;
    start(h, ss_url(ss, "/four"), &x[3]);
    run_until(&x[3].dones);
    assert_int_equal(x[3].err, 0);
    assert_int_equal(x[3].body[0], '4');
    assert_int_equal(ss_accepts(ss), 2);
    sl__httpc_free(h);
    ss_free(ss);
}

static void on_check(uv_check_t *c)
{
    (*(int *)c->data)++;
}

static void on_close_nothing(uv_handle_t *h) {}

static void on_wait(uv_timer_t *t) {}

/* A kept-alive connection stays watched between requests without keeping the loop busy:
 * when the server closes it, the watch stops (the loop does not spin on the closed
 * socket), and the next request opens a new connection. */
static void test_idle_connection_closed_by_server(void **state)
{
    static const ss_step s0[] = {SS_STEP_READ, SS_STEP_SEND(OK_HEAD "Content-Length: 3\r\n\r\none"),
                                 SS_STEP_WAIT(20), SS_STEP_CLOSE};
    static const ss_step s1[] = {SS_STEP_READ, SS_STEP_SEND(OK_HEAD "Content-Length: 3\r\n\r\ntwo"),
                                 SS_STEP_END};
    static const ss_step *const scripts[] = {s0, s1};
    ss_server *ss;
    assert_int_equal(ss_start(&loop, scripts, 2, &ss), 0);
    sl_httpc *h = client(0, 0, 0);
    rec a = {0}, b = {0};
    a.free_in_done = 1;
    start(h, ss_url(ss, "/a"), &a);
    run_until(&a.dones);
    assert_int_equal(a.err, 0);
    /* let the server close the idle connection, counting loop turns meanwhile */
    int turns = 0;
    uv_check_t check;
    uv_check_init(&loop, &check);
    check.data = &turns;
    uv_check_start(&check, on_check);
    uv_timer_t wait;
    uv_timer_init(&loop, &wait);
    int closed = 0;
    wait.data = &closed;
    uv_timer_start(&wait, on_wait, 100, 0);
    while (uv_is_active((uv_handle_t *)&wait))
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(turns < 50); /* a spinning loop turns thousands of times in 100 ms */
    uv_close((uv_handle_t *)&check, on_close_nothing);
    uv_close((uv_handle_t *)&wait, on_close_nothing);
    b.free_in_done = 1;
    start(h, ss_url(ss, "/b"), &b);
    run_until(&b.dones);
    assert_int_equal(b.err, 0);
    assert_memory_equal(b.body, "two", 3);
    assert_int_equal(ss_accepts(ss), 2);
    sl__httpc_free(h);
    ss_free(ss);
}

static void test_connection_reuse(void **state)
{
    static const ss_step s0[] = {SS_STEP_READ, SS_STEP_SEND(OK_HEAD "Content-Length: 3\r\n\r\none"),
                                 SS_STEP_READ, SS_STEP_SEND(OK_HEAD "Content-Length: 3\r\n\r\ntwo"),
                                 SS_STEP_END};
    static const ss_step *const scripts[] = {s0};
    ss_server *ss;
    assert_int_equal(ss_start(&loop, scripts, 1, &ss), 0);
    sl_httpc *h = client(0, 0, 0);
    rec a = {0}, b = {0};
    sl_httpc_req *ra = start(h, ss_url(ss, "/a"), &a);
    run_until(&a.dones);
    sl_httpc_req *rb = start(h, ss_url(ss, "/b"), &b);
    run_until(&b.dones);
    assert_int_equal(a.err, 0);
    assert_int_equal(b.err, 0);
    assert_memory_equal(a.body, "one", 3);
    assert_memory_equal(b.body, "two", 3);
    assert_int_equal(ss_accepts(ss), 1);
    assert_int_equal(ss_nrequests(ss), 2);
    sl__httpc_req_free(ra);
    sl__httpc_req_free(rb);
    sl__httpc_free(h);
    ss_free(ss);
}

static void on_probe_closed(uv_handle_t *h) {}

static void test_connect_refused(void **state)
{
    /* a bound but not listening socket: connecting to it is refused */
    static uv_tcp_t probe; /* outlives the test function: closed by the teardown run */
    uv_tcp_init(&loop, &probe);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(uv_tcp_bind(&probe, (const struct sockaddr *)&addr, 0), 0);
    struct sockaddr_storage name;
    int len = sizeof name;
    uv_tcp_getsockname(&probe, (struct sockaddr *)&name, &len);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x",
             ntohs(((struct sockaddr_in *)&name)->sin_port));

    sl_httpc *h = client(0, 0, 0);
    rec x = {0};
    x.free_in_done = 1;
    start(h, url, &x);
    run_until(&x.dones);
    assert_int_equal(x.dones, 1);
    assert_int_equal(x.err, SL_ETRANSPORT);
    assert_int_equal(x.heads, 0);
    assert_true(strlen(x.msg) > 0);
    assert_null(x.req);
    sl__httpc_free(h);
    uv_close((uv_handle_t *)&probe, on_probe_closed);
}

static void test_bad_url(void **state)
{
    sl_httpc *h = client(0, 0, 0);
    rec x = {0};
    start(h, "ftp://127.0.0.1/x", &x);
    run_until(&x.dones);
    assert_int_equal(x.err, SL_EINVAL);
    sl__httpc_req_free(x.req);
    sl__httpc_free(h);
}

static void test_first_byte_timeout(void **state)
{
    static const ss_step s0[] = {SS_STEP_READ, SS_STEP_STALL};
    static const ss_step *const scripts[] = {s0};
    ss_server *ss;
    assert_int_equal(ss_start(&loop, scripts, 1, &ss), 0);
    sl_httpc *h = client(30, 0, 0);
    rec x = {0};
    start(h, ss_url(ss, "/x"), &x);
    run_until(&x.dones);
    assert_int_equal(x.err, SL_ETIMEDOUT);
    assert_string_equal(x.msg, "no response within 30 ms");
    assert_int_equal(x.heads, 0);
    sl__httpc_req_free(x.req);
    /* the client closed the connection: the server sees EOF */
    while (ss_open_connections(ss))
        uv_run(&loop, UV_RUN_ONCE);
    sl__httpc_free(h);
    ss_free(ss);
}

static void test_idle_timeout(void **state)
{
    static const ss_step s0[] = {SS_STEP_READ,
                                 SS_STEP_SEND(OK_HEAD "Content-Length: 100\r\n\r\nabc"),
                                 SS_STEP_WAIT(5), SS_STEP_SEND("def"), SS_STEP_STALL};
    static const ss_step *const scripts[] = {s0};
    ss_server *ss;
    assert_int_equal(ss_start(&loop, scripts, 1, &ss), 0);
    /* idle well above the 5 ms gap, so a busy machine cannot cut the stream early */
    sl_httpc *h = client(0, 150, 0);
    rec x = {0};
    start(h, ss_url(ss, "/x"), &x);
    run_until(&x.dones);
    assert_int_equal(x.err, SL_ETIMEDOUT);
    assert_string_equal(x.msg, "no data for 150 ms");
    assert_int_equal(x.heads, 1);
    assert_int_equal(x.body_len, 6);
    sl__httpc_req_free(x.req);
    sl__httpc_free(h);
    ss_free(ss);
}

static void test_total_timeout(void **state)
{
    static const ss_step s0[] = {
        SS_STEP_READ,     SS_STEP_SEND(OK_HEAD "Content-Length: 100\r\n\r\na"),
        SS_STEP_WAIT(10), SS_STEP_SEND("b"),
        SS_STEP_WAIT(10), SS_STEP_SEND("c"),
        SS_STEP_WAIT(10), SS_STEP_SEND("d"),
        SS_STEP_STALL};
    static const ss_step *const scripts[] = {s0};
    ss_server *ss;
    assert_int_equal(ss_start(&loop, scripts, 1, &ss), 0);
    sl_httpc *h = client(1000, 1000, 50);
    rec x = {0};
    start(h, ss_url(ss, "/x"), &x);
    run_until(&x.dones);
    assert_int_equal(x.err, SL_ETIMEDOUT);
    assert_string_equal(x.msg, "not complete within 50 ms");
    sl__httpc_req_free(x.req);
    sl__httpc_free(h);
    ss_free(ss);
}

typedef struct resumer {
    uv_timer_t t;
    rec *x;
    int fired;
} resumer;

static void on_resume_timer(uv_timer_t *t)
{
    resumer *rs = t->data;
    rs->fired = 1;
    rs->x->paused = 0;
    sl__httpc_resume(rs->x->req);
}

static void test_pause_resume(void **state)
{
    static const ss_step s0[] = {
        SS_STEP_READ,    SS_STEP_SEND(OK_HEAD "Content-Length: 9\r\n\r\none"),
        SS_STEP_WAIT(5), SS_STEP_SEND("two"),
        SS_STEP_WAIT(5), SS_STEP_SEND("six"),
        SS_STEP_END};
    static const ss_step *const scripts[] = {s0};
    ss_server *ss;
    assert_int_equal(ss_start(&loop, scripts, 1, &ss), 0);
    /* the idle clock must not run while paused: 60 ms of pause > 20 ms idle */
    sl_httpc *h = client(0, 20, 0);
    rec x = {0};
    x.pause_after_datas = 1;
    start(h, ss_url(ss, "/x"), &x);
    static resumer rs; /* closed by the teardown run */
    rs = (resumer){.x = &x};
    uv_timer_init(&loop, &rs.t);
    rs.t.data = &rs;
    uv_timer_start(&rs.t, on_resume_timer, 60, 0);
    run_until(&x.dones);
    assert_true(rs.fired);
    assert_int_equal(x.err, 0);
    assert_int_equal(x.data_while_paused, 0);
    assert_int_equal(x.body_len, 9);
    assert_memory_equal(x.body, "onetwosix", 9);
    uv_close((uv_handle_t *)&rs.t, NULL);
    sl__httpc_req_free(x.req);
    sl__httpc_free(h);
    ss_free(ss);
}

static void test_pause_before_start_of_body(void **state)
{
    static const ss_step s0[] = {SS_STEP_READ, SS_STEP_SEND(OK_HEAD "Content-Length: 3\r\n\r\nabc"),
                                 SS_STEP_END};
    static const ss_step *const scripts[] = {s0};
    ss_server *ss;
    assert_int_equal(ss_start(&loop, scripts, 1, &ss), 0);
    sl_httpc *h = client(0, 0, 0);
    rec x = {0};
    start(h, ss_url(ss, "/x"), &x);
    x.paused = 1;
    sl__httpc_pause(x.req); /* outside libcurl */
    static resumer rs;      /* closed by the teardown run */
    rs = (resumer){.x = &x};
    uv_timer_init(&loop, &rs.t);
    rs.t.data = &rs;
    uv_timer_start(&rs.t, on_resume_timer, 30, 0);
    run_until(&x.dones);
    assert_int_equal(x.err, 0);
    assert_int_equal(x.data_while_paused, 0);
    assert_memory_equal(x.body, "abc", 3);
    uv_close((uv_handle_t *)&rs.t, NULL);
    sl__httpc_req_free(x.req);
    sl__httpc_free(h);
    ss_free(ss);
}

static void test_cancel_mid_body(void **state)
{
    static const ss_step s0[] = {
        SS_STEP_READ, SS_STEP_SEND(OK_HEAD "Content-Length: 100\r\n\r\nabc"), SS_STEP_STALL};
    static const ss_step *const scripts[] = {s0};
    ss_server *ss;
    assert_int_equal(ss_start(&loop, scripts, 1, &ss), 0);
    sl_httpc *h = client(0, 0, 0);
    rec x = {0};
    x.cancel_after_datas = 1;
    start(h, ss_url(ss, "/x"), &x);
    run_until(&x.dones);
    assert_int_equal(x.err, SL_ECANCELED);
    assert_int_equal(x.datas, 1);
    /* the connection is gone: the server sees EOF */
    while (ss_open_connections(ss))
        uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(x.dones, 1);
    sl__httpc_req_free(x.req);
    sl__httpc_free(h);
    ss_free(ss);
}

static void test_cancel_outside_then_free_in_data(void **state)
{
    static const ss_step s0[] = {
        SS_STEP_READ, SS_STEP_SEND(OK_HEAD "Content-Length: 100\r\n\r\nabc"), SS_STEP_STALL};
    static const ss_step *const scripts[] = {s0};
    ss_server *ss;
    assert_int_equal(ss_start(&loop, scripts, 1, &ss), 0);
    sl_httpc *h = client(0, 0, 0);

    /* cancel right after start, before any byte: on_done later, from the loop */
    rec a = {0};
    start(h, ss_url(ss, "/a"), &a);
    sl__httpc_cancel(a.req);
    assert_int_equal(a.dones, 0);
    run_until(&a.dones);
    assert_int_equal(a.err, SL_ECANCELED);
    assert_int_equal(a.heads, 0);
    sl__httpc_req_free(a.req);

    /* free inside on_data: no callback ever again */
    rec b = {0};
    b.free_after_datas = 1;
    start(h, ss_url(ss, "/b"), &b);
    int open_seen = 0;
    while (!b.datas)
        uv_run(&loop, UV_RUN_ONCE);
    while (ss_open_connections(ss) && open_seen++ < 1000)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(b.dones, 0);
    assert_null(b.req);
    sl__httpc_free(h);
    ss_free(ss);
}

static void test_ratelimit_headers(void **state)
{
    static const ss_step s0[] = {
        SS_STEP_READ,
        SS_STEP_SEND("HTTP/1.1 429 Too Many Requests\r\n"
                     "Content-Type: application/json\r\n"
                     "Retry-After: 7\r\n"
                     "retry-after-ms: 1500.2\r\n"
                     "x-ratelimit-remaining-requests: 0\r\n"
                     "x-ratelimit-remaining-tokens: 1234\r\n"
                     "x-ratelimit-reset-requests: 6m0s\r\n"
                     "x-ratelimit-reset-tokens: 20ms\r\n"
                     "Content-Length: 2\r\n\r\n{}"),
        SS_STEP_READ,
        SS_STEP_SEND("HTTP/1.1 503 Unavailable\r\nRetry-After: 3\r\nContent-Length: 0\r\n\r\n"),
        SS_STEP_END};
    static const ss_step *const scripts[] = {s0};
    ss_server *ss;
    assert_int_equal(ss_start(&loop, scripts, 1, &ss), 0);
    sl_httpc *h = client(0, 0, 0);
    rec x = {0};
    x.free_in_done = 1;
    start(h, ss_url(ss, "/x"), &x);
    run_until(&x.dones);
    assert_int_equal(x.err, 0);
    assert_int_equal(x.status, 429);
    assert_int_equal(x.head.retry_after_ms, 1501);
    assert_int_equal(x.head.remaining_requests, 0);
    assert_int_equal(x.head.remaining_tokens, 1234);
    assert_int_equal(x.head.reset_requests_ms, 360000);
    assert_int_equal(x.head.reset_tokens_ms, 20);
    assert_string_equal(x.head.request_id, "");

    rec y = {0};
    y.free_in_done = 1;
    start(h, ss_url(ss, "/y"), &y);
    run_until(&y.dones);
    assert_int_equal(y.status, 503);
    assert_int_equal(y.head.retry_after_ms, 3000);
    assert_int_equal(y.head.remaining_requests, -1);
    assert_int_equal(y.head.reset_tokens_ms, -1);
    sl__httpc_free(h);
    ss_free(ss);
}

/* One response after another on one connection: chunked (split anywhere), then one that
 * ends when the server closes (no length), then a 1xx interim head before the real one. */
static void test_body_framings(void **state)
{
    static const ss_step s0[] = {
        SS_STEP_READ,
        SS_STEP_SEND("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"),
        SS_STEP_WAIT(5),
        SS_STEP_SEND("lo\r\n6\r\n world\r\n0\r\n\r\n"),
        SS_STEP_READ,
        SS_STEP_SEND("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nX-Request-Id: r2\r\n"
                     "Content-Length: 2\r\n\r\nok"),
        SS_STEP_READ,
        SS_STEP_SEND("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close"),
        SS_STEP_CLOSE};
    static const ss_step *const scripts[] = {s0};
    ss_server *ss;
    assert_int_equal(ss_start(&loop, scripts, 1, &ss), 0);
    sl_httpc *h = client(0, 0, 0);
    rec a = {0}, b = {0}, c = {0};
    a.free_in_done = b.free_in_done = c.free_in_done = 1;
    start(h, ss_url(ss, "/a"), &a);
    run_until(&a.dones);
    assert_int_equal(a.err, 0);
    assert_int_equal(a.body_len, 11);
    assert_memory_equal(a.body, "hello world", 11);
    start(h, ss_url(ss, "/b"), &b);
    run_until(&b.dones);
    assert_int_equal(b.err, 0);
    assert_int_equal(b.heads, 1);
    assert_int_equal(b.status, 201);
    assert_string_equal(b.head.request_id, "r2");
    assert_memory_equal(b.body, "ok", 2);
    start(h, ss_url(ss, "/c"), &c);
    run_until(&c.dones);
    assert_int_equal(c.err, 0);
    assert_int_equal(c.body_len, 11);
    assert_memory_equal(c.body, "until close", 11);
    assert_int_equal(ss_accepts(ss), 1);
    sl__httpc_free(h);
    ss_free(ss);
}

/* A kept-alive connection the server drops just as the next request arrives (it read
 * the request, answered nothing): the request goes once more on a new connection. */
static void test_dropped_keepalive_retried(void **state)
{
    static const ss_step s0[] = {SS_STEP_READ, SS_STEP_SEND(OK_HEAD "Content-Length: 3\r\n\r\none"),
                                 SS_STEP_READ, SS_STEP_CLOSE};
    static const ss_step s1[] = {SS_STEP_READ, SS_STEP_SEND(OK_HEAD "Content-Length: 3\r\n\r\ntwo"),
                                 SS_STEP_END};
    static const ss_step *const scripts[] = {s0, s1};
    ss_server *ss;
    assert_int_equal(ss_start(&loop, scripts, 2, &ss), 0);
    sl_httpc *h = client(0, 0, 0);
    rec a = {0}, b = {0};
    a.free_in_done = b.free_in_done = 1;
    start(h, ss_url(ss, "/a"), &a);
    run_until(&a.dones);
    start(h, ss_url(ss, "/b"), &b);
    run_until(&b.dones);
    assert_int_equal(b.err, 0);
    assert_memory_equal(b.body, "two", 3);
    assert_int_equal(ss_accepts(ss), 2);
    assert_int_equal(ss_nrequests(ss), 3);
    sl__httpc_free(h);
    ss_free(ss);
}

/* A response that is not HTTP, and one cut in the middle of its body. */
static void test_bad_and_cut_responses(void **state)
{
    static const ss_step s0[] = {SS_STEP_READ, SS_STEP_SEND("HTTP/1.1 2x0 Nope\r\n\r\n"),
                                 SS_STEP_END};
    static const ss_step s1[] = {
        SS_STEP_READ, SS_STEP_SEND(OK_HEAD "Content-Length: 10\r\n\r\nabc"), SS_STEP_CLOSE};
    static const ss_step *const scripts[] = {s0, s1};
    ss_server *ss;
    assert_int_equal(ss_start(&loop, scripts, 2, &ss), 0);
    sl_httpc *h = client(0, 0, 0);
    rec a = {0}, b = {0};
    a.free_in_done = b.free_in_done = 1;
    start(h, ss_url(ss, "/a"), &a);
    run_until(&a.dones);
    /* libcurl 7.88 calls it CURLE_UNSUPPORTED_PROTOCOL */
    assert_true(a.err == SL_ETRANSPORT || (transport == SL_HTTPC_CURL && a.err == SL_EINVAL));
    assert_int_equal(a.heads, 0);
    start(h, ss_url(ss, "/b"), &b);
    run_until(&b.dones);
    assert_int_equal(b.err, SL_ETRANSPORT);
    assert_int_equal(b.heads, 1);
    assert_int_equal(b.body_len, 3);
    assert_true(strlen(b.msg) > 0);
    sl__httpc_free(h);
    ss_free(ss);
}

/* Response headers over max_header_bytes end the request with SL_ELIMIT. */
static void test_header_cap(void **state)
{
    static const ss_step s0[] = {
        SS_STEP_READ,
        SS_STEP_SEND(
            "HTTP/1.1 200 OK\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
            "Content-Length: 0\r\n\r\n"),
        SS_STEP_END};
    static const ss_step *const scripts[] = {s0};
    ss_server *ss;
    assert_int_equal(ss_start(&loop, scripts, 1, &ss), 0);
    sl_httpc_opts o;
    sl__httpc_opts_init(&o);
    o.max_header_bytes = 64;
    o.transport = transport;
    sl_httpc *h = NULL;
    assert_int_equal(sl__httpc_new(&loop, &o, &h), 0);
    rec a = {0};
    a.free_in_done = 1;
    start(h, ss_url(ss, "/a"), &a);
    run_until(&a.dones);
    assert_int_equal(a.err, SL_ELIMIT);
    assert_int_equal(a.heads, 0);
    sl__httpc_free(h);
    ss_free(ss);
}

/* With max_host_connections 1, a second request waits for the first one's connection;
 * "Connection: close" is honoured (the third request opens a new connection). A host
 * name is resolved. */
static void test_host_cap_and_close(void **state)
{
    static const ss_step s0[] = {
        SS_STEP_READ, SS_STEP_SEND(OK_HEAD "Content-Length: 3\r\n\r\none"), SS_STEP_READ,
        SS_STEP_SEND(OK_HEAD "Connection: close\r\nContent-Length: 3\r\n\r\ntwo"), SS_STEP_END};
    static const ss_step s1[] = {SS_STEP_READ, SS_STEP_SEND(OK_HEAD "Content-Length: 3\r\n\r\nsix"),
                                 SS_STEP_END};
    static const ss_step *const scripts[] = {s0, s1};
    ss_server *ss;
    assert_int_equal(ss_start(&loop, scripts, 2, &ss), 0);
    sl_httpc_opts o;
    sl__httpc_opts_init(&o);
    o.max_host_connections = 1;
    o.transport = transport;
    sl_httpc *h = NULL;
    assert_int_equal(sl__httpc_new(&loop, &o, &h), 0);
    char url[64];
    snprintf(url, sizeof url, "http://localhost:%d/x", ss_port(ss));
    rec a = {0}, b = {0}, c = {0};
    a.free_in_done = b.free_in_done = c.free_in_done = 1;
    start(h, url, &a);
    start(h, url, &b);
    run_until(&a.dones);
    run_until(&b.dones);
    assert_int_equal(a.err, 0);
    assert_int_equal(b.err, 0);
    assert_memory_equal(a.body, "one", 3);
    assert_memory_equal(b.body, "two", 3);
    assert_int_equal(ss_accepts(ss), 1);
    start(h, url, &c);
    run_until(&c.dones);
    assert_int_equal(c.err, 0);
    assert_memory_equal(c.body, "six", 3);
    assert_int_equal(ss_accepts(ss), 2);
    sl__httpc_free(h);
    ss_free(ss);
}

/* Paused in the first on_data while the rest of the body was read with it: nothing is
 * delivered until the resume, then the rest in order. */
static void test_pause_with_bytes_read(void **state)
{
    static const ss_step s0[] = {
        SS_STEP_READ,
        SS_STEP_SEND("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "3\r\none\r\n3\r\ntwo\r\n3\r\nsix\r\n0\r\n\r\n"),
        SS_STEP_END};
    static const ss_step *const scripts[] = {s0};
    ss_server *ss;
    assert_int_equal(ss_start(&loop, scripts, 1, &ss), 0);
    sl_httpc *h = client(0, 0, 0);
    rec x = {0};
    x.pause_after_datas = 1;
    start(h, ss_url(ss, "/x"), &x);
    static resumer rs; /* closed by the teardown run */
    rs = (resumer){.x = &x};
    uv_timer_init(&loop, &rs.t);
    rs.t.data = &rs;
    uv_timer_start(&rs.t, on_resume_timer, 30, 0);
    run_until(&x.dones);
    assert_true(rs.fired);
    assert_int_equal(x.err, 0);
    assert_int_equal(x.data_while_paused, 0);
    assert_int_equal(x.body_len, 9);
    assert_memory_equal(x.body, "onetwosix", 9);
    uv_close((uv_handle_t *)&rs.t, NULL);
    sl__httpc_req_free(x.req);
    sl__httpc_free(h);
    ss_free(ss);
}

static void test_url_checks(void **state)
{
    sl_httpc *h = client(0, 0, 0);
    static const char *bad[] = {
        "http://",       "http://user:pw@127.0.0.1/x", "http://127.0.0.1:99999/",
        "http://[::1/x", "http://127.0.0.1:/x",        "http://a b/"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sl_httpc_req_opts ro;
        memset(&ro, 0, sizeof ro);
        ro.url = bad[i];
        ro.on_done = on_done;
        sl_httpc_req *r = NULL;
        rec x = {0};
        ro.user = &x;
        int rc = sl__httpc_start(h, &ro, &r);
        if (rc == 0) { /* libcurl finds out later */
            run_until(&x.dones);
            assert_int_not_equal(x.err, 0);
            sl__httpc_req_free(r);
        } else {
            assert_int_equal(rc, SL_EINVAL);
            assert_null(r);
        }
    }
    sl__httpc_free(h);
}

/* With http_proxy set, plain http:// goes to the proxy (through libcurl, whatever the
 * default transport): the proxy gets the absolute URL. */
static void test_proxy_from_env(void **state)
{
    static const ss_step s0[] = {SS_STEP_READ, SS_STEP_SEND(OK_HEAD "Content-Length: 2\r\n\r\nok"),
                                 SS_STEP_END};
    static const ss_step *const scripts[] = {s0};
    ss_server *ss;
    assert_int_equal(ss_start(&loop, scripts, 1, &ss), 0);
    char proxy[64];
    snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", ss_port(ss));
    setenv("http_proxy", proxy, 1); /* libcurl reads it when the transfer starts */
    sl_httpc *h = client(0, 0, 0);
    rec x = {0};
    x.free_in_done = 1;
    start(h, "http://upstream.invalid:8080/v1/x", &x);
    run_until(&x.dones);
    unsetenv("http_proxy");
    assert_int_equal(x.err, 0);
    assert_memory_equal(x.body, "ok", 2);
    const char *req = ss_request(ss, 0);
    assert_non_null(req);
    assert_true(!strncmp(req, "POST http://upstream.invalid:8080/v1/x HTTP/1.1\r\n", 49));
    sl__httpc_free(h);
    ss_free(ss);
}

static void test_duration_parsing(void **state)
{
#define D(s) sl__httpc_parse_duration_ms(s, strlen(s))
    assert_int_equal(D("1s"), 1000);
    assert_int_equal(D("6m0s"), 360000);
    assert_int_equal(D("20ms"), 20);
    assert_int_equal(D("1h2m3.5s"), 3723500);
    assert_int_equal(D("0.5s"), 500);
    assert_int_equal(D("1.0001s"), 1001); /* rounded up */
    assert_int_equal(D("250us"), 1);
    assert_int_equal(D("100ns"), 1);
    assert_int_equal(D("0s"), 0);
    assert_int_equal(D(" 2 "), 2000); /* bare number: seconds */
    assert_int_equal(D("1m30"), -1);
    assert_int_equal(D(""), -1);
    assert_int_equal(D("s"), -1);
    assert_int_equal(D("5x"), -1);
    assert_int_equal(D("-1s"), -1);
    assert_int_equal(D("99999999999h"), -1);
#undef D
#define R(s, now) sl__httpc_parse_retry_after_ms(s, strlen(s), now)
    assert_int_equal(R("7", 0), 7000);
    assert_int_equal(R("0", 0), 0);
    /* 784111777 is Sun, 06 Nov 1994 08:49:37 GMT */
    assert_int_equal(R("Sun, 06 Nov 1994 08:49:37 GMT", 784111777LL - 12), 12000);
    assert_int_equal(R("Sun, 06 Nov 1994 08:49:37 GMT", 784111777LL + 5), 0);
    assert_int_equal(R("soon", 0), -1);
    assert_int_equal(R("", 0), -1);
#undef R
}

static int task_runs;
static void count_task(sl_httpc_task *t)
{
    task_runs++;
}

static void test_defer(void **state)
{
    sl_httpc *h = client(0, 0, 0);
    sl_httpc_task a, b;
    sl__httpc_task_init(&a, count_task);
    sl__httpc_task_init(&b, count_task);
    task_runs = 0;
    sl__httpc_defer(h, &a);
    sl__httpc_defer(h, &a); /* queued once */
    sl__httpc_defer(h, &b);
    sl__httpc_undefer(&b);
    assert_int_equal(task_runs, 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(task_runs, 1);
    sl__httpc_free(h);
}

static int group_default(void **state)
{
    transport = SL_HTTPC_AUTO;
    return 0;
}

static int group_curl(void **state)
{
    transport = SL_HTTPC_CURL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_status_headers_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_easy_handle_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_connection_closed_by_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_byte_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_total_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_before_start_of_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_mid_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_outside_then_free_in_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ratelimit_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_framings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dropped_keepalive_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_and_cut_responses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_cap_and_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_with_bytes_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proxy_from_env, setup, teardown),
        cmocka_unit_test(test_duration_parsing),
        cmocka_unit_test_setup_teardown(test_defer, setup, teardown),
    };
    int failed = cmocka_run_group_tests_name("httpc (h1c for http://)", tests, group_default, NULL);
    failed += cmocka_run_group_tests_name("httpc (libcurl)", tests, group_curl, NULL);
    return failed;
}
