/* Fuzz target: l4lb's health-check response parser must reject garbage
 * without crashing and never report a status outside 100..599. */
#include <stdint.h>
#include <stdlib.h>

#include "common/health.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int r = health_parse_status(data, size);
  if (r != HEALTH_PARSE_NEED_MORE && r != HEALTH_PARSE_ERR && (r < 100 || r > 599)) abort();
  /* a complete answer stays the same when more bytes follow */
  if (r > 0 && size > 0 && health_parse_status(data, size - 1) > 0 &&
      health_parse_status(data, size - 1) != r)
    abort();
  return 0;
}
