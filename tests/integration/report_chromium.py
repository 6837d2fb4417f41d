#!/usr/bin/env python3
"""report_chromium.py — `vigil report` rendered by a real browser.

An aggregator (loopback, --insecure) receives the generated `bench` and `unit`
captures from two agents. `vigil report --html` writes the page; headless
Chromium (Debian's `chromium`: --headless --no-sandbox --disable-gpu
--disable-background-networking) renders it twice:

  --dump-dom     the DOM after rendering: every chart is there with the number
                 of series and points expected from the agents' own records
                 (applications stacked, share bars, RTT steps with handshakes,
                 24 five-minute steps), each series drawn with exactly its points,
                 the page fetches nothing (no src/href to anything); escaping of
                 text from the network is unit-tested (tests/unit/cli/test_svg.c);
  --screenshot   a PNG, decoded here (zlib, PNG filters; no extra packages):
                 it must not be blank (enough non-white pixels, some of them in
                 colour). It is kept as the test's artefact: --artifacts DIR/report.png
                 (docs/report.png in the README is a copy of one).

usage: report_chromium.py --aggregator BIN --cli BIN --agent BIN --gen BIN
                          --artifacts DIR [--chromium BIN] [--keep]
Exit status: 0 passed, 1 a failure, 77 skipped (no chromium). Standard library only.
"""
import argparse
import collections
import html.parser
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigiltest  # noqa: E402
import analyst  # noqa: E402  (the shared rig and the figures computed from records)
from analyst import check, fail, rfc, T0  # noqa: E402

STEP = 300
SPAN = 7200


class Dom(html.parser.HTMLParser):
    """Charts (svg data-chart) with their series polylines, bars, events; and any
    element that would fetch something."""

    def __init__(self):
        super().__init__()
        self.charts = {}
        self.current = None
        self.fetching = []
        self.tags = collections.Counter()
        self.text = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags[tag] += 1
        for k in ("src", "href", "xlink:href", "srcset"):
            if k in a and not (a[k] or "").startswith("#"):
                self.fetching.append((tag, k, a[k]))
        if tag == "link" or tag == "script" or tag == "iframe" or tag == "img":
            self.fetching.append((tag, "", ""))
        if tag == "svg" and "data-chart" in a:
            self.current = a["data-chart"]
            self.charts[self.current] = {"series": int(a.get("data-series", -1)),
                                         "points": int(a.get("data-points", -1)),
                                         "lines": [], "bars": 0, "events": 0}
        elif self.current and tag == "polyline" and "series" in (a.get("class") or ""):
            pts = (a.get("points") or "").split()
            self.charts[self.current]["lines"].append((a.get("data-name"), len(pts)))
        elif self.current and tag == "rect" and a.get("class") == "bar":
            self.charts[self.current]["bars"] += 1
        elif self.current and tag == "rect" and a.get("class") == "event":
            self.charts[self.current]["events"] += 1

    def handle_endtag(self, tag):
        if tag == "svg":
            self.current = None

    def handle_data(self, data):
        self.text.append(data)


