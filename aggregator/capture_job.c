/* capture_job.c — the stored form of a forensic capture job (see
 * capture_job.h): encoding, bounded decoding, and its LMDB reads and
 * writes. */
#include "capture_job.h"

#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "cursor.h"
#include "err.h"
#include "log.h"
#include "store_int.h"

#define JOB_VERSION 1

static const char *const state_names[CAP_STATE_COUNT] = {
    [CAP_PENDING] = "pending", [CAP_RUNNING] = "running", [CAP_DONE] = "done",
    [CAP_FAILED] = "failed",   [CAP_STOPPED] = "stopped", [CAP_EXPIRED] = "expired",
};

const char *capture_state_name(unsigned state)
{
    return state < CAP_STATE_COUNT ? state_names[state] : "?";
}

int capture_state_parse(const char *name)
{
    for (unsigned i = CAP_RUNNING; i < CAP_STATE_COUNT; i++)
        if (strcmp(name, state_names[i]) == 0)
            return (int)i;
    return -1;
}

/* ---- encoding ------------------------------------------------------------------------ */

struct out {
    uint8_t *p;
    size_t len, cap;
    bool failed;
};

static void out_bytes(struct out *o, const void *src, size_t n)
{
    if (o->failed)
        return;
    if (o->len + n > o->cap) {
        size_t c = o->cap ? o->cap * 2 : 512;
        while (c < o->len + n)
            c *= 2;
        uint8_t *p = realloc(o->p, c);
        if (!p) {
            o->failed = true;
            return;
        }
        o->p = p;
        o->cap = c;
    }
    memcpy(o->p + o->len, src, n);
    o->len += n;
}

static void out_u8(struct out *o, uint8_t v)
{
    out_bytes(o, &v, 1);
}

static void out_u16(struct out *o, uint16_t v)
{
    uint8_t b[2];
    put_be16(b, v);
    out_bytes(o, b, 2);
}

static void out_u32(struct out *o, uint32_t v)
{
    uint8_t b[4];
    put_be32(b, v);
    out_bytes(o, b, 4);
}

static void out_u64(struct out *o, uint64_t v)
{
    uint8_t b[8];
    put_be64(b, v);
    out_bytes(o, b, 8);
}

static void out_str(struct out *o, const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n > max) {
        o->failed = true;
        return;
    }
    out_u16(o, (uint16_t)n);
    out_bytes(o, s, n);
}

int capture_job_encode(const struct capture_job *j, uint8_t **out, size_t *len)
{
    struct out o = {0};
    *out = NULL;
    *len = 0;
    if (j->n_files > CAPTURE_MAX_FILES || j->state >= CAP_STATE_COUNT)
        return VIGIL_EINVAL;
    out_u8(&o, JOB_VERSION);
    out_u8(&o, j->state);
    out_u8(&o, j->stop_requested ? 1 : 0);
    const int64_t times[] = {j->created_ns, j->expires_ns, j->duration_ns,
                             j->updated_ns, j->acked_ns,   j->finished_ns};
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++)
        out_u64(&o, (uint64_t)times[i]);
    out_u64(&o, j->max_bytes);
    out_u64(&o, j->max_packets);
    out_u32(&o, j->snaplen);
    out_u64(&o, j->packets);
    out_u64(&o, j->bytes);
    out_u32(&o, j->sends);
    out_str(&o, j->id, CAPTURE_ID_MAX);
    out_str(&o, j->agent, KEY_NAME_MAX);
    out_str(&o, j->filter, CAPTURE_FILTER_MAX);
    out_str(&o, j->ordered_by, CAPTURE_BY_MAX);
    out_str(&o, j->reason, CAPTURE_REASON_MAX);
    out_str(&o, j->detail, CAPTURE_DETAIL_MAX);
    out_u16(&o, (uint16_t)j->n_files);
    for (size_t i = 0; i < j->n_files; i++) {
        out_str(&o, j->files[i].name, CAPTURE_FILE_NAME_MAX);
        out_u64(&o, j->files[i].size);
        out_str(&o, j->files[i].sha256, 64);
    }
    if (o.failed) {
        free(o.p);
        return j->n_files > CAPTURE_MAX_FILES ? VIGIL_EINVAL : VIGIL_ENOMEM;
    }
    *out = o.p;
    *len = o.len;
    return 0;
}

