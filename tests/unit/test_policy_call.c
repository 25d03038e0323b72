/* test_policy_call.c — calls under an sl_policy: retries, continuation, limits, breaker.
 *
 * The upstream is the scripted server (connection i runs script i), so every attempt's
 * bytes are fixed by the test. Backoffs are a few ms; no test asserts a duration except
 * lower bounds that only a bug can break ("not before the Retry-After"), taken from the
 * recorded delays or from the server's clock. Each test ends with exactly one on_done
 * per call and a loop that closes with no live handle. */
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
#include <sluice/policy.h>

#include "script_server.c"
#include "loop_harness.h"

/* ---- recording callbacks ------------------------------------------------------------ */

#define MAX_RETRIES 32

typedef struct rec rec;
struct rec {
    int deltas, dones, retries;
    char text[4096]; /* delivered content, choice 0 */
    size_t text_len;
    char reasoning_seen[1024];
    size_t reasoning_len;
    char tools[1024]; /* "idx:id:name:args|" per tool piece */
    size_t tools_len;
    int retry_attempt[MAX_RETRIES], retry_err[MAX_RETRIES], retry_status[MAX_RETRIES];
    size_t text_at_retry; /* content delivered when the first retry was decided */
    double retry_delay[MAX_RETRIES];
    /* the result, copied */
    int err;
    char msg[512];
    int http_status;
    char res_text[4096];
    char reasoning[1024];
    int attempts;
    sl_attempt_info log[SL_ATTEMPT_LOG_MAX];
    int log_len;
    double ttfb;
    /* actions */
    int cancel_in_retry;
    int free_in_retry;
    void (*in_retry)(rec *x); /* runs inside on_retry */
    sl_call *call;
};

static void append(char *dst, size_t cap, size_t *len, const char *p, size_t n)
{
    if (*len + n < cap) {
        memcpy(dst + *len, p, n);
        *len += n;
        dst[*len] = '\0';
    }
}

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
    assert_int_equal(x->dones, 0);
    if (d->kind == SL_DELTA_CONTENT && d->choice == 0)
        append(x->text, sizeof x->text, &x->text_len, d->text.ptr, d->text.len);
    else if (d->kind == SL_DELTA_REASONING && d->choice == 0)
        append(x->reasoning_seen, sizeof x->reasoning_seen, &x->reasoning_len, d->text.ptr,
               d->text.len);
    else if (d->kind == SL_DELTA_TOOL_CALL)
        x->tools_len += (size_t)snprintf(x->tools + x->tools_len, sizeof x->tools - x->tools_len,
                                         "%d:%.*s:%.*s:%.*s|", d->tool_index, (int)d->tool_id.len,
                                         d->tool_id.ptr, (int)d->tool_name.len, d->tool_name.ptr,
                                         (int)d->text.len, d->text.ptr);
}

static void on_retry(sl_call *call, int attempt, int err, int status, double delay, void *user)
{
    rec *x = user;
    uv_stop(&loop);
    assert_int_equal(x->dones, 0);
    if (x->retries == 0)
        x->text_at_retry = x->text_len;
    if (x->retries < MAX_RETRIES) {
        x->retry_attempt[x->retries] = attempt;
        x->retry_err[x->retries] = err;
        x->retry_status[x->retries] = status;
        x->retry_delay[x->retries] = delay;
    }
    x->retries++;
    if (x->in_retry)
        x->in_retry(x);
    if (x->cancel_in_retry) {
        sl_call_cancel(call);
        assert_int_equal(x->dones, 0); /* never from inside cancel */
    }
    if (x->free_in_retry) {
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
    x->err = r->error;
    if (r->error)
        assert_non_null(r->message);
    else
        assert_null(r->message);
    copy(x->msg, sizeof x->msg, r->message, r->message ? strlen(r->message) : 0);
    x->http_status = r->http_status;
    copy(x->res_text, sizeof x->res_text, r->text.ptr, r->text.len);
    copy(x->reasoning, sizeof x->reasoning, r->reasoning.ptr, r->reasoning.len);
    x->attempts = r->attempts;
    x->log_len = r->attempt_log_len;
    assert_int_equal(r->attempt_log_len,
                     r->attempts < SL_ATTEMPT_LOG_MAX ? r->attempts : SL_ATTEMPT_LOG_MAX);
    if (r->attempt_log_len)
        memcpy(x->log, r->attempt_log, (size_t)r->attempt_log_len * sizeof *x->log);
    else
        assert_null(r->attempt_log);
    x->ttfb = r->timings.ttfb_ms;
}

static double now_ms(void)
{
    return (double)uv_hrtime() / 1e6;
}

/* ---- fixtures ------------------------------------------------------------------------ */

static ss_server *serve_n(const ss_step *const *scripts, size_t n)
{
    ss_server *ss;
    assert_int_equal(ss_start(&loop, scripts, n, &ss), 0);
    return ss;
}

static sl_client *client_for(ss_server *ss)
{
    sl_client_opts o;
    sl_client_opts_init(&o);
    o.base_url = ss_url(ss, "/v1");
    sl_client *c = NULL;
    assert_int_equal(sl_client_new(&loop, &o, &c), 0);
    return c;
}

static sl_policy *policy(int max_attempts, long base_ms)
{
    sl_policy_opts o;
    sl_policy_opts_init(&o);
    o.max_attempts = max_attempts;
    o.backoff_base_ms = base_ms;
    o.backoff_cap_ms = base_ms * 8;
    o.seed = 7;
    sl_policy *p = NULL;
    assert_int_equal(sl_policy_new(&loop, &o, &p), 0);
    return p;
}

static sl_policy *policy_with(const sl_policy_opts *o)
{
    sl_policy *p = NULL;
    assert_int_equal(sl_policy_new(&loop, o, &p), 0);
    return p;
}

static sl_request *chat_request(int stream, const char *content)
{
    sl_request *r;
    assert_int_equal(sl_request_new(&r), 0);
    assert_int_equal(sl_request_set_model(r, "m"), 0);
    assert_int_equal(sl_request_add_message(r, "user", content, strlen(content)), 0);
    assert_int_equal(sl_request_set_stream(r, stream), 0);
    return r;
}

static void start(sl_client *c, const sl_request *req, sl_policy *p, rec *x)
{
    sl_call_opts o;
    memset(&o, 0, sizeof o);
    o.on_delta = on_delta;
    o.on_done = on_done;
    o.on_retry = on_retry;
    o.user = x;
    o.policy = p;
    assert_int_equal(sl_call_start(c, req, &o, &x->call), 0);
    assert_int_equal(x->deltas, 0); /* never a callback from inside start */
    assert_int_equal(x->dones, 0);
}

/* One streamed call "hi" under p against the scripts; x zeroed with its actions set. */
static ss_server *one_call(const ss_step *const *scripts, size_t n, sl_policy *p, int stream,
                           rec *x)
{
    ss_server *ss = serve_n(scripts, n);
    sl_client *c = client_for(ss);
    sl_request *req = chat_request(stream, "hi");
    start(c, req, p, x);
    sl_request_free(req);
    run_until(&x->dones);
    assert_int_equal(x->dones, 1);
    sl_call_free(x->call);
    sl_client_free(c);
    return ss;
}

static void expect_stats(sl_policy *p, uint64_t calls, uint64_t attempts, uint64_t retries)
{
    sl_policy_stats st;
    sl_policy_get_stats(p, &st);
    assert_int_equal(st.calls, calls);
    assert_int_equal(st.attempts, attempts);
    assert_int_equal(st.retries, retries);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.in_flight, 0);
}

