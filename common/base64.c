/*
 * base64 — decoding (see base64.h).
 */
#include "common/base64.h"

enum { B64_PAD = 64, B64_SPACE = 65, B64_BAD = 66 };

/* A character's 6-bit value, or B64_PAD / B64_SPACE / B64_BAD. */
static unsigned b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  switch (c) {
    case '+':
    case '-':
      return 62;
    case '/':
    case '_':
      return 63;
    case '=':
      return B64_PAD;
    case ' ':
    case '\t':
    case '\r':
    case '\n':
    case '\v':
    case '\f':
      return B64_SPACE;
  }
  return B64_BAD;
}

ssize_t base64_decode(const char *in, size_t n, uint8_t *out, size_t cap, unsigned flags) {
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0, chars = 0, pad = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned v = b64_value((unsigned char)in[i]);
    if (v == B64_SPACE && (flags & BASE64_ALLOW_SPACE)) continue;
    if (v == B64_PAD) {
      if (++pad > 2) return BASE64_ERR_INVALID;
      continue;
    }
    if (v >= 64 || pad) return BASE64_ERR_INVALID; /* a bad byte, or data after padding */
    chars++;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (o >= cap) return BASE64_ERR_SPACE;
      out[o++] = (uint8_t)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if (chars % 4 == 1) return BASE64_ERR_INVALID;
  return (ssize_t)o;
}
