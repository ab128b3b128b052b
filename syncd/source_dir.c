/*
 * source_dir — "dir:PATH": every *.yaml, *.yml and *.json file under PATH.
 *
 * Files are read in sorted path order (so the same tree always gives the
 * same state); hidden entries (".swp" files, Kubernetes ConfigMap "..data"
 * directories) are skipped, symlinked files are followed. A file that does
 * not parse is reported (file:line) and the others are kept; an unreadable
 * PATH is a transient error that keeps the previous state.
 *
 * Watching: Linux inotify (uv_fs_event) is not recursive, so after each
 * load the set of watched directories is made equal to the directories
 * found. Editors that save by rename are covered because the directory,
 * not the file, is watched.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileio.h"
#include "common/log.h"
#include "syncd/source_internal.h"

#define DIR_MAX_DEPTH 16
#define DIR_MAX_FILE_BYTES (16u << 20)

struct watch {
  uv_fs_event_t ev;
  char *path;
  int seen; /* found by the latest scan */
  struct dir_source *owner;
};

/* A file as parsed at the last load, reused while its identity and mtime are unchanged. */
struct parsed_file {
  char *path;
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime, ctime;
  struct manifest_set set;
};

struct dir_source {
  struct syncd_source *s;
  char *root;
  struct parsed_file *files; /* sorted by path */
  size_t n_files;
  struct watch **watches;
  size_t n_watches;
  int open;     /* watch handles not yet closed */
  int stopping; /* free ds once open drops to 0 */
};

struct strvec {
  char **v;
  size_t n, cap;
};

static int strvec_push(struct strvec *sv, char *s) {
  if (!s) return -ENOMEM;
  if (sv->n == sv->cap) {
    size_t cap = sv->cap ? sv->cap * 2 : 32;
    char **nv = realloc(sv->v, cap * sizeof(*nv));
    if (!nv) {
      free(s);
      return -ENOMEM;
    }
    sv->v = nv;
    sv->cap = cap;
  }
  sv->v[sv->n++] = s;
  return 0;
}

static void strvec_free(struct strvec *sv) {
  for (size_t i = 0; i < sv->n; i++) free(sv->v[i]);
  free(sv->v);
}

/* qsort that accepts an empty (NULL) array, which qsort itself must not be given. */
static void sort_array(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *)) {
  if (n > 1) qsort(base, n, size, cmp);
}

static int strp_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_manifest_name(const char *n) {
  size_t l = strlen(n);
  return (l > 5 && !strcmp(n + l - 5, ".yaml")) || (l > 4 && !strcmp(n + l - 4, ".yml")) ||
         (l > 5 && !strcmp(n + l - 5, ".json"));
}

/* Collects manifest files and directories under path. Fails only when path itself is unreadable. */
static int scan(const char *path, int depth, struct strvec *files, struct strvec *dirs) {
  DIR *d = opendir(path);
  if (!d) return -errno;
  int rc = strvec_push(dirs, strdup(path));
  struct dirent *e;
  while (rc == 0 && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char *child = NULL;
    if (asprintf(&child, "%s/%s", path, e->d_name) < 0) {
      rc = -ENOMEM;
      break;
    }
    struct stat st;
    if (stat(child, &st) < 0) {
      free(child);
      continue;
    }
    if (S_ISDIR(st.st_mode)) {
      if (depth < DIR_MAX_DEPTH) scan(child, depth + 1, files, dirs);
      free(child);
    } else if (S_ISREG(st.st_mode) && is_manifest_name(e->d_name)) {
      rc = strvec_push(files, child);
    } else {
      free(child);
    }
  }
  closedir(d);
  return rc;
}

static void parsed_files_free(struct parsed_file *f, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(f[i].path);
    manifest_set_free(&f[i].set);
  }
  free(f);
}

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status) {
  struct watch *w = h->data;
  if (filename && filename[0] == '.') return; /* editor swap files and the like */
  source_changed(w->owner->s);
}

static void on_watch_closed(uv_handle_t *h) {
  struct watch *w = h->data;
  struct dir_source *ds = w->owner;
  free(w->path);
  free(w);
  if (--ds->open == 0 && ds->stopping) {
    struct syncd_source *s = ds->s;
    free(ds->watches);
    parsed_files_free(ds->files, ds->n_files);
    free(ds->root);
    free(ds);
    source_kind_stopped(s);
  }
}

/* Makes the watched directories equal to dirs (sorted). */
static void sync_watches(struct dir_source *ds, struct strvec *dirs) {
  for (size_t i = 0; i < ds->n_watches; i++) ds->watches[i]->seen = 0;
  for (size_t i = 0; i < dirs->n; i++) {
    struct watch *found = NULL;
    for (size_t j = 0; j < ds->n_watches && !found; j++)
      if (!strcmp(ds->watches[j]->path, dirs->v[i])) found = ds->watches[j];
    if (found) {
      found->seen = 1;
      continue;
    }
    struct watch **nw = realloc(ds->watches, (ds->n_watches + 1) * sizeof(*nw));
    if (!nw) continue;
    ds->watches = nw;
    struct watch *w = calloc(1, sizeof(*w));
    if (!w || !(w->path = strdup(dirs->v[i]))) {
      free(w);
      continue;
    }
    w->owner = ds;
    w->seen = 1;
    uv_fs_event_init(ds->s->loop, &w->ev);
    w->ev.data = w;
    ds->open++;
    int rc = uv_fs_event_start(&w->ev, on_fs_event, w->path, 0);
    if (rc < 0) {
      LOG_WARN("dir_watch_failed", "path=%s err=%s", log_q(w->path), uv_strerror(rc));
      uv_close((uv_handle_t *)&w->ev, on_watch_closed);
      continue;
    }
    ds->watches[ds->n_watches++] = w;
  }
  size_t kept = 0;
  for (size_t i = 0; i < ds->n_watches; i++) {
    if (ds->watches[i]->seen)
      ds->watches[kept++] = ds->watches[i];
    else
      uv_close((uv_handle_t *)&ds->watches[i]->ev, on_watch_closed);
  }
  ds->n_watches = kept;
}

