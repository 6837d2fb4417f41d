/* test_meta_http.c — meta_http_request, and the payload labels of
 * meta_app_by_payload for the text protocols.
 *
 * The fixture is the request of /work/shared/pcaps/protocols/http-get.pcap,
 * embedded so the tests run anywhere. */
#include <criterion/criterion.h>

#include "meta.h"

#include <string.h>

/* http-get.pcap frame 4 (141.142.228.5 -> 192.150.187.43:80), 136 bytes:
 *   GET /download/CHANGES.bro-aux.txt HTTP/1.1\r\n
 *   User-Agent: Wget/1.14 (darwin12.2.0)\r\n
 *   Accept: * / *\r\n           (written without spaces on the wire)
 *   Host: bro.org\r\n
 *   Connection: Keep-Alive\r\n
 *   \r\n */
static const uint8_t http_get[136] = {
    0x47, 0x45, 0x54, 0x20, 0x2f, 0x64, 0x6f, 0x77, 0x6e, 0x6c, 0x6f, 0x61, /* 0000 */
    0x64, 0x2f, 0x43, 0x48, 0x41, 0x4e, 0x47, 0x45, 0x53, 0x2e, 0x62, 0x72, /* 000c */
    0x6f, 0x2d, 0x61, 0x75, 0x78, 0x2e, 0x74, 0x78, 0x74, 0x20, 0x48, 0x54, /* 0018 */
    0x54, 0x50, 0x2f, 0x31, 0x2e, 0x31, 0x0d, 0x0a, 0x55, 0x73, 0x65, 0x72, /* 0024 */
    0x2d, 0x41, 0x67, 0x65, 0x6e, 0x74, 0x3a, 0x20, 0x57, 0x67, 0x65, 0x74, /* 0030 */
    0x2f, 0x31, 0x2e, 0x31, 0x34, 0x20, 0x28, 0x64, 0x61, 0x72, 0x77, 0x69, /* 003c */
    0x6e, 0x31, 0x32, 0x2e, 0x32, 0x2e, 0x30, 0x29, 0x0d, 0x0a, 0x41, 0x63, /* 0048 */
    0x63, 0x65, 0x70, 0x74, 0x3a, 0x20, 0x2a, 0x2f, 0x2a, 0x0d, 0x0a, 0x48, /* 0054 */
    0x6f, 0x73, 0x74, 0x3a, 0x20, 0x62, 0x72, 0x6f, 0x2e, 0x6f, 0x72, 0x67, /* 0060 */
    0x0d, 0x0a, 0x43, 0x6f, 0x6e, 0x6e, 0x65, 0x63, 0x74, 0x69, 0x6f, 0x6e, /* 006c */
    0x3a, 0x20, 0x4b, 0x65, 0x65, 0x70, 0x2d, 0x41, 0x6c, 0x69, 0x76, 0x65, /* 0078 */
    0x0d, 0x0a, 0x0d, 0x0a,                                                 /* 0084 */
};

static enum meta_result host_of(const char *req, char host[FLOWREC_NAME_MAX])
{
    return meta_http_request((const uint8_t *)req, strlen(req), host);
}

Test(meta_http, real_request)
{
    char host[FLOWREC_NAME_MAX];

    cr_assert_eq(meta_http_request(http_get, sizeof(http_get), host), META_OK);
    cr_assert_str_eq(host, "bro.org");
}

/* Every prefix: META_MORE until the Host line is whole (its LF at offset
 * 109), then META_OK with the same host. Never META_NOT. */
Test(meta_http, every_prefix)
{
    char host[FLOWREC_NAME_MAX];
    const uint8_t *lf = memchr(http_get + 100, '\n', sizeof(http_get) - 100);
    size_t host_end = (size_t)(lf - http_get) + 1;

    for (size_t n = 0; n <= sizeof(http_get); n++) {
        enum meta_result r = meta_http_request(http_get, n, host);
        cr_assert_eq(r, n < host_end ? META_MORE : META_OK, "prefix %zu", n);
        cr_assert_str_eq(host, n < host_end ? "" : "bro.org");
    }
}

