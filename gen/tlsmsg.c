/* tlsmsg.c — ClientHello / ServerHello writer (RFC 8446 §4.1.2-4.1.3,
 * extensions of RFC 6066, 7301, 7627, 8422, 8446 §4.2, 8879, 9001 §8.2).
 *
 *   ClientHello: legacy_version(2) random(32) session_id<0..32>
 *                cipher_suites<2..2^16-2> compression<1..2^8-1>
 *                extensions<8..2^16-1>
 *   extension:   type(2) length(2) data
 *
 * Each personality lists its cipher suites and extensions in its own order;
 * the orders are this project's choice, not copied from any client. */
#include "tlsmsg.h"

#include "rng.h"

#include <string.h>

struct wb {
    uint8_t *p;
    size_t len, cap;
    bool overflow;
};

static void put(struct wb *w, const void *b, size_t n)
{
    if (n == 0) /* empty extensions pass b == NULL; memcpy must not see it */
        return;
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = true;
        return;
    }
    memcpy(w->p + w->len, b, n);
    w->len += n;
}

static void u8(struct wb *w, uint32_t v)
{
    uint8_t b = (uint8_t)v;
    put(w, &b, 1);
}

static void u16(struct wb *w, uint32_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(w, b, 2);
}

/* Opens a length field of `width` bytes; returns where to patch it. */
static size_t open_len(struct wb *w, int width)
{
    size_t at = w->len;
    for (int i = 0; i < width; i++)
        u8(w, 0);
    return at;
}

static void close_len(struct wb *w, size_t at, int width)
{
    if (w->overflow)
        return;
    size_t n = w->len - at - (size_t)width;
    for (int i = width - 1; i >= 0; i--, n >>= 8)
        w->p[at + (size_t)i] = (uint8_t)n;
}

static void u16_list(struct wb *w, const uint16_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        u16(w, v[i]);
}

void tls_seed_bytes(uint64_t seed, uint32_t which, uint8_t *out, size_t n)
{
    struct rng r;
    rng_seed(&r, seed ^ ((uint64_t)which * UINT64_C(0x9e3779b97f4a7c15)));
    rng_fill(&r, out, n);
}

enum { SEED_CRANDOM = 1, SEED_SESSION, SEED_CKEY, SEED_SRANDOM, SEED_SKEY };

static const uint16_t ciphers_browser[] = {0x1301, 0x1303, 0x1302, 0xc02b, 0xc02f, 0xcca9,
                                           0xcca8, 0xc02c, 0xc030, 0xc013, 0xc014, 0x009c,
                                           0x009d, 0x002f, 0x0035};
static const uint16_t ciphers_tool[] = {0x1302, 0x1303, 0x1301, 0xc02c, 0xc030, 0x009f,
                                        0xcca9, 0xcca8, 0xccaa, 0xc02b, 0xc02f, 0x009e,
                                        0xc024, 0xc028, 0x006b, 0xc023, 0xc027, 0x0067,
                                        0x00ff};
static const uint16_t ciphers_legacy[] = {0xc02f, 0xc030, 0xc02b, 0xc02c, 0x009e, 0x009f,
                                          0xc013, 0xc014, 0x002f, 0x0035, 0x000a};
static const uint16_t ciphers_quic[] = {0x1301, 0x1302, 0x1303};

static const uint16_t groups_modern[] = {0x001d, 0x0017, 0x0018, 0x0019};
static const uint16_t groups_legacy[] = {0x0017, 0x0018, 0x001d};
static const uint16_t sigalgs_modern[] = {0x0403, 0x0804, 0x0401, 0x0503, 0x0805,
                                          0x0501, 0x0806, 0x0601, 0x0807};
static const uint16_t sigalgs_legacy[] = {0x0401, 0x0403, 0x0501, 0x0503, 0x0601, 0x0603,
                                          0x0201, 0x0203};

static void ext_sni(struct wb *w, const char *sni)
{
    size_t n = strlen(sni);
    u16(w, 0);
    u16(w, (uint32_t)(n + 5));
    u16(w, (uint32_t)(n + 3));
    u8(w, 0); /* host_name */
    u16(w, (uint32_t)n);
    put(w, sni, n);
}

static void ext_u16_list(struct wb *w, uint16_t type, const uint16_t *v, size_t n)
{
    u16(w, type);
    u16(w, (uint32_t)(2 + 2 * n));
    u16(w, (uint32_t)(2 * n));
    u16_list(w, v, n);
}

