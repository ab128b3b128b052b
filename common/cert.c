/*
 * cert — X.509 helpers on the API OpenSSL 3 and BoringSSL share.
 *
 * Expiry is computed with ASN1_TIME_diff against the epoch because the two
 * libraries disagree on ASN1_TIME_to_tm / ASN1_TIME_to_posix.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include "common/cert.h"

#include <arpa/inet.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/der.h"

static int64_t asn1_to_epoch(const ASN1_TIME *t) {
  ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
  int days = 0, secs = 0;
  int64_t v = 0;
  if (epoch && ASN1_TIME_diff(&days, &secs, epoch, t)) v = (int64_t)days * 86400 + secs;
  ASN1_TIME_free(epoch);
  return v;
}

static void name_oneline(const X509_NAME *n, char *out, size_t outlen) {
  out[0] = '\0';
  size_t o = 0;
  for (int i = 0; i < X509_NAME_entry_count(n); i++) {
    const X509_NAME_ENTRY *e = X509_NAME_get_entry(n, i);
    const ASN1_OBJECT *obj = X509_NAME_ENTRY_get_object(e);
    const ASN1_STRING *val = X509_NAME_ENTRY_get_data(e);
    const char *sn = OBJ_nid2sn(OBJ_obj2nid(obj));
    int w = snprintf(out + o, outlen - o, "%s%s=%.*s", o ? ", " : "", sn ? sn : "?",
                     ASN1_STRING_length(val), (const char *)ASN1_STRING_get0_data(val));
    if (w < 0 || (size_t)w >= outlen - o) break;
    o += (size_t)w;
  }
}

static void cn_of(const X509_NAME *n, char *out, size_t outlen) {
  out[0] = '\0';
  int idx = X509_NAME_get_index_by_NID((X509_NAME *)n, NID_commonName, -1);
  if (idx < 0) return;
  const ASN1_STRING *val = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, idx));
  snprintf(out, outlen, "%.*s", ASN1_STRING_length(val), (const char *)ASN1_STRING_get0_data(val));
}

uint8_t *cert_pem_block(const char *pem, size_t len, const char *label, size_t *der_len,
                        const char **next) {
  static const char begin[] = "-----BEGIN ", end[] = "-----END ";
  size_t ll = strlen(label);
  const char *lim = pem + len;
  const char *b = memmem(pem, len, begin, sizeof(begin) - 1);
  if (!b) return NULL;
  b += sizeof(begin) - 1;
  if ((size_t)(lim - b) < ll + 5 || memcmp(b, label, ll) != 0 || memcmp(b + ll, "-----", 5) != 0)
    return NULL;
  b += ll + 5;
  const char *e = memmem(b, (size_t)(lim - b), end, sizeof(end) - 1);
  if (!e || (size_t)(lim - e) < sizeof(end) - 1 + ll + 5 ||
      memcmp(e + sizeof(end) - 1, label, ll) != 0 || memcmp(e + sizeof(end) - 1 + ll, "-----", 5))
    return NULL;
  char *text = malloc((size_t)(e - b) + 1);
  uint8_t *der = malloc((size_t)(e - b) + 1);
  size_t n = 0, pad = 0;
  if (!text || !der) goto fail;
  for (const char *p = b; p < e; p++) {
    if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') continue;
    text[n++] = *p;
  }
  if (n == 0 || n % 4 != 0) goto fail;
  if (text[n - 1] == '=') pad++;
  if (text[n - 2] == '=') pad++;
  int dl = EVP_DecodeBlock(der, (const unsigned char *)text, (int)n);
  if (dl < 0 || (size_t)dl < pad) goto fail;
  free(text);
  *der_len = (size_t)dl - pad;
  if (next) *next = e + sizeof(end) - 1 + ll + 5;
  return der;
fail:
  free(text);
  free(der);
  return NULL;
}

/* ---- the fast path of cert_parse --------------------------------------------
 *
 * d2i_X509 under OpenSSL 3 decodes the subject public key through the
 * provider decoder framework (~0.4 ms a certificate, mostly locking), and
 * callers such as syncd's status parse every certificate of a 10,000-host
 * configuration. The facts cert_parse reports come from the TBSCertificate
 * fields that need no key decoding, so a certificate of the plain form is
 * walked here and only its names, validity and extensions are decoded. The
 * strict walk (every element present in order, nothing trailing) accepts a
 * subset of what d2i_X509 accepts except for the key itself, which
 * cert_check_key and the TLS stack still decode; anything else takes the
 * full path.
 */