Test(meta_http, host_forms)
{
    char host[FLOWREC_NAME_MAX];

    cr_assert_eq(host_of("GET / HTTP/1.1\r\nHost: Example.COM:8080\r\n\r\n", host), META_OK);
    cr_assert_str_eq(host, "example.com");
    cr_assert_eq(host_of("GET / HTTP/1.1\r\nhOsT:\t  www.Example.org \t\r\n", host), META_OK);
    cr_assert_str_eq(host, "www.example.org");
    cr_assert_eq(host_of("GET / HTTP/1.1\r\nHost: [2001:DB8::1]:8443\r\n", host), META_OK);
    cr_assert_str_eq(host, "[2001:db8::1]");
    cr_assert_eq(host_of("GET / HTTP/1.1\r\nHost: [2001:db8::1]\r\n", host), META_OK);
    cr_assert_str_eq(host, "[2001:db8::1]");
    cr_assert_eq(host_of("GET / HTTP/1.1\r\nHost: 192.0.2.7:80\r\n", host), META_OK);
    cr_assert_str_eq(host, "192.0.2.7");
    /* A bare LF ends lines too (RFC 9112 §2.2 lets a recipient accept it). */
    cr_assert_eq(host_of("POST /x HTTP/1.0\nHost: a.b\n\n", host), META_OK);
    cr_assert_str_eq(host, "a.b");
    cr_assert_eq(host_of("CONNECT h.example:443 HTTP/1.1\r\nHost: h.example:443\r\n", host),
                 META_OK);
    cr_assert_str_eq(host, "h.example");
    /* Empty value, unprintable bytes. */
    cr_assert_eq(host_of("GET / HTTP/1.1\r\nHost:\r\n", host), META_OK);
    cr_assert_str_eq(host, "");
    cr_assert_eq(host_of("GET / HTTP/1.1\r\nHost: a\x01\x7f" "b\r\n", host), META_OK);
    cr_assert_str_eq(host, "a??b");
}

/* Only a field named exactly Host, at the start of a line, counts. */
Test(meta_http, other_fields_not_host)
{
    char host[FLOWREC_NAME_MAX];

    cr_assert_eq(host_of("GET / HTTP/1.1\r\nX-Forwarded-Host: evil\r\nHosts: no\r\n"
                         "Host : no\r\nHost: yes\r\n", host),
                 META_OK);
    cr_assert_str_eq(host, "yes");
    cr_assert_eq(host_of("GET /?Host: q HTTP/1.1\r\nAccept: */*\r\n\r\n", host), META_OK);
    cr_assert_str_eq(host, "");
    /* After the header section ends, a "Host:" in the body is not a field. */
    cr_assert_eq(host_of("POST / HTTP/1.1\r\nA: b\r\n\r\nHost: body\r\n", host), META_OK);
    cr_assert_str_eq(host, "");
}

Test(meta_http, not_requests)
{
    char host[FLOWREC_NAME_MAX];

    cr_assert_eq(host_of("HTTP/1.1 200 OK\r\n\r\n", host), META_NOT);
    cr_assert_eq(host_of("get / HTTP/1.1\r\n", host), META_NOT);      /* method is case-sensitive */
    cr_assert_eq(host_of("GETX / HTTP/1.1\r\n", host), META_NOT);
    cr_assert_eq(host_of("GET  / HTTP/1.1\r\n", host), META_NOT);     /* two spaces */
    cr_assert_eq(host_of("GET / HTTP/2.0\r\nHost: a\r\n", host), META_NOT);
    cr_assert_eq(host_of("GET /\r\n", host), META_NOT);               /* HTTP/0.9 */
    cr_assert_eq(host_of("SSH-2.0-OpenSSH_9.6\r\n", host), META_NOT);
    cr_assert_eq(meta_http_request(NULL, 0, host), META_NOT);
    cr_assert_eq(meta_http_request((const uint8_t *)"\x16\x03\x01", 3, host), META_NOT);
}

Test(meta_http, incomplete)
{
    char host[FLOWREC_NAME_MAX];

    cr_assert_eq(host_of("", host), META_MORE);
    cr_assert_eq(host_of("DEL", host), META_MORE);
    cr_assert_eq(host_of("OPTIONS", host), META_MORE);
    cr_assert_eq(host_of("GET /very/long/url", host), META_MORE);
    cr_assert_eq(host_of("GET / HTTP/1.1\r\nAccept: x\r\n", host), META_MORE);
    /* A Host line without its end may have lost its tail. */
    cr_assert_eq(host_of("GET / HTTP/1.1\r\nHost: exam", host), META_MORE);
    cr_assert_str_eq(host, "");
}

/* A host longer than a name may be is cut at 255 characters. */
Test(meta_http, long_host_bounded)
{
    static char req[2048];
    char host[FLOWREC_NAME_MAX];
    static const char head[] = "GET / HTTP/1.1\r\nHost: ";
    size_t n = sizeof(head) - 1;

    memcpy(req, head, n);

    memset(req + n, 'h', 1000);
    memcpy(req + n + 1000, "\r\n\r\n", 5);
    cr_assert_eq(host_of(req, host), META_OK);
    cr_assert_eq(strlen(host), 255);
}

/* Deterministic mutations: no crash, outputs printable and lower-case. */
Test(meta_http, mutations)
{
    uint8_t m[sizeof(http_get)];
    char host[FLOWREC_NAME_MAX];
    uint32_t rng = 3;

    for (int round = 0; round < 20000; round++) {
        memcpy(m, http_get, sizeof(m));
        for (int flips = 0; flips < 1 + round % 4; flips++) {
            rng = rng * 1103515245u + 12345u;
            m[(rng >> 8) % sizeof(m)] ^= (uint8_t)(1u << ((rng >> 4) % 8));
        }
        if (meta_http_request(m, sizeof(m), host) == META_OK)
            for (const char *p = host; *p; p++)
                cr_assert(*p >= 0x20 && *p <= 0x7e && !(*p >= 'A' && *p <= 'Z'));
    }
}

