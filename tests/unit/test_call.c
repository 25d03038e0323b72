/* test_call.c — the stream contract of sl_call, proven by counting callbacks.
 *
 * Every path ends with exactly one on_done: success (streamed and not), HTTP errors,
 * streams cut at many byte positions, garbage, timeouts, cancel and free from every
 * place, client free with calls running. The upstream is the scripted server, so each
 * byte the client sees is fixed by the test. After each test the loop runs dry and
 * closes with no live handle. */
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

#include "base/buf.h"
#include "script_server.c"
#include "loop_harness.h"

/* ---- recording callbacks ------------------------------------------------------------ */

typedef struct rec {
    int deltas;
    int dones;
    int content_deltas, reasoning_deltas, tool_deltas;
    char text[4096]; /* delivered content, choice 0 */
    size_t text_len;
    char tools[1024]; /* "idx:id:name:args|" per tool piece */
    size_t tools_len;
    int deltas_while_paused;
    int paused;
    /* the result, copied */
    int err;
    char msg[512];
    int http_status;
    char error_body[1024];
    char res_text[4096];
    char reasoning[1024];
    char finish[32];
    sl_usage usage;
    int attempts;
    char body[4096];
    char request_id[64];
    long retry_after_ms;
    sl_ratelimit_info rl;
    double ttfb, ttft, total;
    /* actions */
    int cancel_at_delta; /* cancel inside the n-th on_delta */
    int free_at_delta;   /* free inside the n-th on_delta */
    int pause_at_delta;  /* pause inside the n-th on_delta */
    int free_in_done;
    sl_client *free_client_at_delta; /* sl_client_free inside the n-th on_delta */
    int client_free_delta;
    sl_client *free_client_in_done;
    sl_call *call;
} rec;

static void copy(char *dst, size_t cap, const char *p, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, p ? p : "", n);
    dst[n] = '\0';
}

static void on_delta(sl_call *call, const sl_delta *d, void *user)
{
    rec *x = user;
    uv_stop(&loop);
    x->deltas++;
    if (x->paused)
        x->deltas_while_paused++;
    if (d->kind == SL_DELTA_CONTENT) {
        x->content_deltas++;
        if (d->choice == 0 && x->text_len + d->text.len < sizeof x->text) {
            memcpy(x->text + x->text_len, d->text.ptr, d->text.len);
            x->text_len += d->text.len;
        }
    } else if (d->kind == SL_DELTA_REASONING) {
        x->reasoning_deltas++;
    } else if (d->kind == SL_DELTA_TOOL_CALL) {
        x->tool_deltas++;
        x->tools_len += (size_t)snprintf(x->tools + x->tools_len, sizeof x->tools - x->tools_len,
                                         "%d:%.*s:%.*s:%.*s|", d->tool_index, (int)d->tool_id.len,
                                         d->tool_id.ptr, (int)d->tool_name.len, d->tool_name.ptr,
                                         (int)d->text.len, d->text.ptr);
    }
    if (x->pause_at_delta == x->deltas) {
        x->paused = 1;
        sl_call_pause(call);
    }
    if (x->cancel_at_delta == x->deltas) {
        sl_call_cancel(call);
        assert_int_equal(x->dones, 0); /* never from inside cancel */
    }
    if (x->free_client_at_delta && x->client_free_delta == x->deltas) {
        sl_client_free(x->free_client_at_delta);
        assert_int_equal(x->dones, 1);
    }
    if (x->free_at_delta == x->deltas) {
        sl_call_free(call);
        assert_int_equal(x->dones, 1); /* delivered by the free itself */
        x->call = NULL;
    }
}

static void on_done(sl_call *call, const sl_result *r, void *user)
{
    rec *x = user;
    uv_stop(&loop);
    x->dones++;
    assert_true(sl_call_done(call));
    assert_ptr_equal(sl_call_user(call), x);
    x->err = r->error;
    copy(x->msg, sizeof x->msg, r->message, r->message ? strlen(r->message) : 0);
    if (r->error)
        assert_non_null(r->message);
    else
        assert_null(r->message);
    x->http_status = r->http_status;
    copy(x->error_body, sizeof x->error_body, r->error_body.ptr, r->error_body.len);
    copy(x->res_text, sizeof x->res_text, r->text.ptr, r->text.len);
    copy(x->reasoning, sizeof x->reasoning, r->reasoning.ptr, r->reasoning.len);
    copy(x->finish, sizeof x->finish, r->finish_reason,
         r->finish_reason ? strlen(r->finish_reason) : 0);
    x->usage = r->usage;
    x->attempts = r->attempts;
    copy(x->body, sizeof x->body, r->body.ptr, r->body.len);
    copy(x->request_id, sizeof x->request_id, r->request_id,
         r->request_id ? strlen(r->request_id) : 0);
    x->retry_after_ms = r->retry_after_ms;
    x->rl = r->ratelimit;
    x->ttfb = r->timings.ttfb_ms;
    x->ttft = r->timings.ttft_ms;
    x->total = r->timings.total_ms;
    if (x->free_in_done) {
        sl_call_free(call);
        x->call = NULL;
    }
    if (x->free_client_in_done)
        sl_client_free(x->free_client_in_done);
}

