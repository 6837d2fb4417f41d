/* trail.h — the standing trailing ranking: "top over the last 24 h" in
 * milliseconds, however many groups the day holds.
 *
 * Why: a trailing day never lines up with a built day, so a top query over
 * it merges every row of 22-23 hours and up to two hours of minutes (on a
 * 50 M-flow day, 20 million talker pairs: seconds). Day rankings (rank.h)
 * cannot help, and talker pairs are too flat for any threshold scheme over
 * per-bucket rankings to prune them.
 *
 * What: store_trail_refresh merges, off the query path (its own thread,
 * trail_thread_start, while top queries over a trailing day keep coming:
 * the first of them merges, and a store nobody asks spends nothing on it),
 * the 24 h [A, B) before the newest closed minute B
 * (newest record end - close_grace, whole minutes), and keeps per
 * dimension and metric the best RANK_K groups with their exact counters,
 * the value of the K-th (theta: no group left out has more), the number of
 * groups and the totals. A top query whose range is near [A, B) (each edge
 * within TRAIL_MAX_SHIFT_S, the minutes between held as minute rows) is
 * answered from it:
 *   - the rows of the minutes the query adds ([B, until), [since, A)) and
 *     of those it leaves out ([A, since), [until, B)) are merged, signed
 *     (groupmerge.h): a few minutes of rows, not a day's;
 *   - a listed group's figures are exact: standing + added - left out;
 *   - a group not listed had at most theta over [A, B), so at most
 *     theta - left out + added over the query's range.
 * The answer is the best `limit` of the exact figures when no unlisted
 * group's bound reaches the last of them (strictly); otherwise, or when
 * the ranking is missing or stale, the query merges the rows as before.
 * Either way the figures are exact for the range reported (since_ns,
 * until_ns). When the ranking lists every group of [A, B) the group count
 * is exact too; otherwise `groups` is that of [A, B) and groups_approx is
 * set.
 *
 * Late data: records committed after the ranking's snapshot for a minute
 * in [A, B) (a long idle timeout, a spool drained after an outage) are
 * kept beside it (trail_note, on the writer's commit under pend_lock) and
 * count as added minutes; past cfg.trail_late_max of them it goes stale and
 * queries merge until the next build. Flushes, compaction and retention
 * move rows between tiers without changing any minute's sums. */
#ifndef VIGIL_TRAIL_H
#define VIGIL_TRAIL_H

#include <stdbool.h>
#include <stdint.h>

#include "query.h"

#define TRAIL_SPAN_S 86400u          /* the standing range: one day */
#define TRAIL_MAX_SHIFT_S (30u * 60) /* how far a query's edge may lie from it */

struct store;
struct trail_rank;

/* Builds the ranking of [B - 24 h, B), B the newest closed minute, in one
 * snapshot, and publishes it unless it went stale meanwhile. max_ns bounds
 * the time taken (0: a built-in bound of minutes); past it the build is
 * dropped. Returns 0 (also when there is no data yet, or the
 * minute rows of the range are expired), or a negative code. Any thread;
 * builds are serialized. */
int store_trail_refresh(struct store *s, int64_t max_ns);

/* Is a refresh worth it: a top query over a trailing day came within the
 * hour, and there is no ranking, a stale one, or a newer closed minute
 * than its B. */
bool store_trail_due(struct store *s);

struct trail_info {
    bool present, stale;
    size_t late;                /* late contributions it carries */
    int64_t since_ns, until_ns; /* its range [A, B) */
    int64_t took_ns;            /* how long its build took */
    uint64_t builds, dropped;   /* built and published; built and found stale or cut */
    uint64_t answers, merged;   /* top queries it answered; near it but merged instead */
};
void store_trail_info(struct store *s, struct trail_info *out);

/* Query side (query.c). Answers q from the ranking when it can: 0 with
 * *out filled (standing set), 1 when it cannot (the caller merges), or a
 * negative code. */
int trail_top(struct store *s, const struct top_query *q, struct top_result *out);

struct contrib;
/* The writer, under pend_lock, for each contribution it committed: kept
 * by the rankings (published and being built) whose minutes it adds to. */
void trail_note(struct store *s, const struct contrib *c);

/* Releases the published ranking (store_close). */
void trail_free_all(struct store *s);

/* ---- the refresh thread ---- */
struct trail_thread;
/* Starts a thread that refreshes when due, at most every poll_ns and so
 * that builds take at most a tenth of its time. NULL on failure. */
struct trail_thread *trail_thread_start(struct store *s, int64_t poll_ns);
void trail_thread_stop(struct trail_thread *t);

#endif
