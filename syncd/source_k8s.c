/*
 * source_k8s — "kubernetes": list + watch of the API server.
 *
 * One thread per kind (Ingress, IngressClass, Service, EndpointSlice,
 * Secrets of type kubernetes.io/tls, Namespace, and the Gateway API's
 * GatewayClass, Gateway, HTTPRoute, GRPCRoute, ReferenceGrant, TLSRoute)
 * runs blocking libcurl requests:
 * list (paged), then watch from the list's resourceVersion with bookmarks.
 * Events update that kind's cache (a jansson object "ns/name" → object)
 * under a mutex and wake the loop with uv_async_send. A watch that ends
 * is resumed from the last resourceVersion; 410 Gone (as an HTTP status
 * or as an ERROR event) forces a relist; any other error retries after a
 * jittered exponential backoff (0.5 s doubling to 30 s). The Gateway API
 * kinds are CRDs: a 404 on their list means "not installed", an empty
 * kind listed again every 30 s, never an error that blocks the rest.
 *
 * The loop side only reads the caches: nothing is announced until every
 * kind has been listed once, so the first update is complete. Status
 * write-back (publish_address) runs on one more thread fed by a queue:
 * PATCH (merge-patch) of ingresses/NAME/status for each served Ingress
 * whose status differs, never for Ingresses that are not ours; and of the
 * status of each of our GatewayClasses, Gateways and the routes attached to
 * them (syncd/gateway_k8s.h), with or without a published address. With
 * several syncd replicas only the leader writes either (syncd/leader.h): a
 * follower queues nothing, a queued PATCH is dropped if leadership ended
 * before it went out, and a replica that becomes leader writes what the
 * last update served at once.
 *
 * Threads share: the caches and the error text (mutex), the stop flag
 * (atomic). Objects in a cache are never modified after insertion, so the
 * loop can hold references to them (jansson's refcounts are atomic).
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "edge/v1/status.pb-c.h"
#include "syncd/gateway_k8s.h"
#include "syncd/k8s_client.h"
#include "syncd/k8s_watch.h"
#include "syncd/leader.h"
#include "syncd/source_internal.h"

#define K8S_MAX_BODY (256u << 20)
#define K8S_MAX_LINE (16u << 20)
#define K8S_BACKOFF_MIN_MS 500
#define K8S_BACKOFF_MAX_MS 30000
#define K8S_N_KINDS 14              /* the KINDS table below */
#define K8S_ABSENT_RECHECK_MS 30000 /* how often a kind whose CRD is missing is listed again */

struct k8s_kind {
  const char *kind, *api_version, *path; /* path includes any query (fieldSelector) */
  int optional; /* a CRD (Gateway API): 404 means "not installed", an empty kind */
  int absent;   /* optional and not installed at the last list (thread-private) */
  struct k8s_source *ks;
  pthread_t thread;
  int started;
  json_t *cache; /* "ns/name" → object; guarded by ks->mu */
  int synced;    /* listed at least once; guarded by ks->mu */
  char rv[128];  /* resourceVersion, thread-private */
  int relists;   /* number of lists done (for tests and logs); guarded by ks->mu */
};

struct patch_job {
  struct patch_job *next;
  char *path, *body;
};

struct k8s_source {
  struct syncd_source *s;
  struct k8s_conn conn;
  char *publish;
  int publish_is_ip;
  struct k8s_kind kinds[K8S_N_KINDS];
  pthread_mutex_t mu;
  pthread_cond_t cv; /* stop and patch queue */
  atomic_int stop;
  char error[256]; /* latest error, "" when fine; guarded by mu */
  uv_async_t async;
  /* status write-back */
  pthread_t patcher;
  int patcher_started;
  struct patch_job *jobs, **jobs_tail;
  json_t *patched;       /* "ns/name" → time of our last PATCH (loop only) */
  struct leader *leader; /* NULL: no election (borrowed) */
  json_t *served;        /* ids the last update served (loop only) */
  uint8_t *gw_status;    /* the last update's Gateway API statuses, packed (loop only) */
  size_t gw_status_len;
  /* the highest resourceVersion seen (etcd revisions are decimal; what is
   * not is ignored): the source generation that orders versions */
  _Atomic uint64_t generation;
};

