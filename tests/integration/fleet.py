#!/usr/bin/env python3
"""fleet.py — the fleet pipeline end to end on loopback, with CURVE.

One vigil-aggregator, three vigil-agents over different generated captures
(two `unit` profiles with different seeds, one `bench` profile), the vigil CLI.
Checks, each printed as ok/FAIL:

  exactness   what the CLI reports equals what the agents' own --json says:
              per agent (records, flows), totals (flows, packets, bytes) from
              `top --group app`, per host, per port and per talker pair, and
              every stored flow (`flows --format json`): counters summed over
              its records, and for single-record flows every field identical;
              filtered queries (--host, --port, --proto, --app) return exactly
              the matching flows;
  refusals    an agent with a key in no allow list gets nothing stored and the
              aggregator logs the refusal with the key's fingerprint; a refused
              agent gets in by itself once its key is allowed (SIGHUP); a query
              with an agent key is refused; an analyst key in no allow list is
              refused at the handshake with a clear message;
  garbage     a raw ZeroMQ client (zmq_poke) sends garbage, a truncated batch,
              several frames, a bad schema version, another agent's batch, an
              impossible record, a query and an oversized message while the
              bench agent is delivering; each is counted under its reason in
              the aggregator's final status line, and the good agent's data is
              still exact;
  shutdown    SIGTERM: the aggregator exits 0 and logs its final status.

usage: fleet.py --aggregator BIN --cli BIN --agent BIN --gen BIN --poke BIN [--keep]
Exit status: 0 all passed, 1 a failure, 77 skipped (a binary is missing).
Standard library only.
"""
import argparse
import collections
import ipaddress
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

import vigiltest
from vigiltest import check, fail, ok, run


