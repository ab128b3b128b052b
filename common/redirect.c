/*
 * redirect — Location and status of redirect answers (see redirect.h).
 */
#include "common/redirect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes that may appear in a Location value as we write it. */
static int safe(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c >= 0x7f) return 0;
  }
  return 1;
}

/* Splits "host:port" / "[v6]:port" into the host part and its port. */
static void split_authority(const char *a, size_t n, size_t *host_len, unsigned *port) {
  *port = 0;
  *host_len = n;
  const char *colon = NULL;
  if (n > 0 && a[0] == '[') {
    const char *close = memchr(a, ']', n);
    if (!close) return;
    *host_len = (size_t)(close - a) + 1;
    if (*host_len < n && a[*host_len] == ':') colon = a + *host_len;
  } else {
    colon = memchr(a, ':', n);
    if (colon) *host_len = (size_t)(colon - a);
  }
  if (!colon) return;
  unsigned v = 0;
  const char *p = colon + 1, *e = a + n;
  if (p == e) return;
  for (; p < e; p++) {
    if (*p < '0' || *p > '9' || v > 65535) return;
    v = v * 10 + (unsigned)(*p - '0');
  }
  if (v <= 65535) *port = v;
}

int redirect_location(const struct redirect_rule *rule, int to_https,
                      const struct redirect_request *req, char *out, size_t cap) {
  const char *scheme = req->scheme && req->scheme[0] ? req->scheme : "http";
  if (to_https)
    scheme = "https";
  else if (rule && rule->scheme && rule->scheme[0])
    scheme = rule->scheme;
  const char *host = req->authority ? req->authority : "";
  size_t host_len;
  unsigned port;
  if (rule && rule->host && rule->host[0]) {
    split_authority(rule->host, strlen(rule->host), &host_len, &port);
    host = rule->host;
  } else {
    split_authority(host, req->authority_len, &host_len, &port);
  }
  int plain = strcmp(scheme, "http") == 0;
  if (!plain || port == 80) port = 0;
  if (rule && rule->port) port = rule->port;
  if (to_https && !(rule && rule->port))
    port = req->https_port && req->https_port != 443 ? req->https_port : 0;
  const char *path = req->target ? req->target : "/";
  size_t path_len = req->target ? req->target_len : 1;
  if (rule && rule->path && rule->path[0]) {
    path = rule->path;
    path_len = strlen(rule->path);
  }
  if (path_len == 0) path = "/", path_len = 1;
  if (host_len == 0 || !safe(scheme, strlen(scheme)) || !safe(host, host_len) ||
      !safe(path, path_len) || path[0] != '/')
    return REDIRECT_ERR_INVALID;
  char portbuf[8] = "";
  if (port) snprintf(portbuf, sizeof(portbuf), ":%u", port);
  int n = snprintf(out, cap, "%s://%.*s%s%.*s", scheme, (int)host_len, host, portbuf, (int)path_len,
                   path);
  if (n < 0 || (size_t)n >= cap) return REDIRECT_ERR_SPACE;
  unsigned status = rule && rule->status ? rule->status : 308;
  if (status != 301 && status != 302 && status != 303 && status != 307 && status != 308)
    status = 308;
  return (int)status;
}
