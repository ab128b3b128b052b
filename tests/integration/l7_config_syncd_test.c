/*
 * l7proxy config client against the real syncd (//syncd:syncd) on
 * 127.0.0.1: syncd reads a temporary manifest directory; the client
 * connects, receives the full state and Acks it (syncd then reports the
 * node SYNCED), receives a delta when a manifest is added, and keeps its
 * snapshot when syncd is killed.
 *
 * syncd's ports come from its "listening" log line. Every wait runs the
 * client's loop against a deadline; nothing sleeps for a condition.
 */
#include <CUnit/CUnit.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "common/rpc.h"
#include "edge/v1/status.pb-c.h"
#include "l7proxy/config_client.h"
#include "l7proxy/config_store.h"
#include "l7proxy/snapshot.h"

static char *tmp_dir(const char *what) {
  const char *base = getenv("TEST_TMPDIR");
  char tmpl[1024];
  snprintf(tmpl, sizeof(tmpl), "%s/%sXXXXXX", base ? base : "/tmp", what);
  char *d = mkdtemp(tmpl);
  return d ? strdup(d) : NULL;
}

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

static const char CLASS_YAML[] =
    "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: edge\n"
    "  annotations:\n    ingressclass.kubernetes.io/is-default-class: \"true\"\n"
    "spec:\n  controller: edge.dev/ingress-controller\n";

/* Ingress APP.test → Service APP:80 → one ready endpoint 127.0.0.1:PORT. */
static void write_app(const char *dir, const char *app, int port) {
  char name[128];
  snprintf(name, sizeof(name), "%s.yaml", app);
  write_file(dir, name,
             "apiVersion: v1\nkind: Service\nmetadata:\n  name: %s\n  namespace: default\n"
             "spec:\n  ports:\n    - name: http\n      port: 80\n      targetPort: %d\n"
             "---\n"
             "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: %s-1\n"
             "  namespace: default\n  labels:\n    kubernetes.io/service-name: %s\n"
             "addressType: IPv4\nports:\n  - name: http\n    port: %d\n"
             "endpoints:\n  - addresses: [\"127.0.0.1\"]\n    conditions:\n      ready: true\n"
             "---\n"
             "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: %s\n"
             "  namespace: default\n  creationTimestamp: \"2026-01-01T00:00:01Z\"\n"
             "spec:\n  rules:\n    - host: %s.test\n      http:\n        paths:\n"
             "          - path: /\n            pathType: Prefix\n            backend:\n"
             "              service:\n                name: %s\n                port:\n"
             "                  number: 80\n",
             app, port, app, app, port, app, app, app);
}

struct syncd_proc {
  pid_t pid;
  char target[64];
};

static void run_for(uv_loop_t *loop, uint64_t ms) {
  uint64_t end = uv_now(loop) + ms;
  while (uv_now(loop) < end) {
    uv_run(loop, UV_RUN_NOWAIT);
    uv_sleep(5);
    uv_update_time(loop);
  }
}

static int syncd_start(struct syncd_proc *p, uv_loop_t *loop, const char *src, const char *state) {
  const char *srcdir = getenv("TEST_SRCDIR"), *ws = getenv("TEST_WORKSPACE");
  char bin[1024], logf[1100], source[1100], statef[1100];
  snprintf(bin, sizeof(bin), "%s/%s/syncd/syncd", srcdir ? srcdir : ".", ws ? ws : "edge");
  const char *base = getenv("TEST_TMPDIR");
  snprintf(logf, sizeof(logf), "%s/syncd-%d.log", base ? base : "/tmp", (int)getpid());
  snprintf(source, sizeof(source), "--source=dir:%s", src);
  snprintf(statef, sizeof(statef), "--state-dir=%s", state);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 2);
      dup2(fd, 1);
    }
    execl(bin, "syncd", source, statef, "--insecure", "--listen=127.0.0.1:0", "--admin=127.0.0.1:0",
          "--debounce=20ms", "--max-delay=200ms", (char *)NULL);
    _exit(127);
  }
  p->pid = pid;
  uint64_t deadline = uv_now(loop) + 15000;
  while (uv_now(loop) < deadline) {
    FILE *f = fopen(logf, "r");
    char line[2048];
    int port = 0;
    while (f && fgets(line, sizeof(line), f)) {
      char *l = strstr(line, "msg=listening ");
      char *g = l ? strstr(l, "grpc_port=") : NULL;
      if (g && sscanf(g, "grpc_port=%d", &port) == 1) break;
    }
    if (f) fclose(f);
    if (port > 0) {
      snprintf(p->target, sizeof(p->target), "127.0.0.1:%d", port);
      return 0;
    }
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      p->pid = 0;
      return -1;
    }
    run_for(loop, 20);
  }
  return -1;
}

