/*
 * syncd dir: source against a temporary directory: the initial load, a
 * file replaced by rename, a broken file that keeps the other files'
 * objects, a file in a new subdirectory, and a clean stop.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "syncd_source_harness.h"

static char dir[512];

static void write_file(const char *name, const char *text) {
  char tmp[700], path[700];
  const char *slash = strrchr(name, '/');
  if (slash)
    snprintf(tmp, sizeof(tmp), "%s/%.*s/.%s.tmp", dir, (int)(slash - name), name, slash + 1);
  else
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    perror(tmp);
    exit(2);
  }
  fputs(text, f);
  fclose(f);
  if (rename(tmp, path) < 0) perror("rename");
}

static const char *BASE =
    "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: edge\n"
    "  annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}\n"
    "spec: {controller: edge.dev/ingress-controller}\n---\n"
    "apiVersion: v1\nkind: Service\nmetadata: {name: shop}\n"
    "spec: {clusterIP: 10.0.0.1, ports: [{name: http, port: 80}]}\n";

static char *ingress(const char *name, const char *host) {
  char *s;
  if (asprintf(&s,
               "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: %s}\nspec:\n"
               "  rules:\n  - host: %s\n    http:\n      paths:\n      - path: /\n"
               "        pathType: Prefix\n"
               "        backend: {service: {name: shop, port: {number: 80}}}\n",
               name, host) < 0)
    exit(2);
  return s;
}

static int cond_rejected(struct harness *h, const void *arg) {
  return harness_has_rejection(h->latest, arg);
}

static struct syncd_source *current_source;

static int cond_unhealthy(struct harness *h, const void *arg) {
  int healthy = 1;
  syncd_source_status(current_source, NULL, 0, &healthy, NULL, 0, NULL);
  return !healthy;
}

int main(void) {
  const char *tmp = getenv("TEST_TMPDIR");
  snprintf(dir, sizeof(dir), "%s/syncd-dir-XXXXXX", tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 2;
  }
  write_file("base.yaml", BASE);
  char *a = ingress("a", "a.example.com");
  write_file("ing.yaml", a);
  free(a);

  struct harness h = {0};
  uv_loop_init(&h.loop);
  char spec[600], err[256];
  snprintf(spec, sizeof(spec), "dir:%s", dir);
  struct syncd_source_opts o = {.spec = spec, .debounce_ms = 20, .max_delay_ms = 200};
  struct syncd_source_callbacks cb = {harness_on_update};
  struct syncd_source *src;
  int rc = syncd_source_start(&h.loop, &o, &cb, &h, &src, err, sizeof(err));
  CHECK(rc == 0);
  if (rc != 0) {
    fprintf(stderr, "start: %s\n", err);
    return 1;
  }

  /* initial load */
  CHECK(harness_run_until(&h, harness_cond_vhost, "vh:a.example.com", 5000));
  CHECK(h.latest && h.latest->n_served == 1);
  char name[600], msg[256];
  int healthy = 0;
  int64_t last = 0;
  syncd_source_status(src, name, sizeof(name), &healthy, msg, sizeof(msg), &last);
  CHECK(strcmp(name, spec) == 0);
  CHECK(healthy == 1);
  CHECK(last > 0);

  /* a file replaced by rename (as editors save) */
  char *b = ingress("a", "b.example.com");
  write_file("ing.yaml", b);
  free(b);
  CHECK(harness_run_until(&h, harness_cond_vhost, "vh:b.example.com", 5000));
  CHECK(!harness_has_vhost(h.latest, "vh:a.example.com"));

  /* a broken file is reported with its file:line, the other files' objects stay */
  write_file("broken.yaml", "kind: Ingress\nmetadata: {name: x\n");
  CHECK(harness_run_until(&h, cond_rejected, "broken.yaml:", 5000));
  CHECK(harness_has_vhost(h.latest, "vh:b.example.com"));

  /* a new subdirectory is read and watched */
  char sub[700];
  snprintf(sub, sizeof(sub), "%s/team", dir);
  CHECK(mkdir(sub, 0755) == 0);
  CHECK(harness_run_until(&h, harness_cond_vhost, "vh:b.example.com", 5000));
  char *c = ingress("c", "c.example.com");
  char path[800];
  snprintf(path, sizeof(path), "team/c.yaml");
  write_file(path, c);
  free(c);
  CHECK(harness_run_until(&h, harness_cond_vhost, "vh:c.example.com", 5000));
  /* and a change inside it is seen */
  char *d = ingress("c", "d.example.com");
  write_file(path, d);
  free(d);
  CHECK(harness_run_until(&h, harness_cond_vhost, "vh:d.example.com", 5000));

  /* the directory goes away: unhealthy, but the last state stays (no update) */
  unsigned before = h.updates;
  char away[600];
  snprintf(away, sizeof(away), "%s.away", dir);
  CHECK(rename(dir, away) == 0);
  current_source = src;
  CHECK(harness_run_until(&h, cond_unhealthy, NULL, 5000));
  CHECK(h.updates == before);
  CHECK(harness_has_vhost(h.latest, "vh:d.example.com"));
  /* and comes back */
  CHECK(rename(away, dir) == 0);
  char *e = ingress("e", "e.example.com");
  write_file("e.yaml", e);
  free(e);
  CHECK(harness_run_until(&h, harness_cond_vhost, "vh:e.example.com", 5000));
  syncd_source_status(src, NULL, 0, &healthy, msg, sizeof(msg), NULL);
  CHECK(healthy == 1);

  syncd_source_stop(src, harness_on_stopped, &h);
  CHECK(harness_run_until(&h, harness_cond_stopped, NULL, 5000));
  syncd_desired_free(h.latest);
  harness_close(&h);
  CHECK(uv_loop_close(&h.loop) == 0);
  if (harness_failures)
    fprintf(stderr, "%d check(s) failed\n", harness_failures);
  else
    printf("syncd_dir_source_test: all checks passed\n");
  return harness_failures ? 1 : 0;
}
