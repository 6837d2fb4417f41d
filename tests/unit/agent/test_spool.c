/* test_spool.c — the on-disk spool: order, restart, damage, the bound, a
 * full disk, and crashes in the middle of writes (fork + SIGKILL).
 *
 * Every test works in its own fresh folder under $TMPDIR (or /tmp), removed
 * afterwards. Payloads are derived from the sequence number, so any batch
 * read back can be checked byte for byte. */
#include "err.h"
#include "spool.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers (test_export.c uses these too) ------------------------------- */

void tspool_rmtree(const char *dir);
void tspool_mkdtemp(char buf[256], const char *tag);
size_t tspool_payload(uint64_t seq, uint8_t *buf, size_t cap);

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void tspool_rmtree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void tspool_mkdtemp(char buf[256], const char *tag)
{
    const char *base = getenv("TMPDIR");
    snprintf(buf, 256, "%s/vigil-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    cr_assert_not_null(mkdtemp(buf), "mkdtemp %s: %s", buf, strerror(errno));
}

/* Payload of batch seq: len bytes, a pattern that differs for every seq. */
size_t tspool_payload(uint64_t seq, uint8_t *buf, size_t cap)
{
    size_t len = 100 + (size_t)(seq * 37 % 900);
    if (len > cap)
        len = cap;
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seq * 131 + i * 7 + (i >> 8));
    return len;
}

static void put_seq(struct spool *sp, uint64_t seq)
{
    uint8_t buf[1024];
    size_t len = tspool_payload(seq, buf, sizeof buf);
    int rc = spool_put(sp, seq, buf, len, (uint32_t)(seq % 7 + 1));
    cr_assert_eq(rc, 0, "put %llu: %s", (unsigned long long)seq, vigil_strerror(rc));
}

static void check_seq(struct spool *sp, uint64_t seq)
{
    uint8_t want[1024];
    size_t wlen = tspool_payload(seq, want, sizeof want);
    uint8_t *got = NULL;
    size_t len = 0;
    uint32_t recs = 0;
    int rc = spool_read(sp, seq, &got, &len, &recs);
    cr_assert_eq(rc, 0, "read %llu: %s", (unsigned long long)seq, vigil_strerror(rc));
    cr_assert_eq(len, wlen, "seq %llu: length %zu, expected %zu", (unsigned long long)seq, len,
                 wlen);
    cr_assert_eq(memcmp(got, want, len), 0, "seq %llu: content differs", (unsigned long long)seq);
    cr_assert_eq(recs, (uint32_t)(seq % 7 + 1));
    free(got);
}

static struct spool *open_ok(const char *dir, uint64_t max)
{
    char err[256] = "";
    struct spool *sp = spool_open(dir, max, err, sizeof err);
    cr_assert_not_null(sp, "spool_open %s: %s", dir, err);
    return sp;
}

static unsigned count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    unsigned n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name), m = strlen(suffix);
        if (de->d_name[0] != '.' && l >= m && strcmp(de->d_name + l - m, suffix) == 0)
            n++;
    }
    closedir(d);
    return n;
}

static void file_path(char out[512], const char *dir, uint64_t seq)
{
    char name[24];
    spool__file_name(seq, name);
    snprintf(out, 512, "%s/%s", dir, name);
}

static char dir[256];

static void setup(void)
{
    tspool_mkdtemp(dir, "spool");
}

static void teardown(void)
{
    tspool_rmtree(dir);
}

TestSuite(spool, .init = setup, .fini = teardown);

/* ---- order ------------------------------------------------------------------ */

