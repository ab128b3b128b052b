/*
 * snapshot — validates a set of edge.v1 resources and compiles them into the
 * read-only structures workers use (see snapshot.h for the contract).
 *
 * The snapshot first deep-copies the resources (pack into one
 * Edge__V1__Snapshot, unpack again), so every string a route or cluster
 * points at lives in memory the snapshot owns and frees in one call.
 * Clusters are sorted by name: their index is dense and deterministic, and
 * name lookups are a binary search. Routes become common/router rules whose
 * data pointer is the l7_route, so a lookup returns the route directly.
 *
 * Rules checked (each failure is a Nack reason naming the resource):
 *   - every resource has a kind and a name; no two of one type share a name;
 *   - endpoint addresses are IPv4/IPv6 literals with a port in 1..65535
 *     (endpoints with ready=false are skipped, as the contract says);
 *   - enums hold known values;
 *   - routes and the default backend name clusters that exist; virtual
 *     hosts name certificates that exist;
 *   - route paths start with '/' and host patterns are well formed;
 *   - certificates parse and their key matches the leaf (common/cert).
 *
 * The current snapshot is a mutex-protected pointer: publish swaps it,
 * current() takes a reference under the lock. The lock is held for a
 * pointer copy and an atomic increment only, so workers never wait on a
 * build.
 */
#include "l7proxy/snapshot.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/cert.h"
#include "common/explain.h"
#include "common/publish.h"
#include "common/router.h"
#include "l7proxy/snapshot_policy.h"

struct l7_snapshot {
  atomic_uint refs;
  uint64_t version;
  Edge__V1__Snapshot *copy; /* owns every string below */
  struct l7_cluster *clusters;
  size_t n_clusters;
  struct l7_endpoint *endpoints;
  struct l7_route *routes;
  size_t n_routes;
  char **route_sources; /* "ns/name" per route, owned */
  struct l7_certificate *certs;
  size_t n_certs;
  const struct l7_certificate *default_cert;
  const struct l7_cluster *default_cluster;
  struct router *router;
};

static void snap_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void snap_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static const char *snap_resource_name(const Edge__V1__Resource *r) {
  switch (r->kind_case) {
    case EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST:
      return r->virtual_host ? r->virtual_host->name : NULL;
    case EDGE__V1__RESOURCE__KIND_CLUSTER:
      return r->cluster ? r->cluster->name : NULL;
    case EDGE__V1__RESOURCE__KIND_CERTIFICATE:
      return r->certificate ? r->certificate->name : NULL;
    case EDGE__V1__RESOURCE__KIND_DEFAULT_BACKEND:
      return r->default_backend ? r->default_backend->name : NULL;
    default:
      return NULL;
  }
}

static const char *snap_kind_str(int kind) {
  switch (kind) {
    case EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST:
      return "virtual host";
    case EDGE__V1__RESOURCE__KIND_CLUSTER:
      return "cluster";
    case EDGE__V1__RESOURCE__KIND_CERTIFICATE:
      return "certificate";
    case EDGE__V1__RESOURCE__KIND_DEFAULT_BACKEND:
      return "default backend";
    default:
      return "resource";
  }
}

/* Deep copy through the wire format: one allocation tree, one free. */
static Edge__V1__Snapshot *snap_copy(uint64_t version, Edge__V1__Resource *const *res, size_t n) {
  Edge__V1__Snapshot tmp = EDGE__V1__SNAPSHOT__INIT;
  tmp.version = version;
  tmp.n_resources = n;
  tmp.resources = (Edge__V1__Resource **)res;
  size_t len = edge__v1__snapshot__get_packed_size(&tmp);
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf) return NULL;
  edge__v1__snapshot__pack(&tmp, buf);
  Edge__V1__Snapshot *copy = edge__v1__snapshot__unpack(NULL, len, buf);
  free(buf);
  return copy;
}

static int snap_parse_endpoint(const Edge__V1__Endpoint *e, struct l7_endpoint *out) {
  if (e->port == 0 || e->port > 65535) return -1;
  memset(out, 0, sizeof(*out));
  if (addr_from_ip(e->address, (uint16_t)e->port, &out->addr, &out->addrlen) != 0) return -2;
  addr_format(&out->addr, out->name, sizeof(out->name));
  out->weight = e->weight ? e->weight : 1;
  return 0;
}