/* The TBSCertificate parts cert_parse needs, from one certificate's DER. 0 or -1. */
struct tbs_parts {
  struct der issuer, not_before, not_after, subject, exts; /* whole encodings; exts may be empty */
};

static int tbs_walk(const uint8_t *der, size_t len, struct tbs_parts *t) {
  struct der d = {der, len}, cert, tbs, x, validity;
  memset(t, 0, sizeof(*t));
  if (der_expect(&d, 0x30, NULL, &cert) < 0 || d.n != 0) return -1;
  if (der_expect(&cert, 0x30, NULL, &tbs) < 0 || der_expect(&cert, 0x30, NULL, &x) < 0 ||
      der_expect(&cert, 0x03, NULL, &x) < 0 || cert.n != 0)
    return -1;
  der_expect(&tbs, 0xa0, NULL, &x); /* version, optional */
  if (der_expect(&tbs, 0x02, NULL, &x) < 0 || der_expect(&tbs, 0x30, NULL, &x) < 0 ||
      der_expect(&tbs, 0x30, &t->issuer, NULL) < 0 || der_expect(&tbs, 0x30, NULL, &validity) < 0)
    return -1;
  uint8_t tag;
  if (der_next(&validity, &tag, &t->not_before, NULL) < 0 || (tag != 0x17 && tag != 0x18) ||
      der_next(&validity, &tag, &t->not_after, NULL) < 0 || (tag != 0x17 && tag != 0x18) ||
      validity.n != 0)
    return -1;
  if (der_expect(&tbs, 0x30, &t->subject, NULL) < 0 || der_expect(&tbs, 0x30, NULL, &x) < 0)
    return -1;
  der_expect(&tbs, 0x81, NULL, &x);
  der_expect(&tbs, 0x82, NULL, &x);
  struct der ext;
  if (der_expect(&tbs, 0xa3, NULL, &ext) == 0) {
    if (der_expect(&ext, 0x30, &t->exts, NULL) < 0 || ext.n != 0) return -1;
  }
  return tbs.n == 0 ? 0 : -1;
}

/* cert_parse through tbs_walk: 0, or -1 when the full path must decide. */
static int parse_fast(const char *pem, size_t len, struct cert_info *out) {
  size_t dl;
  const char *next;
  uint8_t *der = cert_pem_block(pem, len, "CERTIFICATE", &dl, &next);
  if (!der) return -1;
  struct tbs_parts t;
  int rc = -1;
  X509_NAME *issuer = NULL, *subject = NULL;
  ASN1_TIME *nb = NULL, *na = NULL;
  STACK_OF(X509_EXTENSION) *exts = NULL;
  GENERAL_NAMES *sans = NULL;
  const unsigned char *p;
  if (tbs_walk(der, dl, &t) < 0) goto out;
  p = t.issuer.p;
  issuer = d2i_X509_NAME(NULL, &p, (long)t.issuer.n);
  p = t.subject.p;
  subject = d2i_X509_NAME(NULL, &p, (long)t.subject.n);
  p = t.not_before.p;
  nb = d2i_ASN1_TIME(NULL, &p, (long)t.not_before.n);
  p = t.not_after.p;
  na = d2i_ASN1_TIME(NULL, &p, (long)t.not_after.n);
  if (!issuer || !subject || !nb || !na) goto out;
  if (t.exts.n) {
    p = t.exts.p;
    exts = d2i_X509_EXTENSIONS(NULL, &p, (long)t.exts.n);
    if (!exts) goto out;
    /* NULL when absent, repeated or undecodable: then the CN stands in, as on the full path */
    sans = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
  }
  cn_of(subject, out->subject_cn, sizeof(out->subject_cn));
  name_oneline(issuer, out->issuer, sizeof(out->issuer));
  out->not_before = asn1_to_epoch(nb);
  out->not_after = asn1_to_epoch(na);
  for (int i = 0; sans && i < (int)sk_GENERAL_NAME_num(sans) && out->n_names < CERT_MAX_NAMES;
       i++) {
    const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
    if (gn->type != GEN_DNS) continue;
    const ASN1_STRING *s = gn->d.dNSName;
    snprintf(out->names[out->n_names++], sizeof(out->names[0]), "%.*s", ASN1_STRING_length(s),
             (const char *)ASN1_STRING_get0_data(s));
  }
  if (out->n_names == 0 && out->subject_cn[0]) {
    snprintf(out->names[0], sizeof(out->names[0]), "%s", out->subject_cn);
    out->n_names = 1;
  }
  /* The chain: further plain CERTIFICATE blocks that walk, up to the first that does not. */
  out->chain_len = 1;
  for (;;) {
    size_t rest = len - (size_t)(next - pem), ml;
    const char *after;
    uint8_t *more = cert_pem_block(next, rest, "CERTIFICATE", &ml, &after);
    if (!more) break;
    struct tbs_parts mt;
    int ok = tbs_walk(more, ml, &mt) == 0;
    free(more);
    if (!ok) break;
    out->chain_len++;
    next = after;
  }
  rc = 0;
out:
  if (rc < 0) memset(out, 0, sizeof(*out));
  free(der);
  X509_NAME_free(issuer);
  X509_NAME_free(subject);
  ASN1_TIME_free(nb);
  ASN1_TIME_free(na);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  GENERAL_NAMES_free(sans);
  ERR_clear_error();
  return rc;
}

