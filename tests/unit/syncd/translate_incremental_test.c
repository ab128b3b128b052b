/* The incremental translator against translating from scratch: a random
 * world of Ingresses, classes, Services, EndpointSlices and Secrets spread
 * over files is changed one edit at a time (add, change, remove, move a
 * document to another file, duplicate it, break it); after every edit the
 * state built from the translator's deltas, its report and its served list
 * must equal translate_desired over the same documents, byte for byte.
 * Files that an edit did not touch keep their parsed documents (the same
 * json pointers), as syncd's dir source does, so the translator's
 * recognition of unchanged documents is exercised too. Seeds are fixed:
 * a failure names the seed and step that reproduce it. */
#include "syncd/translate.h"

#include <CUnit/CUnit.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/v1/resources.pb-c.h"
#include "common/cert.h"

#define N_FILES 6
#define N_SLOTS 40 /* documents per world */

static char *crt[2], *key[2];

static uint64_t rng;
static unsigned rnd(unsigned n) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (unsigned)(rng % n);
}
static const char *pick(const char *const *v, size_t n) {
  return v[rnd((unsigned)n)];
}
#define PICK(arr) pick(arr, sizeof(arr) / sizeof(arr[0]))

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
  va_list ap;
  char *s = NULL;
  va_start(ap, f);
  if (vasprintf(&s, f, ap) < 0) s = NULL;
  va_end(ap);
  return s;
}

static char *b64(const char *s) {
  size_t n = strlen(s);
  char *out = malloc(4 * ((n + 2) / 3) + 1);
  EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
  return out;
}

/* ---- random documents ---------------------------------------------------------- */

static const char *NS[] = {"ns0", "ns1"};
static const char *HOSTS[] = {"a.test", "b.test", "*.w.test", "", "A.TEST", "c.test"};
static const char *PATHS[] = {"/", "/a", "/a/", "/b", "/a/b", "/", "/a", "/b", "/a/b", "/x y"};
static const char *TYPES[] = {"Prefix", "Prefix", "Exact",  "ImplementationSpecific",
                              "Prefix", "Exact",  "Prefix", "Weird"};
