/*
 * tls — SNI certificate stores and memory-BIO server connections (see
 * tls.h for the contract and how the worker wires it in).
 *
 * A store has one SSL_CTX per certificate (made at build time, or on the
 * first handshake that selects it in a lazy store) plus a
 * certificate-less listener SSL_CTX that every connection starts on. All of them are
 * configured identically (versions, ciphers, ALPN, tickets, callbacks)
 * because OpenSSL and BoringSSL read some settings from the SSL's current
 * SSL_CTX after SSL_set_SSL_CTX and others from the original one; keeping
 * them equal makes the difference irrelevant. The ClientHello callback
 * (SSL_CTX_set_client_hello_cb on OpenSSL, the select-certificate callback
 * on BoringSSL) parses SNI itself, looks it up in two sorted tables (exact
 * names, wildcard suffixes) and switches the SSL to the chosen
 * certificate's SSL_CTX before the resumption decision is made.
 *
 * A certificate that OpenSSL refuses (common/cert_valid decides, the same
 * loader syncd checks Secrets with) or that names an invalid server name
 * is unusable with its reason (at build time, or at the first handshake
 * that selects it in a lazy store): handshakes for its names fall back to
 * the default certificate and the rest of the store serves as usual. Only
 * options and memory can fail a build; an unusable entry is reused by the
 * next incremental build like any other, so it is not decoded again.
 *
 * Invariants: a store never changes after it is built; each connection
 * holds a reference to its store, so the tables and names the callbacks
 * read outlive it. Callbacks find the store through the connection (SSL
 * ex_data), never through an SSL_CTX, which is what lets an incremental
 * build share a certificate (entry and SSL_CTX) between stores: by the
 * caller's pin (the immutable owner of the PEM, e.g. a snapshot resource)
 * without reading the bytes, else by a digest of them. Ticket keys are
 * process-wide (one ring for every store), so tickets survive pushes.
 */
#include "l7proxy/tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef OPENSSL_IS_BORINGSSL
#include <openssl/core_names.h>
#endif

#include "common/cert.h"
#include "common/cert_valid.h"
#include "common/log.h"
#include "common/sni.h"
#include "l7proxy/client_auth.h"
#include "l7proxy/tls_internal.h"

#define TLS_SESSION_ID_CONTEXT "edge-l7"

/* One certificate, shared by every store that has the same bytes under
 * the same name (reference counted). Its SSL_CTX is made at build time, or
 * on the first handshake that selects it in a lazy store. */
struct store_cert {
  atomic_int refs;
  char *name;
  const uint8_t *cert_pem, *key_pem; /* pinned by pin, or in copy */
  size_t cert_pem_len, key_pem_len;
  uint8_t *copy;
  void *pin;
  void (*unpin)(void *);
  const char *const *sni_names; /* pinned entries: the names given (pinned too) */
  size_t n_sni_names;
  int is_default;
  uint8_t digest[32]; /* SHA-256 of chain and key (entries without a pin) */
  pthread_mutex_t mu; /* one decode at a time */
  _Atomic(SSL_CTX *) ctx;
  char *why; /* the certificate cannot be used (set under mu) */
};

/* The SNI table (common/sni: explain uses it too), reference counted: a
 * store whose certificates have the same names at the same positions as
 * the previous one's (a rotated key, a renewed certificate) shares it. */
struct store_names {
  atomic_int refs;
  struct sni_table t;
};

/* The OCSP response stapled for certificate i of a store: per store, so a
 * refreshed response never costs a new SSL_CTX. der is borrowed from the
 * certificate entry's pin, or copy. */
struct store_staple {
  const uint8_t *der;
  size_t len;
  int64_t next_update;
  uint8_t *copy;
};

struct tls_store {
  atomic_int refs;
  SSL_CTX *listener;
  struct store_cert **certs;
  size_t n_certs;
  struct store_names *names; /* SNI → index in certs; shared by stores with the same names */
  int disable_h2;
  struct tls_options opts;      /* own copies of the strings */
  struct store_staple *staples; /* per certificate (NULL: no certificate has one) */
};

static SSL_CTX *cert_ctx_get(const struct tls_store *s, struct store_cert *e, char *why,
                             size_t whylen);
static const char *cert_why(struct store_cert *e);

const char *tls_strerror(int code) {
  switch (code) {
    case TLS_WANT_MORE:
      return "needs more input";
    case TLS_CLOSED:
      return "closed by the peer";
    case TLS_ERR_PROTOCOL:
      return "tls protocol error";
    case TLS_ERR_CONFIG:
      return "bad tls configuration";
    case TLS_ERR_NOMEM:
      return "out of memory";
    case TLS_ERR_STATE:
      return "not valid in this state";
    case TLS_ERR_INVALID:
      return "invalid argument";
    default:
      return code >= 0 ? "ok" : "unknown error";
  }
}

int tls_parse_min_version(const char *s, enum tls_min_version *out) {
  if (!s || !out) return TLS_ERR_INVALID;
  if (strncmp(s, "TLSv", 4) == 0) s += 4;
  if (strcmp(s, "1.2") == 0) {
    *out = TLS_MIN_1_2;
    return 0;
  }
  if (strcmp(s, "1.3") == 0) {
    *out = TLS_MIN_1_3;
    return 0;
  }
  return TLS_ERR_INVALID;
}

/* ---- names ------------------------------------------------------------ */

int tls_parse_sni(const uint8_t *ext, size_t len, char *out, size_t outlen) {
  if (!ext || !out || outlen == 0) return TLS_ERR_INVALID;
  out[0] = '\0';
  if (len < 2) return TLS_ERR_INVALID;
  size_t list = ((size_t)ext[0] << 8) | ext[1];
  if (list != len - 2) return TLS_ERR_INVALID;
  size_t i = 2;
  while (i + 3 <= len) {
    uint8_t type = ext[i];
    size_t n = ((size_t)ext[i + 1] << 8) | ext[i + 2];
    i += 3;
    if (n > len - i) return TLS_ERR_INVALID;
    if (type == 0) /* host_name */
      return sni_normalize((const char *)ext + i, n, 0, out, outlen) == 0 ? 0 : TLS_ERR_INVALID;
    i += n;
  }
  return TLS_ERR_INVALID;
}

