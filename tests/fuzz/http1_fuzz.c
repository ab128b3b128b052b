/*
 * http1_fuzz — the HTTP/1.1 request path without sockets: bytes go through
 * the downstream request parser (pipelined messages resumed as the worker
 * does) and every accepted head through the upstream request rewrite; the
 * same bytes also go through the upstream response parser and the response
 * rewrite. The first byte picks how the input is split into reads, so
 * heads and bodies arrive in pieces like they do from a socket.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "l7proxy/headers.h"
#include "l7proxy/http1.h"

static struct buf out;

static int req_head(void *ud, const struct h1_message *m) {
  (void)ud;
  char id[65];
  struct headers_request r = {
      .method = m->method_str,
      .method_len = m->method_len,
      .target = m->target,
      .target_len = m->target_len,
      .host = m->host,
      .host_len = m->host_len,
      .headers = m->headers,
      .n_headers = m->n_headers,
      .client_addr = "192.0.2.1",
      .proto = "http",
      .upgrade = m->upgrade,
      .strip_expect = 1,
      .framing = m->framing,
      .content_length = m->content_length,
  };
  buf_reset(&out);
  headers_write_request(&out, &r, id);
  return 0;
}

static int resp_head(void *ud, const struct h1_message *m) {
  (void)ud;
  struct headers_response r = {
      .status = m->status,
      .reason = m->reason,
      .reason_len = m->reason_len,
      .headers = m->headers,
      .n_headers = m->n_headers,
      .framing = m->framing == H1_FRAMING_CLOSE ? H1_FRAMING_CHUNKED : m->framing,
      .content_length = m->content_length,
      .upgrade = m->upgrade,
  };
  buf_reset(&out);
  headers_write_response(&out, &r);
  return 0;
}

static int body(void *ud, const char *p, size_t n) {
  (void)ud;
  if (n) buf_append(&out, p, n < 16 ? n : 16);
  return 0;
}

static void complete(void *ud) {
  (void)ud;
}

static void run(enum h1_kind kind, const struct h1_callbacks *cb, const uint8_t *data, size_t size,
                size_t step) {
  struct l7_limits lim = L7_LIMITS_DEFAULT;
  lim.max_body_bytes = 4096;
  lim.max_uri_bytes = 1024;
  lim.max_header_bytes = 4096;
  lim.max_headers = 32;
  struct h1_parser p;
  if (h1_parser_init(&p, kind, &lim, cb, NULL) != 0) return;
  size_t off = 0;
  int rounds = 0;
  while (off < size && rounds++ < 100000) {
    size_t n = size - off < step ? size - off : step;
    size_t used = 0;
    enum h1_result r = h1_parser_feed(&p, (const char *)data + off, n, &used);
    if (used > n) __builtin_trap(); /* the parser never claims more than it got */
    off += used;
    if (r == H1_MESSAGE_END) {
      h1_parser_resume(&p);
      continue;
    }
    if (r != H1_MORE) break;
  }
  if (kind == H1_RESPONSE) h1_parser_finish(&p);
  h1_parser_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t step = data[0] ? data[0] : size;
  data++;
  size--;
  static const struct h1_callbacks req = {req_head, body, complete};
  static const struct h1_callbacks resp = {resp_head, body, complete};
  run(H1_REQUEST, &req, data, size, step);
  run(H1_RESPONSE, &resp, data, size, step);
  buf_free(&out);
  return 0;
}
