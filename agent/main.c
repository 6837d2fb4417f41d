/* main.c — vigil-agent: options, then capture -> decode -> flow table -> output. */
#include "capture.h"
#include "clock.h"
#include "config.h"
#include "decode.h"
#include "err.h"
#include "flowtab.h"
#include "export.h"
#include "forensic.h"
#include "keep.h"
#include "vigil_limits.h"
#include "log.h"
#include "output.h"
#include "pipeline.h"
#include "privdrop.h"
#include "transport.h"

#include <stddef.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_USAGE 2

/* Everything the agent can be told, from its config file or command line. */
struct agent_options {
    struct cfg_common common;
    const char *read_file;
    const char *interface;
    const char *filter;
    uint64_t snaplen;
    uint64_t buffer_bytes;
    bool no_promisc;
    const char *user;
    uint64_t max_flows;
    int64_t idle_timeout, active_timeout, tcp_close_timeout;
    struct cfg_list local_nets;
    const char *agent_name;
    const char *json_path;
    const char *aggregator;
    const char *server_key;
    const char *key;
    const char *spool;
    uint64_t spool_max;
    bool insecure;
    uint64_t batch_records;
    int64_t batch_interval;
    int64_t stop_grace;
    const char *capture_dir;
    uint64_t capture_file_size, capture_quota;
    int64_t capture_retention;
    bool no_capture;
    bool quiet, verbose;
};

#define OPT(field) offsetof(struct agent_options, field)
#define STR_(x) #x
#define STR(x) STR_(x)

static const struct cfg_option agent_option_table[] = {
    {"read", 'r', CFG_STRING, OPT(read_file), NULL, 0, 0, "FILE",
     "read a pcap or pcapng file ('-' for standard input)", CFG_CLI_ONLY},
    {"interface", 'i', CFG_STRING, OPT(interface), NULL, 0, 0, "IFACE",
     "capture live until SIGINT/SIGTERM", 0},
    {"filter", 'f', CFG_STRING, OPT(filter), NULL, 0, 0, "BPF",
     "capture only packets matching the filter", 0},
    {"snaplen", 's', CFG_UINT, OPT(snaplen), "1600", 64, 262144, "N",
     "live: bytes kept per packet: headers plus the first application bytes", 0},
    {"buffer-size", 'B', CFG_BYTES, OPT(buffer_bytes), "64M", 1u << 20, 4ull << 30, "SIZE",
     "live: capture ring size", 0},
    {"no-promisc", 0, CFG_BOOL, OPT(no_promisc), NULL, 0, 0, NULL,
     "live: do not put the interface in promiscuous mode", 0},
    {"user", 'u', CFG_STRING, OPT(user), NULL, 0, 0, "NAME",
     "drop root for NAME once the capture is open", 0},
    {"max-flows", 0, CFG_UINT, OPT(max_flows), STR(FLOWTAB_DEFAULT_MAX_FLOWS), FLOWTAB_MIN_FLOWS,
     FLOWTAB_MAX_FLOWS, "N", "flow table capacity (memory is fixed at start)", 0},
    {"idle-timeout", 0, CFG_DURATION, OPT(idle_timeout), STR(FLOWTAB_DEFAULT_IDLE_S) "s", 1,
     86400, "TIME", "end a flow after this long without packets", 0},
    {"active-timeout", 0, CFG_DURATION, OPT(active_timeout), STR(FLOWTAB_DEFAULT_ACTIVE_S) "s",
     1, 86400, "TIME", "report a long flow this often (partial records)", 0},
    {"tcp-close-timeout", 0, CFG_DURATION, OPT(tcp_close_timeout),
     STR(FLOWTAB_DEFAULT_CLOSE_S) "s", 1, 86400, "TIME",
     "end a TCP flow this long after FIN both ways or RST", 0},
    {"local-net", 'l', CFG_LIST, OPT(local_nets), NULL, 0, 0, "CIDR",
     "a local network, for the direction field", 0},
    {"agent-name", 'n', CFG_STRING, OPT(agent_name), NULL, 0, 0, "NAME",
     "name written into each record", 0},
    {"json", 'j', CFG_STRING, OPT(json_path), NULL, 0, 0, "FILE",
     "write JSON lines, one per flow record ('-' = stdout)", 0},
    {"aggregator", 'a', CFG_STRING, OPT(aggregator), NULL, 0, 0, "ENDPOINT",
     "send records to the aggregator at ENDPOINT, e.g. tcp://collector:7400", 0},
    {"server-key", 0, CFG_STRING, OPT(server_key), NULL, 0, 0, "FILE",
     "the aggregator's public key (.pub)", 0},
    {"key", 'k', CFG_STRING, OPT(key), NULL, 0, 0, "FILE",
     "this agent's key pair (.key, mode 0600); its name is the agent's name", 0},
    {"spool", 0, CFG_STRING, OPT(spool), "/var/lib/vigil-agent/spool", 0, 0, "DIR",
     "keep batches here until the aggregator acknowledges them", 0},
    {"spool-max", 0, CFG_BYTES, OPT(spool_max), "1G", 1u << 20, 1ull << 40, "SIZE",
     "spool bound: past it the oldest batches are dropped (counted, reported)", 0},
    {"insecure", 0, CFG_BOOL, OPT(insecure), NULL, 0, 0, NULL,
     "talk to the aggregator over plain TCP, without CurveZMQ", 0},
    {"batch-records", 0, CFG_UINT, OPT(batch_records), "2000", 1, 65536, "N",
     "records per batch at most", 0},
    {"batch-interval", 0, CFG_DURATION, OPT(batch_interval), "1s", 0, 60, "TIME",
     "a batch leaves at least this often when records wait", 0},
    {"stop-grace", 0, CFG_DURATION, OPT(stop_grace), STR(EXPORT_DEFAULT_STOP_GRACE_S) "s", 0,
     3600, "TIME",
     "at exit, wait this long for the aggregator to acknowledge what is in flight; the rest "
     "stays in the spool for the next start (a replay into a busy aggregator: longer)", 0},
    {"capture-dir", 0, CFG_STRING, OPT(capture_dir), "/var/lib/vigil-agent/capture", 0, 0, "DIR",
     "forensic capture files ordered by the aggregator (created 0700, files 0600)", 0},
    {"capture-file-size", 0, CFG_BYTES, OPT(capture_file_size), "100M", 1u << 20, 1ull << 40,
     "SIZE", "forensic capture: start a new file before one passes SIZE", 0},
    {"capture-quota", 0, CFG_BYTES, OPT(capture_quota), "1G", 1u << 20, 1ull << 50, "SIZE",
     "forensic capture: every file in --capture-dir together never passes SIZE", 0},
    {"capture-retention", 0, CFG_DURATION, OPT(capture_retention), "7d", 0, 3650u * 86400u,
     "TIME", "forensic capture: delete files older than TIME (0: never)", 0},
    {"no-capture", 0, CFG_BOOL, OPT(no_capture), NULL, 0, 0, NULL,
     "refuse the aggregator's forensic capture orders", 0},
    {"quiet", 'q', CFG_BOOL, OPT(quiet), NULL, 0, 0, NULL,
     "only errors on stderr (the summary is still printed)", 0},
    {"verbose", 'v', CFG_BOOL, OPT(verbose), NULL, 0, 0, NULL, "more detail on stderr", 0},
    {NULL, 0, 0, 0, NULL, 0, 0, NULL, NULL, 0},
};

