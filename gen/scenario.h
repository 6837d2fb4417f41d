/* scenario.h — a fleet scenario: one capture per host, written in one pass,
 * and the labels that say what each capture holds.
 *
 * A scenario is a list of hosts and a list of session specs; each spec says
 * (sp.captures, a bit per host) which hosts' captures see it — a conversation
 * between two monitored hosts is in both, an outsider's probe of host X only
 * in X's — and (sp.tag) which labelled attack it belongs to, if any. The
 * writer sorts the specs by start time, runs the session engine once and
 * hands each frame to every capture that sees it, so all captures share one
 * clock. It notes each attack's first and last packet and writes
 * DIR/<host>.pcap and DIR/labels.json. */
#ifndef VIGIL_GEN_SCENARIO_H
#define VIGIL_GEN_SCENARIO_H

#include "session.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SCN_MAX_HOSTS 64 /* one bit per host in sess_spec.captures */
#define SCN_NAME_MAX 32
#define SCN_ADDR_MAX 46  /* an IPv6 address in text, and its NUL */

struct scn_host {
    char name[SCN_NAME_MAX]; /* also the agent's name and the capture's file name */
    char ip[SCN_ADDR_MAX];
    const char *role;        /* static text: "web server", "workstation"... */
};

/* A growable list of addresses or names in text. */
struct scn_list {
    char (*v)[SCN_ADDR_MAX]; /* owned */
    size_t n, cap;
};

struct scn_attack {
    const char *type;        /* static: an alert type of DESIGN.md */
    struct scn_list sources, targets, agents;
    char description[320];
    char details[320];       /* extra JSON members ("\"ports\": 1000, ..."), or "" */
    int64_t first_ns, last_ns; /* the attack's first and last packet, set by the writer */
};

/* A spec and its place in the order it was added: ties in start time keep
 * that order, so the output never depends on the sort's internals. */
struct scn_item {
    struct sess_spec sp;
    uint64_t seed;
    uint32_t ord;
};

struct scenario {
    struct scn_host hosts[SCN_MAX_HOSTS];
    size_t n_hosts;
    struct scn_attack *attacks; /* owned */
    size_t n_attacks, cap_attacks;
    struct scn_item *items;     /* owned */
    size_t n_items, cap_items;
    int64_t start_ns, end_ns;   /* the span the traffic was planned for */
    uint64_t seed;
    char network[64];           /* the fleet's local network, CIDR */
    char resolver[SCN_ADDR_MAX];
};

void scn_init(struct scenario *sc);
void scn_free(struct scenario *sc);

/* Adds a host; returns its index, or -1 when the fleet is full. */
int scn_add_host(struct scenario *sc, const char *name, const char *ip, const char *role);

/* Adds a session with its own generator seed; returns 0 or VIGIL_ENOMEM. */
int scn_add(struct scenario *sc, const struct sess_spec *sp, uint64_t seed);

/* Adds a labelled attack; returns its tag (1 + index) for sess_spec.tag, or
 * 0 when out of memory. */
uint16_t scn_add_attack(struct scenario *sc, const char *type);

static inline struct scn_attack *scn_attack_of(struct scenario *sc, uint16_t tag)
{
    return &sc->attacks[tag - 1];
}

/* Appends an address or name (at most SCN_ADDR_MAX - 1 characters) unless
 * the list has it already; returns 0 or VIGIL_ENOMEM. */
int scn_list_add(struct scn_list *l, const char *s);

/* Writes every capture and labels.json into dir (which must exist).
 * Progress and a summary go to log. Returns 0, or a negative VIGIL_E code
 * after printing a message. */
int scn_write(struct scenario *sc, const char *dir, unsigned snaplen, FILE *log);

#endif
