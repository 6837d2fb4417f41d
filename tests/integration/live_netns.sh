#!/usr/bin/env bash
# live_netns.sh — vigil-agent capturing live traffic between two network
# namespaces joined by a veth pair.
#
# usage: live_netns.sh AGENT
#
# Namespace A (10.200.N.1/24, fd00:7669:6769:N::1/64) runs the agent on its
# veth end and sends to namespace B (10.200.N.2, fd00:7669:6769:N::2):
#   - ping -c 3 over IPv4 and over IPv6,
#   - a TCP transfer of TCP_BYTES bytes to a one-shot server, which answers
#     with a fixed line and closes,
#   - one DNS query over UDP for QNAME to a one-shot responder.
# Then, after a silence longer than the idle timeout (2 s here), it stops the
# agent with SIGTERM and checks the JSON records: the ICMP and DNS flows were
# ended by the clock (end_reason idle, not shutdown), and exactly
# these five flows — ICMP echo 3+3 packets of 84 bytes, ICMPv6 echo 3+3 of 104
# bytes, the TCP flow in state SF whose bytes are exactly the payload plus
# one IP+TCP header per packet, the DNS flow 1+1 with dns_qname = QNAME — and
# no other flow, except ICMPv6 from or to a link-local, multicast or
# unspecified address (MLD reports and router solicitations the kernel sends
# on a new link: noise, not traffic of the test).
#
# Packet counts of the TCP flow are not fixed: veth segmentation offload and
# delayed ACKs decide them. The byte check ties them together instead.
# Neighbour entries are set permanent and duplicate address detection is off,
# so no NS/NA ever flows between the two test addresses.
#
# All traffic stays between the two namespaces this script makes: nothing is
# routed anywhere else (the namespaces have no default route).
#
# Exit status: 0 passed, 1 failed, 77 skipped (not root, no `ip netns`, or a
# tool missing).
set -uo pipefail

agent=${1:?usage: live_netns.sh AGENT}
skip() { echo "SKIP: $*"; exit 77; }

if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null || ! ip netns list >/dev/null 2>&1; then
    skip "live capture test needs root and network namespaces"
fi
for tool in python3 ping timeout; do
    command -v $tool >/dev/null || skip "live capture test needs $tool"
done

id=$$
n=$((id % 250 + 1))
ns_a="vigilA$id"
ns_b="vigilB$id"
veth_a="vga$id"
veth_b="vgb$id"
ip4_a="10.200.$n.1"
ip4_b="10.200.$n.2"
ip6_a="fd00:7669:6769:$n::1"
ip6_b="fd00:7669:6769:$n::2"
tcp_port=8080
tcp_bytes=100000
qname="vigil-live-test.example"
idle_s=2
work=$(mktemp -d "${TMPDIR:-/tmp}/vigil-live.XXXXXX")
pids=()

any_alive() {
    local p
    for p in "$@"; do kill -0 "$p" 2>/dev/null && return 0; done
    return 1
}
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local p _
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for _ in $(seq 20); do any_alive "${pids[@]}" || break; sleep 0.1; done
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    ip netns del "$ns_a" 2>/dev/null
    ip netns del "$ns_b" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

in_a() { ip netns exec "$ns_a" "$@"; }
in_b() { ip netns exec "$ns_b" "$@"; }
die() { echo "FAIL: $*"; [ -s "$work/agent.err" ] && sed 's/^/    agent| /' "$work/agent.err"; exit 1; }

# --- the two hosts ---------------------------------------------------------
ip netns add "$ns_a" || skip "cannot create a network namespace"
ip netns add "$ns_b" || skip "cannot create a network namespace"
ip link add "$veth_a" type veth peer name "$veth_b" || die "cannot create a veth pair"
ip link set "$veth_a" netns "$ns_a"
ip link set "$veth_b" netns "$ns_b"
for side in a b; do
    ns_var=ns_$side veth_var=veth_$side ip4_var=ip4_$side ip6_var=ip6_$side
    ns=${!ns_var} dev=${!veth_var}
    ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$dev.accept_dad=0" \
        "net.ipv6.conf.$dev.accept_ra=0" "net.ipv6.conf.$dev.router_solicitations=0" 2>/dev/null
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" ip addr add "${!ip4_var}/24" dev "$dev"
    ip netns exec "$ns" ip addr add "${!ip6_var}/64" dev "$dev" nodad
    ip netns exec "$ns" ip link set "$dev" up
done
mac_a=$(in_a cat "/sys/class/net/$veth_a/address")
mac_b=$(in_b cat "/sys/class/net/$veth_b/address")
in_a ip neigh replace "$ip4_b" lladdr "$mac_b" dev "$veth_a" nud permanent
in_a ip -6 neigh replace "$ip6_b" lladdr "$mac_b" dev "$veth_a" nud permanent
in_b ip neigh replace "$ip4_a" lladdr "$mac_a" dev "$veth_b" nud permanent
in_b ip -6 neigh replace "$ip6_a" lladdr "$mac_a" dev "$veth_b" nud permanent
tcp_ts=$(in_a cat /proc/sys/net/ipv4/tcp_timestamps 2>/dev/null || echo 1)