static void ext_raw(struct wb *w, uint16_t type, const void *data, size_t n)
{
    u16(w, type);
    u16(w, (uint32_t)n);
    put(w, data, n);
}

static void ext_alpn(struct wb *w, const char *const *protos, size_t n)
{
    u16(w, 16);
    size_t at = open_len(w, 2);
    size_t at2 = open_len(w, 2);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(protos[i]);
        u8(w, (uint32_t)l);
        put(w, protos[i], l);
    }
    close_len(w, at2, 2);
    close_len(w, at, 2);
}

static void ext_key_share_client(struct wb *w, uint64_t seed)
{
    uint8_t key[32];
    tls_seed_bytes(seed, SEED_CKEY, key, sizeof key);
    u16(w, 51);
    u16(w, 2 + 4 + 32);
    u16(w, 4 + 32);
    u16(w, 0x001d);
    u16(w, 32);
    put(w, key, 32);
}

size_t tls_client_hello(uint8_t *out, size_t cap, enum tls_client_kind kind, const char *sni,
                        uint64_t seed, const uint8_t *quic_tp, size_t quic_tp_len)
{
    struct wb w = {.p = out, .cap = cap};
    uint8_t rnd[32];

    u8(&w, 1); /* client_hello */
    size_t hs_len = open_len(&w, 3);
    u16(&w, 0x0303);
    tls_seed_bytes(seed, SEED_CRANDOM, rnd, 32);
    put(&w, rnd, 32);
    if (kind == TLS_CLIENT_QUIC) {
        u8(&w, 0); /* RFC 9001 §8.4: no middlebox-compatibility session id */
    } else {
        tls_seed_bytes(seed, SEED_SESSION, rnd, 32);
        u8(&w, 32);
        put(&w, rnd, 32);
    }

    const uint16_t *cs;
    size_t ncs;
    switch (kind) {
    case TLS_CLIENT_BROWSER:
        cs = ciphers_browser, ncs = sizeof ciphers_browser / 2;
        break;
    case TLS_CLIENT_TOOL:
        cs = ciphers_tool, ncs = sizeof ciphers_tool / 2;
        break;
    case TLS_CLIENT_LEGACY:
        cs = ciphers_legacy, ncs = sizeof ciphers_legacy / 2;
        break;
    default:
        cs = ciphers_quic, ncs = sizeof ciphers_quic / 2;
        break;
    }
    u16(&w, (uint32_t)(2 * ncs));
    u16_list(&w, cs, ncs);
    u8(&w, 1);
    u8(&w, 0); /* null compression */

    size_t ext_len = open_len(&w, 2);
    static const uint8_t point_formats[] = {1, 0};
    static const uint8_t reneg[] = {0};
    static const uint8_t psk_modes[] = {1, 1};           /* psk_dhe_ke */
    static const uint8_t status_req[] = {1, 0, 0, 0, 0}; /* OCSP, no ids */
    static const uint8_t compress_cert[] = {2, 0, 2};    /* brotli */
    static const uint8_t versions_13[] = {2, 0x03, 0x04};
    static const uint8_t versions_both[] = {4, 0x03, 0x04, 0x03, 0x03};
    switch (kind) {
    case TLS_CLIENT_BROWSER: {
        static const char *const alpn[] = {"h2", "http/1.1"};
        ext_sni(&w, sni);
        ext_raw(&w, 23, NULL, 0);
        ext_raw(&w, 0xff01, reneg, sizeof reneg);
        ext_u16_list(&w, 10, groups_modern, sizeof groups_modern / 2);
        ext_raw(&w, 11, point_formats, sizeof point_formats);
        ext_raw(&w, 35, NULL, 0);
        ext_alpn(&w, alpn, 2);
        ext_raw(&w, 5, status_req, sizeof status_req);
        ext_u16_list(&w, 13, sigalgs_modern, sizeof sigalgs_modern / 2);
        ext_raw(&w, 18, NULL, 0);
        ext_key_share_client(&w, seed);
        ext_raw(&w, 45, psk_modes, sizeof psk_modes);
        ext_raw(&w, 43, versions_both, sizeof versions_both);
        ext_raw(&w, 27, compress_cert, sizeof compress_cert);
        /* RFC 7685 padding: bring the handshake message to 512 bytes. */
        size_t now = w.len + 4;
        if (!w.overflow && now < 512) {
            uint8_t zeros[512] = {0};
            ext_raw(&w, 21, zeros, 512 - now);
        }
        break;
    }
    case TLS_CLIENT_TOOL: {
        static const char *const alpn[] = {"http/1.1"};
        ext_sni(&w, sni);
        ext_raw(&w, 11, point_formats, sizeof point_formats);
        ext_u16_list(&w, 10, groups_modern, sizeof groups_modern / 2);
        ext_raw(&w, 35, NULL, 0);
        ext_alpn(&w, alpn, 1);
        ext_raw(&w, 22, NULL, 0);
        ext_raw(&w, 23, NULL, 0);
        ext_u16_list(&w, 13, sigalgs_modern, sizeof sigalgs_modern / 2);
        ext_raw(&w, 43, versions_both, sizeof versions_both);
        ext_raw(&w, 45, psk_modes, sizeof psk_modes);
        ext_key_share_client(&w, seed);
        break;
    }
    case TLS_CLIENT_LEGACY:
        ext_sni(&w, sni);
        ext_u16_list(&w, 10, groups_legacy, sizeof groups_legacy / 2);
        ext_raw(&w, 11, point_formats, sizeof point_formats);
        ext_u16_list(&w, 13, sigalgs_legacy, sizeof sigalgs_legacy / 2);
        ext_raw(&w, 0xff01, reneg, sizeof reneg);
        break;
    default: {
        static const char *const alpn[] = {"h3"};
        ext_sni(&w, sni);
        ext_u16_list(&w, 10, groups_modern, 3);
        ext_alpn(&w, alpn, 1);
        ext_u16_list(&w, 13, sigalgs_modern, sizeof sigalgs_modern / 2);
        ext_key_share_client(&w, seed);
        ext_raw(&w, 45, psk_modes, sizeof psk_modes);
        ext_raw(&w, 43, versions_13, sizeof versions_13);
        ext_raw(&w, 27, compress_cert, sizeof compress_cert);
        ext_raw(&w, 57, quic_tp, quic_tp ? quic_tp_len : 0);
        break;
    }
    }
    close_len(&w, ext_len, 2);
    close_len(&w, hs_len, 3);
    return w.overflow ? 0 : w.len;
}

