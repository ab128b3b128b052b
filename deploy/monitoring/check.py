#!/usr/bin/env python3
"""The monitoring test: rules and dashboard against series real processes serve.

Usage: check.py BIN_DIR MONITORING_DIR BACKEND_PY OTLP_RECEIVER_PY

1. `promtool check rules` and `promtool test rules` (Debian's prometheus
   package) on edge-rules.yml and edge-rules.test.yml.
2. Starts, on 127.0.0.1, a real syncd (dir source with an Ingress, a
   Service of ten endpoints and a TLS Secret made here), an l7proxy
   connected to it (JSON access log, tracing to the in-tree OTLP receiver),
   an l4lb following syncd's replica set, and the example backends; sends
   requests through the l4lb (2xx, 5xx until outlier detection ejects an
   endpoint) and scrapes the three /metrics endpoints.
3. Fails when a metric named in a rule or a dashboard panel is not served,
   when an input series of the rule tests has a name or a label set that no
   served series has, or an enumerated label value (state, kind, code_class,
   result, reason, proto) that the processes never produce, and checks a few
   values that the traffic must have produced.
Every process is started here and stopped by PID; waits poll with deadlines.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

BIN, MON, BACKEND, RECEIVER = (os.path.abspath(a) for a in sys.argv[1:5])
DEADLINE = 60
ENUM_LABELS = {"state", "kind", "code_class", "result", "reason", "proto", "direction"}
procs = []
failures = []
TMP = [None]


def fail(msg):
    failures.append(msg)
    print("FAIL", msg, flush=True)


def ok(msg):
    print("ok  ", msg, flush=True)


def poll(cond, what, timeout=DEADLINE):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        for p, name in procs:
            if p.poll() is not None:
                raise SystemExit("%s exited early (status %s)" % (name, p.returncode))
        time.sleep(0.1)
    raise SystemExit("timed out waiting for " + what)


def free_port(host="127.0.0.1"):
    s = socket.socket()
    s.bind((host, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(url, host=None, timeout=5):
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def start(name, argv, log):
    f = open(log, "w")
    p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT)
    procs.append((p, name))
    return p


def stop_all():
    for p, _ in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p, _ in reversed(procs):
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def parse_metrics(text):
    """Prometheus text -> [(name, {label: value}, value)]."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$', line)
        if not m:
            fail("unparseable metrics line: " + line)
            continue
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out.append((m.group(1), labels, float(m.group(4))))
    return out


def names_in(expr):
    return set(re.findall(r'(?<![:\w])(edge_[a-z0-9_]+)', expr))  # not recording rules


def promtool(tmp):
    for args in (["check", "rules", "edge-rules.yml"], ["test", "rules", "edge-rules.test.yml"]):
        r = subprocess.run(["promtool"] + args, cwd=tmp, capture_output=True, text=True)
        if r.returncode != 0:
            fail("promtool %s:\n%s%s" % (" ".join(args), r.stdout, r.stderr))
        else:
            ok("promtool %s: %s" % (" ".join(args), r.stdout.strip().splitlines()[-1].strip()))


def make_secret(tmp, host):
    key, crt = os.path.join(tmp, "tls.key"), os.path.join(tmp, "tls.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt, "-days",
                    "10", "-subj", "/CN=" + host, "-addext", "subjectAltName=DNS:" + host],
                   check=True, capture_output=True)
    import base64
    b64 = lambda p: base64.b64encode(open(p, "rb").read()).decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "mon-tls", "namespace": "default"},
            "data": {"tls.crt": b64(crt), "tls.key": b64(key)}}


def manifests(tmp, port):
    eps = [{"addresses": ["127.0.50.%d" % i], "conditions": {"ready": True}}
           for i in range(1, 11)]
    backend = {"service": {"name": "mon", "port": {"number": 80}}}
    docs = [
        {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
         "metadata": {"name": "edge", "annotations": {
             "ingressclass.kubernetes.io/is-default-class": "true"}},
         "spec": {"controller": "edge.dev/ingress-controller"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "mon", "namespace": "default"},
         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "mon-1", "namespace": "default",
                      "labels": {"kubernetes.io/service-name": "mon"}},
         "addressType": "IPv4", "ports": [{"name": "http", "port": port}], "endpoints": eps},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": "mon", "namespace": "default"},
         "spec": {"ingressClassName": "edge", "rules": [{"host": "mon.test", "http": {"paths": [
             {"path": "/", "pathType": "Prefix", "backend": backend}]}}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": "mon-secure", "namespace": "default"},
         "spec": {"ingressClassName": "edge",
                  "tls": [{"hosts": ["secure.mon.test"], "secretName": "mon-tls"}],
                  "rules": [{"host": "secure.mon.test", "http": {"paths": [
                      {"path": "/", "pathType": "Prefix", "backend": backend}]}}]}},
        make_secret(tmp, "secure.mon.test"),
    ]
    d = os.path.join(tmp, "manifests")
    os.makedirs(d)
    with open(os.path.join(d, "mon.yaml"), "w") as f:
        yaml.safe_dump_all(docs, f)
    return d


