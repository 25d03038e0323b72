/* pace.h — when the mock's timed answers are due: one absolute schedule per answer.
 *
 * A real model emits tokens at its own pace however busy the server in front of it is,
 * and benchmarks compute their lower bounds from that pace, so a mock stream keeps a
 * schedule from the request's arrival instead of timing each chunk from the previous one
 * (which would stretch every interval by the loop's pass time under load): chunk k (from
 * 0) is due at t0 + ttft + k x interval. The server's timers are only wake-ups; each one
 * asks the schedule how many chunks are due now (a late loop finds several, which go out
 * together) and how long to sleep until the next. Pure: time is an argument, in ms on one
 * monotonic clock; it never reads the clock. */
#ifndef SL_APPS_MOCK_PACE_H
#define SL_APPS_MOCK_PACE_H

#include <stdint.h>

typedef struct sl_mock_pace {
    double t0_ms;       /* the request's arrival */
    double ttft_ms;     /* t0 -> chunk 0 (>= 0) */
    double interval_ms; /* chunk k -> chunk k + 1 (>= 0; 0: all due with chunk 0) */
    int n;              /* chunks (>= 0); a delayed whole answer is one chunk */
} sl_mock_pace;

/* libuv timers count whole milliseconds from a clock truncated to the millisecond, so a
 * timer armed for ceil(due - now) ms can wake up less than 1 ms before due: a chunk whose
 * time is less than this far ahead counts as due, so it is never sent early by 1 ms or
 * more, and a wake-up is never wasted. */
#define SL_MOCK_PACE_SLACK_MS 1.0

/* How many chunks of p are due at now_ms: the first k (0..n) whose time is before
 * now_ms + SL_MOCK_PACE_SLACK_MS. When k < n, *wait_ms is the timer delay until chunk k:
 * its time minus now_ms rounded up to whole ms, at least 1; when k == n, 0. */
int sl__mock_pace_due(const sl_mock_pace *p, double now_ms, uint64_t *wait_ms);

#endif
