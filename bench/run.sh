#!/usr/bin/env bash
# bench/run.sh — offline throughput benchmark: vigil-agent against the bare
# libpcap read loop and the flow meters it is measured against (softflowd,
# nfpcapd, pmacctd, argus), on the same page-cached captures.
#
# What it does, in one run:
#   1. generates (or reuses) the bench capture with vigil-gen, twice: full
#      frames and headers-only (snaplen 128, as flow meters capture live);
#   2. for each file, warms it into the page cache and reports how much of it
#      is resident (fincore, or vmtouch when installed);
#   3. for each tool and file, runs it N times (median reported) under
#      /usr/bin/time -v: wall time, peak RSS, CPU time; also runs each tool on
#      a tiny capture to measure its fixed start/stop cost (pmacctd sleeps
#      ~2 s on start, nfpcapd and argus wait ~1 s on exit) and reports the
#      time with that cost taken off;
#   4. prints a markdown table and writes it, with a TSV, to the work dir.
# Ratios: "x loop" = tool time / bare loop time (1.0 = free);
# "x peer" = tool time / fastest peer's time (< 1: faster than every peer).
#
# Non-goals: live capture, correctness of the peers' output (see the
# integration tests for vigil's own), multi-core scaling.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=/var/tmp/vigil-bench
BUILD="$REPO/build"
FLOWS=1000000
PACKETS=""
DURATION=300
SEED=1
RUNS=3
ONLY=""
FILES="full,headers"
REGEN=0
INSTALL=0
ALL_TOOLS="loop agent softflowd nfpcapd pmacctd argus"
PEERS="softflowd nfpcapd pmacctd argus"

usage() {
    cat <<EOF
usage: bench/run.sh [options]

Benchmarks vigil-agent reading a page-cached capture against the bare libpcap
loop and the peers softflowd, nfpcapd, pmacctd and argus (those installed).

  --dir DIR         work dir for captures and results (default $DIR)
  --build DIR       vigil build dir holding gen/vigil-gen, bench/pcap_loop,
                    agent/vigil-agent (default $BUILD)
  --flows N         flows in the generated capture (default $FLOWS: ~17M packets)
  --packets N       about N packets instead (flows = N / 17)
  --duration SEC    seconds the flows start over (default $DURATION)
  --seed N          generator seed (default $SEED)
  --runs N          timed runs per tool and file; the median is reported (default $RUNS)
  --only LIST       comma-separated tools to run, from: ${ALL_TOOLS// /,}
  --files LIST      full,headers (default $FILES)
  --regen           regenerate the captures even if they exist
  --install-peers   apt-get install the peers first (Debian: softflowd nfdump
                    pmacct argus-server argus-client), non-interactively
  --help            this text

Quick run: bench/run.sh --packets 500000 --runs 1
Results: DIR/results-<time>.md and .tsv (and results-latest.*).
EOF
}

die() { echo "run.sh: $*" >&2; exit 1; }
note() { echo "run.sh: $*" >&2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --flows) FLOWS=$2; shift 2 ;;
    --packets) PACKETS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --files) FILES=$2; shift 2 ;;
    --regen) REGEN=1; shift ;;
    --install-peers) INSTALL=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs wants a positive integer"
if [[ -n $PACKETS ]]; then
    [[ $PACKETS =~ ^[0-9]+$ ]] || die "--packets wants an integer"
    FLOWS=$(( PACKETS / 17 ))
    (( FLOWS >= 1000 )) || FLOWS=1000
fi
[[ $FLOWS =~ ^[0-9]+$ ]] || die "--flows wants an integer"

