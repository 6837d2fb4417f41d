#!/usr/bin/env python3
"""exactness.py — does vigil-agent count every packet and byte where it should?

For each capture, runs `vigil-agent -r FILE --json -` and tshark over the same
file, builds per-conversation totals from both, and compares them exactly:
packets and IP-layer bytes in each direction of each conversation. A
conversation is the protocol, the unordered pair of addresses and, for
protocols with ports (TCP, UDP, SCTP), the ports that go with each address.
Records of one flow (partial records, several VLANs, several records after
timeouts) are summed, so the comparison does not depend on how vigil splits
flows, only on where it puts each packet.

With --truth, the agent is also compared with the truth file written by
vigil-gen for a generated capture: the same totals, the number of flows per
conversation (a flow the generator splits with an idle gap must end as two
final records) and the fields the truth states (TRUTH_TEXT_FIELDS: state, app,
dns_qname, dns_qtype, dns_rcode, tls_sni, http_host).

The tshark side encodes vigil's counting policy (see COUNTING_POLICY):
tshark dissects, this script decides which IP header a packet belongs to.
Where vigil and tshark disagree on purpose, the reason is written in
EXPECTED_DIFFERENCES; everything else is a failure.

Non-goals: timestamps, flags, RTT and metadata against tshark (the unit
tests and the truth comparison cover those).

Exit status: 0 all compared captures match, 1 a mismatch or a failing agent,
2 usage error, 77 nothing could be compared (no capture found, or tshark
missing without a truth file) — ctest's SKIP_RETURN_CODE.

Standard library only.
"""

import argparse
import collections
import ipaddress
import json
import os
import shutil
import subprocess
import sys

SKIP = 77

# The policy this comparison encodes, in the words of the checks below. Each
# entry is printed by --policy so a reader can see what "exact" means here.
COUNTING_POLICY = [
    ("innermost-ip",
     "A packet belongs to the flow of its innermost IP header, tunnels decapsulated "
     "(GRE incl. ERSPAN and Cisco metadata, VXLAN, Geneve, MPLS incl. MPLS over UDP, "
     "IP-in-IP, IPv6 routing-header tunnels, PPPoE, 802.1Q/802.1ad, LLC/SNAP)."),
    ("icmp-error-outer",
     "An IP header quoted inside an ICMP/ICMPv6 message is payload: the packet is an "
     "ICMP flow between the addresses of the header that carries the ICMP message."),
    ("ip-bytes",
     "Bytes are the chosen IP header's length: IPv4 total length (tshark substitutes "
     "the captured length when it is 0, as vigil does for BIG TCP/TSO), IPv6 40 + "
     "payload length, or 40 + the jumbo payload length for a jumbogram."),
    ("no-ip-no-flow",
     "Frames without an IP header (ARP, STP, LLDP, CDP, loopback...) make no flow."),
    ("fragments",
     "A non-first fragment carries no ports and counts in the flow of its first "
     "fragment, matched on (source, destination, protocol, IP id); without a first "
     "fragment it makes a flow without ports."),
    ("ipv6-ext",
     "IPv6 extension headers (hop-by-hop, routing, fragment, destination options, "
     "AH) are skipped; the protocol is the header after them."),
    ("malformed",
     "A packet vigil's decoder rejects as malformed is counted in decode_errors and "
     "makes no flow (agent/decode.h). tshark often still shows such a packet; each "
     "case is listed by file and frame in EXPECTED_DIFFERENCES."),
    ("vlan-summed",
     "VLAN IDs are part of vigil's flow key but not of a conversation here: records "
     "are summed over VLANs."),
]

