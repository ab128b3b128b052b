/*
 * exchange — routing, policy, retries, timeouts and the upstream codec
 * choice for one request over protocol-neutral messages (see exchange.h).
 *
 * Invariants: an active exchange has at most one upstream attempt (ex->uc
 * or ex->h2); ex->outstanding says whether the endpoint's least-request
 * count holds this exchange; once the response head went to the client a
 * failure can only abort the client's stream (ds->abort). The downstream
 * codec learns about the end through ds->finished exactly once per
 * ex_begin (or not at all after ex_cancel).
 */
#include "l7proxy/exchange.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/headermod.h"
#include "common/http_status.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/redirect.h"
#include "common/rewrite.h"
#include "l7proxy/breaker.h"
#include "l7proxy/client_auth.h"
#include "common/router.h"
#include "common/weighted.h"
#include "l7proxy/h1_client.h"
#include "l7proxy/mirror.h"
#include "l7proxy/headers.h"
#include "l7proxy/route_policy.h"
#include "l7proxy/tls.h"
#include "l7proxy/upstream_h2.h"
#include "l7proxy/upstream_tls.h"
#include "l7proxy/worker_internal.h"

/* The route lookup reads the message's headers as router_header (same layout). */
_Static_assert(sizeof(struct msg_header) == sizeof(struct router_header) &&
                   offsetof(struct msg_header, value_len) ==
                       offsetof(struct router_header, value_len),
               "msg_header and router_header differ");
_Static_assert(sizeof(struct msg_header) == sizeof(struct headermod_header) &&
                   offsetof(struct msg_header, value) == offsetof(struct headermod_header, value),
               "msg_header and headermod_header differ");

static void copy_str(char *dst, size_t cap, const char *s, size_t n) {
  if (n >= cap) n = cap - 1;
  memcpy(dst, s, n);
  dst[n] = '\0';
}

void ex_init(struct exchange *ex, struct worker *w, const struct ex_downstream_ops *ds, void *ctx,
             const char *client, int https, int h2_down) {
  struct msg_arena arena = ex->arena; /* a recycled exchange keeps its memory */
  struct buf pending = ex->pending;
  struct rp_auth *auth = ex->rp_auth;
  memset(ex, 0, sizeof(*ex));
  ex->arena = arena;
  ex->pending = pending;
  ex->rp_auth = auth;
  msg_arena_reset(&ex->arena);
  buf_reset(&ex->pending);
  ex->w = w;
  ex->ds = ds;
  ex->ds_ctx = ctx;
  ex->client = client;
  ex->https = https;
  ex->h2_down = h2_down;
}

/* The attempt is over: the endpoint's least-request count and, for a
 * retry, the cluster's max_retries count let go of it. */
static void ex_drop_outstanding(struct exchange *ex) {
  if (ex->outstanding && ex->ep && ex->ep->lb.outstanding) ex->ep->lb.outstanding--;
  ex->outstanding = 0;
  if (ex->retry_counted && ex->cluster) breaker_release(ex->cluster->breaker, BREAKER_RETRIES);
  ex->retry_counted = 0;
}

/* Lets go of the upstream attempt (an h2 stream is reset, a connection
 * goes back to its pool when reusable). */
static void ex_detach(struct exchange *ex, int reusable) {
  if (ex->h2) {
    struct uh2_stream *s = ex->h2;
    ex->h2 = NULL;
    uh2_stream_cancel(s);
  }
  if (ex->uc) {
    struct uconn *uc = ex->uc;
    ex->uc = NULL;
    uc->ex = NULL;
    h1c_release(uc, reusable);
  }
}

void ex_free(struct exchange *ex) {
  if (ex->rp_wait) rp_cancel(ex);
  rp_free(ex);
  for (int i = 0; i < ex->n_mirrors; i++) mirror_finish(ex->mirrors[i], 0);
  ex->n_mirrors = 0;
  ex_drop_outstanding(ex);
  ex_detach(ex, 0);
  l7_snapshot_unref(ex->snap);
  ex->snap = NULL;
  msg_arena_free(&ex->arena);
  buf_free(&ex->pending);
}

static void ex_mirrors_done(struct exchange *ex, int complete);
static void ex_after_policy(struct exchange *ex);

/* ---- metrics and access log ------------------------------------------- */

/* OBS HOOK (end): the facts of the finished exchange for the access log
 * and the span (exchange_obs.h). */
static void ex_obs_end(struct exchange *ex) {
  const char *sni = ex->tls ? tls_conn_sni(ex->tls) : NULL;
  struct obs_facts f = {
      .client = ex->client,
      .client_port = ex->client_port,
      .h2 = ex->h2_down,
      .https = ex->https,
      .method = ex->method,
      .authority = ex->host,
      .path = ex->path,
      .status = ex->status,
      .bytes_out = ex->bytes_down,
      .route_host = ex->route ? ex->route->host_pattern : NULL,
      .route_path = ex->route ? ex->route->path : NULL,
      .cluster = ex->cluster ? ex->cluster->name : NULL,
      .upstream = ex->ep_name[0] ? ex->ep_name : NULL, /* ep may be pruned by now */
      .request_id = ex->request_id[0] ? ex->request_id : NULL,
      .tls_version = ex->tls ? tls_conn_version(ex->tls) : NULL,
      .sni = sni && sni[0] ? sni : NULL,
      .alpn = ex->tls ? tls_conn_alpn(ex->tls) : NULL,
  };
  obs_end(&ex->obs, &ex->w->cfg->obs, &f);
}

static void ex_record(struct exchange *ex) {
  struct worker *w = ex->w;
  if (ex->sub) return; /* an auth subrequest: its request is the one recorded */
  double secs = (double)(uv_hrtime() - ex->t_start) / 1e9;
  struct metrics_histogram *duration = w->duration; /* no route series: "_other" */
  if (w->cfg->metrics && ex->snap) {
    struct route_metrics *m = worker_route_metrics(w, ex->snap, ex->route, ex->cluster);
    int cls = ex->status / 100;
    if (m && cls >= 1 && cls <= 5 && m->by_class[cls]) metrics_counter_inc(m->by_class[cls]);
    if (m && m->duration) duration = m->duration;
  }
  if (duration) metrics_histogram_observe(duration, secs);
  struct metrics_counter *by_proto = ex->h2_down ? w->c_req_h2 : w->c_req_h1;
  if (by_proto) metrics_counter_inc(by_proto);
  if (obs_enabled(&w->cfg->obs)) ex_obs_end(ex); /* OBS HOOK: end */
}

