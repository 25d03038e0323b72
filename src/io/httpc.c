/* httpc.c — the HTTP client's front: one client, two transports (see httpc.h, httpc_int.h).
 *
 * Owns what both transports share: the options, deferred tasks, header sets, the guard
 * that lets sl__httpc_free run inside a callback, response-head parsing, and the choice of
 * transport. Plain http:// goes to io/h1c, our HTTP/1.1 client on libuv and http-parser:
 * a streamed LLM answer is a few hundred small reads on one kept-alive connection, and
 * libcurl's per-transfer machinery (easy handle, receive buffer, multi bookkeeping) cost
 * more CPU and memory than the whole stream's parsing. https:// (and HTTP/2) goes to
 * io/curlc, libcurl, which owns TLS. SL_HTTPC_CURL sends everything through libcurl.
 * Each transport is made on its first request, so a client that never sees https:// never
 * initialises libcurl. */
#include "io/httpc_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DEFAULT_MAX_HEADER_BYTES (64u << 10)

/* ---- client lifetime -------------------------------------------------------------- */

static void teardown(sl_httpc *h);
static int proxy_in_env(void);

void sl__httpc_enter(sl_httpc *h)
{
    h->busy++;
}

void sl__httpc_leave(sl_httpc *h)
{
    if (--h->busy == 0 && h->dying)
        teardown(h);
}

void sl__httpc_opts_init(sl_httpc_opts *o)
{
    memset(o, 0, sizeof *o);
}

uv_loop_t *sl__httpc_loop(const sl_httpc *h)
{
    return h->loop;
}

static void on_defer_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static void teardown(sl_httpc *h)
{
    h->dying = 1;
    while (!sl__list_empty(&h->tasks))
        sl__list_remove(h->tasks.next);
    while (!sl__list_empty(&h->batch))
        sl__list_remove(h->batch.next);
    sl__h1c_free(h->h1);
    h->h1 = NULL;
    if (h->curl) {
        sl__curlc_free(h->curl);
        h->curl = NULL;
    }
    while (h->header_sets) {
        sl_httpc_headers *hs = h->header_sets;
        h->header_sets = hs->next;
        if (hs->curl_list)
            sl__curlc_headers_free(hs);
        free(hs->block);
        for (size_t i = 0; i < hs->n; i++)
            free(hs->lines[i]);
        free(hs->lines);
        free(hs);
    }
    uv_close((uv_handle_t *)&h->defer_timer, on_defer_closed);
}

int sl__httpc_new(uv_loop_t *loop, const sl_httpc_opts *o, sl_httpc **out)
{
    *out = NULL;
    if (!loop)
        return SL_EINVAL;
    sl_httpc *h = calloc(1, sizeof *h);
    if (!h)
        return SL_ENOMEM;
    if (o)
        h->o = *o;
    if (!h->o.max_header_bytes)
        h->o.max_header_bytes = DEFAULT_MAX_HEADER_BYTES;
    h->loop = loop;
    h->proxied = proxy_in_env();
    sl__list_init(&h->tasks);
    sl__list_init(&h->batch);
    uv_timer_init(loop, &h->defer_timer);
    h->defer_timer.data = h;
    *out = h;
    return 0;
}

void sl__httpc_free(sl_httpc *h)
{
    if (!h || h->dying)
        return;
    h->dying = 1;
    if (h->busy == 0)
        teardown(h);
}

/* ---- deferred tasks ----------------------------------------------------------------- */

void sl__httpc_task_init(sl_httpc_task *t, void (*run)(sl_httpc_task *t))
{
    t->run = run;
    sl__list_init(&t->link);
}

static void on_defer(uv_timer_t *timer)
{
    sl_httpc *h = timer->data;
    sl__httpc_enter(h);
    /* Take the current queue: tasks deferred while these run wait for the next turn. */
    sl__list_splice(&h->batch, &h->tasks);
    while (!h->dying && !sl__list_empty(&h->batch)) {
        sl_link *l = h->batch.next;
        sl__list_remove(l);
        sl_httpc_task *t = SL_CONTAINER_OF(l, sl_httpc_task, link);
        t->run(t);
    }
    sl__httpc_leave(h);
}

void sl__httpc_defer(sl_httpc *h, sl_httpc_task *t)
{
    if (sl__list_linked(&t->link) || h->dying)
        return;
    sl__list_push(&h->tasks, &t->link);
    if (!uv_is_active((uv_handle_t *)&h->defer_timer))
        uv_timer_start(&h->defer_timer, on_defer, 0, 0);
}

