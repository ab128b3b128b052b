/*
 * passthrough — two TCP handles and a timer per tunnel (see passthrough.h).
 * side[0] is the client, side[1] the backend; bytes read on one side are
 * written to the other with a per-write copy, and `queued[i]` counts what
 * waits to be written to side i.
 */
#include "l7proxy/passthrough.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/weighted.h"
#include "l7proxy/headers.h"
#include "l7proxy/worker_internal.h"

struct tunnel {
  struct side_task task;
  struct worker *w;
  uv_tcp_t side[2];
  uv_connect_t conn;
  uv_timer_t idle;
  size_t queued[2]; /* bytes waiting to be written to side i */
  int eof[2];       /* side i ended its sending */
  int reading[2];
  int connected;
  int closing;
  int handles;
  char *first; /* the client's bytes read before the tunnel (the ClientHello) */
  size_t n_first;
  char name[128]; /* the passthrough host's name (logs) */
};

struct pt_write {
  uv_write_t req;
  struct tunnel *t;
  int to;
  size_t n;
  char data[];
};

static __thread struct metrics_counter *c_ok, *c_failed;
static __thread int counters_ready;

static void count(struct worker *w, int ok) {
  if (!counters_ready && w->cfg->metrics) {
    counters_ready = 1;
    c_ok = metrics_counter(w->cfg->metrics, "edge_l7_passthrough_connections_total",
                           "TLS passthrough connections (Gateway API TLSRoute).",
                           "result=\"spliced\"");
    c_failed =
        metrics_counter(w->cfg->metrics, "edge_l7_passthrough_connections_total",
                        "TLS passthrough connections (Gateway API TLSRoute).", "result=\"failed\"");
  }
  if (ok && c_ok) metrics_counter_inc(c_ok);
  if (!ok && c_failed) metrics_counter_inc(c_failed);
}

static void t_closed(uv_handle_t *h) {
  struct tunnel *t = h->data;
  if (--t->handles == 0) {
    free(t->first);
    free(t);
  }
}

static void t_close(struct tunnel *t) {
  if (t->closing) return;
  t->closing = 1;
  up_link_remove(&t->task.link);
  uv_close((uv_handle_t *)&t->idle, t_closed);
  uv_close((uv_handle_t *)&t->side[0], t_closed);
  uv_close((uv_handle_t *)&t->side[1], t_closed);
}

static void t_task_close(struct side_task *task) {
  t_close(container_of(task, struct tunnel, task));
}

static void t_touch(struct tunnel *t) {
  if (!t->closing) uv_timer_again(&t->idle);
}

static void t_on_idle(uv_timer_t *tm) {
  t_close(tm->data);
}

static void t_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  (void)h;
  b->base = malloc(suggested);
  b->len = b->base ? suggested : 0;
}

static void t_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

static void t_set_reading(struct tunnel *t, int i, int on) {
  if (t->closing || t->eof[i] || t->reading[i] == on || (i == 1 && !t->connected)) return;
  t->reading[i] = on;
  if (on)
    uv_read_start((uv_stream_t *)&t->side[i], t_alloc, t_read);
  else
    uv_read_stop((uv_stream_t *)&t->side[i]);
}

static void t_shutdown_cb(uv_shutdown_t *r, int status) {
  (void)status;
  free(r);
}

/* Side `from` ended: pass the half-close on; both ended: done. */
static void t_eof(struct tunnel *t, int from) {
  t->eof[from] = 1;
  t->reading[from] = 0;
  if (t->eof[0] && t->eof[1]) {
    t_close(t);
    return;
  }
  uv_shutdown_t *r = malloc(sizeof(*r));
  if (!r || uv_shutdown(r, (uv_stream_t *)&t->side[!from], t_shutdown_cb) != 0) {
    free(r);
    t_close(t);
  }
}

static void t_written(uv_write_t *req, int status) {
  struct pt_write *w = (struct pt_write *)req;
  struct tunnel *t = w->t;
  int to = w->to;
  t->queued[to] -= w->n;
  free(w);
  if (t->closing) return;
  if (status < 0) {
    t_close(t);
    return;
  }
  if (t->queued[to] < PT_HIGH_WATER / 4) t_set_reading(t, !to, 1);
}

