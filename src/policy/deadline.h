/* deadline.h — an absolute end time for a call, its waits and its retries.
 *
 * Pure value type on a caller-supplied monotonic clock (ms). A deadline may be unset
 * ("none"): it never expires and has infinite time remaining. Pass it by value. */
#ifndef SL_POLICY_DEADLINE_H
#define SL_POLICY_DEADLINE_H

typedef struct sl_deadline {
    int set;       /* 0 = no deadline */
    double end_ms; /* monotonic ms; meaningful only when set */
} sl_deadline;

/* No deadline. */
sl_deadline sl__deadline_none(void);
/* now + timeout_ms; timeout_ms <= 0 means none (the "0 = no timeout" option convention). */
sl_deadline sl__deadline_in(double now_ms, long timeout_ms);
/* An absolute end time. */
sl_deadline sl__deadline_at(double end_ms);

/* ms left (>= 0, 0 once expired); a huge value (SL_DEADLINE_FOREVER) when none. */
#define SL_DEADLINE_FOREVER 1e300
double sl__deadline_remaining(sl_deadline d, double now_ms);
/* 1 once now_ms >= end (never for none). */
int sl__deadline_expired(sl_deadline d, double now_ms);
/* 1 if a wait of wait_ms starting at now_ms ends before the deadline (always for none):
 * use it to decide whether a retry delay or a queue wait is still worth starting. */
int sl__deadline_allows(sl_deadline d, double now_ms, double wait_ms);
/* The earlier of two deadlines (none counts as later than any set one). */
sl_deadline sl__deadline_min(sl_deadline a, sl_deadline b);
/* Remaining time as a timer value in whole ms, rounded up so a timer armed with it never
 * fires before the deadline; 0 if expired; -1 if none. Saturates at LONG_MAX. */
long sl__deadline_timer_ms(sl_deadline d, double now_ms);

#endif