static int snap_cmp_cluster(const void *a, const void *b) {
  const struct l7_cluster *x = a, *y = b;
  return strcmp(x->name, y->name);
}

static int snap_build_clusters(struct l7_snapshot *s, char *err, size_t errlen) {
  const Edge__V1__Snapshot *c = s->copy;
  size_t n_cl = 0, n_ep = 0;
  for (size_t i = 0; i < c->n_resources; i++) {
    const Edge__V1__Resource *r = c->resources[i];
    if (r->kind_case != EDGE__V1__RESOURCE__KIND_CLUSTER) continue;
    n_cl++;
    n_ep += r->cluster->n_endpoints;
  }
  s->clusters = calloc(n_cl ? n_cl : 1, sizeof(*s->clusters));
  s->endpoints = calloc(n_ep ? n_ep : 1, sizeof(*s->endpoints));
  if (!s->clusters || !s->endpoints) return -ENOMEM;
  size_t ep = 0;
  for (size_t i = 0; i < c->n_resources; i++) {
    const Edge__V1__Resource *r = c->resources[i];
    if (r->kind_case != EDGE__V1__RESOURCE__KIND_CLUSTER) continue;
    const Edge__V1__Cluster *pc = r->cluster;
    if (pc->lb_policy < 0 || pc->lb_policy > EDGE__V1__LB_POLICY__LB_POLICY_LEAST_REQUEST) {
      snap_err(err, errlen, "cluster %s: unknown lb_policy %d", pc->name, (int)pc->lb_policy);
      return -EINVAL;
    }
    if (pc->protocol < 0 || pc->protocol > EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_GRPC) {
      snap_err(err, errlen, "cluster %s: unknown protocol %d", pc->name, (int)pc->protocol);
      return -EINVAL;
    }
    struct l7_cluster *cl = &s->clusters[s->n_clusters++];
    cl->name = pc->name;
    cl->endpoints = &s->endpoints[ep];
    for (size_t j = 0; j < pc->n_endpoints; j++) {
      const Edge__V1__Endpoint *e = pc->endpoints[j];
      if (!e->ready) continue;
      int rc = snap_parse_endpoint(e, &s->endpoints[ep]);
      if (rc < 0) {
        snap_err(err, errlen, "cluster %s: endpoint %s:%u: %s", pc->name, e->address, e->port,
                 rc == -1 ? "bad port" : "bad address");
        return -EINVAL;
      }
      ep++;
      cl->n_endpoints++;
    }
    cl->lb_policy = pc->lb_policy;
    cl->protocol = pc->protocol;
    cl->connect_timeout_ms =
        pc->connect_timeout_ms ? pc->connect_timeout_ms : L7_DEFAULT_CONNECT_TIMEOUT_MS;
    cl->idle_timeout_ms = pc->idle_timeout_ms ? pc->idle_timeout_ms : L7_DEFAULT_IDLE_TIMEOUT_MS;
    cl->max_idle_per_endpoint =
        pc->max_idle_per_endpoint ? pc->max_idle_per_endpoint : L7_DEFAULT_MAX_IDLE_PER_ENDPOINT;
    int prc = snap_policy_cluster(cl, pc, err, errlen); /* issue 20: affinity, hashing */
    if (prc < 0) return prc;
  }
  /* Sorting moves only the descriptors; endpoint slices stay where they are. */
  if (s->n_clusters) qsort(s->clusters, s->n_clusters, sizeof(*s->clusters), snap_cmp_cluster);
  for (size_t i = 0; i < s->n_clusters; i++) {
    s->clusters[i].index = (uint32_t)i;
    if (i > 0 && strcmp(s->clusters[i - 1].name, s->clusters[i].name) == 0) {
      snap_err(err, errlen, "cluster %s: defined twice", s->clusters[i].name);
      return -EINVAL;
    }
  }
  return 0;
}

const struct l7_cluster *l7_snapshot_find_cluster(const struct l7_snapshot *s, const char *name) {
  if (!s || !name) return NULL;
  struct l7_cluster key = {.name = name};
  return s->n_clusters ? bsearch(&key, s->clusters, s->n_clusters, sizeof(key), snap_cmp_cluster)
                       : NULL;
}

