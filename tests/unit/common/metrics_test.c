/* metrics: exact Prometheus text, handle identity, removal, atomic updates. */
#include "common/metrics.h"

#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static double forty_two(void *arg) {
  (void)arg;
  return 42;
}

static uint64_t counted_elsewhere(void *arg) {
  return *(const uint64_t *)arg;
}

/* A computed counter renders what its function returns at render time. */
static void computed_counter_renders_the_current_value(void) {
  struct metrics_registry *r = metrics_registry_new();
  uint64_t n = 7;
  CU_ASSERT_EQUAL(
      metrics_counter_fn(r, "edge_pkts_total", "Packets.", "vip=\"a\"", counted_elsewhere, &n), 0);
  size_t len = 0;
  char *text = metrics_render(r, &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  CU_ASSERT_PTR_NOT_NULL(
      strstr(text, "# TYPE edge_pkts_total counter\nedge_pkts_total{vip=\"a\"} 7\n"));
  free(text);
  n = 9;
  text = metrics_render(r, &len);
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "edge_pkts_total{vip=\"a\"} 9\n"));
  free(text);
  metrics_remove(r, "edge_pkts_total", "vip=\"a\"");
  text = metrics_render(r, &len);
  CU_ASSERT_PTR_NULL(strstr(text, "edge_pkts_total{"));
  free(text);
  metrics_registry_free(r);
}

static void renders_a_small_registry_exactly(void) {
  struct metrics_registry *r = metrics_registry_new();
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  struct metrics_counter *ok =
      metrics_counter(r, "edge_requests_total", "Requests served.", "code=\"2xx\"");
  struct metrics_counter *bad =
      metrics_counter(r, "edge_requests_total", "ignored help", "code=\"5xx\"");
  struct metrics_gauge *g = metrics_gauge(r, "edge_connections", "Open connections.", "");
  static const double bounds[] = {0.1, 0.5};
  struct metrics_histogram *h =
      metrics_histogram(r, "edge_latency_seconds", "Latency.", "route=\"a\"", bounds, 2);
  CU_ASSERT_EQUAL(metrics_gauge_fn(r, "edge_up", "Line one\nback\\slash", "", forty_two, NULL), 0);
  metrics_counter_add(ok, 3);
  metrics_counter_inc(bad);
  metrics_gauge_set(g, 2.5);
  metrics_gauge_add(g, -1);
  metrics_histogram_observe(h, 0.05);
  metrics_histogram_observe(h, 0.1); /* le is inclusive */
  metrics_histogram_observe(h, 0.3);
  metrics_histogram_observe(h, 2);
  size_t len = 0;
  char *text = metrics_render(r, &len);
  const char *want =
      "# HELP edge_requests_total Requests served.\n"
      "# TYPE edge_requests_total counter\n"
      "edge_requests_total{code=\"2xx\"} 3\n"
      "edge_requests_total{code=\"5xx\"} 1\n"
      "# HELP edge_connections Open connections.\n"
      "# TYPE edge_connections gauge\n"
      "edge_connections 1.5\n"
      "# HELP edge_latency_seconds Latency.\n"
      "# TYPE edge_latency_seconds histogram\n"
      "edge_latency_seconds_bucket{route=\"a\",le=\"0.1\"} 2\n"
      "edge_latency_seconds_bucket{route=\"a\",le=\"0.5\"} 3\n"
      "edge_latency_seconds_bucket{route=\"a\",le=\"+Inf\"} 4\n"
      "edge_latency_seconds_sum{route=\"a\"} 2.45\n"
      "edge_latency_seconds_count{route=\"a\"} 4\n"
      "# HELP edge_up Line one\\nback\\\\slash\n"
      "# TYPE edge_up gauge\n"
      "edge_up 42\n";
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  CU_ASSERT_STRING_EQUAL(text, want);
  CU_ASSERT_EQUAL(len, strlen(want));
  free(text);
  metrics_registry_free(r);
}

