/* backend: flow keys from sockets, snapshot publication. */
#include "l4lb/backend.h"

#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "common/addr.h"

static void v4_mapped_v6_flows_hash_like_v4(void) {
  struct sockaddr_storage s4, d4, s6, d6;
  socklen_t len;
  addr_parse("192.0.2.7:40000", &s4, &len);
  addr_parse("198.51.100.1:80", &d4, &len);
  addr_parse("[::ffff:192.0.2.7]:40000", &s6, &len);
  addr_parse("[::ffff:198.51.100.1]:80", &d6, &len);
  struct maglev_flow f4, f6;
  CU_ASSERT_EQUAL(l4_flow_from_addrs(&s4, &d4, &f4), 0);
  CU_ASSERT_EQUAL(l4_flow_from_addrs(&s6, &d6, &f6), 0);
  CU_ASSERT_EQUAL(f6.family, 4);
  CU_ASSERT_EQUAL(maglev_hash_flow(&f4, MAGLEV_HASH_5TUPLE),
                  maglev_hash_flow(&f6, MAGLEV_HASH_5TUPLE));
  CU_ASSERT_EQUAL(f4.src_port, 40000);
  CU_ASSERT_EQUAL(f4.dst_port, 80);
  CU_ASSERT_EQUAL(l4_flow_from_addrs(&s4, &d6, &f4), -1); /* mixed families */
}

static void v4_mapped_addresses_are_unmapped_in_place(void) {
  struct sockaddr_storage ss;
  socklen_t len;
  char out[64];
  addr_parse("[::ffff:192.0.2.7]:40000", &ss, &len);
  l4_unmap_v4(&ss);
  CU_ASSERT_EQUAL(ss.ss_family, AF_INET);
  CU_ASSERT_STRING_EQUAL(addr_format(&ss, out, sizeof(out)), "192.0.2.7:40000");
  addr_parse("[2001:db8::1]:80", &ss, &len);
  l4_unmap_v4(&ss);
  CU_ASSERT_STRING_EQUAL(addr_format(&ss, out, sizeof(out)), "[2001:db8::1]:80");
}

static struct l4_backend *mk(const char *addr) {
  struct l4_backend *b = NULL;
  char err[128];
  CU_ASSERT_EQUAL(l4_backend_new(addr, addr, NULL, 1, 2, 3, NULL, &b, err, sizeof(err)), 0);
  return b;
}

static void snapshot_keeps_backends_alive_until_released(void) {
  struct l4_backend *a = mk("10.0.0.1:80"), *b = mk("10.0.0.2:80");
  struct l4_backend *set[] = {a, b};
  struct l4_snapshot *s;
  char err[128];
  CU_ASSERT_EQUAL_FATAL(l4_snapshot_new(set, 2, 13, &s, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(atomic_load(&a->refs), 2);
  uint64_t gen = l4_snapshot_generation();
  l4_snapshot_publish(s);
  CU_ASSERT_NOT_EQUAL(l4_snapshot_generation(), gen);
  struct l4_snapshot *got = l4_snapshot_acquire();
  CU_ASSERT_PTR_EQUAL(got, s);
  l4_backend_unref(a); /* the membership lets go; the snapshot still holds it */
  CU_ASSERT_EQUAL(atomic_load(&a->refs), 1);
  CU_ASSERT_STRING_EQUAL(got->backends[0]->name, "10.0.0.1:80");
  l4_snapshot_clear(); /* current dropped; our reference keeps it */
  CU_ASSERT_PTR_NULL(l4_snapshot_acquire());
  CU_ASSERT_EQUAL(atomic_load(&got->refs), 1);
  l4_snapshot_unref(got); /* frees the snapshot and a */
  CU_ASSERT_EQUAL(atomic_load(&b->refs), 1);
  l4_backend_unref(b);
}

static void pick_matches_maglev_lookup_of_the_flow_hash(void) {
  struct l4_backend *a = mk("10.0.0.1:80"), *b = mk("10.0.0.2:80"), *c = mk("10.0.0.3:80");
  struct l4_backend *set[] = {a, b, c};
  struct l4_snapshot *s;
  char err[128];
  CU_ASSERT_EQUAL_FATAL(l4_snapshot_new(set, 3, 65537, &s, err, sizeof(err)), 0);
  struct maglev_flow f = {.family = 4, .protocol = 6, .src_port = 1234, .dst_port = 80};
  uint32_t slot;
  int idx = l4_snapshot_pick(s, &f, MAGLEV_HASH_5TUPLE, &slot);
  CU_ASSERT(idx >= 0 && idx < 3);
  CU_ASSERT_EQUAL(slot, maglev_hash_flow(&f, MAGLEV_HASH_5TUPLE) % 65537);
  CU_ASSERT_EQUAL(idx, maglev_slot_backend(s->table, slot));
  l4_snapshot_unref(s);
  l4_backend_unref(a);
  l4_backend_unref(b);
  l4_backend_unref(c);
}

static void backend_with_bad_address_is_refused(void) {
  struct l4_backend *b = NULL;
  char err[128] = "";
  CU_ASSERT_EQUAL(l4_backend_new("x", "nope:80", NULL, 1, 2, 3, NULL, &b, err, sizeof(err)), -1);
  CU_ASSERT_PTR_NULL(b);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "nope:80"));
  CU_ASSERT_EQUAL(l4_backend_new("x", "10.0.0.1:80", "bad", 1, 2, 3, NULL, &b, err, sizeof(err)),
                  -1);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("backend", NULL, NULL);
  CU_add_test(s, "v4_mapped_v6_flows_hash_like_v4", v4_mapped_v6_flows_hash_like_v4);
  CU_add_test(s, "v4_mapped_addresses_are_unmapped_in_place",
              v4_mapped_addresses_are_unmapped_in_place);
  CU_add_test(s, "snapshot_keeps_backends_alive_until_released",
              snapshot_keeps_backends_alive_until_released);
  CU_add_test(s, "pick_matches_maglev_lookup_of_the_flow_hash",
              pick_matches_maglev_lookup_of_the_flow_hash);
  CU_add_test(s, "backend_with_bad_address_is_refused", backend_with_bad_address_is_refused);
}
