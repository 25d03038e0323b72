/* httpd.h — a small HTTP/1.1 server on libuv, request parsing by http-parser.
 *
 * It carries `sluice mock` and `sluice serve`. It owns sockets, parsing, limits,
 * keep-alive, pipelining and response framing; it knows nothing about LLMs.
 *
 * - Keep-alive; pipelined requests are answered in order: the next request on a
 *   connection is not handed to the application before the current response has ended
 *   (parsing pauses, and reading stops once a bounded amount of input is buffered).
 * - Hard caps on untrusted input: header bytes, header count, body size, and timeouts for
 *   reading the headers and for an idle keep-alive connection. A request over a cap gets a
 *   clean 4xx (431, 413, 400, 408) with a JSON error body and the connection is closed.
 * - Streamed responses use chunked transfer-encoding. Backpressure: sl__httpd_writable()
 *   turns 0 while the bytes queued on the socket exceed the high watermark; on_drain fires
 *   when they fall back under half of it. A producer stops while not writable.
 *
 * Lifetime: an sl_httpd_req is valid from on_request until the response has ended
 * (sl__httpd_end / sl__httpd_respond / sl__httpd_abort) or on_close fired, whichever
 * is first; after on_close the application must not touch it.
 *
 * Details of the contract:
 * - The application is never called from inside one of its own calls into the server:
 *   the next pipelined request is handed over from the loop, and on_close fires from the
 *   connection's close callback (so during the same loop iteration as the failure, and
 *   calls made in between return SL_EIO).
 * - on_close fires at most once, only for a request the application holds (seen by
 *   on_headers or on_request) whose response has not ended. sl__httpd_abort, and
 *   sl__httpd_respond / sl__httpd_end even when they return SL_EIO, end the request:
 *   no on_close follows. sl__httpd_start / sl__httpd_write returning SL_EIO do not: the
 *   connection is gone and on_close follows.
 * - Answers the server gives itself (400 malformed, 408, 413, 431, 501 CONNECT, 505, and
 *   the status returned by on_headers) close the connection after being sent. The close
 *   is graceful: FIN after the response, then what the peer still sends is read and
 *   dropped for up to 2 s, so the peer gets the answer rather than a reset.
 * - Upgrade headers are ignored (the request is served as plain HTTP/1.1); HEAD gets the
 *   headers of the response without its body; HTTP/1.0 peers get streamed responses
 *   without chunked framing, ended by closing the connection; "Expect: 100-continue" is
 *   answered when the body has not started to arrive.
 * - The peer closing its side (EOF) while a response is in progress is a client abort. */
#ifndef SL_IO_HTTPD_H
#define SL_IO_HTTPD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <sluice/common.h>

typedef struct sl_httpd sl_httpd;
typedef struct sl_httpd_req sl_httpd_req;

/* Zero sizes and counts take the default; a timeout <= 0 disables it. Header bytes are
 * counted as the URL plus every header name and value plus 4 per header. */
typedef struct sl_httpd_limits {
    size_t max_header_bytes; /* request line + headers; default 16 KiB -> 431 */
    int max_headers;         /* default 100 -> 431 */
    size_t max_body;         /* default 1 MiB -> 413 */
    long header_timeout_ms;  /* first byte of a request -> end of its body; default 10000 -> 408 */
    long idle_timeout_ms;    /* keep-alive connection with no request; default 60000 */
    size_t write_high_watermark; /* default 256 KiB */
    int max_connections;         /* default 10000; above it new connections are closed */
} sl_httpd_limits;

void sl__httpd_limits_init(sl_httpd_limits *l);

/* A complete request (headers and body) arrived. The application answers now or later
 * with sl__httpd_respond, or sl__httpd_start + sl__httpd_write... + sl__httpd_end. */
typedef void (*sl_httpd_request_cb)(sl_httpd_req *req, void *user);
/* Optional: called when the headers are complete, before the body is read. Return 0 to
 * go on, or an HTTP status (e.g. 401, 413) to answer it now with a JSON error body and
 * skip on_request (a value outside 400..599 answers 500); the connection then closes. */
typedef int (*sl_httpd_headers_cb)(sl_httpd_req *req, void *user);
/* The peer closed (or the connection failed) before the response ended. Fires from the
 * connection's close callback; the request must not be touched after it returns. */
typedef void (*sl_httpd_close_cb)(sl_httpd_req *req, void *user);
/* The write queue fell back under the low watermark. */
typedef void (*sl_httpd_drain_cb)(sl_httpd_req *req, void *user);

typedef struct sl_httpd_handlers {
    sl_httpd_request_cb on_request; /* required */
    sl_httpd_headers_cb on_headers; /* optional */
    void *user;
} sl_httpd_handlers;

