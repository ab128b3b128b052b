"""scenarios — the named load-testing scenarios (DESIGN §9, issue 8).

Each scenario is a function of a Ctx that returns result rows, one per
(proxy, variant): edge, nginx and HAProxy side by side where a peer can
serve the scenario, each measured alone on the machine in turn, in front of
the same nginx backend, with one worker each. Every side that is expected
to run must run and measure something: a side that cannot start, does not
serve its mode, measured zero requests, or (in the TLS scenarios)
negotiates differently from the others or resumes when it should not, is a
"failed" row with the reason. Only a side that does not apply to a peer at
all (nginx-light has no TCP proxy; edge-only chains) is an "n/a" row.

Invariants: traffic only to 127.0.0.1; every load run bounded by
ctx.duration (or a request count); every process stopped by PID when its
side is measured (harness.Env).

Row fields (see report.py): scenario, proxy, variant, status
(ok|n/a|failed), reason, unit ("req", "conn", "handshake", "MB"),
rate (units/s), requests, p50/p99/p999 (ms), errors, error_detail,
cpu_us (proxy CPU µs per unit), rss_mb, hwm_mb, note.

Callers: loadtest.py (the runner) through SCENARIOS.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import harness as h
from harness import SetupError

SCENARIOS = {}


class Scenario:
    def __init__(self, name, description, fn, expect_errors=False, in_all=True):
        self.name = name
        self.description = description
        self.fn = fn
        # failover: errors are the thing measured, not a regression.
        self.expect_errors = expect_errors
        # hostile: minutes long and its failures are the measurement; named
        # explicitly, never part of `all`.
        self.in_all = in_all


def scenario(name, description, expect_errors=False, in_all=True):
    def reg(fn):
        SCENARIOS[name] = Scenario(name, description, fn, expect_errors, in_all)
        return fn
    return reg


class Ctx:
    """What a scenario gets: the run's settings and its Env."""

    def __init__(self, name, env, duration, quick, conns, repeat=1):
        self.name = name
        self.env = env
        self.duration = duration
        self.quick = quick
        self.conns = conns
        self.repeat = repeat
        self.warmup = 0.0 if quick else 1.0


def _row(ctx, proxy, variant="", unit="req", **kw):
    row = {"scenario": ctx.name, "proxy": proxy, "variant": variant, "status": "ok",
           "reason": "", "unit": unit, "rate": None, "requests": None, "p50": None,
           "p99": None, "p999": None, "errors": None, "error_detail": "", "cpu_us": None,
           "rss_mb": None, "hwm_mb": None, "note": "", "recovery_s": None, "tls": ""}
    row.update(kw)
    return row


def measure_side(ctx, proxy, start, load, variant="", unit="req", per_unit=None):
    """Starts one side (start() -> (procs to measure, target)), warms it up,
    runs load(target, duration) under Measure, stops it. Returns a row; a
    side that fails to start or measured no unit at all is "failed"."""
    procs = []
    try:
        procs, target = start()
        if ctx.warmup:
            load(target, ctx.warmup)
        with h.Measure(procs) as m:
            st = load(target, ctx.duration)
        units = per_unit(st) if per_unit else st["requests"]
        if not st["requests"] or not units:
            raise SetupError("measured nothing: %d successful requests, %s %s (errors: %s)" %
                             (st["requests"] or 0, units or 0, unit,
                              st.get("error_detail") or "none counted"))
        return _row(ctx, proxy, variant, unit, rate=st["rate"], requests=st["requests"],
                    p50=st.get("p50"), p99=st.get("p99"), p999=st.get("p999"),
                    errors=st["errors"], error_detail=st.get("error_detail", ""),
                    cpu_us=(m.cpu_s * 1e6 / units) if units else None,
                    rss_mb=m.rss_kb / 1024.0, hwm_mb=m.hwm_kb / 1024.0,
                    note=st.get("note", ""), recovery_s=st.get("recovery_s"),
                    tls=st.get("tls", ""))
    except (SetupError, OSError, subprocess.TimeoutExpired) as e:
        return _row(ctx, proxy, variant, unit, status="failed", reason=str(e))
    finally:
        for p in procs:
            ctx.env.stop(p)


def measure_sides(ctx, sides):
    """Measures each side of sides [(proxy, start, load, kwargs)] ctx.repeat
    times, interleaved (a, b, c, a, b, c, ...) so a drift in the machine's
    background load touches every side alike, and merges each side's runs:
    the median of every figure, the sum of errors. Returns the rows."""
    runs = [[] for _ in sides]
    for _ in range(ctx.repeat):
        for i, (proxy, start, load, kw) in enumerate(sides):
            if runs[i] and runs[i][0]["status"] != "ok":
                continue  # failed once: do not retry
            runs[i].append(measure_side(ctx, proxy, start, load, **kw))
    return [_merge(r) for r in runs]


