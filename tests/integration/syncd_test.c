/*
 * syncd integration: a real syncd process on 127.0.0.1 (ports chosen by
 * the kernel, read back from its "listening" log line) with a temporary
 * --source directory and --state-dir, driven by small synchronous gRPC
 * clients built on the gRPC C core (a pluck completion queue, so a test can
 * choose exactly when it reads), and the real syncctl binary.
 *
 * Every wait polls with a deadline; nothing sleeps for a condition.
 */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <fcntl.h>
#include <grpc/grpc.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/cert.h"
#include "common/rpc.h"
#include "tests/integration/grpc_sync_client.h"
#include "edge/v1/config_sync.pb-c.h"
#include "edge/v1/membership.pb-c.h"
#include "edge/v1/status.pb-c.h"

/* ---- helpers: files and processes ------------------------------------- */

static char g_bin_syncd[1024], g_bin_syncctl[1024];

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void find_binaries(void) {
  const char *srcdir = getenv("TEST_SRCDIR");
  const char *ws = getenv("TEST_WORKSPACE");
  snprintf(g_bin_syncd, sizeof(g_bin_syncd), "%s/%s/syncd/syncd", srcdir ? srcdir : ".",
           ws ? ws : "edge");
  snprintf(g_bin_syncctl, sizeof(g_bin_syncctl), "%s/%s/syncd/syncctl", srcdir ? srcdir : ".",
           ws ? ws : "edge");
}

static char *make_temp_dir(const char *what) {
  const char *base = getenv("TEST_TMPDIR");
  char tmpl[1024];
  snprintf(tmpl, sizeof(tmpl), "%s/%sXXXXXX", base ? base : "/tmp", what);
  char *d = mkdtemp(tmpl);
  return d ? strdup(d) : NULL;
}