Test(spool, put_iterate_remove_in_order)
{
    struct spool *sp = open_ok(dir, 0);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(spool_next_seq(sp), (uint64_t)i + 1);
    /* stored out of order on purpose: the flow thread may spill a later
     * batch while the exporter still holds an earlier one */
    for (uint64_t s = 1; s <= 10; s++)
        if (s != 4)
            put_seq(sp, s);
    put_seq(sp, 4);
    put_seq(sp, 4); /* twice: no change */

    uint64_t seq = 0, expect = 1;
    while (spool_next_after(sp, seq, &seq) == 0) {
        cr_assert_eq(seq, expect++);
        check_seq(sp, seq);
    }
    cr_assert_eq(expect, 11);

    struct spool_stats st;
    spool_get_stats(sp, &st);
    cr_assert_eq(st.batches, 10);
    cr_assert_eq(st.oldest_seq, 1);
    cr_assert_eq(st.newest_seq, 10);
    cr_assert_neq(st.epoch, 0);

    cr_assert_eq(spool_remove_through(sp, 5), 0);
    cr_assert_eq(spool_next_after(sp, 0, &seq), 0);
    cr_assert_eq(seq, 6);
    cr_assert_not(spool_contains(sp, 5));
    cr_assert(spool_contains(sp, 6));
    uint8_t *p;
    size_t len;
    cr_assert_eq(spool_read(sp, 3, &p, &len, NULL), VIGIL_ENOENT);
    spool_get_stats(sp, &st);
    cr_assert_eq(st.batches, 5);
    cr_assert_eq(st.removed_through, 5);
    cr_assert_eq(count_files(dir, ".batch"), 5);

    cr_assert_eq(spool_remove_through(sp, UINT64_MAX), 0);
    cr_assert_eq(spool_next_after(sp, 0, &seq), VIGIL_ENOENT);
    spool_get_stats(sp, &st);
    cr_assert_eq(st.batches, 0);
    cr_assert_eq(st.bytes, 0);
    spool_close(sp);
}

Test(spool, restart_keeps_batches_seq_and_epoch)
{
    struct spool *sp = open_ok(dir, 0);
    uint64_t epoch = spool_epoch(sp);
    for (int i = 0; i < 6; i++)
        put_seq(sp, spool_next_seq(sp));
    cr_assert_eq(spool_remove_through(sp, 2), 0);
    spool_next_seq(sp); /* 7: handed out, never stored */
    spool_close(sp);

    sp = open_ok(dir, 0);
    cr_assert_eq(spool_epoch(sp), epoch);
    uint64_t seq = 0, expect = 3;
    while (spool_next_after(sp, seq, &seq) == 0) {
        cr_assert_eq(seq, expect++);
        check_seq(sp, seq);
    }
    cr_assert_eq(expect, 7);
    cr_assert_eq(spool_next_seq(sp), 8, "a number handed out before a clean close is not reused");

    /* everything acked: the numbers still go on after a restart */
    cr_assert_eq(spool_remove_through(sp, 8), 0);
    spool_close(sp);
    sp = open_ok(dir, 0);
    struct spool_stats st;
    spool_get_stats(sp, &st);
    cr_assert_eq(st.batches, 0);
    cr_assert_eq(spool_next_seq(sp), 9);
    spool_close(sp);
}

Test(spool, second_opener_is_refused)
{
    struct spool *sp = open_ok(dir, 0);
    char err[256] = "";
    cr_assert_null(spool_open(dir, 0, err, sizeof err));
    cr_assert(strstr(err, "in use") != NULL, "message: %s", err);
    spool_close(sp);
}

/* ---- damage ------------------------------------------------------------------ */

Test(spool, damaged_files_are_quarantined_on_open)
{
    struct spool *sp = open_ok(dir, 0);
    for (uint64_t s = 1; s <= 8; s++)
        put_seq(sp, spool_next_seq(sp));
    spool_close(sp);

    char path[512];
    /* 2: truncated in the middle of its payload */
    file_path(path, dir, 2);
    cr_assert_eq(truncate(path, 60), 0);
    /* 3: shorter than a header */
    file_path(path, dir, 3);
    cr_assert_eq(truncate(path, 10), 0);
    /* 5: one payload byte flipped */
    file_path(path, dir, 5);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, 50), 1);
    b ^= 0x40;
    cr_assert_eq(pwrite(fd, &b, 1, 50), 1);
    close(fd);
    /* 6: header garbled */
    file_path(path, dir, 6);
    fd = open(path, O_RDWR);
    cr_assert_eq(pwrite(fd, "garbage!", 8, 8), 8);
    close(fd);
    /* 7: renamed to another sequence number */
    char other[512];
    file_path(path, dir, 7);
    file_path(other, dir, 70);
    cr_assert_eq(rename(path, other), 0);
    /* an interrupted write and an unrelated file */
    snprintf(path, sizeof path, "%s/0000000000000009.tmp", dir);
    FILE *f = fopen(path, "w");
    fputs("half", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/README", dir);
    f = fopen(path, "w");
    fclose(f);

    sp = open_ok(dir, 0);
    struct spool_stats st;
    spool_get_stats(sp, &st);
    cr_assert_eq(st.quarantined, 5);
    cr_assert_eq(st.quarantined_batches, 5);
    /* records are known where the header survived: 2 (3 records), 5 (6),
     * 70 (renamed 7: 1) */
    cr_assert_eq(st.quarantined_records, 3 + 6 + 1);
    cr_assert_eq(st.batches, 3);
    uint64_t seq = 0;
    const uint64_t good[] = {1, 4, 8};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(spool_next_after(sp, seq, &seq), 0);
        cr_assert_eq(seq, good[i]);
        check_seq(sp, seq);
    }
    snprintf(path, sizeof path, "%s/quarantine", dir);
    cr_assert_eq(count_files(path, ""), 5);
    cr_assert_eq(count_files(dir, ".tmp"), 0);
    cr_assert_eq(spool_next_seq(sp), 9);
    spool_close(sp);

    /* the counts persist; nothing is quarantined twice */
    sp = open_ok(dir, 0);
    spool_get_stats(sp, &st);
    cr_assert_eq(st.quarantined, 0);
    cr_assert_eq(st.quarantined_batches, 5);
    cr_assert_eq(st.batches, 3);
    spool_close(sp);
}