static const struct cfg_program agent_program = {
    .name = "vigil-agent",
    .usage = "usage: vigil-agent (-r FILE | -i IFACE) [options]\n"
             "\n"
             "Summarises packets into bidirectional flow records. On exit a one-line\n"
             "summary goes to stderr.",
    .version = VIGIL_VERSION,
    .options = agent_option_table,
    .common_offset = offsetof(struct agent_options, common),
    .default_config = NULL,
};

struct agent {
    struct decode_ctx dec;
    struct capture *cap;
    struct exporter *exporter;
    struct forensic *forensic; /* capture orders from the aggregator */
    struct flowtab *table;
    struct pipeline *pipe; /* to the flow thread, which owns the table while it runs */
    struct keep_filter *keep; /* which payload bytes the flow thread needs */
    int dlt;
    uint64_t packets, bytes;
    int64_t first_ts, last_ts;
};

static volatile sig_atomic_t stop_requested;
static struct capture *running_capture;

static struct exporter *running_exporter;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
    capture_break(running_capture);
    if (running_exporter)
        export_request_stop(running_exporter);
}

/* Turns parsed options into the capture and flow-table settings; returns
 * 0 or EXIT_USAGE with a message printed. */
static int check_options(const struct agent_options *o, struct capture_config *cap,
                         struct flowtab_config *table, struct cidr_set *nets)
{
    if (!o->read_file == !o->interface) {
        fprintf(stderr, "vigil-agent: give exactly one of -r FILE or -i IFACE (see --help)\n");
        return EXIT_USAGE;
    }
    if (o->aggregator && !o->insecure && (!o->server_key || !o->key)) {
        fprintf(stderr, "vigil-agent: --aggregator needs --server-key and --key "
                        "(or --insecure for plain TCP)\n");
        return EXIT_USAGE;
    }
    if (!o->aggregator && !o->json_path)
        log_warn("neither --json nor --aggregator given: only the summary will be printed");
    for (unsigned i = 0; i < o->local_nets.count; i++) {
        if (cidr_set_add(nets, o->local_nets.items[i]) != 0) {
            fprintf(stderr, "vigil-agent: --local-net: '%s' is not a network like 10.0.0.0/8 "
                            "or fd00::/8\n", o->local_nets.items[i]);
            return EXIT_USAGE;
        }
    }
    *cap = (struct capture_config){
        .file = o->read_file,
        .iface = o->interface,
        .snaplen = (int)o->snaplen,
        .buffer_mib = (int)(o->buffer_bytes >> 20),
        .filter = o->filter,
        .promisc = !o->no_promisc,
        .timeout_ms = 100,
    };
    flowtab_config_defaults(table);
    table->max_flows = (uint32_t)o->max_flows;
    table->idle_ns = o->idle_timeout;
    table->active_ns = o->active_timeout;
    table->close_ns = o->tcp_close_timeout;
    table->local_nets = nets;
    table->agent_name = o->agent_name;
    return 0;
}

