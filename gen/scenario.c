/* scenario.c — the multi-capture writer and labels.json. See scenario.h. */
#include "scenario.h"

#include "pcapout.h"
#include "scheduler.h"
#include "stream.h"

#include "clock.h"
#include "err.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

void scn_init(struct scenario *sc)
{
    memset(sc, 0, sizeof *sc);
}

static void list_free(struct scn_list *l)
{
    free(l->v);
    memset(l, 0, sizeof *l);
}

void scn_free(struct scenario *sc)
{
    for (size_t i = 0; i < sc->n_attacks; i++) {
        list_free(&sc->attacks[i].sources);
        list_free(&sc->attacks[i].targets);
        list_free(&sc->attacks[i].agents);
    }
    free(sc->attacks);
    free(sc->items);
    memset(sc, 0, sizeof *sc);
}

static void copy_text(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

int scn_add_host(struct scenario *sc, const char *name, const char *ip, const char *role)
{
    if (sc->n_hosts == SCN_MAX_HOSTS)
        return -1;
    struct scn_host *h = &sc->hosts[sc->n_hosts];
    copy_text(h->name, sizeof h->name, name);
    copy_text(h->ip, sizeof h->ip, ip);
    h->role = role;
    return (int)sc->n_hosts++;
}

int scn_add(struct scenario *sc, const struct sess_spec *sp, uint64_t seed)
{
    if (sc->n_items == sc->cap_items) {
        size_t nc = sc->cap_items ? 2 * sc->cap_items : 4096;
        struct scn_item *v = realloc(sc->items, nc * sizeof *v);
        if (!v)
            return VIGIL_ENOMEM;
        sc->items = v;
        sc->cap_items = nc;
    }
    struct scn_item *it = &sc->items[sc->n_items];
    it->sp = *sp;
    it->seed = seed;
    it->ord = (uint32_t)sc->n_items++;
    return 0;
}

uint16_t scn_add_attack(struct scenario *sc, const char *type)
{
    if (sc->n_attacks == UINT16_MAX - 1)
        return 0;
    if (sc->n_attacks == sc->cap_attacks) {
        size_t nc = sc->cap_attacks ? 2 * sc->cap_attacks : 8;
        struct scn_attack *v = realloc(sc->attacks, nc * sizeof *v);
        if (!v)
            return 0;
        sc->attacks = v;
        sc->cap_attacks = nc;
    }
    struct scn_attack *a = &sc->attacks[sc->n_attacks];
    memset(a, 0, sizeof *a);
    a->type = type;
    a->first_ns = INT64_MAX;
    a->last_ns = INT64_MIN;
    return (uint16_t)++sc->n_attacks;
}

int scn_list_add(struct scn_list *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return 0;
    if (l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 8;
        char(*v)[SCN_ADDR_MAX] = realloc(l->v, nc * sizeof *v);
        if (!v)
            return VIGIL_ENOMEM;
        l->v = v;
        l->cap = nc;
    }
    copy_text(l->v[l->n++], SCN_ADDR_MAX, s);
    return 0;
}

static int by_start(const void *x, const void *y)
{
    const struct scn_item *a = x, *b = y;
    if (a->sp.t0 != b->sp.t0)
        return a->sp.t0 < b->sp.t0 ? -1 : 1;
    return a->ord < b->ord ? -1 : a->ord > b->ord;
}

/* --- labels.json ------------------------------------------------------------- */

/* Every string in the labels is the generator's own (names, addresses,
 * sentences it wrote), but escape anyway so the file is always valid JSON. */
static void put_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c > 0x7e)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void put_time(FILE *f, int64_t ns)
{
    char buf[40];
    if (vigil_format_rfc3339(ns, buf, sizeof buf) == 0)
        buf[0] = '\0';
    put_str(f, buf);
}

static void put_list(FILE *f, const struct scn_list *l)
{
    fputc('[', f);
    for (size_t i = 0; i < l->n; i++) {
        if (i)
            fputs(", ", f);
        put_str(f, l->v[i]);
    }
    fputc(']', f);
}

static int write_labels(const struct scenario *sc, const char *dir)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/labels.json", dir) >= sizeof path)
        return VIGIL_ERANGE;
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    fprintf(f, "{\n  \"generator\": \"vigil-gen\",\n  \"profile\": \"fleet\",\n");
    fprintf(f, "  \"seed\": %" PRIu64 ",\n  \"start\": ", sc->seed);
    put_time(f, sc->start_ns);
    fputs(",\n  \"end\": ", f);
    put_time(f, sc->end_ns);
    fputs(",\n  \"network\": ", f);
    put_str(f, sc->network);
    fputs(",\n  \"resolver\": ", f);
    put_str(f, sc->resolver);
    fputs(",\n  \"fleet\": [", f);
    for (size_t i = 0; i < sc->n_hosts; i++) {
        const struct scn_host *h = &sc->hosts[i];
        fputs(i ? ",\n    {\"name\": " : "\n    {\"name\": ", f);
        put_str(f, h->name);
        fputs(", \"ip\": ", f);
        put_str(f, h->ip);
        fputs(", \"role\": ", f);
        put_str(f, h->role);
        fprintf(f, ", \"capture\": \"%s.pcap\"}", h->name);
    }
    fputs("\n  ],\n  \"attacks\": [", f);
    for (size_t i = 0; i < sc->n_attacks; i++) {
        const struct scn_attack *a = &sc->attacks[i];
        fputs(i ? ",\n    {\"type\": " : "\n    {\"type\": ", f);
        put_str(f, a->type);
        fputs(",\n     \"sources\": ", f);
        put_list(f, &a->sources);
        fputs(",\n     \"targets\": ", f);
        put_list(f, &a->targets);
        fputs(",\n     \"agents\": ", f);
        put_list(f, &a->agents);
        fputs(",\n     \"start\": ", f);
        put_time(f, a->first_ns == INT64_MAX ? sc->start_ns : a->first_ns);
        fputs(", \"end\": ", f);
        put_time(f, a->last_ns == INT64_MIN ? sc->start_ns : a->last_ns);
        if (a->details[0])
            fprintf(f, ",\n     %s", a->details);
        fputs(",\n     \"description\": ", f);
        put_str(f, a->description);
        fputc('}', f);
    }
    fputs(sc->n_attacks ? "\n  ]\n}\n" : "]\n}\n", f);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return VIGIL_EIO;
    return 0;
}

