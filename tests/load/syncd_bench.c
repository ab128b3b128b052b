/*
 * syncd_bench — how fast syncd spreads a one-route change (a command, not a
 * test; timing lives here, never in tests).
 *
 *   syncd_bench --syncd=PATH/syncd [--hosts=10000] [--clients=10]
 *               [--changes=20] [--workdir=DIR] [--debounce=20ms]
 *
 * Generates a source directory with HOSTS Ingress hosts, each with its own
 * TLS Secret (EC P-256, generated once and reused from WORKDIR), starts a
 * real syncd on 127.0.0.1 (kernel-chosen ports), and reports:
 *   - initial load: time from start to the first version, and syncd's RSS;
 *   - the full push to CLIENTS subscribed proxies (bytes, time to all acks);
 *   - CHANGES one-route edits: time from the file rename to the last of
 *     the CLIENTS acks (p50/p99; includes the source debounce), the bytes
 *     of each delta push (it must not resend the certificates), syncd's
 *     CPU per change and the bytes it wrote to its state per change;
 *   - the same for CHANGES one-certificate rotations (one Secret of the
 *     10,000 gets another key pair, in a file of 100 Secrets).
 * Each client runs on its own thread with a synchronous gRPC stream and
 * acks every push at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "common/cert.h"
#include "common/flags.h"
#include "edge/v1/config_sync.pb-c.h"
#include "tests/integration/grpc_sync_client.h"

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "syncd_bench: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(1);
}

/* ---- source generation -------------------------------------------------- */

static char *b64(const char *s) {
  size_t n = strlen(s);
  char *out = malloc(4 * ((n + 2) / 3) + 1);
  EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
  return out;
}

static void write_atomic(const char *dir, const char *name, const char *text) {
  char tmp[2048], path[2048];
  snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(tmp, "w");
  if (!f || fputs(text, f) < 0 || fclose(f) != 0 || rename(tmp, path) != 0)
    die("write %s: %s", path, strerror(errno));
}

static const char *HEADER =
    "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: edge\n"
    "  annotations:\n    ingressclass.kubernetes.io/is-default-class: \"true\"\n"
    "spec:\n  controller: edge.dev/ingress-controller\n---\n"
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: bench\n"
    "spec:\n  ports:\n    - name: http\n      port: 80\n      targetPort: 8080\n---\n"
    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-1\n"
    "  namespace: bench\n  labels:\n    kubernetes.io/service-name: web\naddressType: IPv4\n"
    "ports:\n  - name: http\n    port: 8080\nendpoints:\n"
    "  - addresses: [\"127.0.0.1\"]\n    conditions:\n      ready: true\n";

static void append(char **buf, size_t *len, size_t *cap, const char *fmt, ...) {
  va_list ap;
  for (;;) {
    va_start(ap, fmt);
    int n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < *cap - *len) {
      *len += (size_t)n;
      return;
    }
    *cap *= 2;
    *buf = realloc(*buf, *cap);
    if (!*buf) die("out of memory");
  }
}

static void ingress(char **buf, size_t *len, size_t *cap, const char *name, const char *host,
                    const char *path, int tls) {
  append(buf, len, cap,
         "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: %s\n"
         "  namespace: bench\n  creationTimestamp: \"2026-01-01T00:00:00Z\"\nspec:\n",
         name);
  if (tls)
    append(buf, len, cap, "  tls:\n    - hosts: [\"%s\"]\n      secretName: %s-tls\n", host, name);
  append(buf, len, cap,
         "  rules:\n    - host: %s\n      http:\n        paths:\n          - path: %s\n"
         "            pathType: Prefix\n            backend:\n              service:\n"
         "                name: web\n                port:\n                  number: 80\n",
         host, path);
}

/* 100 hosts per file: Ingress (+ Secret for the first `certs` hosts).
 * Kept when already there. */
