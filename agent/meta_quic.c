/* meta_quic.c — the ClientHello inside a client's QUIC Initial packet.
 *
 * QUIC encrypts even its first packets, but with keys anyone can derive
 * from the packet's Destination Connection ID and a per-version salt
 * (RFC 9001 §5.2), precisely so that the handshake is only obfuscated. So
 * the agent can read the ClientHello — SNI, ALPN, JA4 with 'q' — as it does
 * for TLS over TCP.
 *
 * Handled: QUIC v1 (RFC 9000/9001) and v2 (RFC 9369) client Initials, the
 * first long-header packet of a datagram (coalesced packets after it are
 * ignored), CRYPTO data gathered from offset 0 in any fragment order.
 * Non-goals: server Initials (their keys need "server in"; decryption simply
 * fails), Handshake/0-RTT/1-RTT packets, Retry, draft versions, and a
 * ClientHello continued in a later Initial (reported as META_MORE, not
 * reassembled across packets).
 *
 * Every length is bounded: by the datagram, by META_QUIC_PAYLOAD_MAX for
 * the decrypted payload and META_QUIC_CRYPTO_MAX for the gathered CRYPTO
 * stream, both stack buffers. libcrypto allocates its cipher context. */
#include "meta.h"

#include "cursor.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#define QUIC_V1 0x00000001u
#define QUIC_V2 0x6b3343cfu
#define QUIC_CID_MAX 20      /* RFC 9000 §17.2: v1 connection IDs are <= 20 bytes */
#define QUIC_TAG_LEN 16      /* AEAD_AES_128_GCM tag */
#define QUIC_SAMPLE_LEN 16   /* RFC 9001 §5.4.2: header protection sample */
#define QUIC_PN_MAX_LEN 4

/* RFC 9001 §5.2 and RFC 9369 §3.3.1: the Initial salts. */
static const uint8_t salt_v1[20] = {0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
                                    0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a};
static const uint8_t salt_v2[20] = {0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93,
                                    0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9};

struct quic_version {
    uint32_t version;
    const uint8_t *salt;
    uint8_t initial_type;   /* long packet type bits of an Initial */
    const char *key_label, *iv_label, *hp_label;
};

/* RFC 9369 §3.2 changes the Initial type from 0b00 to 0b01, §3.3.2 the
 * labels from "quic ..." to "quicv2 ...". */
static const struct quic_version versions[] = {
    {QUIC_V1, salt_v1, 0, "quic key", "quic iv", "quic hp"},
    {QUIC_V2, salt_v2, 1, "quicv2 key", "quicv2 iv", "quicv2 hp"},
};

static const struct quic_version *find_version(uint32_t v)
{
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
        if (versions[i].version == v)
            return &versions[i];
    return NULL;
}

/* RFC 9000 §16: a variable-length integer, 1/2/4/8 bytes by its top 2 bits. */
static bool cur_varint(struct cursor *c, uint64_t *v)
{
    uint8_t b;
    size_t n;

    if (!cur_u8(c, &b))
        return false;
    n = (size_t)1 << (b >> 6);
    *v = b & 0x3f;
    for (size_t i = 1; i < n; i++) {
        if (!cur_u8(c, &b))
            return false;
        *v = *v << 8 | b;
    }
    return true;
}

bool meta_is_quic_long_header(const uint8_t *data, size_t len)
{
    struct cursor c = cur_make(data, len);
    uint8_t b0, dcid_len, scid_len;
    uint32_t version;

    if (data == NULL)
        return false;
    /* RFC 9000 §17.2: Header Form 1 and Fixed Bit 1, then the version and
     * the two connection IDs, which must be present and within limits. */
    if (!cur_u8(&c, &b0) || (b0 & 0xc0) != 0xc0 || !cur_be32(&c, &version) ||
        find_version(version) == NULL)
        return false;
    if (!cur_u8(&c, &dcid_len) || dcid_len > QUIC_CID_MAX || !cur_skip(&c, dcid_len))
        return false;
    if (!cur_u8(&c, &scid_len) || scid_len > QUIC_CID_MAX || !cur_skip(&c, scid_len))
        return false;
    return true;
}

/* RFC 5869 §2.2 HKDF-Extract and §2.3 HKDF-Expand, SHA-256. Every output
 * here is at most 32 bytes, one HMAC block, so Expand is a single HMAC of
 * info || 0x01; two one-shot HMACs replace an EVP_PKEY/EVP_KDF context
 * that would be set up and torn down for each of the five derivations. */
