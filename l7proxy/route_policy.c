/*
 * route_policy — the per-route policy steps over the exchange's messages
 * (see route_policy.h for the order and the parking rules).
 *
 * Asynchronous steps and who frees what:
 *   - bcrypt: a heap job on libuv's thread pool, shared by the requests
 *     that ask the same check meanwhile (one waiter record each);
 *     cancelling only orphans the waiter (waiter->ex = NULL) and the
 *     after-work callback frees both;
 *   - Redis: a request handle owned by rl_redis; cancelling marks it so
 *     its callback never runs;
 *   - external auth: struct rp_auth, owned by the parent exchange and kept
 *     between its requests; the subrequest is a second exchange whose
 *     "downstream" is this file; its end is acted on from a zero timer so
 *     the parent never continues inside the subrequest's own upstream
 *     callbacks.
 */
#include "l7proxy/route_policy.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/policy.h"
#include "l7proxy/affinity.h"
#include "l7proxy/cors.h"
#include "l7proxy/exchange.h"
#include "l7proxy/htpasswd.h"
#include "l7proxy/ratelimit.h"
#include "l7proxy/rl_redis.h"
#include "l7proxy/worker_internal.h"

enum { STEP_PREFLIGHT = 0, STEP_RATE_LIMIT, STEP_BASIC_AUTH, STEP_EXT_AUTH, STEP_DONE };
enum { WAIT_NONE = 0, WAIT_BCRYPT, WAIT_REDIS, WAIT_AUTH };
enum { NEXT = 0, PARKED = 1, ANSWERED = 2 };

#define RP_LOCAL_BUCKETS 65536

/* ---- per-worker state ------------------------------------------------------ */

struct rp_bcrypt;

struct rp_worker {
  struct htpasswd_cache cache;
  struct rp_bcrypt *inflight; /* bcrypt checks on the thread pool */
  struct rl_redis *redis;
  int warned_no_redis;
  struct metrics_counter *c_denied[4]; /* rate_limit, basic_auth, external_auth, cors */
  struct metrics_counter *c_redis_failed, *c_auth_failed;
};

enum { DENY_RATE, DENY_BASIC, DENY_EXT, DENY_CORS };

static struct rp_worker *rp_worker(struct worker *w) {
  if (w->policy) return w->policy;
  struct rp_worker *p = calloc(1, sizeof(*p));
  if (!p) return NULL;
  struct metrics_registry *m = w->cfg->metrics;
  if (m) {
    static const char *const names[] = {"rate_limit", "basic_auth", "external_auth", "cors"};
    for (int i = 0; i < 4; i++) {
      char labels[64];
      snprintf(labels, sizeof(labels), "policy=\"%s\"", names[i]);
      p->c_denied[i] = metrics_counter(m, "edge_l7_policy_denied_total",
                                       "Requests a route policy answered instead of the upstream "
                                       "(429, 401, 403 and auth failures).",
                                       labels);
    }
    p->c_redis_failed =
        metrics_counter(m, "edge_l7_ratelimit_redis_failures_total",
                        "Cluster-wide rate-limit decisions Redis did not make in time (the "
                        "request passed: fail open).",
                        "");
    p->c_auth_failed = metrics_counter(m, "edge_l7_external_auth_failures_total",
                                       "External-auth subrequests without a usable answer.", "");
  }
  if (w->cfg->ratelimit_redis && rl_redis_new(&w->loop, w->cfg->ratelimit_redis,
                                              w->cfg->ratelimit_redis_timeout_ms, &p->redis) != 0)
    LOG_ERROR("ratelimit_redis_failed", "addr=%s", log_q(w->cfg->ratelimit_redis));
  w->policy = p;
  return p;
}

void rp_worker_start(struct worker *w) {
  if (w->cfg->ratelimit_redis) rp_worker(w);
}

