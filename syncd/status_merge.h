/*
 * status_merge — one view of several syncd replicas for syncctl: each
 * replica answers Status for itself (the nodes whose streams it holds, and
 * those it knows but that are connected elsewhere or nowhere); this module
 * picks, for every node, the answer of the replica that serves it.
 *
 * Rules: a node is identified by kind and node_id. The entry of a replica
 * where the node is connected (any state but DISCONNECTED) wins over one
 * where it is not; among connected entries (a stale half-open stream can
 * linger on a dead replica's peer) the most recent connected_since wins;
 * among disconnected ones the most recent disconnected_at. Ties go to the
 * replica listed first, so the result depends only on the answers. Nodes
 * come out sorted by kind, then node_id.
 *
 * The primary replica (whose sources, objects and certificates syncctl
 * prints) is the leader when one answered, else the first that answered.
 *
 * Callers: syncd/syncctl.c; unit tests. Pure: no I/O. Ownership: merged
 * rows point into the responses (borrowed); the row array is malloc'd,
 * the caller frees it. Errors: 0 or -1 (out of memory).
 */
#ifndef EDGE_SYNCD_STATUS_MERGE_H
#define EDGE_SYNCD_STATUS_MERGE_H

#include <stddef.h>

#include "edge/v1/status.pb-c.h"

struct status_replica {
  const char *address;                  /* where it was asked */
  const Edge__V1__StatusResponse *resp; /* NULL: no answer */
  const char *error;                    /* why there was no answer */
};

struct status_merged_node {
  const Edge__V1__NodeStatus *node;
  size_t replica; /* index of the replica whose entry this is */
};

int status_merge_nodes(const struct status_replica *r, size_t n, struct status_merged_node **out,
                       size_t *n_out);

/* Index of the primary replica, or -1 when none answered. */
int status_merge_primary(const struct status_replica *r, size_t n);

/* 1 when the node's entry says its stream is held by that replica. */
int status_merge_serves(const Edge__V1__NodeStatus *node);

#endif
