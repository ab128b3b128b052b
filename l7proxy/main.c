/*
 * l7proxy — the L7 proxy daemon: flags, configuration sources, workers,
 * admin endpoint, signals.
 *
 * The main thread owns the configuration (--config=FILE, re-read on
 * SIGHUP; the on-disk cache in --cache-dir) and the admin endpoint, and
 * publishes snapshots with l7_snapshot_publish. N worker threads (see
 * worker.h) serve --http (and --https), each on its own SO_REUSEPORT
 * sockets.
 *
 * HTTPS: every snapshot carries the TLS store of its own certificates
 * (config_store builds both, in one step, from the previous ones: an
 * unchanged certificate keeps its entry, a certificate is decoded on its
 * first handshake), so one publish switches routes and certificates
 * together: new handshakes use it at once, existing connections keep
 * theirs. A timer rotates the session ticket keys every
 * --tls-ticket-rotate. Nothing polls: readiness follows the publishes, and
 * a timer runs only while draining.
 * A certificate the store finds unusable costs only its own names (they
 * get the default certificate): it is listed under "certificate_problems"
 * in /config and sent to syncd in the Ack (Status shows it per node).
 * /readyz stays 503 while an HTTPS listener has no store.
 *
 * SIGTERM/SIGINT: /readyz turns 503, workers stop accepting and finish
 * in-flight requests, and the process exits 0 when they are done or when
 * --drain-timeout passes (whichever comes first).
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#include "l7proxy/access_log.h"
#include "l7proxy/config_client.h"
#include "l7proxy/config_store.h"
#include "l7proxy/health_check.h"
#include "l7proxy/limits.h"
#include "l7proxy/snapshot.h"
#include "l7proxy/tls.h"
#include "l7proxy/trace_export.h"
#include "l7proxy/worker.h"

#define L7_VERSION "0.1.0"
#define MAX_WORKERS 256

struct app {
  uv_loop_t *loop;
  struct admin_server *admin;
  struct metrics_registry *metrics;
  struct l7_config_store *store;
  struct rpc_runtime *rpc;
  struct l7_config_client *client;
  const char *config_file;
  struct worker *workers[MAX_WORKERS];
  int n_workers;
  uv_signal_t sigterm, sigint, sighup, sigusr1;
  struct access_log *alog;     /* --access-log (NULL: off) */
  struct trace_export *tracer; /* --trace-otlp (NULL: off) */
  uv_timer_t tick;             /* runs only while draining */
  uv_timer_t ticket_timer;
  int tls_enabled;
  char **problems; /* "certificate NAME: REASON" of the current store */
  size_t n_problems;
  uint32_t drain_timeout_ms;
  uint64_t drain_started;
  int draining;
  int exiting;
  struct metrics_counter *config_reloads_ok, *config_reloads_failed;
  struct hc_checker *hc; /* active health checks (issue 20), one per process */
  uint64_t hc_gen;       /* snapshot generation the checker follows */
};

/* The health checker follows every published snapshot. */
static void health_sync(struct app *a) {
  uint64_t gen = l7_snapshot_generation();
  if (!a->hc || gen == a->hc_gen) return;
  a->hc_gen = gen;
  struct l7_snapshot *snap = l7_snapshot_current();
  hc_checker_sync(a->hc, snap);
  l7_snapshot_unref(snap);
}

static void free_problems(struct app *a) {
  for (size_t i = 0; i < a->n_problems; i++) free(a->problems[i]);
  free(a->problems);
  a->problems = NULL;
  a->n_problems = 0;
}

/* The current TLS store's unusable certificates as lines (for the Ack and
 * /config); a lazy store finds them on their first handshake. */
static void refresh_problems(struct app *a) {
  free_problems(a);
  struct l7_snapshot *s = l7_snapshot_current();
  struct tls_store *ts = s ? l7_snapshot_tls(s) : NULL;
  size_t n = tls_store_n_problems(ts);
  a->problems = n ? calloc(n, sizeof(*a->problems)) : NULL;
  for (size_t i = 0; a->problems && i < n; i++) {
    const char *why = tls_store_problem(ts, i, NULL);
    if (!why || !(a->problems[a->n_problems] = strdup(why))) break;
    a->n_problems++;
  }
  l7_snapshot_unref(s);
}

static const char *const *app_problems(void *ud, size_t *n) {
  struct app *a = ud;
  refresh_problems(a);
  *n = a->n_problems;
  return (const char *const *)a->problems;
}

static double gauge_refused(void *ud) {
  struct l7_snapshot *s = l7_snapshot_current();
  size_t n = tls_store_n_problems(s ? l7_snapshot_tls(s) : NULL);
  l7_snapshot_unref(s);
  (void)ud;
  return (double)n;
}

/* GET /config: the snapshot (l7_config_admin_config) plus the certificates
 * the TLS store found unusable, as "certificate_problems". */
static void admin_config(void *ud, const char *path, const char *query,
                         struct admin_response *resp) {
  struct app *a = ud;
  l7_config_admin_config(NULL, path, query, resp);
  if (resp->status != 200 || !resp->body) return;
  json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);
  if (!json_is_object(root)) {
    json_decref(root);
    return;
  }
  refresh_problems(a);
  json_t *arr = json_array();
  for (size_t i = 0; i < a->n_problems; i++)
    json_array_append_new(arr, json_string(a->problems[i]));
  json_object_set_new(root, "certificate_problems", arr);
  char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(root);
  if (!text) return;
  free(resp->body);
  resp->body_len = strlen(text);
  resp->body = text;
}

