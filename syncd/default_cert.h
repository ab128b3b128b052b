/*
 * default_cert — the certificate served when SNI matches nothing or a
 * host's own secret is missing or invalid.
 *
 * Either loaded from operator-given PEM files (checked: the key must match
 * the certificate) or generated at start: a self-signed ECDSA P-256
 * certificate. Tests use default_cert_generate to make certificates with
 * chosen names. OpenSSL 3 API that BoringSSL shares. Called by the sources
 * and by tests.
 */
#ifndef EDGE_SYNCD_DEFAULT_CERT_H
#define EDGE_SYNCD_DEFAULT_CERT_H

#include <stddef.h>
#include <stdint.h>

/*
 * Generates a self-signed certificate for common name cn (also its DNS SAN)
 * valid for `days` days. On success *cert_pem and *key_pem are
 * NUL-terminated PEM strings owned by the caller (free()) and 0 is
 * returned; otherwise a negative code and a reason in err.
 */
int default_cert_generate(const char *cn, int days, char **cert_pem, char **key_pem, char *err,
                          size_t errlen);

/* Reads cert_file and key_file and checks that they parse and match. Ownership as above. */
int default_cert_load(const char *cert_file, const char *key_file, char **cert_pem, char **key_pem,
                      char *err, size_t errlen);

/*
 * Checks a PEM certificate chain and key: both parse and the key matches
 * the leaf. On success returns 0 and, when not_after is not NULL, the
 * leaf's notAfter in epoch seconds. On failure returns -EINVAL and a short
 * reason in err: "tls.crt is not a valid PEM certificate", "tls.key is not
 * a valid PEM private key" or "tls.key does not match tls.crt".
 */
int default_cert_check(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
                       int64_t *not_after, char *err, size_t errlen);

#endif
