/* capture.c — libpcap live and offline capture. */
#include "capture.h"

#include "clock.h"
#include "err.h"
#include "log.h"
#include "pcapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct capture {
    pcap_t *pcap;
    bool live;
    int dlt;
    /* running totals and the last 32-bit values seen, to add deltas mod 2^32 */
    struct capture_stats totals;
    uint32_t last_recv, last_drop, last_ifdrop;
    capture_packet_fn on_packet;
    void *ctx;
    char *file_buf; /* stdio buffer of an offline capture; freed after pcap_close */
    int timeout_ms;      /* live: how long the kernel may hold a block of packets */
    struct pcapfile *mapped; /* a classic pcap file read in place, or NULL */
    struct bpf_program prog; /* the filter, kept for the mapped reader */
    bool has_prog;
    volatile sig_atomic_t broken; /* capture_break on the mapped reader */
};

#define CAPTURE_FILE_BUF (1u << 20)

static int apply_filter(struct capture *cap, const char *filter, char *errbuf)
{
    pcap_t *p = cap->pcap;
    if (pcap_compile(p, &cap->prog, filter, 1, cap->live ? PCAP_NETMASK_UNKNOWN : 0) != 0) {
        snprintf(errbuf, CAPTURE_ERRBUF_SIZE, "invalid filter '%s': %s", filter, pcap_geterr(p));
        return VIGIL_EINVAL;
    }
    cap->has_prog = true;
    if (pcap_setfilter(p, &cap->prog) != 0) {
        snprintf(errbuf, CAPTURE_ERRBUF_SIZE, "cannot set filter: %s", pcap_geterr(p));
        return VIGIL_ECAPTURE;
    }
    return 0;
}

static pcap_t *open_live(const struct capture_config *cfg, char *errbuf)
{
    char perr[PCAP_ERRBUF_SIZE] = "";
    pcap_t *p = pcap_create(cfg->iface, perr);
    if (!p) {
        snprintf(errbuf, CAPTURE_ERRBUF_SIZE, "cannot open interface %s: %s", cfg->iface, perr);
        return NULL;
    }
    pcap_set_snaplen(p, cfg->snaplen);
    pcap_set_promisc(p, cfg->promisc);
    pcap_set_timeout(p, cfg->timeout_ms);
    pcap_set_buffer_size(p, cfg->buffer_mib * 1024 * 1024);
    pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO); /* falls back to µs if unsupported */
    int rc = pcap_activate(p);
    if (rc < 0) {
        snprintf(errbuf, CAPTURE_ERRBUF_SIZE, "cannot capture on %s: %s%s%s", cfg->iface,
                 pcap_statustostr(rc), rc == PCAP_ERROR ? ": " : "",
                 rc == PCAP_ERROR ? pcap_geterr(p) : "");
        pcap_close(p);
        return NULL;
    }
    if (rc > 0)
        log_warn("capture on %s: %s", cfg->iface, pcap_statustostr(rc));
    /* Non-blocking, and capture_run waits in poll() itself: with the
     * TPACKET_V3 ring a blocking read sleeps until a block of packets is
     * handed over, which on a silent link is never, and the flows' idle
     * timeouts would wait for the next packet. */
    if (pcap_setnonblock(p, 1, perr) != 0 || pcap_get_selectable_fd(p) < 0) {
        snprintf(errbuf, CAPTURE_ERRBUF_SIZE, "cannot capture on %s: no pollable descriptor%s%s",
                 cfg->iface, perr[0] ? ": " : "", perr);
        pcap_close(p);
        return NULL;
    }
    return p;
}

/* Opens the file ourselves. A classic pcap file on disk is then read in
 * place from a mapping (pcapfile.h: no copy of each frame; on the
 * benchmark's full-frame capture the read alone takes about half the time
 * of libpcap's). Everything else — pcapng, standard input, a pipe — is read
 * by libpcap through a 1 MiB stdio buffer: with the default (a page) a
 * large capture costs a read() per few packets. Only the capture thread
 * reads the stream, so stdio's per-call locking is turned off: libpcap
 * makes two fread() calls per packet, and once the agent has threads each
 * would otherwise take and release the stream's lock. */