static const char *TIMES[] = {"2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", NULL};
static const char *ADDRS[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3"};

static char *gen_class(void) {
  static const char *names[] = {"edge", "edge2", "other"};
  const char *name = PICK(names);
  int ours = strcmp(name, "other") != 0 ? rnd(5) != 0 : rnd(5) == 0;
  return fmt(
      "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: %s\n%s"
      "spec:\n  controller: %s\n",
      name,
      rnd(2) ? "  annotations:\n    ingressclass.kubernetes.io/is-default-class: \"true\"\n" : "",
      ours ? "edge.dev/ingress-controller" : "example.com/other");
}

static char *gen_service(void) {
  const char *ports[] = {"  - {name: http, port: 80}\n", "  - {name: admin, port: 8080}\n",
                         "  - {name: http, port: 80}\n  - {name: admin, port: 8080}\n",
                         "  - {name: http, port: 80}\n  - {name: admin, port: 8080}\n"};
  return fmt(
      "apiVersion: v1\nkind: Service\nmetadata: {name: svc%u, namespace: %s}\nspec:\n"
      "  clusterIP: 10.96.0.%u\n  ports:\n%s",
      rnd(3), PICK(NS), rnd(3) + 1, PICK(ports));
}

static char *gen_slice(void) {
  char eps[512] = "";
  unsigned n = rnd(3);
  for (unsigned i = 0; i < n; i++) {
    size_t l = strlen(eps);
    snprintf(eps + l, sizeof(eps) - l,
             "  - addresses: [\"%s\"]\n    conditions: {ready: %s}\n    zone: z%u\n", PICK(ADDRS),
             rnd(3) ? "true" : "false", rnd(2));
  }
  return fmt(
      "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: sl%u\n"
      "  namespace: %s\n  labels: {kubernetes.io/service-name: svc%u}\naddressType: IPv4\n"
      "ports:\n  - {name: %s, port: 90%02u}\nendpoints:\n%s",
      rnd(4), PICK(NS), rnd(3), rnd(3) ? "http" : "admin", rnd(3), n ? eps : "  []\n");
}

static char *gen_secret(void) {
  unsigned which = rnd(6);
  int k = (int)rnd(2);
  char *c = b64(crt[k]), *kk = b64(key[which == 4 ? 1 - k : k]);
  char *s;
  const char *name_ns = PICK(NS);
  unsigned name = rnd(2);
  if (which == 3)
    s =
        fmt("apiVersion: v1\nkind: Secret\nmetadata: {name: sec%u, namespace: %s}\n"
            "type: Opaque\ndata:\n  tls.crt: %s\n  tls.key: %s\n",
            name, name_ns, c, kk);
  else if (which == 5)
    s =
        fmt("apiVersion: v1\nkind: Secret\nmetadata: {name: sec%u, namespace: %s}\n"
            "type: kubernetes.io/tls\ndata:\n  tls.crt: %s\n",
            name, name_ns, c);
  else
    s =
        fmt("apiVersion: v1\nkind: Secret\nmetadata: {name: sec%u, namespace: %s}\n"
            "type: kubernetes.io/tls\ndata:\n  tls.crt: %s\n  tls.key: %s\n",
            name, name_ns, c, kk); /* 4: the keys of two different pairs */
  free(c);
  free(kk);
  return s;
}

static char *gen_backend(void) {
  if (rnd(15) == 0) return strdup("{resource: {kind: Bucket, name: x}}");
  static const unsigned svcs[] = {0, 0, 1, 1, 2, 3};
  return fmt("{service: {name: svc%u, port: %s}}", svcs[rnd(6)],
             rnd(2) ? (rnd(3) ? "{number: 80}" : "{number: 8080}") : "{name: http}");
}

static char *gen_ingress(void) {
  char buf[4096];
  size_t l = 0;
  unsigned name = rnd(14);
  const char *ns = PICK(NS), *ts = PICK(TIMES);
  l += (size_t)snprintf(buf + l, sizeof(buf) - l,
                        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n"
                        "  name: ing%u\n  namespace: %s\n",
                        name, ns);
  if (ts) l += (size_t)snprintf(buf + l, sizeof(buf) - l, "  creationTimestamp: \"%s\"\n", ts);
  unsigned ann = rnd(6);
  if (ann == 0)
    l += (size_t)snprintf(buf + l, sizeof(buf) - l,
                          "  annotations: {edge.dev/backend-protocol: h2c, "
                          "edge.dev/proxy-body-size: 1m}\n");
  else if (ann == 1)
    l += (size_t)snprintf(buf + l, sizeof(buf) - l,
                          "  annotations: {edge.dev/load-balance: sideways}\n");
  else if (ann == 2)
    l += (size_t)snprintf(buf + l, sizeof(buf) - l,
                          "  annotations: {kubernetes.io/ingress.class: edge2}\n");
  l += (size_t)snprintf(buf + l, sizeof(buf) - l, "spec:\n");
  unsigned cls = rnd(8);
  if (cls < 3)
    l += (size_t)snprintf(buf + l, sizeof(buf) - l, "  ingressClassName: %s\n",
                          cls == 0   ? "edge"
                          : cls == 1 ? "other"
                                     : "edge2");
  if (rnd(5) == 0) {
    char *b = gen_backend();
    l += (size_t)snprintf(buf + l, sizeof(buf) - l, "  defaultBackend: %s\n", b);
    free(b);
  }
  if (rnd(4)) {
    l += (size_t)snprintf(buf + l, sizeof(buf) - l, "  tls:\n");
    for (unsigned t = rnd(2) + 1; t > 0; t--) {
      const char *h = PICK(HOSTS);
      l += (size_t)snprintf(buf + l, sizeof(buf) - l, "  - hosts: [\"%s\"]\n", h[0] ? h : "c.test");
      if (rnd(6))
        l += (size_t)snprintf(buf + l, sizeof(buf) - l, "    secretName: sec%u\n", rnd(3));
    }
  }
  l += (size_t)snprintf(buf + l, sizeof(buf) - l, "  rules:\n");
  for (unsigned r = rnd(2) + 1; r > 0; r--) {
    const char *h = PICK(HOSTS);
    if (h[0])
      l += (size_t)snprintf(buf + l, sizeof(buf) - l, "  - host: \"%s\"\n    http:\n", h);
    else
      l += (size_t)snprintf(buf + l, sizeof(buf) - l, "  - http:\n");
    l += (size_t)snprintf(buf + l, sizeof(buf) - l, "      paths:\n");
    for (unsigned p = rnd(2) + 1; p > 0; p--) {
      char *b = gen_backend();
      l += (size_t)snprintf(buf + l, sizeof(buf) - l,
                            "      - path: \"%s\"\n        pathType: %s\n        backend: %s\n",
                            PICK(PATHS), PICK(TYPES), b);
      free(b);
    }
  }
  return strdup(buf);
}

static char *gen_doc(void) {
  unsigned k = rnd(24);
  if (k < 1) return gen_class();
  if (k < 3) return gen_service();
  if (k < 6) return gen_slice();
  if (k < 9) return gen_secret();
  if (k == 9)
    return strdup(
        "apiVersion: networking.k8s.io/v1beta1\nkind: Ingress\n"
        "metadata: {name: old, namespace: ns0}\nspec: {}\n");
  if (k == 10) return strdup("metadata: {name: nokind}\n");
  return gen_ingress();
}

/* ---- the world: files of documents ---------------------------------------------------- */

struct world {
  char *doc[N_SLOTS]; /* NULL: empty slot */
  int file[N_SLOTS];
  struct manifest_set parsed[N_FILES];
  int dirty[N_FILES];
};

static void world_init(struct world *w) {
  memset(w, 0, sizeof(*w));
  for (int i = 0; i < N_SLOTS; i++) {
    w->doc[i] = rnd(4) ? gen_doc() : NULL;
    w->file[i] = (int)rnd(N_FILES);
  }
  /* a start that serves something: our default class, the Services, valid
   * Secrets (later edits change or remove them like any document) */
  free(w->doc[0]);
  w->doc[0] = strdup(
      "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n"
      "  name: edge\n  annotations:\n"
      "    ingressclass.kubernetes.io/is-default-class: \"true\"\n"
      "spec:\n  controller: edge.dev/ingress-controller\n");
  for (int i = 0; i < 6; i++) {
    free(w->doc[1 + i]);
    w->doc[1 + i] =
        fmt("apiVersion: v1\nkind: Service\nmetadata: {name: svc%d, namespace: %s}\n"
            "spec:\n  clusterIP: 10.96.1.%d\n  ports:\n"
            "  - {name: http, port: 80}\n  - {name: admin, port: 8080}\n",
            i % 3, NS[i / 3], i);
  }
  for (int i = 0; i < 4; i++) {
    char *c = b64(crt[i % 2]), *k = b64(key[i % 2]);
    free(w->doc[7 + i]);
    w->doc[7 + i] =
        fmt("apiVersion: v1\nkind: Secret\nmetadata: {name: sec%d, namespace: %s}\n"
            "type: kubernetes.io/tls\ndata:\n  tls.crt: %s\n  tls.key: %s\n",
            i % 2, NS[i / 2], c, k);
    free(c);
    free(k);
  }
  for (int f = 0; f < N_FILES; f++) {
    manifest_set_init(&w->parsed[f]);
    w->dirty[f] = 1;
  }
}

static void world_free(struct world *w) {
  for (int i = 0; i < N_SLOTS; i++) free(w->doc[i]);
  for (int f = 0; f < N_FILES; f++) manifest_set_free(&w->parsed[f]);
}

/* One random edit; marks the files it touched. Slots 0..10 hold the class,
 * Services and Secrets a world starts with; edits change them in kind
 * (the class stops being the default, a Secret turns bad) more often than
 * they replace them with anything, so worlds keep serving something. */
static void edit(struct world *w) {
  unsigned what = rnd(20);
  int i = (int)(11 + rnd(N_SLOTS - 11));
  if (what < 9) { /* an Ingress appears, changes or replaces another document */
    free(w->doc[i]);
    w->doc[i] = gen_ingress();
  } else if (what < 11) { /* a Secret changes */
    i = 7 + (int)rnd(4);
    free(w->doc[i]);
    w->doc[i] = gen_secret();
  } else if (what < 13) { /* endpoints change */
    free(w->doc[i]);
    w->doc[i] = gen_slice();
  } else if (what == 13) { /* the class */
    i = 0;
    free(w->doc[i]);
    w->doc[i] = rnd(3) ? strdup(
                             "apiVersion: networking.k8s.io/v1\nkind: IngressClass\n"
                             "metadata:\n  name: edge\n  annotations:\n"
                             "    ingressclass.kubernetes.io/is-default-class: \"true\"\n"
                             "spec:\n  controller: edge.dev/ingress-controller\n")
                       : gen_class();
  } else if (what == 14) { /* a Service */
    i = 1 + (int)rnd(6);
    free(w->doc[i]);
    w->doc[i] = gen_service();
  } else if (what == 15) { /* anything else, or nothing */
    i = (int)rnd(N_SLOTS);
    free(w->doc[i]);
    w->doc[i] = rnd(3) ? gen_doc() : NULL;
  } else if (what == 16) { /* to another file */
    i = (int)rnd(N_SLOTS);
    w->dirty[w->file[i]] = 1;
    w->file[i] = (int)rnd(N_FILES);
  } else if (what == 17) { /* a copy of another document (duplicates, re-creations) */
    int j = (int)rnd(N_SLOTS);
    if (j != i && w->doc[j]) {
      free(w->doc[i]);
      w->doc[i] = strdup(w->doc[j]);
    }
  } else { /* a file re-read unchanged: new pointers, same content */
    i = (int)rnd(N_SLOTS);
  }
  w->dirty[w->file[i]] = 1;
}

/* The current documents, files re-parsed only when dirty, in file order. */
static void world_set(struct world *w, struct manifest_set *set) {
  manifest_set_init(set);
  for (int f = 0; f < N_FILES; f++) {
    if (w->dirty[f]) {
      manifest_set_free(&w->parsed[f]);
      manifest_set_init(&w->parsed[f]);
      size_t len = 0;
      for (int i = 0; i < N_SLOTS; i++)
        if (w->doc[i] && w->file[i] == f) len += strlen(w->doc[i]) + 5;
      char *text = calloc(1, len + 1);
      for (int i = 0; i < N_SLOTS; i++)
        if (w->doc[i] && w->file[i] == f) {
          strcat(text, "---\n");
          strcat(text, w->doc[i]);
        }
      char name[32];
      snprintf(name, sizeof(name), "f%d.yaml", f);
      manifest_parse(&w->parsed[f], text, strlen(text), name);
      free(text);
      w->dirty[f] = 0;
    }
    for (size_t d = 0; d < w->parsed[f].n_docs; d++)
      manifest_add(set, w->parsed[f].docs[d].obj, w->parsed[f].docs[d].location);
    for (size_t e = 0; e < w->parsed[f].n_errors; e++)
      manifest_add_error(set, w->parsed[f].errors[e].location, w->parsed[f].errors[e].message);
  }
}

/* ---- the state built from deltas -------------------------------------------------------- */

struct held {
  int type;
  char *name;
  uint8_t *bytes;
  size_t len;
};

struct view {
  struct held *v;
  size_t n;
};

static int held_cmp(const void *a, const void *b) {
  const struct held *x = a, *y = b;
  if (x->type != y->type) return x->type < y->type ? -1 : 1;
  return strcmp(x->name, y->name);
}

static void view_clear(struct view *v) {
  for (size_t i = 0; i < v->n; i++) free(v->v[i].name), free(v->v[i].bytes);
  free(v->v);
  v->v = NULL;
  v->n = 0;
}

static struct held *view_find(struct view *v, int type, const char *name) {
  for (size_t i = 0; i < v->n; i++)
    if (v->v[i].type == type && !strcmp(v->v[i].name, name)) return &v->v[i];
  return NULL;
}

static void view_apply(struct view *v, const struct syncd_update *u) {
  if (u->full) view_clear(v);
  for (size_t i = 0; i < u->n_removed; i++) {
    struct held *h = view_find(v, u->removed[i].type, u->removed[i].name);
    CU_ASSERT_PTR_NOT_NULL(h); /* never removes what it did not give */
    if (!h) continue;
    free(h->name), free(h->bytes);
    *h = v->v[--v->n];
  }
  for (size_t i = 0; i < u->n_upserted; i++) {
    const struct syncd_resource *r = &u->upserted[i];
    struct held *h = view_find(v, r->type, r->name);
    if (!h) {
      v->v = realloc(v->v, (v->n + 1) * sizeof(*v->v));
      h = &v->v[v->n++];
      h->type = r->type;
      h->name = strdup(r->name);
      h->bytes = NULL;
    } else {
      /* an upsert of unchanged bytes is noise the translator must not send */
      CU_ASSERT_FALSE(h->len == r->len && !memcmp(h->bytes, r->bytes, r->len) && !u->full);
      free(h->bytes);
    }
    h->bytes = malloc(r->len ? r->len : 1);
    memcpy(h->bytes, r->bytes, r->len);
    h->len = r->len;
  }
  if (v->n > 1) qsort(v->v, v->n, sizeof(*v->v), held_cmp);
}

/* What the random worlds exercised (so a generator that stopped making,
 * say, TLS hosts cannot leave the comparison vacuous). */
static struct { unsigned tls_hosts, fallbacks, conflicts, endpoints, certificates, ignored; } seen;

static void note_coverage(const struct syncd_desired *d) {
  for (size_t i = 0; i < d->n_resources; i++) {
    Edge__V1__Resource *r =
        edge__v1__resource__unpack(NULL, d->resources[i].len, d->resources[i].bytes);
    if (!r) continue;
    if (r->kind_case == EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST) {
      const char *c = r->virtual_host->certificate;
      if (c[0] && strcmp(c, "default")) seen.tls_hosts++;
      if (r->virtual_host->tls_fallback) seen.fallbacks++;
    } else if (r->kind_case == EDGE__V1__RESOURCE__KIND_CLUSTER) {
      if (r->cluster->n_endpoints > 1) seen.endpoints++;
    } else if (r->kind_case == EDGE__V1__RESOURCE__KIND_CERTIFICATE) {
      if (!r->certificate->is_default) seen.certificates++;
    }
    edge__v1__resource__free_unpacked(r, NULL);
  }
  for (size_t i = 0; i < d->n_rejected; i++)
    seen.conflicts += !!strstr(d->rejected[i].reason, "conflicts with");
  seen.ignored += d->n_ignored > 0;
}

static int same_rejections(const struct syncd_rejection *a, size_t na,
                           const struct syncd_rejection *b, size_t nb) {
  if (na != nb) return 0;
  for (size_t i = 0; i < na; i++)
    if (strcmp(a[i].kind, b[i].kind) || strcmp(a[i].ns, b[i].ns) || strcmp(a[i].name, b[i].name) ||
        strcmp(a[i].reason, b[i].reason) || strcmp(a[i].location, b[i].location))
      return 0;
  return 1;
}

/* 1 when the incremental view equals the from-scratch translation. */
static int agrees(const struct view *v, const struct syncd_update *u, const struct syncd_desired *d,
                  char *why, size_t whylen) {
  if (v->n != d->n_resources)
    return snprintf(why, whylen, "%zu resources, from scratch %zu", v->n, d->n_resources), 0;
  for (size_t i = 0; i < v->n; i++) {
    const struct held *h = &v->v[i];
    const struct syncd_resource *r = &d->resources[i];
    if (h->type != r->type || strcmp(h->name, r->name))
      return snprintf(why, whylen, "resource %zu is %d/%s, from scratch %d/%s", i, h->type, h->name,
                      r->type, r->name),
             0;
    if (h->len != r->len || memcmp(h->bytes, r->bytes, r->len))
      return snprintf(why, whylen, "resource %d/%s differs in its bytes", h->type, h->name), 0;
  }
  const struct syncd_report *rep = u->report;
  if (!same_rejections(rep->rejected, rep->n_rejected, d->rejected, d->n_rejected))
    return snprintf(why, whylen, "rejections differ (%zu vs %zu; first from scratch: %s)",
                    rep->n_rejected, d->n_rejected, d->n_rejected ? d->rejected[0].reason : "none"),
           0;
  if (!same_rejections(rep->ignored, rep->n_ignored, d->ignored, d->n_ignored))
    return snprintf(why, whylen, "ignored differ"), 0;
  if (rep->n_counts != d->n_counts) return snprintf(why, whylen, "counts differ"), 0;
  for (size_t i = 0; i < d->n_counts; i++)
    if (strcmp(rep->counts[i].kind, d->counts[i].kind) ||
        rep->counts[i].count != d->counts[i].count)
      return snprintf(why, whylen, "count of %s differs", d->counts[i].kind), 0;
  if (u->n_served != d->n_served) return snprintf(why, whylen, "served lists differ"), 0;
  for (size_t i = 0; i < d->n_served; i++)
    if (strcmp(u->served[i], d->served_ingresses[i]))
      return snprintf(why, whylen, "served %s vs %s", u->served[i], d->served_ingresses[i]), 0;
  return 1;
}

static void run_seed(uint64_t seed, int steps) {
  rng = seed;
  struct world w;
  world_init(&w);
  struct translate_opts o = {crt[0], key[0]};
  struct translator *t;
  CU_ASSERT_EQUAL_FATAL(translator_new(&o, &t), 0);
  struct view v = {0};
  for (int step = 0; step < steps; step++) {
    if (step) edit(&w);
    struct manifest_set set;
    world_set(&w, &set);
    const struct syncd_update *u;
    CU_ASSERT_EQUAL_FATAL(translator_update(t, &set, &u), 0);
    CU_ASSERT_EQUAL(u->full, step == 0);
    view_apply(&v, u);
    struct syncd_desired *d;
    CU_ASSERT_EQUAL_FATAL(translate_desired(&set, &o, &d), 0);
    char why[512] = "";
    note_coverage(d);
    int ok = agrees(&v, u, d, why, sizeof(why));
    if (!ok) fprintf(stderr, "seed %llu step %d: %s\n", (unsigned long long)seed, step, why);
    CU_ASSERT_TRUE_FATAL(ok);
    /* the same documents again: nothing changes */
    CU_ASSERT_EQUAL_FATAL(translator_update(t, &set, &u), 0);
    CU_ASSERT_EQUAL(u->n_upserted + u->n_removed, 0);
    CU_ASSERT_FALSE(u->report_changed);
    syncd_desired_free(d);
    manifest_set_free(&set);
  }
  view_clear(&v);
  translator_free(t);
  world_free(&w);
}

static void incremental_updates_equal_translating_from_scratch(void) {
  static const uint64_t seeds[] = {1, 2, 3, 0x9e3779b97f4a7c15ULL, 42, 7777, 31337, 123456789};
  memset(&seen, 0, sizeof(seen));
  for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) run_seed(seeds[i], 250);
  fprintf(stderr,
          "coverage: tls_hosts=%u fallbacks=%u conflicts=%u multi-endpoint clusters=%u "
          "certificates=%u ignored=%u\n",
          seen.tls_hosts, seen.fallbacks, seen.conflicts, seen.endpoints, seen.certificates,
          seen.ignored);
  /* about half of what the fixed seeds make today */
  CU_ASSERT(seen.tls_hosts > 70);
  CU_ASSERT(seen.fallbacks > 100);
  CU_ASSERT(seen.conflicts > 200);
  CU_ASSERT(seen.endpoints > 130);
  CU_ASSERT(seen.certificates > 180);
  CU_ASSERT(seen.ignored > 900);
}

