/*
 * edge_skip — the skip policy (CONTRIBUTING.md, "Tests"; tests/lib/skip.sh)
 * for C test binaries: a test may skip only for a missing platform ability
 * (not root, no bpf(2), no network namespaces). edge_platform_skip prints
 * one loud "EDGE_SKIP: <what>: <why>" line and exits 0, or, under CI=true,
 * says why that is a failure and exits 1. Header-only; test code only.
 */
#ifndef EDGE_TESTS_UNIT_EDGE_SKIP_H
#define EDGE_TESTS_UNIT_EDGE_SKIP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline void edge_platform_skip(const char *what, const char *why) {
  const char *ci = getenv("CI");
  printf("EDGE_SKIP: %s: %s\n", what, why);
  fprintf(stderr, "EDGE_SKIP: %s: %s\n", what, why);
  fflush(stdout);
  if (ci && (!strcmp(ci, "true") || !strcmp(ci, "TRUE") || !strcmp(ci, "True") ||
             !strcmp(ci, "1") || !strcmp(ci, "yes"))) {
    fprintf(stderr, "FAILED: %s skipped under CI=true (a CI machine must be able to run it): %s\n",
            what, why);
    exit(1);
  }
  exit(0);
}

#endif
