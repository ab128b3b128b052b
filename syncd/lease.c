/*
 * lease — Lease election rules (contract in lease.h). Decisions use only
 * the candidate's monotonic clock and what it observed; the wall clock is
 * written into the record for people and other tools to read.
 */
#include "syncd/lease.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define LEASE_MAX_DURATION_S 3600

static void copy_str(char *out, size_t outlen, const json_t *v) {
  const char *s = json_string_value(v);
  if (s && strlen(s) < outlen)
    snprintf(out, outlen, "%s", s);
  else
    out[0] = '\0';
}

int lease_record_from_json(const json_t *lease, struct lease_record *r, char *err, size_t errlen) {
  memset(r, 0, sizeof(*r));
  const json_t *md = json_object_get(lease, "metadata");
  const char *rv = json_string_value(json_object_get(md, "resourceVersion"));
  if (!json_is_object(lease) || !rv || !*rv || strlen(rv) >= sizeof(r->resource_version)) {
    snprintf(err, errlen, "not a Lease (no metadata.resourceVersion)");
    return -1;
  }
  snprintf(r->resource_version, sizeof(r->resource_version), "%s", rv);
  const json_t *spec = json_object_get(lease, "spec");
  const json_t *holder = json_object_get(spec, "holderIdentity");
  const char *h = json_string_value(holder);
  if (holder && !json_is_null(holder) && (!h || strlen(h) >= sizeof(r->holder))) {
    r->holder_invalid = 1; /* someone holds it, and it is not us */
    snprintf(r->holder, sizeof(r->holder), "?");
  } else if (h) {
    snprintf(r->holder, sizeof(r->holder), "%s", h);
  }
  json_int_t d = json_integer_value(json_object_get(spec, "leaseDurationSeconds"));
  r->duration_s = d < 0 ? 0 : d > LEASE_MAX_DURATION_S ? LEASE_MAX_DURATION_S : (int64_t)d;
  copy_str(r->acquire_time, sizeof(r->acquire_time), json_object_get(spec, "acquireTime"));
  copy_str(r->renew_time, sizeof(r->renew_time), json_object_get(spec, "renewTime"));
  json_int_t t = json_integer_value(json_object_get(spec, "leaseTransitions"));
  r->transitions = t < 0 ? 0 : (int64_t)t;
  return 0;
}

json_t *lease_record_to_json(const struct lease_record *r, const char *ns, const char *name) {
  json_t *md = json_pack("{s:s, s:s}", "name", name, "namespace", ns);
  if (md && r->resource_version[0])
    json_object_set_new(md, "resourceVersion", json_string(r->resource_version));
  json_t *spec =
      json_pack("{s:s, s:I, s:I}", "holderIdentity", r->holder, "leaseDurationSeconds",
                (json_int_t)r->duration_s, "leaseTransitions", (json_int_t)r->transitions);
  if (spec && r->acquire_time[0])
    json_object_set_new(spec, "acquireTime", json_string(r->acquire_time));
  if (spec && r->renew_time[0]) json_object_set_new(spec, "renewTime", json_string(r->renew_time));
  if (!md || !spec) {
    json_decref(md);
    json_decref(spec);
    return NULL;
  }
  return json_pack("{s:s, s:s, s:o, s:o}", "apiVersion", "coordination.k8s.io/v1", "kind", "Lease",
                   "metadata", md, "spec", spec);
}

void lease_format_time(int64_t now_us, char *out, size_t outlen) {
  time_t sec = (time_t)(now_us / 1000000);
  struct tm tm;
  gmtime_r(&sec, &tm);
  char base[32];
  strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, outlen, "%s.%06lldZ", base, (long long)(now_us % 1000000));
}

static int same_record(const struct lease_record *a, const struct lease_record *b) {
  return strcmp(a->resource_version, b->resource_version) == 0 &&
         strcmp(a->holder, b->holder) == 0 && strcmp(a->renew_time, b->renew_time) == 0 &&
         a->holder_invalid == b->holder_invalid;
}

static int held_by_me(const struct lease_record *r, const struct lease_config *cfg) {
  return !r->holder_invalid && strcmp(r->holder, cfg->identity) == 0;
}

static int64_t duration_s(const struct lease_config *cfg) {
  return (int64_t)((cfg->duration_ms + 999) / 1000);
}

enum lease_action lease_decide(struct lease_state *st, const struct lease_config *cfg,
                               const struct lease_record *cur, uint64_t now_ms, int64_t now_us,
                               struct lease_record *want) {
  char now[LEASE_TIME_MAX];
  lease_format_time(now_us, now, sizeof(now));
  memset(want, 0, sizeof(*want));
  if (!cur) {
    snprintf(want->holder, sizeof(want->holder), "%s", cfg->identity);
    want->duration_s = duration_s(cfg);
    snprintf(want->acquire_time, sizeof(want->acquire_time), "%s", now);
    snprintf(want->renew_time, sizeof(want->renew_time), "%s", now);
    return LEASE_CREATE;
  }
  if (!st->have_observed || !same_record(&st->observed, cur)) {
    st->observed = *cur;
    st->have_observed = 1;
    st->observed_at_ms = now_ms;
  }
  if (!held_by_me(cur, cfg)) st->leader = 0; /* someone else wrote it: not ours any more */
  int other = cur->holder[0] && !held_by_me(cur, cfg);
  if (other && st->observed_at_ms + (uint64_t)cur->duration_s * 1000 > now_ms) return LEASE_WAIT;
  *want = *cur;
  want->holder_invalid = 0;
  if (!held_by_me(cur, cfg)) {
    snprintf(want->acquire_time, sizeof(want->acquire_time), "%s", now);
    want->transitions = cur->transitions + 1;
  }
  snprintf(want->holder, sizeof(want->holder), "%s", cfg->identity);
  want->duration_s = duration_s(cfg);
  snprintf(want->renew_time, sizeof(want->renew_time), "%s", now);
  return LEASE_UPDATE;
}

void lease_written(struct lease_state *st, const struct lease_record *written, uint64_t now_ms) {
  st->observed = *written;
  st->have_observed = 1;
  st->observed_at_ms = now_ms;
  st->leader = 1;
  st->renewed_at_ms = now_ms;
}

void lease_failed(struct lease_state *st, const struct lease_config *cfg, int conflict,
                  uint64_t now_ms) {
  if (conflict || now_ms - st->renewed_at_ms >= cfg->renew_deadline_ms) st->leader = 0;
}

int lease_is_leader(const struct lease_state *st, const struct lease_config *cfg, uint64_t now_ms) {
  return st->leader && now_ms - st->renewed_at_ms < cfg->renew_deadline_ms;
}

int lease_release(const struct lease_state *st, int64_t now_us, struct lease_record *want) {
  if (!st->leader) return -1;
  *want = st->observed;
  want->holder[0] = '\0';
  want->duration_s = 1;
  lease_format_time(now_us, want->acquire_time, sizeof(want->acquire_time));
  snprintf(want->renew_time, sizeof(want->renew_time), "%s", want->acquire_time);
  return 0;
}

uint32_t lease_next_round_ms(const struct lease_state *st, const struct lease_config *cfg,
                             uint64_t now_ms) {
  if (st->leader || !st->have_observed || !st->observed.holder[0]) return cfg->retry_ms;
  uint64_t expires = st->observed_at_ms + (uint64_t)st->observed.duration_s * 1000;
  if (expires <= now_ms) return 1;
  uint64_t left = expires - now_ms; /* at expiry decide no longer waits */
  return left < cfg->retry_ms ? (uint32_t)left : cfg->retry_ms;
}
