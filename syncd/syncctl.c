/*
 * syncctl — command-line client of syncd's Status service.
 *
 *   syncctl --syncd=ADDR:PORT [--cert --key --ca | --insecure] status [--json]
 *   syncctl ... explain URL [URL...] [--sni NAME] [--header 'K: V']... [--method M] [--json]
 *   syncctl ... certs [--json]
 *
 * Prints a table like `istioctl proxy-status` (NAME KIND ADDRESS
 * VERSION(ACKED/PUSHED) STATE SINCE LAST-SEEN ERROR), the replica set the
 * l4lbs receive with why each l7proxy is in or out, then the sources with their
 * health, object counts, rejected objects with their reasons and the
 * certificates expiring soon; --json prints one JSON document with the same
 * data. `explain` asks Status.Explain which rule, cluster, certificate and
 * redirect serve URL and why other rules do not (common/explain formats
 * the text); `certs` lists every certificate with its SNI names, source
 * Secret, notAfter, the hosts using it, and flags those expiring within
 * syncd's warning window. Exits 1 with a one-line reason when syncd cannot be reached, 2 on
 * a usage error.
 *
 * Several replicas (--syncd=A,B or a DNS name with several addresses):
 * `status` asks every replica, prints a REPLICAS table (each replica's
 * name, role in the leader election, version and the nodes whose streams
 * it holds), then one node table where each node is shown as the replica
 * serving it sees it (syncd/status_merge.h), then the leader's sources,
 * objects and certificates; it fails only when no replica answers.
 * `explain` and `certs` ask the first replica that answers.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/addr.h"
#include "common/explain.h"
#include "common/flags.h"
#include "common/rpc.h"
#include "common/targets.h"
#include "common/timefmt.h"
#include "edge/v1/status.pb-c.h"
#include "syncd/syncctl_gateway.h"
#include "syncd/status_merge.h"

static const char *state_name(int s) {
  switch (s) {
    case EDGE__V1__NODE_STATE__NODE_STATE_SYNCED:
      return "SYNCED";
    case EDGE__V1__NODE_STATE__NODE_STATE_STALE:
      return "STALE";
    case EDGE__V1__NODE_STATE__NODE_STATE_NACKED:
      return "NACKED";
    case EDGE__V1__NODE_STATE__NODE_STATE_DISCONNECTED:
      return "DISCONNECTED";
    default:
      return "UNKNOWN";
  }
}

static const char *kind_name(int k) {
  switch (k) {
    case EDGE__V1__NODE_KIND__NODE_KIND_L7PROXY:
      return "l7proxy";
    case EDGE__V1__NODE_KIND__NODE_KIND_L4LB:
      return "l4lb";
    default:
      return "unknown";
  }
}

/* "3d4h", "5m10s", "42s", or "-" for an unset time. */
static void ago(int64_t then, int64_t now, char *out, size_t len) {
  if (then <= 0) {
    snprintf(out, len, "-");
    return;
  }
  int64_t d = now > then ? now - then : 0;
  if (d >= 86400)
    snprintf(out, len, "%" PRId64 "d%" PRId64 "h", d / 86400, (d % 86400) / 3600);
  else if (d >= 3600)
    snprintf(out, len, "%" PRId64 "h%" PRId64 "m", d / 3600, (d % 3600) / 60);
  else if (d >= 60)
    snprintf(out, len, "%" PRId64 "m%" PRId64 "s", d / 60, d % 60);
  else
    snprintf(out, len, "%" PRId64 "s", d);
}

/* "14 days", "36 hours", "90 seconds". */
static void warn_window(int64_t s, char *out, size_t len) {
  if (s <= 0) s = 14 * 86400;
  if (s % 86400 == 0)
    snprintf(out, len, "%" PRId64 " days", s / 86400);
  else if (s % 3600 == 0)
    snprintf(out, len, "%" PRId64 " hours", s / 3600);
  else
    snprintf(out, len, "%" PRId64 " seconds", s);
}

/* "replica syncd-0, leader (lease edge-system/edge-syncd, 3 transitions)". */
static void print_replica_line(const Edge__V1__StatusResponse *r) {
  if (!r->replica || !r->replica[0]) return;
  const Edge__V1__LeaderStatus *l = r->leader;
  if (!l || !l->enabled) {
    printf("replica %s (no leader election)\n", r->replica);
    return;
  }
  printf("replica %s, %s (lease %s, holder %s, %" PRId64 " transitions)%s%s\n", r->replica,
         l->leader ? "leader" : "follower", l->lease, l->holder[0] ? l->holder : "-",
         l->transitions, l->error[0] ? "  LEASE ERROR: " : "", l->error);
}

static const char *role_name(const Edge__V1__StatusResponse *r) {
  if (!r->leader || !r->leader->enabled) return "-";
  return r->leader->leader ? "leader" : "follower";
}

#define NCOLS 8

static void print_row(char cells[NCOLS][256], const int *w) {
  for (int c = 0; c < NCOLS; c++) {
    if (c == NCOLS - 1)
      printf("%s\n", cells[c]);
    else
      printf("%-*s  ", w[c], cells[c]);
  }
}

