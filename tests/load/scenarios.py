"""scenarios — the named load-testing scenarios (DESIGN §9, issue 8).

Each scenario is a function of a Ctx that returns result rows, one per
(proxy, variant): edge, nginx and HAProxy side by side where a peer can
serve the scenario, each measured alone on the machine in turn, in front of
the same nginx backend, with one worker each. A side that cannot run here
(a feature edge does not have yet, a missing tool) is a "skipped" row with
its reason and no numbers; a side that broke is a "failed" row.

Invariants: traffic only to 127.0.0.1; every load run bounded by
ctx.duration (or a request count); every process stopped by PID when its
side is measured (harness.Env).

Row fields (see report.py): scenario, proxy, variant, status
(ok|skipped|failed), reason, unit ("req", "conn", "handshake", "MB"),
rate (units/s), requests, p50/p99/p999 (ms), errors, error_detail,
cpu_us (proxy CPU µs per unit), rss_mb, hwm_mb, note.

Callers: loadtest.py (the runner) through SCENARIOS.
"""

import os
import re
import signal
import threading
import time

import harness as h
from harness import Skip, SetupError

SCENARIOS = {}


class Scenario:
    def __init__(self, name, description, fn, expect_errors=False):
        self.name = name
        self.description = description
        self.fn = fn
        # failover: errors are the thing measured, not a regression.
        self.expect_errors = expect_errors


def scenario(name, description, expect_errors=False):
    def reg(fn):
        SCENARIOS[name] = Scenario(name, description, fn, expect_errors)
        return fn
    return reg


class Ctx:
    """What a scenario gets: the run's settings and its Env."""

    def __init__(self, name, env, duration, quick, conns):
        self.name = name
        self.env = env
        self.duration = duration
        self.quick = quick
        self.conns = conns
        self.warmup = 0.0 if quick else 1.0


def _row(ctx, proxy, variant="", unit="req", **kw):
    row = {"scenario": ctx.name, "proxy": proxy, "variant": variant, "status": "ok",
           "reason": "", "unit": unit, "rate": None, "requests": None, "p50": None,
           "p99": None, "p999": None, "errors": None, "error_detail": "", "cpu_us": None,
           "rss_mb": None, "hwm_mb": None, "note": "", "recovery_s": None}
    row.update(kw)
    return row


def measure_side(ctx, proxy, start, load, variant="", unit="req", per_unit=None):
    """Starts one side (start() -> (procs to measure, target)), warms it up,
    runs load(target, duration) under Measure, stops it. Returns a row."""
    procs = []
    try:
        procs, target = start()
        if ctx.warmup:
            load(target, ctx.warmup)
        with h.Measure(procs) as m:
            st = load(target, ctx.duration)
        units = per_unit(st) if per_unit else st["requests"]
        return _row(ctx, proxy, variant, unit, rate=st["rate"], requests=st["requests"],
                    p50=st.get("p50"), p99=st.get("p99"), p999=st.get("p999"),
                    errors=st["errors"], error_detail=st.get("error_detail", ""),
                    cpu_us=(m.cpu_s * 1e6 / units) if units else None,
                    rss_mb=m.rss_kb / 1024.0, hwm_mb=m.hwm_kb / 1024.0,
                    note=st.get("note", ""), recovery_s=st.get("recovery_s"))
    except Skip as e:
        return _row(ctx, proxy, variant, unit, status="skipped", reason=str(e))
    except (SetupError, OSError) as e:
        return _row(ctx, proxy, variant, unit, status="failed", reason=str(e))
    finally:
        for p in procs:
            ctx.env.stop(p)


def _wrk_load(ctx, path="/", headers=(), hosts=0, scheme="http", conns=None):
    def load(port, duration):
        return h.wrk("%s://127.0.0.1:%d%s" % (scheme, port, path), duration,
                     conns=conns or ctx.conns, headers=headers, hosts=hosts)
    return load


def _l7_sides(ctx, backend, mode, load, hosts=None, variant="", unit="req"):
    """edge, nginx and HAProxy in front of backend, measured in turn."""
    def edge():
        proc, port, _, _ = h.start_l7proxy(ctx.env, [backend.port], mode=mode, hosts=hosts)
        return [proc], port

    def nginx():
        proc, port = h.start_nginx_proxy(ctx.env, backend.port, mode=mode, hosts=hosts)
        return [proc], port

    def haproxy():
        proc, port = h.start_haproxy_http(ctx.env, backend.port, mode=mode, hosts=hosts)
        return [proc], port

    def checked(start):
        def run():
            procs, port = start()
            h.check_proxied(port, "https" if mode == "https" else "http",
                            hosts[-1] if hosts else None, mode == "h2c")
            return procs, port
        return run

    return [measure_side(ctx, name, checked(fn), load, variant=variant, unit=unit)
            for name, fn in (("edge", edge), ("nginx", nginx), ("haproxy", haproxy))]


