#!/usr/bin/env python3
"""trailing.py — `vigil top` over the last day from the standing trailing
ranking, end to end.

One vigil-aggregator on loopback (--insecure, status every second) and a
vigil-agent delivering a generated capture (vigil-gen `bench`, 30 minutes of
traffic). Nothing is built until a first `top` over a trailing day asks (it
is merged); then the aggregator's trailing-ranking thread builds the ranking
of the day before the newest closed minute (the status log says which
range); this test then asks `vigil top` for hosts, ports and talker pairs, by bytes and by
packets, over ranges a few minutes off that day, and compares every row with
what it computes itself from the agent's --json records. The status log must
show those answers came from the ranking (answers=), not from a merge. Then a
second agent delivers late traffic (a capture that ended hours before the
newest minute, inside the ranking's day): the ranking keeps it beside itself
(late records), answers stay exact and keep coming from it.

usage: trailing.py --aggregator BIN --cli BIN --agent BIN --gen BIN
Exit status: 0 all passed, 1 a failure, 77 skipped. Standard library only.
"""
import argparse
import collections
import ipaddress
import os
import re
import sys
import tempfile
import time

import vigiltest
from analyst import Rig, addr16, rfc, us_of, wait_stored
from vigiltest import check, fail, run

T0 = 1767225600     # vigil-gen's default start
GRACE = 120         # the store's default close grace, seconds
LATE_START = T0 - 3 * 3600  # inside the ranking's day, long closed


def truth(recs, since, group, by):
    """Rows (key, metric) best first, as the store orders them."""
    per = collections.Counter()
    for r in recs:
        if us_of(r["end"]) // 1_000_000 < since:
            continue
        m = r["bytes_fwd"] + r["bytes_rev"] if by == "bytes" else r["pkts_fwd"] + r["pkts_rev"]
        a, b = r["src_ip"], r["dst_ip"]
        if group == "host":
            per[(a,)] += m
            if a != b:
                per[(b,)] += m
        elif group == "port":
            proto = r["proto"]
            port = r.get("dst_port", 0) if proto in (6, 17) else 0
            per[(proto, port)] += m
        else:
            per[tuple(sorted((a, b), key=addr16))] += m

    def order(kv):
        k = kv[0]
        if group == "port":
            return (-kv[1], bytes([k[0]]) + k[1].to_bytes(2, "big"))
        return (-kv[1], b"".join(addr16(x) for x in k))
    return [(k, v) for k, v in sorted(per.items(), key=order)]


def got_rows(rows, group, by):
    out = []
    for g in rows:
        if group == "host":
            k = (g["host"],)
        elif group == "port":
            k = (g["proto"], g["port"])
        else:
            k = (g["host_a"], g["host_b"])
        out.append((k, g[by]))
    return out


def norm(rows):
    """Addresses in the CLI's text form."""
    return [(tuple(str(ipaddress.ip_address(x)) if isinstance(x, str) else x for x in k), v)
            for k, v in rows]


def status(rig):
    """The last trailing-ranking status line's figures, or None."""
    last = None
    for m in re.finditer(r"trailing ranking: (\w*) ?\[(\d+), (\d+)\) s, built in [\d.]+ ms, "
                         r"(\d+) late records; builds=(\d+) dropped=(\d+) answers=(\d+) "
                         r"merged=(\d+)", rig.log()):
        last = {"state": m.group(1), "since": int(m.group(2)), "until": int(m.group(3)),
                "late": int(m.group(4)), "builds": int(m.group(5)),
                "answers": int(m.group(7)), "merged": int(m.group(8))}
    return last


def wait_status(rig, cond, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        st = status(rig)
        if st and cond(st):
            return st
        time.sleep(0.2)
    return status(rig)


def check_tops(rig, recs, since, what):
    n = 0
    for group in ("host", "port", "pair"):
        for by in ("bytes", "packets"):
            want = norm(truth(recs, since, group, by))[:10]
            got = got_rows(rig.cli_json("top", "--group", group, "--by", by, "--since",
                                        rfc(since), "--limit", "10"), group, by)
            check(got == want, f"{what}: top --group {group} --by {by}: the agents' figures",
                  f"want {want}\ngot  {got}")
            n += 1
    return n


def main():
    ap = argparse.ArgumentParser()
    for opt in ("aggregator", "cli", "agent", "gen"):
        ap.add_argument(f"--{opt}", required=True)
    args = ap.parse_args()
    if vigiltest.skip_unbuilt(args, ("aggregator", "cli", "agent", "gen")):
        return 77
    t_start = time.time()
    work = tempfile.mkdtemp(prefix="vigil-trailing.")
    rig = Rig(args, work)
    try:
        cap = os.path.join(work, "bench.pcap")
        late = os.path.join(work, "late.pcap")
        r = run([args.gen, "--profile", "bench", "--seed", "5", "--flows", "3000",
                 "--duration", "1800", "--out", cap], timeout=120)
        r2 = run([args.gen, "--profile", "unit", "--seed", "2", "--start", str(LATE_START),
                  "--out", late])
        if r.returncode or r2.returncode:
            raise RuntimeError(r.stderr + r2.stderr)
        rig.start(["--status-interval", "1s"])
        recs = rig.deliver("bench", cap)
        check(wait_stored(rig, {"bench": len(recs)}), "every record is stored")
        newest = max(us_of(x["end"]) for x in recs) // 1_000_000
        until = (newest - GRACE) // 60 * 60
        check(wait_status(rig, lambda s: True, timeout=3) is None,
              "no ranking is built before anyone asks for top over a trailing day")
        check_tops(rig, recs, until - 86400 + 300, "the first ask (merged)")
        st = wait_status(rig, lambda s: s["builds"] >= 1 and s["until"] == until)
        check(st is not None and st["until"] == until and st["since"] == until - 86400,
              f"the ranking covers the day before the newest closed minute "
              f"[{until - 86400}, {until})", st)

        asked = check_tops(rig, recs, until - 86400 + 300, "5 minutes into its day")
        asked += check_tops(rig, recs, until - 86400 - 600, "10 minutes before its day")
        st = wait_status(rig, lambda s: s["answers"] >= asked)
        check(st and st["answers"] >= asked and st["merged"] == 0,
              f"the {asked} answers came from the ranking, none merged", st)

        lrecs = rig.deliver("late", late)
        check(wait_stored(rig, {"bench": len(recs), "late": len(lrecs)}),
              "the late records are stored")
        st = wait_status(rig, lambda s: s["late"] > 0)
        check(st and st["late"] > 0 and st["state"] == "",
              "the ranking carries the late records and stays standing", st)
        before = st["answers"] if st else 0
        asked = check_tops(rig, recs + lrecs, until - 86400 + 60, "with late records")
        st = wait_status(rig, lambda s: s["answers"] >= before + asked)
        check(st and st["answers"] >= before + asked,
              "answers with late records came from the ranking", st)
    except Exception as e:
        fail("trailing test aborted", repr(e))
    finally:
        rig.stop()
        if vigiltest.failed and os.path.exists(rig.log_path):
            print("---- aggregator log (last 30 lines) ----")
            for line in rig.log().splitlines()[-30:]:
                print(line)
    return vigiltest.tally(t_start)


if __name__ == "__main__":
    sys.exit(main())
