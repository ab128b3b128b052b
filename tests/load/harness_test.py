#!/usr/bin/env python3
"""harness_test — the load suite's guards against measuring nothing
(issue 13): each case builds the situation a broken feature would create,
with the real tools (nginx, h2load, openssl, curl) on 127.0.0.1, and checks
that the harness reports a failure instead of numbers or a skip.

Usage: harness_test.py [unittest args]   (Bazel: //tests/load:harness_test)
No edge binary is needed: the servers are the nginx backend and peer.
Processes are started through harness.Env and stopped by PID.
"""
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import harness as h  # noqa: E402
import loadtest  # noqa: E402
import scenarios  # noqa: E402
import skip_policy  # noqa: E402


class Base(unittest.TestCase):
    def setUp(self):
        self.env = h.Env(tempfile.mkdtemp(prefix="harness-test-", dir=os.environ.get(
            "TEST_TMPDIR")), {})
        self.ctx = scenarios.Ctx("harness-test", self.env, duration=1.0, quick=True, conns=4)

    def tearDown(self):
        self.env.close()


class Guards(Base):
    def test_h2load_duration_run_that_finishes_nothing_fails_the_side(self):
        # h2c against an HTTP/1.1-only server: h2load -D starts requests,
        # finishes none, and exits 0; the side must fail, not report 0 errors.
        backend = h.Backend(self.env)

        def load(port, duration):
            return h.h2load("http://127.0.0.1:%d/" % port, self.env, duration=duration,
                            clients=2, streams=2)
        row = scenarios.measure_side(self.ctx, "edge", lambda: ([backend.proc], backend.port),
                                     load)
        self.assertEqual(row["status"], "failed", row)
        self.assertIn("measured nothing", row["reason"])

    def test_h2load_request_count_run_counts_every_unfinished_request(self):
        # -n 20 against an HTTP/1.1-only server: none done, h2load exits 0
        backend = h.Backend(self.env)
        st = h.h2load("http://127.0.0.1:%d/" % backend.port, self.env, requests=20,
                      clients=2, streams=2, timeout_s=20)
        self.assertEqual(st["requests"], 0)
        self.assertEqual(st["errors"], 20, st["error_detail"])

    def test_h2c_that_does_not_answer_is_a_failure_not_a_skip(self):
        backend = h.Backend(self.env)
        with self.assertRaises(h.SetupError):
            h.probe_h2c(backend.port, "backend")
        self.assertFalse(hasattr(h, "Skip"))  # no way left to skip a side

    def test_missing_tool_or_binary_is_a_failure(self):
        with self.assertRaises(h.SetupError):
            h.need_tool("edge-no-such-tool")
        with self.assertRaises(h.SetupError):
            h.need_bin(self.env, "l7proxy")

    def test_churn_that_loses_a_change_counts_it_as_an_error(self):
        st = {"errors": 0, "error_detail": ""}
        scenarios._require_applied(st, 10, 9, 0, "pushes")
        self.assertEqual(st["errors"], 1)
        self.assertIn("10 sent, 9 applied", st["error_detail"])
        st = {"errors": 0, "error_detail": ""}
        scenarios._require_applied(st, 10, 10, 0, "pushes")
        self.assertEqual(st["errors"], 0)
        with self.assertRaises(h.SetupError):
            scenarios._require_applied(st, 0, 0, 0, "pushes")

    def test_regression_guard_fails_a_run_that_measured_nothing(self):
        res = {"error": "", "expect_errors": False, "rows": [
            scenarios._row(self.ctx, "edge", status="ok", requests=0, errors=0),
            scenarios._row(self.ctx, "nginx", status="n/a", reason="not applicable")]}
        self.assertTrue(any("measured nothing" in p for p in loadtest.problems(res)))
        res["rows"] = [scenarios._row(self.ctx, "nginx", status="n/a", reason="x")]
        self.assertTrue(any("no side measured" in p for p in loadtest.problems(res)))
        res["rows"] = [scenarios._row(self.ctx, "edge", status="ok", requests=5, errors=0)]
        self.assertEqual(loadtest.problems(res), [])


class TlsFairness(Base):
    def peer(self, sessions):
        backend = h.Backend(self.env)
        _, port = h.start_nginx_proxy(self.env, backend.port, mode="https",
                                      tls_sessions=sessions)
        return port

    def test_sessions_off_means_no_resumption_and_the_pinned_parameters(self):
        got = h.tls_probe(self.peer("off"))
        self.assertEqual(got, {"protocol": h.TLS_PROTOCOL, "cipher": h.TLS_CIPHER,
                               "group": h.TLS_GROUP, "resumed": False})
        scenarios.check_tls(self.peer("off"), "off")

    def test_tickets_mean_resumption_and_a_full_handshake_side_is_refused(self):
        port = self.peer("tickets")
        self.assertTrue(h.tls_probe(port)["resumed"])
        with self.assertRaises(h.SetupError):  # would compare resumptions with handshakes
            scenarios.check_tls(port, "off")

    def test_sides_that_negotiated_differently_all_fail(self):
        rows = [scenarios._row(self.ctx, "edge", status="ok", tls="TLSv1.3 A X25519"),
                scenarios._row(self.ctx, "nginx", status="ok", tls="TLSv1.3 B X25519")]
        for r in scenarios._same_tls(rows):
            self.assertEqual(r["status"], "failed")


if __name__ == "__main__":
    skip_policy.main(sys.argv[:1] + sys.argv[1:])
