/* session.c — the conversation engine: planners per kind, frame emission,
 * truth accounting. See session.h for the model. */
#include "session.h"

#include "dnsmsg.h"
#include "quicmsg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10

#define INTENT_RETRANS 0x01 /* counts as a retransmission in its direction */
#define INTENT_SPLIT 0x02   /* a deliberate idle gap precedes it: new flow */
#define INTENT_SYNOPT 0x04  /* carries the SYN options */
#define INTENT_HSACK 0x08   /* the ACK that completes the handshake */
#define INTENT_SYN 0x10     /* the initiator's SYN */

enum what {
    W_TCP = 0,   /* payload from msg[dir] */
    W_DNS_Q,
    W_DNS_R,
    W_Q_CINIT,   /* client Initial with the ClientHello, padded */
    W_Q_SINIT,   /* server Initial (ACK + ServerHello) + Handshake filler */
    W_Q_SHS,     /* server Handshake filler */
    W_Q_CINIT2,  /* client Initial (ACK) + Handshake filler, padded */
    W_Q_SHORT,   /* 1-RTT packet */
    W_NTP_Q,
    W_NTP_R,
    W_SYSLOG,
    W_ICMP_REQ,
    W_ICMP_REP,
};

enum phase {
    PH_START = 0,
    PH_REQ_BEGIN,
    PH_REQ,
    PH_RESP_BEGIN,
    PH_RESP,
    PH_ROUND_END,
    PH_CLOSE,
    PH_DONE
};

#define QUIC_FULL 1252 /* a full 1-RTT datagram payload, as common clients size them */

/* --- small helpers ------------------------------------------------------ */

static void die(const char *what)
{
    fprintf(stderr, "vigil-gen: internal error: %s\n", what);
    abort();
}

/* Adds a packet to the queue, keeping it ordered by time (stable). */
static void q_add(struct session *s, struct intent in)
{
    if (s->qlen == SESS_QCAP)
        die("session queue full");
    if (s->qhead + s->qlen == SESS_QCAP) {
        memmove(s->q, s->q + s->qhead, (size_t)s->qlen * sizeof s->q[0]);
        s->qhead = 0;
    }
    size_t i = (size_t)s->qhead + s->qlen;
    while (i > s->qhead && s->q[i - 1].t > in.t) {
        s->q[i] = s->q[i - 1];
        i--;
    }
    s->q[i] = in;
    s->qlen++;
    if (in.t > s->t)
        s->t = in.t;
}

/* Small host-side delays: an initiator answering within tens of µs. */
static int64_t host_delay(struct session *s)
{
    return 15000 + (int64_t)rng_below(&s->rng, 60000);
}

static int64_t jitter(struct session *s, int64_t v)
{
    /* +-10 %, never zero */
    int64_t j = v / 10;
    int64_t r = v - j + (j > 0 ? (int64_t)rng_below(&s->rng, (uint64_t)(2 * j + 1)) : 0);
    return r > 0 ? r : 1;
}

static int64_t think(struct session *s)
{
    if (s->sp.think_ns)
        return s->sp.think_ns;
    int64_t v = (int64_t)rng_exp(&s->rng, 0.3e9);
    return v > 5 * (int64_t)1e9 ? 5 * (int64_t)1e9 : v + 1000;
}

/* --- TCP ------------------------------------------------------------------ */

static void tcp_seg(struct session *s, int64_t t, int d, uint8_t flags, uint32_t off, uint16_t len,
                    uint8_t mark)
{
    struct intent in = {.t = t, .dir = (uint8_t)d, .flags = flags, .seq = s->nxt[d],
                        .ack = s->nxt[!d], .off = off, .len = len, .what = W_TCP, .mark = mark};
    q_add(s, in);
}

