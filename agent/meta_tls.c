/* meta_tls.c — the TLS ClientHello: server name, first ALPN value, JA4.
 *
 * The ClientHello is the one cleartext message that names where a TLS (or
 * QUIC) client is going and how its TLS stack is built. Over TCP it comes in
 * handshake records that may be split across records and segments; the
 * caller hands over the stream bytes from the start and is told how many
 * more it needs (META_MORE, bounded by META_TLS_MAX_NEED). From QUIC it
 * comes as the bare handshake message gathered from CRYPTO frames.
 *
 * JA4 is FoxIO's TLS client fingerprint (BSD 3-Clause specification,
 * github.com/FoxIO-LLC/ja4, technical_details/JA4.md), computed here from
 * that specification:
 *
 *   a  transport ('t' TCP, 'q' QUIC), TLS version (2 chars), 'd' with SNI or
 *      'i', ciphers (2 digits), extensions (2 digits), ALPN first+last char
 *   b  first 12 hex digits of SHA-256 over the sorted ciphers as
 *      "xxxx,xxxx,..."; "000000000000" when there are none
 *   c  same over the sorted extensions without SNI (0x0000) and ALPN
 *      (0x0010), then "_" and the signature algorithms in wire order (the
 *      "_" only when there are some); "000000000000" when there are none
 *
 * GREASE values (RFC 8701) are left out of every list and count.
 *
 * Non-goals: the ServerHello (JA4S), ECH inner hellos, SSLv2-format hellos
 * (refused as META_NOT), session resumption state.
 *
 * Memory: nothing is allocated here; a call uses about 40 KiB of stack (the
 * gathered message and the lists to sort, sized so that no hello within
 * META_TLS_MAX_NEED is ever cut short). libcrypto allocates its digest
 * context internally, once per hello. */
#include "meta.h"

#include "cursor.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#define TLS_CT_HANDSHAKE 22
#define TLS_HS_CLIENT_HELLO 1
#define TLS_RECORD_HDR 5
#define TLS_HS_HDR 4
#define TLS_RECORD_MAX 16384 /* RFC 8446 §5.1: TLSPlaintext.length <= 2^14 */

#define EXT_SERVER_NAME 0x0000
#define EXT_SIG_ALGS 0x000d
#define EXT_ALPN 0x0010
#define EXT_SUPPORTED_VERSIONS 0x002b

/* The hello is at most META_TLS_MAX_NEED bytes, so it cannot hold more
 * ciphers (2 bytes each) or extensions (4 bytes each) than these; sized so,
 * the lists are never cut and the fingerprint is always exact. */
#define MAX_CIPHERS (META_TLS_MAX_NEED / 2)
#define MAX_EXTS (META_TLS_MAX_NEED / 4)

/* RFC 8701 §2: GREASE code points are 0x?a?a with both bytes equal. */
static bool is_grease(uint16_t v)
{
    return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
}

static bool is_alnum(uint8_t ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
}

static const char hex_digits[] = "0123456789abcdef";

/* In-place heapsort of u16 values. qsort would do, but glibc's may call
 * malloc for large arrays, and this path allocates nothing of its own. */
static void sift_down(uint16_t *v, size_t root, size_t n)
{
    for (;;) {
        size_t child = 2 * root + 1;
        uint16_t t;
        if (child >= n)
            return;
        if (child + 1 < n && v[child + 1] > v[child])
            child++;
        if (v[root] >= v[child])
            return;
        t = v[root];
        v[root] = v[child];
        v[child] = t;
        root = child;
    }
}

static void sort_u16(uint16_t *v, size_t n)
{
    if (n <= 32) { /* the usual list: an insertion sort is quicker */
        for (size_t i = 1; i < n; i++) {
            uint16_t t = v[i];
            size_t j = i;
            for (; j > 0 && v[j - 1] > t; j--)
                v[j] = v[j - 1];
            v[j] = t;
        }
        return;
    }
    for (size_t i = n / 2; i-- > 0;)
        sift_down(v, i, n);
    for (size_t end = n; end-- > 1;) {
        uint16_t t = v[0];
        v[0] = v[end];
        v[end] = t;
        sift_down(v, 0, end);
    }
}

/* Feeds "xxxx,xxxx,..." into a SHA-256 through a small buffer, so lists of
 * any length are hashed without building the whole string. */
struct hexlist {
    EVP_MD_CTX *md;
    char buf[256];
    size_t n;
    bool first;
    bool ok;
};