/* Both directions are done: record, release, tell the downstream. */
static void ex_finish(struct exchange *ex) {
  if (!ex->active) return;
  if (ex->rp_wait) rp_cancel(ex);
  if (ex->n_mirrors) ex_mirrors_done(ex, ex->req_complete);
  ex_record(ex);
  ex->active = 0;
  if (!ex->h2_down) msg_arena_release(&ex->arena); /* an idle connection holds no arena */
  ex_drop_outstanding(ex);
  ex_detach(ex, 0);
  ex->ep = NULL;
  buf_reset(&ex->pending);
  l7_snapshot_unref(ex->snap);
  ex->snap = NULL;
  ex->ds->finished(ex);
}

static void ex_maybe_finish(struct exchange *ex) {
  if (ex->active && ex->req_complete && ex->resp_complete) ex_finish(ex);
}

/* ---- outlier detection ------------------------------------------------- */

/* Reports the outcome for the exchange's endpoint to the outlier detector. */
static void ex_report(struct exchange *ex, int failure) {
  if (!ex->ep || !ex->cluster || !ex->snap) return;
  struct worker *w = ex->w;
  const struct up_cluster_view *v = up_pools_view(&w->pools, ex->cluster);
  if (!v) return;
  for (size_t i = 0; i < v->n; i++) {
    if (v->eps[i] != ex->ep) continue;
    if (lb_report(v->lbs, v->n, i, failure, now_ms(w))) {
      LOG_WARN("upstream_ejected", "cluster=%s endpoint=%s ejections=%u for_ms=%llu",
               log_q(ex->cluster->name), ex->ep->name, ex->ep->lb.ejections,
               (unsigned long long)(ex->ep->lb.ejected_until - now_ms(w)));
      if (w->cfg->metrics) { /* rare: the registry lookup is fine here */
        char ec[300], labels[400];
        metrics_escape_label(ex->cluster->name, ec, sizeof(ec));
        snprintf(labels, sizeof(labels), "cluster=\"%s\"", ec);
        struct metrics_counter *c =
            metrics_counter(w->cfg->metrics, "edge_l7_upstream_ejections_total",
                            "Endpoints ejected by outlier detection.", labels);
        if (c) metrics_counter_inc(c);
      }
    }
    return;
  }
}

/* ---- local answers ------------------------------------------------------ */

/* Envoy's HTTP → gRPC status mapping, except 504 → DEADLINE_EXCEEDED. */
static int grpc_status_for(int http) {
  switch (http) {
    case 400:
      return 13; /* INTERNAL */
    case 401:
      return 16; /* UNAUTHENTICATED */
    case 403:
      return 7; /* PERMISSION_DENIED */
    case 404:
      return 12; /* UNIMPLEMENTED */
    case 413:
      return 8; /* RESOURCE_EXHAUSTED */
    case 504:
    case 408:
      return 4; /* DEADLINE_EXCEEDED */
    case 429:
    case 502:
    case 503:
      return 14; /* UNAVAILABLE */
    default:
      return 2; /* UNKNOWN */
  }
}

void ex_local(struct exchange *ex, int status, const char *location, const char *body) {
  struct msg_header loc = {"location", 8, location, location ? strlen(location) : 0};
  ex_local_with(ex, status, &loc, location ? 1 : 0, body);
}

void ex_local_header(struct exchange *ex, int status, const char *hname, const char *hvalue,
                     const char *body) {
  struct msg_header h = {hname, hname ? strlen(hname) : 0, hvalue, hvalue ? strlen(hvalue) : 0};
  ex_local_with(ex, status, &h, hname ? 1 : 0, body);
}

void ex_local_with(struct exchange *ex, int status, const struct msg_header *extra, size_t n_extra,
                   const char *body) {
  char dflt[96], msg[160], code[8];
  if (ex->rp_wait) rp_cancel(ex); /* a pending policy step is moot */
  if (!body) {
    snprintf(dflt, sizeof(dflt), "%d %s\n", status, http_status_reason(status));
    body = dflt;
  }
  struct msg_header merged[8 + 6];
  n_extra = rp_local_headers(ex, extra, n_extra > 8 ? 8 : n_extra, merged, 8 + 6);
  extra = merged;
  struct msg_header hs[4 + 8 + 6];
  struct msg_head h = {.status = status, .headers = hs, .end_stream = 0};
  size_t n = 0;
  hs[n++] = (struct msg_header){"server", 6, "edge", 4};
  if (ex->grpc && status >= 400) { /* "trailers-only": 200 with grpc-status, as Envoy does */
    snprintf(msg, sizeof(msg), "%s", body);
    size_t ml = strlen(msg);
    while (ml && (msg[ml - 1] == '\n' || msg[ml - 1] == '\r')) msg[--ml] = '\0';
    for (size_t i = 0; i < ml; i++) /* grpc-message is percent-encoded; keep it plain */
      if (msg[i] < 0x20 || msg[i] > 0x7e || msg[i] == '%') msg[i] = ' ';
    snprintf(code, sizeof(code), "%d", grpc_status_for(status));
    hs[n++] = (struct msg_header){"content-type", 12, "application/grpc", 16};
    hs[n++] = (struct msg_header){"grpc-status", 11, code, strlen(code)};
    hs[n++] = (struct msg_header){"grpc-message", 12, msg, ml};
    for (size_t i = 0; i < n_extra; i++) hs[n++] = extra[i];
    h.status = 200;
    h.content_length = 0;
    h.end_stream = 1;
    body = "";
  } else {
    hs[n++] = (struct msg_header){"content-type", 12, "text/plain", 10};
    for (size_t i = 0; i < n_extra; i++) hs[n++] = extra[i];
    h.content_length = (int64_t)strlen(body);
  }
  h.n_headers = n;
  ex->local = 1;
  ex->status = status; /* logs and metrics see what went wrong */
  ex_drop_outstanding(ex);
  ex_detach(ex, 0);
  ex->resp_started = 1;
  if (ex->ds->head(ex, &h) != 0) return;
  if (body[0]) ex->ds->data(ex, body, strlen(body));
  ex->bytes_down += strlen(body);
  ex->resp_complete = 1;
  ex->ds->end(ex, NULL, 0);
  ex_maybe_finish(ex);
}

/* ---- the upstream attempt ---------------------------------------------- */

static int cluster_is_h2(const struct l7_cluster *c) {
  return c && (c->protocol == EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_H2C ||
               c->protocol == EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_GRPC);
}

