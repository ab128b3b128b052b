#!/usr/bin/env python3
"""l4_packet_bench — L4 tier cost: l4lb TCP mode vs l4lb XDP mode vs HAProxy
`mode tcp`, in network namespaces, same run, same client, same backend.

Started by tests/load/l4_packet_mode.sh inside an outer namespace with no
route out. Topology:

    client 10.96.1.2 ── router ──┬── lb 10.96.2.2      (the side under test)
                                 └── backend 10.96.3.2 (nginx, 1 worker)

The router sends the VIP 10.96.100.1 to lb. TCP mode and HAProxy listen on
the VIP (on lb's lo) and proxy to nginx's PROXY-v2 listener (:8080); XDP
mode encapsulates to the backend host, which unwraps (l4lb-decap), serves
the VIP on its lo (nginx on :80, which l4lb's TCP health check also
connects to) and answers the client directly. Each side gets the same
load: new connections (wrk, Connection: close), kept-alive requests (wrk)
and bulk downloads (curl). Reported per side: the L4 tier's CPU per
connection / request / MB — the process's user+system time from
/proc/PID/stat, plus, for XDP mode, the XDP program's own run time from
the kernel's BPF statistics (kernel.bpf_stats_enabled, switched on for the
run and restored) — and its ratio to HAProxy's. Client, backend and the
side under test share the machine's cores: compare ratios from one run.
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

VIP = "10.96.100.1"
CLIENT, LB, LB_GW, BACKEND, BE_GW = "10.96.1.2", "10.96.2.2", "10.96.2.1", "10.96.3.2", "10.96.3.1"
HZ = os.sysconf("SC_CLK_TCK")


def sh(*cmd, check=True, **kw):
    p = subprocess.run(list(cmd), capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {p.stderr.strip()}")
    return p


def ns(name, *cmd, check=True):
    return sh("ip", "netns", "exec", name, *cmd, check=check)


def veth(a, a_if, a_ip, b, b_if, b_ip):
    sh("ip", "link", "add", a_if, "netns", a, "type", "veth", "peer", "name", b_if, "netns", b)
    for n, i, ip in ((a, a_if, a_ip), (b, b_if, b_ip)):
        sh("ip", "-n", n, "addr", "add", ip, "dev", i)
        sh("ip", "-n", n, "link", "set", i, "up")


def setup(args):
    for n in ("client", "router", "lb", "backend"):
        sh("ip", "netns", "add", n)
        sh("ip", "-n", n, "link", "set", "lo", "up")
    veth("client", "eth0", f"{CLIENT}/24", "router", "r-cli", "10.96.1.1/24")
    veth("router", "r-lb", f"{LB_GW}/24", "lb", "eth0", f"{LB}/24")
    veth("router", "r-be", f"{BE_GW}/24", "backend", "eth0", f"{BACKEND}/24")
    sh("ip", "-n", "client", "route", "add", "default", "via", "10.96.1.1")
    sh("ip", "-n", "lb", "route", "add", "default", "via", LB_GW)
    sh("ip", "-n", "backend", "route", "add", "default", "via", BE_GW)
    sh("ip", "-n", "router", "route", "add", f"{VIP}/32", "via", LB)
    ns("router", "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward; "
       "echo 0 > /proc/sys/net/ipv4/conf/all/send_redirects")
    # complete checksums on the wire (see tests/e2e/netns/packet_mode.py)
    ns("client", "ethtool", "-K", "eth0", "tx", "off")
    sh("ip", "-n", "router", "link", "set", "dev", "r-lb", "xdpdrv", "obj", args.xdp_pass,
       "sec", "xdp")
    ns("lb", os.path.join(args.repo, "deploy/xdp/l4lb-host-setup.sh"), "--interface=eth0",
       f"--vip={VIP}")
    ns("backend", os.path.join(args.repo, "deploy/xdp/replica-setup.sh"), f"--vip={VIP}",
       "--interface=eth0", f"--l4lb={LB}", "--decap=xdp",
       f"--decap-bin={os.path.join(args.bin_dir, 'l4lb/l4lb-decap')}")


class Daemon:
    def __init__(self, nsname, cmd, log):
        self.p = subprocess.Popen(["ip", "netns", "exec", nsname] + cmd, stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def cpu_s(self):
        with open(f"/proc/{self.p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / HZ

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)


def wait_http(url, client="client", timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ns(client, "curl", "-fsS", "-m", "1", "-o", "/dev/null", url, check=False).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url} never answered")


def bpf_runtime_ns():
    """Total run time and runs of every XDP balancer program (kernel stats)."""
    p = sh("bpftool", "prog", "show", "-j", check=False)
    try:
        progs = json.loads(p.stdout or "[]")
    except ValueError:
        return 0, 0
    t = n = 0
    for pr in progs:
        if pr.get("name") == "xdp_balancer":
            t += pr.get("run_time_ns", 0)
            n += pr.get("run_cnt", 0)
    return t, n


def start_side(side, args, work, log):
    vip_on_lo = side != "xdp"
    sh("ip", "-n", "lb", "addr", "del", f"{VIP}/32", "dev", "lo", check=False)
    sh("ip", "-n", "lb", "route", "del", "blackhole", f"{VIP}/32", check=False)
    if vip_on_lo:
        sh("ip", "-n", "lb", "addr", "add", f"{VIP}/32", "dev", "lo")
    else:  # as deploy/xdp/l4lb-host-setup.sh leaves it: the host never routes the VIP
        sh("ip", "-n", "lb", "route", "add", "blackhole", f"{VIP}/32")
    if side == "tcp":
        d = Daemon("lb", [os.path.join(args.bin_dir, "l4lb/l4lb"), f"--listen={VIP}:80",
                          f"--backend={BACKEND}:8080", "--workers=1", "--admin=127.0.0.1:9100"], log)
    elif side == "xdp":
        d = Daemon("lb", [os.path.join(args.bin_dir, "l4lb/l4lb"), "--mode=xdp", "--interface=eth0",
                          f"--vip={VIP}:80", f"--backend={BACKEND}:80", "--workers=1",
                          "--admin=127.0.0.1:9100"], log)
    else:
        cfg = os.path.join(work, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(f"global\n  nbthread 1\n  maxconn 8000\ndefaults\n  mode tcp\n"
                    f"  timeout connect 3s\n  timeout client 60s\n  timeout server 60s\n"
                    f"frontend f\n  bind {VIP}:80\n  default_backend b\n"
                    f"backend b\n  server s1 {BACKEND}:8080 send-proxy-v2\n")
        d = Daemon("lb", ["haproxy", "-db", "-f", cfg], log)
    wait_http(f"http://{VIP}/index.html")
    return d


BPF_SHARE = []  # XDP mode: program run time / (program + process), per measure


def measure(side, d, load):
    """Runs one load; returns (units done, L4 CPU seconds)."""
    c0 = d.cpu_s()
    b0, _ = bpf_runtime_ns() if side == "xdp" else (0, 0)
    units = load()
    c1 = d.cpu_s()
    b1, _ = bpf_runtime_ns() if side == "xdp" else (0, 0)
    total = (c1 - c0) + (b1 - b0) / 1e9
    if side == "xdp" and total > 0:
        BPF_SHARE.append((b1 - b0) / 1e9 / total)
    return units, total


def wrk(args, close):
    cmd = ["wrk", "-t1", f"-c{args.conns}", f"-d{args.duration}s"]
    if close:
        cmd += ["-H", "Connection: close"]
    out = ns("client", *cmd, f"http://{VIP}/index.html").stdout
    m = re.search(r"(\d+) requests in", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    bad = (sum(int(x) for x in errs.groups()) if errs else 0) + (int(non2xx.group(1)) if non2xx else 0)
    return int(m.group(1)) if m else 0, bad


def bulk(args):
    total = 0
    for _ in range(args.bulk_runs):
        p = ns("client", "curl", "-sS", "-m", "120", "-o", "/dev/null", "-w", "%{size_download}",
               f"http://{VIP}/bulk.bin", check=False)
        if p.returncode != 0:
            raise RuntimeError(f"bulk download failed: {p.stderr.strip()} after {p.stdout} bytes")
        total += int(p.stdout or 0)
    return total / (1024 * 1024)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo", required=True)
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--xdp-pass", required=True)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--bulk-mb", type=int, default=256)
    ap.add_argument("--bulk-runs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--sides", default="tcp,xdp,haproxy", help="debugging: a subset")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="edge-l4-packet-bench-")
    os.chmod(work, 0o755)
    www = os.path.join(work, "www")
    os.makedirs(www)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("ok\n")
    with open(os.path.join(www, "bulk.bin"), "wb") as f:
        f.truncate(args.bulk_mb * 1024 * 1024)
    log = open(os.path.join(work, "daemons.log"), "w")
    setup(args)
    ngx = os.path.join(work, "nginx.conf")
    with open(ngx, "w") as f:
        f.write(f"worker_processes 1;\nerror_log {work}/nginx-error.log;\npid {work}/nginx.pid;\n"
                f"events {{ worker_connections 20000; }}\nhttp {{\n  access_log off;\n"
                f"  keepalive_requests 1000000;\n  client_body_temp_path {work};\n"
                f"  proxy_temp_path {work};\n  fastcgi_temp_path {work};\n"
                f"  uwsgi_temp_path {work};\n  scgi_temp_path {work};\n"
                f"  server {{ listen {BACKEND}:8080 proxy_protocol; root {www}; sendfile on; }}\n"
                f"  server {{ listen 80; root {www}; sendfile on; }}\n}}\n")
    nginx = Daemon("backend", ["nginx", "-c", ngx, "-g", "daemon off;"], log)
    stats_path = "/proc/sys/kernel/bpf_stats_enabled"
    with open(stats_path) as f:
        stats_before = f.read().strip()
    results = {s: {"conn": [], "req": [], "mb": []} for s in ("tcp", "xdp", "haproxy")}
    errors = {s: 0 for s in results}
    try:
        with open(stats_path, "w") as f:
            f.write("1")
        for _ in range(args.repeat):
            for side in args.sides.split(","):
                d = start_side(side, args, work, log)
                try:
                    (n, bad), cpu = measure(side, d, lambda: wrk(args, True))
                    errors[side] += bad
                    results[side]["conn"].append(cpu * 1e6 / max(1, n))
                    (n, bad), cpu = measure(side, d, lambda: wrk(args, False))
                    errors[side] += bad
                    results[side]["req"].append(cpu * 1e6 / max(1, n))
                    mb, cpu = measure(side, d, lambda: bulk(args))
                    results[side]["mb"].append(cpu * 1e6 / max(1e-9, mb))
                finally:
                    d.stop()
    finally:
        with open(stats_path, "w") as f:
            f.write(stats_before)
        nginx.stop()
        log.close()
    med = {s: {k: statistics.median(v) for k, v in r.items()} for s, r in results.items()}
    rows = [("L4 CPU per new connection (µs)", "conn"),
            ("L4 CPU per kept-alive request (µs)", "req"),
            ("L4 CPU per MB of bulk download (µs)", "mb")]
    print(f"\nL4 tier cost, {args.repeat} run(s), medians; CPU = process user+system time"
          f" (+ XDP program run time for XDP mode)\n")
    print("| measure | TCP mode | XDP mode | HAProxy mode tcp | TCP ÷ HAProxy | XDP ÷ HAProxy |")
    print("|---|--:|--:|--:|--:|--:|")
    for label, k in rows:
        t, x, h = med["tcp"][k], med["xdp"][k], med["haproxy"][k]
        print(f"| {label} | {t:.2f} | {x:.3f} | {h:.2f} | {t / h:.2f}× | {x / h:.3f}× |")
    if BPF_SHARE:
        print(f"\nXDP mode: the program's own run time is {100 * statistics.median(BPF_SHARE):.0f} % "
              f"of its figure (median), the rest is l4lb's process (health checks, table).")
    print(f"\nerrors (socket errors + non-2xx): tcp {errors['tcp']}, xdp {errors['xdp']}, "
          f"haproxy {errors['haproxy']}  (logs: {work})")
    return 0 if not any(errors.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
