/* sluice/call.h — streaming LLM calls: clients, requests, deltas, results.
 *
 * The stream contract (the C form of an async generator): a call delivers zero or more
 * on_delta callbacks, then exactly one on_done with the final result or the error that
 * ended it. Exactly one on_done on every path: success, HTTP error, cut stream, timeout,
 * cancel, sl_call_free and sl_client_free during a transfer.
 *
 * Two ways to consume a call, the same contract underneath:
 *   - callbacks on a libuv loop (sl_call_start), for servers and many concurrent calls;
 *   - a blocking pull iterator (sl_stream_open / sl_stream_next), for simple programs.
 *
 * Threads: a client and everything made from it belong to the thread that runs its loop. */
#ifndef SLUICE_CALL_H
#define SLUICE_CALL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <sluice/common.h>

/* ---- client: one provider endpoint and a connection pool ------------------------- */

typedef struct sl_client sl_client;

typedef struct sl_client_opts {
    const char *base_url; /* "https://api.openai.com/v1", "http://127.0.0.1:8080/v1"; required */
    const char *api_key;  /* sent as "Authorization: Bearer ..."; NULL: no header */
    /* Timeouts: 0 means the default, a negative value none. */
    long connect_timeout_ms;    /* default 10000 */
    long first_byte_timeout_ms; /* connection ready -> first response byte; default 120000 */
    long idle_timeout_ms;       /* longest silence between body bytes (the clock stops
                                   while paused); default 120000 */
    long total_timeout_ms;      /* whole call; 0 (default) = none */
    int max_host_connections;   /* open connections to the provider; 0 = no cap */
    size_t max_response_bytes;  /* cap on a non-streamed body or one SSE event; default 8 MiB */
    const char *user_agent;     /* default "sluice/VERSION" */
} sl_client_opts;

/* Fill o with the defaults above (base_url NULL). */
void sl_client_opts_init(sl_client_opts *o);

/* Create a client on loop. loop NULL: the client makes and owns a private loop (needed
 * by the blocking iterator). Strings in o are copied. 0 or SL_EINVAL (no base_url, not
 * http(s)://, control characters in a header value) / SL_ENOMEM. The client keeps one
 * connection pool: calls reuse connections (and multiplex over HTTP/2 on https). */
int sl_client_new(uv_loop_t *loop, const sl_client_opts *o, sl_client **out);

/* The loop the client runs on (its private one if it was created with NULL). */
uv_loop_t *sl_client_loop(sl_client *c);
const char *sl_client_base_url(const sl_client *c);

/* Cancel every running call (each gets its on_done with SL_ECANCELED before this
 * returns) and release the client. The sl_call handles stay valid until sl_call_free.
 * With a caller's loop, the client's libuv handles close asynchronously: run the loop
 * until it has no more handles; this may be called inside a callback of one of its
 * calls. With a private loop, this runs it to completion itself, so it must not be
 * called from inside a callback then. */
void sl_client_free(sl_client *c);

/* ---- request: an OpenAI-compatible request body ---------------------------------- */

typedef struct sl_request sl_request;

/* An empty streamed chat request: {"messages":[],"stream":true}. */
int sl_request_new(sl_request **out);
/* A request from a JSON object body (OpenAI's shape). Fields sluice does not know
 * (tools, response_format, seed, ...) are kept and sent unchanged (numbers keep their
 * digits, keys their order). Streaming is what the body says ("stream" absent: off, as
 * in OpenAI's API). SL_EPARSE if (json, len) is not a JSON object, SL_ELIMIT if it nests
 * deeper than 64 levels. */
int sl_request_from_json(const char *json, size_t len, sl_request **out);
void sl_request_free(sl_request *r);

/* Endpoint path relative to the base URL: "/chat/completions" (default),
 * "/completions", "/embeddings". */
int sl_request_set_endpoint(sl_request *r, const char *path);
const char *sl_request_endpoint(const sl_request *r);
int sl_request_set_model(sl_request *r, const char *model);
/* Set the model only if the body has none. */
int sl_request_default_model(sl_request *r, const char *model);
const char *sl_request_model(const sl_request *r);
/* Prepend a system message; if the first message already is one, replace its content.
 * SL_EINVAL if the body's "messages" is not an array or text is not UTF-8. */
int sl_request_set_system(sl_request *r, const char *text);
/* Append {"role":role,"content":(content, len)}; "messages" is created if absent. */
int sl_request_add_message(sl_request *r, const char *role, const char *content, size_t len);
/* Sets max_completion_tokens if the body uses that name, else max_tokens. n > 0. */
int sl_request_set_max_tokens(sl_request *r, long n);
/* max_tokens or max_completion_tokens of the body, or -1. */
long sl_request_max_tokens(const sl_request *r);
int sl_request_set_temperature(sl_request *r, double t);
/* Streaming (sl_request_new: on; from_json: the body's "stream"). A streamed chat or text
 * completion also asks for usage (stream_options.include_usage: true is added on the wire
 * unless the body has stream_options); a request that is not streamed drops
 * stream_options. /embeddings is never streamed. */
