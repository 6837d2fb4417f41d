/* clock.h — vigil's one time type: signed 64-bit nanoseconds.
 *
 * Wall-clock time is nanoseconds since the Unix epoch (good until 2262);
 * monotonic time is for intervals only. */
#ifndef VIGIL_CLOCK_H
#define VIGIL_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#define NS_PER_SEC INT64_C(1000000000)
#define NS_PER_MS INT64_C(1000000)
#define NS_PER_US INT64_C(1000)

int64_t vigil_wallclock_ns(void);
int64_t vigil_monotonic_ns(void);

/* Formats ns-since-epoch as RFC 3339 UTC with microseconds
 * ("2026-11-26T19:12:50.123456Z") into buf; returns the length written
 * (excluding the NUL), or 0 if buf is too small (needs 28 bytes). */
size_t vigil_format_rfc3339(int64_t ns, char *buf, size_t len);

#endif
