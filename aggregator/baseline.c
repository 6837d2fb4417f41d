/* baseline.c — per-host and fleet baselines, known destinations (see
 * baseline.h for what is learned and when it is used).
 *
 * Estimates are kept quantised: log2(1 + value) in thousandths, as u16
 * (64 doublings fit), so a host's whole model (192 slots x 8 metrics, mean
 * and deviation) is 6.5 KB. Models come from one array sized at creation
 * (max_hosts), one per host entry; a host's hour is accumulated in its
 * entry (counters plus 256-bit sketches for distinct peers and ports) and
 * folded into the model when the hour closes. */
#include "baseline.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "clock.h"
#include "detect.h"
#include "detect_table.h"
#include "known.h"
#include "err.h"

#define BL_VERSION 1
#define HOUR_NS (3600 * NS_PER_SEC)
#define Q_SCALE 1000.0
#define FLEET_RING 4
#define HOW_MIN_SAMPLES 2
#define HOD_MIN_SAMPLES 3

static const char *const metric_names[BL_METRICS] = {
    "out_bytes", "in_bytes", "dns_bytes", "dns_queries",
    "distinct_dsts", "distinct_ports", "connections", "failed_connections",
};

const char *bl_metric_name(enum bl_metric m)
{
    return (unsigned)m < BL_METRICS ? metric_names[m] : "?";
}

struct bl_q {
    uint16_t mean[BL_METRICS]; /* log2(1 + v) x 1000 */
    uint16_t dev[BL_METRICS];  /* mean absolute deviation, same unit */
    uint8_t n;                 /* samples learned, up to 255 */
};

struct bl_model {
    uint32_t first_hour, last_hour; /* hours since the epoch; 0: none yet */
    struct bl_q hod[BL_HOD];
    struct bl_q how[BL_HOW];
};

struct bl_host {
    struct dtab_head h;
    struct vigil_addr addr;
    uint32_t cur_hour;
    uint8_t has_cur, alerted, dirty, pad_;
    uint64_t acc[BL_METRICS];
    uint64_t dsts[4], ports[4]; /* 256-bit linear-counting sketches for the hour */
};

/* A dirty host's model, in the order it is written. */
struct dirty_host {
    struct vigil_addr addr;
    uint32_t i; /* host entry number */
};

struct fleet_hour {
    uint32_t hour;
    uint64_t hosts;
    double sum[BL_METRICS];
};

struct baseline {
    MDB_dbi db_bl, db_known;
    struct hash_key hk;
    uint32_t learning_hours;
    struct detect_stats *stats;

    struct dtab hosts;
    struct bl_model *models;   /* one per host entry */
    struct bl_model fleet;
    bool fleet_dirty;
    struct fleet_hour ring[FLEET_RING];
    uint64_t active_hosts;     /* hosts of the last closed fleet hour */
    uint32_t closed_hour;      /* hours before it are closed */

    struct known *known;       /* known destinations (known.h) */
    struct dirty_host *dirty; /* scratch for baseline_persist, one per host entry */
    bool hosts_dirty;
};

/* ---- quantised estimates ------------------------------------------------------- */

static uint16_t quant(double v)
{
    double q = log2(1.0 + (v < 0 ? 0 : v)) * Q_SCALE;
    return (uint16_t)(q > 65535.0 ? 65535.0 : q + 0.5);
}

static double dequant(double q)
{
    return exp2(q / Q_SCALE) - 1.0;
}

/* Learns sample x (quantised) into slot metric m: clipped to the mean
 * plus three deviations (at least one doubling) first, so one outlier
 * moves the estimate little; alpha shrinks from 1 to floor as samples come. */
static void learn(struct bl_q *s, unsigned m, double x, double floor_alpha)
{
    if (s->n == 0) {
        s->mean[m] = (uint16_t)x;
        s->dev[m] = 0;
        return;
    }
    double mean = s->mean[m], dev = s->dev[m];
    double reach = 3 * dev > Q_SCALE ? 3 * dev : Q_SCALE;
    if (x > mean + reach)
        x = mean + reach;
    if (x < mean - reach)
        x = mean - reach;
    double alpha = 1.0 / (s->n + 1.0);
    if (alpha < floor_alpha)
        alpha = floor_alpha;
    double nm = mean + alpha * (x - mean);
    double nd = dev + alpha * (fabs(x - mean) - dev);
    s->mean[m] = (uint16_t)(nm < 0 ? 0 : nm > 65535 ? 65535 : nm + 0.5);
    s->dev[m] = (uint16_t)(nd < 0 ? 0 : nd > 65535 ? 65535 : nd + 0.5);
}

