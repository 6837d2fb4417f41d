/* meta_app.c — application labels for a flow: from its first payload bytes,
 * else from well-known ports; and the string copy every meta_*.c parser uses
 * for untrusted names.
 *
 * Labels are short lowercase strings that fit FLOWREC_APP_MAX. The payload
 * checks are signatures of a few bytes, deliberately conservative: a wrong
 * label is worse than none, because the port table still answers. Non-goals:
 * deep inspection, protocols that need state across packets. */
#include "meta.h"

#include "cursor.h"

#include <string.h>

size_t meta__copy_printable(char *dst, size_t cap, const uint8_t *src, size_t n, bool lower)
{
    size_t i;

    if (cap == 0)
        return 0;
    if (n > cap - 1)
        n = cap - 1;
    for (i = 0; i < n; i++) {
        uint8_t ch = src[i];
        if (ch < 0x20 || ch > 0x7e)
            ch = '?';
        else if (lower && ch >= 'A' && ch <= 'Z')
            ch = (uint8_t)(ch - 'A' + 'a');
        dst[i] = (char)ch;
    }
    dst[n] = '\0';
    return n;
}

/* The byte `off` positions into c, or -1 past the end. */
static int peek(const struct cursor *c, size_t off)
{
    uint8_t v;
    return cur_peek_u8(c, off, &v) ? v : -1;
}

/* Does c start with the ASCII string s? Inlined, so that the first byte,
 * checked alone, is one comparison with a constant: most payloads match no
 * signature, and this runs dozens of times on each of a flow's first
 * packets. */
static inline __attribute__((always_inline)) bool starts_with(const struct cursor *c,
                                                              const char *s)
{
    if (!cur_has(c, 1) || c->p[0] != (uint8_t)s[0])
        return false;
    size_t n = strlen(s);
    return cur_has(c, n) && memcmp(c->p, s, n) == 0;
}

/* Does the first line of c (up to CR or LF, within `max` bytes) contain the
 * upper-case ASCII word w, compared without case? */
static bool first_line_has(const struct cursor *c, size_t max, const char *w)
{
    size_t wn = strlen(w);

    for (size_t i = 0; i < max; i++) {
        int ch = peek(c, i);
        size_t j;
        if (ch < 0 || ch == '\r' || ch == '\n')
            return false;
        for (j = 0; j < wn; j++) {
            int x = peek(c, i + j);
            if (x >= 'a' && x <= 'z')
                x = x - 'a' + 'A';
            if (x != (unsigned char)w[j])
                break;
        }
        if (j == wn)
            return true;
    }
    return false;
}

/* HTTP/1.x request methods (RFC 9110 §9), each followed by a space. */
static const char *const http_methods[] = {
    "GET ", "POST ", "HEAD ", "PUT ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE ",
};

static bool is_http(const struct cursor *c)
{
    for (size_t i = 0; i < sizeof(http_methods) / sizeof(http_methods[0]); i++)
        if (starts_with(c, http_methods[i]))
            return true;
    return starts_with(c, "HTTP/1.");
}

/* SIP (RFC 3261 §7.1): a status line "SIP/2.0 ...", or a request of a
 * common method with a sip: or sips: URI. */
static bool is_sip(const struct cursor *c)
{
    static const char *const req[] = {"INVITE sip",   "REGISTER sip", "OPTIONS sip",
                                      "ACK sip",      "BYE sip",      "CANCEL sip",
                                      "SUBSCRIBE sip", "NOTIFY sip",  "MESSAGE sip"};
    if (starts_with(c, "SIP/2.0 "))
        return true;
    for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++)
        if (starts_with(c, req[i]))
            return true;
    return false;
}