void rp_worker_close(struct worker *w) {
  if (w->policy && w->policy->redis) {
    rl_redis_close(w->policy->redis);
    w->policy->redis = NULL;
  }
}

void rp_worker_free(struct worker *w) {
  if (!w->policy) return;
  OPENSSL_cleanse(&w->policy->cache, sizeof(w->policy->cache));
  free(w->policy);
  w->policy = NULL;
}

static void count(struct exchange *ex, struct metrics_counter *c) {
  (void)ex;
  if (c) metrics_counter_inc(c);
}

/* ---- the step machine ------------------------------------------------------ */

static int run_steps(struct exchange *ex);

/* An asynchronous step ended with verdict NEXT (go on) or ANSWERED. */
static void resume(struct exchange *ex, int verdict) {
  ex->rp_wait = NULL;
  ex->rp_wait_kind = WAIT_NONE;
  if (verdict == ANSWERED || !ex->active || ex->local) return;
  ex->rp_stage++;
  if (run_steps(ex) == NEXT) ex_policy_done(ex);
}

static void deny(struct exchange *ex, int which, int status, const struct msg_header *extra,
                 size_t n) {
  struct rp_worker *p = ex->w->policy;
  if (p) count(ex, p->c_denied[which]);
  ex_local_with(ex, status, extra, n, NULL);
}

/* ---- CORS ------------------------------------------------------------------ */

static int step_preflight(struct exchange *ex) {
  const struct l7_route *r = ex->route;
  if (!r->cors || !cors_is_preflight(&ex->req)) return NEXT;
  struct msg_header hs[8];
  size_t n = cors_preflight_headers(r->cors, &ex->req, hs, 8);
  /* an answered preflight has no body: 204 with the allow headers (or
   * without them when something is not allowed: the browser refuses) */
  ex_local_with(ex, 204, hs, n, "");
  return ANSWERED;
}

/* ---- rate limits ------------------------------------------------------------ */

static struct rl_table *local_buckets;
static pthread_once_t local_once = PTHREAD_ONCE_INIT;

static void local_buckets_init(void) {
  if (rl_table_new(RP_LOCAL_BUCKETS, &local_buckets) != 0) local_buckets = NULL;
}

/* The bucket key value of the request: the client address or a header. */
static void rate_key(const struct exchange *ex, const Edge__V1__RateLimit *rl, const char **v,
                     size_t *n) {
  if (rl->by == EDGE__V1__RATE_LIMIT_KEY__RATE_LIMIT_KEY_HEADER) {
    const struct msg_header *h = msg_find(&ex->req, rl->header);
    *v = h ? h->value : "";
    *n = h ? h->value_len : 0;
    return;
  }
  *v = ex->client;
  *n = strlen(ex->client);
}

static void too_many(struct exchange *ex, uint64_t retry_us) {
  char secs[24];
  struct msg_header h = {"retry-after", 11, secs, 0};
  h.value_len = (size_t)snprintf(secs, sizeof(secs), "%llu",
                                 (unsigned long long)((retry_us + 999999) / 1000000));
  deny(ex, DENY_RATE, 429, &h, retry_us ? 1 : 0);
}

static void on_redis(void *arg, int verdict) {
  struct exchange *ex = arg;
  if (verdict == RL_REDIS_DENY) {
    ex->rp_wait = NULL;
    ex->rp_wait_kind = WAIT_NONE;
    too_many(ex, 0);
    return;
  }
  if (verdict == RL_REDIS_FAILED) count(ex, ex->w->policy->c_redis_failed);
  resume(ex, NEXT);
}

