/* answer.h — what every query kind shares: reading a QueryRequest's
 * arguments, building rows of text cells, and the table of kinds.
 *
 * A query kind is one function, int run(struct answer *), in its own file
 * (answer_fleet.c: agents, flows, top; others beside it). It checks its
 * arguments with the arg_* helpers, names its columns, and adds rows; on
 * failure it returns a VIGIL_E* code, with a message for the analyst in
 * a->err (a generic one is made when it leaves err empty). service.c
 * packs what it built into the QueryResponse.
 *
 * Arguments: every value is text and every argument optional; a kind
 * refuses an argument it does not know (a typo must not be ignored).
 * Numbers are decimal; times are nanoseconds since the Unix epoch (the CLI
 * turns "1h" or an RFC 3339 time into them with its own clock). */
#ifndef VIGIL_ANSWER_H
#define VIGIL_ANSWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "query.h"
#include "store.h"
#include "transport.h"
#include "vigil.pb-c.h"

#define ANSWER_ERR_MAX 512
#define CELL_TEXT_MAX 4096 /* one row's text: three 255-byte names and change */

/* The cells of the row being built; they point into text. */
struct cellbuf {
    char text[CELL_TEXT_MAX];
    size_t used;
    const char *cells[TRANSPORT_MAX_COLUMNS];
    size_t n;
};

struct rows {
    Vigil__Row **v; /* from malloc(); each row one malloc (rows_add) */
    size_t n, cap;
    size_t limit;   /* rows wanted; more are not kept */
};

struct answer {
    /* in */
    struct store *st;               /* borrowed */
    const Vigil__QueryRequest *q;   /* borrowed */
    const char *peer;               /* who asks: the analyst key's name (the IP address when
                                     * insecure; "" when unknown) */
    int64_t now_ns;                 /* the aggregator's wall clock */
    /* out */
    const char *const *columns;     /* NULL-terminated; static storage */
    struct rows rows;               /* limit preset to SERVICE_MAX_ROWS */
    bool truncated;                 /* rows were left out (a bound was hit) */
    char err[ANSWER_ERR_MAX];       /* why, when run() fails */
};

struct query_kind {
    const char *name;
    int (*run)(struct answer *a);
};

/* ---- arguments: each returns 0 or VIGIL_EINVAL with a message in a->err */

/* The value of key, or NULL when absent. */
const char *arg_find(const struct answer *a, const char *key);

/* Refuses any argument not in known (NULL-terminated). */
int args_known(struct answer *a, const char *const *known);

/* An optional number in [min, max]; *out keeps its default when absent. */
int arg_u64(struct answer *a, const char *key, uint64_t min, uint64_t max, uint64_t *out);

/* One of words (NULL-terminated); *out (the index) keeps its default when
 * absent. */
int arg_word(struct answer *a, const char *key, const char *const *words, unsigned *out);

/* since/until; defaults: since = now - 24 h, until = now + 1 day (the
 * furthest a record may end). Refuses an empty range. */
int arg_range(struct answer *a, int64_t *since, int64_t *until);

/* An optional IPv4/IPv6 address; *present says whether it was given. */
int arg_addr(struct answer *a, const char *key, struct vigil_addr *out, bool *present);

/* ---- cells ------------------------------------------------------------- */

void cells_reset(struct cellbuf *cb);

/* Appends a cell of at most n bytes of s; bytes outside printable ASCII
 * become '?' (a cell must never carry a control character to a terminal). */
void cell_textn(struct cellbuf *cb, const char *s, size_t n);
void cell_text(struct cellbuf *cb, const char *s);
__attribute__((format(printf, 2, 3))) void cell_fmt(struct cellbuf *cb, const char *fmt, ...);
void cell_u64(struct cellbuf *cb, uint64_t v);
void cell_i64(struct cellbuf *cb, int64_t v);
/* A fraction or rate, "%.6f". */
void cell_double(struct cellbuf *cb, double v);
/* RFC 3339 UTC with microseconds; empty when ns <= 0. */
void cell_time(struct cellbuf *cb, int64_t ns);
void cell_addr(struct cellbuf *cb, const struct vigil_addr *a);
/* A number, or an absent (empty) cell. */
void cell_opt_u64(struct cellbuf *cb, bool present, uint64_t v);

/* A fixed-size string field of a record, or absent. */
#define CELL_FIELD(cb, present, field)                                                      \
    cell_textn((cb), (field), (present) ? strnlen((field), sizeof(field)) : 0)

/* ---- rows -------------------------------------------------------------- */

/* Copies the cells into one allocation (Row, cell pointers, text). Beyond
 * rows->limit the row is not kept and 0 is returned. */
int rows_add(struct rows *r, const struct cellbuf *cb);
void rows_free(struct rows *r);

/* Shorthand: adds cb to a->rows and sets a->truncated when the limit
 * dropped it. */
int answer_row(struct answer *a, const struct cellbuf *cb);

/* ---- the kinds ----------------------------------------------------------- */

/* answer_fleet.c */
int answer_agents(struct answer *a);
int answer_flows(struct answer *a);
int answer_top(struct answer *a);
/* The key cells of a top row of group g (host / app / proto, port /
 * host_a, host_b), as the top and share answers write them. */
void top_key_cells(struct cellbuf *cb, enum top_group g, const struct top_row *r);

/* answer_alerts.c */
int answer_alerts(struct answer *a);
int answer_baseline(struct answer *a);

/* answer_capture.c */
int answer_capture_list(struct answer *a);

/* answer_bandwidth.c */
int answer_bandwidth(struct answer *a);
int answer_series(struct answer *a);
int answer_share(struct answer *a);
int answer_forecast(struct answer *a);

/* answer_latency.c */
int answer_latency(struct answer *a);

#endif
