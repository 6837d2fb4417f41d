/* keep.h — how much of a packet's payload the flow thread may need.
 *
 * The capture thread copies each decoded packet into the ring for the
 * flow thread; copying every payload would double the memory traffic of a
 * full-frame capture. Inspection only ever reads the first bytes of most
 * payloads (labels by signature) and the whole payload of a few: DNS
 * messages, TLS ClientHello records, HTTP requests, QUIC Initials, and the
 * segments that continue a ClientHello split over TCP. This filter tells
 * which, from the packet alone plus a small table of split hellos in
 * progress, so the result is the same on every run. */
#ifndef VIGIL_KEEP_H
#define VIGIL_KEEP_H

#include "flowtab.h"
#include "packet.h"

#include <stdint.h>

/* Bytes kept of a payload that no parser needs whole: enough for every
 * signature meta_app_by_payload() looks at. */
#define KEEP_PREFIX 128u

struct keep_filter;

struct keep_filter *keep_filter_create(void);
void keep_filter_destroy(struct keep_filter *kf);

/* Returns how many of p's captured payload bytes to keep (<= payload_caplen).
 * May build p's flow key (flowtab_prepare) to recognise a split hello. */
uint32_t keep_filter_bytes(struct keep_filter *kf, const struct flowtab *ft, struct pkt *p);

#endif
