/* export.c — batches from the flow thread to the aggregator: the hand-off
 * queue, the exporter thread, its window of unacknowledged batches, acks,
 * resends and the spool.
 *
 * Durability: every batch is stored in the spool before it is sent, and
 * removed when an ack covers it. The alternative (spool only when the
 * window is full or the aggregator is away) saves one small write per
 * batch, but then a batch that was handed over, sent and not yet acked
 * when the agent crashes exists nowhere: the agent restart would lose it.
 * With spool-first, the only records a crash can lose are those not yet
 * cut into a batch (still in the flow table or the builder), which die
 * with the process anyway. The cost is two fsync()s per batch, about one
 * batch a second: negligible next to packet capture.
 *
 * Who holds a batch (each batch is in one or more of these places until it
 * is acked):
 *   the hand-off queue  cut by the flow thread, not yet seen by the exporter;
 *   the spool           stored on disk (the normal case);
 *   memory (mem[])      a copy for sending without a disk read (evictable),
 *                       or the only copy when the disk refused it (full
 *                       disk: "unspooled", kept while the window has room,
 *                       stored as soon as the disk takes it again).
 * A batch the disk refused is sent only once the state file covers its
 * sequence number (spool_sync_state), so that number is never reused after
 * a crash.
 *
 * Order. Hand-offs happen in sequence order: a batch is cut and handed over
 * (queued, or written to the spool when the queue is full) under the
 * builder lock, so when batch N+1 is visible anywhere, batch N is visible
 * too. The exporter's own time cuts take the same lock (trylock: it never
 * waits for the flow thread) and only when the queue is empty. The next
 * batch to send is the smallest sequence >= send_next found in memory, the
 * spool, the held slot or the queue — checked in that order, so a batch
 * that moves from the queue to the spool meanwhile is never missed; if the
 * smallest is still queued, sending waits for it.
 *
 * Acks are cumulative: Ack(seq) removes everything <= seq from memory and
 * the spool. Without progress for resend_ms (doubling up to
 * EXPORT_MAX_RESEND_MS) or after a reconnect, sending starts again at the
 * oldest unacknowledged batch (go-back-N): the aggregator acks a resend
 * again without applying it. The socket has ZMQ_IMMEDIATE, so nothing is
 * queued while there is no connection; a connection monitor reports
 * handshakes and disconnects.
 *
 * Commands from the aggregator go to the control (export_set_control:
 * forensic capture), whose AgentStatus messages go back on the same
 * socket, unspooled: each status replaces the last.
 *
 * Non-goals: what commands do (forensic.c). */
#include "export.h"

#include "clock.h"
#include "err.h"
#include "log.h"
#include "spool.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define TICK_MS 100                         /* longest sleep: time cuts are checked this often */
#define DISK_RETRY_NS (1 * NS_PER_SEC)      /* a refusing disk is retried this often */
/* A socket whose handshake was refused stays refused (libzmq does not try
 * again), so after this long it is replaced by a new one: an agent whose
 * key is added to the allow list later (SIGHUP) gets in without a restart. */
#define REFUSED_RETRY_NS (10 * NS_PER_SEC)
#define FLOW_WAIT_NS (200 * NS_PER_MS)      /* a blocked flow thread re-checks this often */
#define FLOWTAB_REFRESH_EVERY 256u          /* records between flow-table counter reads */

/* A packed batch: one serialized Envelope. */
struct item {
    uint64_t seq;
    uint8_t *bytes; /* from malloc() (envelope_pack or spool_read) */
    size_t len;
    uint32_t records;
};

struct mem_entry {
    struct item it;
    bool spooled; /* also on disk: this copy may be dropped at any time */
};

struct stats {
    _Atomic uint64_t records_in, records_lost, batches_cut, batches_spilled, sends, resends, acks,
        acked_through, bad_messages, ignored_messages, unspooled, in_flight, flow_waits,
        commands, statuses;
    atomic_bool connected;
};

struct exporter {
    /* configuration (strings copied) */
    struct export_config cfg;
    char endpoint[512];
    char agent[KEY_NAME_MAX + 1];
    char server_key[KEY_Z85_LEN + 1];
    struct keypair client;

    void *ctx;
    bool own_ctx;
    void *sock;
    void *mon;
    int efd; /* eventfd: wakes the exporter thread */
    struct spool *spool;
    const struct flowtab *table;

    /* the batch being filled: bmu */
    pthread_mutex_t bmu;
    struct batch_builder *builder;
    int64_t last_cut_ns; /* monotonic */

    /* counters sent with each batch: cmu */
    pthread_mutex_t cmu;
    struct batch_counters counters;

    /* hand-off queue, flow thread -> exporter: qmu; qcond signals room */
    pthread_mutex_t qmu;
    pthread_cond_t qcond;
    struct item *q; /* [cfg.queue_batches] */
    uint32_t qhead, qcount;

    /* ---- exporter thread only ---- */
    struct mem_entry *mem; /* [cfg.window_batches], sorted by seq */
    uint32_t mem_count, unspooled;
    uint64_t mem_bytes, unspooled_bytes;
    uint64_t *inflight; /* ring [cfg.window_batches] of sent, unacked seqs, ascending */
    uint32_t if_head, if_count;
    struct item held; /* a batch this thread cut and could not place yet */
    bool has_held;
    uint64_t send_next, acked, highest_sent;
    bool remove_pending;
    int64_t last_progress_ns, resend_ns, disk_retry_ns;
    bool want_pollout;
    int64_t refused_ns; /* the aggregator refused the handshake then (0: it did not) */
    unsigned sock_gen;  /* sockets made so far: names each one's monitor */
    struct log_ratelimit rl_disk, rl_net, rl_bad, rl_ack, rl_flow;

    /* commands and status (exporter thread; set before the start) */
    struct export_control ctl;
    bool has_ctl, status_due;
    atomic_bool status_asked; /* export_status_now: becomes status_due */
    int64_t last_status_ns;

    /* control */
    pthread_t thread;
    bool started;
    atomic_bool stop_requested; /* from a signal handler */
    atomic_bool stopping;       /* export_stop() */
    _Atomic int64_t stop_deadline_ns;
    int stop_result;

    struct stats st;
};

static int64_t now_ns(void)
{
    return vigil_monotonic_ns();
}

