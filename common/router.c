/*
 * router — Ingress v1 matching compiled into hash tables (see router.h for
 * the rules and the fall-through decision).
 *
 * Layout after router_build:
 *   rules[]   every rule, normalized (host lower case, prefix path without
 *             trailing slashes), in the caller's order;
 *   order[]   rule indices grouped by virtual host and, inside one host,
 *             sorted by match length (longest first), EXACT before PREFIX,
 *             then caller order — so the first hit in a host's slice wins;
 *   vhosts[]  one per (tier, host key), a slice of order[];
 *   table[]   open-addressing hash of (tier, host key) → vhost; wildcard
 *             and suffix vhosts are keyed by their suffix ("*.a.com" →
 *             "a.com"), so a request host costs one probe per tier after
 *             splitting off its first label (suffix hosts: one probe per
 *             further label, longest suffix first).
 * Conditions (method, headers, query, listener) and compiled regular
 * expressions hang off each rule and are checked only for rules whose
 * path matched, in precedence order.
 * Lookups read only these arrays and a stack buffer for the normalized
 * host: no allocation, no locks.
 */
#include "common/router.h"

#include <stdint.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/regex.h"

struct rkv {
  char *name, *value;
  size_t name_len, value_len;
  struct regex *re; /* NULL: exact */
};

struct rrule {
  char *host; /* normalized pattern; wildcard keeps its "*." */
  size_t hostlen;
  int host_match;
  char *path;     /* as given ("/" when empty) */
  size_t pathlen; /* raw length */
  size_t mlen;    /* compared length: EXACT raw, PREFIX without trailing '/' */
  int path_type;  /* ROUTER_PATH_EXACT or ROUTER_PATH_PREFIX (IS folded in) */
  int given_type; /* as given, for explain */
  const void *data;
  struct regex *path_re; /* REGEX paths */
  char *method;          /* NULL: any */
  size_t method_len;
  struct rkv *kv; /* headers [0, n_headers) then query [n_headers, n_headers + n_query) */
  size_t n_headers, n_query;
  unsigned listeners;
};

struct rvhost {
  int tier; /* enum router_host_match */
  const char *key;
  size_t keylen;
  size_t first, count; /* slice of order[] */
};

struct router {
  struct rrule *rules;
  size_t n_rules;
  size_t *order;
  struct rvhost *vhosts;
  size_t n_vhosts;
  uint32_t *table; /* vhost index + 1; 0 = empty */
  size_t table_mask;
  long any_vhost; /* index of the ANY vhost or -1 */
};

static char router_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

int router_normalize_host(const char *host, size_t hostlen, char *buf, size_t bufsize) {
  const char *h = host;
  size_t n = hostlen;
  if (n > 0 && h[0] == '[') {
    const char *close = memchr(h, ']', n);
    if (!close) return -1;
    size_t rest = n - (size_t)(close + 1 - h);
    if (rest > 0 && close[1] != ':') return -1;
    h = h + 1;
    n = (size_t)(close - h);
  } else {
    const char *colon = memchr(h, ':', n);
    /* One colon is a port; several without brackets is a bare IPv6 literal. */
    if (colon && !memchr(colon + 1, ':', n - (size_t)(colon + 1 - h))) n = (size_t)(colon - h);
  }
  if (n > 0 && h[n - 1] == '.') n--;
  if (n >= bufsize || n > ROUTER_MAX_HOST) return -1;
  for (size_t i = 0; i < n; i++) buf[i] = router_lower(h[i]);
  buf[n] = '\0';
  return (int)n;
}

static uint64_t router_hash(int tier, const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull ^ (uint64_t)tier;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  return h;
}

static long router_lookup_vhost(const struct router *r, int tier, const char *key, size_t keylen) {
  size_t i = router_hash(tier, key, keylen) & r->table_mask;
  for (;;) {
    uint32_t slot = r->table[i];
    if (slot == 0) return -1;
    const struct rvhost *v = &r->vhosts[slot - 1];
    if (v->tier == tier && v->keylen == keylen && memcmp(v->key, key, keylen) == 0)
      return (long)(slot - 1);
    i = (i + 1) & r->table_mask;
  }
}

