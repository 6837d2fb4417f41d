/* detect_thread.c — the detection engine on its own thread, fed through a
 * bounded queue (see detect_thread.h for the contract).
 *
 * The queue is a ring of DETECT_QUEUE_SLOTS batch copies under one mutex
 * with two condition variables: `work` (the detection thread sleeps on it,
 * with a deadline, so ticks keep coming when no batch does) and `space`
 * (the ingest thread waits on it when the ring or its byte budget is
 * full). One producer, one consumer; a batch leaves the ring only after
 * the engine has run it, so the bound covers the batch being judged too.
 * The lock is held for a few stores per batch, never while copying or
 * judging.
 *
 * A copy is one allocation: the record pointers, the records (each struct
 * as received) and then every string and bytes field they point to. Which
 * fields those are is read from the protobuf descriptor at start, so a
 * field the detectors begin to read later is copied already; a field the
 * copy could not carry (a sub-message, a repeated field) refuses the start,
 * loudly, rather than judging less than the synchronous engine would. */
#include "detect_thread.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alerts.h"
#include "detect_int.h"
#include "err.h"
#include "log.h"
#include "store_int.h"

#define PLAN_MAX 64 /* pointer fields of FlowRecord the copy fixes up */

/* One pointer field of Vigil__FlowRecord. */
struct field_plan {
    size_t offset;
    bool bytes; /* ProtobufCBinaryData; else a NUL-terminated string */
};

struct slot {
    void *mem;          /* the copy (malloc); freed by the detection thread */
    size_t bytes;       /* its size, for the byte budget */
    Vigil__FlowBatch b; /* records and agent point into mem */
    const char *agent;  /* in mem */
};

struct detect_thread {
    struct detect *d;   /* borrowed; run by the thread until stop */
    struct store *s;    /* borrowed */
    pthread_t tid;
    bool started, stopped; /* stopped: by detect_thread_stop (ingest thread) */
    int64_t tick_ns, tick_max_ns; /* detection thread's: time in detect_tick */
    struct field_plan plan[PLAN_MAX];
    unsigned nplan;

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t work, space;
    struct slot ring[DETECT_QUEUE_SLOTS];
    unsigned head, n;   /* ring[head] is judged next; n waiting (the one judged included) */
    size_t bytes;       /* of the n copies */
    bool stopping;
    struct detect_thread_stats st;

    /* New alerts waiting for the ingest thread's hook (rare: a list that
     * grows up to DETECT_THREAD_ALERTS_MAX, handed over whole). */
    struct alert *alerts;
    unsigned n_alerts, alerts_cap;
    void (*hook)(void *ctx, const struct alert *a); /* the engine's, taken over */
    void *hook_ctx;

    struct log_ratelimit rl_lost; /* ingest thread */
};

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

/* ---- copying a batch ------------------------------------------------------ */

/* Reads the descriptor: which FlowRecord fields point elsewhere. Returns
 * 0, or VIGIL_EINVAL when a field could not be copied faithfully. */
static int make_plan(struct detect_thread *t, char *err, size_t errlen)
{
    const ProtobufCMessageDescriptor *md = &vigil__flow_record__descriptor;
    for (unsigned i = 0; i < md->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &md->fields[i];
        bool ptr = f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_BYTES;
        if (f->label == PROTOBUF_C_LABEL_REPEATED || f->type == PROTOBUF_C_TYPE_MESSAGE ||
            (ptr && t->nplan == PLAN_MAX)) {
            snprintf(err, errlen,
                     "detection thread: FlowRecord field %s cannot be copied (repeated, a "
                     "message, or too many): extend detect_thread.c",
                     f->name);
            return VIGIL_EINVAL;
        }
        if (ptr)
            t->plan[t->nplan++] = (struct field_plan){f->offset, f->type == PROTOBUF_C_TYPE_BYTES};
    }
    return 0;
}

