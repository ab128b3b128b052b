/*
 * translate_internal — what the Ingress rules (translate.c) and the
 * incremental engine (translate_world.c) share. Not for use outside
 * syncd/translate*.c.
 *
 * The rules are functions of one object and what it references: compile
 * one Ingress (validate it whole, turn it into route candidates, cluster
 * references and TLS claims), check one Secret, and pack one VirtualHost,
 * Cluster, Certificate or DefaultBackend from the candidates, references
 * and claims the engine gathered for it. The engine decides what to run
 * again after a change and keeps the results between runs.
 *
 * Ownership: a compiled Ingress (struct ting) owns every string its
 * candidates, references and claims point at (its pool) and holds a json
 * reference on every Service it resolved, so a reference's svc_port stays
 * valid for as long as the compile result lives.
 */
#ifndef EDGE_SYNCD_TRANSLATE_INTERNAL_H
#define EDGE_SYNCD_TRANSLATE_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/hmap.h"
#include "edge/v1/resources.pb-c.h"
#include "syncd/ingress_policy.h"
#include "syncd/model.h"
#include "syncd/policy_annotations.h"
#include "syncd/pool.h"
#include "syncd/pset.h"
#include "syncd/translate.h"

/* ---- small containers ------------------------------------------------------ */

/* qsort that accepts an empty (NULL) array. */
void tr_sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));

const char *jstr(json_t *o, const char *key);
json_t *jpath(json_t *o, const char *a, const char *b);

/* A unit's rejections (an Ingress's, a host's, a document's...). */
struct rejlist {
  struct syncd_rejection *v;
  size_t n;
};
void rejlist_clear(struct rejlist *l);
/* Appends r (taken; cleared on failure). 0 or -ENOMEM. */
int rejlist_add(struct rejlist *l, struct syncd_rejection *r);

/* ---- the objects -------------------------------------------------------------- */

enum tkind {
  TK_NONE = 0,
  TK_INGRESS,
  TK_CLASS,
  TK_SERVICE,
  TK_SLICE,
  TK_SECRET,
  TK_CONFIGMAP, /* CA bundles for client certificates (issue 20) */
  /* read by the Gateway API translation only (translate_gateway.c) */
  TK_NAMESPACE,
  TK_GW_CLASS,
  TK_GATEWAY,
  TK_HTTPROUTE,
  TK_GRPCROUTE,
  TK_TLSROUTE,
  TK_REFGRANT,
  TK_COUNT
};
#define TK_FIRST_GATEWAY TK_NAMESPACE

/* One keyed object (kind, "namespace/name"): the winning document of its
 * key (the one read last) and what is derived from it. */
struct tobj {
  enum tkind tk;
  char *key;
  struct tdoc **occ; /* every document with this key, any order */
  size_t n_occ, cap_occ;
  struct tdoc *win;     /* the occurrence read last; NULL once gone */
  json_t *o;            /* win's object (borrowed from the doc) */
  const char *location; /* win's location (borrowed from the doc) */
  char *ns, *name;      /* copies of win's (namespace "default" when none) */
  int changed;          /* this update */
  /* Ingress */
  struct ting *ing;
  struct rejlist dups; /* "duplicate Ingress" rejections of the losers */
  /* EndpointSlice: the service key it belongs to ("" when none) */
  char *svc_key;
  /* Secret: the check, made at most once per winning document (the PEM
   * itself is decoded again when a Certificate is emitted, not kept) */
  int checked, ok;
  char *problem;
  int64_t not_after;
};

/* ---- compiled Ingresses --------------------------------------------------------- */

struct route_opts {
  uint32_t response_header_timeout_ms;
  uint64_t max_body_bytes;
  const char *rewrite_prefix;
  int disable_ssl_redirect;
  struct pa_route policy; /* auth, rate limit, CORS (syncd/policy_annotations.c) */
};

/* ingress-nginx canary annotations (edge.dev/canary*): this Ingress's paths take a share of
 * the traffic of the same host and path served by another Ingress. */
struct canary {
  int on;
  uint32_t weight, total;            /* canary-weight out of canary-weight-total (100) */
  const char *header, *header_value; /* canary-by-header (+ -value); NULL none */
};

struct annotations {
  int protocol; /* Edge__V1__UpstreamProtocol */
  int lb;       /* Edge__V1__LbPolicy */
  uint32_t connect_timeout_ms;
  struct route_opts ro;
  struct ipol_ingress pol;   /* issue 20: client certificates, upstream TLS, health, breakers */
  struct pa_cluster cpolicy; /* issue 20: affinity, consistent hashing */
  struct canary cy;
};

struct ting;

