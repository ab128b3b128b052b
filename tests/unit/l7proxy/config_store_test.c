/* config_store: full and delta pushes applied all or nothing, the on-disk
 * cache, --config files (binary and JSON) and the JSON mapping itself. */
#include "l7proxy/config_store.h"

#include <CUnit/CUnit.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cert.h"
#include "config_fixture.h"
#include "common/pb_json.h"

static Edge__V1__Push push_of(uint64_t version, int full, uint64_t base) {
  Edge__V1__Push p = EDGE__V1__PUSH__INIT;
  p.version = version;
  p.full = full;
  p.base_version = base;
  p.nonce = "n";
  return p;
}

static const char *route_cluster(struct l7_snapshot *s, const char *host, const char *path) {
  const struct l7_route *r = l7_snapshot_match(s, host, strlen(host), path, strlen(path));
  const struct l7_cluster *c = l7_snapshot_route_cluster(s, r);
  return c ? c->name : NULL;
}

static char *tmpdir(void) {
  const char *base = getenv("TEST_TMPDIR");
  char *t = NULL;
  if (asprintf(&t, "%s/cfgXXXXXX", base ? base : "/tmp") < 0) return NULL;
  if (!mkdtemp(t)) {
    free(t);
    return NULL;
  }
  return t;
}

/* Applies a full state of clusters a, b and a vhost routing / to a. */
static struct l7_config_store *store_with_full_state(const char *cache_dir) {
  struct l7_config_store *st;
  CU_ASSERT_EQUAL_FATAL(l7_config_store_new(cache_dir, &st), 0);
  Edge__V1__Resource *res[] = {fx_cluster("a", 1, "127.0.0.1", 1001u),
                               fx_cluster("b", 1, "127.0.0.1", 1002u),
                               fx_vhost("vh:x", "x.com", FX_HOST, 1, fx_route("/", FX_PF, "a"))};
  Edge__V1__Push p = push_of(1, 1, 0);
  p.upserted = res;
  p.n_upserted = 3;
  struct l7_snapshot *s;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(l7_config_store_apply(st, &p, &s, err, sizeof(err)), 0);
  CU_ASSERT_STRING_EQUAL(route_cluster(s, "x.com", "/"), "a");
  l7_snapshot_unref(s);
  fx_reset();
  return st;
}

static void full_then_delta_apply(void) {
  struct l7_config_store *st = store_with_full_state(NULL);
  CU_ASSERT_EQUAL(l7_config_store_version(st), 1);
  CU_ASSERT_EQUAL(l7_config_store_size(st), 3);
  /* Delta: re-point x.com to b and add y.com. */
  Edge__V1__Resource *res[] = {fx_vhost("vh:x", "x.com", FX_HOST, 1, fx_route("/", FX_PF, "b")),
                               fx_vhost("vh:y", "y.com", FX_HOST, 1, fx_route("/", FX_PF, "a"))};
  Edge__V1__Push p = push_of(2, 0, 1);
  p.upserted = res;
  p.n_upserted = 2;
  struct l7_snapshot *s;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(l7_config_store_apply(st, &p, &s, err, sizeof(err)), 0);
  fx_reset();
  CU_ASSERT_EQUAL(l7_snapshot_version(s), 2);
  CU_ASSERT_EQUAL(l7_config_store_version(st), 2);
  CU_ASSERT_EQUAL(l7_config_store_size(st), 4);
  CU_ASSERT_STRING_EQUAL(route_cluster(s, "x.com", "/"), "b");
  CU_ASSERT_STRING_EQUAL(route_cluster(s, "y.com", "/"), "a");
  l7_snapshot_unref(s);
  l7_config_store_free(st);
}