static unsigned hour_of_week(uint32_t hour)
{
    return (hour + 72) % BL_HOW; /* the epoch was a Thursday: slot 0 is Monday 00:00 UTC */
}

static void model_learn(struct bl_model *mo, uint32_t hour, const double v[BL_METRICS])
{
    struct bl_q *how = &mo->how[hour_of_week(hour)], *hod = &mo->hod[hour % BL_HOD];
    for (unsigned m = 0; m < BL_METRICS; m++) {
        double x = quant(v[m]);
        learn(how, m, x, 0.25);
        learn(hod, m, x, 0.1);
    }
    if (how->n < 255)
        how->n++;
    if (hod->n < 255)
        hod->n++;
    if (!mo->first_hour || hour < mo->first_hour)
        mo->first_hour = hour;
    if (hour > mo->last_hour)
        mo->last_hour = hour;
}

static bool model_learned(const struct bl_model *mo, uint32_t learning_hours)
{
    return mo->first_hour && mo->last_hour - mo->first_hour + 1 >= learning_hours;
}

/* The slot to trust for hour, or NULL. */
static const struct bl_q *model_slot(const struct bl_model *mo, uint32_t hour)
{
    const struct bl_q *how = &mo->how[hour_of_week(hour)];
    if (how->n >= HOW_MIN_SAMPLES)
        return how;
    const struct bl_q *hod = &mo->hod[hour % BL_HOD];
    return hod->n >= HOD_MIN_SAMPLES ? hod : NULL;
}

/* ---- encoding ------------------------------------------------------------------- */

static size_t model_encode(const struct bl_model *mo, uint8_t *buf)
{
    size_t n = 0;
    buf[n++] = BL_VERSION;
    put_be32(buf + n, mo->first_hour);
    n += 4;
    put_be32(buf + n, mo->last_hour);
    n += 4;
    put_be16(buf + n, BL_HOD + BL_HOW);
    n += 2;
    for (unsigned i = 0; i < BL_HOD + BL_HOW; i++) {
        const struct bl_q *q = i < BL_HOD ? &mo->hod[i] : &mo->how[i - BL_HOD];
        buf[n++] = q->n;
        for (unsigned m = 0; m < BL_METRICS; m++, n += 4) {
            put_be16(buf + n, q->mean[m]);
            put_be16(buf + n + 2, q->dev[m]);
        }
    }
    return n;
}

static int model_decode(const void *val, size_t len, struct bl_model *mo)
{
    const uint8_t *p = val;
    const size_t slot = 1 + BL_METRICS * 4;
    if (len < 11 || p[0] != BL_VERSION || get_be16(p + 9) != BL_HOD + BL_HOW ||
        len < 11 + (BL_HOD + BL_HOW) * slot)
        return VIGIL_EBADMSG;
    memset(mo, 0, sizeof *mo);
    mo->first_hour = get_be32(p + 1);
    mo->last_hour = get_be32(p + 5);
    if (mo->last_hour < mo->first_hour)
        return VIGIL_EBADMSG;
    size_t n = 11;
    for (unsigned i = 0; i < BL_HOD + BL_HOW; i++) {
        struct bl_q *q = i < BL_HOD ? &mo->hod[i] : &mo->how[i - BL_HOD];
        q->n = p[n++];
        for (unsigned m = 0; m < BL_METRICS; m++, n += 4) {
            q->mean[m] = get_be16(p + n);
            q->dev[m] = get_be16(p + n + 2);
        }
    }
    return 0;
}

int baseline_decode(const void *val, size_t len, struct bl_view *out)
{
    struct bl_model *mo = malloc(sizeof *mo);
    if (!mo)
        return VIGIL_ENOMEM;
    int rc = model_decode(val, len, mo);
    if (rc == 0) {
        out->first_hour = mo->first_hour;
        out->last_hour = mo->last_hour;
        for (unsigned i = 0; i < BL_HOD + BL_HOW; i++) {
            const struct bl_q *q = i < BL_HOD ? &mo->hod[i] : &mo->how[i - BL_HOD];
            struct bl_slot_view *v = i < BL_HOD ? &out->hod[i] : &out->how[i - BL_HOD];
            v->samples = q->n;
            for (unsigned m = 0; m < BL_METRICS; m++) {
                v->typical[m] = q->n ? dequant(q->mean[m]) : -1;
                v->spread[m] = q->n ? exp2(q->dev[m] / Q_SCALE) : -1;
            }
        }
    }
    free(mo);
    return rc;
}

