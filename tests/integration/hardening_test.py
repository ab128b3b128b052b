#!/usr/bin/env python3
"""Issue 15 attacks against real processes: syncd, l7proxy, l4lb, syncctl
and a test backend on 127.0.0.1, each test named for the attack it replays.

Usage: hardening_test.py SYNCD SYNCCTL L7PROXY L4LB BACKEND_SCRIPT PKI_SH [unittest args]

  - tenant input reaching the wire: an Ingress whose edge.dev/rewrite-target
    carries CR/LF must not reach the backend (syncd rejects it; a proxy
    given the value directly refuses it too);
  - one tenant's Secret: a certificate OpenSSL refuses costs only its own
    host (default certificate), never the push or the other hosts' TLS;
  - impersonation: certificates bind node id and role (spiffe://edge/ROLE/NAME);
    another node's id, an l4lb certificate on ConfigSync or a proxy
    certificate on Membership is refused and shows in syncctl status and
    the metrics; --insecure only on loopback;
  - persistence: a missing --state-dir/--cache-dir is created 0700, an
    unusable one refuses start; a restart from an unchanged source keeps
    its version and default certificate;
  - --proxy-protocol without trusted peers refuses to start.

Every wait polls with a deadline; nothing asserts on timing. Processes are
started here and killed by PID.
"""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import skip_policy  # noqa: E402

SYNCD = SYNCCTL = L7PROXY = L4LB = BACKEND = PKI = None
DEADLINE_S = 30


def poll(cond, timeout=DEADLINE_S, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(url, headers=None, timeout=5):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except OSError:
        return 0, ""


class Proc:
    def __init__(self, tmp, name, argv):
        self.log_path = os.path.join(tmp, name + ".log")
        self.log = open(self.log_path, "a+")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log)

    def text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait()
        self.log.close()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


SERVICE = """apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  clusterIP: 127.0.0.1
  ports: [{{name: http, port: {port}}}]
---
"""

INGRESS = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: default
  annotations: {annotations}
