/*
 * cert — X.509 certificate facts for the control plane and the proxies:
 * parse a PEM chain (leaf first) into the facts operators need (names,
 * issuer, expiry), check that a private key matches a certificate, and
 * generate self-signed certificates (the default certificate, tests).
 *
 * Uses only the API that OpenSSL 3 and BoringSSL share, so it builds under
 * --config=boringssl (DESIGN §3). Pure functions over buffers: no files, no
 * global state. Key material is never copied into error messages.
 */
#ifndef EDGE_COMMON_CERT_H
#define EDGE_COMMON_CERT_H

#include <stddef.h>
#include <stdint.h>

#define CERT_MAX_NAMES 32

struct cert_info {
  char subject_cn[256];
  char issuer[256];   /* one-line issuer DN, "CN=edge test CA, O=edge" */
  int64_t not_before; /* seconds since the epoch */
  int64_t not_after;
  char names[CERT_MAX_NAMES][256]; /* DNS subjectAltNames (CN when none) */
  int n_names;
  int chain_len; /* certificates in the PEM */
};

enum {
  CERT_ERR_PARSE = -1,    /* no certificate in the PEM */
  CERT_ERR_KEY = -2,      /* no private key in the PEM */
  CERT_ERR_MISMATCH = -3, /* key does not match the certificate */
  CERT_ERR_INTERNAL = -4,
};

/* Parses the first certificate of pem (and counts the chain). 0 or
 * negative with a reason in err. */
int cert_parse(const char *pem, size_t len, struct cert_info *out, char *err, size_t errlen);

/* Decodes the first PEM block of pem when it is "-----BEGIN label-----"
 * (no PEM headers). Returns the DER, malloc'd (the caller frees), its
 * length in *der_len and, when next is not NULL, where the text after the
 * block starts; NULL when the first block is another or does not decode. */
uint8_t *cert_pem_block(const char *pem, size_t len, const char *label, size_t *der_len,
                        const char **next);

/* 0 when key_pem's private key matches cert_pem's leaf; negative with a
 * reason ("tls.key does not match the certificate") otherwise. */
int cert_check_key(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
                   char *err, size_t errlen);

/* Generates an EC P-256 key and a certificate for names[0..n) (CN =
 * names[0], all as DNS SANs; an IPv4 literal becomes an IP SAN, a name with
 * "://" a URI SAN, e.g. a node identity spiffe://edge/l7proxy/NAME) valid for
 * days. Self-signed when ca_cert_pem is NULL, else signed by the CA.
 * is_ca marks it as a CA. On success *cert_pem and *key_pem are malloc'd
 * NUL-terminated PEM strings the caller frees. */
int cert_generate(const char *const *names, int n, int days, int is_ca, const char *ca_cert_pem,
                  const char *ca_key_pem, char **cert_pem, char **key_pem, char *err,
                  size_t errlen);

/* 1 when the certificate for name matching: exact (case-insensitive) or a
 * one-label wildcard pattern ("*.example.com" matches "a.example.com"). */
int cert_name_matches(const char *pattern, const char *name);

#endif
