/* attempt.h — one HTTP attempt of a call: request out, deltas and one result in.
 *
 * An attempt sends one request through io/httpc, runs the answer through the adapter
 * (llm/openai) and reports zero or more deltas then exactly one on_done. It knows
 * nothing of retries, deadlines or rate limits: the policy layer wraps attempts, and the
 * public sl_call (policy/call.c) is built on top of one or more of them.
 *
 * - Callbacks run from the loop; never inside sl__attempt_start nor inside the caller
 *   of pause/resume/cancel. The attempt may be freed inside any of its callbacks.
 * - Pause stops reading the socket. Deltas already parsed from the last read are held
 *   back and delivered, in order, after resume; on_done waits behind them.
 * - Cancel closes the connection (at once outside libcurl, else as soon as libcurl
 *   returns) and on_done follows with SL_ECANCELED; held deltas are dropped.
 * - A stream that delivered [DONE] counts as complete even if the transport then fails
 *   (a stall or reset after the last event loses nothing). */
#ifndef SL_LLM_ATTEMPT_H
#define SL_LLM_ATTEMPT_H

#include <stddef.h>

#include <sluice/call.h>

#include "io/httpc.h"
#include "llm/openai.h"

typedef struct sl_attempt sl_attempt;

/* What an attempt needs from its client; borrowed, must outlive the attempt. */
typedef struct sl_attempt_env {
    sl_httpc *http;
    const char *base_url;
    const char *api_key;    /* may be NULL */
    const char *user_agent; /* may be NULL */
    size_t max_response_bytes;
    /* The request headers (sl__openai_headers) made once, [0] not streamed, [1] streamed;
     * NULL: made for each attempt. */
    const sl_httpc_headers *headers[2];
    /* Parsers to reuse (llm/openai.h); NULL: each attempt makes and frees its own. */
    sl_openai_spares *spares;
} sl_attempt_env;

/* Strings borrowed until the attempt is freed. */
typedef struct sl_attempt_result {
    int error;           /* 0 or an SL_E* code, as in sl_result */
    const char *message; /* error only: "POST <url>: <what failed>"; NULL on success */
    int http_status;     /* 0 if no answer arrived; for an error object inside a 2xx
                            answer, the status that object names (when it names one) */
    sl_str error_body;   /* SL_EHTTP: the provider's error body (capped at 1 MiB) */
    sl_str text;         /* choice 0's content as parsed (success) */
    sl_str reasoning;
    const char *finish_reason;
    sl_usage usage;
    sl_str body;            /* success: the response object as JSON */
    const char *request_id; /* NULL if absent */
    long retry_after_ms;    /* -1 if absent */
    sl_ratelimit_info ratelimit;
    double first_byte_ms; /* sl__clock_ms() at the first response byte; -1 if none */
} sl_attempt_result;

typedef void (*sl_attempt_delta_cb)(sl_attempt *a, const sl_delta *d, void *user);
typedef void (*sl_attempt_done_cb)(sl_attempt *a, const sl_attempt_result *r, void *user);

typedef struct sl_attempt_opts {
    long total_timeout_ms;        /* 0: the client's */
    sl_attempt_delta_cb on_delta; /* may be NULL */
    sl_attempt_done_cb on_done;   /* required */
    void *user;
} sl_attempt_opts;

/* Send hr (sl__openai_build_body; borrowed, must outlive the attempt, as must its body
 * while the transfer runs). 0, or SL_EINVAL / SL_ENOMEM and no callback fires. */
int sl__attempt_start(const sl_attempt_env *env, const sl_openai_http *hr, const sl_attempt_opts *o,
                      sl_attempt **out);
/* Where the consumer will write on its next delta (NULL: nowhere known): asked for as a
 * chunk arrives, with the other lines a delta touches, so that the misses overlap. */
void sl__attempt_hint(sl_attempt *a, const void *p);
/* After a success, inside on_done: move the result's body into dst (dst's old memory goes
 * to the attempt) instead of copying it; r->body is "" afterwards. 1 if moved, 0 if there
 * was no body to move (dst untouched). */
int sl__attempt_take_body(sl_attempt *a, sl_buf *dst);
void sl__attempt_pause(sl_attempt *a);
void sl__attempt_resume(sl_attempt *a);
/* No-op once on_done was delivered. */
void sl__attempt_cancel(sl_attempt *a);
/* Release at any time (also inside its callbacks): no callback fires afterwards; a
 * running transfer is aborted. NULL is a no-op. */
void sl__attempt_free(sl_attempt *a);

#endif
