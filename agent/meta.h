/* meta.h — light application metadata from the first payload bytes of a flow.
 *
 * Pure functions over untrusted bytes: no allocation, no global state, every
 * read bounds-checked through common/cursor.h. Each returns META_OK when it
 * found what it looks for, META_NOT when the bytes are not that protocol,
 * META_MORE when they are but more bytes are needed (TLS records split over
 * segments), and never reads past `len`. Output strings are NUL-terminated,
 * lower-cased where the protocol is case-insensitive, and contain only
 * printable ASCII (other bytes are replaced by '?'). The one allocation is
 * libcrypto's own: a digest context per ClientHello (JA4's SHA-256) and a
 * cipher context per QUIC datagram; the parsers' buffers are on the stack,
 * except the QUIC reassembly state, which the caller holds (struct
 * quic_hello_reasm below). */
#ifndef VIGIL_META_H
#define VIGIL_META_H

#include "flowrec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum meta_result { META_NOT = 0, META_OK = 1, META_MORE = 2 };

/* DNS message (RFC 1035 §4.1): the first question, and the response code
 * when it is a response. `tcp` says the message has the 2-byte length prefix
 * of DNS over TCP (RFC 1035 §4.2.2). Compression pointers are followed with
 * a bound on jumps, so loops end. */
struct dns_info {
    char qname[FLOWREC_NAME_MAX]; /* "www.example.com", no trailing dot; "." for the root */
    uint16_t qtype;
    uint16_t id;
    bool is_response;
    uint8_t rcode;                /* low 4 bits of the header flags */
};
/* Never META_MORE: a first question that cannot be read whole (cut short,
 * a bad label or pointer, a name over 255 octets) is META_NOT, as is a
 * message with QDCOUNT 0 or an unassigned opcode; *out is then zeroed. */
enum meta_result meta_dns_parse(const uint8_t *data, size_t len, bool tcp, struct dns_info *out);

/* TLS ClientHello (RFC 8446 §4.1.2) starting at a TLS record header.
 * For META_MORE, *need is set to the total number of bytes needed from the
 * start of `data` to hold the whole handshake message. `transport` is 't'
 * for TCP or 'q' for QUIC (where `data` is the bare handshake message, no
 * record header). Computes the JA4 TLS client fingerprint (FoxIO's JA4
 * specification): "t13d1516h2_<12 hex>_<12 hex>".
 * *need: exact when the message ends in a record already begun, else a
 * lower bound (one more record header at least); call again with at least
 * that many bytes. It never exceeds META_TLS_MAX_NEED (beyond is
 * META_NOT) and is 0 unless META_MORE. `need` may be NULL. */
struct tls_hello_info {
    char sni[FLOWREC_NAME_MAX];
    char ja4[FLOWREC_JA4_MAX];
    char alpn[32];                /* first ALPN value, "" if none */
};
enum meta_result meta_tls_client_hello(const uint8_t *data, size_t len, char transport,
                                       struct tls_hello_info *out, size_t *need);

/* Bytes of the QUIC client CRYPTO stream kept from offset 0, which bounds
 * the ClientHello read from QUIC and the size of struct quic_hello_reasm.
 * Today's largest hellos are 1.8-2.5 KiB (an X25519MLKEM768 share is 1216
 * bytes); one carrying two hybrid post-quantum shares (1216 + 1665 bytes
 * for SecP384r1MLKEM1024), ECH and a resumption ticket runs past 4 KiB, so
 * 8 KiB leaves room while keeping the per-flow state small. Matching
 * META_TLS_MAX_NEED (16 KiB) would double that state for hellos no client
 * sends. Stream bytes beyond the limit are ignored; a longer hello is
 * META_NOT. (Here rather than with the limits below: it sizes a structure.) */
#define META_QUIC_CRYPTO_MAX 8192

/* QUIC long-header Initial packet (RFC 9000 §17.2.2) from a client, v1
 * (RFC 9001 §5) or v2 (RFC 9369): removes header protection, decrypts the
 * payload with the Initial keys, gathers CRYPTO frames from offset 0 and
 * parses the ClientHello in them. One datagram only: the first packet and
 * any Initials coalesced after it (RFC 9000 §12.2). META_NOT if not a
 * client Initial or without CRYPTO data at offset 0, META_MORE if the
 * ClientHello continues in a later datagram (see meta_quic_initial_add). */
enum meta_result meta_quic_initial(const uint8_t *data, size_t len, struct tls_hello_info *out);

/* Initial packet protection keys of one direction (RFC 9001 §5.2, §5.4):
 * AEAD_AES_128_GCM key and IV, AES-128 header-protection key. */
struct quic_initial_keys {
    uint8_t key[16];
    uint8_t iv[12];
    uint8_t hp[16];
};

