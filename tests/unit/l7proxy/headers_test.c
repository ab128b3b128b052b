/* headers: X-Forwarded-*, X-Request-Id, hop-by-hop removal, Server: edge. */
#include "l7proxy/headers.h"

#include <CUnit/CUnit.h>
#include <string.h>

#define H(n, v) \
  { n, sizeof(n) - 1, v, sizeof(v) - 1 }

static char *request_with(const struct h1_header *h, size_t n, char id[65]) {
  static struct buf out;
  buf_free(&out);
  struct headers_request r = {
      .method = "GET",
      .method_len = 3,
      .target = "/a?b=1",
      .target_len = 6,
      .host = "shop.test:8080",
      .host_len = 14,
      .headers = h,
      .n_headers = n,
      .client_addr = "192.0.2.1",
      .proto = "http",
  };
  CU_ASSERT_EQUAL_FATAL(headers_write_request(&out, &r, id), 0);
  buf_append(&out, "", 1);
  return out.data;
}

static void request_line_and_host_come_first(void) {
  char id[65];
  char *s = request_with(NULL, 0, id);
  CU_ASSERT_EQUAL(strncmp(s, "GET /a?b=1 HTTP/1.1\r\nHost: shop.test:8080\r\n", 43), 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "\r\n\r\n"));
  CU_ASSERT_EQUAL(strstr(s, "\r\n\r\n") + 4, s + strlen(s));
}

static void xff_appends_client_to_earlier_hops(void) {
  struct h1_header h[] = {H("X-Forwarded-For", "203.0.113.1"),
                          H("x-forwarded-for", " 198.51.100.2 ")};
  char id[65];
  char *s = request_with(h, 2, id);
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "X-Forwarded-For: 203.0.113.1, 198.51.100.2, 192.0.2.1\r\n"));
  CU_ASSERT_PTR_NULL(strstr(s, "x-forwarded-for"));
}

static void xff_is_the_client_when_absent(void) {
  char id[65];
  char *s = request_with(NULL, 0, id);
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "X-Forwarded-For: 192.0.2.1\r\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "X-Forwarded-Proto: http\r\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "X-Forwarded-Host: shop.test:8080\r\n"));
}

static void client_forwarded_proto_is_replaced(void) {
  struct h1_header h[] = {H("X-Forwarded-Proto", "https"), H("X-Forwarded-Host", "evil")};
  char id[65];
  char *s = request_with(h, 2, id);
  CU_ASSERT_PTR_NULL(strstr(s, "https"));
  CU_ASSERT_PTR_NULL(strstr(s, "evil"));
}

static void request_id_is_generated_when_absent(void) {
  char id[65], id2[65];
  char *s = request_with(NULL, 0, id);
  CU_ASSERT_EQUAL(strlen(id), 32);
  CU_ASSERT_EQUAL(strspn(id, "0123456789abcdef"), 32);
  char line[96];
  snprintf(line, sizeof(line), "X-Request-Id: %s\r\n", id);
  CU_ASSERT_PTR_NOT_NULL(strstr(s, line));
  request_with(NULL, 0, id2);
  CU_ASSERT_STRING_NOT_EQUAL(id, id2);
}

static void sane_request_id_is_preserved(void) {
  struct h1_header h[] = {H("X-Request-Id", "req-42.a_b")};
  char id[65];
  char *s = request_with(h, 1, id);
  CU_ASSERT_STRING_EQUAL(id, "req-42.a_b");
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "X-Request-Id: req-42.a_b\r\n"));
}

static void request_id_with_odd_bytes_is_replaced(void) {
  struct h1_header h[] = {H("X-Request-Id", "a b\"c")};
  char id[65];
  request_with(h, 1, id);
  CU_ASSERT_EQUAL(strlen(id), 32);
}