const char *tls_store_select(const struct tls_store *s, const char *sni) {
  if (!s) return NULL;
  long i = sni_table_select(&s->names->t, sni, NULL);
  return i < 0 ? NULL : s->certs[i]->name;
}

/* ---- ticket keys ------------------------------------------------------ */

struct ticket_key {
  uint8_t name[16];
  uint8_t aes[32];
  uint8_t hmac[32];
};

static pthread_mutex_t g_ticket_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ticket_key g_ticket_keys[TLS_TICKET_KEY_RING]; /* [0] is current */
static int g_ticket_n;

static int ticket_key_generate(struct ticket_key *k) {
  if (RAND_bytes(k->name, sizeof(k->name)) != 1 || RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
      RAND_bytes(k->hmac, sizeof(k->hmac)) != 1)
    return TLS_ERR_NOMEM;
  return 0;
}

static int ticket_key_current(struct ticket_key *out) {
  int rc = 0;
  pthread_mutex_lock(&g_ticket_mu);
  if (g_ticket_n == 0) {
    rc = ticket_key_generate(&g_ticket_keys[0]);
    if (rc == 0) g_ticket_n = 1;
  }
  if (rc == 0) *out = g_ticket_keys[0];
  pthread_mutex_unlock(&g_ticket_mu);
  return rc;
}

/* 0 and the key named name (with *is_current), or -1 when off the ring. */
static int ticket_key_find(const uint8_t *name, struct ticket_key *out, int *is_current) {
  int rc = -1;
  pthread_mutex_lock(&g_ticket_mu);
  for (int i = 0; i < g_ticket_n; i++) {
    if (memcmp(g_ticket_keys[i].name, name, sizeof(g_ticket_keys[i].name)) == 0) {
      *out = g_ticket_keys[i];
      *is_current = i == 0;
      rc = 0;
      break;
    }
  }
  pthread_mutex_unlock(&g_ticket_mu);
  return rc;
}

int tls_ticket_keys_rotate(void) {
  struct ticket_key k;
  if (ticket_key_generate(&k) != 0) return TLS_ERR_NOMEM;
  pthread_mutex_lock(&g_ticket_mu);
  OPENSSL_cleanse(&g_ticket_keys[TLS_TICKET_KEY_RING - 1], sizeof(k));
  memmove(&g_ticket_keys[1], &g_ticket_keys[0], (TLS_TICKET_KEY_RING - 1) * sizeof(k));
  g_ticket_keys[0] = k;
  if (g_ticket_n < TLS_TICKET_KEY_RING) g_ticket_n++;
  int n = g_ticket_n;
  pthread_mutex_unlock(&g_ticket_mu);
  OPENSSL_cleanse(&k, sizeof(k));
  LOG_INFO("tls_ticket_keys_rotated", "keys=%d", n);
  return 0;
}

#ifdef OPENSSL_IS_BORINGSSL
typedef HMAC_CTX ticket_mac_ctx;
static int ticket_mac_init(ticket_mac_ctx *h, const uint8_t *key) {
  return HMAC_Init_ex(h, key, 32, EVP_sha256(), NULL);
}
#else
typedef EVP_MAC_CTX ticket_mac_ctx;
static int ticket_mac_init(ticket_mac_ctx *h, const uint8_t *key) {
  OSSL_PARAM params[3];
  params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)key, 32);
  params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
  params[2] = OSSL_PARAM_construct_end();
  return EVP_MAC_CTX_set_params(h, params);
}
#endif

/* The ticket key callback (same contract in both libraries): encrypt with
 * the current key; decrypt with any key on the ring, asking for a renewed
 * ticket (return 2) when the key is no longer current; 0 = unknown key,
 * full handshake. */
static int on_ticket_key(SSL *ssl, uint8_t *key_name, uint8_t *iv, EVP_CIPHER_CTX *ectx,
                         ticket_mac_ctx *hctx, int enc) {
  (void)ssl;
  struct ticket_key k;
  int rc;
  if (enc) {
    if (ticket_key_current(&k) != 0 || RAND_bytes(iv, 16) != 1) return -1;
    memcpy(key_name, k.name, sizeof(k.name));
    rc = EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1 &&
                 ticket_mac_init(hctx, k.hmac) == 1
             ? 1
             : -1;
  } else {
    int is_current = 0;
    if (ticket_key_find(key_name, &k, &is_current) != 0) return 0;
    rc = EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1 &&
                 ticket_mac_init(hctx, k.hmac) == 1
             ? (is_current ? 1 : 2)
             : -1;
  }
  OPENSSL_cleanse(&k, sizeof(k));
  return rc;
}

/* ---- handshake callbacks ---------------------------------------------- */

static pthread_once_t g_ex_once = PTHREAD_ONCE_INIT;
static int g_ex_index = -1;

