/*
 * xdp_lb: the XDP balancer run with BPF_PROG_TEST_RUN on crafted packets,
 * every forwarded packet checked byte for byte against an encapsulation
 * built here from the user-space Maglev choice (maglev_build +
 * maglev_hash_flow), so the program and TCP mode provably pick the same
 * replica.
 *
 * Needs root and bpf(2): the binary enters a private network namespace
 * (the program asks the kernel FIB for the next hop, so the namespace gets
 * a veth with a route to the replicas and a permanent neighbour), loads the
 * program and attaches it there. Where bpf(2) or namespaces are not
 * permitted it skips (tests/unit/edge_skip.h: one EDGE_SKIP line, exit 0,
 * a failure under CI=true): a platform ability, not a broken feature.
 */
#include "l4lb/xdp_lb.h"

#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l4lb/maglev.h"
#include "tests/unit/edge_skip.h"

#define M 65537u
#define NREPLICAS 10
#define IP_DF 0x4000
#define IP_MF 0x2000

static const uint8_t MAC_T0[6] = {2, 0, 0, 0, 0, 1};  /* our interface */
static const uint8_t MAC_GW[6] = {2, 0, 0, 0, 0, 2};  /* next hop to replicas */
static const uint8_t MAC_CLI[6] = {2, 0, 0, 0, 0, 3}; /* the router clients come through */

static struct xdp_lb *lb;     /* 5-tuple hashing */
static struct xdp_lb *lb_src; /* source-address hashing */
static int ifindex;
static uint32_t tunnel_src, vip, other_addr;
static char names[NREPLICAS][16];
static uint32_t replica_addr[NREPLICAS];
static struct maglev_table *table; /* user space's table over all replicas */

/* ---- packets ---------------------------------------------------------------- */

static uint16_t csum(const void *p, size_t n) {
  const uint8_t *b = p;
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t)(b[i] << 8 | b[i + 1]);
  if (n & 1) sum += (uint32_t)b[n - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p) {
  return (uint16_t)(p[0] << 8 | p[1]);
}

static size_t eth(uint8_t *p, const uint8_t *dst, const uint8_t *src, uint16_t proto) {
  memcpy(p, dst, 6);
  memcpy(p + 6, src, 6);
  put16(p + 12, proto);
  return 14;
}

/* An IPv4 header of hlen bytes (options are NOPs) for a tot-byte packet. */
static size_t ipv4(uint8_t *p, size_t hlen, uint16_t tot, uint16_t frag, uint8_t proto,
                   uint32_t src, uint32_t dst) {
  memset(p, 0, hlen);
  p[0] = (uint8_t)(0x40 | hlen / 4);
  p[1] = 0x10; /* a TOS to see it copied */
  put16(p + 2, tot);
  put16(p + 4, 0x1234);
  put16(p + 6, frag);
  p[8] = 63;
  p[9] = proto;
  memcpy(p + 12, &src, 4);
  memcpy(p + 16, &dst, 4);
  for (size_t i = 20; i < hlen; i++) p[i] = 1; /* NOP */
  put16(p + 10, csum(p, hlen));
  return hlen;
}

struct flow {
  uint32_t src, dst;
  uint16_t sport, dport; /* host order */
  uint8_t proto;
};

/* A client packet of flow f: TCP with flags (or UDP), payload bytes of
 * 'x', IPv4 header of hlen bytes, frag field as given. */
static size_t client_packet(uint8_t *p, const struct flow *f, uint8_t tcp_flags, size_t payload,
                            size_t hlen, uint16_t frag) {
  size_t l4 = f->proto == IPPROTO_TCP ? 20 : 8;
  size_t n = eth(p, MAC_T0, MAC_CLI, 0x0800);
  n += ipv4(p + n, hlen, (uint16_t)(hlen + l4 + payload), frag, f->proto, f->src, f->dst);
  uint8_t *h = p + n;
  memset(h, 0, l4);
  put16(h, f->sport);
  put16(h + 2, f->dport);
  if (f->proto == IPPROTO_TCP) {
    h[12] = 0x50;
    h[13] = tcp_flags;
    put16(h + 14, 65535);
  } else {
    put16(h + 4, (uint16_t)(8 + payload));
  }
  memset(h + l4, 'x', payload);
  return n + l4 + payload;
}

/* What the program must send for a packet in[0..len) to replica: the next
 * hop's Ethernet header, an outer IPv4 header, the packet from its IP
 * header on, unchanged. */
