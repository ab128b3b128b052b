/* otlp_encode: the spans come back out of the protobuf, and the bytes carry
 * the OTLP specification's field numbers (checked on the raw encoding, not
 * only through our own generated decoder). */
#include "l7proxy/otlp_encode.h"

#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "otlp/trace.pb-c.h"

static const uint8_t TRACE[16] = {0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd,
                                  0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c};
static const uint8_t SPAN[8] = {1, 2, 3, 4, 5, 6, 7, 8};
static const uint8_t PARENT[8] = {0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31};

static void sample_span(struct trace_span *s) {
  memset(s, 0, sizeof(*s));
  memcpy(s->trace_id, TRACE, 16);
  memcpy(s->span_id, SPAN, 8);
  memcpy(s->parent_span_id, PARENT, 8);
  s->has_parent = 1;
  s->flags = 1;
  s->start_ns = 1796230305142844657ull;
  s->end_ns = s->start_ns + 4956000;
  s->status = 502;
  s->retries = 1;
  strcpy(s->method, "GET");
  strcpy(s->authority, "shop.example.test");
  strcpy(s->path, "/api");
  strcpy(s->route, "shop.example.test/api");
  strcpy(s->cluster, "default/shop-api:80");
  strcpy(s->upstream, "127.0.2.2:18080");
  strcpy(s->client, "203.0.113.7");
  strcpy(s->request_id, "abc");
  strcpy(s->trace_state, "congo=t61rcWkgMzE");
  s->n_events = 1;
  s->events[0].time_ns = s->start_ns + 1000;
  strcpy(s->events[0].name, "retry");
  strcpy(s->events[0].upstream, "127.0.2.1:18080");
  strcpy(s->events[0].reason, "upstream connect failed");
}

static const struct otlp_resource RES = {"edge-l7proxy", "l7-1", "0.1.0"};

static const char *attr(Edge__Otlp__V1__KeyValue **kv, size_t n, const char *key) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(kv[i]->key, key) == 0 &&
        kv[i]->value->value_case == EDGE__OTLP__V1__ANY_VALUE__VALUE_STRING_VALUE)
      return kv[i]->value->string_value;
  return NULL;
}

static int64_t attr_int(Edge__Otlp__V1__KeyValue **kv, size_t n, const char *key) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(kv[i]->key, key) == 0) return kv[i]->value->int_value;
  return -1;
}

static void spans_round_trip(void) {
  struct trace_span s[2];
  sample_span(&s[0]);
  sample_span(&s[1]);
  s[1].has_parent = 0;
  s[1].status = 200;
  s[1].n_events = 0;
  uint8_t *buf;
  size_t len;
  CU_ASSERT_EQUAL_FATAL(otlp_encode_spans(&RES, s, 2, &buf, &len), 0);
  Edge__Otlp__V1__ExportTraceServiceRequest *req =
      edge__otlp__v1__export_trace_service_request__unpack(NULL, len, buf);
  CU_ASSERT_PTR_NOT_NULL_FATAL(req);
  CU_ASSERT_EQUAL_FATAL(req->n_resource_spans, 1);
  Edge__Otlp__V1__ResourceSpans *rs = req->resource_spans[0];
  CU_ASSERT_STRING_EQUAL(attr(rs->resource->attributes, rs->resource->n_attributes, "service.name"),
                         "edge-l7proxy");
  CU_ASSERT_EQUAL_FATAL(rs->n_scope_spans, 1);
  CU_ASSERT_STRING_EQUAL(rs->scope_spans[0]->scope->name, "edge.l7proxy");
  CU_ASSERT_EQUAL_FATAL(rs->scope_spans[0]->n_spans, 2);
  Edge__Otlp__V1__Span *a = rs->scope_spans[0]->spans[0], *b = rs->scope_spans[0]->spans[1];
  CU_ASSERT_EQUAL(a->trace_id.len, 16);
  CU_ASSERT_EQUAL(memcmp(a->trace_id.data, TRACE, 16), 0);
  CU_ASSERT_EQUAL(memcmp(a->span_id.data, SPAN, 8), 0);
  CU_ASSERT_EQUAL(a->parent_span_id.len, 8);
  CU_ASSERT_EQUAL(memcmp(a->parent_span_id.data, PARENT, 8), 0);
  CU_ASSERT_EQUAL(b->parent_span_id.len, 0); /* a root span has no parent */
  CU_ASSERT_EQUAL(a->kind, EDGE__OTLP__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER);
  CU_ASSERT_STRING_EQUAL(a->name, "GET shop.example.test/api");
  CU_ASSERT_STRING_EQUAL(a->trace_state, "congo=t61rcWkgMzE");
  CU_ASSERT_EQUAL(a->start_time_unix_nano, 1796230305142844657ull);
  CU_ASSERT_EQUAL(a->end_time_unix_nano, 1796230305142844657ull + 4956000);
  CU_ASSERT_EQUAL(a->flags, 0x301u); /* sampled, parent is remote */
  CU_ASSERT_EQUAL(b->flags, 0x101u);
  CU_ASSERT_STRING_EQUAL(attr(a->attributes, a->n_attributes, "edge.cluster"),
                         "default/shop-api:80");
  CU_ASSERT_STRING_EQUAL(attr(a->attributes, a->n_attributes, "edge.upstream.address"),
                         "127.0.2.2:18080");
  CU_ASSERT_STRING_EQUAL(attr(a->attributes, a->n_attributes, "http.route"),
                         "shop.example.test/api");
  CU_ASSERT_EQUAL(attr_int(a->attributes, a->n_attributes, "http.response.status_code"), 502);
  CU_ASSERT_EQUAL(attr_int(a->attributes, a->n_attributes, "http.request.resend_count"), 1);
  CU_ASSERT_EQUAL(a->status->code, EDGE__OTLP__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR);
  CU_ASSERT_EQUAL(b->status->code, EDGE__OTLP__V1__STATUS__STATUS_CODE__STATUS_CODE_UNSET);
  CU_ASSERT_EQUAL_FATAL(a->n_events, 1);
  CU_ASSERT_STRING_EQUAL(a->events[0]->name, "retry");
  CU_ASSERT_STRING_EQUAL(attr(a->events[0]->attributes, a->events[0]->n_attributes, "edge.reason"),
                         "upstream connect failed");
  edge__otlp__v1__export_trace_service_request__free_unpacked(req, NULL);
  free(buf);
}

