/* envelope.c — packing Envelopes, and decoding them from untrusted peers.
 *
 * Decoding runs in three steps, each cheaper than the damage it prevents:
 *  1. size: over TRANSPORT_MAX_MSG is refused unread (the socket's
 *     ZMQ_MAXMSGSIZE already drops it; this covers files and other paths);
 *  2. a walk over the protobuf wire format, guided by the descriptors
 *     protoc-c generated, that bounds what protobuf-c would allocate:
 *     elements per repeated field, nesting, and an estimate of the bytes
 *     (each message struct, string, array slot, unknown field and
 *     protobuf-c's per-field scratch, with malloc's overhead). Without it,
 *     16 MiB of 2-byte empty records would become gigabytes;
 *  3. protobuf-c's unpack, then field-by-field validation of the result
 *     against the ranges the agent can produce (transport.h lists them).
 * The reason for a refusal names the field ("batch.records[3].src_ip: ...").
 *
 * Wire format (protobuf encoding): each field is a varint key
 * (field number << 3 | wire type) then, by wire type, a varint (0), 8
 * bytes (1), a varint length and that many bytes (2), or 4 bytes (5).
 * Wire types 3 and 4 (groups) are not in proto3 and protobuf-c refuses them.
 *
 * Non-goals: semantic checks that need state (sequence order, whether the
 * batch's agent matches the sender: the aggregator does those). */
#include "transport.h"

#include "cursor.h"
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* String bounds (bytes), see transport.h for the classes. */
#define ENV_AGENT_MAX 64     /* agent names: as key names */
#define ENV_LABEL_MAX 64     /* state, app, direction, tunnel, JA4 */
#define ENV_NAME_MAX 255     /* DNS name (RFC 1035 limit), SNI, HTTP host */
#define ENV_ID_MAX 64        /* capture ids */
#define ENV_FILTER_MAX 4096  /* BPF filter text */
#define ENV_ORDERED_BY_MAX 128
#define ENV_KIND_MAX 32      /* query kind */
#define ENV_ARG_KEY_MAX 64
#define ENV_ARG_VALUE_MAX 1024
#define ENV_STATE_MAX 32     /* capture state */
#define ENV_FILE_NAME_MAX 255
#define ENV_TEXT_MAX 4096    /* errors, cells */
#define ENV_SNAPLEN_MAX 262144u /* libpcap's MAXIMUM_SNAPLEN */
#define ENV_MIN_IP_PACKET 20 /* the shortest IP header (IPv4 without options) */
#define ENV_FUTURE_NS (INT64_C(86400) * INT64_C(1000000000)) /* clocks may run ahead a day */

/* protobuf-c's costs, per allocation and per scanned field occurrence:
 * malloc rounds to 16 bytes and keeps a header; unpack records every field
 * occurrence of a message in a scratch array of ~32-byte entries before it
 * builds the message, and frees that array when the message is done. */
#define SCAN_ALLOC_OVERHEAD 16u
#define SCAN_OCCURRENCE_COST 32u
#define SCAN_SLOT_COST 8u /* one element of a repeated field's array */
#define SCAN_MAX_FIELDS 64 /* per message; the widest (FlowRecord) has 38 */

_Static_assert(ENV_AGENT_MAX == KEY_NAME_MAX, "agent names are key names");

/* ---- packing ------------------------------------------------------------ */

int envelope_pack(Vigil__Envelope *env, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    env->schema_version = VIGIL__SCHEMA_VERSION__SCHEMA_V1;
    size_t size = vigil__envelope__get_packed_size(env);
    if (size > TRANSPORT_MAX_MSG)
        return VIGIL_ERANGE;
    uint8_t *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return VIGIL_ENOMEM;
    size_t n = vigil__envelope__pack(env, buf);
    if (n != size) { /* protobuf-c's two passes disagree: never seen */
        free(buf);
        return VIGIL_EIO;
    }
    *out = buf;
    *len = n;
    return 0;
}

void envelope_free(Vigil__Envelope *env)
{
    if (env)
        vigil__envelope__free_unpacked(env, NULL);
}

