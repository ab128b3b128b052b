"""harness — processes, peers, load generators and measurements for the
load-testing scenarios (tests/load/scenarios.py).

What it does: starts the processes a scenario needs (the nginx backend, edge's
l7proxy and l4lb, the nginx and HAProxy peers) on 127.0.0.1 with ports the
kernel picked, waits for each to answer, runs a load generator (wrk, h2load,
curl) against one of them and measures the proxy's CPU time (utime + stime of
the whole process from /proc/PID/stat, all threads included) over exactly the
load run, and its memory (VmRSS at the end, VmHWM peak).

Invariants:
  - every process is started through Env.spawn and stopped by PID by
    Env.close (SIGTERM, then SIGKILL after a deadline); nothing is killed by
    name;
  - traffic goes only to 127.0.0.1;
  - every wait is bounded (a deadline, never an unbounded loop);
  - a side that cannot run raises SetupError (a failure, with the tail of
    its log): a missing tool or binary, a flag the build rejects, a feature
    that does not answer (h2c, TLS). Nothing here turns a broken side into a
    skip; sides that never apply to a peer are "n/a" rows in scenarios.py;
  - a load generator that measured nothing, exited non-zero or left more
    requests unfinished than it had in flight reports them as errors or
    raises SetupError; it never returns an empty success.

Callers: scenarios.py (each scenario function), loadtest.py (Env life cycle).
"""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "peers")
WRK_LUA = os.path.join(HERE, "lua", "stats.lua")
HZ = os.sysconf("SC_CLK_TCK")
# What peers/backend-nginx.conf answers on "/".
BACKEND_BODY = "hello from the load-test backend\n"


class SetupError(Exception):
    """A process did not start or answer; the message carries its log tail."""


# ------------------------------------------------------------------ processes


class Proc:
    """One started process: its Popen, name and log file."""

    def __init__(self, name, popen, log):
        self.name = name
        self.popen = popen
        self.pid = popen.pid
        self.log = log

    def alive(self):
        return self.popen.poll() is None

    def cpu_seconds(self):
        """utime + stime of the whole process (all threads, also exited ones)."""
        with open("/proc/%d/stat" % self.pid) as f:
            stat = f.read()
        # The command name may hold spaces; fields restart after the last ')'.
        fields = stat[stat.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / HZ

    def memory_kb(self):
        """(VmRSS, VmHWM) in KiB, or (0, 0) when the process is gone."""
        rss = hwm = 0
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1])
                    elif line.startswith("VmHWM:"):
                        hwm = int(line.split()[1])
        except OSError:
            pass
        return rss, hwm

    def log_tail(self, n=15):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


class Env:
    """A scenario's working directory and the processes started in it."""

    def __init__(self, workdir, bins):
        self.dir = workdir
        self.bins = bins
        self.procs = []
        os.makedirs(workdir, exist_ok=True)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def spawn(self, name, argv, extra_env=None, preexec=None):
        log = self.path(name + ".log")
        env = dict(os.environ)
        env.update(extra_env or {})
        with open(log, "ab") as out:
            p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=env,
                                 cwd=self.dir, preexec_fn=preexec)
        proc = Proc(name, p, log)
        self.procs.append(proc)
        return proc

    def stop(self, proc, sig=signal.SIGTERM, timeout=5.0):
        if proc.alive():
            try:
                proc.popen.send_signal(sig)
                proc.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(timeout=timeout)
        if proc in self.procs:
            self.procs.remove(proc)

    def close(self):
        for proc in reversed(list(self.procs)):
            self.stop(proc)


def free_port():
    """A port the kernel considers free now on 127.0.0.1."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(url, timeout=1.0, host=None):
    """(status, body) of one GET; raises OSError on a network failure.
    Certificates are not verified (the test CA is thrown away)."""
    req = urllib.request.Request(url)
    if host:
        req.add_header("Host", host)
    ctx = None
    if url.startswith("https:"):  # building a context costs ~25 ms: only when needed
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def probe_once(port, timeout=0.5):
    """One GET / on a new connection; True when the answer is 200. Raw
    sockets, so a probe costs little next to the load it runs beside."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
            head = s.recv(64)
            return head.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def _exited(proc):
    tail = proc.log_tail()
    lines = [l for l in tail.splitlines() if l.strip()]
    why = next((l for l in reversed(lines) if re.search(r"ALERT|emerg|error|rror:", l)),
               lines[-1] if lines else "no output")
    return SetupError("%s exited with %s during start: %s\n%s" %
                      (proc.name, proc.popen.returncode, why.strip(), tail))


