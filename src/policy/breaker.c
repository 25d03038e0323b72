/* breaker.c — closed / open / half-open circuit breaker on a caller-supplied clock.
 *
 * Pure policy (see breaker.h): decisions only, no clock reads, no timers. */
#include "policy/breaker.h"

#include <string.h>

void sl__breaker_opts_init(sl_breaker_opts *o)
{
    memset(o, 0, sizeof *o);
    o->threshold = 5;
    o->cooldown_ms = 10000;
    o->cooldown_max_ms = 0;
}

void sl__breaker_init(sl_breaker *b, const sl_breaker_opts *o)
{
    memset(b, 0, sizeof *b);
    if (o)
        b->o = *o;
    else
        sl__breaker_opts_init(&b->o);
    if (b->o.cooldown_ms < 0)
        b->o.cooldown_ms = 0;
    b->state = SL_BREAKER_CLOSED;
    b->cooldown_ms = (double)b->o.cooldown_ms;
}

const char *sl__breaker_state_name(sl_breaker_state s)
{
    switch (s) {
    case SL_BREAKER_CLOSED:
        return "closed";
    case SL_BREAKER_OPEN:
        return "open";
    case SL_BREAKER_HALF_OPEN:
        return "half-open";
    }
    return "unknown";
}

static void open_at(sl_breaker *b, double now_ms)
{
    b->state = SL_BREAKER_OPEN;
    b->opened_ms = now_ms;
    b->trial = 0;
    b->failures = 0;
    b->opens++;
}

int sl__breaker_allow(sl_breaker *b, double now_ms)
{
    switch (b->state) {
    case SL_BREAKER_CLOSED:
        return 1;
    case SL_BREAKER_OPEN:
        if (now_ms < b->opened_ms + b->cooldown_ms)
            break;
        b->state = SL_BREAKER_HALF_OPEN;
        b->trial = 1;
        return 1;
    case SL_BREAKER_HALF_OPEN:
        if (!b->trial) {
            b->trial = 1;
            return 1;
        }
        break;
    }
    b->rejects++;
    return 0;
}

void sl__breaker_record(sl_breaker *b, double now_ms, int ok)
{
    switch (b->state) {
    case SL_BREAKER_CLOSED:
        if (ok) {
            b->failures = 0;
        } else if (b->o.threshold > 0 && ++b->failures >= b->o.threshold) {
            open_at(b, now_ms);
        }
        break;
    case SL_BREAKER_OPEN:
        break; /* a call from before it opened: says nothing new */
    case SL_BREAKER_HALF_OPEN:
        if (ok) {
            b->state = SL_BREAKER_CLOSED;
            b->failures = 0;
            b->trial = 0;
            b->cooldown_ms = (double)b->o.cooldown_ms;
        } else {
            if (b->o.cooldown_max_ms > b->o.cooldown_ms) {
                b->cooldown_ms *= 2;
                if (b->cooldown_ms > (double)b->o.cooldown_max_ms)
                    b->cooldown_ms = (double)b->o.cooldown_max_ms;
            }
            open_at(b, now_ms);
        }
        break;
    }
}

uint64_t sl__breaker_trial_token(const sl_breaker *b)
{
    /* opens >= 1 once it has opened, so a half-open generation is never 0 */
    return b->state == SL_BREAKER_HALF_OPEN ? b->opens : 0;
}

void sl__breaker_abandon(sl_breaker *b, uint64_t token)
{
    if (token && b->state == SL_BREAKER_HALF_OPEN && b->opens == token)
        b->trial = 0;
}

double sl__breaker_retry_in(const sl_breaker *b, double now_ms)
{
    if (b->state != SL_BREAKER_OPEN)
        return 0;
    double left = b->opened_ms + b->cooldown_ms - now_ms;
    return left > 0 ? left : 0;
}
