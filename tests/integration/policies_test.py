#!/usr/bin/env python3
"""Per-route policies (issue 20) against real processes: the real l7proxy
with --config, real backends (l7proxy_backend.py), a real external-auth
service (auth_service.py), a real htpasswd file written by apache2-utils'
htpasswd, a real redis-server shared by three proxies, and real clients
(raw HTTP/1.1 sockets, curl over h2c).

Usage: policies_test.py L7PROXY BACKEND AUTH_SERVICE [unittest args]

Every wait polls with a deadline; nothing asserts on timing. Processes are
started here and killed by PID.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import l7proxy_test as l7t  # noqa: E402
from l7proxy_test import cluster, free_port, get, poll, route, vhost  # noqa: E402

AUTH_SERVICE = None
HMAC_KEY = "0123456789abcdef0123456789abcdef"


def htpasswd_file(tmp):
    """A real htpasswd file: bcrypt (-B, cost 5 keeps the suite fast) and {SHA} (-s)."""
    path = os.path.join(tmp, "htpasswd")
    subprocess.run(["htpasswd", "-c", "-b", "-B", "-C", "5", path, "alice", "wonder land"],
                   check=True, capture_output=True)
    subprocess.run(["htpasswd", "-b", "-s", path, "bob", "b0b:pass"], check=True,
                   capture_output=True)
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def basic(user, password):
    import base64
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def body_json(body):
    try:
        return json.loads(body)
    except ValueError:
        return {}


def h2c(port, path, host, headers=(), method="GET"):
    """curl over h2c (prior knowledge): (status, headers dict)."""
    args = ["curl", "-s", "-o", "/dev/null", "-D", "-", "--http2-prior-knowledge", "--max-time",
            "10", "-X", method, "-H", "Host: " + host]
    for h in headers:
        args += ["-H", h]
    out = subprocess.run(args + ["http://127.0.0.1:%d%s" % (port, path)], capture_output=True,
                         timeout=30).stdout.decode("latin-1")
    status, hs = 0, {}
    for line in out.splitlines():
        if line.startswith("HTTP/"):
            status = int(line.split()[1])
        elif ":" in line:
            k, _, v = line.partition(":")
            hs[k.strip().lower()] = v.strip()
    return status, hs


def request(port, method, path, host, headers=None, body=None):
    """One request on a new connection: (status, headers dict with lists, body)."""
    h = {"Host": host, "Connection": "close"}
    h.update(headers or {})
    if body is not None:
        h["Content-Length"] = str(len(body))
    req = ("%s %s HTTP/1.1\r\n%s\r\n" % (method, path, "".join(
        "%s: %s\r\n" % kv for kv in h.items()))).encode() + (body or b"")
    resp = l7t.raw(port, req, timeout=10)
    head, _, rest = resp.partition(b"\r\n\r\n")
    hdrs = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.decode("latin-1").partition(":")
        hdrs.setdefault(k.strip().lower(), []).append(v.strip())
    return l7t.status_of(resp), hdrs, rest


class AuthService:
    def __init__(self, tmp):
        self.portfile = os.path.join(tmp, "port-auth")
        self.logfile = os.path.join(tmp, "auth.log")
        self.proc = subprocess.Popen([sys.executable, AUTH_SERVICE, self.portfile, self.logfile])
        poll(lambda: os.path.exists(self.portfile), what="auth service")
        with open(self.portfile) as f:
            self.port = int(f.read())

    def requests(self):
        if not os.path.exists(self.logfile):
            return []
        with open(self.logfile) as f:
            return [json.loads(line) for line in f if line.strip()]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class BasicAuth(l7t.Base):
    def setUp(self):
        super().setUp()
        self.a = self.backend("a")
        self.lines = htpasswd_file(self.tmp)
        ba = {"realm": "team zone", "htpasswd": self.lines, "secret": "default/users"}
        self.start([cluster("ca", [self.a.port]),
                    vhost("v", "a.test", [route("/", "ca"),
                                          route("/private", "ca", basic_auth=ba)])])

    def test_no_or_bad_credentials_get_401_with_the_realm(self):
        for hdrs in ({}, {"Authorization": "Bearer x"}, {"Authorization": "Basic !!!"},
                     {"Authorization": basic("alice", "wrong")},
                     {"Authorization": basic("mallory", "wonder land")},
                     {"Authorization": basic("bob", "b0b:pas")}):
            st, h, body = request(self.proxy.port, "GET", "/private", "a.test", hdrs)
            self.assertEqual(st, 401, hdrs)
            self.assertEqual(h["www-authenticate"], ['Basic realm="team zone", charset="UTF-8"'])
            self.assertNotIn(b'"backend"', body)
        st, _, _ = request(self.proxy.port, "GET", "/", "a.test")
        self.assertEqual(st, 200)  # the other route has no policy

    def test_bcrypt_and_sha_lines_from_htpasswd_let_their_users_in(self):
        for user, pw in (("alice", "wonder land"), ("bob", "b0b:pass")):
            for _ in range(2):  # the second bcrypt check comes from the worker's cache
                st, _, body = request(self.proxy.port, "GET", "/private/x", "a.test",
                                      {"Authorization": basic(user, pw)})
                self.assertEqual(st, 200, body)
                self.assertEqual(body_json(body)["backend"], "a")

    def test_basic_auth_over_h2(self):
        st, h = h2c(self.proxy.port, "/private", "a.test")
        self.assertEqual(st, 401)
        self.assertIn("team zone", h.get("www-authenticate", ""))
        st, _ = h2c(self.proxy.port, "/private", "a.test",
                    ["Authorization: " + basic("alice", "wonder land")])
        self.assertEqual(st, 200)

    def test_many_bcrypt_checks_at_once_all_answer(self):
        # bcrypt runs on the thread pool: 20 concurrent wrong and right passwords all complete
        import concurrent.futures
        creds = [basic("alice", "wonder land" if i % 2 else "nope %d" % i) for i in range(20)]
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            got = list(pool.map(lambda c: request(self.proxy.port, "GET", "/private", "a.test",
                                                  {"Authorization": c})[0], creds))
        self.assertEqual(got, [200 if i % 2 else 401 for i in range(20)])

    def test_hashes_never_in_config_dump_or_logs(self):
        request(self.proxy.port, "GET", "/private", "a.test",
                {"Authorization": basic("alice", "wrong")})
        st, cfg = self.proxy.admin_get("/config")
        self.assertEqual(st, 200)
        self.assertIn('"users": 2', cfg)
        for line in self.lines:
            secret = line.split(":", 1)[1]
            self.assertNotIn(secret, cfg)
            self.assertNotIn(secret, self.proxy.logtext())
            self.assertNotIn(secret[7:20], cfg)

    def test_apr1_lines_are_refused_with_a_reason(self):
        bad = {"htpasswd": ["carol:$apr1$bNHH1mVJ$XtLOaBqmzCB1ETGGksrCw/"]}
        self.proxy.reload([cluster("ca", [self.a.port]),
                           vhost("v", "a.test", [route("/", "ca", basic_auth=bad)])])
        poll(lambda: "apr1" in self.proxy.logtext(), what="the refusal logged")
        self.assertNotIn("XtLOaBqmzCB1ETGGksrCw", self.proxy.logtext())
        # the last good configuration is still served
        st, _, _ = request(self.proxy.port, "GET", "/private", "a.test")
        self.assertEqual(st, 401)


class ExternalAuth(l7t.Base):
    def setUp(self):
        super().setUp()
        self.a = self.backend("a")
        self.auth = AuthService(self.tmp)
        dead = free_port()
        ext = {"cluster": "auth", "path": "/verify?from=edge",
               "request_headers": ["authorization", "x-tenant"],
               "response_headers": ["x-user", "x-groups"], "timeout_ms": 1000}
        self.start([cluster("ca", [self.a.port]), cluster("auth", [self.auth.port]),
                    cluster("auth-dead", [dead]),
                    vhost("v", "a.test", [
                        route("/", "ca", external_auth=ext),
                        route("/open", "ca", external_auth=dict(ext, cluster="auth-dead",
                                                                fail_open=True)),
                        route("/closed", "ca", external_auth=dict(ext, cluster="auth-dead"))])])

    def tearDown(self):
        self.auth.kill()
        super().tearDown()

    def test_2xx_lets_in_with_the_services_headers_only(self):
        st, _, body = request(self.proxy.port, "GET", "/app?q=1", "a.test",
                              {"Authorization": "Bearer good", "X-User": "admin",
                               "X-Tenant": "t1", "X-Secret": "s"})
        self.assertEqual(st, 200, body)
        seen = body_json(body)["headers"]
        self.assertEqual(seen.get("x-user"), "alice")  # the client's forged X-User is gone
        self.assertEqual(seen.get("x-groups"), "admins")
        self.assertNotIn("x-not-copied", seen)
        sub = self.auth.requests()[-1]
        self.assertEqual(sub["path"], "/verify?from=edge")
        self.assertEqual(sub["headers"]["authorization"], "Bearer good")
        self.assertEqual(sub["headers"]["x-tenant"], "t1")
        self.assertEqual(sub["headers"]["x-original-uri"], "/app?q=1")
        self.assertEqual(sub["headers"]["x-original-method"], "GET")
        self.assertNotIn("x-secret", sub["headers"])
        self.assertNotIn("x-user", sub["headers"])

    def test_401_and_403_are_passed_to_the_client(self):
        st, h, body = request(self.proxy.port, "GET", "/app", "a.test")
        self.assertEqual(st, 401)
        self.assertEqual(h["www-authenticate"], ['Bearer realm="auth-test"'])
        st, _, body = request(self.proxy.port, "GET", "/app", "a.test",
                              {"Authorization": "Bearer forbidden"})
        self.assertEqual(st, 403)
        self.assertNotIn(b'"backend"', body)

    def test_failures_close_by_default_and_open_when_asked(self):
        for token in ("error", "slow"):  # a 500, and no answer within the 1 s timeout
            st, _, body = request(self.proxy.port, "GET", "/app", "a.test",
                                  {"Authorization": "Bearer " + token})
            self.assertEqual(st, 503, token)
            self.assertIn(b"authentication service unavailable", body)
        st, _, _ = request(self.proxy.port, "GET", "/closed", "a.test",
                           {"Authorization": "Bearer good"})
        self.assertEqual(st, 503)  # nobody listens on the service's port
        st, _, body = request(self.proxy.port, "GET", "/open", "a.test",
                              {"Authorization": "Bearer good", "X-User": "admin"})
        self.assertEqual(st, 200)
        self.assertNotIn("x-user", body_json(body)["headers"])  # forged copies dropped anyway
        _, metrics = self.proxy.admin_get("/metrics")
        self.assertIn("edge_l7_external_auth_failures_total", metrics)

    def test_request_body_waits_for_the_verdict_and_arrives_whole(self):
        data = b"x" * 300000
        st, _, body = request(self.proxy.port, "POST", "/upload", "a.test",
                              {"Authorization": "Bearer good"}, data)
        self.assertEqual(st, 200)
        self.assertEqual(body_json(body)["body_len"], len(data))
        st, _, _ = request(self.proxy.port, "POST", "/upload", "a.test", {}, data)
        self.assertEqual(st, 401)

    def test_external_auth_over_h2(self):
        st, _ = h2c(self.proxy.port, "/app", "a.test", ["Authorization: Bearer forbidden"])
        self.assertEqual(st, 403)
        st, _ = h2c(self.proxy.port, "/app", "a.test", ["Authorization: Bearer good"])
        self.assertEqual(st, 200)


class LocalRateLimit(l7t.Base):
    def setUp(self):
        super().setUp()
        self.a = self.backend("a")
        self.start([cluster("ca", [self.a.port]),
                    vhost("v", "a.test", [
                        route("/", "ca"),
                        route("/ip", "ca", rate_limit={"requests": 3, "period_seconds": 60}),
                        route("/key", "ca", rate_limit={"requests": 2, "period_seconds": 60,
                                                        "by": "RATE_LIMIT_KEY_HEADER",
                                                        "header": "x-api-key"})])])

    def test_client_address_bucket_is_per_proxy_not_per_worker(self):
        # new connections spread over both workers (SO_REUSEPORT): still 3 in total
        got = [request(self.proxy.port, "GET", "/ip", "a.test")[0] for _ in range(8)]
        self.assertEqual(got, [200] * 3 + [429] * 5)
        st, h, _ = request(self.proxy.port, "GET", "/ip", "a.test")
        self.assertEqual(st, 429)
        self.assertTrue(1 <= int(h["retry-after"][0]) <= 20)
        self.assertEqual(request(self.proxy.port, "GET", "/", "a.test")[0], 200)
        _, metrics = self.proxy.admin_get("/metrics")
        self.assertIn('edge_l7_policy_denied_total{policy="rate_limit"} 6', metrics)

    def test_header_buckets_are_separate(self):
        for key in ("k1", "k2"):
            got = [request(self.proxy.port, "GET", "/key", "a.test", {"X-Api-Key": key})[0]
                   for _ in range(3)]
            self.assertEqual(got, [200, 200, 429], key)


class ClusterRateLimit(unittest.TestCase):
    """Three real proxies share one real Redis: the limit does not multiply."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="l7policy-")
        self.backends, self.proxies = [], []
        self.redis_port = free_port()
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.tmp],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        poll(self.redis_up, what="redis-server")
        self.a = l7t.Backend("a", self.tmp)
        self.backends.append(self.a)
        cfg = [cluster("ca", [self.a.port]),
               vhost("v", "a.test", [
                   route("/global", "ca", rate_limit={"requests": 5, "period_seconds": 60,
                                                      "by": "RATE_LIMIT_KEY_HEADER",
                                                      "header": "x-api-key",
                                                      "scope": "RATE_LIMIT_SCOPE_CLUSTER"}),
                   route("/local", "ca", rate_limit={"requests": 5, "period_seconds": 60,
                                                     "by": "RATE_LIMIT_KEY_HEADER",
                                                     "header": "x-api-key"})])]
        for i in range(3):
            d = os.path.join(self.tmp, "p%d" % i)
            os.mkdir(d)
            self.proxies.append(l7t.Proxy(d, cfg, ["--ratelimit-redis=127.0.0.1:%d" %
                                                   self.redis_port]))

    def redis_up(self):
        r = subprocess.run(["redis-cli", "-p", str(self.redis_port), "ping"], capture_output=True)
        return r.stdout.strip() == b"PONG"

    def tearDown(self):
        for p in self.proxies:
            p.stop()
        for b in self.backends:
            b.kill()
        if self.redis.poll() is None:
            self.redis.kill()
            self.redis.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def send(self, path, key, per_proxy=4):
        ok = 0
        for p in self.proxies:
            for _ in range(per_proxy):
                st = request(p.port, "GET", path, "a.test", {"X-Api-Key": key})[0]
                self.assertIn(st, (200, 429))
                ok += st == 200
        return ok

    def connected(self):
        return all("ratelimit_redis_connected" in p.logtext() for p in self.proxies)

    def test_limit_holds_across_three_proxies(self):
        poll(self.connected, what="every proxy connected to redis")
        self.assertEqual(self.send("/global", "shared"), 5)  # 12 sent, 5 for the cluster
        self.assertEqual(self.send("/local", "shared"), 12)  # local: 5 per proxy, 4 sent each
        self.assertEqual(self.send("/global", "other"), 5)
        keys = subprocess.run(["redis-cli", "-p", str(self.redis_port), "--scan", "--pattern",
                               "edge:rl:*"], capture_output=True).stdout.split()
        self.assertEqual(len(keys), 2)
        for k in keys:  # fixed size, nothing of the client's value in it
            self.assertEqual(len(k), 40)

    def test_redis_down_fails_open_and_counts(self):
        poll(self.connected, what="every proxy connected to redis")
        self.redis.kill()
        self.redis.wait()
        self.assertEqual(self.send("/global", "k", per_proxy=3), 9)
        for p in self.proxies:
            _, metrics = p.admin_get("/metrics")
            line = [ln for ln in metrics.splitlines()
                    if ln.startswith("edge_l7_ratelimit_redis_failures_total")]
            self.assertTrue(line and int(float(line[0].split()[-1])) >= 3, metrics)