static bool hkdf_extract(const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
                         size_t ikm_len, uint8_t prk[32])
{
    unsigned int n = 0;
    return HMAC(EVP_sha256(), salt, (int)salt_len, ikm, ikm_len, prk, &n) != NULL && n == 32;
}

/* RFC 8446 §7.1 HKDF-Expand-Label(secret, label, "", out_len), with
 * HkdfLabel = u16 length | u8-length "tls13 " + label | u8-length context. */
static bool hkdf_expand_label(const uint8_t secret[32], const char *label, uint8_t *out,
                              size_t out_len)
{
    uint8_t info[2 + 1 + 6 + 32 + 1 + 1];
    uint8_t block[32];
    size_t label_len = strlen(label), n = 0;
    unsigned int md_len = 0;

    if (out_len > sizeof(block) || label_len > 32)
        return false;
    info[n++] = (uint8_t)(out_len >> 8);
    info[n++] = (uint8_t)out_len;
    info[n++] = (uint8_t)(6 + label_len);
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, label_len);
    n += label_len;
    info[n++] = 0;    /* empty context */
    info[n++] = 0x01; /* HKDF-Expand counter of the first block */
    if (HMAC(EVP_sha256(), secret, 32, info, n, block, &md_len) == NULL || md_len != 32)
        return false;
    memcpy(out, block, out_len);
    return true;
}

struct initial_keys {
    uint8_t key[16];
    uint8_t iv[12];
    uint8_t hp[16];
};

/* RFC 9001 §5.2: initial_secret = HKDF-Extract(salt, DCID), then the client
 * secret and from it the packet key, IV and header-protection key. */
static bool derive_client_keys(const struct quic_version *v, const uint8_t *dcid,
                               size_t dcid_len, struct initial_keys *k)
{
    uint8_t initial[32], client[32];

    return hkdf_extract(v->salt, 20, dcid, dcid_len, initial) &&
           hkdf_expand_label(initial, "client in", client, sizeof(client)) &&
           hkdf_expand_label(client, v->key_label, k->key, sizeof(k->key)) &&
           hkdf_expand_label(client, v->iv_label, k->iv, sizeof(k->iv)) &&
           hkdf_expand_label(client, v->hp_label, k->hp, sizeof(k->hp));
}

/* RFC 9001 §5.4.3: the AES-based header protection mask, AES-ECB(hp, sample). */
static bool hp_mask(EVP_CIPHER_CTX *ctx, const uint8_t hp[16], const uint8_t sample[16],
                    uint8_t mask[16])
{
    int n = 0;

    return EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), NULL, hp, NULL) == 1 &&
           EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 &&
           EVP_EncryptUpdate(ctx, mask, &n, sample, QUIC_SAMPLE_LEN) == 1 && n == QUIC_SAMPLE_LEN;
}

/* A piece of the associated data (GCM takes it in several updates). */
struct aad_part {
    const uint8_t *p;
    size_t n;
};

/* RFC 9001 §5.3: AEAD_AES_128_GCM with nonce = iv XOR packet number and the
 * unprotected header as associated data. Returns false unless the tag
 * verifies, which is what tells a client Initial from anything else. */
static bool aead_open(EVP_CIPHER_CTX *ctx, const struct initial_keys *k, uint64_t pn,
                      const struct aad_part aad[3], const uint8_t *ct, size_t ct_len,
                      const uint8_t in_tag[QUIC_TAG_LEN], uint8_t *plain)
{
    uint8_t nonce[12], tag[QUIC_TAG_LEN];
    int n = 0, fin = 0;

    memcpy(tag, in_tag, sizeof(tag)); /* the ctrl call takes a non-const pointer */

    memcpy(nonce, k->iv, sizeof(nonce));
    for (size_t i = 0; i < 8; i++)
        nonce[11 - i] ^= (uint8_t)(pn >> (8 * i));
    if (EVP_DecryptInit_ex(ctx, EVP_aes_128_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, (int)sizeof(nonce), NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, k->key, nonce) != 1)
        return false;
    for (size_t i = 0; i < 3; i++)
        if (aad[i].n > 0 && EVP_DecryptUpdate(ctx, NULL, &n, aad[i].p, (int)aad[i].n) != 1)
            return false;
    if (EVP_DecryptUpdate(ctx, plain, &n, ct, (int)ct_len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, QUIC_TAG_LEN, tag) != 1)
        return false;
    return EVP_DecryptFinal_ex(ctx, plain + n, &fin) == 1 && (size_t)(n + fin) == ct_len;
}

