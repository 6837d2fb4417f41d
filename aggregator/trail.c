/* trail.c — the standing trailing ranking (see trail.h). */
#include "trail.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "err.h"
#include "groupmerge.h"
#include "log.h"
#include "query_int.h"
#include "rank.h"
#include "sortkey.h"
#include "store_int.h"
#include "topk.h"

/* Builds are on demand: the thread keeps the ranking fresh for this long
 * after the last top query over a trailing day. */
#define TRAIL_DEMAND_NS (3600 * NS_PER_SEC)
/* A build that runs longer than this is dropped (it pins a snapshot). */
#define TRAIL_BUILD_MAX_NS (300 * NS_PER_SEC)

struct trail_dim {
    uint64_t groups;
    size_t n[RANK_METRICS];
    struct topk_ent *best[RANK_METRICS]; /* best first */
    uint16_t *bykey[RANK_METRICS];       /* indexes into best[m], key ascending */
};

struct trail_rank {
    atomic_uint refs;
    uint32_t since, until; /* [A, B), seconds */
    struct rctr total;     /* all traffic in [A, B) */
    struct trail_dim dim[DIM_COUNT];
    /* Under pend_lock: contributions committed after its snapshot to a
     * minute in [A, B) (late records); stale once they did not fit. */
    struct contrib *late;
    size_t nlate, late_cap;
    bool stale;
};
_Static_assert(RANK_K <= 65536, "bykey indexes are 16 bits");

static void trail_release(struct trail_rank *t)
{
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    for (unsigned d = 0; d < DIM_COUNT; d++)
        for (unsigned m = 0; m < RANK_METRICS; m++) {
            free(t->dim[d].best[m]);
            free(t->dim[d].bykey[m]);
        }
    free(t->late);
    free(t);
}

/* Keeps c in t's late list if it adds to a minute t summed (at most max). */
static void note_late(struct trail_rank *t, const struct contrib *c, size_t max)
{
    uint32_t sec = ns_to_sec(c->end_ns);
    if (!t || t->stale || c->refs_only || sec < t->since || sec >= t->until)
        return;
    if (t->nlate == t->late_cap) {
        size_t cap = t->late_cap ? t->late_cap * 2 : 256;
        if (cap > max && t->late_cap < max)
            cap = max;
        struct contrib *n = cap <= max ? realloc(t->late, cap * sizeof *n) : NULL;
        if (!n) { /* the ranking can no longer be corrected: merge until the next */
            free(t->late);
            t->late = NULL;
            t->nlate = t->late_cap = 0;
            t->stale = true;
            return;
        }
        t->late = n;
        t->late_cap = cap;
    }
    t->late[t->nlate++] = *c;
}

void trail_note(struct store *s, const struct contrib *c)
{
    note_late(s->trail, c, s->cfg.trail_late_max);
    note_late(s->trail_building, c, s->cfg.trail_late_max);
}

void trail_free_all(struct store *s)
{
    trail_release(s->trail);
    s->trail = NULL;
}

/* B: the newest closed minute (records end close_grace after it), or 0. */
static uint32_t closed_minute(const struct store *s)
{
    int64_t e = s->pend_max_end_ns - s->cfg.close_grace_ns;
    return e > 0 ? floor_to(ns_to_sec(e), 60) : 0;
}

bool store_trail_due(struct store *s)
{
    pthread_mutex_lock(&s->pend_lock);
    uint32_t b = closed_minute(s);
    const struct trail_rank *t = s->trail;
    bool wanted = s->trail_wanted_mono &&
                  vigil_monotonic_ns() - s->trail_wanted_mono < TRAIL_DEMAND_NS;
    bool due = wanted && b > TRAIL_SPAN_S && (!t || t->stale || b > t->until);
    pthread_mutex_unlock(&s->pend_lock);
    return due;
}

void store_trail_info(struct store *s, struct trail_info *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->pend_lock);
    const struct trail_rank *t = s->trail;
    if (t) {
        out->present = true;
        out->stale = t->stale;
        out->late = t->nlate;
        out->since_ns = (int64_t)t->since * NS_PER_SEC;
        out->until_ns = (int64_t)t->until * NS_PER_SEC;
    }
    out->took_ns = s->trail_took_ns;
    out->builds = s->trail_builds;
    out->dropped = s->trail_dropped;
    out->answers = atomic_load(&s->trail_answers);
    out->merged = atomic_load(&s->trail_merged);
    pthread_mutex_unlock(&s->pend_lock);
}