/* ---- the canned upstream ------------------------------------------------------------- */

#define SSE_HEAD "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
#define CHUNK(json)                                                                                \
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"            \
    "\"model\":\"m\"," json "}\n\n"
#define EV_ROLE                                                                                    \
    CHUNK("\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"         \
          "\"finish_reason\":null}]")
#define EV_TEXT(t)                                                                                 \
    CHUNK("\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" t "\"},\"finish_reason\":null}]")
#define EV_REASON(t)                                                                               \
    CHUNK("\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"" t "\"},"                 \
          "\"finish_reason\":null}]")
#define EV_TOOL_FIRST(i, id, name)                                                                 \
    CHUNK("\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":" #i ",\"id\":\"" id    \
          "\",\"type\":\"function\",\"function\":{\"name\":\"" name "\",\"arguments\":\"\"}}]},"   \
          "\"finish_reason\":null}]")
#define EV_TOOL_ARGS(i, args)                                                                      \
    CHUNK("\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":" #i ",\"function\":{"  \
          "\"arguments\":\"" args "\"}}]},\"finish_reason\":null}]")
#define EV_FINISH CHUNK("\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]")
#define EV_TOOL_FINISH                                                                             \
    CHUNK("\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]")
#define EV_USAGE                                                                                   \
    CHUNK("\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3,"                 \
          "\"total_tokens\":8}")
#define EV_DONE "data: [DONE]\n\n"

/* The same answer, split differently by the replay. */
#define FULL_STREAM                                                                                \
    SSE_HEAD EV_ROLE EV_TEXT("Hel") EV_TEXT("lo") EV_TEXT(" world") EV_FINISH EV_USAGE EV_DONE
#define REPLAY_STREAM                                                                              \
    SSE_HEAD EV_ROLE EV_TEXT("H") EV_TEXT("ello w") EV_TEXT("orld") EV_FINISH EV_USAGE EV_DONE

#define JSON_OK                                                                                    \
    "{\"id\":\"r1\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"m\",\"choices\":[{"   \
    "\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hi there\"},"                   \
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":4,"         \
    "\"total_tokens\":6}}"

/* An HTTP answer with a Content-Length, in one of a few static buffers. */
static const char *resp(int slot, const char *status, const char *headers, const char *body)
{
    static char pool[8][2048];
    snprintf(pool[slot], sizeof pool[slot],
             "HTTP/1.1 %s\r\nContent-Type: application/json\r\nConnection: close\r\n%s"
             "Content-Length: %zu\r\n\r\n%s",
             status, headers, strlen(body), body);
    return pool[slot];
}

#define ERR_BODY "{\"error\":{\"message\":\"boom\"}}"

#define STEPS_SEND(r)                                                                              \
    {                                                                                              \
        SS_STEP_READ, SS_STEP_SENDN((r), strlen(r)), SS_STEP_CLOSE, SS_STEP_END                    \
    }

/* ---- retries --------------------------------------------------------------------------- */

static void test_retry_then_success(void **state)
{
    /* streamed: 500, then the answer */
    const char *r500 = resp(0, "500 Internal Server Error", "", ERR_BODY);
    ss_step s0[] = STEPS_SEND(r500);
    static const ss_step s1[] = {SS_STEP_READ, SS_STEP_SEND(FULL_STREAM), SS_STEP_CLOSE};
    const ss_step *scripts[] = {s0, s1};
    sl_policy *p = policy(3, 2);
    rec x = {0};
    ss_server *ss = one_call(scripts, 2, p, 1, &x);
    assert_int_equal(x.err, 0);
    assert_string_equal(x.text, "Hello world");
    assert_string_equal(x.res_text, "Hello world");
    assert_int_equal(x.deltas, 3);
    assert_int_equal(x.http_status, 200);
    assert_int_equal(x.attempts, 2);
    assert_int_equal(x.retries, 1);
    assert_int_equal(x.retry_attempt[0], 1);
    assert_int_equal(x.retry_err[0], SL_EHTTP);
    assert_int_equal(x.retry_status[0], 500);
    assert_true(x.retry_delay[0] >= 0 && x.retry_delay[0] < 2); /* full jitter below base */
    assert_int_equal(x.log_len, 2);
    assert_int_equal(x.log[0].error, SL_EHTTP);
    assert_int_equal(x.log[0].http_status, 500);
    assert_true(x.log[0].delay_ms == x.retry_delay[0]);
    assert_true(x.log[0].duration_ms >= 0 && x.log[0].wait_ms >= 0);
    assert_int_equal(x.log[1].error, 0);
    assert_int_equal(x.log[1].http_status, 200);
    assert_true(x.log[1].delay_ms == -1);
    assert_true(x.log[1].start_ms >= x.log[0].start_ms + x.log[0].duration_ms);
    assert_int_equal(ss_accepts(ss), 2);
    expect_stats(p, 1, 2, 1);
    ss_free(ss);

    /* not streamed: 503 then the body; the failure never shows */
    const char *r503 = resp(1, "503 Service Unavailable", "", "");
    const char *ok = resp(2, "200 OK", "", JSON_OK);
    ss_step t0[] = STEPS_SEND(r503);
    ss_step t1[] = STEPS_SEND(ok);
    const ss_step *scripts2[] = {t0, t1};
    rec y = {0};
    ss = one_call(scripts2, 2, p, 0, &y);
    assert_int_equal(y.err, 0);
    assert_int_equal(y.deltas, 1);
    assert_string_equal(y.text, "Hi there");
    assert_int_equal(y.attempts, 2);
    assert_int_equal(y.retries, 1);
    assert_int_equal(y.log[0].http_status, 503);
    expect_stats(p, 2, 4, 2);
    ss_free(ss);
    sl_policy_free(p);
}

