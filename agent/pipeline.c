/* pipeline.c — SPSC byte ring between the capture and flow threads.
 *
 * Entries are variable-length (a header, the decoded packet, the payload
 * bytes kept for inspection), written by the producer only. An entry
 * that does not fit before the end of the ring is preceded by a wrap marker
 * and written at offset 0. Each side keeps a private copy of its position
 * and publishes it every few entries, so the shared cache lines move
 * between cores in batches rather than per packet. */
#include "pipeline.h"

#include "clock.h"
#include "log.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ENTRY_ALIGN 16u /* entries are only written by the producer: no false sharing to avoid */
#define PUBLISH_EVERY 32u /* entries between position updates */

enum entry_type { ENTRY_PACKET = 1, ENTRY_TICK, ENTRY_WRAP, ENTRY_END };

struct entry {
    uint32_t type;
    uint32_t size;  /* whole entry, aligned */
    int64_t tick_ns;
    struct pkt pkt; /* payload bytes follow the entry header */
};

/* A side with nothing to do spins a little, then sleeps on a condition
 * variable after announcing it and the position it waits for; the other
 * side wakes it when it publishes a position at or past that one, not
 * before: a producer waiting for a quarter of the ring would otherwise be
 * woken (a futex call on the busy consumer) every few entries, only to
 * sleep again. The announcement and the position are both sequentially
 * consistent, so either the sleeper sees the new position or the publisher
 * sees the sleeper (a timed wait backs this up). An idle live agent thus
 * sleeps instead of polling. */
struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic uint64_t want; /* the position the sleeper waits for */
    _Atomic int sleeping;
};

struct pipeline {
    /* shared, each on its own cache line */
    alignas(64) _Atomic uint64_t head; /* bytes ever written (producer) */
    alignas(64) _Atomic uint64_t tail; /* bytes ever consumed (consumer) */

    alignas(64) uint64_t p_head;       /* producer's private view */
    uint64_t p_tail_cache;
    unsigned p_unpublished;
    unsigned p_pushes;                 /* for refreshing p_tail_cache now and then */

    alignas(64) struct waiter consumer_waits; /* the flow thread, ring empty */
    struct waiter producer_waits;             /* the capture thread, ring full */

    alignas(64) uint8_t *ring;
    size_t size; /* a power of two */
    struct flowtab *table;
    pthread_t thread;
    double flow_cpu_s; /* the flow thread's CPU time, set when it exits */
};

static double thread_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define SPIN_ROUNDS 256

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Waits until *pos (which only grows) reaches `want`. */
static uint64_t wait_until(struct waiter *w, _Atomic uint64_t *pos, uint64_t want)
{
    uint64_t now;
    for (unsigned i = 0; i < SPIN_ROUNDS; i++) {
        now = atomic_load_explicit(pos, memory_order_acquire);
        if (now >= want)
            return now;
        cpu_relax();
    }
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->want, want);
    atomic_store(&w->sleeping, 1);
    while ((now = atomic_load(pos)) < want) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 50 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&w->cv, &w->mu, &until);
    }
    atomic_store(&w->sleeping, 0);
    pthread_mutex_unlock(&w->mu);
    return now;
}

