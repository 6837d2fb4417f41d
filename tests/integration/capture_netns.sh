#!/usr/bin/env bash
# capture_netns.sh — forensic capture ordered through the CLI, end to end,
# with real traffic between network namespaces.
#
# usage: capture_netns.sh AGGREGATOR CLI AGENT
#
# Namespace H holds a bridge (br0, 10.202.N.1) with two peers on it, P1
# (.2) and P2 (.3), each through a veth pair. H runs vigil-aggregator on its
# loopback (CURVE, allow lists), vigil-agent capturing live on br0, and the
# CLI. Keys: web-01 (the agent), alice (analyst with the capture right), bob
# (analyst without it), mallory (in no list).
#
# What is checked:
#   1. bob cannot order a capture (refused with a message), mallory cannot
#      even connect, a filter that does not compile is refused with
#      libpcap's message; none of these leaves a job or a file;
#   2. alice orders a capture of "host P1" while both peers ping H and send
#      it TCP data, then stops it: the files hold exactly the packets of an
#      independent tshark capture with the same filter on the same
#      interface over a longer window (same count, same packets, every one
#      to or from P1), are 0600 in a 0700 directory, and `capture list`
#      reports their names, sizes and SHA-256 (checked with sha256sum);
#   3. a byte cap of 20 KiB on P2's traffic is never passed (the files on
#      disk and the reported bytes), the capture ends "done";
#   4. a port scan from P2 raises a port_scan alert, and the aggregator's
#      --capture-on-alert port_scan orders a capture of its hosts on web-01
#      (ordered_by policy:port_scan, the alert named in its reason);
#   5. the agent's quota (1 MiB, every file in the directory) is never
#      passed by a capture without a byte cap;
#   6. a capture running when the agent stops is reported stopped at once
#      (its last status); an order given while the agent is down reaches it when it comes
#      back; one whose expiry passes first ends "expired".
#
# Neighbour entries are permanent (no ARP), IPv6 is off on the test links,
# so the only traffic is the test's own.
#
# Exit status: 0 passed, 1 failed, 77 skipped (not root, no `ip netns`, or a
# tool missing).
set -uo pipefail

aggregator=${1:?usage: capture_netns.sh AGGREGATOR CLI AGENT}
cli=${2:?usage: capture_netns.sh AGGREGATOR CLI AGENT}
agent=${3:?usage: capture_netns.sh AGGREGATOR CLI AGENT}
skip() { echo "SKIP: $*"; exit 77; }

if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null || ! ip netns list >/dev/null 2>&1; then
    skip "the forensic capture test needs root and network namespaces"
fi
for tool in python3 ping timeout tshark sha256sum; do
    command -v $tool >/dev/null || skip "the forensic capture test needs $tool"
done

id=$$
n=$((id % 250 + 1))
ns_h="vcapH$id"
ns_1="vcap1$id"
ns_2="vcap2$id"
ip_h="10.202.$n.1"
ip_1="10.202.$n.2"
ip_2="10.202.$n.3"
port=$((17000 + id % 1000))
work=$(mktemp -d "${TMPDIR:-/tmp}/vigil-capture.XXXXXX")
pids=()
agent_pid=""

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.3
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    ip netns del "$ns_h" 2>/dev/null
    ip netns del "$ns_1" 2>/dev/null
    ip netns del "$ns_2" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

in_h() { ip netns exec "$ns_h" "$@"; }
in_1() { ip netns exec "$ns_1" "$@"; }
in_2() { ip netns exec "$ns_2" "$@"; }
die() {
    echo "FAIL: $*"
    for f in aggregator.err agent.err; do
        [ -s "$work/$f" ] && { echo "--- $f"; grep -v "admitted analyst" "$work/$f" | tail -40; }
    done
    exit 1
}

# --- the network ---------------------------------------------------------------
for ns in "$ns_h" "$ns_1" "$ns_2"; do
    ip netns add "$ns" || skip "cannot create a network namespace"
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
in_h ip link add br0 type bridge
in_h sysctl -qw net.ipv6.conf.br0.disable_ipv6=1 2>/dev/null
in_h ip addr add "$ip_h/24" dev br0
for k in 1 2; do
    ns_var=ns_$k ip_var=ip_$k
    ip link add "vch$k$id" type veth peer name "vcp$k$id" || die "cannot create a veth pair"
    ip link set "vch$k$id" netns "$ns_h"
    ip link set "vcp$k$id" netns "${!ns_var}"
    in_h ip link set "vch$k$id" master br0
    in_h ip link set "vch$k$id" up
    ip netns exec "${!ns_var}" ip addr add "${!ip_var}/24" dev "vcp$k$id"
    ip netns exec "${!ns_var}" ip link set "vcp$k$id" up