/* One path of one served Ingress, before conflicts are settled. */
struct cand {
  const char *host; /* lower-case, "*.x" wildcard, "" any */
  const char *path;
  const char *key_path; /* compared for conflicts and length (Prefix: no trailing slash) */
  size_t key_len;
  int type; /* Edge__V1__PathType as written */
  int eff;  /* EXACT or PREFIX: how it behaves */
  const char *cluster;
  struct route_opts ro;
  const struct ting *ing;
  int rule, pidx;
  struct canary cy;
  /* A winner: the canary path that takes a share of it (set by settle_host
   * for the emission that follows, NULL otherwise). */
  const struct cand *canary;
};

/* A Cluster as one Ingress references it; the oldest reference sets the options. */
struct cluster_ref {
  const char *name;    /* "ns/service:port" */
  const char *svc_key; /* "ns/service" */
  json_t *svc;         /* the Service object (a reference held by the ting) */
  json_t *svc_port;    /* inside svc */
  const struct ting *ing;
  int protocol, lb;
  uint32_t connect_timeout_ms;
  struct ipol_ingress pol;  /* strings in the ting's pool */
  struct pa_cluster policy; /* affinity, consistent hashing (in the ting's pool) */
};

struct tls_claim {
  const char *host;
  const char *secret; /* NULL: no secretName (the default certificate, no fallback) */
  const struct ting *ing;
  int order; /* position among the Ingress's claims */
};

struct ting {
  struct tobj *obj;
  const char *id; /* "namespace/name" (obj->key) */
  const char *ns, *name, *location;
  char *created;    /* creationTimestamp, NULL when absent */
  char *class_name; /* the class it names (ingressClassName or legacy), NULL when none */
  int served;       /* of our class */
  int valid;        /* served and compiled */
  struct syncd_rejection ignored; /* when not served (reason/location set) */
  int has_ignored;
  struct rejlist rej; /* when served but rejected whole: why (one entry) */
  struct cand *cands;
  size_t n_cands;
  struct cluster_ref *refs;
  size_t n_refs;
  struct tls_claim *claims;
  size_t n_claims;
  const char *db_cluster; /* defaultBackend's cluster, NULL when none */
  char **svc_keys;        /* every Service key it looked up (found or not) */
  size_t n_svc_keys;
  char **secret_keys; /* every Secret key its claims name */
  size_t n_secret_keys;
  /* issue 20: the policies it asks for (NULL until compiled valid) and
   * every Secret / ConfigMap they read, as "Secret/ns/name" or
   * "ConfigMap/ns/name": a change to one recompiles this Ingress, which
   * re-emits its hosts and clusters */
  struct ipol_ingress *pol;
  char **policy_keys;
  size_t n_policy_keys;
  json_t **held; /* Service objects referenced */
  size_t n_held;
  struct pool pool;
};

/* Oldest first: creationTimestamp (none counts as newest), then id. */
int ting_age_cmp(const struct ting *x, const struct ting *y);

/* Class facts the compile step needs. */
struct tclasses {
  const struct hmap *ours;    /* class name → non-NULL */
  const struct hmap *foreign; /* class name → controller (char *) */
  int have_default;
};

/* The Service lookup the compile step needs ("ns/name" → object or NULL). */
typedef json_t *(*tr_service_fn)(void *ud, const char *key);
/* The Secret / ConfigMap lookup of the issue-20 annotations (tk: TK_SECRET
 * or TK_CONFIGMAP; "ns/name" → object or NULL). */
typedef json_t *(*tr_object_fn)(void *ud, enum tkind tk, const char *key);

/* Fills g (already holding obj, id, ns, name, location, created,
 * class_name) from its Ingress object: served or ignored; when served,
 * valid with candidates, references and claims, or a rejection in g->rej.
 * -ENOMEM or 0. */
int tr_compile_ingress(struct ting *g, json_t *o, const struct tclasses *cl, tr_service_fn svc,
                       tr_object_fn objects, void *svc_ud);
/* Frees everything g owns except g itself and its identity strings. */
void tr_ting_clear(struct ting *g);
/* The class an Ingress names (ingressClassName, else the legacy annotation), or NULL. */
const char *tr_class_name(json_t *o);

/* translate.c's helpers that translate_policy.c uses too. */
const char *tr_annotation(struct pool *p, json_t *obj, const char *name);
char *tr_base64_decode(const char *in, size_t *outlen); /* heap, NUL-terminated; NULL invalid */
void tr_note_key(struct ting *g, char ***arr, size_t *n, const char *key);
const char *tr_resolve_backend(struct ting *g, json_t *backend, const struct annotations *a,
                               tr_service_fn svc_fn, void *svc_ud, char *err, size_t errlen);

/* ---- issue 20 (translate_policy.c) ------------------------------------------------ */

