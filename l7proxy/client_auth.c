/*
 * client_auth — policies (reference counted), the handshake hook and
 * the per-request decision for client certificates (see client_auth.h).
 *
 * Policies are compiled once per virtual host resource (l7proxy/
 * snapshot_policy.c) and reference counted: the resource holds one, and
 * a connection whose handshake applied a policy holds another, so a push
 * that replaces the host never frees what a live connection compares
 * against.
 *
 * The verify callback accepts every certificate so that the handshake
 * completes; SSL_get_verify_result keeps the real outcome (OpenSSL and
 * BoringSSL both record the error even when the callback overrides it)
 * and it is stored with the session, so a resumed connection keeps the
 * verdict of the handshake that checked the certificate. The session id
 * context is the policy's digest: neither library resumes a session made
 * under another context, so a ticket never carries a verdict across
 * policies.
 */
#include "l7proxy/client_auth.h"

#include <limits.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sni.h"

#define CAUTH_MAX_CHAIN 32768 /* encoded; a longer chain is not forwarded */

struct cauth_policy {
  atomic_int refs;
  uint8_t digest[32];
  int mode;
  int depth;
  int pass_chain;
  X509_STORE *store;
  STACK_OF(X509_NAME) * names;
};

/* ---- policies -------------------------------------------------------------- */

static int no_password(char *buf, int size, int rwflag, void *u) {
  (void)buf, (void)size, (void)rwflag, (void)u;
  return -1;
}

int cauth_policy_new(const Edge__V1__ClientAuth *ca, const char *vhost, struct cauth_policy **out,
                     char *err, size_t errlen) {
  *out = NULL;
  struct cauth_policy *p = calloc(1, sizeof(*p));
  BIO *b = NULL;
  if (!p) goto nomem;
  atomic_init(&p->refs, 1);
  p->mode = ca->mode;
  p->depth = ca->verify_depth ? (int)ca->verify_depth : 1;
  p->pass_chain = ca->pass_certificate;
  if (ca->mode != EDGE__V1__CLIENT_AUTH_MODE__CLIENT_AUTH_MODE_REQUIRED &&
      ca->mode != EDGE__V1__CLIENT_AUTH_MODE__CLIENT_AUTH_MODE_OPTIONAL) {
    snprintf(err, errlen, "virtual host %s: client_auth: unknown mode %d", vhost, (int)ca->mode);
    cauth_policy_unref(p);
    return -1;
  }
  if (p->depth > 16) {
    snprintf(err, errlen, "virtual host %s: client_auth: verify_depth %d is above 16", vhost,
             p->depth);
    cauth_policy_unref(p);
    return -1;
  }
  p->store = X509_STORE_new();
  p->names = sk_X509_NAME_new_null();
  if (!p->store || !p->names || ca->ca_pem.len > INT_MAX) goto nomem;
  b = BIO_new_mem_buf(ca->ca_pem.data, (int)ca->ca_pem.len);
  if (!b) goto nomem;
  X509 *x;
  int n = 0;
  while ((x = PEM_read_bio_X509(b, NULL, no_password, NULL)) != NULL) {
    X509_NAME *nm = X509_NAME_dup(X509_get_subject_name(x));
    int ok = X509_STORE_add_cert(p->store, x) == 1 && nm && sk_X509_NAME_push(p->names, nm);
    if (!ok) X509_NAME_free(nm);
    X509_free(x);
    if (!ok) goto nomem;
    n++;
  }
  ERR_clear_error();
  BIO_free(b);
  b = NULL;
  if (n == 0) {
    snprintf(err, errlen, "virtual host %s: client_auth: ca_pem holds no PEM certificate", vhost);
    cauth_policy_unref(p);
    return -1;
  }
  uint8_t head[3] = {(uint8_t)p->mode, (uint8_t)p->depth, (uint8_t)p->pass_chain};
  unsigned dl = 0;
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
           EVP_DigestUpdate(md, head, sizeof(head)) == 1 &&
           EVP_DigestUpdate(md, ca->ca_pem.data, ca->ca_pem.len) == 1 &&
           EVP_DigestFinal_ex(md, p->digest, &dl) == 1;
  EVP_MD_CTX_free(md);
  if (!ok) goto nomem;
  *out = p;
  return 0;
nomem:
  ERR_clear_error();
  BIO_free(b);
  cauth_policy_unref(p);
  snprintf(err, errlen, "virtual host %s: client_auth: out of memory", vhost);
  return -1;
}

struct cauth_policy *cauth_policy_ref(const struct cauth_policy *cp) {
  struct cauth_policy *p = (struct cauth_policy *)cp; /* only the count changes */
  if (p) atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
  return p;
}

void cauth_policy_unref(const struct cauth_policy *cp) {
  struct cauth_policy *p = (struct cauth_policy *)cp;
  if (!p || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1) return;
  X509_STORE_free(p->store);
  sk_X509_NAME_pop_free(p->names, X509_NAME_free);
  free(p);
}

int cauth_policy_same(const struct cauth_policy *a, const struct cauth_policy *b) {
  if (a == b) return 1;
  if (!a || !b) return 0;
  return memcmp(a->digest, b->digest, sizeof(a->digest)) == 0;
}

int cauth_policy_required(const struct cauth_policy *p) {
  return p && p->mode == EDGE__V1__CLIENT_AUTH_MODE__CLIENT_AUTH_MODE_REQUIRED;
}

