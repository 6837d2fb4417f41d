/* forensic_writer.c — rotating pcap files with a running SHA-256 (see
 * forensic_writer.h).
 *
 * The pcap format is written here rather than through pcap_dump: the file
 * header and record headers are fixed little structures (below), and
 * writing them ourselves gives the exact size of every file before a byte
 * is written (the caps depend on it) and lets the hash follow the bytes as
 * they go out instead of reading each file back.
 *
 * Classic pcap, nanosecond variant (magic 0xa1b23c4d), host byte order as
 * libpcap writes it:
 *   file:   magic u32 | version 2.4 (u16 u16) | thiszone i32 = 0 | sigfigs u32
 * = 0 | snaplen u32 | linktype u32                                  (24 bytes)
 *   record: ts_sec u32 | ts_nsec u32 | caplen u32 | wirelen u32 | data    (16 +
 * caplen) */
#include "forensic_writer.h"

#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#define PCAP_MAGIC_NSEC 0xa1b23c4du
#define WRITE_BUFFER (256u << 10) /* stdio buffer: few system calls per MiB */

struct fwriter {
    struct fwriter_config cfg;
    char prefix[65];
    FILE *fp;          /* the open file, or NULL */
    EVP_MD_CTX *md;    /* its running hash */
    char *buf;         /* stdio buffer of fp */
    uint64_t cur_size; /* bytes in the open file */
    uint64_t total;    /* bytes in every file */
    struct fwriter_file *files;
    size_t n_files, cap_files;
};

