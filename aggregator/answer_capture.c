/* answer_capture.c — capture_list: forensic capture jobs and their files,
 * read from the store on a query worker (orders themselves are written on
 * the ingest thread: capture_query.c).
 *
 *   capture_list  id=CAPTURE_ID  agent=NAME  files=0|1 (0)  limit=1..SERVICE_MAX_ROWS (100)
 *   files=0: one row per job, newest first: capture_id, agent, state, packets,
 *            bytes, files (how many), detail, filter, ordered_by, reason, created,
 *            updated, expires, duration (seconds), max_bytes, max_packets, snaplen;
 *            state "stopping" is a running job with a stop on its way
 *   files=1: one row per file: capture_id, agent, file, size, sha256 */
#include "answer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture_job.h"
#include "clock.h"
#include "err.h"
#include "service.h"

static const char *const job_columns[] = {
    "capture_id", "agent",    "state",      "packets",     "bytes",   "files",
    "detail",     "filter",   "ordered_by", "reason",      "created", "updated",
    "expires",    "duration", "max_bytes",  "max_packets", "snaplen", NULL,
};

static const char *const file_columns[] = {"capture_id", "agent", "file", "size", "sha256", NULL};

static void job_row(struct cellbuf *cb, const struct capture_job *j)
{
    cells_reset(cb);
    cell_text(cb, j->id);
    cell_text(cb, j->agent);
    cell_text(cb, j->stop_requested && !capture_state_final(j->state)
                      ? "stopping"
                      : capture_state_name(j->state));
    cell_u64(cb, j->packets);
    cell_u64(cb, j->bytes);
    cell_u64(cb, j->n_files);
    cell_textn(cb, j->detail, strnlen(j->detail, 256));
    cell_textn(cb, j->filter, strnlen(j->filter, 1024));
    cell_text(cb, j->ordered_by);
    cell_textn(cb, j->reason, strnlen(j->reason, 255));
    cell_time(cb, j->created_ns);
    cell_time(cb, j->updated_ns);
    cell_time(cb, j->expires_ns);
    cell_i64(cb, j->duration_ns / NS_PER_SEC);
    cell_u64(cb, j->max_bytes);
    cell_u64(cb, j->max_packets);
    cell_u64(cb, j->snaplen);
}

int answer_capture_list(struct answer *a)
{
    static const char *const known[] = {"id", "agent", "files", "limit", NULL};
    uint64_t files = 0, limit = 100;
    struct capture_job *jobs = NULL;
    size_t n = 0;
    uint64_t bad = 0;
    int rc;

    a->columns = job_columns;
    if ((rc = args_known(a, known)) != 0 || (rc = arg_u64(a, "files", 0, 1, &files)) != 0 ||
        (rc = arg_u64(a, "limit", 1, SERVICE_MAX_ROWS, &limit)) != 0)
        return rc;
    if (files)
        a->columns = file_columns;
    const char *id = arg_find(a, "id"), *agent = arg_find(a, "agent");
    if ((rc = capture_job_read_all(a->st, &jobs, &n, &bad)) != 0) {
        snprintf(a->err, sizeof a->err, "capture_list: the store failed: %s", vigil_strerror(rc));
        return rc;
    }
    size_t shown = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct capture_job *j = &jobs[i];
        if ((id && strcmp(id, j->id) != 0) || (agent && strcmp(agent, j->agent) != 0))
            continue;
        if (shown++ == limit) {
            a->truncated = true;
            break;
        }
        struct cellbuf cb;
        if (!files) {
            job_row(&cb, j);
            rc = answer_row(a, &cb);
            continue;
        }
        for (size_t k = 0; k < j->n_files && rc == 0; k++) {
            cells_reset(&cb);
            cell_text(&cb, j->id);
            cell_text(&cb, j->agent);
            cell_text(&cb, j->files[k].name);
            cell_u64(&cb, j->files[k].size);
            cell_text(&cb, j->files[k].sha256);
            rc = answer_row(a, &cb);
        }
    }
    for (size_t i = 0; i < n; i++)
        capture_job_clear(&jobs[i]);
    free(jobs);
    return rc;
}
