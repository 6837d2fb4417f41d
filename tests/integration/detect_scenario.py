#!/usr/bin/env python3
"""detect_scenario.py — the detectors end to end on a generated fleet.

`vigil-gen --profile fleet` writes one capture per host and labels.json (the
fleet, and each attack: type, sources, targets, agents, start, end). This
test starts a vigil-aggregator (--insecure, loopback, a fresh store), replays
every capture through its own vigil-agent (the host's name as agent name, the
fleet's network as --local-net), waits until `vigil agents` shows every record
delivered, then polls `vigil alerts` and checks:

  caught        every labelled attack raised an alert of exactly its type,
                once (de-duplicated), within its time, naming its sources and
                targets (and, for fleet_scan, the agents that saw it): every
                address an alert names must be labelled, a short list (up to
                3) must be named whole, and a longer one (254 targets of a
                sweep) may be sampled; a fleet_scan must name at least 3 of
                the agents that saw it;
  no false      no alert is left unmatched: no other type, no second alert;
                in particular no port_scan or horizontal_scan names the
                fleet scan's source;
  benign        the same fleet without attacks (--no-attacks: the very same
                benign traffic) raises no alert at all.

It prints a table per detector (labelled, caught, false alerts) for each run.

usage: detect_scenario.py --gen BIN --agent BIN --aggregator BIN --cli BIN
                          [--hosts N] [--days D] [--seed N] [--keep]
Exit status: 0 all passed, 1 a failure, 77 skipped (a binary is missing).
Standard library only; the daemons are driven with fleet.py's helpers.
"""
import argparse
import collections
import concurrent.futures
import ipaddress
import json
import os
import re
import struct
import sys
import tempfile
import time
from datetime import datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleet  # noqa: E402  (the daemon helpers: start, stop, CLI, spool draining)
import vigiltest  # noqa: E402
from vigiltest import check, fail, ok  # noqa: E402

vigiltest.detail_lines = 25

TYPES = ("exfiltration", "port_scan", "horizontal_scan", "fleet_scan", "distributed_scan",
         "dns_tunnel", "beacon")
SHORT_LIST = 3      # lists up to this long must be named whole; longer ones may be sampled
SANITIZER = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:")
TIME_SLACK = timedelta(minutes=10)  # windows may start or end a little apart from the packets


def when(text):
    """An RFC 3339 UTC time as a datetime (microseconds kept)."""
    text = text.replace("Z", "+00:00")
    return datetime.fromisoformat(text)


def canon(a):
    return str(ipaddress.ip_address(a))


class ScenarioFleet(fleet.Fleet):
    """fleet.py's daemons, in plain TCP on loopback (--insecure on both sides)."""

    def __init__(self, args, work):
        super().__init__(args, work)
        r = fleet.run([args.agent, "--help"])
        self.agent_has_no_capture = "--no-capture" in r.stdout + r.stderr
        self.empty_pcap = os.path.join(work, "empty.pcap")
        with open(self.empty_pcap, "wb") as f:  # a pcap header only
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))

    def start_aggregator(self):
        cmd = [self.a.aggregator, "--insecure", "--listen", "tcp://127.0.0.1:*",
               "--db", os.path.join(self.work, "db"),
               # the captures are dated 2026: keep them whatever today is
               "--flow-retention", "36500d", "--minute-retention", "36500d",
               "--hour-retention", "36500d", "--day-retention", "36500d",
               "--status-interval", "5s"]
        self.agg_proc, m = vigiltest.start_logged(cmd, self.agg_log,
                                                  r"listening on (tcp://\S+) WITHOUT CURVE")
        self.endpoint = m.group(1)

    def agent_cmd(self, name, pcap, key=None, json_path=None):
        cmd = [self.a.agent, "-r", pcap, "--aggregator", self.endpoint, "--insecure",
               "--agent-name", name, "--local-net", self.local_net,
               "--spool", os.path.join(self.work, f"spool-{name}"),
               # a host's own traffic needs a small table; keeps 24 agents' memory modest
               "--max-flows", "16384",
               # a live fleet's agents stay up: a replaying agent waits for its acks
               # instead of leaving batches in its spool for a drain seconds later,
               # after the engine (idle flush: 5 s) judged its fleet-mates' pairs
               # without them (a slow, sanitized aggregator made that happen)
               "--stop-grace", "120s"]
        if self.agent_has_no_capture:
            cmd.append("--no-capture")  # replays take no forensic capture orders
        if json_path:
            cmd += ["--json", json_path]
        return cmd

    def cli(self, *args, key=None, fmt="json", timeout=30):
        cmd = [self.a.cli, *args, "--connect", self.endpoint, "--insecure"]
        if fmt:
            cmd += ["--format", fmt]
        return fleet.run(cmd, timeout=timeout)


# ---- the replay ----------------------------------------------------------------------

