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
 * is the client's name. Other files in it are ignored; hidden files too.
 *
 * Implementation, one job per file: keys.c (key files, Z85, fingerprints),
 * zap.c (the authenticator thread), transport.c (socket options, User-Id
 * parsing), envelope.c (pack, bounded decode, validation).
 *
 * ---- How the aggregator learns who sent a message ------------------------
 * A ROUTER receive yields [routing id][body]. Call transport_peer_of() (or
 * zmq_msg_gets(msg, "User-Id")) on the BODY frame, the one holding the
 * packed Envelope, received with zmq_msg_recv into a zmq_msg_t (zmq_recv
 * into a plain buffer loses the metadata): it carries the connection's
 * metadata as set by the ZAP handler. The routing-id frame, which the
 * ROUTER makes up itself, carries none (libzmq 4.3: zmq_msg_gets returns
 * NULL on it). "Peer-Address" on the body frame gives the peer's IP
 * address for logs.
 * Then check the role before acting: a FlowBatch or AgentStatus only from
 * TRANSPORT_ROLE_AGENT, a QueryRequest only from TRANSPORT_ROLE_ANALYST
 * (transport_peer_may() does this, insecure mode included), and the
 * batch's `agent` field must equal the peer's name.
 *
 * ---- Insecure mode (--insecure) -------------------------------------------
 * The server socket runs ZeroMQ's NULL mechanism (no encryption, no keys)
 * under the ZAP domain TRANSPORT_ZAP_DOMAIN_INSECURE, so the ZAP handler
 * still sees every connection. It admits every peer and tags it
 * "insecure:<peer IP address>"; such a peer may act as agent AND analyst
 * (transport_peer_may() returns true for both roles), so an aggregator in
 * this mode must log a loud warning at start. The handler accepts the NULL
 * mechanism only under that domain, and only the aggregator's own socket
 * sets the domain, so a secure socket never admits a keyless peer.
 *
 * ---- Order of start and stop ----------------------------------------------
 * zap_start() before transport_server() (the server refuses to start on a
 * context with no ZAP handler: CURVE with no handler admits any key);
 * close the server socket before zap_stop(); zmq_ctx_term() last. */
#ifndef VIGIL_TRANSPORT_H
#define VIGIL_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zmq.h>

#include "vigil.pb-c.h"

#define KEY_Z85_LEN 40
#define KEY_BIN_LEN 32 /* a CURVE key decoded from Z85 */
#define KEY_NAME_MAX 64
#define KEY_FINGERPRINT_LEN 16 /* hex digits */

/* Largest message accepted on any socket (ZMQ_MAXMSGSIZE): a batch of a
 * few thousand records is well under 2 MiB. */
#define TRANSPORT_MAX_MSG (16u << 20)

/* Bounds checked by envelope_unpack, each with its reason:
 * - records per FlowBatch: agents send a few thousand per batch; 64 Ki
 *   leaves room and bounds the decoded size. The same figure bounds EVERY
 *   repeated field before protobuf-c allocates anything (a 2-byte empty
 *   element would otherwise cost ~300 bytes of memory each).
 * - decoded size: protobuf-c's allocations for one message, estimated
 *   from the wire before decoding (so 16 MiB of tiny elements cannot
 *   become gigabytes); a full legitimate batch needs well under half. */
#define TRANSPORT_MAX_RECORDS 65536u
#define TRANSPORT_MAX_DECODED (128u << 20)
#define TRANSPORT_MAX_DEPTH 16u     /* nesting of messages (the schema uses 4) */
#define TRANSPORT_MAX_QUERY_ARGS 32u
#define TRANSPORT_MAX_COLUMNS 64u   /* columns of a QueryResponse, cells per row */
#define TRANSPORT_MAX_CAPTURES 64u  /* CaptureProgress per AgentStatus */
#define TRANSPORT_MAX_FILES 1024u   /* files per CaptureProgress */

/* Socket tuning, with reasons:
 * - HWM: per peer; batches are acked one window at a time, so a few
 *   hundred queued messages means a peer is not keeping up and TCP
 *   back-pressure should take over rather than memory.
 * - heartbeats: a dead peer (cable pulled, host frozen) is noticed within
 *   the timeout, not after the kernel's TCP timeout of minutes.
 * - reconnect: first retry fast, back off to 5 s so a refused or absent
 *   aggregator is not hammered.
 * - handshake: an unauthenticated peer cannot hold a half-open handshake. */
