/* attempt.c — one HTTP attempt: httpc + the OpenAI adapter (see attempt.h).
 *
 * Entry points (httpc callbacks and the deferred task) count themselves in depth, so
 * sl__attempt_free inside a callback only marks the attempt and the outermost entry
 * point releases it on its way out. */
#include "llm/attempt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "llm/openai.h"

#define MAX_ERROR_BODY   (1u << 20)
#define DEFAULT_MAX_BODY (8u << 20)

enum { MODE_NONE = 0, MODE_SSE, MODE_JSON, MODE_ERROR };

/* A delta held back while paused, with its strings copied into mem. */
typedef struct held {
    sl_delta d;
    char *mem;
} held;

struct sl_attempt {
    /* What every chunk touches comes first, in one cache line. */
    int depth;
    int mode;
    unsigned paused : 1;
    unsigned canceled : 1;
    unsigned freed : 1;
    unsigned finished : 1;  /* res holds the outcome */
    unsigned delivered : 1; /* on_done was called */
    int abort_err;          /* set when on_data decided to stop the transfer */
    sl_openai_parser *parser;
    size_t qlen;
    sl_attempt_delta_cb on_delta;
    void *user;
    const void *hint; /* sl__attempt_hint */
    /* the rest: */
    sl_httpc *http;
    sl_httpc_req *req;
    const sl_openai_http *hr; /* borrowed from the call */
    sl_openai_http own;       /* the header lines, when the client has none made */
    sl_openai_spares *spares; /* where the parser came from and goes back to */
    size_t max_body;
    sl_buf raw; /* non-streamed body or error body */
    int status;
    char request_id[128];
    held *q;
    size_t qhead, qcap;
    sl_attempt_result res;
    char *msg; /* res.message: made on error only */
    sl_httpc_task task;
    sl_attempt_done_cb on_done;
};

static void queue_clear(sl_attempt *a)
{
    for (size_t i = 0; i < a->qlen; i++)
        free(a->q[(a->qhead + i) % a->qcap].mem);
    a->qhead = 0;
    a->qlen = 0;
}

static void destroy(sl_attempt *a)
{
    queue_clear(a);
    free(a->q);
    sl__openai_parser_give(a->spares, a->parser);
    sl__openai_http_free(&a->own);
    sl__buf_free(&a->raw);
    free(a->msg);
    free(a);
}

static void leave(sl_attempt *a)
{
    if (--a->depth == 0 && a->freed)
        destroy(a);
}

static void set_error(sl_attempt *a, int err, const char *detail)
{
    a->res.error = err;
    sl_buf m;
    sl__buf_init(&m, 0);
    sl__buf_printf(&m, "POST %s: %s", a->hr->url, detail);
    if (m.len > 1023) { /* the length it always had */
        m.len = 1023;
        m.data[m.len] = '\0';
    }
    free(a->msg);
    a->msg = sl__buf_steal(&m);
    a->res.message = a->msg ? a->msg : sl_strerror(err);
}

static void deliver(sl_attempt *a, const sl_delta *d)
{
    if (!a->on_delta)
        return;
    a->depth++;
    a->on_delta(a, d, a->user);
    a->depth--; /* the entry point that called us releases, not this */
}

static int enqueue(sl_attempt *a, const sl_delta *d)
{
    if (a->qlen == a->qcap) {
        size_t cap = a->qcap ? a->qcap * 2 : 16;
        held *n = malloc(cap * sizeof *n);
        if (!n)
            return SL_ENOMEM;
        for (size_t i = 0; i < a->qlen; i++)
            n[i] = a->q[(a->qhead + i) % a->qcap];
        free(a->q);
        a->q = n;
        a->qcap = cap;
        a->qhead = 0;
    }
    size_t n = d->text.len + d->tool_id.len + d->tool_name.len;
    char *mem = malloc(n ? n : 1);
    if (!mem)
        return SL_ENOMEM;
    held *h = &a->q[(a->qhead + a->qlen) % a->qcap];
    h->d = *d;
    h->mem = mem;
    if (d->text.len)
        memcpy(mem, d->text.ptr, d->text.len);
    h->d.text.ptr = mem;
    if (d->tool_id.len)
        memcpy(mem + d->text.len, d->tool_id.ptr, d->tool_id.len);
    h->d.tool_id.ptr = mem + d->text.len;
    if (d->tool_name.len)
        memcpy(mem + d->text.len + d->tool_id.len, d->tool_name.ptr, d->tool_name.len);
    h->d.tool_name.ptr = mem + d->text.len + d->tool_id.len;
    a->qlen++;
    return 0;
}

