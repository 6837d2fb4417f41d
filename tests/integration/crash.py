#!/usr/bin/env python3
"""crash.py — exactly once through crashes and outages, with the real daemons.

Three vigil-agents (CURVE, small batches so ingest lasts a while) feed one
vigil-aggregator on a fixed loopback port. Checked, each printed ok/FAIL:

  outage      the aggregator is down while the agents read their captures:
              every batch goes to the agents' spools; the aggregator starts,
              the agents run again (on an empty capture) and drain them;
  aggregator  SIGKILL   the aggregator is killed with SIGKILL several times
              while the agents deliver, and restarted on the same store;
  agent SIGKILL         an agent is killed with SIGKILL while its batches
              wait in the spool (aggregator down), then restarted on an empty
              capture: the spool survives and drains.

After each phase the store must hold exactly what the agents' own --json
output says: per agent the record count (`vigil agents`), and per flow
(agent, flow_id) the records merged and every packet and byte counter
(`vigil flows`): nothing lost, nothing counted twice.

usage: crash.py --aggregator BIN --cli BIN --agent BIN --gen BIN [--keep]
Exit status: 0 all passed, 1 a failure, 77 skipped (a binary is missing).
Standard library only.
"""
import argparse
import collections
import json
import os
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import vigiltest
from vigiltest import check, fail, ok, run

