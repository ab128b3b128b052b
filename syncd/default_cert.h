/*
 * default_cert — the certificate served when SNI matches nothing or a
 * host's own secret is missing or invalid.
 *
 * Either loaded from operator-given PEM files (checked: the key must match
 * the certificate) or generated at start with common/cert's cert_generate
 * (a self-signed ECDSA P-256 certificate). OpenSSL 3 API that BoringSSL
 * shares. Called by the sources and by tests.
 */
#ifndef EDGE_SYNCD_DEFAULT_CERT_H
#define EDGE_SYNCD_DEFAULT_CERT_H

#include <stddef.h>
#include <stdint.h>

/* Reads cert_file and key_file and checks that they parse and match. On success *cert_pem and
 * *key_pem are malloc'd NUL-terminated PEM strings the caller frees; otherwise both are NULL and
 * err holds the reason. */
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
