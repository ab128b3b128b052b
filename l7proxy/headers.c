/*
 * headers — hop-by-hop stripping and X-Forwarded-* / X-Request-Id /
 * Server rewriting for HTTP/1.1 heads. See headers.h for the rules.
 *
 * Fields named by Connection are found by scanning every Connection value
 * for each field: O(fields × tokens), which is cheap for the ≤100 fields
 * the parser admits and avoids any allocation.
 */
#include "l7proxy/headers.h"

#include <errno.h>
#include <netinet/in.h>

#include "l7proxy/message.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "common/http_status.h"

int headers_name_is(const char *name, size_t len, const char *lit) {
  size_t n = strlen(lit);
  return len == n && strncasecmp(name, lit, n) == 0;
}

static int is_ows(char c) {
  return c == ' ' || c == '\t';
}

int headers_list_has_token(const char *value, size_t len, const char *token) {
  size_t tlen = strlen(token);
  size_t i = 0;
  while (i < len) {
    while (i < len && (is_ows(value[i]) || value[i] == ',')) i++;
    size_t start = i;
    while (i < len && value[i] != ',') i++;
    size_t end = i;
    while (end > start && is_ows(value[end - 1])) end--;
    if (end - start == tlen && strncasecmp(value + start, token, tlen) == 0) return 1;
  }
  return 0;
}

/* What a field name is to the proxy. One switch on the length, then at
 * most two case-insensitive compares: this runs for every field. */
enum hkind {
  HK_OTHER = 0,
  HK_HOP, /* hop-by-hop by itself */
  HK_CONNECTION,
  HK_UPGRADE,
  HK_TE,
  HK_HOST,
  HK_CONTENT_LENGTH,
  HK_XFF,
  HK_XFP,
  HK_XFH,
  HK_EXPECT,
  HK_REQUEST_ID,
  HK_SERVER,
  HK_TRACEPARENT, /* W3C trace context: replaced when tracing is on */
  HK_TRACESTATE,
  HK_CLIENT_CERT, /* x-client-cert-*, x-forwarded-client-cert: set only by the proxy */
};

static enum hkind classify(const char *n, size_t len) {
#define IS(lit) (strncasecmp(n, lit, len) == 0)
  if (len > 6 && (n[0] | 0x20) == 'p' && strncasecmp(n, "proxy-", 6) == 0) return HK_HOP;
  /* the proxy's own client-certificate headers (exchange.c): never a client's */
  if (len > 14 && (n[0] | 0x20) == 'x' && strncasecmp(n, "x-client-cert-", 14) == 0)
    return HK_CLIENT_CERT;
  switch (len) {
    case 2:
      return IS("te") ? HK_TE : HK_OTHER;
    case 4:
      return IS("host") ? HK_HOST : HK_OTHER;
    case 6:
      return IS("expect") ? HK_EXPECT : IS("server") ? HK_SERVER : HK_OTHER;
    case 7:
      return IS("upgrade") ? HK_UPGRADE : IS("trailer") ? HK_HOP : HK_OTHER;
    case 10:
      return IS("connection")   ? HK_CONNECTION
             : IS("keep-alive") ? HK_HOP
             : IS("tracestate") ? HK_TRACESTATE
                                : HK_OTHER;
    case 11:
      return IS("traceparent") ? HK_TRACEPARENT : HK_OTHER;
    case 12:
      return IS("x-request-id") ? HK_REQUEST_ID : HK_OTHER;
    case 14:
      return IS("content-length") ? HK_CONTENT_LENGTH : IS("http2-settings") ? HK_HOP : HK_OTHER;
    case 15:
      return IS("x-forwarded-for") ? HK_XFF : HK_OTHER;
    case 16:
      return IS("x-forwarded-host") ? HK_XFH : HK_OTHER;
    case 17:
      return IS("x-forwarded-proto") ? HK_XFP : IS("transfer-encoding") ? HK_HOP : HK_OTHER;
    case 23:
      return IS("x-forwarded-client-cert") ? HK_CLIENT_CERT : HK_OTHER;
    default:
      return HK_OTHER;
  }
#undef IS
}

int headers_is_hop_by_hop(const char *name, size_t len) {
  enum hkind k = classify(name, len);
  return k == HK_HOP || k == HK_CONNECTION || k == HK_UPGRADE || k == HK_TE;
}