uint32_t ex_response_timeout(const struct exchange *ex) {
  const struct l7_route *r = ex->route;
  uint32_t t = r && r->response_header_timeout_ms ? r->response_header_timeout_ms
                                                  : ex->w->cfg->limits->response_header_timeout_ms;
  /* Gateway API timeouts.backendRequest bounds one attempt */
  if (r && r->backend_request_timeout_ms && (t == 0 || r->backend_request_timeout_ms < t))
    t = r->backend_request_timeout_ms;
  return t;
}

uint32_t ex_idle_timeout(const struct exchange *ex) {
  return ex->w->cfg->limits->idle_timeout_ms;
}

/* The h2 stream's timer: the phase timeout, or the route deadline if sooner. */
static void x2_arm(struct exchange *ex, uint32_t ms) {
  uint64_t t = ms;
  ex->phase_ms = ms;
  if (ex->deadline) {
    uint64_t now = now_ms(ex->w);
    uint64_t left = ex->deadline > now ? ex->deadline - now : 1;
    if (t == 0 || left < t) t = left;
  }
  if (ex->h2) uh2_stream_set_timeout(ex->h2, (uint32_t)t);
}

static void x2_on_headers(void *ud, int status, const struct uh2_header *h, size_t n) {
  struct exchange *ex = ud;
  struct msg_head resp = {.status = status,
                          .headers = (const struct msg_header *)h,
                          .n_headers = n,
                          .content_length = -1};
  for (size_t i = 0; i < n; i++)
    if (h[i].name_len == 14 && memcmp(h[i].name, "content-length", 14) == 0 && !ex->grpc) {
      char tmp[24];
      copy_str(tmp, sizeof(tmp), h[i].value, h[i].value_len);
      char *end;
      unsigned long long v = strtoull(tmp, &end, 10);
      if (end != tmp && *end == '\0') resp.content_length = (int64_t)v;
    }
  x2_arm(ex, ex_idle_timeout(ex));
  ex_up_head(ex, &resp);
  ex_up_flush(ex);
}

static void x2_on_data(void *ud, const uint8_t *p, size_t n) {
  struct exchange *ex = ud;
  x2_arm(ex, ex->phase_ms); /* data flows: not idle */
  ex_up_data(ex, (const char *)p, n);
  ex_up_flush(ex);
  if (ex->active && ex->h2 && !ex->h2_paused && ex->ds->over_high(ex)) {
    ex->h2_paused = 1; /* resumed by ex_resume */
    uh2_stream_pause(ex->h2, 1);
  }
}

/* Trailers come just before the stream's on_close(0): copied into the
 * arena (the stream's buffer goes away) and sent as the response's end. */
static void x2_on_trailers(void *ud, const struct uh2_header *h, size_t n) {
  struct exchange *ex = ud;
  struct msg_header *t = msg_arena_alloc(&ex->arena, (n ? n : 1) * sizeof(*t));
  if (!t) return;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    char *name = msg_arena_strdup(&ex->arena, h[i].name, h[i].name_len);
    char *value = msg_arena_strdup(&ex->arena, h[i].value, h[i].value_len);
    if (!name || !value) break;
    t[k++] = (struct msg_header){name, h[i].name_len, value, h[i].value_len};
  }
  ex->trailers = t;
  ex->n_trailers = k;
}

static void x2_on_drain(void *ud) {
  ex_up_drained(ud);
}

static void x2_on_close(void *ud, int err) {
  struct exchange *ex = ud;
  ex->h2 = NULL; /* gone: ex_detach must not cancel it */
  if (err == 0) {
    ex_up_end(ex, ex->trailers, ex->n_trailers, 1);
    return;
  }
  LOG_DEBUG("upstream_h2_failed", "endpoint=%s error=%s", ex->ep ? ex->ep->name : "-",
            uh2_strerror(err));
  switch (err) {
    case UH2_E_CONNECT:
      ex_up_failed(ex, 502, "upstream connect failed", 1, 1);
      break;
    case UH2_E_REFUSED: /* not processed: safe to try elsewhere */
      ex_up_failed(ex, 503, "upstream refused the stream", 1, 0);
      break;
    case UH2_E_TIMEOUT: /* mid-response it may be a client that stopped reading */
      ex_up_failed(ex, 504, "upstream response timeout", 0, !ex->resp_started);
      break;
    default:
      ex_up_failed(ex, 502, "upstream stream failed", 0, 1);
      break;
  }
}

static const struct uh2_stream_cb x2_callbacks = {x2_on_headers, x2_on_data, x2_on_trailers,
                                                  x2_on_drain, x2_on_close};

/* Opens the exchange's stream to ep: the message's head becomes HTTP/2
 * headers directly (pseudo-headers first). 0, or negative (nothing started). */
static int ex_start_h2(struct exchange *ex, struct up_endpoint *ep) {
  struct worker *w = ex->w;
  if (!w->h2pool) {
    struct uh2_pool_config cfg = {.idle_timeout_ms = ex->cluster->idle_timeout_ms};
    if (uh2_pool_new(&w->loop, &cfg, &w->h2pool) != 0) return -ENOMEM;
  }
  const struct msg_head *u = &ex->up;
  size_t n = u->n_headers + 5;
  struct uh2_header *hv = msg_arena_alloc(&ex->arena, n * sizeof(*hv));
  if (!hv) return -ENOMEM;
  size_t k = 0;
  hv[k++] = (struct uh2_header){":method", 7, u->method_str, u->method_len};
  if (ex->cluster->tls)
    hv[k++] = (struct uh2_header){":scheme", 7, "https", 5};
  else
    hv[k++] = (struct uh2_header){":scheme", 7, "http", 4};
  if (u->authority_len)
    hv[k++] = (struct uh2_header){":authority", 10, u->authority, u->authority_len};
  hv[k++] = (struct uh2_header){":path", 5, u->target, u->target_len};
  int has_te = 0;
  for (size_t i = 0; i < u->n_headers; i++) {
    const struct msg_header *h = &u->headers[i];
    if (h->name_len == 7 && memcmp(h->name, "upgrade", 7) == 0) continue; /* not in HTTP/2 */
    has_te |= h->name_len == 2 && memcmp(h->name, "te", 2) == 0;
    hv[k++] = (struct uh2_header){h->name, h->name_len, h->value, h->value_len};
  }
  if (ex->cluster->protocol == EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_GRPC && !has_te)
    hv[k++] = (struct uh2_header){"te", 2, "trailers", 8};
  const struct l7_cluster *c = ex->cluster;
  char key[sizeof(ep->cluster) + sizeof(ep->name) + 24];
  /* one TLS configuration per key: a changed one gets new connections */
  snprintf(key, sizeof(key), "%s\n%s\n%llu", ep->cluster, ep->name,
           (unsigned long long)utls_ctx_id(c->tls));
  struct uh2_target t = {.key = key,
                         .addr = (const struct sockaddr *)&ep->addr,
                         .addrlen = ep->addrlen,
                         .connect_timeout_ms = c->connect_timeout_ms,
                         .idle_timeout_ms = c->idle_timeout_ms,
                         .tls = c->tls,
                         .brk = c->breaker,
                         .max_connections = c->max_connections,
                         .max_pending = c->max_pending_requests};
  int end_stream = ex->req_complete && ex->pending.len == 0;
  int rc = uh2_stream_open(w->h2pool, &t, hv, k, end_stream || ex->up.end_stream, &x2_callbacks, ex,
                           &ex->h2);
  if (rc != 0) {
    ex->h2 = NULL;
    return rc;
  }
  if (ex->pending.len) { /* body that arrived before the stream opened */
    uh2_stream_write(ex->h2, ex->pending.data, ex->pending.len);
    ex->body_sent = 1;
    buf_reset(&ex->pending);
    if (ex->req_complete)
      uh2_stream_end(ex->h2);
    else if (uh2_stream_buffered(ex->h2) <= HIGH_WATER) /* the client may have been stopped */
      ex_up_drained(ex);
  }
  ex->h2_paused = 0;
  if (ex->req_complete) x2_arm(ex, ex_response_timeout(ex));
  return 0;
}

