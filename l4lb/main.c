/*
 * l4lb — the L4 load balancer daemon: flags, wiring and the main loop.
 *
 * Threads: the main thread runs one libuv loop with the admin endpoint,
 * the health checkers, the syncd watch (through common/rpc) and signals;
 * --workers threads run forward.c's data path. The main thread owns the
 * replica list (members.c: sets, health decisions, the panic-threshold
 * hold-back); whenever the eligible set (healthy and not draining) changes
 * it builds a new snapshot (Maglev table) and publishes it, and workers
 * pick it up on their next accept. Workers report connect failures
 * through an atomic counter per backend and a uv_async wake-up; the main
 * thread feeds them to the rise/fall state machine as failed checks.
 *
 * Readiness (/readyz, what keepalived's check asks): a table with at least
 * one backend, and room for more connections — --max-connections open, a
 * descriptor reserve (fd_reserve) nearly used up, or an accept/socket that
 * failed with EMFILE/ENFILE in the last FD_RECOVER_MS answers 503 so the
 * VIP moves to an instance that can still accept (checked every
 * FD_CHECK_MS on the main loop). At start the soft RLIMIT_NOFILE is raised
 * to the hard limit and --max-connections defaults to what the rest
 * allows at two descriptors per connection, so workers pause accepting
 * before the admin endpoint and health checks run out of descriptors.
 *
 * --mode=xdp (packet_mode.c) replaces the workers with an XDP program on
 * --interface: every snapshot is also pushed into its maps, and there are
 * no listeners; health, membership and admin are the same.
 *
 * SIGTERM/SIGINT: stop accepting, /readyz answers 503, wait for open
 * connections to finish up to --drain-timeout (packet mode: until no VIP
 * packet arrived for a second, as the route is withdrawn), then close
 * everything and exit 0.
 */
#include <dirent.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "common/addr.h"
#include "common/admin.h"
#include "common/flags.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/rpc.h"
#include "common/statedir.h"
#include "common/targets.h"
#include "l4lb/backend.h"
#include "l4lb/checker.h"
#include "l4lb/forward.h"
#include "l4lb/maglev.h"
#include "l4lb/members.h"
#include "l4lb/membership.h"
#include "l4lb/packet_mode.h"
#include "l4lb/syncds.h"

#define L4LB_VERSION "0.1.0"
#define DRAIN_POLL_MS 100
#define FD_CHECK_MS 500
#define FD_RECOVER_MS 2000
#define FD_RESERVE_MIN 32 /* and 2 % of the limit, whichever is more */
#define XDP_DRAIN_QUIET_MS 1000

struct l4lb {
  uv_loop_t *loop;
  /* settings */
  struct flag_list listen, backend, vip;
  const char *mode, *interface, *xdp_attach;
  long conn_table_size;
  const char *syncd, *cert, *key, *ca, *node_id, *hash, *admin_addr, *log_level, *cache_dir;
  int insecure, insecure_remote, proxy_protocol, splice;
  long workers, table_size, rise, fall, panic_threshold;
  uint32_t connect_timeout_ms, check_interval_ms, check_timeout_ms, drain_timeout_ms;
  uint32_t reconnect_max_ms, syncd_view_timeout_ms;
  uint32_t idle_timeout_ms;
  long max_connections;
  enum maglev_hash_mode hash_mode;

  /* runtime */
  struct metrics_registry *metrics;
  struct admin_server *admin;
  struct l4_forwarder *fwd;
  struct l4_packet *packet; /* --mode=xdp */
  struct l4_packet_vip *vips;
  struct rpc_runtime *rpc;
  struct l4_syncds *syncds; /* one Membership.Watch per syncd replica */
  char **bound;             /* actual listen addresses */
  int *bound_https;         /* per listener: 1 forwards to the replicas' https_address */
  size_t nbound;
  struct l4_members *members;
  uint64_t members_version;
  uv_async_t failures_wake;
  uv_signal_t sigterm, sigint;
  uv_timer_t drain_timer;
  uv_timer_t fd_timer;
  int has_backends; /* the published table has at least one backend */
  int fds_short;    /* out of file descriptors, or nearly */
  uint64_t drain_deadline;
  int draining;
  int closing_pending;
};

static struct l4lb g;

/* ---- readiness ------------------------------------------------------------- */

static uint64_t fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 1u << 20;
  return (uint64_t)rl.rlim_cur;
}

/* Open descriptors of this process (/proc/self/fd), or 0 when unknown. */
static uint64_t fd_count(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return 0;
  uint64_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) n += e->d_name[0] != '.';
  closedir(d);
  return n > 0 ? n - 1 : 0; /* the directory's own descriptor */
}

static double gauge_open_fds(void *arg) {
  return (double)fd_count();
}

static double gauge_fd_limit(void *arg) {
  return (double)fd_limit();
}

static void update_ready(void) {
  if (g.admin) admin_set_ready(g.admin, g.has_backends && !g.fds_short);
}

static uint64_t fd_reserve(uint64_t limit) {
  return limit / 50 > FD_RESERVE_MIN ? limit / 50 : FD_RESERVE_MIN;
}

/* Raises the soft descriptor limit to the hard one (what nginx's
 * worker_rlimit_nofile and HAProxy do); returns the limit in force. */
static uint64_t raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) LOG_WARN("rlimit_nofile", "reason=%s", "setrlimit");
  }
  return fd_limit();
}