static void node_cells(const Edge__V1__NodeStatus *n, int64_t now, char cells[NCOLS][256]) {
  snprintf(cells[0], 256, "%s", n->node_id);
  snprintf(cells[1], 256, "%s", kind_name(n->kind));
  snprintf(cells[2], 256, "%s", n->address[0] ? n->address : "-");
  snprintf(cells[3], 256, "%" PRIu64 "/%" PRIu64, n->last_acked_version, n->last_pushed_version);
  snprintf(cells[4], 256, "%s%s", state_name(n->state), n->draining ? ",DRAINING" : "");
  int disc = n->state == EDGE__V1__NODE_STATE__NODE_STATE_DISCONNECTED;
  ago(disc ? n->disconnected_at : n->connected_since, now, cells[5], 256);
  if (disc)
    ago(n->last_seen, now, cells[6], 256);
  else
    snprintf(cells[6], 256, "now");
  snprintf(cells[7], 256, "%s", n->last_error[0] ? n->last_error : "-");
}

/* Which l7proxies the l4lbs receive (Membership), and why each is in or
 * out. */
static void print_replica_set(const Edge__V1__StatusResponse *r) {
  size_t in = 0, l7 = 0, w = 4;
  for (size_t i = 0; i < r->n_nodes; i++) {
    const Edge__V1__NodeStatus *n = r->nodes[i];
    if (n->kind != EDGE__V1__NODE_KIND__NODE_KIND_L7PROXY) continue;
    l7++;
    in += n->in_replica_set != 0;
    if (strlen(n->node_id) > w) w = strlen(n->node_id);
  }
  printf("\nREPLICA SET (%zu of %zu l7proxies; the l4lbs' health checks decide who gets traffic)\n",
         in, l7);
  for (size_t i = 0; i < r->n_nodes; i++) {
    const Edge__V1__NodeStatus *n = r->nodes[i];
    if (n->kind != EDGE__V1__NODE_KIND__NODE_KIND_L7PROXY) continue;
    printf("  %-*s  %s\n", (int)w, n->node_id, n->replica_reason[0] ? n->replica_reason : "-");
  }
}

static void print_text(const Edge__V1__StatusResponse *r) {
  int64_t now = (int64_t)time(NULL);
  char vt[64], st[64];
  timefmt_utc(r->version_time, vt, sizeof(vt));
  timefmt_utc(r->started_at, st, sizeof(st));
  printf("syncd %s  version %" PRIu64 " (change %" PRIu64 ", source generation %" PRIu64
         ", since %s)  started %s\n",
         r->build, r->version, r->version_seq, r->source_generation, vt, st);
  print_replica_line(r);
  printf("\n");

  char cells[NCOLS][256] = {"NAME",  "KIND",  "ADDRESS",   "VERSION(ACKED/PUSHED)",
                            "STATE", "SINCE", "LAST SEEN", "ERROR"};
  int w[NCOLS];
  for (int c = 0; c < NCOLS; c++) w[c] = (int)strlen(cells[c]);
  for (size_t i = 0; i < r->n_nodes; i++) {
    char row[NCOLS][256];
    node_cells(r->nodes[i], now, row);
    for (int c = 0; c < NCOLS; c++)
      if ((int)strlen(row[c]) > w[c]) w[c] = (int)strlen(row[c]);
  }
  print_row(cells, w);
  for (size_t i = 0; i < r->n_nodes; i++) {
    char row[NCOLS][256];
    node_cells(r->nodes[i], now, row);
    print_row(row, w);
  }
  if (r->n_nodes == 0) printf("(no nodes)\n");
  for (size_t i = 0; i < r->n_nodes; i++)
    for (size_t k = 0; k < r->nodes[i]->n_problems; k++)
      printf("  %s PROBLEM %s\n", r->nodes[i]->node_id, r->nodes[i]->problems[k]);
  if (r->n_refusals) {
    printf("\nREFUSED (%zu, identity does not allow it)\n", r->n_refusals);
    for (size_t i = 0; i < r->n_refusals; i++) {
      const Edge__V1__Refusal *f = r->refusals[i];
      char at[64];
      ago(f->last_at, now, at, sizeof(at));
      printf("  %s peer %s node %s identity %s: %s (x%" PRIu64 ", last %s)\n", f->method, f->peer,
             f->node_id[0] ? f->node_id : "-", f->identity[0] ? f->identity : "-", f->reason,
             f->count, at);
    }
  }
  print_replica_set(r);

  printf("\nSOURCES\n");
  for (size_t i = 0; i < r->n_sources; i++) {
    const Edge__V1__SourceStatus *s = r->sources[i];
    char ls[64];
    timefmt_utc(s->last_sync, ls, sizeof(ls));
    printf("  %s  %s  last sync %s%s%s\n", s->name, s->healthy ? "healthy" : "UNHEALTHY", ls,
           s->message[0] ? "  " : "", s->message);
  }
  printf("\nOBJECTS\n ");
  for (size_t i = 0; i < r->n_objects; i++)
    printf(" %s=%u", r->objects[i]->kind, r->objects[i]->count);
  printf("\n\nREJECTED (%zu)\n", r->n_rejected);
  for (size_t i = 0; i < r->n_rejected; i++) {
    const Edge__V1__RejectedObject *o = r->rejected[i];
    printf("  %s %s/%s: %s%s%s%s\n", o->kind, o->namespace_, o->name, o->reason,
           o->location[0] ? " (" : "", o->location, o->location[0] ? ")" : "");
  }
  if (r->n_ignored) {
    printf("\nIGNORED (%zu, not our IngressClass)\n", r->n_ignored);
    for (size_t i = 0; i < r->n_ignored; i++) {
      const Edge__V1__RejectedObject *o = r->ignored[i];
      printf("  %s %s/%s: %s\n", o->kind, o->namespace_, o->name, o->reason);
    }
  }
  syncctl_gateway_text(stdout, r);
  size_t expiring = 0;
  for (size_t i = 0; i < r->n_certificates; i++) expiring += r->certificates[i]->expiring != 0;
  char window[32];
  warn_window(r->expiry_warning_seconds, window, sizeof(window));
  printf("\nCERTIFICATES %zu, expiring within %s: %zu\n", r->n_certificates, window, expiring);
  for (size_t i = 0; i < r->n_certificates; i++) {
    const Edge__V1__CertificateStatus *c = r->certificates[i];
    if (!c->expiring) continue;
    char na[64];
    timefmt_utc(c->not_after, na, sizeof(na));
    printf("  %s  not after %s  issuer %s  hosts", c->name, na, c->issuer);
    for (size_t k = 0; k < c->n_hosts; k++) printf(" %s", c->hosts[k]);
    printf("\n");
  }
}

