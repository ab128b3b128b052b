/*
 * targets — syncd address lists (contract in targets.h).
 *
 * The asynchronous resolution is the blocking one run on libuv's thread
 * pool (uv_queue_work): every lookup of one resolution happens on one
 * pool thread, the job owns a private copy of the list, and the loop
 * thread only sees the finished, sorted result.
 */
#include "common/targets.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int targets_is_ip(const char *host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* Letters, digits, '-', '_' and '.', labels not empty, at most 253 bytes. */
static int targets_is_name(const char *host) {
  size_t n = strlen(host);
  if (n == 0 || n > 253 || host[0] == '.' || strstr(host, "..")) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = host[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_' || c == '.'))
      return 0;
  }
  return 1;
}

static int targets_parse_one(const char *s, size_t len, struct target *t, char *err,
                             size_t errlen) {
  char entry[TARGETS_HOST_MAX + 8];
  memset(t, 0, sizeof(*t));
  if (len == 0) {
    snprintf(err, errlen, "empty address in the list");
    return -1;
  }
  if (len >= sizeof(entry)) {
    snprintf(err, errlen, "address too long (%zu bytes)", len);
    return -1;
  }
  memcpy(entry, s, len);
  entry[len] = '\0';
  if (addr_split_hostport(entry, t->host, sizeof(t->host), &t->port) != 0 || t->host[0] == '\0') {
    snprintf(err, errlen, "%.80s: expected HOST:PORT or [IPv6]:PORT", entry);
    return -1;
  }
  if (t->port == 0) {
    snprintf(err, errlen, "%.80s: port 0", entry);
    return -1;
  }
  t->numeric = targets_is_ip(t->host);
  if (!t->numeric && !targets_is_name(t->host)) {
    snprintf(err, errlen, "%.80s: not an IP address or a DNS name", entry);
    return -1;
  }
  return 0;
}

int targets_parse(const char *spec, struct target_list *out, char *err, size_t errlen) {
  memset(out, 0, sizeof(*out));
  if (!spec || !*spec) {
    snprintf(err, errlen, "no address");
    return -1;
  }
  if (strstr(spec, "://") || strncmp(spec, "unix:", 5) == 0) {
    if (strchr(spec, ',') || strlen(spec) >= TARGETS_HOST_MAX) {
      snprintf(err, errlen, "a gRPC target URI must be the only address (and short)");
      return -1;
    }
    out->v = calloc(1, sizeof(*out->v));
    if (!out->v) {
      snprintf(err, errlen, "out of memory");
      return -1;
    }
    snprintf(out->v[0].host, sizeof(out->v[0].host), "%s", spec);
    out->v[0].opaque = 1;
    out->n = 1;
    return 0;
  }
  out->v = calloc(TARGETS_MAX, sizeof(*out->v));
  if (!out->v) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  const char *p = spec;
  for (;;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (out->n == TARGETS_MAX) {
      snprintf(err, errlen, "more than %d addresses", TARGETS_MAX);
      targets_free(out);
      return -1;
    }
    struct target *t = &out->v[out->n];
    if (targets_parse_one(p, len, t, err, errlen) != 0) {
      targets_free(out);
      return -1;
    }
    out->n++;
    if (!t->numeric) out->has_names = 1;
    if (!comma) break;
    p = comma + 1;
  }
  return 0;
}

int targets_is_loopback(const char *spec) {
  struct target_list tl;
  char why[128], hp[TARGETS_HOST_MAX + 16];
  if (!spec || targets_parse(spec, &tl, why, sizeof(why)) != 0) return 0;
  int all = tl.n > 0;
  for (size_t i = 0; all && i < tl.n; i++) {
    const struct target *t = &tl.v[i];
    snprintf(hp, sizeof(hp), strchr(t->host, ':') ? "[%s]:%u" : "%s:%u", t->host, t->port);
    all = !t->opaque && addr_is_loopback(hp);
  }
  targets_free(&tl);
  return all;
}

void targets_free(struct target_list *l) {
  free(l->v);
  memset(l, 0, sizeof(*l));
}

void targets_addrs_free(struct target_addrs *a) {
  free(a->v);
  memset(a, 0, sizeof(*a));
}

static int targets_cmp(const struct target_addr *a, const char *addr, const char *name) {
  int c = strcmp(a->addr, addr);
  return c ? c : strcmp(a->name, name);
}

/* Inserts (addr, name) in sorted position unless present. */
static int targets_insert(struct target_addrs *out, const char *addr, const char *name) {
  size_t i = 0;
  while (i < out->n && targets_cmp(&out->v[i], addr, name) < 0) i++;
  if (i < out->n && targets_cmp(&out->v[i], addr, name) == 0) return 0;
  if (out->n == TARGETS_ADDRS_MAX) return -1;
  struct target_addr *v = realloc(out->v, (out->n + 1) * sizeof(*v));
  if (!v) return -1;
  out->v = v;
  memmove(&v[i + 1], &v[i], (out->n - i) * sizeof(*v));
  memset(&v[i], 0, sizeof(v[i]));
  snprintf(v[i].addr, sizeof(v[i].addr), "%s", addr);
  snprintf(v[i].name, sizeof(v[i].name), "%s", name);
  out->n++;
  return 0;
}

