/*
 * tls — SNI certificate stores and memory-BIO server connections (see
 * tls.h for the contract and how the worker wires it in).
 *
 * A store owns one SSL_CTX per certificate plus a certificate-less
 * listener SSL_CTX that every connection starts on. All of them are
 * configured identically (versions, ciphers, ALPN, tickets, callbacks)
 * because OpenSSL and BoringSSL read some settings from the SSL's current
 * SSL_CTX after SSL_set_SSL_CTX and others from the original one; keeping
 * them equal makes the difference irrelevant. The ClientHello callback
 * (SSL_CTX_set_client_hello_cb on OpenSSL, the select-certificate callback
 * on BoringSSL) parses SNI itself, looks it up in two sorted tables (exact
 * names, wildcard suffixes) and switches the SSL to the chosen
 * certificate's SSL_CTX before the resumption decision is made.
 *
 * Invariants: a store never changes after it is built; each connection
 * holds a reference to its store, so the tables and names the callbacks
 * read outlive it. Callbacks find the store through the connection (SSL
 * ex_data), never through an SSL_CTX, which is what lets an incremental
 * build share a certificate's SSL_CTX between stores. Ticket keys are
 * process-wide (one ring for every store), so tickets survive pushes.
 */
#include "l7proxy/tls.h"

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

#ifndef OPENSSL_IS_BORINGSSL
#include <openssl/core_names.h>
#endif

#include "common/cert.h"
#include "common/log.h"
#include "common/sni.h"
#include "common/publish.h"

#define TLS_NAME_MAX SNI_NAME_MAX
#define TLS_SESSION_ID_CONTEXT "edge-l7"

struct store_cert {
  char *name;
  SSL_CTX *ctx;       /* may be shared with other stores (reference counted) */
  uint8_t digest[32]; /* SHA-256 of chain and key, for reuse by the next store */
};

struct tls_store {
  atomic_int refs;
  SSL_CTX *listener;
  struct store_cert *certs;
  size_t n_certs;
  struct sni_table names; /* SNI → index in certs (common/sni: explain uses it too) */
  int disable_h2;
  struct tls_options opts; /* own copies of the strings */
};

struct tls_conn {
  struct tls_store *store;
  SSL *ssl;
  BIO *rbio; /* ciphertext from the peer, owned by ssl */
  BIO *wbio; /* ciphertext to the peer, owned by ssl */
  uint8_t *out;
  size_t out_off, out_len, out_cap;
  long cert; /* -1 before selection */
  int established;
  int failed;
  int closed;
  int shut;
#ifdef OPENSSL_IS_BORINGSSL
  int reject_name; /* selection failed: alert from the servername callback */
#endif
  char sni[TLS_NAME_MAX];
  char reason[256];
};

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
  long i = sni_table_select(&s->names, sni, NULL);
  return i < 0 ? NULL : s->certs[i].name;
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

/* Picks the certificate for the ClientHello's server_name extension (has
 * = whether it was present) and switches the SSL to it. 0, or -1 with a
 * reason when nothing matches and there is no default. */
