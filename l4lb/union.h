/*
 * union — the L7 replica set of an l4lb that watches several syncd
 * replicas: one view per syncd address, merged into the one set the
 * Maglev table is built from.
 *
 * Why a union: each syncd replica knows only the proxies that have
 * connected to it. An l4lb that followed one replica would drop the
 * others' proxies; an l4lb that followed "any" replica would hold a set
 * depending on which one it reached. Every l4lb watches every replica and
 * merges with the rules below, which depend only on what the replicas
 * said, so l4lbs given the same replicas build the same set, and so the
 * same table.
 *
 * Rules, per proxy (by name):
 *  - the proxy is in the set while at least one view lists it, except
 *    when the view holding its newest record dropped it (below);
 *  - its fields (addresses, weight, drain flag) are the record of the
 *    replica that holds its stream (connected); among several, or when
 *    none does, the record that changed last (changed_ms, the sending
 *    replica's clock); ties go to the view whose address sorts first;
 *  - when a view drops a proxy (it left while draining, or that replica
 *    expired it), the change time of the dropped record becomes the
 *    proxy's tombstone: records elsewhere that are not newer no longer
 *    count, so a proxy that drained away through replica B is not kept
 *    alive by replica A's older record of it. A newer record (the proxy
 *    connects again anywhere) brings it back. Records without a change
 *    time (an older syncd) never make a tombstone: then a proxy leaves
 *    when no view lists it;
 *  - a view whose stream is down is kept (syncd being away changes
 *    nothing), unless another view is up and it has been down longer
 *    than view_timeout_ms (default: syncd's replica removal timeout,
 *    10 min): a replica gone that long no longer vouches for its proxies.
 *    A view that reappears under another address with the same syncd
 *    replica name replaces the old one at once;
 *  - until every view has sent a set once, or startup_wait_ms have passed,
 *    the union is not ready: applying a partial set at start would drop
 *    the other replicas' proxies for a moment.
 * Clocks: changed_ms comes from different syncd replicas; ordering events
 * of one proxy across replicas assumes their clocks agree to better than
 * the time a proxy takes to move (reconnect: ≥ 200 ms), i.e. NTP.
 *
 * Pure: no I/O, no clock (now_ms is the caller's monotonic clock); at
 * most L4_UNION_MAX_VIEWS views. Callers: l4lb/main.c (one view per
 * Membership.Watch stream), tests/unit/l4lb/union_test.c. Main thread
 * only. Ownership: the union copies every set it is given; merged arrays
 * are malloc'd for the caller.
 */
#ifndef EDGE_L4LB_UNION_H
#define EDGE_L4LB_UNION_H

#include <stddef.h>
#include <stdint.h>

#include "l4lb/membership.h"

#define L4_UNION_MAX_VIEWS 64
#define L4_UNION_SRC_MAX 300

struct l4_union_view {
  char src[L4_UNION_SRC_MAX];  /* the syncd address watched */
  char replica[L4_MEMBER_STR]; /* the syncd replica's name, "" until known */
  int up;                      /* the stream is delivering */
  int synced;                  /* sent at least one set */
  uint64_t version;            /* of its last set */
  uint64_t down_since_ms;      /* when it went down (or was added) */
  struct l4_member *m;         /* its last set, sorted by name */
  size_t n;
};

struct l4_union;

int l4_union_new(uint32_t view_timeout_ms, uint32_t startup_wait_ms, uint64_t now_ms,
                 struct l4_union **out);
void l4_union_free(struct l4_union *u);

/* Watches src (a new view, down and not synced). 0, or -1 when full or
 * out of memory. Adding a known src does nothing. */
int l4_union_add(struct l4_union *u, const char *src, uint64_t now_ms);
/* src is no longer watched (its name no longer resolves to it): its view
 * is kept like a down one and expires the same way. */
void l4_union_unwatch(struct l4_union *u, const char *src, uint64_t now_ms);

/* A set from src, replacing its view (m is copied). Returns 1 when the
 * merged set changed, 0 when not, -1 (view unchanged) when out of memory
 * or src is unknown. */
int l4_union_set(struct l4_union *u, const char *src, const char *replica,
                 const struct l4_member *m, size_t n, uint64_t version, uint64_t now_ms);
/* src's stream is up (delivering) or down. */
void l4_union_stream(struct l4_union *u, const char *src, int up, uint64_t now_ms);
/* Drops the views down longer than the view timeout while another view is
 * up. Returns 1 when the merged set changed. */
int l4_union_expire(struct l4_union *u, uint64_t now_ms);

/* 1 once every watched view sent a set, or the startup wait is over. */
int l4_union_ready(const struct l4_union *u, uint64_t now_ms);

/* The merged set, sorted by name: *out malloc'd (NULL when empty). 0 or
 * -1 (out of memory). */
int l4_union_merged(const struct l4_union *u, struct l4_member **out, size_t *n);

size_t l4_union_views(const struct l4_union *u);
const struct l4_union_view *l4_union_view_at(const struct l4_union *u, size_t i);
/* Tombstones held (proxies dropped from their newest record). */
size_t l4_union_tombstones(const struct l4_union *u);

#endif
