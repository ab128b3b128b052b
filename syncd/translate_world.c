/*
 * translate_world — the incremental translator (see translate.h): the
 * objects of the last update, the index from each object to what depends
 * on it, and the resources and report they produced.
 *
 * An update runs in stages, each touching only what the previous ones
 * marked dirty:
 *   1. documents: each input document is looked up by pointer; new ones
 *      are parsed for kind and key, missing ones detached. An object whose
 *      winning document (the one read last) changed is changed, unless the
 *      new document has equal content (and, for an Ingress, whose location
 *      shows in reasons, the same location) — a re-read file costs nothing.
 *   2. changed objects mark their dependents: a class → the Ingresses
 *      naming it (all class-less ones when the default class changes); a
 *      Service → the Ingresses that looked it up; an EndpointSlice → the
 *      clusters of its Service; a Secret → the hosts claiming it and its
 *      Certificate; an Ingress → itself.
 *   3. dirty Ingresses are compiled again (translate.c); the hosts,
 *      clusters and default backend they touched before or after are dirty.
 *   4. dirty hosts settle conflicts and pick their certificate; dirty
 *      certificates, clusters and the default backend are emitted.
 *   5. the report is rebuilt when any of its parts changed.
 * Resources are compared with what was emitted before, so an update lists
 * only resources whose bytes changed.
 *
 * Sets of dependents (struct pset) are vectors that grow a hash index past
 * 16 members: a Service used by 100,000 Ingresses is still O(1) to update.
 * Every string a set or map holds is owned by the structure named.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/hmap.h"
#include "common/validate.h"
#include "syncd/translate_internal.h"

/* ---- the translator --------------------------------------------------------------- */

static const char *const KIND_NAMES[TK_FIRST_GATEWAY] = {
    "", "Ingress", "IngressClass", "Service", "EndpointSlice", "Secret", "ConfigMap"};

/* Registers (or unregisters, when empty) a unit's rejections in the report. */
void rej_sync(struct translator *t, struct rejlist *l) {
  int had = hmap_get(&t->rej_units, &l, sizeof(l)) != NULL;
  if (l->n && !had) {
    if (hmap_put(&t->rej_units, &l, sizeof(l), l, NULL) != 0) t->oom = 1;
  } else if (!l->n && had) {
    hmap_del(&t->rej_units, &l, sizeof(l));
  }
  if (had || l->n) t->d_report = 1;
}

void mark(struct translator *t, struct hmap *set, const char *key) {
  if (sset_add(set, key) != 0) t->oom = 1;
}

/* ---- output ---------------------------------------------------------------------- */

static int out_key(char *buf, size_t len, int type, const char *name) {
  return snprintf(buf, len, "%d/%s", type, name) < (int)len ? 0 : -1;
}

/* Records (rej taken) or forgets (rej NULL) why resource key is not published. */
static void unpub_set(struct translator *t, const char *key, struct syncd_rejection *rej) {
  struct rejlist *l = hmap_gets(&t->unpub, key);
  if (!rej && !l) return;
  if (!l) {
    if (!(l = calloc(1, sizeof(*l))) || hmap_puts(&t->unpub, key, l, NULL) != 0) {
      free(l);
      tr_rejection_clear(rej);
      t->oom = 1;
      return;
    }
  }
  rejlist_clear(l);
  if (rej && rejlist_add(l, rej) != 0) t->oom = 1;
  rej_sync(t, l);
  if (!l->n) {
    hmap_dels(&t->unpub, key);
    free(l);
  }
}

/* Sets resource (type, name) to e's bytes (taken), or removes it (e NULL
 * or refused by validation: then the refusal is reported). */
void out_set(struct translator *t, int type, const char *name, struct emitted *e) {
  char key[1200];
  if (out_key(key, sizeof(key), type, name) != 0) {
    if (e) free(e->bytes);
    if (e && e->refused) tr_rejection_clear(&e->rej);
    return;
  }
  if (e && e->refused) {
    unpub_set(t, key, &e->rej);
    e = NULL;
  } else {
    unpub_set(t, key, NULL);
  }
  struct tres *r = hmap_gets(&t->out, key);
  if (!e) {
    if (!r) return;
    hmap_dels(&t->out, key);
    free(r->bytes);
    free(r->name);
    free(r);
    mark(t, &t->d_names, key);
    return;
  }
  uint8_t digest[32];
  unsigned dl = 0;
  if (EVP_Digest(e->bytes, e->len, digest, &dl, EVP_sha256(), NULL) != 1) {
    free(e->bytes);
    t->oom = 1;
    return;
  }
  if (r && r->len == e->len && !memcmp(r->digest, digest, 32)) {
    free(e->bytes); /* the same bytes as before: not a change */
    return;
  }
  if (!r) {
    r = calloc(1, sizeof(*r));
    if (!r || !(r->name = strdup(name)) || hmap_puts(&t->out, key, r, NULL) != 0) {
      if (r) free(r->name);
      free(r);
      free(e->bytes);
      t->oom = 1;
      return;
    }
    r->type = type;
  }
  free(r->bytes);
  r->bytes = e->bytes;
  r->len = e->len;
  memcpy(r->digest, digest, 32);
  mark(t, &t->d_names, key);
}

/* ---- documents and objects ---------------------------------------------------------- */

/* The kind's object table and the apiVersion it must have (NULL: the
 * Gateway API translation checks its kinds' versions itself). */
static enum tkind kind_of(const char *kind, const char **want_api) {
  *want_api = NULL;
  enum tkind gk = gateway_kind(kind);
  if (gk != TK_NONE) return gk;
  for (int k = TK_INGRESS; k < TK_FIRST_GATEWAY; k++)
    if (!strcmp(kind, KIND_NAMES[k])) {
      *want_api = k == TK_INGRESS || k == TK_CLASS ? "networking.k8s.io/v1"
                  : k == TK_SLICE                  ? "discovery.k8s.io/v1"
                                                   : "v1";
      return (enum tkind)k;
    }
  return TK_NONE;
}