static void hl_flush(struct hexlist *h)
{
    if (h->n > 0 && h->ok)
        h->ok = EVP_DigestUpdate(h->md, h->buf, h->n) == 1;
    h->n = 0;
}

static void hl_char(struct hexlist *h, char ch)
{
    if (h->n == sizeof(h->buf))
        hl_flush(h);
    h->buf[h->n++] = ch;
}

static void hl_u16(struct hexlist *h, uint16_t v)
{
    if (sizeof(h->buf) - h->n < 5)
        hl_flush(h);
    char *o = h->buf + h->n;
    if (!h->first)
        *o++ = ',';
    h->first = false;
    o[0] = hex_digits[v >> 12];
    o[1] = hex_digits[(v >> 8) & 0xf];
    o[2] = hex_digits[(v >> 4) & 0xf];
    o[3] = hex_digits[v & 0xf];
    h->n = (size_t)(o + 4 - h->buf);
}

/* SHA-256 fetched once: EVP_sha256() passed to an init is looked up by
 * name in the provider tables every time, which costs more than hashing a
 * list this short. */
static EVP_MD *sha256;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* Starts a list; returns false if libcrypto could not set up the digest. */
static bool hl_begin(struct hexlist *h, EVP_MD_CTX *md)
{
    h->md = md;
    h->n = 0;
    h->first = true;
    pthread_once(&sha256_once, fetch_sha256);
    h->ok = sha256 && EVP_DigestInit_ex(md, sha256, NULL) == 1;
    return h->ok;
}

/* Ends the list and writes the first 12 hex digits of its digest to out
 * (13 bytes with the NUL). */
static bool hl_end(struct hexlist *h, char out[13])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dn = 0;

    hl_flush(h);
    if (!h->ok || EVP_DigestFinal_ex(h->md, d, &dn) != 1 || dn < 6)
        return false;
    for (size_t i = 0; i < 6; i++) {
        out[2 * i] = hex_digits[d[i] >> 4];
        out[2 * i + 1] = hex_digits[d[i] & 0xf];
    }
    out[12] = '\0';
    return true;
}

/* What the ClientHello walk collects for the fingerprint. Lists point into
 * the message; arrays hold values to sort. */
struct hello {
    uint16_t legacy_version;
    uint16_t best_version;      /* highest non-GREASE supported_versions entry, 0 if none */
    bool has_sni;
    bool has_sig_algs;
    bool has_alpn;
    struct cursor sig_algs;     /* the signature_algorithms list, u16 entries */
    struct cursor alpn;         /* first ALPN protocol name */
    size_t n_ciphers;           /* non-GREASE */
    size_t n_exts;              /* non-GREASE, SNI and ALPN included (the JA4 count) */
    size_t n_hashed_exts;       /* those in exts[]: SNI and ALPN left out */
    /* Arrays last: a reset clears only the fields above them. */
    uint16_t ciphers[MAX_CIPHERS];
    uint16_t exts[MAX_EXTS];
};

/* RFC 6066 §3: ServerNameList; the first host_name (type 0) entry. */
static void parse_sni(struct cursor e, struct tls_hello_info *out)
{
    struct cursor list, name;
    uint16_t list_len, name_len;
    uint8_t type;

    if (!cur_be16(&e, &list_len) || !cur_sub(&e, list_len, &list))
        return;
    while (cur_u8(&list, &type) && cur_be16(&list, &name_len) &&
           cur_sub(&list, name_len, &name)) {
        if (type == 0) {
            /* DNS host names are case-insensitive (RFC 4343). */
            meta__copy_printable(out->sni, sizeof(out->sni), name.p, cur_left(&name), true);
            return;
        }
    }
}

/* RFC 7301 §3.1: ProtocolNameList; keeps the first protocol name. */
static void parse_alpn(struct cursor e, struct hello *h, struct tls_hello_info *out)
{
    struct cursor list, name;
    uint16_t list_len;
    uint8_t name_len;

    if (!cur_be16(&e, &list_len) || !cur_sub(&e, list_len, &list))
        return;
    if (!cur_u8(&list, &name_len) || name_len == 0 || !cur_sub(&list, name_len, &name))
        return;
    h->has_alpn = true;
    h->alpn = name;
    /* Protocol IDs are opaque and compared exactly: no lower-casing. */
    meta__copy_printable(out->alpn, sizeof(out->alpn), name.p, name_len, false);
}