static int step_rate_limit(struct exchange *ex) {
  const struct l7_route *r = ex->route;
  if (!r->rate_limit) return NEXT;
  const char *v;
  size_t n;
  rate_key(ex, r->rate_limit, &v, &n);
  struct rp_worker *p = rp_worker(ex->w);
  if (r->rate_limit->scope == EDGE__V1__RATE_LIMIT_SCOPE__RATE_LIMIT_SCOPE_CLUSTER && p) {
    if (p->redis) {
      struct rl_redis_req *q =
          rl_redis_take(p->redis, r->rl_bucket, strlen(r->rl_bucket), v, n, &r->rl, on_redis, ex);
      if (!q) { /* not connected: fail open */
        count(ex, p->c_redis_failed);
        return NEXT;
      }
      ex->rp_wait = q;
      ex->rp_wait_kind = WAIT_REDIS;
      return PARKED;
    }
    if (!p->warned_no_redis) {
      p->warned_no_redis = 1;
      LOG_WARN("ratelimit_cluster_without_redis",
               "route=%s reason=\"no --ratelimit-redis: the limit is counted per proxy\"",
               log_q(r->path));
    }
  }
  pthread_once(&local_once, local_buckets_init);
  if (!local_buckets) return NEXT;
  uint64_t key[2], retry = 0;
  rl_table_key(local_buckets, r->rl_bucket, strlen(r->rl_bucket), v, n, key);
  if (rl_table_take(local_buckets, key, uv_hrtime() / 1000, &r->rl, &retry)) return NEXT;
  too_many(ex, retry);
  return ANSWERED;
}

/* ---- basic auth -------------------------------------------------------------- */

/* One bcrypt check on the thread pool, shared by every request that asks
 * the same (hash, user, password) while it runs (a client's parallel
 * requests cost one check, not one each). */
struct rp_bwaiter {
  struct rp_bwaiter *next;
  struct exchange *ex; /* NULL: cancelled (the exchange moved on) */
};

struct rp_bcrypt {
  uv_work_t work;
  struct rp_bcrypt *next; /* the worker's checks in flight */
  struct rp_worker *p;
  struct rp_bwaiter *waiters;
  int known, ok;
  char hash[64];
  char pass[HTPASSWD_MAX_CREDENTIALS];
  size_t plen;
  uint8_t cache_key[32];
};

static void unauthorized(struct exchange *ex) {
  const char *c = ex->route->basic_challenge;
  struct msg_header h = {"www-authenticate", 16, c, strlen(c)};
  deny(ex, DENY_BASIC, 401, &h, 1);
}

static void bcrypt_work(uv_work_t *req) {
  struct rp_bcrypt *b = req->data;
  b->ok = htpasswd_check(b->hash, b->pass, b->plen);
  OPENSSL_cleanse(b->pass, sizeof(b->pass));
}

static void bcrypt_done(uv_work_t *req, int status) {
  struct rp_bcrypt *b = req->data;
  struct rp_worker *p = b->p;
  for (struct rp_bcrypt **pp = &p->inflight; *pp; pp = &(*pp)->next)
    if (*pp == b) {
      *pp = b->next;
      break;
    }
  int ok = status == 0 && b->ok && b->known;
  struct rp_bwaiter *w = b->waiters;
  if (ok && w) htpasswd_cache_put(&p->cache, b->cache_key, uv_now(req->loop));
  while (w) {
    struct rp_bwaiter *next = w->next;
    struct exchange *ex = w->ex;
    free(w);
    if (ex) {
      if (ok) {
        resume(ex, NEXT);
      } else {
        ex->rp_wait = NULL;
        ex->rp_wait_kind = WAIT_NONE;
        unauthorized(ex);
      }
    }
    w = next;
  }
  OPENSSL_cleanse(b, sizeof(*b));
  free(b);
}

/* Parks ex on the check of (hash, user, password): the one in flight, or a
 * new one. 0, or -1 (out of memory). */
