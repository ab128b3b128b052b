/*
 * explain — one request explained against a set of edge.v1 resources (see
 * explain.h for the contract and the JSON shape).
 *
 * Matching is never re-implemented here: routes become common/router rules
 * and router_explain gives the winner and a verdict for every other rule.
 * Certificate selection follows l7proxy/tls.c: names are the Certificate's
 * sni_names (or the leaf's own DNS names when it lists none); an exact name
 * beats a one-label wildcard, which beats the default certificate; among
 * equals the first certificate in resource order wins. Candidates are ranked
 * "closest first": a rule whose host matched (only the path missed) before
 * a wildcard of the wrong depth before a different host, and different
 * hosts by edit distance, so a typo'd host shows its intended rule on top.
 */
#include "common/explain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/buf.h"
#include "common/cert.h"
#include "common/redirect.h"
#include "common/rewrite.h"
#include "common/router.h"
#include "common/sni.h"
#include "common/timefmt.h"
#include "common/weighted.h"

struct ex_rule {
  const Edge__V1__VirtualHost *vh;
  const Edge__V1__Route *route;
};

struct ex_cand {
  struct router_explanation e;
  int rank;
  size_t distance;
};

struct ex_ctx {
  struct ex_cand *cands;
  size_t n_cands;
  const char *host; /* normalized request host */
};

static const char *ex_s(const char *s) {
  return s ? s : "";
}

static void ex_err(char *err, size_t errlen, const char *msg, const char *arg) {
  if (err && errlen) snprintf(err, errlen, "%s%s", msg, arg ? arg : "");
}

static const char *ex_host_match_str(int m) {
  switch (m) {
    case ROUTER_HOST_EXACT:
      return "EXACT";
    case ROUTER_HOST_WILDCARD:
      return "WILDCARD";
    case ROUTER_HOST_ANY:
      return "ANY";
    case ROUTER_HOST_SUFFIX:
      return "SUFFIX";
  }
  return "UNSPECIFIED";
}

static const char *ex_path_type_str(int t) {
  switch (t) {
    case ROUTER_PATH_EXACT:
      return "Exact";
    case ROUTER_PATH_PREFIX:
      return "Prefix";
    case ROUTER_PATH_IMPLEMENTATION_SPECIFIC:
      return "ImplementationSpecific";
    case ROUTER_PATH_REGEX:
      return "RegularExpression";
  }
  return "Prefix";
}

/* The kind of object a route came from (Ingress when unset). */
static const char *ex_source_kind(const Edge__V1__SourceRef *s) {
  return s && s->kind && s->kind[0] ? s->kind : "Ingress";
}

static char *ex_source_str(const Edge__V1__SourceRef *s, char *buf, size_t len) {
  if (!s || !s->name || !s->name[0])
    buf[0] = '\0';
  else
    snprintf(buf, len, "%s/%s", ex_s(s->namespace_), s->name);
  return buf;
}

int explain_parse_url(const char *url, char *scheme, size_t schemelen, char *host, size_t hostlen,
                      unsigned *port, char *path, size_t pathlen) {
  if (!url || !url[0]) return EXPLAIN_ERR_INVALID;
  const char *p = url;
  const char *sep = strstr(url, "://");
  const char *sch = "http";
  if (sep) {
    size_t n = (size_t)(sep - url);
    if (n == 4 && strncasecmp(url, "http", 4) == 0)
      sch = "http";
    else if (n == 5 && strncasecmp(url, "https", 5) == 0)
      sch = "https";
    else
      return EXPLAIN_ERR_INVALID;
    p = sep + 3;
  }
  size_t auth = strcspn(p, "/?#");
  if (auth == 0) return EXPLAIN_ERR_INVALID;
  const char *a = p;
  size_t alen = auth;
  const char *at = memchr(a, '@', alen); /* userinfo is never part of the host */
  if (at) {
    alen -= (size_t)(at + 1 - a);
    a = at + 1;
  }
  unsigned prt = strcmp(sch, "https") == 0 ? 443 : 80;
  size_t hlen = alen;
  const char *hs = a;
  if (alen > 0 && a[0] == '[') {
    const char *close = memchr(a, ']', alen);
    if (!close) return EXPLAIN_ERR_INVALID;
    hs = a + 1;
    hlen = (size_t)(close - hs);
    const char *rest = close + 1;
    if (rest < a + alen) {
      if (*rest != ':') return EXPLAIN_ERR_INVALID;
      hlen = (size_t)(close - hs);
      a = rest; /* port parsed below */
      alen = (size_t)(p + auth - rest);
    } else {
      alen = 0;
    }
    if (alen) {
      char *end;
      unsigned long v = strtoul(a + 1, &end, 10);
      if (end != a + alen || v == 0 || v > 65535) return EXPLAIN_ERR_INVALID;
      prt = (unsigned)v;
    }
  } else {
    const char *colon = memchr(a, ':', alen);
    if (colon) {
      hlen = (size_t)(colon - a);
      char num[8];
      size_t nl = alen - hlen - 1;
      if (nl == 0 || nl >= sizeof(num)) return EXPLAIN_ERR_INVALID;
      memcpy(num, colon + 1, nl);
      num[nl] = '\0';
      char *end;
      unsigned long v = strtoul(num, &end, 10);
      if (*end || v == 0 || v > 65535) return EXPLAIN_ERR_INVALID;
      prt = (unsigned)v;
    }
  }
  if (hlen == 0 || hlen >= hostlen || strlen(sch) >= schemelen) return EXPLAIN_ERR_INVALID;
  memcpy(host, hs, hlen);
  host[hlen] = '\0';
  snprintf(scheme, schemelen, "%s", sch);
  const char *rest = p + auth;
  if (*rest == '#') rest = "";
  if (strlen(rest) + 2 > pathlen) return EXPLAIN_ERR_INVALID;
  if (rest[0] != '/')
    snprintf(path, pathlen, "/%s", rest);
  else
    snprintf(path, pathlen, "%s", rest);
  *port = prt;
  return 0;
}