#define TRANSPORT_HWM 256
#define TRANSPORT_LINGER_MS 1000         /* server: pending acks on close */
#define TRANSPORT_HEARTBEAT_IVL_MS 5000
#define TRANSPORT_HEARTBEAT_TIMEOUT_MS 15000
#define TRANSPORT_RECONNECT_IVL_MS 100
#define TRANSPORT_RECONNECT_MAX_MS 5000
#define TRANSPORT_HANDSHAKE_MS 10000
#define TRANSPORT_KEEPALIVE_IDLE_S 60
#define TRANSPORT_KEEPALIVE_INTVL_S 10
#define TRANSPORT_KEEPALIVE_CNT 6

/* ZAP domains the server socket announces (RFC 27 "domain" frame). */
#define TRANSPORT_ZAP_DOMAIN "vigil"
#define TRANSPORT_ZAP_DOMAIN_INSECURE "vigil-insecure"

_Static_assert(TRANSPORT_MAX_MSG <= TRANSPORT_MAX_DECODED, "a decodable message fits the budget");
_Static_assert(TRANSPORT_MAX_QUERY_ARGS <= TRANSPORT_MAX_RECORDS, "per-kind limits are tighter");
_Static_assert(TRANSPORT_RECONNECT_IVL_MS < TRANSPORT_RECONNECT_MAX_MS, "backoff grows");
_Static_assert(TRANSPORT_HEARTBEAT_IVL_MS < TRANSPORT_HEARTBEAT_TIMEOUT_MS,
               "several pings per timeout");

struct keypair {
    char public_z85[KEY_Z85_LEN + 1];
    char secret_z85[KEY_Z85_LEN + 1];
};

/* Generates a CURVE key pair and writes DIR/NAME.key (0600) and DIR/NAME.pub
 * (0644), creating DIR (0700) if needed; refuses to overwrite existing files
 * unless force. Returns 0 or a negative VIGIL_E* code with a message in err.
 * Missing parents of DIR are created 0755; an existing DIR keeps its mode.
 * Each file is written to a temporary name, fsync'd and then renamed (force)
 * or hard-linked into place (no force: the link fails if the name appeared
 * meanwhile, so nothing is ever overwritten); the directory is fsync'd.
 * Errors: VIGIL_EINVAL (bad name), -EEXIST (a file is there and !force),
 * VIGIL_ENOTSUP (libzmq built without CURVE), other negative errno values
 * from the file system. On failure no new file is left behind. */
int key_generate(const char *dir, const char *name, bool force, char *err, size_t errlen);

/* Loads a .key file (both halves) or a .pub file (public only). A .key
 * readable by group or others is refused. key_load_pair also checks that the
 * public half belongs to the secret half. A .pub holding a "secret" line is
 * refused (a secret must never sit in a world-readable file). Returns 0,
 * -EACCES (permissions), VIGIL_EBADMSG (syntax, bad Z85, mismatch, file
 * over 4 KiB) or another negative errno from open/read. *out is written
 * only on success. */
int key_load_pair(const char *path, struct keypair *out, char *err, size_t errlen);
int key_load_public(const char *path, char public_z85[KEY_Z85_LEN + 1], char *err, size_t errlen);

/* True when z85 is exactly KEY_Z85_LEN characters of the Z85 alphabet that
 * decode to 32 bytes (each 5-character group at most 2^32 - 1). */
bool key_z85_valid(const char *z85);

/* True for a client or key name: 1..KEY_NAME_MAX characters of
 * [A-Za-z0-9._-], not starting with '.' or '-'. */
bool key_name_valid(const char *name);

/* A short fingerprint of a public key for logs: the first 16 hex digits of
 * the SHA-256 of its 32 decoded bytes; "????????????????" if the key is not
 * valid Z85. key_fingerprint_bin does the same from the decoded bytes (the
 * ZAP handler has those). */
void key_fingerprint(const char public_z85[KEY_Z85_LEN + 1], char out[17]);
void key_fingerprint_bin(const uint8_t key[KEY_BIN_LEN], char out[17]);

