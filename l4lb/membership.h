/*
 * membership — where l4lb's replica set comes from: static --backend
 * flags, or syncd's Membership.Watch stream.
 *
 * Both produce a list of struct l4_member (plain data); main.c applies a
 * list as the whole new set (backends keep their health state across
 * updates when their name and addresses are unchanged).
 *
 * Static spec: ADDR:PORT[,https=ADDR:PORT][,check=ADDR:PORT][,weight=N][,drain]. The name is
 * "ADDR:PORT". From syncd the name is Replica.node_id (the address when
 * node_id is empty); replicas with an unusable address are skipped with a
 * warning (never the whole set), duplicates keep the first.
 *
 * The watch stream reconnects by itself (common/rpc, jittered backoff
 * capped at reconnect_max_ms); while syncd is away nothing is delivered,
 * so the last set stays in force.
 *
 * Cache (--cache-dir): every ReplicaSet received is saved as the bytes
 * syncd sent (DIR/replicas.pb, written to a temp file, fsynced and renamed
 * over the old one, so a crash leaves the old or the new set, never a
 * torn one). main.c loads it at start so a restarted l4lb serves the last
 * known replicas while syncd is unreachable.
 *
 * Callers: main.c (parse, watch) and the unit tests (parse, decode).
 */
#ifndef EDGE_L4LB_MEMBERSHIP_H
#define EDGE_L4LB_MEMBERSHIP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/rpc.h"

#define L4_MEMBER_STR 128

struct l4_member {
  char name[L4_MEMBER_STR];
  char address[L4_MEMBER_STR];
  char check[L4_MEMBER_STR]; /* "" for a TCP connect check */
  char https[L4_MEMBER_STR]; /* "" when the replica serves no HTTPS */
  uint32_t weight;
  int draining;
  /* From syncd (0 for static members): the sending syncd replica holds the
   * proxy's stream; when it last changed its record (its clock, ms). */
  int connected;
  int64_t changed_ms;
};

/* Parses one --backend value. 0 or -1 with a one-line reason. */
int l4_member_parse_static(const char *spec, struct l4_member *out, char *err, size_t errlen);

/*
 * Decodes a serialized edge.v1.ReplicaSet into a malloc'd array (caller
 * frees; may be NULL when empty) of *n members, its version and the syncd
 * replica that sent it (into syncd_replica when not NULL, "" if unnamed).
 * Bad replicas are skipped (reasons logged). Returns 0, or -1 when the
 * bytes are not a ReplicaSet (nothing is returned then).
 */
int l4_member_decode_set(const uint8_t *data, size_t len, struct l4_member **out, size_t *n,
                         uint64_t *version, char *syncd_replica, size_t replica_len);

/* The inverse, for the cache: m[0..n) as a packed ReplicaSet. *out
 * malloc'd (caller frees). 0 or -1 (out of memory). */
int l4_member_encode_set(const struct l4_member *m, size_t n, uint64_t version, uint8_t **out,
                         size_t *len);

#define L4_CACHE_FILE "replicas.pb"

/* Saves a serialized ReplicaSet atomically as DIR/replicas.pb. 0 or -1
 * with a reason in err. */
int l4_member_cache_save(const char *dir, const uint8_t *data, size_t len, char *err,
                         size_t errlen);
/* Loads DIR/replicas.pb into a malloc'd member array (caller frees) as
 * l4_member_decode_set does. Returns 0, 1 when there is no cache file, or
 * -1 with a reason (unreadable or not a ReplicaSet). */
int l4_member_cache_load(const char *dir, struct l4_member **out, size_t *n, uint64_t *version,
                         char *err, size_t errlen);

struct l4_watch;

/* Receives each new set: members valid only during the call. */
typedef void (*l4_watch_fn)(void *ud, const struct l4_member *members, size_t n, uint64_t version,
                            const char *syncd_replica);

struct l4_watch_opts {
  const char *target; /* syncd "ADDR:PORT" */
  struct rpc_creds creds;
  const char *node_id; /* this l4lb, for syncd's status */
  const char *address; /* where this l4lb listens, for syncd's status */
  const char *build;
  const char *cache_dir;     /* save every set received here (NULL: no cache) */
  uint32_t reconnect_max_ms; /* reconnect backoff cap (0: the rpc default) */
  /* The stream delivered its first set (up = 1) or ended after one (0).
   * May be NULL. */
  void (*on_state)(void *ud, int up);
};

int l4_watch_start(struct rpc_runtime *rt, const struct l4_watch_opts *opts, l4_watch_fn fn,
                   void *ud, struct l4_watch **out);
/* Closes the stream; done(arg) runs on the loop once it is released. */
void l4_watch_stop(struct l4_watch *w, void (*done)(void *arg), void *arg);
/* 1 once at least one set has been received. */
int l4_watch_synced(const struct l4_watch *w);

#endif