/* Sets up the two messages (request, response) of the current round. */
static void tcp_round_msgs(struct session *s)
{
    const struct sess_spec *sp = &s->sp;
    uint64_t req, resp;
    uint64_t seed = rng_u64(&s->rng);
    if (s->round == 0) {
        req = sp->req0;
        resp = sp->resp0;
    } else if (!sp->draw_later) {
        req = sp->reqn;
        resp = sp->respn;
    } else {
        req = sp->app == TAPP_HTTP ? 0 : (uint64_t)rng_lognormal(&s->rng, 6.0, 0.8) + 30;
        resp = (uint64_t)rng_lognormal(&s->rng, 7.3, 1.2) + 30;
        if (resp > 20000000)
            resp = 20000000;
    }
    switch (sp->app) {
    case TAPP_TLS:
        if (s->round == 0) {
            msg_init(&s->msg[0], MSG_TLS_CH, sp->tls_kind, seed, 0, sp->name);
            msg_init(&s->msg[1], MSG_TLS_SH, sp->tls_kind, seed, resp, sp->name);
        } else {
            uint8_t sub = s->round > 1                     ? TLS_APP_PLAIN
                          : sp->tls_kind == TLS_CLIENT_LEGACY ? TLS_APP_CCS_FINISHED
                                                             : TLS_APP_CCS;
            msg_init(&s->msg[0], MSG_TLS_APP, sub, seed, req ? req : 22, sp->name);
            msg_init(&s->msg[1], MSG_TLS_APP, TLS_APP_PLAIN, seed ^ 1, resp, sp->name);
        }
        break;
    case TAPP_HTTP:
        msg_init(&s->msg[0], MSG_HTTP_REQ, 0, seed, req, sp->name);
        msg_init(&s->msg[1], MSG_HTTP_RESP, req ? 1 : 0, seed ^ 1, resp, sp->name);
        break;
    default:
        msg_init(&s->msg[0], MSG_RAW, 0, seed, req ? req : 1, sp->name);
        msg_init(&s->msg[1], MSG_RAW, 0, seed ^ 1, resp, sp->name);
        break;
    }
    s->sent[0] = s->sent[1] = 0;
}

/* Plans one burst of direction d's current message: up to cwnd segments,
 * the receiver's delayed ACKs (every second segment and the last), and a
 * retransmission if this burst holds the segment chosen for one.
 * Returns true when the message has been sent completely. */
static bool tcp_burst(struct session *s, int d, int64_t start)
{
    const struct sess_spec *sp = &s->sp;
    struct msg *m = &s->msg[d];
    uint64_t total = msg_total(m);
    int64_t t = start, first_ack = -1;
    int since_ack = 0;
    bool resend = false;
    uint32_t rs_seq = 0, rs_off = 0;
    uint16_t rs_len = 0;
    uint8_t rs_flags = 0;

    for (unsigned i = 0; i < s->cwnd && s->sent[d] < total; i++) {
        uint64_t left = total - s->sent[d];
        uint16_t len = (uint16_t)(left < s->mss[d] ? left : s->mss[d]);
        bool end = s->sent[d] + len == total;
        uint8_t flags = TCP_ACK | (end ? TCP_PSH : 0);
        uint32_t seg_no = s->nseg[d]++;
        tcp_seg(s, t, d, flags, (uint32_t)s->sent[d], len, 0);
        if ((int32_t)seg_no == sp->retrans_seg[d]) {
            resend = true;
            rs_seq = s->nxt[d];
            rs_off = (uint32_t)s->sent[d];
            rs_len = len;
            rs_flags = flags;
        }
        s->nxt[d] += len;
        s->sent[d] += len;
        since_ack++;
        bool burst_end = resend || end || i + 1 == s->cwnd;
        /* A lone request segment is acknowledged by the response itself. */
        bool piggyback = d == 0 && end && since_ack == 1 && !resend && msg_total(&s->msg[1]) > 0;
        if (!piggyback && (since_ack == 2 || burst_end)) {
            /* The receiver acknowledges: at once if it is the initiator
             * (beside the capture point), a round trip later otherwise. */
            int64_t at = d == 1 ? t + host_delay(s) : t + sp->rtt_ns;
            struct intent a = {.t = at, .dir = (uint8_t)!d, .flags = TCP_ACK,
                               .seq = s->nxt[!d], .ack = s->nxt[d], .what = W_TCP};
            q_add(s, a);
            if (first_ack < 0)
                first_ack = at;
            since_ack = 0;
        }
        if (resend)
            break;
        t += jitter(s, sp->gap_ns * len / 1448 + 1);
    }
    if (resend) {
        /* The same bytes again after a round trip (a spurious or fast
         * retransmission), then the receiver's duplicate ACK. */
        int64_t at = s->t + (sp->rtt_ns > 1000000 ? sp->rtt_ns : 1000000);
        struct intent in = {.t = at, .dir = (uint8_t)d, .flags = rs_flags, .seq = rs_seq,
                            .ack = s->nxt[!d], .off = rs_off, .len = rs_len, .what = W_TCP,
                            .mark = INTENT_RETRANS};
        q_add(s, in);
        int64_t ack_at = d == 1 ? at + host_delay(s) : at + sp->rtt_ns;
        struct intent a = {.t = ack_at, .dir = (uint8_t)!d, .flags = TCP_ACK, .seq = s->nxt[!d],
                           .ack = s->nxt[d], .what = W_TCP};
        q_add(s, a);
    }
    if (s->cwnd < SESS_CWND_MAX)
        s->cwnd = (uint16_t)(s->cwnd * 2 > SESS_CWND_MAX ? SESS_CWND_MAX : s->cwnd * 2);
    /* Next burst: the ACK clock brings new data one round trip after the
     * first ACK; never before what is already planned. */
    int64_t next = d == 1 && first_ack >= 0 ? first_ack + sp->rtt_ns : s->t + host_delay(s);
    if (next <= s->t)
        next = s->t + jitter(s, sp->gap_ns + 1);
    s->t = next;
    return s->sent[d] >= total;
}

