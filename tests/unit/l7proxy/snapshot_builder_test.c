/*
 * snapshot builder: applying deltas to the previous snapshot gives what a
 * build from scratch of the same state gives (a random differential run),
 * a refused push changes nothing, older snapshots never change, unchanged
 * clusters and the TLS store are shared between generations.
 */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cert.h"
#include "config_fixture.h"
#include "l7proxy/snapshot.h"
#include "l7proxy/tls.h"

#define CL EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER
#define VH EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST
#define CE EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE
#define DB EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_DEFAULT_BACKEND

static char *g_cert[3], *g_key[3];
static const char *g_cert_hosts[3] = {"a.com", "b.com", "x.a.com"};

static int make_certs(void) {
  char err[256];
  for (int i = 0; i < 3; i++)
    if (cert_generate(&g_cert_hosts[i], 1, 30, 0, NULL, NULL, &g_cert[i], &g_key[i], err,
                      sizeof(err)) < 0)
      return -1;
  return 0;
}

static int free_certs(void) {
  for (int i = 0; i < 3; i++) free(g_cert[i]), free(g_key[i]);
  return 0;
}

static const char *cluster_of(const struct l7_snapshot *s, const char *host, const char *path) {
  const struct l7_route *r = l7_snapshot_match(s, host, strlen(host), path, strlen(path));
  const struct l7_cluster *c = r ? l7_snapshot_route_cluster(s, r) : NULL;
  return c ? c->name : NULL;
}

static int apply(struct l7_builder *b, uint64_t v, int full, Edge__V1__Resource **up, size_t nup,
                 Edge__V1__ResourceName **rm, size_t nrm, struct l7_snapshot **s, char *err) {
  return l7_builder_apply(b, v, full, up, nup, rm, nrm, s, err, 256);
}

/* ---- sharing between generations ------------------------------------- */