static size_t record_extra(const struct detect_thread *t, const Vigil__FlowRecord *r)
{
    const char *base = (const char *)r;
    size_t n = 0;
    for (unsigned i = 0; i < t->nplan; i++) {
        if (t->plan[i].bytes) {
            const ProtobufCBinaryData *bd = (const void *)(base + t->plan[i].offset);
            n += bd->data ? bd->len : 0;
        } else {
            const char *s;
            memcpy(&s, base + t->plan[i].offset, sizeof s);
            n += s && *s ? strlen(s) + 1 : 0;
        }
    }
    return n;
}

/* Copies r's pointed-to fields into *heap (advanced), fixing c's pointers. */
static void record_fix(const struct detect_thread *t, Vigil__FlowRecord *c, char **heap)
{
    static char empty[1] = "";
    char *base = (char *)c;
    c->base.n_unknown_fields = 0; /* the detectors never read unknown fields */
    c->base.unknown_fields = NULL;
    for (unsigned i = 0; i < t->nplan; i++) {
        if (t->plan[i].bytes) {
            ProtobufCBinaryData *bd = (void *)(base + t->plan[i].offset);
            if (bd->data && bd->len) {
                memcpy(*heap, bd->data, bd->len);
                bd->data = (uint8_t *)*heap;
                *heap += bd->len;
            } else {
                bd->data = NULL;
                bd->len = 0;
            }
        } else {
            char *s, *to = empty;
            memcpy(&s, base + t->plan[i].offset, sizeof s);
            if (s && *s) {
                size_t len = strlen(s) + 1;
                memcpy(*heap, s, len);
                to = *heap;
                *heap += len;
            } else if (!s) {
                to = NULL;
            }
            memcpy(base + t->plan[i].offset, &to, sizeof to);
        }
    }
}

/* Fills sl with a copy of b (its records, every field, and agent, seq,
 * epoch). Returns false when out of memory. */
static bool copy_batch(const struct detect_thread *t, const Vigil__FlowBatch *b,
                       const char *agent, struct slot *sl)
{
    size_t n = b->n_records, alen = strlen(agent) + 1;
    size_t size = n * (sizeof(Vigil__FlowRecord *) + sizeof(Vigil__FlowRecord)) + alen;
    for (size_t i = 0; i < n; i++)
        if (b->records[i])
            size += record_extra(t, b->records[i]);
    char *mem = malloc(size ? size : 1);
    if (!mem)
        return false;
    Vigil__FlowRecord **ptrs = (void *)mem;
    Vigil__FlowRecord *recs = (void *)(mem + n * sizeof *ptrs);
    char *heap = (char *)(recs + n);
    for (size_t i = 0; i < n; i++) {
        if (!b->records[i]) {
            ptrs[i] = NULL; /* the engine counts it as bad, as it would have */
            continue;
        }
        recs[i] = *b->records[i];
        record_fix(t, &recs[i], &heap);
        ptrs[i] = &recs[i];
    }
    memcpy(heap, agent, alen);
    sl->mem = mem;
    sl->bytes = size;
    sl->agent = heap;
    vigil__flow_batch__init(&sl->b);
    sl->b.agent = heap;
    sl->b.seq = b->seq;
    sl->b.agent_epoch = b->agent_epoch;
    sl->b.sent_ns = b->sent_ns;
    sl->b.n_records = n;
    sl->b.records = ptrs;
    return true;
}

/* ---- the detection thread ------------------------------------------------------ */

static void tick(struct detect_thread *t)
{
    int64_t t0 = vigil_monotonic_ns();
    detect_tick(t->d, t0);
    int64_t took = vigil_monotonic_ns() - t0;
    t->tick_ns += took; /* the thread's own: published under mu with cpu_ns */
    if (took > t->tick_max_ns)
        t->tick_max_ns = took;
}