static void plan_tcp(struct session *s)
{
    const struct sess_spec *sp = &s->sp;
    switch (s->phase) {
    case PH_START: {
        int64_t t0 = sp->t0;
        struct intent syn = {.t = t0, .dir = 0, .flags = TCP_SYN, .seq = s->isn[0],
                             .what = W_TCP, .mark = INTENT_SYNOPT | INTENT_SYN};
        q_add(s, syn);
        s->nxt[0] = s->isn[0] + 1;
        if (sp->end == TEND_S0) {
            s->phase = PH_DONE;
            return;
        }
        if (sp->end == TEND_REJ) {
            struct intent rst = {.t = t0 + sp->rtt_ns, .dir = 1, .flags = TCP_RST | TCP_ACK,
                                 .seq = 0, .ack = s->nxt[0], .what = W_TCP};
            q_add(s, rst);
            s->phase = PH_DONE;
            return;
        }
        struct intent sa = {.t = t0 + sp->rtt_ns, .dir = 1, .flags = TCP_SYN | TCP_ACK,
                            .seq = s->isn[1], .ack = s->nxt[0], .what = W_TCP,
                            .mark = INTENT_SYNOPT};
        q_add(s, sa);
        s->nxt[1] = s->isn[1] + 1;
        if (sp->end == TEND_HALFOPEN) {
            /* A SYN scanner learnt the port is open: it resets instead of
             * completing the handshake. */
            struct intent rst = {.t = s->t + host_delay(s), .dir = 0, .flags = TCP_RST,
                                 .seq = s->nxt[0], .what = W_TCP};
            q_add(s, rst);
            s->phase = PH_DONE;
            return;
        }
        tcp_seg(s, s->t + host_delay(s), 0, TCP_ACK, 0, 0, INTENT_HSACK);
        s->t += host_delay(s);
        s->phase = PH_REQ_BEGIN;
        return;
    }
    case PH_REQ_BEGIN:
        tcp_round_msgs(s);
        s->cwnd = 10;
        s->phase = PH_REQ;
        return;
    case PH_REQ:
        if (tcp_burst(s, 0, s->t))
            s->phase = PH_RESP_BEGIN;
        return;
    case PH_RESP_BEGIN:
        if (msg_total(&s->msg[1]) == 0) {
            s->phase = PH_ROUND_END;
            return;
        }
        /* Request to the server, its processing, the response back: one
         * round trip plus up to 3 ms of server time. */
        s->t += sp->rtt_ns + (int64_t)rng_below(&s->rng, 3000000);
        s->cwnd = 10;
        s->phase = PH_RESP;
        return;
    case PH_RESP:
        if (tcp_burst(s, 1, s->t))
            s->phase = PH_ROUND_END;
        return;
    case PH_ROUND_END:
        s->round++;
        if (s->round < sp->rounds) {
            s->t += think(s);
            s->phase = PH_REQ_BEGIN;
        } else {
            s->t += host_delay(s);
            s->phase = PH_CLOSE;
        }
        return;
    case PH_CLOSE: {
        int64_t t = s->t;
        switch (sp->end) {
        case TEND_FIN_CLIENT:
            tcp_seg(s, t, 0, TCP_FIN | TCP_ACK, 0, 0, 0);
            s->nxt[0]++;
            tcp_seg(s, t + sp->rtt_ns, 1, TCP_FIN | TCP_ACK, 0, 0, 0);
            s->nxt[1]++;
            tcp_seg(s, t + sp->rtt_ns + host_delay(s), 0, TCP_ACK, 0, 0, 0);
            break;
        case TEND_FIN_SERVER:
            tcp_seg(s, t, 1, TCP_FIN | TCP_ACK, 0, 0, 0);
            s->nxt[1]++;
            tcp_seg(s, t + host_delay(s), 0, TCP_FIN | TCP_ACK, 0, 0, 0);
            s->nxt[0]++;
            tcp_seg(s, s->t + sp->rtt_ns, 1, TCP_ACK, 0, 0, 0);
            break;
        case TEND_RSTO:
            tcp_seg(s, t, 0, TCP_RST | TCP_ACK, 0, 0, 0);
            break;
        case TEND_RSTR:
            tcp_seg(s, t + sp->rtt_ns / 2, 1, TCP_RST | TCP_ACK, 0, 0, 0);
            break;
        default: /* TEND_OPEN: the capture just stops seeing it */
            break;
        }
        s->phase = PH_DONE;
        return;
    }
    default:
        return;
    }
}

