/*
 * translate_gateway — the Gateway API objects as one unit of the
 * incremental translator (see translate.h and syncd/gateway.h).
 *
 * The unit is dirty when a Gateway API object or a Namespace changed, when
 * a Service, EndpointSlice or Secret changed in a namespace the Gateway
 * API objects live in or name (a backendRef, certificateRef or
 * ReferenceGrant names namespaces), or when an Ingress host it served or
 * claimed last time (served, or lost to an older Ingress) was settled
 * again. Then gateway_translate() runs
 * over the Gateway API objects, the Namespaces, the Services,
 * EndpointSlices and Secrets of those namespaces and the Ingresses (their
 * creationTimestamps settle host conflicts), with a stand-in VirtualHost
 * "vh:HOST" (only its name and its Ingresses, oldest first) for every
 * Ingress host. Each resource it emits goes through out_set, which drops
 * the ones whose bytes did not change: an update carries exactly the
 * VirtualHosts, Clusters, Certificates and PassthroughHosts that differ.
 * A stand-in missing from its result is a host it keeps: the Ingress
 * side withholds that host's VirtualHost (settle_host looks at gw_taken)
 * until a later run gives it back, which settles the host again.
 *
 * Cost: a run is a pass over the Gateway API objects and the objects of
 * their namespaces (plus one stand-in per Ingress host); a change to
 * anything else costs nothing here. Not thread-safe (the translator's).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "syncd/translate_internal.h"

static const struct {
  const char *kind;
  enum tkind tk;
} GW_KINDS[] = {
    {"Namespace", TK_NAMESPACE},     {"GatewayClass", TK_GW_CLASS}, {"Gateway", TK_GATEWAY},
    {"HTTPRoute", TK_HTTPROUTE},     {"GRPCRoute", TK_GRPCROUTE},   {"TLSRoute", TK_TLSROUTE},
    {"ReferenceGrant", TK_REFGRANT},
};

enum tkind gateway_kind(const char *kind) {
  for (size_t i = 0; i < sizeof(GW_KINDS) / sizeof(GW_KINDS[0]); i++)
    if (!strcmp(kind, GW_KINDS[i].kind)) return GW_KINDS[i].tk;
  return TK_NONE;
}

unsigned long translator_gateway_runs(const struct translator *t) {
  return t->gw_runs;
}

void gateway_obj_changed(struct translator *t, const struct tobj *o) {
  if (o->tk >= TK_FIRST_GATEWAY) {
    t->gw_dirty = 1;
    return;
  }
  if ((o->tk == TK_SERVICE || o->tk == TK_SLICE || o->tk == TK_SECRET) && o->ns &&
      hmap_gets(&t->gw_namespaces, o->ns))
    t->gw_dirty = 1;
  /* o->ns is NULL once the object is gone: the key's namespace then */
  if ((o->tk == TK_SERVICE || o->tk == TK_SLICE || o->tk == TK_SECRET) && !o->ns) {
    char ns[300];
    const char *slash = strchr(o->key, '/');
    snprintf(ns, sizeof(ns), "%.*s", slash ? (int)(slash - o->key) : 0, o->key);
    if (hmap_gets(&t->gw_namespaces, ns)) t->gw_dirty = 1;
  }
}

void gateway_free(struct translator *t) {
  hmap_free(&t->gw_namespaces);
  hmap_free(&t->gw_hosts);
  hmap_free(&t->gw_taken);
  hmap_free(&t->gw_names);
  rejlist_clear(&t->gw_rej);
  free(t->gw_status);
  t->gw_status = NULL;
  t->gw_status_len = 0;
  t->gw_dirty = t->gw_status_changed = 0;
}

/* Every string under a "namespace" key of o (references to other namespaces). */
static void named_namespaces(struct translator *t, json_t *o, struct hmap *out) {
  const char *key;
  json_t *v;
  size_t i;
  if (json_is_object(o)) {
    json_object_foreach(o, key, v) {
      if (!strcmp(key, "namespace") && json_is_string(v)) {
        if (sset_add(out, json_string_value(v)) != 0) t->oom = 1;
      } else {
        named_namespaces(t, v, out);
      }
    }
  } else if (json_is_array(o)) {
    json_array_foreach(o, i, v) named_namespaces(t, v, out);
  }
}

