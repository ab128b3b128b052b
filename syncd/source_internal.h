/*
 * source_internal — what the source kinds (source_dir.c, source_k8s.c)
 * share with the dispatcher (source.c). Not for use outside syncd/source*.c.
 *
 * A kind implements struct source_ops. It calls source_changed() whenever
 * its objects may have changed; the dispatcher debounces, then calls
 * ops->collect() on the loop to gather the current objects, translates
 * them and hands the result to on_update. All of it runs on the loop.
 */
#ifndef EDGE_SYNCD_SOURCE_INTERNAL_H
#define EDGE_SYNCD_SOURCE_INTERNAL_H

#include "syncd/manifest.h"
#include "syncd/source.h"
#include "syncd/translate.h"

struct source_ops {
  /* Starts watching; the kind's state goes in s->impl. 0 or negative with err. */
  int (*start)(struct syncd_source *s, const struct syncd_source_opts *o, char *err, size_t errlen);
  /* Adds the current objects to set. Negative (with err) for a transient failure: the previous
   * state is kept and no update is made. */
  int (*collect)(struct syncd_source *s, struct manifest_set *set, char *err, size_t errlen);
  /* Called after an update was handed out (the kubernetes source writes Ingress status). May be
   * NULL. u stays owned by the caller and is valid only during the call. */
  void (*published)(struct syncd_source *s, const struct syncd_update *u);
  /* Stops watching; calls source_kind_stopped(s) once its handles are closed. */
  void (*stop)(struct syncd_source *s);
  /* The generation of what the last collect returned (highest resourceVersion), or NULL: the
   * time of the collect in milliseconds is used. */
  uint64_t (*generation)(struct syncd_source *s);
};

struct syncd_source {
  uv_loop_t *loop;
  char *name; /* "dir:/x" or "kubernetes" */
  const struct source_ops *ops;
  void *impl;
  struct syncd_source_callbacks cb;
  void *ud;
  uint32_t debounce_ms, max_delay_ms;
  uv_timer_t timer;
  int pending;           /* a change waits for the timer */
  uint64_t first_change; /* uv_now of the burst's first change */
  char *default_cert, *default_key;
  /* Gateway API translation (syncd/gateway.h): the published address and the served ports. */
  char *publish;
  uint32_t gw_http_ports[9], gw_https_ports[9]; /* 0-terminated */
  struct translator *tr; /* the objects of the last update and what depends on them */
  uint8_t affinity_secret[64];
  size_t affinity_secret_len;
  int healthy;
  char msg[256];
  int64_t last_sync;
  int stopping;
  int open_handles; /* timer + the kind's "stopped" */
  void (*done)(void *);
  void *done_arg;
};

extern const struct source_ops source_dir_ops;
extern const struct source_ops source_k8s_ops;

/* The kind saw (or may have seen) a change: schedule a debounced reload. */
void source_changed(struct syncd_source *s);
/* Records health and a one-line message for Status (and logs a change of health). */
void source_set_health(struct syncd_source *s, int healthy, const char *msg);
/* The kind finished stopping (all its handles closed). */
void source_kind_stopped(struct syncd_source *s);

#endif