def _merge(rows):
    if len(rows) == 1 or any(r["status"] != "ok" for r in rows):
        return rows[-1]
    out = dict(rows[0])

    def median(key):
        vals = sorted(r[key] for r in rows if r[key] is not None)
        return vals[len(vals) // 2] if vals else None
    for key in ("rate", "p50", "p99", "p999", "cpu_us", "rss_mb", "hwm_mb"):
        out[key] = median(key)
    out["requests"] = sum(r["requests"] or 0 for r in rows)
    out["errors"] = sum(r["errors"] or 0 for r in rows)
    out["error_detail"] = "; ".join(r["error_detail"] for r in rows if r["error_detail"])
    out["note"] = ("median of %d runs (CPU µs/unit %s)" %
                   (len(rows), " ".join("%.1f" % r["cpu_us"] for r in rows if r["cpu_us"])) +
                   ("; " + rows[0]["note"] if rows[0]["note"] else ""))
    return out


def _wrk_load(ctx, path="/", headers=(), hosts=0, scheme="http", conns=None):
    def load(port, duration):
        return h.wrk("%s://127.0.0.1:%d%s" % (scheme, port, path), duration,
                     conns=conns or ctx.conns, headers=headers, hosts=hosts)
    return load


def _l7_sides(ctx, backend, mode, load, hosts=None, variant="", unit="req",
              tls_sessions="off"):
    """edge, nginx and HAProxy in front of backend, measured in turn. In
    https mode every side gets the same TLS settings (harness.TLS_*,
    tls_sessions) and, before it is measured, a TLS probe must show it
    negotiating exactly them and resuming a session only when tls_sessions
    is "tickets": an unfair side fails instead of being compared."""
    def edge():
        proc, port, _, _ = h.start_l7proxy(ctx.env, [backend.port], mode=mode, hosts=hosts,
                                           tls_sessions=tls_sessions)
        return [proc], port

    def nginx():
        proc, port = h.start_nginx_proxy(ctx.env, backend.port, mode=mode, hosts=hosts,
                                         tls_sessions=tls_sessions)
        return [proc], port

    def haproxy():
        proc, port = h.start_haproxy_http(ctx.env, backend.port, mode=mode, hosts=hosts,
                                          tls_sessions=tls_sessions)
        return [proc], port

    def checked(start):
        def run():
            procs, port = start()
            h.check_proxied(port, "https" if mode == "https" else "http",
                            hosts[-1] if hosts else None, mode == "h2c")
            if mode == "https":
                check_tls(port, tls_sessions)
            return procs, port
        return run

    return measure_sides(ctx, [(name, checked(fn), load, {"variant": variant, "unit": unit})
                               for name, fn in (("edge", edge), ("nginx", nginx),
                                                ("haproxy", haproxy))])


def check_tls(port, tls_sessions):
    """SetupError unless the TLS server on port negotiates harness.TLS_* and
    resumes a session exactly when tls_sessions is "tickets"."""
    got = h.tls_probe(port)
    want = {"protocol": h.TLS_PROTOCOL, "cipher": h.TLS_CIPHER, "group": h.TLS_GROUP,
            "resumed": tls_sessions == "tickets"}
    if got != want:
        raise SetupError("TLS settings differ from the other sides: got %s, want %s" %
                         (got, want))


def _same_tls(rows):
    """Fails every measured side when h2load negotiated different TLS
    parameters on different sides (the comparison would not be fair)."""
    seen = {r["tls"] for r in rows if r["status"] == "ok"}
    if len(seen) > 1 or "" in seen:
        for r in rows:
            if r["status"] == "ok":
                r["status"] = "failed"
                r["reason"] = "h2load negotiated %r here; sides saw %s" % (r["tls"],
                                                                          sorted(seen))
    for r in rows:
        if r["status"] == "ok":
            r["note"] = ("h2load: " + r["tls"]) + ("; " + r["note"] if r["note"] else "")
    return rows


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


def _handshake_load(ctx, what):
    # h2load -n over HTTP/1.1 with "Connection: close": the server closes
    # after each response and h2load reconnects, offering the session it
    # holds when the server sent a ticket. -n, not -D: -D can hang at the
    # end when it reconnects (DESIGN §10). The count is sized for
    # ~ctx.duration at a few hundred handshakes/s (≈420 µs of proxy CPU
    # per full handshake on an idle machine).
    n = max(200, int(400 * ctx.duration))

    def load(port, duration):
        count = max(100, int(n * duration / ctx.duration))
        st = h.h2load("https://127.0.0.1:%d/" % port, ctx.env, requests=count,
                      clients=20, streams=1,
                      extra=["--h1", "-H", "Connection: close"],
                      timeout_s=duration * 10 + 60)
        st["note"] = ("%d connections, %s; latency excludes the handshake (h2load request "
                      "time)" % (count, what))
        return st
    return load


@scenario("tls-handshakes",
          "a full TLS 1.3 handshake per request: session tickets and caches off on every side "
          "(edge --tls-no-resumption), same cipher, group and RSA-2048 key, h2load --h1 -n")
def tls_handshakes(ctx):
    backend = h.Backend(ctx.env)
    return _same_tls(_l7_sides(ctx, backend, "https",
                               _handshake_load(ctx, "every handshake a full one"),
                               unit="handshake", tls_sessions="off"))


@scenario("tls-resumption",
          "a resumed TLS 1.3 handshake per request: session tickets on for every side (no "
          "server session cache), same cipher, group and key, h2load --h1 -n")
def tls_resumption(ctx):
    backend = h.Backend(ctx.env)
    return _same_tls(_l7_sides(ctx, backend, "https",
                               _handshake_load(ctx, "tickets on: h2load resumes"),
                               unit="handshake", tls_sessions="tickets"))


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

    kw = {"unit": unit, "per_unit": per_unit, "variant": variant}
    # "edge --splice=off": l4lb's read/write path, beside its default splice(2).
    rows = measure_sides(ctx, [("edge", edge, load, kw), ("haproxy", haproxy, load, kw),
                               ("edge --splice=off", edge_nosplice, load, kw)])
    rows.append(_row(ctx, "nginx", variant, unit=unit, status="n/a",
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
            flat = "CPU/req %.2fx of 1 host" % (many[0]["cpu_us"] / one[0]["cpu_us"])
            many[0]["note"] = flat + ("; " + many[0]["note"] if many[0]["note"] else "")
    return rows


# ---------------------------------------------------------------- config churn


@scenario("config-churn",
          "HTTP/1.1 keep-alive while the routes change every 100 ms (edge: --config file "
          "rewritten + SIGHUP, and through syncd); zero failed requests, every change applied")
def config_churn(ctx):
    backend = h.Backend(ctx.env)
    state = {}

    def edge():
        proc, port, admin, cfg = h.start_l7proxy(ctx.env, [backend.port])
        state.update(proc=proc, cfg=cfg, admin=admin)
        return [proc], port

    base = _wrk_load(ctx)

    def churn_load(port, duration):
        if duration != ctx.duration:  # warm-up: no churn
            return base(port, duration)
        loads = lambda: _by_result(state["admin"], "edge_l7_config_loads_total")  # noqa: E731
        ok0 = loads().get("ok", 0)

        def change(v):
            # Alternate between 1 and 50 extra routes, so every change
            # rebuilds the route table and moves the matcher's layout.
            text = h.l7_config([backend.port], extra_routes=(v % 2) * 49 + 1, version=v)
            h.write_atomic(state["cfg"], text)
            os.kill(state["proc"].pid, signal.SIGHUP)

        st, sent = _churn_under(ctx, lambda: base(port, duration), change,
                                lambda: loads().get("ok", 0) - ok0)
        got = loads()
        applied, rejected = got.get("ok", 0) - ok0, got.get("rejected", 0)
        st["note"] = "%d config changes sent during the run; l7proxy applied %d, rejected %d" % (
            sent, applied, rejected)
        _require_applied(st, sent, applied, rejected, "config_rejected")
        return st

    rows = [measure_side(ctx, "edge", edge, base, variant="static"),
            measure_side(ctx, "edge", edge, churn_load, variant="churn 100ms")]
    rows.append(_syncd_churn(ctx, backend))
    for r in rows[1:]:
        if rows[0]["cpu_us"] and r["cpu_us"]:
            r["note"] += "; CPU/req %.2fx of static" % (r["cpu_us"] / rows[0]["cpu_us"])
    reason = ("changes config only by reload (new worker processes); a 100 ms reload loop "
              "measures process churn, not routing updates")
    rows.append(_row(ctx, "nginx", "churn 100ms", status="n/a", reason="nginx " + reason))
    rows.append(_row(ctx, "haproxy", "churn 100ms", status="n/a", reason="HAProxy " + reason))
    return rows


def _churn_under(ctx, run_load, change, applied, period=0.1, deadline_s=10.0):
    """Runs run_load() while a thread makes a change every `period` seconds:
    change(version) makes one, applied() counts how many the proxy has
    applied so far. The next change waits until the previous one is applied
    (at most deadline_s), so every change sent is one the proxy must apply:
    nothing is coalesced away and applied == sent at the end, or the proxy
    lost one. Returns (load stats, changes sent)."""
    stop = threading.Event()
    sent = [0]

    def churner():
        v = 2
        while not stop.wait(period):
            end = time.monotonic() + deadline_s
            while applied() < sent[0] and time.monotonic() < end and not stop.is_set():
                time.sleep(0.01)
            if applied() < sent[0]:
                return  # lost: counted below
            change(v)
            sent[0] += 1
            v += 1
    t = threading.Thread(target=churner, daemon=True)
    t.start()
    try:
        st = run_load()
    finally:
        stop.set()
        t.join(deadline_s + 5)
    end = time.monotonic() + deadline_s  # the last change lands after the load
    while applied() < sent[0] and time.monotonic() < end:
        time.sleep(0.02)
    return st, sent[0]


def _require_applied(st, sent, applied, rejected, label):
    """Counts every change that was sent and not applied (or rejected) as
    an error of the run; a churn run that sent nothing measured nothing."""
    if sent == 0:
        raise SetupError("no configuration change was made during the run")
    lost = max(0, sent - applied) + rejected
    if lost or applied != sent:
        st["errors"] += lost or abs(applied - sent)
        st["error_detail"] = (st["error_detail"] + " %s: %d sent, %d applied, %d rejected" %
                              (label, sent, applied, rejected)).strip()


_INGRESS = """apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: edge
  annotations:
    ingressclass.kubernetes.io/is-default-class: "true"
spec:
  controller: edge.dev/ingress-controller
---
apiVersion: v1
kind: Service
metadata: {name: load-backend, namespace: load}
spec:
  ports: [{name: http, port: 80, targetPort: %(port)d, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: load-backend-1
  namespace: load
  labels: {kubernetes.io/service-name: load-backend}
addressType: IPv4
ports: [{name: http, port: %(port)d, protocol: TCP}]
endpoints: [{addresses: ["127.0.0.1"], conditions: {ready: true}}]
"""

_CATCH_ALL = """---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: all, namespace: load, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  ingressClassName: edge
  rules:
  - http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: load-backend, port: {number: 80}}}}]
"""

_CHURN = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: churn, namespace: load, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  ingressClassName: edge
  tls: [{hosts: [secure.example.com], secretName: churn-tls}]
  rules:
  - http:
      paths:
%(paths)s  - host: secure.example.com
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: load-backend, port: {number: 80}}}}]
---
apiVersion: v1
kind: Secret
metadata: {name: churn-tls, namespace: load}
type: kubernetes.io/tls
data:
  tls.crt: %(crt)s
  tls.key: %(key)s