bool fwriter_prefix_valid(const char *p)
{
    size_t n = strnlen(p, 65);
    if (n == 0 || n > 64 || p[0] == '.' || p[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

struct fwriter *fwriter_create(const struct fwriter_config *cfg, char *err, size_t errlen)
{
    if (cfg->dirfd < 0 || !cfg->prefix || !fwriter_prefix_valid(cfg->prefix)) {
        snprintf(err, errlen, "capture files: the name prefix is not a plain file name");
        return NULL;
    }
    if (cfg->file_size < FWRITER_MIN_FILE_SIZE || cfg->max_files == 0 || cfg->max_files > 9999 ||
        cfg->snaplen == 0 || cfg->snaplen > FWRITER_MAX_SNAPLEN) {
        snprintf(err, errlen,
                 "capture files: file size under 1 MiB, no files allowed or a "
                 "snap length out of range");
        return NULL;
    }
    struct fwriter *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->cfg = *cfg;
    snprintf(w->prefix, sizeof w->prefix, "%s", cfg->prefix);
    w->cfg.prefix = w->prefix;
    return w;
}

static void hex(const unsigned char *in, unsigned n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Writes and hashes n bytes; false on a write error (errno set). */
static bool put(struct fwriter *w, const void *p, size_t n)
{
    if (n == 0)
        return true;
    if (fwrite(p, 1, n, w->fp) != n)
        return false;
    EVP_DigestUpdate(w->md, p, n);
    w->cur_size += n;
    w->total += n;
    w->files[w->n_files - 1].size = w->cur_size;
    return true;
}

static int open_next(struct fwriter *w, char *err, size_t errlen)
{
    if (w->n_files >= w->cfg.max_files)
        return VIGIL_EFULL;
    if (w->n_files == w->cap_files) {
        size_t c = w->cap_files ? w->cap_files * 2 : 8;
        struct fwriter_file *f = realloc(w->files, c * sizeof *f);
        if (!f) {
            snprintf(err, errlen, "out of memory");
            return VIGIL_ENOMEM;
        }
        w->files = f;
        w->cap_files = c;
    }
    struct fwriter_file *f = &w->files[w->n_files];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s-%03zu.pcap", w->prefix, w->n_files + 1);
    int fd =
        openat(w->cfg.dirfd, f->name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot create %s: %s", f->name, strerror(e));
        return -e;
    }
    w->fp = fdopen(fd, "wb");
    w->md = EVP_MD_CTX_new();
    w->buf = malloc(WRITE_BUFFER);
    if (!w->fp || !w->md || !w->buf || EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1) {
        if (w->fp)
            fclose(w->fp);
        else
            close(fd);
        w->fp = NULL;
        EVP_MD_CTX_free(w->md);
        w->md = NULL;
        free(w->buf);
        w->buf = NULL;
        unlinkat(w->cfg.dirfd, f->name, 0);
        snprintf(err, errlen, "cannot open %s: out of memory", f->name);
        return VIGIL_ENOMEM;
    }
    setvbuf(w->fp, w->buf, _IOFBF, WRITE_BUFFER);
    w->n_files++;
    w->cur_size = 0;
    struct {
        uint32_t magic;
        uint16_t major, minor;
        int32_t thiszone;
        uint32_t sigfigs, snaplen, linktype;
    } hdr = {PCAP_MAGIC_NSEC, 2, 4, 0, 0, w->cfg.snaplen, (uint32_t)w->cfg.linktype};
    _Static_assert(sizeof hdr == FWRITER_FILE_HEADER, "pcap file header is 24 bytes");
    if (!put(w, &hdr, sizeof hdr)) {
        int e = errno ? errno : EIO;
        snprintf(err, errlen, "writing %s: %s", f->name, strerror(e));
        return -e;
    }
    return 0;
}

int fwriter_close(struct fwriter *w, char *err, size_t errlen)
{
    if (!w || !w->fp)
        return 0;
    struct fwriter_file *f = &w->files[w->n_files - 1];
    int rc = 0;
    if (fflush(w->fp) != 0 || fsync(fileno(w->fp)) != 0) {
        rc = -(errno ? errno : EIO);
        snprintf(err, errlen, "writing %s: %s", f->name, strerror(-rc));
    }
    if (fclose(w->fp) != 0 && rc == 0) {
        rc = -(errno ? errno : EIO);
        snprintf(err, errlen, "closing %s: %s", f->name, strerror(-rc));
    }
    w->fp = NULL;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    if (EVP_DigestFinal_ex(w->md, digest, &dlen) == 1 && dlen == 32)
        hex(digest, dlen, f->sha256);
    EVP_MD_CTX_free(w->md);
    w->md = NULL;
    free(w->buf);
    w->buf = NULL;
    return rc;
}

uint64_t fwriter_cost(const struct fwriter *w, uint32_t caplen)
{
    uint64_t rec = FWRITER_RECORD_HEADER + (uint64_t)caplen;
    if (w->fp && w->cur_size + rec <= w->cfg.file_size)
        return rec;
    if (w->n_files >= w->cfg.max_files)
        return 0;
    return FWRITER_FILE_HEADER + rec;
}

int fwriter_write(struct fwriter *w, int64_t ts_sec, uint32_t ts_nsec, const uint8_t *data,
                  uint32_t caplen, uint32_t wirelen, char *err, size_t errlen)
{
    int rc;
    uint64_t rec = FWRITER_RECORD_HEADER + (uint64_t)caplen;
    if (caplen > FWRITER_MAX_SNAPLEN) {
        snprintf(err, errlen, "a packet of %u bytes is longer than any snap length", caplen);
        return VIGIL_EINVAL;
    }
    if (!w->fp || w->cur_size + rec > w->cfg.file_size) {
        if (w->n_files >= w->cfg.max_files)
            return VIGIL_EFULL;
        if ((rc = fwriter_close(w, err, errlen)) != 0 || (rc = open_next(w, err, errlen)) != 0)
            return rc;
    }
    /* pcap's 32-bit seconds: packets after 2106 do not occur; clamp rather than
     * wrap. */
    uint32_t hdr[4] = {ts_sec < 0            ? 0u
                       : ts_sec > UINT32_MAX ? UINT32_MAX
                                             : (uint32_t)ts_sec,
                       ts_nsec, caplen, wirelen};
    if (!put(w, hdr, sizeof hdr) || !put(w, data, caplen)) {
        rc = -(errno ? errno : EIO);
        snprintf(err, errlen, "writing %s: %s", w->files[w->n_files - 1].name, strerror(-rc));
        return rc;
    }
    return 0;
}

const struct fwriter_file *fwriter_files(const struct fwriter *w, size_t *n)
{
    *n = w->n_files;
    return w->files;
}

uint64_t fwriter_bytes(const struct fwriter *w)
{
    return w->total;
}

void fwriter_destroy(struct fwriter *w)
{
    if (!w)
        return;
    if (w->fp)
        fclose(w->fp);
    EVP_MD_CTX_free(w->md);
    free(w->buf);
    free(w->files);
    free(w);
}