static int same_file(const struct parsed_file *f, const struct stat *st) {
  return f->dev == st->st_dev && f->ino == st->st_ino && f->size == st->st_size &&
         f->mtime.tv_sec == st->st_mtim.tv_sec && f->mtime.tv_nsec == st->st_mtim.tv_nsec &&
         f->ctime.tv_sec == st->st_ctim.tv_sec && f->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

/* Parses one file into f->set (a read error becomes an error entry). -ENOMEM or 0. */
static int parse_file(struct parsed_file *f) {
  char *text;
  size_t len;
  int r = fileio_read(f->path, DIR_MAX_FILE_BYTES, &text, &len, NULL, 0);
  if (r < 0) {
    char msg[256], loc[1024];
    snprintf(msg, sizeof(msg), "cannot read file: %s", strerror(-r));
    snprintf(loc, sizeof(loc), "%s:0", f->path);
    return manifest_add_error(&f->set, loc, msg);
  }
  r = manifest_parse(&f->set, text, len, f->path);
  free(text);
  return r == -ENOMEM ? r : 0;
}

/* Appends everything in from to set (documents shared by reference). */
static int append_set(struct manifest_set *set, const struct manifest_set *from) {
  for (size_t i = 0; i < from->n_docs; i++)
    if (manifest_add(set, from->docs[i].obj, from->docs[i].location) < 0) return -ENOMEM;
  for (size_t i = 0; i < from->n_errors; i++)
    if (manifest_add_error(set, from->errors[i].location, from->errors[i].message) < 0)
      return -ENOMEM;
  return 0;
}

static int dir_collect(struct syncd_source *s, struct manifest_set *set, char *err, size_t errlen) {
  struct dir_source *ds = s->impl;
  struct strvec files = {0}, dirs = {0};
  int rc = scan(ds->root, 0, &files, &dirs);
  if (rc < 0) {
    snprintf(err, errlen, "cannot read directory %s: %s", ds->root, strerror(-rc));
    strvec_free(&files);
    strvec_free(&dirs);
    return rc;
  }
  sort_array(files.v, files.n, sizeof(char *), strp_cmp);
  sort_array(dirs.v, dirs.n, sizeof(char *), strp_cmp);
  sync_watches(ds, &dirs);
  struct parsed_file *next = calloc(files.n + 1, sizeof(*next));
  if (!next) rc = -ENOMEM;
  size_t old = 0, n_next = 0;
  for (size_t i = 0; i < files.n && rc == 0; i++) {
    struct parsed_file *f = &next[n_next++];
    struct stat st;
    int have_stat = stat(files.v[i], &st) == 0;
    while (old < ds->n_files && strcmp(ds->files[old].path, files.v[i]) < 0) old++;
    if (have_stat && old < ds->n_files && !strcmp(ds->files[old].path, files.v[i]) &&
        same_file(&ds->files[old], &st)) {
      *f = ds->files[old]; /* unchanged: take it over */
      memset(&ds->files[old], 0, sizeof(ds->files[old]));
      old++;
    } else {
      f->path = files.v[i];
      files.v[i] = NULL;
      manifest_set_init(&f->set);
      if (have_stat) {
        f->dev = st.st_dev, f->ino = st.st_ino, f->size = st.st_size;
        f->mtime = st.st_mtim, f->ctime = st.st_ctim;
      }
      rc = parse_file(f);
    }
    if (rc == 0) rc = append_set(set, &f->set);
  }
  parsed_files_free(ds->files, ds->n_files);
  ds->files = next;
  ds->n_files = next ? n_next : 0;
  strvec_free(&files);
  strvec_free(&dirs);
  if (rc < 0) snprintf(err, errlen, "out of memory reading %s", ds->root);
  return rc;
}

static int dir_start(struct syncd_source *s, const struct syncd_source_opts *o, char *err,
                     size_t errlen) {
  const char *path = o->spec + 4;
  struct stat st;
  if (stat(path, &st) < 0) {
    snprintf(err, errlen, "source %s: %s", o->spec, strerror(errno));
    return -ENOENT;
  }
  if (!S_ISDIR(st.st_mode)) {
    snprintf(err, errlen, "source %s: not a directory", o->spec);
    return -ENOTDIR;
  }
  struct dir_source *ds = calloc(1, sizeof(*ds));
  if (!ds || !(ds->root = strdup(path))) {
    free(ds);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  size_t l = strlen(ds->root);
  while (l > 1 && ds->root[l - 1] == '/') ds->root[--l] = '\0';
  ds->s = s;
  s->impl = ds;
  source_changed(s); /* the initial load, after debounce at most */
  return 0;
}

static void dir_stop(struct syncd_source *s) {
  struct dir_source *ds = s->impl;
  ds->stopping = 1;
  if (ds->open == 0) {
    free(ds->watches);
    parsed_files_free(ds->files, ds->n_files);
    free(ds->root);
    free(ds);
    source_kind_stopped(s);
    return;
  }
  for (size_t i = 0; i < ds->n_watches; i++)
    uv_close((uv_handle_t *)&ds->watches[i]->ev, on_watch_closed);
  ds->n_watches = 0;
}

const struct source_ops source_dir_ops = {dir_start, dir_collect, NULL, dir_stop};
