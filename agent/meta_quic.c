/* meta_quic.c — the ClientHello inside a client's QUIC Initial packets.
 *
 * QUIC encrypts even its first packets, but with keys anyone can derive
 * from the packet's Destination Connection ID and a per-version salt
 * (RFC 9001 §5.2), precisely so that the handshake is only obfuscated. So
 * the agent can read the ClientHello — SNI, ALPN, JA4 with 'q' — as it does
 * for TLS over TCP.
 *
 * Handled: QUIC v1 (RFC 9000/9001) and v2 (RFC 9369) client Initials; the
 * first packet of a datagram and the Initials coalesced after it; CRYPTO
 * data gathered from offset 0 in any fragment order, within one datagram
 * (meta_quic_initial) or across the datagrams of a flow through a
 * caller-held struct quic_hello_reasm (meta_quic_initial_add), for hellos
 * too large for one Initial.
 * Non-goals: server Initials (their keys need "server in"; decryption simply
 * fails), Handshake/0-RTT/1-RTT packets, a datagram that starts with one of
 * those, Retry (the Initials after it use keys from the new DCID and are
 * refused by a state keyed before it; by then the first flight, with the
 * whole hello, has normally been seen), a version switch during the
 * handshake (RFC 9368), draft versions.
 *
 * Every length is bounded: by the datagram, by META_QUIC_PAYLOAD_MAX for a
 * decrypted payload (a stack buffer) and META_QUIC_CRYPTO_MAX for the
 * gathered CRYPTO stream (the caller's state, or the stack for the one-shot
 * meta_quic_initial). libcrypto allocates its cipher context, once per
 * datagram. */
#include "meta.h"

#include "cursor.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <pthread.h>
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

/* OpenSSL 3 looks an algorithm up by name in every one-shot call (HMAC(),
 * or EVP_aes_128_gcm() passed to an init): on inputs this short the
 * lookups cost more than the cryptography, so each algorithm is fetched
 * once, and an HMAC-SHA-256 context is set up once and copied per use. */
static EVP_CIPHER *aes_gcm, *aes_ecb;
static EVP_MAC_CTX *hmac_sha256_proto;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch_algorithms(void)
{
    aes_gcm = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
    aes_ecb = EVP_CIPHER_fetch(NULL, "AES-128-ECB", NULL);
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (hmac) {
        char digest[] = "SHA256";
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
            OSSL_PARAM_construct_end(),
        };
        hmac_sha256_proto = EVP_MAC_CTX_new(hmac);
        if (hmac_sha256_proto && EVP_MAC_CTX_set_params(hmac_sha256_proto, params) != 1) {
            EVP_MAC_CTX_free(hmac_sha256_proto);
            hmac_sha256_proto = NULL;
        }
        EVP_MAC_free(hmac); /* the context keeps its own reference */
    }
}

/* The contexts one datagram is opened with. */
struct quic_crypto {
    EVP_CIPHER_CTX *cipher;
    EVP_MAC_CTX *hmac; /* HMAC-SHA-256 */
};

static bool quic_crypto_open(struct quic_crypto *qc)
{
    pthread_once(&fetch_once, fetch_algorithms);
    if (!aes_gcm || !aes_ecb || !hmac_sha256_proto)
        return false;
    qc->cipher = EVP_CIPHER_CTX_new();
    qc->hmac = EVP_MAC_CTX_dup(hmac_sha256_proto);
    return qc->cipher && qc->hmac;
}

static void quic_crypto_close(struct quic_crypto *qc)
{
    EVP_CIPHER_CTX_free(qc->cipher);
    EVP_MAC_CTX_free(qc->hmac);
}

static bool hmac_sha256(EVP_MAC_CTX *mac, const uint8_t *key, size_t key_len,
                        const uint8_t *data, size_t len, uint8_t out[32])
{
    size_t n = 0;
    return EVP_MAC_init(mac, key, key_len, NULL) == 1 && EVP_MAC_update(mac, data, len) == 1 &&
           EVP_MAC_final(mac, out, &n, 32) == 1 && n == 32;
}