/* Writes DIR/NAME atomically (temp + rename) so the source never sees half a file. */
static void write_file(const char *dir, const char *name, const char *fmt, ...) {
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

static const char *CLASS_YAML =
    "apiVersion: networking.k8s.io/v1\n"
    "kind: IngressClass\n"
    "metadata:\n"
    "  name: edge\n"
    "  annotations:\n"
    "    ingressclass.kubernetes.io/is-default-class: \"true\"\n"
    "spec:\n"
    "  controller: edge.dev/ingress-controller\n";

/* An Ingress for HOST with one Prefix path to service SVC:80, plus the
 * Service and one ready endpoint. */
static void write_app(const char *dir, const char *app, const char *path) {
  char name[128];
  snprintf(name, sizeof(name), "%s.yaml", app);
  write_file(dir, name,
             "apiVersion: v1\nkind: Service\nmetadata:\n  name: %s\n  namespace: default\n"
             "spec:\n  ports:\n    - name: http\n      port: 80\n      targetPort: 8080\n"
             "---\n"
             "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: %s-1\n"
             "  namespace: default\n  labels:\n    kubernetes.io/service-name: %s\n"
             "addressType: IPv4\nports:\n  - name: http\n    port: 8080\n"
             "endpoints:\n  - addresses: [\"127.0.0.1\"]\n    conditions:\n      ready: true\n"
             "---\n"
             "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: %s\n"
             "  namespace: default\n  creationTimestamp: \"2026-01-01T00:00:01Z\"\n"
             "spec:\n  rules:\n    - host: %s.test\n      http:\n        paths:\n"
             "          - path: %s\n            pathType: Prefix\n            backend:\n"
             "              service:\n                name: %s\n                port:\n"
             "                  number: 80\n",
             app, app, app, app, app, path, app);
}

static char *b64(const char *s) {
  size_t n = strlen(s);
  char *out = malloc(4 * ((n + 2) / 3) + 1);
  EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
  return out;
}

/* "secure": an Ingress with TLS for secure.test and its kubernetes.io/tls
 * Secret holding a certificate that expires in `days` days. */
static void write_tls_app(const char *dir, int days) {
  const char *names[] = {"secure.test"};
  char *cert = NULL, *key = NULL, err[256];
  CU_ASSERT_EQUAL_FATAL(cert_generate(names, 1, days, 0, NULL, NULL, &cert, &key, err, sizeof(err)),
                        0);
  char *c64 = b64(cert), *k64 = b64(key);
  write_file(dir, "secure-tls.yaml",
             "apiVersion: v1\nkind: Secret\nmetadata:\n  name: secure-tls\n  namespace: default\n"
             "type: kubernetes.io/tls\ndata:\n  tls.crt: %s\n  tls.key: %s\n",
             c64, k64);
  free(c64);
  free(k64);
  free(cert);
  free(key);
  write_file(dir, "secure.yaml",
             "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: secure\n"
             "  namespace: default\n  creationTimestamp: \"2026-01-01T00:00:02Z\"\n"
             "spec:\n  tls:\n    - hosts: [\"secure.test\"]\n      secretName: secure-tls\n"
             "  rules:\n    - host: secure.test\n      http:\n        paths:\n"
             "          - path: /\n            pathType: Prefix\n            backend:\n"
             "              service:\n                name: alpha\n                port:\n"
             "                  number: 80\n");
}

struct syncd_proc {
  pid_t pid;
  int grpc_port, admin_port;
  char log[1100];
  char target[64];
};

/* Starts syncd and waits (bounded) for its "listening" line. */
/* One more flag for the next syncd_start (NULL: none), e.g. a short
 * --replica-removal-timeout. */
static const char *g_extra_flag;

static int syncd_start(struct syncd_proc *p, const char *src, const char *state) {
  static int seq;
  memset(p, 0, sizeof(*p));
  const char *base = getenv("TEST_TMPDIR");
  snprintf(p->log, sizeof(p->log), "%s/syncd-%d-%d.log", base ? base : "/tmp", (int)getpid(),
           ++seq);
  char source[1100], statef[1100];
  snprintf(source, sizeof(source), "--source=dir:%s", src);
  snprintf(statef, sizeof(statef), "--state-dir=%s", state);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 2);
      dup2(fd, 1);
    }
    execl(g_bin_syncd, "syncd", source, statef, "--insecure", "--listen=127.0.0.1:0",
          "--admin=127.0.0.1:0", "--debounce=20ms", "--max-delay=200ms", "--log-level=debug",
          g_extra_flag ? g_extra_flag : "--log-level=debug", (char *)NULL);
    _exit(127);
  }
  p->pid = pid;
  int64_t deadline = now_ms() + 15000;
  while (now_ms() < deadline) {
    FILE *f = fopen(p->log, "r");
    char line[2048];
    while (f && fgets(line, sizeof(line), f)) {
      char *l = strstr(line, "msg=listening ");
      if (l && sscanf(strstr(l, "grpc_port="), "grpc_port=%d admin_port=%d", &p->grpc_port,
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
    pause_ms(20);
  }
  return -1;
}

/* Stops syncd; after SIGTERM it must exit 0 (clean shutdown; under ASan
 * also no leaks). */
static void syncd_stop(struct syncd_proc *p, int sig) {
  if (p->pid <= 0) return;
  kill(p->pid, sig);
  int st = 0;
  int64_t deadline = now_ms() + 10000;
  while (waitpid(p->pid, &st, WNOHANG) == 0) {
    if (now_ms() > deadline) {
      kill(p->pid, SIGKILL);
      waitpid(p->pid, &st, 0);
      break;
    }
    pause_ms(10);
  }
  if (sig == SIGTERM) {
    CU_ASSERT_TRUE(WIFEXITED(st));
    CU_ASSERT_EQUAL(WEXITSTATUS(st), 0);
  }
  p->pid = 0;
}

/* ---- Status via the project's unary client ---------------------------- */

static Edge__V1__StatusResponse *get_status(const struct syncd_proc *p) {
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

/* Waits until the version differs from `not` (and is > 0). */
static uint64_t wait_version_change(const struct syncd_proc *p, uint64_t not ) {
  int64_t deadline = now_ms() + 10000;
  while (now_ms() < deadline) {
    Edge__V1__StatusResponse *r = get_status(p);
    uint64_t v = r ? r->version : 0;
    if (r) edge__v1__status_response__free_unpacked(r, NULL);
    if (v > 0 && v != not ) return v;
    pause_ms(20);
  }
  return 0;
}

static const Edge__V1__NodeStatus *find_node(const Edge__V1__StatusResponse *r, const char *id) {
  for (size_t i = 0; i < r->n_nodes; i++)
    if (strcmp(r->nodes[i]->node_id, id) == 0) return r->nodes[i];
  return NULL;
}

/* Waits until node id is in state (returns 1) or the deadline passes. */
static int wait_node_state(const struct syncd_proc *p, const char *id, int state) {
  int64_t deadline = now_ms() + 10000;
  while (now_ms() < deadline) {
    Edge__V1__StatusResponse *r = get_status(p);
    int ok = 0;
    if (r) {
      const Edge__V1__NodeStatus *n = find_node(r, id);
      ok = n && (int)n->state == state;
      edge__v1__status_response__free_unpacked(r, NULL);
    }
    if (ok) return 1;
    pause_ms(20);
  }
  return 0;
}

/* ---- ConfigSync client -------------------------------------------------- */

static int send_proxy_msg(struct gsc_stream *g, Edge__V1__ProxyMessage *m) {
  size_t len = edge__v1__proxy_message__get_packed_size(m);
  uint8_t *buf = malloc(len ? len : 1);
  edge__v1__proxy_message__pack(m, buf);
  int rc = gsc_send(g, buf, len);
  free(buf);
  return rc;
}

static int send_hello_drain(struct gsc_stream *g, const char *id, uint64_t last_applied,
                            int draining) {
  Edge__V1__Hello h = EDGE__V1__HELLO__INIT;
  h.draining = draining;
  char addr[64], admin[64];
  snprintf(addr, sizeof(addr), "127.0.0.1:%d", 18000 + (int)strlen(id));
  snprintf(admin, sizeof(admin), "127.0.0.1:%d", 19000 + (int)strlen(id));
  h.node_id = (char *)id;
  h.address = addr;
  h.admin_address = admin;
  h.zone = "z1";
  h.build = "test/1";
  h.last_applied_version = last_applied;
  Edge__V1__ProxyMessage m = EDGE__V1__PROXY_MESSAGE__INIT;
  m.msg_case = EDGE__V1__PROXY_MESSAGE__MSG_HELLO;
  m.hello = &h;
  return send_proxy_msg(g, &m);
}

static int send_hello(struct gsc_stream *g, const char *id, uint64_t last_applied) {
  return send_hello_drain(g, id, last_applied, 0);
}

static int send_ack(struct gsc_stream *g, const Edge__V1__Push *p) {
  Edge__V1__Ack a = EDGE__V1__ACK__INIT;
  a.nonce = p->nonce;
  a.version = p->version;
  Edge__V1__ProxyMessage m = EDGE__V1__PROXY_MESSAGE__INIT;
  m.msg_case = EDGE__V1__PROXY_MESSAGE__MSG_ACK;
  m.ack = &a;
  return send_proxy_msg(g, &m);
}

static int send_nack(struct gsc_stream *g, const Edge__V1__Push *p, const char *error) {
  Edge__V1__Nack k = EDGE__V1__NACK__INIT;
  k.nonce = p->nonce;
  k.version = p->version;
  k.error = (char *)error;
  Edge__V1__ProxyMessage m = EDGE__V1__PROXY_MESSAGE__INIT;
  m.msg_case = EDGE__V1__PROXY_MESSAGE__MSG_NACK;
  m.nack = &k;
  return send_proxy_msg(g, &m);
}

/* Next Push within timeout_ms, or NULL. Free with free_push. */
static Edge__V1__SyncMessage *recv_push(struct gsc_stream *g, int timeout_ms) {
  uint8_t *buf;
  size_t len;
  if (gsc_recv(g, timeout_ms, &buf, &len) != 1) return NULL;
  Edge__V1__SyncMessage *m = edge__v1__sync_message__unpack(NULL, len, buf);
  free(buf);
  if (m && m->msg_case != EDGE__V1__SYNC_MESSAGE__MSG_PUSH) {
    edge__v1__sync_message__free_unpacked(m, NULL);
    return NULL;
  }
  return m;
}

static void free_push(Edge__V1__SyncMessage *m) {
  if (m) edge__v1__sync_message__free_unpacked(m, NULL);
}

static int push_has_vhost(const Edge__V1__Push *p, const char *name) {
  for (size_t i = 0; i < p->n_upserted; i++)
    if (p->upserted[i]->kind_case == EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST &&
        strcmp(p->upserted[i]->virtual_host->name, name) == 0)
      return 1;
  return 0;
}

/* ---- fixture ------------------------------------------------------------ */

struct fixture {
  char *src, *state;
  uint64_t first_version;
  struct syncd_proc p;
};

static void fixture_stop(struct fixture *f);

static int fixture_start(struct fixture *f) {
  memset(f, 0, sizeof(*f));
  f->src = make_temp_dir("src");
  f->state = make_temp_dir("state");
  if (!f->src || !f->state) {
    fixture_stop(f);
    return -1;
  }
  write_file(f->src, "00-class.yaml", "%s", CLASS_YAML);
  write_app(f->src, "alpha", "/");
  write_app(f->src, "beta", "/");
  write_tls_app(f->src, 7);
  if (syncd_start(&f->p, f->src, f->state) != 0 ||
      (f->first_version = wait_version_change(&f->p, 0)) == 0) {
    fixture_stop(f);
    return -1;
  }
  return 0;
}

static void fixture_stop(struct fixture *f) {
  syncd_stop(&f->p, SIGTERM);
  free(f->src);
  free(f->state);
}

/* ---- tests -------------------------------------------------------------- */

static void client_gets_full_state_then_only_the_changed_resources(void) {
  struct fixture f;
  CU_ASSERT_EQUAL_FATAL(fixture_start(&f), 0);
  struct gsc_stream g;
  CU_ASSERT_EQUAL_FATAL(gsc_open(&g, f.p.target, "/edge.v1.ConfigSync/Stream"), 0);
  CU_ASSERT_EQUAL_FATAL(send_hello(&g, "proxy-a", 0), 0);
  Edge__V1__SyncMessage *m = recv_push(&g, 10000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_TRUE(m->push->full);
  CU_ASSERT(push_has_vhost(m->push, "vh:alpha.test"));
  CU_ASSERT(push_has_vhost(m->push, "vh:beta.test"));
  uint64_t v1 = m->push->version;
  CU_ASSERT_EQUAL(send_ack(&g, m->push), 0);
  free_push(m);

  write_app(f.src, "beta", "/v2");
  m = recv_push(&g, 10000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_FALSE(m->push->full);
  CU_ASSERT_EQUAL(m->push->base_version, v1);
  CU_ASSERT(m->push->version != v1 && m->push->version != 0);
  CU_ASSERT_EQUAL(m->push->n_upserted, 1);
  CU_ASSERT(push_has_vhost(m->push, "vh:beta.test"));
  CU_ASSERT_EQUAL(m->push->n_removed, 0);
  CU_ASSERT_EQUAL(send_ack(&g, m->push), 0);
  free_push(m);
  CU_ASSERT(wait_node_state(&f.p, "proxy-a", EDGE__V1__NODE_STATE__NODE_STATE_SYNCED));

  /* Removing an app removes its resources by name. */
  char path[1200];
  snprintf(path, sizeof(path), "%s/alpha.yaml", f.src);
  unlink(path);
  m = recv_push(&g, 10000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_FALSE(m->push->full);
  int removed_vh = 0;
  for (size_t i = 0; i < m->push->n_removed; i++)
    removed_vh |= strcmp(m->push->removed[i]->name, "vh:alpha.test") == 0;
  CU_ASSERT(removed_vh);
  free_push(m);
  gsc_close(&g);
  fixture_stop(&f);
}

static char *run_capture(const char *cmd);

static void status_lists_certificates_with_hosts_and_expiry_and_never_keys(void) {
  struct fixture f;
  CU_ASSERT_EQUAL_FATAL(fixture_start(&f), 0);
  Edge__V1__StatusResponse *r = get_status(&f.p);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  const Edge__V1__CertificateStatus *c = NULL;
  for (size_t i = 0; i < r->n_certificates; i++)
    if (strcmp(r->certificates[i]->name, "default/secure-tls") == 0) c = r->certificates[i];
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  CU_ASSERT_EQUAL_FATAL(c->n_hosts, 1);
  CU_ASSERT_STRING_EQUAL(c->hosts[0], "secure.test");
  CU_ASSERT_TRUE(c->expiring); /* 7 days < the 14-day window */
  CU_ASSERT(c->not_after > (int64_t)time(NULL) + 6 * 86400);
  CU_ASSERT(c->issuer[0] != '\0');
  edge__v1__status_response__free_unpacked(r, NULL);

  char cmd[2400];
  snprintf(cmd, sizeof(cmd),
           "%s --syncd=%s --insecure status; %s --syncd=%s --insecure status --json", g_bin_syncctl,
           f.p.target, g_bin_syncctl, f.p.target);
  char *out = run_capture(cmd);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "default/secure-tls"));
  CU_ASSERT_PTR_NULL(strstr(out, "PRIVATE KEY"));
  free(out);
  /* /config dumps every resource, certificates without their keys. */
  snprintf(cmd, sizeof(cmd), "curl -s --max-time 5 http://127.0.0.1:%d/config", f.p.admin_port);
  out = run_capture(cmd);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "BEGIN CERTIFICATE"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "vh:secure.test"));
  CU_ASSERT_PTR_NULL(strstr(out, "PRIVATE KEY"));
  CU_ASSERT_PTR_NULL(strstr(out, "key_pem"));
  free(out);
  fixture_stop(&f);
}

static char *run_capture(const char *cmd) {
  FILE *p = popen(cmd, "r");
  if (!p) return NULL;
  size_t cap = 65536, len = 0;
  char *buf = malloc(cap);
  size_t n;
  while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
    len += n;
    if (len + 1 == cap) {
      cap *= 2;
      buf = realloc(buf, cap);
    }
  }
  buf[len] = '\0';
  pclose(p);
  return buf;
}

static void nack_is_recorded_and_shown_by_syncctl(void) {
  struct fixture f;
  CU_ASSERT_EQUAL_FATAL(fixture_start(&f), 0);
  struct gsc_stream g;
  CU_ASSERT_EQUAL_FATAL(gsc_open(&g, f.p.target, "/edge.v1.ConfigSync/Stream"), 0);
  CU_ASSERT_EQUAL_FATAL(send_hello(&g, "proxy-n", 0), 0);
  Edge__V1__SyncMessage *m = recv_push(&g, 10000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_EQUAL(send_ack(&g, m->push), 0);
  uint64_t v1 = m->push->version;
  free_push(m);

  write_app(f.src, "beta", "/nacked");
  m = recv_push(&g, 10000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_EQUAL(send_nack(&g, m->push, "certificate default/shop: key does not match"), 0);
  free_push(m);
  CU_ASSERT_FATAL(wait_node_state(&f.p, "proxy-n", EDGE__V1__NODE_STATE__NODE_STATE_NACKED));

  Edge__V1__StatusResponse *r = get_status(&f.p);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  const Edge__V1__NodeStatus *n = find_node(r, "proxy-n");
  CU_ASSERT_PTR_NOT_NULL_FATAL(n);
  CU_ASSERT_EQUAL(n->last_acked_version, v1); /* keeps serving the last good state */
  CU_ASSERT_STRING_EQUAL(n->last_error, "certificate default/shop: key does not match");
  edge__v1__status_response__free_unpacked(r, NULL);

  char cmd[2400];
  snprintf(cmd, sizeof(cmd), "%s --syncd=%s --insecure status", g_bin_syncctl, f.p.target);
  char *out = run_capture(cmd);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  printf("\n%s", out); /* in the test log, for whoever reads a failure */
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "VERSION(ACKED/PUSHED)"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "proxy-n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "NACKED"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "certificate default/shop: key does not match"));
  free(out);

  snprintf(cmd, sizeof(cmd), "%s --syncd=%s --insecure status --json", g_bin_syncctl, f.p.target);
  out = run_capture(cmd);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  json_error_t jerr;
  json_t *doc = json_loads(out, 0, &jerr);
  CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
  json_t *nodes = json_object_get(doc, "nodes");
  int found = 0;
  for (size_t i = 0; i < json_array_size(nodes); i++) {
    json_t *o = json_array_get(nodes, i);
    if (strcmp(json_string_value(json_object_get(o, "node_id")), "proxy-n") != 0) continue;
    found = 1;
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "state")), "NACKED");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "last_error")),
                           "certificate default/shop: key does not match");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "last_acked_version")), (json_int_t)v1);
  }
  CU_ASSERT(found);
  json_decref(doc);
  free(out);

  /* After a NACK the next version is pushed in full, so the proxy can resync. */
  write_app(f.src, "beta", "/fixed");
  m = recv_push(&g, 10000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_TRUE(m->push->full);
  CU_ASSERT_EQUAL(send_ack(&g, m->push), 0);
  free_push(m);
  CU_ASSERT(wait_node_state(&f.p, "proxy-n", EDGE__V1__NODE_STATE__NODE_STATE_SYNCED));
  gsc_close(&g);
  fixture_stop(&f);
}

