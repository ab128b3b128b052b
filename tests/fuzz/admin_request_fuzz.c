/*
 * admin_request_fuzz — the admin endpoint's request-head parser
 * (common/admin.h admin_parse_request) on arbitrary bytes, then the query
 * decoder on whatever query it returns. Invariants checked: a parsed head
 * lies inside the input, its method is a token, its path starts with '/'
 * and holds no byte <= 0x20; the decoder never writes past its buffer
 * (ASan) and always NUL-terminates.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/admin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 16384) return 0;
  char *buf = malloc(size + 1);
  if (!buf) return 0;
  memcpy(buf, data, size);
  buf[size] = '\0';
  struct admin_request r;
  int rc = admin_parse_request(buf, size, &r);
  if (rc == ADMIN_PARSE_OK) {
    if (r.head_len == 0 || r.head_len > size) abort();
    if (r.method < buf || r.path < buf || r.path >= buf + size) abort();
    if (r.path[0] != '/') abort();
    for (const char *p = r.path; *p; p++)
      if ((unsigned char)*p <= 0x20 || *p == 0x7f) abort();
    for (const char *p = r.method; *p; p++)
      if ((unsigned char)*p <= 0x20) abort();
    char out[64];
    static const char *const keys[] = {"url", "host", "path", "sni", "src", "dst", ""};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
      memset(out, 'x', sizeof(out));
      if (admin_query_get(r.query, keys[i], out, sizeof(out)) == 0 &&
          memchr(out, '\0', sizeof(out)) == NULL)
        abort();
    }
  } else if (rc != ADMIN_PARSE_INCOMPLETE && rc != ADMIN_PARSE_BAD) {
    abort();
  }
  free(buf);
  return 0;
}
