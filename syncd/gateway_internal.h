/*
 * gateway_internal — what the Gateway API translator's files share:
 * gateway.c (index, classes, Gateways and listeners, route attachment and
 * conditions), gateway_rules.c (route rules → edge.v1 Route messages,
 * backends and filters), gateway_emit.c (virtual hosts, clusters,
 * certificates, passthrough hosts, the Ingress merge) and
 * gateway_status.c (conditions → the packed status). Not for use outside
 * syncd/gateway*.c.
 *
 * Memory: everything hangs off struct gctx and its pool, freed in one shot
 * when gateway_translate returns; only what is merged into the
 * syncd_desired escapes (packed bytes and strdup'd strings).
 */
#ifndef EDGE_SYNCD_GATEWAY_INTERNAL_H
#define EDGE_SYNCD_GATEWAY_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "edge/v1/resources.pb-c.h"
#include "syncd/gateway.h"
#include "syncd/pool.h"

/* ---- pool and vectors ---------------------------------------------------- */

#define GVEC(T)    \
  struct {         \
    T *v;          \
    size_t n, cap; \
  }
int gvec_reserve(void **v, size_t *cap, size_t want, size_t elem);
#define GVEC_PUSH(c, vec, item)                                                         \
  do {                                                                                  \
    if (gvec_reserve((void **)&(vec).v, &(vec).cap, (vec).n + 1, sizeof(*(vec).v)) < 0) \
      (c)->pool.oom = 1;                                                                \
    else                                                                                \
      (vec).v[(vec).n++] = (item);                                                      \
  } while (0)

/* ---- objects ----------------------------------------------------------- */

enum { ROUTE_HTTP = 1, ROUTE_GRPC = 2, ROUTE_TLS = 4 }; /* kinds, also as bits */
enum { PROTO_OTHER = 0, PROTO_HTTP, PROTO_HTTPS, PROTO_TLS };
enum { FROM_SAME = 0, FROM_ALL, FROM_SELECTOR };

/* An indexed object: "namespace/name" key, age for precedence. */
struct gobj {
  json_t *o;
  const char *location;
  const char *ns, *name, *key;
  const char *created; /* creationTimestamp or NULL */
  int64_t generation;
  size_t seq;
};

struct gcond {
  const char *type;
  int status;
  const char *reason;
  const char *message;
};

#define GCONDS_MAX 6
struct gconds {
  struct gcond c[GCONDS_MAX];
  size_t n;
};
/* Sets (or replaces) condition type. Strings must live in the pool or be literals. */
void gconds_set(struct gconds *cs, const char *type, int status, const char *reason,
                const char *message);
const struct gcond *gconds_get(const struct gconds *cs, const char *type);

struct glistener {
  const char *name;
  const char *hostname; /* lower case, NULL when none */
  int protocol;         /* PROTO_* */
  const char *protocol_str;
  uint32_t port;
  int usable;       /* accepted, programmed: routes may attach */
  int passthrough;  /* TLS mode Passthrough */
  unsigned kinds;   /* ROUTE_* allowed */
  int from;         /* FROM_* */
  json_t *selector; /* FROM_SELECTOR */
  const char *cert; /* Certificate resource name, NULL when none */
  struct gsecret *secret;
  unsigned attached;
  struct gconds conds;
};

struct ggateway {
  struct gobj k;
  struct glistener *ls;
  size_t n_ls;
  struct gconds conds;
};

/* A route's status for one parentRef naming one of our Gateways. */
struct gparent {
  struct ggateway *gw;
  const char *section;         /* NULL none */
  uint32_t port;               /* 0 none */
  struct glistener **attached; /* listeners it attached to */
  size_t n_attached;
  struct gconds conds;
};

struct groute {
  struct gobj k;
  int kind; /* ROUTE_* */
  const char *kind_str;
  const char **hostnames; /* lower case */
  size_t n_hostnames;
  struct gparent *parents;
  size_t n_parents;
  int accepted_anywhere;
  /* ResolvedRefs and Accepted problems found while building rules, applied to every parent. */
  const char *refs_reason, *refs_message;   /* NULL: all resolved */
  const char *value_reason, *value_message; /* NULL: every value supported */
  const char *host_lost;                    /* hosts lost to an Ingress, comma-separated */
};

