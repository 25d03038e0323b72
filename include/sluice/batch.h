/* sluice/batch.h — run a JSONL file of requests: bounded, rate-limited, retried, resumable.
 *
 * The engine of `sluice batch`. It streams the input (memory stays flat whatever its
 * size), keeps at most `concurrency` calls in flight on the caller's loop, writes one
 * complete result line per input id with a single write(), and accounts for every item.
 * Formats and resume rules: docs/batch-formats.md. */
#ifndef SLUICE_BATCH_H
#define SLUICE_BATCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include <sluice/call.h>
#include <sluice/common.h>
#include <sluice/policy.h>

typedef struct sl_batch sl_batch;

enum { SL_PROGRESS_AUTO = 0, SL_PROGRESS_ALWAYS = 1, SL_PROGRESS_NEVER = 2 };

typedef struct sl_batch_opts {
    const char *input;        /* path, or "-" for stdin */
    const char *output;       /* path, or "-" for stdout */
    const char *errors;       /* NULL, or a path for failed results (Batch API style) */
    const char *summary_json; /* NULL, or a path for the JSON summary */
    const char *model;        /* default model for lines that name none */
    int concurrency;          /* calls in flight; default 50 */
    int resume;               /* continue an existing output */
    int stream;               /* use streaming calls and assemble the body */
    int strict;               /* stop at the first invalid input line */
    int progress;             /* SL_PROGRESS_*: a bar on a terminal stderr, else status lines */
    double status_interval_s; /* status line period when not a terminal; default 10 */
    double grace_s;           /* after the first stop, wait this long for in-flight calls */
    sl_client *client;        /* where calls go (borrowed) */
    sl_policy_opts policy;    /* retries, rpm, tpm, breaker, deadline (concurrency ignored:
                                 the batch keeps its own bound) */
    long timeout_ms;          /* per attempt; 0: the client's */
    FILE *messages;           /* progress, messages and the summary; NULL: stderr */
} sl_batch_opts;

/* Defaults: concurrency 50, progress auto, status every 10 s, grace 30 s, the policy's
 * defaults (one attempt). */
void sl_batch_opts_init(sl_batch_opts *o);

/* Exit codes of a finished batch, as `sluice batch` documents them. */
enum {
    SL_BATCH_EXIT_OK = 0,           /* every item succeeded */
    SL_BATCH_EXIT_FAILED = 1,       /* some ids failed permanently, or invalid lines */
    SL_BATCH_EXIT_USAGE = 2,        /* usage or input error: nothing (more) could be run */
    SL_BATCH_EXIT_INTERRUPTED = 130 /* stopped by a signal with items left */
};

/* The batch finished (or could not go on). exit_code is one of SL_BATCH_EXIT_*. The
 * summary has been printed on stderr (and saved to summary_json) before this is called. */
typedef void (*sl_batch_done_cb)(sl_batch *b, int exit_code, void *user);

/* Open input and output (validating options, refusing an output made from another input),
 * ready to start. On error returns SL_EINVAL / SL_EIO / SL_EPARSE with a one-line reason in
 * err, and nothing is left open. */
int sl_batch_new(uv_loop_t *loop, const sl_batch_opts *o, sl_batch **out, char *err, size_t errlen);
/* Start; on_done fires exactly once, from the loop. */
int sl_batch_start(sl_batch *b, sl_batch_done_cb on_done, void *user);
/* Stop taking new items. now == 0: let in-flight calls finish within grace_s, then cancel
 * the rest. now == 1: cancel every in-flight call at once. Results that finished are
 * written; cancelled items get no line (a --resume runs them). */
void sl_batch_stop(sl_batch *b, int now);
/* Release: after on_done (the batch then holds no handle), or instead of start. */
void sl_batch_free(sl_batch *b);

/* Where a batch stands, for progress displays and the stop message. */
typedef struct sl_batch_stats {
    uint64_t total;      /* items in the input; 0: unknown (stdin) */
    uint64_t skipped;    /* items that already had a result (resume) */
    uint64_t ok;         /* succeeded in this run */
    uint64_t failed;     /* failed permanently in this run (invalid lines included) */
    uint64_t invalid;    /* invalid input lines (of failed) */
    uint64_t in_flight;  /* calls running or waiting for a retry */
    uint64_t retrying;   /* of in_flight, items that have been retried */
    uint64_t retries;    /* retry attempts */
    uint64_t unfinished; /* once done: items left by a stop */
    uint64_t prompt_tokens, completion_tokens;
} sl_batch_stats;
void sl_batch_get_stats(const sl_batch *b, sl_batch_stats *st);

#endif
