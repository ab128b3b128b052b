/*
 * authz — SPIFFE identity checks for syncd's streams (see authz.h).
 *
 * Refusals are kept in a small array ordered by time of the latest
 * occurrence; an identical refusal (same method, peer host, identity, node
 * and reason) bumps the existing entry, so one misconfigured node retrying
 * every second occupies one line, not the whole table.
 */
#include "syncd/authz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/rpc.h"

#define SPIFFE_PREFIX "spiffe://"

static const char *const role_names[AUTHZ_N_ROLES] = {"l7proxy", "l4lb", "syncctl"};

/* Reasons double as the metric label: short and fixed. */
enum { R_NONE, R_MANY, R_DOMAIN, R_FORM, R_ROLE, R_NODE, R_N };
static const char *const reason_labels[R_N] = {"no_identity",  "several_identities",
                                               "trust_domain", "malformed_identity",
                                               "wrong_role",   "wrong_node"};

struct authz {
  int enabled;
  struct metrics_registry *metrics;
  struct authz_refusal refusals[AUTHZ_MAX_REFUSALS];
  size_t n;
};

const char *authz_role_name(enum authz_role role) {
  return role >= 0 && role < AUTHZ_N_ROLES ? role_names[role] : "?";
}

/* The decision with its reason class (R_*), for the metric label. */
static int decide(const char *const *uris, size_t n, enum authz_role role, const char *node_id,
                  char *why, size_t whylen, int *cls) {
  const char *id = NULL;
  size_t ids = 0;
  for (size_t i = 0; i < n; i++) {
    if (uris[i] && strncmp(uris[i], SPIFFE_PREFIX, strlen(SPIFFE_PREFIX)) == 0) {
      id = uris[i];
      ids++;
    }
  }
  if (ids == 0) {
    *cls = R_NONE;
    snprintf(why, whylen, "the certificate carries no spiffe://%s/ identity", AUTHZ_TRUST_DOMAIN);
    return -1;
  }
  if (ids > 1) {
    *cls = R_MANY;
    snprintf(why, whylen, "the certificate carries %zu spiffe:// identities, not exactly one", ids);
    return -1;
  }
  const char *p = id + strlen(SPIFFE_PREFIX);
  size_t dl = strlen(AUTHZ_TRUST_DOMAIN);
  if (strncmp(p, AUTHZ_TRUST_DOMAIN, dl) != 0 || p[dl] != '/') {
    *cls = R_DOMAIN;
    snprintf(why, whylen, "the certificate's identity is not in trust domain %s",
             AUTHZ_TRUST_DOMAIN);
    return -1;
  }
  p += dl + 1;
  const char *slash = strchr(p, '/');
  const char *name = slash ? slash + 1 : NULL;
  if (!slash || !*name || strchr(name, '/')) {
    *cls = R_FORM;
    snprintf(why, whylen, "the certificate's identity is not spiffe://%s/ROLE/NAME",
             AUTHZ_TRUST_DOMAIN);
    return -1;
  }
  size_t rl = (size_t)(slash - p);
  const char *want = role_names[role];
  if (rl != strlen(want) || strncmp(p, want, rl) != 0) {
    *cls = R_ROLE;
    snprintf(why, whylen, "the certificate is for role %.*s, not %s", (int)(rl > 32 ? 32 : rl), p,
             want);
    return -1;
  }
  if (node_id && strcmp(name, "*") != 0 && strcmp(name, node_id) != 0) {
    *cls = R_NODE;
    snprintf(why, whylen, "the certificate is for %s %.100s, not %.100s", want, name, node_id);
    return -1;
  }
  return 0;
}

int authz_decide(const char *const *uris, size_t n, enum authz_role role, const char *node_id,
                 char *why, size_t whylen) {
  int cls;
  return decide(uris, n, role, node_id, why, whylen, &cls);
}

int authz_new(int enabled, struct metrics_registry *metrics, struct authz **out) {
  struct authz *a = calloc(1, sizeof(*a));
  if (!a) return -1;
  a->enabled = enabled;
  a->metrics = metrics;
  *out = a;
  return 0;
}

void authz_free(struct authz *a) {
  free(a);
}

/* The peer without its port ("ipv4:10.0.0.5:41234" -> "ipv4:10.0.0.5"),
 * so a node reconnecting from new ports is one refusal. */
static void peer_host(const char *peer, char *out, size_t outlen) {
  snprintf(out, outlen, "%s", peer);
  char *colon = strrchr(out, ':');
  if (colon && colon != strchr(out, ':')) *colon = '\0';
}

static void record(struct authz *a, const struct authz_refusal *r) {
  for (size_t i = 0; i < a->n; i++) {
    struct authz_refusal *e = &a->refusals[i];
    if (strcmp(e->method, r->method) || strcmp(e->peer, r->peer) ||
        strcmp(e->identity, r->identity) || strcmp(e->node_id, r->node_id) ||
        strcmp(e->reason, r->reason))
      continue;
    struct authz_refusal hit = *e;
    hit.count++;
    hit.last_at = r->last_at;
    memmove(e, e + 1, (a->n - i - 1) * sizeof(*e)); /* newest goes last */
    a->refusals[a->n - 1] = hit;
    return;
  }
  if (a->n == AUTHZ_MAX_REFUSALS) {
    memmove(&a->refusals[0], &a->refusals[1], (a->n - 1) * sizeof(*a->refusals));
    a->n--;
  }
  a->refusals[a->n++] = *r;
}

int authz_check(struct authz *a, struct rpc_call *call, const char *method, enum authz_role role,
                const char *node_id, char *why, size_t whylen) {
  if (!a || !a->enabled) return 0;
  const char *const *uris;
  size_t n = rpc_call_peer_uris(call, &uris);
  int cls = R_NONE;
  if (decide(uris, n, role, node_id, why, whylen, &cls) == 0) return 0;
  struct authz_refusal r = {.count = 1, .last_at = (int64_t)time(NULL)};
  snprintf(r.method, sizeof(r.method), "%s", method);
  peer_host(rpc_call_peer(call), r.peer, sizeof(r.peer));
  for (size_t i = 0, o = 0; i < n && o < sizeof(r.identity) - 1; i++)
    o += (size_t)snprintf(r.identity + o, sizeof(r.identity) - o, "%s%s", i ? "," : "", uris[i]);
  snprintf(r.node_id, sizeof(r.node_id), "%s", node_id ? node_id : "");
  snprintf(r.reason, sizeof(r.reason), "%s", why);
  record(a, &r);
  LOG_WARN("stream_refused", "method=%s peer=%s identity=%s node=%s role=%s reason=%s", method,
           log_q(rpc_call_peer(call)), log_q(r.identity), log_q(r.node_id), authz_role_name(role),
           log_q(why));
  if (a->metrics) {
    char labels[128];
    snprintf(labels, sizeof(labels), "method=\"%s\",reason=\"%s\"", method, reason_labels[cls]);
    struct metrics_counter *c = metrics_counter(
        a->metrics, "edge_syncd_refusals_total",
        "Streams and calls refused because the client certificate's identity does not allow "
        "them.",
        labels);
    if (c) metrics_counter_inc(c);
  }
  return -1;
}

size_t authz_refusals(const struct authz *a, const struct authz_refusal **out) {
  *out = a ? a->refusals : NULL;
  return a ? a->n : 0;
}
