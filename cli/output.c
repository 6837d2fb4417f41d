/* output.c — a QueryResponse for people (an aligned table) or for machines
 * (JSON Lines, CSV).
 *
 * Cells arrive as text; JSON needs types. Which columns are numbers is known
 * here by name (the aggregator's columns, service.h); an unknown column is
 * written as a string, a numeric column whose cell is not a number too, so
 * the output is always valid JSON. An empty cell means "absent" and is left
 * out of the JSON object, as the agent's --json does.
 *
 * Non-goals: sorting or filtering (the aggregator's job), colours. */
#include "cli.h"

#include "clock.h"
#include "err.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int output_format_parse(const char *text, enum out_format *out)
{
    static const char *const names[] = {[OUT_TABLE] = "table", [OUT_JSON] = "json",
                                        [OUT_CSV] = "csv"};
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(text, names[i]) == 0) {
            *out = (enum out_format)i;
            return 0;
        }
    }
    return VIGIL_EINVAL;
}

/* ---- types of columns --------------------------------------------------- */

static const char *const numeric_columns[] = {
    /* flows (DESIGN.md's record fields) */
    "flow_id", "duration", "src_port", "dst_port", "proto", "vlan", "icmp_type", "icmp_code",
    "pkts_fwd", "bytes_fwd", "pkts_rev", "bytes_rev", "tcp_flags_fwd", "tcp_flags_rev",
    "rtt_us", "retrans_fwd", "retrans_rev", "dns_qtype", "dns_rcode", "records",
    /* agents */
    "last_seq", "batches", "flows", "seq_gaps", "packets", "bytes", "decode_errors",
    "capture_drops", "interface_drops", "evictions", "emergency", "agent_flows",
    "agent_records", "spool_batches", "spool_bytes", "spool_dropped_batches",
    "spool_dropped_records",
    /* top */
    "port", "share", "bytes_out", "bytes_in", "pkts_out", "pkts_in",
    /* bandwidth, share, forecast, latency (answer_bandwidth.c, answer_latency.c) */
    "interval", "samples", "in_bps", "out_bps", "in_p50_bps", "in_p95_bps", "in_p99_bps",
    "in_max_bps", "out_p50_bps", "out_p95_bps", "out_p99_bps", "out_max_bps", "cumulative",
    "rank", "groups", "p95_in_bps", "p95_out_bps", "p95_bps", "fitted_bps",
    "slope_bps_per_day", "slope_bps_per_month", "r2", "days", "capacity_bps", "rtt_flows",
    "rtt_p50_us", "rtt_p95_us", "rtt_p99_us", "rtt_max_us", "rtt_mean_us", "retrans",
    "tcp_packets", "retrans_rate",
    NULL,
};

static bool in_list(const char *const *list, const char *name)
{
    for (; *list; list++)
        if (strcmp(*list, name) == 0)
            return true;
    return false;
}

/* A JSON number as the aggregator writes them: digits, optionally a
 * fraction; no sign, no exponent, no leading zeros. */
static bool is_number(const char *s)
{
    const char *p = s;
    if (*p < '0' || *p > '9')
        return false;
    if (*p == '0' && p[1] >= '0' && p[1] <= '9')
        return false;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

static const char *cell_of(const Vigil__Row *row, size_t i)
{
    return i < row->n_cells ? row->cells[i] : "";
}

/* ---- JSON Lines -------------------------------------------------------------- */

static void json_string(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", fp); break;
        case '\\': fputs("\\\\", fp); break;
        case '\n': fputs("\\n", fp); break;
        case '\r': fputs("\\r", fp); break;
        case '\t': fputs("\\t", fp); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf(fp, "\\u%04x", *p);
            else
                fputc(*p, fp);
        }
    }
    fputc('"', fp);
}

static void write_json(FILE *fp, const Vigil__QueryResponse *r)
{
    for (size_t i = 0; i < r->n_rows; i++) {
        const Vigil__Row *row = r->rows[i];
        bool first = true;
        fputc('{', fp);
        for (size_t c = 0; c < r->n_columns; c++) {
            const char *name = r->columns[c], *v = cell_of(row, c);
            if (!*v)
                continue;
            if (!first)
                fputc(',', fp);
            first = false;
            json_string(fp, name);
            fputc(':', fp);
            if (strcmp(name, "final") == 0 && (strcmp(v, "true") == 0 || strcmp(v, "false") == 0))
                fputs(v, fp);
            else if (in_list(numeric_columns, name) && is_number(v))
                fputs(v, fp);
            else
                json_string(fp, v);
        }
        fputs("}\n", fp);
    }
}

/* ---- CSV (RFC 4180) ------------------------------------------------------------ */

static void csv_field(FILE *fp, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, fp);
        return;
    }
    fputc('"', fp);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', fp);
        fputc(*s, fp);
    }
    fputc('"', fp);
}

static void write_csv(FILE *fp, const Vigil__QueryResponse *r)
{
    for (size_t c = 0; c < r->n_columns; c++) {
        if (c)
            fputc(',', fp);
        csv_field(fp, r->columns[c]);
    }
    fputc('\n', fp);
    for (size_t i = 0; i < r->n_rows; i++) {
        for (size_t c = 0; c < r->n_columns; c++) {
            if (c)
                fputc(',', fp);
            csv_field(fp, cell_of(r->rows[i], c));
        }
        fputc('\n', fp);
    }
}

/* ---- table ------------------------------------------------------------------------ */

#define TABLE_MAX_COLUMNS 64
#define TABLE_CELL_MAX 300