static void syncd_kill(struct syncd_proc *p) {
  if (p->pid <= 0) return;
  kill(p->pid, SIGKILL);
  int st;
  waitpid(p->pid, &st, 0);
  p->pid = 0;
}

/* The node's state as syncd's Status reports it (0 if unknown). */
static int node_state(const struct syncd_proc *p, const char *id) {
  struct rpc_creds creds = {.insecure = 1};
  Edge__V1__StatusRequest req = EDGE__V1__STATUS_REQUEST__INIT;
  uint8_t buf[8];
  size_t len = edge__v1__status_request__pack(&req, buf);
  uint8_t *resp = NULL;
  size_t resp_len = 0;
  char err[256];
  if (rpc_unary_call(p->target, "/edge.v1.Status/Get", &creds, buf, len, 5000, &resp, &resp_len,
                     err, sizeof(err)) != 0)
    return 0;
  Edge__V1__StatusResponse *r = edge__v1__status_response__unpack(NULL, resp_len, resp);
  free(resp);
  int state = 0;
  for (size_t i = 0; r && i < r->n_nodes; i++)
    if (strcmp(r->nodes[i]->node_id, id) == 0) state = r->nodes[i]->state;
  if (r) edge__v1__status_response__free_unpacked(r, NULL);
  return state;
}

/* Name of the cluster serving host "/" in the current snapshot, or "". */
static void cluster_for(const char *host, char *out, size_t outlen) {
  struct l7_snapshot *s = l7_snapshot_current();
  const struct l7_route *r = l7_snapshot_match(s, host, strlen(host), "/", 1);
  const struct l7_cluster *c = l7_snapshot_route_cluster(s, r);
  snprintf(out, outlen, "%s", c ? c->name : "");
  l7_snapshot_unref(s);
}

static int wait_acks(uv_loop_t *loop, struct l7_config_client *c, uint64_t n) {
  uint64_t deadline = uv_now(loop) + 15000;
  struct l7_config_client_stats st;
  while (uv_now(loop) < deadline) {
    l7_config_client_stats(c, &st);
    if (st.acks >= n) return 1;
    run_for(loop, 10);
  }
  return 0;
}

static void set_flag(void *arg) {
  *(int *)arg = 1;
}

