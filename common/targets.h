/*
 * targets — the syncd addresses a client is given ("A:P,B:P", or a DNS
 * name that resolves to several addresses), parsed and resolved into the
 * list of addresses to connect to.
 *
 * A spec is a comma-separated list of HOST:PORT entries (IPv6 in
 * brackets). HOST is an IP literal or a DNS name (letters, digits, '-',
 * '.', '_', at most 253 bytes); an entry with "://" or starting "unix:"
 * is an opaque gRPC target passed through unresolved, and then must be
 * the only entry. At most TARGETS_MAX entries; empty entries, spaces and
 * bad ports are refused.
 *
 * Resolution turns each entry into addresses: a literal as it is, a name
 * through getaddrinfo (TCP, IPv4 and IPv6). Each address remembers the
 * name it came from, which is the name a TLS client must check in the
 * server's certificate (it connects to the address, not to the name).
 * The resolved list is sorted by address and has no duplicates, so two
 * clients given the same spec and the same DNS answers list the same
 * addresses in the same order. A name that does not resolve is skipped
 * (its reason is kept); resolution fails only when nothing resolved.
 *
 * Callers: common/rpc_stream (failover between replicas), l4lb (one
 * Membership stream per replica), syncctl (one Status call per replica).
 *
 * Threads: targets_parse and targets_from_addrinfo are pure and run
 * anywhere; targets_resolve runs its lookups on libuv's thread pool and
 * calls back on the loop thread. targets_resolve_blocking is for
 * command-line tools.
 *
 * Ownership: lists are filled by these functions and freed with
 * targets_free / targets_addrs_free. Errors: 0 or -1 with a one-line
 * reason in err.
 */
#ifndef EDGE_COMMON_TARGETS_H
#define EDGE_COMMON_TARGETS_H

#include <netdb.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/addr.h"

#define TARGETS_MAX 16
#define TARGETS_HOST_MAX 254
/* Addresses kept from one resolution (all entries together). */
#define TARGETS_ADDRS_MAX 64

struct target {
  char host[TARGETS_HOST_MAX]; /* without brackets; the whole target when opaque */
  uint16_t port;
  int numeric; /* host is an IP literal */
  int opaque;  /* a gRPC target string passed through (dns:///..., unix:...) */
};

struct target_list {
  struct target *v;
  size_t n;
  int has_names; /* at least one entry needs a DNS lookup */
};

struct target_addr {
  /* "10.0.0.5:7000", "[::1]:7000", or the opaque target. */
  char addr[TARGETS_HOST_MAX + 8];
  /* The DNS name it was resolved from, "" for a literal. */
  char name[TARGETS_HOST_MAX];
};

struct target_addrs {
  struct target_addr *v;
  size_t n;
};

/* Parses spec into *out (emptied first). 0, or -1 with a reason. */
int targets_parse(const char *spec, struct target_list *out, char *err, size_t errlen);
void targets_free(struct target_list *l);
/* 1 when spec parses and every entry names this machine's loopback
 * (addr_is_loopback: 127.0.0.0/8, [::1], localhost), else 0: --insecure
 * is allowed only then unless --insecure-allow-remote. */
int targets_is_loopback(const char *spec);

/* Adds the addresses of t (a literal or an opaque target: itself; a name:
 * every TCP address in ai) to *out, keeping it sorted and without
 * duplicates. 0, or -1 when out of memory or over TARGETS_ADDRS_MAX. */
int targets_add(struct target_addrs *out, const struct target *t, const struct addrinfo *ai);
void targets_addrs_free(struct target_addrs *a);
/* Index of addr in a, or -1. */
int targets_addrs_find(const struct target_addrs *a, const char *addr);
/* 1 when a and b list the same addresses (and names). */
int targets_addrs_equal(const struct target_addrs *a, const struct target_addrs *b);

/* Resolution result: on status 0, *addrs (owned by the callee: move it out
 * or let it be freed after the callback) holds at least one address; on
 * status -1, reason says why nothing resolved. */
typedef void (*targets_resolved_cb)(void *ud, int status, struct target_addrs *addrs,
                                    const char *reason);

struct targets_resolve;

/* Starts resolving every entry of l (copied). cb runs once on the loop,
 * never inside this call. 0 or -1 (out of memory). */
int targets_resolve(uv_loop_t *loop, const struct target_list *l, targets_resolved_cb cb, void *ud,
                    struct targets_resolve **out);
/* cb will not run; the job frees itself once its lookups return. */
void targets_resolve_cancel(struct targets_resolve *r);

/* Resolves l now (getaddrinfo in the calling thread). 0 with *out filled,
 * or -1 with a reason. */
int targets_resolve_blocking(const struct target_list *l, struct target_addrs *out, char *err,
                             size_t errlen);

/* The same with another lookup than getaddrinfo (tests: so that no query
 * leaves the machine). lookup returns 0 or an EAI_* code; release frees
 * what it returned. */
struct targets_lookup {
  int (*lookup)(void *ud, const char *host, struct addrinfo **res);
  void (*release)(void *ud, struct addrinfo *res);
  void *ud;
};
int targets_resolve_with(const struct target_list *l, const struct targets_lookup *lk,
                         struct target_addrs *out, char *err, size_t errlen);

#endif
