/*
 * xdp_lb — loading, attaching and feeding the XDP balancer. See xdp_lb.h.
 *
 * The object file is embedded (balancer.skel.h from `bpftool gen
 * skeleton`), so the l4lb binary needs no file at run time. Map sizes that
 * depend on flags (the table halves, the connection table) are set between
 * open and load.
 */
#include "l4lb/xdp_lb.h"

#include <errno.h>
#include <linux/if_link.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "common/log.h"
#include "l4lb/bpf/balancer.skel.h"
#include "l4lb/maglev.h"

#define PROG_NAME "xdp_balancer"

struct xdp_lb {
  struct balancer *skel;
  uint32_t m;
  int ncpus;
  int ifindex; /* 0 while not attached */
  uint32_t attach_flags;
  struct xlb_config cfg; /* what the config map holds */
};

#define SET_ERR(...)                                       \
  do {                                                     \
    if (err && errlen) snprintf(err, errlen, __VA_ARGS__); \
  } while (0)

/* libbpf's messages (the verifier log on a failed load) become log lines. */
static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap) {
  if (level == LIBBPF_DEBUG) return 0;
  char line[512];
  vsnprintf(line, sizeof(line), fmt, ap);
  size_t n = strlen(line);
  while (n && (line[n - 1] == '\n' || line[n - 1] == ' ')) line[--n] = '\0';
  if (n) LOG_WARN("libbpf", "msg=%s", log_q(line));
  return 0;
}

static int fd_of(const struct bpf_map *m) {
  return bpf_map__fd(m);
}

static int write_config(struct xdp_lb *x) {
  uint32_t zero = 0;
  return bpf_map_update_elem(fd_of(x->skel->maps.config), &zero, &x->cfg, BPF_ANY) ? -errno : 0;
}

int xdp_lb_open(const struct xdp_lb_opts *o, struct xdp_lb **out, char *err, size_t errlen) {
  *out = NULL;
  if (!maglev_is_prime(o->table_size) || o->table_size > MAGLEV_MAX_M) {
    SET_ERR("table size %u is not a prime up to %u", o->table_size, MAGLEV_MAX_M);
    return -EINVAL;
  }
  if (o->conn_table_size == 0) {
    SET_ERR("connection table size must be > 0");
    return -EINVAL;
  }
  libbpf_set_print(libbpf_log);
  struct xdp_lb *x = calloc(1, sizeof(*x));
  if (!x) {
    SET_ERR("out of memory");
    return -ENOMEM;
  }
  x->m = o->table_size;
  x->ncpus = libbpf_num_possible_cpus();
  if (x->ncpus <= 0) {
    SET_ERR("cannot count possible CPUs");
    free(x);
    return -EINVAL;
  }
  x->skel = balancer__open();
  if (!x->skel) {
    int e = errno ? errno : EINVAL;
    SET_ERR("cannot open the XDP object: %s", strerror(e));
    free(x);
    return -e;
  }
  int rc = bpf_map__set_max_entries(x->skel->maps.maglev, 2 * o->table_size);
  if (rc == 0) rc = bpf_map__set_max_entries(x->skel->maps.conn, o->conn_table_size);
  if (rc == 0) rc = balancer__load(x->skel);
  if (rc != 0) {
    SET_ERR("cannot load the XDP program: %s%s", strerror(-rc),
            rc == -EPERM ? " (bpf(2) needs root or CAP_BPF+CAP_NET_ADMIN)" : "");
    balancer__destroy(x->skel);
    free(x);
    return rc;
  }
  x->cfg.hash_k0 = MAGLEV_FLOW_K0;
  x->cfg.hash_k1 = MAGLEV_FLOW_K1;
  x->cfg.table_size = o->table_size;
  x->cfg.hash_mode = o->hash_mode == MAGLEV_HASH_SRC ? XLB_HASH_SRC : XLB_HASH_5TUPLE;
  x->cfg.tunnel_src = o->tunnel_src;
  if ((rc = write_config(x)) != 0) {
    SET_ERR("cannot write the config map: %s", strerror(-rc));
    xdp_lb_close(x);
    return rc;
  }
  *out = x;
  return 0;
}

void xdp_lb_close(struct xdp_lb *x) {
  if (!x) return;
  xdp_lb_detach(x);
  balancer__destroy(x->skel);
  free(x);
}

int xdp_lb_prog_fd(const struct xdp_lb *x) {
  return bpf_program__fd(x->skel->progs.xdp_balancer);
}

