/* connection.c — what every query command does before it asks: load its
 * options (config file, then the command line), check the output format
 * and that keys were given, turn the settings into a client's, and ask. */
#include "cli.h"

#include "config.h"
#include "transport.h"

#include <stdio.h>

int conn_load(struct cfg_program *prog, void *opts, const struct conn_options *conn, int argc,
              char **argv, struct cfg_arena **arena, enum out_format *fmt)
{
    prog->default_config = cli_default_config();
    switch (cfg_load(prog, opts, argc, argv, arena)) {
    case CFG_RUN: break;
    case CFG_EXIT_OK: return CLI_EXIT_OK;
    default: return CLI_EXIT_USAGE;
    }
    if (output_format_parse(conn->format, fmt) != 0) {
        fprintf(stderr, "%s: --format: '%s' is not table, json or csv\n", prog->name,
                conn->format);
        return CLI_EXIT_USAGE;
    }
    if (!conn->insecure && (!conn->key || !conn->server_key)) {
        fprintf(stderr,
                "%s: give --key FILE (your analyst key pair) and --server-key FILE (the "
                "aggregator's .pub), or set key and server-key in %s; --insecure only if the "
                "aggregator runs without CURVE\n",
                prog->name, cli_default_config());
        return CLI_EXIT_USAGE;
    }
    return -1;
}

/* The client settings of conn. */
static struct client_options conn_client(const struct conn_options *conn)
{
    return (struct client_options){
        .connect = conn->connect,
        .key = conn->key,
        .server_key = conn->server_key,
        .insecure = conn->insecure,
        .timeout_ns = conn->timeout,
    };
}

int conn_query(const char *prog, const struct conn_options *conn, const char *kind,
               const struct query_arg *args, size_t nargs, Vigil__Envelope **env)
{
    struct client_options co = conn_client(conn);
    char err[768];
    if (client_query(&co, kind, args, nargs, env, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        *env = NULL;
        return CLI_EXIT_FAIL;
    }
    return 0;
}

int conn_ask(const char *prog, const struct conn_options *conn, const char *kind,
             const struct query_arg *args, size_t nargs, Vigil__Envelope **env)
{
    int rc = conn_query(prog, conn, kind, args, nargs, env);
    if (rc != 0)
        return rc;
    if (!(*env)->response->ok) {
        fprintf(stderr, "%s: the aggregator refused the query: %s\n", prog,
                (*env)->response->error);
        envelope_free(*env);
        *env = NULL;
        return CLI_EXIT_FAIL;
    }
    return 0;
}