/* The other side published `pos`: wakes it if it sleeps waiting for it. */
static void wake(struct waiter *w, uint64_t pos)
{
    if (atomic_load(&w->sleeping) && pos >= atomic_load(&w->want)) {
        pthread_mutex_lock(&w->mu);
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
}

static void publish_tail(struct pipeline *pl, uint64_t tail)
{
    atomic_store(&pl->tail, tail);
    wake(&pl->producer_waits, tail);
}

static size_t entry_size(size_t payload)
{
    size_t n = sizeof(struct entry) + payload;
    return (n + ENTRY_ALIGN - 1) & ~(size_t)(ENTRY_ALIGN - 1);
}

/* The flow thread. A window of the next entries is prepared ahead of the
 * one being processed: the key hash and bucket are prefetched LOOKAHEAD
 * entries ahead, the flow entry itself half as far, so the table's cache
 * misses overlap instead of stalling one by one. */
#define LOOKAHEAD 8u

static void *flow_thread(void *arg)
{
    struct pipeline *pl = arg;
    uint64_t tail = 0, head = 0, ahead = 0; /* ahead: next entry to prepare */
    uint64_t window[LOOKAHEAD];             /* prepared entries, oldest first */
    unsigned wstart = 0, wcount = 0, unpublished = 0;

    for (;;) {
        if (wcount == 0 && ahead == head) {
            if (unpublished) {
                publish_tail(pl, tail);
                unpublished = 0;
            }
            head = wait_until(&pl->consumer_waits, &pl->head, ahead + 1);
        }
        while (wcount < LOOKAHEAD && ahead != head) {
            struct entry *e = (struct entry *)(pl->ring + (ahead & (pl->size - 1)));
            if (e->type == ENTRY_PACKET) {
                if (!e->pkt.has_key) /* the capture thread left the key to us */
                    flowtab_prepare(pl->table, &e->pkt);
                flowtab_prefetch(pl->table, &e->pkt, 0);
            }
            window[(wstart + wcount++) % LOOKAHEAD] = ahead;
            ahead += e->size;
        }
        if (wcount > LOOKAHEAD / 2) {
            uint64_t mid = window[(wstart + LOOKAHEAD / 2) % LOOKAHEAD];
            struct entry *e = (struct entry *)(pl->ring + (mid & (pl->size - 1)));
            if (e->type == ENTRY_PACKET)
                flowtab_prefetch(pl->table, &e->pkt, 1);
        }

        struct entry *e = (struct entry *)(pl->ring + (tail & (pl->size - 1)));
        wstart = (wstart + 1) % LOOKAHEAD;
        wcount--;
        switch (e->type) {
        case ENTRY_PACKET: flowtab_packet(pl->table, &e->pkt); break;
        case ENTRY_TICK: flowtab_advance(pl->table, e->tick_ns); break;
        case ENTRY_WRAP: break;
        case ENTRY_END:
            pl->flow_cpu_s = thread_cpu_seconds();
            publish_tail(pl, tail + e->size);
            return NULL;
        default: log_err("pipeline: corrupt ring entry type %u", e->type); abort();
        }
        tail += e->size;
        if (++unpublished >= PUBLISH_EVERY) {
            publish_tail(pl, tail);
            unpublished = 0;
        }
    }
}

struct pipeline *pipeline_start(struct flowtab *table, size_t ring_bytes)
{
    struct pipeline *pl = aligned_alloc(64, sizeof *pl);
    if (!pl)
        return NULL;
    memset(pl, 0, sizeof *pl);
    size_t size = 1u << 20;
    while (size < ring_bytes)
        size <<= 1;
    pl->size = size;
    pl->table = table;
    pthread_mutex_init(&pl->consumer_waits.mu, NULL);
    pthread_cond_init(&pl->consumer_waits.cv, NULL);
    pthread_mutex_init(&pl->producer_waits.mu, NULL);
    pthread_cond_init(&pl->producer_waits.cv, NULL);
    pl->ring = aligned_alloc(ENTRY_ALIGN, size);
    if (!pl->ring) {
        free(pl);
        return NULL;
    }
    if (pthread_create(&pl->thread, NULL, flow_thread, pl) != 0) {
        free(pl->ring);
        free(pl);
        return NULL;
    }
    return pl;
}

void pipeline_publish(struct pipeline *pl)
{
    atomic_store(&pl->head, pl->p_head);
    pl->p_unpublished = 0;
    wake(&pl->consumer_waits, pl->p_head);
}

/* Reserves `need` contiguous bytes, writing a wrap marker if the end of
 * the ring is too close; waits for the consumer while the ring is full. */
static struct entry *reserve(struct pipeline *pl, size_t need)
{
    size_t off = pl->p_head & (pl->size - 1);
    size_t to_end = pl->size - off;
    size_t total = need <= to_end ? need : need + to_end;
    if (pl->p_head + total - pl->p_tail_cache > pl->size) {
        pipeline_publish(pl); /* let the consumer see all we have before waiting */
        /* wait for a quarter of the ring, not just this entry, so the two
         * threads do not wake each other for every few entries */
        uint64_t need_tail = pl->p_head + total + pl->size / 4 - pl->size;
        pl->p_tail_cache = wait_until(&pl->producer_waits, &pl->tail, need_tail);
    }
    if (need > to_end) {
        struct entry *w = (struct entry *)(pl->ring + off);
        w->type = ENTRY_WRAP;
        w->size = (uint32_t)to_end;
        pl->p_head += to_end;
        off = 0;
    }
    return (struct entry *)(pl->ring + off);
}

static void commit(struct pipeline *pl, struct entry *e, size_t size)
{
    e->size = (uint32_t)size;
    pl->p_head += size;
    if (++pl->p_unpublished >= PUBLISH_EVERY)
        pipeline_publish(pl);
}

void pipeline_push(struct pipeline *pl, const struct pkt *p, uint32_t keep)
{
    if (keep > p->payload_caplen)
        keep = p->payload_caplen;
    size_t size = entry_size(keep);
    struct entry *e = reserve(pl, size);
    e->type = ENTRY_PACKET;
    e->pkt = *p;
    e->pkt.payload_caplen = keep;
    e->pkt.payload = keep ? (const uint8_t *)(e + 1) : NULL;
    if (keep)
        memcpy(e + 1, p->payload, keep);
    commit(pl, e, size);
}

bool pipeline_backlogged(struct pipeline *pl)
{
    if ((++pl->p_pushes & 255) == 0)
        pl->p_tail_cache = atomic_load_explicit(&pl->tail, memory_order_acquire);
    return pl->p_head - pl->p_tail_cache > pl->size / 2;
}

void pipeline_tick(struct pipeline *pl, int64_t now_ns)
{
    size_t size = entry_size(0);
    struct entry *e = reserve(pl, size);
    e->type = ENTRY_TICK;
    e->tick_ns = now_ns;
    commit(pl, e, size);
    pipeline_publish(pl);
}

double pipeline_finish(struct pipeline *pl)
{
    if (!pl)
        return 0;
    size_t size = entry_size(0);
    struct entry *e = reserve(pl, size);
    e->type = ENTRY_END;
    commit(pl, e, size);
    pipeline_publish(pl);
    pthread_join(pl->thread, NULL);
    double cpu = pl->flow_cpu_s;
    pthread_mutex_destroy(&pl->consumer_waits.mu);
    pthread_cond_destroy(&pl->consumer_waits.cv);
    pthread_mutex_destroy(&pl->producer_waits.mu);
    pthread_cond_destroy(&pl->producer_waits.cv);
    free(pl->ring);
    free(pl);
    return cpu;
}

double pipeline_caller_cpu_seconds(void)
{
    return thread_cpu_seconds();
}
