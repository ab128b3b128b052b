/*
 * source — where syncd's desired state comes from.
 *
 * A source loads Kubernetes objects (a directory of manifests, "dir:PATH",
 * or the API server, "kubernetes"), translates them incrementally
 * (syncd/translate.h: only what depends on a changed object is translated
 * again) and calls on_update with what changed. Changes are coalesced:
 * an update follows debounce_ms after the last change, and never later
 * than max_delay_ms after the first change of a burst.
 *
 * Invariants: the first on_update comes promptly after start (the initial
 * load, full); a transient error (unreadable directory, API server down)
 * keeps the previous state and produces no update. Each update carries
 * the source generation: the highest resourceVersion seen (kubernetes) or
 * the time of the directory scan in milliseconds (dir), which orders
 * versions where their content digests cannot. All callbacks run on the
 * loop thread passed to syncd_source_start. Called by the syncd daemon.
 */
#ifndef EDGE_SYNCD_SOURCE_H
#define EDGE_SYNCD_SOURCE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "syncd/model.h"

struct syncd_source;
struct leader;

struct syncd_source_opts {
  const char *spec;       /* "dir:PATH" or "kubernetes" */
  const char *kubeconfig; /* NULL: in-cluster (service-account token + CA at the standard paths) */
  const char *publish_address; /* NULL: no status write-back */
  uint32_t debounce_ms;        /* 0: 100 */
  uint32_t max_delay_ms; /* 0: 1000 (a burst of changes is coalesced, but never delayed longer) */
  const char *default_cert_file, *default_key_file; /* NULL: a self-signed default certificate is
                                                       generated at start */
  /* Gateway API: ports the proxies' HTTP and HTTPS listeners are reached on (0-terminated; NULL:
   * 80 and 443). A listener on another port is reported PortUnavailable. */
  const uint32_t *gateway_http_ports, *gateway_https_ports;
  /* kubernetes: status is written back only while this replica leads (NULL:
   * no election, always). Borrowed: must outlive the source. */
  struct leader *leader;
  /* What cookie-affinity keys are derived from (copied; NULL: affinity has no effect). */
  const uint8_t *affinity_secret;
  size_t affinity_secret_len;
};

struct syncd_source_callbacks {
  /* What a (coalesced) change did to the translation (model.h): the first update is full, later
   * ones list the resources that changed. u is borrowed, valid during the call. Runs on the loop.
   */
  void (*on_update)(void *ud, const struct syncd_update *u);
};

/*
 * Starts the source described by o->spec on loop. The strings in o are
 * copied. On success *out owns the source (release with syncd_source_stop)
 * and 0 is returned; on failure a negative code and a one-line reason in
 * err. The initial load is reported through cb->on_update from the loop.
 */
int syncd_source_start(uv_loop_t *loop, const struct syncd_source_opts *o,
                       const struct syncd_source_callbacks *cb, void *ud, struct syncd_source **out,
                       char *err, size_t errlen);

/* For Status: name ("dir:/x" or "kubernetes"), health, last message, last successful sync (epoch
 * s). Any output pointer may be NULL. */
void syncd_source_status(const struct syncd_source *s, char *name, size_t namelen, int *healthy,
                         char *msg, size_t msglen, int64_t *last_sync);

/* Stops watching, closes every handle and frees s; done(arg) runs on the loop once everything is
 * closed (done may be NULL). No on_update is called after this returns. */
void syncd_source_stop(struct syncd_source *s, void (*done)(void *), void *arg);

#endif
