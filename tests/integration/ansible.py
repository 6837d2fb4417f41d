#!/usr/bin/env python3
"""ansible.py — the Ansible roles (ansible/), linted and run for real on this machine.

  lint     ansible-lint (the profile and settings of ansible/.ansible-lint, offline)
           and ansible-playbook --syntax-check of site.yml and remove.yml pass, and
           ansible-doc reads both roles' argument specs. A missing ansible-lint or
           ansible-playbook is a failure: scripts/packages.txt installs them.

  deploy   ansible-playbook site.yml against this machine (ansible_connection=local)
           deploys one aggregator and two agents (agent-a, agent-b), each "host"
           under its own prefix in a temporary folder, with service names and
           ports of its own, so the real /etc, /opt, /var and systemd are never
           touched. Then:
             - every play recap has failed=0; the three services run the
               ExecStart of their installed unit, as the unit's User=, the agents
               with CAP_NET_RAW and CAP_NET_ADMIN only; configs carry the
               variables (interface, filter, local nets, extra options);
             - each agent's key pair was generated on the agent (secret key 0600,
               owned by the service user, never copied to the control node) and
               its public key is in the aggregator's allow list; the aggregator's
               public key is on each agent;
             - the units pass systemd-analyze verify and an offline
               systemd-analyze security review (skipped, with a message, when
               systemd-analyze is missing);
             - UDP traffic on lo reaches each agent (live capture, a BPF filter
               per agent), the flows reach the aggregator, and `vigil agents` /
               `vigil flows` with the deployed analyst key and cli.conf list
               them, each flow under the agent whose filter matches it;
             - a second run reports changed=0 on every host and restarts nothing;
             - a new build label restarts every service on the new programs, and
               setting the previous label back rolls back (restarts again); in
               that run agent-b is marked vigil_agent_state=absent: it is
               removed and its key revoked at the aggregator;
             - remove.yml stops everything and removes units, configuration and
               programs, keeps the store, and forgets the agents' keys.
           systemd is never used, even where it is PID 1 (the test must not touch
           the machine's systemd): the roles run with
           vigil_*_service_manager=command and call this script's `svc`
           supervisor, which starts the ExecStart= of the installed unit file
           detached, as its User=/Group= with its AmbientCapabilities=,
           CapabilityBoundingSet=, NoNewPrivileges= and UMask= (through setpriv);
           the rest of the unit's sandboxing is only checked by
           systemd-analyze. Needs root (live capture, files owned by the service
           account `nobody`): exit 77 otherwise. Every process started is stopped
           at the end.

  svc      the supervisor: svc --state DIR start|restart|reload|stop|status UNIT_FILE,
           and svc --state DIR stop-all. It prints "started", "running",
           "reloaded", "stopped" or "not running" and the unit's name.

usage: ansible.py lint --ansible-dir DIR
       ansible.py deploy --ansible-dir DIR --build DIR [--keep]
       ansible.py svc --state DIR ACTION [UNIT_FILE]
Exit status: 0 all passed, 1 a failure, 77 skipped. Standard library only.
"""
import argparse
import json
import os
import pwd
import grp
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigiltest  # noqa: E402
from vigiltest import check, fail, ok  # noqa: E402

vigiltest.detail_lines = -40  # the end of ansible-playbook's output says what failed


def info(msg):
    print(f"     {msg}", flush=True)


# ---- the supervisor --------------------------------------------------------


def parse_unit(path):
    """The [Service] settings of a unit file: name -> list of values."""
    service = {}
    section = None
    with open(path, encoding="utf-8") as f:
        text = f.read().replace("\\\n", " ")
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section != "Service" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        service.setdefault(key.strip(), []).append(value.strip())
    return service


