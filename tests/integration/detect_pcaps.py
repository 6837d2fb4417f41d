#!/usr/bin/env python3
"""detect_pcaps.py — the real labelled captures in ../shared/pcaps/attacks/
through the real agent and aggregator: each raises what the captures'
README says it contains, and the controls raise nothing.

For each capture: a fresh vigil-aggregator (--insecure, loopback), one
vigil-agent over the file, then `vigil alerts --format json` (the
aggregator judges open windows a few seconds after the last record). An
expectation names the alert types that must be raised, each with its
source and target where the README gives them, and the types that must
not be (on a control: none at all).

usage: detect_pcaps.py --aggregator BIN --cli BIN --agent BIN [--pcaps DIR]
Exit status: 0 passed, 1 failed, 77 skipped (no ../shared/pcaps/attacks).
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

import vigiltest
from vigiltest import check, fail, ok, run

IDLE_FLUSH_S = 2
SCANS = {"port_scan", "horizontal_scan", "fleet_scan", "distributed_scan"}

# file -> (what must be raised: [(type, source, target or None)], what must not)
EXPECT = {
    "nmap-syn-scan-1000-ports.pcapng":
        ([("port_scan", "172.16.0.8", "64.13.134.52")], "others"),
    "dnscat2-dns-tunnel.pcap":
        ([("dns_tunnel", "192.168.220.56", None)], SCANS),
    "rat-periodic-c2-upload.pcapng":
        ([("beacon", "172.16.0.114", "172.16.0.111"),
          ("exfiltration", "172.16.0.114", "172.16.0.111")], SCANS),
    # a covert channel: flagged as a tunnel-like steady contact, never a scan
    "icmp-tunnel.pcap": ([("beacon", "192.168.154.131", "192.168.154.132")], SCANS),
    # controls: nothing at all
    "benign-p2p-gnutella-many-peers.pcap": ([], "all"),
    "nmap-host-discovery-arp-sweep.pcap": ([], "all"),
    "nmap-os-fingerprint.pcapng": ([], "all"),
    "ssh-bruteforce-guess.pcap": ([], "all"),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alerts_of(args, work, pcap):
    """Runs the pipeline over one capture; the alerts, or None on failure."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    tag = os.path.basename(pcap).split(".")[0]
    log_path = os.path.join(work, f"{tag}.aggregator.log")
    try:
        agg, _ = vigiltest.start_logged(
            [args.aggregator, "--listen", endpoint, "--insecure",
             "--db", os.path.join(work, f"{tag}.db"),
             "--flow-retention", "36500d", "--minute-retention", "36500d",
             "--hour-retention", "36500d", "--day-retention", "36500d",
             "--detect-idle-flush", f"{IDLE_FLUSH_S}s"], log_path, "listening on")
    except RuntimeError as e:
        fail(f"{tag}: the aggregator started", str(e))
        return None
    try:
        cmd = [args.agent, "-r", pcap, "--aggregator", endpoint, "--insecure",
               "--spool", os.path.join(work, f"{tag}.spool"), "--agent-name", "probe",
               # wait for the acks as a live agent would: a fresh store's first
               # commit on a busy disk can outlast the default 2 s
               "--stop-grace", "60s"]
        if args.agent_extra:
            cmd += args.agent_extra
        r = run(cmd, timeout=120)
        if r.returncode != 0 or "not acknowledged" in r.stderr:
            fail(f"{tag}: the agent delivered everything", r.stderr[-1500:])
            return None

        def query():
            q = run([args.cli, "alerts", "--since", "all", "--connect", endpoint,
                     "--insecure", "--format", "json"], timeout=30)
            if q.returncode != 0:
                return None
            return [json.loads(line) for line in q.stdout.splitlines() if line.strip()]

        # open windows are judged once no record came for IDLE_FLUSH_S: wait
        # past that, then until the answer stops changing (or the deadline)
        time.sleep(IDLE_FLUSH_S + 1)
        found, stable, deadline = None, 0, time.time() + 30
        while time.time() < deadline and stable < 2:
            time.sleep(1)
            now = query()
            stable = stable + 1 if now is not None and now == found else 0
            found = now
        return found
    finally:
        agg.send_signal(signal.SIGTERM)
        try:
            agg.wait(timeout=20)
        except subprocess.TimeoutExpired:
            agg.kill()
            agg.wait()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_pcaps = os.path.normpath(os.path.join(here, "../../../shared/pcaps/attacks"))
    ap = argparse.ArgumentParser()
    for opt in ("aggregator", "cli", "agent"):
        ap.add_argument(f"--{opt}", required=True)
    ap.add_argument("--pcaps", default=default_pcaps)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if not os.path.isdir(args.pcaps):
        print(f"SKIP: no labelled captures at {args.pcaps} (../shared is not here)")
        return 77
    helptext = run([args.agent, "--help"]).stdout
    # an agent that may be ordered a forensic capture wants its capture
    # folder; these runs need none
    args.agent_extra = ["--no-capture"] if "--no-capture" in helptext else []

    t0 = time.time()
    work = tempfile.mkdtemp(prefix="vigil-detect-pcaps.")
    try:
        for name, (wanted, forbidden) in sorted(EXPECT.items()):
            pcap = os.path.join(args.pcaps, name)
            if not os.path.exists(pcap):
                fail(f"{name}: present in {args.pcaps}")
                continue
            found = alerts_of(args, work, pcap)
            if found is None:
                fail(f"{name}: vigil alerts answered")
                continue
            text = "\n".join(f"{a['type']} {a.get('sources')} -> {a.get('targets')}: "
                             f"{a.get('summary', '')}"[:300] for a in found) or "(no alert)"
            matched = set()
            for kind, src, dst in wanted:
                hits = [i for i, a in enumerate(found)
                        if a["type"] == kind and src in a.get("sources", [])
                        and (dst is None or dst in a.get("targets", []))]
                matched.update(hits)
                check(bool(hits), f"{name}: {kind} {src}" + (f" -> {dst}" if dst else ""), text)
            if forbidden == "all":
                check(not found, f"{name}: a control, no alert", text)
            elif forbidden == "others":
                extra = [a for i, a in enumerate(found) if i not in matched]
                check(not extra, f"{name}: no other alert", text)
            else:
                bad = [a for a in found if a["type"] in forbidden]
                check(not bad, f"{name}: no {'/'.join(sorted(forbidden))}", text)
    finally:
        vigiltest.put_away(work, args.keep)
    return vigiltest.tally(t0)


if __name__ == "__main__":
    raise SystemExit(main())