# Differences between vigil and tshark that are right, per file. Each entry
# names the file, says why, and states what it changes:
#   ignore_ports      compare this file per address pair and protocol only;
#   malformed_frames  frames vigil's decoder rejects as malformed by design
#                     (agent/decode.h: counted under a reason, dropped); they
#                     are left out of tshark's totals, and the agent's summary
#                     must count at least that many decode_errors.
# A rule that holds for every capture belongs in COUNTING_POLICY, not here.
EXPECTED_DIFFERENCES = [
    {
        "file": "ipv6-mobility-dst-opts.pcap",
        "reason": "Frame 1's Destination Options header (24 bytes by its length field) "
                  "holds an option (type 0xca) claiming 144 bytes: tshark stops inside "
                  "it and shows no UDP ports, vigil walks the chain by header lengths "
                  "(RFC 8200 §4) and reads the UDP ports; so ports are not compared. "
                  "Frame 2's Destination Options header claims 40 bytes of a 36-byte "
                  "payload: tshark still counts the packet, vigil drops it as a "
                  "malformed extension chain (decode_errors=1).",
        "ignore_ports": True,
        "malformed_frames": [2],
    },
]

PROTO_NAMES = {1: "icmp", 2: "igmp", 4: "ipip", 6: "tcp", 17: "udp", 41: "ipv6",
               47: "gre", 50: "esp", 51: "ah", 58: "icmpv6", 59: "nonxt",
               89: "ospf", 103: "pim", 112: "vrrp", 132: "sctp", 135: "mobility"}
PORT_PROTOS = {"tcp": 6, "udp": 17, "sctp": 132}

# tshark protocol tokens that may sit between an outer IP header and the
# inner one of a tunnel vigil decapsulates.
DECAP_TOKENS = {"eth", "ethertype", "vlan", "ieee8021ad", "llc", "mpls", "pppoes", "ppp",
                "gre", "erspan", "cmd", "vxlan", "geneve", "udp",
                "ipv6.hopopts", "ipv6.routing", "ipv6.dstopts"}
# A UDP header between two IP headers is a tunnel only with one of these after it.
UDP_TUNNEL_TOKENS = {"vxlan", "geneve", "mpls"}
# IPv6 extension headers (and AH, skipped the same way), with the tshark
# field that holds each one's next-header value.
EXT_NEXT_FIELD = {"ipv6.hopopts": "ipv6.hopopts.nxt", "ipv6.routing": "ipv6.routing.nxt",
                  "ipv6.fraghdr": "ipv6.fraghdr.nxt", "ipv6.dstopts": "ipv6.dstopts.nxt",
                  "ah": "ah.next_header"}

TSHARK_FIELDS = [
    "frame.number", "frame.protocols",
    "ip.src", "ip.dst", "ip.proto", "ip.len", "ip.id", "ip.flags.mf", "ip.frag_offset",
    "ipv6.src", "ipv6.dst", "ipv6.nxt", "ipv6.plen", "ipv6.opt.jumbo",
    "ipv6.hopopts.nxt", "ipv6.routing.nxt", "ipv6.fraghdr.nxt", "ipv6.dstopts.nxt",
    "ah.next_header",
    "ipv6.fraghdr.offset", "ipv6.fraghdr.more", "ipv6.fraghdr.ident",
    "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport",
    "sctp.srcport", "sctp.dstport",
]

PCAP_MAGICS = {b"\xa1\xb2\xc3\xd4", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\x3c\x4d",
               b"\x4d\x3c\xb2\xa1", b"\x0a\x0d\x0d\x0a"}


class Failure(Exception):
    """A capture that could not be compared at all (tool failed)."""


# --------------------------------------------------------------------------
# Conversations


def norm_ip(text):
    return ipaddress.ip_address(text.strip())


def endpoint(ip_text, port):
    """(address, port or None): one side of a conversation."""
    return (norm_ip(ip_text), port)


def ep_sort_key(ep):
    ip, port = ep
    return (ip.version, ip.packed, -1 if port is None else port)


def conv_key(proto, a, b):
    """Canonical conversation key: proto plus the two endpoints in a fixed order."""
    x, y = sorted((a, b), key=ep_sort_key)
    return (proto, x, y)