FLOWS_PER_AGENT = 15000
# The kill phase's agents must still be delivering at the last of the kills
# (about 0.9 s apart): twice the flows keep them at it for several seconds
# even on a fast machine, where 15,000 each were done after three.
KILL_FLOWS_PER_AGENT = 2 * FLOWS_PER_AGENT
FLOWS_LIMIT = 50000  # the CLI's most flows per query: verify asks for fewer per window
FLOWS_PER_QUERY = 40000
BATCH_RECORDS = 10  # many small batches: each is one durable commit


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rig:
    def __init__(self, args, work):
        self.a = args
        self.work = work
        self.keys = os.path.join(work, "keys")
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.agg = None
        self.agg_log = os.path.join(work, "aggregator.log")
        self.starts = 0

    def keygen(self, out, name):
        r = run([self.a.cli, "keygen", "--out", out, "--name", name])
        if r.returncode != 0:
            raise RuntimeError(f"vigil keygen {name}: {r.stderr}")

    def setup(self, names):
        self.keygen(f"{self.keys}/aggregator", "aggregator")
        for n in names:
            self.keygen(f"{self.keys}/agents.d", n)
        self.keygen(f"{self.keys}/analysts.d", "alice")
        self.empty = os.path.join(self.work, "empty.pcap")
        with open(self.empty, "wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))

    def capture(self, name, seed, flows=FLOWS_PER_AGENT):
        path = os.path.join(self.work, f"{name}-{seed}.pcap")
        r = run([self.a.gen, "--profile", "bench", "--seed", str(seed), "--flows",
                 str(flows), "--duration", "30", "--out", path])
        if r.returncode != 0:
            raise RuntimeError(f"vigil-gen: {r.stderr}")
        return path

    # ---- the aggregator -------------------------------------------------------
    def start_aggregator(self, db):
        k = self.keys
        cmd = [self.a.aggregator, "--listen", self.endpoint, "--db", db,
               "--key", f"{k}/aggregator/aggregator.key",
               "--agents-allow", f"{k}/agents.d", "--analysts-allow", f"{k}/analysts.d",
               "--flow-retention", "36500d", "--minute-retention", "36500d",
               "--hour-retention", "36500d", "--day-retention", "36500d"]
        self.starts += 1
        with open(self.agg_log, "a") as out:
            out.write(f"---- start {self.starts} ----\n")
        self.agg, _ = vigiltest.start_logged(cmd, self.agg_log, "listening on", timeout=20,
                                             append=True)

    def kill_aggregator(self, sig=signal.SIGKILL):
        if self.agg and self.agg.poll() is None:
            self.agg.send_signal(sig)
            self.agg.wait(timeout=30)
        self.agg = None

    def log(self):
        with open(self.agg_log) as f:
            return f.read()

    # ---- agents -----------------------------------------------------------------
    def agent_cmd(self, name, pcap, spool, json_path=None):
        cmd = [self.a.agent, "-r", pcap, "--aggregator", self.endpoint,
               "--server-key", f"{self.keys}/aggregator/aggregator.pub",
               "--key", f"{self.keys}/agents.d/{name}.key", "--spool", spool,
               "--agent-name", name, "--batch-records", str(BATCH_RECORDS)]
        if json_path:
            cmd += ["--json", json_path]
        return cmd

    def drain(self, name, spool):
        """Runs the agent on an empty capture until its spool is empty."""
        for _ in range(20):
            r = run(self.agent_cmd(name, self.empty, spool))
            if "not acknowledged everything" not in r.stderr:
                return True
        return False

    # ---- the CLI ------------------------------------------------------------------
    def cli_json(self, *args):
        cmd = [self.a.cli, *args, "--connect", self.endpoint,
               "--key", f"{self.keys}/analysts.d/alice.key",
               "--server-key", f"{self.keys}/aggregator/aggregator.pub", "--format", "json"]
        r = run(cmd, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"vigil {' '.join(args)}: {r.stderr}")
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


COUNTERS = ("pkts_fwd", "bytes_fwd", "pkts_rev", "bytes_rev")


def expected(json_paths, ends=None):
    """(agent, flow_id) -> [records, counters...] summed over the agents'
    records; ends (a dict), if given, gets each flow's last end (RFC 3339)."""
    want = collections.defaultdict(lambda: [0] * (1 + len(COUNTERS)))
    per_agent = collections.Counter()
    for agent, paths in json_paths.items():
        for path in paths:
            with open(path) as f:
                for line in f:
                    rec = json.loads(line)
                    key = (agent, rec["flow_id"])
                    w = want[key]
                    w[0] += 1
                    for i, c in enumerate(COUNTERS):
                        w[1 + i] += rec[c]
                    per_agent[agent] += 1
                    if ends is not None and rec["end"] > ends.get(key, ""):
                        ends[key] = rec["end"]
    return want, per_agent


def stored_flows(rig, ends):
    """Every stored flow, asked for in windows of their end times that each
    hold about FLOWS_PER_QUERY flows; each answer must come back whole."""
    cuts = sorted(ends.values())[FLOWS_PER_QUERY::FLOWS_PER_QUERY]
    edges = ["all"] + cuts + ["2100-01-01"]
    rows, whole = [], True
    for since, until in zip(edges, edges[1:]):
        part = rig.cli_json("flows", "--since", since, "--until", until, "--limit",
                            str(FLOWS_LIMIT))
        whole = whole and len(part) < FLOWS_LIMIT
        rows += part
    return rows, whole


def verify(rig, phase, json_paths):
    """The store holds exactly what the agents' JSON says."""
    ends = {}
    want, per_agent = expected(json_paths, ends)
    agents = {a["agent"]: a for a in rig.cli_json("agents")}
    got_records = {n: agents.get(n, {}).get("records", 0) for n in json_paths}
    check(got_records == dict(per_agent),
          f"{phase}: records per agent stored = the agents' JSON ({sum(per_agent.values())})",
          f"stored {got_records}\nagents' JSON {dict(per_agent)}")
    rows, whole = stored_flows(rig, ends)
    got = {}
    for r in rows:
        got[(r["agent"], r["flow_id"])] = [r["records"]] + [r[c] for c in COUNTERS]
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    wrong = [k for k in want if k in got and got[k] != want[k]]
    check(not missing and not extra and not wrong and whole,
          f"{phase}: every flow stored once with its records and counters ({len(want)} flows)",
          f"missing {len(missing)} {missing[:3]}\nextra {len(extra)} {extra[:3]}\n"
          f"wrong {len(wrong)} " + "; ".join(f"{k}: got {got[k]} want {want[k]}"
                                            for k in wrong[:3]))


def phase_outage(rig, names):
    """Aggregator down while the agents read: spool, then drain."""
    db = os.path.join(rig.work, "db-outage")
    paths = {}
    for i, n in enumerate(names):
        spool = os.path.join(rig.work, f"spool-outage-{n}")
        paths[n] = [os.path.join(rig.work, f"outage-{n}.jsonl")]
        r = run(rig.agent_cmd(n, rig.capture(n, 10 + i), spool, paths[n][0]))
        check("not acknowledged everything" in r.stderr,
              f"outage: agent {n} reports what it keeps for later",
              r.stderr[-1500:])
        check(any(os.scandir(spool)), f"outage: agent {n}'s spool holds its batches")
    rig.start_aggregator(db)
    drained = all(rig.drain(n, os.path.join(rig.work, f"spool-outage-{n}")) for n in names)
    check(drained, "outage: every agent drained its spool once the aggregator was up")
    verify(rig, "outage", paths)
    rig.kill_aggregator(signal.SIGTERM)


def phase_aggregator_kill(rig, names, kills):
    """SIGKILL the aggregator repeatedly while three agents deliver."""
    db = os.path.join(rig.work, "db-kill")
    rig.start_aggregator(db)
    paths, spools, pcaps = {}, {}, {}
    for i, n in enumerate(names):
        spools[n] = os.path.join(rig.work, f"spool-kill-{n}")
        paths[n] = [os.path.join(rig.work, f"kill-{n}.jsonl")]
        pcaps[n] = rig.capture(n, 20 + i, KILL_FLOWS_PER_AGENT)
    drained = {}

    def deliver(n):
        # the capture, then empty runs until the spool is empty: whatever
        # the kills interrupt is resent by a later run
        run(rig.agent_cmd(n, pcaps[n], spools[n], paths[n][0]), timeout=300)
        drained[n] = rig.drain(n, spools[n])

    threads = [threading.Thread(target=deliver, args=(n,)) for n in names]
    for t in threads:
        t.start()
    done = 0
    for _ in range(kills):
        time.sleep(0.4)
        if not any(t.is_alive() for t in threads):
            break
        rig.kill_aggregator(signal.SIGKILL)
        done += 1
        time.sleep(0.3)
        rig.start_aggregator(db)
    for t in threads:
        t.join(timeout=600)
    check(done == kills, f"aggregator SIGKILL: killed {done} of {kills} times while the agents "
          "delivered")
    check(all(drained.get(n) for n in names), "aggregator SIGKILL: every agent delivered the rest")
    check(rig.log().count("duplicate") >= 0 and "journal entries back" in rig.log(),
          "aggregator SIGKILL: restarts rebuilt the open rollups from the journal",
          rig.log()[-2000:])
    verify(rig, "aggregator SIGKILL", paths)
    top = rig.cli_json("top", "--group", "app", "--since", "all", "--until", "2100-01-01",
                       "--limit", "1000")
    want, _ = expected(paths)
    pkts = sum(v[1] + v[3] for v in want.values())
    check(sum(r["packets"] for r in top) == pkts,
          f"aggregator SIGKILL: the rollups (top) count every packet once ({pkts})",
          f"top says {sum(r['packets'] for r in top)}")
    rig.kill_aggregator(signal.SIGTERM)


def phase_agent_kill(rig, name):
    """SIGKILL an agent while its batches wait in the spool."""
    db = os.path.join(rig.work, "db-agent")
    spool = os.path.join(rig.work, f"spool-agentkill-{name}")
    path = os.path.join(rig.work, f"agentkill-{name}.jsonl")
    cmd = rig.agent_cmd(name, rig.capture(name, 30), spool, path)
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # The capture is read within a second and the JSON output closed; the
    # agent then waits EXPORT grace (2 s) for acks that cannot come (no
    # aggregator). Kill it in that wait: once the output is complete.
    last = -1
    stable_since = time.time()
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:
        time.sleep(0.1)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        if len(data) != last:
            last, stable_since = len(data), time.time()
        elif data.endswith(b"\n") and time.time() - stable_since >= 0.5:
            break
    alive = p.poll() is None
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=30)
    check(alive, f"agent SIGKILL: agent {name} killed while waiting for acks")
    rig.start_aggregator(db)
    check(rig.drain(name, spool), "agent SIGKILL: the restarted agent drained the spool")
    verify(rig, "agent SIGKILL", {name: [path]})
    rig.kill_aggregator(signal.SIGTERM)


def main():
    ap = argparse.ArgumentParser()
    for opt in ("aggregator", "cli", "agent", "gen"):
        ap.add_argument(f"--{opt}", required=True)
    ap.add_argument("--kills", type=int, default=4)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if vigiltest.skip_unbuilt(args, ("aggregator", "cli", "agent", "gen")):
        return 77
    t0 = time.time()
    work = tempfile.mkdtemp(prefix="vigil-crash.")
    rig = Rig(args, work)
    names = ("edge-01", "edge-02", "edge-03")
    try:
        rig.setup(names)
        phase_outage(rig, names)
        phase_aggregator_kill(rig, names, args.kills)
        phase_agent_kill(rig, "edge-01")
    except Exception as e:  # a set-up step failed: report it as a failure
        fail("crash test aborted", repr(e))
    finally:
        rig.kill_aggregator(signal.SIGKILL)
        if vigiltest.failed and os.path.exists(rig.agg_log):
            print("---- aggregator log (last 30 lines) ----")
            for line in rig.log().splitlines()[-30:]:
                print("    " + line)
        vigiltest.put_away(work, args.keep)
    return vigiltest.tally(t0)


if __name__ == "__main__":
    raise SystemExit(main())