/* The Gateway API kinds are CRDs a cluster may not have: optional. */
#define GW "/apis/gateway.networking.k8s.io/"
static const struct {
  const char *kind, *api_version, *path;
  int optional;
} KINDS[K8S_N_KINDS] = {
    {"IngressClass", "networking.k8s.io/v1", "/apis/networking.k8s.io/v1/ingressclasses", 0},
    {"Ingress", "networking.k8s.io/v1", "/apis/networking.k8s.io/v1/ingresses", 0},
    {"Service", "v1", "/api/v1/services", 0},
    {"EndpointSlice", "discovery.k8s.io/v1", "/apis/discovery.k8s.io/v1/endpointslices", 0},
    {"Secret", "v1", "/api/v1/secrets?fieldSelector=type%3Dkubernetes.io%2Ftls", 0},
    /* CA bundles for client certificates (issue 20): only the ones labelled for it */
    {"ConfigMap", "v1", "/api/v1/configmaps?labelSelector=edge.dev%2Fca-bundle", 0},
    /* htpasswd files of edge.dev/auth-secret and CA bundles (issue 20) */
    {"Secret", "v1", "/api/v1/secrets?fieldSelector=type%3DOpaque", 0},
    {"Namespace", "v1", "/api/v1/namespaces", 0},
    {"GatewayClass", "gateway.networking.k8s.io/v1", GW "v1/gatewayclasses", 1},
    {"Gateway", "gateway.networking.k8s.io/v1", GW "v1/gateways", 1},
    {"HTTPRoute", "gateway.networking.k8s.io/v1", GW "v1/httproutes", 1},
    {"GRPCRoute", "gateway.networking.k8s.io/v1", GW "v1/grpcroutes", 1},
    {"ReferenceGrant", "gateway.networking.k8s.io/v1beta1", GW "v1beta1/referencegrants", 1},
    {"TLSRoute", "gateway.networking.k8s.io/v1alpha2", GW "v1alpha2/tlsroutes", 1},
};
#undef GW

/* ---- HTTP ------------------------------------------------------------------------ */

struct xfer {
  struct k8s_kind *k; /* NULL for patches */
  struct k8s_source *ks;
  struct buf body; /* what the server sent (lists; watches go to the decoder) */
  size_t max;
  struct k8s_watch *watch; /* watches: events applied as they come (k8s_watch.h) */
};

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d) {
  struct xfer *x = ud;
  return atomic_load(&x->ks->stop) ? 1 : 0;
}

static void set_error(struct k8s_source *ks, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_error(struct k8s_source *ks, const char *fmt, ...) {
  va_list ap;
  char msg[256];
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&ks->mu);
  int changed = strcmp(ks->error, msg) != 0;
  snprintf(ks->error, sizeof(ks->error), "%s", msg);
  pthread_mutex_unlock(&ks->mu);
  if (changed && msg[0]) LOG_WARN("k8s_error", "msg=%s", log_q(msg));
  uv_async_send(&ks->async);
}

/* Raises the source generation to rv when it is a larger decimal number. */
static void note_rv(struct k8s_source *ks, const char *rv) {
  if (!rv || !*rv || strlen(rv) > 19) return;
  uint64_t v = 0;
  for (const char *p = rv; *p; p++) {
    if (*p < '0' || *p > '9') return;
    v = v * 10 + (uint64_t)(*p - '0');
  }
  uint64_t cur = atomic_load(&ks->generation);
  while (v > cur && !atomic_compare_exchange_weak(&ks->generation, &cur, v)) {
  }
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
  struct xfer *x = ud;
  size_t n = size * nmemb;
  if (x->watch) {
    long before = x->watch->events;
    pthread_mutex_lock(&x->ks->mu);
    int rc = k8s_watch_feed(x->watch, data, n, x->k->cache);
    pthread_mutex_unlock(&x->ks->mu);
    if (x->watch->rv[0]) {
      snprintf(x->k->rv, sizeof(x->k->rv), "%s", x->watch->rv);
      note_rv(x->ks, x->watch->rv); /* the stream's last resourceVersion is its highest */
    }
    if (x->watch->events != before) uv_async_send(&x->ks->async);
    return rc == 0 ? n : 0; /* 0 stops reading: gone (relist) or a bad stream */
  }
  if (x->body.len + n + 1 > x->max) return 0; /* too large: abort */
  if (buf_append(&x->body, data, n) != 0) return 0;
  return n;
}

