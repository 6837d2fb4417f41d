/* test_forensic.c — forensic captures on the agent: filter, caps, rotation,
 * quota, SHA-256, refusals, status, retention.
 *
 * Captures read a pcap file the test writes with libpcap (forensic.h's
 * offline_file hook), so every count is known: M packets from 10.0.0.1
 * (the filter "host 10.0.0.1" takes them) interleaved with others from
 * 10.0.0.3. The files a capture leaves are read back with libpcap (not
 * with vigil's writer) and their hashes computed by sha256sum. */
#include "clock.h"
#include "err.h"
#include "forensic.h"
#include "forensic_writer.h"
#include "transport.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WAIT_MS 20000

struct fixture {
    char root[256];
    char input[300];
    char dir[300];
};

static struct fixture fx;

static void rmtree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static void setup(void)
{
    snprintf(fx.root, sizeof fx.root, "/tmp/vigil-forensic-XXXXXX");
    cr_assert_not_null(mkdtemp(fx.root));
    snprintf(fx.input, sizeof fx.input, "%s/input.pcap", fx.root);
    snprintf(fx.dir, sizeof fx.dir, "%s/capture", fx.root);
}

static void teardown(void)
{
    rmtree(fx.root);
}

/* Ethernet + IPv4 + UDP 1000 -> 2000, len bytes in all (>= 42), from
 * 10.0.0.SRC to 10.0.0.2; the payload is the packet's index. */
static void put_packet(pcap_dumper_t *d, unsigned src, unsigned index, unsigned len)
{
    uint8_t pkt[2000] = {0};
    struct pcap_pkthdr h = {.ts = {1767225600 + index, 1000}, .caplen = len, .len = len};
    cr_assert(len >= 42 && len <= sizeof pkt);
    memcpy(pkt, "\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00", 14);
    uint8_t *ip = pkt + 14;
    unsigned iplen = len - 14;
    ip[0] = 0x45;
    ip[2] = (uint8_t)(iplen >> 8);
    ip[3] = (uint8_t)iplen;
    ip[8] = 64;
    ip[9] = 17;
    memcpy(ip + 12, (uint8_t[]){10, 0, 0, (uint8_t)src}, 4);
    memcpy(ip + 16, (uint8_t[]){10, 0, 0, 2}, 4);
    uint8_t *udp = ip + 20;
    unsigned ulen = iplen - 20;
    memcpy(udp, (uint8_t[]){0x03, 0xe8, 0x07, 0xd0, (uint8_t)(ulen >> 8), (uint8_t)ulen}, 6);
    memcpy(udp + 8, &index, sizeof index);
    pcap_dump((u_char *)d, &h, pkt);
}

/* Writes fx.input: n rounds of (one packet from .1, one from .3), each len bytes. */
static void write_input(unsigned n, unsigned len)
{
    pcap_t *dead = pcap_open_dead(DLT_EN10MB, 65535);
    pcap_dumper_t *d = pcap_dump_open(dead, fx.input);
    cr_assert_not_null(d);
    for (unsigned i = 0; i < n; i++) {
        put_packet(d, 1, 2 * i, len);
        put_packet(d, 3, 2 * i + 1, len);
    }
    pcap_dump_close(d);
    pcap_close(dead);
}

static struct forensic *make(uint64_t quota, uint64_t file_size)
{
    struct forensic_config c;
    char err[512] = "";
    forensic_config_defaults(&c);
    c.dir = fx.dir;
    c.offline_file = fx.input;
    c.quota = quota;
    c.file_size = file_size;
    struct forensic *f = forensic_create(&c, err, sizeof err);
    cr_assert_not_null(f, "forensic_create: %s", err);
    return f;
}

static void order(struct forensic *f, const char *id, const char *filter, uint64_t max_bytes,
                  uint64_t max_packets, int64_t expires_ns)
{
    Vigil__CaptureStart s = VIGIL__CAPTURE_START__INIT;
    Vigil__Command c = VIGIL__COMMAND__INIT;
    s.capture_id = (char *)id;
    s.filter = (char *)filter;
    s.duration_ns = 60 * NS_PER_SEC;
    s.max_bytes = max_bytes;
    s.max_packets = max_packets;
    s.expires_ns = expires_ns;
    s.ordered_by = "analyst:test";
    c.command_id = 1;
    c.kind_case = VIGIL__COMMAND__KIND_CAPTURE_START;
    c.capture_start = &s;
    forensic_command(f, &c, vigil_wallclock_ns());
}

static struct forensic_progress finish(struct forensic *f, const char *id)
{
    struct forensic_progress p;
    cr_assert_eq(forensic_wait(f, id, WAIT_MS), 0, "capture %s still runs", id);
    cr_assert_eq(forensic_get(f, id, &p), 0);
    return p;
}

