/* detect_int.h — internals shared by the detection engine's files:
 * detect.c (records in, windows, persistence), detect_scan.c,
 * detect_dns.c, detect_beacon.c, detect_exfil.c. Not an API.
 *
 * Distinct counting under hostile input: struct dcount holds up to
 * DCOUNT_INLINE distinct 32-bit fingerprints exactly, then moves to a
 * 1024-bit linear-counting sketch (Whang et al.: n = -m ln(zero share);
 * within a few percent up to a few thousand, saturating near m ln m =
 * 7,100) taken from a fixed pool. A counter that finds the pool empty
 * keeps counting additions as an upper bound (counted as sketch_full). */
#ifndef VIGIL_DETECT_INT_H
#define VIGIL_DETECT_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "addr.h"
#include "alerts.h"
#include "baseline.h"
#include "detect.h"
#include "detect_table.h"
#include "flowrec.h"
#include "hash.h"
#include "log.h"

#define DCOUNT_INLINE 8
#define LC_WORDS 16 /* 1024 bits */
#define AGENTSET_MAX 8
#define DETECT_MAX_AGENTS 4096 /* agent names the engine tells apart; more share one id */
#define DETECT_SWEEP_STEP_NS (5 * NS_PER_SEC) /* event time between sweeps */
#define DETECT_PERSIST_EVERY_NS (1 * NS_PER_SEC)
/* Baseline models change once per hour of event time; a replay closes
 * hours many times a second, and rewriting every host's 6.5 KB model each
 * second would cost more than the detectors. A crash loses at most this
 * much wall time of learning (closed hours), never an alert. */
#define DETECT_MODELS_EVERY_NS (10 * NS_PER_SEC)
#define DETECT_CONTACT_MERGE_NS (1 * NS_PER_SEC) /* connections started closer: one contact */
/* An agent silent this long (wall time) no longer holds the low watermark
 * back: a host that is down must not keep every window open. */
#define DETECT_AGENT_QUIET_NS (60 * NS_PER_SEC)
#define ACTIVE_HOURS 64 /* hours of event time the active-host counts cover */
#define ACTIVE_WORDS 64 /* 4096-bit linear counting: exact enough to ~20,000 hosts */
/* A batch is handled in chunks of records decoded together, so the table
 * slots of the next records are fetched while the current ones are
 * handled (the tables are larger than the cache: a lookup is a miss). */
#define DETECT_CHUNK 32
#define DETECT_AHEAD 4 /* records between an entry hint and its use */

struct dcount {
    uint32_t fp[DCOUNT_INLINE];
    uint32_t sk;    /* pool sketch number + 1; 0: inline */
    uint32_t extra; /* additions after the pool ran dry (an upper bound) */
    uint8_t n;
    bool capped;
};

struct sketch_pool {
    uint64_t (*sk)[LC_WORDS];
    uint32_t *free_list;
    uint32_t cap, n_free, hwm;
};

struct agentset {
    uint16_t id[AGENTSET_MAX];
    uint8_t n;
};

/* One flow record as the detectors see it (validated, decoded once). */
struct drec {
    struct vigil_addr src, dst;
    uint64_t hsrc, hdst;        /* keyed hashes of the addresses */
    int64_t start_ns, end_ns;
    uint64_t bytes_fwd, bytes_rev, pkts_fwd, pkts_rev;
    uint16_t sport, dport;
    bool has_ports;
    uint8_t proto;
    uint8_t state;              /* enum conn_state */
    uint8_t direction;          /* enum flow_direction */
    bool new_conn;              /* the first record of its flow */
    bool failed;                /* a connection attempt that got nowhere */
    bool probe;                 /* counts for scans: new_conn and a port or an ICMP echo */
    bool is_dns;
    const char *qname;          /* borrowed from the batch; NULL when none */
    size_t qname_len;
    uint16_t qtype;
    uint16_t agent;             /* engine-local agent id */
    /* decode's, until new_conn is settled */
    uint64_t flow_id, open_hash;
    bool final, echo;
};

struct detect {
    struct detect_config cfg;
    struct store *st;           /* borrowed */
    struct hash_key hk;