def generate(args, out_dir, attacks):
    cmd = [args.gen, "--profile", "fleet", "--out-dir", out_dir, "--hosts", str(args.hosts),
           "--days", str(args.days), "--seed", str(args.seed)]
    if not attacks:
        cmd.append("--no-attacks")
    t = time.time()
    r = fleet.run(cmd, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"vigil-gen: {r.stderr}")
    with open(os.path.join(out_dir, "labels.json")) as f:
        labels = json.load(f)
    size = sum(os.path.getsize(os.path.join(out_dir, h["capture"])) for h in labels["fleet"])
    ok(f"vigil-gen wrote {len(labels['fleet'])} captures ({size / 1e6:.0f} MB) and "
       f"{len(labels['attacks'])} labelled attacks in {time.time() - t:.1f} s")
    return labels


def replay(fl, out_dir, labels):
    """One agent per host, all at once as a live fleet streams; returns {agent: records
    it sent}."""
    sent = {}

    def one(host):
        name = host["name"]
        return name, fleet.run(fl.agent_cmd(name, os.path.join(out_dir, host["capture"])),
                               timeout=600)

    t = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(labels["fleet"])) as pool:
        for name, r in pool.map(one, labels["fleet"]):
            # What the aggregator has not acknowledged at exit waits in the
            # spool: wait_delivered drains it.
            m = re.search(r"records=(\d+) records_lost=(\d+)", r.stderr)
            if r.returncode != 0 or not m or m.group(2) != "0" or SANITIZER.search(r.stderr):
                fail(f"agent {name} replays its capture", r.stderr[-1500:])
                continue
            sent[name] = int(m.group(1))
    total = sum(sent.values())
    check(len(sent) == len(labels["fleet"]),
          f"{len(sent)} agents replayed their captures: {total} records in "
          f"{time.time() - t:.1f} s")
    return sent


def wait_delivered(fl, sent, timeout=300):
    """Until `vigil agents` shows every record: an agent whose batches still wait
    in its spool is started again on an empty capture, which sends them."""
    deadline = time.time() + timeout
    got = {}
    while time.time() < deadline:
        try:
            got = {a["agent"]: a.get("records") for a in fl.cli_json("agents")}
        except RuntimeError:
            got = {}
        behind = [n for n, want in sent.items() if got.get(n) != want]
        if not behind:
            break
        spooled = [n for n in behind if any(
            e.name.endswith(".batch") for e in os.scandir(os.path.join(fl.work, f"spool-{n}")))]
        if spooled:
            with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda n: fleet.run(fl.agent_cmd(n, fl.empty_pcap), timeout=120),
                              spooled))
        else:
            time.sleep(0.5)
    missing = {n: (want, got.get(n)) for n, want in sent.items() if got.get(n) != want}
    return check(not missing, f"vigil agents: every agent's records stored "
                              f"({sum(sent.values())})",
                 "\n".join(f"{n}: sent {w}, stored {g}" for n, (w, g) in missing.items()))


def fetch_alerts(fl):
    """All alerts, or None when this aggregator/CLI has no alerts yet."""
    r = fl.cli("alerts", "--since", "all", "--limit", "10000")
    if r.returncode != 0:
        return None, r.stderr.strip() or r.stdout.strip()
    out = []
    for line in r.stdout.splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out, ""


def poll_alerts(fl, labels, wait):
    """Polls until every labelled type has shown up (or `wait` seconds), then a
    little longer so late evaluations land too."""
    want = {a["type"] for a in labels["attacks"]}
    deadline = time.time() + wait
    alerts, err = [], ""
    while True:
        alerts, err = fetch_alerts(fl)
        if alerts is None:
            return None, err
        if want and want <= {a.get("type") for a in alerts} or time.time() >= deadline:
            break
        time.sleep(1)
    if want:
        time.sleep(3)
        alerts, err = fetch_alerts(fl)
    return alerts, err


# ---- judging ------------------------------------------------------------------------------

def names_right(named, labelled, at_least=1):
    """Everything the alert names is labelled; a short labelled list is named whole."""
    named = {canon(x) if re.match(r"^[0-9a-fA-F:.]+$", x) else x for x in named}
    labelled = {canon(x) if re.match(r"^[0-9a-fA-F:.]+$", x) else x for x in labelled}
    if not named or not named <= labelled:
        return False
    if len(labelled) <= SHORT_LIST:
        return named == labelled
    return len(named) >= min(at_least, len(labelled))


def matches(alert, attack):
    if alert.get("type") != attack["type"]:
        return False
    if not names_right(alert.get("sources") or [], attack["sources"]):
        return False
    if not names_right(alert.get("targets") or [], attack["targets"]):
        return False
    if attack["type"] == "fleet_scan" and not names_right(alert.get("agents") or [],
                                                         attack["agents"], at_least=3):
        return False
    try:
        first, last = when(alert["first_seen"]), when(alert["last_seen"])
    except (KeyError, ValueError):
        return False
    return first <= when(attack["end"]) + TIME_SLACK and last >= when(attack["start"]) - TIME_SLACK


