/* call.c — the public sl_call: the stream contract over one or more attempts.
 *
 * The public call lives in the policy layer, not in llm/, because policies (retry,
 * rate limits, deadlines, breaker) wrap attempts: an sl_call owns its current attempt
 * (llm/attempt), accumulates the text it delivered, and builds the sl_result. Today a
 * call makes exactly one attempt; retries will start the next attempt from
 * on_attempt_done instead of finishing, and the delivered text is what a retried stream
 * is checked against.
 *
 * Contract (include/sluice/call.h): deltas, then exactly one on_done on every path;
 * never a callback from inside sl_call_start or sl_call_cancel; sl_call_free and
 * sl_client_free deliver on_done of a running call before they return. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "llm/request.h"
#include "policy/client.h"

struct sl_call {
    sl_client *c; /* NULL once done: the client may be gone */
    sl_link link; /* in c->calls while running */
    sl_request *req;
    sl_call_opts o;
    char *url; /* for messages */
    sl_attempt *att;
    int attempts;
    sl_buf text; /* delivered content of choice 0 */
    sl_buf reasoning;
    double t_start;
    double t_first_delta; /* -1 until the first delta */
    sl_result res;
    char *message;
    char *finish_reason;
    char *request_id;
    sl_buf body;
    sl_buf error_body;
    sl_httpc_task task; /* finishing from the loop when no attempt runs */
    int pending_err;
    unsigned done : 1;
    unsigned canceled : 1;
    unsigned paused : 1;
    unsigned free_pending : 1;
    int depth; /* > 0 while a user callback runs */
};

sl_call *sl__call_of(sl_link *l)
{
    return SL_CONTAINER_OF(l, sl_call, link);
}

const sl_result *sl__call_result(const sl_call *call)
{
    return call->done ? &call->res : NULL;
}

static void destroy(sl_call *call)
{
    sl__httpc_undefer(&call->task);
    sl__attempt_free(call->att);
    sl_request_free(call->req);
    free(call->url);
    sl__buf_free(&call->text);
    sl__buf_free(&call->reasoning);
    free(call->message);
    free(call->finish_reason);
    free(call->request_id);
    sl__buf_free(&call->body);
    sl__buf_free(&call->error_body);
    free(call);
}

