#!/usr/bin/env bash
# test.sh — the project's test command (README: ./scripts/test.sh).
#
# 1. build/        normal build (RelWithDebInfo), ctest
# 2. build-asan/   ASan + UBSan build (VIGIL_SANITIZER="address;undefined"), ctest
# 3. build-fuzz/   clang + libFuzzer (VIGIL_FUZZ=ON, ASan + UBSan): each fuzz
#                  target runs VIGIL_FUZZ_SECONDS (default 60) from its corpus;
#                  skipped when clang is not installed
# Every step runs even after a failure; the exit status is non-zero if any
# failed, and ctest's summary lines are repeated at the end.
#
# Environment: VIGIL_FUZZ_SECONDS (0 skips the fuzz runs), VIGIL_TEST_JOBS
# (default: number of CPUs), CTEST_ARGS (extra ctest arguments, e.g. "-L unit"),
# VIGIL_CMAKE_ARGS (extra configure arguments for every build).
# Tests that need root (live capture between network namespaces) or the
# shared captures (../shared/pcaps) report themselves as skipped without them.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
jobs=${VIGIL_TEST_JOBS:-$(nproc 2>/dev/null || echo 2)}
fuzz_seconds=${VIGIL_FUZZ_SECONDS:-60}
read -r -a ctest_args <<<"${CTEST_ARGS:-}"
read -r -a cmake_args <<<"${VIGIL_CMAKE_ARGS:-}"
failures=()
summaries=()

step() { printf '\n==== %s ====\n' "$*"; }

# build_and_test NAME DIR [cmake args...]
build_and_test() {
    local name=$1 dir=$2
    shift 2
    step "$name: configure and build ($dir)"
    if ! cmake -S "$root" -B "$dir" "$@" "${cmake_args[@]}" || ! cmake --build "$dir" -j "$jobs"; then
        failures+=("$name: build")
        return
    fi
    step "$name: ctest"
    local log=$dir/ctest.log rc=0
    ctest --test-dir "$dir" --output-on-failure -j "$jobs" "${ctest_args[@]}" 2>&1 |
        tee "$log" || rc=1 # pipefail: ctest's status
    while IFS= read -r line; do summaries+=("$name: $line"); done \
        < <(grep -E 'tests passed|tests failed|Total Test time' "$log" || true)
    [ $rc -eq 0 ] || failures+=("$name: ctest")
}

build_and_test "normal" build -DCMAKE_BUILD_TYPE=RelWithDebInfo

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
build_and_test "asan+ubsan" build-asan -DCMAKE_BUILD_TYPE=Debug \
    "-DVIGIL_SANITIZER=address;undefined"

if [ "$fuzz_seconds" -gt 0 ] && command -v clang >/dev/null; then
    step "libFuzzer: configure and build (build-fuzz)"
    targets=()
    for src in tests/fuzz/fuzz_*.c; do
        [ -f "$src" ] && targets+=("$(basename "$src" .c)")
    done
    if [ ${#targets[@]} -eq 0 ]; then
        echo "no fuzz targets"
    elif ! CC=clang cmake -S "$root" -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DVIGIL_FUZZ=ON "-DVIGIL_SANITIZER=address;undefined" "${cmake_args[@]}" ||
        ! cmake --build build-fuzz -j "$jobs" --target "${targets[@]}"; then
        failures+=("libFuzzer: build")
    else
        mkdir -p build-fuzz/artifacts
        for t in "${targets[@]}"; do
            name=${t#fuzz_}
            step "libFuzzer: $t for $fuzz_seconds s"
            # New inputs go to a scratch folder; the committed corpus is only read.
            scratch=build-fuzz/corpus-$name
            mkdir -p "$scratch"
            seeds=()
            [ -d "tests/fuzz/corpus/$name" ] && seeds+=("tests/fuzz/corpus/$name")
            if "build-fuzz/tests/fuzz/$t" -max_total_time="$fuzz_seconds" -timeout=10 \
                -rss_limit_mb=2048 -print_final_stats=1 \
                -artifact_prefix="build-fuzz/artifacts/$t-" "$scratch" "${seeds[@]}" \
                >"build-fuzz/$t.log" 2>&1; then
                runs=$(awk '/^stat::number_of_executed_units/ {print $2}' "build-fuzz/$t.log")
                summaries+=("libFuzzer $t: ${runs:-?} runs in $fuzz_seconds s, no crash")
            else
                tail -n 60 "build-fuzz/$t.log"
                failures+=("libFuzzer: $t (see build-fuzz/artifacts/)")
            fi
        done
    fi
else
    summaries+=("libFuzzer: skipped (clang not installed or VIGIL_FUZZ_SECONDS=0)")
fi

step "summary"
for s in "${summaries[@]}"; do echo "$s"; done
if [ ${#failures[@]} -gt 0 ]; then
    for f in "${failures[@]}"; do echo "FAILED: $f"; done
    exit 1
fi
echo "all test steps passed"
