/* chunk.h — sorted, prefix-compressed runs of (group key, payload) entries
 * stored as LMDB values of about one page: the physical layout of the
 * rollup tiers and of the host index.
 *
 * Why: a rollup bucket has one entry per group (host, app, port, pair)
 * and a minute of busy traffic has as many groups as records. One LMDB row
 * per group costs a B-tree insert each (DESIGN.md measured rollups at a
 * fraction of bare puts); packing ~100-200 sorted entries into one value
 * costs one append per page instead.
 *
 * Key of a chunk:  [bucket start s, u32 BE][part u8][first group key of the chunk]
 * Value:           u8 version (1), then entries in ascending key order:
 *                    u8 shared   bytes shared with the previous key (0 first in a chunk)
 *                    key[shared..klen)
 *                    varint len, payload[len]
 * Rollup payload:  5 varints: bytes out, bytes in, packets out, packets in, flows.
 * Host payload:    references to flow rows: (varint zigzag second-in-minute
 *                  delta, varint zigzag sequence delta) pairs.
 *
 * A bucket is written as one or more parts. Part 0 is the first write;
 * data that comes later (a minute flushed again, late records for a built
 * hour or day) is a new part holding only the delta, so nothing already
 * written is rewritten; a reader sums all parts. Parts 0..254 are
 * immutable; part 255 takes any further delta by merging in place. */
#ifndef VIGIL_CHUNK_H
#define VIGIL_CHUNK_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

#define CHUNK_VERSION 1
#define CHUNK_TARGET 4000 /* value bytes: one LMDB overflow page */
#define CHUNK_KEY_MAX (5 + 32)
#define PART_LAST 255     /* merged in place once parts 0..254 are used */

/* ---- writing ---- */

struct chunk_writer {
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur;
    uint32_t bucket;
    uint8_t part;
    unsigned klen;
    int append;            /* -1: not decided yet, 0: plain puts, 1: MDB_APPEND */
    uint8_t *buf;          /* malloc'd */
    size_t len, cap;
    uint8_t first[32], prev[32];
    bool open;             /* buf holds at least one entry */
    uint64_t chunks;       /* values written */
};

/* Starts writing part `part` of bucket. Returns 0 or an LMDB/VIGIL code. */
int chunk_writer_begin(struct chunk_writer *w, MDB_txn *txn, MDB_dbi dbi, uint32_t bucket,
                       uint8_t part, unsigned klen);

/* Adds an entry; keys must come in strictly ascending order. */
int chunk_writer_add(struct chunk_writer *w, const uint8_t *key, const uint8_t *payload,
                     size_t plen);

/* Writes what is buffered and releases the writer (also after an error:
 * then pass ok = false and nothing more is written). */
int chunk_writer_end(struct chunk_writer *w, bool ok);

/* ---- reading one value ---- */

struct chunk_reader {
    const uint8_t *p, *end;
    unsigned klen;
    uint8_t key[32];       /* the current entry's key */
};

/* Returns 0, or VIGIL_EBADMSG for an unknown version. */
int chunk_reader_init(struct chunk_reader *r, const void *data, size_t len, unsigned klen);

/* Reads the next entry: 1 (key in r->key, payload out), 0 at the end,
 * VIGIL_EBADMSG if damaged. */
int chunk_reader_next(struct chunk_reader *r, const uint8_t **payload, size_t *plen);

/* ---- parts, and a sorted stream over one part's chunks ---- */

/* The parts of bucket present in the DB, ascending; returns how many. */
int chunk_list_parts(MDB_cursor *cur, uint32_t bucket, uint8_t parts[256], unsigned *n);

/* The part a new write of bucket goes to: one past the highest present, 0
 * for none, PART_LAST when all are used. */
int chunk_next_part(MDB_cursor *cur, uint32_t bucket, uint8_t *part);

struct chunk_stream {
    uint32_t bucket;
    uint8_t part;
    unsigned klen;
    uint8_t ckey[CHUNK_KEY_MAX]; /* the current chunk's key, to step to the next */
    struct chunk_reader r;
    const uint8_t *pl;           /* the current entry's payload */
    size_t plen;
    bool valid;                  /* an entry is current (r.key) */
};

/* Positions the stream on the first entry of (bucket, part) whose key is
 * greater than after (NULL: the first entry). Pointers returned stay valid
 * while the transaction does not modify this DB. */
int chunk_stream_seek(struct chunk_stream *s, MDB_cursor *cur, uint32_t bucket, uint8_t part,
                      unsigned klen, const uint8_t *after);

/* Moves to the next entry (valid = false at the end). */
int chunk_stream_next(struct chunk_stream *s, MDB_cursor *cur);

/* ---- payloads ---- */

/* Rollup counters (5 u64) <-> payload (at most 50 bytes). */
size_t chunk_put_counters(uint8_t *out, const uint64_t c[5]);
bool chunk_get_counters(const uint8_t *pl, size_t plen, uint64_t c[5]);

/* Appends the host index entry for host in minute (all parts) to *keys
 * as FLOWS_KEY_LEN-byte flows keys. Returns 0, VIGIL_ENOMEM or an LMDB code. */
int hostidx_lookup(MDB_txn *txn, MDB_dbi dbi, uint32_t minute, const struct vigil_addr *host,
                   uint8_t **keys, size_t *n, size_t *cap);

/* Decodes a host payload into flows keys appended to *keys. */
int hostidx_refs_decode(uint32_t minute, const uint8_t *pl, size_t plen, uint8_t **keys,
                        size_t *n, size_t *cap);

#endif
