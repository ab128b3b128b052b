/*
 * access_log — line formatting (pure) and the ring + writer thread. See
 * access_log.h for the schema and the contract.
 *
 * Ring invariant: bytes [tail, tail+used) mod cap are queued, always whole
 * lines (a submit copies a whole line or nothing). The writer takes what
 * is there in one copy under the mutex and writes it with the mutex
 * released, so a worker waits at most for one memcpy of a line. Lines are
 * batched: a worker wakes the writer only when the ring was empty or
 * crosses FLUSH_BYTES, and the writer then lets FLUSH_MS pass (or
 * FLUSH_BYTES gather) before writing, so a busy proxy pays one futex wake
 * and one write(2) per batch. A line reaches the file within FLUSH_MS.
 */
#include "l7proxy/access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/metrics.h"

#define LINE_MAX_BYTES 8192
#define WRITE_CHUNK (64 * 1024)
/* The writer waits for this much, or FLUSH_MS after the first line, before
 * it writes: one wake-up and one write(2) per batch, not per line. */
#define FLUSH_BYTES (32 * 1024)
#define FLUSH_MS 100

/* ---- formatting --------------------------------------------------------- */

struct out {
  char *p;
  size_t len, cap;
  int full;
};

static void put(struct out *o, const char *s, size_t n) {
  if (o->full || o->len + n >= o->cap) {
    o->full = 1;
    return;
  }
  memcpy(o->p + o->len, s, n);
  o->len += n;
}

static void puts_(struct out *o, const char *s) {
  put(o, s, strlen(s));
}

/* Decimal digits without printf: this runs several times per line. */
static void put_u64(struct out *o, uint64_t v) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  put(o, tmp + sizeof(tmp) - n, n);
}

static void put_i64(struct out *o, int64_t v) {
  if (v < 0) {
    put(o, "-", 1);
    put_u64(o, (uint64_t)0 - (uint64_t)v);
  } else {
    put_u64(o, (uint64_t)v);
  }
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  size_t len;
  uint32_t cp;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf)
    len = 2, cp = c & 0x1f;
  else if (c >= 0xe0 && c <= 0xef)
    len = 3, cp = c & 0x0f;
  else if (c >= 0xf0 && c <= 0xf4)
    len = 4, cp = c & 0x07;
  else
    return 0;
  if (len > n) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    cp = cp << 6 | (s[i] & 0x3f);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
      (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
    return 0;
  return len;
}

/* 1 for bytes JSON and logfmt copy as they are: printable ASCII that is
 * neither a quote nor a backslash (logfmt also wants no space or '='). */
static int plain(unsigned char c) {
  return c > 0x20 && c < 0x7f && c != '"' && c != '\\';
}

static void json_str(struct out *o, const char *s) {
  if (!s) {
    puts_(o, "null");
    return;
  }
  static const char hex[] = "0123456789abcdef";
  put(o, "\"", 1);
  const unsigned char *p = (const unsigned char *)s;
  size_t n = strlen(s);
  for (size_t i = 0; i < n;) {
    unsigned char c = p[i];
    if (plain(c) || c == ' ') { /* the common case: a run copied at once */
      size_t j = i + 1;
      while (j < n && (plain(p[j]) || p[j] == ' ')) j++;
      put(o, s + i, j - i);
      i = j;
    } else if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      put(o, e, 2);
      i++;
    } else if (c < 0x20 || c == 0x7f) {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
      put(o, e, 6);
      i++;
    } else {
      size_t l = utf8_len(p + i, n - i);
      if (l == 0) {
        put(o, "\\ufffd", 6);
        i++;
      } else {
        put(o, (const char *)p + i, l);
        i += l;
      }
    }
  }
  put(o, "\"", 1);
}

static void logfmt_val(struct out *o, const char *s) {
  if (!s) {
    put(o, "-", 1);
    return;
  }
  const unsigned char *q = (const unsigned char *)s;
  while (*q && plain(*q) && *q != '=') q++;
  if (*q == '\0' && q != (const unsigned char *)s) { /* nothing to quote */
    put(o, s, (size_t)((const char *)q - s));
    return;
  }
  static const char hex[] = "0123456789abcdef";
  put(o, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      char e[2] = {'\\', (char)*p};
      put(o, e, 2);
    } else if (*p < 0x20 || *p == 0x7f) {
      char e[4] = {'\\', 'x', hex[*p >> 4], hex[*p & 0xf]};
      put(o, e, 4);
    } else {
      put(o, (const char *)p, 1);
    }
  }
  put(o, "\"", 1);
}