static void generate(const char *dir, int hosts, int certs) {
  char marker[2048];
  snprintf(marker, sizeof(marker), "%s/.generated-%d-%d", dir, hosts, certs);
  if (access(marker, F_OK) == 0) return;
  mkdir(dir, 0755);
  int64_t t0 = now_us();
  write_atomic(dir, "00-base.yaml", HEADER);
  size_t cap = 1 << 20;
  char *buf = malloc(cap);
  for (int f = 0; f * 100 < hosts; f++) {
    size_t len = 0;
    buf[0] = '\0';
    for (int i = f * 100; i < hosts && i < (f + 1) * 100; i++) {
      char name[64], host[128], err[256];
      snprintf(name, sizeof(name), "h%05d", i);
      snprintf(host, sizeof(host), "h%05d.bench.test", i);
      if (i >= certs) {
        ingress(&buf, &len, &cap, name, host, "/", 0);
        continue;
      }
      const char *names[] = {host};
      char *cert, *key;
      if (cert_generate(names, 1, 365, 0, NULL, NULL, &cert, &key, err, sizeof(err)) != 0)
        die("cert_generate: %s", err);
      char *c64 = b64(cert), *k64 = b64(key);
      append(&buf, &len, &cap,
             "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: %s-tls\n  namespace: bench\n"
             "type: kubernetes.io/tls\ndata:\n  tls.crt: %s\n  tls.key: %s\n",
             name, c64, k64);
      free(c64);
      free(k64);
      free(cert);
      free(key);
      ingress(&buf, &len, &cap, name, host, "/", 1);
    }
    char fname[64];
    snprintf(fname, sizeof(fname), "10-hosts-%03d.yaml", f);
    write_atomic(dir, fname, buf);
  }
  free(buf);
  write_atomic(dir, marker + strlen(dir) + 1, "");
  fprintf(stderr, "generated %d hosts, %d with certificates, in %.1f s\n", hosts, certs,
          (now_us() - t0) / 1e6);
}

static void write_route(const char *dir, int k) {
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap), path[32];
  buf[0] = '\0';
  snprintf(path, sizeof(path), "/v%d", k);
  ingress(&buf, &len, &cap, "route", "route.bench.test", path, 0);
  write_atomic(dir, "20-route.yaml", buf + 4); /* skip the leading "---\n" */
  free(buf);
}

/* Replaces the first Secret's tls.crt/tls.key in DIR/10-hosts-000.yaml
 * with pair (base64 lines), keeping everything else byte for byte. */
static void rotate_cert(const char *dir, const char *c64, const char *k64) {
  char path[2048];
  snprintf(path, sizeof(path), "%s/10-hosts-000.yaml", dir);
  FILE *f = fopen(path, "r");
  if (!f) die("read %s: %s", path, strerror(errno));
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = malloc((size_t)n + 1);
  if (fread(text, 1, (size_t)n, f) != (size_t)n) die("read %s", path);
  text[n] = '\0';
  fclose(f);
  char *crt = strstr(text, "  tls.crt: "), *key = crt ? strstr(crt, "  tls.key: ") : NULL;
  char *kend = key ? strchr(key, '\n') : NULL;
  if (!crt || !key || !kend) die("no Secret in %s", path);
  size_t cap = (size_t)n + strlen(c64) + strlen(k64) + 64, len = 0;
  char *out = malloc(cap);
  len += (size_t)snprintf(out, cap, "%.*s  tls.crt: %s\n  tls.key: %s", (int)(crt - text), text,
                          c64, k64);
  len += (size_t)snprintf(out + len, cap - len, "%s", kend);
  write_atomic(dir, "10-hosts-000.yaml", out);
  free(out);
  free(text);
}

/* ---- syncd process -------------------------------------------------------- */

static int admin_port;

static pid_t start_syncd(const char *bin, const char *src, const char *state, const char *log,
                         const char *debounce, int *port) {
  char a_src[2100], a_state[2100], a_deb[64];
  snprintf(a_src, sizeof(a_src), "--source=dir:%s", src);
  snprintf(a_state, sizeof(a_state), "--state-dir=%s", state);
  snprintf(a_deb, sizeof(a_deb), "--debounce=%s", debounce);
  unlink(log); /* never read a previous run's lines */
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) dup2(fd, 2);
    execl(bin, "syncd", a_src, a_state, a_deb, "--insecure", "--listen=127.0.0.1:0",
          "--admin=127.0.0.1:0", (char *)NULL);
    _exit(127);
  }
  int64_t deadline = now_us() + 60 * 1000000LL;
  while (now_us() < deadline) {
    FILE *f = fopen(log, "r");
    char line[4096];
    while (f && fgets(line, sizeof(line), f)) {
      char *p = strstr(line, "msg=listening grpc_port=");
      if (p && sscanf(p, "msg=listening grpc_port=%d admin_port=%d", port, &admin_port) >= 1) {
        fclose(f);
        return pid;
      }
    }
    if (f) fclose(f);
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) die("syncd exited; see %s", log);
    usleep(5000);
  }
  die("syncd did not start; see %s", log);
  return -1;
}