static void test_not_retried(void **state)
{
    static const char *const statuses[] = {"400 Bad Request", "401 Unauthorized", "403 Forbidden",
                                           "404 Not Found"};
    sl_policy *p = policy(5, 1);
    for (int i = 0; i < 4; i++) {
        const char *r = resp(0, statuses[i], "", ERR_BODY);
        ss_step s[] = STEPS_SEND(r);
        const ss_step *scripts[] = {s};
        rec x = {0};
        ss_server *ss = one_call(scripts, 1, p, 1, &x);
        assert_int_equal(x.err, SL_EHTTP);
        assert_int_equal(x.http_status, (int)strtol(statuses[i], NULL, 10));
        assert_int_equal(x.attempts, 1);
        assert_int_equal(x.retries, 0);
        assert_int_equal(x.log_len, 1);
        assert_true(x.log[0].delay_ms == -1);
        assert_int_equal(ss_accepts(ss), 1);
        ss_free(ss);
    }
    expect_stats(p, 4, 4, 0);
    sl_policy_free(p);

    /* without a policy: one attempt, recorded */
    const char *r500 = resp(0, "500 Internal Server Error", "", ERR_BODY);
    ss_step s[] = STEPS_SEND(r500);
    const ss_step *scripts[] = {s};
    rec x = {0};
    ss_server *ss = one_call(scripts, 1, NULL, 1, &x);
    assert_int_equal(x.err, SL_EHTTP);
    assert_int_equal(x.attempts, 1);
    assert_int_equal(x.retries, 0);
    assert_int_equal(x.log_len, 1);
    assert_int_equal(x.log[0].error, SL_EHTTP);
    assert_int_equal(x.log[0].http_status, 500);
    assert_true(x.log[0].wait_ms == 0 && x.log[0].delay_ms == -1);
    ss_free(ss);
}

static void test_retry_after(void **state)
{
    /* the provider's wait beats our 1 ms backoff, and the retry waits for it */
    const char *r429 = resp(0, "429 Too Many Requests", "retry-after-ms: 30\r\n", ERR_BODY);
    ss_step s0[] = STEPS_SEND(r429);
    static const ss_step s1[] = {SS_STEP_READ, SS_STEP_SEND(FULL_STREAM), SS_STEP_CLOSE};
    const ss_step *scripts[] = {s0, s1};
    sl_policy *p = policy(2, 1);
    rec x = {0};
    ss_server *ss = one_call(scripts, 2, p, 1, &x);
    assert_int_equal(x.err, 0);
    assert_int_equal(x.attempts, 2);
    assert_int_equal(x.retry_status[0], 429);
    assert_true(x.retry_delay[0] >= 30);
    assert_true(x.log[0].delay_ms >= 30);
    assert_int_equal(x.log[0].http_status, 429);
    /* the second attempt started after the wait */
    assert_true(x.log[1].start_ms >= x.log[0].start_ms + x.log[0].duration_ms + 30);
    assert_true(ss_request_ms(ss, 1) - ss_request_ms(ss, 0) >= 30);
    ss_free(ss);
    sl_policy_free(p);
}

static void test_attempts_exhausted(void **state)
{
    const char *r500 = resp(0, "500 Internal Server Error", "", ERR_BODY);
    ss_step s[] = STEPS_SEND(r500);
    const ss_step *scripts[] = {s};
    sl_policy *p = policy(3, 1);
    rec x = {0};
    ss_server *ss = one_call(scripts, 1, p, 1, &x);
    assert_int_equal(x.err, SL_EHTTP);
    assert_int_equal(x.http_status, 500);
    char want[256];
    snprintf(want, sizeof want, "POST http://127.0.0.1:%d/v1/chat/completions: HTTP 500: boom",
             ss_port(ss));
    assert_string_equal(x.msg, want); /* the last attempt's error */
    assert_int_equal(x.attempts, 3);
    assert_int_equal(x.retries, 2);
    assert_int_equal(x.retry_attempt[1], 2);
    assert_int_equal(x.log_len, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(x.log[i].error, SL_EHTTP);
        assert_int_equal(x.log[i].http_status, 500);
    }
    assert_true(x.log[0].delay_ms >= 0 && x.log[1].delay_ms >= 0 && x.log[2].delay_ms == -1);
    assert_int_equal(ss_accepts(ss), 3);
    expect_stats(p, 1, 3, 2);
    ss_free(ss);
    sl_policy_free(p);

    /* more attempts than the log keeps: all counted, the first 16 recorded */
    p = policy(20, 0);
    rec y = {0};
    ss = one_call(scripts, 1, p, 1, &y);
    assert_int_equal(y.attempts, 20);
    assert_int_equal(y.log_len, SL_ATTEMPT_LOG_MAX);
    assert_int_equal(y.retries, 19);
    assert_int_equal(ss_accepts(ss), 20);
    ss_free(ss);
    sl_policy_free(p);
}

static void test_budget_and_deadline_limit_retries(void **state)
{
    const char *r503 = resp(0, "503 Service Unavailable", "retry-after-ms: 5000\r\n", ERR_BODY);
    ss_step s[] = STEPS_SEND(r503);
    const ss_step *scripts[] = {s};

    /* the provider's wait lies beyond the retry budget: give up now */
    sl_policy_opts o;
    sl_policy_opts_init(&o);
    o.max_attempts = 5;
    o.backoff_base_ms = 1;
    o.retry_budget_ms = 1000;
    sl_policy *p = policy_with(&o);
    rec x = {0};
    ss_server *ss = one_call(scripts, 1, p, 1, &x);
    assert_int_equal(x.err, SL_EHTTP);
    assert_int_equal(x.attempts, 1);
    assert_int_equal(x.retries, 0);
    ss_free(ss);
    sl_policy_free(p);

    /* likewise beyond the deadline: the last error, at once */
    o.retry_budget_ms = 0;
    o.deadline_ms = 1000;
    p = policy_with(&o);
    rec y = {0};
    ss = one_call(scripts, 1, p, 1, &y);
    assert_int_equal(y.err, SL_EHTTP);
    assert_int_equal(y.http_status, 503);
    assert_int_equal(y.attempts, 1);
    assert_int_equal(y.retries, 0);
    ss_free(ss);
    sl_policy_free(p);
}

static void test_deadline(void **state)
{
    /* an attempt that outlives the deadline is cut */
    static const ss_step stall[] = {SS_STEP_READ, SS_STEP_STALL};
    const ss_step *scripts[] = {stall};
    sl_policy_opts o;
    sl_policy_opts_init(&o);
    o.max_attempts = 3;
    o.backoff_base_ms = 1;
    o.deadline_ms = 30;
    sl_policy *p = policy_with(&o);
    rec x = {0};
    ss_server *ss = one_call(scripts, 1, p, 1, &x);
    assert_int_equal(x.err, SL_ETIMEDOUT);
    char want[256];
    snprintf(want, sizeof want,
             "POST http://127.0.0.1:%d/v1/chat/completions: deadline of 30 ms exceeded after 1 "
             "attempt",
             ss_port(ss));
    assert_string_equal(x.msg, want);
    assert_int_equal(x.attempts, 1);
    assert_int_equal(x.log[0].error, SL_ETIMEDOUT);
    assert_int_equal(x.retries, 0);
    ss_free(ss);
    sl_policy_free(p);

    /* a wait for the rate limiter counts too: rpm 1, spent by a call cancelled at once,
     * so the second call would wait a minute */
    o.rpm = 1;
    p = policy_with(&o);
    ss = serve_n(scripts, 1);
    sl_client *c = client_for(ss);
    sl_request *req = chat_request(1, "hi");
    rec a = {0}, b = {0};
    start(c, req, p, &a);
    sl_call_cancel(a.call);
    start(c, req, p, &b);
    sl_policy_stats st;
    sl_policy_get_stats(p, &st);
    assert_int_equal(st.waiting, 1);
    assert_int_equal(st.in_flight, 1);
    assert_int_equal(st.rate_limited, 1);
    run_until(&a.dones);
    run_until(&b.dones);
    assert_int_equal(a.err, SL_ECANCELED);
    assert_int_equal(b.err, SL_ETIMEDOUT);
    assert_non_null(strstr(b.msg, ": deadline of 30 ms exceeded after 0 attempts"));
    assert_int_equal(b.attempts, 0);
    assert_int_equal(b.log_len, 0);
    expect_stats(p, 2, 1, 0);
    sl_call_free(a.call);
    sl_call_free(b.call);
    sl_request_free(req);
    sl_client_free(c);
    ss_free(ss);
    sl_policy_free(p);
}