const char *envelope_error_name(enum envelope_error e)
{
    static const char *const names[ENV_ERROR_COUNT] = {
        [ENV_OK] = "ok",
        [ENV_TOO_LARGE] = "too_large",
        [ENV_UNDECODABLE] = "undecodable",
        [ENV_BAD_VERSION] = "bad_version",
        [ENV_NO_BODY] = "no_body",
        [ENV_INVALID] = "invalid",
    };
    return (unsigned)e < ENV_ERROR_COUNT ? names[e] : "unknown";
}

/* ---- step 2: the bounded wire walk -------------------------------------- */

struct scan {
    uint64_t budget; /* estimated bytes the decoded message keeps */
    char *why;
    size_t whylen;
};

__attribute__((format(printf, 3, 4))) static enum envelope_error
scan_fail(struct scan *s, enum envelope_error e, const char *fmt, ...)
{
    if (s->why && s->whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->why, s->whylen, fmt, ap);
        va_end(ap);
    }
    return e;
}

static uint64_t alloc_cost(uint64_t n)
{
    return ((n + 15) & ~(uint64_t)15) + SCAN_ALLOC_OVERHEAD;
}

/* A varint of at most 10 bytes (64 bits). */
static bool read_varint(struct cursor *c, uint64_t *v)
{
    uint64_t r = 0;
    for (unsigned i = 0; i < 10; i++) {
        uint8_t b;
        if (!cur_u8(c, &b))
            return false;
        r |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

static bool is_varint_type(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_BOOL:
    case PROTOBUF_C_TYPE_ENUM: return true;
    default: return false;
    }
}

/* Elements in a packed repeated scalar field of n bytes. */
static uint64_t packed_elements(ProtobufCType t, const uint8_t *p, size_t n)
{
    switch (t) {
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FLOAT: return n / 4;
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return n / 8;
    default: break;
    }
    uint64_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += !(p[i] & 0x80); /* one varint ends at each byte without the high bit */
    return k;
}

/* Walks one message of type desc. s->budget grows by what the decoded
 * message keeps; *scratch is the peak of protobuf-c's temporary per-field
 * records while decoding it (a message's own are alive while its children
 * are decoded, and freed when it is done). Depth is bounded for a future
 * schema with recursive messages; the present one nests 4 deep. */
static enum envelope_error scan_message(struct scan *s, const ProtobufCMessageDescriptor *desc,
                                        const uint8_t *data, size_t len, unsigned depth,
                                        uint64_t *scratch)
{
    uint32_t counts[SCAN_MAX_FIELDS] = {0};
    struct cursor c = cur_make(data, len);
    uint64_t occurrences = 0, child_peak = 0;

    if (depth > TRANSPORT_MAX_DEPTH)
        return scan_fail(s, ENV_INVALID, "%s: nested deeper than %u", desc->short_name,
                         TRANSPORT_MAX_DEPTH);
    s->budget += alloc_cost(desc->sizeof_message);

    while (cur_left(&c) > 0) {
        const uint8_t *field_start = c.p;
        uint64_t key, skip;
        if (!read_varint(&c, &key))
            return scan_fail(s, ENV_UNDECODABLE, "%s: truncated field key", desc->short_name);
        uint64_t number = key >> 3;
        unsigned wt = (unsigned)(key & 7);
        if (number == 0 || number > 0x1fffffff)
            return scan_fail(s, ENV_UNDECODABLE, "%s: field number %llu out of range",
                             desc->short_name, (unsigned long long)number);

        const uint8_t *payload;
        size_t plen = 0;
        switch (wt) {
        case 0:
            if (!read_varint(&c, &skip))
                return scan_fail(s, ENV_UNDECODABLE, "%s: field %llu: truncated varint",
                                 desc->short_name, (unsigned long long)number);
            break;
        case 1:
        case 5:
            if (!cur_skip(&c, wt == 1 ? 8 : 4))
                return scan_fail(s, ENV_UNDECODABLE, "%s: field %llu: truncated",
                                 desc->short_name, (unsigned long long)number);
            break;
        case 2:
            if (!read_varint(&c, &skip) || skip > cur_left(&c))
                return scan_fail(s, ENV_UNDECODABLE, "%s: field %llu: length past the end",
                                 desc->short_name, (unsigned long long)number);
            plen = (size_t)skip;
            break;
        default:
            return scan_fail(s, ENV_UNDECODABLE, "%s: field %llu: wire type %u not supported",
                             desc->short_name, (unsigned long long)number, wt);
        }
        payload = c.p;
        if (wt == 2)
            c.p += plen;
        occurrences++;

        const ProtobufCFieldDescriptor *fd =
            protobuf_c_message_descriptor_get_field(desc, (unsigned)number);
        if (fd == NULL) {
            /* kept by protobuf-c as an unknown field: a slot plus a copy */
            s->budget += sizeof(ProtobufCMessageUnknownField) +
                         alloc_cost((uint64_t)(c.p - field_start));
        } else {
            size_t idx = (size_t)(fd - desc->fields);
            uint64_t elements = 1;
            if (fd->label == PROTOBUF_C_LABEL_REPEATED && wt == 2 &&
                fd->type != PROTOBUF_C_TYPE_MESSAGE && fd->type != PROTOBUF_C_TYPE_STRING &&
                fd->type != PROTOBUF_C_TYPE_BYTES)
                elements = packed_elements(fd->type, payload, plen);
            if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
                s->budget += elements * SCAN_SLOT_COST;
                if (idx < SCAN_MAX_FIELDS) {
                    uint64_t total = counts[idx] + elements;
                    if (total > TRANSPORT_MAX_RECORDS)
                        return scan_fail(s, ENV_INVALID, "%s.%s: more than %u elements",
                                         desc->short_name, fd->name, TRANSPORT_MAX_RECORDS);
                    counts[idx] = (uint32_t)total;
                }
            }
            if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (wt != 2)
                    return scan_fail(s, ENV_UNDECODABLE, "%s.%s: not length-delimited",
                                     desc->short_name, fd->name);
                uint64_t child = 0;
                enum envelope_error e =
                    scan_message(s, fd->descriptor, payload, plen, depth + 1, &child);
                if (e != ENV_OK)
                    return e;
                if (child > child_peak)
                    child_peak = child;
            } else if ((fd->type == PROTOBUF_C_TYPE_STRING || fd->type == PROTOBUF_C_TYPE_BYTES) &&
                       wt == 2) {
                s->budget += alloc_cost((uint64_t)plen + 1);
            } else if (!is_varint_type(fd->type) && wt == 2) {
                s->budget += alloc_cost(plen);
            }
        }
        if (s->budget + occurrences * SCAN_OCCURRENCE_COST > TRANSPORT_MAX_DECODED)
            return scan_fail(s, ENV_INVALID, "decoding would allocate more than %u MiB",
                             TRANSPORT_MAX_DECODED >> 20);
    }
    *scratch = occurrences * SCAN_OCCURRENCE_COST + child_peak;
    return ENV_OK;
}

