/*
 * status_merge — several replicas' Status answers as one (contract in
 * status_merge.h). Quadratic in the number of nodes, which is fine for a
 * command-line tool looking at a few hundred nodes on a few replicas.
 */
#include "syncd/status_merge.h"

#include <stdlib.h>
#include <string.h>

int status_merge_serves(const Edge__V1__NodeStatus *node) {
  return node->state != EDGE__V1__NODE_STATE__NODE_STATE_DISCONNECTED &&
         node->state != EDGE__V1__NODE_STATE__NODE_STATE_UNSPECIFIED;
}

/* 1 when candidate b beats the current choice a. */
static int better(const Edge__V1__NodeStatus *a, const Edge__V1__NodeStatus *b) {
  int sa = status_merge_serves(a), sb = status_merge_serves(b);
  if (sa != sb) return sb;
  if (sb) return b->connected_since > a->connected_since;
  return b->disconnected_at > a->disconnected_at;
}

static int same_node(const Edge__V1__NodeStatus *a, const Edge__V1__NodeStatus *b) {
  return a->kind == b->kind && strcmp(a->node_id, b->node_id) == 0;
}

static int cmp_rows(const void *x, const void *y) {
  const struct status_merged_node *a = x, *b = y;
  if (a->node->kind != b->node->kind) return a->node->kind < b->node->kind ? -1 : 1;
  return strcmp(a->node->node_id, b->node->node_id);
}

int status_merge_nodes(const struct status_replica *r, size_t n, struct status_merged_node **out,
                       size_t *n_out) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++)
    if (r[i].resp) total += r[i].resp->n_nodes;
  struct status_merged_node *rows = calloc(total ? total : 1, sizeof(*rows));
  if (!rows) return -1;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (!r[i].resp) continue;
    for (size_t j = 0; j < r[i].resp->n_nodes; j++) {
      const Edge__V1__NodeStatus *node = r[i].resp->nodes[j];
      size_t m = 0;
      while (m < k && !same_node(rows[m].node, node)) m++;
      if (m == k) {
        rows[k].node = node;
        rows[k].replica = i;
        k++;
      } else if (better(rows[m].node, node)) {
        rows[m].node = node;
        rows[m].replica = i;
      }
    }
  }
  qsort(rows, k, sizeof(*rows), cmp_rows);
  *out = rows;
  *n_out = k;
  return 0;
}

int status_merge_primary(const struct status_replica *r, size_t n) {
  int first = -1;
  for (size_t i = 0; i < n; i++) {
    if (!r[i].resp) continue;
    if (first < 0) first = (int)i;
    if (r[i].resp->leader && r[i].resp->leader->leader) return (int)i;
  }
  return first;
}
