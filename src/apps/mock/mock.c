/* mock.c — sl_mock: the OpenAI-compatible upstream that misbehaves on demand.
 *
 * The server half of the mock, on the project's HTTP/1.1 server (io/httpd): routing,
 * the order of fault decisions, the timers that wake answers when they are due,
 * backpressure and client aborts. What is said comes from answer.c, how it misbehaves
 * from fault.c, when it is due from pace.c (an absolute schedule from the request's
 * arrival, so a busy loop delays chunks without stretching the pace).
 * It is the upstream of every benchmark, so the response path allocates at most one
 * job per delayed or streamed answer and formats every chunk into one reusable buffer;
 * a stream holds one uv_timer and never produces while the socket is not writable. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/mock.h>

#include "apps/mock/answer.h"
#include "apps/mock/fault.h"
#include "apps/mock/pace.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "io/httpd.h"

/* A garbage event: valid SSE framing, data that no JSON parser accepts. */
static const char garbage[] = "data: @@ garbage {\"not json\n\n";

enum { JOB_DELAYED = 1, JOB_STREAM = 2, JOB_STALL = 3 };

typedef struct job job;

struct sl_mock {
    uv_loop_t *loop;
    sl_mock_opts opts;
    sl_httpd *httpd;
    sl_mock_stats stats;    /* connections come from the server */
    uint64_t seq;           /* request numbers: ids */
    uint64_t decisions;     /* requests that reached the fail decision */
    uint64_t cut_decisions; /* streams that reached the cut-rate decision */
    sl_mock_window window;
    sl_mock_answer scratch; /* the request being answered; a stream takes it over */
    sl_buf out;             /* response bytes being formatted */
    sl_buf hdr;             /* extra response headers being formatted */
    sl_buf head;            /* the constant start of a stream's chunks */
    job *jobs;              /* answers in progress (delayed, streaming, stalled) */
};

/* An answer that outlives on_request. Freed in release() or the timer's close callback. */
struct job {
    job *prev, *next;
    sl_mock *m;
    sl_httpd_req *req; /* NULL once the server let go of it */
    int kind;
    uv_timer_t timer;
    int timer_init;
    int busy;          /* inside produce(): on_close only marks dead */
    int dead;          /* the peer went away during produce() */
    int blocked;       /* waiting for on_drain */
    sl_mock_pace pace; /* when the answer (JOB_DELAYED) or each chunk (JOB_STREAM) is due */
    char *headers;
    /* JOB_DELAYED: the whole response */
    int status;
    const char *ctype;
    char *body;
    size_t body_len;
    /* JOB_STREAM */
    sl_mock_answer a;
    sl_buf head;
    uint64_t rng;
    int whole; /* sent as one response (stream_is_whole) */
    int started, sent;
    int cut_after, garbage_after, garbage_done;
};

/* ---- jobs ---- */

static void on_job_timer_closed(uv_handle_t *h)
{
    job *j = h->data;
    sl__mock_answer_free(&j->a);
    sl__buf_free(&j->head);
    free(j->headers);
    free(j->body);
    free(j);
}

/* Unlink j and free it (after its timer closed). The response must have ended or the
 * request been let go of. */
static void release(job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else if (j->m->jobs == j)
        j->m->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    j->prev = j->next = NULL;
    if (j->req) {
        sl__httpd_req_set_user(j->req, NULL);
        sl__httpd_req_on_close(j->req, NULL);
        sl__httpd_req_on_drain(j->req, NULL);
        j->req = NULL;
    }
    if (j->timer_init) {
        uv_timer_stop(&j->timer);
        uv_close((uv_handle_t *)&j->timer, on_job_timer_closed);
    } else {
        j->timer.data = j;
        on_job_timer_closed((uv_handle_t *)&j->timer);
    }
}

static void on_req_close(sl_httpd_req *req, void *user)
{
    job *j = sl__httpd_req_user(req);
    if (!j)
        return;
    j->m->stats.client_aborts++;
    j->req = NULL; /* gone: never touch it again */
    if (j->busy) {
        j->dead = 1;
        return;
    }
    release(j);
}

static void produce(job *j);

static void on_req_drain(sl_httpd_req *req, void *user)
{
    job *j = sl__httpd_req_user(req);
    if (j && j->blocked) {
        j->blocked = 0;
        produce(j);
    }
}

