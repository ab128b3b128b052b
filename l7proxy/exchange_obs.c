/*
 * exchange_obs — per-exchange tracing and access-log bookkeeping. See
 * exchange_obs.h for the hook points and their order.
 *
 * Nothing here allocates: the span record is built on the stack and copied
 * into the exporter's queue, the log line is formatted into the access
 * log's thread-local buffer. Ids come from the worker thread's fast
 * generator (headers_rand64).
 */
#include "l7proxy/exchange_obs.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "l7proxy/access_log.h"
#include "l7proxy/trace_export.h"

static uint64_t clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void copy(char *dst, size_t cap, const char *s) {
  snprintf(dst, cap, "%s", s ? s : "");
}

/* Joins every tracestate field with ','; -1 when they do not fit. */
static int collect_tracestate(const struct h1_header *h, size_t n, char *out, size_t cap,
                              size_t *len) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (!headers_name_is(h[i].name, h[i].name_len, "tracestate")) continue;
    size_t need = h[i].value_len + (k ? 1 : 0);
    if (k + need >= cap) return -1;
    if (k) out[k++] = ',';
    memcpy(out + k, h[i].value, h[i].value_len);
    k += h[i].value_len;
  }
  out[k] = '\0';
  *len = k;
  return 0;
}

void obs_start(struct ex_obs *o, const struct obs_config *c, const struct h1_header *h, size_t n) {
  o->wall_ns = clock_ns(CLOCK_REALTIME);
  o->t0 = clock_ns(CLOCK_MONOTONIC);
  o->connect_us = o->first_byte_us = -1;
  const struct h1_header *tp = NULL;
  int n_tp = 0, has_ts = 0;
  for (size_t i = 0; i < n; i++) {
    if (h[i].name_len == 11 && headers_name_is(h[i].name, h[i].name_len, "traceparent")) {
      tp = &h[i];
      n_tp++;
    } else if (h[i].name_len == 10 && headers_name_is(h[i].name, h[i].name_len, "tracestate")) {
      has_ts = 1;
    }
  }
  struct trace_context in;
  /* two traceparent fields are as bad as a malformed one */
  int valid = n_tp == 1 && trace_parse_traceparent(tp->value, tp->value_len, &in) == 0;
  if (!c->tracer) {
    if (valid) {
      memcpy(o->trace_id, in.trace_id, 16);
      o->have_trace_id = 1;
    }
    return;
  }
  o->traced = o->have_trace_id = 1;
  if (valid) {
    memcpy(o->trace_id, in.trace_id, 16);
    memcpy(o->parent_id, in.span_id, 8);
    o->has_parent = 1;
    o->sampled = in.flags & TRACE_FLAG_SAMPLED;
    size_t len = 0;
    if (has_ts) {
      int ok = collect_tracestate(h, n, o->trace_state, sizeof(o->trace_state), &len) == 0 &&
               trace_tracestate_valid(o->trace_state, len);
      o->drop_tracestate = !ok;
      if (!ok) o->trace_state[0] = '\0';
    }
  } else {
    trace_fill_id(o->trace_id, 16, headers_rand64(), headers_rand64());
    o->sampled = trace_sample_ratio(o->trace_id, c->sample_ratio);
    o->drop_tracestate = has_ts; /* state without a valid parent is orphaned */
  }
  trace_fill_id(o->span_id, 8, headers_rand64(), 0);
  o->flags = o->sampled ? TRACE_FLAG_SAMPLED : 0;
  trace_format_traceparent(o->trace_id, o->span_id, o->flags, o->traceparent);
}

void obs_upstream_connecting(struct ex_obs *o) {
  o->connect_start = clock_ns(CLOCK_MONOTONIC);
}

void obs_upstream_connected(struct ex_obs *o) {
  if (o->connect_start)
    o->connect_us = (int64_t)((clock_ns(CLOCK_MONOTONIC) - o->connect_start) / 1000);
}

void obs_response_head(struct ex_obs *o) {
  if (o->first_byte_us < 0)
    o->first_byte_us = (int64_t)((clock_ns(CLOCK_MONOTONIC) - o->t0) / 1000);
}

