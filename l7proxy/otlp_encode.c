/*
 * otlp_encode — builds the protobuf-c message tree for a batch of spans and
 * packs it. See otlp_encode.h for the attribute names and the choice of
 * encoding.
 *
 * The tree points into the span records (strings, ids) and into one arena
 * of attribute structs sized for the batch; it is packed once and freed
 * with the arena, so a batch costs a handful of allocations whatever its
 * size. Runs on the exporter thread only.
 */
#include "l7proxy/otlp_encode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otlp/trace.pb-c.h"

#define SPAN_ATTRS 13 /* the most attributes one span carries */
#define EVENT_ATTRS 2

typedef Edge__Otlp__V1__KeyValue KeyValue;
typedef Edge__Otlp__V1__AnyValue AnyValue;

/* Attribute storage for a batch: key/value structs plus the pointer
 * arrays the message fields reference. */
struct attr_arena {
  KeyValue *kv;
  AnyValue *av;
  KeyValue **ptrs;
  size_t used, cap;
};

static KeyValue *attr_next(struct attr_arena *a, const char *key) {
  if (a->used >= a->cap) return NULL;
  KeyValue *kv = &a->kv[a->used];
  AnyValue *av = &a->av[a->used];
  a->ptrs[a->used] = kv;
  a->used++;
  edge__otlp__v1__key_value__init(kv);
  edge__otlp__v1__any_value__init(av);
  kv->key = (char *)key;
  kv->value = av;
  return kv;
}

static void attr_str(struct attr_arena *a, const char *key, const char *v) {
  if (!v || !v[0]) return; /* absent, not empty */
  KeyValue *kv = attr_next(a, key);
  if (!kv) return;
  kv->value->value_case = EDGE__OTLP__V1__ANY_VALUE__VALUE_STRING_VALUE;
  kv->value->string_value = (char *)v;
}

static void attr_int(struct attr_arena *a, const char *key, int64_t v) {
  KeyValue *kv = attr_next(a, key);
  if (!kv) return;
  kv->value->value_case = EDGE__OTLP__V1__ANY_VALUE__VALUE_INT_VALUE;
  kv->value->int_value = v;
}

static void fill_span(Edge__Otlp__V1__Span *o, Edge__Otlp__V1__Status *st,
                      Edge__Otlp__V1__Span__Event *ev, Edge__Otlp__V1__Span__Event **evp,
                      const struct trace_span *s, struct attr_arena *a, char *name,
                      size_t namecap) {
  edge__otlp__v1__span__init(o);
  o->trace_id = (ProtobufCBinaryData){16, (uint8_t *)s->trace_id};
  o->span_id = (ProtobufCBinaryData){8, (uint8_t *)s->span_id};
  if (s->has_parent) o->parent_span_id = (ProtobufCBinaryData){8, (uint8_t *)s->parent_span_id};
  o->trace_state = (char *)s->trace_state;
  /* HTTP server span name: "{method} {http.route}" when a route matched */
  if (s->route[0])
    snprintf(name, namecap, "%s %s", s->method, s->route);
  else
    snprintf(name, namecap, "%s", s->method[0] ? s->method : "HTTP");
  o->name = name;
  o->kind = EDGE__OTLP__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER;
  o->start_time_unix_nano = s->start_ns;
  o->end_time_unix_nano = s->end_ns >= s->start_ns ? s->end_ns : s->start_ns;
  /* bits 8-9: "has is-remote" and "parent is remote" (a traceparent) */
  o->flags = s->flags | (s->has_parent ? 0x300u : 0x100u);

  size_t first = a->used;
  attr_str(a, "http.request.method", s->method);
  attr_str(a, "url.path", s->path);
  attr_str(a, "url.scheme", s->https ? "https" : "http");
  attr_str(a, "server.address", s->authority);
  attr_str(a, "client.address", s->client);
  attr_str(a, "network.protocol.version", s->h2 ? "2" : "1.1");
  if (s->status) attr_int(a, "http.response.status_code", s->status);
  attr_str(a, "http.route", s->route);
  attr_str(a, "edge.cluster", s->cluster);
  attr_str(a, "edge.upstream.address", s->upstream);
  attr_str(a, "edge.request_id", s->request_id);
  if (s->retries) attr_int(a, "http.request.resend_count", s->retries);
  o->n_attributes = a->used - first;
  o->attributes = &a->ptrs[first];

  size_t ne = s->n_events < TRACE_MAX_EVENTS ? s->n_events : TRACE_MAX_EVENTS;
  for (size_t i = 0; i < ne; i++) {
    edge__otlp__v1__span__event__init(&ev[i]);
    ev[i].time_unix_nano = s->events[i].time_ns;
    ev[i].name = (char *)s->events[i].name;
    size_t f = a->used;
    attr_str(a, "edge.upstream.address", s->events[i].upstream);
    attr_str(a, "edge.reason", s->events[i].reason);
    ev[i].n_attributes = a->used - f;
    ev[i].attributes = &a->ptrs[f];
    evp[i] = &ev[i];
  }
  o->n_events = ne;
  o->events = ne ? evp : NULL;
  o->dropped_events_count = s->dropped_events + (uint32_t)(s->n_events - ne);

  edge__otlp__v1__status__init(st);
  if (s->status == 0 || s->status >= 500) {
    st->code = EDGE__OTLP__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
    st->message = s->status ? "" : (char *)"no response";
  }
  o->status = st;
}