static void count_kind(struct translator *t, const char *kind, int delta) {
  uintptr_t n = (uintptr_t)hmap_gets(&t->kinds, kind);
  n += (uintptr_t)delta;
  if (n)
    hmap_puts(&t->kinds, kind, (void *)n, NULL);
  else
    hmap_dels(&t->kinds, kind);
  t->d_report = 1;
}

static struct tobj *obj_get(struct translator *t, enum tkind tk, const char *key) {
  struct tobj *o = hmap_gets(&t->objs[tk], key);
  if (o) return o;
  o = calloc(1, sizeof(*o));
  if (!o || !(o->key = strdup(key)) || hmap_puts(&t->objs[tk], key, o, NULL) != 0) {
    if (o) free(o->key);
    free(o);
    t->oom = 1;
    return NULL;
  }
  o->tk = tk;
  return o;
}

static void secret_reset(struct tobj *s) {
  free(s->problem);
  s->problem = NULL;
  s->checked = s->ok = 0;
  s->not_after = 0;
}

/* 0 when s is an IPv4 or IPv6 literal (what endpoints and ClusterIPs must be). */
static int ip_literal(const char *s) {
  struct in6_addr a;
  return s && (inet_pton(AF_INET, s, &a) == 1 || inet_pton(AF_INET6, s, &a) == 1) ? 0 : -1;
}

/* Every endpoint of an EndpointSlice: address an IP literal, zone and
 * target printable names. 0, or -1 with why. */
static int check_slice(json_t *o, char *why, size_t whylen) {
  json_t *e, *a;
  size_t i, ai;
  char w[160], q[96];
  const char *svc = jstr(jpath(o, "metadata", "labels"), "kubernetes.io/service-name");
  if (svc && *svc && validate_k8s_name(svc, 1, NULL, 0) != 0)
    return snprintf(why, whylen, "label kubernetes.io/service-name is not a valid name"), -1;
  json_array_foreach(json_object_get(o, "endpoints"), i, e) {
    json_array_foreach(json_object_get(e, "addresses"), ai, a) {
      const char *addr = json_string_value(a);
      if (addr && *addr && ip_literal(addr) != 0)
        return snprintf(why, whylen, "endpoint address %s is not an IP address",
                        validate_quote(addr, q, sizeof(q))),
               -1;
    }
    const char *zone = jstr(e, "zone"), *target = jstr(json_object_get(e, "targetRef"), "name");
    if (zone && *zone && validate_name(zone, w, sizeof(w)) != 0)
      return snprintf(why, whylen, "endpoint zone %s", w), -1;
    if (target && *target && validate_name(target, w, sizeof(w)) != 0)
      return snprintf(why, whylen, "endpoint targetRef.name %s", w), -1;
  }
  return 0;
}

/* What of a Service or EndpointSlice reaches the wire, logs or Status,
 * checked where it enters (the object is then left out whole). 0, or -1
 * with why. */
static int check_values(enum tkind tk, json_t *o, char *why, size_t whylen) {
  char q[96];
  if (tk == TK_SERVICE) {
    const char *ip = jstr(json_object_get(o, "spec"), "clusterIP");
    if (ip && *ip && strcmp(ip, "None") != 0 && ip_literal(ip) != 0)
      return snprintf(why, whylen, "spec.clusterIP %s is not an IP address",
                      validate_quote(ip, q, sizeof(q))),
             -1;
  } else if (tk == TK_SLICE) {
    return check_slice(o, why, whylen);
  }
  return 0;
}

/* A new document: its kind, key and index problems. */
static struct tdoc *doc_new(struct translator *t, json_t *o, const char *location, size_t seq) {
  struct tdoc *d = calloc(1, sizeof(*d));
  if (!d || !(d->location = strdup(location ? location : ""))) {
    free(d);
    t->oom = 1;
    return NULL;
  }
  d->o = json_incref(o);
  d->seq = seq;
  d->round = t->round;
  const char *kind = jstr(o, "kind");
  struct syncd_rejection r;
  char why[256];
  int rc = 0;
  if (!kind || !*kind) {
    rc = tr_rejection(&r, "", "", "", d->location, "%s: object has no kind", d->location);
    if (rc == 0) rc = rejlist_add(&d->rej, &r);
  } else if (!(d->kind = strdup(kind))) {
    rc = -ENOMEM;
  } else {
    count_kind(t, kind, +1);
    const char *want;
    enum tkind tk = kind_of(kind, &want);
    if (tk != TK_NONE) {
      json_t *md = json_object_get(o, "metadata");
      const char *ns = jstr(md, "namespace"), *name = jstr(md, "name");
      const char *api = jstr(o, "apiVersion");
      if (!ns || !*ns) ns = "default";
      if (tk >= TK_FIRST_GATEWAY && (!name || !*name)) {
        t->gw_dirty = 1; /* kept out of the Gateway API translation, which reports it */
        rc = tr_rejection(&r, kind, ns, "", d->location, "%s: %s has no metadata.name", d->location,
                          kind);
        if (rc == 0) rc = rejlist_add(&d->rej, &r);
      } else if (!name || !*name) {
        rc = tr_rejection(&r, kind, ns, "", d->location, "%s: %s has no metadata.name", d->location,
                          kind);
        if (rc == 0) rc = rejlist_add(&d->rej, &r);
      } else if (validate_k8s_name(ns, 0, NULL, 0) != 0 ||
                 validate_k8s_name(name, 1, NULL, 0) != 0) {
        /* names reach cluster names, logs and Status: what the API server allows */
        char qn[96], qs[96];
        rc = tr_rejection(&r, kind, "", "", d->location,
                          "%s: %s %s/%s: namespace or name is not a valid Kubernetes name",
                          d->location, kind, validate_quote(ns, qs, sizeof(qs)),
                          validate_quote(name, qn, sizeof(qn)));
        if (rc == 0) rc = rejlist_add(&d->rej, &r);
      } else if (want && (!api || strcmp(api, want) != 0)) {
        rc = tr_rejection(&r, kind, ns, name, d->location,
                          "%s/%s: apiVersion %s is not supported (want %s)", ns, name,
                          api ? api : "(none)", want);
        if (rc == 0) rc = rejlist_add(&d->rej, &r);
      } else if (check_values(tk, o, why, sizeof(why)) != 0) {
        rc = tr_rejection(&r, kind, ns, name, d->location, "%s/%s: %s", ns, name, why);
        if (rc == 0) rc = rejlist_add(&d->rej, &r);
      } else {
        char key[600];
        snprintf(key, sizeof(key), "%s/%s", ns, name);
        d->obj = obj_get(t, tk, key);
      }
    }
  }
  if (rc < 0) t->oom = 1;
  return d;
}

