/* exchange_obs with the request header policy (headers_upstream_request): what a hop sends upstream
 * for each kind of incoming trace context, parent-based sampling, and the bounded retry events. The
 * tracer is a real exporter aimed at a closed port (its POSTs fail; these tests look at the
 * exchange side). */
#include "l7proxy/exchange_obs.h"

#include <CUnit/CUnit.h>
#include <string.h>

#include "l7proxy/message.h"
#include "l7proxy/trace_export.h"

#define H(n, v) \
  { n, sizeof(n) - 1, v, sizeof(v) - 1 }
#define TP "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

static struct trace_export *tracer;

static int setup(void) {
  struct trace_export_opts o = {.url = "http://127.0.0.1:1/v1/traces", .flush_ms = 10};
  char err[256];
  return trace_export_new(&o, &tracer, err, sizeof(err));
}

static int teardown(void) {
  trace_export_close(tracer);
  return 0;
}

/* The upstream head for these client headers, after obs_start. */
static const char *upstream_head(struct ex_obs *o, const struct obs_config *c,
                                 const struct h1_header *h, size_t n) {
  static struct buf out;
  buf_free(&out);
  memset(o, 0, sizeof(*o));
  obs_start(o, c, h, n);
  static struct msg_arena arena;
  msg_arena_reset(&arena);
  struct msg_head in = {.method = MSG_GET,
                        .method_str = "GET",
                        .method_len = 3,
                        .scheme = "http",
                        .authority = "a.test",
                        .authority_len = 6,
                        .target = "/",
                        .target_len = 1,
                        .path_len = 1,
                        .headers = h,
                        .n_headers = n,
                        .content_length = -1,
                        .end_stream = 1};
  struct msg_head up;
  struct headers_request r = {
      .in = &in,
      .target = "/",
      .target_len = 1,
      .client_addr = "192.0.2.1",
      .proto = "http",
      .traceparent = o->traced ? o->traceparent : NULL,
      .drop_tracestate = o->drop_tracestate,
  };
  char id[65];
  CU_ASSERT_EQUAL_FATAL(headers_upstream_request(&r, &up, &arena, id), 0);
  CU_ASSERT_EQUAL_FATAL(headers_h1_request(&out, &up), 0);
  buf_append(&out, "", 1);
  return out.data;
}

static int count(const char *s, const char *needle) {
  int n = 0;
  for (const char *p = s; (p = strstr(p, needle)) != NULL; p++) n++;
  return n;
}

static void sampled_parent_is_continued_with_a_new_span_id(void) {
  struct obs_config c = {.tracer = tracer, .sample_ratio = 0};
  struct h1_header h[] = {H("traceparent", TP), H("tracestate", "congo=t61rcWkgMzE")};
  struct ex_obs o;
  const char *s = upstream_head(&o, &c, h, 2);
  CU_ASSERT_TRUE(o.has_parent);
  CU_ASSERT_TRUE(o.sampled); /* the parent decides, not the ratio */
  CU_ASSERT_EQUAL(count(s, "traceparent: "), 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "traceparent: 00-0af7651916cd43dd8448eb211c80319c-"));
  CU_ASSERT_PTR_NULL(strstr(s, "b7ad6b7169203331")); /* our span replaces the client's */
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "-01\r\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "\r\ntracestate: congo=t61rcWkgMzE\r\n"));
  CU_ASSERT_EQUAL(o.parent_id[0], 0xb7);
}

static void unsampled_parent_stays_unsampled(void) {
  struct obs_config c = {.tracer = tracer, .sample_ratio = 1};
  struct h1_header h[] = {
      H("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")};
  struct ex_obs o;
  const char *s = upstream_head(&o, &c, h, 1);
  CU_ASSERT_FALSE(o.sampled);
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "traceparent: 00-0af7651916cd43dd8448eb211c80319c-"));
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "-00\r\n"));
  CU_ASSERT_EQUAL(count(s, "raceparent: "), 1);
}