static void wake(struct exporter *ex)
{
    uint64_t one = 1;
    ssize_t n = write(ex->efd, &one, sizeof one);
    (void)n; /* EAGAIN: already signalled */
}

static void stat_add(_Atomic uint64_t *c, uint64_t v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

static void stat_set(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, v, memory_order_relaxed);
}

static void item_free(struct item *it)
{
    free(it->bytes);
    it->bytes = NULL;
}

static void lose(struct exporter *ex, struct item *it, const char *why)
{
    stat_add(&ex->st.records_lost, it->records);
    log_err("export: batch %" PRIu64 " (%" PRIu32 " records) is lost: %s", it->seq, it->records,
            why);
    item_free(it);
}

/* ---- configuration --------------------------------------------------------- */

void export_config_defaults(struct export_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->spool_max_bytes = SPOOL_DEFAULT_MAX_BYTES;
    cfg->batch_records = BATCH_DEFAULT_RECORDS;
    cfg->batch_ms = BATCH_DEFAULT_MS;
    cfg->heartbeat_ms = EXPORT_DEFAULT_HEARTBEAT_MS;
    cfg->window_batches = EXPORT_DEFAULT_WINDOW_BATCHES;
    cfg->window_bytes = EXPORT_DEFAULT_WINDOW_BYTES;
    cfg->queue_batches = EXPORT_DEFAULT_QUEUE_BATCHES;
    cfg->resend_ms = EXPORT_DEFAULT_RESEND_MS;
}

/* ---- counters ----------------------------------------------------------------- */

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

void export_update_counters(struct exporter *ex, const struct batch_counters *c)
{
    pthread_mutex_lock(&ex->cmu);
    struct batch_counters *d = &ex->counters;
    d->packets = max_u64(d->packets, c->packets);
    d->bytes = max_u64(d->bytes, c->bytes);
    d->decode_errors = max_u64(d->decode_errors, c->decode_errors);
    d->capture_drops = max_u64(d->capture_drops, c->capture_drops);
    d->interface_drops = max_u64(d->interface_drops, c->interface_drops);
    d->flows = max_u64(d->flows, c->flows);
    d->evictions = max_u64(d->evictions, c->evictions);
    d->emergency = max_u64(d->emergency, c->emergency);
    if (c->started_ns)
        d->started_ns = c->started_ns;
    pthread_mutex_unlock(&ex->cmu);
}

void export_attach_flowtab(struct exporter *ex, const struct flowtab *table)
{
    ex->table = table;
}

/* Reads the flow table's figures; runs on the table's owner thread. */
static void refresh_flowtab(struct exporter *ex)
{
    if (!ex->table)
        return;
    struct flowtab_stats ts;
    flowtab_get_stats(ex->table, &ts);
    struct batch_counters c = {
        .flows = ts.flows_created, .evictions = ts.evictions, .emergency = ts.emergency_entered};
    export_update_counters(ex, &c);
}

/* ---- cutting batches (caller holds bmu) ----------------------------------------- */

static int cut_locked(struct exporter *ex, struct item *it, int64_t now)
{
    struct batch_counters c;
    pthread_mutex_lock(&ex->cmu);
    c = ex->counters;
    pthread_mutex_unlock(&ex->cmu);
    c.records = atomic_load_explicit(&ex->st.records_in, memory_order_relaxed);
    struct spool_stats ss;
    spool_get_stats(ex->spool, &ss);
    c.spool_bytes = ss.bytes;
    c.spool_batches = ss.batches;
    /* A damaged batch found in the spool is lost like a dropped one: both
     * are reported (AgentCounters has one pair of fields for now). */
    c.spool_dropped_batches = ss.dropped_batches + ss.quarantined_batches;
    c.spool_dropped_records = ss.dropped_records + ss.quarantined_records;

    struct batch_meta m = {
        .agent = ex->agent,
        .seq = spool_next_seq(ex->spool),
        .epoch = spool_epoch(ex->spool),
        .sent_ns = vigil_wallclock_ns(),
        .counters = &c,
    };
    int rc = batch_builder_pack(ex->builder, &m, &it->bytes, &it->len, &it->records);
    if (rc != 0) {
        /* The records stay in the builder for the next attempt; the number
         * is skipped (never stored nor sent, so never seen). */
        log_ratelimited(&ex->rl_flow, LOG_LVL_ERR, "export: cannot pack batch %" PRIu64 ": %s",
                        m.seq, vigil_strerror(rc));
        return rc;
    }
    it->seq = m.seq;
    ex->last_cut_ns = now;
    stat_add(&ex->st.batches_cut, 1);
    return 0;
}

/* Hands a batch cut by the flow thread to the exporter: the queue if it has
 * room, else the spool, else wait (back-pressure). Holding bmu keeps the
 * hand-offs in sequence order. Takes it->bytes. */
static void handoff_from_flow(struct exporter *ex, struct item *it)
{
    bool waited = false;
    int64_t give_up = 0;
    for (;;) {
        pthread_mutex_lock(&ex->qmu);
        if (ex->qcount < ex->cfg.queue_batches) {
            ex->q[(ex->qhead + ex->qcount++) % ex->cfg.queue_batches] = *it;
            pthread_mutex_unlock(&ex->qmu);
            wake(ex);
            return;
        }
        pthread_mutex_unlock(&ex->qmu);

        /* The exporter is behind: store the batch directly. */
        int rc = spool_put(ex->spool, it->seq, it->bytes, it->len, it->records);
        if (rc == 0 || rc == VIGIL_EFULL) { /* EFULL: dropped as the oldest, counted */
            if (rc == 0)
                stat_add(&ex->st.batches_spilled, 1);
            item_free(it);
            wake(ex);
            return;
        }
        if (!waited) {
            waited = true;
            stat_add(&ex->st.flow_waits, 1);
            log_ratelimited(&ex->rl_flow, LOG_LVL_ERR,
                            "export: the exporter is behind and the spool refuses batches (%s): "
                            "the flow thread waits, capture drops will follow",
                            vigil_strerror(rc));
        }
        int64_t now = now_ns();
        if (atomic_load(&ex->stop_requested)) {
            if (!give_up)
                give_up = now + (int64_t)EXPORT_DEFAULT_STOP_GRACE_MS * NS_PER_MS;
            else if (now >= give_up) {
                lose(ex, it, "stopping, and neither the exporter nor the disk can take it");
                return;
            }
        }
        pthread_mutex_lock(&ex->qmu);
        if (ex->qcount >= ex->cfg.queue_batches) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t t = (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec + FLOW_WAIT_NS;
            ts.tv_sec = (time_t)(t / NS_PER_SEC);
            ts.tv_nsec = (long)(t % NS_PER_SEC);
            pthread_cond_timedwait(&ex->qcond, &ex->qmu, &ts);
        }
        pthread_mutex_unlock(&ex->qmu);
    }
}