def port_free(host, port):
    s = socket.socket()
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def run_cluster(tmp):
    """Starts everything, sends the traffic, returns {component: admin port}."""
    bport = next(p for p in range(21000 + os.getpid() % 7000, 29000)
                 if all(port_free("127.0.50.%d" % i, p) for i in range(1, 11)))
    mdir = manifests(tmp, bport)
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    start("backends", [sys.executable, BACKEND] +
          ["mon-%d=127.0.50.%d:%d" % (i, i, bport) for i in range(1, 11)],
          os.path.join(logs, "backends.log"))
    rfile = os.path.join(tmp, "otlp.port")
    start("otlp", [sys.executable, RECEIVER, rfile], os.path.join(logs, "otlp.log"))
    sg, sa, l7h, l7a, l4, l4a = (free_port() for _ in range(6))
    start("syncd", [os.path.join(BIN, "syncd/syncd"), "--source=dir:" + mdir,
                    "--listen=127.0.0.1:%d" % sg, "--admin=127.0.0.1:%d" % sa, "--insecure",
                    "--state-dir=" + os.path.join(tmp, "state")], os.path.join(logs, "syncd.log"))
    poll(lambda: os.path.exists(rfile), "the OTLP receiver")
    start("l7-1", [os.path.join(BIN, "l7proxy/l7proxy"), "--syncd=127.0.0.1:%d" % sg,
                   "--insecure", "--node-id=l7-1", "--http=127.0.0.1:%d" % l7h,
                   "--admin=127.0.0.1:%d" % l7a, "--workers=1", "--access-log-format=json",
                   "--access-log-path=" + os.path.join(logs, "access.json"),
                   "--trace-otlp=http://127.0.0.1:%s/v1/traces" % open(rfile).read(),
                   "--trace-flush=100ms"], os.path.join(logs, "l7.log"))
    start("lb-a", [os.path.join(BIN, "l4lb/l4lb"), "--listen=127.0.0.1:%d" % l4,
                   "--syncd=127.0.0.1:%d" % sg, "--insecure", "--admin=127.0.0.1:%d" % l4a,
                   "--node-id=lb-a", "--workers=1", "--proxy-protocol=off",
                   "--check-interval=200ms"], os.path.join(logs, "l4.log"))
    for port in (sa, l7a, l4a):
        poll(lambda: get("http://127.0.0.1:%d/readyz" % port)[0] == 200, "/readyz :%d" % port)
    poll(lambda: get("http://127.0.0.1:%d/" % l4, "mon.test")[0] == 200,
         "a request through the l4lb")
    codes = {}
    for path in ["/"] * 20 + ["/__status/503"] * 80:
        st = get("http://127.0.0.1:%d%s" % (l4, path), "mon.test")[0]
        codes[st] = codes.get(st, 0) + 1
    ok("traffic through the l4lb: %s" % ", ".join("%d x %d" % kv for kv in sorted(codes.items())))
    return {"syncd": sa, "l7proxy": l7a, "l4lb": l4a}


def scrape(admin):
    series = []
    for comp, port in admin.items():
        st, text = get("http://127.0.0.1:%d/metrics" % port)
        if st != 200:
            fail("%s /metrics answered %d" % (comp, st))
        with open(os.path.join(TMP[0], "metrics-%s.txt" % comp), "w") as f:
            f.write(text)  # kept for a failure's post-mortem
        series += parse_metrics(text)
    return series


def check_names(kind, exprs, served_names):
    missing = set()
    for where, e in exprs:
        for n in names_in(e):
            if n not in served_names:
                missing.add(n)
                fail("%s %s uses %s, which no process serves" % (kind, where, n))
    if not missing:
        ok("every metric named by the %s is served (%d expressions)" % (kind, len(exprs)))


def check_test_inputs(tests, series):
    by_name = {}
    for n, labels, _ in series:
        by_name.setdefault(n, []).append(labels)
    seen_values = {}  # (metric name, label) -> values served
    for n, labels, _ in series:
        for k, v in labels.items():
            seen_values.setdefault((n, k), set()).add(v)
    bad = 0
    n_inputs = 0
    for t in tests["tests"]:
        for inp in t.get("input_series", []):
            n_inputs += 1
            m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}$', inp["series"])
            name = m.group(1)
            labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"', m.group(2)))
            keys = set(labels) - {"job", "instance"}
            base = re.sub(r'_bucket$', "", name)
            served = by_name.get(name)
            if not served:
                fail("rule test input %s: no process serves %s" % (inp["series"], name))
                bad += 1
                continue
            if not any(set(l) == keys for l in served):
                fail("rule test input %s: served %s series have labels %s, not %s" % (
                    inp["series"], name, sorted({tuple(sorted(l)) for l in served}), sorted(keys)))
                bad += 1
            for k in keys & ENUM_LABELS:
                if labels[k] not in seen_values.get((name, k), ()):
                    fail("rule test input %s: %s=%r is never produced (seen: %s)" % (
                        inp["series"], k, labels[k], sorted(seen_values.get((name, k), ()))))
                    bad += 1
    if not bad:
        ok("all %d rule test input series match served names, label sets and values" % n_inputs)


