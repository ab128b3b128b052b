/*
 * admin: the endpoint on a real libuv loop bound to 127.0.0.1 port 0.
 * The loop runs on its own thread; the test thread talks raw HTTP/1.1 over
 * blocking sockets with a receive timeout, so a hung server fails the
 * test instead of hanging it.
 */
#include "common/admin.h"

#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/metrics.h"

static uv_loop_t loop;
static uv_async_t stop_async;
static pthread_t loop_thread;
static struct admin_server *server;
static struct metrics_registry *registry;
static int port;

static void echo_handler(void *ud, const char *path, const char *query,
                         struct admin_response *resp) {
  (void)ud;
  char name[64];
  if (admin_query_get(query, "name", name, sizeof(name)) != 0) {
    admin_reply(resp, 400, NULL, "missing name\n");
    return;
  }
  char text[128];
  snprintf(text, sizeof(text), "hello %s at %s\n", name, path);
  admin_reply(resp, 200, "text/plain", text);
}

static void on_stop(uv_async_t *a) {
  admin_close(server, NULL, NULL);
  uv_close((uv_handle_t *)a, NULL);
}

static void *run_loop(void *arg) {
  (void)arg;
  uv_run(&loop, UV_RUN_DEFAULT);
  return NULL;
}

static int suite_init(void) {
  char err[256];
  if (uv_loop_init(&loop) != 0) return -1;
  registry = metrics_registry_new();
  metrics_counter_add(metrics_counter(registry, "edge_test_total", "Test counter.", ""), 7);
  if (admin_start(&loop, "127.0.0.1:0", registry, &server, err, sizeof(err)) != 0) {
    fprintf(stderr, "admin_start: %s\n", err);
    return -1;
  }
  port = admin_port(server);
  if (port <= 0) return -1;
  if (admin_handle(server, "/echo", echo_handler, NULL) != 0) return -1;
  uv_async_init(&loop, &stop_async, on_stop);
  return pthread_create(&loop_thread, NULL, run_loop, NULL) == 0 ? 0 : -1;
}

static int suite_cleanup(void) {
  uv_async_send(&stop_async);
  pthread_join(loop_thread, NULL);
  int rc = uv_loop_close(&loop); /* UV_EBUSY if admin leaked a handle */
  metrics_registry_free(registry);
  return rc == 0 ? 0 : -1;
}

/* Sends raw bytes, reads until EOF. Returns the HTTP status or -1. */
static int http_raw(const char *req, size_t reqlen, char *resp, size_t resplen) {
  resp[0] = '\0';
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct timeval tv = {.tv_sec = 10};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
    close(fd);
    return -1;
  }
  for (size_t off = 0; off < reqlen;) {
    ssize_t n = send(fd, req + off, reqlen - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += (size_t)n;
  }
  size_t got = 0;
  for (;;) {
    ssize_t n = recv(fd, resp + got, resplen - 1 - got, 0);
    if (n <= 0) break;
    got += (size_t)n;
    if (got == resplen - 1) break;
  }
  resp[got] = '\0';
  close(fd);
  int status = -1;
  if (sscanf(resp, "HTTP/1.1 %d ", &status) != 1) return -1;
  return status;
}

static int http_get(const char *target, char *resp, size_t resplen) {
  char req[512];
  int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", target);
  return http_raw(req, (size_t)n, resp, resplen);
}

static const char *body_of(const char *resp) {
  const char *p = strstr(resp, "\r\n\r\n");
  return p ? p + 4 : "";
}

static char resp[16384];

static void healthz_answers_ok(void) {
  CU_ASSERT_EQUAL(http_get("/healthz", resp, sizeof(resp)), 200);
  CU_ASSERT_STRING_EQUAL(body_of(resp), "ok\n");
  CU_ASSERT_PTR_NOT_NULL(strstr(resp, "Connection: close\r\n"));
}

static void metrics_serves_the_registry_as_prometheus_text(void) {
  CU_ASSERT_EQUAL(http_get("/metrics", resp, sizeof(resp)), 200);
  CU_ASSERT_PTR_NOT_NULL(strstr(resp, "Content-Type: text/plain; version=0.0.4"));
  CU_ASSERT_STRING_EQUAL(body_of(resp),
                         "# HELP edge_test_total Test counter.\n"
                         "# TYPE edge_test_total counter\n"
                         "edge_test_total 7\n");
}

static void readyz_is_503_until_ready_and_again_when_draining(void) {
  CU_ASSERT_EQUAL(http_get("/readyz", resp, sizeof(resp)), 503);
  CU_ASSERT_STRING_EQUAL(body_of(resp), "not ready\n");
  admin_set_ready(server, 1);
  CU_ASSERT_EQUAL(http_get("/readyz", resp, sizeof(resp)), 200);
  admin_set_draining(server, 1);
  CU_ASSERT_EQUAL(http_get("/readyz", resp, sizeof(resp)), 503);
  CU_ASSERT_STRING_EQUAL(body_of(resp), "draining\n");
  admin_set_draining(server, 0);
  CU_ASSERT_EQUAL(http_get("/readyz", resp, sizeof(resp)), 200);
}

static void custom_handler_gets_path_and_decoded_query(void) {
  CU_ASSERT_EQUAL(http_get("/echo?x=1&name=a%20b+c", resp, sizeof(resp)), 200);
  CU_ASSERT_STRING_EQUAL(body_of(resp), "hello a b c at /echo\n");
  CU_ASSERT_EQUAL(http_get("/echo", resp, sizeof(resp)), 400);
}