static void router_seterr(char *err, size_t errlen, const char *fmt, size_t idx, const char *s) {
  if (err && errlen) snprintf(err, errlen, fmt, idx, s ? s : "");
}

/* Copies one header or query condition, compiling a regex. */
static int router_copy_kv(const struct router_kv_match *in, struct rkv *out, int lower, size_t idx,
                          char *err, size_t errlen) {
  if (!in->name || !in->name[0]) {
    router_seterr(err, errlen, "rule %zu: condition without a name%s", idx, "");
    return ROUTER_ERR_INVALID;
  }
  out->name = strdup(in->name);
  out->value = strdup(in->value ? in->value : "");
  if (!out->name || !out->value) return ROUTER_ERR_NOMEM;
  out->name_len = strlen(out->name);
  out->value_len = strlen(out->value);
  if (lower)
    for (size_t i = 0; i < out->name_len; i++) out->name[i] = router_lower(out->name[i]);
  if (in->regex) {
    char why[200];
    int rc = regex_compile(out->value, &out->re, why, sizeof(why));
    if (rc == REGEX_ERR_NOMEM) return ROUTER_ERR_NOMEM;
    if (rc < 0) {
      if (err && errlen) snprintf(err, errlen, "rule %zu: condition %s: %s", idx, out->name, why);
      return ROUTER_ERR_INVALID;
    }
  }
  return 0;
}

static int router_copy_conditions(const struct router_rule *in, size_t idx, struct rrule *out,
                                  char *err, size_t errlen) {
  if (in->method && in->method[0]) {
    if (!(out->method = strdup(in->method))) return ROUTER_ERR_NOMEM;
    out->method_len = strlen(out->method);
  }
  out->listeners = in->listeners & (ROUTER_LISTENER_HTTP | ROUTER_LISTENER_HTTPS);
  size_t n = in->n_headers + in->n_query;
  if (n == 0) return 0;
  if (!(out->kv = calloc(n, sizeof(*out->kv)))) return ROUTER_ERR_NOMEM;
  for (size_t i = 0; i < in->n_headers; i++) {
    out->n_headers = i + 1; /* so router_free releases partial copies */
    int rc = router_copy_kv(&in->headers[i], &out->kv[i], 1, idx, err, errlen);
    if (rc < 0) return rc;
  }
  for (size_t i = 0; i < in->n_query; i++) {
    out->n_query = i + 1;
    int rc = router_copy_kv(&in->query[i], &out->kv[in->n_headers + i], 0, idx, err, errlen);
    if (rc < 0) return rc;
  }
  return 0;
}