static size_t encapsulated(uint8_t *out, const uint8_t *in, size_t len, uint32_t replica) {
  size_t n = eth(out, MAC_GW, MAC_T0, 0x0800);
  uint16_t inner_tot = get16(in + 16);
  uint16_t df = get16(in + 20) & IP_DF;
  uint8_t *o = out + n;
  memset(o, 0, 20);
  o[0] = 0x45;
  o[1] = in[15];
  put16(o + 2, (uint16_t)(inner_tot + 20));
  put16(o + 6, df);
  o[8] = 64;
  o[9] = 4; /* IPPROTO_IPIP */
  memcpy(o + 12, &tunnel_src, 4);
  memcpy(o + 16, &replica, 4);
  put16(o + 10, csum(o, 20));
  memcpy(out + n + 20, in + 14, len - 14);
  return len + 20;
}

struct result {
  int rc;
  uint32_t action;
  uint8_t out[2048];
  uint32_t len;
};

static struct result run_on(struct xdp_lb *x, const uint8_t *in, size_t len) {
  struct result r;
  memset(&r, 0, sizeof(r));
  struct xdp_md ctx = {.data = 0, .data_end = (uint32_t)len, .ingress_ifindex = (uint32_t)ifindex};
  LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in, .data_size_in = (uint32_t)len, .data_out = r.out,
              .data_size_out = sizeof(r.out), .ctx_in = &ctx, .ctx_size_in = sizeof(ctx));
  r.rc = bpf_prog_test_run_opts(xdp_lb_prog_fd(x), &o);
  if (r.rc != 0) r.rc = -errno;
  r.action = o.retval;
  r.len = o.data_size_out;
  return r;
}

static struct result run(const uint8_t *in, size_t len) {
  return run_on(lb, in, len);
}

/* ---- the user-space reference --------------------------------------------------- */

static int reference_pick(const struct maglev_table *t, const struct flow *f,
                          enum maglev_hash_mode mode) {
  struct maglev_flow mf = {
      .family = 4, .src_port = f->sport, .dst_port = f->dport, .protocol = f->proto};
  memcpy(mf.src, &f->src, 4);
  memcpy(mf.dst, &f->dst, 4);
  return maglev_lookup(t, maglev_hash_flow(&mf, mode), NULL);
}

/* Pushes a table over replicas with[0..n) (indices into names) to x and
 * returns user space's table for it (caller frees). */
static struct maglev_table *push(struct xdp_lb *x, const int *with, size_t n) {
  struct maglev_backend b[NREPLICAS];
  for (size_t i = 0; i < n; i++) b[i] = (struct maglev_backend){names[with[i]], 1};
  struct maglev_table *t = NULL;
  char err[256] = "";
  if (maglev_build(b, n, M, &t, err, sizeof(err)) != 0) {
    fprintf(stderr, "maglev_build: %s\n", err);
    return NULL;
  }
  struct xlb_real reals[NREPLICAS];
  for (uint32_t c = 0; c < t->n; c++) {
    int r = with[t->input_index[c]];
    reals[c] = (struct xlb_real){replica_addr[r], (uint32_t)r};
  }
  if (xdp_lb_push_table(x, t->slots, M, reals, t->n, err, sizeof(err)) != 0) {
    fprintf(stderr, "push: %s\n", err);
    maglev_free(t);
    return NULL;
  }
  return t;
}

static const int ALL[NREPLICAS] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};

static struct flow client_flow(unsigned i) {
  struct flow f = {.dst = vip, .dport = 80, .proto = IPPROTO_TCP};
  f.src = htonl(0xc0a80000u + (i % 50000) + 1); /* 192.168.x.y */
  f.sport = (uint16_t)(1024 + (i * 7919u) % 60000u);
  return f;
}

/* Which replica (index) an encapsulated output goes to, -1 if none. */
static int replica_of(const struct result *r) {
  if (r->action != XDP_TX || r->len < 34) return -1;
  for (int i = 0; i < NREPLICAS; i++)
    if (memcmp(r->out + 14 + 16, &replica_addr[i], 4) == 0) return i;
  return -1;
}

/* ---- tests ---------------------------------------------------------------------- */

static void vip_syn_is_encapsulated_to_the_user_space_maglev_choice_byte_for_byte(void) {
  uint8_t in[256], want[300];
  int mismatches = 0;
  for (unsigned i = 0; i < 3000; i++) {
    struct flow f = client_flow(i);
    size_t n = client_packet(in, &f, 0x02 /* SYN */, 0, 20, IP_DF);
    struct result r = run(in, n);
    int ref = reference_pick(table, &f, MAGLEV_HASH_5TUPLE);
    size_t wn = encapsulated(want, in, n, replica_addr[ref]);
    if (r.rc != 0 || r.action != XDP_TX || r.len != wn || memcmp(r.out, want, wn) != 0) {
      if (mismatches++ < 3)
        fprintf(stderr, "flow %u: rc=%d action=%u len=%u want replica %d (len %zu), got %d\n", i,
                r.rc, r.action, r.len, ref, wn, replica_of(&r));
    }
  }
  CU_ASSERT_EQUAL(mismatches, 0);
}