static sl_client *client_for(ss_server *ss, long fb, long idle)
{
    sl_client_opts o;
    sl_client_opts_init(&o);
    o.base_url = ss_url(ss, "/v1/");
    o.api_key = "sk-test";
    if (fb)
        o.first_byte_timeout_ms = fb;
    if (idle)
        o.idle_timeout_ms = idle;
    sl_client *c = NULL;
    assert_int_equal(sl_client_new(&loop, &o, &c), 0);
    return c;
}

static sl_request *chat_request(int stream)
{
    sl_request *r;
    assert_int_equal(sl_request_new(&r), 0);
    assert_int_equal(sl_request_set_model(r, "m"), 0);
    assert_int_equal(sl_request_add_message(r, "user", "hi", 2), 0);
    assert_int_equal(sl_request_set_stream(r, stream), 0);
    return r;
}

static void start(sl_client *c, const sl_request *req, rec *x)
{
    sl_call_opts o;
    memset(&o, 0, sizeof o);
    o.on_delta = on_delta;
    o.on_done = on_done;
    o.user = x;
    assert_int_equal(sl_call_start(c, req, &o, &x->call), 0);
    /* never a callback from inside start */
    assert_int_equal(x->deltas, 0);
    assert_int_equal(x->dones, 0);
}

static ss_server *serve(const ss_step *script)
{
    static const ss_step *scripts[1];
    scripts[0] = script;
    ss_server *ss;
    assert_int_equal(ss_start(&loop, scripts, 1, &ss), 0);
    return ss;
}

/* One call against one script; x must be zeroed with its actions set. */
static void one_call(const ss_step *script, int stream, long fb, long idle, rec *x)
{
    ss_server *ss = serve(script);
    sl_client *c = client_for(ss, fb, idle);
    sl_request *req = chat_request(stream);
    start(c, req, x);
    sl_request_free(req);
    run_until(&x->dones);
    assert_int_equal(x->dones, 1);
    sl_call_free(x->call);
    sl_client_free(c);
    ss_free(ss);
}

/* ---- the canned upstream ------------------------------------------------------------- */

#define SSE_HEAD                                                                                   \
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nx-request-id: req_42\r\n"               \
    "Connection: close\r\n\r\n"
#define CHUNK(json)                                                                                \
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"            \
    "\"model\":\"m\",\"system_fingerprint\":\"fp\"," json "}\n\n"
#define EV_ROLE                                                                                    \
    CHUNK("\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"         \
          "\"finish_reason\":null}]")
#define EV_TEXT(t)                                                                                 \
    CHUNK("\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" t "\"},\"finish_reason\":null}]")
#define EV_FINISH CHUNK("\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]")
#define EV_USAGE                                                                                   \
    CHUNK("\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3,"                 \
          "\"total_tokens\":8}")
#define EV_DONE "data: [DONE]\n\n"

static const char *const events[] = {EV_ROLE,   EV_TEXT("Hel"), EV_TEXT("lo"), EV_TEXT(" world"),
                                     EV_FINISH, EV_USAGE,       EV_DONE};
static const char *const event_text[] = {"", "Hel", "lo", " world", "", "", ""};
#define NEVENTS         7
#define EV_FINISH_INDEX 4
#define EV_DONE_INDEX   6

#define BODY_OK                                                                                    \
    "{\"id\":\"c1\",\"object\":\"chat.completion\",\"created\":1700000000,\"model\":\"m\","        \
    "\"system_fingerprint\":\"fp\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\"," \
    "\"content\":\"Hello world\"},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{"      \
    "\"prompt_tokens\":5,\"completion_tokens\":3,\"total_tokens\":8}}"

/* ---- tests ---------------------------------------------------------------------------- */