/* Sum of the sizes of every regular file in dir; *count files. */
static uint64_t dir_bytes(const char *dir, unsigned *count)
{
    uint64_t total = 0;
    *count = 0;
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        char p[600];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            total += (uint64_t)st.st_size;
            (*count)++;
        }
    }
    closedir(d);
    return total;
}

/* Reads a capture file back with libpcap: packets, and how many came from
 * 10.0.0.1 (the others are counted in *others). */
static unsigned read_back(const char *path, unsigned *others, unsigned *max_caplen)
{
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, err);
    cr_assert_not_null(p, "%s: %s", path, err);
    struct pcap_pkthdr *h;
    const u_char *data;
    unsigned n = 0, mine = 0;
    while (pcap_next_ex(p, &h, &data) == 1) {
        n++;
        if (h->caplen > *max_caplen)
            *max_caplen = h->caplen;
        if (h->caplen >= 30 && data[26] == 10 && data[29] == 1)
            mine++;
        else
            (*others)++;
    }
    pcap_close(p);
    cr_assert_eq(n, mine + *others);
    return mine;
}

static void file_path(char *out, size_t len, const char *id, unsigned k)
{
    snprintf(out, len, "%s/%s-%03u.pcap", fx.dir, id, k);
}

TestSuite(forensic, .init = setup, .fini = teardown, .timeout = 60);

Test(forensic, takes_exactly_what_the_filter_matches)
{
    write_input(50, 200);
    struct forensic *f = make(1u << 30, 1u << 20);
    order(f, "cap1", "host 10.0.0.1", 0, 0, 0);
    struct forensic_progress p = finish(f, "cap1");
    cr_assert_str_eq(p.state, "done", "%s: %s", p.state, p.detail);
    cr_assert_eq(p.packets, 50);
    cr_assert_eq(p.files, 1);
    char path[600];
    unsigned others = 0, maxcap = 0;
    file_path(path, sizeof path, "cap1", 1);
    cr_assert_eq(read_back(path, &others, &maxcap), 50);
    cr_assert_eq(others, 0, "%u packets that do not match the filter", others);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "capture file mode %o", st.st_mode & 0777);
    cr_assert_eq((uint64_t)st.st_size, p.bytes);
    cr_assert_eq(p.bytes, 24 + 50 * (16 + 200));
    cr_assert_eq(stat(fx.dir, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700);
    forensic_destroy(f);
}

Test(forensic, byte_cap_is_never_passed)
{
    write_input(50, 200);
    struct forensic *f = make(1u << 30, 1u << 20);
    uint64_t cap = 24 + 7 * 216 + 100; /* room for 7 packets and a half */
    order(f, "capb", "udp", cap, 0, 0);
    struct forensic_progress p = finish(f, "capb");
    cr_assert_str_eq(p.state, "done");
    cr_assert(strstr(p.detail, "byte cap"), "%s", p.detail);
    cr_assert_eq(p.packets, 7);
    unsigned n;
    cr_assert_leq(dir_bytes(fx.dir, &n), cap);
    cr_assert_eq(dir_bytes(fx.dir, &n), 24 + 7 * 216);
    forensic_destroy(f);
}

Test(forensic, packet_cap_and_snap_length)
{
    write_input(50, 600);
    struct forensic *f = make(1u << 30, 1u << 20);
    Vigil__CaptureStart s = VIGIL__CAPTURE_START__INIT;
    Vigil__Command c = VIGIL__COMMAND__INIT;
    s.capture_id = "capp";
    s.filter = "";
    s.max_packets = 9;
    s.snaplen = 100; /* the offline hook ignores it; the file keeps what it is given */
    c.kind_case = VIGIL__COMMAND__KIND_CAPTURE_START;
    c.capture_start = &s;
    forensic_command(f, &c, vigil_wallclock_ns());
    struct forensic_progress p = finish(f, "capp");
    cr_assert_str_eq(p.state, "done");
    cr_assert(strstr(p.detail, "packet cap"), "%s", p.detail);
    cr_assert_eq(p.packets, 9);
    char path[600];
    unsigned others = 0, maxcap = 0;
    file_path(path, sizeof path, "capp", 1);
    unsigned mine = read_back(path, &others, &maxcap);
    cr_assert_eq(mine + others, 9);
    forensic_destroy(f);
}

