/* retry.h — when to retry a failed attempt and how long to wait first.
 *
 * Pure policy: no clock, no sleep, no I/O. The caller passes "now" (monotonic ms) and a
 * PRNG state it seeded, and gets back "retry after N ms" or "give up, because ...". The
 * call layer (policy/call.c) and the batch runner own the timers.
 *
 * Backoff is exponential with full jitter: before retry k (k = 0 for the first retry)
 * the delay is uniform in [0, min(cap_ms, base_ms * 2^k)). A provider's Retry-After
 * raises the delay to at least that value. Every attempt is recorded so the final result
 * can report them all. */
#ifndef SL_POLICY_RETRY_H
#define SL_POLICY_RETRY_H

#include <stdint.h>

#define SL_RETRY_RECORDED 16 /* attempts kept in sl_retry_state.rec (all are counted) */

typedef struct sl_retry_opts {
    int max_attempts;        /* total attempts including the first, >= 1; default 5 */
    long base_ms;            /* backoff base; default 500 */
    long cap_ms;             /* backoff ceiling; default 30000 */
    long budget_ms;          /* time from the first attempt's start within which a retry may
                                start; 0 = no budget (default) */
    int honour_retry_after;  /* default 1 */
    long retry_after_max_ms; /* a Retry-After is clamped to this; default 600000 (10 min) */
} sl_retry_opts;

/* Fill o with the defaults above. */
void sl__retry_opts_init(sl_retry_opts *o);

/* Why sl__retry_next said no (SL_RETRY_NONE while it has not). */
typedef enum sl_retry_reason {
    SL_RETRY_NONE = 0,
    SL_RETRY_NOT_RETRYABLE = 1, /* the error or status is not worth retrying */
    SL_RETRY_ATTEMPTS = 2,      /* max_attempts reached */
    SL_RETRY_BUDGET = 3,        /* budget_ms used up, or Retry-After lies beyond it */
} sl_retry_reason;

/* "not retryable", "attempts exhausted", "retry budget exhausted", or "" for NONE. */
const char *sl__retry_reason_name(sl_retry_reason r);

/* One finished attempt. */
typedef struct sl_retry_attempt {
    int error;       /* SL_E* code, 0 for success */
    int http_status; /* 0 if no answer arrived */
    double end_ms;   /* "now" when it was recorded */
    double delay_ms; /* the wait chosen before the next attempt; -1 if there was none */
} sl_retry_attempt;

typedef struct sl_retry_state {
    double start_ms; /* start of the first attempt: the budget's origin */
    int count;       /* attempts seen (may exceed what rec holds) */
    sl_retry_reason reason;
    sl_retry_attempt *rec; /* the first rec_cap attempts, or NULL: see sl__retry_keep */
    int rec_cap;
} sl_retry_state;

/* Reset s for a new call whose first attempt starts at now_ms. Nothing is recorded
 * unless the caller hands over storage with sl__retry_keep (a call keeps its own log:
 * a record per state would cost every running call ~400 bytes). */
void sl__retry_start(sl_retry_state *s, double now_ms);
/* Record the first cap attempts in rec (owned by the caller, outliving s's use). */
void sl__retry_keep(sl_retry_state *s, sl_retry_attempt *rec, int cap);

/* 1 if an attempt that ended with (err, http_status) is worth retrying:
 *   SL_ETRANSPORT, SL_ETIMEDOUT, SL_EPROTO (e.g. a stream cut mid-way): yes, whatever the
 *   status (a cut stream usually carries 200);
 *   SL_EHTTP, or err 0 with a status >= 400: yes for 408, 409, 429 and 5xx, no for every
 *   other status (400, 401, 403, 404, 422, ...);
 *   anything else (success, SL_ECANCELED, SL_EDIVERGED, SL_ELIMIT, SL_EINVAL, SL_ENOMEM,
 *   SL_EBUSY, SL_EIO, SL_EPARSE, ...): no. */
int sl__retry_retryable(int err, int http_status);

/* Decide after a failed attempt ended at now_ms. Records the attempt in s, then:
 *   returns 1 and sets *delay_ms (>= 0): start the next attempt after that wait;
 *   returns 0 and sets *delay_ms to -1: give up, s->reason says why.
 * Checked in order: retryable, attempts left (s->count < max_attempts), budget.
 * retry_after_ms is the provider's Retry-After (-1 if none); honoured when
 * o->honour_retry_after: the delay becomes max(jitter, min(retry_after_ms,
 * retry_after_max_ms)). Budget (budget_ms > 0): no retry once now_ms >= start + budget;
 * a jittered delay is shortened to the remaining budget; a Retry-After delay that ends
 * beyond the budget gives up (the provider said it will not work sooner).
 * rng: the caller's PRNG state (any seed; see sl__retry_rand), advanced once per retry. */
int sl__retry_next(const sl_retry_opts *o, sl_retry_state *s, int err, int http_status,
                   long retry_after_ms, double now_ms, uint64_t *rng, double *delay_ms);

/* Record the final, successful attempt (error 0, delay -1) for reporting. */
void sl__retry_record_ok(sl_retry_state *s, int http_status, double now_ms);

/* The backoff ceiling before retry k: min(cap_ms, base_ms * 2^k), never negative. */
double sl__retry_ceiling(const sl_retry_opts *o, int k);

/* A uniform double in [0, 1) from a splitmix64 state (every seed, 0 included, is fine). */
double sl__retry_rand(uint64_t *rng);

#endif
