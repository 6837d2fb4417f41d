#!/usr/bin/env python3
"""analyst.py — the analyst's answers end to end, every figure recomputed here.

One vigil-aggregator on loopback (--insecure), two vigil-agents delivering
generated captures (vigil-gen `bench` and `unit`), and a third capture written
by this test: ten days of one UDP packet per minute whose size grows linearly
day after day (a known linear growth for the forecast). The agents' own
--json records are the truth; from them this test computes, independently of
the aggregator, and compares with what the vigil CLI prints (--format json):

  top --share 80     the smallest set of applications (and of hosts) making 80 %
                     of the bytes, each share and the running total;
  bandwidth          per 5-minute and per hour step and over the range, fleet-wide,
                     for one host and for one application: bytes in/out, average
                     rate, nearest-rank p50/p95/p99/max of the per-minute rates;
  latency            per step: TCP flows, handshakes, RTT p50/p95/p99/max/mean,
                     retransmissions over packets; per destination, the ranking;
  forecast           on the linear growth: daily p95, the least-squares slope,
                     the fitted value at the end of the range, the crossing date;
                     and the refusal when fewer than two days hold traffic.
Also times each query (a figure for the README, not a pass/fail bound).

usage: analyst.py --aggregator BIN --cli BIN --agent BIN --gen BIN [--keep]
Exit status: 0 all passed, 1 a failure, 77 skipped. Standard library only.
"""
import argparse
import collections
import datetime
import ipaddress
import json
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time

import vigiltest
from vigiltest import check, fail, ok, run

T0 = 1767225600          # 2026-01-01T00:00:00Z: vigil-gen's default start
GROWTH_DAY0 = 1769904000  # 2026-02-01T00:00:00Z: the linear growth's first day
GROWTH_DAYS = 10


def us_of(text):
    """RFC 3339 UTC with microseconds -> integer microseconds since the epoch."""
    d = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)
    return (d - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)) // \
        datetime.timedelta(microseconds=1)


