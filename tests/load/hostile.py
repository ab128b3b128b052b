"""hostile — the hostile-load benchmark (issue 15): `tests/load/run.sh hostile`.

Each attack runs against edge, nginx and HAProxy (or l4lb and HAProxy mode
tcp for the L4 ones) in turn, each in front of the same nginx backend,
while a well-behaved client makes one request at a time through the same
proxy. Per attack and side it reports:

  - the attack's connections: the most open at once, and how many the
    attacker had to open in all (the proxy closing them makes it reopen);
  - the proxy's RSS and open descriptors at the peak (sampled every 100 ms
    from /proc);
  - the well-behaved client's requests and failures (a failure: an error,
    a timeout of 3 s, or an answer that is not the backend's);
  - for edge, whether /readyz turned 503 during the attack.

Attacks (N connections, --conns, default 500; quick 100). "Peak open" is
what the attacker sees established, the listen backlog included: compare
it with the proxy's descriptors to see what the proxy really holds.
  slowloris        request heads that never end: a header line every 2 s
  stalled-body     a POST head with Content-Length: 1 MB, 10 bytes of body, then 1 byte every 2 s
  slow-reader-h1   GET of an 8 MiB file, the client never reads (4 KiB receive buffer)
  slow-reader-h2   h2c, SETTINGS_INITIAL_WINDOW_SIZE 0, 10 streams each GETting the file,
                   no WINDOW_UPDATE ever (zero window)
  h2-stream-flood  h2c, HEADERS + RST_STREAM as fast as the socket takes them (rapid reset),
                   10 connections, reconnecting when the proxy hangs up
  idle-l4          idle TCP connections through the L4 tier (no byte sent)
  fd-exhaustion    3× more idle connections than descriptors: every side runs with
                   RLIMIT_NOFILE 1024 and 480 connections at most (l7proxy
                   --max-connections, nginx worker_connections, HAProxy maxconn;
                   HAProxy needs two descriptors per connection under its limit)
  fd-exhaustion-l4 the same through the L4 tier (l4lb derives its own limit from
                   RLIMIT_NOFILE; HAProxy maxconn 496, what l4lb allows)

Fairness: every side gets the same timeouts — 5 s to read a request head,
5 s between body reads, 5 s idle keep-alive, 5 s of no progress writing to
a slow reader (peers/nginx-hostile.conf, peers/haproxy-hostile.cfg,
peers/haproxy-tcp-hostile.cfg; edge --header-timeout=5s --idle-timeout=5s
--body-timeout=5s, l4lb --idle-timeout=5s) — one worker each, and the same
backend. edge has no flag for a write stall to a slow reader: its rows show
what its flow control does instead.

`--attacks=A,B` runs only those attacks (every side of each).
Not part of `run.sh all`: it is a benchmark of minutes and its failures are
the measurement, not a regression. Callers: scenarios.py registers it.
"""

import http.client
import os
import resource
import socket
import struct
import threading
import time

import harness as h
from harness import SetupError

