/* main.c — vigil-aggregator: options, then the store, the authenticator and
 * the ingest loop (ingest.h), until SIGTERM/SIGINT.
 *
 * Start order follows transport.h: ZAP handler, store, ROUTER; stop order is
 * the reverse, with zmq_ctx_term last. Signals are blocked in every thread
 * but this one (the mask is set before any thread starts and inherited), so
 * SIGTERM interrupts the ingest loop's poll at once; the handlers only set
 * flags. */
#include "capture.h"
#include "capture_policy.h"
#include "capture_rights.h"
#include "clock.h"
#include "config.h"
#include "detect.h"
#include "err.h"
#include "ingest.h"
#include "log.h"
#include "service.h"
#include "store.h"
#include "transport.h"

#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#define EXIT_USAGE 2
#define DEFAULT_CONFIG "/etc/vigil/aggregator.conf"

/* Everything the aggregator can be told, from its config file or command line. */
struct aggregator_options {
    struct cfg_common common;
    const char *listen;
    const char *db;
    const char *key;
    const char *agents_allow;
    const char *analysts_allow;
    bool insecure;
    uint64_t map_size, map_size_max;
    int64_t flow_retention, minute_retention, hour_retention, day_retention;
    int64_t capture_retention, alert_retention;
    int64_t retention_interval;
    int64_t status_interval;
    uint64_t query_threads;
    const char *capture_allow;
    struct cfg_list capture_on_alert;
    int64_t capture_on_alert_duration;
    uint64_t capture_on_alert_max_bytes, capture_on_alert_max_packets, capture_on_alert_snaplen;
    bool quiet, verbose;
    /* detection (detect.h) */
    const char *alert_log;
    bool no_detect;
    int64_t detect_learning, detect_window, detect_lateness, detect_idle_flush, alert_dedup,
        detect_known_for;
    uint64_t detect_max_keys, scan_ports, scan_success_weight, hscan_targets, fscan_targets,
        fscan_agents, dscan_sources, dns_factor, dns_min_bytes, dns_min_queries, dns_long_name,
        dns_min_entropy, dns_unique_names, dns_default_bytes, beacon_min_connections,
        beacon_max_jitter, beacon_max_size_dev, beacon_rare, exfil_factor, exfil_min_bytes,
        exfil_min_ratio, exfil_default_out;
    int64_t beacon_max_period, exfil_window;
};

#define OPT(field) offsetof(struct aggregator_options, field)
#define STR_(x) #x
#define STR(x) STR_(x)
#define CENTURY_S 3155760000u /* longest duration accepted: retention "forever" */

