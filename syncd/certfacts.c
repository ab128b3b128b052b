/*
 * certfacts — certificate facts kept by change (see certfacts.h).
 *
 * Three maps: facts (certificate name → fact), uses (VirtualHost name →
 * the certificate and host it names) and hosts (certificate name → the
 * hosts naming it, whether or not the certificate exists yet: a refresh
 * may see the VirtualHost before its Certificate). A fact's hosts are
 * pointed at its host set when the refresh ends, for every certificate a
 * change touched.
 */
#include "syncd/certfacts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cert.h"
#include "common/hmap.h"
#include "edge/v1/resources.pb-c.h"
#include "syncd/store.h"

struct strset {
  char **v;
  size_t n, cap;
  int sorted;
};

struct vh_use {
  char *cert, *host;
};

struct certfacts {
  struct hmap facts; /* name → struct cert_fact */
  struct hmap uses;  /* vhost name → struct vh_use */
  struct hmap hosts; /* cert name → struct strset */
  struct hmap touched;
  uint64_t seq;
  int ready;
  struct cert_fact **sorted;
  size_t n_sorted;
  int sorted_valid;
  struct cert_info *info; /* scratch for cert_parse */
};

static void strv_free(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_fact(const void *a, const void *b) {
  return strcmp((*(struct cert_fact *const *)a)->name, (*(struct cert_fact *const *)b)->name);
}

static void fact_free(struct cert_fact *f) {
  free(f->name);
  strv_free(f->sni, f->n_sni);
  free(f->issuer);
  free(f->source);
  free(f);
}

int certfacts_new(struct certfacts **out) {
  struct certfacts *cf = calloc(1, sizeof(*cf));
  if (!cf || !(cf->info = malloc(sizeof(*cf->info)))) {
    free(cf);
    return -1;
  }
  hmap_init(&cf->facts);
  hmap_init(&cf->uses);
  hmap_init(&cf->hosts);
  hmap_init(&cf->touched);
  *out = cf;
  return 0;
}

static void clear_all(struct certfacts *cf, const struct certfacts_hooks *hooks, void *ud) {
  size_t pos = 0;
  void *v;
  while (hmap_next(&cf->facts, &pos, NULL, NULL, &v)) {
    if (hooks && hooks->removed) hooks->removed(ud, v);
    fact_free(v);
  }
  pos = 0;
  while (hmap_next(&cf->uses, &pos, NULL, NULL, &v)) {
    struct vh_use *u = v;
    free(u->cert);
    free(u->host);
    free(u);
  }
  pos = 0;
  while (hmap_next(&cf->hosts, &pos, NULL, NULL, &v)) {
    struct strset *set = v;
    strv_free(set->v, set->n);
    free(set);
  }
  hmap_free(&cf->facts);
  hmap_free(&cf->uses);
  hmap_free(&cf->hosts);
  hmap_init(&cf->facts);
  hmap_init(&cf->uses);
  hmap_init(&cf->hosts);
  free(cf->sorted);
  cf->sorted = NULL;
  cf->n_sorted = 0;
  cf->sorted_valid = 0;
  cf->ready = 0;
}

void certfacts_free(struct certfacts *cf) {
  if (!cf) return;
  clear_all(cf, NULL, NULL);
  hmap_free(&cf->facts);
  hmap_free(&cf->uses);
  hmap_free(&cf->hosts);
  hmap_free(&cf->touched);
  free(cf->info);
  free(cf);
}

static int touch(struct certfacts *cf, const char *cert) {
  return hmap_gets(&cf->touched, cert) ? 0 : hmap_puts(&cf->touched, cert, (void *)1, NULL);
}

/* ---- host sets ---------------------------------------------------------------- */

static int host_add(struct certfacts *cf, const char *cert, const char *host) {
  struct strset *set = hmap_gets(&cf->hosts, cert);
  if (!set) {
    if (!(set = calloc(1, sizeof(*set))) || hmap_puts(&cf->hosts, cert, set, NULL) != 0) {
      free(set);
      return -1;
    }
  }
  if (set->n == set->cap) {
    size_t cap = set->cap ? set->cap * 2 : 4;
    char **nv = realloc(set->v, cap * sizeof(*nv));
    if (!nv) return -1;
    set->v = nv;
    set->cap = cap;
  }
  if (!(set->v[set->n] = strdup(host))) return -1;
  set->n++;
  set->sorted = 0;
  return touch(cf, cert);
}

static int host_remove(struct certfacts *cf, const char *cert, const char *host) {
  struct strset *set = hmap_gets(&cf->hosts, cert);
  if (!set) return 0;
  for (size_t i = 0; i < set->n; i++)
    if (strcmp(set->v[i], host) == 0) {
      free(set->v[i]);
      set->v[i] = set->v[--set->n];
      set->sorted = 0;
      break;
    }
  if (set->n == 0) {
    hmap_dels(&cf->hosts, cert);
    free(set->v);
    free(set);
  }
  return touch(cf, cert);
}

/* ---- one changed entry ---------------------------------------------------------- */

static void fact_remove(struct certfacts *cf, const char *name, const struct certfacts_hooks *hooks,
                        void *ud) {
  struct cert_fact *f = hmap_dels(&cf->facts, name);
  if (!f) return;
  if (hooks && hooks->removed) hooks->removed(ud, f);
  fact_free(f);
  cf->sorted_valid = 0;
}

static int cert_changed(struct certfacts *cf, const struct store_entry *e,
                        const struct certfacts_hooks *hooks, void *ud) {
  if (e->removed) {
    fact_remove(cf, e->name, hooks, ud);
    return 0;
  }
  Edge__V1__Resource *r = edge__v1__resource__unpack(NULL, e->len, e->bytes);
  if (!r) return 0;
  int rc = -1;
  struct cert_fact *f = calloc(1, sizeof(*f));
  if (!f || r->kind_case != EDGE__V1__RESOURCE__KIND_CERTIFICATE) {
    free(f);
    edge__v1__resource__free_unpacked(r, NULL);
    return f ? 0 : -1;
  }
  const Edge__V1__Certificate *c = r->certificate;
  f->name = strdup(e->name);
  f->sni = calloc(c->n_sni_names + 1, sizeof(*f->sni));
  for (size_t k = 0; f->sni && k < c->n_sni_names; k++)
    if ((f->sni[f->n_sni] = strdup(c->sni_names[k]))) f->n_sni++;
  f->not_after = c->not_after;
  f->is_default = c->is_default;
  char src[512] = "", why[256];
  if (c->source && c->source->name && c->source->name[0])
    snprintf(src, sizeof(src), "%s/%s", c->source->namespace_ ? c->source->namespace_ : "",
             c->source->name);
  f->source = strdup(src);
  if (c->cert_pem.len && cert_parse((const char *)c->cert_pem.data, c->cert_pem.len, cf->info, why,
                                    sizeof(why)) == 0) {
    f->issuer = strdup(cf->info->issuer);
    if (!f->not_after) f->not_after = cf->info->not_after;
  } else {
    f->issuer = strdup("");
  }
  edge__v1__resource__free_unpacked(r, NULL);
  if (!f->name || !f->sni || !f->source || !f->issuer) goto out;
  struct cert_fact *old = NULL;
  if (hmap_puts(&cf->facts, f->name, f, (void **)&old) != 0) goto out;
  if (old) {
    f->user = old->user; /* the gauge stays with the certificate */
    fact_free(old);
  }
  cf->sorted_valid = 0;
  f = NULL;
  rc = touch(cf, e->name);
out:
  if (f) fact_free(f);
  return rc;
}

static int vhost_changed(struct certfacts *cf, const struct store_entry *e) {
  struct vh_use *u = hmap_gets(&cf->uses, e->name);
  char *cert = NULL, *host = NULL;
  if (!e->removed) {
    Edge__V1__Resource *r = edge__v1__resource__unpack(NULL, e->len, e->bytes);
    if (r && r->kind_case == EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST &&
        r->virtual_host->certificate && r->virtual_host->certificate[0]) {
      cert = strdup(r->virtual_host->certificate);
      host =
          strdup(r->virtual_host->host && r->virtual_host->host[0] ? r->virtual_host->host : "*");
    }
    if (r) edge__v1__resource__free_unpacked(r, NULL);
  }
  if (u && cert && !strcmp(u->cert, cert) && !strcmp(u->host, host)) {
    free(cert), free(host);
    return 0;
  }
  int rc = 0;
  if (u) {
    rc |= host_remove(cf, u->cert, u->host);
    hmap_dels(&cf->uses, e->name);
    free(u->cert), free(u->host), free(u);
  }
  if (cert && host) {
    struct vh_use *nu = malloc(sizeof(*nu));
    if (!nu || hmap_puts(&cf->uses, e->name, nu, NULL) != 0) {
      free(nu), free(cert), free(host);
      return -1;
    }
    nu->cert = cert;
    nu->host = host;
    rc |= host_add(cf, cert, host);
  } else {
    free(cert), free(host);
  }
  return rc;
}

struct refresh_ctx {
  struct certfacts *cf;
  const struct certfacts_hooks *hooks;
  void *ud;
  int rc;
};

static void on_entry(void *arg, const struct store_entry *e) {
  struct refresh_ctx *c = arg;
  if (e->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE)
    c->rc |= cert_changed(c->cf, e, c->hooks, c->ud);
  else if (e->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST)
    c->rc |= vhost_changed(c->cf, e);
}

int certfacts_refresh(struct certfacts *cf, const struct store *s,
                      const struct certfacts_hooks *hooks, void *ud) {
  if (cf->ready && cf->seq == store_seq(s)) return 0;
  struct refresh_ctx c = {cf, hooks, ud, 0};
  if (!cf->ready || cf->seq < store_horizon(s) || cf->seq > store_seq(s)) {
    clear_all(cf, hooks, ud);
    size_t n;
    struct store_entry *const *e = store_entries(s, &n);
    for (size_t i = 0; i < n; i++)
      if (!e[i]->removed) on_entry(&c, e[i]);
  } else {
    store_changed_since(s, cf->seq, on_entry, &c);
  }
  size_t pos = 0;
  const void *key;
  size_t klen;
  while (hmap_next(&cf->touched, &pos, &key, &klen, NULL)) {
    char name[1024];
    snprintf(name, sizeof(name), "%.*s", (int)klen, (const char *)key);
    struct cert_fact *f = hmap_gets(&cf->facts, name);
    if (!f) continue;
    struct strset *set = hmap_gets(&cf->hosts, name);
    if (set && !set->sorted) {
      if (set->n > 1) qsort(set->v, set->n, sizeof(*set->v), cmp_str);
      set->sorted = 1;
    }
    f->hosts = set ? set->v : NULL;
    f->n_hosts = set ? set->n : 0;
    if (hooks && hooks->changed) hooks->changed(ud, f);
  }
  hmap_free(&cf->touched);
  hmap_init(&cf->touched);
  cf->seq = store_seq(s);
  cf->ready = c.rc == 0;
  return c.rc ? -1 : 0;
}

size_t certfacts_sorted(struct certfacts *cf, struct cert_fact *const **out) {
  if (!cf->sorted_valid) {
    struct cert_fact **v = realloc(cf->sorted, (hmap_size(&cf->facts) + 1) * sizeof(*v));
    if (!v) {
      *out = NULL;
      return 0;
    }
    size_t n = 0, pos = 0;
    void *f;
    while (hmap_next(&cf->facts, &pos, NULL, NULL, &f)) v[n++] = f;
    if (n > 1) qsort(v, n, sizeof(*v), cmp_fact);
    cf->sorted = v;
    cf->n_sorted = n;
    cf->sorted_valid = 1;
  }
  *out = cf->sorted;
  return cf->n_sorted;
}