/* --- the captures --------------------------------------------------------------- */

struct capture {
    struct pcapout po;
    uint64_t packets;
};

static void close_all(struct capture *caps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pcapout_close(&caps[i].po);
}

int scn_write(struct scenario *sc, const char *dir, unsigned snaplen, FILE *log)
{
    int rc = VIGIL_ENOMEM;
    struct capture caps[SCN_MAX_HOSTS];
    struct sched h;
    struct sess_stats st = {0};
    struct truth_writer no_truth = {0};
    static uint8_t frame[PKT_FRAME_MAX];
    size_t opened = 0, next = 0;
    int64_t last_ts = INT64_MIN;
    uint64_t next_id = 0;

    memset(caps, 0, sizeof caps);
    sched_init(&h);
    pool_init(sc->seed);
    qsort(sc->items, sc->n_items, sizeof *sc->items, by_start);
    for (; opened < sc->n_hosts; opened++) {
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/%s.pcap", dir, sc->hosts[opened].name) >=
            sizeof path) {
            fprintf(stderr, "vigil-gen: %s: path too long\n", dir);
            rc = VIGIL_ERANGE;
            goto out;
        }
        rc = pcapout_open(&caps[opened].po, path, snaplen);
        if (rc != 0)
            goto out;
    }

    for (;;) {
        struct session *top = sched_top(&h);
        if (next < sc->n_items && (!top || sc->items[next].sp.t0 <= top->key)) {
            struct session *s = sched_alloc(&h);
            if (!s)
                goto nomem;
            s->sp = sc->items[next].sp;
            sess_start(s, next_id++, sc->items[next].seed);
            next++;
            if (sched_push(&h, s) != 0)
                goto nomem;
            continue;
        }
        if (!top)
            break;
        int64_t ts;
        size_t len = sess_emit(top, frame, &ts, &no_truth, &st);
        if (ts < last_ts) {
            fprintf(stderr, "vigil-gen: internal error: time went backwards\n");
            rc = VIGIL_EINVAL;
            goto out;
        }
        last_ts = ts;
        uint64_t mask = top->sp.captures;
        for (size_t i = 0; mask && i < sc->n_hosts; i++, mask >>= 1) {
            if (mask & 1) {
                pcapout_write(&caps[i].po, ts, frame, len);
                caps[i].packets++;
            }
        }
        if (top->sp.tag) {
            struct scn_attack *a = scn_attack_of(sc, top->sp.tag);
            if (ts < a->first_ns)
                a->first_ns = ts;
            if (ts > a->last_ns)
                a->last_ns = ts;
        }
        if (top->key == INT64_MAX) {
            sess_finish(top, &no_truth, &st);
            sched_pop(&h);
            sched_release(&h, top);
        } else {
            sched_fix_top(&h);
        }
    }
    for (size_t i = 0; i < opened; i++) {
        int e = pcapout_close(&caps[i].po);
        if (e != 0) {
            fprintf(stderr, "vigil-gen: %s/%s.pcap: write failed\n", dir, sc->hosts[i].name);
            rc = e;
            goto out;
        }
    }
    rc = write_labels(sc, dir);
    if (rc != 0) {
        fprintf(stderr, "vigil-gen: %s/labels.json: %s\n", dir, vigil_strerror(rc));
        goto out;
    }
    for (size_t i = 0; i < sc->n_hosts; i++)
        fprintf(log, "vigil-gen: %s/%s.pcap: %" PRIu64 " packets, %" PRIu64 " captured bytes\n",
                dir, sc->hosts[i].name, caps[i].packets, caps[i].po.cap_bytes);
    fprintf(log,
            "vigil-gen: fleet of %zu hosts, %zu attacks: %" PRIu64 " sessions (tcp %" PRIu64
            " dns %" PRIu64 " quic %" PRIu64 " ntp %" PRIu64 "), %" PRIu64
            " packets, peak %zu open sessions\n",
            sc->n_hosts, sc->n_attacks, next_id, st.by_kind[SK_TCP], st.by_kind[SK_DNS],
            st.by_kind[SK_QUIC], st.by_kind[SK_NTP], st.packets, h.peak);
    rc = 0;
    goto out;
nomem:
    fprintf(stderr, "vigil-gen: out of memory\n");
    rc = VIGIL_ENOMEM;
out:
    close_all(caps, opened);
    sched_destroy(&h);
    return rc;
}