int sl_request_set_stream(sl_request *r, int on);
int sl_request_stream(const sl_request *r);
/* Estimated prompt tokens, for rate limits before the provider reports usage:
 * (bytes + 3) / 4 + 4 per message, where bytes counts the message texts (string
 * content, text parts, names, tool-call arguments), "prompt", "input" (4 per token id)
 * and the JSON of "tools". */
long sl_request_estimate_tokens(const sl_request *r);
/* The body as compact JSON (as held, without the wire additions above); caller frees
 * with free(). NULL on ENOMEM. */
char *sl_request_to_json(const sl_request *r);

/* ---- deltas and the final result -------------------------------------------------- */

typedef enum sl_delta_kind {
    SL_DELTA_CONTENT = 1,   /* a piece of the answer text */
    SL_DELTA_REASONING = 2, /* a piece of reasoning text (reasoning_content / reasoning) */
    SL_DELTA_TOOL_CALL = 3, /* a piece of a tool call's arguments */
} sl_delta_kind;

/* Borrowed until the callback returns (or until the next sl_stream_next). Empty strings
 * point at "" (never NULL). A non-streamed answer is delivered as deltas too: per
 * choice its reasoning, its content, then one delta per tool call. */
typedef struct sl_delta {
    sl_delta_kind kind;
    int choice; /* choice index */
    sl_str text;
    /* SL_DELTA_TOOL_CALL only: */
    int tool_index;
    sl_str tool_id;   /* set on the first piece of a tool call, else empty */
    sl_str tool_name; /* idem */
} sl_delta;

typedef struct sl_usage {
    long prompt_tokens; /* -1 when the provider did not say */
    long completion_tokens;
    long total_tokens;
} sl_usage;

typedef struct sl_timings {
    double ttfb_ms;  /* start -> first response byte (last attempt); -1 if none */
    double ttft_ms;  /* start -> first delivered delta; -1 if none */
    double total_ms; /* start -> on_done */
} sl_timings;

/* Rate-limit headers of the last answer (x-ratelimit-*), -1 where absent. */
typedef struct sl_ratelimit_info {
    long remaining_requests;
    long remaining_tokens;
    long reset_requests_ms;
    long reset_tokens_ms;
} sl_ratelimit_info;

/* One attempt of a call (one HTTP request), as recorded in sl_result.attempt_log. Times
 * are in ms. */
typedef struct sl_attempt_info {
    int error;          /* what ended it: 0, or an SL_E* code as in sl_result.error
                           (SL_ETIMEDOUT when the deadline cut it, SL_EDIVERGED when its
                           replay of delivered text differed) */
    int http_status;    /* status of its answer; 0 if none arrived */
    double start_ms;    /* when it started, from the start of the call */
    double wait_ms;     /* time it waited before starting for a concurrency slot and
                           the rate limiter (the backoff before it is not included) */
    double duration_ms; /* start -> end of the attempt */
    double delay_ms;    /* backoff chosen after it, before the next attempt; -1 if none
                           followed */
} sl_attempt_info;

/* Attempts kept in sl_result.attempt_log; sl_result.attempts counts them all. */
#define SL_ATTEMPT_LOG_MAX 16

/* Borrowed until on_done returns (or until sl_stream_close). */
typedef struct sl_result {
    int error;           /* 0, or SL_ETRANSPORT, SL_ETIMEDOUT, SL_EHTTP, SL_ECANCELED, SL_EPROTO,
                            SL_ELIMIT, SL_EDIVERGED, SL_EBUSY */
    const char *message; /* error only: one line naming what failed (URL, status, the
                            provider's message); NULL on success */
    int http_status;     /* status of the last answer, 0 if none arrived; for an error
                            object inside a 2xx answer (SL_EHTTP), the status that object
                            names ("code"/"status" 400-599) if it names one */
    sl_str error_body;   /* SL_EHTTP: the provider's error body as received (up to 1 MiB),
                            or the data of the error event inside a stream */
    sl_str text;         /* full content of choice 0 (also on error: what was delivered) */
    sl_str reasoning;    /* full reasoning text of choice 0 */
    const char *finish_reason; /* "stop", "length", "tool_calls", ...; NULL if none */
    sl_usage usage;
    int attempts; /* HTTP attempts made (1 without retries; 0 if none started: refused
                     by the circuit breaker, cancelled or past the deadline while waiting) */
    const sl_attempt_info *attempt_log; /* the first min(attempts, SL_ATTEMPT_LOG_MAX)
                                           attempts, in order; NULL when there were none */
    int attempt_log_len;
    sl_timings timings;
    sl_str body;            /* success: the final response object as JSON (chat.completion,
                               assembled from the chunks when streamed), provider extras kept;
                               a non-streamed body byte for byte as received; "" on error */
    const char *request_id; /* x-request-id of the last answer, or NULL */
    long retry_after_ms;    /* Retry-After / retry-after-ms of the last answer, -1 if none */
    sl_ratelimit_info ratelimit;
} sl_result;

