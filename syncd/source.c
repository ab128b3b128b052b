/*
 * source — dispatch by spec, debounce, translate, hand out.
 *
 * Coalescing: a change arms the timer for debounce_ms; further changes
 * push it back, but never beyond max_delay_ms after the first change of
 * the burst. When it fires the kind collects its objects, the translator
 * (translate.h) works out what changed and on_update receives that. A failed
 * collect (transient) only marks the source unhealthy: the previous state
 * stays in force. Called by the syncd daemon.
 */
#include "syncd/source.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cert.h"
#include "common/log.h"
#include "syncd/default_cert.h"
#include "syncd/gateway.h"
#include "syncd/source_internal.h"
#include "syncd/translate.h"

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void reload(struct syncd_source *s) {
  struct manifest_set set;
  char err[512] = "";
  manifest_set_init(&set);
  uint64_t scanned = now_ms();
  int rc = s->ops->collect(s, &set, err, sizeof(err));
  if (rc < 0) {
    manifest_set_free(&set);
    source_set_health(s, 0, err[0] ? err : "cannot read the source");
    return;
  }
  uint64_t generation = s->ops->generation ? s->ops->generation(s) : scanned;
  const struct syncd_update *u = NULL;
  rc = s->tr ? translator_update(s->tr, &set, &u) : -ENOMEM;
  manifest_set_free(&set); /* the translator keeps what it needs */
  if (rc < 0) {
    source_set_health(s, 0, "out of memory while translating");
    return;
  }
  s->last_sync = (int64_t)time(NULL);
  char msg[256];
  snprintf(msg, sizeof(msg), "%zu Ingresses served, %zu rejected objects", u->n_served,
           u->report->n_rejected);
  source_set_health(s, 1, msg);
  LOG_INFO("source_loaded",
           "source=%s full=%d objects_changed=%zu upserted=%zu removed=%zu rejected=%zu "
           "ingresses=%zu generation=%" PRIu64,
           log_q(s->name), u->full, u->objects_changed, u->n_upserted, u->n_removed,
           u->report->n_rejected, u->n_served, generation);
  struct syncd_update out = *u;
  out.generation = generation;
  if (s->ops->published) s->ops->published(s, &out);
  if (s->cb.on_update) s->cb.on_update(s->ud, &out);
}

static void on_timer(uv_timer_t *t) {
  struct syncd_source *s = t->data;
  s->pending = 0;
  if (!s->stopping) reload(s);
}

void source_changed(struct syncd_source *s) {
  if (s->stopping) return;
  uint64_t now = uv_now(s->loop);
  if (!s->pending) {
    s->pending = 1;
    s->first_change = now;
  }
  uint64_t due = now + s->debounce_ms;
  if (due > s->first_change + s->max_delay_ms) due = s->first_change + s->max_delay_ms;
  uv_timer_start(&s->timer, on_timer, due > now ? due - now : 0, 0);
}

void source_set_health(struct syncd_source *s, int healthy, const char *msg) {
  if (s->healthy != healthy) {
    if (healthy)
      LOG_INFO("source_healthy", "source=%s msg=%s", log_q(s->name), log_q(msg));
    else
      LOG_WARN("source_unhealthy", "source=%s msg=%s", log_q(s->name), log_q(msg));
  }
  s->healthy = healthy;
  snprintf(s->msg, sizeof(s->msg), "%s", msg ? msg : "");
}

static void source_free(struct syncd_source *s) {
  void (*done)(void *) = s->done;
  void *arg = s->done_arg;
  free(s->name);
  free(s->default_cert);
  free(s->default_key);
  free(s->publish);
  translator_free(s->tr);
  free(s);
  if (done) done(arg);
}

static void release(struct syncd_source *s) {
  if (--s->open_handles == 0) source_free(s);
}

void source_kind_stopped(struct syncd_source *s) {
  release(s);
}

static void on_timer_closed(uv_handle_t *h) {
  release(h->data);
}

