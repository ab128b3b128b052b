/*
 * cert_valid — one OpenSSL loader for served certificates and the check
 * syncd runs with it (see cert_valid.h).
 *
 * The chain loop reads CERTIFICATE blocks until the PEM reader reports
 * "no start line" (the clean end); any other error means a block that
 * does not decode, which SSL_CTX_use_certificate_chain_file would refuse
 * too. The OpenSSL error queue is cleared on every path so a failure here
 * never leaks into an unrelated later call on the same thread.
 */
#include "common/cert_valid.h"

#include <limits.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void cert_valid_configure(SSL_CTX *ctx) {
#ifndef OPENSSL_IS_BORINGSSL
  SSL_CTX_set_security_level(ctx, CERT_VALID_SECURITY_LEVEL);
#else
  (void)ctx;
#endif
}

/* No passphrase prompts: an encrypted key is simply refused. */
static int no_password(char *buf, int size, int rwflag, void *u) {
  (void)buf, (void)size, (void)rwflag, (void)u;
  return -1;
}

/* "what: OpenSSL's reason" for the error on top of the queue. */
static void ssl_reason(char *err, size_t errlen, const char *what) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  snprintf(err, errlen, "%s%s%s", what, r ? ": " : "", r ? r : "");
}

static int pem_clean_end(void) {
  unsigned long e = ERR_peek_last_error();
  return e == 0 || (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE);
}

int cert_valid_load(SSL_CTX *ctx, const uint8_t *cert_pem, size_t cert_len, const uint8_t *key_pem,
                    size_t key_len, int64_t *not_after, char *err, size_t errlen) {
  int rc = -1;
  BIO *cb = NULL, *kb = NULL;
  X509 *leaf = NULL;
  EVP_PKEY *key = NULL;
  ERR_clear_error();
  if (!cert_pem || cert_len == 0 || cert_len > INT_MAX) {
    snprintf(err, errlen, "tls.crt is empty");
    goto out;
  }
  if (!key_pem || key_len == 0 || key_len > INT_MAX) {
    snprintf(err, errlen, "tls.key is empty");
    goto out;
  }
  cb = BIO_new_mem_buf(cert_pem, (int)cert_len);
  kb = BIO_new_mem_buf(key_pem, (int)key_len);
  if (!cb || !kb) {
    snprintf(err, errlen, "out of memory");
    goto out;
  }
  leaf = PEM_read_bio_X509(cb, NULL, no_password, NULL);
  if (!leaf) {
    snprintf(err, errlen, "tls.crt holds no PEM certificate");
    goto out;
  }
  key = PEM_read_bio_PrivateKey(kb, NULL, no_password, NULL);
  if (!key) {
    snprintf(err, errlen, "tls.key holds no usable private key (PEM, unencrypted)");
    goto out;
  }
  if (SSL_CTX_use_certificate(ctx, leaf) != 1) {
    ssl_reason(err, errlen, "tls.crt: the certificate is refused");
    goto out;
  }
  if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    ssl_reason(err, errlen, "tls.key does not match the certificate or is refused");
    goto out;
  }
  ERR_clear_error();
  X509 *more;
  int n = 1;
  while ((more = PEM_read_bio_X509(cb, NULL, no_password, NULL)) != NULL) {
    n++;
    int ok = SSL_CTX_add1_chain_cert(ctx, more);
    X509_free(more);
    if (!ok) {
      char what[64];
      snprintf(what, sizeof(what), "tls.crt: chain certificate %d is refused", n);
      ssl_reason(err, errlen, what);
      goto out;
    }
  }
  if (!pem_clean_end()) {
    snprintf(err, errlen, "tls.crt: certificate %d does not parse", n + 1);
    goto out;
  }
  if (not_after) {
    struct tm tm;
    *not_after = 0;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) == 1) *not_after = (int64_t)timegm(&tm);
  }
  rc = 0;
out:
  ERR_clear_error();
  X509_free(leaf);
  EVP_PKEY_free(key);
  BIO_free(cb);
  BIO_free(kb);
  return rc;
}

int cert_valid_check(const uint8_t *cert_pem, size_t cert_len, const uint8_t *key_pem,
                     size_t key_len, int64_t *not_after, char *err, size_t errlen) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_method());
  if (!ctx) {
    snprintf(err, errlen, "out of memory");
    ERR_clear_error();
    return -1;
  }
  cert_valid_configure(ctx);
  int rc = cert_valid_load(ctx, cert_pem, cert_len, key_pem, key_len, not_after, err, errlen);
  SSL_CTX_free(ctx);
  return rc;
}