static void ex_start_upstream(struct exchange *ex);

/* A circuit breaker of the cluster refused: 503 naming the limit, and the
 * overflow counted. */
static void ex_overflow(struct exchange *ex, enum breaker_limit l) {
  struct worker *w = ex->w;
  const char *what = breaker_limit_name(l);
  LOG_DEBUG("circuit_breaker_open", "cluster=%s limit=%s", log_q(ex->cluster->name), what);
  if (w->cfg->metrics) { /* under overload only: the registry lookup is fine here */
    char ec[300], labels[400];
    metrics_escape_label(ex->cluster->name, ec, sizeof(ec));
    snprintf(labels, sizeof(labels), "cluster=\"%s\",limit=\"%s\"", ec, what);
    struct metrics_counter *c = metrics_counter(
        w->cfg->metrics, "edge_l7_circuit_breaker_overflows_total",
        "Requests answered 503 because a cluster's circuit breaker was full.", labels);
    if (c) metrics_counter_inc(c);
  }
  ex_local_header(ex, 503, "x-edge-circuit-breaker", what, NULL);
}

/* The upstream attempt failed before any response: retry or answer. */
void ex_up_failed(struct exchange *ex, int status, const char *why, int retryable, int charge) {
  if (!ex->active) return;
  struct uconn *uc = ex->uc;
  int reused_early = uc && uc->reused && !uc->got_bytes;
  if (charge) ex_report(ex, 1);
  ex_drop_outstanding(ex);
  ex_detach(ex, 0);
  if (ex->resp_started) {
    ex->ds->abort(ex);
    ex_finish(ex);
    return;
  }
  int can_retry = retryable && ex->idempotent && !ex->body_sent;
  if (can_retry && (reused_early || ex->retries_left > 0)) {
    if (!reused_early) {
      const struct l7_cluster *c = ex->cluster;
      if (c->breaker && !breaker_acquire(c->breaker, BREAKER_RETRIES, c->max_retries)) {
        ex_overflow(ex, BREAKER_RETRIES);
        return;
      }
      ex->retry_counted = c->breaker != NULL;
      ex->retries_left--;
    } else if (ex->ep) {
      /* a stale pooled connection: the same endpoint may be tried again */
      const struct up_cluster_view *v = up_pools_view(&ex->w->pools, ex->cluster);
      for (size_t i = 0; v && i < v->n && i < 64; i++)
        if (v->eps[i] == ex->ep) ex->avoid &= ~(1ull << i);
    }
    if (obs_enabled(&ex->w->cfg->obs)) /* OBS HOOK: retry (span event) */
      obs_retry(&ex->obs, ex->ep ? ex->ep->name : NULL, why);
    ex_start_upstream(ex);
    return;
  }
  LOG_DEBUG("upstream_failed", "status=%d reason=%s endpoint=%s", status, log_q(why),
            ex->ep ? ex->ep->name : "-");
  ex_local(ex, status, NULL, NULL);
}

/* Picks an endpoint and starts the attempt (a stream or a connection). */
static void ex_start_upstream(struct exchange *ex) {
  struct worker *w = ex->w;
  const struct up_cluster_view *v = up_pools_view(&w->pools, ex->cluster);
  if (!v || v->n == 0) {
    ex_local(ex, 503, NULL, NULL);
    return;
  }
  if (ex->cluster->tls_error[0]) { /* its TLS configuration was refused (logged at build) */
    ex_local(ex, 502, NULL, "upstream tls configuration refused\n");
    return;
  }
  for (;;) {
    const struct l7_cluster *pc = ex->cluster;
    int i =
        pc && (pc->affinity || pc->chash) ? rp_pick(ex, v) : -1; /* cookie, hash, else balance */
    if (i < 0)
      i = lb_pick(v->policy, (const struct lb_state *const *)v->lbs, v->n, ex->avoid, v->rr_cursor,
                  worker_rand(), now_ms(w));
    if (i < 0) {
      ex_local(ex, ex->tries ? 502 : 503, NULL, NULL);
      return;
    }
    struct up_endpoint *ep = v->eps[i];
    if (i < 64) ex->avoid |= 1ull << i;
    ex->ep = ep;
    snprintf(ex->ep_name, sizeof(ex->ep_name), "%s", ep->name);
    ex->tries++;
    ep->lb.outstanding++;
    if (obs_enabled(&w->cfg->obs) && up_link_empty(&ep->idle) && !cluster_is_h2(ex->cluster))
      obs_upstream_connecting(&ex->obs); /* OBS HOOK: a new connection */
    ex->outstanding = 1;
    int rc = cluster_is_h2(ex->cluster) ? ex_start_h2(ex, ep) : h1c_start(ex, ep);
    if (rc == 0) return;
    ex_drop_outstanding(ex);
    int limit = BREAKER_LIMIT_OF(rc);
    if (limit >= 0) { /* a cluster-wide limit: another endpoint would not help */
      ex_overflow(ex, (enum breaker_limit)limit);
      return;
    }
    ex_report(ex, 1);
    if (ex->tries > 64) {
      ex_local(ex, 502, NULL, NULL);
      return;
    }
  }
}

