/* log.c — stderr logging with levels and rate limiting. */
#include "log.h"

#include "clock.h"

#include <stdarg.h>
#include <stdio.h>

enum log_level vigil_log_level = LOG_LVL_INFO;
static const char *log_ident = "vigil";

static const char *const level_names[] = {"error", "warning", "info", "debug"};

void log_set_ident(const char *ident)
{
    log_ident = ident;
}

__attribute__((format(printf, 2, 0))) static void log_vwrite(enum log_level lvl, const char *fmt,
                                                             va_list ap)
{
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    fprintf(stderr, "%s: %s: %s\n", log_ident, level_names[lvl], line);
}

void log_write(enum log_level lvl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(lvl, fmt, ap);
    va_end(ap);
}

void log_ratelimited(struct log_ratelimit *rl, enum log_level lvl, const char *fmt, ...)
{
    if (lvl > vigil_log_level)
        return;
    int64_t now = vigil_monotonic_ns();
    if (now < rl->next_ns) {
        rl->suppressed++;
        return;
    }
    rl->next_ns = now + 10 * INT64_C(1000000000);
    if (rl->suppressed)
        log_write(lvl, "(%llu similar messages suppressed)", (unsigned long long)rl->suppressed);
    rl->suppressed = 0;
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(lvl, fmt, ap);
    va_end(ap);
}