static void cut_and_handoff(struct exporter *ex, int64_t now)
{
    struct item it;
    refresh_flowtab(ex);
    if (cut_locked(ex, &it, now) == 0)
        handoff_from_flow(ex, &it);
}

void export_emit(void *ctx, const struct flow_record *rec)
{
    struct exporter *ex = ctx;
    pthread_mutex_lock(&ex->bmu);
    uint64_t n = atomic_fetch_add_explicit(&ex->st.records_in, 1, memory_order_relaxed) + 1;
    if (n % FLOWTAB_REFRESH_EVERY == 1)
        refresh_flowtab(ex);
    int64_t now = batch_builder_count(ex->builder) == 0 ? now_ns() : 0;
    if (!batch_builder_add(ex->builder, rec, now)) {
        /* Still full: the last cut failed (out of memory). Try again. */
        cut_and_handoff(ex, now_ns());
        if (!batch_builder_add(ex->builder, rec, now_ns())) {
            stat_add(&ex->st.records_lost, 1);
            log_ratelimited(&ex->rl_flow, LOG_LVL_ERR,
                            "export: a flow record is lost: the batch cannot be packed");
            pthread_mutex_unlock(&ex->bmu);
            return;
        }
    }
    if (batch_builder_full(ex->builder))
        cut_and_handoff(ex, now_ns());
    pthread_mutex_unlock(&ex->bmu);
}

void export_request_stop(struct exporter *ex)
{
    atomic_store(&ex->stop_requested, true);
}

/* ---- memory window (exporter thread) ---------------------------------------------- */

