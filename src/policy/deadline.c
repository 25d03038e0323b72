/* deadline.c — absolute end times: remaining, expired, earliest of two.
 *
 * Pure value functions (see deadline.h); never reads the clock. */
#include "policy/deadline.h"

#include <limits.h>
#include <math.h>

sl_deadline sl__deadline_none(void)
{
    sl_deadline d = {0, 0};
    return d;
}

sl_deadline sl__deadline_at(double end_ms)
{
    sl_deadline d = {1, end_ms};
    return d;
}

sl_deadline sl__deadline_in(double now_ms, long timeout_ms)
{
    if (timeout_ms <= 0)
        return sl__deadline_none();
    return sl__deadline_at(now_ms + (double)timeout_ms);
}

double sl__deadline_remaining(sl_deadline d, double now_ms)
{
    if (!d.set)
        return SL_DEADLINE_FOREVER;
    return d.end_ms > now_ms ? d.end_ms - now_ms : 0;
}

int sl__deadline_expired(sl_deadline d, double now_ms)
{
    return d.set && now_ms >= d.end_ms;
}

int sl__deadline_allows(sl_deadline d, double now_ms, double wait_ms)
{
    return !d.set || now_ms + wait_ms < d.end_ms;
}

sl_deadline sl__deadline_min(sl_deadline a, sl_deadline b)
{
    if (!a.set)
        return b;
    if (!b.set)
        return a;
    return a.end_ms <= b.end_ms ? a : b;
}

long sl__deadline_timer_ms(sl_deadline d, double now_ms)
{
    if (!d.set)
        return -1;
    double left = ceil(sl__deadline_remaining(d, now_ms));
    if (left >= (double)LONG_MAX)
        return LONG_MAX;
    return (long)left;
}