/* ---- the request ------------------------------------------------------- */

static int is_idempotent(int method) {
  return method == MSG_GET || method == MSG_HEAD || method == MSG_OPTIONS || method == MSG_PUT ||
         method == MSG_DELETE || method == MSG_TRACE;
}

/*
 * Whether the Upgrade the client asks for may reach the upstream: its first
 * protocol (name before any '/') must be one the route allows (websocket
 * when it lists none), and never h2c, which the proxy either serves itself
 * or declined (HTTPS, --no-h2c, a body, no HTTP2-Settings).
 */
static int upgrade_allowed(const struct l7_route *route, const struct msg_head *m) {
  const struct msg_header *u = msg_find(m, "upgrade");
  if (!u) return 0;
  const char *v = u->value;
  size_t vl = u->value_len;
  while (vl && (*v == ' ' || *v == '\t')) v++, vl--;
  size_t n = 0;
  while (n < vl && v[n] != ',' && v[n] != '/' && v[n] != ' ' && v[n] != '\t') n++;
  if (n == 0 || headers_name_is(v, n, "h2c")) return 0;
  if (!route || route->n_upgrade_protocols == 0) return headers_name_is(v, n, "websocket");
  for (size_t i = 0; i < route->n_upgrade_protocols; i++) {
    const char *p = route->upgrade_protocols[i];
    if (p && strcasecmp(p, "h2c") != 0 && headers_name_is(v, n, p)) return 1;
  }
  return 0;
}

/* Step: a route redirect or the http → https redirect (common/redirect,
 * the Location explain shows). 1 when answered. */
static int step_redirect(struct exchange *ex, const struct msg_head *m) {
  const struct l7_route *route = ex->route;
  if (!route) return 0;
  int to_https = route->host_has_tls && !route->disable_ssl_redirect && !ex->https;
  const Edge__V1__Redirect *r = to_https ? NULL : route->redirect;
  if (!to_https && !r) return 0;
  struct redirect_rule rule = {0};
  if (r) rule = (struct redirect_rule){r->scheme, r->host, r->port, r->path, r->status};
  if (r && r->path_prefix[0]) { /* Gateway API ReplacePrefixMatch: the matched prefix replaced */
    size_t cap = m->target_len + strlen(r->path_prefix) + 2;
    char *buf = msg_arena_alloc(&ex->arena, cap);
    int n = buf ? rewrite_target(route->path, route->path_type, r->path_prefix, m->target,
                                 m->target_len, buf, cap - 1)
                : -1;
    if (n < 0) {
      ex_local(ex, 500, NULL, "bad redirect\n");
      return 1;
    }
    if (n == 0) n = (int)snprintf(buf, cap, "%.*s", (int)m->target_len, m->target);
    buf[n] = '\0';
    rule.path = buf;
  }
  struct redirect_request rq = {
      ex->https ? "https" : "http", m->authority, m->authority_len, m->target, m->target_len,
      ex->w->cfg->https_port};
  char loc[2048];
  int status = redirect_location(r ? &rule : NULL, to_https, &rq, loc, sizeof(loc));
  if (status < 0)
    ex_local(ex, 500, NULL, "bad redirect\n");
  else
    ex_local(ex, status, loc, NULL);
  return 1;
}

/* Step: the host's client certificate policy (client_auth.h) against the
 * connection's. 1 when answered (400, 421). */
static int step_client_auth(struct exchange *ex) {
  const struct cauth_policy *want = ex->route ? ex->route->client_auth : NULL;
  if (!want) return 0;
  const struct cauth_policy *conn = tls_conn_client_policy(ex->tls);
  const struct cauth_peer *peer = NULL;
  if (ex->tls && cauth_policy_same(want, conn)) {
    peer = tls_conn_client_peer(ex->tls, cauth_policy_pass_chain(want));
    if (!peer) {
      ex_local(ex, 500, NULL, NULL);
      return 1;
    }
  }
  enum cauth_verdict v = cauth_decide(want, conn, ex->tls != NULL, peer && peer->has_cert,
                                      peer && peer->verify_result == 0);
  if (v == CAUTH_PASS) {
    ex->client_peer = peer;
    return 0;
  }
  struct worker *w = ex->w;
  if (w->cfg->metrics) { /* failures only: the registry lookup is fine here */
    char labels[64];
    snprintf(labels, sizeof(labels), "reason=\"%s\"", cauth_verdict_name(v));
    struct metrics_counter *c =
        metrics_counter(w->cfg->metrics, "edge_l7_client_cert_failures_total",
                        "Requests refused by a host's client certificate policy.", labels);
    if (c) metrics_counter_inc(c);
  }
  char body[256];
  int status = 400;
  if (v == CAUTH_MISSING) {
    snprintf(body, sizeof(body), "400 client certificate required\n");
  } else if (v == CAUTH_INVALID) {
    snprintf(body, sizeof(body), "400 client certificate verification failed: %s\n",
             peer->verify_error);
  } else {
    status = 421; /* RFC 9110 §15.5.20: retry on a connection made for this host */
    snprintf(body, sizeof(body),
             "421 this connection was not made for this host's client certificate policy\n");
  }
  LOG_DEBUG("client_cert_refused", "client=%s host=%s reason=%s", ex->client, log_q(ex->host),
            cauth_verdict_name(v));
  ex_local(ex, status, NULL, body);
  return 1;
}

/* The client certificate that passed, for the upstream (x-client-cert-*);
 * whatever the client sent under these names was dropped by headers.c. */
static int add_client_cert_headers(struct exchange *ex) {
  const struct cauth_peer *p = ex->client_peer;
  size_t n = ex->up.n_headers;
  struct msg_header *arr = msg_arena_alloc(&ex->arena, (n + 5) * sizeof(*arr));
  if (!arr) return -1;
  memcpy(arr, ex->up.headers, n * sizeof(*arr));
  int has = p && p->has_cert;
  const char *verify = has ? "SUCCESS" : "NONE";
  arr[n++] = (struct msg_header){"x-client-cert-verify", 20, verify, strlen(verify)};
  if (has) {
    arr[n++] = (struct msg_header){"x-client-cert-subject", 21, p->subject, strlen(p->subject)};
    arr[n++] = (struct msg_header){"x-client-cert-issuer", 20, p->issuer, strlen(p->issuer)};
    arr[n++] = (struct msg_header){"x-client-cert-fingerprint", 25, p->fingerprint,
                                   strlen(p->fingerprint)};
    if (p->chain && cauth_policy_pass_chain(ex->route->client_auth))
      arr[n++] = (struct msg_header){"x-client-cert-chain", 19, p->chain, strlen(p->chain)};
  }
  ex->up.headers = arr;
  ex->up.n_headers = n;
  return 0;
}
static int ex_modify_headers(struct exchange *ex, const struct headermod *mod,
                             const struct msg_header **headers, size_t *n);

