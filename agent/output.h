/* output.h — flow records as JSON lines to a file or standard output. */
#ifndef VIGIL_OUTPUT_H
#define VIGIL_OUTPUT_H

#include "flowrec.h"

#include <stdbool.h>
#include <stdint.h>

struct json_output;

/* path "-" is standard output. Returns NULL with errno set on failure. */
struct json_output *json_output_open(const char *path);

/* Writes one record. After a write error (a full disk, a closed pipe) the
 * output counts the record as lost and reports the error once. */
void json_output_write(struct json_output *out, const struct flow_record *rec);

/* Flushes and closes; returns 0, or a negative errno if any write failed. */
int json_output_close(struct json_output *out, uint64_t *written, uint64_t *lost);

/* An emit callback for the flow table (ctx: struct json_output). */
void json_output_emit(void *ctx, const struct flow_record *rec);

#endif