static void hop_by_hop_headers_are_removed(void) {
  struct h1_header h[] = {H("Connection", "keep-alive, X-Private"),
                          H("Keep-Alive", "300"),
                          H("Proxy-Authorization", "secret"),
                          H("Proxy-Connection", "close"),
                          H("Trailer", "X"),
                          H("Transfer-Encoding", "chunked"),
                          H("Upgrade", "websocket"),
                          H("X-Private", "1"),
                          H("X-Public", "2"),
                          H("Content-Length", "10"),
                          H("TE", "gzip")};
  char id[65];
  char *s = request_with(h, sizeof(h) / sizeof(h[0]), id);
  const char *gone[] = {"Connection", "Keep-Alive",        "Proxy-",
                        "Trailer",    "Transfer-Encoding", "Upgrade",
                        "X-Private",  "Content-Length",    "TE:"};
  for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
    CU_ASSERT_PTR_NULL(strstr(s, gone[i]));
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "X-Public: 2\r\n"));
}

static void te_trailers_survives_as_the_only_te(void) {
  struct h1_header h[] = {H("TE", "gzip, trailers")};
  char id[65];
  char *s = request_with(h, 1, id);
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "TE: trailers\r\n"));
  CU_ASSERT_PTR_NULL(strstr(s, "gzip"));
}

static void framing_is_rewritten_from_the_parse(void) {
  struct buf out = {0};
  char id[65];
  struct headers_request r = {.method = "POST",
                              .method_len = 4,
                              .target = "/",
                              .target_len = 1,
                              .host = "h",
                              .host_len = 1,
                              .client_addr = "::1",
                              .proto = "http",
                              .framing = H1_FRAMING_CHUNKED};
  headers_write_request(&out, &r, id);
  buf_append(&out, "", 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "Transfer-Encoding: chunked\r\n"));
  buf_reset(&out);
  r.framing = H1_FRAMING_LENGTH;
  r.content_length = 42;
  headers_write_request(&out, &r, id);
  buf_append(&out, "", 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "Content-Length: 42\r\n"));
  buf_free(&out);
}

static void upgrade_keeps_upgrade_header(void) {
  struct h1_header h[] = {H("Upgrade", "websocket"), H("Connection", "Upgrade")};
  struct buf out = {0};
  char id[65];
  struct headers_request r = {.method = "GET",
                              .method_len = 3,
                              .target = "/",
                              .target_len = 1,
                              .host = "h",
                              .host_len = 1,
                              .headers = h,
                              .n_headers = 2,
                              .client_addr = "::1",
                              .proto = "http",
                              .upgrade = 1};
  headers_write_request(&out, &r, id);
  buf_append(&out, "", 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "Upgrade: websocket\r\nConnection: upgrade\r\n"));
  buf_free(&out);
}

static void expect_is_stripped_when_answered_locally(void) {
  struct h1_header h[] = {H("Expect", "100-continue")};
  struct buf out = {0};
  char id[65];
  struct headers_request r = {.method = "PUT",
                              .method_len = 3,
                              .target = "/",
                              .target_len = 1,
                              .host = "h",
                              .host_len = 1,
                              .headers = h,
                              .n_headers = 1,
                              .client_addr = "::1",
                              .proto = "http",
                              .strip_expect = 1};
  headers_write_request(&out, &r, id);
  buf_append(&out, "", 1);
  CU_ASSERT_PTR_NULL(strstr(out.data, "Expect"));
  buf_free(&out);
}

