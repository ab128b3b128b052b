/* snapshot: building from resources, rejecting bad ones with a reason,
 * the JSON dump without keys, and publish/current under threads. */
#include "l7proxy/snapshot.h"

#include <CUnit/CUnit.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "common/cert.h"
#include "config_fixture.h"

static const struct l7_route *lookup(const struct l7_snapshot *s, const char *host,
                                     const char *path) {
  return l7_snapshot_match(s, host, strlen(host), path, strlen(path));
}

static struct l7_snapshot *build_ok(uint64_t version, Edge__V1__Resource **res, size_t n) {
  struct l7_snapshot *s = NULL;
  char err[256] = "";
  int rc = l7_snapshot_build(version, res, n, &s, err, sizeof(err));
  if (rc != 0) fprintf(stderr, "unexpected build failure: %s\n", err);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  return s;
}

static void builds_routes_and_clusters_from_resources(void) {
  Edge__V1__Resource *res[] = {
      fx_cluster("default/web:80", 2, "10.0.0.1", 8080u, "::1", 8081u),
      fx_cluster("default/api:80", 1, "10.0.0.2", 9000u),
      fx_vhost("vh:shop", "shop.example.com", FX_HOST, 2, fx_route("/", FX_PF, "default/web:80"),
               fx_route("/api", FX_PF, "default/api:80")),
      fx_default("default/web:80"),
  };
  struct l7_snapshot *s = build_ok(7, res, 4);
  fx_reset(); /* the snapshot owns copies: the inputs may go */
  CU_ASSERT_EQUAL(l7_snapshot_version(s), 7);
  const struct l7_route *r = lookup(s, "Shop.Example.com:80", "/api/v1");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_STRING_EQUAL(l7_snapshot_route_cluster(s, r)->name, "default/api:80");
  CU_ASSERT_STRING_EQUAL(r->cluster_name, "default/api:80");
  CU_ASSERT_STRING_EQUAL(r->vhost, "vh:shop");
  CU_ASSERT_STRING_EQUAL(r->path, "/api");
  CU_ASSERT_EQUAL(r->path_type, FX_PF);
  CU_ASSERT_EQUAL(r->host_match, FX_HOST);
  r = lookup(s, "shop.example.com", "/x");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  const struct l7_cluster *web = l7_snapshot_route_cluster(s, r);
  CU_ASSERT_PTR_NOT_NULL_FATAL(web);
  CU_ASSERT_STRING_EQUAL(web->name, "default/web:80");
  CU_ASSERT_EQUAL_FATAL(web->n_endpoints, 2);
  CU_ASSERT_STRING_EQUAL(web->endpoints[0].name, "10.0.0.1:8080");
  CU_ASSERT_STRING_EQUAL(web->endpoints[1].name, "[::1]:8081");
  CU_ASSERT_EQUAL(web->endpoints[0].addr.ss_family, AF_INET);
  CU_ASSERT_EQUAL(web->endpoints[1].addr.ss_family, AF_INET6);
  CU_ASSERT_EQUAL(web->endpoints[0].weight, 1);
  CU_ASSERT_EQUAL(web->connect_timeout_ms, L7_DEFAULT_CONNECT_TIMEOUT_MS);
  CU_ASSERT_EQUAL(web->idle_timeout_ms, L7_DEFAULT_IDLE_TIMEOUT_MS);
  CU_ASSERT_EQUAL(web->max_idle_per_endpoint, L7_DEFAULT_MAX_IDLE_PER_ENDPOINT);
  CU_ASSERT_PTR_NULL(lookup(s, "other.example.com", "/"));
  CU_ASSERT_PTR_EQUAL(l7_snapshot_default_cluster(s), web);
  l7_snapshot_unref(s);
}

static void cluster_slots_are_distinct_and_clusters_sorted_by_name(void) {
  Edge__V1__Resource *res[] = {fx_cluster("c", 0), fx_cluster("a", 0), fx_cluster("b", 0)};
  struct l7_snapshot *s = build_ok(1, res, 3);
  CU_ASSERT_EQUAL_FATAL(l7_snapshot_n_clusters(s), 3);
  uint32_t seen = 0;
  for (size_t i = 0; i < 3; i++) {
    uint32_t slot = l7_snapshot_cluster(s, i)->slot;
    CU_ASSERT_FATAL(slot < 3);
    CU_ASSERT_FALSE(seen & (1u << slot));
    seen |= 1u << slot;
  }
  CU_ASSERT_STRING_EQUAL(l7_snapshot_cluster(s, 0)->name, "a");
  CU_ASSERT_STRING_EQUAL(l7_snapshot_find_cluster(s, "c")->name, "c");
  CU_ASSERT_PTR_NULL(l7_snapshot_find_cluster(s, "d"));
  CU_ASSERT_PTR_NULL(l7_snapshot_default_cluster(s));
  l7_snapshot_unref(s);
  fx_reset();
}

