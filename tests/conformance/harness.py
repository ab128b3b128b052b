"""The conformance runner's harness: the edge under test (syncd, one
l7proxy, echo backends, optionally the API server stand-in) inside a
private network namespace, so the Gateway listens on 127.0.0.1:80 and :443
exactly as a Gateway address does in upstream's suite (redirect ports and
Host headers are then the real thing).

What a case sees (class Edge):
  apply(yaml_text) / delete()     the case's manifests, through the
                                  directory source (files syncd watches) or
                                  the API server stand-in (list/watch);
  status(kind, ns, name)          the object's status as Kubernetes shows it
                                  (written back by syncd in kubernetes mode;
                                  from `syncctl status --json` in dir mode,
                                  where nothing is written back);
  http(...) / grpc(...)           requests through the l7proxy.

Processes are started here and stopped by PID; every wait polls with a
deadline (nothing sleeps to wait for a condition).
"""
import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request

import yaml

GW_GROUP = "gateway.networking.k8s.io"
INFRA = "gateway-conformance-infra"
APP = "gateway-conformance-app-backend"
WEB = "gateway-conformance-web-backend"
CONTROLLER = "edge.dev/gateway-controller"

# Services of the base manifests and their pods: name → (namespace, pods, ports, kind).
# One pod per Deployment (upstream runs two replicas; which pod answers is not checked,
# only the name prefix).
SERVICES = {
    ("infra-backend-v1", INFRA): {"ports": [("first-port", 8080, None), ("second-port", 8081,
                                            "kubernetes.io/h2c"), ("third-port", 8082,
                                                                   "kubernetes.io/ws")]},
    ("infra-backend-v2", INFRA): {"ports": [(None, 8080, None)]},
    ("infra-backend-v3", INFRA): {"ports": [(None, 8080, None)]},
    ("app-backend-v1", APP): {"ports": [(None, 8080, None)]},
    ("app-backend-v2", APP): {"ports": [(None, 8080, None)]},
    ("web-backend", WEB): {"ports": [(None, 8080, None)]},
    ("tls-backend", INFRA): {"ports": [(None, 443, None)], "tls": True},
    ("tls-backend", APP): {"ports": [(None, 443, None)], "tls": True},
    ("grpc-infra-backend-v1", INFRA): {"ports": [(None, 8080, "kubernetes.io/h2c")], "grpc": True},
    ("grpc-infra-backend-v2", INFRA): {"ports": [(None, 8080, "kubernetes.io/h2c")], "grpc": True},
    ("grpc-infra-backend-v3", INFRA): {"ports": [(None, 8080, "kubernetes.io/h2c")], "grpc": True},
}


class Failure(Exception):
    """A case's expectation did not hold (the message says what and what was seen)."""


class Skip(Exception):
    """The case needs a feature the runner does not claim (named in the report)."""


def poll(cond, timeout, what):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = cond()
        except (OSError, ValueError, KeyError) as e:
            last = None
            err = e
        if last:
            return last
        time.sleep(0.1)
    raise Failure("timed out after %.0fs waiting for %s" % (timeout, what))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def make_cert(tmp, name, hosts):
    crt, key = os.path.join(tmp, name + ".crt"), os.path.join(tmp, name + ".key")
    san = ",".join("DNS:" + h for h in hosts)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", crt, "-days", "2", "-subj", "/CN=" + hosts[0],
                    "-addext", "subjectAltName=" + san], check=True, capture_output=True)
    return crt, key


def tls_secret(name, ns, crt, key):
    with open(crt, "rb") as c, open(key, "rb") as k:
        return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"name": name, "namespace": ns},
                "data": {"tls.crt": base64.b64encode(c.read()).decode(),
                         "tls.key": base64.b64encode(k.read()).decode()}}