void baseline_key(const struct vigil_addr *host, uint8_t key[17])
{
    key[0] = host ? 1 : 0;
    if (host)
        memcpy(key + 1, host->b, 16);
    else
        memset(key + 1, 0, 16);
}

/* ---- life cycle -------------------------------------------------------------------- */

static uint32_t host_index(const struct baseline *bl, const struct bl_host *h)
{
    return (uint32_t)(((const uint8_t *)h - bl->hosts.ent) / bl->hosts.esize);
}

static struct bl_host *host_get(struct baseline *bl, const struct vigil_addr *a, uint64_t h)
{
    bool created;
    struct bl_host *e = dtab_get(&bl->hosts, h, a, &created);
    if (!e) {
        bl->stats->hosts_full++;
        return NULL;
    }
    if (created) {
        memset(&bl->models[host_index(bl, e)], 0, sizeof bl->models[0]);
        bl->stats->hosts++;
    }
    return e;
}

struct baseline *baseline_create(MDB_txn *txn, MDB_dbi db_baselines, MDB_dbi db_known,
                                 const struct hash_key *hk, uint64_t max_hosts,
                                 uint64_t max_known, int64_t known_keep_ns,
                                 int64_t learning_ns, struct detect_stats *stats, char *err,
                                 size_t errlen)
{
    struct baseline *bl = calloc(1, sizeof *bl);
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    if (!bl)
        goto oom;
    bl->db_bl = db_baselines;
    bl->db_known = db_known;
    bl->hk = *hk;
    bl->stats = stats;
    bl->learning_hours = (uint32_t)(learning_ns / HOUR_NS);
    if (bl->learning_hours < 1)
        bl->learning_hours = 1;
    if (max_hosts < 16)
        max_hosts = 16;
    if (dtab_init(&bl->hosts, (uint32_t)max_hosts, sizeof(struct bl_host),
                  offsetof(struct bl_host, addr), 16) != 0 ||
        !(bl->models = calloc(bl->hosts.cap, sizeof *bl->models)) ||
        !(bl->dirty = calloc(bl->hosts.cap, sizeof *bl->dirty)))
        goto oom;
    if (!(bl->known = known_create(max_known, known_keep_ns, stats)))
        goto oom;

    /* baselines */
    if (mdb_cursor_open(txn, db_baselines, &cur) != 0)
        goto io;
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const uint8_t *kp = k.mv_data;
        if (k.mv_size != 17)
            continue;
        if (kp[0] == 0) {
            model_decode(v.mv_data, v.mv_size, &bl->fleet);
            continue;
        }
        struct vigil_addr a;
        memcpy(a.b, kp + 1, 16);
        struct bl_host *e = host_get(bl, &a, hash_siphash13(hk, a.b, 16));
        if (e && model_decode(v.mv_data, v.mv_size, &bl->models[host_index(bl, e)]) != 0)
            memset(&bl->models[host_index(bl, e)], 0, sizeof bl->models[0]);
    }
    mdb_cursor_close(cur);
    cur = NULL;

    if (known_load(bl->known, txn, db_known, hk) != 0)
        goto io;
    return bl;
oom:
    snprintf(err, errlen, "baselines: out of memory (%llu hosts, %llu known destinations)",
             (unsigned long long)max_hosts, (unsigned long long)max_known);
    baseline_destroy(bl);
    return NULL;
io:
    snprintf(err, errlen, "baselines: cannot read the store");
    baseline_destroy(bl);
    return NULL;
}

void baseline_destroy(struct baseline *bl)
{
    if (!bl)
        return;
    dtab_free(&bl->hosts);
    known_destroy(bl->known);
    free(bl->models);
    free(bl->dirty);
    free(bl);
}

/* ---- accounting ------------------------------------------------------------------------ */

static void sketch_set(uint64_t sk[4], uint64_t h)
{
    unsigned b = (unsigned)(h >> 56); /* 8 bits: 256 */
    sk[b >> 6] |= UINT64_C(1) << (b & 63);
}

static double sketch_count(const uint64_t sk[4])
{
    unsigned ones = 0;
    for (unsigned i = 0; i < 4; i++)
        ones += (unsigned)__builtin_popcountll(sk[i]);
    double zeros = 256.0 - ones;
    return -256.0 * log((zeros < 1 ? 0.5 : zeros) / 256.0);
}

static struct fleet_hour *fleet_slot(struct baseline *bl, uint32_t hour)
{
    struct fleet_hour *f = &bl->ring[hour % FLEET_RING];
    if (f->hour != hour) {
        memset(f, 0, sizeof *f); /* an hour four hours older: long closed */
        f->hour = hour;
    }
    return f;
}

