/*
 * snapshot — the tables of one generation and the lookups workers make on
 * them (see snapshot.h; snapshot_build.c makes them).
 *
 * A request host is normalized once, then looked up in the exact table,
 * under its suffix in the wildcard table (one label off), under each of
 * its suffixes in the Gateway API's suffix table, and finally the virtual
 * hosts without host; in each, the virtual host served on the request's
 * listener before the one served on both. The first virtual host whose
 * matcher has a route for the request wins (Ingress fall-through,
 * common/router.h).
 * A route's cluster is this snapshot's slot entry for the route's slot.
 *
 * The current snapshot sits in a common/publish slot: publish swaps it,
 * current() takes a reference; the TLS store travels inside it, so a
 * worker never sees routes of one push with certificates of another.
 */
#include "l7proxy/snapshot.h"

#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/explain.h"
#include "common/publish.h"
#include "common/router.h"
#include "l7proxy/client_auth.h"
#include "l7proxy/snapshot_policy.h"
#include "l7proxy/snapshot_internal.h"

void l7_snapshot_free(struct l7_snapshot *s) {
  if (!s) return;
  for (size_t i = 0; s->res && i < s->n_res; i++) l7_res_unref(s->res[i]);
  free(s->res);
  free(s->slots);
  free(s->exact.slots);
  free(s->wild.slots);
  free(s->suffix.slots);
  free(s->pt_exact.slots);
  free(s->pt_suffix.slots);
  tls_store_unref(s->tls);
  free(s);
}

struct l7_snapshot *l7_snapshot_ref(struct l7_snapshot *s) {
  if (s) atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
  return s;
}

void l7_snapshot_unref(struct l7_snapshot *s) {
  if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) l7_snapshot_free(s);
}

uint64_t l7_snapshot_version(const struct l7_snapshot *s) {
  return s ? s->version : 0;
}

struct tls_store *l7_snapshot_tls(const struct l7_snapshot *s) {
  return s ? s->tls : NULL;
}

/* The route of virtual host r (may be NULL) for req, or NULL. */
static const struct l7_route *vhost_match(const struct l7_res *r,
                                          const struct router_request *req) {
  if (!r) return NULL;
  long i = router_match_one_host(r->u.vhost.router, req);
  return i < 0 ? NULL : router_rule_data(r->u.vhost.router, (size_t)i);
}

/* The route for req among the virtual hosts of key[0..n) in t: the one served on the request's
 * listener first, then the one served on both (an unknown listener tries all three). */
static const struct l7_route *tier_match(const struct l7_htab *t, const char *key, size_t n,
                                         const struct router_request *req) {
  char k[ROUTER_MAX_HOST + 4];
  const struct l7_route *r;
  for (unsigned l = 1; l <= 2 && n <= ROUTER_MAX_HOST; l++) {
    if (req->listener && req->listener != l) continue;
    memcpy(k, key, n);
    k[n] = '\n';
    k[n + 1] = (char)('0' + l);
    if ((r = vhost_match(l7_htab_get(t, k, n + 2), req))) return r;
  }
  return vhost_match(l7_htab_get(t, key, n), req);
}

static const struct l7_route *any_match(const struct l7_snapshot *s,
                                        const struct router_request *req) {
  const struct l7_route *r;
  for (unsigned l = 1; l <= 2; l++)
    if ((!req->listener || req->listener == l) && (r = vhost_match(s->any_vhost[l], req))) return r;
  return vhost_match(s->any_vhost[0], req);
}

/* Host tiers as common/router.h orders them: exact; the one-label wildcard of the first
 * suffix; suffix wildcards, longest suffix first; then the virtual hosts without host. */
const struct l7_route *l7_snapshot_match_request(const struct l7_snapshot *s,
                                                 const struct router_request *req) {
  if (!s || !req) return NULL;
  char buf[ROUTER_MAX_HOST + 1];
  int n = req->host ? router_normalize_host(req->host, req->host_len, buf, sizeof(buf)) : -1;
  const struct l7_route *r;
  if (n > 0) {
    if ((r = tier_match(&s->exact, buf, (size_t)n, req))) return r;
    const char *dot = memchr(buf, '.', (size_t)n);
    for (int first = 1; dot && dot > buf && dot + 1 < buf + n; first = 0) {
      size_t off = (size_t)(dot + 1 - buf);
      if (first && (r = tier_match(&s->wild, buf + off, (size_t)n - off, req))) return r;
      if (s->suffix.n && (r = tier_match(&s->suffix, buf + off, (size_t)n - off, req))) return r;
      dot = memchr(dot + 1, '.', (size_t)n - off);
    }
  }
  return any_match(s, req);
}

