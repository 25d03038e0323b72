/* summary.h — the final account of a sluice batch run.
 *
 * The runner adds one record per finished item (request or invalid input line) and sets
 * the run-wide numbers; this module counts outcomes, keeps latencies in a fixed-size
 * histogram and the first failures in a bounded list, and renders a text summary (for
 * stderr) and a JSON summary (--summary-json). Memory is bounded whatever the number of
 * items: the histogram is a fixed array and at most max_failures failures are kept
 * (every failure is in the output / errors file anyway).
 *
 * Latency precision: a sample is rounded to a whole microsecond and counted in a
 * log-linear bucket (HdrHistogram style, 64 linear sub-buckets per power of two). Values
 * under 128 us are exact; above, a percentile is the middle of its bucket, within 1/128
 * (0.78%) of a sample of that rank. Percentiles use the nearest-rank rule (p50 of n
 * samples is the ceil(0.5 n)-th smallest) and are clamped to the exact min and max. */
#ifndef SL_APPS_BATCH_SUMMARY_H
#define SL_APPS_BATCH_SUMMARY_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* ---- latency histogram ----------------------------------------------------------------- */

#define SL_BATCH_HIST_SUB_BITS 7                   /* 128 exact values, then x64 */
#define SL_BATCH_HIST_MAX_US   ((uint64_t)1 << 42) /* ~51 days; larger is clamped */
#define SL_BATCH_HIST_BUCKETS  ((42 - SL_BATCH_HIST_SUB_BITS + 2) * 64)

typedef struct sl_batch_hist {
    uint64_t count;
    double min_ms, max_ms, sum_ms;
    uint64_t buckets[SL_BATCH_HIST_BUCKETS];
} sl_batch_hist;

void sl__batch_hist_init(sl_batch_hist *h);
/* Count one sample (ms; negative and NaN are ignored). O(1). */
void sl__batch_hist_add(sl_batch_hist *h, double ms);
/* The p-th percentile (0 < p <= 100) in ms; 0 when empty. O(buckets). */
double sl__batch_hist_percentile(const sl_batch_hist *h, double p);

/* ---- outcomes --------------------------------------------------------------------------- */

typedef enum sl_batch_outcome {
    SL_BATCH_OK = 0,
    SL_BATCH_HTTP_4XX,  /* the provider answered 4xx (after retries, if retryable) */
    SL_BATCH_HTTP_5XX,  /* 5xx */
    SL_BATCH_TIMEOUT,   /* SL_ETIMEDOUT */
    SL_BATCH_TRANSPORT, /* SL_ETRANSPORT: connect, DNS, TLS, reset */
    SL_BATCH_PROTOCOL,  /* SL_EPROTO, SL_EDIVERGED, SL_ELIMIT: an answer we could not use */
    SL_BATCH_CIRCUIT,   /* SL_EBUSY: refused by the open circuit breaker */
    SL_BATCH_OTHER,     /* any other failure (another HTTP status, ...) */
    SL_BATCH_INVALID,   /* an input line that is not a valid request */
    SL_BATCH_OUTCOMES
} sl_batch_outcome;

/* The outcome of a call's result (sl_result.error and .http_status). SL_ECANCELED maps to
 * SL_BATCH_OTHER; a cancelled item is normally not recorded but counted as unfinished. */
sl_batch_outcome sl__batch_outcome_of(int error, int http_status);
/* "ok", "http_4xx", "http_5xx", "timeout", "transport", "protocol", "circuit_open", "other",
 * "invalid". */
const char *sl__batch_outcome_name(sl_batch_outcome o);

/* ---- the summary --------------------------------------------------------------------- */

typedef struct sl_batch_failure {
    char *id;         /* exact copy; NULL for an input line without a usable id */
    uint64_t line_no; /* input line, 0 if unknown */
    sl_batch_outcome outcome;
    int http_status; /* 0 if none */
    char *message;   /* one line, at most SL_BATCH_FAILURE_MSG bytes (then "...") */
} sl_batch_failure;

#define SL_BATCH_MAX_FAILURES 1000
#define SL_BATCH_FAILURE_MSG  300

typedef struct sl_batch_summary {
    uint64_t count[SL_BATCH_OUTCOMES];
    /* set by the runner: */
    uint64_t skipped;    /* items that already had a result (resume) */
    uint64_t unfinished; /* items left when the run stopped early (signal) */
    int input_left;      /* the run stopped before the end of a stream input: more may follow */
    double wall_ms;
    /* sums of the records: */
    uint64_t retries;
    uint64_t prompt_tokens;
    uint64_t completion_tokens;
    sl_batch_hist latency; /* total time of each request that was sent */
    sl_batch_failure *failures;
    size_t nfailures;
    size_t max_failures;
    uint64_t failures_omitted;
} sl_batch_summary;

/* max_failures 0: SL_BATCH_MAX_FAILURES. The summary is about 19 KiB: heap or static. */
void sl__batch_summary_init(sl_batch_summary *s, size_t max_failures);
void sl__batch_summary_free(sl_batch_summary *s);

typedef struct sl_batch_record {
    const char *id; /* borrowed; NULL: none */
    uint64_t line_no;
    sl_batch_outcome outcome;
    int http_status;
    const char *message; /* failures: why (borrowed); NULL: none */
    double total_ms;     /* request time, < 0: not sent (invalid lines) */
    int attempts;        /* HTTP attempts; retries += attempts - 1 */
    long prompt_tokens;  /* < 0: unknown */
    long completion_tokens;
} sl_batch_record;

/* Count one finished item. 0 or SL_ENOMEM (the counts are updated even then; only the
 * failure's entry in the list is lost). */
int sl__batch_summary_add(sl_batch_summary *s, const sl_batch_record *r);

/* Failed items (every outcome but ok). */
uint64_t sl__batch_summary_failed(const sl_batch_summary *s);

/* The human summary, appended to out (docs/batch-formats.md shows it):
 *   batch: 1000 items: 990 ok, 8 failed, 2 invalid lines, 0 skipped (already in the output)
 *     failed: http 4xx 3, http 5xx 2, timeout 2, transport 1
 *     ...
 * Lines for zero counts are left out; failures are listed up to max_failures, then
 * "... and N more (all are in the output file)". */
int sl__batch_summary_text(const sl_batch_summary *s, sl_buf *out);

/* The JSON summary, one object with a trailing '\n', appended to out. */
int sl__batch_summary_json(const sl_batch_summary *s, sl_buf *out);

/* Write the JSON summary to path atomically (tmp + fsync + rename). 0 or SL_EIO /
 * SL_ENOMEM with a reason in err. */
int sl__batch_summary_save_json(const sl_batch_summary *s, const char *path, char *err,
                                size_t errlen);

#endif
