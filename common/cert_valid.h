/*
 * cert_valid — whether a TLS Secret (PEM chain + PEM key) can be served,
 * decided by OpenSSL itself, the same way in syncd and in l7proxy.
 *
 * syncd used to decide with fast checks of its own and l7proxy with
 * OpenSSL, and the two disagreed (a PEM marker not at the start of a line,
 * a key or signature the security level refuses, a bad chain entry), so
 * one tenant's Secret could pass syncd and then fail on every proxy. Now
 * there is one loader, cert_valid_load, which l7proxy's TLS store uses to
 * fill the SSL_CTX it serves with, and one check, cert_valid_check, which
 * syncd uses on every Secret: it runs cert_valid_load into a throw-away
 * SSL_CTX configured by cert_valid_configure, the same settings the
 * proxy's contexts get (TLS_method, security level
 * CERT_VALID_SECURITY_LEVEL, set explicitly so neither side depends on the
 * machine's openssl.cnf).
 *
 * What is checked, in order: tls.crt holds one or more PEM CERTIFICATE
 * blocks as OpenSSL's PEM reader finds them (a block that does not decode
 * is refused, not silently dropped from the chain); tls.key holds an unencrypted
 * PEM private key; SSL_CTX_use_certificate accepts the leaf (key size and
 * signature algorithm at the security level); SSL_CTX_use_PrivateKey
 * accepts the key (it must match the leaf); SSL_CTX_add1_chain_cert
 * accepts every further certificate. Reasons name the file and step and
 * carry OpenSSL's reason text, never key material.
 *
 * Built on the API OpenSSL 3 and BoringSSL share (BoringSSL has no
 * security levels: its fixed policy applies). Thread-safe; no global
 * state. Callers: syncd/translate.c (check), l7proxy/tls.c (load).
 */
#ifndef EDGE_COMMON_CERT_VALID_H
#define EDGE_COMMON_CERT_VALID_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

/* OpenSSL security level of every context that serves tenant certificates:
 * 2 = RSA/DH keys >= 2048 bits, ECC >= 224 bits, no SHA-1 signatures. */
#define CERT_VALID_SECURITY_LEVEL 2

/* Applies the settings that decide certificate acceptance to ctx. */
void cert_valid_configure(SSL_CTX *ctx);

/* Loads the chain and key into ctx (configured with cert_valid_configure).
 * 0, or -1 with a reason ("tls.crt: certificate 2 does not parse",
 * "tls.crt: the certificate is refused: ee key too small"). not_after
 * (may be NULL) gets the leaf's notAfter in seconds since the epoch. */
int cert_valid_load(SSL_CTX *ctx, const uint8_t *cert_pem, size_t cert_len, const uint8_t *key_pem,
                    size_t key_len, int64_t *not_after, char *err, size_t errlen);

/* cert_valid_load into a fresh context: 0 when a proxy can serve the pair. */
int cert_valid_check(const uint8_t *cert_pem, size_t cert_len, const uint8_t *key_pem,
                     size_t key_len, int64_t *not_after, char *err, size_t errlen);

#endif