static void format_bytes(const char *v, char *out, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end || !is_number(v)) {
        snprintf(out, len, "%s", v);
        return;
    }
    if (n < 1024) {
        snprintf(out, len, "%llu B", n);
        return;
    }
    double d = (double)n;
    unsigned u = 0;
    while (d >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
        d /= 1024.0;
        u++;
    }
    snprintf(out, len, "%.1f %s", d, units[u]);
}

void output_format_rate(double bps, char *out, size_t len)
{
    static const char *const units[] = {"bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s",
                                        "Pbit/s"};
    unsigned u = 0;
    while (bps >= 1000.0 && u + 1 < sizeof units / sizeof units[0]) {
        bps /= 1000.0; /* bit rates are decimal, as links are sold */
        u++;
    }
    snprintf(out, len, u ? "%.2f %s" : "%.0f %s", bps, units[u]);
}

static void format_ago(const char *v, int64_t now_ns, char *out, size_t len)
{
    int64_t t;
    if (cli_parse_rfc3339(v, &t) != 0) {
        snprintf(out, len, "%s", v);
        return;
    }
    int64_t s = (now_ns - t) / NS_PER_SEC;
    if (s < 0)
        snprintf(out, len, "in the future");
    else if (s < 120)
        snprintf(out, len, "%" PRId64 "s ago", s);
    else if (s < 7200)
        snprintf(out, len, "%" PRId64 "m ago", s / 60);
    else if (s < 2 * 86400)
        snprintf(out, len, "%" PRId64 "h ago", s / 3600);
    else
        snprintf(out, len, "%" PRId64 "d ago", s / 86400);
}

/* One cell as the table shows it. */
static void table_cell(const char *v, enum col_style style, int64_t now_ns, char *out,
                       size_t len)
{
    if (!*v) {
        snprintf(out, len, "-");
        return;
    }
    switch (style) {
    case COL_BYTES: format_bytes(v, out, len); break;
    case COL_SHARE: snprintf(out, len, "%.1f%%", strtod(v, NULL) * 100.0); break;
    case COL_RATE: output_format_rate(strtod(v, NULL), out, len); break;
    case COL_AGO: format_ago(v, now_ns, out, len); break;
    case COL_TIME: {
        /* "2026-01-01T00:00:05.123456Z" -> "2026-01-01 00:00:05" */
        size_t n = strlen(v);
        snprintf(out, len, "%.*s", (int)(n >= 19 ? 19 : n), v);
        if (n >= 19 && len > 10 && out[10] == 'T')
            out[10] = ' ';
        break;
    }
    default: snprintf(out, len, "%s", v); break;
    }
}

static bool right_aligned(enum col_style s)
{
    return s == COL_NUMBER || s == COL_BYTES || s == COL_SHARE || s == COL_RATE;
}

static int write_table(FILE *fp, const Vigil__QueryResponse *r, const struct table_column *view,
                       int64_t now_ns)
{
    struct table_column all[TABLE_MAX_COLUMNS + 1];
    size_t idx[TABLE_MAX_COLUMNS];
    size_t width[TABLE_MAX_COLUMNS];
    size_t n = 0;
    char cell[TABLE_CELL_MAX];

    if (r->n_rows == 0)
        return 0; /* the caller says "nothing" on stderr; a lone header is noise */
    if (!view) {
        for (size_t c = 0; c < r->n_columns && c < TABLE_MAX_COLUMNS; c++)
            all[c] = (struct table_column){r->columns[c], r->columns[c], COL_PLAIN};
        all[r->n_columns < TABLE_MAX_COLUMNS ? r->n_columns : TABLE_MAX_COLUMNS].name = NULL;
        view = all;
    }
    /* the view's columns the answer has, in the view's order */
    const struct table_column *shown[TABLE_MAX_COLUMNS];
    for (const struct table_column *v = view; v->name && n < TABLE_MAX_COLUMNS; v++) {
        for (size_t c = 0; c < r->n_columns; c++) {
            if (strcmp(r->columns[c], v->name) == 0) {
                shown[n] = v;
                idx[n] = c;
                width[n] = strlen(v->header);
                n++;
                break;
            }
        }
    }
    for (size_t i = 0; i < r->n_rows; i++) {
        for (size_t k = 0; k < n; k++) {
            table_cell(cell_of(r->rows[i], idx[k]), shown[k]->style, now_ns, cell, sizeof cell);
            size_t l = strlen(cell);
            if (l > width[k])
                width[k] = l;
        }
    }
    for (size_t k = 0; k < n; k++) {
        if (right_aligned(shown[k]->style))
            fprintf(fp, "%s%*s", k ? "  " : "", (int)width[k], shown[k]->header);
        else
            fprintf(fp, "%s%-*s", k ? "  " : "", k + 1 < n ? (int)width[k] : 0,
                    shown[k]->header);
    }
    fputc('\n', fp);
    for (size_t i = 0; i < r->n_rows; i++) {
        for (size_t k = 0; k < n; k++) {
            table_cell(cell_of(r->rows[i], idx[k]), shown[k]->style, now_ns, cell, sizeof cell);
            if (right_aligned(shown[k]->style))
                fprintf(fp, "%s%*s", k ? "  " : "", (int)width[k], cell);
            else
                fprintf(fp, "%s%-*s", k ? "  " : "", k + 1 < n ? (int)width[k] : 0, cell);
        }
        fputc('\n', fp);
    }
    return 0;
}

int output_write(FILE *fp, enum out_format f, const Vigil__QueryResponse *r,
                 const struct table_column *table, int64_t now_ns)
{
    switch (f) {
    case OUT_JSON: write_json(fp, r); break;
    case OUT_CSV: write_csv(fp, r); break;
    default: write_table(fp, r, table, now_ns); break;
    }
    if (fflush(fp) != 0 || ferror(fp))
        return VIGIL_EIO;
    return 0;
}
