/*
 * affinity — cookie tokens, Cookie header scanning, Set-Cookie and hash
 * keys (see affinity.h).
 */
#include "l7proxy/affinity.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "common/hmap.h"

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void affinity_token(const uint8_t *key, size_t keylen, const char *cluster, const char *endpoint,
                    char out[AFFINITY_TOKEN_LEN + 1]) {
  unsigned char msg[512], mac[EVP_MAX_MD_SIZE];
  unsigned int ml = 0;
  int n = snprintf((char *)msg, sizeof(msg), "%s\n%s", cluster, endpoint);
  if (n < 0 || (size_t)n >= sizeof(msg) ||
      !HMAC(EVP_sha256(), key, (int)keylen, msg, (size_t)n, mac, &ml)) {
    memset(mac, 0, sizeof(mac)); /* never happens with names from a snapshot */
  }
  /* 16 bytes → 22 characters (the last one carries 2 bits) */
  size_t o = 0;
  for (size_t i = 0; i < 15; i += 3) {
    uint32_t v = (uint32_t)mac[i] << 16 | (uint32_t)mac[i + 1] << 8 | mac[i + 2];
    out[o++] = b64url[(v >> 18) & 63];
    out[o++] = b64url[(v >> 12) & 63];
    out[o++] = b64url[(v >> 6) & 63];
    out[o++] = b64url[v & 63];
  }
  out[o++] = b64url[mac[15] >> 2];
  out[o++] = b64url[(mac[15] & 3) << 4];
  out[o] = '\0';
}

int affinity_find_cookie(const struct msg_head *req, const char *name, size_t nlen,
                         const char **val, size_t *vlen) {
  for (size_t i = 0; i < req->n_headers; i++) {
    const struct msg_header *h = &req->headers[i];
    if (h->name_len != 6 || memcmp(h->name, "cookie", 6) != 0) continue;
    const char *p = h->value, *end = p + h->value_len;
    while (p < end) {
      while (p < end && (*p == ' ' || *p == ';' || *p == '\t')) p++;
      const char *s = p;
      while (p < end && *p != ';') p++;
      const char *eq = memchr(s, '=', (size_t)(p - s));
      if (eq && (size_t)(eq - s) == nlen && memcmp(s, name, nlen) == 0) {
        const char *v = eq + 1, *ve = p;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        if (ve - v >= 2 && v[0] == '"' && ve[-1] == '"') v++, ve--;
        *val = v;
        *vlen = (size_t)(ve - v);
        return 1;
      }
    }
  }
  return 0;
}

int affinity_match(const char (*tokens)[AFFINITY_TOKEN_LEN + 1], size_t n, const char *val,
                   size_t vlen) {
  if (vlen != AFFINITY_TOKEN_LEN) return -1;
  int found = -1;
  for (size_t i = 0; i < n; i++) {
    int eq = CRYPTO_memcmp(tokens[i], val, AFFINITY_TOKEN_LEN) == 0;
    /* no early exit: the time does not depend on which token matched */
    found = eq && found < 0 ? (int)i : found;
  }
  return found;
}

int affinity_set_cookie(char *buf, size_t cap, const char *name, const char *token,
                        const char *path, uint32_t max_age, int secure) {
  char age[32] = "";
  if (max_age) snprintf(age, sizeof(age), "; Max-Age=%u", max_age);
  int n = snprintf(buf, cap, "%s=%s; Path=%s%s; HttpOnly; SameSite=Lax%s", name, token,
                   path && path[0] ? path : "/", age, secure ? "; Secure" : "");
  return n < 0 || (size_t)n >= cap ? -1 : n;
}

uint64_t affinity_hash_key(const char *s, size_t n) {
  /* a fixed key: the mapping must agree across proxies and restarts */
  return hmap_siphash(0x65646765616666ull, 0x6368617368ull, s, n);
}
