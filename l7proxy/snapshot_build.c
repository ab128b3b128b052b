/*
 * snapshot_build — resources compiled once, and the builder that makes the
 * next snapshot from the previous one (see snapshot.h).
 *
 * A pushed resource is deep-copied (pack + unpack: one allocation tree it
 * owns) and compiled: a cluster's endpoints parsed, a virtual host's
 * routes and path matcher built, a certificate described for the TLS
 * store. Cross-references are checked per push: the builder counts, per
 * cluster and certificate name, the virtual hosts (and the default
 * backend) that name it, so a push that removes one still in use, or adds
 * a route to one that does not exist, is refused naming both — without
 * looking at the resources the push did not touch.
 *
 * Cluster slots: each cluster name gets a small integer while a cluster of
 * that name exists or something names it; routes carry the slot, snapshots
 * map slots to the cluster resource of their generation. Freed slots are
 * reused (an older snapshot keeps its own table, so reuse is safe).
 *
 * Threads: the builder on its owner's thread; resources are shared with
 * worker threads through snapshots, so their reference counts are atomic.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/cert.h"
#include "common/hmap.h"
#include "l7proxy/client_auth.h"
#include "common/validate.h"
#include "l7proxy/snapshot_gateway.h"
#include "l7proxy/snapshot_internal.h"
#include "l7proxy/snapshot_policy.h"

#define NO_SLOT UINT32_MAX

struct name_use {
  uint32_t slot; /* clusters only */
  long users;    /* routes/default backend (clusters) or virtual hosts (certificates) naming it */
  int present;   /* a resource of this name is in the current state */
};

struct l7_builder {
  struct tls_options tls;
  int tls_enabled;
  uint64_t version;
  struct l7_snapshot *cur;
  struct hmap clusters; /* name → struct name_use */
  struct hmap certs;    /* name → struct name_use */
  uint32_t *free_slots;
  size_t n_free, cap_free;
  uint32_t next_slot;
  int verify_keys;
};

