/* fuzz_spool.c — fuzz target for the spool's recovery (agent/spool.c): a
 * spool folder holding arbitrary files must open, quarantine what is
 * damaged, and then behave.
 *
 * Input layout:
 *
 *   0        1                         (repeated: count files)
 *   +--------+------+--------+---------------+
 *   | flags  | kind | len BE | len bytes ... |
 *   +--------+------+--------+---------------+
 *
 *   flags: bits 0-1 = count - 1 (1..4 files); bit 2 = open with the
 *          smallest bound (SPOOL_MIN_MAX_BYTES), so recovery also drops;
 *   kind:  0 = "state", 1 = "state.tmp", 2..127 = batch (kind - 1) as
 *          "<seq:016x>.batch", 128..255 = "<seq:016x>.tmp" (seq = kind & 127);
 *   len:   2 bytes big-endian, cut to what is left of the input.
 *
 * The files are written into a fresh folder (under /dev/shm when there is
 * one: fsync is then cheap), then the target checks the spool's promises:
 * spool_open succeeds (garbage never makes the folder unusable), every
 * batch it lists reads back, the counts add up and respect the bound, the
 * next sequence is above every stored one, a new batch can be stored and
 * read back, and a second open finds nothing left to quarantine. The whole
 * input is also fed to spool__check_entry. Non-goals: crashes in the middle
 * of writes (test_spool.c kills writers with SIGKILL). */
#include "spool.h"

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char base[256]; /* the run's folder, made once */
static char dir[300];  /* the spool folder inside it, remade per input */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    if (base[0])
        nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup_once(void)
{
    if (base[0])
        return;
    struct stat st;
    const char *root = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(base, sizeof base, "%s/vigil-fuzz-spool-XXXXXX", root);
    if (!mkdtemp(base))
        abort();
    snprintf(dir, sizeof dir, "%s/spool", base);
    atexit(cleanup);
}

static void write_file(const char *name, const uint8_t *p, size_t n)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (n && fwrite(p, 1, n, f) != n)
        abort();
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct spool_entry_info info;
    const char *why;
    spool__check_entry(data, size, 0, 0, &info, &why);
    if (size == 0)
        return 0;

    setup_once();
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (mkdir(dir, 0700) != 0)
        abort();

    unsigned count = (data[0] & 3u) + 1;
    uint64_t max = (data[0] & 4u) ? SPOOL_MIN_MAX_BYTES : 0;
    size_t off = 1;
    for (unsigned i = 0; i < count && size - off >= 3; i++) {
        unsigned kind = data[off];
        size_t len = (size_t)data[off + 1] << 8 | data[off + 2];
        off += 3;
        if (len > size - off)
            len = size - off;
        char name[32];
        if (kind == 0)
            snprintf(name, sizeof name, "state");
        else if (kind == 1)
            snprintf(name, sizeof name, "state.tmp");
        else if (kind < 128)
            spool__file_name(kind - 1, name);
        else
            snprintf(name, sizeof name, "%016x.tmp", kind & 127u);
        write_file(name, data + off, len);
        off += len;
    }

    char err[256];
    struct spool *sp = spool_open(dir, max, err, sizeof err);
    if (!sp)
        abort(); /* damaged content must never make the folder unusable */

    struct spool_stats st;
    spool_get_stats(sp, &st);
    uint64_t seq = 0, n = 0, last = 0;
    while (spool_next_after(sp, seq, &seq) == 0) {
        uint8_t *p = NULL;
        size_t len;
        if (seq <= last || spool_read(sp, seq, &p, &len, NULL) != 0)
            abort(); /* listed in order, checked at open: must read back */
        free(p);
        last = seq;
        n++;
    }
    if (n != st.batches || st.bytes > st.max_bytes || st.next_seq <= st.newest_seq ||
        st.epoch == 0)
        abort();

    static const uint8_t payload[] = "a batch stored after recovery";
    uint64_t s = spool_next_seq(sp);
    if (spool_put(sp, s, payload, sizeof payload, 1) != 0)
        abort();
    uint8_t *p = NULL;
    size_t len = 0;
    if (spool_read(sp, s, &p, &len, NULL) != 0 || len != sizeof payload ||
        memcmp(p, payload, len) != 0)
        abort();
    free(p);
    uint64_t epoch = st.epoch;
    spool_get_stats(sp, &st);
    uint64_t batches = st.batches;
    spool_close(sp);

    sp = spool_open(dir, max, err, sizeof err);
    if (!sp)
        abort();
    spool_get_stats(sp, &st);
    if (st.quarantined != 0 || st.batches != batches || st.epoch != epoch || st.next_seq <= s)
        abort(); /* recovery is done once: the second open finds a clean spool */
    spool_close(sp);
    return 0;
}