static void udp_vip_and_ip_options_are_forwarded_byte_for_byte(void) {
  uint8_t in[256], want[300];
  struct flow f = client_flow(7);
  f.proto = IPPROTO_UDP;
  f.dport = 53;
  size_t n = client_packet(in, &f, 0, 30, 20, 0);
  struct result r = run(in, n);
  size_t wn =
      encapsulated(want, in, n, replica_addr[reference_pick(table, &f, MAGLEV_HASH_5TUPLE)]);
  CU_ASSERT_EQUAL(r.action, XDP_TX);
  CU_ASSERT(r.len == wn && memcmp(r.out, want, wn) == 0);
  /* 8 bytes of IP options: the ports are read after them */
  f = client_flow(8);
  n = client_packet(in, &f, 0x02, 0, 28, IP_DF);
  r = run(in, n);
  wn = encapsulated(want, in, n, replica_addr[reference_pick(table, &f, MAGLEV_HASH_5TUPLE)]);
  CU_ASSERT_EQUAL(r.action, XDP_TX);
  CU_ASSERT(r.len == wn && memcmp(r.out, want, wn) == 0);
}

static void source_hash_mode_matches_user_space_src_hashing(void) {
  uint8_t in[256], want[300];
  int bad = 0;
  for (unsigned i = 0; i < 500; i++) {
    struct flow f = client_flow(i);
    size_t n = client_packet(in, &f, 0x02, 0, 20, IP_DF);
    struct result r = run_on(lb_src, in, n);
    int ref = reference_pick(table, &f, MAGLEV_HASH_SRC);
    size_t wn = encapsulated(want, in, n, replica_addr[ref]);
    if (r.action != XDP_TX || r.len != wn || memcmp(r.out, want, wn) != 0) bad++;
  }
  CU_ASSERT_EQUAL(bad, 0);
}

static void non_vip_traffic_passes_untouched(void) {
  uint8_t in[256];
  struct flow f = client_flow(1);
  f.dst = other_addr;
  size_t n = client_packet(in, &f, 0x02, 10, 20, IP_DF);
  uint64_t before = xdp_lb_event(lb, XLB_EV_PASSED);
  struct result r = run(in, n);
  CU_ASSERT_EQUAL(r.action, XDP_PASS);
  CU_ASSERT(r.len == n && memcmp(r.out, in, n) == 0);
  /* a fragment that is not for a VIP is none of our business either */
  n = client_packet(in, &f, 0x02, 10, 20, IP_MF);
  r = run(in, n);
  CU_ASSERT_EQUAL(r.action, XDP_PASS);
  CU_ASSERT(r.len == n && memcmp(r.out, in, n) == 0);
  /* ARP and IPv6 frames */
  uint8_t arp[60] = {0};
  eth(arp, MAC_T0, MAC_CLI, 0x0806);
  r = run(arp, sizeof(arp));
  CU_ASSERT_EQUAL(r.action, XDP_PASS);
  CU_ASSERT(memcmp(r.out, arp, sizeof(arp)) == 0);
  uint8_t v6[74] = {0};
  eth(v6, MAC_T0, MAC_CLI, 0x86dd);
  v6[14] = 0x60;
  r = run(v6, sizeof(v6));
  CU_ASSERT_EQUAL(r.action, XDP_PASS);
  CU_ASSERT_EQUAL(xdp_lb_event(lb, XLB_EV_PASSED), before + 2);
}

static void vip_fragments_are_dropped_and_counted(void) {
  uint8_t in[256];
  struct flow f = client_flow(2);
  uint64_t before = xdp_lb_event(lb, XLB_EV_DROP_FRAGMENT);
  size_t n = client_packet(in, &f, 0x18, 100, 20, IP_MF); /* first fragment */
  CU_ASSERT_EQUAL(run(in, n).action, XDP_DROP);
  n = client_packet(in, &f, 0x18, 100, 20, 185); /* a later fragment, offset 1480 */
  CU_ASSERT_EQUAL(run(in, n).action, XDP_DROP);
  CU_ASSERT_EQUAL(xdp_lb_event(lb, XLB_EV_DROP_FRAGMENT), before + 2);
}