static void berr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void berr(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* ---- resources -------------------------------------------------------------------- */

static const char *res_name(const Edge__V1__Resource *r, int *type) {
  *type = 0;
  switch (r->kind_case) {
    case EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST:
      *type = EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST;
      return r->virtual_host ? r->virtual_host->name : NULL;
    case EDGE__V1__RESOURCE__KIND_CLUSTER:
      *type = EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER;
      return r->cluster ? r->cluster->name : NULL;
    case EDGE__V1__RESOURCE__KIND_CERTIFICATE:
      *type = EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE;
      return r->certificate ? r->certificate->name : NULL;
    case EDGE__V1__RESOURCE__KIND_DEFAULT_BACKEND:
      *type = EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_DEFAULT_BACKEND;
      return r->default_backend ? r->default_backend->name : NULL;
    case EDGE__V1__RESOURCE__KIND_PASSTHROUGH_HOST:
      *type = EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_PASSTHROUGH_HOST;
      return r->passthrough_host ? r->passthrough_host->name : NULL;
    default:
      return NULL;
  }
}

static const char *type_str(int type) {
  static const char *names[] = {"resource",    "virtual host",    "cluster",
                                "certificate", "default backend", "passthrough host"};
  return type >= 0 && type <= 5 ? names[type] : "resource";
}

struct l7_res *l7_res_ref(struct l7_res *r) {
  if (r) atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
  return r;
}

void l7_res_unref(struct l7_res *r) {
  if (!r || atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1) return;
  if (r->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST) {
    struct l7_vhost *v = &r->u.vhost;
    router_free(v->router);
    free(v->key);
    for (size_t i = 0; v->sources && i < v->n_routes; i++) free(v->sources[i]);
    for (size_t i = 0; v->routes && i < v->n_routes; i++) snap_policy_route_free(&v->routes[i]);
    free(v->sources);
    free(v->routes);
    cauth_policy_unref(v->client_auth);
    snap_gateway_free(v->gw);
  } else if (r->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER) {
    l7_policy_cluster_free(&r->u.cluster);
    snap_policy_cluster_free(&r->u.cluster);
  } else if (r->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_PASSTHROUGH_HOST) {
    free(r->u.pt.key);
    snap_gateway_free(r->u.pt.gw);
  }
  free(r->endpoints);
  if (r->msg) edge__v1__resource__free_unpacked(r->msg, NULL);
  free(r);
}

const char *l7_res_cluster_name(const struct l7_res *r, size_t *pos, uint32_t **slot) {
  uint32_t *dummy;
  if (!slot) slot = &dummy;
  for (;;) {
    size_t i = (*pos)++;
    const char *name = NULL;
    *slot = NULL;
    if (r->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST) {
      /* per route: its cluster, then its weighted backends, then its mirrors (64 each at most:
       * the rest of a route's 256 positions are skipped), then its external-auth cluster */
      size_t route = i / 256, k = i % 256;
      if (route >= r->u.vhost.n_routes) return NULL;
      struct l7_route *lr = &r->u.vhost.routes[route];
      if (k == 0) {
        name = lr->cluster_name;
        *slot = &lr->cluster_slot;
      } else if (k - 1 < lr->n_weighted) {
        struct l7_weighted_cluster *w = (struct l7_weighted_cluster *)&lr->weighted[k - 1];
        name = w->name;
        *slot = &w->slot;
      } else if (k - 1 - lr->n_weighted < lr->n_mirrors) {
        struct l7_mirror *m = (struct l7_mirror *)&lr->mirrors[k - 1 - lr->n_weighted];
        name = m->name;
        *slot = &m->slot;
      } else if (k - 1 - lr->n_weighted - lr->n_mirrors == 0 && lr->ext_auth) {
        name = lr->ext_auth->cluster; /* issue 20: the external-auth service */
        *slot = &lr->ext_auth_slot;
      } else {
        *pos = (route + 1) * 256;
        continue;
      }
    } else if (r->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_PASSTHROUGH_HOST) {
      if (i >= r->u.pt.pt.n_clusters) return NULL;
      struct l7_weighted_cluster *w = (struct l7_weighted_cluster *)&r->u.pt.pt.clusters[i];
      name = w->name;
      *slot = &w->slot;
    } else if (r->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_DEFAULT_BACKEND) {
      if (i > 0) return NULL;
      name = r->default_cluster;
    } else {
      return NULL;
    }
    if (name && name[0]) return name;
  }
}

/* The slot of cluster name (assigned on first use). */
static struct name_use *name_use(struct l7_builder *b, struct hmap *m, const char *name,
                                 int want_slot) {
  struct name_use *u = hmap_gets(m, name);
  if (u) return u;
  u = calloc(1, sizeof(*u));
  if (!u || hmap_puts(m, name, u, NULL) != 0) {
    free(u);
    return NULL;
  }
  u->slot = NO_SLOT;
  if (want_slot) u->slot = b->n_free ? b->free_slots[--b->n_free] : b->next_slot++;
  return u;
}

/* Forgets name when nothing holds or names it (its slot is reused). */
static void name_release(struct l7_builder *b, struct hmap *m, const char *name) {
  struct name_use *u = hmap_gets(m, name);
  if (!u || u->present || u->users) return;
  if (u->slot != NO_SLOT) {
    if (b->n_free == b->cap_free) {
      size_t cap = b->cap_free ? b->cap_free * 2 : 64;
      uint32_t *nv = realloc(b->free_slots, cap * sizeof(*nv));
      if (!nv) return; /* keep the name; its slot stays taken */
      b->free_slots = nv;
      b->cap_free = cap;
    }
    b->free_slots[b->n_free++] = u->slot;
  }
  hmap_dels(m, name);
  free(u);
}

static int compile_cluster(struct l7_builder *b, struct l7_res *r, char *err, size_t errlen) {
  const Edge__V1__Cluster *pc = r->msg->cluster;
  struct l7_cluster *cl = &r->u.cluster;
  if (pc->lb_policy < 0 || pc->lb_policy > EDGE__V1__LB_POLICY__LB_POLICY_LEAST_REQUEST)
    return berr(err, errlen, "cluster %s: unknown lb_policy %d", pc->name, (int)pc->lb_policy),
           -EINVAL;
  if (pc->protocol < 0 || pc->protocol > EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_GRPC)
    return berr(err, errlen, "cluster %s: unknown protocol %d", pc->name, (int)pc->protocol),
           -EINVAL;
  r->endpoints = calloc(pc->n_endpoints + 1, sizeof(*r->endpoints));
  if (!r->endpoints) return -ENOMEM;
  cl->name = pc->name;
  cl->endpoints = r->endpoints;
  for (size_t i = 0; i < pc->n_endpoints; i++) {
    const Edge__V1__Endpoint *e = pc->endpoints[i];
    if (!e->ready) continue; /* known but not ready: explain shows it, proxies never use it */
    struct l7_endpoint *le = &r->endpoints[cl->n_endpoints];
    const char *why = e->port == 0 || e->port > 65535 ? "bad port" : NULL;
    if (!why && addr_from_ip(e->address, (uint16_t)e->port, &le->addr, &le->addrlen) != 0)
      why = "bad address";
    if (why)
      return berr(err, errlen, "cluster %s: endpoint %s:%u: %s", pc->name, e->address, e->port,
                  why),
             -EINVAL;
    addr_format(&le->addr, le->name, sizeof(le->name));
    le->weight = e->weight ? e->weight : 1;
    cl->n_endpoints++;
  }
  cl->lb_policy = pc->lb_policy;
  cl->protocol = pc->protocol;
  cl->connect_timeout_ms =
      pc->connect_timeout_ms ? pc->connect_timeout_ms : L7_DEFAULT_CONNECT_TIMEOUT_MS;
  cl->idle_timeout_ms = pc->idle_timeout_ms ? pc->idle_timeout_ms : L7_DEFAULT_IDLE_TIMEOUT_MS;
  cl->max_idle_per_endpoint =
      pc->max_idle_per_endpoint ? pc->max_idle_per_endpoint : L7_DEFAULT_MAX_IDLE_PER_ENDPOINT;
  int rc = l7_policy_cluster(pc, cl, err, errlen);            /* upstream TLS, health, breakers */
  if (rc == 0) rc = snap_policy_cluster(cl, pc, err, errlen); /* affinity, hashing */
  if (rc < 0) return rc;
  struct name_use *u = name_use(b, &b->clusters, pc->name, 1);
  if (!u) return -ENOMEM;
  cl->slot = u->slot;
  return 0;
}

static int route_source(const Edge__V1__Route *pr, char **out) {
  const Edge__V1__SourceRef *src = pr->source;
  if (src && src->name[0])
    return asprintf(out, "%s/%s", src->namespace_, src->name) < 0 ? -ENOMEM : 0;
  *out = strdup("");
  return *out ? 0 : -ENOMEM;
}

/* The host table key of v: its host (a wildcard's suffix) as lookups see
 * it — lower case, no trailing dot — so "A.com" and "a.com" are one host. */
static int host_key(const char *h, int host_match, int listener, char **key) {
  if (host_match == ROUTER_HOST_WILDCARD || host_match == ROUTER_HOST_SUFFIX) {
    if (strncmp(h, "*.", 2) != 0 || !h[2]) return -EINVAL;
    h += 2;
  }
  char buf[ROUTER_MAX_HOST + 1];
  int n = router_normalize_host(h, strlen(h), buf, sizeof(buf));
  if (n <= 0 || strchr(buf, '*')) return -EINVAL;
  *key = NULL;
  if (listener ? asprintf(key, "%s\n%d", buf, listener) < 0 : !(*key = strdup(buf))) {
    *key = NULL;
    return -ENOMEM;
  }
  return 0;
}

static int vhost_key(struct l7_vhost *v, char *err, size_t errlen) {
  if (v->host_match == ROUTER_HOST_ANY) return 0;
  int rc = host_key(v->host, v->host_match, v->listener, &v->key);
  if (rc == -EINVAL)
    berr(err, errlen, "virtual host %s: bad %shost %s", v->name,
         v->host_match == ROUTER_HOST_EXACT ? "" : "wildcard ", v->host);
  return rc;
}

static int compile_vhost(struct l7_builder *b, struct l7_res *r, char *err, size_t errlen) {
  const Edge__V1__VirtualHost *vh = r->msg->virtual_host;
  struct l7_vhost *v = &r->u.vhost;
  if (vh->host_match < 0 || vh->host_match > EDGE__V1__HOST_MATCH__HOST_MATCH_SUFFIX)
    return berr(err, errlen, "virtual host %s: unknown host_match %d", vh->name,
                (int)vh->host_match),
           -EINVAL;
  if (vh->listener < 0 || vh->listener > EDGE__V1__LISTENER__LISTENER_HTTPS)
    return berr(err, errlen, "virtual host %s: unknown listener %d", vh->name, (int)vh->listener),
           -EINVAL;
  size_t n = vh->n_routes;
  v->listener = vh->listener;
  if (!(v->gw = snap_gateway_new())) return -ENOMEM;
  v->name = vh->name;
  v->host = vh->host;
  v->host_match = vh->host_match       ? (int)vh->host_match
                  : !vh->host[0]       ? ROUTER_HOST_ANY
                  : vh->host[0] == '*' ? ROUTER_HOST_WILDCARD
                                       : ROUTER_HOST_EXACT;
  v->routes = calloc(n + 1, sizeof(*v->routes));
  v->sources = calloc(n + 1, sizeof(*v->sources));
  struct router_rule *rules = calloc(n + 1, sizeof(*rules));
  int rc = -ENOMEM;
  if (!v->routes || !v->sources || !rules) goto out;
  if ((rc = l7_policy_vhost(vh, &v->client_auth, err, errlen)) != 0) goto out;
  for (size_t j = 0; j < n; j++) {
    const Edge__V1__Route *pr = vh->routes[j];
    const Edge__V1__RouteOptions *o = pr->options;
    rc = -EINVAL;
    if (pr->path_type < 0 || pr->path_type > EDGE__V1__PATH_TYPE__PATH_TYPE_REGEX) {
      berr(err, errlen, "virtual host %s: route %s: unknown path_type %d", vh->name, pr->path,
           (int)pr->path_type);
      goto out;
    }
    struct l7_route *lr = &v->routes[v->n_routes];
    lr->vhost = vh->name;
    lr->host_pattern = vh->host;
    lr->host_match = v->host_match;
    lr->path = pr->path[0] ? pr->path : "/";
    lr->path_type = pr->path_type ? (int)pr->path_type : EDGE__V1__PATH_TYPE__PATH_TYPE_PREFIX;
    lr->cluster_name = pr->cluster;
    lr->cluster_slot = NO_SLOT;
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
    lr->ext_auth_slot = NO_SLOT;
    rc = snap_policy_route(lr, o, err, errlen); /* auth, limits, CORS */
    if (rc < 0) {
      v->n_routes++; /* its policies are freed with the others */
      goto out;
    }
    lr->host_has_tls = vh->certificate[0] != '\0' || vh->tls_fallback;
    lr->client_auth = v->client_auth;
    rc = route_source(pr, &v->sources[v->n_routes]);
    if (rc < 0) goto out;
    lr->source = v->sources[v->n_routes];
    rules[v->n_routes] = (struct router_rule){.host = vh->host,
                                              .host_match = v->host_match,
                                              .path = lr->path,
                                              .path_type = lr->path_type,
                                              .data = lr};
    rc = snap_gateway_route(v->gw, vh, pr, lr, &rules[v->n_routes], err, errlen);
    if (rc == 0 && (lr->n_weighted > 64 || lr->n_mirrors > 16)) {
      berr(err, errlen, "virtual host %s: route %s: more than 64 weighted clusters or 16 mirrors",
           vh->name, lr->path);
      rc = -EINVAL;
    }
    if (rc < 0) {
      free(v->sources[v->n_routes]); /* not counted in n_routes yet */
      v->sources[v->n_routes] = NULL;
      goto out;
    }
    v->n_routes++;
  }
  /* every cluster a route names (its own, weighted backends, mirrors) gets its slot */
  size_t pos = 0;
  uint32_t *slot;
  for (const char *cl; (cl = l7_res_cluster_name(r, &pos, &slot));) {
    struct name_use *u = name_use(b, &b->clusters, cl, 1);
    rc = -ENOMEM;
    if (!u) goto out;
    *slot = u->slot;
  }
  char why[256] = "";
  rc = router_build(rules, v->n_routes, &v->router, why, sizeof(why));
  if (rc == ROUTER_ERR_INVALID) {
    size_t idx = 0; /* "rule N": name the route's path */
    if (sscanf(why, "rule %zu", &idx) == 1 && idx < v->n_routes)
      berr(err, errlen, "virtual host %s: %s", vh->name, why);
    else
      berr(err, errlen, "virtual host %s: %s", vh->name, why);
    rc = -EINVAL;
  } else if (rc < 0) {
    rc = -ENOMEM;
  }
  if (rc == 0) rc = vhost_key(v, err, errlen);
out:
  free(rules);
  return rc;
}

static int compile_cert(struct l7_builder *b, struct l7_res *r, char *err, size_t errlen) {
  Edge__V1__Certificate *pc = r->msg->certificate;
  /* Whether the pair can be served is the TLS store's decision
   * (common/cert_valid): one it refuses costs only its own names and is
   * reported, never the whole push or file (issue 15). */
  if (pc->not_after == 0) { /* syncd fills it; a --config file may not */
    struct cert_info *info = malloc(sizeof(*info));
    if (info && cert_parse((const char *)pc->cert_pem.data, pc->cert_pem.len, info, NULL, 0) == 0)
      pc->not_after = info->not_after;
    free(info);
  }
  struct l7_certificate *lc = &r->u.cert;
  lc->name = pc->name;
  lc->sni_names = (const char *const *)pc->sni_names;
  lc->n_sni_names = pc->n_sni_names;
  lc->cert_pem = pc->cert_pem.data;
  lc->cert_pem_len = pc->cert_pem.len;
  lc->key_pem = pc->key_pem.data;
  lc->key_pem_len = pc->key_pem.len;
  lc->not_after = pc->not_after;
  lc->is_default = pc->is_default;
  lc->ocsp_response = pc->ocsp_response.len ? pc->ocsp_response.data : NULL;
  lc->ocsp_response_len = pc->ocsp_response.len;
  lc->ocsp_next_update = pc->ocsp_next_update;
  return 0;
}

static int compile_passthrough(struct l7_builder *b, struct l7_res *r, char *err, size_t errlen) {
  const Edge__V1__PassthroughHost *ph = r->msg->passthrough_host;
  if (!(r->u.pt.gw = snap_gateway_new())) return -ENOMEM;
  int rc = snap_gateway_passthrough(r->u.pt.gw, ph, &r->u.pt.pt, err, errlen);
  if (rc < 0) return rc;
  if (r->u.pt.pt.n_clusters > 64)
    return berr(err, errlen, "passthrough host %s: more than 64 clusters", ph->name), -EINVAL;
  rc = host_key(ph->host, (int)ph->host_match, 0, &r->u.pt.key);
  if (rc == -EINVAL) berr(err, errlen, "passthrough host %s: bad host %s", ph->name, ph->host);
  size_t pos = 0;
  uint32_t *slot;
  for (const char *cl; rc == 0 && (cl = l7_res_cluster_name(r, &pos, &slot));) {
    struct name_use *u = name_use(b, &b->clusters, cl, 1);
    if (!u) return -ENOMEM;
    *slot = u->slot;
  }
  return rc;
}

/* A deep copy of msg, compiled. index names it in reasons when it has no name. */
static int res_new(struct l7_builder *b, const Edge__V1__Resource *msg, Edge__V1__Resource **adopt,
                   size_t index, struct l7_res **out, char *err, size_t errlen) {
  *out = NULL;
  int type;
  const char *name = msg ? res_name(msg, &type) : NULL;
  if (!msg || !name) return berr(err, errlen, "upserted resource %zu: no kind set", index), -EINVAL;
  if (!name[0]) return berr(err, errlen, "%s %zu: empty name", type_str(type), index), -EINVAL;
  /* every tenant-reachable value (paths, rewrite targets, redirects, hosts,
   * names) well formed by common/validate, the same check syncd makes
   * before publishing: nothing that could inject into a request line, a
   * header or a log reaches a worker */
  if (validate_resource(msg, err, errlen) != 0) return -EINVAL;
  struct l7_res *r = calloc(1, sizeof(*r));
  if (!r) return -ENOMEM;
  atomic_init(&r->refs, 1);
  if (adopt) { /* the caller's unpacked message becomes the resource's */
    r->msg = *adopt;
    *adopt = NULL;
  } else {
    size_t len = edge__v1__resource__get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf) {
      edge__v1__resource__pack(msg, buf);
      r->msg = edge__v1__resource__unpack(NULL, len, buf);
    }
    free(buf);
  }
  if (!r->msg) {
    free(r);
    return -ENOMEM;
  }
  r->name = res_name(r->msg, &r->type);
  int rc = 0;
  switch (r->type) {
    case EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER:
      rc = compile_cluster(b, r, err, errlen);
      break;
    case EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST:
      rc = compile_vhost(b, r, err, errlen);
      break;
    case EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE:
      rc = compile_cert(b, r, err, errlen);
      break;
    case EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_PASSTHROUGH_HOST:
      rc = compile_passthrough(b, r, err, errlen);
      break;
    default:
      r->default_cluster = r->msg->default_backend->cluster;
      break;
  }
  if (rc < 0) {
    l7_res_unref(r);
    return rc;
  }
  *out = r;
  return 0;
}