int cauth_policy_pass_chain(const struct cauth_policy *p) {
  return p && p->pass_chain;
}

/* ---- the handshake ------------------------------------------------------------ */

/* Every certificate passes here; the verdict is the verify result. */
static int accept_and_record(int ok, X509_STORE_CTX *x) {
  (void)ok, (void)x;
  return 1;
}

void cauth_apply(const struct cauth_policy *p, SSL *ssl) {
  if (!p) return;
  STACK_OF(X509_NAME) *names = SSL_dup_CA_list(p->names);
  if (names) SSL_set_client_CA_list(ssl, names); /* takes ownership */
  SSL_set1_verify_cert_store(ssl, p->store);
  SSL_set_verify_depth(ssl, p->depth);
  SSL_set_verify(ssl, SSL_VERIFY_PEER, accept_and_record);
  SSL_set_session_id_context(ssl, p->digest, 32);
}

/* ---- what the client presented --------------------------------------------------- */

char *cauth_printable(const char *s, size_t n) {
  char *out = malloc(n + 1);
  if (!out) return NULL;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    out[i] = c >= 0x20 && c <= 0x7e ? (char)c : '?';
  }
  out[n] = '\0';
  return out;
}

char *cauth_urlencode(const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  char *out = malloc(3 * n + 1);
  if (!out) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out[k++] = (char)c;
    } else {
      out[k++] = '%';
      out[k++] = hex[c >> 4];
      out[k++] = hex[c & 15];
    }
  }
  out[k] = '\0';
  return out;
}

static char *name_text(X509_NAME *nm) {
  BIO *b = BIO_new(BIO_s_mem());
  if (!b) return NULL;
  char *out = NULL;
  if (X509_NAME_print_ex(b, nm, 0, XN_FLAG_RFC2253) >= 0) {
    char *p = NULL;
    long len = BIO_get_mem_data(b, &p);
    if (len >= 0 && p) out = cauth_printable(p, (size_t)len);
  }
  BIO_free(b);
  return out;
}

/* PEM of x appended to b. */
static int pem_of(BIO *b, X509 *x) {
  return PEM_write_bio_X509(b, x) == 1;
}

static char *chain_text(X509 *leaf, STACK_OF(X509) * more) {
  BIO *b = BIO_new(BIO_s_mem());
  if (!b) return NULL;
  int ok = pem_of(b, leaf);
  /* OpenSSL's server side leaves the leaf out of the peer chain; BoringSSL's too */
  for (size_t i = 0; ok && more && i < (size_t)sk_X509_num(more); i++) {
    X509 *x = sk_X509_value(more, (int)i);
    if (X509_cmp(x, leaf) != 0) ok = pem_of(b, x);
  }
  char *out = NULL, *p = NULL;
  long len = ok ? BIO_get_mem_data(b, &p) : -1;
  if (len > 0 && p && (size_t)len * 3 <= CAUTH_MAX_CHAIN) out = cauth_urlencode(p, (size_t)len);
  BIO_free(b);
  return out;
}

struct cauth_peer *cauth_peer_new(const SSL *ssl, int chain) {
  struct cauth_peer *p = calloc(1, sizeof(*p));
  if (!p) return NULL;
  p->verify_result = SSL_get_verify_result(ssl);
  p->verify_error =
      p->verify_result == X509_V_OK ? "" : X509_verify_cert_error_string(p->verify_result);
#ifdef OPENSSL_IS_BORINGSSL
  X509 *leaf = SSL_get_peer_certificate(ssl);
#else
  X509 *leaf = SSL_get1_peer_certificate(ssl);
#endif
  if (!leaf) return p;
  p->has_cert = 1;
  p->subject = name_text(X509_get_subject_name(leaf));
  p->issuer = name_text(X509_get_issuer_name(leaf));
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned mdl = 0;
  if (X509_digest(leaf, EVP_sha256(), md, &mdl) == 1 && mdl == 32)
    for (unsigned i = 0; i < 32; i++) snprintf(p->fingerprint + 2 * i, 3, "%02x", md[i]);
  if (chain) p->chain = chain_text(leaf, SSL_get_peer_cert_chain(ssl));
  X509_free(leaf);
  ERR_clear_error();
  if (!p->subject || !p->issuer) {
    cauth_peer_free(p);
    return NULL;
  }
  return p;
}

void cauth_peer_free(struct cauth_peer *p) {
  if (!p) return;
  free(p->subject);
  free(p->issuer);
  free(p->chain);
  free(p);
}

/* ---- the decision --------------------------------------------------------------- */

enum cauth_verdict cauth_decide(const struct cauth_policy *want, const struct cauth_policy *conn,
                                int tls, int has_cert, int verify_ok) {
  if (!want) return CAUTH_PASS;
  if (!tls) return cauth_policy_required(want) ? CAUTH_MISSING : CAUTH_PASS;
  if (!cauth_policy_same(want, conn)) return CAUTH_MISDIRECTED;
  if (!has_cert) return cauth_policy_required(want) ? CAUTH_MISSING : CAUTH_PASS;
  return verify_ok ? CAUTH_PASS : CAUTH_INVALID;
}

const char *cauth_verdict_name(enum cauth_verdict v) {
  switch (v) {
    case CAUTH_MISSING:
      return "missing";
    case CAUTH_INVALID:
      return "invalid";
    case CAUTH_MISDIRECTED:
      return "misdirected";
    default:
      return "pass";
  }
}