/* 1 if some Connection field lists name. */
static int named_by_connection(const struct h1_header *h, size_t n, const char *name, size_t len) {
  char tok[128];
  if (len >= sizeof(tok)) return 0;
  memcpy(tok, name, len);
  tok[len] = '\0';
  for (size_t i = 0; i < n; i++) {
    if (headers_name_is(h[i].name, h[i].name_len, "connection") &&
        headers_list_has_token(h[i].value, h[i].value_len, tok))
      return 1;
  }
  return 0;
}

/* xoshiro256** per thread, seeded from getrandom: request ids need to be
 * unique, not secret, and a syscall per request would cost more than the
 * rest of the rewrite. */
static __thread uint64_t rng_s[4];
static __thread int rng_seeded;

static uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void) {
  if (!rng_seeded) {
    if (getrandom(rng_s, sizeof(rng_s), 0) != (ssize_t)sizeof(rng_s)) {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      rng_s[0] = (uint64_t)ts.tv_nsec ^ 0x9e3779b97f4a7c15ull;
      rng_s[1] = (uint64_t)ts.tv_sec * 0xbf58476d1ce4e5b9ull;
      rng_s[2] = (uint64_t)(uintptr_t)&rng_s;
      rng_s[3] = 0x94d049bb133111ebull;
    }
    rng_seeded = 1;
  }
  uint64_t result = rotl(rng_s[1] * 5, 7) * 9;
  uint64_t t = rng_s[1] << 17;
  rng_s[2] ^= rng_s[0];
  rng_s[3] ^= rng_s[1];
  rng_s[1] ^= rng_s[2];
  rng_s[0] ^= rng_s[3];
  rng_s[2] ^= t;
  rng_s[3] = rotl(rng_s[3], 45);
  return result;
}

uint64_t headers_rand64(void) {
  return rng_next();
}

void headers_gen_request_id(char out[33]) {
  static const char hex[] = "0123456789abcdef";
  uint64_t a = rng_next(), b = rng_next();
  for (int i = 0; i < 16; i++) {
    out[i] = hex[(a >> (60 - 4 * i)) & 0xf];
    out[16 + i] = hex[(b >> (60 - 4 * i)) & 0xf];
  }
  out[32] = '\0';
}

/* A client-supplied request id is kept only when short and plain. */
static int request_id_ok(const char *v, size_t len) {
  if (len == 0 || len > 64) return 0;
  for (size_t i = 0; i < len; i++) {
    char c = v[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
          c == '_' || c == '.'))
      return 0;
  }
  return 1;
}

/* Appends a header to out's list (array sized by the caller). */
static void push(struct msg_head *out, struct msg_header *arr, const char *n, size_t nl,
                 const char *v, size_t vl) {
  arr[out->n_headers++] = (struct msg_header){n, nl, v, vl};
}

