/* fault.c — options, the x-mock header and fault decisions of the mock (see fault.h).
 *
 * Values come from the wire (the x-mock header) as well as from the command line, so
 * every number is parsed with strtod/strtoll, checked for trailing bytes and held to a
 * documented range; a bad value never reaches the server code. */
#include "apps/mock/fault.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/common.h>

void sl_mock_opts_init(sl_mock_opts *o)
{
    memset(o, 0, sizeof *o);
    o->ttft_ms = 0;
    o->interval_ms = 0;
    o->chunks = 20;
    o->fail_rate = 0;
    o->fail_status = 500;
    o->seed = 1;
    o->rpm = 0;
    o->cut_after = -1;
    o->cut_rate = 1;
    o->garbage_after = -1;
    o->stall = 0;
    o->slow_read_ms = 0;
    o->max_body = 1u << 20;
    o->retry_after_ms = 1000;
}

static int parse_double(const char *v, double min, double max, double *out)
{
    if (!*v)
        return SL_EINVAL;
    char *end = NULL;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || *end || !isfinite(d) || d < min || d > max)
        return SL_EINVAL;
    *out = d;
    return 0;
}

static int parse_long(const char *v, long long min, long long max, long long *out)
{
    if (!*v)
        return SL_EINVAL;
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || x < min || x > max)
        return SL_EINVAL;
    *out = x;
    return 0;
}

static int parse_u64(const char *v, uint64_t *out)
{
    if (*v < '0' || *v > '9') /* strtoull would take "-1" */
        return SL_EINVAL;
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end)
        return SL_EINVAL;
    *out = (uint64_t)x;
    return 0;
}

/* key with '_' read as '-' equals name */
static int key_is(const char *key, const char *name)
{
    for (; *key && *name; key++, name++) {
        char c = *key == '_' ? '-' : *key;
        if (c != *name)
            return 0;
    }
    return *key == '\0' && *name == '\0';
}

int sl_mock_opts_set(sl_mock_opts *o, const char *key, const char *value)
{
    if (!o || !key || !value)
        return SL_EINVAL;
    double d;
    long long x;
    if (key_is(key, "ttft-ms")) {
        if (parse_double(value, 0, SL_MOCK_MAX_DELAY_MS, &d))
            return SL_EINVAL;
        o->ttft_ms = d;
    } else if (key_is(key, "interval-ms")) {
        if (parse_double(value, 0, SL_MOCK_MAX_DELAY_MS, &d))
            return SL_EINVAL;
        o->interval_ms = d;
    } else if (key_is(key, "slow-read-ms")) {
        if (parse_double(value, 0, SL_MOCK_MAX_DELAY_MS, &d))
            return SL_EINVAL;
        o->slow_read_ms = d;
    } else if (key_is(key, "retry-after-ms")) {
        if (parse_double(value, 0, SL_MOCK_MAX_DELAY_MS, &d))
            return SL_EINVAL;
        o->retry_after_ms = d;
    } else if (key_is(key, "fail-rate")) {
        if (parse_double(value, 0, 1, &d))
            return SL_EINVAL;
        o->fail_rate = d;
    } else if (key_is(key, "cut-rate")) {
        if (parse_double(value, 0, 1, &d))
            return SL_EINVAL;
        o->cut_rate = d;
    } else if (key_is(key, "chunks")) {
        if (parse_long(value, 1, SL_MOCK_MAX_CHUNKS, &x))
            return SL_EINVAL;
        o->chunks = (int)x;
    } else if (key_is(key, "fail-status")) {
        if (parse_long(value, 400, 599, &x))
            return SL_EINVAL;
        o->fail_status = (int)x;
    } else if (key_is(key, "rpm")) {
        if (parse_long(value, 0, SL_MOCK_MAX_RPM, &x))
            return SL_EINVAL;
        o->rpm = (int)x;
    } else if (key_is(key, "cut-after")) {
        if (parse_long(value, -1, SL_MOCK_MAX_CHUNKS, &x))
            return SL_EINVAL;
        o->cut_after = (int)x;
    } else if (key_is(key, "garbage-after")) {
        if (parse_long(value, -1, SL_MOCK_MAX_CHUNKS, &x))
            return SL_EINVAL;
        o->garbage_after = (int)x;
    } else if (key_is(key, "stall")) {
        if (parse_long(value, 0, 1, &x))
            return SL_EINVAL;
        o->stall = (int)x;
    } else if (key_is(key, "max-body")) {
        if (parse_long(value, 1, SL_MOCK_MAX_BODY, &x))
            return SL_EINVAL;
        o->max_body = (size_t)x;
    } else if (key_is(key, "seed")) {
        uint64_t u;
        if (parse_u64(value, &u))
            return SL_EINVAL;
        o->seed = u;
    } else {
        return SL_EINVAL;
    }
    return 0;
}

