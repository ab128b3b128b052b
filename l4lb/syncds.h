/*
 * syncds — l4lb's link to every syncd replica: one Membership.Watch
 * stream per address of --syncd (a list, or a DNS name resolved to
 * several addresses), their sets merged by l4lb/union.h, and the merged
 * set handed to main whenever something the table depends on changes.
 *
 * Names are resolved again every resolve_interval_ms (off the loop): a
 * new address gets a stream, an address no longer listed loses its
 * stream and its view is kept like a down one (union.h: it expires after
 * the view timeout while another replica answers). Each stream reconnects
 * by itself (common/rpc). Nothing is handed out before the union is
 * ready (every replica answered once, or the startup wait passed), so an
 * l4lb does not apply one replica's partial set at start. A 1 s timer
 * expires stale views.
 *
 * Callers: l4lb/main.c. Threads: the loop given to l4_syncds_start.
 * Ownership: opts strings are copied; members handed to the callback are
 * valid during the call only. Errors: 0 or negative with a reason.
 */
#ifndef EDGE_L4LB_SYNCDS_H
#define EDGE_L4LB_SYNCDS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/rpc.h"
#include "l4lb/membership.h"
#include "l4lb/union.h"

struct l4_syncds_opts {
  const char *spec; /* --syncd: "A:P", "A:P,B:P" or "name:P" */
  struct rpc_creds creds;
  const char *node_id, *address, *build; /* for syncd's Status */
  uint32_t reconnect_max_ms;             /* 0: the rpc default */
  uint32_t view_timeout_ms;              /* 0: 10 min */
  uint32_t startup_wait_ms;              /* 0: 3 s */
  uint32_t resolve_interval_ms;          /* 0: 30 s (names only) */
};

/* The merged set changed (or became ready): version counts merged changes. */
typedef void (*l4_syncds_fn)(void *ud, const struct l4_member *m, size_t n, uint64_t version);

struct l4_syncds;

int l4_syncds_start(uv_loop_t *loop, struct rpc_runtime *rt, const struct l4_syncds_opts *o,
                    l4_syncds_fn fn, void *ud, struct l4_syncds **out, char *err, size_t errlen);
/* Closes every stream and timer; done(arg) runs on the loop after. */
void l4_syncds_stop(struct l4_syncds *s, void (*done)(void *arg), void *arg);
/* The views, for /config. */
const struct l4_union *l4_syncds_union(const struct l4_syncds *s);

#endif
