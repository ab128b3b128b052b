# skip.sh — the one way a shell test skips (sourced, not run).
#
#   . tests/lib/skip.sh
#   edge_platform_skip "needs root (network namespaces)"
#
# A skip is allowed only for a missing platform ability (no root, no
# network namespaces): never for a missing package (bazel/setup.sh
# installs those: that is a failure) and never because the feature under
# test does not work (that is the failure the test exists to report). The
# skip prints one loud line starting with "EDGE_SKIP:" (tests/run.sh counts
# them) and exits 0; with CI=true it prints why it fails and exits 1, so a
# CI run can never be green without having run everything.

edge_ci() {
  case "${CI:-}" in
    true | TRUE | True | 1 | yes) return 0 ;;
    *) return 1 ;;
  esac
}

edge_platform_skip() {
  local what="${TEST_TARGET:-$(basename "$0")}"
  echo "EDGE_SKIP: $what: $*"
  echo "EDGE_SKIP: $what: $*" >&2
  if edge_ci; then
    echo "FAILED: $what skipped under CI=true (a CI machine must be able to run it): $*" >&2
    exit 1
  fi
  exit 0
}