/* ---- continuation after deltas ------------------------------------------------------------ */

static unsigned delivered_before_retry; /* bit n: a retry followed n delivered bytes */

static void cut_then_replay(const char *first, size_t cut, const char *replay)
{
    ss_step s0[] = {SS_STEP_READ, SS_STEP_SENDN(first, cut), SS_STEP_CLOSE};
    ss_step s1[] = {SS_STEP_READ, SS_STEP_SENDN(replay, strlen(replay)), SS_STEP_CLOSE};
    const ss_step *scripts[] = {s0, s1};
    sl_policy *p = policy(2, 1);
    rec x = {0};
    ss_server *ss = one_call(scripts, 2, p, 1, &x);
    /* every byte exactly once, whatever was delivered before the cut */
    assert_int_equal(x.err, 0);
    assert_string_equal(x.text, "Hello world");
    assert_string_equal(x.res_text, "Hello world");
    assert_true(x.attempts == 1 || x.attempts == 2);
    assert_int_equal(x.retries, x.attempts - 1);
    if (x.retries)
        delivered_before_retry |= 1u << x.text_at_retry;
    ss_free(ss);
    sl_policy_free(p);
}

static void test_continuation_every_cut(void **state)
{
    static const char full[] = FULL_STREAM;
    static const char replay[] = REPLAY_STREAM;
    static char chunked[4096];
    /* the same events as HTTP chunks, cut anywhere: the transport fails mid-chunk */
    static const char *const events[] = {
        EV_ROLE, EV_TEXT("Hel"), EV_TEXT("lo"), EV_TEXT(" world"), EV_FINISH, EV_USAGE, EV_DONE};
    size_t n = (size_t)snprintf(chunked, sizeof chunked, "%s",
                                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                "Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n");
    size_t ends[7];
    for (int i = 0; i < 7; i++) {
        n += (size_t)snprintf(chunked + n, sizeof chunked - n, "%zx\r\n%s\r\n", strlen(events[i]),
                              events[i]);
        ends[i] = n;
    }
    n += (size_t)snprintf(chunked + n, sizeof chunked - n, "0\r\n\r\n");

    size_t len = strlen(full);
    for (size_t cut = 0; cut < len; cut += 11)
        cut_then_replay(full, cut, replay);
    /* every event boundary of the plain stream and its neighbours */
    size_t pos = strlen(SSE_HEAD);
    for (int i = 0; i < 7; i++) {
        pos += strlen(events[i]);
        cut_then_replay(full, pos - 1, replay);
        cut_then_replay(full, pos, replay);
        if (pos + 1 < len)
            cut_then_replay(full, pos + 1, replay);
    }
    for (size_t cut = 0; cut < n; cut += 17)
        cut_then_replay(chunked, cut, replay);
    for (int i = 0; i < 7; i++) {
        cut_then_replay(chunked, ends[i] - 3, replay);
        cut_then_replay(chunked, ends[i], replay);
    }
    /* retries came after nothing, "Hel", "Hello" and all of "Hello world" */
    assert_int_equal(delivered_before_retry, (1u << 0) | (1u << 3) | (1u << 5) | (1u << 11));
}

static void test_continuation_passes_exact_suffix(void **state)
{
    /* "Hel" and "lo" delivered; the replay's "ello w" must yield just " w" */
    static const char first[] = SSE_HEAD EV_ROLE EV_TEXT("Hel") EV_TEXT("lo");
    static const ss_step s0[] = {SS_STEP_READ, SS_STEP_SEND(first), SS_STEP_CLOSE};
    static const ss_step s1[] = {SS_STEP_READ, SS_STEP_SEND(REPLAY_STREAM), SS_STEP_CLOSE};
    const ss_step *scripts[] = {s0, s1};
    sl_policy *p = policy(2, 1);
    rec x = {0};
    ss_server *ss = one_call(scripts, 2, p, 1, &x);
    assert_int_equal(x.err, 0);
    assert_int_equal(x.attempts, 2);
    assert_int_equal(x.retry_err[0], SL_EPROTO);
    assert_int_equal(x.deltas, 4); /* "Hel", "lo", " w", "orld" */
    assert_string_equal(x.text, "Hello world");
    assert_int_equal(x.log[0].error, SL_EPROTO);
    assert_int_equal(x.log[0].http_status, 200);
    ss_free(ss);
    sl_policy_free(p);
}

static void test_divergence(void **state)
{
    static const char first[] = SSE_HEAD EV_ROLE EV_TEXT("Hel") EV_TEXT("lo");
    static const ss_step s0[] = {SS_STEP_READ, SS_STEP_SEND(first), SS_STEP_CLOSE};

    /* the replay differs inside what was delivered: byte 3 */
    static const ss_step s1[] = {
        SS_STEP_READ,
        SS_STEP_SEND(SSE_HEAD EV_ROLE EV_TEXT("Help") EV_TEXT(" me") EV_FINISH EV_DONE),
        SS_STEP_CLOSE};
    const ss_step *scripts[] = {s0, s1};
    sl_policy *p = policy(3, 1);
    rec x = {0};
    ss_server *ss = one_call(scripts, 2, p, 1, &x);
    assert_int_equal(x.err, SL_EDIVERGED);
    char want[256];
    snprintf(want, sizeof want,
             "POST http://127.0.0.1:%d/v1/chat/completions: retried stream diverged from the "
             "delivered text at byte 3",
             ss_port(ss));
    assert_string_equal(x.msg, want);
    assert_string_equal(x.text, "Hello"); /* exactly what was delivered, nothing garbled */
    assert_string_equal(x.res_text, "Hello");
    assert_int_equal(x.attempts, 2); /* no retry after a divergence */
    assert_int_equal(x.retries, 1);
    assert_int_equal(x.log[1].error, SL_EDIVERGED);
    assert_int_equal(ss_accepts(ss), 2);
    ss_free(ss);

    /* the replay is shorter than what was delivered, then ends well */
    static const ss_step s2[] = {SS_STEP_READ,
                                 SS_STEP_SEND(SSE_HEAD EV_ROLE EV_TEXT("He") EV_FINISH EV_DONE),
                                 SS_STEP_CLOSE};
    const ss_step *scripts2[] = {s0, s2};
    rec y = {0};
    ss = one_call(scripts2, 2, p, 1, &y);
    assert_int_equal(y.err, SL_EDIVERGED);
    assert_non_null(strstr(y.msg, ": retried stream diverged from the delivered text at byte 2"));
    assert_string_equal(y.text, "Hello");
    assert_string_equal(y.res_text, "Hello");
    assert_int_equal(y.attempts, 2);
    assert_int_equal(y.log[1].error, SL_EDIVERGED);
    assert_int_equal(y.log[1].http_status, 200);
    ss_free(ss);

    /* the replay fails again before catching up: a third attempt continues */
    static const ss_step s3[] = {SS_STEP_READ, SS_STEP_SEND(SSE_HEAD EV_ROLE EV_TEXT("He")),
                                 SS_STEP_CLOSE};
    static const ss_step s4[] = {SS_STEP_READ, SS_STEP_SEND(REPLAY_STREAM), SS_STEP_CLOSE};
    const ss_step *scripts3[] = {s0, s3, s4};
    rec z = {0};
    ss = one_call(scripts3, 3, p, 1, &z);
    assert_int_equal(z.err, 0);
    assert_int_equal(z.attempts, 3);
    assert_string_equal(z.text, "Hello world");
    ss_free(ss);
    sl_policy_free(p);
}