Test(forensic, rotates_below_the_file_size)
{
    write_input(1500, 1400); /* 1500 x 1416 bytes from .1: about 2.03 MiB */
    uint64_t fsize = 1u << 20;
    struct forensic *f = make(1u << 30, fsize);
    order(f, "capr", "src host 10.0.0.1", 0, 0, 0);
    struct forensic_progress p = finish(f, "capr");
    cr_assert_str_eq(p.state, "done", "%s", p.detail);
    cr_assert_eq(p.packets, 1500);
    cr_assert_eq(p.files, 3);
    unsigned total = 0;
    uint64_t bytes = 0;
    for (unsigned k = 1; k <= 3; k++) {
        char path[600];
        struct stat st;
        unsigned others = 0, maxcap = 0;
        file_path(path, sizeof path, "capr", k);
        cr_assert_eq(stat(path, &st), 0);
        cr_assert_leq((uint64_t)st.st_size, fsize, "file %u is %lld bytes", k,
                      (long long)st.st_size);
        total += read_back(path, &others, &maxcap);
        cr_assert_eq(others, 0);
        bytes += (uint64_t)st.st_size;
    }
    cr_assert_eq(total, 1500);
    cr_assert_eq(bytes, p.bytes);
    forensic_destroy(f);
}

Test(forensic, quota_counts_every_file_in_the_directory)
{
    write_input(2000, 1000);
    cr_assert_eq(mkdir(fx.dir, 0700), 0);
    char junk[600];
    snprintf(junk, sizeof junk, "%s/old-001.pcap", fx.dir);
    FILE *fp = fopen(junk, "wb");
    cr_assert_not_null(fp);
    static char zeros[400000];
    cr_assert_eq(fwrite(zeros, 1, sizeof zeros, fp), sizeof zeros);
    fclose(fp);
    uint64_t quota = 1u << 20;
    struct forensic *f = make(quota, 1u << 20);
    cr_assert_eq(forensic_quota_used(f), sizeof zeros);
    order(f, "capq", "udp", 0, 0, 0);
    struct forensic_progress p = finish(f, "capq");
    cr_assert_str_eq(p.state, "done");
    cr_assert(strstr(p.detail, "quota"), "%s", p.detail);
    unsigned n;
    uint64_t used = dir_bytes(fx.dir, &n);
    cr_assert_leq(used, quota, "%llu bytes in the directory", (unsigned long long)used);
    cr_assert_gt(used + 1016, quota, "stopped before the quota was near");
    cr_assert_eq(forensic_quota_used(f), used);
    /* A second capture finds the quota used up. */
    order(f, "capq2", "udp", 0, 0, 0);
    p = finish(f, "capq2");
    cr_assert(strstr(p.detail, "quota"), "%s", p.detail);
    cr_assert_eq(p.packets, 0);
    forensic_destroy(f);
}

Test(forensic, sha256_matches_an_independent_hash)
{
    write_input(1200, 1000);
    struct forensic *f = make(1u << 30, 1u << 20);
    order(f, "caph", "host 10.0.0.1", 0, 0, 0);
    struct forensic_progress p = finish(f, "caph");
    cr_assert_eq(p.files, 2);
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(forensic_pack_status(f, "web-01", &buf, &len), 0);
    Vigil__Envelope *env = NULL;
    char why[200];
    cr_assert_eq(envelope_unpack(buf, len, vigil_wallclock_ns(), &env, why, sizeof why), ENV_OK,
                 "%s", why);
    free(buf);
    cr_assert_eq(env->body_case, VIGIL__ENVELOPE__BODY_STATUS);
    cr_assert_str_eq(env->status->agent, "web-01");
    cr_assert_eq(env->status->n_captures, 1);
    const Vigil__CaptureProgress *cp = env->status->captures[0];
    cr_assert_str_eq(cp->capture_id, "caph");
    cr_assert_str_eq(cp->state, "done");
    cr_assert_eq(cp->packets, 1200);
    cr_assert_eq(cp->n_files, 2);
    uint64_t sum = 0;
    for (size_t i = 0; i < cp->n_files; i++) {
        char cmd[700], line[200] = "", path[600];
        snprintf(path, sizeof path, "%s/%s", fx.dir, cp->files[i]->name);
        snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
        FILE *pp = popen(cmd, "r");
        cr_assert_not_null(pp);
        cr_assert_not_null(fgets(line, sizeof line, pp));
        pclose(pp);
        line[64] = '\0';
        cr_assert_str_eq(cp->files[i]->sha256, line, "%s", cp->files[i]->name);
        struct stat st;
        cr_assert_eq(stat(path, &st), 0);
        cr_assert_eq(cp->files[i]->size, (uint64_t)st.st_size);
        sum += cp->files[i]->size;
    }
    cr_assert_eq(sum, cp->bytes);
    envelope_free(env);
    forensic_destroy(f);
}