static void response_gets_server_edge_and_loses_hop_headers(void) {
  struct h1_header h[] = {H("Server", "nginx"), H("Connection", "keep-alive, X-Hop"),
                          H("X-Hop", "1"),      H("Keep-Alive", "timeout=5"),
                          H("Date", "today"),   H("Content-Length", "5")};
  struct buf out = {0};
  struct headers_response r = {.status = 200,
                               .reason = "OK",
                               .reason_len = 2,
                               .headers = h,
                               .n_headers = 6,
                               .framing = H1_FRAMING_LENGTH,
                               .content_length = 5};
  CU_ASSERT_EQUAL(headers_write_response(&out, &r), 0);
  buf_append(&out, "", 1);
  CU_ASSERT_EQUAL(strncmp(out.data, "HTTP/1.1 200 OK\r\nServer: edge\r\n", 31), 0);
  CU_ASSERT_PTR_NULL(strstr(out.data, "nginx"));
  CU_ASSERT_PTR_NULL(strstr(out.data, "X-Hop"));
  CU_ASSERT_PTR_NULL(strstr(out.data, "Keep-Alive"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "Date: today\r\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "Content-Length: 5\r\n"));
  buf_free(&out);
}

static void response_close_adds_connection_close(void) {
  struct buf out = {0};
  struct headers_response r = {.status = 502, .framing = H1_FRAMING_CHUNKED, .close = 1};
  headers_write_response(&out, &r);
  buf_append(&out, "", 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "HTTP/1.1 502 Bad Gateway\r\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "Connection: close\r\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "Transfer-Encoding: chunked\r\n"));
  buf_free(&out);
}

static void local_response_has_length_and_short_body(void) {
  struct buf out = {0};
  headers_write_local(&out, 404, NULL, 0, NULL);
  buf_append(&out, "", 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "HTTP/1.1 404 Not Found\r\nServer: edge\r\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "Content-Length: 14\r\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "\r\n\r\n404 Not Found\n"));
  buf_reset(&out);
  headers_write_local(&out, 308, "https://a/b", 1, NULL);
  buf_append(&out, "", 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "Location: https://a/b\r\nConnection: close\r\n"));
  buf_free(&out);
}

static void token_lists_match_whole_tokens_any_case(void) {
  CU_ASSERT_TRUE(headers_list_has_token("keep-alive, Close", 17, "close"));
  CU_ASSERT_FALSE(headers_list_has_token("closed", 6, "close"));
  CU_ASSERT_TRUE(headers_list_has_token(" ,upgrade ,", 11, "upgrade"));
  CU_ASSERT_FALSE(headers_list_has_token("", 0, "close"));
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("headers", NULL, NULL);
  CU_add_test(s, "request_line_and_host_come_first", request_line_and_host_come_first);
  CU_add_test(s, "xff_appends_client_to_earlier_hops", xff_appends_client_to_earlier_hops);
  CU_add_test(s, "xff_is_the_client_when_absent", xff_is_the_client_when_absent);
  CU_add_test(s, "client_forwarded_proto_is_replaced", client_forwarded_proto_is_replaced);
  CU_add_test(s, "request_id_is_generated_when_absent", request_id_is_generated_when_absent);
  CU_add_test(s, "sane_request_id_is_preserved", sane_request_id_is_preserved);
  CU_add_test(s, "request_id_with_odd_bytes_is_replaced", request_id_with_odd_bytes_is_replaced);
  CU_add_test(s, "hop_by_hop_headers_are_removed", hop_by_hop_headers_are_removed);
  CU_add_test(s, "te_trailers_survives_as_the_only_te", te_trailers_survives_as_the_only_te);
  CU_add_test(s, "framing_is_rewritten_from_the_parse", framing_is_rewritten_from_the_parse);
  CU_add_test(s, "upgrade_keeps_upgrade_header", upgrade_keeps_upgrade_header);
  CU_add_test(s, "expect_is_stripped_when_answered_locally",
              expect_is_stripped_when_answered_locally);
  CU_add_test(s, "response_gets_server_edge_and_loses_hop_headers",
              response_gets_server_edge_and_loses_hop_headers);
  CU_add_test(s, "response_close_adds_connection_close", response_close_adds_connection_close);
  CU_add_test(s, "local_response_has_length_and_short_body",
              local_response_has_length_and_short_body);
  CU_add_test(s, "token_lists_match_whole_tokens_any_case",
              token_lists_match_whole_tokens_any_case);
}