static void a_delta_shares_what_it_does_not_change(void) {
  struct l7_builder *b;
  struct tls_options tls = {0};
  CU_ASSERT_EQUAL_FATAL(l7_builder_new(&tls, &b), 0);
  Edge__V1__Resource *c = fx_cert("ns/a", g_cert[0], g_key[0], 1);
  Edge__V1__Resource *full[] = {
      fx_cluster("ns/web:80", 1, "10.0.0.1", 80u),
      fx_cluster("ns/api:80", 1, "10.0.0.2", 80u),
      fx_vhost("vh:a", "a.com", FX_HOST, 2, fx_route("/", FX_PF, "ns/web:80"),
               fx_route("/api", FX_PF, "ns/api:80")),
      c,
  };
  full[2]->virtual_host->certificate = fx_str("ns/a");
  struct l7_snapshot *s1, *s2, *s3;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(apply(b, 1, 1, full, 4, NULL, 0, &s1, err), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(l7_snapshot_tls(s1));

  /* one cluster's endpoints change */
  Edge__V1__Resource *d1[] = {fx_cluster("ns/api:80", 1, "10.0.0.3", 80u)};
  CU_ASSERT_EQUAL_FATAL(apply(b, 2, 0, d1, 1, NULL, 0, &s2, err), 0);
  const struct l7_cluster *web1 = l7_snapshot_find_cluster(s1, "ns/web:80");
  const struct l7_cluster *api1 = l7_snapshot_find_cluster(s1, "ns/api:80");
  const struct l7_cluster *api2 = l7_snapshot_find_cluster(s2, "ns/api:80");
  CU_ASSERT_PTR_EQUAL(l7_snapshot_find_cluster(s2, "ns/web:80"), web1); /* the same object */
  CU_ASSERT_PTR_NOT_EQUAL(api2, api1);
  CU_ASSERT_EQUAL(api2->slot, api1->slot); /* routes keep naming it by slot */
  CU_ASSERT_STRING_EQUAL(api2->endpoints[0].name, "10.0.0.3:80");
  CU_ASSERT_STRING_EQUAL(api1->endpoints[0].name, "10.0.0.2:80"); /* s1 is untouched */
  const struct l7_route *r = l7_snapshot_match(s2, "a.com", 5, "/api", 4);
  CU_ASSERT_PTR_EQUAL(l7_snapshot_route_cluster(s2, r), api2);
  CU_ASSERT_PTR_EQUAL(l7_snapshot_match(s1, "a.com", 5, "/api", 4), r); /* same vhost object */
  CU_ASSERT_PTR_EQUAL(l7_snapshot_route_cluster(s1, r), api1);
  /* no certificate changed: the same TLS store, one generation with it */
  CU_ASSERT_PTR_EQUAL(l7_snapshot_tls(s2), l7_snapshot_tls(s1));

  /* a certificate changes: a new store in the new snapshot, the old one keeps its own */
  Edge__V1__Resource *d2[] = {fx_cert("ns/a", g_cert[1], g_key[1], 1)};
  CU_ASSERT_EQUAL_FATAL(apply(b, 3, 0, d2, 1, NULL, 0, &s3, err), 0);
  CU_ASSERT_PTR_NOT_EQUAL(l7_snapshot_tls(s3), l7_snapshot_tls(s2));
  CU_ASSERT_EQUAL(tls_store_size(l7_snapshot_tls(s3)), 1);
  CU_ASSERT_STRING_EQUAL(tls_store_select(l7_snapshot_tls(s3), "b.com"), "ns/a");
  CU_ASSERT_PTR_EQUAL(l7_snapshot_find_cluster(s3, "ns/api:80"), api2);
  CU_ASSERT_EQUAL(l7_snapshot_version(s1), 1);
  CU_ASSERT_EQUAL(l7_snapshot_version(s3), 3);
  /* a cluster held outlives every snapshot and the builder */
  const struct l7_cluster *held = l7_cluster_hold(api1);
  l7_snapshot_unref(s1);
  l7_snapshot_unref(s2);
  l7_snapshot_unref(s3);
  l7_builder_free(b);
  fx_reset();
  CU_ASSERT_STRING_EQUAL(held->endpoints[0].name, "10.0.0.2:80");
  l7_cluster_release(held);
}

static void a_refused_push_changes_nothing(void) {
  struct l7_builder *b;
  CU_ASSERT_EQUAL_FATAL(l7_builder_new(NULL, &b), 0);
  Edge__V1__Resource *full[] = {
      fx_cluster("c1", 0),
      fx_cluster("c2", 0),
      fx_vhost("vh:a", "a.com", FX_HOST, 1, fx_route("/", FX_PF, "c1")),
      fx_vhost("vh:w", "*.a.com", FX_WILD, 1, fx_route("/", FX_PF, "c2")),
  };
  struct l7_snapshot *s1, *s = (void *)1;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(apply(b, 1, 1, full, 4, NULL, 0, &s1, err), 0);
  char *before = l7_snapshot_to_json(s1);

  /* removing a cluster still in use, naming its user */
  Edge__V1__ResourceName *rm[] = {fx_name(CL, "c1")};
  CU_ASSERT_EQUAL(apply(b, 2, 0, NULL, 0, rm, 1, &s, err), -EINVAL);
  CU_ASSERT_STRING_EQUAL(err, "cluster c1: removed but still used by virtual host vh:a");
  CU_ASSERT_PTR_NULL(s);
  /* ... unless its user goes in the same push */
  /* a second virtual host for a host already served */
  Edge__V1__Resource *dup[] = {fx_vhost("vh:b", "A.com", FX_HOST, 1, fx_route("/", FX_PF, "c2"))};
  CU_ASSERT_EQUAL(apply(b, 2, 0, dup, 1, NULL, 0, &s, err), -EINVAL);
  CU_ASSERT_STRING_EQUAL(err, "virtual host vh:b: host A.com is also served by virtual host vh:a");
  /* a route to a cluster that does not exist, in a push that also adds a good one */
  Edge__V1__Resource *bad[] = {fx_cluster("c3", 0),
                               fx_vhost("vh:c", "c.com", FX_HOST, 1, fx_route("/x", FX_PF, "c9"))};
  CU_ASSERT_EQUAL(apply(b, 2, 0, bad, 2, NULL, 0, &s, err), -EINVAL);
  CU_ASSERT_STRING_EQUAL(err, "virtual host vh:c: route /x references unknown cluster c9");
  /* a bad endpoint */
  Edge__V1__Resource *ep[] = {fx_cluster("c1", 1, "10.0.0.300", 80u)};
  CU_ASSERT_EQUAL(apply(b, 2, 0, ep, 1, NULL, 0, &s, err), -EINVAL);
  CU_ASSERT_STRING_EQUAL(err, "cluster c1: endpoint 10.0.0.300:80: bad address");
  CU_ASSERT_EQUAL(l7_builder_version(b), 1);
  CU_ASSERT_PTR_EQUAL(l7_builder_snapshot(b), s1);
  char *after = l7_snapshot_to_json(l7_builder_snapshot(b));
  CU_ASSERT_STRING_EQUAL(after, before);
  free(after);

  /* the use counts were rolled back: the same removal with its user goes through */
  Edge__V1__ResourceName *rm2[] = {fx_name(CL, "c1"), fx_name(VH, "vh:a")};
  struct l7_snapshot *s2;
  CU_ASSERT_EQUAL_FATAL(apply(b, 2, 0, NULL, 0, rm2, 2, &s2, err), 0);
  CU_ASSERT_PTR_NULL(cluster_of(s2, "a.com", "/"));
  CU_ASSERT_STRING_EQUAL(cluster_of(s2, "b.a.com", "/"), "c2");
  CU_ASSERT_STRING_EQUAL(cluster_of(s1, "a.com", "/"), "c1"); /* s1 untouched */
  after = l7_snapshot_to_json(s1);
  CU_ASSERT_STRING_EQUAL(after, before);
  free(after);
  free(before);
  /* c1's slot is free again; a new cluster may take it and old snapshots keep theirs */
  Edge__V1__Resource *nc[] = {fx_cluster("c4", 0),
                              fx_vhost("vh:a", "a.com", FX_HOST, 1, fx_route("/", FX_PF, "c4"))};
  struct l7_snapshot *s3;
  CU_ASSERT_EQUAL_FATAL(apply(b, 3, 0, nc, 2, NULL, 0, &s3, err), 0);
  CU_ASSERT_STRING_EQUAL(cluster_of(s3, "a.com", "/"), "c4");
  CU_ASSERT_STRING_EQUAL(cluster_of(s1, "a.com", "/"), "c1");
  l7_snapshot_unref(s1);
  l7_snapshot_unref(s2);
  l7_snapshot_unref(s3);
  l7_builder_free(b);
  fx_reset();
}

/* ---- differential: incremental == from scratch ------------------------ */

/* The universe the random pushes draw from. */
static const char *const k_hosts[] = {"a.com", "b.com", "*.a.com", "*.b.com", "x.a.com", ""};
static const char *const k_paths[] = {"/", "/api", "/api/v1", "/x"};
static const char *const k_req_hosts[] = {"a.com",   "b.com", "x.a.com",   "y.a.com",
                                          "y.b.com", "c.com", "A.COM:8080"};
static const char *const k_req_paths[] = {"/", "/api", "/api/v1", "/apix", "/x/y", "/z"};
#define N_CL 6 /* c0..c5; routes may also name c6, which never exists */
#define N_VH 8
#define N_CE 3

static uint64_t rng_state;
static uint32_t rnd(uint32_t n) {
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(rng_state >> 33) % n;
}

static char *name_of(int type, int i) {
  char buf[32];
  snprintf(buf, sizeof(buf),
           type == CL   ? "ns/c%d:80"
           : type == VH ? "vh:%d"
           : type == CE ? "ns/k%d"
                        : "default",
           i);
  return fx_str(buf);
}

static Edge__V1__Resource *random_resource(int type, int i) {
  if (type == CL) {
    Edge__V1__Resource *r = fx_cluster(name_of(CL, i), 1, "10.0.0.1", 1000u + rnd(3));
    if (rnd(2)) r->cluster->endpoints[0]->address = fx_str("10.0.0.2");
    return r;
  }
  if (type == CE) {
    int k = (int)rnd(N_CE);
    return fx_cert(name_of(CE, i), g_cert[k], g_key[k], rnd(4) == 0);
  }
  if (type == DB) return fx_default(rnd(3) ? name_of(CL, (int)rnd(N_CL + 1)) : "");
  size_t h = rnd(6), n = 1 + rnd(3);
  int match = k_hosts[h][0] == '\0' ? FX_ANY : k_hosts[h][0] == '*' ? FX_WILD : FX_HOST;
  Edge__V1__Resource *r = fx_vhost(name_of(VH, i), k_hosts[h], match, 0);
  r->virtual_host->routes = fx_alloc(n * sizeof(Edge__V1__Route *));
  for (size_t k = 0; k < n; k++) {
    const char *cl = rnd(5) == 0 ? "" : name_of(CL, (int)rnd(N_CL + 1));
    r->virtual_host->routes[r->virtual_host->n_routes++] =
        fx_route(k_paths[(k * 2 + rnd(4)) % 4], rnd(3) ? FX_PF : FX_EX, cl);
  }
  if (rnd(3) == 0) r->virtual_host->certificate = name_of(CE, (int)rnd(N_CE + 1));
  return r;
}

/* The model: the state the builder should hold, one slot per name. */
struct model {
  Edge__V1__Resource *cl[N_CL], *vh[N_VH], *ce[N_CE], *db;
};

static Edge__V1__Resource **slot_of(struct model *m, int type, int i) {
  return type == CL ? &m->cl[i] : type == VH ? &m->vh[i] : type == CE ? &m->ce[i] : &m->db;
}

static size_t model_list(struct model *m, Edge__V1__Resource **out) {
  size_t n = 0;
  for (int i = 0; i < N_CL; i++)
    if (m->cl[i]) out[n++] = m->cl[i];
  for (int i = 0; i < N_VH; i++)
    if (m->vh[i]) out[n++] = m->vh[i];
  for (int i = 0; i < N_CE; i++)
    if (m->ce[i]) out[n++] = m->ce[i];
  if (m->db) out[n++] = m->db;
  return n;
}

/* What a snapshot does, as text: its dump without cluster slots (which
 * depend on history), every lookup, the TLS choice per server name. */
static char *fingerprint(const struct l7_snapshot *s) {
  char *json = l7_snapshot_to_json(s), *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  for (char *line = strtok(json, "\n"); line; line = strtok(NULL, "\n"))
    if (!strstr(line, "\"slot\":")) fprintf(f, "%s\n", line);
  free(json);
  for (size_t h = 0; h < sizeof(k_req_hosts) / sizeof(*k_req_hosts); h++)
    for (size_t p = 0; p < sizeof(k_req_paths) / sizeof(*k_req_paths); p++) {
      const char *host = k_req_hosts[h], *path = k_req_paths[p];
      const struct l7_route *r = l7_snapshot_match(s, host, strlen(host), path, strlen(path));
      const struct l7_cluster *c = r ? l7_snapshot_route_cluster(s, r) : NULL;
      fprintf(f, "%s%s -> %s %s %s\n", host, path, r ? r->vhost : "-", r ? r->path : "-",
              c ? c->name : "-");
    }
  const struct l7_cluster *d = l7_snapshot_default_cluster(s);
  fprintf(f, "default -> %s\n", d ? d->name : "-");
  struct tls_store *t = l7_snapshot_tls(s);
  fprintf(f, "tls %zu:", tls_store_size(t));
  for (size_t h = 0; h < sizeof(k_req_hosts) / sizeof(*k_req_hosts); h++) {
    const char *sel = tls_store_select(t, k_req_hosts[h]);
    fprintf(f, " %s", sel ? sel : "-");
  }
  const char *none = tls_store_select(t, NULL);
  fprintf(f, " %s\n", none ? none : "-");
  fclose(f);
  return out;
}

static int g_steps_ok, g_steps_refused, g_full_pushes;

static void run_seed(uint64_t seed, int steps) {
  rng_state = seed;
  struct tls_options tls = {0};
  struct l7_builder *b;
  CU_ASSERT_EQUAL_FATAL(l7_builder_new(&tls, &b), 0);
  struct model m = {0};
  struct l7_snapshot *prev = NULL;
  char *prev_fp = NULL;
  for (int step = 1; step <= steps; step++) {
    struct model next = m;
    Edge__V1__Resource *up[16];
    Edge__V1__ResourceName *rm[16];
    size_t nup = 0, nrm = 0;
    int full = rnd(25) == 0;
    int nops = 1 + (int)rnd(3);
    Edge__V1__Resource **touched[16];
    int types[16], idx[16], nt = 0;
    for (int k = 0; k < nops; k++) {
      int type = (int[]){CL, CL, VH, VH, VH, CE, DB}[rnd(7)];
      int i = (int)rnd(type == CL ? N_CL : type == VH ? N_VH : type == CE ? N_CE : 1);
      Edge__V1__Resource **at = slot_of(&next, type, i);
      *at = rnd(3) == 0 ? NULL : random_resource(type, i); /* removal: absent names are fine */
      int seen = 0;
      for (int t = 0; t < nt; t++) seen |= touched[t] == at;
      if (!seen) touched[nt] = at, types[nt] = type, idx[nt] = i, nt++;
    }
    for (int t = 0; t < nt; t++) { /* the delta: each touched name once, as it ends up */
      if (*touched[t])
        up[nup++] = *touched[t];
      else
        rm[nrm++] = fx_name(types[t], name_of(types[t], idx[t]));
    }
    Edge__V1__Resource *all[N_CL + N_VH + N_CE + 1];
    size_t nall = model_list(&next, all);
    struct l7_snapshot *s = NULL, *scratch = NULL;
    char err[256] = "", err2[256] = "";
    int rc = full ? apply(b, (uint64_t)step, 1, all, nall, NULL, 0, &s, err)
                  : apply(b, (uint64_t)step, 0, up, nup, rm, nrm, &s, err);
    struct l7_builder *sb;
    CU_ASSERT_EQUAL_FATAL(l7_builder_new(&tls, &sb), 0);
    int rc2 = apply(sb, (uint64_t)step, 1, all, nall, NULL, 0, &scratch, err2);
    if ((rc == 0) != (rc2 == 0)) {
      fprintf(stderr, "seed %llu step %d: incremental %s (%s), from scratch %s (%s)\n",
              (unsigned long long)seed, step, rc ? "refused" : "applied", err,
              rc2 ? "refused" : "applied", err2);
      CU_FAIL_FATAL("incremental and from-scratch disagree on accepting a push");
    }
    if (rc == 0) {
      char *a = fingerprint(s), *z = fingerprint(scratch);
      if (strcmp(a, z) != 0) {
        fprintf(stderr, "seed %llu step %d: incremental\n%s\nfrom scratch\n%s\n",
                (unsigned long long)seed, step, a, z);
        CU_FAIL_FATAL("incremental snapshot differs from the one built from scratch");
      }
      free(z);
      m = next;
      g_steps_ok++;
      g_full_pushes += full;
      /* the previous snapshot did not change under the new one */
      if (prev) {
        char *again = fingerprint(prev);
        if (strcmp(again, prev_fp) != 0) {
          fprintf(stderr, "seed %llu step %d: the previous snapshot changed\n",
                  (unsigned long long)seed, step);
          CU_FAIL_FATAL("an older snapshot changed");
        }
        free(again);
      }
      l7_snapshot_unref(prev);
      free(prev_fp);
      prev = s;
      prev_fp = a;
    } else {
      CU_ASSERT_EQUAL(l7_builder_version(b), prev ? l7_snapshot_version(prev) : 0);
      CU_ASSERT_PTR_EQUAL(l7_builder_snapshot(b), prev);
      g_steps_refused++;
    }
    l7_snapshot_unref(scratch);
    l7_builder_free(sb);
  }
  l7_snapshot_unref(prev);
  free(prev_fp);
  l7_builder_free(b);
  fx_reset();
}

static void random_deltas_give_what_a_build_from_scratch_gives(void) {
  g_steps_ok = g_steps_refused = g_full_pushes = 0;
  for (uint64_t seed = 1; seed <= 8; seed++) run_seed(seed, 300);
  /* the run exercised both outcomes, not just one */
  CU_ASSERT(g_steps_ok > 600);
  CU_ASSERT(g_steps_refused > 150);
  CU_ASSERT(g_full_pushes > 20);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("snapshot_builder", make_certs, free_certs);
  CU_add_test(s, "a_delta_shares_what_it_does_not_change", a_delta_shares_what_it_does_not_change);
  CU_add_test(s, "a_refused_push_changes_nothing", a_refused_push_changes_nothing);
  CU_add_test(s, "random_deltas_give_what_a_build_from_scratch_gives",
              random_deltas_give_what_a_build_from_scratch_gives);
}