/* Out of descriptors now, recently failed for lack of them, or at
 * --max-connections. Counting /proc/self/fd costs a directory walk: skip
 * it while the connection count says the limit is far. */
static int fds_short_now(uint64_t *open, uint64_t *limit) {
  *limit = fd_limit();
  uint64_t reserve = fd_reserve(*limit);
  uint64_t at = l4_forward_fd_exhausted_at();
  uint64_t now = uv_hrtime() / 1000000;
  *open = 0;
  if (at && now - at < FD_RECOVER_MS) return 1;
  if (g.max_connections > 0 && l4_forward_active() >= (uint64_t)g.max_connections) return 1;
  uint64_t estimate = 2 * l4_forward_active() + 64;
  if (estimate + 4 * reserve < *limit) return 0;
  *open = fd_count();
  return *open + reserve >= *limit;
}

static void on_fd_timer(uv_timer_t *t) {
  uint64_t open, limit;
  int s = fds_short_now(&open, &limit);
  if (s == g.fds_short) return;
  g.fds_short = s;
  if (s)
    LOG_WARN("not_ready", "reason=%s open_fds=%llu limit=%llu active=%llu",
             log_q("out of file descriptors or at --max-connections"), (unsigned long long)open,
             (unsigned long long)limit, (unsigned long long)l4_forward_active());
  else
    LOG_INFO("fds_recovered", "limit=%llu active=%llu", (unsigned long long)limit,
             (unsigned long long)l4_forward_active());
  update_ready();
}

/* ---- members, health ---------------------------------------------------------- */

/* Every snapshot also goes to the XDP program in packet mode, with the
 * whole membership (before workers can pick the snapshot up). */
static void on_snapshot(void *ud, const struct l4_snapshot *s) {
  if (!g.packet) return;
  size_t n = l4_members_count(g.members);
  struct l4_backend **all = calloc(n ? n : 1, sizeof(*all));
  if (!all) {
    LOG_ERROR("packet_apply_failed", "reason=%s", log_q("out of memory"));
    return;
  }
  for (size_t i = 0; i < n; i++) all[i] = l4_members_at(g.members, i);
  l4_packet_apply(g.packet, s, all, n);
  free(all);
}

static void on_check_result(void *ud, struct l4_backend *b, int ok, const char *why) {
  l4_members_check_result(g.members, b, ok, why);
}

static void start_checker(void *ud, struct l4_backend *b) {
  struct l4_checker_config cc = {g.check_interval_ms, g.check_timeout_ms};
  l4_checker_start(g.loop, b, &cc, on_check_result, NULL);
}

static void stop_checker(void *ud, struct l4_backend *b) {
  l4_checker_stop(b);
}

static void on_published(void *ud, size_t eligible) {
  g.has_backends = eligible > 0;
  update_ready();
}

/* Worker threads call this after bumping b->connect_failures. */
static void notify_connect_failure(void *ud, struct l4_backend *b) {
  uv_async_send(&g.failures_wake);
}

static void on_failures_wake(uv_async_t *a) {
  l4_members_poll_failures(g.members);
}

/* The union of the syncd replicas' sets changed (l4lb/syncds.c). */
static void on_membership(void *ud, const struct l4_member *m, size_t n, uint64_t version) {
  g.members_version = version;
  l4_members_apply(g.members, m, n, 1, "membership update");
  if (!g.cache_dir) return;
  uint8_t *buf;
  size_t len;
  char err[256];
  if (l4_member_encode_set(m, n, version, &buf, &len) != 0) return;
  if (l4_member_cache_save(g.cache_dir, buf, len, err, sizeof(err)) != 0)
    LOG_WARN("membership_cache_failed", "reason=%s", log_q(err));
  free(buf);
}

/* /config: what each syncd replica said, and the merge state. */
static json_t *syncd_views_json(void) {
  json_t *arr = json_array();
  const struct l4_union *u = l4_syncds_union(g.syncds);
  for (size_t i = 0; u && i < l4_union_views(u); i++) {
    const struct l4_union_view *v = l4_union_view_at(u, i);
    json_t *names = json_array();
    for (size_t k = 0; k < v->n; k++) json_array_append_new(names, json_string(v->m[k].name));
    json_array_append_new(arr, json_pack("{s:s, s:s, s:b, s:b, s:I, s:o}", "syncd", v->src,
                                         "replica", v->replica, "up", v->up, "synced", v->synced,
                                         "version", (json_int_t)v->version, "replicas", names));
  }
  return arr;
}

/* Starts from the set saved by the last run (until syncd answers, which
 * replaces it). A missing or bad cache only costs the head start. */
static void load_cache(void) {
  struct l4_member *m;
  size_t n;
  uint64_t version;
  char err[512];
  int rc = l4_member_cache_load(g.cache_dir, &m, &n, &version, err, sizeof(err));
  if (rc == 1) {
    LOG_INFO("membership_cache_empty", "dir=%s", log_q(g.cache_dir));
    return;
  }
  if (rc != 0) {
    LOG_WARN("membership_cache_ignored", "reason=%s", log_q(err));
    return;
  }
  LOG_INFO("membership_cache_loaded", "dir=%s version=%llu replicas=%zu", log_q(g.cache_dir),
           (unsigned long long)version, n);
  g.members_version = version;
  l4_members_apply(g.members, m, n, 0, "cache");
  free(m);
}

/* ---- admin -------------------------------------------------------------------- */

