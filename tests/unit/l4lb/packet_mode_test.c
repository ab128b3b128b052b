/* packet_mode: --vip specs (pure; the map side is covered by xdp_lb_test
 * and the netns packet-mode e2e). */
#include "l4lb/packet_mode.h"

#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static void vip_specs_parse_with_tcp_by_default(void) {
  struct l4_packet_vip v;
  char err[256], back[64];
  CU_ASSERT_EQUAL(l4_packet_parse_vip("10.0.100.1:80", &v, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(v.addr, inet_addr("10.0.100.1"));
  CU_ASSERT_EQUAL(v.port, 80);
  CU_ASSERT_EQUAL(v.proto, IPPROTO_TCP);
  CU_ASSERT_STRING_EQUAL(l4_packet_format_vip(&v, back, sizeof(back)), "10.0.100.1:80/tcp");
  CU_ASSERT_EQUAL(l4_packet_parse_vip("10.0.100.1:53/udp", &v, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(v.proto, IPPROTO_UDP);
  CU_ASSERT_STRING_EQUAL(l4_packet_format_vip(&v, back, sizeof(back)), "10.0.100.1:53/udp");
  CU_ASSERT_EQUAL(l4_packet_parse_vip("10.0.100.1:443/tcp", &v, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(v.port, 443);
}

static void bad_vip_specs_are_rejected_with_a_reason(void) {
  const char *bad[] = {
      "10.0.100.1", "10.0.100.1:0",       "10.0.100.1:80/sctp", "[::1]:80",       "host.test:80",
      "0.0.0.0:80", "255.255.255.255:80", "10.0.100.1:99999",   "10.0.100.1:80/", "",
      NULL};
  for (int i = 0; bad[i]; i++) {
    struct l4_packet_vip v;
    char err[256] = "";
    CU_ASSERT_EQUAL(l4_packet_parse_vip(bad[i], &v, err, sizeof(err)), -1);
    CU_ASSERT(strstr(err, "--vip") != NULL);
  }
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("packet_mode", NULL, NULL);
  CU_add_test(s, "vip_specs_parse_with_tcp_by_default", vip_specs_parse_with_tcp_by_default);
  CU_add_test(s, "bad_vip_specs_are_rejected_with_a_reason",
              bad_vip_specs_are_rejected_with_a_reason);
}
