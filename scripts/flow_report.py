#!/usr/bin/env python3
"""flow_report.py — a short human summary of vigil-agent JSON lines.

Usage: flow_report.py FLOWS.jsonl
Prints flows, packets and bytes per application and per state, the busiest
conversations, and the DNS names, TLS server names and HTTP hosts seen.
"""
import collections
import json
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    flows = collections.defaultdict(lambda: {"pkts": 0, "bytes": 0})
    by_app = collections.Counter()
    by_app_bytes = collections.Counter()
    states = collections.Counter()
    names = {"dns_qname": set(), "tls_sni": set(), "http_host": set()}
    records = 0
    with open(sys.argv[1]) as f:
        for line in f:
            r = json.loads(line)
            records += 1
            key = (r["src_ip"], r.get("src_port"), r["dst_ip"], r.get("dst_port"), r["proto"])
            total = r["bytes_fwd"] + r["bytes_rev"]
            flows[key]["pkts"] += r["pkts_fwd"] + r["pkts_rev"]
            flows[key]["bytes"] += total
            flows[key]["app"] = r.get("app", "-")
            if r["final"]:
                by_app[r.get("app", "unknown")] += 1
                if "state" in r:
                    states[r["state"]] += 1
            by_app_bytes[r.get("app", "unknown")] += total
            for k in names:
                if r.get(k):
                    names[k].add(r[k])

    print(f"\n{records} records, {len(flows)} conversations\n")
    print(f"{'application':<14} {'flows':>6} {'bytes':>12}")
    for app, n in by_app.most_common():
        print(f"{app:<14} {n:>6} {by_app_bytes[app]:>12}")
    print("\nTCP states: " + ", ".join(f"{s} {n}" for s, n in states.most_common()))
    print("\nbusiest conversations:")
    top = sorted(flows.items(), key=lambda kv: kv[1]["bytes"], reverse=True)[:8]
    for (src, sp, dst, dp, proto), v in top:
        a = f"{src}:{sp}" if sp is not None else src
        b = f"{dst}:{dp}" if dp is not None else dst
        print(f"  {a:>28} -> {b:<28} proto {proto:<3} {v['app']:<6} "
              f"{v['pkts']:>6} pkts {v['bytes']:>10} bytes")
    for k, label in (("dns_qname", "DNS names"), ("tls_sni", "TLS server names"),
                     ("http_host", "HTTP hosts")):
        if names[k]:
            print(f"\n{label}: " + ", ".join(sorted(names[k])[:12]))


if __name__ == "__main__":
    main()
