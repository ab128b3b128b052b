/*
 * decap: the replica-side XDP decapsulator (l4lb/bpf/decap.bpf.c) run with
 * BPF_PROG_TEST_RUN: tunnels from an allowed l4lb come out as the client's
 * packet byte for byte; tunnels from anyone else are dropped (no forged
 * client addresses); everything else passes untouched. Needs bpf(2):
 * without it, skips (tests/unit/edge_skip.h; a failure under CI=true).
 */
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l4lb/bpf/decap.skel.h"
#include "l4lb/bpf/decap_abi.h"
#include "tests/unit/edge_skip.h"

static struct decap *skel;

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

/* eth + outer IPv4 (ihl words, protocol proto, from src) + inner packet of
 * inner_len bytes (an IPv4 header then 'x's). Returns the frame length. */
static size_t tunnel(uint8_t *p, const char *src, uint8_t proto, int ihl, size_t inner_len) {
  memset(p, 0, 14);
  memcpy(p, "\x02\0\0\0\0\x0b", 6);
  memcpy(p + 6, "\x02\0\0\0\0\x01", 6);
  put16(p + 12, 0x0800);
  uint8_t *o = p + 14;
  memset(o, 0, (size_t)ihl * 4);
  o[0] = (uint8_t)(0x40 | ihl);
  put16(o + 2, (uint16_t)(ihl * 4 + inner_len));
  o[8] = 64;
  o[9] = proto;
  inet_pton(AF_INET, src, o + 12);
  inet_pton(AF_INET, "10.97.10.11", o + 16);
  uint8_t *in = o + ihl * 4;
  memset(in, 'x', inner_len);
  if (inner_len >= 20) {
    memset(in, 0, 20);
    in[0] = 0x45;
    put16(in + 2, (uint16_t)inner_len);
    in[8] = 63;
    in[9] = 6;
    inet_pton(AF_INET, "10.97.1.2", in + 12);
    inet_pton(AF_INET, "10.97.100.1", in + 16);
  }
  return 14 + (size_t)ihl * 4 + inner_len;
}

static uint32_t run(const uint8_t *in, size_t len, uint8_t *out, uint32_t *outlen) {
  LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in, .data_size_in = (uint32_t)len, .data_out = out,
              .data_size_out = 2048);
  CU_ASSERT_EQUAL(bpf_prog_test_run_opts(bpf_program__fd(skel->progs.xdp_decap), &o), 0);
  *outlen = o.data_size_out;
  return o.retval;
}

static uint64_t counter(uint32_t which) {
  int n = libbpf_num_possible_cpus();
  uint64_t *per = calloc((size_t)n, sizeof(*per)), sum = 0;
  if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.counters), &which, per) == 0)
    for (int c = 0; c < n; c++) sum += per[c];
  free(per);
  return sum;
}

static void tunnel_from_an_allowed_l4lb_yields_the_clients_packet_byte_for_byte(void) {
  uint8_t in[256], out[2048];
  uint32_t n;
  size_t len = tunnel(in, "10.97.2.2", 4, 5, 60);
  uint64_t before = counter(DECAP_CTR_DECAPSULATED);
  CU_ASSERT_EQUAL(run(in, len, out, &n), XDP_PASS);
  CU_ASSERT_EQUAL(n, len - 20);
  CU_ASSERT(memcmp(out, in, 14) == 0);                 /* same Ethernet header */
  CU_ASSERT(memcmp(out + 14, in + 34, len - 34) == 0); /* the inner packet */
  CU_ASSERT_EQUAL(counter(DECAP_CTR_DECAPSULATED), before + 1);
  /* a prefix entry covers its whole range */
  len = tunnel(in, "10.97.3.77", 4, 5, 60);
  CU_ASSERT_EQUAL(run(in, len, out, &n), XDP_PASS);
  CU_ASSERT_EQUAL(n, len - 20);
}

static void tunnel_from_anyone_else_is_dropped(void) {
  uint8_t in[256], out[2048];
  uint32_t n;
  uint64_t before = counter(DECAP_CTR_REFUSED);
  size_t len = tunnel(in, "10.97.1.2", 4, 5, 60); /* a client forging its own tunnel */
  CU_ASSERT_EQUAL(run(in, len, out, &n), XDP_DROP);
  len = tunnel(in, "10.97.2.3", 4, 5, 60); /* next to an allowed /32 */
  CU_ASSERT_EQUAL(run(in, len, out, &n), XDP_DROP);
  CU_ASSERT_EQUAL(counter(DECAP_CTR_REFUSED), before + 2);
}

static void odd_tunnels_are_dropped_and_other_traffic_passes_untouched(void) {
  uint8_t in[256], out[2048];
  uint32_t n;
  size_t len = tunnel(in, "10.97.2.2", 4, 6, 60); /* outer options: l4lb never sends them */
  CU_ASSERT_EQUAL(run(in, len, out, &n), XDP_DROP);
  len = tunnel(in, "10.97.2.2", 4, 5, 10); /* no room for an inner header */
  CU_ASSERT_EQUAL(run(in, len, out, &n), XDP_DROP);
  len = tunnel(in, "10.97.2.2", 4, 5, 60);
  put16(in + 14 + 6, 0x2000); /* a fragment of a tunnel */
  CU_ASSERT_EQUAL(run(in, len, out, &n), XDP_DROP);
  len = tunnel(in, "10.97.1.2", 6, 5, 60); /* plain TCP */
  CU_ASSERT_EQUAL(run(in, len, out, &n), XDP_PASS);
  CU_ASSERT(n == len && memcmp(out, in, len) == 0);
  put16(in + 12, 0x86dd); /* IPv6 */
  CU_ASSERT_EQUAL(run(in, len, out, &n), XDP_PASS);
  CU_ASSERT(n == len && memcmp(out, in, len) == 0);
}

static int suite_init(void) {
  skel = decap__open_and_load();
  if (!skel) {
    int e = errno;
    if (e == EPERM || e == EACCES) {
      char why[128];
      snprintf(why, sizeof(why), "bpf(2) not permitted here: %s", strerror(e));
      edge_platform_skip("decap_test", why);
    }
    fprintf(stderr, "decap: cannot load: %s\n", strerror(e));
    return -1;
  }
  struct decap_prefix allow[] = {{32, 0}, {24, 0}};
  inet_pton(AF_INET, "10.97.2.2", &allow[0].addr);
  inet_pton(AF_INET, "10.97.3.0", &allow[1].addr);
  uint32_t one = 1;
  for (int i = 0; i < 2; i++)
    if (bpf_map_update_elem(bpf_map__fd(skel->maps.allowed), &allow[i], &one, BPF_ANY) != 0)
      return -1;
  return 0;
}

static int suite_clean(void) {
  decap__destroy(skel);
  return 0;
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("decap", suite_init, suite_clean);
  CU_add_test(s, "tunnel_from_an_allowed_l4lb_yields_the_clients_packet_byte_for_byte",
              tunnel_from_an_allowed_l4lb_yields_the_clients_packet_byte_for_byte);
  CU_add_test(s, "tunnel_from_anyone_else_is_dropped", tunnel_from_anyone_else_is_dropped);
  CU_add_test(s, "odd_tunnels_are_dropped_and_other_traffic_passes_untouched",
              odd_tunnels_are_dropped_and_other_traffic_passes_untouched);
}
