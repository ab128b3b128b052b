/*
 * statedir — create-or-check of a persistence directory (see statedir.h).
 *
 * Parents are created one component at a time (mkdir -p), each 0700; an
 * EEXIST race with another process creating the same path is fine as long
 * as the result is a directory. Writability is checked with access(2)
 * (W_OK|X_OK), which is what a later temp-file create in DIR needs.
 */
#include "common/statedir.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int statedir_prepare(const char *dir, char *err, size_t errlen) {
  char path[4096];
  size_t n = dir ? strlen(dir) : 0;
  if (n == 0 || n >= sizeof(path)) {
    snprintf(err, errlen, "directory name is empty or too long");
    return -EINVAL;
  }
  memcpy(path, dir, n + 1);
  while (n > 1 && path[n - 1] == '/') path[--n] = '\0';
  int created = 0;
  if (!is_dir(path)) {
    struct stat st;
    if (stat(path, &st) == 0) {
      snprintf(err, errlen, "%s exists and is not a directory", dir);
      return -ENOTDIR;
    }
    /* mkdir -p: every missing component, outermost first */
    for (char *p = path + 1;; p++) {
      if (*p != '/' && *p != '\0') continue;
      char saved = *p;
      *p = '\0';
      if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        int e = errno;
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(e));
        return -e;
      } else if (!is_dir(path)) {
        snprintf(err, errlen, "%s is not a directory", path);
        return -ENOTDIR;
      }
      *p = saved;
      if (saved == '\0') break;
    }
    created = 1;
  }
  if (access(path, W_OK | X_OK) != 0) {
    int e = errno;
    snprintf(err, errlen, "%s is not writable: %s", dir, strerror(e));
    return -e;
  }
  return created;
}