/* Copies a dimension's finished collection into td. */
static int keep_dim(struct trail_dim *td, struct rank_build *rb, unsigned klen)
{
    for (unsigned m = 0; m < RANK_METRICS; m++) {
        size_t n = 0;
        const struct topk_ent *rows = rank_rows(rb, m, &n, &td->groups);
        if (!rows)
            return VIGIL_EINVAL;
        td->n[m] = n;
        td->best[m] = malloc((n ? n : 1) * sizeof *td->best[m]);
        td->bykey[m] = malloc((n ? n : 1) * sizeof *td->bykey[m]);
        struct sortkey *sk = malloc((n ? n : 1) * sizeof *sk);
        if (!td->best[m] || !td->bykey[m] || !sk) {
            free(sk);
            return VIGIL_ENOMEM;
        }
        memcpy(td->best[m], rows, n * sizeof *rows);
        for (size_t i = 0; i < n; i++) {
            sortkey_words(sk[i].w, rows[i].key, klen);
            sk[i].idx = (uint32_t)i;
        }
        sortkey_sort(sk, n, (klen + 7) / 8);
        for (size_t i = 0; i < n; i++)
            td->bykey[m][i] = (uint16_t)sk[i].idx;
        free(sk);
    }
    return 0;
}

/* store_trail_refresh; the thread passes its stop flag, looked at every
 * few thousand groups, so a stop never waits for a whole build. */
static int build(struct store *s, int64_t max_ns, const atomic_bool *stop)
{
    struct pend_rows pend[DIM_COUNT];
    struct tier_marks mk;
    struct budget bud;
    MDB_txn *txn;
    bool cancelled = false;
    int rc;

    memset(pend, 0, sizeof pend);
    pthread_mutex_lock(&s->trail_build_lock);
    int64_t t0 = vigil_monotonic_ns();
    struct trail_rank *t = calloc(1, sizeof *t);
    struct rank_build *rb = rank_build_new();
    if (!t || !rb || (rc = store__snapshot_begin(s, &txn)) != 0) {
        free(t);
        rank_build_free(rb);
        pthread_mutex_unlock(&s->trail_build_lock);
        return t && rb ? rc : VIGIL_ENOMEM;
    }
    atomic_init(&t->refs, 1);
    /* pend_lock is held: the range, the pending minutes; from now on the
     * writer keeps what it adds to them in t->late. */
    uint32_t b = closed_minute(s), a = b - TRAIL_SPAN_S;
    bool go = (rc = store__read_marks(s, txn, &mk)) == 0 && b > TRAIL_SPAN_S &&
              a >= mk.low[TIER_MINUTE];
    if (go) {
        t->since = a;
        t->until = b;
        s->trail_building = t;
        for (unsigned d = 0; d < DIM_COUNT; d++)
            pend_rows_copy(s, d, a, b, &pend[d]);
    }
    store__snapshot_unlock(s);

    budget_init(&bud, UINT64_MAX, max_ns > 0 ? max_ns : TRAIL_BUILD_MAX_NS);
    for (unsigned d = 0; go && rc == 0 && d < DIM_COUNT; d++) {
        struct gmerge gm;
        uint8_t key[GROUP_KEY_MAX];
        struct rctr plus, minus;
        if ((rc = pend_rows_sum(&pend[d])) != 0 ||
            (rc = gmerge_init(&gm, s, txn, d, &mk, &bud)) != 0)
            break;
        rank_begin(rb, a, d);
        rc = gmerge_add_range(&gm, a, b, b, GM_PLUS);
        gmerge_add_pending(&gm, &pend[d], GM_PLUS);
        for (uint64_t i = 1; rc == 0 && (rc = gmerge_next(&gm, key, &plus, &minus)) == 1; i++) {
            rank_offer(rb, key, plus.v);
            rc = 0;
            if (stop && i % 4096 == 0 && atomic_load(stop)) {
                cancelled = true;
                break;
            }
        }
        if (d == DIM_APP)
            t->total = gm.total[GM_PLUS];
        gmerge_free(&gm);
        if (rc == 0 && (bud.hit || cancelled))
            break;
        if (rc == 0)
            rc = keep_dim(&t->dim[d], rb, dim_klen[d]);
    }
    store__snapshot_end(s, txn);
    for (unsigned d = 0; d < DIM_COUNT; d++)
        pend_rows_free(&pend[d]);
    rank_build_free(rb);

    int64_t took = vigil_monotonic_ns() - t0;
    struct trail_rank *drop = t; /* what is released: the one built, or the one it replaces */
    bool published = false;
    pthread_mutex_lock(&s->pend_lock);
    s->trail_building = NULL;
    if (go && rc == 0) {
        s->trail_took_ns = took;
        if (!bud.hit && !cancelled && !t->stale) {
            drop = s->trail;
            s->trail = t;
            s->trail_builds++;
            published = true;
        } else {
            s->trail_dropped++;
        }
    }
    pthread_mutex_unlock(&s->pend_lock);
    if (go && rc == 0 && bud.hit)
        log_warn("store: the trailing ranking took over %lld s: dropped",
                 (long long)((max_ns > 0 ? max_ns : TRAIL_BUILD_MAX_NS) / NS_PER_SEC));
    trail_release(drop);
    pthread_mutex_unlock(&s->trail_build_lock);
    if (published)
        log_debug("store: trailing ranking of [%u, %u) built in %.0f ms", (unsigned)a,
                  (unsigned)b, (double)took / 1e6);
    return rc;
}