/* Waits for the log line of the first version; returns its microseconds. */
static void wait_first_version(const char *log, int64_t deadline) {
  while (now_us() < deadline) {
    FILE *f = fopen(log, "r");
    char line[4096];
    int found = 0;
    while (f && fgets(line, sizeof(line), f))
      if (strstr(line, "msg=version ")) found = 1;
    if (f) fclose(f);
    if (found) return;
    usleep(2000);
  }
  die("no first version; see %s", log);
}

static long rss_kb(pid_t pid, const char *field) {
  char path[64], line[256];
  snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  long v = -1;
  while (f && fgets(line, sizeof(line), f))
    if (strncmp(line, field, strlen(field)) == 0) v = strtol(line + strlen(field) + 1, NULL, 10);
  if (f) fclose(f);
  return v;
}

/* utime + stime of pid in seconds. */
static double cpu_s(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  unsigned long ut = 0, st = 0;
  if (p) sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A gauge from syncd's /metrics (-1 when not found). */
static double metric(const char *name) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)admin_port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  const char *req = "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n";
  if (write(fd, req, strlen(req)) < 0) {
    close(fd);
    return -1;
  }
  size_t cap = 1 << 22, len = 0;
  char *buf = malloc(cap);
  ssize_t r;
  while (len < cap - 1 && (r = read(fd, buf + len, cap - 1 - len)) > 0) len += (size_t)r;
  close(fd);
  buf[len] = '\0';
  double v = -1;
  char want[200];
  snprintf(want, sizeof(want), "\n%s ", name);
  char *p = strstr(buf, want);
  if (p) v = strtod(p + strlen(want), NULL);
  free(buf);
  return v;
}

/* ---- clients ---------------------------------------------------------------- */

