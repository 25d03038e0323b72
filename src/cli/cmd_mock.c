/* cmd_mock.c — `sluice mock`: serve the OpenAI-compatible mock upstream.
 *
 * Prints "listening http://HOST:PORT" as its first stdout line, flushed, so scripts find
 * the real port of --listen 127.0.0.1:0. Runs until SIGINT or SIGTERM, then closes every
 * connection and exits 0. */
#include "cli.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: sluice mock [--listen HOST:PORT] [options]\n"
    "\n"
    "Serve an OpenAI-compatible upstream that misbehaves on demand: /v1/chat/completions,\n"
    "/v1/completions, /v1/embeddings, /v1/models, /health, /stats. The first stdout line is\n"
    "'listening http://HOST:PORT'. Every option below can also be set per request with an\n"
    "'x-mock' header using the same keys: 'x-mock: ttft-ms=0; fail-rate=1; fail-status=503'.\n"
    "\n"
    "options:\n"
    "  --listen HOST:PORT     address to listen on (default 127.0.0.1:8080; port 0 = any free)\n"
    "  --ttft-ms MS           delay before the first chunk (default 0)\n"
    "  --interval-ms MS       delay between chunks (default 0)\n"
    "  --chunks N             answer length in chunks (default 20)\n"
    "  --fail-rate R          share of requests answered with --fail-status, 0..1 (default 0)\n"
    "  --fail-status CODE     status of injected failures (default 500; 429 adds Retry-After)\n"
    "  --retry-after-ms MS    Retry-After of injected 429s (default 1000)\n"
    "  --seed N               seed of answers and fault decisions (default 1)\n"
    "  --rpm N                requests per minute before answering 429 (default: no limit)\n"
    "  --cut-after N          close each stream abruptly after N chunks\n"
    "  --cut-rate R           share of streams --cut-after applies to, 0..1 (default 1)\n"
    "  --garbage-after N      send a garbage line after N chunks\n"
    "  --stall 1              read each request, then send nothing\n"
    "  --slow-read-ms MS      read request bodies slowly (a slow reader)\n"
    "  -h, --help             this text\n"
    "\n"
    "See docs/mock.md for the answer and token rules.\n";

typedef struct mock_cmd {
    sl_mock *mock;
    uv_signal_t sigint, sigterm;
} mock_cmd;

static void on_signal(uv_signal_t *h, int signum)
{
    mock_cmd *m = h->data;
    if (m->mock) {
        sl_mock_free(m->mock);
        m->mock = NULL;
    }
    uv_close((uv_handle_t *)&m->sigint, NULL);
    uv_close((uv_handle_t *)&m->sigterm, NULL);
}

/* "HOST:PORT", "[::1]:PORT" or ":PORT". */
static int parse_listen(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon)
        return -1;
    size_t hl = (size_t)(colon - s);
    const char *h = s;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl == 0) {
        h = "127.0.0.1";
        hl = strlen(h);
    }
    if (hl >= hostlen)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    long p;
    if (cli_parse_long("--listen", colon + 1, 0, 65535, &p))
        return -1;
    *port = (int)p;
    return 0;
}

int cmd_mock(int argc, char **argv)
{
    sl_mock_opts o;
    sl_mock_opts_init(&o);
    char host[256] = "127.0.0.1";
    int port = 8080;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            return SL_EXIT_OK;
        }
        if (strncmp(a, "--", 2)) {
            fprintf(stderr, "sluice mock: unexpected argument '%s'\n%s", a, usage_text);
            return SL_EXIT_USAGE;
        }
        /* --key=value or --key value */
        char key[64];
        const char *val;
        const char *eq = strchr(a, '=');
        size_t kl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (kl == 0 || kl >= sizeof key) {
            fprintf(stderr, "sluice mock: bad option '%s'\n", a);
            return SL_EXIT_USAGE;
        }
        memcpy(key, a + 2, kl);
        key[kl] = '\0';
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            fprintf(stderr, "sluice mock: %s needs a value\n", a);
            return SL_EXIT_USAGE;
        }
        if (!strcmp(key, "listen")) {
            if (parse_listen(val, host, sizeof host, &port)) {
                fprintf(stderr, "sluice mock: --listen '%s' is not HOST:PORT\n", val);
                return SL_EXIT_USAGE;
            }
        } else if (sl_mock_opts_set(&o, key, val)) {
            fprintf(stderr, "sluice mock: bad option --%s '%s' (see sluice mock --help)\n", key,
                    val);
            return SL_EXIT_USAGE;
        }
    }

    /* Many streams, many sockets: take as many open files as we may. */
    cli_raise_nofile(1L << 20);
    uv_loop_t *loop = uv_default_loop();
    mock_cmd m;
    memset(&m, 0, sizeof m);
    int rc = sl_mock_new(loop, &o, host, port, &m.mock);
    if (rc) {
        fprintf(stderr, "sluice mock: cannot listen on %s:%d: %s\n", host, port, sl_strerror(rc));
        return rc == SL_EADDR ? SL_EXIT_TRANSPORT : SL_EXIT_FAILED;
    }
    int is6 = strchr(host, ':') != NULL;
    printf("listening http://%s%s%s:%d\n", is6 ? "[" : "", host, is6 ? "]" : "",
           sl_mock_port(m.mock));
    fflush(stdout);

    uv_signal_init(loop, &m.sigint);
    uv_signal_init(loop, &m.sigterm);
    m.sigint.data = m.sigterm.data = &m;
    uv_signal_start(&m.sigint, on_signal, SIGINT);
    uv_signal_start(&m.sigterm, on_signal, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return SL_EXIT_OK;
}
