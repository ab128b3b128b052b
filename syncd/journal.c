/*
 * journal — checksummed append-only records (see journal.h).
 *
 * The whole file is read at open (it is replayed anyway), scanned by the
 * pure journal_scan, and the file descriptor then stays open in append
 * position. An append is one writev of header + payload followed by
 * fdatasync; if either fails the file is cut back to where it was, so a
 * failed append never leaves half a record in front of the next one.
 */
#include "syncd/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct journal {
  int fd;
  char *path;
  uint64_t size;
  uint64_t base_size;
};

struct journal_compaction {
  char *path, *tmp; /* the journal's path and PATH.compact */
  uint8_t *payload;
  size_t len;
  uint8_t type;
  uint64_t from; /* journal size at begin: records after it are copied */
  int fd;        /* of tmp after write, -1 before */
  int rc;        /* result of journal_compact_write */
};

/* ---- CRC-32C ------------------------------------------------------------ */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int b = 0; b < 8; b++) c = (c & 1) ? 0x82F63B78u ^ (c >> 1) : c >> 1;
    crc_table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++)
    for (int t = 1; t < 8; t++)
      crc_table[t][i] = crc_table[0][crc_table[t - 1][i] & 0xff] ^ (crc_table[t - 1][i] >> 8);
}

uint32_t journal_crc32c(uint32_t crc, const void *data, size_t len) {
  pthread_once(&crc_once, crc_init);
  const uint8_t *p = data;
  crc = ~crc;
  while (len >= 8) { /* slicing by 8: the base record is megabytes */
    uint32_t lo =
        crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
    crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
          crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][p[4]] ^
          crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
    p += 8;
    len -= 8;
  }
  while (len--) crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

/* ---- records ------------------------------------------------------------- */

static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void journal_header(uint8_t out[JOURNAL_HEADER_LEN], uint8_t type, const struct iovec *payload,
                    int n) {
  size_t len = 0;
  for (int i = 0; i < n; i++) len += payload[i].iov_len;
  put_u32(out, (uint32_t)len);
  out[4] = type;
  out[5] = out[6] = out[7] = 0;
  uint32_t crc = journal_crc32c(0, out, 8);
  for (int i = 0; i < n; i++) crc = journal_crc32c(crc, payload[i].iov_base, payload[i].iov_len);
  put_u32(out + 8, crc);
}

long long journal_scan(const uint8_t *buf, size_t len, journal_record_fn fn, void *ud) {
  if (len < JOURNAL_MAGIC_LEN || memcmp(buf, JOURNAL_MAGIC, JOURNAL_MAGIC_LEN) != 0) return -EINVAL;
  size_t off = JOURNAL_MAGIC_LEN;
  while (len - off >= JOURNAL_HEADER_LEN) {
    const uint8_t *h = buf + off;
    uint32_t plen = get_u32(h);
    if (plen > JOURNAL_MAX_PAYLOAD || plen > len - off - JOURNAL_HEADER_LEN) break; /* torn */
    if (h[5] || h[6] || h[7]) break;
    uint32_t crc = journal_crc32c(journal_crc32c(0, h, 8), h + JOURNAL_HEADER_LEN, plen);
    if (crc != get_u32(h + 8)) break;
    struct journal_record r = {h[4], h + JOURNAL_HEADER_LEN, plen, off};
    if (fn && fn(ud, &r) != 0) break;
    off += JOURNAL_HEADER_LEN + plen;
  }
  return (long long)off;
}

/* ---- file I/O ------------------------------------------------------------ */

static int fail(char *err, size_t errlen, int e, const char *path, const char *what) {
  if (err && errlen) snprintf(err, errlen, "%s: %s: %s", path, what, strerror(e));
  return -e;
}

