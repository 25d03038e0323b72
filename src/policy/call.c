/* call.c — the public sl_call: the stream contract over one or more attempts.
 *
 * The public call lives in the policy layer, not in llm/, because policies wrap
 * attempts: an sl_call owns its current attempt (llm/attempt), the text it delivered per
 * channel, and builds the sl_result. Without a policy it makes exactly one attempt. With
 * one (policy.h), each attempt goes through: deadline, circuit breaker, a concurrency
 * slot, a rate-limit reservation; then the attempt; then the slot is released, tokens
 * corrected, rate-limit headers observed, a 429 cools the rate limiter down, the breaker
 * records the outcome, and a retryable failure waits its backoff and starts over.
 *
 * Continuation: once deltas were delivered, a new attempt's deltas go through one
 * resume matcher per channel (content and reasoning per choice, arguments per tool
 * call): the replay of delivered text is dropped, the exact continuation passed on, and a
 * replay that differs ends the call with SL_EDIVERGED.
 *
 * Contract (include/sluice/call.h): deltas, then exactly one on_done on every path;
 * never a callback from inside sl_call_start or sl_call_cancel; sl_call_free and
 * sl_client_free deliver on_done of a running call before they return. To keep that
 * simple, every ending that is not an attempt's own end (breaker, deadline, cancel while
 * waiting, divergence) is deferred to the loop, and policy grants never run user code. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "llm/openai.h"
#include "llm/request.h"
#include "policy/client.h"
#include "policy/deadline.h"
#include "policy/policy.h"
#include "policy/resume.h"

#define DEFAULT_COMPLETION_ESTIMATE 256 /* tokens reserved for the answer without max_tokens */
#define MAX_CHANNELS                4096

/* What the call is doing (with a policy; without one only ATTEMPT and ENDING). */
enum {
    PH_IDLE = 0, /* between steps */
    PH_SLOT,     /* waiting for a concurrency slot */
    PH_RATE,     /* holding a slot, waiting for the rate limiter */
    PH_READY,    /* holding both, nothing started (its client is being freed) */
    PH_ATTEMPT,  /* an attempt runs */
    PH_BACKOFF,  /* waiting before the next attempt */
    PH_ENDING,   /* on_done is deferred (pending_err) */
    PH_DONE,
};

/* Delivered text of one channel, and its matcher while an attempt replays it. */
typedef struct channel {
    int kind, choice, tool; /* the key; tool is 0 unless kind is SL_DELTA_TOOL_CALL */
    sl_buf text;            /* delivered */
    char *name;             /* tool call: the function name delivered, NULL if none */
    int started;            /* a delta was delivered on it */
    int matching;           /* the current attempt replays it through m */
    sl_resume m;
} channel;

struct sl_call {
    /* What every delta touches comes first, together. */
    unsigned done : 1;
    unsigned free_pending : 1;
    unsigned has_slot : 1;
    unsigned has_ticket : 1;
    unsigned breaker_out : 1; /* allowed, outcome not recorded yet */
    unsigned waiting : 1;     /* counted in the policy's waiting */
    unsigned canceled : 1;
    unsigned paused : 1;
    int depth;       /* > 0 while a user callback runs */
    int pending_err; /* the call ends with this (and pending_msg), whatever the attempt */
    int track_all;   /* retries possible: keep every channel, not only choice 0's text */
    int delivered_any;
    channel *ch; /* sorted by key; ch_one until there is more than one */
    size_t nch, capch;
    double t_first_delta; /* -1 until the first delta */
    sl_call_opts o;
    channel ch_one; /* the usual call has one channel (choice 0's text): no array */
    /* the rest: */
    sl_client *c;      /* NULL once done: the client may be gone */
    sl_link link;      /* in c->calls while running */
    sl_openai_http hr; /* the request, built once for every attempt */
    char *url;         /* for messages, when it differs from hr.url (see sl_call_start) */
    sl_attempt *att;
    int attempts;
    int resuming; /* the current attempt replays delivered text */
    double t_start;
    double t_wait;    /* start of the waits before the current attempt */
    double t_attempt; /* start of the current attempt */
    sl_result res;
    char *message;
    const char *finish_reason; /* NULL, one of finish_reasons, or our own copy */
    char request_id[128];      /* the attempt's (it is cut to this size there) */
    sl_buf body;
    sl_buf error_body;
    sl_attempt_info log1; /* the attempt log while there was one attempt (the usual case) */
    sl_attempt_info *log; /* NULL, or SL_ATTEMPT_LOG_MAX entries once there were more */
    sl_httpc_task task;   /* finishing from the loop when no attempt runs */
    char *pending_msg;
    int phase;
    /* policy */
    sl_policy *p;
    sl_limiter_waiter slot_w;
    sl_ratelimit_waiter rate_w;
    long tokens; /* reserved per attempt */
    sl_deadline deadline;
    sl_retry_state rs;
    sl_policy_wake backoff_w;
    sl_policy_wake deadline_w;
    uint64_t trial; /* breaker trial token of the running attempt */
};