static void client_syncs_with_real_syncd_and_survives_its_death(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct rpc_runtime *rt;
  CU_ASSERT_EQUAL_FATAL(rpc_runtime_new(&loop, &rt), 0);
  char *src = tmp_dir("src"), *state = tmp_dir("state"), *cache = tmp_dir("cache");
  CU_ASSERT_PTR_NOT_NULL_FATAL(src);
  write_file(src, "class.yaml", "%s", CLASS_YAML);
  write_app(src, "shop", 8080);

  struct syncd_proc sp = {0};
  CU_ASSERT_EQUAL_FATAL(syncd_start(&sp, &loop, src, state), 0);

  l7_snapshot_publish(NULL);
  struct l7_config_store *st;
  CU_ASSERT_EQUAL_FATAL(l7_config_store_new(cache, &st), 0);
  struct l7_config_client_opts co = {.syncd = sp.target,
                                     .creds = {.insecure = 1},
                                     .node_id = "l7-real",
                                     .address = "127.0.0.1:18080",
                                     .admin_address = "127.0.0.1:19901",
                                     .build = "edge/test",
                                     .backoff_initial_ms = 50,
                                     .backoff_max_ms = 500};
  struct l7_config_client *c;
  CU_ASSERT_EQUAL_FATAL(l7_config_client_start(&loop, rt, st, &co, NULL, NULL, &c), 0);

  /* Full state → Ack; the snapshot routes shop.test. */
  CU_ASSERT_TRUE_FATAL(wait_acks(&loop, c, 1));
  char name[128];
  cluster_for("shop.test", name, sizeof(name));
  CU_ASSERT_PTR_NOT_NULL(strstr(name, "shop"));
  uint64_t v1 = l7_config_store_version(st);
  CU_ASSERT(v1 > 0);
  int synced = 0;
  uint64_t deadline = uv_now(&loop) + 10000;
  while (!synced && uv_now(&loop) < deadline) {
    synced = node_state(&sp, "l7-real") == EDGE__V1__NODE_STATE__NODE_STATE_SYNCED;
    if (!synced) run_for(&loop, 20);
  }
  CU_ASSERT_TRUE(synced);

  /* A new Ingress → a delta → Ack; both hosts route. */
  write_app(src, "api", 8081);
  int both = 0;
  deadline = uv_now(&loop) + 15000;
  while (!both && uv_now(&loop) < deadline) {
    cluster_for("api.test", name, sizeof(name));
    both = strstr(name, "api") != NULL;
    if (!both) run_for(&loop, 20);
  }
  CU_ASSERT_TRUE(both);
  CU_ASSERT(l7_config_store_version(st) != v1); /* versions name content */
  cluster_for("shop.test", name, sizeof(name));
  CU_ASSERT_PTR_NOT_NULL(strstr(name, "shop"));

  /* syncd dies: the client notices, the snapshot stays, the cache holds it. */
  uint64_t applied = l7_config_store_version(st);
  syncd_kill(&sp);
  struct l7_config_client_stats stats;
  deadline = uv_now(&loop) + 10000;
  do {
    run_for(&loop, 20);
    l7_config_client_stats(c, &stats);
  } while (stats.connected && uv_now(&loop) < deadline);
  CU_ASSERT_FALSE(stats.connected);
  cluster_for("api.test", name, sizeof(name));
  CU_ASSERT_PTR_NOT_NULL(strstr(name, "api"));

  struct l7_config_store *again;
  struct l7_snapshot *cached;
  char err[256] = "";
  l7_config_store_flush(st); /* the cache is written in the background */
  CU_ASSERT_EQUAL_FATAL(l7_config_store_new(cache, &again), 0);
  CU_ASSERT_EQUAL(l7_config_store_load_cache(again, &cached, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(l7_snapshot_version(cached), applied);
  l7_snapshot_unref(cached);
  l7_config_store_free(again);

  int done = 0;
  l7_config_client_close(c, set_flag, &done);
  deadline = uv_now(&loop) + 10000;
  while (!done && uv_now(&loop) < deadline) run_for(&loop, 10);
  CU_ASSERT_TRUE(done);
  rpc_runtime_free(rt);
  uv_run(&loop, UV_RUN_DEFAULT);
  CU_ASSERT_EQUAL(uv_loop_close(&loop), 0);
  l7_config_store_free(st);
  l7_snapshot_publish(NULL);
  free(src);
  free(state);
  free(cache);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("l7_config_syncd", NULL, NULL);
  CU_add_test(s, "client_syncs_with_real_syncd_and_survives_its_death",
              client_syncs_with_real_syncd_and_survives_its_death);
}
