/* spool.h — the agent's on-disk queue of serialized batches.
 *
 * Every batch the exporter has not yet seen acknowledged lives here, keyed
 * by its sequence number, so that it survives an aggregator outage and an
 * agent restart (DESIGN.md, "Transport: lose nothing, count nothing
 * twice"). The spool also owns the agent's sequence counter and its
 * installation id (the epoch), persisted in a small state file, so that
 * sequence numbers keep increasing across restarts and are never reused.
 *
 * Bounded: when storing a batch would exceed max_bytes (or SPOOL_MAX_FILES
 * batches), the oldest batches are dropped and counted; the counts are
 * persisted and reported to the aggregator (AgentCounters
 * spool_dropped_batches / spool_dropped_records).
 *
 * Crash-safe: a stored batch is readable intact after any crash once
 * spool_put() has returned 0; a damaged file found on open (or on read) is
 * moved to DIR/quarantine/, logged and counted, never silently discarded.
 * The layout and its reasoning are described at the top of spool.c.
 *
 * Thread-safe: every function takes the spool's lock, so the flow thread
 * (spilling when the exporter is behind) and the exporter thread may share
 * one spool. Functions that write wait for the disk (fsync) while holding
 * that lock.
 *
 * Non-goals: knowing what a batch contains (the payload is opaque bytes;
 * the record count is carried alongside only so drops can be counted), and
 * sharing a directory between processes (a second opener is refused). */
#ifndef VIGIL_SPOOL_H
#define VIGIL_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* DESIGN.md: the spool is bounded, 1 GiB by default. */
#define SPOOL_DEFAULT_MAX_BYTES (UINT64_C(1) << 30)
/* Smallest bound accepted: a few batches' worth. */
#define SPOOL_MIN_MAX_BYTES (UINT64_C(64) << 10)
/* A stored batch larger than this is refused: it is far above any envelope
 * the transport accepts (TRANSPORT_MAX_MSG), so it can only be a bug. */
#define SPOOL_MAX_PAYLOAD (64u << 20)
/* Sequence numbers and removal marks at or above this are refused as
 * damage (a batch a millisecond would take 146 million years to get there),
 * so arithmetic on them never overflows. */
#define SPOOL_MAX_SEQ (UINT64_C(1) << 62)
/* One file per batch: this caps the directory (and the in-memory index,
 * 16 bytes per batch) when many small batches pile up during a long outage
 * on a quiet link. A million one-second batches is eleven days. */
#define SPOOL_MAX_FILES (1u << 20)

struct spool;

struct spool_stats {
    uint64_t bytes;           /* stored now: file sizes (header + payload) */
    uint64_t batches;         /* stored now */
    uint64_t records;         /* stored now (sum of the batches' record counts) */
    uint64_t oldest_seq;      /* 0 when empty */
    uint64_t newest_seq;      /* 0 when empty */
    uint64_t next_seq;        /* what spool_next_seq() returns next */
    uint64_t durable_next_seq; /* next_seq as last written to the state file */
    uint64_t removed_through; /* highest sequence removed (acked or dropped) */
    uint64_t epoch;           /* random installation id, never 0 */
    uint64_t max_bytes;
    /* persisted across restarts (running totals since the spool was created) */
    uint64_t dropped_batches;     /* dropped because the bound was hit */
    uint64_t dropped_records;
    uint64_t quarantined_batches; /* damaged batch files moved to quarantine/ */
    uint64_t quarantined_records; /* as far as their headers could tell */
    /* since this open */
    uint64_t quarantined;     /* files moved to quarantine/ (the state file too) */
    uint64_t write_errors;    /* puts or state writes that failed (ENOSPC, EIO...) */
};

/* Opens (creating DIR, mode 0700, if needed; its parent must exist) and
 * recovers the spool: leftovers of interrupted writes are removed, damaged
 * batch files are quarantined, batches already removed before a crash are
 * deleted, and the index is rebuilt in sequence order. If the bound is now
 * smaller than what is stored, the oldest batches are dropped and counted.
 * max_bytes of 0 means SPOOL_DEFAULT_MAX_BYTES; values below
 * SPOOL_MIN_MAX_BYTES are raised to it. Returns NULL with a message in err
 * when the directory cannot be used (permissions, another agent holds it,
 * the disk refuses the state file). */