const struct l7_route *l7_snapshot_match(const struct l7_snapshot *s, const char *host,
                                         size_t hostlen, const char *path, size_t pathlen) {
  struct router_request req = {
      .host = host, .host_len = hostlen, .target = path, .target_len = path ? pathlen : 0};
  return l7_snapshot_match_request(s, &req);
}

const struct l7_passthrough *l7_snapshot_passthrough(const struct l7_snapshot *s, const char *sni,
                                                     size_t len) {
  if (!s || !s->n_passthrough || !sni || !len) return NULL;
  char buf[ROUTER_MAX_HOST + 1];
  int n = router_normalize_host(sni, len, buf, sizeof(buf));
  if (n <= 0) return NULL;
  struct l7_res *r = l7_htab_get(&s->pt_exact, buf, (size_t)n);
  for (const char *dot = memchr(buf, '.', (size_t)n); !r && dot && dot + 1 < buf + n;) {
    size_t off = (size_t)(dot + 1 - buf);
    r = l7_htab_get(&s->pt_suffix, buf + off, (size_t)n - off);
    dot = memchr(dot + 1, '.', (size_t)n - off);
  }
  return r ? &r->u.pt.pt : NULL;
}

size_t l7_snapshot_n_passthrough(const struct l7_snapshot *s) {
  return s ? s->n_passthrough : 0;
}

/* The virtual host of key[0..n) in t that an HTTPS handshake would reach:
 * the one served on the HTTPS listener first, then the one on both. */
static const struct l7_res *tier_https(const struct l7_htab *t, const char *key, size_t n) {
  char k[ROUTER_MAX_HOST + 4];
  if (n > ROUTER_MAX_HOST) return NULL;
  memcpy(k, key, n);
  k[n] = '\n';
  k[n + 1] = (char)('0' + EDGE__V1__LISTENER__LISTENER_HTTPS);
  const struct l7_res *r = l7_htab_get(t, k, n + 2);
  return r ? r : l7_htab_get(t, key, n);
}

const struct cauth_policy *l7_snapshot_client_auth_for(const struct l7_snapshot *s,
                                                       const char *sni) {
  if (!s || !s->n_client_auth) return NULL;
  char buf[ROUTER_MAX_HOST + 1];
  int n = sni && *sni ? router_normalize_host(sni, strlen(sni), buf, sizeof(buf)) : -1;
  const struct l7_res *r;
  if (n > 0) { /* the host tiers requests are routed by (l7_snapshot_match_request) */
    if ((r = tier_https(&s->exact, buf, (size_t)n))) return r->u.vhost.client_auth;
    const char *dot = memchr(buf, '.', (size_t)n);
    for (int first = 1; dot && dot > buf && dot + 1 < buf + n; first = 0) {
      size_t off = (size_t)(dot + 1 - buf);
      if (first && (r = tier_https(&s->wild, buf + off, (size_t)n - off)))
        return r->u.vhost.client_auth;
      if (s->suffix.n && (r = tier_https(&s->suffix, buf + off, (size_t)n - off)))
        return r->u.vhost.client_auth;
      dot = memchr(dot + 1, '.', (size_t)n - off);
    }
  }
  r = s->any_vhost[EDGE__V1__LISTENER__LISTENER_HTTPS]
          ? s->any_vhost[EDGE__V1__LISTENER__LISTENER_HTTPS]
          : s->any_vhost[0];
  return r ? r->u.vhost.client_auth : NULL;
}

static const struct cauth_policy *source_lookup(void *s, const char *sni) {
  return l7_snapshot_client_auth_for(s, sni);
}

static void source_release(void *s) {
  l7_snapshot_unref(s);
}

int l7_snapshot_client_auth_source(struct l7_snapshot *s, struct tls_client_auth_source *src) {
  if (!s || !s->n_client_auth) return 0;
  *src = (struct tls_client_auth_source){
      .lookup = source_lookup, .release = source_release, .arg = l7_snapshot_ref(s)};
  return 1;
}

static const struct l7_cluster *slot_cluster(const struct l7_snapshot *s, uint32_t slot) {
  if (!s || slot >= s->n_slots || !s->slots[slot]) return NULL;
  return &s->slots[slot]->u.cluster;
}

