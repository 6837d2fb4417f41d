/* retention.c — deleting aged data in slices (see retention.h).
 *
 * Every DB of flows, host index, rollups and rankings is keyed by time
 * first, so each job deletes from the front of its tree with one cursor: a
 * slice is one write transaction of at most RETENTION_SLICE_ROWS
 * deletions, which keeps the writer's pause short. Cutoffs are whole
 * buckets. (Open flows are not here: store_tick stores them once stale,
 * and they age out from the flows DB.) The low marks in meta tell queries
 * which minute/hour rows may be gone.
 *
 * Capture jobs (keyed by a random id) and alerts (keyed by id: ids grow in
 * the order alerts are raised, but an alert's last_seen moves on while it
 * is updated, and event time is not raise order when agents deliver
 * different periods at once) are not in time order: they are walked whole,
 * RETENTION_SLICE_ROWS rows visited per transaction, and the walk's place
 * is kept in the store between calls so a long walk finishes. */
#include "retention.h"

#include <string.h>

#include "alerts.h"
#include "bytes.h"
#include "capture_job.h"
#include "err.h"
#include "log.h"
#include "store_int.h"

enum job { JOB_FLOWS = 0, JOB_HOSTIDX, JOB_ROLLUP0 }; /* then TIER x DIM rollup jobs */
#define JOB_RANK (JOB_ROLLUP0 + TIER_COUNT * DIM_COUNT) /* the days' rankings (rank.h) */
#define JOB_CAPTURES (JOB_RANK + 1) /* finished capture jobs: a walk */
#define JOB_ALERTS (JOB_CAPTURES + 1) /* alerts: a walk in the detection environment */
#define JOB_COUNT (JOB_ALERTS + 1)

enum { WALK_CAPTURES = 0, WALK_ALERTS }; /* s->ret_walk[] */
_Static_assert(WALK_ALERTS < STORE__WALKS, "one place per walk");

