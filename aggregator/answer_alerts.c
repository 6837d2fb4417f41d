/* answer_alerts.c — the detection engine's answers: alerts (newest first,
 * filtered by time, type and host) and baseline (a host's, or the fleet's,
 * typical hour by hour of the day). Arguments are listed in service.h.
 *
 * Both read what the engine persisted (alerts.h, baseline.h) in a read
 * snapshot of the store; the engine writes about once a second, so an
 * alert shows here within a second or so of being raised. */
#include "answer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts.h"
#include "baseline.h"
#include "clock.h"
#include "err.h"
#include "service.h"
#include "store_int.h"

#define ALERTS_DEFAULT_LIMIT 100u
#define KNOWN_COUNT_MAX 10000000u /* counting a host's destinations stops here */

/* The whole alert comes first: the row's text buffer then always has room
 * for it (ALERT_JSON_MAX < CELL_TEXT_MAX); a table cell cut short is harmless. */
static const char *const alert_columns[] = {
    "alert", "id", "first_seen", "last_seen", "type", "severity", "sources", "targets",
    "agents", "summary", NULL,
};
_Static_assert(ALERT_JSON_MAX <= CELL_TEXT_MAX, "the alert fits its cell");

/* "a, b" from count 16-byte addresses. */
static void addr_list(const uint8_t *v, unsigned n, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < n && used < len; i++) {
        struct vigil_addr a;
        char t[ADDR_STRLEN];
        memcpy(a.b, v + (size_t)i * 16, 16);
        int w = snprintf(buf + used, len - used, "%s%s", i ? "," : "", addr_format(&a, t));
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* The alert's JSON names its sources before its targets; the stored row
 * keeps them in one list, so the split comes from the JSON's arrays. */
static unsigned count_sources(const char *json, size_t len)
{
    const char *p = memmem(json, len, "\"sources\":[", 11);
    if (!p)
        return 0;
    unsigned n = 0;
    for (p += 11; p < json + len && *p != ']'; p++)
        if (*p == '"')
            n++;
    return n / 2;
}

int answer_alerts(struct answer *a)
{
    static const char *const known[] = {"since", "until", "type", "host", "limit", NULL};
    uint64_t since = 0, until = UINT64_MAX >> 1, limit = ALERTS_DEFAULT_LIMIT;
    struct vigil_addr host;
    bool has_host = false;
    int type = -1, rc;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;

    a->columns = alert_columns;
    if ((rc = args_known(a, known)) != 0 ||
        (rc = arg_u64(a, "since", 0, UINT64_MAX >> 1, &since)) != 0 ||
        (rc = arg_u64(a, "until", 0, UINT64_MAX >> 1, &until)) != 0 ||
        (rc = arg_u64(a, "limit", 1, SERVICE_MAX_ROWS, &limit)) != 0 ||
        (rc = arg_addr(a, "host", &host, &has_host)) != 0)
        return rc;
    const char *t = arg_find(a, "type");
    if (t && (type = alert_type_parse(t)) < 0) {
        snprintf(a->err, sizeof a->err,
                 "alerts: unknown type \"%.40s\" (exfiltration, port_scan, horizontal_scan, "
                 "fleet_scan, distributed_scan, dns_tunnel, beacon)",
                 t);
        return VIGIL_EINVAL;
    }
    a->rows.limit = limit;
    if ((rc = store__detect_begin(a->st, false, &txn)) != 0) {
        snprintf(a->err, sizeof a->err, "alerts: the store failed: %s", vigil_strerror(rc));
        return rc;
    }
    MDB_val k, v;
    rc = mdb_cursor_open(txn, a->st->ddb[DDB_ALERTS], &cur);
    int mrc = rc ? rc : mdb_cursor_get(cur, &k, &v, MDB_LAST);
    rc = 0;
    for (; mrc == 0 && rc == 0 && a->rows.n < limit; mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV)) {
        struct alert_row row;
        if (alerts_decode(k.mv_data, k.mv_size, v.mv_data, v.mv_size, &row) != 0)
            continue; /* damaged: skipped, not trusted */
        if (row.last_ns < (int64_t)since || row.first_ns > (int64_t)until ||
            (type >= 0 && row.type != type))
            continue;
        if (has_host) {
            bool hit = false;
            for (unsigned i = 0; i < row.n_addrs && !hit; i++)
                hit = memcmp(row.addrs + (size_t)i * 16, host.b, 16) == 0;
            if (!hit)
                continue;
        }
        unsigned ns = count_sources(row.json, row.json_len);
        if (ns > row.n_addrs)
            ns = row.n_addrs;
        char src[ALERT_MAX_ADDRS * (ADDR_STRLEN + 1) + 1], dst[sizeof src];
        addr_list(row.addrs, ns, src, sizeof src);
        addr_list(row.addrs + (size_t)ns * 16, row.n_addrs - ns, dst, sizeof dst);
        /* agents and summary: from the JSON, as the analyst will see them */
        const char *ag = memmem(row.json, row.json_len, "\"agents\":[", 10);
        const char *ag_end = ag ? memchr(ag, ']', row.json_len - (size_t)(ag - row.json)) : NULL;
        const char *sm = memmem(row.json, row.json_len, "\"summary\":\"", 11);
        const char *sm_end = sm ? memmem(sm + 11, row.json_len - (size_t)(sm + 11 - row.json),
                                         "\",\"evidence\"", 12)
                                : NULL;
        struct cellbuf *cb = malloc(sizeof *cb);
        if (!cb) {
            rc = VIGIL_ENOMEM;
            break;
        }
        cells_reset(cb);
        cell_textn(cb, row.json, row.json_len);
        cell_u64(cb, row.id);
        cell_time(cb, row.first_ns);
        cell_time(cb, row.last_ns);
        cell_text(cb, alert_type_name(row.type));
        cell_text(cb, alert_severity_name(row.severity));
        cell_text(cb, src);
        cell_text(cb, dst);
        if (ag && ag_end)
            cell_textn(cb, ag + 10, (size_t)(ag_end - ag - 10));
        else
            cell_text(cb, "");
        if (sm && sm_end)
            cell_textn(cb, sm + 11, (size_t)(sm_end - sm - 11));
        else
            cell_text(cb, "");
        rc = answer_row(a, cb);
        free(cb);
    }
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (rc)
        snprintf(a->err, sizeof a->err, "alerts: %s", vigil_strerror(rc));
    return rc;
}

