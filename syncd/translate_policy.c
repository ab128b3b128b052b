/*
 * translate_policy — the issue-20 side of the Ingress rules (see
 * translate.c): what the annotation parsers (syncd/ingress_policy.h,
 * syncd/policy_annotations.h) may look up while an Ingress compiles —
 * its annotations, Secrets and labelled ConfigMaps of its own namespace,
 * the cluster of an external-auth Service — each Secret or ConfigMap
 * recorded as a dependency of the Ingress (the incremental translator
 * compiles it again when one changes); a host's client-certificate
 * policy among its Ingresses; and the policy fields of an emitted Cluster.
 *
 * Strings live in the Ingress's pool (or, for a Cluster, a pool freed
 * once it is packed). Single-threaded: the translator's.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "syncd/translate_internal.h"

static const char *policy_annotation(void *ud, const char *name) {
  struct tr_policy_ctx *pc = ud;
  return tr_annotation(&pc->g->pool, pc->ingress, name);
}

/* data[key] (base64) or stringData[key] of object o; NULL with *why. */
static const char *object_key(struct pool *p, json_t *o, const char *key, size_t *len, int base64,
                              const char **why) {
  const char *plain = jstr(json_object_get(o, "stringData"), key);
  const char *d = jstr(json_object_get(o, "data"), key);
  if (plain || (d && !base64)) {
    *len = strlen(plain ? plain : d);
    return plain ? plain : d;
  }
  if (!d) {
    *why = pool_printf(p, "has no key %s", key);
    return NULL;
  }
  char *out = tr_base64_decode(d, len);
  if (!out) *why = pool_printf(p, "key %s is not valid base64", key);
  return pool_keep(p, out);
}

/* The object tk ns/name, noted as one this Ingress depends on (found or not). */
static json_t *policy_object(struct tr_policy_ctx *pc, enum tkind tk, const char *ns,
                             const char *name) {
  char key[600], dep[620];
  snprintf(key, sizeof(key), "%s/%s", ns, name);
  snprintf(dep, sizeof(dep), "%s/%s", tk == TK_SECRET ? "Secret" : "ConfigMap", key);
  tr_note_key(pc->g, &pc->g->policy_keys, &pc->g->n_policy_keys, dep);
  return pc->obj_fn ? pc->obj_fn(pc->ud, tk, key) : NULL;
}

static const char *policy_secret(void *ud, const char *ns, const char *name, const char *key,
                                 size_t *len, const char **why) {
  struct tr_policy_ctx *pc = ud;
  json_t *s = policy_object(pc, TK_SECRET, ns, name);
  if (!s) return *why = "not found", NULL;
  return object_key(&pc->g->pool, s, key, len, 1, why);
}

static const char *policy_configmap(void *ud, const char *ns, const char *name, const char *key,
                                    size_t *len, const char **why) {
  struct tr_policy_ctx *pc = ud;
  json_t *m = policy_object(pc, TK_CONFIGMAP, ns, name);
  if (!m) return *why = "not found", NULL;
  /* only ConfigMaps marked as CA bundles: the kubernetes source watches no other */
  if (!json_object_get(jpath(m, "metadata", "labels"), "edge.dev/ca-bundle"))
    return *why = "is not labelled edge.dev/ca-bundle", NULL;
  return object_key(&pc->g->pool, m, key, len, 0, why); /* ConfigMap data is text */
}

static void *policy_alloc(void *ud, size_t n) {
  return pool_alloc(&((struct tr_policy_ctx *)ud)->g->pool, n);
}

/* syncd/policy_annotations.h's lookups: an htpasswd Secret (a dependency
 * like the CA bundles: a changed file recompiles this Ingress) and the
 * external-auth Service's cluster (plain HTTP/1.1, no balancing policy,
 * whatever the Ingress's own backends use). */
static json_t *pa_secret(void *ud, const char *ns, const char *name) {
  return policy_object(ud, TK_SECRET, ns, name);
}