static uint32_t mem_find(struct exporter *ex, uint64_t seq) /* first index with seq >= seq */
{
    uint32_t lo = 0, hi = ex->mem_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (ex->mem[mid].it.seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void mem_remove_at(struct exporter *ex, uint32_t i)
{
    struct mem_entry *e = &ex->mem[i];
    ex->mem_bytes -= e->it.len;
    if (!e->spooled) {
        ex->unspooled--;
        ex->unspooled_bytes -= e->it.len;
    }
    item_free(&e->it);
    memmove(e, e + 1, (ex->mem_count - i - 1) * sizeof *e);
    ex->mem_count--;
    stat_set(&ex->st.unspooled, ex->unspooled);
}

/* Room for one more batch of len bytes. An unspooled batch may push out
 * spooled copies (newest first: they are needed last); a spooled copy only
 * takes free room. */
static bool mem_make_room(struct exporter *ex, size_t len, bool unspooled)
{
    uint32_t cap = ex->cfg.window_batches;
    uint64_t max = ex->cfg.window_bytes;
    if (!unspooled)
        return ex->mem_count < cap && ex->mem_bytes + len <= max;
    if (ex->unspooled + 1 > cap || ex->unspooled_bytes + len > max)
        return false;
    for (uint32_t i = ex->mem_count; i-- > 0 && (ex->mem_count >= cap || ex->mem_bytes + len > max);)
        if (ex->mem[i].spooled)
            mem_remove_at(ex, i);
    return ex->mem_count < cap && ex->mem_bytes + len <= max;
}

static void mem_insert(struct exporter *ex, struct item *it, bool spooled)
{
    uint32_t i = mem_find(ex, it->seq);
    memmove(&ex->mem[i + 1], &ex->mem[i], (ex->mem_count - i) * sizeof *ex->mem);
    ex->mem[i].it = *it;
    ex->mem[i].spooled = spooled;
    ex->mem_count++;
    ex->mem_bytes += it->len;
    if (!spooled) {
        ex->unspooled++;
        ex->unspooled_bytes += it->len;
    }
    stat_set(&ex->st.unspooled, ex->unspooled);
}

/* Stores a newly cut batch (takes it->bytes on success). Returns 0 (stored
 * or dropped by the spool's bound, or kept in memory), or VIGIL_EAGAIN: the
 * disk refused it and memory has no room; the caller keeps it. force: try
 * the disk even within the retry pause. */
static int place(struct exporter *ex, struct item *it, int64_t now, bool force)
{
    int rc = VIGIL_EAGAIN;
    if (it->seq <= ex->acked) { /* cannot happen: nothing unsent is acked */
        item_free(it);
        return 0;
    }
    if (force || now >= ex->disk_retry_ns)
        rc = spool_put(ex->spool, it->seq, it->bytes, it->len, it->records);
    if (rc == VIGIL_EFULL) { /* it was the oldest beyond the bound: counted */
        item_free(it);
        return 0;
    }
    if (rc == 0) {
        if (mem_make_room(ex, it->len, false))
            mem_insert(ex, it, true);
        else
            item_free(it);
        return 0;
    }
    if (now >= ex->disk_retry_ns)
        ex->disk_retry_ns = now + DISK_RETRY_NS;
    if (!mem_make_room(ex, it->len, true))
        return VIGIL_EAGAIN;
    mem_insert(ex, it, false);
    log_ratelimited(&ex->rl_disk, LOG_LVL_ERR,
                    "export: the spool cannot store batches (%s): %" PRIu32
                    " batches are kept in memory until it can (room for %" PRIu32 ")",
                    rc == VIGIL_EAGAIN ? "retrying shortly" : vigil_strerror(rc), ex->unspooled,
                    ex->cfg.window_batches);
    return 0;
}

/* Stores memory-only batches once the disk takes them again. */
static void retry_unspooled(struct exporter *ex, int64_t now)
{
    if (!ex->unspooled || now < ex->disk_retry_ns)
        return;
    for (uint32_t i = 0; i < ex->mem_count; i++) {
        struct mem_entry *e = &ex->mem[i];
        if (e->spooled)
            continue;
        int rc = spool_put(ex->spool, e->it.seq, e->it.bytes, e->it.len, e->it.records);
        if (rc == VIGIL_EFULL) {
            mem_remove_at(ex, i--);
            continue;
        }
        if (rc != 0) {
            ex->disk_retry_ns = now + DISK_RETRY_NS;
            return;
        }
        e->spooled = true;
        ex->unspooled--;
        ex->unspooled_bytes -= e->it.len;
    }
    stat_set(&ex->st.unspooled, ex->unspooled);
    log_info("export: the spool stores batches again");
}

/* Takes batches from the hand-off queue (the held slot first). */
static void drain_queue(struct exporter *ex, int64_t now, bool force)
{
    if (ex->has_held) {
        if (place(ex, &ex->held, now, force) != 0)
            return;
        ex->has_held = false;
    }
    for (;;) {
        pthread_mutex_lock(&ex->qmu);
        if (ex->qcount == 0) {
            pthread_mutex_unlock(&ex->qmu);
            return;
        }
        /* Only this thread removes entries, so the head stays put. */
        struct item *head = &ex->q[ex->qhead];
        pthread_mutex_unlock(&ex->qmu);
        if (place(ex, head, now, force) != 0)
            return;
        pthread_mutex_lock(&ex->qmu);
        ex->qhead = (ex->qhead + 1) % ex->cfg.queue_batches;
        ex->qcount--;
        pthread_cond_signal(&ex->qcond);
        pthread_mutex_unlock(&ex->qmu);
    }
}

/* Cuts the partial batch when its oldest record has waited batch_ms, or
 * an empty one when nothing was cut for heartbeat_ms. */
static void maybe_time_cut(struct exporter *ex, int64_t now, bool final)
{
    pthread_mutex_lock(&ex->qmu);
    uint32_t queued = ex->qcount;
    pthread_mutex_unlock(&ex->qmu);
    if ((queued || ex->has_held) && !final)
        return; /* earlier batches first */
    if (final)
        pthread_mutex_lock(&ex->bmu);
    else if (pthread_mutex_trylock(&ex->bmu) != 0)
        return; /* the flow thread is cutting or waiting: it flushes by size */
    uint32_t n = batch_builder_count(ex->builder);
    int64_t oldest = batch_builder_oldest_ns(ex->builder);
    /* Heartbeats only while connected: during an outage they would fill
     * the spool with empty batches, and the counters they carry are
     * running totals that the next batch brings anyway. */
    bool due = final ? n > 0
                     : (n > 0 && now - oldest >= (int64_t)ex->cfg.batch_ms * NS_PER_MS) ||
                           (ex->cfg.heartbeat_ms != EXPORT_HEARTBEAT_OFF &&
                            atomic_load(&ex->st.connected) &&
                            now - ex->last_cut_ns >= (int64_t)ex->cfg.heartbeat_ms * NS_PER_MS);
    /* An unplaceable cut is held; only cut when memory could hold it. */
    if (due && !final && ex->unspooled >= ex->cfg.window_batches)
        due = false;
    struct item it;
    int rc = due ? cut_locked(ex, &it, now) : VIGIL_EAGAIN;
    pthread_mutex_unlock(&ex->bmu);
    if (rc != 0)
        return;
    if (place(ex, &it, now, final) != 0) {
        ex->held = it;
        ex->has_held = true;
    }
}

/* ---- network (exporter thread) ------------------------------------------------------ */

static void rewind_sending(struct exporter *ex, const char *why)
{
    if (ex->if_count == 0 && ex->send_next == ex->acked + 1)
        return;
    log_ratelimited(&ex->rl_net, LOG_LVL_INFO, "export: %s: resending from batch %" PRIu64, why,
                    ex->acked + 1);
    ex->send_next = ex->acked + 1;
    ex->if_head = ex->if_count = 0;
    stat_set(&ex->st.in_flight, 0);
    stat_add(&ex->st.resends, 1);
}

static void handle_ack(struct exporter *ex, const Vigil__Ack *ack, int64_t now)
{
    uint64_t a = ack->seq;
    stat_add(&ex->st.acks, 1);
    atomic_store(&ex->st.connected, true); /* in case the handshake event was missed */
    if (a > ex->highest_sent) {
        log_ratelimited(&ex->rl_ack, LOG_LVL_WARN,
                        "export: the aggregator acknowledged batch %" PRIu64
                        ", beyond the newest one sent (%" PRIu64
                        "): ignoring the excess (does it hold another installation's state?)",
                        a, ex->highest_sent);
        a = ex->highest_sent;
    }
    if (a <= ex->acked)
        return;
    ex->acked = a;
    stat_set(&ex->st.acked_through, a);
    ex->remove_pending = true;
    uint32_t n = mem_find(ex, a + 1);
    while (n-- > 0)
        mem_remove_at(ex, 0);
    while (ex->if_count && ex->inflight[ex->if_head] <= a) {
        ex->if_head = (ex->if_head + 1) % ex->cfg.window_batches;
        ex->if_count--;
    }
    stat_set(&ex->st.in_flight, ex->if_count);
    if (ex->send_next <= a)
        ex->send_next = a + 1;
    ex->last_progress_ns = now;
    ex->resend_ns = (int64_t)ex->cfg.resend_ms * NS_PER_MS;
}

static void receive_all(struct exporter *ex, int64_t now)
{
    for (;;) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, ex->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            return;
        }
        bool more = zmq_msg_more(&msg);
        Vigil__Envelope *env = NULL;
        char why[160] = "";
        enum envelope_error e = more ? ENV_INVALID
                                     : envelope_unpack(zmq_msg_data(&msg), zmq_msg_size(&msg),
                                                       vigil_wallclock_ns(), &env, why, sizeof why);
        if (more) {
            snprintf(why, sizeof why, "more than one frame");
            while (more) { /* drop the rest of the message */
                zmq_msg_close(&msg);
                zmq_msg_init(&msg);
                if (zmq_msg_recv(&msg, ex->sock, ZMQ_DONTWAIT) < 0)
                    break;
                more = zmq_msg_more(&msg);
            }
        }
        zmq_msg_close(&msg);
        if (e != ENV_OK) {
            stat_add(&ex->st.bad_messages, 1);
            log_ratelimited(&ex->rl_bad, LOG_LVL_WARN,
                            "export: dropped an invalid message from the aggregator (%s): %s",
                            envelope_error_name(e), why);
            continue;
        }
        if (env->body_case == VIGIL__ENVELOPE__BODY_ACK) {
            handle_ack(ex, env->ack, now);
        } else if (env->body_case == VIGIL__ENVELOPE__BODY_COMMAND && ex->has_ctl) {
            stat_add(&ex->st.commands, 1);
            ex->ctl.on_command(ex->ctl.ctx, env->command);
            ex->status_due = true;
        } else {
            stat_add(&ex->st.ignored_messages, 1);
            log_ratelimited(&ex->rl_bad, LOG_LVL_INFO,
                            "export: ignored a message from the aggregator (body %d): this agent "
                            "does not handle it",
                            (int)env->body_case);
        }
        envelope_free(env);
    }
}

