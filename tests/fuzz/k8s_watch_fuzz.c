/*
 * k8s_watch_fuzz — the Kubernetes watch-stream decoder (syncd/k8s_watch.h):
 * the input is a watch body, delivered in chunks whose size comes from its
 * first byte (as an HTTP client would split it). Invariants: every cached
 * key is "namespace/name" of an object with kind set; the partial line the
 * decoder keeps never exceeds its maximum; a stream that reported ERROR
 * 410 is gone; nothing leaks (ASan).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "syncd/k8s_watch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 1 << 18) return 0;
  size_t chunk = (size_t)data[0] % 97 + 1;
  data++, size--;
  json_t *cache = json_object();
  struct k8s_watch w;
  k8s_watch_init(&w, "Ingress", "networking.k8s.io/v1", 4096);
  for (size_t off = 0; off < size; off += chunk) {
    size_t n = size - off < chunk ? size - off : chunk;
    int rc = k8s_watch_feed(&w, (const char *)data + off, n, cache);
    if (w.len > w.max_line && rc == 0) abort();
    if (rc != 0) {
      if (!w.gone && !w.bad) abort(); /* a stop always says why */
      break;
    }
  }
  const char *key;
  json_t *obj;
  json_object_foreach(cache, key, obj) {
    if (!strchr(key, '/')) abort();
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    if (!kind || strcmp(kind, "Ingress") != 0) abort();
  }
  if (strlen(w.rv) >= sizeof(w.rv)) abort();
  k8s_watch_free(&w);
  json_decref(cache);
  return 0;
}
