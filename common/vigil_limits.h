/* vigil_limits.h — every fixed bound of vigil in one place, with its reason. */
#ifndef VIGIL_LIMITS_H
#define VIGIL_LIMITS_H

/* Flow table: a hard capacity so memory is bounded under any flood. The
 * default suits a busy server (NetFlow probes commonly keep 64K-1M). */
#define FLOWTAB_DEFAULT_MAX_FLOWS 262144
#define FLOWTAB_MIN_FLOWS 64u
#define FLOWTAB_MAX_FLOWS (1u << 26)

/* Timeouts follow NetFlow practice (DESIGN.md): idle 15 s, active 60 s;
 * a TCP flow closed by FIN in both directions or by RST lingers briefly so
 * its last ACKs and retransmitted FINs land in the same record. */
#define FLOWTAB_DEFAULT_IDLE_S 15
#define FLOWTAB_DEFAULT_ACTIVE_S 60
#define FLOWTAB_DEFAULT_CLOSE_S 5

/* Emergency mode (after Suricata's flow engine): entered when the table is
 * full, it divides timeouts by this factor until the table drains below
 * the recovery fill. */
#define FLOWTAB_EMERG_DIVISOR 4
#define FLOWTAB_EMERG_RECOVER_PCT 70

/* Expiry wheel: one-second slots; deadlines past the horizon are parked and
 * re-checked, so any timeout works. */
#define FLOWTAB_WHEEL_SLOTS 256u

/* Application metadata: a pool of per-flow string slots (DNS name, SNI,
 * HTTP host, JA4), one per this many flows; flows past it keep counting
 * but lose their metadata (counted). */
#define FLOWTAB_META_RATIO 4u

/* Payload packets inspected per flow before giving up on a label. */
#define FLOWTAB_INSPECT_PKTS 6u

/* TLS ClientHello reassembly over TCP segments: buffers in a pool, each
 * large enough for a ClientHello with post-quantum key shares. */
#define REASM_BUF_BYTES 8192u
#define REASM_POOL 512u

/* IP fragments: first-fragment ports remembered per (addresses, protocol,
 * id) for later fragments; bounded, entries live FRAG_TIMEOUT_S. */
#define FRAGTAB_SLOTS 8192u
#define FRAGTAB_TIMEOUT_S 30

_Static_assert((FLOWTAB_WHEEL_SLOTS & (FLOWTAB_WHEEL_SLOTS - 1)) == 0, "wheel is a power of two");
_Static_assert((FRAGTAB_SLOTS & (FRAGTAB_SLOTS - 1)) == 0, "fragtab is a power of two");
_Static_assert(FLOWTAB_DEFAULT_IDLE_S < FLOWTAB_WHEEL_SLOTS, "idle timeout within the wheel");

#endif