static const struct cfg_option aggregator_option_table[] = {
    {"listen", 'l', CFG_STRING, OPT(listen), "tcp://0.0.0.0:7400", 0, 0, "ENDPOINT",
     "where agents and analysts connect (ZeroMQ endpoint)", 0},
    {"db", 'd', CFG_STRING, OPT(db), "/var/lib/vigil", 0, 0, "DIR",
     "the LMDB store (created 0700 if missing)", 0},
    {"key", 'k', CFG_STRING, OPT(key), NULL, 0, 0, "FILE",
     "the aggregator's CURVE key pair (NAME.key from 'vigil keygen')", 0},
    {"agents-allow", 'a', CFG_STRING, OPT(agents_allow), NULL, 0, 0, "DIR",
     "allow list of agents: a directory of NAME.pub files", 0},
    {"analysts-allow", 'A', CFG_STRING, OPT(analysts_allow), NULL, 0, 0, "DIR",
     "allow list of analysts (vigil CLI users): a directory of NAME.pub files", 0},
    {"insecure", 0, CFG_BOOL, OPT(insecure), NULL, 0, 0, NULL,
     "plain TCP without CURVE: no encryption, no authentication (test networks only)", 0},
    {"map-size", 0, CFG_BYTES, OPT(map_size), "1G", 1u << 20, 1ull << 42, "SIZE",
     "initial LMDB map size (it grows as needed)", 0},
    {"map-size-max", 0, CFG_BYTES, OPT(map_size_max), "4T", 1u << 20, 1ull << 46, "SIZE",
     "the LMDB map never grows past this", 0},
    {"flow-retention", 0, CFG_DURATION, OPT(flow_retention), "90d", 3600, CENTURY_S, "TIME",
     "keep raw flows (and the host index) this long", 0},
    {"minute-retention", 0, CFG_DURATION, OPT(minute_retention), "7d", 3600, CENTURY_S, "TIME",
     "keep 1-minute rollups this long", 0},
    {"hour-retention", 0, CFG_DURATION, OPT(hour_retention), "90d", 3600, CENTURY_S, "TIME",
     "keep 1-hour rollups this long", 0},
    {"day-retention", 0, CFG_DURATION, OPT(day_retention), "366d", 86400, CENTURY_S, "TIME",
     "keep 1-day rollups (summaries) this long", 0},
    {"capture-job-retention", 0, CFG_DURATION, OPT(capture_retention), "90d", 3600, CENTURY_S,
     "TIME", "keep finished forensic capture jobs (records, not the agents' files) this long "
     "after they end", 0},
    {"alert-retention", 0, CFG_DURATION, OPT(alert_retention), "366d", 3600, CENTURY_S, "TIME",
     "keep alerts this long past their last_seen (event time: behind the newest record)", 0},
    {"retention-interval", 0, CFG_DURATION, OPT(retention_interval), "10m", 0, 86400, "TIME",
     "run retention this often (0: never)", 0},
    {"status-interval", 0, CFG_DURATION, OPT(status_interval), "60s", 0, 86400, "TIME",
     "log a one-line status this often (0: never)", 0},
    {"query-threads", 0, CFG_UINT, OPT(query_threads), "2", 1, SERVICE_MAX_THREADS, "N",
     "threads answering analysts' queries", 0},
    {"capture-allow", 0, CFG_STRING, OPT(capture_allow), NULL, 0, 0, "DIR",
     "analysts who may order forensic captures: NAME.pub files, each the same key as in "
     "--analysts-allow (none: nobody may)", 0},
    {"capture-on-alert", 0, CFG_LIST, OPT(capture_on_alert), NULL, 0, 0, "TYPE[:SEVERITY]",
     "order a forensic capture of the hosts of such an alert on its agents (TYPE '*': any; "
     "SEVERITY: the least that triggers, low/medium/high)", 0},
    {"capture-on-alert-duration", 0, CFG_DURATION, OPT(capture_on_alert_duration), "5m", 1,
     7u * 86400u, "TIME", "how long a capture ordered by an alert runs", 0},
    {"capture-on-alert-max-bytes", 0, CFG_BYTES, OPT(capture_on_alert_max_bytes), "100M", 4096,
     1ull << 40, "SIZE", "byte cap of a capture ordered by an alert", 0},
    {"capture-on-alert-max-packets", 0, CFG_UINT, OPT(capture_on_alert_max_packets), "0", 0,
     UINT64_MAX, "N", "packet cap of a capture ordered by an alert (0: none)", 0},
    {"capture-on-alert-snaplen", 0, CFG_UINT, OPT(capture_on_alert_snaplen), "0", 0,
     CAPTURE_MAX_SNAPLEN, "N", "bytes kept per packet by a capture ordered by an alert (0: all)",
     0},
    /* detection: see the README, "Detection" */
    {"alert-log", 0, CFG_STRING, OPT(alert_log), NULL, 0, 0, "FILE",
     "append every new or updated alert to FILE as a JSON line", 0},
    {"no-detect", 0, CFG_BOOL, OPT(no_detect), NULL, 0, 0, NULL,
     "no baselines, detectors or alerts", 0},
    {"detect-learning", 0, CFG_DURATION, OPT(detect_learning), "7d", 3600, 366u * 86400u, "TIME",
     "history a host's own baseline needs before it replaces the fleet's and the defaults", 0},
    {"detect-window", 0, CFG_DURATION, OPT(detect_window), "5m", 10, 86400, "TIME",
     "scan and DNS windows, from a key's first record (event time)", 0},
    {"detect-lateness", 0, CFG_DURATION, OPT(detect_lateness), "90s", 0, 86400, "TIME",
     "a window closes once the newest record ends this long past it", 0},
    {"detect-idle-flush", 0, CFG_DURATION, OPT(detect_idle_flush), "5s", 1, 86400, "TIME",
     "with no record for this long, evaluate every open window as it is", 0},
    {"alert-dedup", 0, CFG_DURATION, OPT(alert_dedup), "1h", 1, 30u * 86400u, "TIME",
     "an alert whose activity resumes within this long is updated, not repeated", 0},
    {"detect-known-for", 0, CFG_DURATION, OPT(detect_known_for), "35d", 86400, 3650u * 86400u,
     "TIME", "a host's destination not seen for this long is forgotten (new again)", 0},
    {"detect-max-keys", 0, CFG_UINT, OPT(detect_max_keys), "131072", 1024, 1u << 26, "N",
     "capacity of each detector table (memory is bounded; what does not fit is counted)", 0},
    {"scan-ports", 0, CFG_UINT, OPT(scan_ports), "100", 2, 65536, "N",
     "port_scan: distinct ports one source probes on one target in a window", 0},
    {"scan-success-weight", 0, CFG_UINT, OPT(scan_success_weight), "25", 0, 100, "PCT",
     "weight of a probed port or target whose connection succeeded (a failed one counts 100)", 0},
    {"hscan-targets", 0, CFG_UINT, OPT(hscan_targets), "50", 2, 1u << 24, "N",
     "horizontal_scan: distinct targets of one source on one port in a window", 0},
    {"fscan-targets", 0, CFG_UINT, OPT(fscan_targets), "20", 2, 1u << 24, "N",
     "fleet_scan: fleet hosts one source failed to reach in a window", 0},
    {"fscan-agents", 0, CFG_UINT, OPT(fscan_agents), "3", 2, 8, "N",
     "fleet_scan: agents that must have seen the source", 0},
    {"dscan-sources", 0, CFG_UINT, OPT(dscan_sources), "5", 2, 1u << 24, "N",
     "distributed_scan: sources that together sweep one target or one port", 0},
    {"dns-factor", 0, CFG_UINT, OPT(dns_factor), "5", 1, 1000, "N",
     "dns_tunnel: DNS bytes over the host's baseline for the window", 0},
    {"dns-min-bytes", 0, CFG_BYTES, OPT(dns_min_bytes), "32K", 0, 1ull << 40, "SIZE",
     "dns_tunnel: DNS bytes of a host in a window, at least", 0},
    {"dns-min-queries", 0, CFG_UINT, OPT(dns_min_queries), "50", 1, 1u << 30, "N",
     "dns_tunnel: DNS queries of a host in a window, at least", 0},
    {"dns-long-name", 0, CFG_UINT, OPT(dns_long_name), "40", 1, 255, "N",
     "dns_tunnel: characters left of the registered domain that make a name long", 0},
    {"dns-min-entropy", 0, CFG_UINT, OPT(dns_min_entropy), "350", 0, 800, "CENTIBITS",
     "dns_tunnel: Shannon entropy of a long name, bits per character x 100", 0},
    {"dns-unique-names", 0, CFG_UINT, OPT(dns_unique_names), "100", 2, 1u << 24, "N",
     "dns_tunnel: distinct names under one registered domain in a window", 0},
    {"dns-default-bytes", 0, CFG_BYTES, OPT(dns_default_bytes), "128K", 0, 1ull << 40, "SIZE",
     "DNS bytes per host-hour assumed before any baseline is learned", 0},
    {"beacon-min-connections", 0, CFG_UINT, OPT(beacon_min_connections), "6", 3, 16, "N",
     "beacon: contacts (connections started under 1 s apart count once) before judging", 0},
    {"beacon-max-jitter", 0, CFG_UINT, OPT(beacon_max_jitter), "10", 0, 100, "PCT",
     "beacon: median absolute deviation of the intervals, at most this share of the period", 0},
    {"beacon-max-size-dev", 0, CFG_UINT, OPT(beacon_max_size_dev), "20", 0, 1000, "PCT",
     "beacon: median absolute deviation of the bytes sent, at most this share of their median",
     0},
    {"beacon-rare", 0, CFG_UINT, OPT(beacon_rare), "10", 0, 100, "PCT",
     "beacon: the destination is reached by at most this share of the active hosts (1 always)",
     0},
    {"beacon-max-period", 0, CFG_DURATION, OPT(beacon_max_period), "2h", 10, 7u * 86400u, "TIME",
     "beacon: longest period tracked (a pair is forgotten after this long without contact)", 0},
    {"exfil-factor", 0, CFG_UINT, OPT(exfil_factor), "10", 1, 100000, "N",
     "exfiltration: bytes to a new destination over the host's hourly outbound baseline", 0},
    {"exfil-min-bytes", 0, CFG_BYTES, OPT(exfil_min_bytes), "256K", 1, 1ull << 50, "SIZE",
     "exfiltration: bytes to a new destination, at least (the only bar before a baseline)", 0},
    {"exfil-min-ratio", 0, CFG_UINT, OPT(exfil_min_ratio), "4", 0, 1u << 20, "N",
     "exfiltration: bytes sent over bytes received back, at least", 0},
    {"exfil-window", 0, CFG_DURATION, OPT(exfil_window), "1h", 60, 30u * 86400u, "TIME",
     "exfiltration: how long after first contact a destination counts as new", 0},
    {"exfil-default-out", 0, CFG_BYTES, OPT(exfil_default_out), "0", 0, 1ull << 50, "SIZE",
     "outbound bytes per host-hour assumed before any baseline is learned (0: none)", 0},
    {"quiet", 'q', CFG_BOOL, OPT(quiet), NULL, 0, 0, NULL, "only errors and warnings", 0},
    {"verbose", 'v', CFG_BOOL, OPT(verbose), NULL, 0, 0, NULL, "debug detail on stderr", 0},
    {NULL, 0, 0, 0, NULL, 0, 0, NULL, NULL, 0},
};