/* The name of the program attached to ifindex ("" when none). */
static int attached_name(int ifindex, uint32_t flags, char *name, size_t len, uint32_t *id) {
  *id = 0;
  name[0] = '\0';
  int rc = bpf_xdp_query_id(ifindex, (int)flags, id);
  if (rc != 0 || *id == 0) return rc;
  int fd = bpf_prog_get_fd_by_id(*id);
  if (fd < 0) return -errno;
  struct bpf_prog_info info;
  uint32_t ilen = sizeof(info);
  memset(&info, 0, sizeof(info));
  rc = bpf_obj_get_info_by_fd(fd, &info, &ilen);
  close(fd);
  if (rc != 0) return -errno;
  snprintf(name, len, "%s", info.name);
  return 0;
}

int xdp_lb_attach(struct xdp_lb *x, int ifindex, int generic, char *err, size_t errlen) {
  uint32_t mode = generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
  char name[64];
  uint32_t id;
  int rc = attached_name(ifindex, mode, name, sizeof(name), &id);
  if (rc != 0) {
    SET_ERR("cannot query the interface's XDP program: %s", strerror(-rc));
    return rc;
  }
  if (id != 0 && strcmp(name, PROG_NAME) != 0) {
    SET_ERR(
        "interface already runs XDP program %u (%s), not an l4lb balancer: refusing to "
        "replace it",
        id, name);
    return -EBUSY;
  }
  if (id != 0)
    LOG_INFO("xdp_replacing", "prog_id=%u reason=%s", id, log_q("left by an earlier l4lb"));
  rc = bpf_xdp_attach(ifindex, xdp_lb_prog_fd(x), mode, NULL);
  if (rc != 0) {
    SET_ERR("cannot attach XDP in %s mode: %s", generic ? "generic" : "native", strerror(-rc));
    return rc;
  }
  x->ifindex = ifindex;
  x->attach_flags = mode;
  return 0;
}

int xdp_lb_detach(struct xdp_lb *x) {
  if (!x || !x->ifindex) return 0;
  LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = xdp_lb_prog_fd(x));
  int rc = bpf_xdp_detach(x->ifindex, x->attach_flags | XDP_FLAGS_REPLACE, &opts);
  x->ifindex = 0;
  return rc;
}

int xdp_lb_add_vip(struct xdp_lb *x, uint32_t addr, uint16_t port, uint8_t proto, uint32_t index,
                   char *err, size_t errlen) {
  if (index >= XLB_MAX_VIPS || (proto != IPPROTO_TCP && proto != IPPROTO_UDP)) {
    SET_ERR("VIP index %u or protocol %u out of range", index, proto);
    return -EINVAL;
  }
  struct xlb_vip_key k = {.addr = addr, .port = htons(port), .proto = proto, .pad = 0};
  struct xlb_vip v = {.index = index, .flags = 0};
  uint32_t one = 1;
  if (bpf_map_update_elem(fd_of(x->skel->maps.vips), &k, &v, BPF_ANY) != 0 ||
      bpf_map_update_elem(fd_of(x->skel->maps.vip_addrs), &addr, &one, BPF_ANY) != 0) {
    int e = errno;
    SET_ERR("cannot add the VIP: %s", strerror(e));
    return -e;
  }
  return 0;
}

/* Writes values[i] at keys first+i of an array map: one batch call when
 * the kernel has them, else element by element. */
static int write_array(int fd, uint32_t first, const void *values, size_t value_size,
                       uint32_t count) {
  if (count == 0) return 0;
  uint32_t *keys = malloc((size_t)count * sizeof(*keys));
  if (!keys) return -ENOMEM;
  for (uint32_t i = 0; i < count; i++) keys[i] = first + i;
  uint32_t n = count;
  int rc = bpf_map_update_batch(fd, keys, values, &n, NULL);
  if (rc != 0) {
    rc = 0;
    for (uint32_t i = 0; i < count && rc == 0; i++)
      if (bpf_map_update_elem(fd, &keys[i], (const char *)values + (size_t)i * value_size,
                              BPF_ANY) != 0)
        rc = -errno;
  }
  free(keys);
  return rc;
}

int xdp_lb_push_table(struct xdp_lb *x, const uint32_t *slots, uint32_t m,
                      const struct xlb_real *reals, uint32_t n, char *err, size_t errlen) {
  if ((n > 0 && m != x->m) || n > XLB_MAX_REALS) {
    SET_ERR("table of %u slots and %u replicas does not fit (size %u, at most %u replicas)", m, n,
            x->m, XLB_MAX_REALS);
    return -EINVAL;
  }
  uint32_t half = (x->cfg.active & 1) ^ 1;
  int rc =
      write_array(fd_of(x->skel->maps.table_reals), half * XLB_MAX_REALS, reals, sizeof(*reals), n);
  if (rc == 0 && n > 0)
    rc = write_array(fd_of(x->skel->maps.maglev), half * m, slots, sizeof(*slots), m);
  if (rc != 0) {
    SET_ERR("cannot write the table maps: %s", strerror(-rc));
    return rc;
  }
  /* two writes, so a packet never sees the new half with the old count */
  x->cfg.nreals[half] = n;
  if ((rc = write_config(x)) == 0) {
    x->cfg.active = half;
    rc = write_config(x);
  }
  if (rc != 0) SET_ERR("cannot write the config map: %s", strerror(-rc));
  return rc;
}

