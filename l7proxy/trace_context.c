/*
 * trace_context — W3C traceparent/tracestate rules and the sampling
 * decision. See trace_context.h for the contract; every rule below is one
 * of the specification's receiver rules, checked in the order a hostile
 * value would try to slip past them.
 */
#include "l7proxy/trace_context.h"

#include <string.h>

static int lhex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1; /* upper-case hex is invalid in traceparent */
}

/* Decodes 2n lower-case hex characters into n bytes; -1 on a bad char. */
static int unhex(const char *s, size_t n, uint8_t *out) {
  for (size_t i = 0; i < n; i++) {
    int hi = lhex(s[2 * i]), lo = lhex(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return -1;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

static int all_zero(const uint8_t *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (b[i]) return 0;
  return 1;
}

static int is_ows(char c) {
  return c == ' ' || c == '\t';
}

int trace_parse_traceparent(const char *v, size_t n, struct trace_context *out) {
  while (n > 0 && is_ows(*v)) v++, n--;
  while (n > 0 && is_ows(v[n - 1])) n--;
  if (n < TRACEPARENT_LEN) return -1;
  uint8_t version;
  if (unhex(v, 1, &version) != 0 || version == 0xff) return -1;
  if (version == 0 && n != TRACEPARENT_LEN) return -1;
  if (version != 0 && n > TRACEPARENT_LEN && v[TRACEPARENT_LEN] != '-') return -1;
  if (v[2] != '-' || v[35] != '-' || v[52] != '-') return -1;
  struct trace_context c;
  if (unhex(v + 3, 16, c.trace_id) != 0 || unhex(v + 36, 8, c.span_id) != 0 ||
      unhex(v + 53, 1, &c.flags) != 0)
    return -1;
  if (all_zero(c.trace_id, 16) || all_zero(c.span_id, 8)) return -1;
  *out = c;
  return 0;
}

static int key_first(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int key_char(char c) {
  return key_first(c) || c == '_' || c == '-' || c == '*' || c == '/';
}

/* key = simple-key / tenant-id "@" system-id (W3C Trace Context). */
static int key_valid(const char *k, size_t n) {
  const char *at = memchr(k, '@', n);
  if (!at) {
    if (n == 0 || n > 256 || !(k[0] >= 'a' && k[0] <= 'z')) return 0; /* lcalpha first */
    for (size_t i = 1; i < n; i++)
      if (!key_char(k[i])) return 0;
    return 1;
  }
  size_t tn = (size_t)(at - k), sn = n - tn - 1;
  if (tn == 0 || tn > 241 || sn == 0 || sn > 14) return 0;
  if (!key_first(k[0]) || !(at[1] >= 'a' && at[1] <= 'z')) return 0;
  for (size_t i = 1; i < tn; i++)
    if (!key_char(k[i])) return 0;
  for (size_t i = 2; i < sn + 1; i++)
    if (!key_char(at[i])) return 0;
  return 1;
}

/* value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E */
static int value_valid(const char *v, size_t n) {
  if (n == 0 || n > 256 || v[n - 1] == ' ') return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if (c < 0x20 || c > 0x7e || c == ',' || c == '=') return 0;
  }
  return 1;
}

int trace_tracestate_valid(const char *v, size_t n) {
  if (n > TRACE_STATE_MAX) return 0;
  size_t i = 0;
  int members = 0;
  while (i < n) {
    size_t start = i;
    while (i < n && v[i] != ',') i++;
    size_t end = i;
    if (i < n) i++; /* the comma */
    while (start < end && is_ows(v[start])) start++;
    while (end > start && is_ows(v[end - 1])) end--;
    if (start == end) continue; /* empty list members are allowed */
    const char *eq = memchr(v + start, '=', end - start);
    if (!eq) return 0;
    if (!key_valid(v + start, (size_t)(eq - (v + start)))) return 0;
    if (!value_valid(eq + 1, (size_t)(v + end - eq - 1))) return 0;
    if (++members > 32) return 0;
  }
  return 1;
}

void trace_hex(const uint8_t *b, size_t n, char *out) {
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hex[b[i] >> 4];
    out[2 * i + 1] = hex[b[i] & 0xf];
  }
  out[2 * n] = '\0';
}

void trace_format_traceparent(const uint8_t trace_id[16], const uint8_t span_id[8], uint8_t flags,
                              char out[TRACEPARENT_LEN + 1]) {
  out[0] = '0';
  out[1] = '0';
  out[2] = '-';
  trace_hex(trace_id, 16, out + 3);
  out[35] = '-';
  trace_hex(span_id, 8, out + 36);
  out[52] = '-';
  trace_hex(&flags, 1, out + 53);
}

void trace_fill_id(uint8_t *id, size_t n, uint64_t r1, uint64_t r2) {
  for (size_t i = 0; i < n; i++) {
    uint64_t w = i < 8 ? r1 : r2;
    id[i] = (uint8_t)(w >> (8 * (i % 8)));
  }
  if (all_zero(id, n)) id[n - 1] = 1;
}

int trace_sample_ratio(const uint8_t trace_id[16], double ratio) {
  if (!(ratio > 0)) return 0;
  if (ratio >= 1) return 1;
  uint64_t x = 0;
  for (int i = 8; i < 16; i++) x = x << 8 | trace_id[i];
  x >>= 1;
  double bound = ratio * 9223372036854775808.0; /* 2^63 */
  return (double)x < bound;
}
