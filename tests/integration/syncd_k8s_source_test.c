/*
 * syncd kubernetes source against the in-tree fake API server
 * (tests/apiserver/fake_apiserver.py, started here on 127.0.0.1 with a
 * kernel-chosen port): the initial list, watch ADDED/MODIFIED/DELETED,
 * a bookmark, dropped watches (reconnect), expired history (410 → relist)
 * and status write-back only for our Ingresses.
 *
 * Usage: syncd_k8s_source_test PATH/TO/fake_apiserver.py
 */
#include <curl/curl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "syncd_source_harness.h"

static char base_url[64];
static pid_t server_pid;

struct buf {
  char *p;
  size_t n;
};

static size_t on_data(char *d, size_t s, size_t n, void *ud) {
  struct buf *b = ud;
  char *np = realloc(b->p, b->n + s * n + 1);
  if (!np) return 0;
  b->p = np;
  memcpy(b->p + b->n, d, s * n);
  b->n += s * n;
  b->p[b->n] = '\0';
  return s * n;
}

/* POST body (JSON) or GET when body is NULL. Returns the response body (caller frees) or NULL. */
static char *call(const char *path, const char *body) {
  CURL *c = curl_easy_init();
  char url[256];
  snprintf(url, sizeof(url), "%s%s", base_url, path);
  struct buf b = {0};
  struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
  if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  long status = 0;
  CURLcode rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  if (rc != CURLE_OK || status != 200) {
    fprintf(stderr, "%s %s: curl=%d status=%ld body=%s\n", body ? "POST" : "GET", path, rc, status,
            b.p ? b.p : "");
    free(b.p);
    return NULL;
  }
  return b.p ? b.p : strdup("");
}

static void post(const char *path, const char *body) {
  char *r = call(path, body);
  CHECK(r != NULL);
  free(r);
}

static char *ingress_json(const char *name, const char *host, const char *cls) {
  char *s;
  if (asprintf(&s,
               "{\"kind\":\"Ingress\",\"apiVersion\":\"networking.k8s.io/v1\","
               "\"metadata\":{\"name\":\"%s\",\"namespace\":\"default\"},"
               "\"spec\":{%s%s%s\"rules\":[{\"host\":\"%s\",\"http\":{\"paths\":[{\"path\":\"/\","
               "\"pathType\":\"Prefix\",\"backend\":{\"service\":{\"name\":\"shop\",\"port\":{"
               "\"number\":80}}}}]}}]}}",
               name, cls ? "\"ingressClassName\":\"" : "", cls ? cls : "", cls ? "\"," : "",
               host) < 0)
    exit(2);
  return s;
}

static void apply_ingress(const char *name, const char *host, const char *cls) {
  char *j = ingress_json(name, host, cls);
  post("/_test/apply", j);
  free(j);
}

static long stat_value(const char *group, const char *kind) {
  char *r = call("/_test/stats", NULL);
  long v = -1;
  if (!r) return v;
  char key[64];
  if (!kind) { /* a top-level counter */
    snprintf(key, sizeof(key), "\"%s\": ", group);
    char *g = strstr(r, key);
    if (g) v = strtol(g + strlen(key), NULL, 10);
    free(r);
    return v;
  }
  snprintf(key, sizeof(key), "\"%s\": {", group);
  char *g = strstr(r, key);
  if (g) {
    snprintf(key, sizeof(key), "\"%s\": ", kind);
    char *k = strstr(g, key);
    if (k) v = strtol(k + strlen(key), NULL, 10);
  }
  free(r);
  return v;
}

