/* openfilter.c — a bit filter over the open DB's keys (see openfilter.h). */
#include "openfilter.h"

#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "err.h"
#include "store_int.h"

#define MIN_BITS (UINT64_C(1) << 16)
#define MAX_BITS (UINT64_C(1) << 31) /* 256 MiB: sized for 33 M open flows, refused past 67 M */
#define BITS_PER_KEY 64              /* at a build: a set-bit share of 1/32 */
#define REBUILD_SHARE 8              /* rebuild past 1/8 of the bits set (~1.5 % false "maybe") */
#define RETRY_TXNS 1024u

void openfilter_init(struct openfilter *f, const struct hash_key *hk)
{
    memset(f, 0, sizeof *f);
    f->hk = *hk;
}

void openfilter_free(struct openfilter *f)
{
    free(f->bits);
    f->bits = NULL;
}

bool openfilter_wants_build(struct openfilter *f)
{
    if (f->bits && f->set <= (f->mask + 1) / REBUILD_SHARE)
        return false;
    if (f->skip) {
        f->skip--;
        return false;
    }
    return true;
}

/* Two bit positions from one keyed hash. */
static inline void positions(const struct openfilter *f, uint32_t agent, uint64_t flow,
                             uint64_t *a, uint64_t *b)
{
    uint64_t h = hash_siphash13_2w(&f->hk, agent, flow);
    *a = h & f->mask;
    *b = (h >> 32 | h << 32) & f->mask;
}

static inline bool test_set(uint64_t *bits, uint64_t i)
{
    uint64_t m = UINT64_C(1) << (i & 63);
    bool was = bits[i >> 6] & m;
    bits[i >> 6] |= m;
    return !was;
}

void openfilter_add(struct openfilter *f, uint32_t agent, uint64_t flow)
{
    uint64_t a, b;
    if (!f->bits)
        return;
    positions(f, agent, flow, &a, &b);
    f->set += test_set(f->bits, a);
    f->set += test_set(f->bits, b);
}

bool openfilter_maybe(const struct openfilter *f, uint32_t agent, uint64_t flow)
{
    uint64_t a, b;
    if (!f->bits)
        return true;
    positions(f, agent, flow, &a, &b);
    return (f->bits[a >> 6] >> (a & 63) & 1) && (f->bits[b >> 6] >> (b & 63) & 1);
}

int openfilter_build(struct openfilter *f, MDB_txn *txn, MDB_dbi dbi)
{
    MDB_cursor *cur;
    MDB_stat st;
    MDB_val k, v;
    int rc;

    openfilter_free(f);
    f->set = 0;
    f->skip = RETRY_TXNS; /* unless the build completes */
    if ((rc = mdb_stat(txn, dbi, &st)) != 0)
        return rc;
    uint64_t nbits = MIN_BITS;
    while (nbits < MAX_BITS && nbits < (uint64_t)st.ms_entries * BITS_PER_KEY)
        nbits *= 2;
    if ((uint64_t)st.ms_entries * 2 > nbits / (2 * REBUILD_SHARE))
        return 0; /* too many open flows to filter well: look every one up */
    uint64_t *bits = calloc(nbits / 64, sizeof *bits);
    if (!bits)
        return VIGIL_ENOMEM;
    f->bits = bits;
    f->mask = nbits - 1;
    if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
        goto fail;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size == OPEN_KEY_LEN)
            openfilter_add(f, get_be32(k.mv_data), get_be64((const uint8_t *)k.mv_data + 4));
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        goto fail;
    f->skip = 0;
    return 0;
fail:
    openfilter_free(f);
    f->set = 0;
    return rc;
}
