/* alerts.h — alerts: what a detector found, de-duplicated while the
 * activity lasts, stored in LMDB and appended to an alert log.
 *
 * An alert is raised with a dedup key (a hash of its type and the
 * addresses and port that identify the activity). While the same key comes
 * back within dedup_ns of the alert's last_seen, the alert is updated
 * (last_seen, counts, evidence, severity never lowered) and keeps its id;
 * otherwise a new alert starts. Every new or changed alert is written as
 * one JSON line to the log (so a log reader keeps the last line per id)
 * and queued for the store; alerts_persist writes the queue in the
 * caller's write transaction.
 *
 * JSON (DESIGN.md): id, type, severity, sources, targets, agents (arrays
 * of strings), first_seen, last_seen (RFC 3339), summary, evidence (an
 * object, written by the detector).
 *
 * Stored value (DB_ALERTS, key: id u64 big-endian), version 1:
 *   [1][type u8][severity u8][dedup u64 LE][first i64 LE][last i64 LE]
 *   [n addrs u8][n x 16 bytes: sources then targets][json len u16 LE][json]
 * The fixed part lets queries filter by type, time and host without
 * parsing JSON; alerts_decode checks every length.
 *
 * Threads: the writer thread owns struct alerts; alerts_decode is pure. */
#ifndef VIGIL_ALERTS_H
#define VIGIL_ALERTS_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

enum alert_type {
    ALERT_EXFILTRATION = 0,
    ALERT_PORT_SCAN,
    ALERT_HORIZONTAL_SCAN,
    ALERT_FLEET_SCAN,
    ALERT_DISTRIBUTED_SCAN,
    ALERT_DNS_TUNNEL,
    ALERT_BEACON,
    ALERT_TYPE_COUNT
};

enum alert_severity { SEV_LOW = 0, SEV_MEDIUM, SEV_HIGH, SEV_COUNT };

#define ALERT_MAX_ADDRS 16     /* sources + targets listed; counts say how many in all */
#define ALERT_MAX_AGENTS 8
#define ALERT_AGENT_MAX 64
#define ALERT_SUMMARY_MAX 256
#define ALERT_EVIDENCE_MAX 2048
#define ALERT_JSON_MAX 4096
#define ALERT_VALUE_MAX (64 + 2 * ALERT_MAX_ADDRS * 16 + ALERT_JSON_MAX)

/* "port_scan", ... (DESIGN.md); NULL when out of range. */
const char *alert_type_name(enum alert_type t);
/* Index of a type name, or -1. */
int alert_type_parse(const char *name);
const char *alert_severity_name(enum alert_severity s);

struct alert {
    uint64_t id;                 /* set by alerts_raise */
    enum alert_type type;
    enum alert_severity severity;
    struct vigil_addr sources[ALERT_MAX_ADDRS];
    unsigned n_sources;
    struct vigil_addr targets[ALERT_MAX_ADDRS];
    unsigned n_targets;
    char agents[ALERT_MAX_AGENTS][ALERT_AGENT_MAX];
    unsigned n_agents;
    int64_t first_ns, last_ns;   /* event time */
    char summary[ALERT_SUMMARY_MAX];
    char evidence[ALERT_EVIDENCE_MAX]; /* a JSON object, "{...}" */
};

/* Writes the alert's JSON (one line, '\n' included) into buf; returns the
 * length or 0 when it does not fit. */
size_t alert_to_json(const struct alert *a, char *buf, size_t len);

/* A decoded stored alert; json points into the LMDB value (valid while the
 * transaction is). */
struct alert_row {
    uint64_t id;
    uint8_t type, severity;
    uint64_t dedup;
    int64_t first_ns, last_ns;
    unsigned n_addrs;
    const uint8_t *addrs;        /* n_addrs x 16 bytes */
    const char *json;
    size_t json_len;             /* without the '\n' */
};

/* Returns 0 or VIGIL_EBADMSG. key is the 8-byte id. */
int alerts_decode(const void *key, size_t klen, const void *val, size_t vlen,
                  struct alert_row *out);

struct alerts;
struct detect_stats;

/* dbi: the alerts database; txn: a read transaction to resume from (the
 * next id, and recent alerts for de-duplication). log_path may be NULL.
 * stats (borrowed) receives the alert counters. Returns NULL with a
 * message in err. */
struct alerts *alerts_create(MDB_txn *txn, MDB_dbi dbi, const char *log_path, int64_t dedup_ns,
                             struct detect_stats *stats, char *err, size_t errlen);
void alerts_destroy(struct alerts *al);

/* Raises or updates the alert identified by dedup (see above). a is taken
 * as a template: id is filled in. Returns true if it was new. */
bool alerts_raise(struct alerts *al, uint64_t dedup, struct alert *a);

/* True when an alert with this dedup key was raised or updated at or
 * after since_ns (event time): detectors use it to keep their baselines
 * and their sibling detectors quiet about the same activity. */
bool alerts_active(const struct alerts *al, uint64_t dedup, int64_t since_ns);

/* Writes the queued alerts in txn. Returns 0 or an LMDB error code; on
 * error the queue is kept (the caller aborts and retries). */
int alerts_persist(struct alerts *al, MDB_txn *txn);
/* The caller committed: forget the queue. */
void alerts_persisted(struct alerts *al);
bool alerts_pending(const struct alerts *al);

#endif