/* Folds the host's current hour into its model and the fleet's hour. */
static void close_host_hour(struct baseline *bl, struct bl_host *e)
{
    if (!e->has_cur)
        return;
    double v[BL_METRICS];
    for (unsigned m = 0; m < BL_METRICS; m++)
        v[m] = (double)e->acc[m];
    v[BL_DSTS] = sketch_count(e->dsts);
    v[BL_PORTS] = sketch_count(e->ports);
    if (!e->alerted) {
        model_learn(&bl->models[host_index(bl, e)], e->cur_hour, v);
        e->dirty = 1;
        bl->hosts_dirty = true;
        struct fleet_hour *f = fleet_slot(bl, e->cur_hour);
        f->hosts++;
        for (unsigned m = 0; m < BL_METRICS; m++)
            f->sum[m] += v[m];
    }
    bl->stats->hours_closed++;
    e->has_cur = e->alerted = 0;
    memset(e->acc, 0, sizeof e->acc);
    memset(e->dsts, 0, sizeof e->dsts);
    memset(e->ports, 0, sizeof e->ports);
}

/* Ports take 65536 values: a keyed multiply spreads them over the sketch. */
static uint64_t mix_port(const struct baseline *bl, uint16_t port)
{
    uint64_t x = (port ^ bl->hk.k0) * 0x9e3779b97f4a7c15ULL;
    return x ^ (x >> 29);
}

void baseline_add(struct baseline *bl, const struct vigil_addr *host, uint64_t h,
                  const struct bl_sample *s)
{
    struct bl_host *e = host_get(bl, host, h);
    if (!e || s->t_ns < 0)
        return;
    uint32_t hour = (uint32_t)(s->t_ns / HOUR_NS);
    if (e->has_cur && hour > e->cur_hour)
        close_host_hour(bl, e);
    if (!e->has_cur) {
        e->has_cur = 1;
        e->cur_hour = hour;
    }
    /* a late record of an earlier hour counts into the current one */
    for (unsigned m = 0; m < BL_METRICS; m++)
        e->acc[m] += s->v[m];
    if (s->v[BL_CONNS]) {
        sketch_set(e->dsts, s->peer_hash);
        if (s->has_port)
            sketch_set(e->ports, mix_port(bl, s->port));
    }
}

enum bl_dst baseline_known_dst(struct baseline *bl, const struct vigil_addr *host, uint64_t hh,
                               const struct vigil_addr *dst, uint64_t hd, int64_t t_ns)
{
    return known_check(bl->known, host, hh, dst, hd, t_ns);
}

void baseline_follow_dst(struct baseline *bl, uint64_t hh, uint64_t hd, bool on)
{
    known_follow(bl->known, hh, hd, on);
}

void baseline_prefetch_host(const struct baseline *bl, uint64_t h, bool entry)
{
    if (entry)
        dtab_prefetch_entry(&bl->hosts, h);
    else
        dtab_prefetch(&bl->hosts, h);
}

void baseline_prefetch_dst(const struct baseline *bl, uint64_t hh, uint64_t hd)
{
    known_prefetch(bl->known, hh, hd);
}

void baseline_mark_alerted(struct baseline *bl, const struct vigil_addr *host, uint64_t h,
                           int64_t t_ns)
{
    struct bl_host *e = dtab_find(&bl->hosts, h, host);
    (void)t_ns; /* the alert's activity is in the host's open hour, or just closed */
    if (e)
        e->alerted = 1;
}

double baseline_expect(const struct baseline *bl, const struct vigil_addr *host, uint64_t h,
                       enum bl_metric m, int64_t t_ns, enum bl_source *from)
{
    uint32_t hour = (uint32_t)(t_ns / HOUR_NS);
    const struct bl_host *e = dtab_find(&bl->hosts, h, host);
    *from = BL_NONE;
    if (e) {
        const struct bl_model *mo = &bl->models[host_index(bl, e)];
        const struct bl_q *q;
        if (model_learned(mo, bl->learning_hours) && (q = model_slot(mo, hour))) {
            *from = BL_FROM_HOST;
            return dequant(q->mean[m]);
        }
    }
    const struct bl_q *q;
    if (model_learned(&bl->fleet, bl->learning_hours) && (q = model_slot(&bl->fleet, hour))) {
        *from = BL_FROM_FLEET;
        return dequant(q->mean[m]);
    }
    return -1;
}