static job *job_new(sl_mock *m, sl_httpd_req *req, int kind, const char *headers)
{
    job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->headers = strdup(headers ? headers : "");
    if (!j->headers) {
        free(j);
        return NULL;
    }
    j->m = m;
    j->req = req;
    j->kind = kind;
    sl__mock_answer_init(&j->a);
    sl__buf_init(&j->head, 0);
    j->next = m->jobs;
    if (m->jobs)
        m->jobs->prev = j;
    m->jobs = j;
    sl__httpd_req_set_user(req, j);
    sl__httpd_req_on_close(req, on_req_close);
    sl__httpd_req_on_drain(req, on_req_drain);
    return j;
}

static void on_job_timer(uv_timer_t *t);

/* Wake j up in wait_ms (from sl__mock_pace_due). */
static int job_arm(job *j, uint64_t wait_ms)
{
    if (!j->timer_init) {
        if (uv_timer_init(j->m->loop, &j->timer))
            return SL_ENOMEM;
        j->timer.data = j;
        j->timer_init = 1;
    }
    /* A timer counts from the loop's cached time, which is as old as the current pass:
     * under load that is milliseconds, and the wake-up would come that much early. */
    uv_update_time(j->m->loop);
    return uv_timer_start(&j->timer, on_job_timer, wait_ms, 0) ? SL_EINVAL : 0;
}

/* ---- streams ---- */

/* Close the connection without ending the response, and let the job go. */
static void cut(job *j)
{
    sl_httpd_req *req = j->req;
    sl__httpd_req_on_close(req, NULL);
    j->req = NULL;
    sl__httpd_abort(req);
    release(j);
}

/* Write (p, n) as one HTTP chunk. 0, or -1 when the stream is over (j released). */
static int stream_write(job *j, const char *p, size_t n)
{
    int rc = sl__httpd_write(j->req, p, n);
    if (j->dead) {
        release(j);
        return -1;
    }
    if (rc) { /* the connection is gone but on_close has not come: let go now */
        j->m->stats.client_aborts++;
        cut(j);
        return -1;
    }
    return 0;
}

/* Write what produce() has batched in m->out. 0, or -1 when the stream is over. */
static int flush(job *j)
{
    sl_buf *o = &j->m->out;
    if (o->len == 0)
        return 0;
    int rc = stream_write(j, o->data, o->len);
    sl__buf_reset(o);
    return rc;
}

/* Send what is due: the chunks whose time has come (j->pace), the garbage event, the cut
 * or the end, then sleep until the next chunk is due. Chunks due at the same moment
 * (interval 0, a loop that fell behind, a catch-up after a drain) go out as one write of
 * at most about BATCH bytes; a timed stream on time writes one chunk per wake-up. Stops
 * while the connection is not writable and resumes from on_drain. */
#define BATCH (64u << 10)

static void produce(job *j)
{
    sl_mock *m = j->m;
    sl_buf *o = &m->out;
    sl__buf_reset(o);
    uint64_t wait_ms;
    int allowed = sl__mock_pace_due(&j->pace, sl__clock_ms(), &wait_ms);
    j->busy = 1;
    for (;;) {
        if (!j->garbage_done && j->sent == j->garbage_after) {
            j->garbage_done = 1;
            m->stats.faults++;
            if (sl__buf_append(o, garbage, sizeof garbage - 1))
                sl__log(SL_LOG_ERROR, "mock: out of memory formatting garbage");
        }
        if (j->sent == j->cut_after) {
            m->stats.faults++;
            if (flush(j))
                return;
            cut(j);
            return;
        }
        if (j->sent == j->a.n) {
            if (j->a.include_usage)
                sl__mock_usage_chunk(o, &j->a, j->head.data, j->head.len);
            sl__buf_append_str(o, "data: [DONE]\n\n");
            if (flush(j))
                return;
            sl_httpd_req *req = j->req;
            sl__httpd_req_on_close(req, NULL);
            j->req = NULL;
            sl__httpd_end(req);
            release(j);
            return;
        }
        if (j->sent >= allowed) {
            if (flush(j))
                return;
            if (job_arm(j, wait_ms))
                sl__log(SL_LOG_ERROR, "mock: cannot start a timer");
            break;
        }
        if (o->len >= BATCH && flush(j))
            return;
        if (!sl__httpd_writable(j->req)) {
            if (flush(j))
                return;
            j->blocked = 1;
            break;
        }
        if (sl__mock_chunk(o, &j->a, j->head.data, j->head.len, j->sent, &j->rng)) {
            sl__log(SL_LOG_ERROR, "mock: out of memory formatting a chunk");
            cut(j); /* rather than send a torn chunk */
            return;
        }
        j->sent++;
    }
    j->busy = 0;
}

