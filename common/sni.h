/*
 * sni — which certificate a TLS client gets for its server name (SNI), as
 * a pure table: an exact name beats a one-label wildcard ("*.a.com" covers
 * "x.a.com", not "a.com" nor "y.x.a.com"), which beats the default
 * certificate; no SNI (or a name no certificate serves) gets the default.
 * Among certificates that list the same name, the first one added wins.
 *
 * One implementation for the proxy's handshake (l7proxy/tls.c picks the
 * SSL_CTX with it) and for explain (common/explain.c reports the same
 * choice), so the two cannot disagree.
 *
 * Build: sni_table_init, sni_table_add for every name of every certificate
 * (certificates numbered by the caller), sni_table_set_default,
 * sni_table_finish; then sni_table_select any number of times from any
 * thread (read-only, no allocation). The table owns copies of the names.
 */
#ifndef EDGE_COMMON_SNI_H
#define EDGE_COMMON_SNI_H

#include <stddef.h>

#define SNI_NAME_MAX 254 /* 253 + NUL */

enum {
  SNI_ERR_INVALID = -1, /* not a host name (or wildcard pattern) */
  SNI_ERR_NOMEM = -2,
};

enum sni_match { SNI_NONE = 0, SNI_EXACT, SNI_WILDCARD, SNI_DEFAULT };

struct sni_entry {
  char *name; /* lowercased; for wildcards the suffix after "*." */
  size_t cert;
};

struct sni_table {
  struct sni_entry *exact, *wild;
  size_t n_exact, n_wild, cap_exact, cap_wild;
  long default_cert; /* -1: none */
};

/* Lowercases in[0..len) into out, dropping one trailing dot; host-name
 * characters only (letters, digits, '-', '_', '.'), plus a leading "*."
 * when wildcard is set. 0 or SNI_ERR_INVALID. */
int sni_normalize(const char *in, size_t len, int wildcard, char *out, size_t outlen);

void sni_table_init(struct sni_table *t);
/* Adds a name ("a.com" or "*.a.com") served by certificate cert. */
int sni_table_add(struct sni_table *t, const char *name, size_t cert);
/* The default certificate (the first call wins). */
void sni_table_set_default(struct sni_table *t, size_t cert);
/* Sorts the tables; call once after the last add. */
void sni_table_finish(struct sni_table *t);
/* The certificate for sni (NULL or "": none given), -1 when there is no
 * default either; *how (may be NULL) says why. sni is normalized here. */
long sni_table_select(const struct sni_table *t, const char *sni, enum sni_match *how);
void sni_table_free(struct sni_table *t);
/* "exact", "wildcard", "default" or "none". */
const char *sni_match_str(enum sni_match m);

#endif