int cert_parse(const char *pem, size_t len, struct cert_info *out, char *err, size_t errlen) {
  memset(out, 0, sizeof(*out));
  if (parse_fast(pem, len, out) == 0) return 0;
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  if (!bio) return CERT_ERR_INTERNAL;
  X509 *leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
  if (!leaf) {
    BIO_free(bio);
    ERR_clear_error();
    snprintf(err, errlen, "no PEM certificate found");
    return CERT_ERR_PARSE;
  }
  out->chain_len = 1;
  for (;;) {
    X509 *more = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (!more) break;
    out->chain_len++;
    X509_free(more);
  }
  ERR_clear_error();
  BIO_free(bio);

  cn_of(X509_get_subject_name(leaf), out->subject_cn, sizeof(out->subject_cn));
  name_oneline(X509_get_issuer_name(leaf), out->issuer, sizeof(out->issuer));
  out->not_before = asn1_to_epoch(X509_get0_notBefore(leaf));
  out->not_after = asn1_to_epoch(X509_get0_notAfter(leaf));

  GENERAL_NAMES *sans = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
  if (sans) {
    for (int i = 0; i < (int)sk_GENERAL_NAME_num(sans) && out->n_names < CERT_MAX_NAMES; i++) {
      const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
      if (gn->type != GEN_DNS) continue;
      const ASN1_STRING *s = gn->d.dNSName;
      snprintf(out->names[out->n_names++], sizeof(out->names[0]), "%.*s", ASN1_STRING_length(s),
               (const char *)ASN1_STRING_get0_data(s));
    }
    GENERAL_NAMES_free(sans);
  }
  if (out->n_names == 0 && out->subject_cn[0]) {
    snprintf(out->names[0], sizeof(out->names[0]), "%s", out->subject_cn);
    out->n_names = 1;
  }
  X509_free(leaf);
  return 0;
}

int cert_check_key(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
                   char *err, size_t errlen) {
  int rc = 0;
  BIO *cb = BIO_new_mem_buf(cert_pem, (int)cert_len);
  BIO *kb = BIO_new_mem_buf(key_pem, (int)key_len);
  X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
  EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
  if (!x) {
    snprintf(err, errlen, "certificate does not parse as PEM");
    rc = CERT_ERR_PARSE;
  } else if (!k) {
    snprintf(err, errlen, "private key does not parse as PEM");
    rc = CERT_ERR_KEY;
  } else if (X509_check_private_key(x, k) != 1) {
    snprintf(err, errlen, "private key does not match the certificate");
    rc = CERT_ERR_MISMATCH;
  }
  ERR_clear_error();
  X509_free(x);
  EVP_PKEY_free(k);
  BIO_free(cb);
  BIO_free(kb);
  return rc;
}

static char *bio_to_string(BIO *b) {
  const uint8_t *data;
  size_t len;
  char *s = NULL;
#ifdef OPENSSL_IS_BORINGSSL
  if (BIO_mem_contents(b, &data, &len) != 1) return NULL;
#else
  char *p;
  long l = BIO_get_mem_data(b, &p);
  if (l < 0) return NULL;
  data = (const uint8_t *)p;
  len = (size_t)l;
#endif
  s = malloc(len + 1);
  if (!s) return NULL;
  memcpy(s, data, len);
  s[len] = '\0';
  return s;
}

static EVP_PKEY *generate_p256(void) {
  EVP_PKEY *pkey = NULL;
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
  if (ctx && EVP_PKEY_keygen_init(ctx) == 1 &&
      EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, NID_X9_62_prime256v1) == 1) {
    if (EVP_PKEY_keygen(ctx, &pkey) != 1) pkey = NULL;
  }
  EVP_PKEY_CTX_free(ctx);
  return pkey;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
  if (!ext) return -1;
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok == 1 ? 0 : -1;
}