static int obj_attach(struct tobj *o, struct tdoc *d) {
  if (o->n_occ == o->cap_occ) {
    size_t cap = o->cap_occ ? o->cap_occ * 2 : 2;
    struct tdoc **nv = realloc(o->occ, cap * sizeof(*nv));
    if (!nv) return -ENOMEM;
    o->occ = nv;
    o->cap_occ = cap;
  }
  o->occ[o->n_occ++] = d;
  return 0;
}

static void obj_detach(struct tobj *o, struct tdoc *d) {
  for (size_t i = 0; i < o->n_occ; i++)
    if (o->occ[i] == d) {
      o->occ[i] = o->occ[--o->n_occ];
      return;
    }
}

/* Copies the winner's namespace and name into o. */
static void obj_names(struct translator *t, struct tobj *o) {
  free(o->ns), free(o->name);
  o->ns = o->name = NULL;
  if (!o->win) return;
  json_t *md = json_object_get(o->win->o, "metadata");
  const char *ns = jstr(md, "namespace"), *name = jstr(md, "name");
  o->ns = strdup(ns && *ns ? ns : "default");
  o->name = strdup(name ? name : "");
  if (!o->ns || !o->name) t->oom = 1;
}

/* Picks the winner (read last) and says whether the object changed. */
static void obj_settle(struct translator *t, struct tobj *o) {
  struct tdoc *win = NULL;
  for (size_t i = 0; i < o->n_occ; i++)
    if (!win || o->occ[i]->seq > win->seq) win = o->occ[i];
  if (o->tk == TK_INGRESS) {
    if (o->n_occ > 1)
      pset_add(&t->dups, o);
    else
      pset_del(&t->dups, o);
  }
  struct tdoc *old = o->win;
  o->win = win;
  if (win == old) return;
  int same = win && old && json_equal(win->o, old->o) &&
             (o->tk != TK_INGRESS || !strcmp(win->location, old->location));
  o->o = win ? win->o : NULL;
  o->location = win ? win->location : "";
  obj_names(t, o);
  if (same) return; /* the same content from a re-read document: nothing to do */
  if (!o->changed) {
    o->changed = 1;
    if (pset_add(&t->changed, o) != 0) t->oom = 1;
  }
}

/* The duplicate-Ingress rejections of o's losers. */
static void obj_dups(struct translator *t, struct tobj *o) {
  rejlist_clear(&o->dups);
  for (size_t i = 0; o->win && i < o->n_occ; i++) {
    struct tdoc *d = o->occ[i];
    if (d == o->win) continue;
    struct syncd_rejection r;
    if (tr_rejection(&r, "Ingress", o->ns, o->name, d->location,
                     "%s: duplicate Ingress (also at %s)", o->key, o->win->location) != 0 ||
        rejlist_add(&o->dups, &r) != 0)
      t->oom = 1;
  }
  rej_sync(t, &o->dups);
}

/* ---- dependents of changed objects ------------------------------------------------------ */

/* Marks the clusters that take endpoints from Service svc_key. */
static void mark_service_clusters(struct translator *t, const char *svc_key) {
  struct pset *users = index_get(&t->svc_users, svc_key, 0);
  for (size_t i = 0; users && i < users->n; i++) {
    const struct ting *g = users->v[i];
    for (size_t r = 0; r < g->n_refs; r++)
      if (!strcmp(g->refs[r].svc_key, svc_key)) mark(t, &t->d_clusters, g->refs[r].name);
  }
}

static void mark_ings(struct translator *t, const struct pset *s) {
  for (size_t i = 0; s && i < s->n; i++) {
    const struct ting *g = s->v[i];
    if (hmap_put(&t->d_ings, &g->obj, sizeof(g->obj), g->obj, NULL) != 0) t->oom = 1;
  }
}

/* Issue 20: the Ingresses whose annotations read Secret / ConfigMap key
 * (a CA bundle, upstream TLS material) compile again, and so re-emit
 * their hosts and clusters. */
static void mark_policy_users(struct translator *t, const char *kind, const char *key) {
  char dep[620];
  snprintf(dep, sizeof(dep), "%s/%s", kind, key);
  mark_ings(t, index_get(&t->policy_users, dep, 0));
}

static void obj_changed(struct translator *t, struct tobj *o) {
  gateway_obj_changed(t, o);
  switch (o->tk) {
    case TK_CLASS:
      t->classes_dirty = 1;
      break;
    case TK_SERVICE:
      mark_ings(t, index_get(&t->svc_users, o->key, 0));
      break;
    case TK_SLICE: {
      const char *label =
          o->o ? jstr(jpath(o->o, "metadata", "labels"), "kubernetes.io/service-name") : NULL;
      char key[600] = "";
      if (label && *label) snprintf(key, sizeof(key), "%s/%s", o->ns, label);
      if (o->svc_key && strcmp(o->svc_key, key) != 0) {
        index_del(&t->svc_slices, o->svc_key, o);
        mark_service_clusters(t, o->svc_key);
      }
      if (key[0]) {
        if (index_add(&t->svc_slices, key, o) != 0) t->oom = 1;
        mark_service_clusters(t, key);
      }
      free(o->svc_key);
      o->svc_key = key[0] ? strdup(key) : NULL;
      break;
    }
    case TK_CONFIGMAP:
      mark_policy_users(t, "ConfigMap", o->key);
      break;
    case TK_SECRET: {
      mark_policy_users(t, "Secret", o->key);
      secret_reset(o);
      mark(t, &t->d_certs, o->key);
      struct pset *users = index_get(&t->secret_users, o->key, 0);
      for (size_t i = 0; users && i < users->n; i++) {
        const struct ting *g = users->v[i];
        for (size_t c = 0; c < g->n_claims; c++) {
          char key[600];
          snprintf(key, sizeof(key), "%s/%s", g->ns,
                   g->claims[c].secret ? g->claims[c].secret : "");
          if (g->claims[c].secret && !strcmp(key, o->key)) mark(t, &t->d_hosts, g->claims[c].host);
        }
      }
      break;
    }
    case TK_INGRESS:
      if (hmap_put(&t->d_ings, &o, sizeof(o), o, NULL) != 0) t->oom = 1;
      obj_dups(t, o);
      break;
    default:
      break;
  }
}

