/*
 * translate_settle — what a dirty host, certificate, cluster or default
 * backend produces now, and the report and served list, for the engine in
 * translate_world.c (see translate.h).
 *
 * A host gathers the candidates and TLS claims of the Ingresses using it
 * (the host index), settles conflicts (the oldest Ingress wins a path) and
 * picks its certificate (the oldest claim's Secret when it can be served,
 * else the default with tls_fallback); the Secret it ends up with is
 * recorded per host, so a certificate's SNI names are the hosts that
 * picked it. A cluster takes its options from its oldest reference and its
 * endpoints from its Service's EndpointSlices (or the ClusterIP).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "syncd/translate_internal.h"

/* ---- hosts ------------------------------------------------------------------------------- */

static int cand_conflict_pcmp(const void *a, const void *b) {
  return cand_conflict_cmp(*(const struct cand *const *)a, *(const struct cand *const *)b);
}

/* The claim that decides a host's certificate: the oldest Ingress's first. */
static const struct tls_claim *winning_claim(const struct pset *users, const char *host) {
  const struct tls_claim *best = NULL;
  for (size_t i = 0; users && i < users->n; i++) {
    const struct ting *g = users->v[i];
    for (size_t c = 0; c < g->n_claims; c++) {
      const struct tls_claim *cl = &g->claims[c];
      if (strcmp(cl->host, host) != 0) continue;
      if (!best || (best->ing != g && ting_age_cmp(g, best->ing) < 0) ||
          (best->ing == g && cl->order < best->order))
        best = cl;
    }
  }
  return best;
}

static struct tobj *claim_secret(struct translator *t, const struct tls_claim *cl) {
  char key[600];
  snprintf(key, sizeof(key), "%s/%s", cl->ing->ns, cl->secret);
  struct tobj *s = hmap_gets(&t->objs[TK_SECRET], key);
  return s && s->o ? s : NULL;
}

static void cert_host_set(struct translator *t, const char *secret, const char *host, int on) {
  struct hmap *set = hmap_gets(&t->cert_hosts, secret);
  if (on) {
    if (!set) {
      if (!(set = malloc(sizeof(*set)))) {
        t->oom = 1;
        return;
      }
      hmap_init(set);
      if (hmap_puts(&t->cert_hosts, secret, set, NULL) != 0) {
        free(set);
        t->oom = 1;
        return;
      }
    }
    if (sset_add(set, host) != 0) t->oom = 1;
  } else if (set) {
    hmap_dels(set, host);
    if (hmap_size(set) == 0) {
      hmap_dels(&t->cert_hosts, secret);
      hmap_free(set);
      free(set);
    }
  }
  mark(t, &t->d_certs, secret);
}