static void route_options_and_redirect_are_exposed(void) {
  Edge__V1__Route *rt = fx_route("/old", FX_PF, "");
  Edge__V1__RouteOptions *o = fx_alloc(sizeof(*o));
  edge__v1__route_options__init(o);
  Edge__V1__Redirect *rd = fx_alloc(sizeof(*rd));
  edge__v1__redirect__init(rd);
  rd->path = fx_str("/new");
  rd->status = 301;
  o->redirect = rd;
  o->max_body_bytes = 1024;
  o->retries = 2;
  o->rewrite_prefix = fx_str("/v2");
  rt->options = o;
  Edge__V1__SourceRef *src = fx_alloc(sizeof(*src));
  edge__v1__source_ref__init(src);
  src->namespace_ = fx_str("shop");
  src->name = fx_str("front");
  rt->source = src;
  Edge__V1__Resource *res[] = {fx_vhost("vh:any", "", FX_ANY, 1, rt)};
  struct l7_snapshot *s = build_ok(1, res, 1);
  fx_reset();
  const struct l7_route *r = lookup(s, "whatever", "/old/page");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_PTR_NULL(l7_snapshot_route_cluster(s, r));
  CU_ASSERT_PTR_NOT_NULL_FATAL(r->redirect);
  CU_ASSERT_STRING_EQUAL(r->redirect->path, "/new");
  CU_ASSERT_EQUAL(r->redirect->status, 301);
  CU_ASSERT_EQUAL(r->max_body_bytes, 1024);
  CU_ASSERT_EQUAL(r->retries, 2);
  CU_ASSERT_STRING_EQUAL(r->rewrite_prefix, "/v2");
  CU_ASSERT_STRING_EQUAL(r->source, "shop/front");
  CU_ASSERT_FALSE(r->host_has_tls);
  l7_snapshot_unref(s);
}

static void unknown_cluster_is_rejected_with_reason(void) {
  Edge__V1__Resource *res[] = {
      fx_cluster("default/web:80", 0),
      fx_vhost("vh:a", "a.com", FX_HOST, 1, fx_route("/api", FX_PF, "default/y:80")),
  };
  struct l7_snapshot *s = (void *)1;
  char err[256] = "";
  CU_ASSERT_EQUAL(l7_snapshot_build(1, res, 2, &s, err, sizeof(err)), -EINVAL);
  CU_ASSERT_PTR_NULL(s);
  CU_ASSERT_STRING_EQUAL(err,
                         "virtual host vh:a: route /api references unknown cluster default/y:80");
  fx_reset();
}

static void bad_endpoint_address_is_rejected_with_reason(void) {
  Edge__V1__Resource *res[] = {fx_cluster("default/x:80", 1, "1.2.3", 80u)};
  struct l7_snapshot *s;
  char err[256] = "";
  CU_ASSERT_EQUAL(l7_snapshot_build(1, res, 1, &s, err, sizeof(err)), -EINVAL);
  CU_ASSERT_STRING_EQUAL(err, "cluster default/x:80: endpoint 1.2.3:80: bad address");
  Edge__V1__Resource *res2[] = {fx_cluster("default/x:80", 1, "1.2.3.4", 70000u)};
  CU_ASSERT_EQUAL(l7_snapshot_build(1, res2, 1, &s, err, sizeof(err)), -EINVAL);
  CU_ASSERT_STRING_EQUAL(err, "cluster default/x:80: endpoint 1.2.3.4:70000: bad port");
  fx_reset();
}

static void endpoints_not_ready_are_left_out(void) {
  Edge__V1__Resource *c = fx_cluster("c", 2, "10.0.0.1", 80u, "10.0.0.2", 80u);
  c->cluster->endpoints[0]->ready = 0;
  c->cluster->endpoints[1]->weight = 5;
  struct l7_snapshot *s = build_ok(1, &c, 1);
  const struct l7_cluster *cl = l7_snapshot_cluster(s, 0);
  CU_ASSERT_EQUAL_FATAL(cl->n_endpoints, 1);
  CU_ASSERT_STRING_EQUAL(cl->endpoints[0].name, "10.0.0.2:80");
  CU_ASSERT_EQUAL(cl->endpoints[0].weight, 5);
  l7_snapshot_unref(s);
  fx_reset();
}