TOOLS=$ALL_TOOLS
if [[ -n $ONLY ]]; then
    TOOLS=""
    for t in ${ONLY//,/ }; do
        [[ " $ALL_TOOLS " == *" $t "* ]] || die "unknown tool '$t' (${ALL_TOOLS// /,})"
        TOOLS+="$t "
    done
fi

if (( INSTALL )); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q softflowd nfdump pmacct argus-server argus-client time util-linux \
        >/dev/null
fi

GEN="$BUILD/gen/vigil-gen"
LOOP="$BUILD/bench/pcap_loop"
AGENT="$BUILD/agent/vigil-agent"
[[ -x $GEN ]] || die "$GEN not found: build first (cmake -S . -B build && cmake --build build) or pass --build"
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found (Debian package 'time')"
mkdir -p "$DIR"
[[ $EUID -eq 0 ]] || note "not root: peers that want /var/run may fail"

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
SCRATCH=$(mktemp -d "$DIR/run-$STAMP.XXXX")
trap 'rm -rf "$SCRATCH"' EXIT

# --- captures ----------------------------------------------------------------

TAG="f$FLOWS-d$DURATION-s$SEED"
declare -A CAPTURE=([full]="$DIR/bench-$TAG-full.pcap" [headers]="$DIR/bench-$TAG-h128.pcap")
declare -A SNAP=([full]=262144 [headers]=128)
TINY="$DIR/tiny-unit.pcap"

gen_capture() { # name
    local name=$1 path=${CAPTURE[$1]}
    if (( ! REGEN )) && [[ -s $path && -s $path.done ]]; then
        note "reusing $path ($(cat "$path.done"))"
        return
    fi
    # Room: about 700 bytes per packet, 17 packets per flow, full frames.
    local need_kb=$(( FLOWS * 17 * 720 / 1024 ))
    [[ $name == headers ]] && need_kb=$(( FLOWS * 17 * 150 / 1024 ))
    local avail_kb
    avail_kb=$(df --output=avail -k "$DIR" | tail -1 | tr -d ' ')
    (( avail_kb > need_kb + 1048576 )) ||
        die "not enough room in $DIR for $name: ~$(( need_kb / 1048576 )) GiB needed, $(( avail_kb / 1048576 )) GiB free"
    rm -f "$path" "$path.done"
    note "generating $path ($FLOWS flows over $DURATION s, snaplen ${SNAP[$name]})"
    local t0 t1
    t0=$(date +%s%N)
    "$GEN" --profile bench --flows "$FLOWS" --duration "$DURATION" --seed "$SEED" \
        --snaplen "${SNAP[$name]}" --out "$path" 2>"$path.log" || die "vigil-gen failed: $(cat "$path.log")"
    t1=$(date +%s%N)
    local summary
    summary=$(sed -n 's/^vigil-gen: profile bench seed [0-9]*: //p' "$path.log")
    printf '%s; generated in %.1f s\n' "$summary" "$(( t1 - t0 ))e-9" >"$path.done"
    note "$(cat "$path.done")"
}

for f in ${FILES//,/ }; do
    [[ -n ${CAPTURE[$f]:-} ]] || die "unknown file kind '$f' (full, headers)"
    gen_capture "$f"
done
if [[ ! -s $TINY ]]; then
    "$GEN" --profile unit --out "$TINY" 2>/dev/null || die "vigil-gen --profile unit failed"
fi

# --- page cache ---------------------------------------------------------------

residency() { # file -> "NN.N%"
    local f=$1
    if command -v vmtouch >/dev/null; then
        vmtouch "$f" | awk '/Resident Pages/ {print $NF; exit}'
    elif command -v fincore >/dev/null; then
        fincore --bytes --noheadings --output RES,SIZE "$f" |
            awk '{ if ($2 > 0) printf "%.1f%%\n", 100 * $1 / $2; else print "n/a" }'
    else
        echo "unknown"
    fi
}

warm() { # file
    if command -v vmtouch >/dev/null; then
        vmtouch -tq "$1"
    else
        cat "$1" >/dev/null
    fi
}

# --- tools --------------------------------------------------------------------

have_tool() { # name -> 0 if runnable, else prints why not
    case $1 in
    loop) [[ -x $LOOP ]] || { echo "$LOOP not built"; return 1; } ;;
    agent) [[ -x $AGENT ]] || { echo "$AGENT not built yet"; return 1; } ;;
    softflowd) command -v softflowd >/dev/null || { echo "not installed (apt: softflowd)"; return 1; } ;;
    nfpcapd) command -v nfpcapd >/dev/null || { echo "not installed (apt: nfdump)"; return 1; } ;;
    pmacctd) command -v pmacctd >/dev/null || { echo "not installed (apt: pmacct)"; return 1; } ;;
    argus) command -v argus >/dev/null || { echo "not installed (apt: argus-server)"; return 1; } ;;
    esac
    return 0
}