"""


def _churn_manifest(version, certs):
    """The churned Ingress + Secret: the route set alternates between 1 and
    50 extra paths and the certificate between two keys, every change."""
    extra = (version % 2) * 49 + 1
    paths = "".join(
        "      - {path: /churn-%d, pathType: Prefix, backend: {service: {name: load-backend, "
        "port: {number: 80}}}}\n" % i for i in range(extra))
    paths += ("      - {path: /, pathType: Prefix, backend: {service: {name: load-backend, "
              "port: {number: 80}}}}\n")
    crt, key = certs[version % 2]
    return _CHURN % {"paths": paths, "crt": crt, "key": key}


def _syncd_churn(ctx, backend):
    """edge configured by syncd (dir source): every 100 ms (or once the
    previous change is acked) the Ingress's routes and its TLS Secret
    change; the proxy must keep serving with zero errors and ACK exactly one
    push per change written (a NACK, or a change never acked, is an error)."""
    import base64
    env = ctx.env
    state = {}
    certs = []
    for name in ("churn-a", "churn-b"):
        c, k, _ = h.make_cert(env, name)
        certs.append(tuple(base64.b64encode(open(p, "rb").read()).decode() for p in (c, k)))
    man = env.path("manifests")
    os.makedirs(man, exist_ok=True)

    def put(name, text):
        tmp = env.path("manifest.tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, os.path.join(man, name))

    def start():
        put("00-base.yaml", _INGRESS % {"port": backend.port})
        put("20-churn.yaml", _churn_manifest(1, certs))
        # A short debounce, so (nearly) every 100 ms change becomes a push.
        syncd, sport, sadmin = h.start_syncd(env, man, extra=["--debounce=20ms",
                                                              "--max-delay=100ms"])
        state.update(syncd=syncd)
        l7, port, admin = h.start_l7proxy_syncd(env, sport)
        state.update(admin=admin)
        h.check_proxied(port, "http")
        return [l7], port

    base = _wrk_load(ctx)

    def load(port, duration):
        if duration != ctx.duration:  # warm-up: no churn
            return base(port, duration)
        pushes = lambda: _by_result(state["admin"], "edge_l7_config_pushes_total")  # noqa: E731
        before = pushes()
        s0 = state["syncd"].cpu_seconds()
        st, sent = _churn_under(
            ctx, lambda: base(port, duration),
            lambda v: put("20-churn.yaml", _churn_manifest(v, certs)),
            lambda: pushes().get("ack", 0) - before.get("ack", 0))
        after = pushes()
        delta = {k: after[k] - before.get(k, 0) for k in after}
        syncd_cpu = state["syncd"].cpu_seconds() - s0
        st["note"] = ("%d changes (routes + certificate) written; pushes %s; syncd CPU %.2f s" %
                      (sent, ", ".join("%s=%d" % kv for kv in sorted(delta.items())) or
                       "none counted", syncd_cpu))
        _require_applied(st, sent, delta.get("ack", 0),
                         delta.get("nack", 0) + delta.get("malformed", 0), "pushes")
        return st

    return measure_side(ctx, "edge", start, load, variant="syncd churn 100ms")


def _by_result(admin, metric):
    """{result label: count} of a counter family from an admin /metrics."""
    out = {}
    for labels, v in h.metric_values(admin, metric).items():
        m = re.search(r'result="([^"]+)"', labels)
        out[m.group(1) if m else labels] = int(v)
    return out


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

    def edge_syncd():
        man = ctx.env.path("manifests")
        os.makedirs(man, exist_ok=True)
        with open(os.path.join(man, "00-base.yaml"), "w") as f:
            f.write(_INGRESS % {"port": backend.port} + _CATCH_ALL)
        syncd, sport, _ = h.start_syncd(ctx.env, man)
        l7, _, _ = h.start_l7proxy_syncd(ctx.env, sport, proxy_protocol=True)
        l4, port = h.start_l4lb_syncd(ctx.env, sport)
        h.check_proxied(port, "http")
        return [l4, l7], port

    rows = [measure_side(ctx, "edge", edge, _wrk_load(ctx), variant="static"),
            measure_side(ctx, "edge", edge_syncd, _wrk_load(ctx), variant="via syncd")]
    rows[0]["note"] = "replica set and routes given on the command line / --config"
    rows[1]["note"] = ("routes (ConfigSync) and the replica set (Membership) from syncd; "
                       "syncd's CPU not counted")
    for peer in ("nginx", "haproxy"):
        rows.append(_row(ctx, peer, "", status="n/a",
                         reason="edge-only chain; compare h1-keepalive and l4-connections"))
    return rows


# failover's bounds. Health checks run every 500 ms with fall=2, and l4lb
# retries a refused connect on the next replica, so new connections should
# not fail at all; the bound leaves room for a busy machine. Errors: each
# keep-alive connection open on the killed replica may break once.
FAILOVER_RECOVERY_BOUND_S = 5.0
FAILOVER_VERIFY = 50


@scenario("failover",
          "two l7proxy replicas behind l4lb under wrk load; one is killed (SIGKILL) a third of "
          "the way in; requests must succeed again within %.0f s, at most one error per client "
          "connection, then every new connection succeeds" % FAILOVER_RECOVERY_BOUND_S,
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
        probe = {"fail": [], "n": 0}
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
        if t_kill[0] is None or state["l7"][0].popen.poll() is None:
            raise SetupError("the replica was not killed during the run")
        fails = [t for t in probe["fail"] if t >= t_kill[0]]
        recovery = (max(fails) - t_kill[0]) if fails else 0.0
        verify_failed = sum(1 for _ in range(FAILOVER_VERIFY) if not h.probe_once(port, 2.0))
        st["note"] = ("replica killed at %.1f s; probes failed: %d of %d; recovery %.2f s "
                      "(last failed probe after the kill); then %d of %d new connections "
                      "failed" % (duration / 3.0, len(probe["fail"]), probe["n"], recovery,
                                  verify_failed, FAILOVER_VERIFY))
        st["recovery_s"] = recovery
        broken = []
        if probe["n"] == 0:
            broken.append("no probe ran")
        if recovery > FAILOVER_RECOVERY_BOUND_S:
            broken.append("requests failed %.1f s after the kill (bound %.0f s)" %
                          (recovery, FAILOVER_RECOVERY_BOUND_S))
        if st["errors"] > ctx.conns:
            broken.append("%d errors for %d client connections" % (st["errors"], ctx.conns))
        if verify_failed:
            broken.append("%d of %d new connections failed after the failover" %
                          (verify_failed, FAILOVER_VERIFY))
        if broken:
            raise SetupError("failover: %s; %s" % ("; ".join(broken), st["note"]))
        return st

    row = measure_side(ctx, "edge", edge, load, variant="kill 1 of 2")
    return [row] + [_row(ctx, p, "kill 1 of 2", status="n/a",
                         reason="edge-only (l4lb health checks and Maglev re-hashing)")
                    for p in ("nginx", "haproxy")]


# ------------------------------------------- client certificates (issue 20, p20a)


def _client_ca(env):
    """A throw-away client CA and one client certificate (EC P-256), made
    with the openssl command line. Returns (ca_pem_path, cert, key)."""
    d = env.path("client-ca")
    os.makedirs(d, exist_ok=True)
    ca, cak = os.path.join(d, "ca.crt"), os.path.join(d, "ca.key")
    crt, key, csr = (os.path.join(d, "client.crt"), os.path.join(d, "client.key"),
                     os.path.join(d, "client.csr"))
    if not os.path.exists(crt):
        run = lambda *a: subprocess.run(list(a), check=True, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "2", "-subj", "/CN=load clients", "-keyout", cak, "-out", ca,
            "-addext", "basicConstraints=critical,CA:TRUE")
        run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-subj", "/CN=load-client", "-keyout", key, "-out", csr)
        run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cak, "-set_serial", "7",
            "-days", "2", "-out", crt)
    return ca, crt, key


def _tls_client_load(url, duration, conns, cert=None, key=None):
    """tls_client_load.py (HTTPS keep-alive, optional client certificate):
    the same figures as h.wrk."""
    argv = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                         "tls_client_load.py"), url, str(duration), str(conns)]
    if cert:
        argv += ["--cert=" + cert, "--key=" + key]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    m = re.search(r"^LOADSTATS (.*)$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        raise SetupError("tls_client_load failed (exit %d): %s" % (r.returncode, r.stderr[-500:]))
    kv = {k: float(v) for k, v in (x.split("=") for x in m.group(1).split())}
    errs = {k: int(kv[k]) for k in ("connect", "read", "status") if kv[k]}
    return {"requests": int(kv["requests"]), "rate": kv["requests"] / (kv["duration_us"] / 1e6),
            "p50": kv["p50"] / 1000, "p99": kv["p99"] / 1000, "p999": kv["p999"] / 1000,
            "errors": sum(errs.values()),
            "error_detail": ", ".join("%s=%d" % e for e in errs.items())}


def client_certificate_sides(ctx, backend):
    """The client-certificate rows of the policies scenario: edge over HTTPS
    keep-alive (TLS 1.3, resumption off, 1 worker) on the same nginx
    backend, the same client (tls_client_load.py: wrk cannot present a
    certificate) and load; only the host's policy differs. Every request
    passes (a trusted certificate). Returns measure_sides' sides."""
    import json
    ca, crt, key = _client_ca(ctx.env)
    with open(ca) as f:
        ca_pem = f.read()
    server = h.make_cert(ctx.env)
    with open(server[0]) as f1, open(server[1]) as f2:
        pair = (f1.read(), f2.read())
    conns = min(ctx.conns, 4)  # one Python process per connection
    variants = [("https (plain route)", None, False),
                ("https + client certificate (required)", {}, True),
                ("https + client certificate, chain upstream", {"pass_certificate": True}, True)]
    sides = []
    for name, auth, present in variants:
        def start(auth=auth, name=name):
            cfg = json.loads(h.l7_config([backend.port], cert=pair))
            if auth is not None:
                vh = [r for r in cfg["resources"] if "virtual_host" in r][0]["virtual_host"]
                vh["client_auth"] = dict(auth, mode="CLIENT_AUTH_MODE_REQUIRED", ca_pem=ca_pem)
            proc, port, _, _ = h.start_l7proxy(
                ctx.env, [backend.port], mode="https", config_text=json.dumps(cfg),
                name="l7proxy-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"))
            return [proc], port

        def load(port, duration, present=present):
            return _tls_client_load("https://127.0.0.1:%d/" % port, duration, conns,
                                    cert=crt if present else None, key=key if present else None)
        sides.append(("edge", start, load, {"variant": name}))
    return sides


