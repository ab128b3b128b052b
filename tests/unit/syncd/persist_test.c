/* persist: the store through the journal — a change writes a record of its
 * own size (not the state), a restart replays to the same version and
 * history, a torn last record falls back to the change before it, a
 * compaction running on a worker thread keeps the changes made meanwhile,
 * and a state directory from before the journal is migrated. */
#include "syncd/persist.h"

#include <CUnit/CUnit.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "edge/v1/resources.pb-c.h"
#include "syncd/store.h"

#define VH EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST

static char dir[256];

static int setup(void) {
  snprintf(dir, sizeof(dir), "%s/persistXXXXXX",
           getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp");
  return mkdtemp(dir) ? 0 : -1;
}

static void wipe(void) {
  char p[400];
  snprintf(p, sizeof(p), "%s/journal", dir);
  unlink(p);
  snprintf(p, sizeof(p), "%s/journal.compact", dir);
  unlink(p);
  snprintf(p, sizeof(p), "%s/state.pb", dir);
  unlink(p);
}

static int teardown(void) {
  wipe();
  return rmdir(dir);
}

/* A VirtualHost named name whose host is detail, padded to pad bytes. */
static void vhost(struct syncd_resource *r, const char *name, const char *detail, size_t pad) {
  Edge__V1__Resource res = EDGE__V1__RESOURCE__INIT;
  Edge__V1__VirtualHost vh = EDGE__V1__VIRTUAL_HOST__INIT;
  char *host = malloc(strlen(detail) + pad + 1);
  strcpy(host, detail);
  memset(host + strlen(detail), 'x', pad);
  host[strlen(detail) + pad] = '\0';
  vh.name = (char *)name;
  vh.host = host;
  res.kind_case = EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST;
  res.virtual_host = &vh;
  r->type = VH;
  r->name = strdup(name);
  r->len = edge__v1__resource__get_packed_size(&res);
  r->bytes = malloc(r->len);
  edge__v1__resource__pack(&res, r->bytes);
  free(host);
}

static void res_free(struct syncd_resource *r, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(r[i].name);
    free(r[i].bytes);
  }
}

/* 200 hosts h000..h199 (sorted names). */
static void many(struct syncd_resource *r, const char *tag, size_t pad) {
  for (int i = 0; i < 200; i++) {
    char name[32], host[64];
    snprintf(name, sizeof(name), "vh:h%03d", i);
    snprintf(host, sizeof(host), "h%03d.%s.test", i, tag);
    vhost(&r[i], name, host, pad);
  }
}

static struct persist *open_into(uv_loop_t *loop, struct store **s, struct persist_info *info) {
  CU_ASSERT_EQUAL_FATAL(store_new(s), 0);
  struct persist *p = NULL;
  char err[256] = "";
  int rc = persist_open(loop, dir, *s, &p, info, err, sizeof(err));
  CU_ASSERT_EQUAL(rc, 0);
  if (rc) fprintf(stderr, "persist_open: %s\n", err);
  return p;
}

static void closed(void *arg) {
  (*(int *)arg)++;
}

static void close_run(uv_loop_t *loop, struct persist *p) {
  int done = 0;
  persist_close(p, closed, &done);
  while (!done) uv_run(loop, UV_RUN_ONCE);
}

static void commit(struct persist *p) {
  char err[256] = "";
  int rc = persist_commit(p, err, sizeof(err));
  CU_ASSERT_EQUAL(rc, 0);
  if (rc) fprintf(stderr, "persist_commit: %s\n", err);
}

static void a_change_writes_its_own_size_and_a_restart_replays_it(void) {
  wipe();
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct store *s;
  struct persist_info info;
  struct persist *p = open_into(&loop, &s, &info);
  CU_ASSERT_FALSE(info.restored);
  struct syncd_resource r[200];
  many(r, "one", 500); /* ~100 KB of state */
  CU_ASSERT_EQUAL(store_apply(s, r, 200, 1), 1);
  commit(p);
  uint64_t v1 = store_version(s);
  struct persist_stats st0, st1;
  persist_stats(p, &st0);
  CU_ASSERT(st0.bytes_written > 100000);
  /* one route changed: a record of about one resource */
  struct syncd_resource one;
  vhost(&one, "vh:h007", "changed.test", 500);
  CU_ASSERT_EQUAL(store_apply_delta(s, &one, 1, NULL, 0, 2), 1);
  commit(p);
  persist_stats(p, &st1);
  CU_ASSERT(st1.bytes_written - st0.bytes_written < 1024);
  uint64_t v2 = store_version(s), seq2 = store_seq(s);
  close_run(&loop, p);

  struct store *t;
  p = open_into(&loop, &t, &info);
  CU_ASSERT_TRUE(info.restored);
  CU_ASSERT_EQUAL(info.dropped, 0);
  CU_ASSERT_EQUAL(store_version(t), v2);
  CU_ASSERT_EQUAL(store_seq(t), seq2);
  CU_ASSERT_EQUAL(store_generation(t), 2);
  CU_ASSERT(store_knows(t, v1)); /* proxies at v1 still get a delta */
  struct store_delta d;
  store_delta(t, v1, 0, &d);
  CU_ASSERT_FALSE(d.full);
  CU_ASSERT_EQUAL(d.n_upserted, 1);
  store_delta_clear(&d);
  close_run(&loop, p);
  res_free(r, 200);
  res_free(&one, 1);
  store_free(s);
  store_free(t);
  uv_loop_close(&loop);
}

