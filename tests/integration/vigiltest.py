"""vigiltest.py — what the integration tests share: one line per check
("ok   what" / "FAIL what" with the detail indented below), the tally, and
running a program with its output captured. Standard library only."""
import os
import re
import shutil
import subprocess
import time

passed = 0
failed = 0
# Lines of a failure's detail shown: the first N, or with a negative N the
# last -N (a tool's log ends with what went wrong). A test may set it.
detail_lines = 20


def ok(what):
    global passed
    passed += 1
    print(f"ok   {what}", flush=True)


def fail(what, detail=""):
    global failed
    failed += 1
    print(f"FAIL {what}", flush=True)
    lines = str(detail).splitlines()
    for line in lines[:detail_lines] if detail_lines >= 0 else lines[detail_lines:]:
        print(f"    | {line}", flush=True)


def check(cond, what, detail=""):
    """ok or fail by cond; returns cond."""
    if cond:
        ok(what)
    else:
        fail(what, detail)
    return cond


def skip_unbuilt(args, names):
    """True, with the skip line said, when one of args' named programs is
    not an executable (the caller returns 77: ctest's skip)."""
    for name in names:
        path = getattr(args, name)
        if not os.access(path, os.X_OK):
            print(f"skip: {path} is not built")
            return True
    return False


def put_away(work, keep):
    """Removes the work directory, unless asked to keep it or a check
    failed: then it stays, and says where."""
    if keep or failed:
        print(f"work directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def tally(t0):
    """Prints the tally since t0 (time.time()); returns the exit status."""
    print(f"{passed} passed, {failed} failed in {time.time() - t0:.1f} s")
    return 1 if failed else 0


def run(cmd, timeout=60, **kw):
    """The finished process, output captured as text."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def start_logged(cmd, log_path, ready, timeout=15, append=False):
    """Starts a daemon with its output (stdout and stderr) going to log_path
    (appended to when append) and waits until what it wrote there since
    matches the regular expression ready. Returns (process, match). Raises
    RuntimeError, with the end of the log, when the process exits or timeout
    seconds pass first."""
    with open(log_path, "a" if append else "w") as out:
        start = out.tell()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.time() + timeout
    while True:
        with open(log_path) as f:
            f.seek(start)
            text = f.read()
        m = re.search(ready, text)
        if m:
            return proc, m
        if proc.poll() is not None or time.time() >= deadline:
            break
        time.sleep(0.05)
    raise RuntimeError(f"{os.path.basename(cmd[0])} did not start:\n" + text[-3000:])
