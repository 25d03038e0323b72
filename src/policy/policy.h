/* policy.h — the inside of sl_policy: the pure policies plus the timers that drive them.
 *
 * An sl_policy (public contract: include/sluice/policy.h) bundles one concurrency
 * limiter, one rate limiter, one circuit breaker, the retry options and a PRNG, shared by
 * every call that names it. The pure modules never read the clock nor own a timer; this
 * one does, on the policy's loop:
 *   - one uv_timer pumps the rate limiter's FIFO queue when its head may go;
 *   - one uv_timer serves a list of wake-ups ordered by time (a call's backoff and its
 *     deadline), so calls own no libuv handle and can be freed at any time.
 * Nothing here calls user code: grants and wake-ups run call.c's code, which defers
 * every on_done to the loop. */
#ifndef SL_POLICY_POLICY_H
#define SL_POLICY_POLICY_H

#include <stdint.h>
#include <uv.h>

#include <sluice/policy.h>

#include "base/list.h"
#include "policy/breaker.h"
#include "policy/limiter.h"
#include "policy/ratelimit.h"
#include "policy/retry.h"

/* A timed wake-up, embedded in its owner. fire runs once from the policy's timer at or
 * after due_ms (sl__clock_ms), unless cancelled first. */
typedef struct sl_policy_wake sl_policy_wake;
struct sl_policy_wake {
    sl_link link; /* in sl_policy.wakes while armed */
    double due_ms;
    void (*fire)(sl_policy_wake *w);
};

struct sl_policy {
    uv_loop_t *loop;
    sl_policy_opts o;
    sl_retry_opts retry;
    sl_limiter lim;
    sl_ratelimit rl;
    sl_breaker br;
    uint64_t rng; /* jitter, shared by the calls */
    sl_policy_stats st;
    uv_timer_t rl_timer;   /* pumps rl's queue */
    uv_timer_t wake_timer; /* serves wakes */
    sl_link wakes;         /* sl_policy_wake, earliest first */
    int freed;
    int open_handles; /* memory goes when the last close callback ran */
};

void sl__policy_wake_init(sl_policy_wake *w, void (*fire)(sl_policy_wake *w));
/* Arm (or re-arm) w for due_ms. */
void sl__policy_wake_at(sl_policy *p, sl_policy_wake *w, double due_ms);
/* Disarm w; no-op when it is not armed. */
void sl__policy_wake_cancel(sl_policy *p, sl_policy_wake *w);

/* Reserve one request and `tokens` through the FIFO queue. 1: granted now (w->ticket
 * holds the tokens, cb does not run). 0: queued; cb runs later from a pump (the policy's
 * timer, or any sl__policy_rate_pump). */
int sl__policy_rate_wait(sl_policy *p, sl_ratelimit_waiter *w, long tokens, sl_ratelimit_cb cb,
                         void *user);
/* Leave the queue (no-op when not queued); the waiters behind may go at once. */
void sl__policy_rate_cancel(sl_policy *p, sl_ratelimit_waiter *w);
/* Grant what may go now and re-arm the timer for the head; call it after anything that
 * may free capacity (correct, observe) or change the head. No-op inside a grant. */
void sl__policy_rate_pump(sl_policy *p);

#endif
