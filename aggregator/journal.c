/* journal.c — runs of rollup contributions in the journal DBs (see journal.h). */
#include "journal.h"

#include <string.h>

#include "bytes.h"
#include "err.h"

#define RUN_HEADER 5 /* version, u32 count */

void journal_writer_begin(struct journal_writer *w, MDB_cursor *cur)
{
    w->cur = cur;
    w->count = 0;
    w->len = 0;
    w->first = 0;
}

int journal_writer_end(struct journal_writer *w)
{
    if (w->count == 0)
        return 0;
    uint8_t kb[8];
    w->buf[0] = JOURNAL_RUN_VERSION;
    put_be32(w->buf + 1, w->count);
    put_be64(kb, w->first);
    MDB_val k = {sizeof kb, kb}, v = {w->len, w->buf};
    w->count = 0;
    w->len = 0;
    /* sequences only grow: every run goes past the end of the DB */
    return mdb_cursor_put(w->cur, &k, &v, MDB_APPEND);
}

int journal_writer_add(struct journal_writer *w, const struct contrib *c)
{
    int rc;
    if (w->count && (c->seq != w->first + w->count ||
                     w->len + VARINT_MAX + JOURNAL_MAX > sizeof w->buf) &&
        (rc = journal_writer_end(w)) != 0)
        return rc;
    if (w->count == 0) {
        w->first = c->seq;
        w->len = RUN_HEADER;
    }
    uint8_t e[JOURNAL_MAX];
    size_t n = contrib_encode(c, e);
    w->len += put_varint(w->buf + w->len, n);
    memcpy(w->buf + w->len, e, n);
    w->len += n;
    w->count++;
    return 0;
}

int journal_reader_init(struct journal_reader *r, const MDB_val *key, const MDB_val *val)
{
    if (key->mv_size != 8 || val->mv_size < 1)
        return VIGIL_EBADMSG;
    r->c = cur_make(val->mv_data, val->mv_size);
    r->seq = get_be64(key->mv_data);
    r->single = ((const uint8_t *)val->mv_data)[0] != JOURNAL_RUN_VERSION;
    if (r->single) {
        r->left = 1;
        return 0;
    }
    uint8_t ver;
    if (!cur_u8(&r->c, &ver) || !cur_be32(&r->c, &r->left) || r->left == 0 ||
        r->left - 1 > UINT64_MAX - r->seq)
        return VIGIL_EBADMSG;
    return 0;
}

int journal_reader_next(struct journal_reader *r, struct contrib *c)
{
    if (r->left == 0)
        return 0;
    struct cursor e = r->c;
    if (!r->single) {
        uint64_t n;
        if (!cur_varint(&r->c, &n) || !cur_sub(&r->c, (size_t)n, &e))
            goto bad;
    }
    if (contrib_decode(e.p, (size_t)(e.end - e.p), c) != 0)
        goto bad;
    c->seq = r->seq++;
    r->left--;
    return 1;
bad:
    r->left = 0;
    return VIGIL_EBADMSG;
}

int journal_last_seq(const MDB_val *key, const MDB_val *val, uint64_t *last)
{
    struct journal_reader r;
    if (journal_reader_init(&r, key, val) != 0)
        return VIGIL_EBADMSG;
    *last = r.seq + r.left - 1;
    return 0;
}
