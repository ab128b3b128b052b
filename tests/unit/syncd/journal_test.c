/* journal: CRC-32C vector, append and replay in order, a torn tail cut at
 * every byte of the last record is detected, dropped and truncated (and
 * appends continue after the last good record), a corrupt byte stops the
 * replay there, compaction keeps the records appended while it ran. */
#include "syncd/journal.h"

#include <CUnit/CUnit.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256], path[300];

static int setup(void) {
  snprintf(dir, sizeof(dir), "/tmp/journal_test.XXXXXX");
  if (!mkdtemp(dir)) return -1;
  snprintf(path, sizeof(path), "%s/journal", dir);
  return 0;
}

static int teardown(void) {
  unlink(path);
  char tmp[400];
  snprintf(tmp, sizeof(tmp), "%s.compact", path);
  unlink(tmp);
  return rmdir(dir);
}

/* Records seen by a replay: type and payload text. */
struct seen {
  int n;
  uint8_t type[64];
  char text[64][64];
  int refuse_at; /* refuse the record with this index (-1: none) */
};

static int collect(void *ud, const struct journal_record *r) {
  struct seen *s = ud;
  if (s->n == s->refuse_at) return -1;
  if (s->n < 64) {
    s->type[s->n] = r->type;
    snprintf(s->text[s->n], sizeof(s->text[0]), "%.*s", (int)r->len, (const char *)r->data);
  }
  s->n++;
  return 0;
}

static int append_text(struct journal *j, uint8_t type, const char *text) {
  struct iovec v = {(void *)text, strlen(text)};
  char err[256];
  return journal_append(j, type, &v, 1, err, sizeof(err));
}

static struct journal *open_seen(struct seen *s, struct journal_open_info *info) {
  struct journal *j = NULL;
  char err[256] = "";
  memset(s, 0, sizeof(*s));
  s->refuse_at = -1;
  int rc = journal_open(path, collect, s, &j, info, err, sizeof(err));
  CU_ASSERT_EQUAL(rc, 0);
  if (rc != 0) fprintf(stderr, "journal_open: %s\n", err);
  return j;
}

static off_t file_size(void) {
  struct stat st;
  return stat(path, &st) == 0 ? st.st_size : -1;
}

static void crc32c_matches_the_standard_check_value(void) {
  CU_ASSERT_EQUAL(journal_crc32c(0, "123456789", 9), 0xe3069283u);
  /* incremental = one shot */
  uint32_t c = journal_crc32c(journal_crc32c(0, "1234", 4), "56789", 5);
  CU_ASSERT_EQUAL(c, 0xe3069283u);
}

static void appended_records_replay_in_order_after_reopen(void) {
  unlink(path);
  struct seen s;
  struct journal_open_info info;
  struct journal *j = open_seen(&s, &info);
  CU_ASSERT_FATAL(j != NULL);
  CU_ASSERT_EQUAL(info.created, 1);
  CU_ASSERT_EQUAL(s.n, 0);
  CU_ASSERT_EQUAL(append_text(j, 1, "base"), 0);
  CU_ASSERT_EQUAL(append_text(j, 2, "delta one"), 0);
  CU_ASSERT_EQUAL(append_text(j, 2, "delta two"), 0);
  CU_ASSERT_EQUAL((uint64_t)file_size(), journal_size(j));
  journal_close(j);
  j = open_seen(&s, &info);
  CU_ASSERT_FATAL(j != NULL);
  CU_ASSERT_EQUAL(info.created, 0);
  CU_ASSERT_EQUAL(info.dropped, 0);
  CU_ASSERT_EQUAL(s.n, 3);
  CU_ASSERT_EQUAL(s.type[0], 1);
  CU_ASSERT_STRING_EQUAL(s.text[0], "base");
  CU_ASSERT_STRING_EQUAL(s.text[2], "delta two");
  /* the file is private: it holds keys */
  struct stat st;
  CU_ASSERT_EQUAL(stat(path, &st), 0);
  CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
  journal_close(j);
}

