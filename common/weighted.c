/*
 * weighted — key → point in [0, sum) by a 64×64→128 multiply of a mixed
 * key (no modulo bias worth measuring for sums below 2^32), then the first
 * cumulative weight above the point.
 */
#include "common/weighted.h"

static uint64_t mix64(uint64_t z) { /* splitmix64's finalizer */
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t weighted_key(const void *data, size_t n) {
  const unsigned char *p = data;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return mix64(h);
}

long weighted_pick(const uint32_t *weights, size_t n, uint64_t key) {
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) sum += weights[i];
  if (sum == 0) return -1;
  uint64_t point = (uint64_t)(((unsigned __int128)mix64(key) * sum) >> 64);
  for (size_t i = 0; i < n; i++) {
    if (point < weights[i]) return (long)i;
    point -= weights[i];
  }
  return -1; /* unreachable: point < sum */
}
