/* pace.c — the mock's schedule of timed answers (see pace.h).
 *
 * Only arithmetic: the count is computed in one step rather than by walking the chunks,
 * since a loop that fell far behind may find thousands due at once. */
#include "apps/mock/pace.h"

#include <math.h>

int sl__mock_pace_due(const sl_mock_pace *p, double now_ms, uint64_t *wait_ms)
{
    double first = p->t0_ms + p->ttft_ms;
    double ahead = now_ms + SL_MOCK_PACE_SLACK_MS - first; /* how far chunk 0 is behind */
    int k;
    if (p->n <= 0)
        k = 0;
    else if (ahead <= 0)
        k = 0;
    else if (p->interval_ms <= 0)
        k = p->n;
    else {
        /* chunks i with i x interval < ahead: i < ahead / interval */
        double x = ceil(ahead / p->interval_ms);
        k = x >= (double)p->n ? p->n : (int)x;
    }
    *wait_ms = 0;
    if (k < p->n) {
        double left = ceil(first + (double)k * p->interval_ms - now_ms);
        *wait_ms = left >= 1 ? (uint64_t)left : 1;
    }
    return k;
}
