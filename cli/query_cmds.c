/* query_cmds.c — `vigil agents`, `vigil flows`, `vigil top`: options to a
 * QueryRequest (service.h on the aggregator lists the kinds and their
 * arguments), the answer to the chosen output.
 *
 * Time words are resolved here, with this machine's clock: --since 1h is
 * sent as an absolute time, so the aggregator only ever sees numbers.
 * Each command's options are validated before anything is sent (a wrong
 * value exits 2 with the option's name).
 *
 * Connection settings (connect, key, server-key, insecure, timeout, format)
 * can live in a config file shared by every query command; filters are
 * command-line only. */
#include "cli.h"

#include "addr.h"
#include "clock.h"
#include "config.h"
#include "err.h"
#include "transport.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- times ---------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (eras of 400 years). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* n decimal digits at *p into *v; advances *p. */
static bool digits(const char **p, int n, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        *v = *v * 10 + (unsigned)(c - '0');
    }
    *p += n;
    return true;
}

static bool leap(unsigned y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int cli_parse_rfc3339(const char *text, int64_t *ns)
{
    static const unsigned mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = text;
    unsigned y, mo, d, h = 0, mi = 0, s = 0;
    int64_t frac = 0, offset = 0;

    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d))
        return VIGIL_EINVAL;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 ||
        d > mdays[mo - 1] + (mo == 2 && leap(y) ? 1u : 0u))
        return VIGIL_EINVAL;
    if (*p) {
        if (*p != 'T' && *p != 't' && *p != ' ')
            return VIGIL_EINVAL;
        p++;
        if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' ||
            !digits(&p, 2, &s) || h > 23 || mi > 59 || s > 60)
            return VIGIL_EINVAL;
        if (*p == '.') {
            p++;
            int n = 0;
            int64_t scale = NS_PER_SEC;
            while (*p >= '0' && *p <= '9') {
                if (n < 9) {
                    scale /= 10;
                    frac += (*p - '0') * scale;
                }
                n++;
                p++;
            }
            if (n == 0)
                return VIGIL_EINVAL;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1;
            unsigned oh, om;
            if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) || oh > 23 || om > 59)
                return VIGIL_EINVAL;
            offset = sign * (int64_t)(oh * 3600 + om * 60);
        } else {
            return VIGIL_EINVAL; /* a time without a zone is ambiguous */
        }
        if (*p)
            return VIGIL_EINVAL;
    }
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset;
    if (secs < 0 || secs > INT64_MAX / NS_PER_SEC - 1)
        return VIGIL_EINVAL;
    *ns = secs * NS_PER_SEC + frac;
    return 0;
}

int cli_parse_when(const char *text, int64_t now_ns, int64_t *ns)
{
    int64_t d;
    if (strcmp(text, "all") == 0) {
        *ns = 0;
        return 0;
    }
    if (strcmp(text, "now") == 0) {
        *ns = now_ns;
        return 0;
    }
    if (cfg_parse_duration(text, &d) == 0) {
        *ns = d >= now_ns ? 0 : now_ns - d;
        return 0;
    }
    return cli_parse_rfc3339(text, ns);
}

/* ---- the config file ------------------------------------------------------------ */

const char *cli_default_config(void)
{
    static char path[4096];
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(path, sizeof path, "%s/vigil/cli.conf", xdg);
    else if (home && *home)
        snprintf(path, sizeof path, "%s/.config/vigil/cli.conf", home);
    else
        path[0] = '\0';
    if (path[0] && access(path, R_OK) == 0)
        return path;
    return "/etc/vigil/cli.conf";
}

/* ---- options ------------------------------------------------------------------ */

struct query_options {
    struct cfg_common common;
    struct conn_options conn; /* cli.h */
    const char *host, *port, *proto, *app, *since, *until, *by, *group;
    uint64_t limit;
    bool oldest_first;
    uint64_t share; /* top --share PCT; 0: off */
};

#define QOPT(field) offsetof(struct query_options, field)
#define MAX_ROWS 50000u

#define RANGE_OPTIONS                                                                           \
    {"since", 's', CFG_STRING, QOPT(since), "24h", 0, 0, "WHEN",                                \
     "from: a duration back from now (30m, 24h, 7d), an RFC 3339 time, or 'all'",               \
     CFG_CLI_ONLY},                                                                             \
    {"until", 'u', CFG_STRING, QOPT(until), NULL, 0, 0, "WHEN",                                 \
     "to (exclusive), same forms; default: everything up to now", CFG_CLI_ONLY}

#define CFG_END CONN_CFG_END

