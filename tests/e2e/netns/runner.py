#!/usr/bin/env python3
"""runner — the network-namespace e2e cluster and scenario driver.

Started by tests/e2e/netns/run.sh INSIDE an outer namespace that has no route
out (never run it directly on a host). Builds this topology on bridge br0
(10.99.0.0/16, the runner itself is the client at 10.99.0.1):

    syncd     10.99.0.2    gRPC :7000, admin :7001, --source=dir:RUN/manifests
    syncd-b   10.99.0.3    the second replica: same directory, same default
                           certificate, its own state directory; every
                           l7proxy and l4lb is given the name
                           syncd.e2e.test:7000, which resolves to both (an
                           /etc/hosts bind-mounted in the private mount
                           namespace run.sh made, as a headless Service would)
    l7-1..3   10.99.0.11-13  http :80, https :443, admin :9901
    lb-a/b    10.99.0.21-22  l4lb :80, admin :9901; keepalived VRRP (unicast)
                             holding the VIP 10.99.0.100
    backends  10.99.0.31   + one 10.99.1.x address per example endpoint (:8080)

then runs every scenario of tests/e2e/scenarios/ (format: tests/e2e/lib/
scenario.py) and prints one line per scenario and "N passed, N failed".
Nothing is skipped: the cluster provides every capability a scenario may
require (PROVIDES), the daemons are started with the command lines of DESIGN
§11 whatever their --help says, and a feature that does not work fails its
scenario. A daemon that dies without being told to (a crash mid-run, found
before it is restarted for the next scenario) fails that scenario and
clean-shutdown. Configuration reaches syncd as files in its source directory; a
"generation marker" Ingress (host gen-N.marker.e2e.test) written last tells
the runner when a change is served by every replica, using only the data
path. Every process is started here, with its PID kept, and stopped by PID.
Invariant: all loops are bounded by a deadline.
"""
import argparse
import glob
import json
import os
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import scenario as sc  # noqa: E402

import failover  # noqa: E402  (tests/e2e/netns/failover.py)

CLIENT = "10.99.0.1"
VIP = "10.99.0.100"
HOSTS = {"syncd": "10.99.0.2", "syncd-b": "10.99.0.3", "l7-1": "10.99.0.11", "l7-2": "10.99.0.12",
         "l7-3": "10.99.0.13", "lb-a": "10.99.0.21", "lb-b": "10.99.0.22",
         "backends": "10.99.0.31"}
L4_CIDR = "10.99.0.20/30"  # lb-a and lb-b: the only PROXY-protocol senders
# What this cluster gives every scenario: HTTPS listeners (tls) with ALPN h2
# (h2), h2c on the plain listeners, PROXY v2 from the l4lbs. Declared, never
# probed: a scenario requiring one of these fails when the feature is broken.
PROVIDES = {"tls", "h2", "h2c", "proxy-protocol"}
REPLICAS = ["l7-1", "l7-2", "l7-3"]
SYNCDS = ["syncd", "syncd-b"]  # control-plane replicas (issue 18)
SYNCD_NAME = "syncd.e2e.test"  # resolves to every replica (Net.setup)
LBS = ["lb-a", "lb-b"]
BACKEND_PORT = 8080
ADMIN = 9901


def log(msg):
    print(msg, flush=True)


