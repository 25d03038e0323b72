/* fault.h — how the mock misbehaves: options, the x-mock header, fault decisions.
 *
 * The pure half of the mock's fault injection, separate from the server so unit tests
 * drive it without sockets or clocks: option names and ranges (shared by the command
 * line and the x-mock header), the seeded PRNG behind every random-looking choice, the
 * fail decision, the requests-per-minute window (time is an argument) and the headers
 * a 429 carries. It never reads the clock and never allocates except into a caller's
 * sl_buf. */
#ifndef SL_APPS_MOCK_FAULT_H
#define SL_APPS_MOCK_FAULT_H

#include <stddef.h>
#include <stdint.h>

#include <sluice/mock.h>

#include "base/buf.h"

/* Ranges of the options (see docs/mock.md). */
#define SL_MOCK_MAX_CHUNKS   100000
#define SL_MOCK_MAX_DELAY_MS 3600000.0 /* ttft, interval, retry-after, slow-read: 1 hour */
#define SL_MOCK_MAX_RPM      100000000
#define SL_MOCK_MAX_BODY     (64u << 20)
#define SL_MOCK_WINDOW_MS    60000.0

/* splitmix64: advances *state and returns the next 64-bit value. */
uint64_t sl__mock_rand(uint64_t *state);
/* FNV-1a 64 of (p, n), continuing from h (start with SL_MOCK_HASH_INIT). */
#define SL_MOCK_HASH_INIT 0xcbf29ce484222325ull
uint64_t sl__mock_hash(const void *p, size_t n, uint64_t h);

/* Apply an x-mock header value ("ttft-ms=0; chunks=5; fail-rate=1") over o: items are
 * separated by ';' or ',', spaces around keys and values are ignored, empty items are
 * skipped. On a bad item returns SL_EINVAL, writes a one-line message naming the key
 * into err, and o may hold the items before the bad one. */
int sl__mock_xmock_parse(sl_mock_opts *o, const char *p, size_t n, char *err, size_t errlen);

/* The fail decision for the k-th request (k from 0) that reached it: fails iff
 * splitmix64(seed + k) / 2^64 < rate. Deterministic for (seed, k); rate 1 always
 * fails, rate 0 never. */
int sl__mock_should_fail(uint64_t seed, uint64_t k, double rate);

/* A fixed one-minute window: it opens at the first request counted after the previous
 * one closed, and admits rpm requests until it closes. */
typedef struct sl_mock_window {
    double start_ms;
    long count;
} sl_mock_window;

typedef struct sl_mock_rl {
    int allowed;     /* 1: admitted (and counted); 0: answer 429 */
    long limit;      /* rpm */
    long remaining;  /* after this request */
    double reset_ms; /* until the window closes */
} sl_mock_rl;

/* Count one request at now_ms against a limit of rpm (> 0). */
void sl__mock_window_take(sl_mock_window *w, long rpm, double now_ms, sl_mock_rl *out);

/* "1.5s", "60s", "0.001s": ms rounded up to whole milliseconds, as seconds. */
void sl__mock_fmt_seconds(char *out, size_t n, double ms);
/* Append "x-ratelimit-limit-requests: ..\r\n" and its -remaining- and -reset- siblings. */
int sl__mock_ratelimit_headers(sl_buf *b, const sl_mock_rl *rl);
/* Append "Retry-After: <seconds, rounded up>\r\nretry-after-ms: <ms>\r\n". */
int sl__mock_retry_headers(sl_buf *b, double ms);

#endif