static pcap_t *open_file(struct capture *cap, const struct capture_config *cfg, char *errbuf)
{
    char perr[PCAP_ERRBUF_SIZE] = "";
    const char *shown = strcmp(cfg->file, "-") == 0 ? "standard input" : cfg->file;
    FILE *fp = strcmp(cfg->file, "-") == 0 ? stdin : fopen(cfg->file, "rb");
    if (!fp) {
        snprintf(errbuf, CAPTURE_ERRBUF_SIZE, "cannot read %s: %s", shown, strerror(errno));
        return NULL;
    }
    cap->file_buf = malloc(CAPTURE_FILE_BUF);
    if (cap->file_buf)
        setvbuf(fp, cap->file_buf, _IOFBF, CAPTURE_FILE_BUF);
    __fsetlocking(fp, FSETLOCKING_BYCALLER);
    posix_fadvise(fileno(fp), 0, 0, POSIX_FADV_SEQUENTIAL);
    pcap_t *p = pcap_fopen_offline_with_tstamp_precision(fp, PCAP_TSTAMP_PRECISION_NANO, perr);
    if (!p) {
        snprintf(errbuf, CAPTURE_ERRBUF_SIZE, "cannot read %s: %s", shown, perr);
        if (fp != stdin)
            fclose(fp);
        return NULL;
    }
    if (fp != stdin)
        cap->mapped = pcapfile_map(fileno(fp), p);
    return p;
}

struct capture *capture_open(const struct capture_config *cfg, char *errbuf)
{
    struct capture *cap = calloc(1, sizeof *cap);
    if (!cap) {
        snprintf(errbuf, CAPTURE_ERRBUF_SIZE, "out of memory");
        return NULL;
    }
    cap->live = cfg->iface != NULL;
    cap->timeout_ms = cfg->timeout_ms;
    cap->pcap = cap->live ? open_live(cfg, errbuf) : open_file(cap, cfg, errbuf);
    if (!cap->pcap)
        goto fail;
    if (cfg->filter && apply_filter(cap, cfg->filter, errbuf) != 0)
        goto fail;
    cap->dlt = pcap_datalink(cap->pcap);
    return cap;
fail:
    capture_close(cap);
    return NULL;
}

int capture_datalink(const struct capture *cap)
{
    return cap->dlt;
}

bool capture_is_live(const struct capture *cap)
{
    return cap->live;
}

int64_t capture_timestamp_ns(const struct pcap_pkthdr *h)
{
    int64_t sec = h->ts.tv_sec, ns = h->ts.tv_usec;
    if (sec < 0)
        sec += INT64_C(1) << 32;
    if (ns < 0 || ns >= NS_PER_SEC)
        ns = NS_PER_SEC - 1;
    return sec * NS_PER_SEC + ns;
}

static void dispatch_cb(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
    struct capture *cap = (struct capture *)user;
    cap->on_packet(cap->ctx, capture_timestamp_ns(h), bytes, h->caplen, h->len);
}

/* Live, once asked to stop: the kernel hands packets over a block at a
 * time (TPACKET_V3), when the block is full or timeout_ms after its first
 * packet, so what arrived just before the stop may still sit in a block.
 * Reads on, without blocking, until nothing has come for longer than that
 * (at most CAPTURE_DRAIN_MAX_MS): the flows end with their last packets. */
