/*
 * maglev — table construction and lookup. See maglev.h for the contract
 * (canonical order, preference lists, weighted turns, hash functions).
 *
 * Cost: O(M log M) slot probes for equal weights (the paper's bound), plus
 * one pass over the backends per round of turns. Memory: 4 bytes per slot.
 */
#include "l4lb/maglev.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keys of the name hashes ("maglev-1", "maglev-2" followed by "edge-l4b",
 * as ASCII read big-endian; the flow key is MAGLEV_FLOW_K0/K1 in
 * maglev.h). Never change them: instances running different keys disagree
 * on every flow. */
#define MAGLEV_K1_0 0x6d61676c65762d31ull
#define MAGLEV_K2_0 0x6d61676c65762d32ull
#define MAGLEV_K_1 0x656467652d6c3462ull

#define SLOT_EMPTY UINT32_MAX

#define SET_ERR(...)                                       \
  do {                                                     \
    if (err && errlen) snprintf(err, errlen, __VA_ARGS__); \
  } while (0)

/* ---- SipHash-2-4 --------------------------------------------------------- */

static inline uint64_t rotl64(uint64_t x, int b) {
  return (x << b) | (x >> (64 - b));
}

static inline uint64_t load_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

#define SIPROUND(v0, v1, v2, v3) \
  do {                           \
    v0 += v1;                    \
    v1 = rotl64(v1, 13);         \
    v1 ^= v0;                    \
    v0 = rotl64(v0, 32);         \
    v2 += v3;                    \
    v3 = rotl64(v3, 16);         \
    v3 ^= v2;                    \
    v0 += v3;                    \
    v3 = rotl64(v3, 21);         \
    v3 ^= v0;                    \
    v2 += v1;                    \
    v1 = rotl64(v1, 17);         \
    v1 ^= v2;                    \
    v2 = rotl64(v2, 32);         \
  } while (0)