def proc_start_time(pid):
    """Field 22 of /proc/PID/stat, or None when the process is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def caps_list(values):
    """AmbientCapabilities= style values -> ['net_raw', ...]."""
    caps = []
    for v in values:
        caps = [] if v == "" else caps + [c.lower().removeprefix("cap_") for c in v.split()]
    return caps


class Supervisor:
    def __init__(self, state):
        self.state = state
        os.makedirs(state, exist_ok=True)

    def files(self, unit_file):
        name = os.path.basename(unit_file).removesuffix(".service")
        base = os.path.join(self.state, name)
        return name, base + ".pid", base + ".log"

    def pid(self, unit_file):
        name, pidfile, _ = self.files(unit_file)
        try:
            with open(pidfile, encoding="utf-8") as f:
                pid, start = f.read().split()
            pid = int(pid)
        except (OSError, ValueError):
            return None
        return pid if proc_start_time(pid) == start else None

    def command(self, unit_file):
        svc = parse_unit(unit_file)
        argv = shlex.split(svc["ExecStart"][-1])
        prefix = []
        user = svc.get("User", [""])[-1]
        if user and os.geteuid() == 0:
            group = svc.get("Group", [""])[-1] or grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
            prefix = ["setpriv", f"--reuid={user}", f"--regid={group}", "--init-groups"]
            ambient = caps_list(svc.get("AmbientCapabilities", []))
            if ambient:
                caps = ",".join("+" + c for c in ambient)
                prefix += [f"--inh-caps={caps}", f"--ambient-caps={caps}"]
            if "CapabilityBoundingSet" in svc:
                bounding = caps_list(svc["CapabilityBoundingSet"])
                prefix += ["--bounding-set=" + ",".join(["-all"] + ["+" + c for c in bounding])]
            if svc.get("NoNewPrivileges", ["no"])[-1] in ("yes", "true", "1"):
                prefix += ["--no-new-privs"]
            prefix += ["--"]
        umask = int(svc.get("UMask", ["0022"])[-1], 8)
        return prefix + argv, umask, svc

    def start(self, unit_file):
        name, pidfile, logfile = self.files(unit_file)
        pid = self.pid(unit_file)
        if pid:
            print(f"running {name} (pid {pid})")
            return 0
        argv, umask, _ = self.command(unit_file)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        with open(logfile, "ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} start: {shlex.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/",
                                    env=env, start_new_session=True,
                                    preexec_fn=lambda: os.umask(umask))
        start = None
        for _ in range(50):
            start = proc_start_time(proc.pid)
            if start:
                break
            time.sleep(0.01)
        with open(pidfile, "w", encoding="utf-8") as f:
            f.write(f"{proc.pid} {start}\n")
        time.sleep(0.5)  # a daemon that refuses its configuration exits at once
        if proc.poll() is not None:
            with open(logfile, encoding="utf-8", errors="replace") as f:
                sys.stderr.write(f.read()[-3000:])
            print(f"failed {name}: exit status {proc.returncode}")
            return 1
        print(f"started {name} (pid {proc.pid})")
        return 0

    def stop(self, unit_file, quiet=False):
        name, pidfile, _ = self.files(unit_file)
        pid = self.pid(unit_file)
        if not pid:
            if not quiet:
                print(f"not running {name}")
            return 0
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while proc_start_time(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc_start_time(pid):
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        try:
            os.unlink(pidfile)
        except OSError:
            pass
        print(f"stopped {name} (pid {pid})")
        return 0

    def reload(self, unit_file):
        name, _, _ = self.files(unit_file)
        pid = self.pid(unit_file)
        if not pid:
            print(f"not running {name}")
            return 0
        _, _, svc = self.command(unit_file)
        for cmd in svc.get("ExecReload", []):
            cmd = cmd.replace("${MAINPID}", str(pid)).replace("$MAINPID", str(pid))
            subprocess.run(shlex.split(cmd), check=True)
        print(f"reloaded {name} (pid {pid})")
        return 0

    def stop_all(self):
        for f in sorted(os.listdir(self.state)):
            if not f.endswith(".pid"):
                continue
            try:
                with open(os.path.join(self.state, f), encoding="utf-8") as fh:
                    pid, start = fh.read().split()
                pid = int(pid)
            except (OSError, ValueError):
                continue
            if proc_start_time(pid) == start:
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 10
                while proc_start_time(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if proc_start_time(pid):
                    os.kill(pid, signal.SIGKILL)
                print(f"stopped {f.removesuffix('.pid')} (pid {pid})")
            os.unlink(os.path.join(self.state, f))


def main_svc(args):
    sup = Supervisor(args.state)
    if args.action == "stop-all":
        sup.stop_all()
        return 0
    if not args.unit:
        print("svc: a unit file is needed", file=sys.stderr)
        return 2
    if args.action == "start":
        return sup.start(args.unit)
    if args.action == "stop":
        return sup.stop(args.unit)
    if args.action == "restart":
        sup.stop(args.unit, quiet=True)
        return sup.start(args.unit)
    if args.action == "reload":
        return sup.reload(args.unit)
    name = sup.files(args.unit)[0]
    pid = sup.pid(args.unit)
    print(f"running {name} (pid {pid})" if pid else f"not running {name}")
    return 0 if pid else 3


# ---- lint --------------------------------------------------------------------


def run(cmd, timeout=120, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def ansible_env(tmp):
    env = dict(os.environ)
    env.update({
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_HOME": os.path.join(tmp, "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": os.path.join(tmp, "ansible-local"),
        "ANSIBLE_REMOTE_TEMP": os.path.join(tmp, "ansible-remote"),
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "PY_COLORS": "0",
        "NO_COLOR": "1",
    })
    return env


def main_lint(args):
    adir = os.path.abspath(args.ansible_dir)
    missing = [t for t in ("ansible-lint", "ansible-playbook", "ansible-doc") if not shutil.which(t)]
    if missing:
        fail("ansible tools installed", f"missing: {' '.join(missing)} (apt-get install ansible ansible-lint; "
             "scripts/packages.txt lists them)")
        return 1
    tmp = tempfile.mkdtemp(prefix="vigil-ansible-lint.")
    try:
        env = ansible_env(tmp)
        version = run(["ansible-lint", "--version"], env=env).stdout.strip().splitlines()
        info(f"{version[0] if version else 'ansible-lint'}")
        r = run(["ansible-lint", "--offline", "--nocolor", "-c", ".ansible-lint"], cwd=adir, env=env,
                timeout=300)
        out = r.stdout + r.stderr
        summary = [ln for ln in out.splitlines() if "profile" in ln or "violation" in ln.lower()]
        check(r.returncode == 0 and "Passed" in out,
              f"ansible-lint: {summary[-1].strip() if summary else 'rc=' + str(r.returncode)}", out)
        r = run(["ansible-playbook", "-i", "inventory/example.ini", "--syntax-check", "site.yml", "remove.yml"],
                cwd=adir, env=env)
        check(r.returncode == 0, "ansible-playbook --syntax-check site.yml remove.yml", r.stdout + r.stderr)
        for role in ("vigil_aggregator", "vigil_agent"):
            r = run(["ansible-doc", "-t", "role", "-r", "roles", "--json", role], cwd=adir, env=env)
            try:
                doc = json.loads(r.stdout)[role]["entry_points"]["main"]
                n = len(doc["options"])
                names = [k for k in doc["options"] if not k.startswith(role + "_")]
            except (ValueError, KeyError, TypeError):
                n, names = 0, ["(unreadable)"]
            check(r.returncode == 0 and n > 10 and not names,
                  f"{role}: meta/argument_specs.yml documents {n} options, each prefixed {role}_",
                  r.stdout[-2000:] + r.stderr + f"\nnot prefixed: {names}")
            with open(os.path.join(adir, "roles", role, "defaults", "main.yml"), encoding="utf-8") as f:
                defaults = set(re.findall(r"^([a-z_][a-z0-9_]*):", f.read(), re.M))
            undocumented = sorted(defaults - set(doc["options"] if n else []))
            check(not undocumented, f"{role}: every default is in the argument spec",
                  f"undocumented: {undocumented}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{vigiltest.passed} passed, {vigiltest.failed} failed")
    return 0 if vigiltest.failed == 0 else 1


# ---- deploy --------------------------------------------------------------------


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


class Deploy:
    def __init__(self, args, tmp):
        self.a = args
        self.tmp = tmp
        self.adir = os.path.abspath(args.ansible_dir)
        self.tid = f"vigil-test-{os.getpid()}"
        self.port = free_port()
        self.udp = {"agent-a": free_port(socket.SOCK_DGRAM), "agent-b": free_port(socket.SOCK_DGRAM)}
        self.hosts = {n: os.path.join(tmp, "hosts", n) for n in ("aggregator", "agent-a", "agent-b")}
        self.state = os.path.join(tmp, "run")
        self.env = ansible_env(tmp)
        self.runs = 0

    # where the roles put things, under each host's prefix
    def unit(self, host):
        return os.path.join(self.hosts[host], "etc/systemd/system", f"{self.tid}-{host}.service")

    def write_inventory(self, absent=()):
        inv = os.path.join(self.tmp, "inventory.ini")
        agg = self.hosts["aggregator"]
        lines = [
            "# written by tests/integration/ansible.py: three hosts on this machine, each under its own prefix",
            "[vigil_aggregator]",
            f"aggregator ansible_host=127.0.0.1 vigil_aggregator_prefix={agg} "
            f"vigil_aggregator_service_name={self.tid}-aggregator",
            "",
            "[vigil_agents]",
        ]
        for n in ("agent-a", "agent-b"):
            lines.append(f"{n} vigil_agent_prefix={self.hosts[n]} vigil_agent_service_name={self.tid}-{n} "
                         f"vigil_agent_filter=\"udp port {self.udp[n]}\""
                         + (" vigil_agent_state=absent" if n in absent else ""))
        lines += [
            "",
            "[all:vars]",
            "ansible_connection=local",
            f"ansible_python_interpreter={shutil.which('python3') or sys.executable}",
            f"vigil_aggregator_port={self.port}",
        ]
        with open(inv, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        svc_cmd = [sys.executable, os.path.abspath(__file__), "svc", "--state", self.state]
        extra = {
            "vigil_version": "test-1",
            "vigil_dist_root": os.path.join(self.tmp, "dist"),
            "vigil_key_store": os.path.join(self.tmp, "keys"),
            "vigil_build_dir": os.path.abspath(self.a.build),
            # no account is created: the services run as nobody
            "vigil_aggregator_user": "nobody",
            "vigil_aggregator_group": "nogroup",
            "vigil_aggregator_create_user": False,
            "vigil_agent_user": "nobody",
            "vigil_agent_group": "nogroup",
            "vigil_agent_create_user": False,
            "vigil_aggregator_service_manager": "command",
            "vigil_aggregator_service_command": svc_cmd,
            "vigil_agent_service_manager": "command",
            "vigil_agent_service_command": svc_cmd,
            "vigil_aggregator_listen_address": "127.0.0.1",
            "vigil_aggregator_map_size": "64M",
            "vigil_aggregator_extra_options": {"status-interval": "5s", "query-threads": 1},
            "vigil_aggregator_writable_dirs": ["/var/log/vigil"],
            "vigil_agent_interface": "lo",
            "vigil_agent_local_nets": ["127.0.0.0/8", "::1/128"],
            "vigil_agent_idle_timeout": "2s",
            "vigil_agent_buffer_size": "4M",
            "vigil_agent_max_flows": 4096,
        }
        self.extra = os.path.join(self.tmp, "vars.json")
        with open(self.extra, "w", encoding="utf-8") as f:
            json.dump(extra, f, indent=1)
        self.inventory = inv

    def playbook(self, book, *extra):
        self.runs += 1
        log = os.path.join(self.tmp, f"run{self.runs}-{book.removesuffix('.yml')}.log")
        cmd = ["ansible-playbook", "-i", self.inventory, book, "-e", "@" + self.extra, *extra]
        info(f"run {self.runs}: (cd ansible && {shlex.join(cmd)})")
        t0 = time.monotonic()
        r = run(cmd, cwd=self.adir, env=self.env, timeout=600)
        with open(log, "w", encoding="utf-8") as f:
            f.write(r.stdout + r.stderr)
        recap = {m[0]: dict(zip(("ok", "changed", "unreachable", "failed"), map(int, m[1:])))
                 for m in RECAP.findall(r.stdout)}
        info(f"run {self.runs} took {time.monotonic() - t0:.0f} s; PLAY RECAP:")
        for line in r.stdout.splitlines():
            if RECAP.match(line):
                info("  " + re.sub(r"\s+", " ", line.strip()))
        return r, recap, log

    def recap_ok(self, r, recap, what, hosts):
        good = r.returncode == 0 and set(hosts) <= set(recap) and all(
            v["failed"] == 0 and v["unreachable"] == 0 for v in recap.values())
        return check(good, what, r.stdout[-6000:] + r.stderr[-3000:])

    def pids(self):
        sup = Supervisor(self.state)
        return {h: sup.pid(self.unit(h)) for h in self.hosts}

    def cli(self, *args):
        agg = self.hosts["aggregator"]
        vigil = os.path.join(agg, "usr/local/bin/vigil")
        return run([vigil, *args, "--config", os.path.join(agg, "etc/vigil/cli.conf")], timeout=30)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def status_field(pid, name):
    for line in read(f"/proc/{pid}/status").splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].split()
    return []


def udp_traffic(ports, flows_per_port=4, packets=3):
    """An echo server per port on 127.0.0.1; each flow is a new client socket."""
    servers = []
    stop = threading.Event()

    def echo(sock):
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(2048)
                sock.sendto(data, peer)
            except socket.timeout:
                continue
            except OSError:
                return

    threads = []
    for p in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", p))
        servers.append(s)
        t = threading.Thread(target=echo, args=(s,), daemon=True)
        t.start()
        threads.append(t)
    answered = 0
    for p in ports:
        for i in range(flows_per_port):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                c.settimeout(2)
                for k in range(packets):
                    c.sendto(f"vigil ansible test flow {i} packet {k}".encode(), ("127.0.0.1", p))
                    try:
                        c.recvfrom(2048)
                        answered += 1
                    except socket.timeout:
                        pass
    stop.set()
    for t in threads:
        t.join()
    for s in servers:
        s.close()
    return answered


class PacketClock:
    """Sends one datagram every 0.5 s to each port from one fixed socket while
    it runs. A live vigil-agent expires idle flows on packet time, and its
    capture gets no wake-up while its filter matches nothing (libpcap's
    TPACKET_V3 read waits without a timeout), so without later packets the
    test's flows would only end when the agent stops. The clock's own flow
    (its source port is `port`) stays open and is left out of the checks."""

    def __init__(self, ports):
        self.ports = ports
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.tick, daemon=True)

    def tick(self):
        while not self.stop.wait(0.5):
            for p in self.ports:
                try:
                    self.sock.sendto(b"vigil ansible test clock", ("127.0.0.1", p))
                except OSError:
                    pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.sock.close()


def deploy_checks(d):
    adir = d.adir
    d.write_inventory()
    info(f"work folder {d.tmp}; aggregator on 127.0.0.1:{d.port}; agents capture lo, "
         f"agent-a udp port {d.udp['agent-a']}, agent-b udp port {d.udp['agent-b']}")
    info("systemd is not used (the test leaves the machine's systemd alone): the roles run with "
         "vigil_*_service_manager=command and this script's supervisor starts each unit's ExecStart")

    # ---- first run ----
    r, recap, log = d.playbook("site.yml")
    if not d.recap_ok(r, recap, "first run of site.yml: aggregator and two agents deployed, no failure",
                      ["localhost", "aggregator", "agent-a", "agent-b"]):
        return
    pids = d.pids()
    if not check(all(pids.values()), f"three services running under the supervisor: {pids}",
                 "\n".join(read(os.path.join(d.state, f)) for f in os.listdir(d.state) if f.endswith(".log"))):
        return

    # ---- what runs is what the units say, with the deployed files ----
    for h, pid in pids.items():
        unit = parse_unit(d.unit(h))
        argv = shlex.split(unit["ExecStart"][-1])
        cmdline = read(f"/proc/{pid}/cmdline").rstrip("\0").split("\0")
        uid = status_field(pid, "Uid")
        eff = int(status_field(pid, "CapEff")[0], 16)
        want_caps = (1 << 12) | (1 << 13) if h.startswith("agent") else 0  # CAP_NET_ADMIN, CAP_NET_RAW
        check(cmdline == argv and uid and int(uid[0]) == pwd.getpwnam("nobody").pw_uid and eff == want_caps,
              f"{h}: runs its unit's ExecStart as nobody with capabilities {eff:#x}",
              f"cmdline {cmdline}\nExecStart {argv}\nuid {uid} CapEff {eff:#x}")
    agg = d.hosts["aggregator"]
    aconf = read(os.path.join(agg, "etc/vigil/aggregator.conf"))
    check(f"listen = tcp://127.0.0.1:{d.port}" in aconf and "status-interval = 5s" in aconf
          and "query-threads = 1" in aconf and "flow-retention = 90d" in aconf,
          "aggregator.conf: listen address and port, retention, vigil_aggregator_extra_options lines", aconf)
    unit = parse_unit(d.unit("aggregator"))
    logdir = os.path.join(agg, "var/log/vigil")
    check(unit.get("ReadWritePaths") == [f"{os.path.join(agg, 'var/lib/vigil')} {logdir}"]
          and os.path.isdir(logdir) and os.stat(logdir).st_uid == pwd.getpwnam("nobody").pw_uid,
          "aggregator unit: ReadWritePaths is the store and vigil_aggregator_writable_dirs (created, nobody's)",
          f"{unit.get('ReadWritePaths')}")
    dump = run([os.path.join(agg, "opt/vigil/test-1/bin/vigil-aggregator"), "--config",
                os.path.join(agg, "etc/vigil/aggregator.conf"), "--dump-config"])
    check(dump.returncode == 0 and "status-interval = 5s" in dump.stdout and "query-threads = 1" in dump.stdout,
          "vigil-aggregator --dump-config of the deployed config has the extra options", dump.stdout + dump.stderr)
    for h in ("agent-a", "agent-b"):
        conf = read(os.path.join(d.hosts[h], "etc/vigil/agent.conf"))
        check("interface = lo" in conf and f'filter = udp port {d.udp[h]}' in conf
              and "local-net = 127.0.0.0/8" in conf and f"agent-name = {h}" in conf
              and f"aggregator = tcp://127.0.0.1:{d.port}" in conf,
              f"{h}: agent.conf has the interface, filter, local nets, name and aggregator", conf)

    # ---- keys ----
    store = os.path.join(d.tmp, "keys")
    agg_pub = read(os.path.join(agg, "etc/vigil/aggregator.pub"))
    for h in ("agent-a", "agent-b"):
        kdir = os.path.join(d.hosts[h], "etc/vigil/agent")
        st = os.stat(os.path.join(kdir, f"{h}.key"))
        pub = read(os.path.join(kdir, f"{h}.pub"))
        allowed = os.path.join(agg, "etc/vigil/agents.d", f"{h}.pub")
        check((st.st_mode & 0o777) == 0o600 and st.st_uid == pwd.getpwnam("nobody").pw_uid
              and os.path.exists(allowed) and read(allowed) == pub
              and read(os.path.join(store, "agents", f"{h}.pub")) == pub
              and read(os.path.join(kdir, "aggregator.pub")) == agg_pub,
              f"{h}: key pair made on the agent (0600, nobody), public key in the aggregator's agents.d, "
              "aggregator's public key on the agent")
    secrets = [os.path.join(dp, f) for dp, _, fs in os.walk(store) for f in fs if not f.endswith(".pub")]
    check(not secrets, "no secret key on the control node's key store", "\n".join(secrets))
    check(os.path.exists(os.path.join(agg, "etc/vigil/analysts.d/admin.pub")),
          "the local analyst's key is in the aggregator's analysts.d")

    # ---- the units ----
    sda = shutil.which("systemd-analyze")
    if not sda:
        info("systemd-analyze is not installed: the units' verify and security checks are skipped")
    else:
        for h in d.hosts:
            r = run([sda, "verify", "--man=no", d.unit(h)], cwd=d.tmp)
            # nobody stands in for the service account; systemd rightly warns about it
            noise = [ln for ln in (r.stdout + r.stderr).splitlines()
                     if ln.strip() and "Special user nobody configured" not in ln]
            check(r.returncode == 0 and not noise, f"{h}: systemd-analyze verify of the installed unit",
                  "\n".join(noise))
            limit = "3.0" if h.startswith("agent") else "2.0"
            r = run([sda, "security", "--offline=true", "--no-pager", d.unit(h)], cwd=d.tmp)
            level = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\S+)", r.stdout)
            check(r.returncode == 0 and level and float(level.group(1)) <= float(limit),
                  f"{h}: systemd-analyze security --offline: exposure "
                  f"{' '.join(level.groups()) if level else '?'} (at most {limit})",
                  "\n".join(ln for ln in r.stdout.splitlines() if ln.startswith("✗"))[-3000:] + r.stderr)

    # ---- flows reach the aggregator ----
    answered = udp_traffic([d.udp["agent-a"], d.udp["agent-b"]])
    info(f"sent 8 UDP flows on lo (4 to each agent's port), {answered} of 24 datagrams echoed")
    agents = {}
    with PacketClock([d.udp["agent-a"], d.udp["agent-b"]]) as clock:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            r = d.cli("agents", "--format", "json")
            if r.returncode == 0:
                agents = {}
                for line in r.stdout.splitlines():
                    try:
                        row = json.loads(line)
                    except ValueError:
                        continue
                    agents[row.get("agent")] = row
                if all(agents.get(h, {}).get("flows", 0) >= 4 for h in ("agent-a", "agent-b")):
                    break
            time.sleep(1)
    table = d.cli("agents")
    info("vigil agents --config <aggregator>/etc/vigil/cli.conf:")
    for line in (table.stdout + table.stderr).splitlines():
        info("  " + line)
    check(all(agents.get(h, {}).get("flows", 0) >= 4 for h in ("agent-a", "agent-b")),
          "vigil agents (deployed analyst key and cli.conf) lists agent-a and agent-b with their flows",
          json.dumps(agents, indent=1) + "\n" + "\n".join(
              read(os.path.join(d.state, f))[-1500:] for f in os.listdir(d.state) if f.endswith(".log")))
    for h in ("agent-a", "agent-b"):
        r = d.cli("flows", "--port", str(d.udp[h]), "--since", "1h", "--format", "json")
        rows = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
        rows = [x for x in rows if x.get("src_port") != clock.port]
        check(len(rows) == 4 and all(x.get("agent") == h and x.get("pkts_fwd") == 3 and x.get("pkts_rev") == 3
                                     and x.get("direction") == "internal" for x in rows),
              f"vigil flows --port {d.udp[h]}: the 4 flows of that port, each from {h}, 3 packets each way",
              r.stdout[-3000:] + r.stderr)

    # ---- second run: nothing changes, nothing restarts ----
    r, recap, log = d.playbook("site.yml")
    d.recap_ok(r, recap, "second run of site.yml: no failure", ["localhost", "aggregator", "agent-a", "agent-b"])
    changed = {h: v["changed"] for h, v in recap.items()}
    check(r.returncode == 0 and all(c == 0 for c in changed.values()),
          f"second run reports changed=0 on every host: {changed}",
          "\n".join(ln for ln in r.stdout.splitlines() if ln.startswith("changed:")))
    check(d.pids() == pids, "second run restarted nothing (same process ids)", f"{pids} -> {d.pids()}")

    # ---- a new build label, then rolling back ----
    r, recap, log = d.playbook("site.yml", "-e", "vigil_version=test-2")
    new = d.pids()
    units_on = {h: parse_unit(d.unit(h))["ExecStart"][-1].split()[0] for h in d.hosts}
    check(d.recap_ok(r, recap, "run with vigil_version=test-2: no failure", list(d.hosts))
          and all(new.values()) and all(new[h] != pids[h] for h in d.hosts)
          and all("/opt/vigil/test-2/bin/" in u for u in units_on.values()),
          "vigil_version=test-2 restarts all three services on the new build", f"{pids} -> {new}\n{units_on}")
    # the previous label again, and agent-b removed from the fleet in the inventory
    d.write_inventory(absent=("agent-b",))
    r, recap, log = d.playbook("site.yml", "-e", "vigil_version=test-1")
    back = d.pids()
    units_on = {h: parse_unit(d.unit(h))["ExecStart"][-1].split()[0] for h in ("aggregator", "agent-a")}
    check(d.recap_ok(r, recap, "run with vigil_version=test-1 and agent-b absent: no failure", list(d.hosts))
          and back["aggregator"] and back["agent-a"]
          and all(back[h] != new[h] for h in ("aggregator", "agent-a"))
          and all("/opt/vigil/test-1/bin/" in u for u in units_on.values()),
          "vigil_version=test-1 rolls back: the aggregator and agent-a run the previous build again",
          f"{new} -> {back}\n{units_on}")
    check(not back["agent-b"] and not os.path.exists(d.unit("agent-b"))
          and not os.path.exists(os.path.join(agg, "etc/vigil/agents.d/agent-b.pub"))
          and not os.path.exists(os.path.join(store, "agents/agent-b.pub"))
          and os.path.exists(os.path.join(agg, "etc/vigil/agents.d/agent-a.pub")),
          "vigil_agent_state=absent on agent-b: stopped, unit removed, its key revoked at the aggregator",
          f"pid {back['agent-b']}; agents.d: {os.listdir(os.path.join(agg, 'etc/vigil/agents.d'))}")
    r = d.cli("agents", "--format", "json")
    check(r.returncode == 0 and all(f'"agent":"{h}"' in r.stdout.replace(" ", "") for h in ("agent-a", "agent-b")),
          "the aggregator, restarted, still holds both agents' flows", r.stdout + r.stderr)

    # ---- remove.yml ----
    r, recap, log = d.playbook("remove.yml")
    d.recap_ok(r, recap, "remove.yml: no failure", ["aggregator", "agent-a", "agent-b"])
    gone = d.pids()
    leftovers = [p for h in d.hosts for p in (d.unit(h), os.path.join(d.hosts[h], "opt/vigil"))
                 if os.path.exists(p)]
    leftovers += [p for p in (os.path.join(agg, "etc/vigil/aggregator.conf"),
                              os.path.join(d.hosts["agent-a"], "etc/vigil/agent.conf"),
                              os.path.join(store, "agents/agent-a.pub")) if os.path.exists(p)]
    check(not any(gone.values()) and not leftovers
          and os.path.exists(os.path.join(agg, "var/lib/vigil/data.mdb")),
          "remove.yml stopped all three services, removed units, configuration, programs and the agents' "
          "keys in the key store, and kept the store", f"{gone}\n{leftovers}")


def main_deploy(args):
    if os.geteuid() != 0:
        print("SKIP: needs root (live capture on lo, files owned by the service account)")
        return 77
    missing = [t for t in ("ansible-playbook", "setpriv") if not shutil.which(t)]
    if missing:
        fail("tools installed", f"missing: {' '.join(missing)} (scripts/packages.txt lists them)")
        return 1
    for b in ("agent/vigil-agent", "aggregator/vigil-aggregator", "cli/vigil"):
        if not os.access(os.path.join(args.build, b), os.X_OK):
            print(f"SKIP: {b} is not built in {args.build}")
            return 77
    tmp = tempfile.mkdtemp(prefix="vigil-ansible.")
    os.chmod(tmp, 0o755)  # the services (nobody) reach their files below it
    d = Deploy(args, tmp)
    t0 = time.monotonic()
    try:
        deploy_checks(d)
    except Exception as e:  # a crash of the test itself is a failure, with its cause
        import traceback
        fail(f"the test crashed: {e!r}", traceback.format_exc())
    finally:
        Supervisor(d.state).stop_all()
        stray = subprocess.run(["pgrep", "-f", d.tmp], capture_output=True, text=True).stdout.split()
        for pid in stray:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        if stray:
            fail("no process of the test is left behind", f"killed {stray}")
        if args.keep or vigiltest.failed:
            info(f"files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    info(f"took {time.monotonic() - t0:.0f} s")
    print(f"{vigiltest.passed} passed, {vigiltest.failed} failed")
    return 0 if vigiltest.failed == 0 else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    lp = sub.add_parser("lint")
    lp.add_argument("--ansible-dir", required=True)
    dp = sub.add_parser("deploy")
    dp.add_argument("--ansible-dir", required=True)
    dp.add_argument("--build", required=True, help="the CMake build tree (already built)")
    dp.add_argument("--keep", action="store_true", help="keep the work folder")
    sp = sub.add_parser("svc")
    sp.add_argument("--state", required=True)
    sp.add_argument("action", choices=["start", "stop", "restart", "reload", "status", "stop-all"])
    sp.add_argument("unit", nargs="?")
    args = p.parse_args()
    if args.cmd == "svc":
        return main_svc(args)
    if args.cmd == "lint":
        return main_lint(args)
    return main_deploy(args)


if __name__ == "__main__":
    sys.exit(main())