static void unknown_path_is_404(void) {
  CU_ASSERT_EQUAL(http_get("/nope", resp, sizeof(resp)), 404);
  CU_ASSERT_EQUAL(http_get("/healthz/extra", resp, sizeof(resp)), 404);
}

static void methods_other_than_get_and_head_are_405(void) {
  const char *req = "POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n";
  CU_ASSERT_EQUAL(http_raw(req, strlen(req), resp, sizeof(resp)), 405);
  CU_ASSERT_PTR_NOT_NULL(strstr(resp, "Allow: GET, HEAD\r\n"));
}

static void head_sends_headers_without_body(void) {
  const char *req = "HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
  CU_ASSERT_EQUAL(http_raw(req, strlen(req), resp, sizeof(resp)), 200);
  CU_ASSERT_PTR_NOT_NULL(strstr(resp, "Content-Length: 3\r\n"));
  CU_ASSERT_STRING_EQUAL(body_of(resp), "");
}

static void bad_request_line_is_400(void) {
  static const char *const bad[] = {
      "GARBAGE\r\n\r\n",
      "GET  /healthz HTTP/1.1\r\n\r\n",
      "GET /healthz HTTP/2.0\r\n\r\n",
      "GET healthz HTTP/1.1\r\n\r\n",
      "G(T /healthz HTTP/1.1\r\n\r\n",
      "GET /healthz HTTP/1.1 \r\n\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    CU_ASSERT_EQUAL(http_raw(bad[i], strlen(bad[i]), resp, sizeof(resp)), 400);
}

static void malformed_header_line_is_400(void) {
  const char *req = "GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n";
  CU_ASSERT_EQUAL(http_raw(req, strlen(req), resp, sizeof(resp)), 400);
  req = "GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n";
  CU_ASSERT_EQUAL(http_raw(req, strlen(req), resp, sizeof(resp)), 400);
}

static void request_head_over_8k_is_431(void) {
  char *req = malloc(8192);
  CU_ASSERT_PTR_NOT_NULL_FATAL(req);
  memcpy(req, "GET /healthz HTTP/1.1\r\nX-Big: ", 30);
  memset(req + 30, 'a', 8192 - 30);
  CU_ASSERT_EQUAL(http_raw(req, 8192, resp, sizeof(resp)), 431);
  free(req);
}

static void bind_error_reports_the_reason(void) {
  uv_loop_t l2;
  CU_ASSERT_EQUAL_FATAL(uv_loop_init(&l2), 0);
  char listen[64], err[256];
  snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
  struct admin_server *a2 = NULL;
  CU_ASSERT_NOT_EQUAL(admin_start(&l2, listen, NULL, &a2, err, sizeof(err)), 0);
  CU_ASSERT_PTR_NULL(a2);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "address already in use"));
  CU_ASSERT_NOT_EQUAL(admin_start(&l2, "not-an-address", NULL, &a2, err, sizeof(err)), 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "bad listen address"));
  uv_run(&l2, UV_RUN_DEFAULT); /* finishes closing the failed listener */
  CU_ASSERT_EQUAL(uv_loop_close(&l2), 0);
}

static void query_get_decodes_and_reports_missing_or_bad_values(void) {
  char out[16];
  CU_ASSERT_EQUAL(admin_query_get("a=1&src=10.0.0.1%3A80&b", "src", out, sizeof(out)), 0);
  CU_ASSERT_STRING_EQUAL(out, "10.0.0.1:80");
  CU_ASSERT_EQUAL(admin_query_get("a=1&b", "b", out, sizeof(out)), 0);
  CU_ASSERT_STRING_EQUAL(out, "");
  CU_ASSERT_EQUAL(admin_query_get("aa=1", "a", out, sizeof(out)), -1);
  CU_ASSERT_EQUAL(admin_query_get("", "a", out, sizeof(out)), -1);
  CU_ASSERT_EQUAL(admin_query_get("a=%zz", "a", out, sizeof(out)), -1);
  CU_ASSERT_EQUAL(admin_query_get("a=%4", "a", out, sizeof(out)), -1);
  CU_ASSERT_EQUAL(admin_query_get("a=%00", "a", out, sizeof(out)), -1);
  CU_ASSERT_EQUAL(admin_query_get("a=0123456789abcdef", "a", out, sizeof(out)), -1);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("admin", suite_init, suite_cleanup);
  CU_add_test(s, "healthz_answers_ok", healthz_answers_ok);
  CU_add_test(s, "metrics_serves_the_registry_as_prometheus_text",
              metrics_serves_the_registry_as_prometheus_text);
  CU_add_test(s, "readyz_is_503_until_ready_and_again_when_draining",
              readyz_is_503_until_ready_and_again_when_draining);
  CU_add_test(s, "custom_handler_gets_path_and_decoded_query",
              custom_handler_gets_path_and_decoded_query);
  CU_add_test(s, "unknown_path_is_404", unknown_path_is_404);
  CU_add_test(s, "methods_other_than_get_and_head_are_405",
              methods_other_than_get_and_head_are_405);
  CU_add_test(s, "head_sends_headers_without_body", head_sends_headers_without_body);
  CU_add_test(s, "bad_request_line_is_400", bad_request_line_is_400);
  CU_add_test(s, "malformed_header_line_is_400", malformed_header_line_is_400);
  CU_add_test(s, "request_head_over_8k_is_431", request_head_over_8k_is_431);
  CU_add_test(s, "bind_error_reports_the_reason", bind_error_reports_the_reason);
  CU_add_test(s, "query_get_decodes_and_reports_missing_or_bad_values",
              query_get_decodes_and_reports_missing_or_bad_values);
}
