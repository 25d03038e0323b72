/* summary.c — the final account of a batch run (see summary.h). */
#include "apps/batch/summary.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/common.h>

#include "apps/batch/progress.h"
#include "apps/batch/text.h"
#include "base/json.h"

/* ---- histogram ------------------------------------------------------------------------ */

#define HALF (1u << (SL_BATCH_HIST_SUB_BITS - 1)) /* 64 sub-buckets per power of two */
#define SUB  (1u << SL_BATCH_HIST_SUB_BITS)

void sl__batch_hist_init(sl_batch_hist *h)
{
    memset(h, 0, sizeof *h);
}

static size_t bucket_of(uint64_t v)
{
    if (v < SUB)
        return (size_t)v;
    unsigned m = 63u - (unsigned)__builtin_clzll(v); /* v in [2^m, 2^(m+1)) */
    unsigned shift = m - (SL_BATCH_HIST_SUB_BITS - 1);
    return (size_t)shift * HALF + (size_t)(v >> shift);
}

/* The middle of bucket i, in microseconds. */
static double bucket_mid(size_t i)
{
    if (i < SUB)
        return (double)i;
    unsigned shift = (unsigned)(i / HALF) - 1;
    uint64_t lower = (uint64_t)(i - (size_t)shift * HALF) << shift;
    uint64_t width = (uint64_t)1 << shift;
    return (double)lower + (double)(width - 1) / 2.0;
}

void sl__batch_hist_add(sl_batch_hist *h, double ms)
{
    if (!(ms >= 0))
        return;
    double us = floor(ms * 1000.0 + 0.5);
    uint64_t v = us >= (double)(SL_BATCH_HIST_MAX_US - 1) ? SL_BATCH_HIST_MAX_US - 1 : (uint64_t)us;
    h->buckets[bucket_of(v)]++;
    if (!h->count || ms < h->min_ms)
        h->min_ms = ms;
    if (!h->count || ms > h->max_ms)
        h->max_ms = ms;
    h->sum_ms += ms;
    h->count++;
}

double sl__batch_hist_percentile(const sl_batch_hist *h, double p)
{
    if (!h->count)
        return 0;
    if (p > 100)
        p = 100;
    /* nearest rank; the small slack keeps 0.9 * 10 from becoming rank 10 */
    double r = ceil(p / 100.0 * (double)h->count - 1e-9);
    uint64_t rank = r < 1 ? 1 : (uint64_t)r;
    uint64_t seen = 0;
    for (size_t i = 0; i < SL_BATCH_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            double ms = bucket_mid(i) / 1000.0;
            if (ms < h->min_ms)
                ms = h->min_ms;
            if (ms > h->max_ms)
                ms = h->max_ms;
            return ms;
        }
    }
    return h->max_ms;
}

/* ---- outcomes ------------------------------------------------------------------------- */

sl_batch_outcome sl__batch_outcome_of(int error, int http_status)
{
    switch (error) {
    case 0:
        return SL_BATCH_OK;
    case SL_EHTTP:
        if (http_status >= 400 && http_status < 500)
            return SL_BATCH_HTTP_4XX;
        if (http_status >= 500 && http_status < 600)
            return SL_BATCH_HTTP_5XX;
        return SL_BATCH_OTHER;
    case SL_ETIMEDOUT:
        return SL_BATCH_TIMEOUT;
    case SL_ETRANSPORT:
        return SL_BATCH_TRANSPORT;
    case SL_EPROTO:
    case SL_EDIVERGED:
    case SL_ELIMIT:
        return SL_BATCH_PROTOCOL;
    case SL_EBUSY:
        return SL_BATCH_CIRCUIT;
    default:
        return SL_BATCH_OTHER;
    }
}

static const char *const outcome_names[SL_BATCH_OUTCOMES] = {
    "ok",       "http_4xx",     "http_5xx", "timeout", "transport",
    "protocol", "circuit_open", "other",    "invalid",
};