/* RFC 8446 §4.2.1: supported_versions in a ClientHello is a u8-length list. */
static void parse_versions(struct cursor e, struct hello *h)
{
    struct cursor list;
    uint8_t list_len;
    uint16_t v;

    if (!cur_u8(&e, &list_len) || !cur_sub(&e, list_len, &list))
        return;
    while (cur_be16(&list, &v))
        if (!is_grease(v) && v > h->best_version)
            h->best_version = v;
}

/* RFC 8446 §4.2.3: signature_algorithms is a u16-length list of u16. */
static void parse_sig_algs(struct cursor e, struct hello *h)
{
    uint16_t list_len;

    if (h->has_sig_algs || !cur_be16(&e, &list_len) || !cur_sub(&e, list_len, &h->sig_algs))
        return;
    h->has_sig_algs = true;
}

/* RFC 8446 §4.1.2 (and RFC 5246 §7.4.1.2 for TLS 1.2 and older):
 *
 *   legacy_version (2) | random (32) | legacy_session_id <0..32>
 *   cipher_suites <2..2^16-2> | legacy_compression_methods <1..2^8-1>
 *   extensions <8..2^16-1>   (absent in some pre-1.3 hellos)
 *   Extension = extension_type (2) | extension_data <0..2^16-1>
 *
 * `body` is the handshake body (after type and length). Returns false when
 * it is malformed. */
static bool parse_hello_body(struct cursor body, struct hello *h, struct tls_hello_info *out)
{
    struct cursor list, exts, e;
    uint16_t n16, type;
    uint8_t n8;

    if (!cur_be16(&body, &h->legacy_version) || !cur_skip(&body, 32))
        return false;
    if (!cur_u8(&body, &n8) || n8 > 32 || !cur_skip(&body, n8))
        return false;
    if (!cur_be16(&body, &n16) || n16 % 2 != 0 || !cur_sub(&body, n16, &list))
        return false;
    while (cur_be16(&list, &n16)) {
        /* The hello's size bound keeps the count below MAX_CIPHERS. */
        if (!is_grease(n16) && h->n_ciphers < MAX_CIPHERS)
            h->ciphers[h->n_ciphers++] = n16;
    }
    if (!cur_u8(&body, &n8) || !cur_skip(&body, n8))
        return false;
    if (cur_left(&body) == 0)
        return true; /* no extensions block */
    if (!cur_be16(&body, &n16) || !cur_sub(&body, n16, &exts))
        return false;
    while (cur_left(&exts) > 0) {
        if (!cur_be16(&exts, &type) || !cur_be16(&exts, &n16) || !cur_sub(&exts, n16, &e))
            return false;
        if (is_grease(type))
            continue;
        h->n_exts++;
        switch (type) {
        case EXT_SERVER_NAME:
            if (!h->has_sni)
                parse_sni(e, out);
            h->has_sni = true;
            continue; /* not in the c list */
        case EXT_ALPN:
            if (!h->has_alpn)
                parse_alpn(e, h, out);
            continue; /* not in the c list */
        case EXT_SUPPORTED_VERSIONS:
            parse_versions(e, h);
            break;
        case EXT_SIG_ALGS:
            parse_sig_algs(e, h);
            break;
        default:
            break;
        }
        if (h->n_hashed_exts < MAX_EXTS) /* 4 bytes each: always true */
            h->exts[h->n_hashed_exts++] = type;
    }
    return true;
}

/* JA4 version code: 0x0304 "13" ... 0x0300 "s3", 0x0002 "s2"; "00" when unknown. */
static const char *version_code(uint16_t v)
{
    switch (v) {
    case 0x0304: return "13";
    case 0x0303: return "12";
    case 0x0302: return "11";
    case 0x0301: return "10";
    case 0x0300: return "s3";
    case 0x0002: return "s2";
    default: return "00"; /* DTLS codes too: vigil reads no DTLS hellos */
    }
}

/* Writes the JA4 string for h into ja4 (FLOWREC_JA4_MAX bytes). Returns
 * false if libcrypto failed (ja4 is then left empty). */
