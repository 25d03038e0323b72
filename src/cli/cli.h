/* cli.h — what the subcommands share: exit codes, provider resolution, small parsers.
 *
 * The CLI uses only the public API (<sluice/...>), like curl's tool uses only libcurl. */
#ifndef SL_CLI_H
#define SL_CLI_H

#include <stdio.h>
#include <uv.h>

#include <sluice/sluice.h>

/* Exit codes, documented in `sluice --help` and the README. */
enum {
    SL_EXIT_OK = 0,
    SL_EXIT_FAILED = 1,    /* batch: some ids failed; chat: an unexpected local error */
    SL_EXIT_USAGE = 2,     /* bad flags or input */
    SL_EXIT_TRANSPORT = 3, /* cannot connect, DNS, TLS, connection lost mid-answer */
    SL_EXIT_TIMEOUT = 4,   /* a timeout fired */
    SL_EXIT_HTTP = 5,      /* the provider answered an error status */
    SL_EXIT_PROTOCOL = 6,  /* the provider's answer was malformed or cut */
    SL_EXIT_INTERRUPTED = 130,
};

/* Map a call's error code to a chat exit code. */
int cli_exit_for_error(int err);

/* Where calls go: flags win over the environment the official SDKs read. */
typedef struct cli_provider {
    const char *base_url_flag; /* --base-url */
    const char *api_key_env;   /* --api-key-env VAR (default OPENAI_API_KEY) */
    char *base_url;            /* resolved, owned */
    char *api_key;             /* resolved, owned, may be NULL */
    int embedded;              /* 1: the embedded mock serves the calls */
    sl_mock *mock;
} cli_provider;

/* Resolve the provider: --base-url, else OPENAI_BASE_URL, else (when an API key is set)
 * https://api.openai.com/v1, else start the embedded mock on loop. Prints a message and
 * returns non-zero on failure. */
int cli_provider_open(cli_provider *p, uv_loop_t *loop, const sl_mock_opts *mock_opts);
void cli_provider_close(cli_provider *p);

/* Strict number parsing for flags: whole string, in range. 0 or -1 (message printed). */
int cli_parse_long(const char *flag, const char *s, long min, long max, long *out);
int cli_parse_double(const char *flag, const char *s, double min, double max, double *out);
/* Duration in seconds with an optional unit: "30", "1.5s", "250ms", "2m". */
int cli_parse_seconds(const char *flag, const char *s, double *out);

/* Read all of a stream (stdin) into a NUL-terminated string, capped. */
char *cli_read_all(FILE *f, size_t max, size_t *len);

/* Raise the soft open-file limit to at least need (up to the hard limit). 0 if the limit
 * is now >= need, -1 if it could not be raised that far. */
int cli_raise_nofile(long need);

/* Subcommands. */
int cmd_batch(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_mock(int argc, char **argv);

#endif