int store_trail_refresh(struct store *s, int64_t max_ns)
{
    return build(s, max_ns, NULL);
}

/* ---- answering ------------------------------------------------------------------ */

/* Where a query's range [from, to) and the ranking's [A, B) differ: at
 * the start and at the end, minutes [lo, hi) the query adds (GM_PLUS) or
 * leaves out (GM_MINUS); lo == hi when an edge is the same. The minutes
 * both share are [e[0].hi, e[1].lo). */
struct edge {
    uint32_t lo, hi;
    unsigned sign;
};

static void edges(const struct trail_rank *t, uint32_t from, uint32_t to, struct edge e[2])
{
    e[0] = from < t->since ? (struct edge){from, t->since, GM_PLUS}
                           : (struct edge){t->since, from, GM_MINUS};
    e[1] = to > t->until ? (struct edge){t->until, to, GM_PLUS}
                         : (struct edge){to, t->until, GM_MINUS};
}

/* Can t answer the range with these edges: each within TRAIL_MAX_SHIFT_S
 * (minutes added after B count only up to the newest record), and the
 * minutes between still stored as minutes. */
static bool near(const struct edge e[2], const struct tier_marks *mk, int64_t newest_ns)
{
    uint32_t tail_hi = e[1].hi;
    if (e[1].sign == GM_PLUS) { /* minutes added: those with data */
        uint32_t data_end = ceil_to(clamp_sec(newest_ns) + 1, 60);
        if (data_end < tail_hi)
            tail_hi = data_end > e[1].lo ? data_end : e[1].lo;
    }
    return e[0].hi - e[0].lo <= TRAIL_MAX_SHIFT_S && tail_hi - e[1].lo <= TRAIL_MAX_SHIFT_S &&
           e[0].lo >= mk->low[TIER_MINUTE];
}

/* The best `limit` of the exact figures, and what bounds the rest. */
struct pick {
    struct topk_ent *heap;
    size_t n, limit;
    unsigned klen;
    enum top_order order;
    uint64_t groups;  /* groups with traffic in range, when the ranking lists all */
    bool broken;      /* figures that cannot be (more taken out than there was) */
};

static void pick_offer(struct pick *p, const uint8_t *key, const struct rctr *c)
{
    bool any = false;
    for (int j = 0; j < RC_COUNT; j++)
        any |= c->v[j] != 0;
    if (!any) /* all its traffic lay in the minutes left out */
        return;
    p->groups++;
    topk_offer(p->heap, &p->n, p->limit, key, c, rank_metric(c->v, (unsigned)p->order), p->klen);
}