static void duplicate_and_nameless_resources_are_rejected(void) {
  struct l7_snapshot *s;
  char err[256] = "";
  Edge__V1__Resource *dup[] = {fx_cluster("c", 0), fx_cluster("c", 0)};
  CU_ASSERT_EQUAL(l7_snapshot_build(1, dup, 2, &s, err, sizeof(err)), -EINVAL);
  CU_ASSERT_STRING_EQUAL(err, "cluster c: defined twice");
  Edge__V1__Resource *noname[] = {fx_cluster("", 0)};
  CU_ASSERT_EQUAL(l7_snapshot_build(1, noname, 1, &s, err, sizeof(err)), -EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "empty name"));
  Edge__V1__Resource empty = EDGE__V1__RESOURCE__INIT;
  Edge__V1__Resource *nokind[] = {&empty};
  CU_ASSERT_EQUAL(l7_snapshot_build(1, nokind, 1, &s, err, sizeof(err)), -EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "no kind"));
  fx_reset();
}

static void unknown_default_backend_cluster_is_rejected(void) {
  Edge__V1__Resource *res[] = {fx_default("nope")};
  struct l7_snapshot *s;
  char err[256] = "";
  CU_ASSERT_EQUAL(l7_snapshot_build(1, res, 1, &s, err, sizeof(err)), -EINVAL);
  CU_ASSERT_STRING_EQUAL(err, "default backend default: references unknown cluster nope");
  fx_reset();
}

static void malformed_host_pattern_is_rejected_naming_the_vhost(void) {
  Edge__V1__Resource *res[] = {fx_vhost("vh:bad", "a.*.com", FX_WILD, 1, fx_route("/", FX_PF, ""))};
  struct l7_snapshot *s;
  char err[256] = "";
  CU_ASSERT_EQUAL(l7_snapshot_build(1, res, 1, &s, err, sizeof(err)), -EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "virtual host vh:bad"));
  fx_reset();
}

static char *cert_a, *key_a, *cert_b, *key_b;

static int make_certs(void) {
  const char *na[] = {"shop.example.com"}, *nb[] = {"other.example.com"};
  char err[256];
  if (cert_generate(na, 1, 30, 0, NULL, NULL, &cert_a, &key_a, err, sizeof(err)) < 0) return -1;
  if (cert_generate(nb, 1, 30, 0, NULL, NULL, &cert_b, &key_b, err, sizeof(err)) < 0) return -1;
  return 0;
}

static int free_certs(void) {
  free(cert_a);
  free(key_a);
  free(cert_b);
  free(key_b);
  return 0;
}

static void certificate_is_usable_and_marks_host_tls(void) {
  Edge__V1__Resource *cert = fx_cert("default/shop", cert_a, key_a, 1);
  cert->certificate->n_sni_names = 1;
  cert->certificate->sni_names = fx_alloc(sizeof(char *));
  cert->certificate->sni_names[0] = fx_str("shop.example.com");
  Edge__V1__Resource *vh =
      fx_vhost("vh:shop", "shop.example.com", FX_HOST, 1, fx_route("/", FX_PF, ""));
  vh->virtual_host->certificate = fx_str("default/shop");
  Edge__V1__Resource *res[] = {cert, vh};
  struct l7_snapshot *s = build_ok(1, res, 2);
  fx_reset();
  CU_ASSERT_EQUAL_FATAL(l7_snapshot_n_certificates(s), 1);
  const struct l7_certificate *c = l7_snapshot_certificate(s, 0);
  CU_ASSERT_STRING_EQUAL(c->name, "default/shop");
  CU_ASSERT_EQUAL_FATAL(c->n_sni_names, 1);
  CU_ASSERT_STRING_EQUAL(c->sni_names[0], "shop.example.com");
  CU_ASSERT_EQUAL(c->cert_pem_len, strlen(cert_a));
  CU_ASSERT_EQUAL(memcmp(c->key_pem, key_a, c->key_pem_len), 0);
  CU_ASSERT(c->not_after > 0); /* filled from the certificate when 0 */
  CU_ASSERT_PTR_EQUAL(l7_snapshot_default_certificate(s), c);
  CU_ASSERT_TRUE(lookup(s, "shop.example.com", "/")->host_has_tls);
  l7_snapshot_unref(s);
}