static const struct cfg_option agents_table[] = {CONN_OPTIONS(struct query_options, conn, "5s"), CFG_END};

static const struct cfg_option flows_table[] = {
    CONN_OPTIONS(struct query_options, conn, "5s"),
    RANGE_OPTIONS,
    {"host", 'H', CFG_STRING, QOPT(host), NULL, 0, 0, "IP",
     "flows with this address at either end", CFG_CLI_ONLY},
    {"port", 'p', CFG_STRING, QOPT(port), NULL, 0, 0, "PORT",
     "flows with this port at either end", CFG_CLI_ONLY},
    {"proto", 'P', CFG_STRING, QOPT(proto), NULL, 0, 0, "PROTO",
     "tcp, udp, icmp, icmp6, sctp, gre, esp or an IP protocol number", CFG_CLI_ONLY},
    {"app", 'a', CFG_STRING, QOPT(app), NULL, 0, 0, "LABEL",
     "flows with this application label (dns, tls, http, quic, ssh...)", CFG_CLI_ONLY},
    {"limit", 'n', CFG_UINT, QOPT(limit), "100", 1, MAX_ROWS, "N", "at most N flows",
     CFG_CLI_ONLY},
    {"oldest-first", 0, CFG_BOOL, QOPT(oldest_first), NULL, 0, 0, NULL,
     "oldest flows first (default: newest first)", CFG_CLI_ONLY},
    CFG_END,
};

static const struct cfg_option top_table[] = {
    CONN_OPTIONS(struct query_options, conn, "5s"),
    RANGE_OPTIONS,
    {"by", 'b', CFG_STRING, QOPT(by), "bytes", 0, 0, "METRIC",
     "rank by bytes, packets or flows", CFG_CLI_ONLY},
    {"group", 'g', CFG_STRING, QOPT(group), "host", 0, 0, "KEY",
     "group by host, app, port (with protocol) or pair (two talkers)", CFG_CLI_ONLY},
    {"limit", 'n', CFG_UINT, QOPT(limit), "20", 1, MAX_ROWS, "N", "the N largest groups",
     CFG_CLI_ONLY},
    {"share", 'r', CFG_UINT, QOPT(share), "0", 0, 100, "PCT",
     "instead of --limit: the fewest groups that together make PCT % of the traffic, with "
     "each one's share and the running total", CFG_CLI_ONLY},
    CFG_END,
};

static struct cfg_program agents_program = {
    .name = "vigil agents",
    .usage = "usage: vigil agents [options]\n"
             "\n"
             "Each agent the aggregator has heard from: when it was last seen, batches,\n"
             "records and flows stored, its own counters (packets, drops, evictions) and its\n"
             "spool (batches waiting to be delivered, and any it had to drop)." CONN_CONFIG_NOTE,
    .version = VIGIL_VERSION,
    .options = agents_table,
    .common_offset = offsetof(struct query_options, common),
};

static struct cfg_program flows_program = {
    .name = "vigil flows",
    .usage = "usage: vigil flows [--host IP] [--port N] [--proto P] [--app LABEL]\n"
             "                   [--since WHEN] [--until WHEN] [options]\n"
             "\n"
             "Stored flows (partial records of one flow merged) whose last packet falls in\n"
             "the range, newest first. Example: vigil flows --host 10.1.2.3 --since 1h "
             "--port 443" CONN_CONFIG_NOTE,
    .version = VIGIL_VERSION,
    .options = flows_table,
    .common_offset = offsetof(struct query_options, common),
};

static struct cfg_program top_program = {
    .name = "vigil top",
    .usage = "usage: vigil top [--group host|app|port|pair] [--by bytes|packets|flows]\n"
             "                 [--since WHEN] [--until WHEN] [--limit N] [options]\n"
             "\n"
             "The largest talkers, applications, ports or talker pairs over a range, with\n"
             "each one's share of all traffic in it. Example: vigil top --by bytes --group app "
             "--since 24h\n"
             "--share 80: the smallest set of groups carrying 80 % of the traffic (hosts: of\n"
             "the traffic seen at hosts, where a flow counts at both ends)" CONN_CONFIG_NOTE,
    .version = VIGIL_VERSION,
    .options = top_table,
    .common_offset = offsetof(struct query_options, common),
};

/* ---- shared steps --------------------------------------------------------------- */

/* Parses the options of one command; returns -1 to go on, else an exit code. */
static int load_options(struct cfg_program *prog, struct query_options *o, int argc,
                        char **argv, struct cfg_arena **arena, enum out_format *fmt)
{
    return conn_load(prog, o, &o->conn, argc, argv, arena, fmt);
}

