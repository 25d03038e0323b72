/* output.h — the results file of sluice batch: one complete JSON line per result.
 *
 * The only writer of OUTPUT (and of the --errors file). Its promise: nothing lost, nothing
 * twice. Each line is built whole in memory and written with a single write() (looping
 * only on a partial write or EINTR), so a crash can leave at most a torn last line; the
 * next --resume detects it, cuts it off (ftruncate) and reports it. A custom_id that
 * already has a line is never written again (with forget_written the caller promises that
 * for the ids it writes itself). It never reads the input or the network.
 *
 * Rules (docs/batch-formats.md, "Output" and "Resume"):
 *   - New output (no --resume, or --resume and OUTPUT does not exist): OUTPUT must not
 *     exist ("OUTPUT exists; use --resume to continue it or remove it"). The side file
 *     OUTPUT.sluice ({"version", "sluice", "input", "input_fingerprint", "created"}) is
 *     written atomically (tmp, fsync, rename, fsync of the directory) before OUTPUT is
 *     created. An existing OUTPUT that is not a regular file (/dev/null, a FIFO) is simply
 *     opened for writing, without side file or checks.
 *   - --resume on an existing OUTPUT: if OUTPUT.sluice records a fingerprint that differs
 *     from this input's, refuse ("OUTPUT was made from a different input (fingerprint X,
 *     this input Y); use a new output file or remove it") without touching anything.
 *     Then every line is read (streaming): each complete line must be a JSON object with a
 *     string "custom_id"; a bad line followed by good ones means the file is damaged or not
 *     ours, and resume is refused. A last line without '\n', or a bad last line (only blank
 *     lines after it), is torn: it is cut off with ftruncate and reported. The custom_ids
 *     found are the ones the runner skips. Without a usable fingerprint (no side file, or
 *     an input read from stdin) the runner must call sl__batch_output_check_ids at the end.
 *   - "-" is standard output: no resume, no side file, never closed.
 *   - A regular OUTPUT is locked (flock, exclusive) for as long as it is open: a second
 *     run on it is refused ("OUTPUT is being written by another sluice batch ...") before
 *     anything is read, cut or written.
 * Durability: fdatasync every sync_interval_ms (checked after each write; default 1000 ms)
 * and at close. Errors are SL_EINVAL (a refusal: the message says why and what to do),
 * SL_EPARSE (a damaged file), SL_EIO (with the system's reason), SL_ENOMEM. */
#ifndef SL_APPS_BATCH_OUTPUT_H
#define SL_APPS_BATCH_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <sluice/call.h>
#include <sluice/common.h>

#include "apps/batch/idset.h"
#include "base/buf.h"

#define SL_BATCH_SIDE_SUFFIX     ".sluice"
#define SL_BATCH_SIDE_VERSION    1
#define SL_BATCH_MAX_RESULT_LINE (64u * 1024 * 1024) /* cap on a line read back on resume */

typedef struct sl_batch_output sl_batch_output;

typedef struct sl_batch_output_opts {
    int resume;                 /* continue an existing file */
    int side_file;              /* 1 for OUTPUT (fingerprint side file), 0 for --errors */
    const char *input_path;     /* recorded in the side file; NULL: "-" */
    uint64_t input_fingerprint; /* FNV-1a 64 of the input (sl__batch_input_scan) */
    int fingerprint_known;      /* 0 when the input is read once (stdin): no comparison */
    long sync_interval_ms;      /* 0: 1000; < 0: only at close */
    double (*now_ms)(void);     /* monotonic clock; NULL: sl__clock_ms (tests pass a fake) */
    int64_t created_unix;       /* side file "created"; 0: now */
    uint64_t id_salt;           /* first half of each "batch_req_" id; 0: random */
    /* write(2) to use; NULL: write. Tests inject short writes, EINTR and ENOSPC here. */
    ssize_t (*write_fn)(int fd, const void *p, size_t n);
    /* 1: the caller never writes a custom_id twice in this run (the batch runner: its input
     * refuses duplicate ids), so the ids it writes are not remembered, only those read back
     * on resume: sl__batch_output_has, the refusal of a second line and the id check then
     * know only those. Saves a second copy of every id. */
    int forget_written;
} sl_batch_output_opts;

/* What open found in an existing file. */
typedef struct sl_batch_resume_info {
    int resumed;                /* 1 if an existing file is being continued */
    uint64_t lines;             /* result lines kept */
    uint64_t ids;               /* distinct custom_ids among them (skipped by the runner) */
    uint64_t failed;            /* of those ids, lines whose "error" is not null */
    uint64_t duplicates;        /* lines whose custom_id was already seen (should be 0) */
    int torn;                   /* 1 if a torn last line was cut off */
    uint64_t torn_line;         /* its line number */
    uint64_t torn_bytes;        /* bytes removed */
    int had_side_file;          /* OUTPUT.sluice existed */
    int needs_id_check;         /* call sl__batch_output_check_ids after the input is read */
    int side_fingerprint_known; /* the side file names its input's fingerprint: */
    uint64_t side_fingerprint;  /* an input read from stdin is compared at its end */
} sl_batch_resume_info;

/* Fill o with the defaults (side_file 1, everything else 0/NULL). */
void sl__batch_output_opts_init(sl_batch_output_opts *o);

/* Open path ("-": stdout) as described above. On success *out is ready for writes and
 * *info (if not NULL) says what was found. On failure *out is NULL, *info is zeroed, err
 * holds one line naming the path, and nothing was modified (a refusal never writes). */
int sl__batch_output_open(const char *path, const sl_batch_output_opts *o, sl_batch_output **out,
                          sl_batch_resume_info *info, char *err, size_t errlen);