/* /readyz turns 200 with the first snapshot (file, cache or syncd), and
 * with an HTTPS listener only when the snapshot carries a TLS store
 * (without one every HTTPS connection would be closed); the health checker
 * follows every snapshot published. */
static void app_ready(struct app *a) {
  health_sync(a);
  if (!a->admin || a->draining) return;
  struct l7_snapshot *s = l7_snapshot_current();
  admin_set_ready(a->admin, s != NULL && (!a->tls_enabled || l7_snapshot_tls(s) != NULL));
  l7_snapshot_unref(s);
}

static void on_push_applied(void *ud, uint64_t version) {
  (void)version;
  app_ready(ud);
}

static void on_ticket_timer(uv_timer_t *t) {
  (void)t;
  if (tls_ticket_keys_rotate() != 0) LOG_ERROR("tls_ticket_rotate_failed", "reason=%s", "rng");
}

static int load_config_file(struct app *a) {
  char err[512];
  struct l7_snapshot *snap = NULL;
  int rc = l7_config_store_load_file(a->store, a->config_file, &snap, err, sizeof(err));
  if (rc != 0) {
    LOG_ERROR("config_rejected", "file=%s reason=%s", log_q(a->config_file), log_q(err));
    if (a->config_reloads_failed) metrics_counter_inc(a->config_reloads_failed);
    return rc;
  }
  LOG_INFO("config_applied", "file=%s version=%llu", log_q(a->config_file),
           (unsigned long long)l7_snapshot_version(snap));
  l7_snapshot_publish(snap);
  app_ready(a);
  if (a->config_reloads_ok) metrics_counter_inc(a->config_reloads_ok);
  return 0;
}

static void stop_everything(struct app *a) {
  if (a->exiting) return;
  a->exiting = 1;
  for (int i = 0; i < a->n_workers; i++) worker_stop(a->workers[i]);
  uv_timer_stop(&a->tick);
  uv_close((uv_handle_t *)&a->tick, NULL);
  if (a->tls_enabled) uv_close((uv_handle_t *)&a->ticket_timer, NULL);
  uv_close((uv_handle_t *)&a->sigterm, NULL);
  uv_close((uv_handle_t *)&a->sigint, NULL);
  uv_close((uv_handle_t *)&a->sighup, NULL);
  uv_close((uv_handle_t *)&a->sigusr1, NULL);
  if (a->admin) admin_close(a->admin, NULL, NULL);
  hc_checker_close(a->hc);
  a->hc = NULL;
  if (a->client) {
    l7_config_client_close(a->client, NULL, NULL);
    a->client = NULL;
  }
}

/* While draining: are the workers done? */
static void on_tick(uv_timer_t *t) {
  struct app *a = t->data;
  if (a->draining) {
    int all = 1;
    for (int i = 0; i < a->n_workers; i++) all &= worker_drained(a->workers[i]);
    uint64_t elapsed = uv_now(a->loop) - a->drain_started;
    if (all || elapsed >= a->drain_timeout_ms) {
      LOG_INFO("drained", "complete=%s elapsed_ms=%llu", all ? "true" : "false",
               (unsigned long long)elapsed);
      stop_everything(a);
    }
  }
}

static void on_signal(uv_signal_t *s, int signum) {
  struct app *a = s->data;
  if (signum == SIGHUP) {
    if (a->config_file) load_config_file(a);
    return;
  }
  if (signum == SIGUSR1) { /* logrotate moved the access log */
    access_log_reopen(a->alog);
    return;
  }
  if (a->draining) {
    LOG_WARN("second_signal", "signal=%d action=exit_now", signum);
    stop_everything(a);
    return;
  }
  a->draining = 1;
  a->drain_started = uv_now(a->loop);
  LOG_INFO("draining", "signal=%d timeout_ms=%u", signum, a->drain_timeout_ms);
  if (a->admin) admin_set_draining(a->admin, 1);
  if (a->client) l7_config_client_set_draining(a->client, 1);
  for (int i = 0; i < a->n_workers; i++) worker_drain(a->workers[i]);
  uv_timer_start(&a->tick, on_tick, 20, 20);
}

/* The bound --https port, for /explain's http → https Locations. */
static uint16_t g_explain_https_port;

static long default_workers(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? n : 1;
}

/* Every flag, with its default. */
struct opts {
  const char *http, *https, *admin_addr, *syncd, *node_id, *config_file, *cache_dir;
  const char *advertise, *advertise_https, *zone, *log_level, *cert, *key, *ca;
  long workers, max_uri, max_header_bytes, max_headers, max_body, max_conns, retries;
  uint32_t header_timeout, idle_timeout, resp_header_timeout, body_timeout;
  uint32_t tunnel_idle_timeout, linger_timeout, drain_timeout, reconnect_max;
  int proxy_protocol, insecure, insecure_remote, access_log;
  const char *tls_min, *tls_ciphers, *tls_ciphersuites;
  int tls_no_h2, tls_no_resumption, no_h2c;
  long h2_max_streams, h2_max_resets;
  uint32_t tls_ticket_rotate, tls_handshake_timeout;
  const char *ratelimit_redis;
  uint32_t ratelimit_redis_timeout;
  struct flag_list trusted;
  const char *access_log_path, *access_log_format, *trace_otlp, *trace_sample, *trace_service;
  long access_log_buffer, trace_queue, trace_batch;
  uint32_t trace_flush;
  /* derived by check_opts */
  char host[256], https_host[256];
  uint16_t port, https_port;
  struct tls_options tls;
  struct worker_cidr cidrs[FLAG_LIST_MAX];
  enum access_log_format alog_format;
  double sample_ratio;
};