/* The adapter's delta sink. Non-zero stops the parser. */
static int on_parsed(void *user, const sl_delta *d)
{
    sl_attempt *a = user;
    if (a->canceled || a->freed)
        return SL_ECANCELED;
    if (a->paused || a->qlen) {
        int rc = enqueue(a, d);
        if (rc) {
            set_error(a, rc, "out of memory");
            a->abort_err = rc;
        }
        return rc;
    }
    deliver(a, d);
    return a->canceled || a->freed ? SL_ECANCELED : 0;
}

static void maybe_done(sl_attempt *a)
{
    if (!a->finished || a->delivered || a->freed)
        return;
    if (!a->canceled && (a->paused || a->qlen))
        return; /* held deltas go first */
    a->delivered = 1;
    a->depth++;
    a->on_done(a, &a->res, a->user);
    a->depth--;
}

/* From the loop: deliver held deltas, then unpause the transfer or deliver on_done. */
static void on_task(sl_httpc_task *t)
{
    sl_attempt *a = SL_CONTAINER_OF(t, sl_attempt, task);
    a->depth++;
    while (a->qlen && !a->paused && !a->canceled && !a->freed) {
        held h = a->q[a->qhead];
        a->qhead = (a->qhead + 1) % a->qcap;
        a->qlen--;
        deliver(a, &h.d);
        free(h.mem);
    }
    if (!a->freed && !a->paused) {
        if (a->finished)
            maybe_done(a);
        else if (!a->qlen)
            sl__httpc_resume(a->req);
    }
    leave(a);
}

static int on_head(sl_httpc_req *r, const sl_httpc_head *h, void *user)
{
    sl_attempt *a = user;
    a->status = h->status;
    if (h->status < 200 || h->status > 299) {
        a->mode = MODE_ERROR;
        sl__buf_init(&a->raw, a->max_body < MAX_ERROR_BODY ? a->max_body : MAX_ERROR_BODY);
    } else if (!strncmp(h->content_type, "text/event-stream", 17) ||
               (a->hr->stream && !strstr(h->content_type, "json"))) {
        /* a streamed request gets SSE unless the answer says it is JSON (some servers
         * send event streams without, or with a wrong, content type) */
        a->mode = MODE_SSE;
    } else {
        a->mode = MODE_JSON;
        sl__buf_init(&a->raw, a->max_body);
    }
    return 0;
}

static int on_data(sl_httpc_req *r, const char *p, size_t n, void *user)
{
    sl_attempt *a = user;
    int rc = 0;
    a->depth++;
    if (a->mode == MODE_SSE) {
        /* the consumer's object is cold too: its first lines (where a call keeps what a
         * delta touches) are on their way while the parser works */
        const char *u = a->user;
        __builtin_prefetch(u);
        __builtin_prefetch(u + 64);
        __builtin_prefetch(u + 128);
        __builtin_prefetch(u + 192);
        if (a->hint)
            __builtin_prefetch(a->hint);
        rc = sl__openai_feed(a->parser, p, n);
        if (rc && !sl__openai_out(a->parser)->error)
            rc = SL_ECANCELED; /* stopped from a delta callback */
    } else if (a->mode == MODE_ERROR) {
        /* keep what fits: the provider's message is at the start */
        size_t room = a->raw.max - a->raw.len;
        sl__buf_append(&a->raw, p, n < room ? n : room);
    } else if (sl__buf_append(&a->raw, p, n) != 0) {
        char detail[96];
        snprintf(detail, sizeof detail, "response body over %zu bytes", a->raw.max);
        set_error(a, SL_ELIMIT, detail);
        rc = SL_ELIMIT;
    }
    if (rc && !a->abort_err)
        a->abort_err = rc;
    leave(a);
    return rc;
}

