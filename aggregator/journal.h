/* journal.h — the journal DBs' values: rollup contributions (flowcodec.h)
 * stored in runs of consecutive ingest sequences, so a batch costs one
 * LMDB append per run instead of one per record.
 *
 * Key: the first contribution's sequence (u64 BE). Value, either
 *   version 1: one contribution (contrib_encode), as stores written before
 *              runs hold it; or
 *   version 2: u8 2, u32 BE count (>= 1), then count x (varint length,
 *              contribution), contribution i having sequence key + i.
 * A run is cut at JOURNAL_RUN_BYTES (one LMDB overflow page, as rollup
 * chunks), so a value never asks LMDB for a long run of free pages.
 *
 * Non-goals: when the journal is pruned or replayed (rollup.c). */
#ifndef VIGIL_AGG_JOURNAL_H
#define VIGIL_AGG_JOURNAL_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cursor.h"
#include "flowcodec.h"

#define JOURNAL_RUN_VERSION 2
#define JOURNAL_RUN_BYTES 4000

/* Appends runs through an LMDB cursor on a journal DB (borrowed). */
struct journal_writer {
    MDB_cursor *cur;
    uint64_t first;  /* sequence of the run's first contribution */
    uint32_t count;  /* contributions in buf */
    size_t len;
    uint8_t buf[JOURNAL_RUN_BYTES];
};

void journal_writer_begin(struct journal_writer *w, MDB_cursor *cur);

/* Adds c (c->seq is its key). A sequence that does not follow the run's
 * last starts a new run. Returns 0 or an LMDB code. */
int journal_writer_add(struct journal_writer *w, const struct contrib *c);

/* Appends what is buffered; call before the transaction commits. Returns 0
 * or an LMDB code. */
int journal_writer_end(struct journal_writer *w);

/* Reads one journal value back, contribution by contribution. */
struct journal_reader {
    struct cursor c;
    uint64_t seq;    /* the next contribution's sequence */
    uint32_t left;   /* contributions not read yet */
    bool single;     /* a version 1 value */
};

/* key: the journal key (8 bytes). Returns 0 or VIGIL_EBADMSG. */
int journal_reader_init(struct journal_reader *r, const MDB_val *key, const MDB_val *val);

/* The next contribution (c->seq set): 1, 0 at the end, VIGIL_EBADMSG when
 * damaged (the rest of the value is then unreadable). */
int journal_reader_next(struct journal_reader *r, struct contrib *c);

/* The sequence of the last contribution in the value. Returns 0 or
 * VIGIL_EBADMSG. */
int journal_last_seq(const MDB_val *key, const MDB_val *val, uint64_t *last);

#endif
