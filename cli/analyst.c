/* analyst.c — the steps the analyst's commands share (see analyst.h):
 * options, the range, cells by column name, bit rates. */
#include "analyst.h"

#include "clock.h"
#include "err.h"
#include "transport.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int analyst_load(struct cfg_program *prog, struct analyst_options *o, int argc, char **argv,
                 struct cfg_arena **arena, enum out_format *fmt)
{
    return conn_load(prog, o, &o->conn, argc, argv, arena, fmt);
}

int analyst_range(const char *prog, const struct analyst_options *o, int64_t now_ns,
                  int64_t *since, int64_t *until)
{
    if (cli_parse_when(o->since, now_ns, since) != 0) {
        fprintf(stderr, "%s: --since: '%s' is not a duration (30m, 24h, 7d), an RFC 3339 time "
                        "(2026-01-01T00:00:00Z) or 'all'\n", prog, o->since);
        return CLI_EXIT_USAGE;
    }
    *until = now_ns;
    if (o->until && cli_parse_when(o->until, now_ns, until) != 0) {
        fprintf(stderr, "%s: --until: '%s' is not a duration, an RFC 3339 time or 'now'\n", prog,
                o->until);
        return CLI_EXIT_USAGE;
    }
    if (*until <= *since) {
        fprintf(stderr, "%s: --until must be after --since\n", prog);
        return CLI_EXIT_USAGE;
    }
    return -1;
}

int answer_column(const Vigil__QueryResponse *r, const char *name)
{
    for (size_t c = 0; c < r->n_columns; c++)
        if (strcmp(r->columns[c], name) == 0)
            return (int)c;
    return -1;
}

const char *answer_cell(const Vigil__QueryResponse *r, size_t i, int c)
{
    if (c < 0 || i >= r->n_rows || (size_t)c >= r->rows[i]->n_cells)
        return "";
    return r->rows[i]->cells[c];
}

double answer_number(const Vigil__QueryResponse *r, size_t i, int c)
{
    return strtod(answer_cell(r, i, c), NULL);
}

int parse_bit_rate(const char *text, uint64_t *bps)
{
    static const struct {
        const char *suffix;
        double mult;
    } units[] = {{"", 1},   {"k", 1e3}, {"K", 1e3},  {"M", 1e6},
                 {"G", 1e9}, {"T", 1e12}, {"P", 1e15}};
    char *end;
    if (!text || !*text || !((*text >= '0' && *text <= '9') || *text == '.'))
        return VIGIL_EINVAL;
    double v = strtod(text, &end);
    if (end == text || !(v > 0))
        return VIGIL_EINVAL;
    /* the unit letter, then optionally "bit/s", "bps", "b" or "bit" */
    double mult = 0;
    size_t ul = 0;
    for (size_t i = 1; i < sizeof units / sizeof units[0]; i++)
        if (*end == units[i].suffix[0]) {
            mult = units[i].mult;
            ul = 1;
        }
    if (!ul)
        mult = 1;
    const char *rest = end + ul;
    if (*rest && strcmp(rest, "bit/s") != 0 && strcmp(rest, "bps") != 0 &&
        strcmp(rest, "bit") != 0 && strcmp(rest, "b") != 0)
        return VIGIL_EINVAL;
    double r = v * mult;
    if (r < 1 || r > 1e18)
        return VIGIL_EINVAL;
    *bps = (uint64_t)(r + 0.5);
    return 0;
}