static int bcrypt_wait(struct exchange *ex, struct rp_worker *p, const char *hash, int known,
                       const char *pass, size_t pl, const uint8_t key[32]) {
  struct rp_bwaiter *w = calloc(1, sizeof(*w));
  if (!w) return -1;
  w->ex = ex;
  struct rp_bcrypt *b = p->inflight;
  while (b && memcmp(b->cache_key, key, 32) != 0) b = b->next;
  if (!b) {
    b = calloc(1, sizeof(*b));
    if (!b || strlen(hash) >= sizeof(b->hash) || pl > sizeof(b->pass)) {
      free(b);
      free(w);
      return -1;
    }
    b->p = p;
    b->known = known;
    snprintf(b->hash, sizeof(b->hash), "%s", hash);
    memcpy(b->pass, pass, pl);
    b->plen = pl;
    memcpy(b->cache_key, key, 32);
    b->work.data = b;
    if (uv_queue_work(&ex->w->loop, &b->work, bcrypt_work, bcrypt_done) != 0) {
      OPENSSL_cleanse(b, sizeof(*b));
      free(b);
      free(w);
      return -1;
    }
    b->next = p->inflight;
    p->inflight = b;
  }
  w->next = b->waiters;
  b->waiters = w;
  ex->rp_wait = w;
  ex->rp_wait_kind = WAIT_BCRYPT;
  return 0;
}

static int step_basic_auth(struct exchange *ex) {
  const struct l7_route *r = ex->route;
  if (!r->basic_auth) return NEXT;
  const struct msg_header *a = msg_find(&ex->req, "authorization");
  char buf[HTPASSWD_MAX_CREDENTIALS];
  const char *user, *pass;
  size_t ul, pl;
  if (!a ||
      htpasswd_parse_basic(a->value, a->value_len, buf, sizeof(buf), &user, &ul, &pass, &pl) != 0) {
    unauthorized(ex);
    return ANSWERED;
  }
  int known = 0;
  const char *hash = htpasswd_lookup(r->basic_auth, user, ul, &known);
  if (!htpasswd_is_slow(hash)) {
    int ok = htpasswd_check(hash, pass, pl) && known;
    OPENSSL_cleanse(buf, sizeof(buf));
    if (ok) return NEXT;
    unauthorized(ex);
    return ANSWERED;
  }
  struct rp_worker *p = rp_worker(ex->w);
  uint8_t key[32];
  htpasswd_cache_key(hash, user, ul, pass, pl, key);
  if (p && known && htpasswd_cache_hit(&p->cache, key, now_ms(ex->w))) {
    OPENSSL_cleanse(buf, sizeof(buf));
    return NEXT;
  }
  /* bcrypt costs tens of ms: on the thread pool, never on this loop */
  int rc = p ? bcrypt_wait(ex, p, hash, known, pass, pl, key) : -1;
  OPENSSL_cleanse(buf, sizeof(buf));
  if (rc != 0) {
    ex_local(ex, 500, NULL, NULL);
    return ANSWERED;
  }
  return PARKED;
}

/* ---- external auth ---------------------------------------------------------- */

#define AUTH_MAX_COPIED 40

struct rp_auth {
  struct exchange sub;
  struct exchange *parent;
  uv_timer_t defer;
  int running;
  int status;             /* the service's answer; 0 none */
  int failed;             /* no usable answer (proxy error, cut mid-answer) */
  struct msg_arena arena; /* answer headers kept for the parent */
  struct msg_header kept[AUTH_MAX_COPIED];
  size_t n_kept;
};

static int is_listed(char *const *names, size_t n, const char *name, size_t len) {
  for (size_t i = 0; i < n; i++)
    if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0) return 1;
  return 0;
}

/* The answer headers the parent may use: on 2xx the configured ones, on
 * 401/403 the ones a client needs to authenticate. */
static int auth_wants(const struct rp_auth *a, int status, const struct msg_header *h) {
  const Edge__V1__ExternalAuth *e = a->parent->route->ext_auth;
  if (status >= 200 && status < 300)
    return is_listed(e->response_headers, e->n_response_headers, h->name, h->name_len);
  return (h->name_len == 16 && memcmp(h->name, "www-authenticate", 16) == 0) ||
         (h->name_len == 8 && memcmp(h->name, "location", 8) == 0) ||
         (h->name_len == 10 && memcmp(h->name, "set-cookie", 10) == 0);
}

