/* session.h — whole conversations, produced one packet at a time.
 *
 * A profile describes a conversation with a `struct sess_spec` (who talks,
 * what application, how much, how it ends); the session engine turns it into
 * packets: the TCP handshake, request/response rounds sent in ack-clocked
 * bursts with delayed ACKs, retransmissions, FIN or RST teardown; DNS query
 * and response; a QUIC handshake with real Initial packets and a 1-RTT
 * transfer; NTP and ICMP echo exchanges; one-way syslog.
 *
 * The engine plans a few packets ahead into a small time-ordered queue
 * (struct intent: a handful of numbers, never payload bytes) and builds each
 * frame only when it is due, so the scheduler can interleave many thousands
 * of open sessions in timestamp order with bounded memory. It also keeps the
 * per-flow ground truth and writes it when the flow (or a part of it split
 * off by a deliberate idle gap) ends.
 *
 * Time model: the capture point is next to the initiator. The responder's
 * packets arrive one round trip after whatever triggered them; the
 * initiator's replies leave a few tens of microseconds after what they
 * answer. */
#ifndef VIGIL_GEN_SESSION_H
#define VIGIL_GEN_SESSION_H

#include "names.h"
#include "pktbuild.h"
#include "rng.h"
#include "stream.h"
#include "truth.h"

#include <stdbool.h>
#include <stdint.h>

#define SESS_QCAP 64 /* planned packets per session; a burst never exceeds it */
#define SESS_CWND_MAX 32

enum sess_kind { SK_TCP = 0, SK_DNS, SK_QUIC, SK_NTP, SK_SYSLOG, SK_ICMP, SK_KINDS };

enum tcp_app { TAPP_RAW = 0, TAPP_TLS, TAPP_HTTP };

/* How a TCP conversation ends, and so its Zeek conn_state. */
enum tcp_end {
    TEND_FIN_CLIENT = 0, /* SF: the initiator closes first */
    TEND_FIN_SERVER,     /* SF: the responder closes first */
    TEND_S0,             /* a SYN, never answered */
    TEND_REJ,            /* SYN answered by RST */
    TEND_RSTO,           /* established, the initiator resets */
    TEND_RSTR,           /* established, the responder resets */
    TEND_OPEN,           /* S1: established, never closed */
    TEND_HALFOPEN,       /* SYN, SYN-ACK, then the initiator's RST: a SYN scan's open port */
};

struct sess_spec {
    struct pkt_ends ends;
    int64_t t0;           /* first packet, ns since the epoch */
    int64_t rtt_ns;       /* round-trip time seen from the capture point */
    int64_t gap_ns;       /* spacing of back-to-back full-size packets */
    int64_t think_ns;     /* pause between rounds / exchanges; 0: drawn each time */
    uint8_t kind;         /* enum sess_kind */
    uint8_t app;          /* enum tcp_app */
    uint8_t end;          /* enum tcp_end */
    uint8_t tls_kind;     /* enum tls_client_kind */
    uint16_t rounds;      /* TCP/QUIC rounds; NTP/ICMP exchanges; syslog messages (>= 1) */
    uint16_t split_after; /* NTP/ICMP/syslog: idle gap before exchange #split_after; 0: none */
    int64_t split_gap_ns;
    uint32_t req0, reqn;  /* request body bytes: round 0, later rounds */
    uint64_t resp0, respn; /* response body bytes: round 0, later rounds */
    bool draw_later;      /* later rounds draw their sizes instead of reqn/respn */
    int32_t retrans_seg[2]; /* per direction, the data segment (0-based) sent twice; -1: none */
    uint16_t dns_qtype;
    uint8_t dns_rcode;
    bool dns_no_reply;
    bool quic_close;      /* the QUIC client sends a final (CONNECTION_CLOSE-sized) packet */
    uint16_t dns_data;    /* DNS: opaque answer bytes, as a tunnel's downstream; 0: ordinary */
    uint16_t tag;         /* scenario: 1 + index of the labelled attack it belongs to; 0: benign */
    uint64_t captures;    /* scenario: bit i set = written to capture i */
    char name[NAME_MAX_LEN]; /* DNS qname, TLS SNI (TCP and QUIC), HTTP Host */
    const char *note;     /* static text for the truth file, or NULL */
};

/* What one planned packet is; its payload is built when it is emitted. */
struct intent {
    int64_t t;
    uint32_t seq, ack; /* TCP sequence numbers; a counter for other kinds */
    uint32_t off;      /* TCP: offset of the payload in the direction's current message */
    uint16_t len;      /* payload bytes (TCP) or datagram size hint (others) */
    uint8_t dir;
    uint8_t flags;     /* TCP flags */
    uint8_t what;      /* which payload builder */
    uint8_t mark;      /* INTENT_* bits */
};

struct session {
    struct sess_spec sp;
    struct rng rng;
    uint64_t id;          /* spawn order: breaks timestamp ties deterministically */
    int64_t key;          /* time of the next packet (the scheduler's key) */
    uint32_t heap_pos;
    struct session *next_free;
    struct intent q[SESS_QCAP];
    uint8_t qhead, qlen;
    uint8_t phase;
    uint16_t round, exch;
    int64_t t;            /* planner clock: the latest planned time */
    uint32_t isn[2], nxt[2], tsbase[2], last_tsval[2];
    uint16_t ipid[2], mss[2];
    uint16_t cwnd;
    uint32_t nseg[2];
    uint64_t sent[2];     /* bytes of msg[d] already planned */
    struct msg msg[2];
    uint8_t cid[3][8];    /* QUIC: original DCID, client SCID, server SCID */
    uint32_t pn[2];
    uint16_t app_id;      /* DNS id, ICMP identifier */
    uint64_t hs_seed;     /* QUIC handshake contents */
    int64_t xstart;       /* NTP/ICMP/syslog: start of the latest exchange */
    bool app_seen;        /* the application's first message went out */
    struct truth_acc acc;
};

/* Totals over all sessions, for the run summary. */
struct sess_stats {
    uint64_t packets, frame_bytes, ip_bytes, flows;
    uint64_t by_kind[SK_KINDS];
};

/* Starts a session from s->sp: seeds its own generator from `seed`, plans
 * the first packets and sets s->key. */
void sess_start(struct session *s, uint64_t id, uint64_t seed);

/* Builds the next frame into `frame` (PKT_FRAME_MAX bytes) and returns its
 * length; *ts (OUT) gets its time in ns. Updates the truth counters and
 * writes a truth record when a deliberate idle gap splits the flow. Then
 * plans ahead; afterwards s->key is the next packet's time, or INT64_MAX
 * when the session is over (call sess_finish). */
size_t sess_emit(struct session *s, uint8_t *frame, int64_t *ts, struct truth_writer *tw,
                 struct sess_stats *st);

/* Writes the last truth record of a finished session. */
void sess_finish(struct session *s, struct truth_writer *tw, struct sess_stats *st);

#endif
