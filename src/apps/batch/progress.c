/* progress.c — counters rendered as a progress bar or a status line (see progress.h). */
#include "apps/batch/progress.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void sl__batch_progress_init(sl_batch_progress *p, double now_ms)
{
    memset(p, 0, sizeof *p);
    p->start_ms = now_ms;
}

static uint64_t tokens_of(const sl_batch_counters *c)
{
    return c->prompt_tokens + c->completion_tokens;
}

void sl__batch_progress_sample(sl_batch_progress *p, const sl_batch_counters *c, double now_ms)
{
    if (p->n) {
        unsigned newest = (p->head + SL_BATCH_RATE_SLOTS - 1) % SL_BATCH_RATE_SLOTS;
        if (now_ms - p->ring[newest].t_ms < 1000.0)
            return;
    }
    p->ring[p->head].t_ms = now_ms;
    p->ring[p->head].done = c->done;
    p->ring[p->head].tokens = tokens_of(c);
    p->head = (p->head + 1) % SL_BATCH_RATE_SLOTS;
    if (p->n < SL_BATCH_RATE_SLOTS)
        p->n++;
}

/* The oldest snapshot, or the start (nothing done) when there is none. */
static sl_batch_progress_sample oldest(const sl_batch_progress *p)
{
    if (!p->n) {
        sl_batch_progress_sample s = {p->start_ms, 0, 0};
        return s;
    }
    return p->ring[(p->head + SL_BATCH_RATE_SLOTS - p->n) % SL_BATCH_RATE_SLOTS];
}

static double rate(double t0, uint64_t v0, double now_ms, uint64_t v)
{
    double dt = (now_ms - t0) / 1000.0;
    if (dt <= 0 || v < v0)
        return 0;
    return (double)(v - v0) / dt;
}

double sl__batch_progress_req_rate(const sl_batch_progress *p, const sl_batch_counters *c,
                                   double now_ms)
{
    sl_batch_progress_sample o = oldest(p);
    return rate(o.t_ms, o.done, now_ms, c->done);
}

double sl__batch_progress_tok_rate(const sl_batch_progress *p, const sl_batch_counters *c,
                                   double now_ms)
{
    sl_batch_progress_sample o = oldest(p);
    return rate(o.t_ms, o.tokens, now_ms, tokens_of(c));
}

void sl__batch_fmt_rate(char *buf, double r)
{
    snprintf(buf, 24, r < 9.95 ? "%.1f" : "%.0f", r);
}

void sl__batch_fmt_si(char *buf, double v)
{
    if (v < 999.5)
        snprintf(buf, 24, "%.0f", v);
    else if (v < 999.95e3)
        snprintf(buf, 24, "%.1fk", v / 1e3);
    else if (v < 999.95e6)
        snprintf(buf, 24, "%.1fM", v / 1e6);
    else if (v < 1e15)
        snprintf(buf, 24, "%.1fG", v / 1e9);
    else
        snprintf(buf, 24, ">1e15");
}

void sl__batch_fmt_secs(char *buf, double secs)
{
    if (!(secs >= 0) || secs >= 360000000.0) { /* also NaN; 100000 hours is "never" */
        snprintf(buf, 24, "?");
        return;
    }
    long long s = (long long)(secs + 0.5);
    if (s < 60)
        snprintf(buf, 24, "%llds", s);
    else if (s < 3600)
        snprintf(buf, 24, "%lldm%02llds", s / 60, s % 60);
    else
        snprintf(buf, 24, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
}

/* ETA text, "?" when it cannot be known. */
static void eta(char *buf, const sl_batch_counters *c, double req_rate)
{
    uint64_t have = c->skipped + c->done;
    if (!c->total) {
        snprintf(buf, 24, "?");
        return;
    }
    uint64_t left = c->total > have ? c->total - have : 0;
    if (!left)
        snprintf(buf, 24, "0s");
    else if (req_rate <= 0)
        snprintf(buf, 24, "?");
    else
        sl__batch_fmt_secs(buf, (double)left / req_rate);
}

int sl__batch_progress_bar(const sl_batch_progress *p, const sl_batch_counters *c, double now_ms,
                           int width, sl_buf *out)
{
    if (width <= 0)
        width = 80;
    size_t cols = width > 1 ? (size_t)width - 1 : 1;
    double rr = sl__batch_progress_req_rate(p, c, now_ms);
    char rs[24], ts[24], es[24], tot[24];
    sl__batch_fmt_rate(rs, rr);
    sl__batch_fmt_si(ts, sl__batch_progress_tok_rate(p, c, now_ms));
    eta(es, c, rr);
    if (c->total)
        snprintf(tot, sizeof tot, "%" PRIu64, c->total);
    else
        snprintf(tot, sizeof tot, "?");
    char nums[256], inv[40] = "";
    if (c->invalid)
        snprintf(inv, sizeof inv, " invalid=%" PRIu64, c->invalid);
    int n = snprintf(nums, sizeof nums,
                     " %" PRIu64 "/%s ok=%" PRIu64 " fail=%" PRIu64 "%s retry=%" PRIu64
                     " %s/s %s tok/s%s%s",
                     c->skipped + c->done, tot, c->ok, c->failed - c->invalid, inv, c->retrying, rs,
                     ts, c->total ? " ETA " : "", c->total ? es : "");
    size_t nlen = n < 0 ? 0 : (size_t)n >= sizeof nums ? sizeof nums - 1 : (size_t)n;
    char line[512];
    size_t len = 0;
    if (c->total && cols >= nlen + 2 + 10) {
        size_t bw = cols - nlen - 2;
        if (bw > 40)
            bw = 40;
        uint64_t have = c->skipped + c->done;
        size_t fill =
            have >= c->total ? bw : (size_t)((double)have * (double)bw / (double)c->total);
        line[len++] = '[';
        memset(line + len, '#', fill);
        memset(line + len + fill, '.', bw - fill);
        len += bw;
        line[len++] = ']';
        memcpy(line + len, nums, nlen);
        len += nlen;
    } else {
        /* no room for a bar: the numbers alone, without the separating space */
        memcpy(line, nums + 1, nlen - 1);
        len = nlen - 1;
    }
    if (len > cols)
        len = cols;
    int rc = sl__buf_append(out, "\r", 1);
    if (!rc)
        rc = sl__buf_append(out, line, len);
    if (!rc)
        rc = sl__buf_append(out, "\x1b[K", 3);
    return rc;
}

int sl__batch_progress_line(const sl_batch_progress *p, const sl_batch_counters *c, double now_ms,
                            sl_buf *out)
{
    double rr = sl__batch_progress_req_rate(p, c, now_ms);
    char rs[24], es[24], tot[24], skip[40] = "", inv[40] = "";
    sl__batch_fmt_rate(rs, rr);
    eta(es, c, rr);
    if (c->total)
        snprintf(tot, sizeof tot, "%" PRIu64, c->total);
    else
        snprintf(tot, sizeof tot, "?");
    if (c->skipped)
        snprintf(skip, sizeof skip, " skipped=%" PRIu64, c->skipped);
    if (c->invalid)
        snprintf(inv, sizeof inv, " invalid=%" PRIu64, c->invalid);
    return sl__buf_printf(out,
                          "[batch] %" PRIu64 "/%s ok=%" PRIu64 " failed=%" PRIu64
                          "%s%s retrying=%" PRIu64 " rate=%s/s tok/s=%.0f eta=%s\n",
                          c->skipped + c->done, tot, c->ok, c->failed - c->invalid, inv, skip,
                          c->retrying, rs, sl__batch_progress_tok_rate(p, c, now_ms), es);
}