static bool build_ja4(struct hello *h, char transport, char ja4[FLOWREC_JA4_MAX])
{
    char a[11], b[13], c[13];
    EVP_MD_CTX *md;
    struct hexlist hl;
    bool ok = true;
    size_t nc = h->n_ciphers > 99 ? 99 : h->n_ciphers;
    size_t ne = h->n_exts > 99 ? 99 : h->n_exts;
    const char *ver = version_code(h->best_version ? h->best_version : h->legacy_version);
    uint8_t first = 0, last = 0;

    a[0] = transport;
    a[1] = ver[0];
    a[2] = ver[1];
    a[3] = h->has_sni ? 'd' : 'i';
    a[4] = (char)('0' + nc / 10);
    a[5] = (char)('0' + nc % 10);
    a[6] = (char)('0' + ne / 10);
    a[7] = (char)('0' + ne % 10);
    a[8] = a[9] = '0';
    if (h->has_alpn && cur_peek_u8(&h->alpn, 0, &first) &&
        cur_peek_u8(&h->alpn, cur_left(&h->alpn) - 1, &last)) {
        if (is_alnum(first) && is_alnum(last)) {
            a[8] = (char)first;
            a[9] = (char)last;
        } else {
            /* The spec's fallback: first and last digit of the value in hex. */
            a[8] = hex_digits[first >> 4];
            a[9] = hex_digits[last & 0xf];
        }
    }
    a[10] = '\0';

    memcpy(b, "000000000000", 13);
    memcpy(c, "000000000000", 13);
    md = EVP_MD_CTX_new();
    if (md == NULL)
        return false;
    if (h->n_ciphers > 0) {
        sort_u16(h->ciphers, h->n_ciphers);
        ok = hl_begin(&hl, md);
        for (size_t i = 0; ok && i < h->n_ciphers; i++)
            hl_u16(&hl, h->ciphers[i]);
        ok = ok && hl_end(&hl, b);
    }
    if (ok && h->n_hashed_exts > 0) {
        struct cursor s = h->sig_algs;
        uint16_t v;
        bool any = false;

        sort_u16(h->exts, h->n_hashed_exts);
        ok = hl_begin(&hl, md);
        for (size_t i = 0; ok && i < h->n_hashed_exts; i++)
            hl_u16(&hl, h->exts[i]);
        while (ok && h->has_sig_algs && cur_be16(&s, &v)) {
            if (is_grease(v))
                continue;
            if (!any) {
                hl_char(&hl, '_');
                hl.first = true;
                any = true;
            }
            hl_u16(&hl, v);
        }
        ok = ok && hl_end(&hl, c);
    }
    EVP_MD_CTX_free(md);
    if (!ok)
        return false;
    memcpy(ja4, a, 10);
    ja4[10] = '_';
    memcpy(ja4 + 11, b, 12);
    ja4[23] = '_';
    memcpy(ja4 + 24, c, 13);
    return true;
}

/* Parses one complete handshake message (type, 3-byte length, body). */
static enum meta_result parse_handshake(const uint8_t *msg, size_t len, char transport,
                                        struct tls_hello_info *out)
{
    struct cursor c = cur_make(msg, len);
    struct cursor body;
    uint8_t type;
    uint32_t hs_len;
    /* ~24 KiB: the sort arrays sized for the largest hello accepted. */
    struct hello h;

    if (!cur_u8(&c, &type) || type != TLS_HS_CLIENT_HELLO || !cur_be24(&c, &hs_len) ||
        !cur_sub(&c, hs_len, &body))
        return META_NOT;
    memset(&h, 0, offsetof(struct hello, ciphers));
    if (!parse_hello_body(body, &h, out) || !build_ja4(&h, transport, out->ja4)) {
        memset(out, 0, sizeof(*out));
        return META_NOT;
    }
    return META_OK;
}

/* A QUIC hello: the bare handshake message, no record layer. */
static enum meta_result hello_from_message(const uint8_t *data, size_t len,
                                           struct tls_hello_info *out, size_t *need)
{
    struct cursor c = cur_make(data, len);
    uint8_t type;
    uint32_t hs_len;

    if (cur_u8(&c, &type) && type != TLS_HS_CLIENT_HELLO)
        return META_NOT;
    if (!cur_be24(&c, &hs_len)) {
        *need = TLS_HS_HDR;
        return META_MORE;
    }
    if (hs_len > META_TLS_MAX_NEED - TLS_HS_HDR)
        return META_NOT;
    if (!cur_has(&c, hs_len)) {
        *need = TLS_HS_HDR + (size_t)hs_len;
        return META_MORE;
    }
    return parse_handshake(data, TLS_HS_HDR + (size_t)hs_len, 'q', out);
}

/* Checks the captured part (n bytes, n < 5) of a record header. */
static bool record_prefix_ok(const struct cursor *c, size_t n)
{
    uint8_t b;

    if (n > 0 && (!cur_peek_u8(c, 0, &b) || b != TLS_CT_HANDSHAKE))
        return false;
    if (n > 1 && (!cur_peek_u8(c, 1, &b) || b != 3))
        return false;
    if (n > 2 && (!cur_peek_u8(c, 2, &b) || b > 4))
        return false;
    if (n > 3 && (!cur_peek_u8(c, 3, &b) || b > TLS_RECORD_MAX >> 8))
        return false;
    return true;
}

