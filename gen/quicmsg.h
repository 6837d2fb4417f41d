/* quicmsg.h — QUIC version 1 packets (RFC 9000 §17) for QUIC-looking UDP/443 flows.
 *
 * Initial packets are real: their payload (CRYPTO frame with a TLS
 * ClientHello or ServerHello, ACK, PADDING) is protected with the Initial
 * keys of RFC 9001 §5 (HKDF-SHA256, AES-128-GCM, AES header protection), so
 * any reader that knows QUIC — tshark, or vigil's agent — can decrypt them
 * and read the SNI. Handshake and 1-RTT packets are opaque filler behind a
 * correct header: nobody holds their keys. Non-goals: a working connection,
 * retry, version negotiation, QUIC v2. */
#ifndef VIGIL_GEN_QUICMSG_H
#define VIGIL_GEN_QUICMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QUIC_CID_LEN 8

/* Writes one protected Initial packet. Keys come from odcid, the client's
 * original Destination Connection ID; from_server selects the server keys.
 * `frames` (borrowed) is the plaintext; PADDING frames are appended so the
 * packet is at least pad_to bytes (0: no padding). Returns the packet
 * length, or 0 if cap is too small or the crypto library fails. */
size_t quic_initial(uint8_t *out, size_t cap, bool from_server, const uint8_t odcid[QUIC_CID_LEN],
                    const uint8_t dcid[QUIC_CID_LEN], const uint8_t scid[QUIC_CID_LEN],
                    uint32_t pn, const uint8_t *frames, size_t frames_len, size_t pad_to);

/* Writes a Handshake long-header packet of exactly `size` bytes whose
 * protected part is taken from `filler` (borrowed, >= size bytes). Returns
 * size, or 0 if it does not fit or is too small to be a packet. */
size_t quic_handshake_opaque(uint8_t *out, size_t cap, const uint8_t dcid[QUIC_CID_LEN],
                             const uint8_t scid[QUIC_CID_LEN], size_t size,
                             const uint8_t *filler);

/* Writes a 1-RTT short-header packet of exactly `size` bytes (>= 26). */
size_t quic_short_opaque(uint8_t *out, size_t cap, const uint8_t dcid[QUIC_CID_LEN], size_t size,
                         const uint8_t *filler);

/* Writes a CRYPTO frame (offset 0) carrying `data`; returns its length or 0. */
size_t quic_crypto_frame(uint8_t *out, size_t cap, const uint8_t *data, size_t len);

/* Writes an ACK frame acknowledging packet number `largest` alone. */
size_t quic_ack_frame(uint8_t *out, size_t cap, uint32_t largest);

/* Writes a client's transport parameters (RFC 9000 §18.2) with the given
 * initial_source_connection_id. Returns the length, or 0. */
size_t quic_client_transport_params(uint8_t *out, size_t cap, const uint8_t scid[QUIC_CID_LEN]);

#endif