static void syncctl_reports_unreachable_syncd_with_one_line(void) {
  /* A port nobody listens on: bind one, close it. */
  char cmd[1400];
  snprintf(cmd, sizeof(cmd),
           "%s --syncd=127.0.0.1:1 --insecure --timeout=2s status 2>&1; echo rc=$?", g_bin_syncctl);
  char *out = run_capture(cmd);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "syncctl: cannot get status from syncd at 127.0.0.1:1"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "rc=1"));
  free(out);
}

static void bad_messages_end_the_stream_with_invalid_argument(void) {
  struct fixture f;
  CU_ASSERT_EQUAL_FATAL(fixture_start(&f), 0);
  char details[256];
  /* No Hello first. */
  struct gsc_stream g;
  CU_ASSERT_EQUAL_FATAL(gsc_open(&g, f.p.target, "/edge.v1.ConfigSync/Stream"), 0);
  Edge__V1__Push fake = EDGE__V1__PUSH__INIT;
  fake.nonce = "nope";
  send_ack(&g, &fake);
  CU_ASSERT_EQUAL(gsc_wait_status(&g, 10000, details, sizeof(details)), 3);
  CU_ASSERT_PTR_NOT_NULL(strstr(details, "Hello"));
  gsc_close(&g);
  /* Garbage bytes. */
  CU_ASSERT_EQUAL_FATAL(gsc_open(&g, f.p.target, "/edge.v1.ConfigSync/Stream"), 0);
  gsc_send(&g, (const uint8_t *)"\xff\xff\xff\xff", 4);
  CU_ASSERT_EQUAL(gsc_wait_status(&g, 10000, details, sizeof(details)), 3);
  CU_ASSERT_PTR_NOT_NULL(strstr(details, "unparseable"));
  gsc_close(&g);
  /* Ack with a nonce never sent. */
  CU_ASSERT_EQUAL_FATAL(gsc_open(&g, f.p.target, "/edge.v1.ConfigSync/Stream"), 0);
  send_hello(&g, "proxy-bad", 0);
  Edge__V1__SyncMessage *m = recv_push(&g, 10000);
  CU_ASSERT_PTR_NOT_NULL(m);
  free_push(m);
  send_ack(&g, &fake);
  CU_ASSERT_EQUAL(gsc_wait_status(&g, 10000, details, sizeof(details)), 3);
  CU_ASSERT_PTR_NOT_NULL(strstr(details, "unknown nonce"));
  gsc_close(&g);
  /* syncd is still serving. */
  Edge__V1__StatusResponse *r = get_status(&f.p);
  CU_ASSERT_PTR_NOT_NULL(r);
  if (r) edge__v1__status_response__free_unpacked(r, NULL);
  fixture_stop(&f);
}

