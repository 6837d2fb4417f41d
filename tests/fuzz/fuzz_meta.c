/* fuzz_meta.c — libFuzzer target for the application-metadata parsers.
 *
 * The first input byte picks the parser, the rest is its input, passed with
 * its exact length so that an over-read lands outside the fuzzer's buffer
 * (and ASan reports it). Besides crashes, the target checks each parser's
 * contract from meta.h and aborts when it is broken: results in range,
 * output strings terminated, printable and lower-cased where promised, a
 * META_MORE's *need beyond what was given and within META_TLS_MAX_NEED, a
 * JA4 of the fixed shape.
 *
 * QUIC: random bytes almost never pass AEAD authentication, so besides the
 * whole-packet entry point the frame walk of a decrypted payload is fuzzed
 * directly through meta__quic_frames. Reassembly across datagrams is fuzzed
 * with a sequence of chunks cut from the input, each fed to one state
 * through meta_quic_initial_add (as a datagram) or meta__quic_reasm_payload
 * (as a decrypted payload, which is how random bytes reach the gathering of
 * CRYPTO data); see T_QUIC_REASM. */
#include "meta.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum target {
    T_DNS_UDP,
    T_DNS_TCP,
    T_TLS_TCP,
    T_TLS_QUIC,
    T_QUIC_INITIAL,
    T_QUIC_FRAMES,
    T_HTTP,
    T_APP,
    T_COUNT,                /* targets picked by data[0] % T_COUNT */
    T_QUIC_REASM = T_COUNT, /* picked by data[0] >= REASM_SELECTOR */
};

/* The selector bytes of the seeds in corpus/meta/ were written for the
 * T_COUNT targets above; the reassembly target came later and takes the top
 * selector values, which no seed uses, so that every seed keeps its target. */
#define REASM_SELECTOR 0xf0

static void check(int cond)
{
    if (!cond)
        abort();
}

static void check_result(enum meta_result r)
{
    check(r == META_NOT || r == META_OK || r == META_MORE);
}

/* A NUL within cap, printable ASCII before it, no upper case if `lower`. */
static void check_string(const char *s, size_t cap, int lower)
{
    const char *nul = memchr(s, '\0', cap);

    check(nul != NULL);
    for (const char *p = s; p < nul; p++) {
        check(*p >= 0x20 && *p <= 0x7e);
        if (lower)
            check(!(*p >= 'A' && *p <= 'Z'));
    }
}

static void check_hello(enum meta_result r, const struct tls_hello_info *h)
{
    check_string(h->sni, sizeof(h->sni), 1);
    check_string(h->alpn, sizeof(h->alpn), 0);
    check_string(h->ja4, sizeof(h->ja4), 0);
    if (r == META_OK) {
        /* "t13d1516h2_" + 12 hex + "_" + 12 hex */
        check(strlen(h->ja4) == 36 && h->ja4[10] == '_' && h->ja4[23] == '_');
    } else {
        check(h->ja4[0] == '\0');
    }
}

static void run_tls(const uint8_t *p, size_t n, char transport)
{
    struct tls_hello_info h;
    size_t need = 0;
    enum meta_result r = meta_tls_client_hello(p, n, transport, &h, &need);

    check_result(r);
    check_hello(r, &h);
    if (r == META_MORE)
        check(need > n && need <= META_TLS_MAX_NEED);
    else
        check(need == 0);
    if (r == META_OK)
        check(h.ja4[0] == transport);
}

/* T_QUIC_REASM: the input after the selector is a sequence of chunks, each
 * a 2-byte big-endian header then its bytes. The header's top bit sends the
 * chunk to meta__quic_reasm_payload (a decrypted Initial payload), else to
 * meta_quic_initial_add (a datagram); the low 15 bits give its length, cut
 * to what is left. Each chunk is copied into a buffer of its exact size, so
 * that reading past it is caught. Besides each result's contract, checks the
 * state's: DONE exactly when META_OK, then the same answer every time;
 * FAILED only with META_NOT, then for good; the version, once set, fixed. */
