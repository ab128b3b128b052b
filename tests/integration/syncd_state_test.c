/*
 * syncd's state on disk and resync by version, against the real syncd:
 *   - kill -9 in the middle of a burst of changes loses no change a proxy
 *     had already been sent and acked (the restart serves that state or a
 *     newer one before it even reads its source again);
 *   - a torn last journal record (a crash mid-append) is detected, logged
 *     and dropped: the restart serves the change before it, whole;
 *   - a proxy that reconnects at the current version is sent nothing (no
 *     push, no bytes: edge_syncd_push_bytes_total does not move), also
 *     after a syncd restart; at an older known version it gets a delta.
 * The restarted syncd reads its source only after a long debounce, so
 * what it serves first comes from the journal alone.
 */
#include <CUnit/CUnit.h>
#include <grpc/grpc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cert.h"
#include "tests/integration/syncd_proc.h"

static char g_syncd[1024];

static const char *const FAST[] = {"--debounce=5ms", "--max-delay=20ms", NULL};
/* The source is read a minute after start: the journal alone is served. */
static const char *const SLOW[] = {"--debounce=60s", "--max-delay=60s", NULL};

static void write_base(const char *src) {
  sp_write_file(src, "00-base.yaml",
                "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: edge\n"
                "  annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}\n"
                "spec: {controller: edge.dev/ingress-controller}\n---\n"
                "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\n"
                "spec: {clusterIP: 10.0.0.1, ports: [{name: http, port: 80}]}\n");
}

/* The route Ingress: host route.test with the one path /bN. */
static void write_route(const char *src, int n) {
  sp_write_file(src, "20-route.yaml",
                "apiVersion: networking.k8s.io/v1\nkind: Ingress\n"
                "metadata: {name: route, namespace: default}\nspec:\n  rules:\n"
                "  - host: route.test\n    http:\n      paths:\n"
                "      - {path: /b%d, pathType: Prefix, backend: {service: {name: web, port: "
                "{number: 80}}}}\n",
                n);
}

/* N of the /bN route in a push's vh:route.test, or -1 when absent. */
static int route_n(const Edge__V1__Push *p) {
  const Edge__V1__VirtualHost *vh = sp_push_vhost(p, "vh:route.test");
  int n = -1;
  if (vh && vh->n_routes == 1) sscanf(vh->routes[0]->path, "/b%d", &n);
  return n;
}

struct world {
  char *src, *state;
  struct syncd_proc p;
};

static void world_start(struct world *w, const char *const *flags) {
  CU_ASSERT_EQUAL_FATAL(sp_start(&w->p, g_syncd, w->src, w->state, flags), 0);
}

static void world_init(struct world *w) {
  w->src = sp_temp_dir("src");
  w->state = sp_temp_dir("state");
  CU_ASSERT_PTR_NOT_NULL_FATAL(w->src);
  CU_ASSERT_PTR_NOT_NULL_FATAL(w->state);
  write_base(w->src);
  write_route(w->src, 0);
}

static void world_free(struct world *w) {
  sp_stop(&w->p, SIGKILL);
  char cmd[2400];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", w->src, w->state);
  CU_ASSERT_EQUAL(system(cmd), 0);
  free(w->src);
  free(w->state);
}