/* A host's VirtualHost, conflicts and certificate, from the Ingresses using it. */
void settle_host(struct translator *t, const char *host) {
  struct pset *users = index_get(&t->host_users, host, 0);
  struct thost *h = hmap_gets(&t->hosts, host);
  if (!h) {
    if (!(h = calloc(1, sizeof(*h))) || !(h->host = strdup(host)) ||
        hmap_puts(&t->hosts, host, h, NULL) != 0) {
      if (h) free(h->host);
      free(h);
      t->oom = 1;
      return;
    }
  }
  rejlist_clear(&h->rej);
  size_t n = 0;
  for (size_t i = 0; users && i < users->n; i++) {
    const struct ting *g = users->v[i];
    for (size_t c = 0; c < g->n_cands; c++) n += !strcmp(g->cands[c].host, host);
  }
  struct cand **all = calloc(n + 1, sizeof(*all)), **win = calloc(n + 1, sizeof(*win));
  if (!all || !win) {
    free(all), free(win);
    t->oom = 1;
    return;
  }
  size_t k = 0, nw = 0;
  for (size_t i = 0; users && i < users->n; i++) {
    struct ting *g = users->v[i];
    for (size_t c = 0; c < g->n_cands; c++)
      if (!strcmp(g->cands[c].host, host)) all[k++] = &g->cands[c];
  }
  tr_sort(all, n, sizeof(*all), cand_conflict_pcmp);
  for (size_t i = 0; i < n; i++) all[i]->canary = NULL;
  for (size_t i = 0; i < n;) {
    /* One run: the candidates of one (path, type), oldest first. The oldest that is not a
     * canary wins; the oldest canary takes its share; every other one is a conflict. */
    size_t j = i + 1;
    while (j < n && all[j]->key_len == all[i]->key_len &&
           !memcmp(all[j]->key_path, all[i]->key_path, all[i]->key_len) &&
           all[j]->eff == all[i]->eff)
      j++;
    struct cand *w = NULL, *canary = NULL;
    for (size_t k = i; k < j; k++) {
      if (!all[k]->cy.on && !w)
        w = all[k];
      else if (all[k]->cy.on && !canary)
        canary = all[k];
    }
    for (size_t k = i; k < j; k++) {
      struct cand *cd = all[k];
      if (cd == w || (cd == canary && w)) continue;
      struct syncd_rejection r;
      int rc = cd == canary
                   ? tr_rejection(&r, "Ingress", cd->ing->ns, cd->ing->name, cd->ing->location,
                                  "%s: canary path %s on host %s has no Ingress to take a share of",
                                  cd->ing->id, cd->path, host[0] ? host : "*")
                   : tr_rejection(&r, "Ingress", cd->ing->ns, cd->ing->name, cd->ing->location,
                                  "%s: path %s on host %s conflicts with %s", cd->ing->id, cd->path,
                                  host[0] ? host : "*", (w ? w : canary)->ing->id);
      if (rc != 0 || rejlist_add(&h->rej, &r) != 0) t->oom = 1;
    }
    if (w) {
      w->canary = canary;
      win[nw++] = w;
    }
    i = j;
  }
  /* the certificate: the winning claim's Secret when it can be served */
  const struct tls_claim *cl = host[0] ? winning_claim(users, host) : NULL;
  const char *certificate = "";
  int fallback = 0, oom = 0;
  struct tobj *secret = NULL;
  if (cl) {
    certificate = "default";
    if (cl->secret) {
      secret = claim_secret(t, cl);
      if (secret) tr_check_secret(secret, &oom);
      if (secret && secret->ok) {
        certificate = secret->key;
      } else {
        fallback = nw > 0;
        struct syncd_rejection r;
        if (tr_rejection(
                &r, "Ingress", cl->ing->ns, cl->ing->name, cl->ing->location, "%s: secret %s %s",
                cl->ing->id, cl->secret,
                secret ? (secret->problem ? secret->problem : "is invalid") : "not found") != 0 ||
            rejlist_add(&h->rej, &r) != 0)
          t->oom = 1;
        secret = NULL;
      }
    }
  }
  if (oom) t->oom = 1;
  const char *now = secret ? secret->key : NULL;
  if (!h->cert_secret != !now || (now && strcmp(h->cert_secret, now) != 0)) {
    if (h->cert_secret) cert_host_set(t, h->cert_secret, host, 0);
    free(h->cert_secret);
    h->cert_secret = now ? strdup(now) : NULL;
    if (now) {
      if (!h->cert_secret) t->oom = 1;
      cert_host_set(t, now, host, 1);
    }
  } /* a changed Secret marked its certificate itself (obj_changed) */
  char name[300];
  snprintf(name, sizeof(name), "vh:%s", host[0] ? host : "*");
  if (nw && !hmap_gets(&t->gw_taken, host)) { /* a host the Gateway API keeps: withheld */
    struct emitted e;
    int oom = 0;
    const Edge__V1__ClientAuth *auth = tr_host_client_auth(win, nw, &h->rej, &oom);
    if (oom) t->oom = 1;
    if (tr_emit_vhost(host, win, nw, certificate, fallback, auth, &e) == 0)
      out_set(t, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST, name, &e);
    else
      t->oom = 1;
  } else {
    out_set(t, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST, name, NULL);
  }
  free(all);
  free(win);
  rej_sync(t, &h->rej);
  if (!users && !h->cert_secret) { /* nothing uses the host any more */
    hmap_dels(&t->hosts, host);
    free(h->host);
    free(h);
  }
}

