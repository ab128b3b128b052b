/*
 * syncd_proc — helpers for integration tests that run the real syncd: a
 * process on 127.0.0.1 (ports read back from its "listening" line) with
 * extra flags, Status over the project's unary client, /metrics over a raw
 * socket, and a ConfigSync client (tests/integration/grpc_sync_client.h)
 * that plays a proxy message by message. Every wait polls with a deadline.
 *
 * Header-only (static functions) for the CUnit tests that include it; the
 * test runs grpc_init() first. Callers: tests/integration/syncd_state_test.c.
 */
#ifndef EDGE_TESTS_SYNCD_PROC_H
#define EDGE_TESTS_SYNCD_PROC_H

#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/rpc.h"
#include "edge/v1/config_sync.pb-c.h"
#include "edge/v1/status.pb-c.h"
#include "tests/integration/grpc_sync_client.h"

static int64_t sp_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sp_pause_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* $TEST_SRCDIR/$TEST_WORKSPACE/rel (or ./rel outside Bazel). */
static void sp_runfile(char *out, size_t len, const char *rel) {
  const char *srcdir = getenv("TEST_SRCDIR"), *ws = getenv("TEST_WORKSPACE");
  snprintf(out, len, "%s/%s/%s", srcdir ? srcdir : ".", ws ? ws : "edge", rel);
}

static char *sp_temp_dir(const char *what) {
  const char *base = getenv("TEST_TMPDIR");
  char tmpl[1024];
  snprintf(tmpl, sizeof(tmpl), "%s/%sXXXXXX", base ? base : "/tmp", what);
  char *d = mkdtemp(tmpl);
  return d ? strdup(d) : NULL;
}

/* Writes DIR/NAME atomically (temp + rename) so the source never sees half a file. */
static void sp_write_file(const char *dir, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sp_write_file(const char *dir, const char *name, const char *fmt, ...) {
  char tmp[1200], path[1200];
  snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(tmp, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(f, fmt, ap);
  va_end(ap);
  fclose(f);
  CU_ASSERT_EQUAL(rename(tmp, path), 0);
}

static int sp_file_contains(const char *path, const char *needle) {
  FILE *f = fopen(path, "r");
  char line[4096];
  int found = 0;
  while (f && !found && fgets(line, sizeof(line), f)) found = strstr(line, needle) != NULL;
  if (f) fclose(f);
  return found;
}

struct syncd_proc {
  pid_t pid;
  int grpc_port, admin_port;
  char log[1100];
  char target[64];
};

/* Starts bin with --source=dir:src --state-dir=state --insecure, kernel
 * ports, debug logs and extra[] (NULL-terminated); waits for "listening". */
static int sp_start(struct syncd_proc *p, const char *bin, const char *src, const char *state,
                    const char *const *extra) {
  static int seq;
  memset(p, 0, sizeof(*p));
  const char *base = getenv("TEST_TMPDIR");
  snprintf(p->log, sizeof(p->log), "%s/syncd-%d-%d.log", base ? base : "/tmp", (int)getpid(),
           ++seq);
  char source[1100], statef[1100];
  snprintf(source, sizeof(source), "--source=dir:%s", src);
  snprintf(statef, sizeof(statef), "--state-dir=%s", state);
  const char *argv[32] = {"syncd",
                          source,
                          statef,
                          "--insecure",
                          "--listen=127.0.0.1:0",
                          "--admin=127.0.0.1:0",
                          "--log-level=debug"};
  size_t n = 7;
  for (size_t i = 0; extra && extra[i] && n < 31; i++) argv[n++] = extra[i];
  argv[n] = NULL;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 2);
      dup2(fd, 1);
    }
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  p->pid = pid;
  int64_t deadline = sp_now_ms() + 15000;
  while (sp_now_ms() < deadline) {
    FILE *f = fopen(p->log, "r");
    char line[2048];
    while (f && fgets(line, sizeof(line), f)) {
      char *l = strstr(line, "msg=listening ");
      if (l && strstr(l, "grpc_port=") &&
          sscanf(strstr(l, "grpc_port="), "grpc_port=%d admin_port=%d", &p->grpc_port,
                 &p->admin_port) == 2) {
        fclose(f);
        snprintf(p->target, sizeof(p->target), "127.0.0.1:%d", p->grpc_port);
        return 0;
      }
    }
    if (f) fclose(f);
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      p->pid = 0;
      return -1;
    }
    sp_pause_ms(20);
  }
  return -1;
}

/* Sends sig and reaps the process (SIGKILL after 10 s). */
static void sp_stop(struct syncd_proc *p, int sig) {
  if (p->pid <= 0) return;
  kill(p->pid, sig);
  int st = 0;
  int64_t deadline = sp_now_ms() + 10000;
  while (waitpid(p->pid, &st, WNOHANG) == 0) {
    if (sp_now_ms() > deadline) {
      kill(p->pid, SIGKILL);
      waitpid(p->pid, &st, 0);
      break;
    }
    sp_pause_ms(10);
  }
  p->pid = 0;
}

