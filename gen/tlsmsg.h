/* tlsmsg.h — TLS handshake messages in wire format (RFC 8446, RFC 5246).
 *
 * ClientHellos come in a few client "personalities" (a browser-like TLS 1.3
 * offer, a command-line tool's offer, a TLS 1.2-only legacy client, and the
 * QUIC offer with transport parameters) so fingerprints differ between flows.
 * ServerHellos answer TLS 1.3 offers with TLS 1.3 (x25519, AES-128-GCM) and
 * legacy offers with a TLS 1.2 resumption. All random fields (client/server
 * random, session id, key shares) come from a seed, so the same seed renders
 * the same bytes every time. Non-goals: a real key exchange, certificates. */
#ifndef VIGIL_GEN_TLSMSG_H
#define VIGIL_GEN_TLSMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tls_client_kind {
    TLS_CLIENT_BROWSER = 0, /* TLS 1.3, ALPN h2 + http/1.1, padded to 512 bytes */
    TLS_CLIENT_TOOL,        /* TLS 1.3 + 1.2, ALPN http/1.1 */
    TLS_CLIENT_LEGACY,      /* TLS 1.2 only, no ALPN */
    TLS_CLIENT_QUIC,        /* TLS 1.3 inside QUIC: ALPN h3, transport parameters */
    TLS_CLIENT_KINDS
};

#define TLS_CT_CCS 20
#define TLS_CT_HANDSHAKE 22
#define TLS_CT_APPDATA 23

/* Writes the ClientHello handshake message (type 1, no record header).
 * quic_tp (borrowed, may be NULL) is the transport-parameter block for
 * TLS_CLIENT_QUIC. Returns the length, or 0 if cap is too small. */
size_t tls_client_hello(uint8_t *out, size_t cap, enum tls_client_kind kind, const char *sni,
                        uint64_t seed, const uint8_t *quic_tp, size_t quic_tp_len);

/* Writes the ServerHello handshake message answering that ClientHello
 * (same kind and seed). Returns the length, or 0. */
size_t tls_server_hello(uint8_t *out, size_t cap, enum tls_client_kind kind, uint64_t seed);

/* Writes a record header (type, legacy version, length) then moves body
 * (which may already sit at out + 5) behind it. Returns 5 + len, or 0. */
size_t tls_record(uint8_t *out, size_t cap, uint8_t type, uint16_t version, const uint8_t *body,
                  size_t len);

/* Fills out with n bytes derived from (seed, which): the deterministic
 * "random" fields of a handshake. */
void tls_seed_bytes(uint64_t seed, uint32_t which, uint8_t *out, size_t n);

#endif