/* Sends the query and prints the answer; returns the exit code. */
static int run_query(const char *prog, const struct query_options *o, enum out_format fmt,
                     const char *kind, const struct query_arg *args, size_t nargs,
                     const struct table_column *view, const char *empty)
{
    Vigil__Envelope *env = NULL;
    if (conn_query(prog, &o->conn, kind, args, nargs, &env) != 0)
        return CLI_EXIT_FAIL;
    const Vigil__QueryResponse *r = env->response;
    int status = CLI_EXIT_OK;
    if (!r->ok) {
        fprintf(stderr, "%s: the aggregator refused the query: %s\n", prog, r->error);
        status = CLI_EXIT_FAIL;
    } else {
        if (output_write(stdout, fmt, r, view, vigil_wallclock_ns()) != 0) {
            fprintf(stderr, "%s: cannot write the output\n", prog);
            status = CLI_EXIT_FAIL;
        }
        if (r->truncated)
            fprintf(stderr, "%s: note: the answer is incomplete (a time or size bound was hit): "
                            "narrow the range or lower --limit\n", prog);
        if (fmt == OUT_TABLE && r->n_rows == 0)
            fprintf(stderr, "%s: %s\n", prog, empty);
    }
    envelope_free(env);
    return status;
}

/* --since/--until to decimal ns into the given buffers; adds them to args. */
static int range_args(const char *prog, const struct query_options *o, struct query_arg *args,
                      size_t *n, char since[24], char until[24])
{
    int64_t now = vigil_wallclock_ns(), s, u;
    if (cli_parse_when(o->since, now, &s) != 0) {
        fprintf(stderr, "%s: --since: '%s' is not a duration (30m, 24h, 7d), an RFC 3339 time "
                        "(2026-01-01T00:00:00Z) or 'all'\n", prog, o->since);
        return CLI_EXIT_USAGE;
    }
    snprintf(since, 24, "%" PRId64, s);
    args[(*n)++] = (struct query_arg){"since", since};
    if (o->until) {
        if (cli_parse_when(o->until, now, &u) != 0) {
            fprintf(stderr, "%s: --until: '%s' is not a duration, an RFC 3339 time or 'now'\n",
                    prog, o->until);
            return CLI_EXIT_USAGE;
        }
        if (u <= s) {
            fprintf(stderr, "%s: --until must be after --since\n", prog);
            return CLI_EXIT_USAGE;
        }
        snprintf(until, 24, "%" PRId64, u);
        args[(*n)++] = (struct query_arg){"until", until};
    }
    return -1;
}

static bool is_decimal(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    if (!*s || *s < '0' || *s > '9')
        return false;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || v > max)
        return false;
    *out = v;
    return true;
}

/* ---- agents ----------------------------------------------------------------------- */

static const struct table_column agents_view[] = {
    {"agent", "AGENT", COL_PLAIN},
    {"last_seen", "LAST SEEN", COL_AGO},
    {"batches", "BATCHES", COL_NUMBER},
    {"records", "RECORDS", COL_NUMBER},
    {"flows", "FLOWS", COL_NUMBER},
    {"packets", "PACKETS", COL_NUMBER},
    {"bytes", "BYTES", COL_BYTES},
    {"capture_drops", "DROPS", COL_NUMBER},
    {"interface_drops", "IF DROPS", COL_NUMBER},
    {"evictions", "EVICTIONS", COL_NUMBER},
    {"spool_batches", "SPOOLED", COL_NUMBER},
    {"spool_bytes", "SPOOL", COL_BYTES},
    {"spool_dropped_batches", "SPOOL LOST", COL_NUMBER},
    {"seq_gaps", "GAPS", COL_NUMBER},
    {NULL, NULL, COL_PLAIN},
};

int cmd_agents(int argc, char **argv)
{
    struct query_options o = {0};
    struct cfg_arena *arena = NULL;
    enum out_format fmt;
    int rc = load_options(&agents_program, &o, argc, argv, &arena, &fmt);
    if (rc < 0)
        rc = run_query(agents_program.name, &o, fmt, "agents", NULL, 0, agents_view,
                       "no agent has delivered a batch yet");
    cfg_arena_free(arena);
    return rc;
}

/* ---- flows ------------------------------------------------------------------------- */