/* Was a host the unit served or contested settled again this update? */
static int hosts_touched(const struct translator *t) {
  if (!hmap_size(&t->gw_hosts)) return 0;
  size_t pos = 0;
  const void *k;
  size_t kl;
  while (hmap_next(&t->d_hosts, &pos, &k, &kl, NULL))
    if (hmap_get(&t->gw_hosts, k, kl)) return 1;
  return 0;
}

static int add_objs(struct translator *t, struct manifest_set *in, enum tkind tk,
                    const struct hmap *only_ns) {
  size_t pos = 0;
  void *v;
  while (hmap_next(&t->objs[tk], &pos, NULL, NULL, &v)) {
    const struct tobj *o = v;
    if (!o->o || (only_ns && !hmap_gets(only_ns, o->ns))) continue;
    if (manifest_add(in, o->o, o->location) != 0) return -ENOMEM;
  }
  return 0;
}

static int ting_ptr_age_cmp(const void *a, const void *b) {
  return ting_age_cmp(*(const struct ting *const *)a, *(const struct ting *const *)b);
}

/* A stand-in VirtualHost "vh:HOST" naming the valid Ingresses with a path on host. */
static int standin(const char *host, const struct pset *users, struct syncd_desired *d,
                   struct hmap *given) {
  const struct ting **ids = calloc(users->n + 1, sizeof(*ids));
  char **names = calloc(users->n + 1, sizeof(*names));
  size_t n = 0;
  int rc = -ENOMEM;
  if (!ids || !names) goto out;
  for (size_t i = 0; i < users->n; i++) {
    const struct ting *g = users->v[i];
    int has_path = 0;
    for (size_t c = 0; c < g->n_cands && !has_path; c++) has_path = !strcmp(g->cands[c].host, host);
    if (g->valid && has_path) ids[n++] = g;
  }
  rc = 0;
  if (!n) goto out;
  rc = sset_add(given, host) != 0 ? -ENOMEM : 0;
  if (rc) goto out;
  tr_sort(ids, n, sizeof(*ids), ting_ptr_age_cmp);
  for (size_t i = 0; i < n; i++) names[i] = (char *)ids[i]->id;
  char name[300];
  snprintf(name, sizeof(name), "vh:%s", host[0] ? host : "*");
  Edge__V1__VirtualHost vh;
  edge__v1__virtual_host__init(&vh);
  vh.name = name;
  vh.host = (char *)host;
  vh.ingresses = names;
  vh.n_ingresses = n;
  Edge__V1__Resource r;
  edge__v1__resource__init(&r);
  r.kind_case = EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST;
  r.virtual_host = &vh;
  rc = -ENOMEM;
  struct syncd_resource *nr = realloc(d->resources, (d->n_resources + 1) * sizeof(*nr));
  if (!nr) goto out;
  d->resources = nr;
  struct syncd_resource *x = &nr[d->n_resources];
  x->type = EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST;
  x->len = edge__v1__resource__get_packed_size(&r);
  x->name = strdup(name);
  x->bytes = malloc(x->len ? x->len : 1);
  if (!x->name || !x->bytes) {
    free(x->name), free(x->bytes);
    goto out;
  }
  edge__v1__resource__pack(&r, x->bytes);
  d->n_resources++;
  rc = 0;
out:
  free(ids);
  free(names);
  return rc;
}

/* The lower-cased string(s) of v (a string or an array of strings) into set. */
static int add_hostnames(json_t *v, struct hmap *set) {
  json_t *h;
  size_t i;
  if (json_is_string(v)) {
    char buf[300];
    snprintf(buf, sizeof(buf), "%s", json_string_value(v));
    for (char *p = buf; *p; p++) *p = (char)tolower((unsigned char)*p);
    return sset_add(set, buf);
  }
  json_array_foreach(v, i, h) {
    if (add_hostnames(h, set) != 0) return -ENOMEM;
  }
  return 0;
}

/* The hosts a run could claim: a Gateway API virtual host's host is a route's hostname, a
 * listener's hostname, or "" (any). */
static int candidate_hosts(const struct tobj *o, struct hmap *set) {
  json_t *spec = json_object_get(o->o, "spec"), *l;
  size_t i;
  if (o->tk == TK_GATEWAY) {
    json_array_foreach(json_object_get(spec, "listeners"), i, l) {
      if (add_hostnames(json_object_get(l, "hostname"), set) != 0) return -ENOMEM;
    }
    return 0;
  }
  return add_hostnames(json_object_get(spec, "hostnames"), set);
}

