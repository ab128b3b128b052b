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
 * file is loaded and the gRPC server started before the source is read, so
 * proxies reconnecting to a restarted syncd get the restored version
 * immediately. /readyz turns ready once a state is loaded or restored.
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

#include "common/admin.h"
#include "common/fileio.h"
#include "common/flags.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/rpc.h"
#include "edge/v1/status.pb-c.h"
#include "syncd/config_sync.h"
#include "common/cert.h"
#include "syncd/explain.h"
#include "syncd/membership.h"
#include "syncd/source.h"
#include "syncd/status.h"
#include "syncd/store.h"

#define SYNCD_BUILD "edge-syncd/0.1.0"

struct syncd {
  uv_loop_t *loop;
  const char *state_dir;
  struct store *store;
  struct metrics_registry *metrics;
  struct rpc_runtime *rt;
  struct rpc_server *srv;
  struct config_sync *cs;
  struct membership *mb;
  struct status *status;
  struct admin_server *admin;
  struct syncd_source *source;
  uv_signal_t sigterm, sigint;
  int stopping;
  int closing; /* asynchronous closes still running */
  struct metrics_gauge *rejected;
};

/* ---- metrics ------------------------------------------------------------ */

static double gauge_version(void *arg) {
  struct syncd *sd = arg;
  return (double)store_version(sd->store);
}

static double gauge_l7(void *arg) {
  struct syncd *sd = arg;
  return (double)config_sync_connected(sd->cs);
}

static double gauge_l4(void *arg) {
  struct syncd *sd = arg;
  return (double)membership_connected(sd->mb);
}

/* Object and rejection gauges from the meta blob (a packed StatusResponse). */
static void update_object_gauges(struct syncd *sd) {
  size_t len;
  const uint8_t *meta = store_meta(sd->store, &len);
  Edge__V1__StatusResponse *m = len ? edge__v1__status_response__unpack(NULL, len, meta) : NULL;
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
  edge__v1__status_response__free_unpacked(m, NULL);
}

/* ---- desired state → store ---------------------------------------------- */

/* Ignored Ingresses (not our IngressClass) for explain: location holds
 * their comma-separated hosts (model.h), which become the hosts field. */
static int explain_meta_ignored(const struct syncd_desired *d, Edge__V1__RejectedObject *io,
                                Edge__V1__RejectedObject **iop, char ***hosts, size_t *n_hosts) {
  for (size_t i = 0; i < d->n_ignored; i++) {
    const struct syncd_rejection *j = &d->ignored[i];
    edge__v1__rejected_object__init(&io[i]);
    io[i].kind = j->kind ? j->kind : "";
    io[i].namespace_ = j->ns ? j->ns : "";
    io[i].name = j->name ? j->name : "";
    io[i].reason = j->reason ? j->reason : "";
    io[i].location = "";
    iop[i] = &io[i];
    const char *p = j->location ? j->location : "";
    size_t cnt = 0;
    for (const char *q = p; *q; q++) cnt += *q == ',';
    io[i].hosts = calloc(cnt + 2, sizeof(char *));
    if (!io[i].hosts) return -1;
    while (*p) {
      size_t l = strcspn(p, ",");
      char **nh = realloc(*hosts, (*n_hosts + 1) * sizeof(*nh));
      if (!nh) return -1;
      *hosts = nh;
      if (!(nh[*n_hosts] = strndup(p, l))) return -1;
      io[i].hosts[io[i].n_hosts++] = nh[(*n_hosts)++];
      p += l + (p[l] == ',');
    }
  }
  return 0;
}

