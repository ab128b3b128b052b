"""skip_policy — the one way a Python test skips, and the unittest main that
enforces it (CONTRIBUTING.md, "Tests").

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", "lib"))
    import skip_policy
    ...
    def test_x(self):
        skip_policy.platform_skip(self, "no IPv6 loopback")   # only for these
    ...
    if __name__ == "__main__":
        skip_policy.main(argv)

A skip is allowed only for a missing platform ability (no root, no network
namespaces, no IPv6 loopback); a missing package or a feature that does not
work is a failure. main() runs unittest, prints every skip on a line
starting with "EDGE_SKIP:" (tests/run.sh counts them) and exits non-zero when
a test failed, when no test ran, or when anything was skipped and CI=true.
Callers: the Python integration tests. No state beyond the run.
"""
import os
import sys
import unittest


def ci():
    """True when the CI environment variable says this is a CI run."""
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def platform_skip(test, reason):
    """Skips test (a unittest.TestCase) for a missing platform ability."""
    test.skipTest("platform: " + reason)


def main(argv, **kwargs):
    """unittest.main(argv) with the skip policy; never returns."""
    kwargs.setdefault("verbosity", 2)
    prog = unittest.main(argv=argv, exit=False, **kwargs)
    res = prog.result
    for test, why in res.skipped:
        print("EDGE_SKIP: %s: %s" % (test.id(), why), flush=True)
    rc = 0 if res.wasSuccessful() else 1
    if res.testsRun == 0:
        print("FAILED: no test ran", file=sys.stderr)
        rc = 1
    if res.skipped and ci():
        print("FAILED: %d tests skipped under CI=true (a CI machine must be able to run "
              "them)" % len(res.skipped), file=sys.stderr)
        rc = 1
    sys.exit(rc)
