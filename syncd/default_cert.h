/*
 * default_cert — the certificate served when SNI matches nothing or a
 * host's own secret is missing or invalid.
 *
 * Either loaded from operator-given PEM files (checked with
 * common/cert_valid, the proxies' own OpenSSL loader) or generated at start
 * with common/cert's cert_generate (a self-signed ECDSA P-256
 * certificate). Called by the sources and by tests.
 */
#ifndef EDGE_SYNCD_DEFAULT_CERT_H
#define EDGE_SYNCD_DEFAULT_CERT_H

#include <stddef.h>

/* Reads cert_file and key_file and checks them as a proxy will load them
 * (common/cert_valid). On success *cert_pem and *key_pem are malloc'd
 * NUL-terminated PEM strings the caller frees; otherwise both are NULL and
 * err holds the reason. */
int default_cert_load(const char *cert_file, const char *key_file, char **cert_pem, char **key_pem,
                      char *err, size_t errlen);

#endif
