#!/usr/bin/env python3
"""detect_netns.py — real attack tools against hosts in network namespaces,
live agents on each host, and the aggregator's scan alerts.

Topology (everything inside namespaces this test makes; nothing is routed
anywhere else, no namespace has a default route):

    scanner ns (10.201.N.1) ──┐
    host ns t1 (10.201.N.11) ─┤ bridge in a "switch" namespace
    host ns t2 (10.201.N.12, ─┤
        plus 10.201.N.64-127) │
    host ns t3 (10.201.N.13) ─┘

One vigil-agent runs live in each host namespace on its own interface (as a
fleet's agents do, each seeing its host's traffic only); they reach the
aggregator, which runs in the test's own namespace, over a ZeroMQ ipc://
socket (a file: it crosses network namespaces). Then, from the scanner:

  nmap -sS -p 1-1000 t1          a SYN port scan          -> port_scan t1
  hping3 -S -p ++1 -c 400 t3     a SYN port sweep         -> port_scan t3
  nmap -sS -Pn -p 445 t2's 64 secondary addresses
                                 one port, many targets   -> horizontal_scan
  nmap -sS -S .2 -p 6 ports over 8 more addresses of each host
                                 each agent sees 8 targets: under every
                                 per-host threshold       -> fleet_scan only
  hping3 -S -a BOT, ten source addresses, 60 ports each of one target
                                 600 ports together       -> distributed_scan
  ping and a short TCP exchange between t1 and t3: ordinary traffic

The agents are stopped (SIGTERM flushes every flow), and the test waits for
`vigil alerts` to list: each expected alert with its source(s) and the
right target(s), no per-host alert for the fleet scanner or any single
distributed source, and no alert that names anyone but the attackers.

usage: detect_netns.py --aggregator BIN --cli BIN --agent BIN [--keep]
Exit status: 0 passed, 1 failed, 77 skipped (not root, no namespaces, no
nmap or hping3).
"""
import argparse
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import vigiltest
from vigiltest import check, fail, ok


def sh(*cmd, check_rc=True, timeout=120):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check_rc and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(77)