def wait_http(proc, url, deadline_s=60.0, host=None, want=200):
    """Polls url until it answers `want`; SetupError with the log tail when
    the process exits or the deadline passes."""
    end = time.monotonic() + deadline_s
    last = ""
    while time.monotonic() < end:
        if not proc.alive():
            raise _exited(proc)
        try:
            status, _ = http_get(url, timeout=1.0, host=host)
            if status == want:
                return
            last = "status %d" % status
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    raise SetupError("%s: %s did not answer %d within %.0f s (%s):\n%s" %
                     (proc.name, url, want, deadline_s, last, proc.log_tail()))


def wait_tcp(proc, port, deadline_s=60.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if not proc.alive():
            raise _exited(proc)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SetupError("%s: port %d not accepting within %.0f s:\n%s" %
                     (proc.name, port, deadline_s, proc.log_tail()))


def render(template, dest, **values):
    """Copies peers/TEMPLATE to dest with every @@KEY@@ replaced by values[key]."""
    with open(os.path.join(PEERS, template)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@@%s@@" % k.upper(), str(v))
    left = [m for line in text.splitlines() if not line.lstrip().startswith("#")
            for m in re.findall(r"@@[A-Z_]+@@", line)]
    if left:
        raise SetupError("%s: unfilled placeholders %s" % (template, left))
    with open(dest, "w") as f:
        f.write(text)
    return dest


def need_tool(name):
    if shutil.which(name) is None:
        raise SetupError("%s is not installed (bash bazel/setup.sh installs it)" % name)


# ---------------------------------------------------------------- TLS material


def make_cert(env, name="tls"):
    """A throw-away self-signed RSA-2048 certificate for *.example.com and
    localhost (the figures in DESIGN §10 are for RSA-2048). Returns
    (cert, key, combined) paths; combined is cert+key for HAProxy."""
    cert, key, both = (env.path(name + ".crt"), env.path(name + ".key"),
                       env.path(name + ".pem"))
    if not os.path.exists(both):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=" + name, "-keyout", key, "-out", cert,
             "-addext", "subjectAltName=DNS:localhost,DNS:*.example.com,IP:127.0.0.1"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(both, "w") as out:
            for p in (cert, key):
                with open(p) as f:
                    out.write(f.read())
    return cert, key, both


# ------------------------------------------------------------------ backends


class Backend:
    """The nginx backend: .port (plain HTTP), .pp_port (expects PROXY)."""

    def __init__(self, env, bulk_mb=0):
        need_tool("nginx")
        d = env.path("backend")
        for sub in ("www", "client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        if bulk_mb:
            with open(os.path.join(d, "www", "bulk.bin"), "wb") as f:
                f.truncate(bulk_mb << 20)
        self.port, self.pp_port = free_port(), free_port()
        conf = render("backend-nginx.conf", os.path.join(d, "nginx.conf"), dir=d,
                      port=self.port, pp_port=self.pp_port)
        self.proc = env.spawn("backend", ["nginx", "-p", d, "-c", conf])
        wait_http(self.proc, "http://127.0.0.1:%d/" % self.port)


# ---------------------------------------------------------------------- edge


def l7_config(backend_ports, hosts=None, extra_routes=0, version=1, cert=None):
    """An edge.v1.Snapshot in l7proxy's JSON form (l7proxy/pb_json.h): one
    cluster over backend_ports, and either one catch-all virtual host or
    one exact virtual host per name in hosts. extra_routes adds that many
    /churn-N routes (config-churn). cert=(cert_pem, key_pem) adds a default
    certificate."""
    import json
    cluster = {"cluster": {
        "name": "load/backend:80",
        "endpoints": [{"address": "127.0.0.1", "port": p, "ready": True}
                      for p in backend_ports],
        "max_idle_per_endpoint": 256}}
    routes = [{"path": "/", "path_type": "PATH_TYPE_PREFIX", "cluster": "load/backend:80"}]
    routes = [{"path": "/churn-%d" % i, "path_type": "PATH_TYPE_PREFIX",
               "cluster": "load/backend:80"} for i in range(extra_routes)] + routes
    res = [cluster]
    if hosts is None:
        res.append({"virtual_host": {"name": "vh:*", "host": "", "host_match": "HOST_MATCH_ANY",
                                     "routes": routes,
                                     "certificate": "load/tls" if cert else ""}})
    else:
        for h in hosts:
            res.append({"virtual_host": {"name": "vh:" + h, "host": h,
                                         "host_match": "HOST_MATCH_EXACT", "routes": routes,
                                         "certificate": "load/tls" if cert else ""}})
    if cert:
        res.append({"certificate": {"name": "load/tls", "sni_names": ["localhost"],
                                    "cert_pem": cert[0], "key_pem": cert[1],
                                    "is_default": True}})
    return json.dumps({"version": version, "resources": res})


def start_syncd(env, manifests, extra=()):
    """edge's syncd over a directory of Kubernetes YAML, plaintext gRPC on
    127.0.0.1. Returns (proc, grpc_port, admin_port)."""
    binary = need_bin(env, "syncd")
    port, admin = free_port(), free_port()
    state = env.path("syncd-state")
    os.makedirs(state, exist_ok=True)
    proc = env.spawn("syncd", [binary, "--source=dir:" + manifests,
                               "--listen=127.0.0.1:%d" % port, "--admin=127.0.0.1:%d" % admin,
                               "--state-dir=" + state, "--insecure", "--log-level=warn"]
                     + list(extra))
    wait_http(proc, "http://127.0.0.1:%d/healthz" % admin)
    return proc, port, admin


def start_l7proxy_syncd(env, syncd_port, name="l7proxy", proxy_protocol=False):
    """l7proxy configured by syncd (ConfigSync, plaintext), advertising its
    --http address (what l4lb gets from Membership). Waits until it has
    applied a state (/readyz). Returns (proc, port, admin_port)."""
    binary = need_bin(env, "l7proxy")
    port, admin = free_port(), free_port()
    cache = env.path(name + "-cache")
    os.makedirs(cache, exist_ok=True)
    argv = [binary, "--workers=1", "--http=127.0.0.1:%d" % port,
            "--admin=127.0.0.1:%d" % admin, "--advertise=127.0.0.1:%d" % port,
            "--syncd=127.0.0.1:%d" % syncd_port, "--insecure",
            "--node-id=" + name, "--cache-dir=" + cache, "--log-level=warn",
            "--drain-timeout=2s"]
    if proxy_protocol:
        argv += ["--proxy-protocol", "--proxy-protocol-trusted=127.0.0.0/8"]
    proc = env.spawn(name, argv)
    wait_http(proc, "http://127.0.0.1:%d/readyz" % admin)
    return proc, port, admin


def start_l4lb_syncd(env, syncd_port, name="l4lb", proxy_protocol=True):
    """l4lb taking its replica set from syncd's Membership stream. Waits
    until a request through it reaches a replica. Returns (proc, port)."""
    binary = need_bin(env, "l4lb")
    port, admin = free_port(), free_port()
    proc = env.spawn(name, [binary, "--listen=127.0.0.1:%d" % port,
                            "--admin=127.0.0.1:%d" % admin, "--workers=1",
                            "--syncd=127.0.0.1:%d" % syncd_port, "--insecure",
                            "--node-id=" + name, "--log-level=warn",
                            "--proxy-protocol=%s" % ("on" if proxy_protocol else "off")])
    wait_tcp(proc, port)
    wait_http(proc, "http://127.0.0.1:%d/" % port)
    return proc, port


def metric_values(admin, name):
    """{labels text: value} of one metric family from an admin /metrics."""
    out = {}
    try:
        _, body = http_get("http://127.0.0.1:%d/metrics" % admin, timeout=2.0)
    except OSError:
        return out
    for line in body.decode(errors="replace").splitlines():
        m = re.match(re.escape(name) + r"(\{[^}]*\})? (\S+)$", line)
        if m:
            out[m.group(1) or ""] = float(m.group(2))
    return out


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def need_bin(env, name):
    path = env.bins.get(name)
    if not path or not os.access(path, os.X_OK):
        raise SetupError("%s binary not built (run.sh builds it with bazel -c opt; "
                         "or set EDGE_BIN_DIR)" % name)
    return path


# TLS settings every side uses (peers/nginx-tls.conf, peers/haproxy-http.cfg
# and edge's flags below): TLS 1.3 only, one cipher suite, one group.
TLS_PROTOCOL, TLS_CIPHER, TLS_GROUP = "TLSv1.3", "TLS_AES_128_GCM_SHA256", "X25519"
# tls_sessions: "off" (no tickets, no session cache: every handshake is a
# full one) or "tickets" (stateless session tickets on, no server cache).
TLS_SESSIONS = ("off", "tickets")


def edge_tls_flags(tls_sessions):
    flags = ["--tls-min-version=1.3", "--tls-ciphersuites=" + TLS_CIPHER]
    if tls_sessions == "off":
        flags.append("--tls-no-resumption")
    return flags


def start_l7proxy(env, backend_ports, mode="http", hosts=None, proxy_protocol=False,
                  name="l7proxy", config_text=None, tls_sessions="off", extra_args=()):
    """edge's l7proxy with --config, 1 worker. mode: http | h2c | https
    (with TLS_* pinned and tls_sessions, see TLS_SESSIONS). Returns (proc,
    port, admin_port, config_path); SetupError when it does not start or
    does not serve the mode."""
    binary = need_bin(env, "l7proxy")
    cfg = env.path(name + ".json")
    cert = None
    if mode == "https":
        c, k, _ = make_cert(env)
        cert = (open(c).read(), open(k).read())
    write_atomic(cfg, config_text or l7_config(backend_ports, hosts=hosts, cert=cert))
    port, admin = free_port(), free_port()
    argv = [binary, "--workers=1", "--admin=127.0.0.1:%d" % admin, "--config=" + cfg,
            "--log-level=warn", "--drain-timeout=2s"]
    if mode == "https":
        argv += ["--https=127.0.0.1:%d" % port, "--http=127.0.0.1:%d" % free_port()]
        argv += edge_tls_flags(tls_sessions)
    else:
        argv += ["--http=127.0.0.1:%d" % port]
    if proxy_protocol:
        argv += ["--proxy-protocol", "--proxy-protocol-trusted=127.0.0.0/8"]
    argv += list(extra_args)
    proc = env.spawn(name, argv)
    wait_http(proc, "http://127.0.0.1:%d/readyz" % admin)
    if mode == "h2c":
        probe_h2c(port, "l7proxy")
    return proc, port, admin, cfg


def check_proxied(port, scheme, host=None, h2c=False):
    """SetupError unless a GET through the proxy returns the backend's own
    answer (so a proxy answering by itself can never pass as fast)."""
    argv = ["curl", "-sk", "-m", "5", "-w", "\n%{http_code}"]
    if h2c:
        argv.append("--http2-prior-knowledge")
    if host:
        argv += ["-H", "Host: " + host]
    r = subprocess.run(argv + ["%s://127.0.0.1:%d/" % (scheme, port)], capture_output=True,
                       text=True, timeout=15)
    body, _, code = r.stdout.rpartition("\n")
    if code != "200" or body.rstrip("\n") != BACKEND_BODY.rstrip("\n"):
        raise SetupError("a request through the proxy on port %d did not reach the backend: "
                         "status %s, body %r" % (port, code or "none", body[:120]))


def probe_h2c(port, who):
    """SetupError unless port answers an h2c prior-knowledge request with
    200 over HTTP/2 (a broken h2c is a failed side, never a skipped one)."""
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                        "--http2-prior-knowledge", "-m", "3",
                        "http://127.0.0.1:%d/" % port],
                       capture_output=True, text=True)
    if r.stdout.strip() != "200 2":
        raise SetupError("%s does not serve h2c prior knowledge (curl got %r)" %
                         (who, r.stdout.strip() or "no answer"))


def tls_probe(port, host="localhost"):
    """What a client negotiates with the TLS server on port, and whether it
    resumes: one `openssl s_client` request that keeps the session (with any
    ticket the server sent), then a second connection offering it. Returns
    {"protocol", "cipher", "group", "resumed"}; SetupError when no
    handshake completes. Used to check that every side of a TLS scenario
    negotiates the same thing and resumes (or not) as the scenario says."""
    tmp = tempfile.mkdtemp(prefix="tls-probe-")
    sess = os.path.join(tmp, "session.pem")
    req = ("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host).encode()
    base = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", host,
            "-ign_eof"]
    second = ""
    try:
        first = subprocess.run(base + ["-sess_out", sess], input=req, capture_output=True,
                               timeout=15).stdout.decode("latin-1")
        if os.path.exists(sess):  # s_client writes it when a ticket arrived
            second = subprocess.run(base + ["-sess_in", sess], input=req, capture_output=True,
                                    timeout=15).stdout.decode("latin-1")
    except subprocess.TimeoutExpired:
        raise SetupError("openssl s_client to port %d did not finish" % port)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def field(rx, text):
        m = re.search(rx, text, re.M)
        return m.group(1) if m else ""
    out = {"protocol": field(r"^(?:New|Reused), (TLSv[\d.]+), Cipher is ", first),
           "cipher": field(r"^(?:New|Reused), TLSv[\d.]+, Cipher is (\S+)", first),
           "group": field(r"^(?:Server Temp Key|Negotiated TLS1.3 group): (\w+)", first),
           "resumed": bool(re.search(r"^Reused, ", second, re.M))}
    if not out["protocol"] or (second and not re.search(r"^(New|Reused), ", second, re.M)):
        raise SetupError("no TLS handshake with port %d: %s" % (port, (second or first)[-300:]))
    return out


def start_l4lb(env, backends, name="l4lb", proxy_protocol=True, extra=()):
    """edge's l4lb, 1 worker, static backends [(port, check_port or None)].
    Returns (proc, port, admin_port)."""
    binary = need_bin(env, "l4lb")
    port, admin = free_port(), free_port()
    argv = [binary, "--listen=127.0.0.1:%d" % port, "--admin=127.0.0.1:%d" % admin,
            "--workers=1", "--log-level=warn",
            "--proxy-protocol=%s" % ("on" if proxy_protocol else "off")]
    for bport, check in backends:
        b = "127.0.0.1:%d" % bport
        if check:
            b += ",check=127.0.0.1:%d" % check
        argv.append("--backend=" + b)
    argv += list(extra)
    proc = env.spawn(name, argv)
    wait_tcp(proc, port)
    wait_http(proc, "http://127.0.0.1:%d/readyz" % admin)
    return proc, port, admin


# --------------------------------------------------------------------- peers


def _nginx_dirs(d):
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)