#define MAX_DEFS 64

/* The flag table over o (fills defs, returns how many). */
static size_t opts_defs(struct opts *o, struct flag_def *defs) {
  const struct flag_def table[] = {
      FLAG_GROUP_DEF("Listeners and workers"),
      {"http", FLAG_STRING, &o->http, "plain HTTP listener (default 0.0.0.0:8080)", "ADDR:PORT"},
      {"https", FLAG_STRING, &o->https,
       "HTTPS listener; certificates come from the configuration (SNI, default)", "ADDR:PORT"},
      {"admin", FLAG_STRING, &o->admin_addr, "admin endpoint: /healthz /readyz /metrics /config",
       "ADDR:PORT"},
      {"workers", FLAG_INT, &o->workers, "worker threads (default: number of cores)", "N", 1,
       MAX_WORKERS},
      {"max-connections", FLAG_INT, &o->max_conns,
       "downstream connections per worker; more are closed (default 10000)", "N", 1, 10000000},
      {"drain-timeout", FLAG_DURATION_MS, &o->drain_timeout,
       "SIGTERM: longest wait for in-flight requests (default 30s)", "DURATION"},
      FLAG_GROUP_DEF("Configuration: syncd, file, cache"),
      {"syncd", FLAG_STRING, &o->syncd,
       "control plane (ConfigSync): one address, a list of replicas, or a DNS name with several "
       "addresses; on failure the next one is tried",
       "ADDR:PORT[,ADDR:PORT...]|NAME:PORT"},
      {"insecure", FLAG_BOOL, &o->insecure, "plaintext gRPC to syncd (a loopback --syncd only)",
       NULL},
      {"insecure-allow-remote", FLAG_BOOL, &o->insecure_remote,
       "allow --insecure to a non-loopback --syncd (keys cross the network in clear)", NULL},
      {"cert", FLAG_STRING, &o->cert, "client certificate for syncd (PEM)", "FILE"},
      {"key", FLAG_STRING, &o->key, "client key for syncd (PEM)", "FILE"},
      {"ca", FLAG_STRING, &o->ca, "CA that signed syncd's certificate (PEM)", "FILE"},
      {"node-id", FLAG_STRING, &o->node_id, "node name sent to syncd (default: hostname)", "NAME"},
      {"advertise", FLAG_STRING, &o->advertise, "address sent in Hello (default: --http)",
       "ADDR:PORT"},
      {"advertise-https", FLAG_STRING, &o->advertise_https,
       "HTTPS address sent in Hello, where the L4 tier sends :443 (default: --https)", "ADDR:PORT"},
      {"zone", FLAG_STRING, &o->zone, "zone sent in Hello", "ZONE"},
      {"config", FLAG_STRING, &o->config_file,
       "serve this edge.v1.Snapshot file (binary or JSON); SIGHUP re-reads it", "FILE"},
      {"cache-dir", FLAG_STRING, &o->cache_dir, "directory for the last applied state", "DIR"},
      {"reconnect-max", FLAG_DURATION_MS, &o->reconnect_max,
       "longest wait between reconnects to syncd (default 1s, jittered -20%)", "DURATION"},
      FLAG_GROUP_DEF("TLS"),
      {"tls-min-version", FLAG_STRING, &o->tls_min, "lowest TLS version: 1.2|1.3 (default 1.2)",
       "V"},
      {"tls-ciphers", FLAG_STRING, &o->tls_ciphers,
       "TLS 1.2 cipher list (OpenSSL syntax; default: ECDHE with AES-GCM/CHACHA20)", "LIST"},
      {"tls-ciphersuites", FLAG_STRING, &o->tls_ciphersuites,
       "TLS 1.3 cipher suites (default: the library's)", "LIST"},
      {"tls-no-h2", FLAG_BOOL, &o->tls_no_h2, "ALPN offers only http/1.1", NULL},
      {"tls-no-resumption", FLAG_BOOL, &o->tls_no_resumption, "no session tickets", NULL},
      {"tls-ticket-rotate", FLAG_DURATION_MS, &o->tls_ticket_rotate,
       "session ticket key rotation period (default 12h)", "DURATION"},
      {"tls-handshake-timeout", FLAG_DURATION_MS, &o->tls_handshake_timeout,
       "time for a TLS handshake (default 10s)", "DURATION"},
      FLAG_GROUP_DEF("HTTP/2"),
      {"h2-max-streams", FLAG_INT, &o->h2_max_streams,
       "HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS (default 100)", "N", 1, 10000},
      {"h2-max-resets-per-sec", FLAG_INT, &o->h2_max_resets,
       "HTTP/2 client resets per second per connection before GOAWAY ENHANCE_YOUR_CALM "
       "(default 100)",
       "N", 1, 1000000},
      {"no-h2c", FLAG_BOOL, &o->no_h2c, "no cleartext HTTP/2 (prior knowledge, Upgrade) on --http",
       NULL},
      FLAG_GROUP_DEF("PROXY protocol"),
      {"proxy-protocol", FLAG_BOOL, &o->proxy_protocol,
       "expect a PROXY v1/v2 header on every connection from trusted peers", NULL},
      {"proxy-protocol-trusted", FLAG_LIST, &o->trusted,
       "peers allowed to send PROXY headers (repeatable; required with --proxy-protocol: "
       "0.0.0.0/0 and ::/0 trust every peer)",
       "CIDR"},
      FLAG_GROUP_DEF("Limits, timeouts, retries"),
      {"max-uri-bytes", FLAG_INT, &o->max_uri, "request target limit, 414 beyond (default 8192)",
       "N", 16, 1 << 20},
      {"max-header-bytes", FLAG_INT, &o->max_header_bytes,
       "request line + headers limit, 431 beyond (default 32768)", "N", 256, 1 << 24},
      {"max-headers", FLAG_INT, &o->max_headers, "header count limit, 431 beyond (default 100)",
       "N", 1, 10000},
      {"max-body", FLAG_INT, &o->max_body,
       "request body limit when the route sets none, 413 beyond; 0 = unlimited (default 100 MiB)",
       "BYTES", 0, 0},
      {"header-timeout", FLAG_DURATION_MS, &o->header_timeout,
       "time to read a request head, 408 after (default 10s)", "DURATION"},
      {"idle-timeout", FLAG_DURATION_MS, &o->idle_timeout,
       "keep-alive connection idle limit (default 60s)", "DURATION"},
      {"body-timeout", FLAG_DURATION_MS, &o->body_timeout,
       "longest wait for the next request body byte, 408 after (default 60s)", "DURATION"},
      {"tunnel-idle-timeout", FLAG_DURATION_MS, &o->tunnel_idle_timeout,
       "an Upgrade (WebSocket) tunnel idle both ways is closed after (default 1h)", "DURATION"},
      {"linger-timeout", FLAG_DURATION_MS, &o->linger_timeout,
       "after an answer that closes the connection, how long what the client still sends is "
       "read and dropped (default 2s)",
       "DURATION"},
      {"response-header-timeout", FLAG_DURATION_MS, &o->resp_header_timeout,
       "upstream response head limit when the route sets none, 504 after (default 60s)",
       "DURATION"},
      {"retries", FLAG_INT, &o->retries,
       "connect-failure retries of idempotent requests when the route sets none (default 2)", "N",
       0, 10},
      {"ratelimit-redis", FLAG_STRING, &o->ratelimit_redis,
       "Redis for cluster-wide rate limits (without it they count per proxy)", "ADDR:PORT"},
      {"ratelimit-redis-timeout", FLAG_DURATION_MS, &o->ratelimit_redis_timeout,
       "longest wait for a Redis rate-limit decision; the request passes after it (default "
       "100ms)",
       "DURATION"},
      FLAG_GROUP_DEF("Access log"),
      {"access-log", FLAG_BOOL, &o->access_log,
       "one line per request (logfmt to stderr unless --access-log-path/-format say otherwise)",
       NULL},
      {"access-log-path", FLAG_STRING, &o->access_log_path,
       "access log file (append; SIGUSR1 reopens it for logrotate); implies --access-log", "FILE"},
      {"access-log-format", FLAG_STRING, &o->access_log_format,
       "logfmt|json (default logfmt); implies --access-log", "FORMAT"},
      {"access-log-buffer", FLAG_INT, &o->access_log_buffer,
       "bytes of lines waiting for the writer thread; lines beyond are dropped and counted "
       "(default 4 MiB)",
       "BYTES", 65536, 1L << 30},
      FLAG_GROUP_DEF("Tracing (W3C trace context, OTLP/HTTP)"),
      {"trace-otlp", FLAG_STRING, &o->trace_otlp,
       "export spans to this OTLP/HTTP receiver (protobuf), e.g. http://127.0.0.1:4318/v1/traces; "
       "turns on W3C traceparent handling",
       "URL"},
      {"trace-sample", FLAG_STRING, &o->trace_sample,
       "ratio of new traces sampled, 0..1 (default 1); a client's traceparent decides for its own",
       "RATIO"},
      {"trace-service-name", FLAG_STRING, &o->trace_service,
       "service.name of the spans (default edge-l7proxy)", "NAME"},
      {"trace-queue", FLAG_INT, &o->trace_queue,
       "spans waiting for the exporter at most; more are dropped and counted (default 4096)", "N",
       16, 1000000},
      {"trace-batch", FLAG_INT, &o->trace_batch, "spans per OTLP request at most (default 512)",
       "N", 1, 100000},
      {"trace-flush", FLAG_DURATION_MS, &o->trace_flush,
       "longest wait before a partial batch is sent (default 1s)", "DURATION"},
      FLAG_GROUP_DEF("Logging"),
      {"log-level", FLAG_STRING, &o->log_level, "debug|info|warn|error", "LEVEL"},
  };
  size_t n = sizeof(table) / sizeof(table[0]);
  _Static_assert(sizeof(table) / sizeof(table[0]) <= MAX_DEFS, "raise MAX_DEFS");
  memcpy(defs, table, n * sizeof(table[0]));
  return n;
}