/* ---- the authenticator (aggregator side) ---------------------------- */

struct zap_handler;

/* Starts the ZAP handler on ctx (a thread serving inproc://zeromq.zap.01).
 * agents_dir and analysts_dir are allow lists (either may be NULL: nobody of
 * that role). Refusals are logged (rate-limited) with the peer address and
 * key fingerprint. Returns NULL with a message in err.
 * A list that cannot be read, a file that is not a valid .pub, an invalid
 * client name, more than ZAP_MAX_KEYS keys, or one key under two names (in
 * one list or across both: its role would be ambiguous) is an error.
 * Replies (RFC 27, version "1.0"): 200 with User-Id "agent:NAME",
 * "analyst:NAME" or, on an insecure socket, "insecure:ADDRESS"; 400 for
 * an unknown key, another mechanism or another domain; 500 for a
 * malformed request. Only one handler can serve a context. */
#define ZAP_MAX_KEYS 65536u /* per allow list */
struct zap_handler *zap_start(void *zmq_ctx, const char *agents_dir, const char *analysts_dir,
                              char *err, size_t errlen);

/* Re-reads both allow lists (on SIGHUP); the old lists stay if a read fails.
 * Connections already admitted stay admitted (ZAP runs at the handshake);
 * a key removed from a list is refused from its next connection on. */
int zap_reload(struct zap_handler *zh, char *err, size_t errlen);

struct zap_stats {
    uint64_t accepted, refused;
};
void zap_get_stats(struct zap_handler *zh, struct zap_stats *out);

/* Stops the thread and frees zh (NULL is fine). Returns within ~100 ms. */
void zap_stop(struct zap_handler *zh);

/* ---- sockets ---------------------------------------------------------- */

/* The aggregator's ROUTER: binds endpoint, CURVE server with `server` keys
 * (ignored if insecure), ZMQ_ROUTER_MANDATORY, ZMQ_MAXMSGSIZE.
 * Refuses (NULL) when no ZAP handler from zap_start() serves zmq_ctx.
 * Also: ZAP domain (see above), bounded linger, HWMs, heartbeats, TCP
 * keepalive, handshake timeout. With ZMQ_ROUTER_MANDATORY a send to a peer
 * that is gone fails with EHOSTUNREACH, and to a peer at its HWM blocks (or
 * fails with EAGAIN under ZMQ_DONTWAIT): nothing is dropped silently.
 * The returned socket belongs to the calling thread; close it with
 * zmq_close. "tcp://127.0.0.1:*" binds an ephemeral port (ZMQ_LAST_ENDPOINT). */
void *transport_server(void *zmq_ctx, const char *endpoint, const struct keypair *server,
                       bool insecure, char *err, size_t errlen);

/* A client DEALER (agent or CLI): connects to endpoint as a CURVE client of
 * server_public with its own keys (ignored if insecure).
 * Also: ZMQ_IMMEDIATE (nothing is queued for a connection that is not
 * complete: a send blocks, or fails with EAGAIN under ZMQ_DONTWAIT, until the
 * handshake succeeded — the agent keeps unsent batches in its own spool),
 * linger 0, reconnect 100 ms backing off to 5 s, heartbeats, keepalive. A
 * refused client keeps retrying at that pace and never gets a message
 * through. */
void *transport_client(void *zmq_ctx, const char *endpoint, const char *server_public_z85,
                       const struct keypair *client, bool insecure, char *err, size_t errlen);

/* ---- who sent a message ------------------------------------------------ */

enum transport_role {
    TRANSPORT_ROLE_NONE = 0, /* no or unknown User-Id: treat as refused */
    TRANSPORT_ROLE_AGENT,
    TRANSPORT_ROLE_ANALYST,
    TRANSPORT_ROLE_INSECURE, /* insecure mode: may act as either */
};

struct transport_peer {
    enum transport_role role;
    char name[KEY_NAME_MAX + 1]; /* client name; the IP address when insecure */
};

/* Parses a User-Id set by the ZAP handler. Returns 0, or VIGIL_EINVAL (and
 * out->role = NONE) for anything else. */