static void run_quic_reasm(const uint8_t *p, size_t n)
{
    struct quic_hello_reasm st;
    struct tls_hello_info h, first;
    bool done = false, failed = false;
    uint32_t version = 0;

    meta_quic_reasm_init(&st);
    while (n >= 2) {
        size_t m = (size_t)(p[0] & 0x7f) << 8 | p[1];
        bool plain = (p[0] & 0x80) != 0;
        enum meta_result r;
        uint8_t *chunk;

        p += 2, n -= 2;
        if (m > n)
            m = n;
        chunk = malloc(m > 0 ? m : 1);
        check(chunk != NULL);
        memcpy(chunk, p, m);
        r = plain ? meta__quic_reasm_payload(&st, chunk, m, &h)
                  : meta_quic_initial_add(&st, chunk, m, &h);
        free(chunk);
        p += m, n -= m;

        check_result(r);
        check_hello(r, &h);
        check(st.contiguous <= META_QUIC_CRYPTO_MAX);
        check((r == META_OK) == (st.phase == QUIC_REASM_DONE));
        check(st.phase != QUIC_REASM_FAILED || r == META_NOT);
        check(!failed || st.phase == QUIC_REASM_FAILED);
        check(version == 0 || st.version == version);
        check(st.version == 0 || st.dcid_len <= sizeof(st.dcid));
        version = st.version;
        failed = st.phase == QUIC_REASM_FAILED;
        if (r == META_OK) {
            check(h.ja4[0] == 'q');
            if (!done)
                first = h;
            check(strcmp(h.ja4, first.ja4) == 0 && strcmp(h.sni, first.sni) == 0 &&
                  strcmp(h.alpn, first.alpn) == 0);
            done = true;
        }
        check(!done || r == META_OK);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p;
    size_t n;

    if (size < 1)
        return 0;
    p = data + 1;
    n = size - 1;

    switch (data[0] >= REASM_SELECTOR ? T_QUIC_REASM : (enum target)(data[0] % T_COUNT)) {
    case T_DNS_UDP:
    case T_DNS_TCP: {
        struct dns_info d;
        enum meta_result r = meta_dns_parse(p, n, data[0] % T_COUNT == T_DNS_TCP, &d);
        check(r == META_NOT || r == META_OK);
        check_string(d.qname, sizeof(d.qname), 1);
        check(r == META_OK ? d.qname[0] != '\0' : d.qname[0] == '\0');
        check(d.rcode <= 15);
        break;
    }
    case T_TLS_TCP:
        run_tls(p, n, 't');
        break;
    case T_TLS_QUIC:
        run_tls(p, n, 'q');
        break;
    case T_QUIC_INITIAL: {
        struct tls_hello_info h;
        enum meta_result r = meta_quic_initial(p, n, &h);
        check_result(r);
        check_hello(r, &h);
        if (r != META_NOT)
            check(meta_is_quic_long_header(p, n));
        break;
    }
    case T_QUIC_FRAMES: {
        struct tls_hello_info h;
        enum meta_result r = meta__quic_frames(p, n, &h);
        check_result(r);
        check_hello(r, &h);
        if (r == META_OK)
            check(h.ja4[0] == 'q');
        break;
    }
    case T_HTTP: {
        char host[FLOWREC_NAME_MAX];
        enum meta_result r = meta_http_request(p, n, host);
        check_result(r);
        check_string(host, sizeof(host), 1);
        if (r != META_OK)
            check(host[0] == '\0');
        break;
    }
    case T_APP: {
        /* Two bytes of ports each way, then the payload; TCP, UDP, other. */
        static const uint8_t protos[] = {6, 17, 1};
        uint8_t proto = protos[(data[0] / T_COUNT) % 3];
        const char *l = meta_app_by_payload(proto, p, n);
        if (l != NULL)
            check(strlen(l) < FLOWREC_APP_MAX);
        if (n >= 4) {
            uint16_t sport = (uint16_t)(p[0] << 8 | p[1]), dport = (uint16_t)(p[2] << 8 | p[3]);
            l = meta_app_by_port(proto, sport, dport);
            if (l != NULL)
                check(strlen(l) < FLOWREC_APP_MAX);
        }
        break;
    }
    case T_QUIC_REASM:
        run_quic_reasm(p, n);
        break;
    }
    return 0;
}
