/* limiter.h — a concurrency limiter: a counting semaphore with a FIFO queue of waiters.
 *
 * Pure policy: no allocation, no clock, no loop. A waiter is embedded in the caller's
 * own struct (an intrusive list), so acquiring never allocates and cannot fail.
 *
 * Grants are synchronous: a waiter's callback runs inside the sl__limiter_release or
 * sl__limiter_set_max that freed its slot, in FIFO order. Callbacks may call any
 * function of the same limiter (acquire, release, cancel, set_max): a release from inside
 * a callback does not recurse, the outer grant loop hands the slot on. A caller that
 * must not run foreign code inside release (e.g. it holds a lock or is inside another
 * callback) should make its callback defer the work (uv_idle, a ready list). */
#ifndef SL_POLICY_LIMITER_H
#define SL_POLICY_LIMITER_H

#include <stddef.h>

typedef struct sl_limiter_waiter sl_limiter_waiter;
/* A slot was granted to w (now counted in in_use; release it when done). */
typedef void (*sl_limiter_cb)(sl_limiter_waiter *w, void *user);

/* Embed in the caller's struct; contents are private to the limiter. It must stay at
 * the same address while queued (until its callback runs or it is cancelled). Zero it
 * (or pass it to acquire) before the first sl__limiter_cancel. */
struct sl_limiter_waiter {
    sl_limiter_waiter *prev, *next;
    sl_limiter_cb cb;
    void *user;
    int queued;
};

typedef struct sl_limiter {
    int max;      /* slots; 0 = unlimited */
    int in_use;   /* granted and not yet released */
    size_t nwait; /* waiters queued */
    sl_limiter_waiter *head, *tail;
    int granting; /* inside the grant loop (guards re-entry) */
} sl_limiter;

/* max slots, 0 (or negative) = unlimited. */
void sl__limiter_init(sl_limiter *l, int max);

/* Take a slot for w. Returns 1 if granted now (cb is not called), 0 if w was queued:
 * cb(w, user) runs later, once, when a slot frees up and every waiter queued before w
 * was served. A free slot is not taken while others are queued (no overtaking). */
int sl__limiter_acquire(sl_limiter *l, sl_limiter_waiter *w, sl_limiter_cb cb, void *user);

/* Give back one granted slot; grants queued waiters while slots are free (their
 * callbacks run before this returns, unless called from inside a grant callback). */
void sl__limiter_release(sl_limiter *l);

/* Remove w from the queue. Returns 1 if it was queued (its callback will never run),
 * 0 if it was not (already granted: the caller owns a slot and must release it). */
int sl__limiter_cancel(sl_limiter *l, sl_limiter_waiter *w);

/* Change the number of slots (0 = unlimited). Raising it grants queued waiters now;
 * lowering it below in_use takes effect as slots are released. */
void sl__limiter_set_max(sl_limiter *l, int max);

#endif
