/* fuzz_pcapfile.c — fuzz target for the agent's in-place pcap file reader
 * (agent/pcapfile.c), checked against libpcap.
 *
 * The input is a whole capture file. libpcap opens it from memory (fmemopen);
 * when it takes the file and pcapfile_handles() says the mapped reader would
 * too, both read every record and must agree: the same timestamps (as
 * capture_timestamp_ns reads libpcap's), lengths and bytes, and the same
 * ending (the end of the data or an error). A disagreement aborts, so the
 * fuzzer reports it. Reads outside the input are left to the sanitizers:
 * the reader is given a copy of exactly the input's size. */
#include "capture.h"
#include "pcapfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool swapped, nano;
    if (!pcapfile_header(data, size, &swapped, &nano))
        return 0;
    FILE *fp = fmemopen((void *)data, size, "rb");
    if (!fp)
        return 0;
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_fopen_offline_with_tstamp_precision(fp, PCAP_TSTAMP_PRECISION_NANO, err);
    if (!p) {
        fclose(fp);
        return 0;
    }
    if (!pcapfile_handles(p) || swapped != (pcap_is_swapped(p) == 1)) {
        pcap_close(p);
        return 0;
    }
    uint8_t *copy = malloc(size);
    if (!copy)
        abort();
    memcpy(copy, data, size);
    struct pcapfile_reader r;
    pcapfile_reader_init(&r, copy, size, swapped, nano, (uint32_t)pcap_snapshot(p));
    struct pcapfile_packet pkt;
    enum pcapfile_status st;
    char msg[256];
    while ((st = pcapfile_next(&r, &pkt, msg, sizeof msg)) == PCAPFILE_PACKET) {
        struct pcap_pkthdr *h;
        const u_char *bytes;
        if (pcap_next_ex(p, &h, &bytes) != 1 || capture_timestamp_ns(h) != pkt.ts_ns ||
            h->caplen != pkt.caplen || h->len != pkt.wirelen ||
            memcmp(bytes, pkt.data, pkt.caplen) != 0)
            abort();
    }
    struct pcap_pkthdr *h;
    const u_char *bytes;
    int end = pcap_next_ex(p, &h, &bytes);
    if (end != (st == PCAPFILE_END ? PCAP_ERROR_BREAK : PCAP_ERROR))
        abort();
    free(copy);
    pcap_close(p);
    return 0;
}