static const struct table_column flows_view[] = {
    {"end", "LAST PACKET", COL_TIME},
    {"agent", "AGENT", COL_PLAIN},
    {"proto", "PROTO", COL_NUMBER},
    {"src_ip", "SOURCE", COL_PLAIN},
    {"src_port", "SPORT", COL_NUMBER},
    {"dst_ip", "DESTINATION", COL_PLAIN},
    {"dst_port", "DPORT", COL_NUMBER},
    {"app", "APP", COL_PLAIN},
    {"state", "STATE", COL_PLAIN},
    {"pkts_fwd", "PKTS>", COL_NUMBER},
    {"pkts_rev", "<PKTS", COL_NUMBER},
    {"bytes_fwd", "BYTES>", COL_BYTES},
    {"bytes_rev", "<BYTES", COL_BYTES},
    {"duration", "SECONDS", COL_NUMBER},
    {NULL, NULL, COL_PLAIN},
};

static int parse_proto(const char *text, unsigned long *out)
{
    static const struct {
        const char *name;
        unsigned long num;
    } names[] = {{"icmp", 1}, {"tcp", 6}, {"udp", 17}, {"gre", 47}, {"esp", 50},
                 {"icmp6", 58}, {"ipv6-icmp", 58}, {"icmpv6", 58}, {"sctp", 132}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(text, names[i].name) == 0) {
            *out = names[i].num;
            return 0;
        }
    }
    return is_decimal(text, 255, out) ? 0 : VIGIL_EINVAL;
}

int cmd_flows(int argc, char **argv)
{
    struct query_options o = {0};
    struct cfg_arena *arena = NULL;
    enum out_format fmt;
    struct query_arg args[16];
    size_t n = 0;
    char since[24], until[24], port[8], proto[8], limit[24];
    struct vigil_addr a;
    unsigned long v;
    const char *prog = flows_program.name;

    int rc = load_options(&flows_program, &o, argc, argv, &arena, &fmt);
    if (rc >= 0)
        goto done;
    if ((rc = range_args(prog, &o, args, &n, since, until)) >= 0)
        goto done;
    rc = CLI_EXIT_USAGE;
    if (o.host) {
        if (addr_parse(o.host, &a) != 0) {
            fprintf(stderr, "%s: --host: '%s' is not an IPv4 or IPv6 address\n", prog, o.host);
            goto done;
        }
        args[n++] = (struct query_arg){"host", o.host};
    }
    if (o.port) {
        if (!is_decimal(o.port, 65535, &v)) {
            fprintf(stderr, "%s: --port: '%s' is not a port from 0 to 65535\n", prog, o.port);
            goto done;
        }
        snprintf(port, sizeof port, "%lu", v);
        args[n++] = (struct query_arg){"port", port};
    }
    if (o.proto) {
        if (parse_proto(o.proto, &v) != 0) {
            fprintf(stderr, "%s: --proto: '%s' is not tcp, udp, icmp, icmp6, sctp, gre, esp or "
                            "a number from 0 to 255\n", prog, o.proto);
            goto done;
        }
        snprintf(proto, sizeof proto, "%lu", v);
        args[n++] = (struct query_arg){"proto", proto};
    }
    if (o.app) {
        if (strlen(o.app) > 15) {
            fprintf(stderr, "%s: --app: '%s' is longer than an application label (15)\n", prog,
                    o.app);
            goto done;
        }
        args[n++] = (struct query_arg){"app", o.app};
    }
    snprintf(limit, sizeof limit, "%" PRIu64, o.limit);
    args[n++] = (struct query_arg){"limit", limit};
    if (o.oldest_first)
        args[n++] = (struct query_arg){"order", "oldest"};
    rc = run_query(prog, &o, fmt, "flows", args, n, flows_view,
                   "no flow matches in this range (see --since)");
done:
    cfg_arena_free(arena);
    return rc;
}

/* ---- top ----------------------------------------------------------------------------- */

static const struct table_column top_view[] = {
    {"host", "HOST", COL_PLAIN},
    {"app", "APP", COL_PLAIN},
    {"proto", "PROTO", COL_NUMBER},
    {"port", "PORT", COL_NUMBER},
    {"host_a", "HOST A", COL_PLAIN},
    {"host_b", "HOST B", COL_PLAIN},
    {"bytes", "BYTES", COL_BYTES},
    {"packets", "PACKETS", COL_NUMBER},
    {"flows", "FLOWS", COL_NUMBER},
    {"share", "SHARE", COL_SHARE},
    {"bytes_out", "OUT", COL_BYTES},
    {"bytes_in", "IN", COL_BYTES},
    {NULL, NULL, COL_PLAIN},
};

