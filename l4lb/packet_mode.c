/*
 * packet_mode — snapshots and membership into the XDP balancer's maps,
 * its counters onto /metrics. See packet_mode.h for the contract.
 */
#include "l4lb/packet_mode.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/log.h"
#include "common/metrics.h"
#include "l4lb/xdp_lb.h"

#define SET_ERR(...)                                       \
  do {                                                     \
    if (err && errlen) snprintf(err, errlen, __VA_ARGS__); \
  } while (0)

/* A member the program knows: its address, stats id and metric series. */
struct known {
  struct l4_packet *p;
  char *name;
  char *labels; /* backend="..." */
  uint32_t addr;
  uint32_t stats_id;
  int seen; /* in the membership being applied */
};

/* What a computed counter reads. */
struct counter_ref {
  struct l4_packet *p;
  int kind; /* REF_* */
  uint32_t index;
  const char *metric; /* the series it backs (removed at stop) */
  char labels[128];
};

enum { REF_VIP_PACKETS, REF_VIP_BYTES, REF_EVENT };

struct l4_packet {
  struct xdp_lb *lb;
  struct metrics_registry *metrics;
  char interface[IF_NAMESIZE];
  char tunnel_src[INET_ADDRSTRLEN];
  int generic;
  struct known **known;
  size_t nknown;
  uint8_t used_ids[XLB_MAX_REALS];
  struct counter_ref *refs;
  size_t nrefs;
  uint64_t last_vip_packets, last_change_ms;
  size_t nvips;
};

/* ---- VIP specs (pure) ------------------------------------------------------ */

int l4_packet_parse_vip(const char *spec, struct l4_packet_vip *out, char *err, size_t errlen) {
  char buf[128];
  if (!spec || strlen(spec) >= sizeof(buf)) {
    SET_ERR("--vip: expected ADDR:PORT[/tcp|/udp]");
    return -1;
  }
  snprintf(buf, sizeof(buf), "%s", spec);
  out->proto = IPPROTO_TCP;
  char *slash = strchr(buf, '/');
  if (slash) {
    *slash = '\0';
    if (strcmp(slash + 1, "udp") == 0) {
      out->proto = IPPROTO_UDP;
    } else if (strcmp(slash + 1, "tcp") != 0) {
      SET_ERR("--vip=%s: protocol must be tcp or udp", spec);
      return -1;
    }
  }
  char host[64];
  uint16_t port;
  struct in_addr a;
  if (addr_split_hostport(buf, host, sizeof(host), &port) != 0 || port == 0 ||
      inet_pton(AF_INET, host, &a) != 1) {
    SET_ERR("--vip=%s: expected IPv4ADDR:PORT[/tcp|/udp] (packet mode tunnels IPv4)", spec);
    return -1;
  }
  if (a.s_addr == 0 || a.s_addr == INADDR_BROADCAST) {
    SET_ERR("--vip=%s: not a usable address", spec);
    return -1;
  }
  out->addr = a.s_addr;
  out->port = port;
  return 0;
}

char *l4_packet_format_vip(const struct l4_packet_vip *v, char *out, size_t len) {
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &v->addr, ip, sizeof(ip));
  snprintf(out, len, "%s:%u/%s", ip, v->port, v->proto == IPPROTO_UDP ? "udp" : "tcp");
  return out;
}

/* ---- metrics ---------------------------------------------------------------- */

static uint64_t read_ref(void *arg) {
  const struct counter_ref *r = arg;
  struct xlb_stats st = {0, 0};
  switch (r->kind) {
    case REF_VIP_PACKETS:
    case REF_VIP_BYTES:
      xdp_lb_vip_stats(r->p->lb, r->index, &st);
      return r->kind == REF_VIP_PACKETS ? st.packets : st.bytes;
    default:
      return xdp_lb_event(r->p->lb, (enum xlb_event)r->index);
  }
}

static uint64_t real_packets(void *arg) {
  const struct known *k = arg;
  struct xlb_stats st = {0, 0};
  xdp_lb_real_stats(k->p->lb, k->stats_id, &st);
  return st.packets;
}

static uint64_t real_bytes(void *arg) {
  const struct known *k = arg;
  struct xlb_stats st = {0, 0};
  xdp_lb_real_stats(k->p->lb, k->stats_id, &st);
  return st.bytes;
}

static const char *const EVENT_METRIC[XLB_EV_MAX] = {
    [XLB_EV_PASSED] = "edge_l4_xdp_passed_packets_total",
    [XLB_EV_CONN_HIT] = "edge_l4_xdp_conn_table_total",
    [XLB_EV_CONN_NEW] = "edge_l4_xdp_conn_table_total",
    [XLB_EV_ICMP_TOO_BIG] = "edge_l4_xdp_icmp_total",
    [XLB_EV_ICMP_FORWARDED] = "edge_l4_xdp_icmp_total",
    [XLB_EV_ICMP_ECHO] = "edge_l4_xdp_icmp_total",
};

