/*
 * ocsp — OCSP request building and response checking (see ocsp.h).
 *
 * Verification: the store trusts the issuer alone with partial chains
 * allowed (the issuer is usually an intermediate), so OCSP_basic_verify
 * accepts a response signed by the issuer itself or by a responder
 * certificate the issuer signed with the OCSPSigning purpose, which
 * OpenSSL checks (RFC 6960 §4.2.2.2).
 */

#include "syncd/ocsp.h"

#include <limits.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OCSP_SKEW_S 300

struct ocsp_target {
  X509 *leaf, *issuer;
  OCSP_CERTID *id;
  char url[OCSP_URL_MAX];
  uint8_t *req;
  size_t req_len;
};

static int no_password(char *buf, int size, int rwflag, void *u) {
  (void)buf, (void)size, (void)rwflag, (void)u;
  return -1;
}

/* A tenant-supplied URL that syncd may fetch: http://, printable, no
 * credentials, bounded. */
static int url_ok(const char *u) {
  size_t n = strlen(u);
  if (n >= OCSP_URL_MAX || strncmp(u, "http://", 7) != 0 || n == 7) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)u[i] <= 0x20 || (unsigned char)u[i] >= 0x7f) return 0;
  const char *auth_end = strchr(u + 7, '/');
  size_t auth_len = auth_end ? (size_t)(auth_end - (u + 7)) : n - 7;
  return auth_len > 0 && !memchr(u + 7, '@', auth_len);
}

int ocsp_target_new(const char *pem, size_t len, struct ocsp_target **out, char *err,
                    size_t errlen) {
  *out = NULL;
  if (len > INT_MAX) return snprintf(err, errlen, "tls.crt is too large"), -1;
  struct ocsp_target *t = calloc(1, sizeof(*t));
  BIO *b = BIO_new_mem_buf(pem, (int)len);
  STACK_OF(OPENSSL_STRING) *urls = NULL;
  OCSP_REQUEST *req = NULL;
  int rc = -1;
  if (!t || !b) {
    snprintf(err, errlen, "out of memory");
    goto out;
  }
  t->leaf = PEM_read_bio_X509(b, NULL, no_password, NULL);
  if (!t->leaf) {
    snprintf(err, errlen, "tls.crt holds no PEM certificate");
    goto out;
  }
  urls = X509_get1_ocsp(t->leaf);
  const char *u = urls && sk_OPENSSL_STRING_num(urls) > 0 ? sk_OPENSSL_STRING_value(urls, 0) : NULL;
  if (!u) {
    snprintf(err, errlen, "no OCSP responder in the certificate (authorityInfoAccess)");
    goto out;
  }
  if (!url_ok(u)) {
    snprintf(err, errlen, "OCSP responder URL is not a plain http:// URL");
    goto out;
  }
  snprintf(t->url, sizeof(t->url), "%s", u);
  t->issuer = PEM_read_bio_X509(b, NULL, no_password, NULL);
  if (!t->issuer || X509_check_issued(t->issuer, t->leaf) != X509_V_OK) {
    snprintf(err, errlen, "no issuer certificate after the leaf in tls.crt");
    goto out;
  }
  t->id = OCSP_cert_to_id(EVP_sha1(), t->leaf, t->issuer);
  req = OCSP_REQUEST_new();
  OCSP_CERTID *copy = t->id ? OCSP_CERTID_dup(t->id) : NULL;
  if (!req || !copy || !OCSP_request_add0_id(req, copy)) {
    OCSP_CERTID_free(copy);
    snprintf(err, errlen, "out of memory");
    goto out;
  }
  int n = i2d_OCSP_REQUEST(req, NULL);
  unsigned char *p = n > 0 ? malloc((size_t)n) : NULL;
  t->req = p;
  if (!p || i2d_OCSP_REQUEST(req, &p) != n) {
    snprintf(err, errlen, "out of memory");
    goto out;
  }
  t->req_len = (size_t)n;
  rc = 0;
out:
  ERR_clear_error();
  X509_email_free(urls);
  OCSP_REQUEST_free(req);
  BIO_free(b);
  if (rc == 0)
    *out = t;
  else
    ocsp_target_free(t);
  return rc;
}

void ocsp_target_free(struct ocsp_target *t) {
  if (!t) return;
  X509_free(t->leaf);
  X509_free(t->issuer);
  OCSP_CERTID_free(t->id);
  free(t->req);
  free(t);
}