enum quic_reasm_phase {
    QUIC_REASM_COLLECTING = 0, /* no ClientHello yet: feed the next datagram */
    QUIC_REASM_DONE,           /* a whole ClientHello was read (META_OK was returned) */
    QUIC_REASM_FAILED,         /* the CRYPTO stream holds no readable ClientHello: give up */
};

/* A ClientHello reassembled from the CRYPTO frames of several client
 * Initials (RFC 9000 §19.6: one stream per encryption level, offsets from
 * 0). Modern clients need this: Chrome >= 124 with its ~1.2 KB X25519MLKEM768
 * key share spreads the hello over two or more Initials, each a datagram of
 * its own, which may arrive in any order.
 *
 * The state is held by the caller (one per QUIC flow being inspected, e.g.
 * from a pool) so that nothing is allocated. Only authenticated bytes enter
 * it: the first Initial that passes AEAD authentication fixes the version and
 * the keys, derived once from its Destination Connection ID. RFC 9001 §5.2
 * keys the whole Initial phase by the client's first DCID, even after the
 * client switches to the server's chosen ID (RFC 9000 §7.2), so later
 * Initials are opened with these same keys whatever DCID they carry; a
 * packet of another connection fails authentication and leaves the state
 * as it was. Where two authenticated fragments overlap with different bytes,
 * the first one kept wins.
 *
 * Note that Initial keys are public (anyone who sees the DCID can derive
 * them): authentication proves that a packet belongs to the connection's
 * Initial phase, not that the client sent it. An on-path party able to
 * inject first can still choose what is read, as with any cleartext.
 *
 * Use, per UDP flow:
 *   - meta_quic_reasm_init when the flow's first datagram from its initiator
 *     passes meta_is_quic_long_header, then meta_quic_initial_add on it and
 *     on each later datagram from the initiator (never the responder's), in
 *     capture order. For a single datagram, meta_quic_initial needs no state.
 *   - META_OK: use *out and release the state.
 *   - META_MORE: keep the state and feed the next datagram.
 *   - META_NOT: release the state if st->phase is QUIC_REASM_FAILED, or if
 *     st->version is still 0 after the first datagram (not a decryptable
 *     client Initial: a capture begun mid-connection, a server or a
 *     non-QUIC peer). Otherwise the datagram was foreign or damaged: ignore
 *     it and keep the state.
 *   - Also release it after a budget of datagrams (a real client sends its
 *     whole hello in its first flight, two to four datagrams), on the
 *     client's first short-header (1-RTT) packet (the handshake is over),
 *     and when the flow ends.
 * Callers may read `phase`, `version` and `dcid`/`dcid_len`; the rest is
 * private to meta_quic.c. sizeof is 9288 bytes with META_QUIC_CRYPTO_MAX at
 * 8192: the stream buffer, its bitmap and 72 bytes of keys and header. */
struct quic_hello_reasm {
    uint8_t crypto[META_QUIC_CRYPTO_MAX];   /* CRYPTO stream bytes from offset 0; only
                                             * those flagged in have[] are set */
    uint8_t have[META_QUIC_CRYPTO_MAX / 8]; /* bit i (LSB first): crypto[i] is filled */
    struct quic_initial_keys keys;          /* client Initial keys, valid once version != 0 */
    uint32_t version;                       /* QUIC version of the first authenticated
                                             * Initial; 0 until there is one */
    uint16_t contiguous;                    /* crypto[0, contiguous) are all filled */
    uint8_t dcid_len;                       /* the client's original DCID, which keys... */
    uint8_t dcid[20];                       /* ...the Initial phase (RFC 9001 §5.2) */
    uint8_t phase;                          /* enum quic_reasm_phase */
};

/* Resets st for a new flow: COLLECTING, no version, nothing filled. Cheap:
 * the 8 KiB data buffer is not cleared (only bytes flagged in have[] are
 * ever read). */
void meta_quic_reasm_init(struct quic_hello_reasm *st);

/* Feeds one UDP payload sent by the client (the flow's initiator) into st:
 * its first packet and any Initials coalesced after it with the same DCID
 * (RFC 9000 §12.2; a datagram that begins with a 0-RTT or Handshake packet
 * is not looked into). Each Initial is authenticated before any of its
 * CRYPTO data is kept, and only data within the first META_QUIC_CRYPTO_MAX
 * bytes of the stream is kept.
 * Returns
 *   META_OK    the bytes gathered from offset 0 hold a whole ClientHello;
 *              *out is filled and st->phase is QUIC_REASM_DONE. Every later
 *              call returns META_OK again with the same *out, without
 *              looking at its datagram.
 *   META_MORE  the datagram was a client Initial of this connection and
 *              its data was kept, but the ClientHello is not whole yet.
 *   META_NOT   the datagram was not used: not a client Initial, cut short,
 *              failed authentication, another version or connection, or an
 *              Initial with frames not allowed there (RFC 9000 §12.4); st is
 *              unchanged. Also META_NOT, with st->phase QUIC_REASM_FAILED,
 *              once the stream is known to hold no readable ClientHello
 *              (another message type, longer than META_QUIC_CRYPTO_MAX, or
 *              malformed); every later call then returns META_NOT.
 * *out is zeroed unless META_OK. st: borrowed, kept by the caller between
 * calls; data: borrowed for the call. */
