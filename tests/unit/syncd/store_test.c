/* store: diffs by (type, name) and bytes, versions named by content,
 * deltas since an old version (and after a revert), push encoding, the
 * journal records a store is persisted as, the state file before them. */
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

static struct store *fresh(void) {
  struct store *s = NULL;
  CU_ASSERT_EQUAL_FATAL(store_new(&s), 0);
  return s;
}

static void first_state_is_named_by_its_content(void) {
  struct store *s = fresh();
  struct state st = {0};
  CU_ASSERT_EQUAL(store_version(s), 0);
  base(&st);
  CU_ASSERT_EQUAL(store_apply(s, st.r, st.n, 7), 1);
  CU_ASSERT_NOT_EQUAL(store_version(s), 0);
  CU_ASSERT_EQUAL(store_seq(s), 1);
  CU_ASSERT_EQUAL(store_generation(s), 7);
  CU_ASSERT_EQUAL(store_count(s), 3);
  CU_ASSERT_PTR_NOT_NULL(store_find(s, VH, "vh:a"));
  CU_ASSERT_PTR_NULL(store_find(s, CL, "vh:a"));
  clear(&st);
  store_free(s);
}

/* Two replicas (or one before and after a restart) that hold the same
 * resources name them with the same version, however they got there;
 * different resources give a different version. */
static void equal_content_gives_equal_version_in_any_store(void) {
  struct store *a = fresh(), *b = fresh();
  struct state st = {0};
  base(&st);
  CU_ASSERT_EQUAL(store_apply(a, st.r, st.n, 1), 1);
  /* b gets there in two deltas, with a detour through other bytes */
  CU_ASSERT_EQUAL(store_apply_delta(b, st.r, 1, NULL, 0, 5), 1);
  struct state other = {0};
  add(&other, VH, "vh:b", "elsewhere.example.com");
  CU_ASSERT_EQUAL(store_apply_delta(b, other.r, 1, NULL, 0, 6), 1);
  CU_ASSERT_NOT_EQUAL(store_version(b), store_version(a));
  CU_ASSERT_EQUAL(store_apply_delta(b, st.r + 1, 2, NULL, 0, 7), 1);
  CU_ASSERT_EQUAL(store_version(b), store_version(a));
  CU_ASSERT_NOT_EQUAL(store_seq(b), store_seq(a)); /* local change numbers differ */
  /* one byte of difference is another version */
  clear(&other);
  add(&other, VH, "vh:a", "a.example.con");
  CU_ASSERT_EQUAL(store_apply_delta(b, other.r, 1, NULL, 0, 8), 1);
  CU_ASSERT_NOT_EQUAL(store_version(b), store_version(a));
  clear(&other);
  clear(&st);
  store_free(a);
  store_free(b);
}

static void unchanged_state_changes_neither_version_nor_seq(void) {
  struct store *s = fresh();
  struct state st = {0};
  base(&st);
  store_apply(s, st.r, st.n, 1);
  uint64_t v = store_version(s);
  CU_ASSERT_EQUAL(store_apply(s, st.r, st.n, 2), 0);
  CU_ASSERT_EQUAL(store_apply_delta(s, st.r, 2, NULL, 0, 2), 0);
  struct syncd_resource_key gone = {CL, "default/nothing:80"};
  CU_ASSERT_EQUAL(store_apply_delta(s, NULL, 0, &gone, 1, 2), 0);
  CU_ASSERT_EQUAL(store_version(s), v);
  CU_ASSERT_EQUAL(store_seq(s), 1);
  CU_ASSERT_EQUAL(store_generation(s), 1);
  clear(&st);
  store_free(s);
}

