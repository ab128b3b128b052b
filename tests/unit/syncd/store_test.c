/* store: diffs by (type, name) and bytes, versions, deltas since an old
 * version, push encoding and the persisted state file. */
#include "syncd/store.h"

#include <CUnit/CUnit.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edge/v1/config_sync.pb-c.h"
#include "edge/v1/resources.pb-c.h"

#define VH EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST
#define CL EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER

/* A desired state under construction: resources built from (type, name,
 * host-or-cluster detail) so different details give different bytes. */
struct state {
  struct syncd_resource r[16];
  size_t n;
};

static void add(struct state *st, int type, const char *name, const char *detail) {
  Edge__V1__Resource res = EDGE__V1__RESOURCE__INIT;
  Edge__V1__VirtualHost vh = EDGE__V1__VIRTUAL_HOST__INIT;
  Edge__V1__Cluster cl = EDGE__V1__CLUSTER__INIT;
  if (type == VH) {
    vh.name = (char *)name;
    vh.host = (char *)detail;
    res.kind_case = EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST;
    res.virtual_host = &vh;
  } else {
    cl.name = (char *)name;
    cl.connect_timeout_ms = (uint32_t)strlen(detail);
    res.kind_case = EDGE__V1__RESOURCE__KIND_CLUSTER;
    res.cluster = &cl;
  }
  struct syncd_resource *r = &st->r[st->n++];
  r->type = type;
  r->name = strdup(name);
  r->len = edge__v1__resource__get_packed_size(&res);
  r->bytes = malloc(r->len);
  edge__v1__resource__pack(&res, r->bytes);
}

static void clear(struct state *st) {
  for (size_t i = 0; i < st->n; i++) {
    free(st->r[i].name);
    free(st->r[i].bytes);
  }
  st->n = 0;
}

/* Base state: cluster c1, vhosts a and b. */
static void base(struct state *st) {
  add(st, VH, "vh:a", "a.example.com");
  add(st, VH, "vh:b", "b.example.com");
  add(st, CL, "default/svc:80", "x");
}

static int has(const struct store_entry **list, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(list[i]->name, name) == 0) return 1;
  return 0;
}

static void first_state_produces_version_one_with_every_resource(void) {
  struct store *s;
  struct state st = {0};
  CU_ASSERT_EQUAL_FATAL(store_new(&s), 0);
  CU_ASSERT_EQUAL(store_version(s), 0);
  base(&st);
  CU_ASSERT_EQUAL(store_apply(s, st.r, st.n), 1);
  CU_ASSERT_EQUAL(store_version(s), 1);
  CU_ASSERT_EQUAL(store_count(s), 3);
  CU_ASSERT_PTR_NOT_NULL(store_find(s, VH, "vh:a"));
  CU_ASSERT_PTR_NULL(store_find(s, CL, "vh:a"));
  clear(&st);
  store_free(s);
}

static void seeded_store_starts_at_the_first_version_given(void) {
  struct store *s;
  struct state st = {0};
  store_new(&s);
  store_set_first_version(s, 1764000000000ULL);
  CU_ASSERT_EQUAL(store_version(s), 0);
  base(&st);
  CU_ASSERT_EQUAL(store_apply(s, st.r, st.n), 1);
  CU_ASSERT_EQUAL(store_version(s), 1764000000000ULL);
  store_set_first_version(s, 5); /* ignored once a version exists */
  CU_ASSERT_EQUAL(store_apply(s, st.r, 2), 1);
  CU_ASSERT_EQUAL(store_version(s), 1764000000001ULL);
  clear(&st);
  store_free(s);
}

static void unchanged_state_does_not_bump_the_version(void) {
  struct store *s;
  struct state st = {0};
  store_new(&s);
  base(&st);
  store_apply(s, st.r, st.n);
  CU_ASSERT_EQUAL(store_apply(s, st.r, st.n), 0);
  CU_ASSERT_EQUAL(store_version(s), 1);
  clear(&st);
  store_free(s);
}

