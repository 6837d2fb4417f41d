/* spool.c — the on-disk batch queue: one file per batch, a state file, a
 * quarantine folder.
 *
 * Layout of DIR:
 *   lock                  flock()ed while open: one agent per spool
 *   state                 epoch, next sequence, removed-through mark, drop
 *                         counters (64 bytes, CRC-checked, replaced atomically)
 *   <seq:016x>.batch      one stored batch: a 40-byte header, then the payload
 *   <seq:016x>.tmp        a batch being written (removed on open: its put never
 *                         returned, so nobody was promised it)
 *   quarantine/           damaged files, moved here on open or read, kept for a
 *                         person to inspect; never read again by the spool
 *
 * Why one file per batch rather than segments plus an index. A batch is
 * written to a temporary name, fsync()ed, renamed to its final name and the
 * directory fsync()ed: the data is durable before the name that points to
 * it exists, and a file under a final name is whole or was damaged later
 * (then the CRCs say so). Removal after an ack is one unlink(), dropping
 * the oldest is one unlink(), quarantine is one rename(): no compaction, no
 * index to keep in step with the data, and a torn write can never hide a
 * good batch behind it. The cost is two fsync()s per batch; batches are cut
 * about once a second, so that is a few milliseconds of disk per second,
 * paid on the exporter thread. The directory is kept small by the bound
 * (SPOOL_MAX_FILES). Segments would save the per-file cost for many tiny
 * batches but need a recovery scan that resynchronises inside a file, and
 * that is where crash bugs live.
 *
 * Sequence numbers. The state file holds next_seq and removed_through (the
 * highest sequence ever removed, by ack or by the bound). On open,
 * next_seq = max(state.next_seq, newest stored + 1, removed_through + 1), so
 * a number is never handed out again if it was stored (the file says so) or
 * removed (the state is written before any unlink). A number handed out but
 * neither stored nor sent may be handed out again after a crash, which is
 * harmless: no receiver ever saw it. The exporter sends only stored batches,
 * or, when the disk is full, batches whose number the state file already
 * covers (spool_sync_state()). A stored file at or below removed_through is
 * one whose unlink did not reach the disk before a crash: deleted on open.
 *
 * Batch header (little-endian):
 *    0  4  magic "VGSB"
 *    4  2  format version (1)
 *    6  2  header size (40)
 *    8  8  sequence (equals the number in the file name)
 *   16  8  epoch (the spool's; a batch from another installation is quarantined)
 *   24  4  payload length
 *   28  4  records in the batch (to count them if it is ever dropped)
 *   32  4  CRC-32 of the payload
 *   36  4  CRC-32 of bytes 0..35
 *
 * State file (little-endian, 64 bytes):
 *    0  4  magic "VGSS"      4  2  version (1)      6  2  size (64)
 *    8  8  epoch            16  8  next_seq        24  8  removed_through
 *   32  8  dropped batches  40  8  dropped records (the bound)
 *   48  8  quarantined batches (damaged files)
 *   56  4  quarantined records (saturating)      60  4  CRC-32 of bytes 0..59
 *
 * Non-goals: surviving a disk that lies about fsync; more than one process. */
#include "spool.h"

#include "clock.h"
#include "err.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define BATCH_MAGIC "VGSB"
#define STATE_MAGIC "VGSS"
#define FORMAT_VERSION 1u
#define STATE_SIZE 64u
#define STATE_NAME "state"
#define STATE_TMP "state.tmp"
#define LOCK_NAME "lock"
#define QUARANTINE_DIR "quarantine"
#define BATCH_SUFFIX ".batch"
#define TMP_SUFFIX ".tmp"
#define NAME_HEX 16

struct idx_entry {
    uint64_t seq;
    uint32_t size;    /* file bytes: header + payload */
    uint32_t records;
};

struct spool {
    pthread_mutex_t mu;
    int dirfd;
    int lockfd;
    char *path; /* from strdup() */
    uint64_t max_bytes;

    /* Stored batches in sequence order: idx[head .. head + count). Removal
     * is almost always from the front (acks, the bound), insertion almost
     * always at the back. From malloc(). */
    struct idx_entry *idx;
    size_t head, count, cap;
    uint64_t bytes, records;

    uint64_t epoch, next_seq, durable_next_seq, removed_through;
    uint64_t dropped_batches, dropped_records;         /* persisted */
    uint64_t quarantined_batches, quarantined_records; /* persisted */
    uint64_t quarantined_now, write_errors;            /* since open */
    uint64_t quarantine_serial;
    int inject_errno; /* tests: writes fail with this errno when set */
    struct log_ratelimit rl_write, rl_drop;
};

