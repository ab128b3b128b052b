/* access_log: the JSON schema and logfmt keys, hostile bytes in values, the
 * ring that drops (and counts) instead of stalling, reopen for logrotate. */
#include "l7proxy/access_log.h"

#include <CUnit/CUnit.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct access_record sample(void) {
  struct access_record r = {
      .time_ns = 1796230305142844657ull,
      .client_address = "203.0.113.7",
      .client_port = 51234,
      .method = "GET",
      .authority = "shop.example.test",
      .path = "/api",
      .status = 200,
      .bytes_in = 12,
      .bytes_out = 345,
      .route = "shop.example.test/api",
      .cluster = "default/shop-api:80",
      .upstream = "127.0.2.1:18080",
      .upstream_connect_us = 412,
      .upstream_first_byte_us = 1200,
      .duration_us = 1523,
      .retries = 1,
      .tls_version = "TLSv1.3",
      .sni = "shop.example.test",
      .alpn = "h2",
      .h2 = 1,
      .request_id = "8c887ab7b6caf6f8c84875ee029c3905",
      .trace_id = "0af7651916cd43dd8448eb211c80319c",
  };
  return r;
}

static json_t *as_json(const struct access_record *r) {
  char buf[8192];
  int n = access_log_format(ACCESS_LOG_JSON, r, buf, sizeof(buf));
  CU_ASSERT_FATAL(n > 0);
  CU_ASSERT_EQUAL(buf[n - 1], '\n');
  CU_ASSERT_PTR_NULL(memchr(buf, '\n', (size_t)n - 1)); /* one line */
  json_error_t e;
  json_t *j = json_loadb(buf, (size_t)n, 0, &e);
  if (!j) fprintf(stderr, "bad JSON (%s): %.*s", e.text, n, buf);
  return j;
}

static const char *const KEYS[] = {"time",
                                   "client_address",
                                   "client_port",
                                   "protocol",
                                   "method",
                                   "authority",
                                   "path",
                                   "status",
                                   "bytes_in",
                                   "bytes_out",
                                   "route",
                                   "cluster",
                                   "upstream_address",
                                   "upstream_connect_ms",
                                   "upstream_first_byte_ms",
                                   "duration_ms",
                                   "retries",
                                   "tls_version",
                                   "sni",
                                   "alpn",
                                   "request_id",
                                   "trace_id"};
#define NKEYS (sizeof(KEYS) / sizeof(KEYS[0]))

static void json_line_has_the_documented_schema(void) {
  struct access_record r = sample();
  json_t *j = as_json(&r);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  CU_ASSERT_EQUAL(json_object_size(j), NKEYS);
  for (size_t i = 0; i < NKEYS; i++) CU_ASSERT_PTR_NOT_NULL(json_object_get(j, KEYS[i]));
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "time")), "2026-12-02T16:51:45.142Z");
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "client_port")), 51234);
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "protocol")), "HTTP/2");
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "status")), 200);
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "bytes_in")), 12);
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "bytes_out")), 345);
  CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(j, "upstream_connect_ms")), 0.412, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(j, "upstream_first_byte_ms")), 1.2,
                         1e-9);
  CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(j, "duration_ms")), 1.523, 1e-9);
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "retries")), 1);
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "alpn")), "h2");
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "trace_id")),
                         "0af7651916cd43dd8448eb211c80319c");
  json_decref(j);
}

static void absent_values_are_null(void) {
  struct access_record r = sample();
  r.route = r.cluster = r.upstream = r.tls_version = r.sni = r.alpn = r.trace_id = NULL;
  r.upstream_connect_us = r.upstream_first_byte_us = -1;
  json_t *j = as_json(&r);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  CU_ASSERT_EQUAL(json_object_size(j), NKEYS);
  CU_ASSERT_TRUE(json_is_null(json_object_get(j, "route")));
  CU_ASSERT_TRUE(json_is_null(json_object_get(j, "upstream_connect_ms")));
  CU_ASSERT_TRUE(json_is_null(json_object_get(j, "tls_version")));
  CU_ASSERT_TRUE(json_is_null(json_object_get(j, "trace_id")));
  json_decref(j);
}

static void hostile_bytes_stay_inside_their_json_string(void) {
  struct access_record r = sample();
  r.path = "/a\"b\\c\n{\"status\":999}\x01\x7f";
  r.authority = "bad\xff\xfe.host\xc3\xa9"; /* invalid UTF-8, then a valid é */
  json_t *j = as_json(&r);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "path")),
                         "/a\"b\\c\n{\"status\":999}\x01\x7f");
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "authority")),
                         "bad\xef\xbf\xbd\xef\xbf\xbd.host\xc3\xa9");
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "status")), 200);
  json_decref(j);
}

