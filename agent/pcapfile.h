/* pcapfile.h — a classic pcap file read in place, from a memory mapping.
 *
 * libpcap reads a file with two fread() calls per packet and copies every
 * frame out of stdio's buffer, which the kernel filled by copying it out of
 * the page cache: on full-size frames those copies are most of the cost of
 * reading (the agent itself only looks at the headers). The classic format
 * is simple — a 24-byte file header, then a 16-byte header before each
 * frame — so its records are read here straight from a read-only mapping,
 * and only the bytes the decoder touches are ever loaded.
 *
 * libpcap still opens the file first: it validates the file header, maps
 * the link type, sets the snapshot length and compiles filters. Only what
 * libpcap would hand over unchanged is read here (version 2.4 with a
 * standard magic, link types without byte-swapped pseudo-headers); pcapng,
 * pipes and everything else stay with libpcap. Records are read as libpcap
 * reads them — a frame longer than the snapshot length is cut to it, a
 * record cut short is an error naming the byte counts — except for the
 * timestamp: its seconds are unsigned, as the format specifies (libpcap
 * 1.10 reads them as signed and turns 2040 into 1904), and a fraction of a
 * second or more (a damaged file) is taken as the last instant of its
 * second (capture_timestamp_ns reads libpcap's the same way). */
#ifndef VIGIL_PCAPFILE_H
#define VIGIL_PCAPFILE_H

#include <pcap/pcap.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCAPFILE_HEADER_LEN 24u
#define PCAPFILE_RECORD_LEN 16u

/* Records over bytes in memory (the mapping, or a fuzzer's input). */
struct pcapfile_reader {
    const uint8_t *base;
    size_t size;
    size_t off;        /* the next record header */
    bool swapped;      /* written in the other byte order */
    bool nano;         /* fractions are nanoseconds, not microseconds */
    uint32_t snapshot; /* longer frames are cut to this */
};

struct pcapfile_packet {
    int64_t ts_ns;
    const uint8_t *data;
    uint32_t caplen;
    uint32_t wirelen;
};

enum pcapfile_status { PCAPFILE_ERROR = -1, PCAPFILE_END = 0, PCAPFILE_PACKET = 1 };

/* True if buf starts with a classic pcap file header of version 2.4 with
 * the standard magic in either byte order and either precision. */
bool pcapfile_header(const uint8_t *buf, size_t len, bool *swapped, bool *nano);

/* Reads records from base[PCAPFILE_HEADER_LEN..size); the header must
 * have passed pcapfile_header. */
void pcapfile_reader_init(struct pcapfile_reader *r, const uint8_t *base, size_t size,
                          bool swapped, bool nano, uint32_t snapshot);

/* The next record: PCAPFILE_PACKET, PCAPFILE_END at a clean end of the
 * data, or PCAPFILE_ERROR with a message in err when it ends mid-record. */
enum pcapfile_status pcapfile_next(struct pcapfile_reader *r, struct pcapfile_packet *pkt,
                                   char *err, size_t errlen);

/* True if libpcap's handle p hands over the records of its file as this
 * reader does: a classic 2.4 file whose link type has no pseudo-header
 * libpcap rewrites. */
bool pcapfile_handles(pcap_t *p);

/* A mapped file. */
struct pcapfile;

/* Maps the file under fd when libpcap's handle p (opened on it) reads a
 * file this reader handles the same way; NULL otherwise, and the caller
 * goes on with libpcap. */
struct pcapfile *pcapfile_map(int fd, pcap_t *p);

/* Same shape as capture.h's capture_packet_fn, so the agent's handler is
 * called directly. */
typedef void (*pcapfile_packet_fn)(void *ctx, int64_t ts_ns, const uint8_t *data, uint32_t caplen,
                                   uint32_t wirelen);

/* Hands every record to on_packet (those that pass filter, when one is
 * given) until the end, *stop or *brk becomes non-zero, or an error.
 * Returns 0, or -1 with the message in err: a record cut short, or the
 * file shrinking under the mapping (caught as SIGBUS on this thread, not
 * a crash). */
int pcapfile_run(struct pcapfile *f, volatile sig_atomic_t *stop, volatile sig_atomic_t *brk,
                 const struct bpf_program *filter, pcapfile_packet_fn on_packet, void *ctx,
                 char *err, size_t errlen);

void pcapfile_close(struct pcapfile *f);

#endif