static int read_fd(int fd, uint8_t **out, size_t *len) {
  struct stat st;
  if (fstat(fd, &st) != 0) return -errno;
  if (!S_ISREG(st.st_mode)) return -EINVAL;
  size_t size = (size_t)st.st_size, got = 0;
  uint8_t *buf = malloc(size ? size : 1);
  if (!buf) return -ENOMEM;
  while (got < size) {
    ssize_t r = pread(fd, buf + got, size - got, (off_t)got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  *out = buf;
  *len = got; /* a file that shrank while read is scanned as far as it goes */
  return 0;
}

static int write_all(int fd, const struct iovec *iov, int n, off_t at) {
  struct iovec local[8];
  if (n > 8) return -EINVAL;
  memcpy(local, iov, (size_t)n * sizeof(*iov));
  struct iovec *v = local;
  while (n > 0) {
    ssize_t w = pwritev(fd, v, n, at);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -errno;
    if (w == 0) return -EIO;
    at += w;
    while (n > 0 && (size_t)w >= v->iov_len) {
      w -= (ssize_t)v->iov_len;
      v++, n--;
    }
    if (n > 0) {
      v->iov_base = (uint8_t *)v->iov_base + w;
      v->iov_len -= (size_t)w;
    }
  }
  return 0;
}

static void fsync_dir_of(const char *path) {
  char dir[PATH_MAX];
  snprintf(dir, sizeof(dir), "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash)
    *(slash == dir ? slash + 1 : slash) = '\0';
  else
    snprintf(dir, sizeof(dir), ".");
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
}

int journal_open(const char *path, journal_record_fn fn, void *ud, struct journal **out,
                 struct journal_open_info *info, char *err, size_t errlen) {
  struct journal_open_info local;
  if (!info) info = &local;
  memset(info, 0, sizeof(*info));
  *out = NULL;
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return fail(err, errlen, errno, path, "create");
    struct iovec m = {(void *)JOURNAL_MAGIC, JOURNAL_MAGIC_LEN};
    int rc = write_all(fd, &m, 1, 0);
    if (rc == 0 && fsync(fd) != 0) rc = -errno;
    if (rc != 0) {
      close(fd);
      unlink(path);
      return fail(err, errlen, -rc, path, "write");
    }
    fsync_dir_of(path);
    info->created = 1;
  } else if (fd < 0) {
    return fail(err, errlen, errno, path, "open");
  }
  if (fchmod(fd, 0600) != 0) { /* it holds private keys, whatever made it */
    int e = errno;
    close(fd);
    return fail(err, errlen, e, path, "chmod");
  }
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = read_fd(fd, &buf, &len);
  if (rc != 0) {
    close(fd);
    return fail(err, errlen, -rc, path, "read");
  }
  /* The intact prefix, then replay it: a record fn refuses ends the
   * journal there as surely as a bad checksum (it is dropped with the rest). */
  long long good = journal_scan(buf, len, NULL, NULL);
  uint64_t replayed = 0;
  if (good >= 0) {
    size_t off = JOURNAL_MAGIC_LEN;
    while (off < (size_t)good) {
      struct journal_record r = {buf[off + 4], buf + off + JOURNAL_HEADER_LEN, get_u32(buf + off),
                                 off};
      if (fn && fn(ud, &r) != 0) break;
      replayed++;
      off += JOURNAL_HEADER_LEN + r.len;
    }
    good = (long long)off;
  }
  free(buf);
  if (good < 0) {
    close(fd);
    if (err && errlen) snprintf(err, errlen, "%s: not a syncd journal (bad magic)", path);
    return -EINVAL;
  }
  info->records = replayed;
  info->good_len = (uint64_t)good;
  info->dropped = len - (uint64_t)good;
  if (info->dropped) {
    if (ftruncate(fd, (off_t)good) != 0 || fsync(fd) != 0) {
      int e = errno;
      close(fd);
      return fail(err, errlen, e, path, "truncate the torn tail");
    }
  }
  struct journal *j = calloc(1, sizeof(*j));
  if (!j || !(j->path = strdup(path))) {
    free(j);
    close(fd);
    return fail(err, errlen, ENOMEM, path, "open");
  }
  j->fd = fd;
  j->size = j->base_size = (uint64_t)good;
  *out = j;
  return 0;
}

int journal_append(struct journal *j, uint8_t type, const struct iovec *payload, int n, char *err,
                   size_t errlen) {
  if (n > 7) return fail(err, errlen, EINVAL, j->path, "append");
  uint8_t h[JOURNAL_HEADER_LEN];
  journal_header(h, type, payload, n);
  struct iovec v[8];
  v[0] = (struct iovec){h, sizeof(h)};
  size_t total = sizeof(h);
  for (int i = 0; i < n; i++) {
    v[i + 1] = payload[i];
    total += payload[i].iov_len;
  }
  if (total - sizeof(h) > JOURNAL_MAX_PAYLOAD) return fail(err, errlen, EFBIG, j->path, "append");
  int rc = write_all(j->fd, v, n + 1, (off_t)j->size);
  if (rc == 0 && fdatasync(j->fd) != 0) rc = -errno;
  if (rc != 0) {
    if (ftruncate(j->fd, (off_t)j->size) != 0) { /* nothing better to do: the next open cuts it */
    }
    return fail(err, errlen, -rc, j->path, "append");
  }
  j->size += total;
  return 0;
}

uint64_t journal_size(const struct journal *j) {
  return j->size;
}

uint64_t journal_base_size(const struct journal *j) {
  return j->base_size;
}

void journal_close(struct journal *j) {
  if (!j) return;
  close(j->fd);
  free(j->path);
  free(j);
}

/* ---- compaction ------------------------------------------------------------ */

int journal_compact_begin(struct journal *j, uint8_t type, uint8_t *payload, size_t len,
                          struct journal_compaction **out) {
  struct journal_compaction *c = calloc(1, sizeof(*c));
  if (!c) {
    free(payload);
    return -ENOMEM;
  }
  c->path = strdup(j->path);
  if (c->path && asprintf(&c->tmp, "%s.compact", j->path) < 0) c->tmp = NULL;
  if (!c->path || !c->tmp) {
    free(c->path);
    free(c);
    free(payload);
    return -ENOMEM;
  }
  c->payload = payload;
  c->len = len;
  c->type = type;
  c->from = j->size;
  c->fd = -1;
  *out = c;
  return 0;
}

int journal_compact_write(struct journal_compaction *c) {
  int fd = open(c->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return c->rc = -errno;
  uint8_t h[JOURNAL_HEADER_LEN];
  struct iovec pl = {c->payload, c->len};
  journal_header(h, c->type, &pl, 1);
  struct iovec v[3] = {{(void *)JOURNAL_MAGIC, JOURNAL_MAGIC_LEN}, {h, sizeof(h)}, pl};
  int rc = fchmod(fd, 0600) != 0 ? -errno : write_all(fd, v, 3, 0);
  if (rc == 0 && fsync(fd) != 0) rc = -errno;
  free(c->payload);
  c->payload = NULL;
  if (rc != 0) {
    close(fd);
    unlink(c->tmp);
    return c->rc = rc;
  }
  c->fd = fd;
  return c->rc = 0;
}

static void compaction_free(struct journal_compaction *c) {
  if (c->fd >= 0) close(c->fd);
  free(c->payload);
  free(c->path);
  free(c->tmp);
  free(c);
}

int journal_compact_finish(struct journal *j, struct journal_compaction *c, char *err,
                           size_t errlen) {
  int rc = c->rc;
  if (rc == 0 && c->fd < 0) rc = -EINVAL; /* never written */
  if (rc != 0) {
    fail(err, errlen, -rc, c->tmp, "write");
    compaction_free(c);
    return rc;
  }
  /* the records appended meanwhile, copied in order after the base */
  off_t at = lseek(c->fd, 0, SEEK_END);
  uint64_t left = j->size - c->from;
  uint8_t chunk[65536];
  for (uint64_t off = c->from; left > 0 && at >= 0;) {
    size_t want = left < sizeof(chunk) ? (size_t)left : sizeof(chunk);
    ssize_t r = pread(j->fd, chunk, want, (off_t)off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      rc = r < 0 ? -errno : -EIO;
      break;
    }
    struct iovec v = {chunk, (size_t)r};
    rc = write_all(c->fd, &v, 1, at);
    if (rc != 0) break;
    at += r;
    off += (uint64_t)r;
    left -= (uint64_t)r;
  }
  if (at < 0) rc = -errno;
  if (rc == 0 && fsync(c->fd) != 0) rc = -errno;
  if (rc == 0 && rename(c->tmp, j->path) != 0) rc = -errno;
  if (rc != 0) {
    fail(err, errlen, -rc, c->tmp, "finish compaction");
    unlink(c->tmp);
    compaction_free(c);
    return rc;
  }
  fsync_dir_of(j->path);
  close(j->fd);
  j->fd = c->fd;
  c->fd = -1;
  j->size = (uint64_t)at;
  j->base_size = (uint64_t)JOURNAL_MAGIC_LEN + JOURNAL_HEADER_LEN + c->len;
  compaction_free(c);
  return 0;
}