static const struct cfg_program aggregator_program = {
    .name = "vigil-aggregator",
    .usage = "usage: vigil-aggregator --key FILE --agents-allow DIR [--analysts-allow DIR] "
             "[options]\n"
             "       vigil-aggregator --insecure [options]\n"
             "\n"
             "Receives flow batches from vigil-agent over ZeroMQ (CurveZMQ), stores them in\n"
             "LMDB exactly once, and answers the vigil CLI's queries. Reads " DEFAULT_CONFIG
             "\n"
             "when it exists and --config is not given. SIGTERM/SIGINT: finish the current\n"
             "batch and stop; SIGHUP: re-read the allow lists and the capture right.",
    .version = VIGIL_VERSION,
    .options = aggregator_option_table,
    .common_offset = offsetof(struct aggregator_options, common),
    .default_config = DEFAULT_CONFIG,
};

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void on_hup(int sig)
{
    (void)sig;
    reload_requested = 1;
}

/* Checks what the option table cannot; returns 0 or EXIT_USAGE with a message. */
static int check_options(const struct aggregator_options *o)
{
    if (o->insecure)
        return 0;
    if (!o->key) {
        fprintf(stderr, "vigil-aggregator: --key FILE is required (make one with 'vigil keygen "
                        "--out DIR'), or --insecure for plain TCP\n");
        return EXIT_USAGE;
    }
    if (!o->agents_allow) {
        fprintf(stderr, "vigil-aggregator: --agents-allow DIR is required: without it no agent "
                        "could connect (or --insecure for plain TCP)\n");
        return EXIT_USAGE;
    }
    return 0;
}