static void add_change_and_remove_are_each_a_new_version_in_the_delta(void) {
  struct store *s = fresh();
  struct state st = {0};
  base(&st);
  store_apply(s, st.r, st.n, 1);
  uint64_t v1 = store_version(s);
  clear(&st);
  /* b changed, c added, cluster removed */
  add(&st, VH, "vh:a", "a.example.com");
  add(&st, VH, "vh:b", "b2.example.com");
  add(&st, VH, "vh:c", "c.example.com");
  CU_ASSERT_EQUAL(store_apply(s, st.r, st.n, 2), 1);
  uint64_t v2 = store_version(s);
  CU_ASSERT_NOT_EQUAL(v2, v1);
  CU_ASSERT_EQUAL(store_count(s), 3);

  struct store_delta d;
  CU_ASSERT_EQUAL_FATAL(store_delta(s, v1, 0, &d), 0);
  CU_ASSERT_FALSE(d.full);
  CU_ASSERT_EQUAL(d.base_version, v1);
  CU_ASSERT_EQUAL(d.version, v2);
  CU_ASSERT_EQUAL(d.n_upserted, 2);
  CU_ASSERT(has(d.upserted, d.n_upserted, "vh:b"));
  CU_ASSERT(has(d.upserted, d.n_upserted, "vh:c"));
  CU_ASSERT_EQUAL(d.n_removed, 1);
  CU_ASSERT(has(d.removed, d.n_removed, "default/svc:80"));
  store_delta_clear(&d);

  /* Up to date: empty delta. */
  CU_ASSERT_EQUAL(store_delta(s, v2, 0, &d), 0);
  CU_ASSERT_FALSE(d.full);
  CU_ASSERT_EQUAL(d.n_upserted + d.n_removed, 0);
  store_delta_clear(&d);
  clear(&st);
  store_free(s);
}

static void delta_since_an_old_version_accumulates_every_change(void) {
  struct store *s = fresh();
  struct state st = {0};
  base(&st);
  store_apply(s, st.r, st.n, 1);
  uint64_t v1 = store_version(s);
  clear(&st);
  add(&st, VH, "vh:a", "a2.example.com");
  add(&st, VH, "vh:b", "b.example.com");
  store_apply(s, st.r, st.n, 2); /* a changed, cluster removed */
  uint64_t v2 = store_version(s);
  clear(&st);
  add(&st, VH, "vh:a", "a2.example.com");
  add(&st, VH, "vh:b", "b.example.com");
  add(&st, CL, "default/svc:80", "y");
  store_apply(s, st.r, st.n, 3); /* cluster back, different bytes */

  struct store_delta d;
  store_delta(s, v1, 0, &d);
  CU_ASSERT_EQUAL(d.n_upserted, 2);
  CU_ASSERT(has(d.upserted, d.n_upserted, "vh:a"));
  CU_ASSERT(has(d.upserted, d.n_upserted, "default/svc:80"));
  CU_ASSERT_EQUAL(d.n_removed, 0);
  store_delta_clear(&d);

  store_delta(s, v2, 0, &d);
  CU_ASSERT_EQUAL(d.n_upserted, 1);
  CU_ASSERT(has(d.upserted, d.n_upserted, "default/svc:80"));
  store_delta_clear(&d);
  clear(&st);
  store_free(s);
}

/* A -> B -> A: the state is version A again, and a node still at B gets
 * exactly what takes it back. */
static void reverting_gives_the_earlier_version_back_and_exact_deltas(void) {
  struct store *s = fresh();
  struct state a = {0}, b = {0};
  base(&a);
  add(&b, VH, "vh:a", "a.example.com");
  add(&b, VH, "vh:b", "changed.example.com");
  store_apply(s, a.r, a.n, 1);
  uint64_t va = store_version(s);
  store_apply(s, b.r, b.n, 2);
  uint64_t vb = store_version(s);
  store_apply(s, a.r, a.n, 3);
  CU_ASSERT_EQUAL(store_version(s), va);
  CU_ASSERT_EQUAL(store_seq(s), 3);
  CU_ASSERT(store_knows(s, vb));
  struct store_delta d;
  store_delta(s, vb, 0, &d);
  CU_ASSERT_FALSE(d.full);
  CU_ASSERT_EQUAL(d.n_upserted, 2); /* vh:b back, the cluster back */
  CU_ASSERT(has(d.upserted, d.n_upserted, "vh:b"));
  CU_ASSERT(has(d.upserted, d.n_upserted, "default/svc:80"));
  CU_ASSERT_EQUAL(d.n_removed, 0);
  store_delta_clear(&d);
  store_delta(s, va, 0, &d); /* a node at A needs nothing */
  CU_ASSERT_EQUAL(d.n_upserted + d.n_removed, 0);
  store_delta_clear(&d);
  clear(&a);
  clear(&b);
  store_free(s);
}

