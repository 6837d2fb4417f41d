#!/usr/bin/env bash
# setup.sh — the README's first command: installs the Debian packages vigil
# needs, builds it (build/), and runs the demo: an aggregator and three
# agents over generated captures on this machine, then the analyst's view.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

./scripts/install-packages.sh
cmake -S "$root" -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)"

# The main job: a small fleet on this machine (aggregator, three agents, the CLI).
exec ./scripts/demo_fleet.sh build