static void other_ports_of_a_vip_address_are_dropped_not_passed(void) {
  uint8_t in[256];
  struct flow f = client_flow(3);
  f.dport = 22;
  uint64_t before = xdp_lb_event(lb, XLB_EV_DROP_NOT_SERVED);
  size_t n = client_packet(in, &f, 0x02, 0, 20, IP_DF);
  CU_ASSERT_EQUAL(run(in, n).action, XDP_DROP);
  f.dport = 80;
  f.proto = IPPROTO_UDP; /* the VIP is 80/tcp and 53/udp */
  n = client_packet(in, &f, 0, 10, 20, 0);
  CU_ASSERT_EQUAL(run(in, n).action, XDP_DROP);
  /* GRE to the VIP address */
  n = client_packet(in, &f, 0, 10, 20, 0);
  in[14 + 9] = 47;
  put16(in + 14 + 10, 0);
  put16(in + 14 + 10, csum(in + 14, 20));
  CU_ASSERT_EQUAL(run(in, n).action, XDP_DROP);
  CU_ASSERT_EQUAL(xdp_lb_event(lb, XLB_EV_DROP_NOT_SERVED), before + 3);
}

static void short_and_odd_headers_never_crash_or_leak(void) {
  uint8_t in[256];
  struct flow f = client_flow(4);
  size_t n = client_packet(in, &f, 0x02, 0, 20, IP_DF);
  /* an Ethernet header alone (test runs need 14 bytes), or less than an
   * IPv4 header: the kernel's business */
  CU_ASSERT_EQUAL(run(in, 14).rc, 0);
  CU_ASSERT_EQUAL(run(in, 14).action, XDP_PASS);
  CU_ASSERT_EQUAL(run(in, 14 + 12).action, XDP_PASS);
  uint64_t bad = xdp_lb_event(lb, XLB_EV_DROP_MALFORMED);
  /* to a VIP: ihl < 5 */
  uint8_t b[256];
  memcpy(b, in, n);
  b[14] = 0x44;
  CU_ASSERT_EQUAL(run(b, n).action, XDP_DROP);
  /* total length beyond the frame */
  memcpy(b, in, n);
  put16(b + 16, 400);
  CU_ASSERT_EQUAL(run(b, n).action, XDP_DROP);
  /* total length shorter than the header */
  memcpy(b, in, n);
  put16(b + 16, 12);
  CU_ASSERT_EQUAL(run(b, n).action, XDP_DROP);
  /* frame cut after the TCP ports */
  CU_ASSERT_EQUAL(run(in, 14 + 20 + 6).action, XDP_DROP);
  /* a consistent IP header around a 6-byte TCP header */
  memcpy(b, in, n);
  put16(b + 16, 26);
  CU_ASSERT_EQUAL(run(b, 14 + 26).action, XDP_DROP);
  /* version 6 in an IPv4 frame */
  memcpy(b, in, n);
  b[14] = 0x65;
  CU_ASSERT_EQUAL(run(b, n).action, XDP_DROP);
  /* options claimed, not present (ihl 15, 34-byte frame) */
  memcpy(b, in, n);
  b[14] = 0x4f;
  CU_ASSERT_EQUAL(run(b, 14 + 20).action, XDP_DROP);
  CU_ASSERT_EQUAL(xdp_lb_event(lb, XLB_EV_DROP_MALFORMED), bad + 7);
}

/* ICMP "fragmentation needed" from a router on the way back to the client,
 * about the replica's reply VIP:80 -> client:port, goes to that replica. */
static size_t icmp_about(uint8_t *p, const struct flow *f, uint8_t type, uint8_t code) {
  uint32_t router = htonl(0x0a630001);
  size_t n = eth(p, MAC_T0, MAC_CLI, 0x0800);
  size_t ip_at = n;
  n += ipv4(p + n, 20, 20 + 8 + 28, 0, IPPROTO_ICMP, router, f->dst);
  uint8_t *icmp = p + n;
  memset(icmp, 0, 8);
  icmp[0] = type;
  icmp[1] = code;
  put16(icmp + 6, 1400);
  /* the quoted packet: from the VIP to the client */
  ipv4(icmp + 8, 20, 1500, IP_DF, f->proto, f->dst, f->src);
  put16(icmp + 28, f->dport);
  put16(icmp + 30, f->sport);
  memset(icmp + 32, 0, 4);
  put16(icmp + 2, csum(icmp, 36));
  (void)ip_at;
  return n + 36;
}

