/*
 * otlp_encode — finished spans to an OTLP ExportTraceServiceRequest in the
 * binary protobuf encoding (proto/otlp/trace.proto), the body of an
 * OTLP/HTTP POST /v1/traces with Content-Type application/x-protobuf.
 *
 * Why protobuf and not OTLP/JSON: it is the default of OTLP/HTTP and the
 * encoding every receiver takes (JSON is optional, and some receivers, such
 * as Elastic's APM server, accept none), ids travel as raw bytes
 * (OTLP/JSON needs hex ids, a documented departure from the protobuf JSON
 * mapping that generic JSON writers get wrong), batches are 3-4x smaller,
 * and protobuf-c is already in the build for edge's own wire contract.
 *
 * One ResourceSpans (service.name, service.instance.id, edge node) with one
 * ScopeSpans ("edge.l7proxy") holds the batch. Span attributes follow the
 * OpenTelemetry HTTP semantic conventions where one exists
 * (http.request.method, url.path, url.scheme, server.address,
 * client.address, http.response.status_code, http.route,
 * network.protocol.version, http.request.resend_count) plus edge.cluster,
 * edge.upstream.address and edge.request_id. Status is ERROR for 5xx and for
 * a request that got no status; otherwise unset.
 *
 * Pure: no I/O. Callers: trace_export.c (exporter thread), unit tests.
 */
#ifndef EDGE_L7PROXY_OTLP_ENCODE_H
#define EDGE_L7PROXY_OTLP_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "l7proxy/trace_span.h"

struct otlp_resource {
  const char *service_name; /* "edge-l7proxy" */
  const char *instance_id;  /* the node id */
  const char *version;      /* l7proxy build version */
};

/*
 * Encodes spans[0..n) into a newly malloc'd buffer (*out, caller frees) of
 * *out_len bytes. Returns 0 or -ENOMEM.
 */
int otlp_encode_spans(const struct otlp_resource *res, const struct trace_span *spans, size_t n,
                      uint8_t **out, size_t *out_len);

#endif
