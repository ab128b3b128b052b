#!/usr/bin/env python3
"""Reconnect backoff against a down syncd, with real daemons.

Usage: reconnect_test.py L7PROXY L4LB [unittest args]

50 clients (25 l7proxy, 25 l4lb processes, default flags) point at a syncd
stand-in that is "down": it accepts TCP and closes at once, so every
connection attempt is counted and fails. Once every client has backed off
to the cap (its log reports a retry of at least 0.8 × 1 s), the accepted
connections are counted over a window. The default cap is 1 s with the
delay spread over [0.8, 1] s, so N clients may make at most
N × (window / 0.8 s + 1) attempts: bounded, not a storm. Every retry a
client logs stays at or under the cap (prompt resync once syncd returns).
Nothing here measures or asserts how long anything took; the bound is on
counts. All processes are started here and killed by PID.
"""
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import skip_policy  # noqa: E402

L7PROXY = None
L4LB = None
CLIENTS_EACH = 25
CAP_MS = 1000  # RPC_RECONNECT_MAX_DEFAULT_MS
WINDOW_S = 6.0
DEADLINE_S = 60


class DownSyncd:
    """Accepts and closes every connection, counting them."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.count += 1
            c.close()

    def accepted(self):
        with self.lock:
            return self.count

    def close(self):
        self.stop.set()
        self.t.join(2)
        self.sock.close()


RETRY = re.compile(r"msg=(?:config_stream_closed|membership_watch_closed) .*retry_ms=(\d+)")


def retries(path):
    try:
        with open(path, errors="replace") as f:
            return [int(m.group(1)) for m in RETRY.finditer(f.read())]
    except OSError:
        return []


class ReconnectTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="reconnect-", dir=os.environ.get("TEST_TMPDIR", "/tmp"))
        self.syncd = DownSyncd()
        self.procs = []

    def tearDown(self):
        for p, _ in self.procs:
            if p.poll() is None:
                p.kill()
        for p, _ in self.procs:
            p.wait(10)
        self.syncd.close()

    def start(self, kind, i):
        log = os.path.join(self.tmp, f"{kind}-{i}.log")
        target = f"--syncd=127.0.0.1:{self.syncd.port}"
        if kind == "l7proxy":
            cmd = [L7PROXY, target, "--insecure", f"--node-id=l7-{i}", "--http=127.0.0.1:0",
                   "--workers=1"]
        else:
            cmd = [L4LB, target, "--insecure", f"--node-id=lb-{i}", "--listen=127.0.0.1:0",
                   "--workers=1"]
        with open(log, "w") as out:
            p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
        self.procs.append((p, log))

    def test_fifty_clients_of_a_down_syncd_retry_at_a_bounded_rate_under_the_cap(self):
        for i in range(CLIENTS_EACH):
            self.start("l7proxy", i)
            self.start("l4lb", i)
        n = len(self.procs)
        # Every client backed off to the cap: its last retry is >= 0.8 cap.
        end = time.monotonic() + DEADLINE_S
        capped = []
        while time.monotonic() < end:
            for p, _ in self.procs:
                self.assertIsNone(p.poll(), "a client exited")
            capped = [r for r in (retries(log) for _, log in self.procs)
                      if r and r[-1] >= CAP_MS * 4 // 5]
            if len(capped) == n:
                break
            time.sleep(0.2)
        self.assertEqual(len(capped), n, "not every client reached the backoff cap")
        before = self.syncd.accepted()
        logged = [len(retries(log)) for _, log in self.procs]
        t0 = time.monotonic()
        time.sleep(WINDOW_S)  # the counting window (a duration, not a wait)
        window = time.monotonic() - t0
        attempts = self.syncd.accepted() - before
        bound = n * (window * 1000 / (CAP_MS * 4 // 5) + 1)
        rate = attempts / window
        print(f"reconnect: {n} clients, {attempts} attempts in {window:.1f}s = {rate:.1f}/s "
              f"(bound {bound:.0f} = {bound / window:.1f}/s; steady state at most "
              f"{n * 1000 / (CAP_MS * 4 // 5):.1f}/s)", flush=True)
        self.assertLessEqual(attempts, bound)
        # Still retrying (every client tried again during the window), and
        # no retry beyond the cap: a returning syncd is found within ~1 s.
        for (p, log), seen in zip(self.procs, logged):
            rs = retries(log)
            self.assertGreater(len(rs), seen, f"{log}: no retry during the window")
            self.assertLessEqual(max(rs), CAP_MS, f"{log}: retry beyond the cap")


if __name__ == "__main__":
    L7PROXY, L4LB = (os.path.abspath(a) for a in sys.argv[1:3])
    skip_policy.main([sys.argv[0]] + sys.argv[3:])