static void ex_index_init(void) {
  g_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static struct tls_conn *conn_of(const SSL *ssl) {
  return g_ex_index < 0 ? NULL : SSL_get_ex_data(ssl, g_ex_index);
}

/* The selected certificate's OCSP response while it is current, or NULL. */
static const struct store_staple *conn_staple(const struct tls_conn *c) {
  if (!c || c->cert < 0 || !c->store->staples) return NULL;
  const struct store_staple *st = &c->store->staples[c->cert];
  if (!st->len) return NULL;
  if (st->next_update && (int64_t)time(NULL) >= st->next_update) return NULL;
  return st;
}

/* Drops the connection's client-auth source (the snapshot it holds). */
static void conn_release_auth_src(struct tls_conn *c) {
  if (c->auth_src.release) c->auth_src.release(c->auth_src.arg);
  memset(&c->auth_src, 0, sizeof(c->auth_src));
}

/* Picks the certificate for the ClientHello's server_name extension (has
 * = whether it was present) and switches the SSL to it. 0, or -1 with a
 * reason when nothing matches and there is no default. */
static int conn_select(struct tls_conn *c, const uint8_t *ext, size_t len, int has) {
  c->sni[0] = '\0';
  int bad_sni = has && tls_parse_sni(ext, len, c->sni, sizeof(c->sni)) != 0;
  if (bad_sni) c->sni[0] = '\0';
  long i = sni_table_select(&c->store->names->t, c->sni[0] ? c->sni : NULL, NULL);
  if (i < 0) {
    snprintf(c->reason, sizeof(c->reason),
             "tls handshake failed: no certificate for server name %s and no default",
             bad_sni     ? "(malformed)"
             : c->sni[0] ? log_q(c->sni)
                         : "(none)");
    return -1;
  }
  c->cert = i;
  char why[256];
  SSL_CTX *ctx = cert_ctx_get(c->store, c->store->certs[i], why, sizeof(why));
  const char *bad = ctx ? cert_why(c->store->certs[i]) : NULL; /* e.g. a bad server name */
  if (bad) ctx = NULL, snprintf(why, sizeof(why), "%s", bad);
  long d = ctx ? -1 : sni_table_select(&c->store->names->t, NULL, NULL);
  if (!ctx && d >= 0 && d != i) { /* an unusable certificate costs only its own names */
    char dwhy[256];
    ctx = cert_ctx_get(c->store, c->store->certs[d], dwhy, sizeof(dwhy));
    if (ctx) c->cert = d;
  }
  if (!ctx) {
    snprintf(c->reason, sizeof(c->reason), "tls handshake failed: %.200s", why);
    return -1;
  }
  if (SSL_set_SSL_CTX(c->ssl, ctx) == NULL) {
    snprintf(c->reason, sizeof(c->reason), "tls handshake failed: cannot switch certificate");
    return -1;
  }
  if (c->auth_src.lookup && !c->auth) {
    c->auth = cauth_policy_ref(c->auth_src.lookup(c->auth_src.arg, c->sni));
    cauth_apply(c->auth, c->ssl);
  }
  conn_release_auth_src(c);
#ifdef OPENSSL_IS_BORINGSSL
  const struct store_staple *st = conn_staple(c); /* sent only to clients that ask */
  if (st) SSL_set_ocsp_response(c->ssl, st->der, st->len);
#endif
  return 0;
}

#ifdef OPENSSL_IS_BORINGSSL
static enum ssl_select_cert_result_t on_select_certificate(const SSL_CLIENT_HELLO *ch) {
  struct tls_conn *c = conn_of(ch->ssl);
  if (!c) return ssl_select_cert_error;
  const uint8_t *ext = NULL;
  size_t len = 0;
  int has = SSL_early_callback_ctx_extension_get(ch, TLSEXT_TYPE_server_name, &ext, &len);
  /* An error return here sends handshake_failure; defer the rejection to
   * the servername callback so the client gets unrecognized_name. */
  if (conn_select(c, ext, len, has) != 0) c->reject_name = 1;
  return ssl_select_cert_success;
}

static int on_servername(SSL *ssl, int *alert, void *arg) {
  (void)arg;
  struct tls_conn *c = conn_of(ssl);
  if (!c || c->reject_name) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  return SSL_TLSEXT_ERR_OK;
}
#else
static int on_client_hello(SSL *ssl, int *alert, void *arg) {
  (void)arg;
  struct tls_conn *c = conn_of(ssl);
  if (!c) {
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_CLIENT_HELLO_ERROR;
  }
  const unsigned char *ext = NULL;
  size_t len = 0;
  int has = SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &len);
  if (conn_select(c, ext, len, has) != 0) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_CLIENT_HELLO_ERROR;
  }
  return SSL_CLIENT_HELLO_SUCCESS;
}
#endif

/* ALPN with server preference: h2 (unless disabled), then http/1.1. No
 * overlap: continue without ALPN (the caller speaks HTTP/1.1). */
static int on_alpn(SSL *ssl, const uint8_t **out, uint8_t *outlen, const uint8_t *in,
                   unsigned inlen, void *arg) {
  (void)arg;
  static const char *const prefs[] = {"h2", "http/1.1"};
  struct tls_conn *c = conn_of(ssl);
  if (!c) return SSL_TLSEXT_ERR_NOACK;
  for (size_t p = c->store->disable_h2 ? 1 : 0; p < 2; p++) {
    size_t plen = strlen(prefs[p]);
    for (unsigned i = 0; i < inlen;) {
      unsigned l = in[i];
      if (l == 0 || l > inlen - i - 1) return SSL_TLSEXT_ERR_NOACK; /* malformed */
      if (l == plen && memcmp(in + i + 1, prefs[p], plen) == 0) {
        *out = in + i + 1;
        *outlen = (uint8_t)l;
        return SSL_TLSEXT_ERR_OK;
      }
      i += 1 + l;
    }
  }
  return SSL_TLSEXT_ERR_NOACK;
}

#ifndef OPENSSL_IS_BORINGSSL
/* OCSP stapling (the client sent status_request): the response syncd
 * fetched for the certificate selected, copied into the handshake. */
static int on_status_request(SSL *ssl, void *arg) {
  (void)arg;
  const struct store_staple *st = conn_staple(conn_of(ssl));
  if (!st) return SSL_TLSEXT_ERR_NOACK;
  unsigned char *copy = OPENSSL_malloc(st->len);
  if (!copy) return SSL_TLSEXT_ERR_NOACK;
  memcpy(copy, st->der, st->len);
  if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)st->len) != 1) {
    OPENSSL_free(copy);
    return SSL_TLSEXT_ERR_NOACK;
  }
  return SSL_TLSEXT_ERR_OK;
}
#endif

/* ---- stores ----------------------------------------------------------- */

