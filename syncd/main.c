/*
 * syncd — the control-plane daemon.
 *
 * Wires the parts together on one libuv loop: the source (syncd/source.h)
 * delivers desired states; the store (syncd/store.h) turns them into
 * versions, persisted under --state-dir; the gRPC server serves ConfigSync
 * (config_sync.c), Membership (membership.c) and Status (status.c); the
 * admin endpoint serves /healthz, /readyz, /metrics and /config.
 *
 * Start-up order matters for "serve at once after a restart": the state
 * file and the known replica set (membership.h) are loaded and the gRPC
 * server started before the source is read, so proxies reconnecting to a
 * restarted syncd get the restored version immediately and l4lbs get the
 * same replica set as before. /readyz turns ready once a state is loaded
 * or restored.
 *
 * SIGTERM/SIGINT: stop the source, shut the gRPC server and the admin
 * endpoint down, then free everything and exit 0.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/addr.h"
#include "common/admin.h"
#include "common/fileio.h"
#include "common/flags.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/rpc.h"
#include "common/statedir.h"
#include "edge/v1/status.pb-c.h"
#include "syncd/authz.h"
#include "syncd/config_sync.h"
#include "common/cert.h"
#include "syncd/explain.h"
#include "syncd/k8s_client.h"
#include "syncd/leader.h"
#include "syncd/membership.h"
#include "syncd/ocsp_stapler.h"
#include "syncd/persist.h"
#include "syncd/report.h"
#include "syncd/source.h"
#include "syncd/status.h"
#include "syncd/store.h"

#define SYNCD_BUILD "edge-syncd/0.1.0"
#define PRUNE_EVERY_MS 60000
#define MAX_DISCONNECTED_NODES 1024 /* per table, beyond --node-retention */

struct syncd {
  uv_loop_t *loop;
  const char *state_dir;
  struct store *store;
  struct persist *persist;
  struct metrics_registry *metrics;
  struct rpc_runtime *rt;
  struct rpc_server *srv;
  struct config_sync *cs;
  struct membership *mb;
  struct status *status;
  struct authz *authz;
  struct admin_server *admin;
  struct syncd_source *source;
  struct ocsp_stapler *ocsp; /* NULL with --ocsp=off */
  struct leader *leader;     /* kubernetes source with leader election, else NULL */
  char replica[256];
  uv_signal_t sigterm, sigint;
  uv_timer_t prune_timer;
  int64_t node_retention_s;
  int stopping;
  int closing; /* asynchronous closes still running */
  struct metrics_gauge *rejected;
};

/* ---- metrics ------------------------------------------------------------ */

static double gauge_version(void *arg) {
  struct syncd *sd = arg;
  return (double)store_version(sd->store);
}

static double gauge_generation(void *arg) {
  struct syncd *sd = arg;
  return (double)store_generation(sd->store);
}

static double state_bytes_written(void *arg) {
  struct syncd *sd = arg;
  struct persist_stats st = {0};
  if (sd->persist) persist_stats(sd->persist, &st);
  return (double)st.bytes_written;
}

static double state_journal_bytes(void *arg) {
  struct syncd *sd = arg;
  struct persist_stats st = {0};
  if (sd->persist) persist_stats(sd->persist, &st);
  return (double)st.journal_bytes;
}

static double state_compactions(void *arg) {
  struct syncd *sd = arg;
  struct persist_stats st = {0};
  if (sd->persist) persist_stats(sd->persist, &st);
  return (double)st.compactions;
}

static double gauge_l7(void *arg) {
  struct syncd *sd = arg;
  return (double)config_sync_connected(sd->cs);
}

static double gauge_l4(void *arg) {
  struct syncd *sd = arg;
  return (double)membership_connected(sd->mb);
}

/* Object and rejection gauges from the typed report. */
static void update_object_gauges(struct syncd *sd) {
  const Edge__V1__StatusResponse *m = store_report(sd->store);
  if (!m) return;
  for (size_t i = 0; i < m->n_objects; i++) {
    char esc[128], labels[160];
    metrics_escape_label(m->objects[i]->kind, esc, sizeof(esc));
    snprintf(labels, sizeof(labels), "kind=\"%s\"", esc);
    struct metrics_gauge *g = metrics_gauge(sd->metrics, "edge_syncd_objects",
                                            "Kubernetes objects seen by the source.", labels);
    if (g) metrics_gauge_set(g, m->objects[i]->count);
  }
  if (sd->rejected) metrics_gauge_set(sd->rejected, (double)m->n_rejected);
}

/* ---- desired state → store ---------------------------------------------- */

/* Whether update u removes a Certificate (the stapler then forgets it). */
static int removes_certificate(const struct syncd_update *u) {
  for (size_t i = 0; i < u->n_removed; i++)
    if (u->removed[i].type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE) return 1;
  return 0;
}