/* c = c + plus - minus; false if minus exceeds it anywhere. */
static bool apply_delta(struct rctr *c, const struct rctr *plus, const struct rctr *minus)
{
    for (int j = 0; j < RC_COUNT; j++) {
        if (c->v[j] + plus->v[j] < minus->v[j])
            return false;
        c->v[j] = c->v[j] + plus->v[j] - minus->v[j];
    }
    return true;
}

/* Unlisted groups whose bound is highest (a host that just started a big
 * transfer): looked up one by one if they could reach the answer. */
#define TRAIL_RESOLVE_MAX 16

struct unsure {
    struct {
        uint8_t key[GROUP_KEY_MAX];
        struct rctr plus; /* what the merge added to it (late rows included) */
        uint64_t bound;
    } g[TRAIL_RESOLVE_MAX];
    size_t n;
    uint64_t rest; /* the highest bound of those not kept */
};

static void unsure_add(struct unsure *u, const uint8_t *key, unsigned klen,
                       const struct rctr *plus, uint64_t bound)
{
    size_t i = u->n;
    if (u->n == TRAIL_RESOLVE_MAX) {
        i = 0;
        for (size_t k = 1; k < u->n; k++)
            if (u->g[k].bound < u->g[i].bound)
                i = k;
        if (bound <= u->g[i].bound) {
            if (bound > u->rest)
                u->rest = bound;
            return;
        }
        if (u->g[i].bound > u->rest)
            u->rest = u->g[i].bound;
    } else {
        u->n++;
    }
    memcpy(u->g[i].key, key, klen);
    u->g[i].plus = *plus;
    u->g[i].bound = bound;
}

/* The query's pending-row inputs, copied under pend_lock. */
struct trail_pend {
    struct pend_rows plus, minus; /* of the minutes added and left out */
    struct pend_rows late;        /* the ranking's late contributions */
    struct pend_rows mid;         /* of the minutes both share (lookups only) */
};

static void trail_pend_free(struct trail_pend *tp)
{
    pend_rows_free(&tp->plus);
    pend_rows_free(&tp->minus);
    pend_rows_free(&tp->late);
    pend_rows_free(&tp->mid);
}