/* Levenshtein distance, bounded by the router's host limit. */
static size_t ex_distance(const char *a, const char *b) {
  size_t n = strlen(a), m = strlen(b);
  if (n > ROUTER_MAX_HOST || m > ROUTER_MAX_HOST) return n > m ? n : m;
  size_t prev[ROUTER_MAX_HOST + 2], cur[ROUTER_MAX_HOST + 2];
  for (size_t j = 0; j <= m; j++) prev[j] = j;
  for (size_t i = 1; i <= n; i++) {
    cur[0] = i;
    for (size_t j = 1; j <= m; j++) {
      size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
      size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
      cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
    }
    memcpy(prev, cur, (m + 1) * sizeof(size_t));
  }
  return prev[m];
}

static int ex_rank(enum router_verdict v) {
  switch (v) {
    case ROUTER_MATCHED:
    case ROUTER_SHADOWED:
      return 0;
    case ROUTER_METHOD_DIFFERS: /* host and path fit: a condition is the closest miss */
    case ROUTER_HEADER_DIFFERS:
    case ROUTER_QUERY_DIFFERS:
    case ROUTER_LISTENER_DIFFERS:
    case ROUTER_EXACT_TRAILING_SLASH:
    case ROUTER_PATH_ELEMENT:
      return 1;
    case ROUTER_EXACT_DIFFERS:
    case ROUTER_PATH_DIFFERS:
    case ROUTER_REGEX_DIFFERS:
      return 2;
    case ROUTER_WILDCARD_DEPTH:
      return 3;
    case ROUTER_HOST_DIFFERS:
    case ROUTER_WILDCARD_SUFFIX:
    case ROUTER_SUFFIX_DIFFERS:
      return 4;
  }
  return 5;
}

static void ex_collect(void *ud, const struct router_explanation *e) {
  struct ex_ctx *c = ud;
  struct ex_cand *k = &c->cands[c->n_cands++];
  k->e = *e;
  k->rank = ex_rank(e->verdict);
  k->distance = k->rank == 4 ? ex_distance(c->host, e->host) : 0;
}

static int ex_cand_cmp(const void *a, const void *b) {
  const struct ex_cand *x = a, *y = b;
  if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
  if (x->distance != y->distance) return x->distance < y->distance ? -1 : 1;
  return x->e.index < y->e.index ? -1 : (x->e.index > y->e.index);
}

static const Edge__V1__Cluster *ex_find_cluster(Edge__V1__Cluster **cl, size_t n,
                                                const char *name) {
  if (!name || !name[0]) return NULL;
  for (size_t i = 0; i < n; i++)
    if (cl[i]->name && strcmp(cl[i]->name, name) == 0) return cl[i];
  return NULL;
}

static json_t *ex_cluster_json(const Edge__V1__Cluster *c, json_t *problems) {
  json_t *eps = json_array();
  size_t ready = 0;
  for (size_t i = 0; i < c->n_endpoints; i++) {
    const Edge__V1__Endpoint *e = c->endpoints[i];
    ready += e->ready != 0;
    json_array_append_new(
        eps, json_pack("{s:s, s:I, s:b, s:s}", "address", ex_s(e->address), "port",
                       (json_int_t)e->port, "ready", (int)e->ready, "zone", ex_s(e->zone)));
  }
  if (ready == 0)
    json_array_append_new(problems, json_sprintf("cluster %s has no ready endpoints (%zu known)",
                                                 ex_s(c->name), c->n_endpoints));
  return json_pack("{s:s, s:o, s:I}", "name", ex_s(c->name), "endpoints", eps, "ready_endpoints",
                   (json_int_t)ready);
}

/* Adds the names certificate i answers to (its sni_names, else the leaf's
 * DNS names) to t, as l7proxy/tls.c does: a certificate with one name it
 * cannot serve serves none (the proxy's store leaves it out), and 0 is
 * returned. OpenSSL's own refusals are only known to the proxy (its
 * /config lists them under certificate_problems). */
static int ex_cert_names(struct sni_table *t, const Edge__V1__Certificate *c, size_t i,
                         struct cert_info *info) {
  char why[200];
  if (!c->n_sni_names &&
      (!info || !c->cert_pem.len ||
       cert_parse((const char *)c->cert_pem.data, c->cert_pem.len, info, why, sizeof(why)) != 0))
    return 1; /* no names; whether OpenSSL loads it is the proxy's to say */
  size_t n = c->n_sni_names ? c->n_sni_names : (size_t)info->n_names;
  for (size_t k = 0; k < n; k++) {
    const char *name = c->n_sni_names ? c->sni_names[k] : info->names[k];
    char norm[SNI_NAME_MAX];
    if (!name || sni_normalize(name, strlen(name), 1, norm, sizeof(norm)) != 0) return 0;
  }
  for (size_t k = 0; k < n; k++)
    (void)sni_table_add(t, c->n_sni_names ? c->sni_names[k] : info->names[k], i);
  return 1;
}