/* ---- step 3: validation of the decoded message -------------------------- */

struct vctx {
    char *why;
    size_t whylen;
    int64_t max_ns; /* now + a day: later timestamps are refused */
};

__attribute__((format(printf, 4, 5))) static bool bad(struct vctx *v, const char *where,
                                                      const char *field, const char *fmt, ...)
{
    if (v->why && v->whylen) {
        int n = snprintf(v->why, v->whylen, "%s%s%s: ", where, *where && *field ? "." : "",
                         field);
        if (n >= 0 && (size_t)n < v->whylen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(v->why + n, v->whylen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return false;
}

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

/* token: printable ASCII, 0x20..0x7e (or 0x21..0x7e without spaces). */
static bool check_token(struct vctx *v, const char *where, const char *field, const char *s,
                        size_t min, size_t max, bool spaces)
{
    s = str_or_empty(s);
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return bad(v, where, field, "longer than %zu bytes", max);
    if (n < min)
        return bad(v, where, field, n ? "shorter than %zu bytes" : "empty (needs %zu+ bytes)",
                   min);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < (spaces ? 0x20 : 0x21) || ch > 0x7e)
            return bad(v, where, field, "byte 0x%02x at offset %zu is not printable ASCII%s", ch,
                       i, spaces ? "" : " (spaces not allowed)");
    }
    return true;
}

/* Length of the valid UTF-8 sequence at s[0..n), 0 if invalid (overlong,
 * surrogate, past U+10FFFF, truncated). */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        *cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        *cp = c & 0x0f;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        *cp = c & 0x07;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        if (c == 0xf4)
            hi = 0x8f; /* past U+10FFFF */
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        unsigned char cc = s[i];
        if (cc < (i == 1 ? lo : 0x80) || cc > (i == 1 ? hi : 0xbf))
            return 0;
        *cp = (*cp << 6) | (cc & 0x3f);
    }
    return len;
}