static void delta_removal_drops_the_named_resources(void) {
  struct l7_config_store *st = store_with_full_state(NULL);
  Edge__V1__ResourceName *rm[] = {
      fx_name(EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER, "b"),
      fx_name(EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER, "never-existed")};
  Edge__V1__Push p = push_of(2, 0, 1);
  p.removed = rm;
  p.n_removed = 2;
  struct l7_snapshot *s;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(l7_config_store_apply(st, &p, &s, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(l7_config_store_size(st), 2);
  CU_ASSERT_PTR_NULL(l7_snapshot_find_cluster(s, "b"));
  CU_ASSERT_PTR_NULL(l7_config_store_get(st, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER, "b"));
  CU_ASSERT_PTR_NOT_NULL(
      l7_config_store_get(st, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER, "a"));
  l7_snapshot_unref(s);
  /* Removing a cluster a route still uses is rejected and changes nothing. */
  Edge__V1__ResourceName *rm2[] = {fx_name(EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER, "a")};
  Edge__V1__Push p2 = push_of(3, 0, 2);
  p2.removed = rm2;
  p2.n_removed = 1;
  CU_ASSERT_EQUAL(l7_config_store_apply(st, &p2, &s, err, sizeof(err)), -EINVAL);
  CU_ASSERT_STRING_EQUAL(err, "cluster a: removed but still used by virtual host vh:x");
  CU_ASSERT_EQUAL(l7_config_store_version(st), 2);
  CU_ASSERT_EQUAL(l7_config_store_size(st), 2);
  fx_reset();
  l7_config_store_free(st);
}

static void rejected_push_keeps_previous_state(void) {
  struct l7_config_store *st = store_with_full_state(NULL);
  uint8_t *before, *after;
  size_t blen, alen;
  CU_ASSERT_EQUAL_FATAL(l7_config_store_serialize(st, &before, &blen), 0);
  Edge__V1__Resource *res[] = {
      fx_cluster("c", 1, "127.0.0.1", 1003u),
      fx_vhost("vh:x", "x.com", FX_HOST, 1, fx_route("/", FX_PF, "missing"))};
  Edge__V1__Push p = push_of(2, 0, 1);
  p.upserted = res;
  p.n_upserted = 2;
  struct l7_snapshot *s = (void *)1;
  char err[256] = "";
  CU_ASSERT_EQUAL(l7_config_store_apply(st, &p, &s, err, sizeof(err)), -EINVAL);
  CU_ASSERT_PTR_NULL(s);
  CU_ASSERT_STRING_EQUAL(err, "virtual host vh:x: route / references unknown cluster missing");
  CU_ASSERT_EQUAL(l7_config_store_version(st), 1);
  CU_ASSERT_EQUAL_FATAL(l7_config_store_serialize(st, &after, &alen), 0);
  CU_ASSERT_EQUAL(alen, blen);
  CU_ASSERT_EQUAL(memcmp(before, after, blen), 0);
  free(before);
  free(after);
  fx_reset();
  l7_config_store_free(st);
}

static void full_push_replaces_everything(void) {
  struct l7_config_store *st = store_with_full_state(NULL);
  Edge__V1__Resource *res[] = {fx_cluster("z", 0)};
  Edge__V1__Push p = push_of(5, 1, 0);
  p.upserted = res;
  p.n_upserted = 1;
  struct l7_snapshot *s;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(l7_config_store_apply(st, &p, &s, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(l7_config_store_size(st), 1);
  CU_ASSERT_EQUAL(l7_snapshot_n_routes(s), 0);
  l7_snapshot_unref(s);
  /* A full state naming one resource twice is rejected. */
  Edge__V1__Resource *dup[] = {fx_cluster("z", 0), fx_cluster("z", 0)};
  p.upserted = dup;
  p.n_upserted = 2;
  p.version = 6;
  CU_ASSERT_EQUAL(l7_config_store_apply(st, &p, &s, err, sizeof(err)), -EINVAL);
  CU_ASSERT_STRING_EQUAL(err, "cluster z: defined twice");
  CU_ASSERT_EQUAL(l7_config_store_version(st), 5);
  fx_reset();
  l7_config_store_free(st);
}

static void delta_on_another_base_version_is_rejected(void) {
  struct l7_config_store *st = store_with_full_state(NULL);
  Edge__V1__Push p = push_of(9, 0, 8);
  struct l7_snapshot *s;
  char err[256] = "";
  CU_ASSERT_EQUAL(l7_config_store_apply(st, &p, &s, err, sizeof(err)), -EINVAL);
  CU_ASSERT_STRING_EQUAL(err, "delta based on version 8, but version 1 is applied");
  CU_ASSERT_EQUAL(l7_config_store_version(st), 1);
  l7_config_store_free(st);
}

static void malformed_push_entries_are_rejected(void) {
  struct l7_config_store *st = store_with_full_state(NULL);
  struct l7_snapshot *s;
  char err[256] = "";
  Edge__V1__Resource empty = EDGE__V1__RESOURCE__INIT;
  Edge__V1__Resource *res[] = {&empty};
  Edge__V1__Push p = push_of(2, 0, 1);
  p.upserted = res;
  p.n_upserted = 1;
  CU_ASSERT_EQUAL(l7_config_store_apply(st, &p, &s, err, sizeof(err)), -EINVAL);
  CU_ASSERT_STRING_EQUAL(err, "upserted resource 0: no kind set");
  Edge__V1__ResourceName *rm[] = {fx_name(0, "a")};
  Edge__V1__Push p2 = push_of(2, 0, 1);
  p2.removed = rm;
  p2.n_removed = 1;
  CU_ASSERT_EQUAL(l7_config_store_apply(st, &p2, &s, err, sizeof(err)), -EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown type"));
  CU_ASSERT_EQUAL(l7_config_store_version(st), 1);
  fx_reset();
  l7_config_store_free(st);
}

static void cache_round_trip_restores_state_with_mode_0600(void) {
  char *dir = tmpdir();
  CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
  struct l7_config_store *st = store_with_full_state(dir);
  uint8_t *a;
  size_t alen;
  CU_ASSERT_EQUAL_FATAL(l7_config_store_serialize(st, &a, &alen), 0);
  l7_config_store_free(st);

  char path[512];
  snprintf(path, sizeof(path), "%s/state.pb", dir);
  struct stat sb;
  CU_ASSERT_EQUAL_FATAL(stat(path, &sb), 0);
  CU_ASSERT_EQUAL(sb.st_mode & 0777, 0600);

  struct l7_config_store *st2;
  CU_ASSERT_EQUAL_FATAL(l7_config_store_new(dir, &st2), 0);
  struct l7_snapshot *s;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(l7_config_store_load_cache(st2, &s, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(l7_snapshot_version(s), 1);
  CU_ASSERT_STRING_EQUAL(route_cluster(s, "x.com", "/"), "a");
  uint8_t *b;
  size_t blen;
  CU_ASSERT_EQUAL_FATAL(l7_config_store_serialize(st2, &b, &blen), 0);
  CU_ASSERT_EQUAL(alen, blen);
  CU_ASSERT_EQUAL(memcmp(a, b, alen), 0);
  l7_snapshot_unref(s);
  l7_config_store_free(st2);
  free(a);
  free(b);

  /* A corrupt cache is an error with a reason; the store stays empty. */
  FILE *f = fopen(path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs("\xff\xff\xff garbage", f);
  fclose(f);
  CU_ASSERT_EQUAL_FATAL(l7_config_store_new(dir, &st2), 0);
  CU_ASSERT(l7_config_store_load_cache(st2, &s, err, sizeof(err)) < 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "state.pb"));
  CU_ASSERT_EQUAL(l7_config_store_version(st2), 0);
  l7_config_store_free(st2);
  unlink(path);
  rmdir(dir);
  free(dir);
}

/* The cache is written off the apply path: a burst of pushes costs a
 * write or two, not one each, and a flush leaves the last state on disk. */
static void a_burst_of_pushes_is_cached_as_its_last_state(void) {
  char *dir = tmpdir();
  CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
  struct l7_config_store *st = store_with_full_state(dir);
  char err[256] = "";
  for (uint64_t v = 2; v <= 40; v++) {
    char ep[32];
    snprintf(ep, sizeof(ep), "10.0.%u.%u", (unsigned)(v / 250), (unsigned)(v % 250));
    Edge__V1__Resource *res[] = {fx_cluster("a", 1, ep, 80u)};
    Edge__V1__Push p = push_of(v, 0, v - 1);
    p.upserted = res;
    p.n_upserted = 1;
    struct l7_snapshot *s;
    CU_ASSERT_EQUAL_FATAL(l7_config_store_apply(st, &p, &s, err, sizeof(err)), 0);
    l7_snapshot_unref(s);
  }
  l7_config_store_flush(st);
  uint64_t writes = l7_config_store_cache_writes(st);
  CU_ASSERT(writes >= 1);
  CU_ASSERT(writes < 10); /* 40 applies well inside L7_CACHE_MIN_INTERVAL_MS */
  struct l7_config_store *st2;
  struct l7_snapshot *s;
  CU_ASSERT_EQUAL_FATAL(l7_config_store_new(dir, &st2), 0);
  CU_ASSERT_EQUAL_FATAL(l7_config_store_load_cache(st2, &s, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(l7_snapshot_version(s), 40);
  CU_ASSERT_STRING_EQUAL(l7_snapshot_find_cluster(s, "a")->endpoints[0].name, "10.0.0.40:80");
  l7_snapshot_unref(s);
  l7_config_store_free(st2);
  l7_config_store_free(st);
  char path[512];
  snprintf(path, sizeof(path), "%s/state.pb", dir);
  unlink(path);
  rmdir(dir);
  free(dir);
  fx_reset();
}

static void missing_cache_is_enoent(void) {
  char *dir = tmpdir();
  struct l7_config_store *st;
  struct l7_snapshot *s;
  CU_ASSERT_EQUAL_FATAL(l7_config_store_new(dir, &st), 0);
  CU_ASSERT_EQUAL(l7_config_store_load_cache(st, &s, NULL, 0), -ENOENT);
  l7_config_store_free(st);
  CU_ASSERT_EQUAL_FATAL(l7_config_store_new(NULL, &st), 0);
  CU_ASSERT_EQUAL(l7_config_store_load_cache(st, &s, NULL, 0), -ENOENT);
  l7_config_store_free(st);
  rmdir(dir);
  free(dir);
}

static int write_file(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t w = fwrite(data, 1, len, f);
  fclose(f);
  return w == len ? 0 : -1;
}

static void config_file_round_trip_in_json_and_binary(void) {
  char *dir = tmpdir();
  struct l7_config_store *st = store_with_full_state(NULL);
  uint8_t *bin;
  size_t blen;
  CU_ASSERT_EQUAL_FATAL(l7_config_store_serialize(st, &bin, &blen), 0);
  l7_config_store_free(st);

  Edge__V1__Snapshot *msg = edge__v1__snapshot__unpack(NULL, blen, bin);
  CU_ASSERT_PTR_NOT_NULL_FATAL(msg);
  char *json = pb_json_encode(&msg->base);
  edge__v1__snapshot__free_unpacked(msg, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(json);
  CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"path_type\": \"PATH_TYPE_PREFIX\""));

  char jpath[512], bpath[512];
  snprintf(jpath, sizeof(jpath), "%s/config.json", dir);
  snprintf(bpath, sizeof(bpath), "%s/config.pb", dir);
  CU_ASSERT_EQUAL_FATAL(write_file(jpath, json, strlen(json)), 0);
  CU_ASSERT_EQUAL_FATAL(write_file(bpath, bin, blen), 0);
  free(json);

  const char *paths[] = {jpath, bpath};
  for (int i = 0; i < 2; i++) {
    struct l7_snapshot *s;
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(l7_config_store_new(NULL, &st), 0);
    CU_ASSERT_EQUAL_FATAL(l7_config_store_load_file(st, paths[i], &s, err, sizeof(err)), 0);
    uint8_t *again;
    size_t alen;
    CU_ASSERT_EQUAL_FATAL(l7_config_store_serialize(st, &again, &alen), 0);
    CU_ASSERT_EQUAL(alen, blen);
    CU_ASSERT_EQUAL(memcmp(again, bin, blen), 0);
    CU_ASSERT_STRING_EQUAL(route_cluster(s, "x.com", "/"), "a");
    free(again);
    l7_snapshot_unref(s);
    l7_config_store_free(st);
    unlink(paths[i]);
  }
  free(bin);
  rmdir(dir);
  free(dir);
}

static void handwritten_json_config_loads(void) {
  static const char text[] =
      "{\n"
      "  \"version\": \"12\",\n"
      "  \"resources\": [\n"
      "    {\"cluster\": {\"name\": \"web\", \"lb_policy\": \"LB_POLICY_LEAST_REQUEST\",\n"
      "      \"endpoints\": [{\"address\": \"127.0.0.1\", \"port\": 8080, \"ready\": true}]}},\n"
      "    {\"virtual_host\": {\"name\": \"vh\", \"host\": \"*.example.com\",\n"
      "      \"host_match\": 2, \"routes\": [{\"path\": \"/app\", \"path_type\": "
      "\"PATH_TYPE_EXACT\", \"cluster\": \"web\",\n"
      "        \"options\": {\"max_body_bytes\": 4096}}]}},\n"
      "    {\"default_backend\": {\"name\": \"default\", \"cluster\": \"web\"}}\n"
      "  ]\n"
      "}\n";
  ProtobufCMessage *m;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(
      pb_json_decode(&edge__v1__snapshot__descriptor, text, strlen(text), &m, err, sizeof(err)), 0);
  Edge__V1__Snapshot *snap = (Edge__V1__Snapshot *)m;
  CU_ASSERT_EQUAL(snap->version, 12);
  struct l7_config_store *st;
  struct l7_snapshot *s;
  CU_ASSERT_EQUAL_FATAL(l7_config_store_new(NULL, &st), 0);
  CU_ASSERT_EQUAL_FATAL(l7_config_store_apply_snapshot(st, snap, 0, &s, err, sizeof(err)), 0);
  const struct l7_route *r = l7_snapshot_match(s, "a.example.com", 13, "/app", 4);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL(r->max_body_bytes, 4096);
  CU_ASSERT_EQUAL(l7_snapshot_route_cluster(s, r)->lb_policy,
                  EDGE__V1__LB_POLICY__LB_POLICY_LEAST_REQUEST);
  CU_ASSERT_PTR_NULL(l7_snapshot_match(s, "a.example.com", 13, "/app/", 5));
  CU_ASSERT_STRING_EQUAL(l7_snapshot_default_cluster(s)->name, "web");
  l7_snapshot_unref(s);
  l7_config_store_free(st);
  edge__v1__snapshot__free_unpacked(snap, NULL);
}

static void bad_json_is_rejected_with_location_and_no_leak(void) {
  struct {
    const char *text, *want;
  } cases[] = {
      {"{\"resources\": [{\"cluster\": {\"name\": \"a\", \"endpoints\": [{\"adress\": \"x\"}]}}]}",
       "resources[0].cluster.endpoints[0]: unknown field \"adress\""},
      {"{\"resources\": [{\"cluster\": {\"name\": \"a\"}, \"virtual_host\": {\"name\": \"v\"}}]}",
       "more than one field of a oneof"},
      {"{\"resources\": [{\"cluster\": {\"lb_policy\": \"FASTEST\"}}]}", "unknown LbPolicy"},
      {"{\"version\": -1}", "version: expected an integer"},
      {"{\"resources\": {}}", "resources: expected an array"},
      {"{\"version\": 1", "line 1"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    ProtobufCMessage *m = (void *)1;
    char err[256] = "";
    CU_ASSERT(pb_json_decode(&edge__v1__snapshot__descriptor, cases[i].text, strlen(cases[i].text),
                             &m, err, sizeof(err)) < 0);
    CU_ASSERT_PTR_NULL(m);
    if (!strstr(err, cases[i].want)) fprintf(stderr, "case %zu: got \"%s\"\n", i, err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].want));
  }
}

static void unreadable_config_file_is_an_error(void) {
  struct l7_config_store *st;
  struct l7_snapshot *s;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(l7_config_store_new(NULL, &st), 0);
  CU_ASSERT_EQUAL(l7_config_store_load_file(st, "/nonexistent/edge.json", &s, err, sizeof(err)),
                  -ENOENT);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/edge.json"));
  l7_config_store_free(st);
}

/* One tenant's bad certificate never fails a push or a file (issue 15):
 * the TLS store judges it and serves its names with the default
 * (tls_test, hardening_test); the state applies. */
static void certificate_with_foreign_key_applies_from_a_push_and_from_a_file(void) {
  const char *na[] = {"a.example.com"}, *nb[] = {"b.example.com"};
  char *ca, *ka, *cb, *kb;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(cert_generate(na, 1, 30, 0, NULL, NULL, &ca, &ka, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL_FATAL(cert_generate(nb, 1, 30, 0, NULL, NULL, &cb, &kb, err, sizeof(err)), 0);
  struct l7_config_store *st = store_with_full_state(NULL);
  Edge__V1__Resource *good[] = {fx_cert("default/a", ca, ka, 1)};
  Edge__V1__Push p = push_of(2, 0, 1);
  p.upserted = good;
  p.n_upserted = 1;
  struct l7_snapshot *s;
  CU_ASSERT_EQUAL_FATAL(l7_config_store_apply(st, &p, &s, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(l7_snapshot_n_certificates(s), 1);
  CU_ASSERT(l7_snapshot_certificate(s, 0)->not_after > 0);
  l7_snapshot_unref(s);
  Edge__V1__Resource *bad[] = {fx_cert("default/b", cb, ka, 0)};
  p = push_of(3, 0, 2);
  p.upserted = bad;
  p.n_upserted = 1;
  CU_ASSERT_EQUAL_FATAL(l7_config_store_apply(st, &p, &s, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(l7_config_store_version(st), 3);
  CU_ASSERT_PTR_NOT_NULL(
      l7_config_store_get(st, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE, "default/b"));
  l7_snapshot_unref(s);
  /* the same state from a file is refused, naming the certificate */
  uint8_t *buf;
  size_t len;
  CU_ASSERT_EQUAL_FATAL(l7_config_store_serialize(st, &buf, &len), 0);
  char *dir = tmpdir(), path[512];
  snprintf(path, sizeof(path), "%s/bad.pb", dir);
  FILE *f = fopen(path, "wb");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  CU_ASSERT_EQUAL(fwrite(buf, 1, len, f), len);
  fclose(f);
  free(buf);
  struct l7_config_store *st2;
  CU_ASSERT_EQUAL_FATAL(l7_config_store_new(NULL, &st2), 0);
  CU_ASSERT_EQUAL(l7_config_store_load_file(st2, path, &s, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(l7_config_store_version(st2), 3);
  l7_snapshot_unref(s);
  l7_config_store_free(st2);
  unlink(path);
  rmdir(dir);
  free(dir);
  fx_reset();
  l7_config_store_free(st);
  free(ca);
  free(ka);
  free(cb);
  free(kb);
}

static void thousands_of_hosts_apply_and_route(void) {
  enum { N = 5000 };
  struct l7_config_store *st;
  CU_ASSERT_EQUAL_FATAL(l7_config_store_new(NULL, &st), 0);
  Edge__V1__Resource **res = fx_alloc(2 * N * sizeof(*res));
  char name[64], host[64];
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof(name), "default/svc%d:80", i);
    res[2 * i] = fx_cluster(name, 1, "10.0.0.1", (unsigned)(1000 + i));
    snprintf(host, sizeof(host), "h%d.example.com", i);
    char vname[80];
    snprintf(vname, sizeof(vname), "vh:%s", host);
    res[2 * i + 1] = fx_vhost(vname, host, FX_HOST, 1, fx_route("/", FX_PF, name));
  }
  Edge__V1__Push p = push_of(1, 1, 0);
  p.upserted = res;
  p.n_upserted = 2 * N;
  struct l7_snapshot *s;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(l7_config_store_apply(st, &p, &s, err, sizeof(err)), 0);
  fx_reset();
  l7_snapshot_unref(s);
  /* A one-route delta on top of the large state. */
  Edge__V1__Resource *one[] = {fx_vhost("vh:h7.example.com", "h7.example.com", FX_HOST, 1,
                                        fx_route("/", FX_PF, "default/svc8:80"))};
  p = push_of(2, 0, 1);
  p.upserted = one;
  p.n_upserted = 1;
  CU_ASSERT_EQUAL_FATAL(l7_config_store_apply(st, &p, &s, err, sizeof(err)), 0);
  CU_ASSERT_STRING_EQUAL(route_cluster(s, "h7.example.com", "/"), "default/svc8:80");
  CU_ASSERT_STRING_EQUAL(route_cluster(s, "h4999.example.com", "/a"), "default/svc4999:80");
  CU_ASSERT_EQUAL(l7_snapshot_n_clusters(s), N);
  l7_snapshot_unref(s);
  fx_reset();
  l7_config_store_free(st);
}

static void sample_config_file_loads_and_routes(void) {
  const char *srcdir = getenv("TEST_SRCDIR"), *ws = getenv("TEST_WORKSPACE");
  char path[1024];
  snprintf(path, sizeof(path), "%s/%s/tests/unit/l7proxy/testdata/l7proxy-config.json",
           srcdir ? srcdir : ".", ws ? ws : "edge");
  struct l7_config_store *st;
  struct l7_snapshot *s;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(l7_config_store_new(NULL, &st), 0);
  int rc = l7_config_store_load_file(st, path, &s, err, sizeof(err));
  if (rc) fprintf(stderr, "%s\n", err);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  CU_ASSERT_STRING_EQUAL(route_cluster(s, "shop.example.com", "/api/v1"), "default/api:80");
  CU_ASSERT_STRING_EQUAL(route_cluster(s, "shop.example.com", "/"), "default/web:80");
  CU_ASSERT_STRING_EQUAL(route_cluster(s, "img.example.com", "/x"), "default/web:80");
  const struct l7_route *r = l7_snapshot_match(s, "shop.example.com", 16, "/old", 4);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_PTR_NOT_NULL(r->redirect);
  CU_ASSERT_PTR_NULL(l7_snapshot_match(s, "other.org", 9, "/", 1));
  CU_ASSERT_PTR_NULL(l7_snapshot_default_cluster(s));
  l7_snapshot_unref(s);
  l7_config_store_free(st);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("config_store", NULL, NULL);
#define T(f) CU_add_test(s, #f, f)
  T(full_then_delta_apply);
  T(delta_removal_drops_the_named_resources);
  T(rejected_push_keeps_previous_state);
  T(full_push_replaces_everything);
  T(delta_on_another_base_version_is_rejected);
  T(malformed_push_entries_are_rejected);
  T(cache_round_trip_restores_state_with_mode_0600);
  T(a_burst_of_pushes_is_cached_as_its_last_state);
  T(missing_cache_is_enoent);
  T(config_file_round_trip_in_json_and_binary);
  T(handwritten_json_config_loads);
  T(bad_json_is_rejected_with_location_and_no_leak);
  T(unreadable_config_file_is_an_error);
  T(certificate_with_foreign_key_applies_from_a_push_and_from_a_file);
  T(thousands_of_hosts_apply_and_route);
  T(sample_config_file_loads_and_routes);
#undef T
}