static int ctx_configure(SSL_CTX *ctx, const struct tls_options *o, char *err, size_t errlen) {
  int minv = o->min_version == TLS_MIN_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
  cert_valid_configure(ctx); /* the security level syncd checks Secrets with */
  if (!SSL_CTX_set_min_proto_version(ctx, minv) ||
      !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
    snprintf(err, errlen, "tls options: cannot set protocol versions");
    return TLS_ERR_CONFIG;
  }
  const char *ciphers = o->ciphers_tls12 ? o->ciphers_tls12 : TLS_DEFAULT_CIPHERS_TLS12;
  if (!SSL_CTX_set_cipher_list(ctx, ciphers)) {
    snprintf(err, errlen, "tls options: no usable cipher in the TLS 1.2 cipher list %s",
             log_q(ciphers));
    return TLS_ERR_CONFIG;
  }
#ifndef OPENSSL_IS_BORINGSSL
  if (o->ciphersuites_tls13 && !SSL_CTX_set_ciphersuites(ctx, o->ciphersuites_tls13)) {
    snprintf(err, errlen, "tls options: no usable suite in the TLS 1.3 ciphersuites %s",
             log_q(o->ciphersuites_tls13));
    return TLS_ERR_CONFIG;
  }
#endif
  long opts = SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION;
#ifdef SSL_OP_NO_RENEGOTIATION
  opts |= SSL_OP_NO_RENEGOTIATION;
#endif
  SSL_CTX_set_options(ctx, opts);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_session_id_context(ctx, (const unsigned char *)TLS_SESSION_ID_CONTEXT,
                                 sizeof(TLS_SESSION_ID_CONTEXT) - 1);
  if (o->disable_resumption) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
  } else {
    SSL_CTX_set_session_cache_mode(ctx,
                                   o->session_cache ? SSL_SESS_CACHE_SERVER : SSL_SESS_CACHE_OFF);
#ifdef OPENSSL_IS_BORINGSSL
    SSL_CTX_set_tlsext_ticket_key_cb(ctx, on_ticket_key);
#else
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key);
#endif
  }
#ifdef OPENSSL_IS_BORINGSSL
  SSL_CTX_set_select_certificate_cb(ctx, on_select_certificate);
  SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
#else
  SSL_CTX_set_client_hello_cb(ctx, on_client_hello, NULL);
  SSL_CTX_set_tlsext_status_cb(ctx, on_status_request);
#endif
  SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
  return 0;
}

/* Loads the chain and key of tc into ctx: common/cert_valid, the loader
 * syncd's Secret check runs too, so both sides reach the same decision.
 * The reason (without the certificate name) goes to err. */
static int ctx_load(SSL_CTX *ctx, const struct tls_certificate *tc, const char *name, char *err,
                    size_t errlen) {
  char why[256];
  if (cert_valid_load(ctx, tc->cert_pem, tc->cert_pem_len, tc->key_pem, tc->key_pem_len, NULL, why,
                      sizeof(why)) == 0)
    return 0;
  snprintf(err, errlen, "certificate %s: %s", name, why);
  return TLS_ERR_CONFIG;
}

/* SHA-256 over the chain and key: two certificates with the same digest
 * can share one entry. Never logged. */
static int pem_digest(const struct tls_certificate *tc, uint8_t out[32]) {
  uint64_t clen = tc->cert_pem_len;
  unsigned outlen = 0;
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
           EVP_DigestUpdate(md, &clen, sizeof(clen)) == 1 &&
           (!clen || EVP_DigestUpdate(md, tc->cert_pem, tc->cert_pem_len) == 1) &&
           (!tc->key_pem_len || EVP_DigestUpdate(md, tc->key_pem, tc->key_pem_len) == 1) &&
           EVP_DigestFinal_ex(md, out, &outlen) == 1 && outlen == 32;
  EVP_MD_CTX_free(md);
  return ok ? 0 : TLS_ERR_NOMEM;
}

static int str_eq(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

/* 1 when SSL_CTXs configured with a and b are interchangeable (disable_h2
 * is read from the connection's store, not from the SSL_CTX). */
static int options_ctx_equal(const struct tls_options *a, const struct tls_options *b) {
  return a->min_version == b->min_version && a->disable_resumption == b->disable_resumption &&
         a->session_cache == b->session_cache && str_eq(a->ciphers_tls12, b->ciphers_tls12) &&
         str_eq(a->ciphersuites_tls13, b->ciphersuites_tls13);
}

static void cert_unref(struct store_cert *e) {
  if (!e || atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) != 1) return;
  SSL_CTX_free(atomic_load_explicit(&e->ctx, memory_order_acquire));
  if (e->unpin) e->unpin(e->pin);
  pthread_mutex_destroy(&e->mu);
  free(e->copy);
  free(e->why);
  free(e->name);
  free(e);
}

/* A new entry for tc: its PEM pinned (tc->pin) or copied. */
static struct store_cert *cert_new(const struct tls_certificate *tc, const char *name,
                                   const struct tls_options *opts) {
  struct store_cert *e = calloc(1, sizeof(*e));
  if (!e) return NULL;
  atomic_init(&e->refs, 1);
  atomic_init(&e->ctx, NULL);
  pthread_mutex_init(&e->mu, NULL);
  e->name = strdup(name);
  e->cert_pem_len = tc->cert_pem_len;
  e->key_pem_len = tc->key_pem_len;
  if (tc->pin && opts->pin_ref && opts->pin_unref) {
    opts->pin_ref(tc->pin);
    e->pin = tc->pin;
    e->unpin = opts->pin_unref;
    e->cert_pem = tc->cert_pem;
    e->key_pem = tc->key_pem;
    e->sni_names = tc->sni_names;
    e->n_sni_names = tc->n_sni_names;
    e->is_default = tc->is_default;
  } else if (tc->cert_pem_len + tc->key_pem_len) {
    e->copy = malloc(tc->cert_pem_len + tc->key_pem_len);
    if (e->copy) {
      if (tc->cert_pem_len) memcpy(e->copy, tc->cert_pem, tc->cert_pem_len);
      if (tc->key_pem_len) memcpy(e->copy + tc->cert_pem_len, tc->key_pem, tc->key_pem_len);
      e->cert_pem = e->copy;
      e->key_pem = e->copy + tc->cert_pem_len;
    }
  }
  if (!e->name || (!e->pin && !e->copy && tc->cert_pem_len + tc->key_pem_len)) {
    cert_unref(e);
    return NULL;
  }
  return e;
}

static atomic_ullong g_decodes;

unsigned long long tls_certificates_decoded(void) {
  return atomic_load_explicit(&g_decodes, memory_order_relaxed);
}

/* Decodes e into an SSL_CTX configured with opts: 0, or a code with the
 * reason in err. */
