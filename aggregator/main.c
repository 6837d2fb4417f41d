/* main.c — vigil-aggregator: options, then the store, the authenticator and
 * the ingest loop (ingest.h), until SIGTERM/SIGINT.
 *
 * Start order follows transport.h: ZAP handler, store, ROUTER; stop order is
 * the reverse, with zmq_ctx_term last. Signals are blocked in every thread
 * but this one (the mask is set before any thread starts and inherited), so
 * SIGTERM interrupts the ingest loop's poll at once; the handlers only set
 * flags. */
#include "clock.h"
#include "config.h"
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
    int64_t retention_interval;
    int64_t status_interval;
    uint64_t query_threads;
    bool quiet, verbose;
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
    {"retention-interval", 0, CFG_DURATION, OPT(retention_interval), "10m", 0, 86400, "TIME",
     "run retention this often (0: never)", 0},
    {"status-interval", 0, CFG_DURATION, OPT(status_interval), "60s", 0, 86400, "TIME",
     "log a one-line status this often (0: never)", 0},
    {"query-threads", 0, CFG_UINT, OPT(query_threads), "2", 1, SERVICE_MAX_THREADS, "N",
     "threads answering analysts' queries", 0},
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
             "batch and stop; SIGHUP: re-read the allow lists.",
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
}

int main(int argc, char **argv)
{
    struct aggregator_options opt = {0};
    struct cfg_arena *arena = NULL;
    struct keypair server;
    struct zap_handler *zap = NULL;
    struct store *store = NULL;
    struct ingest *in = NULL;
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
    struct ingest_config ic = {
        .listen = opt.listen,
        .server_keys = opt.insecure ? NULL : &server,
        .insecure = opt.insecure,
        .zap = zap,
        .store = store,
        .query_threads = (unsigned)opt.query_threads,
        .status_interval_ns = opt.status_interval,
        .retention_interval_ns = opt.retention_interval,
    };
    if (!(in = ingest_create(ctx, &ic, err, sizeof err))) {
        log_err("cannot listen on %s: %s", opt.listen, err);
        goto fail;
    }
    explicit_bzero(&server, sizeof server);
    log_info("store %s open; flows kept %" PRId64 " d, rollups %" PRId64 " d / %" PRId64
             " d / %" PRId64 " d (minute/hour/day)",
             opt.db, opt.flow_retention / (86400 * NS_PER_SEC),
             opt.minute_retention / (86400 * NS_PER_SEC),
             opt.hour_retention / (86400 * NS_PER_SEC), opt.day_retention / (86400 * NS_PER_SEC));

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
    store_close(store);
    zap_stop(zap);
    if (ctx)
        zmq_ctx_term(ctx);
    cfg_arena_free(arena);
    if (status == EXIT_SUCCESS)
        log_info("stopped");
    return status;
}