/* A stream due all at once with no fault inside it (interval 0, not too long) is sent as
 * one response with a Content-Length: the same SSE bytes in one write instead of three
 * (head, chunks, terminating chunk), which is what keeps the mock's streams close to
 * nginx serving a static file. */
#define WHOLE_MAX_CHUNKS 256

static int stream_is_whole(const sl_mock_answer *a, const sl_mock_opts *o)
{
    return o->interval_ms <= 0 && a->n <= WHOLE_MAX_CHUNKS &&
           (o->cut_after < 0 || o->cut_after > a->n) &&
           (o->garbage_after < 0 || o->garbage_after > a->n);
}

/* Format every event of answer a into out. 0 or SL_ENOMEM. */
static int stream_format_whole(const sl_mock_answer *a, const char *head, size_t head_len,
                               sl_buf *out)
{
    uint64_t rng = a->words;
    int rc = 0;
    for (int i = 0; i < a->n && !rc; i++)
        rc = sl__mock_chunk(out, a, head, head_len, i, &rng);
    if (!rc && a->include_usage)
        rc = sl__mock_usage_chunk(out, a, head, head_len);
    if (!rc)
        rc = sl__buf_append_str(out, "data: [DONE]\n\n");
    return rc;
}

static void stream_begin(job *j)
{
    j->started = 1;
    if (j->whole) {
        sl_mock *m = j->m;
        sl_httpd_req *req = j->req;
        sl__httpd_req_on_close(req, NULL);
        j->req = NULL;
        sl__buf_reset(&m->out);
        if (stream_format_whole(&j->a, j->head.data, j->head.len, &m->out))
            sl__httpd_abort(req);
        else
            sl__httpd_respond(req, 200, "text/event-stream", j->headers, m->out.data, m->out.len);
        release(j);
        return;
    }
    if (sl__httpd_start(j->req, 200, "text/event-stream", j->headers)) {
        j->m->stats.client_aborts++;
        cut(j);
        return;
    }
    produce(j);
}

static void on_job_timer(uv_timer_t *t)
{
    job *j = t->data;
    if (j->kind == JOB_STREAM && j->started) {
        produce(j); /* sends what is due, sleeps again */
        return;
    }
    uint64_t wait_ms;
    if (sl__mock_pace_due(&j->pace, sl__clock_ms(), &wait_ms) == 0) {
        /* woke up early (the loop's clock is coarser than ours): not yet */
        if (job_arm(j, wait_ms))
            sl__log(SL_LOG_ERROR, "mock: cannot start a timer");
        return;
    }
    if (j->kind == JOB_DELAYED) {
        sl_httpd_req *req = j->req;
        sl__httpd_req_on_close(req, NULL);
        j->req = NULL;
        sl__httpd_respond(req, j->status, j->ctype, j->headers, j->body, j->body_len);
        release(j);
    } else {
        stream_begin(j);
    }
}

/* ---- answering ---- */

/* Start hdr with this request's x-request-id. */
static void headers_begin(sl_mock *m, uint64_t seq)
{
    sl__buf_reset(&m->hdr);
    sl__buf_printf(&m->hdr, "x-request-id: req-mock-%llu\r\n", (unsigned long long)seq);
}

static void respond_error(sl_mock *m, sl_httpd_req *req, int status, const char *type,
                          const char *param, const char *code, const char *message)
{
    sl__buf_reset(&m->out);
    if (sl__mock_error_body(&m->out, message, type, param, code))
        sl__buf_reset(&m->out);
    sl__httpd_respond(req, status, "application/json", m->hdr.data, m->out.data, m->out.len);
}

/* Answer with the body in m->out delay_ms after the request arrived at t0_ms (now, if
 * that time has come). */
static void respond_later(sl_mock *m, sl_httpd_req *req, double t0_ms, double delay_ms)
{
    sl_mock_pace pace = {.t0_ms = t0_ms, .ttft_ms = delay_ms, .n = 1};
    uint64_t wait_ms;
    if (delay_ms <= 0 || sl__mock_pace_due(&pace, sl__clock_ms(), &wait_ms)) {
        sl__httpd_respond(req, 200, "application/json", m->hdr.data, m->out.data, m->out.len);
        return;
    }
    job *j = job_new(m, req, JOB_DELAYED, m->hdr.data);
    if (j) {
        j->pace = pace;
        j->status = 200;
        j->ctype = "application/json";
        j->body_len = m->out.len;
        j->body = sl__buf_steal(&m->out);
        if (j->body && job_arm(j, wait_ms) == 0)
            return;
        release(j);
    }
    respond_error(m, req, 500, "server_error", NULL, NULL, "mock: out of memory");
}

