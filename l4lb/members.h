/*
 * members — l4lb's replica list: applies replica sets, feeds health
 * results to each backend's rise/fall state, and publishes a new routing
 * snapshot (Maglev table over the eligible backends) whenever the
 * eligible set changes.
 *
 * Hold-back (the panic threshold). A set from syncd describes who syncd
 * knows, not who can serve; serving health is what this l4lb's own checks
 * measure. So a set from syncd (guarded) is never applied in a way that
 * drops all, or too large a share, of the backends that are healthy right
 * now. Let H be the healthy backends (up, not draining, and vouched for:
 * passed a check, or came from the cache or static flags) and D those of
 * H the latest set no longer lists. D is dropped only when at least one
 * backend of H stays and the ones staying are at least panic_threshold %
 * of H (Envoy's panic threshold is the reference: default 50 %;
 * 0 = only the "all" rule, 100 = never drop a healthy backend on syncd's
 * word). Otherwise every backend of D is HELD: kept in the table with its
 * last settings and still checked, until its own checks take it down, a
 * later set lists it again, or a re-evaluation (after each set, each
 * health change, each newly vouched backend) finds the drop acceptable.
 * Unlisted backends that are down, draining or not vouched for leave at
 * once. Each hold is logged (membership_held, warn) and counted
 * (edge_l4_membership_held_back_total, edge_l4_membership_held_backends).
 * Unguarded sets (static --backend, the --cache-dir set at start) apply
 * as given.
 *
 * Identity: a backend is its name; a member whose addresses changed is a
 * new backend (new health state). Health of an unchanged backend survives
 * every update.
 *
 * I/O-free: health checkers are started and stopped through the hooks in
 * the config (main.c wires l4lb/checker.c; unit tests record calls), and
 * results come back through l4_members_check_result. Snapshots are
 * published with l4_snapshot_publish (backend.h). Main thread only.
 * Callers: l4lb/main.c and tests/unit/l4lb/members_test.c.
 */
#ifndef EDGE_L4LB_MEMBERS_H
#define EDGE_L4LB_MEMBERS_H

#include <stddef.h>
#include <stdint.h>

#include "l4lb/backend.h"
#include "l4lb/membership.h"

struct metrics_registry;

#define L4_PANIC_THRESHOLD_DEFAULT 50

struct l4_members_config {
  uint32_t table_size; /* Maglev M, a prime */
  int rise, fall;
  uint32_t panic_threshold;         /* percent, 0..100 */
  struct metrics_registry *metrics; /* may be NULL */
  /* Start/stop active checks of b (may be NULL: no checks). */
  void (*checker_start)(void *ud, struct l4_backend *b);
  void (*checker_stop)(void *ud, struct l4_backend *b);
  /* A new snapshot is about to be published (may be NULL): packet mode
   * pushes it into the XDP program's maps first. */
  void (*on_snapshot)(void *ud, const struct l4_snapshot *s);
  /* A snapshot with `eligible` backends was published (may be NULL). */
  void (*on_published)(void *ud, size_t eligible);
  void *ud;
};

struct l4_members;

int l4_members_new(const struct l4_members_config *cfg, struct l4_members **out);
/* Stops every checker and drops every backend (the published snapshot
 * keeps its own references). */
void l4_members_free(struct l4_members *m);

/*
 * Makes set[0..n) the replica list. guarded = 1 for sets from syncd (the
 * hold-back above applies), 0 for static flags and the cache. why goes to
 * the table_rebuilt log line.
 */
void l4_members_apply(struct l4_members *m, const struct l4_member *set, size_t n, int guarded,
                      const char *why);

/* One health result for b (an active check, or ok = 0 for a passive
 * connect failure). Rebuilds the table when b changes state. */
void l4_members_check_result(struct l4_members *m, struct l4_backend *b, int ok, const char *why);
/* Feeds the connect failures workers counted (b->connect_failures) as
 * failed checks. */
void l4_members_poll_failures(struct l4_members *m);

size_t l4_members_count(const struct l4_members *m);
struct l4_backend *l4_members_at(const struct l4_members *m, size_t i);
/* 1 when b is kept only because the last set dropped too many healthy
 * backends. */
int l4_members_is_held(const struct l4_members *m, const struct l4_backend *b);
size_t l4_members_held(const struct l4_members *m);

#endif