def judge(labels, alerts, run):
    """Matches alerts to labelled attacks; returns the per-detector table rows."""
    used = set()
    caught = collections.Counter()
    for atk in labels["attacks"]:
        hits = [i for i, a in enumerate(alerts) if matches(a, atk)]
        same_type = [a for a in alerts if a.get("type") == atk["type"]]
        used.update(hits)
        if len(hits) == 1:
            caught[atk["type"]] += 1
        detail = "\n".join(json.dumps({k: a.get(k) for k in ("type", "sources", "targets",
                                                                "agents", "first_seen",
                                                                "last_seen", "summary")})
                           for a in same_type[:5]) or "no alert of this type"
        check(len(hits) == 1,
              f"{run}: {atk['type']} from {', '.join(atk['sources'][:3])}"
              f"{'...' if len(atk['sources']) > 3 else ''} raised once, naming its hosts",
              (f"{len(hits)} matching alerts\n" if hits else "") + detail)
    false = collections.Counter()
    for i, a in enumerate(alerts):
        if i not in used:
            false[a.get("type", "?")] += 1
    unmatched = [a for i, a in enumerate(alerts) if i not in used]
    check(not unmatched, f"{run}: no false alert ({len(alerts)} alerts in all)",
          "\n".join(f"{a.get('type')}: {a.get('summary', '')} sources={a.get('sources')} "
                    f"targets={(a.get('targets') or [])[:4]}" for a in unmatched[:15]))
    fs = [atk for atk in labels["attacks"] if atk["type"] == "fleet_scan"]
    for atk in fs:
        src = {canon(s) for s in atk["sources"]}
        per_host = [a for a in alerts if a.get("type") in ("port_scan", "horizontal_scan")
                    and src & {canon(s) for s in a.get("sources") or []}]
        check(not per_host, f"{run}: no per-host scan alert for the fleet scan's source "
                            f"{', '.join(sorted(src))}",
              "\n".join(a.get("summary", "") for a in per_host))
    labelled = collections.Counter(a["type"] for a in labels["attacks"])
    types = list(TYPES) + sorted(set(false) - set(TYPES))
    return [(run, t, labelled[t], caught[t], false[t]) for t in types]


def print_table(rows):
    print()
    print(f"{'run':<8} {'detector':<17} {'labelled':>8} {'caught':>6} {'false':>6}")
    for run, t, lab, cau, fal in rows:
        print(f"{run:<8} {t:<17} {lab:>8} {cau:>6} {fal:>6}")
    print()


def one_run(args, work, attacks, rows):
    run = "attacks" if attacks else "benign"
    out_dir = os.path.join(work, run)
    os.makedirs(out_dir)
    labels = generate(args, out_dir, attacks)
    if attacks:
        check(sorted({a["type"] for a in labels["attacks"]}) == sorted(TYPES),
              "labels.json has one attack of every alert type",
              [a["type"] for a in labels["attacks"]])
    else:
        check(labels["attacks"] == [], "--no-attacks: labels.json lists no attack")
    fl = ScenarioFleet(args, out_dir)
    fl.local_net = labels["network"]
    try:
        fl.start_aggregator()
        ok(f"{run}: aggregator listening on {fl.endpoint} (--insecure)")
        sent = replay(fl, out_dir, labels)
        if len(sent) != len(labels["fleet"]) or not wait_delivered(fl, sent):
            return
        t = time.time()
        alerts, err = poll_alerts(fl, labels, args.alert_wait)
        if alerts is None:
            fail(f"{run}: vigil alerts answers", err)
            return
        ok(f"{run}: vigil alerts listed {len(alerts)} alerts after {time.time() - t:.1f} s")
        rows.extend(judge(labels, alerts, run))
    finally:
        code = fl.stop()
        check(code == 0, f"{run}: the aggregator exits 0 on SIGTERM", f"exit status {code}")
        if os.path.exists(fl.agg_log):
            check(not SANITIZER.search(fl.log()), f"{run}: no sanitizer report from the "
                                                  "aggregator", fl.log()[-1500:])
        if vigiltest.failed:
            print(f"---- {run}: aggregator log (last 30 lines) ----")
            if os.path.exists(fl.agg_log):
                for line in fl.log().splitlines()[-30:]:
                    print("    " + line)
        if not args.keep:
            # the captures are large: free the space before the next run
            for h in labels["fleet"]:
                try:
                    os.unlink(os.path.join(out_dir, h["capture"]))
                except OSError:
                    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for opt in ("gen", "agent", "aggregator", "cli"):
        ap.add_argument(f"--{opt}", required=True)
    ap.add_argument("--hosts", type=int, default=24)
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--alert-wait", type=float, default=20.0,
                    help="seconds to wait for the alerts after delivery")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if vigiltest.skip_unbuilt(args, ("gen", "agent", "aggregator", "cli")):
        return 77

    t0 = time.time()
    work = tempfile.mkdtemp(prefix="vigil-detect.")
    rows = []
    try:
        one_run(args, work, True, rows)
        one_run(args, work, False, rows)
    except Exception as e:  # a set-up step failed: report it as a failure
        fail("detection scenario aborted", repr(e))
    finally:
        if rows:
            print_table(rows)
        vigiltest.put_away(work, args.keep)
    return vigiltest.tally(t0)


if __name__ == "__main__":
    sys.exit(main())