static void test_continuation_tool_calls(void **state)
{
    static const ss_step s0[] = {SS_STEP_READ,
                                 SS_STEP_SEND(SSE_HEAD EV_TOOL_FIRST(0, "call_a", "get_weather")
                                                  EV_TOOL_ARGS(0, "{\\\"city\\\":")),
                                 SS_STEP_CLOSE};
    /* new ids, the arguments split elsewhere, then a second tool call */
    static const ss_step s1[] = {
        SS_STEP_READ,
        SS_STEP_SEND(SSE_HEAD EV_TOOL_FIRST(0, "call_z", "get_weather") EV_TOOL_ARGS(0, "{\\\"ci")
                         EV_TOOL_ARGS(0, "ty\\\":\\\"Paris\\\"}") EV_TOOL_FIRST(1, "call_y", "now")
                             EV_TOOL_ARGS(1, "{}") EV_TOOL_FINISH EV_DONE),
        SS_STEP_CLOSE};
    const ss_step *scripts[] = {s0, s1};
    sl_policy *p = policy(2, 1);
    rec x = {0};
    ss_server *ss = one_call(scripts, 2, p, 1, &x);
    assert_int_equal(x.err, 0);
    assert_int_equal(x.attempts, 2);
    assert_string_equal(x.tools, "0:call_a:get_weather:|0:::{\"city\":|0:::\"Paris\"}|"
                                 "1:call_y:now:|1:::{}|");
    ss_free(ss);

    /* the retry calls another function: divergence */
    static const ss_step s2[] = {SS_STEP_READ,
                                 SS_STEP_SEND(SSE_HEAD EV_TOOL_FIRST(0, "call_z", "get_time")
                                                  EV_TOOL_ARGS(0, "{\\\"city\\\":\\\"Paris\\\"}")
                                                      EV_TOOL_FINISH EV_DONE),
                                 SS_STEP_CLOSE};
    const ss_step *scripts2[] = {s0, s2};
    rec y = {0};
    ss = one_call(scripts2, 2, p, 1, &y);
    assert_int_equal(y.err, SL_EDIVERGED);
    assert_non_null(strstr(y.msg, "diverged from the delivered text at byte 0"));
    assert_string_equal(y.tools, "0:call_a:get_weather:|0:::{\"city\":|");
    ss_free(ss);

    /* other arguments */
    static const ss_step s3[] = {SS_STEP_READ,
                                 SS_STEP_SEND(SSE_HEAD EV_TOOL_FIRST(0, "call_z", "get_weather")
                                                  EV_TOOL_ARGS(0, "{\\\"town\\\":\\\"Paris\\\"}")
                                                      EV_TOOL_FINISH EV_DONE),
                                 SS_STEP_CLOSE};
    const ss_step *scripts3[] = {s0, s3};
    rec z = {0};
    ss = one_call(scripts3, 2, p, 1, &z);
    assert_int_equal(z.err, SL_EDIVERGED);
    assert_non_null(strstr(z.msg, "diverged from the delivered text at byte 2"));
    assert_string_equal(z.tools, "0:call_a:get_weather:|0:::{\"city\":|");
    ss_free(ss);
    sl_policy_free(p);
}

static void test_continuation_reasoning(void **state)
{
    static const ss_step s0[] = {
        SS_STEP_READ, SS_STEP_SEND(SSE_HEAD EV_REASON("think") EV_REASON("ing") EV_TEXT("An")),
        SS_STEP_CLOSE};
    static const ss_step s1[] = {SS_STEP_READ,
                                 SS_STEP_SEND(SSE_HEAD EV_REASON("thinking") EV_REASON(" hard")
                                                  EV_TEXT("Ans") EV_TEXT("wer") EV_FINISH EV_DONE),
                                 SS_STEP_CLOSE};
    const ss_step *scripts[] = {s0, s1};
    sl_policy *p = policy(2, 1);
    rec x = {0};
    ss_server *ss = one_call(scripts, 2, p, 1, &x);
    assert_int_equal(x.err, 0);
    assert_string_equal(x.reasoning_seen, "thinking hard");
    assert_string_equal(x.reasoning, "thinking hard");
    assert_string_equal(x.text, "Answer");
    assert_string_equal(x.res_text, "Answer");
    assert_int_equal(x.deltas, 6); /* think, ing, An | hard, s, wer */
    ss_free(ss);

    /* reasoning that differs */
    static const ss_step s2[] = {
        SS_STEP_READ,
        SS_STEP_SEND(SSE_HEAD EV_REASON("thought") EV_TEXT("Answer") EV_FINISH EV_DONE),
        SS_STEP_CLOSE};
    const ss_step *scripts2[] = {s0, s2};
    rec y = {0};
    ss = one_call(scripts2, 2, p, 1, &y);
    assert_int_equal(y.err, SL_EDIVERGED);
    assert_non_null(strstr(y.msg, "at byte 2")); /* "thi" / "tho" */
    assert_string_equal(y.reasoning_seen, "thinking");
    assert_string_equal(y.text, "An");
    ss_free(ss);
    sl_policy_free(p);
}

/* ---- limits ------------------------------------------------------------------------------ */