Test(spool, damage_after_open_is_caught_on_read)
{
    struct spool *sp = open_ok(dir, 0);
    put_seq(sp, 1);
    put_seq(sp, 2);
    char path[512];
    file_path(path, dir, 1);
    int fd = open(path, O_RDWR);
    cr_assert_eq(pwrite(fd, "xx", 2, 45), 2);
    close(fd);
    uint8_t *p = NULL;
    size_t len;
    cr_assert_eq(spool_read(sp, 1, &p, &len, NULL), VIGIL_EBADMSG);
    cr_assert_null(p);
    cr_assert_not(spool_contains(sp, 1));
    check_seq(sp, 2);
    struct spool_stats st;
    spool_get_stats(sp, &st);
    cr_assert_eq(st.quarantined_batches, 1);
    cr_assert_eq(st.batches, 1);
    spool_close(sp);
}

Test(spool, damaged_state_is_rebuilt_from_the_batches)
{
    struct spool *sp = open_ok(dir, 0);
    uint64_t epoch = spool_epoch(sp);
    for (int i = 0; i < 4; i++)
        put_seq(sp, spool_next_seq(sp));
    spool_close(sp);
    char path[512];
    snprintf(path, sizeof path, "%s/state", dir);
    int fd = open(path, O_RDWR);
    cr_assert_eq(pwrite(fd, "\xff\xff\xff", 3, 20), 3);
    close(fd);

    sp = open_ok(dir, 0);
    cr_assert_eq(spool_epoch(sp), epoch, "the epoch comes back from the batch headers");
    cr_assert_eq(spool_next_seq(sp), 5);
    struct spool_stats st;
    spool_get_stats(sp, &st);
    cr_assert_eq(st.batches, 4);
    cr_assert_eq(st.quarantined, 1);
    cr_assert_eq(st.quarantined_batches, 0, "the state file is not a batch");
    spool_close(sp);
}

Test(spool, header_crc_is_crc32_ieee)
{
    /* the standard check value of CRC-32: "123456789" -> 0xCBF43926 */
    uint8_t hdr[SPOOL_HDR_SIZE];
    spool__make_header(hdr, 1, 1, (const uint8_t *)"123456789", 9, 0);
    cr_assert_eq(hdr[32] | hdr[33] << 8 | hdr[34] << 16 | (uint32_t)hdr[35] << 24, 0xCBF43926u);
    /* longer than the 8-byte step, with a tail: 0..255 three times, "abc"
     * (zlib.crc32 gives 0x9D3A9924) */
    static uint8_t buf[771];
    for (size_t i = 0; i < 768; i++)
        buf[i] = (uint8_t)i;
    memcpy(buf + 768, "abc", 3);
    spool__make_header(hdr, 1, 1, buf, sizeof buf, 0);
    cr_assert_eq(hdr[32] | hdr[33] << 8 | hdr[34] << 16 | (uint32_t)hdr[35] << 24, 0x9D3A9924u);
}