uint64_t maglev_siphash(uint64_t k0, uint64_t k1, const void *data, size_t len) {
  const uint8_t *p = data;
  uint64_t v0 = k0 ^ 0x736f6d6570736575ull;
  uint64_t v1 = k1 ^ 0x646f72616e646f6dull;
  uint64_t v2 = k0 ^ 0x6c7967656e657261ull;
  uint64_t v3 = k1 ^ 0x7465646279746573ull;
  size_t full = len & ~(size_t)7;
  for (size_t i = 0; i < full; i += 8) {
    uint64_t m = load_le64(p + i);
    v3 ^= m;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    v0 ^= m;
  }
  uint64_t last = (uint64_t)(len & 0xff) << 56;
  for (size_t i = 0; i < (len & 7); i++) last |= (uint64_t)p[full + i] << (8 * i);
  v3 ^= last;
  SIPROUND(v0, v1, v2, v3);
  SIPROUND(v0, v1, v2, v3);
  v0 ^= last;
  v2 ^= 0xff;
  for (int i = 0; i < 4; i++) SIPROUND(v0, v1, v2, v3);
  return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t maglev_h1(const char *name) {
  return maglev_siphash(MAGLEV_K1_0, MAGLEV_K_1, name, strlen(name));
}

uint64_t maglev_h2(const char *name) {
  return maglev_siphash(MAGLEV_K2_0, MAGLEV_K_1, name, strlen(name));
}

uint64_t maglev_hash_flow(const struct maglev_flow *f, enum maglev_hash_mode mode) {
  uint8_t buf[1 + 16 + 16 + 2 + 2 + 1];
  size_t alen = f->family == 6 ? 16 : 4;
  size_t n = 0;
  buf[n++] = (uint8_t)f->family;
  memcpy(buf + n, f->src, alen);
  n += alen;
  if (mode == MAGLEV_HASH_5TUPLE) {
    memcpy(buf + n, f->dst, alen);
    n += alen;
    buf[n++] = (uint8_t)(f->src_port >> 8);
    buf[n++] = (uint8_t)(f->src_port & 0xff);
    buf[n++] = (uint8_t)(f->dst_port >> 8);
    buf[n++] = (uint8_t)(f->dst_port & 0xff);
    buf[n++] = f->protocol;
  }
  return maglev_siphash(MAGLEV_FLOW_K0, MAGLEV_FLOW_K1, buf, n);
}

/* ---- table ---------------------------------------------------------------- */

int maglev_is_prime(uint32_t m) {
  if (m < 2) return 0;
  if (m % 2 == 0) return m == 2;
  for (uint32_t d = 3; (uint64_t)d * d <= m; d += 2)
    if (m % d == 0) return 0;
  return 1;
}

/* qsort has no context argument in C11: sort pointers to the inputs. */
struct sort_ref {
  const char *name;
  uint32_t index;
};

static int cmp_ref(const void *a, const void *b) {
  const struct sort_ref *x = a, *y = b;
  return strcmp(x->name, y->name);
}

void maglev_free(struct maglev_table *t) {
  if (!t) return;
  free(t->slots);
  free(t->input_index);
  free(t->owned);
  free(t);
}

struct turn_state {
  uint32_t next; /* next preferred slot to try */
  uint32_t skip;
  uint64_t weight;
  uint64_t credit;
};

/* Claims backend i's next free preferred slot. The table is not full, so
 * the walk over its (permutation) preference list terminates. */
static void claim_next(struct maglev_table *t, struct turn_state *s, uint32_t i) {
  uint32_t c = s->next;
  while (t->slots[c] != SLOT_EMPTY) {
    c += s->skip;
    if (c >= t->m) c -= t->m;
  }
  t->slots[c] = i;
  t->owned[i]++;
  c += s->skip;
  if (c >= t->m) c -= t->m;
  s->next = c;
}

static void fill(struct maglev_table *t, struct turn_state *st, uint64_t wmax) {
  uint32_t filled = 0;
  while (filled < t->m) {
    for (uint32_t i = 0; i < t->n && filled < t->m; i++) {
      st[i].credit += st[i].weight;
      if (st[i].credit < wmax) continue;
      st[i].credit -= wmax;
      claim_next(t, &st[i], i);
      filled++;
    }
  }
}

int maglev_build(const struct maglev_backend *b, size_t n, uint32_t m, struct maglev_table **out,
                 char *err, size_t errlen) {
  *out = NULL;
  if (m < 3 || m > MAGLEV_MAX_M || !maglev_is_prime(m)) {
    SET_ERR("table size %u: must be a prime between 3 and %u", m, MAGLEV_MAX_M);
    return MAGLEV_ERR_INVALID;
  }
  if (n > m) {
    SET_ERR("more backends (%zu) than table slots (%u)", n, m);
    return MAGLEV_ERR_INVALID;
  }
  for (size_t i = 0; i < n; i++) {
    if (!b[i].name) {
      SET_ERR("backend %zu has no name", i);
      return MAGLEV_ERR_INVALID;
    }
    if (b[i].weight > MAGLEV_MAX_WEIGHT) {
      SET_ERR("backend %s: weight above %u", b[i].name, MAGLEV_MAX_WEIGHT);
      return MAGLEV_ERR_INVALID;
    }
  }

  struct maglev_table *t = calloc(1, sizeof(*t));
  struct sort_ref *refs = calloc(n ? n : 1, sizeof(*refs));
  struct turn_state *st = calloc(n ? n : 1, sizeof(*st));
  if (!t || !refs || !st) goto nomem;
  t->m = m;
  t->n = (uint32_t)n;
  t->input_index = calloc(n ? n : 1, sizeof(uint32_t));
  t->owned = calloc(n ? n : 1, sizeof(uint32_t));
  if (!t->input_index || !t->owned) goto nomem;
  if (n == 0) goto done;
  t->slots = malloc((size_t)m * sizeof(uint32_t));
  if (!t->slots) goto nomem;

  for (size_t i = 0; i < n; i++) refs[i] = (struct sort_ref){b[i].name, (uint32_t)i};
  qsort(refs, n, sizeof(*refs), cmp_ref);
  for (size_t i = 1; i < n; i++) {
    if (strcmp(refs[i - 1].name, refs[i].name) == 0) {
      SET_ERR("duplicate backend name %s", refs[i].name);
      free(refs);
      free(st);
      maglev_free(t);
      return MAGLEV_ERR_INVALID;
    }
  }

  uint64_t wmax = 1;
  for (uint32_t i = 0; i < n; i++) {
    const struct maglev_backend *be = &b[refs[i].index];
    t->input_index[i] = refs[i].index;
    st[i].next = (uint32_t)(maglev_h1(be->name) % m);
    st[i].skip = (uint32_t)(maglev_h2(be->name) % (m - 1)) + 1;
    st[i].weight = be->weight ? be->weight : 1;
    if (st[i].weight > wmax) wmax = st[i].weight;
  }
  for (uint32_t s = 0; s < m; s++) t->slots[s] = SLOT_EMPTY;
  fill(t, st, wmax);

done:
  free(refs);
  free(st);
  *out = t;
  return 0;

nomem:
  free(refs);
  free(st);
  maglev_free(t);
  SET_ERR("out of memory");
  return MAGLEV_ERR_NOMEM;
}

int maglev_slot_backend(const struct maglev_table *t, uint32_t slot) {
  if (!t || t->n == 0 || slot >= t->m) return -1;
  return (int)t->input_index[t->slots[slot]];
}

int maglev_lookup(const struct maglev_table *t, uint64_t hash, uint32_t *slot) {
  if (!t || t->n == 0) return -1;
  uint32_t s = (uint32_t)(hash % t->m);
  if (slot) *slot = s;
  return (int)t->input_index[t->slots[s]];
}