static void icmp_frag_needed_for_a_vip_flow_reaches_the_flows_replica(void) {
  uint8_t in[256], want[300];
  uint64_t before = xdp_lb_event(lb, XLB_EV_ICMP_FORWARDED);
  int bad = 0;
  for (unsigned i = 100; i < 300; i++) {
    struct flow f = client_flow(i);
    size_t n = icmp_about(in, &f, 3, 4);
    struct result r = run(in, n);
    size_t wn =
        encapsulated(want, in, n, replica_addr[reference_pick(table, &f, MAGLEV_HASH_5TUPLE)]);
    if (r.action != XDP_TX || r.len != wn || memcmp(r.out, want, wn) != 0) bad++;
  }
  CU_ASSERT_EQUAL(bad, 0);
  CU_ASSERT_EQUAL(xdp_lb_event(lb, XLB_EV_ICMP_FORWARDED), before + 200);
  /* quoting a port the VIP does not serve: dropped */
  struct flow f = client_flow(5);
  f.dport = 8080;
  size_t n = icmp_about(in, &f, 3, 4);
  CU_ASSERT_EQUAL(run(in, n).action, XDP_DROP);
  /* truncated quote */
  f = client_flow(5);
  n = icmp_about(in, &f, 3, 4);
  CU_ASSERT_EQUAL(run(in, n - 6).action, XDP_DROP);
}

static void echo_request_to_the_vip_is_answered(void) {
  uint8_t in[128];
  size_t n = eth(in, MAC_T0, MAC_CLI, 0x0800);
  uint32_t client = htonl(0xc0a80101);
  n += ipv4(in + n, 20, 20 + 8 + 16, 0, IPPROTO_ICMP, client, vip);
  uint8_t *icmp = in + n;
  memset(icmp, 0, 24);
  icmp[0] = 8;
  put16(icmp + 4, 0x77);
  put16(icmp + 6, 3);
  memcpy(icmp + 8, "0123456789abcdef", 16);
  put16(icmp + 2, csum(icmp, 24));
  n += 24;
  struct result r = run(in, n);
  CU_ASSERT_EQUAL_FATAL(r.action, XDP_TX);
  CU_ASSERT_EQUAL(r.len, n);
  CU_ASSERT(memcmp(r.out, MAC_CLI, 6) == 0 && memcmp(r.out + 6, MAC_T0, 6) == 0);
  CU_ASSERT(memcmp(r.out + 14 + 12, &vip, 4) == 0 && memcmp(r.out + 14 + 16, &client, 4) == 0);
  CU_ASSERT_EQUAL(csum(r.out + 14, 20), 0);
  CU_ASSERT_EQUAL(r.out[34], 0); /* echo reply */
  CU_ASSERT_EQUAL(csum(r.out + 34, 24), 0);
  CU_ASSERT(memcmp(r.out + 38, icmp + 4, 20) == 0); /* id, sequence, data kept */
}

/* A full-size DF packet does not fit the tunnel (1500 + 20 > 1500): the
 * client is told the MTU it may use, 1480, so PMTU discovery works. */
static void oversized_df_packet_gets_icmp_frag_needed_with_the_tunnel_mtu(void) {
  uint8_t in[1600];
  struct flow f = client_flow(9);
  size_t n = client_packet(in, &f, 0x18, 1460, 20, IP_DF); /* 1500-byte IP packet */
  uint64_t sent = xdp_lb_event(lb, XLB_EV_ICMP_TOO_BIG);
  struct result r = run(in, n);
  CU_ASSERT_EQUAL_FATAL(r.action, XDP_TX);
  uint8_t want[14 + 20 + 8 + 28];
  size_t w = eth(want, MAC_CLI, MAC_T0, 0x0800);
  w += ipv4(want + w, 20, 56, 0, IPPROTO_ICMP, vip, f.src);
  want[15] = 0;
  want[18] = want[19] = 0; /* id 0 */
  want[22] = 64;           /* ttl */
  put16(want + 24, 0);
  put16(want + 24, csum(want + 14, 20));
  uint8_t *icmp = want + w;
  memset(icmp, 0, 8);
  icmp[0] = 3;
  icmp[1] = 4;
  put16(icmp + 6, 1480);
  memcpy(icmp + 8, in + 14, 28); /* the client's IP header and 8 bytes */
  put16(icmp + 2, csum(icmp, 36));
  w += 36;
  CU_ASSERT_EQUAL(r.len, w);
  CU_ASSERT(memcmp(r.out, want, w) == 0);
  CU_ASSERT_EQUAL(xdp_lb_event(lb, XLB_EV_ICMP_TOO_BIG), sent + 1);
  /* without DF: dropped and counted */
  uint64_t dropped = xdp_lb_event(lb, XLB_EV_DROP_TOO_BIG);
  n = client_packet(in, &f, 0x18, 1460, 20, 0);
  CU_ASSERT_EQUAL(run(in, n).action, XDP_DROP);
  CU_ASSERT_EQUAL(xdp_lb_event(lb, XLB_EV_DROP_TOO_BIG), dropped + 1);
  /* 1480 fits exactly */
  n = client_packet(in, &f, 0x18, 1440, 20, IP_DF);
  CU_ASSERT_EQUAL(run(in, n).action, XDP_TX);
}

