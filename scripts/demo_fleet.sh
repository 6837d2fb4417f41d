#!/usr/bin/env bash
# demo_fleet.sh — a fleet on this one machine: an aggregator on 127.0.0.1
# with CurveZMQ, one agent per host replaying the generated fleet scenario
# (vigil-gen --profile fleet: 24 hosts, an office day, seven attacks), then
# what an analyst sees: vigil agents, top, the 80 % question, bandwidth,
# the alerts (checked against the scenario's labels), and an HTML report.
#
# usage: scripts/demo_fleet.sh [BUILD_DIR]     (default: build/)
# Everything lives in a temporary directory removed at the end (set
# VIGIL_DEMO_KEEP=1 to keep it); the report is copied to BUILD_DIR/demo-report.html.
# Exit status 0 when the fleet delivered every record, non-zero on any failure.
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

step "captures: a fleet of 24 hosts, one office day, seven attacks (vigil-gen --profile fleet)"
"$gen" --profile fleet --out-dir "$demo/captures" --days 1 --exfil-mb 50 2>&1 >/dev/null |
    sed 's/^vigil-gen: /   /'
mapfile -t hosts < <(python3 -c '
import json, sys
for h in json.load(open(sys.argv[1]))["fleet"]:
    print(h["name"])' "$demo/captures/labels.json")
network=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["network"])' \
    "$demo/captures/labels.json")

step "keys: one pair for the aggregator, one per agent (${#hosts[@]}), one for the analyst"
"$cli" keygen --out "$demo/keys/aggregator" >/dev/null
for n in "${hosts[@]}"; do
    "$cli" keygen --out "$demo/keys/agents.d" --name "$n" >/dev/null
done
"$cli" keygen --out "$demo/keys/analysts.d" --name analyst >/dev/null
echo "   $demo/keys/aggregator: $(ls "$demo/keys/aggregator" | tr '\n' ' ')"
echo "   $demo/keys/agents.d: ${#hosts[@]} pairs; $demo/keys/analysts.d: analyst"

step "vigil-aggregator --config aggregator.conf (CURVE on, allow lists of agents and analysts)"
cat >"$demo/aggregator.conf" <<EOF
# the aggregator's settings (the command line overrides them)
listen = tcp://127.0.0.1:*
db = $demo/db
key = $demo/keys/aggregator/aggregator.key
agents-allow = $demo/keys/agents.d
analysts-allow = $demo/keys/analysts.d
alert-log = $demo/alerts.jsonl
# judge the replay's last windows 2 s after the last record (default 5 s)
detect-idle-flush = 2s
# the demo's captures are dated January 2026: keep them whatever today is
flow-retention = 36500d
minute-retention = 36500d
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

step "${#hosts[@]} vigil-agents, each replaying its host's capture to $endpoint"
agent_cmd() { # NAME CAPTURE
    "$agent" -r "$2" --aggregator "$endpoint" --local-net "$network" \
        --server-key "$demo/keys/aggregator/aggregator.pub" --key "$demo/keys/agents.d/$1.key" \
        --spool "$demo/spool-$1" --agent-name "$1" --no-capture --stop-grace 60s
}
run_agent() { # NAME: the capture, then (if needed) its spool on an empty capture
    local n=$1 i
    agent_cmd "$n" "$demo/captures/$n.pcap" 2>"$demo/$n.log" || return 1
    cp "$demo/$n.log" "$demo/$n.last"
    for i in 1 2 3; do
        grep -q 'not acknowledged everything' "$demo/$n.last" || return 0
        agent_cmd "$n" "$demo/empty.pcap" 2>"$demo/$n.last" || true
    done
    ! grep -q 'not acknowledged everything' "$demo/$n.last"
}
printf '\xd4\xc3\xb2\xa1\x02\x00\x04\x00\0\0\0\0\0\0\0\0\xff\xff\0\0\x01\0\0\0' \
    >"$demo/empty.pcap"
# a few at a time: this machine may have two cores
pids=()
names=()
failed=0
for n in "${hosts[@]}"; do
    run_agent "$n" &
    pids+=($!)
    names+=("$n")
    if [ ${#pids[@]} -ge 6 ]; then
        wait "${pids[0]}" || { echo "demo_fleet: agent ${names[0]} failed:" >&2; cat "$demo/${names[0]}.log" >&2; failed=1; }
        pids=("${pids[@]:1}")
        names=("${names[@]:1}")
    fi
done
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { echo "demo_fleet: agent ${names[$i]} failed:" >&2; cat "$demo/${names[$i]}.log" >&2; failed=1; }
done
[ $failed -eq 0 ] || exit 1
for n in "${hosts[@]}"; do
    grep -h 'summary:' "$demo/$n.log" | sed "s/^vigil-agent: summary:/   $n:/" | cut -c1-110
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

step "vigil top --group app --since all --share 80        (which applications make 80 % of the bytes)"
"$cli" top --group app --since all --share 80

step "vigil top --group pair --since all --limit 10        (who talks to whom)"
"$cli" top --group pair --since all --limit 10

step "vigil bandwidth --since 2026-01-05 --until 2026-01-06 --step 2h        (the office day, in and out)"
"$cli" bandwidth --since 2026-01-05 --until 2026-01-06 --step 2h

step "vigil alerts --since all        (what the detectors found)"
# The detectors judge the windows still open once no record has come for
# detect-idle-flush (2 s here): wait past it, then until the list is steady.
sleep 3
last=
steady=0
for _ in $(seq 30); do
    now=$("$cli" alerts --since all --format json | md5sum)
    if [ "$now" = "$last" ]; then
        steady=$((steady + 1))
        [ $steady -ge 2 ] && break
    else
        steady=0
    fi
    last=$now
    sleep 1
done
"$cli" alerts --since all
"$cli" alerts --since all --format json >"$demo/alerts.json"
python3 - "$demo/captures/labels.json" "$demo/alerts.json" <<'PY'
import json, sys
labels = json.load(open(sys.argv[1]))["attacks"]
alerts = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
caught = 0
for at in labels:
    hit = [a for a in alerts if a["type"] == at["type"] and
           set(a.get("sources", [])) & set(at["sources"]) and
           set(a.get("targets", [])) & set(at["targets"])]
    caught += bool(hit)
    print(f"   {'caught' if hit else 'MISSED':6}  {at['type']:17} {at['description'][:80]}")
named = {(at["type"], s) for at in labels for s in at["sources"]}
false = [a for a in alerts if not any((a["type"], s) in named for s in a.get("sources", []))]
print(f"   {caught} of {len(labels)} labelled attacks raised their alert; "
      f"{len(false)} alert(s) not among the labels")
PY

step "vigil report --since all --html report.html        (one page with charts)"
"$cli" report --since 2026-01-05 --until 2026-01-06 --html "$demo/report.html"
cp "$demo/report.html" "$build/demo-report.html"
echo "   written to $build/demo-report.html (open it in a browser)"

# Every record each agent made must be stored: compare with their summaries.
status=0
for n in "${hosts[@]}"; do
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
[ $status -eq 0 ] && echo && echo "demo_fleet: every record of the ${#hosts[@]} agents is stored once."
exit $status
