#!/usr/bin/env python3
"""packet_mode — e2e of l4lb --mode=xdp: XDP Maglev, IP-in-IP, direct server
return, two l4lbs active-active behind ECMP with BGP.

Started by tests/e2e/netns/packet_run.sh INSIDE an outer namespace with no
route out. Topology (one namespace per host):

    client  10.97.1.2 ──┐                       ┌── lb1 10.97.2.2  l4lb --mode=xdp, bird, announce
    client2 10.97.4.2 ──┤ router (ECMP, L4 hash,├── lb2 10.97.3.2  (same)
      (path MTU 1400)   │  bird: BGP+BFD)       │
                        └── fabric bridge 10.97.10.1/24 ── syncd .2, l7-1..3 .11-.13 (VIP on lo,
                                                           XDP decap), backends .31-.33

VIP 10.97.100.1:80 is announced by both l4lbs; the router spreads flows by
5-tuple; each l4lb encapsulates to the replica the shared Maglev table
picks; the replica answers the client directly. Scenarios:

  xdp-basic       requests through the VIP carry the client's own address to
                  the backend (no PROXY v2), both l4lbs announce and agree
                  (/lookup), counters move
  xdp-pmtu        a 2 MB download over a path with a smaller MTU (ICMP "frag
                  needed" from the router reaches the replica through the
                  l4lbs) and a 256 KB upload whose full-size packets do not
                  fit the tunnel (the l4lb answers "frag needed" itself)
  xdp-kill-l4lb   24 established keep-alive flows + new connections under
                  load; lb1's host dies (link down, l4lb and bird killed):
                  0 established flows broken; new-connection failures and
                  the BGP withdrawal time are reported
  xdp-drain-l4lb  SIGTERM to lb2's l4lb: /readyz fails, the announcer
                  withdraws the route, l4lb exits once its VIP traffic stopped;
                  no request fails

Prints one line per scenario and "N passed, N failed, N skipped". Every
process is started here and stopped by PID; every loop has a deadline.
"""
import argparse
import json
import os
import re
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from runner import Proc, sh, wait_until  # noqa: E402
import scenario as sc  # noqa: E402

VIP = "10.97.100.1"
CLIENT, CLIENT2 = "10.97.1.2", "10.97.4.2"
LBS = {"lb1": ("10.97.2.2", "10.97.2.1", "r-lb1"), "lb2": ("10.97.3.2", "10.97.3.1", "r-lb2")}
FABRIC = {"syncd": "10.97.10.2", "l7-1": "10.97.10.11", "l7-2": "10.97.10.12",
          "l7-3": "10.97.10.13", "backends": "10.97.10.31"}
REPLICAS = ["l7-1", "l7-2", "l7-3"]
ADMIN = 9901
SOCKETS = "/run/edge-xdp"  # a private tmpfs (packet_run.sh): short socket paths
APP_HOST, FILES_HOST = "app.e2e.test", "files.e2e.test"
BIG = 2 * 1024 * 1024


def log(msg):
    print(msg, flush=True)


def ns(name, *cmd, check=True):
    return sh("ip", "netns", "exec", name, *cmd, check=check)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def sysctl(name, key, value):
    write_cmd = f"echo {value} > /proc/sys/{key.replace('.', '/')}"
    ns(name, "sh", "-c", write_cmd)


