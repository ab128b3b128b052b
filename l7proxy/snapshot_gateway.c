/*
 * snapshot_gateway — see snapshot_gateway.h. Allocations are kept in a
 * list and freed together with the resource they belong to.
 */
#include "l7proxy/snapshot_gateway.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/headermod.h"

struct snap_gateway {
  void **allocs;
  size_t n_allocs, cap_allocs;
};

static void gw_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void gw_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static void *gw_alloc(struct snap_gateway *g, size_t n) {
  if (g->n_allocs == g->cap_allocs) {
    size_t cap = g->cap_allocs ? g->cap_allocs * 2 : 32;
    void **nv = realloc(g->allocs, cap * sizeof(*nv));
    if (!nv) return NULL;
    g->allocs = nv;
    g->cap_allocs = cap;
  }
  void *p = calloc(1, n ? n : 1);
  if (p) g->allocs[g->n_allocs++] = p;
  return p;
}

struct snap_gateway *snap_gateway_new(void) {
  return calloc(1, sizeof(struct snap_gateway));
}

void snap_gateway_free(struct snap_gateway *g) {
  if (!g) return;
  for (size_t i = 0; i < g->n_allocs; i++) free(g->allocs[i]);
  free(g->allocs);
  free(g);
}

/* Weighted backends by name; their slots are the builder's to fill. */
static int gw_weighted(struct snap_gateway *g, Edge__V1__WeightedCluster *const *in, size_t n,
                       const struct l7_weighted_cluster **out) {
  struct l7_weighted_cluster *w = gw_alloc(g, n * sizeof(*w));
  if (!w) return -ENOMEM;
  for (size_t i = 0; i < n; i++)
    w[i] = (struct l7_weighted_cluster){in[i]->cluster, UINT32_MAX, in[i]->weight};
  *out = w;
  return 0;
}

static int gw_headermod(struct snap_gateway *g, const Edge__V1__HeaderModifier *in,
                        const struct headermod **out, char *err, size_t errlen, const char *what) {
  *out = NULL;
  if (!in || (in->n_set + in->n_add + in->n_remove) == 0) return 0;
  struct headermod *m = gw_alloc(g, sizeof(*m));
  struct headermod_header *set = gw_alloc(g, in->n_set * sizeof(*set));
  struct headermod_header *add = gw_alloc(g, in->n_add * sizeof(*add));
  if (!m || !set || !add) return -ENOMEM;
  for (size_t i = 0; i < in->n_set + in->n_add; i++) {
    const Edge__V1__HeaderValue *h = i < in->n_set ? in->set[i] : in->add[i - in->n_set];
    struct headermod_header *o = i < in->n_set ? &set[i] : &add[i - in->n_set];
    *o = (struct headermod_header){h->name, strlen(h->name), h->value, strlen(h->value)};
    if (headermod_check(o->name, o->name_len, o->value, o->value_len) < 0) {
      gw_err(err, errlen, "%s: header %.64s has an invalid name or value", what, h->name);
      return -EINVAL;
    }
  }
  for (size_t i = 0; i < in->n_remove; i++)
    if (headermod_check(in->remove[i], strlen(in->remove[i]), "", 0) < 0) {
      gw_err(err, errlen, "%s: header to remove %.64s is not a valid name", what, in->remove[i]);
      return -EINVAL;
    }
  *m = (struct headermod){set,         in->n_set, add, in->n_add, (const char *const *)in->remove,
                          in->n_remove};
  *out = m;
  return 0;
}

static int gw_conditions(struct snap_gateway *g, const Edge__V1__Route *pr,
                         struct router_rule *rule) {
  size_t nh = pr->n_headers, nq = pr->n_query_params;
  struct router_kv_match *kv = gw_alloc(g, (nh + nq) * sizeof(*kv));
  if (!kv) return -ENOMEM;
  for (size_t i = 0; i < nh; i++)
    kv[i] = (struct router_kv_match){
        pr->headers[i]->name, pr->headers[i]->value,
        pr->headers[i]->type == EDGE__V1__STRING_MATCH__STRING_MATCH_REGEX};
  for (size_t i = 0; i < nq; i++)
    kv[nh + i] = (struct router_kv_match){
        pr->query_params[i]->name, pr->query_params[i]->value,
        pr->query_params[i]->type == EDGE__V1__STRING_MATCH__STRING_MATCH_REGEX};
  rule->method = pr->method[0] ? pr->method : NULL;
  rule->headers = kv;
  rule->n_headers = nh;
  rule->query = kv + nh;
  rule->n_query = nq;
  return 0;
}