static json_t *ex_cert_json(const Edge__V1__Certificate *c, const char *how) {
  json_t *sni = json_array();
  for (size_t i = 0; i < c->n_sni_names; i++)
    json_array_append_new(sni, json_string(ex_s(c->sni_names[i])));
  struct cert_info *info = malloc(sizeof(*info));
  char why[200];
  const char *issuer = "";
  int64_t not_after = c->not_after;
  int ok = info && c->cert_pem.len &&
           cert_parse((const char *)c->cert_pem.data, c->cert_pem.len, info, why, sizeof(why)) == 0;
  if (ok) {
    issuer = info->issuer;
    if (!not_after) not_after = info->not_after;
    if (c->n_sni_names == 0)
      for (int i = 0; i < info->n_names; i++)
        json_array_append_new(sni, json_string(info->names[i]));
  }
  char src[512];
  json_t *o =
      json_pack("{s:s, s:s, s:o, s:s, s:I, s:s, s:b}", "name", ex_s(c->name), "match", how,
                "sni_names", sni, "issuer", issuer, "not_after", (json_int_t)not_after, "source",
                ex_source_str(c->source, src, sizeof(src)), "is_default", (int)c->is_default);
  free(info);
  return o;
}

/* The certificate the proxy's handshake picks for sni: common/sni, the
 * table l7proxy/tls.c selects with. */
static json_t *ex_certificate(Edge__V1__Certificate **certs, size_t n, const char *sni) {
  struct sni_table t;
  sni_table_init(&t);
  struct cert_info *info = malloc(sizeof(*info));
  for (size_t i = 0; i < n; i++) {
    /* a certificate the proxy leaves out is not its default either */
    if (ex_cert_names(&t, certs[i], i, info) && certs[i]->is_default) sni_table_set_default(&t, i);
  }
  free(info);
  sni_table_finish(&t);
  enum sni_match how;
  long i = sni_table_select(&t, sni && sni[0] ? sni : NULL, &how);
  sni_table_free(&t);
  return i < 0 ? json_null() : ex_cert_json(certs[i], sni_match_str(how));
}

/* The redirect the proxy answers: common/redirect, which the data path
 * calls too. authority is the request's Host as the proxy would see it. */
static json_t *ex_redirect(const Edge__V1__Redirect *r, int to_https, const char *scheme,
                           const char *authority, const char *path, unsigned https_port) {
  struct redirect_rule rule = {0};
  if (r) rule = (struct redirect_rule){r->scheme, r->host, r->port, r->path, r->status};
  struct redirect_request rq = {scheme, authority,    strlen(authority),
                                path,   strlen(path), https_port};
  char loc[8192];
  int status = redirect_location(r ? &rule : NULL, to_https, &rq, loc, sizeof(loc));
  if (status < 0)
    return json_pack("{s:i, s:s, s:s}", "status", 500, "location", "", "reason",
                     "the redirect has a value that cannot be written: the proxy answers 500");
  return json_pack("{s:i, s:s, s:s}", "status", status, "location", loc, "reason",
                   to_https ? "host has TLS: plain HTTP is redirected to https"
                            : "route answers with a redirect");
}

/* The target sent upstream when the route rewrites it (common/rewrite, as
 * the data path does); null when nothing is rewritten. */
static json_t *ex_rewrite(const Edge__V1__Route *route, const char *path) {
  const char *prefix = route->options ? route->options->rewrite_prefix : NULL;
  char out[8192];
  int n = rewrite_target(route->path, route->path_type ? (int)route->path_type : 2, prefix, path,
                         strlen(path), out, sizeof(out));
  if (n == REWRITE_NONE) return json_null();
  if (n < 0)
    return json_pack("{s:s, s:s}", "path", "", "problem",
                     "the rewrite target has a byte that cannot be sent: the proxy answers 500");
  return json_pack("{s:s%}", "path", out, (size_t)n);
}

static json_t *ex_cand_json(const struct ex_cand *k) {
  const struct ex_rule *ru = k->e.data;
  char src[512];
  json_t *o = json_pack(
      "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "vhost", ex_s(ru->vh->name), "host",
      k->e.host, "host_match", ex_host_match_str(k->e.host_match), "path", ex_s(k->e.path),
      "path_type", ex_path_type_str(k->e.path_type), "cluster", ex_s(ru->route->cluster), "source",
      ex_source_str(ru->route->source, src, sizeof(src)), "source_kind",
      ex_source_kind(ru->route->source), "verdict", router_verdict_str(k->e.verdict));
  if (o && k->rank == 4 && k->distance > 0 && k->distance <= 2)
    json_object_set_new(o, "hint",
                        json_sprintf("host differs by %zu character%s: a typo?", k->distance,
                                     k->distance == 1 ? "" : "s"));
  return o;
}

/* ---- Gateway API ------------------------------------------------------- */

/* The route's conditions into rule (kv: storage for its header and query conditions). Returns
 * the number of kv entries used. */
static size_t ex_conditions(const Edge__V1__VirtualHost *vh, const Edge__V1__Route *rt,
                            struct router_rule *rule, struct router_kv_match *kv) {
  size_t n = 0;
  for (size_t i = 0; i < rt->n_headers; i++)
    kv[n++] = (struct router_kv_match){
        rt->headers[i]->name, rt->headers[i]->value,
        rt->headers[i]->type == EDGE__V1__STRING_MATCH__STRING_MATCH_REGEX};
  for (size_t i = 0; i < rt->n_query_params; i++)
    kv[n++] = (struct router_kv_match){
        rt->query_params[i]->name, rt->query_params[i]->value,
        rt->query_params[i]->type == EDGE__V1__STRING_MATCH__STRING_MATCH_REGEX};
  rule->method = rt->method && rt->method[0] ? rt->method : NULL;
  rule->headers = kv;
  rule->n_headers = rt->n_headers;
  rule->query = kv + rt->n_headers;
  rule->n_query = rt->n_query_params;
  rule->listeners = vh->listener == EDGE__V1__LISTENER__LISTENER_HTTP    ? ROUTER_LISTENER_HTTP
                    : vh->listener == EDGE__V1__LISTENER__LISTENER_HTTPS ? ROUTER_LISTENER_HTTPS
                                                                         : 0;
  return n;
}