/* Performs one request. Returns the HTTP status, or -1 (with err) when there was none. */
static long http(struct k8s_source *ks, struct xfer *x, const char *method, const char *path,
                 const char *body, char *err, size_t errlen) {
  CURL *h = curl_easy_init();
  if (!h) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  struct curl_slist *hdr;
  char *url;
  if (k8s_conn_setup(&ks->conn, h, path, body ? "application/merge-patch+json" : NULL, &hdr,
                     &url) != 0) {
    curl_slist_free_all(hdr);
    free(url);
    curl_easy_cleanup(h);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
  if (x->watch) {
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 600L);
  } else {
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
  }
  if (strcmp(method, "GET") != 0) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  if (body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  if (rc != CURLE_OK && !(x->watch && x->watch->gone && rc == CURLE_WRITE_ERROR)) {
    snprintf(err, errlen, "%s %s: %s", method, path, curl_easy_strerror(rc));
    if (!x->watch || status == 0) status = -1;
  }
  curl_slist_free_all(hdr);
  curl_easy_cleanup(h);
  free(url);
  return status;
}

/* ---- one kind: list and watch ----------------------------------------------------- */

/* Sleeps ms unless stopping. Returns 0, or -1 when the source stops. */
static int nap(struct k8s_source *ks, long ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
  pthread_mutex_lock(&ks->mu);
  while (!atomic_load(&ks->stop))
    if (pthread_cond_timedwait(&ks->cv, &ks->mu, &until) == ETIMEDOUT) break;
  pthread_mutex_unlock(&ks->mu);
  return atomic_load(&ks->stop) ? -1 : 0;
}

/* Lists kind k (following "continue" pages) into a fresh cache. 0, 410 when the continue token
 * expired, or -1 with err. */
static int list_kind(struct k8s_kind *k, char *err, size_t errlen) {
  struct k8s_source *ks = k->ks;
  json_t *fresh = json_object();
  char cont[1024] = "", rv[128] = "";
  for (int page = 0; page < 100000; page++) {
    char path[2048];
    const char *sep = strchr(k->path, '?') ? "&" : "?";
    char *esc = cont[0] ? curl_easy_escape(NULL, cont, 0) : NULL;
    snprintf(path, sizeof(path), "%s%slimit=500%s%s", k->path, sep, esc ? "&continue=" : "",
             esc ? esc : "");
    curl_free(esc);
    struct xfer x = {.k = k, .ks = ks, .max = K8S_MAX_BODY};
    long status = http(ks, &x, "GET", path, NULL, err, errlen);
    if (status == 404 && k->optional) { /* the CRD is not installed: an empty kind */
      buf_free(&x.body);
      if (!k->absent) LOG_INFO("k8s_kind_absent", "kind=%s path=%s", k->kind, log_q(k->path));
      k->absent = 1;
      k->rv[0] = '\0';
      pthread_mutex_lock(&ks->mu);
      json_decref(k->cache);
      k->cache = fresh;
      k->synced = 1;
      pthread_mutex_unlock(&ks->mu);
      uv_async_send(&ks->async);
      return 0;
    }
    if (status != 200) {
      if (status > 0) snprintf(err, errlen, "GET %s: HTTP %ld", k->path, status);
      buf_free(&x.body);
      json_decref(fresh);
      return status == 410 ? 410 : -1;
    }
    json_error_t je;
    json_t *list = json_loadb(x.body.data ? x.body.data : "", x.body.len, 0, &je);
    buf_free(&x.body);
    json_t *items = json_object_get(list, "items");
    if (!json_is_object(list) || (!json_is_array(items) && !json_is_null(items) && items)) {
      snprintf(err, errlen, "GET %s: response is not a list", k->path);
      json_decref(list);
      json_decref(fresh);
      return -1;
    }
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
      if (json_is_object(it)) k8s_watch_cache_put(fresh, k->kind, k->api_version, json_incref(it));
    }
    json_t *md = json_object_get(list, "metadata");
    const char *r = json_string_value(json_object_get(md, "resourceVersion"));
    const char *c = json_string_value(json_object_get(md, "continue"));
    if (r) snprintf(rv, sizeof(rv), "%s", r);
    snprintf(cont, sizeof(cont), "%s", c ? c : "");
    json_decref(list);
    if (!cont[0]) break;
  }
  pthread_mutex_lock(&ks->mu);
  json_decref(k->cache);
  k->cache = fresh;
  k->synced = 1;
  k->relists++;
  pthread_mutex_unlock(&ks->mu);
  snprintf(k->rv, sizeof(k->rv), "%s", rv);
  note_rv(ks, rv);
  LOG_INFO("k8s_listed", "kind=%s objects=%zu resource_version=%s", k->kind,
           json_object_size(fresh), log_q(rv));
  uv_async_send(&ks->async);
  return 0;
}

