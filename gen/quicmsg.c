/* quicmsg.c — QUIC v1 long/short headers (RFC 9000 §17.2-17.3) and Initial
 * packet protection (RFC 9001 §5.2-5.4).
 *
 *   long header:  1|1|type(2)|reserved(2)|pn_len-1(2)  version(32)
 *                 dcid_len(8) dcid  scid_len(8) scid
 *                 [Initial: token_len(varint) token]  length(varint)  pn  payload
 *   short header: 0|1|spin|reserved(2)|key_phase|pn_len-1(2)  dcid  pn  payload
 *
 * Initial secrets: HKDF-Extract(initial_salt, odcid), then HKDF-Expand-Label
 * "client in"/"server in", then "quic key" (16), "quic iv" (12), "quic hp" (16).
 * The payload is sealed with AES-128-GCM (nonce = iv XOR packet number, AAD =
 * the unprotected header), then a 16-byte sample of ciphertext 4 bytes past
 * the packet number start is encrypted with AES-ECB under the hp key to mask
 * the low header bits and the packet number. */
#include "quicmsg.h"

#include <openssl/evp.h>
#include <string.h>

#define PN_LEN 2 /* packet-number bytes on the wire */

static const uint8_t initial_salt_v1[20] = {0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34,
                                            0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8,
                                            0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a};

/* Writes v as a QUIC variable-length integer (RFC 9000 §16); returns the
 * number of bytes (1, 2 or 4; v < 2^30). */
static size_t put_varint(uint8_t *p, uint32_t v)
{
    if (v < 64) {
        p[0] = (uint8_t)v;
        return 1;
    }
    if (v < 16384) {
        p[0] = (uint8_t)(0x40 | (v >> 8));
        p[1] = (uint8_t)v;
        return 2;
    }
    p[0] = (uint8_t)(0x80 | (v >> 24));
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return 4;
}

static bool hmac_sha256(const uint8_t *key, size_t keylen, const uint8_t *data, size_t len,
                        uint8_t out[32])
{
    size_t outlen = 0;
    return EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, keylen, data, len, out, 32,
                     &outlen) != NULL &&
           outlen == 32;
}

/* HKDF-Expand-Label (RFC 8446 §7.1) with an empty context, for outputs of at
 * most one SHA-256 block. */
static bool expand_label(const uint8_t secret[32], const char *label, uint8_t *out, size_t len)
{
    uint8_t info[64];
    size_t ll = strlen(label);
    size_t n = 0;
    info[n++] = (uint8_t)(len >> 8);
    info[n++] = (uint8_t)len;
    info[n++] = (uint8_t)(6 + ll);
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, ll);
    n += ll;
    info[n++] = 0;    /* empty context */
    info[n++] = 0x01; /* HKDF-Expand block counter T(1) */
    uint8_t t[32];
    if (!hmac_sha256(secret, 32, info, n, t))
        return false;
    memcpy(out, t, len);
    return true;
}

struct initial_keys {
    uint8_t key[16], iv[12], hp[16];
};

static bool derive_keys(const uint8_t odcid[QUIC_CID_LEN], bool server, struct initial_keys *k)
{
    uint8_t initial[32], secret[32];
    return hmac_sha256(initial_salt_v1, sizeof initial_salt_v1, odcid, QUIC_CID_LEN, initial) &&
           expand_label(initial, server ? "server in" : "client in", secret, 32) &&
           expand_label(secret, "quic key", k->key, 16) &&
           expand_label(secret, "quic iv", k->iv, 12) && expand_label(secret, "quic hp", k->hp, 16);
}