class Net:
    """The namespaces, the bridge and the addresses; removed by close()."""

    def __init__(self):
        tag = os.getpid() % 10000
        self.n = os.getpid() % 250 + 1
        self.net = f"10.201.{self.n}"
        self.sw = f"vgsw{tag}"
        self.hosts = {  # namespace -> primary address
            f"vgscan{tag}": f"{self.net}.1",
            f"vgt1{tag}": f"{self.net}.11",
            f"vgt2{tag}": f"{self.net}.12",
            f"vgt3{tag}": f"{self.net}.13",
        }
        self.names = list(self.hosts)
        self.scanner, self.t1, self.t2, self.t3 = self.names
        self.dev = {ns: f"e{i}{tag}" for i, ns in enumerate(self.names)}
        self.t2_extra = [f"{self.net}.{i}" for i in range(64, 128)]
        # fleet scan: 8 more addresses on each host, probed from the
        # scanner's second address; distributed scan: ten sources (more
        # scanner addresses) against one more address of t1
        self.fleet_scanner = f"{self.net}.2"
        self.fleet_targets = {h: [f"{self.net}.{140 + 8 * k + i}" for i in range(8)]
                              for k, h in enumerate((self.t1, self.t2, self.t3))}
        self.bots = [f"{self.net}.{30 + i}" for i in range(10)]
        self.dscan_target = f"{self.net}.170"
        self.made = []

    def up(self):
        sh("ip", "netns", "add", self.sw)
        self.made.append(self.sw)
        sh("ip", "netns", "exec", self.sw, "ip", "link", "add", "br0", "type", "bridge")
        sh("ip", "netns", "exec", self.sw, "ip", "link", "set", "br0", "up")
        for i, (ns, addr) in enumerate(self.hosts.items()):
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            dev, peer = self.dev[ns], f"p{i}{self.dev[ns][2:]}"
            sh("ip", "link", "add", dev, "type", "veth", "peer", "name", peer)
            sh("ip", "link", "set", dev, "netns", ns)
            sh("ip", "link", "set", peer, "netns", self.sw)
            sh("ip", "netns", "exec", self.sw, "ip", "link", "set", peer, "master", "br0")
            sh("ip", "netns", "exec", self.sw, "ip", "link", "set", peer, "up")
            self.run(ns, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1")
            self.run(ns, "ip", "link", "set", "lo", "up")
            self.run(ns, "ip", "addr", "add", f"{addr}/24", "dev", dev)
            self.run(ns, "ip", "link", "set", dev, "up")
        extra = {self.t2: list(self.t2_extra), self.scanner: [self.fleet_scanner, *self.bots],
                 self.t1: [self.dscan_target]}
        for h, addrs in self.fleet_targets.items():
            extra.setdefault(h, []).extend(addrs)
        for ns, addrs in extra.items():
            for a in addrs:
                self.run(ns, "ip", "addr", "add", f"{a}/24", "dev", self.dev[ns])
        # the scanner's probes must reach every port: no rate limit on RSTs
        for ns in self.names:
            self.run(ns, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0")

    def run(self, ns, *cmd, **kw):
        return sh("ip", "netns", "exec", ns, *cmd, **kw)

    def popen(self, ns, cmd, **kw):
        return subprocess.Popen(["ip", "netns", "exec", ns, *cmd], **kw)

    def close(self):
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def wait_for(pred, timeout, step=0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def main():
    ap = argparse.ArgumentParser()
    for opt in ("aggregator", "cli", "agent"):
        ap.add_argument(f"--{opt}", required=True)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        skip("the real-tools detection test needs root (network namespaces)")
    if sh("ip", "netns", "list", check_rc=False).returncode != 0:
        skip("the real-tools detection test needs `ip netns`")
    for tool in ("nmap", "hping3"):
        if not shutil.which(tool):
            skip(f"the real-tools detection test needs {tool} (Debian package {tool})")
    for opt in ("aggregator", "cli", "agent"):
        if not os.access(getattr(args, opt), os.X_OK):
            skip(f"{getattr(args, opt)} is not built")

    t0 = time.time()
    work = tempfile.mkdtemp(prefix="vigil-detect-netns.")
    os.chmod(work, 0o755)
    net = Net()
    procs = []
    agg = None
    endpoint = f"ipc://{work}/aggregator.sock"
    try:
        try:
            net.up()
        except RuntimeError as e:
            skip(f"cannot build the namespaces: {e}")
        ok(f"namespaces up: scanner {net.hosts[net.scanner]}, hosts "
           f"{', '.join(net.hosts[h] for h in (net.t1, net.t2, net.t3))} "
           f"(+{len(net.t2_extra)} addresses on t2)")

        agg_log = open(os.path.join(work, "aggregator.log"), "w")
        agg = subprocess.Popen([args.aggregator, "--listen", endpoint, "--insecure",
                                "--db", os.path.join(work, "db")],
                               stdout=agg_log, stderr=subprocess.STDOUT)
        if not wait_for(lambda: os.path.exists(f"{work}/aggregator.sock"), 15, 0.05):
            raise RuntimeError("the aggregator did not start")

        # no forensic capture is ordered here: no capture folder needed
        no_capture = ["--no-capture"] if "--no-capture" in sh(args.agent, "--help").stdout else []
        agents = {}
        for name in (net.t1, net.t2, net.t3):
            label = name[2:4]  # t1, t2, t3
            log = open(os.path.join(work, f"agent-{label}.log"), "w")
            agents[label] = net.popen(
                name, [args.agent, "-i", net.dev[name], "--aggregator", endpoint, "--insecure",
                       "--spool", os.path.join(work, f"spool-{label}"), "--agent-name",
                       f"host-{label}", "--local-net", f"{net.net}.0/24",
                       "--batch-interval", "1s", *no_capture],
                stdout=log, stderr=subprocess.STDOUT)
            procs.append(agents[label])
        time.sleep(1.5)  # the live handles are open
        check(all(p.poll() is None for p in agents.values()), "three live agents running")

        scanner = net.scanner
        t1, t2, t3 = (net.hosts[h] for h in (net.t1, net.t2, net.t3))
        # ordinary traffic first: a ping and a short TCP exchange t1 -> t3
        net.run(net.t1, "ping", "-c", "3", "-i", "0.2", t3)
        srv = net.popen(net.t3, [sys.executable, "-c",
                                 "import socket;s=socket.socket();"
                                 "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
                                 f"s.bind(('{t3}',8080));s.listen();c,_=s.accept();"
                                 "c.recv(100);c.sendall(b'ok');c.close()"])
        time.sleep(0.3)
        net.run(net.t1, sys.executable, "-c",
                f"import socket;c=socket.create_connection(('{t3}',8080),5);"
                "c.sendall(b'hello');c.recv(10);c.close()")
        srv.wait(timeout=10)

        r = net.run(scanner, "nmap", "-n", "-Pn", "-sS", "-p", "1-1000", "-T4",
                    "--max-retries", "1", t1, timeout=300)
        check("Nmap done" in r.stdout, f"nmap -sS -p 1-1000 {t1} ran", r.stdout[-800:])
        r = net.run(scanner, "hping3", "-S", "-p", "++1", "-c", "400", "-i", "u3000", t3,
                    check_rc=False, timeout=120)
        check("400 packets transmitted" in r.stdout + r.stderr,
              f"hping3 -S -p ++1 -c 400 {t3} ran", (r.stdout + r.stderr)[-800:])
        r = net.run(scanner, "nmap", "-n", "-Pn", "-sS", "-p", "445", "-T4", "--max-retries",
                    "1", *net.t2_extra, timeout=300)
        check("Nmap done" in r.stdout, f"nmap -sS -p 445 over {len(net.t2_extra)} addresses ran",
              r.stdout[-800:])

        # the fleet scan: 6 ports on 24 hosts behind three agents; each agent
        # sees 8 targets, far under every per-host threshold
        fleet = [a for addrs in net.fleet_targets.values() for a in addrs]
        r = net.run(scanner, "nmap", "-n", "-Pn", "-sS", "-S", net.fleet_scanner, "-e",
                    net.dev[scanner], "-p", "21,22,23,80,443,3389", "-T4", "--max-retries", "1",
                    *fleet, timeout=300)
        check("Nmap done" in r.stdout,
              f"nmap -sS -S {net.fleet_scanner} -p 6 ports over {len(fleet)} hosts ran",
              r.stdout[-800:])
        # the distributed scan: ten sources, 60 ports each, 600 ports of one target
        bad = []
        for i, bot in enumerate(net.bots):
            r = net.run(scanner, "hping3", "-S", "-a", bot, "-p", f"++{2000 + 60 * i}", "-c", "60",
                        "-i", "u2000", net.dscan_target, check_rc=False, timeout=120)
            if "60 packets transmitted" not in r.stdout + r.stderr:
                bad.append((r.stdout + r.stderr)[-300:])
        check(not bad, f"hping3 -a BOT x{len(net.bots)}: 60 ports each of {net.dscan_target} ran",
              "\n".join(bad))

        for p in agents.values():
            p.send_signal(signal.SIGTERM)
        for label, p in agents.items():
            p.wait(timeout=60)
        check(all(p.returncode == 0 for p in agents.values()),
              "the agents stopped cleanly and flushed every flow",
              {k: p.returncode for k, p in agents.items()})

        def cli(*a):
            return sh(args.cli, *a, "--connect", endpoint, "--insecure", "--format", "json",
                      check_rc=False, timeout=60)

        def alerts():
            r = cli("alerts", "--since", "all")
            if r.returncode != 0:
                return None
            return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

        def want(found):
            if not found:
                return False
            types = {a["type"] for a in found}
            return {"port_scan", "horizontal_scan", "fleet_scan", "distributed_scan"} <= types

        found = wait_for(lambda: want(alerts()) and alerts(), 30) or alerts() or []
        text = "\n".join(json.dumps(a)[:300] for a in found)
        scn = net.hosts[scanner]

        def raised(kind, target=None, targets_min=0):
            for a in found:
                if a["type"] != kind or scn not in a.get("sources", []):
                    continue
                tg = a.get("targets", [])
                if target and target not in tg:
                    continue
                if targets_min and len(tg) < targets_min:
                    continue
                return True
            return False

        check(raised("port_scan", t1), f"nmap SYN scan: port_scan {scn} -> {t1}", text)
        check(raised("port_scan", t3), f"hping3 sweep: port_scan {scn} -> {t3}", text)
        extra = ipaddress.ip_address(net.t2_extra[0])
        check(any(a["type"] == "horizontal_scan" and scn in a.get("sources", []) and
                  any(ipaddress.ip_address(t) >= extra for t in a.get("targets", []))
                  for a in found),
              f"nmap -p 445 sweep: horizontal_scan from {scn}", text)
        fs = net.fleet_scanner
        fleet_alerts = [a for a in found if fs in a.get("sources", [])]
        # the lists name a few addresses; the evidence counts them all
        check(any(a["type"] == "fleet_scan" and len(a.get("agents", [])) >= 3 and
                  set(a.get("targets", [])) <= set(fleet) and
                  a.get("evidence", {}).get("distinct_targets", 0) >= 20 for a in fleet_alerts),
              f"nmap over 24 hosts behind 3 agents: fleet_scan from {fs}, naming the agents",
              text)
        check(not [a for a in fleet_alerts if a["type"] in ("port_scan", "horizontal_scan")],
              f"no per-host scan alert for {fs}: each agent saw too little",
              "\n".join(json.dumps(a)[:300] for a in fleet_alerts))
        dist = [a for a in found if a["type"] == "distributed_scan"
                and net.dscan_target in a.get("targets", [])]
        check(any(set(a.get("sources", [])) <= set(net.bots) and
                  a.get("evidence", {}).get("distinct_sources", 0) >= 5 for a in dist),
              f"ten sources over one target: distributed_scan on {net.dscan_target}", text)
        check(not [a for a in found if a["type"] == "port_scan" and
                   set(a.get("sources", [])) & set(net.bots)],
              "no port_scan for any one of the ten sources (each under the threshold)", text)
        attackers = {scn, fs, *net.bots}
        wrong = [a for a in found if not set(a.get("sources", [])) <= attackers]
        check(not wrong, "no alert names a source other than the attackers",
              "\n".join(json.dumps(a)[:300] for a in wrong))
    except RuntimeError as e:
        fail("detect_netns aborted", str(e))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if agg and agg.poll() is None:
            agg.send_signal(signal.SIGTERM)
            try:
                agg.wait(timeout=15)
            except subprocess.TimeoutExpired:
                agg.kill()
        net.close()
        if vigiltest.failed:
            for f in sorted(os.listdir(work)):
                if f.endswith(".log"):
                    print(f"---- {f} (last 15 lines) ----")
                    with open(os.path.join(work, f)) as fh:
                        for line in fh.read().splitlines()[-15:]:
                            print("    " + line)
        vigiltest.put_away(work, args.keep)
    return vigiltest.tally(t0)


if __name__ == "__main__":
    sys.exit(main())