/* Parses argv into o. 0, or the exit status (0 after --help is 1 here). */
static int parse_opts(int argc, char **argv, struct opts *o) {
  *o = (struct opts){.http = "0.0.0.0:8080",
                     .log_level = "info",
                     .max_uri = 8192,
                     .max_header_bytes = 32768,
                     .max_headers = 100,
                     .max_body = 100L * 1024 * 1024,
                     .max_conns = 10000,
                     .retries = 2,
                     .ratelimit_redis_timeout = 100,
                     .header_timeout = 10000,
                     .idle_timeout = 60000,
                     .resp_header_timeout = 60000,
                     .body_timeout = 60000,
                     .tunnel_idle_timeout = 3600000,
                     .linger_timeout = 2000,
                     .drain_timeout = 30000,
                     .reconnect_max = RPC_RECONNECT_MAX_DEFAULT_MS,
                     .tls_min = "1.2",
                     .h2_max_streams = 100,
                     .h2_max_resets = 100,
                     .tls_ticket_rotate = 12u * 3600 * 1000,
                     .tls_handshake_timeout = 10000,
                     .access_log_buffer = 4L << 20,
                     .trace_queue = 4096,
                     .trace_batch = 512,
                     .trace_sample = "1",
                     .trace_service = "edge-l7proxy",
                     .trace_flush = 1000};
  struct flag_def defs[MAX_DEFS];
  size_t ndefs = opts_defs(o, defs);
  char err[512];
  int rc = flags_parse(defs, ndefs, argc, argv, NULL, 0, NULL, err, sizeof(err));
  if (rc == FLAGS_HELP) {
    flags_usage(stdout, "l7proxy", "[flags]",
                "The edge L7 proxy: HTTP/1.1, HTTPS (SNI, ALPN) and HTTP/2 (h2, h2c) with "
                "Ingress routing, upstream pools, retries and outlier ejection.",
                defs, ndefs);
    return 1;
  }
  if (rc != FLAGS_OK) {
    fprintf(stderr, "l7proxy: %s\n", err);
    return 2;
  }
  return 0;
}