/*
 * The connection table: after replica 3 is taken out of the table (it
 * drains: still a member), the flows it had keep going to it, and so do
 * the flows of other replicas whose slots moved; new flows follow the new
 * table; once replica 3 leaves the membership its flows follow the table.
 * Prints the "flows moved when 1 of 10 replicas is removed" figures.
 */
static void connection_table_keeps_flows_when_a_replica_is_removed(void) {
  enum { FLOWS = 4000 };
  uint8_t in[256];
  int *before = calloc(FLOWS, sizeof(int));
  for (unsigned i = 0; i < FLOWS; i++) {
    struct flow f = client_flow(20000 + i);
    size_t n = client_packet(in, &f, 0x02, 0, 20, IP_DF);
    struct result r = run(in, n);
    before[i] = replica_of(&r);
    CU_ASSERT_EQUAL(before[i], reference_pick(table, &f, MAGLEV_HASH_5TUPLE));
  }
  const int without3[] = {0, 1, 2, 4, 5, 6, 7, 8, 9};
  struct maglev_table *t9 = push(lb, without3, 9);
  CU_ASSERT_PTR_NOT_NULL_FATAL(t9);
  int moved_existing = 0, moved_new = 0, table_moved_other = 0;
  for (unsigned i = 0; i < FLOWS; i++) {
    struct flow f = client_flow(20000 + i);
    size_t n = client_packet(in, &f, 0x10 /* ACK */, 0, 20, IP_DF);
    struct result r = run(in, n);
    if (replica_of(&r) != before[i]) moved_existing++;
    int now = without3[reference_pick(t9, &f, MAGLEV_HASH_5TUPLE)];
    if (before[i] != 3 && now != before[i]) table_moved_other++;
    struct flow g = client_flow(60000 + i);
    size_t gn = client_packet(in + 128, &g, 0x02, 0, 20, IP_DF);
    struct result rg = run(in + 128, gn);
    if (replica_of(&rg) != reference_pick(table, &g, MAGLEV_HASH_5TUPLE)) moved_new++;
    CU_ASSERT_EQUAL(replica_of(&rg), without3[reference_pick(t9, &g, MAGLEV_HASH_5TUPLE)]);
  }
  printf(
      "\n    flows moved when 1 of 10 replicas is removed: existing %d of %d (%.1f%%), "
      "new %d of %d (%.1f%%); without the connection table %d existing flows of other "
      "replicas would have moved\n",
      moved_existing, FLOWS, 100.0 * moved_existing / FLOWS, moved_new, FLOWS,
      100.0 * moved_new / FLOWS, table_moved_other);
  CU_ASSERT_EQUAL(moved_existing, 0);
  CU_ASSERT(moved_new > FLOWS / 20 && moved_new < FLOWS / 5); /* ~1/10 of new flows */
  /* replica 3 leaves the membership: its flows are sent by the table */
  CU_ASSERT_EQUAL(xdp_lb_clear_live(lb, replica_addr[3]), 0);
  int to3 = 0, wrong = 0;
  for (unsigned i = 0; i < FLOWS; i++) {
    if (before[i] != 3) continue;
    struct flow f = client_flow(20000 + i);
    size_t n = client_packet(in, &f, 0x10, 0, 20, IP_DF);
    struct result r = run(in, n);
    to3 += replica_of(&r) == 3;
    wrong += replica_of(&r) != without3[reference_pick(t9, &f, MAGLEV_HASH_5TUPLE)];
  }
  CU_ASSERT_EQUAL(to3, 0);
  CU_ASSERT_EQUAL(wrong, 0);
  CU_ASSERT_EQUAL(xdp_lb_set_live(lb, replica_addr[3], 3), 0);
  maglev_free(t9);
  maglev_free(push(lb, ALL, NREPLICAS));
  free(before);
}