TIMEOUT_FLAGS = ["--header-timeout=5s", "--idle-timeout=5s", "--body-timeout=5s"]
TCP_ESTABLISHED = 1
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FD_LIMIT = 1024
L7_FD_CONNS = 480
L4_FD_CONNS = (FD_LIMIT - max(32, FD_LIMIT // 50)) // 2  # what l4lb derives: 496


# ---------------------------------------------------------------- h2 frames


def _frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + \
        payload


def _h2_get(sid, path, end_stream=True):
    # HPACK: :method GET (2), :scheme http (6), :path literal (name idx 4),
    # :authority literal (name idx 1)
    block = b"\x82\x86" + bytes([0x04, len(path)]) + path + b"\x01\x01a"
    return _frame(1, 0x04 | (0x01 if end_stream else 0), sid, block)


def _h2_settings(**kv):
    ids = {"initial_window": 4, "max_frame": 5}
    return _frame(4, 0, 0, b"".join(struct.pack(">HI", ids[k], v) for k, v in kv.items()))


# ----------------------------------------------------------------- attacker


class Attack:
    """Keeps `n` attack connections open to port, reopening the ones the
    proxy closes (at most 200 new ones per 100 ms tick), and runs `tick` on
    each open connection every interval. Counts the peak open and the total
    opened. One thread; sockets are non-blocking."""

    def __init__(self, port, n, opener, ticker=None, interval=2.0, rcvbuf=0, burst=False):
        self.port, self.n = port, n
        self.opener, self.ticker, self.interval = opener, ticker, interval
        self.rcvbuf, self.burst = rcvbuf, burst
        self.socks = []
        self.opened = self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def finish(self):
        self.stop.set()
        self.thread.join(timeout=30)
        for s, _ in self.socks:
            s.close()
        self.socks = []

    def _alive(self, s):
        try:
            info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
            return info[0] == TCP_ESTABLISHED or info[0] == 2  # established or SYN_SENT
        except OSError:
            return False

    def _open_some(self):
        budget = 200
        while len(self.socks) < self.n and budget > 0:
            budget -= 1
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if self.rcvbuf:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                return
            self.socks.append((s, {"t": 0.0, "sent": False}))
            self.opened += 1

    def _send(self, s, data):
        try:
            s.send(data)
            return True
        except BlockingIOError:
            return True
        except OSError:
            return False

    def _run(self):
        while not self.stop.is_set():
            now = time.monotonic()
            keep = []
            for s, st in self.socks:
                if not self._alive(s):
                    s.close()
                    continue
                ok = True
                if not st["sent"]:
                    data = self.opener()
                    if data:
                        ok = self._send(s, data)
                    st["sent"], st["t"] = True, now
                elif self.ticker and (self.burst or now - st["t"] >= self.interval):
                    data = self.ticker()
                    ok = self._send(s, data) if data else True
                    st["t"] = now
                if ok:
                    keep.append((s, st))
                else:
                    s.close()
            self.socks = keep
            self.peak = max(self.peak, sum(1 for s, _ in self.socks if self._alive(s)))
            self._open_some()
            self.stop.wait(0.01 if self.burst else 0.1)


def _attack(name, port, n, h2_port=None):
    """The Attack for `name` against port (h2_port for the HTTP/2 ones)."""
    if name == "slowloris":
        return Attack(port, n, lambda: b"GET / HTTP/1.1\r\nHost: a\r\n",
                      lambda: b"X-Slow: 1\r\n")
    if name == "stalled-body":
        return Attack(port, n, lambda: b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000"
                      b"\r\n\r\n0123456789", lambda: b"x")
    if name == "slow-reader-h1":
        return Attack(port, n, lambda: b"GET /bulk.bin HTTP/1.1\r\nHost: a\r\n\r\n", rcvbuf=4096)
    if name == "slow-reader-h2":
        def open_h2():
            return H2_PREFACE + _h2_settings(initial_window=0) + b"".join(
                _h2_get(2 * i + 1, b"/bulk.bin") for i in range(10))
        return Attack(h2_port, n, open_h2, rcvbuf=4096)
    if name == "h2-stream-flood":
        state = {"sid": 1}

        def burst():
            out = []
            for _ in range(50):
                sid = state["sid"]
                state["sid"] = sid + 2 if sid < (1 << 30) else 1
                out.append(_h2_get(sid, b"/", end_stream=True) +
                           _frame(3, 0, sid, struct.pack(">I", 8)))
            return b"".join(out)
        return Attack(h2_port, 10, lambda: H2_PREFACE + _h2_settings(), burst, burst=True)
    if name in ("idle-l4", "fd-exhaustion", "fd-exhaustion-l4"):
        return Attack(port, n, lambda: b"")
    raise ValueError(name)


# ----------------------------------------------------------- the good client


class GoodClient:
    """One request at a time, a new connection each (so it needs a free
    accept slot like any new visitor), 3 s timeout, until stopped."""

    def __init__(self, port):
        self.port = port
        self.ok = self.failed = 0
        self.reasons = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def finish(self):
        self.stop.set()
        self.thread.join(timeout=30)

    def _one(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=3)
        try:
            c.request("GET", "/", headers={"Host": "a"})
            r = c.getresponse()
            body = r.read().decode("utf-8", "replace")
            if r.status == 200 and body == h.BACKEND_BODY:
                return None
            return "status %d" % r.status
        except (OSError, http.client.HTTPException) as e:
            return type(e).__name__
        finally:
            c.close()

    def _run(self):
        while not self.stop.is_set():
            why = self._one()
            if why is None:
                self.ok += 1
            else:
                self.failed += 1
                self.reasons[why] = self.reasons.get(why, 0) + 1
            self.stop.wait(0.02)


class Sampler:
    """Peak RSS (KiB) and open descriptors of procs, every 100 ms."""

    def __init__(self, procs, admin=None):
        self.procs, self.admin = procs, admin
        self.rss = self.fds = 0
        self.not_ready = False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def finish(self):
        self.stop.set()
        self.thread.join(timeout=10)

    def _run(self):
        while not self.stop.is_set():
            rss = fds = 0
            for p in self.procs:
                rss += p.memory_kb()[0]
                try:
                    fds += len(os.listdir("/proc/%d/fd" % p.pid))
                except OSError:
                    pass
            self.rss, self.fds = max(self.rss, rss), max(self.fds, fds)
            if self.admin:
                code, _ = h.http_get("http://127.0.0.1:%d/readyz" % self.admin, timeout=0.5)
                self.not_ready = self.not_ready or code == 503
            self.stop.wait(0.1)


# ------------------------------------------------------------------ the sides


def _limit(nofile):
    def fn():
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    return fn


def _edge_l7(ctx, backend, nofile, maxconn):
    binary = h.need_bin(ctx.env, "l7proxy")
    cfg = ctx.env.path("l7proxy-hostile.json")
    h.write_atomic(cfg, h.l7_config([backend.port]))
    port, admin = h.free_port(), h.free_port()
    argv = [binary, "--workers=1", "--http=127.0.0.1:%d" % port, "--admin=127.0.0.1:%d" % admin,
            "--config=" + cfg, "--log-level=error", "--drain-timeout=1s"] + TIMEOUT_FLAGS
    if maxconn:
        argv.append("--max-connections=%d" % maxconn)
    proc = ctx.env.spawn("l7proxy", argv, preexec=_limit(nofile))
    h.wait_http(proc, "http://127.0.0.1:%d/readyz" % admin)
    return [proc], port, port, admin


def _peer_dirs(ctx, name):
    d = ctx.env.path(name)
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    return d


def _nginx_l7(ctx, backend, nofile, maxconn):
    h.need_tool("nginx")
    d = _peer_dirs(ctx, "nginx-hostile")
    port, h2 = h.free_port(), h.free_port()
    conf = h.render("nginx-hostile.conf", os.path.join(d, "nginx.conf"), dir=d, port=port,
                    h2_port=h2, backend_port=backend.port, maxconn=maxconn or 8192,
                    nofile=nofile or 16384)
    proc = ctx.env.spawn("nginx-hostile", ["nginx", "-p", d, "-c", conf],
                         preexec=_limit(nofile))
    h.wait_http(proc, "http://127.0.0.1:%d/" % port)
    return [proc], port, h2, None


def _haproxy_l7(ctx, backend, nofile, maxconn):
    h.need_tool("haproxy")
    port, h2 = h.free_port(), h.free_port()
    cfg = h.render("haproxy-hostile.cfg", ctx.env.path("haproxy-hostile.cfg"), port=port,
                   h2_port=h2, backend_port=backend.port, maxconn=maxconn or 8000,
                   nofile=nofile or 20000)
    proc = ctx.env.spawn("haproxy-hostile", ["haproxy", "-db", "-f", cfg],
                         preexec=_limit(nofile))
    h.wait_http(proc, "http://127.0.0.1:%d/" % port)
    return [proc], port, h2, None


def _edge_l4(ctx, backend, nofile, maxconn):
    binary = h.need_bin(ctx.env, "l4lb")
    port, admin = h.free_port(), h.free_port()
    argv = [binary, "--listen=127.0.0.1:%d" % port, "--admin=127.0.0.1:%d" % admin,
            "--workers=1", "--log-level=error", "--idle-timeout=5s",
            "--backend=127.0.0.1:%d" % backend.pp_port]
    proc = ctx.env.spawn("l4lb", argv, preexec=_limit(nofile))
    h.wait_tcp(proc, port)
    h.wait_http(proc, "http://127.0.0.1:%d/readyz" % admin)
    return [proc], port, None, admin


def _haproxy_l4(ctx, backend, nofile, maxconn):
    h.need_tool("haproxy")
    port = h.free_port()
    cfg = h.render("haproxy-tcp-hostile.cfg", ctx.env.path("haproxy-tcp-hostile.cfg"), port=port,
                   backend_port=backend.pp_port, maxconn=maxconn or 8000, nofile=nofile or 20000)
    proc = ctx.env.spawn("haproxy-tcp-hostile", ["haproxy", "-db", "-f", cfg],
                         preexec=_limit(nofile))
    h.wait_http(proc, "http://127.0.0.1:%d/" % port)
    return [proc], port, None, None


L7_SIDES = (("edge", _edge_l7), ("nginx", _nginx_l7), ("haproxy", _haproxy_l7))
L4_SIDES = (("edge", _edge_l4), ("haproxy", _haproxy_l4))

ATTACKS = (
    # name, sides, attack connections (None: --conns), fd limit, max connections
    ("slowloris", L7_SIDES, None, 0, 0),
    ("stalled-body", L7_SIDES, None, 0, 0),
    ("slow-reader-h1", L7_SIDES, None, 0, 0),
    ("slow-reader-h2", L7_SIDES, None, 0, 0),
    ("h2-stream-flood", L7_SIDES, 10, 0, 0),
    ("idle-l4", L4_SIDES, None, 0, 0),
    ("fd-exhaustion", L7_SIDES, 3 * FD_LIMIT, FD_LIMIT, L7_FD_CONNS),
    ("fd-exhaustion-l4", L4_SIDES, 3 * FD_LIMIT, FD_LIMIT, L4_FD_CONNS),
)


def _row(ctx, attack, proxy, **kw):
    row = {"scenario": ctx.name, "proxy": proxy, "variant": attack, "status": "ok",
           "reason": "", "unit": "req", "rate": None, "requests": None, "errors": None,
           "error_detail": "", "kind": "hostile", "p50": None, "p99": None, "p999": None,
           "cpu_us": None, "rss_mb": None, "hwm_mb": None, "attack_peak": None, "attack_opened": None,
           "rss_peak_mb": None, "fds_peak": None, "good_ok": None, "good_failed": None,
           "not_ready": None, "note": ""}
    row.update(kw)
    return row


def _one(ctx, backend, attack, proxy, start, n, nofile, maxconn):
    procs = []
    try:
        procs, port, h2_port, admin = start(ctx, backend, nofile, maxconn)
        if attack in ("slow-reader-h2", "h2-stream-flood") and proxy != "edge":
            h.probe_h2c(h2_port, proxy)
        elif attack in ("slow-reader-h2", "h2-stream-flood"):
            h.probe_h2c(port, "l7proxy")
        a = _attack(attack, port, n, h2_port)
        good = GoodClient(port)
        sampler = Sampler(procs, admin)
        sampler.start()
        a.start()
        time.sleep(min(1.0, ctx.duration / 4))  # the attack takes hold first
        good.start()
        time.sleep(ctx.duration)
        good.finish()
        a.finish()
        sampler.finish()
        alive = all(p.alive() for p in procs)
        detail = ", ".join("%s×%d" % (k, v) for k, v in sorted(good.reasons.items()))
        return _row(ctx, attack, proxy, attack_peak=a.peak, attack_opened=a.opened,
                    rss_peak_mb=sampler.rss / 1024.0, fds_peak=sampler.fds, good_ok=good.ok,
                    good_failed=good.failed, errors=good.failed, requests=good.ok + good.failed,
                    error_detail=detail, not_ready=sampler.not_ready if admin else None,
                    note="" if alive else "the proxy died during the attack")
    except (SetupError, OSError) as e:
        return _row(ctx, attack, proxy, status="failed", reason=str(e))
    finally:
        for p in procs:
            ctx.env.stop(p)


def run(ctx):
    """All attacks, every side in turn. Returns the rows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the attacker needs many
    backend = h.Backend(ctx.env, bulk_mb=8)
    n_default = 100 if ctx.quick else ctx.conns if ctx.conns != 50 else 500
    rows = []
    only = getattr(ctx, "only", None)  # run.sh hostile --attacks=A,B
    unknown = set(only or ()) - set(a[0] for a in ATTACKS)
    if unknown:
        raise ValueError("unknown attacks: %s" % ", ".join(sorted(unknown)))
    for attack, sides, n, nofile, maxconn in ATTACKS:
        if only and attack not in only:
            continue
        for proxy, start in sides:
            rows.append(_one(ctx, backend, attack, proxy, start, n or n_default, nofile, maxconn))
            r = rows[-1]
            print("[load]   %-16s %-8s %s" % (attack, proxy, brief(r)), flush=True,
                  file=__import__("sys").stderr)
    return rows


def brief(r):
    if r["status"] != "ok":
        return "%s: %s" % (r["status"], (r["reason"] or "").splitlines()[0][:120])
    return ("attack %d open (%d opened), rss %.1f MB, fds %d, good %d ok / %d failed%s" %
            (r["attack_peak"], r["attack_opened"], r["rss_peak_mb"], r["fds_peak"], r["good_ok"],
             r["good_failed"], ", readyz 503 seen" if r["not_ready"] else ""))


def markdown(rows):
    """The hostile table (report.py calls it for rows of kind hostile)."""
    out = ["| attack | proxy | attack conns: peak open (opened) | RSS MB peak | fds peak "
           "| good client: ok / failed | /readyz 503 | notes |",
           "|---|---|--:|--:|--:|--:|---|---|"]
    for r in rows:
        if r["status"] != "ok":
            out.append("| %s | %s | %s: %s | | | | | |" % (
                r["variant"], r["proxy"], r["status"],
                (r["reason"] or "").splitlines()[0][:100].replace("|", "/")))
            continue
        note = "; ".join(x for x in (r["error_detail"], r["note"]) if x).replace("|", "/")
        out.append("| %s | %s | %d (%d) | %.1f | %d | %d / %d | %s | %s |" % (
            r["variant"], r["proxy"], r["attack_peak"], r["attack_opened"], r["rss_peak_mb"],
            r["fds_peak"], r["good_ok"], r["good_failed"],
            "—" if r["not_ready"] is None else ("yes" if r["not_ready"] else "no"), note))
    return out
