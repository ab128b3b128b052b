/*
 * Fuzz target for the ClientHello SNI reader (common/client_hello.c): never
 * crash or read out of bounds; a name returned is a lower-case DNS name of
 * at most 253 bytes; a prefix of an input that parsed is NEED_MORE or the
 * same answer (more bytes never turn a result into another).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/client_hello.h"

#define CHECK(cond)       \
  do {                    \
    if (!(cond)) abort(); \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char sni[256];
  enum client_hello_result r = client_hello_sni(data, size, sni, sizeof(sni));
  if (r == CLIENT_HELLO_SNI) {
    size_t n = strlen(sni);
    CHECK(n > 0 && n <= 253);
    for (size_t i = 0; i < n; i++)
      CHECK((sni[i] >= 'a' && sni[i] <= 'z') || (sni[i] >= '0' && sni[i] <= '9') || sni[i] == '-' ||
            sni[i] == '.' || sni[i] == '_');
  }
  if (r == CLIENT_HELLO_SNI || r == CLIENT_HELLO_NO_SNI) {
    char again[256];
    enum client_hello_result p = client_hello_sni(data, size / 2, again, sizeof(again));
    CHECK(p == CLIENT_HELLO_NEED_MORE || p == r);
  }
  return 0;
}