static int ends_with(sl_str s, const char *suffix)
{
    size_t n = strlen(suffix);
    return s.len >= n && !memcmp(s.ptr + s.len - n, suffix, n);
}

static int str_is(sl_str s, const char *lit)
{
    return s.len == strlen(lit) && !memcmp(s.ptr, lit, s.len);
}

enum { R_NONE, R_CHAT, R_TEXT, R_EMBED, R_MODELS };

static void on_stats(sl_mock *m, sl_httpd_req *req)
{
    sl_mock_stats s;
    sl_mock_get_stats(m, &s);
    sl__buf_reset(&m->out);
    sl__buf_printf(&m->out,
                   "{\"connections\":%llu,\"requests\":%llu,\"streams\":%llu,\"faults\":%llu,"
                   "\"client_aborts\":%llu}",
                   (unsigned long long)s.connections, (unsigned long long)s.requests,
                   (unsigned long long)s.streams, (unsigned long long)s.faults,
                   (unsigned long long)s.client_aborts);
    sl__httpd_respond(req, 200, "application/json", m->hdr.data, m->out.data, m->out.len);
}

/* The options of this request: the mock's, then its x-mock header. 0 or 400 sent. */
static int request_opts(sl_mock *m, sl_httpd_req *req, sl_mock_opts *o, char *err, size_t n)
{
    *o = m->opts;
    sl_str x = sl__httpd_req_header(req, "x-mock");
    if (!x.ptr)
        return 0;
    return sl__mock_xmock_parse(o, x.ptr, x.len, err, n);
}

static void answer_stream(sl_mock *m, sl_httpd_req *req, const sl_mock_opts *o, uint64_t seq,
                          double t0_ms)
{
    sl__buf_append_str(&m->hdr, "Cache-Control: no-cache\r\n");
    char id[48];
    snprintf(id, sizeof id, "%s-mock-%llu", m->scratch.kind == SL_MOCK_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)seq);
    int whole = stream_is_whole(&m->scratch, o);
    if (whole && o->ttft_ms <= 0) {
        /* the benchmark path: no job, no timer, one write */
        m->stats.streams++;
        sl__buf_reset(&m->head);
        sl__buf_reset(&m->out);
        if (sl__mock_chunk_head(&m->head, &m->scratch, id, (long long)sl__clock_unix()) ||
            stream_format_whole(&m->scratch, m->head.data, m->head.len, &m->out)) {
            respond_error(m, req, 500, "server_error", NULL, NULL, "mock: out of memory");
            return;
        }
        sl__httpd_respond(req, 200, "text/event-stream", m->hdr.data, m->out.data, m->out.len);
        return;
    }
    job *j = job_new(m, req, JOB_STREAM, m->hdr.data);
    if (!j) {
        respond_error(m, req, 500, "server_error", NULL, NULL, "mock: out of memory");
        return;
    }
    m->stats.streams++;
    /* the stream takes the parsed answer over; the mock gets a fresh scratch */
    sl__mock_answer_free(&j->a);
    j->a = m->scratch;
    sl__mock_answer_init(&m->scratch);
    j->whole = whole;
    if (sl__mock_chunk_head(&j->head, &j->a, id, (long long)sl__clock_unix())) {
        release(j);
        respond_error(m, req, 500, "server_error", NULL, NULL, "mock: out of memory");
        return;
    }
    j->rng = j->a.words;
    j->pace = (sl_mock_pace){
        .t0_ms = t0_ms, .ttft_ms = o->ttft_ms, .interval_ms = o->interval_ms, .n = j->a.n};
    j->cut_after = o->cut_after;
    j->garbage_after = o->garbage_after;
    uint64_t wait_ms;
    if (sl__mock_pace_due(&j->pace, sl__clock_ms(), &wait_ms) == 0) {
        if (job_arm(j, wait_ms) == 0)
            return;
        release(j);
        respond_error(m, req, 500, "server_error", NULL, NULL, "mock: cannot start a timer");
        return;
    }
    stream_begin(j);
}