static int cert_load(struct store_cert *e, const struct tls_options *opts, SSL_CTX **out, char *err,
                     size_t errlen) {
  atomic_fetch_add_explicit(&g_decodes, 1, memory_order_relaxed);
  SSL_CTX *ctx = SSL_CTX_new(TLS_method());
  if (!ctx) {
    snprintf(err, errlen, "tls store: out of memory");
    return TLS_ERR_NOMEM;
  }
  const struct tls_certificate tc = {.cert_pem = e->cert_pem,
                                     .cert_pem_len = e->cert_pem_len,
                                     .key_pem = e->key_pem,
                                     .key_pem_len = e->key_pem_len};
  int rc = ctx_configure(ctx, opts, err, errlen);
  if (rc == 0) rc = ctx_load(ctx, &tc, e->name, err, errlen);
  if (rc != 0) {
    SSL_CTX_free(ctx);
    return rc;
  }
  *out = ctx;
  return 0;
}

/* The SSL_CTX of entry e of store s, decoded on first use (lazy stores).
 * NULL when the certificate cannot be used: the reason, logged once, is
 * also in why. One decode per entry, whichever thread gets there first. */
static SSL_CTX *cert_ctx_get(const struct tls_store *s, struct store_cert *e, char *why,
                             size_t whylen) {
  SSL_CTX *ctx = atomic_load_explicit(&e->ctx, memory_order_acquire);
  if (ctx) return ctx;
  pthread_mutex_lock(&e->mu);
  ctx = atomic_load_explicit(&e->ctx, memory_order_acquire);
  if (!ctx && !e->why) {
    char err[256];
    int rc = cert_load(e, &s->opts, &ctx, err, sizeof(err));
    if (rc == 0) {
      atomic_store_explicit(&e->ctx, ctx, memory_order_release);
    } else if (rc == TLS_ERR_CONFIG) { /* bad material does not get better: remember */
      e->why = strdup(err);
      LOG_ERROR("tls_certificate_unusable", "certificate=%s reason=%s", log_q(e->name), log_q(err));
    }
    if (!ctx) snprintf(why, whylen, "%s", err);
  } else if (!ctx) {
    snprintf(why, whylen, "%s", e->why);
  }
  pthread_mutex_unlock(&e->mu);
  ERR_clear_error();
  return ctx;
}

static int digest_cmp(const void *a, const void *b) {
  const struct store_cert *const *x = a, *const *y = b;
  return memcmp((*x)->digest, (*y)->digest, sizeof((*x)->digest));
}

static int digest_key_cmp(const void *key, const void *e) {
  return memcmp(key, (*(const struct store_cert *const *)e)->digest, 32);
}

static int pin_cmp(const void *a, const void *b) {
  const struct store_cert *const *x = a, *const *y = b;
  uintptr_t p = (uintptr_t)(*x)->pin, q = (uintptr_t)(*y)->pin;
  return p < q ? -1 : p > q;
}

static int pin_key_cmp(const void *key, const void *e) {
  uintptr_t p = (uintptr_t)key, q = (uintptr_t)(*(const struct store_cert *const *)e)->pin;
  return p < q ? -1 : p > q;
}

/* Adds name (a SNI name or wildcard pattern) of certificate i. */
static int store_add_name(struct tls_store *s, const char *name, size_t i, const char *cert_name,
                          char *err, size_t errlen) {
  int rc = sni_table_add(&s->names->t, name, i);
  if (rc == SNI_ERR_NOMEM) return TLS_ERR_NOMEM;
  if (rc != 0) {
    snprintf(err, errlen, "certificate %s: invalid server name %s", cert_name,
             log_q(name ? name : ""));
    return TLS_ERR_CONFIG;
  }
  return 0;
}

static void store_free(struct tls_store *s) {
  for (size_t i = 0; i < s->n_certs; i++) cert_unref(s->certs[i]);
  for (size_t i = 0; s->staples && i < s->n_certs; i++) free(s->staples[i].copy);
  free(s->staples);
  if (s->names && atomic_fetch_sub_explicit(&s->names->refs, 1, memory_order_acq_rel) == 1) {
    sni_table_free(&s->names->t);
    free(s->names);
  }
  SSL_CTX_free(s->listener);
  free(s->certs);
  free((char *)s->opts.ciphers_tls12);
  free((char *)s->opts.ciphersuites_tls13);
  free(s);
}

/* What the previous store offers for reuse: its entries sorted by pin
 * (the caller's immutable owner of the PEM: same pin, same bytes) and by
 * digest (PEMs without a pin). */
struct reuse {
  struct store_cert **by_pin, **by_digest;
  size_t n_pin, n_digest;
};

static int reuse_init(struct reuse *ru, const struct tls_store *prev,
                      const struct tls_options *opts) {
  memset(ru, 0, sizeof(*ru));
  if (!prev || !prev->n_certs || !options_ctx_equal(&prev->opts, opts)) return 0;
  ru->by_pin = malloc(prev->n_certs * sizeof(*ru->by_pin));
  ru->by_digest = malloc(prev->n_certs * sizeof(*ru->by_digest));
  if (!ru->by_pin || !ru->by_digest) return TLS_ERR_NOMEM;
  for (size_t i = 0; i < prev->n_certs; i++) {
    struct store_cert *e = prev->certs[i];
    if (e->pin)
      ru->by_pin[ru->n_pin++] = e;
    else
      ru->by_digest[ru->n_digest++] = e;
  }
  qsort(ru->by_pin, ru->n_pin, sizeof(*ru->by_pin), pin_cmp);
  qsort(ru->by_digest, ru->n_digest, sizeof(*ru->by_digest), digest_cmp);
  return 0;
}

static int cert_unusable(struct store_cert *e, const char *why);

/* The entry for tc: a reused one (a new reference) or a new one, loaded
 * now unless the store is lazy. at: prev's entry at tc's position (NULL:
 * none), tried before ru. */
