/* keep.c — which payload bytes travel to the flow thread (see keep.h). */
#include "keep.h"

#include "meta.h"

#include <stdlib.h>
#include <string.h>

/* Split ClientHellos being followed: direct-mapped by flow hash. A client
 * sends its hello in its first flight, so a few slots and a few segments
 * each are plenty; a collision only costs one hello its SNI. */
#define SPLIT_SLOTS 64u
#define SPLIT_SEGMENTS 8u
#define SPLIT_MAX_AGE_NS (10 * INT64_C(1000000000)) /* a hello's flight is long over */

struct split_hello {
    uint64_t hash;      /* flow key hash, 0 = free */
    int64_t since_ns;   /* when the hello started */
    int8_t side;        /* the client's key side */
    uint8_t segments;   /* continuation segments still to keep */
};

struct keep_filter {
    struct split_hello slots[SPLIT_SLOTS];
    unsigned live;      /* slots in use: when 0, no TCP packet needs a lookup */
    int64_t next_sweep_ns;
};

/* Frees slots whose hello never went on (the flow ended, segments lost). */
static void sweep(struct keep_filter *kf, int64_t now)
{
    for (unsigned i = 0; i < SPLIT_SLOTS; i++) {
        struct split_hello *s = &kf->slots[i];
        if (s->hash && now - s->since_ns > SPLIT_MAX_AGE_NS) {
            s->hash = 0;
            kf->live--;
        }
    }
    kf->next_sweep_ns = now + SPLIT_MAX_AGE_NS;
}

struct keep_filter *keep_filter_create(void)
{
    return calloc(1, sizeof(struct keep_filter));
}

void keep_filter_destroy(struct keep_filter *kf)
{
    free(kf);
}

static bool is_dns_port(uint16_t port)
{
    return port == 53 || port == 5353 || port == 5355;
}

/* The first bytes of an HTTP/1.x request line (RFC 9110 §9 methods). */
static bool looks_like_http_request(const uint8_t *d, uint32_t n)
{
    static const char *const methods[] = {"GET ", "POST", "HEAD", "PUT ", "DELE",
                                          "OPTI", "PATC", "CONN", "TRAC"};
    if (n < 4)
        return false;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (memcmp(d, methods[i], 4) == 0)
            return true;
    return false;
}

static uint32_t prefix(const struct pkt *p) /* also the whole of a short payload */
{
    return p->payload_caplen < KEEP_PREFIX ? p->payload_caplen : KEEP_PREFIX;
}

/* A TLS handshake record (RFC 8446 §5.1) that starts here but does not end
 * in this segment: the hello continues in the next ones. */
static bool starts_split_hello(const struct pkt *p)
{
    const uint8_t *d = p->payload;
    if (p->payload_caplen < 6 || d[0] != 0x16 || d[1] != 0x03 || d[5] != 0x01)
        return false;
    uint32_t record = 5u + ((uint32_t)d[3] << 8 | d[4]);
    return record > p->payload_len;
}

static uint32_t tcp_bytes(struct keep_filter *kf, const struct flowtab *ft, struct pkt *p)
{
    const uint8_t *d = p->payload;
    uint32_t n = p->payload_caplen;
    if (kf->live && p->ts_ns >= kf->next_sweep_ns)
        sweep(kf, p->ts_ns);
    if (kf->live) {
        if (!p->has_key)
            flowtab_prepare(ft, p);
        struct split_hello *s = &kf->slots[p->hash % SPLIT_SLOTS];
        if (p->has_key && s->hash == p->hash && s->side == p->key_side) {
            if (--s->segments == 0) {
                s->hash = 0;
                kf->live--;
            }
            return n;
        }
    }
    if (n >= 2 && d[0] == 0x16 && d[1] == 0x03) {
        if (starts_split_hello(p)) {
            if (!p->has_key)
                flowtab_prepare(ft, p);
            struct split_hello *s = &kf->slots[p->hash % SPLIT_SLOTS];
            if (p->has_key) {
                if (s->hash == 0)
                    kf->live++;
                *s = (struct split_hello){p->hash, p->ts_ns, p->key_side, SPLIT_SEGMENTS};
                if (kf->live == 1)
                    kf->next_sweep_ns = p->ts_ns + SPLIT_MAX_AGE_NS;
            }
        }
        return n;
    }
    if (is_dns_port(p->sport) || is_dns_port(p->dport) || looks_like_http_request(d, n))
        return n;
    return prefix(p);
}

uint32_t keep_filter_bytes(struct keep_filter *kf, const struct flowtab *ft, struct pkt *p)
{
    if (p->payload_caplen <= KEEP_PREFIX && (p->proto != IPPROTO_NUM_TCP || p->payload_caplen == 0))
        return p->payload_caplen;
    switch (p->proto) {
    case IPPROTO_NUM_TCP:
        return p->frag == FRAG_LATER ? prefix(p) : tcp_bytes(kf, ft, p);
    case IPPROTO_NUM_UDP:
        if (p->frag != FRAG_LATER &&
            (is_dns_port(p->sport) || is_dns_port(p->dport) ||
             meta_is_quic_long_header(p->payload, p->payload_caplen)))
            return p->payload_caplen;
        return prefix(p);
    default:
        return prefix(p);
    }
}