static void add_change_and_remove_are_each_a_new_version_in_the_delta(void) {
  struct store *s;
  struct state st = {0};
  store_new(&s);
  base(&st);
  store_apply(s, st.r, st.n); /* v1 */
  clear(&st);
  /* v2: b changed, c added, cluster removed */
  add(&st, VH, "vh:a", "a.example.com");
  add(&st, VH, "vh:b", "b2.example.com");
  add(&st, VH, "vh:c", "c.example.com");
  CU_ASSERT_EQUAL(store_apply(s, st.r, st.n), 1);
  CU_ASSERT_EQUAL(store_version(s), 2);
  CU_ASSERT_EQUAL(store_count(s), 3);

  struct store_delta d;
  CU_ASSERT_EQUAL_FATAL(store_delta(s, 1, 0, &d), 0);
  CU_ASSERT_FALSE(d.full);
  CU_ASSERT_EQUAL(d.base_version, 1);
  CU_ASSERT_EQUAL(d.version, 2);
  CU_ASSERT_EQUAL(d.n_upserted, 2);
  CU_ASSERT(has(d.upserted, d.n_upserted, "vh:b"));
  CU_ASSERT(has(d.upserted, d.n_upserted, "vh:c"));
  CU_ASSERT_EQUAL(d.n_removed, 1);
  CU_ASSERT(has(d.removed, d.n_removed, "default/svc:80"));
  store_delta_clear(&d);

  /* Up to date: empty delta. */
  CU_ASSERT_EQUAL(store_delta(s, 2, 0, &d), 0);
  CU_ASSERT_FALSE(d.full);
  CU_ASSERT_EQUAL(d.n_upserted + d.n_removed, 0);
  store_delta_clear(&d);
  clear(&st);
  store_free(s);
}

static void delta_since_an_old_version_accumulates_every_change(void) {
  struct store *s;
  struct state st = {0};
  store_new(&s);
  base(&st);
  store_apply(s, st.r, st.n); /* v1 */
  clear(&st);
  add(&st, VH, "vh:a", "a2.example.com");
  add(&st, VH, "vh:b", "b.example.com");
  store_apply(s, st.r, st.n); /* v2: a changed, cluster removed */
  clear(&st);
  add(&st, VH, "vh:a", "a2.example.com");
  add(&st, VH, "vh:b", "b.example.com");
  add(&st, CL, "default/svc:80", "y");
  store_apply(s, st.r, st.n); /* v3: cluster back, different bytes */
  CU_ASSERT_EQUAL(store_version(s), 3);

  struct store_delta d;
  store_delta(s, 1, 0, &d);
  CU_ASSERT_EQUAL(d.n_upserted, 2);
  CU_ASSERT(has(d.upserted, d.n_upserted, "vh:a"));
  CU_ASSERT(has(d.upserted, d.n_upserted, "default/svc:80"));
  CU_ASSERT_EQUAL(d.n_removed, 0);
  store_delta_clear(&d);

  store_delta(s, 2, 0, &d);
  CU_ASSERT_EQUAL(d.n_upserted, 1);
  CU_ASSERT(has(d.upserted, d.n_upserted, "default/svc:80"));
  store_delta_clear(&d);
  clear(&st);
  store_free(s);
}

static void unknown_or_zero_version_gets_a_full_state(void) {
  struct store *s;
  struct state st = {0};
  store_new(&s);
  base(&st);
  store_apply(s, st.r, st.n);
  struct store_delta d;
  store_delta(s, 0, 0, &d);
  CU_ASSERT_TRUE(d.full);
  CU_ASSERT_EQUAL(d.n_upserted, 3);
  store_delta_clear(&d);
  store_delta(s, 99, 0, &d); /* a node from another history */
  CU_ASSERT_TRUE(d.full);
  store_delta_clear(&d);
  store_delta(s, 1, 1, &d); /* forced (after a NACK) */
  CU_ASSERT_TRUE(d.full);
  CU_ASSERT_EQUAL(d.n_upserted, 3);
  CU_ASSERT_EQUAL(d.base_version, 0);
  store_delta_clear(&d);
  clear(&st);
  store_free(s);
}

static void unsorted_input_is_rejected_and_changes_nothing(void) {
  struct store *s;
  struct state st = {0};
  store_new(&s);
  base(&st);
  store_apply(s, st.r, st.n);
  clear(&st);
  add(&st, VH, "vh:b", "b.example.com");
  add(&st, VH, "vh:a", "a.example.com");
  CU_ASSERT_EQUAL(store_apply(s, st.r, st.n), STORE_ERR_INVALID);
  clear(&st);
  add(&st, VH, "vh:a", "a.example.com");
  add(&st, VH, "vh:a", "a.example.com");
  CU_ASSERT_EQUAL(store_apply(s, st.r, st.n), STORE_ERR_INVALID);
  CU_ASSERT_EQUAL(store_version(s), 1);
  CU_ASSERT_EQUAL(store_count(s), 3);
  clear(&st);
  store_free(s);
}