static off_t journal_len(void) {
  char path[400];
  snprintf(path, sizeof(path), "%s/journal", dir);
  struct stat sb;
  return stat(path, &sb) == 0 ? sb.st_size : -1;
}

/* A crash in the middle of writing the last change: the restart drops the
 * torn record and serves the change before it, whole. */
static void a_torn_last_record_falls_back_to_the_change_before(void) {
  wipe();
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct store *s;
  struct persist_info info;
  struct persist *p = open_into(&loop, &s, &info);
  struct syncd_resource r[200], one;
  many(r, "one", 10);
  store_apply(s, r, 200, 1);
  commit(p);
  vhost(&one, "vh:h001", "second.test", 10);
  store_apply_delta(s, &one, 1, NULL, 0, 2);
  commit(p);
  uint64_t v2 = store_version(s);
  off_t good = journal_len();
  res_free(&one, 1);
  vhost(&one, "vh:h002", "third.test", 10);
  store_apply_delta(s, &one, 1, NULL, 0, 3);
  commit(p);
  off_t full = journal_len();
  close_run(&loop, p);
  char path[400];
  snprintf(path, sizeof(path), "%s/journal", dir);
  CU_ASSERT_EQUAL_FATAL(truncate(path, good + (full - good) / 2), 0);
  struct store *t;
  p = open_into(&loop, &t, &info);
  CU_ASSERT(info.dropped > 0);
  CU_ASSERT_EQUAL(store_version(t), v2);
  CU_ASSERT_EQUAL(journal_len(), good);
  /* and it goes on from there */
  store_apply_delta(t, &one, 1, NULL, 0, 3);
  commit(p);
  uint64_t v3 = store_version(t);
  close_run(&loop, p);
  struct store *u;
  p = open_into(&loop, &u, &info);
  CU_ASSERT_EQUAL(info.dropped, 0);
  CU_ASSERT_EQUAL(store_version(u), v3);
  close_run(&loop, p);
  res_free(r, 200);
  res_free(&one, 1);
  store_free(s);
  store_free(t);
  store_free(u);
  uv_loop_close(&loop);
}

/* Big changes until the records outgrow the base: a compaction runs on a
 * worker thread; the change committed while it runs is not lost. */
static void compaction_in_the_background_keeps_every_change(void) {
  wipe();
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct store *s;
  struct persist_info info;
  struct persist *p = open_into(&loop, &s, &info);
  struct syncd_resource r[200];
  many(r, "v0", 2000); /* ~400 KB */
  store_apply(s, r, 200, 1);
  commit(p);
  struct persist_stats st;
  int late = 0;
  for (int round = 1; round <= 8; round++) {
    res_free(r, 200);
    char tag[16];
    snprintf(tag, sizeof(tag), "v%d", round);
    many(r, tag, 2000);
    store_apply_delta(s, r, 200, NULL, 0, (uint64_t)round + 1);
    commit(p);
    persist_stats(p, &st);
    if (st.compacting && !late) {
      /* a change while the compaction is in flight */
      struct syncd_resource one;
      vhost(&one, "vh:zzz", "late.test", 10);
      store_apply_delta(s, &one, 1, NULL, 0, 99);
      commit(p);
      res_free(&one, 1);
      late = 1;
    }
    for (int i = 0; i < 500 && st.compacting; i++) { /* let it finish, as time would */
      uv_run(&loop, UV_RUN_NOWAIT);
      usleep(2000);
      persist_stats(p, &st);
    }
  }
  CU_ASSERT_TRUE(late);
  CU_ASSERT(st.compactions >= 2);
  uint64_t v = store_version(s);
  close_run(&loop, p);
  /* 9 states' worth written, but the superseded changes are gone */
  CU_ASSERT(st.bytes_written > 3500000);
  CU_ASSERT(journal_len() < 2 * 1024 * 1024);
  struct store *t;
  p = open_into(&loop, &t, &info);
  CU_ASSERT_EQUAL(store_version(t), v);
  CU_ASSERT_PTR_NOT_NULL(store_find(t, VH, "vh:zzz"));
  close_run(&loop, p);
  res_free(r, 200);
  store_free(s);
  store_free(t);
  uv_loop_close(&loop);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("persist", setup, teardown);
  CU_add_test(s, "a_change_writes_its_own_size_and_a_restart_replays_it",
              a_change_writes_its_own_size_and_a_restart_replays_it);
  CU_add_test(s, "a_torn_last_record_falls_back_to_the_change_before",
              a_torn_last_record_falls_back_to_the_change_before);
  CU_add_test(s, "compaction_in_the_background_keeps_every_change",
              compaction_in_the_background_keeps_every_change);
}
