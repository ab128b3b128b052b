/*
 * Helpers shared by the syncd source integration tests: run a libuv loop
 * until a condition holds or a deadline passes, keep the state the
 * source's updates amount to, and inspect it. Failures print and count; main returns non-zero.
 */
#ifndef EDGE_TESTS_SYNCD_SOURCE_HARNESS_H
#define EDGE_TESTS_SYNCD_SOURCE_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "syncd/source.h"

static int harness_failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      harness_failures++;                                                      \
    }                                                                          \
  } while (0)

struct harness {
  uv_loop_t loop;
  struct syncd_desired *latest;
  unsigned updates;
  int stopped;
  uv_timer_t deadline;
  int deadline_inited, expired;
};

/* Copies s (or NULL on failure: the harness then reports missing state). */
static char *harness_dup(const char *s) {
  return strdup(s ? s : "");
}

/* The source hands out what changed; the harness keeps the whole state it
 * amounts to (resources, rejections, served Ingresses) in h->latest. */
static void harness_on_update(void *ud, const struct syncd_update *u) {
  struct harness *h = ud;
  if (!h->latest) h->latest = calloc(1, sizeof(*h->latest));
  struct syncd_desired *d = h->latest;
  for (size_t i = 0; i < d->n_resources; i++) {
    int gone = u->full;
    for (size_t k = 0; !gone && k < u->n_removed; k++)
      gone = d->resources[i].type == u->removed[k].type &&
             !strcmp(d->resources[i].name, u->removed[k].name);
    for (size_t k = 0; !gone && k < u->n_upserted; k++)
      gone = d->resources[i].type == u->upserted[k].type &&
             !strcmp(d->resources[i].name, u->upserted[k].name);
    if (!gone) continue;
    free(d->resources[i].name);
    free(d->resources[i].bytes);
    d->resources[i--] = d->resources[--d->n_resources];
  }
  d->resources =
      realloc(d->resources, (d->n_resources + u->n_upserted + 1) * sizeof(*d->resources));
  for (size_t k = 0; k < u->n_upserted; k++) {
    struct syncd_resource *r = &d->resources[d->n_resources++];
    r->type = u->upserted[k].type;
    r->name = harness_dup(u->upserted[k].name);
    r->len = u->upserted[k].len;
    r->bytes = malloc(r->len + 1);
    memcpy(r->bytes, u->upserted[k].bytes, r->len);
  }
  for (size_t i = 0; i < d->n_rejected; i++) {
    struct syncd_rejection *r = &d->rejected[i];
    free(r->kind), free(r->ns), free(r->name), free(r->reason), free(r->location);
  }
  free(d->rejected);
  d->n_rejected = u->report->n_rejected;
  d->rejected = calloc(d->n_rejected + 1, sizeof(*d->rejected));
  for (size_t i = 0; i < d->n_rejected; i++) {
    const struct syncd_rejection *r = &u->report->rejected[i];
    d->rejected[i] =
        (struct syncd_rejection){harness_dup(r->kind), harness_dup(r->ns), harness_dup(r->name),
                                 harness_dup(r->reason), harness_dup(r->location)};
  }
  for (size_t i = 0; i < d->n_served; i++) free(d->served_ingresses[i]);
  free(d->served_ingresses);
  d->n_served = u->n_served;
  d->served_ingresses = calloc(d->n_served + 1, sizeof(char *));
  for (size_t i = 0; i < d->n_served; i++) d->served_ingresses[i] = harness_dup(u->served[i]);
  h->updates++;
  uv_stop(&h->loop); /* let harness_run_until look at the new state now */
}

static void harness_deadline(uv_timer_t *t) {
  ((struct harness *)t->data)->expired = 1;
}

/* Runs the loop until cond(h, arg) is true or timeout_ms passes. Returns 1 when cond held. */
static int harness_run_until(struct harness *h, int (*cond)(struct harness *, const void *),
                             const void *arg, unsigned timeout_ms) {
  if (!h->deadline_inited) {
    uv_timer_init(&h->loop, &h->deadline);
    h->deadline.data = h;
    h->deadline_inited = 1;
  }
  h->expired = 0;
  uv_timer_start(&h->deadline, harness_deadline, timeout_ms, 0);
  int ok;
  while (!(ok = cond(h, arg)) && !h->expired) uv_run(&h->loop, UV_RUN_ONCE);
  uv_timer_stop(&h->deadline);
  return ok;
}

/* Closes the deadline timer and runs the loop dry (call before uv_loop_close). */
static void harness_close(struct harness *h) {
  if (h->deadline_inited) uv_close((uv_handle_t *)&h->deadline, NULL);
  uv_run(&h->loop, UV_RUN_DEFAULT);
}

static int harness_has_resource(const struct syncd_desired *d, int type, const char *name) {
  for (size_t i = 0; d && i < d->n_resources; i++)
    if (d->resources[i].type == type && !strcmp(d->resources[i].name, name)) return 1;
  return 0;
}

static int harness_has_vhost(const struct syncd_desired *d, const char *name) {
  return harness_has_resource(d, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST, name);
}

/* cond: the latest state has the vhost named arg. */
static int harness_cond_vhost(struct harness *h, const void *arg) {
  return harness_has_vhost(h->latest, arg);
}

/* cond: the latest state lacks the vhost named arg (and there is a state). */
static inline int harness_cond_no_vhost(struct harness *h, const void *arg) {
  return h->latest && !harness_has_vhost(h->latest, arg);
}

static inline int harness_has_rejection(const struct syncd_desired *d, const char *needle) {
  for (size_t i = 0; d && i < d->n_rejected; i++)
    if (strstr(d->rejected[i].reason, needle) || strstr(d->rejected[i].location, needle)) return 1;
  return 0;
}

static void harness_on_stopped(void *arg) {
  ((struct harness *)arg)->stopped = 1;
}

static int harness_cond_stopped(struct harness *h, const void *arg) {
  return h->stopped;
}

#endif
