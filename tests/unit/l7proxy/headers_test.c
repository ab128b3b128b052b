/* headers: the request and response policy over messages (X-Forwarded-*,
 * X-Request-Id, hop-by-hop removal, server: edge) and the HTTP/1.1 head
 * writers of the h1 codecs. */
#include "l7proxy/headers.h"

#include <CUnit/CUnit.h>
#include <string.h>

#include "l7proxy/message.h"

#define H(n, v) \
  { n, sizeof(n) - 1, v, sizeof(v) - 1 }

static struct msg_arena arena;

/* The request as the codecs give it: names lower case. */
static struct msg_head client_request(const char *method, struct h1_header *h, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char *name = msg_arena_strdup(&arena, h[i].name, h[i].name_len);
    for (char *c = name; *c; c++)
      if (*c >= 'A' && *c <= 'Z') *c = (char)(*c + 32);
    h[i].name = name;
  }
  struct msg_head m = {.method = msg_method_of(method, strlen(method)),
                       .method_str = method,
                       .method_len = strlen(method),
                       .scheme = "http",
                       .authority = "shop.test:8080",
                       .authority_len = 14,
                       .target = "/a?b=1",
                       .target_len = 6,
                       .path_len = 2,
                       .headers = h,
                       .n_headers = n,
                       .content_length = -1,
                       .end_stream = 1};
  return m;
}

/* The upstream request as HTTP/1.1 text (NUL-terminated). */
static char *upstream(const struct msg_head *in, int upgrade, char id[65]) {
  static struct buf out;
  buf_free(&out);
  struct msg_head up;
  struct headers_request r = {.in = in,
                              .target = in->target,
                              .target_len = in->target_len,
                              .client_addr = "192.0.2.1",
                              .proto = "http",
                              .upgrade = upgrade};
  CU_ASSERT_EQUAL_FATAL(headers_upstream_request(&r, &up, &arena, id), 0);
  CU_ASSERT_EQUAL_FATAL(headers_h1_request(&out, &up), 0);
  buf_append(&out, "", 1);
  return out.data;
}

static char *request_with(struct h1_header *h, size_t n, char id[65]) {
  struct msg_head m = client_request("GET", h, n);
  return upstream(&m, 0, id);
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
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "x-forwarded-for: 203.0.113.1, 198.51.100.2, 192.0.2.1\r\n"));
  CU_ASSERT_PTR_NULL(strstr(s, "198.51.100.2 ,"));
}

static void xff_is_the_client_when_absent(void) {
  char id[65];
  char *s = request_with(NULL, 0, id);
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "x-forwarded-for: 192.0.2.1\r\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "x-forwarded-proto: http\r\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "x-forwarded-host: shop.test:8080\r\n"));
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
  snprintf(line, sizeof(line), "x-request-id: %s\r\n", id);
  CU_ASSERT_PTR_NOT_NULL(strstr(s, line));
  request_with(NULL, 0, id2);
  CU_ASSERT_STRING_NOT_EQUAL(id, id2);
}

static void sane_request_id_is_preserved(void) {
  struct h1_header h[] = {H("X-Request-Id", "req-42.a_b")};
  char id[65];
  char *s = request_with(h, 1, id);
  CU_ASSERT_STRING_EQUAL(id, "req-42.a_b");
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "x-request-id: req-42.a_b\r\n"));
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
  const char *gone[] = {"onnection", "keep-alive", "proxy-",        "trailer", "ransfer-encoding",
                        "upgrade",   "x-private",  "ontent-length", "te:"};
  for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
    CU_ASSERT_PTR_NULL(strstr(s, gone[i]));
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "x-public: 2\r\n"));
}

static void te_trailers_survives_as_the_only_te(void) {
  struct h1_header h[] = {H("TE", "gzip, trailers")};
  char id[65];
  char *s = request_with(h, 1, id);
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "te: trailers\r\n"));
  CU_ASSERT_PTR_NULL(strstr(s, "gzip"));
}

static void framing_comes_from_the_message(void) {
  char id[65];
  struct msg_head m = client_request("POST", NULL, 0);
  m.end_stream = 0;
  CU_ASSERT_PTR_NOT_NULL(strstr(upstream(&m, 0, id), "Transfer-Encoding: chunked\r\n"));
  m.content_length = 42;
  char *s = upstream(&m, 0, id);
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "Content-Length: 42\r\n"));
  CU_ASSERT_PTR_NULL(strstr(s, "chunked"));
  m.content_length = 0; /* a peer must see "Content-Length: 0" */
  CU_ASSERT_PTR_NOT_NULL(strstr(upstream(&m, 0, id), "Content-Length: 0\r\n"));
  m.content_length = -1;
  m.end_stream = 1;
  s = upstream(&m, 0, id);
  CU_ASSERT_PTR_NULL(strstr(s, "Content-Length"));
  CU_ASSERT_PTR_NULL(strstr(s, "chunked"));
}