static void *run(void *arg)
{
    struct detect_thread *t = arg;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        if (t->n == 0) {
            if (t->stopping)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t at = (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec + DETECT_THREAD_WAKE_NS;
            ts.tv_sec = (time_t)(at / NS_PER_SEC);
            ts.tv_nsec = (long)(at % NS_PER_SEC);
            pthread_cond_timedwait(&t->work, &t->mu, &ts);
            if (t->n == 0) { /* time passed without a batch: idle flush, windows, writes */
                pthread_mutex_unlock(&t->mu);
                tick(t);
                pthread_mutex_lock(&t->mu);
                t->st.cpu_ns = thread_cpu_ns();
                t->st.tick_ns = t->tick_ns;
                t->st.tick_max_ns = t->tick_max_ns;
                continue;
            }
        }
        struct slot sl = t->ring[t->head];
        pthread_mutex_unlock(&t->mu);
        detect_batch(t->d, &sl.b, sl.agent);
        free(sl.mem);
        tick(t);
        int64_t cpu = thread_cpu_ns();
        pthread_mutex_lock(&t->mu);
        t->head = (t->head + 1) % DETECT_QUEUE_SLOTS;
        t->n--;
        t->bytes -= sl.bytes;
        t->st.judged++;
        t->st.cpu_ns = cpu;
        t->st.tick_ns = t->tick_ns;
        t->st.tick_max_ns = t->tick_max_ns;
        pthread_cond_signal(&t->space);
    }
    pthread_mutex_unlock(&t->mu);
    tick(t); /* the last batches' windows and writes, as a tick after them would */
    int64_t cpu = thread_cpu_ns();
    pthread_mutex_lock(&t->mu);
    t->st.cpu_ns = cpu;
    t->st.tick_ns = t->tick_ns;
    t->st.tick_max_ns = t->tick_max_ns;
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* The engine's new-alert hook while the thread runs (detection thread):
 * keeps a copy for the ingest thread; never waits for it. */
static void keep_alert(void *ctx, const struct alert *a)
{
    struct detect_thread *t = ctx;
    pthread_mutex_lock(&t->mu);
    if (t->n_alerts == t->alerts_cap) {
        unsigned cap = t->alerts_cap ? t->alerts_cap * 2 : 8;
        struct alert *p = NULL;
        if (cap <= DETECT_THREAD_ALERTS_MAX)
            p = realloc(t->alerts, cap * sizeof *p);
        if (!p) {
            t->st.hooks_dropped++;
            pthread_mutex_unlock(&t->mu);
            return;
        }
        t->alerts = p;
        t->alerts_cap = cap;
    }
    t->alerts[t->n_alerts++] = *a;
    pthread_mutex_unlock(&t->mu);
}

/* Ingest thread: the hook for every alert kept so far, outside the lock. */
static void run_hooks(struct detect_thread *t)
{
    pthread_mutex_lock(&t->mu);
    struct alert *list = t->alerts;
    unsigned n = t->n_alerts;
    t->alerts = NULL;
    t->n_alerts = t->alerts_cap = 0;
    t->st.hooks += n;
    pthread_mutex_unlock(&t->mu);
    for (unsigned i = 0; i < n; i++)
        t->hook(t->hook_ctx, &list[i]);
    free(list);
}

/* ---- the ingest thread's side ------------------------------------------------------ */

struct detect_thread *detect_thread_start(struct detect *d, struct store *s, char *err,
                                          size_t errlen)
{
    struct detect_thread *t = calloc(1, sizeof *t);
    pthread_condattr_t ca;
    if (!t) {
        snprintf(err, errlen, "detection thread: out of memory");
        return NULL;
    }
    t->d = d;
    t->s = s;
    if (!d || !s) {
        snprintf(err, errlen, "detection thread: no engine or store");
        free(t);
        return NULL;
    }
    if (make_plan(t, err, errlen) != 0) {
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* deadlines on the monotonic clock */
    pthread_cond_init(&t->work, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&t->space, NULL);
    t->hook = d->cfg.on_new_alert; /* before the thread exists: nobody reads it yet */
    t->hook_ctx = d->cfg.on_new_alert_ctx;
    if (t->hook) {
        d->cfg.on_new_alert = keep_alert;
        d->cfg.on_new_alert_ctx = t;
    }
    int rc = pthread_create(&t->tid, NULL, run, t);
    if (rc != 0) {
        snprintf(err, errlen, "detection thread: %s", strerror(rc));
        detect_thread_free(t);
        return NULL;
    }
    t->started = true;
    log_info("detection runs on its own thread (queue of %u batches, %u MiB)",
             DETECT_QUEUE_SLOTS, DETECT_QUEUE_BYTES >> 20);
    return t;
}

void detect_thread_submit(struct detect_thread *t, const Vigil__FlowBatch *b, const char *agent)
{
    struct slot sl;
    if (!t || !b || t->stopped) /* after stop nobody would take it */
        return;
    if (!copy_batch(t, b, agent ? agent : "", &sl)) {
        pthread_mutex_lock(&t->mu);
        t->st.lost++;
        pthread_mutex_unlock(&t->mu);
        log_ratelimited(&t->rl_lost, LOG_LVL_ERR,
                        "detection: no memory to copy a batch of %zu records from \"%s\": "
                        "not judged (counted as lost)",
                        b->n_records, agent ? agent : "");
        return;
    }
    pthread_mutex_lock(&t->mu);
    if (t->n == DETECT_QUEUE_SLOTS || (t->n && t->bytes + sl.bytes > DETECT_QUEUE_BYTES)) {
        int64_t since = vigil_monotonic_ns();
        t->st.waits++;
        while (t->n == DETECT_QUEUE_SLOTS || (t->n && t->bytes + sl.bytes > DETECT_QUEUE_BYTES))
            pthread_cond_wait(&t->space, &t->mu);
        t->st.wait_ns += vigil_monotonic_ns() - since;
    }
    t->ring[(t->head + t->n) % DETECT_QUEUE_SLOTS] = sl;
    t->n++;
    t->bytes += sl.bytes;
    t->st.submitted++;
    t->st.records += b->n_records;
    pthread_cond_signal(&t->work);
    pthread_mutex_unlock(&t->mu);
}

void detect_thread_poll(struct detect_thread *t)
{
    if (!t)
        return;
    if (t->hook && !t->stopped)
        run_hooks(t);
}

void detect_thread_stop(struct detect_thread *t)
{
    if (!t || t->stopped)
        return;
    t->stopped = true;
    if (t->started) {
        pthread_mutex_lock(&t->mu);
        t->stopping = true;
        pthread_cond_signal(&t->work);
        pthread_mutex_unlock(&t->mu);
        pthread_join(t->tid, NULL);
        if (t->st.submitted)
            log_info("detection thread stopped: %" PRIu64 " batches judged, the producer "
                     "waited %" PRIu64 " times (%.1f s)",
                     t->st.judged, t->st.waits, (double)t->st.wait_ns / (double)NS_PER_SEC);
    }
    if (t->hook) {
        run_hooks(t);
        t->d->cfg.on_new_alert = t->hook; /* the engine is the caller's again */
        t->d->cfg.on_new_alert_ctx = t->hook_ctx;
    }
}

void detect_thread_free(struct detect_thread *t)
{
    if (!t)
        return;
    detect_thread_stop(t);
    free(t->alerts);
    pthread_cond_destroy(&t->work);
    pthread_cond_destroy(&t->space);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

void detect_thread_get_stats(struct detect_thread *t, struct detect_thread_stats *out)
{
    pthread_mutex_lock(&t->mu);
    *out = t->st;
    out->queued = t->n;
    out->queued_bytes = t->bytes;
    pthread_mutex_unlock(&t->mu);
}

void detect_thread_status_text(struct detect_thread *t, char *buf, size_t len)
{
    struct detect_thread_stats st;
    char eng[400];
    detect_status_text(t->d, eng, sizeof eng); /* a snapshot under the engine's lock */
    detect_thread_get_stats(t, &st);
    snprintf(buf, len,
             "%s queue=%" PRIu64 "/%u waits=%" PRIu64 " (%.1f s) lost=%" PRIu64
             " hooks_dropped=%" PRIu64,
             eng, st.queued, DETECT_QUEUE_SLOTS, st.waits,
             (double)st.wait_ns / (double)NS_PER_SEC, st.lost, st.hooks_dropped);
}
