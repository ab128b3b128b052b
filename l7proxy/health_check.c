/*
 * health_check — the per-process endpoint checker and the interned flags
 * workers read (see health_check.h).
 *
 * A target's handles: a timer for its whole life (interval, then the
 * check's timeout) and a TCP handle per check, re-created for every check
 * and closed when the check ends; the next check is scheduled from the
 * close callback, so at most one check per endpoint is ever in flight (as
 * in l4lb/checker.c). A removed target frees itself when its last handle
 * has closed.
 */
#include "l7proxy/health_check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/health.h"
#include "common/log.h"
#include "common/metrics.h"
#include "l7proxy/snapshot.h"
#include "l7proxy/tls.h"
#include "l7proxy/upstream_tls.h"

#define HC_DEFAULT_INTERVAL_MS 5000u
#define HC_DEFAULT_TIMEOUT_MS 2000u
#define HC_DEFAULT_RISE 2
#define HC_DEFAULT_FALL 3
#define HC_BUCKETS 1024

/* ---- interned flags ------------------------------------------------------ */

struct flag_entry {
  struct flag_entry *next;
  struct hc_flag flag;
  char key[]; /* "cluster\nendpoint" */
};

static pthread_mutex_t g_flags_mu = PTHREAD_MUTEX_INITIALIZER;
static struct flag_entry *g_flags[HC_BUCKETS];

