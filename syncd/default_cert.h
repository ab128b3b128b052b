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

/* Reads cert_file and key_file and checks them with common/cert_valid (what
 * a proxy will do with them). Ownership as above. */
int default_cert_load(const char *cert_file, const char *key_file, char **cert_pem, char **key_pem,
                      char *err, size_t errlen);

#endif
