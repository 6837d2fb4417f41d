/* flowrec.h — the flow record: what an agent emits for one flow.
 *
 * This is the in-memory form shared by the agent's JSON writer, the wire
 * encoder and the CLI. Field meanings and JSON names are fixed by
 * DESIGN.md ("The flow record"); the README documents each one. */
#ifndef VIGIL_FLOWREC_H
#define VIGIL_FLOWREC_H

#include "addr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Zeek's conn_state vocabulary (TCP); other protocols report OTH-free
 * values: FLOW_STATE_NONE is printed as absent. */
enum conn_state {
    STATE_NONE = 0,
    STATE_S0,     /* SYN seen, no reply */
    STATE_S1,     /* established, not terminated */
    STATE_SF,     /* established and closed normally */
    STATE_REJ,    /* SYN answered by RST */
    STATE_S2,     /* established, originator sent FIN, no FIN from responder */
    STATE_S3,     /* established, responder sent FIN, no FIN from originator */
    STATE_RSTO,   /* established, originator aborted */
    STATE_RSTR,   /* established, responder aborted */
    STATE_RSTOS0, /* originator sent SYN then RST, no SYN-ACK */
    STATE_RSTRH,  /* responder sent SYN-ACK then RST, no SYN seen */
    STATE_SH,     /* originator sent SYN then FIN, no SYN-ACK */
    STATE_SHR,    /* responder sent SYN-ACK then FIN, no SYN seen */
    STATE_OTH,    /* no SYN seen: midstream traffic */
    STATE_COUNT
};

enum end_reason {
    END_IDLE = 0, /* idle timeout */
    END_ACTIVE,   /* active timeout: a partial record, the flow goes on */
    END_FIN,      /* TCP closed with FIN in both directions */
    END_RST,      /* TCP reset */
    END_EVICTED,  /* table full: pushed out early */
    END_SHUTDOWN, /* agent stopped or input ended */
    END_COUNT
};

enum flow_direction {
    DIR_UNKNOWN = 0, /* no local networks configured */
    DIR_INBOUND,     /* remote initiator to a local responder */
    DIR_OUTBOUND,    /* local initiator to a remote responder */
    DIR_INTERNAL,    /* both local */
    DIR_EXTERNAL,    /* neither local */
    DIR_COUNT
};

enum tunnel_kind {
    TUNNEL_NONE = 0,
    TUNNEL_GRE,
    TUNNEL_VXLAN,
    TUNNEL_GENEVE,
    TUNNEL_IPIP, /* IPv4/IPv6 in IPv4/IPv6 */
    TUNNEL_TEREDO,
    TUNNEL_MPLS_UDP,
    TUNNEL_COUNT
};

#define VLAN_NONE 0xffffu
#define FLOWREC_NAME_MAX 256 /* DNS names, SNI, HTTP host: 255 chars + NUL */
#define FLOWREC_JA4_MAX 40   /* "t13d1516h2_8daaf6152771_e5627efa2ab1" + NUL */
#define FLOWREC_APP_MAX 16

struct flow_record {
    uint64_t flow_id;
    char agent[64];          /* agent name; empty when not set */
    bool final;              /* false for an active-timeout partial record */
    uint8_t end_reason;      /* enum end_reason */
    int64_t start_ns;        /* first packet, ns since the epoch */
    int64_t end_ns;          /* last packet */
    struct vigil_addr src;   /* the initiator */
    struct vigil_addr dst;
    uint16_t src_port;       /* host order; 0 for protocols without ports */
    uint16_t dst_port;
    bool has_ports;          /* TCP, UDP, SCTP */
    uint8_t proto;           /* IANA protocol number */
    uint16_t vlan;           /* outermost VLAN ID, VLAN_NONE if untagged */
    uint8_t tunnel;          /* enum tunnel_kind of the outermost tunnel */
    bool has_icmp;
    uint8_t icmp_type, icmp_code;
    uint64_t pkts_fwd, bytes_fwd; /* initiator to responder; IP-layer bytes */
    uint64_t pkts_rev, bytes_rev;
    uint8_t tcp_flags_fwd, tcp_flags_rev; /* OR of flags seen (FIN=1 … CWR=128) */
    uint8_t state;           /* enum conn_state */
    bool has_rtt;
    uint32_t rtt_us;         /* SYN to handshake-completing ACK, as seen here */
    uint32_t retrans_fwd, retrans_rev;
    uint8_t direction;       /* enum flow_direction */
    char app[FLOWREC_APP_MAX];
    char dns_qname[FLOWREC_NAME_MAX];
    bool has_dns;
    uint16_t dns_qtype;
    bool has_dns_rcode;
    uint8_t dns_rcode;
    char tls_sni[FLOWREC_NAME_MAX];
    char ja4[FLOWREC_JA4_MAX];
    char http_host[FLOWREC_NAME_MAX];
};

const char *conn_state_name(enum conn_state s);
const char *end_reason_name(enum end_reason r);
const char *direction_name(enum flow_direction d);
const char *tunnel_name(enum tunnel_kind t);

/* Writes the record as one flat JSON object plus '\n' into buf.
 * Returns the length, or 0 if buf is too small (FLOWREC_JSON_MAX always fits). */
#define FLOWREC_JSON_MAX 8192 /* every string field at its longest, every byte escaped to \\u00XX */
size_t flowrec_to_json(const struct flow_record *r, char *buf, size_t len);

#endif