Test(spool, check_entry_rejects_garbage)
{
    uint8_t payload[300], buf[SPOOL_HDR_SIZE + sizeof payload];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)i;
    spool__make_header(buf, 42, 7, payload, sizeof payload, 9);
    memcpy(buf + SPOOL_HDR_SIZE, payload, sizeof payload);
    struct spool_entry_info info;
    const char *why = NULL;
    cr_assert_eq(spool__check_entry(buf, sizeof buf, 42, 7, &info, &why), 0);
    cr_assert_eq(info.seq, 42);
    cr_assert_eq(info.records, 9);
    cr_assert_eq(spool__check_entry(buf, sizeof buf, 43, 7, &info, &why), VIGIL_EBADMSG);
    cr_assert_eq(spool__check_entry(buf, sizeof buf, 42, 8, &info, &why), VIGIL_EBADMSG);
    cr_assert_eq(spool__check_entry(buf, sizeof buf - 1, 42, 7, &info, &why), VIGIL_EBADMSG);
    cr_assert_eq(spool__check_entry(buf, 39, 0, 0, &info, &why), VIGIL_EBADMSG);
    for (size_t i = 0; i < sizeof buf; i += 13) {
        buf[i] ^= 1;
        cr_assert_eq(spool__check_entry(buf, sizeof buf, 0, 0, &info, &why), VIGIL_EBADMSG,
                     "flipped byte %zu not detected", i);
        buf[i] ^= 1;
    }
}

/* ---- the bound ------------------------------------------------------------------ */

Test(spool, bound_drops_the_oldest_and_counts)
{
    /* 64 KiB bound, 10000-byte payloads: six fit (60240 bytes), not seven */
    struct spool *sp = open_ok(dir, SPOOL_MIN_MAX_BYTES);
    static uint8_t big[10000];
    for (uint64_t s = 1; s <= 10; s++) {
        memset(big, (int)s, sizeof big);
        cr_assert_eq(spool_put(sp, s, big, sizeof big, 100 + (uint32_t)s), 0);
    }
    struct spool_stats st;
    spool_get_stats(sp, &st);
    cr_assert_eq(st.batches, 6);
    cr_assert_leq(st.bytes, SPOOL_MIN_MAX_BYTES);
    cr_assert_eq(st.oldest_seq, 5);
    cr_assert_eq(st.dropped_batches, 4);
    cr_assert_eq(st.dropped_records, 101 + 102 + 103 + 104);
    cr_assert_eq(count_files(dir, ".batch"), 6);

    /* an older batch arriving now is itself the oldest: dropped, counted */
    cr_assert_eq(spool_put(sp, 3, big, sizeof big, 5), VIGIL_EFULL);
    spool_get_stats(sp, &st);
    cr_assert_eq(st.dropped_batches, 5);
    cr_assert_eq(st.dropped_records, 101 + 102 + 103 + 104 + 5);
    spool_close(sp);

    /* persisted across a restart */
    sp = open_ok(dir, 0);
    spool_get_stats(sp, &st);
    cr_assert_eq(st.dropped_batches, 5);
    cr_assert_eq(st.batches, 6);
    cr_assert_eq(spool_next_seq(sp), 11);
    spool_close(sp);
}

Test(spool, smaller_bound_on_open_drops_the_oldest)
{
    struct spool *sp = open_ok(dir, 0);
    static uint8_t big[10000];
    for (uint64_t s = 1; s <= 10; s++)
        cr_assert_eq(spool_put(sp, spool_next_seq(sp), big, sizeof big, 2), 0);
    spool_close(sp);
    sp = open_ok(dir, SPOOL_MIN_MAX_BYTES);
    struct spool_stats st;
    spool_get_stats(sp, &st);
    cr_assert_eq(st.batches, 6);
    cr_assert_eq(st.oldest_seq, 5);
    cr_assert_eq(st.dropped_batches, 4);
    cr_assert_eq(st.dropped_records, 8);
    cr_assert_eq(count_files(dir, ".batch"), 6);
    spool_close(sp);
}

Test(spool, vanished_file_is_counted)
{
    struct spool *sp = open_ok(dir, 0);
    put_seq(sp, 1);
    put_seq(sp, 2);
    char path[512];
    file_path(path, dir, 1);
    cr_assert_eq(unlink(path), 0);
    uint8_t *p;
    size_t len;
    cr_assert_eq(spool_read(sp, 1, &p, &len, NULL), VIGIL_EBADMSG);
    struct spool_stats st;
    spool_get_stats(sp, &st);
    cr_assert_eq(st.quarantined_batches, 1);
    cr_assert_eq(st.quarantined_records, 2);
    cr_assert_eq(st.batches, 1);
    check_seq(sp, 2);
    spool_close(sp);
}