static json_t *strv_json(char **v, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(a, json_string(v[i]));
  return a;
}

static json_t *status_json(const Edge__V1__StatusResponse *r) {
  json_t *root = json_object();
  json_object_set_new(root, "build", json_string(r->build));
  json_object_set_new(root, "replica", json_string(r->replica ? r->replica : ""));
  const Edge__V1__LeaderStatus *l = r->leader;
  json_object_set_new(
      root, "leader",
      json_pack("{s:b, s:b, s:s, s:s, s:s, s:I, s:s, s:s}", "enabled", l && l->enabled, "leader",
                l && l->leader, "identity", l ? l->identity : "", "holder", l ? l->holder : "",
                "lease", l ? l->lease : "", "transitions", (json_int_t)(l ? l->transitions : 0),
                "renew_time", l ? l->renew_time : "", "error", l ? l->error : ""));
  json_object_set_new(root, "version", json_integer((json_int_t)r->version));
  json_object_set_new(root, "version_time", json_integer(r->version_time));
  json_object_set_new(root, "version_seq", json_integer((json_int_t)r->version_seq));
  json_object_set_new(root, "source_generation", json_integer((json_int_t)r->source_generation));
  json_object_set_new(root, "started_at", json_integer(r->started_at));
  json_t *nodes = json_array();
  for (size_t i = 0; i < r->n_nodes; i++) {
    const Edge__V1__NodeStatus *n = r->nodes[i];
    json_t *o = json_object();
    json_object_set_new(o, "node_id", json_string(n->node_id));
    json_object_set_new(o, "kind", json_string(kind_name(n->kind)));
    json_object_set_new(o, "address", json_string(n->address));
    json_object_set_new(o, "zone", json_string(n->zone));
    json_object_set_new(o, "build", json_string(n->build));
    json_object_set_new(o, "connected_since", json_integer(n->connected_since));
    json_object_set_new(o, "disconnected_at", json_integer(n->disconnected_at));
    json_object_set_new(o, "last_pushed_version", json_integer((json_int_t)n->last_pushed_version));
    json_object_set_new(o, "last_acked_version", json_integer((json_int_t)n->last_acked_version));
    json_object_set_new(o, "state", json_string(state_name(n->state)));
    json_object_set_new(o, "last_error", json_string(n->last_error));
    json_object_set_new(o, "draining", json_boolean(n->draining));
    json_object_set_new(o, "problems", strv_json(n->problems, n->n_problems));
    json_object_set_new(o, "last_seen", json_integer(n->last_seen));
    if (n->kind == EDGE__V1__NODE_KIND__NODE_KIND_L7PROXY) {
      json_object_set_new(o, "in_replica_set", json_boolean(n->in_replica_set));
      json_object_set_new(o, "replica_reason", json_string(n->replica_reason));
    }
    json_array_append_new(nodes, o);
  }
  json_object_set_new(root, "nodes", nodes);
  json_t *refusals = json_array();
  for (size_t i = 0; i < r->n_refusals; i++) {
    const Edge__V1__Refusal *f = r->refusals[i];
    json_array_append_new(
        refusals,
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "method", f->method, "peer", f->peer,
                  "identity", f->identity, "node_id", f->node_id, "reason", f->reason, "last_at",
                  (json_int_t)f->last_at, "count", (json_int_t)f->count));
  }
  json_object_set_new(root, "refusals", refusals);
  json_t *sources = json_array();
  for (size_t i = 0; i < r->n_sources; i++) {
    const Edge__V1__SourceStatus *s = r->sources[i];
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(s->name));
    json_object_set_new(o, "healthy", json_boolean(s->healthy));
    json_object_set_new(o, "message", json_string(s->message));
    json_object_set_new(o, "last_sync", json_integer(s->last_sync));
    json_array_append_new(sources, o);
  }
  json_object_set_new(root, "sources", sources);
  json_t *objects = json_object();
  for (size_t i = 0; i < r->n_objects; i++)
    json_object_set_new(objects, r->objects[i]->kind, json_integer(r->objects[i]->count));
  json_object_set_new(root, "objects", objects);
  json_t *rejected = json_array();
  for (size_t i = 0; i < r->n_rejected; i++) {
    const Edge__V1__RejectedObject *x = r->rejected[i];
    json_t *o = json_object();
    json_object_set_new(o, "kind", json_string(x->kind));
    json_object_set_new(o, "namespace", json_string(x->namespace_));
    json_object_set_new(o, "name", json_string(x->name));
    json_object_set_new(o, "reason", json_string(x->reason));
    json_object_set_new(o, "location", json_string(x->location));
    json_array_append_new(rejected, o);
  }
  json_object_set_new(root, "rejected", rejected);
  json_t *certs = json_array();
  for (size_t i = 0; i < r->n_certificates; i++) {
    const Edge__V1__CertificateStatus *c = r->certificates[i];
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(c->name));
    json_object_set_new(o, "sni_names", strv_json(c->sni_names, c->n_sni_names));
    json_object_set_new(o, "not_after", json_integer(c->not_after));
    json_object_set_new(o, "issuer", json_string(c->issuer));
    json_object_set_new(o, "hosts", strv_json(c->hosts, c->n_hosts));
    json_object_set_new(o, "expiring", json_boolean(c->expiring));
    json_object_set_new(o, "source", json_string(c->source));
    json_object_set_new(o, "is_default", json_boolean(c->is_default));
    json_array_append_new(certs, o);
  }
  json_object_set_new(root, "certificates", certs);
  json_t *ignored = json_array();
  for (size_t i = 0; i < r->n_ignored; i++) {
    const Edge__V1__RejectedObject *x = r->ignored[i];
    json_t *o = json_object();
    json_object_set_new(o, "kind", json_string(x->kind));
    json_object_set_new(o, "namespace", json_string(x->namespace_));
    json_object_set_new(o, "name", json_string(x->name));
    json_object_set_new(o, "reason", json_string(x->reason));
    json_object_set_new(o, "hosts", strv_json(x->hosts, x->n_hosts));
    json_array_append_new(ignored, o);
  }
  json_object_set_new(root, "ignored", ignored);
  json_object_set_new(root, "gateway", syncctl_gateway_json(r));
  json_object_set_new(root, "expiry_warning_seconds", json_integer(r->expiry_warning_seconds));
  return root;
}

