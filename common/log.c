/*
 * log — logfmt lines assembled in a stack buffer and written with one
 * write(2), so lines from several threads never interleave.
 */
#include "common/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/timefmt.h"

static const char *log_component = "edge";
static atomic_int log_level = LOG_LEVEL_INFO;
static atomic_int log_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *component) {
  log_component = component;
}
void log_set_level(enum log_level level) {
  atomic_store(&log_level, (int)level);
}
enum log_level log_get_level(void) {
  return (enum log_level)atomic_load(&log_level);
}
void log_set_fd(int fd) {
  atomic_store(&log_fd, fd);
}

int log_parse_level(const char *s, enum log_level *out) {
  for (int i = 0; i < 4; i++) {
    if (strcmp(s, level_names[i]) == 0) {
      *out = (enum log_level)i;
      return 0;
    }
  }
  return -1;
}

void log_emitv(enum log_level level, const char *event, const char *fmt, va_list ap) {
  if ((int)level < atomic_load(&log_level)) return;
  char line[4096];
  struct timeval tv;
  char ts[TIMEFMT_LEN];
  gettimeofday(&tv, NULL);
  timefmt_utc_ms((int64_t)tv.tv_sec, (int)(tv.tv_usec / 1000), ts, sizeof(ts));
  int n = snprintf(line, sizeof(line), "ts=%s level=%s comp=%s msg=%s", ts, level_names[level],
                   log_component, log_q(event));
  if (n < 0) return;
  if ((size_t)n >= sizeof(line) - 2) n = (int)sizeof(line) - 2;
  if (fmt && fmt[0]) {
    line[n++] = ' ';
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    if (m > 0) n += m;
    if ((size_t)n >= sizeof(line) - 1) n = (int)sizeof(line) - 2;
  }
  line[n++] = '\n';
  ssize_t w = write(atomic_load(&log_fd), line, (size_t)n);
  (void)w;
}

void log_emit(enum log_level level, const char *event, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log_emitv(level, event, fmt, ap);
  va_end(ap);
}

const char *log_q(const char *s) {
  static __thread char ring[8][512];
  static __thread unsigned next;
  char *out = ring[next++ % 8];
  if (!s) s = "";
  int needs = s[0] == '\0';
  for (const char *p = s; *p; p++) {
    if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\' || (unsigned char)*p < 0x20) {
      needs = 1;
      break;
    }
  }
  if (!needs) {
    size_t len = strlen(s);
    if (len < 512) return s;
    memcpy(out, s, 508);
    memcpy(out + 508, "...", 4);
    return out;
  }
  size_t o = 0;
  out[o++] = '"';
  for (const char *p = s; *p && o < 500; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '"' || c == '\\') {
      out[o++] = '\\';
      out[o++] = (char)c;
    } else if (c == '\n') {
      out[o++] = '\\';
      out[o++] = 'n';
    } else if (c < 0x20) {
      out[o++] = '?';
    } else {
      out[o++] = (char)c;
    }
  }
  if (o >= 500) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o++] = '"';
  out[o] = '\0';
  return out;
}