def sh(*cmd, check=True):
    p = subprocess.run(list(cmd), capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {p.stderr.strip()}")
    return p


def http_ok(url, timeout=1.0):
    return subprocess.run(["curl", "-fsS", "-m", str(timeout), "-o", "/dev/null", url],
                          capture_output=True).returncode == 0


def wait_until(cond, timeout, step=0.1):
    """Polls cond() until true or the deadline; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


class Proc:
    """One process in a namespace, stopped only by its own PID."""

    def __init__(self, name, ns, cmd, logdir):
        self.name, self.ns, self.cmd = name, ns, cmd
        self.logpath = os.path.join(logdir, f"{name}.log")
        self.p = None
        self.sent = set()  # signals the runner sent to the current process

    def start(self):
        out = open(self.logpath, "a")
        out.write(f"--- start: {' '.join(self.cmd)}\n")
        out.flush()
        # `ip netns exec` execs the command, so the PID is the daemon's.
        self.p = subprocess.Popen(["ip", "netns", "exec", self.ns] + self.cmd, stdout=out,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        self.sent = set()
        return self

    def unexpected_exit(self):
        """"exit status N" when the process ended by itself or not in the
        way the runner asked (SIGKILL sent: killed by it; SIGTERM sent: exit
        0), else "" (still running, or stopped as asked)."""
        if self.p is None or self.p.poll() is None:
            return ""
        rc = self.p.returncode
        if rc == 0 and signal.SIGTERM in self.sent:
            return ""
        if rc < 0 and -rc in self.sent:
            return ""
        return f"exit status {rc}" + (" (signals sent: %s)" % ",".join(
            signal.Signals(x).name for x in sorted(self.sent)) if self.sent else
            " (never signalled: it died by itself)")

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            self.sent.add(sig)
            os.kill(self.p.pid, sig)

    def stop(self, timeout=10):
        """SIGTERM, SIGKILL after timeout. Returns the exit status (negative:
        killed by that signal), or None when it was not running."""
        if not self.alive():
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.p.wait(5)
            return "did not stop within %ds" % timeout

    def log_size(self):
        try:
            return os.path.getsize(self.logpath)
        except OSError:
            return 0

    def log_since(self, offset):
        """What the process logged after byte offset (see log_size)."""
        try:
            with open(self.logpath, errors="replace") as f:
                f.seek(offset)
                return f.read()
        except OSError:
            return ""

    def tail(self, n=8):
        try:
            with open(self.logpath) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


class Net:
    """Bridge + one namespace per host. Lives and dies with the outer ns."""

    def __init__(self):
        self.extra = set()

    def setup(self, run):
        # One name for the syncd replicas, like a headless Service: a hosts
        # file bind-mounted over /etc/hosts. Only inside the private mount
        # namespace run.sh entered (every `ip netns exec` inherits it).
        if not os.environ.get("EDGE_E2E_INNER"):
            raise RuntimeError("not inside tests/e2e/netns/run.sh's private namespaces")
        hosts = os.path.join(run, "hosts")
        with open(hosts, "w") as f:
            f.write("127.0.0.1 localhost\n" + "".join(
                f"{HOSTS[s]} {SYNCD_NAME}\n" for s in SYNCDS))
        sh("mount", "--bind", hosts, "/etc/hosts")
        sh("ip", "link", "add", "br0", "type", "bridge")
        sh("ip", "addr", "add", f"{CLIENT}/16", "dev", "br0")
        sh("ip", "link", "set", "br0", "up")
        for i, (ns, ip) in enumerate(HOSTS.items()):
            sh("ip", "netns", "add", ns)
            veth = f"v{i}-{ns}"[:15]
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", veth, "master", "br0", "up")
            sh("ip", "-n", ns, "addr", "add", f"{ip}/16", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")

    def add_addr(self, ns, ip):
        if (ns, ip) not in self.extra:
            sh("ip", "-n", ns, "addr", "add", f"{ip}/16", "dev", "eth0")
            self.extra.add((ns, ip))

    def link(self, ns, up):
        sh("ip", "-n", ns, "link", "set", "eth0", "up" if up else "down")

    def has_addr(self, ns, ip):
        return f" {ip}/" in sh("ip", "-n", ns, "-o", "addr", "show", "dev", "eth0",
                               check=False).stdout

    def teardown(self):
        for ns in HOSTS:
            sh("ip", "netns", "del", ns, check=False)


class Cluster:
    def __init__(self, args, run, net):
        self.args, self.run, self.net = args, run, net
        self.bin = args.bin_dir
        self.logs = os.path.join(run, "logs")
        self.manifests = os.path.join(run, "manifests")
        self.pki = os.path.join(run, "pki")
        self.procs = {}
        self.gen = 0
        self.deaths = []  # "name: exit status N" of daemons that died unasked
        self.endpoint_ips = {}
        self.backend_proc = None
        self.current = None  # the scenario whose objects are applied
        self.tally = [0, 0]  # requests sent, failed under faults (reset per scenario run)
        for d in [self.logs, self.manifests] + [self.state_dir(s) for s in SYNCDS]:
            os.makedirs(d, exist_ok=True)

    def path(self, rel):
        return os.path.join(self.bin, rel)

    def tls_client(self, role, name):
        """The node's own certificate: identity spiffe://edge/ROLE/NAME (pki.sh --node)."""
        return [f"--cert={self.pki}/{role}-{name}.crt", f"--key={self.pki}/{role}-{name}.key",
                f"--ca={self.pki}/ca.crt"]

    # ---------------------------------------------------------- processes
    def proc(self, name, ns, cmd):
        old = self.procs.get(name)
        if old is not None:
            self.note_death(old)
        p = Proc(name, ns, cmd, self.logs)
        self.procs[name] = p
        return p.start()

    def note_death(self, p):
        """Records p's exit when it was not the one the runner asked for;
        returns the line, or ""."""
        why = p.unexpected_exit()
        if why and p.p is not None and not getattr(p, "noted", False):
            p.noted = True
            line = f"{p.name}: {why}; last log lines:\n" + "".join(
                "      " + ln + "\n" for ln in p.tail(4).splitlines())
            self.deaths.append(line.rstrip("\n"))
            return line
        return ""

    def check_deaths(self):
        """Lines for every daemon that died unasked since the last call."""
        return [ln for ln in (self.note_death(p) for p in list(self.procs.values())) if ln]

    def state_dir(self, name):
        return os.path.join(self.run, f"{name}-state")

    def syncd_spec(self, names=None):
        """--syncd for clients: the name of every replica, or the addresses
        of the ones named."""
        if not names:
            return f"{SYNCD_NAME}:7000"
        return ",".join(f"{HOSTS[n]}:7000" for n in names)

    def start_syncd(self, name="syncd"):
        ip = HOSTS[name]
        return self.proc(name, name, [
            self.path("syncd/syncd"), f"--source=dir:{self.manifests}",
            f"--listen={ip}:7000", f"--admin={ip}:7001", f"--replica-id={name}",
            f"--state-dir={self.state_dir(name)}", f"--cert={self.pki}/syncd.crt",
            f"--key={self.pki}/syncd.key", f"--ca={self.pki}/ca.crt",
            f"--default-cert={self.pki}/default.crt", f"--default-key={self.pki}/default.key"])

    def l7_cmd(self, name):
        """The replica's command line (DESIGN §11): every listener and
        feature the scenarios use, always. A build that rejects a flag
        fails at start; the runner never adapts to what --help offers."""
        ip = HOSTS[name]
        os.makedirs(f"{self.run}/{name}-cache", exist_ok=True)
        return [self.path("l7proxy/l7proxy"), f"--syncd={self.syncd_spec()}",
                f"--node-id={name}", f"--http={ip}:80", f"--https={ip}:443",
                f"--admin={ip}:{ADMIN}", "--workers=1", f"--advertise={ip}:80",
                f"--cache-dir={self.run}/{name}-cache", "--proxy-protocol",
                f"--proxy-protocol-trusted={L4_CIDR}"] + self.tls_client("l7proxy", name)

    def start_l7(self, name):
        return self.proc(name, name, self.l7_cmd(name))

    def start_l4(self, name):
        ip = HOSTS[name]
        cmd = [self.path("l4lb/l4lb"), "--listen=0.0.0.0:80", f"--syncd={self.syncd_spec()}",
               f"--admin={ip}:{ADMIN}", "--workers=1", f"--node-id={name}",
               "--check-interval=500ms", "--fall=2", "--rise=2", "--proxy-protocol=on"]
        return self.proc(name, name, cmd + self.tls_client("l4lb", name))

    def start_keepalived(self, name):
        me, peer = (name, "lb-b") if name == "lb-a" else (name, "lb-a")
        with open(os.path.join(self.args.repo, "deploy/keepalived/keepalived.conf.tmpl")) as f:
            tmpl = string.Template(f.read())
        conf = tmpl.safe_substitute(
            ROUTER_ID=name, IFACE="eth0", SELF_IP=HOSTS[me], PEER_IP=HOSTS[peer], VIP=VIP,
            VIP_PREFIX="16", PRIORITY="150" if name == "lb-a" else "100",
            VRID="51", AUTH_PASS="edge-e2e",
            CHECK_SCRIPT=f"/usr/bin/curl -fsS -m 1 -o /dev/null http://{HOSTS[name]}:{ADMIN}/readyz")
        path = os.path.join(self.run, f"keepalived-{name}.conf")
        with open(path, "w") as f:
            f.write(conf)
        pids = [os.path.join(self.run, f"keepalived-{name}.{k}.pid") for k in ("main", "vrrp", "chk")]
        return self.proc(f"keepalived-{name}", name, [
            "keepalived", "--dont-fork", "--log-console", "--vrrp", "-f", path,
            "-p", pids[0], "-r", pids[1], "-c", pids[2]])

    def vip_holder(self):
        held = [lb for lb in LBS if self.net.has_addr(lb, VIP)]
        return held[0] if len(held) == 1 else None

    def readyz(self, name):
        port = 7001 if name in SYNCDS else ADMIN
        return http_ok(f"http://{HOSTS[name]}:{port}/readyz")

    def start_all(self):
        subprocess.run([os.path.join(self.args.repo, "deploy/local/pki.sh"), self.pki,
                        f"--san=DNS:{SYNCD_NAME}"] + [f"--san=IP:{HOSTS[s]}" for s in SYNCDS]
                       + ["--node=syncctl/e2e"]
                       + [f"--node=l7proxy/{r}" for r in REPLICAS]
                       + [f"--node=l4lb/{lb}" for lb in LBS], check=True)
        self.marker = self.proc("marker-backend", "backends", [
            "python3", os.path.join(self.args.repo, "deploy/local/backend.py"),
            f"marker-1={self.endpoint_ip('marker', 1)}:{BACKEND_PORT}"])
        self.apply(None)
        for s in SYNCDS:
            self.start_syncd(s)
        for r in REPLICAS:
            self.start_l7(r)
        for lb in LBS:
            self.start_l4(lb)
        for lb in LBS:
            self.start_keepalived(lb)
        for name in SYNCDS + REPLICAS + LBS:
            if not wait_until(lambda: self.readyz(name) or not self.procs[name].alive(), 30) \
                    or not self.procs[name].alive():
                raise RuntimeError(f"{name} not ready:\n{self.procs[name].tail()}")
        if not wait_until(self.vip_holder, 15):
            raise RuntimeError("no l4lb host took the VIP:\n" + self.procs["keepalived-lb-a"].tail())
        self.wait_generation(REPLICAS)
        log(f"  cluster up: provides {', '.join(sorted(PROVIDES))} (VIP held by "
            f"{self.vip_holder()})")

    def ensure_healthy(self):
        """Restarts whatever a previous scenario left stopped."""
        for name in SYNCDS + REPLICAS + LBS:
            self.net.link(name, True)
            if not self.procs[name].alive():
                if name in SYNCDS:
                    self.start_syncd(name)
                if name in REPLICAS:
                    self.start_l7(name)
                elif name in LBS:
                    self.start_l4(name)
        for name in SYNCDS + REPLICAS + LBS:
            if not wait_until(lambda: self.readyz(name), 30):
                raise RuntimeError(f"{name} not ready again:\n{self.procs[name].tail()}")
        for lb in LBS:
            if not self.procs[f"keepalived-{lb}"].alive():
                self.start_keepalived(lb)
        if not wait_until(lambda: self.vip_holder() == "lb-a", 15):
            raise RuntimeError(f"VIP not back on lb-a (holder {self.vip_holder()})")

    # ------------------------------------------------------ configuration
    def endpoint_ip(self, svc, k):
        key = (svc, k)
        if key not in self.endpoint_ips:
            n = len(self.endpoint_ips) + 1
            ip = f"10.99.{1 + n // 250}.{1 + n % 250}"
            self.net.add_addr("backends", ip)
            self.endpoint_ips[key] = ip
        return self.endpoint_ips[key]

    def marker_host(self):
        return f"gen-{self.gen}.marker.e2e.test"

    def base_objects(self):
        return [
            {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
             "metadata": {"name": "edge", "annotations": {
                 "ingressclass.kubernetes.io/is-default-class": "true"}},
             "spec": {"controller": "edge.dev/ingress-controller"}},
        ] + sc.backend_objects({"marker": 1}, self.endpoint_ip, BACKEND_PORT, "e2e-system") + [
            {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
             "metadata": {"name": "e2e-marker", "namespace": "e2e-system"},
             "spec": {"ingressClassName": "edge", "rules": [{
                 "host": self.marker_host(), "http": {"paths": [{
                     "path": "/", "pathType": "Prefix", "backend": {"service": {
                         "name": "marker", "port": {"number": 80}}}}]}}]}}]

    def apply(self, scen, extra=None):
        """Replaces the served configuration with scen's objects (+ extra
        documents). The generation marker is written last."""
        self.gen += 1
        docs = []
        secrets = []
        if scen:
            docs = sc.backend_objects(scen["backends"], self.endpoint_ip, BACKEND_PORT)
            docs += scen["object_list"]
            tdir = os.path.join(self.run, "tls", scen["name"])
            os.makedirs(tdir, exist_ok=True)
            secrets = sc.tls_secret_objects(scen["tls_secrets"], tdir)
        files = {"10-backends.yaml": docs, "20-secrets.yaml": secrets, "30-extra.yaml": extra or []}
        for fname, d in files.items():
            sc.write_yaml_atomic(os.path.join(self.manifests, fname), d)
        self.write_marker(bump=False)
        self.current = scen

    def write_marker(self, bump=True):
        """Writes the generation marker (after every other file)."""
        if bump:
            self.gen += 1
        sc.write_yaml_atomic(os.path.join(self.manifests, "99-marker.yaml"), self.base_objects())

    def marker_served(self, replica):
        a = sc.send({"host": self.marker_host(), "path": "/", "expect": {}}, HOSTS[replica], 80,
                    timeout=2)
        return a.backend == "marker-1"

    def wait_generation(self, replicas, timeout=20):
        for r in replicas:
            if not wait_until(lambda: self.marker_served(r), timeout, 0.1):
                raise RuntimeError(f"{r} did not serve configuration generation {self.gen} "
                                   f"within {timeout}s")

    def start_backends(self, scen):
        if self.backend_proc:
            self.backend_proc.stop()
        specs = [f"{svc}-{k}={self.endpoint_ip(svc, k)}:{BACKEND_PORT}"
                 for svc, n in sorted(scen["backends"].items()) for k in range(1, n + 1)]
        if not specs:
            self.backend_proc = None
            return
        self.backend_proc = self.proc(f"backends-{scen['name']}", "backends", [
            "python3", os.path.join(self.args.repo, "deploy/local/backend.py")] + specs)
        first = specs[0].split("=")[1]
        if not wait_until(lambda: http_ok(f"http://{first}/"), 10):
            raise RuntimeError("example backends did not start:\n" + self.backend_proc.tail())

    def status_json(self, names=None):
        """syncctl status --json over every syncd replica (or the ones
        named) as a dict, or None when none answers."""
        try:
            p = subprocess.run([self.path("syncd/syncctl"), f"--syncd={self.syncd_spec(names)}"]
                               + self.tls_client("syncctl", "e2e") + ["status", "--json"],
                               capture_output=True, text=True, timeout=20)
            return json.loads(p.stdout) if p.returncode == 0 else None
        except (ValueError, subprocess.SubprocessError):
            return None

    def replicas_synced(self, names=None):
        """The version when every l7proxy has acked the current version of
        the syncd replica serving it and every replica asked is at that
        same version, else 0."""
        st = self.status_json(names)
        if not st:
            return 0
        views = st.get("replicas") or [{"replica": st.get("replica", ""), "answered": True,
                                        "version": st["version"]}]
        versions = {v["version"] for v in views if v["answered"]}
        answered = sum(1 for v in views if v["answered"])
        if len(versions) != 1 or answered != len(names or SYNCDS):
            return 0
        nodes = {n["node_id"]: n for n in st.get("nodes", []) if n.get("kind") == "l7proxy"}
        ok = all(r in nodes and nodes[r]["state"] == "SYNCED"
                 and nodes[r]["last_acked_version"] == st["version"] for r in REPLICAS)
        return st["version"] if ok else 0

    def in_tables(self, replica):
        """For each l4lb: is replica in its Maglev table (from /config)?"""
        seen = {}
        for lb in LBS:
            p = subprocess.run(["curl", "-fsS", "-m", "2", f"http://{HOSTS[lb]}:{ADMIN}/config"],
                               capture_output=True, text=True)
            try:
                backends = json.loads(p.stdout).get("backends", [])
            except ValueError:
                backends = []
            seen[lb] = any(b.get("name") == replica and b.get("in_table") for b in backends)
        return seen

    def stop_all(self):
        """Stops everything; returns "name: status" for each daemon that did
        not exit cleanly (0) on SIGTERM, and for each that died during the
        run without being told to (self.deaths: crashes found before a
        restart would hide them): crashes, sanitizer reports, hangs."""
        order = ["keepalived-lb-a", "keepalived-lb-b", "lb-a", "lb-b"] + REPLICAS + SYNCDS
        self.check_deaths()
        unclean = [f"died mid-run: {d}" for d in self.deaths]
        for name in order + [n for n in self.procs if n not in order]:
            if name in self.procs:
                rc = self.procs[name].stop(10)
                if rc not in (None, 0, -signal.SIGTERM) and name in order:
                    unclean.append(f"{name}: exit status {rc}")
        return unclean


def target_of(via, scheme):
    port = 443 if scheme == "https" else 80
    return (VIP, port) if via == "vip" else (HOSTS[via], port)


def run_requests(cl, scen, out):
    ok = True
    for r in scen["requests"]:
        ip, port = target_of(r["via"], r["scheme"])
        seen = set()
        for _ in range(r["repeat"]):
            a = sc.send(r, ip, port)
            why = sc.check_answer(r["expect"], a, {"@client": CLIENT})
            if why:
                out.append(f"    FAIL {r['protocol']} {r['scheme']}://{r['host']}{r['path']} "
                           f"via {r['via']}: {why}")
                ok = False
                break
            seen.add(a.backend)
        else:
            want = r["expect"].get("endpoints")
            if want and len(seen) != want:
                out.append(f"    FAIL {r['host']}{r['path']} via {r['via']}: {len(seen)} endpoints "
                           f"answered {r['repeat']} requests ({sorted(seen)}), want {want}")
                ok = False
    return ok


def verify(host, path, n):
    """n sequential requests through the VIP, new connection each; returns failures."""
    failed = 0
    for _ in range(n):
        a = sc.send({"host": host, "path": path, "expect": {}}, VIP, 80, timeout=10)
        if a.error or a.status != 200:
            failed += 1
    return failed


class TableWatch:
    """Samples every l4lb's Maglev table size (/config table_backends) in
    the background until stop(), which returns the smallest size each
    showed ("lb-a 3, lb-b 3"). Bounded: one sample per lb every 0.2 s."""

    def __init__(self):
        self.mins = {lb: None for lb in LBS}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for lb in LBS:
                p = subprocess.run(["curl", "-fsS", "-m", "1",
                                    f"http://{HOSTS[lb]}:{ADMIN}/config"],
                                   capture_output=True, text=True)
                try:
                    n = json.loads(p.stdout)["table_backends"]
                except (ValueError, KeyError):
                    continue
                m = self.mins[lb]
                self.mins[lb] = n if m is None else min(m, n)
            self._stop.wait(0.2)

    def start(self):
        self._t.start()
        return self

    def stop(self):
        self._stop.set()
        self._t.join(5)
        return ", ".join(f"{lb} {'?' if m is None else m}" for lb, m in self.mins.items())


def syncd_outage(cl, scen, fl, out):
    """Stops every syncd replica (SIGTERM or SIGKILL) for fl["outage"]
    seconds while the load runs: the control plane is away. Restarts each
    on its own state directory, and checks: the l7 replicas stay ready
    throughout, each restarted syncd serves the persisted version, every
    l7 replica is SYNCED again, a new change reaches them all. Returns the
    note for the fault line, or None after a FAIL line was added to out."""
    before = wait_until(cl.replicas_synced, 15)
    if not before:
        out.append("    FAIL replicas not SYNCED in syncctl status before the outage")
        return None
    tables = TableWatch().start()
    marks = {lb: cl.procs[lb].log_size() for lb in LBS}
    try:
        for name in SYNCDS:
            if fl["signal"] == "KILL":
                cl.procs[name].signal(signal.SIGKILL)
                cl.procs[name].p.wait(10)
            else:
                rc = cl.procs[name].stop()
                if rc not in (0, None):
                    out.append(f"    FAIL {name} exit status {rc} on SIGTERM")
                    return None
        time.sleep(fl["outage"])
        down = [r for r in REPLICAS if not cl.readyz(r)]
        if down:
            out.append(f"    FAIL replicas not ready while syncd is down: {down}")
            return None
        t0 = time.monotonic()
        for name in SYNCDS:
            cl.start_syncd(name)
        for name in SYNCDS:
            if not wait_until(lambda: cl.readyz(name), 20):
                out.append(f"    FAIL {name} not ready after restart:\n" + cl.procs[name].tail())
                return None
            st = cl.status_json([name]) or {}
            if st.get("version") != before:
                out.append(f"    FAIL restarted {name} serves version {st.get('version')}, "
                           f"persisted {before}")
                return None
        if not wait_until(cl.replicas_synced, 30, 0.25):
            out.append("    FAIL replicas not SYNCED again after the restart")
            return None
        resync = time.monotonic() - t0
        cl.apply(scen)  # a new version reaches every reconnected replica
        cl.wait_generation(REPLICAS, timeout=30)
        time.sleep(fl["duration"])
    finally:
        mins = tables.stop()
    # Membership must not follow control-plane connectivity: no l4lb may
    # have taken a replica out because syncd said so (health checks log
    # backend_down, membership backend_removed).
    removed = {lb: cl.procs[lb].log_since(marks[lb]).count("msg=backend_removed") for lb in LBS}
    if any(removed.values()):
        out.append(f"    FAIL l4lbs removed replicas on syncd's word during the outage: {removed} "
                   f"(smallest tables: {mins})")
        return None
    return (f"outage {fl['outage']}s (SIG{fl['signal']}), restored version {before}, "
            f"all replicas SYNCED {resync:.1f}s after the restart, new change served "
            f"(gen {cl.gen}); smallest l4lb tables: {mins}")


def run_fault(cl, scen, fl, out):
    kind = fl["kind"]
    host = fl["host"] or next(iter(scen["backends"]), "") + ".example.test"
    load = sc.Load(VIP, 80, host, fl["path"], threads=2, rate=40, timeout=10)
    note = ""
    outage_failed = False
    load.start()
    time.sleep(1.5)  # load established before the fault (a duration, not a wait)
    try:
        if kind == "kill-l7proxy":
            cl.procs[fl["target"]].signal(signal.SIGKILL)
            t0 = time.monotonic()
            if not wait_until(lambda: not any(cl.in_tables(fl["target"]).values()), 20, 0.2):
                out.append(f"    FAIL {fl['target']} still in the Maglev tables")
                return False
            took = time.monotonic() - t0
            note = f"out of both l4lb tables after {took:.1f}s"
            time.sleep(max(0.0, fl["duration"] - took))
        elif kind == "kill-active-l4lb":
            holder = cl.vip_holder()
            t0 = time.monotonic()
            cl.procs[holder].signal(signal.SIGKILL)
            moved = wait_until(lambda: cl.vip_holder() not in (None, holder), 15, 0.05)
            took = time.monotonic() - t0
            if not moved:
                out.append(f"    FAIL VIP did not move off {holder} within 15s")
                return False
            note = f"VIP {holder} -> {cl.vip_holder()} in {took:.1f}s"
            time.sleep(max(0.0, fl["duration"] - took))
        elif kind == "syncd-outage":
            note = syncd_outage(cl, scen, fl, out)  # None: a FAIL line was added
            outage_failed = note is None
        elif kind == "syncd-failover":
            env = {"HOSTS": HOSTS, "REPLICAS": REPLICAS, "LBS": LBS, "SYNCDS": SYNCDS,
                   "ADMIN": ADMIN, "wait_until": wait_until, "send": sc.send,
                   "write_yaml": sc.write_yaml_atomic}
            note = failover.syncd_failover(cl, scen, fl, out, env)  # None: FAIL lines added
            outage_failed = note is None
        elif kind == "cut-replica-link":
            cl.net.link(fl["target"], False)
            t0 = time.monotonic()
            out_of_tables = wait_until(lambda: not any(cl.in_tables(fl["target"]).values()), 20, 0.2)
            took = time.monotonic() - t0
            if not out_of_tables:
                out.append(f"    FAIL {fl['target']} still in the Maglev tables: "
                           f"{cl.in_tables(fl['target'])}")
                return False
            note = f"out of both l4lb tables after {took:.1f}s"
            time.sleep(max(0.0, fl["duration"] - took))
        elif kind == "config-churn":
            last = None
            for i in range(fl["changes"]):
                last = "churn-a" if i % 2 == 0 else "churn-b"
                sc.write_yaml_atomic(os.path.join(cl.manifests, "30-extra.yaml"), [{
                    "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                    "metadata": {"name": "churn", "namespace": "default",
                                 "annotations": {"edge.dev/churn": str(i)}},
                    "spec": {"ingressClassName": "edge", "rules": [{
                        "host": "churn.example.test", "http": {"paths": [{
                            "path": f"/v{i % 7}", "pathType": "Prefix", "backend": {"service": {
                                "name": last, "port": {"number": 80}}}}]}}]}}])
                time.sleep(0.05)
            cl.write_marker()
            cl.wait_generation(REPLICAS, timeout=30)
            i = fl["changes"] - 1
            bad = []
            for r in REPLICAS:
                a = sc.send({"host": "churn.example.test", "path": f"/v{i % 7}/x", "expect": {}},
                            HOSTS[r], 80)
                if not sc.backend_matches(last, a.backend):
                    bad.append(f"{r}:{a.backend or a.status}")
            if bad:
                out.append(f"    FAIL last change not served everywhere: {bad}")
                return False
            note = f"{fl['changes']} changes, last served by all replicas"
    finally:
        load.stop()
        cl.tally[0] += load.sent
        cl.tally[1] += load.failed
    pct = 100.0 * load.failed / max(1, load.sent)
    line = f"    fault {kind}{' ' + fl['target'] if fl.get('target') else ''}: {load.summary()}"
    if note:
        line += f"; {note}"
    out.append(line)
    ok = pct <= fl["max_failed_percent"] and load.sent > 0
    if not ok:
        out.append(f"    FAIL {pct:.1f}% failed during the fault, allowed "
                   f"{fl['max_failed_percent']}%")
    ok = ok and not outage_failed
    if fl["verify"]:
        vf = verify(host, fl["path"], fl["verify"])
        cl.tally[0] += fl["verify"]
        cl.tally[1] += vf
        out.append(f"    after {kind}: sent={fl['verify']} failed={vf}")
        if vf:
            ok = False
    if kind == "cut-replica-link":
        cl.net.link(fl["target"], True)
        back = wait_until(lambda: all(cl.in_tables(fl["target"]).values()), 30, 0.2)
        out.append(f"    link restored: {fl['target']} "
                   f"{'back in both tables' if back else 'NOT back in the tables'}")
        ok = ok and bool(back)
    return ok