static void counters_count_packets_and_bytes_per_vip_and_replica(void) {
  uint8_t in[256];
  struct flow f = client_flow(77);
  int ref = reference_pick(table, &f, MAGLEV_HASH_5TUPLE);
  struct xlb_stats v0, r0, v1, r1;
  CU_ASSERT_EQUAL(xdp_lb_vip_stats(lb, 0, &v0), 0);
  CU_ASSERT_EQUAL(xdp_lb_real_stats(lb, (uint32_t)ref, &r0), 0);
  size_t n = client_packet(in, &f, 0x02, 0, 20, IP_DF);
  run(in, n);
  n = client_packet(in, &f, 0x18, 100, 20, IP_DF);
  run(in, n);
  CU_ASSERT_EQUAL(xdp_lb_vip_stats(lb, 0, &v1), 0);
  CU_ASSERT_EQUAL(xdp_lb_real_stats(lb, (uint32_t)ref, &r1), 0);
  CU_ASSERT_EQUAL(v1.packets - v0.packets, 2);
  CU_ASSERT_EQUAL(v1.bytes - v0.bytes, 40 + 140);
  CU_ASSERT_EQUAL(r1.packets - r0.packets, 2);
  CU_ASSERT_EQUAL(r1.bytes - r0.bytes, 40 + 140);
  CU_ASSERT_EQUAL(xdp_lb_reset_real_stats(lb, (uint32_t)ref), 0);
  CU_ASSERT_EQUAL(xdp_lb_real_stats(lb, (uint32_t)ref, &r1), 0);
  CU_ASSERT_EQUAL(r1.packets, 0);
}

static void empty_table_drops_vip_packets(void) {
  uint8_t in[256];
  CU_ASSERT_EQUAL(xdp_lb_push_table(lb, NULL, M, NULL, 0, NULL, 0), 0);
  uint64_t before = xdp_lb_event(lb, XLB_EV_DROP_NO_BACKEND);
  struct flow f = client_flow(11);
  size_t n = client_packet(in, &f, 0x02, 0, 20, IP_DF);
  CU_ASSERT_EQUAL(run(in, n).action, XDP_DROP);
  CU_ASSERT_EQUAL(xdp_lb_event(lb, XLB_EV_DROP_NO_BACKEND), before + 1);
  maglev_free(push(lb, ALL, NREPLICAS));
  CU_ASSERT_EQUAL(run(in, n).action, XDP_TX);
}

static void bad_pushes_are_refused(void) {
  uint32_t slots[7] = {0};
  struct xlb_real r = {1, 0};
  CU_ASSERT_EQUAL(xdp_lb_push_table(lb, slots, 7, &r, 1, NULL, 0), -EINVAL);
  CU_ASSERT_EQUAL(xdp_lb_add_vip(lb, vip, 80, 47, 1, NULL, 0), -EINVAL);
  CU_ASSERT_EQUAL(xdp_lb_add_vip(lb, vip, 80, IPPROTO_TCP, XLB_MAX_VIPS, NULL, 0), -EINVAL);
  CU_ASSERT_EQUAL(xdp_lb_set_live(lb, vip, XLB_MAX_REALS), -EINVAL);
}

/* ---- setup ------------------------------------------------------------------------ */

static void skip(const char *why) {
  edge_platform_skip("xdp_lb_test", why);
}

static int sh(const char *cmd) {
  int rc = system(cmd);
  if (rc != 0) fprintf(stderr, "setup: `%s` failed (%d)\n", cmd, rc);
  return rc;
}

static int setup_namespace(void) {
  if (unshare(CLONE_NEWNET) != 0) {
    char why[128];
    snprintf(why, sizeof(why), "cannot enter a network namespace: %s", strerror(errno));
    skip(why);
  }
  /* 10.200.0.1/24 on t0 (MAC_T0); replicas 10.201.0.0/16 via 10.200.0.2
   * (MAC_GW, permanent); forwarding on (bpf_fib_lookup needs it) */
  const char *cmds[] = {
      "ip link set lo up",
      "ip link add t0 address 02:00:00:00:00:01 type veth peer name t1",
      "ip link set t0 up && ip link set t1 up",
      "ip addr add 10.200.0.1/24 dev t0",
      "ip neigh replace 10.200.0.2 lladdr 02:00:00:00:00:02 dev t0 nud permanent",
      "ip route add 10.201.0.0/16 via 10.200.0.2 dev t0",
      "echo 1 > /proc/sys/net/ipv4/ip_forward",
      "echo 1 > /proc/sys/net/ipv4/conf/t0/forwarding",
  };
  for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
    if (sh(cmds[i]) != 0) return -1;
  ifindex = (int)if_nametoindex("t0");
  return ifindex > 0 ? 0 : -1;
}