/* Seals pt into ct (+16-byte tag after it) under AES-128-GCM. */
static bool seal(const struct initial_keys *k, uint32_t pn, const uint8_t *aad, size_t aadlen,
                 const uint8_t *pt, size_t len, uint8_t *ct)
{
    uint8_t nonce[12];
    memcpy(nonce, k->iv, 12);
    nonce[8] ^= (uint8_t)(pn >> 24);
    nonce[9] ^= (uint8_t)(pn >> 16);
    nonce[10] ^= (uint8_t)(pn >> 8);
    nonce[11] ^= (uint8_t)pn;
    bool ok = false;
    int outl;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c)
        return false;
    if (EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1 ||
        EVP_EncryptInit_ex(c, NULL, NULL, k->key, nonce) != 1 ||
        EVP_EncryptUpdate(c, NULL, &outl, aad, (int)aadlen) != 1 ||
        EVP_EncryptUpdate(c, ct, &outl, pt, (int)len) != 1 ||
        EVP_EncryptFinal_ex(c, ct + outl, &outl) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, ct + len) != 1)
        goto fail;
    ok = true;
fail:
    EVP_CIPHER_CTX_free(c);
    return ok;
}

static bool hp_mask(const struct initial_keys *k, const uint8_t sample[16], uint8_t mask[16])
{
    bool ok = false;
    int outl;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c)
        return false;
    if (EVP_EncryptInit_ex(c, EVP_aes_128_ecb(), NULL, k->hp, NULL) != 1 ||
        EVP_CIPHER_CTX_set_padding(c, 0) != 1 ||
        EVP_EncryptUpdate(c, mask, &outl, sample, 16) != 1 || outl != 16)
        goto fail;
    ok = true;
fail:
    EVP_CIPHER_CTX_free(c);
    return ok;
}

/* Writes the long header up to (not including) the Length field. */
static size_t long_header(uint8_t *p, uint8_t type, const uint8_t *dcid, const uint8_t *scid)
{
    size_t n = 0;
    p[n++] = (uint8_t)(0xc0 | (type << 4) | (PN_LEN - 1));
    p[n++] = 0;
    p[n++] = 0;
    p[n++] = 0;
    p[n++] = 1; /* version 1 */
    p[n++] = QUIC_CID_LEN;
    memcpy(p + n, dcid, QUIC_CID_LEN);
    n += QUIC_CID_LEN;
    p[n++] = QUIC_CID_LEN;
    memcpy(p + n, scid, QUIC_CID_LEN);
    n += QUIC_CID_LEN;
    return n;
}

size_t quic_initial(uint8_t *out, size_t cap, bool from_server, const uint8_t odcid[QUIC_CID_LEN],
                    const uint8_t dcid[QUIC_CID_LEN], const uint8_t scid[QUIC_CID_LEN],
                    uint32_t pn, const uint8_t *frames, size_t frames_len, size_t pad_to)
{
    uint8_t pt[1500];
    struct initial_keys k;
    size_t hdr = long_header(out, 0, dcid, scid);
    out[hdr++] = 0; /* no token */
    /* Length field: always the 2-byte form, so the size is known up front. */
    size_t fixed = hdr + 2 + PN_LEN + 16;
    size_t pt_len = frames_len;
    if (pad_to > fixed + pt_len)
        pt_len = pad_to - fixed;
    if (pt_len < 4) /* the header-protection sample needs 4 + 16 bytes after the PN start */
        pt_len = 4;
    if (pt_len > sizeof pt || fixed + pt_len > cap || PN_LEN + pt_len + 16 >= 16384)
        return 0;
    memcpy(pt, frames, frames_len);
    memset(pt + frames_len, 0, pt_len - frames_len); /* PADDING frames are zero bytes */

    size_t length = PN_LEN + pt_len + 16;
    out[hdr++] = (uint8_t)(0x40 | (length >> 8));
    out[hdr++] = (uint8_t)length;
    size_t pn_off = hdr;
    out[hdr++] = (uint8_t)(pn >> 8);
    out[hdr++] = (uint8_t)pn;

    if (!derive_keys(odcid, from_server, &k) || !seal(&k, pn, out, hdr, pt, pt_len, out + hdr))
        return 0;
    uint8_t mask[16];
    if (!hp_mask(&k, out + pn_off + 4, mask))
        return 0;
    out[0] ^= mask[0] & 0x0f;
    for (int i = 0; i < PN_LEN; i++)
        out[pn_off + (size_t)i] ^= mask[1 + i];
    return hdr + pt_len + 16;
}