static json_t *ex_mod_json(const Edge__V1__HeaderModifier *m) {
  json_t *set = json_array(), *add = json_array(), *rm = json_array();
  for (size_t i = 0; i < m->n_set; i++)
    json_array_append_new(set, json_sprintf("%s: %s", m->set[i]->name, m->set[i]->value));
  for (size_t i = 0; i < m->n_add; i++)
    json_array_append_new(add, json_sprintf("%s: %s", m->add[i]->name, m->add[i]->value));
  for (size_t i = 0; i < m->n_remove; i++) json_array_append_new(rm, json_string(m->remove[i]));
  return json_pack("{s:o, s:o, s:o}", "set", set, "add", add, "remove", rm);
}

/* Gateway API facts of the winning route; a weighted route's cluster is the one request_id
 * picks (common/weighted, as the proxy picks), "" without an id. */
static void ex_gateway_route(json_t *o, const Edge__V1__VirtualHost *vh, const Edge__V1__Route *rt,
                             const char *request_id, const char **cluster_name, json_t *problems) {
  if (!o) return;
  if (vh->listener)
    json_object_set_new(
        o, "listener",
        json_string(vh->listener == EDGE__V1__LISTENER__LISTENER_HTTPS ? "HTTPS" : "HTTP"));
  if (rt->method && rt->method[0]) json_object_set_new(o, "method", json_string(rt->method));
  if (rt->n_headers || rt->n_query_params) {
    json_t *h = json_array(), *q = json_array();
    for (size_t i = 0; i < rt->n_headers; i++)
      json_array_append_new(
          h, json_sprintf("%s %s %s", rt->headers[i]->name, rt->headers[i]->type ? "~" : "=",
                          rt->headers[i]->value));
    for (size_t i = 0; i < rt->n_query_params; i++)
      json_array_append_new(
          q, json_sprintf("%s %s %s", rt->query_params[i]->name,
                          rt->query_params[i]->type ? "~" : "=", rt->query_params[i]->value));
    json_object_set_new(o, "headers", h);
    json_object_set_new(o, "query", q);
  }
  if (rt->request_headers)
    json_object_set_new(o, "request_headers", ex_mod_json(rt->request_headers));
  if (rt->response_headers)
    json_object_set_new(o, "response_headers", ex_mod_json(rt->response_headers));
  if (rt->n_mirrors) {
    json_t *m = json_array();
    for (size_t i = 0; i < rt->n_mirrors; i++)
      json_array_append_new(m, json_pack("{s:s, s:I}", "cluster", rt->mirrors[i]->cluster,
                                         "per_million", (json_int_t)rt->mirrors[i]->per_million));
    json_object_set_new(o, "mirrors", m);
  }
  if (rt->options && rt->options->direct_status) {
    json_array_append_new(problems, json_sprintf("the rule has no valid backend: the proxy "
                                                 "answers %u",
                                                 rt->options->direct_status));
    *cluster_name = NULL;
  }
  if (!rt->n_weighted_clusters) return;
  json_t *wc = json_array();
  uint32_t w[64];
  size_t n = rt->n_weighted_clusters < 64 ? rt->n_weighted_clusters : 64;
  for (size_t i = 0; i < n; i++) {
    w[i] = rt->weighted_clusters[i]->weight;
    json_array_append_new(wc, json_pack("{s:s, s:I}", "cluster", rt->weighted_clusters[i]->cluster,
                                        "weight", (json_int_t)w[i]));
  }
  json_object_set_new(o, "weighted_clusters", wc);
  if (!request_id) {
    *cluster_name = NULL;
    json_object_set_new(o, "cluster", json_string(""));
    json_array_append_new(problems,
                          json_string("weighted route: each request's backend is chosen by "
                                      "its X-Request-Id (give --header 'X-Request-Id: ID' to "
                                      "see which one a request gets)"));
    return;
  }
  long i = weighted_pick(w, n, weighted_key(request_id, strlen(request_id)));
  const char *pick = i < 0 ? "" : rt->weighted_clusters[i]->cluster;
  json_object_set_new(o, "cluster", json_string(pick));
  json_object_set_new(o, "picked", json_true());
  if (!pick[0]) {
    json_array_append_new(problems, json_string("the request's share goes to a backend that "
                                                "did not resolve, or every weight is 0: the "
                                                "proxy answers 500"));
    *cluster_name = NULL;
    return;
  }
  *cluster_name = pick;
}

/* The passthrough host a server name matches (exact, then the longest suffix), or null. */
static json_t *ex_passthrough(Edge__V1__Resource *const *res, size_t n, const char *sni) {
  const Edge__V1__PassthroughHost *best = NULL;
  size_t best_len = 0, sl = strlen(sni);
  for (size_t i = 0; i < n; i++) {
    if (!res[i] || res[i]->kind_case != EDGE__V1__RESOURCE__KIND_PASSTHROUGH_HOST) continue;
    const Edge__V1__PassthroughHost *p = res[i]->passthrough_host;
    const char *h = ex_s(p->host);
    size_t hl = strlen(h), score = 0;
    if (p->host_match == EDGE__V1__HOST_MATCH__HOST_MATCH_EXACT && !strcasecmp(h, sni))
      score = 1000;
    else if (p->host_match == EDGE__V1__HOST_MATCH__HOST_MATCH_SUFFIX && hl > 2 && sl > hl - 1 &&
             !strcasecmp(sni + sl - (hl - 1), h + 1))
      score = hl;
    if (score > best_len) best = p, best_len = score;
  }
  if (!best) return json_null();
  json_t *cl = json_array();
  for (size_t i = 0; i < best->n_clusters; i++)
    json_array_append_new(cl, json_pack("{s:s, s:I}", "cluster", best->clusters[i]->cluster,
                                        "weight", (json_int_t)best->clusters[i]->weight));
  char src[512];
  return json_pack("{s:s, s:s, s:o, s:s}", "name", ex_s(best->name), "host", ex_s(best->host),
                   "clusters", cl, "source", ex_source_str(best->source, src, sizeof(src)));
}

