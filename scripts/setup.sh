#!/usr/bin/env bash
# setup.sh — the README's first command: installs the Debian packages vigil
# needs, builds it (build/), and runs the demo: an aggregator and one agent
# per host of the generated fleet scenario on this machine, then the
# analyst's view (top, bandwidth, alerts, an HTML report).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

./scripts/install-packages.sh
cmake -S "$root" -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)"

# The main job: a fleet on this machine (aggregator, 24 agents, the CLI).
exec ./scripts/demo_fleet.sh build