static const char *label_tcp(const struct cursor *c)
{
    /* RFC 4253 §4.2: the identification string opens both directions. */
    if (starts_with(c, "SSH-"))
        return "ssh";
    /* Before HTTP: "OPTIONS sip:..." is SIP, though "OPTIONS " starts both. */
    if (is_sip(c))
        return "sip";
    if (is_http(c))
        return "http";
    /* RFC 8446 §5.1: a handshake record, legacy version 3.0 to 3.4. */
    if (peek(c, 0) == 22 && peek(c, 1) == 3 && peek(c, 2) >= 0 && peek(c, 2) <= 4)
        return "tls";
    /* RFC 5321 §4.2: greeting "220 <domain> ESMTP ...". FTP (RFC 959) also
     * greets with 220, so the line must name the protocol. */
    if (starts_with(c, "220 ") || starts_with(c, "220-")) {
        if (first_line_has(c, 256, "SMTP"))
            return "smtp";
        if (first_line_has(c, 256, "FTP"))
            return "ftp";
        return NULL;
    }
    if (starts_with(c, "EHLO ") || starts_with(c, "HELO "))
        return "smtp";
    /* RFC 9051 §7.1.1: greeting "* OK [CAPABILITY IMAP4rev1 ...]". */
    if (starts_with(c, "* OK ") && first_line_has(c, 256, "IMAP"))
        return "imap";
    /* RFC 1939 §4: greeting "+OK ..."; Redis answers "+OK" as well, so the
     * line must say POP. */
    if (starts_with(c, "+OK ") && first_line_has(c, 256, "POP"))
        return "pop3";
    /* SMB over TCP (MS-SMB2 §2.1): a zero byte and a 3-byte length, then
     * "\xffSMB" (SMB1) or "\xfeSMB" (SMB2/3). */
    if (peek(c, 0) == 0 && (peek(c, 4) == 0xff || peek(c, 4) == 0xfe) && peek(c, 5) == 'S' &&
        peek(c, 6) == 'M' && peek(c, 7) == 'B')
        return "smb";
    /* RDP: a TPKT header (RFC 1006 §6, version 3), then an X.224 Connection
     * Request TPDU (code 0xe0, ITU-T X.224 §13.3). */
    if (peek(c, 0) == 3 && peek(c, 1) == 0 && peek(c, 4) >= 6 && peek(c, 5) == 0xe0)
        return "rdp";
    if (starts_with(c, "\x13" "BitTorrent protocol"))
        return "bittorrent";
    return NULL;
}

static const char *label_udp(const struct cursor *c)
{
    size_t len = cur_left(c);
    int type = peek(c, 0);

    if (meta_is_quic_long_header(c->p, len))
        return "quic";
    /* WireGuard (whitepaper §5.4): message type 1-4 and three reserved zero
     * bytes, with the fixed sizes of the handshake messages (148, 92, 64)
     * or a transport message: 16 header bytes and a 16-byte-padded payload
     * with its 16-byte tag. */
    if (type >= 1 && type <= 4 && peek(c, 1) == 0 && peek(c, 2) == 0 && peek(c, 3) == 0) {
        if ((type == 1 && len == 148) || (type == 2 && len == 92) || (type == 3 && len == 64) ||
            (type == 4 && len >= 32 && len % 16 == 0))
            return "wireguard";
    }
    /* RFC 8489 §5: STUN starts with two zero bits and carries the magic
     * cookie 0x2112a442 at offset 4. */
    if (type >= 0 && (type & 0xc0) == 0 && peek(c, 4) == 0x21 && peek(c, 5) == 0x12 &&
        peek(c, 6) == 0xa4 && peek(c, 7) == 0x42)
        return "stun";
    /* RFC 9147 §4: a DTLS handshake record, version 0xfeff, 0xfefd or 0xfefc. */
    if (type == 22 && peek(c, 1) == 0xfe && peek(c, 2) >= 0xfc)
        return "dtls";
    /* SSDP (UPnP Device Architecture 2.0 §1.3): HTTP over UDP multicast. */
    if (starts_with(c, "M-SEARCH * HTTP/1.1") || starts_with(c, "NOTIFY * HTTP/1.1"))
        return "ssdp";
    if (is_sip(c))
        return "sip";
    return NULL;
}

const char *meta_app_by_payload(uint8_t proto, const uint8_t *data, size_t len)
{
    struct cursor c;

    if (data == NULL || len == 0)
        return NULL;
    c = cur_make(data, len);
    if (proto == 6)
        return label_tcp(&c);
    if (proto == 17)
        return label_udp(&c);
    return NULL;
}

/* Which transports a port entry applies to. */
#define ON_TCP 1u
#define ON_UDP 2u

struct port_label {
    uint16_t port;
    uint8_t on;        /* ON_TCP | ON_UDP */
    const char *label;
};

/* IANA service names, shortened to what an analyst reads at a glance. Sorted
 * by port then transport; one port may carry different labels per transport
 * (443: HTTPS over TCP, QUIC over UDP). */
