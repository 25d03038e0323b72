/* test_httpd.c — the HTTP/1.1 server over real loopback sockets.
 *
 * The server runs on a uv loop in this thread; the clients are plain sockets driven from
 * the test itself. While a client waits for bytes, the test polls its socket and the
 * loop's backend fd together and runs the loop without blocking, so every scenario is one
 * deterministic sequence and asserts stay on the test thread. Responses are compared
 * byte for byte (the Date header uses a fixed clock); callbacks are counted exactly, and
 * every test ends with no live handle on the loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "io/httpd.h"

#define DATE  "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
#define KEEP  "Connection: keep-alive\r\n"
#define CLOSE "Connection: close\r\n"
#define HELLO_RESP                                                                                 \
    "HTTP/1.1 200 OK\r\n" DATE KEEP "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
#define STREAM_HEAD                                                                                \
    "HTTP/1.1 200 OK\r\n" DATE KEEP "Content-Type: text/event-stream\r\n"                          \
    "Transfer-Encoding: chunked\r\n\r\n"
#define STREAM_RESP STREAM_HEAD "9\r\ndata: a\n\n\r\n9\r\ndata: b\n\n\r\n0\r\n\r\n"

static uv_loop_t loop;
static sl_httpd *srv;
static int port;
static uv_timer_t app_timer;
static sl_httpd_req *held;

static struct {
    int requests, headers, closes, drains, blocked;
    size_t big_chunks;
    char log[512];
} ev;

static int64_t fixed_clock(void)
{
    return 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void logf_(const char *fmt, ...)
{
    size_t n = strlen(ev.log);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ev.log + n, sizeof ev.log - n, fmt, ap);
    va_end(ap);
}

static int str_is(sl_str s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

/* ---- the application ---- */

static void app_close(sl_httpd_req *r, void *u)
{
    ev.closes++;
    logf_("close;");
    if (r == held)
        held = NULL;
}

static void stream_tick(uv_timer_t *t)
{
    logf_("end;");
    assert_int_equal(sl__httpd_write(held, "data: b\n\n", 9), 0);
    sl_httpd_req *r = held;
    held = NULL;
    assert_int_equal(sl__httpd_end(r), 0);
}

static char big_chunk[16384];

static void big_drain(sl_httpd_req *r, void *u)
{
    ev.drains++;
    assert_int_equal(sl__httpd_write(r, "end", 3), 0);
    assert_int_equal(sl__httpd_end(r), 0);
}

static int app_headers(sl_httpd_req *r, void *u)
{
    ev.headers++;
    sl__httpd_req_on_close(r, app_close);
    sl_str p = sl__httpd_req_path(r);
    if (str_is(p, "/deny"))
        return 401;
    if (str_is(p, "/slow"))
        sl__httpd_req_throttle(r, 5);
    return 0;
}

