#!/usr/bin/env bash
# cli.sh — vigil-agent's command line: --help documents every option and exits
# 0; an unknown option, or an option without its value, exits 2 with a message.
#
# usage: cli.sh AGENT        Exit status: 0 all passed, 1 a failure.
set -uo pipefail

agent=${1:?usage: cli.sh AGENT}
work=$(mktemp -d "${TMPDIR:-/tmp}/vigil-cli.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() {
    echo "FAIL $1"
    sed -n '1,20s/^/    | /p' "$work/out"
    failed=$((failed + 1))
}

# --help: exit 0, every option of the contract named (stdout or stderr).
timeout 10 "$agent" --help >"$work/out" 2>&1
rc=$?
if [ $rc -eq 0 ]; then ok "--help exits 0"; else bad "--help exits $rc, want 0"; fi
for opt in -r --json --local-net --max-flows --idle-timeout --active-timeout \
    --snaplen --filter -i --user --help; do
    if grep -qE -- "(^|[^[:alnum:]-])$opt([^[:alnum:]-]|$)" "$work/out"; then
        ok "--help mentions $opt"
    else
        bad "--help does not mention $opt"
    fi
done

# expect_usage NAME ARGS...: exit 2 and a message on stderr.
expect_usage() {
    local name=$1
    shift
    timeout 10 "$agent" "$@" >"$work/stdout" 2>"$work/out"
    local rc=$?
    if [ $rc -ne 2 ]; then
        bad "$name: exit $rc, want 2"
    elif ! grep -q '[[:alnum:]]' "$work/out"; then
        bad "$name: exit 2 but nothing on stderr"
    else
        ok "$name: exit 2: $(head -n 1 "$work/out")"
    fi
}
expect_usage "unknown option" --no-such-option
expect_usage "unknown short option" -Z
expect_usage "--max-flows without its value" -r /dev/null --max-flows

echo "cli: $passed passed, $failed failed"
[ $failed -eq 0 ]