uint64_t baseline_active_hosts(const struct baseline *bl)
{
    uint64_t n = bl->active_hosts;
    for (unsigned i = 0; i < FLEET_RING; i++) /* the open hours too: a replay never closes one */
        if (bl->ring[i].hosts > n)
            n = bl->ring[i].hosts;
    return n;
}

static void close_fleet_hours(struct baseline *bl, uint32_t before)
{
    for (unsigned i = 0; i < FLEET_RING; i++) {
        struct fleet_hour *f = &bl->ring[i];
        if (!f->hosts || f->hour >= before)
            continue;
        double v[BL_METRICS];
        for (unsigned m = 0; m < BL_METRICS; m++)
            v[m] = f->sum[m] / (double)f->hosts;
        model_learn(&bl->fleet, f->hour, v);
        bl->fleet_dirty = true;
        bl->active_hosts = f->hosts;
        memset(f, 0, sizeof *f);
    }
}

void baseline_advance(struct baseline *bl, int64_t newest_ns, int64_t lateness_ns, bool flush_all)
{
    int64_t t = newest_ns - lateness_ns;
    uint32_t closed = t > 0 ? (uint32_t)(t / HOUR_NS) : 0; /* hours before it are over */
    known_advance(bl->known, newest_ns);
    if (!flush_all && closed <= bl->closed_hour)
        return;
    for (uint32_t i = 0; i < bl->hosts.hwm; i++) {
        struct bl_host *e = dtab_at(&bl->hosts, i);
        if (e->h.live && e->has_cur && (flush_all || e->cur_hour < closed))
            close_host_hour(bl, e);
    }
    close_fleet_hours(bl, flush_all ? UINT32_MAX : closed);
    if (closed > bl->closed_hour)
        bl->closed_hour = closed;
}

bool baseline_pending_full(const struct baseline *bl)
{
    return known_pending_full(bl->known);
}

bool baseline_pending(const struct baseline *bl, bool models)
{
    return known_pending(bl->known) || (models && (bl->hosts_dirty || bl->fleet_dirty));
}

/* Compares n 8-byte words of two keys as big-endian numbers: memcmp's
 * order, without a call per comparison (a sort makes millions). */
static int cmp_words(const uint8_t *a, const uint8_t *b, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint64_t x = get_be64(a + 8 * i), y = get_be64(b + 8 * i);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}

static int cmp_dirty(const void *a, const void *b)
{
    return cmp_words(((const struct dirty_host *)a)->addr.b,
                     ((const struct dirty_host *)b)->addr.b, 2);
}

/* In key order, so consecutive puts land on the same B-tree pages. */
int baseline_persist(struct baseline *bl, MDB_txn *txn, bool models)
{
    static uint8_t buf[BL_VALUE_MAX]; /* writer thread only */
    uint8_t key[32];
    MDB_val k, v;
    int rc;
    _Static_assert(11 + (BL_HOD + BL_HOW) * (1 + BL_METRICS * 4) <= BL_VALUE_MAX, "fits");

    if (models && bl->fleet_dirty) {
        baseline_key(NULL, key);
        k = (MDB_val){.mv_size = 17, .mv_data = key};
        v = (MDB_val){.mv_size = model_encode(&bl->fleet, buf), .mv_data = buf};
        if ((rc = mdb_put(txn, bl->db_bl, &k, &v, 0)) != 0)
            return rc;
    }
    if (models && bl->hosts_dirty) {
        uint32_t n = 0;
        for (uint32_t i = 0; i < bl->hosts.hwm; i++) {
            struct bl_host *e = dtab_at(&bl->hosts, i);
            if (e->h.live && e->dirty)
                bl->dirty[n++] = (struct dirty_host){e->addr, i};
        }
        qsort(bl->dirty, n, sizeof *bl->dirty, cmp_dirty);
        for (uint32_t j = 0; j < n; j++) {
            baseline_key(&bl->dirty[j].addr, key);
            k = (MDB_val){.mv_size = 17, .mv_data = key};
            v = (MDB_val){.mv_size = model_encode(&bl->models[bl->dirty[j].i], buf),
                          .mv_data = buf};
            if ((rc = mdb_put(txn, bl->db_bl, &k, &v, 0)) != 0)
                return rc;
        }
    }
    return known_persist(bl->known, txn, bl->db_known);
}

void baseline_persisted(struct baseline *bl, bool models)
{
    if (models && bl->hosts_dirty)
        for (uint32_t i = 0; i < bl->hosts.hwm; i++)
            ((struct bl_host *)dtab_at(&bl->hosts, i))->dirty = 0;
    if (models)
        bl->hosts_dirty = bl->fleet_dirty = false;
    known_persisted(bl->known);
}
