/* forensic.c — forensic captures ordered by the aggregator (see forensic.h):
 * the table of captures, one thread and one libpcap handle per running
 * capture, caps and the quota, status for the aggregator, retention.
 *
 * The quota is one counter of bytes under f->mu: what the directory held
 * at start, plus every byte a capture reserves before writing it, minus
 * what retention deletes. Reserving before writing is what makes "never
 * over the quota" hold with several captures at once.
 *
 * Each capture's thread owns its handle and writer; what others see
 * (state, counters, file list, detail) is published under f->mu. The
 * packet and byte counters are atomics so a status never waits for a
 * packet. Finished threads are joined by forensic_tick.
 *
 * Non-goals: the network (the exporter carries commands and statuses),
 * pcap file layout (forensic_writer.c). */
#include "forensic.h"

#include "clock.h"
#include "err.h"
#include "export.h"
#include "forensic_writer.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RETENTION_EVERY_NS (60 * NS_PER_SEC)
#define READ_TIMEOUT_MS 100 /* how often a capture looks at its clock and stop flag */
#define DISPATCH_BATCH 256

enum jstate { J_RUNNING = 0, J_DONE, J_FAILED, J_STOPPED, J_EXPIRED };
static const char *const state_names[] = {"running", "done", "failed", "stopped", "expired"};

struct forensic;

struct job {
    bool used;
    uint64_t order; /* arrival order: the oldest finished job is forgotten first */
    char id[65];
    char *filter; /* from malloc() */
    char ordered_by[129];
    uint32_t snaplen;                /* 0 in the order: full packets */
    uint64_t max_bytes, max_packets; /* 0: no cap (the quota still bounds) */
    int64_t duration_ns;
    struct forensic *f;

    /* published under f->mu */
    enum jstate state;
    char detail[FORENSIC_DETAIL_MAX];
    struct fwriter_file *files; /* from malloc(): a copy of the writer's list */
    size_t n_files;
    _Atomic uint64_t packets, bytes;

    /* the capture thread */
    pthread_t thread;
    bool has_thread;      /* joined by forensic_tick / destroy */
    atomic_bool stop;     /* CaptureStop or shutdown */
    atomic_bool finished; /* the thread has published its end */

    /* owned by the capture thread */
    pcap_t *pcap;
    struct fwriter *w;
    uint32_t ts_scale; /* 1: libpcap gives nanoseconds; 1000: microseconds */
    bool ended;
    enum jstate end_state;
    char end_detail[FORENSIC_DETAIL_MAX];
};

struct forensic {
    struct forensic_config cfg;
    char dir[PATH_MAX];
    char iface[256];
    char offline[PATH_MAX];
    char refuse[256];
    int dirfd;

    pthread_mutex_t mu;
    struct job jobs[FORENSIC_MAX_JOBS];
    uint64_t next_order;
    uint64_t used;          /* quota: bytes in the directory, reserved ones included */
    bool changed;           /* since the last status */
    int64_t next_retention; /* wall clock */
    atomic_bool shutting;   /* forensic_stop_all: captures end as "the agent stopped" */
};

void forensic_config_defaults(struct forensic_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->file_size = FORENSIC_DEFAULT_FILE_SIZE;
    cfg->quota = FORENSIC_DEFAULT_QUOTA;
    cfg->retention_ns = FORENSIC_DEFAULT_RETENTION_NS;
    cfg->promisc = true;
}

/* ---- the directory ------------------------------------------------------------------------ */

/* Calls fn for every regular file directly in the directory. */
static void each_file(struct forensic *f,
                      void (*fn)(struct forensic *f, const char *name, const struct stat *st,
                                 void *ctx),
                      void *ctx)
{
    int fd = dup(f->dirfd);
    if (fd < 0)
        return;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    rewinddir(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (e->d_name[0] == '.' || fstatat(f->dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode))
            continue;
        fn(f, e->d_name, &st, ctx);
    }
    closedir(d);
}

