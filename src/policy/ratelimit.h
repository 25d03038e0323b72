/* ratelimit.h — requests-per-minute and tokens-per-minute limits with a fair queue.
 *
 * Pure policy: no clock, no timers, no allocation. Two token buckets refill continuously
 * (capacity = the per-minute limit, rate = limit / 60000 per ms, both start full; a
 * limit of 0 means unlimited). A reservation takes one request and the caller's token
 * estimate; after the call, sl__ratelimit_correct settles the estimate against the usage
 * the provider reported. Provider headers (sl__ratelimit_observe) and 429 answers
 * (sl__ratelimit_cooldown) tighten the buckets further.
 *
 * Two ways to use it, do not mix them on one limiter:
 *   - sl__ratelimit_reserve: "go now" or "wait N ms and ask again"; fine for a single
 *     consumer (a CLI loop);
 *   - the FIFO queue (sl__ratelimit_wait / sl__ratelimit_pump / sl__ratelimit_cancel): for
 *     many concurrent callers. The head of the queue blocks those behind it even when a
 *     smaller request would fit, so a large request is never starved by small ones.
 *     The module keeps no timer: whoever owns the loop calls sl__ratelimit_pump when the
 *     wait it was given has passed, and after anything that may free capacity earlier
 *     (sl__ratelimit_correct giving tokens back, observe, a changed cooldown). pump
 *     grants synchronously, calling the callbacks in FIFO order, and returns the next wait.
 *
 * An oversize reservation (estimate > TPM capacity) cannot deadlock: it goes when the
 * bucket is full and leaves it in debt, which later reservations wait out. */
#ifndef SL_POLICY_RATELIMIT_H
#define SL_POLICY_RATELIMIT_H

#include <stddef.h>

#define SL_RATELIMIT_COOLDOWN_MS 1000 /* cooldown after a 429 without Retry-After */

/* What one granted reservation took from the token bucket. */
typedef struct sl_ratelimit_ticket {
    long tokens;
} sl_ratelimit_ticket;

typedef struct sl_ratelimit_bucket {
    double limit;       /* per minute; 0 = unlimited */
    double level;       /* units available now; negative = debt */
    double last_ms;     /* level is valid at this time */
    double block_until; /* nothing is granted before this: the provider said 0 remain */
} sl_ratelimit_bucket;

typedef struct sl_ratelimit_waiter sl_ratelimit_waiter;
/* w was granted: w->ticket holds what it took. */
typedef void (*sl_ratelimit_cb)(sl_ratelimit_waiter *w, void *user);

/* Embed in the caller's struct; must stay at the same address while queued. Only
 * ticket is for the caller to read (after the grant). Zero it (or pass it to
 * sl__ratelimit_wait) before the first sl__ratelimit_cancel. */
struct sl_ratelimit_waiter {
    sl_ratelimit_waiter *prev, *next;
    long tokens;
    sl_ratelimit_cb cb;
    void *user;
    int queued;
    sl_ratelimit_ticket ticket;
};

typedef struct sl_ratelimit {
    sl_ratelimit_bucket req, tok;
    double cooldown_until; /* nothing is granted before this */
    sl_ratelimit_waiter *head, *tail;
    size_t nwait;
    int granting;
} sl_ratelimit;

/* rpm, tpm: limits per minute, 0 (or negative) = unlimited. Buckets start full. */
void sl__ratelimit_init(sl_ratelimit *rl, long rpm, long tpm, double now_ms);

/* Try to take one request and `tokens` (the estimate; negative counts as 0) now.
 * Returns 0 and fills *ticket: go now. Returns 1 and sets *wait_ms > 0 (or >= 0 if
 * waiters are queued, see below): nothing was taken; asking again after that wait
 * succeeds unless someone else took the capacity first. While waiters are queued this
 * always returns 1 with the head's wait, so it never overtakes the queue. */
int sl__ratelimit_reserve(sl_ratelimit *rl, double now_ms, long tokens, double *wait_ms,
                          sl_ratelimit_ticket *ticket);

/* Settle a granted ticket with the tokens actually used (prompt + completion as the
 * provider reported): gives back or takes the difference (the bucket never exceeds its
 * capacity, it may go into debt). The ticket is updated to actual_tokens, so a second
 * correction only applies the new difference. With the queue, pump afterwards. */
void sl__ratelimit_correct(sl_ratelimit *rl, double now_ms, sl_ratelimit_ticket *ticket,
                           long actual_tokens);

/* Provider rate-limit headers (x-ratelimit-remaining-*, x-ratelimit-reset-*), -1 where
 * unknown. A limited bucket is clamped to the remaining count and keeps refilling at
 * its own rate. "0 remaining" with a known reset blocks the bucket, limited or not,
 * until now + reset: the provider's budget is whole again then. A reset with something
 * remaining says nothing (a fixed-window provider sends one with every answer). */
void sl__ratelimit_observe(sl_ratelimit *rl, double now_ms, long remaining_requests,
                           long remaining_tokens, long reset_requests_ms, long reset_tokens_ms);

/* A 429: nothing (no reservation, no queued waiter) is granted before now +
 * retry_after_ms (SL_RATELIMIT_COOLDOWN_MS when retry_after_ms < 0). Never shortens a
 * cooldown already in force. */
void sl__ratelimit_cooldown(sl_ratelimit *rl, double now_ms, long retry_after_ms);

/* Queue form of reserve. Returns 1 if granted now (w->ticket filled, cb not called, w
 * not queued). Returns 0 if w was queued at the tail: cb(w, user) will run from a later
 * sl__ratelimit_pump; *wait_ms is when the head could go (call pump then). */
int sl__ratelimit_wait(sl_ratelimit *rl, sl_ratelimit_waiter *w, double now_ms, long tokens,
                       sl_ratelimit_cb cb, void *user, double *wait_ms);

/* Grant queued waiters in FIFO order while they fit (callbacks run before it returns;
 * they may call any function of this limiter). Returns how many remain queued and sets
 * *wait_ms to the time until the head could go, or -1 when the queue is empty. A call
 * from inside a callback does nothing (returns the queue length, *wait_ms -1): the outer
 * pump continues. */
size_t sl__ratelimit_pump(sl_ratelimit *rl, double now_ms, double *wait_ms);

/* Remove a queued waiter: 1 if it was queued (cb will not run), 0 if not (already
 * granted: the caller owns its ticket). The queue head may change: pump afterwards. */
int sl__ratelimit_cancel(sl_ratelimit *rl, sl_ratelimit_waiter *w);

#endif