static void test_concurrency(void **state)
{
    const char *ok = resp(0, "200 OK", "", JSON_OK);
    ss_step s[] = {SS_STEP_READ, SS_STEP_WAIT(20), SS_STEP_SENDN(ok, strlen(ok)), SS_STEP_CLOSE};
    const ss_step *scripts[] = {s};
    sl_policy_opts o;
    sl_policy_opts_init(&o);
    o.concurrency = 2;
    sl_policy *p = policy_with(&o);
    ss_server *ss = serve_n(scripts, 1);
    sl_client *c = client_for(ss);
    rec x[5];
    memset(x, 0, sizeof x);
    sl_request *req[5];
    for (int i = 0; i < 5; i++) {
        char content[16];
        snprintf(content, sizeof content, "call %d", i);
        req[i] = chat_request(0, content);
        start(c, req[i], p, &x[i]);
    }
    sl_policy_stats st;
    sl_policy_get_stats(p, &st);
    assert_int_equal(st.in_flight, 2);
    assert_int_equal(st.waiting, 3);
    for (int i = 0; i < 5; i++)
        run_until(&x[i].dones);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(x[i].dones, 1);
        assert_int_equal(x[i].err, 0);
        assert_true(x[i].log[0].wait_ms >= 0);
        sl_call_free(x[i].call);
    }
    assert_true(ss_max_busy(ss) >= 1 && ss_max_busy(ss) <= 2); /* never more than 2 */
    assert_int_equal(ss_accepts(ss), 5);
    expect_stats(p, 5, 5, 0);
    sl_client_free(c);
    ss_free(ss);
    sl_policy_free(p);

    /* one at a time: the upstream sees them in the order they were started */
    o.concurrency = 1;
    p = policy_with(&o);
    ss = serve_n(scripts, 1);
    c = client_for(ss);
    memset(x, 0, sizeof x);
    for (int i = 0; i < 5; i++)
        start(c, req[i], p, &x[i]);
    for (int i = 0; i < 5; i++)
        run_until(&x[i].dones);
    assert_int_equal(ss_max_busy(ss), 1);
    assert_int_equal(ss_nrequests(ss), 5);
    for (int i = 0; i < 5; i++) {
        char want[32];
        snprintf(want, sizeof want, "\"content\":\"call %d\"", i);
        assert_non_null(strstr(ss_request(ss, (size_t)i), want));
        assert_int_equal(x[i].err, 0);
        sl_call_free(x[i].call);
        sl_request_free(req[i]);
    }
    sl_client_free(c);
    ss_free(ss);
    sl_policy_free(p);
}

static void test_token_rate_corrected_by_usage(void **state)
{
    /* tpm 6000 and max_tokens 5000: the second call cannot go (a 40 s wait) until the
     * first one's usage (6 tokens) gives the reservation back */
    const char *ok = resp(0, "200 OK", "", JSON_OK);
    ss_step s[] = STEPS_SEND(ok);
    const ss_step *scripts[] = {s};
    sl_policy_opts o;
    sl_policy_opts_init(&o);
    o.tpm = 6000;
    sl_policy *p = policy_with(&o);
    ss_server *ss = serve_n(scripts, 1);
    sl_client *c = client_for(ss);
    sl_request *req = chat_request(0, "hi");
    assert_int_equal(sl_request_set_max_tokens(req, 5000), 0);
    rec a = {0}, b = {0};
    start(c, req, p, &a);
    start(c, req, p, &b);
    sl_policy_stats st;
    sl_policy_get_stats(p, &st);
    assert_int_equal(st.waiting, 1);
    assert_int_equal(st.rate_limited, 1);
    run_until(&a.dones);
    run_until(&b.dones);
    assert_int_equal(a.err, 0);
    assert_int_equal(b.err, 0);
    assert_true(b.log[0].wait_ms > 0);
    expect_stats(p, 2, 2, 0);
    sl_call_free(a.call);
    sl_call_free(b.call);
    sl_request_free(req);
    sl_client_free(c);
    ss_free(ss);
    sl_policy_free(p);
}

static void test_provider_headers_hold_requests(void **state)
{
    /* no limits of our own: the provider says 0 requests left for 40 ms */
    const char *ok =
        resp(0, "200 OK",
             "x-ratelimit-remaining-requests: 0\r\nx-ratelimit-reset-requests: 40ms\r\n", JSON_OK);
    ss_step s[] = STEPS_SEND(ok);
    const ss_step *scripts[] = {s};
    sl_policy *p = policy(1, 1);
    ss_server *ss = serve_n(scripts, 1);
    sl_client *c = client_for(ss);
    sl_request *req = chat_request(0, "hi");
    double t0 = now_ms();
    rec a = {0}, b = {0};
    start(c, req, p, &a);
    run_until(&a.dones);
    assert_int_equal(a.err, 0);
    start(c, req, p, &b);
    run_until(&b.dones);
    assert_int_equal(b.err, 0);
    sl_policy_stats st;
    sl_policy_get_stats(p, &st);
    assert_int_equal(st.rate_limited, 1);
    assert_true(ss_request_ms(ss, 1) >= t0 + 40);
    sl_call_free(a.call);
    sl_call_free(b.call);
    sl_request_free(req);
    sl_client_free(c);
    ss_free(ss);
    sl_policy_free(p);
}

/* A 429 cools the whole limiter down: a call started meanwhile waits for it as well. */
static sl_client *cooldown_client;
static sl_request *cooldown_req;
static sl_policy *cooldown_policy;
static rec cooldown_b;

static void start_b(rec *x)
{
    start(cooldown_client, cooldown_req, cooldown_policy, &cooldown_b);
}

static void test_429_cools_down_everyone(void **state)
{
    const char *r429 = resp(0, "429 Too Many Requests", "retry-after-ms: 50\r\n", ERR_BODY);
    const char *ok = resp(1, "200 OK", "", JSON_OK);
    ss_step s0[] = STEPS_SEND(r429);
    ss_step s1[] = STEPS_SEND(ok);
    const ss_step *scripts[] = {s0, s1};
    cooldown_policy = policy(2, 1);
    ss_server *ss = serve_n(scripts, 2);
    cooldown_client = client_for(ss);
    cooldown_req = chat_request(0, "hi");
    memset(&cooldown_b, 0, sizeof cooldown_b);
    double t0 = now_ms();
    rec a = {0};
    a.in_retry = start_b;
    start(cooldown_client, cooldown_req, cooldown_policy, &a);
    run_until(&a.dones);
    run_until(&cooldown_b.dones);
    assert_int_equal(a.err, 0);
    assert_int_equal(a.attempts, 2);
    assert_int_equal(cooldown_b.err, 0);
    assert_int_equal(cooldown_b.attempts, 1);
    assert_int_equal(ss_nrequests(ss), 3);
    /* neither the retry nor the other call reached the upstream before the cooldown */
    assert_true(ss_request_ms(ss, 1) >= t0 + 50);
    assert_true(ss_request_ms(ss, 2) >= t0 + 50);
    sl_policy_stats st;
    sl_policy_get_stats(cooldown_policy, &st);
    assert_true(st.rate_limited >= 1);
    sl_call_free(a.call);
    sl_call_free(cooldown_b.call);
    sl_request_free(cooldown_req);
    sl_client_free(cooldown_client);
    ss_free(ss);
    sl_policy_free(cooldown_policy);
}

/* ---- circuit breaker ------------------------------------------------------------------- */

static void on_timer_flag(uv_timer_t *t)
{
    *(int *)t->data = 1;
    uv_stop(&loop);
}

