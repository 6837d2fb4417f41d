/* test_pcapfile.c — the in-place pcap reader against libpcap, record by record.
 *
 * Each file is read both ways at once: pcapfile_run hands over its records
 * and each must equal the one pcap_next_ex gives next (time as
 * capture_timestamp_ns reads it, lengths, bytes), and both must end the
 * same way (the end of the file, or an error). Files: made here in both
 * byte orders and both precisions, with the odd records libpcap treats
 * specially and cut at every kind of place; and every classic capture of
 * the shared corpus when it is there. */
#include "capture.h"
#include "pcapfile.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct rec {
    uint32_t sec, frac, caplen, len;
};

static uint32_t order32(uint32_t v, bool swapped)
{
    return swapped ? __builtin_bswap32(v) : v;
}

static void put32(FILE *fp, uint32_t v, bool swapped)
{
    v = order32(v, swapped);
    cr_assert_eq(fwrite(&v, 4, 1, fp), 1);
}

/* A classic file; each record's bytes are its index repeated; `cut` bytes
 * are then taken off the end. */
static void write_pcap(const char *path, bool swapped, bool nano, uint32_t snaplen,
                       uint32_t linktype, uint16_t minor, const struct rec *recs, size_t n,
                       size_t cut)
{
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp);
    put32(fp, nano ? 0xa1b23c4du : 0xa1b2c3d4u, swapped);
    uint16_t ver[2] = {2, minor};
    for (int i = 0; i < 2; i++) {
        uint16_t v = swapped ? __builtin_bswap16(ver[i]) : ver[i];
        cr_assert_eq(fwrite(&v, 2, 1, fp), 1);
    }
    put32(fp, 0, swapped);
    put32(fp, 0, swapped);
    put32(fp, snaplen, swapped);
    put32(fp, linktype, swapped);
    for (size_t i = 0; i < n; i++) {
        put32(fp, recs[i].sec, swapped);
        put32(fp, recs[i].frac, swapped);
        put32(fp, recs[i].caplen, swapped);
        put32(fp, recs[i].len, swapped);
        for (uint32_t b = 0; b < recs[i].caplen; b++)
            cr_assert_neq(fputc((int)(i * 7 + b) & 0xff, fp), EOF);
    }
    long size = ftell(fp);
    cr_assert_eq(fclose(fp), 0);
    if (cut)
        cr_assert_eq(truncate(path, size - (long)cut), 0);
}

struct both {
    pcap_t *p;
    const char *path;
    size_t packets;
    bool mismatch;
};

static void compare_packet(void *ctx, int64_t ts_ns, const uint8_t *data, uint32_t caplen,
                           uint32_t wirelen)
{
    struct both *b = ctx;
    struct pcap_pkthdr *h;
    const u_char *bytes;
    int rc = pcap_next_ex(b->p, &h, &bytes);
    if (rc != 1 || capture_timestamp_ns(h) != ts_ns || h->caplen != caplen ||
        h->len != wirelen || memcmp(bytes, data, caplen) != 0) {
        if (!b->mismatch)
            cr_log_error("%s: packet %zu differs from libpcap's (libpcap rc %d)", b->path,
                         b->packets, rc);
        b->mismatch = true;
    }
    b->packets++;
}

/* Reads path both ways. Returns how many packets, or -1 when the mapped
 * reader does not take the file (libpcap refuses it, or reads it itself). */
static long read_both(const char *path)
{
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, err);
    if (!p)
        return -1;
    struct pcapfile *f = pcapfile_map(fileno(pcap_file(p)), p);
    if (!f) {
        pcap_close(p);
        return -1;
    }
    struct both b = {.p = p, .path = path};
    volatile sig_atomic_t no = 0;
    char msg[256] = "";
    int rc = pcapfile_run(f, &no, &no, NULL, compare_packet, &b, msg, sizeof msg);
    struct pcap_pkthdr *h;
    const u_char *bytes;
    int end = pcap_next_ex(p, &h, &bytes);
    cr_expect_not(b.mismatch, "%s: a packet differs", path);
    if (rc == 0)
        cr_expect_eq(end, PCAP_ERROR_BREAK, "%s: libpcap has more (rc %d) after %zu packets", path,
                     end, b.packets);
    else
        cr_expect_eq(end, PCAP_ERROR, "%s: '%s' but libpcap ends with %d", path, msg, end);
    pcapfile_close(f);
    pcap_close(p);
    return (long)b.packets;
}