static int snap_cmp_cert(const void *a, const void *b) {
  const struct l7_certificate *x = a, *y = b;
  return strcmp(x->name, y->name);
}

static const struct l7_certificate *snap_find_cert(const struct l7_snapshot *s, const char *name) {
  struct l7_certificate key = {.name = name};
  return s->n_certs ? bsearch(&key, s->certs, s->n_certs, sizeof(key), snap_cmp_cert) : NULL;
}

int l7_snapshot_check_certificate(Edge__V1__Certificate *c, char *err, size_t errlen) {
  char why[256] = "";
  if (cert_check_key((const char *)c->cert_pem.data, c->cert_pem.len, (const char *)c->key_pem.data,
                     c->key_pem.len, why, sizeof(why)) < 0) {
    snap_err(err, errlen, "certificate %s: %s", c->name, why);
    return -EINVAL;
  }
  if (c->not_after == 0) {
    struct cert_info *info = malloc(sizeof(*info));
    if (info && cert_parse((const char *)c->cert_pem.data, c->cert_pem.len, info, NULL, 0) == 0)
      c->not_after = info->not_after;
    free(info);
  }
  return 0;
}

static int snap_build_certs(struct l7_snapshot *s, unsigned flags, char *err, size_t errlen) {
  const Edge__V1__Snapshot *c = s->copy;
  size_t n = 0;
  for (size_t i = 0; i < c->n_resources; i++)
    n += c->resources[i]->kind_case == EDGE__V1__RESOURCE__KIND_CERTIFICATE;
  s->certs = calloc(n ? n : 1, sizeof(*s->certs));
  if (!s->certs) return -ENOMEM;
  for (size_t i = 0; i < c->n_resources; i++) {
    const Edge__V1__Resource *r = c->resources[i];
    if (r->kind_case != EDGE__V1__RESOURCE__KIND_CERTIFICATE) continue;
    Edge__V1__Certificate *pc = r->certificate;
    if (!(flags & L7_SNAPSHOT_CERTS_CHECKED)) {
      int rc = l7_snapshot_check_certificate(pc, err, errlen);
      if (rc < 0) return rc;
    }
    struct l7_certificate *lc = &s->certs[s->n_certs++];
    lc->name = pc->name;
    lc->sni_names = (const char *const *)pc->sni_names;
    lc->n_sni_names = pc->n_sni_names;
    lc->cert_pem = pc->cert_pem.data;
    lc->cert_pem_len = pc->cert_pem.len;
    lc->key_pem = pc->key_pem.data;
    lc->key_pem_len = pc->key_pem.len;
    lc->not_after = pc->not_after;
    lc->is_default = pc->is_default;
  }
  /* Names are unique (snap_check_names); sorted for bsearch. */
  if (s->n_certs) qsort(s->certs, s->n_certs, sizeof(*s->certs), snap_cmp_cert);
  for (size_t i = 0; i < s->n_certs && !s->default_cert; i++)
    if (s->certs[i].is_default) s->default_cert = &s->certs[i];
  return 0;
}

static int snap_route_source(const Edge__V1__Route *pr, char **out) {
  const Edge__V1__SourceRef *src = pr->source;
  if (src && src->name[0]) {
    if (asprintf(out, "%s/%s", src->namespace_, src->name) < 0) return -ENOMEM;
  } else {
    *out = strdup("");
    if (!*out) return -ENOMEM;
  }
  return 0;
}

