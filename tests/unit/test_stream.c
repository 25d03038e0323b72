/* test_stream.c — the blocking pull iterator: success (with enough deltas in one read
 * to pause the call), an HTTP error, close mid-stream, and misuse. The scripted server
 * runs on the client's private loop, which only sl_stream_next drives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/call.h>

#include "script_server.c"

#define SSE_HEAD "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
#define EV(t)                                                                                      \
    "data: {\"id\":\"s\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" t "\"}}]}\n\n"
#define EV_STOP                                                                                    \
    "data: {\"id\":\"s\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"

typedef struct fixture {
    sl_client *c;
    ss_server *ss;
    const ss_step *scripts[1];
} fixture;

static void open_fixture(fixture *f, const ss_step *script)
{
    alarm(30);
    int port;
    int fd = ss_listen_fd(&port);
    assert_true(fd >= 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", port);
    sl_client_opts o;
    sl_client_opts_init(&o);
    o.base_url = url;
    assert_int_equal(sl_client_new(NULL, &o, &f->c), 0);
    f->scripts[0] = script;
    assert_int_equal(ss_start_fd(sl_client_loop(f->c), fd, f->scripts, 1, &f->ss), 0);
}

static void close_fixture(fixture *f)
{
    ss_free(f->ss);
    sl_client_free(f->c); /* runs the private loop dry and closes it */
}

static sl_request *request(void)
{
    sl_request *r;
    assert_int_equal(sl_request_new(&r), 0);
    assert_int_equal(sl_request_add_message(r, "user", "hi", 2), 0);
    return r;
}

static void test_success(void **state)
{
    /* 20 deltas in one write: more than the iterator queues before pausing the call */
    static const ss_step s[] = {
        SS_STEP_READ,
        SS_STEP_SEND(SSE_HEAD EV("a") EV("b") EV("c") EV("d") EV("e") EV("f") EV("g") EV("h")
                         EV("i") EV("j") EV("k") EV("l") EV("m") EV("n") EV("o") EV("p") EV("q")
                             EV("r") EV("s") EV("t")),
        SS_STEP_WAIT(5), SS_STEP_SEND(EV("!") EV_STOP "data: [DONE]\n\n"), SS_STEP_CLOSE};
    fixture f;
    open_fixture(&f, s);
    sl_request *req = request();
    sl_stream *st;
    assert_int_equal(sl_stream_open(f.c, req, &st), 0);
    sl_request_free(req);
    assert_null(sl_stream_result(st));
    char text[64] = "";
    size_t n = 0;
    int count = 0;
    const sl_delta *d;
    while ((d = sl_stream_next(st))) {
        assert_int_equal(d->kind, SL_DELTA_CONTENT);
        assert_true(n + d->text.len < sizeof text);
        memcpy(text + n, d->text.ptr, d->text.len);
        n += d->text.len;
        text[n] = '\0';
        count++;
    }
    assert_null(sl_stream_next(st)); /* stays ended */
    assert_int_equal(count, 21);
    assert_string_equal(text, "abcdefghijklmnopqrst!");
    const sl_result *r = sl_stream_result(st);
    assert_non_null(r);
    assert_int_equal(r->error, 0);
    assert_int_equal((int)r->text.len, 21);
    assert_memory_equal(r->text.ptr, "abcdefghijklmnopqrst!", 21);
    assert_string_equal(r->finish_reason, "stop");
    assert_int_equal(r->attempts, 1);
    sl_stream_close(st);
    close_fixture(&f);
}

static void test_error(void **state)
{
    static const ss_step s[] = {
        SS_STEP_READ,
        SS_STEP_SEND("HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                     "Content-Length: 41\r\n\r\n{\"error\":{\"message\":\"Incorrect API key\"}}"),
        SS_STEP_END};
    fixture f;
    open_fixture(&f, s);
    sl_request *req = request();
    sl_stream *st;
    assert_int_equal(sl_stream_open(f.c, req, &st), 0);
    sl_request_free(req);
    assert_null(sl_stream_next(st));
    const sl_result *r = sl_stream_result(st);
    assert_int_equal(r->error, SL_EHTTP);
    assert_int_equal(r->http_status, 401);
    char want[128];
    snprintf(want, sizeof want,
             "POST http://127.0.0.1:%d/v1/chat/completions: HTTP 401: "
             "Incorrect API key",
             ss_port(f.ss));
    assert_string_equal(r->message, want);
    sl_stream_close(st);
    close_fixture(&f);
}

static void test_close_mid_stream(void **state)
{
    static const ss_step s[] = {SS_STEP_READ, SS_STEP_SEND(SSE_HEAD EV("one") EV("two")),
                                SS_STEP_STALL};
    fixture f;
    open_fixture(&f, s);
    sl_request *req = request();
    sl_stream *st;
    assert_int_equal(sl_stream_open(f.c, req, &st), 0);
    sl_request_free(req);
    const sl_delta *d = sl_stream_next(st);
    assert_non_null(d);
    assert_memory_equal(d->text.ptr, "one", 3);
    d = sl_stream_next(st);
    assert_non_null(d);
    assert_memory_equal(d->text.ptr, "two", 3);
    assert_int_equal(ss_open_connections(f.ss), 1);
    sl_stream_close(st); /* cancels: the connection goes */
    while (ss_open_connections(f.ss))
        uv_run(sl_client_loop(f.c), UV_RUN_ONCE);
    close_fixture(&f);
}

static void test_close_unread_and_misuse(void **state)
{
    static const ss_step s[] = {SS_STEP_READ, SS_STEP_SEND(SSE_HEAD EV("x")), SS_STEP_STALL};
    fixture f;
    open_fixture(&f, s);
    sl_request *req = request();
    sl_stream *st;
    /* open, never pull, close: nothing was read, nothing leaks */
    assert_int_equal(sl_stream_open(f.c, req, &st), 0);
    sl_stream_close(st);
    sl_stream_close(NULL);

    /* a client on the caller's loop cannot be pulled from */
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_client_opts o;
    sl_client_opts_init(&o);
    o.base_url = "http://127.0.0.1:9/v1";
    sl_client *c;
    assert_int_equal(sl_client_new(&loop, &o, &c), 0);
    st = (sl_stream *)1;
    assert_int_equal(sl_stream_open(c, req, &st), SL_EINVAL);
    assert_null(st);
    sl_client_free(c);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    sl_request_free(req);
    close_fixture(&f);
}

int main(void)
{
    setenv("no_proxy", "*", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success),
        cmocka_unit_test(test_error),
        cmocka_unit_test(test_close_mid_stream),
        cmocka_unit_test(test_close_unread_and_misuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
