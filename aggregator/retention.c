/* retention.c — deleting aged data in slices (see retention.h).
 *
 * Every DB involved is keyed by time first, so each job deletes from the
 * front of its tree with one cursor: a slice is one write transaction of at
 * most RETENTION_SLICE_ROWS deletions, which keeps the writer's pause short.
 * Cutoffs are whole buckets. (Open flows are not here: store_tick stores
 * them once stale, and they age out from the flows DB.) The low marks in
 * meta tell queries which minute/hour rows may be gone. */
#include "retention.h"

#include <string.h>

#include "bytes.h"
#include "err.h"
#include "log.h"
#include "store_int.h"

enum job { JOB_FLOWS = 0, JOB_HOSTIDX, JOB_ROLLUP0 }; /* then TIER x DIM rollup jobs */
#define JOB_RANK (JOB_ROLLUP0 + TIER_COUNT * DIM_COUNT) /* the days' rankings (rank.h) */
#define JOB_COUNT (JOB_RANK + 1)

struct slice_result {
    uint64_t deleted;
    bool more;
};

static uint32_t cutoff_sec(int64_t now_ns, int64_t keep_ns)
{
    int64_t c = now_ns - keep_ns;
    if (c <= 0)
        return 0;
    c /= NS_PER_SEC;
    return c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
}

/* Deletes rows of dbi whose first 4 key bytes (a time in seconds) are below
 * cutoff, at most RETENTION_SLICE_ROWS. */
static int delete_front(struct store *s, MDB_txn *txn, unsigned db, uint32_t cutoff,
                        struct slice_result *sr)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, s->db[db], &cur);

    sr->more = false;
    if (rc)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 4 || get_be32(k.mv_data) >= cutoff)
            break;
        if (sr->deleted >= RETENTION_SLICE_ROWS) {
            sr->more = true;
            break;
        }
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        sr->deleted++;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static const char *const low_keys[TIER_COUNT] = {META_LOW_M, META_LOW_H, META_LOW_D};

int store_retention_run(struct store *s, int64_t now_ns, int64_t budget_ns,
                        struct retention_stats *st)
{
    struct retention_stats local;
    int64_t deadline = vigil_monotonic_ns() + budget_ns;
    uint32_t cut[JOB_COUNT];
    unsigned job = 0;

    if (!st)
        st = &local;
    memset(st, 0, sizeof *st);
    if (!s)
        return VIGIL_EINVAL;

    /* Cutoffs, whole buckets. Minutes (hours) of an hour (day) not yet built
     * stay: they are the only copy of that data. */
    uint32_t flows_cut = cutoff_sec(now_ns, s->cfg.flow_retention_ns);
    const int64_t keep[TIER_COUNT] = {s->cfg.minute_retention_ns, s->cfg.hour_retention_ns,
                                      s->cfg.day_retention_ns};
    cut[JOB_FLOWS] = flows_cut;
    cut[JOB_HOSTIDX] = floor_to(flows_cut, 60);
    for (unsigned t = 0; t < TIER_COUNT; t++) {
        uint32_t c = floor_to(cutoff_sec(now_ns, keep[t]), tier_secs[t]);
        if (t == TIER_MINUTE && c > s->sealed_h)
            c = s->sealed_h;
        if (t == TIER_HOUR && c > s->sealed_d)
            c = s->sealed_d;
        for (unsigned d = 0; d < DIM_COUNT; d++)
            cut[JOB_ROLLUP0 + t * DIM_COUNT + d] = c;
    }
    cut[JOB_RANK] = cut[JOB_ROLLUP0 + TIER_DAY * DIM_COUNT];

    while (job < JOB_COUNT) {
        struct slice_result sr = {0};
        MDB_txn *txn;
        int rc = store__begin_write(s, &txn);
        if (rc)
            return rc;
        /* One transaction may finish several small jobs. */
        while (job < JOB_COUNT && !sr.more) {
            unsigned db = job == JOB_FLOWS     ? DB_FLOWS
                          : job == JOB_HOSTIDX ? DB_HOSTIDX
                          : job == JOB_RANK    ? DB_RANK
                                               : DB_ROLLUP0 + (job - JOB_ROLLUP0);
            uint64_t before = sr.deleted;
            if ((rc = delete_front(s, txn, db, cut[job], &sr)) != 0)
                break;
            uint64_t n = sr.deleted - before;
            if (job == JOB_FLOWS)
                st->flows += n;
            else if (job == JOB_HOSTIDX)
                st->hostidx += n;
            else if (job != JOB_RANK)
                st->rollups[(job - JOB_ROLLUP0) / DIM_COUNT] += n;
            if (!sr.more)
                job++;
        }
        /* A tier's low mark moves once all its dimensions are past the cutoff. */
        for (unsigned t = 0; rc == 0 && t < TIER_COUNT; t++) {
            if (job < JOB_ROLLUP0 + (t + 1) * DIM_COUNT)
                break;
            uint32_t old;
            rc = store__get_meta_u32(s, txn, low_keys[t], &old);
            if (rc == 0 && cut[JOB_ROLLUP0 + t * DIM_COUNT] > old)
                rc = store__put_meta_u32(s, txn, low_keys[t], cut[JOB_ROLLUP0 + t * DIM_COUNT]);
        }
        if (rc) {
            mdb_txn_abort(txn);
            rc = store__err(rc);
            if (rc == STORE__EMAPFULL) { /* deleting needs pages too: grow, go on */
                if ((rc = store__grow(s, true)) != 0)
                    return rc == STORE__EMAPFULL ? VIGIL_EFULL : rc;
                continue;
            }
            return rc;
        }
        if ((rc = store__commit(s, txn, s->gen, NULL, NULL)) != 0) {
            if (rc == STORE__EMAPFULL && store__grow(s, true) == 0)
                continue;
            return rc == STORE__EMAPFULL ? VIGIL_EFULL : rc;
        }
        st->txns++;
        if (job < JOB_COUNT && vigil_monotonic_ns() >= deadline)
            return 0;
    }
    st->done = true;
    return 0;
}
