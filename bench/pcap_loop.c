/* pcap_loop.c — the benchmark's floor: libpcap reading a capture and nothing else.
 *
 * A bare pcap_next_ex() loop over a file that counts packets, captured bytes
 * and original bytes, touching one byte of each packet so the read cannot be
 * skipped. Whatever a flow meter does per packet comes on top of this cost,
 * so bench/run.sh reports every tool's time as a ratio to it.
 *
 * usage: pcap_loop FILE
 * prints: packets=N caplen_bytes=N wire_bytes=N seconds=S pps=R ns_per_packet=R */
#include "clock.h"

#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    char err[PCAP_ERRBUF_SIZE];
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: pcap_loop FILE\n");
        return 2;
    }
    pcap_t *p = pcap_open_offline_with_tstamp_precision(argv[1], PCAP_TSTAMP_PRECISION_NANO,
                                                        err);
    if (!p) {
        fprintf(stderr, "pcap_loop: %s\n", err);
        return 1;
    }
    uint64_t packets = 0, caplen = 0, wire = 0;
    unsigned sink = 0;
    struct pcap_pkthdr *h;
    const u_char *data;
    int64_t t0 = vigil_monotonic_ns();
    int rc;
    while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
        packets++;
        caplen += h->caplen;
        wire += h->len;
        if (h->caplen)
            sink += data[h->caplen - 1];
    }
    int64_t t1 = vigil_monotonic_ns();
    if (rc == PCAP_ERROR) {
        fprintf(stderr, "pcap_loop: %s\n", pcap_geterr(p));
        pcap_close(p);
        return 1;
    }
    pcap_close(p);
    double secs = (double)(t1 - t0) / 1e9;
    printf("packets=%" PRIu64 " caplen_bytes=%" PRIu64 " wire_bytes=%" PRIu64
           " seconds=%.6f pps=%.0f ns_per_packet=%.1f check=%u\n",
           packets, caplen, wire, secs, secs > 0 ? (double)packets / secs : 0.0,
           packets ? (double)(t1 - t0) / (double)packets : 0.0, sink & 0xff);
    return 0;
}