/* ---- copy-on-write host tables ----------------------------------------------------- */

static char l7_htab_tomb;
#define L7_HTAB_TOMB (&l7_htab_tomb)

static uint64_t htab_hash(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a: host names are lower-cased and validated */
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

struct l7_res *l7_htab_get(const struct l7_htab *t, const char *key, size_t len) {
  if (!t->n) return NULL;
  uint64_t h = htab_hash(key, len);
  for (size_t i = (size_t)h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
    const struct l7_htab_slot *s = &t->slots[i];
    if (!s->key) return NULL;
    if (s->key != L7_HTAB_TOMB && s->hash == h && !strncmp(s->key, key, len) && !s->key[len])
      return s->val;
  }
}

static int htab_copy(struct l7_htab *dst, const struct l7_htab *src) {
  *dst = *src;
  if (!src->cap) return 0;
  dst->slots = malloc(src->cap * sizeof(*dst->slots));
  if (!dst->slots) return -ENOMEM;
  memcpy(dst->slots, src->slots, src->cap * sizeof(*dst->slots));
  return 0;
}

static int htab_rehash(struct l7_htab *t, size_t cap) {
  struct l7_htab_slot *ns = calloc(cap, sizeof(*ns));
  if (!ns) return -ENOMEM;
  for (size_t i = 0; i < t->cap; i++) {
    const struct l7_htab_slot *s = &t->slots[i];
    if (!s->key || s->key == L7_HTAB_TOMB) continue;
    size_t j = (size_t)s->hash & (cap - 1);
    while (ns[j].key) j = (j + 1) & (cap - 1);
    ns[j] = *s;
  }
  free(t->slots);
  t->slots = ns;
  t->cap = cap;
  t->used = t->n;
  return 0;
}

/* Inserts key → val; *taken receives the resource already there (not replaced). */
static int htab_put(struct l7_htab *t, const char *key, struct l7_res *val, struct l7_res **taken) {
  *taken = NULL;
  if ((t->used + 1) * 10 > t->cap * 7) {
    size_t cap = t->cap ? t->cap : 16;
    while ((t->n + 1) * 2 > cap) cap *= 2;
    if (htab_rehash(t, cap) != 0) return -ENOMEM;
  }
  size_t len = strlen(key);
  uint64_t h = htab_hash(key, len);
  size_t at = (size_t)-1;
  for (size_t i = (size_t)h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
    struct l7_htab_slot *s = &t->slots[i];
    if (!s->key) {
      if (at == (size_t)-1) {
        at = i;
        t->used++;
      }
      break;
    }
    if (s->key == L7_HTAB_TOMB) {
      if (at == (size_t)-1) at = i;
    } else if (s->hash == h && !strcmp(s->key, key)) {
      *taken = s->val;
      return 0;
    }
  }
  t->slots[at] = (struct l7_htab_slot){h, key, val};
  t->n++;
  return 0;
}

/* Removes key when it maps to val. */
static void htab_del(struct l7_htab *t, const char *key, const struct l7_res *val) {
  if (!t->n) return;
  size_t len = strlen(key);
  uint64_t h = htab_hash(key, len);
  for (size_t i = (size_t)h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
    struct l7_htab_slot *s = &t->slots[i];
    if (!s->key) return;
    if (s->key != L7_HTAB_TOMB && s->hash == h && !strcmp(s->key, key)) {
      if (s->val != val) return;
      s->key = L7_HTAB_TOMB;
      s->val = NULL;
      t->n--;
      return;
    }
  }
}

/* The table a virtual host belongs in and its key there ("" for ANY). */
static struct l7_htab *vhost_table(struct l7_snapshot *s, const struct l7_vhost *v,
                                   const char **key) {
  *key = v->key;
  if (v->host_match == ROUTER_HOST_ANY) return NULL;
  return v->host_match == ROUTER_HOST_WILDCARD ? &s->wild
         : v->host_match == ROUTER_HOST_SUFFIX ? &s->suffix
                                               : &s->exact;
}

/* ---- the builder -------------------------------------------------------------------- */

/* The TLS store keeps certificate resources alive instead of copying their PEM. */
static void pin_ref(void *r) {
  l7_res_ref(r);
}

static void pin_unref(void *r) {
  l7_res_unref(r);
}

int l7_builder_new(const struct tls_options *tls, struct l7_builder **out) {
  struct l7_builder *b = calloc(1, sizeof(*b));
  if (!b) return -ENOMEM;
  if (tls) {
    b->tls = *tls;
    b->tls.ciphers_tls12 = tls->ciphers_tls12 ? strdup(tls->ciphers_tls12) : NULL;
    b->tls.ciphersuites_tls13 = tls->ciphersuites_tls13 ? strdup(tls->ciphersuites_tls13) : NULL;
    b->tls.lazy = 1; /* a certificate is decoded on its first handshake */
    b->tls.pin_ref = pin_ref;
    b->tls.pin_unref = pin_unref;
    b->tls_enabled = 1;
  }
  hmap_init(&b->clusters);
  hmap_init(&b->certs);
  *out = b;
  return 0;
}

static void free_uses(struct hmap *m) {
  size_t pos = 0;
  void *v;
  while (hmap_next(m, &pos, NULL, NULL, &v)) free(v);
  hmap_free(m);
}

void l7_builder_free(struct l7_builder *b) {
  if (!b) return;
  l7_snapshot_unref(b->cur);
  free_uses(&b->clusters);
  free_uses(&b->certs);
  free(b->free_slots);
  free((char *)b->tls.ciphers_tls12);
  free((char *)b->tls.ciphersuites_tls13);
  free(b);
}

void l7_builder_set_verify_keys(struct l7_builder *b, int on) {
  b->verify_keys = on;
}

uint64_t l7_builder_version(const struct l7_builder *b) {
  return b->version;
}

struct l7_snapshot *l7_builder_snapshot(const struct l7_builder *b) {
  return b->cur;
}

static int key_cmp(int ta, const char *na, int tb, const char *nb) {
  if (ta != tb) return ta < tb ? -1 : 1;
  return strcmp(na, nb);
}

static int res_cmp(const void *a, const void *b) {
  const struct l7_res *x = *(struct l7_res *const *)a, *y = *(struct l7_res *const *)b;
  return key_cmp(x->type, x->name, y->type, y->name);
}

/* The index of (type, name) in the sorted array v[0..n), or -1. */
static long res_find(struct l7_res *const *v, size_t n, int type, const char *name) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = key_cmp(v[mid]->type, v[mid]->name, type, name);
    if (c == 0) return (long)mid;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

const Edge__V1__Resource *l7_builder_get(const struct l7_builder *b, int type, const char *name) {
  if (!b->cur) return NULL;
  long i = res_find(b->cur->res, b->cur->n_res, type, name);
  return i < 0 ? NULL : b->cur->res[i]->msg;
}

/* ---- applying a push ----------------------------------------------------------------- */

/* A change to a name's counts, undone when the push is refused. */
struct count_change {
  struct name_use *u;
  long users;
  int present_was, present_set;
};

struct apply {
  struct l7_builder *b;
  struct l7_res **nu; /* the push's resources, compiled (one reference each) */
  size_t n_nu;
  struct l7_res **dropped, **added; /* leaving (from cur) and entering (from nu) */
  size_t n_dropped, n_added;
  struct count_change *cc;
  size_t n_cc, cap_cc;
  int certs_changed;
  int adopt; /* upserted messages are taken, not copied */
  char *err;
  size_t errlen;
};

static int count(struct apply *ap, struct hmap *m, const char *name, long users, int present) {
  struct name_use *u = name_use(ap->b, m, name, m == &ap->b->clusters);
  if (!u) return -ENOMEM;
  if (ap->n_cc == ap->cap_cc) {
    size_t cap = ap->cap_cc ? ap->cap_cc * 2 : 64;
    struct count_change *nv = realloc(ap->cc, cap * sizeof(*nv));
    if (!nv) return -ENOMEM;
    ap->cc = nv;
    ap->cap_cc = cap;
  }
  ap->cc[ap->n_cc++] = (struct count_change){u, users, u->present, present >= 0};
  u->users += users;
  if (present >= 0) u->present = present;
  return 0;
}

static void undo_counts(struct apply *ap) {
  for (size_t i = ap->n_cc; i > 0; i--) {
    struct count_change *c = &ap->cc[i - 1];
    c->u->users -= c->users;
    if (c->present_set) c->u->present = c->present_was;
  }
}

/* Counts what resource r names (+1 entering, -1 leaving) and its presence. */
static int count_res(struct apply *ap, const struct l7_res *r, int dir) {
  struct l7_builder *b = ap->b;
  int rc = 0;
  switch (r->type) {
    case EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST: {
      size_t pos = 0;
      for (const char *cl; rc == 0 && (cl = l7_res_cluster_name(r, &pos, NULL));)
        rc = count(ap, &b->clusters, cl, dir, -1);
      const char *cert = r->msg->virtual_host->certificate;
      if (rc == 0 && cert[0]) rc = count(ap, &b->certs, cert, dir, -1);
      break;
    }
    case EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER:
      rc = count(ap, &b->clusters, r->name, 0, dir > 0);
      break;
    case EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE:
      rc = count(ap, &b->certs, r->name, 0, dir > 0);
      ap->certs_changed = 1;
      break;
    default: { /* a default backend or a passthrough host: the clusters it names */
      size_t pos = 0;
      for (const char *cl; rc == 0 && (cl = l7_res_cluster_name(r, &pos, NULL));)
        rc = count(ap, &b->clusters, cl, dir, -1);
      break;
    }
  }
  return rc;
}

static int push_ptr(struct l7_res ***v, size_t *n, struct l7_res *r) {
  struct l7_res **nv = realloc(*v, (*n + 1) * sizeof(*nv));
  if (!nv) return -ENOMEM;
  *v = nv;
  nv[(*n)++] = r;
  return 0;
}

static int rm_cmp(const void *a, const void *b) {
  const Edge__V1__ResourceName *x = *(Edge__V1__ResourceName *const *)a;
  const Edge__V1__ResourceName *y = *(Edge__V1__ResourceName *const *)b;
  return key_cmp((int)x->type, x->name, (int)y->type, y->name);
}

/* The first index of v[0..n) (sorted) whose key is not below (type, name). */
static size_t res_lower(struct l7_res *const *v, size_t n, int type, const char *name) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (key_cmp(v[mid]->type, v[mid]->name, type, name) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

#define NO_POS ((size_t)-1)

/* The new resource list: cur's with the push applied, dropped and added
 * noted. A delta costs O(changes × log n) to locate plus one copy of the
 * pointer ranges between them (memcpy), never a comparison per resource. */
static int merge(struct apply *ap, int full, Edge__V1__ResourceName *const *rm, size_t nrm,
                 struct l7_res ***out, size_t *n_out) {
  const struct l7_snapshot *cur = ap->b->cur;
  size_t n_cur = cur ? cur->n_res : 0, n_nu = ap->n_nu;
  struct l7_res **v = calloc(n_cur + n_nu + 1, sizeof(*v));
  size_t *pos = calloc(n_nu + nrm + 1, sizeof(*pos));
  char *match = calloc(n_nu + 1, 1);
  int rc = v && pos && match ? 0 : -ENOMEM;
  size_t n = 0;
  if (rc == 0 && full) { /* everything leaves, the push enters */
    for (size_t i = 0; rc == 0 && i < n_cur; i++)
      rc = push_ptr(&ap->dropped, &ap->n_dropped, cur->res[i]);
    for (size_t j = 0; rc == 0 && j < n_nu; j++) {
      v[n++] = ap->nu[j];
      rc = push_ptr(&ap->added, &ap->n_added, ap->nu[j]);
    }
  } else if (rc == 0) {
    size_t *pos_rm = pos + n_nu;
    for (size_t j = 0; j < n_nu; j++) {
      pos[j] = res_lower(cur ? cur->res : NULL, n_cur, ap->nu[j]->type, ap->nu[j]->name);
      match[j] = pos[j] < n_cur && res_cmp(&cur->res[pos[j]], &ap->nu[j]) == 0;
    }
    for (size_t k = 0; k < nrm; k++) {
      size_t p = res_lower(cur ? cur->res : NULL, n_cur, (int)rm[k]->type, rm[k]->name);
      pos_rm[k] = p < n_cur && key_cmp(cur->res[p]->type, cur->res[p]->name, (int)rm[k]->type,
                                       rm[k]->name) == 0
                      ? p
                      : NO_POS;
    }
    size_t i = 0, j = 0, k = 0;
    while (rc == 0 && (i < n_cur || j < n_nu)) {
      while (k < nrm && pos_rm[k] == NO_POS) k++;
      size_t next = n_cur;
      if (j < n_nu && pos[j] < next) next = pos[j];
      if (k < nrm && pos_rm[k] < next) next = pos_rm[k];
      if (next > i) { /* untouched: copied as a range */
        memcpy(v + n, cur->res + i, (next - i) * sizeof(*v));
        n += next - i;
        i = next;
      }
      while (rc == 0 && j < n_nu && pos[j] == i && !match[j]) { /* entering before cur[i] */
        v[n++] = ap->nu[j];
        rc = push_ptr(&ap->added, &ap->n_added, ap->nu[j++]);
      }
      if (rc != 0 || i >= n_cur) continue;
      int replaced = j < n_nu && pos[j] == i && match[j];
      int gone = replaced || (k < nrm && pos_rm[k] == i);
      while (k < nrm && pos_rm[k] == i) k++;
      if (gone)
        rc = push_ptr(&ap->dropped, &ap->n_dropped, cur->res[i]);
      else
        v[n++] = cur->res[i];
      if (rc == 0 && replaced) {
        v[n++] = ap->nu[j];
        rc = push_ptr(&ap->added, &ap->n_added, ap->nu[j++]);
      }
      i++;
    }
  }
  free(pos);
  free(match);
  if (rc != 0) {
    free(v);
    return rc;
  }
  *out = v;
  *n_out = n;
  return 0;
}

/* The first vhost or default backend among v that names cluster (or certificate) name. */
static const struct l7_res *user_of(struct l7_res *const *v, size_t n, int cert, const char *name) {
  for (size_t i = 0; i < n; i++) {
    const struct l7_res *r = v[i];
    if (r->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST) {
      if (cert) {
        if (!strcmp(r->msg->virtual_host->certificate, name)) return r;
        continue;
      }
    }
    if (cert) continue;
    size_t pos = 0;
    for (const char *cl; (cl = l7_res_cluster_name(r, &pos, NULL));)
      if (!strcmp(cl, name)) return r;
  }
  return NULL;
}

/* Every name an entering resource uses exists; nothing leaving is still used. */
static int check_refs(struct apply *ap, struct l7_res *const *v, size_t n) {
  struct l7_builder *b = ap->b;
  for (size_t i = 0; i < ap->n_added; i++) {
    const struct l7_res *r = ap->added[i];
    size_t pos = 0;
    for (const char *cl; (cl = l7_res_cluster_name(r, &pos, NULL));) {
      const struct name_use *u = hmap_gets(&b->clusters, cl);
      if (u && u->present) continue;
      if (r->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST)
        return berr(ap->err, ap->errlen, "virtual host %s: route %s references unknown cluster %s",
                    r->name, r->u.vhost.routes[(pos - 1) / 256].path, cl),
               -EINVAL;
      return berr(ap->err, ap->errlen, "%s %s: references unknown cluster %s", type_str(r->type),
                  r->name, cl),
             -EINVAL;
    }
    if (r->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST) {
      const char *cert = r->msg->virtual_host->certificate;
      const struct name_use *u = cert[0] ? hmap_gets(&b->certs, cert) : NULL;
      if (cert[0] && (!u || !u->present))
        return berr(ap->err, ap->errlen, "virtual host %s: references unknown certificate %s",
                    r->name, cert),
               -EINVAL;
    }
  }
  for (size_t i = 0; i < ap->n_dropped; i++) {
    const struct l7_res *r = ap->dropped[i];
    int cert = r->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE;
    if (!cert && r->type != EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER) continue;
    const struct name_use *u = hmap_gets(cert ? &b->certs : &b->clusters, r->name);
    if (u && !u->present && u->users > 0) {
      const struct l7_res *user = user_of(v, n, cert, r->name);
      return berr(ap->err, ap->errlen, "%s %s: removed but still used by %s %s", type_str(r->type),
                  r->name, user ? type_str(user->type) : "", user ? user->name : "?"),
             -EINVAL;
    }
  }
  return 0;
}

/* [first, first + count) of type in the sorted v. */
static void type_range(struct l7_res *const *v, size_t n, int type, size_t *first, size_t *count) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (v[mid]->type < type)
      lo = mid + 1;
    else
      hi = mid;
  }
  size_t end = lo;
  while (end < n && v[end]->type == type) end++;
  *first = lo;
  *count = end - lo;
}