static void report_counters(struct agent *a, struct capture *cap, struct exporter *ex);

static void on_packet(void *ctx, int64_t ts_ns, const uint8_t *data, uint32_t caplen,
                      uint32_t wirelen)
{
    struct agent *a = ctx;
    struct pkt p;
    if ((++a->packets & 0xffff) == 0)
        report_counters(a, a->cap, a->exporter);
    a->bytes += wirelen;
    if (a->first_ts == 0)
        a->first_ts = ts_ns;
    a->last_ts = ts_ns;
    if (decode_packet(&a->dec, a->dlt, data, caplen, wirelen, ts_ns, &p) == DECODE_OK) {
        uint32_t keep = keep_filter_bytes(a->keep, a->table, &p);
        if (!p.has_key && pipeline_backlogged(a->pipe))
            flowtab_prepare(a->table, &p);
        pipeline_push(a->pipe, &p, keep);
    }
}

static void on_idle(void *ctx, int64_t now_ns)
{
    struct agent *a = ctx;
    report_counters(a, a->cap, a->exporter);
    pipeline_tick(a->pipe, now_ns);
}

/* Where records go: a JSON file, the aggregator, both, or nowhere. */
struct sinks {
    struct json_output *json;
    struct exporter *exporter;
};

static void emit_record(void *ctx, const struct flow_record *rec)
{
    struct sinks *s = ctx;
    if (s->json)
        json_output_emit(s->json, rec);
    if (s->exporter)
        export_emit(s->exporter, rec);
}

/* The agent's own totals, sent with each batch. */
static void report_counters(struct agent *a, struct capture *cap, struct exporter *ex)
{
    if (!ex)
        return;
    struct capture_stats cs;
    capture_get_stats(cap, &cs);
    struct batch_counters c = {
        .packets = a->packets,
        .bytes = a->bytes,
        .decode_errors = decode_errors_total(&a->dec.stats),
        .capture_drops = cs.dropped,
        .interface_drops = cs.ifdropped,
    };
    export_update_counters(ex, &c);
}

static void print_summary(const struct agent *a, const struct capture_stats *cs,
                          const struct flowtab_stats *ts, uint64_t records, uint64_t lost,
                          double elapsed)
{
    fprintf(stderr,
            "vigil-agent: summary: packets=%" PRIu64 " bytes=%" PRIu64 " flows=%" PRIu64
            " records=%" PRIu64 " records_lost=%" PRIu64 " decode_errors=%" PRIu64
            " not_ip=%" PRIu64 " evictions=%" PRIu64 " emergency=%" PRIu64 " drops=%" PRIu64
            " ifdrops=%" PRIu64 " elapsed=%.3fs pps=%.0f\n",
            a->packets, a->bytes, ts->flows_created, records, lost,
            decode_errors_total(&a->dec.stats), a->dec.stats.not_ip, ts->evictions,
            ts->emergency_entered, cs->dropped, cs->ifdropped, elapsed,
            elapsed > 0 ? (double)a->packets / elapsed : 0.0);
    if (vigil_log_level >= LOG_LVL_DEBUG) {
        for (unsigned i = 0; i < DEC_ERR_COUNT; i++)
            if (a->dec.stats.err[i])
                log_debug("decode errors %s: %" PRIu64, decode_error_name((enum decode_error)i),
                          a->dec.stats.err[i]);
    }
}