    struct detect_stats stats;  /* writer-owned */
    pthread_mutex_t stats_lock; /* guards pub */
    struct detect_stats pub;    /* a copy of stats for other threads (publish) */
    uint64_t status_alerts;     /* alerts at the last status line */

    struct baseline *bl;
    struct alerts *al;
    struct sketch_pool pool;

    char (*agent_names)[ALERT_AGENT_MAX];
    uint32_t n_agents;
    uint32_t last_agent;        /* cache: consecutive batches come from one agent */

    /* open flows: (agent, flow id) whose final record has not come */
    struct dtab open;

    /* scans (detect_scan.c) */
    struct dtab pairs;          /* (src, dst): ports */
    struct dtab hscan;          /* (src, proto, port): targets */
    struct dtab srcs;           /* (src): targets through several agents */
    struct dtab dsts;           /* (dst): ports from several sources */
    struct dtab ports;          /* (proto, port): targets from several sources */
    /* DNS (detect_dns.c) */
    struct dtab dns;            /* (src): volume and name shape */
    /* beaconing (detect_beacon.c) */
    struct dtab bpairs;         /* (src, dst, proto, port): contact times */
    struct dtab bpop;           /* (dst): distinct sources over the fleet */
    struct dtab bsrcs;          /* (src): how many of its pairs keep a steady rhythm */
    /* destinations once reached by a common share of the fleet: keyed
     * address hashes, open addressing, never deleted (until a restart) */
    uint64_t *fleet_known;
    uint32_t fleet_known_mask, fleet_known_n;
    /* exfiltration (detect_exfil.c) */
    struct dtab exfil;          /* (host, new destination): bytes sent */

    /* Event time per agent: agents deliver different periods at once (a
     * replay runs days in seconds; a spool drains hours after a restart),
     * so a window is retired by the fleet's low watermark, the oldest
     * newest-record-end among agents that delivered lately, not by the
     * newest record of the fastest agent. */
    int64_t agent_wm[DETECT_MAX_AGENTS];   /* newest record end per agent */
    int64_t agent_mono[DETECT_MAX_AGENTS]; /* when it last delivered (monotonic) */
    int64_t low_wm;             /* the fleet's low watermark (detect_tick) */
    uint32_t active_agents;     /* agents that delivered within DETECT_AGENT_QUIET_NS */
    int64_t heard_since_mono;   /* since when some agent has been delivering */
    /* Every live agent delivers at least every DETECT_AGENT_QUIET_NS (its
     * batch interval is at most that): once the engine has heard from the
     * fleet that long, the low watermark covers every agent there is, and
     * verdicts on the fleet's view (is a destination rare?) may be given
     * while records stream; before, they wait for the fleet to go quiet. */
    bool fleet_view;
    /* hosts that started connections, per hour of event time (beacon rarity) */
    struct active_hour {
        uint32_t hour;
        uint64_t sk[ACTIVE_WORDS];
    } active[ACTIVE_HOURS];

    int64_t newest_ns;          /* newest record end (event time) */
    int64_t next_sweep_ns;      /* event time of the next window sweep */
    uint64_t swept_at_records;  /* stats.records at the last sweep */
    int64_t last_record_mono;   /* when the last record came (monotonic) */
    bool idle_flushed;          /* open windows evaluated since the last record */
    int64_t next_persist_mono;
    int64_t next_models_mono;   /* baselines are written from then on */
    struct log_ratelimit rl_persist;
};

/* ---- distinct counting (detect.c) ---------------------------------------- */
void dcount_add(struct detect *d, struct dcount *c, uint64_t h);
double dcount_value(const struct detect *d, const struct dcount *c);
void dcount_release(struct detect *d, struct dcount *c);
void agentset_add(struct agentset *s, uint16_t id);

/* ---- helpers for detectors (detect.c) --------------------------------------- */
static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}
/* Combines keyed hashes (and small values) into one table hash. */
static inline uint64_t hash_combine(uint64_t a, uint64_t b)
{
    return mix64(a ^ (b * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL + (a << 6) + (a >> 2)));
}
/* An alert's identity: its type and the key bytes of the activity (the
 * same after a restart, unlike the tables' keyed hashes). */