static void *kind_main(void *arg) {
  struct k8s_kind *k = arg;
  struct k8s_source *ks = k->ks;
  long backoff = K8S_BACKOFF_MIN_MS;
  int need_list = 1;
  unsigned seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)k;
  while (!atomic_load(&ks->stop)) {
    char err[512] = "";
    if (need_list) {
      int rc = list_kind(k, err, sizeof(err));
      if (atomic_load(&ks->stop)) break;
      if (rc != 0) {
        set_error(ks, "%s", err);
        long jitter = backoff / 2 + (long)(rand_r(&seed) % (unsigned)(backoff / 2 + 1));
        if (nap(ks, jitter) < 0) break;
        backoff = backoff * 2 > K8S_BACKOFF_MAX_MS ? K8S_BACKOFF_MAX_MS : backoff * 2;
        continue;
      }
      need_list = 0;
      set_error(ks, "%s", "");
      if (k->absent) { /* nothing to watch until the CRD is installed: look again later */
        if (nap(ks, K8S_ABSENT_RECHECK_MS) < 0) break;
        need_list = 1;
        continue;
      }
    }
    char path[2048];
    const char *sep = strchr(k->path, '?') ? "&" : "?";
    char *rv = curl_easy_escape(NULL, k->rv, 0);
    snprintf(path, sizeof(path), "%s%swatch=1&allowWatchBookmarks=true&timeoutSeconds=300%s%s",
             k->path, sep, rv && *rv ? "&resourceVersion=" : "", rv ? rv : "");
    curl_free(rv);
    struct k8s_watch w;
    k8s_watch_init(&w, k->kind, k->api_version, K8S_MAX_LINE);
    struct xfer x = {.k = k, .ks = ks, .max = K8S_MAX_LINE, .watch = &w};
    long status = http(ks, &x, "GET", path, NULL, err, sizeof(err));
    buf_free(&x.body);
    k8s_watch_free(&w);
    if (atomic_load(&ks->stop)) break;
    if (status == 410 || w.gone) {
      LOG_INFO("k8s_watch_expired", "kind=%s resource_version=%s", k->kind, log_q(k->rv));
      need_list = 1;
      backoff = K8S_BACKOFF_MIN_MS;
      continue;
    }
    if (status == 200 && !w.bad) { /* the watch ended (timeout or dropped): resume */
      backoff = K8S_BACKOFF_MIN_MS;
      if (w.events == 0 && nap(ks, 50) < 0) break; /* never spin on an empty stream */
      continue;
    }
    if (status > 0 && err[0] == '\0')
      snprintf(err, sizeof(err), "watch %s: HTTP %ld", k->kind, status);
    if (w.bad && err[0] == '\0') snprintf(err, sizeof(err), "watch %s: bad event", k->kind);
    set_error(ks, "%s", err);
    long jitter = backoff / 2 + (long)(rand_r(&seed) % (unsigned)(backoff / 2 + 1));
    if (nap(ks, jitter) < 0) break;
    backoff = backoff * 2 > K8S_BACKOFF_MAX_MS ? K8S_BACKOFF_MAX_MS : backoff * 2;
    if (status != 200) need_list = 1; /* a server that failed may have lost our place */
  }
  return NULL;
}

/* ---- status write-back ------------------------------------------------------------ */