static size_t hash_str(const char *s) {
  size_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

struct hc_flag *hc_flag_get(const char *cluster, const char *endpoint) {
  char key[512];
  int n = snprintf(key, sizeof(key), "%s\n%s", cluster, endpoint);
  if (n < 0 || (size_t)n >= sizeof(key)) return NULL;
  size_t b = hash_str(key) % HC_BUCKETS;
  pthread_mutex_lock(&g_flags_mu);
  struct flag_entry *e = g_flags[b];
  while (e && strcmp(e->key, key) != 0) e = e->next;
  if (!e) {
    e = calloc(1, sizeof(*e) + (size_t)n + 1);
    if (e) {
      memcpy(e->key, key, (size_t)n + 1);
      atomic_init(&e->flag.down, 0);
      e->next = g_flags[b];
      g_flags[b] = e;
    }
  }
  pthread_mutex_unlock(&g_flags_mu);
  return e ? &e->flag : NULL;
}

/* ---- targets ------------------------------------------------------------- */

enum { HC_TCP_NONE = 0, HC_TCP_OPEN, HC_TCP_CLOSING };

struct hc_target {
  struct hc_target *next; /* checker's bucket */
  struct hc_checker *k;
  char *key; /* "cluster\nendpoint" */
  char cluster[128];
  char endpoint[64];
  struct hc_flag *flag;
  struct sockaddr_storage addr;
  struct utls_ctx *tls; /* the cluster's TLS context (a reference); NULL: plain */
  /* the compiled cluster the settings came from (held: a push that leaves
   * the cluster alone hands back the same object, and then costs nothing) */
  const struct l7_cluster *from;
  /* settings (copied: the snapshot may go) */
  char *request; /* the whole request */
  uint32_t interval_ms, timeout_ms, min_status, max_status;
  int rise, fall;
  struct health_state st;
  /* the check in flight */
  uv_timer_t timer;
  uv_tcp_t tcp;
  uv_connect_t creq;
  int tcp_state;
  int in_flight;
  int sent;
  struct tls_conn *tc;
  uint8_t resp[HEALTH_STATUS_LINE_MAX];
  size_t resp_len;
  int seen;     /* marked by the current sync */
  int removing; /* taken out: freed when its handles have closed */
  int handles;
  struct metrics_counter *c_ok, *c_failed, *c_down, *c_up;
  struct metrics_gauge *g_up; /* 1 UP, 0 DOWN: which endpoints are out, for operators */
  char up_labels[640];
};

struct hc_checker {
  uv_loop_t *loop;
  struct metrics_registry *metrics;
  struct hc_target *buckets[HC_BUCKETS];
  size_t n_targets;
  uint64_t rng;
  int closing;
};

static uint32_t k_rand(struct hc_checker *k) {
  k->rng ^= k->rng << 13; /* xorshift: jitter only */
  k->rng ^= k->rng >> 7;
  k->rng ^= k->rng << 17;
  return (uint32_t)(k->rng >> 32);
}

static uint32_t jittered(struct hc_target *t) {
  uint32_t spread = t->interval_ms / 5; /* ±10 % */
  if (spread == 0) return t->interval_ms;
  return t->interval_ms - spread / 2 + k_rand(t->k) % (spread + 1);
}

static void t_freed(uv_handle_t *h) {
  struct hc_target *t = h->data;
  if (--t->handles > 0) return;
  utls_ctx_unref(t->tls);
  l7_cluster_release(t->from);
  free(t->request);
  free(t->key);
  free(t);
}

static void on_interval(uv_timer_t *timer);

static void on_tcp_closed(uv_handle_t *h) {
  struct hc_target *t = h->data;
  t->tcp_state = HC_TCP_NONE;
  if (t->removing) {
    t_freed(h);
    return;
  }
  t->handles--;
  uv_timer_start(&t->timer, on_interval, jittered(t), 0);
}

/* One check's verdict: rise/fall, the flag, logs and metrics. */
static void finish(struct hc_target *t, int ok, const char *why) {
  if (!t->in_flight) return;
  t->in_flight = 0;
  uv_timer_stop(&t->timer);
  tls_conn_free(t->tc);
  t->tc = NULL;
  if (t->tcp_state == HC_TCP_OPEN) {
    t->tcp_state = HC_TCP_CLOSING;
    uv_close((uv_handle_t *)&t->tcp, on_tcp_closed);
  }
  if (t->removing) return;
  struct metrics_counter *c = ok ? t->c_ok : t->c_failed;
  if (c) metrics_counter_inc(c);
  if (!ok)
    LOG_DEBUG("health_check_failed", "cluster=%s endpoint=%s reason=%s", log_q(t->cluster),
              t->endpoint, log_q(why));
  if (health_observe(&t->st, ok)) {
    atomic_store(&t->flag->down, t->st.up ? 0 : 1);
    LOG_INFO("health_check_state", "cluster=%s endpoint=%s state=%s reason=%s", log_q(t->cluster),
             t->endpoint, t->st.up ? "up" : "down", log_q(why));
    struct metrics_counter *tc = t->st.up ? t->c_up : t->c_down;
    if (tc) metrics_counter_inc(tc);
    if (t->g_up) metrics_gauge_set(t->g_up, t->st.up ? 1 : 0);
  }
}

struct t_wreq {
  uv_write_t req; /* first: the callback frees through it */
  char data[];
};

static void t_written(uv_write_t *req, int status) {
  (void)status; /* a failed write shows up as a read error or the timeout */
  free(req);
}

/* Writes a copy of data[0..len). */
static int t_write(struct hc_target *t, const void *data, size_t len) {
  struct t_wreq *w = malloc(sizeof(*w) + len);
  if (!w) return UV_ENOMEM;
  memcpy(w->data, data, len);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
  int rc = uv_write(&w->req, (uv_stream_t *)&t->tcp, &b, 1, t_written);
  if (rc != 0) free(w);
  return rc;
}

static int t_flush_tls(struct hc_target *t) {
  for (;;) {
    const uint8_t *p;
    size_t len;
    tls_conn_pending_output(t->tc, &p, &len);
    if (len == 0) return 0;
    int rc = t_write(t, p, len);
    tls_conn_consume_output(t->tc, len);
    if (rc != 0) return rc;
  }
}

/* Plaintext of the response: 1 when the check is decided. */
static int t_on_plain(struct hc_target *t, const uint8_t *p, size_t n) {
  size_t room = sizeof(t->resp) - t->resp_len;
  if (n > room) n = room;
  memcpy(t->resp + t->resp_len, p, n);
  t->resp_len += n;
  int status = health_parse_status(t->resp, t->resp_len);
  if (status == HEALTH_PARSE_ERR) {
    finish(t, 0, "bad response");
    return 1;
  }
  if (status > 0) {
    char why[48];
    int ok = health_status_expected(status, t->min_status, t->max_status);
    snprintf(why, sizeof(why), "status %d", status);
    finish(t, ok, why);
    return 1;
  }
  if (t->resp_len == sizeof(t->resp)) {
    finish(t, 0, "status line too long");
    return 1;
  }
  return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h, (void)suggested;
  static __thread char rbuf[16 * 1024];
  *buf = uv_buf_init(rbuf, sizeof(rbuf));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct hc_target *t = s->data;
  if (!t->in_flight || n == 0) return;
  if (n < 0) {
    finish(t, 0, n == UV_EOF ? "closed before a status line" : uv_strerror((int)n));
    return;
  }
  if (!t->tc) {
    t_on_plain(t, (const uint8_t *)buf->base, (size_t)n);
    return;
  }
  if (tls_conn_feed(t->tc, buf->base, (size_t)n) != 0) {
    finish(t, 0, "out of memory");
    return;
  }
  for (;;) {
    uint8_t plain[4096];
    int r = tls_conn_read(t->tc, plain, sizeof(plain));
    if (r > 0) {
      if (t_on_plain(t, plain, (size_t)r)) return;
      continue;
    }
    if (r == TLS_WANT_MORE) break;
    if (r == TLS_CLOSED) {
      finish(t, 0, "closed before a status line");
      return;
    }
    finish(t, 0, tls_conn_error(t->tc));
    return;
  }
  if (!t->sent && tls_conn_handshake_done(t->tc)) {
    t->sent = 1;
    if (tls_conn_write(t->tc, t->request, strlen(t->request)) < 0) {
      finish(t, 0, tls_conn_error(t->tc));
      return;
    }
  }
  if (t_flush_tls(t) != 0) finish(t, 0, "write failed");
}

static void on_connect(uv_connect_t *req, int status) {
  struct hc_target *t = req->data;
  if (!t->in_flight) return;
  if (status < 0) {
    finish(t, 0, uv_strerror(status));
    return;
  }
  if (uv_read_start((uv_stream_t *)&t->tcp, on_alloc, on_read) != 0) {
    finish(t, 0, "read failed");
    return;
  }
  if (!t->tls) {
    t->sent = 1;
    if (t_write(t, t->request, strlen(t->request)) != 0) finish(t, 0, "write failed");
    return;
  }
  if (utls_conn_new(t->tls, &t->tc) != 0) {
    finish(t, 0, "tls: out of memory");
    return;
  }
  uint8_t none[1];
  int r = tls_conn_read(t->tc, none, sizeof(none)); /* the ClientHello */
  if (r != TLS_WANT_MORE || t_flush_tls(t) != 0) finish(t, 0, tls_conn_error(t->tc));
}

static void on_timeout(uv_timer_t *timer) {
  finish(timer->data, 0, "timeout");
}

static void on_interval(uv_timer_t *timer) {
  struct hc_target *t = timer->data;
  if (t->removing || t->tcp_state != HC_TCP_NONE) return;
  t->resp_len = 0;
  t->sent = 0;
  if (uv_tcp_init(t->k->loop, &t->tcp) != 0) {
    uv_timer_start(&t->timer, on_interval, jittered(t), 0);
    return;
  }
  t->handles++;
  t->tcp.data = t;
  t->tcp_state = HC_TCP_OPEN;
  t->in_flight = 1;
  t->creq.data = t;
  uv_timer_start(&t->timer, on_timeout, t->timeout_ms, 0);
  int rc = uv_tcp_connect(&t->creq, &t->tcp, (const struct sockaddr *)&t->addr, on_connect);
  if (rc != 0) finish(t, 0, uv_strerror(rc));
}

/* ---- sync with the snapshot ----------------------------------------------- */

static struct hc_target **bucket_of(struct hc_checker *k, const char *key) {
  return &k->buckets[hash_str(key) % HC_BUCKETS];
}

static void t_metrics(struct hc_target *t) {
  struct metrics_registry *m = t->k->metrics;
  if (!m) return;
  char ec[300], labels[400];
  metrics_escape_label(t->cluster, ec, sizeof(ec));
  static const char checks[] = "edge_l7_health_checks_total";
  static const char checks_help[] = "Active health checks of upstream endpoints by result.";
  static const char trans[] = "edge_l7_health_check_transitions_total";
  static const char trans_help[] = "Endpoints taken out (down) or put back (up) by health checks.";
  snprintf(labels, sizeof(labels), "cluster=\"%s\",result=\"ok\"", ec);
  t->c_ok = metrics_counter(m, checks, checks_help, labels);
  snprintf(labels, sizeof(labels), "cluster=\"%s\",result=\"failed\"", ec);
  t->c_failed = metrics_counter(m, checks, checks_help, labels);
  snprintf(labels, sizeof(labels), "cluster=\"%s\",to=\"down\"", ec);
  t->c_down = metrics_counter(m, trans, trans_help, labels);
  snprintf(labels, sizeof(labels), "cluster=\"%s\",to=\"up\"", ec);
  t->c_up = metrics_counter(m, trans, trans_help, labels);
  char ee[200];
  metrics_escape_label(t->endpoint, ee, sizeof(ee));
  snprintf(t->up_labels, sizeof(t->up_labels), "cluster=\"%s\",endpoint=\"%s\"", ec, ee);
  t->g_up = metrics_gauge(m, "edge_l7_health_check_up",
                          "1 while the health checker keeps an endpoint in, 0 while it is out.",
                          t->up_labels);
  if (t->g_up) metrics_gauge_set(t->g_up, t->st.up ? 1 : 0);
}

/* (Re)applies a cluster's settings to t. 0 or -ENOMEM. */
static int t_configure(struct hc_target *t, const struct l7_cluster *c,
                       const struct l7_endpoint *e) {
  if (t->from == c) return 0; /* the same compiled cluster: nothing changed */
  const Edge__V1__HealthCheck *hc = c->health_check;
  char *req = NULL;
  const char *host = hc->host[0] ? hc->host : e->name;
  if (asprintf(&req,
               "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: edge-l7-health-check\r\n"
               "Connection: close\r\n\r\n",
               hc->path, host) < 0)
    return -ENOMEM;
  free(t->request);
  t->request = req;
  t->interval_ms = hc->interval_ms ? hc->interval_ms : HC_DEFAULT_INTERVAL_MS;
  t->timeout_ms = hc->timeout_ms ? hc->timeout_ms : HC_DEFAULT_TIMEOUT_MS;
  t->min_status = hc->expected_status_min;
  t->max_status = hc->expected_status_max;
  int rise = hc->rise ? (int)hc->rise : HC_DEFAULT_RISE;
  int fall = hc->fall ? (int)hc->fall : HC_DEFAULT_FALL;
  if (rise != t->rise || fall != t->fall) { /* new thresholds: the current verdict stays */
    int up = t->rise ? t->st.up : 1;
    health_init(&t->st, rise, fall);
    t->st.up = up;
    t->rise = rise;
    t->fall = fall;
  }
  if (c->tls != t->tls) {
    utls_ctx_unref(t->tls);
    t->tls = utls_ctx_ref(c->tls);
  }
  l7_cluster_release(t->from);
  t->from = l7_cluster_hold(c);
  memcpy(&t->addr, &e->addr, sizeof(t->addr));
  if (hc->port) { /* a separate health port on the endpoint's address */
    if (t->addr.ss_family == AF_INET)
      ((struct sockaddr_in *)&t->addr)->sin_port = htons((uint16_t)hc->port);
    else
      ((struct sockaddr_in6 *)&t->addr)->sin6_port = htons((uint16_t)hc->port);
  }
  return 0;
}

static struct hc_target *t_new(struct hc_checker *k, const char *key, const struct l7_cluster *c,
                               const struct l7_endpoint *e) {
  struct hc_target *t = calloc(1, sizeof(*t));
  if (!t) return NULL;
  t->k = k;
  t->key = strdup(key);
  t->flag = hc_flag_get(c->name, e->name);
  if (!t->key || !t->flag || t_configure(t, c, e) != 0) {
    utls_ctx_unref(t->tls);
    l7_cluster_release(t->from);
    free(t->request);
    free(t->key);
    free(t);
    return NULL;
  }
  snprintf(t->cluster, sizeof(t->cluster), "%s", c->name);
  snprintf(t->endpoint, sizeof(t->endpoint), "%s", e->name);
  atomic_store(&t->flag->down, 0);
  t_metrics(t);
  uv_timer_init(k->loop, &t->timer);
  t->timer.data = t;
  t->handles = 1;
  uv_timer_start(&t->timer, on_interval, k_rand(k) % (t->interval_ms / 2 + 1), 0);
  return t;
}

/* Stops t; it frees itself once its handles have closed. */
static void t_remove(struct hc_target *t) {
  t->removing = 1;
  atomic_store(&t->flag->down, 0); /* no checks: no verdict */
  if (t->g_up) metrics_remove(t->k->metrics, "edge_l7_health_check_up", t->up_labels);
  t->g_up = NULL;
  if (t->in_flight) {
    t->in_flight = 0;
    tls_conn_free(t->tc);
    t->tc = NULL;
    if (t->tcp_state == HC_TCP_OPEN) {
      t->tcp_state = HC_TCP_CLOSING;
      uv_close((uv_handle_t *)&t->tcp, on_tcp_closed);
    }
  }
  uv_close((uv_handle_t *)&t->timer, t_freed);
}

int hc_checker_new(uv_loop_t *loop, struct metrics_registry *metrics, struct hc_checker **out) {
  struct hc_checker *k = calloc(1, sizeof(*k));
  if (!k) return -ENOMEM;
  k->loop = loop;
  k->metrics = metrics;
  k->rng = (uint64_t)(uintptr_t)k ^ uv_hrtime() ^ 0x9e3779b97f4a7c15ull;
  if (!k->rng) k->rng = 1;
  *out = k;
  return 0;
}

static void sync_cluster(struct hc_checker *k, const struct l7_cluster *c) {
  for (size_t j = 0; j < c->n_endpoints; j++) {
    const struct l7_endpoint *e = &c->endpoints[j];
    char key[512];
    snprintf(key, sizeof(key), "%s\n%s", c->name, e->name);
    struct hc_target **b = bucket_of(k, key), *t = *b;
    while (t && (t->removing || strcmp(t->key, key) != 0)) t = t->next;
    if (t) {
      if (t_configure(t, c, e) != 0) LOG_ERROR("health_check_sync", "reason=%s", "out of memory");
    } else {
      t = t_new(k, key, c, e);
      if (!t) {
        LOG_ERROR("health_check_sync", "reason=%s", "out of memory");
        continue;
      }
      t->next = *b;
      *b = t;
      k->n_targets++;
    }
    t->seen = 1;
  }
}

void hc_checker_sync(struct hc_checker *k, struct l7_snapshot *snap) {
  if (!k || k->closing) return;
  size_t n = l7_snapshot_n_clusters(snap);
  for (size_t i = 0; i < n; i++) {
    const struct l7_cluster *c = l7_snapshot_cluster(snap, i);
    if (c->health_check) sync_cluster(k, c);
  }
  for (size_t b = 0; b < HC_BUCKETS; b++) {
    struct hc_target **pp = &k->buckets[b];
    while (*pp) {
      struct hc_target *t = *pp;
      if (t->seen) {
        t->seen = 0;
        pp = &t->next;
        continue;
      }
      *pp = t->next;
      k->n_targets--;
      t_remove(t);
    }
  }
}

size_t hc_checker_targets(const struct hc_checker *k, size_t *down) {
  size_t d = 0;
  for (size_t b = 0; k && b < HC_BUCKETS; b++)
    for (const struct hc_target *t = k->buckets[b]; t; t = t->next) d += t->st.up ? 0 : 1;
  if (down) *down = d;
  return k ? k->n_targets : 0;
}

void hc_checker_close(struct hc_checker *k) {
  if (!k) return;
  k->closing = 1;
  for (size_t b = 0; b < HC_BUCKETS; b++) {
    while (k->buckets[b]) {
      struct hc_target *t = k->buckets[b];
      k->buckets[b] = t->next;
      t_remove(t);
    }
  }
  free(k); /* targets do not point back to k once removing */
}