static const char *label(uint8_t proto, const char *s)
{
    return meta_app_by_payload(proto, (const uint8_t *)s, strlen(s));
}

Test(meta_app, text_protocols)
{
    cr_assert_str_eq(meta_app_by_payload(6, http_get, sizeof(http_get)), "http");
    cr_assert_str_eq(label(6, "HTTP/1.1 200 OK\r\n"), "http");
    cr_assert_str_eq(label(6, "SSH-2.0-OpenSSH_9.6\r\n"), "ssh");
    cr_assert_str_eq(label(6, "220 mx.example.org ESMTP Postfix\r\n"), "smtp");
    cr_assert_str_eq(label(6, "220-mail.example.net esmtp ready\r\n"), "smtp");
    cr_assert_str_eq(label(6, "EHLO client.example\r\n"), "smtp");
    cr_assert_str_eq(label(6, "220 ProFTPD Server (Debian)\r\n"), "ftp");
    cr_assert_null(label(6, "220 welcome\r\nSMTP later\r\n"));   /* only the first line counts */
    cr_assert_str_eq(label(6, "* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"), "imap");
    cr_assert_str_eq(label(6, "+OK POP3 server ready\r\n"), "pop3");
    cr_assert_null(label(6, "+OK\r\n"));                          /* Redis says this too */
    cr_assert_str_eq(label(6, "INVITE sip:bob@example.com SIP/2.0\r\n"), "sip");
    cr_assert_str_eq(label(6, "OPTIONS sip:bob@example.com SIP/2.0\r\n"), "sip");
    cr_assert_str_eq(label(6, "OPTIONS * HTTP/1.1\r\n"), "http");
    cr_assert_str_eq(label(17, "SIP/2.0 200 OK\r\n"), "sip");
    cr_assert_str_eq(label(17, "M-SEARCH * HTTP/1.1\r\n"), "ssdp");
    cr_assert_null(label(17, "GET / HTTP/1.1\r\n"));              /* HTTP over UDP: no */
    cr_assert_null(label(6, "hello"));
    cr_assert_null(meta_app_by_payload(6, NULL, 0));
    cr_assert_null(meta_app_by_payload(1, http_get, sizeof(http_get)));
}

Test(meta_app, binary_protocols)
{
    /* SMB2 NEGOTIATE: NetBIOS session length, then \xfeSMB. */
    static const uint8_t smb2[] = {0x00, 0x00, 0x00, 0x66, 0xfe, 'S', 'M', 'B', 0x40, 0x00};
    /* RDP: TPKT v3 length 0x13, X.224 length 14, Connection Request 0xe0. */
    static const uint8_t rdp[] = {0x03, 0x00, 0x00, 0x13, 0x0e, 0xe0, 0x00, 0x00};
    /* STUN Binding Request: type 0x0001, length 0, magic cookie, 12-byte id. */
    static const uint8_t stun[20] = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42};
    /* WireGuard handshake initiation: type 1, 3 zero bytes, 148 bytes long. */
    static uint8_t wg[148] = {0x01, 0x00, 0x00, 0x00};

    cr_assert_str_eq(meta_app_by_payload(6, smb2, sizeof(smb2)), "smb");
    cr_assert_str_eq(meta_app_by_payload(6, rdp, sizeof(rdp)), "rdp");
    cr_assert_str_eq(meta_app_by_payload(17, stun, sizeof(stun)), "stun");
    cr_assert_str_eq(meta_app_by_payload(17, wg, sizeof(wg)), "wireguard");
    cr_assert_null(meta_app_by_payload(17, wg, 147));
    cr_assert_str_eq(meta_app_by_payload(6, (const uint8_t *)"\x13" "BitTorrent protocol", 20),
                     "bittorrent");
    /* Prefixes of every signature: no read past the end (sanitizer build). */
    for (size_t n = 0; n < sizeof(wg); n++) {
        (void)meta_app_by_payload(6, smb2, n < sizeof(smb2) ? n : sizeof(smb2));
        (void)meta_app_by_payload(6, rdp, n < sizeof(rdp) ? n : sizeof(rdp));
        (void)meta_app_by_payload(17, stun, n < sizeof(stun) ? n : sizeof(stun));
        (void)meta_app_by_payload(17, wg, n);
        (void)meta_app_by_payload(6, http_get, n < sizeof(http_get) ? n : sizeof(http_get));
    }
}

/* Every label fits the flow record's field. */
Test(meta_app, labels_fit)
{
    for (unsigned p = 0; p < 65536; p++) {
        const char *t = meta_app_by_port(6, 65535, (uint16_t)p);
        const char *u = meta_app_by_port(17, 65535, (uint16_t)p);
        if (t)
            cr_assert_lt(strlen(t), FLOWREC_APP_MAX);
        if (u)
            cr_assert_lt(strlen(u), FLOWREC_APP_MAX);
    }
}