/* Step: the upstream request head (rewrite + header policy). 0 or a status. */
static int step_upstream_head(struct exchange *ex, const struct msg_head *m) {
  const char *target = m->target;
  size_t target_len = m->target_len;
  const struct l7_route *route = ex->route;
  if (route && route->rewrite_path[0]) { /* Gateway API ReplaceFullPath: the query is kept */
    size_t pl = strlen(route->rewrite_path), ql = m->target_len - m->path_len;
    char *buf = msg_arena_alloc(&ex->arena, pl + ql + 1);
    if (!buf) return 500;
    memcpy(buf, route->rewrite_path, pl);
    memcpy(buf + pl, m->target + m->path_len, ql);
    target = buf;
    target_len = pl + ql;
  } else if (route) {
    char *buf = msg_arena_alloc(&ex->arena, m->target_len + 1024);
    if (!buf) return 500;
    int n = rewrite_target(route->path, route->path_type, route->rewrite_prefix, m->target,
                           m->target_len, buf, m->target_len + 1024);
    if (n < 0) return 500;
    if (n > 0) {
      target = buf;
      target_len = (size_t)n;
    }
  }
  struct headers_request hr = {
      .in = m,
      .target = target,
      .target_len = target_len,
      .client_addr = ex->client,
      .proto = ex->https ? "https" : "http",
      .upgrade = ex->upgrade,
      .traceparent = ex->obs.traced ? ex->obs.traceparent : NULL,
      .drop_tracestate = ex->obs.drop_tracestate,
  };
  if (headers_upstream_request(&hr, &ex->up, &ex->arena, ex->request_id) != 0) return 500;
  if (route && route->request_headers &&
      ex_modify_headers(ex, route->request_headers, &ex->up.headers, &ex->up.n_headers) != 0)
    return 500;
  if (route && route->rewrite_host[0]) { /* Gateway API URLRewrite hostname */
    ex->up.authority = route->rewrite_host;
    ex->up.authority_len = strlen(route->rewrite_host);
  }
  return 0;
}

/* A header modifier (common/headermod) over headers[0..*n), into the arena. 0 or -1. */
static int ex_modify_headers(struct exchange *ex, const struct headermod *mod,
                             const struct msg_header **headers, size_t *n) {
  size_t cap = *n + mod->n_set + mod->n_add;
  struct msg_header *out = msg_arena_alloc(&ex->arena, (cap ? cap : 1) * sizeof(*out));
  if (!out) return -1;
  long k = headermod_apply(mod, (const struct headermod_header *)*headers, *n,
                           (struct headermod_header *)out, cap);
  if (k < 0) return -1;
  *headers = out;
  *n = (size_t)k;
  return 0;
}

/* Step: the cluster of a weighted route (Gateway API backendRefs, Ingress canaries): one per
 * request, a pure function of its X-Request-Id (kept or made by the header policy), so a retry
 * or an explain with the same id lands on the same backend. NULL: a backend that did not
 * resolve, or every weight 0 — the request gets 500 (a gRPC call UNAVAILABLE). */
static const struct l7_cluster *step_weighted(struct exchange *ex) {
  const struct l7_route *r = ex->route;
  uint32_t w[64];
  if (r->n_weighted > 64) return NULL;
  for (size_t i = 0; i < r->n_weighted; i++) w[i] = r->weighted[i].weight;
  long i = weighted_pick(w, r->n_weighted, weighted_key(ex->request_id, strlen(ex->request_id)));
  return i < 0 ? NULL : l7_snapshot_weighted_cluster(ex->snap, &r->weighted[i]);
}

/* Step: fire-and-forget copies of the request (Gateway API RequestMirror). Sampled per mirror;
 * never delays or fails the request itself. */
static void step_mirrors(struct exchange *ex) {
  const struct l7_route *r = ex->route;
  for (size_t i = 0; r && i < r->n_mirrors && ex->n_mirrors < EX_MAX_MIRRORS; i++) {
    const struct l7_mirror *mi = &r->mirrors[i];
    if (mi->per_million) {
      char salt[80];
      int n = snprintf(salt, sizeof(salt), "%s/mirror/%zu", ex->request_id, i);
      if (weighted_key(salt, (size_t)n) % 1000000u >= mi->per_million) continue;
    }
    struct mirror *mr = mirror_start(ex->w, l7_snapshot_mirror_cluster(ex->snap, mi), &ex->up);
    if (mr) ex->mirrors[ex->n_mirrors++] = mr;
  }
}

static void ex_mirrors_body(struct exchange *ex, const char *p, size_t n) {
  for (int i = 0; i < ex->n_mirrors; i++) mirror_body(ex->mirrors[i], p, n);
}

/* The request ended (complete: the whole body was seen) or the exchange let go of it. */
static void ex_mirrors_done(struct exchange *ex, int complete) {
  for (int i = 0; i < ex->n_mirrors; i++) mirror_finish(ex->mirrors[i], complete);
  ex->n_mirrors = 0;
}