/* The table a resource's host belongs in (NULL: the "any host" slot) and its key there. */
static struct l7_htab *host_table(struct l7_snapshot *s, const struct l7_res *r, const char **key) {
  if (r->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_PASSTHROUGH_HOST) {
    *key = r->u.pt.key;
    return r->u.pt.pt.host_match == ROUTER_HOST_SUFFIX ? &s->pt_suffix : &s->pt_exact;
  }
  return vhost_table(s, &r->u.vhost, key);
}

/* The host tables: the previous ones with the push's virtual and passthrough hosts out and in. */
static int build_hosts(struct apply *ap, struct l7_snapshot *s, const struct l7_snapshot *prev) {
  struct l7_htab *tabs[] = {&s->exact, &s->wild, &s->suffix, &s->pt_exact, &s->pt_suffix};
  if (prev) {
    const struct l7_htab *from[] = {&prev->exact, &prev->wild, &prev->suffix, &prev->pt_exact,
                                    &prev->pt_suffix};
    for (size_t i = 0; i < sizeof(tabs) / sizeof(tabs[0]); i++)
      if (htab_copy(tabs[i], from[i]) != 0) return -ENOMEM;
    memcpy(s->any_vhost, prev->any_vhost, sizeof(s->any_vhost));
  }
  s->n_client_auth = prev ? prev->n_client_auth : 0; /* issue 20: hosts with client certs */
  for (size_t i = 0; i < ap->n_dropped; i++)
    if (ap->dropped[i]->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST &&
        ap->dropped[i]->u.vhost.client_auth)
      s->n_client_auth--;
  for (size_t i = 0; i < ap->n_added; i++)
    if (ap->added[i]->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST &&
        ap->added[i]->u.vhost.client_auth)
      s->n_client_auth++;
  for (size_t i = 0; i < ap->n_dropped; i++) {
    const struct l7_res *r = ap->dropped[i];
    if (r->type != EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST &&
        r->type != EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_PASSTHROUGH_HOST)
      continue;
    const char *key;
    struct l7_htab *t = host_table(s, r, &key);
    if (t)
      htab_del(t, key, r);
    else if (s->any_vhost[r->u.vhost.listener] == r)
      s->any_vhost[r->u.vhost.listener] = NULL;
  }
  for (size_t i = 0; i < ap->n_added; i++) {
    struct l7_res *r = ap->added[i];
    int pt = r->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_PASSTHROUGH_HOST;
    if (r->type != EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST && !pt) continue;
    const char *key;
    struct l7_htab *t = host_table(s, r, &key);
    struct l7_res *taken = NULL;
    if (t) {
      if (htab_put(t, key, r, &taken) != 0) return -ENOMEM;
    } else if (s->any_vhost[r->u.vhost.listener]) {
      taken = s->any_vhost[r->u.vhost.listener];
    } else {
      s->any_vhost[r->u.vhost.listener] = r;
    }
    const char *host = pt ? r->u.pt.pt.host : r->u.vhost.host;
    if (taken)
      return berr(ap->err, ap->errlen, "%s %s: host %s is also served by %s %s", type_str(r->type),
                  r->name, host[0] ? host : "(any)", type_str(taken->type), taken->name),
             -EINVAL;
  }
  return 0;
}