static void reply_json(struct admin_response *resp, int status, json_t *j) {
  char *text = json_dumps(j, JSON_INDENT(2));
  json_decref(j);
  size_t len = text ? strlen(text) : 0;
  resp->status = status;
  resp->content_type = "application/json";
  resp->body = malloc(len + 2);
  if (!resp->body) {
    free(text);
    admin_reply(resp, 500, NULL, "out of memory\n");
    return;
  }
  memcpy(resp->body, text ? text : "", len);
  resp->body[len] = '\n';
  resp->body[len + 1] = '\0';
  resp->body_len = len + 1;
  free(text);
}

static const char *hash_name(void) {
  return g.hash_mode == MAGLEV_HASH_SRC ? "src" : "5tuple";
}

static void handle_config(void *ud, const char *path, const char *query,
                          struct admin_response *resp) {
  struct l4_snapshot *s = l4_snapshot_acquire();
  json_t *root = json_object();
  json_object_set_new(root, "version", json_string(L4LB_VERSION));
  json_object_set_new(root, "hash", json_string(hash_name()));
  json_object_set_new(root, "mode", json_string(g.mode));
  if (g.packet) {
    json_t *vs = json_array();
    for (int i = 0; i < g.vip.count; i++) json_array_append_new(vs, json_string(g.vip.values[i]));
    json_object_set_new(root, "vips", vs);
    json_object_set_new(root, "interface", json_string(g.interface));
    json_object_set_new(root, "conn_table_size", json_integer(g.conn_table_size));
  }
  json_object_set_new(root, "table_size", json_integer(g.table_size));
  json_object_set_new(root, "proxy_protocol", json_boolean(g.proxy_protocol));
  json_object_set_new(root, "splice", json_boolean(g.splice));
  json_object_set_new(root, "workers", json_integer(g.workers));
  json_object_set_new(root, "membership", json_string(g.syncd ? "syncd" : "static"));
  json_object_set_new(root, "membership_version", json_integer((json_int_t)g.members_version));
  if (g.syncds) json_object_set_new(root, "syncd_views", syncd_views_json());
  json_object_set_new(root, "draining", json_boolean(g.draining));
  json_object_set_new(root, "table_generation", json_integer(s ? (json_int_t)s->generation : 0));
  json_object_set_new(root, "table_backends", json_integer(s ? (json_int_t)s->n : 0));
  json_object_set_new(root, "panic_threshold", json_integer(g.panic_threshold));
  json_object_set_new(root, "held_backends", json_integer((json_int_t)l4_members_held(g.members)));
  json_t *ls = json_array();
  for (size_t i = 0; i < g.nbound; i++) json_array_append_new(ls, json_string(g.bound[i]));
  json_object_set_new(root, "listeners", ls);
  json_t *lb = json_object();
  for (size_t i = 0; i < g.nbound; i++)
    json_object_set_new(lb, g.bound[i], json_string(g.bound_https[i] ? "https" : "http"));
  json_object_set_new(root, "listener_backends", lb);
  json_t *arr = json_array();
  for (size_t i = 0; i < l4_members_count(g.members); i++) {
    struct l4_backend *b = l4_members_at(g.members, i);
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(b->name));
    json_object_set_new(o, "address", json_string(b->address));
    json_object_set_new(o, "https_address",
                        b->https_address ? json_string(b->https_address) : json_null());
    json_object_set_new(o, "check", b->check_address ? json_string(b->check_address) : json_null());
    json_object_set_new(o, "weight", json_integer(b->weight));
    json_object_set_new(o, "healthy", json_boolean(b->health.up));
    json_object_set_new(o, "draining", json_boolean(b->draining));
    json_object_set_new(o, "held", json_boolean(l4_members_is_held(g.members, b)));
    uint32_t slots = 0;
    int in_table = 0;
    for (size_t j = 0; s && j < s->n; j++) {
      if (s->backends[j] != b) continue;
      in_table = 1;
      for (uint32_t c = 0; c < s->table->n; c++)
        if (s->table->input_index[c] == j) slots = s->table->owned[c];
    }
    json_object_set_new(o, "in_table", json_boolean(in_table));
    json_object_set_new(o, "slots", json_integer(slots));
    json_object_set_new(o, "active_connections",
                        json_integer(b->m_conns ? (json_int_t)metrics_gauge_value(b->m_conns) : 0));
    json_object_set_new(o, "connect_failures",
                        json_integer((json_int_t)atomic_load(&b->connect_failures)));
    json_array_append_new(arr, o);
  }
  json_object_set_new(root, "backends", arr);
  l4_snapshot_unref(s);
  reply_json(resp, 200, root);
}

