/*
 * base64 — the one base64 decoder (RFC 4648), for Kubernetes Secret and
 * kubeconfig data (syncd) and HTTP2-Settings on an h2c upgrade (l7proxy).
 *
 * Accepted: the standard alphabet (+/) and the URL-safe one (-_), even
 * mixed; '=' padding, optional, at most two and only at the end; with
 * BASE64_ALLOW_SPACE, ASCII white space anywhere (MIME line breaks).
 * Refused: any other byte, padding followed by data, and a final group of a
 * single character (6 bits cannot hold a byte). Bits left over in the last
 * group are ignored, as most decoders do.
 *
 * Pure function over buffers; no allocation, no global state, any thread.
 */
#ifndef EDGE_COMMON_BASE64_H
#define EDGE_COMMON_BASE64_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum {
  BASE64_ALLOW_SPACE = 1, /* skip ' ', '\t', '\r', '\n', '\v', '\f' */
};

enum {
  BASE64_ERR_INVALID = -1, /* not base64 under the rules above */
  BASE64_ERR_SPACE = -2,   /* the result does not fit cap bytes */
};

/* The most bytes n characters of base64 can decode to. */
static inline size_t base64_decoded_max(size_t n) {
  return n / 4 * 3 + 3;
}

/*
 * Decodes in[0..n) into out[0..cap). Returns the decoded length, or
 * BASE64_ERR_INVALID / BASE64_ERR_SPACE (out's contents are then
 * unspecified). flags: 0 or BASE64_ALLOW_SPACE.
 */
ssize_t base64_decode(const char *in, size_t n, uint8_t *out, size_t cap, unsigned flags);

#endif
