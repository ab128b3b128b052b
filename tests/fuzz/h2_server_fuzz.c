/*
 * h2_server_fuzz — the l7proxy HTTP/2 server session: frames in, and what
 * the proxy writes out is checked.
 *
 * A real worker (l7proxy/worker.h, the HTTP/2 server session it drives)
 * runs in its own thread on 127.0.0.1 with a configuration whose routes
 * answer locally (a 308 redirect, a 404, a 503 without endpoints), so
 * streams get real responses. Each input is one connection: the client
 * preface, then the input as frames, then EOF; everything the proxy sends
 * until it closes is collected (bounded by a 2 s receive timeout) and must
 * be a well-formed HTTP/2 server stream:
 *   - whole frames, the first a SETTINGS frame (the server preface);
 *   - no frame longer than the default SETTINGS_MAX_FRAME_SIZE (16384;
 *     the client never raises it here), known frame types only;
 *   - HEADERS/DATA only on odd (client-initiated) streams, never stream 0;
 *     SETTINGS/PING/GOAWAY only on stream 0; CONTINUATION right after an
 *     unfinished header block of the same stream;
 *   - every header block decodes with an HPACK inflater (nghttp2's own),
 *     and has a :status first;
 *   - nothing but whole frames after a GOAWAY's last stream has ended.
 * A violation aborts (a finding); sanitizer reports from the worker thread
 * fail the run too. Targets the current worker's session (worker.c).
 */
#include <arpa/inet.h>
#include <nghttp2/nghttp2.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/addr.h"
#include "config_fixture_min.h"
#include "l7proxy/limits.h"
#include "l7proxy/snapshot.h"
#include "l7proxy/worker.h"

static uint16_t g_port;

static int fuzz_setup(void) {
  static struct l7_limits limits = L7_LIMITS_DEFAULT;
  static struct worker_config cfg;
  static struct worker *w;
  cfg.limits = &limits;
  cfg.proto = "http";
  cfg.h2c = 1;
  limits.idle_timeout_ms = 2000;
  limits.header_timeout_ms = 2000;
  struct l7_snapshot *snap = fuzz_snapshot();
  if (!snap) return -1;
  l7_snapshot_publish(snap);
  struct sockaddr_storage ss;
  socklen_t len;
  if (addr_parse("127.0.0.1:0", &ss, &len) != 0) return -1;
  int fd = addr_bind_reuseport(&ss, len, 0, 0);
  if (fd < 0) return -1;
  if (worker_start(0, &cfg, fd, -1, &w) != 0) return -1;
  g_port = (uint16_t)addr_port(&ss);
  return 0;
}

enum {
  F_DATA = 0,
  F_HEADERS = 1,
  F_PRIORITY = 2,
  F_RST = 3,
  F_SETTINGS = 4,
  F_PUSH = 5,
  F_PING = 6,
  F_GOAWAY = 7,
  F_WINDOW = 8,
  F_CONT = 9
};

/* Decodes one whole header block; 0 when valid and :status comes first. */
static int header_block_ok(nghttp2_hd_inflater *inf, const uint8_t *p, size_t n) {
  int first = 1, status_first = 0;
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    ssize_t rv = nghttp2_hd_inflate_hd2(inf, &nv, &flags, p, n, 1);
    if (rv < 0) return -1;
    p += rv;
    n -= (size_t)rv;
    if (flags & NGHTTP2_HD_INFLATE_EMIT) {
      if (first) status_first = nv.namelen == 7 && memcmp(nv.name, ":status", 7) == 0;
      first = 0;
    }
    if (flags & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(inf);
      return status_first ? 0 : -1;
    }
    if (rv == 0 && n == 0) return -1;
  }
}

static void check_output(const uint8_t *out, size_t len) {
  nghttp2_hd_inflater *inf;
  if (nghttp2_hd_inflate_new(&inf) != 0) abort();
  uint8_t *block = NULL;
  size_t blen = 0;
  uint32_t open_block = 0; /* stream of an unfinished header block */
  size_t off = 0;
  int frames = 0;
  while (off + 9 <= len) {
    const uint8_t *h = out + off;
    size_t flen = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
    uint8_t type = h[3], flags = h[4];
    uint32_t sid =
        ((uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8]) & 0x7fffffffu;
    if (flen > 16384) abort();
    if (off + 9 + flen > len) break; /* cut short by the close: not a protocol error */
    const uint8_t *pl = h + 9;
    if (frames++ == 0 && (type != F_SETTINGS || (flags & 1))) abort();
    if (open_block && (type != F_CONT || sid != open_block)) abort();
    switch (type) {
      case F_DATA:
      case F_HEADERS:
      case F_CONT:
        if (sid == 0 || sid % 2 == 0) abort();
        break;
      case F_SETTINGS:
      case F_PING:
      case F_GOAWAY:
        if (sid != 0) abort();
        break;
      case F_RST:
      case F_WINDOW:
      case F_PRIORITY:
        break;
      case F_PUSH:
      default:
        abort(); /* no push, no unknown frames from the proxy */
    }
    if (type == F_HEADERS || type == F_CONT) {
      size_t skip = 0, pad = 0;
      if (type == F_HEADERS && (flags & 0x08)) {
        if (flen < 1) abort();
        pad = pl[0];
        skip = 1;
      }
      if (type == F_HEADERS && (flags & 0x20)) skip += 5;
      if (skip + pad > flen) abort();
      uint8_t *nb = realloc(block, blen + flen);
      if (!nb) abort();
      block = nb;
      memcpy(block + blen, pl + skip, flen - skip - pad);
      blen += flen - skip - pad;
      if (flags & 0x04) { /* END_HEADERS */
        if (header_block_ok(inf, block, blen) != 0) abort();
        blen = 0;
        open_block = 0;
      } else {
        open_block = sid;
      }
    }
    off += 9 + flen;
  }
  free(block);
  nghttp2_hd_inflate_del(inf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    if (fuzz_setup() != 0) abort();
    ready = 1;
  }
  if (size > 1 << 16) return 0;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) return 0;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(g_port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {.tv_sec = 2};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(s, (struct sockaddr *)&a, sizeof(a)) != 0) {
    close(s);
    return 0;
  }
  static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  if (send(s, preface, sizeof(preface) - 1, MSG_NOSIGNAL) > 0 && size > 0)
    send(s, data, size, MSG_NOSIGNAL);
  shutdown(s, SHUT_WR);
  size_t cap = 1 << 16, len = 0;
  uint8_t *out = malloc(cap);
  for (int i = 0; i < 4096 && out; i++) { /* bounded: the proxy closes on EOF */
    if (len == cap) {
      if (cap >= (1u << 22)) break;
      uint8_t *nb = realloc(out, cap * 2);
      if (!nb) break;
      out = nb;
      cap *= 2;
    }
    ssize_t n = recv(s, out + len, cap - len, 0);
    if (n <= 0) break;
    len += (size_t)n;
  }
  close(s);
  if (out) check_output(out, len);
  free(out);
  return 0;
}
