/* capture_job.h — one forensic capture job as the aggregator stores it:
 * one order for one agent, from the order to the agent's last report.
 *
 * Stored in DB_CAPTURES (key: the capture id, no NUL). Value, version 1,
 * integers big-endian, strings as [u16 length][bytes]:
 *   [1][state u8][flags u8: 1 = stop requested]
 *   [created i64][expires i64][duration i64][updated i64][acked i64][finished i64]
 *   [max_bytes u64][max_packets u64][snaplen u32][packets u64][bytes u64][sends u32]
 *   [id][agent][filter][ordered_by][reason][detail]
 *   [file count u16] then per file [name][size u64][sha256]
 * capture_job_decode checks every length and bound; a value that fails is
 * skipped by readers and counted, never trusted.
 *
 * Threads: encode/decode are pure; capture_job_put writes in its own
 * transaction (the store's writer thread only); capture_job_read_all reads
 * a snapshot (any thread, like a query). */
#ifndef VIGIL_CAPTURE_JOB_H
#define VIGIL_CAPTURE_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "transport.h"

#define CAPTURE_ID_MAX 64
#define CAPTURE_FILTER_MAX 4096 /* the transport's bound on a BPF filter */
#define CAPTURE_BY_MAX 128      /* the transport's bound on ordered_by */
#define CAPTURE_REASON_MAX 255
#define CAPTURE_DETAIL_MAX 1024
#define CAPTURE_FILE_NAME_MAX 255
#define CAPTURE_MAX_FILES TRANSPORT_MAX_FILES

enum capture_state {
    CAP_PENDING = 0, /* ordered; the agent has not acknowledged it yet */
    CAP_RUNNING,     /* the agent reported it running */
    CAP_DONE,        /* finished at its duration, a cap or the agent's quota */
    CAP_FAILED,      /* could not start or broke (the detail says why) */
    CAP_STOPPED,     /* stopped by an analyst */
    CAP_EXPIRED,     /* not delivered before it expired */
    CAP_STATE_COUNT
};

/* "pending", "running", ...; "?" when out of range. */
const char *capture_state_name(unsigned state);
/* The state of an agent's report ("running", "done", "failed", "stopped",
 * "expired"); -1 for anything else. */
int capture_state_parse(const char *name);
static inline bool capture_state_final(unsigned s)
{
    return s >= CAP_DONE;
}

struct capture_file_info {
    char name[CAPTURE_FILE_NAME_MAX + 1];
    uint64_t size;
    char sha256[65];
};

struct capture_job {
    char id[CAPTURE_ID_MAX + 1];
    char agent[KEY_NAME_MAX + 1];
    char filter[CAPTURE_FILTER_MAX + 1];
    char ordered_by[CAPTURE_BY_MAX + 1]; /* "analyst:alice", "policy:port_scan" */
    char reason[CAPTURE_REASON_MAX + 1]; /* what the order matched, for people */
    char detail[CAPTURE_DETAIL_MAX + 1]; /* the agent's last word (why it ended) */
    uint8_t state;                       /* enum capture_state */
    bool stop_requested;
    int64_t created_ns, expires_ns, duration_ns, updated_ns;
    int64_t acked_ns;                /* first report from the agent (0: none yet) */
    int64_t finished_ns;             /* when it reached a final state (0: not yet) */
    uint64_t max_bytes, max_packets; /* 0: no cap */
    uint32_t snaplen;                /* 0: full packets */
    uint64_t packets, bytes;
    uint32_t sends;                  /* commands sent to the agent */
    struct capture_file_info *files; /* from malloc(); n_files entries */
    size_t n_files;
};

/* Packs j into *out (malloc'd). Returns 0 or VIGIL_ENOMEM / VIGIL_EINVAL
 * (a field past its bound). */
int capture_job_encode(const struct capture_job *j, uint8_t **out, size_t *len);

/* Decodes a stored value into *j (files malloc'd: capture_job_clear).
 * Returns 0, VIGIL_EBADMSG or VIGIL_ENOMEM. */
int capture_job_decode(const void *data, size_t len, struct capture_job *j);

/* Frees j's files (j itself is the caller's). */
void capture_job_clear(struct capture_job *j);

/* Copies src into dst (files duplicated). Returns 0 or VIGIL_ENOMEM. */
int capture_job_copy(struct capture_job *dst, const struct capture_job *src);

/* Stores jobs[0..n) in one durable write transaction (all or none; the map
 * grows when full). Writer thread only. Returns 0 or a VIGIL_E* code. */
int capture_job_put_many(struct store *s, const struct capture_job *const *jobs, size_t n);
int capture_job_put(struct store *s, const struct capture_job *j);

/* Reads job id into *j (capture_job_clear it). Writer thread. Returns 0,
 * VIGIL_ENOENT, VIGIL_EBADMSG or a store error. */
int capture_job_get(struct store *s, const char *id, struct capture_job *j);

/* Every stored job (newest first) into *out (malloc'd array; free each with
 * capture_job_clear, then the array). *bad counts values that failed to
 * decode. Any thread. Returns 0 or a VIGIL_E* code. */
int capture_job_read_all(struct store *s, struct capture_job **out, size_t *n, uint64_t *bad);

/* Whether agent has ever delivered a batch to this store (writer thread). */
bool capture_agent_known(struct store *s, const char *agent);

#endif