struct client {
  pthread_t thread;
  int id;
  char target[64];
  uint64_t acked;         /* guarded by mu */
  int64_t acked_at;       /* us */
  size_t last_push_bytes; /* bytes of the last push */
  int last_full;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static volatile int stopping;

static void *client_main(void *arg) {
  struct client *c = arg;
  struct gsc_stream g;
  if (gsc_open(&g, c->target, "/edge.v1.ConfigSync/Stream") != 0) die("client open");
  char id[32];
  snprintf(id, sizeof(id), "bench-%02d", c->id);
  Edge__V1__Hello h = EDGE__V1__HELLO__INIT;
  h.node_id = id;
  h.address = "127.0.0.1:1";
  Edge__V1__ProxyMessage pm = EDGE__V1__PROXY_MESSAGE__INIT;
  pm.msg_case = EDGE__V1__PROXY_MESSAGE__MSG_HELLO;
  pm.hello = &h;
  uint8_t out[4096];
  size_t n = edge__v1__proxy_message__pack(&pm, out);
  if (gsc_send(&g, out, n) != 0) die("client hello");
  while (!stopping) {
    uint8_t *buf;
    size_t len;
    int r = gsc_recv(&g, 200, &buf, &len);
    if (r == 0) continue;
    if (r < 0) break;
    Edge__V1__SyncMessage *m = edge__v1__sync_message__unpack(NULL, len, buf);
    free(buf);
    if (!m || m->msg_case != EDGE__V1__SYNC_MESSAGE__MSG_PUSH) die("bad push");
    Edge__V1__Ack a = EDGE__V1__ACK__INIT;
    a.nonce = m->push->nonce;
    a.version = m->push->version;
    Edge__V1__ProxyMessage am = EDGE__V1__PROXY_MESSAGE__INIT;
    am.msg_case = EDGE__V1__PROXY_MESSAGE__MSG_ACK;
    am.ack = &a;
    n = edge__v1__proxy_message__pack(&am, out);
    gsc_send(&g, out, n);
    pthread_mutex_lock(&mu);
    c->acked = m->push->version;
    c->acked_at = now_us();
    c->last_push_bytes = len;
    c->last_full = m->push->full;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    edge__v1__sync_message__free_unpacked(m, NULL);
  }
  gsc_close(&g);
  return NULL;
}

/* Waits until every client acked a version other than after (versions
 * name content: they are not ordered); returns it, the latest ack time and
 * the push bytes seen. */
static uint64_t wait_all(struct client *cs, int nc, uint64_t after, int64_t *last_ack,
                         size_t *bytes, int *full) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += 120;
  pthread_mutex_lock(&mu);
  for (;;) {
    int done = 1;
    for (int i = 0; i < nc; i++) done &= cs[i].acked != after && cs[i].acked != 0;
    if (done) break;
    if (pthread_cond_timedwait(&cv, &mu, &dl) == ETIMEDOUT) die("timed out waiting for acks");
  }
  uint64_t v = cs[0].acked;
  *last_ack = 0;
  for (int i = 0; i < nc; i++) {
    if (cs[i].acked_at > *last_ack) *last_ack = cs[i].acked_at;
    if (cs[i].acked != v) die("clients acked different versions");
  }
  *bytes = cs[0].last_push_bytes;
  *full = cs[0].last_full;
  pthread_mutex_unlock(&mu);
  return v;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  const char *bin = NULL, *workdir = "/tmp/syncd_bench", *debounce = "20ms";
  long hosts = 10000, certs = -1, clients = 10, changes = 20;
  int generate_only = 0;
  const struct flag_def defs[] = {
      {"syncd", FLAG_STRING, &bin, "path of the syncd binary (required)", "PATH"},
      {"hosts", FLAG_INT, &hosts, "Ingress hosts", "N", 1, 100000},
      {"certs", FLAG_INT, &certs, "hosts with a certificate (default: all)", "N", 0, 100000},
      {"generate-only", FLAG_BOOL, &generate_only,
       "write the source directory (WORKDIR/src-HOSTS[-CERTS]), print its path, exit", NULL},
      {"clients", FLAG_INT, &clients, "subscribed proxies", "N", 1, 100},
      {"changes", FLAG_INT, &changes, "one-route changes to time", "N", 1, 1000},
      {"workdir", FLAG_STRING, &workdir, "where the source and state live", "DIR"},
      {"debounce", FLAG_STRING, &debounce, "syncd --debounce", "DURATION"},
  };
  const size_t nd = sizeof(defs) / sizeof(defs[0]);
  char err[512];
  int rc = flags_parse(defs, nd, argc, argv, NULL, 0, NULL, err, sizeof(err));
  if (rc == FLAGS_HELP) {
    flags_usage(stdout, "syncd_bench", "--syncd=PATH [flags]", "Times syncd config propagation.",
                defs, nd);
    return 0;
  }
  if (rc != FLAGS_OK) die("%s", err);
  if (certs < 0 || certs > hosts) certs = hosts;
  if (!bin && !generate_only) die("--syncd=PATH is required");
  signal(SIGPIPE, SIG_IGN);
  grpc_init();

  char src[1024], state[1024], log[1024];
  mkdir(workdir, 0755);
  if (certs == hosts)
    snprintf(src, sizeof(src), "%s/src-%ld", workdir, hosts);
  else
    snprintf(src, sizeof(src), "%s/src-%ld-%ld", workdir, hosts, certs);
  snprintf(state, sizeof(state), "%s/state", workdir);
  snprintf(log, sizeof(log), "%s/syncd.log", workdir);
  generate(src, (int)hosts, (int)certs);
  if (generate_only) {
    printf("%s\n", src);
    return 0;
  }
  write_route(src, 0);
  mkdir(state, 0700);
  char statefile[1100];
  snprintf(statefile, sizeof(statefile), "%s/journal", state);
  unlink(statefile); /* time a cold load, not a restore */

  int port = 0;
  int64_t t0 = now_us();
  pid_t pid = start_syncd(bin, src, state, log, debounce, &port);
  wait_first_version(log, t0 + 600 * 1000000LL);
  int64_t t_load = now_us() - t0;
  long rss = rss_kb(pid, "VmRSS:"), hwm = rss_kb(pid, "VmHWM:");
  printf("syncd_bench: hosts=%ld certificates=%ld clients=%ld changes=%ld debounce=%s\n", hosts,
         certs, clients, changes, debounce);
  printf("initial load: %.3f s to the first version; RSS %.1f MiB (peak %.1f MiB)\n", t_load / 1e6,
         rss / 1024.0, hwm / 1024.0);