static const struct port_label port_table[] = {
    {20, ON_TCP, "ftp-data"},
    {21, ON_TCP, "ftp"},
    {22, ON_TCP, "ssh"},
    {23, ON_TCP, "telnet"},
    {25, ON_TCP, "smtp"},
    {53, ON_TCP | ON_UDP, "dns"},
    {67, ON_UDP, "dhcp"},
    {68, ON_UDP, "dhcp"},
    {69, ON_UDP, "tftp"},
    {80, ON_TCP, "http"},
    {88, ON_TCP | ON_UDP, "kerberos"},
    {110, ON_TCP, "pop3"},
    {123, ON_UDP, "ntp"},
    {137, ON_UDP, "netbios"},
    {138, ON_UDP, "netbios"},
    {139, ON_TCP, "netbios"},
    {143, ON_TCP, "imap"},
    {161, ON_UDP, "snmp"},
    {162, ON_UDP, "snmp"},
    {179, ON_TCP, "bgp"},
    {389, ON_TCP | ON_UDP, "ldap"},
    {443, ON_TCP, "https"},
    {443, ON_UDP, "quic"},
    {445, ON_TCP, "smb"},
    {465, ON_TCP, "smtps"},
    {500, ON_UDP, "isakmp"},
    {514, ON_UDP, "syslog"},
    {546, ON_UDP, "dhcpv6"},
    {547, ON_UDP, "dhcpv6"},
    {587, ON_TCP, "smtp"},
    {636, ON_TCP, "ldaps"},
    {853, ON_TCP, "dot"},
    {853, ON_UDP, "doq"},
    {993, ON_TCP, "imaps"},
    {995, ON_TCP, "pop3s"},
    {1194, ON_TCP | ON_UDP, "openvpn"},
    {1812, ON_UDP, "radius"},
    {1813, ON_UDP, "radius"},
    {1883, ON_TCP, "mqtt"},
    {1900, ON_UDP, "ssdp"},
    {2049, ON_TCP | ON_UDP, "nfs"},
    {3306, ON_TCP, "mysql"},
    {3389, ON_TCP | ON_UDP, "rdp"},
    {3478, ON_TCP | ON_UDP, "stun"},
    {4500, ON_UDP, "ipsec-nat-t"},
    {4789, ON_UDP, "vxlan"},
    {5060, ON_TCP | ON_UDP, "sip"},
    {5061, ON_TCP, "sips"},
    {5353, ON_UDP, "mdns"},
    {5355, ON_TCP | ON_UDP, "llmnr"},
    {5432, ON_TCP, "postgresql"},
    {5672, ON_TCP, "amqp"},
    {6081, ON_UDP, "geneve"},
    {6379, ON_TCP, "redis"},
    {8080, ON_TCP, "http-alt"},
    {8443, ON_TCP, "https-alt"},
    {8883, ON_TCP, "mqtts"},
    {9092, ON_TCP, "kafka"},
    {11211, ON_TCP, "memcached"},
    {27017, ON_TCP, "mongodb"},
    {51820, ON_UDP, "wireguard"},
};

static const char *port_lookup(uint8_t on, uint16_t port)
{
    size_t lo = 0, hi = sizeof(port_table) / sizeof(port_table[0]);

    /* Binary search for the first entry with this port, then scan its
     * (at most two) transport variants. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (port_table[mid].port < port)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < sizeof(port_table) / sizeof(port_table[0]) && port_table[lo].port == port; lo++)
        if (port_table[lo].on & on)
            return port_table[lo].label;
    return NULL;
}

/* When both ports are known the lower one names the service: clients pick
 * ephemeral ports from the high range (Linux 32768-60999, IANA 49152-65535),
 * where a few services live too (WireGuard's 51820), so a flow seen
 * responder-first (sport 53, dport 51820) is still labelled "dns". With
 * only one known, it wins whichever side it is on. */
const char *meta_app_by_port(uint8_t proto, uint16_t sport, uint16_t dport)
{
    uint8_t on;
    const char *ls, *ld;

    if (proto == 6)
        on = ON_TCP;
    else if (proto == 17)
        on = ON_UDP;
    else
        return NULL;
    ld = port_lookup(on, dport);
    ls = port_lookup(on, sport);
    if (ld != NULL && ls != NULL)
        return sport < dport ? ls : ld;
    return ld != NULL ? ld : ls;
}