static void handle_lookup(void *ud, const char *path, const char *query,
                          struct admin_response *resp) {
  char src[128], dst[128];
  struct sockaddr_storage ss, ds;
  socklen_t sl, dl;
  struct maglev_flow flow;
  if (admin_query_get(query, "src", src, sizeof(src)) != 0 ||
      admin_query_get(query, "dst", dst, sizeof(dst)) != 0 || addr_parse(src, &ss, &sl) != 0 ||
      addr_parse(dst, &ds, &dl) != 0 || l4_flow_from_addrs(&ss, &ds, &flow) != 0) {
    admin_reply(resp, 400, NULL,
                "usage: /lookup?src=IP:PORT&dst=IP:PORT (numeric, same address family)\n");
    return;
  }
  struct l4_snapshot *s = l4_snapshot_acquire();
  uint32_t slot = 0;
  int idx = l4_snapshot_pick(s, &flow, g.hash_mode, &slot);
  json_t *o = json_object();
  int status = 200;
  if (idx < 0) {
    status = 503;
    json_object_set_new(o, "error", json_string("no healthy backend"));
  } else {
    json_object_set_new(o, "backend", json_string(s->backends[idx]->name));
    json_object_set_new(o, "address", json_string(s->backends[idx]->address));
    json_object_set_new(o, "slot", json_integer(slot));
  }
  char pinned[160];
  if (g.packet && l4_packet_conn_lookup(g.packet, &flow, pinned, sizeof(pinned)) == 1)
    json_object_set_new(o, "connection_table", json_string(pinned));
  json_object_set_new(o, "mode", json_string(g.mode));
  json_object_set_new(o, "hash", json_string(hash_name()));
  l4_snapshot_unref(s);
  reply_json(resp, status, o);
}

/* ---- shutdown ------------------------------------------------------------------ */

static void on_closed_step(void *arg) {
  g.closing_pending--;
}

static void on_handle_closed(uv_handle_t *h) {
  g.closing_pending--;
}

static void shutdown_all(void) {
  LOG_INFO("stopping", "active=%llu", (unsigned long long)l4_forward_active());
  l4_forward_shutdown(g.fwd);
  g.fwd = NULL;
  l4_packet_stop(g.packet); /* detaches the XDP program */
  g.packet = NULL;
  l4_members_free(g.members);
  g.members = NULL;
  l4_snapshot_clear();
  if (g.syncds) {
    g.closing_pending++;
    l4_syncds_stop(g.syncds, on_closed_step, NULL);
    g.syncds = NULL;
  }
  if (g.admin) {
    g.closing_pending++;
    admin_close(g.admin, on_closed_step, NULL);
    g.admin = NULL;
  }
  g.closing_pending += 5;
  uv_close((uv_handle_t *)&g.fd_timer, on_handle_closed);
  uv_close((uv_handle_t *)&g.failures_wake, on_handle_closed);
  uv_close((uv_handle_t *)&g.sigterm, on_handle_closed);
  uv_close((uv_handle_t *)&g.sigint, on_handle_closed);
  uv_close((uv_handle_t *)&g.drain_timer, on_handle_closed);
}

static void on_drain_tick(uv_timer_t *t) {
  uint64_t active = l4_forward_active();
  if (g.packet) active = l4_packet_idle_ms(g.packet, uv_now(g.loop)) < XDP_DRAIN_QUIET_MS;
  if (active > 0 && uv_now(g.loop) < g.drain_deadline) return;
  if (active > 0)
    LOG_WARN("drain_timeout", "closing=%llu", (unsigned long long)active);
  else
    LOG_INFO("drained", "%s", "");
  uv_timer_stop(t);
  shutdown_all();
}

static void on_signal(uv_signal_t *s, int signum) {
  if (g.draining) return;
  g.draining = 1;
  LOG_INFO("draining", "signal=%d active=%llu timeout_ms=%u", signum,
           (unsigned long long)l4_forward_active(), g.drain_timeout_ms);
  if (g.admin) admin_set_draining(g.admin, 1);
  if (g.fwd) l4_forward_stop_accepting(g.fwd);
  if (g.packet) l4_packet_idle_ms(g.packet, uv_now(g.loop));
  g.drain_deadline = uv_now(g.loop) + g.drain_timeout_ms;
  uv_timer_start(&g.drain_timer, on_drain_tick, 0, DRAIN_POLL_MS);
}

/* ---- startup -------------------------------------------------------------------- */

/* Startup failed once threads, sockets or the loop exist: one line, then
 * leave at once; there is no accepted state to protect yet and the kernel
 * reclaims the rest. */
static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("l4lb: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  _exit(1);
}

/* Splits one --listen value "ADDR:PORT[,backend=http|https]" into the
 * address and the backend kind. 0 or -1 with a reason. */
static int parse_listen(const char *spec, char *addr, size_t addrlen, int *https, char *err,
                        size_t errlen) {
  const char *comma = strchr(spec, ',');
  size_t n = comma ? (size_t)(comma - spec) : strlen(spec);
  *https = 0;
  if (n >= addrlen) {
    snprintf(err, errlen, "--listen=%s: value too long", spec);
    return -1;
  }
  memcpy(addr, spec, n);
  addr[n] = '\0';
  if (!comma) return 0;
  if (strcmp(comma + 1, "backend=https") == 0) {
    *https = 1;
  } else if (strcmp(comma + 1, "backend=http") != 0) {
    snprintf(err, errlen, "--listen=%s: expected ADDR:PORT[,backend=http|https]", spec);
    return -1;
  }
  return 0;
}

static const char *const synopsis =
    "(--listen=ADDR:PORT[,backend=http|https]... | --mode=xdp --interface=IF "
    "--vip=ADDR:PORT[/tcp|/udp]...) "
    "(--backend=ADDR:PORT[,https=ADDR:PORT][,check=ADDR:PORT][,weight=N][,drain]... | "
    "--syncd=ADDR:PORT) [flags]";