class Affinity(l7t.Base):
    def setUp(self):
        super().setUp()
        self.bs = [self.backend("b%d" % i) for i in range(3)]
        self.cfg = self.config([b.port for b in self.bs])
        self.start(self.cfg)

    def config(self, ports):
        sticky = cluster("sticky", ports)
        sticky["cluster"]["cookie_affinity"] = {"name": "EDGEAFF", "path": "/",
                                                "max_age_seconds": 3600, "hmac_key": HMAC_KEY}
        hashed = cluster("hashed", ports)
        hashed["cluster"]["consistent_hash"] = {"on": "HASH_ON_HEADER", "header": "x-user"}
        return [sticky, hashed,
                vhost("v", "a.test", [route("/", "sticky"), route("/h", "hashed")])]

    def cookie_of(self, h):
        for c in h.get("set-cookie", []):
            if c.startswith("EDGEAFF="):
                return c.split(";")[0].split("=", 1)[1], c
        return None, None

    def test_cookie_names_an_endpoint_and_sticks(self):
        st, h, body = request(self.proxy.port, "GET", "/", "a.test")
        self.assertEqual(st, 200)
        tok, full = self.cookie_of(h)
        self.assertIsNotNone(tok)
        self.assertIn("HttpOnly", full)
        self.assertIn("Max-Age=3600", full)
        self.assertNotIn("127.0.0.1", full)
        first = body_json(body)["backend"]
        for _ in range(9):
            st, h, body = request(self.proxy.port, "GET", "/", "a.test",
                                  {"Cookie": "other=1; EDGEAFF=" + tok})
            self.assertEqual(body_json(body)["backend"], first)
            self.assertNotIn("set-cookie", h)  # the cookie is still right

    def test_forged_cookie_is_ignored_and_replaced(self):
        seen = set()
        for i in range(6):
            st, h, body = request(self.proxy.port, "GET", "/", "a.test",
                                  {"Cookie": "EDGEAFF=AAAAAAAAAAAAAAAAAAAAA%d" % (i % 10)})
            self.assertEqual(st, 200)
            self.assertIsNotNone(self.cookie_of(h)[0])
            seen.add(body_json(body)["backend"])
        self.assertGreater(len(seen), 1)  # balanced as usual, not pinned by the forgery

    def test_cookie_of_a_removed_endpoint_rebalances(self):
        st, h, body = request(self.proxy.port, "GET", "/", "a.test")
        tok = self.cookie_of(h)[0]
        first = body_json(body)["backend"]
        rest = [b.port for b in self.bs if b.name != first]
        self.proxy.reload(self.config(rest))
        poll(lambda: body_json(request(self.proxy.port, "GET", "/", "a.test",
                                       {"Cookie": "EDGEAFF=" + tok})[2]).get("backend") != first,
             what="the new configuration")
        st, h, body = request(self.proxy.port, "GET", "/", "a.test", {"Cookie": "EDGEAFF=" + tok})
        new_tok = self.cookie_of(h)[0]
        self.assertIsNotNone(new_tok)
        self.assertNotEqual(new_tok, tok)
        again = body_json(body)["backend"]
        for _ in range(4):
            _, _, body = request(self.proxy.port, "GET", "/", "a.test",
                                 {"Cookie": "EDGEAFF=" + new_tok})
            self.assertEqual(body_json(body)["backend"], again)

    def test_consistent_hash_by_header_is_stable_and_moves_only_removed_keys(self):
        def mapping():
            return {u: body_json(request(self.proxy.port, "GET", "/h", "a.test",
                                         {"X-User": u})[2])["backend"] for u in users}
        users = ["user-%d" % i for i in range(30)]
        before = mapping()
        self.assertEqual(mapping(), before)
        self.assertGreater(len(set(before.values())), 1)
        gone = self.bs[0]
        self.proxy.reload(self.config([b.port for b in self.bs[1:]]))
        poll(lambda: gone.name not in mapping().values(), what="the new configuration")
        after = mapping()
        for u in users:
            if before[u] != gone.name:
                self.assertEqual(after[u], before[u], u)