int explain_build(Edge__V1__Resource *const *res, size_t n, const struct explain_request *req,
                  json_t **out, char *err, size_t errlen) {
  *out = NULL;
  char scheme[8] = "http", host[ROUTER_MAX_HOST + 1], path[4096];
  unsigned port = 80;
  if (req->url) {
    if (explain_parse_url(req->url, scheme, sizeof(scheme), host, sizeof(host), &port, path,
                          sizeof(path)) != 0) {
      ex_err(err, errlen, "cannot parse URL (want http[s]://HOST[:PORT]/PATH): ", req->url);
      return EXPLAIN_ERR_INVALID;
    }
  } else {
    if (!req->host || !req->host[0]) {
      ex_err(err, errlen, "a URL or a host is required", NULL);
      return EXPLAIN_ERR_INVALID;
    }
    char tmp[ROUTER_MAX_HOST + 16];
    snprintf(tmp, sizeof(tmp), "%s", req->host);
    if (strlen(req->host) >= sizeof(tmp) ||
        explain_parse_url(tmp, scheme, sizeof(scheme), host, sizeof(host), &port, path,
                          sizeof(path)) != 0) {
      ex_err(err, errlen, "bad host: ", req->host);
      return EXPLAIN_ERR_INVALID;
    }
    const char *p = req->path && req->path[0] ? req->path : "/";
    if (p[0] != '/' || strlen(p) >= sizeof(path)) {
      ex_err(err, errlen, "path must start with '/': ", p);
      return EXPLAIN_ERR_INVALID;
    }
    snprintf(path, sizeof(path), "%s", p);
  }
  /* Routing host: the URL's, or a Host header. */
  char rhost[ROUTER_MAX_HOST + 1];
  snprintf(rhost, sizeof(rhost), "%s", host);
  unsigned aport = port; /* the port of the authority the client sends */
  json_t *headers = json_array();
  for (size_t i = 0; i < req->n_headers; i++) {
    const char *h = ex_s(req->headers[i]);
    json_array_append_new(headers, json_string(h));
    if (strncasecmp(h, "host:", 5) == 0) {
      const char *v = h + 5;
      while (*v == ' ' || *v == '\t') v++;
      char sch[8], hh[ROUTER_MAX_HOST + 1], pp[8];
      unsigned po;
      if (explain_parse_url(v, sch, sizeof(sch), hh, sizeof(hh), &po, pp, sizeof(pp)) == 0) {
        snprintf(rhost, sizeof(rhost), "%s", hh);
        aport = po;
      }
    }
  }
  char nhost[ROUTER_MAX_HOST + 1];
  if (router_normalize_host(rhost, strlen(rhost), nhost, sizeof(nhost)) < 0) {
    json_decref(headers);
    ex_err(err, errlen, "bad host: ", rhost);
    return EXPLAIN_ERR_INVALID;
  }
  const char *sni = req->sni && req->sni[0] ? req->sni : (!strcmp(scheme, "https") ? nhost : NULL);
  char nsni[ROUTER_MAX_HOST + 1] = "";
  if (sni && router_normalize_host(sni, strlen(sni), nsni, sizeof(nsni)) < 0) {
    json_decref(headers);
    ex_err(err, errlen, "bad SNI: ", sni);
    return EXPLAIN_ERR_INVALID;
  }

  /* Sort the resources by kind. */
  size_t nv = 0, nc = 0, nk = 0, nroutes = 0;
  const Edge__V1__DefaultBackend *dflt = NULL;
  Edge__V1__VirtualHost **vhs = calloc(n + 1, sizeof(*vhs));
  Edge__V1__Cluster **cls = calloc(n + 1, sizeof(*cls));
  Edge__V1__Certificate **crts = calloc(n + 1, sizeof(*crts));
  struct router_rule *rules = NULL;
  struct ex_rule *info = NULL;
  struct router *router = NULL;
  struct router_kv_match *kv = NULL;
  struct router_header *rh = NULL;
  struct ex_ctx ctx = {0};
  int rc = EXPLAIN_ERR_NOMEM;
  json_t *root = NULL;
  if (!vhs || !cls || !crts) goto done;
  for (size_t i = 0; i < n; i++) {
    const Edge__V1__Resource *r = res[i];
    if (!r) continue;
    if (r->kind_case == EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST && r->virtual_host) {
      vhs[nv++] = r->virtual_host;
      nroutes += r->virtual_host->n_routes;
    } else if (r->kind_case == EDGE__V1__RESOURCE__KIND_CLUSTER && r->cluster) {
      cls[nc++] = r->cluster;
    } else if (r->kind_case == EDGE__V1__RESOURCE__KIND_CERTIFICATE && r->certificate) {
      crts[nk++] = r->certificate;
    } else if (r->kind_case == EDGE__V1__RESOURCE__KIND_DEFAULT_BACKEND && r->default_backend) {
      dflt = r->default_backend;
    }
  }
  rules = calloc(nroutes + 1, sizeof(*rules));
  info = calloc(nroutes + 1, sizeof(*info));
  ctx.cands = calloc(nroutes + 1, sizeof(*ctx.cands));
  size_t nkv = 0;
  for (size_t i = 0; i < nv; i++)
    for (size_t j = 0; j < vhs[i]->n_routes; j++)
      if (vhs[i]->routes[j])
        nkv += vhs[i]->routes[j]->n_headers + vhs[i]->routes[j]->n_query_params;
  kv = calloc(nkv + 1, sizeof(*kv));
  if (!rules || !info || !ctx.cands || !kv) goto done;
  size_t k = 0, kvn = 0;
  for (size_t i = 0; i < nv; i++) {
    for (size_t j = 0; j < vhs[i]->n_routes; j++) {
      const Edge__V1__Route *rt = vhs[i]->routes[j];
      if (!rt) continue;
      info[k] = (struct ex_rule){vhs[i], rt};
      rules[k] = (struct router_rule){.host = vhs[i]->host,
                                      .host_match = (int)vhs[i]->host_match,
                                      .path = rt->path,
                                      .path_type = (int)rt->path_type,
                                      .data = &info[k]};
      kvn += ex_conditions(vhs[i], rt, &rules[k], kv + kvn);
      k++;
    }
  }
  char rerr[256] = "";
  int brc = router_build(rules, k, &router, rerr, sizeof(rerr));
  if (brc != 0) {
    if (brc == ROUTER_ERR_INVALID) {
      ex_err(err, errlen, "resources do not compile into routes: ", rerr);
      rc = EXPLAIN_ERR_INVALID;
    }
    goto done;
  }
  ctx.host = nhost;
  /* the request as the proxy sees it: its method, headers and listener count for Gateway API
   * conditions */
  rh = calloc(req->n_headers + 1, sizeof(*rh));
  if (!rh) goto done;
  size_t nrh = 0;
  const char *request_id = NULL;
  for (size_t i = 0; i < req->n_headers; i++) {
    const char *h = ex_s(req->headers[i]), *colon = strchr(h, ':');
    if (!colon || colon == h) continue;
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t') v++;
    rh[nrh++] = (struct router_header){h, (size_t)(colon - h), v, strlen(v)};
    if ((size_t)(colon - h) == 12 && !strncasecmp(h, "x-request-id", 12)) request_id = v;
  }
  const char *method = req->method && req->method[0] ? req->method : "GET";
  struct router_request rq = {
      nhost,
      strlen(nhost),
      path,
      strlen(path),
      method,
      strlen(method),
      rh,
      nrh,
      strcmp(scheme, "https") == 0 ? ROUTER_LISTENER_HTTPS : ROUTER_LISTENER_HTTP};
  long w = router_explain_request(router, &rq, ex_collect, &ctx);

  json_t *problems = json_array();
  root = json_object();
  json_object_set_new(root, "request",
                      json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:o}", "url", ex_s(req->url),
                                "scheme", scheme, "host", nhost, "port", (json_int_t)port, "path",
                                path, "sni", nsni, "headers", headers));
  headers = NULL;
  json_object_set_new(root, "matched", json_boolean(w >= 0));
  const Edge__V1__VirtualHost *vh = NULL;
  const Edge__V1__Route *route = NULL;
  const char *cluster_name = NULL;
  if (w >= 0) {
    vh = info[w].vh;
    route = info[w].route;
    json_t *ings = json_array();
    for (size_t i = 0; i < vh->n_ingresses; i++)
      json_array_append_new(ings, json_string(ex_s(vh->ingresses[i])));
    int hm = vh->host_match
                 ? (int)vh->host_match
                 : (!vh->host || !vh->host[0]
                        ? ROUTER_HOST_ANY
                        : (vh->host[0] == '*' ? ROUTER_HOST_WILDCARD : ROUTER_HOST_EXACT));
    json_object_set_new(
        root, "host_entry",
        json_pack("{s:s, s:s, s:s, s:o, s:s, s:b}", "vhost", ex_s(vh->name), "host", ex_s(vh->host),
                  "host_match", ex_host_match_str(hm), "ingresses", ings, "certificate",
                  ex_s(vh->certificate), "tls_fallback", (int)vh->tls_fallback));
    char src[512];
    json_object_set_new(
        root, "route",
        json_pack("{s:s, s:s, s:s, s:s, s:s}", "path", ex_s(route->path), "path_type",
                  ex_path_type_str(route->path_type ? (int)route->path_type : ROUTER_PATH_PREFIX),
                  "cluster", ex_s(route->cluster), "source",
                  ex_source_str(route->source, src, sizeof(src)), "source_kind",
                  ex_source_kind(route->source)));
    cluster_name = route->cluster;
    ex_gateway_route(json_object_get(root, "route"), vh, route, request_id, &cluster_name,
                     problems);
    if (vh->tls_fallback)
      json_array_append_new(problems,
                            json_sprintf("host %s asked for TLS but its secret is missing or "
                                         "invalid: the default certificate is served",
                                         ex_s(vh->host)));
    if ((!cluster_name || !cluster_name[0]) && !(route->options && route->options->redirect) &&
        !route->n_weighted_clusters && !(route->options && route->options->direct_status))
      json_array_append_new(problems, json_string("route names no cluster: the proxy answers 503"));
  } else {
    json_object_set_new(root, "host_entry", json_null());
    json_object_set_new(root, "route", json_null());
    cluster_name = dflt ? dflt->cluster : NULL;
    json_object_set_new(root, "default_backend", json_string(ex_s(cluster_name)));
    json_array_append_new(problems,
                          json_string(cluster_name && cluster_name[0]
                                          ? "no rule matches: the default backend serves it"
                                          : "no rule matches and there is no default backend: "
                                            "the proxy answers 404"));
  }
  const Edge__V1__Cluster *cl = ex_find_cluster(cls, nc, cluster_name);
  if (cluster_name && cluster_name[0] && !cl)
    json_array_append_new(problems, json_sprintf("cluster %s does not exist", cluster_name));
  json_object_set_new(root, "cluster", cl ? ex_cluster_json(cl, problems) : json_null());
  json_object_set_new(
      root, "certificate",
      nsni[0] || !strcmp(scheme, "https") ? ex_certificate(crts, nk, nsni) : json_null());
  json_t *pt = !strcmp(scheme, "https") && nsni[0] ? ex_passthrough(res, n, nsni) : json_null();
  if (json_is_object(pt))
    json_array_append_new(problems,
                          json_sprintf("SNI %s is a TLS passthrough host: the connection is "
                                       "spliced to its backend, not terminated (the routes "
                                       "above never see it)",
                                       nsni));
  json_object_set_new(root, "passthrough", pt);
  json_t *redirect = json_null();
  if (route) {
    int to_https = vh->certificate && vh->certificate[0] && strcmp(scheme, "https") != 0 &&
                   !(route->options && route->options->disable_ssl_redirect);
    if (to_https || (route->options && route->options->redirect)) {
      json_decref(redirect);
      char authority[ROUTER_MAX_HOST + 16];
      unsigned def = strcmp(scheme, "https") == 0 ? 443 : 80;
      const char *br = strchr(nhost, ':') ? "[" : "", *bc = br[0] ? "]" : "";
      if (aport && aport != def)
        snprintf(authority, sizeof(authority), "%s%s%s:%u", br, nhost, bc, aport);
      else
        snprintf(authority, sizeof(authority), "%s%s%s", br, nhost, bc);
      redirect = ex_redirect(to_https ? NULL : route->options->redirect, to_https, scheme,
                             authority, path, req->https_port);
    }
  }
  json_object_set_new(root, "redirect", redirect);
  json_object_set_new(root, "rewrite",
                      route && !json_is_object(redirect) ? ex_rewrite(route, path) : json_null());

  qsort(ctx.cands, ctx.n_cands, sizeof(*ctx.cands), ex_cand_cmp);
  json_t *cands = json_array();
  size_t listed = 0;
  for (size_t i = 0; i < ctx.n_cands && listed < EXPLAIN_MAX_CANDIDATES; i++) {
    if ((long)ctx.cands[i].e.index == w) continue;
    json_array_append_new(cands, ex_cand_json(&ctx.cands[i]));
    listed++;
  }
  json_object_set_new(root, "candidates", cands);
  json_object_set_new(root, "problems", problems);
  rc = 0;