void sl__httpc_undefer(sl_httpc_task *t)
{
    sl__list_remove(&t->link);
}

/* ---- header sets ---------------------------------------------------------------------- */

int sl__httpc_headers_add(sl_httpc *h, const char *const *lines, size_t n,
                          const sl_httpc_headers **out)
{
    *out = NULL;
    if (!h || h->dying)
        return SL_EINVAL;
    sl_httpc_headers *hs = calloc(1, sizeof *hs);
    if (!hs)
        return SL_ENOMEM;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += strlen(lines[i]) + 2;
    hs->block = malloc(total + 1);
    hs->lines = calloc(n ? n : 1, sizeof *hs->lines);
    if (!hs->block || !hs->lines)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(lines[i]);
        if (memchr(lines[i], '\r', len) || memchr(lines[i], '\n', len) ||
            !memchr(lines[i], ':', len)) {
            hs->n = i;
            goto bad;
        }
        if (!(hs->lines[i] = strdup(lines[i]))) {
            hs->n = i;
            goto fail;
        }
        memcpy(hs->block + hs->block_len, lines[i], len);
        memcpy(hs->block + hs->block_len + len, "\r\n", 2);
        hs->block_len += len + 2;
    }
    hs->n = n;
    hs->block[hs->block_len] = '\0';
    hs->next = h->header_sets;
    h->header_sets = hs;
    *out = hs;
    return 0;
bad:
    for (size_t i = 0; i < hs->n; i++)
        free(hs->lines[i]);
    free(hs->lines);
    free(hs->block);
    free(hs);
    return SL_EINVAL;
fail:
    for (size_t i = 0; i < hs->n; i++)
        free(hs->lines[i]);
    free(hs->lines);
    free(hs->block);
    free(hs);
    return SL_ENOMEM;
}

/* ---- requests: the choice of transport ------------------------------------------------ */

long sl__httpc_pick_timeout(long req, long client)
{
    if (req < 0)
        return 0;
    return req ? req : client;
}

enum { DL_NONE, DL_TOTAL, DL_CONNECT, DL_FIRST, DL_IDLE };

/* The earliest deadline in force (uv_now() time), or UINT64_MAX; *which names it. */
static uint64_t deadline(const sl_httpc_clock *k, int *which)
{
    uint64_t d = UINT64_MAX;
    *which = DL_NONE;
    if (k->total_ms > 0) {
        d = k->t_start + (uint64_t)k->total_ms;
        *which = DL_TOTAL;
    }
    if (k->connecting && k->connect_ms > 0 && k->t_connect + (uint64_t)k->connect_ms < d) {
        d = k->t_connect + (uint64_t)k->connect_ms;
        *which = DL_CONNECT;
    }
    if (k->paused)
        return d;
    if (k->got_byte) {
        if (k->idle_ms > 0 && k->t_last_rx + (uint64_t)k->idle_ms < d) {
            d = k->t_last_rx + (uint64_t)k->idle_ms;
            *which = DL_IDLE;
        }
    } else if (k->sent && k->first_byte_ms > 0 && k->t_sent + (uint64_t)k->first_byte_ms < d) {
        d = k->t_sent + (uint64_t)k->first_byte_ms;
        *which = DL_FIRST;
    }
    return d;
}

void sl__httpc_clock_arm(uv_timer_t *t, const sl_httpc_clock *k, int live, uv_timer_cb cb)
{
    int which;
    uint64_t d = live ? deadline(k, &which) : UINT64_MAX;
    if (d == UINT64_MAX) {
        uv_timer_stop(t);
        return;
    }
    uint64_t now = uv_now(t->loop);
    uv_timer_start(t, cb, d > now ? d - now : 0, 0);
}

int sl__httpc_clock_expired(uv_timer_t *t, const sl_httpc_clock *k, uv_timer_cb cb,
                            const char *authority, char *msg, size_t cap)
{
    int which;
    uint64_t d = deadline(k, &which);
    if (d == UINT64_MAX || d > uv_now(t->loop)) {
        sl__httpc_clock_arm(t, k, 1, cb);
        return 0;
    }
    switch (which) {
    case DL_CONNECT:
        snprintf(msg, cap, "no connection to %.80s within %ld ms", authority, k->connect_ms);
        break;
    case DL_FIRST:
        snprintf(msg, cap, "no response within %ld ms", k->first_byte_ms);
        break;
    case DL_IDLE:
        snprintf(msg, cap, "no data for %ld ms", k->idle_ms);
        break;
    default:
        snprintf(msg, cap, "not complete within %ld ms", k->total_ms);
        break;
    }
    return 1;
}