done
in_h ip link set br0 up
mac_h=$(in_h cat /sys/class/net/br0/address)
for k in 1 2; do
    ns_var=ns_$k ip_var=ip_$k
    mac=$(ip netns exec "${!ns_var}" cat "/sys/class/net/vcp$k$id/address")
    ip netns exec "${!ns_var}" ip neigh replace "$ip_h" lladdr "$mac_h" dev "vcp$k$id" nud permanent
    in_h ip neigh replace "${!ip_var}" lladdr "$mac" dev br0 nud permanent
done
sleep 1 # the bridge port becomes forwarding
in_1 ping -n -q -c 1 -W 2 "$ip_h" >/dev/null || die "P1 cannot reach H"
in_2 ping -n -q -c 1 -W 2 "$ip_h" >/dev/null || die "P2 cannot reach H"

# --- keys and allow lists --------------------------------------------------------
mkdir -p "$work/keys" "$work/agents" "$work/analysts" "$work/capture-allow"
for name in aggregator web-01 alice bob mallory; do
    "$cli" keygen --out "$work/keys" --name $name >/dev/null || die "keygen $name"
done
cp "$work/keys/web-01.pub" "$work/agents/"
cp "$work/keys/alice.pub" "$work/keys/bob.pub" "$work/analysts/"
cp "$work/keys/alice.pub" "$work/capture-allow/"

# --- the daemons in H --------------------------------------------------------------
ip netns exec "$ns_h" "$aggregator" --listen "tcp://127.0.0.1:$port" --db "$work/db" \
    --key "$work/keys/aggregator.key" --agents-allow "$work/agents" \
    --analysts-allow "$work/analysts" --capture-allow "$work/capture-allow" \
    --capture-on-alert port_scan --capture-on-alert-duration 20s \
    --capture-on-alert-max-bytes 64K --status-interval 0 >"$work/aggregator.out" 2>"$work/aggregator.err" &
agg_pid=$!
pids+=("$agg_pid")

start_agent() {
    ip netns exec "$ns_h" "$agent" -i br0 --aggregator "tcp://127.0.0.1:$port" \
        --key "$work/keys/web-01.key" --server-key "$work/keys/aggregator.pub" \
        --spool "$work/spool" --capture-dir "$work/pcaps" --capture-quota 1M \
        --idle-timeout 2s --tcp-close-timeout 1s >>"$work/agent.out" 2>>"$work/agent.err" &
    agent_pid=$!
    pids+=("$agent_pid")
}
stop_agent() {
    kill -TERM "$agent_pid"
    for _ in $(seq 100); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.1; done
    wait "$agent_pid" 2>/dev/null
}
start_agent

as() { # as NAME vigil-arguments...
    local who=$1
    shift
    local sub=$1
    shift
    in_h "$cli" capture "$sub" "$@" --connect "tcp://127.0.0.1:$port" \
        --key "$work/keys/$who.key" --server-key "$work/keys/aggregator.pub" --timeout 5s
}
# state of a capture: "state packets bytes files"
state_of() {
    as alice list --id "$1" --format csv | python3 -c '
import csv, sys
rows = list(csv.DictReader(sys.stdin))
print(" ".join((rows[0]["state"], rows[0]["packets"], rows[0]["bytes"], rows[0]["files"]))
      if rows else "none")'
}
wait_state() { # wait_state ID STATE... : until the capture is in one of them (15 s)
    local cid=$1 s
    shift
    for _ in $(seq 150); do
        s=$(state_of "$cid" | cut -d' ' -f1)
        for want in "$@"; do [ "$s" = "$want" ] && return 0; done
        sleep 0.1
    done
    die "capture $cid is '$s', not $* after 15 s"
}
order() { # order FILTER ARGS... -> prints the capture id
    as alice start --agent web-01 --filter "$1" --format csv "${@:2}" |
        python3 -c 'import csv,sys; print(next(csv.DictReader(sys.stdin))["capture_id"])'
}
tcp_send() { # tcp_send NS BYTES: one TCP transfer to H's sink
    ip netns exec "$1" timeout 20 python3 -c '
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"x" * int(sys.argv[3]))
s.shutdown(socket.SHUT_WR)
s.recv(16)
s.close()' "$ip_h" 9100 "$2" || die "TCP transfer from $1 failed"
}

