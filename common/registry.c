/*
 * registry — nodes by id with their newest session (see registry.h).
 *
 * Lookup is a linear scan: the nodes are the proxies and balancers of one
 * deployment (tens to a few thousand), looked up once per stream.
 */
#include "common/registry.h"

#include <stdlib.h>
#include <string.h>

void registry_init(struct registry *r, size_t node_size, size_t max) {
  memset(r, 0, sizeof(*r));
  r->node_size =
      node_size < sizeof(struct registry_node) ? sizeof(struct registry_node) : node_size;
  r->max = max;
}

void registry_free(struct registry *r, void (*free_node)(struct registry_node *n)) {
  for (size_t i = 0; i < r->n; i++) {
    if (free_node) free_node(r->nodes[i]);
    free(r->nodes[i]->id);
    free(r->nodes[i]);
  }
  free(r->nodes);
  r->nodes = NULL;
  r->n = r->cap = 0;
}

void registry_remove(struct registry *r, struct registry_node *n,
                     void (*free_node)(struct registry_node *n)) {
  for (size_t i = 0; i < r->n; i++) {
    if (r->nodes[i] != n) continue;
    memmove(&r->nodes[i], &r->nodes[i + 1], (r->n - i - 1) * sizeof(*r->nodes));
    r->n--;
    if (free_node) free_node(n);
    free(n->id);
    free(n);
    return;
  }
}

struct registry_node *registry_find(const struct registry *r, const char *id) {
  for (size_t i = 0; i < r->n; i++)
    if (strcmp(r->nodes[i]->id, id) == 0) return r->nodes[i];
  return NULL;
}

struct registry_node *registry_add(struct registry *r, const char *id) {
  struct registry_node *n = registry_find(r, id);
  if (n) return n;
  if (r->max && r->n >= r->max) return NULL;
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 16;
    struct registry_node **nn = realloc(r->nodes, cap * sizeof(*nn));
    if (!nn) return NULL;
    r->nodes = nn;
    r->cap = cap;
  }
  n = calloc(1, r->node_size);
  char *copy = strdup(id);
  if (!n || !copy) {
    free(n);
    free(copy);
    return NULL;
  }
  n->id = copy;
  r->nodes[r->n++] = n;
  return n;
}

void *registry_attach(struct registry_node *n, void *session) {
  void *old = n->session == session ? NULL : n->session;
  n->session = session;
  return old;
}

int registry_detach(struct registry_node *n, void *session) {
  if (!session || n->session != session) return 0;
  n->session = NULL;
  return 1;
}

size_t registry_count(const struct registry *r) {
  return r->n;
}

struct registry_node *registry_at(const struct registry *r, size_t i) {
  return i < r->n ? r->nodes[i] : NULL;
}

size_t registry_connected(const struct registry *r) {
  size_t c = 0;
  for (size_t i = 0; i < r->n; i++) c += r->nodes[i]->session != NULL;
  return c;
}
