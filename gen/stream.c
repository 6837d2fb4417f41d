/* stream.c — message heads, TLS record framing of bodies, and the filler pool.
 *
 * TLS bodies are a run of application-data records (RFC 8446 §5.2) of
 * TLS_REC_STRIDE bytes (5-byte header + 16401 bytes: 2^14 of content, the
 * inner content type and the 16-byte AEAD tag), the last one shorter but
 * never below the smallest valid ciphertext. */
#include "stream.h"

#include "httpmsg.h"
#include "rng.h"

#include <string.h>

#define TLS_REC_BODY 16401u
#define TLS_REC_STRIDE (5u + TLS_REC_BODY)
#define TLS_REC_MIN 22u /* header + content type + tag */
#define HEAD_MAX 1024

static uint8_t pool[POOL_SIZE + POOL_SPAN];

void pool_init(uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed ^ UINT64_C(0x706f6f6c));
    rng_fill(&r, pool, POOL_SIZE);
    memcpy(pool + POOL_SIZE, pool, POOL_SPAN);
}

const uint8_t *pool_at(uint64_t pos)
{
    return pool + (pos & (POOL_SIZE - 1));
}

static bool tls_body(const struct msg *m)
{
    return m->kind == MSG_TLS_SH || m->kind == MSG_TLS_APP;
}

/* Renders the head into buf (HEAD_MAX bytes); returns its length or 0. */
static size_t render_head(const struct msg *m, const char *name, uint8_t *buf)
{
    uint8_t hs[HEAD_MAX];
    size_t n, off = 0;
    static const uint8_t ccs[] = {TLS_CT_CCS, 3, 3, 0, 1, 1};

    switch (m->kind) {
    case MSG_TLS_CH:
        n = tls_client_hello(hs, sizeof hs - 5, (enum tls_client_kind)m->sub, name, m->seed,
                             NULL, 0);
        return n ? tls_record(buf, HEAD_MAX, TLS_CT_HANDSHAKE, 0x0301, hs, n) : 0;
    case MSG_TLS_SH:
        n = tls_server_hello(hs, sizeof hs, (enum tls_client_kind)m->sub, m->seed);
        if (!n || !(off = tls_record(buf, HEAD_MAX, TLS_CT_HANDSHAKE, 0x0303, hs, n)))
            return 0;
        memcpy(buf + off, ccs, sizeof ccs);
        off += sizeof ccs;
        if (m->sub == TLS_CLIENT_LEGACY) { /* resumption: the server's Finished, encrypted */
            tls_seed_bytes(m->seed, 40, hs, 40);
            off += tls_record(buf + off, HEAD_MAX - off, TLS_CT_HANDSHAKE, 0x0303, hs, 40);
        }
        return off;
    case MSG_TLS_APP:
        if (m->sub == TLS_APP_PLAIN)
            return 0;
        memcpy(buf, ccs, sizeof ccs);
        off = sizeof ccs;
        if (m->sub == TLS_APP_CCS_FINISHED) {
            tls_seed_bytes(m->seed, 41, hs, 40);
            off += tls_record(buf + off, HEAD_MAX - off, TLS_CT_HANDSHAKE, 0x0303, hs, 40);
        }
        return off;
    case MSG_HTTP_REQ:
        return http_request_head((char *)buf, HEAD_MAX, name, m->seed, m->body_len);
    case MSG_HTTP_RESP:
        return http_response_head((char *)buf, HEAD_MAX, m->body_len, m->sub);
    default:
        return 0;
    }
}

uint64_t msg_init(struct msg *m, enum msg_kind kind, uint8_t sub, uint64_t seed,
                  uint64_t body_len, const char *name)
{
    uint8_t buf[HEAD_MAX];
    *m = (struct msg){.seed = seed, .kind = (uint8_t)kind, .sub = sub};
    if (kind == MSG_TLS_CH)
        body_len = 0;
    if (tls_body(m) && body_len) {
        if (body_len < TLS_REC_MIN)
            body_len = TLS_REC_MIN;
        uint64_t rem = body_len % TLS_REC_STRIDE;
        if (rem && rem < TLS_REC_MIN)
            body_len += TLS_REC_MIN - rem;
    }
    if (body_len > UINT32_MAX - TLS_REC_STRIDE)
        body_len = UINT32_MAX - TLS_REC_STRIDE;
    m->body_len = (uint32_t)body_len;
    size_t h = render_head(m, name, buf);
    if (!h && kind != MSG_RAW && !(kind == MSG_TLS_APP && sub == TLS_APP_PLAIN))
        return 0;
    m->hdr_len = (uint16_t)h;
    return msg_total(m);
}

static void render_tls_body(const struct msg *m, uint64_t q, uint8_t *out, size_t n)
{
    while (n) {
        uint64_t k = q / TLS_REC_STRIDE;
        uint64_t within = q % TLS_REC_STRIDE;
        uint64_t rec_len = m->body_len - k * TLS_REC_STRIDE;
        if (rec_len > TLS_REC_STRIDE)
            rec_len = TLS_REC_STRIDE;
        size_t take;
        if (within < 5) {
            uint8_t hdr[5] = {TLS_CT_APPDATA, 3, 3, (uint8_t)((rec_len - 5) >> 8),
                              (uint8_t)(rec_len - 5)};
            take = (size_t)(5 - within);
            if (take > n)
                take = n;
            memcpy(out, hdr + within, take);
        } else {
            take = (size_t)(rec_len - within);
            if (take > n)
                take = n;
            memcpy(out, pool_at(m->seed + q), take);
        }
        out += take;
        q += take;
        n -= take;
    }
}

void msg_render(const struct msg *m, const char *name, uint64_t off, uint8_t *out, size_t n)
{
    if (off < m->hdr_len) {
        uint8_t buf[HEAD_MAX];
        render_head(m, name, buf);
        size_t take = (size_t)(m->hdr_len - off);
        if (take > n)
            take = n;
        memcpy(out, buf + off, take);
        out += take;
        off += take;
        n -= take;
    }
    if (!n)
        return;
    uint64_t q = off - m->hdr_len;
    if (tls_body(m)) {
        render_tls_body(m, q, out, n);
    } else {
        while (n) { /* n is at most one segment, but stay within POOL_SPAN anyway */
            size_t take = n < POOL_SPAN ? n : POOL_SPAN;
            memcpy(out, pool_at(m->seed + q), take);
            out += take;
            q += take;
            n -= take;
        }
    }
}
