#!/usr/bin/env bash
# seed_corpus.sh — builds the decoder's seed corpus (tests/fuzz/corpus/decode/)
# from real captures.
#
# Every frame of the given captures (pcap or pcapng, any byte order) becomes a
# candidate input in fuzz_decode.c's layout: 2 bytes big-endian link type, then
# the frame. Frames are grouped by their shape — link type plus the protocol
# stack down to the innermost transport header, as tshark names it (without
# tshark: link type, EtherType and size class) — and a few frames of each
# shape are kept, so the committed corpus covers distinct link types and
# encapsulations while staying small (defaults: <= 300 files, <= 1 MiB).
# Every frame of a file under a "malformed" folder is its own shape (up to 3
# per file): those are the inputs that broke other parsers.
#
# Frames longer than 2048 bytes are cut to 2048 and marked as cut by the snap
# length (high nibble of the link-type word, see fuzz_decode.c).
#
# Files are named seed-<sha1 of content>; rerunning adds nothing twice.
# --clean first removes the old seed-* files (never crash reproducers, which
# are kept under their own names).
#
# usage: tests/fuzz/seed_corpus.sh [--out DIR] [--max-files N] [--max-bytes N]
#                                  [--clean] [CAPTURE|FOLDER...]
# Default inputs: ../shared/pcaps next to the repository, and any *.pcap the
# build wrote under build*/tests/integration/ (the generated captures).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out="$here/corpus/decode"
max_files=300
max_bytes=$((1024 * 1024))
clean=0
inputs=()
while [ $# -gt 0 ]; do
    case "$1" in
    --out) out=$2; shift 2 ;;
    --max-files) max_files=$2; shift 2 ;;
    --max-bytes) max_bytes=$2; shift 2 ;;
    --clean) clean=1; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//; /^set -e/d'; exit 0 ;;
    -*) echo "seed_corpus.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    *) inputs+=("$1"); shift ;;
    esac
