/* policy.c — sl_policy: the shared limiter, rate limiter, breaker and retry settings,
 * and the two timers that drive them (see policy.h).
 *
 * The pure modules decide with the real monotonic time (sl__clock_ms); the timers only
 * say when to ask again, so a timer that fires a little early just re-arms. */
#include "policy/policy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"

#define DEFAULT_BACKOFF_BASE_MS     500
#define DEFAULT_BACKOFF_CAP_MS      30000
#define DEFAULT_BREAKER_COOLDOWN_MS 10000

void sl_policy_opts_init(sl_policy_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_attempts = 1;
    o->backoff_base_ms = DEFAULT_BACKOFF_BASE_MS;
    o->backoff_cap_ms = DEFAULT_BACKOFF_CAP_MS;
    o->breaker_cooldown_ms = DEFAULT_BREAKER_COOLDOWN_MS;
}

static void on_rl_timer(uv_timer_t *t)
{
    sl__policy_rate_pump(t->data);
}

/* Arm t for `wait` ms from the real now (-1: stop). */
static void arm(sl_policy *p, uv_timer_t *t, uv_timer_cb cb, double wait)
{
    if (p->freed)
        return;
    if (wait < 0) {
        uv_timer_stop(t);
        return;
    }
    /* the loop's cached time may lag: timers would fire early and merely re-arm */
    uv_update_time(p->loop);
    double ms = ceil(wait);
    uv_timer_start(t, cb, ms > 1e12 ? (uint64_t)1e12 : (uint64_t)ms, 0);
}

static void on_wake_timer(uv_timer_t *t);

static void arm_wakes(sl_policy *p)
{
    if (sl__list_empty(&p->wakes)) {
        arm(p, &p->wake_timer, on_wake_timer, -1);
        return;
    }
    sl_policy_wake *w = SL_CONTAINER_OF(p->wakes.next, sl_policy_wake, link);
    double wait = w->due_ms - sl__clock_ms();
    arm(p, &p->wake_timer, on_wake_timer, wait > 0 ? wait : 0);
}

static void on_wake_timer(uv_timer_t *t)
{
    sl_policy *p = t->data;
    while (!p->freed && !sl__list_empty(&p->wakes)) {
        sl_policy_wake *w = SL_CONTAINER_OF(p->wakes.next, sl_policy_wake, link);
        if (w->due_ms > sl__clock_ms())
            break;
        sl__list_remove(&w->link);
        w->fire(w); /* may arm or cancel wakes, this one included */
    }
    arm_wakes(p);
}

int sl_policy_new(uv_loop_t *loop, const sl_policy_opts *o, sl_policy **out)
{
    *out = NULL;
    if (!loop || !o || o->max_attempts < 1 || o->backoff_base_ms < 0 || o->backoff_cap_ms < 0 ||
        o->retry_budget_ms < 0 || o->concurrency < 0 || o->rpm < 0 || o->tpm < 0 ||
        o->breaker_threshold < 0 || o->breaker_cooldown_ms < 0 || o->deadline_ms < 0)
        return SL_EINVAL;
    sl_policy *p = calloc(1, sizeof *p);
    if (!p)
        return SL_ENOMEM;
    p->loop = loop;
    p->o = *o;
    sl__retry_opts_init(&p->retry);
    p->retry.max_attempts = o->max_attempts;
    p->retry.base_ms = o->backoff_base_ms;
    p->retry.cap_ms = o->backoff_cap_ms;
    p->retry.budget_ms = o->retry_budget_ms;
    sl__limiter_init(&p->lim, o->concurrency);
    sl__ratelimit_init(&p->rl, o->rpm, o->tpm, sl__clock_ms());
    sl_breaker_opts bo;
    sl__breaker_opts_init(&bo);
    bo.threshold = o->breaker_threshold;
    bo.cooldown_ms = o->breaker_cooldown_ms;
    sl__breaker_init(&p->br, &bo);
    p->rng = o->seed ? o->seed : (uint64_t)uv_hrtime() ^ (uint64_t)(uintptr_t)p;
    sl__list_init(&p->wakes);
    uv_timer_init(loop, &p->rl_timer);
    uv_timer_init(loop, &p->wake_timer);
    p->rl_timer.data = p;
    p->wake_timer.data = p;
    p->open_handles = 2;
    *out = p;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    sl_policy *p = h->data;
    if (--p->open_handles == 0)
        free(p);
}

void sl_policy_free(sl_policy *p)
{
    if (!p || p->freed)
        return;
    p->freed = 1;
    /* calls should be gone; drop whatever they left armed rather than touch it later */
    while (!sl__list_empty(&p->wakes))
        sl__list_remove(p->wakes.next);
    uv_close((uv_handle_t *)&p->rl_timer, on_closed);
    uv_close((uv_handle_t *)&p->wake_timer, on_closed);
}

void sl_policy_get_stats(const sl_policy *p, sl_policy_stats *s)
{
    *s = p->st;
}

void sl__policy_wake_init(sl_policy_wake *w, void (*fire)(sl_policy_wake *w))
{
    sl__list_init(&w->link);
    w->due_ms = 0;
    w->fire = fire;
}

void sl__policy_wake_at(sl_policy *p, sl_policy_wake *w, double due_ms)
{
    if (p->freed)
        return;
    sl__list_remove(&w->link);
    w->due_ms = due_ms;
    /* from the tail: new wake-ups are mostly the latest */
    sl_link *at = p->wakes.prev;
    while (at != &p->wakes && SL_CONTAINER_OF(at, sl_policy_wake, link)->due_ms > due_ms)
        at = at->prev;
    sl__list_push(at->next, &w->link); /* before at->next, i.e. right after at */
    if (p->wakes.next == &w->link)
        arm_wakes(p);
}

void sl__policy_wake_cancel(sl_policy *p, sl_policy_wake *w)
{
    if (!sl__list_linked(&w->link))
        return;
    int was_first = p->wakes.next == &w->link;
    sl__list_remove(&w->link);
    if (was_first)
        arm_wakes(p); /* an idle armed timer would keep the loop alive */
}

int sl__policy_rate_wait(sl_policy *p, sl_ratelimit_waiter *w, long tokens, sl_ratelimit_cb cb,
                         void *user)
{
    double wait;
    if (sl__ratelimit_wait(&p->rl, w, sl__clock_ms(), tokens, cb, user, &wait))
        return 1;
    if (!p->rl.granting) /* inside a pump the outer one arms the timer */
        arm(p, &p->rl_timer, on_rl_timer, wait);
    return 0;
}

void sl__policy_rate_cancel(sl_policy *p, sl_ratelimit_waiter *w)
{
    int was_head = p->rl.head == w;
    if (sl__ratelimit_cancel(&p->rl, w) && was_head)
        sl__policy_rate_pump(p);
}

void sl__policy_rate_pump(sl_policy *p)
{
    if (p->freed || p->rl.granting)
        return;
    double wait;
    sl__ratelimit_pump(&p->rl, sl__clock_ms(), &wait);
    arm(p, &p->rl_timer, on_rl_timer, wait);
}