/* Recomputes our classes; marks the Ingresses whose class changed meaning. */
static void settle_classes(struct translator *t) {
  struct hmap ours, foreign;
  hmap_init(&ours);
  hmap_init(&foreign);
  int have_default = 0;
  size_t pos = 0;
  void *v;
  while (hmap_next(&t->objs[TK_CLASS], &pos, NULL, NULL, &v)) {
    struct tobj *c = v;
    if (!c->o || !c->name) continue;
    const char *ctl = jstr(json_object_get(c->o, "spec"), "controller");
    if (strcmp(ctl ? ctl : "", TRANSLATE_CONTROLLER) != 0) {
      if (!hmap_gets(&foreign, c->name)) hmap_puts(&foreign, c->name, strdup(ctl ? ctl : ""), NULL);
      continue;
    }
    hmap_puts(&ours, c->name, (void *)1, NULL);
    json_t *def = json_object_get(jpath(c->o, "metadata", "annotations"),
                                  "ingressclass.kubernetes.io/is-default-class");
    if (json_is_true(def) || (json_is_string(def) && !strcmp(json_string_value(def), "true")))
      have_default = 1;
  }
  /* every name in either version whose meaning changed */
  struct hmap *maps[4] = {&t->ours, &ours, &t->foreign, &foreign};
  for (int m = 0; m < 4; m++) {
    pos = 0;
    const void *k;
    size_t kl;
    while (hmap_next(maps[m], &pos, &k, &kl, NULL)) {
      char name[600];
      snprintf(name, sizeof(name), "%.*s", (int)kl, (const char *)k);
      const char *a = hmap_gets(&t->foreign, name), *b = hmap_gets(&foreign, name);
      if (!hmap_gets(&t->ours, name) != !hmap_gets(&ours, name) || !a != !b ||
          (a && b && strcmp(a, b) != 0))
        mark_ings(t, index_get(&t->class_users, name, 0));
    }
  }
  if (have_default != t->have_default) mark_ings(t, &t->classless);
  pos = 0;
  while (hmap_next(&t->foreign, &pos, NULL, NULL, &v)) free(v);
  hmap_free(&t->ours);
  hmap_free(&t->foreign);
  t->ours = ours;
  t->foreign = foreign;
  t->have_default = have_default;
}

/* ---- Ingresses -------------------------------------------------------------------------- */

static json_t *service_lookup(void *ud, const char *key) {
  struct translator *t = ud;
  struct tobj *o = hmap_gets(&t->objs[TK_SERVICE], key);
  return o ? o->o : NULL;
}

static json_t *object_lookup(void *ud, enum tkind tk, const char *key) {
  struct translator *t = ud;
  struct tobj *o = tk > TK_NONE && tk < TK_COUNT ? hmap_gets(&t->objs[tk], key) : NULL;
  return o ? o->o : NULL;
}

/* Takes g out of every index, marking what it touched. */
static void ting_unindex(struct translator *t, struct ting *g) {
  if (g->class_name)
    index_del(&t->class_users, g->class_name, g);
  else
    pset_del(&t->classless, g);
  for (size_t i = 0; i < g->n_svc_keys; i++) index_del(&t->svc_users, g->svc_keys[i], g);
  for (size_t i = 0; i < g->n_secret_keys; i++) index_del(&t->secret_users, g->secret_keys[i], g);
  for (size_t i = 0; i < g->n_policy_keys; i++) index_del(&t->policy_users, g->policy_keys[i], g);
  for (size_t i = 0; i < g->n_cands; i++) {
    index_del(&t->host_users, g->cands[i].host, g);
    mark(t, &t->d_hosts, g->cands[i].host);
  }
  for (size_t i = 0; i < g->n_claims; i++) {
    index_del(&t->host_users, g->claims[i].host, g);
    mark(t, &t->d_hosts, g->claims[i].host);
  }
  for (size_t i = 0; i < g->n_refs; i++) {
    index_del(&t->cluster_users, g->refs[i].name, g);
    mark(t, &t->d_clusters, g->refs[i].name);
  }
  if (g->db_cluster) {
    pset_del(&t->db_users, g);
    t->d_db = 1;
  }
  if (g->valid) hmap_dels(&t->served, g->id); /* recompile says whether the set changed */
  if (g->has_ignored) {
    hmap_del(&t->ignored, &g, sizeof(g));
    t->d_report = 1;
  }
  rejlist_clear(&g->rej);
  rej_sync(t, &g->rej);
}

static void ting_index(struct translator *t, struct ting *g) {
  int rc = 0;
  if (g->class_name)
    rc |= index_add(&t->class_users, g->class_name, g);
  else
    rc |= pset_add(&t->classless, g);
  for (size_t i = 0; i < g->n_svc_keys; i++) rc |= index_add(&t->svc_users, g->svc_keys[i], g);
  for (size_t i = 0; i < g->n_secret_keys; i++)
    rc |= index_add(&t->secret_users, g->secret_keys[i], g);
  for (size_t i = 0; i < g->n_policy_keys; i++)
    rc |= index_add(&t->policy_users, g->policy_keys[i], g);
  for (size_t i = 0; i < g->n_cands; i++) {
    rc |= index_add(&t->host_users, g->cands[i].host, g);
    mark(t, &t->d_hosts, g->cands[i].host);
  }
  for (size_t i = 0; i < g->n_claims; i++) {
    rc |= index_add(&t->host_users, g->claims[i].host, g);
    mark(t, &t->d_hosts, g->claims[i].host);
  }
  for (size_t i = 0; i < g->n_refs; i++) {
    rc |= index_add(&t->cluster_users, g->refs[i].name, g);
    mark(t, &t->d_clusters, g->refs[i].name);
  }
  if (g->db_cluster) {
    rc |= pset_add(&t->db_users, g);
    t->d_db = 1;
  }
  if (g->valid) rc |= hmap_puts(&t->served, g->id, g, NULL);
  if (g->has_ignored) {
    rc |= hmap_put(&t->ignored, &g, sizeof(g), g, NULL);
    t->d_report = 1;
  }
  rej_sync(t, &g->rej);
  if (rc) t->oom = 1;
}