const struct l7_cluster *l7_snapshot_route_cluster(const struct l7_snapshot *s,
                                                   const struct l7_route *r) {
  return r && r->cluster_name[0] ? slot_cluster(s, r->cluster_slot) : NULL;
}

const struct l7_cluster *l7_snapshot_ext_auth_cluster(const struct l7_snapshot *s,
                                                      const struct l7_route *r) {
  return r && r->ext_auth ? slot_cluster(s, r->ext_auth_slot) : NULL;
}

const struct l7_cluster *l7_snapshot_weighted_cluster(const struct l7_snapshot *s,
                                                      const struct l7_weighted_cluster *w) {
  return w && w->name[0] ? slot_cluster(s, w->slot) : NULL;
}

const struct l7_cluster *l7_snapshot_mirror_cluster(const struct l7_snapshot *s,
                                                    const struct l7_mirror *m) {
  return m && m->name[0] ? slot_cluster(s, m->slot) : NULL;
}

const struct l7_cluster *l7_snapshot_default_cluster(const struct l7_snapshot *s) {
  return s ? slot_cluster(s, s->default_slot) : NULL;
}

size_t l7_snapshot_n_clusters(const struct l7_snapshot *s) {
  return s ? s->n_clusters : 0;
}

const struct l7_cluster *l7_snapshot_cluster(const struct l7_snapshot *s, size_t i) {
  return s && i < s->n_clusters ? &s->clusters[i]->u.cluster : NULL;
}

