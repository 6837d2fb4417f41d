#!/usr/bin/env bash
# setup.sh — the README's first command: installs the Debian packages vigil
# needs, builds it (build/), and runs the demo: vigil-gen writes a small
# labelled capture, vigil-agent summarises it, and this script prints what
# the agent found.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

./scripts/install-packages.sh
cmake -S "$root" -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)"

demo=$(mktemp -d "${TMPDIR:-/tmp}/vigil-demo.XXXXXX")
trap 'rm -rf "$demo"' EXIT
./build/gen/vigil-gen --profile unit --seed 1 --out "$demo/demo.pcap" --truth "$demo/truth.jsonl"
echo
echo "== vigil-agent -r demo.pcap --local-net ... --json flows.jsonl"
./build/agent/vigil-agent -r "$demo/demo.pcap" --local-net 10.0.0.0/8 --local-net 192.168.0.0/16 --local-net 2001:db8:10::/48 \
    --agent-name demo --json "$demo/flows.jsonl"
python3 "$root/scripts/flow_report.py" "$demo/flows.jsonl"