static char *temp_path(const char *name)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/vigil-pcapfile-%d-%s", P_tmpdir, (int)getpid(), name);
    return path;
}

static const struct rec odd_records[] = {
    {1700000000, 0, 60, 60},
    {1700000000, 999999, 0, 0},             /* empty */
    {1700000001, 5, 80, 40},                /* caplen over the wire length */
    {1700000002, 1000000, 60, 1514},        /* a fraction of one second or more */
    {1700000002, 2147483648u, 64, 64},      /* ... that libpcap takes as negative */
    {2200000000u, 7, 100, 100},             /* after 2038 */
    {1700000003, 1, 200, 300},              /* over the snapshot length (120): cut to it */
    {1700000004, 999999999, 120, 120},
};
#define N_ODD (sizeof odd_records / sizeof odd_records[0])

Test(pcapfile, reads_every_record_as_libpcap_does_in_both_orders_and_precisions)
{
    const char *path = temp_path("odd.pcap");
    for (int swapped = 0; swapped < 2; swapped++) {
        for (int nano = 0; nano < 2; nano++) {
            write_pcap(path, swapped, nano, 120, DLT_EN10MB, 4, odd_records, N_ODD, 0);
            cr_expect_eq(read_both(path), (long)N_ODD, "swapped %d nano %d", swapped, nano);
        }
    }
    unlink(path);
}

Test(pcapfile, a_file_cut_anywhere_ends_as_libpcaps_does)
{
    const char *path = temp_path("cut.pcap");
    /* the last record is over the snapshot length, so a cut in its data
     * lands before and after the part that is kept */
    size_t last = N_ODD - 2, tail = 16 + odd_records[last].caplen + 16 + 120;
    for (size_t cut = 1; cut <= tail; cut++) {
        write_pcap(path, cut % 2, cut % 3 == 0, 120, DLT_EN10MB, 4, odd_records, N_ODD, cut);
        long n = read_both(path);
        cr_expect(n >= (long)last && n <= (long)N_ODD - 1, "cut %zu: %ld packets", cut, n);
    }
    unlink(path);
}

Test(pcapfile, files_it_does_not_read_stay_with_libpcap)
{
    const char *path = temp_path("other.pcap");
    write_pcap(path, false, false, 120, DLT_EN10MB, 3, odd_records, 2, 0); /* version 2.3 */
    cr_expect_eq(read_both(path), -1);
    write_pcap(path, false, false, 120, DLT_NFLOG, 4, odd_records, 2, 0); /* rewritten pseudo-header */
    cr_expect_eq(read_both(path), -1);
    write_pcap(path, true, false, 120, DLT_LINUX_SLL, 4, odd_records, 2, 0); /* swapped cooked */
    cr_expect_eq(read_both(path), -1);
    write_pcap(path, false, false, 120, DLT_LINUX_SLL, 4, odd_records, 2, 0);
    cr_expect_eq(read_both(path), 2);

    /* a pipe is read by libpcap */
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline(path, err);
    cr_assert_not_null(p);
    cr_expect_null(pcapfile_map(fds[0], p));
    pcap_close(p);
    close(fds[0]);
    close(fds[1]);
    unlink(path);
}

static size_t delivered;
static void count_packet(void *ctx, int64_t ts_ns, const uint8_t *data, uint32_t caplen,
                         uint32_t wirelen)
{
    (void)ctx, (void)ts_ns, (void)wirelen;
    if (caplen)
        delivered += data[caplen - 1] != 0xff; /* touches the bytes */
    else
        delivered++;
}