/* ---- calls on a loop ---------------------------------------------------------------- */

typedef struct sl_call sl_call;
typedef void (*sl_delta_cb)(sl_call *call, const sl_delta *d, void *user);
typedef void (*sl_done_cb)(sl_call *call, const sl_result *res, void *user);

typedef struct sl_call_opts {
    sl_delta_cb on_delta; /* may be NULL */
    sl_done_cb on_done;   /* required */
    void *user;
    long timeout_ms; /* total timeout for one attempt; 0 = the client's */
    /* Policies the call runs under (retry, limits, breaker, deadline; sluice/policy.h).
     * NULL: exactly one attempt. Borrowed: must outlive the call. */
    struct sl_policy *policy;
    /* Optional: attempt number `attempt` (1 for the first) failed with (err, http_status)
     * and attempt + 1 follows after delay_ms (it may still wait for a slot or the rate
     * limiter then). Runs on the loop; the call may be cancelled or freed inside. */
    void (*on_retry)(sl_call *call, int attempt, int err, int http_status, double delay_ms,
                     void *user);
} sl_call_opts;

/* Start req (copied) on the client's loop. On success *out is a handle valid until the
 * caller releases it with sl_call_free (any time, also inside on_done). Returns 0, or
 * SL_EINVAL (also: a policy made for another loop, or one being freed) / SL_ENOMEM and
 * then no callback ever fires. With o->policy the call may first wait (sluice/policy.h)
 * and may make several attempts; the result is the last attempt's, its text what was
 * delivered. Callbacks run on the loop,
 * never from inside sl_call_start. Inside on_delta the caller may pause, resume, cancel
 * or free this call and start or cancel others.
 *
 * Error messages read "POST <url>: <what>": "HTTP 429: <provider message>", "no
 * response within N ms", "no data for N ms", "stream ended before [DONE]", "invalid JSON
 * in stream event: ...", "provider error: <message>", "cancelled", or for a transport
 * failure "cannot connect to HOST:PORT: <reason>", "connection closed before the response
 * was complete", "connection lost: <reason>" (http://) or libcurl's words (https://). A stream
 * whose [DONE] arrived is a success even if the connection fails afterwards. Under a policy also:
 * "circuit open after N consecutive failures" (SL_EBUSY), "deadline of N ms exceeded after K
 * attempts" (SL_ETIMEDOUT), "retried stream diverged from the delivered text at byte N"
 * (SL_EDIVERGED). */
int sl_call_start(sl_client *c, const sl_request *req, const sl_call_opts *o, sl_call **out);

/* Backpressure: stop reading the provider's socket until resume. Deltas
 * already parsed from the last read are held back, not delivered, while paused. */
void sl_call_pause(sl_call *call);
void sl_call_resume(sl_call *call);

/* Close the upstream connection now (the provider stops generating). on_done follows
 * with SL_ECANCELED, from the loop, after sl_call_cancel returns. No-op once done. */
void sl_call_cancel(sl_call *call);

/* Release the handle. A running call is cancelled first and its on_done (SL_ECANCELED)
 * is delivered from inside sl_call_free, before it returns; no callback fires after.
 * Inside on_done (or on_delta), the memory goes after the callback returns. */
void sl_call_free(sl_call *call);

/* 1 once on_done has been delivered. */
int sl_call_done(const sl_call *call);
void *sl_call_user(const sl_call *call);

/* ---- the blocking pull iterator ---------------------------------------------------- */

typedef struct sl_stream sl_stream;

/* Open a call for pulling. The client must own its loop (sl_client_new with NULL),
 * else SL_EINVAL: the iterator runs that loop only inside sl_stream_next, so a consumer
 * that stops pulling stops reading the socket; while more than a few deltas wait
 * unpulled the call is paused. */
int sl_stream_open(sl_client *c, const sl_request *req, sl_stream **out);
/* The next delta, or NULL when the call has ended (then see sl_stream_result). The
 * delta is valid until the next call on s. */
const sl_delta *sl_stream_next(sl_stream *s);
/* The final result; valid once sl_stream_next returned NULL, until sl_stream_close. */
const sl_result *sl_stream_result(sl_stream *s);
/* Cancel if still running, and release. */
void sl_stream_close(sl_stream *s);

#endif
