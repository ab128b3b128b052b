/*
 * htpasswd — HTTP basic authentication (RFC 7617) against htpasswd lines:
 * the table built once per snapshot, the Authorization header parsed, a
 * password checked against bcrypt ($2a$/$2b$/$2y$, libxcrypt's crypt_r) or
 * {SHA} (base64 SHA-1, compared in constant time).
 *
 * bcrypt is slow on purpose (cost 10 ≈ 50-100 ms of CPU): the data path
 * never runs it on a worker's loop — htpasswd_is_slow says when to hand
 * htpasswd_check to the thread pool (route_policy.c does, with
 * uv_queue_work) — and a verified credential is remembered in a small
 * per-worker cache (htpasswd_cache), keyed by a keyed SHA-256 of (hash,
 * user, password) under a random per-process key: no password and no
 * usable digest of one is kept. An unknown user is checked against a decoy
 * hash of the same kind, so the answer's timing does not tell which users
 * exist.
 *
 * Hashes are secrets: nothing here logs them. Pure code except the cache
 * key (random at first use). Table: immutable after build, any thread.
 * Cache: one per worker. Callers: l7proxy/snapshot.c (build),
 * l7proxy/route_policy.c, tests/unit/l7proxy/htpasswd_test.c.
 */
#ifndef EDGE_L7PROXY_HTPASSWD_H
#define EDGE_L7PROXY_HTPASSWD_H

#include <stddef.h>
#include <stdint.h>

#define HTPASSWD_MAX_CREDENTIALS 1024 /* Authorization header bytes */

struct htpasswd; /* opaque, immutable */

/* Builds the table from "user:hash" lines (checked by common/policy). A
 * user named twice keeps its first line. 0, -EINVAL (reason in err) or
 * -ENOMEM. *out owned by the caller (htpasswd_free). */
int htpasswd_build(char *const *lines, size_t n, struct htpasswd **out, char *err, size_t errlen);
void htpasswd_free(struct htpasswd *t);
size_t htpasswd_count(const struct htpasswd *t);

/* The hash to check user against: the user's own, or the table's decoy
 * (*known = 0) so that unknown users cost the same. Never NULL for a
 * built table. */
const char *htpasswd_lookup(const struct htpasswd *t, const char *user, size_t ulen, int *known);
/* 1 when checking hash needs bcrypt (run it off the loop). */
int htpasswd_is_slow(const char *hash);
/* 1 when pass matches hash, else 0. May take tens of ms (bcrypt). Any
 * thread. */
int htpasswd_check(const char *hash, const char *pass, size_t plen);

/* Splits an Authorization value "Basic base64(user:pass)" into buf (NUL
 * separated user and password). 0, or -1 when it is not basic
 * credentials (not "Basic", bad base64, no ':', too long, a control byte
 * in the user name). */
int htpasswd_parse_basic(const char *value, size_t len, char *buf, size_t cap, const char **user,
                         size_t *ulen, const char **pass, size_t *plen);

/* ---- verified-credential cache (one per worker) ---- */
#define HTPASSWD_CACHE_SLOTS 1024
#define HTPASSWD_CACHE_TTL_MS (5 * 60 * 1000)

struct htpasswd_cache_slot {
  uint8_t digest[32];
  uint64_t expires_ms; /* 0: empty */
};
struct htpasswd_cache {
  struct htpasswd_cache_slot slots[HTPASSWD_CACHE_SLOTS];
};

/* The cache key of (hash, user, pass): SHA-256 under the process key. */
void htpasswd_cache_key(const char *hash, const char *user, size_t ulen, const char *pass,
                        size_t plen, uint8_t out[32]);
/* 1 when key was verified and has not expired at now_ms. */
int htpasswd_cache_hit(const struct htpasswd_cache *c, const uint8_t key[32], uint64_t now_ms);
void htpasswd_cache_put(struct htpasswd_cache *c, const uint8_t key[32], uint64_t now_ms);

#endif
