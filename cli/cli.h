/* cli.h — the analyst's command-line tool `vigil`: what its command files
 * share (commands, the request/answer exchange, output, time parsing).
 *
 * One file per command group: keygen.c (key pairs), query_cmds.c (agents,
 * flows, top), output.c (table, JSON Lines, CSV), client.c (one request to
 * the aggregator and its answer, with a deadline), main.c (dispatch).
 *
 * Exit status everywhere: 0 success, 1 failure (the aggregator refused,
 * did not answer, a file could not be read), 2 a wrong command line. */
#ifndef VIGIL_CLI_H
#define VIGIL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vigil.pb-c.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

/* ---- commands: argv[0] is the command name ------------------------------ */
int cmd_keygen(int argc, char **argv);
int cmd_agents(int argc, char **argv);
int cmd_flows(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_bandwidth(int argc, char **argv); /* bandwidth_cmds.c */
int cmd_latency(int argc, char **argv);   /* bandwidth_cmds.c */
int cmd_report(int argc, char **argv);    /* report.c */
int cmd_capture(int argc, char **argv);
int cmd_alerts(int argc, char **argv);   /* alert_cmds.c */
int cmd_baseline(int argc, char **argv); /* alert_cmds.c */   /* capture_cmds.c: start, list, stop */

/* The config file query commands read when --config is not given:
 * $XDG_CONFIG_HOME/vigil/cli.conf (else ~/.config/vigil/cli.conf) when it
 * is readable, else /etc/vigil/cli.conf. Returns a static buffer. */
const char *cli_default_config(void);

/* ---- client.c -------------------------------------------------------------- */

struct client_options {
    const char *connect;    /* the aggregator's endpoint */
    const char *key;        /* this analyst's NAME.key; unused when insecure */
    const char *server_key; /* the aggregator's .pub; unused when insecure */
    bool insecure;
    int64_t timeout_ns;     /* for the whole exchange: connect, send, answer */
};

struct query_arg {
    const char *key, *value; /* borrowed */
};

/* Sends one QueryRequest of `kind` with args and waits for its answer.
 * On 0, *out (free with envelope_free) holds a validated Envelope whose
 * body is the QueryResponse (ok or not). Otherwise returns a negative
 * VIGIL_E* code with a message for people in err: keys that cannot be read,
 * the handshake refused (our key is in no allow list), or no answer before
 * the deadline (VIGIL_EAGAIN). */
int client_query(const struct client_options *o, const char *kind, const struct query_arg *args,
                 size_t nargs, Vigil__Envelope **out, char *err, size_t errlen);

/* ---- output.c -------------------------------------------------------------- */

enum out_format { OUT_TABLE = 0, OUT_JSON, OUT_CSV };

/* ---- connection.c: the settings every query command shares --------------------- */

/* Where the aggregator is and how to reach it, and the output format; a
 * command's options struct holds one (its cfg table uses the macros). */
struct conn_options {
    const char *connect, *key, *server_key, *format;
    bool insecure;
    int64_t timeout;
};

/* The cfg_option entries of a struct conn_options at member m of type T
 * (TIMEOUT: the default answer deadline, "5s"). */
#define CONN_LINK_OPTIONS(T, m, TIMEOUT)                                                       \
    {"connect", 'C', CFG_STRING, offsetof(T, m.connect), "tcp://127.0.0.1:7400", 0, 0,        \
     "ENDPOINT", "the aggregator (its --listen address)", 0},                                  \
    {"key", 'k', CFG_STRING, offsetof(T, m.key), NULL, 0, 0, "FILE",                          \
     "this analyst's key pair (NAME.key from 'vigil keygen')", 0},                             \
    {"server-key", 'S', CFG_STRING, offsetof(T, m.server_key), NULL, 0, 0, "FILE",            \
     "the aggregator's public key (its .pub)", 0},                                             \
    {"insecure", 0, CFG_BOOL, offsetof(T, m.insecure), NULL, 0, 0, NULL,                      \
     "plain TCP without CURVE (only if the aggregator runs --insecure)", 0},                   \
    {"timeout", 't', CFG_DURATION, offsetof(T, m.timeout), TIMEOUT, 1, 3600, "TIME",          \
     "give up when the aggregator has not answered after TIME", 0}
#define CONN_FORMAT_OPTION(T, m)                                                               \
    {"format", 'o', CFG_STRING, offsetof(T, m.format), "table", 0, 0, "FORMAT",               \
     "table (for people), json (one object per line) or csv", 0}
#define CONN_OPTIONS(T, m, TIMEOUT) CONN_LINK_OPTIONS(T, m, TIMEOUT), CONN_FORMAT_OPTION(T, m)

/* The end of a cfg_option table. */
#define CONN_CFG_END {NULL, 0, 0, 0, NULL, 0, 0, NULL, NULL, 0}

/* The closing paragraph of every query command's --help. */
#define CONN_CONFIG_NOTE                                                                        \
    "\n\nConnection settings (connect, key, server-key, insecure, timeout, format) are read\n"  \
    "from ~/.config/vigil/cli.conf, else /etc/vigil/cli.conf, unless --config FILE is given;\n" \
    "the command line overrides them."

struct cfg_program;
struct cfg_arena;

/* Loads a query command's options (opts: its options struct, conn inside
 * it) from the config file and argv, then checks the format and that keys
 * are given unless insecure. Returns -1 to go on, else the exit code (the
 * message printed; --help and --version exit 0). */
int conn_load(struct cfg_program *prog, void *opts, const struct conn_options *conn, int argc,
              char **argv, struct cfg_arena **arena, enum out_format *fmt);

/* Sends one query with conn's settings. On 0, *env (envelope_free) holds
 * the answer, ok or not; otherwise the reason (keys, handshake, no answer)
 * is printed after prog and CLI_EXIT_FAIL returned, *env NULL. */
int conn_query(const char *prog, const struct conn_options *conn, const char *kind,
               const struct query_arg *args, size_t nargs, Vigil__Envelope **env);

/* conn_query for an answer that must be ok: a refusal is printed too (with
 * the aggregator's reason) and returns CLI_EXIT_FAIL, *env NULL. */
int conn_ask(const char *prog, const struct conn_options *conn, const char *kind,
             const struct query_arg *args, size_t nargs, Vigil__Envelope **env);


/* "table", "json" or "csv"; returns 0 or VIGIL_EINVAL. */
int output_format_parse(const char *text, enum out_format *out);

/* How a column is shown in a table for people (JSON and CSV carry the
 * exact value whatever the style). */
enum col_style {
    COL_PLAIN = 0, /* as sent, left-aligned */
    COL_NUMBER,    /* right-aligned */
    COL_BYTES,     /* 1536 -> "1.5 KiB", right-aligned */
    COL_SHARE,     /* 0.4213 -> "42.1%", right-aligned */
    COL_AGO,       /* an RFC 3339 time -> "12s ago" */
    COL_TIME,      /* an RFC 3339 time -> "2026-01-01 00:00:05" */
    COL_RATE,      /* bits/s -> "12.50 Mbit/s" (decimal units), right-aligned */
};

/* A rate in bits/s for people: "950 bit/s", "12.50 Mbit/s". */
void output_format_rate(double bps, char *out, size_t len);

struct table_column {
    const char *name;   /* the answer's column */
    const char *header; /* shown above it */
    enum col_style style;
};

/* Writes the answer's rows to fp. In table form only the listed columns
 * (a {NULL} terminated array; NULL: every column, plain) are shown; JSON
 * is one object per row per line, with an empty cell left out (absent, as
 * in the agent's JSON), numbers as numbers and `final` as a boolean; CSV
 * has a header line and RFC 4180 quoting. Returns 0, or VIGIL_EIO when fp
 * could not be written. */
int output_write(FILE *fp, enum out_format f, const Vigil__QueryResponse *r,
                 const struct table_column *table, int64_t now_ns);

/* ---- times ------------------------------------------------------------------ */

/* Parses an RFC 3339 time ("2026-01-01T00:00:00Z", with optional
 * fractional seconds and a numeric offset; "2026-01-01" alone is midnight
 * UTC) into ns since the epoch. Returns 0 or VIGIL_EINVAL. */
int cli_parse_rfc3339(const char *text, int64_t *ns);

/* Parses a --since/--until value: "all" (the epoch), "now", a duration
 * back from now ("90s", "1h", "7d"), or an RFC 3339 time. Returns 0 or
 * VIGIL_EINVAL. */
int cli_parse_when(const char *text, int64_t now_ns, int64_t *ns);

#endif