static const struct table_column share_view[] = {
    {"rank", "#", COL_NUMBER},
    {"host", "HOST", COL_PLAIN},
    {"app", "APP", COL_PLAIN},
    {"proto", "PROTO", COL_NUMBER},
    {"port", "PORT", COL_NUMBER},
    {"host_a", "HOST A", COL_PLAIN},
    {"host_b", "HOST B", COL_PLAIN},
    {"bytes", "BYTES", COL_BYTES},
    {"packets", "PACKETS", COL_NUMBER},
    {"flows", "FLOWS", COL_NUMBER},
    {"share", "SHARE", COL_SHARE},
    {"cumulative", "CUMULATIVE", COL_SHARE},
    {NULL, NULL, COL_PLAIN},
};

/* top --share: the "share" query; in a table, a closing line says how few
 * groups make the share. Returns the exit code. */
static int top_share(const char *prog, const struct query_options *o, enum out_format fmt,
                     const struct query_arg *args, size_t nargs)
{
    Vigil__Envelope *env = NULL;
    if (conn_query(prog, &o->conn, "share", args, nargs, &env) != 0)
        return CLI_EXIT_FAIL;
    const Vigil__QueryResponse *r = env->response;
    int status = CLI_EXIT_OK;
    if (!r->ok) {
        fprintf(stderr, "%s: the aggregator refused the query: %s\n", prog, r->error);
        status = CLI_EXIT_FAIL;
    } else if (output_write(stdout, fmt, r, share_view, vigil_wallclock_ns()) != 0) {
        fprintf(stderr, "%s: cannot write the output\n", prog);
        status = CLI_EXIT_FAIL;
    } else if (fmt == OUT_TABLE && r->n_rows == 0) {
        fprintf(stderr, "%s: no traffic in this range (see --since)\n", prog);
    } else if (fmt == OUT_TABLE) {
        const Vigil__Row *last = r->rows[r->n_rows - 1];
        const char *cum = "", *groups = "";
        for (size_t c = 0; c < r->n_columns && c < last->n_cells; c++) {
            if (strcmp(r->columns[c], "cumulative") == 0)
                cum = last->cells[c];
            else if (strcmp(r->columns[c], "groups") == 0)
                groups = last->cells[c];
        }
        printf("\n%zu of %s %s groups make %.1f%% of the %s (asked: %" PRIu64 "%%)\n",
               r->n_rows, groups, o->group, strtod(cum, NULL) * 100.0, o->by, o->share);
    }
    if (r->ok && r->truncated)
        fprintf(stderr, "%s: note: the answer is incomplete (a time or size bound was hit): "
                        "narrow the range\n", prog);
    envelope_free(env);
    return status;
}

int cmd_top(int argc, char **argv)
{
    static const char *const groups[] = {"host", "app", "port", "pair", NULL};
    static const char *const metrics[] = {"bytes", "packets", "flows", NULL};
    struct query_options o = {0};
    struct cfg_arena *arena = NULL;
    enum out_format fmt;
    struct query_arg args[8];
    size_t n = 0;
    char since[24], until[24], limit[24];
    const char *prog = top_program.name;
    bool ok;

    int rc = load_options(&top_program, &o, argc, argv, &arena, &fmt);
    if (rc >= 0)
        goto done;
    if ((rc = range_args(prog, &o, args, &n, since, until)) >= 0)
        goto done;
    rc = CLI_EXIT_USAGE;
    ok = false;
    for (const char *const *g = groups; *g; g++)
        ok = ok || strcmp(*g, o.group) == 0;
    if (!ok) {
        fprintf(stderr, "%s: --group: '%s' is not host, app, port or pair\n", prog, o.group);
        goto done;
    }
    ok = false;
    for (const char *const *m = metrics; *m; m++)
        ok = ok || strcmp(*m, o.by) == 0;
    if (!ok) {
        fprintf(stderr, "%s: --by: '%s' is not bytes, packets or flows\n", prog, o.by);
        goto done;
    }
    args[n++] = (struct query_arg){"group", o.group};
    args[n++] = (struct query_arg){"by", o.by};
    if (o.share) {
        snprintf(limit, sizeof limit, "%" PRIu64, o.share);
        args[n++] = (struct query_arg){"share", limit};
        rc = top_share(prog, &o, fmt, args, n);
        goto done;
    }
    snprintf(limit, sizeof limit, "%" PRIu64, o.limit);
    args[n++] = (struct query_arg){"limit", limit};
    rc = run_query(prog, &o, fmt, "top", args, n, top_view,
                   "no traffic in this range (see --since)");
done:
    cfg_arena_free(arena);
    return rc;
}