/* The TLS store judges pushed certificates (one OpenSSL refuses costs
 * only its names, which get the default): a push never fails on one.
 * (--config files are checked at load: config_store_test.) */
static void certificate_with_foreign_key_does_not_fail_the_snapshot(void) {
  Edge__V1__Resource *res[] = {fx_cert("default/shop", cert_a, key_b, 0)};
  struct l7_builder *b;
  CU_ASSERT_EQUAL_FATAL(l7_builder_new(NULL, &b), 0);
  struct l7_snapshot *s = NULL;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(l7_builder_apply(b, 1, 1, res, 1, NULL, 0, &s, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(l7_snapshot_n_certificates(s), 1);
  l7_snapshot_unref(s);
  l7_builder_free(b);
  fx_reset();
}

static void vhost_naming_unknown_certificate_is_rejected(void) {
  Edge__V1__Resource *vh = fx_vhost("vh:a", "a.com", FX_HOST, 0);
  vh->virtual_host->certificate = fx_str("default/missing");
  struct l7_snapshot *s;
  char err[256] = "";
  CU_ASSERT_EQUAL(l7_snapshot_build(1, &vh, 1, &s, err, sizeof(err)), -EINVAL);
  CU_ASSERT_STRING_EQUAL(err, "virtual host vh:a: references unknown certificate default/missing");
  fx_reset();
}

static void json_dump_has_config_but_no_key_material(void) {
  Edge__V1__Resource *res[] = {
      fx_cert("default/shop", cert_a, key_a, 1),
      fx_cluster("default/web:80", 1, "10.0.0.1", 8080u),
      fx_vhost("vh:shop", "shop.example.com", FX_HOST, 1, fx_route("/", FX_PF, "default/web:80")),
  };
  struct l7_snapshot *s = build_ok(42, res, 3);
  fx_reset();
  char *json = l7_snapshot_to_json(s);
  CU_ASSERT_PTR_NOT_NULL_FATAL(json);
  CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"version\": 42"));
  CU_ASSERT_PTR_NOT_NULL(strstr(json, "10.0.0.1:8080"));
  CU_ASSERT_PTR_NOT_NULL(strstr(json, "PATH_TYPE_PREFIX"));
  CU_ASSERT_PTR_NOT_NULL(strstr(json, "default/shop"));
  CU_ASSERT_PTR_NULL(strstr(json, "PRIVATE KEY"));
  CU_ASSERT_PTR_NULL(strstr(json, "BEGIN"));
  free(json);
  l7_snapshot_unref(s);
}

/* ---- publish / current from several threads --------------------------- */

static atomic_int stop_readers;
static atomic_long lookups_done;

/* arg NULL: take current() per lookup; else keep a reference and refresh
 * it only when the generation changes (the worker fast path). */
static void *reader(void *arg) {
  uint64_t last = 0, seen_gen = 0;
  long bad = 0;
  struct l7_snapshot *mine = NULL;
  while (!atomic_load(&stop_readers)) {
    struct l7_snapshot *s;
    if (arg) {
      uint64_t g = l7_snapshot_generation();
      if (!mine || g != seen_gen) {
        seen_gen = g;
        l7_snapshot_unref(mine);
        mine = l7_snapshot_current();
      }
      s = l7_snapshot_ref(mine);
    } else {
      s = l7_snapshot_current();
    }
    if (!s) continue;
    /* Versions only move forward and every snapshot routes. */
    if (l7_snapshot_version(s) < last) bad++;
    last = l7_snapshot_version(s);
    const struct l7_route *r = lookup(s, "a.com", "/x");
    const struct l7_cluster *c = l7_snapshot_route_cluster(s, r);
    if (!c || strcmp(c->name, "c") != 0) bad++;
    l7_snapshot_unref(s);
    atomic_fetch_add(&lookups_done, 1);
  }
  l7_snapshot_unref(mine);
  return (void *)bad;
}