/* Descriptors of the certificates in v (sorted by name) for the TLS store. */
static int build_tls(struct l7_builder *b, struct l7_snapshot *s, const struct l7_snapshot *prev,
                     int changed, char *err, size_t errlen) {
  if (!b->tls_enabled) return 0;
  if (prev && prev->tls && !changed) {
    tls_store_ref(prev->tls);
    s->tls = prev->tls;
    return 0;
  }
  struct tls_certificate *d = calloc(s->n_certs + 1, sizeof(*d));
  if (!d) return -ENOMEM;
  for (size_t i = 0; i < s->n_certs; i++) {
    const struct l7_certificate *c = &s->certs[i]->u.cert;
    d[i] = (struct tls_certificate){.name = c->name,
                                    .sni_names = c->sni_names,
                                    .n_sni_names = c->n_sni_names,
                                    .cert_pem = c->cert_pem,
                                    .cert_pem_len = c->cert_pem_len,
                                    .key_pem = c->key_pem,
                                    .key_pem_len = c->key_pem_len,
                                    .is_default = c->is_default,
                                    .pin = s->certs[i],
                                    .ocsp_der = c->ocsp_response,
                                    .ocsp_der_len = c->ocsp_response_len,
                                    .ocsp_next_update = c->ocsp_next_update};
  }
  struct tls_options o = b->tls;
  if (b->verify_keys) o.lazy = 0; /* a file: decode now, so /config lists what it refuses */
  int rc = tls_store_build_from(prev ? prev->tls : NULL, d, s->n_certs, &o, &s->tls, err, errlen);
  free(d);
  return rc == 0 ? 0 : rc == TLS_ERR_NOMEM ? -ENOMEM : -EINVAL;
}