Test(spool, full_disk_reports_and_recovers)
{
    struct spool *sp = open_ok(dir, 0);
    put_seq(sp, 1);
    spool__inject_write_error(sp, ENOSPC);
    uint8_t buf[200] = {0};
    cr_assert_eq(spool_put(sp, 2, buf, sizeof buf, 1), -ENOSPC);
    cr_assert_not(spool_contains(sp, 2));
    cr_assert_eq(spool_remove_through(sp, 1), -ENOSPC, "nothing is removed before the state");
    cr_assert(spool_contains(sp, 1));
    struct spool_stats st;
    spool_get_stats(sp, &st);
    cr_assert_geq(st.write_errors, 2);
    cr_assert_eq(count_files(dir, ".tmp"), 0);
    spool__inject_write_error(sp, 0);
    put_seq(sp, 2);
    cr_assert_eq(spool_remove_through(sp, 1), 0);
    check_seq(sp, 2);
    spool_close(sp);
}

/* ---- crashes -------------------------------------------------------------------- */

/* The child stores batches (removing acked ones now and then) and reports
 * each sequence on the pipe after spool_put returned; it is killed at a
 * random moment. Every reported batch above the last announced removal
 * must then be readable intact; below it, a batch may be gone or intact. */
static void crash_child(const char *d, int wfd, unsigned seed)
{
    char err[256];
    struct spool *sp = spool_open(d, 0, err, sizeof err);
    if (!sp)
        _exit(3);
    srand(seed);
    for (;;) {
        uint64_t s = spool_next_seq(sp);
        uint8_t buf[1024];
        size_t len = tspool_payload(s, buf, sizeof buf);
        if (spool_put(sp, s, buf, len, (uint32_t)(s % 7 + 1)) != 0)
            _exit(4);
        if (write(wfd, &s, sizeof s) != (ssize_t)sizeof s)
            _exit(5);
        if (rand() % 16 == 0 && s > 4) {
            /* announced before it happens (as the complement): the parent
             * cannot know whether a kill came before or after it */
            uint64_t through = s - 4, neg = ~through;
            if (write(wfd, &neg, sizeof neg) != (ssize_t)sizeof neg)
                _exit(5);
            if (spool_remove_through(sp, through) != 0)
                _exit(6);
        }
    }
}

#define CRASH_MAX_SEQ 65536
static bool stored[CRASH_MAX_SEQ]; /* reported by a child as returned from spool_put */

Test(spool, sigkill_during_writes_loses_nothing_returned, .timeout = 120)
{
    uint64_t removed = 0, last_put = 0, puts = 0;
    unsigned seed = (unsigned)time(NULL);
    srand(seed);
    for (int round = 0; round < 16; round++) {
        int p[2];
        cr_assert_eq(pipe(p), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            close(p[0]);
            crash_child(dir, p[1], seed + (unsigned)round);
        }
        close(p[1]);
        /* kill at a random moment once the child is writing */
        uint64_t v;
        ssize_t got = read(p[0], &v, sizeof v);
        struct timespec ts = {0, (long)(rand() % 20000) * 1000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        cr_assert(WIFSIGNALED(status), "child exited early with %d", WEXITSTATUS(status));
        for (; got == (ssize_t)sizeof v; got = read(p[0], &v, sizeof v)) {
            if (v > (UINT64_MAX >> 1)) {
                removed = ~v;
                continue;
            }
            cr_assert_gt(v, last_put, "sequence %llu after %llu: a number was reused",
                         (unsigned long long)v, (unsigned long long)last_put);
            cr_assert_lt(v, CRASH_MAX_SEQ);
            last_put = v;
            stored[v] = true;
            puts++;
        }
        close(p[0]);

        struct spool *sp = open_ok(dir, 0);
        struct spool_stats st;
        spool_get_stats(sp, &st);
        cr_assert_eq(st.quarantined, 0, "a killed writer never leaves a damaged batch");
        for (uint64_t s = removed + 1; s <= last_put; s++)
            if (stored[s])
                check_seq(sp, s);
        for (uint64_t s = removed > 8 ? removed - 8 : 1; s <= removed; s++)
            if (spool_contains(sp, s))
                check_seq(sp, s);
        /* the parent takes a number too: the next child must go past it */
        cr_assert_gt(spool_next_seq(sp), last_put);
        cr_assert_eq(count_files(dir, ".tmp"), 0);
        spool_close(sp);
    }
    cr_assert_geq(puts, 16, "the children stored something");
}
