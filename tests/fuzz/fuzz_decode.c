/* fuzz_decode.c — fuzz target for the agent's frame decoder (agent/decode.c).
 *
 * Input layout (also what tests/fuzz/seed_corpus.sh writes):
 *
 *   0      2                                  size
 *   +------+----------------------------------+
 *   | sel  | frame bytes (caplen = size - 2)  |
 *   +------+----------------------------------+
 *
 *   sel, big-endian: low 12 bits  = link type. A supported value (what
 *                                   pcap_datalink() returns, e.g. 1 Ethernet,
 *                                   113 Linux SLL) is used as is; any other
 *                                   value picks one of link_types[] by
 *                                   remainder, so random inputs still reach
 *                                   a decoder.
 *                    high 4 bits  = n: the frame was cut by the snap length;
 *                                   wirelen = caplen + 2^(n+3) (n = 0: whole
 *                                   frame captured, wirelen = caplen).
 *
 * The target checks what the decoder promises: no read outside the frame (the
 * sanitizers see it), and on DECODE_OK a payload pointer that lies inside the
 * frame with payload_caplen bytes readable, and every byte of it is read so an
 * over-long span is caught. Non-goals: flow-table and metadata behaviour
 * (fuzz_meta.c covers the parsers). */
#include "decode.h"

#include <pcap/dlt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Link types decode_packet() supports, as pcap_datalink() reports them. */
static const int link_types[] = {
    DLT_EN10MB,     DLT_RAW,        101 /* LINKTYPE_RAW */,
    DLT_IPV4,       DLT_IPV6,       DLT_LINUX_SLL,
    DLT_LINUX_SLL2, DLT_NULL,       DLT_LOOP,
    DLT_PPP,        DLT_PPP_SERIAL, DLT_C_HDLC,
    DLT_FRELAY,     DLT_NFLOG,      DLT_IPOIB,
    DLT_PKTAP,
};
#define N_LINK_TYPES (sizeof link_types / sizeof link_types[0])

/* A broken promise of the decoder: abort, so libFuzzer and ctest report it. */
static void check(int ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size - 2 > UINT32_MAX / 2)
        return 0;
    unsigned sel = (unsigned)data[0] << 8 | data[1];
    int dlt = (int)(sel & 0x0fffu);
    if (!decode_link_supported(dlt))
        dlt = link_types[(unsigned)dlt % N_LINK_TYPES];
    unsigned cut = sel >> 12;
    uint32_t caplen = (uint32_t)(size - 2);
    uint32_t wirelen = caplen + (cut ? (uint32_t)1 << (cut + 3) : 0);

    /* The frame in its own allocation, so the sanitizers see a read past caplen. */
    uint8_t *frame = malloc(caplen ? caplen : 1);
    if (frame == NULL)
        return 0;
    memcpy(frame, data + 2, caplen);

    struct decode_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    struct pkt p;
    memset(&p, 0, sizeof p);
    enum decode_result r = decode_packet(&ctx, dlt, frame, caplen, wirelen, 1, &p);
    check(r == DECODE_OK || r == DECODE_NOT_IP || r == DECODE_MALFORMED);
    if (r == DECODE_OK) {
        check(p.family == 4 || p.family == 6);
        check(p.payload_caplen <= p.payload_len); /* captured never exceeds sent */
        if (p.payload_caplen > 0) {
            check(p.payload != NULL);
            check(p.payload >= frame && p.payload <= frame + caplen);
            check(p.payload_caplen <= (size_t)(frame + caplen - p.payload));
            volatile uint8_t sink = 0;
            for (uint32_t i = 0; i < p.payload_caplen; i++)
                sink ^= p.payload[i];
            (void)sink;
        }
    }
    free(frame);
    return 0;
}