static const uint8_t *find(const uint8_t *h, size_t hl, const uint8_t *n, size_t nl) {
  for (size_t i = 0; i + nl <= hl; i++)
    if (memcmp(h + i, n, nl) == 0) return h + i;
  return NULL;
}

/* The specification's numbers, as bytes: a key is (field << 3 | wire type). */
static void bytes_carry_the_specification_field_numbers(void) {
  struct trace_span s;
  sample_span(&s);
  uint8_t *buf;
  size_t len;
  CU_ASSERT_EQUAL_FATAL(otlp_encode_spans(&RES, &s, 1, &buf, &len), 0);
  uint8_t want[2 + 16 + 2 + 8];
  want[0] = 1 << 3 | 2; /* Span.trace_id = 1, bytes */
  want[1] = 16;
  memcpy(want + 2, TRACE, 16);
  want[18] = 2 << 3 | 2; /* Span.span_id = 2 */
  want[19] = 8;
  memcpy(want + 20, SPAN, 8);
  CU_ASSERT_PTR_NOT_NULL(find(buf, len, want, sizeof(want)));
  uint8_t parent[10] = {4 << 3 | 2, 8}; /* Span.parent_span_id = 4 */
  memcpy(parent + 2, PARENT, 8);
  CU_ASSERT_PTR_NOT_NULL(find(buf, len, parent, sizeof(parent)));
  uint8_t start[9] = {7 << 3 | 1}; /* Span.start_time_unix_nano = 7, fixed64 LE */
  for (int i = 0; i < 8; i++) start[1 + i] = (uint8_t)(s.start_ns >> (8 * i));
  CU_ASSERT_PTR_NOT_NULL(find(buf, len, start, sizeof(start)));
  uint8_t flags[6] = {16 << 3 | 5 | 0x80, 1, 0x01, 0x03, 0, 0}; /* Span.flags = 16, fixed32 */
  CU_ASSERT_PTR_NOT_NULL(find(buf, len, flags, sizeof(flags)));
  uint8_t kind[2] = {6 << 3 | 0, 2}; /* Span.kind = 6: SPAN_KIND_SERVER = 2 */
  CU_ASSERT_PTR_NOT_NULL(find(buf, len, kind, sizeof(kind)));
  CU_ASSERT_EQUAL(buf[0], 1 << 3 | 2); /* ExportTraceServiceRequest.resource_spans = 1 */
  free(buf);
}

static void empty_batch_encodes(void) {
  uint8_t *buf;
  size_t len;
  CU_ASSERT_EQUAL(otlp_encode_spans(&RES, NULL, 0, &buf, &len), 0);
  free(buf);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("otlp_encode", NULL, NULL);
  CU_add_test(s, "spans_round_trip", spans_round_trip);
  CU_add_test(s, "bytes_carry_the_specification_field_numbers",
              bytes_carry_the_specification_field_numbers);
  CU_add_test(s, "empty_batch_encodes", empty_batch_encodes);
}
