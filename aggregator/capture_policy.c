/* capture_policy.c — captures ordered by alerts (see capture_policy.h). */
#include "capture_policy.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts.h"
#include "clock.h"
#include "err.h"
#include "log.h"

#define SEVERITY_COUNT 3
static const char *const severities[SEVERITY_COUNT] = {"low", "medium", "high"};

struct rule {
    char type[33]; /* "*": any */
    int min_severity;
};

struct capture_policy {
    struct capture_policy_config cfg;
    struct rule rules[CAPTURE_POLICY_MAX_RULES];
    size_t n_rules;
};

static int severity_of(const char *s)
{
    for (int i = 0; i < SEVERITY_COUNT; i++)
        if (s && strcmp(s, severities[i]) == 0)
            return i;
    return -1;
}

/* Alert type names are lower-case words with underscores (DESIGN.md); new
 * types may come, so any such word is accepted. */
static bool type_word(const char *s, size_t n)
{
    if (n == 1 && s[0] == '*')
        return true;
    if (n == 0 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_' || (s[i] >= '0' && s[i] <= '9')))
            return false;
    return true;
}

struct capture_policy *capture_policy_create(const struct capture_policy_config *cfg, char *err,
                                             size_t errlen)
{
    struct capture_policy *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->cfg = *cfg;
    p->cfg.rules = NULL;
    if (p->cfg.duration_ns <= 0)
        p->cfg.duration_ns = CAPTURE_POLICY_DEFAULT_DURATION_NS;
    if (p->cfg.duration_ns > CAPTURE_MAX_DURATION_NS)
        p->cfg.duration_ns = CAPTURE_MAX_DURATION_NS;
    if (p->cfg.max_bytes == 0)
        p->cfg.max_bytes = CAPTURE_POLICY_DEFAULT_MAX_BYTES;
    if (p->cfg.snaplen > CAPTURE_MAX_SNAPLEN) {
        snprintf(err, errlen, "--capture-on-alert-snaplen: at most %u", CAPTURE_MAX_SNAPLEN);
        goto fail;
    }
    if (cfg->n_rules > CAPTURE_POLICY_MAX_RULES) {
        snprintf(err, errlen, "--capture-on-alert: at most %u rules", CAPTURE_POLICY_MAX_RULES);
        goto fail;
    }
    for (size_t i = 0; i < cfg->n_rules; i++) {
        const char *r = cfg->rules[i], *colon = strchr(r, ':');
        size_t tlen = colon ? (size_t)(colon - r) : strlen(r);
        int sev = colon ? severity_of(colon + 1) : 0;
        if (!type_word(r, tlen) || sev < 0) {
            snprintf(err, errlen,
                     "--capture-on-alert: '%s' is not TYPE[:SEVERITY] (TYPE an alert type such "
                     "as port_scan, or '*'; SEVERITY low, medium or high)",
                     r);
            goto fail;
        }
        memcpy(p->rules[i].type, r, tlen);
        p->rules[i].type[tlen] = '\0';
        p->rules[i].min_severity = sev;
        p->n_rules++;
    }
    return p;
fail:
    free(p);
    return NULL;
}

void capture_policy_free(struct capture_policy *p)
{
    free(p);
}

bool capture_policy_matches(const struct capture_policy *p, const char *type, const char *severity)
{
    int sev = severity_of(severity);
    if (!p || !type || sev < 0)
        return false;
    for (size_t i = 0; i < p->n_rules; i++)
        if ((strcmp(p->rules[i].type, "*") == 0 || strcmp(p->rules[i].type, type) == 0) &&
            sev >= p->rules[i].min_severity)
            return true;
    return false;
}

/* "host A or host B ..." over distinct hosts; returns how many were used. */
static size_t build_filter(const struct capture_alert *al, char *buf, size_t len)
{
    size_t used = 0, n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < al->n_hosts && n < CAPTURE_POLICY_MAX_HOSTS; i++) {
        bool dup = false;
        for (size_t k = 0; k < i && !dup; k++)
            dup = memcmp(&al->hosts[k], &al->hosts[i], sizeof al->hosts[i]) == 0;
        if (dup)
            continue;
        char a[ADDR_STRLEN];
        int w = snprintf(buf + used, len - used, "%shost %s", n ? " or " : "",
                         addr_format(&al->hosts[i], a));
        if (w < 0 || (size_t)w >= len - used)
            break;
        used += (size_t)w;
        n++;
    }
    return n;
}

