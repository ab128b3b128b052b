/*
 * l4lb_maglev_bench — how long a Maglev table takes to build (the paper
 * reports 1.8 ms for N=1000, M=65537) and how fast lookups are.
 *
 *   l4lb_maglev_bench [N [M [ROUNDS]]]     (defaults 1000 65537 20)
 *
 * Prints the median and best build time over ROUNDS builds, and lookups
 * per second of hash_flow + lookup. A benchmark, never a test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "l4lb/maglev.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
  uint32_t m = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : MAGLEV_DEFAULT_M;
  int rounds = argc > 3 ? atoi(argv[3]) : 20;
  if (n == 0 || rounds < 1) return 2;
  char(*names)[32] = calloc(n, 32);
  struct maglev_backend *b = calloc(n, sizeof(*b));
  double *t = calloc((size_t)rounds, sizeof(double));
  for (size_t i = 0; i < n; i++) {
    snprintf(names[i], 32, "10.%zu.%zu.%zu:8080", i >> 16 & 255, i >> 8 & 255, i & 255);
    b[i] = (struct maglev_backend){names[i], 1};
  }
  struct maglev_table *tab = NULL;
  char err[128];
  for (int r = 0; r < rounds; r++) {
    double t0 = now_ms();
    if (maglev_build(b, n, m, &tab, err, sizeof(err)) != 0) {
      fprintf(stderr, "maglev_build: %s\n", err);
      return 1;
    }
    t[r] = now_ms() - t0;
    if (r + 1 < rounds) maglev_free(tab);
  }
  qsort(t, (size_t)rounds, sizeof(double), cmp_double);
  struct maglev_flow f = {.family = 4, .protocol = 6, .dst_port = 80};
  const int lookups = 5000000;
  unsigned sink = 0;
  double t0 = now_ms();
  for (int i = 0; i < lookups; i++) {
    f.src_port = (uint16_t)i;
    f.src[3] = (uint8_t)(i >> 16);
    sink += (unsigned)maglev_lookup(tab, maglev_hash_flow(&f, MAGLEV_HASH_5TUPLE), NULL);
  }
  double lt = now_ms() - t0;
  printf("maglev build N=%zu M=%u: median %.2f ms, best %.2f ms (%d rounds)\n", n, m, t[rounds / 2],
         t[0], rounds);
  printf("maglev hash+lookup: %.1f M/s (%u)\n", lookups / lt / 1e3, sink & 1);
  maglev_free(tab);
  free(t);
  free(b);
  free(names);
  return 0;
}