#define BAD_FLAG(...)                         \
  do {                                        \
    fprintf(stderr, "l7proxy: " __VA_ARGS__); \
    return 2;                                 \
  } while (0)

/* Checks the flags and derives addresses, TLS options and trusted ranges.
 * 0 or the exit status, with a one-line reason on stderr. */
static int check_opts(struct opts *o) {
  enum log_level lvl;
  if (log_parse_level(o->log_level, &lvl) != 0)
    BAD_FLAG("--log-level: expected debug|info|warn|error, got %s\n", o->log_level);
  log_set_level(lvl);
  if (o->max_body < 0) BAD_FLAG("--max-body: must be >= 0\n");
  if (o->https) {
    if (addr_split_hostport(o->https, o->https_host, sizeof(o->https_host), &o->https_port) != 0)
      BAD_FLAG("--https: expected ADDR:PORT, got %s\n", o->https);
    if (tls_parse_min_version(o->tls_min, &o->tls.min_version) != 0)
      BAD_FLAG("--tls-min-version: expected 1.2 or 1.3, got %s\n", o->tls_min);
    if (o->tls_ticket_rotate < 1000) BAD_FLAG("--tls-ticket-rotate: must be at least 1s\n");
    o->tls.ciphers_tls12 = o->tls_ciphers;
    o->tls.ciphersuites_tls13 = o->tls_ciphersuites;
    o->tls.disable_h2 = o->tls_no_h2;
    o->tls.disable_resumption = o->tls_no_resumption;
    /* an empty store checks the cipher settings now, not at the first push */
    struct tls_store *probe = NULL;
    char err[512];
    if (tls_store_build(NULL, 0, &o->tls, &probe, err, sizeof(err)) != 0)
      BAD_FLAG("TLS options: %s\n", err);
    tls_store_unref(probe);
  }
  if (o->syncd) {
    struct target_list tl;
    char why[256];
    if (targets_parse(o->syncd, &tl, why, sizeof(why)) != 0) BAD_FLAG("--syncd: %s\n", why);
    targets_free(&tl);
  }
  if (o->syncd && !o->insecure && !(o->cert && o->key && o->ca))
    BAD_FLAG("--syncd: give --cert, --key and --ca (mTLS) or --insecure\n");
  if (o->syncd && o->insecure && !o->insecure_remote && !targets_is_loopback(o->syncd))
    BAD_FLAG(
        "--insecure sends private keys in clear: --syncd=%s must be a loopback address (or "
        "add --insecure-allow-remote)\n",
        o->syncd);
  if (o->reconnect_max < RPC_RECONNECT_MAX_MIN_MS || o->reconnect_max > 300000)
    BAD_FLAG("--reconnect-max: between %ums and 5m\n", RPC_RECONNECT_MAX_MIN_MS);
  if (addr_split_hostport(o->http, o->host, sizeof(o->host), &o->port) != 0)
    BAD_FLAG("--http: expected ADDR:PORT, got %s\n", o->http);
  for (int i = 0; i < o->trusted.count; i++)
    if (worker_parse_cidr(o->trusted.values[i], &o->cidrs[i]) != 0)
      BAD_FLAG("--proxy-protocol-trusted: not an address or CIDR: %s\n", o->trusted.values[i]);
  /* a PROXY header sets the client address that logs, X-Forwarded-For and
   * every backend trust: accepting it from anyone must be explicit */
  if (o->proxy_protocol && o->trusted.count == 0)
    BAD_FLAG(
        "--proxy-protocol needs --proxy-protocol-trusted=CIDR (the L4 tier's addresses; "
        "0.0.0.0/0 and ::/0 spell out trusting every peer)\n");
  o->alog_format = ACCESS_LOG_LOGFMT;
  if (o->access_log_format && access_log_parse_format(o->access_log_format, &o->alog_format) != 0)
    BAD_FLAG("--access-log-format: expected logfmt or json, got %s\n", o->access_log_format);
  if (o->access_log_path || o->access_log_format) o->access_log = 1;
  char *end;
  o->sample_ratio = strtod(o->trace_sample, &end);
  if (end == o->trace_sample || *end != '\0' || !(o->sample_ratio >= 0 && o->sample_ratio <= 1))
    BAD_FLAG("--trace-sample: expected a ratio between 0 and 1, got %s\n", o->trace_sample);
  if (o->workers == 0) o->workers = default_workers();
  if (o->workers > MAX_WORKERS) o->workers = MAX_WORKERS;
  return 0;
}