Test(forensic, bad_filter_fails_with_libpcap_message)
{
    write_input(5, 100);
    struct forensic *f = make(1u << 30, 1u << 20);
    order(f, "capx", "host and and", 0, 0, 0);
    struct forensic_progress p = finish(f, "capx");
    cr_assert_str_eq(p.state, "failed");
    cr_assert(strstr(p.detail, "invalid filter") && strstr(p.detail, "syntax error"), "%s",
              p.detail);
    unsigned n;
    dir_bytes(fx.dir, &n);
    cr_assert_eq(n, 0, "a refused capture wrote %u files", n);
    forensic_destroy(f);
}

Test(forensic, refusals_expiry_resends_and_stop)
{
    write_input(5, 100);
    struct forensic_config c;
    char err[256];
    forensic_config_defaults(&c);
    c.dir = fx.dir; /* no interface, no file: like an agent reading -r */
    struct forensic *f = forensic_create(&c, err, sizeof err);
    cr_assert_not_null(f, "%s", err);
    order(f, "nl", "", 0, 0, 0);
    struct forensic_progress p = finish(f, "nl");
    cr_assert_str_eq(p.state, "failed");
    cr_assert(strstr(p.detail, "not live"), "%s", p.detail);
    forensic_destroy(f);

    f = make(1u << 30, 1u << 20);
    order(f, "late", "", 0, 0, vigil_wallclock_ns() - NS_PER_SEC);
    p = finish(f, "late");
    cr_assert_str_eq(p.state, "expired");
    order(f, "bad/id", "", 0, 0, 0);
    p = finish(f, "bad/id");
    cr_assert_str_eq(p.state, "failed");

    /* A stop before the start: the late start changes nothing. */
    Vigil__CaptureStop stop = VIGIL__CAPTURE_STOP__INIT;
    Vigil__Command c2 = VIGIL__COMMAND__INIT;
    stop.capture_id = "early";
    c2.kind_case = VIGIL__COMMAND__KIND_CAPTURE_STOP;
    c2.capture_stop = &stop;
    forensic_command(f, &c2, vigil_wallclock_ns());
    order(f, "early", "", 0, 0, 0);
    p = finish(f, "early");
    cr_assert_str_eq(p.state, "stopped");
    cr_assert_eq(p.packets, 0);

    /* A resent start of a finished capture does not run it again. */
    order(f, "once", "", 0, 0, 0);
    p = finish(f, "once");
    cr_assert_eq(p.packets, 10);
    order(f, "once", "", 0, 0, 0);
    p = finish(f, "once");
    cr_assert_eq(p.packets, 10);
    unsigned n;
    dir_bytes(fx.dir, &n);
    cr_assert_eq(n, 1);
    forensic_destroy(f);
}

Test(forensic, refused_when_turned_off)
{
    struct forensic_config c;
    char err[256];
    forensic_config_defaults(&c);
    c.refuse = "turned off";
    struct forensic *f = forensic_create(&c, err, sizeof err);
    cr_assert_not_null(f, "%s", err);
    order(f, "off", "", 0, 0, 0);
    struct forensic_progress p = finish(f, "off");
    cr_assert_str_eq(p.state, "failed");
    cr_assert_str_eq(p.detail, "turned off");
    forensic_destroy(f);
}

Test(forensic, retention_deletes_old_files_only)
{
    cr_assert_eq(mkdir(fx.dir, 0700), 0);
    char old[600], young[600], other[600];
    snprintf(old, sizeof old, "%s/c1-001.pcap", fx.dir);
    snprintf(young, sizeof young, "%s/c2-001.pcap", fx.dir);
    snprintf(other, sizeof other, "%s/notes.txt", fx.dir);
    const char *paths[] = {old, young, other};
    for (int i = 0; i < 3; i++) {
        FILE *fp = fopen(paths[i], "wb");
        cr_assert_not_null(fp);
        fputs("0123456789", fp);
        fclose(fp);
    }
    int64_t now = vigil_wallclock_ns();
    struct timespec ts[2] = {{(time_t)(now / NS_PER_SEC) - 8 * 86400, 0},
                             {(time_t)(now / NS_PER_SEC) - 8 * 86400, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, old, ts, 0), 0);
    cr_assert_eq(utimensat(AT_FDCWD, other, ts, 0), 0);
    struct forensic *f = make(1u << 30, 1u << 20); /* retention: 7 days by default */
    cr_assert_eq(forensic_quota_used(f), 30);
    cr_assert_eq(forensic_retention(f, now), 1);
    cr_assert_neq(access(old, F_OK), 0);
    cr_assert_eq(access(young, F_OK), 0);
    cr_assert_eq(access(other, F_OK), 0, "only capture files are retention's business");
    cr_assert_eq(forensic_quota_used(f), 20);
    forensic_destroy(f);
}