int xdp_lb_set_live(struct xdp_lb *x, uint32_t addr, uint32_t stats_id) {
  if (stats_id >= XLB_MAX_REALS) return -EINVAL;
  return bpf_map_update_elem(fd_of(x->skel->maps.live_reals), &addr, &stats_id, BPF_ANY) ? -errno
                                                                                         : 0;
}

int xdp_lb_clear_live(struct xdp_lb *x, uint32_t addr) {
  if (bpf_map_delete_elem(fd_of(x->skel->maps.live_reals), &addr) != 0 && errno != ENOENT)
    return -errno;
  return 0;
}

static int read_stats(const struct xdp_lb *x, const struct bpf_map *map, uint32_t idx,
                      struct xlb_stats *out) {
  struct xlb_stats *per = calloc((size_t)x->ncpus, sizeof(*per));
  if (!per) return -ENOMEM;
  memset(out, 0, sizeof(*out));
  int rc = bpf_map_lookup_elem(fd_of(map), &idx, per) ? -errno : 0;
  for (int c = 0; rc == 0 && c < x->ncpus; c++) {
    out->packets += per[c].packets;
    out->bytes += per[c].bytes;
  }
  free(per);
  return rc;
}

int xdp_lb_vip_stats(const struct xdp_lb *x, uint32_t index, struct xlb_stats *out) {
  return read_stats(x, x->skel->maps.vip_stats, index, out);
}

int xdp_lb_real_stats(const struct xdp_lb *x, uint32_t stats_id, struct xlb_stats *out) {
  return read_stats(x, x->skel->maps.real_stats, stats_id, out);
}

int xdp_lb_reset_real_stats(struct xdp_lb *x, uint32_t stats_id) {
  struct xlb_stats *per = calloc((size_t)x->ncpus, sizeof(*per));
  if (!per) return -ENOMEM;
  int rc =
      bpf_map_update_elem(fd_of(x->skel->maps.real_stats), &stats_id, per, BPF_ANY) ? -errno : 0;
  free(per);
  return rc;
}

uint64_t xdp_lb_event(const struct xdp_lb *x, enum xlb_event ev) {
  uint64_t per[256];
  uint64_t *buf = x->ncpus <= 256 ? per : calloc((size_t)x->ncpus, sizeof(*buf));
  uint32_t key = (uint32_t)ev;
  uint64_t sum = 0;
  if (buf && bpf_map_lookup_elem(fd_of(x->skel->maps.events), &key, buf) == 0)
    for (int c = 0; c < x->ncpus; c++) sum += buf[c];
  if (buf != per) free(buf);
  return sum;
}

const char *xdp_lb_event_name(enum xlb_event ev) {
  static const char *const names[XLB_EV_MAX] = {
      [XLB_EV_PASSED] = "passed",
      [XLB_EV_CONN_HIT] = "conn_table_hit",
      [XLB_EV_CONN_NEW] = "conn_table_new",
      [XLB_EV_ICMP_TOO_BIG] = "icmp_too_big_sent",
      [XLB_EV_ICMP_FORWARDED] = "icmp_forwarded",
      [XLB_EV_ICMP_ECHO] = "icmp_echo_answered",
      [XLB_EV_DROP_FRAGMENT] = "fragment",
      [XLB_EV_DROP_MALFORMED] = "malformed",
      [XLB_EV_DROP_NOT_SERVED] = "not_served",
      [XLB_EV_DROP_NO_BACKEND] = "no_backend",
      [XLB_EV_DROP_TOO_BIG] = "too_big",
      [XLB_EV_DROP_NO_ROUTE] = "no_route",
      [XLB_EV_DROP_ENCAP] = "encap_failed",
  };
  return (unsigned)ev < XLB_EV_MAX && names[ev] ? names[ev] : "unknown";
}

int xdp_lb_conn_get(const struct xdp_lb *x, const struct xlb_flow *f, uint32_t *addr) {
  if (bpf_map_lookup_elem(fd_of(x->skel->maps.conn), f, addr) == 0) return 0;
  return errno == ENOENT ? 1 : -errno;
}

int xdp_lb_conn_put(struct xdp_lb *x, const struct xlb_flow *f, uint32_t addr) {
  return bpf_map_update_elem(fd_of(x->skel->maps.conn), f, &addr, BPF_ANY) ? -errno : 0;
}
