/*
 * k8s_watch — line splitting and event application for watch streams (see
 * k8s_watch.h). Lines are split on '\n' as they arrive; the unfinished tail
 * is kept for the next chunk, so memory is bounded by max_line.
 */
#include "syncd/k8s_watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void k8s_watch_init(struct k8s_watch *w, const char *kind, const char *api_version,
                    size_t max_line) {
  memset(w, 0, sizeof(*w));
  w->kind = kind;
  w->api_version = api_version;
  w->max_line = max_line;
}

void k8s_watch_free(struct k8s_watch *w) {
  free(w->buf);
  w->buf = NULL;
  w->len = w->cap = 0;
}

int k8s_watch_cache_put(json_t *cache, const char *kind, const char *api_version, json_t *obj) {
  json_t *md = json_object_get(obj, "metadata");
  const char *name = json_string_value(json_object_get(md, "name"));
  const char *ns = json_string_value(json_object_get(md, "namespace"));
  if (!name || !json_is_object(obj)) {
    json_decref(obj);
    return -1;
  }
  char key[600];
  int kl = snprintf(key, sizeof(key), "%s/%s", ns ? ns : "", name);
  if (kl < 0 || (size_t)kl >= sizeof(key)) { /* no Kubernetes name is this long */
    json_decref(obj);
    return -1;
  }
  json_object_set_new(obj, "kind", json_string(kind));
  json_object_set_new(obj, "apiVersion", json_string(api_version));
  return json_object_set_new(cache, key, obj);
}

static void apply_event(struct k8s_watch *w, const char *line, size_t len, json_t *cache) {
  json_t *ev = json_loadb(line, len, 0, NULL);
  if (!json_is_object(ev)) {
    json_decref(ev);
    w->bad = 1;
    return;
  }
  const char *type = json_string_value(json_object_get(ev, "type"));
  json_t *obj = json_object_get(ev, "object");
  const char *rv =
      json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
  if (!type) type = "";
  if (!strcmp(type, "ERROR")) {
    if (json_integer_value(json_object_get(obj, "code")) == 410)
      w->gone = 1;
    else
      w->bad = 1;
    json_decref(ev);
    return;
  }
  if (rv && strlen(rv) < sizeof(w->rv)) snprintf(w->rv, sizeof(w->rv), "%s", rv);
  json_t *md = json_object_get(obj, "metadata");
  const char *name = json_string_value(json_object_get(md, "name"));
  const char *ns = json_string_value(json_object_get(md, "namespace"));
  if (!strcmp(type, "BOOKMARK") || !name) {
    json_decref(ev);
    return;
  }
  if (!strcmp(type, "DELETED")) {
    char key[600];
    int kl = snprintf(key, sizeof(key), "%s/%s", ns ? ns : "", name);
    if (kl >= 0 && (size_t)kl < sizeof(key)) json_object_del(cache, key);
    w->events++;
  } else if (!strcmp(type, "ADDED") || !strcmp(type, "MODIFIED")) {
    k8s_watch_cache_put(cache, w->kind, w->api_version, json_deep_copy(obj));
    w->events++;
  }
  json_decref(ev);
}

int k8s_watch_feed(struct k8s_watch *w, const char *data, size_t n, json_t *cache) {
  if (w->len + n + 1 > w->cap) {
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < w->len + n + 1) cap *= 2;
    char *nb = realloc(w->buf, cap);
    if (!nb) return -1;
    w->buf = nb;
    w->cap = cap;
  }
  memcpy(w->buf + w->len, data, n);
  w->len += n;
  size_t start = 0;
  for (size_t i = 0; i < w->len && !w->gone; i++) {
    if (w->buf[i] != '\n') continue;
    if (i > start) apply_event(w, w->buf + start, i - start, cache);
    start = i + 1;
  }
  memmove(w->buf, w->buf + start, w->len - start);
  w->len -= start;
  if (w->gone) return -1;
  if (w->len > w->max_line) {
    w->bad = 1;
    return -1;
  }
  return 0;
}
