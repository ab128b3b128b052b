#!/usr/bin/env python3
"""l4lb integration tests: real l4lb processes and stand-in replicas
(l4lb_replica.py) on 127.0.0.1, no syncd or l7proxy needed.

Usage: l4lb_test.py L4LB REPLICA_SCRIPT FAKE_SYNCD [--syncd=SYNCD --fake-l7=FAKE_L7]
                    [unittest args, e.g. a test or class name]
L4lbRealSyncdTest runs only when --syncd and --fake-l7 are given.

Every wait polls a condition with a deadline; nothing asserts on timing.
All processes are started here and killed by PID in tearDown.
"""
import hashlib
import json
import os
import random
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import skip_policy  # noqa: E402

L4LB = None
REPLICA = None
FAKE_SYNCD = None
SYNCD = None
FAKE_L7 = None
DEADLINE_S = 20


def poll(cond, timeout=DEADLINE_S, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


class Replica:
    def __init__(self, name, port=0, check_port=0):
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, REPLICA, "--name", name, "--port", str(port),
             "--check-port", str(check_port)],
            stdout=subprocess.PIPE, text=True)
        r, _, _ = select.select([self.proc.stdout], [], [], DEADLINE_S)
        line = self.proc.stdout.readline() if r else ""
        m = re.match(r"ready data=(\d+) check=(\d+)", line)
        if not m:
            self.kill()
            raise AssertionError("replica %s did not start: %r" % (name, line))
        self.port, self.check_port = int(m.group(1)), int(m.group(2))
        self.lines = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def backend_flag(self, extra=""):
        return "--backend=127.0.0.1:%d,check=127.0.0.1:%d%s" % (self.port, self.check_port, extra)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class L4lb:
    def __init__(self, backends, *extra, nofile=None):
        args = [L4LB, "--listen=127.0.0.1:0", "--admin=127.0.0.1:0", "--workers=2",
                "--check-interval=200ms", "--check-timeout=500ms", "--connect-timeout=1s",
                "--log-level=debug"] + list(backends) + list(extra)

        def limit():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, preexec_fn=limit)
        self.lines = []
        self.started = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()
        if not self.started.wait(DEADLINE_S):
            self.kill()
            raise AssertionError("l4lb did not start: %s" % "\n".join(self.lines[-5:]))
        start = [l for l in self.lines if "msg=started" in l][0]
        self.listen_port = int(re.search(r"listen=127\.0\.0\.1:(\d+)", start).group(1))
        self.admin_port = int(re.search(r"admin_port=(\d+)", start).group(1))

    def _drain(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if "msg=started" in line:
                self.started.set()

    @property
    def listen(self):
        return "127.0.0.1:%d" % self.listen_port

    def get(self, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.admin_port, path),
                                        timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def config(self):
        return json.loads(self.get("/config")[1])

    def backend(self, name):
        return [b for b in self.config()["backends"] if b["name"] == name][0]

    def https_port(self):
        """The port of the (first) backend=https listener."""
        kinds = self.config()["listener_backends"]
        addr = [a for a, k in kinds.items() if k == "https"][0]
        return int(addr.rsplit(":", 1)[1])

    def lookup(self, src, dst):
        status, body = self.get("/lookup?src=%s&dst=%s" % (src, dst))
        return status, json.loads(body)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def connect(port, src_port=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(10)
    if src_port is not None:
        s.bind(("127.0.0.1", src_port))
    s.connect(("127.0.0.1", port))
    return s


def read_line(s):
    line = b""
    while not line.endswith(b"\n"):
        c = s.recv(1)
        if not c:
            break
        line += c
    return line.decode().strip()


def who(s):
    """Sends WHO, returns {'name':..,'src':..,'dst':..}; the socket then echoes."""
    s.sendall(b"WHO\n")
    line = read_line(s)
    return dict(kv.split("=", 1) for kv in line.split())


def fixed_source_ports(n):
    """n source ports below the ephemeral range, skipping any in use."""
    ports = list(range(21000, 29000))
    random.shuffle(ports)
    return ports[:n * 3]


def read_all(s):
    out = []
    while True:
        c = s.recv(1 << 20)
        if not c:
            return b"".join(out)
        out.append(c)


class Base(unittest.TestCase):
    def setUp(self):
        self.procs = []

    def tearDown(self):
        for p in reversed(self.procs):
            p.kill()

    def replica(self, name, port=0, check_port=0):
        r = Replica(name, port, check_port)
        self.procs.append(r)
        return r

    def l4lb(self, backends, *extra, nofile=None):
        lb = L4lb(backends, *extra, nofile=nofile)
        self.procs.append(lb)
        return lb


class L4lbTest(Base):
    # ---- consistency ---------------------------------------------------

    def test_two_instances_pick_the_same_replica_for_the_same_5tuple(self):
        rs = [self.replica("r%d" % i) for i in range(3)]
        by_addr = {r.addr: r.name for r in rs}
        flags = [rs[0].backend_flag(), rs[1].backend_flag(",weight=2"), rs[2].backend_flag()]
        a = self.l4lb(flags)
        b = self.l4lb([flags[2], flags[0], flags[1]])  # another order
        rng = random.Random(7)
        seen = set()
        for _ in range(1000):
            src = "10.%d.%d.%d:%d" % (rng.randrange(256), rng.randrange(256),
                                      rng.randrange(1, 255), rng.randrange(1024, 65536))
            dst = "192.0.2.%d:%d" % (rng.randrange(1, 255), rng.choice([80, 443]))
            sa, ja = a.lookup(src, dst)
            sb, jb = b.lookup(src, dst)
            self.assertEqual((sa, sb), (200, 200))
            self.assertEqual((ja["backend"], ja["slot"]), (jb["backend"], jb["slot"]), src)
            seen.add(ja["backend"])
        self.assertEqual(seen, set(by_addr))
        # real connections with fixed source ports: the replica reached
        # through one instance is the one the other instance computes
        checked = 0
        for sport in fixed_source_ports(40):
            if checked == 40:
                break
            for lb, other in ((a, b), (b, a)):
                try:
                    s = connect(lb.listen_port, sport)
                except OSError:
                    continue  # port busy: skip it
                with s:
                    got = who(s)["name"]
                _, j = other.lookup("127.0.0.1:%d" % sport, lb.listen)
                self.assertEqual(got, by_addr[j["backend"]])
                checked += 1
        self.assertGreaterEqual(checked, 20)

    def test_lookup_answers_400_on_bad_query_and_503_without_backends(self):
        r = self.replica("r0")
        lb = self.l4lb([r.backend_flag(",drain")])
        self.assertEqual(lb.get("/lookup?src=nope&dst=1.2.3.4:80")[0], 400)
        self.assertEqual(lb.get("/lookup?src=1.2.3.4:1")[0], 400)
        self.assertEqual(lb.get("/lookup?src=[::1]:1&dst=1.2.3.4:80")[0], 400)
        status, j = lb.lookup("1.2.3.4:1", "1.2.3.4:80")
        self.assertEqual(status, 503)
        self.assertEqual(lb.get("/readyz")[0], 503)  # no eligible backend

    # ---- the data path -------------------------------------------------

    def test_proxy_v2_header_carries_the_true_client_address(self):
        r = self.replica("r0")
        lb = self.l4lb([r.backend_flag()])
        for sport in fixed_source_ports(5):
            try:
                s = connect(lb.listen_port, sport)
            except OSError:
                continue
            with s:
                got = who(s)
            self.assertEqual(got["src"], "127.0.0.1:%d" % sport)
            self.assertEqual(got["dst"], lb.listen)
            return
        self.fail("no free source port")

    def test_ipv6_listener_reports_the_ipv6_client_in_the_header(self):
        try:
            socket.socket(socket.AF_INET6).bind(("::1", 0))
        except OSError:
            skip_policy.platform_skip(self, "no IPv6 loopback")
        r = self.replica("r0")
        lb = self.l4lb([r.backend_flag(), "--listen=[::1]:0"])
        cfg = lb.config()
        v6 = [l for l in cfg["listeners"] if l.startswith("[::1]:")][0]
        port = int(v6.rsplit(":", 1)[1])
        with socket.create_connection(("::1", port), timeout=10) as s:
            sport = s.getsockname()[1]
            got = who(s)
        self.assertEqual(got["src"], "[::1]:%d" % sport)
        self.assertEqual(got["dst"], "[::1]:%d" % port)
        status, j = lb.lookup("[::1]:%d" % sport, "[::1]:%d" % port)
        self.assertEqual((status, j["backend"]), (200, r.addr))

    def bulk(self, lb, nbytes):
        data = os.urandom(nbytes)
        s = connect(lb.listen_port)
        s.settimeout(60)
        s.sendall(b"ECHO\n")

        def writer():
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=writer)
        t.start()
        h = hashlib.sha256()
        n = 0
        while True:
            c = s.recv(1 << 20)
            if not c:
                break
            h.update(c)
            n += len(c)
        t.join()
        s.close()
        self.assertEqual(n, nbytes)
        self.assertEqual(h.hexdigest(), hashlib.sha256(data).hexdigest())

    def test_bulk_transfer_both_ways_is_byte_exact_with_splice(self):
        r = self.replica("r0")
        lb = self.l4lb([r.backend_flag()])
        self.bulk(lb, 64 << 20)
        _, metrics = lb.get("/metrics")
        m = re.search(r'edge_l4_bytes_total\{direction="in"\} (\d+)', metrics)
        self.assertGreaterEqual(int(m.group(1)), 64 << 20)
        # bulk data went through splice(2), not the copy path
        m = re.search(r'edge_l4_spliced_bytes_total (\d+)', metrics)
        self.assertGreaterEqual(int(m.group(1)), 2 * (60 << 20))

    def test_bulk_transfer_is_byte_exact_with_read_write_fallback(self):
        r = self.replica("r0")
        lb = self.l4lb([r.backend_flag()], "--splice=off")
        self.bulk(lb, 8 << 20)
        _, metrics = lb.get("/metrics")
        self.assertIn("edge_l4_spliced_bytes_total 0", metrics)

    def test_client_half_close_still_delivers_the_backend_answer(self):
        r = self.replica("r0")
        lb = self.l4lb([r.backend_flag()])
        s = connect(lb.listen_port)
        payload = os.urandom(300000)
        s.sendall(b"ECHO\n" + payload)
        s.shutdown(socket.SHUT_WR)  # client done sending; replica still answering
        self.assertEqual(read_all(s), payload)
        s.close()
        # both directions done: l4lb closed its sides and freed the connection
        poll(lambda: "edge_l4_active_connections 0" in lb.get("/metrics")[1],
             what="connection released")

    def test_backend_half_close_still_carries_client_bytes(self):
        r = self.replica("r0")
        lb = self.l4lb([r.backend_flag()])
        s = connect(lb.listen_port)
        s.sendall(b"HALF\n")
        self.assertEqual(read_all(s), b"bye\n")  # backend half-closed
        s.sendall(b"x" * 200000)  # the other direction still flows
        s.shutdown(socket.SHUT_WR)
        poll(lambda: "half-received 200000" in r.lines, what="replica to count the bytes")
        s.close()

    def test_plain_tcp_backend_without_proxy_header(self):
        p = subprocess.Popen([sys.executable, REPLICA, "--name", "plain", "--no-proxy"],
                             stdout=subprocess.PIPE, text=True)
        line = p.stdout.readline()
        port, check = re.match(r"ready data=(\d+) check=(\d+)", line).groups()
        try:
            lb = self.l4lb(["--backend=127.0.0.1:%s,check=127.0.0.1:%s" % (port, check)],
                           "--proxy-protocol=off")
            with connect(lb.listen_port) as s:
                self.assertEqual(who(s)["name"], "plain")
        finally:
            p.kill()
            p.wait()

    # ---- health ----------------------------------------------------------

    def test_killed_replica_is_taken_out_within_fall_and_only_its_connections_fail(self):
        rs = [self.replica("r%d" % i) for i in range(3)]
        by_addr = {r.addr: r for r in rs}
        lb = self.l4lb([r.backend_flag() for r in rs], "--fall=3", "--rise=2")
        conns = []
        for _ in range(30):
            s = connect(lb.listen_port)
            conns.append((s, who(s)["name"]))
        victim = rs[1]
        self.assertIn(victim.name, [n for _, n in conns])
        # a bounded load of new connections runs while the replica dies
        # (a connection established to the victim just before it died may
        # fail; one started after its death must not)
        failures, done, made, dead_at = [], threading.Event(), [0], [None]

        def load():
            while not done.is_set() and made[0] < 2000:
                started = time.monotonic()
                try:
                    with connect(lb.listen_port) as s:
                        s.settimeout(5)
                        ok = who(s).get("name") is not None
                        err = "no answer"
                except (OSError, ValueError) as e:
                    ok, err = False, repr(e)
                if not ok and dead_at[0] is not None and started > dead_at[0]:
                    failures.append(err)
                made[0] += 1

        t = threading.Thread(target=load)
        t.start()
        victim.kill()
        dead_at[0] = time.monotonic()
        poll(lambda: not lb.backend(victim.addr)["healthy"], what="victim marked down")
        done.set()
        t.join()
        # new connections never failed: a failed connect retries the next backend
        self.assertEqual(failures, [])
        self.assertGreater(made[0], 0)
        # fall (3) consecutive failures took it out: 2 logged, the 3rd is the change
        lines = [l for l in lb.lines if "backend=%s " % victim.addr in l + " "]
        down_at = [i for i, l in enumerate(lines) if "msg=backend_down" in l]
        self.assertEqual(len(down_at), 1)
        run = []
        for l in lines[:down_at[0]]:
            if "msg=check_passed" in l:
                run = []
            elif "msg=check_failed" in l:
                run.append(l)
        self.assertEqual(len(run), 2, "\n".join(lines))
        self.assertFalse(lb.backend(victim.addr)["in_table"])
        # only the victim's connections failed; the others still echo
        for s, name in conns:
            if name == victim.name:
                try:
                    s.sendall(b"ping")
                    self.assertEqual(s.recv(10), b"")
                except OSError:
                    pass  # reset: failed as expected
            else:
                s.sendall(b"ping")
                self.assertEqual(s.recv(10), b"ping")
            s.close()
        # after removal no connection goes to the victim
        for _ in range(20):
            with connect(lb.listen_port) as s:
                self.assertNotEqual(who(s)["name"], victim.name)
        _, metrics = lb.get("/metrics")
        self.assertIn('edge_l4_backend_up{backend="%s"} 0' % victim.addr, metrics)

        # ---- the replica comes back after `rise` passed checks
        back = self.replica(victim.name, victim.port, victim.check_port)
        poll(lambda: lb.backend(victim.addr)["in_table"], what="victim back in the table")
        self.assertTrue(any("msg=backend_up" in l and victim.addr in l for l in lb.lines))
        # flows the table maps to it reach it again
        reached = 0
        for sport in fixed_source_ports(60):
            _, j = lb.lookup("127.0.0.1:%d" % sport, lb.listen)
            if j["backend"] != victim.addr:
                continue
            try:
                s = connect(lb.listen_port, sport)
            except OSError:
                continue
            with s:
                self.assertEqual(who(s)["name"], back.name)
            reached += 1
        self.assertGreater(reached, 0)

    def test_failing_readyz_takes_a_replica_out_and_passing_brings_it_back(self):
        rs = [self.replica("r%d" % i) for i in range(2)]
        lb = self.l4lb([r.backend_flag() for r in rs], "--fall=2", "--rise=3")
        rs[0].proc.send_signal(signal.SIGUSR1)  # /readyz -> 503
        poll(lambda: not lb.backend(rs[0].addr)["healthy"], what="down on 503")
        for _ in range(10):
            with connect(lb.listen_port) as s:
                self.assertEqual(who(s)["name"], "r1")
        rs[0].proc.send_signal(signal.SIGUSR2)
        poll(lambda: lb.backend(rs[0].addr)["healthy"], what="up again on 200")

    def test_draining_replica_gets_no_new_connections(self):
        rs = [self.replica("r%d" % i) for i in range(2)]
        lb = self.l4lb([rs[0].backend_flag(",drain"), rs[1].backend_flag()])
        cfg = lb.backend(rs[0].addr)
        self.assertTrue(cfg["draining"])
        self.assertFalse(cfg["in_table"])
        for _ in range(20):
            with connect(lb.listen_port) as s:
                self.assertEqual(who(s)["name"], "r1")

    # ---- membership from syncd's Membership.Watch ------------------------

    def fake_syncd(self, replicas):
        """replicas: list of (node_id, Replica, draining). Returns (proc, port, update)."""
        path = os.path.join(os.environ.get("TEST_TMPDIR", "/tmp"), "l4lb-set-%d" % os.getpid())

        def write(reps):
            with open(path + ".tmp", "w") as f:
                for node, r, draining in reps:
                    f.write("%s %s 127.0.0.1:%d 1 %d\n" % (node, r.addr, r.check_port, draining))
            os.rename(path + ".tmp", path)

        write(replicas)
        p = subprocess.Popen([FAKE_SYNCD, "--listen=127.0.0.1:0", "--set=" + path],
                             stdout=subprocess.PIPE, text=True)
        r, _, _ = select.select([p.stdout], [], [], DEADLINE_S)
        line = p.stdout.readline() if r else ""
        m = re.match(r"ready port=(\d+)", line)
        if not m:
            p.kill()
            raise AssertionError("fake syncd did not start: %r" % line)

        class Handle:
            proc = p
            port = int(m.group(1))

            def update(self, reps):
                write(reps)
                p.send_signal(signal.SIGHUP)

            def kill(self):
                if p.poll() is None:
                    p.kill()
                p.wait()

        h = Handle()
        self.procs.append(h)
        return h

    def test_syncd_draining_keeps_existing_connections_and_losing_syncd_keeps_the_set(self):
        rs = [self.replica("r%d" % i) for i in range(2)]
        sd = self.fake_syncd([("l7-a", rs[0], 0), ("l7-b", rs[1], 0)])
        lb = self.l4lb(["--syncd=127.0.0.1:%d" % sd.port, "--insecure"])
        poll(lambda: lb.config()["table_backends"] == 2, what="set from syncd")
        self.assertEqual(sorted(b["name"] for b in lb.config()["backends"]), ["l7-a", "l7-b"])
        poll(lambda: lb.get("/readyz")[0] == 200, what="ready")
        conns = []
        for _ in range(24):
            s = connect(lb.listen_port)
            conns.append((s, who(s)["name"]))
        self.assertIn("r0", [n for _, n in conns])
        # syncd marks l7-a draining: no new connections, existing ones go on
        sd.update([("l7-a", rs[0], 1), ("l7-b", rs[1], 0)])
        poll(lambda: lb.backend("l7-a")["draining"], what="l7-a draining")
        self.assertFalse(lb.backend("l7-a")["in_table"])
        for _ in range(20):
            with connect(lb.listen_port) as s:
                self.assertEqual(who(s)["name"], "r1")
        for s, _ in conns:
            s.sendall(b"ping")
            self.assertEqual(s.recv(10), b"ping")
            s.close()
        # syncd goes away: the last set stays in force
        sd.kill()
        poll(lambda: any("membership_watch_closed" in l for l in lb.lines), what="stream loss")
        cfg = lb.config()
        self.assertEqual(cfg["table_backends"], 1)
        self.assertEqual(len(cfg["backends"]), 2)
        with connect(lb.listen_port) as s:
            self.assertEqual(who(s)["name"], "r1")

    def test_empty_set_from_syncd_is_held_while_replicas_pass_checks(self):
        """syncd's set says who syncd knows, not who serves: a set that drops
        every healthy replica is held until the l4lb's own checks agree."""
        rs = [self.replica("r%d" % i) for i in range(3)]
        names = ["l7-a", "l7-b", "l7-c"]
        sd = self.fake_syncd([(n, r, 0) for n, r in zip(names, rs)])
        lb = self.l4lb(["--syncd=127.0.0.1:%d" % sd.port, "--insecure"])
        poll(lambda: lb.config()["table_backends"] == 3, what="set from syncd")
        # Each replica has passed a check of this l4lb (vouched for).
        poll(lambda: all(any("msg=check_passed backend=" + n in l for l in lb.lines)
                         for n in names), what="passed checks")
        sd.update([])
        poll(lambda: any("msg=membership_held" in l for l in lb.lines), what="hold logged")
        cfg = lb.config()
        self.assertEqual(cfg["table_backends"], 3)
        self.assertEqual(cfg["held_backends"], 3)
        self.assertTrue(all(b["held"] for b in cfg["backends"]))
        self.assertIn("edge_l4_membership_held_back_total 3", lb.get("/metrics")[1])
        seen = set()
        for _ in range(24):
            with connect(lb.listen_port) as s:
                seen.add(who(s)["name"])
        self.assertEqual(seen, {"r0", "r1", "r2"})
        # r0 dies: its own checks take it out; the others stay held.
        rs[0].kill()
        poll(lambda: "l7-a" not in [b["name"] for b in lb.config()["backends"]],
             what="l7-a removed once its checks failed")
        self.assertEqual(lb.config()["held_backends"], 2)
        # syncd lists l7-b again: dropping l7-c leaves 1 of 2 healthy (50 %).
        sd.update([("l7-b", rs[1], 0)])
        poll(lambda: [b["name"] for b in lb.config()["backends"]] == ["l7-b"],
             what="l7-c dropped within the threshold")
        self.assertEqual(lb.config()["held_backends"], 0)
        with connect(lb.listen_port) as s:
            self.assertEqual(who(s)["name"], "r1")

    def test_restart_without_syncd_serves_the_cached_replica_set(self):
        tmp = os.environ.get("TEST_TMPDIR", "/tmp")
        cache = os.path.join(tmp, "l4lb-cache-%d-%d" % (os.getpid(), random.randrange(1 << 30)))
        os.makedirs(cache)
        rs = [self.replica("r%d" % i) for i in range(2)]
        sd = self.fake_syncd([("l7-a", rs[0], 0), ("l7-b", rs[1], 0)])
        lb = self.l4lb(["--syncd=127.0.0.1:%d" % sd.port, "--insecure", "--cache-dir=" + cache])
        poll(lambda: lb.config()["table_backends"] == 2, what="set from syncd")
        poll(lambda: os.path.exists(os.path.join(cache, "replicas.pb")), what="cache written")
        lb.kill()
        sd.kill()
        # syncd is gone: the restarted l4lb starts from the cache at once
        lb2 = self.l4lb(["--syncd=127.0.0.1:%d" % sd.port, "--insecure", "--cache-dir=" + cache])
        self.assertTrue(any("membership_cache_loaded" in l for l in lb2.lines))
        cfg = lb2.config()
        self.assertEqual(sorted(b["name"] for b in cfg["backends"]), ["l7-a", "l7-b"])
        poll(lambda: lb2.get("/readyz")[0] == 200, what="ready from the cache")
        poll(lambda: lb2.config()["table_backends"] == 2, what="cached replicas healthy")
        names = set()
        for _ in range(16):
            with connect(lb2.listen_port) as s:
                names.add(who(s)["name"])
        self.assertEqual(names, {"r0", "r1"})

    def test_corrupt_cache_is_ignored_with_a_warning(self):
        tmp = os.environ.get("TEST_TMPDIR", "/tmp")
        cache = os.path.join(tmp, "l4lb-badcache-%d-%d" % (os.getpid(), random.randrange(1 << 30)))
        os.makedirs(cache)
        with open(os.path.join(cache, "replicas.pb"), "wb") as f:
            f.write(b"\xff\xff\xff\xff\x0f")
        lb = self.l4lb(["--syncd=127.0.0.1:1", "--insecure", "--cache-dir=" + cache])
        poll(lambda: any("membership_cache_ignored" in l for l in lb.lines), what="warning")
        self.assertEqual(lb.config()["table_backends"], 0)
        self.assertIsNone(lb.proc.poll())

    # ---- https listeners -------------------------------------------------

    def test_https_listener_forwards_to_https_ports_with_proxy_v2_skipping_replicas_without(self):
        rs = [self.replica("r%d" % i) for i in range(3)]
        hs = [self.replica("r%d-https" % i) for i in range(2)]
        # r2 serves no HTTPS: https flows whose slot is r2's walk on
        flags = [rs[i].backend_flag(",https=" + hs[i].addr) for i in range(2)]
        lb = self.l4lb(flags + [rs[2].backend_flag()], "--listen=127.0.0.1:0,backend=https")
        poll(lambda: lb.config()["table_backends"] == 3, what="all up")
        cfg = lb.config()
        self.assertEqual(sorted(cfg["listener_backends"].values()), ["http", "https"])
        self.assertEqual(cfg["listener_backends"][lb.listen], "http")
        self.assertEqual({b["https_address"] for b in cfg["backends"]},
                         {hs[0].addr, hs[1].addr, None})
        hport = lb.https_port()
        seen = set()
        for _ in range(24):
            with connect(hport) as s:
                w = who(s)
                cport = s.getsockname()[1]
            self.assertIn(w["name"], ("r0-https", "r1-https"))
            self.assertEqual(w["src"], "127.0.0.1:%d" % cport)
            self.assertEqual(w["dst"], "127.0.0.1:%d" % hport)
            seen.add(w["name"])
        self.assertEqual(seen, {"r0-https", "r1-https"})
        http_seen = set()
        for _ in range(24):
            with connect(lb.listen_port) as s:
                http_seen.add(who(s)["name"])
        self.assertEqual(http_seen, {"r0", "r1", "r2"})
        self.assertEqual(lb.backend(rs[2].addr)["connect_failures"], 0)

    def test_https_listener_picks_the_same_replica_as_the_http_listener(self):
        rs = [self.replica("r%d" % i) for i in range(3)]
        hs = [self.replica("r%d-https" % i) for i in range(3)]
        # --hash=src: one client address maps to one table slot on every listener
        lb = self.l4lb([rs[i].backend_flag(",https=" + hs[i].addr) for i in range(3)],
                       "--hash=src", "--listen=127.0.0.1:0,backend=https")
        poll(lambda: lb.config()["table_backends"] == 3, what="all up")
        with connect(lb.listen_port) as s:
            http_pick = who(s)["name"]
        for _ in range(4):
            with connect(lb.https_port()) as s:
                self.assertEqual(who(s)["name"], http_pick + "-https")

    def test_bad_listen_backend_kind_is_rejected(self):
        p = subprocess.run([L4LB, "--listen=127.0.0.1:0,backend=ftp", "--backend=127.0.0.1:1"],
                           capture_output=True, text=True, timeout=10)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("backend=http|https", p.stderr)
        p = subprocess.run([L4LB, "--listen=127.0.0.1:0", "--backend=127.0.0.1:1,https=nope"],
                           capture_output=True, text=True, timeout=10)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("https=", p.stderr)

    # ---- operations ------------------------------------------------------

    def test_sigterm_stops_accepting_fails_readyz_and_lets_connections_finish(self):
        r = self.replica("r0")
        lb = self.l4lb([r.backend_flag()], "--drain-timeout=20s")
        poll(lambda: lb.get("/readyz")[0] == 200, what="ready")
        s = connect(lb.listen_port)
        self.assertEqual(who(s)["name"], "r0")
        lb.proc.send_signal(signal.SIGTERM)
        poll(lambda: lb.get("/readyz")[0] == 503, what="/readyz 503 while draining")

        def refused():
            try:
                with connect(lb.listen_port):
                    return False
            except OSError:
                return True

        poll(refused, what="listener closed")
        s.sendall(b"still here")
        self.assertEqual(s.recv(100), b"still here")
        self.assertIsNone(lb.proc.poll())
        s.close()
        poll(lambda: lb.proc.poll() is not None, what="exit after the last connection")
        self.assertEqual(lb.proc.returncode, 0)

    # ---- hostile clients (issue 15) ------------------------------------

    def metric(self, lb, name):
        text = lb.get("/metrics")[1]
        m = re.search(r"^%s (\d+)" % re.escape(name), text, re.M)
        return int(m.group(1)) if m else 0

    def test_attack_idle_streaming_connection_is_closed_after_idle_timeout(self):
        r = self.replica("r0")
        lb = self.l4lb([r.backend_flag()], "--idle-timeout=1s")
        poll(lambda: lb.config()["table_backends"] == 1, what="replica up")
        with connect(lb.listen_port) as s:
            self.assertEqual(who(s)["name"], "r0")
            # then nothing: the l4lb closes both sides, the client sees EOF
            s.settimeout(DEADLINE_S)
            self.assertEqual(s.recv(1), b"", "idle connection was not closed")
        poll(lambda: self.metric(lb, 'edge_l4_timeouts_total{phase="idle"}') >= 1,
             what="idle timeout counted")

    def test_a_connection_that_keeps_talking_outlives_the_idle_timeout(self):
        r = self.replica("r0")
        lb = self.l4lb([r.backend_flag()], "--idle-timeout=2s")
        poll(lambda: lb.config()["table_backends"] == 1, what="replica up")
        with connect(lb.listen_port) as s:
            self.assertEqual(who(s)["name"], "r0")
            end = time.monotonic() + 5  # 2.5 idle timeouts, never idle for long
            n = 0
            while time.monotonic() < end:
                s.sendall(b"x")
                self.assertEqual(s.recv(1), b"x")  # the replica echoes after WHO
                n += 1
                time.sleep(0.2)
            self.assertGreater(n, 5)
        self.assertEqual(self.metric(lb, 'edge_l4_timeouts_total{phase="idle"}'), 0)

    def test_attack_fd_exhaustion_turns_readyz_503_then_recovers(self):
        r = self.replica("r0")
        # 160 descriptors: the reserve keeps 32 for admin and checks, so at
        # most 64 connections (two descriptors each) are accepted
        lb = self.l4lb([r.backend_flag()], "--workers=1", nofile=160)
        poll(lambda: lb.get("/readyz")[0] == 200, what="ready")
        start = [l for l in lb.lines if "msg=started" in l][0]
        cap = int(re.search(r"max_connections=(\d+)", start).group(1))
        self.assertEqual(cap, 64)
        held = []
        try:
            for _ in range(cap + 20):  # the attack: more idle connections than fit
                held.append(connect(lb.listen_port))
            poll(lambda: lb.get("/readyz")[0] == 503, what="readyz 503 at capacity")
            self.assertTrue(any("msg=not_ready" in l for l in lb.lines))
            # the admin endpoint still answers (descriptors were kept for it)
            self.assertEqual(lb.get("/healthz")[0], 200)
        finally:
            for s in held:
                s.close()
        poll(lambda: lb.get("/readyz")[0] == 200, what="ready again")
        with connect(lb.listen_port) as s:
            self.assertEqual(who(s)["name"], "r0")

    def test_attack_fd_exhaustion_silent_connections_make_room_oldest_first(self):
        r = self.replica("r0")
        # 160 descriptors: at most 64 connections (as above)
        lb = self.l4lb([r.backend_flag()], "--workers=1", nofile=160)
        poll(lambda: lb.get("/readyz")[0] == 200, what="ready")
        cap = 64
        talking, silent, kept = [], [], []
        try:
            # the oldest connections carry data; the rest never send a byte
            for _ in range(4):
                s = connect(lb.listen_port)
                self.assertEqual(who(s)["name"], "r0")
                talking.append(s)
            for _ in range(cap - 4):
                silent.append(connect(lb.listen_port))
            poll(lambda: self.metric(lb, "edge_l4_active_connections") == cap,
                 what="every slot taken")
            for k in range(3):
                # a new client: before, it waited in the backlog for good
                s = connect(lb.listen_port)
                self.assertEqual(who(s)["name"], "r0", "new client not served at capacity")
                kept.append(s)
                silent[k].settimeout(DEADLINE_S)
                self.assertEqual(silent[k].recv(1), b"", "the oldest silent one still open")
            for s in talking + kept:  # connections that carried data are kept
                s.sendall(b"x")
                self.assertEqual(s.recv(1), b"x")
            for s in silent[3:]:
                s.setblocking(False)
                with self.assertRaises(BlockingIOError, msg="a newer silent one was closed"):
                    s.recv(1)
            self.assertEqual(self.metric(
                lb, 'edge_l4_connections_evicted_total{reason="max_connections"}'), 3)
        finally:
            for s in talking + silent + kept:
                s.close()

    def test_bad_flags_exit_nonzero_with_one_line(self):
        for args in (["--listen=127.0.0.1:0", "--backend=nope"],
                     ["--listen=127.0.0.1:0", "--backend=127.0.0.1:1", "--table-size=65536"],
                     ["--listen=127.0.0.1:0", "--backend=127.0.0.1:1", "--hash=ring"],
                     ["--backend=127.0.0.1:1"],
                     ["--listen=127.0.0.1:0", "--bogus"]):
            p = subprocess.run([L4LB] + args, capture_output=True, text=True, timeout=10)
            self.assertNotEqual(p.returncode, 0, args)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        p = subprocess.run([L4LB, "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0)
        self.assertIn("--backend", p.stdout)


class L4lbRealSyncdTest(Base):
    """l4lb against the real syncd; l4lb_fake_l7 plays the l7proxies."""

    def setUp(self):
        if not (SYNCD and FAKE_L7):
            self.fail("needs --syncd=PATH and --fake-l7=PATH (see tests/integration/BUILD.bazel)")
        super().setUp()

    def start_syncd(self):
        tmp = os.environ.get("TEST_TMPDIR", "/tmp")
        d = os.path.join(tmp, "l4lb-syncd-%d-%d" % (os.getpid(), random.randrange(1 << 30)))
        os.makedirs(os.path.join(d, "src"))
        os.makedirs(os.path.join(d, "state"))
        p = subprocess.Popen([SYNCD, "--source=dir:" + os.path.join(d, "src"),
                              "--listen=127.0.0.1:0", "--admin=127.0.0.1:0",
                              "--state-dir=" + os.path.join(d, "state"), "--insecure"],
                             stderr=subprocess.PIPE, text=True)
        port = [None]
        ready = threading.Event()

        def drain():
            for line in p.stderr:
                m = re.search(r"msg=listening grpc_port=(\d+)", line)
                if m:
                    port[0] = int(m.group(1))
                    ready.set()

        threading.Thread(target=drain, daemon=True).start()
        self.procs.append(_Killable(p))
        self.assertTrue(ready.wait(DEADLINE_S), "syncd did not start")
        return p, port[0]

    def fake_l7(self, syncd_port, node, replica, https=None):
        args = [FAKE_L7, "--syncd=127.0.0.1:%d" % syncd_port, "--node-id=" + node,
                "--address=" + replica.addr, "--admin-address=127.0.0.1:%d" % replica.check_port]
        if https:
            args.append("--https-address=" + https.addr)
        p = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        self.procs.append(_Killable(p))
        r, _, _ = select.select([p.stdout], [], [], DEADLINE_S)
        line = p.stdout.readline() if r else ""
        self.assertTrue(line.startswith("acked"), "fake l7 did not apply: %r" % line)
        return p

    def test_real_syncd_membership_drain_and_loss(self):
        rs = [self.replica("r%d" % i) for i in range(2)]
        sd, port = self.start_syncd()
        l7a = self.fake_l7(port, "l7-a", rs[0])
        self.fake_l7(port, "l7-b", rs[1])
        lb = self.l4lb(["--syncd=127.0.0.1:%d" % port, "--insecure"])
        poll(lambda: lb.config()["table_backends"] == 2, what="both replicas from syncd")
        cfg = {b["name"]: b for b in lb.config()["backends"]}
        self.assertEqual(sorted(cfg), ["l7-a", "l7-b"])
        self.assertEqual(cfg["l7-a"]["address"], rs[0].addr)
        self.assertEqual(cfg["l7-a"]["check"], "127.0.0.1:%d" % rs[0].check_port)
        conns = []
        for _ in range(24):
            s = connect(lb.listen_port)
            conns.append((s, who(s)["name"]))
        self.assertEqual({n for _, n in conns}, {"r0", "r1"})
        # the l7 proxy tells syncd it drains; syncd tells l4lb
        l7a.send_signal(signal.SIGUSR1)
        poll(lambda: lb.backend("l7-a")["draining"], what="l7-a draining via syncd")
        for _ in range(20):
            with connect(lb.listen_port) as s:
                self.assertEqual(who(s)["name"], "r1")
        for s, _ in conns:
            s.sendall(b"ping")
            self.assertEqual(s.recv(10), b"ping")
            s.close()
        # syncd dies: the last set stays
        sd.kill()
        sd.wait()
        poll(lambda: any("membership_watch_closed" in l for l in lb.lines), what="stream loss")
        self.assertEqual(lb.config()["table_backends"], 1)
        with connect(lb.listen_port) as s:
            self.assertEqual(who(s)["name"], "r1")

    def test_hello_https_address_reaches_l4lb_and_its_https_listener(self):
        r, rs = self.replica("r0"), self.replica("r0-https")
        sd, port = self.start_syncd()
        self.fake_l7(port, "l7-a", r, https=rs)
        lb = self.l4lb(["--syncd=127.0.0.1:%d" % port, "--insecure",
                        "--listen=127.0.0.1:0,backend=https"])
        poll(lambda: lb.config()["table_backends"] == 1, what="replica from syncd")
        self.assertEqual(lb.backend("l7-a")["https_address"], rs.addr)
        with connect(lb.https_port()) as s:
            self.assertEqual(who(s)["name"], "r0-https")
        with connect(lb.listen_port) as s:
            self.assertEqual(who(s)["name"], "r0")


class L4lbSyncdReplicasTest(L4lbRealSyncdTest):
    """l4lb watching two real syncd replicas (--syncd=A,B): the union."""

    def test_the_replica_set_is_the_union_and_follows_the_newest_record(self):
        rs = [self.replica("r%d" % i) for i in range(2)]
        sd_a, pa = self.start_syncd()
        sd_b, pb = self.start_syncd()
        l7a = self.fake_l7(pa, "l7-a", rs[0])
        self.fake_l7(pb, "l7-b", rs[1])
        # a name and an address: "localhost" resolves here (/etc/hosts) to
        # 127.0.0.1, so the views are keyed by the resolved addresses
        lb = self.l4lb(["--syncd=localhost:%d,127.0.0.1:%d" % (pa, pb), "--insecure"])
        # each replica knows one proxy; the l4lb routes to both
        poll(lambda: lb.config()["table_backends"] == 2, what="the union of both replicas")
        views = {v["syncd"]: v["replicas"] for v in lb.config()["syncd_views"]}
        self.assertEqual(views, {"127.0.0.1:%d" % pa: ["l7-a"], "127.0.0.1:%d" % pb: ["l7-b"]})
        gen = lb.config()["table_generation"]
        # l7-a moves from replica A to B (not draining: A keeps its record)
        l7a.kill()
        l7a.wait()
        l7a = self.fake_l7(pb, "l7-a", rs[0])
        poll(lambda: {v["syncd"]: v["replicas"] for v in lb.config()["syncd_views"]}[
            "127.0.0.1:%d" % pb] == ["l7-a", "l7-b"], what="l7-a listed by B")
        self.assertEqual(lb.config()["table_generation"], gen, "the move rebuilt the table")
        # it drains through B: B's record (it holds the stream) wins over A's
        l7a.send_signal(signal.SIGUSR1)
        poll(lambda: lb.backend("l7-a")["draining"], what="l7-a draining via B")
        # and leaves through B: A's older record does not keep it
        l7a.send_signal(signal.SIGTERM)
        l7a.wait()
        poll(lambda: [b["name"] for b in lb.config()["backends"]] == ["l7-b"],
             what="l7-a gone although replica A still lists it")
        self.assertIn("l7-a", {v["syncd"]: v["replicas"] for v in lb.config()["syncd_views"]}[
            "127.0.0.1:%d" % pa])
        # replica A dies: nothing changes for the l4lb
        sd_a.kill()
        sd_a.wait()
        poll(lambda: not [v for v in lb.config()["syncd_views"] if v["syncd"].endswith(
            ":%d" % pa)][0]["up"], what="A's stream down")
        self.assertEqual([b["name"] for b in lb.config()["backends"]], ["l7-b"])
        with connect(lb.listen_port) as s:
            self.assertEqual(who(s)["name"], "r1")


class _Killable:
    def __init__(self, proc):
        self.proc = proc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


if __name__ == "__main__":
    L4LB, REPLICA, FAKE_SYNCD = (os.path.abspath(a) for a in sys.argv[1:4])
    rest = []
    for a in sys.argv[4:]:
        if a.startswith("--syncd="):
            SYNCD = os.path.abspath(a.split("=", 1)[1])
        elif a.startswith("--fake-l7="):
            FAKE_L7 = os.path.abspath(a.split("=", 1)[1])
        else:
            rest.append(a)
    skip_policy.main([sys.argv[0]] + rest, warnings="ignore")
