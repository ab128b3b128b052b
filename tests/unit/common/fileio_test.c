/* fileio: bounded whole-file reads and atomic replaces, on a real temp directory. */
#include "common/fileio.h"

#include <CUnit/CUnit.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static int setup(void) {
  const char *base = getenv("TEST_TMPDIR");
  snprintf(dir, sizeof(dir), "%s/fileioXXXXXX", base ? base : "/tmp");
  return mkdtemp(dir) ? 0 : -1;
}

static const char *at(const char *name) {
  static char p[512];
  snprintf(p, sizeof(p), "%s/%s", dir, name);
  return p;
}

static void put(const char *name, const char *text) {
  FILE *f = fopen(at(name), "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs(text, f);
  fclose(f);
}

/* Entries of dir whose name contains ".tmp". */
static int temp_files(void) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) n += strstr(e->d_name, ".tmp") != NULL;
  if (d) closedir(d);
  return n;
}

static void read_returns_contents_nul_terminated(void) {
  put("a.txt", "hello\n");
  char *buf, err[256];
  size_t len;
  CU_ASSERT_EQUAL_FATAL(fileio_read(at("a.txt"), 1024, &buf, &len, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(len, 6);
  CU_ASSERT_STRING_EQUAL(buf, "hello\n");
  free(buf);
}

static void read_of_an_empty_file_is_an_empty_string(void) {
  put("empty", "");
  char *buf, err[256];
  size_t len = 99;
  CU_ASSERT_EQUAL_FATAL(fileio_read(at("empty"), 10, &buf, &len, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(len, 0);
  CU_ASSERT_STRING_EQUAL(buf, "");
  free(buf);
}

static void read_of_a_missing_file_is_enoent_with_the_path(void) {
  char *buf = (char *)1, err[256] = "";
  size_t len;
  CU_ASSERT_EQUAL(fileio_read(at("missing"), 10, &buf, &len, err, sizeof(err)), -ENOENT);
  CU_ASSERT_PTR_NULL(buf);
  CU_ASSERT_EQUAL(strncmp(err, at("missing"), strlen(at("missing"))), 0);
}

static void read_refuses_more_than_max(void) {
  put("big", "0123456789");
  char *buf, err[256];
  size_t len;
  CU_ASSERT_EQUAL(fileio_read(at("big"), 9, &buf, &len, err, sizeof(err)), -EFBIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "too large"));
  CU_ASSERT_EQUAL(fileio_read(at("big"), 10, &buf, &len, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(len, 10);
  free(buf);
}

static void read_refuses_a_directory(void) {
  char *buf, err[256];
  size_t len;
  CU_ASSERT_EQUAL(fileio_read(dir, 1 << 20, &buf, &len, err, sizeof(err)), -EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a regular file"));
}

static void read_without_limit_reads_a_large_file(void) {
  size_t n = 3 << 20;
  char *big = malloc(n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(big);
  for (size_t i = 0; i < n; i++) big[i] = (char)('a' + i % 26);
  char err[256];
  CU_ASSERT_EQUAL_FATAL(fileio_write_atomic_buf(at("large"), big, n, 0600, err, sizeof(err)), 0);
  char *buf;
  size_t len;
  CU_ASSERT_EQUAL_FATAL(fileio_read(at("large"), FILEIO_NO_LIMIT, &buf, &len, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(len, n);
  CU_ASSERT_EQUAL(memcmp(buf, big, n), 0);
  free(buf);
  free(big);
}

/* /proc files are regular files that stat as empty: the read must grow past fstat's size,
 * and still stop at max. */
static void read_grows_past_the_stat_size_up_to_max(void) {
  char *buf, err[256];
  size_t len;
  CU_ASSERT_EQUAL_FATAL(fileio_read("/proc/self/status", 1 << 20, &buf, &len, err, sizeof(err)), 0);
  CU_ASSERT(len > 100);
  CU_ASSERT_EQUAL(strlen(buf), len);
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, "Pid:"));
  free(buf);
  CU_ASSERT_EQUAL(fileio_read("/proc/self/status", 10, &buf, &len, err, sizeof(err)), -EFBIG);
}

static void write_atomic_replaces_contents_and_leaves_no_temp_file(void) {
  put("state", "old contents");
  char err[256];
  CU_ASSERT_EQUAL_FATAL(fileio_write_atomic_buf(at("state"), "new", 3, 0600, err, sizeof(err)), 0);
  char *buf;
  size_t len;
  CU_ASSERT_EQUAL_FATAL(fileio_read(at("state"), 100, &buf, &len, err, sizeof(err)), 0);
  CU_ASSERT_STRING_EQUAL(buf, "new");
  free(buf);
  CU_ASSERT_EQUAL(temp_files(), 0);
}

static void write_atomic_concatenates_the_iovec(void) {
  struct iovec iov[3] = {{"ab", 2}, {"", 0}, {"cde", 3}};
  char err[256], *buf;
  size_t len;
  CU_ASSERT_EQUAL_FATAL(fileio_write_atomic(at("iov"), iov, 3, 0600, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL_FATAL(fileio_read(at("iov"), 100, &buf, &len, err, sizeof(err)), 0);
  CU_ASSERT_STRING_EQUAL(buf, "abcde");
  free(buf);
}

static void write_atomic_sets_the_mode_whatever_the_umask_and_old_file(void) {
  put("key.pem", "secret");
  chmod(at("key.pem"), 0644);
  mode_t old = umask(0);
  char err[256];
  CU_ASSERT_EQUAL(fileio_write_atomic_buf(at("key.pem"), "k", 1, 0600, err, sizeof(err)), 0);
  umask(old);
  struct stat st;
  CU_ASSERT_EQUAL_FATAL(stat(at("key.pem"), &st), 0);
  CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
  old = umask(077);
  CU_ASSERT_EQUAL(fileio_write_atomic_buf(at("pub"), "p", 1, 0644, err, sizeof(err)), 0);
  umask(old);
  CU_ASSERT_EQUAL_FATAL(stat(at("pub"), &st), 0);
  CU_ASSERT_EQUAL(st.st_mode & 0777, 0644);
}

static void write_atomic_failure_keeps_the_target_and_removes_the_temp(void) {
  /* rename(2) onto a non-empty directory fails after the temp is written. */
  CU_ASSERT_EQUAL_FATAL(mkdir(at("target"), 0700), 0);
  put("target/inside", "keep");
  char err[256] = "";
  int rc = fileio_write_atomic_buf(at("target"), "x", 1, 0600, err, sizeof(err));
  CU_ASSERT(rc < 0);
  CU_ASSERT(err[0] != '\0');
  CU_ASSERT_EQUAL(temp_files(), 0);
  char *buf;
  size_t len;
  CU_ASSERT_EQUAL_FATAL(fileio_read(at("target/inside"), 100, &buf, &len, err, sizeof(err)), 0);
  CU_ASSERT_STRING_EQUAL(buf, "keep");
  free(buf);
}

static void write_atomic_into_a_missing_directory_fails_cleanly(void) {
  char err[256] = "";
  CU_ASSERT_EQUAL(fileio_write_atomic_buf(at("nodir/state"), "x", 1, 0600, err, sizeof(err)),
                  -ENOENT);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "nodir/state"));
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("fileio", setup, NULL);
  CU_add_test(s, "read_returns_contents_nul_terminated", read_returns_contents_nul_terminated);
  CU_add_test(s, "read_of_an_empty_file_is_an_empty_string",
              read_of_an_empty_file_is_an_empty_string);
  CU_add_test(s, "read_of_a_missing_file_is_enoent_with_the_path",
              read_of_a_missing_file_is_enoent_with_the_path);
  CU_add_test(s, "read_refuses_more_than_max", read_refuses_more_than_max);
  CU_add_test(s, "read_refuses_a_directory", read_refuses_a_directory);
  CU_add_test(s, "read_without_limit_reads_a_large_file", read_without_limit_reads_a_large_file);
  CU_add_test(s, "read_grows_past_the_stat_size_up_to_max",
              read_grows_past_the_stat_size_up_to_max);
  CU_add_test(s, "write_atomic_replaces_contents_and_leaves_no_temp_file",
              write_atomic_replaces_contents_and_leaves_no_temp_file);
  CU_add_test(s, "write_atomic_concatenates_the_iovec", write_atomic_concatenates_the_iovec);
  CU_add_test(s, "write_atomic_sets_the_mode_whatever_the_umask_and_old_file",
              write_atomic_sets_the_mode_whatever_the_umask_and_old_file);
  CU_add_test(s, "write_atomic_failure_keeps_the_target_and_removes_the_temp",
              write_atomic_failure_keeps_the_target_and_removes_the_temp);
  CU_add_test(s, "write_atomic_into_a_missing_directory_fails_cleanly",
              write_atomic_into_a_missing_directory_fails_cleanly);
}
