/* pcapfile.c — a classic pcap file read in place, from a memory mapping. */
#include "pcapfile.h"

#include "clock.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define MAGIC_USEC 0xa1b2c3d4u
#define MAGIC_NSEC 0xa1b23c4du

/* Pages behind the reader are handed back every RELEASE_EVERY bytes: the
 * kernel keeps them cached, but they no longer count as the agent's memory
 * (a 10 GB file would otherwise show as 10 GB resident). */
#define RELEASE_EVERY ((size_t)4 << 20)

struct pcapfile {
    struct pcapfile_reader r;
    uint8_t *map;
    size_t map_len;
    size_t released; /* bytes from the start already handed back */
    size_t prefetched; /* bytes from the start asked for already */
};

static uint32_t read32(const uint8_t *p, bool swapped)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return swapped ? __builtin_bswap32(v) : v;
}

static uint16_t read16(const uint8_t *p, bool swapped)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return swapped ? __builtin_bswap16(v) : v;
}

bool pcapfile_header(const uint8_t *buf, size_t len, bool *swapped, bool *nano)
{
    if (len < PCAPFILE_HEADER_LEN)
        return false;
    uint32_t magic = read32(buf, false);
    if (magic == MAGIC_USEC || magic == MAGIC_NSEC)
        *swapped = false;
    else if (magic == __builtin_bswap32(MAGIC_USEC) || magic == __builtin_bswap32(MAGIC_NSEC))
        *swapped = true;
    else
        return false;
    *nano = read32(buf, *swapped) == MAGIC_NSEC;
    return read16(buf + 4, *swapped) == 2 && read16(buf + 6, *swapped) == 4;
}

void pcapfile_reader_init(struct pcapfile_reader *r, const uint8_t *base, size_t size,
                          bool swapped, bool nano, uint32_t snapshot)
{
    *r = (struct pcapfile_reader){
        .base = base,
        .size = size,
        .off = size < PCAPFILE_HEADER_LEN ? size : PCAPFILE_HEADER_LEN,
        .swapped = swapped,
        .nano = nano,
        .snapshot = snapshot,
    };
}

enum pcapfile_status pcapfile_next(struct pcapfile_reader *r, struct pcapfile_packet *pkt,
                                   char *err, size_t errlen)
{
    size_t left = r->size - r->off;
    if (left == 0)
        return PCAPFILE_END;
    if (left < PCAPFILE_RECORD_LEN) {
        snprintf(err, errlen, "truncated dump file; tried to read %u header bytes, only got %zu",
                 PCAPFILE_RECORD_LEN, left);
        return PCAPFILE_ERROR;
    }
    const uint8_t *h = r->base + r->off;
    uint32_t sec = read32(h, r->swapped), frac = read32(h + 4, r->swapped);
    uint32_t caplen = read32(h + 8, r->swapped), wirelen = read32(h + 12, r->swapped);
    left -= PCAPFILE_RECORD_LEN;
    if (caplen > left) {
        snprintf(err, errlen, "truncated dump file; tried to read %u captured bytes, only got %zu",
                 caplen, left);
        return PCAPFILE_ERROR;
    }
    int64_t ns = (int64_t)frac * (r->nano ? 1 : 1000);
    if (ns >= NS_PER_SEC) /* damaged: the last instant of its second */
        ns = NS_PER_SEC - 1;
    pkt->ts_ns = (int64_t)sec * NS_PER_SEC + ns;
    pkt->data = h + PCAPFILE_RECORD_LEN;
    pkt->caplen = caplen > r->snapshot ? r->snapshot : caplen; /* the rest is skipped */
    pkt->wirelen = wirelen;
    r->off += PCAPFILE_RECORD_LEN + (size_t)caplen;
    return PCAPFILE_PACKET;
}

/* Link types whose frames libpcap hands over as they are in the file. It
 * byte-swaps some pseudo-headers of files from the other byte order
 * (NFLOG, USB, Linux cooked with CAN): those stay with libpcap. */
static bool link_type_read_here(int dlt, bool swapped)
{
    switch (dlt) {
    case DLT_EN10MB: case DLT_RAW: case DLT_IPV4: case DLT_IPV6: case DLT_NULL: case DLT_LOOP:
    case DLT_PPP: case DLT_PPP_SERIAL: case DLT_C_HDLC: case DLT_FRELAY: case DLT_IPOIB:
        return true;
    case DLT_LINUX_SLL: case DLT_LINUX_SLL2:
        return !swapped;
    default:
        return false;
    }
}