/* The snapshot of the new list v (references taken). */
static int build_snapshot(struct apply *ap, struct l7_res **v, size_t n, uint64_t version,
                          struct l7_snapshot **out) {
  struct l7_builder *b = ap->b;
  const struct l7_snapshot *prev = b->cur;
  struct l7_snapshot *s = calloc(1, sizeof(*s));
  if (!s) {
    free(v);
    return -ENOMEM;
  }
  atomic_init(&s->refs, 1);
  s->version = version;
  s->res = v;
  s->n_res = n;
  for (size_t i = 0; i < n; i++) l7_res_ref(v[i]);
  int rc = -ENOMEM;
  s->n_slots = b->next_slot;
  s->slots = calloc(s->n_slots + 1, sizeof(*s->slots));
  if (!s->slots) goto fail;
  if (prev)
    memcpy(s->slots, prev->slots,
           (prev->n_slots < s->n_slots ? prev->n_slots : s->n_slots) * sizeof(*s->slots));
  for (size_t i = 0; i < ap->n_dropped; i++)
    if (ap->dropped[i]->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER &&
        s->slots[ap->dropped[i]->u.cluster.slot] == ap->dropped[i])
      s->slots[ap->dropped[i]->u.cluster.slot] = NULL;
  for (size_t i = 0; i < ap->n_added; i++)
    if (ap->added[i]->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER)
      s->slots[ap->added[i]->u.cluster.slot] = ap->added[i];
  size_t first, cnt;
  type_range(v, n, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER, &first, &cnt);
  s->clusters = v + first;
  s->n_clusters = cnt;
  type_range(v, n, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE, &first, &cnt);
  s->certs = v + first;
  s->n_certs = cnt;
  for (size_t i = 0; i < s->n_certs && !s->default_cert; i++)
    if (s->certs[i]->u.cert.is_default) s->default_cert = &s->certs[i]->u.cert;
  type_range(v, n, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_DEFAULT_BACKEND, &first, &cnt);
  s->default_backend = cnt ? v[first] : NULL;
  type_range(v, n, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_PASSTHROUGH_HOST, &first, &cnt);
  s->n_passthrough = cnt;
  s->default_slot = NO_SLOT;
  if (s->default_backend && s->default_backend->default_cluster[0]) {
    const struct name_use *u = hmap_gets(&b->clusters, s->default_backend->default_cluster);
    if (u) s->default_slot = u->slot;
  }
  rc = build_hosts(ap, s, prev);
  if (rc == 0) rc = build_tls(b, s, prev, ap->certs_changed, ap->err, ap->errlen);
  if (rc != 0) goto fail;
  *out = s;
  return 0;
fail:
  l7_snapshot_free(s);
  return rc;
}

