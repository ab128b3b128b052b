/*
 * checker — one timer-driven HTTP (or TCP) check at a time per backend.
 * See checker.h. The TCP handle is re-created for every check: it is
 * closed when a check ends and the next check is scheduled from its close
 * callback, so at most one check per backend is ever in flight.
 */
#include "l4lb/checker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l4lb/backend.h"
#include "common/health.h"

enum { CHK_TCP_NONE = 0, CHK_TCP_OPEN, CHK_TCP_CLOSING };

struct l4_checker {
  uv_loop_t *loop;
  struct l4_backend *be;
  struct l4_checker_config cfg;
  l4_check_result_fn fn;
  void *ud;
  uv_timer_t interval;
  uv_timer_t timeout;
  uv_tcp_t tcp;
  int tcp_state;
  uv_connect_t connect_req;
  uv_write_t write_req;
  int in_flight;
  int stopping;
  int pending_closes;
  char request[256];
  uint8_t resp[HEALTH_STATUS_LINE_MAX];
  size_t resp_len;
  uint64_t rng;
};

static uint32_t next_rand(struct l4_checker *k) {
  /* xorshift64: jitter only, not security */
  k->rng ^= k->rng << 13;
  k->rng ^= k->rng >> 7;
  k->rng ^= k->rng << 17;
  return (uint32_t)(k->rng >> 32);
}

static uint32_t jittered(struct l4_checker *k) {
  uint32_t base = k->cfg.interval_ms;
  uint32_t spread = base / 5; /* ±10 % */
  if (spread == 0) return base;
  return base - spread / 2 + next_rand(k) % (spread + 1);
}

static void on_interval(uv_timer_t *t);

static void checker_maybe_free(struct l4_checker *k) {
  if (--k->pending_closes > 0) return;
  l4_backend_unref(k->be);
  free(k);
}

static void on_checker_handle_closed(uv_handle_t *h) {
  checker_maybe_free(h->data);
}

static void on_tcp_closed(uv_handle_t *h) {
  struct l4_checker *k = h->data;
  k->tcp_state = CHK_TCP_NONE;
  if (k->stopping) {
    checker_maybe_free(k);
    return;
  }
  uv_timer_start(&k->interval, on_interval, jittered(k), 0);
}

static void finish(struct l4_checker *k, int ok, const char *why) {
  if (!k->in_flight) return;
  k->in_flight = 0;
  uv_timer_stop(&k->timeout);
  if (k->tcp_state == CHK_TCP_OPEN) {
    k->tcp_state = CHK_TCP_CLOSING;
    uv_close((uv_handle_t *)&k->tcp, on_tcp_closed);
  }
  if (!k->stopping) k->fn(k->ud, k->be, ok, why);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct l4_checker *k = h->data;
  buf->base = (char *)k->resp + k->resp_len;
  buf->len = sizeof(k->resp) - k->resp_len;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct l4_checker *k = s->data;
  if (n < 0) {
    finish(k, 0, n == UV_EOF ? "closed before a status line" : uv_strerror((int)n));
    return;
  }
  k->resp_len += (size_t)n;
  int status = health_parse_status(k->resp, k->resp_len);
  if (status == HEALTH_PARSE_ERR) {
    finish(k, 0, "bad response");
  } else if (status > 0) {
    finish(k, health_status_ok(status), health_status_ok(status) ? "ok" : "bad status");
  } else if (k->resp_len == sizeof(k->resp)) {
    finish(k, 0, "status line too long");
  }
}

static void on_write(uv_write_t *req, int status) {
  struct l4_checker *k = req->data;
  if (status < 0) finish(k, 0, uv_strerror(status));
}

static void on_connect(uv_connect_t *req, int status) {
  struct l4_checker *k = req->data;
  if (!k->in_flight) return;
  if (status < 0) {
    finish(k, 0, uv_strerror(status));
    return;
  }
  if (!k->be->check_address) {
    finish(k, 1, "ok");
    return;
  }
  uv_buf_t b = uv_buf_init(k->request, (unsigned)strlen(k->request));
  k->write_req.data = k;
  if (uv_write(&k->write_req, (uv_stream_t *)&k->tcp, &b, 1, on_write) != 0 ||
      uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read) != 0)
    finish(k, 0, "write failed");
}

static void on_timeout(uv_timer_t *t) {
  finish(t->data, 0, "timeout");
}

static void on_interval(uv_timer_t *t) {
  struct l4_checker *k = t->data;
  if (k->stopping || k->tcp_state != CHK_TCP_NONE) return;
  k->resp_len = 0;
  if (uv_tcp_init(k->loop, &k->tcp) != 0) {
    uv_timer_start(&k->interval, on_interval, jittered(k), 0);
    return;
  }
  k->tcp.data = k;
  k->tcp_state = CHK_TCP_OPEN;
  k->in_flight = 1;
  const struct sockaddr *addr =
      (const struct sockaddr *)(k->be->check_address ? &k->be->check_addr : &k->be->addr);
  k->connect_req.data = k;
  uv_timer_start(&k->timeout, on_timeout, k->cfg.timeout_ms, 0);
  int rc = uv_tcp_connect(&k->connect_req, &k->tcp, addr, on_connect);
  if (rc != 0) finish(k, 0, uv_strerror(rc));
}

int l4_checker_start(uv_loop_t *loop, struct l4_backend *b, const struct l4_checker_config *cfg,
                     l4_check_result_fn fn, void *ud) {
  struct l4_checker *k = calloc(1, sizeof(*k));
  if (!k) return -1;
  k->loop = loop;
  k->be = b;
  l4_backend_ref(b);
  k->cfg = *cfg;
  if (k->cfg.interval_ms == 0) k->cfg.interval_ms = 1;
  k->fn = fn;
  k->ud = ud;
  k->rng = (uint64_t)(uintptr_t)k ^ uv_hrtime() ^ 0x9e3779b97f4a7c15ull;
  if (k->rng == 0) k->rng = 1;
  if (b->check_address)
    snprintf(k->request, sizeof(k->request),
             "GET /readyz HTTP/1.0\r\nHost: %s\r\nUser-Agent: edge-l4lb-check\r\n"
             "Connection: close\r\n\r\n",
             b->check_address);
  uv_timer_init(loop, &k->interval);
  uv_timer_init(loop, &k->timeout);
  k->interval.data = k->timeout.data = k;
  b->checker = k;
  uv_timer_start(&k->interval, on_interval, next_rand(k) % (k->cfg.interval_ms / 2 + 1), 0);
  return 0;
}

void l4_checker_stop(struct l4_backend *b) {
  struct l4_checker *k = b->checker;
  if (!k) return;
  b->checker = NULL;
  k->stopping = 1;
  k->pending_closes = 2;
  uv_close((uv_handle_t *)&k->interval, on_checker_handle_closed);
  uv_close((uv_handle_t *)&k->timeout, on_checker_handle_closed);
  if (k->tcp_state == CHK_TCP_OPEN) {
    k->pending_closes++;
    k->in_flight = 0;
    k->tcp_state = CHK_TCP_CLOSING;
    uv_close((uv_handle_t *)&k->tcp, on_tcp_closed);
  } else if (k->tcp_state == CHK_TCP_CLOSING) {
    k->pending_closes++; /* on_tcp_closed counts it down */
  }
}
