/* clock.c — monotonic and wall time (see clock.h). */
#include "base/clock.h"

#include <time.h>

double sl__clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int64_t sl__clock_unix(void)
{
    return (int64_t)time(NULL);
}