  struct client *cs = calloc((size_t)clients, sizeof(*cs));
  int64_t tc = now_us();
  for (int i = 0; i < clients; i++) {
    cs[i].id = i;
    snprintf(cs[i].target, sizeof(cs[i].target), "127.0.0.1:%d", port);
    pthread_create(&cs[i].thread, NULL, client_main, &cs[i]);
  }
  int64_t last;
  size_t bytes;
  int full;
  uint64_t v = wait_all(cs, (int)clients, 0, &last, &bytes, &full);
  printf("full push: %zu bytes per client, %.3f s until all %ld clients acked version %" PRIu64
         "\n",
         bytes, (last - tc) / 1e6, clients, v);

  int64_t *lat = calloc((size_t)changes, sizeof(*lat));
  size_t delta_bytes = 0;
  int any_full = 0;
  double cpu0 = cpu_s(pid), st0 = metric("edge_syncd_state_written_bytes");
  for (int k = 1; k <= changes; k++) {
    int64_t start = now_us();
    write_route(src, k);
    v = wait_all(cs, (int)clients, v, &last, &bytes, &full);
    lat[k - 1] = last - start;
    delta_bytes = bytes;
    any_full |= full;
  }
  double cpu1 = cpu_s(pid), st1 = metric("edge_syncd_state_written_bytes");
  qsort(lat, (size_t)changes, sizeof(*lat), cmp_i64);
  int64_t p50 = lat[(changes - 1) / 2], p99 = lat[(changes * 99 + 99) / 100 - 1];
  printf(
      "one-route change -> all %ld acks: p50 %.1f ms, p99 %.1f ms (max %.1f ms) over %ld "
      "changes\n",
      clients, p50 / 1e3, p99 / 1e3, lat[changes - 1] / 1e3, changes);
  printf("delta push: %zu bytes per client%s\n", delta_bytes,
         any_full ? " (A FULL PUSH WAS SENT)" : "");
  printf("syncd per one-route change: %.1f ms CPU, %.0f bytes written to its state\n",
         (cpu1 - cpu0) * 1e3 / changes, st0 >= 0 && st1 >= 0 ? (st1 - st0) / changes : -1.0);

  /* one certificate rotated per change (two key pairs taking turns) */
  char *pairs[2][2];
  for (int i = 0; i < 2; i++) {
    const char *names[] = {"h00000.bench.test"};
    char *c, *kk, e2[256];
    if (cert_generate(names, 1, 365, 0, NULL, NULL, &c, &kk, e2, sizeof(e2)) != 0)
      die("cert_generate: %s", e2);
    pairs[i][0] = b64(c);
    pairs[i][1] = b64(kk);
    free(c);
    free(kk);
  }
  any_full = 0;
  cpu0 = cpu_s(pid);
  st0 = metric("edge_syncd_state_written_bytes");
  for (int k = 1; k <= changes; k++) {
    int64_t start = now_us();
    rotate_cert(src, pairs[k % 2][0], pairs[k % 2][1]);
    v = wait_all(cs, (int)clients, v, &last, &bytes, &full);
    lat[k - 1] = last - start;
    delta_bytes = bytes;
    any_full |= full;
  }
  cpu1 = cpu_s(pid);
  st1 = metric("edge_syncd_state_written_bytes");
  qsort(lat, (size_t)changes, sizeof(*lat), cmp_i64);
  p50 = lat[(changes - 1) / 2];
  p99 = lat[(changes * 99 + 99) / 100 - 1];
  printf(
      "one-certificate change -> all %ld acks: p50 %.1f ms, p99 %.1f ms (max %.1f ms) over %ld "
      "changes\n",
      clients, p50 / 1e3, p99 / 1e3, lat[changes - 1] / 1e3, changes);
  printf("certificate delta push: %zu bytes per client%s\n", delta_bytes,
         any_full ? " (A FULL PUSH WAS SENT)" : "");
  printf("syncd per one-certificate change: %.1f ms CPU, %.0f bytes written to its state\n",
         (cpu1 - cpu0) * 1e3 / changes, st0 >= 0 && st1 >= 0 ? (st1 - st0) / changes : -1.0);
  printf("syncd RSS after the changes: %.1f MiB (peak %.1f MiB)\n", rss_kb(pid, "VmRSS:") / 1024.0,
         rss_kb(pid, "VmHWM:") / 1024.0);
  for (int i = 0; i < 2; i++) free(pairs[i][0]), free(pairs[i][1]);

  stopping = 1;
  for (int i = 0; i < clients; i++) pthread_join(cs[i].thread, NULL);
  kill(pid, SIGTERM);
  int st;
  waitpid(pid, &st, 0);
  free(cs);
  free(lat);
  grpc_shutdown();
  return 0;
}
