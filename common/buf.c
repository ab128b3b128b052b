/*
 * buf — the out-of-line half of the growable buffer (see buf.h).
 */
#include "common/buf.h"

#include <stdio.h>
#include <stdlib.h>

int buf_grow(struct buf *b, size_t extra) {
  if (b->failed) return -ENOMEM;
  if (b->cap - b->len >= extra) return 0;
  if (extra > ((size_t)-1) / 4 - b->len) goto fail;
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len < extra) cap *= 2;
  char *d = realloc(b->data, cap);
  if (!d) goto fail;
  b->data = d;
  b->cap = cap;
  return 0;
fail:
  b->failed = 1;
  return -ENOMEM;
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap) {
  if (b->failed) return -ENOMEM;
  va_list again;
  va_copy(again, ap);
  /* Try in the room there is; measure and retry only when it does not fit. */
  size_t room = b->cap - b->len;
  int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
  if (n < 0) {
    va_end(again);
    b->failed = 1;
    return -ENOMEM;
  }
  if ((size_t)n >= room) {
    if (buf_grow(b, (size_t)n + 1) != 0) {
      va_end(again);
      return -ENOMEM;
    }
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
  }
  va_end(again);
  b->len += (size_t)n;
  return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = buf_vprintf(b, fmt, ap);
  va_end(ap);
  return rc;
}

int buf_put_u64(struct buf *b, unsigned long long v) {
  char tmp[24];
  int i = sizeof(tmp);
  do {
    tmp[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  return buf_append(b, tmp + i, sizeof(tmp) - (size_t)i);
}

int buf_put_hex(struct buf *b, unsigned long long v) {
  char tmp[20];
  int i = sizeof(tmp);
  do {
    tmp[--i] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v);
  return buf_append(b, tmp + i, sizeof(tmp) - (size_t)i);
}

void buf_consume(struct buf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

void buf_free(struct buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
  b->failed = 0;
}

char *buf_cstr(struct buf *b) {
  if (buf_reserve(b, 1) != 0) return NULL;
  b->data[b->len] = '\0';
  return b->data;
}

char *buf_detach(struct buf *b) {
  char *s = buf_cstr(b);
  if (!s) {
    buf_free(b);
    return NULL;
  }
  b->data = NULL;
  b->len = b->cap = 0;
  return s;
}