static void on_update(void *ud, const struct syncd_update *u) {
  struct syncd *sd = ud;
  if (sd->stopping) return;
  /* The first update is the whole state (a restored store may hold more);
   * later ones are what the change touched. Certificates carry their
   * current OCSP staple (issue 20). */
  const struct syncd_resource *up = u->upserted;
  struct syncd_resource *stapled = NULL;
  if (sd->ocsp && ocsp_stapler_staple_update(sd->ocsp, u->upserted, u->n_upserted, &stapled) != 0)
    LOG_WARN("ocsp_staple_failed", "reason=%s", "out of memory");
  if (stapled) up = stapled;
  int rc = u->full ? store_apply(sd->store, up, u->n_upserted, u->generation)
                   : store_apply_delta(sd->store, up, u->n_upserted, u->removed, u->n_removed,
                                       u->generation);
  if (stapled) ocsp_stapler_free_update(u->upserted, stapled, u->n_upserted);
  if (sd->ocsp && rc >= 0 && (u->full || removes_certificate(u))) {
    size_t n_all;
    struct store_entry *const *all = store_entries(sd->store, &n_all);
    ocsp_stapler_sweep(sd->ocsp, all, n_all);
  }
  if (rc < 0) {
    LOG_ERROR("state_rejected", "err=%s upserted=%zu removed=%zu", log_q(store_strerror(rc)),
              u->n_upserted, u->n_removed);
    return;
  }
  int report_changed = 0;
  if (u->report_changed) {
    uint8_t *packed;
    size_t packed_len;
    if (report_pack(u->report, &packed, &packed_len) == 0) {
      report_changed = store_set_report(sd->store, packed, packed_len) == 1;
      free(packed);
    }
  }
  if (rc == 1)
    LOG_INFO("version",
             "version=%" PRIu64 " seq=%" PRIu64 " generation=%" PRIu64
             " resources=%zu upserted=%zu removed=%zu rejected=%zu",
             store_version(sd->store), store_seq(sd->store), store_generation(sd->store),
             store_count(sd->store), u->n_upserted, u->n_removed, u->report->n_rejected);
  /* On disk before any proxy hears of it: a restarted syncd then never
   * serves an older state than one a proxy already applied. */
  if ((rc == 1 || report_changed) && sd->persist) {
    char err[512];
    if (persist_commit(sd->persist, err, sizeof(err)) != 0)
      LOG_ERROR("state_save_failed", "err=%s", log_q(err));
  }
  if (report_changed) update_object_gauges(sd);
  if (rc == 1) status_refresh_expiry(sd->status);
  admin_set_ready(sd->admin, 1);
  if (rc == 1) config_sync_notify(sd->cs);
}

/* A staple changed: the published certificates get the new one (a new
 * version, persisted and pushed like any change). */
static int resource_cmp(const void *a, const void *b) {
  const struct syncd_resource *x = a, *y = b;
  return x->type != y->type ? (x->type < y->type ? -1 : 1) : strcmp(x->name, y->name);
}

static void on_ocsp_changed(void *ud) {
  struct syncd *sd = ud;
  if (sd->stopping) return;
  size_t n, nc = 0;
  struct store_entry *const *e = store_entries(sd->store, &n);
  struct syncd_resource *res = calloc(n ? n : 1, sizeof(*res));
  for (size_t i = 0; res && i < n; i++) {
    if (e[i]->removed || e[i]->type != EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE) continue;
    uint8_t *fresh = NULL;
    size_t len = 0;
    if (ocsp_stapler_staple_one(sd->ocsp, e[i]->bytes, e[i]->len, &fresh, &len) == 1)
      res[nc++] = (struct syncd_resource){e[i]->type, e[i]->name, fresh, len};
  }
  if (nc > 1) qsort(res, nc, sizeof(*res), resource_cmp);
  /* only the certificates whose staple changed: a delta, at the same generation */
  int rc = nc ? store_apply_delta(sd->store, res, nc, NULL, 0, store_generation(sd->store)) : 0;
  for (size_t i = 0; i < nc; i++) free(res[i].bytes);
  free(res);
  if (rc < 0) LOG_ERROR("ocsp_apply_failed", "err=%s", log_q(store_strerror(rc)));
  if (rc != 1) return;
  LOG_INFO("version", "version=%" PRIu64 " resources=%zu stapled=%zu reason=ocsp",
           store_version(sd->store), store_count(sd->store), nc);
  if (sd->persist) {
    char err[512];
    if (persist_commit(sd->persist, err, sizeof(err)) != 0)
      LOG_ERROR("state_save_failed", "err=%s", log_q(err));
  }
  status_refresh_expiry(sd->status);
  config_sync_notify(sd->cs);
}

static void source_status(void *ud, char *name, size_t namelen, int *healthy, char *msg,
                          size_t msglen, int64_t *last_sync) {
  struct syncd *sd = ud;
  if (sd->source) syncd_source_status(sd->source, name, namelen, healthy, msg, msglen, last_sync);
}

/* ---- replicas and leader election (HA) ----------------------------------- */

