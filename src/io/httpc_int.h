/* httpc_int.h — what io/httpc's front shares with its two transports (io/h1c, io/curlc).
 *
 * sl_httpc (httpc.c) is the front the layers above use: it owns the loop, the options,
 * the deferred tasks, the header sets and the busy/dying guard, and hands each request to
 * a transport by its URL: plain http:// goes to h1c (our HTTP/1.1 client on libuv and
 * http-parser), everything else (https://, HTTP/2) to curlc (libcurl's multi_socket).
 * Both transports keep the callback rules of httpc.h exactly; both parse the response
 * head through sl__httpc_head_line so that the same bytes give the same sl_httpc_head.
 * Nothing outside src/io includes this file. */
#ifndef SL_IO_HTTPC_INT_H
#define SL_IO_HTTPC_INT_H

#include <stdint.h>

#include "io/httpc.h"

typedef struct sl_h1c sl_h1c;
typedef struct sl_curlc sl_curlc;

enum { SL_HTTPC_REQ_H1 = 1, SL_HTTPC_REQ_CURL = 2 };

/* The first member of each transport's request: tells which transport owns it. */
struct sl_httpc_req {
    int kind;
};

struct sl_httpc_headers {
    struct sl_httpc_headers *next;
    char *block;      /* "Name: value\r\n" for every line, for h1c */
    size_t block_len; /* bytes in block */
    char **lines;     /* NUL-terminated copies, for curlc */
    size_t n;
    void *curl_list; /* curlc's list of the lines, made on first use */
};

struct sl_httpc {
    uv_loop_t *loop;
    sl_httpc_opts o;
    uv_timer_t defer_timer; /* runs queued tasks */
    sl_link tasks;          /* queued tasks */
    sl_link batch;          /* tasks taken for the current run */
    sl_httpc_headers *header_sets;
    sl_h1c *h1;     /* made on the first http:// request */
    sl_curlc *curl; /* made on the first request libcurl carries */
    int proxied;    /* a proxy is set in the environment: libcurl carries http:// too */
    int busy;       /* > 0 while one of our libuv callbacks runs */
    int dying;      /* sl__httpc_free was called inside a callback */
};

/* Bracket every libuv callback of the client and its transports: a free inside it then
 * waits for the outermost callback to return. */
void sl__httpc_enter(sl_httpc *h);
void sl__httpc_leave(sl_httpc *h);

/* Response heads: reset for a new response; parse one header line (no CR LF) into hd.
 * have_ms is per response: retry-after-ms, once seen, wins over Retry-After. */
void sl__httpc_head_reset(sl_httpc_head *hd);
void sl__httpc_head_line(sl_httpc_head *hd, const char *line, size_t n, int *have_ms);

/* The timeout in force: a request's own (< 0: none), else the client's. */
long sl__httpc_pick_timeout(long req, long client);

/* A request's deadlines, kept the same way by both transports. Times are uv_now(); a
 * duration of 0 means none. Data moves t_last_rx only: the timer notices when it fires and
 * sleeps again for the rest, so a busy stream costs no timer updates. */
typedef struct sl_httpc_clock {
    long connect_ms, first_byte_ms, idle_ms, total_ms;
    uint64_t t_start, t_connect, t_sent, t_last_rx;
    unsigned connecting : 1; /* the connect deadline runs (h1c: libcurl has its own) */
    unsigned sent : 1;       /* the request went out: the first-byte deadline runs */
    unsigned got_byte : 1;   /* a response byte arrived: the idle deadline runs */
    unsigned paused : 1;     /* no first-byte or idle deadline while the owner holds back */
} sl_httpc_clock;

/* Start t for the earliest deadline of k, or stop it when there is none or the request is
 * over (live 0). */
void sl__httpc_clock_arm(uv_timer_t *t, const sl_httpc_clock *k, int live, uv_timer_cb cb);
/* In the timer's callback: 1 and the line on_done reports in msg when a deadline has
 * passed ("no response within 30 ms", ...; authority names the server for the connect
 * deadline), else 0 after starting t again for the rest. */
int sl__httpc_clock_expired(uv_timer_t *t, const sl_httpc_clock *k, uv_timer_cb cb,
                            const char *authority, char *msg, size_t cap);

/* h1c: plain HTTP/1.1. The transport's handles close asynchronously after _free. */
int sl__h1c_new(sl_httpc *front, sl_h1c **out);
void sl__h1c_free(sl_h1c *c);
int sl__h1c_start(sl_h1c *c, const sl_httpc_req_opts *o, sl_httpc_req **out);
void sl__h1c_pause(sl_httpc_req *r);
void sl__h1c_resume(sl_httpc_req *r);
void sl__h1c_cancel(sl_httpc_req *r);
void sl__h1c_req_free(sl_httpc_req *r);
const sl_httpc_head *sl__h1c_head(const sl_httpc_req *r);

/* curlc: libcurl. */
int sl__curlc_new(sl_httpc *front, sl_curlc **out);
void sl__curlc_free(sl_curlc *c);
int sl__curlc_start(sl_curlc *c, const sl_httpc_req_opts *o, sl_httpc_req **out);
void sl__curlc_pause(sl_httpc_req *r);
void sl__curlc_resume(sl_httpc_req *r);
void sl__curlc_cancel(sl_httpc_req *r);
void sl__curlc_req_free(sl_httpc_req *r);
const sl_httpc_head *sl__curlc_head(const sl_httpc_req *r);
/* Release what curlc made for a header set (curl_list). */
void sl__curlc_headers_free(sl_httpc_headers *hs);

#endif