static void print_json_doc(json_t *root) {
  char *s = json_dumps(root, JSON_INDENT(2));
  if (s) printf("%s\n", s);
  free(s);
  json_decref(root);
}

static void print_json(const Edge__V1__StatusResponse *r) {
  print_json_doc(status_json(r));
}

/* `syncctl certs`: every certificate, expiring ones flagged. */
static void print_certs(const Edge__V1__StatusResponse *r, int json) {
  if (json) {
    json_t *certs = json_array();
    for (size_t i = 0; i < r->n_certificates; i++) {
      const Edge__V1__CertificateStatus *c = r->certificates[i];
      json_array_append_new(
          certs, json_pack("{s:s, s:o, s:s, s:I, s:s, s:o, s:b, s:b}", "name", c->name, "sni_names",
                           strv_json(c->sni_names, c->n_sni_names), "source", c->source,
                           "not_after", (json_int_t)c->not_after, "issuer", c->issuer, "hosts",
                           strv_json(c->hosts, c->n_hosts), "expiring", c->expiring, "is_default",
                           c->is_default));
    }
    json_t *root =
        json_pack("{s:I, s:I, s:o}", "version", (json_int_t)r->version, "expiry_warning_seconds",
                  (json_int_t)r->expiry_warning_seconds, "certificates", certs);
    char *s = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
    if (s) printf("%s\n", s);
    free(s);
    json_decref(root);
    return;
  }
  char window[32];
  warn_window(r->expiry_warning_seconds, window, sizeof(window));
  int64_t now = (int64_t)time(NULL);
  printf("%-32s  %-20s  %-8s  %-32s  %s\n", "CERTIFICATE", "NOT AFTER", "DAYS", "SNI NAMES",
         "HOSTS / SOURCE / ISSUER");
  for (size_t i = 0; i < r->n_certificates; i++) {
    const Edge__V1__CertificateStatus *c = r->certificates[i];
    char na[64], sni[512] = "", hosts[512] = "", days[32];
    timefmt_utc(c->not_after, na, sizeof(na));
    size_t l = 0;
    for (size_t k = 0; k < c->n_sni_names && l < sizeof(sni) - 1; k++)
      l += (size_t)snprintf(sni + l, sizeof(sni) - l, "%s%s", k ? "," : "", c->sni_names[k]);
    l = 0;
    for (size_t k = 0; k < c->n_hosts && l < sizeof(hosts) - 1; k++)
      l += (size_t)snprintf(hosts + l, sizeof(hosts) - l, "%s%s", k ? "," : "", c->hosts[k]);
    if (c->not_after)
      snprintf(days, sizeof(days), "%" PRId64, (c->not_after - now) / 86400);
    else
      snprintf(days, sizeof(days), "-");
    printf("%-32s  %-20s  %-8s  %-32s  hosts=%s source=%s%s issuer=\"%s\"%s\n", c->name, na, days,
           sni[0] ? sni : "-", hosts[0] ? hosts : "-", c->source[0] ? c->source : "-",
           c->is_default ? " (default)" : "", c->issuer, c->expiring ? "  EXPIRING" : "");
  }
  syncctl_gateway_text(stdout, r);
  size_t expiring = 0;
  for (size_t i = 0; i < r->n_certificates; i++) expiring += r->certificates[i]->expiring != 0;
  printf("\n%zu certificates, %zu expiring within %s\n", r->n_certificates, expiring, window);
}