/* ---- decoding (bounded) ----------------------------------------------------------------- */

static bool cur_be64(struct cursor *c, uint64_t *v)
{
    uint8_t b[8];
    if (!cur_bytes(c, b, 8))
        return false;
    *v = get_be64(b);
    return true;
}

/* A string of at most max bytes into buf (max + 1 bytes); printable ASCII
 * or UTF-8 text as the transport admitted it: only NUL is refused here. */
static bool cur_str(struct cursor *c, char *buf, size_t max)
{
    uint16_t n;
    if (!cur_be16(c, &n) || n > max || !cur_bytes(c, buf, n))
        return false;
    buf[n] = '\0';
    return memchr(buf, '\0', n) == NULL;
}

int capture_job_decode(const void *data, size_t len, struct capture_job *j)
{
    struct cursor c = cur_make(data, len);
    uint8_t version, state, flags;
    uint64_t t[6];
    uint16_t nfiles;

    memset(j, 0, sizeof *j);
    if (!cur_u8(&c, &version) || version != JOB_VERSION || !cur_u8(&c, &state) ||
        state >= CAP_STATE_COUNT || !cur_u8(&c, &flags))
        return VIGIL_EBADMSG;
    for (int i = 0; i < 6; i++)
        if (!cur_be64(&c, &t[i]))
            return VIGIL_EBADMSG;
    j->state = state;
    j->stop_requested = flags & 1;
    j->created_ns = (int64_t)t[0];
    j->expires_ns = (int64_t)t[1];
    j->duration_ns = (int64_t)t[2];
    j->updated_ns = (int64_t)t[3];
    j->acked_ns = (int64_t)t[4];
    j->finished_ns = (int64_t)t[5];
    if (!cur_be64(&c, &j->max_bytes) || !cur_be64(&c, &j->max_packets) ||
        !cur_be32(&c, &j->snaplen) || !cur_be64(&c, &j->packets) || !cur_be64(&c, &j->bytes) ||
        !cur_be32(&c, &j->sends) || !cur_str(&c, j->id, CAPTURE_ID_MAX) || !j->id[0] ||
        !cur_str(&c, j->agent, KEY_NAME_MAX) || !cur_str(&c, j->filter, CAPTURE_FILTER_MAX) ||
        !cur_str(&c, j->ordered_by, CAPTURE_BY_MAX) ||
        !cur_str(&c, j->reason, CAPTURE_REASON_MAX) ||
        !cur_str(&c, j->detail, CAPTURE_DETAIL_MAX) || !cur_be16(&c, &nfiles) ||
        nfiles > CAPTURE_MAX_FILES)
        return VIGIL_EBADMSG;
    /* each file needs at least 12 bytes: refuse a count the value cannot hold */
    if ((size_t)nfiles * 12 > cur_left(&c))
        return VIGIL_EBADMSG;
    if (nfiles) {
        j->files = calloc(nfiles, sizeof *j->files);
        if (!j->files)
            return VIGIL_ENOMEM;
    }
    for (uint16_t i = 0; i < nfiles; i++) {
        struct capture_file_info *f = &j->files[i];
        if (!cur_str(&c, f->name, CAPTURE_FILE_NAME_MAX) || !cur_be64(&c, &f->size) ||
            !cur_str(&c, f->sha256, 64)) {
            capture_job_clear(j);
            return VIGIL_EBADMSG;
        }
        j->n_files++;
    }
    if (cur_left(&c) != 0) {
        capture_job_clear(j);
        return VIGIL_EBADMSG;
    }
    return 0;
}

void capture_job_clear(struct capture_job *j)
{
    free(j->files);
    j->files = NULL;
    j->n_files = 0;
}

int capture_job_copy(struct capture_job *dst, const struct capture_job *src)
{
    *dst = *src;
    dst->files = NULL;
    if (src->n_files) {
        dst->files = malloc(src->n_files * sizeof *dst->files);
        if (!dst->files) {
            dst->n_files = 0;
            return VIGIL_ENOMEM;
        }
        memcpy(dst->files, src->files, src->n_files * sizeof *dst->files);
    }
    return 0;
}

/* ---- LMDB ------------------------------------------------------------------------------ */