static void add_size(struct forensic *f, const char *name, const struct stat *st, void *ctx)
{
    (void)f;
    (void)name;
    *(uint64_t *)ctx += (uint64_t)st->st_size;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Files of capture id: "ID-NNN.pcap". */
static bool file_of(const char *name, const char *id)
{
    size_t k = strlen(id);
    return strncmp(name, id, k) == 0 && name[k] == '-' && has_suffix(name, ".pcap");
}

struct existing {
    const char *id;
    unsigned count;
};

static void count_existing(struct forensic *f, const char *name, const struct stat *st, void *ctx)
{
    (void)f;
    (void)st;
    struct existing *x = ctx;
    if (file_of(name, x->id))
        x->count++;
}

static int open_dir(struct forensic *f, char *err, size_t errlen)
{
    struct stat st;
    if (mkdir(f->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "forensic capture: cannot create %s: %s", f->dir, strerror(errno));
        return -errno;
    }
    f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (f->dirfd < 0) {
        snprintf(err, errlen,
                 "forensic capture: cannot open %s: %s (it must be a directory, "
                 "not a link)",
                 f->dir, strerror(errno));
        return -errno;
    }
    if (fstat(f->dirfd, &st) != 0 || st.st_uid != geteuid()) {
        snprintf(err, errlen,
                 "forensic capture: %s belongs to another user: refusing to "
                 "write full packets there",
                 f->dir);
        return VIGIL_EINVAL;
    }
    /* Full packets are private to the service user, whatever the umask was. */
    if ((st.st_mode & 07777) != 0700 && fchmod(f->dirfd, 0700) != 0) {
        snprintf(err, errlen, "forensic capture: cannot make %s private (0700): %s", f->dir,
                 strerror(errno));
        return -errno;
    }
    return 0;
}

struct forensic *forensic_create(const struct forensic_config *cfg, char *err, size_t errlen)
{
    struct forensic *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->dirfd = -1;
    f->cfg = *cfg;
    pthread_mutex_init(&f->mu, NULL);
    if (cfg->refuse) {
        snprintf(f->refuse, sizeof f->refuse, "%s", cfg->refuse);
        f->cfg.refuse = f->refuse;
        f->cfg.dir = NULL;
        log_info("forensic capture: orders are refused (%s)", f->refuse);
        return f;
    }
    if (!cfg->dir || snprintf(f->dir, sizeof f->dir, "%s", cfg->dir) >= (int)sizeof f->dir) {
        snprintf(err, errlen, "forensic capture: a capture directory (--capture-dir) is needed");
        goto fail;
    }
    if (cfg->file_size < FWRITER_MIN_FILE_SIZE || cfg->quota == 0) {
        snprintf(err, errlen,
                 "forensic capture: the file size must be 1 MiB or more and the "
                 "quota positive");
        goto fail;
    }
    if (cfg->iface)
        snprintf(f->iface, sizeof f->iface, "%s", cfg->iface);
    if (cfg->offline_file)
        snprintf(f->offline, sizeof f->offline, "%s", cfg->offline_file);
    f->cfg.dir = f->dir;
    f->cfg.iface = cfg->iface ? f->iface : NULL;
    f->cfg.offline_file = cfg->offline_file ? f->offline : NULL;
    if (open_dir(f, err, errlen) != 0)
        goto fail;
    each_file(f, add_size, &f->used);
    f->next_retention = 0; /* the first tick runs it */
    log_info("forensic capture: files in %s (%" PRIu64 " MiB used of a %" PRIu64
             " MiB quota), rotated at %" PRIu64 " MiB, kept %" PRId64 " h%s",
             f->dir, f->used >> 20, cfg->quota >> 20, cfg->file_size >> 20,
             cfg->retention_ns / (3600 * NS_PER_SEC),
             f->cfg.iface || f->cfg.offline_file ? "" : "; orders are refused (not live)");
    return f;
fail:
    forensic_destroy(f);
    return NULL;
}

uint64_t forensic_quota_used(struct forensic *f)
{
    pthread_mutex_lock(&f->mu);
    uint64_t u = f->used;
    pthread_mutex_unlock(&f->mu);
    return u;
}

/* ---- one capture (its own thread) --------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void end_job(struct job *j, enum jstate st,
                                                          const char *fmt, ...)
{
    if (j->ended)
        return;
    j->ended = true;
    j->end_state = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->end_detail, sizeof j->end_detail, fmt, ap);
    va_end(ap);
    if (j->pcap)
        pcap_breakloop(j->pcap);
}

/* Copies the writer's file list for others to see (under f->mu). */
static void publish_files(struct job *j)
{
    size_t n;
    const struct fwriter_file *src = fwriter_files(j->w, &n);
    if (n == 0)
        return;
    struct fwriter_file *copy = malloc(n * sizeof *copy);
    if (!copy)
        return; /* the next publish tries again; the end result is what counts */
    memcpy(copy, src, n * sizeof *copy);
    pthread_mutex_lock(&j->f->mu);
    free(j->files);
    j->files = copy;
    j->n_files = n;
    j->f->changed = true;
    pthread_mutex_unlock(&j->f->mu);
}

static void on_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *data)
{
    struct job *j = (struct job *)user;
    struct forensic *f = j->f;
    if (j->ended)
        return;
    uint64_t packets = atomic_load_explicit(&j->packets, memory_order_relaxed);
    uint64_t bytes = atomic_load_explicit(&j->bytes, memory_order_relaxed);
    uint64_t cost = fwriter_cost(j->w, h->caplen);
    if (cost == 0) {
        end_job(j, J_DONE, "file limit reached (%u files)", FORENSIC_MAX_FILES);
        return;
    }
    if (j->max_bytes && bytes + cost > j->max_bytes) {
        end_job(j, J_DONE, "byte cap reached (%" PRIu64 " bytes)", j->max_bytes);
        return;
    }
    pthread_mutex_lock(&f->mu);
    bool room = f->used + cost <= f->cfg.quota;
    if (room)
        f->used += cost;
    pthread_mutex_unlock(&f->mu);
    if (!room) {
        end_job(j, J_DONE, "the agent's capture quota is reached (%" PRIu64 " bytes)",
                f->cfg.quota);
        return;
    }
    size_t files_before;
    fwriter_files(j->w, &files_before);
    char err[300];
    int rc = fwriter_write(j->w, (int64_t)h->ts.tv_sec, (uint32_t)h->ts.tv_usec * j->ts_scale, data,
                           h->caplen, h->len, err, sizeof err);
    uint64_t now_bytes = fwriter_bytes(j->w);
    if (now_bytes - bytes != cost) { /* a failed write: give back what was not written */
        pthread_mutex_lock(&f->mu);
        f->used -= cost - (now_bytes - bytes);
        pthread_mutex_unlock(&f->mu);
    }
    atomic_store_explicit(&j->bytes, now_bytes, memory_order_relaxed);
    if (rc == VIGIL_EFULL) {
        end_job(j, J_DONE, "file limit reached (%u files)", FORENSIC_MAX_FILES);
        return;
    }
    if (rc != 0) {
        end_job(j, J_FAILED, "%s", err);
        return;
    }
    atomic_store_explicit(&j->packets, packets + 1, memory_order_relaxed);
    size_t files_after;
    fwriter_files(j->w, &files_after);
    if (files_after != files_before)
        publish_files(j);
    if (j->max_packets && packets + 1 >= j->max_packets)
        end_job(j, J_DONE, "packet cap reached (%" PRIu64 " packets)", j->max_packets);
}