# A sink in H: accepts connections, reads everything, answers "ok".
ip netns exec "$ns_h" timeout 300 python3 -c '
import socket, threading
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", 9100)); ls.listen(16)
def serve(c):
    while c.recv(65536):
        pass
    c.sendall(b"ok"); c.close()
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()' &
pids+=("$!")

# The agent is known once its status reached the aggregator.
for _ in $(seq 100); do
    grep -q "connected to the aggregator" "$work/agent.err" 2>/dev/null && break
    sleep 0.1
done
grep -q "connected to the aggregator" "$work/agent.err" || die "the agent did not connect"
sleep 0.5

# --- 1. who may order -----------------------------------------------------------------
out=$(as bob start --agent web-01 --filter "host $ip_1" 2>&1) && die "bob ordered a capture: $out"
echo "$out" | grep -q "may not order captures" || die "bob's refusal does not say why: $out"
grep -q 'capture order REFUSED: analyst "bob"' "$work/aggregator.err" || die "bob's attempt is not logged"
out=$(as mallory start --agent web-01 --filter "host $ip_1" 2>&1) && die "mallory ordered a capture: $out"
out=$(as alice start --agent web-01 --filter "host and and" 2>&1) && die "a broken filter was accepted"
echo "$out" | grep -q "syntax error" || die "no libpcap message for a broken filter: $out"
out=$(as alice start --agent nobody-01 --filter "host $ip_1" 2>&1) && die "an unknown agent was accepted"
echo "$out" | grep -q "never connected" || die "no reason given for an unknown agent: $out"
# SIGHUP re-reads the capture right with the allow lists: bob gets it (his
# order then fails only on the unknown agent), then loses it again.
cp "$work/keys/bob.pub" "$work/capture-allow/"
kill -HUP "$agg_pid"
for _ in $(seq 50); do grep -q "SIGHUP: 2 analysts may order" "$work/aggregator.err" && break; sleep 0.1; done
out=$(as bob start --agent nobody-01 --filter "host $ip_1" 2>&1) && die "an unknown agent was accepted"
echo "$out" | grep -q "never connected" || die "bob still lacks the right after SIGHUP: $out"
rm "$work/capture-allow/bob.pub"
kill -HUP "$agg_pid"
for _ in $(seq 50); do grep -q "SIGHUP: 1 analysts may order" "$work/aggregator.err" && break; sleep 0.1; done
out=$(as bob start --agent web-01 --filter "host $ip_1" 2>&1) && die "bob ordered a capture: $out"
echo "$out" | grep -q "may not order captures" || die "bob kept the right after SIGHUP: $out"
[ -z "$(as alice list --format csv | tail -n +2)" ] || die "refused orders left jobs"
[ -z "$(ls -A "$work/pcaps")" ] || die "refused orders left files"
echo "ok: bob refused, mallory refused, a bad filter and an unknown agent refused;"\
    "SIGHUP grants and takes back the capture right"

# --- 2. exactly what the filter matches -----------------------------------------------
# Started directly (not through in_h) so $! is tshark itself: `ip netns exec` execs it.
ip netns exec "$ns_h" tshark -q -i br0 -f "host $ip_1" -w "$work/ref.pcap" >"$work/tshark.out" 2>&1 &
tshark_pid=$!
pids+=("$tshark_pid")
for _ in $(seq 100); do grep -q "Capturing on" "$work/tshark.out" && break; sleep 0.1; done
grep -q "Capturing on" "$work/tshark.out" || die "tshark did not start: $(cat "$work/tshark.out")"
cid=$(order "host $ip_1" --duration 2m) || die "alice could not order a capture"
[ -n "$cid" ] || die "no capture id"
wait_state "$cid" running
grep -q "capture ordered by analyst:alice.*filter 'host $ip_1'.*web-01=$cid" "$work/aggregator.err" ||
    die "the order is not logged with who and what"