@scenario("policies-tls",
          "client certificates (issue 20): edge's CPU per request over HTTPS keep-alive with "
          "a required client certificate, against the same route without one; "
          "tls_client_load.py (wrk cannot present certificates)")
def policies_tls(ctx):
    return _client_certificate_rows(ctx, h.Backend(ctx.env))


def _client_certificate_rows(ctx, backend):
    """The client-certificate rows, each against plain HTTPS measured in the same run."""
    rows = measure_sides(ctx, client_certificate_sides(ctx, backend))
    plain = rows[0]["cpu_us"] if rows and rows[0]["status"] == "ok" else None
    for r in rows[1:]:
        if plain and r["status"] == "ok" and r["cpu_us"]:
            r["note"] = "CPU/req %.2fx of plain https (+%.1f µs)" % (r["cpu_us"] / plain,
                                                                     r["cpu_us"] - plain)
    return rows


# ------------------------------------------------------------------ control plane

import control_plane as _control_plane  # noqa: E402


@scenario("control-plane",
          "syncd + N l7proxies (HTTPS, 1 worker each) over 10k hosts/10k certificates and "
          "100k hosts/40k certificates (quick: 200/200, 3 proxies): cold load, start -> "
          "applied, one-route and one-certificate change -> all proxies applied (p50/p99), "
          "bytes and CPU per change; ingress-nginx's published figures beside them")