enum meta_result meta_quic_initial_add(struct quic_hello_reasm *st, const uint8_t *data,
                                       size_t len, struct tls_hello_info *out);

/* Is this the start of a QUIC long-header packet of a known version? */
bool meta_is_quic_long_header(const uint8_t *data, size_t len);

/* HTTP/1.x request (RFC 9112 §3): a known method, then the Host header's
 * value (RFC 9110 §7.2) without the port. META_NOT if not a request line;
 * META_MORE if the bytes end before the Host line (or the end of the
 * header section) is complete; META_OK with host "" when the header
 * section ends without a Host field. */
enum meta_result meta_http_request(const uint8_t *data, size_t len, char host[FLOWREC_NAME_MAX]);

/* Labels a payload by its first bytes ("ssh", "http", "tls", "smtp"...) or
 * returns NULL. Cheap: looks at a few bytes only. */
const char *meta_app_by_payload(uint8_t proto, const uint8_t *data, size_t len);

/* Falls back on well-known ports ("dns", "ntp", "dhcp", "https"...); NULL if unknown. */
const char *meta_app_by_port(uint8_t proto, uint16_t sport, uint16_t dport);

/* ---- Limits of the parsers above (each with its reason). ---- */

/* Largest *need meta_tls_client_hello asks for, record headers included; a
 * ClientHello that needs more is META_NOT. Real ones are 0.2-2 KiB (a
 * post-quantum key share brings Chrome to ~1.8 KiB); 16 KiB is one full TLS
 * record, which bounds what a flow has to buffer and the parser's copy. */
#define META_TLS_MAX_NEED 16384

/* Largest QUIC Initial payload decrypted (bytes after the packet number).
 * A client Initial datagram is >= 1200 bytes and rarely above the path MTU;
 * a larger one (jumbo frames) is META_NOT rather than a bigger stack buffer.
 * (META_QUIC_CRYPTO_MAX is defined above, with the structure it sizes.) */
#define META_QUIC_PAYLOAD_MAX 4096

/* Compression pointers followed in one DNS name. A legitimate name needs a
 * handful; the bound ends loops even before the backward-only rule does. */
#define META_DNS_MAX_JUMPS 16

_Static_assert(META_TLS_MAX_NEED >= 512 && META_TLS_MAX_NEED <= 65536,
               "a ClientHello must fit and the copy stays a stack buffer");
_Static_assert(META_QUIC_CRYPTO_MAX >= 1200, "one Initial's CRYPTO data must fit");
_Static_assert(META_QUIC_CRYPTO_MAX % 8 == 0 && META_QUIC_CRYPTO_MAX <= 65535,
               "whole bitmap bytes, and quic_hello_reasm.contiguous is 16 bits");
_Static_assert(META_QUIC_PAYLOAD_MAX >= 1500, "an Initial of a 1500-byte MTU must fit");

/* ---- Internal to the meta_*.c files; declared here for tests and fuzzing. ---- */

/* Copies n untrusted bytes into dst (capacity cap >= 1) as a NUL-terminated
 * string: bytes outside printable ASCII (0x20-0x7e) become '?', letters are
 * lower-cased when `lower`, and the copy stops at cap - 1 bytes. Returns the
 * length written. */
size_t meta__copy_printable(char *dst, size_t cap, const uint8_t *src, size_t n, bool lower);

/* Reads the DNS name at offset `at` of the message msg (msg_len bytes,
 * without a TCP length prefix) into out: dotted, lower-cased, printable,
 * "." for the root. Compression pointers must point strictly before the
 * name part that holds them and past the header, at most META_DNS_MAX_JUMPS
 * times. *end gets the offset just past the name as written at `at`.
 * Returns false on a malformed or truncated name (out is then undefined). */
bool meta__dns_name(const uint8_t *msg, size_t msg_len, size_t at, char out[FLOWREC_NAME_MAX],
                    size_t *end);

/* The frames of a decrypted QUIC Initial payload (RFC 9000 §19): gathers
 * CRYPTO data from offset 0 (fragments in any order) and parses the
 * ClientHello in it. Returns as meta_quic_initial. */
enum meta_result meta__quic_frames(const uint8_t *payload, size_t len, struct tls_hello_info *out);

/* The reassembly step of meta_quic_initial_add for one already decrypted
 * Initial payload: checks all its frames, then keeps its CRYPTO data in st
 * and looks for the ClientHello. Keys and version in st are neither used
 * nor set. Returns as meta_quic_initial_add. */
enum meta_result meta__quic_reasm_payload(struct quic_hello_reasm *st, const uint8_t *payload,
                                          size_t len, struct tls_hello_info *out);

#endif