static void ting_drop(struct translator *t, struct ting *g) {
  ting_unindex(t, g);
  tr_ting_clear(g);
  free(g->created);
  free(g->class_name);
  free(g);
}

/* Compiles Ingress object o again (or drops it when gone). */
static void recompile(struct translator *t, struct tobj *o) {
  int was_served = o->ing && o->ing->valid;
  if (o->ing) {
    ting_drop(t, o->ing);
    o->ing = NULL;
  }
  if (!o->win) {
    if (was_served) t->d_served = 1;
    return;
  }
  struct ting *g = calloc(1, sizeof(*g));
  if (!g) {
    t->oom = 1;
    return;
  }
  o->ing = g;
  g->obj = o;
  g->id = o->key;
  g->ns = pool_strdup(&g->pool, o->ns);
  g->name = pool_strdup(&g->pool, o->name);
  g->location = pool_strdup(&g->pool, o->location);
  const char *created = jstr(json_object_get(o->o, "metadata"), "creationTimestamp");
  if (created && *created && !(g->created = strdup(created))) t->oom = 1;
  const char *cls = tr_class_name(o->o);
  if (cls && !(g->class_name = strdup(cls))) t->oom = 1;
  struct tclasses cl = {&t->ours, &t->foreign, t->have_default};
  if (tr_compile_ingress(g, o->o, &cl, service_lookup, object_lookup, t) != 0) t->oom = 1;
  ting_index(t, g);
  if (was_served != g->valid) t->d_served = 1;
}

/* ---- updates --------------------------------------------------------------------------------- */

static void doc_free(struct tdoc *d) {
  json_decref(d->o);
  free(d->location);
  free(d->kind);
  rejlist_clear(&d->rej);
  free(d);
}

static void free_dead(struct translator *t) {
  for (size_t i = 0; i < t->n_dead; i++) doc_free(t->dead[i]);
  t->n_dead = 0;
}

/* A document left the source: out of its object and the report. */
static void doc_remove(struct translator *t, struct tdoc *d) {
  hmap_del(&t->docs, &d->o, sizeof(d->o));
  d->dead = 1;
  if (d->kind) count_kind(t, d->kind, -1);
  rejlist_clear(&d->rej);
  rej_sync(t, &d->rej);
  if (d->obj) {
    obj_detach(d->obj, d);
    if (pset_add(&t->d_objs, d->obj) != 0) t->oom = 1;
  }
  if (t->n_dead == t->cap_dead) { /* its object may still point at it until settled */
    size_t cap = t->cap_dead ? t->cap_dead * 2 : 64;
    struct tdoc **nv = realloc(t->dead, cap * sizeof(*nv));
    if (!nv) {
      t->oom = 1;
      return; /* leaked rather than freed under a pointer */
    }
    t->dead = nv;
    t->cap_dead = cap;
  }
  t->dead[t->n_dead++] = d;
}

/* Stage 1: which documents are new or gone; which objects changed. An
 * unchanged source gives the same documents in the same order, so each is
 * first compared with the one at its position last time (a pointer and a
 * short string); only a mismatch costs a hash lookup. */
static void scan_documents(struct translator *t, const struct manifest_set *in) {
  t->round++;
  struct tdoc **order = malloc((in->n_docs + 1) * sizeof(*order));
  if (!order) {
    t->oom = 1;
    return;
  }
  for (size_t i = 0; i < in->n_docs; i++) {
    json_t *o = in->docs[i].obj;
    const char *loc = in->docs[i].location ? in->docs[i].location : "";
    struct tdoc *d =
        i < t->n_order && t->order[i]->o == o ? t->order[i] : hmap_get(&t->docs, &o, sizeof(o));
    if (d && d->dead) d = hmap_get(&t->docs, &o, sizeof(o));
    if (d && d->round != t->round && !strcmp(d->location, loc)) {
      if (d->seq != i && d->obj && d->obj->n_occ > 1) pset_add(&t->d_objs, d->obj);
      d->seq = i;
      d->round = t->round;
      order[i] = d;
      continue;
    }
    if (d && d->round != t->round) doc_remove(t, d); /* the same object, moved: a new document */
    d = doc_new(t, o, loc, i);
    order[i] = d;
    if (!d) continue;
    if (hmap_put(&t->docs, &d->o, sizeof(d->o), d, NULL) != 0) {
      doc_free(d);
      order[i] = NULL;
      t->oom = 1;
      continue;
    }
    rej_sync(t, &d->rej);
    if (d->obj) {
      if (obj_attach(d->obj, d) != 0) t->oom = 1;
      if (pset_add(&t->d_objs, d->obj) != 0) t->oom = 1;
    }
  }
  /* the documents not seen this round are gone (every document that
   * survived the last round is in its order) */
  for (size_t i = 0; i < t->n_order; i++) {
    struct tdoc *d = t->order[i];
    if (d && !d->dead && d->round != t->round) doc_remove(t, d);
  }
  free(t->order);
  t->order = order;
  t->n_order = in->n_docs;
  for (size_t i = 0; i < t->n_order; i++)
    if (!order[i]) t->oom = 1; /* a hole: the next update must start over */
  /* settle the touched objects (a duplicate's order may change by itself) */
  for (size_t i = 0; i < t->dups.n; i++) pset_add(&t->d_objs, t->dups.v[i]);
  struct pset touched = t->d_objs;
  memset(&t->d_objs, 0, sizeof(t->d_objs));
  for (size_t i = 0; i < touched.n; i++) {
    struct tobj *o = touched.v[i];
    obj_settle(t, o);
    if (o->tk == TK_INGRESS && (o->n_occ > 1 || o->dups.n)) obj_dups(t, o);
  }
  pset_free(&touched);
}

