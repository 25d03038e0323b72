/* provider.c — where the CLI's calls go, and the small parsers every subcommand uses.
 *
 * The resolution order follows the official SDKs: explicit flags, then OPENAI_BASE_URL
 * and OPENAI_API_KEY. With nothing configured the embedded mock answers, in this
 * process, on the same loop, so every command works on a machine with no key and no
 * network. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

int cli_exit_for_error(int err)
{
    switch (err) {
    case 0:
        return SL_EXIT_OK;
    case SL_ETRANSPORT:
        return SL_EXIT_TRANSPORT;
    case SL_ETIMEDOUT:
        return SL_EXIT_TIMEOUT;
    case SL_EHTTP:
        return SL_EXIT_HTTP;
    case SL_EPROTO:
    case SL_ELIMIT:
    case SL_EDIVERGED:
        return SL_EXIT_PROTOCOL;
    case SL_ECANCELED:
        return SL_EXIT_INTERRUPTED;
    default:
        return SL_EXIT_FAILED;
    }
}

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

int cli_provider_open(cli_provider *p, uv_loop_t *loop, const sl_mock_opts *mock_opts)
{
    const char *key_env = p->api_key_env ? p->api_key_env : "OPENAI_API_KEY";
    p->api_key = dup_or_null(getenv(key_env));
    if (p->api_key_env && !p->api_key) {
        fprintf(stderr, "sluice: --api-key-env %s: the variable is not set or empty\n", key_env);
        return -1;
    }
    for (const char *k = p->api_key; k && *k; k++)
        if ((unsigned char)*k < 0x20 || *k == 0x7f) {
            fprintf(stderr,
                    "sluice: the API key in $%s contains a control character (a line break?): "
                    "it cannot go in an HTTP header\n",
                    key_env);
            return -1;
        }
    if (p->base_url_flag && !*p->base_url_flag) {
        /* an unset variable in --base-url "$URL" must not fall back to another provider */
        fprintf(stderr, "sluice: --base-url is empty\n");
        return -1;
    }
    const char *url = p->base_url_flag ? p->base_url_flag : getenv("OPENAI_BASE_URL");
    if (url && *url) {
        if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
            fprintf(stderr, "sluice: base URL '%s' must start with http:// or https://\n", url);
            return -1;
        }
        const char *host = url + (url[4] == 's' ? 8 : 7);
        if (!*host || *host == '/' || *host == ':' || *host == '?' || *host == '#') {
            fprintf(stderr, "sluice: base URL '%s' has no host\n", url);
            return -1;
        }
        p->base_url = strdup(url);
        size_t n = strlen(p->base_url);
        while (n > 0 && p->base_url[n - 1] == '/')
            p->base_url[--n] = '\0';
        return 0;
    }
    if (p->api_key) {
        p->base_url = strdup("https://api.openai.com/v1");
        return 0;
    }
    sl_mock_opts mo;
    if (mock_opts) {
        mo = *mock_opts;
    } else {
        sl_mock_opts_init(&mo);
        /* A typewriter pace for a person watching; tests and benchmarks set their own. */
        mo.ttft_ms = 120;
        mo.interval_ms = 25;
        mo.chunks = 30;
    }
    int rc = sl_mock_new(loop, &mo, "127.0.0.1", 0, &p->mock);
    if (rc) {
        fprintf(stderr, "sluice: cannot start the embedded mock provider: %s\n", sl_strerror(rc));
        return -1;
    }
    char url_buf[64];
    snprintf(url_buf, sizeof url_buf, "http://127.0.0.1:%d/v1", sl_mock_port(p->mock));
    p->base_url = strdup(url_buf);
    p->embedded = 1;
    return 0;
}

void cli_provider_close(cli_provider *p)
{
    if (p->mock)
        sl_mock_free(p->mock);
    p->mock = NULL;
    free(p->base_url);
    free(p->api_key);
    p->base_url = NULL;
    p->api_key = NULL;
}

int cli_parse_long(const char *flag, const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        fprintf(stderr, "sluice: %s: '%s' is not a whole number in [%ld, %ld]\n", flag, s, min,
                max);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_double(const char *flag, const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < min || v > max) {
        fprintf(stderr, "sluice: %s: '%s' is not a number in [%g, %g]\n", flag, s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_seconds(const char *flag, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double scale = 1;
    if (!strcmp(end, "ms"))
        scale = 0.001;
    else if (!strcmp(end, "m"))
        scale = 60;
    else if (!strcmp(end, "h"))
        scale = 3600;
    else if (*end && strcmp(end, "s"))
        end = NULL;
    if (errno || !end || end == s || !isfinite(v) || v < 0) {
        fprintf(stderr, "sluice: %s: '%s' is not a duration (e.g. 30, 1.5s, 250ms, 2m)\n", flag, s);
        return -1;
    }
    *out = v * scale;
    return 0;
}

char *cli_read_all(FILE *f, size_t max, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *p = malloc(cap);
    if (!p)
        return NULL;
    for (;;) {
        if (n + 1 >= cap) {
            if (cap >= max) {
                free(p);
                errno = EFBIG;
                return NULL;
            }
            cap *= 2;
            char *q = realloc(p, cap);
            if (!q) {
                free(p);
                return NULL;
            }
            p = q;
        }
        size_t got = fread(p + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        free(p);
        return NULL;
    }
    p[n] = '\0';
    *len = n;
    return p;
}

int cli_raise_nofile(long need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return -1;
    if ((long)rl.rlim_cur >= need)
        return 0;
    rlim_t want = (rlim_t)need;
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
        want = rl.rlim_max;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl))
        return -1;
    return (long)want >= need ? 0 : -1;
}
