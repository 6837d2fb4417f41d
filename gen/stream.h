/* stream.h — the bytes of one TCP message, renderable at any offset.
 *
 * A TCP direction carries a sequence of messages (a TLS ClientHello, a
 * server's TLS flight and its encrypted records, an HTTP request head, a
 * response head and its body...). A message is a few dozen bytes of
 * description, never a buffer: its head is re-rendered from a seed when a
 * segment overlaps it, and its body is read from a shared pool of filler
 * bytes at a seed-derived position. So any segment, including a
 * retransmission, can be rebuilt byte for byte, and a session costs no
 * memory for the data it sends — the bench profile holds tens of thousands
 * of open sessions. */
#ifndef VIGIL_GEN_STREAM_H
#define VIGIL_GEN_STREAM_H

#include "tlsmsg.h"

#include <stddef.h>
#include <stdint.h>

/* The filler pool: POOL_SIZE pseudo-random bytes plus a mirrored tail, so
 * pool_at() can return up to POOL_SPAN contiguous bytes from any position. */
#define POOL_SIZE (1u << 20)
#define POOL_SPAN 65536u

void pool_init(uint64_t seed);
const uint8_t *pool_at(uint64_t pos);

enum msg_kind {
    MSG_RAW = 0,   /* filler only */
    MSG_TLS_CH,    /* ClientHello record; body_len is ignored (0) */
    MSG_TLS_SH,    /* ServerHello, ChangeCipherSpec [, encrypted Finished], then app-data records */
    MSG_TLS_APP,   /* [ChangeCipherSpec [, encrypted Finished]] then app-data records */
    MSG_HTTP_REQ,  /* GET head, or POST head plus body_len bytes */
    MSG_HTTP_RESP, /* response head plus body_len bytes */
};

/* msg.sub for MSG_TLS_APP: what precedes the records (a client's first flight). */
#define TLS_APP_PLAIN 0
#define TLS_APP_CCS 1          /* TLS 1.3 middlebox-compatibility CCS */
#define TLS_APP_CCS_FINISHED 2 /* TLS 1.2 resumption: CCS + encrypted Finished */

struct msg {
    uint64_t seed;     /* renders the head; places the body in the pool */
    uint32_t body_len; /* bytes after the head */
    uint16_t hdr_len;  /* bytes of the head */
    uint8_t kind;      /* enum msg_kind */
    uint8_t sub;       /* TLS: enum tls_client_kind (CH/SH) or TLS_APP_*; HTTP resp: 201 flag */
};

/* Sets up a message. name (borrowed) is the SNI or Host. body_len may be
 * raised a little so TLS records frame exactly. Returns the total length
 * (head + body), or 0 if the head cannot be rendered. */
uint64_t msg_init(struct msg *m, enum msg_kind kind, uint8_t sub, uint64_t seed,
                  uint64_t body_len, const char *name);

static inline uint64_t msg_total(const struct msg *m)
{
    return (uint64_t)m->hdr_len + m->body_len;
}

/* Writes bytes [off, off + n) of the message into out; off + n <= total. */
void msg_render(const struct msg *m, const char *name, uint64_t off, uint8_t *out, size_t n);

#endif