/* "2026-12-02T16:51:45.142Z"; the date and time of the last second are
 * kept per thread, so a busy worker calls gmtime_r once a second. */
static void rfc3339(uint64_t ns, char out[32]) {
  static __thread time_t last = -1;
  static __thread char prefix[24];
  static __thread size_t plen;
  time_t secs = (time_t)(ns / 1000000000ull);
  if (secs != last) {
    struct tm tm;
    gmtime_r(&secs, &tm);
    plen = strftime(prefix, sizeof(prefix), "%Y-%m-%dT%H:%M:%S", &tm);
    last = secs;
  }
  unsigned ms = (unsigned)(ns / 1000000ull % 1000);
  memcpy(out, prefix, plen);
  out[plen] = '.';
  out[plen + 1] = (char)('0' + ms / 100);
  out[plen + 2] = (char)('0' + ms / 10 % 10);
  out[plen + 3] = (char)('0' + ms % 10);
  out[plen + 4] = 'Z';
  out[plen + 5] = '\0';
}

/* A duration in ms with µs precision, or null/"-" when negative. */
static void ms_field(struct out *o, int64_t us, int json) {
  if (us < 0) {
    puts_(o, json ? "null" : "-");
    return;
  }
  put_u64(o, (uint64_t)us / 1000);
  char frac[4] = {'.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10),
                  (char)('0' + us % 10)};
  put(o, frac, 4);
}

static void format_json(struct out *o, const struct access_record *r, const char *ts) {
  puts_(o, "{\"time\":");
  json_str(o, ts);
  puts_(o, ",\"client_address\":");
  json_str(o, r->client_address);
  puts_(o, ",\"client_port\":");
  put_u64(o, r->client_port);
  puts_(o, ",\"protocol\":");
  json_str(o, r->h2 ? "HTTP/2" : "HTTP/1.1");
  puts_(o, ",\"method\":");
  json_str(o, r->method);
  puts_(o, ",\"authority\":");
  json_str(o, r->authority);
  puts_(o, ",\"path\":");
  json_str(o, r->path);
  puts_(o, ",\"status\":");
  put_i64(o, r->status);
  puts_(o, ",\"bytes_in\":");
  put_u64(o, r->bytes_in);
  puts_(o, ",\"bytes_out\":");
  put_u64(o, r->bytes_out);
  puts_(o, ",\"route\":");
  json_str(o, r->route);
  puts_(o, ",\"cluster\":");
  json_str(o, r->cluster);
  puts_(o, ",\"upstream_address\":");
  json_str(o, r->upstream);
  puts_(o, ",\"upstream_connect_ms\":");
  ms_field(o, r->upstream_connect_us, 1);
  puts_(o, ",\"upstream_first_byte_ms\":");
  ms_field(o, r->upstream_first_byte_us, 1);
  puts_(o, ",\"duration_ms\":");
  ms_field(o, r->duration_us, 1);
  puts_(o, ",\"retries\":");
  put_u64(o, r->retries);
  puts_(o, ",\"tls_version\":");
  json_str(o, r->tls_version);
  puts_(o, ",\"sni\":");
  json_str(o, r->sni);
  puts_(o, ",\"alpn\":");
  json_str(o, r->alpn);
  puts_(o, ",\"request_id\":");
  json_str(o, r->request_id);
  puts_(o, ",\"trace_id\":");
  json_str(o, r->trace_id);
  puts_(o, "}\n");
}

static void kv(struct out *o, const char *k, const char *v) {
  put(o, " ", 1);
  puts_(o, k);
  put(o, "=", 1);
  logfmt_val(o, v);
}

static void format_logfmt(struct out *o, const struct access_record *r, const char *ts) {
  puts_(o, "ts=");
  puts_(o, ts);
  puts_(o, " level=info comp=l7proxy msg=access");
  kv(o, "client", r->client_address);
  puts_(o, " client_port=");
  put_u64(o, r->client_port);
  kv(o, "protocol", r->h2 ? "HTTP/2" : "HTTP/1.1");
  kv(o, "method", r->method);
  kv(o, "host", r->authority);
  kv(o, "path", r->path);
  puts_(o, " status=");
  put_i64(o, r->status);
  puts_(o, " bytes=");
  put_u64(o, r->bytes_out);
  puts_(o, " bytes_in=");
  put_u64(o, r->bytes_in);
  puts_(o, " duration_ms=");
  ms_field(o, r->duration_us, 0);
  kv(o, "route", r->route);
  kv(o, "cluster", r->cluster);
  kv(o, "upstream", r->upstream);
  puts_(o, " upstream_connect_ms=");
  ms_field(o, r->upstream_connect_us, 0);
  puts_(o, " upstream_first_byte_ms=");
  ms_field(o, r->upstream_first_byte_us, 0);
  puts_(o, " retries=");
  put_u64(o, r->retries);
  kv(o, "tls_version", r->tls_version);
  kv(o, "sni", r->sni);
  kv(o, "alpn", r->alpn);
  kv(o, "request_id", r->request_id);
  kv(o, "trace_id", r->trace_id);
  put(o, "\n", 1);
}

