/*
 * Helpers shared by the syncd source integration tests: run a libuv loop
 * until a condition holds or a deadline passes, keep the latest desired
 * state, and inspect it. Failures print and count; main returns non-zero.
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

static void harness_on_update(void *ud, struct syncd_desired *d) {
  struct harness *h = ud;
  syncd_desired_free(h->latest);
  h->latest = d;
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