static void leader_for_status(void *ud, struct status_leader *out) {
  struct syncd *sd = ud;
  memset(out, 0, sizeof(*out));
  if (!sd->leader) return;
  struct leader_status ls;
  leader_status(sd->leader, &ls);
  out->enabled = 1;
  out->leader = ls.leader;
  out->transitions = ls.transitions;
  snprintf(out->identity, sizeof(out->identity), "%s", ls.identity);
  snprintf(out->holder, sizeof(out->holder), "%s", ls.holder);
  snprintf(out->lease, sizeof(out->lease), "%s", ls.lease);
  snprintf(out->renew_time, sizeof(out->renew_time), "%s", ls.renew_time);
  snprintf(out->error, sizeof(out->error), "%s", ls.error);
}

static double gauge_leader(void *arg) {
  struct syncd *sd = arg;
  return sd->leader ? leader_is_leader(sd->leader) : 0;
}

/* The Lease elector of the kubernetes source (lo: namespace NULL = our
 * own). 0, or 1 after printing why. */
static int start_leader_election(struct syncd *sd, struct leader_opts *lo) {
  char ns[256], err[512];
  if (lo->lease_namespace)
    snprintf(ns, sizeof(ns), "%s", lo->lease_namespace);
  else
    k8s_own_namespace(ns, sizeof(ns));
  lo->lease_namespace = ns;
  lo->replica_id = sd->replica;
  if (leader_start(sd->loop, lo, &sd->leader, err, sizeof(err)) != 0) {
    fprintf(stderr, "syncd: leader election: %s\n", err);
    LOG_ERROR("leader_election_failed", "err=%s", log_q(err));
    return 1;
  }
  return 0;
}

/* --replica-id's default: the pod name, else the host name. */
static void default_replica_id(char *out, size_t outlen) {
  const char *pod = getenv("POD_NAME");
  if (pod && *pod) {
    snprintf(out, outlen, "%s", pod);
    return;
  }
  if (gethostname(out, outlen) != 0 || !out[0]) snprintf(out, outlen, "syncd");
  out[outlen - 1] = '\0';
}

/* Node tables: proxies and l4lbs that left are forgotten after
 * --node-retention (and beyond MAX_DISCONNECTED_NODES), so node churn
 * never grows them forever. */
static void on_prune(uv_timer_t *t) {
  struct syncd *sd = t->data;
  int64_t now = (int64_t)time(NULL);
  config_sync_prune(sd->cs, now, sd->node_retention_s, MAX_DISCONNECTED_NODES);
  membership_prune(sd->mb, now, sd->node_retention_s, MAX_DISCONNECTED_NODES);
}

/* ---- admin --------------------------------------------------------------- */

static void handle_config(void *ud, const char *path, const char *query,
                          struct admin_response *resp) {
  struct syncd *sd = ud;
  char *json;
  size_t len;
  if (status_config_json(sd->store, &json, &len) != 0) {
    admin_reply(resp, 500, NULL, "out of memory\n");
    return;
  }
  resp->status = 200;
  resp->content_type = "application/json";
  resp->body = json;
  resp->body_len = len;
}

/* ---- shutdown ------------------------------------------------------------ */

static void closed_one(void *arg) {
  struct syncd *sd = arg;
  if (--sd->closing == 0) uv_stop(sd->loop);
}

static void signal_closed(uv_handle_t *h) {
  closed_one(h->data);
}

static void on_signal(uv_signal_t *h, int signum) {
  struct syncd *sd = h->data;
  if (sd->stopping) return;
  sd->stopping = 1;
  LOG_INFO("stopping", "signal=%d version=%" PRIu64, signum, store_version(sd->store));
  admin_set_draining(sd->admin, 1);
  membership_close(sd->mb);
  sd->closing = 9; /* the callbacks below up to the source; +1 for the leader */
  ocsp_stapler_close(sd->ocsp, closed_one, sd);
  sd->ocsp = NULL;
  uv_close((uv_handle_t *)&sd->prune_timer, signal_closed);
  status_stop(sd->status, closed_one, sd);
  persist_close(sd->persist, closed_one, sd); /* waits for a compaction in flight */
  sd->persist = NULL;
  uv_close((uv_handle_t *)&sd->sigterm, signal_closed);
  uv_close((uv_handle_t *)&sd->sigint, signal_closed);
  if (sd->source) {
    syncd_source_stop(sd->source, closed_one, sd);
    sd->source = NULL;
  } else {
    closed_one(sd);
  }
  /* After the source (it asks the leader): release the Lease, so another
   * replica takes over at its next round (SIGTERM handover). */
  sd->closing++;
  leader_stop(sd->leader, closed_one, sd);
  sd->leader = NULL;
  rpc_server_shutdown(sd->srv, closed_one, sd);
  admin_close(sd->admin, closed_one, sd);
}

/* ---- default certificate -------------------------------------------------- */

/*
 * Without --default-cert, the source would generate a new self-signed
 * certificate at every start, so a restarted syncd would produce a new
 * version from an unchanged source. With --state-dir the generated pair is
 * kept there (0600) and reused: same bytes, same version after a restart.
 */
