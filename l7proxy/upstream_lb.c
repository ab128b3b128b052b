/*
 * upstream_lb — round robin, power-of-two-choices least request and the
 * outlier-ejection state machine (see upstream_lb.h).
 */
#include "l7proxy/upstream_lb.h"

#include <math.h>

int lb_is_ejected(const struct lb_state *st, uint64_t now_ms) {
  return st->ejected_until != 0 && now_ms < st->ejected_until;
}

static int usable(const struct lb_state *const *st, size_t i, uint64_t avoid, uint64_t now) {
  if (i < 64 && (avoid >> i) & 1) return 0;
  if (st[i]->hc_down && atomic_load_explicit(st[i]->hc_down, memory_order_relaxed)) return 0;
  return !lb_is_ejected(st[i], now);
}

int lb_pick(enum lb_policy policy, const struct lb_state *const *st, size_t n, uint64_t avoid,
            uint32_t *cursor, uint32_t rnd, uint64_t now_ms) {
  if (n == 0) return -1;
  if (policy == LB_LEAST_REQUEST && n > 1) {
    size_t a = rnd % n;
    size_t b = (a + 1 + (rnd >> 16) % (n - 1)) % n; /* distinct from a */
    int ua = usable(st, a, avoid, now_ms), ub = usable(st, b, avoid, now_ms);
    if (ua && ub) return (int)(st[b]->outstanding < st[a]->outstanding ? b : a);
    if (ua) return (int)a;
    if (ub) return (int)b;
    /* both unusable: fall back to a scan from a */
    for (size_t k = 0; k < n; k++) {
      size_t i = (a + k) % n;
      if (usable(st, i, avoid, now_ms)) return (int)i;
    }
    return -1;
  }
  for (size_t k = 0; k < n; k++) {
    size_t i = (*cursor + k) % n;
    if (usable(st, i, avoid, now_ms)) {
      *cursor = (uint32_t)((i + 1) % n);
      return (int)i;
    }
  }
  return -1;
}

/* One ejection forgiven per LB_EJECT_DECAY_MS spent out of ejection. */
static void decay(struct lb_state *s, uint64_t now_ms) {
  if (s->ejections == 0 || lb_is_ejected(s, now_ms) || now_ms < s->decay_from) return;
  uint64_t periods = (now_ms - s->decay_from) / LB_EJECT_DECAY_MS;
  if (periods >= s->ejections) {
    s->ejections = 0;
    return;
  }
  s->ejections -= (uint32_t)periods;
  s->decay_from += periods * LB_EJECT_DECAY_MS;
}

int lb_report(struct lb_state *const *st, size_t n, size_t i, int failure, uint64_t now_ms) {
  struct lb_state *s = st[i];
  decay(s, now_ms);
  if (s->ejected_until != 0 && now_ms >= s->ejected_until) s->ejected_until = 0;
  if (!failure) {
    s->consecutive = 0;
    return 0;
  }
  s->consecutive++;
  if (s->consecutive < LB_EJECT_CONSECUTIVE || lb_is_ejected(s, now_ms)) return 0;
  size_t ejected = 0;
  for (size_t k = 0; k < n; k++)
    if (lb_is_ejected(st[k], now_ms)) ejected++;
  size_t max = n * LB_EJECT_MAX_PERCENT / 100;
  if (max < 1) max = 1;
  if (ejected >= max) return 0;
  s->ejections++;
  uint64_t len = (uint64_t)LB_EJECT_BASE_MS * s->ejections;
  if (len > LB_EJECT_MAX_MS) len = LB_EJECT_MAX_MS;
  s->ejected_until = now_ms + len;
  s->decay_from = s->ejected_until;
  s->consecutive = 0;
  return 1;
}

/* A 64-bit finalizer (MurmurHash3's fmix64): every key bit moves every
 * score bit. */
static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

int lb_pick_hash(uint64_t key, const uint64_t *seeds, const uint32_t *weights,
                 const struct lb_state *const *st, size_t n, uint64_t avoid, uint64_t now_ms) {
  int best = -1;
  double best_score = -1;
  uint64_t best_h = 0;
  for (size_t i = 0; i < n; i++) {
    if (!usable(st, i, avoid, now_ms)) continue;
    uint64_t h = mix64(key ^ seeds[i]);
    if (!weights) {
      if (best < 0 || h > best_h) best = (int)i, best_h = h;
      continue;
    }
    /* u in (0,1); score = w / -ln(u): endpoint i wins with probability w_i / sum(w) */
    double u = ((double)(h >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double score = (double)(weights[i] ? weights[i] : 1) / -log(u);
    if (best < 0 || score > best_score) best = (int)i, best_score = score;
  }
  return best;
}
