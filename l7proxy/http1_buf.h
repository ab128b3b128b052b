/*
 * http1_buf — a growable byte buffer for the HTTP/1.1 data path.
 *
 * Used for request/response heads being assembled, bytes queued for a
 * socket and unparsed input kept while a pipelined request waits. The
 * buffer owns data (malloc'd); h1_buf_free releases it. Appends return 0
 * or -ENOMEM and leave the buffer unchanged on failure.
 * Callers: http1.c, headers.c, worker.c.
 */
#ifndef EDGE_L7PROXY_HTTP1_BUF_H
#define EDGE_L7PROXY_HTTP1_BUF_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct h1_buf {
  char *data;
  size_t len, cap;
};

static inline int h1_buf_reserve(struct h1_buf *b, size_t extra) {
  if (b->cap - b->len >= extra) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len < extra) cap *= 2;
  char *d = realloc(b->data, cap);
  if (!d) return -ENOMEM;
  b->data = d;
  b->cap = cap;
  return 0;
}

static inline int h1_buf_append(struct h1_buf *b, const void *p, size_t n) {
  if (n == 0) return 0;
  if (h1_buf_reserve(b, n) != 0) return -ENOMEM;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

static inline int h1_buf_puts(struct h1_buf *b, const char *s) {
  return h1_buf_append(b, s, strlen(s));
}

static inline int h1_buf_printf(struct h1_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline int h1_buf_printf(struct h1_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || h1_buf_reserve(b, (size_t)n + 1) != 0) return -ENOMEM;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

/* Appends v in decimal (no printf: this runs for every message). */
static inline int h1_buf_put_u64(struct h1_buf *b, unsigned long long v) {
  char tmp[24];
  int i = sizeof(tmp);
  do {
    tmp[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  return h1_buf_append(b, tmp + i, sizeof(tmp) - (size_t)i);
}

/* Appends v in lowercase hex (chunk sizes). */
static inline int h1_buf_put_hex(struct h1_buf *b, unsigned long long v) {
  char tmp[20];
  int i = sizeof(tmp);
  do {
    tmp[--i] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v);
  return h1_buf_append(b, tmp + i, sizeof(tmp) - (size_t)i);
}

/* Drops the first n bytes. */
static inline void h1_buf_consume(struct h1_buf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

static inline void h1_buf_reset(struct h1_buf *b) {
  b->len = 0;
}

static inline void h1_buf_free(struct h1_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

#endif