static void publish_and_current_are_safe_from_four_threads(void) {
  Edge__V1__Resource *res[] = {fx_cluster("c", 1, "127.0.0.1", 1u),
                               fx_vhost("vh", "a.com", FX_HOST, 1, fx_route("/", FX_PF, "c"))};
  atomic_store(&stop_readers, 0);
  atomic_store(&lookups_done, 0);
  l7_snapshot_publish(build_ok(1, res, 2));
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, reader, i % 2 ? &t : NULL), 0);
  for (uint64_t v = 2; v <= 300; v++) {
    l7_snapshot_publish(build_ok(v, res, 2));
    /* Give readers a chance to overlap each swap, bounded in count. */
    for (int spin = 0; spin < 1000 && atomic_load(&lookups_done) < (long)v; spin++) sched_yield();
  }
  atomic_store(&stop_readers, 1);
  for (int i = 0; i < 4; i++) {
    void *bad;
    pthread_join(t[i], &bad);
    CU_ASSERT_EQUAL((long)bad, 0);
  }
  struct l7_snapshot *cur = l7_snapshot_current();
  CU_ASSERT_EQUAL(l7_snapshot_version(cur), 300);
  uint64_t gen = l7_snapshot_generation();
  /* A holder keeps its snapshot after it stops being current. */
  l7_snapshot_publish(NULL);
  CU_ASSERT_EQUAL(l7_snapshot_generation(), gen + 1);
  CU_ASSERT_PTR_NULL(l7_snapshot_current());
  CU_ASSERT_PTR_NOT_NULL(lookup(cur, "a.com", "/"));
  l7_snapshot_unref(cur);
  fx_reset();
}

/* Issue 15: a rewrite target that would inject into the upstream request
 * line is refused where a pushed resource enters the builder (the same
 * common/validate check syncd makes), in a full push and in a delta; the
 * builder keeps its state. */
static void crlf_rewrite_is_refused_in_full_and_delta_pushes(void) {
  struct l7_builder *b;
  CU_ASSERT_EQUAL_FATAL(l7_builder_new(NULL, &b), 0);
  Edge__V1__Resource *ok[] = {fx_vhost("vh:a", "a.test", FX_HOST, 1, fx_route("/", FX_PF, ""))};
  struct l7_snapshot *s = NULL;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(l7_builder_apply(b, 1, 1, ok, 1, NULL, 0, &s, err, sizeof(err)), 0);
  l7_snapshot_unref(s);
  for (int full = 1; full >= 0; full--) {
    Edge__V1__Route *rt = fx_route("/", FX_PF, "");
    Edge__V1__RouteOptions *o = fx_alloc(sizeof(*o));
    edge__v1__route_options__init(o);
    o->rewrite_prefix = fx_str("/x HTTP/1.1\r\nX-Injected: yes\r\nX-Pad: a");
    rt->options = o;
    Edge__V1__Resource *bad[] = {fx_vhost("vh:a", "a.test", FX_HOST, 1, rt)};
    s = NULL;
    err[0] = '\0';
    CU_ASSERT_EQUAL(l7_builder_apply(b, 2, full, bad, 1, NULL, 0, &s, err, sizeof(err)), -EINVAL);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "rewrite"));
    CU_ASSERT_PTR_NULL(strchr(err, '\r'));
    CU_ASSERT_EQUAL(l7_builder_version(b), 1);
  }
  l7_builder_free(b);
  fx_reset();
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("snapshot", NULL, NULL);
#define T(f) CU_add_test(s, #f, f)
  T(builds_routes_and_clusters_from_resources);
  T(cluster_slots_are_distinct_and_clusters_sorted_by_name);
  T(route_options_and_redirect_are_exposed);
  T(crlf_rewrite_is_refused_in_full_and_delta_pushes);
  T(unknown_cluster_is_rejected_with_reason);
  T(bad_endpoint_address_is_rejected_with_reason);
  T(endpoints_not_ready_are_left_out);
  T(duplicate_and_nameless_resources_are_rejected);
  T(unknown_default_backend_cluster_is_rejected);
  T(malformed_host_pattern_is_rejected_naming_the_vhost);
  T(publish_and_current_are_safe_from_four_threads);
  CU_pSuite c = CU_add_suite("snapshot_certificates", make_certs, free_certs);
  CU_add_test(c, "certificate_is_usable_and_marks_host_tls",
              certificate_is_usable_and_marks_host_tls);
  CU_add_test(c, "certificate_with_foreign_key_does_not_fail_the_snapshot",
              certificate_with_foreign_key_does_not_fail_the_snapshot);
  CU_add_test(c, "vhost_naming_unknown_certificate_is_rejected",
              vhost_naming_unknown_certificate_is_rejected);
  CU_add_test(c, "json_dump_has_config_but_no_key_material",
              json_dump_has_config_but_no_key_material);
#undef T
}