size_t tls_server_hello(uint8_t *out, size_t cap, enum tls_client_kind kind, uint64_t seed)
{
    struct wb w = {.p = out, .cap = cap};
    uint8_t rnd[32];

    u8(&w, 2); /* server_hello */
    size_t hs_len = open_len(&w, 3);
    u16(&w, 0x0303);
    tls_seed_bytes(seed, SEED_SRANDOM, rnd, 32);
    put(&w, rnd, 32);
    if (kind == TLS_CLIENT_QUIC) {
        u8(&w, 0);
    } else {
        tls_seed_bytes(seed, SEED_SESSION, rnd, 32); /* echo (or resume) the session id */
        u8(&w, 32);
        put(&w, rnd, 32);
    }
    size_t ext_len;
    if (kind == TLS_CLIENT_LEGACY) {
        static const uint8_t reneg[] = {0};
        static const uint8_t point_formats[] = {1, 0};
        u16(&w, 0xc02f);
        u8(&w, 0);
        ext_len = open_len(&w, 2);
        ext_raw(&w, 0xff01, reneg, sizeof reneg);
        ext_raw(&w, 11, point_formats, sizeof point_formats);
    } else {
        u16(&w, 0x1301);
        u8(&w, 0);
        ext_len = open_len(&w, 2);
        uint8_t key[32];
        tls_seed_bytes(seed, SEED_SKEY, key, sizeof key);
        u16(&w, 51);
        u16(&w, 4 + 32);
        u16(&w, 0x001d);
        u16(&w, 32);
        put(&w, key, 32);
        u16(&w, 43);
        u16(&w, 2);
        u16(&w, 0x0304);
    }
    close_len(&w, ext_len, 2);
    close_len(&w, hs_len, 3);
    return w.overflow ? 0 : w.len;
}

size_t tls_record(uint8_t *out, size_t cap, uint8_t type, uint16_t version, const uint8_t *body,
                  size_t len)
{
    if (cap < 5 || len > cap - 5 || len > 0xffff)
        return 0;
    out[0] = type;
    out[1] = (uint8_t)(version >> 8);
    out[2] = (uint8_t)version;
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
    memmove(out + 5, body, len);
    return 5 + len;
}