/* Loads the keys while still root (they are readable by root only). */
static int load_keys(const struct agent_options *o, struct keypair *kp,
                     char server_pub[KEY_Z85_LEN + 1])
{
    char err[256];
    if (key_load_pair(o->key, kp, err, sizeof err) != 0 ||
        key_load_public(o->server_key, server_pub, err, sizeof err) != 0) {
        log_err("%s", err);
        return VIGIL_EINVAL;
    }
    return 0;
}

/* The agent's name: --agent-name, else the name of its key file. */
static const char *agent_name_of(const struct agent_options *o, char *buf, size_t len)
{
    if (o->agent_name || !o->key)
        return o->agent_name;
    const char *base = strrchr(o->key, '/');
    base = base ? base + 1 : o->key;
    snprintf(buf, len, "%s", base);
    char *dot = strrchr(buf, '.');
    if (dot && strcmp(dot, ".key") == 0)
        *dot = '\0';
    return buf;
}

int main(int argc, char **argv)
{
    struct agent_options opt = {0};
    struct agent agent = {0};
    struct capture_config capcfg;
    struct flowtab_config tabcfg;
    struct cidr_set nets = {0};
    struct cfg_arena *arena = NULL;
    struct sinks sinks = {0};
    struct keypair keys;
    char server_pub[KEY_Z85_LEN + 1] = "";
    char name_buf[KEY_NAME_MAX + 8];
    char errbuf[CAPTURE_ERRBUF_SIZE] = "";
    int status = EXIT_FAILURE;

    log_set_ident("vigil-agent");
    switch (cfg_load(&agent_program, &opt, argc, argv, &arena)) {
    case CFG_RUN: break;
    case CFG_EXIT_OK: return EXIT_SUCCESS;
    default: return EXIT_USAGE;
    }
    if (opt.quiet)
        vigil_log_level = LOG_LVL_ERR;
    if (opt.verbose)
        vigil_log_level = LOG_LVL_DEBUG;
    if (check_options(&opt, &capcfg, &tabcfg, &nets) != 0) {
        status = EXIT_USAGE;
        goto done;
    }
    const char *name = agent_name_of(&opt, name_buf, sizeof name_buf);
    tabcfg.agent_name = name;
    if (opt.aggregator && !opt.insecure && load_keys(&opt, &keys, server_pub) != 0)
        goto done;

    agent.cap = capture_open(&capcfg, errbuf);
    if (!agent.cap) {
        log_err("%s", errbuf);
        goto done;
    }
    agent.dlt = capture_datalink(agent.cap);
    if (!decode_link_supported(agent.dlt)) {
        const char *lt = pcap_datalink_val_to_name(agent.dlt);
        log_warn("link type %d (%s) is not supported: its packets are counted as decode errors",
                 agent.dlt, lt ? lt : "unknown");
    }
    /* The capture directory is made while still root; captures themselves
     * need the right to capture when ordered (see forensic.h). */
    if (opt.aggregator) {
        struct forensic_config fc;
        char err[512];
        forensic_config_defaults(&fc);
        fc.iface = opt.interface;
        fc.dir = opt.capture_dir;
        fc.file_size = opt.capture_file_size;
        fc.quota = opt.capture_quota;
        fc.retention_ns = opt.capture_retention;
        fc.promisc = !opt.no_promisc;
        if (opt.no_capture)
            fc.refuse = "forensic capture is turned off on this agent (--no-capture)";
        else if (!opt.interface)
            fc.refuse = "this agent reads a capture file: forensic capture needs a live interface";
        static char unavailable[640];
        if (!(agent.forensic = forensic_create(&fc, err, sizeof err)) && !fc.refuse) {
            /* Flows come first: without its capture directory the agent runs
             * on and refuses capture orders, saying why to the aggregator. */
            snprintf(unavailable, sizeof unavailable, "forensic capture is unavailable: %s", err);
            log_warn("%s (capture orders will be refused; see --capture-dir)", unavailable);
            fc.refuse = unavailable;
            agent.forensic = forensic_create(&fc, err, sizeof err);
        }
        if (!agent.forensic) {
            log_err("%s", err);
            goto done;
        }
        if (opt.user && !opt.no_capture)
            log_warn("--user %s: forensic capture orders will fail (capturing needs root or "
                     "CAP_NET_RAW); see --no-capture",
                     opt.user);
    }
    if (opt.user && privdrop_to_user(opt.user) != 0)
        goto done;

    if (opt.json_path) {
        sinks.json = json_output_open(opt.json_path);
        if (!sinks.json) {
            log_err("cannot write %s: %s", opt.json_path, strerror(errno));
            goto done;
        }
    }
    if (opt.aggregator) {
        struct export_config ec;
        char err[512];
        export_config_defaults(&ec);
        ec.endpoint = opt.aggregator;
        ec.insecure = opt.insecure;
        ec.server_public_z85 = opt.insecure ? NULL : server_pub;
        ec.client = opt.insecure ? NULL : &keys;
        ec.agent_name = name;
        ec.spool_dir = opt.spool;
        ec.spool_max_bytes = opt.spool_max;
        ec.batch_records = (uint32_t)opt.batch_records;
        ec.batch_ms = (uint32_t)(opt.batch_interval / NS_PER_MS);
        if (ec.batch_ms == 0)
            ec.batch_ms = 1;
        sinks.exporter = export_create(&ec, err, sizeof err);
        explicit_bzero(&keys, sizeof keys);
        if (!sinks.exporter) {
            log_err("%s", err);
            goto done;
        }
        agent.exporter = sinks.exporter;
        if (agent.forensic)
            forensic_attach(agent.forensic, sinks.exporter);
    }
    agent.table = flowtab_create(&tabcfg, emit_record, &sinks);
    if (!agent.table) {
        log_err("cannot create the flow table (%u flows): out of memory?", tabcfg.max_flows);
        goto done;
    }

    /* Threads start only now: after the privileges were dropped. */
    if (sinks.exporter) {
        export_attach_flowtab(sinks.exporter, agent.table);
        if (export_start(sinks.exporter) != 0) {
            log_err("cannot start the exporter thread");
            goto done;
        }
        report_counters(&agent, agent.cap, sinks.exporter);
    }
    agent.keep = keep_filter_create();
    agent.pipe = pipeline_start(agent.table, 16u << 20);
    if (!agent.pipe || !agent.keep) {
        log_err("cannot start the flow thread");
        goto done;
    }

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    running_capture = agent.cap;
    running_exporter = sinks.exporter;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    status = EXIT_SUCCESS;
    int64_t t0 = vigil_monotonic_ns();
    if (capture_run(agent.cap, &stop_requested, on_packet, on_idle, &agent, errbuf) != 0) {
        log_err("reading %s stopped: %s", opt.read_file ? opt.read_file : opt.interface, errbuf);
        status = EXIT_FAILURE;
    }
    double capture_cpu = pipeline_caller_cpu_seconds();
    double flow_cpu = pipeline_finish(agent.pipe);
    agent.pipe = NULL;
    double elapsed = (double)(vigil_monotonic_ns() - t0) / 1e9;
    running_capture = NULL;

    struct capture_stats cs;
    capture_get_stats(agent.cap, &cs);
    report_counters(&agent, agent.cap, sinks.exporter);
    flowtab_flush(agent.table, END_SHUTDOWN);
    struct flowtab_stats ts;
    flowtab_get_stats(agent.table, &ts);
    uint64_t written = ts.records_emitted, lost = 0;
    if (sinks.json && json_output_close(sinks.json, &written, &lost) != 0)
        status = EXIT_FAILURE;
    sinks.json = NULL;
    if (agent.forensic) {
        /* running captures end now and the aggregator hears so before we go */
        forensic_stop_all(agent.forensic);
        export_status_now(sinks.exporter);
    }
    if (sinks.exporter) {
        int rc = export_stop(sinks.exporter, (uint32_t)(opt.stop_grace / NS_PER_MS));
        struct export_stats es;
        export_get_stats(sinks.exporter, &es);
        lost += es.records_lost;
        if (rc == VIGIL_EAGAIN)
            log_info("the aggregator has not acknowledged everything yet: the rest waits in "
                     "%s for the next start", opt.spool);
        else if (rc != 0)
            status = EXIT_FAILURE;
        if (!opt.json_path)
            written = es.records_in;
    }
    print_summary(&agent, &cs, &ts, written, lost, elapsed);
    log_debug("threads: capture+decode %.3f s CPU, flows+output %.3f s CPU; %zu bytes per "
              "flow-table entry",
              capture_cpu, flow_cpu, flowtab_bytes_per_flow(agent.table));
done:
    running_exporter = NULL;
    pipeline_finish(agent.pipe);
    export_destroy(sinks.exporter);
    forensic_destroy(agent.forensic); /* after the exporter: it calls into it */
    json_output_close(sinks.json, NULL, NULL);
    flowtab_destroy(agent.table);
    keep_filter_destroy(agent.keep);
    capture_close(agent.cap);
    cfg_arena_free(arena);
    return status;
}