static void invalid_parent_restarts_the_trace_and_drops_tracestate(void) {
  struct obs_config c = {.tracer = tracer, .sample_ratio = 1};
  struct h1_header h[] = {
      H("traceparent", "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"),
      H("tracestate", "congo=t61rcWkgMzE")};
  struct ex_obs o;
  const char *s = upstream_head(&o, &c, h, 2);
  CU_ASSERT_FALSE(o.has_parent);
  CU_ASSERT_TRUE(o.sampled);
  CU_ASSERT_PTR_NULL(strstr(s, "0AF7651916CD43DD"));
  CU_ASSERT_PTR_NULL(strstr(s, "0af7651916cd43dd"));
  CU_ASSERT_PTR_NULL(strstr(s, "tracestate"));
  CU_ASSERT_EQUAL(count(s, "traceparent: 00-"), 1);
}

static void two_traceparents_are_as_bad_as_one_broken(void) {
  struct obs_config c = {.tracer = tracer, .sample_ratio = 0};
  struct h1_header h[] = {H("traceparent", TP), H("traceparent", TP)};
  struct ex_obs o;
  const char *s = upstream_head(&o, &c, h, 2);
  CU_ASSERT_FALSE(o.has_parent);
  CU_ASSERT_FALSE(o.sampled); /* ratio 0 */
  CU_ASSERT_EQUAL(count(s, "traceparent: "), 1);
  CU_ASSERT_PTR_NULL(strstr(s, "b7ad6b7169203331"));
}

static void invalid_tracestate_is_dropped_whole(void) {
  struct obs_config c = {.tracer = tracer, .sample_ratio = 1};
  struct h1_header h[] = {H("traceparent", TP), H("tracestate", "ok=1"),
                          H("tracestate", "Bad Key=2")};
  struct ex_obs o;
  const char *s = upstream_head(&o, &c, h, 3);
  CU_ASSERT_TRUE(o.has_parent);
  CU_ASSERT_TRUE(o.drop_tracestate);
  CU_ASSERT_PTR_NULL(strstr(s, "tracestate"));
}

static void without_a_tracer_the_client_context_passes_untouched(void) {
  struct obs_config c = {.alog = NULL, .tracer = NULL};
  struct h1_header h[] = {H("traceparent", TP), H("tracestate", "x=y")};
  struct ex_obs o;
  const char *s = upstream_head(&o, &c, h, 2);
  CU_ASSERT_FALSE(o.traced);
  CU_ASSERT_TRUE(o.have_trace_id); /* still logged */
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "\r\ntraceparent: " TP "\r\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "\r\ntracestate: x=y\r\n"));
}

static void retries_beyond_the_event_limit_are_counted(void) {
  struct obs_config c = {.tracer = tracer, .sample_ratio = 1};
  struct ex_obs o;
  upstream_head(&o, &c, NULL, 0);
  for (int i = 0; i < TRACE_MAX_EVENTS + 2; i++) obs_retry(&o, "127.0.0.1:1", "connect failed");
  CU_ASSERT_EQUAL(o.retries, TRACE_MAX_EVENTS + 2);
  CU_ASSERT_EQUAL(o.n_events, TRACE_MAX_EVENTS);
  CU_ASSERT_EQUAL(o.dropped_events, 2);
  CU_ASSERT_STRING_EQUAL(o.events[0].name, "retry");
  CU_ASSERT_STRING_EQUAL(o.events[0].upstream, "127.0.0.1:1");
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("exchange_obs", setup, teardown);
  CU_add_test(s, "sampled_parent_is_continued_with_a_new_span_id",
              sampled_parent_is_continued_with_a_new_span_id);
  CU_add_test(s, "unsampled_parent_stays_unsampled", unsampled_parent_stays_unsampled);
  CU_add_test(s, "invalid_parent_restarts_the_trace_and_drops_tracestate",
              invalid_parent_restarts_the_trace_and_drops_tracestate);
  CU_add_test(s, "two_traceparents_are_as_bad_as_one_broken",
              two_traceparents_are_as_bad_as_one_broken);
  CU_add_test(s, "invalid_tracestate_is_dropped_whole", invalid_tracestate_is_dropped_whole);
  CU_add_test(s, "without_a_tracer_the_client_context_passes_untouched",
              without_a_tracer_the_client_context_passes_untouched);
  CU_add_test(s, "retries_beyond_the_event_limit_are_counted",
              retries_beyond_the_event_limit_are_counted);
}