static int cert_entry(const struct reuse *ru, struct store_cert *at,
                      const struct tls_certificate *tc, const struct tls_options *opts,
                      const char *name, struct store_cert **out, char *err, size_t errlen) {
  struct store_cert *const *hit = NULL;
  uint8_t digest[32];
  int pinned = tc->pin && opts->pin_ref && opts->pin_unref;
  if (pinned) {
    if (at && at->pin == tc->pin)
      hit = (struct store_cert *const *)&at;
    else if (ru->n_pin)
      hit = bsearch(tc->pin, ru->by_pin, ru->n_pin, sizeof(*hit), pin_key_cmp);
  } else {
    if (pem_digest(tc, digest) != 0) return TLS_ERR_NOMEM;
    if (ru->n_digest)
      hit = bsearch(digest, ru->by_digest, ru->n_digest, sizeof(*hit), digest_key_cmp);
  }
  /* a reused entry keeps its first name (it names the same bytes) unless renamed */
  if (hit && !strcmp((*hit)->name, name) && (opts->lazy || (*hit)->ctx || (*hit)->why)) {
    atomic_fetch_add_explicit(&(*hit)->refs, 1, memory_order_relaxed);
    *out = *hit;
    return 0;
  }
  struct store_cert *e = cert_new(tc, name, opts);
  if (!e) {
    snprintf(err, errlen, "tls store: out of memory");
    return TLS_ERR_NOMEM;
  }
  if (!pinned) memcpy(e->digest, digest, sizeof(digest));
  if (!opts->lazy) {
    SSL_CTX *ctx = NULL;
    char why[300];
    int rc = TLS_ERR_CONFIG;
    if (!tc->cert_pem || !tc->cert_pem_len)
      snprintf(why, sizeof(why), "certificate %s: tls.crt is empty", name);
    else
      rc = cert_load(e, opts, &ctx, why, sizeof(why));
    if (rc == TLS_ERR_CONFIG) { /* unusable: its names fall back to the default */
      rc = cert_unusable(e, why);
    } else if (rc != 0) {
      snprintf(err, errlen, "%s", why);
    }
    if (rc != 0) {
      cert_unref(e);
      return rc;
    }
    if (ctx) atomic_store_explicit(&e->ctx, ctx, memory_order_release);
  }
  *out = e;
  return 0;
}

/* Marks e unusable (a certificate OpenSSL refuses, or a bad server name)
 * with its reason, logged once. 0 or TLS_ERR_NOMEM. */
static int cert_unusable(struct store_cert *e, const char *why) {
  pthread_mutex_lock(&e->mu);
  int first = !e->why;
  if (first) e->why = strdup(why);
  int rc = e->why ? 0 : TLS_ERR_NOMEM;
  pthread_mutex_unlock(&e->mu);
  if (first && rc == 0)
    LOG_ERROR("tls_certificate_unusable", "certificate=%s reason=%s", log_q(e->name), log_q(why));
  return rc;
}

/* The names certificate i serves: tc's, or its own DNS names. */
static int store_add_names(struct tls_store *s, const struct tls_certificate *tc, size_t i,
                           const char *name, struct cert_info *info, char *err, size_t errlen) {
  int rc = 0;
  if (tc->n_sni_names) {
    if (!tc->sni_names) {
      snprintf(err, errlen, "certificate %s: server names missing", name);
      return TLS_ERR_CONFIG;
    }
    for (size_t j = 0; rc == 0 && j < tc->n_sni_names; j++)
      rc = store_add_name(s, tc->sni_names[j], i, name, err, errlen);
    return rc;
  }
  char why[200];
  if (cert_parse((const char *)tc->cert_pem, tc->cert_pem_len, info, why, sizeof(why)) != 0) {
    snprintf(err, errlen, "certificate %s: %s", name, why);
    return TLS_ERR_CONFIG;
  }
  for (int j = 0; rc == 0 && j < info->n_names; j++)
    rc = store_add_name(s, info->names[j], i, name, err, errlen);
  return rc;
}

/* Staples tc's OCSP response as certificate i's (of n): borrowed from a
 * pinned certificate (its entry holds the pin), else copied. */
static int store_staple(struct tls_store *s, size_t i, size_t n, const struct tls_certificate *tc,
                        const struct tls_options *opts) {
  if (!tc->ocsp_der) return 0;
  if (!s->staples && !(s->staples = calloc(n, sizeof(*s->staples)))) return TLS_ERR_NOMEM;
  struct store_staple *st = &s->staples[i];
  st->der = tc->ocsp_der;
  if (!(tc->pin && opts->pin_ref && opts->pin_unref && s->certs[i]->pin == tc->pin)) {
    if (!(st->copy = malloc(tc->ocsp_der_len))) return TLS_ERR_NOMEM;
    memcpy(st->copy, tc->ocsp_der, tc->ocsp_der_len);
    st->der = st->copy;
  }
  st->len = tc->ocsp_der_len;
  st->next_update = tc->ocsp_next_update;
  return 0;
}

static int store_new(const struct tls_options *opts, size_t n, struct tls_store **out, char *err,
                     size_t errlen) {
  struct tls_store *s = calloc(1, sizeof(*s));
  *out = s;
  if (!s) return TLS_ERR_NOMEM;
  atomic_init(&s->refs, 1);
  s->disable_h2 = opts->disable_h2;
  s->opts = *opts;
  s->opts.ciphers_tls12 = opts->ciphers_tls12 ? strdup(opts->ciphers_tls12) : NULL;
  s->opts.ciphersuites_tls13 = opts->ciphersuites_tls13 ? strdup(opts->ciphersuites_tls13) : NULL;
  if ((opts->ciphers_tls12 && !s->opts.ciphers_tls12) ||
      (opts->ciphersuites_tls13 && !s->opts.ciphersuites_tls13))
    return TLS_ERR_NOMEM;
  s->certs = calloc(n ? n : 1, sizeof(*s->certs));
  s->listener = SSL_CTX_new(TLS_method());
  if (!s->certs || !s->listener) return TLS_ERR_NOMEM;
  return ctx_configure(s->listener, opts, err, errlen);
}

/* Whether certs[0..n) serve exactly the names prev's do, at the same
 * positions: each one is prev's (same pin) or has prev's name, names and
 * default flag. O(n) pointer compares; only changed ones compare strings. */
static int same_names(const struct tls_store *prev, const struct tls_certificate *certs, size_t n,
                      const struct tls_options *opts) {
  if (!prev || prev->n_certs != n || !opts->pin_ref || !options_ctx_equal(&prev->opts, opts))
    return 0;
  for (size_t i = 0; i < n; i++) {
    const struct store_cert *e = prev->certs[i];
    const struct tls_certificate *tc = &certs[i];
    if (!tc->pin || !e->pin) return 0;
    if (tc->pin == e->pin) continue;
    if (!tc->name || strcmp(tc->name, e->name) != 0 || !tc->n_sni_names ||
        tc->n_sni_names != e->n_sni_names || !tc->is_default != !e->is_default)
      return 0;
    for (size_t j = 0; j < tc->n_sni_names; j++)
      if (strcmp(tc->sni_names[j], e->sni_names[j]) != 0) return 0;
  }
  return 1;
}