/* Status.Get from target; 0, or 1 with the reason in why (quiet). */
static int fetch_status(const char *target, const struct rpc_creds *creds, uint32_t timeout_ms,
                        Edge__V1__StatusResponse **out, char *why, size_t whylen) {
  Edge__V1__StatusRequest req = EDGE__V1__STATUS_REQUEST__INIT;
  uint8_t reqbuf[16];
  size_t reqlen = edge__v1__status_request__pack(&req, reqbuf);
  uint8_t *resp = NULL;
  size_t resp_len = 0;
  char err[512] = "";
  *out = NULL;
  int rc = rpc_unary_call(target, "/edge.v1.Status/Get", creds, reqbuf, reqlen, timeout_ms, &resp,
                          &resp_len, err, sizeof(err));
  if (rc == 0) *out = edge__v1__status_response__unpack(NULL, resp_len, resp);
  free(resp);
  if (rc != 0)
    snprintf(why, whylen, "%s", err[0] ? err : "call failed");
  else if (!*out)
    snprintf(why, whylen, "unparseable StatusResponse");
  return *out ? 0 : 1;
}

static int get_status(const char *target, const struct rpc_creds *creds, uint32_t timeout_ms,
                      Edge__V1__StatusResponse **out) {
  Edge__V1__StatusRequest req = EDGE__V1__STATUS_REQUEST__INIT;
  uint8_t reqbuf[16];
  size_t reqlen = edge__v1__status_request__pack(&req, reqbuf);
  uint8_t *resp = NULL;
  size_t resp_len = 0;
  char err[512] = "";
  int rc = rpc_unary_call(target, "/edge.v1.Status/Get", creds, reqbuf, reqlen, timeout_ms, &resp,
                          &resp_len, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "syncctl: cannot get status from syncd at %s: %s\n", target,
            err[0] ? err : "call failed");
    free(resp);
    return 1;
  }
  *out = edge__v1__status_response__unpack(NULL, resp_len, resp);
  free(resp);
  if (!*out) {
    fprintf(stderr, "syncctl: syncd at %s sent an unparseable StatusResponse\n", target);
    return 1;
  }
  return 0;
}

static uint32_t g_https_port; /* --https-port */
static const char *g_method;  /* --method */

/* Explains one URL; with --json appends the document to out (an array),
 * otherwise prints the text. */
static int explain_one(const char *target, const struct rpc_creds *creds, uint32_t timeout_ms,
                       const char *url, const char *sni, const struct flag_list *headers,
                       json_t *out) {
  int json = out != NULL;
  Edge__V1__ExplainRequest req = EDGE__V1__EXPLAIN_REQUEST__INIT;
  req.url = (char *)url;
  req.sni = (char *)(sni ? sni : "");
  req.https_port = g_https_port;
  req.method = (char *)(g_method ? g_method : "");
  req.n_headers = (size_t)headers->count;
  req.headers = (char **)headers->values;
  for (int i = 0; i < headers->count; i++)
    if (!strchr(headers->values[i], ':')) {
      fprintf(stderr, "syncctl: --header wants \"Name: value\", got %s\n", headers->values[i]);
      return 2;
    }
  size_t reqlen = edge__v1__explain_request__get_packed_size(&req);
  uint8_t *reqbuf = malloc(reqlen ? reqlen : 1);
  if (!reqbuf) return 1;
  edge__v1__explain_request__pack(&req, reqbuf);
  uint8_t *resp = NULL;
  size_t resp_len = 0;
  char err[512] = "";
  int rc = rpc_unary_call(target, "/edge.v1.Status/Explain", creds, reqbuf, reqlen, timeout_ms,
                          &resp, &resp_len, err, sizeof(err));
  free(reqbuf);
  if (rc != 0) {
    fprintf(stderr, "syncctl: explain %s: %s\n", url, err[0] ? err : "call failed");
    free(resp);
    return 1;
  }
  Edge__V1__ExplainResponse *r = edge__v1__explain_response__unpack(NULL, resp_len, resp);
  free(resp);
  if (!r) {
    fprintf(stderr, "syncctl: syncd at %s sent an unparseable ExplainResponse\n", target);
    return 1;
  }
  rc = 0;
  if (json) {
    json_t *doc = json_loads(r->json, 0, NULL);
    if (doc)
      json_array_append_new(out, doc);
    else {
      fprintf(stderr, "syncctl: syncd sent an unreadable explanation\n");
      rc = 1;
    }
  } else {
    json_t *doc = json_loads(r->json, 0, NULL);
    char *text = doc ? explain_format_text(doc) : NULL;
    if (text)
      fputs(text, stdout);
    else {
      fprintf(stderr, "syncctl: syncd sent an unreadable explanation\n");
      rc = 1;
    }
    free(text);
    json_decref(doc);
  }
  edge__v1__explain_response__free_unpacked(r, NULL);
  return rc;
}

