"""control_plane — the "control-plane" scenario (issue 17): syncd and N real
l7proxies (HTTPS on, one worker each) over generated Kubernetes sources of
HOSTS Ingress hosts, the first CERTS of them with their own TLS Secret.

Per size it reports three rows:
  - initial: syncd's cold load (start → first version), then N proxies
    started at once: each one's start → first config applied (p50, max),
    the full push per proxy (bytes) and the time until all N applied it,
    l7proxy RSS; then one more proxy started alone (start → applied: what
    a restarted proxy costs when the machine is not busy starting N).
  - one route: CHANGES edits of one Ingress path; per change the time from
    the file rename to the last of the N proxies applying it (p50/p99,
    includes syncd's 20 ms debounce), bytes pushed per proxy, syncd CPU and
    state bytes written per change, l7proxy CPU per change.
  - one certificate: the same for one Secret of CERTS getting another key
    pair (in a file of 100 Secrets).
An ACK is sent right after the proxy applies a push; the apply time is read
from the proxy's log line (config_applied, ms resolution), so nothing polls
the proxies. A change one proxy never applies, a NACK, or a full push where
a delta was due is an error of the run. ingress-nginx rows quote the
figures its users published (not measured here).

EDGE_CP_SIZES="HOSTS:CERTS:PROXIES:CHANGES,..." replaces the sizes.
Sources are generated once by tests/load/syncd_bench --generate-only (C,
EC P-256 certificates) into $EDGE_LOAD_CACHE (default
$TMPDIR/edge-load-cache) and hard-linked into the scenario's directory
(changes replace files, never write into them).

Callers: scenarios.py registers it.
"""

import base64
import datetime
import os
import re
import shutil
import statistics
import subprocess
import time

import harness as h
from harness import SetupError

# (hosts, certificates, proxies, changes per kind)
QUICK_SIZES = [(200, 200, 3, 3)]
FULL_SIZES = [(10000, 10000, 10, 20), (100000, 40000, 10, 10)]
APPLY_DEADLINE_S = 120.0  # one change, every proxy (100k hosts on a busy 2-core machine)
START_DEADLINE_S = 600.0  # syncd's cold load / N proxies' first apply

# What ingress-nginx users reported at this scale (GitHub issues; quoted in
# the report next to edge's rows, never measured here).
INGRESS_NGINX = [
    ("initial", "kubernetes/ingress-nginx#1386 (100,000 hosts): ~18 min until the first request "
                "was served; every later reload ~12 s"),
    ("initial", "kubernetes/ingress-nginx#6844 (large configuration, v0.44): first backend reload "
                "timed out; ~15 min to start, also with 4 worker processes"),
    ("one route", "kubernetes/ingress-nginx#7268 (~16k Ingresses): slow backend updates; every "
                  "Ingress change re-renders and reloads the whole nginx.conf"),
    ("one certificate", "kubernetes/ingress-nginx#6958 (>8K hosts, cert-manager renewals): over "
                        "5 GB of memory, slow configuration refresh, pods evicted"),
]

_TS = re.compile(r"^ts=(\S+) .*msg=config_applied ")


