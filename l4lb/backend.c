/*
 * backend — replica objects and snapshot publication. See backend.h for
 * the ownership rules (who may touch which field from which thread).
 */
#include "l4lb/backend.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/metrics.h"
#include "common/publish.h"

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

static void backend_free(struct l4_backend *b) {
  free(b->name);
  free(b->address);
  free(b->check_address);
  free(b->https_address);
  free(b);
}

int l4_backend_new(const char *name, const char *address, const char *check_address,
                   uint32_t weight, int rise, int fall, struct metrics_registry *metrics,
                   struct l4_backend **out, char *err, size_t errlen) {
  *out = NULL;
  struct l4_backend *b = calloc(1, sizeof(*b));
  if (!b) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  atomic_init(&b->refs, 1);
  atomic_init(&b->connect_failures, 0);
  if (addr_parse(address, &b->addr, &b->addrlen) != 0) {
    snprintf(err, errlen, "backend %s: address %s is not a numeric IP:PORT", name, address);
    free(b);
    return -1;
  }
  if (check_address && *check_address &&
      addr_parse(check_address, &b->check_addr, &b->check_addrlen) != 0) {
    snprintf(err, errlen, "backend %s: check address %s is not a numeric IP:PORT", name,
             check_address);
    free(b);
    return -1;
  }
  b->name = strdup(name);
  b->address = strdup(address);
  b->check_address = (check_address && *check_address) ? dup_or_null(check_address) : NULL;
  if (!b->name || !b->address) {
    backend_free(b);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  b->weight = weight ? weight : 1;
  health_init(&b->health, rise, fall);
  if (metrics) {
    char esc[256], labels[300];
    snprintf(labels, sizeof(labels), "backend=\"%s\"",
             metrics_escape_label(name, esc, sizeof(esc)));
    b->metrics = metrics;
    b->m_up = metrics_gauge(metrics, "edge_l4_backend_up",
                            "1 when the backend passes health checks and is not draining", labels);
    b->m_conns = metrics_gauge(metrics, "edge_l4_backend_connections",
                               "Connections currently forwarded to the backend", labels);
    b->m_failures = metrics_counter(metrics, "edge_l4_connect_failures_total",
                                    "Failed connects to the backend", labels);
  }
  *out = b;
  return 0;
}

int l4_backend_set_https(struct l4_backend *b, const char *https_address, char *err,
                         size_t errlen) {
  if (!https_address || !*https_address) {
    free(b->https_address);
    b->https_address = NULL;
    return 0;
  }
  struct sockaddr_storage ss;
  socklen_t len;
  if (addr_parse(https_address, &ss, &len) != 0) {
    snprintf(err, errlen, "backend %s: https address %s is not a numeric IP:PORT", b->name,
             https_address);
    return -1;
  }
  char *copy = strdup(https_address);
  if (!copy) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  free(b->https_address);
  b->https_address = copy;
  b->https_addr = ss;
  b->https_addrlen = len;
  return 0;
}

void l4_backend_ref(struct l4_backend *b) {
  atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void l4_backend_unref(struct l4_backend *b) {
  if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) backend_free(b);
}

void l4_backend_forget_metrics(struct l4_backend *b) {
  if (!b->metrics) return;
  char esc[256], labels[300];
  snprintf(labels, sizeof(labels), "backend=\"%s\"",
           metrics_escape_label(b->name, esc, sizeof(esc)));
  /* The handles stay valid for the registry's lifetime; only the series
   * disappear from /metrics. */
  metrics_remove(b->metrics, "edge_l4_backend_up", labels);
  metrics_remove(b->metrics, "edge_l4_backend_connections", labels);
  metrics_remove(b->metrics, "edge_l4_connect_failures_total", labels);
}

/* ---- snapshots ------------------------------------------------------------ */

int l4_snapshot_new(struct l4_backend *const *backends, size_t n, uint32_t m,
                    struct l4_snapshot **out, char *err, size_t errlen) {
  *out = NULL;
  struct l4_snapshot *s = calloc(1, sizeof(*s));
  struct maglev_backend *mb = calloc(n ? n : 1, sizeof(*mb));
  struct l4_backend **list = calloc(n ? n : 1, sizeof(*list));
  if (!s || !mb || !list) {
    free(s);
    free(mb);
    free(list);
    snprintf(err, errlen, "out of memory");
    return MAGLEV_ERR_NOMEM;
  }
  s->backends = list;
  for (size_t i = 0; i < n; i++)
    mb[i] = (struct maglev_backend){backends[i]->name, backends[i]->weight};
  int rc = maglev_build(mb, n, m, &s->table, err, errlen);
  free(mb);
  if (rc != 0) {
    free(s->backends);
    free(s);
    return rc;
  }
  for (size_t i = 0; i < n; i++) {
    s->backends[i] = backends[i];
    l4_backend_ref(backends[i]);
  }
  s->n = n;
  atomic_init(&s->refs, 1);
  *out = s;
  return 0;
}

void l4_snapshot_unref(struct l4_snapshot *s) {
  if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) return;
  for (size_t i = 0; i < s->n; i++) l4_backend_unref(s->backends[i]);
  free(s->backends);
  maglev_free(s->table);
  free(s);
}