/* The CRYPTO stream from offset 0, gathered out of order: data[] holds the
 * bytes, have[] one bit per byte that arrived. */
struct crypto_buf {
    uint8_t data[META_QUIC_CRYPTO_MAX];
    uint8_t have[META_QUIC_CRYPTO_MAX / 8];
};

static void crypto_put(struct crypto_buf *cb, uint64_t off, const uint8_t *p, size_t n)
{
    /* Only the first META_QUIC_CRYPTO_MAX bytes of the stream are kept;
     * a ClientHello longer than that is reported as META_MORE. */
    if (off >= META_QUIC_CRYPTO_MAX)
        return;
    if (n > META_QUIC_CRYPTO_MAX - off)
        n = META_QUIC_CRYPTO_MAX - (size_t)off;
    memcpy(cb->data + off, p, n);
    for (size_t i = (size_t)off; i < (size_t)off + n; i++)
        cb->have[i / 8] |= (uint8_t)(1u << (i % 8));
}

/* Bytes present from offset 0 without a gap. */
static size_t crypto_contiguous(const struct crypto_buf *cb)
{
    size_t i = 0;

    while (i < META_QUIC_CRYPTO_MAX && cb->have[i / 8] == 0xff)
        i += 8;
    while (i < META_QUIC_CRYPTO_MAX && (cb->have[i / 8] >> (i % 8) & 1))
        i++;
    return i;
}

/* RFC 9000 §19 frames allowed in an Initial (§12.4, Table 3): PADDING 0x00,
 * PING 0x01, ACK 0x02/0x03, CRYPTO 0x06, CONNECTION_CLOSE 0x1c. Anything
 * else is a protocol violation, and the packet is not used. */
enum meta_result meta__quic_frames(const uint8_t *payload, size_t len, struct tls_hello_info *out)
{
    struct cursor c = cur_make(payload, len);
    struct crypto_buf cb;
    size_t contiguous, need = 0;
    enum meta_result r;

    memset(out, 0, sizeof(*out));
    if (payload == NULL)
        return META_NOT;
    memset(cb.have, 0, sizeof(cb.have));
    while (cur_left(&c) > 0) {
        uint64_t type, a, b, count, off, flen;

        if (!cur_varint(&c, &type))
            return META_NOT;
        switch (type) {
        case 0x00: /* PADDING */
        case 0x01: /* PING */
            break;
        case 0x02: /* ACK: largest, delay, range count, first range, ranges */
        case 0x03: /* ACK with ECN counts */
            if (!cur_varint(&c, &a) || !cur_varint(&c, &b) || !cur_varint(&c, &count) ||
                !cur_varint(&c, &a))
                return META_NOT;
            /* Each range is two varints, at least 2 bytes: a count above
             * what is left cannot be honest, and would spin for nothing. */
            if (count > cur_left(&c) / 2)
                return META_NOT;
            for (uint64_t i = 0; i < count; i++)
                if (!cur_varint(&c, &a) || !cur_varint(&c, &b))
                    return META_NOT;
            if (type == 0x03 &&
                (!cur_varint(&c, &a) || !cur_varint(&c, &a) || !cur_varint(&c, &a)))
                return META_NOT;
            break;
        case 0x06: { /* CRYPTO: offset, length, data */
            struct cursor data;
            if (!cur_varint(&c, &off) || !cur_varint(&c, &flen) || flen > cur_left(&c) ||
                !cur_sub(&c, (size_t)flen, &data))
                return META_NOT;
            crypto_put(&cb, off, data.p, cur_left(&data));
            break;
        }
        case 0x1c: /* CONNECTION_CLOSE: error code, frame type, reason */
            if (!cur_varint(&c, &a) || !cur_varint(&c, &b) || !cur_varint(&c, &flen) ||
                flen > cur_left(&c) || !cur_skip(&c, (size_t)flen))
                return META_NOT;
            break;
        default:
            return META_NOT;
        }
    }
    contiguous = crypto_contiguous(&cb);
    if (contiguous == 0)
        return META_NOT; /* no ClientHello start in this packet */
    /* META_MORE: the hello goes on in a later Initial, or beyond the
     * META_QUIC_CRYPTO_MAX bytes kept; either way it is not followed. */
    r = meta_tls_client_hello(cb.data, contiguous, 'q', out, &need);
    return r;
}