Test(pcapfile, a_file_that_shrinks_while_mapped_is_an_error_not_a_crash)
{
    const char *path = temp_path("shrink.pcap");
    enum { N = 4000 };
    static struct rec recs[N];
    for (size_t i = 0; i < N; i++)
        recs[i] = (struct rec){1700000000 + (uint32_t)i, 0, 1000, 1000};
    write_pcap(path, false, false, 65535, DLT_EN10MB, 4, recs, N, 0);
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, err);
    cr_assert_not_null(p);
    struct pcapfile *f = pcapfile_map(fileno(pcap_file(p)), p);
    cr_assert_not_null(f);
    cr_assert_eq(truncate(path, 100000), 0); /* about 96 records are left */
    volatile sig_atomic_t no = 0;
    char msg[256] = "";
    delivered = 0;
    cr_expect_eq(pcapfile_run(f, &no, &no, NULL, count_packet, NULL, msg, sizeof msg), -1);
    cr_expect(strstr(msg, "shorter") != NULL, "message: %s", msg);
    cr_expect(delivered > 0 && delivered < N, "%zu packets before the error", delivered);
    pcapfile_close(f);
    pcap_close(p);
    unlink(path);
}

Test(pcapfile, the_mapped_reader_applies_the_filter)
{
    /* Ethernet + IPv4 headers whose protocol byte alternates UDP and TCP */
    const char *path = temp_path("filter.pcap");
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp);
    uint32_t hdr[6] = {0xa1b2c3d4u, 0x00040002u, 0, 0, 65535, DLT_EN10MB};
    cr_assert_eq(fwrite(hdr, sizeof hdr, 1, fp), 1);
    uint8_t frame[14 + 20 + 8] = {[12] = 0x08, [13] = 0x00, [14] = 0x45, [16] = 0, [17] = 28,
                                  [22] = 64};
    for (uint32_t i = 0; i < 10; i++) {
        frame[14 + 9] = i % 2 ? 6 : 17;
        uint32_t rec[4] = {1700000000 + i, 0, sizeof frame, sizeof frame};
        cr_assert_eq(fwrite(rec, sizeof rec, 1, fp), 1);
        cr_assert_eq(fwrite(frame, sizeof frame, 1, fp), 1);
    }
    cr_assert_eq(fclose(fp), 0);

    struct capture_config cfg = {.file = path, .filter = "udp"};
    char errbuf[CAPTURE_ERRBUF_SIZE];
    struct capture *cap = capture_open(&cfg, errbuf);
    cr_assert_not_null(cap, "%s", errbuf);
    volatile sig_atomic_t stop = 0;
    delivered = 0;
    cr_expect_eq(capture_run(cap, &stop, count_packet, NULL, NULL, errbuf), 0);
    cr_expect_eq(delivered, 5);
    capture_close(cap);
    unlink(path);
}

static bool is_classic_pcap(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && strcmp(name + n - 5, ".pcap") == 0;
}

Test(pcapfile, every_shared_capture_reads_as_libpcap_reads_it)
{
    const char *root = getenv("VIGIL_SHARED_PCAPS");
    const char *subdirs[] = {"protocols", "malformed", "attacks"};
    size_t files = 0, mapped = 0;
    for (size_t d = 0; root && d < 3; d++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/%s", root, subdirs[d]);
        DIR *dp = opendir(dir);
        if (!dp)
            continue;
        struct dirent *e;
        while ((e = readdir(dp)) != NULL) {
            if (!is_classic_pcap(e->d_name))
                continue;
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            files++;
            mapped += read_both(path) >= 0;
        }
        closedir(dp);
    }
    if (files == 0)
        cr_skip_test("the shared captures are not there (VIGIL_SHARED_PCAPS=%s)",
                     root ? root : "unset");
    cr_log_info("%zu classic captures, %zu read in place", files, mapped);
    cr_expect(mapped * 2 > files, "only %zu of %zu files were read in place", mapped, files);
}
