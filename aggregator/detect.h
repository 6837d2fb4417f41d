/* detect.h — the aggregator's detection engine: baselines, detectors and
 * alerts, fed with every batch the store applied.
 *
 * Threads: everything here runs on one thread at a time. In the
 * aggregator that is the detection thread (detect_thread.h): detect_batch
 * gets a copy of each batch store_apply_batch(es) committed that was not a
 * duplicate, and detect_tick runs after each and on its own clock. The
 * engine writes its own LMDB transactions (baselines, known destinations,
 * alerts) in detect_tick, batched, never per record, beside the store's
 * writer (store.h, "Threads"). detect_get_stats may be called from any
 * thread.
 *
 * Time: windows and baselines run on the flows' own timestamps (event
 * time), so a replayed capture behaves as live traffic. A key's window
 * holds records at most window_ns apart by their own times (one that does
 * not fit closes it and starts the next); an idle window is retired when
 * the fleet's low watermark (the oldest newest-record-end among agents
 * that delivered lately, detect_int.h) passes its end plus the lateness
 * allowance; when no record has come for idle_flush_ns of monotonic time,
 * every open window is evaluated as it is (a replay's attack is reported
 * soon after the agents stop). The wall clock is used only for that idle
 * test and the persistence rhythm.
 *
 * Detectors (detect_scan.c, detect_dns.c, detect_beacon.c, detect_exfil.c)
 * and their defaults are described in the README, section "Detection";
 * the defaults live in detect_config_defaults and in the aggregator's
 * option table (main.c), which documents each.
 *
 * Memory is bounded: every table has a fixed capacity set at creation;
 * what does not fit is counted (struct detect_stats) and not tracked.
 *
 * Persistence: baselines, the known-destination sets and alerts live in
 * LMDB databases of the store's environment (baseline.h, alerts.h). Open
 * windows live in memory only: after a restart the engine resumes from
 * the persisted baselines, destinations and alerts; what was in open
 * windows (at most a window's worth of evidence) is lost, and the baseline
 * hours closed since the last model write (models are written at most
 * every 10 s; destinations and alerts about every second).
 *
 * Non-goals: storage of flows (store.h), answering queries (answer_alerts.c
 * reads what alerts.h and baseline.h persist). */
#ifndef VIGIL_DETECT_H
#define VIGIL_DETECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "vigil.pb-c.h"

struct alert;

struct detect_config {
    bool enabled;               /* false: detect_batch and detect_tick do nothing */
    const char *alert_log;      /* JSON lines appended here (borrowed); NULL: none */
    int64_t learning_ns;        /* data a host's own baseline needs before it is used (7 d) */
    int64_t window_ns;          /* scan and DNS windows: a key's records at most this far
                                   apart in event time (5 min) */
    int64_t lateness_ns;        /* how far behind the newest record a record may come (90 s) */
    int64_t idle_flush_ns;      /* no record for this long (monotonic): evaluate now (5 s) */
    int64_t dedup_ns;           /* an alert is updated, not repeated, while its activity
                                   resumes within this long of its last_seen (1 h) */
    uint64_t max_keys;          /* capacity of each detector table (131072) */
    int64_t known_keep_ns;      /* a known destination unseen this long is forgotten (35 d) */
    /* vertical port scan */
    uint64_t scan_ports;        /* distinct ports one source probes on one target (100) */
    uint64_t scan_success_pct;  /* weight of a port whose connection succeeded, % (25) */
    /* horizontal scan */
    uint64_t hscan_targets;     /* distinct targets of one source on one port (50) */
    /* fleet-wide scan */
    uint64_t fscan_targets;     /* distinct fleet hosts one source probed, failing (20) */
    uint64_t fscan_agents;      /* agents that saw it (3) */
    /* distributed scan */
    uint64_t dscan_sources;     /* distinct sources that together sweep (5) */
    /* DNS tunnel */
    uint64_t dns_factor;        /* DNS volume over the baseline (5) */
    uint64_t dns_min_bytes;     /* DNS bytes of a host in a window, at least (32 KiB) */
    uint64_t dns_min_queries;   /* DNS queries of a host in a window, at least (50) */
    uint64_t dns_long_name;     /* characters left of the registered domain (40) */
    uint64_t dns_min_entropy_x100; /* bits per character x 100 of those (350) */
    uint64_t dns_unique_names;  /* distinct names under one registered domain (100) */
    /* beaconing */
    uint64_t beacon_min_connections; /* contacts, connections started < 1 s apart as one (6) */
    uint64_t beacon_max_jitter_pct;  /* MAD of the intervals / their median, % (10) */
    uint64_t beacon_max_size_pct;    /* MAD of the bytes sent / their median, % (20) */
    uint64_t beacon_rare_pct;        /* destination reached by at most this share of the
                                        fleet's active hosts, % (10; always 1 host allowed) */
    int64_t beacon_max_period_ns;    /* longer periods are not tracked (2 h) */
    /* exfiltration */
    uint64_t exfil_factor;      /* outbound to a new destination over the host's hourly
                                   outbound baseline (10) */
    uint64_t exfil_min_bytes;   /* and at least this many bytes (256 KiB) */
    uint64_t exfil_min_ratio;   /* and at least this many times what came back (4) */
    int64_t exfil_window_ns;    /* a destination counts as new this long after first contact (1 h) */
    /* baseline fallbacks before anything is learned (per host, per hour) */
    uint64_t default_out_bytes; /* 0: no absolute fallback (the floors alone apply) */
    uint64_t default_dns_bytes; /* 128 KiB: a few hundred lookups of ~250 bytes */
    /* Called on the ingest thread when an alert is first raised (not on its
     * updates), e.g. capture_policy_alert_hook (forensic capture); NULL: none. */
    void (*on_new_alert)(void *ctx, const struct alert *a);
    void *on_new_alert_ctx;
};