/* The errors file: same format, no side file. */
int sl__batch_errors_open(const char *path, int resume, sl_batch_output **out,
                          sl_batch_resume_info *info, char *err, size_t errlen);

/* 1 if custom_id already has a line in this file (from before, or written now unless
 * forget_written). */
int sl__batch_output_has(const sl_batch_output *out, const char *custom_id);
/* The custom_ids with a line (those written now only without forget_written), borrowed;
 * values are 0. */
const sl_batch_idset *sl__batch_output_ids(const sl_batch_output *out);

/* One result, as the runner knows it. Strings are borrowed for the call. */
typedef struct sl_batch_result {
    const char *custom_id;
    int status_code;        /* HTTP status of the answer; 0: no answer ("response": null) */
    const char *request_id; /* x-request-id; NULL: null */
    sl_str body;            /* the answer's body as received; ptr NULL: "body": null */
    const char *error_code; /* NULL and error_message NULL: "error": null */
    const char *error_message;
    int attempts;                       /* HTTP attempts made; more than 1 adds the log */
    const sl_attempt_info *attempt_log; /* the first attempt_log_len of them */
    int attempt_log_len;
} sl_batch_result;

/* Append the line for r to dst, with "id" req_id:
 *   {"id":REQ,"custom_id":ID,"response":{"status_code":N,"request_id":RID,"body":BODY},
 *    "error":{"code":C,"message":M}}\n
 * "response" is null when status_code is 0; "error" is null when both code and message
 * are NULL (a NULL member of a non-null error is null). After a retry the line also has
 * "attempts":N and "attempt_log":[{"status":S,"error":E,"start_ms":..,"wait_ms":..,
 * "duration_ms":..,"backoff_ms":B},...] (S null without an answer, E null for success,
 * B null after the last); a line of one attempt has neither. A body that is valid JSON is
 * embedded byte for byte (numbers stay as the provider wrote them) with any CR/LF between
 * tokens turned into spaces; any other body is embedded as a JSON string. Strings are
 * quoted by sl__batch_json_quote, so the line is always one line of valid UTF-8 JSON.
 * 0, SL_ELIMIT, SL_ENOMEM. */
int sl__batch_result_line(sl_buf *dst, const char *req_id, const sl_batch_result *r);

/* The "error" code of a failure (error an SL_E* code, status its HTTP status): "http_503",
 * "timeout", "transport", "protocol", "diverged", "too_large", "circuit_open" or "error".
 * buf (32 bytes) holds the "http_N" form. */
const char *sl__batch_error_code(int error, int http_status, char *buf, size_t len);

/* The next unique request id of this output: "batch_req_" + 16 hex digits of the salt +
 * 8 or more hex digits of a counter. buf needs SL_BATCH_REQ_ID_LEN bytes. */
#define SL_BATCH_REQ_ID_LEN 48
void sl__batch_output_next_req_id(sl_batch_output *out, char *buf);

/* Build r's line and write it (one write). Returns 0 when written, 1 when custom_id
 * already had a line (nothing written), SL_EINVAL (no custom_id), SL_EIO (message in
 * sl__batch_output_error; the output refuses further writes), SL_ENOMEM. */
int sl__batch_output_put(sl_batch_output *out, const sl_batch_result *r);

/* Write one ready line (must end with its only '\n', else SL_EINVAL) with a single
 * write(). custom_id, if not NULL, is recorded as present (not with forget_written); if it
 * already was, nothing is written and 1 is returned. On a write error a partial line is cut off
 * again (files this module opened; not stdout) and the output refuses every later write (SL_EIO).
 */
int sl__batch_output_write_line(sl_batch_output *out, const char *line, size_t len,
                                const char *custom_id);

/* Flush to disk now (fdatasync; a no-op unless the fd is a regular file, which stdout
 * redirected to a file is). 0 or SL_EIO. */
int sl__batch_output_sync(sl_batch_output *out);

/* Record the fingerprint of an input that was read from a stream (stdin) in the side file,
 * once the whole input has been read, so that a later --resume can compare. Does nothing
 * for an output without side file. 0, or an error with err filled. */
int sl__batch_output_set_fingerprint(sl_batch_output *out, uint64_t fingerprint, char *err,
                                     size_t errlen);

/* Resume without a fingerprint: every custom_id of the file must be an id of the input
 * (input_ids: sl__batch_input_ids after the end of input; with forget_written only the ids
 * read back are checked: the caller wrote the others from the input). Returns 0 if so, and then,
 * when OUTPUT.sluice is missing, writes it with fingerprint (the input's, now known).
 * Otherwise SL_EINVAL and err: "OUTPUT has N results whose custom_id is not in the input
 * (first: "x"); it was made from a different input". */
int sl__batch_output_check_ids(sl_batch_output *out, const sl_batch_idset *input_ids,
                               uint64_t fingerprint, char *err, size_t errlen);

/* Counters since open. */
typedef struct sl_batch_output_stats {
    uint64_t lines; /* lines written by this process */
    uint64_t bytes;
    uint64_t syncs;  /* fdatasync calls made */
    uint64_t writes; /* write() calls made (one per line unless a write was partial) */
} sl_batch_output_stats;
void sl__batch_output_stats_get(const sl_batch_output *out, sl_batch_output_stats *st);

/* One line about the last write error ("" if none). */
const char *sl__batch_output_error(const sl_batch_output *out);

/* Sync (regular files), close (not stdout) and free. 0, or SL_EIO if the final sync or
 * close failed, or if a write had failed before (the message then is in err). */
int sl__batch_output_close(sl_batch_output *out, char *err, size_t errlen);

#endif
