"""scenario — the declarative e2e scenario format, shared by every runner.

A scenario is one YAML file in tests/e2e/scenarios/. Runners (netns, kind)
load it with load(), turn `backends` into Services + EndpointSlices for
their own network, apply the objects, send the requests and inject the
faults, and judge answers with check_answer(). Nothing here touches the
network except send() (curl, one request) and Load (a background HTTP/1.1
load generator); both only talk to addresses the runner hands them.

Format (every key but `name` and `requests`/`faults` optional):

    name: path-rules                    # unique, [a-z0-9-]
    description: one paragraph
    requires: [tls, h2c]                # capabilities the runner must provide
                                        # (declared by each runner, never
                                        # probed); netns provides them all
    backends: {shop-web: 3, shop-api: 1}  # Service name -> endpoint count;
                                        # endpoints answer X-Backend: NAME-K
    files: [deploy/examples/00-ingressclass.yaml]   # repo-relative YAML
    objects: |                          # Kubernetes YAML (multi-document)
      apiVersion: networking.k8s.io/v1
      ...
    tls_secrets:                        # generated kubernetes.io/tls Secrets
      - {namespace: default, name: shop-tls, hosts: [shop.example.test]}
    requests:
      - host: shop.example.test         # Host header (and SNI for https)
        path: /api
        via: vip | lb-a | lb-b | l7-1 | l7-2 | l7-3   (default vip)
        protocol: http1 | h2c | h2      (h2 = TLS with ALPN h2)
        scheme: http | https            (h2 implies https)
        sni: other.example.test         # TLS server name, if not host
        repeat: 1                       # send it N times
        expect:
          status: 200
          backend: shop-api             # Service (any endpoint) or NAME-K;
                                        # "none": no backend answered
          endpoints: 3                  # with repeat: distinct endpoints seen
          http_version: "2"
          headers: {x-backend: shop-api-1}     # response headers (substring)
          echo: {x_forwarded_proto: http}      # fields of the backend's JSON
          cert_subject: secure.example.test    # substring of the peer cert
    faults:
      - kind: kill-l7proxy | kill-active-l4lb | syncd-outage | cut-replica-link
              | config-churn | syncd-failover
        target: l7-2                    # kind-specific
        outage: 30                      # syncd-outage: seconds syncd stays down
        signal: TERM | KILL             # syncd-outage: how syncd is stopped
        host: shop.example.test         # load target (Host header)
        path: /
        duration: 5                     # seconds of load after the fault
        changes: 100                    # config-churn only
        churn_ms: 100                   # syncd-failover: a route change this often
        synced_within: 2                # syncd-failover: seconds to SYNCED on the other
        max_failed_percent: 0           # during the fault
        verify: 50                      # then N requests that must all pass
"""

import http.client
import json
import os
import re
import subprocess
import tempfile
import threading
import time

import yaml

KNOWN_KEYS = {"name", "description", "requires", "backends", "files", "objects",
              "tls_secrets", "requests", "faults"}
REQUEST_KEYS = {"host", "path", "via", "protocol", "scheme", "sni", "repeat",
                "expect", "method", "headers"}
EXPECT_KEYS = {"status", "backend", "endpoints", "http_version", "headers", "echo",
               "cert_subject"}
FAULT_KINDS = {"kill-l7proxy", "kill-active-l4lb", "syncd-outage", "cut-replica-link",
               "config-churn", "syncd-failover"}
FAULT_KEYS = {"kind", "target", "host", "path", "duration", "changes",
              "max_failed_percent", "verify", "signal", "outage", "churn_ms", "synced_within"}
SIGNALS = {"TERM", "KILL"}
CAPABILITIES = {"tls", "h2c", "h2", "proxy-protocol"}
VIAS = {"vip", "lb-a", "lb-b", "l7-1", "l7-2", "l7-3"}


class ScenarioError(Exception):
    pass