int capture_policy_on_alert(struct capture_policy *p, struct capture_jobs *cj,
                            const struct capture_alert *al, int64_t now_ns,
                            char (*ids)[CAPTURE_ID_MAX + 1])
{
    if (!p || !cj || !capture_policy_matches(p, al->type, al->severity))
        return 0;
    char filter[CAPTURE_POLICY_MAX_HOSTS * (ADDR_STRLEN + 9) + 1];
    if (build_filter(al, filter, sizeof filter) == 0) {
        log_info("capture policy: alert %" PRIu64 " (%s) names no host: nothing to capture", al->id,
                 al->type);
        return 0;
    }
    const char *agents[CAPTURE_ORDER_MAX_AGENTS];
    size_t n = 0;
    struct store *st = capture_jobs_store(cj);
    for (size_t i = 0; i < al->n_agents && n < CAPTURE_ORDER_MAX_AGENTS; i++) {
        const char *a = al->agents[i];
        bool dup = false;
        for (size_t k = 0; k < n && !dup; k++)
            dup = strcmp(agents[k], a) == 0;
        if (dup || !key_name_valid(a) || !capture_agent_known(st, a) ||
            capture_jobs_active_for(cj, a, filter))
            continue;
        agents[n++] = a;
    }
    if (n == 0)
        return 0;
    char by[CAPTURE_BY_MAX + 1], reason[CAPTURE_REASON_MAX + 1], err[512];
    snprintf(by, sizeof by, "policy:%.32s", al->type);
    snprintf(reason, sizeof reason, "alert %" PRIu64 " %s %s", al->id, al->type, al->severity);
    struct capture_order o = {
        .agents = agents,
        .n_agents = n,
        .filter = filter,
        .duration_ns = p->cfg.duration_ns,
        .max_bytes = p->cfg.max_bytes,
        .max_packets = p->cfg.max_packets,
        .snaplen = p->cfg.snaplen,
        .expires_ns = now_ns + p->cfg.duration_ns, /* later, the moment has passed */
        .ordered_by = by,
        .reason = reason,
    };
    char local[CAPTURE_ORDER_MAX_AGENTS][CAPTURE_ID_MAX + 1];
    int rc = capture_jobs_order(cj, &o, now_ns, ids ? ids : local, err, sizeof err);
    if (rc != 0) {
        log_warn("capture policy: alert %" PRIu64 " (%s %s): no capture: %s", al->id, al->type,
                 al->severity, err);
        return rc;
    }
    return (int)n;
}

void capture_policy_alert_hook(void *ctx, const struct alert *a)
{
    struct capture_jobs *cj = ctx;
    struct capture_policy *p = capture_jobs_policy(cj);
    const char *type = alert_type_name(a->type), *sev = alert_severity_name(a->severity);
    if (!p || !type || !sev || !capture_policy_matches(p, type, sev))
        return;
    struct vigil_addr hosts[2 * ALERT_MAX_ADDRS];
    const char *agents[ALERT_MAX_AGENTS];
    size_t nh = 0, na = 0;
    for (unsigned i = 0; i < a->n_sources && i < ALERT_MAX_ADDRS; i++)
        hosts[nh++] = a->sources[i];
    for (unsigned i = 0; i < a->n_targets && i < ALERT_MAX_ADDRS; i++)
        hosts[nh++] = a->targets[i];
    for (unsigned i = 0; i < a->n_agents && i < ALERT_MAX_AGENTS; i++)
        if (memchr(a->agents[i], '\0', ALERT_AGENT_MAX))
            agents[na++] = a->agents[i];
    struct capture_alert al = {
        .id = a->id,
        .type = type,
        .severity = sev,
        .hosts = hosts,
        .n_hosts = nh,
        .agents = agents,
        .n_agents = na,
    };
    capture_policy_on_alert(p, cj, &al, vigil_wallclock_ns(), NULL);
}
