/* alerts.c — de-duplication, JSON, the alert log and the stored form of
 * alerts (see alerts.h).
 *
 * Active alerts (those that may still be updated) are kept in a small
 * array searched linearly: alerts are raised by window evaluations, a few
 * per second at most, never per record. When the array is full the alert
 * seen longest ago leaves it (it can no longer be updated; a later
 * detection starts a new alert). After a restart the most recent stored
 * alerts are loaded back into it, so an attack that goes on across a
 * restart updates its alert instead of repeating it. */
#include "alerts.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"
#include "clock.h"
#include "detect.h"
#include "err.h"
#include "json.h"
#include "log.h"

#define ALERTS_ACTIVE_MAX 4096
#define ALERT_VALUE_VERSION 1
#define ALERT_FIXED_LEN (1 + 1 + 1 + 8 + 8 + 8 + 1)

static const char *const type_names[ALERT_TYPE_COUNT] = {
    [ALERT_EXFILTRATION] = "exfiltration",
    [ALERT_PORT_SCAN] = "port_scan",
    [ALERT_HORIZONTAL_SCAN] = "horizontal_scan",
    [ALERT_FLEET_SCAN] = "fleet_scan",
    [ALERT_DISTRIBUTED_SCAN] = "distributed_scan",
    [ALERT_DNS_TUNNEL] = "dns_tunnel",
    [ALERT_BEACON] = "beacon",
};

static const char *const severity_names[SEV_COUNT] = {"low", "medium", "high"};

const char *alert_type_name(enum alert_type t)
{
    return (unsigned)t < ALERT_TYPE_COUNT ? type_names[t] : NULL;
}

int alert_type_parse(const char *name)
{
    for (int i = 0; i < ALERT_TYPE_COUNT; i++)
        if (strcmp(name, type_names[i]) == 0)
            return i;
    return -1;
}

const char *alert_severity_name(enum alert_severity s)
{
    return (unsigned)s < SEV_COUNT ? severity_names[s] : "low";
}

/* ---- JSON ------------------------------------------------------------------ */

/* ["a","b"] into buf; returns false when it does not fit. */
static bool addr_array(const struct vigil_addr *v, unsigned n, char *buf, size_t len)
{
    size_t used = 0;
    char text[ADDR_STRLEN];
    if (len < 3)
        return false;
    buf[used++] = '[';
    for (unsigned i = 0; i < n; i++) {
        int w = snprintf(buf + used, len - used, "%s\"%s\"", i ? "," : "",
                         addr_format(&v[i], text));
        if (w < 0 || (size_t)w >= len - used)
            return false;
        used += (size_t)w;
    }
    if (used + 2 > len)
        return false;
    buf[used++] = ']';
    buf[used] = '\0';
    return true;
}

/* Agent names are authenticated key names or, insecure, what a peer said:
 * escape them through the JSON writer's string rules. */
static bool agent_array(const struct alert *a, char *buf, size_t len)
{
    size_t used = 0;
    if (len < 3)
        return false;
    buf[used++] = '[';
    for (unsigned i = 0; i < a->n_agents; i++) {
        char tmp[ALERT_AGENT_MAX * 6 + 16];
        struct json_writer w;
        json_begin(&w, tmp, sizeof tmp);
        json_key_str(&w, "a", a->agents[i]);
        size_t n = json_end(&w); /* {"a":"..."}\n */
        if (n < 8)
            return false;
        size_t vlen = n - 7; /* strip {"a": and }\n */
        if (used + vlen + 2 > len)
            return false;
        if (i)
            buf[used++] = ',';
        memcpy(buf + used, tmp + 5, vlen);
        used += vlen;
    }
    if (used + 2 > len)
        return false;
    buf[used++] = ']';
    buf[used] = '\0';
    return true;
}

