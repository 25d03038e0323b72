/* retry.c — retry classification and full-jitter exponential backoff.
 *
 * Pure policy (see retry.h): it decides, the caller waits. It must never read the clock
 * or sleep, so tests drive it with a fake clock and a fixed seed. */
#include "policy/retry.h"

#include <string.h>

#include <sluice/common.h>

void sl__retry_opts_init(sl_retry_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_attempts = 5;
    o->base_ms = 500;
    o->cap_ms = 30000;
    o->budget_ms = 0;
    o->honour_retry_after = 1;
    o->retry_after_max_ms = 600000;
}

const char *sl__retry_reason_name(sl_retry_reason r)
{
    switch (r) {
    case SL_RETRY_NONE:
        return "";
    case SL_RETRY_NOT_RETRYABLE:
        return "not retryable";
    case SL_RETRY_ATTEMPTS:
        return "attempts exhausted";
    case SL_RETRY_BUDGET:
        return "retry budget exhausted";
    }
    return "";
}

void sl__retry_start(sl_retry_state *s, double now_ms)
{
    memset(s, 0, sizeof *s);
    s->start_ms = now_ms;
}

void sl__retry_keep(sl_retry_state *s, sl_retry_attempt *rec, int cap)
{
    s->rec = rec;
    s->rec_cap = rec ? cap : 0;
}

static int status_retryable(int status)
{
    return status == 408 || status == 409 || status == 429 || (status >= 500 && status <= 599);
}

int sl__retry_retryable(int err, int http_status)
{
    switch (err) {
    case SL_ETRANSPORT:
    case SL_ETIMEDOUT:
    case SL_EPROTO:
        return 1;
    case SL_EHTTP:
        return status_retryable(http_status);
    case 0:
        return http_status >= 400 && status_retryable(http_status);
    default:
        return 0;
    }
}

double sl__retry_rand(uint64_t *rng)
{
    /* splitmix64: a full-period generator whose every seed is good. */
    uint64_t z = (*rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0); /* 53 bits -> [0, 1) */
}

double sl__retry_ceiling(const sl_retry_opts *o, int k)
{
    double cap = o->cap_ms > 0 ? (double)o->cap_ms : 0;
    double c = o->base_ms > 0 ? (double)o->base_ms : 0;
    /* Doubling stops at the cap, so a large k cannot overflow. */
    for (int i = 0; i < k && c < cap; i++)
        c *= 2;
    return c < cap ? c : cap;
}

static void record(sl_retry_state *s, int err, int status, double now_ms, double delay)
{
    if (s->count < s->rec_cap) {
        sl_retry_attempt *a = &s->rec[s->count];
        a->error = err;
        a->http_status = status;
        a->end_ms = now_ms;
        a->delay_ms = delay;
    }
    s->count++;
}

/* Set the delay of the attempt just recorded (the last one). */
static void set_last_delay(sl_retry_state *s, double delay)
{
    if (s->count >= 1 && s->count <= s->rec_cap)
        s->rec[s->count - 1].delay_ms = delay;
}

int sl__retry_next(const sl_retry_opts *o, sl_retry_state *s, int err, int http_status,
                   long retry_after_ms, double now_ms, uint64_t *rng, double *delay_ms)
{
    int k = s->count; /* retries made so far: this would be retry number k */
    record(s, err, http_status, now_ms, -1);
    *delay_ms = -1;

    if (!sl__retry_retryable(err, http_status)) {
        s->reason = SL_RETRY_NOT_RETRYABLE;
        return 0;
    }
    int max = o->max_attempts >= 1 ? o->max_attempts : 1;
    if (s->count >= max) {
        s->reason = SL_RETRY_ATTEMPTS;
        return 0;
    }

    double delay = sl__retry_rand(rng) * sl__retry_ceiling(o, k);
    int forced = 0; /* the delay comes from the provider, not from our jitter */
    if (o->honour_retry_after && retry_after_ms >= 0) {
        double ra = (double)retry_after_ms;
        if (o->retry_after_max_ms >= 0 && ra > (double)o->retry_after_max_ms)
            ra = (double)o->retry_after_max_ms;
        if (ra >= delay) {
            delay = ra;
            forced = 1;
        }
    }

    if (o->budget_ms > 0) {
        double remaining = s->start_ms + (double)o->budget_ms - now_ms;
        if (remaining <= 0 || (forced && delay > remaining)) {
            s->reason = SL_RETRY_BUDGET;
            return 0;
        }
        if (delay > remaining)
            delay = remaining;
    }

    set_last_delay(s, delay);
    *delay_ms = delay;
    return 1;
}

void sl__retry_record_ok(sl_retry_state *s, int http_status, double now_ms)
{
    record(s, 0, http_status, now_ms, -1);
}