/* What the annotation parsers of one Ingress may look up. */
struct tr_policy_ctx {
  struct ting *g;
  json_t *ingress;
  tr_service_fn svc_fn;
  tr_object_fn obj_fn;
  void *ud;
};
/* The environments of syncd/ingress_policy.h and syncd/policy_annotations.h over pc: the
 * Ingress's annotations, Secrets and labelled ConfigMaps of its namespace (each noted in
 * g->policy_keys, found or not), an external-auth Service's cluster, g's pool. */
void tr_policy_envs(struct tr_policy_ctx *pc, struct ipol_env *ienv, struct pa_env *penv);
/* 0 when every host of g is in its own spec.tls (client certificates are asked for in the
 * TLS handshake), else -1 with the reason. */
int tr_client_auth_hosts_have_tls(const struct ting *g, char *err, size_t errlen);
/* cluster_emit's decorate hook for an Ingress's Cluster: upstream TLS, health checks,
 * breakers, affinity, hashing from ref's policies. Free tmp with pool_free afterwards. */
struct tr_cluster_decor {
  const struct cluster_ref *ref;
  const struct translate_opts *opts;
  const char *ns, *svc;
  struct pool tmp;
  struct ipol_ingress pol;
  Edge__V1__CookieAffinity aff;
  uint8_t aff_key[32];
};
int tr_decorate_cluster(void *arg, Edge__V1__Cluster *cl);

/* Checks Secret s once (type, keys, base64, the pair itself). */
void tr_check_secret(struct tobj *s, int *oom);

/* ---- emitting ----------------------------------------------------------------------- */

struct emitted {
  uint8_t *bytes;
  size_t len;
  /* common/validate refused the resource (the check every proxy runs on
   * what it receives): bytes is NULL, nothing is published, rej says why */
  int refused;
  struct syncd_rejection rej;
};

/* Route order inside a host, and the conflict order of candidates. */
int cand_conflict_cmp(const struct cand *x, const struct cand *y);
int cand_route_cmp(const struct cand *x, const struct cand *y);

/* The VirtualHost of one host from its winning candidates w[0..n) (n >
 * 0), certificate = the resource name it names ("" none, "default"),
 * tls_fallback and client_auth (NULL: none; tr_host_client_auth). *out
 * packed. -ENOMEM or 0. */
int tr_emit_vhost(const char *host, struct cand **w, size_t n, const char *certificate,
                  int tls_fallback, const Edge__V1__ClientAuth *client_auth, struct emitted *out);
/* A host's client certificate policy (issue 20): the oldest contributing
 * Ingress that asks for one sets it (every route of the host is
 * protected); each younger one asking for something else gets a
 * rejection in rej (the host's). NULL: none. */
const Edge__V1__ClientAuth *tr_host_client_auth(struct cand **w, size_t n, struct rejlist *rej,
                                                int *oom);
/* The Cluster from its oldest reference, with endpoints from the slices
 * (their objects) of the Service; opts gives the secret cookie-affinity
 * keys are derived from (NULL: affinity has no effect). */
int tr_emit_cluster(const struct cluster_ref *ref, json_t *const *slices, size_t n_slices,
                    const struct translate_opts *opts, struct emitted *out);
/* The Certificate of Secret s (checked, ok) serving sni[0..n) (sorted). */
int tr_emit_certificate(const struct tobj *s, const char *const *sni, size_t n,
                        struct emitted *out);
/* The DefaultBackend: cluster (NULL: none) from Ingress g (NULL: none). */
int tr_emit_default_backend(const char *cluster, const struct ting *g, struct emitted *out);
/* The default Certificate from opts (0 and len 0 when opts has none). */
int tr_emit_default_cert(const struct translate_opts *opts, struct emitted *out);

/* The reason for a rejection, control bytes quoted (tenant text never
 * reaches a terminal raw). Returns a heap string or NULL. */
