/* httpc.h — HTTP client on a libuv loop: our HTTP/1.1 transport for http://, libcurl's
 * multi_socket interface for https:// (TLS, HTTP/2).
 *
 * One sl_httpc is one client on one loop: every request made through it shares its
 * connection pool (keep-alive; HTTP/2 multiplexing where a TLS server offers it). It moves
 * bytes and reports headers; it knows nothing about LLMs or SSE. The transport is chosen
 * per request by its URL (sl_httpc_opts.transport can force libcurl); the rules below hold
 * for both, and the unit tests run each of them against both.
 *
 * Callback rules (they are what make the layers above simple):
 * - on_head and on_data run inside the transport (a read callback, or libcurl's write and
 *   header callbacks). From there the owner may call pause, resume, cancel, free on any
 *   request and start new ones: the work that cannot happen there is deferred to the loop.
 *   The bytes given to on_data are borrowed until it returns.
 * - on_done runs exactly once per started request, from the loop and never inside
 *   the transport nor inside the caller of an sl__httpc_* function. The request may be freed
 *   inside on_done.
 * - Pausing stops reading the socket: no on_data while paused. Timeouts for
 *   the first byte and for silence between body bytes are this module's own timers;
 *   the idle clock does not run while paused.
 * - Cancel closes the connection (the transfer is incomplete) right away when called
 *   outside a transport callback, otherwise as soon as it returns; on_done follows with
 *   SL_ECANCELED.
 *
 * The module also offers deferred tasks (sl__httpc_defer): "run this soon, from the
 * loop", which the layers above use for the same reason. */
#ifndef SL_IO_HTTPC_H
#define SL_IO_HTTPC_H

#include <stddef.h>
#include <uv.h>

#include <sluice/common.h>

#include "base/buf.h"
#include "base/list.h"

typedef struct sl_httpc sl_httpc;
typedef struct sl_httpc_req sl_httpc_req;
typedef struct sl_httpc_headers sl_httpc_headers;

/* sl_httpc_opts.transport */
enum {
    SL_HTTPC_AUTO = 0, /* http:// by our HTTP/1.1 client, everything else by libcurl (and
                          http:// too when http_proxy, all_proxy or ALL_PROXY is set) */
    SL_HTTPC_H1 = 1,   /* http:// only: any other URL is SL_EINVAL */
    SL_HTTPC_CURL = 2  /* every URL by libcurl */
};

typedef struct sl_httpc_opts {
    long connect_timeout_ms;    /* 0: libcurl's default */
    long first_byte_timeout_ms; /* connection ready -> first response byte; 0: none */
    long idle_timeout_ms;       /* longest silence between response bytes; 0: none */
    long total_timeout_ms;      /* whole request; 0: none */
    int max_host_connections;   /* 0: no cap */
    size_t max_header_bytes;    /* all response header lines; 0: 64 KiB */
    int transport;              /* SL_HTTPC_AUTO, SL_HTTPC_H1 or SL_HTTPC_CURL */
} sl_httpc_opts;

/* The response head, as far as the layers above care. Strings are NUL-terminated,
 * truncated to their buffers. */
typedef struct sl_httpc_head {
    int status;              /* final status (1xx interim answers are skipped) */
    char content_type[128];  /* lowercased, parameters kept; "" if absent */
    char request_id[128];    /* x-request-id; "" if absent */
    long retry_after_ms;     /* retry-after-ms, else Retry-After (seconds or HTTP date); -1 */
    long remaining_requests; /* x-ratelimit-remaining-requests; -1 */
    long remaining_tokens;   /* x-ratelimit-remaining-tokens; -1 */
    long reset_requests_ms;  /* x-ratelimit-reset-requests ("1s", "6m0s", "20ms"); -1 */
    long reset_tokens_ms;    /* x-ratelimit-reset-tokens; -1 */
    double first_byte_ms;    /* sl__clock_ms() at the first response byte; -1 if none */
    sl_buf raw;              /* the final response's header lines as received (capped); valid only
                              * while on_head runs (freed after it, so a stream does not keep them) */
} sl_httpc_head;