done:
  json_decref(headers);
  router_free(router);
  free(kv);
  free(rh);
  free(vhs);
  free(cls);
  free(crts);
  free(rules);
  free(info);
  free(ctx.cands);
  if (rc != 0) {
    json_decref(root);
    root = NULL;
    if (rc == EXPLAIN_ERR_NOMEM) ex_err(err, errlen, "out of memory", NULL);
  }
  *out = root;
  return rc;
}

/* ---- text ------------------------------------------------------------- */

static const char *js(const json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : "";
}

static void ex_text_list(struct buf *b, const char *label, const json_t *a) {
  size_t i;
  const json_t *v;
  if (!json_array_size(a)) return;
  buf_printf(b, "%s", label);
  json_array_foreach(a, i, v) buf_printf(b, "%s%s", i ? ", " : " ", json_string_value(v));
  buf_printf(b, "\n");
}

/* The Gateway API lines of a route: conditions, weights, header modifiers, mirrors. */
static void ex_text_gateway(struct buf *b, const json_t *rt) {
  size_t i;
  const json_t *v;
  if (js(rt, "listener")[0]) buf_printf(b, "  LISTENER  %s only\n", js(rt, "listener"));
  if (js(rt, "method")[0]) buf_printf(b, "  METHOD    %s\n", js(rt, "method"));
  ex_text_list(b, "  HEADERS  ", json_object_get(rt, "headers"));
  ex_text_list(b, "  QUERY    ", json_object_get(rt, "query"));
  const json_t *wc = json_object_get(rt, "weighted_clusters");
  if (json_array_size(wc)) {
    buf_printf(b, "  WEIGHTS  ");
    json_array_foreach(wc, i, v)
        buf_printf(b, " %s=%lld", js(v, "cluster")[0] ? js(v, "cluster") : "(unresolved)",
                   (long long)json_integer_value(json_object_get(v, "weight")));
    buf_printf(b, "%s\n",
               json_is_true(json_object_get(rt, "picked"))
                   ? "  (this request's X-Request-Id picks the cluster above)"
                   : "");
  }
  const char *mods[2] = {"request_headers", "response_headers"};
  for (int k = 0; k < 2; k++) {
    const json_t *m = json_object_get(rt, mods[k]);
    if (!json_is_object(m)) continue;
    buf_printf(b, "  %s\n", k ? "RESPONSE HEADERS" : "REQUEST HEADERS");
    ex_text_list(b, "    set   ", json_object_get(m, "set"));
    ex_text_list(b, "    add   ", json_object_get(m, "add"));
    ex_text_list(b, "    remove", json_object_get(m, "remove"));
  }
  json_array_foreach(json_object_get(rt, "mirrors"), i, v) buf_printf(
      b, "  MIRROR    %s (%s)\n", js(v, "cluster"),
      json_integer_value(json_object_get(v, "per_million")) ? "sampled" : "every request");
}