size_t alert_to_json(const struct alert *a, char *buf, size_t len)
{
    char src[ALERT_MAX_ADDRS * (ADDR_STRLEN + 3) + 4], dst[sizeof src];
    char agents[ALERT_MAX_AGENTS * (ALERT_AGENT_MAX * 6 + 3) + 4];
    char first[40], last[40];
    struct json_writer w;

    if (!addr_array(a->sources, a->n_sources, src, sizeof src) ||
        !addr_array(a->targets, a->n_targets, dst, sizeof dst) ||
        !agent_array(a, agents, sizeof agents))
        return 0;
    vigil_format_rfc3339(a->first_ns, first, sizeof first);
    vigil_format_rfc3339(a->last_ns, last, sizeof last);
    json_begin(&w, buf, len);
    json_key_u64(&w, "id", a->id);
    json_key_plain(&w, "type", alert_type_name(a->type));
    json_key_plain(&w, "severity", alert_severity_name(a->severity));
    json_key_raw(&w, "sources", src);
    json_key_raw(&w, "targets", dst);
    json_key_raw(&w, "agents", agents);
    json_key_plain(&w, "first_seen", first);
    json_key_plain(&w, "last_seen", last);
    json_key_str(&w, "summary", a->summary);
    json_key_raw(&w, "evidence", a->evidence[0] ? a->evidence : "{}");
    return json_end(&w);
}

/* ---- stored form --------------------------------------------------------------- */

static size_t encode_value(const struct alert *a, uint64_t dedup, const char *json,
                           size_t json_len, uint8_t *buf)
{
    size_t n = 0;
    unsigned naddr = a->n_sources + a->n_targets;
    buf[n++] = ALERT_VALUE_VERSION;
    buf[n++] = (uint8_t)a->type;
    buf[n++] = (uint8_t)a->severity;
    put_le64(buf + n, dedup);
    n += 8;
    put_le64(buf + n, (uint64_t)a->first_ns);
    n += 8;
    put_le64(buf + n, (uint64_t)a->last_ns);
    n += 8;
    buf[n++] = (uint8_t)naddr;
    for (unsigned i = 0; i < a->n_sources; i++, n += 16)
        memcpy(buf + n, a->sources[i].b, 16);
    for (unsigned i = 0; i < a->n_targets; i++, n += 16)
        memcpy(buf + n, a->targets[i].b, 16);
    buf[n++] = (uint8_t)json_len;
    buf[n++] = (uint8_t)(json_len >> 8);
    memcpy(buf + n, json, json_len);
    return n + json_len;
}

int alerts_decode(const void *key, size_t klen, const void *val, size_t vlen,
                  struct alert_row *out)
{
    const uint8_t *p = val;
    if (klen != 8 || vlen < ALERT_FIXED_LEN + 2 || p[0] != ALERT_VALUE_VERSION)
        return VIGIL_EBADMSG;
    out->id = get_be64(key);
    out->type = p[1];
    out->severity = p[2];
    out->dedup = get_le64(p + 3);
    out->first_ns = (int64_t)get_le64(p + 11);
    out->last_ns = (int64_t)get_le64(p + 19);
    out->n_addrs = p[27];
    size_t off = ALERT_FIXED_LEN;
    if (out->type >= ALERT_TYPE_COUNT || out->severity >= SEV_COUNT ||
        out->n_addrs > 2 * ALERT_MAX_ADDRS || (size_t)out->n_addrs * 16 > vlen - off - 2)
        return VIGIL_EBADMSG;
    out->addrs = p + off;
    off += (size_t)out->n_addrs * 16;
    size_t jl = (size_t)p[off] | (size_t)p[off + 1] << 8;
    off += 2;
    if (jl > vlen - off)
        return VIGIL_EBADMSG;
    out->json = (const char *)p + off;
    out->json_len = jl;
    return 0;
}

/* ---- the active set ------------------------------------------------------------- */

struct active {
    uint64_t dedup;
    bool full;          /* a holds the whole alert (false: reloaded, only the fixed part) */
    bool queued;        /* waiting in the persist queue */
    struct alert a;
};

struct alerts {
    MDB_dbi dbi;
    uint64_t next_id;
    int64_t dedup_ns;
    int log_fd;         /* -1: no log */
    struct detect_stats *stats;
    struct active *act; /* ALERTS_ACTIVE_MAX */
    unsigned n_act;
    unsigned *queue;    /* indexes into act waiting to be stored */
    unsigned n_queue;
    struct log_ratelimit rl_log;
};