static void fill_limits(const struct opts *o, struct l7_limits *l) {
  *l = (struct l7_limits)L7_LIMITS_DEFAULT;
  l->max_uri_bytes = (uint32_t)o->max_uri;
  l->max_header_bytes = (uint32_t)o->max_header_bytes;
  l->max_headers = (uint32_t)o->max_headers;
  l->max_body_bytes = (uint64_t)o->max_body;
  l->header_timeout_ms = o->header_timeout;
  l->idle_timeout_ms = o->idle_timeout;
  l->body_timeout_ms = o->body_timeout;
  l->tunnel_idle_timeout_ms = o->tunnel_idle_timeout;
  l->linger_timeout_ms = o->linger_timeout;
  l->response_header_timeout_ms = o->resp_header_timeout;
  l->max_connections = (uint32_t)o->max_conns;
  l->retries = (uint32_t)o->retries;
}

/* Metrics, the configuration store and the first configuration (file or
 * cache), the admin endpoint. 0 or an exit status. */
static int app_init(struct app *a, const struct opts *o) {
  char err[512];
  a->loop = uv_default_loop();
  a->drain_timeout_ms = o->drain_timeout;
  a->config_file = o->config_file;
  a->tls_enabled = o->https != NULL;
  if (o->cache_dir) {
    /* a cache that cannot be written would fail quietly at every push;
     * checked before any allocation, so exit 2 leaks nothing */
    int rc = statedir_prepare(o->cache_dir, err, sizeof(err));
    if (rc < 0) {
      fprintf(stderr, "l7proxy: --cache-dir=%s: %s\n", o->cache_dir, err);
      return 2;
    }
    if (rc == 1) LOG_INFO("cache_dir_created", "dir=%s mode=0700", log_q(o->cache_dir));
  }
  a->metrics = metrics_registry_new();
  if (!a->metrics) {
    fprintf(stderr, "l7proxy: out of memory\n");
    return 1;
  }
  a->config_reloads_ok = metrics_counter(a->metrics, "edge_l7_config_loads_total",
                                         "Configuration loads by result.", "result=\"ok\"");
  a->config_reloads_failed =
      metrics_counter(a->metrics, "edge_l7_config_loads_total", "Configuration loads by result.",
                      "result=\"rejected\"");
  metrics_gauge_fn(a->metrics, "edge_l7_tls_certificates_refused",
                   "Certificates of the current TLS store found unusable (their names get the "
                   "default certificate).",
                   "", gauge_refused, a);
  if (o->access_log) {
    struct access_log_opts ao = {.path = o->access_log_path,
                                 .fd = -1,
                                 .format = o->alog_format,
                                 .ring_bytes = (size_t)o->access_log_buffer,
                                 .metrics = a->metrics};
    if (access_log_open(&ao, &a->alog, err, sizeof(err)) != 0) {
      fprintf(stderr, "l7proxy: --access-log-path: %s\n", err);
      return 1;
    }
  }
  if (o->trace_otlp) {
    char hostname[256] = "l7proxy";
    gethostname(hostname, sizeof(hostname) - 1);
    struct trace_export_opts to = {.url = o->trace_otlp,
                                   .service_name = o->trace_service,
                                   .instance_id = o->node_id ? o->node_id : hostname,
                                   .version = L7_VERSION,
                                   .queue_size = (size_t)o->trace_queue,
                                   .batch_size = (size_t)o->trace_batch,
                                   .flush_ms = o->trace_flush,
                                   .metrics = a->metrics};
    if (trace_export_new(&to, &a->tracer, err, sizeof(err)) != 0) {
      fprintf(stderr, "l7proxy: --trace-otlp: %s\n", err);
      return 2;
    }
  }
  if (hc_checker_new(a->loop, a->metrics, &a->hc) != 0) {
    fprintf(stderr, "l7proxy: out of memory\n");
    return 1;
  }
  if (l7_config_store_new(o->cache_dir, &a->store) != 0 ||
      (a->tls_enabled && l7_config_store_set_tls(a->store, &o->tls) != 0)) {
    fprintf(stderr, "l7proxy: cannot create the configuration store\n");
    return 1;
  }
  if (o->config_file) {
    if (load_config_file(a) != 0) {
      fprintf(stderr, "l7proxy: --config: %s is not a usable configuration (see log)\n",
              o->config_file);
      return 1;
    }
  } else if (o->cache_dir) {
    struct l7_snapshot *snap = NULL;
    int rc = l7_config_store_load_cache(a->store, &snap, err, sizeof(err));
    if (rc == 0) {
      LOG_INFO("config_cache_loaded", "dir=%s version=%llu", log_q(o->cache_dir),
               (unsigned long long)l7_snapshot_version(snap));
      l7_snapshot_publish(snap);
    } else if (rc != -ENOENT) {
      LOG_WARN("config_cache_unusable", "dir=%s reason=%s", log_q(o->cache_dir), log_q(err));
    }
  }
  if (o->admin_addr) {
    if (admin_start(a->loop, o->admin_addr, a->metrics, &a->admin, err, sizeof(err)) != 0) {
      fprintf(stderr, "l7proxy: --admin: %s\n", err);
      return 1;
    }
    admin_handle(a->admin, "/config", admin_config, a);
    admin_handle(a->admin, "/explain", l7_config_admin_explain, &g_explain_https_port);
    app_ready(a);
  }
  return 0;
}