static void app_request(sl_httpd_req *r, void *u)
{
    sl_str p = sl__httpd_req_path(r);
    ev.requests++;
    logf_("%.*s;", (int)p.len, p.ptr);
    sl__httpd_req_on_close(r, app_close);
    if (str_is(p, "/hello")) {
        assert_string_equal(sl__httpd_req_peer(r), "127.0.0.1");
        assert_int_equal(sl__httpd_respond(r, 200, "text/plain", NULL, "hello", 5), 0);
    } else if (str_is(p, "/echo") || str_is(p, "/slow")) {
        sl_str m = sl__httpd_req_method(r), q = sl__httpd_req_query(r);
        sl_str t = sl__httpd_req_header(r, "x-TEST"), b = sl__httpd_req_body(r);
        char extra[256];
        snprintf(extra, sizeof extra, "X-Method: %.*s\r\nX-Query: %.*s\r\nX-Got: %.*s\r\n",
                 (int)m.len, m.ptr, (int)q.len, q.ptr, (int)t.len, t.ptr ? t.ptr : "");
        assert_int_equal(sl__httpd_respond(r, 200, "text/plain", extra, b.ptr, b.len), 0);
    } else if (str_is(p, "/stream")) {
        assert_int_equal(sl__httpd_start(r, 200, "text/event-stream", NULL), 0);
        assert_int_equal(sl__httpd_write(r, "data: a\n\n", 9), 0);
        assert_int_equal(sl__httpd_write(r, "", 0), 0);
        held = r;
        uv_timer_start(&app_timer, stream_tick, 20, 0);
    } else if (str_is(p, "/hang")) {
        assert_int_equal(sl__httpd_start(r, 200, "text/event-stream", NULL), 0);
        assert_int_equal(sl__httpd_write(r, "data: a\n\n", 9), 0);
        held = r;
    } else if (str_is(p, "/abort")) {
        assert_int_equal(sl__httpd_start(r, 200, "text/plain", NULL), 0);
        assert_int_equal(sl__httpd_write(r, "x", 1), 0);
        sl__httpd_abort(r);
    } else if (str_is(p, "/big")) {
        sl__httpd_req_on_drain(r, big_drain);
        assert_int_equal(sl__httpd_start(r, 200, "text/plain", NULL), 0);
        while (sl__httpd_writable(r) && ev.big_chunks < 4096) {
            assert_int_equal(sl__httpd_write(r, big_chunk, sizeof big_chunk), 0);
            ev.big_chunks++;
        }
        ev.blocked = !sl__httpd_writable(r);
    } else if (str_is(p, "/error")) {
        assert_int_equal(sl__httpd_respond_error(r, 400, "invalid_request_error",
                                                 "bad \"x\"\n\x01 \xc3\xa9 \xff"),
                         0);
    } else if (str_is(p, "/quit")) {
        /* Freeing the server from inside its own callback is allowed. */
        sl__httpd_free(srv);
        srv = NULL;
        assert_int_equal(sl__httpd_respond(r, 200, NULL, NULL, "", 0), SL_EIO);
    } else if (str_is(p, "/empty")) {
        assert_int_equal(sl__httpd_respond(r, 204, NULL, "X-A: 1\r\n", NULL, 0), 0);
    } else {
        assert_int_equal(sl__httpd_respond(r, 200, NULL, "Bad\r\n\r\nX: y\r\n", "", 0), SL_EINVAL);
        assert_int_equal(sl__httpd_respond(r, 200, "a\r\nb", NULL, "", 0), SL_EINVAL);
        assert_int_equal(sl__httpd_write(r, "x", 1), SL_EINVAL);
        assert_int_equal(sl__httpd_respond_error(r, 404, NULL, "not found"), 0);
        assert_int_equal(sl__httpd_respond(r, 200, NULL, NULL, "", 0), SL_EINVAL);
    }
}

/* ---- the loop and the clients ---- */

static void start(const sl_httpd_limits *l)
{
    memset(&ev, 0, sizeof ev);
    held = NULL;
    assert_int_equal(uv_loop_init(&loop), 0);
    sl_httpd_handlers h = {app_request, app_headers, NULL};
    assert_int_equal(sl__httpd_new(&loop, l, &h, &srv), 0);
    sl__httpd_set_clock(srv, fixed_clock);
    assert_int_equal(sl__httpd_listen(srv, "127.0.0.1", 0, 0), 0);
    port = sl__httpd_port(srv);
    assert_true(port > 0);
    assert_int_equal(uv_timer_init(&loop, &app_timer), 0);
}