static struct active *find_active(const struct alerts *al, uint64_t dedup)
{
    for (unsigned i = 0; i < al->n_act; i++)
        if (al->act[i].dedup == dedup)
            return &al->act[i];
    return NULL;
}

/* A free slot, evicting the alert seen longest ago that is not queued. */
static struct active *take_slot(struct alerts *al)
{
    if (al->n_act < ALERTS_ACTIVE_MAX)
        return &al->act[al->n_act++];
    struct active *old = NULL;
    for (unsigned i = 0; i < al->n_act; i++)
        if (!al->act[i].queued && (!old || al->act[i].a.last_ns < old->a.last_ns))
            old = &al->act[i];
    return old; /* NULL only if all ALERTS_ACTIVE_MAX are queued: cannot happen per tick */
}

struct alerts *alerts_create(MDB_txn *txn, MDB_dbi dbi, const char *log_path, int64_t dedup_ns,
                             struct detect_stats *stats, char *err, size_t errlen)
{
    struct alerts *al = calloc(1, sizeof *al);
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    if (!al || !(al->act = calloc(ALERTS_ACTIVE_MAX, sizeof *al->act)) ||
        !(al->queue = calloc(ALERTS_ACTIVE_MAX, sizeof *al->queue))) {
        snprintf(err, errlen, "alerts: out of memory");
        goto fail;
    }
    al->dbi = dbi;
    al->dedup_ns = dedup_ns;
    al->stats = stats;
    al->log_fd = -1;
    al->next_id = 1;
    if (log_path && *log_path) {
        al->log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (al->log_fd < 0) {
            snprintf(err, errlen, "alert log %s: %s", log_path, strerror(errno));
            goto fail;
        }
    }
    /* Newest first: the next id, then recent alerts back into the active set. */
    if (mdb_cursor_open(txn, dbi, &cur) != 0) {
        snprintf(err, errlen, "alerts: cannot read the alerts database");
        goto fail;
    }
    int rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    while (rc == 0 && al->n_act < ALERTS_ACTIVE_MAX / 2) {
        struct alert_row row;
        if (alerts_decode(k.mv_data, k.mv_size, v.mv_data, v.mv_size, &row) == 0) {
            if (al->next_id <= row.id)
                al->next_id = row.id + 1;
            if (!find_active(al, row.dedup)) {
                struct active *e = &al->act[al->n_act++];
                e->dedup = row.dedup;
                e->a.id = row.id;
                e->a.type = row.type;
                e->a.severity = row.severity;
                e->a.first_ns = row.first_ns;
                e->a.last_ns = row.last_ns;
            }
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    }
    mdb_cursor_close(cur);
    return al;
fail:
    alerts_destroy(al);
    return NULL;
}

void alerts_destroy(struct alerts *al)
{
    if (!al)
        return;
    if (al->log_fd >= 0)
        close(al->log_fd);
    free(al->act);
    free(al->queue);
    free(al);
}

static void add_addrs(struct vigil_addr *dst, unsigned *n, const struct vigil_addr *src,
                      unsigned m)
{
    for (unsigned i = 0; i < m && *n < ALERT_MAX_ADDRS; i++) {
        bool seen = false;
        for (unsigned j = 0; j < *n && !seen; j++)
            seen = memcmp(dst[j].b, src[i].b, 16) == 0;
        if (!seen)
            dst[(*n)++] = src[i];
    }
}

static void write_log(struct alerts *al, const struct alert *a)
{
    char line[ALERT_JSON_MAX];
    size_t n = alert_to_json(a, line, sizeof line);
    if (al->log_fd < 0 || n == 0)
        return;
    ssize_t w = write(al->log_fd, line, n); /* O_APPEND: one line per write */
    if (w != (ssize_t)n) {
        al->stats->alert_log_failed++;
        log_ratelimited(&al->rl_log, LOG_LVL_WARN, "alert log: %s (counted)",
                        w < 0 ? strerror(errno) : "short write");
    }
}

bool alerts_raise(struct alerts *al, uint64_t dedup, struct alert *a)
{
    struct active *e = find_active(al, dedup);
    bool is_new = !e || a->first_ns > e->a.last_ns + al->dedup_ns;
    if (is_new) {
        if (!e && !(e = take_slot(al)))
            return false;
        a->id = al->next_id++;
        e->dedup = dedup;
        e->full = true;
        e->a = *a;
        al->stats->alerts_new++;
        log_info("alert %llu %s (%s): %s", (unsigned long long)a->id, alert_type_name(a->type),
                 alert_severity_name(a->severity), a->summary);
    } else {
        struct alert merged = *a;
        merged.id = e->a.id;
        if (e->a.first_ns < merged.first_ns)
            merged.first_ns = e->a.first_ns;
        if (e->a.last_ns > merged.last_ns)
            merged.last_ns = e->a.last_ns;
        if (e->a.severity > merged.severity)
            merged.severity = e->a.severity;
        if (e->full) {
            /* keep who was involved before, then add who is new */
            merged.n_sources = merged.n_targets = merged.n_agents = 0;
            add_addrs(merged.sources, &merged.n_sources, e->a.sources, e->a.n_sources);
            add_addrs(merged.sources, &merged.n_sources, a->sources, a->n_sources);
            add_addrs(merged.targets, &merged.n_targets, e->a.targets, e->a.n_targets);
            add_addrs(merged.targets, &merged.n_targets, a->targets, a->n_targets);
            memcpy(merged.agents, e->a.agents, sizeof merged.agents);
            merged.n_agents = e->a.n_agents;
            for (unsigned i = 0; i < a->n_agents && merged.n_agents < ALERT_MAX_AGENTS; i++) {
                bool seen = false;
                for (unsigned j = 0; j < merged.n_agents && !seen; j++)
                    seen = strcmp(merged.agents[j], a->agents[i]) == 0;
                if (!seen)
                    memcpy(merged.agents[merged.n_agents++], a->agents[i], ALERT_AGENT_MAX);
            }
            /* nothing new: no write, no log line */
            if (merged.last_ns == e->a.last_ns && merged.severity == e->a.severity &&
                merged.n_sources == e->a.n_sources && merged.n_targets == e->a.n_targets &&
                merged.n_agents == e->a.n_agents && strcmp(merged.evidence, e->a.evidence) == 0)
                return false;
        }
        e->a = merged;
        e->full = true;
        *a = merged;
        al->stats->alerts_updated++;
    }
    if (!e->queued && al->n_queue < ALERTS_ACTIVE_MAX) {
        e->queued = true;
        al->queue[al->n_queue++] = (unsigned)(e - al->act);
    }
    write_log(al, &e->a);
    return is_new;
}

bool alerts_active(const struct alerts *al, uint64_t dedup, int64_t since_ns)
{
    const struct active *e = find_active(al, dedup);
    return e && e->a.last_ns >= since_ns;
}

int alerts_persist(struct alerts *al, MDB_txn *txn)
{
    static uint8_t val[ALERT_VALUE_MAX]; /* writer thread only */
    char json[ALERT_JSON_MAX];
    for (unsigned i = 0; i < al->n_queue; i++) {
        struct active *e = &al->act[al->queue[i]];
        size_t jl = alert_to_json(&e->a, json, sizeof json);
        if (jl == 0)
            continue; /* cannot happen: every part is bounded to fit */
        jl--;         /* the stored JSON has no '\n' */
        uint8_t key[8];
        put_be64(key, e->a.id);
        MDB_val k = {.mv_size = 8, .mv_data = key};
        MDB_val v = {.mv_size = encode_value(&e->a, e->dedup, json, jl, val), .mv_data = val};
        int rc = mdb_put(txn, al->dbi, &k, &v, 0);
        if (rc)
            return rc;
    }
    return 0;
}

void alerts_persisted(struct alerts *al)
{
    for (unsigned i = 0; i < al->n_queue; i++)
        al->act[al->queue[i]].queued = false;
    al->n_queue = 0;
}

bool alerts_pending(const struct alerts *al)
{
    return al->n_queue > 0;
}