class Fleet:
    def __init__(self, args, work):
        self.a = args
        self.work = work
        self.keys = os.path.join(work, "keys")
        self.agg_proc = None
        self.agg_log = os.path.join(work, "aggregator.log")
        self.endpoint = None

    # ---- set-up -----------------------------------------------------------
    def keygen(self, out, name):
        r = run([self.a.cli, "keygen", "--out", out, "--name", name])
        if r.returncode != 0:
            raise RuntimeError(f"vigil keygen {name}: {r.stderr}")
        fp = re.search(r"fingerprint:\s+([0-9a-f]{16})", r.stdout)
        return fp.group(1) if fp else None

    def make_keys(self):
        k = self.keys
        self.keygen(f"{k}/aggregator", "aggregator")
        for n in ("web-01", "web-02", "web-03", "poker"):
            self.keygen(f"{k}/agents.d", n)
        self.keygen(f"{k}/analysts.d", "alice")
        self.rogue_fp = self.keygen(f"{k}/outsiders", "rogue")
        self.keygen(f"{k}/outsiders", "mallory")

    def make_captures(self):
        specs = {
            "web-01": ["--profile", "unit", "--seed", "1"],
            "web-02": ["--profile", "unit", "--seed", "2"],
            "web-03": ["--profile", "bench", "--seed", "3", "--flows", "2000", "--duration",
                       "60"],
        }
        self.pcaps = {}
        for name, spec in specs.items():
            path = os.path.join(self.work, f"{name}.pcap")
            r = run([self.a.gen, *spec, "--out", path], timeout=120)
            if r.returncode != 0:
                raise RuntimeError(f"vigil-gen {spec}: {r.stderr}")
            self.pcaps[name] = path
        # an empty capture (a pcap header only): lets an agent start and drain its spool
        self.empty_pcap = os.path.join(self.work, "empty.pcap")
        with open(self.empty_pcap, "wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))

    def start_aggregator(self):
        k = self.keys
        cmd = [self.a.aggregator, "--listen", "tcp://127.0.0.1:*",
               "--db", os.path.join(self.work, "db"),
               "--key", f"{k}/aggregator/aggregator.key",
               "--agents-allow", f"{k}/agents.d", "--analysts-allow", f"{k}/analysts.d",
               # the captures are dated 2026-01-01: keep them whatever today is
               "--flow-retention", "36500d", "--minute-retention", "36500d",
               "--hour-retention", "36500d", "--day-retention", "36500d",
               "--status-interval", "5s"]
        self.agg_proc, m = vigiltest.start_logged(cmd, self.agg_log,
                                                  r"listening on (tcp://\S+) with CURVE on")
        self.endpoint = m.group(1)

    def log(self):
        with open(self.agg_log) as f:
            return f.read()

    # ---- agents -------------------------------------------------------------
    def agent_cmd(self, name, pcap, key, json_path=None):
        cmd = [self.a.agent, "-r", pcap, "--aggregator", self.endpoint,
               "--server-key", f"{self.keys}/aggregator/aggregator.pub", "--key", key,
               "--spool", os.path.join(self.work, f"spool-{name}"), "--agent-name", name]
        if json_path:
            cmd += ["--json", json_path]
        return cmd

    def deliver_rest(self, name):
        """Runs the agent on an empty capture so it drains its spool; True when done."""
        for _ in range(5):
            r = run(self.agent_cmd(name, self.empty_pcap, f"{self.keys}/agents.d/{name}.key"))
            if "not acknowledged everything" not in r.stderr:
                return True
        return False

    # ---- the CLI -----------------------------------------------------------------
    def cli(self, *args, key=None, fmt="json", timeout=30):
        cmd = [self.a.cli, *args, "--connect", self.endpoint,
               "--key", key or f"{self.keys}/analysts.d/alice.key",
               "--server-key", f"{self.keys}/aggregator/aggregator.pub"]
        if fmt:
            cmd += ["--format", fmt]
        return run(cmd, timeout=timeout)

    def cli_json(self, *args):
        r = self.cli(*args)
        if r.returncode != 0:
            raise RuntimeError(f"vigil {' '.join(args)}: {r.stderr}")
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def stop(self):
        if self.agg_proc and self.agg_proc.poll() is None:
            self.agg_proc.send_signal(signal.SIGTERM)
            try:
                return self.agg_proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.agg_proc.kill()
                self.agg_proc.wait()
                return None
        return self.agg_proc.returncode if self.agg_proc else None


# ---- what the agents said ---------------------------------------------------------

def addr16(text):
    a = ipaddress.ip_address(text)
    if a.version == 4:
        return b"\0" * 10 + b"\xff\xff" + a.packed
    return a.packed


def canon(text):
    """An address as the CLI prints it (IPv4 dotted, IPv6 RFC 5952)."""
    return str(ipaddress.ip_address(text))


def load_records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def expected_flows(records_by_agent):
    """(agent, flow_id) -> merged figures, as the store should hold them."""
    flows = {}
    for agent, recs in records_by_agent.items():
        for r in recs:
            k = (agent, r["flow_id"])
            f = flows.get(k)
            if f is None:
                flows[k] = f = {"records": [], "pkts_fwd": 0, "bytes_fwd": 0, "pkts_rev": 0,
                                "bytes_rev": 0}
            f["records"].append(r)
            for c in ("pkts_fwd", "bytes_fwd", "pkts_rev", "bytes_rev"):
                f[c] += r[c]
    for f in flows.values():
        recs = f["records"]
        f["start"] = min(r["start"] for r in recs)
        f["end"] = max(r["end"] for r in recs)
        first = recs[0]
        for c in ("src_ip", "dst_ip", "src_port", "dst_port", "proto"):
            f[c] = first.get(c)
    return flows


def main():
    ap = argparse.ArgumentParser()
    for opt in ("aggregator", "cli", "agent", "gen", "poke"):
        ap.add_argument(f"--{opt}", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if vigiltest.skip_unbuilt(args, ("aggregator", "cli", "agent", "gen", "poke")):
        return 77
    r = run([args.agent, "--help"])
    if "--aggregator" not in r.stdout + r.stderr:
        print("skip: this vigil-agent has no --aggregator")
        return 77

    t0 = time.time()
    work = tempfile.mkdtemp(prefix="vigil-fleet.")
    fleet = Fleet(args, work)
    try:
        fleet.make_keys()
        fleet.make_captures()
        fleet.start_aggregator()
        ok(f"aggregator listening on {fleet.endpoint} with CURVE")
        body(fleet)
        code = fleet.stop()
        check(code == 0, "SIGTERM: the aggregator exits 0", f"exit status {code}")
        final = [l for l in fleet.log().splitlines() if "final status: batches=" in l]
        check(bool(final), "the aggregator logs its final status")
        if final:
            garbage_counts(final[-1])
    except Exception as e:  # a set-up step failed: report it as a failure
        fail("fleet test aborted", repr(e))
    finally:
        fleet.stop()
        if vigiltest.failed:
            print("---- aggregator log (last 40 lines) ----")
            for line in fleet.log().splitlines()[-40:] if os.path.exists(fleet.agg_log) else []:
                print("    " + line)
        vigiltest.put_away(work, args.keep)
    return vigiltest.tally(t0)


def body(fleet):
    k = fleet.keys
    names = ("web-01", "web-02", "web-03")
    records = {}

    # -- a refused agent first (so the refusal is the first one logged) --------
    r = run(fleet.agent_cmd("rogue", fleet.pcaps["web-01"], f"{k}/outsiders/rogue.key"),
            timeout=60)
    check(fleet.rogue_fp and f"key {fleet.rogue_fp}" in fleet.log() and "refused" in fleet.log(),
          "an agent with an unknown key is refused and logged with its fingerprint",
          fleet.log()[-2000:])

    # -- three agents; the bench one while zmq_poke sends garbage ------------------
    poke = subprocess.Popen([fleet.a.poke, "--connect", fleet.endpoint,
                             "--server-key", f"{k}/aggregator/aggregator.pub",
                             "--key", f"{k}/agents.d/poker.key", "--agent", "poker"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    procs = {}
    for n in names:
        records[n] = os.path.join(fleet.work, f"{n}.jsonl")
        procs[n] = subprocess.Popen(
            fleet.agent_cmd(n, fleet.pcaps[n], f"{k}/agents.d/{n}.key", records[n]),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, _ = poke.communicate(timeout=60)
    check(poke.returncode == 0, "zmq_poke: garbage dropped, good batches acked around it",
          out)
    for n in names:
        out, err = procs[n].communicate(timeout=90)
        check(procs[n].returncode == 0, f"agent {n} exits 0", err)
        if "not acknowledged everything" in err:
            check(fleet.deliver_rest(n), f"agent {n}: the rest delivered from its spool on "
                                         "the next start")
        m = re.search(r"records_lost=(\d+)", err)
        check(m and m.group(1) == "0", f"agent {n} lost no records", err)
    recs = {n: load_records(records[n]) for n in names}
    for n in names:
        check(len(recs[n]) > 0, f"agent {n} wrote {len(recs[n])} records")

    # -- per agent -----------------------------------------------------------------
    agents = {a["agent"]: a for a in fleet.cli_json("agents")}
    check("rogue" not in agents, "nothing stored for the refused agent", list(agents))
    check(agents.get("poker", {}).get("records", -1) == 0,
          "the raw client's empty batches stored no records", agents.get("poker"))
    for n in names:
        a = agents.get(n, {})
        want_flows = len({r["flow_id"] for r in recs[n]})
        check(a.get("records") == len(recs[n]) and a.get("flows") == want_flows,
              f"vigil agents: {n} has {len(recs[n])} records, {want_flows} flows",
              f"got records={a.get('records')} flows={a.get('flows')}")

    allrecs = [r for n in names for r in recs[n]]
    flows = expected_flows(recs)
    tot_bytes = sum(r["bytes_fwd"] + r["bytes_rev"] for r in allrecs)
    tot_pkts = sum(r["pkts_fwd"] + r["pkts_rev"] for r in allrecs)

    # -- totals and per application ----------------------------------------------
    top = fleet.cli_json("top", "--group", "app", "--since", "all", "--limit", "50000")
    got = (sum(t["flows"] for t in top), sum(t["packets"] for t in top),
           sum(t["bytes"] for t in top))
    check(got == (len(flows), tot_pkts, tot_bytes),
          f"totals: {len(flows)} flows, {tot_pkts} packets, {tot_bytes} bytes",
          f"vigil top --group app sums to flows={got[0]} packets={got[1]} bytes={got[2]}")
    want_app = collections.Counter()
    for r in allrecs:
        want_app[r.get("app", "")] += r["bytes_fwd"] + r["bytes_rev"]
    got_app = {t.get("app", ""): t["bytes"] for t in top}
    check(got_app == dict(want_app), "bytes per application",
          f"want {dict(want_app)}\ngot  {got_app}")

    # -- per host (out = sent by the host) -------------------------------------------
    want_host = collections.defaultdict(lambda: [0, 0])
    for r in allrecs:
        s, d = canon(r["src_ip"]), canon(r["dst_ip"])
        if s == d:
            continue
        want_host[s][0] += r["bytes_fwd"]
        want_host[s][1] += r["bytes_rev"]
        want_host[d][0] += r["bytes_rev"]
        want_host[d][1] += r["bytes_fwd"]
    top = fleet.cli_json("top", "--group", "host", "--since", "all", "--limit", "50000")
    got_host = {t["host"]: [t["bytes_out"], t["bytes_in"]] for t in top}
    bad = [h for h in want_host if got_host.get(h) != want_host[h]]
    check(not bad and len(got_host) == len(want_host), f"bytes out/in of {len(want_host)} hosts",
          "\n".join(f"{h}: want {want_host[h]} got {got_host.get(h)}" for h in bad[:10]))

    # -- per port (the responder's, with the protocol) and per talker pair ---------------
    want_port = collections.Counter()
    want_pair = collections.Counter()
    for r in allrecs:
        want_port[(r["proto"], r.get("dst_port", 0))] += r["bytes_fwd"] + r["bytes_rev"]
        a, b = sorted((addr16(r["src_ip"]), addr16(r["dst_ip"])))
        want_pair[(a, b)] += r["pkts_fwd"] + r["pkts_rev"]
    top = fleet.cli_json("top", "--group", "port", "--since", "all", "--limit", "50000")
    got_port = {(t["proto"], t["port"]): t["bytes"] for t in top}
    check(got_port == dict(want_port), f"bytes of {len(want_port)} (protocol, port) groups",
          set(got_port.items()) ^ set(want_port.items()))
    top = fleet.cli_json("top", "--group", "pair", "--by", "packets", "--since", "all",
                         "--limit", "50000")
    got_pair = {tuple(sorted((addr16(t["host_a"]), addr16(t["host_b"])))): t["packets"]
                for t in top}
    check(got_pair == dict(want_pair), f"packets of {len(want_pair)} talker pairs",
          f"{len(set(got_pair.items()) ^ set(want_pair.items()))} differ")

    # -- every stored flow -------------------------------------------------------------
    stored = fleet.cli_json("flows", "--since", "all", "--limit", "50000", "--oldest-first")
    by_key = {(f["agent"], f["flow_id"]): f for f in stored}
    check(len(stored) == len(by_key) == len(flows),
          f"vigil flows: {len(flows)} flows, each once", f"got {len(stored)} rows, "
          f"{len(by_key)} distinct")
    diffs = []
    whole = 0
    for key, want in flows.items():
        got = by_key.get(key)
        if got is None:
            diffs.append(f"{key}: missing")
            continue
        for c in ("pkts_fwd", "bytes_fwd", "pkts_rev", "bytes_rev", "start", "end", "src_port",
                  "dst_port", "proto"):
            if got.get(c) != want.get(c):
                diffs.append(f"{key} {c}: want {want.get(c)} got {got.get(c)}")
        for c in ("src_ip", "dst_ip"):
            if got.get(c) != canon(want[c]):
                diffs.append(f"{key} {c}: want {want[c]} got {got.get(c)}")
        if got.get("records") != len(want["records"]):
            diffs.append(f"{key} records: want {len(want['records'])} got {got.get('records')}")
        if len(want["records"]) == 1:  # nothing merged: the very same record
            whole += 1
            mine = dict(got)
            mine.pop("records", None)
            theirs = dict(want["records"][0])
            if mine != theirs:
                keys = sorted(set(mine) | set(theirs))
                diffs.append(f"{key}: " + ", ".join(
                    f"{c}: {theirs.get(c)!r} vs {mine.get(c)!r}" for c in keys
                    if mine.get(c) != theirs.get(c)))
    check(not diffs, f"every flow's counters, times and addresses; {whole} single-record flows "
                     "identical field by field", "\n".join(diffs[:15]))

    # -- filters -------------------------------------------------------------------------
    sample = max(flows.values(), key=lambda f: f["bytes_fwd"] + f["bytes_rev"])
    host = canon(sample["src_ip"])
    filters = [
        (["--host", host], lambda f: canon(f["src_ip"]) == host or canon(f["dst_ip"]) == host),
        (["--port", "443"], lambda f: 443 in (f.get("src_port"), f.get("dst_port"))),
        (["--proto", "udp"], lambda f: f["proto"] == 17),
        (["--app", "dns"], lambda f: any(r.get("app") == "dns" for r in f["records"])),
    ]
    for flt, pred in filters:
        want = {k for k, f in flows.items() if pred(f)}
        rows = fleet.cli_json("flows", *flt, "--since", "all", "--limit", "50000")
        got = {(f["agent"], f["flow_id"]) for f in rows}
        check(got == want and len(rows) == len(want),
              f"vigil flows {' '.join(flt)}: {len(want)} flows",
              f"missing {len(want - got)}, extra {len(got - want)}")
    rows = fleet.cli_json("flows", "--since", "2000-01-01", "--until", "2000-01-02")
    check(rows == [], "an empty range: no flows")

    # -- the table and CSV forms ------------------------------------------------------
    r = fleet.cli("top", "--group", "app", "--since", "all", fmt=None)
    check(r.returncode == 0 and "SHARE" in r.stdout and "APP" in r.stdout,
          "vigil top prints a table by default", r.stdout + r.stderr)
    r = fleet.cli("agents", fmt="csv")
    check(r.returncode == 0 and r.stdout.startswith("agent,last_seen,"),
          "vigil agents --format csv", r.stdout[:300] + r.stderr)

    # -- refusals on the query side ---------------------------------------------------
    r = fleet.cli("agents", key=f"{k}/agents.d/web-01.key")
    check(r.returncode == 1 and "agent key" in r.stderr,
          "a query with an agent key is refused", r.stderr)
    t = time.time()
    r = fleet.cli("agents", key=f"{k}/outsiders/mallory.key")
    check(r.returncode == 1 and "refused this key" in r.stderr and time.time() - t < 5,
          "an analyst key in no allow list is refused at the handshake, at once", r.stderr)
    r = run([fleet.a.cli, "agents", "--connect", "tcp://127.0.0.1:1", "--timeout", "1s",
             "--key", f"{k}/analysts.d/alice.key",
             "--server-key", f"{k}/aggregator/aggregator.pub"])
    check(r.returncode == 1 and "no answer" in r.stderr,
          "no aggregator: a clear message after --timeout", r.stderr)
    r = run([fleet.a.cli, "top", "--group", "nope"])
    check(r.returncode == 2, "a wrong option value exits 2", r.stderr)

    late_agent_gets_in(fleet)


def wait_until(pred, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.2)
    return pred()


def late_agent_gets_in(fleet):
    """An agent refused at the handshake tries again by itself: once its key
    is in the allow list (SIGHUP), it delivers without a restart."""
    k = fleet.keys
    fleet.keygen(f"{k}/outsiders", "late")
    out_json = os.path.join(fleet.work, "late.jsonl")
    err_path = os.path.join(fleet.work, "late.err")
    with open(err_path, "w") as err:
        # reading standard input keeps it running until the pipe closes
        late = subprocess.Popen(fleet.agent_cmd("late", "-", f"{k}/outsiders/late.key", out_json),
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
    try:
        with open(fleet.pcaps["web-01"], "rb") as f:
            late.stdin.write(f.read())
        late.stdin.flush()

        def err_text():
            with open(err_path) as f:
                return f.read()
        check(wait_until(lambda: "refused the handshake" in err_text(), 20),
              "an agent with a key in no allow list is refused", err_text())
        shutil.copy(f"{k}/outsiders/late.pub", f"{k}/agents.d/late.pub")
        fleet.agg_proc.send_signal(signal.SIGHUP)
        check(wait_until(lambda: 'admitted agent "late"' in fleet.log(), 30),
              "once its key is allowed (SIGHUP) the refused agent gets in by itself",
              err_text() + fleet.log()[-1500:])
    finally:
        late.stdin.close()
        rc = late.wait(timeout=60)
    text = err_text()
    check(rc == 0 and "not acknowledged everything" not in text,
          "the late agent exits 0 with everything acknowledged", text)
    agents = {a["agent"]: a for a in fleet.cli_json("agents")}
    want = len(load_records(out_json))
    check(want > 0 and agents.get("late", {}).get("records") == want,
          f"vigil agents: the late agent's {want} records are stored", agents.get("late"))


def garbage_counts(line):
    """The final status line counts each kind of garbage zmq_poke sent."""
    want = {"frames": 1, "undecodable": 2, "bad_version": 1, "invalid": 1, "agent_name": 1,
            "wrong_role": 2}
    got = {k: int(v) for k, v in re.findall(r"\b(\w+)=(\d+)", line)}
    missing = {k: (v, got.get(k, 0)) for k, v in want.items() if got.get(k, 0) < v}
    check(not missing, "garbage counted per reason: " +
          " ".join(f"{k}={got.get(k, 0)}" for k in want), f"{missing}\n{line}")
    check(got.get("disconnects", 0) >= 1, "the oversized message cost its sender the connection",
          line)
    check(got.get("refused_batches", -1) == 0 and got.get("deferred", -1) == 0,
          "no batch refused or deferred", line)


if __name__ == "__main__":
    sys.exit(main())