static int conn_select(struct tls_conn *c, const uint8_t *ext, size_t len, int has) {
  c->sni[0] = '\0';
  int bad_sni = has && tls_parse_sni(ext, len, c->sni, sizeof(c->sni)) != 0;
  if (bad_sni) c->sni[0] = '\0';
  long i = sni_table_select(&c->store->names, c->sni[0] ? c->sni : NULL, NULL);
  if (i < 0) {
    snprintf(c->reason, sizeof(c->reason),
             "tls handshake failed: no certificate for server name %s and no default",
             bad_sni     ? "(malformed)"
             : c->sni[0] ? log_q(c->sni)
                         : "(none)");
    return -1;
  }
  c->cert = i;
  if (SSL_set_SSL_CTX(c->ssl, c->store->certs[i].ctx) == NULL) {
    snprintf(c->reason, sizeof(c->reason), "tls handshake failed: cannot switch certificate");
    return -1;
  }
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

/* ---- stores ----------------------------------------------------------- */

static int ctx_configure(SSL_CTX *ctx, const struct tls_options *o, char *err, size_t errlen) {
  int minv = o->min_version == TLS_MIN_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
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
#endif
  SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
  return 0;
}

/* No passphrase prompts: an encrypted key is simply rejected. */
static int no_password(char *buf, int size, int rwflag, void *u) {
  (void)buf, (void)size, (void)rwflag, (void)u;
  return -1;
}

/* Loads the chain and key of tc into ctx, with a reason on failure. Each
 * PEM is decoded once: key decoding dominates the cost of a store on
 * OpenSSL 3, and a push may carry thousands of certificates. */
static int ctx_load(SSL_CTX *ctx, const struct tls_certificate *tc, const char *name, char *err,
                    size_t errlen) {
  int rc = TLS_ERR_CONFIG;
  BIO *cb = NULL, *kb = NULL;
  X509 *x = NULL;
  EVP_PKEY *key = NULL;
  if (!tc->cert_pem || tc->cert_pem_len == 0 || tc->cert_pem_len > INT_MAX) {
    snprintf(err, errlen, "certificate %s: tls.crt is empty", name);
    goto out;
  }
  if (!tc->key_pem || tc->key_pem_len == 0 || tc->key_pem_len > INT_MAX) {
    snprintf(err, errlen, "certificate %s: tls.key is empty", name);
    goto out;
  }
  cb = BIO_new_mem_buf(tc->cert_pem, (int)tc->cert_pem_len);
  kb = BIO_new_mem_buf(tc->key_pem, (int)tc->key_pem_len);
  if (!cb || !kb) {
    rc = TLS_ERR_NOMEM;
    snprintf(err, errlen, "tls store: out of memory");
    goto out;
  }
  x = PEM_read_bio_X509(cb, NULL, no_password, NULL);
  if (!x) {
    snprintf(err, errlen, "certificate %s: tls.crt holds no PEM certificate", name);
    goto out;
  }
  key = PEM_read_bio_PrivateKey(kb, NULL, no_password, NULL);
  if (!key) {
    snprintf(err, errlen, "certificate %s: tls.key holds no usable private key (PEM, unencrypted)",
             name);
    goto out;
  }
  if (X509_check_private_key(x, key) != 1) {
    snprintf(err, errlen, "certificate %s: tls.key does not match the certificate", name);
    goto out;
  }
  if (SSL_CTX_use_certificate(ctx, x) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1) {
    snprintf(err, errlen, "certificate %s: the certificate or key cannot be used", name);
    goto out;
  }
  X509 *more;
  while ((more = PEM_read_bio_X509(cb, NULL, no_password, NULL)) != NULL) {
    int ok = SSL_CTX_add1_chain_cert(ctx, more);
    X509_free(more);
    if (!ok) {
      snprintf(err, errlen, "certificate %s: a chain certificate cannot be used", name);
      goto out;
    }
  }
  rc = 0;
out:
  ERR_clear_error();
  X509_free(x);
  EVP_PKEY_free(key);
  BIO_free(cb);
  BIO_free(kb);
  return rc;
}

/* SHA-256 over the chain and key: two certificates with the same digest
 * can share one SSL_CTX. Never logged. */
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

static int digest_cmp(const void *a, const void *b) {
  const struct store_cert *const *x = a, *const *y = b;
  return memcmp((*x)->digest, (*y)->digest, sizeof((*x)->digest));
}

static int digest_key_cmp(const void *key, const void *e) {
  return memcmp(key, (*(const struct store_cert *const *)e)->digest, 32);
}

/* Adds name (a SNI name or wildcard pattern) of certificate i. */
static int store_add_name(struct tls_store *s, const char *name, size_t i, const char *cert_name,
                          char *err, size_t errlen) {
  int rc = sni_table_add(&s->names, name, i);
  if (rc == SNI_ERR_NOMEM) return TLS_ERR_NOMEM;
  if (rc != 0) {
    snprintf(err, errlen, "certificate %s: invalid server name %s", cert_name,
             log_q(name ? name : ""));
    return TLS_ERR_CONFIG;
  }
  return 0;
}

static void store_free(struct tls_store *s) {
  for (size_t i = 0; i < s->n_certs; i++) {
    SSL_CTX_free(s->certs[i].ctx);
    free(s->certs[i].name);
  }
  sni_table_free(&s->names);
  SSL_CTX_free(s->listener);
  free(s->certs);
  free((char *)s->opts.ciphers_tls12);
  free((char *)s->opts.ciphersuites_tls13);
  free(s);
}

/* The SSL_CTX for tc: prev's when an identical chain and key is there
 * (a new reference), else a new one. */
static int cert_ctx(struct store_cert *const *reuse, size_t n_reuse,
                    const struct tls_certificate *tc, const struct tls_options *opts,
                    const char *name, struct store_cert *sc, char *err, size_t errlen) {
  if (pem_digest(tc, sc->digest) != 0) return TLS_ERR_NOMEM;
  struct store_cert *const *hit =
      n_reuse ? bsearch(sc->digest, reuse, n_reuse, sizeof(*reuse), digest_key_cmp) : NULL;
  if (hit && SSL_CTX_up_ref((*hit)->ctx) == 1) {
    sc->ctx = (*hit)->ctx;
    return 0;
  }
  sc->ctx = SSL_CTX_new(TLS_method());
  if (!sc->ctx) {
    snprintf(err, errlen, "tls store: out of memory");
    return TLS_ERR_NOMEM;
  }
  int rc = ctx_configure(sc->ctx, opts, err, errlen);
  return rc ? rc : ctx_load(sc->ctx, tc, name, err, errlen);
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

  int rc = TLS_ERR_NOMEM;
  struct store_cert **reuse = NULL;
  size_t n_reuse = 0;
  struct cert_info *info = malloc(sizeof(*info));
  struct tls_store *s = calloc(1, sizeof(*s));
  if (!info || !s) goto nomem;
  atomic_init(&s->refs, 1);
  sni_table_init(&s->names);
  s->disable_h2 = opts->disable_h2;
  s->opts = *opts;
  s->opts.ciphers_tls12 = opts->ciphers_tls12 ? strdup(opts->ciphers_tls12) : NULL;
  s->opts.ciphersuites_tls13 = opts->ciphersuites_tls13 ? strdup(opts->ciphersuites_tls13) : NULL;
  if ((opts->ciphers_tls12 && !s->opts.ciphers_tls12) ||
      (opts->ciphersuites_tls13 && !s->opts.ciphersuites_tls13))
    goto nomem;
  s->certs = calloc(n ? n : 1, sizeof(*s->certs));
  s->listener = SSL_CTX_new(TLS_method());
  if (!s->certs || !s->listener) goto nomem;
  if ((rc = ctx_configure(s->listener, opts, err, errlen)) != 0) goto fail;

  if (prev && prev->n_certs && options_ctx_equal(&prev->opts, opts)) {
    reuse = malloc(prev->n_certs * sizeof(*reuse));
    if (!reuse) goto nomem;
    for (size_t i = 0; i < prev->n_certs; i++) reuse[i] = &prev->certs[i];
    n_reuse = prev->n_certs;
    qsort(reuse, n_reuse, sizeof(*reuse), digest_cmp);
  }

  for (size_t i = 0; i < n; i++) {
    const struct tls_certificate *tc = &certs[i];
    char fallback[32];
    snprintf(fallback, sizeof(fallback), "#%zu", i);
    const char *name = tc->name && *tc->name ? tc->name : fallback;
    struct store_cert *sc = &s->certs[s->n_certs];
    sc->name = strdup(name);
    s->n_certs++;
    if (!sc->name) goto nomem;
    if ((rc = cert_ctx(reuse, n_reuse, tc, opts, name, sc, err, errlen)) != 0) goto fail;
    if (tc->n_sni_names) {
      if (!tc->sni_names) {
        snprintf(err, errlen, "certificate %s: server names missing", name);
        rc = TLS_ERR_CONFIG;
        goto fail;
      }
      for (size_t j = 0; j < tc->n_sni_names; j++) {
        rc = store_add_name(s, tc->sni_names[j], i, name, err, errlen);
        if (rc) goto fail;
      }
    } else {
      /* no names given: serve the certificate's own DNS names */
      char why[200];
      if (cert_parse((const char *)tc->cert_pem, tc->cert_pem_len, info, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "certificate %s: %s", name, why);
        rc = TLS_ERR_CONFIG;
        goto fail;
      }
      for (int j = 0; j < info->n_names; j++) {
        rc = store_add_name(s, info->names[j], i, name, err, errlen);
        if (rc) goto fail;
      }
    }
    if (tc->is_default) sni_table_set_default(&s->names, i);
  }
  sni_table_finish(&s->names);
  free(info);
  free(reuse);
  err[0] = '\0';
  *out = s;
  return 0;

nomem:
  snprintf(err, errlen, "tls store: out of memory");
  rc = TLS_ERR_NOMEM;
fail:
  ERR_clear_error();
  free(info);
  free(reuse);
  if (s) store_free(s);
  return rc;
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

size_t tls_store_size(const struct tls_store *s) {
  return s ? s->n_certs : 0;
}

static void store_ref_slot(void *s) {
  tls_store_ref(s);
}

static void store_unref_slot(void *s) {
  tls_store_unref(s);
}

static struct publish_slot g_current = PUBLISH_SLOT_INIT(store_ref_slot, store_unref_slot, NULL);

struct tls_store *tls_store_current(void) {
  return publish_slot_acquire(&g_current, NULL);
}

void tls_store_publish(struct tls_store *s) {
  publish_slot_publish(&g_current, s);
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
  return c && c->cert >= 0 ? c->store->certs[c->cert].name : "";
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