static void on_request(sl_httpd_req *req, void *user)
{
    sl_mock *m = user;
    double t0_ms = sl__clock_ms(); /* the schedule of a timed answer counts from here */
    sl_str method = sl__httpd_req_method(req), path = sl__httpd_req_path(req);
    int get = str_is(method, "GET"), post = str_is(method, "POST");
    uint64_t seq = ++m->seq;
    headers_begin(m, seq);

    if (str_is(path, "/health") || str_is(path, "/stats")) {
        if (!get) {
            sl__buf_append_str(&m->hdr, "Allow: GET\r\n");
            respond_error(m, req, 405, "invalid_request_error", NULL, NULL,
                          "method not allowed (use GET)");
        } else if (path.ptr[1] == 'h') {
            sl__httpd_respond(req, 200, "text/plain", m->hdr.data, "ok", 2);
        } else {
            on_stats(m, req);
        }
        return;
    }
    m->stats.requests++;

    int route = R_NONE;
    if (ends_with(path, "/chat/completions"))
        route = R_CHAT;
    else if (ends_with(path, "/completions"))
        route = R_TEXT;
    else if (ends_with(path, "/embeddings"))
        route = R_EMBED;
    else if (ends_with(path, "/models"))
        route = R_MODELS;
    char msg[300];
    if (route == R_NONE) {
        snprintf(msg, sizeof msg, "not found: %.*s %.*s", (int)(method.len > 16 ? 16 : method.len),
                 method.ptr, (int)(path.len > 200 ? 200 : path.len), path.ptr);
        respond_error(m, req, 404, "invalid_request_error", NULL, "not_found", msg);
        return;
    }
    if (route == R_MODELS ? !get : !post) {
        sl__buf_append_str(&m->hdr, route == R_MODELS ? "Allow: GET\r\n" : "Allow: POST\r\n");
        respond_error(m, req, 405, "invalid_request_error", NULL, NULL,
                      route == R_MODELS ? "method not allowed (use GET)"
                                        : "method not allowed (use POST)");
        return;
    }

    sl_mock_opts o;
    if (request_opts(m, req, &o, msg, sizeof msg)) {
        respond_error(m, req, 400, "invalid_request_error", "x-mock", NULL, msg);
        return;
    }
    if (o.rpm > 0) {
        sl_mock_rl rl;
        sl__mock_window_take(&m->window, o.rpm, (double)uv_now(m->loop), &rl);
        sl__mock_ratelimit_headers(&m->hdr, &rl);
        if (!rl.allowed) {
            m->stats.faults++;
            sl__mock_retry_headers(&m->hdr, rl.reset_ms);
            snprintf(msg, sizeof msg, "Rate limit reached for requests: limit %ld per minute",
                     rl.limit);
            respond_error(m, req, 429, "requests", NULL, "rate_limit_exceeded", msg);
            return;
        }
    }
    if (route == R_MODELS) {
        sl__buf_reset(&m->out);
        sl__mock_models(&m->out);
        sl__httpd_respond(req, 200, "application/json", m->hdr.data, m->out.data, m->out.len);
        return;
    }

    sl_str body = sl__httpd_req_body(req);
    sl_mock_err e;
    int rc;
    sl__buf_reset(&m->out);
    if (route == R_EMBED)
        rc = sl__mock_embeddings(&m->out, body.ptr ? body.ptr : "", body.len, o.seed, &e);
    else
        rc = sl__mock_answer_parse(&m->scratch, route == R_CHAT ? SL_MOCK_CHAT : SL_MOCK_TEXT,
                                   body.ptr ? body.ptr : "", body.len, o.seed, o.chunks, &e);
    if (rc) {
        respond_error(m, req, e.status ? e.status : 500,
                      e.status == 400 ? "invalid_request_error" : "server_error", e.param, NULL,
                      e.message);
        return;
    }
    if (sl__mock_should_fail(o.seed, m->decisions++, o.fail_rate)) {
        m->stats.faults++;
        if (o.fail_status == 429) {
            sl__mock_retry_headers(&m->hdr, o.retry_after_ms);
            respond_error(m, req, 429, "requests", NULL, "rate_limit_exceeded",
                          "mock upstream injected failure");
        } else {
            respond_error(m, req, o.fail_status,
                          o.fail_status >= 500 ? "server_error" : "invalid_request_error", NULL,
                          NULL, "mock upstream injected failure");
        }
        return;
    }
    if (o.stall) {
        m->stats.faults++;
        if (!job_new(m, req, JOB_STALL, NULL))
            respond_error(m, req, 500, "server_error", NULL, NULL, "mock: out of memory");
        return;
    }
    if (route == R_EMBED) {
        respond_later(m, req, t0_ms, o.ttft_ms);
        return;
    }
    if (m->scratch.stream) {
        /* cut-rate: only that share of streams is cut (a retried stream can get through). */
        if (o.cut_after >= 0 && o.cut_rate < 1 &&
            !sl__mock_should_fail(o.seed ^ 0x9e3779b97f4a7c15ull, m->cut_decisions++, o.cut_rate))
            o.cut_after = -1;
        answer_stream(m, req, &o, seq, t0_ms);
        return;
    }
    char id[48];
    snprintf(id, sizeof id, "%s-mock-%llu", route == R_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)seq);
    if (sl__mock_completion(&m->out, &m->scratch, id, (long long)sl__clock_unix())) {
        respond_error(m, req, 500, "server_error", NULL, NULL, "mock: out of memory");
        return;
    }
    /* A whole answer arrives when its generation would have finished: the time a stream of
     * the same answer takes (as the peer kit's node mock does). */
    int n = m->scratch.n > 0 ? m->scratch.n : 1;
    respond_later(m, req, t0_ms, o.ttft_ms + (n - 1) * o.interval_ms);
}