int transport_peer_parse(const char *user_id, struct transport_peer *out);

/* transport_peer_parse of zmq_msg_gets(msg, "User-Id") (msg borrowed: a
 * received body frame). VIGIL_ENOENT when the frame has no User-Id. */
int transport_peer_of(zmq_msg_t *msg, struct transport_peer *out);

/* True when the peer may act in `role` (AGENT or ANALYST). */
bool transport_peer_may(const struct transport_peer *peer, enum transport_role role);

/* ---- envelopes -------------------------------------------------------- */

/* Serialises an Envelope (schema_version is set here) into a new buffer
 * (*out, malloc'd, caller frees). Returns 0 or VIGIL_ENOMEM, or
 * VIGIL_ERANGE when the result would exceed TRANSPORT_MAX_MSG (the peer
 * would drop it: send fewer records). */
int envelope_pack(Vigil__Envelope *env, uint8_t **out, size_t *len);

enum envelope_error {
    ENV_OK = 0,
    ENV_TOO_LARGE,     /* over TRANSPORT_MAX_MSG */
    ENV_UNDECODABLE,   /* protobuf-c refused it */
    ENV_BAD_VERSION,   /* schema_version not understood */
    ENV_NO_BODY,
    ENV_INVALID,       /* decoded, but a field is out of range (see the message) */
    ENV_ERROR_COUNT
};

/* A stable lower-case name per error ("too_large", ...) for counters. */
const char *envelope_error_name(enum envelope_error e);

/* Decodes and validates an Envelope: sizes, counts (records per batch,
 * string lengths), address lengths (4 or 16), timestamps (not negative, not
 * after now + 1 day, end not before start: replayed old captures are
 * legitimate), enum ranges. On success returns ENV_OK and
 * *out (free with envelope_free); otherwise *out is NULL and why holds a
 * short reason for the log.
 *
 * Before protobuf-c runs, the wire bytes are walked once (guided by the
 * generated descriptors): element counts of every repeated field
 * (TRANSPORT_MAX_RECORDS), nesting (TRANSPORT_MAX_DEPTH) and the memory the
 * decode would allocate (TRANSPORT_MAX_DECODED) are bounded (ENV_INVALID);
 * broken wire structure is ENV_UNDECODABLE.
 *
 * After decoding, two classes of strings:
 *   token — printable ASCII (0x20..0x7e): identifiers and protocol values
 *           (agent names, with no space, 1..64; JA4, state, app, direction,
 *           tunnel <= 64; DNS name, SNI, HTTP host <= 255 — the agent's
 *           parsers only emit printable ASCII; capture ids 1..64; query
 *           kind 1..32, arg keys 1..64; BPF filter <= 4096);
 *   text  — valid UTF-8 (no overlongs, surrogates or code points past
 *           U+10FFFF) without control characters (C0, DEL, C1), so it can
 *           reach a terminal: query arg values <= 1024 bytes, errors, column
 *           names and cells, file names (no '/', not "." or "..").
 * A string holding a NUL byte is seen (and validated) up to the NUL:
 * protobuf-c hands C strings over.
 * Per flow record: src/dst 4 or 16 bytes and of one family, ports <=
 * 65535, proto <= 255, vlan <= 4095, ICMP type/code <= 255, end_reason a
 * known EndReason, 0 <= start_ns <= end_ns <= now + 1 day, TCP flags <= 255,
 * dns_qtype <= 65535, dns_rcode <= 15, and bytes >= 20 x packets in each
 * direction (bytes count whole IP packets and no IP header is shorter
 * than 20 bytes; anything else is an impossible record, not a rounding).
 * FlowBatch: agent as above, seq >= 1, <= TRANSPORT_MAX_RECORDS records,
 * sent_ns and counters.started_ns in [0, now + 1 day].
 * Command: one kind set, capture ids as above, durations and snaplen in
 * range. AgentStatus, QueryRequest (<= 32 args, keys unique),
 * QueryResponse (<= 64 columns, <= 64 cells a row): bounded as above. */
enum envelope_error envelope_unpack(const uint8_t *data, size_t len, int64_t now_ns,
                                    Vigil__Envelope **out, char *why, size_t whylen);
void envelope_free(Vigil__Envelope *env);

#endif
