/* clock.h — monotonic and wall time in milliseconds.
 *
 * Policies never read the clock themselves: they take "now" as an argument so unit
 * tests drive them with a fake clock. Only the layers that own a loop call these. */
#ifndef SL_BASE_CLOCK_H
#define SL_BASE_CLOCK_H

#include <stdint.h>

/* Monotonic milliseconds (arbitrary origin), with sub-ms precision. */
double sl__clock_ms(void);
/* Seconds since the Unix epoch. */
int64_t sl__clock_unix(void);

#endif