int syncd_source_start(uv_loop_t *loop, const struct syncd_source_opts *o,
                       const struct syncd_source_callbacks *cb, void *ud, struct syncd_source **out,
                       char *err, size_t errlen) {
  *out = NULL;
  const struct source_ops *ops;
  if (o->spec && strncmp(o->spec, "dir:", 4) == 0 && o->spec[4])
    ops = &source_dir_ops;
  else if (o->spec && strcmp(o->spec, "kubernetes") == 0)
    ops = &source_k8s_ops;
  else {
    snprintf(err, errlen, "unknown source \"%s\" (want dir:PATH or kubernetes)",
             o->spec ? o->spec : "");
    return -EINVAL;
  }
  struct syncd_source *s = calloc(1, sizeof(*s));
  if (!s || !(s->name = strdup(o->spec))) {
    free(s);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  s->loop = loop;
  s->ops = ops;
  /* the default certificate is known below; the translator is made once it is */
  s->cb = *cb;
  s->ud = ud;
  s->debounce_ms = o->debounce_ms ? o->debounce_ms : 100;
  if (o->publish_address && *o->publish_address) s->publish = strdup(o->publish_address);
  static const uint32_t http_dflt[] = {80, 0}, https_dflt[] = {443, 0};
  const uint32_t *hp = o->gateway_http_ports ? o->gateway_http_ports : http_dflt;
  const uint32_t *sp = o->gateway_https_ports ? o->gateway_https_ports : https_dflt;
  for (int i = 0; i < 8 && hp[i]; i++) s->gw_http_ports[i] = hp[i];
  for (int i = 0; i < 8 && sp[i]; i++) s->gw_https_ports[i] = sp[i];
  s->max_delay_ms = o->max_delay_ms ? o->max_delay_ms : 1000;
  if (s->max_delay_ms < s->debounce_ms) s->max_delay_ms = s->debounce_ms;
  snprintf(s->msg, sizeof(s->msg), "starting");
  int rc;
  if (o->affinity_secret && o->affinity_secret_len <= sizeof(s->affinity_secret)) {
    memcpy(s->affinity_secret, o->affinity_secret, o->affinity_secret_len);
    s->affinity_secret_len = o->affinity_secret_len;
  }
  if (o->default_cert_file || o->default_key_file) {
    if (!o->default_cert_file || !o->default_key_file) {
      snprintf(err, errlen, "the default certificate needs both a certificate and a key file");
      rc = -EINVAL;
    } else {
      rc = default_cert_load(o->default_cert_file, o->default_key_file, &s->default_cert,
                             &s->default_key, err, errlen);
    }
  } else {
    const char *name = "edge-default.invalid";
    rc = cert_generate(&name, 1, 3650, 0, NULL, NULL, &s->default_cert, &s->default_key, err,
                       errlen);
  }
  struct gateway_opts go = {s->gw_http_ports, s->gw_https_ports, s->publish};
  struct translate_opts to = {.default_cert_pem = s->default_cert,
                              .default_key_pem = s->default_key,
                              .affinity_secret = s->affinity_secret_len ? s->affinity_secret : NULL,
                              .affinity_secret_len = s->affinity_secret_len,
                              .gateway = &go};
  if (rc == 0 && translator_new(&to, &s->tr) != 0) {
    snprintf(err, errlen, "out of memory");
    rc = -ENOMEM;
  }
  if (rc < 0) {
    free(s->default_cert), free(s->default_key), free(s->name), free(s->publish);
    free(s);
    return rc;
  }
  uv_timer_init(loop, &s->timer);
  s->timer.data = s;
  s->open_handles = 1;
  rc = ops->start(s, o, err, errlen);
  if (rc < 0) {
    s->stopping = 1;
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
    return rc;
  }
  s->open_handles = 2;
  *out = s;
  return 0;
}

void syncd_source_status(const struct syncd_source *s, char *name, size_t namelen, int *healthy,
                         char *msg, size_t msglen, int64_t *last_sync) {
  if (name && namelen) snprintf(name, namelen, "%s", s->name);
  if (healthy) *healthy = s->healthy;
  if (msg && msglen) snprintf(msg, msglen, "%s", s->msg);
  if (last_sync) *last_sync = s->last_sync;
}

void syncd_source_stop(struct syncd_source *s, void (*done)(void *), void *arg) {
  if (!s || s->stopping) return;
  s->stopping = 1;
  s->done = done;
  s->done_arg = arg;
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->timer, on_timer_closed);
  s->ops->stop(s);
}
