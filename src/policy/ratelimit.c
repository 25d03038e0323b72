/* ratelimit.c — RPM/TPM token buckets, provider feedback, 429 cooldown, FIFO queue.
 *
 * Pure policy (see ratelimit.h): the caller passes "now" and owns every timer. Levels
 * are doubles; a small tolerance absorbs rounding so a wait computed here is always
 * enough when it has passed. */
#include "policy/ratelimit.h"

#include <stddef.h>

#define EPS 1e-6 /* units: a level this close to the need counts as enough */

static void bucket_init(sl_ratelimit_bucket *b, long limit, double now_ms)
{
    b->limit = limit > 0 ? (double)limit : 0;
    b->level = b->limit;
    b->last_ms = now_ms;
    b->block_until = now_ms;
}

static void bucket_refill(sl_ratelimit_bucket *b, double now_ms)
{
    if (now_ms <= b->last_ms)
        return;
    if (b->limit > 0) {
        /* multiply before dividing: rpm=60 over 1000 ms gives exactly 1 */
        b->level += (now_ms - b->last_ms) * b->limit / 60000.0;
        if (b->level > b->limit)
            b->level = b->limit;
    }
    b->last_ms = now_ms;
}

/* Units this bucket needs to grant `units`: an oversize request waits for a full bucket. */
static double bucket_need(const sl_ratelimit_bucket *b, double units)
{
    return units > b->limit ? b->limit : units;
}

/* ms until the bucket (refilled to now) can grant `units`; 0 if it can now. */
static double bucket_wait(const sl_ratelimit_bucket *b, double now_ms, double units)
{
    double block = b->block_until > now_ms ? b->block_until - now_ms : 0;
    if (b->limit <= 0)
        return block;
    double need = bucket_need(b, units);
    double fill = b->level >= need - EPS ? 0 : (need - b->level) * 60000.0 / b->limit;
    return fill > block ? fill : block;
}

static void bucket_take(sl_ratelimit_bucket *b, double units)
{
    if (b->limit > 0)
        b->level -= units;
}

void sl__ratelimit_init(sl_ratelimit *rl, long rpm, long tpm, double now_ms)
{
    bucket_init(&rl->req, rpm, now_ms);
    bucket_init(&rl->tok, tpm, now_ms);
    rl->cooldown_until = now_ms;
    rl->head = rl->tail = NULL;
    rl->nwait = 0;
    rl->granting = 0;
}

/* ms until one request with `tokens` could go, ignoring the queue; 0 = now. */
static double wait_for(sl_ratelimit *rl, double now_ms, long tokens)
{
    bucket_refill(&rl->req, now_ms);
    bucket_refill(&rl->tok, now_ms);
    double w = rl->cooldown_until > now_ms ? rl->cooldown_until - now_ms : 0;
    double wr = bucket_wait(&rl->req, now_ms, 1);
    double wt = bucket_wait(&rl->tok, now_ms, (double)tokens);
    if (wr > w)
        w = wr;
    if (wt > w)
        w = wt;
    return w;
}

static void take(sl_ratelimit *rl, long tokens, sl_ratelimit_ticket *ticket)
{
    bucket_take(&rl->req, 1);
    bucket_take(&rl->tok, (double)tokens);
    ticket->tokens = tokens;
}

static double head_wait(sl_ratelimit *rl, double now_ms)
{
    return rl->head ? wait_for(rl, now_ms, rl->head->tokens) : -1;
}

int sl__ratelimit_reserve(sl_ratelimit *rl, double now_ms, long tokens, double *wait_ms,
                          sl_ratelimit_ticket *ticket)
{
    if (tokens < 0)
        tokens = 0;
    if (rl->head) {
        *wait_ms = head_wait(rl, now_ms);
        return 1;
    }
    double w = wait_for(rl, now_ms, tokens);
    if (w > 0) {
        *wait_ms = w;
        return 1;
    }
    take(rl, tokens, ticket);
    *wait_ms = 0;
    return 0;
}