/* `syncctl explain URL...`: one JSON document for one URL, an array of
 * them for several; text answers separated by a blank line. */
static int run_explain(const char *target, const struct rpc_creds *creds, uint32_t timeout_ms,
                       const char *const *urls, int n, const char *sni,
                       const struct flag_list *headers, int json) {
  json_t *docs = json ? json_array() : NULL;
  int rc = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    if (i > 0 && !json) printf("\n");
    rc = explain_one(target, creds, timeout_ms, urls[i], sni, headers, docs);
  }
  if (json && rc == 0) {
    json_t *out = n == 1 ? json_array_get(docs, 0) : docs;
    char *s = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s) printf("%s\n", s);
    free(s);
  }
  json_decref(docs);
  return rc;
}

/* ---- several replicas ---------------------------------------------------- */

struct replica_answers {
  struct target_addrs addrs;
  struct status_replica *r;
  char (*errors)[512];
  struct rpc_creds *creds; /* per address: the name its certificate must carry */
};

static void answers_free(struct replica_answers *a) {
  for (size_t i = 0; a->r && i < a->addrs.n; i++)
    if (a->r[i].resp)
      edge__v1__status_response__free_unpacked((Edge__V1__StatusResponse *)a->r[i].resp, NULL);
  free(a->r);
  free(a->errors);
  free(a->creds);
  targets_addrs_free(&a->addrs);
}

