/* main.c — vigil-gen: writes a deterministic synthetic capture and its truth.
 *
 *   vigil-gen --profile unit|bench --out FILE.pcap [--truth FILE.jsonl]
 *             [--seed N] [--snaplen N] [--flows N] [--duration SEC]
 *             [--start EPOCH_SEC]
 *   vigil-gen --profile fleet --out-dir DIR [--hosts N] [--days D]
 *             [--no-attacks] [--exfil-mb MB] [--seed N] [--start EPOCH_SEC]
 *
 * The same arguments always give byte-identical output: every random choice
 * comes from --seed, and the start time is fixed unless --start is given
 * (never the wall clock). A summary goes to stderr. */
#include "fleet.h"
#include "profile.h"
#include "scheduler.h"
#include "pcapout.h"
#include "session.h"
#include "stream.h"
#include "truth.h"

#include "clock.h"
#include "err.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_START INT64_C(1767225600) /* 2026-01-01T00:00:00Z */
#define FLEET_START INT64_C(1767571200)   /* 2026-01-05T00:00:00Z, a Monday */
#define DEFAULT_SNAPLEN 262144u

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vigil-gen --profile unit|bench --out FILE.pcap [options]\n"
            "       vigil-gen --profile fleet --out-dir DIR [options]\n"
            "\n"
            "Writes a deterministic synthetic capture (pcap, nanosecond timestamps,\n"
            "Ethernet) and, with --truth, one JSON line per flow with what it contains.\n"
            "\n"
            "  --profile NAME    unit: %s\n"
            "                    bench: %s\n"
            "                    fleet: a labelled scenario, one capture per host: servers,\n"
            "                    an admin and workstations with an office day's rhythm\n"
            "                    (browsing, DNS, mail, SMB, SSH, NTP, updates, nightly\n"
            "                    backups), and on the last day a beacon, a port scan, a\n"
            "                    horizontal scan, a fleet-wide scan, a DNS tunnel, a\n"
            "                    distributed scan and an exfiltration at fixed times;\n"
            "                    writes DIR/<host>.pcap (what that host's own interface\n"
            "                    sees) and DIR/labels.json (the fleet and each attack:\n"
            "                    type, sources, targets, agents, start, end)\n"
            "  --out FILE        capture to write (\"-\" for stdout)\n"
            "  --truth FILE      ground truth, JSON Lines, flow-record field names\n"
            "  --seed N          seed of every random choice (default 1)\n"
            "  --snaplen N       cut frames to N captured bytes (default %u);\n"
            "                    128 gives the headers-only variant\n"
            "  --flows N         bench: flows to start (default 1000000)\n"
            "  --duration SEC    bench: seconds over which they start (default 300)\n"
            "  --start EPOCH     time of the first packet, seconds since the epoch\n"
            "                    (default %" PRId64 ", 2026-01-01T00:00:00Z; fleet: the\n"
            "                    start of its span, default %" PRId64 ", a Monday 00:00Z)\n"
            "  --out-dir DIR     fleet: where the captures and labels.json go (created)\n"
            "  --hosts N         fleet: hosts, %d to %d (default 24): srv-web, srv-mail,\n"
            "                    srv-files, adm-01, then workstations ws-01...\n"
            "  --days D          fleet: days of traffic, 1 to 14 (default 2; the attacks\n"
            "                    are on the last day)\n"
            "  --no-attacks      fleet: the same benign traffic without any attack\n"
            "  --exfil-mb MB     fleet: size of the exfiltration upload (default 250)\n"
            "  --help            this text\n",
            profile_unit.help, profile_bench.help, DEFAULT_SNAPLEN, DEFAULT_START, FLEET_START,
            FLEET_MIN_HOSTS, FLEET_MAX_HOSTS);
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end || s[0] == '-')
        return VIGIL_EINVAL;
    *out = v;
    return 0;
}

