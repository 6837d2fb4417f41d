#!/usr/bin/env python3
"""check_fleet.py — checks a `vigil-gen --profile fleet` scenario against its labels.

Reads every capture with tshark (an independent decoder) and checks that
labels.json tells the truth:

  - each capture holds only its own host's traffic (every packet has the
    host's address on one side);
  - each attack's packets are in the labelled agents' captures, and only
    there, between the labelled start and end (the first and last of them
    at exactly those times), between the labelled sources and targets;
  - the shape each detector looks for, counted from the packets:
      port_scan         SYNs from the source to the labelled number of distinct
                        ports of the target, mostly answered by RST or nothing;
      horizontal_scan   SYNs from the source to every labelled target, one port;
      fleet_scan        each labelled agent sees the source probe only a handful
                        of ports (under any per-host threshold) on its own host;
      distributed_scan  each source probes its share of ports, the union is the
                        labelled count;
      dns_tunnel        the labelled number of queries under the domain, every
                        name new, long random labels (not hex only), NULL, TXT
                        and CNAME among the types;
      beacon            the labelled number of connections at the labelled
                        period with low jitter, to a destination no other host
                        of the fleet ever contacts;
      exfiltration      at least the labelled bytes up to a destination nobody
                        contacted before.

usage: check_fleet.py DIR [--tshark PATH]
       check_fleet.py --gen VIGIL_GEN [--tshark PATH] [--keep]
With --gen it writes a small scenario itself (6 hosts, 1 day, a 20 MB
exfiltration), checks it, and also checks that the same seed gives the same
bytes and that --no-attacks gives the same benign traffic without the attacks.
Exit status 0 when everything holds, 1 otherwise, 77 when tshark is missing.
"""
import argparse
import calendar
import collections
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime

FIELDS = ["frame.time_epoch", "ip.src", "ip.dst", "ip.len", "tcp.srcport", "tcp.dstport",
          "tcp.flags", "udp.srcport", "udp.dstport", "dns.flags.response", "dns.qry.name",
          "dns.qry.type"]
Pkt = collections.namedtuple("Pkt", "t src dst iplen sport dport flags udp qr qname qtype")

FAILURES = []


def check(cond, what, detail=""):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)
        for line in str(detail).splitlines()[:15]:
            print("    | " + line)
    return cond


def ns_of_epoch(text):
    sec, _, frac = text.partition(".")
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


def ns_of_rfc3339(text):
    dt = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    return calendar.timegm(dt.timetuple()) * 1_000_000_000 + dt.microsecond * 1000


def read(tshark, path):
    cmd = [tshark, "-r", path, "-n", "-T", "fields", "-E", "separator=\t", "-E",
           "occurrence=f"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         check=True).stdout
    pkts = []
    for line in out.splitlines():
        v = line.split("\t")
        v += [""] * (len(FIELDS) - len(v))
        if not v[1]:
            continue
        udp = bool(v[8])
        pkts.append(Pkt(ns_of_epoch(v[0]), v[1], v[2], int(v[3] or 0),
                        int(v[7] if udp else v[4] or 0), int(v[8] if udp else v[5] or 0),
                        int(v[6], 16) if v[6] else 0, udp, v[9], v[10],
                        int(v[11]) if v[11] else 0))
    return pkts


def syns(pkts):
    return [p for p in pkts if not p.udp and p.flags & 0x12 == 0x02]


def span(atk):
    """The labelled [start, end] in ns; the labels keep microseconds, the packets ns."""
    return ns_of_rfc3339(atk["start"]), ns_of_rfc3339(atk["end"]) + 999


def in_span(pkts, atk):
    lo, hi = span(atk)
    return [p for p in pkts if lo <= p.t <= hi]


