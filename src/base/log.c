/* log.c — leveled diagnostics on stderr (see log.h). */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int level = -1;

static int level_from_env(void)
{
    const char *s = getenv("SLUICE_LOG");
    if (!s)
        return SL_LOG_WARN;
    if (!strcmp(s, "error"))
        return SL_LOG_ERROR;
    if (!strcmp(s, "info"))
        return SL_LOG_INFO;
    if (!strcmp(s, "debug"))
        return SL_LOG_DEBUG;
    return SL_LOG_WARN;
}

void sl__log_set_level(int l)
{
    level = l;
}

int sl__log_enabled(int l)
{
    if (level < 0)
        level = level_from_env();
    return l <= level;
}

void sl__log(int l, const char *fmt, ...)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    if (!sl__log_enabled(l))
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "sluice: %s: %s\n", names[l < 0 ? 0 : l > 3 ? 3 : l], line);
}