sl_call *sl__call_of(sl_link *l)
{
    return SL_CONTAINER_OF(l, sl_call, link);
}

const sl_result *sl__call_result(const sl_call *call)
{
    return call->done ? &call->res : NULL;
}

static void channels_free(sl_call *call)
{
    for (size_t i = 0; i < call->nch; i++) {
        sl__buf_free(&call->ch[i].text);
        sl__resume_free(&call->ch[i].m);
        free(call->ch[i].name);
    }
    if (call->ch != &call->ch_one)
        free(call->ch);
    call->ch = NULL;
    call->nch = call->capch = 0;
}

/* The finish reasons nearly every answer ends with: pointed to, not copied. */
static const char *const finish_reasons[] = {"stop", "length", "tool_calls", "content_filter",
                                             "function_call"};

static int is_shared_reason(const char *s)
{
    for (size_t i = 0; i < sizeof finish_reasons / sizeof finish_reasons[0]; i++)
        if (s == finish_reasons[i])
            return 1;
    return 0;
}

static void free_finish_reason(sl_call *call)
{
    if (!is_shared_reason(call->finish_reason))
        free((char *)call->finish_reason);
    call->finish_reason = NULL;
}

static void set_finish_reason(sl_call *call, const char *s)
{
    free_finish_reason(call);
    if (!s)
        return;
    for (size_t i = 0; i < sizeof finish_reasons / sizeof finish_reasons[0]; i++) {
        if (!strcmp(s, finish_reasons[i])) {
            call->finish_reason = finish_reasons[i];
            return;
        }
    }
    call->finish_reason = strdup(s);
}

