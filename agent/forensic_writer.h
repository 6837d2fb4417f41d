/* forensic_writer.h — the files of one forensic capture: classic pcap files
 * (nanosecond timestamps), rotated at a size, each hashed with SHA-256 as it
 * is written.
 *
 * Files are named PREFIX-NNN.pcap (NNN from 001), the first one opened with
 * the first packet (a capture that sees none leaves no file), in a
 * directory given as an open descriptor, created with O_EXCL and mode 0600
 * (full packets may hold secrets: only the service user reads them), and
 * never overwritten. A file
 * never grows past file_size unless a single packet record is larger than
 * an empty file's room (file_size is at least 1 MiB, a record at most
 * 256 KiB + 16 bytes, so it never is).
 *
 * Callers bound what is written: fwriter_cost() says how many bytes the
 * next packet would add to the directory (its 16-byte record header, its
 * bytes, and a new file's 24-byte header when it rotates), so caps and
 * quotas are checked BEFORE a byte is written.
 *
 * Non-goals: capture (forensic.c), quotas (forensic.c). One thread uses a
 * writer at a time. */
#ifndef VIGIL_FORENSIC_WRITER_H
#define VIGIL_FORENSIC_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FWRITER_FILE_HEADER 24u   /* pcap global header */
#define FWRITER_RECORD_HEADER 16u /* pcap per-packet header */
#define FWRITER_NAME_MAX 96       /* PREFIX (<= 64) + "-NNNN.pcap" + NUL */
#define FWRITER_MIN_FILE_SIZE (UINT64_C(1) << 20)
#define FWRITER_MAX_SNAPLEN 262144u /* libpcap's MAXIMUM_SNAPLEN */

_Static_assert(FWRITER_FILE_HEADER + FWRITER_RECORD_HEADER + FWRITER_MAX_SNAPLEN <
                   FWRITER_MIN_FILE_SIZE,
               "any packet fits an empty file");

struct fwriter_file {
    char name[FWRITER_NAME_MAX];
    uint64_t size;   /* bytes */
    char sha256[65]; /* lower-case hex; "" while the file is still being written */
};

struct fwriter_config {
    int dirfd;          /* borrowed: the capture directory */
    const char *prefix; /* file name prefix (the capture id): [A-Za-z0-9._-], 1..64 */
    int linktype;       /* DLT_* of the packets (pcap header) */
    uint32_t snaplen;   /* written into the header */
    uint64_t file_size; /* rotate before a file would pass this, >=
                           FWRITER_MIN_FILE_SIZE */
    unsigned max_files; /* files per capture at most */
};

struct fwriter;

/* Checks the config; opens nothing yet. Returns NULL with a message in err. */
struct fwriter *fwriter_create(const struct fwriter_config *cfg, char *err, size_t errlen);

/* Bytes the next packet of caplen bytes would add (record, data, and a
 * file header when a new file must be opened); 0 when the file limit
 * (max_files) would be passed. */
uint64_t fwriter_cost(const struct fwriter *w, uint32_t caplen);

/* Appends one packet (ts: seconds and nanoseconds). Opens the first file,
 * or rotates, as needed. Returns 0, VIGIL_EFULL (max_files reached: nothing
 * written), or a negative errno with a message in err (the capture must
 * stop; what was written before stays). */
int fwriter_write(struct fwriter *w, int64_t ts_sec, uint32_t ts_nsec, const uint8_t *data,
                  uint32_t caplen, uint32_t wirelen, char *err, size_t errlen);

/* Flushes, syncs and closes the current file and finishes its hash.
 * Returns 0 or a negative errno with a message in err. */
int fwriter_close(struct fwriter *w, char *err, size_t errlen);

/* The files so far (the last one has no hash while open). Valid until the
 * next write or destroy. */
const struct fwriter_file *fwriter_files(const struct fwriter *w, size_t *n);

/* Total bytes written in every file. */
uint64_t fwriter_bytes(const struct fwriter *w);

/* Closes (without a sync) and frees; NULL is fine. */
void fwriter_destroy(struct fwriter *w);

/* True for a name usable as a file prefix: 1..64 of [A-Za-z0-9._-], not
 * starting with '.' or '-'. */
bool fwriter_prefix_valid(const char *prefix);

#endif