/* A change touches only what depends on it: one Ingress among many
 * changes one VirtualHost, not the rest. */
static void one_changed_ingress_updates_only_its_own_resources(void) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fprintf(f,
          "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: edge\n"
          "  annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}\n"
          "spec: {controller: edge.dev/ingress-controller}\n---\n"
          "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: d}\n"
          "spec: {clusterIP: 10.0.0.1, ports: [{name: http, port: 80}]}\n");
  for (int i = 0; i < 200; i++)
    fprintf(f,
            "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\n"
            "metadata: {name: i%d, namespace: d}\nspec:\n  rules:\n  - host: h%d.test\n"
            "    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, "
            "port: {number: 80}}}}]}\n",
            i, i);
  fclose(f);
  text = realloc(text, len + 2); /* room for the inserted character */
  struct manifest_set set;
  manifest_set_init(&set);
  manifest_parse(&set, text, len, "all.yaml");
  struct translator *t;
  CU_ASSERT_EQUAL_FATAL(translator_new(NULL, &t), 0);
  const struct syncd_update *u;
  CU_ASSERT_EQUAL_FATAL(translator_update(t, &set, &u), 0);
  CU_ASSERT_EQUAL(u->n_upserted, 200 + 2); /* vhosts, the cluster, the default backend */
  /* re-parse a copy with one path changed: 202 new pointers, one change */
  char *at = strstr(text, "host: h7.test");
  CU_ASSERT_PTR_NOT_NULL_FATAL(at);
  char *p = strstr(at, "path: /");
  memmove(p + 8, p + 7, strlen(p + 7) + 1); /* "path: /," becomes "path: /x," */
  p[7] = 'x';
  struct manifest_set set2;
  manifest_set_init(&set2);
  manifest_parse(&set2, text, strlen(text), "all.yaml");
  CU_ASSERT_EQUAL_FATAL(translator_update(t, &set2, &u), 0);
  CU_ASSERT_EQUAL(u->objects_changed, 1);
  CU_ASSERT_EQUAL_FATAL(u->n_upserted, 1);
  CU_ASSERT_STRING_EQUAL(u->upserted[0].name, "vh:h7.test");
  CU_ASSERT_EQUAL(u->n_removed, 0);
  CU_ASSERT_FALSE(u->report_changed);
  manifest_set_free(&set);
  manifest_set_free(&set2);
  translator_free(t);
  free(text);
}

static int setup(void) {
  char err[128];
  for (int i = 0; i < 2; i++) {
    const char *cn = i ? "b.test" : "a.test";
    if (cert_generate(&cn, 1, 30, 0, NULL, NULL, &crt[i], &key[i], err, sizeof(err))) return -1;
  }
  return 0;
}

static int teardown(void) {
  for (int i = 0; i < 2; i++) free(crt[i]), free(key[i]);
  return 0;
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("translate_incremental", setup, teardown);
  CU_add_test(s, "incremental_updates_equal_translating_from_scratch",
              incremental_updates_equal_translating_from_scratch);
  CU_add_test(s, "one_changed_ingress_updates_only_its_own_resources",
              one_changed_ingress_updates_only_its_own_resources);
}
