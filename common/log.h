/* log.h — levelled logging to stderr (journald picks it up under systemd).
 *
 * The level is checked before the arguments are evaluated, so a disabled
 * debug line costs one comparison. The per-packet path never logs: it counts.
 * log_ratelimited() is for conditions that can repeat at packet rate. */
#ifndef VIGIL_LOG_H
#define VIGIL_LOG_H

#include <stdint.h>

enum log_level { LOG_LVL_ERR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

extern enum log_level vigil_log_level;

/* Sets the program name printed before every line (borrowed, must outlive logging). */
void log_set_ident(const char *ident);

void log_write(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_AT(lvl, ...)                                                                         \
    do {                                                                                         \
        if ((lvl) <= vigil_log_level)                                                            \
            log_write((lvl), __VA_ARGS__);                                                       \
    } while (0)
#define log_err(...) LOG_AT(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) LOG_AT(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) LOG_AT(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) LOG_AT(LOG_LVL_DEBUG, __VA_ARGS__)

/* State for a rate-limited message: at most one line per interval, with the
 * number of suppressed repeats reported on the next line that gets through. */
struct log_ratelimit {
    int64_t next_ns;     /* monotonic time before which lines are suppressed */
    uint64_t suppressed; /* lines dropped since the last one printed */
};

void log_ratelimited(struct log_ratelimit *rl, enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