static int is_plain_http(const char *url)
{
    return !strncasecmp(url, "http://", 7);
}

/* A proxy named in the environment (libcurl's variables for http:// URLs): libcurl then
 * carries plain http:// too, so the proxy and its no_proxy list apply as they always did. */
static int proxy_in_env(void)
{
    static const char *const vars[] = {"http_proxy", "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            return 1;
    }
    return 0;
}

int sl__httpc_start(sl_httpc *h, const sl_httpc_req_opts *o, sl_httpc_req **out)
{
    *out = NULL;
    if (!h || h->dying || !o || !o->url || !o->on_done)
        return SL_EINVAL;
    int rc;
    if (h->o.transport != SL_HTTPC_CURL && is_plain_http(o->url) &&
        (h->o.transport == SL_HTTPC_H1 || !h->proxied)) {
        if (!h->h1 && (rc = sl__h1c_new(h, &h->h1)))
            return rc;
        return sl__h1c_start(h->h1, o, out);
    }
    if (h->o.transport == SL_HTTPC_H1)
        return SL_EINVAL; /* only plain http:// without libcurl */
    if (!h->curl && (rc = sl__curlc_new(h, &h->curl)))
        return rc;
    return sl__curlc_start(h->curl, o, out);
}

#define DISPATCH(r, f, ...)                                                                        \
    do {                                                                                           \
        if (!(r))                                                                                  \
            return;                                                                                \
        if ((r)->kind == SL_HTTPC_REQ_H1)                                                          \
            sl__h1c_##f(__VA_ARGS__);                                                              \
        else                                                                                       \
            sl__curlc_##f(__VA_ARGS__);                                                            \
    } while (0)

void sl__httpc_pause(sl_httpc_req *r)
{
    DISPATCH(r, pause, r);
}

void sl__httpc_resume(sl_httpc_req *r)
{
    DISPATCH(r, resume, r);
}

void sl__httpc_cancel(sl_httpc_req *r)
{
    DISPATCH(r, cancel, r);
}

void sl__httpc_req_free(sl_httpc_req *r)
{
    DISPATCH(r, req_free, r);
}

const sl_httpc_head *sl__httpc_head(const sl_httpc_req *r)
{
    return r->kind == SL_HTTPC_REQ_H1 ? sl__h1c_head(r) : sl__curlc_head(r);
}

/* ---- response heads ------------------------------------------------------------------- */

static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' || (*s)[*n - 1] == '\r' ||
                  (*s)[*n - 1] == '\n'))
        (*n)--;
}