def start_nginx_proxy(env, backend_port, mode="http", hosts=None, tls_sessions="off"):
    """The nginx peer (https: TLS_* pinned, tls_sessions). Returns (proc, port)."""
    need_tool("nginx")
    d = env.path("nginx-proxy")
    _nginx_dirs(d)
    port = free_port()
    listen = "127.0.0.1:%d" % port + {"http": "", "h2c": " http2", "https": " ssl"}[mode]
    with open(os.path.join(PEERS, "nginx-server.conf")) as f:
        block = "".join(l for l in f if not l.startswith("#"))
    names = hosts if hosts is not None else ["_"]
    with open(os.path.join(d, "servers.conf"), "w") as out:
        for i, h in enumerate(names):
            lst = listen + (" default_server" if i == 0 and hosts is None else "")
            out.write(block.replace("@@LISTEN@@", lst).replace("@@HOST@@", h))
        if hosts is not None:  # unknown hosts: 404, like edge without a default backend
            out.write("server { listen %s default_server; server_name _; return 404; }\n" %
                      listen)
    tls = os.path.join(d, "tls.conf")
    if mode == "https":
        cert, key, _ = make_cert(env)
        render("nginx-tls.conf", tls, cert=cert, key=key,
               tickets="on" if tls_sessions == "tickets" else "off")
    else:
        open(tls, "w").close()
    conf = render("nginx-proxy.conf", os.path.join(d, "nginx.conf"), dir=d,
                  backend_port=backend_port)
    proc = env.spawn("nginx-proxy", ["nginx", "-p", d, "-c", conf])
    _wait_peer(proc, port, mode, hosts)
    return proc, port