# --- servers in B (one-shot, bounded in time) ----------------------------------
cat >"$work/servers.py" <<'PY'
import socket, struct, sys, threading

ip4_b, tcp_port, qname = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def tcp_server(ls):
    conn, _ = ls.accept()
    conn.settimeout(20)
    got = 0
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        got += len(chunk)
    conn.sendall(b"received %d\n" % got)
    conn.close()

def dns_server(us):
    data, peer = us.recvfrom(2048)
    # Echo the question, answer with one A record pointing at ourselves.
    qid = data[:2]
    question = data[12:]
    answer = (b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(ip4_b))
    us.sendto(qid + b"\x81\x80" + struct.pack(">HHHH", 1, 1, 0, 0) + question + answer, peer)

ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((ip4_b, tcp_port))
ls.listen(1)
ls.settimeout(30)
us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
us.bind((ip4_b, 53))
us.settimeout(30)
threads = [threading.Thread(target=tcp_server, args=(ls,)),
           threading.Thread(target=dns_server, args=(us,))]
for t in threads:
    t.start()
print("ready", flush=True)
for t in threads:
    t.join()
PY
# Started directly (not through in_b) so $! is the process itself: `ip netns
# exec` execs its command.
ip netns exec "$ns_b" timeout 40 python3 "$work/servers.py" "$ip4_b" "$tcp_port" "$qname" >"$work/servers.out" 2>&1 &
pids+=("$!")
for _ in $(seq 50); do grep -q ready "$work/servers.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$work/servers.out" || die "servers in $ns_b did not start: $(cat "$work/servers.out")"

# --- the agent in A ---------------------------------------------------------------
ip netns exec "$ns_a" "$agent" -i "$veth_a" --json "$work/flows.jsonl" --idle-timeout "${idle_s}s" \
    >"$work/agent.out" 2>"$work/agent.err" &
agent_pid=$!
pids+=("$agent_pid")
sleep 1.5 # let the capture open; there is no readiness signal
kill -0 $agent_pid 2>/dev/null || die "agent exited at start"

# --- traffic from A to B -------------------------------------------------------------
in_a ping -n -q -c 3 -i 0.2 -W 2 "$ip4_b" >/dev/null || die "ping $ip4_b failed"
in_a ping -6 -n -q -c 3 -i 0.2 -W 2 "$ip6_b" >/dev/null || die "ping -6 $ip6_b failed"
in_a timeout 20 python3 - "$ip4_b" "$tcp_port" "$tcp_bytes" "$qname" >"$work/client.out" 2>&1 <<'PY' || die "client failed: $(cat "$work/client.out")"
import socket, struct, sys
ip4_b, port, nbytes, qname = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

s = socket.create_connection((ip4_b, port), timeout=10)
s.sendall(b"v" * nbytes)
s.shutdown(socket.SHUT_WR)
reply = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    reply += chunk
s.close()
assert reply == b"received %d\n" % nbytes, reply
print("tcp_reply_len", len(reply))

