/* pcapout.h — writes the capture: pcap, nanosecond timestamps, Ethernet.
 *
 * Frames longer than the snap length are cut to it (caplen = snaplen, len =
 * the original length), as a live capture with that snap length records
 * them. Output goes through libpcap's savefile writer on a stdio stream with
 * a large buffer. */
#ifndef VIGIL_GEN_PCAPOUT_H
#define VIGIL_GEN_PCAPOUT_H

#include <pcap/pcap.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct pcapout {
    pcap_t *dead;       /* owned */
    pcap_dumper_t *dumper; /* owned; owns the FILE */
    unsigned snaplen;
    uint64_t cap_bytes; /* captured bytes written (sum of caplen) */
};

/* Opens path ("-" for stdout) for writing; returns 0 or a negative VIGIL_E code
 * (a message has been printed). */
int pcapout_open(struct pcapout *o, const char *path, unsigned snaplen);

void pcapout_write(struct pcapout *o, int64_t ts_ns, const uint8_t *frame, size_t len);

/* Flushes and closes; returns 0 or VIGIL_EIO. */
int pcapout_close(struct pcapout *o);

#endif
