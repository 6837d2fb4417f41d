/* answer.c — the helpers every query kind shares (see answer.h): argument
 * checks with messages for people, cells, rows.
 *
 * Each row is one malloc holding the Row, its cell pointers and the text,
 * so building 50,000 rows costs 50,000 allocations, not one per cell. */
#include "answer.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"

#define DAY_NS (86400 * NS_PER_SEC)

/* ---- arguments ----------------------------------------------------------- */

const char *arg_find(const struct answer *a, const char *key)
{
    for (size_t i = 0; i < a->q->n_args; i++)
        if (strcmp(a->q->args[i]->key, key) == 0)
            return a->q->args[i]->value;
    return NULL;
}

int args_known(struct answer *a, const char *const *known)
{
    for (size_t i = 0; i < a->q->n_args; i++) {
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++)
            ok = strcmp(a->q->args[i]->key, *k) == 0;
        if (!ok) {
            snprintf(a->err, sizeof a->err, "%s: unknown argument \"%s\"", a->q->kind,
                     a->q->args[i]->key);
            return VIGIL_EINVAL;
        }
    }
    return 0;
}

/* Decimal digits only, within [min, max]. */
static int parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!text || !*text)
        return VIGIL_EINVAL;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return VIGIL_EINVAL;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return VIGIL_ERANGE;
        v = v * 10 + d;
    }
    if (v < min || v > max)
        return VIGIL_ERANGE;
    *out = v;
    return 0;
}

int arg_u64(struct answer *a, const char *key, uint64_t min, uint64_t max, uint64_t *out)
{
    const char *v = arg_find(a, key);
    if (!v)
        return 0;
    if (parse_u64(v, min, max, out) != 0) {
        snprintf(a->err, sizeof a->err,
                 "%s: %s=\"%s\" is not a number from %" PRIu64 " to %" PRIu64, a->q->kind, key,
                 v, min, max);
        return VIGIL_EINVAL;
    }
    return 0;
}

int arg_word(struct answer *a, const char *key, const char *const *words, unsigned *out)
{
    const char *v = arg_find(a, key);
    if (!v)
        return 0;
    for (unsigned i = 0; words[i]; i++) {
        if (strcmp(v, words[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    size_t len = sizeof a->err;
    int n = snprintf(a->err, len, "%s: %s=\"%s\" is not one of", a->q->kind, key, v);
    for (unsigned i = 0; words[i] && n > 0 && (size_t)n < len; i++)
        n += snprintf(a->err + n, len - (size_t)n, "%s %s", i ? "," : "", words[i]);
    return VIGIL_EINVAL;
}

int arg_range(struct answer *a, int64_t *since, int64_t *until)
{
    uint64_t s = (uint64_t)(a->now_ns > DAY_NS ? a->now_ns - DAY_NS : 0);
    uint64_t u = (uint64_t)a->now_ns + (uint64_t)DAY_NS;
    int rc;
    if ((rc = arg_u64(a, "since", 0, INT64_MAX, &s)) != 0 ||
        (rc = arg_u64(a, "until", 1, INT64_MAX, &u)) != 0)
        return rc;
    if (u <= s) {
        snprintf(a->err, sizeof a->err, "%s: the range is empty: until must be after since",
                 a->q->kind);
        return VIGIL_EINVAL;
    }
    *since = (int64_t)s;
    *until = (int64_t)u;
    return 0;
}

int arg_addr(struct answer *a, const char *key, struct vigil_addr *out, bool *present)
{
    const char *text = arg_find(a, key);
    *present = false;
    if (!text)
        return 0;
    if (addr_parse(text, out) != 0) {
        snprintf(a->err, sizeof a->err, "%s: %s=\"%s\" is not an IPv4 or IPv6 address",
                 a->q->kind, key, text);
        return VIGIL_EINVAL;
    }
    *present = true;
    return 0;
}

/* ---- cells ------------------------------------------------------------------ */

void cells_reset(struct cellbuf *cb)
{
    cb->used = 0;
    cb->n = 0;
}

void cell_textn(struct cellbuf *cb, const char *s, size_t n)
{
    if (cb->n >= TRANSPORT_MAX_COLUMNS)
        return;
    size_t room = sizeof cb->text - cb->used;
    if (room == 0)
        return;
    if (n > room - 1)
        n = room - 1;
    char *dst = cb->text + cb->used;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[n] = '\0';
    cb->cells[cb->n++] = dst;
    cb->used += n + 1;
}

void cell_text(struct cellbuf *cb, const char *s)
{
    cell_textn(cb, s, strnlen(s, CELL_TEXT_MAX));
}

void cell_fmt(struct cellbuf *cb, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    cell_textn(cb, tmp, n < 0 ? 0 : (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

void cell_u64(struct cellbuf *cb, uint64_t v)
{
    cell_fmt(cb, "%" PRIu64, v);
}

void cell_i64(struct cellbuf *cb, int64_t v)
{
    cell_fmt(cb, "%" PRId64, v);
}

void cell_double(struct cellbuf *cb, double v)
{
    cell_fmt(cb, "%.6f", v);
}

void cell_time(struct cellbuf *cb, int64_t ns)
{
    char ts[32];
    size_t n = ns > 0 ? vigil_format_rfc3339(ns, ts, sizeof ts) : 0;
    cell_textn(cb, ts, n);
}

void cell_addr(struct cellbuf *cb, const struct vigil_addr *a)
{
    char text[ADDR_STRLEN];
    cell_text(cb, addr_format(a, text));
}

void cell_opt_u64(struct cellbuf *cb, bool present, uint64_t v)
{
    if (present)
        cell_u64(cb, v);
    else
        cell_textn(cb, "", 0);
}

/* ---- rows ------------------------------------------------------------------- */

void rows_free(struct rows *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i]);
    free(r->v);
    r->v = NULL;
    r->n = r->cap = 0;
}

int rows_add(struct rows *r, const struct cellbuf *cb)
{
    if (r->n >= r->limit)
        return 0;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        Vigil__Row **v = realloc(r->v, cap * sizeof *v);
        if (!v)
            return VIGIL_ENOMEM;
        r->v = v;
        r->cap = cap;
    }
    size_t text = 0;
    for (size_t i = 0; i < cb->n; i++)
        text += strlen(cb->cells[i]) + 1;
    Vigil__Row *row = malloc(sizeof *row + cb->n * sizeof(char *) + text);
    if (!row)
        return VIGIL_ENOMEM;
    vigil__row__init(row);
    row->n_cells = cb->n;
    row->cells = (char **)(row + 1);
    char *p = (char *)(row->cells + cb->n);
    for (size_t i = 0; i < cb->n; i++) {
        size_t l = strlen(cb->cells[i]) + 1;
        memcpy(p, cb->cells[i], l);
        row->cells[i] = p;
        p += l;
    }
    r->v[r->n++] = row;
    return 0;
}

int answer_row(struct answer *a, const struct cellbuf *cb)
{
    if (a->rows.n >= a->rows.limit) {
        a->truncated = true;
        return 0;
    }
    return rows_add(&a->rows, cb);
}