def png_pixels(path):
    """(width, height, rows of RGB(A) bytes) of an 8-bit RGB or RGBA PNG."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            if depth != 8 or ctype not in (2, 6):
                raise ValueError(f"PNG depth {depth} colour type {ctype} not handled")
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        ft = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ft == 1:
                line[i] = (line[i] + a) & 255
            elif ft == 2:
                line[i] = (line[i] + b) & 255
            elif ft == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ft == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pr) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


def chromium(binary, work, *args, timeout=90):
    return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-background-networking", "--hide-scrollbars",
                           "--user-data-dir=" + os.path.join(work, "chromium-profile"),
                           *args], capture_output=True, text=True, timeout=timeout)


def main():
    ap = argparse.ArgumentParser()
    for opt in ("aggregator", "cli", "agent", "gen", "artifacts"):
        ap.add_argument(f"--{opt}", required=True)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if not args.chromium or not os.access(args.chromium, os.X_OK):
        print("skip: no chromium (apt-get install chromium)")
        return 77
    if vigiltest.skip_unbuilt(args, ("aggregator", "cli", "agent", "gen")):
        return 77
    t_start = time.time()
    work = tempfile.mkdtemp(prefix="vigil-report.")
    rig = analyst.Rig(args, work)
    try:
        bench, unit = os.path.join(work, "bench.pcap"), os.path.join(work, "unit.pcap")
        for cmd in ([args.gen, "--profile", "bench", "--seed", "3", "--flows", "3000",
                     "--duration", "1800", "--out", bench],
                    [args.gen, "--profile", "unit", "--seed", "1", "--out", unit]):
            r = analyst.run(cmd, timeout=120)
            if r.returncode:
                raise RuntimeError(r.stderr)
        rig.start()
        recs = {"bench": rig.deliver("bench", bench), "unit": rig.deliver("unit", unit)}
        check(analyst.wait_stored(rig, {n: len(v) for n, v in recs.items()}),
              "both agents' records are stored")
        allrecs = [x for v in recs.values() for x in v]

        page = os.path.join(work, "report.html")
        r = analyst.run([args.cli, "report", "--since", rfc(T0), "--until", rfc(T0 + SPAN),
                         "--step", f"{STEP}s", "--html", page, "--connect", rig.endpoint,
                         "--insecure"], timeout=60)
        if not check(r.returncode == 0 and os.path.getsize(page) > 1000,
                     "vigil report writes the page", r.stderr):
            return 1

        # what the charts must hold, from the records
        apps = collections.Counter()
        for x in allrecs:
            apps[x.get("app", "")] += x["bytes_fwd"] + x["bytes_rev"]
        stacked = min(6, len(apps)) + (1 if len(apps) > 6 else 0)
        flows = analyst.merged_flows(recs)
        rtt_steps = {f["end"] // 1_000_000 // STEP for f in flows if f["rtt"] is not None
                     and T0 * 1_000_000 <= f["end"] < (T0 + SPAN) * 1_000_000}
        steps = SPAN // STEP

        r = chromium(args.chromium, work, "--dump-dom", "file://" + page)
        dom = Dom()
        dom.feed(r.stdout)
        ch = dom.charts
        check(r.returncode == 0 and "<svg" in r.stdout, "chromium renders the page",
              r.stderr[-1500:])
        for name in ("bandwidth_out", "bandwidth_in"):
            c = ch.get(name, {})
            check(c.get("series") == stacked and len(c.get("lines", [])) == stacked
                  and all(n == steps for _, n in c["lines"]) and c.get("points") == steps,
                  f"{name}: {stacked} applications stacked, each drawn with {steps} points",
                  c)
        c = ch.get("share", {})
        nbars = min(12, len(apps))
        check(c.get("bars") == nbars and c.get("lines") == [("cumulative", nbars)],
              f"share: {nbars} application bars and the cumulative line", c)
        c = ch.get("rtt", {})
        check(c.get("series") == 2 and [n for _, n in c.get("lines", [])] == [len(rtt_steps)] * 2,
              f"rtt: p50 and p95 over the {len(rtt_steps)} steps with handshakes", c)
        c = ch.get("retrans", {})
        check([n for _, n in c.get("lines", [])] == [len(rtt_steps)],
              "retrans: one line over the same steps", c)
        check("alerts" in ch, "alerts: a timeline (empty or not) is drawn", list(ch))
        check(not dom.fetching, "the page fetches nothing (no script, link, img, src, href)",
              dom.fetching)
        text = "".join(dom.text)
        check("bench" in text and "unit" in text and len(ch) == 6,
              "the agents' table and six charts are on the page", sorted(ch))

        os.makedirs(args.artifacts, exist_ok=True)
        shot = os.path.join(args.artifacts, "report.png")
        if os.path.exists(shot):
            os.remove(shot)
        r = chromium(args.chromium, work, f"--screenshot={shot}", "--window-size=1000,2700",
                     "file://" + page)
        if check(r.returncode == 0 and os.path.exists(shot), f"screenshot written: {shot}",
                 r.stderr[-1500:]):
            w, h, bpp, rows = png_pixels(shot)
            inked = coloured = 0
            for row in rows:
                for i in range(0, w * bpp, bpp):
                    rr, g, b = row[i], row[i + 1], row[i + 2]
                    if rr < 235 or g < 235 or b < 235:
                        inked += 1
                        if max(rr, g, b) - min(rr, g, b) > 60:
                            coloured += 1
            check(inked > 0.02 * w * h and coloured > 0.002 * w * h,
                  f"the screenshot is not blank: {w}x{h}, {100 * inked / (w * h):.1f} % inked, "
                  f"{100 * coloured / (w * h):.2f} % in colour")
        shutil.copy(page, os.path.join(args.artifacts, "report.html"))
    except Exception as e:
        fail("report test aborted", repr(e))
    finally:
        rig.stop()
        vigiltest.put_away(work, args.keep)
    return vigiltest.tally(t_start)


if __name__ == "__main__":
    sys.exit(main())