static void register_counters(struct l4_packet *p, const struct l4_packet_vip *vips, size_t n) {
  p->refs = calloc(2 * n + XLB_EV_MAX, sizeof(*p->refs));
  if (!p->refs || !p->metrics) return;
  char labels[128], vip[64];
  for (size_t i = 0; i < n; i++) {
    snprintf(labels, sizeof(labels), "vip=\"%s\"",
             l4_packet_format_vip(&vips[i], vip, sizeof(vip)));
    struct counter_ref *pk = &p->refs[p->nrefs++], *by = &p->refs[p->nrefs++];
    *pk =
        (struct counter_ref){p, REF_VIP_PACKETS, (uint32_t)i, "edge_l4_xdp_vip_packets_total", ""};
    *by = (struct counter_ref){p, REF_VIP_BYTES, (uint32_t)i, "edge_l4_xdp_vip_bytes_total", ""};
    snprintf(pk->labels, sizeof(pk->labels), "%s", labels);
    snprintf(by->labels, sizeof(by->labels), "%s", labels);
    metrics_counter_fn(p->metrics, "edge_l4_xdp_vip_packets_total",
                       "VIP packets forwarded by the XDP balancer", labels, read_ref, pk);
    metrics_counter_fn(p->metrics, "edge_l4_xdp_vip_bytes_total",
                       "Bytes (inner IPv4 packets) forwarded by the XDP balancer per VIP", labels,
                       read_ref, by);
  }
  for (int ev = 0; ev < XLB_EV_MAX; ev++) {
    struct counter_ref *r = &p->refs[p->nrefs++];
    const char *name = EVENT_METRIC[ev] ? EVENT_METRIC[ev] : "edge_l4_xdp_dropped_packets_total";
    *r = (struct counter_ref){p, REF_EVENT, (uint32_t)ev, name, ""};
    const char *label = "";
    const char *help = "Packets dropped by the XDP balancer, by reason";
    if (ev == XLB_EV_PASSED) {
      help = "Packets not for a VIP address, handed to the kernel untouched";
    } else if (ev == XLB_EV_CONN_HIT || ev == XLB_EV_CONN_NEW) {
      label = "result";
      help = "VIP packets by connection table result (hit: pinned flow; new: Maglev table)";
    } else if (EVENT_METRIC[ev]) {
      label = "action";
      help = "ICMP handled by the XDP balancer for its VIPs";
    } else {
      label = "reason";
    }
    if (*label)
      snprintf(labels, sizeof(labels), "%s=\"%s\"", label, xdp_lb_event_name((enum xlb_event)ev));
    else
      labels[0] = '\0';
    snprintf(r->labels, sizeof(r->labels), "%s", labels);
    metrics_counter_fn(p->metrics, name, help, labels, read_ref, r);
  }
}

static void known_forget(struct l4_packet *p, struct known *k) {
  if (p->metrics) {
    metrics_remove(p->metrics, "edge_l4_xdp_backend_packets_total", k->labels);
    metrics_remove(p->metrics, "edge_l4_xdp_backend_bytes_total", k->labels);
  }
  p->used_ids[k->stats_id] = 0;
  free(k->name);
  free(k->labels);
  free(k);
}

/* ---- start / stop ------------------------------------------------------------ */

static int read_forwarding(const char *ifname) {
  char path[128], v[8] = "";
  snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/forwarding", ifname);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  int ok = fgets(v, sizeof(v), f) != NULL;
  fclose(f);
  return ok ? atoi(v) : -1;
}