static sl_str buf_str(const sl_buf *b)
{
    return (sl_str){b->data ? b->data : "", b->len};
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Deliver on_done once; the call leaves its client first. */
static void finish(sl_call *call)
{
    call->done = 1;
    if (call->c) {
        sl__httpc_undefer(&call->task);
        sl__list_remove(&call->link);
        call->c = NULL;
    }
    call->res.attempts = call->attempts;
    call->res.text = buf_str(&call->text);
    call->res.reasoning = buf_str(&call->reasoning);
    call->res.timings.ttft_ms = call->t_first_delta >= 0 ? call->t_first_delta - call->t_start : -1;
    call->res.timings.total_ms = sl__clock_ms() - call->t_start;
    call->depth++;
    call->o.on_done(call, &call->res, call->o.user);
    call->depth--;
    if (call->free_pending && call->depth == 0)
        destroy(call);
}

/* The outcome of the attempt becomes the call's result (copied: the attempt goes). */
static void take_attempt_result(sl_call *call, const sl_attempt_result *r)
{
    sl_result *res = &call->res;
    res->error = r->error;
    call->message = dup_or_null(r->message);
    res->message = r->error ? (call->message ? call->message : sl_strerror(r->error)) : NULL;
    res->http_status = r->http_status;
    sl__buf_reset(&call->error_body);
    sl__buf_append(&call->error_body, r->error_body.ptr, r->error_body.len);
    res->error_body = buf_str(&call->error_body);
    call->finish_reason = dup_or_null(r->finish_reason);
    res->finish_reason = call->finish_reason;
    res->usage = r->usage;
    res->timings.ttfb_ms = r->first_byte_ms >= 0 ? r->first_byte_ms - call->t_start : -1;
    sl__buf_reset(&call->body);
    if (sl__buf_append(&call->body, r->body.ptr, r->body.len) && !r->error) {
        res->error = SL_ENOMEM;
        res->message = sl_strerror(SL_ENOMEM);
    }
    res->body = buf_str(&call->body);
    call->request_id = dup_or_null(r->request_id);
    res->request_id = call->request_id;
    res->retry_after_ms = r->retry_after_ms;
    res->ratelimit = r->ratelimit;
}

static void on_attempt_delta(sl_attempt *a, const sl_delta *d, void *user)
{
    sl_call *call = user;
    if (call->done)
        return;
    if (d->choice == 0 && d->kind == SL_DELTA_CONTENT)
        sl__buf_append(&call->text, d->text.ptr, d->text.len);
    else if (d->choice == 0 && d->kind == SL_DELTA_REASONING)
        sl__buf_append(&call->reasoning, d->text.ptr, d->text.len);
    if (call->t_first_delta < 0)
        call->t_first_delta = sl__clock_ms();
    if (!call->o.on_delta)
        return;
    call->depth++;
    call->o.on_delta(call, d, call->o.user);
    call->depth--;
    if (call->free_pending && call->depth == 0)
        destroy(call); /* sl_call_free ran inside on_delta; on_done was delivered then */
}

static void on_attempt_done(sl_attempt *a, const sl_attempt_result *r, void *user)
{
    sl_call *call = user;
    take_attempt_result(call, r);
    /* A retry policy decides here whether to start another attempt. */
    sl__attempt_free(a); /* allowed inside its callback */
    call->att = NULL;
    finish(call);
}

static void set_own_error(sl_call *call, int err, const char *what)
{
    sl_buf m;
    sl__buf_init(&m, 0);
    sl__buf_printf(&m, "POST %s: %s", call->url, what);
    free(call->message);
    call->message = sl__buf_steal(&m);
    call->res.error = err;
    call->res.message = call->message ? call->message : sl_strerror(err);
    call->res.body = (sl_str){"", 0};
    call->res.finish_reason = NULL;
}

/* Deferred finish (cancel while no attempt runs, or an attempt that could not start
 * after the first one). */
static void on_task(sl_httpc_task *t)
{
    sl_call *call = SL_CONTAINER_OF(t, sl_call, task);
    if (call->done)
        return;
    set_own_error(call, call->pending_err, sl_strerror(call->pending_err));
    finish(call);
}

static int start_attempt(sl_call *call)
{
    sl_attempt_opts ao;
    memset(&ao, 0, sizeof ao);
    ao.total_timeout_ms = call->o.timeout_ms;
    ao.on_delta = on_attempt_delta;
    ao.on_done = on_attempt_done;
    ao.user = call;
    int rc = sl__attempt_start(&call->c->env, call->req, &ao, &call->att);
    if (rc)
        return rc;
    call->attempts++;
    if (call->paused)
        sl__attempt_pause(call->att);
    return 0;
}

int sl_call_start(sl_client *c, const sl_request *req, const sl_call_opts *o, sl_call **out)
{
    *out = NULL;
    if (!c || !req || !o || !o->on_done || c->freeing)
        return SL_EINVAL;
    /* Policies are not wired into calls yet: refuse rather than silently run a call
     * outside the limits it asked for. */
    if (o->policy)
        return SL_EINVAL;
    sl_call *call = calloc(1, sizeof *call);
    if (!call)
        return SL_ENOMEM;
    int rc = SL_ENOMEM;
    call->c = c;
    call->o = *o;
    sl__list_init(&call->link);
    sl__httpc_task_init(&call->task, on_task);
    sl__buf_init(&call->text, 0);
    sl__buf_init(&call->reasoning, 0);
    sl__buf_init(&call->body, 0);
    sl__buf_init(&call->error_body, 0);
    call->t_start = sl__clock_ms();
    call->t_first_delta = -1;
    call->res.usage = (sl_usage){-1, -1, -1};
    call->res.timings = (sl_timings){-1, -1, 0};
    call->res.retry_after_ms = -1;
    call->res.ratelimit = (sl_ratelimit_info){-1, -1, -1, -1};
    call->res.body = call->res.error_body = (sl_str){"", 0};
    call->req = sl__request_copy(req);
    sl_buf url;
    sl__buf_init(&url, 0);
    sl__buf_printf(&url, "%s%s", c->base_url, sl_request_endpoint(req));
    call->url = sl__buf_steal(&url);
    if (!call->req || !call->url)
        goto fail;
    rc = start_attempt(call);
    if (rc)
        goto fail;
    sl__list_push(&c->calls, &call->link);
    *out = call;
    return 0;
fail:
    destroy(call);
    return rc;
}

void sl_call_pause(sl_call *call)
{
    if (!call || call->done || call->paused)
        return;
    call->paused = 1;
    sl__attempt_pause(call->att);
}

void sl_call_resume(sl_call *call)
{
    if (!call || call->done || !call->paused)
        return;
    call->paused = 0;
    sl__attempt_resume(call->att);
}

void sl_call_cancel(sl_call *call)
{
    if (!call || call->done || call->canceled)
        return;
    call->canceled = 1;
    if (call->att) {
        sl__attempt_cancel(call->att); /* its on_done follows from the loop */
        return;
    }
    call->pending_err = SL_ECANCELED;
    sl__httpc_defer(call->c->http, &call->task);
}

void sl__call_abort(sl_call *call)
{
    if (call->done)
        return;
    call->canceled = 1;
    sl__attempt_free(call->att);
    call->att = NULL;
    set_own_error(call, SL_ECANCELED, "cancelled");
    finish(call);
}

void sl_call_free(sl_call *call)
{
    if (!call || call->free_pending)
        return;
    call->free_pending = 1;
    if (!call->done)
        sl__call_abort(call); /* on_done now; the memory goes when no callback runs */
    else if (call->depth == 0)
        destroy(call);
}

int sl_call_done(const sl_call *call)
{
    return call->done;
}

void *sl_call_user(const sl_call *call)
{
    return call->o.user;
}