class Topology:
    """Namespaces, links, addresses and routes. Lives with the outer ns."""

    def __init__(self, bins):
        self.bins = bins

    def veth(self, a, a_if, b, b_if):
        sh("ip", "link", "add", a_if, "netns", a, "type", "veth", "peer", "name", b_if, "netns", b)

    def addr(self, n, ifname, cidr):
        sh("ip", "-n", n, "addr", "add", cidr, "dev", ifname)
        sh("ip", "-n", n, "link", "set", ifname, "up")

    def setup(self):
        names = ["router", "client", "client2"] + list(LBS) + list(FABRIC)
        for n in names:
            sh("ip", "netns", "add", n)
            sh("ip", "-n", n, "link", "set", "lo", "up")
        self.veth("router", "r-cli", "client", "eth0")
        self.addr("router", "r-cli", "10.97.1.1/24")
        self.addr("client", "eth0", f"{CLIENT}/24")
        self.veth("router", "r-cli2", "client2", "eth0")
        self.addr("router", "r-cli2", "10.97.4.1/24")
        self.addr("client2", "eth0", f"{CLIENT2}/24")
        sh("ip", "-n", "router", "link", "set", "r-cli2", "mtu", "1400")  # the narrow hop
        # A veth "offloads" TCP/UDP checksums: the packet carries only the
        # pseudo-header sum, which the stack completes, or trusts, later.
        # XDP frames lose that state, so a client packet that went through
        # the balancer would arrive with a wrong checksum. A real NIC puts a
        # complete checksum on the wire; so do the clients here.
        for c in ("client", "client2"):
            sh("ip", "netns", "exec", c, "ethtool", "-K", "eth0", "tx", "off")
        for c in ("client", "client2"):
            sh("ip", "-n", c, "route", "add", "default", "via", "10.97.1.1" if c == "client"
               else "10.97.4.1")
        for lb, (ip, gw, rif) in LBS.items():
            self.veth("router", rif, lb, "eth0")
            self.addr("router", rif, f"{gw}/24")
            self.addr(lb, "eth0", f"{ip}/24")
            sh("ip", "-n", lb, "route", "add", "default", "via", gw)
        sh("ip", "-n", "router", "link", "add", "fab", "type", "bridge")
        self.addr("router", "fab", "10.97.10.1/24")
        for i, (n, ip) in enumerate(FABRIC.items()):
            self.veth("router", f"f{i}-{n}"[:15], n, "eth0")
            sh("ip", "-n", "router", "link", "set", f"f{i}-{n}"[:15], "master", "fab", "up")
            self.addr(n, "eth0", f"{ip}/24")
            sh("ip", "-n", n, "route", "add", "default", "via", "10.97.10.1")
        for k, v in (("net.ipv4.ip_forward", 1), ("net.ipv4.fib_multipath_hash_policy", 1),
                     ("net.ipv4.conf.all.rp_filter", 0), ("net.ipv4.conf.all.send_redirects", 0)):
            sysctl("router", k, v)
        # a veth delivers XDP_TX frames only to a peer that runs XDP itself
        for _, (_, _, rif) in LBS.items():
            sh("ip", "-n", "router", "link", "set", "dev", rif, "xdpdrv", "obj",
               self.bins["xdp_pass"], "sec", "xdp")

    def teardown(self):
        for n in ["router", "client", "client2"] + list(LBS) + list(FABRIC):
            sh("ip", "netns", "del", n, check=False)

    def vip_nexthops(self):
        """The l4lbs the router currently sends the VIP to."""
        out = sh("ip", "-n", "router", "route", "show", f"{VIP}/32", check=False).stdout
        return sorted(lb for lb, (ip, _, _) in LBS.items() if f"via {ip} " in out)

    def lb_of_flow(self, sport):
        out = sh("ip", "-n", "router", "route", "get", VIP, "from", CLIENT, "iif", "r-cli",
                 "ipproto", "tcp", "sport", str(sport), "dport", "80", check=False).stdout
        for lb, (ip, _, _) in LBS.items():
            if f"via {ip} " in out:
                return lb
        return None