# The command line of each tool, reading $1, with scratch space $2.
# softflowd: -r reads the file and exits (no daemon, no control socket with
#   -c none); -6 tracks IPv6 too (otherwise skipped: NetFlow v5 cannot carry
#   it); no -n, so nothing is exported; default table of 8192 flows.
# nfpcapd: -r file, flow files into the scratch dir (-w), timeouts 60/15 s as
#   vigil's defaults.
# pmacctd: pcap_savefile makes it read the file and exit; aggregates per
#   5-tuple + VLAN into the print plugin, whose cache purges append to one
#   file. Caveat, measured: reading a file, pmacctd's core outruns its plugin
#   and the queue between them drops data (on the 17.5M-packet bench it
#   accounts for a few percent of the packets, whatever the queue size, the
#   ZeroMQ queue or pcap_savefile_wait); the 'seen' column shows it, and such
#   a run is left out of the fastest-peer baseline.
# argus: -X first (it resets every option given before it, and ignores
#   /etc/argus.conf), then -r file, records to /dev/null.
tool_cmd() { # name file scratch
    local name=$1 file=$2 s=$3
    case $name in
    loop) echo "$LOOP $file" ;;
    agent) echo "$AGENT -r $file --json /dev/null" ;;
    softflowd) echo "softflowd -r $file -d -6 -c none" ;;
    nfpcapd) mkdir -p "$s/nf"; echo "nfpcapd -r $file -w $s/nf -e 60,15" ;;
    pmacctd)
        cat >"$s/pmacctd.conf" <<EOF
daemonize: false
pcap_savefile: $file
aggregate: src_host, dst_host, src_port, dst_port, proto, vlan
plugins: print[out]
print_output_file[out]: $s/pmacct.csv
print_output_file_append[out]: true
print_output[out]: csv
print_refresh_time[out]: 3600
plugin_pipe_size: 102400000
plugin_buffer_size: 102400
EOF
        echo "pmacctd -f $s/pmacctd.conf" ;;
    argus) echo "argus -X -r $file -w /dev/null" ;;
    esac
}

# How many packets the tool says it accounted for, from its own output, so a
# tool that skips packets cannot look fast. Empty when it does not say.
packets_seen() { # name scratch
    local s=$2
    case $1 in
    loop) sed -n 's/.*packets=\([0-9]*\).*/\1/p' "$s/out" ;;
    softflowd) awk '/^Packets processed:/ {print $3; exit}' "$s/out" "$s/err" ;;
    nfpcapd) cat "$s/out" "$s/err" | sed -n 's/^Total: Processed: \([0-9]*\).*/\1/p' | tail -1 ;;
    pmacctd) [[ -s $s/pmacct.csv ]] && awk -F, 'NR > 1 {n += $7} END {printf "%d\n", n}' "$s/pmacct.csv" ;;
    agent) sed -n 's/^vigil-agent: summary: packets=\([0-9]*\).*/\1/p' "$s/err" | tail -1 ;;
    *) ;; # argus writes its records to /dev/null: see argus_seen
    esac
}

# argus's timed runs write to /dev/null; one extra, untimed run writes its
# records to a file so ra (argus-client) can sum the packets they cover.
argus_seen() { # file
    command -v ra >/dev/null || return 0
    local s="$SCRATCH/argus-verify"
    rm -rf "$s"
    mkdir -p "$s"
    argus -X -r "$1" -w "$s/records" >/dev/null 2>&1 || return 0
    ra -n -r "$s/records" -s pkts 2>/dev/null | awk '$1 ~ /^[0-9]+$/ {n += $1} END {printf "%d\n", n}'
    rm -rf "$s"
}