def check_dir(d, tshark):
    with open(os.path.join(d, "labels.json")) as f:
        labels = json.load(f)
    caps = {}
    for h in labels["fleet"]:
        caps[h["name"]] = read(tshark, os.path.join(d, h["capture"]))
    ip_of = {h["name"]: h["ip"] for h in labels["fleet"]}

    stray = {n: sum(1 for p in caps[n] if ip_of[n] not in (p.src, p.dst)) for n in caps}
    check(all(v == 0 for v in stray.values()) and all(caps.values()),
          f"each of the {len(caps)} captures holds its own host's traffic only",
          {n: v for n, v in stray.items() if v})

    for atk in labels["attacks"]:
        kind = atk["type"]
        src, dst = set(atk["sources"]), set(atk["targets"])

        def between(p):
            return (p.src in src and p.dst in dst) or (p.src in dst and p.dst in src)

        lo, hi = span(atk)
        seen_in = {n for n in caps if any(between(p) and lo <= p.t <= hi for p in caps[n])}
        check(seen_in == set(atk["agents"]),
              f"{kind}: between its sources and targets in exactly the labelled agents' "
              f"captures during {atk['start']} .. {atk['end']}",
              f"seen in {sorted(seen_in)}, labelled {atk['agents']}")
        mine = [p for n in atk["agents"] for p in in_span(caps[n], atk) if between(p)]
        if kind == "dns_tunnel":
            dom = atk["domain"]
            mine = [p for p in mine if p.qname.endswith("." + dom)]
        elif kind == "beacon":
            mine = [p for p in mine if p.dport == atk["port"] or p.sport == atk["port"]]
        if not mine:
            check(False, f"{kind}: packets present")
            continue
        first, last = min(p.t for p in mine) // 1000, max(p.t for p in mine) // 1000
        # a beacon's and an exfiltration's first packet is their DNS lookup
        exact = first == lo // 1000 or kind in ("beacon", "exfiltration")
        check(exact and last == hi // 1000,
              f"{kind}: its first and last packets are at the labelled start and end",
              f"{first} {last} vs {lo // 1000} {hi // 1000} (microseconds)")
        globals()["shape_" + kind](atk, mine, caps, labels)


def shape_port_scan(atk, mine, caps, labels):
    s = syns(p for p in mine if p.src in atk["sources"])
    ports = {p.dport for p in s}
    answered_rst = sum(1 for p in mine if p.src in atk["targets"] and p.flags & 0x04)
    synack = sum(1 for p in mine if p.src in atk["targets"] and p.flags & 0x12 == 0x12)
    check(len(ports) == atk["ports"] == len(s),
          f"port_scan: {len(s)} SYNs to {len(ports)} distinct ports (labelled {atk['ports']})")
    check(answered_rst + synack <= len(s) and synack < len(s) / 10,
          f"port_scan: mostly failed ({answered_rst} RST, {synack} SYN-ACK, "
          f"{len(s) - answered_rst - synack} unanswered)")


def shape_horizontal_scan(atk, mine, caps, labels):
    s = syns(p for p in mine if p.src in atk["sources"])
    check({p.dst for p in s} == set(atk["targets"]) and {p.dport for p in s} == {atk["port"]},
          f"horizontal_scan: SYNs to all {len(atk['targets'])} targets on port {atk['port']} only")


def shape_fleet_scan(atk, mine, caps, labels):
    per_host = collections.defaultdict(set)
    for p in syns(mine):
        per_host[p.dst].add(p.dport)
    ok_hosts = all(len(v) == atk["ports_per_host"] for v in per_host.values())
    check(set(per_host) == set(atk["targets"]) and ok_hosts,
          f"fleet_scan: each of {len(per_host)} hosts sees {atk['ports_per_host']} probes "
          f"(far under a per-host threshold), {len(per_host)} hosts in all")
    src = set(atk["sources"])
    others = [n for n in caps if n not in atk["agents"] and any(p.src in src for p in caps[n])]
    check(not others, "fleet_scan: no other capture sees the source", others)


def shape_distributed_scan(atk, mine, caps, labels):
    per_src = collections.defaultdict(set)
    for p in syns(mine):
        per_src[p.src].add(p.dport)
    union = set().union(*per_src.values()) if per_src else set()
    check(set(per_src) == set(atk["sources"]) and
          all(len(v) == atk["ports_per_source"] for v in per_src.values()) and
          len(union) == atk["ports"],
          f"distributed_scan: {len(per_src)} sources, {atk['ports_per_source']} ports each, "
          f"{len(union)} distinct in all")


