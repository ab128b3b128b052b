/*
 * The configuration h2_server_fuzz's worker serves: a host with a route
 * that redirects, one whose cluster has no endpoints (503), and nothing
 * else (404), so every stream gets a real, locally made response.
 */
#ifndef EDGE_TESTS_FUZZ_CONFIG_FIXTURE_MIN_H
#define EDGE_TESTS_FUZZ_CONFIG_FIXTURE_MIN_H

#include "l7proxy/snapshot.h"

static inline struct l7_snapshot *fuzz_snapshot(void) {
  Edge__V1__Cluster cl = EDGE__V1__CLUSTER__INIT;
  cl.name = "default/empty:80";
  Edge__V1__Redirect rd = EDGE__V1__REDIRECT__INIT;
  rd.scheme = "https";
  rd.status = 308;
  Edge__V1__RouteOptions ro = EDGE__V1__ROUTE_OPTIONS__INIT;
  ro.redirect = &rd;
  Edge__V1__Route r1 = EDGE__V1__ROUTE__INIT, r2 = EDGE__V1__ROUTE__INIT;
  r1.path = "/redirect";
  r1.path_type = EDGE__V1__PATH_TYPE__PATH_TYPE_PREFIX;
  r1.options = &ro;
  r2.path = "/";
  r2.path_type = EDGE__V1__PATH_TYPE__PATH_TYPE_PREFIX;
  r2.cluster = "default/empty:80";
  Edge__V1__Route *routes[] = {&r1, &r2};
  Edge__V1__VirtualHost vh = EDGE__V1__VIRTUAL_HOST__INIT;
  vh.name = "vh:a.test";
  vh.host = "a.test";
  vh.n_routes = 2;
  vh.routes = routes;
  Edge__V1__Resource res[2] = {EDGE__V1__RESOURCE__INIT, EDGE__V1__RESOURCE__INIT};
  res[0].kind_case = EDGE__V1__RESOURCE__KIND_CLUSTER;
  res[0].cluster = &cl;
  res[1].kind_case = EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST;
  res[1].virtual_host = &vh;
  Edge__V1__Resource *rp[] = {&res[0], &res[1]};
  struct l7_snapshot *s = NULL;
  char err[256];
  return l7_snapshot_build(1, rp, 2, &s, err, sizeof(err)) == 0 ? s : NULL;
}

#endif