static void restarted_syncd_serves_the_persisted_version_at_once(void) {
  struct fixture f;
  CU_ASSERT_EQUAL_FATAL(fixture_start(&f), 0);
  write_app(f.src, "beta", "/v2");
  uint64_t v = wait_version_change(&f.p, f.first_version);
  CU_ASSERT_FATAL(v != 0 && v != f.first_version);
  syncd_stop(&f.p, SIGKILL);

  CU_ASSERT_EQUAL_FATAL(syncd_start(&f.p, f.src, f.state), 0);
  /* The first answer already carries the restored version. */
  Edge__V1__StatusResponse *r = get_status(&f.p);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL(r->version, v);
  edge__v1__status_response__free_unpacked(r, NULL);

  /* A proxy that already serves v gets no full push; the next change
   * arrives as a delta on top of v. */
  struct gsc_stream g;
  CU_ASSERT_EQUAL_FATAL(gsc_open(&g, f.p.target, "/edge.v1.ConfigSync/Stream"), 0);
  CU_ASSERT_EQUAL_FATAL(send_hello(&g, "proxy-r", v), 0);
  CU_ASSERT(wait_node_state(&f.p, "proxy-r", EDGE__V1__NODE_STATE__NODE_STATE_SYNCED));
  /* Rereading the unchanged source does not produce a new version. */
  int64_t deadline = now_ms() + 10000;
  int loaded = 0;
  while (!loaded && now_ms() < deadline) {
    r = get_status(&f.p);
    if (r) {
      loaded = r->n_sources == 1 && r->sources[0]->last_sync > 0;
      if (loaded) CU_ASSERT_EQUAL(r->version, v);
      edge__v1__status_response__free_unpacked(r, NULL);
    }
    if (!loaded) pause_ms(20);
  }
  CU_ASSERT(loaded);
  write_app(f.src, "beta", "/v3");
  Edge__V1__SyncMessage *m = recv_push(&g, 10000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_FALSE(m->push->full);
  CU_ASSERT_EQUAL(m->push->base_version, v);
  CU_ASSERT(m->push->version != v && m->push->version != 0);
  CU_ASSERT(push_has_vhost(m->push, "vh:beta.test"));
  free_push(m);
  gsc_close(&g);
  fixture_stop(&f);
}

static int file_contains(const char *path, const char *needle) {
  FILE *f = fopen(path, "r");
  char line[4096];
  int found = 0;
  while (f && !found && fgets(line, sizeof(line), f)) found = strstr(line, needle) != NULL;
  if (f) fclose(f);
  return found;
}

static void corrupt_state_file_is_reported_and_syncd_starts_from_the_source(void) {
  struct fixture f;
  CU_ASSERT_EQUAL_FATAL(fixture_start(&f), 0);
  syncd_stop(&f.p, SIGTERM);
  write_file(f.state, "journal", "EDGEJNX1 but then garbage, not a journal at all");
  CU_ASSERT_EQUAL_FATAL(syncd_start(&f.p, f.src, f.state), 0);
  CU_ASSERT(file_contains(f.p.log, "msg=state_corrupt"));
  /* It starts empty and builds the state from the source. */
  CU_ASSERT(wait_version_change(&f.p, 0) > 0);
  struct gsc_stream g;
  CU_ASSERT_EQUAL_FATAL(gsc_open(&g, f.p.target, "/edge.v1.ConfigSync/Stream"), 0);
  CU_ASSERT_EQUAL_FATAL(send_hello(&g, "proxy-c", 0), 0);
  Edge__V1__SyncMessage *m = recv_push(&g, 10000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_TRUE(m->push->full);
  CU_ASSERT(push_has_vhost(m->push, "vh:alpha.test"));
  free_push(m);
  gsc_close(&g);
  fixture_stop(&f);
}

/* Next ReplicaSet within timeout, or NULL. */
static Edge__V1__ReplicaSet *recv_set(struct gsc_stream *g, int timeout_ms) {
  uint8_t *buf;
  size_t len;
  if (gsc_recv(g, timeout_ms, &buf, &len) != 1) return NULL;
  Edge__V1__ReplicaSet *s = edge__v1__replica_set__unpack(NULL, len, buf);
  free(buf);
  return s;
}

/* Opens a Membership.Watch as l4lb `id`. */
static void open_watch(struct gsc_stream *w, const struct syncd_proc *p, const char *id) {
  CU_ASSERT_EQUAL_FATAL(gsc_open(w, p->target, "/edge.v1.Membership/Watch"), 0);
  Edge__V1__WatchRequest req = EDGE__V1__WATCH_REQUEST__INIT;
  req.node_id = (char *)id;
  req.address = "127.0.0.1:80";
  uint8_t buf[128];
  size_t len = edge__v1__watch_request__pack(&req, buf);
  CU_ASSERT_EQUAL_FATAL(gsc_send(w, buf, len), 0);
  CU_ASSERT_EQUAL(gsc_close_send(w), 0);
}

/* A proxy that applies the full state; the stream stays open in g. Returns
 * once syncd has seen the Ack (a close right after it could overtake it). */
static void join_proxy(struct gsc_stream *g, const struct syncd_proc *p, const char *id) {
  CU_ASSERT_EQUAL_FATAL(gsc_open(g, p->target, "/edge.v1.ConfigSync/Stream"), 0);
  CU_ASSERT_EQUAL_FATAL(send_hello(g, id, 0), 0);
  Edge__V1__SyncMessage *m = recv_push(g, 10000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_EQUAL(send_ack(g, m->push), 0);
  free_push(m);
  CU_ASSERT_FATAL(wait_node_state(p, id, EDGE__V1__NODE_STATE__NODE_STATE_SYNCED));
}

/* The node's replica fields from Status: in_set, and its reason in why. */
static int replica_status(const struct syncd_proc *p, const char *id, int *state, char *why,
                          size_t len) {
  Edge__V1__StatusResponse *r = get_status(p);
  const Edge__V1__NodeStatus *n = r ? find_node(r, id) : NULL;
  int in = n ? n->in_replica_set : -1;
  if (n) {
    snprintf(why, len, "%s", n->replica_reason);
    *state = n->state;
  }
  if (r) edge__v1__status_response__free_unpacked(r, NULL);
  return in;
}

/* Membership is the set of known proxies: a proxy joins when it has applied
 * a state, stays when its stream drops, and leaves once it has said it
 * drains and disconnects. */
static void membership_keeps_a_disconnected_proxy_and_drops_it_after_it_drains(void) {
  struct fixture f;
  CU_ASSERT_EQUAL_FATAL(fixture_start(&f), 0);
  struct gsc_stream w;
  open_watch(&w, &f.p, "l4-a");
  Edge__V1__ReplicaSet *s = recv_set(&w, 10000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  CU_ASSERT_EQUAL(s->n_replicas, 0);
  uint64_t sv = s->version;
  edge__v1__replica_set__free_unpacked(s, NULL);

  /* Connected but not yet acked: not a replica. */
  struct gsc_stream g;
  CU_ASSERT_EQUAL_FATAL(gsc_open(&g, f.p.target, "/edge.v1.ConfigSync/Stream"), 0);
  CU_ASSERT_EQUAL_FATAL(send_hello(&g, "proxy-m", 0), 0);
  Edge__V1__SyncMessage *m = recv_push(&g, 10000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  uint64_t v = m->push->version;
  CU_ASSERT_PTR_NULL(recv_set(&w, 200));
  char why[512] = "";
  int state = 0;
  CU_ASSERT_EQUAL(replica_status(&f.p, "proxy-m", &state, why, sizeof(why)), 0);
  CU_ASSERT_STRING_EQUAL(why, "out: has not applied a state yet");
  CU_ASSERT_EQUAL(send_ack(&g, m->push), 0);
  free_push(m);

  s = recv_set(&w, 10000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  CU_ASSERT(s->version > sv);
  CU_ASSERT_EQUAL_FATAL(s->n_replicas, 1);
  CU_ASSERT_STRING_EQUAL(s->replicas[0]->node_id, "proxy-m");
  CU_ASSERT_STRING_EQUAL(s->replicas[0]->address, "127.0.0.1:18007");
  CU_ASSERT_STRING_EQUAL(s->replicas[0]->check_address, "127.0.0.1:19007");
  CU_ASSERT_STRING_EQUAL(s->replicas[0]->zone, "z1");
  CU_ASSERT_EQUAL(s->replicas[0]->weight, 1);
  edge__v1__replica_set__free_unpacked(s, NULL);
  CU_ASSERT_EQUAL(replica_status(&f.p, "proxy-m", &state, why, sizeof(why)), 1);
  CU_ASSERT_STRING_EQUAL(why, "in: applied a state");

  /* The watcher is listed as an l4lb node. */
  Edge__V1__StatusResponse *r = get_status(&f.p);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  const Edge__V1__NodeStatus *n = find_node(r, "l4-a");
  CU_ASSERT_PTR_NOT_NULL(n);
  if (n) CU_ASSERT_EQUAL(n->kind, EDGE__V1__NODE_KIND__NODE_KIND_L4LB);
  edge__v1__status_response__free_unpacked(r, NULL);

  /* The stream drops: still known, still a replica, nothing sent. */
  gsc_close(&g);
  CU_ASSERT(wait_node_state(&f.p, "proxy-m", EDGE__V1__NODE_STATE__NODE_STATE_DISCONNECTED));
  CU_ASSERT_PTR_NULL(recv_set(&w, 500));
  CU_ASSERT_EQUAL(replica_status(&f.p, "proxy-m", &state, why, sizeof(why)), 1);
  CU_ASSERT_EQUAL(strncmp(why, "in: known, disconnected for ", 28), 0);

  /* It comes back draining (SIGTERM): flagged, then gone when it leaves. */
  CU_ASSERT_EQUAL_FATAL(gsc_open(&g, f.p.target, "/edge.v1.ConfigSync/Stream"), 0);
  CU_ASSERT_EQUAL_FATAL(send_hello_drain(&g, "proxy-m", v, 1), 0);
  s = recv_set(&w, 10000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  CU_ASSERT_EQUAL_FATAL(s->n_replicas, 1);
  CU_ASSERT_TRUE(s->replicas[0]->draining);
  edge__v1__replica_set__free_unpacked(s, NULL);
  gsc_close(&g);
  s = recv_set(&w, 10000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  CU_ASSERT_EQUAL(s->n_replicas, 0);
  edge__v1__replica_set__free_unpacked(s, NULL);
  CU_ASSERT_EQUAL(replica_status(&f.p, "proxy-m", &state, why, sizeof(why)), 0);
  CU_ASSERT_STRING_EQUAL(why, "out: left (disconnected while draining)");
  gsc_close(&w);
  fixture_stop(&f);
}

/* The replica set is persisted with syncd's state: after a crash, the first
 * set a watcher gets already lists the proxies syncd knew, before any of
 * them reconnects (a set without them would empty the l4lbs' tables). */
static void restarted_syncd_sends_the_known_set_before_any_proxy_reconnects(void) {
  struct fixture f;
  CU_ASSERT_EQUAL_FATAL(fixture_start(&f), 0);
  uint64_t v = wait_version_change(&f.p, 0);
  struct gsc_stream g, w;
  join_proxy(&g, &f.p, "proxy-back");
  open_watch(&w, &f.p, "l4-r");
  int64_t deadline = now_ms() + 10000;
  size_t listed = 0;
  while (listed == 0 && now_ms() < deadline) {
    Edge__V1__ReplicaSet *s = recv_set(&w, 1000);
    if (s) listed = s->n_replicas;
    if (s) edge__v1__replica_set__free_unpacked(s, NULL);
  }
  CU_ASSERT_EQUAL_FATAL(listed, 1);
  gsc_close(&w);
  syncd_stop(&f.p, SIGKILL); /* no clean shutdown: the join was saved when it happened */
  gsc_close(&g);
  CU_ASSERT_EQUAL_FATAL(syncd_start(&f.p, f.src, f.state), 0);
  CU_ASSERT(file_contains(f.p.log, "msg=replicas_restored count=1"));

  open_watch(&w, &f.p, "l4-r");
  Edge__V1__ReplicaSet *s = recv_set(&w, 10000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  CU_ASSERT_EQUAL_FATAL(s->n_replicas, 1);
  CU_ASSERT_STRING_EQUAL(s->replicas[0]->node_id, "proxy-back");
  CU_ASSERT_STRING_EQUAL(s->replicas[0]->address, "127.0.0.1:18010");
  CU_ASSERT_STRING_EQUAL(s->replicas[0]->check_address, "127.0.0.1:19010");
  edge__v1__replica_set__free_unpacked(s, NULL);
  char why[512] = "";
  int state = 0;
  CU_ASSERT_EQUAL(replica_status(&f.p, "proxy-back", &state, why, sizeof(why)), 1);
  CU_ASSERT_EQUAL(state, EDGE__V1__NODE_STATE__NODE_STATE_DISCONNECTED);
  CU_ASSERT_EQUAL(strncmp(why, "in: restored from the state directory", 37), 0);
  char cmd[2400];
  snprintf(cmd, sizeof(cmd), "%s --syncd=%s --insecure status", g_bin_syncctl, f.p.target);
  char *out = run_capture(cmd);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "LAST SEEN"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "REPLICA SET (1 of 1 l7proxies"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "proxy-back  in: restored from the state directory"));
  free(out);
  snprintf(cmd, sizeof(cmd), "%s --syncd=%s --insecure status --json", g_bin_syncctl, f.p.target);
  out = run_capture(cmd);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"in_replica_set\": true"));
  free(out);

  /* It reconnects at the restored version: nothing changes for the l4lbs. */
  CU_ASSERT_EQUAL_FATAL(gsc_open(&g, f.p.target, "/edge.v1.ConfigSync/Stream"), 0);
  CU_ASSERT_EQUAL_FATAL(send_hello(&g, "proxy-back", v), 0);
  CU_ASSERT(wait_node_state(&f.p, "proxy-back", EDGE__V1__NODE_STATE__NODE_STATE_SYNCED));
  CU_ASSERT_PTR_NULL(recv_set(&w, 500));
  CU_ASSERT_EQUAL(replica_status(&f.p, "proxy-back", &state, why, sizeof(why)), 1);
  CU_ASSERT_STRING_EQUAL(why, "in: applied a state");
  gsc_close(&g);
  gsc_close(&w);
  fixture_stop(&f);
}

/* A proxy disconnected longer than --replica-removal-timeout leaves; the
 * deprecated --membership-grace is accepted and ignored. */
static void a_proxy_away_longer_than_the_removal_timeout_leaves_the_set(void) {
  struct fixture f;
  g_extra_flag = "--replica-removal-timeout=1s";
  int rc = fixture_start(&f);
  g_extra_flag = NULL;
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  struct gsc_stream g, w;
  join_proxy(&g, &f.p, "proxy-gone");
  open_watch(&w, &f.p, "l4-e");
  gsc_close(&g);
  int64_t deadline = now_ms() + 15000;
  int emptied = 0, seen = 0;
  while (!emptied && now_ms() < deadline) {
    Edge__V1__ReplicaSet *s = recv_set(&w, 1000);
    if (!s) continue;
    seen |= s->n_replicas == 1;
    emptied = seen && s->n_replicas == 0;
    edge__v1__replica_set__free_unpacked(s, NULL);
  }
  CU_ASSERT_TRUE(emptied);
  char why[512] = "";
  int state = 0;
  CU_ASSERT_EQUAL(replica_status(&f.p, "proxy-gone", &state, why, sizeof(why)), 0);
  CU_ASSERT_STRING_EQUAL(why, "out: removed after being disconnected longer than 1s");
  CU_ASSERT(file_contains(f.p.log, "msg=replicas_expired count=1"));
  gsc_close(&w);
  syncd_stop(&f.p, SIGTERM);

  g_extra_flag = "--membership-grace=5s";
  CU_ASSERT_EQUAL_FATAL(syncd_start(&f.p, f.src, f.state), 0);
  g_extra_flag = NULL;
  CU_ASSERT(file_contains(f.p.log, "msg=deprecated_flag flag=membership-grace"));
  CU_ASSERT(wait_version_change(&f.p, 0) > 0); /* up (signal handlers too) before the stop */
  fixture_stop(&f);
}

static void slow_proxy_receives_the_newest_state_not_a_queue(void) {
  struct fixture f;
  CU_ASSERT_EQUAL_FATAL(fixture_start(&f), 0);
  uint64_t v = wait_version_change(&f.p, 0);
  struct gsc_stream g;
  CU_ASSERT_EQUAL_FATAL(gsc_open(&g, f.p.target, "/edge.v1.ConfigSync/Stream"), 0);
  CU_ASSERT_EQUAL_FATAL(send_hello(&g, "proxy-slow", 0), 0);
  Edge__V1__SyncMessage *m = recv_push(&g, 10000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_EQUAL(send_ack(&g, m->push), 0);
  free_push(m);

  /* 20 versions while the proxy reads nothing. */
  for (int i = 1; i <= 20; i++) {
    char path[32];
    snprintf(path, sizeof(path), "/v%d", i);
    write_app(f.src, "beta", path);
    uint64_t nv = wait_version_change(&f.p, v);
    CU_ASSERT_FATAL(nv != 0 && nv != v);
    v = nv;
  }
  int pushes = 0;
  uint64_t last = 0;
  while (last != v) {
    m = recv_push(&g, 10000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    pushes++;
    last = m->push->version;
    CU_ASSERT_EQUAL(send_ack(&g, m->push), 0);
    free_push(m);
  }
  CU_ASSERT_EQUAL(last, v);
  /* The push in flight when the proxy stalled, then one to the newest. */
  CU_ASSERT(pushes <= 3);
  printf("\n  slow proxy: %d pushes for 20 versions\n", pushes);
  CU_ASSERT(wait_node_state(&f.p, "proxy-slow", EDGE__V1__NODE_STATE__NODE_STATE_SYNCED));
  gsc_close(&g);
  fixture_stop(&f);
}

/* How many nodes Status lists under id (-1: no Status). */
static int nodes_named(const struct syncd_proc *p, const char *id) {
  Edge__V1__StatusResponse *r = get_status(p);
  if (!r) return -1;
  int count = 0;
  for (size_t i = 0; i < r->n_nodes; i++) count += strcmp(r->nodes[i]->node_id, id) == 0;
  edge__v1__status_response__free_unpacked(r, NULL);
  return count;
}

static void second_stream_of_a_node_replaces_the_first(void) {
  struct fixture f;
  CU_ASSERT_EQUAL_FATAL(fixture_start(&f), 0);
  struct gsc_stream a, b;
  CU_ASSERT_EQUAL_FATAL(gsc_open(&a, f.p.target, "/edge.v1.ConfigSync/Stream"), 0);
  send_hello(&a, "proxy-dup", 0);
  Edge__V1__SyncMessage *m = recv_push(&a, 10000);
  CU_ASSERT_PTR_NOT_NULL(m);
  free_push(m);
  CU_ASSERT_EQUAL_FATAL(gsc_open(&b, f.p.target, "/edge.v1.ConfigSync/Stream"), 0);
  send_hello(&b, "proxy-dup", 0);
  m = recv_push(&b, 10000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_TRUE(m->push->full);
  send_ack(&b, m->push);
  free_push(m);
  char details[256];
  CU_ASSERT_EQUAL(gsc_wait_status(&a, 10000, details, sizeof(details)), 1);
  CU_ASSERT(wait_node_state(&f.p, "proxy-dup", EDGE__V1__NODE_STATE__NODE_STATE_SYNCED));
  CU_ASSERT_EQUAL(nodes_named(&f.p, "proxy-dup"), 1);
  gsc_close(&a);
  gsc_close(&b);
  fixture_stop(&f);
}

/* The membership counterpart (common/registry's rule): a newer watch of the
 * same l4lb replaces the older one, which ends CANCELLED; the end of the
 * replaced watch does not disconnect the node, there is one node for the
 * id, and the next set goes to the newer watch. */
static void second_watch_of_an_l4lb_replaces_the_first(void) {
  struct fixture f;
  CU_ASSERT_EQUAL_FATAL(fixture_start(&f), 0);
  struct gsc_stream a, b, g;
  open_watch(&a, &f.p, "l4-dup");
  Edge__V1__ReplicaSet *s = recv_set(&a, 10000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  edge__v1__replica_set__free_unpacked(s, NULL);
  open_watch(&b, &f.p, "l4-dup");
  s = recv_set(&b, 10000); /* the newer watch starts with the current set */
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  edge__v1__replica_set__free_unpacked(s, NULL);
  char details[256] = "";
  CU_ASSERT_EQUAL(gsc_wait_status(&a, 10000, details, sizeof(details)), 1);
  CU_ASSERT_STRING_EQUAL(details, "replaced by a newer watch of this node");
  gsc_close(&a);

  join_proxy(&g, &f.p, "proxy-w");
  s = recv_set(&b, 10000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  CU_ASSERT_EQUAL(s->n_replicas, 1);
  edge__v1__replica_set__free_unpacked(s, NULL);
  CU_ASSERT(wait_node_state(&f.p, "l4-dup", EDGE__V1__NODE_STATE__NODE_STATE_SYNCED));
  CU_ASSERT_EQUAL(nodes_named(&f.p, "l4-dup"), 1);
  gsc_close(&g);
  gsc_close(&b);
  fixture_stop(&f);
}

static int suite_init(void) {
  find_binaries();
  grpc_init();
  return 0;
}

static int suite_clean(void) {
  grpc_shutdown();
  return 0;
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("syncd", suite_init, suite_clean);
  CU_add_test(s, "client_gets_full_state_then_only_the_changed_resources",
              client_gets_full_state_then_only_the_changed_resources);
  CU_add_test(s, "nack_is_recorded_and_shown_by_syncctl", nack_is_recorded_and_shown_by_syncctl);
  CU_add_test(s, "status_lists_certificates_with_hosts_and_expiry_and_never_keys",
              status_lists_certificates_with_hosts_and_expiry_and_never_keys);
  CU_add_test(s, "syncctl_reports_unreachable_syncd_with_one_line",
              syncctl_reports_unreachable_syncd_with_one_line);
  CU_add_test(s, "bad_messages_end_the_stream_with_invalid_argument",
              bad_messages_end_the_stream_with_invalid_argument);
  CU_add_test(s, "restarted_syncd_serves_the_persisted_version_at_once",
              restarted_syncd_serves_the_persisted_version_at_once);
  CU_add_test(s, "corrupt_state_file_is_reported_and_syncd_starts_from_the_source",
              corrupt_state_file_is_reported_and_syncd_starts_from_the_source);
  CU_add_test(s, "restarted_syncd_sends_the_known_set_before_any_proxy_reconnects",
              restarted_syncd_sends_the_known_set_before_any_proxy_reconnects);
  CU_add_test(s, "membership_keeps_a_disconnected_proxy_and_drops_it_after_it_drains",
              membership_keeps_a_disconnected_proxy_and_drops_it_after_it_drains);
  CU_add_test(s, "a_proxy_away_longer_than_the_removal_timeout_leaves_the_set",
              a_proxy_away_longer_than_the_removal_timeout_leaves_the_set);
  CU_add_test(s, "slow_proxy_receives_the_newest_state_not_a_queue",
              slow_proxy_receives_the_newest_state_not_a_queue);
  CU_add_test(s, "second_stream_of_a_node_replaces_the_first",
              second_stream_of_a_node_replaces_the_first);
  CU_add_test(s, "second_watch_of_an_l4lb_replaces_the_first",
              second_watch_of_an_l4lb_replaces_the_first);
}