char *tr_vformat(const char *fmt, va_list ap);
int tr_rejection(struct syncd_rejection *r, const char *kind, const char *ns, const char *name,
                 const char *location, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void tr_rejection_clear(struct syncd_rejection *r);
int tr_rejection_copy(struct syncd_rejection *dst, const struct syncd_rejection *src);

/* ---- the engine (translate_world.c, translate_settle.c) ------------------------------ */

/* One input document, known by its pointer. */
struct tdoc {
  json_t *o;
  char *location;
  size_t seq;
  unsigned round;
  int dead;   /* removed: waits in translator.dead */
  char *kind; /* for counts; NULL without kind */
  struct tobj *obj;
  struct rejlist rej; /* index problems (no kind, no name, bad apiVersion) */
};

/* What a host produced: its rejections and the Secret its certificate comes from. */
struct thost {
  char *host;
  char *cert_secret; /* key of the usable Secret its winning claim names, or NULL */
  struct rejlist rej;
};

/* An emitted resource. */
struct tres {
  int type;
  char *name;
  size_t len;
  uint8_t digest[32]; /* SHA-256 of the bytes: what later emissions are compared with */
  uint8_t *bytes;     /* only while this update hands them out; NULL otherwise */
};

struct translator {
  char *default_cert, *default_key;
  uint8_t affinity_secret[64]; /* opts.affinity_secret points here */
  struct translate_opts opts;
  unsigned round;
  int ready;                  /* a full translation is held */
  struct hmap docs;           /* json pointer → tdoc */
  struct hmap objs[TK_COUNT]; /* key → tobj */
  struct hmap kinds;          /* kind → (uintptr) count */
  struct hmap ours, foreign;  /* class name → 1 / controller (heap) */
  int have_default;
  struct hmap class_users;   /* class name → pset of ting */
  struct pset classless;     /* ting naming no class */
  struct hmap svc_users;     /* service key → pset of ting */
  struct hmap secret_users;  /* secret key → pset of ting */
  struct hmap policy_users;  /* "Secret/ns/name", "ConfigMap/ns/name" → pset of ting (issue 20) */
  struct hmap host_users;    /* host → pset of ting */
  struct hmap cluster_users; /* cluster name → pset of ting */
  struct hmap svc_slices;    /* service key → pset of tobj (slices) */
  struct pset db_users;      /* valid ting with a defaultBackend */
  struct hmap served;        /* id → ting (valid) */
  struct hmap hosts;         /* host → thost */
  struct hmap cert_hosts;    /* secret key → hmap of hosts (as a string set) */
  struct hmap out;           /* "T/name" → tres */
  struct hmap rej_units;     /* rejlist pointer → rejlist */
  struct hmap ignored;       /* ting pointer → ting */
  struct pset dups;          /* Ingress objects with several documents */
  struct rejlist errors;     /* the manifest set's parse errors */
  struct hmap unpub;         /* "T/name" → rejlist: resources validation refused */
  /* dirty this update */
  struct pset d_objs;  /* objects whose documents changed */
  struct pset changed; /* objects whose content changed */
  struct hmap d_ings, d_hosts, d_clusters, d_certs, d_names;
  int d_db, d_report, d_served, classes_dirty, oom;
  /* the update handed out */
  struct syncd_update upd;
  struct syncd_resource *up;
  struct tres **up_res; /* up[i]'s resource: its bytes are freed at the next update */
  struct syncd_resource_key *rm;
  size_t n_up, n_rm, cap_up, cap_rm;
  struct syncd_report report;
  char **served_sorted;
  size_t n_served_sorted;
  struct tdoc **dead; /* documents removed this update, freed at the next */
  size_t n_dead, cap_dead;
  struct tdoc **order; /* the last update's documents in input order */
  size_t n_order, cap_order;
  /* the Gateway API unit (translate_gateway.c) */
  struct gateway_opts gw_opts;
  uint32_t gw_http_ports[9], gw_https_ports[9];
  char *gw_address;
  int gw_dirty;              /* one of its inputs changed this update */
  struct hmap gw_namespaces; /* namespaces its objects live in or name (string set) */
  struct hmap gw_hosts;      /* hosts it served or contested last time (string set) */
  struct hmap gw_taken;      /* Ingress hosts it keeps (their "vh:" resource withheld) */
  struct hmap gw_names;      /* "T/name" of the resources it emitted (string set) */
  struct rejlist gw_rej;
  uint8_t *gw_status; /* its packed statuses (syncd_report.gateway_status) */
  size_t gw_status_len;
  int gw_status_changed;
  unsigned long gw_runs; /* translations run (tests: what an update recomputed) */
};

/* Registers (or unregisters, when empty) a unit's rejections in the report. */
void rej_sync(struct translator *t, struct rejlist *l);
/* Adds key to a dirty set (remembering running out of memory). */
void mark(struct translator *t, struct hmap *set, const char *key);
/* Sets resource (type, name) to e's bytes (taken), or removes it (e NULL);
 * marks it changed when its bytes differ. */
void out_set(struct translator *t, int type, const char *name, struct emitted *e);

/* translate_settle.c: what dirty hosts, certificates, clusters and the
 * default backend produce now; the report and the served list. */
void settle_host(struct translator *t, const char *host);
void settle_cert(struct translator *t, const char *secret_key);
void settle_cluster(struct translator *t, const char *name);
void settle_default_backend(struct translator *t);
int build_report(struct translator *t);
void build_served(struct translator *t);
void report_clear(struct syncd_report *r);

/* translate_gateway.c: the Gateway API unit. gateway_kind() says whether a
 * document kind belongs to it; gateway_obj_changed() marks the unit dirty
 * when an object it reads changed; gateway_settle() runs it when dirty
 * (after the Ingress hosts settled); gateway_free() frees its state. */
enum tkind gateway_kind(const char *kind);
void gateway_obj_changed(struct translator *t, const struct tobj *o);
void gateway_settle(struct translator *t, int full);
void gateway_free(struct translator *t);

#endif