int tls_store_build_from(const struct tls_store *prev, const struct tls_certificate *certs,
                         size_t n, const struct tls_options *opts, struct tls_store **out,
                         char *err, size_t errlen) {
  static const struct tls_options defaults;
  char scratch[8];
  if (!err || errlen == 0) {
    err = scratch;
    errlen = sizeof(scratch);
  }
  err[0] = '\0';
  if (!out || (n && !certs)) {
    snprintf(err, errlen, "tls store: invalid arguments");
    return TLS_ERR_INVALID;
  }
  *out = NULL;
  if (!opts) opts = &defaults;
  if (opts->min_version != TLS_MIN_1_2 && opts->min_version != TLS_MIN_1_3) {
    snprintf(err, errlen, "tls options: unknown minimum version");
    return TLS_ERR_CONFIG;
  }
  pthread_once(&g_ex_once, ex_index_init);
  if (g_ex_index < 0) {
    snprintf(err, errlen, "tls store: no SSL ex_data index");
    return TLS_ERR_NOMEM;
  }

  struct reuse ru;
  memset(&ru, 0, sizeof(ru));
  struct tls_store *s = NULL;
  struct cert_info *info = malloc(sizeof(*info));
  int rc = info ? store_new(opts, n, &s, err, errlen) : TLS_ERR_NOMEM;
  int share = rc == 0 && same_names(prev, certs, n, opts);
  if (rc == 0 && share) {
    s->names = prev->names; /* a rotation: the same names at the same positions */
    atomic_fetch_add_explicit(&s->names->refs, 1, memory_order_relaxed);
  } else if (rc == 0) {
    s->names = calloc(1, sizeof(*s->names));
    if (!s->names) rc = TLS_ERR_NOMEM;
    if (rc == 0) {
      atomic_init(&s->names->refs, 1);
      sni_table_init(&s->names->t);
      rc = reuse_init(&ru, prev, opts);
    }
  }
  for (size_t i = 0; rc == 0 && i < n; i++) {
    const struct tls_certificate *tc = &certs[i];
    char fallback[32];
    const char *name = tc->name;
    if (!name || !*name) {
      snprintf(fallback, sizeof(fallback), "#%zu", i);
      name = fallback;
    }
    struct store_cert *at =
        prev && i < prev->n_certs && options_ctx_equal(&prev->opts, opts) ? prev->certs[i] : NULL;
    rc = cert_entry(&ru, at, tc, opts, name, &s->certs[i], err, errlen);
    if (rc == 0) s->n_certs++;
    if (rc == 0 && tc->ocsp_der_len) rc = store_staple(s, i, n, tc, opts);
    if (share) continue;
    if (rc == 0) {
      char why[300];
      rc = store_add_names(s, tc, i, name, info, why, sizeof(why));
      if (rc == TLS_ERR_CONFIG) rc = cert_unusable(s->certs[i], why); /* a bad name */
      if (rc != 0) snprintf(err, errlen, "%s", why);
    }
    if (rc == 0 && tc->is_default) sni_table_set_default(&s->names->t, i);
  }
  free(ru.by_pin);
  free(ru.by_digest);
  free(info);
  ERR_clear_error();
  if (rc != 0) {
    if (rc == TLS_ERR_NOMEM) snprintf(err, errlen, "tls store: out of memory");
    if (s) store_free(s);
    return rc;
  }
  if (!share) sni_table_finish(&s->names->t);
  err[0] = '\0';
  *out = s;
  return 0;
}

int tls_store_build(const struct tls_certificate *certs, size_t n, const struct tls_options *opts,
                    struct tls_store **out, char *err, size_t errlen) {
  return tls_store_build_from(NULL, certs, n, opts, out, err, errlen);
}

void tls_store_ref(struct tls_store *s) {
  if (s) atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void tls_store_unref(struct tls_store *s) {
  if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) store_free(s);
}

/* e's reason when it is unusable, else NULL (set once, never cleared). */
static const char *cert_why(struct store_cert *e) {
  pthread_mutex_lock(&e->mu);
  const char *why = e->why;
  pthread_mutex_unlock(&e->mu);
  return why;
}

size_t tls_store_n_problems(const struct tls_store *s) {
  size_t n = 0;
  for (size_t k = 0; s && k < s->n_certs; k++) n += cert_why(s->certs[k]) != NULL;
  return n;
}

size_t tls_store_size(const struct tls_store *s) {
  return s ? s->n_certs - tls_store_n_problems(s) : 0;
}

const char *tls_store_problem(const struct tls_store *s, size_t i, const char **cert_name) {
  for (size_t k = 0; s && k < s->n_certs; k++) {
    const char *why = cert_why(s->certs[k]);
    if (!why) continue;
    if (i-- == 0) {
      if (cert_name) *cert_name = s->certs[k]->name;
      return why;
    }
  }
  return NULL;
}

size_t tls_store_loaded(const struct tls_store *s) {
  size_t n = 0;
  for (size_t i = 0; s && i < s->n_certs; i++)
    n += atomic_load_explicit(&s->certs[i]->ctx, memory_order_acquire) != NULL;
  return n;
}

/* ---- connections ------------------------------------------------------ */

int tls_conn_new(struct tls_store *store, struct tls_conn **out) {
  if (!store || !out) return TLS_ERR_INVALID;
  *out = NULL;
  struct tls_conn *c = calloc(1, sizeof(*c));
  if (!c) return TLS_ERR_NOMEM;
  c->cert = -1;
  c->ssl = SSL_new(store->listener);
  c->rbio = BIO_new(BIO_s_mem());
  c->wbio = BIO_new(BIO_s_mem());
  if (!c->ssl || !c->rbio || !c->wbio || !SSL_set_ex_data(c->ssl, g_ex_index, c)) {
    BIO_free(c->rbio);
    BIO_free(c->wbio);
    SSL_free(c->ssl);
    free(c);
    ERR_clear_error();
    return TLS_ERR_NOMEM;
  }
  SSL_set_bio(c->ssl, c->rbio, c->wbio); /* ssl owns both now */
  SSL_set_accept_state(c->ssl);
  tls_store_ref(store);
  c->store = store;
  *out = c;
  return 0;
}