static void store_config_from(const struct aggregator_options *o, struct store_config *sc)
{
    store_config_defaults(sc);
    sc->map_size = o->map_size;
    sc->map_size_max = o->map_size_max < o->map_size ? o->map_size : o->map_size_max;
    sc->flow_retention_ns = o->flow_retention;
    sc->minute_retention_ns = o->minute_retention;
    sc->hour_retention_ns = o->hour_retention;
    sc->day_retention_ns = o->day_retention;
    sc->capture_retention_ns = o->capture_retention;
    sc->alert_retention_ns = o->alert_retention;
}

static void detect_config_from(const struct aggregator_options *o, struct detect_config *c)
{
    detect_config_defaults(c);
    c->enabled = !o->no_detect;
    c->alert_log = o->alert_log;
    c->learning_ns = o->detect_learning;
    c->window_ns = o->detect_window;
    c->lateness_ns = o->detect_lateness;
    c->idle_flush_ns = o->detect_idle_flush;
    c->dedup_ns = o->alert_dedup;
    c->max_keys = o->detect_max_keys;
    c->known_keep_ns = o->detect_known_for;
    c->scan_ports = o->scan_ports;
    c->scan_success_pct = o->scan_success_weight;
    c->hscan_targets = o->hscan_targets;
    c->fscan_targets = o->fscan_targets;
    c->fscan_agents = o->fscan_agents;
    c->dscan_sources = o->dscan_sources;
    c->dns_factor = o->dns_factor;
    c->dns_min_bytes = o->dns_min_bytes;
    c->dns_min_queries = o->dns_min_queries;
    c->dns_long_name = o->dns_long_name;
    c->dns_min_entropy_x100 = o->dns_min_entropy;
    c->dns_unique_names = o->dns_unique_names;
    c->default_dns_bytes = o->dns_default_bytes;
    c->beacon_min_connections = o->beacon_min_connections;
    c->beacon_max_jitter_pct = o->beacon_max_jitter;
    c->beacon_max_size_pct = o->beacon_max_size_dev;
    c->beacon_rare_pct = o->beacon_rare;
    c->beacon_max_period_ns = o->beacon_max_period;
    c->exfil_factor = o->exfil_factor;
    c->exfil_min_bytes = o->exfil_min_bytes;
    c->exfil_min_ratio = o->exfil_min_ratio;
    c->exfil_window_ns = o->exfil_window;
    c->default_out_bytes = o->exfil_default_out;
}