/* A TCP hello: RFC 8446 §5.1 records,
 *
 *   ContentType type (1) = 22 | legacy_record_version (2) = 0x0300..0x0304
 *   length (2), 1..2^14 | fragment
 *
 * whose fragments concatenate into the handshake message. The message is
 * gathered into msg[] (at most META_TLS_MAX_NEED bytes) and parsed there. */
static enum meta_result hello_from_records(const uint8_t *data, size_t len,
                                           struct tls_hello_info *out, size_t *need)
{
    struct cursor c = cur_make(data, len);
    uint8_t msg[META_TLS_MAX_NEED];
    size_t have = 0;    /* handshake bytes gathered */
    size_t total = 0;   /* message size, once its header is in */

    for (;;) {
        size_t pos = (size_t)(c.p - data);
        size_t still, avail;
        uint8_t type = 0, major = 0, minor = 0;
        uint16_t rec_len = 0;
        struct cursor frag;

        /* Handshake bytes still missing: the rest of the message, or of its
         * 4-byte header when the length is not known yet. */
        still = total ? total - have : TLS_HS_HDR - have;
        if (!cur_has(&c, TLS_RECORD_HDR)) {
            if (!record_prefix_ok(&c, cur_left(&c)))
                return META_NOT;
            *need = pos + TLS_RECORD_HDR + still;
            break;
        }
        /* RFC 8446 §5.1: no zero-length handshake fragments, none above 2^14;
         * other content types cannot interleave a handshake message. */
        if (!cur_u8(&c, &type) || !cur_u8(&c, &major) || !cur_u8(&c, &minor) ||
            !cur_be16(&c, &rec_len) || type != TLS_CT_HANDSHAKE || major != 3 || minor > 4 ||
            rec_len == 0 || rec_len > TLS_RECORD_MAX)
            return META_NOT;
        avail = cur_left(&c) < rec_len ? cur_left(&c) : rec_len;
        cur_sub(&c, avail, &frag);
        while (cur_left(&frag) > 0) {
            size_t want = total ? total - have : TLS_HS_HDR - have;
            size_t n = cur_left(&frag) < want ? cur_left(&frag) : want;
            struct cursor m;
            uint8_t hs_type = 0;
            uint32_t hs_len = 0;

            if (n == 0)
                break; /* the message ended inside this record */
            cur_bytes(&frag, msg + have, n);
            have += n;
            m = cur_make(msg, have);
            if (!cur_u8(&m, &hs_type) || hs_type != TLS_HS_CLIENT_HELLO)
                return META_NOT;
            if (total == 0 && cur_be24(&m, &hs_len)) {
                /* The message plus at least this record's header must fit
                 * the bound on what the caller is asked to buffer. */
                if (hs_len > META_TLS_MAX_NEED - TLS_HS_HDR - TLS_RECORD_HDR)
                    return META_NOT;
                total = TLS_HS_HDR + (size_t)hs_len;
            }
        }
        if (total != 0 && have == total)
            return parse_handshake(msg, total, 't', out);
        still = total ? total - have : TLS_HS_HDR - have;
        if (avail < rec_len) {
            /* The record is cut short: the message ends inside it, or it
             * runs to its end and continues in (at least) one more. */
            size_t rest = rec_len - avail;
            if (still <= rest)
                *need = pos + TLS_RECORD_HDR + avail + still;
            else
                *need = pos + TLS_RECORD_HDR + rec_len + TLS_RECORD_HDR + (still - rest);
            break;
        }
    }
    return *need > META_TLS_MAX_NEED ? META_NOT : META_MORE;
}

enum meta_result meta_tls_client_hello(const uint8_t *data, size_t len, char transport,
                                       struct tls_hello_info *out, size_t *need)
{
    size_t dummy;
    enum meta_result r;

    memset(out, 0, sizeof(*out));
    if (need == NULL)
        need = &dummy;
    *need = 0;
    if (data == NULL && len > 0)
        return META_NOT;
    if (transport == 'q')
        r = hello_from_message(data, len, out, need);
    else if (transport == 't')
        r = hello_from_records(data, len, out, need);
    else
        return META_NOT;
    if (r != META_MORE)
        *need = 0;
    return r;
}
