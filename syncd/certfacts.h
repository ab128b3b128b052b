/*
 * certfacts — what Status says about each certificate (SNI names,
 * notAfter, issuer, source Secret, the hosts using it), kept up to date
 * with the store change by change.
 *
 * A refresh visits only the store entries changed since the last one
 * (store_changed_since): a changed Certificate is parsed again (its PEM,
 * once per change of that certificate, never per version), a changed
 * VirtualHost moves its host between certificates. When the store's
 * change history no longer reaches back (tombstones dropped past the last
 * refresh) everything is rebuilt once. So a one-route change costs one
 * VirtualHost unpack, not 10,000 PEM parses.
 *
 * Each fact can carry a caller's pointer (the expiry gauge handle in
 * syncd/status.c), set by the changed callback and handed back when the
 * fact goes away.
 *
 * Runs on syncd's loop thread. Callers: syncd/status.c, tests.
 */
#ifndef EDGE_SYNCD_CERTFACTS_H
#define EDGE_SYNCD_CERTFACTS_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct certfacts;

struct cert_fact {
  char *name; /* "ns/secret" or "default" */
  char **sni;
  size_t n_sni;
  int64_t not_after;
  char *issuer; /* "" when the PEM does not parse */
  char **hosts; /* hosts whose VirtualHost names it, sorted */
  size_t n_hosts;
  char *source; /* "ns/secret", "" for the default */
  int is_default;
  void *user; /* the caller's (e.g. a gauge handle) */
};

struct certfacts_hooks {
  /* A fact is new or changed (its fields, or only its hosts). */
  void (*changed)(void *ud, struct cert_fact *f);
  /* A fact is about to be freed. */
  void (*removed)(void *ud, struct cert_fact *f);
};

int certfacts_new(struct certfacts **out);
void certfacts_free(struct certfacts *cf);

/* Brings the facts up to date with s; hooks (may be NULL) hear of every
 * fact that changed or went away. 0, or -1 when out of memory (the facts
 * are rebuilt at the next refresh). */
int certfacts_refresh(struct certfacts *cf, const struct store *s,
                      const struct certfacts_hooks *hooks, void *ud);

/* Every fact sorted by name; valid until the next refresh. */
size_t certfacts_sorted(struct certfacts *cf, struct cert_fact *const **out);

#endif