class Cluster:
    def __init__(self, args, run, topo):
        self.args, self.run, self.topo = args, run, topo
        self.logs = os.path.join(run, "logs")
        self.manifests = os.path.join(run, "manifests")
        os.makedirs(self.logs)
        os.makedirs(self.manifests)
        self.procs = {}
        self.repo = args.repo

    def bin(self, rel):
        return os.path.join(self.args.bin_dir, rel)

    def proc(self, name, nsname, cmd):
        p = Proc(name, nsname, cmd, self.logs)
        self.procs[name] = p
        return p.start()

    def admin(self, name):
        return LBS[name][0] if name in LBS else FABRIC[name]

    def readyz(self, name):
        port = 7001 if name == "syncd" else ADMIN
        return ns("router", "curl", "-fsS", "-m", "1", "-o",
                  "/dev/null", f"http://{self.admin(name)}:{port}/readyz", check=False).returncode == 0

    def lb_json(self, lb, path):
        p = ns("router", "curl", "-fsS", "-m", "2", f"http://{LBS[lb][0]}:{ADMIN}{path}", check=False)
        try:
            return json.loads(p.stdout)
        except ValueError:
            return None

    def lb_metrics(self, lb):
        return ns("router", "curl", "-fsS", "-m", "2", f"http://{LBS[lb][0]}:{ADMIN}/metrics",
                  check=False).stdout

    # ------------------------------------------------------------ daemons
    def write_manifests(self):
        docs = [{"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                 "metadata": {"name": "edge", "annotations": {
                     "ingressclass.kubernetes.io/is-default-class": "true"}},
                 "spec": {"controller": "edge.dev/ingress-controller"}}]
        eps = {("app", 1): "10.97.10.31", ("app", 2): "10.97.10.32", ("files", 1): "10.97.10.33"}
        docs += sc.backend_objects({"app": 2, "files": 1}, lambda s, k: eps[(s, k)], 8080)
        for host, svc in ((APP_HOST, "app"), (FILES_HOST, "files")):
            docs.append({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                         "metadata": {"name": svc, "namespace": "default"},
                         "spec": {"ingressClassName": "edge", "rules": [{
                             "host": host, "http": {"paths": [{
                                 "path": "/", "pathType": "Prefix", "backend": {"service": {
                                     "name": svc, "port": {"number": 80}}}}]}}]}})
        sc.write_yaml_atomic(os.path.join(self.manifests, "app.yaml"), docs)

    def start_backends(self):
        for ip in ("10.97.10.32", "10.97.10.33"):
            sh("ip", "-n", "backends", "addr", "add", f"{ip}/24", "dev", "eth0")
        self.proc("backend-app", "backends", [
            "python3", os.path.join(self.repo, "deploy/local/backend.py"),
            "app-1=10.97.10.31:8080", "app-2=10.97.10.32:8080"])
        files = os.path.join(self.run, "files")
        os.makedirs(files)
        with open(os.path.join(files, "big.bin"), "wb") as f:
            f.write(bytes(range(256)) * (BIG // 256))
        self.proc("backend-files", "backends", [
            "python3", "-m", "http.server", "--bind", "10.97.10.33", "--directory", files, "8080"])

    def make_pki(self):
        """mTLS as deployed: syncd's certificate and one per node, each with
        its identity spiffe://edge/ROLE/NAME (deploy/local/pki.sh --node)."""
        self.pki = os.path.join(self.run, "pki")
        subprocess.run([os.path.join(self.repo, "deploy/local/pki.sh"), self.pki,
                        f"--san=IP:{FABRIC['syncd']}"] + [f"--node=l7proxy/{r}" for r in REPLICAS]
                       + [f"--node=l4lb/{lb}" for lb in LBS], check=True, capture_output=True)

    def tls(self, role, name):
        return [f"--cert={self.pki}/{role}-{name}.crt", f"--key={self.pki}/{role}-{name}.key",
                f"--ca={self.pki}/ca.crt"]

    def start_syncd(self):
        ip = FABRIC["syncd"]
        os.makedirs(os.path.join(self.run, "syncd-state"), exist_ok=True)
        self.proc("syncd", "syncd", [
            self.bin("syncd/syncd"), f"--source=dir:{self.manifests}", f"--listen={ip}:7000",
            f"--admin={ip}:7001", f"--state-dir={self.run}/syncd-state",
            f"--cert={self.pki}/syncd.crt", f"--key={self.pki}/syncd.key",
            f"--ca={self.pki}/ca.crt"])

    def start_replica(self, r):
        ip = FABRIC[r]
        subprocess.run(["ip", "netns", "exec", r, os.path.join(self.repo, "deploy/xdp/replica-setup.sh"),
                        f"--vip={VIP}", "--interface=eth0", f"--l4lb={LBS['lb1'][0]}",
                        f"--l4lb={LBS['lb2'][0]}", "--decap=xdp",
                        f"--decap-bin={self.bin('l4lb/l4lb-decap')}"],
                       check=True, capture_output=True, text=True)
        self.proc(r, r, [self.bin("l7proxy/l7proxy"), f"--syncd={FABRIC['syncd']}:7000",
                         f"--node-id={r}", "--http=0.0.0.0:80", f"--advertise={ip}:80",
                         f"--admin={ip}:{ADMIN}", "--workers=1"] + self.tls("l7proxy", r))

    def bird_conf(self, lb):
        ip, gw, _ = LBS[lb]
        with open(os.path.join(self.repo, "deploy/xdp/bird-l4lb.conf.tmpl")) as f:
            tmpl = string.Template(f.read())
        path = os.path.join(self.run, f"bird-{lb}.conf")
        write(path, tmpl.substitute(ROUTER_ID=ip, LOCAL_IP=ip, LOCAL_AS="65001", PEER_IP=gw,
                                    PEER_AS="65000", VIP=VIP))
        return path

    def start_router_bird(self):
        with open(os.path.join(self.repo, "deploy/xdp/bird-router.conf.tmpl")) as f:
            tmpl = string.Template(f.read())
        blocks = "".join(
            f"protocol bgp {lb} {{\n  local {gw} as 65000;\n  neighbor {ip} as 65001;\n"
            f"  bfd on;\n  hold time 9;\n  keepalive time 3;\n  connect retry time 1;\n"
            f"  error wait time 1, 10;\n"
            f"  ipv4 {{ import all; export none; }};\n}}\n"
            for lb, (ip, gw, _) in LBS.items())
        path = os.path.join(self.run, "bird-router.conf")
        write(path, tmpl.substitute(ROUTER_ID="10.97.2.1", LOCAL_AS="65000", PEER_AS="65001",
                                    NEIGHBORS=blocks))
        self.proc("bird-router", "router", ["bird", "-f", "-c", path, "-s",
                                            os.path.join(SOCKETS, "bird-router.ctl"),
                                            "-P", os.path.join(self.run, "bird-router.pid")])

    def l4lb_cmd(self, lb):
        ip = LBS[lb][0]
        return [self.bin("l4lb/l4lb"), "--mode=xdp", "--interface=eth0", f"--vip={VIP}:80",
                f"--syncd={FABRIC['syncd']}:7000", f"--node-id={lb}",
                f"--admin={ip}:{ADMIN}", "--check-interval=300ms", "--rise=2", "--fall=2",
                "--conn-table-size=65536", "--drain-timeout=10s"] + self.tls("l4lb", lb)

    def start_lb(self, lb):
        ip = LBS[lb][0]
        ns(lb, os.path.join(self.repo, "deploy/xdp/l4lb-host-setup.sh"), "--interface=eth0",
           f"--vip={VIP}")
        sock = os.path.join(SOCKETS, f"bird-{lb}.ctl")
        self.proc(f"bird-{lb}", lb, ["bird", "-f", "-c", self.bird_conf(lb), "-s", sock,
                                     "-P", os.path.join(self.run, f"bird-{lb}.pid")])
        self.proc(lb, lb, self.l4lb_cmd(lb))
        self.proc(f"announce-{lb}", lb, [
            "bash", os.path.join(self.repo, "deploy/xdp/announce.sh"),
            f"--readyz=http://{ip}:{ADMIN}/readyz", f"--bird-socket={sock}"])

    def start_all(self):
        self.write_manifests()
        self.start_backends()
        self.make_pki()
        self.start_syncd()
        self.start_router_bird()
        if not wait_until(lambda: self.readyz("syncd"), 20):
            raise RuntimeError("syncd not ready:\n" + self.procs["syncd"].tail())
        for r in REPLICAS:
            self.start_replica(r)
        for lb in LBS:
            self.start_lb(lb)
        for name in REPLICAS + list(LBS):
            if not wait_until(lambda: self.readyz(name) or not self.procs[name].alive(), 30) \
                    or not self.procs[name].alive():
                raise RuntimeError(f"{name} not ready:\n{self.procs[name].tail()}")
        if not wait_until(lambda: self.topo.vip_nexthops() == sorted(LBS), 30, 0.2):
            raise RuntimeError(f"router has VIP next hops {self.topo.vip_nexthops()}, want both:\n"
                               + self.procs["bird-router"].tail())
        if not wait_until(lambda: self.get(APP_HOST, "/", timeout=3)[0] == 200, 20, 0.2):
            raise RuntimeError("no answer through the VIP: " + str(self.get(APP_HOST, "/"))
                               + "\n" + self.diagnose())

    def diagnose(self):
        """Counters along the packet path, for failure reports."""
        lines = []
        for lb in LBS:
            m = self.lb_metrics(lb)
            lines += [f"  {lb}: {ln}" for ln in m.splitlines()
                      if ln.startswith("edge_l4_xdp") and not ln.endswith(" 0")]
        for r in REPLICAS:
            p = ns(r, self.bin("l4lb/l4lb-decap"), "--interface=eth0", "--stats", check=False)
            lines.append(f"  {r} decap: {p.stdout.strip() or p.stderr.strip()}")
        return "\n".join(lines)

    def kill_lb_host(self, lb):
        """The host dies: from now on nothing it sends reaches the router and
        nothing reaches it (the link's carrier stays up, as behind a switch:
        the router must notice by itself, through BFD), and every process on
        it is killed."""
        rif = LBS[lb][2]
        rules = (f"table netdev edge_dead_{lb} {{\n"
                 f"  chain from_host {{\n"
                 f"    type filter hook ingress device \"{rif}\" priority 0; policy drop;\n"
                 f"  }}\n}}\n"
                 f"table inet edge_dead_{lb} {{\n"
                 f"  chain forwarded {{\n    type filter hook forward priority 0;\n"
                 f"    oifname \"{rif}\" drop\n  }}\n"
                 f"  chain local_out {{\n    type filter hook output priority 0;\n"
                 f"    oifname \"{rif}\" drop\n  }}\n}}\n")
        path = os.path.join(self.run, f"dead-{lb}.nft")
        write(path, rules)
        ns("router", "nft", "-f", path)
        for name in (f"announce-{lb}", lb, f"bird-{lb}"):
            self.procs[name].signal(signal.SIGKILL)
            self.procs[name].p.wait(5)

    def revive_lb_host(self, lb):
        for fam in ("netdev", "inet"):
            ns("router", "nft", "delete", "table", fam, f"edge_dead_{lb}", check=False)
        self.start_lb(lb)

    def stop_all(self):
        """Stops everything; returns "name: status" for each daemon that died
        by itself during the run or did not exit 0 on SIGTERM."""
        daemons = list(LBS) + REPLICAS + ["syncd", "bird-router"] + [f"bird-{lb}" for lb in LBS]
        unclean = [f"{n}: {self.procs[n].unexpected_exit()}" for n in daemons
                   if n in self.procs and self.procs[n].unexpected_exit()]
        order = [f"announce-{lb}" for lb in LBS] + list(LBS) + [f"bird-{lb}" for lb in LBS] + \
            REPLICAS + ["syncd", "bird-router", "backend-app", "backend-files"]
        for name in order:
            if name in self.procs:
                rc = self.procs[name].stop(10)
                if rc not in (None, 0, -signal.SIGTERM) and name in list(LBS) + REPLICAS:
                    unclean.append(f"{name}: exit status {rc}")
        return unclean

    # ------------------------------------------------------------ clients
    def get(self, host, path, client="client", extra=(), timeout=10):
        """(status, body) of one request from a client namespace through the VIP."""
        p = ns(client, "curl", "-sS", "-m", str(timeout), "-o", "-", "-w", "\n%{http_code}",
               "-H", f"Host: {host}", *extra, f"http://{VIP}/{path.lstrip('/')}", check=False)
        body, _, code = p.stdout.rpartition("\n")
        return (int(code) if code.isdigit() else 0), body


# ---------------------------------------------------------------- scenarios
def scenario_basic(cl, out):
    ok = True
    status, body = cl.get(APP_HOST, "/who")
    try:
        echo = json.loads(body)
    except ValueError:
        echo = {}
    xff = echo.get("x_forwarded_for", "").split(",")[0].strip()
    out.append(f"    GET via VIP: {status}, backend {echo.get('backend')}, client address seen {xff}")
    if status != 200 or xff != CLIENT:
        out.append(f"    FAIL want 200 and X-Forwarded-For {CLIENT} (no PROXY v2 in packet mode)")
        ok = False
    hops = cl.topo.vip_nexthops()
    out.append(f"    router: VIP next hops {hops}")
    if hops != sorted(LBS):
        out.append("    FAIL both l4lbs must announce the VIP")
        ok = False
    differ = 0
    for i in range(50):
        q = f"/lookup?src=10.97.1.{2 + i % 200}:{20000 + 37 * i}&dst={VIP}:80"
        a, b = cl.lb_json("lb1", q), cl.lb_json("lb2", q)
        if not a or not b or a.get("backend") != b.get("backend") or a.get("slot") != b.get("slot"):
            differ += 1
    out.append(f"    /lookup: lb1 and lb2 differ on {differ} of 50 flows")
    ok = ok and differ == 0
    for lb in LBS:
        m = cl.lb_metrics(lb)
        pk = re.search(r'edge_l4_xdp_vip_packets_total\{vip="10\.97\.100\.1:80/tcp"\} (\d+)', m)
        be = re.findall(r'edge_l4_xdp_backend_packets_total\{backend="(l7-\d)"\} (\d+)', m)
        out.append(f"    {lb} /metrics: vip packets {pk.group(1) if pk else '?'}, per replica "
                   f"{dict(be)}")
        if not pk or len(be) != 3:
            out.append(f"    FAIL {lb} exports no VIP or per-replica packet counters")
            ok = False
    return ok


def scenario_pmtu(cl, out):
    ok = True
    before = {lb: cl.lb_metrics(lb) for lb in LBS}
    t0 = time.monotonic()
    p = ns("client2", "curl", "-sS", "-m", "30", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
           "-H", f"Host: {FILES_HOST}", f"http://{VIP}/big.bin", check=False)
    got = p.stdout.split()
    out.append(f"    download over a 1400-byte hop: {p.stdout.strip() or p.stderr.strip()[:120]} "
               f"in {time.monotonic() - t0:.1f}s")
    if got != ["200", str(BIG)]:
        out.append(f"    FAIL want 200 and {BIG} bytes (replicas must learn the path MTU)")
        ok = False
    fwd = sum(icmp_count(cl.lb_metrics(lb), "icmp_forwarded") - icmp_count(before[lb], "icmp_forwarded")
              for lb in LBS)
    out.append(f"    ICMP frag-needed forwarded to replicas by the l4lbs: {fwd}")
    if fwd < 1:
        out.append("    FAIL no ICMP error reached a replica through the l4lbs")
        ok = False
    body = os.path.join(cl.run, "upload.bin")
    with open(body, "wb") as f:
        f.write(os.urandom(256 * 1024))
    p = ns("client", "curl", "-sS", "-m", "30", "-o", "/dev/null", "-w", "%{http_code}",
           "-H", f"Host: {APP_HOST}", "--data-binary", f"@{body}", f"http://{VIP}/upload",
           check=False)
    sent = sum(icmp_count(cl.lb_metrics(lb), "icmp_too_big_sent") for lb in LBS)
    out.append(f"    256 KB upload with 1500-byte packets: {p.stdout.strip() or p.stderr.strip()[:120]}; "
               f"frag-needed sent by the l4lbs: {sent}")
    if p.stdout.strip() != "200" or sent < 1:
        out.append("    FAIL the upload must succeed after the l4lb told the client the tunnel MTU")
        ok = False
    return ok


def icmp_count(metrics, action):
    m = re.search(r'edge_l4_xdp_icmp_total\{action="%s"\} (\d+)' % action, metrics)
    return int(m.group(1)) if m else 0


def run_flowload(cl, tag, conns=24):
    ports, res = (os.path.join(cl.run, f"{tag}.{k}.json") for k in ("ports", "out"))
    p = cl.proc(f"flowload-{tag}", "client", [
        "python3", os.path.join(os.path.dirname(os.path.abspath(__file__)), "flowload.py"),
        f"--vip={VIP}", f"--host={APP_HOST}", f"--conns={conns}", "--rate=10", "--probe-rate=20",
        f"--ports={ports}", f"--out={res}"])
    if not wait_until(lambda: os.path.exists(ports), 20):
        raise RuntimeError("flowload did not establish its connections:\n" + p.tail())
    with open(ports) as f:
        return p, json.load(f), res


def stop_flowload(p, res):
    p.signal(signal.SIGTERM)
    p.p.wait(30)
    try:
        with open(res) as f:
            return json.load(f)
    except (OSError, ValueError):
        raise RuntimeError("flowload wrote no results:\n" + p.tail())


def scenario_kill_l4lb(cl, out):
    p, ports, res = run_flowload(cl, "kill")
    try:
        via = {port: cl.topo.lb_of_flow(port) for port in ports}
        on_lb1 = [port for port, lb in via.items() if lb == "lb1"]
        time.sleep(2.0)  # load running before the fault (a duration, not a wait)
        t_kill = time.time()
        t0 = time.monotonic()
        cl.kill_lb_host("lb1")
        withdrawn = wait_until(lambda: cl.topo.vip_nexthops() == ["lb2"], 20, 0.05)
        took = time.monotonic() - t0
        time.sleep(4.0)
    finally:
        r = stop_flowload(p, res)
    broken = [c for c in r["conns"] if c["broken"]]
    moved = [c for c in r["conns"] if c["port"] in on_lb1]
    continued = [c for c in moved if c["last_ok"] > t_kill + took]
    out.append(f"    {len(ports)} established flows, {len(on_lb1)} through lb1; lb1's host died "
               f"(no packets either way, processes killed); the router withdrew it after "
               f"{took:.2f}s (BFD, then BGP)")
    out.append(f"    established flows broken: {len(broken)} "
               f"({', '.join(sorted({c['broken'] for c in broken})) or 'none'}); "
               f"lb1's flows answered through lb2 afterwards: {len(continued)} of {len(moved)}")
    pr = r["probes"]
    errs = ", ".join(f"{k}×{v}" for k, v in sorted(pr["errors"].items()))
    out.append(f"    new connections: sent={pr['sent']} failed={pr['failed']}"
               + (f" ({errs})" if errs else ""))
    ok = bool(withdrawn) and not broken and len(on_lb1) > 0 and len(continued) == len(moved)
    if not ok:
        out.append("    FAIL want the route withdrawn, 0 broken flows, and every flow of lb1 "
                   "served by lb2 (same Maglev table)")
    cl.revive_lb_host("lb1")
    back = wait_until(lambda: cl.topo.vip_nexthops() == sorted(LBS), 30, 0.2)
    out.append(f"    lb1 restarted: {'announcing again' if back else 'NOT announcing'}")
    return ok and bool(back)


def scenario_drain_l4lb(cl, out):
    if cl.topo.vip_nexthops() != sorted(LBS):
        out.append(f"    FAIL not both l4lbs announce before the drain: {cl.topo.vip_nexthops()}")
        return False
    p, ports, res = run_flowload(cl, "drain", conns=12)
    try:
        time.sleep(1.5)
        t0 = time.monotonic()
        cl.procs["lb2"].signal(signal.SIGTERM)
        withdrawn = wait_until(lambda: cl.topo.vip_nexthops() == ["lb1"], 15, 0.05)
        took = time.monotonic() - t0
        exited = wait_until(lambda: not cl.procs["lb2"].alive(), 15, 0.1)
        rc = cl.procs["lb2"].p.returncode if exited else None
        time.sleep(1.0)
    finally:
        r = stop_flowload(p, res)
    broken = [c for c in r["conns"] if c["broken"]]
    pr = r["probes"]
    out.append(f"    SIGTERM to lb2: route withdrawn after {took:.2f}s, l4lb exited "
               f"{'with ' + str(rc) if exited else 'NOT within 15s'}")
    out.append(f"    established flows broken: {len(broken)}; new connections sent={pr['sent']} "
               f"failed={pr['failed']}")
    ok = bool(withdrawn) and exited and rc == 0 and not broken and pr["failed"] == 0
    if not ok:
        out.append("    FAIL want a clean withdrawal, exit 0 and no failed request")
    for name in ("announce-lb2", "bird-lb2"):
        cl.procs[name].stop(5)
    cl.start_lb("lb2")
    back = wait_until(lambda: cl.topo.vip_nexthops() == sorted(LBS), 30, 0.2)
    return ok and bool(back)


SCENARIOS = [("xdp-basic", scenario_basic), ("xdp-pmtu", scenario_pmtu),
             ("xdp-kill-l4lb", scenario_kill_l4lb), ("xdp-drain-l4lb", scenario_drain_l4lb)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo", required=True)
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--xdp-pass", required=True, help="xdp_pass.bpf.o")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    args.bin_dir = os.path.abspath(args.bin_dir)
    base = os.environ.get("TEST_TMPDIR") or "/tmp"
    run = tempfile.mkdtemp(prefix="edge-xdp-e2e-", dir=base)
    os.chmod(run, 0o755)
    log(f"packet-mode e2e: work dir {run}")
    topo = Topology({"repo": args.repo, "xdp_pass": os.path.abspath(args.xdp_pass)})
    results = []
    cl = None
    try:
        topo.setup()
        cl = Cluster(args, run, topo)
        log("  starting syncd, 3 l7proxy (XDP decap, VIP on lo), 2 l4lb --mode=xdp with bird, "
            "router bird (ECMP)")
        cl.start_all()
        only = set(filter(None, args.only.split(",")))
        for name, fn in SCENARIOS:
            if only and name not in only:
                continue
            t0 = time.monotonic()
            lines = []
            try:
                ok = fn(cl, lines)
            except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as e:
                lines.append(f"    ERROR {e}")
                ok = False
            status = "PASS" if ok else "FAIL"
            results.append((name, status))
            log(f"{status:4}  {name}  ({time.monotonic() - t0:.1f}s)")
            for ln in lines:
                log(ln)
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        log(f"ERROR cluster: {e}")
        results.append(("cluster-start", "FAIL"))
    finally:
        hold = float(os.environ.get("EDGE_XDP_E2E_HOLD", "0"))  # debugging: inspect first
        if hold > 0:
            log(f"  holding the topology for {hold:.0f}s (EDGE_XDP_E2E_HOLD)")
            time.sleep(min(hold, 3600))
        if cl:
            unclean = cl.stop_all()
            results.append(("clean-shutdown", "FAIL" if unclean else "PASS"))
            log(f"{'FAIL' if unclean else 'PASS'}  clean-shutdown")
            for u in unclean:
                log(f"    {u}")
        topo.teardown()
    outdir = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
    if outdir:
        shutil.copytree(os.path.join(run, "logs"), os.path.join(outdir, "xdp-e2e-logs"),
                        dirs_exist_ok=True)
    passed = sum(1 for _, s in results if s == "PASS")
    failed = sum(1 for _, s in results if s == "FAIL")
    log(f"{passed} passed, {failed} failed, 0 skipped (logs: {run}/logs)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