/* The manifest set's parse errors; the report changes when they do. */
static void scan_errors(struct translator *t, const struct manifest_set *in) {
  int same = t->errors.n == in->n_errors;
  for (size_t i = 0; same && i < in->n_errors; i++) {
    char *want = NULL;
    if (asprintf(&want, "%s: %s", in->errors[i].location, in->errors[i].message) < 0) {
      t->oom = 1;
      return;
    }
    same = !strcmp(t->errors.v[i].reason, want) &&
           !strcmp(t->errors.v[i].location, in->errors[i].location);
    free(want);
  }
  if (same) return;
  rejlist_clear(&t->errors);
  for (size_t i = 0; i < in->n_errors; i++) {
    struct syncd_rejection r;
    if (tr_rejection(&r, "", "", "", in->errors[i].location, "%s: %s", in->errors[i].location,
                     in->errors[i].message) != 0 ||
        rejlist_add(&t->errors, &r) != 0)
      t->oom = 1;
  }
  t->d_report = 1;
}

static int res_cmp(const void *a, const void *b) {
  const struct syncd_resource *x = a, *y = b;
  if (x->type != y->type) return x->type < y->type ? -1 : 1;
  return strcmp(x->name, y->name);
}

static int key_cmp(const void *a, const void *b) {
  const struct syncd_resource_key *x = a, *y = b;
  if (x->type != y->type) return x->type < y->type ? -1 : 1;
  return strcmp(x->name, y->name);
}

static void clear_changes(struct translator *t) {
  for (size_t i = 0; i < t->n_up; i++) { /* the bytes handed out: only digests stay */
    free(t->up_res[i]->bytes);
    t->up_res[i]->bytes = NULL;
  }
  for (size_t i = 0; i < t->n_rm; i++) free(t->rm[i].name);
  t->n_up = t->n_rm = 0;
}

static int push_up(struct translator *t, struct tres *r) {
  if (!r->bytes) return -ENOMEM; /* never: every changed resource was just emitted */
  if (t->n_up == t->cap_up) {
    size_t cap = t->cap_up ? t->cap_up * 2 : 64;
    struct syncd_resource *nv = realloc(t->up, cap * sizeof(*nv));
    if (!nv) return -ENOMEM;
    t->up = nv;
    struct tres **nr = realloc(t->up_res, cap * sizeof(*nr));
    if (!nr) return -ENOMEM;
    t->up_res = nr;
    t->cap_up = cap;
  }
  t->up_res[t->n_up] = r;
  t->up[t->n_up++] = (struct syncd_resource){r->type, r->name, r->bytes, r->len};
  return 0;
}

/* The resources this update changed (every resource for a full one). */
static void collect_changes(struct translator *t, int full) {
  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  if (full) {
    while (hmap_next(&t->out, &pos, NULL, NULL, &v))
      if (push_up(t, v) != 0) t->oom = 1;
  } else {
    while (hmap_next(&t->d_names, &pos, &k, &kl, NULL)) {
      char key[1200];
      snprintf(key, sizeof(key), "%.*s", (int)kl, (const char *)k);
      struct tres *r = hmap_gets(&t->out, key);
      if (r) {
        if (push_up(t, r) != 0) t->oom = 1;
        continue;
      }
      char *slash = strchr(key, '/');
      if (!slash) continue;
      if (t->n_rm == t->cap_rm) {
        size_t cap = t->cap_rm ? t->cap_rm * 2 : 16;
        struct syncd_resource_key *nv = realloc(t->rm, cap * sizeof(*nv));
        if (!nv) {
          t->oom = 1;
          continue;
        }
        t->rm = nv;
        t->cap_rm = cap;
      }
      t->rm[t->n_rm] = (struct syncd_resource_key){atoi(key), strdup(slash + 1)};
      if (t->rm[t->n_rm].name)
        t->n_rm++;
      else
        t->oom = 1;
    }
  }
  tr_sort(t->up, t->n_up, sizeof(*t->up), res_cmp);
  tr_sort(t->rm, t->n_rm, sizeof(*t->rm), key_cmp);
}

static void reset_dirty(struct translator *t) {
  hmap_free(&t->d_ings);
  hmap_free(&t->d_hosts);
  hmap_free(&t->d_clusters);
  hmap_free(&t->d_certs);
  hmap_free(&t->d_names);
  hmap_init(&t->d_ings);
  hmap_init(&t->d_hosts);
  hmap_init(&t->d_clusters);
  hmap_init(&t->d_certs);
  hmap_init(&t->d_names);
  t->d_db = t->d_report = t->d_served = t->classes_dirty = 0;
}

static void translator_clear(struct translator *t);
static void translator_init(struct translator *t);

/* Runs stage fn over every key of a dirty string set. */
static void settle_all(struct translator *t, struct hmap *set,
                       void (*fn)(struct translator *, const char *)) {
  size_t pos = 0;
  const void *k;
  size_t kl;
  while (hmap_next(set, &pos, &k, &kl, NULL)) {
    char key[1200];
    snprintf(key, sizeof(key), "%.*s", (int)kl, (const char *)k);
    fn(t, key);
  }
}