# ------------------------------------------------------------------- HTTP/1.1


@scenario("h1-keepalive", "HTTP/1.1 keep-alive, small responses, wrk -c50 (issue 4 benchmark)")
def h1_keepalive(ctx):
    backend = h.Backend(ctx.env)
    return _l7_sides(ctx, backend, "http", _wrk_load(ctx))


@scenario("h1-new-connections",
          "HTTP/1.1, a new client connection per request (Connection: close); upstream "
          "connections kept alive")
def h1_new_connections(ctx):
    backend = h.Backend(ctx.env)
    return _l7_sides(ctx, backend, "http", _wrk_load(ctx, headers=["Connection: close"]))


# ----------------------------------------------------------------- HTTP/2, TLS


@scenario("h2-multiplexed", "h2c prior knowledge, h2load -c10 -m10 (10 streams per connection)")
def h2_multiplexed(ctx):
    backend = h.Backend(ctx.env)

    def load(port, duration):
        return h.h2load("http://127.0.0.1:%d/" % port, ctx.env, duration=duration,
                        clients=10, streams=10)
    return _l7_sides(ctx, backend, "h2c", load)


@scenario("https-keepalive",
          "HTTPS keep-alive (TLS 1.3, TLS_AES_128_GCM_SHA256, X25519, RSA-2048), wrk -c50")
def https_keepalive(ctx):
    backend = h.Backend(ctx.env)
    return _l7_sides(ctx, backend, "https", _wrk_load(ctx, scheme="https"))


@scenario("tls-handshakes",
          "a full TLS 1.3 handshake per request (no resumption anywhere; same cipher, group "
          "and RSA-2048 key), h2load --h1 -n")
def tls_handshakes(ctx):
    backend = h.Backend(ctx.env)
    # h2load -n over HTTP/1.1 with "Connection: close": the server closes
    # after each response and h2load reconnects with a full handshake (the
    # servers keep no session cache and issue no tickets, so nothing can be
    # resumed). -n, not -D: -D can hang at the end when it reconnects
    # (DESIGN §10). The count is sized for ~ctx.duration at a few hundred
    # handshakes/s (≈420 µs of proxy CPU each on an idle machine).
    n = max(200, int(400 * ctx.duration))

    def load(port, duration):
        count = max(100, int(n * duration / ctx.duration))
        st = h.h2load("https://127.0.0.1:%d/" % port, ctx.env, requests=count,
                      clients=20, streams=1,
                      extra=["--h1", "-H", "Connection: close"],
                      timeout_s=duration * 10 + 60)
        st["note"] = "%d handshakes; latency excludes the handshake (h2load request time)" % count
        return st
    return _l7_sides(ctx, backend, "https", load, unit="handshake")


# ------------------------------------------------------------------------ L4


def _l4_sides(ctx, backend, load, unit, per_unit=None, variant=""):
    def edge():
        proc, port, _ = h.start_l4lb(ctx.env, [(backend.pp_port, None)])
        return [proc], port

    def haproxy():
        proc, port = h.start_haproxy_tcp(ctx.env, backend.pp_port)
        return [proc], port

    def edge_nosplice():
        proc, port, _ = h.start_l4lb(ctx.env, [(backend.pp_port, None)], extra=["--splice=off"])
        return [proc], port

    rows = [measure_side(ctx, "edge", edge, load, unit=unit, per_unit=per_unit, variant=variant),
            measure_side(ctx, "haproxy", haproxy, load, unit=unit, per_unit=per_unit,
                         variant=variant)]
    # l4lb's read/write path, for comparison with its default splice(2).
    row = measure_side(ctx, "edge --splice=off", edge_nosplice, load, unit=unit,
                       per_unit=per_unit, variant=variant)
    rows.append(row)
    rows.append(_row(ctx, "nginx", variant, unit=unit, status="skipped",
                     reason="Debian nginx-light has no stream (TCP proxy) module; the L4 "
                            "peer is HAProxy mode tcp"))
    return rows


@scenario("l4-connections",
          "L4 connection rate: l4lb vs HAProxy mode tcp (PROXY v2 to the backend on both), "
          "a new connection per request; plus HTTP keep-alive requests through the same tier")
