/*
 * htpasswd — table, Authorization parsing, bcrypt / {SHA} checks and the
 * verified-credential cache (see htpasswd.h).
 *
 * The table is an array sorted by user name (binary search; user names are
 * compared as bytes, as Apache does). Digests are compared with
 * CRYPTO_memcmp.
 */
#include "l7proxy/htpasswd.h"

#include <crypt.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <strings.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct htp_entry {
  char *user; /* owned; points at the start of line copy */
  size_t ulen;
  const char *hash; /* inside the same allocation */
  size_t idx;       /* line number: the first line of a user wins */
};

struct htpasswd {
  struct htp_entry *e;
  size_t n;
};

static int user_cmp(const void *a, const void *b) {
  const struct htp_entry *x = a, *y = b;
  size_t n = x->ulen < y->ulen ? x->ulen : y->ulen;
  int r = memcmp(x->user, y->user, n);
  if (r) return r;
  return x->ulen < y->ulen ? -1 : x->ulen > y->ulen;
}

static int entry_cmp(const void *a, const void *b) {
  int r = user_cmp(a, b);
  if (r) return r;
  const struct htp_entry *x = a, *y = b;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

void htpasswd_free(struct htpasswd *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n; i++) {
    /* the hash is secret: wipe the copy before it goes back to malloc */
    OPENSSL_cleanse(t->e[i].user, t->e[i].ulen + 1 + strlen(t->e[i].hash));
    free(t->e[i].user);
  }
  free(t->e);
  free(t);
}

int htpasswd_build(char *const *lines, size_t n, struct htpasswd **out, char *err, size_t errlen) {
  *out = NULL;
  if (n == 0) {
    snprintf(err, errlen, "no htpasswd lines");
    return -EINVAL;
  }
  struct htpasswd *t = calloc(1, sizeof(*t));
  if (!t || !(t->e = calloc(n, sizeof(*t->e)))) {
    free(t);
    return -ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    const char *colon = strchr(lines[i], ':');
    if (!colon || colon == lines[i]) {
      snprintf(err, errlen, "htpasswd line %zu has no user", i + 1);
      htpasswd_free(t);
      return -EINVAL;
    }
    char *copy = strdup(lines[i]);
    if (!copy) {
      htpasswd_free(t);
      return -ENOMEM;
    }
    size_t ul = (size_t)(colon - lines[i]);
    copy[ul] = '\0';
    t->e[t->n++] = (struct htp_entry){copy, ul, copy + ul + 1, i};
  }
  qsort(t->e, t->n, sizeof(*t->e), entry_cmp);
  size_t k = 0;
  for (size_t i = 0; i < t->n; i++) {
    if (k > 0 && user_cmp(&t->e[k - 1], &t->e[i]) == 0) {
      free(t->e[i].user); /* a user named twice: its first line stays */
      continue;
    }
    t->e[k++] = t->e[i];
  }
  t->n = k;
  *out = t;
  return 0;
}

size_t htpasswd_count(const struct htpasswd *t) {
  return t ? t->n : 0;
}

const char *htpasswd_lookup(const struct htpasswd *t, const char *user, size_t ulen, int *known) {
  struct htp_entry key = {(char *)user, ulen, NULL};
  const struct htp_entry *e = bsearch(&key, t->e, t->n, sizeof(*t->e), user_cmp);
  *known = e != NULL;
  return e ? e->hash : t->e[0].hash; /* the decoy: an existing hash, the answer is forced */
}

int htpasswd_is_slow(const char *hash) {
  return hash[0] == '$';
}

static int check_sha(const char *hash, const char *pass, size_t plen) {
  unsigned char md[SHA_DIGEST_LENGTH], want[32];
  SHA1((const unsigned char *)pass, plen, md);
  /* "{SHA}" + 28 base64 characters: 20 bytes plus one padding byte */
  int n = EVP_DecodeBlock(want, (const unsigned char *)hash + 5, 28);
  if (n != 21) return 0;
  return CRYPTO_memcmp(md, want, SHA_DIGEST_LENGTH) == 0;
}

static int check_bcrypt(const char *hash, const char *pass, size_t plen) {
  char pw[CRYPT_MAX_PASSPHRASE_SIZE + 1];
  if (plen > CRYPT_MAX_PASSPHRASE_SIZE || memchr(pass, '\0', plen)) return 0;
  memcpy(pw, pass, plen);
  pw[plen] = '\0';
  struct crypt_data *cd = calloc(1, sizeof(*cd));
  if (!cd) return 0;
  const char *r = crypt_r(pw, hash, cd);
  size_t hl = strlen(hash);
  int ok = r && r[0] == '$' && strlen(r) == hl && CRYPTO_memcmp(r, hash, hl) == 0;
  OPENSSL_cleanse(pw, sizeof(pw));
  OPENSSL_cleanse(cd, sizeof(*cd));
  free(cd);
  return ok;
}