int trail_top(struct store *s, const struct top_query *q, struct top_result *out)
{
    unsigned dim = (unsigned)q->group, m = (unsigned)q->order, klen = dim_klen[dim];
    struct trail_pend tp;
    struct tier_marks mk;
    struct trail_rank *t = NULL;
    struct budget bud;
    MDB_txn *txn;
    uint32_t from = 0, to = 0;
    int rc;

    if (q->limit > RANK_K)
        return 1;
    memset(&tp, 0, sizeof tp);
    budget_init(&bud, q->max_rows, q->max_ns);
    if ((rc = store__snapshot_begin(s, &txn)) != 0)
        return rc;
    if ((rc = store__read_marks(s, txn, &mk)) == 0)
        top_range(q, &mk, &from, &to);
    /* a day ending near the newest closed minute: keep a ranking for it */
    uint32_t closed = closed_minute(s);
    if (rc == 0 && to - from >= TRAIL_SPAN_S - TRAIL_MAX_SHIFT_S &&
        to + TRAIL_MAX_SHIFT_S >= closed)
        s->trail_wanted_mono = vigil_monotonic_ns();
    struct edge e[2];
    if (rc == 0 && s->trail && !s->trail->stale) {
        edges(s->trail, from, to, e);
        if (near(e, &mk, s->pend_max_end_ns)) {
            t = s->trail;
            atomic_fetch_add(&t->refs, 1);
            pend_rows_add_contribs(&tp.late, dim, t->late, t->nlate);
            for (int i = 0; i < 2; i++)
                pend_rows_copy(s, dim, e[i].lo, e[i].hi,
                               e[i].sign == GM_PLUS ? &tp.plus : &tp.minus);
            pend_rows_copy(s, dim, e[0].hi, e[1].lo, &tp.mid); /* the shared minutes */
        }
    }
    store__snapshot_unlock(s);
    if (rc || !t) {
        store__snapshot_end(s, txn);
        return rc ? rc : 1;
    }

    const struct trail_dim *td = &t->dim[dim];
    size_t nmem = td->n[m];
    const struct topk_ent *mem = td->best[m];
    bool complete = td->groups == nmem; /* every group of [A, B) is listed */
    uint64_t theta = complete || nmem == 0 ? 0 : mem[nmem - 1].m;
    struct unsure un = {.n = 0, .rest = theta}; /* no unlisted group has more than rest */
    struct pick pk = {malloc(q->limit * sizeof *pk.heap), 0, q->limit, klen, q->order, 0, false};
    struct gmerge gm;
    bool gm_open = false;
    if (!pk.heap)
        rc = VIGIL_ENOMEM;
    if (rc == 0 && (rc = pend_rows_sum(&tp.plus)) == 0 && (rc = pend_rows_sum(&tp.minus)) == 0 &&
        (rc = pend_rows_sum(&tp.late)) == 0 && (rc = pend_rows_sum(&tp.mid)) == 0 &&
        (rc = gmerge_init(&gm, s, txn, dim, &mk, &bud)) == 0) {
        gm_open = true;
        for (int i = 0; rc == 0 && i < 2; i++)
            rc = gmerge_add_range(&gm, e[i].lo, e[i].hi, e[i].hi, e[i].sign);
        gmerge_add_pending(&gm, &tp.plus, GM_PLUS);
        gmerge_add_pending(&gm, &tp.late, GM_PLUS);
        gmerge_add_pending(&gm, &tp.minus, GM_MINUS);
    }
    /* The changed groups in key order, beside the listed ones in key order. */
    size_t j = 0;
    uint8_t key[GROUP_KEY_MAX];
    struct rctr plus, minus;
    while (rc == 0 && (rc = gmerge_next(&gm, key, &plus, &minus)) == 1) {
        rc = 0;
        int c = 1;
        for (; j < nmem && (c = memcmp(mem[td->bykey[m][j]].key, key, klen)) < 0; j++)
            pick_offer(&pk, mem[td->bykey[m][j]].key, &mem[td->bykey[m][j]].c); /* unchanged */
        struct rctr fig = {{0}};
        if (j < nmem && c == 0) { /* listed: exact */
            fig = mem[td->bykey[m][j++]].c;
            pk.broken |= !apply_delta(&fig, &plus, &minus);
            pick_offer(&pk, key, &fig);
        } else if (complete) { /* not in [A, B) at all: exact too */
            pk.broken |= !apply_delta(&fig, &plus, &minus);
            pick_offer(&pk, key, &fig);
        } else { /* at most theta in [A, B) as summed */
            uint64_t add = rank_metric(plus.v, m), cut = rank_metric(minus.v, m);
            if (cut > theta + add)
                pk.broken = true;
            else if (theta + add - cut > theta)
                unsure_add(&un, key, klen, &plus, theta + add - cut);
        }
    }
    for (; rc == 0 && j < nmem; j++)
        pick_offer(&pk, mem[td->bykey[m][j]].key, &mem[td->bykey[m][j]].c);

    /* Unlisted groups that could reach the last row kept, best bound first:
     * their exact figures are the minutes both ranges share (looked up)
     * plus what the query adds beyond the ranking's range. */
    while (rc == 0 && !bud.hit && !pk.broken && !complete && un.n > 0) {
        size_t b = 0;
        for (size_t i = 1; i < un.n; i++)
            if (un.g[i].bound > un.g[b].bound)
                b = i;
        if (pk.n == q->limit && un.g[b].bound < pk.heap[0].m)
            break; /* neither it nor any after it can */
        struct rctr fig = {{0}}, late = {{0}};
        rc = gmerge_lookup(&gm, e[0].hi, e[1].lo, e[1].lo, un.g[b].key, &fig);
        pend_rows_lookup(&tp.mid, un.g[b].key, &fig);
        pend_rows_lookup(&tp.late, un.g[b].key, &late); /* in the shared minutes already */
        pk.broken |= !apply_delta(&fig, &un.g[b].plus, &late);
        if (rc == 0 && !bud.hit)
            pick_offer(&pk, un.g[b].key, &fig);
        un.g[b] = un.g[--un.n];
    }
    uint64_t max_bound = un.rest;
    for (size_t i = 0; i < un.n; i++)
        if (un.g[i].bound > max_bound)
            max_bound = un.g[i].bound;

    struct rctr total = t->total;
    if (rc == 0 && !bud.hit && !pk.broken && !apply_delta(&total, &gm.total[GM_PLUS],
                                                          &gm.total[GM_MINUS]))
        pk.broken = true;
    /* Exact when the ranking lists every group, or when no unlisted group
     * can reach the last row kept. */
    bool exact = rc == 0 && !bud.hit && !pk.broken &&
                 (complete || (pk.n == q->limit && max_bound < pk.heap[0].m));
    if (pk.broken)
        log_warn("store: the trailing ranking of [%u, %u) disagrees with the rows: merging",
                 (unsigned)t->since, (unsigned)t->until);
    if (exact) {
        topk_sort(pk.heap, pk.n, klen);
        rc = top_fill(out, dim, q->order, pk.heap, pk.n, &total);
    }
    if (exact && rc == 0) {
        out->groups = complete ? pk.groups : td->groups;
        out->groups_approx = !complete;
        out->standing = true;
        out->since_ns = (int64_t)from * NS_PER_SEC;
        out->until_ns = (int64_t)to * NS_PER_SEC;
        memcpy(out->buckets, gm.buckets, sizeof out->buckets);
        out->rows_read = bud.rows + nmem;
    }
    if (gm_open)
        gmerge_free(&gm);
    store__snapshot_end(s, txn);
    trail_pend_free(&tp);
    free(pk.heap);
    trail_release(t);
    if (rc)
        return rc;
    atomic_fetch_add(exact ? &s->trail_answers : &s->trail_merged, 1);
    return exact ? 0 : 1;
}