uint64_t detect_dedup(enum alert_type t, const void *key, size_t len);
/* Fills the alert's agents from a set. */
void detect_alert_agents(const struct detect *d, struct alert *a, const struct agentset *s);
/* Raises (or updates) the alert; marks the baseline hours of its sources
 * as not to be learned. */
void detect_raise(struct detect *d, uint64_t dedup, struct alert *a);
/* Expiry test for an entry whose window began at start_ns: every agent
 * still delivering has passed its end by the lateness allowance. */
static inline bool detect_window_over(const struct detect *d, int64_t start_ns, int64_t len_ns)
{
    return d->low_wm > start_ns + len_ns + d->cfg.lateness_ns;
}
/* Whether a record starting at t belongs to an entry whose window holds
 * records from start to last without spanning more than len: windows are
 * bounded by their own keys' event time, however fast records arrive. */
static inline bool detect_in_window(int64_t start, int64_t last, int64_t t, int64_t len)
{
    return t <= start + len && t >= last - len;
}
/* Zeroes an entry's fields after its key (a window that starts again). */
static inline void detect_entry_reset(const struct dtab *t, void *e)
{
    size_t off = t->koff + t->klen;
    memset((uint8_t *)e + off, 0, t->esize - off);
}

void detect_count_full(struct detect *d);

/* ---- the detectors ------------------------------------------------------------ */
/* Each: init (tables), free, add (one record), sweep (evaluate; retire
 * entries whose window is over, or every entry when all is set, which
 * evaluates without retiring), prefetch (cache hints for the entries its
 * add will look up: the index slots, or with entry the entries; only
 * hints, so a stale slot costs nothing but time). */
int scan_init(struct detect *d);
void scan_free(struct detect *d);
void scan_add(struct detect *d, const struct drec *r);
void scan_sweep(struct detect *d, bool all);
void scan_prefetch(const struct detect *d, const struct drec *r, bool entry);

int dns_init(struct detect *d);
void dns_free(struct detect *d);
void dns_add(struct detect *d, const struct drec *r, const struct vigil_addr *host, uint64_t hh);
void dns_sweep(struct detect *d, bool all);
void dns_prefetch(const struct detect *d, uint64_t hh, bool entry);
/* Name shape, exposed for tests: length of the part left of the
 * registered domain and its Shannon entropy in bits per character. */
void dns_name_shape(const char *name, size_t len, size_t *sub_len, double *entropy,
                    size_t *regdom_off);

int beacon_init(struct detect *d);
void beacon_free(struct detect *d);
void beacon_add(struct detect *d, const struct drec *r);
void beacon_sweep(struct detect *d, bool all);
void beacon_prefetch(const struct detect *d, const struct drec *r, bool entry);
/* The fleet's hosts that started connections in the hour holding t_ns or
 * the hour before (0 when unknown). */
double beacon_active_hosts(const struct detect *d, int64_t t_ns);
/* Whether dst is common in the fleet around t_ns: more distinct hosts
 * started connections to it than beacon_rare_pct of the active hosts, and
 * more than at_least. *sources and *allowed (OUT, may be NULL) say how
 * many did and how many a rare destination may have. */
bool beacon_dst_common(const struct detect *d, const struct vigil_addr *dst, uint64_t hdst,
                       int64_t t_ns, double at_least, double *sources, double *allowed);

int exfil_init(struct detect *d);
void exfil_free(struct detect *d);
/* host sent `bytes` to peer and got `back`; is_new: the peer was not in
 * the host's known destinations before this record. */
void exfil_add(struct detect *d, const struct drec *r, const struct vigil_addr *host, uint64_t hh,
               const struct vigil_addr *peer, uint64_t hp, uint64_t bytes, uint64_t back,
               bool is_new);
void exfil_sweep(struct detect *d, bool all);
void exfil_prefetch(const struct detect *d, uint64_t hh, uint64_t hp, bool entry);

#endif