done
if [ ${#inputs[@]} -eq 0 ]; then
    [ -d "$repo/../shared/pcaps" ] && inputs+=("$repo/../shared/pcaps")
    for f in "$repo"/build*/tests/integration/*.pcap; do
        [ -f "$f" ] && inputs+=("$f")
    done
fi
if [ ${#inputs[@]} -eq 0 ]; then
    echo "seed_corpus.sh: no captures given and ../shared/pcaps is absent" >&2
    exit 1
fi

mkdir -p "$out"
if [ $clean = 1 ]; then
    find "$out" -maxdepth 1 -type f -name 'seed-*' -delete
fi

tshark_bin=$(command -v tshark || true)

python3 - "$out" "$max_files" "$max_bytes" "$tshark_bin" "${inputs[@]}" <<'PY'
import hashlib
import os
import struct
import subprocess
import sys

out, max_files, max_bytes, tshark = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
paths = sys.argv[5:]
FRAME_CAP = 2048
PER_SHAPE = 2
PER_MALFORMED_FILE = 3
# pcap's on-disk link types that pcap_datalink() reports under another value.
LINKTYPE_TO_DLT = {101: 12, 100: 11}


def read_pcap(data):
    """Yields (linktype, frame, wirelen) from a classic pcap file."""
    magic = data[:4]
    if magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    elif magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    else:
        return
    if len(data) < 24:
        return
    lt = struct.unpack(e + "I", data[20:24])[0] & 0x03FFFFFF
    off = 24
    while off + 16 <= len(data):
        _, _, incl, orig = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        if incl > len(data) - off:
            break
        yield lt, data[off:off + incl], orig
        off += incl


def read_pcapng(data):
    """Yields (linktype, frame, wirelen) from a pcapng file (EPB, SPB, OPB)."""
    off, e, ifaces = 0, "<", []
    while off + 12 <= len(data):
        btype = struct.unpack(e + "I", data[off:off + 4])[0]
        if btype == 0x0A0D0D0A:
            bom = data[off + 8:off + 12]
            e = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            ifaces = []
        blen = struct.unpack(e + "I", data[off + 4:off + 8])[0]
        if blen < 12 or blen > len(data) - off:
            break
        body = data[off + 8:off + blen - 4]
        if btype == 1 and len(body) >= 2:  # Interface Description
            ifaces.append(struct.unpack(e + "H", body[:2])[0])
        elif btype in (6, 2) and len(body) >= 20:  # Enhanced / obsolete Packet
            iface = struct.unpack(e + "I", body[:4])[0] if btype == 6 else \
                struct.unpack(e + "H", body[:2])[0]
            cap, orig = struct.unpack(e + "II", body[12:20])
            if iface < len(ifaces) and cap <= len(body) - 20:
                yield ifaces[iface], body[20:20 + cap], orig
        elif btype == 3 and len(body) >= 4 and ifaces:  # Simple Packet
            orig = struct.unpack(e + "I", body[:4])[0]
            yield ifaces[0], body[4:4 + min(orig, len(body) - 4)], orig
        off += blen


def frames_of(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        return list(read_pcapng(data))
    return list(read_pcap(data))


def tshark_shapes(path, count):
    """frame.protocols of each frame, or None without tshark (or if it fails)."""
    if not tshark:
        return None
    try:
        p = subprocess.run([tshark, "-n", "-r", path, "-o", "ip.defragment:FALSE",
                            "-o", "ipv6.defragment:FALSE", "-T", "fields",
                            "-e", "frame.protocols"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = p.stdout.decode("utf-8", "replace").splitlines()
    if len(lines) != count:
        return None
    shapes = []
    for line in lines:
        toks = line.split(":")
        last_ip = max([i for i, t in enumerate(toks) if t in ("ip", "ipv6") or
                       t.startswith("ipv6.")] or [len(toks) - 2])
        shapes.append(":".join(toks[:last_ip + 2]))
    return shapes


def fallback_shape(lt, frame):
    ethertype = frame[12:14].hex() if lt == 1 and len(frame) >= 14 else ""
    return "lt%d/%s/%d" % (lt, ethertype, min(len(frame) // 256, 8))


def walk(paths):
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for name in sorted(files):
                    yield os.path.join(root, name)
        elif os.path.isfile(p):
            yield p


def encode(lt, frame, wirelen):
    dlt = LINKTYPE_TO_DLT.get(lt, lt) & 0x0FFF
    cut = 0
    if len(frame) > FRAME_CAP:
        frame = frame[:FRAME_CAP]
    if wirelen > len(frame):
        # the smallest n with caplen + 2^(n+3) >= wirelen, at most 15
        extra = wirelen - len(frame)
        cut = 1
        while cut < 15 and (1 << (cut + 3)) < extra:
            cut += 1
    return struct.pack(">H", cut << 12 | dlt) + frame


groups = {}  # shape -> list of inputs
order = []
shape_lt = {}  # shape -> link type of its frames
for path in walk(paths):
    frames = frames_of(path)
    if not frames:
        continue
    malformed = "malformed" in path.split(os.sep)
    shapes = None if malformed else tshark_shapes(path, len(frames))
    for i, (lt, frame, wirelen) in enumerate(frames):
        if malformed:
            if i >= PER_MALFORMED_FILE:
                break
            shape = "malformed:%s:%d" % (os.path.basename(path), i)
        else:
            shape = "lt%d:%s" % (lt, shapes[i] if shapes else fallback_shape(lt, frame))
        if shape not in groups:
            groups[shape] = []
            order.append(shape)
            shape_lt[shape] = lt
        groups[shape].append(encode(lt, frame, wirelen))

# Link types no capture here uses: wrap the first raw IPv4 and IPv6 packets
# found (link type RAW, IPV4, IPV6) in their headers.
#   DLT_LOOP (108): 4-byte address family, network order (2 = IPv4, 24 = IPv6 on BSD)
#   DLT_C_HDLC (104): address 0x0f, control 0x00, EtherType
#   DLT_PPP (9): address 0xff, control 0x03, PPP protocol 0x0021 / 0x0057
raw = {}
for shape in order:
    lt = shape_lt[shape]
    if not shape.startswith("malformed:") and LINKTYPE_TO_DLT.get(lt, lt) in (12, 228, 229):
        for blob in groups[shape]:
            frame = blob[2:]
            if frame and frame[0] >> 4 in (4, 6):
                raw.setdefault(frame[0] >> 4, frame)
for ver, frame in sorted(raw.items()):
    wraps = {
        108: struct.pack(">I", 2 if ver == 4 else 24),
        104: b"\x0f\x00" + (b"\x08\x00" if ver == 4 else b"\x86\xdd"),
        9: b"\xff\x03" + (b"\x00\x21" if ver == 4 else b"\x00\x57"),
    }
    for dlt, hdr in wraps.items():
        shape = "synth:%d:ipv%d" % (dlt, ver)
        groups[shape] = [encode(dlt, hdr + frame, len(hdr) + len(frame))]
        order.append(shape)

# Per shape: the smallest frame, then the largest (different code paths for
# lengths), then stop. Round-robin over shapes so caps cut evenly.
picks = {}
for shape in order:
    cands = sorted(set(groups[shape]), key=len)
    picks[shape] = [cands[0]] + ([cands[-1]] if len(cands) > 1 else [])
chosen, total = [], 0
for rnd in range(PER_SHAPE):
    for shape in order:
        if rnd < len(picks[shape]):
            blob = picks[shape][rnd]
            if len(chosen) >= max_files or total + len(blob) > max_bytes:
                continue
            chosen.append(blob)
            total += len(blob)

written = 0
for blob in chosen:
    name = os.path.join(out, "seed-" + hashlib.sha1(blob).hexdigest())
    if not os.path.exists(name):
        with open(name, "wb") as f:
            f.write(blob)
        written += 1
print("seed_corpus: %d shapes, %d inputs chosen (%d bytes), %d new files in %s"
      % (len(order), len(chosen), total, written, out))
PY