static const char *const description =
    "L4 load balancer: spreads TCP connections over L7 replicas with Maglev consistent "
    "hashing,\nwrites a PROXY protocol v2 header, health-checks replicas (GET /readyz).\n"
    "--mode=xdp forwards VIP packets instead: an XDP program encapsulates them (IPv4-in-IPv4)\n"
    "to the replica chosen by the same table, which answers clients directly.";

/* --mode=xdp: validates its flags and starts the XDP balancer (before the
 * first table, which it receives through on_snapshot). Exits on bad flags. */
static void start_packet_mode(void) {
  char err[512];
  if (g.listen.count || !g.interface || g.vip.count == 0) {
    fprintf(stderr, "l4lb: --mode=xdp needs --interface=IF and --vip=ADDR:PORT, no --listen\n");
    exit(2);
  }
  if (!strcmp(g.xdp_attach, "native") == !strcmp(g.xdp_attach, "generic")) {
    fprintf(stderr, "l4lb: --xdp-attach: expected native or generic: %s\n", g.xdp_attach);
    exit(2);
  }
  g.vips = calloc((size_t)g.vip.count, sizeof(*g.vips));
  for (int i = 0; i < g.vip.count; i++) {
    if (l4_packet_parse_vip(g.vip.values[i], &g.vips[i], err, sizeof(err)) != 0) {
      fprintf(stderr, "l4lb: %s\n", err);
      exit(2);
    }
  }
  struct l4_packet_opts po = {
      .interface = g.interface,
      .vips = g.vips,
      .nvips = (size_t)g.vip.count,
      .table_size = (uint32_t)g.table_size,
      .conn_table_size = (uint32_t)g.conn_table_size,
      .hash_mode = g.hash_mode,
      .generic = strcmp(g.xdp_attach, "generic") == 0,
      .metrics = g.metrics,
  };
  if (l4_packet_start(&po, &g.packet, err, sizeof(err)) != 0) die("--mode=xdp: %s", err);
  char desc[256];
  LOG_INFO("xdp_attached", "%s vips=%d conn_table_size=%ld",
           l4_packet_describe(g.packet, desc, sizeof(desc)), g.vip.count, g.conn_table_size);
}