/* One worker per --workers, each with its own SO_REUSEPORT sockets;
 * o->port / o->https_port become the bound ports. 0 or an exit status. */
static int start_workers(struct app *a, struct opts *o, const struct l7_limits *limits) {
  static struct worker_config wcfg;
  wcfg.limits = limits;
  wcfg.proxy_protocol = o->proxy_protocol;
  wcfg.trusted = o->cidrs;
  wcfg.n_trusted = (size_t)o->trusted.count;
  wcfg.obs =
      (struct obs_config){.alog = a->alog, .tracer = a->tracer, .sample_ratio = o->sample_ratio};
  wcfg.proto = "http";
  wcfg.metrics = a->metrics;
  wcfg.tls_handshake_timeout_ms = o->tls_handshake_timeout;
  wcfg.h2c = !o->no_h2c;
  wcfg.h2_max_streams = (uint32_t)o->h2_max_streams;
  wcfg.h2_max_resets_sec = (uint32_t)o->h2_max_resets;
  wcfg.ratelimit_redis = o->ratelimit_redis;
  wcfg.ratelimit_redis_timeout_ms = o->ratelimit_redis_timeout;
  /* One SO_REUSEPORT socket per worker; with port 0 all share the port
   * chosen for the first. */
  struct sockaddr_storage http_ss, https_ss;
  socklen_t http_len = 0, https_len = 0;
  if (addr_from_ip(o->host, o->port, &http_ss, &http_len) != 0) {
    fprintf(stderr, "l7proxy: --http: cannot listen on %s: %s\n", o->http, strerror(EINVAL));
    return 1;
  }
  if (o->https && addr_from_ip(o->https_host, o->https_port, &https_ss, &https_len) != 0) {
    fprintf(stderr, "l7proxy: --https: cannot listen on %s: %s\n", o->https, strerror(EINVAL));
    return 1;
  }
  for (long i = 0; i < o->workers; i++) {
    int fd = addr_bind_reuseport(&http_ss, http_len, 0, 0);
    if (fd < 0) {
      fprintf(stderr, "l7proxy: --http: cannot listen on %s: %s\n", o->http, strerror(-fd));
      return 1;
    }
    o->port = (uint16_t)addr_port(&http_ss);
    int tfd = -1;
    if (o->https) {
      tfd = addr_bind_reuseport(&https_ss, https_len, 0, 0);
      if (tfd < 0) {
        fprintf(stderr, "l7proxy: --https: cannot listen on %s: %s\n", o->https, strerror(-tfd));
        return 1;
      }
      o->https_port = (uint16_t)addr_port(&https_ss);
      wcfg.https_port = o->https_port;
    }
    if (worker_start((int)i, &wcfg, fd, tfd, &a->workers[i]) != 0) {
      fprintf(stderr, "l7proxy: cannot start worker %ld\n", i);
      return 1;
    }
    a->n_workers++;
  }
  g_explain_https_port = o->https ? o->https_port : 0;
  return 0;
}