int translator_update(struct translator *t, const struct manifest_set *in,
                      const struct syncd_update **out) {
  *out = NULL;
  free_dead(t);
  clear_changes(t);
  int full = !t->ready;
  if (full) { /* first update, or after running out of memory: start over */
    translator_clear(t);
    translator_init(t);
  }
  reset_dirty(t);
  scan_errors(t, in);
  scan_documents(t, in);
  /* stage 2: dependents of changed objects */
  struct pset changed = t->changed;
  memset(&t->changed, 0, sizeof(t->changed));
  for (size_t i = 0; i < changed.n; i++) obj_changed(t, changed.v[i]);
  if (t->classes_dirty) settle_classes(t);
  /* stage 3: Ingresses */
  size_t pos = 0;
  void *v;
  while (hmap_next(&t->d_ings, &pos, NULL, NULL, &v)) recompile(t, v);
  /* stage 4: hosts, then what hosts decide (certificates), clusters, default backend */
  settle_all(t, &t->d_hosts, settle_host);
  settle_all(t, &t->d_certs, settle_cert);
  settle_all(t, &t->d_clusters, settle_cluster);
  if (t->d_db || full) settle_default_backend(t);
  gateway_settle(t, full);
  if (full) {
    struct emitted e;
    if (tr_emit_default_cert(&t->opts, &e) != 0)
      t->oom = 1;
    else if (e.bytes)
      out_set(t, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE, "default", &e);
  }
  /* objects that are gone for good */
  for (size_t i = 0; i < changed.n; i++) {
    struct tobj *o = changed.v[i];
    o->changed = 0;
    if (o->win || o->n_occ || o->ing) continue;
    if (o->tk == TK_SLICE && o->svc_key) index_del(&t->svc_slices, o->svc_key, o);
    rejlist_clear(&o->dups);
    rej_sync(t, &o->dups);
    pset_del(&t->dups, o);
    hmap_dels(&t->objs[o->tk], o->key);
    secret_reset(o);
    free(o->svc_key);
    free(o->occ);
    free(o->key);
    free(o->ns);
    free(o->name);
    free(o);
  }
  size_t n_changed = changed.n;
  pset_free(&changed);
  /* stage 5: report, served list, the change set */
  int report_changed = (t->d_report || full) ? build_report(t) : 0;
  if (t->d_served || full) build_served(t);
  collect_changes(t, full);
  if (t->oom) {
    t->ready = 0; /* the next update rebuilds from scratch */
    return -ENOMEM;
  }
  t->ready = 1;
  t->upd = (struct syncd_update){.full = full,
                                 .upserted = t->up,
                                 .n_upserted = t->n_up,
                                 .removed = t->rm,
                                 .n_removed = t->n_rm,
                                 .report = &t->report,
                                 .report_changed = report_changed || full,
                                 .served = t->served_sorted,
                                 .n_served = t->n_served_sorted,
                                 .served_changed = t->d_served || full,
                                 .objects_changed = n_changed,
                                 .gateway_status = t->gw_status,
                                 .gateway_status_len = t->gw_status_len,
                                 .gateway_status_changed = t->gw_status_changed || full};
  *out = &t->upd;
  return 0;
}

/* ---- life cycle ------------------------------------------------------------------------------ */

static void translator_init(struct translator *t) {
  hmap_init(&t->docs);
  for (int k = 0; k < TK_COUNT; k++) hmap_init(&t->objs[k]);
  struct hmap *maps[] = {&t->kinds,         &t->ours,         &t->foreign,    &t->class_users,
                         &t->svc_users,     &t->secret_users, &t->host_users, &t->cluster_users,
                         &t->svc_slices,    &t->served,       &t->hosts,      &t->cert_hosts,
                         &t->out,           &t->rej_units,    &t->ignored,    &t->d_ings,
                         &t->d_hosts,       &t->d_clusters,   &t->d_certs,    &t->d_names,
                         &t->gw_namespaces, &t->gw_hosts,     &t->gw_taken,   &t->gw_names,
                         &t->unpub,         &t->policy_users};
  for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) hmap_init(maps[i]);
}

static void translator_clear(struct translator *t) {
  size_t pos = 0;
  void *v;
  free_dead(t);
  free(t->order);
  t->order = NULL;
  t->n_order = t->cap_order = 0;
  while (hmap_next(&t->docs, &pos, NULL, NULL, &v)) doc_free(v);
  hmap_free(&t->docs);
  for (int k = 0; k < TK_COUNT; k++) {
    pos = 0;
    while (hmap_next(&t->objs[k], &pos, NULL, NULL, &v)) {
      struct tobj *o = v;
      if (o->ing) {
        tr_ting_clear(o->ing);
        free(o->ing->created);
        free(o->ing->class_name);
        free(o->ing);
      }
      rejlist_clear(&o->dups);
      secret_reset(o);
      free(o->svc_key);
      free(o->occ);
      free(o->key);
      free(o->ns);
      free(o->name);
      free(o);
    }
    hmap_free(&t->objs[k]);
  }
  pos = 0;
  while (hmap_next(&t->foreign, &pos, NULL, NULL, &v)) free(v);
  pos = 0;
  while (hmap_next(&t->hosts, &pos, NULL, NULL, &v)) {
    struct thost *h = v;
    rejlist_clear(&h->rej);
    free(h->cert_secret);
    free(h->host);
    free(h);
  }
  pos = 0;
  while (hmap_next(&t->cert_hosts, &pos, NULL, NULL, &v)) {
    hmap_free(v);
    free(v);
  }
  pos = 0;
  while (hmap_next(&t->unpub, &pos, NULL, NULL, &v)) {
    rejlist_clear(v);
    free(v);
  }
  pos = 0;
  while (hmap_next(&t->out, &pos, NULL, NULL, &v)) {
    struct tres *r = v;
    free(r->bytes);
    free(r->name);
    free(r);
  }
  index_free(&t->class_users);
  index_free(&t->svc_users);
  index_free(&t->secret_users);
  index_free(&t->policy_users);
  index_free(&t->host_users);
  index_free(&t->cluster_users);
  index_free(&t->svc_slices);
  struct hmap *maps[] = {&t->kinds,      &t->ours,       &t->foreign,   &t->served,  &t->hosts,
                         &t->cert_hosts, &t->out,        &t->rej_units, &t->ignored, &t->d_ings,
                         &t->d_hosts,    &t->d_clusters, &t->d_certs,   &t->d_names, &t->unpub};
  for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) hmap_free(maps[i]);
  pset_free(&t->classless);
  pset_free(&t->db_users);
  pset_free(&t->dups);
  pset_free(&t->d_objs);
  pset_free(&t->changed);
  rejlist_clear(&t->errors);
  t->have_default = 0;
  gateway_free(t);
}