int cert_generate(const char *const *names, int n, int days, int is_ca, const char *ca_cert_pem,
                  const char *ca_key_pem, char **cert_pem, char **key_pem, char *err,
                  size_t errlen) {
  *cert_pem = *key_pem = NULL;
  if (n < 1) {
    snprintf(err, errlen, "no names");
    return CERT_ERR_INTERNAL;
  }
  int rc = CERT_ERR_INTERNAL;
  X509 *ca = NULL;
  EVP_PKEY *ca_key = NULL;
  EVP_PKEY *pkey = generate_p256();
  X509 *x = X509_new();
  BIO *cb = BIO_new(BIO_s_mem());
  BIO *kb = BIO_new(BIO_s_mem());
  if (!pkey || !x || !cb || !kb) goto out;
  if (ca_cert_pem) {
    BIO *b1 = BIO_new_mem_buf(ca_cert_pem, -1);
    BIO *b2 = BIO_new_mem_buf(ca_key_pem, -1);
    ca = b1 ? PEM_read_bio_X509(b1, NULL, NULL, NULL) : NULL;
    ca_key = b2 ? PEM_read_bio_PrivateKey(b2, NULL, NULL, NULL) : NULL;
    BIO_free(b1);
    BIO_free(b2);
    if (!ca || !ca_key) {
      snprintf(err, errlen, "CA certificate or key does not parse");
      rc = CERT_ERR_PARSE;
      goto out;
    }
  }
  uint8_t serial[16];
  RAND_bytes(serial, sizeof(serial));
  serial[0] &= 0x7f;
  BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
  ASN1_INTEGER *sn = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
  BN_free(bn);
  if (!sn) goto out;
  X509_set_serialNumber(x, sn);
  ASN1_INTEGER_free(sn);
  X509_set_version(x, 2);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400);
  X509_set_pubkey(x, pkey);
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"edge", -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)names[0], -1, -1, 0);
  X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : name);

  char san[4096];
  size_t o = 0;
  san[0] = '\0';
  for (int i = 0; i < n && o < sizeof(san) - 300; i++) {
    struct in_addr a4;
    int is_ip = inet_pton(AF_INET, names[i], &a4) == 1;
    int is_uri = strstr(names[i], "://") != NULL; /* spiffe://edge/l7proxy/NAME */
    o += (size_t)snprintf(san + o, sizeof(san) - o, "%s%s:%s", o ? "," : "",
                          is_uri  ? "URI"
                          : is_ip ? "IP"
                                  : "DNS",
                          names[i]);
  }
  if (add_ext(x, ca ? ca : x, NID_subject_alt_name, san) != 0) goto out;
  if (add_ext(x, ca ? ca : x, NID_basic_constraints, is_ca ? "critical,CA:TRUE" : "CA:FALSE") != 0)
    goto out;
  if (is_ca && add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") != 0) goto out;
  if (!is_ca && add_ext(x, ca ? ca : x, NID_ext_key_usage, "serverAuth,clientAuth") != 0) goto out;
  if (!X509_sign(x, ca_key ? ca_key : pkey, EVP_sha256())) goto out;
  if (!PEM_write_bio_X509(cb, x) || !PEM_write_bio_PrivateKey(kb, pkey, NULL, NULL, 0, NULL, NULL))
    goto out;
  *cert_pem = bio_to_string(cb);
  *key_pem = bio_to_string(kb);
  if (*cert_pem && *key_pem) rc = 0;
out:
  if (rc != 0) {
    if (rc == CERT_ERR_INTERNAL) snprintf(err, errlen, "certificate generation failed");
    free(*cert_pem);
    free(*key_pem);
    *cert_pem = *key_pem = NULL;
  }
  ERR_clear_error();
  X509_free(ca);
  EVP_PKEY_free(ca_key);
  X509_free(x);
  EVP_PKEY_free(pkey);
  BIO_free(cb);
  BIO_free(kb);
  return rc;
}

int cert_name_matches(const char *pattern, const char *name) {
  if (strcasecmp(pattern, name) == 0) return 1;
  if (pattern[0] != '*' || pattern[1] != '.') return 0;
  const char *dot = strchr(name, '.');
  if (!dot || dot == name) return 0;
  return strcasecmp(dot + 1, pattern + 2) == 0;
}