/* The ConfigSync client (--syncd). 0 or an exit status. */
static int start_config_client(struct app *a, const struct opts *o) {
  char hostname[256] = "l7proxy";
  gethostname(hostname, sizeof(hostname) - 1);
  char address[300], https_address[300] = "";
  if (o->advertise)
    snprintf(address, sizeof(address), "%s", o->advertise);
  else
    snprintf(address, sizeof(address), "%s:%u", o->host, o->port);
  if (o->advertise_https)
    snprintf(https_address, sizeof(https_address), "%s", o->advertise_https);
  else if (o->https)
    snprintf(https_address, sizeof(https_address), "%s:%u", o->https_host, o->https_port);
  if (o->insecure) LOG_WARN("insecure_syncd", "syncd=%s note=\"plaintext gRPC\"", o->syncd);
  struct l7_config_client_opts co = {
      .syncd = o->syncd,
      .creds = {.cert_file = o->cert,
                .key_file = o->key,
                .ca_file = o->ca,
                .insecure = o->insecure},
      .node_id = o->node_id ? o->node_id : hostname,
      .address = address,
      .admin_address = o->admin_addr ? o->admin_addr : "",
      .https_address = https_address,
      .zone = o->zone ? o->zone : "",
      .build = "l7proxy/" L7_VERSION,
      .weight = 1,
      .backoff_max_ms = o->reconnect_max,
      .metrics = a->metrics,
  };
  static const struct l7_config_client_hooks hooks = {.on_applied = on_push_applied,
                                                      .problems = app_problems};
  int rc = 0;
  if (rpc_runtime_new(a->loop, &a->rpc) != 0 ||
      (rc = l7_config_client_start(a->loop, a->rpc, a->store, &co, &hooks, a, &a->client)) != 0) {
    fprintf(stderr, "l7proxy: --syncd: cannot start the ConfigSync client: %s\n", rpc_strerror(rc));
    return 1;
  }
  return 0;
}

static void start_signals_and_timers(struct app *a, const struct opts *o) {
  uv_signal_init(a->loop, &a->sigterm);
  uv_signal_init(a->loop, &a->sigint);
  uv_signal_init(a->loop, &a->sighup);
  uv_signal_init(a->loop, &a->sigusr1);
  a->sigterm.data = a->sigint.data = a->sighup.data = a->sigusr1.data = a;
  uv_signal_start(&a->sigterm, on_signal, SIGTERM);
  uv_signal_start(&a->sigint, on_signal, SIGINT);
  uv_signal_start(&a->sighup, on_signal, SIGHUP);
  uv_signal_start(&a->sigusr1, on_signal, SIGUSR1);
  uv_timer_init(a->loop, &a->tick); /* started by a drain */
  a->tick.data = a;
  if (a->tls_enabled) {
    uv_timer_init(a->loop, &a->ticket_timer);
    uv_timer_start(&a->ticket_timer, on_ticket_timer, o->tls_ticket_rotate, o->tls_ticket_rotate);
  }
}

static void log_started(const struct opts *o) {
  LOG_INFO("started",
           "version=%s http=%s:%u https=%s:%u admin=%s workers=%ld syncd=%s config=%s cache_dir=%s "
           "proxy_protocol=%s "
           "max_uri_bytes=%ld max_header_bytes=%ld max_headers=%ld max_body=%ld "
           "header_timeout_ms=%u idle_timeout_ms=%u body_timeout_ms=%u tunnel_idle_timeout_ms=%u "
           "linger_timeout_ms=%u response_header_timeout_ms=%u "
           "max_connections=%ld retries=%ld drain_timeout_ms=%u access_log=%s "
           "access_log_format=%s access_log_path=%s trace_otlp=%s trace_sample=%g "
           "reconnect_max_ms=%u",
           L7_VERSION, o->host, o->port, o->https ? o->https_host : "-", o->https_port,
           o->admin_addr ? o->admin_addr : "-", o->workers, o->syncd ? o->syncd : "-",
           log_q(o->config_file ? o->config_file : "-"), log_q(o->cache_dir ? o->cache_dir : "-"),
           o->proxy_protocol ? "true" : "false", o->max_uri, o->max_header_bytes, o->max_headers,
           o->max_body, o->header_timeout, o->idle_timeout, o->body_timeout, o->tunnel_idle_timeout,
           o->linger_timeout, o->resp_header_timeout, o->max_conns, o->retries, o->drain_timeout,
           o->access_log ? "true" : "false", o->alog_format == ACCESS_LOG_JSON ? "json" : "logfmt",
           log_q(o->access_log_path ? o->access_log_path : "-"),
           log_q(o->trace_otlp ? o->trace_otlp : "-"), o->sample_ratio, o->reconnect_max);
}

static void app_free(struct app *a) {
  for (int i = 0; i < a->n_workers; i++) worker_join(a->workers[i]);
  trace_export_close(a->tracer); /* sends what is queued */
  access_log_close(a->alog);     /* writes what is queued */
  if (a->rpc) rpc_runtime_free(a->rpc);
  l7_snapshot_publish(NULL);
  free_problems(a);
  l7_config_store_free(a->store);
  uv_loop_close(a->loop);
  metrics_registry_free(a->metrics);
}

/* Wiring: flags, the application, workers, the config client, signals. */
int main(int argc, char **argv) {
  static struct opts o;
  static struct l7_limits limits;
  static struct app app;
  int rc = parse_opts(argc, argv, &o);
  if (rc) return rc == 1 ? 0 : rc;
  log_init("l7proxy");
  if ((rc = check_opts(&o)) != 0) return rc;
  fill_limits(&o, &limits);
  signal(SIGPIPE, SIG_IGN);
  if ((rc = app_init(&app, &o)) != 0) return rc;
  if ((rc = start_workers(&app, &o, &limits)) != 0) return rc;
  if (o.syncd && (rc = start_config_client(&app, &o)) != 0) return rc;
  start_signals_and_timers(&app, &o);
  log_started(&o);
  uv_run(app.loop, UV_RUN_DEFAULT);
  app_free(&app);
  LOG_INFO("stopped", "version=%s", L7_VERSION);
  return 0;
}
