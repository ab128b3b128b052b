/*
 * buf — a growable byte/string buffer: HTTP/1.1 heads being assembled and
 * bytes queued for a socket (l7proxy), /metrics text (common/metrics),
 * explain text (common/explain), API-server bodies (syncd).
 *
 * The buffer owns data (malloc'd, NULL until the first append); buf_free
 * releases it. Appends return 0 or -ENOMEM. A failed append leaves the
 * contents as they were and marks the buffer failed: every later append
 * fails too until buf_reset, so a caller that builds a long text may check
 * once at the end (b->failed, or buf_detach returning NULL). data is not
 * NUL-terminated unless asked for (buf_cstr, buf_detach).
 *
 * Hot-path appends (buf_append and what builds on it) are inline and
 * allocate only when the buffer grows (doubling, 256 bytes first). Not
 * thread-safe: one owner at a time.
 */
#ifndef EDGE_COMMON_BUF_H
#define EDGE_COMMON_BUF_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

struct buf {
  char *data;
  size_t len, cap;
  int failed; /* an append ran out of memory (sticky until buf_reset) */
};

/* Makes room for extra more bytes. 0 or -ENOMEM (and b->failed set). */
int buf_grow(struct buf *b, size_t extra);

static inline int buf_reserve(struct buf *b, size_t extra) {
  if (b->failed) return -ENOMEM;
  return b->cap - b->len >= extra ? 0 : buf_grow(b, extra);
}

static inline int buf_append(struct buf *b, const void *p, size_t n) {
  if (buf_reserve(b, n) != 0) return -ENOMEM;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

static inline int buf_puts(struct buf *b, const char *s) {
  return buf_append(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);

/* Appends v in decimal (no printf: this runs for every HTTP message). */
int buf_put_u64(struct buf *b, unsigned long long v);
/* Appends v in lowercase hex (chunk sizes). */
int buf_put_hex(struct buf *b, unsigned long long v);

/* Drops the first n bytes (all when n >= len). */
void buf_consume(struct buf *b, size_t n);

/* Empties the buffer and clears failed; keeps the allocation for reuse. */
static inline void buf_reset(struct buf *b) {
  b->len = 0;
  b->failed = 0;
}

/* Frees the allocation; the buffer is empty and usable again. */
void buf_free(struct buf *b);

/* data NUL-terminated (the NUL not counted in len), or NULL when failed. */
char *buf_cstr(struct buf *b);

/* Hands data over as a malloc'd NUL-terminated string the caller frees,
 * and leaves b empty; NULL when failed (then b is freed). */
char *buf_detach(struct buf *b);

#endif
