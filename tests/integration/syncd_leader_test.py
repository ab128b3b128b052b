#!/usr/bin/env python3
"""Two syncd replicas on the kubernetes source against the in-tree API
server stand-in: one writer elected with a coordination.k8s.io/v1 Lease.

Usage: syncd_leader_test.py SYNCD SYNCCTL FAKE_APISERVER [unittest args]

- the stand-in serves Leases with the API server's semantics (create,
  409 AlreadyExists, update only at the current resourceVersion: 409
  Conflict, 422 without one, 404, MicroTime validation);
- exactly one replica leads and only the leader writes Ingress status (each
  replica publishes its own address, so every PATCH names its writer);
- the same for Gateway API status (GatewayClass, Gateway, HTTPRoute): only
  the leader's token is on those PATCHes, and a new leader writes them again;
- a killed leader is replaced once its Lease has expired: the takeover
  write follows the killed leader's last renew by at least the lease
  duration and at most the duration plus one retry period (plus 1 s of
  scheduling slack), on the stand-in's clock; the new leader writes status;
- a leader stopped with SIGTERM releases the Lease (empty holder, 1 s) and
  the follower takes it over at its next round;
- syncctl given both replicas names each, its role and the nodes it serves.

Every wait polls a condition with a deadline; the only durations checked
are the Lease's own rules. Processes are started here and killed by PID.
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
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import skip_policy  # noqa: E402

SYNCD = SYNCCTL = FAKE = None
LEASE_S, RENEW_S, RETRY_S = 3.0, 2.0, 0.5
LEASES = "/apis/coordination.k8s.io/v1/namespaces/edge-system/leases"


def poll(cond, timeout=20, what="condition"):
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


def http(method, url, body=None):
    """(status, parsed JSON body) of one request."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Replica:
    """One syncd process: --source=kubernetes against the stand-in."""

    started = []

    def __init__(self, tmp, name, publish, api):
        self.name, self.publish = name, publish
        self.grpc, self.admin = free_port(), free_port()
        self.kubeconfig = os.path.join(tmp, "kubeconfig-" + name)
        with open(self.kubeconfig, "w") as f:
            f.write("apiVersion: v1\nkind: Config\ncurrent-context: t\n"
                    "clusters:\n- name: fake\n  cluster: {server: \"%s\"}\n"
                    "users:\n- name: u\n  user: {token: token-%s}\n"
                    "contexts:\n- name: t\n  context: {cluster: fake, user: u}\n" % (api, name))
        self.log = open(os.path.join(tmp, name + ".log"), "ab")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [SYNCD, "--source=kubernetes", "--kubeconfig=" + self.kubeconfig,
             "--publish-address=" + self.publish, "--insecure",
             "--listen=127.0.0.1:%d" % self.grpc, "--admin=127.0.0.1:%d" % self.admin,
             "--replica-id=" + self.name, "--lease-namespace=edge-system",
             "--lease-duration=%gs" % LEASE_S, "--lease-renew-deadline=%gs" % RENEW_S,
             "--lease-retry-period=%dms" % int(RETRY_S * 1000)],
            stdout=self.log, stderr=subprocess.STDOUT)
        Replica.started.append(self)
        poll(lambda: self.metric("edge_syncd_leader") is not None, what=self.name + " metrics")

    def metric(self, name):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.admin,
                                        timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return None
        m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
        return float(m.group(1)) if m else None

    def leads(self):
        return self.metric("edge_syncd_leader") == 1

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)
        self.proc = None


class LeaderTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="syncd-leader-")
        cls.api_proc = subprocess.Popen([sys.executable, FAKE], stdout=subprocess.PIPE)
        cls.api = "http://127.0.0.1:%d" % int(cls.api_proc.stdout.readline())
        cls.apply([
            {"kind": "IngressClass", "metadata": {"name": "edge", "annotations": {
                "ingressclass.kubernetes.io/is-default-class": "true"}},
             "spec": {"controller": "edge.dev/ingress-controller"}},
            {"kind": "Service", "metadata": {"name": "web"},
             "spec": {"clusterIP": "10.96.0.5", "ports": [{"port": 80, "targetPort": 8080}]}},
            cls.ingress("shop")])

    @classmethod
    def tearDownClass(cls):
        for r in Replica.started:
            r.stop(signal.SIGKILL)
        cls.api_proc.kill()
        cls.api_proc.wait()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @staticmethod
    def ingress(name):
        return {"kind": "Ingress", "metadata": {"name": name}, "spec": {"rules": [{
            "host": name + ".example.test", "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}

    @classmethod
    def apply(cls, objects):
        status, _ = http("POST", cls.api + "/_test/apply", {"objects": objects})
        assert status == 200, status

    def patches(self, name=None):
        _, p = http("GET", self.api + "/_test/status-patches")
        return [(x["name"], x["body"]["status"]["loadBalancer"]["ingress"][0]["ip"]) for x in p
                if x["kind"] == "Ingress" and (name is None or x["name"] == name)]

    def gateway_patches(self):
        """(kind, name, writer replica) of every Gateway API status PATCH."""
        _, p = http("GET", self.api + "/_test/status-patches")
        return [(x["kind"], x["name"], x["by"].replace("Bearer token-", "")) for x in p
                if x["kind"] in ("GatewayClass", "Gateway", "HTTPRoute")]

    def serves(self, replica, url):
        """Does replica's state route url (explain matched it)?"""
        out = self.syncctl("--syncd=127.0.0.1:%d" % replica.grpc, "explain", url, "--json")
        try:
            return json.loads(out.stdout).get("matched") is True
        except ValueError:
            return False

    def lease_writes(self):
        _, w = http("GET", self.api + "/_test/lease-writes")
        return w["writes"]

    def syncctl(self, *args):
        return subprocess.run([SYNCCTL, "--insecure"] + list(args), capture_output=True,
                              text=True, timeout=30)

    # ------------------------------------------------------------------------

    def test_1_the_stand_in_serves_leases_with_api_server_semantics(self):
        base = self.api + "/apis/coordination.k8s.io/v1/namespaces/sem/leases"
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": "l"},
                 "spec": {"holderIdentity": "x", "leaseDurationSeconds": 15,
                          "renewTime": "2026-12-02T18:00:00.000000Z"}}
        self.assertEqual(http("GET", base + "/l")[0], 404)
        status, created = http("POST", base, lease)
        self.assertEqual(status, 201)
        rv = created["metadata"]["resourceVersion"]
        self.assertEqual(http("POST", base, lease)[0], 409)  # AlreadyExists
        self.assertEqual(http("GET", base + "/l")[1]["spec"]["holderIdentity"], "x")
        self.assertEqual(http("PUT", base + "/l", lease)[0], 422)  # no resourceVersion
        stale = json.loads(json.dumps(lease))
        stale["metadata"]["resourceVersion"] = str(int(rv) - 1)
        status, body = http("PUT", base + "/l", stale)
        self.assertEqual(status, 409)
        self.assertEqual(body["reason"], "Conflict")
        good = json.loads(json.dumps(lease))
        good["metadata"]["resourceVersion"] = rv
        good["spec"]["holderIdentity"] = "y"
        status, updated = http("PUT", base + "/l", good)
        self.assertEqual(status, 200)
        self.assertNotEqual(updated["metadata"]["resourceVersion"], rv)
        self.assertEqual(http("PUT", base + "/l", good)[0], 409)  # rv moved on: conflict
        bad = json.loads(json.dumps(lease))
        bad["metadata"]["name"] = "m"
        bad["spec"]["renewTime"] = "yesterday"
        self.assertEqual(http("POST", base, bad)[0], 400)
        self.assertEqual(http("PUT", base + "/missing", good)[0], 400)  # name differs from URL

    def test_2_one_leader_writes_and_a_killed_leader_is_replaced_after_its_lease(self):
        a = Replica(self.tmp, "syncd-a", "10.0.0.1", self.api)
        b = Replica(self.tmp, "syncd-b", "10.0.0.2", self.api)
        self.__class__.a, self.__class__.b = a, b
        a.start()
        b.start()
        leader = poll(lambda: (a if a.leads() else b if b.leads() else None), what="a leader")
        other = b if leader is a else a
        self.assertFalse(other.leads())
        poll(lambda: self.patches("shop"), what="status written")
        self.assertEqual(set(ip for _, ip in self.patches()), {leader.publish},
                         "only the leader writes status")
        # syncctl: both replicas, their roles and the leader's view
        out = self.syncctl("--syncd=127.0.0.1:%d,127.0.0.1:%d" % (a.grpc, b.grpc), "status")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"%s\s+127\.0\.0\.1:%d\s+leader" % (leader.name,
                                                                       leader.grpc))
        self.assertRegex(out.stdout, r"%s\s+127\.0\.0\.1:%d\s+follower" % (other.name,
                                                                         other.grpc))
        out = self.syncctl("--syncd=127.0.0.1:%d" % other.grpc, "status", "--json")
        doc = json.loads(out.stdout)
        self.assertEqual(doc["replica"], other.name)
        self.assertFalse(doc["leader"]["leader"])
        self.assertTrue(doc["leader"]["holder"].startswith(leader.name + "_"))

        killed_at = time.monotonic()
        leader.stop(signal.SIGKILL)
        poll(other.leads, timeout=LEASE_S + 10 * RETRY_S + 10, what="the follower to take over")
        took = time.monotonic() - killed_at
        print("handover after SIGKILL of the leader: %.2f s (lease %.1f s, retry %.1f s)" %
              (took, LEASE_S, RETRY_S), flush=True)
        writes = self.lease_writes()
        first_new = next(i for i, w in enumerate(writes) if w["holder"].startswith(other.name))
        last_old = max(i for i, w in enumerate(writes[:first_new])
                       if w["holder"].startswith(leader.name))
        gap = writes[first_new]["at"] - writes[last_old]["at"]
        print("takeover write %.2f s after the killed leader's last renew (stand-in's clock)" %
              gap, flush=True)
        self.assertGreaterEqual(gap, LEASE_S - 0.05, "taken over before the lease expired")
        # ... and at the follower's first round after expiry (it sleeps until
        # then), not a retry period or more later; 1 s of slack for a loaded
        # machine.
        self.assertLessEqual(gap, LEASE_S + RETRY_S + 1.0, "taken over long after expiry")
        self.assertEqual(writes[first_new]["leaseTransitions"],
                         writes[last_old]["leaseTransitions"] + 1)
        poll(lambda: ("shop", other.publish) in self.patches(), what="the new leader's status")
        self.__class__.dead = leader
        self.__class__.live = other

    def test_3_a_follower_never_writes_status(self):
        dead, live = self.dead, self.live
        dead.start()  # back as a follower: the live one holds the Lease
        self.assertFalse(dead.leads())
        before = [p for p in self.patches() if p[1] == dead.publish]
        self.apply([self.ingress("blog")])
        poll(lambda: ("blog", live.publish) in self.patches(), what="the leader's status write")
        # the follower has loaded the new Ingress too (it serves it) ...
        poll(lambda: self.serves(dead, "http://blog.example.test/"),
             what="the follower to serve blog")
        # ... and wrote nothing, although the status names another address
        self.assertEqual([p for p in self.patches() if p[1] == dead.publish], before)
        self.assertFalse(dead.leads())

    def test_4_sigterm_releases_the_lease_and_the_follower_takes_over(self):
        follower, leader = self.dead, self.live
        self.assertTrue(leader.leads())
        n = len(self.lease_writes())
        leader.stop(signal.SIGTERM)
        poll(follower.leads, timeout=LEASE_S + 10 * RETRY_S + 10, what="handover on SIGTERM")
        writes = self.lease_writes()[n:]
        releases = [i for i, w in enumerate(writes) if w["holder"] == ""]
        self.assertTrue(releases, "SIGTERM did not release the Lease: %s" % writes)
        release = releases[0]
        self.assertEqual(writes[release]["leaseDurationSeconds"], 1)
        taken = writes[release + 1]
        self.assertTrue(taken["holder"].startswith(follower.name + "_"))
        print("handover after SIGTERM: release to takeover %.2f s (lease %.1f s)" %
              (taken["at"] - writes[release]["at"], LEASE_S), flush=True)
        poll(lambda: ("blog", follower.publish) in self.patches(), what="status rewritten")
        follower.stop()

    def test_5_only_the_leader_writes_gateway_api_status(self):
        self.apply([
            {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
             "metadata": {"name": "edge"},
             "spec": {"controllerName": "edge.dev/gateway-controller"}},
            {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
             "metadata": {"name": "gw"},
             "spec": {"gatewayClassName": "edge",
                      "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}},
            {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "route"},
             "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["gw.example.test"],
                      "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}}])
        c = Replica(self.tmp, "syncd-c", "10.0.0.3", self.api)
        d = Replica(self.tmp, "syncd-d", "10.0.0.4", self.api)
        c.start()
        d.start()
        leader = poll(lambda: (c if c.leads() else d if d.leads() else None), what="a leader")
        other = d if leader is c else c
        want = {("GatewayClass", "edge"), ("Gateway", "gw"), ("HTTPRoute", "route")}
        poll(lambda: want <= {(k, n) for k, n, _ in self.gateway_patches()},
             what="Gateway API status written")
        # the follower has translated the same objects (it serves the route) ...
        poll(lambda: self.serves(other, "http://gw.example.test/"),
             what="the follower to serve the route")
        writers = {w for _, _, w in self.gateway_patches()}
        self.assertEqual(writers, {leader.name}, "only the leader writes Gateway API status")
        n = len(self.gateway_patches())
        leader.stop(signal.SIGKILL)
        poll(other.leads, timeout=LEASE_S + 10 * RETRY_S + 10, what="the follower to take over")
        # the new leader writes what is not right yet: the Gateway's address is its own ...
        poll(lambda: ("Gateway", "gw", other.name) in self.gateway_patches()[n:],
             what="the new leader's Gateway status")
        # ... and a route that changes (a backend that does not exist: ResolvedRefs False)
        self.apply([
            {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "route"},
             "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["gw.example.test"],
                      "rules": [{"backendRefs": [{"name": "web", "port": 80},
                                                 {"name": "missing", "port": 80}]}]}}])
        poll(lambda: ("HTTPRoute", "route", other.name) in self.gateway_patches()[n:],
             what="the new leader's route status")
        self.assertEqual({w for _, _, w in self.gateway_patches()}, {leader.name, other.name})
        other.stop()


def main():
    global SYNCD, SYNCCTL, FAKE
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    SYNCD, SYNCCTL, FAKE = (os.path.abspath(p) for p in sys.argv[1:4])
    skip_policy.main([sys.argv[0]] + sys.argv[4:])


if __name__ == "__main__":
    main()
