/* http1: request/response parsing, limits and smuggling defences. */
#include "l7proxy/http1.h"

#include <CUnit/CUnit.h>
#include <stdio.h>
#include <string.h>

struct rec {
  int heads, completes;
  int reject_with; /* on_head returns this */
  int skip_body;
  char host[128], target[256];
  size_t path_len;
  int status, upgrade, keep_alive, expect;
  enum h1_framing framing;
  uint64_t content_length;
  size_t n_headers;
  char body[4096];
  size_t body_len;
  char h0name[64], h0value[128];
};

static int on_head(void *ud, const struct h1_message *m) {
  struct rec *r = ud;
  r->heads++;
  snprintf(r->host, sizeof(r->host), "%.*s", (int)m->host_len, m->host ? m->host : "");
  snprintf(r->target, sizeof(r->target), "%.*s", (int)m->target_len, m->target ? m->target : "");
  r->path_len = m->path_len;
  r->status = m->status;
  r->upgrade = m->upgrade;
  r->keep_alive = m->keep_alive;
  r->expect = m->expect_continue;
  r->framing = m->framing;
  r->content_length = m->content_length;
  r->n_headers = m->n_headers;
  if (m->n_headers) {
    snprintf(r->h0name, sizeof(r->h0name), "%.*s", (int)m->headers[0].name_len, m->headers[0].name);
    snprintf(r->h0value, sizeof(r->h0value), "%.*s", (int)m->headers[0].value_len,
             m->headers[0].value);
  }
  if (r->reject_with) return r->reject_with;
  return r->skip_body ? H1_SKIP_BODY : 0;
}

static int on_body(void *ud, const char *p, size_t n) {
  struct rec *r = ud;
  if (r->body_len + n < sizeof(r->body)) memcpy(r->body + r->body_len, p, n);
  r->body_len += n;
  return 0;
}

static void on_complete(void *ud) {
  ((struct rec *)ud)->completes++;
}

static const struct h1_callbacks cbs = {on_head, on_body, on_complete};

static struct l7_limits small_limits(void) {
  struct l7_limits l = L7_LIMITS_DEFAULT;
  l.max_uri_bytes = 64;
  l.max_header_bytes = 512;
  l.max_headers = 8;
  l.max_body_bytes = 100;
  return l;
}

/* Feeds the whole string (in pieces of `step` bytes, 0 = at once) and
 * returns the last result; *status gets the error status. */
static enum h1_result parse(enum h1_kind kind, const char *s, size_t step, struct rec *r,
                            int *status) {
  static struct l7_limits lim;
  lim = small_limits();
  struct h1_parser p;
  CU_ASSERT_EQUAL_FATAL(h1_parser_init(&p, kind, &lim, &cbs, r), 0);
  size_t len = strlen(s), off = 0;
  enum h1_result res = H1_MORE;
  while (off < len) {
    size_t n = step && len - off > step ? step : len - off;
    size_t used = 0;
    res = h1_parser_feed(&p, s + off, n, &used);
    off += used;
    if (res == H1_MESSAGE_END) {
      h1_parser_resume(&p);
      continue;
    }
    if (res != H1_MORE) break;
  }
  *status = h1_parser_error_status(&p);
  h1_parser_free(&p);
  return res;
}

static int reject_status(const char *req) {
  struct rec r = {0};
  int st = 0;
  enum h1_result res = parse(H1_REQUEST, req, 0, &r, &st);
  return res == H1_ERROR ? st : 0;
}

static void simple_request_reports_head_and_completion(void) {
  struct rec r = {0};
  int st;
  parse(H1_REQUEST, "GET /a/b?x=1 HTTP/1.1\r\nHost: Shop.test:81\r\nX-A:  v  \r\n\r\n", 0, &r, &st);
  CU_ASSERT_EQUAL(r.heads, 1);
  CU_ASSERT_EQUAL(r.completes, 1);
  CU_ASSERT_STRING_EQUAL(r.host, "Shop.test:81");
  CU_ASSERT_STRING_EQUAL(r.target, "/a/b?x=1");
  CU_ASSERT_EQUAL(r.path_len, 4);
  CU_ASSERT_TRUE(r.keep_alive);
  CU_ASSERT_EQUAL(r.n_headers, 2);
  CU_ASSERT_EQUAL(r.framing, H1_FRAMING_NONE);
}