spec:
  ingressClassName: edge
{tls}  rules:
  - host: {host}
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: {svc}, port: {{number: {port}}}}}}}}}
---
"""

CLASS = """apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: edge}
spec: {controller: edge.dev/ingress-controller}
---
"""


def tls_secret(name, crt, key):
    import base64
    b = lambda p: base64.b64encode(open(p, "rb").read()).decode()
    return ("apiVersion: v1\nkind: Secret\ntype: kubernetes.io/tls\n"
            "metadata: {name: %s, namespace: default}\ndata:\n  tls.crt: %s\n  tls.key: %s\n---\n"
            % (name, b(crt), b(key)))


def openssl_cert(tmp, name, host, key_spec):
    """A self-signed certificate for host: key_spec 'ec' or 'rsa:1024'."""
    crt, key = os.path.join(tmp, name + ".crt"), os.path.join(tmp, name + ".key")
    newkey = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key_spec == "ec"
              else ["-newkey", key_spec])
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-days", "2", "-subj", "/CN=" + host,
                    "-addext", "subjectAltName=DNS:" + host, "-keyout", key, "-out", crt]
                   + newkey, check=True, capture_output=True)
    return crt, key


def peer_cert_der(port, sni):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname=sni) as t:
            return t.getpeercert(binary_form=True)


def pem_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hardening-")
        self.procs = []
        self.src = os.path.join(self.tmp, "src")
        os.makedirs(self.src)

    def tearDown(self):
        for p in reversed(self.procs):
            p.kill()
        if os.environ.get("KEEP_TMP"):
            print("kept", self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def spawn(self, name, argv):
        p = Proc(self.tmp, name, argv)
        self.procs.append(p)
        return p

    def backend(self, name):
        portfile = os.path.join(self.tmp, "port-" + name)
        self.spawn("backend-" + name, [sys.executable, BACKEND, name, portfile])
        poll(lambda: os.path.exists(portfile) and open(portfile).read().strip(),
             what="backend " + name)
        return int(open(portfile).read())

    def syncd(self, *extra, state=None, name="syncd"):
        port, admin = free_port(), free_port()
        argv = [SYNCD, "--source=dir:" + self.src, "--listen=127.0.0.1:%d" % port,
                "--admin=127.0.0.1:%d" % admin, "--debounce=50ms", "--max-delay=200ms"]
        if state:
            argv.append("--state-dir=" + state)
        p = self.spawn(name, argv + list(extra))
        p.port, p.admin = port, admin
        poll(lambda: http_get("http://127.0.0.1:%d/readyz" % admin)[0] == 200 or
             p.proc.poll() is not None, what="syncd ready")
        self.assertIsNone(p.proc.poll(), "syncd exited: " + p.text()[-600:])
        return p

    def l7proxy(self, name, *extra):
        http, admin = free_port(), free_port()
        p = self.spawn(name, [L7PROXY, "--http=127.0.0.1:%d" % http,
                              "--admin=127.0.0.1:%d" % admin, "--workers=1"] + list(extra))
        p.http, p.admin = http, admin
        return p

    def status(self, syncd, *tls):
        args = list(tls) or ["--insecure"]
        r = subprocess.run([SYNCCTL, "--syncd=127.0.0.1:%d" % syncd.port] + args +
                           ["status", "--json"], capture_output=True, text=True, timeout=20)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def node(self, syncd, node_id, *tls):
        st = self.status(syncd, *tls)
        for n in (st or {}).get("nodes", []):
            if n["node_id"] == node_id:
                return n
        return None


class TenantInput(Base):
    ATTACK = "/x HTTP/1.1\\r\\nX-Injected: yes\\r\\nX-Pad: a"

    def test_attack_rewrite_target_crlf_never_reaches_the_backend(self):
        port = self.backend("b1")
        write(os.path.join(self.src, "a.yaml"), CLASS + SERVICE.format(name="svc", port=port) +
              INGRESS.format(name="evil", annotations='{edge.dev/rewrite-target: "%s"}'
                             % self.ATTACK, tls="", host="evil.test", svc="svc", port=port) +
              INGRESS.format(name="good", annotations="{edge.dev/rewrite-target: /v2}", tls="",
                             host="good.test", svc="svc", port=port))
        sd = self.syncd("--insecure")
        px = self.l7proxy("l7", "--syncd=127.0.0.1:%d" % sd.port, "--insecure", "--node-id=l7")
        poll(lambda: (self.node(sd, "l7") or {}).get("state") == "SYNCED", what="proxy synced")
        # the tenant next door is served, with its (valid) rewrite
        code, body = http_get("http://127.0.0.1:%d/app" % px.http, {"Host": "good.test"})
        self.assertEqual(code, 200, body)
        self.assertEqual(json.loads(body)["path"], "/v2/app")
        # the attacker's host is not routed at all, and nothing was injected
        code, body = http_get("http://127.0.0.1:%d/" % px.http, {"Host": "evil.test"})
        self.assertNotEqual(code, 200)
        self.assertNotIn("x-injected", body.lower())
        st = self.status(sd)
        rej = [r for r in st["rejected"] if r["name"] == "evil"]
        self.assertEqual(len(rej), 1, st["rejected"])
        self.assertIn("edge.dev/rewrite-target", rej[0]["reason"])
        self.assertNotIn("\r", rej[0]["reason"])
        self.assertNotIn("\n", rej[0]["reason"])
        # and syncctl's table shows it on one line
        r = subprocess.run([SYNCCTL, "--syncd=127.0.0.1:%d" % sd.port, "--insecure", "status"],
                           capture_output=True, text=True, timeout=20)
        line = [ln for ln in r.stdout.splitlines() if "default/evil" in ln]
        self.assertEqual(len(line), 1, r.stdout)

    def test_attack_proxy_refuses_a_crlf_rewrite_it_is_given_directly(self):
        port = self.backend("b1")

        def config(rewrite):
            return {"version": 1, "resources": [
                {"cluster": {"name": "c", "endpoints": [
                    {"address": "127.0.0.1", "port": port, "ready": True}]}},
                {"virtual_host": {"name": "vh:a", "host": "a.test", "routes": [
                    {"path": "/", "path_type": "PATH_TYPE_PREFIX", "cluster": "c",
                     "options": {"rewrite_prefix": rewrite}}]}}]}
        cfg = os.path.join(self.tmp, "edge.json")
        write(cfg, json.dumps(config("/ok")))
        px = self.l7proxy("l7", "--config=" + cfg)
        poll(lambda: http_get("http://127.0.0.1:%d/readyz" % px.admin)[0] == 200, what="ready")
        write(cfg, json.dumps(config("/x HTTP/1.1\r\nX-Injected: yes\r\nX-Pad: a")))
        px.proc.send_signal(signal.SIGHUP)
        poll(lambda: "msg=config_rejected" in px.text(), what="reload rejected")
        self.assertIn("rewrite_prefix", px.text())
        code, body = http_get("http://127.0.0.1:%d/z" % px.http, {"Host": "a.test"})
        self.assertEqual(code, 200)
        self.assertEqual(json.loads(body)["path"], "/ok/z")  # the last good state
        self.assertNotIn("x-injected", body.lower())
        # a proxy started with such a file refuses to start
        bad = self.l7proxy("l7-bad", "--config=" + cfg)
        self.assertNotEqual(bad.proc.wait(timeout=DEADLINE_S), 0)


class Certificates(Base):
    def setUp(self):
        super().setUp()
        self.good = openssl_cert(self.tmp, "good", "good.test", "ec")
        self.weak = openssl_cert(self.tmp, "weak", "weak.test", "rsa:1024")

    def test_attack_a_secret_openssl_refuses_costs_only_its_own_host(self):
        port = self.backend("b1")
        tls = lambda s, h: "  tls: [{hosts: [%s], secretName: %s}]\n" % (h, s)
        write(os.path.join(self.src, "a.yaml"), CLASS + SERVICE.format(name="svc", port=port) +
              tls_secret("good", *self.good) + tls_secret("weak", *self.weak) +
              INGRESS.format(name="good", annotations="{}", tls=tls("good", "good.test"),
                             host="good.test", svc="svc", port=port) +
              INGRESS.format(name="weak", annotations="{}", tls=tls("weak", "weak.test"),
                             host="weak.test", svc="svc", port=port))
        sd = self.syncd("--insecure")
        https = free_port()
        px = self.l7proxy("l7", "--syncd=127.0.0.1:%d" % sd.port, "--insecure", "--node-id=l7",
                          "--https=127.0.0.1:%d" % https)
        poll(lambda: (self.node(sd, "l7") or {}).get("state") == "SYNCED", what="proxy synced")
        poll(lambda: http_get("http://127.0.0.1:%d/readyz" % px.admin)[0] == 200, what="ready")
        # everyone else keeps TLS with their own certificate
        self.assertEqual(peer_cert_der(https, "good.test"), pem_der(self.good[0]))
        # the weak host is served with the default certificate
        self.assertNotEqual(peer_cert_der(https, "weak.test"), pem_der(self.weak[0]))
        st = self.status(sd)
        rej = [r for r in st["rejected"] if r["name"] == "weak"]
        self.assertTrue(rej and "refused" in rej[0]["reason"], st["rejected"])

    def test_a_proxy_that_refuses_a_certificate_reports_it_and_serves_the_rest(self):
        import base64
        port = self.backend("b1")
        pem = lambda p: open(p).read()
        cert = lambda name, c, host: {"certificate": {
            "name": name, "sni_names": [host], "cert_pem": pem(c[0]), "key_pem": pem(c[1])}}
        vh = lambda name, host, c: {"virtual_host": {
            "name": name, "host": host, "certificate": c, "routes": [
                {"path": "/", "path_type": "PATH_TYPE_PREFIX", "cluster": "c"}]}}
        cfg = os.path.join(self.tmp, "edge.json")
        write(cfg, json.dumps({"version": 1, "resources": [
            {"cluster": {"name": "c", "endpoints": [
                {"address": "127.0.0.1", "port": port, "ready": True}]}},
            cert("default/good", self.good, "good.test"),
            cert("default/weak", self.weak, "weak.test"),
            vh("vh:good", "good.test", "default/good"),
            vh("vh:weak", "weak.test", "default/weak")]}))
        https = free_port()
        px = self.l7proxy("l7", "--config=" + cfg, "--https=127.0.0.1:%d" % https)
        poll(lambda: http_get("http://127.0.0.1:%d/readyz" % px.admin)[0] == 200,
             what="ready (a TLS store despite the refused certificate)")
        self.assertEqual(peer_cert_der(https, "good.test"), pem_der(self.good[0]))
        code, body = http_get("http://127.0.0.1:%d/config" % px.admin)
        problems = json.loads(body)["certificate_problems"]
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("default/weak", problems[0])
        self.assertIn("refused", problems[0])
        self.assertNotIn("PRIVATE", body)
        self.assertIn("msg=tls_certificate_unusable", px.text())
        code, body = http_get("http://127.0.0.1:%d/metrics" % px.admin)
        self.assertRegex(body, r"edge_l7_tls_certificates_refused 1\b")


class Identity(Base):
    def setUp(self):
        super().setUp()
        self.pki = os.path.join(self.tmp, "pki")
        subprocess.run([PKI, self.pki, "--node=l7proxy/l7-a", "--node=l7proxy/l7-b",
                        "--node=l4lb/l4-1", "--node=syncctl/ops", "--node=l7proxy/*"],
                       check=True, capture_output=True)
        port = self.backend("b1")
        write(os.path.join(self.src, "a.yaml"), CLASS + SERVICE.format(name="svc", port=port) +
              INGRESS.format(name="a", annotations="{}", tls="", host="a.test", svc="svc",
                             port=port))
        self.sd = self.syncd("--cert=%s/syncd.crt" % self.pki, "--key=%s/syncd.key" % self.pki,
                             "--ca=%s/ca.crt" % self.pki)

    def tls(self, who):
        return ["--cert=%s/%s.crt" % (self.pki, who), "--key=%s/%s.key" % (self.pki, who),
                "--ca=%s/ca.crt" % self.pki]

    def ops_status(self):
        return self.status(self.sd, *self.tls("syncctl-ops"))

    def refusals(self, method):
        return [r for r in (self.ops_status() or {}).get("refusals", []) if r["method"] == method]

    def metric(self, labels):
        body = http_get("http://127.0.0.1:%d/metrics" % self.sd.admin)[1]
        m = re.search(r"^edge_syncd_refusals_total\{%s\} (\d+)" % re.escape(labels), body, re.M)
        return int(m.group(1)) if m else 0

    def proxy(self, name, node_id, cert):
        return self.l7proxy(name, "--syncd=127.0.0.1:%d" % self.sd.port, "--node-id=" + node_id,
                            *self.tls(cert))

    def synced(self, node_id):
        n = self.node(self.sd, node_id, *self.tls("syncctl-ops"))
        return n and n["state"] == "SYNCED" and n

    def test_attack_l4lb_certificate_cannot_open_configsync_and_get_keys(self):
        px = self.proxy("l7", "l4-1", "l4lb-l4-1")
        poll(lambda: self.refusals("ConfigSync"), what="refusal in syncctl status")
        r = self.refusals("ConfigSync")[0]
        self.assertIn("for role l4lb, not l7proxy", r["reason"])
        self.assertEqual(r["identity"], "spiffe://edge/l4lb/l4-1")
        self.assertGreaterEqual(self.metric('method="ConfigSync",reason="wrong_role"'), 1)
        self.assertIsNone(self.node(self.sd, "l4-1", *self.tls("syncctl-ops")))
        self.assertNotEqual(http_get("http://127.0.0.1:%d/readyz" % px.admin)[0], 200)
        self.assertIn("msg=stream_refused", self.sd.text())

    def test_every_syncd_replica_checks_identities_and_syncctl_shows_refusals_of_each(self):
        """Several syncd replicas (issue 18's HA): each checks identities
        itself, a proxy given the list keeps its identity on whichever it
        uses, and syncctl over both lists a refusal that happened on the
        replica that is not its primary."""
        sd_b = self.syncd("--cert=%s/syncd.crt" % self.pki, "--key=%s/syncd.key" % self.pki,
                          "--ca=%s/ca.crt" % self.pki, name="syncd-b")
        both = "127.0.0.1:%d,127.0.0.1:%d" % (self.sd.port, sd_b.port)
        self.l7proxy("l4-on-b", "--syncd=127.0.0.1:%d" % sd_b.port, "--node-id=l4-1",
                     *self.tls("l4lb-l4-1"))
        self.l7proxy("l7-a", "--syncd=" + both, "--node-id=l7-a", *self.tls("l7proxy-l7-a"))

        def merged():
            r = subprocess.run([SYNCCTL, "--syncd=" + both] + self.tls("syncctl-ops") +
                               ["status", "--json"], capture_output=True, text=True, timeout=20)
            st = json.loads(r.stdout) if r.returncode == 0 else None
            ok = st and any(f["method"] == "ConfigSync" for f in st.get("refusals", [])) and \
                any(n["node_id"] == "l7-a" and n["state"] == "SYNCED" for n in st["nodes"])
            return st if ok else None
        st = poll(merged, what="l7-a synced and replica b's refusal in the merged status")
        r = [f for f in st["refusals"] if f["method"] == "ConfigSync"][0]
        self.assertIn("for role l4lb, not l7proxy", r["reason"])
        self.assertEqual(r["identity"], "spiffe://edge/l4lb/l4-1")
        self.assertFalse(any(n["node_id"] == "l4-1" for n in st["nodes"]))
        self.assertIn("msg=stream_refused", sd_b.text())

    def test_attack_hello_with_another_nodes_id_is_refused_and_evicts_nobody(self):
        self.proxy("l7-a", "l7-a", "l7proxy-l7-a")
        before = poll(lambda: self.synced("l7-a"), what="l7-a synced")
        self.proxy("thief", "l7-a", "l7proxy-l7-b")  # l7-b's certificate, l7-a's name
        poll(lambda: self.refusals("ConfigSync"), what="refusal")
        r = self.refusals("ConfigSync")[0]
        self.assertIn("for l7proxy l7-b, not l7-a", r["reason"])
        self.assertGreaterEqual(self.metric('method="ConfigSync",reason="wrong_node"'), 1)
        # the real l7-a was never replaced: same stream, still synced
        after = self.synced("l7-a")
        self.assertTrue(after)
        self.assertEqual(after["connected_since"], before["connected_since"])
        # the text table lists the refusal
        out = subprocess.run([SYNCCTL, "--syncd=127.0.0.1:%d" % self.sd.port]
                             + self.tls("syncctl-ops") + ["status"],
                             capture_output=True, text=True, timeout=20).stdout
        self.assertIn("REFUSED", out)
        self.assertIn("not l7-a", out)

    def test_attack_proxy_certificate_cannot_watch_membership_but_the_l4lb_can(self):
        self.proxy("l7-a", "l7-a", "l7proxy-l7-a")
        poll(lambda: self.synced("l7-a"), what="l7-a synced")
        lport = free_port()
        bad = self.spawn("l4-bad", [L4LB, "--listen=127.0.0.1:%d" % free_port(),
                                    "--syncd=127.0.0.1:%d" % self.sd.port, "--node-id=l7-a",
                                    "--workers=1"] + self.tls("l7proxy-l7-a"))
        poll(lambda: self.refusals("Membership"), what="membership refusal")
        self.assertIn("for role l7proxy, not l4lb", self.refusals("Membership")[0]["reason"])
        admin = free_port()
        good = self.spawn("l4-1", [L4LB, "--listen=127.0.0.1:%d" % lport,
                                   "--admin=127.0.0.1:%d" % admin,
                                   "--syncd=127.0.0.1:%d" % self.sd.port, "--node-id=l4-1",
                                   "--workers=1"] + self.tls("l4lb-l4-1"))
        poll(lambda: json.loads(http_get("http://127.0.0.1:%d/config" % admin)[1] or "{}")
             .get("backends"), what="replica set from syncd")
        self.assertEqual(len(self.refusals("Membership")), 1)  # only the proxy's attempts
        self.assertEqual(bad.proc.poll(), None)  # it keeps retrying, refused each time

    def test_status_needs_the_syncctl_role_and_role_wide_certificates_bind_the_role(self):
        r = subprocess.run([SYNCCTL, "--syncd=127.0.0.1:%d" % self.sd.port]
                           + self.tls("l7proxy-l7-a") + ["status"],
                           capture_output=True, text=True, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not syncctl", r.stderr)
        # spiffe://edge/l7proxy/* (a Deployment's shared certificate): any name
        self.proxy("pod", "l7proxy-7d9f-x2", "l7proxy-any")
        poll(lambda: self.synced("l7proxy-7d9f-x2"), what="role-wide certificate accepted")

    def test_insecure_is_loopback_only_unless_allowed(self):
        for argv in ([SYNCD, "--insecure", "--listen=0.0.0.0:%d" % free_port(),
                      "--admin=127.0.0.1:0", "--source=dir:" + self.src],
                     [L7PROXY, "--insecure", "--syncd=10.255.0.1:7000",
                      "--http=127.0.0.1:0"],
                     [L4LB, "--insecure", "--syncd=10.255.0.1:7000",
                      "--listen=127.0.0.1:0"],
                     [SYNCCTL, "--insecure", "--syncd=10.255.0.1:7000", "status"]):
            r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 2, (argv, r.stderr))
            self.assertIn("loopback", r.stderr)
        sd = self.syncd("--insecure", "--insecure-allow-remote", name="syncd-remote")
        self.assertIsNone(sd.proc.poll())


class Persistence(Base):
    def test_attack_missing_state_dir_is_created_and_a_restart_keeps_version_and_cert(self):
        port = self.backend("b1")
        write(os.path.join(self.src, "a.yaml"), CLASS + SERVICE.format(name="svc", port=port) +
              INGRESS.format(name="a", annotations="{}", tls="", host="a.test", svc="svc",
                             port=port))
        state = os.path.join(self.tmp, "does", "not", "exist")
        sd = self.syncd("--insecure", state=state)
        self.assertEqual(stat.S_IMODE(os.stat(state).st_mode), 0o700)
        v1 = poll(lambda: (self.status(sd) or {}).get("version"), what="a version")
        poll(lambda: os.path.exists(os.path.join(state, "journal")), what="state saved")
        cert1 = open(os.path.join(state, "default-cert.pem")).read()
        sd.kill(signal.SIGKILL)
        sd2 = self.syncd("--insecure", state=state, name="syncd-2")
        self.assertEqual(self.status(sd2)["version"], v1)  # restored at once
        # the unchanged source is read again (translation and the store
        # update run in one loop turn, so Status after this line is final)
        poll(lambda: "msg=source_loaded" in sd2.text(), what="source re-read")
        self.assertEqual(self.status(sd2)["version"], v1)
        self.assertNotIn("msg=version ", sd2.text())
        self.assertEqual(open(os.path.join(state, "default-cert.pem")).read(), cert1)
        self.assertNotIn("state_save_failed", sd.text() + sd2.text())

    def test_unusable_state_and_cache_dirs_refuse_to_start(self):
        afile = os.path.join(self.tmp, "a-file")
        write(afile, "x")
        for argv in ([SYNCD, "--insecure", "--listen=127.0.0.1:0", "--admin=127.0.0.1:0",
                      "--source=dir:" + self.src, "--state-dir=" + afile],
                     [L7PROXY, "--http=127.0.0.1:0", "--cache-dir=" + afile],
                     [L4LB, "--listen=127.0.0.1:0", "--syncd=127.0.0.1:1", "--insecure",
                      "--cache-dir=" + afile]):
            r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 2, (argv, r.stderr))
            self.assertIn("not a directory", r.stderr)

    def test_missing_cache_dirs_are_created_0700(self):
        c7 = os.path.join(self.tmp, "c7", "x")
        px = self.l7proxy("l7", "--cache-dir=" + c7, "--syncd=127.0.0.1:1", "--insecure")
        poll(lambda: os.path.isdir(c7), what="l7proxy cache dir")
        self.assertEqual(stat.S_IMODE(os.stat(c7).st_mode), 0o700)
        c4 = os.path.join(self.tmp, "c4", "y")
        self.spawn("l4", [L4LB, "--listen=127.0.0.1:0", "--syncd=127.0.0.1:1", "--insecure",
                          "--cache-dir=" + c4, "--workers=1"])
        poll(lambda: os.path.isdir(c4), what="l4lb cache dir")
        self.assertEqual(stat.S_IMODE(os.stat(c4).st_mode), 0o700)


class SmallHoles(Base):
    def test_proxy_protocol_without_trusted_peers_refuses_to_start(self):
        r = subprocess.run([L7PROXY, "--http=127.0.0.1:0", "--proxy-protocol"],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--proxy-protocol-trusted", r.stderr)


if __name__ == "__main__":
    SYNCD, SYNCCTL, L7PROXY, L4LB, BACKEND, PKI = (os.path.abspath(a) for a in sys.argv[1:7])
    skip_policy.main([sys.argv[0]] + sys.argv[7:], warnings="ignore")
