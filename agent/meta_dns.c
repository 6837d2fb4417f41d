/* meta_dns.c — the first question of a DNS message, and its response code.
 *
 * Enough for the flow record (query name, type, rcode) and for the DNS
 * tunnelling detector, which looks at the names. Non-goals: answer records,
 * EDNS options, DNSSEC; the parser stops after the first question.
 *
 * The whole message is untrusted: the name may be looped with compression
 * pointers, run past the end, or hold any byte. Pointers must go strictly
 * backwards and their number is bounded (META_DNS_MAX_JUMPS), names longer
 * than the 255-octet wire limit are refused, and label bytes outside
 * printable ASCII are shown as '?'. A question that cannot be read whole is
 * META_NOT: DNS over UDP has no later segment, and a TCP query's first
 * segment holds its question in practice, so waiting (META_MORE) would only
 * make the flow table buffer for nothing. */
#include "meta.h"

#include "cursor.h"

#include <string.h>

#define DNS_HEADER_LEN 12
#define DNS_NAME_WIRE_MAX 255 /* RFC 1035 §2.3.4: octets, length bytes included */

/* RFC 1035 §3.1 labels, §4.1.4 compression. The first question itself
 * can hold no valid pointer (nothing precedes it but the header), but the
 * reader is written for a name anywhere in a message, and tested so on the
 * later names of real messages. */
bool meta__dns_name(const uint8_t *msg, size_t msg_len, size_t at, char out[FLOWREC_NAME_MAX],
                    size_t *end)
{
    struct cursor c = cur_make(msg, msg_len);
    size_t wire = 1;          /* octets of the name, the final zero included */
    size_t text = 0;          /* chars written to out */
    size_t pos = at;          /* offset being read */
    size_t floor = at;        /* a pointer must land below this */
    unsigned jumps = 0;
    bool jumped = false;

    for (;;) {
        uint8_t len, lo;
        struct cursor lc;

        c = cur_make(msg, msg_len);
        if (!cur_skip(&c, pos) || !cur_u8(&c, &len))
            return false;
        if ((len & 0xc0) == 0xc0) {
            /* §4.1.4: a pointer to a prior occurrence of a name. Requiring
             * it to land past the header and strictly before where the
             * current run of labels began (the name's start, or the last
             * jump's target) makes every jump go backwards, so no loop can
             * form; the jump bound caps the work anyway. */
            size_t target;
            if (!cur_u8(&c, &lo))
                return false;
            target = (size_t)(len & 0x3f) << 8 | lo;
            if (target >= floor || target < DNS_HEADER_LEN || ++jumps > META_DNS_MAX_JUMPS)
                return false;
            if (!jumped)
                *end = pos + 2;
            jumped = true;
            pos = floor = target;
            continue;
        }
        if (len & 0xc0)
            return false; /* 0x40 and 0x80: extended label types, obsolete (RFC 6891 §5) */
        if (len == 0) {
            if (!jumped)
                *end = pos + 1;
            break;
        }
        wire += 1u + len;
        if (wire > DNS_NAME_WIRE_MAX)
            return false;
        if (!cur_sub(&c, len, &lc))
            return false;
        if (text > 0)
            out[text++] = '.';
        /* wire <= 255 keeps text <= 253 chars, well inside FLOWREC_NAME_MAX. */
        text += meta__copy_printable(out + text, FLOWREC_NAME_MAX - text, lc.p, len, true);
        pos += 1u + len;
    }
    if (text == 0)
        out[text++] = '.';
    out[text] = '\0';
    return true;
}

/* RFC 1035 §4.1.1 header, §4.1.2 question; §4.2.2 for the TCP length
 * prefix.
 *
 *   0  ID | QR Opcode AA TC RD RA Z AD CD RCODE | QDCOUNT | ANCOUNT | NSCOUNT | ARCOUNT
 *  12  QNAME (labels) | QTYPE (16) | QCLASS (16)
 *
 * Returns META_OK with the first question in *out, or META_NOT when the
 * bytes are not a DNS message with a readable first question. */
enum meta_result meta_dns_parse(const uint8_t *data, size_t len, bool tcp, struct dns_info *out)
{
    struct cursor c = cur_make(data, len);
    uint16_t id, flags, qdcount, qtype, qclass;
    const uint8_t *msg;
    size_t msg_len, name_end = 0;
    uint8_t opcode;

    memset(out, 0, sizeof(*out));
    if (data == NULL)
        return META_NOT;
    if (tcp) {
        uint16_t prefix;
        if (!cur_be16(&c, &prefix))
            return META_NOT;
        /* The prefix bounds the message; offsets inside it (pointers) count
         * from the byte after the prefix. Only what was captured is read. */
        cur_limit(&c, prefix);
    }
    msg = c.p;
    msg_len = cur_left(&c);
    if (!cur_be16(&c, &id) || !cur_be16(&c, &flags) || !cur_be16(&c, &qdcount) ||
        !cur_skip(&c, 6))
        return META_NOT;
    opcode = (uint8_t)((flags >> 11) & 0x0f);
    /* Opcodes in use: QUERY 0, IQUERY 1, STATUS 2, NOTIFY 4, UPDATE 5, DSO 6
     * (IANA DNS parameters). Anything else is not DNS, or not worth naming. */
    if (qdcount == 0 || opcode == 3 || opcode > 6)
        return META_NOT;
    if (!meta__dns_name(msg, msg_len, DNS_HEADER_LEN, out->qname, &name_end))
        goto not_dns;
    c = cur_make(msg, msg_len);
    if (!cur_skip(&c, name_end) || !cur_be16(&c, &qtype) || !cur_be16(&c, &qclass))
        goto not_dns;
    (void)qclass;
    out->qtype = qtype;
    out->id = id;
    out->is_response = (flags & 0x8000) != 0;
    out->rcode = (uint8_t)(flags & 0x000f);
    return META_OK;

not_dns:
    memset(out, 0, sizeof(*out));
    return META_NOT;
}