/* A crash mid-append leaves any prefix of the last record: every cut is
 * detected, only the torn record is lost, and the file is truncated so the
 * next append is readable. */
static void torn_tail_at_every_byte_is_dropped_and_truncated(void) {
  unlink(path);
  struct seen s;
  struct journal_open_info info;
  struct journal *j = open_seen(&s, &info);
  CU_ASSERT_FATAL(j != NULL);
  append_text(j, 1, "kept one");
  append_text(j, 2, "kept two");
  off_t good = file_size();
  append_text(j, 2, "the torn record, long enough to cut in many places");
  off_t full = file_size();
  journal_close(j);
  for (off_t cut = good + 1; cut < full; cut++) {
    CU_ASSERT_EQUAL_FATAL(truncate(path, cut), 0);
    j = open_seen(&s, &info);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT_EQUAL(s.n, 2);
    CU_ASSERT_EQUAL(info.dropped, (uint64_t)(cut - good));
    CU_ASSERT_EQUAL(file_size(), good);
    /* appends continue after the last good record */
    CU_ASSERT_EQUAL(append_text(j, 3, "after"), 0);
    journal_close(j);
    j = open_seen(&s, &info);
    CU_ASSERT_EQUAL(s.n, 3);
    CU_ASSERT_STRING_EQUAL(s.text[2], "after");
    CU_ASSERT_EQUAL(info.dropped, 0);
    journal_close(j);
    /* restore the torn record for the next cut */
    CU_ASSERT_EQUAL_FATAL(truncate(path, good), 0);
    j = open_seen(&s, &info);
    append_text(j, 2, "the torn record, long enough to cut in many places");
    journal_close(j);
    CU_ASSERT_EQUAL_FATAL(file_size(), full);
  }
}

static void corrupt_byte_stops_the_replay_at_that_record(void) {
  unlink(path);
  struct seen s;
  struct journal *j = open_seen(&s, NULL);
  CU_ASSERT_FATAL(j != NULL);
  append_text(j, 1, "one");
  off_t second = file_size();
  append_text(j, 2, "two");
  append_text(j, 2, "three");
  journal_close(j);
  int fd = open(path, O_RDWR);
  CU_ASSERT_FATAL(fd >= 0);
  uint8_t b;
  off_t at = second + JOURNAL_HEADER_LEN + 1; /* inside "two" */
  CU_ASSERT_EQUAL(pread(fd, &b, 1, at), 1);
  b ^= 0x20;
  CU_ASSERT_EQUAL(pwrite(fd, &b, 1, at), 1);
  close(fd);
  struct journal_open_info info;
  j = open_seen(&s, &info);
  CU_ASSERT_EQUAL(s.n, 1);
  CU_ASSERT_STRING_EQUAL(s.text[0], "one");
  CU_ASSERT(info.dropped > 0);
  CU_ASSERT_EQUAL(file_size(), second);
  journal_close(j);
}

