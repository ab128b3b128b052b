/*
 * trace_span — the plain record of one finished span: what the data path
 * fills at the end of an exchange and hands to the exporter (copied by
 * value into its queue: no pointers, so the record outlives the
 * exchange and the snapshot that named its route and cluster).
 *
 * One SERVER span per proxied request: its parent is the caller's span from
 * the incoming traceparent (none: a root span), and the traceparent sent
 * upstream names this span, so the next hop's span is its child. Retries
 * are events on it ("retry", with the endpoint that failed and why).
 * Strings are NUL-terminated and truncated to their arrays.
 */
#ifndef EDGE_L7PROXY_TRACE_SPAN_H
#define EDGE_L7PROXY_TRACE_SPAN_H

#include <stdint.h>

#define TRACE_MAX_EVENTS 4

struct trace_event {
  uint64_t time_ns;  /* unix epoch ns */
  char name[16];     /* "retry" */
  char upstream[64]; /* the endpoint that failed */
  char reason[48];   /* "upstream connect failed" */
};

struct trace_span {
  uint8_t trace_id[16];
  uint8_t span_id[8];
  uint8_t parent_span_id[8];
  int has_parent;            /* 0: a root span (parent_span_id unused) */
  uint8_t flags;             /* W3C trace flags */
  uint64_t start_ns, end_ns; /* unix epoch ns */
  int status;                /* HTTP status sent to the client (0: none) */
  int h2;                    /* the client spoke HTTP/2 */
  int https;                 /* the client connection was TLS */
  uint32_t retries;
  char method[16];
  char authority[128];
  char path[256];    /* without the query string */
  char route[192];   /* "host/path" of the matched route, "" none */
  char cluster[128]; /* "" none */
  char upstream[64]; /* last endpoint tried, "" none */
  char client[48];   /* client address */
  char request_id[65];
  char trace_state[512 + 1]; /* the incoming tracestate, when valid */
  uint32_t n_events, dropped_events;
  struct trace_event events[TRACE_MAX_EVENTS];
};

#endif