int otlp_encode_spans(const struct otlp_resource *res, const struct trace_span *spans, size_t n,
                      uint8_t **out, size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  size_t nattr = n * (SPAN_ATTRS + TRACE_MAX_EVENTS * EVENT_ATTRS) + 4;
  enum { NAME = 288 };
  struct attr_arena a = {
      .kv = calloc(nattr, sizeof(KeyValue)),
      .av = calloc(nattr, sizeof(AnyValue)),
      .ptrs = calloc(nattr, sizeof(KeyValue *)),
      .cap = nattr,
  };
  Edge__Otlp__V1__Span *os = calloc(n ? n : 1, sizeof(*os));
  Edge__Otlp__V1__Span **osp = calloc(n ? n : 1, sizeof(*osp));
  Edge__Otlp__V1__Status *st = calloc(n ? n : 1, sizeof(*st));
  Edge__Otlp__V1__Span__Event *ev = calloc((n ? n : 1) * TRACE_MAX_EVENTS, sizeof(*ev));
  Edge__Otlp__V1__Span__Event **evp = calloc((n ? n : 1) * TRACE_MAX_EVENTS, sizeof(*evp));
  char *names = calloc(n ? n : 1, NAME);
  int rc = -ENOMEM;
  if (!a.kv || !a.av || !a.ptrs || !os || !osp || !st || !ev || !evp || !names) goto done;

  Edge__Otlp__V1__Resource resource = EDGE__OTLP__V1__RESOURCE__INIT;
  size_t r0 = a.used;
  attr_str(&a, "service.name", res->service_name);
  attr_str(&a, "service.instance.id", res->instance_id);
  attr_str(&a, "service.version", res->version);
  resource.n_attributes = a.used - r0;
  resource.attributes = &a.ptrs[r0];

  for (size_t i = 0; i < n; i++) {
    fill_span(&os[i], &st[i], &ev[i * TRACE_MAX_EVENTS], &evp[i * TRACE_MAX_EVENTS], &spans[i], &a,
              names + i * NAME, NAME);
    osp[i] = &os[i];
  }
  Edge__Otlp__V1__InstrumentationScope scope = EDGE__OTLP__V1__INSTRUMENTATION_SCOPE__INIT;
  scope.name = "edge.l7proxy";
  scope.version = (char *)(res->version ? res->version : "");
  Edge__Otlp__V1__ScopeSpans ss = EDGE__OTLP__V1__SCOPE_SPANS__INIT;
  ss.scope = &scope;
  ss.n_spans = n;
  ss.spans = osp;
  Edge__Otlp__V1__ScopeSpans *ssp = &ss;
  Edge__Otlp__V1__ResourceSpans rs = EDGE__OTLP__V1__RESOURCE_SPANS__INIT;
  rs.resource = &resource;
  rs.n_scope_spans = 1;
  rs.scope_spans = &ssp;
  Edge__Otlp__V1__ResourceSpans *rsp = &rs;
  Edge__Otlp__V1__ExportTraceServiceRequest req =
      EDGE__OTLP__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
  req.n_resource_spans = 1;
  req.resource_spans = &rsp;

  size_t len = edge__otlp__v1__export_trace_service_request__get_packed_size(&req);
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf) goto done;
  edge__otlp__v1__export_trace_service_request__pack(&req, buf);
  *out = buf;
  *out_len = len;
  rc = 0;
done:
  free(a.kv);
  free(a.av);
  free(a.ptrs);
  free(os);
  free(osp);
  free(st);
  free(ev);
  free(evp);
  free(names);
  return rc;
}