/* The fleet scenario: every capture and labels.json into dir. */
static int run_fleet(const struct fleet_opts *fo, const char *dir, unsigned snaplen)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "vigil-gen: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    int64_t t_begin = vigil_monotonic_ns();
    struct scenario sc;
    scn_init(&sc);
    int e = fleet_build(&sc, fo);
    if (e == 0)
        e = scn_write(&sc, dir, snaplen, stderr);
    else
        fprintf(stderr, "vigil-gen: fleet: %s\n", vigil_strerror(e));
    scn_free(&sc);
    if (e == 0)
        fprintf(stderr, "vigil-gen: profile fleet seed %" PRIu64 ": %s in %.1f s\n", fo->seed,
                dir, (double)(vigil_monotonic_ns() - t_begin) / 1e9);
    return e == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"profile", required_argument, NULL, 'p'}, {"out", required_argument, NULL, 'o'},
        {"truth", required_argument, NULL, 't'},   {"seed", required_argument, NULL, 's'},
        {"snaplen", required_argument, NULL, 'S'}, {"flows", required_argument, NULL, 'f'},
        {"duration", required_argument, NULL, 'd'}, {"start", required_argument, NULL, 'T'},
        {"out-dir", required_argument, NULL, 'D'}, {"hosts", required_argument, NULL, 'H'},
        {"days", required_argument, NULL, 'y'},    {"no-attacks", no_argument, NULL, 'N'},
        {"exfil-mb", required_argument, NULL, 'x'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *profile_name = NULL, *out = NULL, *truth_path = NULL, *out_dir = NULL;
    struct gen_opts o = {.seed = 1, .snaplen = DEFAULT_SNAPLEN,
                         .start_ns = DEFAULT_START * NS_PER_SEC};
    struct fleet_opts fo = {.hosts = 24, .days = 2, .attacks = true,
                            .exfil_bytes = UINT64_C(250000000)};
    bool start_given = false;
    uint64_t v;
    char *end;
    int c;
    while ((c = getopt_long(argc, argv, "p:o:t:s:S:f:d:T:D:H:y:Nx:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            profile_name = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 't':
            truth_path = optarg;
            break;
        case 's':
            if (parse_u64(optarg, &o.seed))
                goto bad;
            break;
        case 'S':
            if (parse_u64(optarg, &v) || v < 64 || v > 262144)
                goto bad;
            o.snaplen = (unsigned)v;
            break;
        case 'f':
            if (parse_u64(optarg, &o.flows) || o.flows == 0 || o.flows > UINT64_C(1) << 32)
                goto bad;
            break;
        case 'd':
            o.duration_s = strtod(optarg, &end);
            if (end == optarg || *end || !(o.duration_s > 0 && o.duration_s < 1e7))
                goto bad;
            break;
        case 'T':
            if (parse_u64(optarg, &v) || v > UINT64_C(9000000000))
                goto bad;
            o.start_ns = (int64_t)v * NS_PER_SEC;
            start_given = true;
            break;
        case 'D':
            out_dir = optarg;
            break;
        case 'H':
            if (parse_u64(optarg, &v) || v < FLEET_MIN_HOSTS || v > FLEET_MAX_HOSTS)
                goto bad;
            fo.hosts = (unsigned)v;
            break;
        case 'y':
            if (parse_u64(optarg, &v) || v < 1 || v > 14)
                goto bad;
            fo.days = (unsigned)v;
            break;
        case 'N':
            fo.attacks = false;
            break;
        case 'x':
            if (parse_u64(optarg, &v) || v < 1 || v > 4000)
                goto bad;
            fo.exfil_bytes = v * UINT64_C(1000000);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        continue;
    bad:
        fprintf(stderr, "vigil-gen: bad value '%s' (see --help)\n", optarg);
        return 2;
    }
    if (optind == argc && profile_name && strcmp(profile_name, "fleet") == 0) {
        if (!out_dir || out || truth_path) {
            fprintf(stderr, "vigil-gen: the fleet profile writes --out-dir DIR (no --out, "
                            "--truth)\n");
            return 2;
        }
        fo.seed = o.seed;
        fo.start_ns = start_given ? o.start_ns : FLEET_START * NS_PER_SEC;
        return run_fleet(&fo, out_dir, o.snaplen);
    }
    if (optind != argc || !profile_name || !out) {
        usage(stderr);
        return 2;
    }
    const struct profile_ops *prof = profile_find(profile_name);
    if (!prof) {
        fprintf(stderr, "vigil-gen: unknown profile '%s' (unit, bench, fleet)\n", profile_name);
        return 2;
    }

    int rc = 1;
    int64_t t_begin = vigil_monotonic_ns();
    struct pcapout po = {0};
    struct truth_writer tw = {0};
    struct sched h;
    struct sess_stats st = {0};
    sched_init(&h);
    pool_init(o.seed);
    void *ps = prof->create(&o);
    if (!ps) {
        fprintf(stderr, "vigil-gen: out of memory\n");
        goto fail;
    }
    if (pcapout_open(&po, out, o.snaplen) != 0)
        goto fail;
    if (truth_path) {
        int e = truth_open(&tw, truth_path);
        if (e) {
            fprintf(stderr, "vigil-gen: %s: %s\n", truth_path, strerror(-e));
            goto fail;
        }
    }

    static uint8_t frame[PKT_FRAME_MAX];
    uint64_t next_id = 0;
    int64_t last_ts = INT64_MIN;
    for (;;) {
        int64_t tn = prof->next_start(ps);
        struct session *top = sched_top(&h);
        if (tn != INT64_MAX && (!top || tn <= top->key)) {
            struct session *s = sched_alloc(&h);
            uint64_t seed;
            if (!s) {
                fprintf(stderr, "vigil-gen: out of memory\n");
                goto fail;
            }
            prof->spawn(ps, &s->sp, &seed);
            sess_start(s, next_id++, seed);
            if (sched_push(&h, s) != 0) {
                fprintf(stderr, "vigil-gen: out of memory\n");
                goto fail;
            }
            continue;
        }
        if (!top)
            break;
        int64_t ts;
        size_t len = sess_emit(top, frame, &ts, &tw, &st);
        if (ts < last_ts) {
            fprintf(stderr, "vigil-gen: internal error: time went backwards\n");
            goto fail;
        }
        last_ts = ts;
        pcapout_write(&po, ts, frame, len);
        if (top->key == INT64_MAX) {
            sess_finish(top, &tw, &st);
            sched_pop(&h);
            sched_release(&h, top);
        } else {
            sched_fix_top(&h);
        }
    }
    if (pcapout_close(&po) != 0) {
        fprintf(stderr, "vigil-gen: %s: write failed\n", out);
        goto fail;
    }
    if (truth_close(&tw) != 0) {
        fprintf(stderr, "vigil-gen: %s: write failed\n", truth_path);
        goto fail;
    }
    double secs = (double)(vigil_monotonic_ns() - t_begin) / 1e9;
    fprintf(stderr,
            "vigil-gen: profile %s seed %" PRIu64 ": %" PRIu64 " packets, %" PRIu64
            " flows (%" PRIu64 " sessions: tcp %" PRIu64 " dns %" PRIu64 " quic %" PRIu64
            " ntp %" PRIu64 " syslog %" PRIu64 " icmp %" PRIu64 "), %" PRIu64
            " frame bytes, %" PRIu64 " IP bytes, %" PRIu64
            " captured bytes, peak %zu open sessions, %.1f s\n",
            prof->name, o.seed, st.packets, st.flows, next_id, st.by_kind[SK_TCP],
            st.by_kind[SK_DNS], st.by_kind[SK_QUIC], st.by_kind[SK_NTP], st.by_kind[SK_SYSLOG],
            st.by_kind[SK_ICMP], st.frame_bytes, st.ip_bytes, po.cap_bytes, h.peak, secs);
    rc = 0;
fail:
    pcapout_close(&po);
    truth_close(&tw);
    if (ps)
        prof->destroy(ps);
    sched_destroy(&h);
    return rc;
}