static struct rp_auth *auth_of(struct exchange *sub) {
  return container_of(sub, struct rp_auth, sub);
}

static int auth_head(struct exchange *sub, const struct msg_head *h) {
  struct rp_auth *a = auth_of(sub);
  if (sub->local) { /* the proxy answered for the service: no endpoint, timeout, 502 */
    a->failed = 1;
    return 0;
  }
  a->status = h->status;
  for (size_t i = 0; i < h->n_headers && a->n_kept < AUTH_MAX_COPIED; i++) {
    if (!auth_wants(a, h->status, &h->headers[i])) continue;
    char *name = msg_arena_strdup(&a->arena, h->headers[i].name, h->headers[i].name_len);
    char *value = msg_arena_strdup(&a->arena, h->headers[i].value, h->headers[i].value_len);
    if (!name || !value) {
      a->failed = 1;
      break;
    }
    a->kept[a->n_kept++] =
        (struct msg_header){name, h->headers[i].name_len, value, h->headers[i].value_len};
  }
  return 0;
}

static int auth_data(struct exchange *sub, const char *p, size_t n) {
  (void)sub, (void)p, (void)n; /* the body of the service's answer is not used */
  return 0;
}

static void auth_end(struct exchange *sub, const struct msg_header *t, size_t n) {
  (void)sub, (void)t, (void)n;
}

static int auth_over_high(struct exchange *sub) {
  (void)sub;
  return 0;
}

static void auth_decide(uv_timer_t *t);

static void auth_finished(struct exchange *sub) {
  struct rp_auth *a = auth_of(sub);
  /* act on a clean stack: the upstream codec is still inside its callbacks */
  if (a->running) uv_timer_start(&a->defer, auth_decide, 0, 0);
}

static void auth_abort(struct exchange *sub) {
  auth_of(sub)->failed = 1;
}

static void auth_flush(struct exchange *sub) {
  (void)sub;
}

static const struct ex_downstream_ops auth_ops = {auth_head,      auth_data,     auth_end,
                                                  auth_over_high, auth_finished, auth_abort,
                                                  NULL,           NULL,          auth_flush};

/* The upstream request without the headers the service is the authority
 * on (a client may not send X-User itself), plus what the service said. */
static int rewrite_upstream(struct exchange *ex, const struct msg_header *add, size_t n_add) {
  const Edge__V1__ExternalAuth *e = ex->route->ext_auth;
  const struct msg_head *u = &ex->up;
  struct msg_header *hs = msg_arena_alloc(&ex->arena, (u->n_headers + n_add + 1) * sizeof(*hs));
  if (!hs) return -ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < u->n_headers; i++)
    if (!is_listed(e->response_headers, e->n_response_headers, u->headers[i].name,
                   u->headers[i].name_len))
      hs[k++] = u->headers[i];
  for (size_t i = 0; i < n_add; i++) {
    char *name = msg_arena_strdup(&ex->arena, add[i].name, add[i].name_len);
    char *value = msg_arena_strdup(&ex->arena, add[i].value, add[i].value_len);
    if (!name || !value) return -ENOMEM;
    hs[k++] = (struct msg_header){name, add[i].name_len, value, add[i].value_len};
  }
  ex->up.headers = hs;
  ex->up.n_headers = k;
  return 0;
}

