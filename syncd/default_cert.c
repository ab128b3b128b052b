/*
 * default_cert — load and check PEM certificate/key pairs.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cert.h"
#include "common/der.h"
#include "common/fileio.h"

static void set_err(char *err, size_t errlen, const char *msg) {
  if (err && errlen) snprintf(err, errlen, "%s", msg);
}

/* ---- the fast path of default_cert_check ------------------------------------
 *
 * Under OpenSSL 3, PEM_read_bio_PrivateKey and d2i_*PrivateKey go through
 * the provider decoder framework (~1.5 ms per EC key, mostly lock and
 * lookup overhead), so a matching EC key is recognised without parsing it
 * into an EVP_PKEY: the key's DER (PKCS#8 or SEC1) is walked here and its
 * embedded public point compared byte for byte with the certificate's
 * SubjectPublicKeyInfo — the very comparison X509_check_private_key makes,
 * as the library takes the public point from that same field. Anything
 * unusual (no embedded point, another key type, PEM headers, a mismatch)
 * goes to the full OpenSSL path, so the results and reasons are unchanged.
 */

/* The curves the fast path knows: DER OID body → (NID, private scalar bytes). */
static int curve_of(const struct der *oid, size_t *scalar_len) {
  static const uint8_t p256[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
  static const uint8_t p384[] = {0x2b, 0x81, 0x04, 0x00, 0x22};
  static const uint8_t p521[] = {0x2b, 0x81, 0x04, 0x00, 0x23};
  if (oid->n == sizeof(p256) && !memcmp(oid->p, p256, sizeof(p256)))
    return *scalar_len = 32, NID_X9_62_prime256v1;
  if (oid->n == sizeof(p384) && !memcmp(oid->p, p384, sizeof(p384)))
    return *scalar_len = 48, NID_secp384r1;
  if (oid->n == sizeof(p521) && !memcmp(oid->p, p521, sizeof(p521)))
    return *scalar_len = 66, NID_secp521r1;
  return NID_undef;
}

/* Parses a SEC1 ECPrivateKey; curve_nid is known from PKCS#8 or NID_undef. Sets *pub to the
 * public point. Returns the curve's NID, or NID_undef when it is not the plain form. */
static int sec1_key(struct der k, int curve_nid, struct der *pub) {
  struct der seq, ver, priv, ctx, oid, bits;
  size_t slen = 0;
  if (der_expect(&k, 0x30, NULL, &seq) < 0 || k.n != 0) return NID_undef;
  if (der_expect(&seq, 0x02, NULL, &ver) < 0 || ver.n != 1 || ver.p[0] != 1) return NID_undef;
  if (der_expect(&seq, 0x04, NULL, &priv) < 0 || priv.n == 0) return NID_undef;
  if (der_peek(&seq, 0xa0)) {
    if (der_expect(&seq, 0xa0, NULL, &ctx) < 0 || der_expect(&ctx, 0x06, NULL, &oid) < 0 ||
        ctx.n != 0)
      return NID_undef;
    int nid = curve_of(&oid, &slen);
    if (nid == NID_undef || (curve_nid != NID_undef && nid != curve_nid)) return NID_undef;
    curve_nid = nid;
  }
  if (curve_nid == NID_undef) return NID_undef;
  if (der_expect(&seq, 0xa1, NULL, &ctx) < 0 || der_expect(&ctx, 0x03, NULL, &bits) < 0 ||
      ctx.n != 0 || seq.n != 0)
    return NID_undef;
  /* unused-bits octet 0, then an uncompressed or compressed point */
  if (bits.n < 2 || bits.p[0] != 0) return NID_undef;
  slen = curve_nid == NID_secp521r1 ? 66 : curve_nid == NID_secp384r1 ? 48 : 32;
  if (priv.n > slen) return NID_undef;
  int nonzero = 0;
  for (size_t i = 0; i < priv.n; i++) nonzero |= priv.p[i];
  if (!nonzero) return NID_undef;
  pub->p = bits.p + 1;
  pub->n = bits.n - 1;
  return curve_nid;
}

/* The curve NID and public point of an EC key in PEM (PKCS#8 or SEC1), else NID_undef. */
static int ec_key_public(const char *pem, size_t len, struct der *pub, uint8_t **buf) {
  size_t dl = 0;
  int nid = NID_undef;
  *buf = cert_pem_block(pem, len, "PRIVATE KEY", &dl, NULL);
  if (*buf) {
    static const uint8_t ec_oid[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
    struct der d = {*buf, dl}, seq, ver, alg, oid, curve, inner;
    size_t slen;
    if (der_expect(&d, 0x30, NULL, &seq) < 0 || d.n != 0 ||
        der_expect(&seq, 0x02, NULL, &ver) < 0 || ver.n != 1 || ver.p[0] != 0 ||
        der_expect(&seq, 0x30, NULL, &alg) < 0 || der_expect(&alg, 0x06, NULL, &oid) < 0 ||
        oid.n != sizeof(ec_oid) || memcmp(oid.p, ec_oid, sizeof(ec_oid)) != 0 ||
        der_expect(&alg, 0x06, NULL, &curve) < 0 || alg.n != 0 ||
        der_expect(&seq, 0x04, NULL, &inner) < 0 || seq.n != 0)
      return NID_undef;
    nid = curve_of(&curve, &slen);
    if (nid == NID_undef) return NID_undef;
    return sec1_key(inner, nid, pub);
  }
  *buf = cert_pem_block(pem, len, "EC PRIVATE KEY", &dl, NULL);
  if (!*buf) return NID_undef;
  return sec1_key((struct der){*buf, dl}, NID_undef, pub);
}

/* 1 when key_pem is an EC key whose public point is x's public key (same curve), else 0. */
static int fast_key_matches(X509 *x, const char *key_pem, size_t key_len) {
  struct der pub;
  uint8_t *buf = NULL;
  int nid = ec_key_public(key_pem, key_len, &pub, &buf);
  int match = 0;
  if (nid != NID_undef) {
    const ASN1_OBJECT *alg_obj = NULL, *curve_obj;
    const unsigned char *pk = NULL;
    int pklen = 0, ptype = 0;
    const void *pval = NULL;
    X509_ALGOR *alg = NULL;
    X509_PUBKEY *xpk = X509_get_X509_PUBKEY(x);
    if (xpk && X509_PUBKEY_get0_param((ASN1_OBJECT **)&alg_obj, &pk, &pklen, &alg, xpk) == 1 &&
        alg && OBJ_obj2nid(alg_obj) == NID_X9_62_id_ecPublicKey) {
      X509_ALGOR_get0(&curve_obj, &ptype, &pval, alg);
      if (ptype == V_ASN1_OBJECT && OBJ_obj2nid(pval) == nid && pk && (size_t)pklen == pub.n &&
          memcmp(pk, pub.p, pub.n) == 0)
        match = 1;
    }
  }
  free(buf);
  return match;
}

/* The first certificate when the PEM begins with a plain CERTIFICATE block, else NULL. */
static X509 *fast_cert(const char *pem, size_t len) {
  size_t dl = 0;
  uint8_t *der = cert_pem_block(pem, len, "CERTIFICATE", &dl, NULL);
  if (!der) return NULL;
  const unsigned char *p = der;
  X509 *x = d2i_X509(NULL, &p, (long)dl);
  free(der);
  return x;
}

int default_cert_check(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
                       int64_t *not_after, char *err, size_t errlen) {
  int rc = -EINVAL;
  X509 *x = NULL;
  EVP_PKEY *key = NULL;
  BIO *cb = NULL, *kb = NULL;
  if (cert_len > 0x7fffffff || key_len > 0x7fffffff) {
    set_err(err, errlen, "tls.crt or tls.key too large");
    return -EINVAL;
  }
  cb = BIO_new_mem_buf(cert_pem, (int)cert_len);
  kb = BIO_new_mem_buf(key_pem, (int)key_len);
  if (!cb || !kb) {
    rc = -ENOMEM;
    set_err(err, errlen, "out of memory");
    goto out;
  }
  x = fast_cert(cert_pem, cert_len);
  if (!x) x = PEM_read_bio_X509(cb, NULL, NULL, NULL);
  if (!x) {
    set_err(err, errlen, "tls.crt is not a valid PEM certificate");
    goto out;
  }
  if (fast_key_matches(x, key_pem, key_len)) goto matched;
  key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
  if (!key) {
    set_err(err, errlen, "tls.key is not a valid PEM private key");
    goto out;
  }
  if (X509_check_private_key(x, key) != 1) {
    set_err(err, errlen, "tls.key does not match tls.crt");
    goto out;
  }
matched:
  if (not_after) {
    struct tm tm;
    *not_after = 0;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1) *not_after = (int64_t)timegm(&tm);
  }
  rc = 0;
out:
  X509_free(x);
  EVP_PKEY_free(key);
  BIO_free(cb);
  BIO_free(kb);
  ERR_clear_error();
  return rc;
}

int default_cert_load(const char *cert_file, const char *key_file, char **cert_pem, char **key_pem,
                      char *err, size_t errlen) {
  size_t cl, kl;
  char why[128];
  *cert_pem = *key_pem = NULL;
  int rc = fileio_read(cert_file, 1u << 24, cert_pem, &cl, NULL, 0);
  if (rc < 0) {
    snprintf(err, errlen, "cannot read %s: %s", cert_file, strerror(-rc));
    return rc;
  }
  rc = fileio_read(key_file, 1u << 24, key_pem, &kl, NULL, 0);
  if (rc < 0) {
    snprintf(err, errlen, "cannot read %s: %s", key_file, strerror(-rc));
    free(*cert_pem);
    *cert_pem = NULL;
    return rc;
  }
  rc = default_cert_check(*cert_pem, cl, *key_pem, kl, NULL, why, sizeof(why));
  if (rc < 0) {
    snprintf(err, errlen, "default certificate %s / %s: %s", cert_file, key_file, why);
    free(*cert_pem);
    free(*key_pem);
    *cert_pem = *key_pem = NULL;
  }
  return rc;
}