def _log_ts(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class ProxyLog:
    """The config_applied lines of one proxy's log, read incrementally."""

    def __init__(self, proc):
        self.proc = proc
        self.off = 0
        self.applied = []  # wall-clock seconds of each config_applied line
        self.nacks = 0

    def poll(self):
        try:
            with open(self.proc.log, "rb") as f:
                f.seek(self.off)
                data = f.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1
        self.off += end
        for line in data[:end].decode(errors="replace").splitlines():
            m = _TS.match(line)
            if m:
                self.applied.append(_log_ts(m.group(1)))
            elif "msg=config_rejected" in line:
                self.nacks += 1


def _wait_applied(logs, counts, deadline_s):
    """Waits until every log has more config_applied lines than counts;
    returns the wall time of the last one's new line (None: timed out)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        for lg in logs:
            lg.poll()
        if all(len(lg.applied) > c for lg, c in zip(logs, counts)):
            return max(lg.applied[c] for lg, c in zip(logs, counts))
        for lg in logs:
            if not lg.proc.alive():
                raise SetupError("%s exited:\n%s" % (lg.proc.name, lg.proc.log_tail()))
        time.sleep(0.005)
    return None


def _pct(vals, q):
    v = sorted(vals)
    return v[min(len(v) - 1, max(0, int(round(q * len(v) + 0.5)) - 1))] if v else None


def _source(ctx, hosts, certs):
    """A private copy (hard links) of the generated source for this size."""
    bench = h.need_bin(ctx.env, "syncd_bench")
    cache = os.environ.get("EDGE_LOAD_CACHE") or os.path.join(
        os.environ.get("TMPDIR", "/tmp"), "edge-load-cache")
    os.makedirs(cache, exist_ok=True)
    r = subprocess.run([bench, "--generate-only", "--hosts=%d" % hosts, "--certs=%d" % certs,
                        "--workdir=" + cache], capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise SetupError("syncd_bench --generate-only failed: %s" % r.stderr[-500:])
    gen = r.stdout.strip().splitlines()[-1]
    src = ctx.env.path("src-%d-%d" % (hosts, certs))
    os.makedirs(src, exist_ok=True)
    for name in os.listdir(gen):
        if name.endswith(".yaml"):
            try:
                os.link(os.path.join(gen, name), os.path.join(src, name))
            except OSError:  # another file system: copy
                shutil.copyfile(os.path.join(gen, name), os.path.join(src, name))
    return src


_ROUTE = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: route
  namespace: bench
  creationTimestamp: "2026-01-01T00:00:00Z"
spec:
  rules:
    - host: route.bench.test
      http:
        paths:
          - path: /v%d
            pathType: Prefix
            backend:
              service:
                name: web
                port:
                  number: 80
"""


def _rotate_cert(src, pair):
    """The first Secret of 10-hosts-000.yaml gets pair (base64 cert, key)."""
    path = os.path.join(src, "10-hosts-000.yaml")
    with open(path) as f:
        text = f.read()
    text = re.sub(r"  tls\.crt: \S+\n  tls\.key: \S+\n",
                  "  tls.crt: %s\n  tls.key: %s\n" % pair, text, count=1)
    h.write_atomic(path, text)


def _start_syncd(ctx, src):
    binary = h.need_bin(ctx.env, "syncd")
    port, admin = h.free_port(), h.free_port()
    state = ctx.env.path("syncd-state-%s" % os.path.basename(src))
    os.makedirs(state, exist_ok=True)
    t0 = time.time()
    proc = ctx.env.spawn("syncd-" + os.path.basename(src), [
        binary, "--source=dir:" + src, "--listen=127.0.0.1:%d" % port,
        "--admin=127.0.0.1:%d" % admin, "--state-dir=" + state, "--insecure",
        "--log-level=info", "--debounce=20ms"])
    end = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < end:
        if not proc.alive():
            raise SetupError("syncd exited:\n" + proc.log_tail())
        with open(proc.log, errors="replace") as f:
            for line in f:
                if "msg=version " in line:
                    m = re.match(r"^ts=(\S+) ", line)
                    return proc, port, admin, (_log_ts(m.group(1)) if m else time.time()) - t0
        time.sleep(0.02)
    raise SetupError("syncd: no first version within %.0f s:\n%s" % (START_DEADLINE_S,
                                                                      proc.log_tail()))


def _spawn_proxy(ctx, sport, name):
    binary = h.need_bin(ctx.env, "l7proxy")
    port, tls, admin = h.free_port(), h.free_port(), h.free_port()
    cache = ctx.env.path(name + "-cache")
    os.makedirs(cache, exist_ok=True)
    t0 = time.time()
    proc = ctx.env.spawn(name, [
        binary, "--workers=1", "--http=127.0.0.1:%d" % port, "--https=127.0.0.1:%d" % tls,
        "--admin=127.0.0.1:%d" % admin, "--advertise=127.0.0.1:%d" % port,
        "--syncd=127.0.0.1:%d" % sport, "--insecure", "--node-id=" + name,
        "--cache-dir=" + cache, "--log-level=info", "--drain-timeout=1s"])
    return proc, t0, admin


def _pushes(admin):
    vals = h.metric_values(admin, "edge_syncd_push_bytes_total")
    return sum(vals.values())


def _syncd_metric(admin, name):
    return sum(h.metric_values(admin, name).values())


def _changes(ctx, kind, n, logs, procs, syncd, sadmin, full_bytes, make_change):
    """n changes made by make_change(k); returns a row."""
    lat, errors, detail = [], 0, []
    b0 = _pushes(sadmin)
    st0 = _syncd_metric(sadmin, "edge_syncd_state_written_bytes")
    c0, pc0 = syncd.cpu_seconds(), sum(p.cpu_seconds() for p in procs)
    nacks0 = sum(lg.nacks for lg in logs)
    for k in range(1, n + 1):
        for lg in logs:
            lg.poll()
        counts = [len(lg.applied) for lg in logs]
        t0 = time.time()
        make_change(k)
        last = _wait_applied(logs, counts, APPLY_DEADLINE_S)
        if last is None:
            errors += 1
            detail.append("change %d not applied by every proxy within %.0f s" %
                          (k, APPLY_DEADLINE_S))
            continue
        lat.append((last - t0) * 1e3)
    c1, pc1 = syncd.cpu_seconds(), sum(p.cpu_seconds() for p in procs)
    per_push = (_pushes(sadmin) - b0) / max(1, n * len(procs))
    st = (_syncd_metric(sadmin, "edge_syncd_state_written_bytes") - st0) / n
    nacks = sum(lg.nacks for lg in logs) - nacks0
    if nacks:
        errors += nacks
        detail.append("%d NACKs" % nacks)
    if full_bytes and per_push > full_bytes / 2:
        errors += 1
        detail.append("%.0f bytes per push: a full push where a delta was due" % per_push)
    rss = [p.memory_kb() for p in procs]
    srss, shwm = syncd.memory_kb()
    row = {"unit": "change", "requests": len(lat), "p50": _pct(lat, 0.5),
           "p99": _pct(lat, 0.99), "p999": max(lat) if lat else None, "errors": errors,
           "error_detail": "; ".join(detail), "cpu_us": (c1 - c0) * 1e6 / n,
           "rss_mb": srss / 1024.0, "hwm_mb": shwm / 1024.0,
           "note": "%s change -> all %d proxies applied: p50 %s ms, p99 %s ms (max column: "
                   "p99.9); %.0f bytes pushed per proxy per change; syncd %.1f ms CPU and %.0f "
                   "bytes of state written per change (CPU column: syncd µs per change; RSS: "
                   "syncd); l7proxy %.2f ms CPU per change each, RSS p50 %.0f MiB" % (
                       kind, len(procs), _f(_pct(lat, 0.5)), _f(_pct(lat, 0.99)), per_push,
                       (c1 - c0) * 1e3 / n, st, (pc1 - pc0) * 1e3 / n / len(procs),
                       statistics.median(r for r, _ in rss) / 1024.0)}
    return row


def _f(v):
    return "—" if v is None else "%.1f" % v


def _one_size(ctx, hosts, certs, n_proxies, n_changes):
    label = "%dk hosts/%dk certs" % (hosts // 1000, certs // 1000) if hosts >= 1000 else \
        "%d hosts/%d certs" % (hosts, certs)
    src = _source(ctx, hosts, certs)
    h.write_atomic(os.path.join(src, "20-route.yaml"), _ROUTE % 0)
    pairs = []
    for name in ("cp-rot-a", "cp-rot-b"):
        c, k, _ = h.make_cert(ctx.env, name)
        pairs.append(tuple(base64.b64encode(open(p, "rb").read()).decode() for p in (c, k)))

    syncd, sport, sadmin, t_load = _start_syncd(ctx, src)
    s_rss, s_hwm = syncd.memory_kb()
    b0 = _pushes(sadmin)
    tag = "%d-%d" % (hosts, certs)  # log names are per size: logs are appended to
    started = [_spawn_proxy(ctx, sport, "l7-%s-%02d" % (tag, i)) for i in range(n_proxies)]
    procs = [p for p, _, _ in started]
    logs = [ProxyLog(p) for p in procs]
    t_all = _wait_applied(logs, [0] * len(logs), START_DEADLINE_S)
    if t_all is None:
        raise SetupError("the proxies did not all apply the first state within %.0f s" %
                         START_DEADLINE_S)
    ready = [(lg.applied[0] - t0) * 1e3 for lg, (_, t0, _) in zip(logs, started)]
    full_bytes = (_pushes(sadmin) - b0) / n_proxies
    cpu_ready = [p.cpu_seconds() * 1e6 for p in procs]
    mem = [p.memory_kb() for p in procs]
    for p, _, admin in started:  # every proxy serves: /readyz
        h.wait_http(p, "http://127.0.0.1:%d/readyz" % admin, deadline_s=30)
    # One more, alone: what a restarted proxy costs.
    lone, t0, _ = _spawn_proxy(ctx, sport, "l7-%s-lone" % tag)
    lone_log = ProxyLog(lone)
    t_lone = _wait_applied([lone_log], [0], START_DEADLINE_S)
    lone_ms = (t_lone - t0) * 1e3 if t_lone else None
    lone_rss, lone_hwm = lone.memory_kb()
    lone_cpu = lone.cpu_seconds()
    ctx.env.stop(lone)

    init = {"unit": "proxy", "requests": n_proxies, "p50": statistics.median(ready),
            "p99": max(ready), "p999": lone_ms, "errors": 0, "error_detail": "",
            "cpu_us": statistics.median(cpu_ready),
            "rss_mb": statistics.median(r for r, _ in mem) / 1024.0,
            "hwm_mb": max(w for _, w in mem) / 1024.0,
            "note": "syncd cold load %.2f s (RSS %.0f MiB, peak %.0f); %d proxies started at "
                    "once: start -> applied p50 %.0f ms, max %.0f ms, all applied %.2f s after "
                    "the first start; full push %.0f bytes per proxy; one proxy started alone: "
                    "%s ms to applied, %.2f s CPU, RSS %.0f MiB (peak %.0f) (p99.9 column); CPU "
                    "column: l7proxy µs to its first apply; RSS: l7proxy p50 (max peak)" % (
                        t_load, s_rss / 1024.0, s_hwm / 1024.0, n_proxies,
                        statistics.median(ready), max(ready), t_all - started[0][1],
                        full_bytes, _f(lone_ms), lone_cpu, lone_rss / 1024.0,
                        lone_hwm / 1024.0)}
    route = _changes(ctx, "one-route", n_changes, logs, procs, syncd, sadmin, full_bytes,
                     lambda k: h.write_atomic(os.path.join(src, "20-route.yaml"), _ROUTE % k))
    cert = _changes(ctx, "one-certificate", n_changes, logs, procs, syncd, sadmin, full_bytes,
                    lambda k: _rotate_cert(src, pairs[k % 2]))
    for p in procs + [syncd]:
        ctx.env.stop(p)
    return [("%s initial" % label, init), ("%s one route" % label, route),
            ("%s one certificate" % label, cert)]


def control_plane(ctx, row):
    """The scenario body; row(ctx, proxy, variant, **fields) makes a row."""
    sizes = QUICK_SIZES if ctx.quick else FULL_SIZES
    if os.environ.get("EDGE_CP_SIZES"):  # "HOSTS:CERTS:PROXIES:CHANGES,..."
        sizes = [tuple(int(x) for x in s.split(":")) for s in
                 os.environ["EDGE_CP_SIZES"].split(",")]
    rows = []
    for hosts, certs, n, k in sizes:
        for variant, fields in _one_size(ctx, hosts, certs, n, k):
            rows.append(row(ctx, "edge", variant, **fields))
            quotes = [t for kind, t in INGRESS_NGINX if variant.endswith(" " + kind)]
            rows.append(row(ctx, "nginx", variant, status="n/a",
                            reason="ingress-nginx, published (not measured): " +
                                   "; ".join(quotes)))
    return rows