static void auth_decide(uv_timer_t *t) {
  struct rp_auth *a = t->data;
  struct exchange *ex = a->parent;
  a->running = 0;
  if (!ex || ex->rp_wait != a) return;
  const Edge__V1__ExternalAuth *e = ex->route->ext_auth;
  int st = a->failed ? 0 : a->status;
  ex->rp_wait = NULL;
  ex->rp_wait_kind = WAIT_NONE;
  if (st >= 200 && st < 300) {
    if (rewrite_upstream(ex, a->kept, a->n_kept) != 0) {
      ex_local(ex, 500, NULL, NULL);
      return;
    }
    ex->rp_wait = a; /* resume clears it */
    resume(ex, NEXT);
    return;
  }
  if (st == 401 || st == 403) { /* the service's verdict reaches the client */
    deny(ex, DENY_EXT, st, a->kept, a->n_kept > 8 ? 8 : a->n_kept);
    return;
  }
  struct rp_worker *p = ex->w->policy;
  if (p) count(ex, p->c_auth_failed);
  LOG_DEBUG("external_auth_failed", "route=%s status=%d fail_open=%d", log_q(ex->route->path), st,
            e->fail_open);
  if (e->fail_open) {
    ex->rp_wait = a;
    resume(ex, NEXT);
    return;
  }
  if (p) count(ex, p->c_denied[DENY_EXT]);
  ex_local(ex, 503, NULL, "authentication service unavailable\n");
}

static struct rp_auth *auth_get(struct exchange *ex) {
  if (ex->rp_auth) return ex->rp_auth;
  struct rp_auth *a = calloc(1, sizeof(*a));
  if (!a) return NULL;
  uv_timer_init(&ex->w->loop, &a->defer);
  a->defer.data = a;
  ex->rp_auth = a;
  return a;
}

static int add(struct msg_header *hs, size_t *k, size_t cap, const char *name, const char *v,
               size_t vl) {
  if (*k >= cap) return -1;
  hs[(*k)++] = (struct msg_header){name, strlen(name), v, vl};
  return 0;
}

static int step_ext_auth(struct exchange *ex) {
  const struct l7_route *r = ex->route;
  const Edge__V1__ExternalAuth *e = r->ext_auth;
  if (!e) return NEXT;
  struct rp_auth *a = auth_get(ex);
  if (!a || rewrite_upstream(ex, NULL, 0) != 0) { /* forged copies go first, whatever happens */
    ex_local(ex, 500, NULL, NULL);
    return ANSWERED;
  }
  rp_worker(ex->w);
  ex_init(&a->sub, ex->w, &auth_ops, a, ex->client, ex->https, ex->h2_down);
  a->parent = ex;
  a->status = a->failed = 0;
  a->n_kept = 0;
  msg_arena_reset(&a->arena);
  /* the subrequest: GET path, the chosen request headers, the original
   * request described in X-Original-* and X-Forwarded-* */
  const struct msg_head *m = &ex->req;
  size_t cap = m->n_headers + 8;
  struct msg_header *hs = msg_arena_alloc(&a->sub.arena, cap * sizeof(*hs));
  if (!hs) {
    ex_local(ex, 500, NULL, NULL);
    return ANSWERED;
  }
  size_t k = 0;
  static char *const dflt[] = {"authorization", "cookie"};
  char *const *names = e->n_request_headers ? e->request_headers : dflt;
  size_t n_names = e->n_request_headers ? e->n_request_headers : 2;
  for (size_t i = 0; i < m->n_headers; i++)
    if (is_listed(names, n_names, m->headers[i].name, m->headers[i].name_len) && k < cap)
      hs[k++] = m->headers[i];
  add(hs, &k, cap, "x-original-uri", m->target, m->target_len);
  add(hs, &k, cap, "x-original-method", m->method_str, m->method_len);
  add(hs, &k, cap, "x-forwarded-for", ex->client, strlen(ex->client));
  add(hs, &k, cap, "x-forwarded-host", m->authority, m->authority_len);
  add(hs, &k, cap, "x-forwarded-proto", ex->https ? "https" : "http", ex->https ? 5 : 4);
  if (ex->request_id[0]) add(hs, &k, cap, "x-request-id", ex->request_id, strlen(ex->request_id));
  struct msg_head up = {.method = MSG_GET,
                        .method_str = "GET",
                        .method_len = 3,
                        .scheme = "http",
                        .authority = e->host[0] ? e->host : m->authority,
                        .authority_len = e->host[0] ? strlen(e->host) : m->authority_len,
                        .target = e->path,
                        .target_len = strlen(e->path),
                        .headers = hs,
                        .n_headers = k,
                        .content_length = 0,
                        .end_stream = 1};
  const char *q = memchr(up.target, '?', up.target_len);
  up.path_len = q ? (size_t)(q - up.target) : up.target_len;
  a->running = 1;
  ex->rp_wait = a;
  ex->rp_wait_kind = WAIT_AUTH;
  ex_begin_sub(&a->sub, ex->snap, l7_snapshot_ext_auth_cluster(ex->snap, r), &up,
               e->timeout_ms ? e->timeout_ms : POLICY_DEFAULT_AUTH_TIMEOUT_MS);
  return ex->rp_wait == a ? PARKED : ANSWERED;
}

