/* client_hello: SNI from real ClientHellos (made by OpenSSL in memory), at
 * every truncation, across records, and from hostile bytes. */
#include "common/client_hello.h"

#include <CUnit/CUnit.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

/* The first flight of a real TLS client for server name sni (NULL: none). */
static size_t real_hello(const char *sni, uint8_t *out, size_t cap) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL *ssl = SSL_new(ctx);
  BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, rb, wb);
  if (sni) SSL_set_tlsext_host_name(ssl, sni);
  SSL_set_connect_state(ssl);
  SSL_do_handshake(ssl); /* wants to read: the ClientHello is in wb */
  int n = BIO_read(wb, out, (int)cap);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return n > 0 ? (size_t)n : 0;
}

static void real_hello_gives_the_lower_cased_name(void) {
  uint8_t buf[4096];
  size_t n = real_hello("Shop.Example.COM", buf, sizeof(buf));
  CU_ASSERT_FATAL(n > 100);
  char sni[256];
  CU_ASSERT_EQUAL(client_hello_sni(buf, n, sni, sizeof(sni)), CLIENT_HELLO_SNI);
  CU_ASSERT_STRING_EQUAL(sni, "shop.example.com");
  /* trailing bytes after the hello (the client does not wait) change nothing */
  buf[n] = 0x17;
  CU_ASSERT_EQUAL(client_hello_sni(buf, n + 1, sni, sizeof(sni)), CLIENT_HELLO_SNI);
}

static void every_prefix_needs_more(void) {
  uint8_t buf[4096];
  size_t n = real_hello("a.example.com", buf, sizeof(buf));
  char sni[256];
  for (size_t k = 1; k < n; k++) {
    enum client_hello_result r = client_hello_sni(buf, k, sni, sizeof(sni));
    if (r != CLIENT_HELLO_NEED_MORE) {
      CU_FAIL("a prefix did not ask for more");
      break;
    }
  }
  CU_ASSERT_EQUAL(client_hello_sni(buf, 0, sni, sizeof(sni)), CLIENT_HELLO_NEED_MORE);
}

static void hello_without_server_name(void) {
  uint8_t buf[4096];
  size_t n = real_hello(NULL, buf, sizeof(buf));
  char sni[256];
  CU_ASSERT_EQUAL(client_hello_sni(buf, n, sni, sizeof(sni)), CLIENT_HELLO_NO_SNI);
}

/* The same handshake message cut into records of 50 bytes. */
static void hello_split_across_records(void) {
  uint8_t buf[4096], split[8192];
  size_t n = real_hello("split.example.com", buf, sizeof(buf));
  size_t body = n - 5, o = 0;
  for (size_t off = 0; off < body; off += 50) {
    size_t k = body - off < 50 ? body - off : 50;
    split[o++] = 22, split[o++] = 3, split[o++] = 1;
    split[o++] = (uint8_t)(k >> 8), split[o++] = (uint8_t)k;
    memcpy(split + o, buf + 5 + off, k);
    o += k;
  }
  char sni[256];
  CU_ASSERT_EQUAL(client_hello_sni(split, o, sni, sizeof(sni)), CLIENT_HELLO_SNI);
  CU_ASSERT_STRING_EQUAL(sni, "split.example.com");
  CU_ASSERT_EQUAL(client_hello_sni(split, 60, sni, sizeof(sni)), CLIENT_HELLO_NEED_MORE);
}

static void plain_http_and_garbage_are_invalid(void) {
  char sni[256];
  const char *http = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  CU_ASSERT_EQUAL(client_hello_sni((const uint8_t *)http, strlen(http), sni, sizeof(sni)),
                  CLIENT_HELLO_INVALID);
  CU_ASSERT_EQUAL(client_hello_sni((const uint8_t *)"G", 1, sni, sizeof(sni)),
                  CLIENT_HELLO_INVALID);
  uint8_t hs_not_hello[] = {22, 3, 1, 0, 4, 2, 0, 0, 0};
  CU_ASSERT_EQUAL(client_hello_sni(hs_not_hello, sizeof(hs_not_hello), sni, sizeof(sni)),
                  CLIENT_HELLO_INVALID);
}

/* Lengths that point past their container, and names with bytes that could
 * inject into a log line or a lookup, are refused. */
static void hostile_lengths_and_names_are_invalid(void) {
  uint8_t buf[4096];
  size_t n = real_hello("abc.example.com", buf, sizeof(buf));
  char sni[256];
  /* find the name in the hello and corrupt it with a control byte */
  uint8_t *name = memmem(buf, n, "abc.example.com", 15);
  CU_ASSERT_PTR_NOT_NULL_FATAL(name);
  name[3] = '\n';
  CU_ASSERT_EQUAL(client_hello_sni(buf, n, sni, sizeof(sni)), CLIENT_HELLO_INVALID);
  name[3] = '.';
  name[-1] = 200; /* name length beyond its extension */
  CU_ASSERT_EQUAL(client_hello_sni(buf, n, sni, sizeof(sni)), CLIENT_HELLO_INVALID);
  /* flip every byte in turn: never a crash, and no name that was not there */
  n = real_hello("abc.example.com", buf, sizeof(buf));
  for (size_t i = 0; i < n; i++) {
    uint8_t saved = buf[i];
    buf[i] ^= 0xff;
    enum client_hello_result r = client_hello_sni(buf, n, sni, sizeof(sni));
    if (r == CLIENT_HELLO_SNI) CU_ASSERT(strlen(sni) <= 253);
    buf[i] = saved;
  }
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("client_hello", NULL, NULL);
#define T(f) CU_add_test(s, #f, f)
  T(real_hello_gives_the_lower_cased_name);
  T(every_prefix_needs_more);
  T(hello_without_server_name);
  T(hello_split_across_records);
  T(plain_http_and_garbage_are_invalid);
  T(hostile_lengths_and_names_are_invalid);
#undef T
}