/* --- QUIC ---------------------------------------------------------------- */

static void udp_pkt(struct session *s, int64_t t, int d, uint8_t what, uint16_t len, uint8_t mark)
{
    struct intent in = {.t = t, .dir = (uint8_t)d, .what = what, .len = len, .mark = mark};
    q_add(s, in);
}

/* One burst of server 1-RTT datagrams carrying `left` bytes, with the
 * client's ACK-only packets after every second one. Returns bytes sent. */
static uint64_t quic_burst(struct session *s, uint64_t left)
{
    const struct sess_spec *sp = &s->sp;
    int64_t t = s->t, first_ack = -1;
    uint64_t sent = 0;
    for (unsigned i = 0; i < s->cwnd && sent < left; i++) {
        uint64_t n = left - sent;
        uint16_t len = (uint16_t)(n > QUIC_FULL - 30 ? QUIC_FULL : n + 30);
        udp_pkt(s, t, 1, W_Q_SHORT, len, 0);
        sent += len - 30u;
        if (i % 2 == 1 || sent >= left || i + 1 == s->cwnd) {
            int64_t at = t + host_delay(s);
            udp_pkt(s, at, 0, W_Q_SHORT, (uint16_t)(35 + rng_below(&s->rng, 12)), 0);
            if (first_ack < 0)
                first_ack = at;
        }
        t += jitter(s, sp->gap_ns + 1);
    }
    if (s->cwnd < SESS_CWND_MAX)
        s->cwnd = (uint16_t)(s->cwnd * 2 > SESS_CWND_MAX ? SESS_CWND_MAX : s->cwnd * 2);
    int64_t next = first_ack >= 0 ? first_ack + sp->rtt_ns : s->t + 1;
    s->t = next > s->t ? next : s->t + jitter(s, sp->gap_ns + 1);
    return sent;
}

static void plan_quic(struct session *s)
{
    const struct sess_spec *sp = &s->sp;
    switch (s->phase) {
    case PH_START: {
        int64_t t = sp->t0;
        udp_pkt(s, t, 0, W_Q_CINIT, 1250, 0);
        t += sp->rtt_ns;
        udp_pkt(s, t, 1, W_Q_SINIT, 1200, 0);
        t += jitter(s, sp->gap_ns + 1);
        udp_pkt(s, t, 1, W_Q_SHS, (uint16_t)(700 + rng_below(&s->rng, 500)), 0);
        t += host_delay(s);
        udp_pkt(s, t, 0, W_Q_CINIT2, 1200, 0);
        s->phase = PH_REQ_BEGIN;
        return;
    }
    case PH_REQ_BEGIN: {
        udp_pkt(s, s->t + host_delay(s), 0, W_Q_SHORT,
                (uint16_t)(60 + rng_below(&s->rng, 300)), 0);
        uint64_t resp = s->round == 0 ? sp->resp0
                        : sp->draw_later ? (uint64_t)rng_lognormal(&s->rng, 7.3, 1.2) + 30
                                         : sp->respn;
        s->sent[1] = resp; /* bytes still to send in this round */
        s->cwnd = 10;
        s->t += sp->rtt_ns;
        s->phase = PH_RESP;
        return;
    }
    case PH_RESP:
        if (s->sent[1] > 0) {
            uint64_t n = quic_burst(s, s->sent[1]);
            s->sent[1] -= n < s->sent[1] ? n : s->sent[1];
            if (s->sent[1])
                return;
        }
        s->phase = PH_ROUND_END;
        return;
    case PH_ROUND_END:
        s->round++;
        if (s->round < sp->rounds) {
            s->t += think(s);
            s->phase = PH_REQ_BEGIN;
        } else {
            s->phase = PH_CLOSE;
        }
        return;
    case PH_CLOSE:
        if (sp->quic_close)
            udp_pkt(s, s->t + host_delay(s), 0, W_Q_SHORT, 45, 0);
        s->phase = PH_DONE;
        return;
    default:
        return;
    }
}

