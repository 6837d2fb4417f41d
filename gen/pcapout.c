/* pcapout.c — pcap savefile output through libpcap. */
#include "pcapout.h"

#include "err.h"

#include <errno.h>
#include <string.h>

#define OUT_BUFFER (4u << 20)

int pcapout_open(struct pcapout *o, const char *path, unsigned snaplen)
{
    *o = (struct pcapout){.snaplen = snaplen};
    o->dead = pcap_open_dead_with_tstamp_precision(DLT_EN10MB, (int)snaplen,
                                                   PCAP_TSTAMP_PRECISION_NANO);
    if (!o->dead) {
        fprintf(stderr, "vigil-gen: pcap_open_dead failed\n");
        return VIGIL_ECAPTURE;
    }
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "wb");
    if (!f) {
        int e = errno;
        fprintf(stderr, "vigil-gen: %s: %s\n", path, strerror(e));
        pcap_close(o->dead);
        o->dead = NULL;
        return -e;
    }
    setvbuf(f, NULL, _IOFBF, OUT_BUFFER);
    o->dumper = pcap_dump_fopen(o->dead, f);
    if (!o->dumper) {
        fprintf(stderr, "vigil-gen: %s: %s\n", path, pcap_geterr(o->dead));
        fclose(f);
        pcap_close(o->dead);
        o->dead = NULL;
        return VIGIL_ECAPTURE;
    }
    return 0;
}

void pcapout_write(struct pcapout *o, int64_t ts_ns, const uint8_t *frame, size_t len)
{
    struct pcap_pkthdr h;
    h.ts.tv_sec = (time_t)(ts_ns / 1000000000);
    /* With nanosecond precision, libpcap writes tv_usec as nanoseconds. */
    h.ts.tv_usec = (suseconds_t)(ts_ns % 1000000000);
    h.len = (bpf_u_int32)len;
    h.caplen = (bpf_u_int32)(len > o->snaplen ? o->snaplen : len);
    pcap_dump((u_char *)o->dumper, &h, frame);
    o->cap_bytes += h.caplen;
}

int pcapout_close(struct pcapout *o)
{
    int rc = 0;
    if (o->dumper) {
        if (pcap_dump_flush(o->dumper) != 0 || ferror(pcap_dump_file(o->dumper)))
            rc = VIGIL_EIO;
        pcap_dump_close(o->dumper);
        o->dumper = NULL;
    }
    if (o->dead) {
        pcap_close(o->dead);
        o->dead = NULL;
    }
    return rc;
}