# Runs one tool once; prints "wall_s rss_kb cpu_s packets_seen" or "FAIL".
run_once() { # name file
    local name=$1 file=$2 s="$SCRATCH/$1"
    rm -rf "$s"
    mkdir -p "$s"
    local cmd t0 t1
    cmd=$(tool_cmd "$name" "$file" "$s")
    t0=$(date +%s%N)
    # shellcheck disable=SC2086 # the command line is split on purpose
    if ! timeout 3600 /usr/bin/time -v -o "$s/time" $cmd >"$s/out" 2>"$s/err" </dev/null; then
        echo "FAIL"
        cp "$s/err" "$SCRATCH/$name.lasterr" 2>/dev/null || true
        return
    fi
    t1=$(date +%s%N)
    local rss cpu
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$s/time")
    cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.2f", u + s}' "$s/time")
    local seen
    seen=$(packets_seen "$name" "$s")
    awk -v a="$t0" -v b="$t1" -v r="$rss" -v c="$cpu" -v n="${seen:-n/a}" \
        'BEGIN {printf "%.3f %s %s %s\n", (b - a) / 1e9, r, c, n}'
}

median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# --- the runs -----------------------------------------------------------------

TSV="$DIR/results-$STAMP.tsv"
MD="$DIR/results-$STAMP.md"
printf 'file\ttool\tpackets\tseen\truns\twall_s\toverhead_s\tadj_s\tpps\tns_per_pkt\tpeak_rss_kb\tcpu_s\tx_loop\tx_peer\tresident\tnote\n' >"$TSV"
declare -A R_WALL R_OVER R_ADJ R_RSS R_CPU R_NOTE R_RES R_SEEN
declare -A PKTS

