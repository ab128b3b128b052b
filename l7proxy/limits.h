/*
 * limits — the l7proxy's protective limits and their defaults.
 *
 * One struct l7_limits is filled from flags by main.c and shared read-only
 * by every worker. Each limit answers with the status named beside it.
 *   --max-uri-bytes       8192     request target longer → 414
 *   --max-header-bytes    32768    request line + header names/values → 431
 *   --max-headers         100      header fields → 431
 *   --max-body            100 MiB  request body when the route sets none → 413
 *   --header-timeout      10 s     whole request head not read in time → 408
 *   --idle-timeout        60 s     keep-alive connection without a request → close
 *   --body-timeout        60 s     no request body byte for this long → 408 (never
 *                                  charged to the upstream endpoint)
 *   --tunnel-idle-timeout 1 h      an Upgrade tunnel with no byte either way → close
 *   --linger-timeout      2 s      after a local answer that ends the connection,
 *                                  what the client still sends is read and dropped
 *                                  this long (at most 1 MiB), then the socket closes
 *   --max-connections     10000    per worker; beyond it new connections are closed
 *   --response-header-timeout 60 s upstream response head not read → 504
 *   --retries             2        connect-failure retries when the route sets none
 * 0 for --max-body means unlimited.
 */
#ifndef EDGE_L7PROXY_LIMITS_H
#define EDGE_L7PROXY_LIMITS_H

#include <stdint.h>

struct l7_limits {
  uint32_t max_uri_bytes;
  uint32_t max_header_bytes;
  uint32_t max_headers;
  uint64_t max_body_bytes;
  uint32_t header_timeout_ms;
  uint32_t idle_timeout_ms;
  uint32_t body_timeout_ms;
  uint32_t tunnel_idle_timeout_ms;
  uint32_t linger_timeout_ms;
  uint32_t max_connections;
  uint32_t response_header_timeout_ms;
  uint32_t retries;
};

#define L7_LIMITS_DEFAULT                                                                       \
  {                                                                                             \
    .max_uri_bytes = 8192, .max_header_bytes = 32768, .max_headers = 100,                       \
    .max_body_bytes = 100u * 1024 * 1024, .header_timeout_ms = 10000, .idle_timeout_ms = 60000, \
    .body_timeout_ms = 60000, .tunnel_idle_timeout_ms = 3600000, .linger_timeout_ms = 2000,     \
    .max_connections = 10000, .response_header_timeout_ms = 60000, .retries = 2,                \
  }

#endif