/* The socket to the aggregator and its connection monitor. On failure
 * the caller closes what was made. */
static int open_socket(struct exporter *ex, char *err, size_t errlen)
{
    char terr[256] = "", mon_ep[80];
    ex->sock = transport_client(ex->ctx, ex->endpoint, ex->cfg.insecure ? NULL : ex->server_key,
                                ex->cfg.insecure ? NULL : &ex->client, ex->cfg.insecure, terr,
                                sizeof terr);
    if (!ex->sock) {
        snprintf(err, errlen, "export: %s", terr);
        return -1;
    }
    snprintf(mon_ep, sizeof mon_ep, "inproc://vigil-export-monitor-%p-%u", (void *)ex,
             ex->sock_gen++);
    if (zmq_socket_monitor(ex->sock, mon_ep,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0 ||
        !(ex->mon = zmq_socket(ex->ctx, ZMQ_PAIR)) || zmq_connect(ex->mon, mon_ep) != 0) {
        snprintf(err, errlen, "export: connection monitor: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    int zero = 0;
    zmq_setsockopt(ex->mon, ZMQ_LINGER, &zero, sizeof zero);
    return 0;
}

static void close_socket(struct exporter *ex)
{
    if (ex->mon) {
        zmq_socket_monitor(ex->sock, NULL, 0);
        zmq_close(ex->mon);
        ex->mon = NULL;
    }
    if (ex->sock) {
        zmq_close(ex->sock);
        ex->sock = NULL;
    }
}

/* A refused socket, replaced once REFUSED_RETRY_NS has passed; batches
 * wait meanwhile as for any lost connection. */
static void retry_refused(struct exporter *ex, int64_t now)
{
    char err[320];
    if (!ex->refused_ns || now - ex->refused_ns < REFUSED_RETRY_NS)
        return;
    ex->refused_ns = 0;
    close_socket(ex);
    if (open_socket(ex, err, sizeof err) != 0) {
        log_ratelimited(&ex->rl_net, LOG_LVL_ERR, "%s (tried again in %d s)", err,
                        (int)(REFUSED_RETRY_NS / NS_PER_SEC));
        close_socket(ex);
        ex->refused_ns = now;
        return;
    }
    rewind_sending(ex, "reconnecting");
}

static void handle_monitor(struct exporter *ex)
{
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, ex->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        uint16_t event = 0;
        if (zmq_msg_size(&m) >= 6)
            memcpy(&event, zmq_msg_data(&m), sizeof event);
        while (zmq_msg_more(&m)) { /* the endpoint frame */
            zmq_msg_close(&m);
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, ex->mon, ZMQ_DONTWAIT) < 0)
                break;
        }
        zmq_msg_close(&m);
        switch (event) {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
            ex->refused_ns = 0;
            atomic_store(&ex->st.connected, true);
            ex->status_due = true; /* tells the aggregator where to send orders */
            log_info("export: connected to the aggregator at %s%s", ex->endpoint,
                     ex->cfg.insecure ? " (insecure: no encryption, no authentication)" : "");
            /* Whatever was in flight on an old connection may be gone. */
            rewind_sending(ex, "reconnected");
            ex->resend_ns = (int64_t)ex->cfg.resend_ms * NS_PER_MS;
            ex->last_progress_ns = now_ns();
            break;
        case ZMQ_EVENT_DISCONNECTED:
            if (atomic_exchange(&ex->st.connected, false))
                log_warn("export: lost the aggregator at %s: batches wait in the spool",
                         ex->endpoint);
            /* What was in flight may be lost with the connection; libzmq
             * reconnects by itself, and the next batch on the new
             * connection must be the oldest unacknowledged one. */
            rewind_sending(ex, "disconnected");
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            log_ratelimited(&ex->rl_net, LOG_LVL_ERR,
                            "export: the aggregator at %s refused the handshake (%s): check "
                            "--key, --server-key and the aggregator's allow list (tried again "
                            "every %d s)",
                            ex->endpoint,
                            event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? "authentication"
                                                                     : "protocol",
                            (int)(REFUSED_RETRY_NS / NS_PER_SEC));
            if (!ex->refused_ns)
                ex->refused_ns = now_ns();
            break;
        default: break;
        }
    }
}

enum where { W_NONE, W_MEM, W_SPOOL, W_HELD, W_QUEUE };

/* The smallest unsent sequence >= send_next, and where it is. The order of
 * the checks matters (see the file comment): memory, spool, held, queue. */
static uint64_t next_candidate(struct exporter *ex, enum where *where)
{
    uint64_t best = 0, s;
    *where = W_NONE;
    uint32_t i = mem_find(ex, ex->send_next);
    if (i < ex->mem_count) {
        best = ex->mem[i].it.seq;
        *where = W_MEM;
    }
    if (spool_next_after(ex->spool, ex->send_next - 1, &s) == 0 && (!best || s < best)) {
        best = s;
        *where = W_SPOOL;
    }
    if (ex->has_held && (!best || ex->held.seq < best)) {
        best = ex->held.seq;
        *where = W_HELD;
    }
    pthread_mutex_lock(&ex->qmu);
    if (ex->qcount && (!best || ex->q[ex->qhead].seq < best)) {
        best = ex->q[ex->qhead].seq;
        *where = W_QUEUE;
    }
    pthread_mutex_unlock(&ex->qmu);
    return best;
}