int headers_upstream_request(const struct headers_request *r, struct msg_head *out,
                             struct msg_arena *a, char request_id[65]) {
  const struct msg_head *in = r->in;
  const struct msg_header *h = in->headers;
  size_t n = in->n_headers;
  request_id[0] = '\0';
  int want_te_trailers = 0, has_connection = 0;
  size_t xff_len = 0;
  for (size_t i = 0; i < n; i++) {
    enum hkind k = classify(h[i].name, h[i].name_len);
    has_connection |= k == HK_CONNECTION;
    if (k == HK_XFF) xff_len += h[i].value_len + 2;
  }
  struct msg_header *arr = msg_arena_alloc(a, (n + 8) * sizeof(*arr));
  char *xff = msg_arena_alloc(a, xff_len + INET6_ADDRSTRLEN + 8);
  if (!arr || !xff) return -ENOMEM;
  *out = *in;
  out->headers = arr;
  out->n_headers = 0;
  out->target = r->target;
  out->target_len = r->target_len;
  out->flags &= ~(unsigned)MSG_F_UPGRADE;
  const char *upgrade = NULL;
  size_t upgrade_len = 0, xl = 0;
  for (size_t i = 0; i < n; i++) {
    const char *name = h[i].name;
    size_t len = h[i].name_len;
    switch (classify(name, len)) {
      case HK_TE:
        if (headers_list_has_token(h[i].value, h[i].value_len, "trailers")) want_te_trailers = 1;
        continue;
      case HK_UPGRADE:
        upgrade = h[i].value;
        upgrade_len = h[i].value_len;
        continue;
      case HK_REQUEST_ID:
        if (request_id[0] == '\0' && request_id_ok(h[i].value, h[i].value_len)) {
          memcpy(request_id, h[i].value, h[i].value_len);
          request_id[h[i].value_len] = '\0';
        }
        continue;
      case HK_XFF: { /* every earlier hop in order, then this client */
        const char *v = h[i].value;
        size_t vl = h[i].value_len;
        while (vl > 0 && is_ows(v[vl - 1])) vl--;
        while (vl > 0 && is_ows(*v)) v++, vl--;
        if (vl == 0) continue;
        memcpy(xff + xl, v, vl);
        xl += vl;
        memcpy(xff + xl, ", ", 2);
        xl += 2;
        continue;
      }
      case HK_TRACEPARENT:
        if (r->traceparent) continue; /* this hop's own follows */
        break;
      case HK_TRACESTATE:
        if (r->drop_tracestate) continue;
        break;
      case HK_OTHER:
      case HK_SERVER:
        break;
      default: /* hop-by-hop, Host, framing, Expect, X-Forwarded-*: rewritten below */
        continue;
    }
    if (has_connection && named_by_connection(h, n, name, len)) continue;
    push(out, arr, name, len, h[i].value, h[i].value_len);
  }
  size_t cl = strlen(r->client_addr);
  memcpy(xff + xl, r->client_addr, cl);
  xl += cl;
  push(out, arr, "x-forwarded-for", 15, xff, xl);
  push(out, arr, "x-forwarded-proto", 17, r->proto, strlen(r->proto));
  push(out, arr, "x-forwarded-host", 16, in->authority, in->authority_len);
  if (request_id[0] == '\0') headers_gen_request_id(request_id);
  char *rid = msg_arena_strdup(a, request_id, strlen(request_id));
  if (!rid) return -ENOMEM;
  push(out, arr, "x-request-id", 12, rid, strlen(rid));
  if (want_te_trailers || (in->flags & MSG_F_GRPC)) push(out, arr, "te", 2, "trailers", 8);
  if (r->traceparent) push(out, arr, "traceparent", 11, r->traceparent, 55);
  if (r->upgrade && upgrade) {
    push(out, arr, "upgrade", 7, upgrade, upgrade_len);
    out->flags |= MSG_F_UPGRADE;
  }
  return 0;
}

int headers_downstream_response(const struct msg_head *in, int upgrade, struct msg_head *out,
                                struct msg_arena *a) {
  const struct msg_header *h = in->headers;
  size_t n = in->n_headers;
  int has_connection = 0;
  for (size_t i = 0; i < n; i++)
    has_connection |= classify(h[i].name, h[i].name_len) == HK_CONNECTION;
  struct msg_header *arr = msg_arena_alloc(a, (n + 2) * sizeof(*arr));
  if (!arr) return -ENOMEM;
  *out = *in;
  out->headers = arr;
  out->n_headers = 0;
  push(out, arr, "server", 6, "edge", 4);
  for (size_t i = 0; i < n; i++) {
    const char *name = h[i].name;
    size_t len = h[i].name_len;
    enum hkind k = classify(name, len);
    if (k == HK_UPGRADE && upgrade) {
      push(out, arr, name, len, h[i].value, h[i].value_len);
      continue;
    }
    if (k != HK_OTHER && k != HK_HOST && k != HK_EXPECT && k != HK_REQUEST_ID && k != HK_XFF &&
        k != HK_XFP && k != HK_XFH && k != HK_TRACEPARENT && k != HK_TRACESTATE &&
        k != HK_CLIENT_CERT)
      continue; /* hop-by-hop, Server, framing */
    if (has_connection && named_by_connection(h, n, name, len)) continue;
    push(out, arr, name, len, h[i].value, h[i].value_len);
  }
  return 0;
}

static int append_field(struct buf *out, const char *name, size_t nlen, const char *value,
                        size_t vlen) {
  if (buf_reserve(out, nlen + vlen + 4) != 0) return -ENOMEM;
  buf_append(out, name, nlen);
  buf_append(out, ": ", 2);
  buf_append(out, value, vlen);
  buf_append(out, "\r\n", 2);
  return 0;
}

