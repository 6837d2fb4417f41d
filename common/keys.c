/* keys.c — CURVE key files: generation, loading, Z85 checks, fingerprints.
 *
 * Formats (see transport.h): NAME.key holds "public <z85>" and "secret
 * <z85>" lines and must not be readable by group or others (the same rule
 * ssh applies to private keys); NAME.pub holds the bare public key. Both may
 * carry '#' comments and blank lines.
 *
 * Non-goals: key rotation and distribution (Ansible copies .pub files into
 * the aggregator's allow lists), passphrase protection (the daemons start
 * unattended; file modes and the service user protect the secret). */
#include "transport.h"
#include "transport_int.h"

#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_FILE_MAX 4096 /* a key file is under 200 bytes; anything larger is not one */

/* The Z85 alphabet (ZeroMQ RFC 32), in value order. */
static const char z85_alphabet[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

static int z85_value(char ch)
{
    if (ch == '\0')
        return -1;
    const char *p = strchr(z85_alphabet, ch);
    return p ? (int)(p - z85_alphabet) : -1;
}

bool key_z85_valid(const char *z85)
{
    if (z85 == NULL || strnlen(z85, KEY_Z85_LEN + 1) != KEY_Z85_LEN)
        return false;
    for (size_t g = 0; g < KEY_Z85_LEN; g += 5) {
        uint64_t v = 0;
        for (size_t i = 0; i < 5; i++) {
            int d = z85_value(z85[g + i]);
            if (d < 0)
                return false;
            v = v * 85 + (uint64_t)d;
        }
        if (v > UINT32_MAX)
            return false; /* "#####" and friends overflow a 32-bit group */
    }
    uint8_t bin[KEY_BIN_LEN];
    return zmq_z85_decode(bin, z85) != NULL;
}

int key__z85_to_bin(const char *z85, uint8_t out[KEY_BIN_LEN])
{
    if (!key_z85_valid(z85) || zmq_z85_decode(out, z85) == NULL)
        return VIGIL_EINVAL;
    return 0;
}

bool key_name_valid(const char *name)
{
    if (name == NULL || name[0] == '\0' || name[0] == '.' || name[0] == '-')
        return false;
    size_t n = 0;
    for (const char *p = name; *p; p++, n++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok || n >= KEY_NAME_MAX)
            return false;
    }
    return true;
}