def load(path, repo_root):
    """Parses and validates one scenario file. Returns a dict; raises
    ScenarioError with "FILE: reason" on any problem."""
    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise ScenarioError(f"{path}: {e}")
    where = os.path.basename(path)

    def bad(msg):
        raise ScenarioError(f"{where}: {msg}")

    if not isinstance(doc, dict):
        bad("not a mapping")
    extra = set(doc) - KNOWN_KEYS
    if extra:
        bad(f"unknown keys {sorted(extra)}")
    if not re.fullmatch(r"[a-z0-9-]+", str(doc.get("name", ""))):
        bad("name missing or not [a-z0-9-]+")
    if not doc.get("requests") and not doc.get("faults"):
        bad("neither requests nor faults")
    for cap in doc.setdefault("requires", []):
        if cap not in CAPABILITIES:
            bad(f"unknown capability {cap!r}")
    backends = doc.setdefault("backends", {})
    if not isinstance(backends, dict):
        bad("backends must map Service name -> endpoint count")
    for svc, n in backends.items():
        if not re.fullmatch(r"[a-z0-9-]+", svc) or not isinstance(n, int) or not 1 <= n <= 16:
            bad(f"backend {svc}: want name -> 1..16 endpoints")
    objects = []
    for rel in doc.setdefault("files", []):
        full = os.path.join(repo_root, rel)
        try:
            with open(full) as f:
                objects += [o for o in yaml.safe_load_all(f) if o]
        except (OSError, yaml.YAMLError) as e:
            bad(f"file {rel}: {e}")
    if doc.get("objects"):
        try:
            objects += [o for o in yaml.safe_load_all(doc["objects"]) if o]
        except yaml.YAMLError as e:
            bad(f"objects: {e}")
    for o in objects:
        if not isinstance(o, dict) or "kind" not in o or "apiVersion" not in o:
            bad("every object needs apiVersion and kind")
    doc["object_list"] = objects
    for s in doc.setdefault("tls_secrets", []):
        if not s.get("name") or not s.get("hosts"):
            bad("tls_secrets entries need name and hosts")
        s.setdefault("namespace", "default")
    for i, r in enumerate(doc.setdefault("requests", [])):
        extra = set(r) - REQUEST_KEYS
        if extra:
            bad(f"request {i}: unknown keys {sorted(extra)}")
        if not r.get("host") or "expect" not in r:
            bad(f"request {i}: host and expect are required")
        r.setdefault("path", "/")
        r.setdefault("via", "vip")
        r.setdefault("protocol", "http1")
        r.setdefault("scheme", "https" if r["protocol"] == "h2" else "http")
        r.setdefault("repeat", 1)
        if r["via"] not in VIAS:
            bad(f"request {i}: via {r['via']!r} not in {sorted(VIAS)}")
        if r["protocol"] not in ("http1", "h2c", "h2"):
            bad(f"request {i}: protocol {r['protocol']!r}")
        extra = set(r["expect"]) - EXPECT_KEYS
        if extra:
            bad(f"request {i}: unknown expect keys {sorted(extra)}")
    for i, fl in enumerate(doc.setdefault("faults", [])):
        extra = set(fl) - FAULT_KEYS
        if extra:
            bad(f"fault {i}: unknown keys {sorted(extra)}")
        if fl.get("kind") not in FAULT_KINDS:
            bad(f"fault {i}: kind must be one of {sorted(FAULT_KINDS)}")
        fl.setdefault("host", "")
        fl.setdefault("path", "/")
        fl.setdefault("duration", 5)
        fl.setdefault("max_failed_percent", 0)
        fl.setdefault("verify", 50)
        fl.setdefault("changes", 100)
        fl.setdefault("signal", "TERM")
        if fl["signal"] not in SIGNALS:
            bad(f"fault {i}: signal must be one of {sorted(SIGNALS)}")
        if fl["kind"] == "syncd-outage":
            if not isinstance(fl.get("outage"), (int, float)) or not 0 < fl["outage"] <= 300:
                bad(f"fault {i}: syncd-outage needs outage: 0 < seconds <= 300")
        elif "outage" in fl:
            bad(f"fault {i}: outage applies to syncd-outage only")
        if fl["kind"] == "syncd-failover":
            fl.setdefault("churn_ms", 100)
            fl.setdefault("synced_within", 2)
            if not (isinstance(fl["churn_ms"], int) and 10 <= fl["churn_ms"] <= 10000):
                bad(f"fault {i}: churn_ms wants 10..10000")
            if not (isinstance(fl["synced_within"], (int, float)) and
                    0 < fl["synced_within"] <= 60):
                bad(f"fault {i}: synced_within wants 0 < seconds <= 60")
        elif "churn_ms" in fl or "synced_within" in fl:
            bad(f"fault {i}: churn_ms and synced_within apply to syncd-failover only")
    return doc