/* ---- the request steps ------------------------------------------------------ */

static int run_steps(struct exchange *ex) {
  for (; ex->rp_stage < STEP_DONE; ex->rp_stage++) {
    int v = NEXT;
    switch (ex->rp_stage) {
      case STEP_PREFLIGHT:
        v = step_preflight(ex);
        break;
      case STEP_RATE_LIMIT:
        v = step_rate_limit(ex);
        break;
      case STEP_BASIC_AUTH:
        v = step_basic_auth(ex);
        break;
      case STEP_EXT_AUTH:
        v = step_ext_auth(ex);
        break;
    }
    if (v != NEXT) return v;
  }
  return NEXT;
}

int rp_request(struct exchange *ex) {
  const struct l7_route *r = ex->route;
  if (!r->cors && !r->rate_limit && !r->basic_auth && !r->ext_auth) return RP_CONTINUE;
  ex->rp_stage = STEP_PREFLIGHT;
  return run_steps(ex) == NEXT ? RP_CONTINUE : RP_STOP;
}

void rp_cancel(struct exchange *ex) {
  void *wt = ex->rp_wait;
  if (!wt) return;
  ex->rp_wait = NULL;
  switch (ex->rp_wait_kind) {
    case WAIT_BCRYPT:
      ((struct rp_bwaiter *)wt)->ex = NULL; /* freed by the check's after-work callback */
      break;
    case WAIT_REDIS:
      rl_redis_cancel(wt);
      break;
    case WAIT_AUTH: {
      struct rp_auth *a = wt;
      a->running = 0;
      uv_timer_stop(&a->defer);
      ex_cancel(&a->sub);
      break;
    }
  }
  ex->rp_wait_kind = WAIT_NONE;
}

static void auth_closed(uv_handle_t *h) {
  struct rp_auth *a = h->data;
  msg_arena_free(&a->arena);
  free(a);
}

void rp_free(struct exchange *ex) {
  struct rp_auth *a = ex->rp_auth;
  if (!a) return;
  ex->rp_auth = NULL;
  a->parent = NULL;
  ex_free(&a->sub);
  uv_close((uv_handle_t *)&a->defer, auth_closed);
}

/* ---- local answers ------------------------------------------------------------ */

size_t rp_local_headers(const struct exchange *ex, const struct msg_header *extra, size_t n,
                        struct msg_header *out, size_t cap) {
  const struct l7_route *r = ex->route;
  size_t k = 0;
  int cors = r && r->cors && !cors_is_preflight(&ex->req); /* a preflight has its own */
  for (size_t i = 0; i < n && k < cap; i++) /* the route's CORS policy replaces others' */
    if (!cors || !cors_is_cors_header(extra[i].name, extra[i].name_len)) out[k++] = extra[i];
  if (cors && k < cap) {
    const struct msg_header *o = msg_find(&ex->req, "origin");
    k +=
        cors_response_headers(r->cors, o ? o->value : NULL, o ? o->value_len : 0, out + k, cap - k);
  }
  return k;
}