static void send_some(struct exporter *ex, int64_t now)
{
    ex->want_pollout = false;
    while (ex->if_count < ex->cfg.window_batches) {
        enum where where;
        uint64_t seq = next_candidate(ex, &where);
        if (where == W_NONE || where == W_HELD || where == W_QUEUE)
            return; /* nothing, or the next one is not stored yet */
        struct item tmp = {0};
        const struct item *it;
        if (where == W_MEM) {
            struct mem_entry *e = &ex->mem[mem_find(ex, seq)];
            if (!e->spooled) {
                /* Its number must be on disk before anyone sees it. */
                struct spool_stats ss;
                spool_get_stats(ex->spool, &ss);
                if (ss.durable_next_seq <= seq) {
                    if (now < ex->disk_retry_ns || spool_sync_state(ex->spool) != 0) {
                        if (now >= ex->disk_retry_ns)
                            ex->disk_retry_ns = now + DISK_RETRY_NS;
                        return;
                    }
                }
            }
            it = &e->it;
        } else {
            int rc = spool_read(ex->spool, seq, &tmp.bytes, &tmp.len, &tmp.records);
            if (rc == VIGIL_EBADMSG || rc == VIGIL_ENOENT) {
                ex->send_next = seq + 1; /* quarantined (counted) or just dropped */
                continue;
            }
            if (rc != 0) {
                log_ratelimited(&ex->rl_disk, LOG_LVL_ERR,
                                "export: cannot read batch %" PRIu64 " from the spool: %s", seq,
                                vigil_strerror(rc));
                return;
            }
            tmp.seq = seq;
            it = &tmp;
        }
        /* A disconnect seen now (even one followed by a reconnect) means
         * the batches in flight went with the old connection: start over
         * from the oldest unacknowledged before anything else goes out on
         * the new one. libzmq reports the disconnect before it can
         * reconnect (>= 100 ms later), so checking right before the send
         * is enough. */
        uint64_t before = ex->send_next;
        handle_monitor(ex);
        if (ex->send_next != before) { /* rewound: pick again */
            item_free(&tmp);
            continue;
        }
        if (zmq_send(ex->sock, it->bytes, it->len, ZMQ_DONTWAIT) < 0) {
            int e = zmq_errno();
            if (e == EAGAIN) {
                /* No connection (ZMQ_IMMEDIATE: our in-flight window is far
                 * below the high-water mark), so what was in flight is gone
                 * even if the disconnect event has not been read yet. */
                ex->want_pollout = true;
                atomic_store(&ex->st.connected, false);
                rewind_sending(ex, "no connection");
            } else
                log_ratelimited(&ex->rl_net, LOG_LVL_ERR, "export: send to %s failed: %s",
                                ex->endpoint, zmq_strerror(e));
            item_free(&tmp);
            return;
        }
        stat_add(&ex->st.sends, 1);
        if (tmp.bytes) { /* keep the copy if there is free room: a resend needs no read */
            if (mem_make_room(ex, tmp.len, false))
                mem_insert(ex, &tmp, true);
            else
                item_free(&tmp);
        }
        if (ex->if_count == 0)
            ex->last_progress_ns = now; /* the resend timer starts with the oldest unacked */
        ex->inflight[(ex->if_head + ex->if_count++) % ex->cfg.window_batches] = seq;
        stat_set(&ex->st.in_flight, ex->if_count);
        ex->send_next = seq + 1;
        if (seq > ex->highest_sent)
            ex->highest_sent = seq;
    }
}

static void check_resend(struct exporter *ex, int64_t now)
{
    if (ex->if_count == 0 || now - ex->last_progress_ns < ex->resend_ns)
        return;
    char why[96];
    snprintf(why, sizeof why, "no acknowledgement for %" PRId64 " ms",
             (now - ex->last_progress_ns) / NS_PER_MS);
    rewind_sending(ex, why);
    ex->last_progress_ns = now;
    ex->resend_ns *= 2;
    if (ex->resend_ns > (int64_t)EXPORT_MAX_RESEND_MS * NS_PER_MS)
        ex->resend_ns = (int64_t)EXPORT_MAX_RESEND_MS * NS_PER_MS;
}

/* Drops memory copies of batches the spool's bound removed (they were
 * counted there and must not be sent). */
static void discard_dropped(struct exporter *ex)
{
    if (!ex->mem_count)
        return;
    struct spool_stats ss;
    spool_get_stats(ex->spool, &ss);
    for (uint32_t i = 0; i < ex->mem_count && ex->mem[i].it.seq <= ss.removed_through; i++)
        if (ex->mem[i].spooled && ex->mem[i].it.seq > ex->acked)
            mem_remove_at(ex, i--);
}

static void flush_removals(struct exporter *ex, int64_t now)
{
    if (!ex->remove_pending || now < ex->disk_retry_ns)
        return;
    if (spool_remove_through(ex->spool, ex->acked) == 0)
        ex->remove_pending = false;
    else
        ex->disk_retry_ns = now + DISK_RETRY_NS;
}

static bool all_delivered(struct exporter *ex)
{
    uint64_t s;
    pthread_mutex_lock(&ex->qmu);
    uint32_t queued = ex->qcount;
    pthread_mutex_unlock(&ex->qmu);
    return !queued && !ex->has_held && mem_find(ex, ex->acked + 1) == ex->mem_count &&
           spool_next_after(ex->spool, ex->acked, &s) != 0;
}

/* At exit: everything not acked must be on disk; what cannot be is lost. */
static void finish(struct exporter *ex)
{
    int64_t now = now_ns();
    drain_queue(ex, now, true);
    if (ex->has_held) {
        lose(ex, &ex->held, "the disk refuses it");
        ex->has_held = false;
    }
    for (;;) { /* queue entries that found neither disk nor memory */
        pthread_mutex_lock(&ex->qmu);
        if (!ex->qcount) {
            pthread_mutex_unlock(&ex->qmu);
            break;
        }
        struct item it = ex->q[ex->qhead];
        ex->qhead = (ex->qhead + 1) % ex->cfg.queue_batches;
        ex->qcount--;
        pthread_mutex_unlock(&ex->qmu);
        lose(ex, &it, "the disk refuses it");
    }
    ex->disk_retry_ns = 0;
    retry_unspooled(ex, now);
    bool lost = false;
    for (uint32_t i = 0; i < ex->mem_count; i++) {
        if (!ex->mem[i].spooled && ex->mem[i].it.seq > ex->acked) {
            lose(ex, &ex->mem[i].it, "the disk refuses it");
            lost = true;
        }
    }
    ex->disk_retry_ns = 0;
    flush_removals(ex, now);
    uint64_t s;
    if (lost || atomic_load(&ex->st.records_lost))
        ex->stop_result = VIGIL_EIO;
    else if (spool_next_after(ex->spool, ex->acked, &s) == 0)
        ex->stop_result = VIGIL_EAGAIN;
    else
        ex->stop_result = 0;
}