void ex_begin(struct exchange *ex, const struct msg_head *m) {
  struct worker *w = ex->w;
  /* fresh state; the buffers' memory is kept */
  struct msg_arena arena = ex->arena;
  struct buf pending = ex->pending;
  const struct ex_downstream_ops *ds = ex->ds;
  void *ctx = ex->ds_ctx;
  const char *client = ex->client;
  uint16_t client_port = ex->client_port;
  struct tls_conn *tls = ex->tls;
  int https = ex->https, h2_down = ex->h2_down;
  struct rp_auth *auth = ex->rp_auth;
  if (ex->rp_wait) rp_cancel(ex);
  l7_snapshot_unref(ex->snap);
  memset(ex, 0, sizeof(*ex));
  ex->rp_auth = auth;
  ex->req = *m;
  ex->affinity = -1;
  ex->w = w, ex->ds = ds, ex->ds_ctx = ctx, ex->client = client, ex->https = https;
  ex->h2_down = h2_down;
  ex->client_port = client_port;
  ex->tls = tls;
  ex->arena = arena;
  msg_arena_reset(&ex->arena);
  ex->pending = pending;
  buf_reset(&ex->pending);
  ex->active = 1;
  ex->t_start = uv_hrtime();
  if (obs_enabled(&w->cfg->obs)) /* OBS HOOK: start (context, sampling, span id) */
    obs_start(&ex->obs, &w->cfg->obs, m->headers, m->n_headers);
  copy_str(ex->method, sizeof(ex->method), m->method_str, m->method_len);
  copy_str(ex->host, sizeof(ex->host), m->authority, m->authority_len);
  copy_str(ex->path, sizeof(ex->path), m->target, m->path_len);
  ex->head_request = m->method == MSG_HEAD;
  ex->idempotent = is_idempotent(m->method);
  ex->grpc = (m->flags & MSG_F_GRPC) != 0;
  ex->req_complete = m->end_stream;

  struct l7_snapshot *snap = worker_snapshot(w);
  if (!snap) {
    ex_local(ex, 503, NULL, "no configuration yet\n");
    return;
  }
  ex->snap = l7_snapshot_ref(snap);
  /* step: route (host, path, and the Gateway API's method, header, query and listener
   * conditions: msg_header has router_header's layout) */
  struct router_request rq = {m->authority,
                              m->authority_len,
                              m->target,
                              m->target_len,
                              m->method_str,
                              m->method_len,
                              (const struct router_header *)m->headers,
                              m->n_headers,
                              ex->https ? ROUTER_LISTENER_HTTPS : ROUTER_LISTENER_HTTP};
  const struct l7_route *route = l7_snapshot_match_request(snap, &rq);
  ex->route = route;
  ex->upgrade = (m->flags & MSG_F_UPGRADE) && upgrade_allowed(route, m);
  /* step: redirects */
  if (step_redirect(ex, m)) return;
  /* step: client certificates */
  if (route && route->client_auth && step_client_auth(ex)) return;
  if (route && route->direct_status) { /* a Gateway API rule without a valid backend */
    ex_local(ex, (int)route->direct_status, NULL, NULL);
    return;
  }
  const struct l7_cluster *cluster =
      route ? l7_snapshot_route_cluster(snap, route) : l7_snapshot_default_cluster(snap);
  ex->cluster = cluster;
  if (!route && !cluster) {
    ex_local(ex, 404, NULL, "no route for this host and path\n");
    return;
  }
  if (!cluster && !(route && route->n_weighted)) {
    ex_local(ex, 503, NULL, "route has no backend\n");
    return;
  }
  /* step: limits */
  ex->body_limit =
      route && route->max_body_bytes ? route->max_body_bytes : w->cfg->limits->max_body_bytes;
  if (ex->body_limit && m->content_length >= 0 && (uint64_t)m->content_length > ex->body_limit) {
    ex_local(ex, 413, NULL, NULL);
    return;
  }
  ex->retries_left = (int)(route && route->retries ? route->retries : w->cfg->limits->retries);
  if (route && route->request_timeout_ms) ex->deadline = now_ms(w) + route->request_timeout_ms;
  /* step: the upstream request (rewrite, header policy) */
  int st = step_upstream_head(ex, m);
  if (st) {
    ex_local(ex, st, NULL, NULL);
    return;
  }
  if (route && route->client_auth && add_client_cert_headers(ex) != 0) {
    ex_local(ex, 500, NULL, NULL);
    return;
  }
  if (route && route->n_weighted) {
    ex->cluster = step_weighted(ex);
    if (!ex->cluster) { /* a gRPC call gets UNAVAILABLE (GRPCRoute backendRefs), HTTP 500 */
      ex_local(ex, ex->grpc ? 503 : 500, NULL, "no valid backend for this request\n");
      return;
    }
  }
  ex->expect_continue = (m->flags & MSG_F_EXPECT_CONTINUE) != 0;
  /* steps: the route's policies (CORS preflight, rate limit, auth), which
   * may answer or park the exchange until an asynchronous check is done;
   * mirrors and the upstream come after them (ex_after_policy) */
  if (route && route->has_request_policy && rp_request(ex) == RP_STOP) return;
  ex_after_policy(ex);
}

/* What follows the policy steps: mirrors (copies of the upstream request,
 * never waited for; only of requests the policies let through), then the
 * upstream codec by the cluster's protocol. */
static void ex_after_policy(struct exchange *ex) {
  const struct l7_route *route = ex->route;
  if (route && route->n_mirrors) {
    step_mirrors(ex);
    if (ex->req_complete) ex_mirrors_done(ex, 1);
  }
  ex_start_upstream(ex);
}

void ex_policy_done(struct exchange *ex) {
  if (ex->active && !ex->local) ex_after_policy(ex);
}

void ex_begin_sub(struct exchange *ex, struct l7_snapshot *snap, const struct l7_cluster *c,
                  const struct msg_head *up, uint32_t timeout_ms) {
  struct worker *w = ex->w;
  if (ex->rp_wait) rp_cancel(ex);
  l7_snapshot_unref(ex->snap);
  ex->snap = l7_snapshot_ref(snap);
  ex->route = NULL;
  ex->cluster = c;
  ex->ep = NULL;
  ex->uc = NULL;
  ex->h2 = NULL;
  ex->avoid = 0;
  ex->tries = ex->outstanding = ex->body_sent = ex->status = 0;
  ex->local = ex->resp_started = ex->resp_complete = ex->resp_keep_alive = ex->h2_paused = 0;
  ex->grpc = ex->head_request = ex->upgrade = ex->expect_continue = 0;
  ex->affinity = -1;
  ex->hashed = 0;
  ex->sub = 1;
  ex->active = 1;
  ex->idempotent = 1;
  ex->req_complete = 1;
  ex->t_start = uv_hrtime();
  ex->up = *up;
  ex->retries_left = (int)w->cfg->limits->retries;
  ex->deadline = now_ms(w) + timeout_ms;
  buf_reset(&ex->pending);
  ex_start_upstream(ex);
}

