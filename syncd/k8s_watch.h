/*
 * k8s_watch — the Kubernetes watch-stream decoder: newline-delimited JSON
 * events ({"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": {...}})
 * applied to a cache of objects keyed "namespace/name".
 *
 * Pure: bytes in (any chunking, as the HTTP client delivers them), cache
 * and resourceVersion out; no locks, no I/O, no clock, so the stream can
 * be fuzzed and unit tested without an API server. A line longer than the
 * decoder's maximum, a line that is not a JSON object, or an ERROR event
 * other than 410 marks the stream bad; ERROR 410 (Gone) marks it gone (the
 * caller relists). Objects without metadata.name, or with a namespace and
 * name longer than any Kubernetes object's (their "ns/name" key would be
 * cut and collide with another's), are skipped. Cached
 * objects get kind and apiVersion set (watch objects may omit them).
 *
 * Ownership: the decoder owns its line buffer; cache is the caller's (the
 * caller holds whatever lock guards it during k8s_watch_feed). Callers:
 * syncd/source_k8s.c, tests/fuzz/k8s_watch_fuzz.c, unit tests.
 */
#ifndef EDGE_SYNCD_K8S_WATCH_H
#define EDGE_SYNCD_K8S_WATCH_H

#include <jansson.h>
#include <stddef.h>

struct k8s_watch {
  const char *kind, *api_version; /* set on cached objects (borrowed) */
  size_t max_line;                /* longest event accepted */
  char *buf;                      /* partial line */
  size_t len, cap;
  char rv[128];  /* resourceVersion of the last event that carried one */
  int gone, bad; /* 410 seen / a line did not decode */
  long events;   /* objects added, modified or deleted */
};

/* Sets up w (buffer empty). kind and api_version must outlive w. */
void k8s_watch_init(struct k8s_watch *w, const char *kind, const char *api_version,
                    size_t max_line);
void k8s_watch_free(struct k8s_watch *w);

/* Applies every complete line of data[0..n) (plus what is buffered) to
 * cache. Returns 0, or -1 when the stream must stop (gone, or a line over
 * max_line, or out of memory). */
int k8s_watch_feed(struct k8s_watch *w, const char *data, size_t n, json_t *cache);

/* Stores obj (reference stolen) under "ns/name" with kind/apiVersion set;
 * -1 (obj released) without metadata.name. Also what a list uses. */
int k8s_watch_cache_put(json_t *cache, const char *kind, const char *api_version, json_t *obj);

#endif