static pcap_t *open_handle(struct forensic *f, struct job *j, char *err, size_t errlen)
{
    char perr[PCAP_ERRBUF_SIZE] = "";
    pcap_t *p;
    if (f->cfg.offline_file) {
        p = pcap_open_offline_with_tstamp_precision(f->cfg.offline_file, PCAP_TSTAMP_PRECISION_NANO,
                                                    perr);
        if (!p)
            snprintf(err, errlen, "cannot read %s: %s", f->cfg.offline_file, perr);
        return p;
    }
    p = pcap_create(f->cfg.iface, perr);
    if (!p) {
        snprintf(err, errlen, "cannot open %s: %s", f->cfg.iface, perr);
        return NULL;
    }
    pcap_set_snaplen(p, j->snaplen ? (int)j->snaplen : (int)FWRITER_MAX_SNAPLEN);
    pcap_set_promisc(p, f->cfg.promisc);
    pcap_set_timeout(p, READ_TIMEOUT_MS);
    /* Immediate delivery: a capture must hold every packet up to the moment
     * it stops, not those that sat in a ring block. */
    pcap_set_immediate_mode(p, 1);
    pcap_set_buffer_size(p, FORENSIC_RING_MIB << 20);
    pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO);
    int rc = pcap_activate(p);
    if (rc < 0) {
        snprintf(err, errlen, "cannot capture on %s: %s%s%s%s", f->cfg.iface, pcap_statustostr(rc),
                 rc == PCAP_ERROR ? ": " : "", rc == PCAP_ERROR ? pcap_geterr(p) : "",
                 rc == PCAP_ERROR_PERM_DENIED || geteuid() != 0
                     ? " (forensic capture needs root or CAP_NET_RAW: an agent "
                       "started with "
                       "--user has given it up)"
                     : "");
        pcap_close(p);
        return NULL;
    }
    return p;
}