void obs_retry(struct ex_obs *o, const char *upstream, const char *reason) {
  o->retries++;
  if (!o->sampled) return;
  if (o->n_events >= TRACE_MAX_EVENTS) {
    o->dropped_events++;
    return;
  }
  struct trace_event *e = &o->events[o->n_events++];
  e->time_ns = clock_ns(CLOCK_REALTIME);
  copy(e->name, sizeof(e->name), "retry");
  copy(e->upstream, sizeof(e->upstream), upstream);
  copy(e->reason, sizeof(e->reason), reason);
}

/* "host/path" (the metrics' route label); "" without a route. */
static void route_name(const struct obs_facts *f, char *out, size_t cap) {
  out[0] = '\0';
  if (!f->route_path) return;
  const char *h = f->route_host && f->route_host[0] ? f->route_host : "*";
  size_t hl = strlen(h), pl = strlen(f->route_path);
  if (hl >= cap) hl = cap - 1;
  if (pl >= cap - hl) pl = cap - hl - 1;
  memcpy(out, h, hl);
  memcpy(out + hl, f->route_path, pl);
  out[hl + pl] = '\0';
}

static void submit_span(struct ex_obs *o, const struct obs_config *c, const struct obs_facts *f,
                        const char *route, uint64_t end_ns) {
  struct trace_span s;
  memcpy(s.trace_id, o->trace_id, 16);
  memcpy(s.span_id, o->span_id, 8);
  memcpy(s.parent_span_id, o->parent_id, 8);
  s.has_parent = o->has_parent;
  s.flags = o->flags;
  s.start_ns = o->wall_ns;
  s.end_ns = end_ns;
  s.status = f->status;
  s.h2 = f->h2;
  s.https = f->https;
  s.retries = o->retries;
  copy(s.method, sizeof(s.method), f->method);
  copy(s.authority, sizeof(s.authority), f->authority);
  copy(s.path, sizeof(s.path), f->path);
  copy(s.route, sizeof(s.route), route);
  copy(s.cluster, sizeof(s.cluster), f->cluster);
  copy(s.upstream, sizeof(s.upstream), f->upstream);
  copy(s.client, sizeof(s.client), f->client);
  copy(s.request_id, sizeof(s.request_id), f->request_id);
  copy(s.trace_state, sizeof(s.trace_state), o->trace_state);
  s.n_events = o->n_events;
  s.dropped_events = o->dropped_events;
  memcpy(s.events, o->events, sizeof(s.events[0]) * o->n_events);
  trace_export_submit(c->tracer, &s);
}

void obs_end(struct ex_obs *o, const struct obs_config *c, const struct obs_facts *f) {
  uint64_t now = clock_ns(CLOCK_MONOTONIC);
  int64_t dur_us = (int64_t)((now - o->t0) / 1000);
  char route[256];
  route_name(f, route, sizeof(route));
  if (c->tracer && o->sampled) submit_span(o, c, f, route, o->wall_ns + (uint64_t)dur_us * 1000);
  if (!c->alog) return;
  char trace_id[33];
  if (o->have_trace_id) trace_hex(o->trace_id, 16, trace_id);
  struct access_record r = {
      .time_ns = o->wall_ns,
      .client_address = f->client,
      .client_port = f->client_port,
      .h2 = f->h2,
      .method = f->method,
      .authority = f->authority,
      .path = f->path,
      .status = f->status,
      .bytes_in = o->bytes_in,
      .bytes_out = f->bytes_out,
      .route = route[0] ? route : NULL,
      .cluster = f->cluster,
      .upstream = f->upstream,
      .upstream_connect_us = o->connect_us,
      .upstream_first_byte_us = o->first_byte_us,
      .duration_us = dur_us,
      .retries = o->retries,
      .tls_version = f->tls_version,
      .sni = f->sni,
      .alpn = f->alpn,
      .request_id = f->request_id,
      .trace_id = o->have_trace_id ? trace_id : NULL,
  };
  access_log_submit(c->alog, &r);
}
