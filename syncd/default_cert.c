/*
 * default_cert — generate and load the default certificate; whether a
 * pair can be served is common/cert_valid's decision (the proxies' own).
 *
 * Every OpenSSL object is freed on every path; the private key is only
 * ever handled as PEM text in memory and never logged.
 */
#include "syncd/default_cert.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cert.h"
#include "common/cert_valid.h"

static void set_err(char *err, size_t errlen, const char *msg) {
  if (err && errlen) snprintf(err, errlen, "%s", msg);
}

/* Copies a memory BIO's contents into a new NUL-terminated string. */
static char *bio_to_string(BIO *bio) {
  char *data;
  long n = BIO_get_mem_data(bio, &data);
  if (n < 0) return NULL;
  char *s = malloc((size_t)n + 1);
  if (!s) return NULL;
  memcpy(s, data, (size_t)n);
  s[n] = '\0';
  return s;
}

int default_cert_generate(const char *cn, int days, char **cert_pem, char **key_pem, char *err,
                          size_t errlen) {
  int rc = -EIO;
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
  X509_EXTENSION *ext = NULL;
  *cert_pem = *key_pem = NULL;
  if (!key || !x || !cb || !kb) goto out;
  unsigned char serial[8];
  long long now = (long long)time(NULL);
  for (int i = 0; i < 8; i++) serial[i] = (unsigned char)(now >> (i * 8));
  serial[0] &= 0x7f;
  BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
  if (!bn) goto out;
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
  BN_free(bn);
  X509_set_version(x, 2);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400L);
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_set_pubkey(x, key);
  char san[300];
  snprintf(san, sizeof(san), "DNS:%s", cn);
  ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
  if (!ext || !X509_add_ext(x, ext, -1)) goto out;
  if (!X509_sign(x, key, EVP_sha256())) goto out;
  if (!PEM_write_bio_X509(cb, x) || !PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL))
    goto out;
  *cert_pem = bio_to_string(cb);
  *key_pem = bio_to_string(kb);
  if (!*cert_pem || !*key_pem) {
    free(*cert_pem);
    free(*key_pem);
    *cert_pem = *key_pem = NULL;
    rc = -ENOMEM;
    goto out;
  }
  rc = 0;
out:
  if (rc < 0) set_err(err, errlen, "cannot generate a self-signed certificate");
  X509_EXTENSION_free(ext);
  X509_free(x);
  EVP_PKEY_free(key);
  BIO_free(cb);
  BIO_free(kb);
  ERR_clear_error();
  return rc;
}

static int read_file(const char *path, char **out, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return -errno;
  char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n + 4096 + 1 > cap) {
      cap = cap ? cap * 2 : 8192;
      if (cap > (1u << 24)) {
        free(buf);
        fclose(f);
        return -EFBIG;
      }
      char *nb = realloc(buf, cap);
      if (!nb) {
        free(buf);
        fclose(f);
        return -ENOMEM;
      }
      buf = nb;
    }
    size_t r = fread(buf + n, 1, 4096, f);
    n += r;
    if (r < 4096) break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return -EIO;
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return 0;
}

int default_cert_load(const char *cert_file, const char *key_file, char **cert_pem, char **key_pem,
                      char *err, size_t errlen) {
  size_t cl, kl;
  char why[256];
  *cert_pem = *key_pem = NULL;
  int rc = read_file(cert_file, cert_pem, &cl);
  if (rc < 0) {
    snprintf(err, errlen, "cannot read %s: %s", cert_file, strerror(-rc));
    return rc;
  }
  rc = read_file(key_file, key_pem, &kl);
  if (rc < 0) {
    snprintf(err, errlen, "cannot read %s: %s", key_file, strerror(-rc));
    free(*cert_pem);
    *cert_pem = NULL;
    return rc;
  }
  rc = cert_valid_check((const uint8_t *)*cert_pem, cl, (const uint8_t *)*key_pem, kl, NULL, why,
                        sizeof(why)) == 0
           ? 0
           : -EINVAL;
  if (rc < 0) {
    snprintf(err, errlen, "default certificate %s / %s: %s", cert_file, key_file, why);
    free(*cert_pem);
    free(*key_pem);
    *cert_pem = *key_pem = NULL;
  }
  return rc;
}
