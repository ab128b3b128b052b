/*
 * ocsp_stapler — cache of verified OCSP answers by certificate, the
 * fetcher thread, and the stapling of packed Certificate resources (see
 * ocsp_stapler.h).
 *
 * Entries are keyed by the SHA-256 of the certificate chain's PEM; each
 * knows its responder (or that it has none), its current answer, when to
 * fetch next and whether a fetch is in flight. The fetcher thread takes
 * jobs from a mutex-guarded list, runs one blocking libcurl POST at a time
 * and puts the answer on a done list; uv_async brings it to the loop.
 * A one-second tick starts due fetches and drops expired staples.
 */
#include "syncd/ocsp_stapler.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "syncd/store.h"
#include "common/metrics.h"
#include "edge/v1/resources.pb-c.h"
#include "syncd/ocsp.h"

#define BUCKETS 1024
#define RETRY_MIN_S 30
#define RETRY_MAX_S 3600

struct entry {
  struct entry *next;
  uint8_t digest[32];
  char name[256];             /* the Certificate resource's name, for logs */
  struct ocsp_target *target; /* NULL: no usable responder */
  uint8_t *der;               /* the current verified answer (NULL: none) */
  size_t der_len;
  struct ocsp_result res;
  int64_t due; /* next fetch (epoch s) */
  int failures;
  int in_flight, seen;
};

struct job {
  struct job *next;
  uint8_t digest[32];
  char url[OCSP_URL_MAX];
  uint8_t *req;
  size_t req_len;
  uint32_t timeout_ms;
  /* filled by the fetcher */
  uint8_t *resp;
  size_t resp_len;
  char err[256];
};

struct ocsp_stapler {
  uv_loop_t *loop;
  struct ocsp_stapler_opts o;
  void (*changed)(void *);
  void *ud;
  struct entry *buckets[BUCKETS];
  uv_timer_t tick;
  uv_async_t async;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct job *todo, *done;
  int quit, dirty, handles;
  void (*on_closed)(void *);
  void *closed_arg;
  struct metrics_counter *c_ok, *c_failed;
  struct metrics_gauge *g_stapled, *g_failing, *g_none;
};

static int64_t now_s(void) {
  return (int64_t)time(NULL);
}

static int sha256(const uint8_t *p, size_t n, uint8_t out[32]) {
  unsigned l = 0;
  return EVP_Digest(p, n, out, &l, EVP_sha256(), NULL) == 1 && l == 32 ? 0 : -1;
}

static struct entry **bucket(struct ocsp_stapler *s, const uint8_t d[32]) {
  uint32_t h;
  memcpy(&h, d, sizeof(h));
  return &s->buckets[h % BUCKETS];
}

static struct entry *find(struct ocsp_stapler *s, const uint8_t d[32]) {
  for (struct entry *e = *bucket(s, d); e; e = e->next)
    if (memcmp(e->digest, d, 32) == 0) return e;
  return NULL;
}

static void entry_free(struct entry *e) {
  ocsp_target_free(e->target);
  free(e->der);
  free(e);
}

/* ---- the fetcher thread ----------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  struct job *j = ud;
  size_t len = size * n;
  if (j->resp_len + len > OCSP_RESPONSE_MAX) return 0; /* aborts the transfer */
  uint8_t *b = realloc(j->resp, j->resp_len + len);
  if (!b) return 0;
  memcpy(b + j->resp_len, p, len);
  j->resp = b;
  j->resp_len += len;
  return len;
}

static void fetch(struct job *j) {
  CURL *h = curl_easy_init();
  struct curl_slist *hdrs = NULL;
  hdrs = curl_slist_append(hdrs, "Content-Type: application/ocsp-request");
  hdrs = curl_slist_append(hdrs, "Accept: application/ocsp-response");
  if (!h || !hdrs) {
    snprintf(j->err, sizeof(j->err), "out of memory");
    goto out;
  }
  curl_easy_setopt(h, CURLOPT_URL, j->url);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_NOPROXY, "127.0.0.1,localhost,::1");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)j->timeout_ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)j->timeout_ms);
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, j->req);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)j->req_len);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "edge-syncd-ocsp");
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, j);
  CURLcode rc = curl_easy_perform(h);
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  if (rc != CURLE_OK)
    snprintf(j->err, sizeof(j->err), "%s",
             rc == CURLE_WRITE_ERROR ? "answer too large" : curl_easy_strerror(rc));
  else if (code != 200)
    snprintf(j->err, sizeof(j->err), "responder answered HTTP %ld", code);
out:
  curl_slist_free_all(hdrs);
  if (h) curl_easy_cleanup(h);
}

