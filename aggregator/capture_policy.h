/* capture_policy.h — forensic capture ordered by alerts: when an alert of a
 * chosen type and severity is first raised, capture the traffic of the
 * hosts involved on the agents that saw it, with the policy's own caps.
 *
 * Rules come from the aggregator's --capture-on-alert TYPE[:SEVERITY]
 * (repeatable; TYPE "*" for any type; SEVERITY low, medium or high, the
 * least severe that triggers, default low). The filter is "host A or host
 * B ..." over the alert's sources and targets (at most
 * CAPTURE_POLICY_MAX_HOSTS); the order is logged and stored like an
 * analyst's, ordered_by "policy:TYPE", with the alert named in its reason.
 * An agent that already runs (or waits for) the same capture is skipped,
 * so an alert updated many times orders once; agents that never connected
 * are skipped.
 *
 * Threads: the ingest thread (where alerts are raised). */
#ifndef VIGIL_CAPTURE_POLICY_H
#define VIGIL_CAPTURE_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "capture.h"

#define CAPTURE_POLICY_MAX_RULES 32u
#define CAPTURE_POLICY_MAX_HOSTS 16u
#define CAPTURE_POLICY_DEFAULT_DURATION_NS (INT64_C(300) * INT64_C(1000000000))
#define CAPTURE_POLICY_DEFAULT_MAX_BYTES (UINT64_C(100) << 20)

struct capture_policy_config {
    const char *const *rules; /* "port_scan", "dns_tunnel:high", "*:medium" */
    size_t n_rules;
    int64_t duration_ns;  /* 0: CAPTURE_POLICY_DEFAULT_DURATION_NS */
    uint64_t max_bytes;   /* 0: CAPTURE_POLICY_DEFAULT_MAX_BYTES */
    uint64_t max_packets; /* 0: none */
    uint32_t snaplen;     /* 0: full packets */
};

/* What the policy needs to know of an alert (all borrowed). */
struct capture_alert {
    uint64_t id;
    const char *type;               /* "port_scan", ... */
    const char *severity;           /* "low", "medium", "high" */
    const struct vigil_addr *hosts; /* sources and targets */
    size_t n_hosts;
    const char *const *agents; /* agents that saw it */
    size_t n_agents;
};

struct capture_policy;

/* Parses the rules. Returns NULL with a message in err (a malformed rule).
 * With no rule the policy never orders anything. */
struct capture_policy *capture_policy_create(const struct capture_policy_config *cfg, char *err,
                                             size_t errlen);
void capture_policy_free(struct capture_policy *p);

/* Whether a rule matches this type and severity. */
bool capture_policy_matches(const struct capture_policy *p, const char *type, const char *severity);

/* Called when an alert is first raised: orders the capture when a rule
 * matches. Returns how many agents got a capture (0 when none matched or
 * all were skipped), or a negative VIGIL_E* code (logged). ids (may be
 * NULL) receives the capture ids, one per agent ordered. */
int capture_policy_on_alert(struct capture_policy *p, struct capture_jobs *cj,
                            const struct capture_alert *alert, int64_t now_ns,
                            char (*ids)[CAPTURE_ID_MAX + 1]);

/* The detection engine's new-alert hook (detect_config.on_new_alert): ctx
 * is the struct capture_jobs whose policy (capture_jobs_policy) decides. */
struct alert;
void capture_policy_alert_hook(void *ctx, const struct alert *a);

#endif