static void *patcher_main(void *arg) {
  struct k8s_source *ks = arg;
  pthread_mutex_lock(&ks->mu);
  while (!atomic_load(&ks->stop)) {
    struct patch_job *j = ks->jobs;
    if (!j) {
      pthread_cond_wait(&ks->cv, &ks->mu);
      continue;
    }
    ks->jobs = j->next;
    if (!ks->jobs) ks->jobs_tail = &ks->jobs;
    pthread_mutex_unlock(&ks->mu);
    char err[512] = "";
    if (!leader_is_leader(ks->leader)) { /* lost it while the job waited */
      LOG_INFO("k8s_status_skipped", "path=%s reason=%s", log_q(j->path), log_q("not the leader"));
      free(j->path);
      free(j->body);
      free(j);
      pthread_mutex_lock(&ks->mu);
      continue;
    }
    struct xfer x = {.ks = ks, .max = 1 << 20};
    long status = http(ks, &x, "PATCH", j->path, j->body, err, sizeof(err));
    buf_free(&x.body);
    if (status >= 200 && status < 300)
      LOG_INFO("k8s_status_written", "path=%s", log_q(j->path));
    else
      LOG_WARN("k8s_status_failed", "path=%s status=%ld err=%s", log_q(j->path), status,
               log_q(err));
    free(j->path);
    free(j->body);
    free(j);
    pthread_mutex_lock(&ks->mu);
  }
  pthread_mutex_unlock(&ks->mu);
  return NULL;
}

/* Does the cached Ingress already carry our address? (caller holds mu) */
static int status_is_ours(const struct k8s_source *ks, json_t *ing) {
  json_t *list =
      json_object_get(json_object_get(json_object_get(ing, "status"), "loadBalancer"), "ingress");
  if (json_array_size(list) != 1) return 0;
  json_t *e = json_array_get(list, 0);
  const char *v = json_string_value(json_object_get(e, ks->publish_is_ip ? "ip" : "hostname"));
  return v && !strcmp(v, ks->publish) && json_object_size(e) == 1;
}

/* Queues a PATCH of path with body (both taken). Caller holds mu. */
static void queue_patch(struct k8s_source *ks, char *path, char *body) {
  struct patch_job *j = calloc(1, sizeof(*j));
  if (!j || !path || !body) {
    free(j), free(path), free(body);
    return;
  }
  j->path = path;
  j->body = body;
  *ks->jobs_tail = j;
  ks->jobs_tail = &j->next;
}

/* Gateway API statuses (syncd/gateway_k8s.h): each object whose status differs is patched.
 * Caller holds mu. */
static void gateway_published(struct k8s_source *ks, time_t now) {
  if (!ks->gw_status_len) return;
  Edge__V1__StatusResponse *st =
      edge__v1__status_response__unpack(NULL, ks->gw_status_len, ks->gw_status);
  if (!st) return;
  char when[32];
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
  for (size_t i = 0; i < st->n_gateway_objects; i++) {
    const Edge__V1__GatewayObjectStatus *o = st->gateway_objects[i];
    struct k8s_kind *k = NULL;
    for (int x = 0; x < K8S_N_KINDS && !k; x++)
      if (!strcmp(ks->kinds[x].kind, o->kind)) k = &ks->kinds[x];
    char key[600], path[1024], id[700];
    snprintf(key, sizeof(key), "%s/%s", o->namespace_, o->name);
    json_t *obj = k ? json_object_get(k->cache, key) : NULL;
    if (!obj) continue; /* deleted meanwhile: nothing to write */
    snprintf(id, sizeof(id), "%s %s", o->kind, key);
    const char *api = json_string_value(json_object_get(obj, "apiVersion"));
    json_t *body = gateway_k8s_status_body(obj, o, when);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) continue;
    /* The same body sent moments ago to this same version of the object is still in flight
     * (the watch has not shown it yet); a re-created or changed object gets it again. */
    const char *rv =
        json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
    json_t *last = json_object_get(ks->patched, id);
    const char *last_body = json_string_value(json_object_get(last, "body"));
    const char *last_rv = json_string_value(json_object_get(last, "rv"));
    if (last_body && !strcmp(last_body, text) && last_rv && rv && !strcmp(last_rv, rv) &&
        now - (time_t)json_integer_value(json_object_get(last, "at")) < 10) {
      free(text);
      continue;
    }
    if (gateway_k8s_status_path(o, api, path, sizeof(path)) == 0) {
      json_object_set_new(
          ks->patched, id,
          json_pack("{s:I, s:s, s:s}", "at", (json_int_t)now, "body", text, "rv", rv ? rv : ""));
      queue_patch(ks, strdup(path), text);
    } else {
      free(text);
    }
  }
  edge__v1__status_response__free_unpacked(st, NULL);
}

/* Queues a status PATCH for each served Ingress whose status is not ours
 * yet. Caller holds mu. */