static int known_key(const char *key)
{
    static const char *const names[] = {
        "ttft-ms", "interval-ms", "slow-read-ms", "retry-after-ms", "fail-rate",
        "chunks",  "fail-status", "rpm",          "cut-after",      "garbage-after",
        "stall",   "max-body",    "seed",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (key_is(key, names[i]))
            return 1;
    return 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Copy (p, n) trimmed of spaces into out (size cap) for printing in a message. */
static void trimmed(char *out, size_t cap, const char *p, size_t n)
{
    while (n && is_space(*p))
        p++, n--;
    while (n && is_space(p[n - 1]))
        n--;
    size_t k = n < cap - 1 ? n : cap - 1;
    for (size_t i = 0; i < k; i++) /* keep the message printable */
        out[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? p[i] : '?';
    out[k] = '\0';
}

int sl__mock_xmock_parse(sl_mock_opts *o, const char *p, size_t n, char *err, size_t errlen)
{
    size_t i = 0;
    while (i < n) {
        size_t s = i;
        while (i < n && p[i] != ';' && p[i] != ',')
            i++;
        size_t e = i;
        i++; /* past the separator */
        while (s < e && is_space(p[s]))
            s++;
        while (e > s && is_space(p[e - 1]))
            e--;
        if (s == e)
            continue;
        const char *eq = memchr(p + s, '=', e - s);
        char key[32], value[64];
        if (!eq) {
            trimmed(key, sizeof key, p + s, e - s);
            if (errlen)
                snprintf(err, errlen, "x-mock: '%s' has no value (expected key=value)", key);
            return SL_EINVAL;
        }
        size_t kl = (size_t)(eq - (p + s)), vl = (size_t)(p + e - (eq + 1));
        trimmed(key, sizeof key, p + s, kl);
        while (kl && is_space(p[s + kl - 1]))
            kl--;
        const char *v = eq + 1;
        while (vl && is_space(*v))
            v++, vl--;
        if (kl >= sizeof key || !known_key(key)) {
            if (errlen)
                snprintf(err, errlen, "x-mock: unknown key '%s'", key);
            return SL_EINVAL;
        }
        if (vl >= sizeof value) {
            if (errlen)
                snprintf(err, errlen, "x-mock: bad value for '%s' (too long)", key);
            return SL_EINVAL;
        }
        memcpy(value, v, vl);
        value[vl] = '\0';
        if (sl_mock_opts_set(o, key, value)) {
            char shown[64];
            trimmed(shown, sizeof shown, v, vl);
            if (errlen)
                snprintf(err, errlen, "x-mock: bad value for '%s': '%s'", key, shown);
            return SL_EINVAL;
        }
    }
    return 0;
}

uint64_t sl__mock_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t sl__mock_hash(const void *p, size_t n, uint64_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

int sl__mock_should_fail(uint64_t seed, uint64_t k, double rate)
{
    if (rate <= 0)
        return 0;
    if (rate >= 1)
        return 1;
    uint64_t st = seed + k;
    double u = (double)(sl__mock_rand(&st) >> 11) * 0x1.0p-53;
    return u < rate;
}

void sl__mock_window_take(sl_mock_window *w, long rpm, double now_ms, sl_mock_rl *out)
{
    if (w->count == 0 || now_ms >= w->start_ms + SL_MOCK_WINDOW_MS) {
        w->start_ms = now_ms;
        w->count = 0;
    }
    out->limit = rpm;
    out->reset_ms = w->start_ms + SL_MOCK_WINDOW_MS - now_ms;
    if (w->count < rpm) {
        w->count++;
        out->allowed = 1;
    } else {
        out->allowed = 0;
    }
    out->remaining = rpm > w->count ? rpm - w->count : 0;
}

void sl__mock_fmt_seconds(char *out, size_t n, double ms)
{
    long long whole = (long long)ceil(ms < 0 ? 0 : ms);
    long long sec = whole / 1000, frac = whole % 1000;
    if (!frac) {
        snprintf(out, n, "%llds", sec);
        return;
    }
    char digits[8]; /* frac is 1..999 */
    snprintf(digits, sizeof digits, "%03d", (int)frac);
    int k = 3;
    while (k > 1 && digits[k - 1] == '0')
        k--;
    digits[k] = '\0';
    snprintf(out, n, "%lld.%ss", sec, digits);
}

int sl__mock_ratelimit_headers(sl_buf *b, const sl_mock_rl *rl)
{
    char reset[32];
    sl__mock_fmt_seconds(reset, sizeof reset, rl->reset_ms);
    return sl__buf_printf(b,
                          "x-ratelimit-limit-requests: %ld\r\n"
                          "x-ratelimit-remaining-requests: %ld\r\n"
                          "x-ratelimit-reset-requests: %s\r\n",
                          rl->limit, rl->remaining, reset);
}

int sl__mock_retry_headers(sl_buf *b, double ms)
{
    long long whole = (long long)ceil(ms < 0 ? 0 : ms);
    return sl__buf_printf(b, "Retry-After: %lld\r\nretry-after-ms: %lld\r\n", (whole + 999) / 1000,
                          whole);
}