static void upgrade_is_kept_only_when_forwarded(void) {
  struct h1_header h[] = {H("Upgrade", "websocket"), H("Connection", "Upgrade")};
  char id[65];
  struct msg_head m = client_request("GET", h, 2);
  m.flags |= MSG_F_UPGRADE;
  CU_ASSERT_PTR_NOT_NULL(
      strstr(upstream(&m, 1, id), "upgrade: websocket\r\nConnection: upgrade\r\n"));
  char *s = upstream(&m, 0, id);
  CU_ASSERT_PTR_NULL(strstr(s, "pgrade"));
}

static void expect_and_http2_settings_are_never_forwarded(void) {
  struct h1_header h[] = {H("Expect", "100-continue"), H("HTTP2-Settings", "AAMAAABkAAQAAP__")};
  char id[65];
  char *s = request_with(h, 2, id);
  CU_ASSERT_PTR_NULL(strstr(s, "xpect"));
  CU_ASSERT_PTR_NULL(strstr(s, "ettings"));
}

static void grpc_requests_get_te_trailers(void) {
  char id[65];
  struct msg_head m = client_request("POST", NULL, 0);
  m.flags |= MSG_F_GRPC;
  CU_ASSERT_PTR_NOT_NULL(strstr(upstream(&m, 0, id), "te: trailers\r\n"));
}

/* The response as the h1 codec writes it (NUL-terminated). */
static char *downstream(struct h1_header *h, size_t n, int status,
                        const struct headers_h1_framing *f) {
  static struct buf out;
  buf_free(&out);
  struct msg_head in = client_request("GET", h, n), resp;
  in.status = status;
  CU_ASSERT_EQUAL_FATAL(headers_downstream_response(&in, 0, &resp, &arena), 0);
  CU_ASSERT_EQUAL_FATAL(headers_h1_response(&out, &resp, f), 0);
  buf_append(&out, "", 1);
  return out.data;
}

static void response_gets_server_edge_and_loses_hop_headers(void) {
  struct h1_header h[] = {H("Server", "nginx"), H("Connection", "keep-alive, X-Hop"),
                          H("X-Hop", "1"),      H("Keep-Alive", "timeout=5"),
                          H("Date", "today"),   H("Content-Length", "5")};
  struct headers_h1_framing f = {.framing = H1_FRAMING_LENGTH, .content_length = 5};
  char *s = downstream(h, 6, 200, &f);
  CU_ASSERT_EQUAL(strncmp(s, "HTTP/1.1 200 OK\r\nserver: edge\r\n", 31), 0);
  CU_ASSERT_PTR_NULL(strstr(s, "nginx"));
  CU_ASSERT_PTR_NULL(strstr(s, "x-hop"));
  CU_ASSERT_PTR_NULL(strstr(s, "keep-alive"));
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "date: today\r\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "Content-Length: 5\r\n"));
}

static void response_close_adds_connection_close(void) {
  struct headers_h1_framing f = {.framing = H1_FRAMING_CHUNKED, .close = 1};
  char *s = downstream(NULL, 0, 502, &f);
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "HTTP/1.1 502 Bad Gateway\r\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "Connection: close\r\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "Transfer-Encoding: chunked\r\n"));
}

static void response_transfer_codings_are_kept_before_chunked(void) {
  static struct buf out;
  buf_free(&out);
  struct msg_head h = {.status = 200, .te_codings = "gzip", .te_codings_len = 4};
  struct headers_h1_framing f = {.framing = H1_FRAMING_CHUNKED};
  CU_ASSERT_EQUAL(headers_h1_response(&out, &h, &f), 0);
  buf_append(&out, "", 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "Transfer-Encoding: gzip, chunked\r\n"));
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
  CU_add_test(s, "framing_comes_from_the_message", framing_comes_from_the_message);
  CU_add_test(s, "upgrade_is_kept_only_when_forwarded", upgrade_is_kept_only_when_forwarded);
  CU_add_test(s, "expect_and_http2_settings_are_never_forwarded",
              expect_and_http2_settings_are_never_forwarded);
  CU_add_test(s, "grpc_requests_get_te_trailers", grpc_requests_get_te_trailers);
  CU_add_test(s, "response_transfer_codings_are_kept_before_chunked",
              response_transfer_codings_are_kept_before_chunked);
  CU_add_test(s, "response_gets_server_edge_and_loses_hop_headers",
              response_gets_server_edge_and_loses_hop_headers);
  CU_add_test(s, "response_close_adds_connection_close", response_close_adds_connection_close);
  CU_add_test(s, "local_response_has_length_and_short_body",
              local_response_has_length_and_short_body);
  CU_add_test(s, "token_lists_match_whole_tokens_any_case",
              token_lists_match_whole_tokens_any_case);
}
