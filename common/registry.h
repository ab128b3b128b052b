/*
 * registry — the nodes a server streams to, known by id, each with its
 * newest session, and the one rule both of syncd's streams follow: never
 * queue, the newest wins.
 *
 * A node (an l7proxy on ConfigSync, an l4lb on Membership.Watch) is found
 * or added by its id and stays listed after it disconnects, so status can
 * say when it was last seen. A node has at most one live session: a newer
 * session of the same id replaces the older one (registry_attach returns
 * it for the caller to end), and the end of a replaced session changes
 * nothing (registry_detach answers 0). A node whose send is pending is
 * never sent more: when the send completes (is written, and answered where
 * the protocol answers) the owner asks again and sends whatever is newest
 * by then (registry_send_due), so a slow peer costs one message in flight,
 * not a queue of every version.
 *
 * Memory: the owner's node type starts with a struct registry_node and its
 * size is given to registry_init; nodes are calloc'd, never move, and are
 * freed by registry_free (the owner's free_node releases its own fields
 * first). At most max nodes (0: no limit) are listed. The id is copied.
 *
 * Callers: syncd/config_sync.c and syncd/membership.c, on syncd's loop
 * thread. Not thread-safe. Errors: NULL from registry_add when out of
 * memory or full.
 */
#ifndef EDGE_COMMON_REGISTRY_H
#define EDGE_COMMON_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

struct registry_node {
  char *id;      /* owned by the registry */
  void *session; /* the newest session, NULL while disconnected */
};

struct registry {
  struct registry_node **nodes; /* in the order they were added */
  size_t n, cap;
  size_t node_size; /* the owner's node type, starting with struct registry_node */
  size_t max;       /* 0: no limit */
};

/* An empty registry of nodes of node_size bytes (>= sizeof(struct registry_node)). */
void registry_init(struct registry *r, size_t node_size, size_t max);

/* Frees every node (free_node, when not NULL, first releases the owner's fields). */
void registry_free(struct registry *r, void (*free_node)(struct registry_node *n));

/* The node with this id, or NULL. */
struct registry_node *registry_find(const struct registry *r, const char *id);

/* The node with this id, added (zeroed, id copied) when new. NULL when out of
 * memory or when the registry already holds max nodes. */
struct registry_node *registry_add(struct registry *r, const char *id);

/* Makes session the node's newest. Returns the session it replaces (still
 * live: the caller ends it), or NULL. Attaching the current session again
 * returns NULL. */
void *registry_attach(struct registry_node *n, void *session);

/* session ended. Returns 1 when it was the node's newest (the node is now
 * disconnected), 0 when it had been replaced (nothing changes). */
int registry_detach(struct registry_node *n, void *session);

/*
 * The send rule: 1 when a session should be sent the newest version now —
 * it is connected (has a session), it has not been sent `newest` yet, and
 * nothing sent to it is still pending (queued, or awaiting an answer).
 * Otherwise 0, and the completion that clears `pending` asks again.
 */
static inline int registry_send_due(const struct registry_node *n, uint64_t sent, uint64_t newest,
                                    int pending) {
  return n->session != NULL && sent != newest && !pending;
}

/* Forgets node n (which must be disconnected: no session), keeping the
 * order of the others; free_node (may be NULL) first releases the owner's
 * fields. Pointers to n become invalid. Status tables prune what churn
 * left behind with it (syncd --node-retention). */
void registry_remove(struct registry *r, struct registry_node *n,
                     void (*free_node)(struct registry_node *n));

/* Nodes listed, and the i-th in the order added (NULL past the end). */
size_t registry_count(const struct registry *r);
struct registry_node *registry_at(const struct registry *r, size_t i);

/* Nodes with a session. */
size_t registry_connected(const struct registry *r);

#endif