static void copy_head(sl_attempt *a)
{
    const sl_httpc_head *h = sl__httpc_head(a->req);
    sl_attempt_result *res = &a->res;
    res->http_status = h->status;
    res->retry_after_ms = h->retry_after_ms;
    res->ratelimit.remaining_requests = h->remaining_requests;
    res->ratelimit.remaining_tokens = h->remaining_tokens;
    res->ratelimit.reset_requests_ms = h->reset_requests_ms;
    res->ratelimit.reset_tokens_ms = h->reset_tokens_ms;
    res->first_byte_ms = h->first_byte_ms;
    size_t n = strnlen(h->request_id, sizeof a->request_id - 1); /* cut as snprintf would */
    memcpy(a->request_id, h->request_id, n);
    a->request_id[n] = '\0';
    res->request_id = a->request_id[0] ? a->request_id : NULL;
}

static void take_parser_error(sl_attempt *a, const sl_openai_out *o)
{
    set_error(a, o->error, o->message);
    if (o->error == SL_EHTTP) {
        a->res.error_body = o->error_body;
        if (o->error_status)
            a->res.http_status = o->error_status;
    }
}

static void take_success(sl_attempt *a, const sl_openai_out *o)
{
    a->res.error = 0;
    a->res.message = NULL;
    a->res.text = o->text;
    a->res.reasoning = o->reasoning;
    a->res.finish_reason = o->finish_reason;
    a->res.usage = o->usage;
    a->res.body = o->body;
}

static void on_http_done(sl_httpc_req *r, int err, const char *msg, void *user)
{
    sl_attempt *a = user;
    a->depth++;
    copy_head(a);
    const sl_openai_out *o = sl__openai_out(a->parser);
    if (a->canceled) {
        set_error(a, SL_ECANCELED, "cancelled");
    } else if (o->error) {
        take_parser_error(a, o);
    } else if (a->abort_err && a->res.error) {
        /* set by on_data or on_parsed (body over the cap, no memory) */
    } else if (err && !(a->mode == MODE_SSE && o->saw_done)) {
        set_error(a, err, msg);
    } else if (a->mode == MODE_ERROR) {
        char pm[400];
        char detail[480];
        if (sl__openai_error_message(a->raw.data ? a->raw.data : "", a->raw.len, pm, sizeof pm))
            snprintf(detail, sizeof detail, "HTTP %d: %s", a->status, pm);
        else
            snprintf(detail, sizeof detail, "HTTP %d", a->status);
        set_error(a, SL_EHTTP, detail);
        a->res.error_body = (sl_str){a->raw.data ? a->raw.data : "", a->raw.len};
    } else if (a->mode == MODE_JSON) {
        int rc = sl__openai_parse_body(a->parser, a->raw.data ? a->raw.data : "", a->raw.len);
        if (o->error)
            take_parser_error(a, o);
        else if (a->abort_err)
            ; /* res.error already set */
        else if (rc || a->canceled)
            set_error(a, SL_ECANCELED, "cancelled");
        else
            take_success(a, o);
    } else if (a->mode == MODE_SSE) {
        if (sl__openai_finish(a->parser))
            take_parser_error(a, o);
        else
            take_success(a, o);
    } else {
        set_error(a, SL_EPROTO, "no response");
    }
    if (a->res.error) {
        /* an error keeps nothing of a success */
        a->res.text = (sl_str){"", 0};
        a->res.reasoning = (sl_str){"", 0};
        a->res.finish_reason = NULL;
        a->res.body = (sl_str){"", 0};
    }
    a->finished = 1;
    if (!a->freed)
        maybe_done(a);
    leave(a);
}