static void a_record_the_reader_refuses_ends_the_journal_there(void) {
  unlink(path);
  struct seen s;
  struct journal *j = open_seen(&s, NULL);
  append_text(j, 1, "a");
  off_t keep = file_size();
  append_text(j, 2, "b");
  append_text(j, 2, "c");
  journal_close(j);
  memset(&s, 0, sizeof(s));
  s.refuse_at = 1;
  struct journal_open_info info;
  char err[256];
  CU_ASSERT_EQUAL(journal_open(path, collect, &s, &j, &info, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(info.records, 1);
  CU_ASSERT_EQUAL(file_size(), keep);
  journal_close(j);
}

static void a_file_that_is_not_a_journal_is_refused_and_left_alone(void) {
  unlink(path);
  FILE *f = fopen(path, "w");
  fputs("EDGESYN1 an older state file", f);
  fclose(f);
  off_t before = file_size();
  struct journal *j = NULL;
  char err[256] = "";
  CU_ASSERT_EQUAL(journal_open(path, collect, NULL, &j, NULL, err, sizeof(err)), -EINVAL);
  CU_ASSERT_PTR_NULL(j);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a syncd journal"));
  CU_ASSERT_EQUAL(file_size(), before);
  unlink(path);
}

static void compaction_keeps_records_appended_while_it_ran(void) {
  unlink(path);
  struct seen s;
  struct journal *j = open_seen(&s, NULL);
  append_text(j, 1, "old base");
  append_text(j, 2, "old delta");
  struct journal_compaction *c;
  CU_ASSERT_EQUAL_FATAL(journal_compact_begin(j, 1, (uint8_t *)strdup("new base"), 8, &c), 0);
  CU_ASSERT_EQUAL(append_text(j, 2, "during 1"), 0); /* the loop keeps appending */
  CU_ASSERT_EQUAL(journal_compact_write(c), 0);      /* (another thread in syncd) */
  CU_ASSERT_EQUAL(append_text(j, 2, "during 2"), 0);
  char err[256];
  CU_ASSERT_EQUAL(journal_compact_finish(j, c, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(append_text(j, 2, "after"), 0);
  CU_ASSERT_EQUAL(journal_base_size(j), JOURNAL_MAGIC_LEN + JOURNAL_HEADER_LEN + 8);
  journal_close(j);
  j = open_seen(&s, NULL);
  CU_ASSERT_EQUAL(s.n, 4);
  CU_ASSERT_STRING_EQUAL(s.text[0], "new base");
  CU_ASSERT_STRING_EQUAL(s.text[1], "during 1");
  CU_ASSERT_STRING_EQUAL(s.text[2], "during 2");
  CU_ASSERT_STRING_EQUAL(s.text[3], "after");
  journal_close(j);
  char tmp[400];
  snprintf(tmp, sizeof(tmp), "%s.compact", path);
  CU_ASSERT_NOT_EQUAL(access(tmp, F_OK), 0);
}

static void a_failed_compaction_leaves_the_old_journal_in_use(void) {
  unlink(path);
  struct seen s;
  struct journal *j = open_seen(&s, NULL);
  append_text(j, 1, "base");
  struct journal_compaction *c;
  CU_ASSERT_EQUAL_FATAL(journal_compact_begin(j, 1, (uint8_t *)strdup("x"), 1, &c), 0);
  /* never written: finish abandons it */
  char err[256];
  CU_ASSERT_NOT_EQUAL(journal_compact_finish(j, c, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(append_text(j, 2, "still appending"), 0);
  journal_close(j);
  j = open_seen(&s, NULL);
  CU_ASSERT_EQUAL(s.n, 2);
  journal_close(j);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("journal", setup, teardown);
  CU_add_test(s, "crc32c_matches_the_standard_check_value",
              crc32c_matches_the_standard_check_value);
  CU_add_test(s, "appended_records_replay_in_order_after_reopen",
              appended_records_replay_in_order_after_reopen);
  CU_add_test(s, "torn_tail_at_every_byte_is_dropped_and_truncated",
              torn_tail_at_every_byte_is_dropped_and_truncated);
  CU_add_test(s, "corrupt_byte_stops_the_replay_at_that_record",
              corrupt_byte_stops_the_replay_at_that_record);
  CU_add_test(s, "a_record_the_reader_refuses_ends_the_journal_there",
              a_record_the_reader_refuses_ends_the_journal_there);
  CU_add_test(s, "a_file_that_is_not_a_journal_is_refused_and_left_alone",
              a_file_that_is_not_a_journal_is_refused_and_left_alone);
  CU_add_test(s, "compaction_keeps_records_appended_while_it_ran",
              compaction_keeps_records_appended_while_it_ran);
  CU_add_test(s, "a_failed_compaction_leaves_the_old_journal_in_use",
              a_failed_compaction_leaves_the_old_journal_in_use);
}