/* ---- baseline ------------------------------------------------------------------- */

static const char *const baseline_columns[] = {
    "host", "hour", "samples", "out_bytes", "in_bytes", "dns_bytes", "dns_queries",
    "distinct_dsts", "distinct_ports", "connections", "failed_connections", "history_hours",
    "first_seen", "last_seen", "known_destinations", NULL,
};

int answer_baseline(struct answer *a)
{
    static const char *const known[] = {"host", NULL};
    struct vigil_addr host;
    bool has_host = false;
    MDB_txn *txn = NULL;
    int rc;
    uint8_t key[17];
    char hosttext[ADDR_STRLEN];

    a->columns = baseline_columns;
    if ((rc = args_known(a, known)) != 0 || (rc = arg_addr(a, "host", &host, &has_host)) != 0)
        return rc;
    baseline_key(has_host ? &host : NULL, key);
    struct bl_view *view = calloc(1, sizeof *view);
    if (!view)
        return VIGIL_ENOMEM;
    if ((rc = store__detect_begin(a->st, false, &txn)) != 0) {
        free(view);
        snprintf(a->err, sizeof a->err, "baseline: the store failed: %s", vigil_strerror(rc));
        return rc;
    }
    MDB_val k = {.mv_size = 17, .mv_data = key}, v;
    uint64_t known_dsts = 0;
    rc = mdb_get(txn, a->st->ddb[DDB_BASELINES], &k, &v);
    if (rc == MDB_NOTFOUND) {
        snprintf(a->err, sizeof a->err,
                 "baseline: nothing learned yet for %s (an hour is learned once the flows' "
                 "time has passed it, or when traffic pauses)",
                 has_host ? addr_format(&host, hosttext) : "the fleet");
        rc = VIGIL_ENOENT;
        goto out;
    }
    if (rc != 0 || (rc = baseline_decode(v.mv_data, v.mv_size, view)) != 0) {
        snprintf(a->err, sizeof a->err, "baseline: the stored baseline cannot be read");
        rc = rc ? rc : VIGIL_EBADMSG;
        goto out;
    }
    if (has_host) { /* destinations of the host: a prefix range of known_dsts */
        MDB_cursor *cur;
        if (mdb_cursor_open(txn, a->st->ddb[DDB_KNOWN_DSTS], &cur) == 0) {
            MDB_val kk = {.mv_size = 16, .mv_data = host.b}, vv;
            int mrc = mdb_cursor_get(cur, &kk, &vv, MDB_SET_RANGE);
            while (mrc == 0 && kk.mv_size == 32 && memcmp(kk.mv_data, host.b, 16) == 0 &&
                   known_dsts < KNOWN_COUNT_MAX) {
                known_dsts++;
                mrc = mdb_cursor_get(cur, &kk, &vv, MDB_NEXT);
            }
            mdb_cursor_close(cur);
        }
    }
    const char *who = has_host ? addr_format(&host, hosttext) : "fleet";
    for (unsigned h = 0; h < BL_HOD && rc == 0; h++) {
        const struct bl_slot_view *s = &view->hod[h];
        struct cellbuf cb;
        cells_reset(&cb);
        cell_text(&cb, who);
        cell_u64(&cb, h);
        cell_u64(&cb, s->samples);
        for (unsigned m = 0; m < BL_METRICS; m++) {
            if (s->typical[m] < 0)
                cell_text(&cb, "");
            else
                cell_fmt(&cb, "%.1f", s->typical[m]);
        }
        cell_u64(&cb, view->last_hour - view->first_hour + 1);
        cell_time(&cb, (int64_t)view->first_hour * 3600 * NS_PER_SEC);
        cell_time(&cb, ((int64_t)view->last_hour + 1) * 3600 * NS_PER_SEC);
        if (has_host)
            cell_u64(&cb, known_dsts);
        else
            cell_text(&cb, "");
        rc = answer_row(a, &cb);
    }
out:
    mdb_txn_abort(txn);
    free(view);
    return rc;
}
