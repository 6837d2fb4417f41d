/* transport.h — ZeroMQ sockets with CurveZMQ, key files, the ZAP
 * authenticator, and framing of protobuf Envelopes.
 *
 * Topology: agents and the CLI connect DEALER sockets to the aggregator's
 * ROUTER. CURVE is on unless the caller passes insecure=true (and then
 * says so loudly). The aggregator's ZAP handler admits a client only when
 * its public key is in an allow list: agent keys and analyst keys live in
 * separate lists and the handler tags each connection with a User-Id of
 * "agent:<name>" or "analyst:<name>", which the aggregator reads from
 * every message (an agent key can never act as an analyst).
 *
 * Key files (text, one Z85 key per line, '#' comments allowed):
 *   NAME.pub  — the public key (40 Z85 characters), mode 0644
 *   NAME.key  — "public <z85>" and "secret <z85>" lines, mode 0600
 * An allow list is a directory of *.pub files; the file name (without .pub)
 * is the client's name. */
#ifndef VIGIL_TRANSPORT_H
#define VIGIL_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vigil.pb-c.h"

#define KEY_Z85_LEN 40
#define KEY_NAME_MAX 64

/* Largest message accepted on any socket (ZMQ_MAXMSGSIZE): a batch of a
 * few thousand records is well under 2 MiB; see limits.h. */
#define TRANSPORT_MAX_MSG (16u << 20)

struct keypair {
    char public_z85[KEY_Z85_LEN + 1];
    char secret_z85[KEY_Z85_LEN + 1];
};

/* Generates a CURVE key pair and writes DIR/NAME.key (0600) and DIR/NAME.pub
 * (0644), creating DIR (0700) if needed; refuses to overwrite existing files
 * unless force. Returns 0 or a negative VIGIL_E* code with a message in err. */
int key_generate(const char *dir, const char *name, bool force, char *err, size_t errlen);

/* Loads a .key file (both halves) or a .pub file (public only). A .key
 * readable by group or others is refused. */
int key_load_pair(const char *path, struct keypair *out, char *err, size_t errlen);
int key_load_public(const char *path, char public_z85[KEY_Z85_LEN + 1], char *err, size_t errlen);

/* A short fingerprint of a public key for logs: the first 16 hex digits of
 * its SHA-256. */
void key_fingerprint(const char public_z85[KEY_Z85_LEN + 1], char out[17]);

/* ---- the authenticator (aggregator side) ---------------------------- */

struct zap_handler;

/* Starts the ZAP handler on ctx (a thread serving inproc://zeromq.zap.01).
 * agents_dir and analysts_dir are allow lists (either may be NULL: nobody of
 * that role). Refusals are logged (rate-limited) with the peer address and
 * key fingerprint. Returns NULL with a message in err. */
struct zap_handler *zap_start(void *zmq_ctx, const char *agents_dir, const char *analysts_dir,
                              char *err, size_t errlen);

/* Re-reads both allow lists (on SIGHUP); the old lists stay if a read fails. */
int zap_reload(struct zap_handler *zh, char *err, size_t errlen);

struct zap_stats {
    uint64_t accepted, refused;
};
void zap_get_stats(struct zap_handler *zh, struct zap_stats *out);

void zap_stop(struct zap_handler *zh);

/* ---- sockets ---------------------------------------------------------- */

/* The aggregator's ROUTER: binds endpoint, CURVE server with `server` keys
 * (ignored if insecure), ZMQ_ROUTER_MANDATORY, ZMQ_MAXMSGSIZE. */
void *transport_server(void *zmq_ctx, const char *endpoint, const struct keypair *server,
                       bool insecure, char *err, size_t errlen);

/* A client DEALER (agent or CLI): connects to endpoint as a CURVE client of
 * server_public with its own keys (ignored if insecure). */
void *transport_client(void *zmq_ctx, const char *endpoint, const char *server_public_z85,
                       const struct keypair *client, bool insecure, char *err, size_t errlen);

/* ---- envelopes -------------------------------------------------------- */

/* Serialises an Envelope (schema_version is set here) into a new buffer
 * (*out, malloc'd, caller frees). Returns 0 or VIGIL_ENOMEM. */
int envelope_pack(Vigil__Envelope *env, uint8_t **out, size_t *len);

enum envelope_error {
    ENV_OK = 0,
    ENV_TOO_LARGE,     /* over TRANSPORT_MAX_MSG */
    ENV_UNDECODABLE,   /* protobuf-c refused it */
    ENV_BAD_VERSION,   /* schema_version not understood */
    ENV_NO_BODY,
    ENV_INVALID,       /* decoded, but a field is out of range (see the message) */
};

/* Decodes and validates an Envelope: sizes, counts (records per batch,
 * string lengths), address lengths (4 or 16), timestamps (not negative, not
 * after now + 1 day, end not before start: replayed old captures are
 * legitimate), enum ranges. On success returns ENV_OK and
 * *out (free with envelope_free); otherwise *out is NULL and why holds a
 * short reason for the log. */
enum envelope_error envelope_unpack(const uint8_t *data, size_t len, int64_t now_ns,
                                    Vigil__Envelope **out, char *why, size_t whylen);
void envelope_free(Vigil__Envelope *env);

#endif