/* A proxy's Hello(0), the full push, its Ack; returns the version. */
static uint64_t connect_and_sync(struct gsc_stream *g, const struct syncd_proc *p, const char *id,
                                 int *route) {
  CU_ASSERT_EQUAL_FATAL(gsc_open(g, p->target, "/edge.v1.ConfigSync/Stream"), 0);
  CU_ASSERT_EQUAL_FATAL(sp_hello(g, id, 0), 0);
  Edge__V1__SyncMessage *m = NULL;
  int64_t deadline = sp_now_ms() + 15000;
  while (!m && sp_now_ms() < deadline) m = sp_recv_push(g, 200, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_TRUE(m->push->full);
  if (route) *route = route_n(m->push);
  uint64_t v = m->push->version;
  CU_ASSERT_EQUAL(sp_ack(g, m->push), 0);
  edge__v1__sync_message__free_unpacked(m, NULL);
  return v;
}

/* One burst: a change every few milliseconds, the proxy acking what it is
 * sent; syncd is killed (-9) right after the kill_at-th change is written.
 * Returns the highest route the proxy acked. */
static int burst_then_kill(struct world *w, int kill_at) {
  struct gsc_stream g;
  int acked = -1;
  connect_and_sync(&g, &w->p, "burst", &acked);
  for (int k = 1; k <= kill_at; k++) {
    write_route(w->src, k);
    Edge__V1__SyncMessage *m;
    size_t bytes;
    while ((m = sp_recv_push(&g, 3, &bytes))) { /* take what has arrived */
      int n = route_n(m->push);
      CU_ASSERT_FALSE(m->push->full);
      if (sp_ack(&g, m->push) == 0 && n > acked) acked = n;
      edge__v1__sync_message__free_unpacked(m, NULL);
    }
  }
  sp_stop(&w->p, SIGKILL);
  gsc_close(&g);
  return acked;
}

static void kill_9_during_a_burst_loses_no_accepted_change(void) {
  static const int kill_points[] = {7, 23, 41};
  for (size_t i = 0; i < sizeof(kill_points) / sizeof(kill_points[0]); i++) {
    struct world w;
    world_init(&w);
    world_start(&w, FAST);
    int acked = burst_then_kill(&w, kill_points[i]);
    CU_ASSERT(acked > 0); /* the burst was pushed and acked as it went */
    /* restarted, not reading the source for a minute: the journal speaks */
    world_start(&w, SLOW);
    CU_ASSERT(sp_file_contains(w.p.log, "msg=state_restored"));
    struct gsc_stream g;
    int restored = -1;
    connect_and_sync(&g, &w.p, "after", &restored);
    fprintf(stderr, "kill after change %d: acked up to %d, restored %d\n", kill_points[i], acked,
            restored);
    CU_ASSERT(restored >= acked); /* every acked change survived the kill */
    CU_ASSERT(restored <= kill_points[i]);
    gsc_close(&g);
    world_free(&w);
  }
}

static off_t file_size(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? sb.st_size : -1;
}

static void torn_journal_tail_is_dropped_and_the_change_before_is_served(void) {
  struct world w;
  world_init(&w);
  world_start(&w, FAST);
  uint64_t v = sp_wait_version_change(&w.p, 0), versions[3];
  for (int k = 1; k <= 3; k++) {
    write_route(w.src, k);
    versions[k - 1] = v = sp_wait_version_change(&w.p, v);
    CU_ASSERT_FATAL(v != 0);
  }
  sp_stop(&w.p, SIGTERM);
  char journal[1200];
  snprintf(journal, sizeof(journal), "%s/journal", w.state);
  off_t size = file_size(journal);
  CU_ASSERT_FATAL(size > 100);
  /* a crash in the middle of writing the last change */
  CU_ASSERT_EQUAL_FATAL(truncate(journal, size - 7), 0);
  world_start(&w, SLOW);
  CU_ASSERT(sp_file_contains(w.p.log, "msg=state_torn_tail"));
  CU_ASSERT_EQUAL(sp_version(&w.p), versions[1]); /* the change before, whole */
  CU_ASSERT(file_size(journal) < size - 7);       /* and the torn part is cut away */
  /* garbage after the last record (a sector of junk): dropped the same way */
  sp_stop(&w.p, SIGKILL);
  FILE *f = fopen(journal, "ab");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fwrite("\x21\x00\x00\x00\x02\x00\x00\x00garbage after the end", 1, 29, f);
  fclose(f);
  world_start(&w, SLOW);
  CU_ASSERT(sp_file_contains(w.p.log, "msg=state_torn_tail"));
  CU_ASSERT_EQUAL(sp_version(&w.p), versions[1]);
  world_free(&w);
}

/* Waits until node id is SYNCED. */
static int wait_synced(const struct syncd_proc *p, const char *id) {
  int64_t deadline = sp_now_ms() + 10000;
  while (sp_now_ms() < deadline) {
    Edge__V1__StatusResponse *r = sp_status(p);
    int ok = 0;
    for (size_t i = 0; r && i < r->n_nodes; i++)
      ok |= !strcmp(r->nodes[i]->node_id, id) &&
            r->nodes[i]->state == EDGE__V1__NODE_STATE__NODE_STATE_SYNCED;
    if (r) edge__v1__status_response__free_unpacked(r, NULL);
    if (ok) return 1;
    sp_pause_ms(20);
  }
  return 0;
}

static void reconnect_at_the_current_version_is_sent_nothing(void) {
  struct world w;
  world_init(&w);
  world_start(&w, FAST);
  struct gsc_stream g;
  uint64_t v = connect_and_sync(&g, &w.p, "p1", NULL);
  CU_ASSERT(wait_synced(&w.p, "p1"));
  double full = sp_metric(&w.p, "edge_syncd_push_bytes_total");
  CU_ASSERT(full > 500); /* the full state went out once (a certificate and four resources) */
  gsc_close(&g);

  /* a network cut: back at the version it has */
  CU_ASSERT_EQUAL_FATAL(gsc_open(&g, w.p.target, "/edge.v1.ConfigSync/Stream"), 0);
  CU_ASSERT_EQUAL(sp_hello(&g, "p1", v), 0);
  CU_ASSERT(wait_synced(&w.p, "p1"));
  CU_ASSERT_PTR_NULL(sp_recv_push(&g, 300, NULL));
  CU_ASSERT_EQUAL(sp_metric(&w.p, "edge_syncd_push_bytes_total"), full); /* not one byte */
  gsc_close(&g);

  /* syncd restarted (kill -9): the same, and after it re-read its source */
  sp_stop(&w.p, SIGKILL);
  world_start(&w, FAST);
  CU_ASSERT_EQUAL_FATAL(gsc_open(&g, w.p.target, "/edge.v1.ConfigSync/Stream"), 0);
  CU_ASSERT_EQUAL(sp_hello(&g, "p1", v), 0);
  CU_ASSERT(wait_synced(&w.p, "p1"));
  int64_t deadline = sp_now_ms() + 10000;
  while (!sp_file_contains(w.p.log, "msg=source_loaded") && sp_now_ms() < deadline) sp_pause_ms(20);
  CU_ASSERT(sp_file_contains(w.p.log, "msg=source_loaded"));
  CU_ASSERT_EQUAL(sp_version(&w.p), v); /* the same content is the same version */
  CU_ASSERT_PTR_NULL(sp_recv_push(&g, 300, NULL));
  CU_ASSERT_EQUAL(sp_metric(&w.p, "edge_syncd_push_bytes_total"), 0);

  /* a change: a delta of one VirtualHost */
  write_route(w.src, 9);
  size_t bytes = 0;
  Edge__V1__SyncMessage *m = sp_recv_push(&g, 10000, &bytes);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_FALSE(m->push->full);
  CU_ASSERT_EQUAL(m->push->base_version, v);
  CU_ASSERT_EQUAL(route_n(m->push), 9);
  CU_ASSERT(bytes < full / 2);
  sp_ack(&g, m->push);
  edge__v1__sync_message__free_unpacked(m, NULL);
  gsc_close(&g);

  /* another proxy still at v (before the change, before the restart) gets
   * only that change too */
  CU_ASSERT_EQUAL_FATAL(gsc_open(&g, w.p.target, "/edge.v1.ConfigSync/Stream"), 0);
  CU_ASSERT_EQUAL(sp_hello(&g, "p2", v), 0);
  m = sp_recv_push(&g, 10000, &bytes);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_FALSE(m->push->full);
  CU_ASSERT_EQUAL(m->push->base_version, v);
  CU_ASSERT(bytes < full / 2);
  edge__v1__sync_message__free_unpacked(m, NULL);
  gsc_close(&g);
  world_free(&w);
}

/* Issue 18, point 1: two replicas fed the same directory name the same
 * state the same way, so a proxy moving from one to the other is sent
 * nothing; what is newest stays visible (change number, source generation). */
static void two_replicas_of_one_directory_agree_on_versions(void) {
  struct world w;
  world_init(&w);
  /* the default certificate is part of the state: replicas share one
   * (without --default-cert each would generate its own) */
  const char *names[] = {"default.test"};
  char *crt, *key, err[256], cf[1100], kf[1100], fc[1200], fk[1200];
  CU_ASSERT_EQUAL_FATAL(cert_generate(names, 1, 30, 0, NULL, NULL, &crt, &key, err, sizeof(err)),
                        0);
  char *certs = sp_temp_dir("default-cert");
  CU_ASSERT_PTR_NOT_NULL_FATAL(certs);
  sp_write_file(certs, "tls.crt", "%s", crt);
  sp_write_file(certs, "tls.key", "%s", key);
  free(crt), free(key);
  snprintf(cf, sizeof(cf), "%s/tls.crt", certs);
  snprintf(kf, sizeof(kf), "%s/tls.key", certs);
  snprintf(fc, sizeof(fc), "--default-cert=%s", cf);
  snprintf(fk, sizeof(fk), "--default-key=%s", kf);
  const char *const flags[] = {FAST[0], FAST[1], fc, fk, NULL};
  world_start(&w, flags);
  struct syncd_proc q = {0};
  char *state_b = sp_temp_dir("state-b");
  CU_ASSERT_PTR_NOT_NULL_FATAL(state_b);
  CU_ASSERT_EQUAL_FATAL(sp_start(&q, g_syncd, w.src, state_b, flags), 0);
  uint64_t va = sp_wait_version_change(&w.p, 0), vb = sp_wait_version_change(&q, 0);
  CU_ASSERT(va != 0);
  CU_ASSERT_EQUAL(va, vb);
  Edge__V1__StatusResponse *st = sp_status(&w.p);
  CU_ASSERT_PTR_NOT_NULL_FATAL(st);
  CU_ASSERT_EQUAL(st->version, va);
  CU_ASSERT(st->version_seq >= 1);
  CU_ASSERT(st->source_generation > 1700000000000ull); /* the directory scan time, ms */
  edge__v1__status_response__free_unpacked(st, NULL);

  /* a proxy synced on A moves to B at the same content: nothing is sent */
  struct gsc_stream g;
  uint64_t v = connect_and_sync(&g, &w.p, "mover", NULL);
  CU_ASSERT_EQUAL(v, va);
  gsc_close(&g);
  CU_ASSERT_EQUAL_FATAL(gsc_open(&g, q.target, "/edge.v1.ConfigSync/Stream"), 0);
  CU_ASSERT_EQUAL(sp_hello(&g, "mover", v), 0);
  CU_ASSERT(wait_synced(&q, "mover"));
  CU_ASSERT_PTR_NULL(sp_recv_push(&g, 300, NULL));
  CU_ASSERT_EQUAL(sp_metric(&q, "edge_syncd_push_bytes_total"), 0);

  /* one change: both replicas reach the same new version, B sends the delta */
  write_route(w.src, 5);
  uint64_t na = sp_wait_version_change(&w.p, va), nb = sp_wait_version_change(&q, vb);
  CU_ASSERT(na != va);
  CU_ASSERT_EQUAL(na, nb);
  size_t bytes = 0;
  Edge__V1__SyncMessage *m = sp_recv_push(&g, 10000, &bytes);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_FALSE(m->push->full);
  CU_ASSERT_EQUAL(m->push->base_version, v);
  CU_ASSERT_EQUAL(m->push->version, na);
  edge__v1__sync_message__free_unpacked(m, NULL);
  gsc_close(&g);
  sp_stop(&q, SIGKILL);
  char cmd[2400];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", state_b, certs);
  CU_ASSERT_EQUAL(system(cmd), 0);
  free(state_b);
  free(certs);
  world_free(&w);
}

static int suite_init(void) {
  sp_runfile(g_syncd, sizeof(g_syncd), "syncd/syncd");
  grpc_init();
  return 0;
}

static int suite_clean(void) {
  grpc_shutdown();
  return 0;
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("syncd_state", suite_init, suite_clean);
  CU_add_test(s, "kill_9_during_a_burst_loses_no_accepted_change",
              kill_9_during_a_burst_loses_no_accepted_change);
  CU_add_test(s, "torn_journal_tail_is_dropped_and_the_change_before_is_served",
              torn_journal_tail_is_dropped_and_the_change_before_is_served);
  CU_add_test(s, "two_replicas_of_one_directory_agree_on_versions",
              two_replicas_of_one_directory_agree_on_versions);
  CU_add_test(s, "reconnect_at_the_current_version_is_sent_nothing",
              reconnect_at_the_current_version_is_sent_nothing);
}