struct gsecret {
  struct gobj k;
  int checked, ok;
  const char *problem;
  const char *crt, *key;
  size_t crt_len, key_len;
  int64_t not_after;
  const char **san;
  size_t n_san;
};

/* One Route for one (listener protocol, host). */
struct groute_entry {
  int listener;     /* EDGE__V1__LISTENER__LISTENER_HTTP or _HTTPS */
  const char *host; /* "" any, "*.x" suffix */
  const char *cert; /* HTTPS: the listener's certificate */
  const struct groute *route;
  int rule, match;
  size_t seq; /* insertion order: oldest route first (the final tie-break) */
  Edge__V1__Route *msg;
};

struct gpassthrough {
  const char *host;
  const struct groute *route;
  int rule;
  Edge__V1__WeightedCluster **clusters;
  size_t n_clusters;
};

/* A cluster a rule references. */
struct gcluster_ref {
  const char *name;
  const struct gobj *svc;
  json_t *svc_port;
  int protocol; /* Edge__V1__UpstreamProtocol */
};

struct gctx {
  struct pool pool;
  const struct gateway_opts *opts;
  GVEC(struct gobj) classes; /* ours and accepted */
  GVEC(struct gobj) all_classes;
  GVEC(struct ggateway) gateways; /* of our classes */
  GVEC(struct groute) routes;
  GVEC(struct gobj) grants;
  GVEC(struct gobj) services;
  GVEC(struct gobj) slices; /* key "ns/service" */
  GVEC(struct gsecret) secrets;
  GVEC(struct gobj) namespaces;
  GVEC(struct groute_entry) entries;
  GVEC(struct gpassthrough) passthrough;
  GVEC(struct gcluster_ref) clusters;
  GVEC(struct syncd_rejection) rej;
};

/* ---- helpers (gateway.c) ------------------------------------------------- */

const char *gj_str(json_t *o, const char *key);
void gsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));
void *gfind(void *base, size_t n, size_t elem, const char *key); /* struct gobj first */
void greject(struct gctx *c, const char *kind, const struct gobj *k, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Lower-cases and checks a Gateway API hostname (wildcard "*." allowed). 0 or -1 with why. */
int ghost_normalize(const char *in, char *out, size_t outlen, const char **why);
/* ReferenceGrant: may an object (group, kind) in from_ns refer to (group, kind, name) in to_ns? */
int gref_permitted(const struct gctx *c, const char *from_group, const char *from_kind,
                   const char *from_ns, const char *to_group, const char *to_kind,
                   const char *to_ns, const char *to_name);
struct gsecret *gsecret_usable(struct gctx *c, const char *ns, const char *name, const char **why);
int gage_cmp(const struct gobj *a, const struct gobj *b); /* oldest first */
/* The intersection of a listener hostname and a route hostname: the more specific of the two,
 * "" when both are absent, NULL when they do not intersect. */
const char *ghost_intersect(const char *lh, const char *rh);

/* ---- gateway_rules.c ----------------------------------------------------- */

/* Builds the rules of route r once it is attached somewhere: fills c->entries for each attached
 * (listener, host) and c->passthrough for TLSRoutes, and r's ResolvedRefs / UnsupportedValue
 * findings. refs_only (a route attached nowhere): only the ResolvedRefs finding, which the
 * spec sets whether or not the route is accepted; nothing is emitted. */
void grules_build(struct gctx *c, struct groute *r, int refs_only);

/* ---- gateway_emit.c ------------------------------------------------------ */

/* Emits virtual hosts, clusters, certificates and passthrough hosts into d, resolving host
 * conflicts with the Ingress resources already in d. */
int gemit_merge(struct gctx *c, const struct manifest_set *in, struct syncd_desired *d);

/* ---- gateway_status.c ---------------------------------------------------- */

/* Packs every status into d->gateway_status. */
int gstatus_pack(struct gctx *c, struct syncd_desired *d);

#endif