/* Publishes the end and tells forensic_tick to join the thread. */
static void publish_end(struct job *j)
{
    struct forensic *f = j->f;
    pthread_mutex_lock(&f->mu);
    j->state = j->end_state;
    snprintf(j->detail, sizeof j->detail, "%s", j->end_detail);
    f->changed = true;
    pthread_mutex_unlock(&f->mu);
    log_info("forensic capture %s %s: %s; %" PRIu64 " packets, %" PRIu64 " bytes in %zu files",
             j->id, state_names[j->end_state], j->end_detail, atomic_load(&j->packets),
             atomic_load(&j->bytes), j->n_files);
    atomic_store(&j->finished, true);
}

static void *job_main(void *arg)
{
    struct job *j = arg;
    struct forensic *f = j->f;
    char err[PCAP_ERRBUF_SIZE + 300] = "";
    struct bpf_program prog;

    j->pcap = open_handle(f, j, err, sizeof err);
    if (!j->pcap) {
        end_job(j, J_FAILED, "%s", err);
        goto out;
    }
    if (pcap_compile(j->pcap, &prog, j->filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
        end_job(j, J_FAILED, "invalid filter: %s", pcap_geterr(j->pcap));
        goto out;
    }
    int rc = pcap_setfilter(j->pcap, &prog);
    pcap_freecode(&prog);
    if (rc != 0) {
        end_job(j, J_FAILED, "cannot set the filter: %s", pcap_geterr(j->pcap));
        goto out;
    }
    int snap = pcap_snapshot(j->pcap);
    struct fwriter_config wc = {
        .dirfd = f->dirfd,
        .prefix = j->id,
        .linktype = pcap_datalink(j->pcap),
        .snaplen = snap > 0 && (uint32_t)snap <= FWRITER_MAX_SNAPLEN ? (uint32_t)snap
                                                                     : FWRITER_MAX_SNAPLEN,
        .file_size = f->cfg.file_size,
        .max_files = FORENSIC_MAX_FILES,
    };
    if (!(j->w = fwriter_create(&wc, err, sizeof err))) {
        end_job(j, J_FAILED, "%s", err);
        goto out;
    }
    /* The files say nanoseconds; a device without them gives microseconds. */
    j->ts_scale = pcap_get_tstamp_precision(j->pcap) == PCAP_TSTAMP_PRECISION_NANO ? 1 : 1000;
    int64_t deadline = vigil_monotonic_ns() + j->duration_ns;
    struct pollfd pfd = {.fd = -1, .events = POLLIN};
    if (!f->cfg.offline_file) {
        if (pcap_setnonblock(j->pcap, 1, err) != 0 ||
            (pfd.fd = pcap_get_selectable_fd(j->pcap)) < 0) {
            end_job(j, J_FAILED, "capture error: no pollable handle: %s", err);
            pfd.fd = -1;
        }
    }
    while (!j->ended) {
        if (atomic_load(&j->stop)) {
            end_job(j, J_STOPPED,
                    atomic_load(&f->shutting) ? "the agent stopped" : "stopped by order");
            break;
        }
        if (vigil_monotonic_ns() >= deadline) {
            end_job(j, J_DONE, "duration reached");
            break;
        }
        /* A live handle is non-blocking and waited on here: libpcap's own
         * wait can sleep until a matching packet comes (an empty TPACKET_V3
         * block never times out), and the clock and the stop flag must be
         * looked at even when none does. */
        if (pfd.fd >= 0 && poll(&pfd, 1, READ_TIMEOUT_MS) < 0 && errno != EINTR) {
            end_job(j, J_FAILED, "capture error: poll: %s", strerror(errno));
            break;
        }
        int n = pcap_dispatch(j->pcap, DISPATCH_BATCH, on_packet, (u_char *)j);
        if (n == PCAP_ERROR && !j->ended)
            end_job(j, J_FAILED, "capture error: %s", pcap_geterr(j->pcap));
        else if (n == 0 && f->cfg.offline_file && !j->ended)
            end_job(j, J_DONE, "end of the input file");
    }
    if (fwriter_close(j->w, err, sizeof err) != 0 && j->end_state != J_FAILED) {
        j->end_state = J_FAILED;
        snprintf(j->end_detail, sizeof j->end_detail, "%.*s", (int)sizeof j->end_detail - 1,
                 err);
    }
    publish_files(j);
out:
    if (j->pcap) {
        pcap_close(j->pcap);
        j->pcap = NULL;
    }
    publish_end(j);
    return NULL;
}

/* ---- the table of captures ---------------------------------------------------------------- */

static struct job *find_job(struct forensic *f, const char *id)
{
    for (unsigned i = 0; i < FORENSIC_MAX_JOBS; i++)
        if (f->jobs[i].used && strcmp(f->jobs[i].id, id) == 0)
            return &f->jobs[i];
    return NULL;
}

static void job_clear(struct job *j)
{
    free(j->filter);
    free(j->files);
    fwriter_destroy(j->w);
    memset(j, 0, sizeof *j);
}

/* A free slot, else the oldest finished capture's (forgotten: the
 * aggregator has had its final state many statuses ago). */
static struct job *new_job(struct forensic *f)
{
    struct job *oldest = NULL;
    for (unsigned i = 0; i < FORENSIC_MAX_JOBS; i++) {
        struct job *j = &f->jobs[i];
        if (!j->used)
            return j;
        if (j->state != J_RUNNING && !j->has_thread && (!oldest || j->order < oldest->order))
            oldest = j;
    }
    if (oldest)
        job_clear(oldest);
    return oldest;
}

static unsigned running(struct forensic *f)
{
    unsigned n = 0;
    for (unsigned i = 0; i < FORENSIC_MAX_JOBS; i++)
        n += f->jobs[i].used && f->jobs[i].state == J_RUNNING;
    return n;
}

__attribute__((format(printf, 3, 4))) static void refuse(struct job *j, enum jstate st,
                                                         const char *fmt, ...)
{
    j->state = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->detail, sizeof j->detail, fmt, ap);
    va_end(ap);
    log_warn("forensic capture %s not started: %s", j->id, j->detail);
}