def backend_objects(backends, endpoint_addr, port, namespace="default"):
    """Service + EndpointSlice documents for `backends` (name -> count);
    endpoint_addr(service, k) gives the address of endpoint k (1-based)."""
    docs = []
    for svc, n in sorted(backends.items()):
        docs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": svc, "namespace": namespace},
                     "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port,
                                         "protocol": "TCP"}]}})
        docs.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                     "metadata": {"name": f"{svc}-e2e", "namespace": namespace,
                                  "labels": {"kubernetes.io/service-name": svc}},
                     "addressType": "IPv4",
                     "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
                     "endpoints": [{"addresses": [endpoint_addr(svc, k)],
                                    "conditions": {"ready": True}}
                                   for k in range(1, n + 1)]})
    return docs


def tls_secret_objects(secrets, workdir):
    """Generates a self-signed key + certificate per secret with openssl
    (never committed) and returns kubernetes.io/tls Secret documents."""
    import base64
    docs = []
    for s in secrets:
        key = os.path.join(workdir, f"{s['name']}.key")
        crt = os.path.join(workdir, f"{s['name']}.crt")
        san = ",".join(f"DNS:{h}" for h in s["hosts"])
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt,
                        "-days", "2", "-subj", f"/CN={s['hosts'][0]}", "-addext",
                        f"subjectAltName={san}"], check=True, capture_output=True)
        os.chmod(key, 0o600)
        with open(crt, "rb") as c, open(key, "rb") as k:
            docs.append({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                         "metadata": {"name": s["name"], "namespace": s["namespace"]},
                         "data": {"tls.crt": base64.b64encode(c.read()).decode(),
                                  "tls.key": base64.b64encode(k.read()).decode()}})
    return docs


def write_yaml_atomic(path, docs):
    """Writes docs as multi-document YAML: temp file in the same directory
    (name starting with '.'), then rename, so a watcher never sees half."""
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".part")
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump_all(docs, f, sort_keys=False)
    os.chmod(tmp, 0o600)
    os.rename(tmp, path)


class Answer:
    def __init__(self):
        self.status = 0
        self.http_version = ""
        self.headers = {}
        self.echo = {}
        self.error = ""
        self.cert_subject = ""

    @property
    def backend(self):
        return self.headers.get("x-backend", "")


def send(req, ip, port, timeout=5.0):
    """One request with curl to ip:port as described by req (a scenario
    request). Returns an Answer; never raises for network errors."""
    a = Answer()
    scheme = req.get("scheme", "http")
    proto = req.get("protocol", "http1")
    host = req["host"]
    name = req.get("sni") or host.split(":")[0]
    url = f"{scheme}://{name}:{port}{req.get('path', '/')}"
    with tempfile.TemporaryDirectory() as td:
        hdr = os.path.join(td, "h")
        body = os.path.join(td, "b")
        cmd = ["curl", "-sS", "-k", "-m", str(timeout), "-o", body, "-D", hdr,
               "-w", "%{http_code} %{http_version}",
               "--connect-to", f"{name}:{port}:{ip}:{port}", "-H", f"Host: {host}",
               "-X", req.get("method", "GET")]
        for k, v in (req.get("headers") or {}).items():
            cmd += ["-H", f"{k}: {v}"]
        if proto == "h2c":
            cmd.append("--http2-prior-knowledge")
        elif proto == "h2":
            cmd.append("--http2")
        else:
            cmd.append("--http1.1")
        cmd.append(url)
        p = subprocess.run(cmd, capture_output=True, text=True)
        out = p.stdout.split()
        if p.returncode != 0 or len(out) < 2:
            a.error = (p.stderr.strip() or f"curl exit {p.returncode}")[:200]
            return a
        a.status, a.http_version = int(out[0]), out[1]
        try:
            with open(hdr) as f:
                for line in f:
                    k, sep, v = line.partition(":")
                    if sep:
                        a.headers[k.strip().lower()] = v.strip()
            with open(body) as f:
                a.echo = json.loads(f.read() or "{}")
        except (OSError, ValueError):
            a.echo = {}
    if scheme == "https" and req["expect"].get("cert_subject"):
        p = subprocess.run(f"openssl s_client -connect {ip}:{port} -servername {name} "
                           f"</dev/null 2>/dev/null | openssl x509 -noout -subject -ext "
                           f"subjectAltName", shell=True, capture_output=True, text=True)
        a.cert_subject = p.stdout.strip()
    return a


