#!/usr/bin/env bash
# malformed.sh — vigil-agent must survive any input file.
#
# usage: malformed.sh AGENT [MALFORMED_DIR] [VIGIL_GEN|CAPTURE]
#
# Runs `AGENT -r FILE --json OUT` on every file of MALFORMED_DIR (the shared
# corpus of broken captures; skipped with a message when absent) and on
# cases this script makes itself, which need no shared folder:
#   - a file of random bytes (not a capture),
#   - a zero-byte file,
#   - copies of a valid capture cut in the middle of a record's header and in
#     the middle of its data: the capture `VIGIL_GEN --profile unit` writes
#     (or the CAPTURE given), else a small one this script writes,
#   - a wrong option, a missing file, and -r without its argument.
#
# Each run passes when the agent
#   - ends by itself within the time limit and not by a signal,
#   - prints no sanitizer report ("runtime error", "AddressSanitizer", ...),
#   - exits 0, writing valid JSON lines and its "vigil-agent: summary:" line,
#     or exits 1 or 2 with a short error message (1-2 lines) on stderr.
# The made-up cases that cannot be read at all must give the error exit, and
# a truncated capture either an error or a note saying so.
#
# Exit status: 0 all passed, 1 a failure.
set -uo pipefail

agent=${1:?usage: malformed.sh AGENT [MALFORMED_DIR] [VIGIL_GEN|CAPTURE]}
malformed_dir=${2:-}
source_arg=${3:-}
limit=${VIGIL_TEST_TIMEOUT:-60}

work=$(mktemp -d "${TMPDIR:-/tmp}/vigil-malformed.XXXXXX")
trap 'rm -rf "$work"' EXIT

passed=0
failed=0

fail() {
    echo "FAIL $1: $2"
    if [ -s "$work/err" ]; then sed -n '1,15s/^/    | /p' "$work/err"; fi
    failed=$((failed + 1))
}

# check NAME EXPECT [AGENT ARGS...]
# EXPECT: any (0, 1 or 2), ok (0), error (1 or 2), usage (2),
#         noted (0 with a note on stderr, or 1 or 2).
check() {
    local name=$1 expect=$2
    shift 2
    rm -f "$work/out.jsonl"
    timeout -k 5 "$limit" "$agent" "$@" >"$work/stdout" 2>"$work/err"
    local rc=$?
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        fail "$name" "no exit within $limit s"
        return
    fi
    if [ $rc -gt 128 ]; then
        fail "$name" "killed by signal $((rc - 128))"
        return
    fi
    if grep -qE 'runtime error|AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|ThreadSanitizer' "$work/err"; then
        fail "$name" "sanitizer report (exit $rc)"
        return
    fi
    # The message: what stderr says besides the summary line.
    local msg nmsg
    msg=$(grep -v '^vigil-agent: summary:' "$work/err" | grep -v '^[[:space:]]*$')
    nmsg=$(printf '%s' "$msg" | grep -c '' || true)
    case $rc in
    0)
        if [ "$expect" = error ] || [ "$expect" = usage ]; then
            fail "$name" "exit 0, expected an error exit"
            return
        fi
        if [ "$expect" = noted ] && [ "$nmsg" -eq 0 ]; then
            fail "$name" "exit 0 without saying the input was cut short"
            return
        fi
        if [ "${NEED_SUMMARY:-1}" = 1 ] && ! grep -q '^vigil-agent: summary:.*packets=' "$work/err"; then
            fail "$name" "exit 0 without a 'vigil-agent: summary:' line"
            return
        fi
        if [ -s "$work/out.jsonl" ] && command -v python3 >/dev/null &&
            ! python3 -c '