/* For the text summary: "http_4xx" reads better as "http 4xx". */
static const char *const outcome_words[SL_BATCH_OUTCOMES] = {
    "ok",       "http 4xx",     "http 5xx", "timeout", "transport",
    "protocol", "circuit open", "other",    "invalid",
};

const char *sl__batch_outcome_name(sl_batch_outcome o)
{
    return (unsigned)o < SL_BATCH_OUTCOMES ? outcome_names[o] : "other";
}

/* ---- records -------------------------------------------------------------------------- */

void sl__batch_summary_init(sl_batch_summary *s, size_t max_failures)
{
    memset(s, 0, sizeof *s);
    sl__batch_hist_init(&s->latency);
    s->max_failures = max_failures ? max_failures : SL_BATCH_MAX_FAILURES;
}

void sl__batch_summary_free(sl_batch_summary *s)
{
    for (size_t i = 0; i < s->nfailures; i++) {
        free(s->failures[i].id);
        free(s->failures[i].message);
    }
    free(s->failures);
    s->failures = NULL;
    s->nfailures = 0;
}

/* One line of at most SL_BATCH_FAILURE_MSG bytes of valid UTF-8: control bytes become
 * spaces, invalid bytes '?', and a cut is marked with "...". */
static char *one_line(const char *m)
{
    size_t n = strlen(m);
    size_t cap = SL_BATCH_FAILURE_MSG;
    char *out = malloc(cap + 4);
    if (!out)
        return NULL;
    const unsigned char *p = (const unsigned char *)m;
    size_t i = 0, o = 0;
    while (i < n) {
        size_t k = sl__utf8_seq(p + i, n - i);
        size_t w = k ? k : 1;
        if (o + w > cap) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (!k)
            out[o++] = '?';
        else if (p[i] < 0x20 || p[i] == 0x7f)
            out[o++] = ' ';
        else {
            memcpy(out + o, p + i, k);
            o += k;
        }
        i += w;
    }
    out[o] = '\0';
    return out;
}

int sl__batch_summary_add(sl_batch_summary *s, const sl_batch_record *r)
{
    sl_batch_outcome oc = (unsigned)r->outcome < SL_BATCH_OUTCOMES ? r->outcome : SL_BATCH_OTHER;
    s->count[oc]++;
    if (r->attempts > 1)
        s->retries += (uint64_t)(r->attempts - 1);
    if (r->prompt_tokens > 0)
        s->prompt_tokens += (uint64_t)r->prompt_tokens;
    if (r->completion_tokens > 0)
        s->completion_tokens += (uint64_t)r->completion_tokens;
    if (r->total_ms >= 0)
        sl__batch_hist_add(&s->latency, r->total_ms);
    if (oc == SL_BATCH_OK)
        return 0;
    if (s->nfailures >= s->max_failures) {
        s->failures_omitted++;
        return 0;
    }
    if (!s->failures) {
        s->failures = calloc(s->max_failures, sizeof *s->failures);
        if (!s->failures) {
            s->failures_omitted++;
            return SL_ENOMEM;
        }
    }
    sl_batch_failure *f = &s->failures[s->nfailures];
    f->id = r->id ? strdup(r->id) : NULL;
    f->message = r->message ? one_line(r->message) : NULL;
    if ((r->id && !f->id) || (r->message && !f->message)) {
        free(f->id);
        free(f->message);
        memset(f, 0, sizeof *f);
        s->failures_omitted++;
        return SL_ENOMEM;
    }
    f->line_no = r->line_no;
    f->outcome = oc;
    f->http_status = r->http_status;
    s->nfailures++;
    return 0;
}

uint64_t sl__batch_summary_failed(const sl_batch_summary *s)
{
    uint64_t n = 0;
    for (int i = SL_BATCH_OK + 1; i < SL_BATCH_OUTCOMES; i++)
        n += s->count[i];
    return n;
}

