/* addr: ADDR:PORT parsing and formatting, and SO_REUSEPORT sockets on loopback. */
#include "common/addr.h"

#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

static void hostport_splits_ipv4_names_and_bracketed_ipv6(void) {
  char host[64];
  uint16_t port = 0;
  CU_ASSERT_EQUAL(addr_split_hostport("127.0.0.1:8080", host, sizeof(host), &port), 0);
  CU_ASSERT_STRING_EQUAL(host, "127.0.0.1");
  CU_ASSERT_EQUAL(port, 8080);
  CU_ASSERT_EQUAL(addr_split_hostport("example.com:443", host, sizeof(host), &port), 0);
  CU_ASSERT_STRING_EQUAL(host, "example.com");
  CU_ASSERT_EQUAL(addr_split_hostport("[::1]:9000", host, sizeof(host), &port), 0);
  CU_ASSERT_STRING_EQUAL(host, "::1");
  CU_ASSERT_EQUAL(port, 9000);
  CU_ASSERT_EQUAL(addr_split_hostport("[2001:db8::5]:0", host, sizeof(host), &port), 0);
  CU_ASSERT_STRING_EQUAL(host, "2001:db8::5");
  CU_ASSERT_EQUAL(port, 0);
  CU_ASSERT_EQUAL(addr_split_hostport(":80", host, sizeof(host), &port), 0);
  CU_ASSERT_STRING_EQUAL(host, "");
}

static void hostport_rejects_malformed_input(void) {
  char host[16];
  uint16_t port;
  static const char *const bad[] = {"127.0.0.1",       "127.0.0.1:",
                                    "127.0.0.1:65536", "127.0.0.1:8a",
                                    "::1:80",          "[::1]80",
                                    "[::1]",           "[]:80",
                                    "host:-1",         "a-very-long-hostname.example.com:80"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    CU_ASSERT_EQUAL(addr_split_hostport(bad[i], host, sizeof(host), &port), -1);
}

static void parse_and_format_round_trip(void) {
  static const char *const ok[] = {"127.0.0.1:8080", "0.0.0.0:0", "[::1]:443", "[2001:db8::1]:80",
                                   "10.1.2.3:65535"};
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    struct sockaddr_storage ss;
    socklen_t len = 0;
    char out[ADDR_STRLEN];
    CU_ASSERT_EQUAL_FATAL(addr_parse(ok[i], &ss, &len), 0);
    CU_ASSERT_EQUAL(
        len, ss.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    CU_ASSERT_STRING_EQUAL(addr_format(&ss, out, sizeof(out)), ok[i]);
  }
}

static void parse_is_numeric_only(void) {
  struct sockaddr_storage ss;
  socklen_t len;
  static const char *const bad[] = {"example.com:80", "localhost:80", "1.2.3.4",  ":80",
                                    "1.2.3.4:99999",  "[1.2.3.4]:80", "1.2.3:80", "::1:80",
                                    "[::1]"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    CU_ASSERT_EQUAL(addr_parse(bad[i], &ss, &len), -1);
  CU_ASSERT_EQUAL(addr_parse(NULL, &ss, &len), -1);
}

static void from_ip_takes_v6_with_or_without_brackets(void) {
  struct sockaddr_storage ss;
  socklen_t len;
  char out[ADDR_STRLEN];
  CU_ASSERT_EQUAL(addr_from_ip("[fe80::2]", 8080, &ss, &len), 0);
  CU_ASSERT_STRING_EQUAL(addr_format(&ss, out, sizeof(out)), "[fe80::2]:8080");
  CU_ASSERT_EQUAL(addr_from_ip("fe80::2", 8080, &ss, &len), 0);
  CU_ASSERT_EQUAL(addr_port(&ss), 8080);
  CU_ASSERT_EQUAL(addr_from_ip("192.0.2.1", 1, &ss, &len), 0);
  CU_ASSERT_STRING_EQUAL(addr_format_ip(&ss, out, sizeof(out)), "192.0.2.1");
  CU_ASSERT_EQUAL(addr_from_ip("[192.0.2.1]", 1, &ss, &len), -1);
  CU_ASSERT_EQUAL(addr_from_ip("not-an-ip", 1, &ss, &len), -1);
  CU_ASSERT_EQUAL(addr_from_ip("", 1, &ss, &len), -1);
}

static void format_of_another_family_says_so(void) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  ss.ss_family = AF_UNIX;
  char out[ADDR_STRLEN];
  CU_ASSERT_STRING_EQUAL(addr_format(&ss, out, sizeof(out)), "?");
  CU_ASSERT_STRING_EQUAL(addr_format_ip(&ss, out, sizeof(out)), "unknown");
  CU_ASSERT_EQUAL(addr_port(&ss), -1);
  /* a short buffer truncates, never overflows */
  addr_parse("[2001:db8::1]:80", &ss, &(socklen_t){0});
  char small[8];
  addr_format(&ss, small, sizeof(small));
  CU_ASSERT_EQUAL(strlen(small), 7);
}

/* Two workers bind the same port-0 address: the second gets the port the kernel chose for the
 * first, and both accept connections made to it. */
static void bind_reuseport_shares_the_kernel_chosen_port(void) {
  struct sockaddr_storage ss;
  socklen_t len;
  CU_ASSERT_EQUAL_FATAL(addr_parse("127.0.0.1:0", &ss, &len), 0);
  int a = addr_bind_reuseport(&ss, len, 16, ADDR_NONBLOCK | ADDR_NODELAY);
  CU_ASSERT_TRUE_FATAL(a >= 0);
  int port = addr_port(&ss);
  CU_ASSERT_TRUE(port > 0);
  int b = addr_bind_reuseport(&ss, len, 16, 0);
  CU_ASSERT_TRUE_FATAL(b >= 0);
  CU_ASSERT_EQUAL(addr_port(&ss), port);
  CU_ASSERT_TRUE((fcntl(a, F_GETFL) & O_NONBLOCK) != 0);
  CU_ASSERT_TRUE((fcntl(b, F_GETFL) & O_NONBLOCK) == 0);
  CU_ASSERT_TRUE((fcntl(a, F_GETFD) & FD_CLOEXEC) != 0);
  int one = 0;
  socklen_t ol = sizeof(one);
  getsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, &ol);
  CU_ASSERT_TRUE(one != 0);
  int c = socket(AF_INET, SOCK_STREAM, 0);
  CU_ASSERT_EQUAL(connect(c, (struct sockaddr *)&ss, len), 0);
  close(c);
  close(a);
  close(b);
}

