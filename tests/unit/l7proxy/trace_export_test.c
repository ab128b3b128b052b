/* trace_export: a full queue drops and counts; a stop facing a receiver that
 * never answers makes one attempt, not one per queued batch. The receiver
 * is a real listening socket on 127.0.0.1 that never reads: connections
 * pile up in its backlog, so counting them tells how many POSTs were tried. */
#include "l7proxy/trace_export.h"

#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int silent_listener(uint16_t *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(a);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 64) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0)
    return -1;
  *port = ntohs(a.sin_port);
  return fd;
}

static int accepted(int lfd) {
  fcntl(lfd, F_SETFL, O_NONBLOCK);
  int n = 0, c;
  while ((c = accept(lfd, NULL, NULL)) >= 0) {
    n++;
    close(c);
  }
  return n;
}

static struct trace_span span(int i) {
  struct trace_span s;
  memset(&s, 0, sizeof(s));
  s.trace_id[15] = (uint8_t)(i + 1);
  s.span_id[7] = 1;
  s.start_ns = s.end_ns = 1796230305142844657ull;
  strcpy(s.method, "GET");
  return s;
}

static void stop_with_a_silent_receiver_tries_once(void) {
  uint16_t port;
  int lfd = silent_listener(&port);
  CU_ASSERT_FATAL(lfd >= 0);
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/traces", port);
  struct trace_export_opts o = {
      .url = url, .queue_size = 64, .batch_size = 8, .flush_ms = 3600000, .timeout_ms = 300};
  struct trace_export *te;
  char err[256];
  CU_ASSERT_EQUAL_FATAL(trace_export_new(&o, &te, err, sizeof(err)), 0);
  /* 64 spans = 8 full batches; the first batch wakes the exporter, which
   * may already be waiting on the silent receiver when close comes */
  for (int i = 0; i < 64; i++) {
    struct trace_span s = span(i);
    CU_ASSERT_EQUAL(trace_export_submit(te, &s), 0);
  }
  struct trace_span extra = span(99);
  int full = trace_export_submit(te, &extra) == -ENOSPC; /* unless a batch left already */
  trace_export_close(te); /* one more failed POST at most, then everything is dropped */
  int tries = accepted(lfd);
  CU_ASSERT(tries >= 1 && tries <= 2); /* not 8: one per batch */
  close(lfd);
  (void)full;
}

static void full_queue_drops_and_counts(void) {
  uint16_t port;
  int lfd = silent_listener(&port);
  CU_ASSERT_FATAL(lfd >= 0);
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/traces", port);
  /* the exporter never starts a batch before close (flush 1 h, batch 32 of 16) */
  struct trace_export_opts o = {
      .url = url, .queue_size = 16, .batch_size = 32, .flush_ms = 3600000, .timeout_ms = 200};
  struct trace_export *te;
  char err[256];
  CU_ASSERT_EQUAL_FATAL(trace_export_new(&o, &te, err, sizeof(err)), 0);
  int dropped = 0;
  for (int i = 0; i < 40; i++) {
    struct trace_span s = span(i);
    dropped += trace_export_submit(te, &s) == -ENOSPC;
  }
  CU_ASSERT_EQUAL(dropped, 24);
  CU_ASSERT_EQUAL(trace_export_dropped(te), 24);
  trace_export_close(te); /* the 16 queued fail on the silent receiver: dropped too */
  close(lfd);
}

static void bad_url_is_refused(void) {
  struct trace_export_opts o = {.url = "ftp://127.0.0.1/x"};
  struct trace_export *te = NULL;
  char err[256] = "";
  CU_ASSERT_NOT_EQUAL(trace_export_new(&o, &te, err, sizeof(err)), 0);
  CU_ASSERT_PTR_NULL(te);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "http://"));
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("trace_export", NULL, NULL);
  CU_add_test(s, "stop_with_a_silent_receiver_tries_once", stop_with_a_silent_receiver_tries_once);
  CU_add_test(s, "full_queue_drops_and_counts", full_queue_drops_and_counts);
  CU_add_test(s, "bad_url_is_refused", bad_url_is_refused);
}