/* ---- rendering ------------------------------------------------------------------------ */

static uint64_t requests_failed(const sl_batch_summary *s)
{
    return sl__batch_summary_failed(s) - s->count[SL_BATCH_INVALID];
}

static uint64_t items(const sl_batch_summary *s)
{
    uint64_t n = s->skipped + s->unfinished;
    for (int i = 0; i < SL_BATCH_OUTCOMES; i++)
        n += s->count[i];
    return n;
}

/* "4.2ms", "850ms", "1.23s", "3m05s" */
static void fmt_ms(char *buf, double ms)
{
    if (ms < 9.95)
        snprintf(buf, 24, "%.1fms", ms);
    else if (ms < 999.5)
        snprintf(buf, 24, "%.0fms", ms);
    else if (ms < 59995)
        snprintf(buf, 24, "%.2fs", ms / 1000.0);
    else
        sl__batch_fmt_secs(buf, ms / 1000.0);
}

static const char *plural(uint64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* An id as it is, or JSON-quoted when it holds a control byte (a newline would break the
 * list), then ": ". */
static int append_id(sl_buf *out, const char *id)
{
    int plain = 1;
    for (const char *p = id; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            plain = 0;
    int rc = plain ? sl__buf_append_str(out, id) : sl__batch_json_quote(out, id, strlen(id));
    return rc ? rc : sl__buf_append_str(out, ": ");
}

int sl__batch_summary_text(const sl_batch_summary *s, sl_buf *out)
{
    uint64_t failed = requests_failed(s);
    uint64_t invalid = s->count[SL_BATCH_INVALID];
    uint64_t sent = 0;
    for (int i = 0; i < SL_BATCH_INVALID; i++)
        sent += s->count[i];
    int rc =
        sl__buf_printf(out, "batch: %" PRIu64 " %s: %" PRIu64 " ok, %" PRIu64 " failed", items(s),
                       plural(items(s), "item", "items"), s->count[SL_BATCH_OK], failed);
    if (!rc && invalid)
        rc = sl__buf_printf(out, ", %" PRIu64 " invalid %s", invalid,
                            plural(invalid, "line", "lines"));
    if (!rc && s->skipped)
        rc = sl__buf_printf(out, ", %" PRIu64 " skipped (already in the output)", s->skipped);
    if (!rc && s->unfinished)
        rc = sl__buf_printf(out, ", %" PRIu64 " not finished (run again with --resume)",
                            s->unfinished);
    if (!rc && s->input_left)
        rc = sl__buf_append_str(out, s->unfinished ? "; the input was not read to its end"
                                                   : "; the input was not read to its end "
                                                     "(run again with --resume)");
    if (!rc)
        rc = sl__buf_append_str(out, "\n");
    if (!rc && failed) {
        rc = sl__buf_append_str(out, "  failed:");
        const char *sep = " ";
        for (int i = SL_BATCH_HTTP_4XX; !rc && i < SL_BATCH_INVALID; i++) {
            if (!s->count[i])
                continue;
            rc = sl__buf_printf(out, "%s%s %" PRIu64, sep, outcome_words[i], s->count[i]);
            sep = ", ";
        }
        if (!rc)
            rc = sl__buf_append_str(out, "\n");
    }
    char wall[24], rate[24], tok[24];
    double secs = s->wall_ms / 1000.0;
    uint64_t tokens = s->prompt_tokens + s->completion_tokens;
    fmt_ms(wall, s->wall_ms);
    sl__batch_fmt_rate(rate, secs > 0 ? (double)sent / secs : 0);
    sl__batch_fmt_si(tok, secs > 0 ? (double)tokens / secs : 0);
    if (!rc)
        rc = sl__buf_printf(out, "  time: %s, %s req/s, %s tok/s\n", wall, rate, tok);
    if (!rc)
        rc = sl__buf_printf(out,
                            "  tokens: %" PRIu64 " prompt + %" PRIu64 " completion = %" PRIu64
                            "; retries: %" PRIu64 "\n",
                            s->prompt_tokens, s->completion_tokens, tokens, s->retries);
    if (!rc && s->latency.count) {
        char p50[24], p90[24], p99[24], max[24];
        fmt_ms(p50, sl__batch_hist_percentile(&s->latency, 50));
        fmt_ms(p90, sl__batch_hist_percentile(&s->latency, 90));
        fmt_ms(p99, sl__batch_hist_percentile(&s->latency, 99));
        fmt_ms(max, s->latency.max_ms);
        rc = sl__buf_printf(out, "  latency: p50 %s, p90 %s, p99 %s, max %s (%" PRIu64 " %s)\n",
                            p50, p90, p99, max, s->latency.count,
                            plural(s->latency.count, "request", "requests"));
    }
    if (!rc && (s->nfailures || s->failures_omitted))
        rc = sl__buf_append_str(out, "failures:\n");
    for (size_t i = 0; !rc && i < s->nfailures; i++) {
        const sl_batch_failure *f = &s->failures[i];
        rc = sl__buf_append_str(out, "  ");
        if (!rc && f->id)
            rc = append_id(out, f->id);
        if (!rc && (f->id || !f->message)) {
            /* the status only names an HTTP failure: a stream cut after its 200 is a
             * transport failure */
            if (f->http_status && (f->outcome == SL_BATCH_HTTP_4XX ||
                                   f->outcome == SL_BATCH_HTTP_5XX || f->outcome == SL_BATCH_OTHER))
                rc = sl__buf_printf(out, "http %d", f->http_status);
            else
                rc = sl__buf_append_str(out, outcome_words[f->outcome]);
            if (!rc && f->message)
                rc = sl__buf_append_str(out, ": ");
        }
        if (!rc && f->message)
            rc = sl__buf_append_str(out, f->message);
        if (!rc)
            rc = sl__buf_append_str(out, "\n");
    }
    if (!rc && s->failures_omitted)
        rc = sl__buf_printf(out,
                            "  ... and %" PRIu64 " more (each one with an id has its line in "
                            "the output file)\n",
                            s->failures_omitted);
    return rc;
}

/* A real rounded to the microsecond, so the JSON shows 1234.567, not 1234.5670000000001. */
static json_t *ms_value(double ms)
{
    return json_real(floor(ms * 1000.0 + 0.5) / 1000.0);
}

static int set(json_t *o, const char *k, json_t *v)
{
    return json_object_set_new(o, k, v);
}

int sl__batch_summary_json(const sl_batch_summary *s, sl_buf *out)
{
    int bad = 0;
    json_t *o = json_object();
    json_t *by = json_object();
    json_t *tok = json_object();
    json_t *lat = json_object();
    json_t *fl = json_array();
    if (!o || !by || !tok || !lat || !fl) {
        json_decref(o);
        json_decref(by);
        json_decref(tok);
        json_decref(lat);
        json_decref(fl);
        return SL_ENOMEM;
    }
    bad |= set(o, "items", json_integer((json_int_t)items(s)));
    bad |= set(o, "ok", json_integer((json_int_t)s->count[SL_BATCH_OK]));
    bad |= set(o, "failed", json_integer((json_int_t)requests_failed(s)));
    bad |= set(o, "invalid_lines", json_integer((json_int_t)s->count[SL_BATCH_INVALID]));
    bad |= set(o, "skipped", json_integer((json_int_t)s->skipped));
    bad |= set(o, "unfinished", json_integer((json_int_t)s->unfinished));
    bad |= set(o, "input_left", json_boolean(s->input_left));
    for (int i = SL_BATCH_HTTP_4XX; i < SL_BATCH_INVALID; i++)
        bad |= set(by, outcome_names[i], json_integer((json_int_t)s->count[i]));
    bad |= set(o, "failed_by_reason", by);
    bad |= set(o, "retries", json_integer((json_int_t)s->retries));
    bad |= set(tok, "prompt", json_integer((json_int_t)s->prompt_tokens));
    bad |= set(tok, "completion", json_integer((json_int_t)s->completion_tokens));
    bad |= set(tok, "total", json_integer((json_int_t)(s->prompt_tokens + s->completion_tokens)));
    bad |= set(o, "tokens", tok);
    bad |= set(o, "wall_ms", ms_value(s->wall_ms));
    bad |= set(lat, "count", json_integer((json_int_t)s->latency.count));
    bad |= set(lat, "p50", ms_value(sl__batch_hist_percentile(&s->latency, 50)));
    bad |= set(lat, "p90", ms_value(sl__batch_hist_percentile(&s->latency, 90)));
    bad |= set(lat, "p99", ms_value(sl__batch_hist_percentile(&s->latency, 99)));
    bad |= set(lat, "max", ms_value(s->latency.count ? s->latency.max_ms : 0));
    bad |= set(o, "latency_ms", lat);
    for (size_t i = 0; i < s->nfailures; i++) {
        const sl_batch_failure *f = &s->failures[i];
        json_t *e = json_object();
        if (!e) {
            bad = 1;
            break;
        }
        json_t *id = NULL;
        if (f->id && !(id = json_string(f->id))) {
            /* not valid UTF-8: show it cleaned rather than lose the entry */
            char *clean = one_line(f->id);
            id = clean ? json_string(clean) : NULL;
            free(clean);
        }
        bad |= set(e, "id", f->id ? id : json_null());
        bad |= set(e, "line", json_integer((json_int_t)f->line_no));
        bad |= set(e, "reason", json_string(outcome_names[f->outcome]));
        bad |= set(e, "http_status", f->http_status ? json_integer(f->http_status) : json_null());
        bad |= set(e, "message", f->message ? json_string(f->message) : json_null());
        bad |= json_array_append_new(fl, e);
    }
    bad |= set(o, "failures", fl);
    bad |= set(o, "failures_omitted", json_integer((json_int_t)s->failures_omitted));
    char *text = bad ? NULL : json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
    json_decref(o);
    if (!text)
        return SL_ENOMEM;
    int rc = sl__buf_append_str(out, text);
    if (!rc)
        rc = sl__buf_append(out, "\n", 1);
    free(text);
    return rc;
}

int sl__batch_summary_save_json(const sl_batch_summary *s, const char *path, char *err,
                                size_t errlen)
{
    sl_buf b;
    sl__buf_init(&b, 0);
    char *tmp = NULL;
    int fd = -1;
    int rc = sl__batch_summary_json(s, &b);
    if (rc) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    if (!strcmp(path, "-")) { /* standard output (never OUTPUT's too) */
        if (fwrite(b.data, 1, b.len, stdout) != b.len || fflush(stdout)) {
            rc = SL_EIO;
            snprintf(err, errlen, "cannot write the summary to stdout: %s", strerror(errno));
        }
        goto out;
    }
    size_t n = strlen(path) + 8;
    tmp = malloc(n);
    if (!tmp) {
        rc = SL_ENOMEM;
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    snprintf(tmp, n, "%s.tmp", path);
    rc = SL_EIO;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        goto sys;
    for (size_t off = 0; off < b.len;) {
        ssize_t k = write(fd, b.data + off, b.len - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            goto sys;
        off += (size_t)k;
    }
    if (fsync(fd))
        goto sys;
    int c = close(fd);
    fd = -1;
    if (c || rename(tmp, path))
        goto sys;
    rc = 0;
    goto out;
sys:
    snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    fd = -1;
    unlink(tmp);
out:
    if (fd >= 0)
        close(fd);
    free(tmp);
    sl__buf_free(&b);
    return rc;
}