static long parse_long(const char *s, size_t n)
{
    long v = 0;
    if (!n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (LONG_MAX - 9) / 10)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static void copy_value(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

void sl__httpc_head_reset(sl_httpc_head *hd)
{
    hd->status = 0;
    hd->content_type[0] = '\0';
    hd->request_id[0] = '\0';
    hd->retry_after_ms = -1;
    hd->remaining_requests = -1;
    hd->remaining_tokens = -1;
    hd->reset_requests_ms = -1;
    hd->reset_tokens_ms = -1;
    sl__buf_reset(&hd->raw);
}

static int name_is(const char *name, size_t n, const char *want)
{
    return strlen(want) == n && !strncasecmp(name, want, n);
}

void sl__httpc_head_line(sl_httpc_head *hd, const char *line, size_t n, int *have_ms)
{
    const char *colon = memchr(line, ':', n);
    if (!colon)
        return;
    const char *name = line;
    size_t nlen = (size_t)(colon - line);
    const char *v = colon + 1;
    size_t vlen = n - nlen - 1;
    trim(&name, &nlen);
    trim(&v, &vlen);
    if (name_is(name, nlen, "content-type")) {
        copy_value(hd->content_type, sizeof hd->content_type, v, vlen);
        for (char *c = hd->content_type; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
    } else if (name_is(name, nlen, "x-request-id")) {
        copy_value(hd->request_id, sizeof hd->request_id, v, vlen);
    } else if (name_is(name, nlen, "retry-after-ms")) {
        /* milliseconds, possibly fractional: reuse the duration parser with a unit */
        char tmp[48];
        if (vlen + 2 < sizeof tmp) {
            memcpy(tmp, v, vlen);
            memcpy(tmp + vlen, "ms", 2);
            long ms = sl__httpc_parse_duration_ms(tmp, vlen + 2);
            if (ms >= 0) {
                hd->retry_after_ms = ms;
                *have_ms = 1;
            }
        }
    } else if (name_is(name, nlen, "retry-after")) {
        long ms = sl__httpc_parse_retry_after_ms(v, vlen, (long long)time(NULL));
        if (ms >= 0 && !*have_ms)
            hd->retry_after_ms = ms;
    } else if (name_is(name, nlen, "x-ratelimit-remaining-requests")) {
        hd->remaining_requests = parse_long(v, vlen);
    } else if (name_is(name, nlen, "x-ratelimit-remaining-tokens")) {
        hd->remaining_tokens = parse_long(v, vlen);
    } else if (name_is(name, nlen, "x-ratelimit-reset-requests")) {
        hd->reset_requests_ms = sl__httpc_parse_duration_ms(v, vlen);
    } else if (name_is(name, nlen, "x-ratelimit-reset-tokens")) {
        hd->reset_tokens_ms = sl__httpc_parse_duration_ms(v, vlen);
    }
}

/* ---- header value parsers ----------------------------------------------------------- */

long sl__httpc_parse_duration_ms(const char *s, size_t n)
{
    trim(&s, &n);
    if (!n || n > 64)
        return -1;
    double total = 0;
    size_t i = 0;
    int parts = 0;
    while (i < n) {
        double v = 0, scale = 1;
        int digits = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            v = v * 10 + (s[i++] - '0');
            digits++;
        }
        if (i < n && s[i] == '.') {
            i++;
            while (i < n && s[i] >= '0' && s[i] <= '9') {
                scale /= 10;
                v += (s[i++] - '0') * scale;
                digits++;
            }
        }
        if (!digits)
            return -1;
        double unit;
        if (i == n) {
            if (parts)
                return -1; /* "1m30": a unit is missing */
            unit = 1000;   /* a bare number is seconds */
        } else if (n - i >= 2 && !memcmp(s + i, "ms", 2)) {
            unit = 1, i += 2;
        } else if (n - i >= 2 && !memcmp(s + i, "us", 2)) {
            unit = 1e-3, i += 2;
        } else if (n - i >= 3 && !memcmp(s + i, "\xc2\xb5s", 3)) {
            unit = 1e-3, i += 3;
        } else if (n - i >= 2 && !memcmp(s + i, "ns", 2)) {
            unit = 1e-6, i += 2;
        } else if (s[i] == 'h') {
            unit = 3600e3, i++;
        } else if (s[i] == 'm') {
            unit = 60e3, i++;
        } else if (s[i] == 's') {
            unit = 1e3, i++;
        } else {
            return -1;
        }
        total += v * unit;
        parts++;
    }
    if (total > 1e12)
        return -1;
    long ms = (long)total;
    if ((double)ms < total)
        ms++;
    return ms;
}

/* An HTTP date (RFC 9110 5.6.7): IMF-fixdate, or the obsolete RFC 850 and asctime forms
 * a recipient must accept. Seconds since the epoch, or -1. */
static long long http_date(const char *s)
{
    static const char *const forms[] = {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
                                        "%a %b %e %H:%M:%S %Y"};
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(s, forms[i], &tm);
        if (end && *end == '\0') {
            time_t t = timegm(&tm);
            return t == (time_t)-1 ? -1 : (long long)t;
        }
    }
    return -1;
}

long sl__httpc_parse_retry_after_ms(const char *s, size_t n, long long now_unix)
{
    trim(&s, &n);
    long secs = parse_long(s, n);
    if (secs >= 0)
        return secs > 1000000000L / 1000 ? -1 : secs * 1000;
    char tmp[64];
    if (!n || n >= sizeof tmp)
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    long long when = http_date(tmp);
    if (when < 0)
        return -1;
    long long d = (long long)when - now_unix;
    if (d < 0)
        d = 0;
    if (d > 1000000000LL / 1000)
        return -1;
    return (long)(d * 1000);
}