int htpasswd_check(const char *hash, const char *pass, size_t plen) {
  if (strncmp(hash, "{SHA}", 5) == 0) return strlen(hash) == 33 && check_sha(hash, pass, plen);
  if (hash[0] == '$') return check_bcrypt(hash, pass, plen);
  return 0; /* unknown kinds never match (common/policy refuses them) */
}

int htpasswd_parse_basic(const char *value, size_t len, char *buf, size_t cap, const char **user,
                         size_t *ulen, const char **pass, size_t *plen) {
  while (len && (*value == ' ' || *value == '\t')) value++, len--;
  if (len < 6 || strncasecmp(value, "basic", 5) != 0 || (value[5] != ' ' && value[5] != '\t'))
    return -1;
  value += 6, len -= 6;
  while (len && (*value == ' ' || *value == '\t')) value++, len--;
  while (len && (value[len - 1] == ' ' || value[len - 1] == '\t')) len--;
  if (len == 0 || len % 4 != 0 || len > HTPASSWD_MAX_CREDENTIALS || cap < len / 4 * 3 + 1)
    return -1;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)value[i];
    int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
             c == '+' || c == '/' || (c == '=' && i >= len - 2);
    if (!ok) return -1;
  }
  int n = EVP_DecodeBlock((unsigned char *)buf, (const unsigned char *)value, (int)len);
  if (n < 0) return -1;
  if (value[len - 1] == '=') n--;
  if (value[len - 2] == '=') n--;
  buf[n] = '\0';
  char *colon = memchr(buf, ':', (size_t)n);
  if (!colon) return -1;
  for (char *p = buf; p < colon; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f) return -1;
  *colon = '\0';
  *user = buf;
  *ulen = (size_t)(colon - buf);
  *pass = colon + 1;
  *plen = (size_t)n - *ulen - 1;
  return 0;
}

/* ---- cache ---------------------------------------------------------------- */

static uint8_t cache_secret[32];
static int cache_usable; /* 0 when no random key could be drawn: every lookup misses */
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_secret_init(void) {
  cache_usable = RAND_bytes(cache_secret, sizeof(cache_secret)) == 1;
}

void htpasswd_cache_key(const char *hash, const char *user, size_t ulen, const char *pass,
                        size_t plen, uint8_t out[32]) {
  pthread_once(&cache_once, cache_secret_init);
  /* lengths first, so (user, pass) pairs cannot be shifted into each other */
  unsigned char msg[3 * 8 + 64 + 256 + HTPASSWD_MAX_CREDENTIALS];
  size_t hl = strlen(hash), n = 0;
  if (hl > 64 || ulen > 256 || plen > HTPASSWD_MAX_CREDENTIALS) {
    memset(out, 0, 32);
    return;
  }
  uint64_t lens[3] = {hl, ulen, plen};
  memcpy(msg, lens, sizeof(lens));
  n = sizeof(lens);
  memcpy(msg + n, hash, hl), n += hl;
  memcpy(msg + n, user, ulen), n += ulen;
  memcpy(msg + n, pass, plen), n += plen;
  unsigned int ol = 32;
  if (!HMAC(EVP_sha256(), cache_secret, sizeof(cache_secret), msg, n, out, &ol)) memset(out, 0, 32);
  OPENSSL_cleanse(msg, n);
}

static size_t cache_slot(const uint8_t key[32]) {
  size_t i;
  memcpy(&i, key, sizeof(i));
  return i % HTPASSWD_CACHE_SLOTS;
}

int htpasswd_cache_hit(const struct htpasswd_cache *c, const uint8_t key[32], uint64_t now_ms) {
  if (!cache_usable) return 0;
  const struct htpasswd_cache_slot *s = &c->slots[cache_slot(key)];
  return s->expires_ms > now_ms && CRYPTO_memcmp(s->digest, key, 32) == 0;
}

void htpasswd_cache_put(struct htpasswd_cache *c, const uint8_t key[32], uint64_t now_ms) {
  struct htpasswd_cache_slot *s = &c->slots[cache_slot(key)];
  memcpy(s->digest, key, 32);
  s->expires_ms = now_ms + HTPASSWD_CACHE_TTL_MS;
}