static int t_write(struct tunnel *t, int to, const char *p, size_t n) {
  struct pt_write *w = malloc(sizeof(*w) + n);
  if (!w) return -1;
  w->t = t;
  w->to = to;
  w->n = n;
  memcpy(w->data, p, n);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
  if (uv_write(&w->req, (uv_stream_t *)&t->side[to], &b, 1, t_written) != 0) {
    free(w);
    return -1;
  }
  t->queued[to] += n;
  if (t->queued[to] > PT_HIGH_WATER) t_set_reading(t, !to, 0); /* back pressure */
  return 0;
}

static void t_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  struct tunnel *t = s->data;
  int from = s == (uv_stream_t *)&t->side[0] ? 0 : 1;
  if (n > 0 && !t->closing) {
    t_touch(t);
    if (t_write(t, !from, b->base, (size_t)n) != 0) t_close(t);
  } else if (n == UV_EOF && !t->closing) {
    t_eof(t, from);
  } else if (n < 0) {
    t_close(t);
  }
  free(b->base);
}

static void t_connected(uv_connect_t *c, int status) {
  struct tunnel *t = c->data;
  if (t->closing) return;
  if (status < 0) {
    LOG_DEBUG("passthrough_connect_failed", "host=%s error=%s", log_q(t->name),
              uv_strerror(status));
    count(t->w, 0);
    t_close(t);
    return;
  }
  count(t->w, 1);
  t->connected = 1;
  if (t->n_first && t_write(t, 1, t->first, t->n_first) != 0) {
    t_close(t);
    return;
  }
  free(t->first);
  t->first = NULL;
  t_touch(t);
  t_set_reading(t, 1, 1);
  t_set_reading(t, 0, 1);
}

int passthrough_start(struct worker *w, int client_fd, const struct l7_snapshot *snap,
                      const struct l7_passthrough *pt, const char *first, size_t n) {
  uint32_t weights[64];
  if (!pt || pt->n_clusters == 0 || pt->n_clusters > 64) return -1;
  for (size_t i = 0; i < pt->n_clusters; i++) weights[i] = pt->clusters[i].weight;
  uint64_t key = headers_rand64();
  long ci = weighted_pick(weights, pt->n_clusters, weighted_key(&key, sizeof(key)));
  const struct l7_cluster *c =
      ci < 0 ? NULL : l7_snapshot_weighted_cluster(snap, &pt->clusters[ci]);
  if (!c || c->n_endpoints == 0) {
    count(w, 0);
    return -1;
  }
  const struct l7_endpoint *ep = &c->endpoints[headers_rand64() % c->n_endpoints];
  struct tunnel *t = calloc(1, sizeof(*t));
  if (!t || !(t->first = malloc(n ? n : 1))) {
    free(t);
    return -1;
  }
  memcpy(t->first, first, n);
  t->n_first = n;
  t->w = w;
  snprintf(t->name, sizeof(t->name), "%s", pt->name);
  uv_tcp_init(&w->loop, &t->side[0]);
  if (uv_tcp_open(&t->side[0], client_fd) != 0) {
    /* the handle owns nothing yet: close it, the caller keeps the fd */
    t->handles = 1;
    t->closing = 1;
    up_link_init(&t->task.link);
    uv_close((uv_handle_t *)&t->side[0], t_closed);
    return -1;
  }
  uv_tcp_init(&w->loop, &t->side[1]);
  uv_timer_init(&w->loop, &t->idle);
  t->side[0].data = t->side[1].data = t->idle.data = t->conn.data = t;
  t->handles = 3;
  t->task.close = t_task_close;
  up_link_insert(&w->side, &t->task.link);
  /* first the cluster's connect timeout, then (t_touch) the tunnel idle timeout */
  uint32_t ms = w->cfg->limits->tunnel_idle_timeout_ms;
  uv_timer_start(&t->idle, t_on_idle, c->connect_timeout_ms, ms ? ms : 3600000);
  uv_tcp_nodelay(&t->side[0], 1);
  uv_tcp_nodelay(&t->side[1], 1);
  if (uv_tcp_connect(&t->conn, &t->side[1], (const struct sockaddr *)&ep->addr, t_connected) != 0) {
    count(w, 0);
    t_close(t);
  }
  return 0;
}