static void start_capture(struct forensic *f, const Vigil__CaptureStart *s, int64_t now)
{
    struct job *j = find_job(f, s->capture_id);
    if (j) { /* a resend: the next status answers it */
        f->changed = true;
        return;
    }
    if (!(j = new_job(f))) {
        log_err("forensic capture %s: no room to remember it (every slot runs)", s->capture_id);
        return;
    }
    j->used = true;
    j->order = ++f->next_order;
    j->f = f;
    snprintf(j->id, sizeof j->id, "%s", s->capture_id);
    snprintf(j->ordered_by, sizeof j->ordered_by, "%s", s->ordered_by ? s->ordered_by : "");
    j->filter = strdup(s->filter ? s->filter : "");
    j->snaplen = s->snaplen;
    j->max_bytes = s->max_bytes;
    j->max_packets = s->max_packets;
    j->duration_ns = s->duration_ns > 0 ? s->duration_ns : FORENSIC_DEFAULT_DURATION_NS;
    f->changed = true;

    struct existing x = {.id = j->id};
    if (!j->filter)
        refuse(j, J_FAILED, "out of memory");
    else if (f->cfg.refuse)
        refuse(j, J_FAILED, "%s", f->cfg.refuse);
    else if (!fwriter_prefix_valid(j->id))
        refuse(j, J_FAILED, "the capture id is not usable as a file name");
    else if (s->expires_ns > 0 && now > s->expires_ns)
        refuse(j, J_EXPIRED, "the order expired before it reached the agent");
    else if (!f->cfg.iface && !f->cfg.offline_file)
        refuse(j, J_FAILED, "not live: this agent reads a capture file (-r)");
    else if (running(f) >= FORENSIC_MAX_RUNNING)
        refuse(j, J_FAILED, "%u captures run already on this agent", FORENSIC_MAX_RUNNING);
    else if ((each_file(f, count_existing, &x), x.count) > 0)
        refuse(j, J_FAILED,
               "%u files of this capture exist already (the agent restarted during "
               "it?): left as they are",
               x.count);
    else {
        j->state = J_RUNNING;
        int rc = pthread_create(&j->thread, NULL, job_main, j);
        if (rc != 0)
            refuse(j, J_FAILED, "cannot start a thread: %s", strerror(rc));
        else {
            j->has_thread = true;
            log_info("forensic capture %s started (ordered by %s): filter '%s', %" PRId64
                     " s, at most %" PRIu64 " bytes, %" PRIu64 " packets, snap length %u",
                     j->id, j->ordered_by[0] ? j->ordered_by : "?", j->filter,
                     j->duration_ns / NS_PER_SEC, j->max_bytes, j->max_packets, j->snaplen);
        }
    }
}

