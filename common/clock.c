/* clock.c — clock reads and RFC 3339 formatting. */
#include "clock.h"

#include <stdio.h>
#include <time.h>

int64_t vigil_wallclock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

int64_t vigil_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

size_t vigil_format_rfc3339(int64_t ns, char *buf, size_t len)
{
    int64_t sec = ns / NS_PER_SEC;
    int64_t rem = ns % NS_PER_SEC;
    if (rem < 0) { /* floor division for times before the epoch */
        rem += NS_PER_SEC;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return 0;
    int n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(rem / NS_PER_US));
    if (n < 0 || (size_t)n >= len)
        return 0;
    return (size_t)n;
}