void key_fingerprint_bin(const uint8_t key[KEY_BIN_LEN], char out[17])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (EVP_Digest(key, KEY_BIN_LEN, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < 8) {
        memcpy(out, "????????????????", 17);
        return;
    }
    for (size_t i = 0; i < 8; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[16] = '\0';
}

void key_fingerprint(const char public_z85[KEY_Z85_LEN + 1], char out[17])
{
    uint8_t bin[KEY_BIN_LEN];
    if (key__z85_to_bin(public_z85, bin) != 0) {
        memcpy(out, "????????????????", 17);
        return;
    }
    key_fingerprint_bin(bin, out);
}

/* ---- reading ------------------------------------------------------------ */

/* Reads the whole (small) file behind fd into buf, NUL-terminated. */
static int read_small(int fd, const char *path, char *buf, size_t cap, char *err, size_t errlen)
{
    size_t len = 0;
    for (;;) {
        if (len == cap - 1) {
            transport__errf(err, errlen, "%s: larger than %zu bytes, not a key file", path,
                            cap - 1);
            return VIGIL_EBADMSG;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            transport__errf(err, errlen, "%s: read: %s", path, strerror(e));
            return -e;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    if (memchr(buf, '\0', len) != NULL) {
        transport__errf(err, errlen, "%s: binary data, not a key file", path);
        return VIGIL_EBADMSG;
    }
    return 0;
}

/* Opens path for reading, requires a regular file, returns its mode. */
static int open_regular(const char *path, mode_t *mode, char *err, size_t errlen)
{
    /* O_NONBLOCK: a FIFO planted under the key's name cannot hang the open. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        transport__errf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        transport__errf(err, errlen, "%s: %s", path, strerror(e));
        close(fd);
        return -e;
    }
    if (!S_ISREG(st.st_mode)) {
        transport__errf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return VIGIL_EBADMSG;
    }
    *mode = st.st_mode;
    return fd;
}

struct key_text {
    char pub[KEY_Z85_LEN + 1];
    char sec[KEY_Z85_LEN + 1];
    bool has_pub, has_sec;
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Parses key-file text (modified in place) into kt. */
static int parse_key_text(const char *path, char *text, struct key_text *kt, char *err,
                          size_t errlen)
{
    unsigned lineno = 0;
    char *line = text;
    while (line != NULL && *line != '\0') {
        char *nl = strchr(line, '\n');
        char *next = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        lineno++;

        while (is_blank(*line))
            line++;
        size_t n = strlen(line);
        while (n > 0 && is_blank(line[n - 1]))
            line[--n] = '\0';
        if (n == 0 || line[0] == '#') {
            line = next;
            continue;
        }

        const char *value = line;
        char *dst = kt->pub;
        bool *seen = &kt->has_pub;
        const char *what = "public";
        char *sp = line + strcspn(line, " \t");
        if (*sp != '\0') {
            *sp++ = '\0';
            while (is_blank(*sp))
                sp++;
            value = sp;
            if (strcmp(line, "secret") == 0) {
                dst = kt->sec;
                seen = &kt->has_sec;
                what = "secret";
            } else if (strcmp(line, "public") != 0) {
                transport__errf(err, errlen,
                                "%s:%u: expected \"public KEY\", \"secret KEY\" or KEY", path,
                                lineno);
                return VIGIL_EBADMSG;
            }
        }
        if (!key_z85_valid(value)) {
            transport__errf(err, errlen, "%s:%u: not a %d-character Z85 key", path, lineno,
                            KEY_Z85_LEN);
            return VIGIL_EBADMSG;
        }
        if (*seen) {
            transport__errf(err, errlen, "%s:%u: a second %s key", path, lineno, what);
            return VIGIL_EBADMSG;
        }
        memcpy(dst, value, KEY_Z85_LEN + 1);
        *seen = true;
        line = next;
    }
    return 0;
}

int key_load_public(const char *path, char public_z85[KEY_Z85_LEN + 1], char *err, size_t errlen)
{
    char buf[KEY_FILE_MAX];
    struct key_text kt = {0};
    mode_t mode;
    int rc;

    int fd = open_regular(path, &mode, err, errlen);
    if (fd < 0)
        return fd;
    rc = read_small(fd, path, buf, sizeof buf, err, errlen);
    close(fd);
    if (rc != 0)
        goto fail;
    rc = parse_key_text(path, buf, &kt, err, errlen);
    if (rc != 0)
        goto fail;
    if (kt.has_sec) {
        transport__errf(err, errlen, "%s: holds a secret key; a public key file must not", path);
        rc = VIGIL_EBADMSG;
        goto fail;
    }
    if (!kt.has_pub) {
        transport__errf(err, errlen, "%s: no public key in it", path);
        rc = VIGIL_EBADMSG;
        goto fail;
    }
    memcpy(public_z85, kt.pub, KEY_Z85_LEN + 1);
    rc = 0;
fail:
    explicit_bzero(buf, sizeof buf);
    explicit_bzero(&kt, sizeof kt);
    return rc;
}

int key_load_pair(const char *path, struct keypair *out, char *err, size_t errlen)
{
    char buf[KEY_FILE_MAX];
    struct key_text kt = {0};
    char derived[KEY_Z85_LEN + 1];
    mode_t mode;
    int rc;

    int fd = open_regular(path, &mode, err, errlen);
    if (fd < 0)
        return fd;
    if (mode & (S_IRWXG | S_IRWXO)) {
        close(fd);
        transport__errf(err, errlen,
                        "%s: permissions %04o are too open: a secret key must be readable by "
                        "its owner only (chmod 600)",
                        path, (unsigned)(mode & 07777));
        return -EACCES;
    }
    rc = read_small(fd, path, buf, sizeof buf, err, errlen);
    close(fd);
    if (rc != 0)
        goto fail;
    rc = parse_key_text(path, buf, &kt, err, errlen);
    if (rc != 0)
        goto fail;
    if (!kt.has_pub || !kt.has_sec) {
        transport__errf(err, errlen, "%s: needs both a \"public\" and a \"secret\" line", path);
        rc = VIGIL_EBADMSG;
        goto fail;
    }
    if (zmq_curve_public(derived, kt.sec) != 0 || strcmp(derived, kt.pub) != 0) {
        transport__errf(err, errlen, "%s: the public key does not belong to the secret key",
                        path);
        rc = VIGIL_EBADMSG;
        goto fail;
    }
    memcpy(out->public_z85, kt.pub, sizeof out->public_z85);
    memcpy(out->secret_z85, kt.sec, sizeof out->secret_z85);
    rc = 0;
fail:
    explicit_bzero(buf, sizeof buf);
    explicit_bzero(&kt, sizeof kt);
    return rc;
}

/* ---- writing ------------------------------------------------------------ */

/* Creates dir with mode 0700 (missing parents 0755); an existing directory
 * is fine and left as it is. */
static int make_dir(const char *dir, char *err, size_t errlen)
{
    char buf[TRANSPORT_PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) {
        transport__errf(err, errlen, "%s: path too long", dir);
        return -ENAMETOOLONG;
    }
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = '\0'; /* "keys/" must not make "keys" a 0755 parent */
    if (mkdir(dir, 0700) == 0)
        return 0;
    int e = errno;
    if (e == ENOENT) {
        for (char *p = buf + 1; *p; p++) {
            if (*p != '/')
                continue;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
                e = errno;
                transport__errf(err, errlen, "%s: %s", buf, strerror(e));
                return -e;
            }
            *p = '/';
        }
        if (mkdir(dir, 0700) == 0)
            return 0;
        e = errno;
    }
    struct stat st;
    if (e == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    if (e == EEXIST)
        e = ENOTDIR;
    transport__errf(err, errlen, "%s: %s", dir, strerror(e));
    return -e;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Writes content to dir/base atomically with the given mode: a temporary
 * file, fsync, then rename (force) or link (refuses an existing name). */
static int write_atomic(const char *dir, const char *base, const char *content, mode_t mode,
                        bool force, char *err, size_t errlen)
{
    char tmp[TRANSPORT_PATH_MAX], final[TRANSPORT_PATH_MAX];
    int rc;

    if (snprintf(tmp, sizeof tmp, "%s/.%s.XXXXXX", dir, base) >= (int)sizeof tmp ||
        snprintf(final, sizeof final, "%s/%s", dir, base) >= (int)sizeof final) {
        transport__errf(err, errlen, "%s/%s: path too long", dir, base);
        return -ENAMETOOLONG;
    }
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        transport__errf(err, errlen, "%s: cannot create a file: %s", dir, strerror(-rc));
        return rc;
    }
    if (fchmod(fd, mode) != 0 || (rc = write_all(fd, content, strlen(content))) != 0 ||
        fsync(fd) != 0) {
        rc = -errno;
        close(fd);
        goto fail;
    }
    if (close(fd) != 0) {
        rc = -errno;
        goto fail;
    }
    if (force) {
        if (rename(tmp, final) != 0) {
            rc = -errno;
            goto fail;
        }
        return 0;
    }
    if (link(tmp, final) != 0) {
        rc = -errno;
        goto fail;
    }
    unlink(tmp);
    return 0;
fail:
    unlink(tmp);
    if (rc == -EEXIST)
        transport__errf(err, errlen, "%s: exists (use force to overwrite)", final);
    else
        transport__errf(err, errlen, "%s: %s", final, strerror(-rc));
    return rc;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

int key_generate(const char *dir, const char *name, bool force, char *err, size_t errlen)
{
    char pub[KEY_Z85_LEN + 1], sec[KEY_Z85_LEN + 1];
    char keytext[256], pubtext[256];
    char keyname[KEY_NAME_MAX + 8], pubname[KEY_NAME_MAX + 8];
    char path[TRANSPORT_PATH_MAX];
    bool key_written = false;
    int rc;

    memset(sec, 0, sizeof sec);
    memset(keytext, 0, sizeof keytext);
    if (dir == NULL || dir[0] == '\0' || !key_name_valid(name)) {
        transport__errf(err, errlen,
                        "invalid key name \"%s\": 1-%d characters of A-Z a-z 0-9 . _ -, not "
                        "starting with . or -",
                        name ? name : "", KEY_NAME_MAX);
        return VIGIL_EINVAL;
    }
    snprintf(keyname, sizeof keyname, "%s.key", name);
    snprintf(pubname, sizeof pubname, "%s.pub", name);

    rc = make_dir(dir, err, errlen);
    if (rc != 0)
        return rc;
    if (!force) {
        const char *names[2] = {keyname, pubname};
        for (size_t i = 0; i < 2; i++) {
            struct stat st;
            if (snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= (int)sizeof path) {
                transport__errf(err, errlen, "%s: path too long", dir);
                return -ENAMETOOLONG;
            }
            if (lstat(path, &st) == 0) {
                transport__errf(err, errlen, "%s: exists (use force to overwrite)", path);
                return -EEXIST;
            }
            if (errno != ENOENT) {
                rc = -errno;
                transport__errf(err, errlen, "%s: %s", path, strerror(-rc));
                return rc;
            }
        }
    }

    if (zmq_curve_keypair(pub, sec) != 0) {
        rc = errno == ENOTSUP ? VIGIL_ENOTSUP : -errno;
        transport__errf(err, errlen, "zmq_curve_keypair: %s (is libzmq built with CURVE?)",
                        zmq_strerror(errno));
        goto fail;
    }
    snprintf(keytext, sizeof keytext,
             "# vigil CURVE key pair \"%s\": keep it secret (mode 0600)\n"
             "public %s\n"
             "secret %s\n",
             name, pub, sec);
    snprintf(pubtext, sizeof pubtext,
             "# vigil CURVE public key \"%s\": the aggregator allows it as %s\n"
             "%s\n",
             name, pubname, pub);

    rc = write_atomic(dir, keyname, keytext, 0600, force, err, errlen);
    if (rc != 0)
        goto fail;
    key_written = true;
    rc = write_atomic(dir, pubname, pubtext, 0644, force, err, errlen);
    if (rc != 0)
        goto fail;
    rc = fsync_dir(dir);
    if (rc != 0) {
        transport__errf(err, errlen, "%s: fsync: %s", dir, strerror(-rc));
        goto fail;
    }
    rc = 0;
fail:
    /* A .key without its .pub (or beside an older .pub) is worse than none. */
    if (rc != 0 && key_written &&
        snprintf(path, sizeof path, "%s/%s", dir, keyname) < (int)sizeof path)
        unlink(path);
    explicit_bzero(sec, sizeof sec);
    explicit_bzero(keytext, sizeof keytext);
    return rc;
}