def fmt_ep(ep):
    ip, port = ep
    if port is None:
        return str(ip)
    return ("[%s]:%d" if ip.version == 6 else "%s:%d") % (ip, port)


def fmt_conv(key):
    proto, a, b = key
    return "%s %s <-> %s" % (PROTO_NAMES.get(proto, "proto%d" % proto), fmt_ep(a), fmt_ep(b))


class Totals:
    """Packets and bytes of each conversation, per sending endpoint."""

    def __init__(self):
        # key -> {sender endpoint: [packets, bytes]}
        self.conv = collections.defaultdict(lambda: collections.defaultdict(lambda: [0, 0]))

    def add(self, proto, src, dst, pkts, nbytes):
        key = conv_key(proto, src, dst)
        cell = self.conv[key][src]
        cell[0] += pkts
        cell[1] += nbytes
        if dst not in self.conv[key]:
            self.conv[key][dst] = [0, 0]

    def packets(self):
        return sum(c[0] for sides in self.conv.values() for c in sides.values())

    def bytes(self):
        return sum(c[1] for sides in self.conv.values() for c in sides.values())


# --------------------------------------------------------------------------
# The agent side


def run_agent(agent, path, extra_args=()):
    """Runs the agent on one file. Returns (records, summary dict, stderr text)."""
    cmd = [agent, "-r", path, "--json", "-"] + list(extra_args)
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=300)
    except subprocess.TimeoutExpired:
        raise Failure("agent timed out after 300 s: %s" % " ".join(cmd))
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise Failure("agent exited with %d: %s\n%s" % (proc.returncode, " ".join(cmd),
                                                         indent(err)))
    records = []
    for n, line in enumerate(proc.stdout.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as e:
            raise Failure("agent wrote a line that is not JSON (line %d: %s): %r"
                          % (n, e, line[:200]))
        if not isinstance(rec, dict):
            raise Failure("agent wrote a JSON value that is not an object (line %d)" % n)
        records.append(rec)
    summary = {}
    for line in err.splitlines():
        if line.startswith("vigil-agent: summary:"):
            for word in line.split(":", 2)[2].split():
                if "=" in word:
                    k, v = word.split("=", 1)
                    summary[k] = v
    if not summary:
        raise Failure("agent printed no 'vigil-agent: summary:' line on stderr:\n%s"
                      % indent(err))
    return records, summary, err


def rec_endpoints(rec):
    proto = int(rec["proto"])
    has_ports = "src_port" in rec or "dst_port" in rec
    sport = int(rec["src_port"]) if has_ports else None
    dport = int(rec["dst_port"]) if has_ports else None
    return proto, endpoint(rec["src_ip"], sport), endpoint(rec["dst_ip"], dport)


def agent_totals(records):
    t = Totals()
    for rec in records:
        proto, src, dst = rec_endpoints(rec)
        t.add(proto, src, dst, int(rec.get("pkts_fwd", 0)), int(rec.get("bytes_fwd", 0)))
        t.add(proto, dst, src, int(rec.get("pkts_rev", 0)), int(rec.get("bytes_rev", 0)))
    return t


# --------------------------------------------------------------------------
# The tshark side


def run_tshark(tshark, path):
    cmd = [tshark, "-n", "-r", path,
           "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
           "-o", "tcp.desegment_tcp_streams:FALSE",
           "-T", "fields", "-E", "header=n", "-E", "separator=/t",
           "-E", "occurrence=a", "-E", "aggregator=|"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=300)
    except subprocess.TimeoutExpired:
        raise Failure("tshark timed out on %s" % path)
    if proc.returncode != 0:
        raise Failure("tshark exited with %d on %s:\n%s"
                      % (proc.returncode, path,
                         indent(proc.stderr.decode("utf-8", "replace"))))
    rows = []
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        cols = line.split("\t")
        cols += [""] * (len(TSHARK_FIELDS) - len(cols))
        rows.append({f: (c.split("|") if c else []) for f, c in zip(TSHARK_FIELDS, cols)})
    return rows


def nth(row, field, i, conv=int):
    vals = row[field]
    if i < 0 or i >= len(vals) or vals[i] == "":
        return None
    v = vals[i]
    if conv is int:
        return int(v, 0)
    if conv is bool:
        return v.lower() in ("1", "true")
    return conv(v)


def choose_ip_layer(tokens):
    """Index in tokens of the IP header that keys the packet, or None.

    Stops at the first ICMP/ICMPv6 token (what follows is a quoted packet)
    and at any carrier between two IP headers that vigil does not decapsulate.
    """
    chosen = None
    for i, t in enumerate(tokens):
        if t in ("icmp", "icmpv6"):
            break
        if t not in ("ip", "ipv6"):
            continue
        if chosen is not None:
            between = tokens[chosen + 1:i]
            if not set(between) <= DECAP_TOKENS:
                break
            if "udp" in between and not (set(between) & UDP_TUNNEL_TOKENS):
                break
        chosen = i
    return chosen


def dissect_frame(row):
    """The flow-relevant facts of one frame as vigil's policy sees them, or None.

    Returns a dict: family, src, dst, proto, bytes, sport/dport (None when no
    ports), frag ('none', 'first', 'later') and frag_id.
    """
    tokens = row["frame.protocols"][0].split(":") if row["frame.protocols"] else []
    ci = choose_ip_layer(tokens)
    if ci is None:
        return None
    fam = tokens[ci]
    k = tokens[:ci].count(fam)  # occurrence of this IP header among its family
    out = {"family": fam}
    pre = "ip." if fam == "ip" else "ipv6."
    src, dst = nth(row, pre + "src", k, str), nth(row, pre + "dst", k, str)
    if src is None or dst is None:
        return None
    out["src"], out["dst"] = norm_ip(src), norm_ip(dst)

    # Walk the extension headers right after the IP header.
    j = ci + 1
    last_ext = None
    frag_hdr = None
    while j < len(tokens) and tokens[j] in EXT_NEXT_FIELD:
        occ = tokens[:j].count(tokens[j])
        last_ext = (tokens[j], occ)
        if tokens[j] == "ipv6.fraghdr" and frag_hdr is None:
            frag_hdr = occ
        j += 1
    if last_ext is not None:
        proto = nth(row, EXT_NEXT_FIELD[last_ext[0]], last_ext[1])
    else:
        proto = nth(row, "ip.proto" if fam == "ip" else "ipv6.nxt", k)
    if proto is None:
        return None
    out["proto"] = proto

    if fam == "ip":
        # tshark >= 3 reports the captured length itself when the field is 0 (TSO).
        nbytes = nth(row, "ip.len", k)
        if not nbytes:
            raise Failure("frame %s: tshark gives no IPv4 total length"
                          % row["frame.number"][0])
        mf = nth(row, "ip.flags.mf", k, bool)
        off = nth(row, "ip.frag_offset", k) or 0
        out["frag_id"] = nth(row, "ip.id", k)
    else:
        plen = nth(row, "ipv6.plen", k) or 0
        nbytes = 40 + plen
        if plen == 0 and len(row["ipv6.opt.jumbo"]) == 1:
            nbytes = 40 + int(row["ipv6.opt.jumbo"][0], 0)
        mf, off = False, 0
        if frag_hdr is not None:
            mf = nth(row, "ipv6.fraghdr.more", frag_hdr, bool)
            off = nth(row, "ipv6.fraghdr.offset", frag_hdr) or 0
            out["frag_id"] = nth(row, "ipv6.fraghdr.ident", frag_hdr)
    out["bytes"] = nbytes
    out["frag"] = "later" if off else ("first" if mf else "none")

    out["sport"] = out["dport"] = None
    if j < len(tokens) and tokens[j] in PORT_PROTOS and out["frag"] != "later":
        t = tokens[j]
        occ = tokens[:j].count(t)
        sp, dp = nth(row, t + ".srcport", occ), nth(row, t + ".dstport", occ)
        if sp is not None and dp is not None:
            out["sport"], out["dport"] = sp, dp
    return out


def tshark_totals(rows, skip_frames=()):
    """Builds Totals from tshark rows, leaving out the frame numbers in
    skip_frames. Returns (totals, notes)."""
    t = Totals()
    notes = []
    first_frag = {}  # (src, dst, proto, id) -> (sport, dport)
    later = []
    for row in rows:
        frame = int(row["frame.number"][0])
        if frame in skip_frames:
            continue
        d = dissect_frame(row)
        if d is None:
            continue
        fkey = (d["src"], d["dst"], d["proto"], d.get("frag_id"))
        if d["frag"] == "first":
            first_frag.setdefault(fkey, (d["sport"], d["dport"]))
        if d["frag"] == "later":
            later.append((frame, d, fkey))
            continue
        add_frame(t, d, d["sport"], d["dport"])
    for frame, d, fkey in later:
        ports = first_frag.get(fkey)
        if ports is None:
            notes.append("frame %d: fragment without a first fragment: no ports" % frame)
            ports = (None, None)
        add_frame(t, d, ports[0], ports[1])
    return t, notes


def add_frame(t, d, sport, dport):
    src, dst = (d["src"], sport), (d["dst"], dport)
    if (sport is None) != (dport is None):
        src, dst = (d["src"], None), (d["dst"], None)
    t.add(d["proto"], src, dst, 1, d["bytes"])


# --------------------------------------------------------------------------
# Comparison


def compare_totals(expect, got, expect_name, got_name):
    """Returns a list of text lines describing every difference (empty if none)."""
    lines = []
    for key in sorted(set(expect.conv) | set(got.conv), key=conv_sort_key):
        e, g = expect.conv.get(key), got.conv.get(key)
        if e is None:
            lines.append("  only in %s: %s  %s" % (got_name, fmt_conv(key), fmt_sides(g)))
            continue
        if g is None:
            lines.append("  only in %s: %s  %s" % (expect_name, fmt_conv(key), fmt_sides(e)))
            continue
        bad = []
        for ep in sorted(set(e) | set(g), key=ep_sort_key):
            ev, gv = e.get(ep, [0, 0]), g.get(ep, [0, 0])
            if ev != gv:
                bad.append("      from %-40s %s %d pkts %d B, %s %d pkts %d B"
                           % (fmt_ep(ep), expect_name, ev[0], ev[1], got_name, gv[0], gv[1]))
        if bad:
            lines.append("  differs: %s" % fmt_conv(key))
            lines.extend(bad)
    return lines


def conv_sort_key(key):
    proto, a, b = key
    return (proto, ep_sort_key(a), ep_sort_key(b))


def fmt_sides(sides):
    return "; ".join("from %s %d pkts %d B" % (fmt_ep(ep), v[0], v[1])
                     for ep, v in sorted(sides.items(), key=lambda kv: ep_sort_key(kv[0])))


def expected_for(path):
    base = os.path.basename(path)
    return [x for x in EXPECTED_DIFFERENCES if x["file"] == base]


def without_ports(t):
    """The same totals with ports dropped (conversations per address pair)."""
    out = Totals()
    for (proto, a, b), sides in t.conv.items():
        for ep, (p, n) in sides.items():
            other = b if ep == a else a
            out.add(proto, (ep[0], None), (other[0], None), p, n)
    return out


def compare_tshark(args, path, summary, agent_t):
    rows = run_tshark(args.tshark, path)
    expected = expected_for(path)
    malformed = set()
    for x in expected:
        malformed.update(x.get("malformed_frames", ()))
    ts_t, notes = tshark_totals(rows, malformed)
    if args.verbose:
        for n in notes:
            print("    note: " + n)
    if any(x.get("ignore_ports") for x in expected):
        ts_t, agent_t = without_ports(ts_t), without_ports(agent_t)
    lines = []
    if malformed and int(summary.get("decode_errors", 0)) < len(malformed):
        lines.append("  frames %s are listed as rejected by vigil, but its summary has "
                     "decode_errors=%s" % (sorted(malformed), summary.get("decode_errors")))
    if "packets" in summary and int(summary["packets"]) != len(rows):
        lines.append("  summary packets=%s but the file holds %d frames"
                     % (summary["packets"], len(rows)))
    lines += compare_totals(ts_t, agent_t, "tshark", "vigil")
    return ts_t, lines


# --------------------------------------------------------------------------
# Truth file from vigil-gen

# Fields compared with the truth besides the counters, when the truth states them.
TRUTH_TEXT_FIELDS = ("state", "app", "dns_qname", "dns_qtype", "dns_rcode", "tls_sni",
                     "http_host")


def load_truth(path):
    flows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise Failure("truth %s line %d is not JSON: %s" % (path, n, e))
            if "proto" not in obj or "src_ip" not in obj or "dst_ip" not in obj:
                continue  # a header or comment object, not a flow
            flows.append(obj)
    return flows


def truth_totals(flows):
    t = Totals()
    for fl in flows:
        proto, src, dst = rec_endpoints(fl)
        if "pkts_fwd" in fl or "pkts_rev" in fl:
            t.add(proto, src, dst, int(fl.get("pkts_fwd", 0)), int(fl.get("bytes_fwd", 0)))
            t.add(proto, dst, src, int(fl.get("pkts_rev", 0)), int(fl.get("bytes_rev", 0)))
        else:
            t.add(proto, src, dst, int(fl.get("pkts", 0)), int(fl.get("bytes", 0)))
    return t


def compare_truth_fields(flows, records):
    """The text fields the truth states must be among the agent's values for
    the same conversation (a conversation may hold several flows)."""
    by_conv = collections.defaultdict(lambda: collections.defaultdict(set))
    for rec in records:
        proto, src, dst = rec_endpoints(rec)
        key = conv_key(proto, src, dst)
        for f in TRUTH_TEXT_FIELDS:
            if f == "state" and not rec.get("final", True):
                continue  # partial records carry the state so far
            if rec.get(f) not in (None, ""):
                by_conv[key][f].add(str(rec[f]))
    lines = []
    # A flow the generator split on purpose (an idle gap) is two flows in the
    # truth and must be two final records; partial records do not count.
    finals = collections.Counter()
    for rec in records:
        if rec.get("final", True):
            finals[conv_key(*rec_endpoints(rec))] += 1
    flows_per_conv = collections.Counter(conv_key(*rec_endpoints(fl)) for fl in flows)
    for key, n in sorted(flows_per_conv.items(), key=lambda kv: conv_sort_key(kv[0])):
        if finals[key] != n:
            lines.append("  %s: %d flows in the truth, %d final records from vigil"
                         % (fmt_conv(key), n, finals[key]))
    for fl in flows:
        proto, src, dst = rec_endpoints(fl)
        key = conv_key(proto, src, dst)
        for f in TRUTH_TEXT_FIELDS:
            want = fl.get(f)
            if want in (None, ""):
                continue
            have = by_conv[key][f]
            if str(want) not in have:
                lines.append("  %s: %s is %r in the truth, vigil has %s"
                             % (fmt_conv(key), f, want,
                                ", ".join(sorted(map(repr, have))) or "nothing"))
    return lines


# --------------------------------------------------------------------------
# Driver


def indent(text, pad="    "):
    return "\n".join(pad + l for l in text.rstrip().splitlines())


def is_capture(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) in PCAP_MAGICS
    except OSError:
        return False


def find_captures(paths):
    found = []
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for name in sorted(files):
                    full = os.path.join(root, name)
                    if is_capture(full):
                        found.append(full)
        elif os.path.isfile(p):
            found.append(p)
    return found


def check_file(args, path):
    """Compares one capture. Returns (ok, report lines)."""
    records, summary, err = run_agent(args.agent, path, args.agent_arg)
    agent_t = agent_totals(records)
    report = []
    ok = True
    expected = expected_for(path)

    if args.truth:
        flows = load_truth(args.truth)
        diff = compare_totals(truth_totals(flows), agent_t, "truth", "vigil")
        diff += compare_truth_fields(flows, records)
        if diff:
            ok = False
            report.append("  against the truth file %s:" % args.truth)
            report += diff

    if args.tshark_path:
        ts_t, diff = compare_tshark(args, path, summary, agent_t)
        for x in expected:
            report.append("  expected difference: " + x["reason"])
        if diff:
            ok = False
            report.append("  against tshark:")
            report += diff
        head = "%d conversations, %d packets, %d bytes" % (
            len(ts_t.conv), ts_t.packets(), ts_t.bytes())
    else:
        head = "%d conversations, %d packets, %d bytes (vigil; tshark not run)" % (
            len(agent_t.conv), agent_t.packets(), agent_t.bytes())
    if args.verbose:
        for key in sorted(agent_t.conv, key=conv_sort_key):
            report.append("    %s  %s" % (fmt_conv(key), fmt_sides(agent_t.conv[key])))
        report.append("    " + next((l for l in err.splitlines()
                                      if l.startswith("vigil-agent: summary:")), ""))
    return ok, head, report


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Compare vigil-agent's per-conversation packet and byte totals "
                    "with tshark's (and with a vigil-gen truth file).")
    ap.add_argument("paths", nargs="*", help="capture files or folders (searched recursively)")
    ap.add_argument("--agent", default="vigil-agent", help="path to vigil-agent")
    ap.add_argument("--tshark", default="tshark", help="path to tshark")
    ap.add_argument("--no-tshark", action="store_true",
                    help="compare with the truth file only")
    ap.add_argument("--truth", help="vigil-gen truth file (JSON lines) for the one capture given")
    ap.add_argument("--agent-arg", action="append", default=[],
                    help="extra argument for the agent (repeatable)")
    ap.add_argument("--policy", action="store_true", help="print the counting policy and exit")
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args(argv)

    if args.policy:
        for name, text in COUNTING_POLICY:
            print("%s: %s" % (name, text))
        for x in EXPECTED_DIFFERENCES:
            print("expected difference in %s: %s" % (x["file"], x["reason"]))
        return 0
    if not args.paths:
        ap.error("give at least one capture or folder")

    missing = [p for p in args.paths if not os.path.exists(p)]
    if missing:
        print("SKIP: not found: %s" % ", ".join(missing))
        return SKIP
    captures = find_captures(args.paths)
    if not captures:
        print("SKIP: no pcap/pcapng file under %s" % ", ".join(args.paths))
        return SKIP
    if args.truth and len(captures) != 1:
        ap.error("--truth needs exactly one capture")

    args.tshark_path = None
    if not args.no_tshark:
        args.tshark_path = shutil.which(args.tshark)
        if args.tshark_path is None:
            if not args.truth:
                print("SKIP: tshark not found (%s); install the tshark package" % args.tshark)
                return SKIP
            print("note: tshark not found: comparing with the truth file only")
        else:
            args.tshark = args.tshark_path
    if os.path.sep in args.agent and not os.access(args.agent, os.X_OK):
        print("error: agent %s is not an executable file" % args.agent, file=sys.stderr)
        return 2

    passed = failed = 0
    for path in captures:
        try:
            ok, head, report = check_file(args, path)
        except Failure as e:
            ok, head, report = False, "could not compare", [indent(str(e))]
        name = os.path.relpath(path, os.path.dirname(os.path.dirname(path))) \
            if os.path.dirname(path) else path
        print("%s %s: %s" % ("PASS" if ok else "FAIL", name, head))
        for line in report:
            print(line)
        sys.stdout.flush()
        if ok:
            passed += 1
        else:
            failed += 1
    print("exactness: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