static int ensure_default_cert(const char *dir, char *cert, char *key, size_t len, char *err,
                               size_t errlen) {
  snprintf(cert, len, "%s/default-cert.pem", dir);
  snprintf(key, len, "%s/default-key.pem", dir);
  if (access(cert, R_OK) == 0 && access(key, R_OK) == 0) return 0;
  char *cp = NULL, *kp = NULL;
  const char *name = "edge-default";
  if (cert_generate(&name, 1, 3650, 0, NULL, NULL, &cp, &kp, err, errlen) != 0) return -1;
  int rc = fileio_write_atomic_buf(key, kp, strlen(kp), 0600, err, errlen);
  if (rc == 0) rc = fileio_write_atomic_buf(cert, cp, strlen(cp), 0600, err, errlen);
  free(cp);
  free(kp);
  return rc;
}

/*
 * The secret cookie-affinity keys are derived from (syncd/policy_annotations.h):
 * --affinity-secret-file (16..64 bytes; every syncd replica must share it), else a
 * random one kept in --state-dir (affinity.key, 0600) so a restart keeps every
 * client's cookie, else a random one for this process only (cookies issued before a
 * restart no longer name their endpoint: those clients are balanced again).
 */
static int load_affinity_secret(const char *file, const char *dir, uint8_t *out, size_t *len,
                                char *err, size_t errlen) {
  char path[4096];
  if (!file && dir) snprintf(path, sizeof(path), "%s/affinity.key", dir);
  const char *p = file ? file : dir ? path : NULL;
  if (p) {
    FILE *f = fopen(p, "rb");
    if (f) {
      size_t n = fread(out, 1, 64, f);
      int extra = fgetc(f) != EOF;
      fclose(f);
      if (n < 16 || extra) {
        snprintf(err, errlen, "%s must hold 16..64 bytes", p);
        return -1;
      }
      *len = n;
      return 0;
    }
    if (file) {
      snprintf(err, errlen, "read %s: %s", file, strerror(errno));
      return -1;
    }
  }
  if (getrandom(out, 32, 0) != 32) {
    snprintf(err, errlen, "no randomness for the affinity secret");
    return -1;
  }
  *len = 32;
  if (!p) {
    LOG_WARN("affinity_secret_not_persisted",
             "reason=\"no --state-dir or --affinity-secret-file: affinity cookies change when "
             "syncd restarts\"");
    return 0;
  }
  char tmp[4200];
  snprintf(tmp, sizeof(tmp), "%s.tmp", p);
  if (!file) mkdir(dir, 0700); /* the state store creates it too; first start: now */
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || write(fd, out, 32) != 32 || fsync(fd) != 0 || rename(tmp, p) != 0) {
    /* not fatal: this process's secret still works, it is only not kept */
    LOG_WARN("affinity_secret_not_persisted", "path=%s error=%s", log_q(p), log_q(strerror(errno)));
    if (fd >= 0) close(fd);
    unlink(tmp);
    return 0;
  }
  close(fd);
  return 0;
}

/* ---- main ---------------------------------------------------------------- */

static const char *SYNOPSIS = "[flags]";
static const char *DESCRIPTION =
    "The edge control plane: reads Ingress objects from a source and streams versioned\n"
    "configuration to l7proxies (ConfigSync) and the replica set to l4lbs (Membership).";