static void ingress_published(struct k8s_source *ks, time_t now) {
  struct k8s_kind *ingk = &ks->kinds[1];
  size_t i;
  json_t *v;
  json_array_foreach(ks->served, i, v) {
    const char *id = json_string_value(v);
    json_t *ing = json_object_get(ingk->cache, id);
    if (!ing || status_is_ours(ks, ing)) continue;
    json_t *last = json_object_get(ks->patched, id);
    if (last && now - (time_t)json_integer_value(last) < 10) continue; /* in flight */
    const char *slash = strchr(id, '/');
    if (!slash) continue;
    struct patch_job *j = calloc(1, sizeof(*j));
    if (!j) break;
    int a = asprintf(&j->path, "/apis/networking.k8s.io/v1/namespaces/%.*s/ingresses/%s/status",
                     (int)(slash - id), id, slash + 1);
    json_t *body = json_pack("{s:{s:{s:[{s:s}]}}}", "status", "loadBalancer", "ingress",
                             ks->publish_is_ip ? "ip" : "hostname", ks->publish);
    j->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (a < 0 || !j->body) {
      if (a >= 0) free(j->path);
      free(j->body);
      free(j);
      continue;
    }
    *ks->jobs_tail = j;
    ks->jobs_tail = &j->next;
    json_object_set_new(ks->patched, id, json_integer((json_int_t)now));
  }
}

/* Writes what the last update decided (loop thread): Ingress addresses and
 * the Gateway API conditions. Only the leader writes (a follower, or a
 * replica whose Lease lapsed, queues nothing). */
static void write_back(struct k8s_source *ks) {
  if (!leader_is_leader(ks->leader)) return;
  time_t now = time(NULL);
  pthread_mutex_lock(&ks->mu);
  gateway_published(ks, now);
  if (ks->publish) ingress_published(ks, now);
  pthread_cond_broadcast(&ks->cv);
  pthread_mutex_unlock(&ks->mu);
}

static void k8s_published(struct syncd_source *s, const struct syncd_update *u) {
  struct k8s_source *ks = s->impl;
  if (u->gateway_status_changed) {
    uint8_t *copy = malloc(u->gateway_status_len + 1);
    if (copy) {
      if (u->gateway_status_len) memcpy(copy, u->gateway_status, u->gateway_status_len);
      free(ks->gw_status);
      ks->gw_status = copy;
      ks->gw_status_len = u->gateway_status_len;
    }
  }
  if (ks->publish) {
    json_t *served = json_array();
    for (size_t i = 0; served && i < u->n_served; i++)
      json_array_append_new(served, json_string(u->served[i]));
    if (served) {
      json_decref(ks->served);
      ks->served = served;
    }
  }
  write_back(ks);
}

/* Leadership changed (loop): a new leader writes what is missing now. */
static void on_leadership(void *ud, int leader) {
  struct k8s_source *ks = ud;
  if (leader) {
    json_object_clear(ks->patched); /* a PATCH of the old leader's era proves nothing */
    write_back(ks);
  }
}

/* ---- the loop side ----------------------------------------------------------------- */

static void on_async(uv_async_t *a) {
  struct k8s_source *ks = a->data;
  int all = 1;
  char err[256];
  pthread_mutex_lock(&ks->mu);
  for (int i = 0; i < K8S_N_KINDS; i++) all &= ks->kinds[i].synced;
  snprintf(err, sizeof(err), "%s", ks->error);
  pthread_mutex_unlock(&ks->mu);
  if (err[0]) source_set_health(ks->s, 0, err);
  if (!all) return;
  source_changed(ks->s);
}

static int k8s_collect(struct syncd_source *s, struct manifest_set *set, char *err, size_t errlen) {
  struct k8s_source *ks = s->impl;
  int rc = 0;
  set->borrow_locations = 1; /* every location is "" */
  pthread_mutex_lock(&ks->mu);
  for (int i = 0; i < K8S_N_KINDS && rc == 0; i++) {
    if (!ks->kinds[i].synced) {
      snprintf(err, errlen, "%s not listed yet", ks->kinds[i].kind);
      rc = -EAGAIN;
      break;
    }
    const char *key;
    json_t *obj;
    json_object_foreach(ks->kinds[i].cache, key, obj) {
      if (manifest_add(set, obj, "") < 0) {
        rc = -ENOMEM;
        break;
      }
    }
  }
  pthread_mutex_unlock(&ks->mu);
  return rc;
}