/* Packs object counts and rejected objects as the store's meta. */
static int pack_meta(const struct syncd_desired *d, uint8_t **out, size_t *len) {
  Edge__V1__StatusResponse r = EDGE__V1__STATUS_RESPONSE__INIT;
  Edge__V1__ObjectCount *oc = calloc(d->n_counts + 1, sizeof(*oc));
  Edge__V1__ObjectCount **ocp = calloc(d->n_counts + 1, sizeof(*ocp));
  Edge__V1__RejectedObject *ro = calloc(d->n_rejected + 1, sizeof(*ro));
  Edge__V1__RejectedObject **rop = calloc(d->n_rejected + 1, sizeof(*rop));
  Edge__V1__RejectedObject *io = calloc(d->n_ignored + 1, sizeof(*io));
  Edge__V1__RejectedObject **iop = calloc(d->n_ignored + 1, sizeof(*iop));
  char **hosts = NULL; /* split copies of the ignored objects' host lists */
  size_t n_hosts = 0;
  int rc = -1;
  if (!oc || !ocp || !ro || !rop || !io || !iop) goto out;
  if (explain_meta_ignored(d, io, iop, &hosts, &n_hosts) != 0) goto out;
  r.n_ignored = d->n_ignored;
  r.ignored = iop;
  for (size_t i = 0; i < d->n_counts; i++) {
    edge__v1__object_count__init(&oc[i]);
    oc[i].kind = d->counts[i].kind;
    oc[i].count = d->counts[i].count;
    ocp[i] = &oc[i];
  }
  for (size_t i = 0; i < d->n_rejected; i++) {
    const struct syncd_rejection *j = &d->rejected[i];
    edge__v1__rejected_object__init(&ro[i]);
    ro[i].kind = j->kind ? j->kind : "";
    ro[i].namespace_ = j->ns ? j->ns : "";
    ro[i].name = j->name ? j->name : "";
    ro[i].reason = j->reason ? j->reason : "";
    ro[i].location = j->location ? j->location : "";
    rop[i] = &ro[i];
  }
  r.n_objects = d->n_counts;
  r.objects = ocp;
  r.n_rejected = d->n_rejected;
  r.rejected = rop;
  *len = edge__v1__status_response__get_packed_size(&r);
  *out = malloc(*len ? *len : 1);
  if (*out) {
    edge__v1__status_response__pack(&r, *out);
    rc = 0;
  }
out:
  free(oc);
  free(ocp);
  free(ro);
  free(rop);
  for (size_t i = 0; i < d->n_ignored && io; i++) free(io[i].hosts);
  free(io);
  free(iop);
  for (size_t i = 0; i < n_hosts; i++) free(hosts[i]);
  free(hosts);
  return rc;
}

static void on_desired(void *ud, struct syncd_desired *d) {
  struct syncd *sd = ud;
  if (sd->stopping) {
    syncd_desired_free(d);
    return;
  }
  int rc = store_apply(sd->store, d->resources, d->n_resources);
  if (rc < 0) {
    LOG_ERROR("state_rejected", "err=%s resources=%zu", log_q(store_strerror(rc)), d->n_resources);
    syncd_desired_free(d);
    return;
  }
  int meta_changed = 0;
  uint8_t *meta;
  size_t meta_len, old_len;
  if (pack_meta(d, &meta, &meta_len) == 0) {
    const uint8_t *old = store_meta(sd->store, &old_len);
    if (old_len != meta_len || (meta_len && memcmp(old, meta, meta_len) != 0)) {
      store_set_meta(sd->store, meta, meta_len);
      meta_changed = 1;
    }
    free(meta);
  }
  if (rc == 1)
    LOG_INFO("version", "version=%" PRIu64 " resources=%zu rejected=%zu", store_version(sd->store),
             store_count(sd->store), d->n_rejected);
  /* Persist before pushing: a version a proxy has applied must survive a
   * restart, or a restarted syncd could hand out the same number for
   * different contents. */
  if ((rc == 1 || meta_changed) && sd->state_dir) {
    char err[512];
    if (store_save(sd->store, sd->state_dir, err, sizeof(err)) != 0)
      LOG_ERROR("state_save_failed", "err=%s", log_q(err));
  }
  update_object_gauges(sd);
  if (rc == 1) status_refresh_expiry(sd->status);
  syncd_desired_free(d);
  admin_set_ready(sd->admin, 1);
  if (rc == 1) config_sync_notify(sd->cs);
}

static void source_status(void *ud, char *name, size_t namelen, int *healthy, char *msg,
                          size_t msglen, int64_t *last_sync) {
  struct syncd *sd = ud;
  if (sd->source) syncd_source_status(sd->source, name, namelen, healthy, msg, msglen, last_sync);
}