int main(int argc, char **argv) {
  g.hash = "5tuple";
  g.admin_addr = NULL;
  g.log_level = "info";
  g.proxy_protocol = 1;
  g.splice = 1;
  g.workers = (long)uv_available_parallelism();
  g.table_size = MAGLEV_DEFAULT_M;
  g.rise = 2;
  g.fall = 3;
  g.connect_timeout_ms = 3000;
  g.idle_timeout_ms = 3600 * 1000;
  g.check_interval_ms = 2000;
  g.check_timeout_ms = 1000;
  g.drain_timeout_ms = 30000;
  g.panic_threshold = L4_PANIC_THRESHOLD_DEFAULT;
  g.reconnect_max_ms = RPC_RECONNECT_MAX_DEFAULT_MS;
  g.mode = "tcp";
  g.xdp_attach = "native";
  g.conn_table_size = L4_PACKET_DEFAULT_CONN_TABLE;
  const struct flag_def defs[] = {
      FLAG_GROUP_DEF("Listeners and workers"),
      {"listen", FLAG_LIST, &g.listen,
       "address to accept TCP on; backend=https forwards to the replicas' HTTPS address",
       "ADDR:PORT[,backend=http|https]", 0, 0},
      {"admin", FLAG_STRING, &g.admin_addr,
       "admin endpoint (/healthz /readyz /metrics /config "
       "/lookup)",
       "ADDR:PORT", 0, 0},
      {"workers", FLAG_INT, &g.workers, "worker threads (default: cores)", "N", 1, 256},
      {"drain-timeout", FLAG_DURATION_MS, &g.drain_timeout_ms,
       "on SIGTERM, how long connections may finish (default 30s)", "DURATION", 0, 0},
      FLAG_GROUP_DEF("Mode: TCP proxy or XDP packet forwarding"),
      {"mode", FLAG_STRING, &g.mode,
       "tcp: proxy connections (default); xdp: forward VIP packets with an XDP program "
       "(IPv4-in-IPv4 to the replica, direct server return)",
       "tcp|xdp", 0, 0},
      {"interface", FLAG_STRING, &g.interface,
       "--mode=xdp: the interface VIP packets arrive on (IPv4 forwarding on)", "IF", 0, 0},
      {"vip", FLAG_LIST, &g.vip, "--mode=xdp: a VIP to forward", "ADDR:PORT[/tcp|/udp]", 0, 0},
      {"conn-table-size", FLAG_INT, &g.conn_table_size,
       "--mode=xdp: connection table entries (LRU; default 262144)", "N", 1, 1L << 26},
      {"xdp-attach", FLAG_STRING, &g.xdp_attach,
       "--mode=xdp: native (driver, default) or generic (skb, any interface, slower)",
       "native|generic", 0, 0},
      FLAG_GROUP_DEF("Replicas: from syncd or static"),
      {"syncd", FLAG_STRING, &g.syncd,
       "take the replica set from syncd's Membership.Watch; with several replicas (a list, or "
       "a DNS name with several addresses) every one is watched and their sets merged",
       "ADDR:PORT[,ADDR:PORT...]|NAME:PORT", 0, 0},
      {"syncd-view-timeout", FLAG_DURATION_MS, &g.syncd_view_timeout_ms,
       "a syncd replica unreachable this long (while another answers) no longer vouches for "
       "its proxies (default 10m, syncd's --replica-removal-timeout)",
       "DURATION", 0, 0},
      {"panic-threshold", FLAG_INT, &g.panic_threshold,
       "percent of the healthy backends that must stay when a set from syncd drops some; "
       "otherwise the dropped ones are held until their checks fail (default 50; 0: only "
       "a set dropping all is held)",
       "PERCENT", 0, 100},
      {"reconnect-max", FLAG_DURATION_MS, &g.reconnect_max_ms,
       "longest wait between reconnects to syncd (default 1s, jittered -20%)", "DURATION", 0, 0},
      {"insecure", FLAG_BOOL, &g.insecure,
       "plaintext gRPC to syncd (no TLS; a loopback --syncd only)", NULL, 0, 0},
      {"insecure-allow-remote", FLAG_BOOL, &g.insecure_remote,
       "allow --insecure to a non-loopback --syncd", NULL, 0, 0},
      {"cert", FLAG_STRING, &g.cert, "client certificate for syncd (mTLS)", "FILE", 0, 0},
      {"key", FLAG_STRING, &g.key, "client key for syncd (mTLS)", "FILE", 0, 0},
      {"ca", FLAG_STRING, &g.ca, "CA that verifies syncd", "FILE", 0, 0},
      {"node-id", FLAG_STRING, &g.node_id, "this instance's name for syncd (default: hostname)",
       "NAME", 0, 0},
      {"cache-dir", FLAG_STRING, &g.cache_dir,
       "save the last replica set from syncd here and start from it (with --syncd)", "DIR", 0, 0},
      {"backend", FLAG_LIST, &g.backend,
       "static L7 replica; https= is where https listeners send it; check= is where GET "
       "/readyz is asked, without it a TCP connect check; drain: no new connections",
       "ADDR:PORT[,https=ADDR:PORT][,check=ADDR:PORT][,weight=N][,drain]", 0, 0},
      FLAG_GROUP_DEF("Balancing and forwarding"),
      {"hash", FLAG_STRING, &g.hash, "flow key: 5tuple (default) or src (client affinity)",
       "5tuple|src", 0, 0},
      {"table-size", FLAG_INT, &g.table_size, "Maglev table size, a prime (default 65537)", "M", 3,
       MAGLEV_MAX_M},
      {"proxy-protocol", FLAG_BOOL, &g.proxy_protocol,
       "send a PROXY v2 header to backends (default on; off for plain TCP backends)", "on|off", 0,
       0},
      {"splice", FLAG_BOOL, &g.splice, "zero-copy splice(2) (default on; off: read/write)",
       "on|off", 0, 0},
      {"connect-timeout", FLAG_DURATION_MS, &g.connect_timeout_ms,
       "backend connect timeout, PROXY header included (default 3s)", "DURATION", 0, 0},
      {"max-connections", FLAG_INT, &g.max_connections,
       "open connections above which accepting pauses and /readyz fails (default: what "
       "RLIMIT_NOFILE allows)",
       "N", 0, 100000000},
      {"idle-timeout", FLAG_DURATION_MS, &g.idle_timeout_ms,
       "close a connection that moves no byte either way for this long (default 1h; 0 = never)",
       "DURATION", 0, 0},
      FLAG_GROUP_DEF("Health checks"),
      {"check-interval", FLAG_DURATION_MS, &g.check_interval_ms,
       "health check interval, ±10% jitter (default 2s)", "DURATION", 0, 0},
      {"check-timeout", FLAG_DURATION_MS, &g.check_timeout_ms, "health check timeout (default 1s)",
       "DURATION", 0, 0},
      {"rise", FLAG_INT, &g.rise, "consecutive passed checks to mark a backend up (default 2)", "N",
       1, 1000},
      {"fall", FLAG_INT, &g.fall,
       "consecutive failures (checks or connects) to mark a backend down (default 3)", "N", 1,
       1000},
      FLAG_GROUP_DEF("Logging"),
      {"log-level", FLAG_STRING, &g.log_level, "debug|info|warn|error", "LEVEL", 0, 0},
  };
  size_t ndefs = sizeof(defs) / sizeof(defs[0]);
  char err[512];
  log_init("l4lb");
  int rc = flags_parse(defs, ndefs, argc, argv, NULL, 0, NULL, err, sizeof(err));
  if (rc == FLAGS_HELP) {
    flags_usage(stdout, "l4lb", synopsis, description, defs, ndefs);
    return 0;
  }
  if (rc != FLAGS_OK) {
    fprintf(stderr, "l4lb: %s\n", err);
    return 2;
  }
  enum log_level lvl;
  if (log_parse_level(g.log_level, &lvl) != 0) {
    fprintf(stderr, "l4lb: --log-level: expected debug|info|warn|error: %s\n", g.log_level);
    return 2;
  }
  log_set_level(lvl);
  if (strcmp(g.hash, "5tuple") == 0) {
    g.hash_mode = MAGLEV_HASH_5TUPLE;
  } else if (strcmp(g.hash, "src") == 0) {
    g.hash_mode = MAGLEV_HASH_SRC;
  } else {
    fprintf(stderr, "l4lb: --hash: expected 5tuple or src: %s\n", g.hash);
    return 2;
  }
  if (!maglev_is_prime((uint32_t)g.table_size)) {
    fprintf(stderr, "l4lb: --table-size: %ld is not a prime (try 65537)\n", g.table_size);
    return 2;
  }
  int xdp = strcmp(g.mode, "xdp") == 0;
  if (!xdp && strcmp(g.mode, "tcp") != 0) {
    fprintf(stderr, "l4lb: --mode: expected tcp or xdp: %s\n", g.mode);
    return 2;
  }
  if (!xdp && (g.interface || g.vip.count)) {
    fprintf(stderr, "l4lb: --interface and --vip need --mode=xdp\n");
    return 2;
  }
  if (!xdp && g.listen.count == 0) {
    fprintf(stderr, "l4lb: at least one --listen=ADDR:PORT is required\n");
    return 2;
  }
  if (!g.syncd == !g.backend.count) {
    fprintf(stderr, "l4lb: give either --syncd=ADDR:PORT or --backend=ADDR:PORT (not both)\n");
    return 2;
  }
  if (g.cache_dir && !g.syncd) {
    fprintf(stderr, "l4lb: --cache-dir needs --syncd (static backends are not cached)\n");
    return 2;
  }
  if (g.cache_dir) {
    /* a cache that cannot be written would fail quietly at every update */
    rc = statedir_prepare(g.cache_dir, err, sizeof(err));
    if (rc < 0) {
      fprintf(stderr, "l4lb: --cache-dir=%s: %s\n", g.cache_dir, err);
      return 2;
    }
    if (rc == 1) LOG_INFO("cache_dir_created", "dir=%s mode=0700", log_q(g.cache_dir));
  }
  if (g.syncd && g.insecure && !g.insecure_remote && !targets_is_loopback(g.syncd)) {
    fprintf(stderr,
            "l4lb: --insecure is plaintext: --syncd=%s must be a loopback address (or add "
            "--insecure-allow-remote)\n",
            g.syncd);
    return 2;
  }
  if (g.syncd) {
    struct target_list tl;
    char why[256];
    if (targets_parse(g.syncd, &tl, why, sizeof(why)) != 0) {
      fprintf(stderr, "l4lb: --syncd: %s\n", why);
      return 2;
    }
    targets_free(&tl);
  }
  if (g.syncd && !g.insecure && !(g.cert && g.key && g.ca)) {
    fprintf(stderr, "l4lb: --syncd needs --cert, --key and --ca (or --insecure)\n");
    return 2;
  }
  if (g.reconnect_max_ms < RPC_RECONNECT_MAX_MIN_MS || g.reconnect_max_ms > 300000) {
    fprintf(stderr, "l4lb: --reconnect-max: between %ums and 5m\n", RPC_RECONNECT_MAX_MIN_MS);
    return 2;
  }
  if (g.connect_timeout_ms == 0 || g.check_interval_ms == 0 || g.check_timeout_ms == 0) {
    fprintf(stderr, "l4lb: --connect-timeout, --check-interval and --check-timeout must be > 0\n");
    return 2;
  }
  struct l4_member *statics = calloc((size_t)g.backend.count + 1, sizeof(*statics));
  for (int i = 0; i < g.backend.count; i++) {
    if (l4_member_parse_static(g.backend.values[i], &statics[i], err, sizeof(err)) != 0) {
      fprintf(stderr, "l4lb: %s\n", err);
      free(statics);
      return 2;
    }
    for (int j = 0; j < i; j++)
      if (strcmp(statics[j].name, statics[i].name) == 0) {
        fprintf(stderr, "l4lb: --backend=%s given twice\n", statics[i].name);
        free(statics);
        return 2;
      }
  }
  signal(SIGPIPE, SIG_IGN);
  uint64_t nofile = raise_fd_limit();
  uint64_t fd_max_conns = nofile > 2 * fd_reserve(nofile) ? (nofile - fd_reserve(nofile)) / 2 : 1;
  if (g.max_connections == 0 || (uint64_t)g.max_connections > fd_max_conns) {
    if (g.max_connections)
      LOG_WARN("max_connections_lowered", "asked=%ld allowed=%llu fd_limit=%llu", g.max_connections,
               (unsigned long long)fd_max_conns, (unsigned long long)nofile);
    g.max_connections = (long)fd_max_conns;
  }

  g.loop = uv_default_loop();
  g.metrics = metrics_registry_new();
  if (g.admin_addr &&
      admin_start(g.loop, g.admin_addr, g.metrics, &g.admin, err, sizeof(err)) != 0) {
    die("--admin=%s: %s", g.admin_addr, err);
  }

  /* listeners: all sockets exist before any worker starts, so a bind
   * error is reported here as one line */
  int nw = (int)g.workers;
  int *fds = calloc((size_t)g.listen.count * (size_t)nw, sizeof(int));
  g.bound = calloc((size_t)g.listen.count, sizeof(char *));
  g.bound_https = calloc((size_t)g.listen.count + 1, sizeof(int));
  for (int l = 0; l < g.listen.count; l++) {
    char bound[128], addr[256];
    if (parse_listen(g.listen.values[l], addr, sizeof(addr), &g.bound_https[l], err, sizeof(err)) !=
            0 ||
        l4_listener_open(addr, nw, fds + (size_t)l * (size_t)nw, bound, sizeof(bound), err,
                         sizeof(err)) != 0) {
      die("%s", err);
    }
    g.bound[g.nbound++] = strdup(bound);
  }

  uv_async_init(g.loop, &g.failures_wake, on_failures_wake);
  uv_signal_init(g.loop, &g.sigterm);
  uv_signal_init(g.loop, &g.sigint);
  uv_signal_start(&g.sigterm, on_signal, SIGTERM);
  uv_signal_start(&g.sigint, on_signal, SIGINT);
  uv_timer_init(g.loop, &g.drain_timer);
  uv_timer_init(g.loop, &g.fd_timer);
  uv_timer_start(&g.fd_timer, on_fd_timer, FD_CHECK_MS, FD_CHECK_MS);
  metrics_gauge_fn(g.metrics, "edge_l4_open_fds", "File descriptors open in this process", "",
                   gauge_open_fds, NULL);
  metrics_gauge_fn(g.metrics, "edge_l4_fd_limit", "RLIMIT_NOFILE (soft) of this process", "",
                   gauge_fd_limit, NULL);

  if (xdp) start_packet_mode();

  /* the first table (static set, or empty until syncd answers) */
  if (g.admin) admin_set_ready(g.admin, 0);
  struct l4_members_config mc = {
      .table_size = (uint32_t)g.table_size,
      .rise = (int)g.rise,
      .fall = (int)g.fall,
      .panic_threshold = (uint32_t)g.panic_threshold,
      .metrics = g.metrics,
      .checker_start = start_checker,
      .checker_stop = stop_checker,
      .on_snapshot = on_snapshot,
      .on_published = on_published,
  };
  if (l4_members_new(&mc, &g.members) != 0) die("out of memory");
  l4_members_apply(g.members, statics, (size_t)g.backend.count, 0,
                   g.syncd ? "start (waiting for syncd)" : "start");
  free(statics);
  if (g.cache_dir) load_cache();

  struct l4_forward_config fc = {
      .hash_mode = g.hash_mode,
      .connect_timeout_ms = g.connect_timeout_ms,
      .idle_timeout_ms = g.idle_timeout_ms,
      .max_connections = (uint64_t)g.max_connections,
      .proxy_protocol = g.proxy_protocol,
      .splice = g.splice,
      .metrics = g.metrics,
      .on_connect_failure = notify_connect_failure,
  };
  if (!xdp && l4_forward_start(&fc, nw, fds, g.bound_https, (size_t)g.listen.count, &g.fwd, err,
                               sizeof(err)) != 0) {
    die("%s", err);
  }
  free(fds);

  char host[128] = "l4lb";
  if (!g.node_id) {
    gethostname(host, sizeof(host) - 1);
    g.node_id = host;
  }
  if (g.syncd) {
    if (g.insecure) LOG_WARN("insecure", "syncd=%s reason=%s", g.syncd, log_q("plaintext gRPC"));
    if (rpc_runtime_new(g.loop, &g.rpc) != 0) {
      die("cannot start the gRPC runtime");
    }
    struct l4_syncds_opts so = {
        .spec = g.syncd,
        .creds = {.cert_file = g.cert, .key_file = g.key, .ca_file = g.ca, .insecure = g.insecure},
        .node_id = g.node_id,
        .address = xdp ? g.vip.values[0] : g.bound[0],
        .build = L4LB_VERSION,
        .reconnect_max_ms = g.reconnect_max_ms,
        .view_timeout_ms = g.syncd_view_timeout_ms,
    };
    if (l4_syncds_start(g.loop, g.rpc, &so, on_membership, NULL, &g.syncds, err, sizeof(err)) !=
        0) {
      die("--syncd=%s: %s", g.syncd, err);
    }
  }

  char admin_bound[64] = "off";
  if (g.admin) snprintf(admin_bound, sizeof(admin_bound), "%d", admin_port(g.admin));
  char listen_all[512] = "";
  for (size_t i = 0; i < g.nbound; i++)
    snprintf(listen_all + strlen(listen_all), sizeof(listen_all) - strlen(listen_all), "%s%s",
             i ? "," : "", g.bound[i]);
  LOG_INFO("started",
           "version=%s mode=%s listen=%s admin_port=%s workers=%ld membership=%s backends=%d "
           "hash=%s table_size=%ld proxy_protocol=%s splice=%s connect_timeout_ms=%u "
           "idle_timeout_ms=%u check_interval_ms=%u check_timeout_ms=%u rise=%ld fall=%ld "
           "drain_timeout_ms=%u panic_threshold=%ld reconnect_max_ms=%u fd_limit=%llu "
           "max_connections=%ld",
           L4LB_VERSION, g.mode, listen_all, admin_bound, g.workers, g.syncd ? g.syncd : "static",
           g.backend.count, hash_name(), g.table_size, g.proxy_protocol ? "on" : "off",
           g.splice ? "on" : "off", g.connect_timeout_ms, g.idle_timeout_ms, g.check_interval_ms,
           g.check_timeout_ms, g.rise, g.fall, g.drain_timeout_ms, g.panic_threshold,
           g.reconnect_max_ms, (unsigned long long)fd_limit(), g.max_connections);
  if (g.admin) {
    admin_handle(g.admin, "/config", handle_config, NULL);
    admin_handle(g.admin, "/lookup", handle_lookup, NULL);
  }

  uv_run(g.loop, UV_RUN_DEFAULT);

  if (g.rpc) rpc_runtime_free(g.rpc);
  for (size_t i = 0; i < g.nbound; i++) free(g.bound[i]);
  free(g.bound);
  free(g.bound_https);
  free(g.vips);
  uv_loop_close(g.loop);
  metrics_registry_free(g.metrics);
  LOG_INFO("stopped", "%s", "");
  return 0;
}