static void *fetcher_main(void *arg) {
  struct ocsp_stapler *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (!s->todo && !s->quit) pthread_cond_wait(&s->cv, &s->mu);
    if (s->quit) break;
    struct job *j = s->todo;
    s->todo = j->next;
    pthread_mutex_unlock(&s->mu);
    fetch(j);
    pthread_mutex_lock(&s->mu);
    j->next = s->done;
    s->done = j;
    uv_async_send(&s->async);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static void job_free(struct job *j) {
  free(j->req);
  free(j->resp);
  free(j);
}

/* ---- the loop side ------------------------------------------------------------- */

static void start_fetch(struct ocsp_stapler *s, struct entry *e) {
  struct job *j = calloc(1, sizeof(*j));
  size_t len;
  const uint8_t *req = ocsp_target_request(e->target, &len);
  if (j) j->req = malloc(len);
  if (!j || !j->req) {
    free(j);
    return; /* retried on the next tick */
  }
  memcpy(j->digest, e->digest, 32);
  snprintf(j->url, sizeof(j->url), "%s", ocsp_target_url(e->target));
  memcpy(j->req, req, len);
  j->req_len = len;
  j->timeout_ms = s->o.timeout_ms;
  e->in_flight = 1;
  pthread_mutex_lock(&s->mu);
  j->next = s->todo; /* order does not matter */
  s->todo = j;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static void fetch_failed(struct ocsp_stapler *s, struct entry *e, const char *why) {
  int64_t backoff = RETRY_MIN_S;
  for (int i = 0; i < e->failures && backoff < RETRY_MAX_S; i++) backoff *= 2;
  if (backoff > RETRY_MAX_S) backoff = RETRY_MAX_S;
  e->failures++;
  e->due = now_s() + backoff;
  if (s->c_failed) metrics_counter_inc(s->c_failed);
  LOG_WARN("ocsp_fetch_failed", "certificate=%s responder=%s reason=%s retry_s=%lld",
           log_q(e->name), log_q(ocsp_target_url(e->target)), log_q(why), (long long)backoff);
}

static void on_result(struct ocsp_stapler *s, struct job *j) {
  struct entry *e = find(s, j->digest);
  if (!e || !e->target) return; /* forgotten meanwhile */
  e->in_flight = 0;
  if (j->err[0]) {
    fetch_failed(s, e, j->err);
    return;
  }
  struct ocsp_result r;
  char why[256];
  int64_t now = now_s();
  if (ocsp_check_response(e->target, j->resp, j->resp_len, now, &r, why, sizeof(why)) != 0) {
    fetch_failed(s, e, why);
    return;
  }
  int same = e->der && e->der_len == j->resp_len && memcmp(e->der, j->resp, j->resp_len) == 0;
  free(e->der);
  e->der = j->resp;
  e->der_len = j->resp_len;
  j->resp = NULL;
  e->res = r;
  e->failures = 0;
  e->due = ocsp_refresh_at(&r, now, s->o.min_refresh_s, s->o.max_refresh_s);
  if (s->c_ok) metrics_counter_inc(s->c_ok);
  LOG_INFO("ocsp_stapled", "certificate=%s status=%s next_update=%lld refresh_in_s=%lld",
           log_q(e->name), ocsp_status_name(r.status), (long long)r.next_update,
           (long long)(e->due - now));
  if (!same) s->dirty = 1;
}

static void update_gauges(struct ocsp_stapler *s) {
  size_t with = 0, stapled = 0, failing = 0;
  for (size_t b = 0; b < BUCKETS; b++)
    for (struct entry *e = s->buckets[b]; e; e = e->next) {
      if (!e->target) continue;
      with++;
      stapled += e->der != NULL;
      failing += e->failures > 0;
    }
  if (s->g_stapled) metrics_gauge_set(s->g_stapled, (double)stapled);
  if (s->g_failing) metrics_gauge_set(s->g_failing, (double)failing);
  if (s->g_none) metrics_gauge_set(s->g_none, (double)(with - stapled));
}

static void notify(struct ocsp_stapler *s) {
  update_gauges(s);
  if (!s->dirty || s->quit) return;
  s->dirty = 0;
  s->changed(s->ud);
}

static void on_async(uv_async_t *a) {
  struct ocsp_stapler *s = a->data;
  pthread_mutex_lock(&s->mu);
  struct job *done = s->done;
  s->done = NULL;
  pthread_mutex_unlock(&s->mu);
  while (done) {
    struct job *j = done;
    done = j->next;
    on_result(s, j);
    job_free(j);
  }
  notify(s);
}

static void on_tick(uv_timer_t *t) {
  struct ocsp_stapler *s = t->data;
  int64_t now = now_s();
  for (size_t b = 0; b < BUCKETS; b++)
    for (struct entry *e = s->buckets[b]; e; e = e->next) {
      if (!e->target) continue;
      if (e->der && e->res.next_update && now >= e->res.next_update) {
        LOG_WARN("ocsp_staple_expired", "certificate=%s next_update=%lld", log_q(e->name),
                 (long long)e->res.next_update);
        free(e->der);
        e->der = NULL;
        e->der_len = 0;
        s->dirty = 1;
      }
      if (!e->in_flight && e->due <= now) start_fetch(s, e);
    }
  notify(s);
}

/* ---- stapling -------------------------------------------------------------------- */

/* The entry for a certificate (created with its responder, if any). */
static struct entry *entry_for(struct ocsp_stapler *s, const Edge__V1__Certificate *c) {
  uint8_t d[32];
  if (sha256(c->cert_pem.data, c->cert_pem.len, d) != 0) return NULL;
  struct entry *e = find(s, d);
  if (e) return e;
  e = calloc(1, sizeof(*e));
  if (!e) return NULL;
  memcpy(e->digest, d, 32);
  snprintf(e->name, sizeof(e->name), "%s", c->name);
  char why[256];
  if (ocsp_target_new((const char *)c->cert_pem.data, c->cert_pem.len, &e->target, why,
                      sizeof(why)) != 0)
    LOG_DEBUG("ocsp_not_stapled", "certificate=%s reason=%s", log_q(c->name), log_q(why));
  struct entry **b = bucket(s, d);
  e->next = *b;
  *b = e;
  return e;
}

/* Sets c's staple from e; 1 when it changed. */
static int staple(const struct entry *e, Edge__V1__Certificate *c) {
  const uint8_t *der = e && e->der ? e->der : NULL;
  size_t len = der ? e->der_len : 0;
  int64_t next = der ? e->res.next_update : 0;
  if (c->ocsp_response.len == len && (!len || memcmp(c->ocsp_response.data, der, len) == 0) &&
      c->ocsp_next_update == next)
    return 0;
  c->ocsp_response = (ProtobufCBinaryData){len, (uint8_t *)der};
  c->ocsp_next_update = next;
  return 1;
}

static int restaple(struct ocsp_stapler *s, const uint8_t *bytes, size_t len, int create,
                    uint8_t **out, size_t *out_len) {
  Edge__V1__Resource *r = edge__v1__resource__unpack(NULL, len, bytes);
  if (!r) return 0;
  int rc = 0;
  if (r->kind_case == EDGE__V1__RESOURCE__KIND_CERTIFICATE && r->certificate) {
    Edge__V1__Certificate *c = r->certificate;
    uint8_t d[32];
    struct entry *e = NULL;
    if (create)
      e = entry_for(s, c);
    else if (sha256(c->cert_pem.data, c->cert_pem.len, d) == 0)
      e = find(s, d);
    if (e) e->seen = 1;
    ProtobufCBinaryData keep = c->ocsp_response;
    if (e && e->target && staple(e, c)) {
      size_t n = edge__v1__resource__get_packed_size(r);
      *out = malloc(n ? n : 1);
      if (*out) {
        edge__v1__resource__pack(r, *out);
        *out_len = n;
        rc = 1;
      } else {
        rc = -ENOMEM;
      }
    }
    c->ocsp_response = keep; /* freed with r: never free the cache's bytes */
  }
  edge__v1__resource__free_unpacked(r, NULL);
  return rc;
}

int ocsp_stapler_staple_one(struct ocsp_stapler *s, const uint8_t *bytes, size_t len, uint8_t **out,
                            size_t *out_len) {
  return restaple(s, bytes, len, 0, out, out_len);
}

/* Forgets the answers of certificates not marked seen (none in flight). */
static void forget_unseen(struct ocsp_stapler *s) {
  for (size_t b = 0; b < BUCKETS; b++) {
    struct entry **pp = &s->buckets[b];
    while (*pp) {
      struct entry *e = *pp;
      if (e->seen || e->in_flight) {
        pp = &e->next;
        continue;
      }
      *pp = e->next;
      entry_free(e);
    }
  }
}

static void clear_seen(struct ocsp_stapler *s) {
  for (size_t b = 0; b < BUCKETS; b++)
    for (struct entry *e = s->buckets[b]; e; e = e->next) e->seen = 0;
}

int ocsp_stapler_staple_update(struct ocsp_stapler *s, const struct syncd_resource *res, size_t n,
                               struct syncd_resource **out) {
  *out = NULL;
  size_t first = 0;
  while (first < n && res[first].type != EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE)
    first++;
  if (first == n) return 0; /* no certificate: nothing to copy */
  struct syncd_resource *copy = malloc(n * sizeof(*copy));
  if (!copy) return -ENOMEM;
  memcpy(copy, res, n * sizeof(*copy));
  int rc = 0;
  for (size_t i = first; i < n; i++) {
    if (res[i].type != EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE) continue;
    uint8_t *b = NULL;
    size_t len = 0;
    int r = restaple(s, res[i].bytes, res[i].len, 1, &b, &len);
    if (r < 0) rc = r;
    if (r == 1) {
      copy[i].bytes = b;
      copy[i].len = len;
    }
  }
  update_gauges(s);
  *out = copy;
  return rc;
}

void ocsp_stapler_free_update(const struct syncd_resource *res, struct syncd_resource *copy,
                              size_t n) {
  for (size_t i = 0; copy && i < n; i++)
    if (copy[i].bytes != res[i].bytes) free(copy[i].bytes);
  free(copy);
}

void ocsp_stapler_sweep(struct ocsp_stapler *s, struct store_entry *const *all, size_t n) {
  clear_seen(s);
  for (size_t i = 0; i < n; i++) {
    if (all[i]->removed || all[i]->type != EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE)
      continue;
    uint8_t *b = NULL;
    size_t len = 0;
    if (restaple(s, all[i]->bytes, all[i]->len, 0, &b, &len) == 1) free(b); /* marks seen */
  }
  forget_unseen(s);
  update_gauges(s);
}

void ocsp_stapler_counts(const struct ocsp_stapler *s, size_t *with_responder, size_t *stapled) {
  size_t w = 0, st = 0;
  for (size_t b = 0; b < BUCKETS; b++)
    for (const struct entry *e = s->buckets[b]; e; e = e->next) {
      w += e->target != NULL;
      st += e->target && e->der;
    }
  if (with_responder) *with_responder = w;
  if (stapled) *stapled = st;
}

/* ---- life cycle ------------------------------------------------------------------ */

int ocsp_stapler_new(uv_loop_t *loop, const struct ocsp_stapler_opts *o, void (*changed)(void *),
                     void *ud, struct ocsp_stapler **out) {
  struct ocsp_stapler *s = calloc(1, sizeof(*s));
  if (!s) return -ENOMEM;
  s->loop = loop;
  if (o) s->o = *o;
  if (!s->o.timeout_ms) s->o.timeout_ms = 5000;
  if (!s->o.min_refresh_s) s->o.min_refresh_s = 60;
  if (!s->o.max_refresh_s) s->o.max_refresh_s = 3600;
  s->changed = changed;
  s->ud = ud;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  if (pthread_create(&s->thread, NULL, fetcher_main, s) != 0) { /* before any handle exists */
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    return -ENOMEM;
  }
  uv_async_init(loop, &s->async, on_async);
  s->async.data = s;
  uv_timer_init(loop, &s->tick);
  s->tick.data = s;
  uv_timer_start(&s->tick, on_tick, 1000, 1000);
  s->handles = 2;
  struct metrics_registry *m = s->o.metrics;
  if (m) {
    static const char fn[] = "edge_syncd_ocsp_fetches_total";
    static const char fh[] = "OCSP responses fetched for stapling, by result.";
    s->c_ok = metrics_counter(m, fn, fh, "result=\"ok\"");
    s->c_failed = metrics_counter(m, fn, fh, "result=\"failed\"");
    static const char gn[] = "edge_syncd_ocsp_certificates";
    static const char gh[] = "Certificates with an OCSP responder, by staple state.";
    s->g_stapled = metrics_gauge(m, gn, gh, "state=\"stapled\"");
    s->g_failing = metrics_gauge(m, gn, gh, "state=\"failing\"");
    s->g_none = metrics_gauge(m, gn, gh, "state=\"none\"");
  }
  *out = s;
  return 0;
}

static void closed(uv_handle_t *h) {
  struct ocsp_stapler *s = h->data;
  if (--s->handles > 0) return;
  for (size_t b = 0; b < BUCKETS; b++)
    while (s->buckets[b]) {
      struct entry *e = s->buckets[b];
      s->buckets[b] = e->next;
      entry_free(e);
    }
  while (s->todo) {
    struct job *j = s->todo;
    s->todo = j->next;
    job_free(j);
  }
  while (s->done) {
    struct job *j = s->done;
    s->done = j->next;
    job_free(j);
  }
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  void (*done)(void *) = s->on_closed;
  void *arg = s->closed_arg;
  free(s);
  if (done) done(arg);
}

void ocsp_stapler_close(struct ocsp_stapler *s, void (*done)(void *), void *arg) {
  if (!s) {
    if (done) done(arg);
    return;
  }
  pthread_mutex_lock(&s->mu);
  s->quit = 1;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->thread, NULL); /* at most one fetch (bounded by the timeout) */
  s->on_closed = done;
  s->closed_arg = arg;
  uv_close((uv_handle_t *)&s->async, closed);
  uv_close((uv_handle_t *)&s->tick, closed);
}