static void stop_capture(struct forensic *f, const char *id)
{
    struct job *j = find_job(f, id);
    f->changed = true;
    if (j) {
        if (j->state == J_RUNNING && !atomic_exchange(&j->stop, true))
            log_info("forensic capture %s: stop ordered", id);
        return;
    }
    /* Never started here: remember the stop so a late start is ignored. */
    if (!(j = new_job(f)))
        return;
    j->used = true;
    j->order = ++f->next_order;
    j->f = f;
    snprintf(j->id, sizeof j->id, "%s", id);
    j->state = J_STOPPED;
    snprintf(j->detail, sizeof j->detail, "stopped before it started");
}

void forensic_command(struct forensic *f, const Vigil__Command *cmd, int64_t wall_now_ns)
{
    pthread_mutex_lock(&f->mu);
    if (cmd->kind_case == VIGIL__COMMAND__KIND_CAPTURE_START && cmd->capture_start)
        start_capture(f, cmd->capture_start, wall_now_ns);
    else if (cmd->kind_case == VIGIL__COMMAND__KIND_CAPTURE_STOP && cmd->capture_stop)
        stop_capture(f, cmd->capture_stop->capture_id);
    pthread_mutex_unlock(&f->mu);
}

/* ---- status ------------------------------------------------------------------------------- */

bool forensic_busy(struct forensic *f)
{
    pthread_mutex_lock(&f->mu);
    bool busy = f->changed || running(f) > 0;
    pthread_mutex_unlock(&f->mu);
    return busy;
}