/* Runs the control's tick and sends its status when one is due. */
static void control_step(struct exporter *ex, int64_t now)
{
    if (!ex->has_ctl)
        return;
    if (ex->ctl.tick)
        ex->ctl.tick(ex->ctl.ctx);
    if (atomic_exchange(&ex->status_asked, false))
        ex->status_due = true;
    if (!atomic_load(&ex->st.connected))
        return;
    bool busy = ex->ctl.busy && ex->ctl.busy(ex->ctl.ctx);
    int64_t every = (int64_t)(busy ? EXPORT_STATUS_BUSY_MS : EXPORT_STATUS_IDLE_MS);
    if (!ex->status_due && now - ex->last_status_ns < every * NS_PER_MS)
        return;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (ex->ctl.pack_status(ex->ctl.ctx, ex->agent, &buf, &len) != 0) {
        log_ratelimited(&ex->rl_net, LOG_LVL_ERR, "export: cannot pack the agent's status");
        ex->last_status_ns = now;
        return;
    }
    if (zmq_send(ex->sock, buf, len, ZMQ_DONTWAIT) == (int)len) {
        stat_add(&ex->st.statuses, 1);
        ex->status_due = false;
        ex->last_status_ns = now;
    } /* else no connection after all: tried again on the next turn */
    free(buf);
}

void export_status_now(struct exporter *ex)
{
    if (!ex)
        return;
    atomic_store(&ex->status_asked, true);
    wake(ex);
}

void export_set_control(struct exporter *ex, const struct export_control *ctl)
{
    ex->ctl = *ctl;
    ex->has_ctl = ctl->on_command && ctl->pack_status;
}