const char *ocsp_target_url(const struct ocsp_target *t) {
  return t->url;
}

const uint8_t *ocsp_target_request(const struct ocsp_target *t, size_t *len) {
  *len = t->req_len;
  return t->req;
}

static int64_t asn1_epoch(const ASN1_GENERALIZEDTIME *a) {
  struct tm tm;
  if (!a || ASN1_TIME_to_tm(a, &tm) != 1) return -1;
  return (int64_t)timegm(&tm);
}

int ocsp_check_response(const struct ocsp_target *t, const uint8_t *der, size_t len, int64_t now,
                        struct ocsp_result *out, char *err, size_t errlen) {
  memset(out, 0, sizeof(*out));
  if (len == 0 || len > OCSP_RESPONSE_MAX) {
    snprintf(err, errlen, "response is empty or larger than %d bytes", OCSP_RESPONSE_MAX);
    return -1;
  }
  const unsigned char *p = der;
  OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
  OCSP_BASICRESP *bs = NULL;
  X509_STORE *store = NULL;
  STACK_OF(X509) *certs = NULL;
  int rc = -1;
  if (!resp || p != der + len) {
    snprintf(err, errlen, "response is not a DER OCSPResponse");
    goto out;
  }
  int st = OCSP_response_status(resp);
  if (st != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
    snprintf(err, errlen, "responder said %s", OCSP_response_status_str(st));
    goto out;
  }
  bs = OCSP_response_get1_basic(resp);
  store = X509_STORE_new();
  certs = sk_X509_new_null();
  if (!bs || !store || !certs || X509_STORE_add_cert(store, t->issuer) != 1 ||
      !sk_X509_push(certs, t->issuer)) {
    snprintf(err, errlen, "response has no basic response");
    goto out;
  }
  X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
  if (OCSP_basic_verify(bs, certs, store, 0) != 1) {
    snprintf(err, errlen, "signature does not verify against the issuer");
    goto out;
  }
  int status = -1, reason = 0;
  ASN1_GENERALIZEDTIME *rev = NULL, *thisupd = NULL, *nextupd = NULL;
  if (OCSP_resp_find_status(bs, t->id, &status, &reason, &rev, &thisupd, &nextupd) != 1) {
    snprintf(err, errlen, "response is for another certificate");
    goto out;
  }
  out->this_update = asn1_epoch(thisupd);
  out->next_update = nextupd ? asn1_epoch(nextupd) : 0;
  if (out->this_update < 0 || out->next_update < 0) {
    snprintf(err, errlen, "response has a bad thisUpdate or nextUpdate");
    goto out;
  }
  if (out->this_update > now + OCSP_SKEW_S) {
    snprintf(err, errlen, "response's thisUpdate is in the future");
    goto out;
  }
  if (out->next_update && out->next_update < now - OCSP_SKEW_S) {
    snprintf(err, errlen, "response expired (nextUpdate passed)");
    goto out;
  }
  if (status == V_OCSP_CERTSTATUS_GOOD) {
    out->status = OCSP_STATUS_GOOD;
  } else if (status == V_OCSP_CERTSTATUS_REVOKED) {
    out->status = OCSP_STATUS_REVOKED;
    out->revoked_at = asn1_epoch(rev);
  } else {
    out->status = OCSP_STATUS_UNKNOWN;
    snprintf(err, errlen, "responder does not know the certificate");
    goto out;
  }
  rc = 0;
out:
  ERR_clear_error();
  sk_X509_free(certs); /* the issuer belongs to t */
  X509_STORE_free(store);
  OCSP_BASICRESP_free(bs);
  OCSP_RESPONSE_free(resp);
  return rc;
}

int64_t ocsp_refresh_at(const struct ocsp_result *r, int64_t now, int64_t min_s, int64_t max_s) {
  int64_t at =
      r->next_update ? r->this_update + (r->next_update - r->this_update) / 2 : now + max_s;
  if (at > now + max_s) at = now + max_s;
  if (at < now + min_s) at = now + min_s;
  return at;
}

const char *ocsp_status_name(enum ocsp_cert_status s) {
  switch (s) {
    case OCSP_STATUS_GOOD:
      return "good";
    case OCSP_STATUS_REVOKED:
      return "revoked";
    default:
      return "unknown";
  }
}