static void test_stream_success(void **state)
{
    static const ss_step s[] = {
        SS_STEP_READ,    SS_STEP_SEND(SSE_HEAD EV_ROLE EV_TEXT("Hel")),
        SS_STEP_WAIT(2), SS_STEP_SEND(EV_TEXT("lo") EV_TEXT(" world") EV_FINISH),
        SS_STEP_WAIT(2), SS_STEP_SEND(EV_USAGE EV_DONE),
        SS_STEP_CLOSE};
    ss_server *ss = serve(s);
    sl_client *c = client_for(ss, 0, 0);
    sl_request *req = chat_request(1);
    rec x = {0};
    start(c, req, &x);
    sl_request_free(req);
    run_until(&x.dones);
    assert_int_equal(x.dones, 1);
    assert_int_equal(x.err, 0);
    assert_int_equal(x.deltas, 3);
    assert_int_equal(x.content_deltas, 3);
    assert_string_equal(x.text, "Hello world");
    assert_string_equal(x.res_text, "Hello world");
    assert_string_equal(x.finish, "stop");
    assert_int_equal(x.usage.prompt_tokens, 5);
    assert_int_equal(x.usage.completion_tokens, 3);
    assert_int_equal(x.usage.total_tokens, 8);
    assert_int_equal(x.attempts, 1);
    assert_int_equal(x.http_status, 200);
    assert_string_equal(x.request_id, "req_42");
    assert_string_equal(x.body, BODY_OK);
    assert_true(x.ttfb >= 0 && x.ttft >= x.ttfb && x.total >= x.ttft);
    /* what went upstream */
    const char *up = ss_request(ss, 0);
    assert_true(!strncmp(up, "POST /v1/chat/completions HTTP/1.1\r\n", 36));
    assert_non_null(strstr(up, "\r\nAuthorization: Bearer sk-test\r\n"));
    assert_non_null(strstr(up, "\r\nAccept: text/event-stream\r\n"));
    assert_non_null(strstr(up, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(up, "\r\nUser-Agent: sluice/"));
    assert_non_null(strstr(up, "\r\n\r\n{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                               "\"stream\":true,\"model\":\"m\",\"stream_options\":{"
                               "\"include_usage\":true}}"));
    sl_call_free(x.call);
    sl_client_free(c);
    ss_free(ss);
}

#define JSON_BODY                                                                                  \
    "{\"id\":\"r1\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"m\",\"choices\":[{"   \
    "\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hi there\","                    \
    "\"reasoning_content\":\"think\"},\"finish_reason\":\"length\"}],\"usage\":{"                  \
    "\"prompt_tokens\":2,\"completion_tokens\":4,\"total_tokens\":6},\"x_extra\":1.50}"

static void test_non_stream_success(void **state)
{
    static char resp[1024];
    snprintf(resp, sizeof resp,
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(JSON_BODY), JSON_BODY);
    ss_step s[] = {SS_STEP_READ, SS_STEP_SENDN(resp, strlen(resp)), SS_STEP_END};
    ss_server *ss = serve(s);
    sl_client *c = client_for(ss, 0, 0);
    sl_request *req = chat_request(0);
    rec x = {0};
    start(c, req, &x);
    sl_request_free(req);
    run_until(&x.dones);
    assert_int_equal(x.err, 0);
    assert_int_equal(x.deltas, 2); /* the text and the reasoning, as deltas too */
    assert_int_equal(x.reasoning_deltas, 1);
    assert_string_equal(x.text, "Hi there");
    assert_string_equal(x.res_text, "Hi there");
    assert_string_equal(x.reasoning, "think");
    assert_string_equal(x.finish, "length");
    assert_int_equal(x.usage.total_tokens, 6);
    assert_string_equal(x.body, JSON_BODY); /* byte for byte as received */
    const char *up = ss_request(ss, 0);
    assert_non_null(strstr(up, "\r\nAccept: application/json\r\n"));
    assert_null(strstr(up, "stream_options"));
    sl_call_free(x.call);
    sl_client_free(c);
    ss_free(ss);
}

static void http_error_case(const char *status_line, const char *extra_headers, const char *body,
                            int want_status, const char *want_msg_tail, long want_retry)
{
    static char resp[2048];
    snprintf(resp, sizeof resp,
             "HTTP/1.1 %s\r\nContent-Type: application/json\r\n%sContent-Length: %zu\r\n\r\n%s",
             status_line, extra_headers, strlen(body), body);
    ss_step s[] = {SS_STEP_READ, SS_STEP_SENDN(resp, strlen(resp)), SS_STEP_END};
    ss_server *ss = serve(s);
    sl_client *c = client_for(ss, 0, 0);
    sl_request *req = chat_request(1);
    rec x = {0};
    start(c, req, &x);
    sl_request_free(req);
    run_until(&x.dones);
    assert_int_equal(x.dones, 1);
    assert_int_equal(x.deltas, 0);
    assert_int_equal(x.err, SL_EHTTP);
    assert_int_equal(x.http_status, want_status);
    assert_string_equal(x.error_body, body);
    char want[512];
    snprintf(want, sizeof want, "POST http://127.0.0.1:%d/v1/chat/completions: %s", ss_port(ss),
             want_msg_tail);
    assert_string_equal(x.msg, want);
    assert_int_equal(x.retry_after_ms, want_retry);
    assert_int_equal(x.rl.remaining_requests, want_status == 429 ? 0 : -1);
    assert_int_equal(x.rl.reset_tokens_ms, want_status == 429 ? 6000 : -1);
    assert_string_equal(x.body, "");
    assert_null(x.finish[0] ? x.finish : NULL);
    sl_call_free(x.call);
    sl_client_free(c);
    ss_free(ss);
}

static void test_http_errors(void **state)
{
    http_error_case("400 Bad Request", "",
                    "{\"error\":{\"message\":\"Invalid 'messages': empty.\",\"type\":"
                    "\"invalid_request_error\",\"param\":\"messages\",\"code\":null}}",
                    400, "HTTP 400: Invalid 'messages': empty.", -1);
    http_error_case("429 Too Many Requests",
                    "retry-after-ms: 250\r\nx-ratelimit-remaining-requests: 0\r\n"
                    "x-ratelimit-reset-tokens: 6s\r\n",
                    "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\"}}", 429,
                    "HTTP 429: Rate limit reached", 250);
    http_error_case("500 Internal Server Error", "Retry-After: 2\r\n", "upstream exploded\nmore",
                    500, "HTTP 500: upstream exploded", 2000);
    http_error_case("503 Service Unavailable", "", "", 503, "HTTP 503", -1);
}

/* The full event stream, either raw until close or as HTTP chunks (one per event). */
static size_t build_stream(char *out, size_t cap, int chunked, size_t *ends)
{
    size_t n = 0;
    const char *head = chunked ? "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                 "Transfer-Encoding: chunked\r\n\r\n"
                               : SSE_HEAD;
    n += (size_t)snprintf(out + n, cap - n, "%s", head);
    for (int i = 0; i < NEVENTS; i++) {
        if (chunked)
            n += (size_t)snprintf(out + n, cap - n, "%zx\r\n%s\r\n", strlen(events[i]), events[i]);
        else
            n += (size_t)snprintf(out + n, cap - n, "%s", events[i]);
        ends[i] = chunked ? n - 2 : n; /* the event's last byte is on the wire */
    }
    if (chunked)
        n += (size_t)snprintf(out + n, cap - n, "0\r\n\r\n");
    return n;
}

static void cut_at(const char *stream, size_t cut, int chunked, const size_t *ends)
{
    ss_step s[] = {SS_STEP_READ, SS_STEP_SENDN(stream, cut), SS_STEP_CLOSE};
    rec x = {0};
    one_call(s, 1, 0, 0, &x);
    /* the text delivered is exactly the events complete before the cut */
    char want[256] = "";
    int complete = 0;
    for (int i = 0; i < NEVENTS; i++)
        if (ends[i] <= cut) {
            strncat(want, event_text[i], sizeof want - strlen(want) - 1);
            complete = i + 1;
        }
    assert_string_equal(x.text, want);
    assert_int_equal(x.content_deltas, complete >= 4 ? 3 : complete >= 3 ? 2 : complete >= 2);
    if (complete > EV_DONE_INDEX || (!chunked && complete > EV_FINISH_INDEX)) {
        assert_int_equal(x.err, 0);
        assert_string_equal(x.finish, "stop");
    } else if (chunked) {
        assert_int_equal(x.err, SL_ETRANSPORT);
        assert_string_equal(x.res_text, want);
    } else {
        assert_int_equal(x.err, SL_EPROTO);
        assert_non_null(strstr(x.msg, ": stream ended before [DONE]"));
        assert_string_equal(x.res_text, want);
    }
}

static void test_cut_stream(void **state)
{
    static char stream[4096];
    size_t ends[NEVENTS];
    for (int chunked = 0; chunked <= 1; chunked++) {
        size_t n = build_stream(stream, sizeof stream, chunked, ends);
        size_t head = strstr(stream, "\r\n\r\n") + 4 - stream;
        /* every event boundary and its neighbours, and a stride through the rest */
        for (size_t cut = head; cut < n; cut += 37)
            cut_at(stream, cut, chunked, ends);
        for (int i = 0; i < NEVENTS; i++) {
            cut_at(stream, ends[i] - 1, chunked, ends);
            cut_at(stream, ends[i], chunked, ends);
            if (ends[i] + 1 < n)
                cut_at(stream, ends[i] + 1, chunked, ends);
        }
    }
}

static void test_garbage(void **state)
{
    static const ss_step s[] = {SS_STEP_READ,
                                SS_STEP_SEND(SSE_HEAD EV_ROLE EV_TEXT(
                                    "ok") "data: {\"choices\": [nope\n\n" EV_TEXT("never")),
                                SS_STEP_STALL};
    rec x = {0};
    one_call(s, 1, 0, 0, &x);
    assert_int_equal(x.err, SL_EPROTO);
    assert_non_null(strstr(x.msg, ": invalid JSON in stream event: "));
    assert_non_null(strstr(x.msg, "{\"choices\": [nope"));
    assert_string_equal(x.text, "ok");
    assert_string_equal(x.res_text, "ok");
    assert_int_equal(x.deltas, 1);

    static const ss_step s2[] = {SS_STEP_READ, SS_STEP_SEND(SSE_HEAD "data: [1,2]\n\n"),
                                 SS_STEP_STALL};
    rec y = {0};
    one_call(s2, 1, 0, 0, &y);
    assert_int_equal(y.err, SL_EPROTO);
    assert_non_null(strstr(y.msg, ": stream event is not a JSON object"));

    static const ss_step s3[] = {
        SS_STEP_READ,
        SS_STEP_SEND(SSE_HEAD EV_TEXT(
            "a") "data: {\"error\":{\"message\":\"overloaded\",\"code\":503}}\n\n"),
        SS_STEP_STALL};
    rec z = {0};
    one_call(s3, 1, 0, 0, &z);
    assert_int_equal(z.err, SL_EHTTP);
    assert_int_equal(z.http_status, 503);
    assert_non_null(strstr(z.msg, "/v1/chat/completions: provider error: overloaded"));
    assert_string_equal(z.error_body, "{\"error\":{\"message\":\"overloaded\",\"code\":503}}");
    assert_string_equal(z.text, "a");

    /* 200 with a non-JSON body for a non-streamed request */
    static const ss_step s4[] = {
        SS_STEP_READ,
        SS_STEP_SEND(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4\r\n\r\n<h1>"),
        SS_STEP_END};
    rec w = {0};
    one_call(s4, 0, 0, 0, &w);
    assert_int_equal(w.err, SL_EPROTO);
    assert_non_null(strstr(w.msg, ": invalid JSON in response: "));
}

static void test_timeouts(void **state)
{
    static const ss_step s[] = {SS_STEP_READ, SS_STEP_STALL};
    rec x = {0};
    one_call(s, 1, 30, 0, &x);
    assert_int_equal(x.err, SL_ETIMEDOUT);
    assert_non_null(strstr(x.msg, "/v1/chat/completions: no response within 30 ms"));
    assert_int_equal(x.http_status, 0);
    assert_true(x.ttfb < 0);

    static const ss_step s2[] = {SS_STEP_READ, SS_STEP_SEND(SSE_HEAD EV_ROLE EV_TEXT("par")),
                                 SS_STEP_STALL};
    rec y = {0};
    one_call(s2, 1, 0, 30, &y);
    assert_int_equal(y.err, SL_ETIMEDOUT);
    assert_non_null(strstr(y.msg, ": no data for 30 ms"));
    assert_string_equal(y.text, "par");
    assert_string_equal(y.res_text, "par");
    assert_int_equal(y.http_status, 200);

    /* a stall after [DONE] loses nothing: the answer is complete */
    static const ss_step s3[] = {SS_STEP_READ,
                                 SS_STEP_SEND(SSE_HEAD EV_ROLE EV_TEXT("all") EV_USAGE EV_DONE),
                                 SS_STEP_STALL};
    rec z = {0};
    one_call(s3, 1, 0, 30, &z);
    assert_int_equal(z.err, 0);
    assert_string_equal(z.text, "all");
    assert_int_equal(z.usage.total_tokens, 8);
}

static const ss_step slow_stream[] = {
    SS_STEP_READ,    SS_STEP_SEND(SSE_HEAD EV_ROLE EV_TEXT("one")),
    SS_STEP_WAIT(5), SS_STEP_SEND(EV_TEXT("two")),
    SS_STEP_WAIT(5), SS_STEP_SEND(EV_TEXT("three")),
    SS_STEP_STALL};

static void test_call_timeout_and_host_cap(void **state)
{
    /* the call's own total timeout */
    static const ss_step s[] = {SS_STEP_READ, SS_STEP_SEND(SSE_HEAD EV_ROLE EV_TEXT("x")),
                                SS_STEP_STALL};
    ss_server *ss = serve(s);
    sl_client *c = client_for(ss, 0, 0);
    sl_request *req = chat_request(1);
    rec x = {0};
    sl_call_opts o = {.on_delta = on_delta, .on_done = on_done, .user = &x, .timeout_ms = 40};
    assert_int_equal(sl_call_start(c, req, &o, &x.call), 0);
    run_until(&x.dones);
    assert_int_equal(x.err, SL_ETIMEDOUT);
    assert_non_null(strstr(x.msg, ": not complete within 40 ms"));
    assert_string_equal(x.res_text, "x");
    sl_call_free(x.call);
    sl_client_free(c);
    ss_free(ss);

    /* one connection allowed: the second call waits for it, then reuses it */
    static const ss_step s2[] = {
        SS_STEP_READ,
        SS_STEP_SEND("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     "Content-Length: 14\r\n\r\n" EV_DONE),
        SS_STEP_READ,
        SS_STEP_SEND("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     "Content-Length: 14\r\n\r\n" EV_DONE),
        SS_STEP_END};
    ss = serve(s2);
    sl_client_opts co;
    sl_client_opts_init(&co);
    co.base_url = ss_url(ss, "/v1");
    co.max_host_connections = 1;
    assert_int_equal(sl_client_new(&loop, &co, &c), 0);
    rec a = {0}, b = {0};
    start(c, req, &a);
    start(c, req, &b);
    run_until(&a.dones);
    run_until(&b.dones);
    assert_int_equal(a.err, 0);
    assert_int_equal(b.err, 0);
    assert_int_equal(ss_accepts(ss), 1);
    assert_int_equal(ss_nrequests(ss), 2);
    sl_call_free(a.call);
    sl_call_free(b.call);
    sl_client_free(c);
    ss_free(ss);
    sl_request_free(req);
}

static void test_client_free_inside_callbacks(void **state)
{
    ss_server *ss = serve(slow_stream);
    sl_request *req = chat_request(1);

    /* inside on_done of one call, with another one running */
    sl_client *c = client_for(ss, 0, 0);
    rec a = {0}, b = {0};
    a.cancel_at_delta = 1;
    a.free_client_in_done = c;
    start(c, req, &a);
    start(c, req, &b);
    run_until(&a.dones);
    assert_int_equal(a.err, SL_ECANCELED);
    assert_int_equal(b.dones, 1);
    assert_int_equal(b.err, SL_ECANCELED);
    sl_call_free(a.call);
    sl_call_free(b.call);

    /* inside on_delta, that is inside libcurl */
    c = client_for(ss, 0, 0);
    rec d = {0}, e = {0};
    d.free_client_at_delta = c;
    d.client_free_delta = 2;
    start(c, req, &d);
    start(c, req, &e);
    run_until(&d.dones);
    assert_int_equal(d.dones, 1);
    assert_int_equal(d.err, SL_ECANCELED);
    assert_string_equal(d.res_text, "onetwo");
    assert_int_equal(e.dones, 1);
    sl_call_free(d.call);
    sl_call_free(e.call);

    while (ss_open_connections(ss))
        uv_run(&loop, UV_RUN_ONCE);
    sl_request_free(req);
    ss_free(ss);
}

static void test_stream_without_content_type(void **state)
{
    /* a streamed request answered without a content type is read as SSE */
    static const ss_step s[] = {
        SS_STEP_READ,
        SS_STEP_SEND("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" EV_TEXT("ok") EV_DONE),
        SS_STEP_CLOSE};
    rec x = {0};
    one_call(s, 1, 0, 0, &x);
    assert_int_equal(x.err, 0);
    assert_string_equal(x.text, "ok");
}

static void test_connect_refused(void **state)
{
    /* a server that is gone by the time we connect */
    static const ss_step s[] = {SS_STEP_END};
    ss_server *ss = serve(s);
    sl_client_opts o;
    sl_client_opts_init(&o);
    char url[300];
    snprintf(url, sizeof url, "%s", ss_url(ss, "/v1"));
    o.base_url = url;
    ss_free(ss);
    uv_run(&loop, UV_RUN_NOWAIT);
    sl_client *c;
    assert_int_equal(sl_client_new(&loop, &o, &c), 0);
    sl_request *req = chat_request(1);
    rec x = {0};
    start(c, req, &x);
    sl_request_free(req);
    run_until(&x.dones);
    assert_int_equal(x.err, SL_ETRANSPORT);
    assert_true(!strncmp(x.msg, "POST http://127.0.0.1:", 22));
    sl_call_free(x.call);
    sl_client_free(c);
}

static void test_cancel(void **state)
{
    ss_server *ss = serve(slow_stream);
    sl_client *c = client_for(ss, 0, 0);
    sl_request *req = chat_request(1);

    /* before the first byte */
    rec a = {0};
    start(c, req, &a);
    sl_call_cancel(a.call);
    sl_call_cancel(a.call); /* idempotent */
    assert_int_equal(a.dones, 0);
    run_until(&a.dones);
    assert_int_equal(a.err, SL_ECANCELED);
    assert_int_equal(a.deltas, 0);
    assert_string_equal(a.text, "");

    /* after some deltas, from outside any callback */
    rec b = {0};
    start(c, req, &b);
    while (b.deltas < 2)
        uv_run(&loop, UV_RUN_ONCE);
    sl_call_cancel(b.call);
    assert_int_equal(b.dones, 0);
    run_until(&b.dones);
    assert_int_equal(b.err, SL_ECANCELED);
    assert_string_equal(b.text, "onetwo");
    assert_string_equal(b.res_text, "onetwo");
    assert_non_null(strstr(b.msg, ": cancelled"));
    sl_call_cancel(b.call); /* no-op once done */

    /* from inside on_delta */
    rec d = {0};
    d.cancel_at_delta = 1;
    start(c, req, &d);
    run_until(&d.dones);
    assert_int_equal(d.err, SL_ECANCELED);
    assert_int_equal(d.deltas, 1);
    assert_string_equal(d.res_text, "one");

    /* the provider sees every connection closed */
    while (ss_open_connections(ss))
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(a.dones + b.dones + d.dones, 3);
    sl_call_free(a.call);
    sl_call_free(b.call);
    sl_call_free(d.call);
    sl_request_free(req);
    sl_client_free(c);
    ss_free(ss);
}

static void test_call_free(void **state)
{
    ss_server *ss = serve(slow_stream);
    sl_client *c = client_for(ss, 0, 0);
    sl_request *req = chat_request(1);

    /* during the transfer: on_done before sl_call_free returns */
    rec a = {0};
    start(c, req, &a);
    while (a.deltas < 1)
        uv_run(&loop, UV_RUN_ONCE);
    sl_call_free(a.call);
    assert_int_equal(a.dones, 1);
    assert_int_equal(a.err, SL_ECANCELED);
    assert_string_equal(a.res_text, "one");

    /* before anything happened */
    rec b = {0};
    start(c, req, &b);
    sl_call_free(b.call);
    assert_int_equal(b.dones, 1);
    assert_int_equal(b.err, SL_ECANCELED);

    /* inside on_delta */
    rec d = {0};
    d.free_at_delta = 2;
    start(c, req, &d);
    run_until(&d.dones);
    assert_int_equal(d.dones, 1);
    assert_int_equal(d.deltas, 2);
    assert_int_equal(d.err, SL_ECANCELED);

    /* inside on_done */
    rec e = {0};
    e.free_in_done = 1;
    e.cancel_at_delta = 1;
    start(c, req, &e);
    run_until(&e.dones);
    assert_int_equal(e.dones, 1);
    assert_null(e.call);

    for (int i = 0; i < 5; i++) /* nothing more arrives */
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(a.dones + b.dones + d.dones + e.dones, 4);
    sl_request_free(req);
    sl_client_free(c);
    ss_free(ss);
}

static void test_client_free_running(void **state)
{
    static const ss_step one_then_stall[] = {
        SS_STEP_READ, SS_STEP_SEND(SSE_HEAD EV_ROLE EV_TEXT("one")), SS_STEP_STALL};
    ss_server *ss = serve(one_then_stall);
    sl_client *c = client_for(ss, 0, 0);
    sl_request *req = chat_request(1);
    rec x[3];
    memset(x, 0, sizeof x);
    for (int i = 0; i < 3; i++)
        start(c, req, &x[i]);
    while (x[0].deltas < 1 || x[1].deltas < 1 || x[2].deltas < 1)
        uv_run(&loop, UV_RUN_ONCE);
    sl_client_free(c);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(x[i].dones, 1);
        assert_int_equal(x[i].err, SL_ECANCELED);
        assert_string_equal(x[i].res_text, "one");
        sl_call_free(x[i].call); /* the handles outlive the client */
    }
    sl_request_free(req);
    ss_free(ss);
}

static void test_tool_calls(void **state)
{
    static const ss_step s[] = {
        SS_STEP_READ,
        SS_STEP_SEND(SSE_HEAD CHUNK(
            "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,"
            "\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\","
            "\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}"
            "]") CHUNK("\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
                       "\"function\":"
                       "{\"arguments\":\"{\\\"city\\\":\"}}]},\"finish_reason\":null}]")
                         CHUNK("\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
                               "\"function\":"
                               "{\"arguments\":\"\\\"Paris\\\"}\"}}]},\"finish_reason\":null}]")
                             CHUNK("\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{"
                                   "\"index\":1,\"id\":\"call_b\","
                                   "\"type\":\"function\",\"function\":{\"name\":\"now\","
                                   "\"arguments\":\"{}\"}}]},"
                                   "\"finish_reason\":null}]")
                                 CHUNK("\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
                                       "\"tool_calls\"}]") EV_DONE),
        SS_STEP_CLOSE};
    rec x = {0};
    one_call(s, 1, 0, 0, &x);
    assert_int_equal(x.err, 0);
    assert_int_equal(x.tool_deltas, 4);
    assert_int_equal(x.content_deltas, 0);
    assert_string_equal(x.tools, "0:call_a:get_weather:|0:::{\"city\":|0:::\"Paris\"}|"
                                 "1:call_b:now:{}|");
    assert_string_equal(x.finish, "tool_calls");
    assert_string_equal(x.body,
                        "{\"id\":\"c1\",\"object\":\"chat.completion\",\"created\":1700000000,"
                        "\"model\":\"m\",\"system_fingerprint\":\"fp\",\"choices\":[{\"index\":0,"
                        "\"message\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{"
                        "\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":"
                        "\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},{\"id\":"
                        "\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"now\","
                        "\"arguments\":\"{}\"}}]},\"logprobs\":null,\"finish_reason\":"
                        "\"tool_calls\"}]}");
}

static void test_reasoning_and_extras(void **state)
{
    static const ss_step s[] = {
        SS_STEP_READ,
        SS_STEP_SEND(
            SSE_HEAD
            "data: "
            "{\"id\":\"g1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"r1\","
            "\"service_tier\":\"default\",\"provider\":\"Acme\",\"obfuscation\":\"xyz\","
            "\"choices\":[{"
            "\"index\":0,\"delta\":{\"role\":\"assistant\",\"reasoning_content\":\"Let me "
            "\"}}]}\n\n"
            "data: "
            "{\"id\":\"g1\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"think.\","
            "\"reasoning\":\"ignored twin\"}}]}\n\n"
            ": keep-alive comment\n\n"
            "event: ping\ndata: {}\n\n"
            "data: {\"id\":\"g1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"42\","
            "\"refusal\":null},\"logprobs\":{\"content\":[{\"token\":\"42\",\"logprob\":-0.5}]}}]}"
            "\n\n"
            "data: "
            "{\"id\":\"g1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\","
            "\"native_finish_reason\":\"end_turn\",\"logprobs\":{\"content\":[]}}],"
            "\"x_groq\":{\"id\":\"q\"},\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,"
            "\"total_tokens\":3,\"completion_tokens_details\":{\"reasoning_tokens\":1}}}"
            "\n\n" EV_DONE),
        SS_STEP_CLOSE};
    rec x = {0};
    one_call(s, 1, 0, 0, &x);
    assert_int_equal(x.err, 0);
    assert_int_equal(x.reasoning_deltas, 2);
    assert_int_equal(x.content_deltas, 1);
    assert_string_equal(x.reasoning, "Let me think.");
    assert_string_equal(x.res_text, "42");
    assert_string_equal(x.body,
                        "{\"id\":\"g1\",\"object\":\"chat.completion\",\"created\":7,\"model\":"
                        "\"r1\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                        "\"content\":\"42\",\"reasoning_content\":\"Let me think.\"},\"logprobs\":"
                        "{\"content\":[{\"token\":\"42\",\"logprob\":-0.5}]},\"finish_reason\":"
                        "\"stop\",\"native_finish_reason\":\"end_turn\"}],\"usage\":{"
                        "\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3,"
                        "\"completion_tokens_details\":{\"reasoning_tokens\":1}},\"service_tier\":"
                        "\"default\",\"provider\":\"Acme\",\"x_groq\":{\"id\":\"q\"}}");
}

typedef struct resumer {
    uv_timer_t t;
    rec *x;
} resumer;

static void on_resume(uv_timer_t *t)
{
    resumer *r = t->data;
    r->x->paused = 0;
    sl_call_resume(r->x->call);
}

static void test_pause_resume(void **state)
{
    /* all three deltas arrive in one read: pausing in the first holds the other two */
    static const ss_step s[] = {
        SS_STEP_READ, SS_STEP_SEND(SSE_HEAD EV_TEXT("a") EV_TEXT("b") EV_TEXT("c")),
        SS_STEP_WAIT(5), SS_STEP_SEND(EV_TEXT("d") EV_FINISH EV_DONE), SS_STEP_CLOSE};
    ss_server *ss = serve(s);
    sl_client *c = client_for(ss, 0, 20); /* idle 20 ms: must not count while paused */
    sl_request *req = chat_request(1);
    rec x = {0};
    x.pause_at_delta = 1;
    start(c, req, &x);
    sl_request_free(req);
    static resumer r;
    r.x = &x;
    uv_timer_init(&loop, &r.t);
    r.t.data = &r;
    uv_timer_start(&r.t, on_resume, 60, 0);
    run_until(&x.dones);
    assert_int_equal(x.err, 0);
    assert_int_equal(x.deltas_while_paused, 0);
    assert_int_equal(x.deltas, 4);
    assert_string_equal(x.text, "abcd");
    uv_close((uv_handle_t *)&r.t, NULL);
    sl_call_free(x.call);
    sl_client_free(c);
    ss_free(ss);
}

static void test_completions_and_embeddings(void **state)
{
    static const ss_step s[] = {
        SS_STEP_READ,
        SS_STEP_SEND(
            SSE_HEAD
            "data: {\"id\":\"t1\",\"object\":\"text_completion\",\"created\":3,\"model\":\"t\","
            "\"choices\":[{\"text\":\"Once\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]"
            "}\n\n"
            "data: {\"id\":\"t1\",\"object\":\"text_completion\",\"created\":3,\"model\":\"t\","
            "\"choices\":[{\"text\":\" "
            "upon\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"length\"}]}\n\n" EV_DONE),
        SS_STEP_CLOSE};
    ss_server *ss = serve(s);
    sl_client *c = client_for(ss, 0, 0);
    const char *body = "{\"model\":\"t\",\"prompt\":\"x\",\"stream\":true}";
    sl_request *req;
    assert_int_equal(sl_request_from_json(body, strlen(body), &req), 0);
    assert_int_equal(sl_request_set_endpoint(req, "/completions"), 0);
    rec x = {0};
    start(c, req, &x);
    sl_request_free(req);
    run_until(&x.dones);
    assert_int_equal(x.err, 0);
    assert_string_equal(x.text, "Once upon");
    assert_string_equal(x.finish, "length");
    assert_string_equal(x.body, "{\"id\":\"t1\",\"object\":\"text_completion\",\"created\":3,"
                                "\"model\":\"t\",\"choices\":[{\"index\":0,\"text\":\"Once upon\","
                                "\"logprobs\":null,\"finish_reason\":\"length\"}]}");
    assert_true(!strncmp(ss_request(ss, 0), "POST /v1/completions ", 21));
    /* the legacy API reports usage in a last chunk when asked, as chat does */
    assert_non_null(strstr(ss_request(ss, 0), "\"stream_options\":{\"include_usage\":true}"));
    sl_call_free(x.call);
    sl_client_free(c);
    ss_free(ss);

#define EMB                                                                                        \
    "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,\"embedding\":[0.1,-0."  \
    "25]}],\"model\":\"e\",\"usage\":{\"prompt_tokens\":3,\"total_tokens\":3}}"
    static char resp[512];
    snprintf(resp, sizeof resp,
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(EMB), EMB);
    ss_step s2[] = {SS_STEP_READ, SS_STEP_SENDN(resp, strlen(resp)), SS_STEP_END};
    ss = serve(s2);
    c = client_for(ss, 0, 0);
    const char *eb = "{\"model\":\"e\",\"input\":\"abc\"}";
    assert_int_equal(sl_request_from_json(eb, strlen(eb), &req), 0);
    assert_int_equal(sl_request_set_endpoint(req, "/embeddings"), 0);
    rec y = {0};
    start(c, req, &y);
    sl_request_free(req);
    run_until(&y.dones);
    assert_int_equal(y.err, 0);
    assert_int_equal(y.deltas, 0);
    assert_string_equal(y.body, EMB);
    assert_int_equal(y.usage.prompt_tokens, 3);
    assert_int_equal(y.usage.completion_tokens, -1);
    sl_call_free(y.call);
    sl_client_free(c);
    ss_free(ss);
}

static void test_bad_arguments(void **state)
{
    sl_client_opts o;
    sl_client_opts_init(&o);
    sl_client *c = (sl_client *)1;
    assert_int_equal(sl_client_new(&loop, &o, &c), SL_EINVAL); /* no base_url */
    assert_null(c);
    o.base_url = "ftp://x";
    assert_int_equal(sl_client_new(&loop, &o, &c), SL_EINVAL);
    o.base_url = "http://127.0.0.1:9/v1";
    o.api_key = "sk\r\nX-Evil: 1";
    assert_int_equal(sl_client_new(&loop, &o, &c), SL_EINVAL);
    o.api_key = NULL;
    assert_int_equal(sl_client_new(&loop, &o, &c), 0);
    assert_string_equal(sl_client_base_url(c), "http://127.0.0.1:9/v1");
    assert_ptr_equal(sl_client_loop(c), &loop);
    sl_request *req = chat_request(1);
    sl_call *call = (sl_call *)1;
    sl_call_opts co;
    memset(&co, 0, sizeof co);
    assert_int_equal(sl_call_start(c, req, &co, &call), SL_EINVAL); /* no on_done */
    assert_null(call);
    co.on_done = on_done;
    sl_request_free(req);
    sl_client_free(c);
}

int main(void)
{
    setenv("no_proxy", "*", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stream_success, setup, teardown),
        cmocka_unit_test_setup_teardown(test_non_stream_success, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeouts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_without_content_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_timeout_and_host_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_free_inside_callbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_free_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tool_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reasoning_and_extras, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_completions_and_embeddings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