static int snap_build_routes(struct l7_snapshot *s, char *err, size_t errlen) {
  const Edge__V1__Snapshot *c = s->copy;
  size_t n = 0;
  for (size_t i = 0; i < c->n_resources; i++) {
    const Edge__V1__Resource *r = c->resources[i];
    if (r->kind_case == EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST) n += r->virtual_host->n_routes;
  }
  s->routes = calloc(n ? n : 1, sizeof(*s->routes));
  s->route_sources = calloc(n ? n : 1, sizeof(*s->route_sources));
  struct router_rule *rules = calloc(n ? n : 1, sizeof(*rules));
  int rc = -ENOMEM;
  if (!s->routes || !s->route_sources || !rules) goto out;
  for (size_t i = 0; i < c->n_resources; i++) {
    const Edge__V1__Resource *r = c->resources[i];
    if (r->kind_case != EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST) continue;
    const Edge__V1__VirtualHost *vh = r->virtual_host;
    rc = -EINVAL;
    if (vh->host_match < 0 || vh->host_match > EDGE__V1__HOST_MATCH__HOST_MATCH_ANY) {
      snap_err(err, errlen, "virtual host %s: unknown host_match %d", vh->name,
               (int)vh->host_match);
      goto out;
    }
    if (vh->certificate[0] && !snap_find_cert(s, vh->certificate)) {
      snap_err(err, errlen, "virtual host %s: references unknown certificate %s", vh->name,
               vh->certificate);
      goto out;
    }
    for (size_t j = 0; j < vh->n_routes; j++) {
      const Edge__V1__Route *pr = vh->routes[j];
      const Edge__V1__RouteOptions *o = pr->options;
      if (pr->path_type < 0 ||
          pr->path_type > EDGE__V1__PATH_TYPE__PATH_TYPE_IMPLEMENTATION_SPECIFIC) {
        snap_err(err, errlen, "virtual host %s: route %s: unknown path_type %d", vh->name, pr->path,
                 (int)pr->path_type);
        goto out;
      }
      struct l7_route *lr = &s->routes[s->n_routes];
      lr->vhost = vh->name;
      lr->host_pattern = vh->host;
      lr->path = pr->path[0] ? pr->path : "/";
      lr->path_type = pr->path_type ? (int)pr->path_type : EDGE__V1__PATH_TYPE__PATH_TYPE_PREFIX;
      if (pr->cluster[0]) {
        lr->cluster = l7_snapshot_find_cluster(s, pr->cluster);
        if (!lr->cluster) {
          snap_err(err, errlen, "virtual host %s: route %s references unknown cluster %s", vh->name,
                   lr->path, pr->cluster);
          goto out;
        }
      }
      lr->rewrite_prefix = "";
      if (o) {
        lr->request_timeout_ms = o->request_timeout_ms;
        lr->response_header_timeout_ms = o->response_header_timeout_ms;
        lr->retries = o->retries;
        lr->max_body_bytes = o->max_body_bytes;
        lr->rewrite_prefix = o->rewrite_prefix;
        lr->redirect = o->redirect;
        lr->disable_ssl_redirect = o->disable_ssl_redirect;
        lr->upgrade_protocols = o->upgrade_protocols;
        lr->n_upgrade_protocols = o->n_upgrade_protocols;
      }
      rc = snap_policy_route(s, lr, o, err, errlen); /* issue 20: auth, limits, CORS */
      if (rc < 0) {
        s->n_routes++; /* its policies are freed with the others */
        goto out;
      }
      lr->host_has_tls = vh->certificate[0] != '\0' || vh->tls_fallback;
      rc = snap_route_source(pr, &s->route_sources[s->n_routes]);
      if (rc < 0) goto out;
      lr->source = s->route_sources[s->n_routes];
      rules[s->n_routes] = (struct router_rule){.host = vh->host,
                                                .host_match = (int)vh->host_match,
                                                .path = lr->path,
                                                .path_type = lr->path_type,
                                                .data = lr};
      s->n_routes++;
      rc = -EINVAL;
    }
  }
  char why[256] = "";
  rc = router_build(rules, s->n_routes, &s->router, why, sizeof(why));
  if (rc == ROUTER_ERR_INVALID) {
    /* "rule N" is the route's position in s->routes: name its vhost. */
    size_t idx = 0;
    if (sscanf(why, "rule %zu", &idx) == 1 && idx < s->n_routes)
      snap_err(err, errlen, "virtual host %s: %s", s->routes[idx].vhost, why);
    else
      snap_err(err, errlen, "%s", why);
    rc = -EINVAL;
  } else if (rc < 0) {
    rc = -ENOMEM;
  } else {
    /* Fill the normalized host_match the router derived for UNSPECIFIED. */
    for (size_t i = 0; i < s->n_routes; i++)
      if (s->routes[i].host_match == 0)
        s->routes[i].host_match = s->routes[i].host_pattern[0] == '\0'  ? ROUTER_HOST_ANY
                                  : s->routes[i].host_pattern[0] == '*' ? ROUTER_HOST_WILDCARD
                                                                        : ROUTER_HOST_EXACT;
  }
out:
  free(rules);
  return rc;
}

