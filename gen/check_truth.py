#!/usr/bin/env python3
"""check_truth.py — checks a vigil-gen capture against its truth file with tshark.

Reads every packet with tshark (an independent decoder), groups packets into
the truth's flows (same VLAN, protocol, addresses and ports; a packet belongs
to the record of that key whose [start, end] holds its time, so flows split by
a deliberate idle gap are told apart) and compares, per direction: packets,
IP-layer bytes, OR of TCP flags, retransmissions (tshark's analysis), plus the
TCP state implied by the flags, the DNS name/type/rcode, TLS SNI, HTTP Host,
ICMP type, start and end. It also fails on packets that belong to no record and
on anything tshark marks malformed.

usage: check_truth.py CAPTURE.pcap TRUTH.jsonl [--tshark PATH]
Exit status 0 when everything matches, 1 otherwise. For big captures run it on
a small bench (vigil-gen --profile bench --flows 20000): it holds all packets'
summaries in memory.
"""
import argparse
import collections
import json
import subprocess
import sys
from datetime import datetime, timezone

FIELDS = [
    "frame.number", "frame.time_epoch", "vlan.id", "ip.src", "ip.dst", "ip.len", "ip.proto",
    "ipv6.src", "ipv6.dst", "ipv6.plen", "ipv6.nxt", "tcp.srcport", "tcp.dstport", "tcp.flags",
    "udp.srcport", "udp.dstport", "icmp.type", "icmpv6.type", "dns.flags.response",
    "dns.qry.name", "dns.qry.type", "dns.flags.rcode", "tls.handshake.extensions_server_name",
    "http.host", "_ws.malformed",
]


def tshark_rows(tshark, path, extra):
    cmd = [tshark, "-r", path, "-n", "-T", "fields", "-E", "separator=\t", "-E", "occurrence=f"]
    cmd += extra
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                       check=True)
    return [line.split("\t") for line in p.stdout.splitlines()]


def ns_of_epoch(text):
    sec, _, frac = text.partition(".")
    frac = (frac + "000000000")[:9]
    return int(sec) * 1_000_000_000 + int(frac)


def us_of_rfc3339(text):
    dt = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