/* Slow reader: throttle the body before it is read, so the x-mock key works too. */
static int on_headers(sl_httpd_req *req, void *user)
{
    sl_mock *m = user;
    sl_mock_opts o;
    char err[8];
    if (request_opts(m, req, &o, err, sizeof err))
        o = m->opts; /* the bad header is answered with 400 in on_request */
    if (o.slow_read_ms > 0)
        sl__httpd_req_throttle(req, (long)ceil(o.slow_read_ms));
    return 0;
}

/* ---- public API ---- */

int sl_mock_new(uv_loop_t *loop, const sl_mock_opts *o, const char *host, int port, sl_mock **out)
{
    if (!loop || !out || port < 0 || port > 65535)
        return SL_EINVAL;
    *out = NULL;
    sl_mock *m = calloc(1, sizeof *m);
    if (!m)
        return SL_ENOMEM;
    m->loop = loop;
    if (o)
        m->opts = *o;
    else
        sl_mock_opts_init(&m->opts);
    if (m->opts.chunks < 1 || m->opts.chunks > SL_MOCK_MAX_CHUNKS || m->opts.fail_rate < 0 ||
        m->opts.fail_rate > 1 || m->opts.ttft_ms < 0 || m->opts.interval_ms < 0 ||
        m->opts.rpm < 0 || m->opts.max_body < 1 || m->opts.max_body > SL_MOCK_MAX_BODY) {
        free(m);
        return SL_EINVAL;
    }
    sl__mock_answer_init(&m->scratch);
    sl__buf_init(&m->out, 0);
    sl__buf_init(&m->hdr, 0);
    sl__buf_init(&m->head, 0);
    sl_httpd_limits lim;
    sl__httpd_limits_init(&lim);
    lim.max_body = m->opts.max_body;
    sl_httpd_handlers h = {.on_request = on_request, .on_headers = on_headers, .user = m};
    int rc = sl__httpd_new(loop, &lim, &h, &m->httpd);
    if (rc)
        goto fail;
    rc = sl__httpd_listen(m->httpd, host ? host : "127.0.0.1", port, 0);
    if (rc)
        goto fail;
    *out = m;
    return 0;
fail:
    if (m->httpd)
        sl__httpd_free(m->httpd);
    sl__mock_answer_free(&m->scratch);
    free(m);
    return rc;
}

int sl_mock_port(const sl_mock *m)
{
    return sl__httpd_port(m->httpd);
}

void sl_mock_get_stats(const sl_mock *m, sl_mock_stats *s)
{
    *s = m->stats;
    s->connections = sl__httpd_accepted(m->httpd);
}

void sl_mock_free(sl_mock *m)
{
    if (!m)
        return;
    while (m->jobs)
        release(m->jobs); /* lets go of each request: the server closes them */
    sl__httpd_free(m->httpd);
    sl__mock_answer_free(&m->scratch);
    sl__buf_free(&m->out);
    sl__buf_free(&m->hdr);
    sl__buf_free(&m->head);
    free(m);
}