static void byte_by_byte_input_gives_the_same_head(void) {
  struct rec r = {0};
  int st;
  parse(H1_REQUEST,
        "POST /p HTTP/1.1\r\nHost: h\r\nX-Long-Name: some value\r\nContent-Length: 5\r\n\r\nhello",
        1, &r, &st);
  CU_ASSERT_EQUAL(st, 0);
  CU_ASSERT_EQUAL(r.completes, 1);
  CU_ASSERT_STRING_EQUAL(r.target, "/p");
  CU_ASSERT_EQUAL(r.n_headers, 3);
  CU_ASSERT_STRING_EQUAL(r.h0name, "host"); /* names are lower case from the parser on */
  CU_ASSERT_EQUAL(r.body_len, 5);
  CU_ASSERT_EQUAL(memcmp(r.body, "hello", 5), 0);
}

static void parser_pauses_after_each_pipelined_request(void) {
  struct l7_limits lim = small_limits();
  struct rec r = {0};
  struct h1_parser p;
  h1_parser_init(&p, H1_REQUEST, &lim, &cbs, &r);
  const char *s = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n";
  size_t used;
  CU_ASSERT_EQUAL(h1_parser_feed(&p, s, strlen(s), &used), H1_MESSAGE_END);
  CU_ASSERT_EQUAL(r.completes, 1);
  CU_ASSERT_EQUAL(used, strlen(s) / 2);
  h1_parser_resume(&p);
  size_t used2;
  CU_ASSERT_EQUAL(h1_parser_feed(&p, s + used, strlen(s) - used, &used2), H1_MESSAGE_END);
  CU_ASSERT_EQUAL(r.completes, 2);
  CU_ASSERT_STRING_EQUAL(r.target, "/2");
  h1_parser_free(&p);
}

static void chunked_body_is_decoded(void) {
  struct rec r = {0};
  int st;
  parse(H1_REQUEST,
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0"
        "\r\n\r\n",
        0, &r, &st);
  CU_ASSERT_EQUAL(r.framing, H1_FRAMING_CHUNKED);
  CU_ASSERT_EQUAL(r.body_len, 5);
  CU_ASSERT_EQUAL(memcmp(r.body, "abcde", 5), 0);
  CU_ASSERT_EQUAL(r.completes, 1);
}

static void absolute_form_gives_host_and_origin_target(void) {
  struct rec r = {0};
  int st;
  parse(H1_REQUEST, "GET http://a.test:8080/x?y HTTP/1.1\r\nHost: other\r\n\r\n", 0, &r, &st);
  CU_ASSERT_EQUAL(st, 0);
  CU_ASSERT_STRING_EQUAL(r.host, "a.test:8080");
  CU_ASSERT_STRING_EQUAL(r.target, "/x?y");
  struct rec r2 = {0};
  parse(H1_REQUEST, "GET http://a.test HTTP/1.1\r\nHost: a.test\r\n\r\n", 0, &r2, &st);
  CU_ASSERT_STRING_EQUAL(r2.target, "/");
}

static void http10_without_host_is_accepted_and_not_keep_alive(void) {
  struct rec r = {0};
  int st;
  parse(H1_REQUEST, "GET / HTTP/1.0\r\n\r\n", 0, &r, &st);
  CU_ASSERT_EQUAL(st, 0);
  CU_ASSERT_EQUAL(r.heads, 1);
  CU_ASSERT_FALSE(r.keep_alive);
}

static void upgrade_request_stops_at_tunnel_bytes(void) {
  const char *head =
      "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
  const char *tunnel = "RAW\r\n\x81\x05hello"; /* not HTTP: must not be parsed */
  char in[256];
  snprintf(in, sizeof(in), "%s%s", head, tunnel);
  struct l7_limits lim = small_limits();
  struct rec r = {0};
  struct h1_parser p;
  CU_ASSERT_EQUAL_FATAL(h1_parser_init(&p, H1_REQUEST, &lim, &cbs, &r), 0);
  size_t used = 0;
  CU_ASSERT_EQUAL(h1_parser_feed(&p, in, strlen(in), &used), H1_UPGRADE);
  CU_ASSERT_TRUE(r.upgrade);
  CU_ASSERT_EQUAL(r.heads, 1);
  CU_ASSERT_STRING_EQUAL(r.target, "/ws");
  /* the parser stopped right after the head: every tunnel byte is left
   * for the caller, none was taken as body */
  CU_ASSERT_EQUAL(used, strlen(head));
  CU_ASSERT_EQUAL(memcmp(in + used, tunnel, strlen(tunnel)), 0);
  CU_ASSERT_EQUAL(r.body_len, 0);
  h1_parser_free(&p);
}

static void expect_100_continue_is_reported(void) {
  struct rec r = {0};
  int st;
  parse(H1_REQUEST,
        "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx", 0, &r,
        &st);
  CU_ASSERT_TRUE(r.expect);
  CU_ASSERT_EQUAL(reject_status("PUT / HTTP/1.1\r\nHost: h\r\nExpect: magic\r\n\r\n"), 417);
}