int main(int argc, char **argv)
{
    struct aggregator_options opt = {0};
    struct cfg_arena *arena = NULL;
    struct keypair server;
    struct zap_handler *zap = NULL;
    struct store *store = NULL;
    struct ingest *in = NULL;
    struct capture_jobs *captures = NULL;
    struct detect *detect = NULL;
    struct capture_rights *rights = NULL;
    struct capture_policy *policy = NULL;
    void *ctx = NULL;
    char err[512] = "";
    int status = EXIT_FAILURE;
    sigset_t sigs, old;

    log_set_ident("vigil-aggregator");
    switch (cfg_load(&aggregator_program, &opt, argc, argv, &arena)) {
    case CFG_RUN: break;
    case CFG_EXIT_OK: return EXIT_SUCCESS;
    default: return EXIT_USAGE;
    }
    if (opt.quiet)
        vigil_log_level = LOG_LVL_WARN;
    if (opt.verbose)
        vigil_log_level = LOG_LVL_DEBUG;
    if (check_options(&opt) != 0) {
        cfg_arena_free(arena);
        return EXIT_USAGE;
    }
    memset(&server, 0, sizeof server);
    if (!opt.insecure && key_load_pair(opt.key, &server, err, sizeof err) != 0) {
        log_err("cannot use the server key: %s", err);
        goto fail;
    }
    if (opt.insecure && (opt.key || opt.agents_allow || opt.analysts_allow))
        log_warn("--insecure: --key and the allow lists are ignored");

    /* Every thread started from here on inherits this mask: only the main
     * thread takes the signals, so they interrupt its poll. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, &old);
    struct sigaction sa = {.sa_handler = on_stop}; /* no SA_RESTART: poll returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (!(ctx = zmq_ctx_new())) {
        log_err("cannot create a ZeroMQ context: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    /* In insecure mode the handler still sees every connection (and admits
     * it): transport_server refuses to run without one. */
    zap = zap_start(ctx, opt.insecure ? NULL : opt.agents_allow,
                    opt.insecure ? NULL : opt.analysts_allow, err, sizeof err);
    if (!zap) {
        log_err("cannot start the authenticator: %s", err);
        goto fail;
    }
    if (!opt.insecure && !opt.analysts_allow)
        log_warn("no --analysts-allow: nobody can query this aggregator");

    struct store_config sc;
    store_config_from(&opt, &sc);
    if (!(store = store_open(opt.db, &sc, err, sizeof err))) {
        log_err("cannot open the store in %s: %s", opt.db, err);
        goto fail;
    }
    /* Forensic capture: who may order, what alerts order, the jobs. */
    if (!(rights = capture_rights_load(opt.insecure ? NULL : opt.capture_allow,
                                       opt.analysts_allow, err, sizeof err))) {
        log_err("%s", err);
        goto fail;
    }
    struct capture_policy_config pc = {
        .rules = opt.capture_on_alert.items,
        .n_rules = opt.capture_on_alert.count,
        .duration_ns = opt.capture_on_alert_duration,
        .max_bytes = opt.capture_on_alert_max_bytes,
        .max_packets = opt.capture_on_alert_max_packets,
        .snaplen = (uint32_t)opt.capture_on_alert_snaplen,
    };
    if (!(policy = capture_policy_create(&pc, err, sizeof err)) ||
        !(captures = capture_jobs_open(store, err, sizeof err))) {
        log_err("forensic capture: %s", err);
        goto fail;
    }
    capture_jobs_set_rights(captures, rights);
    capture_jobs_set_policy(captures, policy);
    if (capture_rights_count(rights))
        log_info("forensic capture: %zu analysts may order captures", capture_rights_count(rights));
    struct detect_config dc;
    detect_config_from(&opt, &dc);
    dc.on_new_alert = capture_policy_alert_hook; /* --capture-on-alert */
    dc.on_new_alert_ctx = captures;
    if (dc.enabled && !(detect = detect_create(store, &dc, err, sizeof err))) {
        log_err("cannot start detection: %s", err);
        goto fail;
    }
    struct ingest_config ic = {
        .listen = opt.listen,
        .server_keys = opt.insecure ? NULL : &server,
        .insecure = opt.insecure,
        .zap = zap,
        .store = store,
        .query_threads = (unsigned)opt.query_threads,
        .status_interval_ns = opt.status_interval,
        .retention_interval_ns = opt.retention_interval,
        .captures = captures,
        .capture_allow = opt.capture_allow,
        .analysts_allow = opt.analysts_allow,
        .detect = detect,
    };
    if (!(in = ingest_create(ctx, &ic, err, sizeof err))) {
        log_err("cannot listen on %s: %s", opt.listen, err);
        goto fail;
    }
    explicit_bzero(&server, sizeof server);
    log_info("store %s open; flows kept %" PRId64 " d, rollups %" PRId64 " d / %" PRId64
             " d / %" PRId64 " d (minute/hour/day), capture jobs %" PRId64 " d, alerts %" PRId64
             " d",
             opt.db, opt.flow_retention / (86400 * NS_PER_SEC),
             opt.minute_retention / (86400 * NS_PER_SEC),
             opt.hour_retention / (86400 * NS_PER_SEC), opt.day_retention / (86400 * NS_PER_SEC),
             opt.capture_retention / (86400 * NS_PER_SEC),
             opt.alert_retention / (86400 * NS_PER_SEC));

    pthread_sigmask(SIG_SETMASK, &old, NULL); /* this thread takes the signals */
    int rc = ingest_run(in, &stop_requested, &reload_requested);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    if (rc == 0) {
        log_info("stopping: the last batch is applied; closing the store");
        status = EXIT_SUCCESS;
    }
fail:
    explicit_bzero(&server, sizeof server);
    ingest_destroy(in);
    detect_destroy(detect); /* persists what is pending; before the store closes */
    capture_jobs_close(captures);
    capture_policy_free(policy);
    capture_rights_free(rights);
    store_close(store);
    zap_stop(zap);
    if (ctx)
        zmq_ctx_term(ctx);
    cfg_arena_free(arena);
    if (status == EXIT_SUCCESS)
        log_info("stopped");
    return status;
}