/* The Gateway API objects (their hosts into cand), the Namespaces, the Ingresses, and the
 * Services, EndpointSlices and Secrets of the namespaces the Gateway API objects live in or
 * name. */
static int gather_objects(struct translator *t, struct manifest_set *in, struct hmap *namespaces,
                          struct hmap *cand) {
  in->borrow_locations = 1; /* the documents outlive the run */
  if (sset_add(cand, "") != 0) return -ENOMEM;
  for (int tk = TK_FIRST_GATEWAY + 1; tk < TK_COUNT; tk++) { /* not Namespace: below */
    size_t pos = 0;
    void *v;
    while (hmap_next(&t->objs[tk], &pos, NULL, NULL, &v)) {
      const struct tobj *o = v;
      if (!o->o) continue;
      if (sset_add(namespaces, o->ns) != 0) return -ENOMEM;
      named_namespaces(t, json_object_get(o->o, "spec"), namespaces);
      if (candidate_hosts(o, cand) != 0 || manifest_add(in, o->o, o->location) != 0) return -ENOMEM;
    }
  }
  if (add_objs(t, in, TK_NAMESPACE, NULL) || add_objs(t, in, TK_INGRESS, NULL) ||
      add_objs(t, in, TK_SERVICE, namespaces) || add_objs(t, in, TK_SLICE, namespaces) ||
      add_objs(t, in, TK_SECRET, namespaces))
    return -ENOMEM;
  return 0;
}

/* The inputs of a run: the objects, and a desired state holding a stand-in for each Ingress
 * host a Gateway API object could claim. */
static int gather(struct translator *t, struct manifest_set *in, struct syncd_desired *d,
                  struct hmap *namespaces, struct hmap *given) {
  struct hmap cand;
  hmap_init(&cand);
  int rc = gather_objects(t, in, namespaces, &cand);
  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  while (rc == 0 && hmap_next(&t->host_users, &pos, &k, &kl, &v)) {
    if (!hmap_get(&cand, k, kl)) continue;
    char host[300];
    snprintf(host, sizeof(host), "%.*s", (int)kl, (const char *)k);
    rc = standin(host, v, d, given);
  }
  hmap_free(&cand);
  return rc;
}

/* The host a Gateway API resource name serves ("gw:http:H", "gw:https:H", "pt:H"), or NULL. */
static const char *served_host(const char *name) {
  if (!strncmp(name, "gw:http:", 8)) return name + 8;
  if (!strncmp(name, "gw:https:", 9)) return name + 9;
  if (!strncmp(name, "pt:", 3)) return name + 3;
  return NULL;
}

static void set_status(struct translator *t, uint8_t *bytes, size_t len) {
  if (len == t->gw_status_len && (!len || !memcmp(bytes, t->gw_status, len))) {
    free(bytes);
    return;
  }
  free(t->gw_status);
  t->gw_status = bytes;
  t->gw_status_len = len;
  t->gw_status_changed = 1;
  t->d_report = 1;
}