def value(series, name, **want):
    return [v for n, l, v in series if n == name and all(l.get(k) == x for k, x in want.items())]


def check_values(series):
    """What the traffic above must show, read the way the alerts read it."""
    expect = [
        ("syncd sees l7-1 SYNCED", value(series, "edge_syncd_node_state", node="l7-1",
                                          kind="l7proxy", state="SYNCED") == [1.0]),
        ("syncd sees lb-a SYNCED", value(series, "edge_syncd_node_state", node="lb-a",
                                          kind="l4lb", state="SYNCED") == [1.0]),
        ("l7-1 is not NACKED", value(series, "edge_syncd_node_state", node="l7-1",
                                     state="NACKED") == [0.0]),
        ("the source is healthy", value(series, "edge_syncd_source_healthy") == [1.0]),
        ("the 10-day certificate expires within 14 days",
         any(0 < v < 14 * 86400 for v in value(series, "edge_syncd_certificate_expiry_seconds",
                                                certificate="default/mon-tls"))),
        ("the l4lb table has the replica", value(series, "edge_l4_table_backends") == [1.0]),
        ("5xx are counted per route and cluster",
         sum(value(series, "edge_l7_requests_total", route="mon.test/", code_class="5xx")) >= 80),
        ("an endpoint of the failing cluster was ejected",
         sum(value(series, "edge_l7_upstream_ejections_total")) >= 1),
        ("per-route latency histogram", len(value(series, "edge_l7_request_duration_seconds_bucket",
                                                  route="mon.test/")) > 5),
        ("spans were exported", sum(value(series, "edge_l7_trace_spans_exported_total")) >= 0),
        ("access log lines were written",
         sum(value(series, "edge_l7_access_log_lines_total")) >= 100),
    ]
    for what, good in expect:
        (ok if good else fail)(what)


def main():
    if not shutil.which("promtool"):
        print("promtool missing: bash bazel/setup.sh installs Debian's prometheus package")
        return 1
    tmp = tempfile.mkdtemp(prefix="edge-monitoring-")
    TMP[0] = tmp
    for f in ("edge-rules.yml", "edge-rules.test.yml", "edge-dashboard.json"):
        shutil.copy(os.path.join(MON, f), tmp)
    promtool(tmp)
    rules = yaml.safe_load(open(os.path.join(tmp, "edge-rules.yml")))
    tests = yaml.safe_load(open(os.path.join(tmp, "edge-rules.test.yml")))
    dash = json.load(open(os.path.join(tmp, "edge-dashboard.json")))
    admin = run_cluster(tmp)
    # counters written by other threads (access log writer) and gauges that
    # syncd refreshes every second (node state, source health): poll
    def settled():
        s = scrape(admin)
        return (sum(value(s, "edge_l7_access_log_lines_total")) >= 100 and
                value(s, "edge_syncd_node_state", node="lb-a", state="SYNCED") == [1.0] and
                value(s, "edge_syncd_node_state", node="l7-1", state="SYNCED") == [1.0] and
                value(s, "edge_syncd_source_healthy") == [1.0])
    try:
        poll(settled, "the access log writer and syncd's node and source gauges", timeout=15)
    except SystemExit as e:
        fail(str(e))
    series = scrape(admin)
    names = {n for n, _, _ in series}
    ok("scraped %d series (%d names) from syncd, l7proxy and l4lb" % (len(series), len(names)))
    rule_exprs = [(r.get("alert") or r.get("record"), r["expr"])
                  for g in rules["groups"] for r in g["rules"]]
    check_names("rules", rule_exprs, names)
    panel_exprs = [(p["title"], t["expr"]) for p in dash["panels"] for t in p.get("targets", [])]
    panel_exprs += [("variable " + v["name"], v["query"]) for v in dash["templating"]["list"]
                    if v["type"] == "query"]
    check_names("dashboard", panel_exprs, names)
    check_test_inputs(tests, series)
    check_values(series)
    if failures:
        print("kept", tmp, "; syncd served:")
        print(open(os.path.join(tmp, "metrics-syncd.txt")).read())
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        stop_all()
    sys.exit(rc if not failures else 1)