q = struct.pack(">HHHHHH", 0x7667, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in qname.split(".")) + b"\x00"
q += struct.pack(">HH", 1, 1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(5)
u.sendto(q, (ip4_b, 53))
resp, _ = u.recvfrom(2048)
assert resp[:2] == q[:2], resp
print("dns_ok")
PY
# Silence for longer than the idle timeout: the clock alone must end the
# flows that saw no packet since (a silent link hands no packet over).
sleep $((idle_s + 2))
kill -TERM $agent_pid
for _ in $(seq 100); do any_alive $agent_pid || break; sleep 0.1; done
any_alive $agent_pid && die "agent still running 10 s after SIGTERM"
wait $agent_pid
agent_rc=$?
[ $agent_rc -eq 0 ] || die "agent exited with $agent_rc after SIGTERM"
grep -q '^vigil-agent: summary:' "$work/agent.err" || die "agent printed no summary line"
reply_len=$(awk '/tcp_reply_len/ {print $2}' "$work/client.out")

# --- the check ---------------------------------------------------------------------------
python3 - "$work/flows.jsonl" "$ip4_a" "$ip4_b" "$ip6_a" "$ip6_b" "$tcp_port" "$tcp_bytes" \
    "$reply_len" "$qname" "$tcp_ts" <<'PY'
import collections, ipaddress, json, sys

path, ip4_a, ip4_b, ip6_a, ip6_b = sys.argv[1:6]
tcp_port, tcp_bytes, reply_len, qname, tcp_ts = sys.argv[6:11]
tcp_port, tcp_bytes, reply_len, tcp_ts = int(tcp_port), int(tcp_bytes), int(reply_len), int(tcp_ts)
errors = []

flows = collections.OrderedDict()  # conversation -> summed record
for line in open(path, encoding="utf-8"):
    if not line.strip():
        continue
    r = json.loads(line)
    key = (r["proto"], r["src_ip"], r.get("src_port"), r["dst_ip"], r.get("dst_port"))
    if key not in flows:
        flows[key] = dict(r, records=0)
        for f in ("pkts_fwd", "bytes_fwd", "pkts_rev", "bytes_rev"):
            flows[key][f] = 0
    acc = flows[key]
    acc["records"] += 1
    for f in ("pkts_fwd", "bytes_fwd", "pkts_rev", "bytes_rev"):
        acc[f] += int(r.get(f, 0))
    for f in ("state", "dns_qname", "app", "end_reason"):
        if r.get(f) is not None and (r.get("final", True) or f not in acc):
            acc[f] = r[f]

def noise(f):
    if f["proto"] != 58:
        return False
    addrs = [ipaddress.ip_address(f["src_ip"]), ipaddress.ip_address(f["dst_ip"])]
    return any(a.is_link_local or a.is_multicast or a.is_unspecified for a in addrs)

def take(pred, what):
    hits = [k for k, f in flows.items() if pred(f)]
    if len(hits) != 1:
        errors.append("%s: %d matching flows, want 1" % (what, len(hits)))
        return None
    return flows.pop(hits[0])

def expect(f, what, **want):
    for k, v in want.items():
        if f.get(k) != v:
            errors.append("%s: %s is %r, want %r" % (what, k, f.get(k), v))

icmp = take(lambda f: f["proto"] == 1 and f["src_ip"] == ip4_a and f["dst_ip"] == ip4_b,
            "ICMP echo %s -> %s" % (ip4_a, ip4_b))
if icmp:
    expect(icmp, "ICMP echo", pkts_fwd=3, pkts_rev=3, bytes_fwd=3 * 84, bytes_rev=3 * 84,
           end_reason="idle")

icmp6 = take(lambda f: f["proto"] == 58 and f["src_ip"] == ip6_a and f["dst_ip"] == ip6_b,
             "ICMPv6 echo %s -> %s" % (ip6_a, ip6_b))
if icmp6:
    expect(icmp6, "ICMPv6 echo", pkts_fwd=3, pkts_rev=3, bytes_fwd=3 * 104, bytes_rev=3 * 104)

tcp = take(lambda f: f["proto"] == 6 and f["src_ip"] == ip4_a and f["dst_ip"] == ip4_b
           and f.get("dst_port") == tcp_port, "TCP %s -> %s:%d" % (ip4_a, ip4_b, tcp_port))
if tcp:
    expect(tcp, "TCP", state="SF")
    # Every segment: 20 bytes IPv4 + 20 TCP + 12 of timestamps (when on). The
    # SYN (and the SYN-ACK) carries MSS, SACK-permitted and window scale too:
    # 8 bytes more than a timestamped segment, 12 more than a plain one.
    hdr, syn_extra = (52, 8) if tcp_ts else (40, 12)
    for d, payload in (("fwd", tcp_bytes), ("rev", reply_len)):
        pk, by = tcp["pkts_" + d], tcp["bytes_" + d]
        want = payload + hdr * pk + syn_extra
        if pk < 2 or by != want:
            errors.append("TCP: bytes_%s is %d for %d packets, want %d (payload %d + headers)"
                          % (d, by, pk, want, payload))

dns = take(lambda f: f["proto"] == 17 and f["src_ip"] == ip4_a and f["dst_ip"] == ip4_b
           and f.get("dst_port") == 53, "DNS %s -> %s:53" % (ip4_a, ip4_b))
if dns:
    expect(dns, "DNS", pkts_fwd=1, pkts_rev=1, dns_qname=qname, end_reason="idle")

for k, f in flows.items():
    if not noise(f):
        errors.append("unexpected flow: %s" % json.dumps({x: f.get(x) for x in (
            "proto", "src_ip", "src_port", "dst_ip", "dst_port", "pkts_fwd", "pkts_rev",
            "icmp_type")}))
    else:
        print("noise (ignored): proto %s %s -> %s type %s" % (
            f["proto"], f["src_ip"], f["dst_ip"], f.get("icmp_type")))

for e in errors:
    print("FAIL: " + e)
if not errors:
    print("ok: ICMP, ICMPv6, TCP (%d+%d pkts, SF) and DNS (%s) flows as sent"
          % (tcp["pkts_fwd"], tcp["pkts_rev"], qname))
sys.exit(1 if errors else 0)
PY
rc=$?
if [ $rc -ne 0 ]; then
    echo "--- agent records:"
    cat "$work/flows.jsonl"
    echo "--- agent stderr:"
    cat "$work/agent.err"
fi
grep '^vigil-agent: summary:' "$work/agent.err"
exit $rc
