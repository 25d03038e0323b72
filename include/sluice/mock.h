/* sluice/mock.h — an OpenAI-compatible upstream that misbehaves on demand.
 *
 * The embedded default provider (every command uses it when no provider is configured),
 * the fixture for tests and the upstream for benchmarks. It runs on a caller's libuv
 * loop and serves /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models,
 * /health and /stats over the project's HTTP/1.1 server.
 *
 * Answers are deterministic for a request and a seed, and begin with the last user
 * message verbatim. Every misbehaviour below can also be asked for per request in an
 * "x-mock" header with the same keys: "x-mock: ttft-ms=0; fail-rate=1; fail-status=503". */
#ifndef SLUICE_MOCK_H
#define SLUICE_MOCK_H

#include <stdint.h>
#include <uv.h>

#include <sluice/common.h>

typedef struct sl_mock sl_mock;

typedef struct sl_mock_opts {
    double ttft_ms;        /* request -> first chunk (or the whole non-streamed body) */
    double interval_ms;    /* between chunks, on a schedule from the request (no drift) */
    int chunks;            /* answer length in chunks (about one token each); default 20 */
    double fail_rate;      /* share of requests answered with fail_status; default 0 */
    int fail_status;       /* default 500; 429 carries Retry-After and retry-after-ms */
    uint64_t seed;         /* default 1 */
    int rpm;               /* requests per minute before answering 429; 0 = no limit */
    int cut_after;         /* close the stream abruptly after this many chunks; -1 = never */
    double cut_rate;       /* share of streams cut_after applies to (seeded); default 1 */
    int garbage_after;     /* send garbage bytes after this many chunks; -1 = never */
    int stall;             /* 1: accept the request, then send nothing */
    double slow_read_ms;   /* slow reader: pause this long between reads of a request body */
    size_t max_body;       /* request body cap; default 1 MiB */
    double retry_after_ms; /* Retry-After of a fail_status 429; default 1000 */
} sl_mock_opts;

typedef struct sl_mock_stats {
    uint64_t connections, requests, streams, faults, client_aborts;
} sl_mock_stats;

void sl_mock_opts_init(sl_mock_opts *o);

/* Set one option by its name, as on the command line and in the x-mock header:
 * "ttft-ms", "interval-ms", "chunks", "fail-rate", "fail-status", "retry-after-ms",
 * "seed", "rpm", "cut-after", "garbage-after", "stall", "slow-read-ms", "max-body"
 * ('_' may stand for '-'). value is decimal text. 0, or SL_EINVAL for an unknown key or
 * a bad or out-of-range value (then o is unchanged). See docs/mock.md for the ranges. */
int sl_mock_opts_set(sl_mock_opts *o, const char *key, const char *value);

/* Create a mock on loop and listen on host:port (port 0: a free port). 0, SL_EADDR,
 * SL_EINVAL or SL_ENOMEM. */
int sl_mock_new(uv_loop_t *loop, const sl_mock_opts *o, const char *host, int port, sl_mock **out);
/* The port actually bound. */
int sl_mock_port(const sl_mock *m);
void sl_mock_get_stats(const sl_mock *m, sl_mock_stats *s);
/* Stop listening, close every connection and release. Handles close asynchronously:
 * run the loop until it has no more handles. */
void sl_mock_free(sl_mock *m);

#endif
