/*
 * ocsp — the pure part of OCSP stapling (RFC 6960) for the certificates
 * syncd serves: where to ask (the responder URL in the leaf's Authority
 * Information Access), what to ask (a DER OCSPRequest for the leaf, by
 * SHA-1 CertID under its issuer, the next certificate of the chain), and
 * whether an answer may be stapled: a successful basic response for that
 * CertID, signed by the issuer or by a responder certificate the issuer
 * delegated OCSP signing to, current (thisUpdate not in the future,
 * nextUpdate not in the past, 5 minutes of clock skew allowed).
 *
 * Only http:// responder URLs are used (OCSP over HTTP, as browsers and
 * nginx do): an https responder would need OCSP itself, and a tenant's
 * certificate must not make syncd speak other protocols. The URL comes
 * from a certificate a tenant supplied, so it is bounded (scheme, length,
 * no control characters, no credentials) before anyone fetches it.
 *
 * No I/O, no clock: callers pass the time. Any thread. Callers:
 * syncd/ocsp_stapler.c, unit tests, the fuzz target. OpenSSL 3 and
 * BoringSSL-clean where BoringSSL has OCSP (it does not: syncd links
 * OpenSSL 3, DESIGN §3).
 */
#ifndef EDGE_SYNCD_OCSP_H
#define EDGE_SYNCD_OCSP_H

#include <stddef.h>
#include <stdint.h>

#define OCSP_URL_MAX 512
#define OCSP_RESPONSE_MAX (64 * 1024) /* larger answers are refused unread */

enum ocsp_cert_status { OCSP_STATUS_GOOD = 0, OCSP_STATUS_REVOKED, OCSP_STATUS_UNKNOWN };

struct ocsp_target; /* opaque: leaf, issuer, CertID, request */

/* From a PEM chain (leaf first, then its issuer). 0 and *out, or -1 with
 * a reason: "no OCSP responder in the certificate", "no issuer
 * certificate after the leaf in tls.crt", "OCSP responder URL ... is not
 * http://". */
int ocsp_target_new(const char *pem, size_t len, struct ocsp_target **out, char *err,
                    size_t errlen);
void ocsp_target_free(struct ocsp_target *t);
/* The responder URL (http://...). */
const char *ocsp_target_url(const struct ocsp_target *t);
/* The DER OCSPRequest to POST (Content-Type application/ocsp-request). */
const uint8_t *ocsp_target_request(const struct ocsp_target *t, size_t *len);

struct ocsp_result {
  enum ocsp_cert_status status;
  int64_t this_update, next_update; /* seconds since the epoch; next 0: none given */
  int64_t revoked_at;               /* when revoked */
};

/* Checks a DER OCSPResponse for t at time now (seconds since the epoch).
 * 0 and *out when it may be stapled (GOOD or REVOKED: both are the CA's
 * signed word), -1 with a reason otherwise ("responder said tryLater",
 * "signature does not verify", "response is for another certificate",
 * "response expired"). */
int ocsp_check_response(const struct ocsp_target *t, const uint8_t *der, size_t len, int64_t now,
                        struct ocsp_result *out, char *err, size_t errlen);

/* When to fetch again after a good answer r at time now: half-way from
 * thisUpdate to nextUpdate (nginx and Apache refresh well before expiry),
 * never sooner than min_s from now and, without a nextUpdate, max_s. */
int64_t ocsp_refresh_at(const struct ocsp_result *r, int64_t now, int64_t min_s, int64_t max_s);

/* "good", "revoked", "unknown". */
const char *ocsp_status_name(enum ocsp_cert_status s);

#endif