/* RFC 9000 §17.2.2 Initial packet:
 *
 *   1 | 1 | type (2) | reserved (2) | pn length (2)   (low 4 bits protected)
 *   version (32) | DCID len (8) | DCID | SCID len (8) | SCID
 *   token length (i) | token | length (i) | packet number (8..32, protected)
 *   payload (AES-128-GCM, 16-byte tag at the end)
 *
 * Header protection (RFC 9001 §5.4) is removed from copies of the first
 * byte and the packet number; the packet itself is read-only. */
enum meta_result meta_quic_initial(const uint8_t *data, size_t len, struct tls_hello_info *out)
{
    struct cursor c = cur_make(data, len);
    const struct quic_version *v;
    struct initial_keys k;
    uint8_t b0 = 0, dcid_len = 0, scid_len = 0, mask[QUIC_SAMPLE_LEN], sample[QUIC_SAMPLE_LEN];
    uint8_t pn_bytes[QUIC_PN_MAX_LEN];
    uint8_t plain[META_QUIC_PAYLOAD_MAX];
    const uint8_t *dcid;
    uint32_t version = 0;
    uint64_t token_len, length, pn = 0;
    size_t pn_off, pn_len, ct_len = 0;
    struct cursor pkt, s, ct;
    struct aad_part aad[3];
    EVP_CIPHER_CTX *ctx;
    bool opened;

    memset(out, 0, sizeof(*out));
    if (data == NULL || !meta_is_quic_long_header(data, len))
        return META_NOT;
    /* meta_is_quic_long_header has checked these; they are checked again
     * rather than trusted across functions. */
    if (!cur_u8(&c, &b0) || !cur_be32(&c, &version) || (v = find_version(version)) == NULL ||
        ((b0 >> 4) & 0x03) != v->initial_type)
        return META_NOT;
    if (!cur_u8(&c, &dcid_len) || dcid_len > QUIC_CID_MAX)
        return META_NOT;
    dcid = c.p;
    if (!cur_skip(&c, dcid_len) || !cur_u8(&c, &scid_len) || !cur_skip(&c, scid_len))
        return META_NOT;
    if (!cur_varint(&c, &token_len) || token_len > cur_left(&c) ||
        !cur_skip(&c, (size_t)token_len))
        return META_NOT;
    /* Length covers the packet number and the payload. A packet cut by the
     * capture cannot be authenticated, so it is not a usable Initial; one
     * too small to hold the header-protection sample is malformed. */
    if (!cur_varint(&c, &length) || length > cur_left(&c) ||
        length < QUIC_PN_MAX_LEN + QUIC_SAMPLE_LEN)
        return META_NOT;
    pn_off = (size_t)(c.p - data);
    cur_sub(&c, (size_t)length, &pkt); /* what follows in c: coalesced packets, ignored */

    /* §5.4.2: the sample starts 4 bytes after the packet number's start. */
    s = pkt;
    if (!cur_skip(&s, QUIC_PN_MAX_LEN) || !cur_bytes(&s, sample, sizeof(sample)))
        return META_NOT; /* not reached: length >= 20 was checked */

    if (!derive_client_keys(v, dcid, dcid_len, &k))
        return META_NOT;
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        return META_NOT;
    opened = false;
    if (hp_mask(ctx, k.hp, sample, mask)) {
        b0 ^= mask[0] & 0x0f; /* long header: the low 4 bits are protected */
        pn_len = (size_t)(b0 & 0x03) + 1;
        s = pkt;
        if (!cur_bytes(&s, pn_bytes, pn_len)) /* pkt holds >= 20 bytes */
            pn_len = 0;
        for (size_t i = 0; i < pn_len; i++) {
            pn_bytes[i] ^= mask[1 + i];
            pn = pn << 8 | pn_bytes[i];
        }
        /* With no packet acknowledged yet the expected number is 0, and
         * RFC 9000 §A.3 then decodes a truncated number to itself. */
        ct_len = cur_left(&s) - QUIC_TAG_LEN; /* >= 20 - 4 - 16 */
        if (pn_len > 0 && ct_len > 0 && ct_len <= sizeof(plain)) {
            cur_sub(&s, ct_len, &ct);
            /* Associated data (§5.3): the header with the first byte and
             * the packet number unprotected; given in three pieces so the
             * header, token and all, is never copied. */
            aad[0] = (struct aad_part){&b0, 1};
            aad[1] = (struct aad_part){data + 1, pn_off - 1};
            aad[2] = (struct aad_part){pn_bytes, pn_len};
            opened = aead_open(ctx, &k, pn, aad, ct.p, ct_len, s.p, plain);
        }
    }
    EVP_CIPHER_CTX_free(ctx);
    if (!opened)
        return META_NOT;
    return meta__quic_frames(plain, ct_len, out);
}
