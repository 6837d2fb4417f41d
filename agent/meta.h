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
 * cipher context per QUIC Initial; the parsers' buffers are on the stack. */
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

/* QUIC long-header Initial packet (RFC 9000 §17.2.2) from a client, v1
 * (RFC 9001 §5) or v2 (RFC 9369): removes header protection, decrypts the
 * payload with the Initial keys, gathers CRYPTO frames from offset 0 and
 * parses the ClientHello in them. META_NOT if not a QUIC Initial, META_MORE
 * if the ClientHello continues in a later Initial (not followed). */
enum meta_result meta_quic_initial(const uint8_t *data, size_t len, struct tls_hello_info *out);

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

/* Bytes of CRYPTO stream gathered from one QUIC Initial. A client Initial
 * datagram is >= 1200 bytes and rarely above the path MTU, so one packet
 * carries well under 4 KiB of CRYPTO data; bytes beyond are ignored. */
#define META_QUIC_CRYPTO_MAX 4096

/* Largest QUIC Initial payload decrypted (bytes after the packet number).
 * Same reasoning: Initials fit a datagram of about the path MTU; a larger
 * one (jumbo frames) is META_NOT rather than a bigger stack buffer. */
#define META_QUIC_PAYLOAD_MAX 4096

/* Compression pointers followed in one DNS name. A legitimate name needs a
 * handful; the bound ends loops even before the backward-only rule does. */
#define META_DNS_MAX_JUMPS 16

_Static_assert(META_TLS_MAX_NEED >= 512 && META_TLS_MAX_NEED <= 65536,
               "a ClientHello must fit and the copy stays a stack buffer");
_Static_assert(META_QUIC_CRYPTO_MAX >= 1200, "one Initial's CRYPTO data must fit");
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

#endif