int forensic_pack_status(struct forensic *f, const char *agent, uint8_t **out, size_t *len)
{
    Vigil__AgentStatus st = VIGIL__AGENT_STATUS__INIT;
    Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
    Vigil__CaptureProgress prog[FORENSIC_MAX_JOBS], *progp[FORENSIC_MAX_JOBS];
    Vigil__CaptureFile *filev = NULL, **filep = NULL;
    size_t nfiles = 0, np = 0, k = 0;
    int rc;

    pthread_mutex_lock(&f->mu);
    for (unsigned i = 0; i < FORENSIC_MAX_JOBS; i++)
        if (f->jobs[i].used)
            nfiles += f->jobs[i].n_files;
    if (nfiles) {
        filev = calloc(nfiles, sizeof *filev);
        filep = calloc(nfiles, sizeof *filep);
        if (!filev || !filep) {
            rc = VIGIL_ENOMEM;
            goto done;
        }
    }
    for (unsigned i = 0; i < FORENSIC_MAX_JOBS; i++) {
        struct job *j = &f->jobs[i];
        if (!j->used)
            continue;
        Vigil__CaptureProgress *p = &prog[np];
        vigil__capture_progress__init(p);
        p->capture_id = j->id;
        p->state = (char *)state_names[j->state];
        p->packets = atomic_load_explicit(&j->packets, memory_order_relaxed);
        p->bytes = atomic_load_explicit(&j->bytes, memory_order_relaxed);
        p->error = j->detail;
        p->files = filep + k;
        p->n_files = j->n_files;
        uint64_t earlier = 0;
        for (size_t n = 0; n < j->n_files; n++, k++) {
            vigil__capture_file__init(&filev[k]);
            filev[k].name = j->files[n].name;
            filev[k].sha256 = j->files[n].sha256;
            /* the open file grows between publishes: it holds what the others do not
             */
            filev[k].size = n + 1 < j->n_files || j->files[n].sha256[0]
                                ? j->files[n].size
                                : (p->bytes > earlier ? p->bytes - earlier : 0);
            earlier += filev[k].size;
            filep[k] = &filev[k];
        }
        progp[np++] = p;
    }
    st.agent = (char *)agent;
    st.captures = progp;
    st.n_captures = np;
    env.body_case = VIGIL__ENVELOPE__BODY_STATUS;
    env.status = &st;
    rc = envelope_pack(&env, out, len);
    if (rc == 0)
        f->changed = false;
done:
    pthread_mutex_unlock(&f->mu);
    free(filep);
    free(filev);
    return rc;
}

int forensic_get(struct forensic *f, const char *capture_id, struct forensic_progress *out)
{
    pthread_mutex_lock(&f->mu);
    struct job *j = find_job(f, capture_id);
    if (j) {
        snprintf(out->state, sizeof out->state, "%s", state_names[j->state]);
        out->packets = atomic_load(&j->packets);
        out->bytes = atomic_load(&j->bytes);
        out->files = j->n_files;
        snprintf(out->detail, sizeof out->detail, "%s", j->detail);
    }
    pthread_mutex_unlock(&f->mu);
    return j ? 0 : VIGIL_ENOENT;
}