/* ---- the refresh thread ---------------------------------------------------------- */

struct trail_thread {
    struct store *s;
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool stopping; /* written under mu; read unlocked by a build */
    int64_t poll_ns;
};

static void *run(void *arg)
{
    struct trail_thread *tt = arg;
    int64_t next_ok = 0;
    pthread_mutex_lock(&tt->mu);
    while (!tt->stopping) {
        pthread_mutex_unlock(&tt->mu);
        int64_t now = vigil_monotonic_ns();
        if (now >= next_ok && store_trail_due(tt->s)) {
            int rc = build(tt->s, 0, &tt->stopping);
            int64_t took = vigil_monotonic_ns() - now;
            next_ok = now + 10 * took; /* builds take at most a tenth of the time */
            if (rc)
                log_warn("store: the trailing ranking could not be built: %s",
                         vigil_strerror(rc));
        }
        pthread_mutex_lock(&tt->mu);
        if (tt->stopping)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t at = (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec + tt->poll_ns;
        ts.tv_sec = (time_t)(at / NS_PER_SEC);
        ts.tv_nsec = (long)(at % NS_PER_SEC);
        pthread_cond_timedwait(&tt->cv, &tt->mu, &ts);
    }
    pthread_mutex_unlock(&tt->mu);
    return NULL;
}

struct trail_thread *trail_thread_start(struct store *s, int64_t poll_ns)
{
    struct trail_thread *tt = calloc(1, sizeof *tt);
    pthread_condattr_t ca;
    if (!tt)
        return NULL;
    tt->s = s;
    atomic_init(&tt->stopping, false);
    tt->poll_ns = poll_ns > 0 ? poll_ns : NS_PER_SEC;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    bool ok = pthread_mutex_init(&tt->mu, NULL) == 0;
    if (ok && pthread_cond_init(&tt->cv, &ca) != 0) {
        pthread_mutex_destroy(&tt->mu);
        ok = false;
    }
    pthread_condattr_destroy(&ca);
    if (ok && pthread_create(&tt->tid, NULL, run, tt) != 0) {
        pthread_cond_destroy(&tt->cv);
        pthread_mutex_destroy(&tt->mu);
        ok = false;
    }
    if (!ok) {
        free(tt);
        return NULL;
    }
    return tt;
}

void trail_thread_stop(struct trail_thread *tt)
{
    if (!tt)
        return;
    pthread_mutex_lock(&tt->mu);
    tt->stopping = true;
    pthread_cond_signal(&tt->cv);
    pthread_mutex_unlock(&tt->mu);
    pthread_join(tt->tid, NULL);
    pthread_cond_destroy(&tt->cv);
    pthread_mutex_destroy(&tt->mu);
    free(tt);
}