static void snapshot_ref_slot(void *s) {
  atomic_fetch_add_explicit(&((struct l4_snapshot *)s)->refs, 1, memory_order_relaxed);
}

static void snapshot_unref_slot(void *s) {
  l4_snapshot_unref(s);
}

/* The generation is the last write before the snapshot becomes visible (/config shows it). */
static void snapshot_stamp(void *s, uint64_t generation) {
  ((struct l4_snapshot *)s)->generation = generation;
}

static struct publish_slot current =
    PUBLISH_SLOT_INIT(snapshot_ref_slot, snapshot_unref_slot, snapshot_stamp);

void l4_snapshot_publish(struct l4_snapshot *s) {
  publish_slot_publish(&current, s);
}

struct l4_snapshot *l4_snapshot_acquire(void) {
  return publish_slot_acquire(&current, NULL);
}

uint64_t l4_snapshot_generation(void) {
  return publish_slot_generation(&current);
}

void l4_snapshot_clear(void) {
  publish_slot_publish(&current, NULL);
}

int l4_flow_from_addrs(const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
                       struct maglev_flow *flow) {
  memset(flow, 0, sizeof(*flow));
  flow->protocol = 6;
  if (src->ss_family != dst->ss_family) return -1;
  if (src->ss_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)src;
    const struct sockaddr_in *d4 = (const struct sockaddr_in *)dst;
    flow->family = 4;
    memcpy(flow->src, &s4->sin_addr, 4);
    memcpy(flow->dst, &d4->sin_addr, 4);
    flow->src_port = ntohs(s4->sin_port);
    flow->dst_port = ntohs(d4->sin_port);
    return 0;
  }
  if (src->ss_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)src;
    const struct sockaddr_in6 *d6 = (const struct sockaddr_in6 *)dst;
    int mapped = IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && IN6_IS_ADDR_V4MAPPED(&d6->sin6_addr);
    flow->family = mapped ? 4 : 6;
    size_t off = mapped ? 12 : 0, alen = mapped ? 4 : 16;
    memcpy(flow->src, (const uint8_t *)&s6->sin6_addr + off, alen);
    memcpy(flow->dst, (const uint8_t *)&d6->sin6_addr + off, alen);
    flow->src_port = ntohs(s6->sin6_port);
    flow->dst_port = ntohs(d6->sin6_port);
    return 0;
  }
  return -1;
}

int l4_snapshot_pick(const struct l4_snapshot *s, const struct maglev_flow *flow,
                     enum maglev_hash_mode mode, uint32_t *slot) {
  if (!s) return -1;
  return maglev_lookup(s->table, maglev_hash_flow(flow, mode), slot);
}

void l4_unmap_v4(struct sockaddr_storage *ss) {
  if (ss->ss_family != AF_INET6) return;
  struct sockaddr_in6 in6 = *(const struct sockaddr_in6 *)ss;
  if (!IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) return;
  struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
  memset(ss, 0, sizeof(*ss));
  in4->sin_family = AF_INET;
  in4->sin_port = in6.sin6_port;
  memcpy(&in4->sin_addr, (const uint8_t *)&in6.sin6_addr + 12, 4);
}