/* ---- little-endian fields, CRC ------------------------------------------ */

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_le32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, the one zlib and
 * Ethernet use), eight bytes per step with tables built once. Written here
 * rather than taken from zlib to keep the build's dependencies as they are;
 * about 2 GB/s, so checking a full 1 GiB spool at start takes half a second. */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

static uint32_t crc32_of(const uint8_t *p, size_t len)
{
    pthread_once(&crc_once, crc_init);
    uint32_t c = 0xFFFFFFFFu;
    while (len >= 8) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                           (uint32_t)p[3] << 24);
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
            crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][p[4]] ^
            crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
        p += 8;
        len -= 8;
    }
    while (len--)
        c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* ---- entry format -------------------------------------------------------- */

void spool__file_name(uint64_t seq, char buf[24])
{
    snprintf(buf, 24, "%016" PRIx64 BATCH_SUFFIX, seq);
}

static void tmp_name(uint64_t seq, char buf[24])
{
    snprintf(buf, 24, "%016" PRIx64 TMP_SUFFIX, seq);
}

void spool__make_header(uint8_t hdr[SPOOL_HDR_SIZE], uint64_t seq, uint64_t epoch,
                        const uint8_t *payload, uint32_t payload_len, uint32_t records)
{
    memcpy(hdr, BATCH_MAGIC, 4);
    put_le16(hdr + 4, FORMAT_VERSION);
    put_le16(hdr + 6, SPOOL_HDR_SIZE);
    put_le64(hdr + 8, seq);
    put_le64(hdr + 16, epoch);
    put_le32(hdr + 24, payload_len);
    put_le32(hdr + 28, records);
    put_le32(hdr + 32, crc32_of(payload, payload_len));
    put_le32(hdr + 36, crc32_of(hdr, 36));
}

/* Checks the header alone; the payload's CRC is left to the caller. */
static int check_header(const uint8_t *hdr, uint64_t expect_seq, uint64_t expect_epoch,
                        struct spool_entry_info *info, const char **why)
{
    if (memcmp(hdr, BATCH_MAGIC, 4) != 0) {
        *why = "bad magic";
        return VIGIL_EBADMSG;
    }
    if (get_le32(hdr + 36) != crc32_of(hdr, 36)) {
        *why = "header checksum mismatch";
        return VIGIL_EBADMSG;
    }
    if (get_le16(hdr + 4) != FORMAT_VERSION || get_le16(hdr + 6) != SPOOL_HDR_SIZE) {
        *why = "unsupported format version";
        return VIGIL_EBADMSG;
    }
    info->seq = get_le64(hdr + 8);
    info->epoch = get_le64(hdr + 16);
    info->payload_len = get_le32(hdr + 24);
    info->records = get_le32(hdr + 28);
    if (info->seq == 0 || info->seq >= SPOOL_MAX_SEQ ||
        (expect_seq && info->seq != expect_seq)) {
        *why = "sequence does not match the file name";
        return VIGIL_EBADMSG;
    }
    if (info->epoch == 0 || (expect_epoch && info->epoch != expect_epoch)) {
        *why = "written by another installation (epoch differs)";
        return VIGIL_EBADMSG;
    }
    if (info->payload_len > SPOOL_MAX_PAYLOAD) {
        *why = "payload length out of range";
        return VIGIL_EBADMSG;
    }
    return 0;
}

int spool__check_entry(const uint8_t *buf, size_t len, uint64_t expect_seq, uint64_t expect_epoch,
                       struct spool_entry_info *info, const char **why)
{
    memset(info, 0, sizeof *info);
    if (len < SPOOL_HDR_SIZE) {
        *why = "shorter than a header (torn write?)";
        return VIGIL_EBADMSG;
    }
    int rc = check_header(buf, expect_seq, expect_epoch, info, why);
    if (rc != 0)
        return rc;
    if (info->payload_len != len - SPOOL_HDR_SIZE) {
        *why = "length does not match the file size (torn write?)";
        return VIGIL_EBADMSG;
    }
    if (get_le32(buf + 32) != crc32_of(buf + SPOOL_HDR_SIZE, info->payload_len)) {
        *why = "payload checksum mismatch";
        return VIGIL_EBADMSG;
    }
    return 0;
}