def start_haproxy_http(env, backend_port, mode="http", hosts=None, tls_sessions="off"):
    """The HAProxy peer (https: TLS_* pinned, tls_sessions). Returns (proc, port)."""
    need_tool("haproxy")
    port = free_port()
    _, _, pem = make_cert(env)
    bind = {"http": "", "h2c": "proto h2",
            "https": "ssl crt %s curves X25519 alpn http/1.1" % pem}[mode]
    if hosts is None:
        routing = "default_backend be_app"
    else:
        mp = env.path("haproxy-hosts.map")
        with open(mp, "w") as f:
            for h in hosts:
                f.write("%s be_app\n" % h)
        routing = "use_backend %%[req.hdr(host),host_only,lower,map(%s)]" % mp
    cfg = render("haproxy-http.cfg", env.path("haproxy.cfg"), port=port, bind_opts=bind,
                 scheme="https" if mode == "https" else "http", routing=routing,
                 backend_port=backend_port,
                 tls_tickets="" if tls_sessions == "tickets" else "no-tls-tickets")
    proc = env.spawn("haproxy", ["haproxy", "-db", "-f", cfg])
    _wait_peer(proc, port, mode, hosts)
    return proc, port


def start_haproxy_tcp(env, backend_pp_port):
    need_tool("haproxy")
    port = free_port()
    cfg = render("haproxy-tcp.cfg", env.path("haproxy-tcp.cfg"), port=port,
                 backend_port=backend_pp_port)
    proc = env.spawn("haproxy", ["haproxy", "-db", "-f", cfg])
    wait_http(proc, "http://127.0.0.1:%d/" % port)
    return proc, port


