/* transport_int.h — what the transport's files share and nobody else uses.
 *
 * Not part of the public API (that is transport.h): keys.c, zap.c and
 * transport.c call each other through these. */
#ifndef VIGIL_TRANSPORT_INT_H
#define VIGIL_TRANSPORT_INT_H

#include "transport.h"

#include <stdbool.h>
#include <stdint.h>

/* Longest path built here (Linux's PATH_MAX). */
#define TRANSPORT_PATH_MAX 4096

/* Decodes a key_z85_valid() key into 32 bytes. Returns 0 or VIGIL_EINVAL. */
int key__z85_to_bin(const char *z85, uint8_t out[KEY_BIN_LEN]);

/* True while a handler from zap_start() serves zmq_ctx. */
bool zap__serving(void *zmq_ctx);

/* snprintf into err (when err and errlen are usable); a no-op otherwise. */
void transport__errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