int access_log_format(enum access_log_format f, const struct access_record *r, char *buf,
                      size_t cap) {
  char ts[32];
  rfc3339(r->time_ns, ts);
  struct out o = {buf, 0, cap, 0};
  if (f == ACCESS_LOG_JSON)
    format_json(&o, r, ts);
  else
    format_logfmt(&o, r, ts);
  return o.full ? -1 : (int)o.len;
}

int access_log_parse_format(const char *s, enum access_log_format *out) {
  if (strcmp(s, "logfmt") == 0) {
    *out = ACCESS_LOG_LOGFMT;
    return 0;
  }
  if (strcmp(s, "json") == 0) {
    *out = ACCESS_LOG_JSON;
    return 0;
  }
  return -1;
}

/* ---- ring and writer ---------------------------------------------------- */

struct access_log {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  char *ring;
  size_t cap, tail, used;
  int stop, reopen;
  enum access_log_format format;
  char *path; /* NULL: fd is not ours */
  int fd;
  atomic_uint_fast64_t dropped, written;
  struct metrics_counter *m_lines, *m_dropped, *m_errors, *m_reopens;
};

int access_log_submit(struct access_log *al, const struct access_record *r) {
  static __thread char line[LINE_MAX_BYTES];
  int n = access_log_format(al->format, r, line, sizeof(line));
  if (n < 0) { /* a record bigger than a line: never the case for bounded fields */
    atomic_fetch_add(&al->dropped, 1);
    if (al->m_dropped) metrics_counter_inc(al->m_dropped);
    return -ENOSPC;
  }
  size_t len = (size_t)n;
  pthread_mutex_lock(&al->mu);
  if (al->cap - al->used < len) {
    pthread_mutex_unlock(&al->mu);
    atomic_fetch_add(&al->dropped, 1);
    if (al->m_dropped) metrics_counter_inc(al->m_dropped);
    return -ENOSPC;
  }
  size_t head = (al->tail + al->used) % al->cap;
  size_t first = al->cap - head < len ? al->cap - head : len;
  memcpy(al->ring + head, line, first);
  memcpy(al->ring, line + first, len - first);
  int wake = al->used == 0 || (al->used < FLUSH_BYTES && al->used + len >= FLUSH_BYTES);
  al->used += len;
  pthread_mutex_unlock(&al->mu);
  if (wake) pthread_cond_signal(&al->cv);
  return 0;
}

static int open_path(const char *path) {
  return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

static void do_reopen(struct access_log *al) {
  if (!al->path) return;
  int fd = open_path(al->path);
  if (fd < 0) {
    LOG_ERROR("access_log_reopen_failed", "path=%s error=%s", log_q(al->path),
              log_q(strerror(errno)));
    if (al->m_errors) metrics_counter_inc(al->m_errors);
    return; /* keep writing to the old file */
  }
  close(al->fd);
  al->fd = fd;
  if (al->m_reopens) metrics_counter_inc(al->m_reopens);
  LOG_INFO("access_log_reopened", "path=%s", log_q(al->path));
}

static void write_all(struct access_log *al, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(al->fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (al->m_errors) metrics_counter_inc(al->m_errors);
      return; /* the rest of this chunk is lost; the next one tries again */
    }
    p += w;
    n -= (size_t)w;
  }
}

static size_t count_lines(const char *p, size_t n) {
  size_t k = 0;
  for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))) != NULL; p++) k++;
  return k;
}

static void deadline_ms(struct timespec *ts, unsigned ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_nsec += (long)ms * 1000000L;
  ts->tv_sec += ts->tv_nsec / 1000000000L;
  ts->tv_nsec %= 1000000000L;
}