static void stop(void)
{
    if (srv)
        sl__httpd_free(srv);
    uv_close((uv_handle_t *)&app_timer, NULL);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Wait for the client socket (if any) or the loop, then run the loop once, not blocking. */
static void step(int fd)
{
    struct pollfd p[2] = {{uv_backend_fd(&loop), POLLIN, 0}, {fd, POLLIN, 0}};
    int t = uv_backend_timeout(&loop);
    if (t < 0 || t > 20)
        t = 20;
    poll(p, fd >= 0 ? 2 : 1, t);
    uv_run(&loop, UV_RUN_NOWAIT);
}

#define PUMP_UNTIL(cond)                                                                           \
    do {                                                                                           \
        double t0_ = now_ms();                                                                     \
        while (!(cond)) {                                                                          \
            assert_true(now_ms() - t0_ < 5000);                                                    \
            step(-1);                                                                              \
        }                                                                                          \
    } while (0)

static int client(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void csend(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        assert_true(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

static void csend_str(int fd, const char *s)
{
    csend(fd, s, strlen(s));
}

static int eof_seen;

/* Read until want bytes (want 0: until EOF). Returns a NUL-terminated malloc'd buffer. */
static char *cread(int fd, size_t want, size_t *got_out)
{
    size_t cap = want ? want + 1 : 4096, got = 0;
    char *buf = malloc(cap);
    double t0 = now_ms();
    eof_seen = 0;
    while (!want || got < want) {
        if (got + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        size_t room = cap - got - 1;
        if (want && room > want - got)
            room = want - got;
        ssize_t n = recv(fd, buf + got, room, MSG_DONTWAIT);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0) {
            eof_seen = 1;
            break;
        }
        assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
        assert_true(now_ms() - t0 < 5000);
        step(fd);
    }
    buf[got] = '\0';
    if (got_out)
        *got_out = got;
    return buf;
}

static void expect(int fd, const char *want)
{
    char *got = cread(fd, strlen(want), NULL);
    assert_string_equal(got, want);
    free(got);
}

/* The rest of the connection up to EOF must be exactly want. */
static void expect_then_eof(int fd, const char *want)
{
    char *got = cread(fd, 0, NULL);
    assert_true(eof_seen);
    assert_string_equal(got, want);
    free(got);
}

static char *error_resp(int status, const char *reason, const char *msg)
{
    static char out[1024];
    char body[512];
    snprintf(body, sizeof body,
             "{\"error\":{\"message\":\"%s\",\"type\":\"%s\","
             "\"param\":null,\"code\":null}}",
             msg, status >= 500 ? "server_error" : "invalid_request_error");
    snprintf(out, sizeof out,
             "HTTP/1.1 %d %s\r\n" DATE CLOSE
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             status, reason, strlen(body), body);
    return out;
}

/* ---- tests ---- */

static void test_get_post_keepalive(void **state)
{
    start(NULL);
    int fd = client();
    csend_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(fd, HELLO_RESP);
    /* The second request on the same connection, one byte at a time. */
    const char *post = "POST /echo?a=1&b HTTP/1.1\r\nHost: x\r\nX-Test:   v 1  \r\n"
                       "X-Empty:\r\nContent-Length: 7\r\n\r\npayload";
    for (const char *p = post; *p; p++) {
        csend(fd, p, 1);
        step(-1);
    }
    expect(fd, "HTTP/1.1 200 OK\r\n" DATE KEEP "Content-Type: text/plain\r\nContent-Length: 7\r\n"
               "X-Method: POST\r\nX-Query: a=1&b\r\nX-Got: v 1\r\n\r\npayload");
    assert_int_equal(sl__httpd_accepted(srv), 1);
    assert_int_equal(sl__httpd_open_connections(srv), 1);
    close(fd);
    PUMP_UNTIL(sl__httpd_open_connections(srv) == 0);
    assert_int_equal(ev.requests, 2);
    assert_int_equal(ev.headers, 2);
    assert_int_equal(ev.closes, 0);
    assert_string_equal(ev.log, "/hello;/echo;");
    stop();
}

static void test_pipelined_with_stream(void **state)
{
    start(NULL);
    int fd = client();
    csend_str(fd, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"
                  "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                  "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    expect(fd, STREAM_RESP HELLO_RESP "HTTP/1.1 200 OK\r\n" DATE KEEP
                                      "Content-Type: text/plain\r\nContent-Length: 3\r\n"
                                      "X-Method: POST\r\nX-Query: \r\nX-Got: \r\n\r\nabc");
    /* The next request was not handed over before the stream ended. */
    assert_string_equal(ev.log, "/stream;end;/hello;/echo;");
    close(fd);
    PUMP_UNTIL(sl__httpd_open_connections(srv) == 0);
    assert_int_equal(ev.requests, 3);
    assert_int_equal(ev.closes, 0);
    stop();
}

static void test_pipelined_immediate(void **state)
{
    start(NULL);
    int fd = client();
    char req[4096] = "";
    for (int i = 0; i < 20; i++)
        strncat(req, "GET /hello HTTP/1.1\r\n\r\n", sizeof req - strlen(req) - 1);
    strncat(req, "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\nGET /hello HTTP/1.1\r\n\r\n",
            sizeof req - strlen(req) - 1);
    csend_str(fd, req);
    char want[8192] = "";
    for (int i = 0; i < 20; i++)
        strncat(want, HELLO_RESP, sizeof want - strlen(want) - 1);
    strncat(want,
            "HTTP/1.1 200 OK\r\n" DATE CLOSE "Content-Type: text/plain\r\nContent-Length: 5"
            "\r\n\r\nhello",
            sizeof want - strlen(want) - 1);
    /* Connection: close is honoured: the request after it is never answered. */
    expect_then_eof(fd, want);
    assert_int_equal(ev.requests, 21);
    close(fd);
    PUMP_UNTIL(sl__httpd_open_connections(srv) == 0);
    stop();
}

static void test_chunked_and_close(void **state)
{
    start(NULL);
    int fd = client();
    csend_str(fd, "GET /stream HTTP/1.1\r\n\r\n");
    expect(fd, STREAM_RESP);
    csend_str(fd, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
                  "\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n");
    expect_then_eof(fd, "HTTP/1.1 200 OK\r\n" DATE CLOSE
                        "Content-Type: text/plain\r\nContent-Length: 7\r\n"
                        "X-Method: POST\r\nX-Query: \r\nX-Got: \r\n\r\nabcdefg");
    close(fd);
    PUMP_UNTIL(sl__httpd_open_connections(srv) == 0);
    assert_int_equal(ev.requests, 2);
    assert_int_equal(ev.closes, 0);
    stop();
}

static void test_http10(void **state)
{
    start(NULL);
    int fd = client();
    csend_str(fd, "GET /hello HTTP/1.0\r\n\r\n");
    expect_then_eof(fd, "HTTP/1.1 200 OK\r\n" DATE CLOSE
                        "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello");
    close(fd);

    fd = client();
    csend_str(fd, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    expect(fd, HELLO_RESP);
    /* HTTP/1.0 has no chunked encoding: the stream ends with the connection. */
    csend_str(fd, "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    expect_then_eof(fd, "HTTP/1.1 200 OK\r\n" DATE CLOSE
                        "Content-Type: text/event-stream\r\n\r\ndata: a\n\ndata: b\n\n");
    close(fd);

    fd = client();
    csend_str(fd, "HEAD /hello HTTP/1.1\r\n\r\nGET /empty HTTP/1.1\r\n\r\n");
    expect(fd,
           "HTTP/1.1 200 OK\r\n" DATE KEEP "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
           "HTTP/1.1 204 No Content\r\n" DATE KEEP "X-A: 1\r\n\r\n");
    close(fd);
    PUMP_UNTIL(sl__httpd_open_connections(srv) == 0);
    assert_int_equal(ev.requests, 5);
    assert_int_equal(ev.closes, 0);
    stop();
}

static void test_header_limits(void **state)
{
    sl_httpd_limits l;
    sl__httpd_limits_init(&l);
    l.max_headers = 4;
    l.max_header_bytes = 256;
    start(&l);
    int fd = client();
    csend_str(fd, "GET /hello HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n");
    expect(fd, HELLO_RESP);
    csend_str(fd, "GET /hello HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n");
    expect_then_eof(
        fd, error_resp(431, "Request Header Fields Too Large", "too many request headers (max 4)"));
    close(fd);

    fd = client();
    char big[512];
    memset(big, 'v', sizeof big);
    big[300] = '\0';
    char req[700];
    snprintf(req, sizeof req, "GET /hello HTTP/1.1\r\nX-Big: %s\r\n\r\n", big);
    csend_str(fd, req);
    expect_then_eof(fd, error_resp(431, "Request Header Fields Too Large",
                                   "request headers too large (max 256 bytes)"));
    close(fd);
    PUMP_UNTIL(sl__httpd_open_connections(srv) == 0);
    assert_int_equal(ev.requests, 1);
    assert_int_equal(ev.headers, 1);
    stop();
}

static void test_body_limit_and_garbage(void **state)
{
    sl_httpd_limits l;
    sl__httpd_limits_init(&l);
    l.max_body = 1024;
    start(&l);
    int fd = client();
    csend_str(fd, "POST /echo HTTP/1.1\r\nContent-Length: 100000\r\n\r\nsome of the body");
    expect_then_eof(
        fd, error_resp(413, "Payload Too Large", "request body too large (max 1024 bytes)"));
    close(fd);

    /* A chunked body is checked as it arrives. */
    fd = client();
    char chunk[1100];
    memset(chunk, 'q', sizeof chunk);
    csend_str(fd, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n44c\r\n");
    csend(fd, chunk, sizeof chunk);
    expect_then_eof(
        fd, error_resp(413, "Payload Too Large", "request body too large (max 1024 bytes)"));
    close(fd);

    fd = client();
    csend_str(fd, "\x01\x02garbage\r\n\r\n");
    expect_then_eof(fd, error_resp(400, "Bad Request", "malformed request: invalid HTTP method"));
    close(fd);

    fd = client();
    csend_str(fd, "CONNECT example.com:443 HTTP/1.1\r\n\r\n");
    expect_then_eof(fd, error_resp(501, "Not Implemented", "method CONNECT is not supported"));
    close(fd);

    fd = client();
    csend_str(fd, "GET /deny HTTP/1.1\r\n\r\n");
    expect_then_eof(fd, error_resp(401, "Unauthorized", "Unauthorized"));
    close(fd);

    fd = client();
    csend_str(fd, "GET /nope HTTP/1.1\r\n\r\nGET /error HTTP/1.1\r\n\r\n");
    const char *nf = "{\"error\":{\"message\":\"not found\",\"type\":\"invalid_request_error\","
                     "\"param\":null,\"code\":null}}";
    const char *bad = "{\"error\":{\"message\":\"bad \\\"x\\\"\\n\\u0001 \xc3\xa9 \\ufffd\","
                      "\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}";
    char want[1024];
    snprintf(want, sizeof want,
             "HTTP/1.1 404 Not Found\r\n" DATE KEEP
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s"
             "HTTP/1.1 400 Bad Request\r\n" DATE KEEP
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(nf), nf, strlen(bad), bad);
    expect(fd, want);
    close(fd);
    PUMP_UNTIL(sl__httpd_open_connections(srv) == 0);
    assert_int_equal(ev.requests, 2);
    assert_int_equal(ev.headers, 4); /* 413 from Content-Length comes before on_headers */
    assert_int_equal(ev.closes, 1);  /* the chunked upload saw on_headers, then the 413 */
    stop();
}

static void test_timeouts(void **state)
{
    sl_httpd_limits l;
    sl__httpd_limits_init(&l);
    l.header_timeout_ms = 50;
    l.idle_timeout_ms = 50;
    start(&l);
    int fd = client();
    csend_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n");
    expect_then_eof(fd, error_resp(408, "Request Timeout", "request timed out"));
    close(fd);

    /* Idle: a connection that never sends, and one after a keep-alive response. */
    fd = client();
    expect_then_eof(fd, "");
    close(fd);
    fd = client();
    csend_str(fd, "GET /hello HTTP/1.1\r\n\r\n");
    expect_then_eof(fd, HELLO_RESP);
    close(fd);
    PUMP_UNTIL(sl__httpd_open_connections(srv) == 0);
    assert_int_equal(ev.requests, 1);
    assert_int_equal(ev.closes, 0);
    stop();
}

static void test_client_abort_mid_stream(void **state)
{
    start(NULL);
    int fd = client();
    csend_str(fd, "GET /hang HTTP/1.1\r\n\r\n");
    expect(fd, STREAM_HEAD "9\r\ndata: a\n\n\r\n");
    assert_non_null(held);
    close(fd);
    PUMP_UNTIL(ev.closes == 1);
    assert_null(held);
    PUMP_UNTIL(sl__httpd_open_connections(srv) == 0);

    /* sl__httpd_free closes a connection with a response in progress: on_close once. */
    fd = client();
    csend_str(fd, "GET /hang HTTP/1.1\r\n\r\n");
    expect(fd, STREAM_HEAD "9\r\ndata: a\n\n\r\n");
    assert_non_null(held);
    stop();
    assert_null(held);
    assert_int_equal(ev.closes, 2);
    assert_int_equal(ev.requests, 2);
    assert_string_equal(ev.log, "/hang;close;/hang;close;");
    close(fd);
}

static void test_abort(void **state)
{
    start(NULL);
    int fd = client();
    csend_str(fd, "GET /abort HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n");
    expect_then_eof(fd, "HTTP/1.1 200 OK\r\n" DATE KEEP
                        "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "1\r\nx\r\n");
    close(fd);
    PUMP_UNTIL(sl__httpd_open_connections(srv) == 0);
    assert_int_equal(ev.requests, 1);
    assert_int_equal(ev.closes, 0);
    stop();
}

static void test_backpressure(void **state)
{
    sl_httpd_limits l;
    sl__httpd_limits_init(&l);
    l.write_high_watermark = 64 * 1024;
    start(&l);
    memset(big_chunk, 'z', sizeof big_chunk);
    int fd = client();
    csend_str(fd, "GET /big HTTP/1.1\r\n\r\n");
    PUMP_UNTIL(ev.requests == 1);
    /* The client has not read: the socket filled up and the server said stop. */
    assert_int_equal(ev.blocked, 1);
    assert_int_equal(ev.drains, 0);
    const char *head = "HTTP/1.1 200 OK\r\n" DATE KEEP
                       "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n";
    size_t total = strlen(head) + ev.big_chunks * (6 + sizeof big_chunk + 2) + 8 + 5;
    size_t got = 0;
    char *buf = cread(fd, total, &got);
    assert_int_equal(got, total);
    assert_memory_equal(buf, head, strlen(head));
    assert_memory_equal(buf + strlen(head), "4000\r\nzzzz", 10);
    assert_string_equal(buf + total - 13, "3\r\nend\r\n0\r\n\r\n");
    free(buf);
    assert_int_equal(ev.drains, 1);
    assert_true(ev.big_chunks > 4);
    close(fd);
    PUMP_UNTIL(sl__httpd_open_connections(srv) == 0);
    assert_int_equal(ev.closes, 0);
    stop();
}

static void test_max_connections_and_throttle(void **state)
{
    sl_httpd_limits l;
    sl__httpd_limits_init(&l);
    l.max_connections = 1;
    start(&l);
    int fd = client();
    PUMP_UNTIL(sl__httpd_open_connections(srv) == 1);
    int fd2 = client();
    expect_then_eof(fd2, "");
    close(fd2);
    assert_int_equal(sl__httpd_accepted(srv), 2);
    /* A throttled upload still arrives whole. */
    csend_str(fd, "POST /slow HTTP/1.1\r\nContent-Length: 6\r\n\r\nab");
    for (int i = 0; i < 5; i++)
        step(-1);
    csend_str(fd, "cd");
    for (int i = 0; i < 5; i++)
        step(-1);
    csend_str(fd, "ef");
    expect(fd, "HTTP/1.1 200 OK\r\n" DATE KEEP "Content-Type: text/plain\r\nContent-Length: 6\r\n"
               "X-Method: POST\r\nX-Query: \r\nX-Got: \r\n\r\nabcdef");
    close(fd);
    PUMP_UNTIL(sl__httpd_open_connections(srv) == 0);
    assert_int_equal(ev.requests, 1);
    stop();
}

static void test_expect_continue(void **state)
{
    start(NULL);
    int fd = client();
    csend_str(fd, "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    expect(fd, "HTTP/1.1 100 Continue\r\n\r\n");
    csend_str(fd, "hi");
    expect(fd, "HTTP/1.1 200 OK\r\n" DATE KEEP "Content-Type: text/plain\r\nContent-Length: 2\r\n"
               "X-Method: POST\r\nX-Query: \r\nX-Got: \r\n\r\nhi");
    /* The body came along: no interim answer. */
    csend_str(fd, "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nyo");
    expect(fd, "HTTP/1.1 200 OK\r\n" DATE KEEP "Content-Type: text/plain\r\nContent-Length: 2\r\n"
               "X-Method: POST\r\nX-Query: \r\nX-Got: \r\n\r\nyo");
    close(fd);
    PUMP_UNTIL(sl__httpd_open_connections(srv) == 0);
    stop();
}

static void test_free_inside_callback(void **state)
{
    sl_httpd_handlers h = {app_request, NULL, NULL}, none = {NULL, NULL, NULL};
    sl_httpd *s = NULL;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(sl__httpd_new(&loop, NULL, &none, &s), SL_EINVAL);
    assert_int_equal(sl__httpd_new(NULL, NULL, &h, &s), SL_EINVAL);
    assert_int_equal(uv_loop_close(&loop), 0);

    start(NULL);
    /* A reset peer must not kill the process. */
    struct sigaction sa;
    assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
    assert_true(sa.sa_handler == SIG_IGN);
    sl_httpd *other = NULL;
    assert_int_equal(sl__httpd_new(&loop, NULL, &h, &other), 0);
    assert_int_equal(sl__httpd_listen(other, "not an address", 0, 0), SL_EADDR);
    sl__httpd_free(other);
    /* A port taken without SO_REUSEPORT is not shared. */
    assert_int_equal(sl__httpd_new(&loop, NULL, &h, &other), 0);
    assert_int_equal(sl__httpd_listen(other, "127.0.0.1", port, 1), SL_EADDR);
    sl__httpd_free(other);

    int fd = client(), fd2 = client();
    csend_str(fd2, "GET /hang HTTP/1.1\r\n\r\n");
    expect(fd2, STREAM_HEAD "9\r\ndata: a\n\n\r\n");
    csend_str(fd, "GET /quit HTTP/1.1\r\n\r\n");
    expect_then_eof(fd, "");
    expect_then_eof(fd2, "");
    assert_null(srv);
    stop();
    assert_int_equal(ev.requests, 2);
    assert_int_equal(ev.closes, 1); /* /hang; /quit ended with SL_EIO from respond */
    close(fd);
    close(fd2);
}

static void test_reuseport(void **state)
{
    sl_httpd_handlers h = {app_request, NULL, NULL};
    sl_httpd *a = NULL, *b = NULL;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(sl__httpd_new(&loop, NULL, &h, &a), 0);
    assert_int_equal(sl__httpd_new(&loop, NULL, &h, &b), 0);
    assert_int_equal(sl__httpd_listen(a, "127.0.0.1", 0, 1), 0);
    assert_int_equal(sl__httpd_listen(a, "127.0.0.1", 0, 1), SL_EINVAL);
    assert_int_equal(sl__httpd_listen(b, "127.0.0.1", sl__httpd_port(a), 1), 0);
    sl__httpd_free(a);
    sl__httpd_free(b);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_fuzz_entry(void **state)
{
    const char *in = "GET / HTTP/1.1\r\n\r\nPOST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                     "GET /tt HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"
                     "\x01junk";
    assert_int_equal(sl__httpd_fuzz_feed((const uint8_t *)in, strlen(in)), 0);
    assert_int_equal(sl__httpd_fuzz_feed((const uint8_t *)"", 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_post_keepalive),
        cmocka_unit_test(test_pipelined_with_stream),
        cmocka_unit_test(test_pipelined_immediate),
        cmocka_unit_test(test_chunked_and_close),
        cmocka_unit_test(test_http10),
        cmocka_unit_test(test_header_limits),
        cmocka_unit_test(test_body_limit_and_garbage),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_client_abort_mid_stream),
        cmocka_unit_test(test_abort),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_max_connections_and_throttle),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_free_inside_callback),
        cmocka_unit_test(test_reuseport),
        cmocka_unit_test(test_fuzz_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