static int interface_ipv4(const char *ifname, uint32_t *addr) {
  struct ifaddrs *ifa, *i;
  if (getifaddrs(&ifa) != 0) return -1;
  int rc = -1;
  for (i = ifa; i && rc != 0; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || strcmp(i->ifa_name, ifname) != 0)
      continue;
    *addr = ((const struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;
    rc = 0;
  }
  freeifaddrs(ifa);
  return rc;
}

int l4_packet_start(const struct l4_packet_opts *o, struct l4_packet **out, char *err,
                    size_t errlen) {
  *out = NULL;
  if (!o->interface || strlen(o->interface) >= IF_NAMESIZE) {
    SET_ERR("--interface: missing or too long");
    return -EINVAL;
  }
  if (o->nvips == 0 || o->nvips > XLB_MAX_VIPS) {
    SET_ERR("--mode=xdp needs 1 to %u --vip", XLB_MAX_VIPS);
    return -EINVAL;
  }
  int ifindex = (int)if_nametoindex(o->interface);
  if (ifindex == 0) {
    SET_ERR("--interface=%s: no such interface", o->interface);
    return -ENODEV;
  }
  uint32_t src;
  if (interface_ipv4(o->interface, &src) != 0) {
    SET_ERR("--interface=%s has no IPv4 address (the tunnel's source)", o->interface);
    return -EADDRNOTAVAIL;
  }
  if (read_forwarding(o->interface) != 1) {
    SET_ERR(
        "--interface=%s: IPv4 forwarding is off; the XDP program asks the kernel's routing "
        "table for next hops, which needs it (sysctl -w net.ipv4.conf.%s.forwarding=1)",
        o->interface, o->interface);
    return -EINVAL;
  }
  struct l4_packet *p = calloc(1, sizeof(*p));
  if (!p) {
    SET_ERR("out of memory");
    return -ENOMEM;
  }
  snprintf(p->interface, sizeof(p->interface), "%s", o->interface);
  inet_ntop(AF_INET, &src, p->tunnel_src, sizeof(p->tunnel_src));
  p->generic = o->generic;
  p->metrics = o->metrics;
  p->nvips = o->nvips;
  struct xdp_lb_opts xo = {.table_size = o->table_size,
                           .conn_table_size = o->conn_table_size,
                           .hash_mode = o->hash_mode,
                           .tunnel_src = src};
  int rc = xdp_lb_open(&xo, &p->lb, err, errlen);
  for (size_t i = 0; rc == 0 && i < o->nvips; i++)
    rc = xdp_lb_add_vip(p->lb, o->vips[i].addr, o->vips[i].port, o->vips[i].proto, (uint32_t)i, err,
                        errlen);
  if (rc == 0) rc = xdp_lb_attach(p->lb, ifindex, o->generic, err, errlen);
  if (rc != 0) {
    l4_packet_stop(p);
    return rc;
  }
  register_counters(p, o->vips, o->nvips);
  *out = p;
  return 0;
}

void l4_packet_stop(struct l4_packet *p) {
  if (!p) return;
  /* the series read through p: gone before p is */
  for (size_t i = 0; p->metrics && i < p->nrefs; i++)
    metrics_remove(p->metrics, p->refs[i].metric, p->refs[i].labels);
  for (size_t i = 0; i < p->nknown; i++) known_forget(p, p->known[i]);
  xdp_lb_close(p->lb);
  free(p->known);
  free(p->refs);
  free(p);
}

const char *l4_packet_describe(const struct l4_packet *p, char *out, size_t len) {
  snprintf(out, len, "interface=%s tunnel_source=%s attach=%s", p->interface, p->tunnel_src,
           p->generic ? "generic" : "native");
  return out;
}

/* ---- applying a snapshot ---------------------------------------------------------- */

static struct known *find_known(struct l4_packet *p, const char *name) {
  for (size_t i = 0; i < p->nknown; i++)
    if (strcmp(p->known[i]->name, name) == 0) return p->known[i];
  return NULL;
}

static uint32_t backend_ipv4(const struct l4_backend *b) {
  if (b->addr.ss_family != AF_INET) return 0;
  return ((const struct sockaddr_in *)&b->addr)->sin_addr.s_addr;
}

/* A new member: the lowest free stats id, zeroed counters, its series. */
static struct known *known_add(struct l4_packet *p, const struct l4_backend *b) {
  uint32_t id = 0;
  while (id < XLB_MAX_REALS && p->used_ids[id]) id++;
  struct known *k = calloc(1, sizeof(*k));
  struct known **grown = realloc(p->known, (p->nknown + 1) * sizeof(*grown));
  if (id == XLB_MAX_REALS || !k || !grown) {
    free(k);
    if (grown) p->known = grown;
    LOG_ERROR("xdp_backend_rejected", "backend=%s reason=%s", log_q(b->name),
              log_q(id == XLB_MAX_REALS ? "too many replicas" : "out of memory"));
    return NULL;
  }
  p->known = grown;
  char esc[512], labels[540];
  snprintf(labels, sizeof(labels), "backend=\"%s\"",
           metrics_escape_label(b->name, esc, sizeof(esc)));
  k->p = p;
  k->name = strdup(b->name);
  k->labels = strdup(labels);
  if (!k->name || !k->labels) {
    free(k->name);
    free(k->labels);
    free(k);
    return NULL;
  }
  k->addr = backend_ipv4(b);
  k->stats_id = id;
  p->used_ids[id] = 1;
  xdp_lb_reset_real_stats(p->lb, id);
  if (p->metrics) {
    metrics_counter_fn(p->metrics, "edge_l4_xdp_backend_packets_total",
                       "Packets the XDP balancer sent to a replica", k->labels, real_packets, k);
    metrics_counter_fn(p->metrics, "edge_l4_xdp_backend_bytes_total",
                       "Bytes (inner IPv4 packets) the XDP balancer sent to a replica", k->labels,
                       real_bytes, k);
  }
  if (!k->addr)
    LOG_WARN("xdp_backend_unusable", "backend=%s address=%s reason=%s", log_q(b->name),
             log_q(b->address), log_q("packet mode tunnels to IPv4 replicas only"));
  p->known[p->nknown++] = k;
  return k;
}

static int addr_in_use(struct l4_packet *p, uint32_t addr) {
  for (size_t i = 0; i < p->nknown; i++)
    if (p->known[i]->addr == addr) return 1;
  return 0;
}

/* Brings the known set to members[0..n): new ones get ids and go live
 * first; the ones that left are forgotten after the new table is out. */
static void sync_members(struct l4_packet *p, struct l4_backend *const *members, size_t n) {
  for (size_t i = 0; i < p->nknown; i++) p->known[i]->seen = 0;
  for (size_t i = 0; i < n; i++) {
    struct known *k = find_known(p, members[i]->name);
    if (k && k->addr != backend_ipv4(members[i])) { /* same name, new address */
      uint32_t old = k->addr;
      k->addr = backend_ipv4(members[i]);
      if (old && !addr_in_use(p, old)) xdp_lb_clear_live(p->lb, old);
    }
    if (!k) k = known_add(p, members[i]);
    if (!k) continue;
    k->seen = 1;
    if (k->addr) xdp_lb_set_live(p->lb, k->addr, k->stats_id);
  }
}

static void forget_departed(struct l4_packet *p) {
  size_t kept = 0;
  for (size_t i = 0; i < p->nknown; i++) {
    struct known *k = p->known[i];
    if (k->seen) {
      p->known[kept++] = k;
      continue;
    }
    p->known[i] = NULL;
    uint32_t addr = k->addr;
    LOG_INFO("xdp_backend_gone", "backend=%s reason=%s", log_q(k->name),
             log_q("left the membership: its pinned flows follow the table again"));
    known_forget(p, k);
    if (addr && !addr_in_use(p, addr)) xdp_lb_clear_live(p->lb, addr);
  }
  p->nknown = kept;
}

void l4_packet_apply(struct l4_packet *p, const struct l4_snapshot *s,
                     struct l4_backend *const *members, size_t n) {
  sync_members(p, members, n);
  const struct maglev_table *t = s ? s->table : NULL;
  uint32_t nreal = t ? t->n : 0;
  struct xlb_real *reals = calloc(nreal ? nreal : 1, sizeof(*reals));
  char err[256] = "";
  int rc = reals ? 0 : -ENOMEM;
  for (uint32_t c = 0; rc == 0 && c < nreal; c++) {
    const struct l4_backend *b = s->backends[t->input_index[c]];
    const struct known *k = find_known(p, b->name);
    reals[c] = k ? (struct xlb_real){k->addr, k->stats_id} : (struct xlb_real){0, 0};
  }
  if (rc == 0)
    rc = xdp_lb_push_table(p->lb, nreal ? t->slots : NULL, nreal ? t->m : 0, reals, nreal, err,
                           sizeof(err));
  free(reals);
  if (rc != 0) {
    LOG_ERROR("xdp_table_push_failed", "reason=%s", log_q(err[0] ? err : "out of memory"));
  } else {
    LOG_INFO("xdp_table_pushed", "backends=%u members=%zu", nreal, n);
  }
  forget_departed(p);
}

/* ---- admin helpers ---------------------------------------------------------------- */

int l4_packet_conn_lookup(struct l4_packet *p, const struct maglev_flow *f, char *name,
                          size_t len) {
  if (f->family != 4) return 0;
  struct xlb_flow k;
  memset(&k, 0, sizeof(k));
  memcpy(&k.src, f->src, 4);
  memcpy(&k.dst, f->dst, 4);
  k.sport = htons(f->src_port);
  k.dport = htons(f->dst_port);
  k.proto = f->protocol;
  uint32_t addr;
  if (xdp_lb_conn_get(p->lb, &k, &addr) != 0) return 0;
  for (size_t i = 0; i < p->nknown; i++)
    if (p->known[i]->addr == addr) {
      snprintf(name, len, "%s", p->known[i]->name);
      return 1;
    }
  inet_ntop(AF_INET, &addr, name, (socklen_t)len);
  return 0; /* an entry for a replica that left is not valid */
}

uint64_t l4_packet_idle_ms(struct l4_packet *p, uint64_t now_ms) {
  uint64_t total = 0;
  for (size_t i = 0; i < p->nvips; i++) {
    struct xlb_stats st = {0, 0};
    xdp_lb_vip_stats(p->lb, (uint32_t)i, &st);
    total += st.packets;
  }
  if (p->last_change_ms == 0 || total != p->last_vip_packets) {
    p->last_vip_packets = total;
    p->last_change_ms = now_ms;
  }
  return now_ms - p->last_change_ms;
}