/* Return 0 to go on; a negative SL_E* code aborts the transfer and on_done reports it. */
typedef int (*sl_httpc_head_cb)(sl_httpc_req *r, const sl_httpc_head *head, void *user);
typedef int (*sl_httpc_data_cb)(sl_httpc_req *r, const char *p, size_t n, void *user);
/* err: 0 when a complete response arrived (any status; see head), else SL_ETRANSPORT,
 * SL_ETIMEDOUT, SL_ECANCELED, SL_ELIMIT, SL_EINVAL, SL_ENOMEM or the code returned by
 * on_head / on_data. msg: one line saying what failed (no URL), "" on success; borrowed
 * until on_done returns. */
typedef void (*sl_httpc_done_cb)(sl_httpc_req *r, int err, const char *msg, void *user);

typedef struct sl_httpc_req_opts {
    const char *method;         /* "POST", "GET", ...; NULL: POST with a body, else GET */
    const char *url;            /* required; copied */
    const char *const *headers; /* "Name: value" lines, copied */
    size_t nheaders;
    const sl_httpc_headers *header_set; /* instead of headers: lines made once */
    const char *body;                   /* borrowed until the request is freed; may be NULL */
    size_t body_len;
    /* 0: the client's value; < 0: none for this request */
    long connect_timeout_ms;
    long first_byte_timeout_ms;
    long idle_timeout_ms;
    long total_timeout_ms;
    sl_httpc_head_cb on_head; /* may be NULL */
    sl_httpc_data_cb on_data; /* may be NULL: the body is dropped */
    sl_httpc_done_cb on_done; /* required */
    void *user;
} sl_httpc_req_opts;

void sl__httpc_opts_init(sl_httpc_opts *o);

/* A client on loop (o NULL: defaults). 0, SL_EINVAL or SL_ENOMEM. */
int sl__httpc_new(uv_loop_t *loop, const sl_httpc_opts *o, sl_httpc **out);
/* Release the client. Every request should have been freed first; any left are dropped
 * without callbacks. The libuv handles close asynchronously (run the loop until it has
 * no handles). Safe inside one of the client's callbacks: the teardown then happens
 * when the callback returns. */
void sl__httpc_free(sl_httpc *h);
uv_loop_t *sl__httpc_loop(const sl_httpc *h);

/* Header lines made once for many requests (sl_httpc_req_opts.header_set): (lines, n)
 * are copied. The set belongs to h and lives until h is freed. 0, SL_EINVAL (h is being
 * freed) or SL_ENOMEM. */
int sl__httpc_headers_add(sl_httpc *h, const char *const *lines, size_t n,
                          const sl_httpc_headers **out);

/* Start a request. On success *out is valid until sl__httpc_req_free and on_done will
 * fire exactly once. On error (SL_EINVAL, SL_ENOMEM) nothing was started and no
 * callback fires. */
int sl__httpc_start(sl_httpc *h, const sl_httpc_req_opts *o, sl_httpc_req **out);
void sl__httpc_pause(sl_httpc_req *r);
void sl__httpc_resume(sl_httpc_req *r);
/* No-op once on_done has been delivered. */
void sl__httpc_cancel(sl_httpc_req *r);
/* Release the request at any time, also inside its callbacks. A running transfer is
 * aborted and no callback fires any more. NULL is a no-op. */
void sl__httpc_req_free(sl_httpc_req *r);
/* The response head (status 0 until it arrived). Valid until the request is freed. */
const sl_httpc_head *sl__httpc_head(const sl_httpc_req *r);

/* Deferred work. t->run(t) is called once, soon, from the loop: never inside libcurl
 * and never inside the function that deferred it. Deferring a queued task is a no-op;
 * sl__httpc_undefer removes it (call it before freeing the task's owner). */
typedef struct sl_httpc_task {
    void (*run)(struct sl_httpc_task *t);
    sl_link link;
} sl_httpc_task;

void sl__httpc_task_init(sl_httpc_task *t, void (*run)(sl_httpc_task *t));
void sl__httpc_defer(sl_httpc *h, sl_httpc_task *t);
void sl__httpc_undefer(sl_httpc_task *t);

/* Header value parsers, exposed for tests. Durations as OpenAI sends them ("1s", "6m0s",
 * "20ms", "1h2m3.5s", "250us"; a bare number is seconds), rounded up to whole ms.
 * -1 when (s, n) is not one. */
long sl__httpc_parse_duration_ms(const char *s, size_t n);
/* Retry-After: delta seconds or an HTTP date (now_unix: the current time). -1 if bad. */
long sl__httpc_parse_retry_after_ms(const char *s, size_t n, long long now_unix);

#endif