/* --- DNS, NTP, syslog, ICMP ---------------------------------------------- */

static void plan_dns(struct session *s)
{
    const struct sess_spec *sp = &s->sp;
    udp_pkt(s, sp->t0, 0, W_DNS_Q, 0, 0);
    if (!sp->dns_no_reply)
        udp_pkt(s, sp->t0 + sp->rtt_ns, 1, W_DNS_R, 0, 0);
    s->phase = PH_DONE;
}

/* NTP, syslog and ICMP echo: `rounds` exchanges, think_ns apart (from
 * request to request), with an optional idle gap (a new flow for any flow
 * meter) before exchange #split_after. */
static void plan_exchanges(struct session *s)
{
    const struct sess_spec *sp = &s->sp;
    int64_t t = sp->t0;
    if (s->exch > 0) {
        t = s->xstart + think(s);
        if (t <= s->t) /* never before what is already out */
            t = s->t + 1000;
    }
    uint8_t mark = 0;
    if (sp->split_after && s->exch == sp->split_after) {
        t += sp->split_gap_ns;
        mark = INTENT_SPLIT;
    }
    s->xstart = t;
    uint32_t n = (uint32_t)s->exch + 1;
    struct intent q = {.t = t, .dir = 0, .seq = n, .mark = mark};
    struct intent r = {.t = t + sp->rtt_ns, .dir = 1, .seq = n};
    switch (sp->kind) {
    case SK_NTP:
        q.what = W_NTP_Q, r.what = W_NTP_R;
        q_add(s, q);
        q_add(s, r);
        break;
    case SK_SYSLOG:
        q.what = W_SYSLOG;
        q_add(s, q);
        break;
    default:
        q.what = W_ICMP_REQ, r.what = W_ICMP_REP;
        q_add(s, q);
        q_add(s, r);
        break;
    }
    s->exch++;
    if (s->exch >= sp->rounds)
        s->phase = PH_DONE;
}

/* Plans until something is queued or the session is over. */
static void plan(struct session *s)
{
    while (s->qlen == 0 && s->phase != PH_DONE) {
        switch (s->sp.kind) {
        case SK_TCP:
            plan_tcp(s);
            break;
        case SK_QUIC:
            plan_quic(s);
            break;
        case SK_DNS:
            plan_dns(s);
            break;
        default:
            plan_exchanges(s);
            break;
        }
    }
    s->key = s->qlen ? s->q[s->qhead].t : INT64_MAX;
}

void sess_start(struct session *s, uint64_t id, uint64_t seed)
{
    const struct sess_spec *sp = &s->sp;
    rng_seed(&s->rng, seed);
    s->id = id;
    s->qhead = s->qlen = 0;
    s->phase = PH_START;
    s->round = s->exch = 0;
    s->t = sp->t0;
    s->app_seen = false;
    for (int d = 0; d < 2; d++) {
        s->isn[d] = (uint32_t)rng_u64(&s->rng);
        s->nxt[d] = s->isn[d];
        s->tsbase[d] = (uint32_t)rng_u64(&s->rng);
        s->last_tsval[d] = 0;
        s->ipid[d] = (uint16_t)rng_u64(&s->rng);
        s->mss[d] = sp->ends.ipver == 6 ? 1428 : 1448; /* MSS less 12 bytes of timestamps */
        s->nseg[d] = 0;
        s->sent[d] = 0;
        s->pn[d] = 0;
    }
    s->cwnd = 10;
    rng_fill(&s->rng, s->cid, sizeof s->cid);
    s->app_id = (uint16_t)rng_u64(&s->rng);
    s->hs_seed = rng_u64(&s->rng);
    s->xstart = sp->t0;
    truth_acc_reset(&s->acc);
    plan(s);
}