/* ---- certificates, clusters, the default backend ------------------------------------- */

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void settle_cert(struct translator *t, const char *secret_key) {
  struct hmap *set = hmap_gets(&t->cert_hosts, secret_key);
  struct tobj *s = hmap_gets(&t->objs[TK_SECRET], secret_key);
  if (!set || !s || !s->o || !s->ok) {
    out_set(t, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE, secret_key, NULL);
    return;
  }
  char **sni = calloc(hmap_size(set) + 1, sizeof(*sni));
  if (!sni) {
    t->oom = 1;
    return;
  }
  size_t n = 0, pos = 0;
  const void *k;
  size_t kl;
  while (hmap_next(set, &pos, &k, &kl, NULL))
    if (!(sni[n++] = strndup(k, kl))) t->oom = 1;
  tr_sort(sni, n, sizeof(*sni), cmp_str);
  struct emitted e;
  if (!t->oom && tr_emit_certificate(s, (const char *const *)sni, n, &e) == 0)
    out_set(t, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE, secret_key, &e);
  else
    t->oom = 1;
  for (size_t i = 0; i < n; i++) free(sni[i]);
  free(sni);
}

void settle_cluster(struct translator *t, const char *name) {
  struct pset *users = index_get(&t->cluster_users, name, 0);
  const struct ting *oldest = NULL;
  for (size_t i = 0; users && i < users->n; i++)
    if (!oldest || ting_age_cmp(users->v[i], oldest) < 0) oldest = users->v[i];
  const struct cluster_ref *ref = NULL;
  for (size_t r = 0; oldest && r < oldest->n_refs && !ref; r++)
    if (!strcmp(oldest->refs[r].name, name)) ref = &oldest->refs[r];
  if (!ref) {
    out_set(t, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER, name, NULL);
    return;
  }
  struct pset *slices = index_get(&t->svc_slices, ref->svc_key, 0);
  size_t n = slices ? slices->n : 0;
  json_t **objs = calloc(n + 1, sizeof(*objs));
  if (!objs) {
    t->oom = 1;
    return;
  }
  for (size_t i = 0; i < n; i++) objs[i] = ((struct tobj *)slices->v[i])->o;
  struct emitted e;
  if (tr_emit_cluster(ref, objs, n, &t->opts, &e) == 0)
    out_set(t, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER, name, &e);
  else
    t->oom = 1;
  free(objs);
}

void settle_default_backend(struct translator *t) {
  const struct ting *oldest = NULL;
  for (size_t i = 0; i < t->db_users.n; i++)
    if (!oldest || ting_age_cmp(t->db_users.v[i], oldest) < 0) oldest = t->db_users.v[i];
  struct emitted e;
  if (tr_emit_default_backend(oldest ? oldest->db_cluster : NULL, oldest, &e) == 0)
    out_set(t, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_DEFAULT_BACKEND, "default", &e);
  else
    t->oom = 1;
}

/* ---- the report --------------------------------------------------------------------------- */

static int rejection_cmp(const void *a, const void *b) {
  const struct syncd_rejection *x = a, *y = b;
  int r = strcmp(x->location, y->location);
  return r ? r : strcmp(x->reason, y->reason);
}

static int ignored_cmp(const void *a, const void *b) {
  const struct syncd_rejection *x = a, *y = b;
  int r = strcmp(x->ns, y->ns);
  return r ? r : strcmp(x->name, y->name);
}

static int count_cmp(const void *a, const void *b) {
  return strcmp(((const struct syncd_count *)a)->kind, ((const struct syncd_count *)b)->kind);
}

void report_clear(struct syncd_report *r) {
  for (size_t i = 0; i < r->n_rejected; i++) tr_rejection_clear(&r->rejected[i]);
  for (size_t i = 0; i < r->n_ignored; i++) tr_rejection_clear(&r->ignored[i]);
  for (size_t i = 0; i < r->n_counts; i++) free(r->counts[i].kind);
  free(r->rejected);
  free(r->ignored);
  free(r->counts);
  memset(r, 0, sizeof(*r));
}