/* text: valid UTF-8 without control characters (C0, DEL, C1). */
static bool check_text(struct vctx *v, const char *where, const char *field, const char *s,
                       size_t min, size_t max)
{
    s = str_or_empty(s);
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return bad(v, where, field, "longer than %zu bytes", max);
    if (n < min)
        return bad(v, where, field, "empty");
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = utf8_seq(u + i, n - i, &cp);
        if (k == 0)
            return bad(v, where, field, "invalid UTF-8 at offset %zu", i);
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            return bad(v, where, field, "control character U+%04X at offset %zu", (unsigned)cp,
                       i);
        i += k;
    }
    return true;
}

static bool check_time(struct vctx *v, const char *where, const char *field, int64_t ns)
{
    if (ns < 0)
        return bad(v, where, field, "negative (%lld)", (long long)ns);
    if (ns > v->max_ns)
        return bad(v, where, field, "more than a day in the future");
    return true;
}

static bool check_u32_max(struct vctx *v, const char *where, const char *field, uint32_t x,
                          uint32_t max)
{
    if (x > max)
        return bad(v, where, field, "%u is over %u", x, max);
    return true;
}

/* bytes >= 20 x packets: every counted packet is a whole IP packet. */
static bool check_volume(struct vctx *v, const char *where, const char *field, uint64_t pkts,
                         uint64_t bytes)
{
    if (pkts > UINT64_MAX / ENV_MIN_IP_PACKET || bytes < pkts * ENV_MIN_IP_PACKET)
        return bad(v, where, field, "%llu bytes for %llu packets (IP packets are 20+ bytes)",
                   (unsigned long long)bytes, (unsigned long long)pkts);
    return true;
}

static bool check_record(struct vctx *v, const char *w, const Vigil__FlowRecord *r)
{
    if (r->src_ip.len != 4 && r->src_ip.len != 16)
        return bad(v, w, "src_ip", "%zu bytes (want 4 or 16)", r->src_ip.len);
    if (r->dst_ip.len != 4 && r->dst_ip.len != 16)
        return bad(v, w, "dst_ip", "%zu bytes (want 4 or 16)", r->dst_ip.len);
    if (r->src_ip.len != r->dst_ip.len)
        return bad(v, w, "dst_ip", "IPv%d source with an IPv%d destination",
                   r->src_ip.len == 4 ? 4 : 6, r->dst_ip.len == 4 ? 4 : 6);
    if (!check_u32_max(v, w, "src_port", r->src_port, 65535) ||
        !check_u32_max(v, w, "dst_port", r->dst_port, 65535) ||
        !check_u32_max(v, w, "proto", r->proto, 255) ||
        !check_u32_max(v, w, "vlan", r->vlan, 4095) ||
        !check_u32_max(v, w, "icmp_type", r->icmp_type, 255) ||
        !check_u32_max(v, w, "icmp_code", r->icmp_code, 255) ||
        !check_u32_max(v, w, "tcp_flags_fwd", r->tcp_flags_fwd, 255) ||
        !check_u32_max(v, w, "tcp_flags_rev", r->tcp_flags_rev, 255) ||
        !check_u32_max(v, w, "dns_qtype", r->dns_qtype, 65535) ||
        !check_u32_max(v, w, "dns_rcode", r->dns_rcode, 15))
        return false;
    if ((int)r->end_reason < VIGIL__END_REASON__END_IDLE ||
        (int)r->end_reason > VIGIL__END_REASON__END_SHUTDOWN)
        return bad(v, w, "end_reason", "unknown value %d", (int)r->end_reason);
    if (!check_time(v, w, "start_ns", r->start_ns) || !check_time(v, w, "end_ns", r->end_ns))
        return false;
    if (r->end_ns < r->start_ns)
        return bad(v, w, "end_ns", "before start_ns");
    if (!check_volume(v, w, "bytes_fwd", r->pkts_fwd, r->bytes_fwd) ||
        !check_volume(v, w, "bytes_rev", r->pkts_rev, r->bytes_rev))
        return false;
    return check_token(v, w, "tunnel", r->tunnel, 0, ENV_LABEL_MAX, true) &&
           check_token(v, w, "state", r->state, 0, ENV_LABEL_MAX, true) &&
           check_token(v, w, "direction", r->direction, 0, ENV_LABEL_MAX, true) &&
           check_token(v, w, "app", r->app, 0, ENV_LABEL_MAX, true) &&
           check_token(v, w, "ja4", r->ja4, 0, ENV_LABEL_MAX, true) &&
           check_token(v, w, "dns_qname", r->dns_qname, 0, ENV_NAME_MAX, true) &&
           check_token(v, w, "tls_sni", r->tls_sni, 0, ENV_NAME_MAX, true) &&
           check_token(v, w, "http_host", r->http_host, 0, ENV_NAME_MAX, true);
}