def _wait_peer(proc, port, mode, hosts):
    host = hosts[0] if hosts else None
    if mode == "https":
        wait_http(proc, "https://127.0.0.1:%d/" % port, host=host)
    elif mode == "h2c":
        wait_tcp(proc, port)
        probe_h2c(port, proc.name)
    else:
        wait_http(proc, "http://127.0.0.1:%d/" % port, host=host)


# ---------------------------------------------------------------- generators


class Measure:
    """CPU seconds and memory of a set of processes over one load run:
    with Measure(procs) as m: ...; then m.cpu_s, m.rss_kb, m.hwm_kb."""

    def __init__(self, procs):
        self.procs = procs

    def __enter__(self):
        self.t0 = [p.cpu_seconds() for p in self.procs]
        self.wall0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.wall_s = time.monotonic() - self.wall0
        cpu = 0.0
        rss = hwm = 0
        for p, t0 in zip(self.procs, self.t0):
            try:
                cpu += p.cpu_seconds() - t0
            except OSError:  # died mid-run (failover kills one on purpose)
                pass
            r, h = p.memory_kb()
            rss += r
            hwm += h
        self.cpu_s, self.rss_kb, self.hwm_kb = cpu, rss, hwm
        return False


def wrk(url, duration, conns=50, threads=1, headers=(), hosts=0, timeout_s=5):
    """Runs wrk with lua/stats.lua. Returns a dict: requests, rate (req/s),
    p50/p90/p99/p999 (ms), errors (socket errors + HTTP status >= 400),
    error_detail."""
    need_tool("wrk")
    argv = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % max(1, int(round(duration))),
            "--timeout", "%ds" % timeout_s, "-s", WRK_LUA]
    for h in headers:
        argv += ["-H", h]
    argv.append(url)
    env = dict(os.environ, WRK_HOSTS=str(hosts))
    r = subprocess.run(argv, capture_output=True, text=True, env=env,
                       timeout=duration + 60)
    m = re.search(r"^LOADSTATS (.*)$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        raise SetupError("wrk failed (exit %d): %s %s" % (r.returncode, r.stdout[-500:],
                                                          r.stderr[-500:]))
    kv = {k: float(v) for k, v in (x.split("=") for x in m.group(1).split())}
    errs = {k: int(kv[k]) for k in ("connect", "read", "write", "timeout", "status") if kv[k]}
    return {
        "requests": int(kv["requests"]),
        "rate": kv["requests"] / (kv["duration_us"] / 1e6),
        "p50": kv["p50"] / 1000, "p90": kv["p90"] / 1000,
        "p99": kv["p99"] / 1000, "p999": kv["p999"] / 1000,
        "errors": sum(errs.values()),
        "error_detail": ", ".join("%s=%d" % e for e in errs.items()),
    }