def control_plane(ctx):
    return _control_plane.control_plane(ctx, _row)


# ------------------------------------------------------------ route policies


def _policy_config(backend_port, options=None, cluster_extra=None, auth_port=None):
    """One catch-all route on the nginx backend with route options (and
    cluster fields); auth_port adds the external-auth cluster."""
    import json
    cl = {"name": "load/backend:80", "max_idle_per_endpoint": 256,
          "endpoints": [{"address": "127.0.0.1", "port": backend_port, "ready": True}]}
    cl.update(cluster_extra or {})
    route = {"path": "/", "path_type": "PATH_TYPE_PREFIX", "cluster": "load/backend:80"}
    if options:
        route["options"] = options
    res = [{"cluster": cl},
           {"virtual_host": {"name": "vh:*", "host": "", "host_match": "HOST_MATCH_ANY",
                             "routes": [route]}}]
    if auth_port:
        res.append({"cluster": {"name": "load/auth:80", "max_idle_per_endpoint": 256,
                                "endpoints": [{"address": "127.0.0.1", "port": auth_port,
                                               "ready": True}]}})
    return json.dumps({"version": 1, "resources": res})


def _htpasswd_line(user, password, bcrypt):
    """A line from apache2-utils' htpasswd (-B bcrypt cost 10, or -s {SHA})."""
    h.need_tool("htpasswd")
    flag = ["-B", "-C", "10"] if bcrypt else ["-s"]
    r = subprocess.run(["htpasswd", "-n", "-b"] + flag + [user, password],
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


def _redis(ctx):
    """A redis-server on 127.0.0.1 for cluster-wide limits. Returns its port."""
    h.need_tool("redis-server")
    port = h.free_port()
    d = ctx.env.path("redis")
    os.makedirs(d, exist_ok=True)
    proc = ctx.env.spawn("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", d])
    h.wait_tcp(proc, port)
    return port