static int is_ip_literal(const char *s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void k8s_free(struct k8s_source *ks) {
  for (int i = 0; i < K8S_N_KINDS; i++) json_decref(ks->kinds[i].cache);
  while (ks->jobs) {
    struct patch_job *j = ks->jobs;
    ks->jobs = j->next;
    free(j->path);
    free(j->body);
    free(j);
  }
  json_decref(ks->patched);
  json_decref(ks->served);
  free(ks->gw_status);
  k8s_conn_free(&ks->conn);
  free(ks->publish);
  pthread_mutex_destroy(&ks->mu);
  pthread_cond_destroy(&ks->cv);
  free(ks);
}

/* Stops and joins every thread. Blocks at most for one curl progress tick. */
static void join_threads(struct k8s_source *ks) {
  pthread_mutex_lock(&ks->mu);
  atomic_store(&ks->stop, 1);
  pthread_cond_broadcast(&ks->cv);
  pthread_mutex_unlock(&ks->mu);
  for (int i = 0; i < K8S_N_KINDS; i++)
    if (ks->kinds[i].started) pthread_join(ks->kinds[i].thread, NULL);
  if (ks->patcher_started) pthread_join(ks->patcher, NULL);
}

static void on_async_closed_after_failed_start(uv_handle_t *h) {
  k8s_free(h->data);
}

static int k8s_start(struct syncd_source *s, const struct syncd_source_opts *o, char *err,
                     size_t errlen) {
  pthread_once(&curl_once, curl_init_once);
  struct k8s_source *ks = calloc(1, sizeof(*ks));
  if (!ks) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  pthread_mutex_init(&ks->mu, NULL);
  pthread_cond_init(&ks->cv, NULL);
  ks->s = s;
  ks->jobs_tail = &ks->jobs;
  ks->patched = json_object();
  int rc = k8s_conn_load(o->kubeconfig, &ks->conn, err, errlen);
  if (rc < 0) {
    k8s_free(ks);
    return rc;
  }
  if (o->publish_address && *o->publish_address) {
    ks->publish = strdup(o->publish_address);
    ks->publish_is_ip = is_ip_literal(o->publish_address);
  }
  ks->leader = o->leader;
  ks->served = json_array();
  for (int i = 0; i < K8S_N_KINDS; i++) {
    struct k8s_kind *k = &ks->kinds[i];
    k->kind = KINDS[i].kind;
    k->api_version = KINDS[i].api_version;
    k->path = KINDS[i].path;
    k->optional = KINDS[i].optional;
    k->ks = ks;
    k->cache = json_object();
  }
  uv_async_init(s->loop, &ks->async, on_async);
  ks->async.data = ks;
  s->impl = ks;
  for (int i = 0; i < K8S_N_KINDS && rc == 0; i++) {
    rc = -pthread_create(&ks->kinds[i].thread, NULL, kind_main, &ks->kinds[i]);
    ks->kinds[i].started = rc == 0;
  }
  if (rc == 0) { /* Gateway API statuses are written with or without a published address */
    rc = -pthread_create(&ks->patcher, NULL, patcher_main, ks);
    ks->patcher_started = rc == 0;
  }
  if (rc < 0) {
    snprintf(err, errlen, "cannot start threads: %s", strerror(-rc));
    join_threads(ks);
    s->impl = NULL;
    uv_close((uv_handle_t *)&ks->async, on_async_closed_after_failed_start);
    return rc;
  }
  if (ks->leader) leader_watch(ks->leader, on_leadership, ks);
  LOG_INFO("k8s_started", "server=%s publish=%s leader_election=%s", log_q(ks->conn.server),
           log_q(ks->publish ? ks->publish : ""), ks->leader ? "on" : "off");
  return 0;
}

static void on_async_closed(uv_handle_t *h) {
  struct k8s_source *ks = h->data;
  struct syncd_source *s = ks->s;
  k8s_free(ks);
  source_kind_stopped(s);
}

static void k8s_stop(struct syncd_source *s) {
  struct k8s_source *ks = s->impl;
  if (ks->leader) leader_unwatch(ks->leader, on_leadership, ks);
  join_threads(ks);
  uv_close((uv_handle_t *)&ks->async, on_async_closed);
}

static uint64_t k8s_generation(struct syncd_source *s) {
  struct k8s_source *ks = s->impl;
  return atomic_load(&ks->generation);
}

const struct source_ops source_k8s_ops = {k8s_start, k8s_collect, k8s_published, k8s_stop,
                                          k8s_generation};