for f in ${FILES//,/ }; do
    file=${CAPTURE[$f]}
    pk=$(sed -n 's/^\([0-9]*\) packets.*/\1/p' "$file.done")
    PKTS[$f]=${pk:-0}
    for t in $TOOLS; do
        if ! why=$(have_tool "$t"); then
            R_NOTE[$f,$t]="skipped: $why"
            note "$f/$t: skipped: $why"
            continue
        fi
        # Fixed cost: the same tool on the unit-profile capture (a few hundred packets).
        over=$(for _ in $(seq $(( RUNS > 3 ? RUNS : 3 ))); do run_once "$t" "$TINY"; done |
            awk '$1 != "FAIL" {print $1}' | median)
        warm "$file"
        res=$(residency "$file")
        walls=() rsss=() cpus=()
        for i in $(seq "$RUNS"); do
            r=$(run_once "$t" "$file")
            if [[ $r == FAIL ]]; then
                R_NOTE[$f,$t]="failed: $(tail -c 200 "$SCRATCH/$t.lasterr" 2>/dev/null | tr '\n\t' '  ')"
                note "$f/$t: run $i failed"
                walls=()
                break
            fi
            read -r w m c n <<<"$r"
            walls+=("$w") rsss+=("$m") cpus+=("$c")
            R_SEEN[$f,$t]=$n
            note "$f/$t: run $i: ${w} s, peak RSS ${m} kB, CPU ${c} s, packets seen: $n"
        done
        (( ${#walls[@]} )) || continue
        if [[ $t == argus ]]; then
            n=$(argus_seen "$file")
            [[ -n $n ]] && R_SEEN[$f,$t]=$n
        fi
        if [[ $t == loop && ${R_SEEN[$f,$t]} =~ ^[0-9]+$ ]]; then
            PKTS[$f]=${R_SEEN[$f,$t]}
        fi
        R_WALL[$f,$t]=$(printf '%s\n' "${walls[@]}" | median)
        R_CPU[$f,$t]=$(printf '%s\n' "${cpus[@]}" | median)
        R_RSS[$f,$t]=$(printf '%s\n' "${rsss[@]}" | sort -n | tail -1)
        R_OVER[$f,$t]=${over}
        R_RES[$f,$t]=$res
        # Take the fixed cost off, but never more than 90 % of the run:
        # a tool whose run is mostly fixed cost is flagged instead.
        R_ADJ[$f,$t]=$(awk -v w="${R_WALL[$f,$t]}" -v o="$over" 'BEGIN {
            if (o == "nan") o = 0; a = w - o; if (a < 0.1 * w) a = 0.1 * w; printf "%.3f", a }')
        if awk -v w="${R_WALL[$f,$t]}" -v o="$over" 'BEGIN {exit !(o != "nan" && o > 0.25 * w)}'; then
            R_NOTE[$f,$t]="fixed cost ${over} s is >25% of the run"
        fi
        seen=${R_SEEN[$f,$t]}
        if [[ $seen =~ ^[0-9]+$ && $seen != "${PKTS[$f]}" ]]; then
            R_NOTE[$f,$t]="${R_NOTE[$f,$t]:+${R_NOTE[$f,$t]}; }counted $seen of ${PKTS[$f]} packets"
        fi
    done
done

# --- report -------------------------------------------------------------------

{
    echo "# vigil offline benchmark — $STAMP"
    echo
    echo "Host: $(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(uname -r)."
    echo "Capture: vigil-gen --profile bench --flows $FLOWS --duration $DURATION --seed $SEED."
    for f in ${FILES//,/ }; do
        echo "- $f: ${CAPTURE[$f]} ($(du -h "${CAPTURE[$f]}" | cut -f1)): $(cat "${CAPTURE[$f]}.done")"
    done
    echo
    echo "Median of $RUNS runs; page cache warm (resident share shown). 'adj s' = wall time less"
    echo "the tool's fixed start/stop cost, measured on the tiny unit-profile capture; rates use 'adj s'."
    echo "x loop: time / bare libpcap loop. x peer: time / fastest peer (softflowd, nfpcapd,"
    echo "pmacctd, argus) on the same file that accounted for every packet. Peak RSS: largest"
    echo "over the runs (of the process tree /usr/bin/time waits for)."
    echo
    echo "'seen': packets the tool reports having accounted for (n/a: it does not say)."
    echo
    echo "| file | tool | wall s | fixed s | adj s | Mpkt/s | ns/pkt | peak RSS MiB | CPU s | x loop | x peer | seen | cached | note |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
} >"$MD"

for f in ${FILES//,/ }; do
    best=""
    for p in $PEERS; do
        a=${R_ADJ[$f,$p]:-}
        [[ -n $a ]] || continue
        # A peer that did not account for every packet is no baseline.
        n=${R_SEEN[$f,$p]:-n/a}
        [[ $n =~ ^[0-9]+$ && $n != "${PKTS[$f]}" ]] && continue
        if [[ -z $best ]] || awk -v a="$a" -v b="$best" 'BEGIN {exit !(a < b)}'; then best=$a; fi
    done
    loop=${R_ADJ[$f,loop]:-}
    for t in $TOOLS; do
        if [[ -z ${R_ADJ[$f,$t]:-} ]]; then
            echo "| $f | $t | | | | | | | | | | | | ${R_NOTE[$f,$t]:-} |" >>"$MD"
            printf '%s\t%s\t%s\t\t\t\t\t\t\t\t\t\t\t\t\t%s\n' "$f" "$t" "${PKTS[$f]}" "${R_NOTE[$f,$t]:-}" >>"$TSV"
            continue
        fi
        awk -v f="$f" -v t="$t" -v n="${PKTS[$f]}" -v runs="$RUNS" -v w="${R_WALL[$f,$t]}" \
            -v o="${R_OVER[$f,$t]}" -v a="${R_ADJ[$f,$t]}" -v m="${R_RSS[$f,$t]}" \
            -v c="${R_CPU[$f,$t]}" -v l="$loop" -v b="$best" -v res="${R_RES[$f,$t]}" \
            -v seen="${R_SEEN[$f,$t]:-n/a}" -v note="${R_NOTE[$f,$t]:-}" -v md="$MD" -v tsv="$TSV" 'BEGIN {
            pps = n / a; ns = a * 1e9 / n
            xl = l != "" ? sprintf("%.2f", a / l) : ""
            xp = b != "" ? sprintf("%.2f", a / b) : ""
            printf "| %s | %s | %.2f | %.2f | %.2f | %.2f | %.0f | %.1f | %.2f | %s | %s | %s | %s | %s |\n",
                f, t, w, o, a, pps / 1e6, ns, m / 1024, c, xl, xp, seen, res, note >> md
            printf "%s\t%s\t%d\t%s\t%d\t%.3f\t%.3f\t%.3f\t%.0f\t%.1f\t%d\t%.2f\t%s\t%s\t%s\t%s\n",
                f, t, n, seen, runs, w, o, a, pps, ns, m, c, xl, xp, res, note >> tsv
        }'
    done
done

cp "$MD" "$DIR/results-latest.md"
cp "$TSV" "$DIR/results-latest.tsv"
cat "$MD"
note "results: $MD, $TSV"
