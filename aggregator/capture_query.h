/* capture_query.h — analysts' capture orders (QueryRequest kinds
 * capture_start and capture_stop), answered on the ingest thread; the
 * arguments are listed in capture_query.c and service.h. */
#ifndef VIGIL_CAPTURE_QUERY_H
#define VIGIL_CAPTURE_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture.h"
#include "transport.h"
#include "vigil.pb-c.h"

/* True for the kinds answered here (they write, so not on the workers). */
bool capture_query_handles(const char *kind);

/* Checks the capture right of peer, runs the order and packs the answer (or
 * an error answer) into *out (malloc'd). Returns 0 or VIGIL_ENOMEM. */
int capture_query_answer(struct capture_jobs *cj, const Vigil__QueryRequest *q,
                         const struct transport_peer *peer, int64_t now_ns, uint8_t **out,
                         size_t *len);

#endif