def shape_dns_tunnel(atk, mine, caps, labels):
    q = [p for p in mine if p.qr == "0" or p.qr == "False"]
    names = [p.qname for p in q]
    left = [n[: -len(atk["domain"]) - 1] for n in names]
    longest = sorted(len(x) for x in left)
    median = longest[len(longest) // 2] if longest else 0
    chars = set("".join(left)) - set(".")
    check(len(q) == atk["queries"] and len(set(names)) == len(names),
          f"dns_tunnel: {len(q)} queries (labelled {atk['queries']}), every name new")
    check(median >= 60 and not chars <= set("0123456789abcdef"),
          f"dns_tunnel: long labels (median {median} characters left of the domain), "
          f"not hex only")
    types = collections.Counter(p.qtype for p in q)
    check({5, 10, 16} <= set(types), f"dns_tunnel: query types {dict(types)} (5 CNAME, 10 NULL, "
                                     f"16 TXT)")


def shape_beacon(atk, mine, caps, labels):
    s = sorted(p.t for p in syns(mine) if p.src in atk["sources"])
    gaps = [(b - a) / 1e9 for a, b in zip(s, s[1:])]
    period = atk["period_s"]
    med = statistics.median(gaps) if gaps else 0
    worst = max((abs(g - period) for g in gaps), default=1e9)
    check(len(s) == atk["connections"] and abs(med - period) < period * 0.01 and
          worst < period * 0.05,
          f"beacon: {len(s)} connections, median period {med:.2f} s, worst {worst:.2f} s off")
    target = set(atk["targets"])
    others = {h["name"] for h in labels["fleet"] if h["ip"] not in atk["sources"]
              for p in caps[h["name"]] if p.dst in target or p.src in target}
    check(not others, "beacon: no other host ever contacts its destination", others)


def shape_exfiltration(atk, mine, caps, labels):
    up = sum(p.iplen for p in mine if p.src in atk["sources"])
    check(up >= atk["bytes"], f"exfiltration: {up} IP bytes up (labelled {atk['bytes']})")
    lo = ns_of_rfc3339(atk["start"])
    target = set(atk["targets"])
    before = [n for n in caps for p in caps[n] if p.t < lo and (p.dst in target or
                                                               p.src in target)]
    check(not before, "exfiltration: no host contacted the destination before", before[:5])


def flows_of(tshark, path, skip):
    """The capture's packets without those touching `skip` addresses, as a multiset."""
    return collections.Counter(p for p in read(tshark, path)
                               if p.src not in skip and p.dst not in skip)


def self_test(gen, tshark, keep):
    work = tempfile.mkdtemp(prefix="vigil-fleet-check.")
    base = ["--profile", "fleet", "--hosts", "6", "--days", "1", "--exfil-mb", "20",
            "--seed", "7"]
    dirs = {k: os.path.join(work, k) for k in ("a", "b", "benign")}
    try:
        for k, extra in (("a", []), ("b", []), ("benign", ["--no-attacks"])):
            subprocess.run([gen, *base, *extra, "--out-dir", dirs[k]], check=True,
                           stderr=subprocess.DEVNULL)
        check_dir(dirs["a"], tshark)

        def digest(d):
            return {f: hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest()
                    for f in sorted(os.listdir(d))}
        check(digest(dirs["a"]) == digest(dirs["b"]), "the same seed gives the same bytes")
        with open(os.path.join(dirs["benign"], "labels.json")) as f:
            benign = json.load(f)
        check(benign["attacks"] == [], "--no-attacks: no attack labelled")
        with open(os.path.join(dirs["a"], "labels.json")) as f:
            labels = json.load(f)
        # The benign traffic is the same with and without the attacks: compare
        # a capture once every attack's outside addresses are left out.
        skip = {a for atk in labels["attacks"] for a in atk["sources"] + atk["targets"]
                if not any(a == h["ip"] for h in labels["fleet"])}
        host = next(h for h in labels["fleet"]
                    if not any(h["ip"] in atk["sources"] for atk in labels["attacks"]))
        with_a = flows_of(tshark, os.path.join(dirs["a"], host["capture"]), skip)
        without = flows_of(tshark, os.path.join(dirs["benign"], host["capture"]), skip)
        check(with_a == without and sum(without.values()) > 1000,
              f"{host['name']}: the same {sum(without.values())} benign packets with and "
              f"without the attacks")
    finally:
        if keep or FAILURES:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", nargs="?")
    ap.add_argument("--gen")
    ap.add_argument("--tshark", default=shutil.which("tshark") or "tshark")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if not shutil.which(a.tshark):
        print("skip: tshark not found")
        return 77
    if a.gen:
        self_test(a.gen, a.tshark, a.keep)
    elif a.dir:
        check_dir(a.dir, a.tshark)
    else:
        ap.error("give DIR or --gen")
    print(f"{len(FAILURES)} failed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