static void unknown_or_zero_version_gets_a_full_state(void) {
  struct store *s = fresh();
  struct state st = {0};
  base(&st);
  store_apply(s, st.r, st.n, 1);
  struct store_delta d;
  store_delta(s, 0, 0, &d);
  CU_ASSERT_TRUE(d.full);
  CU_ASSERT_EQUAL(d.n_upserted, 3);
  store_delta_clear(&d);
  CU_ASSERT_FALSE(store_knows(s, 99));
  store_delta(s, 99, 0, &d); /* a node from another history */
  CU_ASSERT_TRUE(d.full);
  store_delta_clear(&d);
  store_delta(s, store_version(s), 1, &d); /* forced (after a NACK) */
  CU_ASSERT_TRUE(d.full);
  CU_ASSERT_EQUAL(d.n_upserted, 3);
  CU_ASSERT_EQUAL(d.base_version, 0);
  store_delta_clear(&d);
  clear(&st);
  store_free(s);
}

static void unsorted_input_is_rejected_and_changes_nothing(void) {
  struct store *s = fresh();
  struct state st = {0};
  base(&st);
  store_apply(s, st.r, st.n, 1);
  uint64_t v = store_version(s);
  clear(&st);
  add(&st, VH, "vh:b", "b.example.com");
  add(&st, VH, "vh:a", "a.example.com");
  CU_ASSERT_EQUAL(store_apply(s, st.r, st.n, 2), STORE_ERR_INVALID);
  clear(&st);
  add(&st, VH, "vh:a", "a.example.com");
  add(&st, VH, "vh:a", "a.example.com");
  CU_ASSERT_EQUAL(store_apply(s, st.r, st.n, 2), STORE_ERR_INVALID);
  /* a key both upserted and removed */
  struct syncd_resource_key k = {VH, "vh:a"};
  CU_ASSERT_EQUAL(store_apply_delta(s, st.r, 1, &k, 1, 2), STORE_ERR_INVALID);
  CU_ASSERT_EQUAL(store_version(s), v);
  CU_ASSERT_EQUAL(store_count(s), 3);
  clear(&st);
  store_free(s);
}

