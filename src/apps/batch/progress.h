/* progress.h — counters of a sluice batch run and the progress line they render to.
 *
 * Pure: rendering reads no clock and writes nowhere. The runner owns the counters, passes
 * "now" (monotonic ms) and prints the string it gets: the bar on a terminal (stderr is a
 * tty), the status line otherwise, every few seconds.
 *
 * Rates (req/s, tok/s) are measured over a sliding window: sl__batch_progress_sample
 * keeps one snapshot of the counters per second, up to SL_BATCH_RATE_SLOTS of them, and a
 * rate is (counter now - counter in the oldest snapshot) / (time between them); before
 * the first snapshot it is measured from the start. tok/s counts prompt + completion
 * tokens (what a TPM limit counts). ETA = items left / req/s. */
#ifndef SL_APPS_BATCH_PROGRESS_H
#define SL_APPS_BATCH_PROGRESS_H

#include <stdint.h>

#include "base/buf.h"

#define SL_BATCH_RATE_SLOTS 10

typedef struct sl_batch_counters {
    uint64_t total;   /* items in the input (sl_batch_scan.items); 0: unknown (stdin) */
    uint64_t skipped; /* items that already had a result (resume) */
    uint64_t done;    /* items finished by this run: ok + failed */
    uint64_t ok;
    uint64_t failed;    /* failed requests and invalid input lines */
    uint64_t invalid;   /* of failed, invalid input lines (shown apart) */
    uint64_t retrying;  /* requests waiting for a retry now */
    uint64_t in_flight; /* requests being sent or received now */
    uint64_t retries;   /* retry attempts so far */
    uint64_t prompt_tokens;
    uint64_t completion_tokens;
    uint64_t bytes; /* response bytes received */
} sl_batch_counters;

typedef struct sl_batch_progress_sample {
    double t_ms;
    uint64_t done;
    uint64_t tokens;
} sl_batch_progress_sample;

typedef struct sl_batch_progress {
    double start_ms;
    sl_batch_progress_sample ring[SL_BATCH_RATE_SLOTS];
    unsigned head; /* next slot to write */
    unsigned n;    /* snapshots held */
} sl_batch_progress;

void sl__batch_progress_init(sl_batch_progress *p, double now_ms);

/* Record a snapshot if the newest one is at least 1000 ms old (or there is none). Call it
 * as often as you like; the window stays about SL_BATCH_RATE_SLOTS seconds. */
void sl__batch_progress_sample(sl_batch_progress *p, const sl_batch_counters *c, double now_ms);

/* Requests and tokens per second over the window; 0 when no time has passed. */
double sl__batch_progress_req_rate(const sl_batch_progress *p, const sl_batch_counters *c,
                                   double now_ms);
double sl__batch_progress_tok_rate(const sl_batch_progress *p, const sl_batch_counters *c,
                                   double now_ms);

/* The terminal line, appended to out:
 *   "\r[#####.....] 1200/10000 ok=1190 fail=10 retry=3 410/s 8.2k tok/s ETA 21s\x1b[K"
 * It fits in width - 1 columns (width 0: 80): the bar takes what the numbers leave, up to
 * 40 columns, and is left out under 10; the numbers are cut at the edge when even they
 * do not fit. Unknown total: "1200/?" and no bar or ETA. Done counts skipped items. */
int sl__batch_progress_bar(const sl_batch_progress *p, const sl_batch_counters *c, double now_ms,
                           int width, sl_buf *out);

/* The plain status line for logs and pipes, appended to out with its '\n':
 *   "[batch] 1200/10000 ok=1190 failed=10 retrying=3 rate=410/s tok/s=8200 eta=21s\n"
 * " skipped=N" follows failed=... when N > 0; "?" stands for an unknown total or ETA. */
int sl__batch_progress_line(const sl_batch_progress *p, const sl_batch_counters *c, double now_ms,
                            sl_buf *out);

/* Formatting shared with the summary, into buf (size >= 24):
 * a rate: "0.5" under 10 (one decimal), else rounded "410";
 * a count: "950", "8.2k", "1.5M", "2.0G";
 * a duration in seconds: "21s", "3m05s", "2h03m", rounded to the second. */
void sl__batch_fmt_rate(char *buf, double r);
void sl__batch_fmt_si(char *buf, double v);
void sl__batch_fmt_secs(char *buf, double secs);

#endif