/* Asks every address for its Status. Returns how many answered. */
static size_t ask_all(struct replica_answers *a, const struct rpc_creds *creds,
                      uint32_t timeout_ms) {
  size_t answered = 0;
  a->r = calloc(a->addrs.n, sizeof(*a->r));
  a->errors = calloc(a->addrs.n, sizeof(*a->errors));
  a->creds = calloc(a->addrs.n, sizeof(*a->creds));
  if (!a->r || !a->errors || !a->creds) return 0;
  for (size_t i = 0; i < a->addrs.n; i++) {
    a->creds[i] = *creds;
    if (!creds->server_name_override && a->addrs.v[i].name[0])
      a->creds[i].server_name_override = a->addrs.v[i].name;
    Edge__V1__StatusResponse *resp;
    a->r[i].address = a->addrs.v[i].addr;
    a->r[i].error = a->errors[i];
    if (fetch_status(a->addrs.v[i].addr, &a->creds[i], timeout_ms, &resp, a->errors[i],
                     sizeof(a->errors[i])) == 0) {
      a->r[i].resp = resp;
      answered++;
    }
  }
  return answered;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The nodes whose streams replica i holds, sorted: "l7-1,l7-3" (or "-"). */
static void served_by(const Edge__V1__StatusResponse *r, char *out, size_t outlen) {
  size_t l = 0, k = 0;
  out[0] = '\0';
  char **ids = calloc(r->n_nodes + 1, sizeof(*ids));
  for (size_t i = 0; ids && i < r->n_nodes; i++)
    if (status_merge_serves(r->nodes[i])) ids[k++] = r->nodes[i]->node_id;
  if (ids) qsort(ids, k, sizeof(*ids), cmp_str);
  for (size_t i = 0; i < k && l + 1 < outlen; i++)
    l += (size_t)snprintf(out + l, outlen - l, "%s%s", l ? "," : "", ids[i]);
  free(ids);
  if (!out[0]) snprintf(out, outlen, "-");
}

static void print_replicas_text(const struct replica_answers *a) {
  printf("REPLICAS (%zu)\n", a->addrs.n);
  printf("  %-20s  %-24s  %-8s  %-20s  %s\n", "REPLICA", "ADDRESS", "ROLE", "VERSION", "SERVES");
  for (size_t i = 0; i < a->addrs.n; i++) {
    const Edge__V1__StatusResponse *r = a->r[i].resp;
    if (!r) {
      printf("  %-20s  %-24s  %-8s  %-20s  UNREACHABLE: %s\n", "?", a->r[i].address, "-", "-",
             a->r[i].error);
      continue;
    }
    char serves[4096], version[32];
    served_by(r, serves, sizeof(serves));
    snprintf(version, sizeof(version), "%" PRIu64, r->version);
    printf("  %-20s  %-24s  %-8s  %-20s  %s\n", r->replica[0] ? r->replica : "?", a->r[i].address,
           role_name(r), version, serves);
  }
  printf("\n");
}

static json_t *replicas_json(const struct replica_answers *a) {
  json_t *arr = json_array();
  for (size_t i = 0; i < a->addrs.n; i++) {
    const Edge__V1__StatusResponse *r = a->r[i].resp;
    json_t *serves = json_array();
    for (size_t k = 0; r && k < r->n_nodes; k++)
      if (status_merge_serves(r->nodes[k]))
        json_array_append_new(serves, json_string(r->nodes[k]->node_id));
    json_array_append_new(
        arr, json_pack("{s:s, s:s, s:b, s:s, s:I, s:o, s:s}", "address", a->r[i].address, "replica",
                       r ? r->replica : "", "answered", r != NULL, "role", r ? role_name(r) : "-",
                       "version", (json_int_t)(r ? r->version : 0), "serves", serves, "error",
                       r ? "" : a->r[i].error));
  }
  return arr;
}

/* `status` over several replicas: 0 when at least one answered. */
static int status_of_replicas(struct replica_answers *a, const struct rpc_creds *creds,
                              uint32_t timeout_ms, int json) {
  if (ask_all(a, creds, timeout_ms) == 0) {
    for (size_t i = 0; i < a->addrs.n; i++)
      fprintf(stderr, "syncctl: cannot get status from syncd at %s: %s\n", a->addrs.v[i].addr,
              a->r ? a->r[i].error : "out of memory");
    return 1;
  }
  struct status_merged_node *rows;
  size_t n_rows;
  int p = status_merge_primary(a->r, a->addrs.n);
  if (p < 0 || status_merge_nodes(a->r, a->addrs.n, &rows, &n_rows) != 0) return 1;
  Edge__V1__StatusResponse merged = *a->r[p].resp; /* shallow: nodes replaced, nothing freed */
  Edge__V1__NodeStatus **np = calloc(n_rows + 1, sizeof(*np));
  if (!np) {
    free(rows);
    return 1;
  }
  for (size_t i = 0; i < n_rows; i++) np[i] = (Edge__V1__NodeStatus *)rows[i].node;
  merged.nodes = np;
  merged.n_nodes = n_rows;
  /* refusals happen on whichever replica the refused client reached: all of them */
  size_t n_ref = 0;
  for (size_t i = 0; i < a->addrs.n; i++) n_ref += a->r[i].resp ? a->r[i].resp->n_refusals : 0;
  Edge__V1__Refusal **rp = calloc(n_ref + 1, sizeof(*rp));
  if (!rp) {
    free(np);
    free(rows);
    return 1;
  }
  n_ref = 0;
  for (size_t i = 0; i < a->addrs.n; i++)
    for (size_t k = 0; a->r[i].resp && k < a->r[i].resp->n_refusals; k++)
      rp[n_ref++] = a->r[i].resp->refusals[k];
  merged.refusals = rp;
  merged.n_refusals = n_ref;
  if (json) {
    json_t *root = status_json(&merged);
    json_t *nodes = json_object_get(root, "nodes");
    for (size_t i = 0; i < n_rows; i++) {
      const Edge__V1__StatusResponse *r = a->r[rows[i].replica].resp;
      json_object_set_new(json_array_get(nodes, i), "replica",
                          json_string(status_merge_serves(rows[i].node) ? r->replica : ""));
    }
    json_object_set_new(root, "replicas", replicas_json(a));
    print_json_doc(root);
  } else {
    print_replicas_text(a);
    print_text(&merged);
  }
  free(np);
  free(rp);
  free(rows);
  return 0;
}

int main(int argc, char **argv) {
  const char *target = "127.0.0.1:7000", *cert = NULL, *key = NULL, *ca = NULL;
  const char *sni = NULL, *method = NULL;
  struct flag_list headers = {.count = 0};
  int insecure = 0, insecure_remote = 0, json = 0;
  long https_port = 0;
  uint32_t timeout_ms = 5000;
  const struct flag_def defs[] = {
      FLAG_GROUP_DEF("Connection to syncd"),
      {"syncd", FLAG_STRING, &target,
       "syncd gRPC address, or several replicas (a list, or a DNS name with several addresses; "
       "default 127.0.0.1:7000)",
       "ADDR:PORT[,ADDR:PORT...]|NAME:PORT"},
      {"cert", FLAG_STRING, &cert, "client certificate (PEM) for mTLS", "FILE"},
      {"key", FLAG_STRING, &key, "client private key (PEM) for mTLS", "FILE"},
      {"ca", FLAG_STRING, &ca, "CA (PEM) that syncd's certificate must chain to", "FILE"},
      {"insecure", FLAG_BOOL, &insecure, "plaintext gRPC (a loopback --syncd only)", NULL},
      {"insecure-allow-remote", FLAG_BOOL, &insecure_remote,
       "allow --insecure to a non-loopback --syncd", NULL},
      {"timeout", FLAG_DURATION_MS, &timeout_ms, "deadline of the call (default 5s)", "DURATION"},
      FLAG_GROUP_DEF("Output"),
      {"json", FLAG_BOOL, &json, "print JSON instead of tables", NULL},
      FLAG_GROUP_DEF("explain"),
      {"sni", FLAG_STRING, &sni, "explain: server name the TLS client sends", "NAME"},
      {"header", FLAG_LIST, &headers, "explain: request header (repeatable)", "'NAME: VALUE'"},
      {"method", FLAG_STRING, &method,
       "explain: request method, for Gateway API method matches (default GET)", "METHOD"},
      {"https-port", FLAG_INT, &https_port,
       "explain: the proxies' --https port, for http → https Locations (default 443)", "PORT", 0,
       65535},
  };
  const size_t ndefs = sizeof(defs) / sizeof(defs[0]);
  const char *pos[66];
  int npos = 0;
  char err[512];
  int rc = flags_parse(defs, ndefs, argc, argv, pos, 66, &npos, err, sizeof(err));
  if (rc == FLAGS_HELP) {
    flags_usage(stdout, "syncctl",
                "--syncd=ADDR:PORT [--insecure|--cert --key --ca] COMMAND\n"
                "  status [--json]\n"
                "  explain URL [URL...] [--sni NAME] [--header 'NAME: VALUE']... [--https-port N] "
                "[--method M] [--json]\n"
                "  certs [--json]",
                "Shows what syncd serves and the state of every node; explains which rule,\n"
                "cluster and certificate serve a URL; lists certificates and their expiry.",
                defs, ndefs);
    return 0;
  }
  if (rc != FLAGS_OK) {
    fprintf(stderr, "syncctl: %s\n", err);
    return 2;
  }
  g_https_port = (uint32_t)https_port;
  g_method = method;
  const char *cmd = npos > 0 ? pos[0] : "";
  if (!((npos == 1 && (!strcmp(cmd, "status") || !strcmp(cmd, "certs"))) ||
        (npos >= 2 && !strcmp(cmd, "explain")))) {
    fprintf(stderr, "syncctl: expected \"status\", \"certs\" or \"explain URL\"\n");
    return 2;
  }
  int have_tls = cert || key || ca;
  if (insecure && !insecure_remote && !targets_is_loopback(target)) {
    fprintf(stderr,
            "syncctl: --insecure is plaintext: --syncd=%s must be a loopback address (or add "
            "--insecure-allow-remote)\n",
            target);
    return 2;
  }
  if (insecure == have_tls || (have_tls && !(cert && key && ca))) {
    fprintf(stderr, "syncctl: choose either --cert, --key and --ca (mTLS) or --insecure\n");
    return 2;
  }
  struct rpc_creds creds = {
      .cert_file = cert, .key_file = key, .ca_file = ca, .insecure = insecure};
  struct target_list tl;
  if (targets_parse(target, &tl, err, sizeof(err)) != 0) {
    fprintf(stderr, "syncctl: --syncd: %s\n", err);
    return 2;
  }
  int several = tl.n > 1 || tl.has_names;
  struct replica_answers ans = {0};
  if (several && targets_resolve_blocking(&tl, &ans.addrs, err, sizeof(err)) != 0) {
    fprintf(stderr, "syncctl: --syncd=%s: %s\n", target, err);
    targets_free(&tl);
    return 1;
  }
  targets_free(&tl);
  if (several && ans.addrs.n > 1) {
    if (!strcmp(cmd, "status")) {
      rc = status_of_replicas(&ans, &creds, timeout_ms, json);
      answers_free(&ans);
      return rc;
    }
    /* explain, certs: the first replica that answers */
    if (ask_all(&ans, &creds, timeout_ms) == 0) {
      fprintf(stderr, "syncctl: no syncd replica at %s answered\n", target);
      answers_free(&ans);
      return 1;
    }
    int p = status_merge_primary(ans.r, ans.addrs.n);
    static char chosen[TARGETS_HOST_MAX + 8], chosen_name[TARGETS_HOST_MAX];
    snprintf(chosen, sizeof(chosen), "%s", ans.addrs.v[p].addr);
    snprintf(chosen_name, sizeof(chosen_name), "%s", ans.addrs.v[p].name);
    target = chosen;
    if (chosen_name[0]) creds.server_name_override = chosen_name;
    answers_free(&ans);
  } else {
    answers_free(&ans);
  }
  if (!strcmp(cmd, "explain"))
    return run_explain(target, &creds, timeout_ms, pos + 1, npos - 1, sni, &headers, json);
  Edge__V1__StatusResponse *r = NULL;
  if (get_status(target, &creds, timeout_ms, &r) != 0) return 1;
  if (!strcmp(cmd, "certs"))
    print_certs(r, json);
  else if (json)
    print_json(r);
  else
    print_text(r);
  edge__v1__status_response__free_unpacked(r, NULL);
  return 0;
}