static int snap_cmp_resource(const void *a, const void *b) {
  const Edge__V1__Resource *x = *(const Edge__V1__Resource *const *)a;
  const Edge__V1__Resource *y = *(const Edge__V1__Resource *const *)b;
  if (x->kind_case != y->kind_case) return x->kind_case < y->kind_case ? -1 : 1;
  return strcmp(snap_resource_name(x), snap_resource_name(y));
}

static int snap_check_names(const Edge__V1__Snapshot *c, char *err, size_t errlen) {
  for (size_t i = 0; i < c->n_resources; i++) {
    const Edge__V1__Resource *r = c->resources[i];
    const char *name = snap_resource_name(r);
    if (!name) {
      snap_err(err, errlen, "resource %zu: no kind set", i);
      return -EINVAL;
    }
    if (!name[0]) {
      snap_err(err, errlen, "%s %zu: empty name", snap_kind_str(r->kind_case), i);
      return -EINVAL;
    }
  }
  /* One name per type: sort (kind, name) pairs and compare neighbours. */
  const Edge__V1__Resource **v = malloc((c->n_resources ? c->n_resources : 1) * sizeof(*v));
  if (!v) return -ENOMEM;
  if (c->n_resources) {
    memcpy(v, c->resources, c->n_resources * sizeof(*v));
    qsort(v, c->n_resources, sizeof(*v), snap_cmp_resource);
  }
  int rc = 0;
  for (size_t i = 1; i < c->n_resources; i++)
    if (snap_cmp_resource(&v[i - 1], &v[i]) == 0) {
      snap_err(err, errlen, "%s %s: defined twice", snap_kind_str(v[i]->kind_case),
               snap_resource_name(v[i]));
      rc = -EINVAL;
      break;
    }
  free(v);
  return rc;
}

static void snap_free(struct l7_snapshot *s) {
  if (!s) return;
  router_free(s->router);
  for (size_t i = 0; s->route_sources && i < s->n_routes; i++) free(s->route_sources[i]);
  for (size_t i = 0; s->routes && i < s->n_routes; i++) snap_policy_route_free(&s->routes[i]);
  for (size_t i = 0; s->clusters && i < s->n_clusters; i++)
    snap_policy_cluster_free(&s->clusters[i]);
  free(s->route_sources);
  free(s->routes);
  free(s->certs);
  free(s->clusters);
  free(s->endpoints);
  if (s->copy) edge__v1__snapshot__free_unpacked(s->copy, NULL);
  free(s);
}

int l7_snapshot_build(uint64_t version, Edge__V1__Resource *const *res, size_t n,
                      struct l7_snapshot **out, char *err, size_t errlen) {
  return l7_snapshot_build_ex(version, res, n, 0, out, err, errlen);
}

int l7_snapshot_build_ex(uint64_t version, Edge__V1__Resource *const *res, size_t n, unsigned flags,
                         struct l7_snapshot **out, char *err, size_t errlen) {
  *out = NULL;
  for (size_t i = 0; i < n; i++)
    if (!res[i]) {
      snap_err(err, errlen, "resource %zu: missing", i);
      return -EINVAL;
    }
  struct l7_snapshot *s = calloc(1, sizeof(*s));
  if (!s) return -ENOMEM;
  atomic_init(&s->refs, 1);
  s->version = version;
  s->copy = snap_copy(version, res, n);
  int rc = -ENOMEM;
  if (!s->copy) goto fail;
  rc = snap_check_names(s->copy, err, errlen);
  if (rc < 0) goto fail;
  rc = snap_build_clusters(s, err, errlen);
  if (rc < 0) goto fail;
  rc = snap_build_certs(s, flags, err, errlen);
  if (rc < 0) goto fail;
  rc = snap_build_routes(s, err, errlen);
  if (rc < 0) goto fail;
  for (size_t i = 0; i < s->copy->n_resources; i++) {
    const Edge__V1__Resource *r = s->copy->resources[i];
    if (r->kind_case != EDGE__V1__RESOURCE__KIND_DEFAULT_BACKEND) continue;
    const char *cl = r->default_backend->cluster;
    if (!cl[0]) continue;
    s->default_cluster = l7_snapshot_find_cluster(s, cl);
    if (!s->default_cluster) {
      snap_err(err, errlen, "default backend %s: references unknown cluster %s",
               r->default_backend->name, cl);
      rc = -EINVAL;
      goto fail;
    }
  }
  *out = s;
  return 0;
fail:
  if (rc == -ENOMEM) snap_err(err, errlen, "out of memory building the snapshot");
  snap_free(s);
  return rc;
}

