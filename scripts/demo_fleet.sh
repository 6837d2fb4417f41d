#!/usr/bin/env bash
# demo_fleet.sh — a small fleet on this one machine: an aggregator on
# 127.0.0.1 with CurveZMQ, three agents replaying generated captures, then
# what an analyst sees (vigil agents, vigil top).
#
# usage: scripts/demo_fleet.sh [BUILD_DIR]     (default: build/)
# Everything lives in a temporary directory removed at the end (set
# VIGIL_DEMO_KEEP=1 to keep it). Exit status 0 when the fleet delivered every
# record, non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=$(cd "${1:-build}" && pwd)

agg=$build/aggregator/vigil-aggregator
agent=$build/agent/vigil-agent
cli=$build/cli/vigil
gen=$build/gen/vigil-gen
for b in "$agg" "$agent" "$cli" "$gen"; do
    [ -x "$b" ] || { echo "demo_fleet: $b is not built (cmake --build $build)" >&2; exit 1; }
done

demo=$(mktemp -d "${TMPDIR:-/tmp}/vigil-fleet.XXXXXX")
agg_pid=
cleanup() {
    local rc=$?
    if [ -n "$agg_pid" ] && kill -0 "$agg_pid" 2>/dev/null; then
        kill -TERM "$agg_pid" 2>/dev/null || true
        wait "$agg_pid" 2>/dev/null || true
    fi
    if [ "${VIGIL_DEMO_KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then
        echo "demo_fleet: files kept in $demo" >&2
    else
        rm -rf "$demo"
    fi
    exit $rc
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }

step "keys: one pair for the aggregator, one per agent, one for the analyst"
"$cli" keygen --out "$demo/keys/aggregator" >/dev/null
for n in web-01 web-02 web-03; do
    "$cli" keygen --out "$demo/keys/agents.d" --name "$n" >/dev/null
done
"$cli" keygen --out "$demo/keys/analysts.d" --name analyst >/dev/null
ls "$demo/keys/aggregator" "$demo/keys/agents.d" "$demo/keys/analysts.d"

step "captures: three hosts' traffic (vigil-gen, dated 2026-01-01)"
{
    "$gen" --profile unit --seed 1 --out "$demo/web-01.pcap"
    "$gen" --profile unit --seed 2 --out "$demo/web-02.pcap"
    "$gen" --profile bench --seed 3 --flows 2000 --duration 60 --out "$demo/web-03.pcap"
} 2>&1 >/dev/null | sed 's/^vigil-gen: /   /'

step "vigil-aggregator --config aggregator.conf (CURVE on, allow lists of agents and analysts)"
cat >"$demo/aggregator.conf" <<EOF
# the aggregator's settings (the command line overrides them)
listen = tcp://127.0.0.1:*
db = $demo/db
key = $demo/keys/aggregator/aggregator.key
agents-allow = $demo/keys/agents.d
analysts-allow = $demo/keys/analysts.d
# the demo's captures are dated 2026-01-01: keep them whatever today is
flow-retention = 36500d
hour-retention = 36500d
day-retention = 36500d
EOF
"$agg" --config "$demo/aggregator.conf" >"$demo/aggregator.log" 2>&1 &
agg_pid=$!
endpoint=
for _ in $(seq 100); do
    endpoint=$(sed -n 's/.*listening on \(tcp:[^ ]*\) with CURVE on.*/\1/p' "$demo/aggregator.log")
    [ -n "$endpoint" ] && break
    kill -0 "$agg_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$endpoint" ]; then
    echo "demo_fleet: the aggregator did not start:" >&2
    cat "$demo/aggregator.log" >&2
    exit 1
fi
sed 's/^/   /' "$demo/aggregator.log"

step "three vigil-agents, each replaying its capture to $endpoint"
pids=()
for n in web-01 web-02 web-03; do
    "$agent" -r "$demo/$n.pcap" --aggregator "$endpoint" \
        --server-key "$demo/keys/aggregator/aggregator.pub" --key "$demo/keys/agents.d/$n.key" \
        --spool "$demo/spool-$n" --agent-name "$n" 2>"$demo/$n.log" &
    pids+=($!)
done
for i in "${!pids[@]}"; do
    n=web-0$((i + 1))
    if ! wait "${pids[$i]}"; then
        echo "demo_fleet: agent $n failed:" >&2
        cat "$demo/$n.log" >&2
        exit 1
    fi
    grep -h 'summary:' "$demo/$n.log" | sed "s/^vigil-agent: summary:/   $n:/"
done
# An agent that could not deliver everything within its grace keeps the rest
# in its spool; started again (here on an empty capture) it delivers it.
printf '\xd4\xc3\xb2\xa1\x02\x00\x04\x00\0\0\0\0\0\0\0\0\xff\xff\0\0\x01\0\0\0' \
    >"$demo/empty.pcap"
for n in web-01 web-02 web-03; do
    cp "$demo/$n.log" "$demo/$n.last"
    for _ in 1 2 3; do
        grep -q 'not acknowledged everything' "$demo/$n.last" || break
        echo "   $n: batches left in its spool; starting it again to deliver them"
        "$agent" -r "$demo/empty.pcap" --aggregator "$endpoint" \
            --server-key "$demo/keys/aggregator/aggregator.pub" \
            --key "$demo/keys/agents.d/$n.key" --spool "$demo/spool-$n" --agent-name "$n" \
            2>"$demo/$n.last" || true
    done
done

# The analyst's side: the CLI reads its settings from ~/.config/vigil/cli.conf;
# here XDG_CONFIG_HOME points at the demo's own.
mkdir -p "$demo/config/vigil"
cat >"$demo/config/vigil/cli.conf" <<EOF
connect = $endpoint
key = $demo/keys/analysts.d/analyst.key
server-key = $demo/keys/aggregator/aggregator.pub
EOF
export XDG_CONFIG_HOME=$demo/config

step "vigil agents"
"$cli" agents

step "vigil top --group app --since all        (which application uses the bandwidth)"
"$cli" top --group app --since all

step "vigil top --group pair --since all --limit 10        (who talks to whom)"
"$cli" top --group pair --since all --limit 10

# Every record each agent made must be stored: compare with their summaries.
status=0
for n in web-01 web-02 web-03; do
    want=$(sed -n 's/.* records=\([0-9]*\) .*/\1/p' "$demo/$n.log" | tail -1)
    got=$("$cli" agents --format csv | awk -F, -v n="$n" '
        NR == 1 { for (i = 1; i <= NF; i++) if ($i == "records") c = i; next }
        $1 == n { print $c }')
    if [ -z "$want" ] || [ "$want" != "$got" ]; then
        echo "demo_fleet: $n made ${want:-?} records, the aggregator stored ${got:-none}" >&2
        status=1
    fi
done

step "stopping the aggregator (SIGTERM: finish the current batch, close the store)"
kill -TERM "$agg_pid"
if wait "$agg_pid"; then
    agg_pid=
    grep -h 'final status' "$demo/aggregator.log" | sed 's/^/   /'
else
    agg_pid=
    echo "demo_fleet: the aggregator did not stop cleanly" >&2
    status=1
fi
[ $status -eq 0 ] && echo && echo "demo_fleet: every record of the three agents is stored once."
exit $status