size_t quic_handshake_opaque(uint8_t *out, size_t cap, const uint8_t dcid[QUIC_CID_LEN],
                             const uint8_t scid[QUIC_CID_LEN], size_t size,
                             const uint8_t *filler)
{
    size_t hdr = long_header(out, 2, dcid, scid);
    if (size > cap || size < hdr + 2 + PN_LEN + 20 || size - hdr - 2 >= 16384)
        return 0;
    size_t length = size - hdr - 2;
    out[hdr++] = (uint8_t)(0x40 | (length >> 8));
    out[hdr++] = (uint8_t)length;
    memcpy(out + hdr, filler, size - hdr);
    return size;
}

size_t quic_short_opaque(uint8_t *out, size_t cap, const uint8_t dcid[QUIC_CID_LEN], size_t size,
                         const uint8_t *filler)
{
    if (size > cap || size < 1 + QUIC_CID_LEN + PN_LEN + 20)
        return 0;
    /* Fixed bit set; the protected low bits come from the filler. */
    out[0] = (uint8_t)(0x40 | (filler[0] & 0x3f));
    memcpy(out + 1, dcid, QUIC_CID_LEN);
    memcpy(out + 1 + QUIC_CID_LEN, filler + 1, size - 1 - QUIC_CID_LEN);
    return size;
}

size_t quic_crypto_frame(uint8_t *out, size_t cap, const uint8_t *data, size_t len)
{
    if (len >= 16384 || cap < 4 + len)
        return 0;
    size_t n = 0;
    out[n++] = 0x06;
    out[n++] = 0; /* offset 0 */
    n += put_varint(out + n, (uint32_t)len);
    memcpy(out + n, data, len);
    return n + len;
}

size_t quic_ack_frame(uint8_t *out, size_t cap, uint32_t largest)
{
    if (cap < 12)
        return 0;
    size_t n = 0;
    out[n++] = 0x02;
    n += put_varint(out + n, largest);
    n += put_varint(out + n, 0); /* ack delay */
    n += put_varint(out + n, 0); /* no further ranges */
    n += put_varint(out + n, 0); /* first range: just `largest` */
    return n;
}

static size_t tp_int(uint8_t *p, uint32_t id, uint32_t v)
{
    uint8_t val[4];
    size_t vl = put_varint(val, v);
    size_t n = put_varint(p, id);
    n += put_varint(p + n, (uint32_t)vl);
    memcpy(p + n, val, vl);
    return n + vl;
}

size_t quic_client_transport_params(uint8_t *out, size_t cap, const uint8_t scid[QUIC_CID_LEN])
{
    if (cap < 96)
        return 0;
    size_t n = 0;
    n += tp_int(out + n, 0x01, 30000);    /* max_idle_timeout, ms */
    n += tp_int(out + n, 0x03, 1472);     /* max_udp_payload_size */
    n += tp_int(out + n, 0x04, 15728640); /* initial_max_data */
    n += tp_int(out + n, 0x05, 6291456);  /* initial_max_stream_data_bidi_local */
    n += tp_int(out + n, 0x06, 6291456);  /* initial_max_stream_data_bidi_remote */
    n += tp_int(out + n, 0x07, 6291456);  /* initial_max_stream_data_uni */
    n += tp_int(out + n, 0x08, 100);      /* initial_max_streams_bidi */
    n += tp_int(out + n, 0x09, 100);      /* initial_max_streams_uni */
    out[n++] = 0x0f;                      /* initial_source_connection_id */
    out[n++] = QUIC_CID_LEN;
    memcpy(out + n, scid, QUIC_CID_LEN);
    return n + QUIC_CID_LEN;
}
