/*
 * client_hello — record layer → handshake message → ClientHello fields →
 * extensions (see client_hello.h). The handshake bytes are copied into a
 * stack buffer only when they span several records; one record (the
 * common case) is parsed in place.
 */
#include "common/client_hello.h"

#include <string.h>

struct rd {
  const uint8_t *p;
  size_t n, off;
};

static int rd_u8(struct rd *r, unsigned *v) {
  if (r->off + 1 > r->n) return -1;
  *v = r->p[r->off++];
  return 0;
}

static int rd_u16(struct rd *r, unsigned *v) {
  if (r->off + 2 > r->n) return -1;
  *v = (unsigned)r->p[r->off] << 8 | r->p[r->off + 1];
  r->off += 2;
  return 0;
}

static int rd_skip(struct rd *r, size_t k) {
  if (r->off + k > r->n) return -1;
  r->off += k;
  return 0;
}

/* The server_name extension body. */
static enum client_hello_result parse_sni(const uint8_t *p, size_t n, char *sni, size_t cap) {
  struct rd r = {p, n, 0};
  unsigned list_len;
  if (rd_u16(&r, &list_len) < 0 || list_len != n - 2) return CLIENT_HELLO_INVALID;
  while (r.off < r.n) {
    unsigned type, len;
    if (rd_u8(&r, &type) < 0 || rd_u16(&r, &len) < 0 || r.off + len > r.n)
      return CLIENT_HELLO_INVALID;
    if (type != 0) { /* another name type: skip it */
      r.off += len;
      continue;
    }
    if (len == 0 || len > 253 || len >= cap) return CLIENT_HELLO_INVALID;
    for (unsigned i = 0; i < len; i++) {
      unsigned char c = r.p[r.off + i];
      if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
        return CLIENT_HELLO_INVALID;
      sni[i] = (char)c;
    }
    sni[len] = '\0';
    return CLIENT_HELLO_SNI;
  }
  return CLIENT_HELLO_NO_SNI;
}

/* The ClientHello body (after the 4-byte handshake header). */
static enum client_hello_result parse_hello(const uint8_t *p, size_t n, char *sni, size_t cap) {
  struct rd r = {p, n, 0};
  unsigned v, len;
  if (rd_u16(&r, &v) < 0 || (v >> 8) != 3) return CLIENT_HELLO_INVALID; /* legacy_version */
  if (rd_skip(&r, 32) < 0) return CLIENT_HELLO_INVALID;                 /* random */
  if (rd_u8(&r, &len) < 0 || len > 32 || rd_skip(&r, len) < 0) return CLIENT_HELLO_INVALID;
  if (rd_u16(&r, &len) < 0 || len < 2 || (len & 1) || rd_skip(&r, len) < 0)
    return CLIENT_HELLO_INVALID; /* cipher_suites */
  if (rd_u8(&r, &len) < 0 || len < 1 || rd_skip(&r, len) < 0) return CLIENT_HELLO_INVALID;
  if (r.off == r.n) return CLIENT_HELLO_NO_SNI; /* no extensions at all (TLS 1.2 and older) */
  if (rd_u16(&r, &len) < 0 || r.off + len != r.n) return CLIENT_HELLO_INVALID;
  while (r.off < r.n) {
    unsigned type, elen;
    if (rd_u16(&r, &type) < 0 || rd_u16(&r, &elen) < 0 || r.off + elen > r.n)
      return CLIENT_HELLO_INVALID;
    if (type == 0) return parse_sni(r.p + r.off, elen, sni, cap);
    r.off += elen;
  }
  return CLIENT_HELLO_NO_SNI;
}

enum client_hello_result client_hello_sni(const uint8_t *p, size_t n, char *sni, size_t cap) {
  uint8_t joined[CLIENT_HELLO_MAX + 4];
  size_t have = 0, need = 0, off = 0;
  int records = 0;
  if (!sni || cap == 0) return CLIENT_HELLO_INVALID;
  sni[0] = '\0';
  while (off < n) {
    if (n - off < 5) {
      /* the first byte already tells a non-TLS client apart */
      if (p[off] != 22) return CLIENT_HELLO_INVALID;
      return CLIENT_HELLO_NEED_MORE;
    }
    const uint8_t *h = p + off;
    size_t rlen = (size_t)h[3] << 8 | h[4];
    if (h[0] != 22 || h[1] != 3 || rlen == 0 || rlen > 16384 + 256) return CLIENT_HELLO_INVALID;
    size_t avail = n - off - 5 < rlen ? n - off - 5 : rlen;
    if (have + avail > sizeof(joined)) return CLIENT_HELLO_INVALID;
    memcpy(joined + have, h + 5, avail);
    have += avail;
    records++;
    if (have >= 4 && need == 0) {
      if (joined[0] != 1) return CLIENT_HELLO_INVALID; /* not a ClientHello */
      need = 4 + ((size_t)joined[1] << 16 | (size_t)joined[2] << 8 | joined[3]);
      if (need > CLIENT_HELLO_MAX) return CLIENT_HELLO_INVALID;
    }
    if (need && have >= need) return parse_hello(joined + 4, need - 4, sni, cap);
    if (avail < rlen) return CLIENT_HELLO_NEED_MORE; /* this record is not complete yet */
    off += 5 + rlen;
    if (records > 64) return CLIENT_HELLO_INVALID;
  }
  return CLIENT_HELLO_NEED_MORE;
}