/* --- emission ------------------------------------------------------------- */

static size_t ntp_payload(uint8_t *p, const struct session *s, int64_t t, bool reply)
{
    /* RFC 5905 §7.3: 48-byte header; NTP time counts from 1900. */
    memset(p, 0, 48);
    uint64_t sec = (uint64_t)(t / 1000000000) + UINT64_C(2208988800);
    uint64_t frac = ((uint64_t)(t % 1000000000) << 32) / 1000000000;
    uint8_t ts[8];
    for (int i = 0; i < 4; i++) {
        ts[i] = (uint8_t)(sec >> (24 - 8 * i));
        ts[4 + i] = (uint8_t)(frac >> (24 - 8 * i));
    }
    if (!reply) {
        p[0] = 0x23; /* LI 0, version 4, mode 3 (client) */
        p[2] = 6;
        p[3] = 0xe9;
        memcpy(p + 40, ts, 8);
    } else {
        int64_t sent_at = t - s->sp.rtt_ns;
        uint64_t osec = (uint64_t)(sent_at / 1000000000) + UINT64_C(2208988800);
        uint64_t ofrac = ((uint64_t)(sent_at % 1000000000) << 32) / 1000000000;
        p[0] = 0x24; /* mode 4 (server) */
        p[1] = 2;    /* stratum 2 */
        p[2] = 6;
        p[3] = 0xe8;
        p[7] = 0x20;                    /* root delay ~0.5 ms */
        p[11] = 0x40;                   /* root dispersion */
        p[12] = 198, p[13] = 51, p[14] = 100, p[15] = 123; /* reference id: upstream */
        memcpy(p + 16, ts, 4);          /* reference time: whole seconds */
        for (int i = 0; i < 4; i++) {
            p[24 + i] = (uint8_t)(osec >> (24 - 8 * i)); /* origin = client's transmit */
            p[28 + i] = (uint8_t)(ofrac >> (24 - 8 * i));
        }
        memcpy(p + 32, ts, 8);
        memcpy(p + 40, ts, 8);
    }
    return 48;
}

static size_t syslog_payload(uint8_t *p, size_t cap, const struct session *s, int64_t t,
                             uint32_t seq)
{
    static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t sec = (time_t)(t / 1000000000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    /* RFC 3164 framing: <PRI>TIMESTAMP HOST TAG: MSG */
    int n = snprintf((char *)p, cap, "<134>%s %2d %02d:%02d:%02d host%u vigil-gen[%u]: event %u ok",
                     mon[tm.tm_mon], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (unsigned)(s->app_id % 100), (unsigned)s->app_id, (unsigned)seq);
    return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}

static size_t icmp_payload(uint8_t *p, int64_t t)
{
    /* Like ping: a 16-byte send time, then an incrementing pattern. */
    uint64_t sec = (uint64_t)(t / 1000000000), usec = (uint64_t)(t % 1000000000) / 1000;
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(sec >> (8 * i));
        p[8 + i] = (uint8_t)(usec >> (8 * i));
    }
    for (int i = 16; i < 56; i++)
        p[i] = (uint8_t)i;
    return 56;
}

