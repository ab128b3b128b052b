/*
 * addr — address parsing, formatting and SO_REUSEPORT sockets (see addr.h).
 */
#include "common/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Decimal 0..65535 in at most five digits (no sign, no space, no empty string). */
static int addr_parse_port(const char *s, uint16_t *port) {
  unsigned long v = 0;
  if (*s == '\0' || strlen(s) > 5) return -1;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    v = v * 10 + (unsigned long)(*s - '0');
    if (v > 65535) return -1;
  }
  *port = (uint16_t)v;
  return 0;
}

int addr_is_loopback(const char *hostport) {
  char host[256];
  uint16_t port;
  if (!hostport || addr_split_hostport(hostport, host, sizeof(host), &port) != 0) return 0;
  if (strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0) return 1;
  unsigned a, b, c, d;
  char tail;
  if (sscanf(host, "%3u.%3u.%3u.%3u%c", &a, &b, &c, &d, &tail) == 4)
    return a == 127 && b < 256 && c < 256 && d < 256;
  return 0;
}

int addr_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port) {
  if (s == NULL || host == NULL || hostlen == 0 || port == NULL) return -1;
  const char *h, *p;
  size_t hl;
  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (close == NULL || close[1] != ':') return -1;
    h = s + 1;
    hl = (size_t)(close - h);
    if (hl == 0) return -1;
    p = close + 2;
  } else {
    const char *colon = strrchr(s, ':');
    if (colon == NULL) return -1;
    h = s;
    hl = (size_t)(colon - s);
    if (memchr(h, ':', hl) != NULL) return -1; /* bare IPv6 needs brackets */
    p = colon + 1;
  }
  if (hl + 1 > hostlen) return -1;
  uint16_t pv;
  if (addr_parse_port(p, &pv) != 0) return -1;
  memcpy(host, h, hl);
  host[hl] = '\0';
  *port = pv;
  return 0;
}

int addr_from_ip(const char *ip, uint16_t port, struct sockaddr_storage *ss, socklen_t *len) {
  char v6[INET6_ADDRSTRLEN + 2];
  size_t n = ip ? strlen(ip) : 0;
  if (n > 2 && ip[0] == '[' && ip[n - 1] == ']') {
    if (n - 2 >= sizeof(v6)) return -1;
    memcpy(v6, ip + 1, n - 2);
    v6[n - 2] = '\0';
    ip = v6;
  }
  if (!ip) return -1;
  memset(ss, 0, sizeof(*ss));
  struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
  if (ip != v6 && inet_pton(AF_INET, ip, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    *len = sizeof(*in4);
    return 0;
  }
  if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    *len = sizeof(*in6);
    return 0;
  }
  return -1;
}

int addr_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len) {
  char host[INET6_ADDRSTRLEN + 1];
  uint16_t port;
  if (!s || addr_split_hostport(s, host, sizeof(host), &port) != 0) return -1;
  if (s[0] == '[') {
    /* brackets hold IPv6 only: "[1.2.3.4]:80" is not an address */
    struct in6_addr probe;
    if (inet_pton(AF_INET6, host, &probe) != 1) return -1;
  }
  return addr_from_ip(host, port, ss, len);
}

int addr_port(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET) return ntohs(((const struct sockaddr_in *)ss)->sin_port);
  if (ss->ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
  return -1;
}

char *addr_format_ip(const struct sockaddr_storage *ss, char *out, size_t outlen) {
  if (outlen == 0) return out;
  out[0] = '\0';
  if (ss->ss_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)outlen);
  else if (ss->ss_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out, (socklen_t)outlen);
  if (!out[0]) snprintf(out, outlen, "unknown");
  return out;
}

char *addr_format(const struct sockaddr_storage *ss, char *out, size_t outlen) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (ss->ss_family == AF_INET || ss->ss_family == AF_INET6) {
    addr_format_ip(ss, ip, sizeof(ip));
    snprintf(out, outlen, ss->ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, addr_port(ss));
  } else {
    snprintf(out, outlen, "?");
  }
  return out;
}

int addr_bind_reuseport(struct sockaddr_storage *ss, socklen_t len, int backlog, unsigned flags) {
  int type = SOCK_STREAM | SOCK_CLOEXEC | (flags & ADDR_NONBLOCK ? SOCK_NONBLOCK : 0);
  int fd = socket(ss->ss_family, type, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (flags & ADDR_NODELAY) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
      bind(fd, (const struct sockaddr *)ss, len) != 0 ||
      (backlog > 0 && listen(fd, backlog) != 0)) {
    int e = errno;
    close(fd);
    return -e;
  }
  socklen_t sl = sizeof(*ss);
  getsockname(fd, (struct sockaddr *)ss, &sl);
  return fd;
}