in_1 ping -n -q -c 5 -i 0.2 "$ip_h" >/dev/null || die "ping from P1"
in_2 ping -n -q -c 5 -i 0.2 "$ip_h" >/dev/null || die "ping from P2"
tcp_send "$ns_1" 60000
tcp_send "$ns_2" 60000
sleep 1
as alice stop "$cid" >/dev/null || die "alice could not stop $cid"
wait_state "$cid" stopped
sleep 0.5
kill -INT "$tshark_pid"
wait "$tshark_pid" 2>/dev/null
read -r st packets bytes nfiles <<<"$(state_of "$cid")"
files=("$work/pcaps/$cid"-*.pcap)
[ -e "${files[0]}" ] || die "capture $cid left no file"
[ "${#files[@]}" -eq "$nfiles" ] || die "${#files[@]} files on disk, $nfiles reported"
disk_bytes=$(cat "${files[@]}" | wc -c)
[ "$disk_bytes" -eq "$bytes" ] || die "$disk_bytes bytes on disk, $bytes reported"
[ "$(stat -c %a "$work/pcaps")" = 700 ] || die "the capture directory is not 0700"
for f in "${files[@]}"; do
    [ "$(stat -c %a "$f")" = 600 ] || die "$f is not 0600"
done
# every file's hash as reported
as alice list --id "$cid" --files --format csv | tail -n +2 | while IFS=, read -r _ _ name size sha; do
    [ "$(sha256sum "$work/pcaps/$name" | cut -d' ' -f1)" = "$sha" ] || { echo "sha256 of $name"; exit 1; }
    [ "$(stat -c %s "$work/pcaps/$name")" = "$size" ] || { echo "size of $name"; exit 1; }
done || die "the reported files do not match the disk"
fields=(-T fields -e ip.src -e ip.dst -e ip.id -e ip.len -e icmp.seq -e tcp.seq_raw -e tcp.flags)
for f in "${files[@]}"; do tshark -r "$f" "${fields[@]}"; done >"$work/ours.txt" 2>/dev/null
tshark -r "$work/ref.pcap" "${fields[@]}" >"$work/ref.txt" 2>/dev/null
python3 - "$work/ours.txt" "$work/ref.txt" "$ip_1" "$packets" <<'PY' || die "capture $cid does not hold exactly the matching packets"
import collections, sys
ours = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
ref = [l.split("\t") for l in open(sys.argv[2]).read().splitlines()]
p1, reported = sys.argv[3], int(sys.argv[4])
bad = [r for r in ours if p1 not in (r[0], r[1])]
if bad:
    sys.exit("%d packets not to or from %s, e.g. %s" % (len(bad), p1, bad[0]))
if len(ours) != reported:
    sys.exit("%d packets in the files, %d reported" % (len(ours), reported))
icmp = sum(1 for r in ours if r[4])
tcp = sum(1 for r in ours if r[5])
if icmp != 10 or tcp < 6:
    sys.exit("%d ICMP (want 10) and %d TCP packets" % (icmp, tcp))
if collections.Counter(map(tuple, ours)) != collections.Counter(map(tuple, ref)):
    sys.exit("%d packets captured, tshark saw %d: they differ" % (len(ours), len(ref)))
print("ok: %d packets (%d ICMP, %d TCP), all of %s, the same as tshark's" % (len(ours), icmp, tcp, p1))
PY

# --- 3. the byte cap -------------------------------------------------------------------
cap=20480
cid=$(order "host $ip_2" --max-bytes 20K --duration 1m) || die "order with a byte cap"
wait_state "$cid" running
tcp_send "$ns_2" 300000
wait_state "$cid" done
read -r st packets bytes nfiles <<<"$(state_of "$cid")"
disk_bytes=$(cat "$work/pcaps/$cid"-*.pcap | wc -c)
[ "$disk_bytes" -le "$cap" ] && [ "$bytes" -le "$cap" ] ||
    die "byte cap $cap passed: $disk_bytes bytes on disk, $bytes reported"
[ "$disk_bytes" -eq "$bytes" ] || die "$disk_bytes bytes on disk, $bytes reported"
# (how close to the cap it stops depends on the next packet: veth hands over
# offloaded segments of up to 64 KiB)
[ "$packets" -gt 0 ] || die "the byte-capped capture took no packet"
as alice list --id "$cid" --format csv | grep -q "byte cap reached" || die "no 'byte cap reached'"
echo "ok: byte cap: $disk_bytes bytes of $cap in $nfiles file(s), $packets packets"

