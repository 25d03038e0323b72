/* breaker.h — a circuit breaker: stop calling an upstream that keeps failing.
 *
 * Pure policy: the caller passes "now" (monotonic ms); no clock, no timers.
 *   closed    -> every call allowed; `threshold` consecutive failures open the circuit.
 *   open      -> every call rejected until the cooldown has passed since it opened.
 *   half-open -> the first sl__breaker_allow after the cooldown lets exactly one trial
 *                call through; others are rejected while it runs. Its success closes
 *                the circuit; its failure re-opens it (cooldown doubled each time up to
 *                cooldown_max_ms, if that is larger than cooldown_ms).
 * Contract: every allowed call reports its outcome once with sl__breaker_record. Outcomes
 * reported while open are ignored (calls that started before it opened); in half-open
 * the first outcome reported decides. */
#ifndef SL_POLICY_BREAKER_H
#define SL_POLICY_BREAKER_H

#include <stdint.h>

typedef enum sl_breaker_state {
    SL_BREAKER_CLOSED = 0,
    SL_BREAKER_OPEN = 1,
    SL_BREAKER_HALF_OPEN = 2,
} sl_breaker_state;

typedef struct sl_breaker_opts {
    int threshold;        /* consecutive failures that open it; default 5; 0 = never open */
    long cooldown_ms;     /* open -> half-open; default 10000 */
    long cooldown_max_ms; /* > cooldown_ms: double the cooldown on each failed trial up to
                             this; default 0 = never double */
} sl_breaker_opts;

typedef struct sl_breaker {
    sl_breaker_opts o;
    sl_breaker_state state;
    int failures;       /* consecutive failures while closed */
    double opened_ms;   /* when it last opened */
    double cooldown_ms; /* current cooldown (grows with doubling) */
    int trial;          /* half-open: the trial call is out */
    uint64_t opens;     /* times it opened (metrics) */
    uint64_t rejects;   /* calls rejected (metrics) */
} sl_breaker;

/* Fill o with the defaults above. */
void sl__breaker_opts_init(sl_breaker_opts *o);
/* Start closed. o NULL = defaults. */
void sl__breaker_init(sl_breaker *b, const sl_breaker_opts *o);

/* 1: the call may go (in half-open it is the trial); 0: rejected (fail fast with
 * SL_EBUSY). Moves open -> half-open once the cooldown has passed. */
int sl__breaker_allow(sl_breaker *b, double now_ms);

/* Report an allowed call's outcome: ok = 1 success, 0 failure (count only failures that
 * say the upstream is unhealthy: transport, timeout, 5xx, 429; not 400 or cancel). */
void sl__breaker_record(sl_breaker *b, double now_ms, int ok);

/* Right after sl__breaker_allow returned 1: a non-zero token if that call is the
 * half-open trial, else 0 (keep it for sl__breaker_abandon). */
uint64_t sl__breaker_trial_token(const sl_breaker *b);

/* An allowed call ends without an outcome (cancelled or past its deadline before the
 * upstream answered, or it could not start): it reports nothing to record. If it was the
 * trial (token from sl__breaker_trial_token) and the circuit still waits for that trial,
 * the next sl__breaker_allow sends a new one instead of rejecting calls forever. Token 0:
 * nothing to do. */
void sl__breaker_abandon(sl_breaker *b, uint64_t token);

/* ms until an open circuit lets a trial through; 0 if not open or already due. */
double sl__breaker_retry_in(const sl_breaker *b, double now_ms);

/* "closed", "open", "half-open". */
const char *sl__breaker_state_name(sl_breaker_state s);

#endif