static void packed_push_decodes_with_upserts_removals_and_nonce(void) {
  struct store *s = fresh();
  struct state st = {0};
  base(&st);
  store_apply(s, st.r, st.n, 1);
  uint64_t v1 = store_version(s);
  clear(&st);
  add(&st, VH, "vh:a", "a.example.com");
  add(&st, VH, "vh:b", "b2.example.com");
  store_apply(s, st.r, st.n, 2);

  struct store_delta d;
  store_delta(s, v1, 0, &d);
  uint8_t *buf;
  size_t len;
  CU_ASSERT_EQUAL_FATAL(store_pack_push(&d, "n-7", &buf, &len), 0);
  store_delta_clear(&d);
  Edge__V1__SyncMessage *m = edge__v1__sync_message__unpack(NULL, len, buf);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_EQUAL_FATAL(m->msg_case, EDGE__V1__SYNC_MESSAGE__MSG_PUSH);
  Edge__V1__Push *p = m->push;
  CU_ASSERT_EQUAL(p->version, store_version(s));
  CU_ASSERT_EQUAL(p->base_version, v1);
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

/* Same entries, seqs, tombstones and version; the same delta answers. */
static void same_store(struct store *a, struct store *b, uint64_t old_version) {
  CU_ASSERT_EQUAL(store_version(a), store_version(b));
  CU_ASSERT_EQUAL(store_seq(a), store_seq(b));
  CU_ASSERT_EQUAL(store_generation(a), store_generation(b));
  size_t na, nb;
  struct store_entry *const *ea = store_entries(a, &na);
  struct store_entry *const *eb = store_entries(b, &nb);
  CU_ASSERT_EQUAL_FATAL(na, nb);
  for (size_t i = 0; i < na; i++) {
    CU_ASSERT_STRING_EQUAL(ea[i]->name, eb[i]->name);
    CU_ASSERT_EQUAL(ea[i]->seq, eb[i]->seq);
    CU_ASSERT_EQUAL(ea[i]->removed, eb[i]->removed);
    CU_ASSERT(ea[i]->len == eb[i]->len &&
              (ea[i]->len == 0 || !memcmp(ea[i]->bytes, eb[i]->bytes, ea[i]->len)));
  }
  CU_ASSERT_EQUAL(store_knows(a, old_version), store_knows(b, old_version));
  struct store_delta da, db;
  store_delta(a, old_version, 0, &da);
  store_delta(b, old_version, 0, &db);
  CU_ASSERT_EQUAL(da.full, db.full);
  CU_ASSERT_EQUAL(da.n_upserted, db.n_upserted);
  CU_ASSERT_EQUAL(da.n_removed, db.n_removed);
  store_delta_clear(&da);
  store_delta_clear(&db);
}

/* What persist.c writes: a STATE, then DELTAs of each change; replayed in
 * a fresh store they give the same store, history and report included. */
static void records_replayed_in_a_fresh_store_give_the_same_store(void) {
  struct store *s = fresh(), *t = fresh();
  struct state st = {0};
  char err[256] = "";
  base(&st);
  store_apply(s, st.r, st.n, 1);
  uint64_t v1 = store_version(s);
  Edge__V1__StatusResponse rep = EDGE__V1__STATUS_RESPONSE__INIT;
  Edge__V1__ObjectCount oc = EDGE__V1__OBJECT_COUNT__INIT, *ocp = &oc;
  oc.kind = "Ingress";
  oc.count = 3;
  rep.n_objects = 1;
  rep.objects = &ocp;
  uint8_t rbuf[64];
  size_t rlen = edge__v1__status_response__pack(&rep, rbuf);
  CU_ASSERT_EQUAL(store_set_report(s, rbuf, rlen), 1);
  CU_ASSERT_EQUAL(store_set_report(s, rbuf, rlen), 0); /* unchanged */
  uint8_t *rec[4];
  size_t len[4];
  CU_ASSERT_EQUAL_FATAL(store_encode_state(s, &rec[0], &len[0]), 0);
  uint64_t seq = store_seq(s);
  clear(&st);
  add(&st, VH, "vh:a", "a2.example.com");
  add(&st, VH, "vh:b", "b.example.com");
  store_apply(s, st.r, st.n, 2); /* a changed, cluster removed */
  CU_ASSERT_EQUAL_FATAL(store_encode_delta(s, seq, &rec[1], &len[1]), 0);
  seq = store_seq(s);
  add(&st, VH, "vh:z", "z.example.com");
  store_apply(s, st.r, st.n, 3);
  CU_ASSERT_EQUAL_FATAL(store_encode_delta(s, seq, &rec[2], &len[2]), 0);
  CU_ASSERT(len[2] < 100); /* one resource, not the state */

  CU_ASSERT_EQUAL(store_replay(t, 1, rec[0], len[0], err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(store_replay(t, 0, rec[1], len[1], err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(store_replay(t, 0, rec[2], len[2], err, sizeof(err)), 0);
  same_store(s, t, v1);
  CU_ASSERT(store_knows(t, v1)); /* a proxy at v1 still gets a delta */
  CU_ASSERT_PTR_NOT_NULL_FATAL(store_report(t));
  CU_ASSERT_EQUAL(store_report(t)->n_objects, 1); /* typed: no unpacking by readers */

  /* and a STATE taken now, replayed alone, too */
  struct store *u = fresh();
  CU_ASSERT_EQUAL_FATAL(store_encode_state(s, &rec[3], &len[3]), 0);
  CU_ASSERT_EQUAL(store_replay(u, 1, rec[3], len[3], err, sizeof(err)), 0);
  same_store(s, u, v1);
  /* a delta that does not follow the store's change number is refused */
  CU_ASSERT_EQUAL(store_replay(u, 0, rec[1], len[1], err, sizeof(err)), STORE_ERR_CORRUPT);
  for (int i = 0; i < 4; i++) free(rec[i]);
  clear(&st);
  store_free(s);
  store_free(t);
  store_free(u);
}

/* A record whose resources do not give the version it names (a bit flipped
 * inside a resource, with a checksum that still matched) is refused. */
static void a_record_whose_content_does_not_give_its_version_is_refused(void) {
  struct store *s = fresh(), *t = fresh();
  struct state st = {0};
  char err[256] = "";
  base(&st);
  store_apply(s, st.r, st.n, 1);
  uint8_t *rec;
  size_t len;
  CU_ASSERT_EQUAL_FATAL(store_encode_state(s, &rec, &len), 0);
  uint8_t *host = memmem(rec, len, "b.example.com", 13);
  CU_ASSERT_PTR_NOT_NULL_FATAL(host);
  host[0] = 'c';
  CU_ASSERT_EQUAL(store_replay(t, 1, rec, len, err, sizeof(err)), STORE_ERR_CORRUPT);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "version"));
  CU_ASSERT_EQUAL(store_replay(t, 1, rec, len / 2, err, sizeof(err)), STORE_ERR_CORRUPT);
  free(rec);
  clear(&st);
  store_free(s);
  store_free(t);
}

static char *temp_dir(void) {
  const char *base = getenv("TEST_TMPDIR");
  char tmpl[512];
  snprintf(tmpl, sizeof(tmpl), "%s/storeXXXXXX", base ? base : "/tmp");
  char *d = mkdtemp(tmpl);
  return d ? strdup(d) : NULL;
}

static uint32_t crc32_ieee(const uint8_t *p, size_t n) {
  uint32_t crc = ~0u;
  for (size_t i = 0; i < n; i++) {
    crc ^= p[i];
    for (int b = 0; b < 8; b++) crc = (crc & 1) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
  }
  return ~crc;
}

/* A state directory of the format before the journal ("EDGESYN1": header,
 * version time, meta, Snapshot) still loads: same resources, and the meta
 * becomes the report. */
static void a_state_file_from_before_the_journal_loads(void) {
  char *dir = temp_dir();
  CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
  struct store *s = fresh(), *t = fresh();
  struct state st = {0};
  base(&st);
  store_apply(s, st.r, st.n, 0);
  uint8_t *snap;
  size_t snap_len;
  CU_ASSERT_EQUAL_FATAL(store_pack_snapshot(s, &snap, &snap_len), 0);
  Edge__V1__StatusResponse meta = EDGE__V1__STATUS_RESPONSE__INIT;
  uint8_t mbuf[64];
  size_t mlen = edge__v1__status_response__pack(&meta, mbuf);
  size_t payload = 12 + mlen + snap_len;
  uint8_t *file = calloc(1, 20 + payload);
  memcpy(file, "EDGESYN1", 8);
  for (int i = 0; i < 8; i++) file[12 + i] = (uint8_t)(payload >> (8 * i));
  for (int i = 0; i < 4; i++) file[20 + 8 + i] = (uint8_t)(mlen >> (8 * i));
  memcpy(file + 32, mbuf, mlen);
  memcpy(file + 32 + mlen, snap, snap_len);
  uint32_t crc = crc32_ieee(file + 20, payload);
  for (int i = 0; i < 4; i++) file[8 + i] = (uint8_t)(crc >> (8 * i));
  char path[600], err[256] = "";
  snprintf(path, sizeof(path), "%s/state.pb", dir);
  FILE *f = fopen(path, "wb");
  fwrite(file, 1, 20 + payload, f);
  fclose(f);
  CU_ASSERT_EQUAL(store_load_legacy(t, dir, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(store_version(t), store_version(s));
  CU_ASSERT_EQUAL(store_count(t), 3);
  /* damaged: refused with a reason, the store untouched */
  file[40] ^= 0x5a;
  f = fopen(path, "wb");
  fwrite(file, 1, 20 + payload, f);
  fclose(f);
  struct store *u = fresh();
  CU_ASSERT_EQUAL(store_load_legacy(u, dir, err, sizeof(err)), STORE_ERR_CORRUPT);
  CU_ASSERT_EQUAL(store_version(u), 0);
  unlink(path);
  CU_ASSERT_EQUAL(store_load_legacy(u, dir, err, sizeof(err)), STORE_NO_STATE);
  rmdir(dir);
  free(dir);
  free(file);
  free(snap);
  clear(&st);
  store_free(s);
  store_free(t);
  store_free(u);
}

static void many_removals_move_the_horizon_and_old_nodes_get_full_state(void) {
  struct store *s = fresh();
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
  CU_ASSERT_EQUAL(store_apply(s, r, 1500, 1), 1);
  uint64_t v1 = store_version(s);
  CU_ASSERT_EQUAL(store_apply(s, r, 1, 2), 1); /* 1499 removed */
  uint64_t v2 = store_version(s);
  CU_ASSERT_EQUAL(store_apply(s, r, 2, 3), 1); /* one back */
  CU_ASSERT_FALSE(store_knows(s, v1));
  struct store_delta d;
  store_delta(s, v1, 0, &d);
  CU_ASSERT_TRUE(d.full); /* tombstones of v2 were dropped */
  CU_ASSERT_EQUAL(d.n_upserted, 2);
  store_delta_clear(&d);
  store_delta(s, v2, 0, &d);
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
  CU_add_test(suite, "first_state_is_named_by_its_content", first_state_is_named_by_its_content);
  CU_add_test(suite, "equal_content_gives_equal_version_in_any_store",
              equal_content_gives_equal_version_in_any_store);
  CU_add_test(suite, "unchanged_state_changes_neither_version_nor_seq",
              unchanged_state_changes_neither_version_nor_seq);
  CU_add_test(suite, "add_change_and_remove_are_each_a_new_version_in_the_delta",
              add_change_and_remove_are_each_a_new_version_in_the_delta);
  CU_add_test(suite, "delta_since_an_old_version_accumulates_every_change",
              delta_since_an_old_version_accumulates_every_change);
  CU_add_test(suite, "reverting_gives_the_earlier_version_back_and_exact_deltas",
              reverting_gives_the_earlier_version_back_and_exact_deltas);
  CU_add_test(suite, "unknown_or_zero_version_gets_a_full_state",
              unknown_or_zero_version_gets_a_full_state);
  CU_add_test(suite, "unsorted_input_is_rejected_and_changes_nothing",
              unsorted_input_is_rejected_and_changes_nothing);
  CU_add_test(suite, "packed_push_decodes_with_upserts_removals_and_nonce",
              packed_push_decodes_with_upserts_removals_and_nonce);
  CU_add_test(suite, "records_replayed_in_a_fresh_store_give_the_same_store",
              records_replayed_in_a_fresh_store_give_the_same_store);
  CU_add_test(suite, "a_record_whose_content_does_not_give_its_version_is_refused",
              a_record_whose_content_does_not_give_its_version_is_refused);
  CU_add_test(suite, "a_state_file_from_before_the_journal_loads",
              a_state_file_from_before_the_journal_loads);
  CU_add_test(suite, "many_removals_move_the_horizon_and_old_nodes_get_full_state",
              many_removals_move_the_horizon_and_old_nodes_get_full_state);
}