/* Applies a run's result d: resources, taken hosts, rejections, statuses. */
static void apply(struct translator *t, struct syncd_desired *d, const struct hmap *given) {
  struct hmap names, hosts, taken;
  hmap_init(&names);
  hmap_init(&hosts);
  hmap_init(&taken);
  size_t pos = 0;
  const void *k;
  size_t kl;
  /* stand-ins still present: the Ingress keeps the host; missing: taken */
  struct hmap present;
  hmap_init(&present);
  for (size_t i = 0; i < d->n_resources; i++) {
    struct syncd_resource *r = &d->resources[i];
    if (r->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST &&
        !strncmp(r->name, "vh:", 3)) {
      if (sset_add(&present, r->name) != 0) t->oom = 1;
      continue;
    }
    char key[1200];
    snprintf(key, sizeof(key), "%d/%s", r->type, r->name);
    if (sset_add(&names, key) != 0) t->oom = 1;
    const char *h = served_host(r->name);
    if (h && sset_add(&hosts, !strcmp(h, "*") ? "" : h) != 0) t->oom = 1;
    struct emitted e = {r->bytes, r->len};
    r->bytes = NULL; /* taken by out_set */
    out_set(t, r->type, r->name, &e);
  }
  while (hmap_next(given, &pos, &k, &kl, NULL)) {
    char name[310], host[300];
    snprintf(host, sizeof(host), "%.*s", (int)kl, (const char *)k);
    snprintf(name, sizeof(name), "vh:%s", host[0] ? host : "*");
    if (!hmap_gets(&present, name) && (sset_add(&taken, host) != 0 || sset_add(&hosts, host) != 0))
      t->oom = 1;
  }
  hmap_free(&present);
  for (size_t i = 0; i < d->n_gateway_hosts; i++) /* claimed, whoever won */
    if (sset_add(&hosts, d->gateway_hosts[i]) != 0) t->oom = 1;
  /* resources emitted last time and not now */
  pos = 0;
  while (hmap_next(&t->gw_names, &pos, &k, &kl, NULL)) {
    if (hmap_get(&names, k, kl)) continue;
    char key[1200];
    snprintf(key, sizeof(key), "%.*s", (int)kl, (const char *)k);
    char *slash = strchr(key, '/');
    if (slash) out_set(t, atoi(key), slash + 1, NULL);
  }
  /* hosts given back to the Ingress side: settled again; hosts taken: withheld */
  struct hmap old_taken = t->gw_taken;
  t->gw_taken = taken;
  pos = 0;
  while (hmap_next(&old_taken, &pos, &k, &kl, NULL)) {
    if (hmap_get(&taken, k, kl)) continue;
    char host[300];
    snprintf(host, sizeof(host), "%.*s", (int)kl, (const char *)k);
    settle_host(t, host);
  }
  pos = 0;
  while (hmap_next(&taken, &pos, &k, &kl, NULL)) {
    if (hmap_get(&old_taken, k, kl)) continue;
    char name[300];
    snprintf(name, sizeof(name), "vh:%.*s", (int)kl, kl ? (const char *)k : "*");
    out_set(t, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST, name, NULL);
  }
  hmap_free(&old_taken);
  hmap_free(&t->gw_names);
  t->gw_names = names;
  hmap_free(&t->gw_hosts);
  t->gw_hosts = hosts;
  /* rejections (the Ingresses that lost a host are among them) */
  rejlist_clear(&t->gw_rej);
  for (size_t i = 0; i < d->n_rejected; i++) {
    if (rejlist_add(&t->gw_rej, &d->rejected[i]) != 0) t->oom = 1;
    memset(&d->rejected[i], 0, sizeof(d->rejected[i]));
  }
  rej_sync(t, &t->gw_rej);
  set_status(t, d->gateway_status, d->gateway_status_len);
  d->gateway_status = NULL;
}

/* Does the unit have anything: a Gateway API object now, or something it emitted, kept or
 * reported last time? */
static int gateway_present(const struct translator *t) {
  for (int tk = TK_FIRST_GATEWAY + 1; tk < TK_COUNT; tk++)
    if (hmap_size(&t->objs[tk])) return 1;
  return hmap_size(&t->gw_names) || hmap_size(&t->gw_taken) || t->gw_rej.n || t->gw_status_len;
}

void gateway_settle(struct translator *t, int full) {
  t->gw_status_changed = 0;
  if (!full && !t->gw_dirty && !hosts_touched(t)) return;
  if (!gateway_present(t)) { /* no Gateway API at all: nothing to translate */
    t->gw_dirty = 0;
    return;
  }
  t->gw_dirty = 0;
  t->gw_runs++;
  struct manifest_set in;
  manifest_set_init(&in);
  struct hmap namespaces, given;
  hmap_init(&namespaces);
  hmap_init(&given);
  struct syncd_desired *d = calloc(1, sizeof(*d));
  int rc = d ? gather(t, &in, d, &namespaces, &given) : -ENOMEM;
  if (rc == 0) rc = gateway_translate(&in, &t->gw_opts, d);
  if (rc == 0) {
    apply(t, d, &given);
    hmap_free(&t->gw_namespaces);
    t->gw_namespaces = namespaces;
  } else {
    hmap_free(&namespaces);
    t->oom = 1;
  }
  hmap_free(&given);
  syncd_desired_free(d);
  manifest_set_free(&in);
}