/* Validates and copies one rule into *out. */
static int router_compile_rule(const struct router_rule *in, size_t idx, struct rrule *out,
                               char *err, size_t errlen) {
  const char *host = in->host ? in->host : "";
  int hm = in->host_match;
  if (hm == 0)
    hm = host[0] == '\0' ? ROUTER_HOST_ANY
                         : (host[0] == '*' ? ROUTER_HOST_WILDCARD : ROUTER_HOST_EXACT);
  if (hm != ROUTER_HOST_EXACT && hm != ROUTER_HOST_WILDCARD && hm != ROUTER_HOST_ANY &&
      hm != ROUTER_HOST_SUFFIX) {
    router_seterr(err, errlen, "rule %zu: unknown host match for host %s", idx, host);
    return ROUTER_ERR_INVALID;
  }
  char buf[ROUTER_MAX_HOST + 1];
  int n = 0;
  if (hm != ROUTER_HOST_ANY) {
    if (strlen(host) > ROUTER_MAX_HOST) {
      router_seterr(err, errlen, "rule %zu: host too long: %.64s", idx, host);
      return ROUTER_ERR_INVALID;
    }
    n = router_normalize_host(host, strlen(host), buf, sizeof(buf));
    if (n <= 0) {
      router_seterr(err, errlen, "rule %zu: bad host \"%s\"", idx, host);
      return ROUTER_ERR_INVALID;
    }
    const char *star = memchr(buf, '*', (size_t)n);
    if (hm == ROUTER_HOST_EXACT && star) {
      router_seterr(err, errlen, "rule %zu: '*' in exact host \"%s\"", idx, host);
      return ROUTER_ERR_INVALID;
    }
    if ((hm == ROUTER_HOST_WILDCARD || hm == ROUTER_HOST_SUFFIX) &&
        (n < 3 || buf[0] != '*' || buf[1] != '.' || memchr(buf + 1, '*', (size_t)n - 1))) {
      router_seterr(err, errlen, "rule %zu: wildcard host must be \"*.suffix\": \"%s\"", idx, host);
      return ROUTER_ERR_INVALID;
    }
  }
  int pt = in->path_type ? in->path_type : ROUTER_PATH_PREFIX;
  const char *path = (in->path && in->path[0]) ? in->path : "/";
  if (pt != ROUTER_PATH_REGEX && path[0] != '/') {
    router_seterr(err, errlen, "rule %zu: path must start with '/': \"%s\"", idx, path);
    return ROUTER_ERR_INVALID;
  }
  if (pt != ROUTER_PATH_EXACT && pt != ROUTER_PATH_PREFIX &&
      pt != ROUTER_PATH_IMPLEMENTATION_SPECIFIC && pt != ROUTER_PATH_REGEX) {
    router_seterr(err, errlen, "rule %zu: unknown path type for path %s", idx, path);
    return ROUTER_ERR_INVALID;
  }
  out->host = strndup(buf, (size_t)n);
  out->path = strdup(path);
  if (!out->host || !out->path) return ROUTER_ERR_NOMEM;
  out->hostlen = (size_t)n;
  out->host_match = hm;
  out->pathlen = strlen(path);
  out->given_type = pt;
  out->path_type = pt == ROUTER_PATH_IMPLEMENTATION_SPECIFIC ? ROUTER_PATH_PREFIX : pt;
  out->mlen = out->pathlen;
  if (out->path_type == ROUTER_PATH_PREFIX)
    while (out->mlen > 0 && out->path[out->mlen - 1] == '/') out->mlen--;
  if (out->path_type == ROUTER_PATH_REGEX) {
    char why[200];
    int rc = regex_compile(path, &out->path_re, why, sizeof(why));
    if (rc == REGEX_ERR_NOMEM) return ROUTER_ERR_NOMEM;
    if (rc < 0) {
      if (err && errlen) snprintf(err, errlen, "rule %zu: path regex: %s", idx, why);
      return ROUTER_ERR_INVALID;
    }
  }
  out->data = in->data;
  return router_copy_conditions(in, idx, out, err, errlen);
}

struct sort_item {
  size_t vhost, mlen, idx;
  int kind; /* 0 exact, 1 regex, 2 prefix */
  int method;
  size_t n_headers, n_query;
};

