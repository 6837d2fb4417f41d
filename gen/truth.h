/* truth.h — ground truth: what the generator knows about each flow it wrote.
 *
 * One JSON object per flow per line (JSON Lines), with the flow-record field
 * names of DESIGN.md so a test can compare an agent's output with it. A field
 * appears only when the generator knows its value for certain; `note`
 * (not a flow-record field) explains flows built to exercise a timeout. */
#ifndef VIGIL_GEN_TRUTH_H
#define VIGIL_GEN_TRUTH_H

#include "pktbuild.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Counters gathered packet by packet; index 0 is initiator to responder. */
struct truth_acc {
    int64_t first_ns, last_ns; /* first and last packet, ns since the epoch */
    uint64_t pkts[2], bytes[2]; /* bytes at the IP layer */
    uint32_t retrans[2];
    uint8_t flags[2];          /* OR of TCP flags */
    int64_t syn_ns, hs_ack_ns; /* SYN and handshake-completing ACK, 0 if unseen */
    bool reply_seen;           /* a DNS response was written */
};

void truth_acc_reset(struct truth_acc *a);

/* Everything a record states besides the counters. Strings are borrowed;
 * NULL or "" means absent. */
struct truth_flow {
    const struct pkt_ends *ends;
    const char *state;  /* Zeek conn_state, TCP only */
    const char *app;
    const char *dns_qname;
    int dns_qtype;      /* -1: absent */
    int dns_rcode;      /* -1: absent */
    const char *tls_sni;
    const char *http_host;
    int icmp_type, icmp_code; /* -1: absent */
    const char *note;
};

struct truth_writer {
    FILE *f;          /* owned; NULL when no truth file was asked for */
    uint64_t records;
};

/* Opens path for writing; returns 0 or a negative errno. */
int truth_open(struct truth_writer *w, const char *path);

/* Appends one record. No-op without a file. */
void truth_write(struct truth_writer *w, const struct truth_flow *fl, const struct truth_acc *a);

/* Flushes and closes; returns 0 or a negative errno if any write failed. */
int truth_close(struct truth_writer *w);

#endif