static bool check_counters(struct vctx *v, const char *w, const Vigil__AgentCounters *c)
{
    return c == NULL || check_time(v, w, "counters.started_ns", c->started_ns);
}

static bool check_batch(struct vctx *v, const Vigil__FlowBatch *b)
{
    const char *w = "batch";
    if (!check_token(v, w, "agent", b->agent, 1, ENV_AGENT_MAX, false))
        return false;
    if (b->seq < 1)
        return bad(v, w, "seq", "0 (sequences start at 1)");
    if (b->n_records > TRANSPORT_MAX_RECORDS)
        return bad(v, w, "records", "%zu (at most %u)", b->n_records, TRANSPORT_MAX_RECORDS);
    if (!check_time(v, w, "sent_ns", b->sent_ns) || !check_counters(v, w, b->counters))
        return false;
    for (size_t i = 0; i < b->n_records; i++) {
        char where[48];
        snprintf(where, sizeof where, "batch.records[%zu]", i);
        if (b->records[i] == NULL)
            return bad(v, where, "", "missing");
        if (!check_record(v, where, b->records[i]))
            return false;
    }
    return true;
}

static bool check_command(struct vctx *v, const Vigil__Command *c)
{
    switch (c->kind_case) {
    case VIGIL__COMMAND__KIND_CAPTURE_START: {
        const Vigil__CaptureStart *s = c->capture_start;
        const char *w = "command.capture_start";
        if (s == NULL)
            return bad(v, "command", "capture_start", "missing");
        if (!check_token(v, w, "capture_id", s->capture_id, 1, ENV_ID_MAX, false) ||
            !check_token(v, w, "filter", s->filter, 0, ENV_FILTER_MAX, true) ||
            !check_token(v, w, "ordered_by", s->ordered_by, 0, ENV_ORDERED_BY_MAX, true) ||
            !check_u32_max(v, w, "snaplen", s->snaplen, ENV_SNAPLEN_MAX))
            return false;
        if (s->duration_ns < 0)
            return bad(v, w, "duration_ns", "negative");
        if (s->expires_ns < 0)
            return bad(v, w, "expires_ns", "negative");
        return true;
    }
    case VIGIL__COMMAND__KIND_CAPTURE_STOP:
        if (c->capture_stop == NULL)
            return bad(v, "command", "capture_stop", "missing");
        return check_token(v, "command.capture_stop", "capture_id", c->capture_stop->capture_id,
                           1, ENV_ID_MAX, false);
    default: return bad(v, "command", "kind", "not set (or unknown)");
    }
}