struct l7_snapshot *l7_snapshot_ref(struct l7_snapshot *s) {
  if (s) atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
  return s;
}

void l7_snapshot_unref(struct l7_snapshot *s) {
  if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) snap_free(s);
}

uint64_t l7_snapshot_version(const struct l7_snapshot *s) {
  return s ? s->version : 0;
}

const struct l7_route *l7_snapshot_match(const struct l7_snapshot *s, const char *host,
                                         size_t hostlen, const char *path, size_t pathlen) {
  if (!s) return NULL;
  return router_match(s->router, host, hostlen, path, pathlen);
}

const struct l7_cluster *l7_snapshot_default_cluster(const struct l7_snapshot *s) {
  return s ? s->default_cluster : NULL;
}

size_t l7_snapshot_n_clusters(const struct l7_snapshot *s) {
  return s ? s->n_clusters : 0;
}

const struct l7_cluster *l7_snapshot_cluster(const struct l7_snapshot *s, size_t i) {
  return s && i < s->n_clusters ? &s->clusters[i] : NULL;
}

size_t l7_snapshot_n_routes(const struct l7_snapshot *s) {
  return s ? s->n_routes : 0;
}

const struct l7_route *l7_snapshot_route(const struct l7_snapshot *s, size_t i) {
  return s && i < s->n_routes ? &s->routes[i] : NULL;
}

size_t l7_snapshot_n_certificates(const struct l7_snapshot *s) {
  return s ? s->n_certs : 0;
}

const struct l7_certificate *l7_snapshot_certificate(const struct l7_snapshot *s, size_t i) {
  return s && i < s->n_certs ? &s->certs[i] : NULL;
}

const struct l7_certificate *l7_snapshot_default_certificate(const struct l7_snapshot *s) {
  return s ? s->default_cert : NULL;
}

/* ---- JSON dump (no key material) -------------------------------------- */

static const char *snap_enum_name(const ProtobufCEnumDescriptor *d, int v) {
  const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);
  return ev ? ev->name : "UNKNOWN";
}

static json_t *snap_cluster_json(const struct l7_cluster *c) {
  json_t *eps = json_array();
  for (size_t i = 0; i < c->n_endpoints; i++)
    json_array_append_new(eps, json_pack("{s:s, s:I}", "address", c->endpoints[i].name, "weight",
                                         (json_int_t)c->endpoints[i].weight));
  json_t *o = json_pack("{s:s, s:I, s:o, s:s, s:s, s:I, s:I, s:I}", "name", c->name, "index",
                        (json_int_t)c->index, "endpoints", eps, "lb_policy",
                        snap_enum_name(&edge__v1__lb_policy__descriptor, c->lb_policy), "protocol",
                        snap_enum_name(&edge__v1__upstream_protocol__descriptor, c->protocol),
                        "connect_timeout_ms", (json_int_t)c->connect_timeout_ms, "idle_timeout_ms",
                        (json_int_t)c->idle_timeout_ms, "max_idle_per_endpoint",
                        (json_int_t)c->max_idle_per_endpoint);
  snap_policy_cluster_json(o, c);
  return o;
}

