/*
 * h2_frame_fuzz — the l7proxy HTTP/2 downstream frame path (nghttp2
 * session, stream → virtual HTTP/1.1 exchange, response back to h2) fed
 * with arbitrary bytes after the client preface.
 *
 * A real worker (l7proxy/worker.h) runs in its own thread on 127.0.0.1
 * (kernel-chosen port) without a configuration, so every stream that gets
 * that far is answered locally (503). Each input is one connection: the
 * preface and the input are sent, the write side is shut, and whatever
 * the proxy answers is read until it closes (bounded by a 2 s receive
 * timeout). Sanitizer reports from the worker thread fail the run.
 * Callers: libFuzzer (--config=fuzz) or the corpus replay driver.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/addr.h"
#include "l7proxy/limits.h"
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
  struct sockaddr_storage ss;
  socklen_t len;
  if (addr_parse("127.0.0.1:0", &ss, &len) != 0) return -1;
  int fd = addr_bind_reuseport(&ss, len, 0, 0);
  if (fd < 0) return -1;
  if (worker_start(0, &cfg, fd, -1, &w) != 0) return -1;
  g_port = (uint16_t)addr_port(&ss);
  return 0;
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
  char buf[65536];
  for (int i = 0; i < 1024; i++) { /* bounded: the proxy closes on EOF */
    ssize_t n = recv(s, buf, sizeof(buf), 0);
    if (n <= 0) break;
  }
  close(s);
  return 0;
}
