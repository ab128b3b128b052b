/*
 * Fuzz target for Ingress matching (common/router.c): request host
 * normalization and path matching over a fixed rule set.
 *
 * Input: HOST '\n' PATH. Besides "never crash", it checks the contract:
 * router_explain agrees with router_match_index and marks exactly the
 * winner MATCHED; the host's case does not matter; a query string does
 * not change the result.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/router.h"

#define CHECK(cond)       \
  do {                    \
    if (!(cond)) abort(); \
  } while (0)

static const struct router_rule RULES[] = {
    {.host = "shop.example.com", .path = "/api", .path_type = ROUTER_PATH_PREFIX},
    {.host = "shop.example.com", .path = "/api/v1", .path_type = ROUTER_PATH_EXACT},
    {.host = "*.foo.com", .path = "/aaa/bbb/", .path_type = ROUTER_PATH_PREFIX},
    {.host = "*.foo.com", .path = "/aaa", .path_type = ROUTER_PATH_IMPLEMENTATION_SPECIFIC},
    {.host = "::1", .path = "/", .path_type = ROUTER_PATH_PREFIX},
    {.host = NULL, .path = "/aaaccc", .path_type = ROUTER_PATH_EXACT},
    {.host = "", .path = "/static", .path_type = ROUTER_PATH_PREFIX},
};
#define N_RULES (sizeof(RULES) / sizeof(RULES[0]))

static long g_winner;
static int g_matched;
static void count(void *ud, const struct router_explanation *e) {
  (void)ud;
  if (e->verdict == ROUTER_MATCHED) {
    g_matched++;
    CHECK((long)e->index == g_winner);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct router *r;
  if (!r) CHECK(router_build(RULES, N_RULES, &r, NULL, 0) == 0);
  const char *in = (const char *)data;
  const char *nl = memchr(in, '\n', size);
  size_t hostlen = nl ? (size_t)(nl - in) : size;
  const char *path = nl ? nl + 1 : "";
  size_t pathlen = nl ? size - hostlen - 1 : 0;

  long w = router_match_index(r, in, hostlen, path, pathlen);
  CHECK(w >= -1 && w < (long)N_RULES);
  g_winner = w;
  g_matched = 0;
  CHECK(router_explain(r, in, hostlen, path, pathlen, count, NULL) == w);
  CHECK(g_matched == (w >= 0));

  char *upper = malloc(hostlen + 1);
  CHECK(upper);
  for (size_t i = 0; i < hostlen; i++)
    upper[i] = (in[i] >= 'a' && in[i] <= 'z') ? (char)(in[i] - 32) : in[i];
  CHECK(router_match_index(r, upper, hostlen, path, pathlen) == w);
  free(upper);

  if (!memchr(path, '?', pathlen) && !memchr(path, '#', pathlen) && pathlen > 0) {
    char *q = malloc(pathlen + 3);
    CHECK(q);
    memcpy(q, path, pathlen);
    memcpy(q + pathlen, "?x", 2);
    CHECK(router_match_index(r, in, hostlen, q, pathlen + 2) == w);
    free(q);
  }
  return 0;
}
