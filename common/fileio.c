/*
 * fileio — whole-file reads and atomic replaces (see fileio.h).
 *
 * The temp file is named PATH.tmp.PID.N: two processes (or two threads)
 * writing the same path never write into each other's temp file, so the
 * file renamed into place is always one writer's complete contents.
 */
#include "common/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void fio_err(char *err, size_t errlen, const char *path, const char *why) {
  if (err && errlen) snprintf(err, errlen, "%s: %s", path, why);
}

static int fio_fail(char *err, size_t errlen, const char *path, int e) {
  fio_err(err, errlen, path, strerror(e));
  return -e;
}

int fileio_read(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen) {
  *out = NULL;
  *len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fio_fail(err, errlen, path, errno);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return fio_fail(err, errlen, path, e);
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    fio_err(err, errlen, path, "not a regular file");
    return -EINVAL;
  }
  if ((uint64_t)st.st_size > (uint64_t)max || (uint64_t)st.st_size >= SIZE_MAX / 2) {
    close(fd);
    fio_err(err, errlen, path, "file too large");
    return -EFBIG;
  }
  /* One spare byte: a read that fills it means the file grew since fstat. */
  size_t cap = (size_t)st.st_size + 1, n = 0;
  char *buf = malloc(cap + 1);
  if (!buf) {
    close(fd);
    return fio_fail(err, errlen, path, ENOMEM);
  }
  for (;;) {
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      free(buf);
      close(fd);
      return fio_fail(err, errlen, path, e);
    }
    if (r == 0) break;
    n += (size_t)r;
    if (n < cap) continue;
    /* The file grew since fstat: read on up to max, never past it. */
    if (n > max || cap >= SIZE_MAX / 4) {
      free(buf);
      close(fd);
      fio_err(err, errlen, path, "file too large");
      return -EFBIG;
    }
    size_t ncap = cap * 2;
    if (max != FILEIO_NO_LIMIT && ncap > max + 1) ncap = max + 1;
    char *nb = realloc(buf, ncap + 1);
    if (!nb) {
      free(buf);
      close(fd);
      return fio_fail(err, errlen, path, ENOMEM);
    }
    buf = nb;
    cap = ncap;
  }
  close(fd);
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return 0;
}

static int fio_write_all(int fd, const struct iovec *iov, int iovcnt) {
  for (int i = 0; i < iovcnt; i++) {
    const char *p = iov[i].iov_base;
    size_t left = iov[i].iov_len;
    while (left > 0) {
      ssize_t w = write(fd, p, left);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return -errno;
      if (w == 0) return -EIO;
      p += w;
      left -= (size_t)w;
    }
  }
  return 0;
}

/* fsync of the directory that holds path: makes the rename durable. */
static void fio_sync_dir(const char *path) {
  char dir[PATH_MAX];
  const char *slash = strrchr(path, '/');
  if (!slash)
    snprintf(dir, sizeof(dir), ".");
  else if (slash == path)
    snprintf(dir, sizeof(dir), "/");
  else
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
}

int fileio_write_atomic(const char *path, const struct iovec *iov, int iovcnt, mode_t mode,
                        char *err, size_t errlen) {
  static atomic_uint seq;
  char tmp[PATH_MAX];
  int n =
      snprintf(tmp, sizeof(tmp), "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&seq, 1));
  if (n < 0 || (size_t)n >= sizeof(tmp)) {
    fio_err(err, errlen, path, "path too long");
    return -ENAMETOOLONG;
  }
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return fio_fail(err, errlen, tmp, errno);
  int rc = fchmod(fd, mode) != 0 ? -errno : 0; /* an old temp file may have other bits */
  if (rc == 0) rc = fio_write_all(fd, iov, iovcnt);
  if (rc == 0 && fsync(fd) != 0) rc = -errno;
  if (close(fd) != 0 && rc == 0) rc = -errno;
  if (rc < 0) {
    unlink(tmp);
    return fio_fail(err, errlen, tmp, -rc);
  }
  if (rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    return fio_fail(err, errlen, path, e);
  }
  fio_sync_dir(path);
  return 0;
}

int fileio_write_atomic_buf(const char *path, const void *data, size_t len, mode_t mode, char *err,
                            size_t errlen) {
  struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
  return fileio_write_atomic(path, &iov, 1, mode, err, errlen);
}