/* Parses "<16 hex>.batch"; returns the sequence, or 0 if the name is not one. */
static uint64_t parse_batch_name(const char *name)
{
    if (strlen(name) != NAME_HEX + strlen(BATCH_SUFFIX) || strcmp(name + NAME_HEX, BATCH_SUFFIX))
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < NAME_HEX; i++) {
        char c = name[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            return 0;
        v = (v << 4) | d;
    }
    return v;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* ---- file I/O --------------------------------------------------------------- */

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return VIGIL_EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int read_all(int fd, uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return VIGIL_EBADMSG; /* shorter than promised */
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Writes a||b to tmp, syncs it, renames it to final and syncs the directory:
 * afterwards `final` holds exactly these bytes, even after a crash. Returns
 * 0 or a negative errno (the temporary file is removed). */
static int write_durably(struct spool *sp, const char *tmp, const char *final, const uint8_t *a,
                         size_t alen, const uint8_t *b, size_t blen)
{
    int rc;
    if (sp->inject_errno)
        return -sp->inject_errno;
    int fd = openat(sp->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    rc = write_all(fd, a, alen);
    if (rc == 0 && blen)
        rc = write_all(fd, b, blen);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && renameat(sp->dirfd, tmp, sp->dirfd, final) != 0)
        rc = -errno;
    if (rc != 0) {
        unlinkat(sp->dirfd, tmp, 0);
        return rc;
    }
    if (fsync(sp->dirfd) != 0)
        return -errno; /* the rename may not be durable: report it as not stored */
    return 0;
}

/* ---- the index ---------------------------------------------------------- */

static struct idx_entry *idx_at(struct spool *sp, size_t i)
{
    return &sp->idx[sp->head + i];
}

/* First position whose seq >= seq. */
static size_t idx_lower_bound(struct spool *sp, uint64_t seq)
{
    size_t lo = 0, hi = sp->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (idx_at(sp, mid)->seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int idx_insert(struct spool *sp, size_t pos, const struct idx_entry *e)
{
    if (sp->head + sp->count == sp->cap) {
        if (sp->head > 0) {
            memmove(sp->idx, sp->idx + sp->head, sp->count * sizeof *sp->idx);
            sp->head = 0;
        } else {
            size_t ncap = sp->cap ? sp->cap * 2 : 256;
            struct idx_entry *n = realloc(sp->idx, ncap * sizeof *n);
            if (!n)
                return VIGIL_ENOMEM;
            sp->idx = n;
            sp->cap = ncap;
        }
    }
    struct idx_entry *base = sp->idx + sp->head;
    memmove(base + pos + 1, base + pos, (sp->count - pos) * sizeof *base);
    base[pos] = *e;
    sp->count++;
    sp->bytes += e->size;
    sp->records += e->records;
    return 0;
}

static void idx_remove_at(struct spool *sp, size_t pos)
{
    struct idx_entry *base = sp->idx + sp->head;
    sp->bytes -= base[pos].size;
    sp->records -= base[pos].records;
    if (pos == 0) {
        sp->head++;
    } else {
        memmove(base + pos, base + pos + 1, (sp->count - pos - 1) * sizeof *base);
    }
    sp->count--;
    if (sp->count == 0)
        sp->head = 0;
}

/* ---- state file ------------------------------------------------------------- */

static int state_write(struct spool *sp)
{
    uint8_t b[STATE_SIZE] = {0};
    memcpy(b, STATE_MAGIC, 4);
    put_le16(b + 4, FORMAT_VERSION);
    put_le16(b + 6, STATE_SIZE);
    put_le64(b + 8, sp->epoch);
    put_le64(b + 16, sp->next_seq);
    put_le64(b + 24, sp->removed_through);
    put_le64(b + 32, sp->dropped_batches);
    put_le64(b + 40, sp->dropped_records);
    put_le64(b + 48, sp->quarantined_batches);
    put_le32(b + 56, sp->quarantined_records > UINT32_MAX ? UINT32_MAX
                                                           : (uint32_t)sp->quarantined_records);
    put_le32(b + 60, crc32_of(b, 60));
    int rc = write_durably(sp, STATE_TMP, STATE_NAME, b, sizeof b, NULL, 0);
    if (rc != 0) {
        sp->write_errors++;
        log_ratelimited(&sp->rl_write, LOG_LVL_ERR, "spool: cannot write %s/%s: %s", sp->path,
                        STATE_NAME, vigil_strerror(rc));
        return rc;
    }
    sp->durable_next_seq = sp->next_seq;
    return 0;
}

/* Returns 0 (loaded), VIGIL_ENOENT (no state file) or VIGIL_EBADMSG (damaged:
 * *why says how). */
static int state_read(struct spool *sp, const char **why)
{
    uint8_t b[STATE_SIZE + 1];
    int fd = openat(sp->dirfd, STATE_NAME, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return VIGIL_ENOENT;
        *why = strerror(errno);
        return VIGIL_EBADMSG;
    }
    ssize_t n;
    do
        n = read(fd, b, sizeof b);
    while (n < 0 && errno == EINTR);
    close(fd);
    if (n != STATE_SIZE) {
        *why = "wrong size";
        return VIGIL_EBADMSG;
    }
    if (memcmp(b, STATE_MAGIC, 4) != 0 || get_le32(b + 60) != crc32_of(b, 60)) {
        *why = "bad magic or checksum";
        return VIGIL_EBADMSG;
    }
    if (get_le16(b + 4) != FORMAT_VERSION || get_le16(b + 6) != STATE_SIZE) {
        *why = "unsupported format version";
        return VIGIL_EBADMSG;
    }
    uint64_t epoch = get_le64(b + 8);
    if (epoch == 0) {
        *why = "epoch 0";
        return VIGIL_EBADMSG;
    }
    uint64_t next = get_le64(b + 16), removed = get_le64(b + 24);
    if (next >= SPOOL_MAX_SEQ || removed >= SPOOL_MAX_SEQ) {
        *why = "sequence numbers out of range";
        return VIGIL_EBADMSG;
    }
    sp->epoch = epoch;
    sp->next_seq = next;
    sp->removed_through = removed;
    sp->dropped_batches = get_le64(b + 32);
    sp->dropped_records = get_le64(b + 40);
    sp->quarantined_batches = get_le64(b + 48);
    sp->quarantined_records = get_le32(b + 56);
    return 0;
}

static uint64_t random_epoch(void)
{
    uint64_t v = 0;
    while (v == 0) {
        if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) {
            /* No entropy source: time and pid still make a collision unlikely. */
            v = (uint64_t)vigil_wallclock_ns() ^ ((uint64_t)getpid() << 32) ^
                (uint64_t)vigil_monotonic_ns();
        }
    }
    return v;
}

/* ---- quarantine ------------------------------------------------------------- */

/* Moves DIR/name to DIR/quarantine/. A batch file (batch) is counted as
 * lost: records is what its header said, or 0 if even the header was
 * damaged. */
static void quarantine(struct spool *sp, const char *name, const char *why, bool batch,
                       uint32_t records)
{
    char dst[sizeof QUARANTINE_DIR + 96];
    if (mkdirat(sp->dirfd, QUARANTINE_DIR, 0700) != 0 && errno != EEXIST) {
        log_err("spool: %s/%s is damaged (%s) and cannot be quarantined: mkdir %s: %s; left in "
                "place, ignored",
                sp->path, name, why, QUARANTINE_DIR, strerror(errno));
    } else {
        snprintf(dst, sizeof dst, QUARANTINE_DIR "/%.40s.%" PRId64 ".%" PRIu64, name,
                 vigil_wallclock_ns() / NS_PER_SEC, ++sp->quarantine_serial);
        if (renameat(sp->dirfd, name, sp->dirfd, dst) != 0)
            log_err("spool: %s/%s is damaged (%s) and cannot be quarantined: %s; left in place, "
                    "ignored",
                    sp->path, name, why, strerror(errno));
        else
            log_err("spool: %s/%s is damaged (%s): moved to %s/%s%s", sp->path, name, why,
                    sp->path, dst, batch ? "; its records are lost (counted)" : "");
    }
    sp->quarantined_now++;
    if (batch) {
        sp->quarantined_batches++;
        sp->quarantined_records += records;
    }
}

/* ---- dropping the oldest ----------------------------------------------------- */

/* Drops the first n stored batches (the bound): counts them, persists the
 * state, then deletes the files. Returns 0 or the state write's error (then
 * nothing was dropped). */
static int drop_oldest(struct spool *sp, size_t n)
{
    if (n == 0)
        return 0;
    uint64_t old_removed = sp->removed_through;
    uint64_t batches = 0, records = 0;
    for (size_t i = 0; i < n; i++) {
        batches++;
        records += idx_at(sp, i)->records;
    }
    uint64_t last = idx_at(sp, n - 1)->seq;
    sp->dropped_batches += batches;
    sp->dropped_records += records;
    if (last > sp->removed_through)
        sp->removed_through = last;
    int rc = state_write(sp);
    if (rc != 0) {
        sp->dropped_batches -= batches;
        sp->dropped_records -= records;
        sp->removed_through = old_removed;
        return rc;
    }
    log_ratelimited(&sp->rl_drop, LOG_LVL_WARN,
                    "spool: %s is full (bound %" PRIu64 " bytes): dropped the oldest %" PRIu64
                    " batches (%" PRIu64 " records), up to seq %" PRIu64 "; counted and reported",
                    sp->path, sp->max_bytes, batches, records, last);
    for (size_t i = 0; i < n; i++) {
        char name[24];
        spool__file_name(idx_at(sp, 0)->seq, name);
        if (unlinkat(sp->dirfd, name, 0) != 0 && errno != ENOENT)
            log_warn("spool: cannot delete %s/%s: %s (it is deleted on the next start)", sp->path,
                     name, strerror(errno));
        idx_remove_at(sp, 0);
    }
    return 0;
}

/* ---- open / recovery ------------------------------------------------------------ */

struct found {
    uint64_t seq, epoch;
    uint32_t size, records;
};

static int cmp_found(const void *a, const void *b)
{
    const struct found *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Reads and checks one batch file at open. Returns 0 and fills *f, or
 * VIGIL_EBADMSG (quarantine it: *why, f->records set if the header was good),
 * or another negative errno (an I/O problem: leave the file alone). */
static int examine(struct spool *sp, const char *name, uint64_t seq, struct found *f,
                   const char **why)
{
    int rc;
    uint8_t *buf = NULL;
    memset(f, 0, sizeof *f);
    int fd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        *why = "not a regular file";
        rc = VIGIL_EBADMSG;
        goto fail;
    }
    if (st.st_size < (off_t)SPOOL_HDR_SIZE ||
        (uint64_t)st.st_size > (uint64_t)SPOOL_HDR_SIZE + SPOOL_MAX_PAYLOAD) {
        *why = st.st_size < (off_t)SPOOL_HDR_SIZE ? "shorter than a header (torn write?)"
                                                  : "larger than any batch";
        rc = VIGIL_EBADMSG;
        goto fail;
    }
    size_t size = (size_t)st.st_size;
    buf = malloc(size);
    if (!buf) {
        rc = VIGIL_ENOMEM;
        goto fail;
    }
    rc = read_all(fd, buf, size);
    if (rc == VIGIL_EBADMSG)
        *why = "shorter than its size (truncated while open?)";
    if (rc != 0)
        goto fail;
    struct spool_entry_info info;
    rc = spool__check_entry(buf, size, seq, 0, &info, why);
    f->records = info.records;
    if (rc != 0)
        goto fail;
    f->seq = seq;
    f->epoch = info.epoch;
    f->size = (uint32_t)size;
    free(buf);
    close(fd);
    return 0;
fail:
    free(buf);
    close(fd);
    return rc;
}

/* Walks DIR: removes temporaries, checks every batch file. Fills a
 * malloc'd array *out of good files (unsorted). */
static int scan(struct spool *sp, struct found **out, size_t *nout, char *err, size_t errlen)
{
    struct found *v = NULL;
    size_t n = 0, cap = 0;
    unsigned tmps = 0;
    int rc = 0;
    int fd = dup(sp->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        snprintf(err, errlen, "cannot list %s: %s", sp->path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -errno;
    }
    rewinddir(d);
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (!strcmp(name, ".") || !strcmp(name, "..") || !strcmp(name, STATE_NAME) ||
            !strcmp(name, LOCK_NAME) || !strcmp(name, QUARANTINE_DIR))
            continue;
        if (has_suffix(name, TMP_SUFFIX)) {
            /* An interrupted write: its put (or state write) never returned. */
            if (unlinkat(sp->dirfd, name, 0) == 0)
                tmps++;
            continue;
        }
        uint64_t seq = parse_batch_name(name);
        if (seq == 0) {
            log_warn("spool: ignoring %s/%s: not a spool file", sp->path, name);
            continue;
        }
        struct found f;
        const char *why = "";
        rc = examine(sp, name, seq, &f, &why);
        if (rc == VIGIL_EBADMSG) {
            quarantine(sp, name, why, true, f.records);
            rc = 0;
            continue;
        }
        if (rc != 0) {
            snprintf(err, errlen, "cannot read %s/%s: %s", sp->path, name, vigil_strerror(rc));
            goto fail;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 256;
            struct found *nv = realloc(v, ncap * sizeof *nv);
            if (!nv) {
                rc = VIGIL_ENOMEM;
                snprintf(err, errlen, "out of memory reading %s", sp->path);
                goto fail;
            }
            v = nv;
            cap = ncap;
        }
        v[n++] = f;
        errno = 0;
    }
    if (tmps)
        log_info("spool: removed %u unfinished writes from %s (interrupted before they were "
                 "stored)",
                 tmps, sp->path);
    closedir(d);
    *out = v;
    *nout = n;
    return 0;
fail:
    closedir(d);
    free(v);
    return rc;
}

static int recover(struct spool *sp, char *err, size_t errlen)
{
    const char *why = "";
    struct found *v = NULL;
    size_t n = 0;
    int rc = state_read(sp, &why);
    bool have_state = rc == 0;
    if (rc == VIGIL_EBADMSG) {
        quarantine(sp, STATE_NAME, why, false, 0);
        log_err("spool: the state file in %s was damaged: sequence numbers and drop counters "
                "are rebuilt from the stored batches",
                sp->path);
    }
    if (!have_state) {
        sp->epoch = 0;
        sp->next_seq = 1;
        sp->removed_through = 0;
    }
    rc = scan(sp, &v, &n, err, errlen);
    if (rc != 0)
        return rc;
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_found);
    if (!have_state)
        sp->epoch = n ? v[n - 1].epoch : random_epoch();

    unsigned stale = 0;
    for (size_t i = 0; i < n; i++) {
        char name[24];
        spool__file_name(v[i].seq, name);
        if (v[i].epoch != sp->epoch) {
            quarantine(sp, name, "written by another installation (epoch differs)", true,
                       v[i].records);
            continue;
        }
        if (v[i].seq <= sp->removed_through) {
            /* Acked or dropped before a crash that lost the unlink. */
            if (unlinkat(sp->dirfd, name, 0) == 0)
                stale++;
            continue;
        }
        struct idx_entry e = {.seq = v[i].seq, .size = v[i].size, .records = v[i].records};
        rc = idx_insert(sp, sp->count, &e);
        if (rc != 0) {
            snprintf(err, errlen, "out of memory indexing %s", sp->path);
            free(v);
            return rc;
        }
    }
    free(v);
    if (stale)
        log_info("spool: deleted %u batches of %s already removed before the last stop", stale,
                 sp->path);

    if (sp->next_seq == 0)
        sp->next_seq = 1;
    if (sp->removed_through >= sp->next_seq)
        sp->next_seq = sp->removed_through + 1;
    if (sp->count && idx_at(sp, sp->count - 1)->seq >= sp->next_seq)
        sp->next_seq = idx_at(sp, sp->count - 1)->seq + 1;

    rc = state_write(sp);
    if (rc != 0) {
        if (!have_state) {
            snprintf(err, errlen, "cannot write the state file in %s: %s", sp->path,
                     vigil_strerror(rc));
            return rc;
        }
        log_err("spool: cannot update the state file in %s: %s; continuing with the old one",
                sp->path, vigil_strerror(rc));
    }

    /* A smaller bound than last time: drop the oldest now. */
    size_t drop = 0;
    uint64_t bytes = sp->bytes;
    while (drop < sp->count && (bytes > sp->max_bytes || sp->count - drop > SPOOL_MAX_FILES))
        bytes -= idx_at(sp, drop++)->size;
    if (drop_oldest(sp, drop) != 0)
        log_err("spool: %s is over its bound and the oldest batches cannot be dropped yet",
                sp->path);
    fsync(sp->dirfd);
    return 0;
}

struct spool *spool_open(const char *dir, uint64_t max_bytes, char *err, size_t errlen)
{
    struct spool *sp = calloc(1, sizeof *sp);
    if (!sp) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&sp->mu, NULL);
    sp->dirfd = -1;
    sp->lockfd = -1;
    sp->max_bytes = max_bytes == 0 ? SPOOL_DEFAULT_MAX_BYTES : max_bytes;
    if (sp->max_bytes < SPOOL_MIN_MAX_BYTES)
        sp->max_bytes = SPOOL_MIN_MAX_BYTES;
    sp->path = strdup(dir);
    if (!sp->path) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create the spool folder %s: %s", dir, strerror(errno));
        goto fail;
    }
    sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sp->dirfd < 0) {
        snprintf(err, errlen, "cannot open the spool folder %s: %s", dir, strerror(errno));
        goto fail;
    }
    sp->lockfd = openat(sp->dirfd, LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (sp->lockfd < 0) {
        snprintf(err, errlen, "cannot create %s/%s: %s", dir, LOCK_NAME, strerror(errno));
        goto fail;
    }
    if (flock(sp->lockfd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "the spool folder %s is in use by another agent (%s)", dir,
                 errno == EWOULDBLOCK ? "locked" : strerror(errno));
        goto fail;
    }
    if (recover(sp, err, errlen) != 0)
        goto fail;
    log_debug("spool: %s: %zu batches, %" PRIu64 " bytes, next seq %" PRIu64 ", epoch %016" PRIx64,
              dir, sp->count, sp->bytes, sp->next_seq, sp->epoch);
    return sp;
fail:
    if (sp->lockfd >= 0)
        close(sp->lockfd);
    if (sp->dirfd >= 0)
        close(sp->dirfd);
    free(sp->idx);
    free(sp->path);
    pthread_mutex_destroy(&sp->mu);
    free(sp);
    return NULL;
}