void tls_conn_free(struct tls_conn *c) {
  if (!c) return;
  cauth_peer_free(c->peer);
  cauth_policy_unref(c->auth);
  conn_release_auth_src(c);
  SSL_free(c->ssl);
  tls_store_unref(c->store);
  free(c->out);
  free(c);
}

int tls_conn_feed(struct tls_conn *c, const void *data, size_t len) {
  if (!c || (!data && len) || len > INT_MAX) return TLS_ERR_INVALID;
  if (len == 0) return 0;
  if (BIO_write(c->rbio, data, (int)len) != (int)len) return TLS_ERR_NOMEM;
  return 0;
}

/* Records why the connection died (the callbacks' reason wins, else the
 * library's) and clears the thread's error queue. */
static int conn_fail(struct tls_conn *c, const char *what) {
  if (!c->reason[0]) {
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(c->reason, sizeof(c->reason), "%s: %s", what, r && *r ? r : "protocol error");
    /* BoringSSL says NO_SHARED_CIPHER where OpenSSL says no shared cipher */
    for (char *p = c->reason + strlen(what); *p; p++)
      *p = *p == '_' ? ' ' : (char)tolower((unsigned char)*p);
    long v = c->client ? SSL_get_verify_result(c->ssl) : X509_V_OK;
    if (v != X509_V_OK) { /* an upstream's certificate: say what was wrong with it */
      size_t l = strlen(c->reason);
      snprintf(c->reason + l, sizeof(c->reason) - l, ": %s", X509_verify_cert_error_string(v));
    }
  }
  ERR_clear_error();
  c->failed = 1;
  return TLS_ERR_PROTOCOL;
}

static int conn_result(struct tls_conn *c, int r, const char *what) {
  switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
      return TLS_WANT_MORE;
    case SSL_ERROR_ZERO_RETURN:
      c->closed = 1;
      return TLS_CLOSED;
    default:
      return conn_fail(c, what);
  }
}

int tls_conn_read(struct tls_conn *c, void *buf, size_t cap) {
  if (!c || !buf || cap == 0) return TLS_ERR_INVALID;
  if (c->failed) return TLS_ERR_PROTOCOL;
  if (c->closed) return TLS_CLOSED;
  ERR_clear_error();
  if (!c->established) {
    int r = SSL_do_handshake(c->ssl);
    if (r != 1) return conn_result(c, r, "tls handshake failed");
    c->established = 1;
  }
  int r = SSL_read(c->ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
  if (r > 0) return r;
  return conn_result(c, r, "tls read failed");
}

int tls_conn_write(struct tls_conn *c, const void *data, size_t len) {
  if (!c || (!data && len) || len > INT_MAX) return TLS_ERR_INVALID;
  if (c->failed) return TLS_ERR_PROTOCOL;
  if (!c->established || c->shut || c->closed) return TLS_ERR_STATE;
  if (len == 0) return 0;
  ERR_clear_error();
  size_t done = 0;
  while (done < len) {
    int r = SSL_write(c->ssl, (const uint8_t *)data + done, (int)(len - done));
    if (r <= 0) return conn_result(c, r, "tls write failed");
    done += (size_t)r;
  }
  return (int)len;
}

void tls_conn_pending_output(struct tls_conn *c, const uint8_t **ptr, size_t *len) {
  *ptr = NULL;
  *len = 0;
  if (!c) return;
  if (c->out_off == c->out_len) {
    c->out_off = c->out_len = 0;
    size_t avail = BIO_ctrl_pending(c->wbio);
    if (avail > INT_MAX) avail = INT_MAX;
    if (avail > c->out_cap) {
      uint8_t *p = realloc(c->out, avail);
      if (!p) return; /* stays in the BIO; the next call retries */
      c->out = p;
      c->out_cap = avail;
    }
    if (avail) {
      int r = BIO_read(c->wbio, c->out, (int)avail);
      c->out_len = r > 0 ? (size_t)r : 0;
    }
  }
  if (!c->out) return;
  *ptr = c->out + c->out_off;
  *len = c->out_len - c->out_off;
}

void tls_conn_consume_output(struct tls_conn *c, size_t n) {
  if (!c) return;
  size_t left = c->out_len - c->out_off;
  c->out_off += n < left ? n : left;
}

int tls_conn_shutdown(struct tls_conn *c) {
  if (!c) return TLS_ERR_INVALID;
  if (c->shut) return 0;
  c->shut = 1;
  if (!c->established || c->failed) return 0; /* nothing to close cleanly */
  ERR_clear_error();
  int r = SSL_shutdown(c->ssl);
  if (r < 0) return conn_fail(c, "tls shutdown failed");
  return 0;
}

int tls_conn_handshake_done(const struct tls_conn *c) {
  return c && c->established;
}

const char *tls_conn_alpn(const struct tls_conn *c) {
  if (!c) return "";
  const uint8_t *p = NULL;
  unsigned len = 0;
  SSL_get0_alpn_selected(c->ssl, &p, &len);
  if (len == 2 && memcmp(p, "h2", 2) == 0) return "h2";
  if (len == 8 && memcmp(p, "http/1.1", 8) == 0) return "http/1.1";
  return "";
}

const char *tls_conn_sni(const struct tls_conn *c) {
  return c ? c->sni : "";
}

const char *tls_conn_certificate_name(const struct tls_conn *c) {
  return c && c->cert >= 0 ? c->store->certs[c->cert]->name : "";
}

const char *tls_conn_version(const struct tls_conn *c) {
  return c ? SSL_get_version(c->ssl) : "";
}

int tls_conn_resumed(const struct tls_conn *c) {
  return c && SSL_session_reused(c->ssl);
}

const char *tls_conn_error(const struct tls_conn *c) {
  return c ? c->reason : "";
}

/* ---- client certificates ---------------------------------------------- */

void tls_conn_set_client_auth(struct tls_conn *c, const struct tls_client_auth_source *src) {
  if (!c) {
    if (src && src->release) src->release(src->arg);
    return;
  }
  conn_release_auth_src(c);
  if (src) c->auth_src = *src;
}