def _percentile(sorted_vals, q):
    if not sorted_vals:
        return 0.0
    k = min(len(sorted_vals) - 1, max(0, int(round(q / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def h2load(url, env, duration=None, requests=None, clients=10, streams=10, extra=(),
           timeout_s=None):
    """Runs h2load (-D duration, or -n requests). Percentiles come from its
    per-request --log-file. Returns the same dict as wrk(), plus "tls" (the
    protocol, cipher and group h2load negotiated, "" over cleartext).

    Errors: requests that did not succeed (4xx/5xx, failed, errored, timed
    out) and requests that never finished: with -n every one of them; with
    -D those beyond what was in flight when the time ran out (clients x
    streams, which h2load abandons by design). A non-zero exit status is a
    SetupError: h2load itself says the run is broken."""
    need_tool("h2load")
    log = env.path("h2load-%d.log" % int(time.monotonic() * 1000))
    argv = ["h2load", "-t1", "-c%d" % clients, "-m%d" % streams, "--log-file=" + log]
    if duration:
        argv += ["-D", str(max(1, int(round(duration))))]
    else:
        argv += ["-n", str(requests)]
    argv += list(extra) + [url]
    limit = timeout_s or ((duration or 0) + 60)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=limit)
    out = r.stdout
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    fin = re.search(r"finished in ([\d.]+)(us|ms|s), ([\d.]+) req/s", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if r.returncode != 0 or not m or not fin or not codes:
        raise SetupError("h2load failed (exit %d): %s %s" % (r.returncode, out[-600:],
                                                             r.stderr[-300:]))
    total, started, done, ok, failed, errored, tmo = map(int, m.groups())
    durs = []
    try:
        with open(log) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    durs.append(int(parts[2]) / 1000.0)  # µs -> ms
        os.unlink(log)
    except OSError:
        pass
    durs.sort()
    bad_status = int(codes.group(3)) + int(codes.group(4))
    # "done" counts every finished request, "succeeded" the 2xx/3xx ones.
    if requests:
        missing = requests - done  # refused or reset connections included
    else:
        missing = max(0, started - done - clients * streams)
    errs = {"not_succeeded": done - ok, "failed": failed, "errored": errored,
            "timeout": tmo, "status_4xx_5xx": bad_status, "not_done": missing}
    errs = {k: v for k, v in errs.items() if v}
    secs = float(fin.group(1)) / {"us": 1e6, "ms": 1e3, "s": 1.0}[fin.group(2)]
    tls = " ".join(x for x in (
        _h2load_field(r"^TLS Protocol: (\S+)", out), _h2load_field(r"^Cipher: (\S+)", out),
        _h2load_field(r"^Server Temp Key: (\w+)", out)) if x)
    return {
        "requests": ok,
        "rate": ok / secs if secs > 0 else 0.0,
        "p50": _percentile(durs, 50), "p90": _percentile(durs, 90),
        "p99": _percentile(durs, 99), "p999": _percentile(durs, 99.9),
        # failed requests are not always among the done ones (errored
        # connections): count whichever view sees more
        "errors": max((done - ok) + missing, failed),
        "error_detail": ", ".join("%s=%d" % e for e in errs.items()),
        "tls": tls,
    }


def _h2load_field(rx, text):
    m = re.search(rx, text, re.M)
    return m.group(1) if m else ""


def curl_bulk(url, runs):
    """Downloads url `runs` times; returns MB/s (mean) and total MB."""
    need_tool("curl")
    speeds, total, errors = [], 0, 0
    for _ in range(runs):
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-m", "120", "-w",
                            "%{http_code} %{size_download} %{speed_download}", url],
                           capture_output=True, text=True, timeout=180)
        parts = r.stdout.split()
        if r.returncode != 0 or len(parts) != 3 or parts[0] != "200":
            errors += 1
            continue
        total += int(parts[1])
        speeds.append(float(parts[2]))
    mb = total / 1048576.0
    return {"requests": runs - errors, "rate": (sum(speeds) / len(speeds) / 1048576.0)
            if speeds else 0.0, "mb": mb, "errors": errors,
            "error_detail": "failed downloads=%d" % errors if errors else ""}