bool pcapfile_handles(pcap_t *p)
{
    return pcap_major_version(p) == 2 && pcap_minor_version(p) == 4 &&
           link_type_read_here(pcap_datalink(p), pcap_is_swapped(p) == 1) && pcap_snapshot(p) > 0;
}

struct pcapfile *pcapfile_map(int fd, pcap_t *p)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < (off_t)PCAPFILE_HEADER_LEN ||
        !pcapfile_handles(p))
        return NULL;
    size_t len = (size_t)st.st_size;
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED)
        return NULL; /* e.g. a file system without mmap: libpcap reads it */
    bool swapped, nano;
    struct pcapfile *f = NULL;
    if (pcapfile_header(map, len, &swapped, &nano) && swapped == (pcap_is_swapped(p) == 1))
        f = calloc(1, sizeof *f);
    if (!f) {
        munmap(map, len);
        return NULL;
    }
    madvise(map, len, MADV_SEQUENTIAL);
    f->map = map;
    f->map_len = len;
    pcapfile_reader_init(&f->r, map, len, swapped, nano, (uint32_t)pcap_snapshot(p));
    return f;
}

/* A file cut shorter while mapped raises SIGBUS when a page past its new
 * end is touched. That is caught on the reading thread, for the mapping
 * only, and ends the read with an error; any other SIGBUS stays fatal. */
static _Thread_local sigjmp_buf *bus_jump;
static _Thread_local const uint8_t *bus_lo, *bus_hi;

static void on_sigbus(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    const uint8_t *at = si->si_addr;
    if (bus_jump && at >= bus_lo && at < bus_hi)
        siglongjmp(*bus_jump, 1);
    signal(sig, SIG_DFL); /* not ours: the access repeats and ends the process */
}

/* The next record's place is only known once this one's header is read,
 * so the walk is a chain of dependent loads that the hardware prefetcher,
 * which stops at page boundaries, does not run ahead of; on full-size
 * frames each header would be a miss to memory. The bytes between 4 and 8
 * KiB ahead are asked for instead (measured: a bare walk of the benchmark's
 * 10 GB capture took half the time). */
#define PREFETCH_FROM 4096u
#define PREFETCH_TO 8192u
static void prefetch_ahead(struct pcapfile *f)
{
    size_t from = f->r.off + PREFETCH_FROM, to = f->r.off + PREFETCH_TO;
    if (from < f->prefetched)
        from = f->prefetched;
    if (to > f->map_len)
        to = f->map_len;
    for (size_t at = from & ~(size_t)63; at < to; at += 64)
        __builtin_prefetch(f->map + at);
    if (to > f->prefetched)
        f->prefetched = to;
}

static void release_behind(struct pcapfile *f)
{
    size_t upto = f->r.off & ~(RELEASE_EVERY - 1);
    if (upto > f->released + RELEASE_EVERY) {
        size_t to = upto - RELEASE_EVERY; /* keep a window behind for the current record */
        madvise(f->map + f->released, to - f->released, MADV_DONTNEED);
        f->released = to;
    }
}

int pcapfile_run(struct pcapfile *f, volatile sig_atomic_t *stop, volatile sig_atomic_t *brk,
                 const struct bpf_program *filter, pcapfile_packet_fn on_packet, void *ctx,
                 char *err, size_t errlen)
{
    struct sigaction sa = {.sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &old);
    sigjmp_buf jump;
    int rc = 0;
    if (sigsetjmp(jump, 1) != 0) {
        snprintf(err, errlen, "the file became shorter while it was read (it was %zu bytes)",
                 f->map_len);
        rc = -1;
        goto out;
    }
    bus_lo = f->map;
    bus_hi = f->map + f->map_len;
    bus_jump = &jump;
    struct pcapfile_packet pkt;
    while (!*stop && !*brk) {
        for (unsigned n = 0; n < 4096; n++) {
            enum pcapfile_status st = pcapfile_next(&f->r, &pkt, err, errlen);
            if (st != PCAPFILE_PACKET) {
                rc = st == PCAPFILE_END ? 0 : -1;
                goto out;
            }
            prefetch_ahead(f);
            if (filter) {
                struct pcap_pkthdr h = {.caplen = pkt.caplen, .len = pkt.wirelen};
                if (!pcap_offline_filter(filter, &h, pkt.data))
                    continue;
            }
            on_packet(ctx, pkt.ts_ns, pkt.data, pkt.caplen, pkt.wirelen);
        }
        release_behind(f);
    }
out:
    bus_jump = NULL;
    sigaction(SIGBUS, &old, NULL);
    return rc;
}

void pcapfile_close(struct pcapfile *f)
{
    if (!f)
        return;
    munmap(f->map, f->map_len);
    free(f);
}