static size_t quic_payload(struct session *s, const struct intent *in, uint8_t *p, size_t cap)
{
    uint8_t frames[1400], hello[1200], tp[128];
    const uint8_t *odcid = s->cid[0], *cscid = s->cid[1], *sscid = s->cid[2];
    const uint8_t *filler = pool_at(rng_u64(&s->rng));
    size_t n = 0, f;
    uint32_t pn = s->pn[in->dir]++;
    switch (in->what) {
    case W_Q_CINIT: {
        size_t tpl = quic_client_transport_params(tp, sizeof tp, cscid);
        size_t hl = tls_client_hello(hello, sizeof hello, TLS_CLIENT_QUIC, s->sp.name,
                                     s->hs_seed, tp, tpl);
        f = quic_crypto_frame(frames, sizeof frames, hello, hl);
        n = quic_initial(p, cap, false, odcid, odcid, cscid, pn, frames, f, in->len);
        break;
    }
    case W_Q_SINIT: {
        size_t hl = tls_server_hello(hello, sizeof hello, TLS_CLIENT_QUIC, s->hs_seed);
        f = quic_ack_frame(frames, sizeof frames, 0);
        f += quic_crypto_frame(frames + f, sizeof frames - f, hello, hl);
        n = quic_initial(p, cap, true, odcid, cscid, sscid, pn, frames, f, 0);
        if (n && in->len > n + 60)
            n += quic_handshake_opaque(p + n, cap - n, cscid, sscid, in->len - n, filler);
        break;
    }
    case W_Q_SHS:
        n = quic_handshake_opaque(p, cap, cscid, sscid, in->len, filler);
        break;
    case W_Q_CINIT2: {
        f = quic_ack_frame(frames, sizeof frames, 0);
        n = quic_initial(p, cap, false, odcid, sscid, cscid, pn, frames, f, 0);
        if (n && in->len > n + 60)
            n += quic_handshake_opaque(p + n, cap - n, sscid, cscid, in->len - n, filler);
        break;
    }
    default: /* W_Q_SHORT: to the peer's connection id */
        n = quic_short_opaque(p, cap, in->dir == 0 ? sscid : cscid, in->len, filler);
        break;
    }
    if (!n)
        die("QUIC packet did not fit");
    return n;
}

static const char *state_of(const struct session *s)
{
    switch (s->sp.end) {
    case TEND_FIN_CLIENT:
    case TEND_FIN_SERVER:
        return "SF";
    case TEND_S0:
        return "S0";
    case TEND_REJ:
        return "REJ";
    case TEND_RSTO:
    case TEND_HALFOPEN:
        return "RSTO";
    case TEND_RSTR:
        return "RSTR";
    default:
        return "S1";
    }
}

static void write_truth(struct session *s, struct truth_writer *tw, struct sess_stats *st)
{
    const struct sess_spec *sp = &s->sp;
    struct truth_flow fl = {.ends = &sp->ends, .dns_qtype = -1, .dns_rcode = -1,
                            .icmp_type = -1, .icmp_code = -1, .note = sp->note};
    if (s->acc.pkts[0] + s->acc.pkts[1] == 0)
        return;
    switch (sp->kind) {
    case SK_TCP:
        fl.state = state_of(s);
        if (s->app_seen && sp->app == TAPP_TLS) {
            fl.app = "tls";
            fl.tls_sni = sp->name;
        } else if (s->app_seen && sp->app == TAPP_HTTP) {
            fl.app = "http";
            fl.http_host = sp->name;
        }
        break;
    case SK_DNS:
        fl.app = "dns";
        fl.dns_qname = sp->name;
        fl.dns_qtype = sp->dns_qtype;
        if (s->acc.reply_seen)
            fl.dns_rcode = sp->dns_rcode;
        break;
    case SK_QUIC:
        fl.app = "quic";
        fl.tls_sni = sp->name;
        break;
    case SK_ICMP:
        fl.icmp_type = sp->ends.ipver == 6 ? 128 : 8;
        fl.icmp_code = 0;
        break;
    default:
        break;
    }
    truth_write(tw, &fl, &s->acc);
    st->flows++;
}

size_t sess_emit(struct session *s, uint8_t *frame, int64_t *ts, struct truth_writer *tw,
                 struct sess_stats *st)
{
    const struct sess_spec *sp = &s->sp;
    const struct pkt_ends *e = &sp->ends;
    struct intent in = s->q[s->qhead];
    s->qhead++;
    s->qlen--;
    int d = in.dir;

    if (in.mark & INTENT_SPLIT) {
        write_truth(s, tw, st);
        truth_acc_reset(&s->acc);
    }