/* RFC 5869 §2.2 HKDF-Extract and §2.3 HKDF-Expand, SHA-256. Every output
 * here is at most 32 bytes, one HMAC block, so Expand is a single HMAC of
 * info || 0x01; plain HMACs replace an EVP_KDF context that would be set
 * up and torn down for each of the five derivations. */
static bool hkdf_extract(EVP_MAC_CTX *mac, const uint8_t *salt, size_t salt_len,
                         const uint8_t *ikm, size_t ikm_len, uint8_t prk[32])
{
    return hmac_sha256(mac, salt, salt_len, ikm, ikm_len, prk);
}

/* RFC 8446 §7.1 HKDF-Expand-Label(secret, label, "", out_len), with
 * HkdfLabel = u16 length | u8-length "tls13 " + label | u8-length context. */
static bool hkdf_expand_label(EVP_MAC_CTX *mac, const uint8_t secret[32], const char *label,
                              uint8_t *out, size_t out_len)
{
    uint8_t info[2 + 1 + 6 + 32 + 1 + 1];
    uint8_t block[32];
    size_t label_len = strlen(label), n = 0;

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
    if (!hmac_sha256(mac, secret, 32, info, n, block))
        return false;
    memcpy(out, block, out_len);
    return true;
}

/* RFC 9001 §5.2: initial_secret = HKDF-Extract(salt, DCID), then the client
 * secret and from it the packet key, IV and header-protection key. */
static bool derive_client_keys(EVP_MAC_CTX *mac, const struct quic_version *v,
                               const uint8_t *dcid, size_t dcid_len, struct quic_initial_keys *k)
{
    uint8_t initial[32], client[32];

    return hkdf_extract(mac, v->salt, 20, dcid, dcid_len, initial) &&
           hkdf_expand_label(mac, initial, "client in", client, sizeof(client)) &&
           hkdf_expand_label(mac, client, v->key_label, k->key, sizeof(k->key)) &&
           hkdf_expand_label(mac, client, v->iv_label, k->iv, sizeof(k->iv)) &&
           hkdf_expand_label(mac, client, v->hp_label, k->hp, sizeof(k->hp));
}

