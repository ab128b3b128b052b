/*
 * der — a strict, allocation-free walker over DER (X.690) encodings, for
 * the fast paths that read certificates and private keys without going
 * through the TLS library's decoders (common/cert.c, syncd/default_cert.c).
 *
 * Strict means a subset of what the TLS library accepts: single-byte tags
 * only (no high tag numbers), definite lengths in the minimal form, at most
 * 16 MiB per element, every element inside its parent. A caller that meets
 * anything else falls back to the TLS library, so being stricter can only
 * cost speed, never change an answer.
 *
 * A struct der is a view (pointer + length) into a buffer the caller owns;
 * nothing here allocates or keeps state. Any thread.
 */
#ifndef EDGE_COMMON_DER_H
#define EDGE_COMMON_DER_H

#include <stddef.h>
#include <stdint.h>

struct der {
  const uint8_t *p;
  size_t n;
};

/* Common universal tags. */
enum {
  DER_INTEGER = 0x02,
  DER_BIT_STRING = 0x03,
  DER_OCTET_STRING = 0x04,
  DER_OID = 0x06,
  DER_UTC_TIME = 0x17,
  DER_GENERALIZED_TIME = 0x18,
  DER_SEQUENCE = 0x30,
};

/*
 * Takes the next element off the front of d: its tag, its whole encoding
 * (tlv, may be NULL) and its contents (val, may be NULL). Returns 0, or -1
 * when d does not start with a well-formed element (d is then unchanged).
 */
int der_next(struct der *d, uint8_t *tag, struct der *tlv, struct der *val);

/* der_next when the next element has tag `want`; -1 (d unchanged) otherwise. */
int der_expect(struct der *d, uint8_t want, struct der *tlv, struct der *val);

/* 1 when d is not empty and its next element's tag is `tag` (length not checked). */
int der_peek(const struct der *d, uint8_t tag);

#endif