static void logfmt_keeps_old_keys_and_quotes_hostile_values(void) {
  struct access_record r = sample();
  r.path = "/x y=\"z\"\n";
  char buf[8192];
  int n = access_log_format(ACCESS_LOG_LOGFMT, &r, buf, sizeof(buf));
  CU_ASSERT_FATAL(n > 0);
  buf[n] = '\0';
  CU_ASSERT_PTR_NULL(memchr(buf, '\n', (size_t)n - 1));
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, " msg=access client=203.0.113.7 client_port=51234 "));
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, " host=shop.example.test "));
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, " path=\"/x y=\\\"z\\\"\\x0a\" "));
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, " status=200 bytes=345 bytes_in=12 duration_ms=1.523 "));
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, " upstream=127.0.2.1:18080 "));
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, " trace_id=0af7651916cd43dd8448eb211c80319c\n"));
  r.tls_version = NULL;
  r.upstream_connect_us = -1;
  n = access_log_format(ACCESS_LOG_LOGFMT, &r, buf, sizeof(buf));
  buf[n] = '\0';
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, " tls_version=- "));
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, " upstream_connect_ms=- "));
}

static void small_buffer_is_refused(void) {
  struct access_record r = sample();
  char buf[64];
  CU_ASSERT_EQUAL(access_log_format(ACCESS_LOG_JSON, &r, buf, sizeof(buf)), -1);
}

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The writer is stuck on a pipe nobody reads: submits keep returning at
 * once, lines beyond the ring are dropped and counted. */
static void full_ring_drops_and_counts_instead_of_blocking(void) {
  int p[2];
  CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
  struct access_log_opts o = {.fd = p[1], .format = ACCESS_LOG_JSON, .ring_bytes = 65536};
  struct access_log *al;
  char err[256];
  CU_ASSERT_EQUAL_FATAL(access_log_open(&o, &al, err, sizeof(err)), 0);
  struct access_record r = sample();
  int dropped = 0;
  for (int i = 0; i < 5000; i++) dropped += access_log_submit(al, &r) == -ENOSPC;
  CU_ASSERT(dropped > 0);
  CU_ASSERT_EQUAL(access_log_dropped(al), (uint64_t)dropped);
  /* drain the pipe so the writer can finish, then close */
  fcntl(p[0], F_SETFL, O_NONBLOCK);
  char buf[65536];
  uint64_t end = mono_ms() + 10000;
  while (access_log_written(al) + (uint64_t)dropped < 5000 && mono_ms() < end)
    if (read(p[0], buf, sizeof(buf)) <= 0) usleep(1000);
  CU_ASSERT_EQUAL(access_log_written(al) + (uint64_t)dropped, 5000);
  access_log_close(al);
  close(p[0]);
  close(p[1]);
}

static size_t count_lines(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = 0;
  int c;
  while ((c = fgetc(f)) != EOF) n += c == '\n';
  fclose(f);
  return n;
}

static void reopen_writes_to_the_new_file(void) {
  char dir[] = "/tmp/access_log_testXXXXXX";
  CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
  char path[300], moved[300];
  snprintf(path, sizeof(path), "%s/access.log", dir);
  snprintf(moved, sizeof(moved), "%s/access.log.1", dir);
  struct access_log_opts o = {.path = path, .fd = -1, .format = ACCESS_LOG_LOGFMT};
  struct access_log *al;
  char err[256];
  CU_ASSERT_EQUAL_FATAL(access_log_open(&o, &al, err, sizeof(err)), 0);
  struct access_record r = sample();
  access_log_submit(al, &r);
  uint64_t end = mono_ms() + 10000;
  while (count_lines(path) < 1 && mono_ms() < end) usleep(1000);
  CU_ASSERT_EQUAL(rename(path, moved), 0); /* logrotate */
  access_log_reopen(al);
  end = mono_ms() + 10000;
  while (access(path, F_OK) != 0 && mono_ms() < end) usleep(1000);
  access_log_submit(al, &r);
  access_log_submit(al, &r);
  access_log_close(al); /* writes what is queued */
  CU_ASSERT_EQUAL(count_lines(moved), 1);
  CU_ASSERT_EQUAL(count_lines(path), 2);
  unlink(path);
  unlink(moved);
  rmdir(dir);
}

static void unwritable_path_is_an_error(void) {
  struct access_log_opts o = {.path = "/nonexistent-dir/x.log", .fd = -1};
  struct access_log *al = NULL;
  char err[256] = "";
  CU_ASSERT_NOT_EQUAL(access_log_open(&o, &al, err, sizeof(err)), 0);
  CU_ASSERT_PTR_NULL(al);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent-dir/x.log"));
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("access_log", NULL, NULL);
  CU_add_test(s, "json_line_has_the_documented_schema", json_line_has_the_documented_schema);
  CU_add_test(s, "absent_values_are_null", absent_values_are_null);
  CU_add_test(s, "hostile_bytes_stay_inside_their_json_string",
              hostile_bytes_stay_inside_their_json_string);
  CU_add_test(s, "logfmt_keeps_old_keys_and_quotes_hostile_values",
              logfmt_keeps_old_keys_and_quotes_hostile_values);
  CU_add_test(s, "small_buffer_is_refused", small_buffer_is_refused);
  CU_add_test(s, "full_ring_drops_and_counts_instead_of_blocking",
              full_ring_drops_and_counts_instead_of_blocking);
  CU_add_test(s, "reopen_writes_to_the_new_file", reopen_writes_to_the_new_file);
  CU_add_test(s, "unwritable_path_is_an_error", unwritable_path_is_an_error);
}