const struct l7_cluster *l7_snapshot_find_cluster(const struct l7_snapshot *s, const char *name) {
  if (!s || !name) return NULL;
  size_t lo = 0, hi = s->n_clusters;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(s->clusters[mid]->name, name);
    if (c == 0) return &s->clusters[mid]->u.cluster;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

/* The virtual hosts: the resources of that type, in name order. */
static void vhost_range(const struct l7_snapshot *s, size_t *first, size_t *end) {
  size_t i = 0;
  while (i < s->n_res && s->res[i]->type < EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST) i++;
  *first = i;
  while (i < s->n_res && s->res[i]->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST)
    i++;
  *end = i;
}

size_t l7_snapshot_n_routes(const struct l7_snapshot *s) {
  if (!s) return 0;
  size_t first, end, n = 0;
  vhost_range(s, &first, &end);
  for (size_t i = first; i < end; i++) n += s->res[i]->u.vhost.n_routes;
  return n;
}

const struct l7_route *l7_snapshot_route(const struct l7_snapshot *s, size_t i) {
  if (!s) return NULL;
  size_t first, end;
  vhost_range(s, &first, &end);
  for (size_t v = first; v < end; v++) {
    const struct l7_vhost *vh = &s->res[v]->u.vhost;
    if (i < vh->n_routes) return &vh->routes[i];
    i -= vh->n_routes;
  }
  return NULL;
}

size_t l7_snapshot_n_certificates(const struct l7_snapshot *s) {
  return s ? s->n_certs : 0;
}

const struct l7_certificate *l7_snapshot_certificate(const struct l7_snapshot *s, size_t i) {
  return s && i < s->n_certs ? &s->certs[i]->u.cert : NULL;
}

const struct l7_certificate *l7_snapshot_default_certificate(const struct l7_snapshot *s) {
  return s ? s->default_cert : NULL;
}

size_t l7_snapshot_n_resources(const struct l7_snapshot *s) {
  return s ? s->n_res : 0;
}

Edge__V1__Resource **l7_snapshot_resources(const struct l7_snapshot *s, size_t *n) {
  *n = s ? s->n_res : 0;
  Edge__V1__Resource **v = malloc((*n + 1) * sizeof(*v));
  for (size_t i = 0; v && i < *n; i++) v[i] = s->res[i]->msg;
  return v;
}

/* The resource a cluster is compiled in. */
static struct l7_res *cluster_res(const struct l7_cluster *c) {
  return (struct l7_res *)((const char *)c - offsetof(struct l7_res, u.cluster));
}

const struct l7_cluster *l7_cluster_hold(const struct l7_cluster *c) {
  if (c) l7_res_ref(cluster_res(c));
  return c;
}

void l7_cluster_release(const struct l7_cluster *c) {
  if (c) l7_res_unref(cluster_res(c));
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
  json_t *o = json_pack("{s:s, s:I, s:o, s:s, s:s, s:I, s:I, s:I}", "name", c->name, "slot",
                        (json_int_t)c->slot, "endpoints", eps, "lb_policy",
                        snap_enum_name(&edge__v1__lb_policy__descriptor, c->lb_policy), "protocol",
                        snap_enum_name(&edge__v1__upstream_protocol__descriptor, c->protocol),
                        "connect_timeout_ms", (json_int_t)c->connect_timeout_ms, "idle_timeout_ms",
                        (json_int_t)c->idle_timeout_ms, "max_idle_per_endpoint",
                        (json_int_t)c->max_idle_per_endpoint);
  l7_policy_cluster_json(o, c);
  snap_policy_cluster_json(o, c);
  return o;
}

static json_t *snap_route_json(const struct l7_snapshot *s, const struct l7_route *r) {
  const struct l7_cluster *cluster = l7_snapshot_route_cluster(s, r);
  json_t *o = json_pack(
      "{s:s, s:s, s:s, s:s, s:s, s:s?, s:I, s:I, s:I, s:I, s:s, s:b, s:b, s:s}", "vhost", r->vhost,
      "host", r->host_pattern, "host_match",
      snap_enum_name(&edge__v1__host_match__descriptor, r->host_match), "path", r->path,
      "path_type", snap_enum_name(&edge__v1__path_type__descriptor, r->path_type), "cluster",
      cluster ? cluster->name : NULL, "request_timeout_ms", (json_int_t)r->request_timeout_ms,
      "response_header_timeout_ms", (json_int_t)r->response_header_timeout_ms, "retries",
      (json_int_t)r->retries, "max_body_bytes", (json_int_t)r->max_body_bytes, "rewrite_prefix",
      r->rewrite_prefix, "host_has_tls", r->host_has_tls, "disable_ssl_redirect",
      r->disable_ssl_redirect, "source", r->source);
  l7_policy_route_json(o, r);
  snap_policy_route_json(o, r);
  if (o && r->redirect)
    json_object_set_new(
        o, "redirect",
        json_pack("{s:s, s:s, s:I, s:s, s:I}", "scheme", r->redirect->scheme, "host",
                  r->redirect->host, "port", (json_int_t)r->redirect->port, "path",
                  r->redirect->path, "status", (json_int_t)r->redirect->status));
  return o;
}

static json_t *snap_cert_json(const struct l7_certificate *c) {
  json_t *sni = json_array();
  for (size_t i = 0; i < c->n_sni_names; i++)
    json_array_append_new(sni, json_string(c->sni_names[i]));
  return json_pack("{s:s, s:o, s:I, s:b, s:b, s:I}", "name", c->name, "sni_names", sni, "not_after",
                   (json_int_t)c->not_after, "is_default", c->is_default, "ocsp_stapled",
                   c->ocsp_response_len > 0, "ocsp_next_update", (json_int_t)c->ocsp_next_update);
}

char *l7_snapshot_to_json(const struct l7_snapshot *s) {
  if (!s) return strdup("{}");
  json_t *clusters = json_array(), *routes = json_array(), *certs = json_array();
  for (size_t i = 0; i < s->n_clusters; i++)
    json_array_append_new(clusters, snap_cluster_json(&s->clusters[i]->u.cluster));
  size_t first, end;
  vhost_range(s, &first, &end);
  for (size_t v = first; v < end; v++) {
    const struct l7_vhost *vh = &s->res[v]->u.vhost;
    for (size_t k = 0; k < vh->n_routes; k++)
      json_array_append_new(routes, snap_route_json(s, &vh->routes[k]));
  }
  for (size_t i = 0; i < s->n_certs; i++)
    json_array_append_new(certs, snap_cert_json(&s->certs[i]->u.cert));
  json_t *root =
      json_pack("{s:I, s:o, s:o, s:o, s:s?}", "version", (json_int_t)s->version, "clusters",
                clusters, "routes", routes, "certificates", certs, "default_cluster",
                l7_snapshot_default_cluster(s) ? l7_snapshot_default_cluster(s)->name : NULL);
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
  Edge__V1__Resource **res = malloc((s->n_res + 1) * sizeof(*res));
  if (!res) return EXPLAIN_ERR_NOMEM;
  for (size_t i = 0; i < s->n_res; i++) res[i] = s->res[i]->msg;
  int rc = explain_build(res, s->n_res, req, &root, err, errlen);
  free(res);
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