struct ordered {
  struct l7_res *r;
  size_t i; /* position in the push */
};

static int ordered_cmp(const void *a, const void *b) {
  const struct ordered *x = a, *y = b;
  int c = key_cmp(x->r->type, x->r->name, y->r->type, y->r->name);
  return c ? c : (x->i < y->i ? -1 : x->i > y->i);
}

/* The push's resources compiled and sorted; a full push may not repeat a
 * name, in a delta the last one wins. */
static int compile_all(struct apply *ap, int full, Edge__V1__Resource *const *up, size_t nup) {
  ap->nu = calloc(nup + 1, sizeof(*ap->nu));
  struct ordered *o = calloc(nup + 1, sizeof(*o));
  int rc = 0;
  if (!ap->nu || !o) rc = -ENOMEM;
  for (size_t i = 0; rc == 0 && i < nup; i++) {
    Edge__V1__Resource **adopt = ap->adopt ? &((Edge__V1__Resource **)up)[i] : NULL;
    rc = res_new(ap->b, up[i], adopt, i, &ap->nu[ap->n_nu], ap->err, ap->errlen);
    if (rc == 0) {
      o[ap->n_nu] = (struct ordered){ap->nu[ap->n_nu], i};
      ap->n_nu++;
    }
  }
  if (rc != 0) {
    free(o);
    return rc;
  }
  if (ap->n_nu > 1) qsort(o, ap->n_nu, sizeof(*o), ordered_cmp);
  size_t w = 0;
  for (size_t i = 0; i < ap->n_nu; i++) {
    if (w > 0 && res_cmp(&ap->nu[w - 1], &o[i].r) == 0) {
      if (full) { /* keep every reference in nu, where the caller drops them */
        berr(ap->err, ap->errlen, "%s %s: defined twice", type_str(o[i].r->type), o[i].r->name);
        for (size_t k = i; k < ap->n_nu; k++) ap->nu[w++] = o[k].r;
        ap->n_nu = w;
        free(o);
        return -EINVAL;
      }
      l7_res_unref(ap->nu[w - 1]);
      ap->nu[w - 1] = o[i].r;
      continue;
    }
    ap->nu[w++] = o[i].r;
  }
  ap->n_nu = w;
  free(o);
  return 0;
}

