/*
 * upstream_tls — interned client SSL_CTXs for TLS upstreams (see
 * upstream_tls.h).
 *
 * The intern table is a small linked list under a mutex: a proxy has at
 * most a few distinct upstream TLS configurations, and the table is only
 * touched when a snapshot is built or freed, never per request. An entry
 * leaves the table when its last reference goes (snapshots hold them;
 * live connections hold their SSL_CTX through their SSL).
 */
#include "l7proxy/upstream_tls.h"

#include <arpa/inet.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l7proxy/tls.h"

struct utls_ctx {
  struct utls_ctx *next; /* intern list */
  atomic_int refs;
  uint8_t digest[32];
  uint64_t id;
  SSL_CTX *ctx;
  char *server_name;
  int h2;
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct utls_ctx *g_list;
static size_t g_count;
static uint64_t g_next_id = 1;

static int no_password(char *buf, int size, int rwflag, void *u) {
  (void)buf, (void)size, (void)rwflag, (void)u;
  return -1;
}

static int digest_of(const Edge__V1__UpstreamTls *cfg, int h2, uint8_t out[32]) {
  size_t len = edge__v1__upstream_tls__get_packed_size(cfg);
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf) return -1;
  edge__v1__upstream_tls__pack(cfg, buf);
  uint8_t alpn = (uint8_t)(h2 ? 2 : 1);
  unsigned outlen = 0;
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
           EVP_DigestUpdate(md, &alpn, 1) == 1 && EVP_DigestUpdate(md, buf, len) == 1 &&
           EVP_DigestFinal_ex(md, out, &outlen) == 1;
  EVP_MD_CTX_free(md);
  free(buf);
  return ok ? 0 : -1;
}

/* Adds every certificate of the PEM bundle to the context's trust store.
 * The number added, or -1. */
static int load_cas(SSL_CTX *ctx, const ProtobufCBinaryData *pem) {
  if (pem->len > INT_MAX) return -1;
  BIO *b = BIO_new_mem_buf(pem->data, (int)pem->len);
  if (!b) return -1;
  X509_STORE *st = SSL_CTX_get_cert_store(ctx);
  int n = 0;
  X509 *x;
  while ((x = PEM_read_bio_X509(b, NULL, no_password, NULL)) != NULL) {
    if (X509_STORE_add_cert(st, x) == 1) n++;
    X509_free(x);
  }
  ERR_clear_error();
  BIO_free(b);
  return n;
}

/* The client certificate chain and its key. 0 or -1 with a reason. */
static int load_client_cert(SSL_CTX *ctx, const Edge__V1__UpstreamTls *cfg, char *err,
                            size_t errlen) {
  int rc = -1;
  X509 *x = NULL;
  EVP_PKEY *key = NULL;
  BIO *cb = NULL, *kb = NULL;
  if (cfg->cert_pem.len > INT_MAX || cfg->key_pem.len > INT_MAX) goto out;
  cb = BIO_new_mem_buf(cfg->cert_pem.data, (int)cfg->cert_pem.len);
  kb = BIO_new_mem_buf(cfg->key_pem.data, (int)cfg->key_pem.len);
  if (!cb || !kb) goto out;
  x = PEM_read_bio_X509(cb, NULL, no_password, NULL);
  if (!x) {
    snprintf(err, errlen, "client certificate: cert_pem holds no PEM certificate");
    goto out;
  }
  key = PEM_read_bio_PrivateKey(kb, NULL, no_password, NULL);
  if (!key) {
    snprintf(err, errlen, "client certificate: key_pem holds no usable private key");
    goto out;
  }
  if (X509_check_private_key(x, key) != 1 || SSL_CTX_use_certificate(ctx, x) != 1 ||
      SSL_CTX_use_PrivateKey(ctx, key) != 1) {
    snprintf(err, errlen, "client certificate: key_pem does not match cert_pem");
    goto out;
  }
  X509 *more;
  while ((more = PEM_read_bio_X509(cb, NULL, no_password, NULL)) != NULL) {
    int ok = SSL_CTX_add1_chain_cert(ctx, more);
    X509_free(more);
    if (!ok) {
      snprintf(err, errlen, "client certificate: a chain certificate cannot be used");
      goto out;
    }
  }
  rc = 0;
out:
  if (rc != 0 && !err[0]) snprintf(err, errlen, "client certificate: cannot be loaded");
  ERR_clear_error();
  X509_free(x);
  EVP_PKEY_free(key);
  BIO_free(cb);
  BIO_free(kb);
  return rc;
}

