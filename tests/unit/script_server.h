/* script_server.h — a tiny scripted TCP server for unit tests, on the test's own loop.
 *
 * Each accepted connection runs a script: read one HTTP request, send these exact
 * bytes, wait N ms, close, stall. That is enough to cut a stream at any byte, inject
 * garbage, stall before the first byte or between chunks, and count connections,
 * without depending on the real mock. Listens on 127.0.0.1 with an ephemeral port.
 * Connection i runs scripts[min(i, nscripts - 1)]. When a script runs out of steps the
 * connection stays open until the peer closes it (keep-alive). A peer EOF closes the
 * connection whatever step it is in. */
#ifndef SL_TEST_SCRIPT_SERVER_H
#define SL_TEST_SCRIPT_SERVER_H

#include <stddef.h>
#include <uv.h>

enum {
    SS_END = 0, /* end of the script */
    SS_READ,    /* wait until one complete request (headers + Content-Length body) */
    SS_SEND,    /* write data/len, go on once written */
    SS_WAIT,    /* sleep ms */
    SS_CLOSE,   /* close the connection */
    SS_STALL,   /* do nothing more until the peer closes */
};

typedef struct ss_step {
    int op;
    const char *data;
    size_t len;
    long ms;
} ss_step;

#define SS_STEP_READ                                                                               \
    {                                                                                              \
        SS_READ, NULL, 0, 0                                                                        \
    }
#define SS_STEP_SEND(lit)                                                                          \
    {                                                                                              \
        SS_SEND, (lit), sizeof(lit) - 1, 0                                                         \
    }
#define SS_STEP_SENDN(p, n)                                                                        \
    {                                                                                              \
        SS_SEND, (p), (n), 0                                                                       \
    }
#define SS_STEP_WAIT(ms)                                                                           \
    {                                                                                              \
        SS_WAIT, NULL, 0, (ms)                                                                     \
    }
#define SS_STEP_CLOSE                                                                              \
    {                                                                                              \
        SS_CLOSE, NULL, 0, 0                                                                       \
    }
#define SS_STEP_STALL                                                                              \
    {                                                                                              \
        SS_STALL, NULL, 0, 0                                                                       \
    }
#define SS_STEP_END                                                                                \
    {                                                                                              \
        SS_END, NULL, 0, 0                                                                         \
    }

typedef struct ss_server ss_server;

/* Scripts are borrowed until ss_free (steps' data too). 0 or a libuv error. */
int ss_start(uv_loop_t *loop, const ss_step *const *scripts, size_t nscripts, ss_server **out);
/* A listening socket on 127.0.0.1 with an ephemeral port (*port), for when the port
 * must be known before the loop that will serve it exists; then ss_start_fd. -1 on
 * error. */
int ss_listen_fd(int *port);
int ss_start_fd(uv_loop_t *loop, int fd, const ss_step *const *scripts, size_t nscripts,
                ss_server **out);
int ss_port(const ss_server *s);
/* "http://127.0.0.1:PORT" + suffix, in a static buffer per server. */
const char *ss_url(ss_server *s, const char *suffix);
int ss_accepts(const ss_server *s);
/* Complete requests read so far (SS_READ steps), in order; NUL-terminated raw text. */
size_t ss_nrequests(const ss_server *s);
const char *ss_request(const ss_server *s, size_t i);
/* uv_hrtime() in ms when request i was read (lower bounds for "not before" checks). */
double ss_request_ms(const ss_server *s, size_t i);
/* Connections currently open. */
int ss_open_connections(const ss_server *s);
/* Connections busy with a request: from a completed SS_READ until the script reaches its
 * next READ, END, STALL or CLOSE (its answer is written) or the connection closes. Now,
 * and the most seen at once. */
int ss_busy(const ss_server *s);
int ss_max_busy(const ss_server *s);
/* Close the listener and every connection; memory goes in the close callbacks. */
void ss_free(ss_server *s);

#endif