static void on_replicas_changed(void *ud) {
  struct syncd *sd = ud;
  membership_refresh(sd->mb);
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
  sd->closing = 6;
  status_stop(sd->status, closed_one, sd);
  uv_close((uv_handle_t *)&sd->sigterm, signal_closed);
  uv_close((uv_handle_t *)&sd->sigint, signal_closed);
  if (sd->source) {
    syncd_source_stop(sd->source, closed_one, sd);
    sd->source = NULL;
  } else {
    closed_one(sd);
  }
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

int main(int argc, char **argv) {
  const char *source = "dir:deploy/examples", *listen = "127.0.0.1:7000";
  const char *admin = "127.0.0.1:7001", *state_dir = NULL;
  const char *cert = NULL, *key = NULL, *ca = NULL, *kubeconfig = NULL, *publish = NULL;
  const char *default_cert = NULL, *default_key = NULL, *level = "info";
  const char *affinity_secret_file = NULL;
  const char *expiry_warning = "14d";
  int insecure = 0;
  uint32_t debounce_ms = 0, max_delay_ms = 0, membership_grace_ms = 5000;
  int restored = 0;
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
      {"state-dir", FLAG_STRING, &state_dir, "directory for the persisted last good state", "DIR"},
      {"membership-grace", FLAG_DURATION_MS, &membership_grace_ms,
       "after a restart from --state-dir, hold the replica set back this long so proxies "
       "reconnect first (default 5s; 0 = off)",
       "DURATION"},
      FLAG_GROUP_DEF("Transport security (mTLS)"),
      {"cert", FLAG_STRING, &cert, "server certificate (PEM) for mTLS", "FILE"},
      {"key", FLAG_STRING, &key, "server private key (PEM) for mTLS", "FILE"},
      {"ca", FLAG_STRING, &ca, "CA (PEM) that client certificates must chain to", "FILE"},
      {"insecure", FLAG_BOOL, &insecure, "plaintext gRPC (instead of --cert/--key/--ca)", NULL},
      FLAG_GROUP_DEF("Certificates"),
      {"default-cert", FLAG_STRING, &default_cert, "default TLS certificate (PEM)", "FILE"},
      {"default-key", FLAG_STRING, &default_key, "default TLS key (PEM)", "FILE"},
      {"affinity-secret-file", FLAG_STRING, &affinity_secret_file,
       "secret (16..64 bytes) affinity-cookie keys are derived from; share it between syncd "
       "replicas (default: generated in --state-dir)",
       "FILE"},
      {"expiry-warning", FLAG_STRING, &expiry_warning,
       "flag certificates expiring within this (default 14d; units d, h, m, s)", "DURATION"},
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
  if (have_tls && !(cert && key && ca)) {
    fprintf(stderr, "syncd: mTLS needs all of --cert, --key and --ca\n");
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
  log_init("syncd");
  log_set_level(lvl);
  signal(SIGPIPE, SIG_IGN);

  struct syncd sd = {.loop = uv_default_loop(), .state_dir = state_dir};
  LOG_INFO("started",
           "build=%s source=%s listen=%s admin=%s state_dir=%s tls=%s kubeconfig=%s "
           "publish_address=%s log_level=%s expiry_warning=%s",
           SYNCD_BUILD, log_q(source), log_q(listen), log_q(admin),
           log_q(state_dir ? state_dir : ""), insecure ? "insecure" : "mtls",
           log_q(kubeconfig ? kubeconfig : ""), log_q(publish ? publish : ""), level,
           log_q(expiry_warning));
  if (insecure) LOG_WARN("insecure", "%s", "gRPC is plaintext: anyone can read configuration");

  sd.metrics = metrics_registry_new();
  if (!sd.metrics || store_new(&sd.store) != 0) {
    fprintf(stderr, "syncd: out of memory\n");
    return 1;
  }
  if (state_dir) {
    rc = store_load(sd.store, state_dir, err, sizeof(err));
    if (rc == 0) {
      restored = 1;
      LOG_INFO("state_restored", "version=%" PRIu64 " resources=%zu", store_version(sd.store),
               store_count(sd.store));
    } else if (rc == STORE_NO_STATE) {
      LOG_INFO("state_empty", "state_dir=%s", log_q(state_dir));
    } else {
      /* A damaged file is not fatal: start empty, the source rebuilds it. */
      LOG_ERROR("state_corrupt", "err=%s", log_q(err));
    }
  }

  if (store_version(sd.store) == 0) {
    /* No saved state: number this history from the wall clock (ms), so a
     * proxy's cached version from an earlier, lost history never equals
     * one of ours by accident (store.h). */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    store_set_first_version(sd.store, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
  }

  sd.rejected = metrics_gauge(sd.metrics, "edge_syncd_rejected_objects",
                              "Objects rejected by translation.", "");
  metrics_gauge_fn(sd.metrics, "edge_syncd_version", "Current configuration version.", "",
                   gauge_version, &sd);
  if (rpc_runtime_new(sd.loop, &sd.rt) != 0 || config_sync_new(sd.store, sd.metrics, &sd.cs) != 0 ||
      membership_new(sd.cs, sd.metrics, &sd.mb) != 0 ||
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
  update_object_gauges(&sd);
  config_sync_on_replicas_changed(sd.cs, on_replicas_changed, &sd);
  /* A restarted syncd knows no proxies yet: telling the l4lbs "no replicas"
   * now would empty their tables until the proxies reconnect. */
  if (restored) membership_hold(sd.mb, sd.loop, membership_grace_ms);

  struct rpc_server_opts so = {
      .listen = listen,
      .creds = {.cert_file = cert, .key_file = key, .ca_file = ca, .insecure = insecure}};
  if (rpc_server_new(sd.rt, &so, &sd.srv, err, sizeof(err)) != 0 ||
      config_sync_register(sd.cs, sd.srv) != 0 || membership_register(sd.mb, sd.srv) != 0 ||
      status_register(sd.status, sd.srv) != 0 || syncd_explain_register(sd.store, sd.srv) != 0 ||
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
    if (ensure_default_cert(state_dir, dcert, dkey, sizeof(dcert), err, sizeof(err)) == 0) {
      default_cert = dcert;
      default_key = dkey;
    } else {
      LOG_WARN("default_cert_not_persisted", "err=%s", log_q(err));
    }
  }
  uint8_t aff_secret[64];
  size_t aff_len = 0;
  if (load_affinity_secret(affinity_secret_file, state_dir, aff_secret, &aff_len, err,
                           sizeof(err)) != 0) {
    fprintf(stderr, "syncd: --affinity-secret-file: %s\n", err);
    return 1;
  }
  struct syncd_source_opts o = {.spec = source,
                                .affinity_secret = aff_secret,
                                .affinity_secret_len = aff_len,
                                .kubeconfig = kubeconfig,
                                .publish_address = publish,
                                .debounce_ms = debounce_ms,
                                .max_delay_ms = max_delay_ms,
                                .default_cert_file = default_cert,
                                .default_key_file = default_key};
  struct syncd_source_callbacks cb = {.on_update = on_desired};
  if (syncd_source_start(sd.loop, &o, &cb, &sd, &sd.source, err, sizeof(err)) != 0) {
    fprintf(stderr, "syncd: --source=%s: %s\n", source, err);
    LOG_ERROR("source_failed", "source=%s err=%s", log_q(source), log_q(err));
    return 1;
  }

  uv_signal_init(sd.loop, &sd.sigterm);
  uv_signal_init(sd.loop, &sd.sigint);
  sd.sigterm.data = sd.sigint.data = &sd;
  uv_signal_start(&sd.sigterm, on_signal, SIGTERM);
  uv_signal_start(&sd.sigint, on_signal, SIGINT);

  uv_run(sd.loop, UV_RUN_DEFAULT);

  rpc_runtime_free(sd.rt);
  status_free(sd.status);
  membership_free(sd.mb);
  config_sync_free(sd.cs);
  store_free(sd.store);
  metrics_registry_free(sd.metrics);
  uv_run(sd.loop, UV_RUN_NOWAIT);
  uv_loop_close(sd.loop);
  LOG_INFO("stopped", "%s", "");
  return 0;
}