struct slice_result {
    uint64_t rows;    /* the transaction's work: rows deleted (front jobs) or visited (walks) */
    uint64_t deleted; /* the last job's deletions */
    uint64_t bad;     /* rows a walk could not decode */
    bool more;
    struct store__walk_pos next; /* a walk that stopped for more: where it goes on */
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
 * cutoff, until the transaction holds RETENTION_SLICE_ROWS rows of work. */
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
        if (sr->rows >= RETENTION_SLICE_ROWS) {
            sr->more = true;
            break;
        }
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        sr->rows++;
        sr->deleted++;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* ---- walks: DBs whose keys are not in time order ---------------------------------- */

enum verdict { VERDICT_KEEP = 0, VERDICT_DROP, VERDICT_BAD };

/* Judges one row: a verdict, or a negative VIGIL_E* code that ends the walk. */
typedef int (*judge_fn)(const MDB_val *k, const MDB_val *v, const void *ctx);

/* Visits rows of dbi from pos on, deleting those judge drops, until the
 * transaction holds RETENTION_SLICE_ROWS rows of work: then sr->more is
 * set and sr->next is the first row not visited. (A key too long to keep,
 * which LMDB's key limit rules out, is visited beyond the bound instead.)
 * Returns 0, an LMDB code or judge's error. */
static int walk_slice(MDB_txn *txn, MDB_dbi dbi, const struct store__walk_pos *pos,
                      judge_fn judge, const void *ctx, struct slice_result *sr)
{
    MDB_cursor *cur;
    MDB_val k = {pos->len, (void *)pos->key}, v;
    int rc = mdb_cursor_open(txn, dbi, &cur);

    sr->more = false;
    if (rc)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, pos->len ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (sr->rows >= RETENTION_SLICE_ROWS && k.mv_size <= sizeof sr->next.key) {
            sr->next.len = k.mv_size;
            memcpy(sr->next.key, k.mv_data, k.mv_size);
            sr->more = true;
            break;
        }
        sr->rows++;
        int verdict = judge(&k, &v, ctx);
        if (verdict < 0) {
            rc = verdict;
            break;
        }
        if (verdict == VERDICT_BAD) {
            sr->bad++;
        } else if (verdict == VERDICT_DROP) {
            if ((rc = mdb_cursor_del(cur, 0)) != 0)
                break;
            sr->deleted++;
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* A capture job goes once it is final and ended before *ctx (ns). A
 * value that does not decode, or whose id is not its key (capture readers
 * skip it), is left alone. */
static int capture_verdict(const MDB_val *k, const MDB_val *v, const void *ctx)
{
    const int64_t *cutoff_ns = ctx;
    struct capture_job j;
    int rc = capture_job_decode(v->mv_data, v->mv_size, &j);
    if (rc == VIGIL_ENOMEM)
        return rc;
    if (rc != 0)
        return VERDICT_BAD;
    bool own = strlen(j.id) == k->mv_size && memcmp(j.id, k->mv_data, k->mv_size) == 0;
    int64_t end_ns = j.finished_ns ? j.finished_ns : j.updated_ns;
    bool drop = capture_state_final(j.state) && end_ns < *cutoff_ns;
    capture_job_clear(&j);
    return !own ? VERDICT_BAD : drop ? VERDICT_DROP : VERDICT_KEEP;
}

struct alert_judge {
    int64_t cutoff_ns; /* event time */
    uint64_t newest;   /* the highest id, kept (0: none) */
};

static int alert_verdict(const MDB_val *k, const MDB_val *v, const void *ctx)
{
    const struct alert_judge *aj = ctx;
    struct alert_row row;
    if (alerts_decode(k->mv_data, k->mv_size, v->mv_data, v->mv_size, &row) != 0)
        return VERDICT_BAD;
    return row.last_ns < aj->cutoff_ns && row.id != aj->newest ? VERDICT_DROP : VERDICT_KEEP;
}

/* One slice of the alerts walk in its own write transaction of the
 * detection engine's environment (committed only if it deleted). The
 * caller holds no transaction of the store's environment nor map_lock:
 * while the detection thread writes (it holds nothing of ours) this waits. */
static int alerts_slice(struct store *s, int64_t cutoff_ns, struct slice_result *sr)
{
    struct alert_judge aj = {.cutoff_ns = cutoff_ns};
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = store__detect_begin(s, true, &txn);
    if (rc)
        return rc;
    if ((rc = mdb_cursor_open(txn, s->ddb[DDB_ALERTS], &cur)) == 0) {
        /* the highest id alerts_create numbers after: damaged rows do not count */
        struct alert_row row;
        int mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
        while (mrc == 0 && alerts_decode(k.mv_data, k.mv_size, v.mv_data, v.mv_size, &row) != 0)
            mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
        if (mrc == 0)
            aj.newest = row.id;
        mdb_cursor_close(cur);
        rc = walk_slice(txn, s->ddb[DDB_ALERTS], &s->ret_walk[WALK_ALERTS], alert_verdict, &aj,
                        sr);
    }
    if (rc == 0 && sr->deleted) {
        rc = mdb_txn_commit(txn); /* frees txn, also on failure */
    } else {
        mdb_txn_abort(txn);
    }
    rc = store__err(rc);
    /* That map never grows (store_int.h): full is final here. */
    return rc == STORE__EMAPFULL ? VIGIL_EFULL : rc;
}

/* ---- the run ------------------------------------------------------------------------ */

static const char *const low_keys[TIER_COUNT] = {META_LOW_M, META_LOW_H, META_LOW_D};

static unsigned job_db(unsigned job)
{
    return job == JOB_FLOWS      ? DB_FLOWS
           : job == JOB_HOSTIDX  ? DB_HOSTIDX
           : job == JOB_RANK     ? DB_RANK
           : job == JOB_CAPTURES ? DB_CAPTURES
                                 : DB_ROLLUP0 + (job - JOB_ROLLUP0);
}

/* Adds what job deleted (and could not read) in a slice to *st. */
static void count(struct retention_stats *st, unsigned job, const struct slice_result *sr)
{
    if (job == JOB_FLOWS) {
        st->flows += sr->deleted;
    } else if (job == JOB_HOSTIDX) {
        st->hostidx += sr->deleted;
    } else if (job == JOB_CAPTURES) {
        st->captures += sr->deleted;
        st->captures_bad += sr->bad;
    } else if (job == JOB_ALERTS) {
        st->alerts += sr->deleted;
        st->alerts_bad += sr->bad;
    } else if (job != JOB_RANK) {
        st->rollups[(job - JOB_ROLLUP0) / DIM_COUNT] += sr->deleted;
    }
}

static void add_stats(struct retention_stats *st, const struct retention_stats *t)
{
    st->flows += t->flows;
    st->hostidx += t->hostidx;
    for (unsigned i = 0; i < TIER_COUNT; i++)
        st->rollups[i] += t->rollups[i];
    st->captures += t->captures;
    st->captures_bad += t->captures_bad;
    st->alerts += t->alerts;
    st->alerts_bad += t->alerts_bad;
    st->txns += t->txns;
}

int store_retention_run(struct store *s, int64_t now_ns, int64_t budget_ns,
                        struct retention_stats *st)
{
    struct retention_stats local;
    int64_t deadline = vigil_monotonic_ns() + budget_ns;
    uint32_t cut[JOB_RANK + 1];

    if (!st)
        st = &local;
    memset(st, 0, sizeof *st);
    if (!s)
        return VIGIL_EINVAL;
    unsigned job = s->ret_job < JOB_COUNT ? s->ret_job : 0;
    const unsigned call_first = job;
    s->ret_job = 0; /* an error starts the next call over (the walks keep their place) */

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
    int64_t capture_cut = now_ns - s->cfg.capture_retention_ns;
    /* Alerts age in event time (retention.h): the newest record is "now". */
    int64_t event_now = s->max_end_ns < now_ns ? s->max_end_ns : now_ns;
    int64_t alert_cut = event_now > 0 ? event_now - s->cfg.alert_retention_ns : INT64_MIN;

    while (job < JOB_ALERTS) {
        struct slice_result sr = {0};
        struct retention_stats add = {0};
        struct store__walk_pos capture_next = {0};
        bool capture_walked = false;
        unsigned first = job; /* a transaction that is retried redoes its jobs */
        MDB_txn *txn;
        int rc = store__begin_write(s, &txn);
        if (rc)
            return rc;
        /* One transaction may finish several small jobs. */
        while (job < JOB_ALERTS && !sr.more) {
            sr.deleted = sr.bad = 0;
            if (job == JOB_CAPTURES) {
                rc = walk_slice(txn, s->db[DB_CAPTURES], &s->ret_walk[WALK_CAPTURES],
                                capture_verdict, &capture_cut, &sr);
                capture_walked = rc == 0;
                capture_next = sr.more ? sr.next : (struct store__walk_pos){0};
            } else {
                rc = delete_front(s, txn, job_db(job), cut[job], &sr);
            }
            if (rc != 0)
                break;
            count(&add, job, &sr);
            if (!sr.more)
                job++;
        }
        /* A tier's low mark moves once all its dimensions are past the cutoff
         * (in this call: one that went on from an earlier call's place may
         * have deleted a dimension to an older cutoff). */
        for (unsigned t = 0; rc == 0 && t < TIER_COUNT; t++) {
            if (job < JOB_ROLLUP0 + (t + 1) * DIM_COUNT)
                break;
            if (call_first > JOB_ROLLUP0 + t * DIM_COUNT)
                continue;
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
                job = first;
                continue;
            }
            return rc;
        }
        if ((rc = store__commit(s, txn, s->gen, NULL, NULL)) != 0) {
            if (rc == STORE__EMAPFULL && store__grow(s, true) == 0) {
                job = first;
                continue;
            }
            return rc == STORE__EMAPFULL ? VIGIL_EFULL : rc;
        }
        add.txns = 1;
        add_stats(st, &add);
        if (capture_walked)
            s->ret_walk[WALK_CAPTURES] = capture_next;
        if (vigil_monotonic_ns() >= deadline) {
            s->ret_job = job;
            return 0;
        }
    }

    /* Alerts, in the detection engine's environment: no transaction of
     * the store's own is open here. */
    while (job == JOB_ALERTS) {
        struct slice_result sr = {0};
        int rc = alerts_slice(s, alert_cut, &sr);
        if (rc)
            return rc;
        st->txns++;
        count(st, job, &sr);
        s->ret_walk[WALK_ALERTS] = sr.more ? sr.next : (struct store__walk_pos){0};
        if (!sr.more)
            job++;
        else if (vigil_monotonic_ns() >= deadline) {
            s->ret_job = job;
            return 0;
        }
    }
    st->done = true;
    return 0;
}
