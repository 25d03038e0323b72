/* sluice/policy.h — policies that wrap any call: retry, rate limits, concurrency, breaker,
 * deadline (the C form of decorators).
 *
 * An sl_policy is shared by every call that names it in sl_call_opts.policy: its
 * concurrency limit, request/token rate limits and circuit breaker count across all of
 * them; its retry and deadline settings apply to each call on its own. A call under a
 * policy still keeps the stream contract of call.h: zero or more on_delta, exactly one
 * on_done. Retries before the first delta are invisible; after deltas were delivered the
 * new attempt is matched against what was delivered and only the continuation is passed
 * on, or the call ends with SL_EDIVERGED. Waiting for a slot or a rate-limit token counts
 * towards the call's deadline but not its attempts.
 *
 * Before each attempt: deadline, circuit breaker (open: the call ends with SL_EBUSY and
 * no connection), a concurrency slot (FIFO), a rate-limit reservation (1 request and the
 * prompt estimate plus max_tokens, or 256 without one). After it: the slot is released,
 * the tokens corrected with the reported usage, x-ratelimit-* headers observed, a 429
 * cools the whole rate limiter down for its Retry-After (1 s without one), the breaker
 * records the outcome. docs/policies.md has the details. */
#ifndef SLUICE_POLICY_H
#define SLUICE_POLICY_H

#include <stdint.h>
#include <uv.h>

#include <sluice/common.h>

typedef struct sl_policy sl_policy;

typedef struct sl_policy_opts {
    int max_attempts;         /* total HTTP attempts per call, >= 1; default 1 (no retry) */
    long backoff_base_ms;     /* full-jitter exponential backoff; default 500 */
    long backoff_cap_ms;      /* default 30000 */
    long retry_budget_ms;     /* total time a call may spend retrying; 0 = none */
    int concurrency;          /* calls in flight at once (FIFO queue beyond); 0 = no limit */
    long rpm;                 /* requests per minute; 0 = no limit */
    long tpm;                 /* tokens per minute (prompt estimate + max_tokens, corrected by
                                 the reported usage); 0 = no limit */
    int breaker_threshold;    /* consecutive failures that open the circuit; 0 = no breaker */
    long breaker_cooldown_ms; /* default 10000 */
    long deadline_ms;         /* whole call including waits and retries; 0 = none */
    uint64_t seed;            /* jitter PRNG seed; 0 = from the clock */
} sl_policy_opts;

void sl_policy_opts_init(sl_policy_opts *o);
/* A policy on loop (the loop of the clients whose calls use it; sl_call_start refuses a
 * policy of another loop). 0, SL_EINVAL (a negative value, max_attempts < 1) or
 * SL_ENOMEM. The policy must outlive every call that uses it. */
int sl_policy_new(uv_loop_t *loop, const sl_policy_opts *o, sl_policy **out);
/* Release the policy once every call that used it has delivered its on_done (e.g. after
 * sl_client_free). It owns libuv timers that close asynchronously: run the loop until
 * it has no more handles; its memory goes in their close callbacks. NULL is a no-op. */
void sl_policy_free(sl_policy *p);

typedef struct sl_policy_stats {
    uint64_t calls;           /* calls started under the policy */
    uint64_t attempts;        /* HTTP attempts started */
    uint64_t retries;         /* retries decided (on_retry calls) */
    uint64_t waiting;         /* now: calls queued for a concurrency slot or the rate limiter */
    uint64_t in_flight;       /* now: attempts running */
    uint64_t rate_limited;    /* times an attempt had to queue for the rate limiter */
    uint64_t breaker_rejects; /* calls ended with SL_EBUSY by the open circuit */
} sl_policy_stats;
void sl_policy_get_stats(const sl_policy *p, sl_policy_stats *s);

#endif
