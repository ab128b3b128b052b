/*
 * health — rise/fall state machine and check-response parser. See
 * health.h. Pure code: no I/O, no allocation.
 */
#include "common/health.h"

void health_init(struct health_state *h, int rise, int fall) {
  h->up = 1;
  h->successes = 0;
  h->failures = 0;
  h->rise = rise < 1 ? 1 : rise;
  h->fall = fall < 1 ? 1 : fall;
}

int health_observe(struct health_state *h, int ok) {
  if (h->up) {
    h->successes = 0;
    if (ok) {
      h->failures = 0;
      return 0;
    }
    if (++h->failures < h->fall) return 0;
    h->up = 0;
    h->failures = 0;
    return 1;
  }
  h->failures = 0;
  if (!ok) {
    h->successes = 0;
    return 0;
  }
  if (++h->successes < h->rise) return 0;
  h->up = 1;
  h->successes = 0;
  return 1;
}

int health_status_ok(int status) {
  return status >= 200 && status <= 399;
}

int health_status_expected(int status, unsigned min, unsigned max) {
  if (min == 0 && max == 0) return health_status_ok(status);
  return status >= 0 && (unsigned)status >= min && (unsigned)status <= max;
}

/* "HTTP/1.x SSS[ reason]\r\n" (a bare LF is tolerated, as most clients do). */
int health_parse_status(const uint8_t *buf, size_t len) {
  static const char prefix[] = "HTTP/1.";
  size_t i;
  for (i = 0; i < sizeof(prefix) - 1; i++) {
    if (i >= len) return HEALTH_PARSE_NEED_MORE;
    if (buf[i] != (uint8_t)prefix[i]) return HEALTH_PARSE_ERR;
  }
  /* minor version digit, space, three digits */
  if (i >= len) return HEALTH_PARSE_NEED_MORE;
  if (buf[i] < '0' || buf[i] > '9') return HEALTH_PARSE_ERR;
  i++;
  if (i >= len) return HEALTH_PARSE_NEED_MORE;
  if (buf[i] != ' ') return HEALTH_PARSE_ERR;
  i++;
  int status = 0;
  for (int d = 0; d < 3; d++, i++) {
    if (i >= len) return HEALTH_PARSE_NEED_MORE;
    if (buf[i] < '0' || buf[i] > '9') return HEALTH_PARSE_ERR;
    status = status * 10 + (buf[i] - '0');
  }
  if (status < 100 || status > 599) return HEALTH_PARSE_ERR;
  if (i >= len) return HEALTH_PARSE_NEED_MORE;
  if (buf[i] != ' ' && buf[i] != '\r' && buf[i] != '\n') return HEALTH_PARSE_ERR;
  /* reason phrase: printable bytes and tabs up to CRLF */
  for (; i < len; i++) {
    uint8_t c = buf[i];
    if (i >= HEALTH_STATUS_LINE_MAX) return HEALTH_PARSE_ERR;
    if (c == '\n') return status;
    if (c == '\r') {
      if (i + 1 >= len) return HEALTH_PARSE_NEED_MORE;
      return buf[i + 1] == '\n' ? status : HEALTH_PARSE_ERR;
    }
    if (c != '\t' && (c < 0x20 || c == 0x7f)) return HEALTH_PARSE_ERR;
  }
  return len >= HEALTH_STATUS_LINE_MAX ? HEALTH_PARSE_ERR : HEALTH_PARSE_NEED_MORE;
}