static Edge__V1__StatusResponse *sp_status(const struct syncd_proc *p) {
  struct rpc_creds creds = {.insecure = 1};
  Edge__V1__StatusRequest req = EDGE__V1__STATUS_REQUEST__INIT;
  uint8_t buf[8];
  size_t len = edge__v1__status_request__pack(&req, buf);
  uint8_t *resp = NULL;
  size_t resp_len = 0;
  char err[256];
  if (rpc_unary_call(p->target, "/edge.v1.Status/Get", &creds, buf, len, 5000, &resp, &resp_len,
                     err, sizeof(err)) != 0)
    return NULL;
  Edge__V1__StatusResponse *r = edge__v1__status_response__unpack(NULL, resp_len, resp);
  free(resp);
  return r;
}

static uint64_t sp_version(const struct syncd_proc *p) {
  Edge__V1__StatusResponse *r = sp_status(p);
  uint64_t v = r ? r->version : 0;
  if (r) edge__v1__status_response__free_unpacked(r, NULL);
  return v;
}

/* Waits until the version differs from `not` (and is not 0). */
static uint64_t sp_wait_version_change(const struct syncd_proc *p, uint64_t not ) {
  int64_t deadline = sp_now_ms() + 15000;
  while (sp_now_ms() < deadline) {
    uint64_t v = sp_version(p);
    if (v && v != not ) return v;
    sp_pause_ms(10);
  }
  return 0;
}

/* The value of one series from the admin /metrics (-1 when absent). */
static double sp_metric(const struct syncd_proc *p, const char *series) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->admin_port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  const char *req = "GET /metrics HTTP/1.0\r\nHost: t\r\n\r\n";
  if (write(fd, req, strlen(req)) < 0) {
    close(fd);
    return -1;
  }
  size_t cap = 1 << 20, len = 0;
  char *buf = malloc(cap);
  ssize_t r;
  while (buf && len < cap - 1 && (r = read(fd, buf + len, cap - 1 - len)) > 0) len += (size_t)r;
  close(fd);
  if (!buf) return -1;
  buf[len] = '\0';
  char want[256];
  snprintf(want, sizeof(want), "\n%s ", series);
  char *at = strstr(buf, want);
  double v = at ? strtod(at + strlen(want), NULL) : -1;
  free(buf);
  return v;
}

/* ---- a proxy on ConfigSync ------------------------------------------------------- */

static int sp_send(struct gsc_stream *g, Edge__V1__ProxyMessage *m) {
  size_t len = edge__v1__proxy_message__get_packed_size(m);
  uint8_t *buf = malloc(len ? len : 1);
  edge__v1__proxy_message__pack(m, buf);
  int rc = gsc_send(g, buf, len);
  free(buf);
  return rc;
}

static int sp_hello(struct gsc_stream *g, const char *id, uint64_t last_applied) {
  Edge__V1__Hello h = EDGE__V1__HELLO__INIT;
  h.node_id = (char *)id;
  h.address = "127.0.0.1:8080";
  h.last_applied_version = last_applied;
  Edge__V1__ProxyMessage m = EDGE__V1__PROXY_MESSAGE__INIT;
  m.msg_case = EDGE__V1__PROXY_MESSAGE__MSG_HELLO;
  m.hello = &h;
  return sp_send(g, &m);
}

static int sp_ack(struct gsc_stream *g, const Edge__V1__Push *p) {
  Edge__V1__Ack a = EDGE__V1__ACK__INIT;
  a.nonce = p->nonce;
  a.version = p->version;
  Edge__V1__ProxyMessage m = EDGE__V1__PROXY_MESSAGE__INIT;
  m.msg_case = EDGE__V1__PROXY_MESSAGE__MSG_ACK;
  m.ack = &a;
  return sp_send(g, &m);
}

/* The next Push within timeout_ms (its size in *bytes), or NULL. */
static Edge__V1__SyncMessage *sp_recv_push(struct gsc_stream *g, int timeout_ms, size_t *bytes) {
  uint8_t *buf;
  size_t len;
  if (gsc_recv(g, timeout_ms, &buf, &len) != 1) return NULL;
  Edge__V1__SyncMessage *m = edge__v1__sync_message__unpack(NULL, len, buf);
  free(buf);
  if (m && m->msg_case != EDGE__V1__SYNC_MESSAGE__MSG_PUSH) {
    edge__v1__sync_message__free_unpacked(m, NULL);
    m = NULL;
  }
  if (bytes) *bytes = len;
  return m;
}

/* The virtual host named name in a push, or NULL. */
static const Edge__V1__VirtualHost *sp_push_vhost(const Edge__V1__Push *p, const char *name) {
  for (size_t i = 0; i < p->n_upserted; i++)
    if (p->upserted[i]->kind_case == EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST &&
        strcmp(p->upserted[i]->virtual_host->name, name) == 0)
      return p->upserted[i]->virtual_host;
  return NULL;
}

#endif