/* Precedence inside one host (router.h). */
static int router_cmp_item(const void *a, const void *b) {
  const struct sort_item *x = a, *y = b;
  if (x->vhost != y->vhost) return x->vhost < y->vhost ? -1 : 1;
  if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
  if (x->mlen != y->mlen) return x->mlen > y->mlen ? -1 : 1;
  if (x->method != y->method) return x->method ? -1 : 1;
  if (x->n_headers != y->n_headers) return x->n_headers > y->n_headers ? -1 : 1;
  if (x->n_query != y->n_query) return x->n_query > y->n_query ? -1 : 1;
  return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

static const char *router_vhost_key(const struct rrule *rr, size_t *len) {
  if (rr->host_match == ROUTER_HOST_WILDCARD || rr->host_match == ROUTER_HOST_SUFFIX) {
    *len = rr->hostlen - 2;
    return rr->host + 2;
  }
  *len = rr->hostlen;
  return rr->host;
}

int router_build(const struct router_rule *rules, size_t n, struct router **out, char *err,
                 size_t errlen) {
  struct router *r = calloc(1, sizeof(*r));
  struct sort_item *items = NULL;
  size_t *vh_of = NULL;
  int rc = ROUTER_ERR_NOMEM;
  if (!r) return ROUTER_ERR_NOMEM;
  r->any_vhost = -1;
  size_t cap = 8;
  while (cap < 2 * n + 2) cap <<= 1;
  r->rules = calloc(n ? n : 1, sizeof(*r->rules));
  r->order = calloc(n ? n : 1, sizeof(*r->order));
  r->vhosts = calloc(n ? n : 1, sizeof(*r->vhosts));
  r->table = calloc(cap, sizeof(*r->table));
  items = calloc(n ? n : 1, sizeof(*items));
  vh_of = calloc(n ? n : 1, sizeof(*vh_of));
  if (!r->rules || !r->order || !r->vhosts || !r->table || !items || !vh_of) goto fail;
  r->table_mask = cap - 1;

  for (size_t i = 0; i < n; i++) {
    rc = router_compile_rule(&rules[i], i, &r->rules[i], err, errlen);
    r->n_rules = i + 1; /* so router_free releases partial copies */
    if (rc < 0) goto fail;
  }
  for (size_t i = 0; i < n; i++) {
    const struct rrule *rr = &r->rules[i];
    size_t klen;
    const char *key = router_vhost_key(rr, &klen);
    long v = router_lookup_vhost(r, rr->host_match, key, klen);
    if (v < 0) {
      v = (long)r->n_vhosts++;
      r->vhosts[v] = (struct rvhost){.tier = rr->host_match, .key = key, .keylen = klen};
      size_t s = router_hash(rr->host_match, key, klen) & r->table_mask;
      while (r->table[s]) s = (s + 1) & r->table_mask;
      r->table[s] = (uint32_t)v + 1;
      if (rr->host_match == ROUTER_HOST_ANY) r->any_vhost = v;
    }
    vh_of[i] = (size_t)v;
    items[i] = (struct sort_item){.vhost = (size_t)v,
                                  .mlen = rr->mlen,
                                  .idx = i,
                                  .kind = rr->path_type == ROUTER_PATH_EXACT   ? 0
                                          : rr->path_type == ROUTER_PATH_REGEX ? 1
                                                                               : 2,
                                  .method = rr->method != NULL,
                                  .n_headers = rr->n_headers,
                                  .n_query = rr->n_query};
  }
  qsort(items, n, sizeof(*items), router_cmp_item);
  for (size_t i = 0; i < n; i++) {
    r->order[i] = items[i].idx;
    struct rvhost *v = &r->vhosts[items[i].vhost];
    if (v->count == 0) v->first = i;
    v->count++;
  }
  free(items);
  free(vh_of);
  *out = r;
  return 0;
fail:
  free(items);
  free(vh_of);
  router_free(r);
  return rc;
}

void router_free(struct router *r) {
  if (!r) return;
  for (size_t i = 0; i < r->n_rules; i++) {
    struct rrule *rr = &r->rules[i];
    free(rr->host);
    free(rr->path);
    free(rr->method);
    regex_free(rr->path_re);
    for (size_t k = 0; rr->kv && k < rr->n_headers + rr->n_query; k++) {
      free(rr->kv[k].name);
      free(rr->kv[k].value);
      regex_free(rr->kv[k].re);
    }
    free(rr->kv);
  }
  free(r->rules);
  free(r->order);
  free(r->vhosts);
  free(r->table);
  free(r);
}

/* Request path up to '?' or '#'; "" counts as "/". */
static void router_clip_path(const char **path, size_t *pathlen) {
  const char *p = *path;
  size_t n = p ? *pathlen : 0;
  for (size_t i = 0; i < n; i++)
    if (p[i] == '?' || p[i] == '#') {
      n = i;
      break;
    }
  if (n == 0) {
    *path = "/";
    *pathlen = 1;
    return;
  }
  *pathlen = n;
}

/* The query of a target: after the first '?', up to '#'. */
static void router_query_of(const char *t, size_t n, const char **q, size_t *qlen) {
  *q = NULL;
  *qlen = 0;
  const char *mark = t ? memchr(t, '?', n) : NULL;
  if (!mark) return;
  const char *end = memchr(mark, '#', n - (size_t)(mark - t));
  *q = mark + 1;
  *qlen = (size_t)((end ? end : t + n) - *q);
}

static int router_path_matches(const struct rrule *rr, const char *path, size_t pathlen) {
  if (rr->path_type == ROUTER_PATH_EXACT)
    return pathlen == rr->pathlen && memcmp(path, rr->path, pathlen) == 0;
  if (rr->path_type == ROUTER_PATH_REGEX) return regex_match(rr->path_re, path, pathlen);
  if (rr->mlen == 0) return 1;
  return pathlen >= rr->mlen && memcmp(path, rr->path, rr->mlen) == 0 &&
         (pathlen == rr->mlen || path[rr->mlen] == '/');
}

static int router_value_matches(const struct rkv *kv, const char *v, size_t n) {
  if (kv->re) return regex_match(kv->re, v, n);
  return n == kv->value_len && memcmp(v, kv->value, n) == 0;
}

static int router_header_holds(const struct rkv *kv, const struct router_request *req) {
  for (size_t i = 0; i < req->n_headers; i++) {
    const struct router_header *h = &req->headers[i];
    if (h->name_len == kv->name_len && strncasecmp(h->name, kv->name, kv->name_len) == 0 &&
        router_value_matches(kv, h->value, h->value_len))
      return 1;
  }
  return 0;
}

/* The first "name=value" (or bare "name") of the query named kv->name. */
static int router_query_holds(const struct rkv *kv, const char *q, size_t qlen) {
  size_t i = 0;
  while (q && i <= qlen) {
    size_t j = i;
    while (j < qlen && q[j] != '&') j++;
    const char *seg = q + i;
    size_t seglen = j - i;
    const char *eq = memchr(seg, '=', seglen);
    size_t nlen = eq ? (size_t)(eq - seg) : seglen;
    if (nlen == kv->name_len && memcmp(seg, kv->name, nlen) == 0) {
      const char *v = eq ? eq + 1 : seg + seglen;
      return router_value_matches(kv, v, (size_t)(seg + seglen - v));
    }
    i = j + 1;
  }
  return 0;
}

/* Why the conditions of rr do not hold (ROUTER_MATCHED when they do). */
static enum router_verdict router_conditions(const struct rrule *rr,
                                             const struct router_request *req) {
  if (rr->listeners && req->listener && !(rr->listeners & req->listener))
    return ROUTER_LISTENER_DIFFERS;
  if (rr->method && (!req->method || req->method_len != rr->method_len ||
                     memcmp(req->method, rr->method, rr->method_len) != 0))
    return ROUTER_METHOD_DIFFERS;
  for (size_t k = 0; k < rr->n_headers; k++)
    if (!router_header_holds(&rr->kv[k], req)) return ROUTER_HEADER_DIFFERS;
  if (rr->n_query) {
    const char *q;
    size_t qlen;
    router_query_of(req->target, req->target_len, &q, &qlen);
    for (size_t k = 0; k < rr->n_query; k++)
      if (!router_query_holds(&rr->kv[rr->n_headers + k], q, qlen)) return ROUTER_QUERY_DIFFERS;
  }
  return ROUTER_MATCHED;
}

static long router_match_in(const struct router *r, long v, const char *path, size_t pathlen,
                            const struct router_request *req) {
  if (v < 0) return -1;
  const struct rvhost *vh = &r->vhosts[v];
  for (size_t i = vh->first; i < vh->first + vh->count; i++) {
    size_t idx = r->order[i];
    const struct rrule *rr = &r->rules[idx];
    if (router_path_matches(rr, path, pathlen) && router_conditions(rr, req) == ROUTER_MATCHED)
      return (long)idx;
  }
  return -1;
}

long router_match_one_host(const struct router *r, const struct router_request *req) {
  if (!r || !req || r->n_vhosts == 0) return -1;
  const char *path = req->target;
  size_t pathlen = req->target_len;
  router_clip_path(&path, &pathlen);
  return router_match_in(r, 0, path, pathlen, req);
}

const void *router_match_path(const struct router *r, const char *path, size_t pathlen) {
  struct router_request req = {.target = path, .target_len = path ? pathlen : 0};
  long idx = router_match_one_host(r, &req);
  return idx < 0 ? NULL : r->rules[idx].data;
}

long router_match_request(const struct router *r, const struct router_request *req) {
  if (!r || !req) return -1;
  const char *path = req->target;
  size_t pathlen = req->target_len;
  router_clip_path(&path, &pathlen);
  char buf[ROUTER_MAX_HOST + 1];
  int n = req->host ? router_normalize_host(req->host, req->host_len, buf, sizeof(buf)) : -1;
  long idx;
  if (n > 0) {
    idx = router_match_in(r, router_lookup_vhost(r, ROUTER_HOST_EXACT, buf, (size_t)n), path,
                          pathlen, req);
    if (idx >= 0) return idx;
    /* Wildcards: the one-label kind on the first suffix, then suffix hosts on every suffix,
     * longest first. */
    const char *dot = memchr(buf, '.', (size_t)n);
    for (int first = 1; dot && dot > buf && dot + 1 < buf + n; first = 0) {
      size_t off = (size_t)(dot + 1 - buf);
      if (first) {
        idx = router_match_in(
            r, router_lookup_vhost(r, ROUTER_HOST_WILDCARD, buf + off, (size_t)n - off), path,
            pathlen, req);
        if (idx >= 0) return idx;
      }
      idx =
          router_match_in(r, router_lookup_vhost(r, ROUTER_HOST_SUFFIX, buf + off, (size_t)n - off),
                          path, pathlen, req);
      if (idx >= 0) return idx;
      dot = memchr(dot + 1, '.', (size_t)n - off);
    }
  }
  return router_match_in(r, r->any_vhost, path, pathlen, req);
}

long router_match_index(const struct router *r, const char *host, size_t hostlen, const char *path,
                        size_t pathlen) {
  struct router_request req = {
      .host = host, .host_len = hostlen, .target = path, .target_len = path ? pathlen : 0};
  return router_match_request(r, &req);
}

const void *router_match(const struct router *r, const char *host, size_t hostlen, const char *path,
                         size_t pathlen) {
  long idx = router_match_index(r, host, hostlen, path, pathlen);
  return idx < 0 ? NULL : r->rules[idx].data;
}

const void *router_rule_data(const struct router *r, size_t i) {
  return r && i < r->n_rules ? r->rules[i].data : NULL;
}

/* ---- explain ---------------------------------------------------------- */

const char *router_verdict_str(enum router_verdict v) {
  switch (v) {
    case ROUTER_MATCHED:
      return "matched";
    case ROUTER_SHADOWED:
      return "matches, but a more specific rule wins";
    case ROUTER_HOST_DIFFERS:
      return "host differs";
    case ROUTER_WILDCARD_DEPTH:
      return "wildcard covers exactly one DNS label";
    case ROUTER_WILDCARD_SUFFIX:
      return "wildcard suffix differs";
    case ROUTER_PATH_DIFFERS:
      return "path differs";
    case ROUTER_PATH_ELEMENT:
      return "prefix ends inside a path element";
    case ROUTER_EXACT_TRAILING_SLASH:
      return "exact path differs by a trailing slash";
    case ROUTER_EXACT_DIFFERS:
      return "exact path differs";
    case ROUTER_REGEX_DIFFERS:
      return "path does not match the regular expression";
    case ROUTER_SUFFIX_DIFFERS:
      return "host does not end in the wildcard's suffix";
    case ROUTER_METHOD_DIFFERS:
      return "method differs";
    case ROUTER_HEADER_DIFFERS:
      return "a header condition does not hold";
    case ROUTER_QUERY_DIFFERS:
      return "a query-parameter condition does not hold";
    case ROUTER_LISTENER_DIFFERS:
      return "served on the other listener (HTTP / HTTPS)";
  }
  return "unknown";
}

static enum router_verdict router_host_verdict(const struct rrule *rr, const char *h, int n) {
  if (rr->host_match == ROUTER_HOST_ANY) return ROUTER_MATCHED;
  if (n < 0) return ROUTER_HOST_DIFFERS;
  if (rr->host_match == ROUTER_HOST_EXACT)
    return ((size_t)n == rr->hostlen && memcmp(h, rr->host, (size_t)n) == 0) ? ROUTER_MATCHED
                                                                             : ROUTER_HOST_DIFFERS;
  const char *suffix = rr->host + 1; /* ".a.com" */
  size_t slen = rr->hostlen - 1;
  if (rr->host_match == ROUTER_HOST_SUFFIX)
    return ((size_t)n > slen && memcmp(h + n - slen, suffix, slen) == 0) ? ROUTER_MATCHED
                                                                         : ROUTER_SUFFIX_DIFFERS;
  if ((size_t)n == slen - 1 && memcmp(h, suffix + 1, slen - 1) == 0) return ROUTER_WILDCARD_DEPTH;
  if ((size_t)n <= slen || memcmp(h + n - slen, suffix, slen) != 0) return ROUTER_WILDCARD_SUFFIX;
  return memchr(h, '.', (size_t)n - slen) ? ROUTER_WILDCARD_DEPTH : ROUTER_MATCHED;
}

static enum router_verdict router_path_verdict(const struct rrule *rr, const char *p, size_t n) {
  if (router_path_matches(rr, p, n)) return ROUTER_MATCHED;
  if (rr->path_type == ROUTER_PATH_REGEX) return ROUTER_REGEX_DIFFERS;
  if (rr->path_type == ROUTER_PATH_EXACT) {
    if ((n == rr->pathlen + 1 && p[n - 1] == '/' && memcmp(p, rr->path, rr->pathlen) == 0) ||
        (n + 1 == rr->pathlen && rr->path[n] == '/' && memcmp(p, rr->path, n) == 0))
      return ROUTER_EXACT_TRAILING_SLASH;
    return ROUTER_EXACT_DIFFERS;
  }
  if (n > rr->mlen && memcmp(p, rr->path, rr->mlen) == 0) return ROUTER_PATH_ELEMENT;
  return ROUTER_PATH_DIFFERS;
}

long router_explain_request(const struct router *r, const struct router_request *req,
                            void (*fn)(void *ud, const struct router_explanation *e), void *ud) {
  if (!r || !req) return -1;
  long winner = router_match_request(r, req);
  const char *path = req->target;
  size_t pathlen = req->target_len;
  router_clip_path(&path, &pathlen);
  char buf[ROUTER_MAX_HOST + 1];
  int n = req->host ? router_normalize_host(req->host, req->host_len, buf, sizeof(buf)) : -1;
  for (size_t i = 0; fn && i < r->n_rules; i++) {
    const struct rrule *rr = &r->rules[i];
    enum router_verdict v = router_host_verdict(rr, buf, n);
    if (v == ROUTER_MATCHED) v = router_path_verdict(rr, path, pathlen);
    if (v == ROUTER_MATCHED) v = router_conditions(rr, req);
    if (v == ROUTER_MATCHED && (long)i != winner) v = ROUTER_SHADOWED;
    struct router_explanation e = {.index = i,
                                   .host = rr->host,
                                   .host_match = rr->host_match,
                                   .path = rr->path,
                                   .path_type = rr->given_type,
                                   .data = rr->data,
                                   .verdict = v};
    fn(ud, &e);
  }
  return winner;
}

long router_explain(const struct router *r, const char *host, size_t hostlen, const char *path,
                    size_t pathlen, void (*fn)(void *ud, const struct router_explanation *e),
                    void *ud) {
  struct router_request req = {
      .host = host, .host_len = hostlen, .target = path, .target_len = path ? pathlen : 0};
  return router_explain_request(r, &req, fn, ud);
}
