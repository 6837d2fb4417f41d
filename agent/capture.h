/* capture.h — packets from libpcap: a live interface or a pcap/pcapng file.
 *
 * Live capture uses libpcap's TPACKET_V3 ring on Linux (the default when
 * immediate mode is off) with a configurable buffer; a read timeout lets the
 * caller advance time while the link is idle. Drop counters come from
 * pcap_stats only, kept as 64-bit running totals (libpcap's are 32-bit and
 * wrap on a busy link). */
#ifndef VIGIL_CAPTURE_H
#define VIGIL_CAPTURE_H

#include <pcap/pcap.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

struct capture_config {
    const char *file;   /* a capture file, "-" for stdin; or NULL */
    const char *iface;  /* a live interface; or NULL */
    int snaplen;        /* live: bytes kept per packet */
    int buffer_mib;     /* live: ring size */
    const char *filter; /* BPF expression or NULL */
    bool promisc;
    int timeout_ms;     /* live: read timeout, so idle time is noticed */
};

struct capture_stats {
    uint64_t received; /* ps_recv, running total */
    uint64_t dropped;  /* ps_drop: the ring was full */
    uint64_t ifdropped; /* ps_ifdrop: dropped by the interface */
};

struct capture;

/* Called for each packet; ts_ns is the capture time in ns. */
typedef void (*capture_packet_fn)(void *ctx, int64_t ts_ns, const uint8_t *data, uint32_t caplen,
                                  uint32_t wirelen);
/* Called when a live read times out with nothing (now_ns: wall clock). */
typedef void (*capture_idle_fn)(void *ctx, int64_t now_ns);

/* Opens and activates the capture; on failure returns NULL with a message
 * in errbuf (at least PCAP_ERRBUF_SIZE + 256 bytes). */
#define CAPTURE_ERRBUF_SIZE (PCAP_ERRBUF_SIZE + 256)
struct capture *capture_open(const struct capture_config *cfg, char *errbuf);

int capture_datalink(const struct capture *cap);
bool capture_is_live(const struct capture *cap);

/* Reads until end of file, *stop becomes non-zero, or an error. Returns 0,
 * or VIGIL_ECAPTURE with the message in errbuf. A file cut short mid-record
 * ends the read with an error naming it; what was read before still counts. */
int capture_run(struct capture *cap, volatile sig_atomic_t *stop, capture_packet_fn on_packet,
                capture_idle_fn on_idle, void *ctx, char *errbuf);

/* A packet's time from libpcap (opened with nanosecond precision) in ns,
 * read as pcapfile.h reads a mapped file: libpcap 1.10 takes a classic
 * file's 32-bit seconds and fraction as signed, so a negative value there
 * is one of 2^31 or more; a fraction of a second or more (a damaged file)
 * is taken as the last instant of its second. */
int64_t capture_timestamp_ns(const struct pcap_pkthdr *h);

/* Interrupts capture_run from a signal handler. */
void capture_break(struct capture *cap);

/* Refreshes and returns the running totals (zeros for a file). */
void capture_get_stats(struct capture *cap, struct capture_stats *out);

void capture_close(struct capture *cap);

#endif