static bool is_hex_lower(const char *s)
{
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

static bool check_progress(struct vctx *v, const char *w, const Vigil__CaptureProgress *p)
{
    if (!check_token(v, w, "capture_id", p->capture_id, 1, ENV_ID_MAX, false) ||
        !check_token(v, w, "state", p->state, 1, ENV_STATE_MAX, false) ||
        !check_text(v, w, "error", p->error, 0, ENV_TEXT_MAX))
        return false;
    if (p->n_files > TRANSPORT_MAX_FILES)
        return bad(v, w, "files", "%zu (at most %u)", p->n_files, TRANSPORT_MAX_FILES);
    for (size_t i = 0; i < p->n_files; i++) {
        char where[80];
        const Vigil__CaptureFile *f = p->files[i];
        snprintf(where, sizeof where, "%s.files[%zu]", w, i);
        if (f == NULL)
            return bad(v, where, "", "missing");
        if (!check_text(v, where, "name", f->name, 1, ENV_FILE_NAME_MAX))
            return false;
        if (strchr(f->name, '/') || strcmp(f->name, ".") == 0 || strcmp(f->name, "..") == 0)
            return bad(v, where, "name", "not a plain file name");
        const char *h = str_or_empty(f->sha256);
        if (*h && (strnlen(h, 65) != 64 || !is_hex_lower(h)))
            return bad(v, where, "sha256", "not 64 lower-case hex digits");
    }
    return true;
}

static bool check_status(struct vctx *v, const Vigil__AgentStatus *s)
{
    if (!check_token(v, "status", "agent", s->agent, 1, ENV_AGENT_MAX, false) ||
        !check_counters(v, "status", s->counters))
        return false;
    if (s->n_captures > TRANSPORT_MAX_CAPTURES)
        return bad(v, "status", "captures", "%zu (at most %u)", s->n_captures,
                   TRANSPORT_MAX_CAPTURES);
    for (size_t i = 0; i < s->n_captures; i++) {
        char where[48];
        snprintf(where, sizeof where, "status.captures[%zu]", i);
        if (s->captures[i] == NULL)
            return bad(v, where, "", "missing");
        if (!check_progress(v, where, s->captures[i]))
            return false;
    }
    return true;
}

static bool check_query(struct vctx *v, const Vigil__QueryRequest *q)
{
    if (!check_token(v, "query", "kind", q->kind, 1, ENV_KIND_MAX, false))
        return false;
    if (q->n_args > TRANSPORT_MAX_QUERY_ARGS)
        return bad(v, "query", "args", "%zu (at most %u)", q->n_args, TRANSPORT_MAX_QUERY_ARGS);
    for (size_t i = 0; i < q->n_args; i++) {
        char where[48];
        const Vigil__QueryRequest__ArgsEntry *a = q->args[i];
        snprintf(where, sizeof where, "query.args[%zu]", i);
        if (a == NULL)
            return bad(v, where, "", "missing");
        if (!check_token(v, where, "key", a->key, 1, ENV_ARG_KEY_MAX, false) ||
            !check_text(v, where, "value", a->value, 0, ENV_ARG_VALUE_MAX))
            return false;
        for (size_t j = 0; j < i; j++)
            if (strcmp(q->args[j]->key, a->key) == 0)
                return bad(v, where, "key", "\"%s\" given twice", a->key);
    }
    return true;
}

static bool check_response(struct vctx *v, const Vigil__QueryResponse *r)
{
    if (!check_text(v, "response", "error", r->error, 0, ENV_TEXT_MAX))
        return false;
    if (r->n_columns > TRANSPORT_MAX_COLUMNS)
        return bad(v, "response", "columns", "%zu (at most %u)", r->n_columns,
                   TRANSPORT_MAX_COLUMNS);
    for (size_t i = 0; i < r->n_columns; i++) {
        char where[48];
        snprintf(where, sizeof where, "response.columns[%zu]", i);
        if (!check_text(v, where, "", r->columns[i], 0, ENV_NAME_MAX))
            return false;
    }
    if (r->n_rows > TRANSPORT_MAX_RECORDS)
        return bad(v, "response", "rows", "%zu (at most %u)", r->n_rows, TRANSPORT_MAX_RECORDS);
    for (size_t i = 0; i < r->n_rows; i++) {
        char where[48];
        const Vigil__Row *row = r->rows[i];
        snprintf(where, sizeof where, "response.rows[%zu]", i);
        if (row == NULL)
            return bad(v, where, "", "missing");
        if (row->n_cells > TRANSPORT_MAX_COLUMNS)
            return bad(v, where, "cells", "%zu (at most %u)", row->n_cells,
                       TRANSPORT_MAX_COLUMNS);
        for (size_t j = 0; j < row->n_cells; j++) {
            char cw[64];
            snprintf(cw, sizeof cw, "response.rows[%zu].cells[%zu]", i, j);
            if (!check_text(v, cw, "", row->cells[j], 0, ENV_TEXT_MAX))
                return false;
        }
    }
    return true;
}

static bool check_body(struct vctx *v, const Vigil__Envelope *env)
{
    switch (env->body_case) {
    case VIGIL__ENVELOPE__BODY_BATCH: return check_batch(v, env->batch);
    case VIGIL__ENVELOPE__BODY_ACK: return true; /* any seq; the agent matches it */
    case VIGIL__ENVELOPE__BODY_COMMAND: return check_command(v, env->command);
    case VIGIL__ENVELOPE__BODY_STATUS: return check_status(v, env->status);
    case VIGIL__ENVELOPE__BODY_QUERY: return check_query(v, env->query);
    case VIGIL__ENVELOPE__BODY_RESPONSE: return check_response(v, env->response);
    default: return bad(v, "", "body", "unknown kind %d", (int)env->body_case);
    }
}

/* The body's pointer, whichever member is set (all share the union). */
static const void *body_ptr(const Vigil__Envelope *env)
{
    switch (env->body_case) {
    case VIGIL__ENVELOPE__BODY_BATCH: return env->batch;
    case VIGIL__ENVELOPE__BODY_ACK: return env->ack;
    case VIGIL__ENVELOPE__BODY_COMMAND: return env->command;
    case VIGIL__ENVELOPE__BODY_STATUS: return env->status;
    case VIGIL__ENVELOPE__BODY_QUERY: return env->query;
    case VIGIL__ENVELOPE__BODY_RESPONSE: return env->response;
    default: return NULL;
    }
}

enum envelope_error envelope_unpack(const uint8_t *data, size_t len, int64_t now_ns,
                                    Vigil__Envelope **out, char *why, size_t whylen)
{
    static const uint8_t empty[1];
    Vigil__Envelope *env = NULL;
    enum envelope_error e;
    struct scan s = {.why = why, .whylen = whylen};
    struct vctx v = {.why = why, .whylen = whylen};

    *out = NULL;
    if (why && whylen)
        why[0] = '\0';
    if (data == NULL)
        data = empty, len = 0;
    if (len > TRANSPORT_MAX_MSG) {
        return scan_fail(&s, ENV_TOO_LARGE, "%zu bytes (at most %u)", len, TRANSPORT_MAX_MSG);
    }
    uint64_t scratch = 0;
    e = scan_message(&s, &vigil__envelope__descriptor, data, len, 1, &scratch);
    if (e != ENV_OK)
        return e;
    if (s.budget + scratch > TRANSPORT_MAX_DECODED)
        return scan_fail(&s, ENV_INVALID, "decoding would allocate more than %u MiB",
                         TRANSPORT_MAX_DECODED >> 20);

    env = vigil__envelope__unpack(NULL, len, data);
    if (env == NULL) {
        scan_fail(&s, ENV_UNDECODABLE, "protobuf-c could not decode it");
        return ENV_UNDECODABLE;
    }
    if (env->schema_version != VIGIL__SCHEMA_VERSION__SCHEMA_V1) {
        bad(&v, "", "schema_version", "%d (this build reads %d)", (int)env->schema_version,
            (int)VIGIL__SCHEMA_VERSION__SCHEMA_V1);
        e = ENV_BAD_VERSION;
        goto fail;
    }
    if (env->body_case == VIGIL__ENVELOPE__BODY__NOT_SET || body_ptr(env) == NULL) {
        bad(&v, "", "body", "not set");
        e = ENV_NO_BODY;
        goto fail;
    }
    v.max_ns = now_ns > INT64_MAX - ENV_FUTURE_NS ? INT64_MAX : now_ns + ENV_FUTURE_NS;
    if (!check_body(&v, env)) {
        e = ENV_INVALID;
        goto fail;
    }
    *out = env;
    return ENV_OK;
fail:
    envelope_free(env);
    return e;
}