/* RFC 9001 §5.4.3: the AES-based header protection mask, AES-ECB(hp, sample). */
static bool hp_mask(EVP_CIPHER_CTX *ctx, const uint8_t hp[16], const uint8_t sample[16],
                    uint8_t mask[16])
{
    int n = 0;

    return EVP_EncryptInit_ex(ctx, aes_ecb, NULL, hp, NULL) == 1 &&
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
static bool aead_open(EVP_CIPHER_CTX *ctx, const struct quic_initial_keys *k, uint64_t pn,
                      const struct aad_part aad[3], const uint8_t *ct, size_t ct_len,
                      const uint8_t in_tag[QUIC_TAG_LEN], uint8_t *plain)
{
    uint8_t nonce[12], tag[QUIC_TAG_LEN];
    int n = 0, fin = 0;

    memcpy(tag, in_tag, sizeof(tag)); /* the ctrl call takes a non-const pointer */

    memcpy(nonce, k->iv, sizeof(nonce));
    for (size_t i = 0; i < 8; i++)
        nonce[11 - i] ^= (uint8_t)(pn >> (8 * i));
    if (EVP_DecryptInit_ex(ctx, aes_gcm, NULL, NULL, NULL) != 1 ||
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

/* ---- The CRYPTO stream, kept in a struct quic_hello_reasm. ---- */

static bool have_byte(const struct quic_hello_reasm *st, size_t i)
{
    return (st->have[i / 8] >> (i % 8)) & 1;
}

/* Keeps the bytes of one CRYPTO frame (stream offset off, n bytes at p)
 * that fall within the first META_QUIC_CRYPTO_MAX bytes of the stream and
 * are not filled yet: an earlier authenticated fragment wins over a later
 * one that disagrees with it. Then moves `contiguous` on over what is now
 * filled without a gap. */
static void reasm_put(struct quic_hello_reasm *st, uint64_t off, const uint8_t *p, size_t n)
{
    size_t i;

    if (off >= META_QUIC_CRYPTO_MAX)
        return;
    if (n > META_QUIC_CRYPTO_MAX - off)
        n = META_QUIC_CRYPTO_MAX - (size_t)off;
    for (size_t k = 0; k < n; k++) {
        i = (size_t)off + k;
        if (!have_byte(st, i)) {
            st->crypto[i] = p[k];
            st->have[i / 8] |= (uint8_t)(1u << (i % 8));
        }
    }
    i = st->contiguous;
    while (i % 8 != 0 && i < META_QUIC_CRYPTO_MAX && have_byte(st, i))
        i++;
    while (i < META_QUIC_CRYPTO_MAX && i % 8 == 0 && st->have[i / 8] == 0xff)
        i += 8;
    while (i < META_QUIC_CRYPTO_MAX && have_byte(st, i))
        i++;
    st->contiguous = (uint16_t)i;
}

/* Is there a whole ClientHello in the bytes gathered from offset 0? Sets
 * st->phase when the answer is final (DONE, or FAILED when the stream can
 * never hold a readable one). *out is zeroed unless META_OK. */
static enum meta_result reasm_hello(struct quic_hello_reasm *st, struct tls_hello_info *out)
{
    size_t need = 0;
    enum meta_result r;

    if (st->contiguous == 0) {
        memset(out, 0, sizeof(*out));
        return META_MORE; /* no start yet: it may be in a later Initial */
    }
    r = meta_tls_client_hello(st->crypto, st->contiguous, 'q', out, &need);
    if (r == META_MORE && need > META_QUIC_CRYPTO_MAX)
        r = META_NOT; /* it ends beyond what is kept: it will never be whole */
    if (r == META_OK)
        st->phase = QUIC_REASM_DONE;
    else if (r == META_NOT)
        st->phase = QUIC_REASM_FAILED;
    if (r != META_OK)
        memset(out, 0, sizeof(*out));
    return r;
}

/* RFC 9000 §19 frames allowed in an Initial (§12.4, Table 3): PADDING 0x00,
 * PING 0x01, ACK 0x02/0x03, CRYPTO 0x06, CONNECTION_CLOSE 0x1c. Anything
 * else is a protocol violation, and the packet is not used. Walks the frames
 * of one decrypted payload; with st NULL only checks them, otherwise keeps
 * the CRYPTO data in st (call it so only after a check passed, so that a
 * packet is used whole or not at all). */
static bool walk_frames(const uint8_t *payload, size_t len, struct quic_hello_reasm *st)
{
    struct cursor c = cur_make(payload, len);

    while (cur_left(&c) > 0) {
        uint64_t type, a, b, count, off, flen;

        if (!cur_varint(&c, &type))
            return false;
        switch (type) {
        case 0x00: /* PADDING: a client pads its Initial to 1,200 bytes, so
                    * the run of zero bytes is skipped whole */
            while (c.p < c.end && *c.p == 0)
                c.p++;
            break;
        case 0x01: /* PING */
            break;
        case 0x02: /* ACK: largest, delay, range count, first range, ranges */
        case 0x03: /* ACK with ECN counts */
            if (!cur_varint(&c, &a) || !cur_varint(&c, &b) || !cur_varint(&c, &count) ||
                !cur_varint(&c, &a))
                return false;
            /* Each range is two varints, at least 2 bytes: a count above
             * what is left cannot be honest, and would spin for nothing. */
            if (count > cur_left(&c) / 2)
                return false;
            for (uint64_t i = 0; i < count; i++)
                if (!cur_varint(&c, &a) || !cur_varint(&c, &b))
                    return false;
            if (type == 0x03 &&
                (!cur_varint(&c, &a) || !cur_varint(&c, &a) || !cur_varint(&c, &a)))
                return false;
            break;
        case 0x06: { /* CRYPTO: offset, length, data */
            struct cursor data;
            if (!cur_varint(&c, &off) || !cur_varint(&c, &flen) || flen > cur_left(&c) ||
                !cur_sub(&c, (size_t)flen, &data))
                return false;
            if (st != NULL)
                reasm_put(st, off, data.p, cur_left(&data));
            break;
        }
        case 0x1c: /* CONNECTION_CLOSE: error code, frame type, reason */
            if (!cur_varint(&c, &a) || !cur_varint(&c, &b) || !cur_varint(&c, &flen) ||
                flen > cur_left(&c) || !cur_skip(&c, (size_t)flen))
                return false;
            break;
        default:
            return false;
        }
    }
    return true;
}

void meta_quic_reasm_init(struct quic_hello_reasm *st)
{
    /* crypto[] is left as it is: only bytes flagged in have[] are read. */
    memset(st->have, 0, sizeof(st->have));
    memset(&st->keys, 0, sizeof(st->keys));
    st->version = 0;
    st->contiguous = 0;
    st->dcid_len = 0;
    memset(st->dcid, 0, sizeof(st->dcid));
    st->phase = QUIC_REASM_COLLECTING;
}

/* A finished state answers without looking at the packet. */
static bool reasm_finished(struct quic_hello_reasm *st, struct tls_hello_info *out,
                           enum meta_result *r)
{
    if (st->phase == QUIC_REASM_DONE) {
        /* Same bytes, same answer: reasm_hello cannot change its mind. */
        *r = reasm_hello(st, out);
        return true;
    }
    if (st->phase != QUIC_REASM_COLLECTING) {
        memset(out, 0, sizeof(*out));
        *r = META_NOT;
        return true;
    }
    return false;
}

enum meta_result meta__quic_reasm_payload(struct quic_hello_reasm *st, const uint8_t *payload,
                                          size_t len, struct tls_hello_info *out)
{
    enum meta_result r;

    if (reasm_finished(st, out, &r))
        return r;
    memset(out, 0, sizeof(*out));
    if (payload == NULL || !walk_frames(payload, len, NULL))
        return META_NOT;
    walk_frames(payload, len, st);
    return reasm_hello(st, out);
}

enum meta_result meta__quic_frames(const uint8_t *payload, size_t len, struct tls_hello_info *out)
{
    struct quic_hello_reasm st;
    enum meta_result r;

    meta_quic_reasm_init(&st);
    r = meta__quic_reasm_payload(&st, payload, len, out);
    /* One packet alone: without the start of the hello there is nothing
     * to read in it. */
    if (r == META_MORE && st.contiguous == 0)
        r = META_NOT;
    return r;
}

/* ---- Initial packets. ---- */

/* One Initial located in a datagram, nothing decrypted yet. */
struct initial_pkt {
    const struct quic_version *v;
    const uint8_t *start;  /* its first byte */
    const uint8_t *dcid;
    uint8_t dcid_len;
    size_t pn_off;         /* from start to the (protected) packet number */
    struct cursor body;    /* packet number and protected payload: Length bytes */
};

/* RFC 9000 §17.2.2 Initial packet:
 *
 *   1 | 1 | type (2) | reserved (2) | pn length (2)   (low 4 bits protected)
 *   version (32) | DCID len (8) | DCID | SCID len (8) | SCID
 *   token length (i) | token | length (i) | packet number (8..32, protected)
 *   payload (AES-128-GCM, 16-byte tag at the end)
 *
 * Reads the header of the long-header packet at *c and, if it is an Initial
 * of a known version whole within the datagram, fills *ip and moves *c past
 * it (to what is coalesced after it). False otherwise, *c then undefined. */
static bool initial_header(struct cursor *c, struct initial_pkt *ip)
{
    const uint8_t *start = c->p;
    uint8_t b0 = 0, scid_len = 0;
    uint32_t version = 0;
    uint64_t token_len, length;

    /* RFC 9000 §17.2: Header Form 1 and Fixed Bit 1. */
    if (!cur_u8(c, &b0) || (b0 & 0xc0) != 0xc0 || !cur_be32(c, &version) ||
        (ip->v = find_version(version)) == NULL || ((b0 >> 4) & 0x03) != ip->v->initial_type)
        return false;
    if (!cur_u8(c, &ip->dcid_len) || ip->dcid_len > QUIC_CID_MAX)
        return false;
    ip->dcid = c->p;
    if (!cur_skip(c, ip->dcid_len) || !cur_u8(c, &scid_len) || scid_len > QUIC_CID_MAX ||
        !cur_skip(c, scid_len))
        return false;
    if (!cur_varint(c, &token_len) || token_len > cur_left(c) || !cur_skip(c, (size_t)token_len))
        return false;
    /* Length covers the packet number and the payload. A packet cut by the
     * capture cannot be authenticated, so it is not a usable Initial; one
     * too small to hold the header-protection sample is malformed. */
    if (!cur_varint(c, &length) || length > cur_left(c) ||
        length < QUIC_PN_MAX_LEN + QUIC_SAMPLE_LEN)
        return false;
    ip->start = start;
    ip->pn_off = (size_t)(c->p - start);
    return cur_sub(c, (size_t)length, &ip->body);
}

/* RFC 9001 §5.4 and §5.3: removes header protection from copies of the
 * first byte and the packet number (the packet itself is read-only), then
 * opens the payload into plain (META_QUIC_PAYLOAD_MAX bytes). True, with
 * *plain_len set, only if the AEAD tag verifies under k. */
static bool initial_open(EVP_CIPHER_CTX *ctx, const struct initial_pkt *ip,
                         const struct quic_initial_keys *k, uint8_t plain[META_QUIC_PAYLOAD_MAX],
                         size_t *plain_len)
{
    uint8_t b0 = ip->start[0], mask[QUIC_SAMPLE_LEN], sample[QUIC_SAMPLE_LEN];
    uint8_t pn_bytes[QUIC_PN_MAX_LEN];
    uint64_t pn = 0;
    size_t pn_len, ct_len;
    struct cursor s = ip->body, ct;
    struct aad_part aad[3];

    /* §5.4.2: the sample starts 4 bytes after the packet number's start. */
    if (!cur_skip(&s, QUIC_PN_MAX_LEN) || !cur_bytes(&s, sample, sizeof(sample)))
        return false; /* not reached: Length >= 20 was checked */
    if (!hp_mask(ctx, k->hp, sample, mask))
        return false;
    b0 ^= mask[0] & 0x0f; /* long header: the low 4 bits are protected */
    pn_len = (size_t)(b0 & 0x03) + 1;
    s = ip->body;
    if (!cur_bytes(&s, pn_bytes, pn_len)) /* body holds >= 20 bytes */
        return false;
    for (size_t i = 0; i < pn_len; i++) {
        pn_bytes[i] ^= mask[1 + i];
        pn = pn << 8 | pn_bytes[i];
    }
    /* The full packet number is not reconstructed against the largest one
     * received (RFC 9000 §A.3): in the client's first flight it is small
     * and sent whole; a later Initial whose truncated number wrapped fails
     * authentication and is just not used. */
    if (cur_left(&s) <= QUIC_TAG_LEN)
        return false;
    ct_len = cur_left(&s) - QUIC_TAG_LEN;
    if (ct_len > META_QUIC_PAYLOAD_MAX)
        return false;
    cur_sub(&s, ct_len, &ct);
    /* Associated data (§5.3): the header with the first byte and the packet
     * number unprotected; given in three pieces so the header, token and
     * all, is never copied. */
    aad[0] = (struct aad_part){&b0, 1};
    aad[1] = (struct aad_part){ip->start + 1, ip->pn_off - 1};
    aad[2] = (struct aad_part){pn_bytes, pn_len};
    if (!aead_open(ctx, k, pn, aad, ct.p, ct_len, s.p, plain))
        return false;
    *plain_len = ct_len;
    return true;
}

/* Opens one Initial for st and keeps its CRYPTO data. The first Initial to
 * authenticate keys st (version, DCID, keys from that DCID); later ones
 * must be of that version and authenticate under those keys. Nothing in st
 * changes unless the packet is used. */
static bool reasm_packet(struct quic_hello_reasm *st, const struct quic_crypto *qc,
                         const struct initial_pkt *ip, uint8_t plain[META_QUIC_PAYLOAD_MAX])
{
    struct quic_initial_keys fresh;
    const struct quic_initial_keys *k = &st->keys;
    size_t plain_len = 0;

    if (st->version == 0) {
        if (!derive_client_keys(qc->hmac, ip->v, ip->dcid, ip->dcid_len, &fresh))
            return false;
        k = &fresh;
    } else if (ip->v->version != st->version) {
        return false;
    }
    if (!initial_open(qc->cipher, ip, k, plain, &plain_len) ||
        !walk_frames(plain, plain_len, NULL))
        return false;
    if (st->version == 0) {
        st->keys = fresh;
        st->version = ip->v->version;
        st->dcid_len = ip->dcid_len;
        memcpy(st->dcid, ip->dcid, ip->dcid_len);
    }
    walk_frames(plain, plain_len, st);
    return true;
}

/* Coalesced packets are bounded by the datagram (each takes >= 29 bytes);
 * this bound only makes the loop's end obvious. */
#define QUIC_COALESCED_MAX 8

enum meta_result meta_quic_initial_add(struct quic_hello_reasm *st, const uint8_t *data,
                                       size_t len, struct tls_hello_info *out)
{
    struct cursor c = cur_make(data, len);
    struct initial_pkt first, ip;
    uint8_t plain[META_QUIC_PAYLOAD_MAX];
    struct quic_crypto qc = {NULL, NULL};
    bool used = false;
    enum meta_result r;

    if (reasm_finished(st, out, &r))
        return r;
    memset(out, 0, sizeof(*out));
    if (data == NULL || !initial_header(&c, &first))
        return META_NOT;
    if (!quic_crypto_open(&qc)) {
        quic_crypto_close(&qc);
        return META_NOT;
    }
    /* RFC 9000 §12.2: packets coalesced in one datagram carry the same
     * DCID; one that does not is not looked at, nor anything after it.
     * Neither is whatever follows a packet that is not an Initial (0-RTT,
     * Handshake, 1-RTT, or the padding some clients put after a short
     * Initial). */
    if (reasm_packet(st, &qc, &first, plain)) {
        used = true;
        for (int i = 1; i < QUIC_COALESCED_MAX && cur_left(&c) > 0; i++) {
            if (!initial_header(&c, &ip) || ip.dcid_len != first.dcid_len ||
                memcmp(ip.dcid, first.dcid, first.dcid_len) != 0 ||
                !reasm_packet(st, &qc, &ip, plain))
                break;
        }
    }
    quic_crypto_close(&qc);
    if (!used)
        return META_NOT;
    return reasm_hello(st, out);
}

enum meta_result meta_quic_initial(const uint8_t *data, size_t len, struct tls_hello_info *out)
{
    struct quic_hello_reasm st;
    enum meta_result r;

    meta_quic_reasm_init(&st);
    r = meta_quic_initial_add(&st, data, len, out);
    /* One datagram alone: without the start of the hello there is nothing
     * to read in it. */
    if (r == META_MORE && st.contiguous == 0)
        r = META_NOT;
    return r;
}
