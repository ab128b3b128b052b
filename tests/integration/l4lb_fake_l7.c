/*
 * l4lb_fake_l7 — plays an l7proxy on syncd's ConfigSync stream so a test
 * can make the real syncd list a replica in Membership.Watch: sends Hello
 * (node_id, address, admin_address), ACKs every Push, and on SIGUSR1 sends
 * an update Hello with draining = true. Prints "acked version=N" per ACK.
 *
 *   l4lb_fake_l7 --syncd=ADDR:PORT --node-id=ID --address=ADDR:PORT
 *                --admin-address=ADDR:PORT [--https-address=ADDR:PORT]
 *
 * Test helper only: plaintext, exits on SIGTERM or when the stream ends.
 */
#include <grpc/grpc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/v1/config_sync.pb-c.h"
#include "tests/integration/grpc_sync_client.h"

static volatile sig_atomic_t drain_requested, stop_requested;

static void on_usr1(int sig) {
  drain_requested = 1;
}

static void on_term(int sig) {
  stop_requested = 1;
}

static int send_msg(struct gsc_stream *g, Edge__V1__ProxyMessage *m) {
  uint8_t buf[4096];
  size_t len = edge__v1__proxy_message__get_packed_size(m);
  if (len > sizeof(buf)) return -1;
  edge__v1__proxy_message__pack(m, buf);
  return gsc_send(g, buf, len);
}

static int send_hello(struct gsc_stream *g, char **argv_vals, int update, int draining) {
  Edge__V1__Hello h = EDGE__V1__HELLO__INIT;
  h.node_id = argv_vals[0];
  h.address = argv_vals[1];
  h.admin_address = argv_vals[2];
  h.https_address = argv_vals[3] ? argv_vals[3] : "";
  h.build = "l4lb-fake-l7";
  h.draining = draining;
  Edge__V1__ProxyMessage m = EDGE__V1__PROXY_MESSAGE__INIT;
  m.msg_case = update ? EDGE__V1__PROXY_MESSAGE__MSG_UPDATE : EDGE__V1__PROXY_MESSAGE__MSG_HELLO;
  if (update)
    m.update = &h;
  else
    m.hello = &h;
  return send_msg(g, &m);
}

int main(int argc, char **argv) {
  char *syncd = NULL, *vals[4] = {NULL, NULL, NULL, NULL};
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--syncd=", 8) == 0) syncd = argv[i] + 8;
    if (strncmp(argv[i], "--node-id=", 10) == 0) vals[0] = argv[i] + 10;
    if (strncmp(argv[i], "--address=", 10) == 0) vals[1] = argv[i] + 10;
    if (strncmp(argv[i], "--admin-address=", 16) == 0) vals[2] = argv[i] + 16;
    if (strncmp(argv[i], "--https-address=", 16) == 0) vals[3] = argv[i] + 16;
  }
  if (!syncd || !vals[0] || !vals[1] || !vals[2]) {
    fprintf(stderr, "usage: l4lb_fake_l7 --syncd= --node-id= --address= --admin-address=\n");
    return 2;
  }
  signal(SIGUSR1, on_usr1);
  signal(SIGTERM, on_term);
  grpc_init();
  struct gsc_stream g;
  if (gsc_open(&g, syncd, "/edge.v1.ConfigSync/Stream") != 0 || send_hello(&g, vals, 0, 0) != 0) {
    fprintf(stderr, "fake_l7: cannot open the stream to %s\n", syncd);
    return 1;
  }
  int drained = 0;
  while (!stop_requested) {
    if (drain_requested && !drained) {
      drained = 1;
      if (send_hello(&g, vals, 1, 1) != 0) break;
      printf("draining\n");
      fflush(stdout);
    }
    uint8_t *buf;
    size_t len;
    int rc = gsc_recv(&g, 100, &buf, &len);
    if (rc < 0) break;
    if (rc == 0) continue;
    Edge__V1__SyncMessage *m = edge__v1__sync_message__unpack(NULL, len, buf);
    free(buf);
    if (m && m->msg_case == EDGE__V1__SYNC_MESSAGE__MSG_PUSH) {
      Edge__V1__Ack a = EDGE__V1__ACK__INIT;
      a.nonce = m->push->nonce;
      a.version = m->push->version;
      Edge__V1__ProxyMessage pm = EDGE__V1__PROXY_MESSAGE__INIT;
      pm.msg_case = EDGE__V1__PROXY_MESSAGE__MSG_ACK;
      pm.ack = &a;
      if (send_msg(&g, &pm) != 0) {
        edge__v1__sync_message__free_unpacked(m, NULL);
        break;
      }
      printf("acked version=%llu\n", (unsigned long long)m->push->version);
      fflush(stdout);
    }
    if (m) edge__v1__sync_message__free_unpacked(m, NULL);
  }
  gsc_close(&g);
  grpc_shutdown();
  return 0;
}