static json_t *snap_route_json(const struct l7_route *r) {
  json_t *o = json_pack(
      "{s:s, s:s, s:s, s:s, s:s, s:s?, s:I, s:I, s:I, s:I, s:s, s:b, s:b, s:s}", "vhost", r->vhost,
      "host", r->host_pattern, "host_match",
      snap_enum_name(&edge__v1__host_match__descriptor, r->host_match), "path", r->path,
      "path_type", snap_enum_name(&edge__v1__path_type__descriptor, r->path_type), "cluster",
      r->cluster ? r->cluster->name : NULL, "request_timeout_ms", (json_int_t)r->request_timeout_ms,
      "response_header_timeout_ms", (json_int_t)r->response_header_timeout_ms, "retries",
      (json_int_t)r->retries, "max_body_bytes", (json_int_t)r->max_body_bytes, "rewrite_prefix",
      r->rewrite_prefix, "host_has_tls", r->host_has_tls, "disable_ssl_redirect",
      r->disable_ssl_redirect, "source", r->source);
  if (o && r->redirect)
    json_object_set_new(
        o, "redirect",
        json_pack("{s:s, s:s, s:I, s:s, s:I}", "scheme", r->redirect->scheme, "host",
                  r->redirect->host, "port", (json_int_t)r->redirect->port, "path",
                  r->redirect->path, "status", (json_int_t)r->redirect->status));
  snap_policy_route_json(o, r);
  return o;
}

static json_t *snap_cert_json(const struct l7_certificate *c) {
  json_t *sni = json_array();
  for (size_t i = 0; i < c->n_sni_names; i++)
    json_array_append_new(sni, json_string(c->sni_names[i]));
  return json_pack("{s:s, s:o, s:I, s:b}", "name", c->name, "sni_names", sni, "not_after",
                   (json_int_t)c->not_after, "is_default", c->is_default);
}

char *l7_snapshot_to_json(const struct l7_snapshot *s) {
  if (!s) return strdup("{}");
  json_t *clusters = json_array(), *routes = json_array(), *certs = json_array();
  for (size_t i = 0; i < s->n_clusters; i++)
    json_array_append_new(clusters, snap_cluster_json(&s->clusters[i]));
  for (size_t i = 0; i < s->n_routes; i++)
    json_array_append_new(routes, snap_route_json(&s->routes[i]));
  for (size_t i = 0; i < s->n_certs; i++)
    json_array_append_new(certs, snap_cert_json(&s->certs[i]));
  json_t *root = json_pack("{s:I, s:o, s:o, s:o, s:s?}", "version", (json_int_t)s->version,
                           "clusters", clusters, "routes", routes, "certificates", certs,
                           "default_cluster", s->default_cluster ? s->default_cluster->name : NULL);
  if (!root) return NULL;
  char *out = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(root);
  return out;
}

int l7_snapshot_explain(const struct l7_snapshot *s, const struct explain_request *req, char **json,
                        char *err, size_t errlen) {
  *json = NULL;
  if (!s || !req) return EXPLAIN_ERR_INVALID;
  json_t *root = NULL;
  int rc = explain_build(s->copy->resources, s->copy->n_resources, req, &root, err, errlen);
  if (rc != 0) return rc;
  json_object_set_new(root, "version", json_integer((json_int_t)s->version));
  *json = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(root);
  return *json ? 0 : EXPLAIN_ERR_NOMEM;
}

char *l7_snapshot_explain_json(const struct l7_snapshot *s, const char *host, const char *path) {
  struct explain_request req = {.host = host, .path = path};
  char *json = NULL, err[256];
  if (!host || l7_snapshot_explain(s, &req, &json, err, sizeof(err)) != 0) return NULL;
  return json;
}

/* ---- current snapshot ------------------------------------------------- */

static void snap_ref_slot(void *s) {
  l7_snapshot_ref(s);
}

static void snap_unref_slot(void *s) {
  l7_snapshot_unref(s);
}

static struct publish_slot snap_slot = PUBLISH_SLOT_INIT(snap_ref_slot, snap_unref_slot, NULL);

uint64_t l7_snapshot_generation(void) {
  return publish_slot_generation(&snap_slot);
}

struct l7_snapshot *l7_snapshot_current(void) {
  return publish_slot_acquire(&snap_slot, NULL);
}

void l7_snapshot_publish(struct l7_snapshot *s) {
  publish_slot_publish(&snap_slot, s);
}