void spool_close(struct spool *sp)
{
    if (!sp)
        return;
    pthread_mutex_lock(&sp->mu);
    state_write(sp); /* the sequence counter and the counts, as they are now */
    pthread_mutex_unlock(&sp->mu);
    close(sp->lockfd); /* releases the flock */
    close(sp->dirfd);
    free(sp->idx);
    free(sp->path);
    pthread_mutex_destroy(&sp->mu);
    free(sp);
}

/* ---- operations ------------------------------------------------------------------ */

uint64_t spool_next_seq(struct spool *sp)
{
    pthread_mutex_lock(&sp->mu);
    uint64_t s = sp->next_seq++;
    pthread_mutex_unlock(&sp->mu);
    return s;
}

uint64_t spool_epoch(struct spool *sp)
{
    return sp->epoch; /* set once at open */
}

int spool_put(struct spool *sp, uint64_t seq, const uint8_t *data, size_t len, uint32_t records)
{
    if (seq == 0 || seq >= SPOOL_MAX_SEQ || len > SPOOL_MAX_PAYLOAD)
        return VIGIL_EINVAL;
    uint8_t hdr[SPOOL_HDR_SIZE];
    char name[24], tmp[24];
    int rc = 0;
    uint64_t size = SPOOL_HDR_SIZE + (uint64_t)len;

    pthread_mutex_lock(&sp->mu);
    size_t pos = idx_lower_bound(sp, seq);
    if (pos < sp->count && idx_at(sp, pos)->seq == seq)
        goto out; /* already stored */
    if (seq >= sp->next_seq)
        sp->next_seq = seq + 1; /* never hand out a number that is stored */

    /* Make room by dropping the oldest. If this batch is itself older than
     * what must go (or older than something already dropped), it is the
     * one dropped. */
    size_t drop = 0;
    uint64_t bytes = sp->bytes;
    bool self = seq <= sp->removed_through || size > sp->max_bytes;
    while (!self && (bytes + size > sp->max_bytes || sp->count - drop + 1 > SPOOL_MAX_FILES)) {
        if (drop == sp->count || idx_at(sp, drop)->seq > seq) {
            self = true;
            break;
        }
        bytes -= idx_at(sp, drop++)->size;
    }
    if (self) {
        sp->dropped_batches++;
        sp->dropped_records += records;
        log_ratelimited(&sp->rl_drop, LOG_LVL_WARN,
                        "spool: %s is full (bound %" PRIu64 " bytes): batch %" PRIu64
                        " (%" PRIu32 " records) is the oldest and was dropped; counted and "
                        "reported",
                        sp->path, sp->max_bytes, seq, records);
        state_write(sp); /* the count survives a crash; if this fails, close retries */
        rc = VIGIL_EFULL;
        goto out;
    }
    rc = drop_oldest(sp, drop);
    if (rc != 0)
        goto out;

    spool__make_header(hdr, seq, sp->epoch, data, (uint32_t)len, records);
    spool__file_name(seq, name);
    tmp_name(seq, tmp);
    rc = write_durably(sp, tmp, name, hdr, sizeof hdr, data, len);
    if (rc != 0) {
        sp->write_errors++;
        log_ratelimited(&sp->rl_write, LOG_LVL_ERR, "spool: cannot store batch %" PRIu64 " in %s: %s",
                        seq, sp->path, vigil_strerror(rc));
        goto out;
    }
    struct idx_entry e = {.seq = seq, .size = (uint32_t)size, .records = records};
    rc = idx_insert(sp, idx_lower_bound(sp, seq), &e);
    if (rc != 0) {
        /* Stored but not indexed: it will be found on the next open. */
        log_err("spool: out of memory indexing batch %" PRIu64 " (found again on restart)", seq);
        unlinkat(sp->dirfd, name, 0);
    }
out:
    pthread_mutex_unlock(&sp->mu);
    return rc;
}

