/*
 * weighted — the per-request choice among a route's weighted backends
 * (Gateway API backendRefs weights, Ingress canary weights).
 *
 * The choice is a pure function of the weights and a 64-bit key taken
 * from the request (the data plane hashes its X-Request-Id): the same
 * request (a retry, explain given the same id) always lands on the same
 * backend, and independent requests land on backend i with probability
 * weights[i] / sum. A weight of 0 is never chosen; when every weight is 0
 * there is no choice (-1: Gateway API answers 500). No allocation, no
 * state: any thread. Callers: l7proxy's exchange, common/explain, tests.
 */
#ifndef EDGE_COMMON_WEIGHTED_H
#define EDGE_COMMON_WEIGHTED_H

#include <stddef.h>
#include <stdint.h>

/* A well-mixed 64-bit key from request bytes (FNV-1a then a finalizer). */
uint64_t weighted_key(const void *data, size_t n);

/* Index in [0, n) chosen for key, or -1 when n == 0 or all weights are 0. */
long weighted_pick(const uint32_t *weights, size_t n, uint64_t key);

#endif
