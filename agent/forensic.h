/* forensic.h — full-packet capture ordered by the aggregator: each order
 * (CaptureStart) runs on its own thread with its own libpcap handle and BPF
 * filter, next to the flow capture, which goes on undisturbed.
 *
 * A capture writes rotating pcap files (forensic_writer.h) into the capture
 * directory and stops at the first of: its duration, its byte cap (the
 * total size of its files, headers included), its packet cap, the agent's
 * quota (every file in the directory together), or a CaptureStop. Caps are
 * checked before each packet is written, so none is ever passed. Every
 * finished file gets its SHA-256.
 *
 * Progress goes back in AgentStatus messages (forensic_pack_status), sent
 * by the exporter over its connection: running captures and the most
 * recent finished ones (FORENSIC_MAX_JOBS in all), states "running",
 * "done", "failed", "stopped" or "expired", with a detail ("byte cap
 * reached", libpcap's message...). The aggregator resends an order until a
 * status mentions it; a repeated order for a known capture id changes
 * nothing.
 *
 * Privileges: a capture opens its handle when ordered, so it needs the
 * right to capture (root or CAP_NET_RAW) at that moment. An agent started
 * with --user has given that right up: its captures fail at once with a
 * clear message. Where forensic capture is wanted, run the agent without
 * --user: as root, or as a service user granted CAP_NET_RAW (systemd's
 * AmbientCapabilities=CAP_NET_RAW). An agent reading a file (-r) refuses
 * captures ("not live").
 *
 * The directory is created 0700 (files 0600) by forensic_create, before
 * privileges are dropped. Retention deletes capture files older than
 * retention_ns (forensic_tick, once a minute).
 *
 * Threads: forensic_command, forensic_pack_status and forensic_tick come
 * from the exporter thread (any one thread); each capture has its own. */
#ifndef VIGIL_FORENSIC_H
#define VIGIL_FORENSIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transport.h"
#include "vigil.pb-c.h"

#define FORENSIC_MAX_JOBS TRANSPORT_MAX_CAPTURES /* remembered (and reported) at once */
#define FORENSIC_MAX_RUNNING 8u                  /* concurrent captures (handles, threads) */
#define FORENSIC_DEFAULT_FILE_SIZE (UINT64_C(100) << 20)
#define FORENSIC_DEFAULT_QUOTA (UINT64_C(1) << 30)
#define FORENSIC_DEFAULT_RETENTION_NS (INT64_C(7) * 86400 * INT64_C(1000000000))
/* An order with no duration runs this long (the quota bounds it anyway). */
#define FORENSIC_DEFAULT_DURATION_NS (INT64_C(600) * INT64_C(1000000000))
#define FORENSIC_MAX_FILES 1000u /* per capture: below TRANSPORT_MAX_FILES */
#define FORENSIC_RING_MIB 8      /* each capture's kernel buffer */
#define FORENSIC_DETAIL_MAX 512

_Static_assert(FORENSIC_MAX_FILES <= TRANSPORT_MAX_FILES, "a status carries every file");
_Static_assert(FORENSIC_MAX_RUNNING <= FORENSIC_MAX_JOBS, "running jobs are remembered");

struct forensic_config {
    const char *iface;    /* live interface; NULL: captures are refused ("not live") */
    const char *dir;      /* capture directory (created 0700) */
    uint64_t file_size;   /* rotate at this size (>= 1 MiB) */
    uint64_t quota;       /* all files in dir together */
    int64_t retention_ns; /* delete capture files older than this; 0: never */
    bool promisc;
    /* Non-NULL: every order is refused with this reason (the directory is
     * then neither needed nor made). */
    const char *refuse;
    /* Tests only: read packets from this capture file instead of iface, as
     * fast as it goes (the agent's -r mode never sets it). */
    const char *offline_file;
};

void forensic_config_defaults(struct forensic_config *cfg);

struct forensic;

/* Creates the directory (0700; an existing one must be a directory owned by
 * us and is tightened to 0700) and measures what it holds for the quota.
 * Returns NULL with a message in err. */
struct forensic *forensic_create(const struct forensic_config *cfg, char *err, size_t errlen);

/* Handles one command (borrowed) from the aggregator: starts or stops a
 * capture, or records why it cannot. wall_now_ns: the agent's clock (for
 * expires_ns). Never blocks on a capture. */
void forensic_command(struct forensic *f, const Vigil__Command *cmd, int64_t wall_now_ns);

/* Packs an Envelope with an AgentStatus naming agent and listing every
 * remembered capture into *out (malloc'd, caller frees). Returns 0 or a
 * negative VIGIL_E* code. */
int forensic_pack_status(struct forensic *f, const char *agent, uint8_t **out, size_t *len);

/* Whether a capture runs, or changed since the last forensic_pack_status
 * (the exporter then reports every couple of seconds, not every half
 * minute). */
bool forensic_busy(struct forensic *f);

/* Reaps finished capture threads, runs retention once a minute. Cheap when
 * there is nothing to do. */
void forensic_tick(struct forensic *f, int64_t wall_now_ns);

/* Deletes capture files older than the retention; returns how many. */
unsigned forensic_retention(struct forensic *f, int64_t wall_now_ns);

/* Has the exporter deliver the aggregator's commands here and carry the
 * statuses back (export_set_control; before export_start). */
struct exporter;
void forensic_attach(struct forensic *f, struct exporter *ex);

/* Stops every capture (files are closed and hashed) and frees f. NULL is fine.
 */
/* At the agent's stop, before the exporter's: ends every running capture
 * ("stopped": the agent stopped), its files closed and hashed, so the last
 * status the exporter sends (export_status_now) reports them. */
void forensic_stop_all(struct forensic *f);

void forensic_destroy(struct forensic *f);

/* For tests and the log: one capture's progress, copied. */
struct forensic_progress {
    char state[16];
    uint64_t packets, bytes;
    size_t files;
    char detail[FORENSIC_DETAIL_MAX];
};
/* Returns 0, or VIGIL_ENOENT when capture_id is unknown. */
int forensic_get(struct forensic *f, const char *capture_id, struct forensic_progress *out);

/* Bytes the quota counts now (every capture file in the directory). */
uint64_t forensic_quota_used(struct forensic *f);

/* Waits (up to timeout_ms) until capture_id is no longer running. Returns
 * 0, or VIGIL_EAGAIN on timeout. For tests and shutdown. */
int forensic_wait(struct forensic *f, const char *capture_id, int timeout_ms);

#endif