static const char *pa_service(void *ud, const char *svc, long port, char *err, size_t errlen) {
  struct tr_policy_ctx *pc = ud;
  json_t *b =
      json_pack("{s:{s:s, s:{s:I}}}", "service", "name", svc, "port", "number", (json_int_t)port);
  if (!b) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  struct annotations plain;
  memset(&plain, 0, sizeof(plain));
  const char *cl = tr_resolve_backend(pc->g, b, &plain, pc->svc_fn, pc->ud, err, errlen);
  json_decref(b);
  return cl;
}

/* Client certificates are asked for in the TLS handshake: every host of an
 * Ingress that asks for them must be in its own spec.tls. */
int tr_client_auth_hosts_have_tls(const struct ting *g, char *err, size_t errlen) {
  for (size_t k = 0; k < g->n_cands; k++) {
    const char *h = g->cands[k].host;
    int found = 0;
    for (size_t j = 0; j < g->n_claims && !found; j++) found = !strcmp(g->claims[j].host, h);
    if (!found)
      return snprintf(err, errlen,
                      "annotation edge.dev/auth-tls-%s: host %s is not in spec.tls (client "
                      "certificates are asked for in the TLS handshake)",
                      "secret/configmap", h[0] ? h : "(any)"),
             -1;
  }
  return 0;
}

const Edge__V1__ClientAuth *tr_host_client_auth(struct cand **w, size_t n, struct rejlist *rej,
                                                int *oom) {
  const struct ting *pick = NULL;
  for (size_t i = 0; i < n; i++) {
    const struct ting *g = w[i]->ing;
    if (g->pol && g->pol->has_client_auth && (!pick || ting_age_cmp(g, pick) < 0)) pick = g;
  }
  for (size_t i = 0; pick && i < n; i++) {
    const struct ting *g = w[i]->ing;
    if (g == pick || !g->pol || !g->pol->has_client_auth ||
        ipol_same_client_auth(&pick->pol->client_auth, &g->pol->client_auth))
      continue;
    int seen = 0; /* one rejection per Ingress */
    for (size_t k = 0; k < i && !seen; k++) seen = w[k]->ing == g;
    if (seen) continue;
    struct syncd_rejection r;
    if (tr_rejection(&r, "Ingress", g->ns, g->name, g->location,
                     "%s: client certificate settings for host %s differ from %s's, whose apply",
                     g->id, w[i]->host[0] ? w[i]->host : "*", pick->id) < 0 ||
        rejlist_add(rej, &r) < 0)
      *oom = 1;
  }
  return pick ? &pick->pol->client_auth : NULL;
}

static void *cluster_alloc(void *pool, size_t n) {
  return pool_alloc(pool, n);
}

/* The issue-20 fields of a Cluster (cluster_emit's decorate hook): upstream
 * TLS (default name SERVICE.NAMESPACE.svc), health checks, circuit breakers
 * from the oldest referencing Ingress's policy, and its affinity or
 * hashing (the cookie key derived from syncd's secret and the cluster
 * name, the same on every syncd). Strings live in d->tmp. */
int tr_decorate_cluster(void *arg, Edge__V1__Cluster *cl) {
  struct tr_cluster_decor *d = arg;
  d->pol = d->ref->pol; /* this Service's copy of the Ingress's policy */
  struct ipol_env env = {&d->tmp, d->ns, NULL, NULL, NULL, cluster_alloc};
  if (ipol_cluster(&env, &d->pol, d->svc, cl) != 0 || d->tmp.oom) return -ENOMEM;
  const struct translate_opts *o = d->opts;
  if (d->ref->policy.cookie_affinity && o && o->affinity_secret) {
    d->aff = *d->ref->policy.cookie_affinity;
    pa_affinity_key(o->affinity_secret, o->affinity_secret_len, d->ref->name, d->aff_key);
    d->aff.hmac_key = (ProtobufCBinaryData){sizeof(d->aff_key), d->aff_key};
    cl->cookie_affinity = &d->aff;
  }
  cl->consistent_hash = d->ref->policy.consistent_hash;
  return 0;
}

void tr_policy_envs(struct tr_policy_ctx *pc, struct ipol_env *ienv, struct pa_env *penv) {
  *ienv = (struct ipol_env){
      pc, pc->g->ns, policy_annotation, policy_secret, policy_configmap, policy_alloc};
  *penv = (struct pa_env){pc, pc->g->ns, policy_annotation, pa_secret, pa_service, policy_alloc};
}