static void bind_reuseport_without_backlog_does_not_listen(void) {
  struct sockaddr_storage ss;
  socklen_t len;
  addr_parse("127.0.0.1:0", &ss, &len);
  int a = addr_bind_reuseport(&ss, len, 0, 0);
  CU_ASSERT_TRUE_FATAL(a >= 0);
  int c = socket(AF_INET, SOCK_STREAM, 0);
  CU_ASSERT_NOT_EQUAL(connect(c, (struct sockaddr *)&ss, len), 0);
  CU_ASSERT_EQUAL(errno, ECONNREFUSED);
  close(c);
  CU_ASSERT_EQUAL(listen(a, 4), 0);
  c = socket(AF_INET, SOCK_STREAM, 0);
  CU_ASSERT_EQUAL(connect(c, (struct sockaddr *)&ss, len), 0);
  close(c);
  close(a);
}

static void bind_reuseport_reports_errno(void) {
  struct sockaddr_storage ss;
  socklen_t len;
  addr_parse("192.0.2.1:1", &ss, &len); /* TEST-NET-1: not an address of this host */
  CU_ASSERT_EQUAL(addr_bind_reuseport(&ss, len, 16, 0), -EADDRNOTAVAIL);
}

/* --insecure is allowed only on these without --insecure-allow-remote. */
static void only_loopback_addresses_count_as_loopback(void) {
  CU_ASSERT_EQUAL(addr_is_loopback("127.0.0.1:7000"), 1);
  CU_ASSERT_EQUAL(addr_is_loopback("127.1.2.3:0"), 1);
  CU_ASSERT_EQUAL(addr_is_loopback("[::1]:7000"), 1);
  CU_ASSERT_EQUAL(addr_is_loopback("localhost:7000"), 1);
  CU_ASSERT_EQUAL(addr_is_loopback("0.0.0.0:7000"), 0);
  CU_ASSERT_EQUAL(addr_is_loopback("10.0.0.5:7000"), 0);
  CU_ASSERT_EQUAL(addr_is_loopback("[::]:7000"), 0);
  CU_ASSERT_EQUAL(addr_is_loopback("127.0.0.1.evil.com:7000"), 0);
  CU_ASSERT_EQUAL(addr_is_loopback("localhost.evil.com:7000"), 0);
  CU_ASSERT_EQUAL(addr_is_loopback("syncd:7000"), 0);
  CU_ASSERT_EQUAL(addr_is_loopback("127.0.0.1"), 0);
  CU_ASSERT_EQUAL(addr_is_loopback("300.0.0.1:7000"), 0);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("addr", NULL, NULL);
  CU_add_test(s, "hostport_splits_ipv4_names_and_bracketed_ipv6",
              hostport_splits_ipv4_names_and_bracketed_ipv6);
  CU_add_test(s, "hostport_rejects_malformed_input", hostport_rejects_malformed_input);
  CU_add_test(s, "parse_and_format_round_trip", parse_and_format_round_trip);
  CU_add_test(s, "parse_is_numeric_only", parse_is_numeric_only);
  CU_add_test(s, "from_ip_takes_v6_with_or_without_brackets",
              from_ip_takes_v6_with_or_without_brackets);
  CU_add_test(s, "format_of_another_family_says_so", format_of_another_family_says_so);
  CU_add_test(s, "bind_reuseport_shares_the_kernel_chosen_port",
              bind_reuseport_shares_the_kernel_chosen_port);
  CU_add_test(s, "bind_reuseport_without_backlog_does_not_listen",
              bind_reuseport_without_backlog_does_not_listen);
  CU_add_test(s, "bind_reuseport_reports_errno", bind_reuseport_reports_errno);
  CU_add_test(s, "only_loopback_addresses_count_as_loopback",
              only_loopback_addresses_count_as_loopback);
}