static int open_lb(int mode, struct xdp_lb **out) {
  char err[512] = "";
  struct xdp_lb_opts o = {
      .table_size = M, .conn_table_size = 65536, .hash_mode = mode, .tunnel_src = tunnel_src};
  int rc = xdp_lb_open(&o, out, err, sizeof(err));
  if (rc == -EPERM || rc == -EACCES) {
    char why[600];
    snprintf(why, sizeof(why), "bpf(2) not permitted here: %s", err);
    skip(why);
  }
  if (rc != 0) {
    fprintf(stderr, "xdp_lb_open: %s\n", err);
    return rc;
  }
  /* attached (the first one), so the veth registers the receive queue
   * that test runs with ingress_ifindex use */
  if (mode == MAGLEV_HASH_5TUPLE && (rc = xdp_lb_attach(*out, ifindex, 0, err, sizeof(err))) != 0) {
    fprintf(stderr, "xdp_lb_attach: %s\n", err);
    return rc;
  }
  const uint16_t ports[] = {80, 53};
  const uint8_t protos[] = {IPPROTO_TCP, IPPROTO_UDP};
  for (int i = 0; i < 2; i++)
    if ((rc = xdp_lb_add_vip(*out, vip, ports[i], protos[i], (uint32_t)i, err, sizeof(err))) != 0)
      return rc;
  for (int i = 0; i < NREPLICAS; i++)
    if ((rc = xdp_lb_set_live(*out, replica_addr[i], (uint32_t)i)) != 0) return rc;
  struct maglev_table *t = push(*out, ALL, NREPLICAS);
  maglev_free(t);
  return t ? 0 : -1;
}

static int suite_init(void) {
  inet_pton(AF_INET, "10.200.0.1", &tunnel_src);
  inet_pton(AF_INET, "10.100.0.1", &vip);
  inet_pton(AF_INET, "10.100.0.2", &other_addr);
  struct maglev_backend b[NREPLICAS];
  for (int i = 0; i < NREPLICAS; i++) {
    snprintf(names[i], sizeof(names[i]), "l7-%02d", i);
    replica_addr[i] = htonl(0x0ac90001u + (uint32_t)i); /* 10.201.0.1.. */
    b[i] = (struct maglev_backend){names[i], 1};
  }
  if (maglev_build(b, NREPLICAS, M, &table, NULL, 0) != 0) return -1;
  if (setup_namespace() != 0) return -1;
  if (open_lb(MAGLEV_HASH_5TUPLE, &lb) != 0) return -1;
  return open_lb(MAGLEV_HASH_SRC, &lb_src);
}

static int suite_clean(void) {
  xdp_lb_close(lb);
  xdp_lb_close(lb_src);
  maglev_free(table);
  return 0;
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("xdp_lb", suite_init, suite_clean);
  CU_add_test(s, "vip_syn_is_encapsulated_to_the_user_space_maglev_choice_byte_for_byte",
              vip_syn_is_encapsulated_to_the_user_space_maglev_choice_byte_for_byte);
  CU_add_test(s, "udp_vip_and_ip_options_are_forwarded_byte_for_byte",
              udp_vip_and_ip_options_are_forwarded_byte_for_byte);
  CU_add_test(s, "source_hash_mode_matches_user_space_src_hashing",
              source_hash_mode_matches_user_space_src_hashing);
  CU_add_test(s, "non_vip_traffic_passes_untouched", non_vip_traffic_passes_untouched);
  CU_add_test(s, "vip_fragments_are_dropped_and_counted", vip_fragments_are_dropped_and_counted);
  CU_add_test(s, "other_ports_of_a_vip_address_are_dropped_not_passed",
              other_ports_of_a_vip_address_are_dropped_not_passed);
  CU_add_test(s, "short_and_odd_headers_never_crash_or_leak",
              short_and_odd_headers_never_crash_or_leak);
  CU_add_test(s, "icmp_frag_needed_for_a_vip_flow_reaches_the_flows_replica",
              icmp_frag_needed_for_a_vip_flow_reaches_the_flows_replica);
  CU_add_test(s, "echo_request_to_the_vip_is_answered", echo_request_to_the_vip_is_answered);
  CU_add_test(s, "oversized_df_packet_gets_icmp_frag_needed_with_the_tunnel_mtu",
              oversized_df_packet_gets_icmp_frag_needed_with_the_tunnel_mtu);
  CU_add_test(s, "connection_table_keeps_flows_when_a_replica_is_removed",
              connection_table_keeps_flows_when_a_replica_is_removed);
  CU_add_test(s, "counters_count_packets_and_bytes_per_vip_and_replica",
              counters_count_packets_and_bytes_per_vip_and_replica);
  CU_add_test(s, "empty_table_drops_vip_packets", empty_table_drops_vip_packets);
  CU_add_test(s, "bad_pushes_are_refused", bad_pushes_are_refused);
}
