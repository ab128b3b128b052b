/*
 * exchange_obs — what an exchange records for tracing and the access log,
 * and the five hook points the data path calls. Everything about W3C
 * context, sampling, span building and log lines lives here; the data path
 * only marks moments and hands over plain facts at the end.
 *
 * Hook points (the exchange must call them at these moments, whatever its
 * shape; see README "Tracing and access logs" for the list):
 *   obs_start            request head parsed, before the upstream request
 *                        head is written: parses traceparent/tracestate,
 *                        decides sampling, makes this hop's span id and the
 *                        traceparent to send upstream (o->traceparent, with
 *                        o->drop_tracestate for headers_write_request)
 *   obs_upstream_connect a new upstream connection starts / has connected
 *   obs_response_head    the upstream response head arrived (first byte)
 *   obs_retry            the exchange tries another endpoint (span event)
 *   obs_end              the exchange is over: one access log line and, when
 *                        sampled, one span to the exporter
 * When neither an access log nor a tracer is configured, obs_enabled() is 0
 * and the data path skips every hook: the traceparent and tracestate the
 * client sent pass through untouched, as before tracing existed.
 *
 * Threads: a struct ex_obs belongs to its exchange (one worker thread); the
 * obs_config, access log and exporter are shared and thread-safe.
 */
#ifndef EDGE_L7PROXY_EXCHANGE_OBS_H
#define EDGE_L7PROXY_EXCHANGE_OBS_H

#include <stddef.h>
#include <stdint.h>

#include "l7proxy/headers.h"
#include "l7proxy/trace_context.h"
#include "l7proxy/trace_span.h"

struct access_log;
struct trace_export;

struct obs_config {
  struct access_log *alog;     /* NULL: no access log */
  struct trace_export *tracer; /* NULL: tracing off */
  double sample_ratio;         /* new traces: 0..1 */
};

static inline int obs_enabled(const struct obs_config *c) {
  return c && (c->alog || c->tracer);
}

struct ex_obs {
  uint64_t wall_ns;       /* unix ns at the request head */
  uint64_t t0;            /* monotonic ns at the request head */
  uint64_t connect_start; /* monotonic ns; 0: no new connection */
  int64_t connect_us;     /* -1: none */
  int64_t first_byte_us;  /* -1: none */
  uint64_t bytes_in;      /* request body bytes */
  uint32_t retries;
  int traced;          /* tracing on: o->traceparent replaces the client's */
  int have_trace_id;   /* a trace id to log (traced, or a valid incoming one) */
  int sampled;         /* a span goes to the exporter at obs_end */
  int has_parent;      /* the client sent a valid traceparent */
  int drop_tracestate; /* the client's tracestate is invalid or orphaned */
  uint8_t flags;
  uint8_t trace_id[16], span_id[8], parent_id[8];
  char traceparent[TRACEPARENT_LEN + 1]; /* to send upstream when traced */
  char trace_state[TRACE_STATE_MAX + 1]; /* kept for the span (sampled only) */
  uint32_t n_events, dropped_events;
  struct trace_event events[TRACE_MAX_EVENTS];
};

/* Facts about the finished exchange, borrowed for the call. */
struct obs_facts {
  const char *client;
  uint16_t client_port;
  int h2, https;
  const char *method, *authority, *path;
  int status;
  uint64_t bytes_out;
  const char *route_host, *route_path; /* NULL: no route */
  const char *cluster, *upstream;      /* NULL: none */
  const char *request_id;
  const char *tls_version, *sni, *alpn; /* NULL: not TLS */
};

void obs_start(struct ex_obs *o, const struct obs_config *c, const struct h1_header *h, size_t n);
void obs_upstream_connecting(struct ex_obs *o);
void obs_upstream_connected(struct ex_obs *o);
void obs_response_head(struct ex_obs *o);
void obs_retry(struct ex_obs *o, const char *upstream, const char *reason);
void obs_end(struct ex_obs *o, const struct obs_config *c, const struct obs_facts *f);

#endif