class Cors(l7t.Base):
    def setUp(self):
        super().setUp()
        self.a = self.backend("a")
        self.auth = AuthService(self.tmp)  # plays an upstream that sends its own CORS headers
        c = {"allow_origins": ["https://app.example", "https://*.example.com"],
             "allow_methods": ["GET", "PUT"], "allow_headers": ["content-type", "x-token"],
             "expose_headers": ["x-total"], "allow_credentials": True, "max_age_seconds": 600}
        ba = {"realm": "r", "htpasswd": htpasswd_file(self.tmp)}
        rl = {"requests": 1, "period_seconds": 3600, "burst": 1}
        self.start([cluster("ca", [self.a.port]), cluster("cu", [self.auth.port]),
                    vhost("v", "a.test", [route("/", "ca", cors=c),
                                          route("/upstream-cors", "cu", cors=c),
                                          route("/private", "ca", cors=c, basic_auth=ba),
                                          route("/limited", "ca", cors=c, rate_limit=rl),
                                          route("/plain", "ca")])])

    def tearDown(self):
        self.auth.kill()
        super().tearDown()

    def preflight(self, origin, method="PUT", req_headers="content-type"):
        return request(self.proxy.port, "OPTIONS", "/api", "a.test",
                       {"Origin": origin, "Access-Control-Request-Method": method,
                        "Access-Control-Request-Headers": req_headers})

    def test_preflight_is_answered_by_the_proxy(self):
        st, h, body = self.preflight("https://app.example")
        self.assertEqual(st, 204)
        self.assertEqual(h["access-control-allow-origin"], ["https://app.example"])
        self.assertEqual(h["access-control-allow-methods"], ["GET, PUT"])
        self.assertEqual(h["access-control-allow-headers"], ["content-type, x-token"])
        self.assertEqual(h["access-control-allow-credentials"], ["true"])
        self.assertEqual(h["access-control-max-age"], ["600"])
        self.assertNotIn(b"backend", body)  # never forwarded

    def test_preflight_of_what_is_not_allowed_has_no_allow_headers(self):
        for args in (("https://evil.test",), ("https://app.example", "DELETE"),
                     ("https://app.example", "PUT", "x-admin"),
                     ("https://example.com.evil.test",)):
            st, h, _ = self.preflight(*args)
            self.assertEqual(st, 204, args)
            self.assertNotIn("access-control-allow-origin", h, args)

    def test_actual_request_gets_the_origin_echoed_for_wildcards(self):
        st, h, body = request(self.proxy.port, "GET", "/x", "a.test",
                              {"Origin": "https://shop.eu.example.com"})
        self.assertEqual(st, 200)
        self.assertEqual(h["access-control-allow-origin"], ["https://shop.eu.example.com"])
        self.assertEqual(h["access-control-expose-headers"], ["x-total"])
        self.assertIn("origin", [v.lower() for v in h.get("vary", [])])
        st, h, _ = request(self.proxy.port, "GET", "/x", "a.test", {"Origin": "https://evil.test"})
        self.assertEqual(st, 200)
        self.assertNotIn("access-control-allow-origin", h)

    def test_upstream_cannot_widen_the_policy(self):
        st, h, _ = request(self.proxy.port, "GET", "/upstream-cors", "a.test",
                           {"Origin": "https://evil.test"})
        self.assertEqual(st, 200)
        self.assertNotIn("access-control-allow-origin", h)
        self.assertNotIn("access-control-allow-credentials", h)
        st, h, _ = request(self.proxy.port, "GET", "/upstream-cors", "a.test",
                           {"Origin": "https://app.example"})
        self.assertEqual(h["access-control-allow-origin"], ["https://app.example"])

    def test_local_refusals_carry_the_cors_headers_a_browser_needs(self):
        # without them a page cannot read why it was refused (401, 429)
        st, h, _ = request(self.proxy.port, "GET", "/private", "a.test",
                           {"Origin": "https://app.example"})
        self.assertEqual(st, 401)
        self.assertEqual(h["access-control-allow-origin"], ["https://app.example"])
        self.assertEqual(h["access-control-allow-credentials"], ["true"])
        self.assertIn("www-authenticate", h)
        st, h, _ = request(self.proxy.port, "GET", "/private", "a.test",
                           {"Origin": "https://evil.test"})
        self.assertEqual(st, 401)
        self.assertNotIn("access-control-allow-origin", h)  # the policy still decides
        codes = []
        for _ in range(3):
            st, h, _ = request(self.proxy.port, "GET", "/limited", "a.test",
                               {"Origin": "https://shop.eu.example.com"})
            codes.append(st)
        self.assertEqual(codes[0], 200)
        self.assertEqual(codes[-1], 429)
        self.assertEqual(h["access-control-allow-origin"], ["https://shop.eu.example.com"])
        self.assertIn("retry-after", h)
        st, h, _ = request(self.proxy.port, "GET", "/nothing-here", "b.test",
                           {"Origin": "https://app.example"})
        self.assertEqual(st, 404)  # no route, no policy: no CORS headers
        self.assertNotIn("access-control-allow-origin", h)

    def test_preflight_over_h2(self):
        st, h = h2c(self.proxy.port, "/api", "a.test",
                    ["Origin: https://app.example", "Access-Control-Request-Method: GET"],
                    method="OPTIONS")
        self.assertEqual(st, 204)
        self.assertEqual(h.get("access-control-allow-origin"), "https://app.example")


if __name__ == "__main__":
    l7t.L7PROXY, l7t.BACKEND = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    AUTH_SERVICE = os.path.abspath(sys.argv[3])
    l7t.skip_policy.main([sys.argv[0]] + sys.argv[4:])