static void destroy(sl_call *call)
{
    sl__httpc_undefer(&call->task);
    sl__attempt_free(call->att);
    sl__openai_http_free(&call->hr);
    free(call->url);
    channels_free(call);
    free(call->message);
    free_finish_reason(call);
    free(call->pending_msg);
    free(call->log);
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

/* ---- channels ------------------------------------------------------------------------ */

static int key_cmp(const channel *c, int kind, int choice, int tool)
{
    if (c->kind != kind)
        return c->kind < kind ? -1 : 1;
    if (c->choice != choice)
        return c->choice < choice ? -1 : 1;
    if (c->tool != tool)
        return c->tool < tool ? -1 : 1;
    return 0;
}

/* The channel of (kind, choice, tool); created if absent and create is set. NULL: absent,
 * or no memory / over MAX_CHANNELS (*err says which). Binary search: a provider can open
 * thousands of channels (choices x tool calls). */
static channel *channel_get(sl_call *call, int kind, int choice, int tool, int create, int *err)
{
    size_t lo = 0, hi = call->nch;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = key_cmp(&call->ch[mid], kind, choice, tool);
        if (c == 0)
            return &call->ch[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (!create)
        return NULL;
    if (call->nch >= MAX_CHANNELS) {
        *err = SL_ELIMIT;
        return NULL;
    }
    if (call->nch == call->capch) {
        size_t cap = call->capch < 4 ? 4 : call->capch * 2;
        channel *n = call->ch == &call->ch_one ? malloc(cap * sizeof *n)
                                               : realloc(call->ch, cap * sizeof *n);
        if (!n) {
            *err = SL_ENOMEM;
            return NULL;
        }
        if (call->ch == &call->ch_one)
            memcpy(n, &call->ch_one, sizeof *n);
        call->ch = n;
        call->capch = cap;
    }
    memmove(&call->ch[lo + 1], &call->ch[lo], (call->nch - lo) * sizeof *call->ch);
    call->nch++;
    channel *ch = &call->ch[lo];
    memset(ch, 0, sizeof *ch);
    ch->kind = kind;
    ch->choice = choice;
    ch->tool = tool;
    sl__buf_init(&ch->text, 0);
    return ch;
}

static sl_str channel_text(sl_call *call, int kind)
{
    int err = 0;
    channel *ch = channel_get(call, kind, 0, 0, 0, &err);
    return ch ? buf_str(&ch->text) : (sl_str){"", 0};
}

/* Before an attempt that follows delivered text: match every started channel. */
static int channels_begin_replay(sl_call *call)
{
    call->resuming = call->delivered_any;
    for (size_t i = 0; i < call->nch; i++) {
        channel *ch = &call->ch[i];
        sl__resume_free(&ch->m);
        ch->matching = 0;
        if (!call->resuming || !ch->started)
            continue;
        if (sl__resume_init(&ch->m, ch->text.data, ch->text.len))
            return SL_ENOMEM;
        ch->matching = 1;
    }
    return 0;
}

/* After a successful replaying attempt: -1 if every channel caught up, else the byte
 * where one stopped short or differed. */
static long channels_finish_replay(sl_call *call)
{
    if (!call->resuming)
        return -1;
    for (size_t i = 0; i < call->nch; i++) {
        channel *ch = &call->ch[i];
        if (ch->matching && sl__resume_finish(&ch->m))
            return (long)ch->m.diverged_at;
    }
    return -1;
}

/* ---- results ------------------------------------------------------------------------- */

/* Entry i of the attempt log, or NULL (past SL_ATTEMPT_LOG_MAX, or no memory). */
static sl_attempt_info *log_entry(sl_call *call, int i)
{
    if (i < 0 || i >= SL_ATTEMPT_LOG_MAX)
        return NULL;
    if (!call->log) {
        if (i == 0)
            return &call->log1;
        call->log = calloc(SL_ATTEMPT_LOG_MAX, sizeof *call->log);
        if (!call->log)
            return NULL;
        call->log[0] = call->log1;
    }
    return &call->log[i];
}

static void log_attempt(sl_call *call, int err, int status, double now)
{
    sl_attempt_info *a = log_entry(call, call->attempts - 1);
    if (!a)
        return;
    a->error = err;
    a->http_status = status;
    a->duration_ms = now - call->t_attempt;
    a->delay_ms = -1;
}

/* Deliver on_done once; the call leaves its client and its policy first. */
static void leave_policy(sl_call *call);

static void finish(sl_call *call)
{
    leave_policy(call);
    call->done = 1;
    call->phase = PH_DONE;
    if (call->c) {
        sl__httpc_undefer(&call->task);
        sl__list_remove(&call->link);
        call->c = NULL;
    }
    call->res.attempts = call->attempts;
    int kept = call->log ? SL_ATTEMPT_LOG_MAX : 1; /* 1: also when the array was not to be had */
    call->res.attempt_log_len = call->attempts < kept ? call->attempts : kept;
    call->res.attempt_log = !call->attempts ? NULL : call->log ? call->log : &call->log1;
    call->res.text = channel_text(call, SL_DELTA_CONTENT);
    call->res.reasoning = channel_text(call, SL_DELTA_REASONING);
    call->res.timings.ttft_ms = call->t_first_delta >= 0 ? call->t_first_delta - call->t_start : -1;
    call->res.timings.total_ms = sl__clock_ms() - call->t_start;
    call->depth++;
    call->o.on_done(call, &call->res, call->o.user);
    call->depth--;
    if (call->free_pending && call->depth == 0)
        destroy(call);
}

static void replace(char **slot, const char *s)
{
    free(*slot);
    *slot = dup_or_null(s);
}

/* The outcome of the attempt becomes the call's result (copied: the attempt goes). */
static void take_attempt_result(sl_call *call, sl_attempt *a, const sl_attempt_result *r)
{
    sl_result *res = &call->res;
    res->error = r->error;
    replace(&call->message, r->message);
    res->message = r->error ? (call->message ? call->message : sl_strerror(r->error)) : NULL;
    res->http_status = r->http_status;
    sl__buf_reset(&call->error_body);
    if (r->error_body.len) /* nothing to keep: no memory either */
        sl__buf_append(&call->error_body, r->error_body.ptr, r->error_body.len);
    res->error_body = buf_str(&call->error_body);
    set_finish_reason(call, r->finish_reason);
    res->finish_reason = call->finish_reason;
    res->usage = r->usage;
    res->timings.ttfb_ms = r->first_byte_ms >= 0 ? r->first_byte_ms - call->t_start : -1;
    sl__buf_reset(&call->body);
    /* the body is moved over when it can be (a success's), else copied */
    if (!sl__attempt_take_body(a, &call->body) &&
        (sl__buf_reserve(&call->body, r->body.len) ||
         sl__buf_append(&call->body, r->body.ptr, r->body.len)) &&
        !r->error) {
        res->error = SL_ENOMEM;
        res->message = sl_strerror(SL_ENOMEM);
    }
    res->body = buf_str(&call->body);
    /* the attempt cuts it to 127 bytes: it fits */
    size_t idn = r->request_id ? strnlen(r->request_id, sizeof call->request_id - 1) : 0;
    memcpy(call->request_id, r->request_id ? r->request_id : "", idn);
    call->request_id[idn] = '\0';
    res->request_id = r->request_id ? call->request_id : NULL;
    res->retry_after_ms = r->retry_after_ms;
    res->ratelimit = r->ratelimit;
}

static void set_own_error(sl_call *call, int err, const char *what)
{
    sl_buf m;
    sl__buf_init(&m, 0);
    sl__buf_printf(&m, "POST %s: %s", call->url ? call->url : call->hr.url, what);
    free(call->message);
    call->message = sl__buf_steal(&m);
    call->res.error = err;
    call->res.message = call->message ? call->message : sl_strerror(err);
    call->res.body = (sl_str){"", 0};
    call->res.finish_reason = NULL;
}

/* Decide how the call ends (first decision wins); returns 0 if one was already taken. */
static int set_pending(sl_call *call, int err, const char *what)
{
    if (call->pending_err)
        return 0;
    call->pending_err = err;
    free(call->pending_msg);
    call->pending_msg = strdup(what);
    return 1;
}

static void apply_pending(sl_call *call)
{
    set_own_error(call, call->pending_err,
                  call->pending_msg ? call->pending_msg : sl_strerror(call->pending_err));
}

/* Deferred finish: no attempt runs and the call ends with pending_err. */
static void on_task(sl_httpc_task *t)
{
    sl_call *call = SL_CONTAINER_OF(t, sl_call, task);
    if (call->done)
        return;
    apply_pending(call);
    finish(call);
}

/* End the call from the loop with (err, what), leaving every queue now. No attempt runs. */
static void end_soon(sl_call *call, int err, const char *what)
{
    set_pending(call, err, what);
    leave_policy(call);
    call->phase = PH_ENDING;
    sl__httpc_defer(call->c->http, &call->task);
}

static void deadline_message(sl_call *call, char *out, size_t cap)
{
    snprintf(out, cap, "deadline of %ld ms exceeded after %d attempt%s", call->p->o.deadline_ms,
             call->attempts, call->attempts == 1 ? "" : "s");
}

/* ---- the policy around each attempt ---------------------------------------------------- */

static void set_waiting(sl_call *call, int on)
{
    if (call->waiting == (unsigned)!!on)
        return;
    call->waiting = !!on;
    if (on)
        call->p->st.waiting++;
    else
        call->p->st.waiting--;
}

/* Give back whatever the call holds of its policy without an attempt outcome, and leave
 * every queue and timer. Idempotent. Releasing the slot last: it may start other calls. */
static void leave_policy(sl_call *call)
{
    sl_policy *p = call->p;
    if (!p)
        return;
    set_waiting(call, 0);
    sl__limiter_cancel(&p->lim, &call->slot_w);
    sl__policy_rate_cancel(p, &call->rate_w);
    sl__policy_wake_cancel(p, &call->backoff_w);
    sl__policy_wake_cancel(p, &call->deadline_w);
    if (call->breaker_out) {
        sl__breaker_abandon(&p->br, call->trial);
        call->breaker_out = 0;
    }
    if (call->has_ticket) {
        /* never sent: the tokens go back (the request of the minute does not) */
        sl__ratelimit_correct(&p->rl, sl__clock_ms(), &call->rate_w.ticket, 0);
        call->has_ticket = 0;
        sl__policy_rate_pump(p);
    }
    if (call->has_slot) {
        call->has_slot = 0;
        sl__limiter_release(&p->lim);
    }
}

static long usage_tokens(const sl_usage *u)
{
    if (u->total_tokens >= 0)
        return u->total_tokens;
    if (u->prompt_tokens >= 0 && u->completion_tokens >= 0)
        return u->prompt_tokens + u->completion_tokens;
    return -1;
}

/* An attempt ended with call->res (its outcome, err): settle it with the policy. */
static void settle_attempt(sl_call *call, int err, double now)
{
    sl_policy *p = call->p;
    const sl_result *r = &call->res;
    p->st.in_flight--;
    if (call->has_ticket) {
        long used = usage_tokens(&r->usage);
        if (used >= 0) /* else keep the estimate: the provider may have counted it */
            sl__ratelimit_correct(&p->rl, now, &call->rate_w.ticket, used);
        call->has_ticket = 0;
    }
    const sl_ratelimit_info *h = &r->ratelimit;
    if (h->remaining_requests >= 0 || h->remaining_tokens >= 0)
        sl__ratelimit_observe(&p->rl, now, h->remaining_requests, h->remaining_tokens,
                              h->reset_requests_ms, h->reset_tokens_ms);
    if (r->http_status == 429)
        sl__ratelimit_cooldown(&p->rl, now, r->retry_after_ms);
    if (call->breaker_out) {
        call->breaker_out = 0;
        if (err == SL_ECANCELED || call->pending_err == SL_ETIMEDOUT)
            sl__breaker_abandon(&p->br, call->trial); /* says nothing about the upstream */
        else
            sl__breaker_record(&p->br, now, !sl__retry_retryable(err, r->http_status));
    }
    sl__policy_rate_pump(p);
    if (call->has_slot) {
        call->has_slot = 0;
        sl__limiter_release(&p->lim);
    }
}

static void on_attempt_delta(sl_attempt *a, const sl_delta *d, void *user);
static void on_attempt_done(sl_attempt *a, const sl_attempt_result *r, void *user);

static int start_attempt(sl_call *call)
{
    int rc = channels_begin_replay(call);
    if (rc)
        return rc;
    sl_attempt_opts ao;
    memset(&ao, 0, sizeof ao);
    ao.total_timeout_ms = call->o.timeout_ms;
    ao.on_delta = on_attempt_delta;
    ao.on_done = on_attempt_done;
    ao.user = call;
    rc = sl__attempt_start(&call->c->env, &call->hr, &ao, &call->att);
    if (rc)
        return rc;
    double now = sl__clock_ms();
    call->attempts++;
    call->t_attempt = now;
    sl_attempt_info *li = log_entry(call, call->attempts - 1);
    if (li) {
        li->start_ms = now - call->t_start;
        li->wait_ms = call->p ? now - call->t_wait : 0;
        li->delay_ms = -1;
    }
    call->phase = PH_ATTEMPT;
    if (call->p) {
        call->p->st.attempts++;
        call->p->st.in_flight++;
        if (call->attempts == 1)
            sl__retry_start(&call->rs, now);
    }
    if (call->paused)
        sl__attempt_pause(call->att);
    return 0;
}

static int breaker_refuses(const sl_breaker *b, double now)
{
    if (b->state == SL_BREAKER_OPEN)
        return sl__breaker_retry_in(b, now) > 0;
    return b->state == SL_BREAKER_HALF_OPEN && b->trial;
}

static void breaker_reject(sl_call *call)
{
    char what[96];
    call->p->st.breaker_rejects++;
    snprintf(what, sizeof what, "circuit open after %d consecutive failures",
             call->p->o.breaker_threshold);
    end_soon(call, SL_EBUSY, what);
}

/* Slot and tokens held: claim the breaker and start the attempt. */
static void got_ticket(sl_call *call)
{
    sl_policy *p = call->p;
    call->has_ticket = 1;
    call->phase = PH_READY;
    if (call->c->freeing)
        return; /* sl_client_free is ending every call; it gives these back */
    if (!sl__breaker_allow(&p->br, sl__clock_ms())) {
        breaker_reject(call); /* another call took the half-open trial meanwhile */
        return;
    }
    call->trial = sl__breaker_trial_token(&p->br);
    call->breaker_out = 1;
    int rc = start_attempt(call);
    if (rc)
        end_soon(call, rc, sl_strerror(rc));
}

static void on_rate(sl_ratelimit_waiter *w, void *user)
{
    sl_call *call = user;
    set_waiting(call, 0);
    got_ticket(call);
}

static void got_slot(sl_call *call)
{
    call->has_slot = 1;
    call->phase = PH_RATE;
    if (sl__policy_rate_wait(call->p, &call->rate_w, call->tokens, on_rate, call)) {
        got_ticket(call);
        return;
    }
    call->p->st.rate_limited++;
    set_waiting(call, 1);
}

static void on_slot(sl_limiter_waiter *w, void *user)
{
    sl_call *call = user;
    set_waiting(call, 0);
    got_slot(call);
}

/* The steps before an attempt, as far as they go now: deadline, breaker, slot, rate. */
static void advance(sl_call *call)
{
    sl_policy *p = call->p;
    double now = sl__clock_ms();
    if (sl__deadline_expired(call->deadline, now)) {
        char what[128];
        deadline_message(call, what, sizeof what);
        end_soon(call, SL_ETIMEDOUT, what);
        return;
    }
    if (breaker_refuses(&p->br, now)) {
        sl__breaker_allow(&p->br, now); /* refuses too, and counts it */
        breaker_reject(call);
        return;
    }
    call->t_wait = now;
    call->phase = PH_SLOT;
    if (sl__limiter_acquire(&p->lim, &call->slot_w, on_slot, call)) {
        got_slot(call);
        return;
    }
    set_waiting(call, 1);
}

static void on_backoff(sl_policy_wake *w)
{
    sl_call *call = SL_CONTAINER_OF(w, sl_call, backoff_w);
    call->phase = PH_IDLE;
    advance(call);
}

static void on_deadline(sl_policy_wake *w)
{
    sl_call *call = SL_CONTAINER_OF(w, sl_call, deadline_w);
    if (call->done || call->pending_err)
        return;
    char what[128];
    deadline_message(call, what, sizeof what);
    if (call->att) {
        set_pending(call, SL_ETIMEDOUT, what);
        sl__attempt_cancel(call->att); /* its on_done ends the call */
        return;
    }
    end_soon(call, SL_ETIMEDOUT, what);
}

/* ---- deltas and attempt ends ------------------------------------------------------------ */

/* Stop the running attempt; the call ends with (err, what) from its on_done. */
static void fail_attempt(sl_call *call, int err, const char *what)
{
    if (set_pending(call, err, what))
        sl__attempt_cancel(call->att);
}

static void diverged(sl_call *call, size_t at)
{
    char what[128];
    snprintf(what, sizeof what, "retried stream diverged from the delivered text at byte %zu", at);
    fail_attempt(call, SL_EDIVERGED, what);
}

static void on_attempt_delta(sl_attempt *a, const sl_delta *d, void *user)
{
    sl_call *call = user;
    if (call->done || call->pending_err)
        return;
    sl_delta out = *d;
    int tool = d->kind == SL_DELTA_TOOL_CALL;
    if (call->track_all || (d->choice == 0 && !tool)) {
        int err = SL_ENOMEM;
        channel *ch = channel_get(call, d->kind, d->choice, tool ? d->tool_index : 0, 1, &err);
        if (!ch) {
            fail_attempt(call, err,
                         err == SL_ELIMIT ? "too many choices and tool calls" : "out of memory");
            return;
        }
        if (ch->matching) {
            if (tool && d->tool_name.len && ch->name &&
                (strlen(ch->name) != d->tool_name.len ||
                 memcmp(ch->name, d->tool_name.ptr, d->tool_name.len))) {
                diverged(call, 0); /* the retry calls another function */
                return;
            }
            const char *p;
            size_t n;
            sl_resume_status st = sl__resume_feed(&ch->m, d->text.ptr, d->text.len, &p, &n);
            if (st == SL_RESUME_SKIP)
                return;
            if (st == SL_RESUME_DIVERGED) {
                diverged(call, ch->m.diverged_at);
                return;
            }
            out.text = (sl_str){p, n};
            /* the consumer keeps the id and name it saw first */
            out.tool_id = out.tool_name = (sl_str){"", 0};
        }
        if (sl__buf_append(&ch->text, out.text.ptr, out.text.len)) {
            fail_attempt(call, SL_ENOMEM, "out of memory");
            return;
        }
        sl__attempt_hint(a, ch->text.data + ch->text.len);
        if (tool && !ch->name && out.tool_name.len) {
            ch->name = strndup(out.tool_name.ptr, out.tool_name.len);
            if (!ch->name) {
                fail_attempt(call, SL_ENOMEM, "out of memory");
                return;
            }
        }
        ch->started = 1;
    }
    call->delivered_any = 1;
    if (call->t_first_delta < 0)
        call->t_first_delta = sl__clock_ms();
    if (!call->o.on_delta)
        return;
    call->depth++;
    call->o.on_delta(call, &out, call->o.user);
    call->depth--;
    if (call->free_pending && call->depth == 0)
        destroy(call); /* sl_call_free ran inside on_delta; on_done was delivered then */
}

/* The last attempt's failure stands, and its message says why no retry followed. */
static void note_no_retry(sl_call *call)
{
    sl_buf m;
    sl__buf_init(&m, 0);
    if (sl__buf_printf(&m, "%s (not retried: the deadline of %ld ms would pass first)",
                       call->res.message ? call->res.message : sl_strerror(call->res.error),
                       call->p->o.deadline_ms)) {
        sl__buf_free(&m);
        return;
    }
    free(call->message); /* after the copy: res.message may be it */
    call->message = sl__buf_steal(&m);
    call->res.message = call->message;
}

/* After a failed attempt: 1 if another one follows after *delay (the backoff is armed). */
static int schedule_retry(sl_call *call, int err, double now, double *delay_out)
{
    sl_policy *p = call->p;
    if (!p || call->canceled || call->pending_err)
        return 0;
    double delay;
    if (!sl__retry_next(&p->retry, &call->rs, err, call->res.http_status, call->res.retry_after_ms,
                        now, &p->rng, &delay))
        return 0;
    /* a retry that could not start before the deadline is not worth waiting for */
    if (!sl__deadline_allows(call->deadline, now, delay)) {
        note_no_retry(call);
        return 0;
    }
    sl_attempt_info *li = log_entry(call, call->attempts - 1);
    if (li)
        li->delay_ms = delay;
    p->st.retries++;
    call->phase = PH_BACKOFF;
    sl__policy_wake_at(p, &call->backoff_w, now + delay);
    *delay_out = delay;
    return 1;
}

static void on_attempt_done(sl_attempt *a, const sl_attempt_result *r, void *user)
{
    sl_call *call = user;
    double now = sl__clock_ms();
    take_attempt_result(call, a, r);
    sl__attempt_free(a); /* allowed inside its callback */
    call->att = NULL;
    call->phase = PH_IDLE;
    int err = call->res.error;
    if (call->p)
        settle_attempt(call, err, now);
    long at;
    if (call->pending_err) {
        apply_pending(call);
    } else if (!err && (at = channels_finish_replay(call)) >= 0) {
        char what[128];
        snprintf(what, sizeof what, "retried stream diverged from the delivered text at byte %ld",
                 at);
        set_own_error(call, SL_EDIVERGED, what);
    }
    log_attempt(call, call->res.error, call->res.http_status, now);
    double delay;
    if (call->res.error && schedule_retry(call, call->res.error, now, &delay)) {
        if (!call->o.on_retry)
            return;
        call->depth++;
        call->o.on_retry(call, call->attempts, err, call->res.http_status, delay, call->o.user);
        call->depth--;
        if (call->free_pending && call->depth == 0)
            destroy(call); /* freed inside on_retry: on_done was delivered then */
        return;
    }
    finish(call);
}

/* ---- the public API ---------------------------------------------------------------------- */

int sl_call_start(sl_client *c, const sl_request *req, const sl_call_opts *o, sl_call **out)
{
    *out = NULL;
    if (!c || !req || !o || !o->on_done || c->freeing)
        return SL_EINVAL;
    sl_policy *p = o->policy;
    if (p && (p->freed || p->loop != c->loop))
        return SL_EINVAL;
    sl_call *call = calloc(1, sizeof *call);
    if (!call)
        return SL_ENOMEM;
    int rc = SL_ENOMEM;
    call->c = c;
    call->o = *o;
    call->p = p;
    sl__list_init(&call->link);
    call->ch = &call->ch_one;
    call->capch = 1;
    sl__httpc_task_init(&call->task, on_task);
    sl__policy_wake_init(&call->backoff_w, on_backoff);
    sl__policy_wake_init(&call->deadline_w, on_deadline);
    sl__buf_init(&call->body, 0);
    sl__buf_init(&call->error_body, 0);
    call->t_start = sl__clock_ms();
    call->t_first_delta = -1;
    call->res.usage = (sl_usage){-1, -1, -1};
    call->res.timings = (sl_timings){-1, -1, 0};
    call->res.retry_after_ms = -1;
    call->res.ratelimit = (sl_ratelimit_info){-1, -1, -1, -1};
    call->res.body = call->res.error_body = (sl_str){"", 0};
    /* Messages name base URL + endpoint as given; the request's URL is the same unless
     * the base URL ends with '/' (the request has one '/' there): then keep our own. */
    size_t bn = strlen(c->base_url);
    if (bn && c->base_url[bn - 1] == '/') {
        sl_buf url;
        sl__buf_init(&url, 0);
        if (sl__buf_append(&url, c->base_url, bn) ||
            sl__buf_append_str(&url, sl_request_endpoint(req))) {
            sl__buf_free(&url);
            goto fail;
        }
        call->url = sl__buf_steal(&url);
    }
    /* Every attempt sends the same bytes: build them now, which also refuses a request
     * that cannot be built here rather than from the loop. */
    rc = sl__openai_build_body(c->base_url, req, &call->hr);
    if (rc)
        goto fail;
    if (!p) {
        rc = start_attempt(call);
        if (rc)
            goto fail;
        sl__list_push(&c->calls, &call->link);
        *out = call;
        return 0;
    }
    call->track_all = p->o.max_attempts > 1;
    long max_tokens = sl_request_max_tokens(req);
    call->tokens = sl_request_estimate_tokens(req) +
                   (max_tokens > 0 ? max_tokens : DEFAULT_COMPLETION_ESTIMATE);
    call->deadline = sl__deadline_in(call->t_start, p->o.deadline_ms);
    sl__list_push(&c->calls, &call->link);
    p->st.calls++;
    if (call->deadline.set)
        sl__policy_wake_at(p, &call->deadline_w, call->deadline.end_ms);
    advance(call); /* ends, if it must, from the loop */
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
    if (call->phase == PH_ENDING)
        return; /* its on_done is on the way */
    end_soon(call, SL_ECANCELED, "cancelled");
}

void sl__call_abort(sl_call *call)
{
    if (call->done)
        return;
    call->canceled = 1;
    if (call->att) {
        sl__attempt_free(call->att);
        call->att = NULL;
        if (call->p) {
            call->p->st.in_flight--; /* the rest is given back without an outcome */
            call->has_ticket = 0;    /* sent: its tokens stay spent */
        }
    }
    set_pending(call, SL_ECANCELED, "cancelled");
    apply_pending(call);
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