def _redis_clients(port):
    """How many clients redis-server has (the asking redis-cli included)."""
    r = subprocess.run(["redis-cli", "-p", str(port), "info", "clients"], capture_output=True,
                       text=True, timeout=10)
    m = re.search(r"connected_clients:(\d+)", r.stdout)
    return int(m.group(1)) if m else 0


def _basic(user, password):
    import base64
    return "Authorization: Basic " + base64.b64encode(
        ("%s:%s" % (user, password)).encode()).decode()


def _first_cookie(port, name):
    """The affinity cookie a first request gets (name=value), for wrk to send."""
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=5) as r:
        for v in r.headers.get_all("Set-Cookie") or []:
            if v.startswith(name + "="):
                return v.split(";")[0]
    raise SetupError("no %s cookie in the first answer" % name)


@scenario("policies",
          "edge's per-route policies (issue 20) against the plain route: CPU per request "
          "with basic auth (bcrypt, cached; {SHA}), external auth (a subrequest per "
          "request), rate limits (local; cluster-wide in Redis), cookie affinity, consistent "
          "hashing and CORS; HTTP/1.1 keep-alive, wrk; then client certificates (required, "
          "chain upstream) against plain HTTPS keep-alive, tls_client_load.py")
def policies(ctx):
    """Every row is edge on the same nginx backend with the same flags and
    load; only the route's policy differs, and no request is refused (a
    limit far above the load, valid credentials), so each row measures the
    policy's cost on requests that pass. The auth service of external auth
    is a second nginx (its CPU is not the proxy's); Redis's CPU is not
    counted either."""
    backend = h.Backend(ctx.env)
    auth = h.Backend(ctx.env)  # answers 200 to GET /verify-like paths: the auth service
    redis_port = _redis(ctx)
    bcrypt_line = _htpasswd_line("bench", "bench pass", True)
    sha_line = _htpasswd_line("bench", "bench pass", False)
    key = "0123456789abcdef0123456789abcdef"
    rl = {"requests": 1000000, "burst": 1000000, "by": "RATE_LIMIT_KEY_HEADER",
          "header": "x-api-key"}
    cors = {"allow_origins": ["https://*.example.com"], "allow_credentials": True}
    variants = [
        ("plain", {}, None, (), None),
        ("basic auth (bcrypt, cached)", {"basic_auth": {"htpasswd": [bcrypt_line]}}, None,
         (_basic("bench", "bench pass"),), None),
        ("basic auth ({SHA})", {"basic_auth": {"htpasswd": [sha_line]}}, None,
         (_basic("bench", "bench pass"),), None),
        ("external auth", {"external_auth": {"cluster": "load/auth:80", "path": "/",
                                             "response_headers": ["x-user"]}}, None,
         ("Authorization: Bearer x",), None),
        ("rate limit (local)", {"rate_limit": rl}, None, ("X-Api-Key: k1",), None),
        ("rate limit (cluster, Redis)", {"rate_limit": dict(
            rl, scope="RATE_LIMIT_SCOPE_CLUSTER")}, None, ("X-Api-Key: k1",), "redis"),
        ("cookie affinity", {}, {"cookie_affinity": {"name": "EDGEAFF", "hmac_key": key}}, (),
         "cookie"),
        ("consistent hash (header)", {}, {"consistent_hash": {"on": "HASH_ON_HEADER",
                                                              "header": "x-user"}},
         ("X-User: u1",), None),
        ("cors", {"cors": cors}, None, ("Origin: https://app.example.com",), None),
    ]
    sides = []
    for name, options, cextra, headers, extra in variants:
        def start(options=options, cextra=cextra, extra=extra, name=name):
            text = _policy_config(backend.port, options, cextra,
                                  auth.port if "external_auth" in options else None)
            # a generous Redis timeout: a busy 2-core machine must not turn the measured
            # decisions into fail-open ones (the row fails if any does)
            flags = (["--ratelimit-redis=127.0.0.1:%d" % redis_port,
                      "--ratelimit-redis-timeout=2s"] if extra == "redis" else [])
            proc, port, admin, _ = h.start_l7proxy(
                ctx.env, [backend.port], config_text=text, extra_args=flags,
                name="l7proxy-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"))
            if extra == "redis":  # connected before it is measured, or the row fails
                deadline = time.monotonic() + 10
                while _redis_clients(redis_port) < 2:
                    if time.monotonic() > deadline:
                        raise SetupError("l7proxy did not connect to redis")
                    time.sleep(0.05)
            return [proc], (port, admin)

        def load(target, duration, headers=headers, extra=extra):
            port, admin = target
            hs = list(headers)
            if extra == "cookie":
                hs.append("Cookie: " + _first_cookie(port, "EDGEAFF"))
            st = h.wrk("http://127.0.0.1:%d/" % port, duration, conns=ctx.conns, headers=hs)
            failed = sum(h.metric_values(admin, "edge_l7_ratelimit_redis_failures_total")
                         .values())
            if failed:  # a decision Redis did not make is not the cost being measured
                raise SetupError("%d rate-limit decisions failed open" % failed)
            return st
        sides.append(("edge", start, load, {"variant": name}))
    rows = measure_sides(ctx, sides)
    plain = rows[0]["cpu_us"] if rows and rows[0]["status"] == "ok" else None
    for r in rows[1:]:
        if plain and r["status"] == "ok" and r["cpu_us"]:
            ratio = "CPU/req %.2fx of plain (+%.1f µs)" % (r["cpu_us"] / plain,
                                                           r["cpu_us"] - plain)
            r["note"] = ratio + ("; " + r["note"] if r["note"] else "")
    # client certificates live in the TLS handshake: their rows are HTTPS
    # (wrk cannot present a certificate), each against plain HTTPS
    return rows + _client_certificate_rows(ctx, backend)


# ------------------------------------------------------------------- hostile


@scenario("hostile",
          "hostile clients (issue 15): slowloris, stalled bodies, slow readers h1/h2 (zero "
          "window), h2 stream floods, idle L4 connections, descriptor exhaustion; per attack the "
          "attack's connections, the proxy's peak RSS and descriptors, and a well-behaved "
          "client's requests and failures", expect_errors=True, in_all=False)
def hostile_scenario(ctx):
    import hostile
    return hostile.run(ctx)