int translator_new(const struct translate_opts *opts, struct translator **out) {
  struct translator *t = calloc(1, sizeof(*t));
  if (!t) return -ENOMEM;
  if (opts && opts->default_cert_pem && opts->default_key_pem) {
    t->default_cert = strdup(opts->default_cert_pem);
    t->default_key = strdup(opts->default_key_pem);
    if (!t->default_cert || !t->default_key) {
      free(t->default_cert), free(t->default_key), free(t);
      return -ENOMEM;
    }
  }
  t->opts.default_cert_pem = t->default_cert;
  t->opts.default_key_pem = t->default_key;
  if (opts && opts->affinity_secret && opts->affinity_secret_len &&
      opts->affinity_secret_len <= sizeof(t->affinity_secret)) {
    memcpy(t->affinity_secret, opts->affinity_secret, opts->affinity_secret_len);
    t->opts.affinity_secret = t->affinity_secret;
    t->opts.affinity_secret_len = opts->affinity_secret_len;
  }
  static const uint32_t http_dflt[] = {80, 0}, https_dflt[] = {443, 0};
  const struct gateway_opts *go = opts ? opts->gateway : NULL;
  const uint32_t *hp = go && go->http_ports ? go->http_ports : http_dflt;
  const uint32_t *sp = go && go->https_ports ? go->https_ports : https_dflt;
  for (int i = 0; i < 8 && hp[i]; i++) t->gw_http_ports[i] = hp[i];
  for (int i = 0; i < 8 && sp[i]; i++) t->gw_https_ports[i] = sp[i];
  if (go && go->address && *go->address && !(t->gw_address = strdup(go->address))) {
    free(t->default_cert), free(t->default_key), free(t);
    return -ENOMEM;
  }
  t->gw_opts = (struct gateway_opts){t->gw_http_ports, t->gw_https_ports, t->gw_address};
  t->opts.gateway = &t->gw_opts;
  translator_init(t);
  *out = t;
  return 0;
}

void translator_free(struct translator *t) {
  if (!t) return;
  clear_changes(t);
  translator_clear(t);
  free(t->up);
  free(t->up_res);
  free(t->rm);
  free(t->dead);
  report_clear(&t->report);
  for (size_t i = 0; i < t->n_served_sorted; i++) free(t->served_sorted[i]);
  free(t->served_sorted);
  free(t->default_cert);
  free(t->default_key);
  free(t->gw_address);
  free(t);
}

/* ---- translating from scratch ------------------------------------------------------------------
 */

void syncd_desired_free(struct syncd_desired *d) {
  if (!d) return;
  for (size_t i = 0; i < d->n_resources; i++) {
    free(d->resources[i].name);
    free(d->resources[i].bytes);
  }
  for (size_t i = 0; i < d->n_rejected; i++) tr_rejection_clear(&d->rejected[i]);
  for (size_t i = 0; i < d->n_ignored; i++) tr_rejection_clear(&d->ignored[i]);
  for (size_t i = 0; i < d->n_counts; i++) free(d->counts[i].kind);
  for (size_t i = 0; i < d->n_served; i++) free(d->served_ingresses[i]);
  free(d->resources);
  free(d->rejected);
  free(d->ignored);
  free(d->counts);
  free(d->served_ingresses);
  free(d->gateway_status);
  for (size_t i = 0; i < d->n_gateway_hosts; i++) free(d->gateway_hosts[i]);
  free(d->gateway_hosts);
  free(d);
}

int translate_desired(const struct manifest_set *in, const struct translate_opts *opts,
                      struct syncd_desired **out) {
  *out = NULL;
  struct translator *t;
  if (translator_new(opts, &t) != 0) return -ENOMEM;
  const struct syncd_update *u;
  struct syncd_desired *d = calloc(1, sizeof(*d));
  int rc = d ? translator_update(t, in, &u) : -ENOMEM;
  if (rc == 0) {
    const struct syncd_report *r = u->report;
    d->resources = calloc(u->n_upserted + 1, sizeof(*d->resources));
    d->rejected = calloc(r->n_rejected + 1, sizeof(*d->rejected));
    d->ignored = calloc(r->n_ignored + 1, sizeof(*d->ignored));
    d->counts = calloc(r->n_counts + 1, sizeof(*d->counts));
    d->served_ingresses = calloc(u->n_served + 1, sizeof(char *));
    if (!d->resources || !d->rejected || !d->ignored || !d->counts || !d->served_ingresses)
      rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < u->n_upserted; i++) {
      const struct syncd_resource *s = &u->upserted[i];
      struct syncd_resource *c = &d->resources[d->n_resources++];
      c->type = s->type;
      c->name = strdup(s->name);
      c->bytes = malloc(s->len ? s->len : 1);
      c->len = s->len;
      if (!c->name || !c->bytes) rc = -ENOMEM;
      if (c->bytes && s->len) memcpy(c->bytes, s->bytes, s->len);
    }
    for (size_t i = 0; rc == 0 && i < r->n_rejected; i++)
      rc = tr_rejection_copy(&d->rejected[d->n_rejected++], &r->rejected[i]);
    for (size_t i = 0; rc == 0 && i < r->n_ignored; i++)
      rc = tr_rejection_copy(&d->ignored[d->n_ignored++], &r->ignored[i]);
    for (size_t i = 0; rc == 0 && i < r->n_counts; i++) {
      d->counts[d->n_counts] = (struct syncd_count){strdup(r->counts[i].kind), r->counts[i].count};
      if (!d->counts[d->n_counts++].kind) rc = -ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < u->n_served; i++)
      if (!(d->served_ingresses[d->n_served++] = strdup(u->served[i]))) rc = -ENOMEM;
    if (rc == 0 && u->gateway_status_len) {
      d->gateway_status = malloc(u->gateway_status_len);
      if (!d->gateway_status) rc = -ENOMEM;
      if (d->gateway_status) memcpy(d->gateway_status, u->gateway_status, u->gateway_status_len);
      d->gateway_status_len = u->gateway_status_len;
    }
  }
  translator_free(t);
  if (rc != 0) {
    syncd_desired_free(d);
    return -ENOMEM;
  }
  *out = d;
  return 0;
}