/* Create a server on loop (limits NULL: defaults). 0, SL_EINVAL or SL_ENOMEM. Sets
 * SIGPIPE to ignored if it still has the default action (a reset peer must not kill the
 * process; failed writes are seen as EPIPE instead). */
int sl__httpd_new(uv_loop_t *loop, const sl_httpd_limits *limits, const sl_httpd_handlers *h,
                  sl_httpd **out);
/* Listen on host:port (port 0: a free port); reuseport sets SO_REUSEPORT. host is an
 * IPv4 or IPv6 literal, or "localhost". 0, SL_EINVAL (already listening) or SL_EADDR
 * (after which the server can only be freed). The backlog is 1024. */
int sl__httpd_listen(sl_httpd *s, const char *host, int port, int reuseport);
/* The bound port, after a successful listen. */
int sl__httpd_port(const sl_httpd *s);
/* Connections accepted so far (including those closed at once by max_connections), and
 * open now (counted until their close callback has run). */
unsigned long sl__httpd_accepted(const sl_httpd *s);
unsigned long sl__httpd_open_connections(const sl_httpd *s);
/* Stop listening and close every connection (on_close fires for requests whose
 * response had not ended). Memory goes in the close callbacks: run the loop. */
void sl__httpd_free(sl_httpd *s);
/* Testing: the clock of the Date header (seconds since the epoch; NULL: the real one). */
void sl__httpd_set_clock(sl_httpd *s, int64_t (*now_unix)(void));
/* Fuzzing: run the parsing, limits, pipelining and response logic of one connection over
 * data, without a socket or a loop: the input is fed in chunks derived from its own bytes
 * to a canned application that answers at once, later, streamed or aborted; responses are
 * discarded. Deterministic. 0, or -1 when a promise of this header was broken (a second
 * request handed over before the first ended, on_close twice or for a request not held).
 * Uses static state: one thread only. */
int sl__httpd_fuzz_feed(const uint8_t *data, size_t len);

/* ---- the request ---- */
sl_str sl__httpd_req_method(const sl_httpd_req *r);
sl_str sl__httpd_req_path(const sl_httpd_req *r);  /* without the query string */
sl_str sl__httpd_req_query(const sl_httpd_req *r); /* after '?', may be empty */
sl_str sl__httpd_req_body(const sl_httpd_req *r);
/* First header with that name (case-insensitive), or {NULL, 0}. */
sl_str sl__httpd_req_header(const sl_httpd_req *r, const char *name);
/* Number of headers, and the i-th name and value. */
int sl__httpd_req_header_count(const sl_httpd_req *r);
void sl__httpd_req_header_at(const sl_httpd_req *r, int i, sl_str *name, sl_str *value);
/* The peer's address as text ("127.0.0.1"). */
const char *sl__httpd_req_peer(const sl_httpd_req *r);
void sl__httpd_req_set_user(sl_httpd_req *r, void *user);
void *sl__httpd_req_user(const sl_httpd_req *r);
void sl__httpd_req_on_close(sl_httpd_req *r, sl_httpd_close_cb cb);
void sl__httpd_req_on_drain(sl_httpd_req *r, sl_httpd_drain_cb cb);
/* Slow reader (fault injection): after each read of this request's body, stop reading
 * for ms. Call from on_headers (the header timeout still applies). */
void sl__httpd_req_throttle(sl_httpd_req *r, long ms);

/* ---- the response ----
 * extra_headers: NULL or "Name: value\r\n" lines. Content-Length, Transfer-Encoding,
 * Date, Connection are set by the server. All return 0, SL_EINVAL (wrong state) or
 * SL_EIO (the connection is gone). */
int sl__httpd_respond(sl_httpd_req *r, int status, const char *content_type,
                      const char *extra_headers, const char *body, size_t len);
/* A JSON error body in OpenAI's shape: {"error":{"message":..,"type":..,"param":null,"code":..}}.
 */
int sl__httpd_respond_error(sl_httpd_req *r, int status, const char *type, const char *message);
/* Begin a chunked response. */
int sl__httpd_start(sl_httpd_req *r, int status, const char *content_type,
                    const char *extra_headers);
/* One chunk (len 0 is ignored). Data is copied. */
int sl__httpd_write(sl_httpd_req *r, const char *data, size_t len);
/* The terminating chunk: the response has ended. */
int sl__httpd_end(sl_httpd_req *r);
/* Close the connection now without ending the response (a cut stream). Bytes already in
 * the kernel still go out; those queued in libuv are dropped. The request is over: no
 * on_close follows. */
void sl__httpd_abort(sl_httpd_req *r);
/* 1 while the socket's write queue is under the high watermark. */
int sl__httpd_writable(const sl_httpd_req *r);

#endif