class Edge:
    def __init__(self, bins, source, workdir, log):
        self.bins, self.source, self.tmp, self.log = bins, source, workdir, log
        self.procs = []
        self.applied = []  # (kind, ns, name) of the current case
        self.case_files = []
        self.pods = {}  # (service, ns) → [(pod, addr, port)]

    # ---- processes ----------------------------------------------------------------

    def _start(self, argv, name, ready=None):
        out = open(os.path.join(self.tmp, name + ".log"), "w")
        p = subprocess.Popen(argv, stdout=subprocess.PIPE if ready is not None else out,
                             stderr=out, text=True)
        self.procs.append((p, out))
        if ready is not None:
            line = p.stdout.readline().strip()
            if not line.startswith(ready):
                raise RuntimeError("%s did not start: %r (see %s.log)" % (name, line, name))
            return p, line
        return p, None

    def start(self):
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        crt, key = make_cert(self.tmp, "tls-backend", ["abc.example.com", "*.example.com"])
        self.backend_cert = (crt, key)
        echo, grpc = [], []
        n = 0
        for (svc, ns), spec in SERVICES.items():
            n += 1
            addr = "127.0.%d.%d" % (10 + n // 200, n % 200 + 1)
            pod = "%s-%s" % (svc, "0")
            self.pods[(svc, ns)] = [(pod, addr, 3000)]
            if spec.get("grpc"):
                grpc.append("%s=%s=%s:3000" % (pod, ns, addr))
            elif spec.get("tls"):
                echo.append("%s=%s=%s:3000=tls:%s:%s" % (pod, ns, addr, crt, key))
            else:
                echo.append("%s=%s=%s:3000" % (pod, ns, addr))
        self.echo_log = os.path.join(self.tmp, "echo-requests.jsonl")
        os.environ["ECHO_LOG"] = self.echo_log
        self._start(["python3", self.bins["echo"]] + echo, "echo", ready="READY")
        self._start([self.bins["grpc_echo"]] + grpc, "grpc-echo", ready="READY")
        self.grpc_port = free_port()
        syncd = [self.bins["syncd"], "--insecure", "--listen=127.0.0.1:%d" % self.grpc_port,
                 "--admin=127.0.0.1:0", "--debounce=20ms", "--max-delay=200ms",
                 "--publish-address=127.0.0.1", "--gateway-http-ports=80",
                 "--gateway-https-ports=443"]
        if self.source == "kubernetes":
            _, line = self._start(["python3", self.bins["fake_apiserver"]], "apiserver",
                                  ready="")
            self.api = "http://127.0.0.1:%s" % line
            kc = os.path.join(self.tmp, "kubeconfig")
            with open(kc, "w") as f:
                f.write("apiVersion: v1\nkind: Config\ncurrent-context: t\n"
                        "clusters: [{name: c, cluster: {server: '%s'}}]\n"
                        "users: [{name: u, user: {token: t}}]\n"
                        "contexts: [{name: t, context: {cluster: c, user: u}}]\n" % self.api)
            syncd += ["--source=kubernetes", "--kubeconfig=" + kc]
        else:
            self.dir = os.path.join(self.tmp, "manifests")
            os.makedirs(self.dir)
            syncd += ["--source=dir:" + self.dir]
        self._start(syncd, "syncd")
        self._start([self.bins["l7proxy"], "--syncd=127.0.0.1:%d" % self.grpc_port, "--insecure",
                     "--node-id=conformance", "--http=127.0.0.1:80", "--https=127.0.0.1:443",
                     "--admin=127.0.0.1:0", "--workers=1"], "l7proxy")
        self.apply(self.base_manifests(), base=True)
        poll(lambda: self.listening(80), 30, "the l7proxy listening on :80")

    SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

    def stop(self):
        """Stops every process; returns the sanitizer reports in their logs (a build with
        --config=asan), one "name: first line" each."""
        for p, out in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            out.close()
        found = []
        for _, out in self.procs:
            try:
                with open(out.name, errors="replace") as f:
                    for line in f:
                        if any(m in line for m in self.SANITIZER_MARKS):
                            found.append("%s: %s" % (os.path.basename(out.name), line.strip()))
                            break
            except OSError:
                pass
        return found

    @staticmethod
    def listening(port):
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return True
        except OSError:
            return False

    # ---- manifests ------------------------------------------------------------------

    def base_manifests(self):
        docs = [{"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": INFRA, "labels": {"gateway-conformance": "infra"}}},
                {"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": APP, "labels": {"gateway-conformance": "backend"}}},
                {"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": WEB, "labels": {"gateway-conformance": "backend"}}},
                {"apiVersion": GW_GROUP + "/v1", "kind": "GatewayClass",
                 "metadata": {"name": "edge"}, "spec": {"controllerName": CONTROLLER}}]
        with open(os.path.join(os.path.dirname(__file__), "manifests", "base.yaml")) as f:
            docs += [d for d in yaml.safe_load_all(f.read().replace(
                "{GATEWAY_CLASS_NAME}", "edge")) if d]
        for (svc, ns), spec in SERVICES.items():
            ports = []
            for pname, port, app in spec["ports"]:
                p = {"port": port, "targetPort": 3000, "protocol": "TCP"}
                if pname:
                    p["name"] = pname
                if app:
                    p["appProtocol"] = app
                ports.append(p)
            docs.append({"apiVersion": "v1", "kind": "Service",
                         "metadata": {"name": svc, "namespace": ns},
                         "spec": {"selector": {"app": svc}, "ports": ports}})
            docs.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                         "metadata": {"name": svc + "-slice", "namespace": ns,
                                      "labels": {"kubernetes.io/service-name": svc}},
                         "addressType": "IPv4",
                         "ports": [{"name": p.get("name", ""), "port": 3000, "protocol": "TCP"}
                                   for p in ports],
                         "endpoints": [{"addresses": [addr], "conditions": {"ready": True},
                                        "targetRef": {"kind": "Pod", "name": pod,
                                                      "namespace": ns}}
                                       for pod, addr, _ in self.pods[(svc, ns)]]})
        crt, key = make_cert(self.tmp, "gateway", ["*.example.com", "example.com",
                                                     "second-example.org", "abc.example.com"])
        docs.append(tls_secret("tls-validity-checks-certificate", INFRA, crt, key))
        docs.append(tls_secret("tls-checks-certificate", INFRA, crt, key))
        self.gateway_cert = crt
        return docs

    def apply(self, docs, base=False, keep=False):
        """Applies manifests. A case's objects are deleted after it (delete_case); keep=True
        (k8s mode) leaves them, for changes to base objects such as the GatewayClass; in dir mode
        the case's file is removed and the base file's version counts again."""
        if isinstance(docs, dict):
            docs = [docs]
        if isinstance(docs, str):
            docs = [d for d in yaml.safe_load_all(docs.replace("{GATEWAY_CLASS_NAME}", "edge"))
                    if d]
        for d in docs:
            md = d.setdefault("metadata", {})
            if d["kind"] not in ("Namespace", "GatewayClass"):
                md.setdefault("namespace", "default")
            if not base and not keep:
                self.applied.append((d["kind"], md.get("namespace", ""), md["name"]))
        if self.source == "kubernetes":
            self._api("/_test/apply", {"objects": docs})
        else:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            for d in docs:  # the API server would set these; the directory has no server
                d["metadata"].setdefault("creationTimestamp", stamp)
                d["metadata"].setdefault("generation", 1)
            name = "base.yaml" if base else "case-%d.yaml" % len(self.case_files)
            path = os.path.join(self.dir, name)
            with open(path + ".tmp", "w") as f:
                yaml.safe_dump_all(docs, f)
            os.rename(path + ".tmp", path)
            if not base:
                self.case_files.append(path)

    def delete_case(self):
        if self.source == "kubernetes":
            for kind, ns, name in self.applied:
                try:
                    self._api("/_test/delete", {"kind": kind, "namespace": ns, "name": name})
                except OSError:
                    pass
        else:
            for p in self.case_files:
                os.unlink(p)
        self.applied, self.case_files = [], []

    def _api(self, path, body=None):
        req = urllib.request.Request(self.api + path, data=json.dumps(body).encode()
                                     if body is not None else None,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    # ---- status -------------------------------------------------------------------------

    def syncctl(self, *args):
        return subprocess.run([self.bins["syncctl"], "--syncd=127.0.0.1:%d" % self.grpc_port,
                               "--insecure"] + list(args), capture_output=True, text=True,
                              timeout=20)

    def status(self, kind, ns, name):
        """The object's status in Kubernetes' shape, or None when syncd has none for it."""
        if self.source == "kubernetes":
            paths = {"Gateway": "gateways", "GatewayClass": "gatewayclasses",
                     "HTTPRoute": "httproutes", "GRPCRoute": "grpcroutes",
                     "TLSRoute": "tlsroutes"}
            ver = "v1alpha2" if kind == "TLSRoute" else "v1"
            lst = self._api("/apis/%s/%s/%s" % (GW_GROUP, ver, paths[kind]))
            for it in lst["items"]:
                md = it["metadata"]
                if md["name"] == name and md.get("namespace", "") == ns:
                    return it.get("status")
            return None
        out = self.syncctl("status", "--json")
        if out.returncode != 0:
            return None
        for o in json.loads(out.stdout).get("gateway", []):
            if (o["kind"], o["namespace"], o["name"]) != (kind, ns, name):
                continue
            conds = lambda cs, g: [dict(c, observedGeneration=g) for c in cs]  # noqa: E731
            st = {"conditions": conds(o["conditions"], o["generation"])}
            if kind == "Gateway":
                st["addresses"] = [{"value": a} for a in o.get("addresses", [])]
                st["listeners"] = [{"name": l["name"], "attachedRoutes": l["attached_routes"],
                                    "supportedKinds": [{"group": GW_GROUP, "kind": k}
                                                       for k in l["supported_kinds"]],
                                    "conditions": conds(l["conditions"], o["generation"])}
                                   for l in o.get("listeners", [])]
            if "parents" in o:
                st["parents"] = [{"parentRef": {"namespace": p["gateway_namespace"],
                                                "name": p["gateway_name"],
                                                **({"sectionName": p["section_name"]}
                                                   if p["section_name"] else {})},
                                  "controllerName": CONTROLLER,
                                  "conditions": conds(p["conditions"], o["generation"])}
                                 for p in o["parents"]]
            return st
        return None

    def version(self):
        out = self.syncctl("status", "--json")
        return json.loads(out.stdout)["version"] if out.returncode == 0 else None

    def echo_log_size(self):
        try:
            return os.path.getsize(self.echo_log)
        except OSError:
            return 0

    def echo_requests(self, offset=0):
        """Requests the echo backends logged after byte offset (mirror checks)."""
        try:
            with open(self.echo_log) as f:
                f.seek(offset)
                return [json.loads(l) for l in f.read().splitlines() if l.strip()]
        except (OSError, ValueError):
            return []

    # ---- requests ---------------------------------------------------------------------

    def http(self, host, path, method="GET", headers=None, https=False, sni=None, timeout=5):
        """One request through the proxy (no redirect following). Returns (status, headers
        {lower name: [values]}, body bytes)."""
        port = 443 if https else 80
        sock = socket.create_connection(("127.0.0.1", port), timeout)
        try:
            if https:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                sock = ctx.wrap_socket(sock, server_hostname=sni or host.split(":")[0])
            hdrs = {"Host": host, "Connection": "close", "User-Agent": "edge-conformance"}
            for k, v in (headers or {}).items():
                hdrs[k] = v
            req = "%s %s HTTP/1.1\r\n" % (method, path)
            req += "".join("%s: %s\r\n" % kv for kv in hdrs.items()) + "\r\n"
            sock.sendall(req.encode())
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            sock.close()
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if not lines or len(lines[0].split()) < 2:
            raise Failure("no HTTP response (got %r)" % data[:80])
        status = int(lines[0].split()[1])
        out = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            out.setdefault(k.strip().lower(), []).append(v.strip())
        if "chunked" in ",".join(out.get("transfer-encoding", [])):
            body = dechunk(body)
        return status, out, body

    def grpc(self, host, method_path, metadata=None, timeout=5):
        """A unary gRPC call (empty request message) over h2c via curl. Returns (http status,
        grpc-status or None, decoded echo JSON or None)."""
        args = ["curl", "-sS", "--http2-prior-knowledge", "-m", str(timeout), "-D", "-",
                "-o", os.path.join(self.tmp, "grpc.out"), "-X", "POST",
                "-H", "content-type: application/grpc", "-H", "te: trailers",
                "-H", "host: " + host, "--data-binary", "@" + os.path.join(self.tmp, "empty.grpc"),
                "http://127.0.0.1:80" + method_path]
        for k, v in (metadata or {}).items():
            args += ["-H", "%s: %s" % (k, v)]
        with open(os.path.join(self.tmp, "empty.grpc"), "wb") as f:
            f.write(b"\x00\x00\x00\x00\x00")
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout + 5)
        if r.returncode != 0:
            raise Failure("curl: %s" % r.stderr.strip())
        status, grpc_status = None, None
        for line in r.stdout.splitlines():
            if line.startswith("HTTP/2"):
                status = int(line.split()[1])
            elif line.lower().startswith("grpc-status:"):
                grpc_status = int(line.split(":", 1)[1])
        with open(os.path.join(self.tmp, "grpc.out"), "rb") as f:
            data = f.read()
        echo = None
        if len(data) > 7 and data[5] == 0x0a:
            n, i, shift = 0, 6, 0
            while True:
                b = data[i]
                n |= (b & 0x7f) << shift
                i += 1
                shift += 7
                if not b & 0x80:
                    break
            echo = json.loads(data[i:i + n])
        return status, grpc_status, echo


def dechunk(body):
    out = b""
    while body:
        size, _, rest = body.partition(b"\r\n")
        n = int(size.split(b";")[0] or b"0", 16)
        if n == 0:
            break
        out += rest[:n]
        body = rest[n + 2:]
    return out