int snap_gateway_route(struct snap_gateway *g, const Edge__V1__VirtualHost *vh,
                       const Edge__V1__Route *pr, struct l7_route *lr, struct router_rule *rule,
                       char *err, size_t errlen) {
  char what[300];
  snprintf(what, sizeof(what), "virtual host %s: route %s", vh->name, pr->path);
  if (vh->listener < 0 || vh->listener > EDGE__V1__LISTENER__LISTENER_HTTPS) {
    gw_err(err, errlen, "virtual host %s: unknown listener %d", vh->name, (int)vh->listener);
    return -EINVAL;
  }
  lr->listener = vh->listener;
  rule->listeners = vh->listener == EDGE__V1__LISTENER__LISTENER_HTTP    ? ROUTER_LISTENER_HTTP
                    : vh->listener == EDGE__V1__LISTENER__LISTENER_HTTPS ? ROUTER_LISTENER_HTTPS
                                                                         : 0;
  int rc = gw_conditions(g, pr, rule);
  if (rc == 0 && pr->n_weighted_clusters)
    rc = gw_weighted(g, pr->weighted_clusters, pr->n_weighted_clusters, &lr->weighted);
  lr->n_weighted = pr->n_weighted_clusters;
  if (rc == 0) rc = gw_headermod(g, pr->request_headers, &lr->request_headers, err, errlen, what);
  if (rc == 0) rc = gw_headermod(g, pr->response_headers, &lr->response_headers, err, errlen, what);
  if (rc < 0) return rc;
  if (pr->n_mirrors) {
    struct l7_mirror *m = gw_alloc(g, pr->n_mirrors * sizeof(*m));
    if (!m) return -ENOMEM;
    for (size_t i = 0; i < pr->n_mirrors; i++) {
      m[i] = (struct l7_mirror){pr->mirrors[i]->cluster, UINT32_MAX, pr->mirrors[i]->per_million};
      if (!m[i].name[0]) {
        gw_err(err, errlen, "%s: mirror names no cluster", what);
        return -EINVAL;
      }
    }
    lr->mirrors = m;
    lr->n_mirrors = pr->n_mirrors;
  }
  const Edge__V1__RouteOptions *o = pr->options;
  lr->rewrite_path = o ? o->rewrite_path : "";
  lr->rewrite_host = o ? o->rewrite_host : "";
  /* rewrite_path and rewrite_host were checked with the rest of the resource (common/validate,
   * before compiling): they go onto the wire as they are */
  lr->backend_request_timeout_ms = o ? o->backend_request_timeout_ms : 0;
  lr->direct_status = o ? o->direct_status : 0;
  if (lr->direct_status && (lr->direct_status < 200 || lr->direct_status > 599)) {
    gw_err(err, errlen, "%s: direct_status %u is not an HTTP status", what, lr->direct_status);
    return -EINVAL;
  }
  return 0;
}

int snap_gateway_passthrough(struct snap_gateway *g, const Edge__V1__PassthroughHost *ph,
                             struct l7_passthrough *p, char *err, size_t errlen) {
  if (ph->host_match != EDGE__V1__HOST_MATCH__HOST_MATCH_EXACT &&
      ph->host_match != EDGE__V1__HOST_MATCH__HOST_MATCH_SUFFIX) {
    gw_err(err, errlen, "passthrough host %s: host_match must be EXACT or SUFFIX", ph->name);
    return -EINVAL;
  }
  if (ph->n_clusters == 0) {
    gw_err(err, errlen, "passthrough host %s: no clusters", ph->name);
    return -EINVAL;
  }
  p->name = ph->name;
  p->host = ph->host;
  p->host_match = ph->host_match;
  int rc = gw_weighted(g, ph->clusters, ph->n_clusters, &p->clusters);
  if (rc < 0) return rc;
  p->n_clusters = ph->n_clusters;
  char *src = gw_alloc(g, 300);
  if (!src) return -ENOMEM;
  if (ph->source) snprintf(src, 300, "%s/%s", ph->source->namespace_, ph->source->name);
  p->source = src;
  return 0;
}