static void *export_thread(void *arg)
{
    struct exporter *ex = arg;
    bool final_done = false;
    for (;;) {
        int64_t now = now_ns();
        handle_monitor(ex);
        retry_refused(ex, now);
        receive_all(ex, now);
        flush_removals(ex, now);
        retry_unspooled(ex, now);
        drain_queue(ex, now, false);
        bool stopping = atomic_load(&ex->stopping);
        if (stopping && !final_done) {
            maybe_time_cut(ex, now, true);
            final_done = true;
        } else if (!stopping) {
            maybe_time_cut(ex, now, false);
        }
        discard_dropped(ex);
        check_resend(ex, now);
        send_some(ex, now);
        control_step(ex, now);

        int timeout = TICK_MS;
        if (stopping) {
            flush_removals(ex, now);
            int64_t left = atomic_load(&ex->stop_deadline_ns) - now;
            /* a last status asked for goes out too, if the aggregator is there */
            bool status_left = ex->has_ctl && (ex->status_due ||
                                               atomic_load(&ex->status_asked)) &&
                               atomic_load(&ex->st.connected);
            if ((all_delivered(ex) && !status_left) || left <= 0)
                break;
            if (left < (int64_t)TICK_MS * NS_PER_MS)
                timeout = (int)(left / NS_PER_MS) + 1;
        }
        zmq_pollitem_t items[3] = {
            /* fd -1: a socket a failed retry left unmade is not polled */
            {ex->sock, ex->sock ? 0 : -1,
             (short)(ZMQ_POLLIN | (ex->want_pollout ? ZMQ_POLLOUT : 0)), 0},
            {ex->mon, ex->mon ? 0 : -1, ZMQ_POLLIN, 0},
            {NULL, ex->efd, ZMQ_POLLIN, 0},
        };
        if (zmq_poll(items, 3, timeout) < 0 && zmq_errno() != EINTR) {
            log_ratelimited(&ex->rl_net, LOG_LVL_ERR, "export: poll: %s",
                            zmq_strerror(zmq_errno()));
            struct timespec ts = {0, TICK_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (items[2].revents & ZMQ_POLLIN) {
            uint64_t v;
            ssize_t n = read(ex->efd, &v, sizeof v);
            (void)n;
        }
    }
    finish(ex);
    return NULL;
}

/* ---- life cycle ------------------------------------------------------------------------ */

struct exporter *export_create(const struct export_config *cfg, char *err, size_t errlen)
{
    struct exporter *ex = calloc(1, sizeof *ex);
    if (!ex) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ex->efd = -1;
    ex->cfg = *cfg;
    pthread_mutex_init(&ex->bmu, NULL);
    pthread_mutex_init(&ex->cmu, NULL);
    pthread_mutex_init(&ex->qmu, NULL);
    pthread_cond_init(&ex->qcond, NULL);

    if (!cfg->endpoint || !cfg->spool_dir) {
        snprintf(err, errlen, "export: an aggregator endpoint and a spool folder are needed");
        goto fail;
    }
    /* The window stays well below the socket's high-water mark, so a send
     * that would block always means "no connection" (see send_some). */
    if (cfg->batch_records == 0 || cfg->batch_records > BATCH_MAX_RECORDS || cfg->batch_ms == 0 ||
        cfg->window_batches == 0 || cfg->window_batches > EXPORT_MAX_WINDOW_BATCHES ||
        cfg->window_bytes == 0 || cfg->queue_batches == 0 || cfg->resend_ms == 0) {
        snprintf(err, errlen,
                 "export: batch records must be 1..%u, the window 1..%u batches; batch time, "
                 "window bytes, queue and resend time must be positive",
                 BATCH_MAX_RECORDS, EXPORT_MAX_WINDOW_BATCHES);
        goto fail;
    }
    if (snprintf(ex->endpoint, sizeof ex->endpoint, "%s", cfg->endpoint) >=
        (int)sizeof ex->endpoint) {
        snprintf(err, errlen, "export: the aggregator endpoint is too long");
        goto fail;
    }
    if (cfg->agent_name) {
        snprintf(ex->agent, sizeof ex->agent, "%s", cfg->agent_name);
    } else if (gethostname(ex->agent, sizeof ex->agent) != 0) {
        ex->agent[0] = '\0';
    }
    ex->agent[sizeof ex->agent - 1] = '\0';
    if (!key_name_valid(ex->agent)) {
        snprintf(err, errlen,
                 "export: the agent name '%s' is not valid (1..%d of A-Z a-z 0-9 . _ -; it "
                 "must match the agent's key name on the aggregator)",
                 ex->agent, KEY_NAME_MAX);
        goto fail;
    }
    if (!cfg->insecure) {
        if (!cfg->server_public_z85 || !cfg->client) {
            snprintf(err, errlen, "export: the aggregator's public key and the agent's keys are "
                                  "needed (or --insecure)");
            goto fail;
        }
        snprintf(ex->server_key, sizeof ex->server_key, "%s", cfg->server_public_z85);
        ex->client = *cfg->client;
    }
    ex->cfg.endpoint = ex->endpoint;
    ex->cfg.agent_name = ex->agent;
    ex->cfg.server_public_z85 = NULL;
    ex->cfg.client = NULL;
    ex->cfg.spool_dir = NULL; /* not kept */

    ex->builder = batch_builder_create(cfg->batch_records);
    ex->q = calloc(cfg->queue_batches, sizeof *ex->q);
    ex->mem = calloc(cfg->window_batches, sizeof *ex->mem);
    ex->inflight = calloc(cfg->window_batches, sizeof *ex->inflight);
    if (!ex->builder || !ex->q || !ex->mem || !ex->inflight) {
        snprintf(err, errlen, "export: out of memory");
        goto fail;
    }
    ex->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ex->efd < 0) {
        snprintf(err, errlen, "export: eventfd: %s", strerror(errno));
        goto fail;
    }

    ex->spool = spool_open(cfg->spool_dir, cfg->spool_max_bytes, err, errlen);
    if (!ex->spool)
        goto fail;
    struct spool_stats ss;
    spool_get_stats(ex->spool, &ss);
    ex->acked = ss.removed_through;
    ex->send_next = ex->acked + 1;
    ex->highest_sent = ss.newest_seq > ex->acked ? ss.newest_seq : ex->acked;
    if (ss.batches)
        log_info("export: %" PRIu64 " batches (%" PRIu64 " records) wait in the spool %s",
                 ss.batches, ss.records, cfg->spool_dir);

    ex->ctx = cfg->zmq_ctx;
    if (!ex->ctx) {
        ex->ctx = zmq_ctx_new();
        ex->own_ctx = true;
        if (!ex->ctx) {
            snprintf(err, errlen, "export: zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
            goto fail;
        }
    }
    if (open_socket(ex, err, errlen) != 0)
        goto fail;

    pthread_mutex_lock(&ex->cmu);
    ex->counters.started_ns = vigil_wallclock_ns();
    pthread_mutex_unlock(&ex->cmu);
    ex->last_cut_ns = now_ns();
    ex->resend_ns = (int64_t)cfg->resend_ms * NS_PER_MS;
    if (cfg->insecure)
        log_warn("export: INSECURE: batches go to %s unencrypted and unauthenticated",
                 ex->endpoint);
    return ex;
fail:
    export_destroy(ex);
    return NULL;
}

int export_start(struct exporter *ex)
{
    if (ex->started)
        return VIGIL_EINVAL;
    int rc = pthread_create(&ex->thread, NULL, export_thread, ex);
    if (rc != 0)
        return -rc;
    ex->started = true;
    return 0;
}

int export_stop(struct exporter *ex, uint32_t grace_ms)
{
    atomic_store(&ex->stop_deadline_ns, now_ns() + (int64_t)grace_ms * NS_PER_MS);
    atomic_store(&ex->stopping, true);
    atomic_store(&ex->stop_requested, true);
    if (ex->started) {
        wake(ex);
        pthread_join(ex->thread, NULL);
        ex->started = false;
    } else {
        /* Never ran: store the last records, send nothing. */
        maybe_time_cut(ex, now_ns(), true);
        finish(ex);
    }
    struct spool_stats ss;
    spool_get_stats(ex->spool, &ss);
    if (ss.batches)
        log_info("export: %" PRIu64 " batches (%" PRIu64 " records) stay in the spool for the "
                 "next start",
                 ss.batches, ss.records);
    return ex->stop_result;
}

void export_destroy(struct exporter *ex)
{
    if (!ex)
        return;
    if (ex->started)
        export_stop(ex, 0);
    close_socket(ex);
    if (ex->own_ctx && ex->ctx)
        zmq_ctx_term(ex->ctx);
    spool_close(ex->spool);
    if (ex->q) {
        for (uint32_t i = 0; i < ex->qcount; i++)
            free(ex->q[(ex->qhead + i) % ex->cfg.queue_batches].bytes);
        free(ex->q);
    }
    if (ex->mem) {
        for (uint32_t i = 0; i < ex->mem_count; i++)
            free(ex->mem[i].it.bytes);
        free(ex->mem);
    }
    if (ex->has_held)
        free(ex->held.bytes);
    free(ex->inflight);
    batch_builder_destroy(ex->builder);
    if (ex->efd >= 0)
        close(ex->efd);
    pthread_cond_destroy(&ex->qcond);
    pthread_mutex_destroy(&ex->qmu);
    pthread_mutex_destroy(&ex->cmu);
    pthread_mutex_destroy(&ex->bmu);
    explicit_bzero(&ex->client, sizeof ex->client);
    free(ex);
}

void export_get_stats(struct exporter *ex, struct export_stats *out)
{
    memset(out, 0, sizeof *out);
    out->records_in = atomic_load(&ex->st.records_in);
    out->records_lost = atomic_load(&ex->st.records_lost);
    out->batches_cut = atomic_load(&ex->st.batches_cut);
    out->batches_spilled = atomic_load(&ex->st.batches_spilled);
    out->sends = atomic_load(&ex->st.sends);
    out->resends = atomic_load(&ex->st.resends);
    out->acks = atomic_load(&ex->st.acks);
    out->acked_through = atomic_load(&ex->st.acked_through);
    out->bad_messages = atomic_load(&ex->st.bad_messages);
    out->ignored_messages = atomic_load(&ex->st.ignored_messages);
    out->commands = atomic_load(&ex->st.commands);
    out->statuses = atomic_load(&ex->st.statuses);
    out->unspooled = atomic_load(&ex->st.unspooled);
    out->in_flight = atomic_load(&ex->st.in_flight);
    out->flow_waits = atomic_load(&ex->st.flow_waits);
    out->connected = atomic_load(&ex->st.connected);
}

void export_get_spool_stats(struct exporter *ex, struct spool_stats *out)
{
    spool_get_stats(ex->spool, out);
}

struct spool *export__spool(struct exporter *ex)
{
    return ex->spool;
}