    struct pkt_hdr h = {.dir = (uint8_t)d, .ip_id = s->ipid[d]++};
    uint8_t opts[40];
    size_t paylen = 0;
    if (e->proto == 6) {
        uint32_t tsval = s->tsbase[d] + (uint32_t)((in.t - sp->t0) / 1000000);
        uint32_t tsecr = s->last_tsval[!d];
        s->last_tsval[d] = tsval;
        h.tcp_flags = in.flags;
        h.seq = in.seq;
        h.ack = (in.flags & TCP_ACK) ? in.ack : 0;
        if (in.mark & INTENT_SYNOPT) {
            uint16_t mss = e->ipver == 6 ? 1440 : 1460;
            uint8_t o[20] = {2, 4, (uint8_t)(mss >> 8), (uint8_t)mss, 4, 2, 8, 10,
                             (uint8_t)(tsval >> 24), (uint8_t)(tsval >> 16),
                             (uint8_t)(tsval >> 8), (uint8_t)tsval,
                             (uint8_t)(tsecr >> 24), (uint8_t)(tsecr >> 16),
                             (uint8_t)(tsecr >> 8), (uint8_t)tsecr, 1, 3, 3, 7};
            memcpy(opts, o, 20);
            h.optlen = 20;
            h.win = e->ipver == 6 ? 64800 : 64240;
        } else if (in.flags & TCP_RST) {
            h.optlen = 0;
            h.win = 0;
        } else {
            uint8_t o[12] = {1, 1, 8, 10, (uint8_t)(tsval >> 24), (uint8_t)(tsval >> 16),
                             (uint8_t)(tsval >> 8), (uint8_t)tsval, (uint8_t)(tsecr >> 24),
                             (uint8_t)(tsecr >> 16), (uint8_t)(tsecr >> 8), (uint8_t)tsecr};
            memcpy(opts, o, 12);
            h.optlen = 12;
            h.win = d == 0 ? 502 : 509;
        }
        h.opts = opts;
        uint8_t *pl = frame + pkt_payload_offset(e, &h);
        if (in.len) {
            msg_render(&s->msg[d], sp->name, in.off, pl, in.len);
            paylen = in.len;
            if (d == 0)
                s->app_seen = true;
        }
    } else if (e->proto == 17) {
        uint8_t *pl = frame + pkt_payload_offset(e, &h);
        /* Every datagram fits a 1500-byte MTU even over IPv6 (40 + 8 bytes of headers). */
        size_t cap = PKT_FRAME_MAX - pkt_payload_offset(e, &h) - 64;
        if (cap > 1500 - 48)
            cap = 1500 - 48;
        switch (in.what) {
        case W_DNS_Q:
            paylen = dns_build_query(pl, cap, s->app_id, sp->name, sp->dns_qtype);
            break;
        case W_DNS_R:
            paylen = sp->dns_data
                         ? dns_build_data_response(pl, cap, s->app_id, sp->name, sp->dns_qtype,
                                                   sp->dns_data, &s->rng)
                         : dns_build_response(pl, cap, s->app_id, sp->name, sp->dns_qtype,
                                              sp->dns_rcode, &s->rng);
            s->acc.reply_seen = true;
            break;
        case W_NTP_Q:
        case W_NTP_R:
            paylen = ntp_payload(pl, s, in.t, in.what == W_NTP_R);
            break;
        case W_SYSLOG:
            paylen = syslog_payload(pl, 512, s, in.t, in.seq);
            break;
        default:
            paylen = quic_payload(s, &in, pl, cap);
            break;
        }
        if (!paylen)
            die("UDP payload did not fit");
    } else {
        bool v6 = e->ipver == 6;
        h.icmp_type = in.what == W_ICMP_REQ ? (v6 ? 128 : 8) : (v6 ? 129 : 0);
        h.icmp_code = 0;
        h.icmp_id = s->app_id;
        h.icmp_seq = (uint16_t)in.seq; /* the exchange's number, from 1 */
        paylen = icmp_payload(frame + pkt_payload_offset(e, &h), in.t);
    }

    uint32_t ip_len;
    size_t len = pkt_finish(frame, e, &h, paylen, &ip_len);

    struct truth_acc *a = &s->acc;
    if (a->pkts[0] + a->pkts[1] == 0)
        a->first_ns = in.t;
    a->last_ns = in.t;
    a->pkts[d]++;
    a->bytes[d] += ip_len;
    if (e->proto == 6)
        a->flags[d] |= in.flags;
    if (in.mark & INTENT_RETRANS)
        a->retrans[d]++;
    if (in.mark & INTENT_SYN)
        a->syn_ns = in.t;
    if (in.mark & INTENT_HSACK)
        a->hs_ack_ns = in.t;

    st->packets++;
    st->frame_bytes += len;
    st->ip_bytes += ip_len;
    *ts = in.t;
    plan(s);
    return len;
}

void sess_finish(struct session *s, struct truth_writer *tw, struct sess_stats *st)
{
    write_truth(s, tw, st);
    st->by_kind[s->sp.kind]++;
}