char *explain_format_text(const json_t *r) {
  struct buf b = {0};
  const json_t *q = json_object_get(r, "request");
  buf_printf(&b, "REQUEST     %s://%s:%lld%s", js(q, "scheme"), js(q, "host"),
             (long long)json_integer_value(json_object_get(q, "port")), js(q, "path"));
  if (js(q, "sni")[0]) buf_printf(&b, "  (SNI %s)", js(q, "sni"));
  buf_printf(&b, "\n");
  json_int_t version = json_integer_value(json_object_get(r, "version"));
  if (version) buf_printf(&b, "VERSION     %lld\n", (long long)version);
  const json_t *he = json_object_get(r, "host_entry"), *rt = json_object_get(r, "route");
  if (json_is_object(he)) {
    buf_printf(&b, "HOST        %s (%s, %s)", js(he, "host")[0] ? js(he, "host") : "*",
               js(he, "host_match"), js(he, "vhost"));
    const json_t *ings = json_object_get(he, "ingresses");
    size_t i;
    const json_t *v;
    if (json_array_size(ings)) {
      buf_printf(&b, " from Ingress");
      json_array_foreach(ings, i, v) buf_printf(&b, " %s", json_string_value(v));
    }
    buf_printf(&b, "\nROUTE       %s (%s) → cluster %s from %s %s\n", js(rt, "path"),
               js(rt, "path_type"), js(rt, "cluster")[0] ? js(rt, "cluster") : "(none)",
               js(rt, "source_kind")[0] ? js(rt, "source_kind") : "Ingress",
               js(rt, "source")[0] ? js(rt, "source") : "?");
    ex_text_gateway(&b, rt);
  } else {
    buf_printf(&b, "HOST/ROUTE  no rule matches; default backend: %s\n",
               js(r, "default_backend")[0] ? js(r, "default_backend") : "(none: 404)");
  }
  const json_t *cl = json_object_get(r, "cluster");
  if (json_is_object(cl)) {
    const json_t *eps = json_object_get(cl, "endpoints");
    buf_printf(&b, "CLUSTER     %s: %lld of %zu endpoints ready\n", js(cl, "name"),
               (long long)json_integer_value(json_object_get(cl, "ready_endpoints")),
               json_array_size(eps));
    size_t i;
    const json_t *e;
    json_array_foreach(eps, i, e) {
      buf_printf(&b, "              %s:%lld %s%s%s\n", js(e, "address"),
                 (long long)json_integer_value(json_object_get(e, "port")),
                 json_is_true(json_object_get(e, "ready")) ? "ready" : "NOT READY",
                 js(e, "zone")[0] ? " zone " : "", js(e, "zone"));
    }
  }
  const json_t *c = json_object_get(r, "certificate");
  if (json_is_object(c)) {
    char na[64];
    timefmt_utc((int64_t)json_integer_value(json_object_get(c, "not_after")), na, sizeof(na));
    buf_printf(&b, "CERTIFICATE %s (%s match) names", js(c, "name"), js(c, "match"));
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(c, "sni_names"), i, v)
        buf_printf(&b, " %s", json_string_value(v));
    buf_printf(&b, "\n              issuer %s, not after %s\n", js(c, "issuer"), na);
  } else if (js(q, "sni")[0]) {
    buf_printf(&b, "CERTIFICATE none: the handshake fails for SNI %s\n", js(q, "sni"));
  }
  const json_t *pt = json_object_get(r, "passthrough");
  if (json_is_object(pt)) {
    buf_printf(&b, "PASSTHROUGH %s from TLSRoute %s →", js(pt, "name"), js(pt, "source"));
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(pt, "clusters"), i, v)
        buf_printf(&b, " %s=%lld", js(v, "cluster")[0] ? js(v, "cluster") : "(unresolved)",
                   (long long)json_integer_value(json_object_get(v, "weight")));
    buf_printf(&b, "\n");
  }
  const json_t *rd = json_object_get(r, "redirect");
  if (json_is_object(rd))
    buf_printf(&b, "REDIRECT    %lld → %s (%s)\n",
               (long long)json_integer_value(json_object_get(rd, "status")), js(rd, "location"),
               js(rd, "reason"));
  const json_t *rw = json_object_get(r, "rewrite");
  if (json_is_object(rw))
    buf_printf(&b, "REWRITE     %s → %s (sent upstream)\n", js(q, "path"), js(rw, "path"));
  size_t i;
  const json_t *v;
  const json_t *problems = json_object_get(r, "problems");
  if (json_array_size(problems)) {
    buf_printf(&b, "PROBLEMS\n");
    json_array_foreach(problems, i, v) buf_printf(&b, "  - %s\n", json_string_value(v));
  }
  const json_t *ns = json_object_get(r, "not_served");
  if (json_array_size(ns)) {
    buf_printf(&b, "NOT SERVED (objects that never became routes)\n");
    json_array_foreach(ns, i, v) buf_printf(&b, "  %s %s/%s: %s\n", js(v, "kind"),
                                            js(v, "namespace"), js(v, "name"), js(v, "reason"));
  }
  const json_t *cands = json_object_get(r, "candidates");
  if (json_array_size(cands)) {
    buf_printf(&b, "OTHER RULES (closest first)\n");
    json_array_foreach(cands, i, v) {
      buf_printf(&b, "  %s %s (%s) → %s [%s %s]%s%s\n", js(v, "host")[0] ? js(v, "host") : "*",
                 js(v, "path"), js(v, "path_type"), js(v, "verdict"),
                 js(v, "source_kind")[0] ? js(v, "source_kind") : "Ingress",
                 js(v, "source")[0] ? js(v, "source") : "?", js(v, "hint")[0] ? ": " : "",
                 js(v, "hint"));
    }
  }
  return buf_detach(&b); /* NULL when any append ran out of memory */
}