/* ---- endpoint choice -------------------------------------------------------- */

static void lb_key_of(struct exchange *ex, const struct l7_cluster *c) {
  ex->hashed = 1;
  if (c->affinity) {
    const char *v;
    size_t n;
    const char *name = c->affinity_cookie;
    if (affinity_find_cookie(&ex->req, name, strlen(name), &v, &n))
      ex->affinity = affinity_match((const char(*)[AFFINITY_TOKEN_LEN + 1]) c->affinity_tokens,
                                    c->n_endpoints, v, n);
  }
  if (c->chash) {
    if (c->chash->on == EDGE__V1__HASH_ON__HASH_ON_HEADER) {
      const struct msg_header *h = msg_find(&ex->req, c->chash->header);
      ex->lb_key = affinity_hash_key(h ? h->value : "", h ? h->value_len : 0);
    } else {
      ex->lb_key = affinity_hash_key(ex->client, strlen(ex->client));
    }
  }
}

int rp_pick(struct exchange *ex, const struct up_cluster_view *v) {
  const struct l7_cluster *c = ex->cluster;
  if (!c || (!c->affinity && !c->chash) || v->n != c->n_endpoints) return -1;
  if (!ex->hashed) lb_key_of(ex, c);
  uint64_t now = now_ms(ex->w);
  if (c->affinity) {
    int i = ex->affinity;
    /* the endpoint the cookie names, while it is there and usable; else
     * balance as usual (the answer then carries a new cookie) */
    if (i >= 0 && (size_t)i < v->n && !(i < 64 && (ex->avoid >> i) & 1) &&
        !lb_is_ejected(v->lbs[i], now))
      return i;
    return -1;
  }
  return lb_pick_hash(ex->lb_key, c->hash_seeds, c->hash_weights,
                      (const struct lb_state *const *)v->lbs, v->n, ex->avoid, now);
}

/* ---- answer headers --------------------------------------------------------- */

/* The index of ex->ep among the cluster's endpoints, -1 if not found. */
static int endpoint_index(const struct exchange *ex) {
  const struct l7_cluster *c = ex->cluster;
  if (!ex->ep) return -1;
  for (size_t i = 0; i < c->n_endpoints; i++)
    if (strcmp(c->endpoints[i].name, ex->ep->name) == 0) return (int)i;
  return -1;
}

int rp_response(struct exchange *ex, struct msg_head *out) {
  const struct l7_route *r = ex->route;
  const struct l7_cluster *c = ex->cluster;
  int cookie = c && c->affinity && ex->ep;
  if (!r->cors && !cookie) return 0;
  struct msg_header *hs = msg_arena_alloc(&ex->arena, (out->n_headers + 8) * sizeof(*hs));
  if (!hs) return -ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < out->n_headers; i++) /* the route's CORS policy replaces the upstream's */
    if (!r->cors || !cors_is_cors_header(out->headers[i].name, out->headers[i].name_len))
      hs[k++] = out->headers[i];
  if (r->cors) {
    const struct msg_header *o = msg_find(&ex->req, "origin");
    k += cors_response_headers(r->cors, o ? o->value : NULL, o ? o->value_len : 0, hs + k, 6);
  }
  int i = cookie ? endpoint_index(ex) : -1;
  if (i >= 0 && i != ex->affinity) { /* new, or the named endpoint was not used */
    const Edge__V1__CookieAffinity *a = c->affinity;
    char *buf = msg_arena_alloc(&ex->arena, 512);
    int n = buf ? affinity_set_cookie(buf, 512, c->affinity_cookie, c->affinity_tokens[i], a->path,
                                      a->max_age_seconds, ex->https)
                : -1;
    if (n > 0) hs[k++] = (struct msg_header){"set-cookie", 10, buf, (size_t)n};
  }
  out->headers = hs;
  out->n_headers = k;
  return 0;
}