static void histogram_without_labels_gets_only_le(void) {
  struct metrics_registry *r = metrics_registry_new();
  static const double bounds[] = {1};
  struct metrics_histogram *h = metrics_histogram(r, "x_seconds", "X.", "", bounds, 1);
  metrics_histogram_observe(h, 0.5);
  char *text = metrics_render(r, NULL);
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "x_seconds_bucket{le=\"1\"} 1\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "x_seconds_bucket{le=\"+Inf\"} 1\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "x_seconds_sum 0.5\nx_seconds_count 1\n"));
  free(text);
  metrics_registry_free(r);
}

static void same_name_and_labels_return_the_same_handle_and_clashes_fail(void) {
  struct metrics_registry *r = metrics_registry_new();
  struct metrics_counter *a = metrics_counter(r, "c_total", "C.", "k=\"v\"");
  struct metrics_counter *b = metrics_counter(r, "c_total", "C.", "k=\"v\"");
  struct metrics_counter *c = metrics_counter(r, "c_total", "C.", "k=\"w\"");
  CU_ASSERT_PTR_EQUAL(a, b);
  CU_ASSERT_PTR_NOT_EQUAL(a, c);
  /* A name is one type: asking for it as a gauge fails. */
  CU_ASSERT_PTR_NULL(metrics_gauge(r, "c_total", "C.", "k=\"x\""));
  static const double unsorted[] = {1, 0.5};
  CU_ASSERT_PTR_NULL(metrics_histogram(r, "h_seconds", "H.", "", unsorted, 2));
  metrics_registry_free(r);
}

static void removed_series_disappear_but_handles_stay_usable(void) {
  struct metrics_registry *r = metrics_registry_new();
  struct metrics_counter *a = metrics_counter(r, "route_total", "R.", "route=\"a\"");
  metrics_counter(r, "route_total", "R.", "route=\"b\"");
  metrics_remove(r, "route_total", "route=\"a\"");
  metrics_counter_inc(a); /* a worker still holding the old handle */
  char *text = metrics_render(r, NULL);
  CU_ASSERT_PTR_NULL(strstr(text, "route=\"a\""));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "route_total{route=\"b\"} 0\n"));
  free(text);
  metrics_remove(r, "route_total", "route=\"b\"");
  text = metrics_render(r, NULL);
  CU_ASSERT_STRING_EQUAL(text, ""); /* no family header without series */
  free(text);
  struct metrics_counter *again = metrics_counter(r, "route_total", "R.", "route=\"a\"");
  CU_ASSERT_PTR_NOT_EQUAL(again, a);
  CU_ASSERT_EQUAL(metrics_counter_value(again), 0);
  metrics_registry_free(r);
}

static void escape_label_escapes_quote_backslash_newline(void) {
  char out[32];
  CU_ASSERT_STRING_EQUAL(metrics_escape_label("a\"b\\c\nd", out, sizeof(out)), "a\\\"b\\\\c\\nd");
  char small[4];
  CU_ASSERT_STRING_EQUAL(metrics_escape_label("abcdef", small, sizeof(small)), "abc");
  CU_ASSERT_STRING_EQUAL(metrics_escape_label("ab\"", small, sizeof(small)), "ab");
}

static void default_latency_buckets_span_half_ms_to_ten_s(void) {
  size_t n = 0;
  const double *b = metrics_default_latency_buckets(&n);
  CU_ASSERT_TRUE(n >= 2);
  CU_ASSERT_DOUBLE_EQUAL(b[0], 0.0005, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(b[n - 1], 10, 1e-12);
  for (size_t i = 1; i < n; i++) CU_ASSERT_TRUE(b[i] > b[i - 1]);
}

#define THREADS 4
#define ITERATIONS 100000

struct shared {
  struct metrics_counter *c;
  struct metrics_gauge *g;
  struct metrics_histogram *h;
};

static void *hammer(void *arg) {
  struct shared *s = arg;
  for (int i = 0; i < ITERATIONS; i++) {
    metrics_counter_inc(s->c);
    metrics_gauge_add(s->g, 1);
    metrics_histogram_observe(s->h, 1);
  }
  return NULL;
}

static void concurrent_updates_from_four_threads_sum_exactly(void) {
  struct metrics_registry *r = metrics_registry_new();
  static const double bounds[] = {0.5, 2};
  struct shared s = {
      .c = metrics_counter(r, "hits_total", "H.", ""),
      .g = metrics_gauge(r, "level", "L.", ""),
      .h = metrics_histogram(r, "obs", "O.", "", bounds, 2),
  };
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, hammer, &s), 0);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  CU_ASSERT_EQUAL(metrics_counter_value(s.c), (uint64_t)THREADS * ITERATIONS);
  CU_ASSERT_DOUBLE_EQUAL(metrics_gauge_value(s.g), (double)THREADS * ITERATIONS, 0);
  char *text = metrics_render(r, NULL);
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "obs_bucket{le=\"2\"} 400000\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "obs_sum 400000\nobs_count 400000\n"));
  free(text);
  metrics_registry_free(r);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("metrics", NULL, NULL);
  CU_add_test(s, "renders_a_small_registry_exactly", renders_a_small_registry_exactly);
  CU_add_test(s, "computed_counter_renders_the_current_value",
              computed_counter_renders_the_current_value);
  CU_add_test(s, "histogram_without_labels_gets_only_le", histogram_without_labels_gets_only_le);
  CU_add_test(s, "same_name_and_labels_return_the_same_handle_and_clashes_fail",
              same_name_and_labels_return_the_same_handle_and_clashes_fail);
  CU_add_test(s, "removed_series_disappear_but_handles_stay_usable",
              removed_series_disappear_but_handles_stay_usable);
  CU_add_test(s, "escape_label_escapes_quote_backslash_newline",
              escape_label_escapes_quote_backslash_newline);
  CU_add_test(s, "default_latency_buckets_span_half_ms_to_ten_s",
              default_latency_buckets_span_half_ms_to_ten_s);
  CU_add_test(s, "concurrent_updates_from_four_threads_sum_exactly",
              concurrent_updates_from_four_threads_sum_exactly);
}