static void packed_push_decodes_with_upserts_removals_and_nonce(void) {
  struct store *s;
  struct state st = {0};
  store_new(&s);
  base(&st);
  store_apply(s, st.r, st.n);
  clear(&st);
  add(&st, VH, "vh:a", "a.example.com");
  add(&st, VH, "vh:b", "b2.example.com");
  store_apply(s, st.r, st.n);

  struct store_delta d;
  store_delta(s, 1, 0, &d);
  uint8_t *buf;
  size_t len;
  CU_ASSERT_EQUAL_FATAL(store_pack_push(&d, "n-7", &buf, &len), 0);
  store_delta_clear(&d);
  Edge__V1__SyncMessage *m = edge__v1__sync_message__unpack(NULL, len, buf);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_EQUAL_FATAL(m->msg_case, EDGE__V1__SYNC_MESSAGE__MSG_PUSH);
  Edge__V1__Push *p = m->push;
  CU_ASSERT_EQUAL(p->version, 2);
  CU_ASSERT_EQUAL(p->base_version, 1);
  CU_ASSERT_FALSE(p->full);
  CU_ASSERT_STRING_EQUAL(p->nonce, "n-7");
  CU_ASSERT_EQUAL_FATAL(p->n_upserted, 1);
  CU_ASSERT_STRING_EQUAL(p->upserted[0]->virtual_host->name, "vh:b");
  CU_ASSERT_STRING_EQUAL(p->upserted[0]->virtual_host->host, "b2.example.com");
  CU_ASSERT_EQUAL_FATAL(p->n_removed, 1);
  CU_ASSERT_EQUAL(p->removed[0]->type, CL);
  CU_ASSERT_STRING_EQUAL(p->removed[0]->name, "default/svc:80");
  edge__v1__sync_message__free_unpacked(m, NULL);
  free(buf);
  clear(&st);
  store_free(s);
}

static char *temp_dir(void) {
  const char *base = getenv("TEST_TMPDIR");
  char tmpl[512];
  snprintf(tmpl, sizeof(tmpl), "%s/storeXXXXXX", base ? base : "/tmp");
  char *d = mkdtemp(tmpl);
  return d ? strdup(d) : NULL;
}

static void persisted_state_reloads_with_the_same_version_and_bytes(void) {
  char *dir = temp_dir();
  CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
  struct store *s, *t;
  struct state st = {0};
  char err[512] = "";
  store_new(&s);
  base(&st);
  store_apply(s, st.r, st.n);
  store_apply(s, st.r, 2); /* v2: cluster removed */
  store_set_meta(s, (const uint8_t *)"meta!", 5);
  CU_ASSERT_EQUAL_FATAL(store_save(s, dir, err, sizeof(err)), 0);

  char path[600];
  snprintf(path, sizeof(path), "%s/state.pb", dir);
  struct stat sb;
  CU_ASSERT_EQUAL_FATAL(stat(path, &sb), 0);
  CU_ASSERT_EQUAL(sb.st_mode & 0777, 0600);

  store_new(&t);
  CU_ASSERT_EQUAL_FATAL(store_load(t, dir, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(store_version(t), 2);
  CU_ASSERT_EQUAL(store_count(t), 2);
  CU_ASSERT_EQUAL(store_version_time(t), store_version_time(s));
  size_t ml;
  const uint8_t *m = store_meta(t, &ml);
  CU_ASSERT_EQUAL(ml, 5);
  CU_ASSERT_EQUAL(memcmp(m, "meta!", 5), 0);
  /* Same desired state after a restart: same bytes, no new version. */
  CU_ASSERT_EQUAL(store_apply(t, st.r, 2), 0);
  CU_ASSERT_EQUAL(store_version(t), 2);
  /* A node at the restored version needs nothing; an older one a full push. */
  struct store_delta d;
  store_delta(t, 2, 0, &d);
  CU_ASSERT_FALSE(d.full);
  CU_ASSERT_EQUAL(d.n_upserted + d.n_removed, 0);
  store_delta_clear(&d);
  store_delta(t, 1, 0, &d);
  CU_ASSERT_TRUE(d.full);
  CU_ASSERT_EQUAL(d.n_upserted, 2);
  store_delta_clear(&d);

  unlink(path);
  rmdir(dir);
  free(dir);
  clear(&st);
  store_free(s);
  store_free(t);
}

static void missing_state_file_is_not_an_error(void) {
  char *dir = temp_dir();
  struct store *s;
  char err[512] = "";
  store_new(&s);
  CU_ASSERT_EQUAL(store_load(s, dir, err, sizeof(err)), STORE_NO_STATE);
  CU_ASSERT_EQUAL(store_version(s), 0);
  rmdir(dir);
  free(dir);
  store_free(s);
}

static void corrupt_state_file_is_rejected_with_a_reason_and_leaves_the_store_empty(void) {
  char *dir = temp_dir();
  struct store *s;
  struct state st = {0};
  char err[512] = "";
  store_new(&s);
  base(&st);
  store_apply(s, st.r, st.n);
  store_save(s, dir, err, sizeof(err));

  char path[600];
  snprintf(path, sizeof(path), "%s/state.pb", dir);
  /* Flip one byte in the payload. */
  int fd = open(path, O_RDWR);
  CU_ASSERT_FATAL(fd >= 0);
  uint8_t b;
  CU_ASSERT_EQUAL(pread(fd, &b, 1, 40), 1);
  b ^= 0x5a;
  CU_ASSERT_EQUAL(pwrite(fd, &b, 1, 40), 1);
  close(fd);
  CU_ASSERT_EQUAL(store_load(s, dir, err, sizeof(err)), STORE_ERR_CORRUPT);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "checksum"));
  CU_ASSERT_EQUAL(store_version(s), 0);
  CU_ASSERT_EQUAL(store_count(s), 0);

  /* Truncated, and garbage. */
  CU_ASSERT_EQUAL(truncate(path, 30), 0);
  CU_ASSERT_EQUAL(store_load(s, dir, err, sizeof(err)), STORE_ERR_CORRUPT);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "truncated"));
  FILE *f = fopen(path, "w");
  fputs("hello, not a state file at all", f);
  fclose(f);
  CU_ASSERT_EQUAL(store_load(s, dir, err, sizeof(err)), STORE_ERR_CORRUPT);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a syncd state file"));

  /* The store still works after a failed load. */
  CU_ASSERT_EQUAL(store_apply(s, st.r, st.n), 1);
  CU_ASSERT_EQUAL(store_version(s), 1);
  unlink(path);
  rmdir(dir);
  free(dir);
  clear(&st);
  store_free(s);
}