/* Fills *c with the defaults listed above. */
void detect_config_defaults(struct detect_config *c);

struct detect_stats {
    uint64_t batches, records;        /* fed */
    uint64_t records_bad;             /* records skipped: bad address lengths, times */
    uint64_t continuations;           /* partial-record continuations (no new connection) */
    uint64_t windows_closed;          /* entries evaluated and retired */
    uint64_t idle_flushes;            /* evaluations on idle */
    uint64_t table_full;              /* records a full table could not track */
    uint64_t sketch_full;             /* distinct counters that could not get a sketch */
    uint64_t alerts_new, alerts_updated;
    uint64_t alerts_persist_failed;   /* alert writes that failed (retried) */
    uint64_t alert_log_failed;        /* lines the alert log could not take */
    uint64_t hours_closed;            /* baseline hours folded in */
    uint64_t hosts;                   /* hosts with a baseline */
    uint64_t hosts_full;              /* hosts refused: baseline table full */
    uint64_t known_dsts;              /* known (host, destination) pairs */
    uint64_t known_full;              /* pairs not remembered: set full */
    uint64_t persists, persist_failed;
    int64_t newest_ns;                /* newest record end seen (event time) */
};

struct detect;

/* Creates the engine on store (borrowed: must outlive it), loading the
 * persisted baselines and known destinations, and opening cfg->alert_log
 * for appending. Returns NULL with a message in err. */
struct detect *detect_create(struct store *store, const struct detect_config *cfg, char *err,
                             size_t errlen);

/* Persists what is pending (best effort) and frees. Accepts NULL. */
void detect_destroy(struct detect *d);

/* Feeds one applied batch (borrowed) from agent (the authenticated name).
 * Never fails: bad records are counted and skipped. */
void detect_batch(struct detect *d, const Vigil__FlowBatch *b, const char *agent);

/* Time-driven work, bounded: closes windows the event time has passed,
 * evaluates everything open after idle_flush_ns without records, closes
 * baseline hours, and persists (about once a second). now_mono_ns is the
 * monotonic clock (tests pass their own). */
void detect_tick(struct detect *d, int64_t now_mono_ns);

/* Evaluates every open window now and persists everything pending (tests,
 * shutdown). Returns 0 or the persistence error. */
int detect_flush(struct detect *d);

/* A consistent copy of the counters; any thread. */
void detect_get_stats(struct detect *d, struct detect_stats *out);

/* One line for the status log ("alerts=3 (+1) hosts=12 ..."). */
void detect_status_text(struct detect *d, char *buf, size_t len);

#endif