int targets_add(struct target_addrs *out, const struct target *t, const struct addrinfo *ai) {
  if (t->opaque) return targets_insert(out, t->host, "");
  if (t->numeric) {
    struct sockaddr_storage ss;
    socklen_t len;
    char addr[ADDR_STRLEN];
    if (addr_from_ip(t->host, t->port, &ss, &len) != 0) return -1;
    return targets_insert(out, addr_format(&ss, addr, sizeof(addr)), "");
  }
  for (; ai; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (ai->ai_addrlen > sizeof(ss)) continue;
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    if (ss.ss_family == AF_INET)
      ((struct sockaddr_in *)&ss)->sin_port = htons(t->port);
    else
      ((struct sockaddr_in6 *)&ss)->sin6_port = htons(t->port);
    char addr[ADDR_STRLEN];
    if (targets_insert(out, addr_format(&ss, addr, sizeof(addr)), t->host) != 0) return -1;
  }
  return 0;
}

int targets_addrs_find(const struct target_addrs *a, const char *addr) {
  for (size_t i = 0; i < a->n; i++)
    if (strcmp(a->v[i].addr, addr) == 0) return (int)i;
  return -1;
}

int targets_addrs_equal(const struct target_addrs *a, const struct target_addrs *b) {
  if (a->n != b->n) return 0;
  for (size_t i = 0; i < a->n; i++)
    if (targets_cmp(&a->v[i], b->v[i].addr, b->v[i].name) != 0) return 0;
  return 1;
}

static int targets_getaddrinfo(void *ud, const char *host, struct addrinfo **res) {
  struct addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  return getaddrinfo(host, NULL, &hints, res);
}

static void targets_freeaddrinfo(void *ud, struct addrinfo *res) {
  freeaddrinfo(res);
}

int targets_resolve_blocking(const struct target_list *l, struct target_addrs *out, char *err,
                             size_t errlen) {
  static const struct targets_lookup system = {targets_getaddrinfo, targets_freeaddrinfo, NULL};
  return targets_resolve_with(l, &system, out, err, errlen);
}

int targets_resolve_with(const struct target_list *l, const struct targets_lookup *lk,
                         struct target_addrs *out, char *err, size_t errlen) {
  memset(out, 0, sizeof(*out));
  char why[300] = "";
  for (size_t i = 0; i < l->n; i++) {
    const struct target *t = &l->v[i];
    if (t->numeric || t->opaque) {
      if (targets_add(out, t, NULL) != 0) snprintf(why, sizeof(why), "too many addresses");
      continue;
    }
    struct addrinfo *ai = NULL;
    int rc = lk->lookup(lk->ud, t->host, &ai);
    if (rc != 0) {
      snprintf(why, sizeof(why), "%.200s: %s", t->host, gai_strerror(rc));
      continue;
    }
    if (targets_add(out, t, ai) != 0) snprintf(why, sizeof(why), "too many addresses");
    lk->release(lk->ud, ai);
  }
  if (out->n == 0) {
    snprintf(err, errlen, "no address resolved%s%s", why[0] ? ": " : "", why);
    targets_addrs_free(out);
    return -1;
  }
  return 0;
}

/* ---- asynchronous resolution ---------------------------------------------- */

struct targets_resolve {
  uv_work_t work;
  struct target_list list; /* private copy */
  struct target_addrs addrs;
  int rc;
  char err[300];
  targets_resolved_cb cb;
  void *ud;
  int cancelled;
};

static void targets_work(uv_work_t *w) {
  struct targets_resolve *r = w->data;
  r->rc = targets_resolve_blocking(&r->list, &r->addrs, r->err, sizeof(r->err));
}

static void targets_after_work(uv_work_t *w, int status) {
  struct targets_resolve *r = w->data;
  if (!r->cancelled) {
    if (status != 0 && r->rc == 0) {
      r->rc = -1;
      snprintf(r->err, sizeof(r->err), "resolution cancelled");
    }
    r->cb(r->ud, r->rc, &r->addrs, r->err);
  }
  targets_addrs_free(&r->addrs);
  targets_free(&r->list);
  free(r);
}

int targets_resolve(uv_loop_t *loop, const struct target_list *l, targets_resolved_cb cb, void *ud,
                    struct targets_resolve **out) {
  struct targets_resolve *r = calloc(1, sizeof(*r));
  if (!r) return -1;
  r->list.v = calloc(l->n ? l->n : 1, sizeof(*r->list.v));
  if (!r->list.v) {
    free(r);
    return -1;
  }
  memcpy(r->list.v, l->v, l->n * sizeof(*l->v));
  r->list.n = l->n;
  r->list.has_names = l->has_names;
  r->cb = cb;
  r->ud = ud;
  r->work.data = r;
  if (uv_queue_work(loop, &r->work, targets_work, targets_after_work) != 0) {
    targets_free(&r->list);
    free(r);
    return -1;
  }
  if (out) *out = r;
  return 0;
}

void targets_resolve_cancel(struct targets_resolve *r) {
  if (r) r->cancelled = 1;
}
