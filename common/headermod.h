/*
 * headermod — Gateway API RequestHeaderModifier / ResponseHeaderModifier
 * (and the same rules for Ingress) as a pure function over a header list.
 *
 * Order: every header named in `remove` is dropped; a header named in
 * `set` loses all its values and gets the one given, at the position of
 * its first occurrence (or at the end when it was absent); each `add` is
 * appended as one more line of that name (RFC 9110 §5.3: equivalent to
 * "old,new" for every header but Set-Cookie, which must not be joined).
 * Names compare case-insensitively; the output names of set/add are the
 * ones configured (lower case from syncd).
 *
 * Every configured name must be an RFC 9110 token and every value free of
 * CR, LF, NUL and other control bytes except HTAB: a bad one fails the
 * call (HEADERMOD_ERR_INVALID), whatever validated it before, so a
 * modifier can never split a header. The output points into the input and
 * the modifier (nothing is copied or allocated): both must outlive it.
 *
 * Callers: l7proxy's exchange (request to the upstream, response to the
 * client), common/explain (what it reports), tests.
 */
#ifndef EDGE_COMMON_HEADERMOD_H
#define EDGE_COMMON_HEADERMOD_H

#include <stddef.h>

enum {
  HEADERMOD_ERR_INVALID = -1, /* a configured name or value may not be written */
  HEADERMOD_ERR_SPACE = -2,   /* out is too small */
};

/* Same layout as struct router_header and l7proxy's message header. */
struct headermod_header {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
};

struct headermod {
  const struct headermod_header *set;
  size_t n_set;
  const struct headermod_header *add;
  size_t n_add;
  const char *const *remove; /* NUL-terminated names */
  size_t n_remove;
};

/* Writes the modified list into out[0..cap) and returns its length, or a
 * negative error. in and out must not overlap. m NULL copies in. */
long headermod_apply(const struct headermod *m, const struct headermod_header *in, size_t n,
                     struct headermod_header *out, size_t cap);

/* 0 when name is a token and value has no forbidden byte, else -1. */
int headermod_check(const char *name, size_t name_len, const char *value, size_t value_len);

#endif