int forensic_wait(struct forensic *f, const char *capture_id, int timeout_ms)
{
    for (int waited = 0;; waited += 10) {
        struct forensic_progress p;
        if (forensic_get(f, capture_id, &p) != 0 || strcmp(p.state, "running") != 0)
            return 0;
        if (waited >= timeout_ms)
            return VIGIL_EAGAIN;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* ---- upkeep ------------------------------------------------------------------------------- */

struct sweep {
    int64_t cutoff_s;
    unsigned deleted;
    uint64_t freed;
};

static void expire_file(struct forensic *f, const char *name, const struct stat *st, void *ctx)
{
    struct sweep *sw = ctx;
    if (!has_suffix(name, ".pcap") || st->st_mtime >= sw->cutoff_s)
        return;
    for (unsigned i = 0; i < FORENSIC_MAX_JOBS; i++) /* never under a running capture */
        if (f->jobs[i].used && f->jobs[i].state == J_RUNNING && file_of(name, f->jobs[i].id))
            return;
    if (unlinkat(f->dirfd, name, 0) == 0) {
        sw->deleted++;
        sw->freed += (uint64_t)st->st_size;
    } else {
        log_warn("forensic retention: cannot delete %s/%s: %s", f->dir, name, strerror(errno));
    }
}

unsigned forensic_retention(struct forensic *f, int64_t wall_now_ns)
{
    if (f->cfg.retention_ns <= 0 || f->cfg.refuse)
        return 0;
    struct sweep sw = {.cutoff_s = (wall_now_ns - f->cfg.retention_ns) / NS_PER_SEC};
    pthread_mutex_lock(&f->mu);
    each_file(f, expire_file, &sw);
    f->used = f->used > sw.freed ? f->used - sw.freed : 0;
    pthread_mutex_unlock(&f->mu);
    if (sw.deleted)
        log_info("forensic retention: deleted %u capture files (%" PRIu64 " bytes) older than "
                 "%" PRId64 " h",
                 sw.deleted, sw.freed, f->cfg.retention_ns / (3600 * NS_PER_SEC));
    return sw.deleted;
}

void forensic_tick(struct forensic *f, int64_t wall_now_ns)
{
    if (f->cfg.refuse)
        return;
    pthread_t done[FORENSIC_MAX_JOBS];
    unsigned n = 0;
    pthread_mutex_lock(&f->mu);
    for (unsigned i = 0; i < FORENSIC_MAX_JOBS; i++) {
        struct job *j = &f->jobs[i];
        if (j->used && j->has_thread && atomic_load(&j->finished)) {
            done[n++] = j->thread;
            j->has_thread = false;
        }
    }
    pthread_mutex_unlock(&f->mu);
    for (unsigned i = 0; i < n; i++)
        pthread_join(done[i], NULL); /* each has published its end: returns at once */
    if (wall_now_ns >= f->next_retention) {
        f->next_retention = wall_now_ns + RETENTION_EVERY_NS;
        forensic_retention(f, wall_now_ns);
    }
}

/* ---- the exporter's control hooks --------------------------------------------------------- */

static void ctl_command(void *ctx, const Vigil__Command *cmd)
{
    forensic_command(ctx, cmd, vigil_wallclock_ns());
}

static int ctl_status(void *ctx, const char *agent, uint8_t **out, size_t *len)
{
    return forensic_pack_status(ctx, agent, out, len);
}

static bool ctl_busy(void *ctx)
{
    return forensic_busy(ctx);
}

static void ctl_tick(void *ctx)
{
    forensic_tick(ctx, vigil_wallclock_ns());
}

void forensic_attach(struct forensic *f, struct exporter *ex)
{
    struct export_control ctl = {
        .on_command = ctl_command,
        .pack_status = ctl_status,
        .busy = ctl_busy,
        .tick = ctl_tick,
        .ctx = f,
    };
    export_set_control(ex, &ctl);
}

void forensic_stop_all(struct forensic *f)
{
    if (!f)
        return;
    atomic_store(&f->shutting, true);
    pthread_t threads[FORENSIC_MAX_JOBS];
    unsigned n = 0;
    /* taken under the lock as forensic_tick takes them: each joined once */
    pthread_mutex_lock(&f->mu);
    for (unsigned i = 0; i < FORENSIC_MAX_JOBS; i++) {
        struct job *j = &f->jobs[i];
        if (j->used)
            atomic_store(&j->stop, true);
        if (j->used && j->has_thread) {
            threads[n++] = j->thread;
            j->has_thread = false;
        }
    }
    f->changed = true;
    pthread_mutex_unlock(&f->mu);
    for (unsigned i = 0; i < n; i++) /* within READ_TIMEOUT_MS: files closed and hashed */
        pthread_join(threads[i], NULL);
}

void forensic_destroy(struct forensic *f)
{
    if (!f)
        return;
    for (unsigned i = 0; i < FORENSIC_MAX_JOBS; i++)
        if (f->jobs[i].used)
            atomic_store(&f->jobs[i].stop, true);
    for (unsigned i = 0; i < FORENSIC_MAX_JOBS; i++) {
        struct job *j = &f->jobs[i];
        if (j->has_thread) /* ends within READ_TIMEOUT_MS: files closed and hashed
                            */
            pthread_join(j->thread, NULL);
        job_clear(j);
    }
    if (f->dirfd >= 0)
        close(f->dirfd);
    pthread_mutex_destroy(&f->mu);
    free(f);
}