def rfc(sec):
    return datetime.datetime.fromtimestamp(sec, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def addr16(text):
    a = ipaddress.ip_address(text)
    return (b"\0" * 10 + b"\xff\xff" + a.packed) if a.version == 4 else a.packed


def pct(sorted_vals, p):
    """Nearest rank: the value at rank ceil(p * n / 100), 1-based."""
    n = len(sorted_vals)
    if n == 0:
        return 0
    rank = max(1, -(-p * n // 100))
    return sorted_vals[rank - 1]


def close(a, b, tol=1e-3):
    return abs(float(a) - float(b)) <= tol + 1e-9 * abs(float(b))


# ---- the known linear growth ------------------------------------------------------

def growth_bytes(day, minute):
    """IP bytes of the packet sent in that minute: a base that grows by 400 bytes
    a day, times a fixed daily shape (a busy evening), so every day's
    percentiles scale with the base."""
    base = 1000 + 400 * day
    shape = 1 + (minute % 97) / 96 + (2 if 1080 <= minute < 1200 else 0)
    return min(65000, int(base * shape))


def write_growth_pcap(path):
    """Ethernet/IPv4/UDP frames cut to their headers (caplen 42, the wire length
    says how big each packet was), one per minute, each from a new source port
    so each is its own flow."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for day in range(GROWTH_DAYS):
            for minute in range(1440):
                size = growth_bytes(day, minute)
                t = GROWTH_DAY0 + day * 86400 + minute * 60 + 30
                sport = 1024 + (day * 1440 + minute) % 60000
                eth = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00"
                ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, size, 0, 0, 64, 17, 0,
                                 bytes([10, 9, 0, 1]), bytes([10, 9, 0, 2]))
                s = sum(struct.unpack("!10H", ip))
                while s >> 16:
                    s = (s & 0xFFFF) + (s >> 16)
                ip = ip[:10] + struct.pack("!H", ~s & 0xFFFF) + ip[12:]
                udp = struct.pack("!HHHH", sport, 9999, size - 20, 0)
                frame = eth + ip + udp
                f.write(struct.pack("<IIII", t, 0, len(frame), 14 + size))
                f.write(frame)


# ---- the test ------------------------------------------------------------------------

class Rig:
    def __init__(self, a, work):
        self.a = a
        self.work = work
        self.log_path = os.path.join(work, "aggregator.log")
        self.proc = None
        self.endpoint = None
        self.timings = {}

    def start(self, extra=()):
        cmd = [self.a.aggregator, "--insecure", "--listen", "tcp://127.0.0.1:*",
               "--db", os.path.join(self.work, "db"),
               "--flow-retention", "36500d", "--minute-retention", "36500d",
               "--hour-retention", "36500d", "--day-retention", "36500d", *extra]
        self.proc, m = vigiltest.start_logged(cmd, self.log_path,
                                              r"listening on (tcp://[0-9.:]+)")
        self.endpoint = m.group(1)

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def deliver(self, name, pcap):
        stem = re.sub(r"[^A-Za-z0-9_-]", "_", name)  # a name may hold anything
        js = os.path.join(self.work, f"{stem}.jsonl")
        cmd = [self.a.agent, "-r", pcap, "--aggregator", self.endpoint, "--insecure",
               "--spool", os.path.join(self.work, f"spool-{stem}"), "--agent-name", name,
               "--json", js]
        if "--no-capture" in run([self.a.agent, "--help"]).stdout:
            cmd.append("--no-capture")  # no forensic capture directory needed here
        r = run(cmd, timeout=120)
        if r.returncode != 0 or "records_lost=0" not in r.stderr:
            raise RuntimeError(f"agent {name}: {r.stderr}")
        with open(js) as f:
            return [json.loads(line) for line in f if line.strip()]

    def cli(self, *args):
        t = time.time()
        r = run([self.a.cli, *args, "--connect", self.endpoint, "--insecure", "--format",
                 "json"], timeout=60)
        self.timings[args[0] + " " + " ".join(a for a in args[1:] if a.startswith("--g")
                                               or a.startswith("--h"))] = time.time() - t
        return r

    def cli_json(self, *args):
        r = self.cli(*args)
        if r.returncode != 0:
            raise RuntimeError(f"vigil {' '.join(args)}: {r.stderr}")
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def wait_stored(rig, expected):
    """Until `vigil agents` shows every record stored (delivery is acked, but be sure)."""
    for _ in range(100):
        got = {a["agent"]: a.get("records", 0) for a in rig.cli_json("agents")}
        if all(got.get(n) == c for n, c in expected.items()):
            return True
        time.sleep(0.1)
    return False


def check_share(rig, recs):
    # applications: each record once
    by_app = collections.Counter()
    for r in recs:
        by_app[r.get("app", "")] += r["bytes_fwd"] + r["bytes_rev"]
    total = sum(by_app.values())
    order = sorted(by_app.items(), key=lambda kv: (-kv[1], kv[0].encode().ljust(16, b"\0")))
    want, cum = [], 0
    for app, b in order:
        cum += b
        want.append((app, b, cum))
        if cum * 100 >= 80 * total:
            break
    got = rig.cli_json("top", "--group", "app", "--share", "80", "--since", "all",
                       "--until", rfc(T0 + 86400))
    check([(g.get("app", ""), g["bytes"]) for g in got] == [(a, b) for a, b, _ in want],
          f"top --share 80 --group app: the {len(want)} applications making 80 % of "
          f"{total} bytes", f"want {want}\ngot {got}")
    check(all(close(g["share"], b / total, 1e-6) and close(g["cumulative"], c / total, 1e-6)
              and g["rank"] == i + 1 and g["groups"] == len(by_app)
              for i, (g, (_, b, c)) in enumerate(zip(got, want))),
          "top --share: each share, cumulative share, rank and group count", got)

    # hosts: a flow counts at both ends; shares are of the bytes seen at hosts
    by_host = collections.Counter()
    for r in recs:
        b = r["bytes_fwd"] + r["bytes_rev"]
        by_host[r["src_ip"]] += b
        if r["dst_ip"] != r["src_ip"]:
            by_host[r["dst_ip"]] += b
    htotal = sum(by_host.values())
    horder = sorted(by_host.items(), key=lambda kv: (-kv[1], addr16(kv[0])))
    want, cum = [], 0
    for h, b in horder:
        cum += b
        want.append((str(ipaddress.ip_address(h)), b))
        if cum * 100 >= 80 * htotal:
            break
    got = rig.cli_json("top", "--group", "host", "--share", "80", "--since", "all",
                       "--until", rfc(T0 + 86400))
    check([(g["host"], g["bytes"]) for g in got] == want,
          f"top --share 80 --group host: {len(want)} of {len(by_host)} hosts",
          f"want {want[:5]}...\ngot {got[:5]}...")


def minute_series(recs, host=None, app=None):
    """minute start -> [in, out] bytes as the rollups count them."""
    m = collections.defaultdict(lambda: [0, 0])
    for r in recs:
        minute = us_of(r["end"]) // 60_000_000 * 60
        if host:
            if r["src_ip"] == host:
                m[minute][1] += r["bytes_fwd"]
                m[minute][0] += r["bytes_rev"]
            elif r["dst_ip"] == host:
                m[minute][1] += r["bytes_rev"]
                m[minute][0] += r["bytes_fwd"]
            continue
        if app is not None and r.get("app", "") != app:
            continue
        m[minute][1] += r["bytes_fwd"]
        m[minute][0] += r["bytes_rev"]
    return m


def expected_bandwidth(series, t0, t1, step):
    rows = []

    def figures(minutes):
        ins = sorted(series.get(t, [0, 0])[0] for t in minutes)
        outs = sorted(series.get(t, [0, 0])[1] for t in minutes)
        f = {"samples": len(minutes), "bytes_in": sum(ins), "bytes_out": sum(outs),
             "in_bps": sum(ins) * 8 / (60 * len(minutes)),
             "out_bps": sum(outs) * 8 / (60 * len(minutes))}
        for name, vals in (("in", ins), ("out", outs)):
            for p in (50, 95, 99):
                f[f"{name}_p{p}_bps"] = pct(vals, p) * 8 / 60
            f[f"{name}_max_bps"] = vals[-1] * 8 / 60
        return f

    for s in range(t0, t1, step):
        rows.append(("step", s, figures(list(range(s, s + step, 60)))))
    rows.append(("range", t0, figures(list(range(t0, t1, 60)))))
    return rows


def check_bandwidth(rig, recs, what, extra, t0, t1, step, **sel):
    series = minute_series(recs, **sel)
    want = expected_bandwidth(series, t0, t1, step)
    got = rig.cli_json("bandwidth", "--since", rfc(t0), "--until", rfc(t1), "--step",
                       f"{step}s", *extra)
    good = len(got) == len(want)
    bad = []
    for g, (scope, start, f) in zip(got, want):
        if g["scope"] != scope or us_of(g["start"]) != start * 1_000_000 or g["interval"] != 60:
            bad.append((g, scope, start))
            continue
        for k, v in f.items():
            if not close(g[k], v):
                bad.append((start, k, g[k], v))
    check(good and not bad, f"bandwidth {what} step {step}s: {len(want) - 1} steps and the "
          f"range, every byte count, average and p50/p95/p99/max rate",
          f"rows got {len(got)} want {len(want)}; first differences: {bad[:6]}")
    return series


def merged_flows(recs_by_agent):
    flows = {}
    for agent, recs in recs_by_agent.items():
        for r in recs:
            k = (agent, r["flow_id"])
            f = flows.setdefault(k, {"end": 0, "rtt": None, "retrans": 0, "pkts": 0,
                                     "proto": r["proto"], "dst": r["dst_ip"]})
            f["end"] = max(f["end"], us_of(r["end"]))
            if f["rtt"] is None and "rtt_us" in r:
                f["rtt"] = r["rtt_us"]
            f["retrans"] += r.get("retrans_fwd", 0) + r.get("retrans_rev", 0)
            f["pkts"] += r["pkts_fwd"] + r["pkts_rev"]
    return [f for f in flows.values() if f["proto"] == 6]


def lat_figures(flows):
    rtts = sorted(f["rtt"] for f in flows if f["rtt"] is not None)
    pk = sum(f["pkts"] for f in flows)
    rt = sum(f["retrans"] for f in flows)
    out = {"flows": len(flows), "rtt_flows": len(rtts), "retrans": rt, "tcp_packets": pk}
    if rtts:
        out.update(rtt_p50_us=pct(rtts, 50), rtt_p95_us=pct(rtts, 95),
                   rtt_p99_us=pct(rtts, 99), rtt_max_us=rtts[-1],
                   rtt_mean_us=sum(rtts) / len(rtts))
    if pk:
        out["retrans_rate"] = rt / pk
    return out


def compare_lat(g, want):
    diffs = []
    for k, v in want.items():
        if k not in g or not close(g[k], v, 1e-3 if k != "retrans_rate" else 1e-6):
            diffs.append((k, g.get(k), v))
    for k in ("rtt_p50_us", "rtt_mean_us", "retrans_rate"):
        if k in g and k not in want:
            diffs.append((k, g[k], None))
    return diffs


def check_latency(rig, recs_by_agent, t0, t1, step):
    flows = merged_flows(recs_by_agent)
    got = rig.cli_json("latency", "--since", rfc(t0), "--until", rfc(t1), "--step", f"{step}s")
    bad = []
    steps = list(range(t0, t1, step))
    if len(got) != len(steps) + 1:
        bad.append(("rows", len(got), len(steps) + 1))
    for g, s in zip(got, steps):
        sel = [f for f in flows if s * 1_000_000 <= f["end"] < (s + step) * 1_000_000]
        d = compare_lat(g, lat_figures(sel))
        if d or g["scope"] != "step" or us_of(g["start"]) != s * 1_000_000:
            bad.append((s, d))
    if len(got) == len(steps) + 1:
        sel = [f for f in flows if t0 * 1_000_000 <= f["end"] < t1 * 1_000_000]
        d = compare_lat(got[-1], lat_figures(sel))
        if d or got[-1]["scope"] != "range":
            bad.append(("range", d))
    check(not bad and sum(g["flows"] for g in got[:-1]) > 100,
          f"latency step {step}s: TCP flows, handshakes, RTT p50/p95/p99/max/mean and "
          f"retransmissions per step and over the range ({len(flows)} TCP flows)", bad[:5])

    # per destination: the slowest 5 (p95 desc, flows desc, address), and their figures
    by_dst = collections.defaultdict(list)
    for f in flows:
        if t0 * 1_000_000 <= f["end"] < t1 * 1_000_000:
            by_dst[f["dst"]].append(f)
    ranked = sorted(by_dst.items(), key=lambda kv: (-lat_figures(kv[1]).get("rtt_p95_us", 0),
                                                    -len(kv[1]), addr16(kv[0])))[:5]
    got = rig.cli_json("latency", "--since", rfc(t0), "--until", rfc(t1), "--step",
                       f"{step}s", "--group", "dst", "--limit", "5")
    ranges = [g for g in got if g["scope"] == "range"]
    check([g["group"] for g in ranges] == [str(ipaddress.ip_address(d)) for d, _ in ranked]
          and all(not compare_lat(g, lat_figures(fl)) for g, (_, fl) in zip(ranges, ranked))
          and len(got) == 5 * (len(steps) + 1),
          "latency --group dst: the 5 slowest destinations in order, with their figures",
          f"got {[(g['group'], g.get('rtt_p95_us')) for g in ranges]}\n"
          f"want {[(d, lat_figures(fl).get('rtt_p95_us')) for d, fl in ranked]}")


def check_forecast(rig, grecs):
    t0, t1 = GROWTH_DAY0, GROWTH_DAY0 + GROWTH_DAYS * 86400
    series = minute_series(grecs)
    days = []
    for d in range(GROWTH_DAYS):
        day = t0 + d * 86400
        outs = sorted(series.get(day + 60 * m, [0, 0])[1] for m in range(1440))
        ins = sorted(series.get(day + 60 * m, [0, 0])[0] for m in range(1440))
        days.append((day, pct(ins, 95) * 8 / 60, pct(outs, 95) * 8 / 60))
    xs = [day / 86400 + 0.5 for day, _, _ in days]
    ys = [max(i, o) for _, i, o in days]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    icpt = my - slope * mx
    now_x = t1 / 86400
    fitted_now = icpt + slope * now_x
    # the packets grow by 400 bytes a day times a fixed shape: the daily p95 lie on
    # a line (up to the rounding of packet sizes to whole bytes)
    worst = max(abs(y - (icpt + slope * x)) for x, y in zip(xs, ys))
    check(slope > 0 and worst < 1e-3 * max(ys),
          f"the synthetic growth is linear: {slope:.2f} bit/s per day, worst residual "
          f"{worst:.3f} bit/s (the test's own fit)")
    capacity = int(fitted_now + 30 * slope)  # reached 30 days after the range ends
    cross_x = (capacity - icpt) / slope
    got = rig.cli_json("bandwidth", "--forecast", "--capacity", str(capacity), "--since",
                       rfc(t0), "--until", rfc(t1))
    pts = [g for g in got if g["scope"] == "day"]
    fit = [g for g in got if g["scope"] == "fit"]
    check(len(pts) == n and all(us_of(g["day"]) == d * 1_000_000 and close(g["p95_in_bps"], i)
                                and close(g["p95_out_bps"], o) and close(g["p95_bps"], max(i, o))
                                and close(g["fitted_bps"], icpt + slope * x)
                                for g, (d, i, o), x in zip(pts, days, xs)),
          f"forecast: {n} daily 95th percentiles and their fitted values", pts[:3])
    if check(len(fit) == 1, "forecast: one fit row", got[-2:]):
        f = fit[0]
        cross_us = us_of(f["crossing"]) if f.get("crossing") else None
        check(close(f["slope_bps_per_day"], slope) and close(f["slope_bps_per_month"],
                                                             slope * 30)
              and close(f["fitted_bps"], fitted_now) and f["days"] == n
              and f["capacity_bps"] == capacity and cross_us is not None
              and abs(cross_us / 1e6 - cross_x * 86400) < 1
              and "crosses the capacity in 30 days" in f["verdict"],
              f"forecast: slope {slope:.3f} bit/s/day, fitted {fitted_now:.1f} bit/s at the "
              f"range's end, capacity crossed on {rfc(int(cross_x * 86400))}", f)
    # a capacity the trend reaches only after the horizon, and a range of one day
    got = rig.cli_json("bandwidth", "--forecast", "--capacity", "10G", "--since", rfc(t0),
                       "--until", rfc(t1))
    check(got and got[-1].get("verdict") == "not within 10 years" and not got[-1].get("crossing"),
          "forecast: 10 Gbit/s is 'not within 10 years'", got[-1:] if got else got)
    r = rig.cli("bandwidth", "--forecast", "--capacity", "1M", "--since", rfc(T0),
                "--until", rfc(T0 + 86400))
    check(r.returncode == 1 and "at least 2 complete days" in r.stderr,
          "forecast over one day is refused with a reason", r.stderr)


def main():
    ap = argparse.ArgumentParser()
    for opt in ("aggregator", "cli", "agent", "gen"):
        ap.add_argument(f"--{opt}", required=True)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if vigiltest.skip_unbuilt(args, ("aggregator", "cli", "agent", "gen")):
        return 77
    t_start = time.time()
    work = tempfile.mkdtemp(prefix="vigil-analyst.")
    rig = Rig(args, work)
    try:
        pcaps = {"bench": os.path.join(work, "bench.pcap"),
                 "unit": os.path.join(work, "unit.pcap"),
                 "growth": os.path.join(work, "growth.pcap")}
        r = run([args.gen, "--profile", "bench", "--seed", "3", "--flows", "3000",
                 "--duration", "1800", "--out", pcaps["bench"]], timeout=120)
        r2 = run([args.gen, "--profile", "unit", "--seed", "1", "--out", pcaps["unit"]])
        if r.returncode or r2.returncode:
            raise RuntimeError(r.stderr + r2.stderr)
        write_growth_pcap(pcaps["growth"])
        rig.start()
        recs = {n: rig.deliver(n, p) for n, p in pcaps.items()}
        check(wait_stored(rig, {n: len(v) for n, v in recs.items()}),
              "every record of the three agents is stored")
        gen = recs["bench"] + recs["unit"]

        check_share(rig, gen)
        check_bandwidth(rig, gen, "fleet", [], T0, T0 + 2400, 300)
        check_bandwidth(rig, gen, "fleet", [], T0, T0 + 7200, 3600)
        hosts = collections.Counter()
        for x in gen:
            hosts[x["src_ip"]] += x["bytes_fwd"] + x["bytes_rev"]
        busy = str(ipaddress.ip_address(hosts.most_common(1)[0][0]))
        check_bandwidth(rig, gen, f"--host {busy}", ["--host", busy], T0, T0 + 2400, 300,
                        host=busy)
        check_bandwidth(rig, gen, "--app tls", ["--app", "tls"], T0, T0 + 2400, 600, app="tls")
        check_latency(rig, {"bench": recs["bench"], "unit": recs["unit"]}, T0, T0 + 2400, 300)
        check_forecast(rig, recs["growth"])

        t = time.time()
        rig.cli_json("bandwidth", "--since", rfc(GROWTH_DAY0), "--until",
                     rfc(GROWTH_DAY0 + GROWTH_DAYS * 86400), "--step", "1h")
        print(f"info: bandwidth over 10 days of minutes (14400 samples): "
              f"{(time.time() - t) * 1000:.0f} ms including the CLI")
        for k, v in sorted(rig.timings.items()):
            print(f"info: {k}: {v * 1000:.0f} ms")
    except Exception as e:
        fail("analyst test aborted", repr(e))
    finally:
        rig.stop()
        if vigiltest.failed and os.path.exists(rig.log_path):
            print("---- aggregator log (last 30 lines) ----")
            for line in rig.log().splitlines()[-30:]:
                print("    " + line)
        vigiltest.put_away(work, args.keep)
    return vigiltest.tally(t_start)


if __name__ == "__main__":
    sys.exit(main())