int capture_job_put_many(struct store *s, const struct capture_job *const *jobs, size_t n)
{
    uint8_t **bufs = calloc(n ? n : 1, sizeof *bufs);
    size_t *lens = calloc(n ? n : 1, sizeof *lens);
    int rc = bufs && lens ? 0 : VIGIL_ENOMEM;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = capture_job_encode(jobs[i], &bufs[i], &lens[i]);
    for (int attempt = 0; rc == 0; attempt++) {
        MDB_txn *txn;
        if ((rc = store__begin_write(s, &txn)) != 0)
            break;
        for (size_t i = 0; i < n && rc == 0; i++) {
            MDB_val k = {strlen(jobs[i]->id), (void *)jobs[i]->id}, v = {lens[i], bufs[i]};
            rc = mdb_put(txn, s->db[DB_CAPTURES], &k, &v, 0);
        }
        if (rc != 0) {
            mdb_txn_abort(txn);
            rc = store__err(rc);
        } else {
            rc = store__commit(s, txn, s->gen, NULL, NULL); /* no rollup data moved */
        }
        if (rc != STORE__EMAPFULL || attempt > 0)
            break;
        if ((rc = store__grow(s, true)) != 0)
            break;
    }
    for (size_t i = 0; bufs && i < n; i++)
        free(bufs[i]);
    free(bufs);
    free(lens);
    return rc == STORE__EMAPFULL ? VIGIL_EFULL : rc;
}

int capture_job_put(struct store *s, const struct capture_job *j)
{
    return capture_job_put_many(s, &j, 1);
}

int capture_job_get(struct store *s, const char *id, struct capture_job *j)
{
    MDB_txn *txn;
    MDB_val k = {strlen(id), (void *)id}, v;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return store__err(rc);
    rc = mdb_get(txn, s->db[DB_CAPTURES], &k, &v);
    rc = rc == 0 ? capture_job_decode(v.mv_data, v.mv_size, j) : store__err(rc);
    mdb_txn_abort(txn);
    return rc;
}

static int newest_first(const void *a, const void *b)
{
    const struct capture_job *x = a, *y = b;
    if (x->created_ns != y->created_ns)
        return x->created_ns > y->created_ns ? -1 : 1;
    return strcmp(x->id, y->id);
}

int capture_job_read_all(struct store *s, struct capture_job **out, size_t *n, uint64_t *bad)
{
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    struct capture_job *list = NULL;
    size_t cnt = 0, cap = 0;
    int rc;

    *out = NULL;
    *n = 0;
    *bad = 0;
    if ((rc = store__snapshot_begin(s, &txn)) != 0)
        return rc;
    store__snapshot_unlock(s);
    rc = mdb_cursor_open(txn, s->db[DB_CAPTURES], &cur);
    for (rc = rc ? rc : mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (cnt == cap) {
            size_t c = cap ? cap * 2 : 16;
            struct capture_job *l = realloc(list, c * sizeof *l);
            if (!l) {
                rc = VIGIL_ENOMEM;
                break;
            }
            list = l;
            cap = c;
        }
        int drc = capture_job_decode(v.mv_data, v.mv_size, &list[cnt]);
        if (drc == VIGIL_ENOMEM) {
            rc = drc;
            break;
        }
        if (drc != 0 || strlen(list[cnt].id) != k.mv_size ||
            memcmp(list[cnt].id, k.mv_data, k.mv_size) != 0) {
            capture_job_clear(&list[cnt]);
            (*bad)++;
            continue;
        }
        cnt++;
    }
    if (cur)
        mdb_cursor_close(cur);
    store__snapshot_end(s, txn);
    if (rc != MDB_NOTFOUND) {
        for (size_t i = 0; i < cnt; i++)
            capture_job_clear(&list[i]);
        free(list);
        return store__err(rc);
    }
    if (cnt > 1)
        qsort(list, cnt, sizeof *list, newest_first);
    *out = list;
    *n = cnt;
    return 0;
}

bool capture_agent_known(struct store *s, const char *agent)
{
    MDB_txn *txn;
    MDB_val k = {strlen(agent), (void *)agent}, v;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0)
        return false;
    bool known = mdb_get(txn, s->db[DB_AGENT_IDS], &k, &v) == 0;
    mdb_txn_abort(txn);
    return known;
}
