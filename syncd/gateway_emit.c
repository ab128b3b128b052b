/*
 * gateway_emit — the attached routes' entries → packed edge.v1 resources,
 * merged into the Ingress translator's desired state.
 *
 * Entries are grouped by (listener, host) into VirtualHosts whose routes
 * keep the order the entries were made in (oldest route, rule, match: the
 * last tie-break of precedence; common/router sorts the rest). A host
 * that an Ingress also serves goes to the older side (gateway.h); the
 * loser's resources are dropped and it is reported. Clusters carry the
 * Service's ready endpoints (the ClusterIP when no EndpointSlice is
 * known), certificates the listener's Secret with the SNI names of the
 * hosts that use it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cert.h"
#include "common/validate.h"
#include "syncd/cluster_emit.h"
#include "syncd/gateway_internal.h"

struct host_group {
  const char *host;
  size_t first, count; /* slice of the sorted entries */
  const struct gobj *oldest;
  int lost; /* an Ingress keeps the host */
};

static int entry_cmp(const void *a, const void *b) {
  const struct groute_entry *x = a, *y = b;
  int r = strcmp(x->host, y->host);
  if (r) return r;
  if (x->listener != y->listener) return x->listener < y->listener ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The SourceRef of a resource's first route (a VirtualHost) or its own, for a rejection. */
static const Edge__V1__SourceRef *source_of(const Edge__V1__Resource *r) {
  if (r->kind_case == EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST)
    return r->virtual_host->n_routes ? r->virtual_host->routes[0]->source : NULL;
  if (r->kind_case == EDGE__V1__RESOURCE__KIND_PASSTHROUGH_HOST) return r->passthrough_host->source;
  if (r->kind_case == EDGE__V1__RESOURCE__KIND_CERTIFICATE) return r->certificate->source;
  return NULL;
}

/* Adds r to d, packed, unless common/validate refuses it (the check every proxy makes on what
 * it receives): the values were checked where they entered, so this only catches what slipped
 * through, which is then reported and not published. */
static int push(struct gctx *c, struct syncd_desired *d, int type, const char *name,
                Edge__V1__Resource *r) {
  char why[512];
  if (validate_resource(r, why, sizeof(why)) != 0) {
    const Edge__V1__SourceRef *src = source_of(r);
    struct gobj k = {
        .ns = src ? src->namespace_ : "", .name = src ? src->name : "", .location = ""};
    greject(c, src && src->kind[0] ? src->kind : "", &k, "not published: %s", why);
    return 0;
  }
  size_t len = edge__v1__resource__get_packed_size(r);
  struct syncd_resource out = {type, strdup(name), malloc(len ? len : 1), len};
  struct syncd_resource *nr = realloc(d->resources, (d->n_resources + 1) * sizeof(*nr));
  if (!out.name || !out.bytes || !nr) {
    free(out.name), free(out.bytes);
    if (nr) d->resources = nr;
    c->pool.oom = 1;
    return -ENOMEM;
  }
  edge__v1__resource__pack(r, out.bytes);
  d->resources = nr;
  d->resources[d->n_resources++] = out;
  return 0;
}

/* ---- Ingress hosts -------------------------------------------------------------- */

/* The creationTimestamp of Ingress "ns/name" (NULL unknown). */
static const char *ingress_created(const struct manifest_set *in, const char *id) {
  const char *slash = strchr(id, '/');
  if (!slash) return NULL;
  for (size_t i = 0; i < in->n_docs; i++) {
    json_t *o = in->docs[i].obj, *md = json_object_get(o, "metadata");
    const char *kind = gj_str(o, "kind"), *ns = gj_str(md, "namespace"), *name = gj_str(md, "name");
    if (!kind || strcmp(kind, "Ingress") != 0 || !name) continue;
    if (!ns || !*ns) ns = "default";
    if (strlen(ns) == (size_t)(slash - id) && !strncmp(ns, id, (size_t)(slash - id)) &&
        !strcmp(name, slash + 1)) {
      const char *c = gj_str(md, "creationTimestamp");
      return c && *c ? c : NULL;
    }
  }
  return NULL;
}

/* Index of the Ingress VirtualHost for host in d, or -1. */
static long ingress_vhost(const struct syncd_desired *d, const char *host) {
  char name[300];
  snprintf(name, sizeof(name), "vh:%s", host[0] ? host : "*");
  for (size_t i = 0; i < d->n_resources; i++)
    if (d->resources[i].type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST &&
        !strcmp(d->resources[i].name, name))
      return (long)i;
  return -1;
}

static void drop_resource(struct syncd_desired *d, size_t i) {
  free(d->resources[i].name);
  free(d->resources[i].bytes);
  memmove(&d->resources[i], &d->resources[i + 1], (d->n_resources - i - 1) * sizeof(*d->resources));
  d->n_resources--;
}

/* Settles one host claimed by Gateway routes (oldest route g) against an Ingress vhost. Returns 1
 * when the Ingress keeps the host. */
static int settle_host(struct gctx *c, const struct manifest_set *in, struct syncd_desired *d,
                       const char *host, const struct gobj *g, const char *g_kind) {
  char **nh = realloc(d->gateway_hosts, (d->n_gateway_hosts + 1) * sizeof(*nh));
  if (nh) d->gateway_hosts = nh;
  if (!nh || !(nh[d->n_gateway_hosts] = strdup(host)))
    c->pool.oom = 1;
  else
    d->n_gateway_hosts++;
  long vi = ingress_vhost(d, host);
  if (vi < 0) return 0;
  Edge__V1__Resource *r =
      edge__v1__resource__unpack(NULL, d->resources[vi].len, d->resources[vi].bytes);
  if (!r || r->kind_case != EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST) {
    if (r) edge__v1__resource__free_unpacked(r, NULL);
    return 0;
  }
  const Edge__V1__VirtualHost *vh = r->virtual_host;
  const char *oldest_id = vh->n_ingresses ? vh->ingresses[0] : "";
  const char *created = NULL;
  /* vh->ingresses is oldest first, but the first with a timestamp is what ages compare. */
  for (size_t i = 0; i < vh->n_ingresses && !created; i++)
    if ((created = ingress_created(in, vh->ingresses[i]))) oldest_id = vh->ingresses[i];
  int ingress_wins = 1;
  if (created && g->created)
    ingress_wins = strcmp(created, g->created) <= 0;
  else if (g->created)
    ingress_wins = 0; /* a timestamp beats none (no timestamp counts as newest) */
  const char *h = host[0] ? host : "*";
  if (!ingress_wins) {
    for (size_t i = 0; i < vh->n_ingresses; i++) {
      const char *id = vh->ingresses[i], *slash = strchr(id, '/');
      struct gobj k = {.ns = slash ? pool_printf(&c->pool, "%.*s", (int)(slash - id), id) : "",
                       .name = slash ? slash + 1 : id,
                       .location = ""};
      if (k.ns)
        greject(c, "Ingress", &k, "%s: host %s is served by %s %s (older)", id, h, g_kind, g->key);
    }
    drop_resource(d, (size_t)vi);
  }
  (void)oldest_id;
  edge__v1__resource__free_unpacked(r, NULL);
  return ingress_wins;
}

/* ---- virtual hosts ------------------------------------------------------------------ */

static int emit_vhost(struct gctx *c, struct syncd_desired *d, struct groute_entry *e, size_t n) {
  Edge__V1__VirtualHost vh;
  edge__v1__virtual_host__init(&vh);
  const char *host = e[0].host;
  int https = e[0].listener == EDGE__V1__LISTENER__LISTENER_HTTPS;
  vh.name = pool_printf(&c->pool, "gw:%s:%s", https ? "https" : "http", host[0] ? host : "*");
  vh.host = (char *)host;
  vh.host_match = !host[0]         ? EDGE__V1__HOST_MATCH__HOST_MATCH_ANY
                  : host[0] == '*' ? EDGE__V1__HOST_MATCH__HOST_MATCH_SUFFIX
                                   : EDGE__V1__HOST_MATCH__HOST_MATCH_EXACT;
  vh.listener = e[0].listener;
  vh.certificate = (char *)(https && e[0].cert ? e[0].cert : "");
  Edge__V1__Route **routes = pool_alloc(&c->pool, n * sizeof(*routes));
  char **srcs = pool_alloc(&c->pool, n * sizeof(*srcs));
  if (!vh.name || !routes || !srcs) return -ENOMEM;
  size_t ns = 0;
  for (size_t i = 0; i < n; i++) {
    routes[i] = e[i].msg;
    const char *s = pool_printf(&c->pool, "%s %s", e[i].route->kind_str, e[i].route->k.key);
    int dup = !s;
    for (size_t k = 0; k < ns && !dup; k++) dup = !strcmp(srcs[k], s);
    if (!dup) srcs[ns++] = (char *)s;
  }
  vh.routes = routes;
  vh.n_routes = n;
  vh.gateway_routes = srcs;
  vh.n_gateway_routes = ns;
  Edge__V1__Resource r;
  edge__v1__resource__init(&r);
  r.kind_case = EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST;
  r.virtual_host = &vh;
  return push(c, d, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST, vh.name, &r);
}

static void mark_lost(struct gctx *c, struct groute_entry *e, size_t n, const char *host) {
  for (size_t i = 0; i < n; i++) {
    struct groute *r = (struct groute *)e[i].route;
    if (r->host_lost && strstr(r->host_lost, host)) continue;
    r->host_lost = r->host_lost ? pool_printf(&c->pool, "%s, %s", r->host_lost, host)
                                : pool_strdup(&c->pool, host);
    greject(c, r->kind_str, &r->k, "%s %s: host %s is served by an Ingress (older)", r->kind_str,
            r->k.key, host);
  }
}

/* Does pattern (a host, "*.suffix" or "" for any) cover every name of host h? */
static int host_covers(const char *pattern, const char *h) {
  if (!pattern[0]) return 1;
  if (pattern[0] != '*' || !strcmp(pattern, h)) return 0;
  const char *suffix = pattern + 1; /* ".a.com" */
  size_t sl = strlen(suffix), hl = strlen(h);
  if (h[0] == '*') /* a narrower wildcard: "*.b.a.com" under "*.a.com" */
    return hl - 1 > sl && !strcmp(h + hl - sl, suffix);
  return hl > sl && !strcmp(h + hl - sl, suffix);
}

/* Pooled entries of one vhost: the more specific hostname first (characters of a non-wildcard
 * hostname, then characters of the hostname), then the older route, then rule and match order. */
static int pooled_cmp(const void *a, const void *b) {
  const struct groute_entry *x = *(const struct groute_entry *const *)a;
  const struct groute_entry *y = *(const struct groute_entry *const *)b;
  size_t xe = x->host[0] == '*' ? 0 : strlen(x->host), ye = y->host[0] == '*' ? 0 : strlen(y->host);
  if (xe != ye) return xe > ye ? -1 : 1;
  size_t xl = strlen(x->host), yl = strlen(y->host);
  if (xl != yl) return xl > yl ? -1 : 1;
  int r = gage_cmp(&x->route->k, &y->route->k);
  if (r) return r;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * One vhost per (host, listener). The specification orders matches across all the rules whose
 * hostnames match the request (HTTPRouteMatchingAcrossRoutes: example.com/v2 goes to the "*.com"
 * route's /v2, not to example.com's /), so a host's vhost also carries the rules of every
 * wildcard (and host-less) entry that covers it, on the same listener; hostname specificity is
 * the tie-break after path, method, header and query precedence (common/router sorts those;
 * this order is its last key).
 */
static int emit_vhosts(struct gctx *c, const struct manifest_set *in, struct syncd_desired *d) {
  struct groute_entry *e = c->entries.v;
  size_t n = c->entries.n;
  gsort(e, n, sizeof(*e), entry_cmp);
  unsigned char *lost = calloc(n + 1, 1);
  struct groute_entry **pool = calloc(n + 1, sizeof(*pool));
  struct groute_entry *copy = calloc(n + 1, sizeof(*copy));
  int rc = 0;
  if (!lost || !pool || !copy) rc = -ENOMEM;
  for (size_t i = 0; rc == 0 && i < n;) {
    size_t j = i;
    const struct gobj *oldest = &e[i].route->k;
    const char *kind = e[i].route->kind_str;
    while (j < n && !strcmp(e[j].host, e[i].host)) {
      if (gage_cmp(&e[j].route->k, oldest) < 0)
        oldest = &e[j].route->k, kind = e[j].route->kind_str;
      j++;
    }
    if (settle_host(c, in, d, e[i].host, oldest, kind)) {
      mark_lost(c, e + i, j - i, e[i].host[0] ? e[i].host : "*");
      memset(lost + i, 1, j - i);
    }
    i = j;
  }
  for (size_t i = 0; rc == 0 && i < n;) {
    size_t j = i;
    while (j < n && !strcmp(e[j].host, e[i].host) && e[j].listener == e[i].listener) j++;
    if (lost[i]) {
      i = j;
      continue;
    }
    size_t np = 0;
    for (size_t k = 0; k < n; k++)
      if (!lost[k] && e[k].listener == e[i].listener &&
          ((k >= i && k < j) || host_covers(e[k].host, e[i].host)))
        pool[np++] = &e[k];
    gsort(pool, np, sizeof(*pool), pooled_cmp);
    for (size_t k = 0; k < np; k++) {
      copy[k] = *pool[k];
      copy[k].host = e[i].host; /* served under this vhost's host */
      if (!copy[k].cert) copy[k].cert = e[i].cert;
    }
    copy[0].cert = e[i].cert;
    if (emit_vhost(c, d, copy, np) < 0) rc = -ENOMEM;
    i = j;
  }
  free(lost);
  free(pool);
  free(copy);
  return rc;
}

/* ---- passthrough hosts ----------------------------------------------------------------- */

static int pt_cmp(const void *a, const void *b) {
  const struct gpassthrough *x = a, *y = b;
  int r = strcmp(x->host, y->host);
  return r ? r : gage_cmp(&x->route->k, &y->route->k);
}

static int emit_passthrough(struct gctx *c, const struct manifest_set *in,
                            struct syncd_desired *d) {
  gsort(c->passthrough.v, c->passthrough.n, sizeof(struct gpassthrough), pt_cmp);
  for (size_t i = 0; i < c->passthrough.n; i++) {
    const struct gpassthrough *p = &c->passthrough.v[i];
    if (i > 0 && !strcmp(c->passthrough.v[i - 1].host, p->host)) {
      const struct gpassthrough *w = &c->passthrough.v[i - 1];
      if (w->route != p->route)
        greject(c, "TLSRoute", &p->route->k,
                "TLSRoute %s: host %s is served by TLSRoute %s (older)", p->route->k.key, p->host,
                w->route->k.key);
      continue;
    }
    /* A passthrough host hides an Ingress's TLS for that name: the same conflict rule. */
    if (settle_host(c, in, d, p->host, &p->route->k, "TLSRoute")) {
      mark_lost(c, (struct groute_entry[]){{.route = p->route}}, 1, p->host);
      continue;
    }
    Edge__V1__PassthroughHost pt;
    edge__v1__passthrough_host__init(&pt);
    pt.name = pool_printf(&c->pool, "pt:%s", p->host);
    pt.host = (char *)p->host;
    pt.host_match = p->host[0] == '*' ? EDGE__V1__HOST_MATCH__HOST_MATCH_SUFFIX
                                      : EDGE__V1__HOST_MATCH__HOST_MATCH_EXACT;
    pt.clusters = p->clusters;
    pt.n_clusters = p->n_clusters;
    Edge__V1__SourceRef src;
    edge__v1__source_ref__init(&src);
    src.kind = "TLSRoute";
    src.namespace_ = (char *)p->route->k.ns;
    src.name = (char *)p->route->k.name;
    src.rule_index = p->rule;
    src.path_index = -1;
    pt.source = &src;
    Edge__V1__Resource r;
    edge__v1__resource__init(&r);
    r.kind_case = EDGE__V1__RESOURCE__KIND_PASSTHROUGH_HOST;
    r.passthrough_host = &pt;
    if (!pt.name ||
        push(c, d, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_PASSTHROUGH_HOST, pt.name, &r))
      return -ENOMEM;
  }
  return 0;
}

/* ---- certificates ------------------------------------------------------------------------ */

static int add_name(struct gctx *c, char ***names, size_t *n, size_t *cap, const char *s) {
  if (!s || !*s) return 0;
  for (size_t i = 0; i < *n; i++)
    if (!strcmp((*names)[i], s)) return 0;
  if (*n == *cap) {
    size_t nc = *cap ? *cap * 2 : 8;
    char **nv = pool_alloc(&c->pool, nc * sizeof(*nv));
    if (!nv) return -ENOMEM;
    if (*n) memcpy(nv, *names, *n * sizeof(*nv));
    *names = nv;
    *cap = nc;
  }
  (*names)[(*n)++] = (char *)s;
  return 0;
}

/* One Certificate per listener Secret in use; SNI names: the hosts of the HTTPS vhosts using it,
 * the listeners' hostnames, and the certificate's own names for listeners without hostname. */
static int emit_certificates(struct gctx *c, struct syncd_desired *d) {
  for (size_t gi = 0; gi < c->gateways.n; gi++) {
    for (size_t li = 0; li < c->gateways.v[gi].n_ls; li++) {
      struct glistener *l = &c->gateways.v[gi].ls[li];
      if (!l->cert || !l->secret || !l->usable) continue;
      /* Emit each certificate once: the first listener naming it does it for all. */
      int seen = 0;
      for (size_t g2 = 0; g2 <= gi && !seen; g2++)
        for (size_t l2 = 0; l2 < c->gateways.v[g2].n_ls; l2++) {
          struct glistener *o = &c->gateways.v[g2].ls[l2];
          if (g2 == gi && l2 == li) break;
          if (o->cert && o->usable && !strcmp(o->cert, l->cert)) seen = 1;
        }
      if (seen) continue;
      char **names = NULL;
      size_t n = 0, cap = 0;
      for (size_t g2 = 0; g2 < c->gateways.n; g2++)
        for (size_t l2 = 0; l2 < c->gateways.v[g2].n_ls; l2++) {
          struct glistener *o = &c->gateways.v[g2].ls[l2];
          if (!o->cert || !o->usable || strcmp(o->cert, l->cert) != 0) continue;
          if (o->hostname) {
            add_name(c, &names, &n, &cap, o->hostname);
          } else {
            struct cert_info *ci = pool_alloc(&c->pool, sizeof(*ci));
            char err[128];
            if (ci && cert_parse(l->secret->crt, l->secret->crt_len, ci, err, sizeof(err)) == 0)
              for (int k = 0; k < ci->n_names; k++) add_name(c, &names, &n, &cap, ci->names[k]);
          }
        }
      for (size_t k = 0; k < c->entries.n; k++)
        if (c->entries.v[k].cert && !strcmp(c->entries.v[k].cert, l->cert) &&
            c->entries.v[k].host[0])
          add_name(c, &names, &n, &cap, c->entries.v[k].host);
      Edge__V1__Certificate cert;
      edge__v1__certificate__init(&cert);
      cert.name = (char *)l->cert;
      cert.sni_names = names;
      cert.n_sni_names = n;
      cert.cert_pem = (ProtobufCBinaryData){l->secret->crt_len, (uint8_t *)l->secret->crt};
      cert.key_pem = (ProtobufCBinaryData){l->secret->key_len, (uint8_t *)l->secret->key};
      cert.not_after = l->secret->not_after;
      Edge__V1__SourceRef src;
      edge__v1__source_ref__init(&src);
      src.kind = "Secret";
      src.namespace_ = (char *)l->secret->k.ns;
      src.name = (char *)l->secret->k.name;
      src.rule_index = src.path_index = -1;
      cert.source = &src;
      Edge__V1__Resource r;
      edge__v1__resource__init(&r);
      r.kind_case = EDGE__V1__RESOURCE__KIND_CERTIFICATE;
      r.certificate = &cert;
      if (push(c, d, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE, cert.name, &r))
        return -ENOMEM;
    }
  }
  return 0;
}

/* ---- clusters ------------------------------------------------------------------------------ */

static int cref_cmp(const void *a, const void *b) {
  return strcmp(((const struct gcluster_ref *)a)->name, ((const struct gcluster_ref *)b)->name);
}

/* The Cluster of one backend reference: syncd/cluster_emit.h, like the Ingress rules' clusters. */
static int emit_cluster(struct gctx *c, struct syncd_desired *d, const struct gcluster_ref *ref) {
  const struct gobj *first = gfind(c->slices.v, c->slices.n, sizeof(struct gobj), ref->svc->key);
  size_t n = 0;
  for (const struct gobj *sl = first;
       sl && sl < c->slices.v + c->slices.n && !strcmp(sl->key, ref->svc->key); sl++)
    n++;
  json_t **slices = pool_alloc(&c->pool, (n + 1) * sizeof(*slices));
  if (!slices) return -ENOMEM;
  for (size_t i = 0; i < n; i++) slices[i] = first[i].o;
  struct cluster_spec cs = {.name = ref->name,
                            .svc = ref->svc->o,
                            .svc_port = ref->svc_port,
                            .svc_ns = ref->svc->ns,
                            .svc_name = ref->svc->name,
                            .protocol = ref->protocol};
  struct syncd_resource out = {EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER, strdup(ref->name),
                               NULL, 0};
  struct syncd_resource *nr = realloc(d->resources, (d->n_resources + 1) * sizeof(*nr));
  if (nr) d->resources = nr;
  char why[512];
  int rc = out.name && nr ? cluster_emit(&cs, slices, n, &out.bytes, &out.len, why, sizeof(why))
                          : -ENOMEM;
  if (rc == -EINVAL) { /* common/validate refused it: not published, reported */
    free(out.name);
    greject(c, "Service", ref->svc, "not published: %s", why);
    return 0;
  }
  if (rc != 0) {
    free(out.name);
    c->pool.oom = 1;
    return -ENOMEM;
  }
  d->resources[d->n_resources++] = out;
  return 0;
}

static int resource_cmp(const void *a, const void *b) {
  const struct syncd_resource *x = a, *y = b;
  if (x->type != y->type) return x->type < y->type ? -1 : 1;
  return strcmp(x->name, y->name);
}

int gemit_merge(struct gctx *c, const struct manifest_set *in, struct syncd_desired *d) {
  if (emit_vhosts(c, in, d) < 0 || emit_passthrough(c, in, d) < 0 || emit_certificates(c, d) < 0)
    return -ENOMEM;
  gsort(c->clusters.v, c->clusters.n, sizeof(struct gcluster_ref), cref_cmp);
  for (size_t i = 0; i < c->clusters.n; i++)
    if ((i == 0 || strcmp(c->clusters.v[i - 1].name, c->clusters.v[i].name) != 0) &&
        emit_cluster(c, d, &c->clusters.v[i]) < 0)
      return -ENOMEM;
  gsort(d->resources, d->n_resources, sizeof(*d->resources), resource_cmp);
  return c->pool.oom ? -ENOMEM : 0;
}
