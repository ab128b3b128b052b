/*
 * maglev — Maglev consistent hashing (Eisenbud et al., NSDI 2016, §3.4)
 * as a pure module over plain data: no I/O, no globals, no threads.
 *
 * Invariants that make the L4 tier work:
 *  - Determinism. Backends are first sorted into a canonical order (by
 *    name, bytewise), and every hash used here is specified below and
 *    independent of the platform's endianness, so every l4lb instance
 *    given the same set of (name, weight) pairs builds a byte-identical
 *    table, whatever order it learned them in.
 *  - Preference list of backend i: offset = h1(name) mod M,
 *    skip = h2(name) mod (M-1) + 1, slot_j = (offset + j*skip) mod M. M is
 *    prime, so each list is a permutation of the table.
 *  - Turns: backends (in canonical order) take turns claiming their next
 *    free preferred slot until the table is full. With weights, each pass
 *    gives backend i a credit of w_i and it claims one slot per w_max of
 *    credit: the heaviest backends claim one slot per pass, a backend of
 *    half the weight one every second pass. Equal weights reduce to the
 *    paper's algorithm, so each backend owns floor(M/N) or ceil(M/N) slots.
 *
 * Hash functions (stable, documented; changing them changes every table):
 *  - h1(name) = SipHash-2-4 with key MAGLEV_K1, h2(name) = SipHash-2-4 with
 *    key MAGLEV_K2, over the name's bytes (no terminator). SipHash reads
 *    its input as little-endian 64-bit words on every platform.
 *  - Flow keys (maglev_hash_flow) = SipHash-2-4 with key MAGLEV_K3 over a
 *    canonical serialisation of the tuple (see maglev_hash_flow).
 *
 * Callers: l4lb's snapshot builder (main thread) builds tables; workers
 * and the admin /lookup handler only read them (a built table is
 * immutable, so any number of threads may read it without locks).
 */
#ifndef EDGE_L4LB_MAGLEV_H
#define EDGE_L4LB_MAGLEV_H

#include <stddef.h>
#include <stdint.h>

#define MAGLEV_DEFAULT_M 65537u
#define MAGLEV_MAX_M 16777259u /* a prime just above 2^24 */
#define MAGLEV_MAX_WEIGHT 1000000u

/* The SipHash-2-4 key of maglev_hash_flow ("maglev-f", "edge-l4b" as ASCII
 * read big-endian). Public because l4lb's XDP program hashes flows with it
 * too (given through its config map). Never change it. */
#define MAGLEV_FLOW_K0 0x6d61676c65762d66ull
#define MAGLEV_FLOW_K1 0x656467652d6c3462ull

/* Error codes (negative). */
enum {
  MAGLEV_ERR_INVALID = -1, /* bad argument: M not prime, n > M, duplicate name */
  MAGLEV_ERR_NOMEM = -2,
};

struct maglev_backend {
  const char *name; /* unique; hashed to place the backend */
  uint32_t weight;  /* relative weight; 0 is treated as 1 */
};

struct maglev_table {
  uint32_t m;      /* table size (prime) */
  uint32_t n;      /* number of backends */
  uint32_t *slots; /* m entries: canonical index of the owning backend */
  /* canonical index -> index in the caller's input array */
  uint32_t *input_index;
  /* slots owned by each backend, by canonical index (for shares/metrics) */
  uint32_t *owned;
};

/* 1 when m is a prime (trial division; m up to MAGLEV_MAX_M is cheap). */
int maglev_is_prime(uint32_t m);

/*
 * Builds the table for backends b[0..n) with size m. n may be 0 (an empty
 * table whose lookups return -1). Returns 0 and a new table in *out (the
 * caller owns it: maglev_free), or a negative error with a one-line reason
 * in err (may be NULL). Names are not retained.
 */
int maglev_build(const struct maglev_backend *b, size_t n, uint32_t m, struct maglev_table **out,
                 char *err, size_t errlen);

void maglev_free(struct maglev_table *t);

/*
 * Looks a flow hash up: returns the input index (position in the array
 * given to maglev_build) of the chosen backend and stores the slot
 * (hash mod m) in *slot when slot is not NULL; -1 for an empty table.
 */
int maglev_lookup(const struct maglev_table *t, uint64_t hash, uint32_t *slot);

/*
 * The input index owning slot (slot < m), or -1 for an empty table. Used to
 * walk the table from a flow's slot to find the next distinct backend when
 * a connect fails.
 */
int maglev_slot_backend(const struct maglev_table *t, uint32_t slot);

/* SipHash-2-4 of data with a 128-bit key (k0, k1). */
uint64_t maglev_siphash(uint64_t k0, uint64_t k1, const void *data, size_t len);

/* h1/h2 of a name, as used for the preference lists (exposed for tests). */
uint64_t maglev_h1(const char *name);
uint64_t maglev_h2(const char *name);

enum maglev_hash_mode {
  MAGLEV_HASH_5TUPLE = 0, /* src ip, src port, dst ip, dst port, protocol */
  MAGLEV_HASH_SRC,        /* source address only (client affinity) */
};

/*
 * A connection's identity. Addresses are raw network-order bytes: 4 for
 * IPv4, 16 for IPv6 (family is 4 or 6). Ports are host-order numbers.
 */
struct maglev_flow {
  int family;
  uint8_t src[16];
  uint8_t dst[16];
  uint16_t src_port;
  uint16_t dst_port;
  uint8_t protocol; /* 6 for TCP */
};

/*
 * Hashes a flow for maglev_lookup. Serialisation hashed (all integers big
 * endian): 5tuple: family(1) src(4|16) dst(4|16) src_port(2) dst_port(2)
 * protocol(1); src: family(1) src(4|16). An IPv4-mapped IPv6 address should
 * be converted to IPv4 by the caller so both spellings hash alike.
 */
uint64_t maglev_hash_flow(const struct maglev_flow *f, enum maglev_hash_mode mode);

#endif