def l4_connections(ctx):
    backend = h.Backend(ctx.env)
    rows = _l4_sides(ctx, backend, _wrk_load(ctx, headers=["Connection: close"]), "conn",
                     variant="new conn")
    # Small messages on long-lived connections: the per-read cost of the
    # forwarding path (splice vs HAProxy's buffers), not the accept path.
    return rows + _l4_sides(ctx, backend, _wrk_load(ctx), "req", variant="keep-alive")


@scenario("l4-bulk", "L4 throughput of one large download (curl), l4lb vs HAProxy mode tcp")
def l4_bulk(ctx):
    mb = 64 if ctx.quick else 512
    backend = h.Backend(ctx.env, bulk_mb=mb)

    def load(port, duration):
        runs = 1 if duration < ctx.duration else (1 if ctx.quick else 3)
        st = h.curl_bulk("http://127.0.0.1:%d/bulk.bin" % port, runs)
        st["note"] = "%d x %d MiB; rate in MiB/s" % (runs, mb)
        return st
    return _l4_sides(ctx, backend, load, "MB", per_unit=lambda st: st["mb"])


# ------------------------------------------------------------------ many hosts


@scenario("many-hosts",
          "routing cost with 10,000 exact hosts vs 1 host (Host rotated over all of them); "
          "the CPU per request should stay flat")
def many_hosts(ctx):
    n = 10000
    backend = h.Backend(ctx.env)
    rows = []
    for count in (1, n):
        hosts = ["h%d.example.com" % i for i in range(count)]
        rows += _l7_sides(ctx, backend, "http", _wrk_load(ctx, hosts=count), hosts=hosts,
                          variant="%d host%s" % (count, "s" if count > 1 else ""))
    for proxy in ("edge", "nginx", "haproxy"):
        one = [r for r in rows if r["proxy"] == proxy and r["variant"] == "1 host"]
        many = [r for r in rows if r["proxy"] == proxy and r["variant"] != "1 host"]
        if one and many and one[0]["cpu_us"] and many[0]["cpu_us"]:
            many[0]["note"] = "CPU/req %.2fx of 1 host" % (many[0]["cpu_us"] / one[0]["cpu_us"])
    return rows


# ---------------------------------------------------------------- config churn


@scenario("config-churn",
          "HTTP/1.1 keep-alive while the routes change every 100 ms (edge: --config file "
          "rewritten + SIGHUP); zero failed requests expected")
def config_churn(ctx):
    backend = h.Backend(ctx.env)
    state = {}

    def edge():
        proc, port, admin, cfg = h.start_l7proxy(ctx.env, [backend.port])
        state.update(proc=proc, cfg=cfg, admin=admin)
        return [proc], port

    base = _wrk_load(ctx)

    def churn_load(port, duration):
        stop = threading.Event()
        applied = [0]

        def churner():
            v = 2
            while not stop.wait(0.1):
                # Alternate between 1 and 50 extra routes, so every change
                # rebuilds the route table and moves the matcher's layout.
                text = h.l7_config([backend.port], extra_routes=(v % 2) * 49 + 1, version=v)
                h.write_atomic(state["cfg"], text)
                os.kill(state["proc"].pid, signal.SIGHUP)
                applied[0] += 1
                v += 1
        t = threading.Thread(target=churner, daemon=True)
        t.start()
        try:
            st = base(port, duration)
        finally:
            stop.set()
            t.join(5)
        loads = _config_loads(state["admin"])
        st["note"] = "%d config changes sent during the run; l7proxy counted %s" % (
            applied[0], ", ".join("%s=%d" % kv for kv in sorted(loads.items())) or "nothing")
        rejected = loads.get("rejected", 0)
        if rejected:
            st["errors"] += rejected
            st["error_detail"] = (st["error_detail"] + " config_rejected=%d" % rejected).strip()
        return st

    rows = [measure_side(ctx, "edge", edge, base, variant="static"),
            measure_side(ctx, "edge", edge, churn_load, variant="churn 100ms")]
    if rows[0]["cpu_us"] and rows[1]["cpu_us"]:
        rows[1]["note"] += "; CPU/req %.2fx of static" % (rows[1]["cpu_us"] / rows[0]["cpu_us"])
    reason = ("changes config only by reload (new worker processes); a 100 ms reload loop "
              "measures process churn, not routing updates")
    rows.append(_row(ctx, "nginx", "churn 100ms", status="skipped", reason="nginx " + reason))
    rows.append(_row(ctx, "haproxy", "churn 100ms", status="skipped", reason="HAProxy " + reason))
    rows.append(_row(ctx, "edge", "cert churn", status="skipped",
                     reason="certificate churn needs l7proxy HTTPS (--https not available yet)"
                     if not _edge_has_tls(ctx) else "certificate churn not scripted yet"))
    return rows