/* Names this push touched that nothing holds or names any more give their slot back. */
static void release_names(struct apply *ap) {
  struct l7_builder *b = ap->b;
  struct l7_res **lists[2] = {ap->dropped, ap->nu};
  size_t ns[2] = {ap->n_dropped, ap->n_nu};
  for (int l = 0; l < 2; l++)
    for (size_t i = 0; i < ns[l]; i++) {
      const struct l7_res *r = lists[l][i];
      if (r->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER)
        name_release(b, &b->clusters, r->name);
      else if (r->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE)
        name_release(b, &b->certs, r->name);
      else {
        size_t pos = 0;
        for (const char *cl; (cl = l7_res_cluster_name(r, &pos, NULL));)
          name_release(b, &b->clusters, cl);
        if (r->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST &&
            r->msg->virtual_host->certificate[0])
          name_release(b, &b->certs, r->msg->virtual_host->certificate);
      }
    }
}

static int apply_impl(struct l7_builder *b, uint64_t version, int full,
                      Edge__V1__Resource *const *upserted, size_t n_upserted,
                      Edge__V1__ResourceName *const *removed_names, size_t n_removed, int adopt,
                      struct l7_snapshot **out, char *err, size_t errlen);

int l7_builder_apply(struct l7_builder *b, uint64_t version, int full,
                     Edge__V1__Resource *const *upserted, size_t n_upserted,
                     Edge__V1__ResourceName *const *removed_names, size_t n_removed,
                     struct l7_snapshot **out, char *err, size_t errlen) {
  return apply_impl(b, version, full, upserted, n_upserted, removed_names, n_removed, 0, out, err,
                    errlen);
}

int l7_builder_apply_adopt(struct l7_builder *b, uint64_t version, int full,
                           Edge__V1__Resource **upserted, size_t n_upserted,
                           Edge__V1__ResourceName *const *removed_names, size_t n_removed,
                           struct l7_snapshot **out, char *err, size_t errlen) {
  int rc = apply_impl(b, version, full, upserted, n_upserted, removed_names, n_removed, 1, out, err,
                      errlen);
  for (size_t i = 0; i < n_upserted; i++) { /* not reached or not a resource: ours to free */
    edge__v1__resource__free_unpacked(upserted[i], NULL);
    upserted[i] = NULL;
  }
  return rc;
}

static int apply_impl(struct l7_builder *b, uint64_t version, int full,
                      Edge__V1__Resource *const *upserted, size_t n_upserted,
                      Edge__V1__ResourceName *const *removed_names, size_t n_removed, int adopt,
                      struct l7_snapshot **out, char *err, size_t errlen) {
  *out = NULL;
  char scratch[8];
  if (!err || !errlen) err = scratch, errlen = sizeof(scratch);
  err[0] = '\0';
  struct apply ap = {.b = b, .adopt = adopt, .err = err, .errlen = errlen};
  Edge__V1__ResourceName **rm = NULL;
  struct l7_res **v = NULL;
  size_t n = 0, nrm = 0;
  int rc = compile_all(&ap, full, upserted, n_upserted);
  if (rc == 0 && !full && n_removed) {
    rm = calloc(n_removed, sizeof(*rm));
    if (!rm) rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n_removed; i++) {
      const Edge__V1__ResourceName *x = removed_names[i];
      if (!x || x->type <= 0 || x->type > EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_PASSTHROUGH_HOST) {
        berr(err, errlen, "removed resource %zu: unknown type %d", i, x ? (int)x->type : -1);
        rc = -EINVAL;
      } else if (x->name) {
        rm[nrm++] = (Edge__V1__ResourceName *)x;
      }
    }
    if (rc == 0 && nrm > 1) qsort(rm, nrm, sizeof(*rm), rm_cmp);
  }
  if (rc == 0) rc = merge(&ap, full, rm, nrm, &v, &n);
  for (size_t i = 0; rc == 0 && i < ap.n_dropped; i++) rc = count_res(&ap, ap.dropped[i], -1);
  for (size_t i = 0; rc == 0 && i < ap.n_added; i++) rc = count_res(&ap, ap.added[i], +1);
  if (rc == 0) rc = check_refs(&ap, v, n);
  struct l7_snapshot *s = NULL;
  if (rc == 0) {
    rc = build_snapshot(&ap, v, n, version, &s);
    v = NULL; /* the snapshot owns it (and freed it on failure) */
  }
  if (rc != 0) {
    undo_counts(&ap);
    if (rc == -ENOMEM && !err[0]) berr(err, errlen, "out of memory applying the configuration");
  }
  release_names(&ap); /* before the old snapshot goes: dropped points into it */
  if (rc == 0) {
    l7_snapshot_unref(b->cur);
    b->cur = l7_snapshot_ref(s);
    b->version = version;
    *out = s;
  }
  for (size_t i = 0; i < ap.n_nu; i++) l7_res_unref(ap.nu[i]); /* snapshots hold their own */
  free(ap.nu);
  free(ap.dropped);
  free(ap.added);
  free(ap.cc);
  free(rm);
  free(v);
  return rc;
}

int l7_snapshot_build(uint64_t version, Edge__V1__Resource *const *res, size_t n,
                      struct l7_snapshot **out, char *err, size_t errlen) {
  struct l7_builder *b;
  *out = NULL;
  if (l7_builder_new(NULL, &b) != 0) return -ENOMEM;
  b->verify_keys = 1;
  int rc = l7_builder_apply(b, version, 1, res, n, NULL, 0, out, err, errlen);
  l7_builder_free(b);
  return rc;
}