def backend_matches(want, got):
    if want == "none":
        return got == ""
    return got == want or (got.startswith(want + "-") and got[len(want) + 1:].isdigit())


def check_answer(expect, a, subst=None):
    """Returns "" when Answer a meets expect, else the first mismatch.
    subst maps placeholders in expected echo values ("@client") to the
    runner's real values."""
    subst = subst or {}
    if a.error:
        return f"no answer: {a.error}"
    if "status" in expect and a.status != expect["status"]:
        return f"status {a.status}, want {expect['status']} (backend {a.backend or '-'})"
    if "backend" in expect and not backend_matches(expect["backend"], a.backend):
        return f"backend {a.backend or '-'}, want {expect['backend']}"
    if "http_version" in expect and a.http_version != str(expect["http_version"]):
        return f"HTTP/{a.http_version}, want HTTP/{expect['http_version']}"
    for k, v in (expect.get("headers") or {}).items():
        if str(v) not in a.headers.get(k.lower(), ""):
            return f"header {k}: {a.headers.get(k.lower(), '-')!r}, want {v!r}"
    for k, v in (expect.get("echo") or {}).items():
        v = subst.get(v, v)
        if str(v) != str(a.echo.get(k, "")):
            return f"backend saw {k}={a.echo.get(k, '-')!r}, want {v!r}"
    if "cert_subject" in expect and expect["cert_subject"] not in a.cert_subject:
        return f"certificate {a.cert_subject!r}, want {expect['cert_subject']!r}"
    return ""


class Load:
    """Background HTTP/1.1 load: `threads` clients, each opening a new
    connection per request (so the L4 tier spreads them) at most `rate`
    requests per second each. A request fails on any error or a status
    other than 200. Counts are read after stop()."""

    def __init__(self, ip, port, host, path="/", threads=2, rate=40, timeout=3.0):
        self.ip, self.port, self.host, self.path = ip, port, host, path
        self.threads, self.rate, self.timeout = threads, rate, timeout
        self.sent = 0
        self.failed = 0
        self.errors = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers = []

    def _run(self):
        gap = 1.0 / self.rate
        while not self._stop.is_set():
            t0 = time.monotonic()
            err = ""
            try:
                c = http.client.HTTPConnection(self.ip, self.port, timeout=self.timeout)
                c.request("GET", self.path, headers={"Host": self.host})
                r = c.getresponse()
                r.read()
                if r.status != 200:
                    err = f"status {r.status}"
                c.close()
            except (OSError, http.client.HTTPException) as e:
                err = type(e).__name__
            with self._lock:
                self.sent += 1
                if err:
                    self.failed += 1
                    self.errors[err] = self.errors.get(err, 0) + 1
            left = gap - (time.monotonic() - t0)
            if left > 0:
                self._stop.wait(left)

    def start(self):
        for _ in range(self.threads):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in self._workers:
            t.join(self.timeout + 2)
        return self

    def summary(self):
        errs = ", ".join(f"{k}×{v}" for k, v in sorted(self.errors.items()))
        return f"sent={self.sent} failed={self.failed}" + (f" ({errs})" if errs else "")