void sl__ratelimit_correct(sl_ratelimit *rl, double now_ms, sl_ratelimit_ticket *ticket,
                           long actual_tokens)
{
    if (actual_tokens < 0)
        actual_tokens = 0;
    sl_ratelimit_bucket *b = &rl->tok;
    if (b->limit > 0) {
        bucket_refill(b, now_ms);
        b->level -= (double)actual_tokens - (double)ticket->tokens;
        if (b->level > b->limit)
            b->level = b->limit;
    }
    ticket->tokens = actual_tokens;
}

/* The reset is when the provider's budget is whole again. It matters only when nothing
 * remains: a provider counting in fixed windows sends "reset in 59 s" with every answer
 * of the window, and pausing the refill on each of those would stall a limiter that is
 * well within its budget. */
static void observe_one(sl_ratelimit_bucket *b, double now_ms, long remaining, long reset_ms)
{
    if (b->limit > 0) {
        bucket_refill(b, now_ms);
        if (remaining >= 0 && (double)remaining < b->level)
            b->level = (double)remaining;
    }
    if (remaining == 0 && reset_ms >= 0 && now_ms + (double)reset_ms > b->block_until)
        b->block_until = now_ms + (double)reset_ms;
}

void sl__ratelimit_observe(sl_ratelimit *rl, double now_ms, long remaining_requests,
                           long remaining_tokens, long reset_requests_ms, long reset_tokens_ms)
{
    observe_one(&rl->req, now_ms, remaining_requests, reset_requests_ms);
    observe_one(&rl->tok, now_ms, remaining_tokens, reset_tokens_ms);
}

void sl__ratelimit_cooldown(sl_ratelimit *rl, double now_ms, long retry_after_ms)
{
    double ms = retry_after_ms >= 0 ? (double)retry_after_ms : SL_RATELIMIT_COOLDOWN_MS;
    if (now_ms + ms > rl->cooldown_until)
        rl->cooldown_until = now_ms + ms;
}

static void unlink_waiter(sl_ratelimit *rl, sl_ratelimit_waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        rl->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        rl->tail = w->prev;
    w->prev = w->next = NULL;
    w->queued = 0;
    rl->nwait--;
}

int sl__ratelimit_wait(sl_ratelimit *rl, sl_ratelimit_waiter *w, double now_ms, long tokens,
                       sl_ratelimit_cb cb, void *user, double *wait_ms)
{
    w->tokens = tokens < 0 ? 0 : tokens;
    w->cb = cb;
    w->user = user;
    w->prev = w->next = NULL;
    w->queued = 0;
    w->ticket.tokens = 0;
    if (rl->head == NULL && wait_for(rl, now_ms, w->tokens) <= 0) {
        take(rl, w->tokens, &w->ticket);
        *wait_ms = 0;
        return 1;
    }
    w->queued = 1;
    w->prev = rl->tail;
    if (rl->tail)
        rl->tail->next = w;
    else
        rl->head = w;
    rl->tail = w;
    rl->nwait++;
    *wait_ms = head_wait(rl, now_ms);
    return 0;
}

size_t sl__ratelimit_pump(sl_ratelimit *rl, double now_ms, double *wait_ms)
{
    *wait_ms = -1;
    if (rl->granting)
        return rl->nwait;
    rl->granting = 1;
    while (rl->head && wait_for(rl, now_ms, rl->head->tokens) <= 0) {
        sl_ratelimit_waiter *w = rl->head;
        unlink_waiter(rl, w);
        take(rl, w->tokens, &w->ticket);
        w->cb(w, w->user);
    }
    rl->granting = 0;
    *wait_ms = head_wait(rl, now_ms);
    return rl->nwait;
}

int sl__ratelimit_cancel(sl_ratelimit *rl, sl_ratelimit_waiter *w)
{
    if (!w->queued)
        return 0;
    unlink_waiter(rl, w);
    return 1;
}
