/*
 * addr — network addresses as operators write them ("127.0.0.1:8080",
 * "[::1]:443") and as the kernel takes them (struct sockaddr_storage), and
 * the SO_REUSEPORT listening sockets every daemon opens one per worker.
 *
 * Parsing is numeric only: a host name is refused (no resolver runs on the
 * data path, and a listen address that resolved differently on two hosts
 * would be a surprise). An IPv6 address always carries brackets when a
 * port follows it. Formatting is the inverse: "IP:PORT", "[IPv6]:PORT".
 *
 * Callers: common/admin, l4lb (backends, listeners, /lookup), l7proxy
 * (listeners, endpoints, client addresses), the flags that take ADDR:PORT.
 * Pure functions apart from addr_bind_reuseport (one socket). Any thread;
 * no allocation, no global state.
 */
#ifndef EDGE_COMMON_ADDR_H
#define EDGE_COMMON_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Enough for "[" INET6_ADDRSTRLEN "]:65535". */
#define ADDR_STRLEN 56

/*
 * Splits "host:port" or "[v6]:port" into host (brackets removed) and port
 * (0..65535, decimal digits only). The host is not checked (it may be a
 * name, or empty for ":80"); a bare IPv6 address without brackets is
 * refused. 0 or -1.
 */
int addr_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port);

/* 1 when "ADDR:PORT" names this machine's loopback only (127.0.0.0/8,
 * [::1], localhost), else 0 (also for anything that does not parse):
 * --insecure is allowed only there unless --insecure-allow-remote. */
int addr_is_loopback(const char *hostport);

/* Numeric IPv4 or IPv6 address ip (IPv6 with or without brackets) and port
 * into *ss and *len. 0 or -1. */
int addr_from_ip(const char *ip, uint16_t port, struct sockaddr_storage *ss, socklen_t *len);

/* Numeric "IP:PORT" / "[IPv6]:PORT" into *ss and *len. 0 or -1 (s may be NULL). */
int addr_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len);

/* The port of an AF_INET/AF_INET6 address, or -1. */
int addr_port(const struct sockaddr_storage *ss);

/* "IP:PORT" or "[IPv6]:PORT" ("?" for another family) into out; returns out. */
char *addr_format(const struct sockaddr_storage *ss, char *out, size_t outlen);

/* The IP alone, without brackets ("unknown" for another family); returns out. */
char *addr_format_ip(const struct sockaddr_storage *ss, char *out, size_t outlen);

enum {
  ADDR_NONBLOCK = 1, /* the socket (and so every accepted one) is non-blocking */
  ADDR_NODELAY = 2,  /* TCP_NODELAY, which accepted sockets inherit */
};

/*
 * A TCP socket (close-on-exec) with SO_REUSEADDR and SO_REUSEPORT bound to
 * *ss, so that every worker can bind its own socket to the same address
 * and the kernel spreads connections over them; listening with `backlog`
 * when backlog > 0 (otherwise the caller's event loop calls listen). On
 * success *ss is rewritten with the address actually bound, so with port 0
 * the next call binds the port the kernel chose. Returns the descriptor or
 * a negative errno.
 */
int addr_bind_reuseport(struct sockaddr_storage *ss, socklen_t len, int backlog, unsigned flags);

#endif
