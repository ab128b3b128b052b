/*
 * http1_fuzz — the HTTP/1.1 request path without sockets: bytes go through
 * the downstream request parser (pipelined messages resumed as the worker
 * does) and every accepted head, as a message, through the upstream
 * request policy and the HTTP/1.1 writer; the same bytes also go through
 * the upstream response parser and the response policy and writer. The first byte picks how the
 * input is split into reads, so heads and bodies arrive in pieces like they do from a socket.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "l7proxy/headers.h"
#include "l7proxy/http1.h"
#include "l7proxy/message.h"

static struct buf out;

static struct msg_arena arena;

static int req_head(void *ud, const struct h1_message *m) {
  (void)ud;
  char id[65];
  struct msg_head in, up;
  h1_message_head(m, "http", &in);
  struct headers_request r = {.in = &in,
                              .target = in.target,
                              .target_len = in.target_len,
                              .client_addr = "192.0.2.1",
                              .proto = "http",
                              .upgrade = m->upgrade};
  buf_reset(&out);
  msg_arena_reset(&arena);
  if (headers_upstream_request(&r, &up, &arena, id) == 0) headers_h1_request(&out, &up);
  return 0;
}

static int resp_head(void *ud, const struct h1_message *m) {
  (void)ud;
  struct msg_head in, resp;
  h1_message_head(m, NULL, &in);
  struct headers_h1_framing f = {
      .framing = m->framing == H1_FRAMING_CLOSE ? H1_FRAMING_CHUNKED : m->framing,
      .content_length = m->content_length,
      .upgrade = m->upgrade,
  };
  buf_reset(&out);
  msg_arena_reset(&arena);
  if (headers_downstream_response(&in, m->upgrade, &resp, &arena) == 0)
    headers_h1_response(&out, &resp, &f);
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