static void many_removals_move_the_horizon_and_old_nodes_get_full_state(void) {
  struct store *s;
  store_new(&s);
  /* 1500 clusters, then all removed: more tombstones than kept. */
  struct syncd_resource *r = calloc(1500, sizeof(*r));
  for (int i = 0; i < 1500; i++) {
    char name[32];
    snprintf(name, sizeof(name), "c%05d", i);
    r[i].type = CL;
    r[i].name = strdup(name);
    r[i].bytes = (uint8_t *)strdup(name);
    r[i].len = strlen(name);
  }
  CU_ASSERT_EQUAL(store_apply(s, r, 1500), 1);
  CU_ASSERT_EQUAL(store_apply(s, r, 1), 1); /* v2: 1499 removed */
  CU_ASSERT_EQUAL(store_apply(s, r, 2), 1); /* v3: one back */
  struct store_delta d;
  store_delta(s, 1, 0, &d);
  CU_ASSERT_TRUE(d.full); /* tombstones of v2 were dropped */
  CU_ASSERT_EQUAL(d.n_upserted, 2);
  store_delta_clear(&d);
  store_delta(s, 2, 0, &d);
  CU_ASSERT_FALSE(d.full);
  CU_ASSERT_EQUAL(d.n_upserted, 1);
  store_delta_clear(&d);
  for (int i = 0; i < 1500; i++) {
    free(r[i].name);
    free(r[i].bytes);
  }
  free(r);
  store_free(s);
}

void test_register(void) {
  CU_pSuite suite = CU_add_suite("store", NULL, NULL);
  CU_add_test(suite, "first_state_produces_version_one_with_every_resource",
              first_state_produces_version_one_with_every_resource);
  CU_add_test(suite, "seeded_store_starts_at_the_first_version_given",
              seeded_store_starts_at_the_first_version_given);
  CU_add_test(suite, "unchanged_state_does_not_bump_the_version",
              unchanged_state_does_not_bump_the_version);
  CU_add_test(suite, "add_change_and_remove_are_each_a_new_version_in_the_delta",
              add_change_and_remove_are_each_a_new_version_in_the_delta);
  CU_add_test(suite, "delta_since_an_old_version_accumulates_every_change",
              delta_since_an_old_version_accumulates_every_change);
  CU_add_test(suite, "unknown_or_zero_version_gets_a_full_state",
              unknown_or_zero_version_gets_a_full_state);
  CU_add_test(suite, "unsorted_input_is_rejected_and_changes_nothing",
              unsorted_input_is_rejected_and_changes_nothing);
  CU_add_test(suite, "packed_push_decodes_with_upserts_removals_and_nonce",
              packed_push_decodes_with_upserts_removals_and_nonce);
  CU_add_test(suite, "persisted_state_reloads_with_the_same_version_and_bytes",
              persisted_state_reloads_with_the_same_version_and_bytes);
  CU_add_test(suite, "missing_state_file_is_not_an_error", missing_state_file_is_not_an_error);
  CU_add_test(suite, "corrupt_state_file_is_rejected_with_a_reason_and_leaves_the_store_empty",
              corrupt_state_file_is_rejected_with_a_reason_and_leaves_the_store_empty);
  CU_add_test(suite, "many_removals_move_the_horizon_and_old_nodes_get_full_state",
              many_removals_move_the_horizon_and_old_nodes_get_full_state);
}