int spool_next_after(struct spool *sp, uint64_t after, uint64_t *seq)
{
    int rc = VIGIL_ENOENT;
    pthread_mutex_lock(&sp->mu);
    size_t pos = after == UINT64_MAX ? sp->count : idx_lower_bound(sp, after + 1);
    if (pos < sp->count) {
        *seq = idx_at(sp, pos)->seq;
        rc = 0;
    }
    pthread_mutex_unlock(&sp->mu);
    return rc;
}

bool spool_contains(struct spool *sp, uint64_t seq)
{
    pthread_mutex_lock(&sp->mu);
    size_t pos = idx_lower_bound(sp, seq);
    bool found = pos < sp->count && idx_at(sp, pos)->seq == seq;
    pthread_mutex_unlock(&sp->mu);
    return found;
}

int spool_read(struct spool *sp, uint64_t seq, uint8_t **data, size_t *len, uint32_t *records)
{
    char name[24];
    uint8_t hdr[SPOOL_HDR_SIZE];
    uint8_t *buf = NULL;
    const char *why = "";
    int fd = -1, rc;

    *data = NULL;
    *len = 0;
    pthread_mutex_lock(&sp->mu);
    size_t pos = idx_lower_bound(sp, seq);
    if (pos >= sp->count || idx_at(sp, pos)->seq != seq) {
        rc = VIGIL_ENOENT;
        goto out;
    }
    struct idx_entry e = *idx_at(sp, pos);
    spool__file_name(seq, name);
    fd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        if (rc == VIGIL_ENOENT) {
            log_err("spool: %s/%s vanished (deleted from outside?): its %" PRIu32
                    " records are lost (counted)",
                    sp->path, name, e.records);
            sp->quarantined_batches++;
            sp->quarantined_records += e.records;
            idx_remove_at(sp, pos);
            rc = VIGIL_EBADMSG;
        }
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto out;
    }
    if ((uint64_t)st.st_size != e.size) {
        why = "its size changed since it was stored";
        rc = VIGIL_EBADMSG;
        goto damaged;
    }
    rc = read_all(fd, hdr, sizeof hdr);
    if (rc != 0) {
        why = "short read";
        goto damaged;
    }
    struct spool_entry_info info;
    rc = check_header(hdr, seq, sp->epoch, &info, &why);
    if (rc != 0)
        goto damaged;
    if ((uint64_t)info.payload_len + SPOOL_HDR_SIZE != e.size) {
        why = "length does not match the file size";
        rc = VIGIL_EBADMSG;
        goto damaged;
    }
    buf = malloc(info.payload_len ? info.payload_len : 1);
    if (!buf) {
        rc = VIGIL_ENOMEM;
        goto out;
    }
    rc = read_all(fd, buf, info.payload_len);
    if (rc != 0) {
        why = "short read";
        goto damaged;
    }
    if (get_le32(hdr + 32) != crc32_of(buf, info.payload_len)) {
        why = "payload checksum mismatch";
        rc = VIGIL_EBADMSG;
        goto damaged;
    }
    *data = buf;
    *len = info.payload_len;
    if (records)
        *records = info.records;
    buf = NULL;
    rc = 0;
    goto out;