struct spool *spool_open(const char *dir, uint64_t max_bytes, char *err, size_t errlen);

/* Persists the state file and releases the directory. Accepts NULL. */
void spool_close(struct spool *sp);

/* Hands out the next sequence number (1, 2, 3...; it never repeats, also
 * across restarts, as long as the state file or a stored batch records it:
 * see spool.c). Never returns 0. */
uint64_t spool_next_seq(struct spool *sp);

uint64_t spool_epoch(struct spool *sp);

/* Stores a copy of data[0..len) (borrowed) as batch seq carrying `records`
 * flow records, durably: on return 0 the batch survives a crash. Storing a
 * seq that is already stored returns 0 and changes nothing. To stay within
 * the bound the oldest batches are dropped first (counted). Returns:
 *   0              stored;
 *   VIGIL_EFULL    not stored because it is itself the oldest batch beyond the
 *                  bound (or larger than the bound): counted as dropped;
 *   VIGIL_EINVAL   seq 0 or >= SPOOL_MAX_SEQ, or len over SPOOL_MAX_PAYLOAD;
 *   -ENOSPC, VIGIL_EIO, other negative errno: the disk refused it; nothing
 *                  was stored (logged, rate-limited; retry later). */
int spool_put(struct spool *sp, uint64_t seq, const uint8_t *data, size_t len, uint32_t records);

/* The smallest stored seq greater than `after`: 0 and *seq set, or
 * VIGIL_ENOENT. Iterate in order with after = 0, then the last seq seen. */
int spool_next_after(struct spool *sp, uint64_t after, uint64_t *seq);

bool spool_contains(struct spool *sp, uint64_t seq);

/* Reads batch seq into a new buffer (*data, malloc'd, caller frees; OUT)
 * after checking it. Returns 0, VIGIL_ENOENT (not stored), VIGIL_EBADMSG
 * (the file was damaged since open: it is quarantined, counted, and
 * removed from the index), VIGIL_ENOMEM or a negative errno. */
int spool_read(struct spool *sp, uint64_t seq, uint8_t **data, size_t *len, uint32_t *records);

/* Removes every stored batch with a sequence <= seq (they were acked).
 * The state file is updated before any file is deleted. Returns 0 or a
 * negative errno (then nothing was removed; retry later). */
int spool_remove_through(struct spool *sp, uint64_t seq);

/* Writes the state file now (sequence counter, drop counters). Needed before
 * sending a batch that could not be stored (full disk), so its sequence
 * number cannot be handed out again after a restart. Returns 0 or a
 * negative errno. */
int spool_sync_state(struct spool *sp);

void spool_get_stats(struct spool *sp, struct spool_stats *out);

/* ---- internal, exposed for the tests and the fuzz target ---------------- */

/* Size of the header in front of every stored batch. */
#define SPOOL_HDR_SIZE 40u

struct spool_entry_info {
    uint64_t seq, epoch;
    uint32_t payload_len, records;
};

/* Checks a whole batch file's bytes (header and payload). expect_seq and
 * expect_epoch of 0 accept any value. Returns 0 and fills *info, or
 * VIGIL_EBADMSG with a static reason in *why. Never reads outside buf. */
int spool__check_entry(const uint8_t *buf, size_t len, uint64_t expect_seq, uint64_t expect_epoch,
                       struct spool_entry_info *info, const char **why);

/* Builds a header for a payload (the layout is in spool.c). */
void spool__make_header(uint8_t hdr[SPOOL_HDR_SIZE], uint64_t seq, uint64_t epoch,
                        const uint8_t *payload, uint32_t payload_len, uint32_t records);

/* Tests: every later write fails with errno err (0: back to normal), as a
 * full disk would. */
void spool__inject_write_error(struct spool *sp, int err);

/* The file name of batch seq ("%016" PRIx64 ".batch"); buf needs 24 bytes. */
void spool__file_name(uint64_t seq, char buf[24]);

#endif