static void *writer_main(void *arg) {
  struct access_log *al = arg;
  char *chunk = malloc(WRITE_CHUNK);
  for (;;) {
    pthread_mutex_lock(&al->mu);
    while (al->used == 0 && !al->stop && !al->reopen) pthread_cond_wait(&al->cv, &al->mu);
    /* let a batch gather: FLUSH_BYTES, FLUSH_MS, or a stop/reopen */
    struct timespec until;
    deadline_ms(&until, FLUSH_MS);
    while (al->used < FLUSH_BYTES && !al->stop && !al->reopen &&
           pthread_cond_timedwait(&al->cv, &al->mu, &until) != ETIMEDOUT) {
    }
    int reopen = al->reopen, stop = al->stop;
    al->reopen = 0;
    /* whole lines only: cut the copy after its last newline */
    size_t n = al->used < WRITE_CHUNK ? al->used : WRITE_CHUNK;
    if (!chunk) n = 0;
    size_t first = al->cap - al->tail < n ? al->cap - al->tail : n;
    if (n) {
      memcpy(chunk, al->ring + al->tail, first);
      memcpy(chunk + first, al->ring, n - first);
      if (n < al->used) {
        while (n > 0 && chunk[n - 1] != '\n') n--;
      }
      al->tail = (al->tail + n) % al->cap;
      al->used -= n;
    }
    int done = stop && al->used == 0;
    pthread_mutex_unlock(&al->mu);
    if (reopen) do_reopen(al);
    if (n) {
      write_all(al, chunk, n);
      uint64_t lines = count_lines(chunk, n);
      atomic_fetch_add(&al->written, lines);
      if (al->m_lines) metrics_counter_add(al->m_lines, lines);
    }
    if (done || (stop && !chunk)) break;
  }
  free(chunk);
  return NULL;
}

int access_log_open(const struct access_log_opts *o, struct access_log **out, char *err,
                    size_t errlen) {
  *out = NULL;
  struct access_log *al = calloc(1, sizeof(*al));
  if (!al) return -ENOMEM;
  al->format = o->format;
  al->cap = o->ring_bytes ? o->ring_bytes : 4u << 20;
  if (al->cap < LINE_MAX_BYTES) al->cap = LINE_MAX_BYTES;
  al->ring = malloc(al->cap);
  if (o->path && strcmp(o->path, "-") != 0) {
    al->path = strdup(o->path);
    al->fd = open_path(o->path);
    if (al->fd < 0) {
      snprintf(err, errlen, "cannot open %s: %s", o->path, strerror(errno));
      free(al->path);
      free(al->ring);
      free(al);
      return -EIO;
    }
  } else {
    al->fd = o->fd >= 0 && !o->path ? o->fd : 2;
  }
  pthread_mutex_init(&al->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&al->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (o->metrics) {
    struct metrics_registry *m = o->metrics;
    al->m_lines =
        metrics_counter(m, "edge_l7_access_log_lines_total", "Access log lines written.", "");
    al->m_dropped = metrics_counter(m, "edge_l7_access_log_dropped_total",
                                    "Access log lines dropped because the ring was full.", "");
    al->m_errors = metrics_counter(m, "edge_l7_access_log_errors_total",
                                   "Access log write or reopen errors.", "");
    al->m_reopens = metrics_counter(m, "edge_l7_access_log_reopens_total",
                                    "Access log files reopened (SIGUSR1).", "");
  }
  if (!al->ring || (o->path && strcmp(o->path, "-") != 0 && !al->path) ||
      pthread_create(&al->thread, NULL, writer_main, al) != 0) {
    snprintf(err, errlen, "cannot start the access log writer");
    if (al->path) close(al->fd);
    pthread_cond_destroy(&al->cv);
    pthread_mutex_destroy(&al->mu);
    free(al->path);
    free(al->ring);
    free(al);
    return -ENOMEM;
  }
  *out = al;
  return 0;
}

void access_log_reopen(struct access_log *al) {
  if (!al) return;
  pthread_mutex_lock(&al->mu);
  al->reopen = 1;
  pthread_mutex_unlock(&al->mu);
  pthread_cond_signal(&al->cv);
}

void access_log_close(struct access_log *al) {
  if (!al) return;
  pthread_mutex_lock(&al->mu);
  al->stop = 1;
  pthread_mutex_unlock(&al->mu);
  pthread_cond_signal(&al->cv);
  pthread_join(al->thread, NULL);
  if (al->path) close(al->fd);
  pthread_cond_destroy(&al->cv);
  pthread_mutex_destroy(&al->mu);
  free(al->path);
  free(al->ring);
  free(al);
}

uint64_t access_log_dropped(const struct access_log *al) {
  return atomic_load(&((struct access_log *)al)->dropped);
}

uint64_t access_log_written(const struct access_log *al) {
  return atomic_load(&((struct access_log *)al)->written);
}