static void content_length_with_transfer_encoding_is_400(void) {
  CU_ASSERT_EQUAL(reject_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
                  400);
  CU_ASSERT_EQUAL(reject_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                                "Content-Length: 3\r\n\r\n0\r\n\r\n"),
                  400);
}

static void duplicate_content_length_is_400(void) {
  CU_ASSERT_EQUAL(reject_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                                "Content-Length: 3\r\n\r\nabc"),
                  400);
}

static void transfer_encoding_not_ending_in_chunked_is_400(void) {
  CU_ASSERT_EQUAL(reject_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip"
                                "\r\n\r\n0\r\n\r\n"),
                  400);
  CU_ASSERT_EQUAL(reject_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\nabc"),
                  400);
}

static void obs_fold_is_400(void) {
  CU_ASSERT_EQUAL(reject_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n"), 400);
  CU_ASSERT_EQUAL(reject_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n"), 400);
}

static void obs_fold_split_across_reads_is_400(void) {
  const char *req = "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\nY: c\r\n\r\n";
  for (size_t step = 1; step < 12; step++) {
    struct rec r = {0};
    int st = 0;
    CU_ASSERT_EQUAL(parse(H1_REQUEST, req, step, &r, &st), H1_ERROR);
    CU_ASSERT_EQUAL(st, 400);
  }
}

static void bare_lf_in_head_is_400(void) {
  CU_ASSERT_EQUAL(reject_status("GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n"), 400);
  CU_ASSERT_EQUAL(reject_status("GET / HTTP/1.1\nHost: h\n\n"), 400);
}

static void bare_lf_in_chunk_size_is_400(void) {
  CU_ASSERT_EQUAL(reject_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                                "3\nabc\r\n0\r\n\r\n"),
                  400);
}

static void whitespace_before_colon_is_400(void) {
  CU_ASSERT_EQUAL(reject_status("GET / HTTP/1.1\r\nHost : h\r\n\r\n"), 400);
}

static void missing_or_repeated_host_is_400(void) {
  CU_ASSERT_EQUAL(reject_status("GET / HTTP/1.1\r\n\r\n"), 400);
  CU_ASSERT_EQUAL(reject_status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
}

static void connect_method_is_405(void) {
  CU_ASSERT_EQUAL(reject_status("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"), 405);
}

static void long_target_is_414(void) {
  char req[256];
  snprintf(req, sizeof(req), "GET /%0100d HTTP/1.1\r\nHost: h\r\n\r\n", 0);
  CU_ASSERT_EQUAL(reject_status(req), 414);
}

static void too_many_headers_is_431(void) {
  CU_ASSERT_EQUAL(reject_status("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n"
                                "E: 1\r\nF: 1\r\nG: 1\r\nH: 1\r\n\r\n"),
                  431);
}

static void too_many_header_bytes_is_431(void) {
  char req[1024];
  snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: h\r\nX: %0600d\r\n\r\n", 0);
  CU_ASSERT_EQUAL(reject_status(req), 431);
}

static void body_over_limit_is_413(void) {
  CU_ASSERT_EQUAL(reject_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n"), 413);
  char req[512];
  char chunk[80];
  memset(chunk, 'z', 60);
  chunk[60] = 0;
  snprintf(req, sizeof(req),
           "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3c\r\n%s\r\n3c\r\n%s"
           "\r\n0\r\n\r\n",
           chunk, chunk);
  CU_ASSERT_EQUAL(reject_status(req), 413);
}

static void on_head_can_reject_with_a_status(void) {
  struct rec r = {.reject_with = 413};
  int st;
  CU_ASSERT_EQUAL(
      parse(H1_REQUEST, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx", 0, &r, &st),
      H1_ERROR);
  CU_ASSERT_EQUAL(st, 413);
}

static void garbage_is_400(void) {
  CU_ASSERT_EQUAL(reject_status("\x01\x02\x03 / HTTP/1.1\r\n\r\n"), 400);
}

static void versions_other_than_http1_are_505(void) {
  CU_ASSERT_EQUAL(reject_status("GET / HTTP/9.9\r\nHost: h\r\n\r\n"), 505);
  CU_ASSERT_EQUAL(reject_status("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505);
  CU_ASSERT_EQUAL(reject_status("GET / HTTP/3.0\r\nHost: h\r\n\r\n"), 505);
}

static void request_transfer_codings_other_than_one_final_chunked_are_refused(void) {
  CU_ASSERT_EQUAL(reject_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked"
                                "\r\n\r\n0\r\n\r\n"),
                  501);
  CU_ASSERT_EQUAL(reject_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
                  501);
  CU_ASSERT_EQUAL(reject_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip"
                                "\r\n\r\n0\r\n\r\n"),
                  400);
  CU_ASSERT_EQUAL(reject_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, "
                                "chunked\r\n\r\n0\r\n\r\n"),
                  400);
}

static void no_content_response_has_no_body_whatever_its_framing_says(void) {
  struct rec r = {0};
  int st;
  parse(H1_RESPONSE, "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", 0, &r, &st);
  CU_ASSERT_EQUAL(r.completes, 1);
  memset(&r, 0, sizeof(r));
  parse(H1_RESPONSE, "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", 0, &r, &st);
  CU_ASSERT_EQUAL(r.completes, 1);
}

static void response_with_length_and_reason_is_parsed(void) {
  struct rec r = {0};
  int st;
  parse(H1_RESPONSE, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", 0, &r, &st);
  CU_ASSERT_EQUAL(r.status, 201);
  CU_ASSERT_EQUAL(r.framing, H1_FRAMING_LENGTH);
  CU_ASSERT_EQUAL(r.content_length, 2);
  CU_ASSERT_EQUAL(r.completes, 1);
}

static void response_to_head_has_no_body(void) {
  struct l7_limits lim = small_limits();
  struct rec r = {.skip_body = 1};
  struct h1_parser p;
  h1_parser_init(&p, H1_RESPONSE, &lim, &cbs, &r);
  const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n";
  size_t used;
  CU_ASSERT_EQUAL(h1_parser_feed(&p, s, strlen(s), &used), H1_MESSAGE_END);
  CU_ASSERT_EQUAL(r.completes, 1);
  CU_ASSERT_EQUAL(r.body_len, 0);
  h1_parser_free(&p);
}

static void close_delimited_response_completes_at_eof(void) {
  struct l7_limits lim = small_limits();
  struct rec r = {0};
  struct h1_parser p;
  h1_parser_init(&p, H1_RESPONSE, &lim, &cbs, &r);
  const char *s = "HTTP/1.0 200 OK\r\n\r\nsome bytes";
  size_t used;
  CU_ASSERT_EQUAL(h1_parser_feed(&p, s, strlen(s), &used), H1_MORE);
  CU_ASSERT_EQUAL(r.framing, H1_FRAMING_CLOSE);
  CU_ASSERT_EQUAL(h1_parser_finish(&p), H1_MESSAGE_END);
  CU_ASSERT_EQUAL(r.body_len, 10);
  h1_parser_free(&p);
}

static void truncated_response_is_an_error_at_eof(void) {
  struct l7_limits lim = small_limits();
  struct rec r = {0};
  struct h1_parser p;
  h1_parser_init(&p, H1_RESPONSE, &lim, &cbs, &r);
  const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort";
  size_t used;
  h1_parser_feed(&p, s, strlen(s), &used);
  CU_ASSERT_EQUAL(h1_parser_finish(&p), H1_ERROR);
  h1_parser_free(&p);
}

static void switching_protocols_response_is_an_upgrade(void) {
  struct rec r = {0};
  int st;
  enum h1_result res = parse(
      H1_RESPONSE,
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nxx", 0,
      &r, &st);
  CU_ASSERT_EQUAL(res, H1_UPGRADE);
  CU_ASSERT_TRUE(r.upgrade);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("http1", NULL, NULL);
#define T(f) CU_add_test(s, #f, f)
  T(simple_request_reports_head_and_completion);
  T(byte_by_byte_input_gives_the_same_head);
  T(parser_pauses_after_each_pipelined_request);
  T(chunked_body_is_decoded);
  T(absolute_form_gives_host_and_origin_target);
  T(http10_without_host_is_accepted_and_not_keep_alive);
  T(upgrade_request_stops_at_tunnel_bytes);
  T(expect_100_continue_is_reported);
  T(content_length_with_transfer_encoding_is_400);
  T(duplicate_content_length_is_400);
  T(transfer_encoding_not_ending_in_chunked_is_400);
  T(obs_fold_is_400);
  T(obs_fold_split_across_reads_is_400);
  T(bare_lf_in_head_is_400);
  T(bare_lf_in_chunk_size_is_400);
  T(whitespace_before_colon_is_400);
  T(missing_or_repeated_host_is_400);
  T(connect_method_is_405);
  T(long_target_is_414);
  T(too_many_headers_is_431);
  T(too_many_header_bytes_is_431);
  T(body_over_limit_is_413);
  T(on_head_can_reject_with_a_status);
  T(garbage_is_400);
  T(versions_other_than_http1_are_505);
  T(request_transfer_codings_other_than_one_final_chunked_are_refused);
  T(no_content_response_has_no_body_whatever_its_framing_says);
  T(response_with_length_and_reason_is_parsed);
  T(response_to_head_has_no_body);
  T(close_delimited_response_completes_at_eof);
  T(truncated_response_is_an_error_at_eof);
  T(switching_protocols_response_is_an_upgrade);
#undef T
}
