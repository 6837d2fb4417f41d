/* clock.c — clock reads and RFC 3339 formatting. */
#include "clock.h"

#include <string.h>
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

/* Civil date from days since 1970-01-01 in the proleptic Gregorian
 * calendar, by eras of 400 years (146097 days); no libc, no locale, no
 * time zone: this runs once per flow record. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static char *put_digits(char *p, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + n;
}

/* Records come roughly in time order, so most timestamps a thread formats
 * fall on the day it formatted last: its "YYYY-MM-DD" is kept. */
static _Thread_local int64_t cached_day = INT64_MIN;
static _Thread_local char cached_date[10];

size_t vigil_format_rfc3339(int64_t ns, char *buf, size_t len)
{
    int64_t sec = ns / NS_PER_SEC;
    int64_t rem = ns % NS_PER_SEC;
    if (rem < 0) { /* floor division for times before the epoch */
        rem += NS_PER_SEC;
        sec -= 1;
    }
    int64_t days = sec / 86400, sod = sec % 86400;
    if (sod < 0) {
        sod += 86400;
        days -= 1;
    }
    if (len < 28)
        return 0;
    if (days != cached_day) {
        int64_t y;
        unsigned m, d;
        civil_from_days(days, &y, &m, &d);
        if (y < 0 || y > 9999)
            return 0;
        char *q = put_digits(cached_date, (unsigned)y, 4);
        *q++ = '-';
        q = put_digits(q, m, 2);
        *q++ = '-';
        put_digits(q, d, 2);
        cached_day = days;
    }
    char *p = buf;
    memcpy(p, cached_date, sizeof cached_date);
    p += sizeof cached_date;
    *p++ = 'T';
    p = put_digits(p, (unsigned)(sod / 3600), 2);
    *p++ = ':';
    p = put_digits(p, (unsigned)(sod / 60 % 60), 2);
    *p++ = ':';
    p = put_digits(p, (unsigned)(sod % 60), 2);
    *p++ = '.';
    p = put_digits(p, (unsigned)(rem / NS_PER_US), 6);
    *p++ = 'Z';
    *p = '\0';
    return (size_t)(p - buf);
}
