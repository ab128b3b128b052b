/*
 * trace_export — ships finished spans to an OTLP/HTTP receiver from its own
 * thread, so no worker loop ever waits on the network.
 *
 * Workers call trace_export_submit with a span record; it is copied into a
 * bounded queue (a ring of queue_size records under one mutex held only
 * for the copy). A full queue drops the span and counts it
 * (edge_l7_trace_spans_dropped_total{reason="queue_full"}): the data path
 * never blocks and never allocates for tracing. The exporter thread takes
 * up to batch_size spans when that many are queued or flush_ms after the
 * first one arrived, encodes them (otlp_encode: protobuf) and POSTs them to
 * the URL with libcurl (Content-Type application/x-protobuf, timeout_ms).
 * A batch the receiver does not take with a 2xx is dropped and counted
 * (reason="export_failed"); there is no retry queue, so a dead collector
 * costs a bounded amount of memory and one failed POST per batch.
 *
 * Metrics: edge_l7_trace_spans_exported_total,
 * edge_l7_trace_spans_dropped_total{reason}, edge_l7_trace_exports_total{result}.
 *
 * Threads: submit from any thread; new/close from the main thread.
 * Ownership: the exporter copies everything it is given (url, names).
 */
#ifndef EDGE_L7PROXY_TRACE_EXPORT_H
#define EDGE_L7PROXY_TRACE_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "l7proxy/trace_span.h"

struct metrics_registry;
struct trace_export;

struct trace_export_opts {
  const char *url;          /* http(s)://host:port/v1/traces */
  const char *service_name; /* resource service.name */
  const char *instance_id;  /* resource service.instance.id (node id) */
  const char *version;
  size_t queue_size;                /* spans held at most (default 4096) */
  size_t batch_size;                /* spans per POST at most (default 512) */
  uint32_t flush_ms;                /* longest wait before a partial batch goes (default 1000) */
  uint32_t timeout_ms;              /* per POST (default 5000) */
  struct metrics_registry *metrics; /* may be NULL */
};

/* Starts the exporter thread. Returns 0, or negative with a reason in err. */
int trace_export_new(const struct trace_export_opts *o, struct trace_export **out, char *err,
                     size_t errlen);

/* Queues a copy of s. 0, or -ENOSPC when the queue is full (counted). */
int trace_export_submit(struct trace_export *te, const struct trace_span *s);

/* Sends what is queued, stops the thread and frees everything. A receiver
 * that fails a batch while stopping gets no more tries: the rest is
 * dropped (counted), so a stop waits at most one timeout_ms for a dead
 * collector. NULL is fine. */
void trace_export_close(struct trace_export *te);

/* Counters, for tests and logs. */
uint64_t trace_export_dropped(const struct trace_export *te);
uint64_t trace_export_exported(const struct trace_export *te);

#endif