# --- 4. an alert orders a capture through the policy ---------------------------------------
# P2 probes 200 closed ports of H: the port-scan detector raises an alert once
# the flows are in and the window is judged, and --capture-on-alert port_scan
# orders a capture of the hosts involved on the agent that saw it.
# A slow ping from P1 keeps packets coming: the agent's flow table advances
# its clock with the packets it sees (an idle link would hold the scan's
# flows back).
ip netns exec "$ns_1" ping -n -q -i 0.5 -c 120 "$ip_h" >/dev/null 2>&1 &
ticker=$!
pids+=("$ticker")
ip netns exec "$ns_2" timeout 30 python3 -c '
import socket, sys
for port in range(20000, 20200):
    s = socket.socket()
    s.settimeout(0.5)
    s.connect_ex((sys.argv[1], port))
    s.close()' "$ip_h" || die "the scan failed"
policy=""
for _ in $(seq 300); do
    policy=$(as alice list --format csv | python3 -c '
import csv, sys
for r in csv.DictReader(sys.stdin):
    if r["ordered_by"] == "policy:port_scan":
        print(r["capture_id"], r["filter"].replace(" ", "_"), r["reason"].replace(" ", "_"))
        break')
    [ -n "$policy" ] && break
    sleep 0.1
done
kill "$ticker" 2>/dev/null
[ -n "$policy" ] || die "no capture ordered by the port_scan policy within 30 s"
read -r pid_cap pfilter preason <<<"$policy"
[[ "$pfilter" == *"host_$ip_2"* ]] || die "the policy's filter does not name the scanner: $pfilter"
[[ "$preason" == alert_*_port_scan_* ]] || die "the policy's order does not name its alert: $preason"
wait_state "$pid_cap" running done
as alice stop "$pid_cap" >/dev/null 2>&1 # it may have ended already
wait_state "$pid_cap" stopped done
echo "ok: alert -> capture $pid_cap (${pfilter//_/ }; ${preason//_/ })"

# --- 5. the agent's quota ----------------------------------------------------------------
quota=$((1 << 20))
cid=$(order "host $ip_2" --duration 1m) || die "order without a cap"
wait_state "$cid" running
tcp_send "$ns_2" 3000000
wait_state "$cid" done
used=$(cat "$work/pcaps"/* | wc -c)
[ "$used" -le "$quota" ] || die "the quota of $quota bytes is passed: $used bytes in the directory"
[ "$used" -gt $((quota - 70000)) ] || die "stopped at $used bytes, far below the quota"
as alice list --id "$cid" --format csv | grep -q "quota" || die "the capture does not say 'quota'"
echo "ok: quota: $used bytes of $quota in the directory"

# --- 6. an agent that stops mid-capture, an agent that is down ------------------------------
running=$(order "host $ip_1" --duration 5m) || die "order before the agent stops"
wait_state "$running" running
stop_agent
# its last status, sent as it stopped, closed the capture with its files
[ "$(state_of "$running" | cut -d' ' -f1)" = stopped ] ||
    die "a capture the agent stopped is $(state_of "$running"), not stopped"
as alice list --id "$running" --format csv | grep -q "the agent stopped" ||
    die "the stopped capture does not say the agent stopped"
echo "ok: the agent's stop ends its capture, and the aggregator hears so at once"
cid=$(order "host $ip_1" --duration 1m --max-packets 3) || die "order while the agent is down"
late=$(order "host $ip_1" --duration 1m --expires 2s) || die "order that expires"
[ "$(state_of "$cid" | cut -d' ' -f1)" = pending ] || die "$cid is not pending while the agent is down"
sleep 3
wait_state "$late" expired
start_agent
wait_state "$cid" running done
in_1 ping -n -q -c 5 -i 0.2 "$ip_h" >/dev/null
wait_state "$cid" done
read -r st packets bytes nfiles <<<"$(state_of "$cid")"
[ "$packets" -eq 3 ] || die "packet cap 3: $packets packets"
[ -z "$(ls "$work/pcaps/$late"-* 2>/dev/null)" ] || die "the expired order left files"
echo "ok: delivered on reconnect ($packets packets), the other expired"
stop_agent
grep -qE ": error:|Sanitizer|runtime error" "$work/agent.err" "$work/aggregator.err" &&
    die "errors in the logs"
echo "PASS"