static int start_server(const char *script) {
  int p[2];
  if (pipe(p) < 0) return -1;
  server_pid = fork();
  if (server_pid == 0) {
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    execlp("python3", "python3", script, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  char line[32] = "";
  size_t n = 0;
  while (n < sizeof(line) - 1) {
    ssize_t r = read(p[0], line + n, 1);
    if (r <= 0 || line[n] == '\n') break;
    n++;
  }
  line[n] = '\0';
  close(p[0]);
  int port = atoi(line);
  if (port <= 0) return -1;
  snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d", port);
  return 0;
}

/* Polls the fake server until a status PATCH for ns/name has been seen, or the deadline. */
static int wait_patch(struct harness *h, const char *name) {
  for (int i = 0; i < 100; i++) {
    char *r = call("/_test/status-patches", NULL);
    char needle[128];
    snprintf(needle, sizeof(needle), "\"name\": \"%s\"", name);
    int found = r && strstr(r, needle);
    free(r);
    if (found) return 1;
    /* keep the loop turning (updates may still arrive) for up to 100 ms per round */
    uv_timer_t *t = &h->deadline;
    (void)t;
    harness_run_until(h, harness_cond_stopped, NULL, 100);
  }
  return 0;
}

static int cond_updates_after(struct harness *h, const void *arg) {
  return h->updates > *(const unsigned *)arg;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s fake_apiserver.py\n", argv[0]);
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (start_server(argv[1]) < 0) {
    fprintf(stderr, "cannot start the fake API server\n");
    return 1;
  }
  post("/_test/apply",
       "{\"objects\":["
       "{\"kind\":\"IngressClass\",\"metadata\":{\"name\":\"edge\",\"annotations\":{"
       "\"ingressclass.kubernetes.io/is-default-class\":\"true\"}},"
       "\"spec\":{\"controller\":\"edge.dev/ingress-controller\"}},"
       "{\"kind\":\"IngressClass\",\"metadata\":{\"name\":\"nginx\"},"
       "\"spec\":{\"controller\":\"k8s.io/ingress-nginx\"}},"
       "{\"kind\":\"Service\",\"metadata\":{\"name\":\"shop\",\"namespace\":\"default\"},"
       "\"spec\":{\"clusterIP\":\"10.0.0.1\",\"ports\":[{\"name\":\"http\",\"port\":80}]}},"
       "{\"kind\":\"Secret\",\"type\":\"Opaque\",\"metadata\":{\"name\":\"not-tls\"},"
       "\"data\":{}}"
       "]}");
  apply_ingress("a", "a.example.com", NULL);
  apply_ingress("other", "other.example.com", "nginx");

  const char *tmp = getenv("TEST_TMPDIR");
  char kubeconfig[512];
  snprintf(kubeconfig, sizeof(kubeconfig), "%s/kubeconfig", tmp ? tmp : "/tmp");
  FILE *f = fopen(kubeconfig, "w");
  fprintf(f,
          "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
          "clusters:\n- name: fake\n  cluster: {server: \"%s\"}\n"
          "users:\n- name: u\n  user: {token: test-token}\n"
          "contexts:\n- name: test\n  context: {cluster: fake, user: u}\n",
          base_url);
  fclose(f);

  struct harness h = {0};
  uv_loop_init(&h.loop);
  struct syncd_source_opts o = {.spec = "kubernetes",
                                .kubeconfig = kubeconfig,
                                .publish_address = "127.0.0.10",
                                .debounce_ms = 20,
                                .max_delay_ms = 200};
  struct syncd_source_callbacks cb = {harness_on_update};
  struct syncd_source *src = NULL;
  char err[256];
  int rc = syncd_source_start(&h.loop, &o, &cb, &h, &src, err, sizeof(err));
  CHECK(rc == 0);
  if (rc != 0) {
    fprintf(stderr, "start: %s\n", err);
    goto out;
  }

  /* initial list: ours served, the nginx one ignored */
  CHECK(harness_run_until(&h, harness_cond_vhost, "vh:a.example.com", 10000));
  CHECK(!harness_has_vhost(h.latest, "vh:other.example.com"));
  CHECK(h.latest && h.latest->n_served == 1);
  char *stats = call("/_test/stats", NULL);
  CHECK(stats && strstr(stats, "\"authorization\": \"Bearer test-token\""));
  free(stats);

  /* watch: ADDED, MODIFIED, DELETED */
  apply_ingress("b", "b.example.com", NULL);
  CHECK(harness_run_until(&h, harness_cond_vhost, "vh:b.example.com", 10000));
  apply_ingress("b", "c.example.com", NULL);
  CHECK(harness_run_until(&h, harness_cond_vhost, "vh:c.example.com", 10000));
  CHECK(!harness_has_vhost(h.latest, "vh:b.example.com"));
  post("/_test/delete", "{\"kind\":\"Ingress\",\"namespace\":\"default\",\"name\":\"b\"}");
  CHECK(harness_run_until(&h, harness_cond_no_vhost, "vh:c.example.com", 10000));
  CHECK(harness_has_vhost(h.latest, "vh:a.example.com"));

  /* a bookmark moves the resourceVersion and breaks nothing */
  post("/_test/bookmark", "{}");
  apply_ingress("d", "d.example.com", NULL);
  CHECK(harness_run_until(&h, harness_cond_vhost, "vh:d.example.com", 10000));

  /* dropped watches: the source reconnects and keeps following */
  long watches_before = stat_value("watches", "Ingress");
  post("/_test/drop-watches", "{}");
  apply_ingress("e", "e.example.com", NULL);
  CHECK(harness_run_until(&h, harness_cond_vhost, "vh:e.example.com", 10000));
  CHECK(stat_value("watches", "Ingress") > watches_before);

  /* expired history: ERROR 410 on the open watch → relist, then follow again */
  long lists_before = stat_value("lists", "Ingress");
  post("/_test/expire", "{}");
  apply_ingress("f", "f.example.com", NULL);
  CHECK(harness_run_until(&h, harness_cond_vhost, "vh:f.example.com", 10000));
  for (int i = 0; i < 50 && stat_value("lists", "Ingress") <= lists_before; i++) {
    unsigned u = h.updates;
    harness_run_until(&h, cond_updates_after, &u, 100);
  }
  CHECK(stat_value("lists", "Ingress") > lists_before);
  post("/_test/delete", "{\"kind\":\"Ingress\",\"namespace\":\"default\",\"name\":\"f\"}");
  CHECK(harness_run_until(&h, harness_cond_no_vhost, "vh:f.example.com", 10000));

  /* expired history seen only when reconnecting: HTTP 410 on the new watch → relist */
  lists_before = stat_value("lists", "Ingress");
  long gone_before = stat_value("watch_410", NULL);
  post("/_test/expire", "{\"silent\": true}");
  post("/_test/drop-watches", "{}");
  for (int i = 0; i < 50 && stat_value("lists", "Ingress") <= lists_before; i++) {
    unsigned u = h.updates;
    harness_run_until(&h, cond_updates_after, &u, 100);
  }
  CHECK(stat_value("watch_410", NULL) > gone_before);
  CHECK(stat_value("lists", "Ingress") > lists_before);
  apply_ingress("g", "g.example.com", NULL);
  CHECK(harness_run_until(&h, harness_cond_vhost, "vh:g.example.com", 10000));

  /* status write-back: ours patched with the publish address, never the nginx one */
  CHECK(wait_patch(&h, "a"));
  char *patches = call("/_test/status-patches", NULL);
  CHECK(patches && strstr(patches, "\"ip\": \"127.0.0.10\""));
  CHECK(patches && !strstr(patches, "\"name\": \"other\""));
  free(patches);

  char name[64], msg[256];
  int healthy = 0;
  int64_t last = 0;
  syncd_source_status(src, name, sizeof(name), &healthy, msg, sizeof(msg), &last);
  CHECK(strcmp(name, "kubernetes") == 0);
  CHECK(last > 0);

  syncd_source_stop(src, harness_on_stopped, &h);
  CHECK(harness_run_until(&h, harness_cond_stopped, NULL, 10000));
out:
  syncd_desired_free(h.latest);
  harness_close(&h);
  CHECK(uv_loop_close(&h.loop) == 0);
  kill(server_pid, SIGTERM);
  waitpid(server_pid, NULL, 0);
  curl_global_cleanup();
  if (harness_failures)
    fprintf(stderr, "%d check(s) failed\n", harness_failures);
  else
    printf("syncd_k8s_source_test: all checks passed\n");
  return harness_failures ? 1 : 0;
}