import json, sys
for n, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
    if line.strip() and not isinstance(json.loads(line), dict):
        sys.exit("line %d is not a JSON object" % n)' "$work/out.jsonl" 2>"$work/json.err"; then
            fail "$name" "output is not JSON lines: $(tail -n 1 "$work/json.err")"
            return
        fi
        ;;
    1 | 2)
        if [ "$expect" = ok ]; then
            fail "$name" "exit $rc on a valid capture"
            return
        fi
        if [ "$expect" = usage ] && [ $rc -ne 2 ]; then
            fail "$name" "exit $rc, expected 2 (usage error)"
            return
        fi
        if [ "$nmsg" -lt 1 ] || [ "$nmsg" -gt 2 ]; then
            fail "$name" "exit $rc with $nmsg lines of message (want 1-2)"
            return
        fi
        ;;
    *)
        fail "$name" "exit $rc (want 0, 1 or 2)"
        return
        ;;
    esac
    echo "ok   $name: exit $rc${msg:+: $(printf '%s' "$msg" | head -n 1)}"
    passed=$((passed + 1))
}

# --- the shared corpus -------------------------------------------------------
if [ -n "$malformed_dir" ] && [ -d "$malformed_dir" ]; then
    while IFS= read -r -d '' f; do
        check "malformed/${f#"$malformed_dir"/}" any -r "$f" --json "$work/out.jsonl"
    done < <(find "$malformed_dir" -type f ! -name '*.md' -print0 | sort -z)
else
    echo "SKIP shared corpus: ${malformed_dir:-(no folder given)} not found; running the project's own cases only"
fi

# --- the project's own cases ---------------------------------------------------
# A small valid capture when no generated one is given: pcap v2.4, Ethernet,
# three UDP packets 192.0.2.1:5000 -> 192.0.2.2:53 (documentation addresses).
write_small_pcap() {
    python3 - "$1" <<'PY'
import struct, sys
frame = (b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" +
         struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + 8 + 12, 1, 0, 64, 17, 0,
                     bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])) +
         struct.pack(">HHHH", 5000, 53, 8 + 12, 0) + b"vigil-test!!")
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    for i in range(3):
        f.write(struct.pack("<IIII", 1700000000 + i, 0, len(frame), len(frame)) + frame)
PY
}

src=
if [ -n "$source_arg" ] && [ -x "$source_arg" ] && [ ! -d "$source_arg" ]; then
    if "$source_arg" --profile unit --out "$work/gen.pcap" --truth "$work/gen.jsonl" \
        >/dev/null 2>"$work/gen.err"; then
        src=$work/gen.pcap
    else
        echo "note: $source_arg failed ($(head -n 1 "$work/gen.err")); using a small capture made here"
    fi
elif [ -n "$source_arg" ] && [ -s "$source_arg" ]; then
    src=$source_arg
fi
if [ -z "$src" ]; then
    src=$work/small.pcap
    write_small_pcap "$src"
fi
echo "valid capture for the cut copies: $src"
size=$(stat -c %s "$src")

if command -v python3 >/dev/null; then
    python3 -c 'import random, sys; random.seed(20240611); sys.stdout.buffer.write(b"RND!" + bytes(random.getrandbits(8) for _ in range(4092)))' >"$work/random.bin"
else
    { printf 'RND!'; head -c 4092 /dev/urandom; } >"$work/random.bin"
fi
: >"$work/empty.pcap"
head -c 32 "$src" >"$work/cut-in-record-header.pcap"     # 24-byte file header + half a record header
head -c $((size - 7)) "$src" >"$work/cut-in-record-data.pcap"

check "own/random-bytes" error -r "$work/random.bin" --json "$work/out.jsonl"
check "own/zero-byte-file" error -r "$work/empty.pcap" --json "$work/out.jsonl"
check "own/cut-in-record-header" noted -r "$work/cut-in-record-header.pcap" --json "$work/out.jsonl"
check "own/cut-in-record-data" noted -r "$work/cut-in-record-data.pcap" --json "$work/out.jsonl"
check "own/intact-copy" ok -r "$src" --json "$work/out.jsonl"
NEED_SUMMARY=0 check "own/wrong-option" usage --no-such-option
NEED_SUMMARY=0 check "own/missing-file" error -r "$work/does-not-exist.pcap" --json "$work/out.jsonl"
NEED_SUMMARY=0 check "own/r-without-argument" usage -r

echo "malformed: $passed passed, $failed failed"
[ $failed -eq 0 ]
