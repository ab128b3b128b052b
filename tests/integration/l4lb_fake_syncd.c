/*
 * l4lb_fake_syncd — a stand-in for syncd's Membership.Watch, so l4lb's
 * integration tests can change the replica set (draining, removal) at
 * run time without running syncd and l7proxies.
 *
 *   l4lb_fake_syncd --listen=127.0.0.1:0 --set=FILE
 *
 * FILE has one replica per line: "NODE_ID ADDRESS CHECK_ADDRESS WEIGHT
 * DRAINING" (CHECK_ADDRESS "-" for none, DRAINING 0 or 1). Every watcher
 * gets the set when its WatchRequest arrives; SIGHUP re-reads FILE, bumps
 * the version and sends the new set to every watcher. Prints
 * "ready port=N" on stdout once serving. Plaintext gRPC (test only).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/rpc.h"
#include "edge/v1/membership.pb-c.h"

#define MAX_REPLICAS 64
#define MAX_WATCHERS 64

static const char *set_path;
static uint64_t version;
static uint8_t packed[64 * 1024];
static size_t packed_len;
static struct rpc_call *watchers[MAX_WATCHERS];

static int load_set(void) {
  FILE *f = fopen(set_path, "r");
  if (!f) return -1;
  static char ids[MAX_REPLICAS][128], addrs[MAX_REPLICAS][128], checks[MAX_REPLICAS][128];
  Edge__V1__Replica reps[MAX_REPLICAS];
  Edge__V1__Replica *ptrs[MAX_REPLICAS];
  size_t n = 0;
  unsigned weight;
  int draining;
  while (n < MAX_REPLICAS && fscanf(f, "%127s %127s %127s %u %d", ids[n], addrs[n], checks[n],
                                    &weight, &draining) == 5) {
    edge__v1__replica__init(&reps[n]);
    reps[n].node_id = ids[n];
    reps[n].address = addrs[n];
    reps[n].check_address = strcmp(checks[n], "-") == 0 ? "" : checks[n];
    reps[n].weight = weight;
    reps[n].draining = draining != 0;
    ptrs[n] = &reps[n];
    n++;
  }
  fclose(f);
  Edge__V1__ReplicaSet set = EDGE__V1__REPLICA_SET__INIT;
  set.version = ++version;
  set.n_replicas = n;
  set.replicas = ptrs;
  packed_len = edge__v1__replica_set__get_packed_size(&set);
  if (packed_len > sizeof(packed)) return -1;
  edge__v1__replica_set__pack(&set, packed);
  fprintf(stderr, "fake_syncd: set version=%llu replicas=%zu\n", (unsigned long long)version, n);
  return 0;
}

static void on_call(void *ud, struct rpc_call *call) {
  for (int i = 0; i < MAX_WATCHERS; i++)
    if (!watchers[i]) {
      watchers[i] = call;
      return;
    }
  rpc_call_finish(call, RPC_STATUS_UNAVAILABLE, "too many watchers");
}

static void on_message(void *ud, struct rpc_call *call, const uint8_t *data, size_t len) {
  rpc_call_send(call, packed, packed_len);
}

static void on_done(void *ud, struct rpc_call *call) {
  for (int i = 0; i < MAX_WATCHERS; i++)
    if (watchers[i] == call) watchers[i] = NULL;
}

static void on_sighup(uv_signal_t *s, int signum) {
  if (load_set() != 0) {
    fprintf(stderr, "fake_syncd: cannot read %s\n", set_path);
    return;
  }
  for (int i = 0; i < MAX_WATCHERS; i++)
    if (watchers[i]) rpc_call_send(watchers[i], packed, packed_len);
}

static void on_sigterm(uv_signal_t *s, int signum) {
  exit(0); /* a test helper: the process simply goes away, like a crash */
}

int main(int argc, char **argv) {
  const char *listen = NULL;
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--listen=", 9) == 0) listen = argv[i] + 9;
    if (strncmp(argv[i], "--set=", 6) == 0) set_path = argv[i] + 6;
  }
  if (!listen || !set_path || load_set() != 0) {
    fprintf(stderr, "usage: l4lb_fake_syncd --listen=ADDR:PORT --set=FILE (readable)\n");
    return 2;
  }
  uv_loop_t *loop = uv_default_loop();
  struct rpc_runtime *rt;
  struct rpc_server *srv;
  char err[256];
  if (rpc_runtime_new(loop, &rt) != 0) return 1;
  struct rpc_server_opts so = {.listen = listen, .creds = {.insecure = 1}};
  if (rpc_server_new(rt, &so, &srv, err, sizeof(err)) != 0) {
    fprintf(stderr, "fake_syncd: %s\n", err);
    return 1;
  }
  struct rpc_call_handler h = {.on_call = on_call, .on_message = on_message, .on_done = on_done};
  rpc_server_add_method(srv, "/edge.v1.Membership/Watch", RPC_SERVER_STREAM, &h, NULL);
  if (rpc_server_start(srv, err, sizeof(err)) != 0) {
    fprintf(stderr, "fake_syncd: %s\n", err);
    return 1;
  }
  uv_signal_t hup, term;
  uv_signal_init(loop, &hup);
  uv_signal_start(&hup, on_sighup, SIGHUP);
  uv_signal_init(loop, &term);
  uv_signal_start(&term, on_sigterm, SIGTERM);
  printf("ready port=%d\n", rpc_server_port(srv));
  fflush(stdout);
  uv_run(loop, UV_RUN_DEFAULT);
  return 0;
}