static SSL_CTX *build(const Edge__V1__UpstreamTls *cfg, int h2, char *err, size_t errlen) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_method());
  if (!ctx) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  static const uint8_t alpn_h2[] = {2, 'h', '2'};
  static const uint8_t alpn_h1[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  int ok = SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1 &&
           SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1 &&
           SSL_CTX_set_cipher_list(ctx, TLS_DEFAULT_CIPHERS_TLS12) == 1 &&
           /* 0 is success for this one */
           SSL_CTX_set_alpn_protos(ctx, h2 ? alpn_h2 : alpn_h1,
                                   h2 ? sizeof(alpn_h2) : sizeof(alpn_h1)) == 0;
  if (!ok) {
    snprintf(err, errlen, "cannot configure the TLS context");
    goto fail;
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (cfg->ca_pem.len) {
    if (load_cas(ctx, &cfg->ca_pem) <= 0) {
      snprintf(err, errlen, "ca_pem holds no PEM certificate");
      goto fail;
    }
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    snprintf(err, errlen, "the system trust store cannot be loaded");
    goto fail;
  }
  SSL_CTX_set_verify(ctx, cfg->insecure_skip_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
  if ((cfg->cert_pem.len || cfg->key_pem.len) && load_client_cert(ctx, cfg, err, errlen) != 0)
    goto fail;
  ERR_clear_error();
  return ctx;
fail:
  ERR_clear_error();
  SSL_CTX_free(ctx);
  return NULL;
}

int utls_ctx_get(const Edge__V1__UpstreamTls *cfg, int h2, struct utls_ctx **out, char *err,
                 size_t errlen) {
  char scratch[8];
  if (!err || !errlen) err = scratch, errlen = sizeof(scratch);
  err[0] = '\0';
  *out = NULL;
  if (!cfg) {
    snprintf(err, errlen, "no configuration");
    return -1;
  }
  uint8_t d[32];
  if (digest_of(cfg, h2, d) != 0) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  pthread_mutex_lock(&g_mu);
  for (struct utls_ctx *c = g_list; c; c = c->next) {
    if (memcmp(c->digest, d, sizeof(d)) == 0) {
      atomic_fetch_add(&c->refs, 1);
      pthread_mutex_unlock(&g_mu);
      *out = c;
      return 0;
    }
  }
  pthread_mutex_unlock(&g_mu);
  /* built outside the lock: decoding a key takes milliseconds */
  SSL_CTX *ctx = build(cfg, h2, err, errlen);
  if (!ctx) return -1;
  struct utls_ctx *c = calloc(1, sizeof(*c));
  if (c) c->server_name = strdup(cfg->server_name ? cfg->server_name : "");
  if (!c || !c->server_name) {
    if (c) free(c);
    SSL_CTX_free(ctx);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  memcpy(c->digest, d, sizeof(d));
  c->ctx = ctx;
  c->h2 = h2;
  atomic_init(&c->refs, 1);
  pthread_mutex_lock(&g_mu);
  for (struct utls_ctx *o = g_list; o; o = o->next) {
    if (memcmp(o->digest, d, sizeof(d)) == 0) { /* another thread won the race */
      atomic_fetch_add(&o->refs, 1);
      pthread_mutex_unlock(&g_mu);
      SSL_CTX_free(c->ctx);
      free(c->server_name);
      free(c);
      *out = o;
      return 0;
    }
  }
  c->id = g_next_id++;
  c->next = g_list;
  g_list = c;
  g_count++;
  pthread_mutex_unlock(&g_mu);
  *out = c;
  return 0;
}

struct utls_ctx *utls_ctx_ref(struct utls_ctx *c) {
  if (c) atomic_fetch_add(&c->refs, 1);
  return c;
}

void utls_ctx_unref(struct utls_ctx *c) {
  if (!c) return;
  pthread_mutex_lock(&g_mu); /* the table must not hand out a dying entry */
  if (atomic_fetch_sub(&c->refs, 1) != 1) {
    pthread_mutex_unlock(&g_mu);
    return;
  }
  for (struct utls_ctx **pp = &g_list; *pp; pp = &(*pp)->next) {
    if (*pp == c) {
      *pp = c->next;
      g_count--;
      break;
    }
  }
  pthread_mutex_unlock(&g_mu);
  SSL_CTX_free(c->ctx);
  free(c->server_name);
  free(c);
}

uint64_t utls_ctx_id(const struct utls_ctx *c) {
  return c ? c->id : 0;
}

const char *utls_ctx_server_name(const struct utls_ctx *c) {
  return c ? c->server_name : "";
}

int utls_ctx_h2(const struct utls_ctx *c) {
  return c && c->h2;
}

int utls_conn_new(const struct utls_ctx *c, struct tls_conn **out) {
  if (!c) return TLS_ERR_INVALID;
  return tls_conn_new_client(c->ctx, c->server_name, out);
}

size_t utls_ctx_count(void) {
  pthread_mutex_lock(&g_mu);
  size_t n = g_count;
  pthread_mutex_unlock(&g_mu);
  return n;
}