static void sleep_on_loop(long ms)
{
    uv_timer_t t;
    int fired = 0;
    uv_timer_init(&loop, &t);
    t.data = &fired;
    uv_timer_start(&t, on_timer_flag, (uint64_t)ms, 0);
    run_until(&fired);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static void test_breaker(void **state)
{
    const char *r500 = resp(0, "500 Internal Server Error", "", ERR_BODY);
    const char *ok = resp(1, "200 OK", "", JSON_OK);
    ss_step s0[] = STEPS_SEND(r500);
    ss_step s1[] = STEPS_SEND(ok);
    const ss_step *scripts[] = {s0, s0, s0, s1};
    sl_policy_opts o;
    sl_policy_opts_init(&o);
    o.breaker_threshold = 2;
    o.breaker_cooldown_ms = 40;
    sl_policy *p = policy_with(&o);
    ss_server *ss = serve_n(scripts, 4);
    sl_client *c = client_for(ss);
    sl_request *req = chat_request(0, "hi");
    rec x[8];
    memset(x, 0, sizeof x);
    for (int i = 0; i < 2; i++) {
        start(c, req, p, &x[i]);
        run_until(&x[i].dones);
        assert_int_equal(x[i].err, SL_EHTTP);
    }
    /* open: refused without a connection */
    start(c, req, p, &x[2]);
    run_until(&x[2].dones);
    assert_int_equal(x[2].err, SL_EBUSY);
    char want[256];
    snprintf(want, sizeof want,
             "POST http://127.0.0.1:%d/v1/chat/completions: circuit open after 2 consecutive "
             "failures",
             ss_port(ss));
    assert_string_equal(x[2].msg, want);
    assert_int_equal(x[2].attempts, 0);
    assert_int_equal(x[2].http_status, 0);
    assert_int_equal(ss_accepts(ss), 2);
    sl_policy_stats st;
    sl_policy_get_stats(p, &st);
    assert_int_equal(st.breaker_rejects, 1);

    /* half-open after the cooldown: one trial, the others refused while it runs */
    sleep_on_loop(45);
    start(c, req, p, &x[3]);
    start(c, req, p, &x[4]);
    run_until(&x[3].dones);
    run_until(&x[4].dones);
    assert_int_equal(x[3].err, SL_EHTTP); /* the trial fails: open again */
    assert_int_equal(x[4].err, SL_EBUSY);
    assert_int_equal(ss_accepts(ss), 3);
    start(c, req, p, &x[5]);
    run_until(&x[5].dones);
    assert_int_equal(x[5].err, SL_EBUSY);
    sleep_on_loop(45);
    start(c, req, p, &x[6]);
    run_until(&x[6].dones);
    assert_int_equal(x[6].err, 0); /* the trial succeeds: closed */
    start(c, req, p, &x[7]);
    run_until(&x[7].dones);
    assert_int_equal(x[7].err, 0);
    assert_int_equal(ss_accepts(ss), 5);
    sl_policy_get_stats(p, &st);
    assert_int_equal(st.breaker_rejects, 3);
    expect_stats(p, 8, 5, 0);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(x[i].dones, 1);
        sl_call_free(x[i].call);
    }
    sl_request_free(req);
    sl_client_free(c);
    ss_free(ss);
    sl_policy_free(p);
}

static void test_breaker_trial_cancelled(void **state)
{
    /* the half-open trial is cancelled while it runs: the next call becomes the trial */
    const char *r500 = resp(0, "500 Internal Server Error", "", ERR_BODY);
    const char *ok = resp(1, "200 OK", "", JSON_OK);
    ss_step s0[] = STEPS_SEND(r500);
    static const ss_step stall[] = {SS_STEP_READ, SS_STEP_STALL};
    ss_step s2[] = STEPS_SEND(ok);
    const ss_step *scripts[] = {s0, stall, s2};
    sl_policy_opts o;
    sl_policy_opts_init(&o);
    o.breaker_threshold = 1;
    o.breaker_cooldown_ms = 1;
    sl_policy *p = policy_with(&o);
    ss_server *ss = serve_n(scripts, 3);
    sl_client *c = client_for(ss);
    sl_request *req = chat_request(0, "hi");
    rec a = {0}, b = {0}, d = {0};
    start(c, req, p, &a);
    run_until(&a.dones);
    assert_int_equal(a.err, SL_EHTTP);
    sleep_on_loop(3);
    start(c, req, p, &b); /* the trial, stalled upstream */
    while (ss_nrequests(ss) < 2)
        uv_run(&loop, UV_RUN_ONCE);
    sl_call_cancel(b.call);
    run_until(&b.dones);
    assert_int_equal(b.err, SL_ECANCELED);
    start(c, req, p, &d);
    run_until(&d.dones);
    assert_int_equal(d.err, 0);
    sl_call_free(a.call);
    sl_call_free(b.call);
    sl_call_free(d.call);
    sl_request_free(req);
    sl_client_free(c);
    ss_free(ss);
    sl_policy_free(p);
}

/* ---- cancel and free during every wait ---------------------------------------------------- */

static void test_cancel_during_waits(void **state)
{
    static const ss_step stall[] = {SS_STEP_READ, SS_STEP_STALL};
    const ss_step *scripts[] = {stall};
    sl_policy_opts o;
    sl_policy_opts_init(&o);
    o.concurrency = 1;
    sl_policy *p = policy_with(&o);
    ss_server *ss = serve_n(scripts, 1);
    sl_client *c = client_for(ss);
    sl_request *req = chat_request(1, "hi");

    /* slot wait */
    rec a = {0}, b = {0}, d = {0};
    start(c, req, p, &a);
    start(c, req, p, &b);
    start(c, req, p, &d);
    sl_policy_stats st;
    sl_policy_get_stats(p, &st);
    assert_int_equal(st.waiting, 2);
    sl_call_cancel(b.call);
    sl_call_cancel(b.call);
    assert_int_equal(b.dones, 0);
    sl_policy_get_stats(p, &st);
    assert_int_equal(st.waiting, 1);
    run_until(&b.dones);
    assert_int_equal(b.err, SL_ECANCELED);
    assert_int_equal(b.attempts, 0);
    /* free while waiting: on_done from inside the free */
    sl_call_free(d.call);
    assert_int_equal(d.dones, 1);
    assert_int_equal(d.err, SL_ECANCELED);
    sl_call_cancel(a.call);
    run_until(&a.dones);
    assert_int_equal(a.err, SL_ECANCELED);
    assert_int_equal(a.attempts, 1);
    assert_int_equal(ss_accepts(ss), 1);
    expect_stats(p, 3, 1, 0);
    sl_call_free(a.call);
    sl_call_free(b.call);
    sl_policy_free(p);

    /* rate wait: rpm 1, the second call would wait a minute */
    sl_policy_opts_init(&o);
    o.rpm = 1;
    p = policy_with(&o);
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&d, 0, sizeof d);
    start(c, req, p, &a);
    start(c, req, p, &b);
    start(c, req, p, &d);
    sl_policy_get_stats(p, &st);
    assert_int_equal(st.waiting, 2);
    assert_int_equal(st.rate_limited, 2);
    sl_call_cancel(b.call); /* the head of the queue */
    run_until(&b.dones);
    assert_int_equal(b.err, SL_ECANCELED);
    sl_call_free(d.call);
    assert_int_equal(d.dones, 1);
    assert_int_equal(d.err, SL_ECANCELED);
    sl_call_free(a.call); /* running: cancelled by the free */
    assert_int_equal(a.dones, 1);
    sl_call_free(b.call);
    expect_stats(p, 3, 1, 0);
    sl_policy_free(p);
    sl_request_free(req);
    sl_client_free(c);
    ss_free(ss);
}