#define CAPTURE_DRAIN_MAX_MS 1000
static void drain_live(struct capture *cap)
{
    char perr[PCAP_ERRBUF_SIZE];
    if (pcap_setnonblock(cap->pcap, 1, perr) != 0)
        return;
    int64_t now = vigil_monotonic_ns();
    int64_t quiet = (int64_t)(cap->timeout_ms + 50) * NS_PER_MS;
    int64_t until = now + quiet, hard = now + CAPTURE_DRAIN_MAX_MS * NS_PER_MS;
    while (now < until && now < hard) {
        int n = pcap_dispatch(cap->pcap, 4096, dispatch_cb, (u_char *)cap);
        if (n < 0 && n != PCAP_ERROR_BREAK)
            return;
        now = vigil_monotonic_ns();
        if (n > 0)
            until = now + quiet;
        else
            nanosleep(&(struct timespec){.tv_nsec = 10 * NS_PER_MS}, NULL);
    }
}

int capture_run(struct capture *cap, volatile sig_atomic_t *stop, capture_packet_fn on_packet,
                capture_idle_fn on_idle, void *ctx, char *errbuf)
{
    cap->on_packet = on_packet;
    cap->ctx = ctx;
    if (cap->mapped) {
        int rc = pcapfile_run(cap->mapped, stop, &cap->broken, cap->has_prog ? &cap->prog : NULL,
                              on_packet, ctx, errbuf, CAPTURE_ERRBUF_SIZE);
        return rc == 0 ? 0 : VIGIL_ECAPTURE;
    }
    int64_t next_stats = vigil_monotonic_ns() + NS_PER_SEC;
    while (!*stop) {
        int n = pcap_dispatch(cap->pcap, cap->live ? 4096 : 65536, dispatch_cb, (u_char *)cap);
        if (n == PCAP_ERROR_BREAK)
            break;
        if (n == PCAP_ERROR) {
            snprintf(errbuf, CAPTURE_ERRBUF_SIZE, "%s", pcap_geterr(cap->pcap));
            return VIGIL_ECAPTURE;
        }
        if (!cap->live) {
            if (n == 0)
                break; /* end of file */
            continue;
        }
        if (n == 0) {
            /* nothing handed over yet: sleep until a block is, or timeout_ms */
            struct pollfd pfd = {.fd = pcap_get_selectable_fd(cap->pcap), .events = POLLIN};
            if (poll(&pfd, 1, cap->timeout_ms) < 0 && errno != EINTR) {
                snprintf(errbuf, CAPTURE_ERRBUF_SIZE, "poll: %s", strerror(errno));
                return VIGIL_ECAPTURE;
            }
            if (on_idle)
                on_idle(ctx, vigil_wallclock_ns());
        }
        int64_t now = vigil_monotonic_ns();
        if (now >= next_stats) { /* keep the 32-bit counters from wrapping unseen */
            struct capture_stats s;
            capture_get_stats(cap, &s);
            next_stats = now + NS_PER_SEC;
        }
    }
    if (cap->live)
        drain_live(cap);
    return 0;
}

void capture_break(struct capture *cap)
{
    if (cap && cap->pcap) {
        cap->broken = 1;
        pcap_breakloop(cap->pcap);
    }
}

void capture_get_stats(struct capture *cap, struct capture_stats *out)
{
    struct pcap_stat ps;
    if (cap->live && pcap_stats(cap->pcap, &ps) == 0) {
        cap->totals.received += (uint32_t)(ps.ps_recv - cap->last_recv);
        cap->totals.dropped += (uint32_t)(ps.ps_drop - cap->last_drop);
        cap->totals.ifdropped += (uint32_t)(ps.ps_ifdrop - cap->last_ifdrop);
        cap->last_recv = ps.ps_recv;
        cap->last_drop = ps.ps_drop;
        cap->last_ifdrop = ps.ps_ifdrop;
    }
    *out = cap->totals;
}

void capture_close(struct capture *cap)
{
    if (!cap)
        return;
    pcapfile_close(cap->mapped);
    if (cap->has_prog)
        pcap_freecode(&cap->prog);
    if (cap->pcap)
        pcap_close(cap->pcap); /* closes the file too */
    free(cap->file_buf);
    free(cap);
}
