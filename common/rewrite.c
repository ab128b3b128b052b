/*
 * rewrite — the upstream request target of a route with a rewrite prefix
 * (see rewrite.h).
 */
#include "common/rewrite.h"

#include <string.h>

int rewrite_target(const char *route_path, int path_type, const char *rewrite_prefix,
                   const char *target, size_t target_len, char *out, size_t cap) {
  if (!rewrite_prefix || !rewrite_prefix[0] || path_type == 1 /* Exact */) return REWRITE_NONE;
  size_t rpl = strlen(rewrite_prefix);
  for (size_t i = 0; i < rpl; i++) {
    unsigned char c = (unsigned char)rewrite_prefix[i];
    if (c <= 0x20 || c >= 0x7f) return REWRITE_ERR_INVALID;
  }
  const char *rp = route_path ? route_path : "/";
  size_t plen = strlen(rp);
  while (plen > 0 && rp[plen - 1] == '/') plen--;
  /* the router only matches targets that start with the route's path */
  if (plen > target_len || memcmp(target, rp, plen) != 0) return REWRITE_NONE;
  const char *rest = target + plen;
  size_t rest_len = target_len - plen;
  if (rewrite_prefix[rpl - 1] == '/' && rest_len > 0 && rest[0] == '/') rest++, rest_len--;
  size_t lead = rewrite_prefix[0] != '/';
  if (lead + rpl + rest_len > cap) return REWRITE_ERR_SPACE;
  size_t n = 0;
  if (lead) out[n++] = '/';
  memcpy(out + n, rewrite_prefix, rpl);
  n += rpl;
  memcpy(out + n, rest, rest_len);
  n += rest_len;
  return (int)n;
}