def norm_ip(a):
    return a.lower()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("capture")
    ap.add_argument("truth")
    ap.add_argument("--tshark", default="tshark")
    args = ap.parse_args()

    truth = [json.loads(line) for line in open(args.truth, encoding="utf-8") if line.strip()]
    by_key = collections.defaultdict(list)
    for i, t in enumerate(truth):
        t["_start"] = us_of_rfc3339(t["start"])
        t["_end"] = us_of_rfc3339(t["end"])
        key = (t.get("vlan"), t["proto"], norm_ip(t["src_ip"]), t.get("src_port"),
               norm_ip(t["dst_ip"]), t.get("dst_port"))
        by_key[key].append(i)

    fields = []
    for f in FIELDS:
        fields += ["-e", f]
    rows = tshark_rows(args.tshark, args.capture, fields)
    retrans = {r[0] for r in tshark_rows(args.tshark, args.capture, [
        "-Y", "tcp.analysis.retransmission || tcp.analysis.spurious_retransmission",
        "-e", "frame.number"])}

    acc = [dict(pkts=[0, 0], bytes=[0, 0], flags=[0, 0], retrans=[0, 0], first=None, last=None,
                qname=None, qtype=None, rcode=None, sni=None, host=None, icmp=None)
           for _ in truth]
    errors = []
    orphans = 0
    for r in rows:
        r += [""] * (len(FIELDS) - len(r))
        v = dict(zip(FIELDS, r))
        if v["_ws.malformed"]:
            errors.append(f"frame {v['frame.number']}: malformed according to tshark")
        ts = ns_of_epoch(v["frame.time_epoch"])
        vlan = int(v["vlan.id"]) if v["vlan.id"] else None
        if v["ip.src"]:
            src, dst, iplen = v["ip.src"], v["ip.dst"], int(v["ip.len"])
            proto = int(v["ip.proto"])
        else:
            src, dst, iplen = v["ipv6.src"], v["ipv6.dst"], 40 + int(v["ipv6.plen"])
            proto = int(v["ipv6.nxt"])
        sport = v["tcp.srcport"] or v["udp.srcport"]
        dport = v["tcp.dstport"] or v["udp.dstport"]
        sport = int(sport) if sport else None
        dport = int(dport) if dport else None
        src, dst = norm_ip(src), norm_ip(dst)
        cand, d = by_key.get((vlan, proto, src, sport, dst, dport)), 0
        if cand is None:
            cand, d = by_key.get((vlan, proto, dst, dport, src, sport)), 1
        rec = None
        for i in cand or []:
            if truth[i]["_start"] <= ts // 1000 <= truth[i]["_end"]:
                rec = i
                break
        if rec is None:
            orphans += 1
            if orphans <= 10:
                errors.append(f"frame {v['frame.number']}: belongs to no truth record")
            continue
        a = acc[rec]
        a["pkts"][d] += 1
        a["bytes"][d] += iplen
        if v["tcp.flags"]:
            a["flags"][d] |= int(v["tcp.flags"], 16)
        if v["frame.number"] in retrans:
            a["retrans"][d] += 1
        a["first"] = ts if a["first"] is None else a["first"]
        a["last"] = ts
        if v["dns.qry.name"] and a["qname"] is None:
            a["qname"], a["qtype"] = v["dns.qry.name"], int(v["dns.qry.type"])
        if v["dns.flags.response"] in ("1", "True", "true") and v["dns.flags.rcode"]:
            a["rcode"] = int(v["dns.flags.rcode"])
        if v["tls.handshake.extensions_server_name"] and d == 0:
            a["sni"] = a["sni"] or v["tls.handshake.extensions_server_name"]
        if v["http.host"] and d == 0:
            a["host"] = a["host"] or v["http.host"]
        if d == 0 and (v["icmp.type"] or v["icmpv6.type"]) and a["icmp"] is None:
            a["icmp"] = int(v["icmp.type"] or v["icmpv6.type"])

    def state_of(a):
        f, r = a["flags"]
        syn, fin, rst, ack = 2, 1, 4, 16
        if not f & syn:
            return "OTH"
        if not a["pkts"][1]:
            return "S0"
        if r & rst and not r & syn:
            return "REJ"
        if f & rst:
            return "RSTO"
        if r & rst:
            return "RSTR"
        if f & fin and r & fin:
            return "SF"
        return "S1" if r & syn and r & ack else "OTH"

    for t, a in zip(truth, acc):
        name = f"{t['src_ip']}:{t.get('src_port', '')} > {t['dst_ip']}:{t.get('dst_port', '')} " \
               f"proto {t['proto']} @ {t['start']}"
        def check(field, got):
            if field in t and t[field] != got:
                errors.append(f"{name}: {field} truth {t[field]!r}, tshark {got!r}")
        check("pkts_fwd", a["pkts"][0])
        check("pkts_rev", a["pkts"][1])
        check("bytes_fwd", a["bytes"][0])
        check("bytes_rev", a["bytes"][1])
        if t["proto"] == 6:
            check("tcp_flags_fwd", a["flags"][0])
            check("tcp_flags_rev", a["flags"][1])
            check("retrans_fwd", a["retrans"][0])
            check("retrans_rev", a["retrans"][1])
            check("state", state_of(a))
        check("dns_qname", a["qname"])
        check("dns_qtype", a["qtype"])
        check("dns_rcode", a["rcode"])
        check("tls_sni", a["sni"])
        check("http_host", a["host"])
        check("icmp_type", a["icmp"])
        if a["first"] is None:
            errors.append(f"{name}: no packets found")
            continue
        check("_start", a["first"] // 1000)
        check("_end", a["last"] // 1000)

    if orphans > 10:
        errors.append(f"... {orphans} packets in all belong to no truth record")
    for e in errors[:200]:
        print(e)
    if len(errors) > 200:
        print(f"... and {len(errors) - 200} more")
    print(f"{len(rows)} packets, {len(truth)} truth records, {len(retrans)} retransmissions: "
          f"{'OK' if not errors else f'{len(errors)} problems'}")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