def run_scenario(cl, scen):
    out = []
    missing = [c for c in scen["requires"] if c not in PROVIDES]
    if missing:  # a scenario this runner cannot serve is a broken scenario set
        return "FAIL", [f"    requires {', '.join(missing)}, which this runner does not provide"]
    try:
        for ln in cl.check_deaths():  # left by the previous scenario: already reported there
            log(f"    note: {ln}")
        cl.ensure_healthy()
        cl.start_backends(scen)
        cl.apply(scen)
        cl.wait_generation(REPLICAS)
        ok = run_requests(cl, scen, out)
        for fl in scen["faults"]:
            if not run_fault(cl, scen, fl, out):
                ok = False
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        out.append(f"    ERROR {e}")
        ok = False
    for ln in cl.check_deaths():  # a daemon that crashed during this scenario
        out.append(f"    FAIL died during the scenario: {ln}")
        ok = False
    return ("PASS" if ok else "FAIL"), out


def infra_selftest(args, run, net):
    """Namespaces, bridge and keepalived failover with stand-in l4lbs."""
    results = []
    procs = {}
    logs = os.path.join(run, "logs")
    os.makedirs(logs, exist_ok=True)

    class Fake:  # the slice of Cluster that start_keepalived/vip_holder use
        pass

    cl = Fake()
    cl.args, cl.run, cl.net, cl.procs, cl.logs = args, run, net, procs, logs
    cl.proc = lambda name, ns, cmd: Cluster.proc(cl, name, ns, cmd)
    for lb in LBS:
        cl.proc(lb, lb, ["python3", os.path.join(os.path.dirname(__file__), "stub_l4lb.py"),
                         lb, "0.0.0.0:80", f"{HOSTS[lb]}:{ADMIN}", f"{run}/{lb}.down"])
    for lb in LBS:
        Cluster.start_keepalived(cl, lb)

    def holder():
        return Cluster.vip_holder(cl)

    def via_vip():
        a = sc.send({"host": "vip.e2e.test", "path": "/", "expect": {}}, VIP, 80, timeout=2)
        return a.backend

    try:
        ok = wait_until(lambda: holder() == "lb-a" and via_vip() == "lb-a", 20)
        results.append(("infra-vip-initial", ok, f"VIP on {holder()}, answered by {via_vip()}"))
        t0 = time.monotonic()
        open(f"{run}/lb-a.down", "w").close()
        ok = wait_until(lambda: holder() == "lb-b" and via_vip() == "lb-b", 20, 0.05)
        results.append(("infra-vip-check-fails", ok,
                        f"lb-a /readyz 503 -> VIP on {holder()} after {time.monotonic() - t0:.1f}s"))
        os.unlink(f"{run}/lb-a.down")
        ok = wait_until(lambda: holder() == "lb-a", 20, 0.05)
        t0 = time.monotonic()
        procs["lb-a"].signal(signal.SIGKILL)
        ok = ok and wait_until(lambda: holder() == "lb-b" and via_vip() == "lb-b", 20, 0.05)
        results.append(("infra-vip-crash", ok,
                        f"lb-a killed -> VIP on {holder()} after {time.monotonic() - t0:.1f}s"))
        probe = subprocess.run(["ip", "route", "get", "1.1.1.1"], capture_output=True, text=True)
        results.append(("infra-no-route-out", probe.returncode != 0,
                        "outer namespace has no route to 1.1.1.1"))
    finally:
        for p in procs.values():
            p.stop(5)
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo", required=True)
    ap.add_argument("--bin-dir", default=os.environ.get("EDGE_BIN_DIR", ""))
    ap.add_argument("names", nargs="*", help="scenario names (as --only)")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--infra-only", action="store_true")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run the selected scenarios N times (stress), failures per run")
    ap.add_argument("--budget", type=float, default=0,
                    help="seconds for all scenarios (default 480 per repetition)")
    args = ap.parse_args()
    args.only = ",".join(filter(None, [args.only] + args.names))
    if args.repeat < 1:
        ap.error("--repeat wants N >= 1")
    args.budget = args.budget or 480.0 * args.repeat
    if args.bin_dir:
        args.bin_dir = os.path.abspath(args.bin_dir)

    base = os.environ.get("TEST_TMPDIR") or "/tmp"
    run = tempfile.mkdtemp(prefix="edge-e2e-", dir=base)
    os.chmod(run, 0o700)
    log(f"e2e netns runner: work dir {run}")
    net = Net()
    net.setup(run)

    scen_files = sorted(glob.glob(os.path.join(args.repo, "tests/e2e/scenarios/*.yaml")))
    scens = []
    bad = []
    for f in scen_files:
        try:
            s = sc.load(f, args.repo)
            if not args.only or s["name"] in args.only.split(","):
                scens.append(s)
        except sc.ScenarioError as e:
            bad.append(str(e))

    need = ["syncd/syncd", "syncd/syncctl", "l7proxy/l7proxy", "l4lb/l4lb"]
    missing = [b for b in need if not (args.bin_dir and os.access(os.path.join(args.bin_dir, b), os.X_OK))]
    infra_only = args.infra_only
    results = []  # (name, status, lines)
    stress = []  # (run, scenario, status, requests sent, failed) per scenario run
    unknown = [n for n in args.only.split(",") if n and n not in {x["name"] for x in scens}]
    for n in unknown:
        results.append((n, "FAIL", ["    no such scenario"]))
    if missing and not infra_only:  # never fall back to running less
        results.append(("binaries", "FAIL", [f"    missing under {args.bin_dir or '-'}: "
                                             f"{', '.join(missing)} (give --bin-dir)"]))
    for b in bad:
        results.append(("scenario-file", "FAIL", [f"    {b}"]))
    if infra_only:
        for name, ok, detail in infra_selftest(args, run, net):
            results.append((name, "PASS" if ok else "FAIL", [f"    {detail}"]))
            log(f"{'PASS' if ok else 'FAIL'}  {name}\n    {detail}")
    elif not missing:
        cl = Cluster(args, run, net)
        deadline = time.monotonic() + args.budget
        try:
            log("  starting 2 syncd, 3 l7proxy, 2 l4lb, keepalived, backends")
            cl.start_all()
            for rep in range(1, args.repeat + 1):
                if args.repeat > 1:
                    log(f"== run {rep}/{args.repeat}")
                for s in scens:
                    name = s["name"] if args.repeat == 1 else f"{s['name']} (run {rep})"
                    if time.monotonic() > deadline:
                        results.append((name, "FAIL", ["    not run: time budget spent"]))
                        continue
                    t0 = time.monotonic()
                    cl.tally = [0, 0]
                    status, lines = run_scenario(cl, s)
                    results.append((name, status, lines))
                    log(f"{status:4}  {name}  ({time.monotonic() - t0:.1f}s)")
                    for ln in lines:
                        log(ln)
                    stress.append((rep, s["name"], status, cl.tally[0], cl.tally[1]))
        except RuntimeError as e:
            log(f"ERROR cluster: {e}")
            results.append(("cluster-start", "FAIL", [f"    {e}"]))
        finally:
            if cl.backend_proc:
                cl.backend_proc.stop(5)
            unclean = cl.stop_all()
            results.append(("clean-shutdown", "FAIL" if unclean else "PASS",
                            [f"    {u}" for u in unclean]))
            log(f"{'FAIL' if unclean else 'PASS'}  clean-shutdown")
            for u in unclean:
                log(f"    {u}")
    net.teardown()
    outdir = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
    if outdir:
        shutil.copytree(os.path.join(run, "logs"), os.path.join(outdir, "e2e-logs"),
                        dirs_exist_ok=True)
    passed = sum(1 for r in results if r[1] == "PASS")
    failed = sum(1 for r in results if r[1] != "PASS")
    log("\nsummary:")
    for name, status, _ in results:
        log(f"  {status:7} {name}")
    if args.repeat > 1:
        log("\nfailures per run (requests sent and failed under faults, verify included):")
        for rep, name, status, sent, bad in stress:
            log(f"  run {rep:3}  {name}  {status}  sent={sent} failed={bad}")
        log(f"stress: {args.repeat} runs, "
            f"{sum(1 for r in stress if r[2] != 'PASS')} failed, "
            f"{sum(r[4] for r in stress)} failed requests of {sum(r[3] for r in stress)}")
    log(f"{passed} passed, {failed} failed (logs: {run}/logs)")
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