int sl__attempt_start(const sl_attempt_env *env, const sl_openai_http *hr, const sl_attempt_opts *o,
                      sl_attempt **out)
{
    *out = NULL;
    if (!env || !env->http || !env->base_url || !hr || !hr->url || !o || !o->on_done)
        return SL_EINVAL;
    sl_attempt *a = calloc(1, sizeof *a);
    if (!a)
        return SL_ENOMEM;
    a->http = env->http;
    a->on_delta = o->on_delta;
    a->on_done = o->on_done;
    a->user = o->user;
    a->max_body = env->max_response_bytes ? env->max_response_bytes : DEFAULT_MAX_BODY;
    sl__buf_init(&a->raw, a->max_body);
    sl__httpc_task_init(&a->task, on_task);
    a->res.usage = (sl_usage){-1, -1, -1};
    a->res.retry_after_ms = -1;
    a->res.ratelimit = (sl_ratelimit_info){-1, -1, -1, -1};
    a->res.first_byte_ms = -1;
    a->res.text = a->res.reasoning = a->res.body = a->res.error_body = (sl_str){"", 0};
    a->hr = hr;
    const sl_httpc_headers *hs = env->headers[hr->stream ? 1 : 0];
    int rc = 0;
    if (!hs && (rc = sl__openai_headers(env->api_key, env->user_agent, hr->stream, a->own.headers,
                                        &a->own.nheaders))) {
        free(a);
        return rc;
    }
    a->spares = env->spares;
    a->parser = sl__openai_parser_take(a->spares, hr->kind, a->max_body, on_parsed, a);
    if (!a->parser) {
        destroy(a);
        return SL_ENOMEM;
    }
    sl_httpc_req_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.method = "POST";
    ro.url = hr->url;
    ro.header_set = hs;
    ro.headers = (const char *const *)a->own.headers;
    ro.nheaders = a->own.nheaders;
    ro.body = hr->body;
    ro.body_len = hr->body_len;
    ro.total_timeout_ms = o->total_timeout_ms;
    ro.on_head = on_head;
    ro.on_data = on_data;
    ro.on_done = on_http_done;
    ro.user = a;
    rc = sl__httpc_start(env->http, &ro, &a->req);
    if (rc) {
        destroy(a);
        return rc;
    }
    *out = a;
    return 0;
}

int sl__attempt_take_body(sl_attempt *a, sl_buf *dst)
{
    /* a success's body is always the parser's (streamed: written there; JSON: parsed
     * from a copy there) */
    if (!a->finished || a->res.error || !a->res.body.len)
        return 0;
    sl__openai_swap_body(a->parser, dst);
    a->res.body = (sl_str){"", 0};
    return 1;
}

void sl__attempt_hint(sl_attempt *a, const void *p)
{
    a->hint = p;
}

void sl__attempt_pause(sl_attempt *a)
{
    if (!a || a->paused || a->delivered || a->canceled || a->freed)
        return;
    a->paused = 1;
    if (!a->finished)
        sl__httpc_pause(a->req);
}

void sl__attempt_resume(sl_attempt *a)
{
    if (!a || !a->paused || a->delivered || a->freed)
        return;
    a->paused = 0;
    sl__httpc_defer(a->http, &a->task);
}

void sl__attempt_cancel(sl_attempt *a)
{
    if (!a || a->delivered || a->canceled || a->freed)
        return;
    a->canceled = 1;
    queue_clear(a);
    if (!a->finished) {
        sl__httpc_cancel(a->req); /* on_http_done follows from the loop */
        return;
    }
    /* the answer was complete but held back: it ends cancelled */
    set_error(a, SL_ECANCELED, "cancelled");
    a->res.text = a->res.reasoning = a->res.body = (sl_str){"", 0};
    a->res.finish_reason = NULL;
    sl__httpc_defer(a->http, &a->task);
}

void sl__attempt_free(sl_attempt *a)
{
    if (!a || a->freed)
        return;
    a->freed = 1;
    sl__httpc_undefer(&a->task);
    sl__httpc_req_free(a->req);
    a->req = NULL;
    if (a->depth == 0)
        destroy(a);
}