static int report_equal(const struct syncd_report *a, const struct syncd_report *b) {
  if (a->n_rejected != b->n_rejected || a->n_ignored != b->n_ignored || a->n_counts != b->n_counts)
    return 0;
  for (size_t i = 0; i < a->n_rejected; i++)
    if (rejection_cmp(&a->rejected[i], &b->rejected[i]) ||
        strcmp(a->rejected[i].kind, b->rejected[i].kind) ||
        strcmp(a->rejected[i].ns, b->rejected[i].ns) ||
        strcmp(a->rejected[i].name, b->rejected[i].name))
      return 0;
  for (size_t i = 0; i < a->n_ignored; i++)
    if (ignored_cmp(&a->ignored[i], &b->ignored[i]) ||
        strcmp(a->ignored[i].reason, b->ignored[i].reason) ||
        strcmp(a->ignored[i].location, b->ignored[i].location))
      return 0;
  for (size_t i = 0; i < a->n_counts; i++)
    if (strcmp(a->counts[i].kind, b->counts[i].kind) || a->counts[i].count != b->counts[i].count)
      return 0;
  return 1;
}

/* Rebuilds the report from its parts; 1 when it differs from the last. */
int build_report(struct translator *t) {
  struct syncd_report r = {0};
  size_t n = t->errors.n, pos = 0;
  void *v;
  while (hmap_next(&t->rej_units, &pos, NULL, NULL, &v)) n += ((struct rejlist *)v)->n;
  r.rejected = calloc(n + 1, sizeof(*r.rejected));
  r.ignored = calloc(hmap_size(&t->ignored) + 1, sizeof(*r.ignored));
  r.counts = calloc(hmap_size(&t->kinds) + 1, sizeof(*r.counts));
  if (!r.rejected || !r.ignored || !r.counts) goto nomem;
  for (size_t i = 0; i < t->errors.n; i++)
    if (tr_rejection_copy(&r.rejected[r.n_rejected++], &t->errors.v[i]) != 0) goto nomem;
  pos = 0;
  while (hmap_next(&t->rej_units, &pos, NULL, NULL, &v)) {
    const struct rejlist *l = v;
    for (size_t i = 0; i < l->n; i++)
      if (tr_rejection_copy(&r.rejected[r.n_rejected++], &l->v[i]) != 0) goto nomem;
  }
  tr_sort(r.rejected, r.n_rejected, sizeof(*r.rejected), rejection_cmp);
  size_t w = 0; /* one line per (location, reason): a bad secret of several hosts of one Ingress */
  for (size_t i = 0; i < r.n_rejected; i++) {
    if (w > 0 && !rejection_cmp(&r.rejected[w - 1], &r.rejected[i])) {
      tr_rejection_clear(&r.rejected[i]);
      continue;
    }
    r.rejected[w++] = r.rejected[i];
  }
  r.n_rejected = w;
  pos = 0;
  while (hmap_next(&t->ignored, &pos, NULL, NULL, &v))
    if (tr_rejection_copy(&r.ignored[r.n_ignored++], &((struct ting *)v)->ignored) != 0) goto nomem;
  tr_sort(r.ignored, r.n_ignored, sizeof(*r.ignored), ignored_cmp);
  pos = 0;
  const void *k;
  size_t kl;
  while (hmap_next(&t->kinds, &pos, &k, &kl, &v)) {
    r.counts[r.n_counts].kind = strndup(k, kl);
    r.counts[r.n_counts].count = (unsigned)(uintptr_t)v;
    if (!r.counts[r.n_counts++].kind) goto nomem;
  }
  tr_sort(r.counts, r.n_counts, sizeof(*r.counts), count_cmp);
  r.gateway_status = t->gw_status;
  r.gateway_status_len = t->gw_status_len;
  int changed = !report_equal(&r, &t->report) || t->gw_status_changed;
  report_clear(&t->report);
  t->report = r;
  return changed;
nomem:
  report_clear(&r);
  t->oom = 1;
  return 1;
}

void build_served(struct translator *t) {
  for (size_t i = 0; i < t->n_served_sorted; i++) free(t->served_sorted[i]);
  free(t->served_sorted);
  t->served_sorted = calloc(hmap_size(&t->served) + 1, sizeof(*t->served_sorted));
  t->n_served_sorted = 0;
  if (!t->served_sorted) {
    t->oom = 1;
    return;
  }
  size_t pos = 0;
  const void *k;
  size_t kl;
  while (hmap_next(&t->served, &pos, &k, &kl, NULL))
    if ((t->served_sorted[t->n_served_sorted] = strndup(k, kl))) t->n_served_sorted++;
  tr_sort(t->served_sorted, t->n_served_sorted, sizeof(char *), cmp_str);
}