int headers_h1_request(struct buf *out, const struct msg_head *h) {
  int rc = buf_reserve(out, h->method_len + h->target_len + h->authority_len + 64);
  rc |= buf_append(out, h->method_str, h->method_len);
  rc |= buf_append(out, " ", 1);
  rc |= buf_append(out, h->target, h->target_len);
  rc |= buf_append(out, " HTTP/1.1\r\nHost: ", 17);
  rc |= buf_append(out, h->authority, h->authority_len);
  rc |= buf_append(out, "\r\n", 2);
  for (size_t i = 0; i < h->n_headers; i++)
    rc |= append_field(out, h->headers[i].name, h->headers[i].name_len, h->headers[i].value,
                       h->headers[i].value_len);
  if (h->flags & MSG_F_UPGRADE) rc |= buf_puts(out, "Connection: upgrade\r\n");
  if (h->content_length >= 0) {
    rc |= buf_append(out, "Content-Length: ", 16);
    rc |= buf_put_u64(out, (unsigned long long)h->content_length);
    rc |= buf_append(out, "\r\n", 2);
  } else if (!h->end_stream) {
    rc |= buf_append(out, "Transfer-Encoding: chunked\r\n", 28);
  }
  rc |= buf_append(out, "\r\n", 2);
  return rc ? -ENOMEM : 0;
}

int headers_h1_response(struct buf *out, const struct msg_head *h,
                        const struct headers_h1_framing *f) {
  int rc = buf_reserve(out, 128);
  char line[16] = "HTTP/1.1 000 ";
  int st = h->status >= 100 && h->status <= 999 ? h->status : 502;
  line[9] = (char)('0' + st / 100);
  line[10] = (char)('0' + st / 10 % 10);
  line[11] = (char)('0' + st % 10);
  rc |= buf_append(out, line, 13);
  rc |= buf_puts(out, http_status_reason(st));
  rc |= buf_append(out, "\r\n", 2);
  for (size_t i = 0; i < h->n_headers; i++)
    rc |= append_field(out, h->headers[i].name, h->headers[i].name_len, h->headers[i].value,
                       h->headers[i].value_len);
  if (f->upgrade)
    rc |= buf_puts(out, "Connection: upgrade\r\n");
  else if (f->close)
    rc |= buf_puts(out, "Connection: close\r\n");
  else if (f->keep_alive)
    rc |= buf_puts(out, "Connection: keep-alive\r\n");
  if (h->te_codings_len && (f->framing == H1_FRAMING_CHUNKED || f->framing == H1_FRAMING_CLOSE)) {
    rc |= buf_append(out, "Transfer-Encoding: ", 19);
    rc |= buf_append(out, h->te_codings, h->te_codings_len);
    rc |= buf_puts(out, f->framing == H1_FRAMING_CHUNKED ? ", chunked\r\n" : "\r\n");
  } else if (f->framing == H1_FRAMING_LENGTH) {
    rc |= buf_append(out, "Content-Length: ", 16);
    rc |= buf_put_u64(out, f->content_length);
    rc |= buf_append(out, "\r\n", 2);
  } else if (f->framing == H1_FRAMING_CHUNKED) {
    rc |= buf_append(out, "Transfer-Encoding: chunked\r\n", 28);
  }
  rc |= buf_append(out, "\r\n", 2);
  return rc ? -ENOMEM : 0;
}

int headers_write_local(struct buf *out, int status, const char *location, int close,
                        const char *body) {
  char dflt[96];
  if (!body) {
    snprintf(dflt, sizeof(dflt), "%d %s\n", status, http_status_reason(status));
    body = dflt;
  }
  int rc = buf_printf(out,
                      "HTTP/1.1 %03d %s\r\nServer: edge\r\nContent-Type: text/plain\r\n"
                      "Content-Length: %zu\r\n",
                      status, http_status_reason(status), strlen(body));
  if (location) rc |= buf_printf(out, "Location: %s\r\n", location);
  if (close) rc |= buf_puts(out, "Connection: close\r\n");
  rc |= buf_append(out, "\r\n", 2);
  rc |= buf_puts(out, body);
  return rc ? -ENOMEM : 0;
}