def _config_loads(admin):
    """edge_l7_config_loads_total by result label, from l7proxy's /metrics."""
    out = {}
    try:
        _, body = h.http_get("http://127.0.0.1:%d/metrics" % admin, timeout=2.0)
    except OSError:
        return out
    for line in body.decode(errors="replace").splitlines():
        m = re.match(r'edge_l7_config_loads_total\{[^}]*result="([^"]+)"[^}]*\} (\S+)', line)
        if m:
            out[m.group(1)] = int(float(m.group(2)))
    return out


def _edge_has_tls(ctx):
    try:
        b = h.need_bin(ctx.env, "l7proxy")
    except Skip:
        return False
    import subprocess
    r = subprocess.run([b, "--help"], capture_output=True, text=True, timeout=10)
    return "not available" not in (r.stdout + r.stderr)


# ------------------------------------------------------------ full path, failover


def _replicas(ctx, backend, n):
    """n l7proxy replicas behind one l4lb (PROXY v2 between them), checks on
    each replica's /readyz. Returns (l4 proc, l4 port, [l7 procs])."""
    l7 = []
    for i in range(n):
        proc, port, admin, _ = h.start_l7proxy(ctx.env, [backend.port], proxy_protocol=True,
                                               name="l7proxy-%d" % (i + 1))
        l7.append((proc, port, admin))
    l4, l4port, _ = h.start_l4lb(ctx.env, [(port, admin) for _, port, admin in l7],
                                 extra=["--check-interval=500ms", "--fall=2", "--rise=2"])
    return l4, l4port, [p for p, _, _ in l7]


@scenario("full-path",
          "client -> l4lb -> l7proxy -> backend (PROXY v2 between the tiers), 1 worker each; "
          "CPU is l4lb + l7proxy together")
def full_path(ctx):
    backend = h.Backend(ctx.env)

    def edge():
        l4, port, l7 = _replicas(ctx, backend, 1)
        return [l4] + l7, port

    rows = [measure_side(ctx, "edge", edge, _wrk_load(ctx), variant="l4lb+l7proxy")]
    rows[0]["note"] = ("static replica set (deploy/local/run.sh needs l7proxy --syncd, not "
                       "wired yet)")
    for peer in ("nginx", "haproxy"):
        rows.append(_row(ctx, peer, "l4lb+l7proxy", status="skipped",
                         reason="edge-only chain; compare h1-keepalive and l4-connections"))
    return rows


@scenario("failover",
          "two l7proxy replicas behind l4lb under wrk load; one is killed (SIGKILL) a third of "
          "the way in; reports errors and the time until requests succeed again",
          expect_errors=True)
def failover(ctx):
    backend = h.Backend(ctx.env)
    duration = max(ctx.duration, 5.0)
    state = {}

    def edge():
        l4, port, l7 = _replicas(ctx, backend, 2)
        state.update(l4=l4, l7=l7)
        return [l4, l7[1]], port

    def load(port, dur):
        if dur != ctx.duration:  # the warm-up run
            return _wrk_load(ctx)(port, dur)
        probe = {"fail": [], "ok_after": None, "n": 0}
        stop = threading.Event()
        t_kill = [None]

        def prober():
            # New connection per probe, so each one is placed by l4lb afresh.
            while not stop.wait(0.01):
                t = time.monotonic()
                ok = h.probe_once(port)
                probe["n"] += 1
                if not ok:
                    probe["fail"].append(t)

        def killer():
            if not stop.wait(duration / 3.0):
                t_kill[0] = time.monotonic()
                state["l7"][0].popen.kill()
        threads = [threading.Thread(target=prober, daemon=True),
                   threading.Thread(target=killer, daemon=True)]
        for t in threads:
            t.start()
        try:
            st = _wrk_load(ctx)(port, duration)
        finally:
            stop.set()
            for t in threads:
                t.join(5)
        fails = [t for t in probe["fail"] if t_kill[0] and t >= t_kill[0]]
        recovery = (max(fails) - t_kill[0]) if fails else 0.0
        st["note"] = ("replica killed at %.1f s; probes failed: %d of %d; recovery %.2f s "
                      "(last failed probe after the kill)" %
                      (duration / 3.0, len(probe["fail"]), probe["n"], recovery))
        st["recovery_s"] = recovery
        return st

    row = measure_side(ctx, "edge", edge, load, variant="kill 1 of 2")
    return [row] + [_row(ctx, p, "kill 1 of 2", status="skipped",
                         reason="edge-only (l4lb health checks and Maglev re-hashing)")
                    for p in ("nginx", "haproxy")]