static void test_cancel_during_backoff(void **state)
{
    /* a 503 asking for a minute (a 429 would also hold the rate limiter) */
    const char *r503 = resp(0, "503 Service Unavailable", "retry-after-ms: 60000\r\n", ERR_BODY);
    ss_step s[] = STEPS_SEND(r503);
    const ss_step *scripts[] = {s};
    sl_policy *p = policy(3, 1);
    ss_server *ss = serve_n(scripts, 1);
    sl_client *c = client_for(ss);
    sl_request *req = chat_request(1, "hi");

    /* from outside, while the backoff runs */
    rec a = {0};
    start(c, req, p, &a);
    run_until(&a.retries);
    assert_true(a.retry_delay[0] >= 60000);
    sl_call_cancel(a.call);
    assert_int_equal(a.dones, 0);
    run_until(&a.dones);
    assert_int_equal(a.err, SL_ECANCELED);
    assert_int_equal(a.attempts, 1);
    assert_int_equal(a.log[0].http_status, 503);
    sl_call_free(a.call);

    /* inside on_retry */
    rec b = {0};
    b.cancel_in_retry = 1;
    start(c, req, p, &b);
    run_until(&b.dones);
    assert_int_equal(b.err, SL_ECANCELED);
    assert_int_equal(b.retries, 1);
    sl_call_free(b.call);

    /* freed inside on_retry */
    rec d = {0};
    d.free_in_retry = 1;
    start(c, req, p, &d);
    run_until(&d.dones);
    assert_int_equal(d.err, SL_ECANCELED);
    assert_null(d.call);

    /* freed from outside during the backoff */
    rec e = {0};
    start(c, req, p, &e);
    run_until(&e.retries);
    sl_call_free(e.call);
    assert_int_equal(e.dones, 1);
    assert_int_equal(e.err, SL_ECANCELED);
    expect_stats(p, 4, 4, 4);
    sl_request_free(req);
    sl_client_free(c);
    ss_free(ss);
    sl_policy_free(p);
}

static void test_client_free_with_waiting_calls(void **state)
{
    /* one client's calls hold and wait for the slots another client's call needs */
    static const ss_step stall[] = {SS_STEP_READ, SS_STEP_STALL};
    const char *r503 = resp(0, "503 Service Unavailable", "retry-after-ms: 60000\r\n", ERR_BODY);
    const char *ok = resp(1, "200 OK", "", JSON_OK);
    ss_step s503[] = STEPS_SEND(r503);
    ss_step sok[] = STEPS_SEND(ok);
    const ss_step *scripts[] = {s503, stall, sok};
    sl_policy_opts o;
    sl_policy_opts_init(&o);
    o.concurrency = 1;
    o.max_attempts = 2;
    o.backoff_base_ms = 1;
    sl_policy *p = policy_with(&o);
    ss_server *ss = serve_n(scripts, 3);
    sl_client *c1 = client_for(ss);
    sl_client *c2 = client_for(ss);
    sl_request *req = chat_request(0, "hi");
    rec a = {0}, b = {0}, d = {0}, e = {0};
    start(c1, req, p, &a); /* 503: backoff of a minute */
    run_until(&a.retries);
    start(c1, req, p, &b); /* stalls upstream, holding the slot */
    while (ss_nrequests(ss) < 2)
        uv_run(&loop, UV_RUN_ONCE);
    start(c1, req, p, &d); /* waits for the slot */
    start(c2, req, p, &e); /* waits behind it */
    sl_policy_stats st;
    sl_policy_get_stats(p, &st);
    assert_int_equal(st.waiting, 2);
    sl_client_free(c1);
    assert_int_equal(a.dones, 1);
    assert_int_equal(b.dones, 1);
    assert_int_equal(d.dones, 1);
    assert_int_equal(a.err, SL_ECANCELED);
    assert_int_equal(b.err, SL_ECANCELED);
    assert_int_equal(d.err, SL_ECANCELED);
    run_until(&e.dones);
    assert_int_equal(e.err, 0);
    assert_int_equal(e.attempts, 1);
    sl_call_free(a.call);
    sl_call_free(b.call);
    sl_call_free(d.call);
    sl_call_free(e.call);
    expect_stats(p, 4, 3, 1);
    sl_request_free(req);
    sl_client_free(c2);
    ss_free(ss);
    sl_policy_free(p);
}

/* ---- arguments ---------------------------------------------------------------------------- */

static void test_policy_arguments(void **state)
{
    sl_policy_opts o;
    sl_policy_opts_init(&o);
    assert_int_equal(o.max_attempts, 1);
    assert_int_equal(o.backoff_base_ms, 500);
    assert_int_equal(o.backoff_cap_ms, 30000);
    assert_int_equal(o.breaker_cooldown_ms, 10000);
    assert_int_equal(o.concurrency, 0);
    sl_policy *p = (sl_policy *)1;
    o.max_attempts = 0;
    assert_int_equal(sl_policy_new(&loop, &o, &p), SL_EINVAL);
    assert_null(p);
    o.max_attempts = 1;
    o.rpm = -1;
    assert_int_equal(sl_policy_new(&loop, &o, &p), SL_EINVAL);
    o.rpm = 0;

    /* a policy of another loop is refused, and no callback fires */
    uv_loop_t other;
    assert_int_equal(uv_loop_init(&other), 0);
    assert_int_equal(sl_policy_new(&other, &o, &p), 0);
    sl_client_opts co;
    sl_client_opts_init(&co);
    co.base_url = "http://127.0.0.1:9/v1";
    sl_client *c;
    assert_int_equal(sl_client_new(&loop, &co, &c), 0);
    sl_request *req = chat_request(1, "hi");
    rec x = {0};
    sl_call_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.on_done = on_done;
    opts.user = &x;
    opts.policy = p;
    sl_call *call = (sl_call *)1;
    assert_int_equal(sl_call_start(c, req, &opts, &call), SL_EINVAL);
    assert_null(call);
    sl_policy_free(p);
    assert_int_equal(uv_run(&other, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&other), 0);
    sl_policy_free(NULL);
    sl_request_free(req);
    sl_client_free(c);
    assert_int_equal(x.dones, 0);
}

int main(void)
{
    setenv("no_proxy", "*", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_retry_then_success, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attempts_exhausted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget_and_deadline_limit_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_continuation_every_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_continuation_passes_exact_suffix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_divergence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_continuation_tool_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_continuation_reasoning, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_rate_corrected_by_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provider_headers_hold_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_429_cools_down_everyone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_breaker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_breaker_trial_cancelled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_during_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_during_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_free_with_waiting_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
