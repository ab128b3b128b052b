/*
 * snapshot_internal — what l7proxy/snapshot.c (tables, lookups, publish)
 * and l7proxy/snapshot_build.c (resources and the incremental builder)
 * share. Not for use outside l7proxy/snapshot*.c.
 *
 * A resource (struct l7_res) is one edge.v1 resource as pushed, with its
 * compiled form, immutable and reference counted: snapshots and the
 * builder share it for as long as it does not change. A snapshot is a set
 * of tables over resources:
 *   res     every resource, sorted by (type, name) (one reference each);
 *   slots   cluster slot → cluster: a route names its cluster by slot, so
 *           a changed cluster is one slot of a new table, not a rebuild of
 *           every virtual host that uses it;
 *   exact, wild, suffix   host → virtual host (one-label wildcards and
 *           the Gateway API's suffix wildcards by their suffix; a virtual
 *           host served on one listener only has the listener's number
 *           after a '\n' in its key), and any_vhost, those without host
 *           (per listener: any, HTTP, HTTPS);
 *   pt_exact, pt_suffix   TLS server name → passthrough host;
 *   tls     the TLS store of the same generation.
 * The next snapshot copies the previous one's tables (flat arrays: a
 * memcpy) and changes the entries of what the push touched.
 */
#ifndef EDGE_L7PROXY_SNAPSHOT_INTERNAL_H
#define EDGE_L7PROXY_SNAPSHOT_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/router.h"
#include "l7proxy/snapshot.h"
#include "l7proxy/tls.h"

/* A virtual host compiled: its routes in the order they are tried and the
 * path matcher over them (a common/router with this one host). */
struct snap_gateway;

struct l7_vhost {
  const char *name, *host;
  char *key; /* host table key: normalized host, a wildcard's suffix (+ "\nL"); NULL for ANY */
  int host_match;
  int listener;            /* EDGE__V1__LISTENER__* (0: both) */
  struct snap_gateway *gw; /* the routes' Gateway API fields */
  struct l7_route *routes;
  size_t n_routes;
  char **sources; /* "ns/name" per route */
  struct router *router;
  uint32_t *slots;                  /* the cluster slot of each route (UINT32_MAX: none) */
  struct cauth_policy *client_auth; /* issue 20 (one reference; NULL: none) */
};

struct l7_res {
  atomic_uint refs;
  int type; /* EDGE__V1__RESOURCE_TYPE__* */
  const char *name;
  Edge__V1__Resource *msg; /* owns every string the compiled form points at */
  union {
    struct l7_cluster cluster;
    struct l7_vhost vhost;
    struct l7_certificate cert;
    struct {
      struct l7_passthrough pt;
      char *key; /* normalized host (a suffix wildcard's suffix) */
      struct snap_gateway *gw;
    } pt;
  } u;
  struct l7_endpoint *endpoints; /* cluster */
  const char *default_cluster;   /* default backend: "" none */
};

struct l7_res *l7_res_ref(struct l7_res *r);
void l7_res_unref(struct l7_res *r);

/* A copy-on-write table from strings to resources: open addressing over a
 * flat array, copied whole (a memcpy) when a snapshot is made from the
 * previous one. Keys point into the resources. */
struct l7_htab_slot {
  uint64_t hash;
  const char *key; /* NULL empty, L7_HTAB_TOMB deleted */
  struct l7_res *val;
};

struct l7_htab {
  struct l7_htab_slot *slots;
  size_t cap, n, used;
};

struct l7_res *l7_htab_get(const struct l7_htab *t, const char *key, size_t len);

/* Walks every cluster name resource r uses (a route's cluster, weighted
 * backends and mirrors; a passthrough host's clusters; a default
 * backend's cluster), skipping empty names: start with *pos = 0; NULL at
 * the end. *slot (may be NULL) receives where the name's slot is kept
 * (NULL for a default backend). */
const char *l7_res_cluster_name(const struct l7_res *r, size_t *pos, uint32_t **slot);

struct l7_snapshot {
  atomic_uint refs;
  uint64_t version;
  struct l7_res **res; /* sorted by (type, name) */
  size_t n_res;
  struct l7_res **slots; /* cluster slot → cluster resource (NULL: none) */
  size_t n_slots;
  struct l7_res **clusters; /* sorted by name (views into res) */
  size_t n_clusters;
  struct l7_res **certs; /* sorted by name */
  size_t n_certs;
  struct l7_htab exact, wild, suffix;
  struct l7_res *any_vhost[3]; /* by listener: 0 any, 1 HTTP, 2 HTTPS */
  struct l7_htab pt_exact, pt_suffix;
  size_t n_passthrough;
  struct l7_res *default_backend;
  uint32_t default_slot; /* UINT32_MAX: none */
  const struct l7_certificate *default_cert;
  struct tls_store *tls;
  size_t n_client_auth; /* virtual hosts with a client-certificate policy */
};

/* Frees s (its last reference is gone). */
void l7_snapshot_free(struct l7_snapshot *s);

#endif