/* "80,8080" → {80, 8080, 0}; at most 8 ports. */
static int parse_ports(const char *s, uint32_t out[9]) {
  int n = 0;
  while (*s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || v < 1 || v > 65535 || n == 8 || (*end && *end != ',')) return -1;
    out[n++] = (uint32_t)v;
    s = *end ? end + 1 : end;
  }
  out[n] = 0;
  return n > 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  const char *source = "dir:deploy/examples", *listen = "127.0.0.1:7000";
  const char *admin = "127.0.0.1:7001", *state_dir = NULL;
  const char *cert = NULL, *key = NULL, *ca = NULL, *kubeconfig = NULL, *publish = NULL;
  const char *default_cert = NULL, *default_key = NULL, *level = "info";
  const char *affinity_secret_file = NULL;
  const char *expiry_warning = "14d", *ocsp = "on";
  uint32_t ocsp_timeout_ms = 5000, ocsp_min_refresh_ms = 60000;
  const char *gw_http = "80", *gw_https = "443";
  int insecure = 0, insecure_remote = 0;
  uint32_t node_retention_ms = 3600 * 1000;
  uint32_t debounce_ms = 0, max_delay_ms = 0, membership_grace_ms = 0;
  uint32_t removal_timeout_ms = MEMBERSHIP_REMOVAL_TIMEOUT_MS;
  const char *replica_id = NULL, *election = "on", *lease_name = "edge-syncd";
  const char *lease_ns = NULL;
  uint32_t lease_duration = 15000, lease_renew = 10000, lease_retry = 2000;
  const struct flag_def defs[] = {
      FLAG_GROUP_DEF("Sources"),
      {"source", FLAG_STRING, &source, "dir:PATH (default dir:deploy/examples) or kubernetes",
       "SPEC"},
      {"kubeconfig", FLAG_STRING, &kubeconfig, "kubeconfig for --source=kubernetes", "FILE"},
      {"publish-address", FLAG_STRING, &publish,
       "address written to status.loadBalancer of served Ingresses", "ADDR"},
      {"debounce", FLAG_DURATION_MS, &debounce_ms, "quiet time before a change is applied",
       "DURATION"},
      {"max-delay", FLAG_DURATION_MS, &max_delay_ms, "longest a burst of changes is delayed",
       "DURATION"},
      FLAG_GROUP_DEF("Serving: gRPC (ConfigSync, Membership, Status) and admin"),
      {"listen", FLAG_STRING, &listen, "gRPC listen address (default 127.0.0.1:7000)", "ADDR:PORT"},
      {"admin", FLAG_STRING, &admin, "admin HTTP address (default 127.0.0.1:7001)", "ADDR:PORT"},
      {"state-dir", FLAG_STRING, &state_dir,
       "directory for the persisted last good state and the known replica set", "DIR"},
      FLAG_GROUP_DEF("Membership (the replica set sent to l4lbs)"),
      {"replica-removal-timeout", FLAG_DURATION_MS, &removal_timeout_ms,
       "a known l7proxy disconnected this long leaves the replica set (default 10m)", "DURATION"},
      {"membership-grace", FLAG_DURATION_MS, &membership_grace_ms,
       "deprecated, ignored: the replica set is the known proxies, restored from --state-dir",
       "DURATION"},
      {"node-retention", FLAG_DURATION_MS, &node_retention_ms,
       "forget nodes disconnected this long (status, default 1h)", "DURATION"},
      FLAG_GROUP_DEF("Replicas and leader election (several syncd replicas)"),
      {"replica-id", FLAG_STRING, &replica_id,
       "this replica's name in Status and the Lease (default: $POD_NAME, else the host name)",
       "NAME"},
      {"leader-election", FLAG_STRING, &election,
       "kubernetes source: only the holder of a coordination.k8s.io/v1 Lease writes Ingress "
       "status (default on)",
       "on|off"},
      {"lease-name", FLAG_STRING, &lease_name, "the Lease (default edge-syncd)", "NAME"},
      {"lease-namespace", FLAG_STRING, &lease_ns,
       "its namespace (default: $POD_NAMESPACE, the service account's, else default)", "NS"},
      {"lease-duration", FLAG_DURATION_MS, &lease_duration,
       "how long a holder that stopped renewing keeps it (default 15s)", "DURATION"},
      {"lease-renew-deadline", FLAG_DURATION_MS, &lease_renew,
       "a leader that could not renew this long stops writing (default 10s)", "DURATION"},
      {"lease-retry-period", FLAG_DURATION_MS, &lease_retry,
       "one Lease round (renew or try to acquire) this often (default 2s)", "DURATION"},
      FLAG_GROUP_DEF("Transport security (mTLS)"),
      {"cert", FLAG_STRING, &cert, "server certificate (PEM) for mTLS", "FILE"},
      {"key", FLAG_STRING, &key, "server private key (PEM) for mTLS", "FILE"},
      {"ca", FLAG_STRING, &ca, "CA (PEM) that client certificates must chain to", "FILE"},
      {"insecure", FLAG_BOOL, &insecure,
       "plaintext gRPC without identities (instead of --cert/--key/--ca); --listen must be "
       "loopback",
       NULL},
      {"insecure-allow-remote", FLAG_BOOL, &insecure_remote,
       "allow --insecure on a non-loopback --listen (anyone who can connect is any node)", NULL},
      FLAG_GROUP_DEF("Certificates"),
      {"default-cert", FLAG_STRING, &default_cert, "default TLS certificate (PEM)", "FILE"},
      {"default-key", FLAG_STRING, &default_key, "default TLS key (PEM)", "FILE"},
      {"affinity-secret-file", FLAG_STRING, &affinity_secret_file,
       "secret (16..64 bytes) affinity-cookie keys are derived from; share it between syncd "
       "replicas (default: generated in --state-dir)",
       "FILE"},
      {"expiry-warning", FLAG_STRING, &expiry_warning,
       "flag certificates expiring within this (default 14d; units d, h, m, s)", "DURATION"},
      {"ocsp", FLAG_STRING, &ocsp,
       "on: fetch OCSP responses from the responders certificates name (AIA) and staple them; "
       "off: never (default on)",
       "on|off"},
      {"ocsp-timeout", FLAG_DURATION_MS, &ocsp_timeout_ms,
       "longest an OCSP fetch may take (default 5s)", "DURATION"},
      {"ocsp-min-refresh", FLAG_DURATION_MS, &ocsp_min_refresh_ms,
       "never refetch a good OCSP answer sooner than this (default 60s; answers are refetched "
       "half-way to their nextUpdate)",
       "DURATION"},
      FLAG_GROUP_DEF("Gateway API"),
      {"gateway-http-ports", FLAG_STRING, &gw_http,
       "ports clients reach the proxies' HTTP listener on (default 80)", "P[,P]"},
      {"gateway-https-ports", FLAG_STRING, &gw_https,
       "ports clients reach the proxies' HTTPS listener on (default 443)", "P[,P]"},
      FLAG_GROUP_DEF("Logging"),
      {"log-level", FLAG_STRING, &level, "debug, info, warn or error (default info)", "LEVEL"},
  };
  const size_t ndefs = sizeof(defs) / sizeof(defs[0]);
  char err[512];
  int rc = flags_parse(defs, ndefs, argc, argv, NULL, 0, NULL, err, sizeof(err));
  if (rc == FLAGS_HELP) {
    flags_usage(stdout, "syncd", SYNOPSIS, DESCRIPTION, defs, ndefs);
    return 0;
  }
  if (rc != FLAGS_OK) {
    fprintf(stderr, "syncd: %s\n", err);
    return 2;
  }
  enum log_level lvl;
  if (log_parse_level(level, &lvl) != 0) {
    fprintf(stderr, "syncd: --log-level: unknown level %s\n", level);
    return 2;
  }
  int have_tls = cert || key || ca;
  if (insecure == have_tls) {
    fprintf(stderr, "syncd: choose exactly one of --cert/--key/--ca (mTLS) or --insecure\n");
    return 2;
  }
  if (insecure && !insecure_remote && !addr_is_loopback(listen)) {
    fprintf(stderr,
            "syncd: --insecure serves plaintext without identities: --listen=%s must be a "
            "loopback address (or add --insecure-allow-remote)\n",
            listen);
    return 2;
  }
  if (have_tls && !(cert && key && ca)) {
    fprintf(stderr, "syncd: mTLS needs all of --cert, --key and --ca\n");
    return 2;
  }
  if (strcmp(ocsp, "on") != 0 && strcmp(ocsp, "off") != 0) {
    fprintf(stderr, "syncd: --ocsp: want on or off, got %s\n", ocsp);
    return 2;
  }
  if (!default_cert != !default_key) {
    fprintf(stderr, "syncd: --default-cert and --default-key go together\n");
    return 2;
  }
  char *unit;
  long long warn = strtoll(expiry_warning, &unit, 10);
  long long mult = !strcmp(unit, "d")   ? 86400
                   : !strcmp(unit, "h") ? 3600
                   : !strcmp(unit, "m") ? 60
                   : !strcmp(unit, "s") ? 1
                                        : 0;
  if (unit == expiry_warning || warn < 0 || mult == 0 || warn > 36500LL * 86400) {
    fprintf(stderr, "syncd: --expiry-warning: want a duration like 14d, 48h or 3600s, got %s\n",
            expiry_warning);
    return 2;
  }
  uint32_t gw_http_ports[9] = {0}, gw_https_ports[9] = {0};
  if (parse_ports(gw_http, gw_http_ports) < 0 || parse_ports(gw_https, gw_https_ports) < 0) {
    fprintf(stderr, "syncd: --gateway-http(s)-ports: want up to 8 ports like 80,8080\n");
    return 2;
  }
  if (strcmp(election, "on") != 0 && strcmp(election, "off") != 0) {
    fprintf(stderr, "syncd: --leader-election: on or off, got %s\n", election);
    return 2;
  }
  if (!(lease_retry < lease_renew && lease_renew < lease_duration)) {
    fprintf(stderr,
            "syncd: want --lease-retry-period < --lease-renew-deadline < "
            "--lease-duration\n");
    return 2;
  }
  if (removal_timeout_ms < 1000) {
    fprintf(stderr, "syncd: --replica-removal-timeout: at least 1s\n");
    return 2;
  }
  log_init("syncd");
  log_set_level(lvl);
  signal(SIGPIPE, SIG_IGN);

  struct syncd sd = {.loop = uv_default_loop(), .state_dir = state_dir};
  if (replica_id && *replica_id)
    snprintf(sd.replica, sizeof(sd.replica), "%s", replica_id);
  else
    default_replica_id(sd.replica, sizeof(sd.replica));
  LOG_INFO("started",
           "build=%s replica=%s source=%s listen=%s admin=%s state_dir=%s tls=%s kubeconfig=%s "
           "publish_address=%s log_level=%s expiry_warning=%s replica_removal_timeout_ms=%u "
           "leader_election=%s",
           SYNCD_BUILD, log_q(sd.replica), log_q(source), log_q(listen), log_q(admin),
           log_q(state_dir ? state_dir : ""), insecure ? "insecure" : "mtls",
           log_q(kubeconfig ? kubeconfig : ""), log_q(publish ? publish : ""), level,
           log_q(expiry_warning), removal_timeout_ms, election);
  if (membership_grace_ms)
    LOG_WARN("deprecated_flag", "flag=membership-grace reason=%s",
             log_q("ignored: the replica set is the known proxies, restored from --state-dir"));
  if (insecure)
    LOG_WARN("insecure", "reason=%s remote=%s",
             log_q("gRPC is plaintext without identities: anyone who connects is any node"),
             insecure_remote ? "allowed" : "refused");

  if (state_dir) {
    /* persistence that cannot work is a start-up error, not a log line */
    rc = statedir_prepare(state_dir, err, sizeof(err));
    if (rc < 0) {
      fprintf(stderr, "syncd: --state-dir=%s: %s\n", state_dir, err);
      LOG_ERROR("state_dir_unusable", "state_dir=%s reason=%s", log_q(state_dir), log_q(err));
      return 2;
    }
    if (rc == 1) LOG_INFO("state_dir_created", "state_dir=%s mode=0700", log_q(state_dir));
  }
  sd.metrics = metrics_registry_new();
  if (!sd.metrics || store_new(&sd.store) != 0) {
    fprintf(stderr, "syncd: out of memory\n");
    return 1;
  }
  if (state_dir) {
    struct persist_info pi;
    rc = persist_open(sd.loop, state_dir, sd.store, &sd.persist, &pi, err, sizeof(err));
    if (rc != 0) {
      fprintf(stderr, "syncd: --state-dir=%s: %s\n", state_dir, err);
      LOG_ERROR("state_dir_failed", "err=%s", log_q(err));
      return 1;
    }
    if (pi.quarantined) /* a damaged state is not fatal: the source rebuilds it */
      LOG_ERROR("state_corrupt", "err=%s", log_q(pi.problem));
    if (pi.dropped)
      LOG_WARN("state_torn_tail", "dropped_bytes=%llu problem=%s records=%llu",
               (unsigned long long)pi.dropped, log_q(pi.problem), (unsigned long long)pi.records);
    if (pi.restored)
      LOG_INFO("state_restored",
               "version=%" PRIu64 " seq=%" PRIu64 " resources=%zu records=%llu migrated=%d",
               store_version(sd.store), store_seq(sd.store), store_count(sd.store),
               (unsigned long long)pi.records, pi.migrated);
    else
      LOG_INFO("state_empty", "state_dir=%s", log_q(state_dir));
  }

  sd.rejected = metrics_gauge(sd.metrics, "edge_syncd_rejected_objects",
                              "Objects rejected by translation.", "");
  metrics_gauge_fn(sd.metrics, "edge_syncd_version",
                   "Current configuration version (a digest of its content).", "", gauge_version,
                   &sd);
  metrics_gauge_fn(sd.metrics, "edge_syncd_source_generation",
                   "Source generation of the current version (highest resourceVersion, or the "
                   "directory scan time in ms): what orders versions.",
                   "", gauge_generation, &sd);
  metrics_gauge_fn(sd.metrics, "edge_syncd_state_written_bytes",
                   "Bytes written to the state journal since start (records and compactions).", "",
                   state_bytes_written, &sd);
  metrics_gauge_fn(sd.metrics, "edge_syncd_state_journal_bytes", "Size of the state journal file.",
                   "", state_journal_bytes, &sd);
  metrics_gauge_fn(sd.metrics, "edge_syncd_state_compactions",
                   "State journal compactions since start.", "", state_compactions, &sd);
  if (rpc_runtime_new(sd.loop, &sd.rt) != 0 || config_sync_new(sd.store, sd.metrics, &sd.cs) != 0 ||
      membership_new(&(struct membership_opts){.state_dir = state_dir,
                                               .removal_timeout_ms = removal_timeout_ms,
                                               .replica_id = sd.replica},
                     sd.metrics, &sd.mb) != 0 ||
      status_new(sd.store, sd.cs, sd.mb, SYNCD_BUILD, (int64_t)time(NULL), source_status, &sd,
                 &sd.status) != 0) {
    fprintf(stderr, "syncd: cannot initialise\n");
    return 1;
  }
  metrics_gauge_fn(sd.metrics, "edge_syncd_connected_nodes", "Nodes connected now.",
                   "kind=\"l7proxy\"", gauge_l7, &sd);
  status_set_expiry_warning(sd.status, warn * mult);
  status_start_expiry(sd.status, sd.loop, sd.metrics);
  metrics_gauge_fn(sd.metrics, "edge_syncd_connected_nodes", "Nodes connected now.",
                   "kind=\"l4lb\"", gauge_l4, &sd);
  status_set_replica(sd.status, sd.replica, leader_for_status, &sd);
  metrics_gauge_fn(sd.metrics, "edge_syncd_leader",
                   "1 while this replica holds the Lease (writes Ingress status).", "",
                   gauge_leader, &sd);
  update_object_gauges(&sd);
  /* identities and roles come from the client certificates (syncd/authz.h) */
  if (authz_new(!insecure, sd.metrics, &sd.authz) != 0) {
    fprintf(stderr, "syncd: out of memory\n");
    return 1;
  }
  config_sync_set_authz(sd.cs, sd.authz);
  membership_set_authz(sd.mb, sd.authz);
  status_set_authz(sd.status, sd.authz);
  /* The replica set is the known proxies: a restarted syncd tells the
   * l4lbs the set it had, not "nobody", before any proxy reconnects. */
  rc = membership_restore(sd.mb, err, sizeof(err));
  if (rc < 0)
    LOG_ERROR("replicas_corrupt", "err=%s", log_q(err));
  else if (state_dir)
    LOG_INFO("replicas_restored", "count=%d version=%" PRIu64, rc, membership_version(sd.mb));
  config_sync_on_node_event(sd.cs, membership_node_event, sd.mb);
  membership_start(sd.mb, sd.loop);

  struct rpc_server_opts so = {
      .listen = listen,
      .creds = {.cert_file = cert, .key_file = key, .ca_file = ca, .insecure = insecure}};
  if (rpc_server_new(sd.rt, &so, &sd.srv, err, sizeof(err)) != 0 ||
      config_sync_register(sd.cs, sd.srv) != 0 || membership_register(sd.mb, sd.srv) != 0 ||
      status_register(sd.status, sd.srv) != 0 ||
      syncd_explain_register(sd.store, sd.authz, sd.srv) != 0 ||
      rpc_server_start(sd.srv, err, sizeof(err)) != 0) {
    fprintf(stderr, "syncd: --listen=%s: %s\n", listen, err);
    LOG_ERROR("listen_failed", "listen=%s err=%s", log_q(listen), log_q(err));
    return 1;
  }
  if (admin_start(sd.loop, admin, sd.metrics, &sd.admin, err, sizeof(err)) != 0) {
    fprintf(stderr, "syncd: --admin=%s: %s\n", admin, err);
    LOG_ERROR("admin_failed", "admin=%s err=%s", log_q(admin), log_q(err));
    return 1;
  }
  admin_handle(sd.admin, "/config", handle_config, &sd);
  admin_set_ready(sd.admin, store_version(sd.store) > 0);
  LOG_INFO("listening", "grpc_port=%d admin_port=%d version=%" PRIu64, rpc_server_port(sd.srv),
           admin_port(sd.admin), store_version(sd.store));

  char dcert[4096], dkey[4096];
  if (!default_cert && state_dir) {
    if (ensure_default_cert(state_dir, dcert, dkey, sizeof(dcert), err, sizeof(err)) != 0) {
      /* a new default certificate at every start would change the version */
      fprintf(stderr, "syncd: --state-dir=%s: default certificate: %s\n", state_dir, err);
      LOG_ERROR("default_cert_not_persisted", "err=%s", log_q(err));
      return 1;
    }
    default_cert = dcert;
    default_key = dkey;
  }
  if (source && strcmp(source, "kubernetes") == 0 && strcmp(election, "on") == 0) {
    struct leader_opts lo = {.kubeconfig = kubeconfig,
                             .lease_namespace = lease_ns,
                             .lease_name = lease_name,
                             .duration_ms = lease_duration,
                             .renew_deadline_ms = lease_renew,
                             .retry_ms = lease_retry};
    if (start_leader_election(&sd, &lo) != 0) return 1;
  }
  uint8_t aff_secret[64];
  size_t aff_len = 0;
  if (load_affinity_secret(affinity_secret_file, state_dir, aff_secret, &aff_len, err,
                           sizeof(err)) != 0) {
    fprintf(stderr, "syncd: --affinity-secret-file: %s\n", err);
    return 1;
  }
  struct syncd_source_opts o = {.leader = sd.leader,
                                .affinity_secret = aff_secret,
                                .affinity_secret_len = aff_len,
                                .spec = source,
                                .kubeconfig = kubeconfig,
                                .publish_address = publish,
                                .debounce_ms = debounce_ms,
                                .max_delay_ms = max_delay_ms,
                                .default_cert_file = default_cert,
                                .default_key_file = default_key,
                                .gateway_http_ports = gw_http_ports,
                                .gateway_https_ports = gw_https_ports};
  if (!strcmp(ocsp, "on")) {
    struct ocsp_stapler_opts oo = {
        .timeout_ms = ocsp_timeout_ms,
        .min_refresh_s = ocsp_min_refresh_ms / 1000 ? ocsp_min_refresh_ms / 1000 : 1,
        .metrics = sd.metrics};
    if (ocsp_stapler_new(sd.loop, &oo, on_ocsp_changed, &sd, &sd.ocsp) != 0) {
      fprintf(stderr, "syncd: out of memory\n");
      return 1;
    }
  }
  struct syncd_source_callbacks cb = {.on_update = on_update};
  if (syncd_source_start(sd.loop, &o, &cb, &sd, &sd.source, err, sizeof(err)) != 0) {
    fprintf(stderr, "syncd: --source=%s: %s\n", source, err);
    LOG_ERROR("source_failed", "source=%s err=%s", log_q(source), log_q(err));
    return 1;
  }

  uv_signal_init(sd.loop, &sd.sigterm);
  uv_signal_init(sd.loop, &sd.sigint);
  sd.sigterm.data = sd.sigint.data = &sd;
  sd.node_retention_s = node_retention_ms / 1000;
  uv_timer_init(sd.loop, &sd.prune_timer);
  sd.prune_timer.data = &sd;
  uv_timer_start(&sd.prune_timer, on_prune, PRUNE_EVERY_MS, PRUNE_EVERY_MS);
  uv_signal_start(&sd.sigterm, on_signal, SIGTERM);
  uv_signal_start(&sd.sigint, on_signal, SIGINT);

  uv_run(sd.loop, UV_RUN_DEFAULT);

  rpc_runtime_free(sd.rt);
  status_free(sd.status);
  membership_free(sd.mb);
  config_sync_free(sd.cs);
  authz_free(sd.authz);
  store_free(sd.store);
  metrics_registry_free(sd.metrics);
  uv_run(sd.loop, UV_RUN_NOWAIT);
  uv_loop_close(sd.loop);
  LOG_INFO("stopped", "%s", "");
  return 0;
}