int ex_body(struct exchange *ex, const char *p, size_t n) {
  ex->obs.bytes_in += n;
  if (ex->n_mirrors) ex_mirrors_body(ex, p, n);
  /* answered (locally, or by an upstream that did not wait): dropped */
  if (!ex->active || ex->local || ex->resp_complete || n == 0) return 0;
  if (ex->h2) {
    ex->body_sent = 1;
    if (uh2_stream_write(ex->h2, p, n) != 0) return -1;
    return uh2_stream_buffered(ex->h2) > HIGH_WATER;
  }
  if (ex->uc && ex->uc->state == U_ACTIVE) {
    ex->body_sent = 1;
    return h1c_body(ex->uc, p, n);
  }
  /* no connection yet: kept until there is one (a retry resends it) */
  if (buf_append(&ex->pending, p, n) != 0) return -1;
  return ex->pending.len > HIGH_WATER;
}

void ex_body_end(struct exchange *ex, const struct msg_header *trailers, size_t n) {
  (void)trailers, (void)n;
  if (!ex->active) return;
  ex->req_complete = 1;
  if (ex->n_mirrors) ex_mirrors_done(ex, 1);
  if (!ex->local) {
    /* the upstream is timed from the end of the request on: the time a
     * client takes to send its body is never the upstream's fault */
    if (ex->h2) {
      uh2_stream_end(ex->h2);
      if (!ex->resp_started) x2_arm(ex, ex_response_timeout(ex));
    } else if (ex->uc && ex->uc->state == U_ACTIVE) {
      h1c_end(ex->uc);
      if (!ex->resp_started) h1c_arm(ex->uc, ex_response_timeout(ex));
    }
  }
  ex_maybe_finish(ex);
}

void ex_body_timeout(struct exchange *ex) {
  if (!ex->active || ex->req_complete) return;
  LOG_DEBUG("body_timeout", "client=%s local=%d", ex->client, ex->local);
  if (ex->resp_started && !ex->local) {
    ex_drop_outstanding(ex);
    ex_detach(ex, 0);
    ex->ds->abort(ex);
    ex->req_complete = 1;
    ex_finish(ex);
    return;
  }
  if (!ex->local) ex_local(ex, 408, NULL, NULL); /* detaches without a report */
  ex->req_complete = 1;
  ex_maybe_finish(ex);
}

void ex_abandon_body(struct exchange *ex) {
  if (ex->active && !ex->req_complete) {
    ex->req_complete = 1;
    ex_maybe_finish(ex);
  }
}

void ex_error(struct exchange *ex, int status) {
  if (ex->active && ex->resp_started && !ex->local) {
    ex_drop_outstanding(ex);
    ex_detach(ex, 0);
    ex->ds->abort(ex);
    ex->req_complete = ex->resp_complete = 1;
    ex_finish(ex);
    return;
  }
  if (ex->active && ex->local) { /* already answered: only the rest of the body is bad */
    ex_abandon_body(ex);
    return;
  }
  if (!ex->active) {
    l7_snapshot_unref(ex->snap);
    ex->snap = NULL;
    ex->route = NULL;
    ex->cluster = NULL;
    ex->ep = NULL;
    ex->grpc = ex->head_request = ex->upgrade = 0;
    ex->method[0] = ex->host[0] = ex->path[0] = ex->request_id[0] = ex->ep_name[0] = '\0';
    ex->bytes_down = 0;
    ex->resp_started = ex->resp_complete = 0;
    ex->active = 1;
    ex->t_start = uv_hrtime();
  }
  ex->req_complete = 1; /* nothing more is read */
  ex_local(ex, status, NULL, NULL);
}

void ex_tunnelled(struct exchange *ex) {
  ex->req_complete = ex->resp_complete = 1;
  ex_finish(ex);
}

void ex_cancel(struct exchange *ex) {
  if (ex->rp_wait) rp_cancel(ex);
  if (!ex->active) return;
  if (ex->n_mirrors) ex_mirrors_done(ex, 0);
  ex_drop_outstanding(ex);
  ex_detach(ex, 0);
  ex->active = 0;
  buf_reset(&ex->pending);
  l7_snapshot_unref(ex->snap);
  ex->snap = NULL;
}

void ex_resume(struct exchange *ex) {
  if (!ex->active) return;
  if (ex->h2 && ex->h2_paused) {
    ex->h2_paused = 0;
    uh2_stream_pause(ex->h2, 0);
  }
  if (ex->uc) h1c_resume(ex->uc);
}

/* ---- the response -------------------------------------------------------- */

int ex_up_head(struct exchange *ex, const struct msg_head *resp) {
  if (!ex->active) return -1;
  if (resp->status < 200 && resp->status != 101) return 0; /* interim: not forwarded */
  ex->status = resp->status;
  ex->resp_started = 1;
  if (obs_enabled(&ex->w->cfg->obs)) obs_response_head(&ex->obs); /* OBS HOOK: first byte */
  struct msg_head out;
  int upgrade = resp->status == 101 && ex->upgrade;
  if (headers_downstream_response(resp, upgrade, &out, &ex->arena) != 0) return -1;
  if (ex->route && (ex->route->cors || (ex->cluster && ex->cluster->affinity)) &&
      rp_response(ex, &out) != 0) /* CORS, affinity cookie */
    return -1;
  if (ex->route && ex->route->response_headers &&
      ex_modify_headers(ex, ex->route->response_headers, &out.headers, &out.n_headers) != 0)
    return -1;
  int bodyless =
      resp->status == 204 || resp->status == 304 || resp->status < 200 || ex->head_request;
  if (bodyless) out.end_stream = 1; /* never a body (RFC 9112 §6.3) */
  return ex->ds->head(ex, &out);
}

int ex_up_data(struct exchange *ex, const char *p, size_t n) {
  if (!ex->active || ex->head_request) return 0;
  ex->bytes_down += n;
  return ex->ds->data(ex, p, n);
}

void ex_up_end(struct exchange *ex, const struct msg_header *trailers, size_t n, int keep_alive) {
  if (!ex->active || ex->resp_complete) return;
  ex->resp_complete = 1;
  ex->resp_keep_alive = keep_alive;
  ex->ds->end(ex, trailers, n);
  if (!ex->active) return;
  ex_drop_outstanding(ex);
  ex_report(ex, ex->status >= 500);
  if (ex->uc) {
    struct uconn *uc = ex->uc;
    ex->uc = NULL;
    uc->ex = NULL;
    h1c_release(uc, keep_alive && ex->req_complete);
  }
  ex_maybe_finish(ex);
}

void ex_up_flush(struct exchange *ex) {
  if (ex->active) ex->ds->flush(ex);
}

void ex_up_drained(struct exchange *ex) {
  if (ex->active && ex->ds->resume_body) ex->ds->resume_body(ex);
}
