#!/usr/bin/env bash
# skip_policy_test — tests/lib/skip.sh and skip_policy.py: a platform skip
# passes loudly without CI and fails with CI=true; a Python run in which no
# test ran fails. Real subprocesses, no mocks.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ -n "${TEST_SRCDIR:-}" ]; then here="$TEST_SRCDIR/${TEST_WORKSPACE:-edge}/tests/lib"; fi
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
fails=0
check() { # name, want_rc, got_rc, output, want_substring
  if [ "$2" != "$3" ] || ! grep -q -- "$5" <<<"$4"; then
    echo "FAIL $1: exit $3 (want $2), output: $4"
    fails=$((fails + 1))
  else
    echo "ok   $1"
  fi
}

cat >"$tmp/skipper.sh" <<EOS
. "$here/skip.sh"
edge_platform_skip "needs root"
echo "not reached"
EOS
out=$(env -u CI bash "$tmp/skipper.sh" 2>&1); rc=$?
check "shell skip without CI passes loudly" 0 "$rc" "$out" "EDGE_SKIP: .*needs root"
out=$(CI=true bash "$tmp/skipper.sh" 2>&1); rc=$?
check "shell skip with CI=true fails" 1 "$rc" "$out" "FAILED: .*skipped under CI=true"

cat >"$tmp/py_skip.py" <<EOS
import sys, unittest
sys.path.insert(0, "$here")
import skip_policy
class T(unittest.TestCase):
    def test_runs(self):
        self.assertTrue(True)
    def test_skips(self):
        skip_policy.platform_skip(self, "no IPv6 loopback")
skip_policy.main(sys.argv[:1] + sys.argv[1:])
EOS
out=$(env -u CI python3 "$tmp/py_skip.py" 2>&1); rc=$?
check "python skip without CI passes loudly" 0 "$rc" "$out" "EDGE_SKIP: .*test_skips: platform: no IPv6"
out=$(CI=true python3 "$tmp/py_skip.py" 2>&1); rc=$?
check "python skip with CI=true fails" 1 "$rc" "$out" "FAILED: 1 tests skipped under CI=true"
out=$(env -u CI python3 "$tmp/py_skip.py" T.test_runs 2>&1); rc=$?
check "python without skips passes" 0 "$rc" "$out" "OK"
out=$(env -u CI python3 "$tmp/py_skip.py" -k nothing_matches 2>&1); rc=$?
check "python run where no test ran fails" 1 "$rc" "$out" "FAILED: no test ran"

echo "$fails failed"
[ "$fails" -eq 0 ]
