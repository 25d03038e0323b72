/* log.h — leveled diagnostics on stderr.
 *
 * The level comes from SLUICE_LOG (error, warn, info, debug; default warn) or
 * sl__log_set_level(). Never used for user-facing output: commands print their own. */
#ifndef SL_BASE_LOG_H
#define SL_BASE_LOG_H

enum { SL_LOG_ERROR = 0, SL_LOG_WARN = 1, SL_LOG_INFO = 2, SL_LOG_DEBUG = 3 };

void sl__log_set_level(int level);
int sl__log_enabled(int level);
void sl__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define SL_DEBUG(...)                                                                              \
    do {                                                                                           \
        if (sl__log_enabled(SL_LOG_DEBUG))                                                         \
            sl__log(SL_LOG_DEBUG, __VA_ARGS__);                                                    \
    } while (0)

#endif