damaged:
    if (rc == VIGIL_EBADMSG) {
        if (fd >= 0) {
            close(fd);
            fd = -1;
        }
        quarantine(sp, name, why, true, e.records);
        idx_remove_at(sp, pos);
    }
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    pthread_mutex_unlock(&sp->mu);
    return rc;
}

int spool_remove_through(struct spool *sp, uint64_t seq)
{
    int rc = 0;
    pthread_mutex_lock(&sp->mu);
    size_t n = idx_lower_bound(sp, seq == UINT64_MAX ? seq : seq + 1);
    if (seq == UINT64_MAX)
        n = sp->count;
    if (n == 0)
        goto out;
    uint64_t old = sp->removed_through;
    uint64_t last = idx_at(sp, n - 1)->seq;
    if (last > sp->removed_through)
        sp->removed_through = last;
    rc = state_write(sp);
    if (rc != 0) {
        sp->removed_through = old;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        char name[24];
        spool__file_name(idx_at(sp, 0)->seq, name);
        if (unlinkat(sp->dirfd, name, 0) != 0 && errno != ENOENT)
            log_warn("spool: cannot delete %s/%s: %s (it is deleted on the next start)", sp->path,
                     name, strerror(errno));
        idx_remove_at(sp, 0);
    }
out:
    pthread_mutex_unlock(&sp->mu);
    return rc;
}

