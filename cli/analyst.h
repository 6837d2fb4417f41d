/* analyst.h — what the analyst's commands share (bandwidth_cmds.c:
 * bandwidth, latency; report.c): their options, one query with its answer,
 * reading cells by column name, sparklines (sparkline.c) and SVG charts
 * (svg.c).
 *
 * Non-goals: the query commands of query_cmds.c (agents, flows, top). */
#ifndef VIGIL_CLI_ANALYST_H
#define VIGIL_CLI_ANALYST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli.h"
#include "config.h"
#include "vigil.pb-c.h"

/* Options of bandwidth, latency and report (each uses what it needs). */
struct analyst_options {
    struct cfg_common common;
    struct conn_options conn; /* the same settings and config file as every query */
    /* what to ask */
    const char *since, *until, *host, *app, *step, *capacity, *group, *html;
    bool forecast;
    uint64_t limit;
};

/* Parses argv with the program's table; -1 to go on, else an exit code.
 * *arena owns strings the options point to. */
int analyst_load(struct cfg_program *prog, struct analyst_options *o, int argc, char **argv,
                 struct cfg_arena **arena, enum out_format *fmt);

/* --since/--until to ns (until defaults to now); -1 to go on, else an exit
 * code (the message printed). */
int analyst_range(const char *prog, const struct analyst_options *o, int64_t now_ns,
                  int64_t *since, int64_t *until);

/* The index of a column, or -1. */
int answer_column(const Vigil__QueryResponse *r, const char *name);
/* The cell of row i, column c; "" when absent or c < 0. */
const char *answer_cell(const Vigil__QueryResponse *r, size_t i, int c);
double answer_number(const Vigil__QueryResponse *r, size_t i, int c);

/* "10G", "2.5Gbit", "100M", "800000000" as bits/s (decimal multiples, as
 * links are sold); returns 0 or VIGIL_EINVAL. */
int parse_bit_rate(const char *text, uint64_t *bps);

/* ---- sparkline.c --------------------------------------------------------- */

#define SPARK_WIDTH 64
#define SPARK_MAX_BYTES (SPARK_WIDTH * 3 + 1)

/* True when the locale (LC_ALL, else LC_CTYPE, else LANG) says UTF-8. */
bool sparkline_utf8(void);

/* Draws v[0..n) as at most width characters into out (len >= width * 3 + 1
 * bytes): eight levels from 0 to the largest value, ▁▂▃▄▅▆▇█ with utf8,
 * else "_.-:=+*#". When n > width each character shows the largest of its
 * values, so a spike is never averaged away. Negative values count as 0.
 * Returns out. */
char *sparkline(char *out, size_t len, const double *v, size_t n, size_t width, bool utf8);

/* ---- svg.c ------------------------------------------------------------------ */

/* Writes s as HTML/XML text or attribute value: & < > " ' escaped, control
 * characters and bytes that are not valid UTF-8 replaced by U+FFFD. */
void svg_escape(FILE *fp, const char *s);
/* The same into a buffer; returns the length written (out is always
 * NUL-terminated, and cut at a character boundary when too small). */
size_t svg_escape_buf(char *out, size_t len, const char *s);

struct svg_series {
    const char *name;  /* borrowed; escaped when written */
    const double *v;   /* n values */
};

/* A time axis: n points at t[i] (ns). */
struct svg_axis {
    const int64_t *t;
    size_t n;
    const char *unit; /* "bit/s", "µs", "%" */
};

/* Every chart is an <svg> with data-chart=id, data-series and data-points
 * (what it draws), and one <polyline class="series" data-name=...> per
 * series with exactly its points, so a test can count what was drawn. */

/* Areas stacked in the order given (the first at the bottom). */
void svg_stacked(FILE *fp, const char *id, const char *title, const struct svg_axis *ax,
                 const struct svg_series *s, size_t ns);
/* Lines over time; threshold > 0 draws a dashed horizontal line there. */
void svg_lines(FILE *fp, const char *id, const char *title, const struct svg_axis *ax,
               const struct svg_series *s, size_t ns, double threshold);
/* Horizontal bars of shares (0..1) with the cumulative share as a line and
 * a dashed line at cut (0..1). */
void svg_share(FILE *fp, const char *id, const char *title, const char *const *labels,
               const double *share, const double *cumulative, size_t n, double cut);

struct svg_event {
    const char *label;   /* borrowed */
    const char *level;   /* "low", "medium", "high" (colour) */
    int64_t t0, t1;      /* ns */
};
/* Events as bars on a timeline [t0, t1); none: an empty axis saying "no alerts". */
void svg_timeline(FILE *fp, const char *id, const char *title, int64_t t0, int64_t t1,
                  const struct svg_event *e, size_t n, const char *empty_note);

#endif
