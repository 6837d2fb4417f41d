/* capture_rights.h — which analysts may order forensic captures: the
 * aggregator's --capture-allow directory of NAME.pub files, a subset of the
 * analysts allow list.
 *
 * The right belongs to a key, not a name: NAME.pub here must hold the same
 * public key as NAME.pub in the analysts allow list (the key the ZAP
 * handler admitted the analyst with); a file that does not is a
 * configuration error. Nobody has the right when no directory is given,
 * and an insecure (keyless) peer never has it.
 *
 * Threads: built and reloaded on the ingest thread, read there. */
#ifndef VIGIL_CAPTURE_RIGHTS_H
#define VIGIL_CAPTURE_RIGHTS_H

#include <stdbool.h>
#include <stddef.h>

#include "transport.h"

struct capture_rights;

/* Reads capture_dir (NULL: an empty set) against analysts_dir. Returns NULL
 * with a message in err when a file is not a valid .pub, its name is not a
 * valid client name, or its key is not that analyst's. */
struct capture_rights *capture_rights_load(const char *capture_dir, const char *analysts_dir,
                                           char *err, size_t errlen);

/* True when peer is an analyst (by key) holding the capture right. */
bool capture_rights_allow(const struct capture_rights *r, const struct transport_peer *peer);

size_t capture_rights_count(const struct capture_rights *r);

void capture_rights_free(struct capture_rights *r);

#endif