int spool_sync_state(struct spool *sp)
{
    pthread_mutex_lock(&sp->mu);
    int rc = state_write(sp);
    pthread_mutex_unlock(&sp->mu);
    return rc;
}

void spool_get_stats(struct spool *sp, struct spool_stats *out)
{
    pthread_mutex_lock(&sp->mu);
    memset(out, 0, sizeof *out);
    out->bytes = sp->bytes;
    out->batches = sp->count;
    out->records = sp->records;
    out->oldest_seq = sp->count ? idx_at(sp, 0)->seq : 0;
    out->newest_seq = sp->count ? idx_at(sp, sp->count - 1)->seq : 0;
    out->next_seq = sp->next_seq;
    out->durable_next_seq = sp->durable_next_seq;
    out->removed_through = sp->removed_through;
    out->epoch = sp->epoch;
    out->max_bytes = sp->max_bytes;
    out->dropped_batches = sp->dropped_batches;
    out->dropped_records = sp->dropped_records;
    out->quarantined_batches = sp->quarantined_batches;
    out->quarantined_records = sp->quarantined_records;
    out->quarantined = sp->quarantined_now;
    out->write_errors = sp->write_errors;
    pthread_mutex_unlock(&sp->mu);
}

void spool__inject_write_error(struct spool *sp, int err)
{
    pthread_mutex_lock(&sp->mu);
    sp->inject_errno = err;
    pthread_mutex_unlock(&sp->mu);
}
