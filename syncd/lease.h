/*
 * lease — leader election over a coordination.k8s.io/v1 Lease, the rules
 * without the I/O (syncd/leader.c does the requests).
 *
 * The rules are client-go's leaderelection: each round a candidate reads
 * the Lease; if it does not exist, it creates it naming itself; if another
 * holder renewed it less than leaseDurationSeconds ago — measured on the
 * candidate's own monotonic clock from when it last saw the record change,
 * never from the timestamps in it, so clock skew between hosts does not
 * matter — it waits; otherwise it writes itself as holder (renewTime now,
 * acquireTime and leaseTransitions + 1 when it takes over). Every write
 * carries the resourceVersion that was read, so of two candidates writing
 * at once the API server accepts one and answers 409 Conflict to the
 * other. A leader renews every round and counts itself leader only while
 * its last successful renew is younger than the renew deadline (shorter
 * than the lease duration), so it stops acting before anyone else may
 * take over. Releasing (SIGTERM) writes an empty holder with a one-second
 * duration, so the next candidate takes over at its next round.
 *
 * Invariants: a record read from the server is validated (holder at most
 * 253 bytes, duration clamped to [0, 1 h], times kept as the strings they
 * are); a holder that is not a valid string never compares equal to ours.
 *
 * Callers: syncd/leader.c; unit tests. Pure: no clock, no I/O, no
 * allocation except the json_t it builds (the caller's to decref).
 */
#ifndef EDGE_SYNCD_LEASE_H
#define EDGE_SYNCD_LEASE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define LEASE_ID_MAX 254
#define LEASE_TIME_MAX 40

/* What a Lease says (its spec) and the resourceVersion it was read at. */
struct lease_record {
  char holder[LEASE_ID_MAX]; /* spec.holderIdentity; "" when released */
  int holder_invalid;        /* the server's value was not a usable string */
  int64_t duration_s;        /* spec.leaseDurationSeconds */
  char acquire_time[LEASE_TIME_MAX], renew_time[LEASE_TIME_MAX]; /* MicroTime strings */
  int64_t transitions;                                           /* spec.leaseTransitions */
  char resource_version[64];                                     /* metadata.resourceVersion */
};

struct lease_config {
  char identity[LEASE_ID_MAX]; /* this candidate: unique per process */
  uint32_t duration_ms;        /* written as leaseDurationSeconds (rounded up) */
  uint32_t renew_deadline_ms;  /* < duration_ms */
  uint32_t retry_ms;           /* one round every retry_ms */
};

/* What one candidate remembers between rounds. Zero-initialise. */
struct lease_state {
  struct lease_record observed;
  int have_observed;
  uint64_t observed_at_ms; /* monotonic: when observed last changed */
  int leader;
  uint64_t renewed_at_ms; /* monotonic: the last successful write */
};

enum lease_action {
  LEASE_WAIT = 0,   /* held by another, not expired: nothing to write */
  LEASE_CREATE = 1, /* POST want (no Lease yet) */
  LEASE_UPDATE = 2, /* PUT want (at cur's resourceVersion) */
};

/* Reads a Lease object. 0, or -1 with a reason when it is not a Lease
 * (not an object, no metadata.resourceVersion). */
int lease_record_from_json(const json_t *lease, struct lease_record *r, char *err, size_t errlen);

/* The Lease object to POST or PUT (resourceVersion included when set). */
json_t *lease_record_to_json(const struct lease_record *r, const char *ns, const char *name);

/* "2026-12-02T18:00:00.123456Z" (MicroTime) for now_us since the epoch. */
void lease_format_time(int64_t now_us, char *out, size_t outlen);

/* One round: cur is the Lease just read (NULL: there is none), now_ms the
 * monotonic clock, now_us the wall clock. Fills *want for CREATE/UPDATE. */
enum lease_action lease_decide(struct lease_state *st, const struct lease_config *cfg,
                               const struct lease_record *cur, uint64_t now_ms, int64_t now_us,
                               struct lease_record *want);

/* The write of want succeeded; written is the Lease the server returned
 * (its resourceVersion is the new one). This candidate leads. */
void lease_written(struct lease_state *st, const struct lease_record *written, uint64_t now_ms);

/* A read or write failed (conflict: the server answered 409). A conflict
 * ends leadership at once; another failure only when the renew deadline
 * has passed since the last successful write. */
void lease_failed(struct lease_state *st, const struct lease_config *cfg, int conflict,
                  uint64_t now_ms);

/* How long to wait before the next round: the retry period, or less when
 * the Lease another holds expires sooner (so a follower takes over as soon
 * as it may, not up to a retry period later). */
uint32_t lease_next_round_ms(const struct lease_state *st, const struct lease_config *cfg,
                             uint64_t now_ms);

/* 1 while this candidate may act as leader at now_ms. */
int lease_is_leader(const struct lease_state *st, const struct lease_config *cfg, uint64_t now_ms);

/* The record that releases the Lease (holder "", duration 1 s), at the
 * last written resourceVersion. -1 when this candidate does not lead. */
int lease_release(const struct lease_state *st, int64_t now_us, struct lease_record *want);

#endif
