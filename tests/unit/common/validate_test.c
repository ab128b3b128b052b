/* validate: the tenant-value rules, table-driven, and the resource walk
 * that rejects a request-line injection wherever it hides. */
#include "common/validate.h"

#include <CUnit/CUnit.h>
#include <stdio.h>
#include <string.h>

struct vcase {
  const char *in;
  int ok;
};

static void paths_allow_rfc3986_path_characters_only(void) {
  static const struct vcase t[] = {
      {"/", 1},
      {"/api/v2/health", 1},
      {"/a-b_c.d~e!$&'()*+,;=:@", 1},
      {"/caf%C3%A9", 1},
      {"/x HTTP/1.1\r\nX-Injected: yes\r\nX-Pad: a", 0},
      {"/x\r\n", 0},
      {"/x\n", 0},
      {"/x y", 0},
      {"/x\t", 0},
      {"/x?y=1", 0},
      {"/x#frag", 0},
      {"/%zz", 0},
      {"/%4", 0},
      {"/\x7f", 0},
      {"/\xc3\xa9", 0},
      {"/a\"b", 0},
      {"/a<b>", 0},
      {"relative", 0},
      {"", 0},
  };
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    char why[160] = "";
    int rc = validate_path(t[i].in, why, sizeof(why));
    if ((rc == 0) != t[i].ok) fprintf(stderr, "path case %zu: rc=%d why=%s\n", i, rc, why);
    CU_ASSERT_EQUAL(rc == 0, t[i].ok);
    if (!t[i].ok) CU_ASSERT(why[0] != '\0');
  }
  char why[160];
  validate_path("/x\r\nY: z", why, sizeof(why));
  CU_ASSERT_PTR_NOT_NULL(strstr(why, "control character"));
}

static void hosts_are_dns_names_or_one_leading_wildcard(void) {
  static const struct vcase t[] = {
      {"shop.example.com", 1},
      {"Shop.Example.COM", 1},
      {"*.example.com", 1},
      {"a", 1},
      {"127.0.0.1", 1},
      {"x-y.z", 1},
      {"a..b", 0},
      {"-a.b", 0},
      {"a-.b", 0},
      {"a.*.b", 0},
      {"*", 0},
      {"*.", 0},
      {"a b", 0},
      {"a\r\nb", 0},
      {"a_b", 0},
      {"a:80", 0},
      {"[::1]", 0},
      {"\xc3\xa9.com", 0},
  };
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    char why[160] = "";
    int rc = validate_host(t[i].in, 1, 0, why, sizeof(why));
    if ((rc == 0) != t[i].ok) fprintf(stderr, "host case %zu: rc=%d why=%s\n", i, rc, why);
    CU_ASSERT_EQUAL(rc == 0, t[i].ok);
  }
  char label[70];
  memset(label, 'a', 64);
  label[64] = '\0';
  CU_ASSERT_EQUAL(validate_host(label, 1, 0, NULL, 0), -1);
  CU_ASSERT_EQUAL(validate_host("", 1, 1, NULL, 0), 0);
  CU_ASSERT_EQUAL(validate_host("", 1, 0, NULL, 0), -1);
  CU_ASSERT_EQUAL(validate_host("*.a.com", 0, 0, NULL, 0), -1);
}

static void names_are_visible_ascii_without_quotes(void) {
  CU_ASSERT_EQUAL(validate_name("default/shop:80", NULL, 0), 0);
  CU_ASSERT_EQUAL(validate_name("vh:*.example.com", NULL, 0), 0);
  CU_ASSERT_EQUAL(validate_name("a b", NULL, 0), -1);
  CU_ASSERT_EQUAL(validate_name("a\nb", NULL, 0), -1);
  CU_ASSERT_EQUAL(validate_name("a\"b", NULL, 0), -1);
  CU_ASSERT_EQUAL(validate_name("a\\b", NULL, 0), -1);
  CU_ASSERT_EQUAL(validate_name("", NULL, 0), -1);
}

static void kubernetes_names_follow_dns_1123(void) {
  CU_ASSERT_EQUAL(validate_k8s_name("shop", 1, NULL, 0), 0);
  CU_ASSERT_EQUAL(validate_k8s_name("tls.shop-1", 1, NULL, 0), 0);
  CU_ASSERT_EQUAL(validate_k8s_name("tls.shop", 0, NULL, 0), -1); /* namespaces: a label */
  CU_ASSERT_EQUAL(validate_k8s_name("Shop", 1, NULL, 0), -1);
  CU_ASSERT_EQUAL(validate_k8s_name("-shop", 1, NULL, 0), -1);
  CU_ASSERT_EQUAL(validate_k8s_name("shop-", 1, NULL, 0), -1);
  CU_ASSERT_EQUAL(validate_k8s_name("a/b", 1, NULL, 0), -1);
  CU_ASSERT_EQUAL(validate_k8s_name("a b", 1, NULL, 0), -1);
  CU_ASSERT_EQUAL(validate_k8s_name("", 1, NULL, 0), -1);
}

static void redirects_allow_known_schemes_statuses_and_a_query(void) {
  Edge__V1__Redirect r = EDGE__V1__REDIRECT__INIT;
  r.scheme = "https";
  r.host = "a.com";
  r.path = "/x?y=1&z=2";
  r.status = 301;
  CU_ASSERT_EQUAL(validate_redirect(&r, NULL, 0), 0);
  r.status = 200;
  CU_ASSERT_EQUAL(validate_redirect(&r, NULL, 0), -1);
  r.status = 308;
  r.scheme = "javascript";
  CU_ASSERT_EQUAL(validate_redirect(&r, NULL, 0), -1);
  r.scheme = "";
  r.host = "a.com\r\nSet-Cookie: x=1";
  CU_ASSERT_EQUAL(validate_redirect(&r, NULL, 0), -1);
  r.host = "";
  r.path = "/x\r\nSet-Cookie: x=1";
  CU_ASSERT_EQUAL(validate_redirect(&r, NULL, 0), -1);
}

static void quote_escapes_control_bytes_and_bounds_length(void) {
  char buf[32];
  CU_ASSERT_STRING_EQUAL(validate_quote("/x\r\nY", buf, sizeof(buf)), "\"/x\\r\\nY\"");
  CU_ASSERT_STRING_EQUAL(validate_quote("a\"b\x01", buf, sizeof(buf)), "\"a\\\"b\\x01\"");
  char lng[100];
  memset(lng, 'a', 99);
  lng[99] = '\0';
  validate_quote(lng, buf, sizeof(buf));
  CU_ASSERT(strlen(buf) < sizeof(buf));
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, "...\""));
}

/* A VirtualHost with one route carrying `rewrite`. */
static int check_vhost_with_rewrite(const char *rewrite, char *err, size_t errlen) {
  Edge__V1__RouteOptions o = EDGE__V1__ROUTE_OPTIONS__INIT;
  o.rewrite_prefix = (char *)rewrite;
  Edge__V1__Route rt = EDGE__V1__ROUTE__INIT;
  rt.path = "/app";
  rt.path_type = EDGE__V1__PATH_TYPE__PATH_TYPE_PREFIX;
  rt.cluster = "default/app:80";
  rt.options = &o;
  Edge__V1__Route *rts[] = {&rt};
  Edge__V1__VirtualHost vh = EDGE__V1__VIRTUAL_HOST__INIT;
  vh.name = "vh:shop.example.com";
  vh.host = "shop.example.com";
  vh.n_routes = 1;
  vh.routes = rts;
  Edge__V1__Resource r = EDGE__V1__RESOURCE__INIT;
  r.kind_case = EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST;
  r.virtual_host = &vh;
  return validate_resource(&r, err, errlen);
}

static void resource_with_crlf_rewrite_target_is_rejected_with_an_escaped_reason(void) {
  char err[512] = "";
  CU_ASSERT_EQUAL(check_vhost_with_rewrite("/v2", err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(
      check_vhost_with_rewrite("/x HTTP/1.1\r\nX-Injected: yes\r\nX-Pad: a", err, sizeof(err)), -1);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "vh:shop.example.com"));
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "rewrite_prefix"));
  /* the reason itself never carries the raw CR/LF */
  CU_ASSERT_PTR_NULL(strchr(err, '\r'));
  CU_ASSERT_PTR_NULL(strchr(err, '\n'));
}

static void resource_fields_that_reach_logs_are_checked(void) {
  char err[512];
  Edge__V1__Endpoint ep = EDGE__V1__ENDPOINT__INIT;
  ep.address = "10.0.0.1";
  ep.port = 80;
  ep.target = "pod\nlevel=error msg=forged";
  Edge__V1__Endpoint *eps[] = {&ep};
  Edge__V1__Cluster cl = EDGE__V1__CLUSTER__INIT;
  cl.name = "default/app:80";
  cl.n_endpoints = 1;
  cl.endpoints = eps;
  Edge__V1__Resource r = EDGE__V1__RESOURCE__INIT;
  r.kind_case = EDGE__V1__RESOURCE__KIND_CLUSTER;
  r.cluster = &cl;
  CU_ASSERT_EQUAL(validate_resource(&r, err, sizeof(err)), -1);
  ep.target = "pod-1";
  CU_ASSERT_EQUAL(validate_resource(&r, err, sizeof(err)), 0);
  cl.name = "default/app:80 x";
  CU_ASSERT_EQUAL(validate_resource(&r, err, sizeof(err)), -1);

  Edge__V1__Certificate c = EDGE__V1__CERTIFICATE__INIT;
  char *sni[] = {"ok.example.com", "bad\r\nname"};
  c.name = "default/tls";
  c.n_sni_names = 2;
  c.sni_names = sni;
  r.kind_case = EDGE__V1__RESOURCE__KIND_CERTIFICATE;
  r.certificate = &c;
  CU_ASSERT_EQUAL(validate_resource(&r, err, sizeof(err)), -1);
  c.n_sni_names = 1;
  CU_ASSERT_EQUAL(validate_resource(&r, err, sizeof(err)), 0);
  Edge__V1__Resource none = EDGE__V1__RESOURCE__INIT;
  CU_ASSERT_EQUAL(validate_resource(&none, err, sizeof(err)), -1);
}

/* Issue 20: the policies' tenant values go through the same walk. */
static void issue_20_policy_values_are_checked(void) {
  char err[512];
  Edge__V1__Cluster cl = EDGE__V1__CLUSTER__INIT;
  cl.name = "default/app:80";
  Edge__V1__Resource r = EDGE__V1__RESOURCE__INIT;
  r.kind_case = EDGE__V1__RESOURCE__KIND_CLUSTER;
  r.cluster = &cl;
  Edge__V1__HealthCheck hc = EDGE__V1__HEALTH_CHECK__INIT;
  hc.path = "/healthz?full=1";
  hc.host = "10.0.0.7";
  cl.health_check = &hc;
  CU_ASSERT_EQUAL(validate_resource(&r, err, sizeof(err)), 0);
  hc.path = "/h HTTP/1.1\r\nHost: evil";
  CU_ASSERT_EQUAL(validate_resource(&r, err, sizeof(err)), -1);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "health_check: path"));
  CU_ASSERT_PTR_NULL(strchr(err, '\n'));
  hc.path = "/h";
  hc.host = "a\nb";
  CU_ASSERT_EQUAL(validate_resource(&r, err, sizeof(err)), -1);
  hc.host = "";
  Edge__V1__UpstreamTls tls = EDGE__V1__UPSTREAM_TLS__INIT;
  tls.server_name = "api.internal";
  cl.tls = &tls;
  CU_ASSERT_EQUAL(validate_resource(&r, err, sizeof(err)), 0);
  tls.server_name = "api internal";
  CU_ASSERT_EQUAL(validate_resource(&r, err, sizeof(err)), -1);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "server_name"));
  tls.server_name = "::1";
  CU_ASSERT_EQUAL(validate_resource(&r, err, sizeof(err)), 0);

  Edge__V1__Cors cors = EDGE__V1__CORS__INIT;
  char *origins[] = {"https://app.example\r\nSet-Cookie: x=1"};
  cors.n_allow_origins = 1;
  cors.allow_origins = origins;
  Edge__V1__RouteOptions o = EDGE__V1__ROUTE_OPTIONS__INIT;
  o.cors = &cors;
  Edge__V1__Route rt = EDGE__V1__ROUTE__INIT;
  rt.path = "/";
  rt.options = &o;
  Edge__V1__Route *rts[] = {&rt};
  Edge__V1__VirtualHost vh = EDGE__V1__VIRTUAL_HOST__INIT;
  vh.name = "vh:a.example";
  vh.host = "a.example";
  vh.n_routes = 1;
  vh.routes = rts;
  r.kind_case = EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST;
  r.virtual_host = &vh;
  CU_ASSERT_EQUAL(validate_resource(&r, err, sizeof(err)), -1);
  origins[0] = "https://app.example";
  CU_ASSERT_EQUAL(validate_resource(&r, err, sizeof(err)), 0);
  Edge__V1__ClientAuth ca = EDGE__V1__CLIENT_AUTH__INIT;
  ca.mode = 7;
  ca.ca_pem = (ProtobufCBinaryData){1, (uint8_t *)"x"};
  vh.client_auth = &ca;
  CU_ASSERT_EQUAL(validate_resource(&r, err, sizeof(err)), -1);
  ca.mode = EDGE__V1__CLIENT_AUTH_MODE__CLIENT_AUTH_MODE_REQUIRED;
  CU_ASSERT_EQUAL(validate_resource(&r, err, sizeof(err)), 0);
}

/* The Gateway API fields: header names are tokens, header and match values never carry a
 * control byte, regular-expression paths are visible ASCII, a rewrite is a path or a host,
 * suffix hosts and passthrough hosts are known, and each refusal names the field. */
static void gateway_api_fields_are_checked(void) {
  char why[300] = "";
  CU_ASSERT_EQUAL(validate_header("x-canary", "always", why, sizeof(why)), 0);
  CU_ASSERT_EQUAL(validate_header("x-a", "a b\tc", why, sizeof(why)), 0);
  CU_ASSERT_NOT_EQUAL(validate_header("x-a", "a\r\nX-Injected: 1", why, sizeof(why)), 0);
  CU_ASSERT(strstr(why, "control character") != NULL);
  CU_ASSERT_NOT_EQUAL(validate_header("x a", "v", why, sizeof(why)), 0);
  CU_ASSERT_NOT_EQUAL(validate_header("x:a", NULL, why, sizeof(why)), 0);
  CU_ASSERT_NOT_EQUAL(validate_header("", NULL, why, sizeof(why)), 0);

  Edge__V1__HeaderValue hv = EDGE__V1__HEADER_VALUE__INIT, *hvs[] = {&hv};
  hv.name = "x-added", hv.value = "yes";
  Edge__V1__HeaderModifier mod = EDGE__V1__HEADER_MODIFIER__INIT;
  mod.set = hvs, mod.n_set = 1;
  Edge__V1__RouteOptions o = EDGE__V1__ROUTE_OPTIONS__INIT;
  Edge__V1__WeightedCluster w = EDGE__V1__WEIGHTED_CLUSTER__INIT, *ws[] = {&w};
  w.cluster = "gw:ns/a:80", w.weight = 1;
  Edge__V1__Route r = EDGE__V1__ROUTE__INIT, *rs[] = {&r};
  r.path = "^/v[0-9]+/(a|b)$";
  r.path_type = EDGE__V1__PATH_TYPE__PATH_TYPE_REGEX;
  r.method = "GET";
  r.request_headers = &mod;
  r.weighted_clusters = ws, r.n_weighted_clusters = 1;
  r.options = &o;
  Edge__V1__VirtualHost vh = EDGE__V1__VIRTUAL_HOST__INIT;
  vh.name = "gw:http:*.example.com", vh.host = "*.example.com";
  vh.host_match = EDGE__V1__HOST_MATCH__HOST_MATCH_SUFFIX;
  vh.listener = EDGE__V1__LISTENER__LISTENER_HTTP;
  vh.routes = rs, vh.n_routes = 1;
  char *gr[] = {"HTTPRoute ns/app"};
  vh.gateway_routes = gr, vh.n_gateway_routes = 1;
  Edge__V1__Resource res = EDGE__V1__RESOURCE__INIT;
  res.kind_case = EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST;
  res.virtual_host = &vh;
  CU_ASSERT_EQUAL_FATAL(validate_resource(&res, why, sizeof(why)), 0);
  r.path = "^/v1 HTTP/1.1\r\n";
  CU_ASSERT_NOT_EQUAL(validate_resource(&res, why, sizeof(why)), 0);
  r.path = "^/v1$";
  r.method = "GET /x";
  CU_ASSERT_NOT_EQUAL(validate_resource(&res, why, sizeof(why)), 0);
  CU_ASSERT(strstr(why, "method") != NULL);
  r.method = "GET";
  hv.value = "a\r\nX-Injected: 1";
  CU_ASSERT_NOT_EQUAL(validate_resource(&res, why, sizeof(why)), 0);
  CU_ASSERT(strstr(why, "request header x-added: value contains a control character") != NULL);
  hv.value = "yes";
  o.rewrite_path = "/x?admin=1";
  CU_ASSERT_NOT_EQUAL(validate_resource(&res, why, sizeof(why)), 0);
  CU_ASSERT(strstr(why, "rewrite_path") != NULL);
  o.rewrite_path = "/x";
  o.rewrite_host = "evil.com\r\nX: 1";
  CU_ASSERT_NOT_EQUAL(validate_resource(&res, why, sizeof(why)), 0);
  CU_ASSERT(strstr(why, "rewrite_host") != NULL);
  o.rewrite_host = "internal.example.com";
  o.direct_status = 42;
  CU_ASSERT_NOT_EQUAL(validate_resource(&res, why, sizeof(why)), 0);
  o.direct_status = 500;
  w.cluster = "gw:ns/a b:80";
  CU_ASSERT_NOT_EQUAL(validate_resource(&res, why, sizeof(why)), 0);
  w.cluster = "gw:ns/a:80";
  CU_ASSERT_EQUAL(validate_resource(&res, why, sizeof(why)), 0);

  Edge__V1__PassthroughHost p = EDGE__V1__PASSTHROUGH_HOST__INIT;
  p.name = "pt:*.tls.example.com", p.host = "*.tls.example.com";
  p.host_match = EDGE__V1__HOST_MATCH__HOST_MATCH_SUFFIX;
  p.clusters = ws, p.n_clusters = 1;
  Edge__V1__Resource pr = EDGE__V1__RESOURCE__INIT;
  pr.kind_case = EDGE__V1__RESOURCE__KIND_PASSTHROUGH_HOST;
  pr.passthrough_host = &p;
  CU_ASSERT_EQUAL(validate_resource(&pr, why, sizeof(why)), 0);
  p.host = "tls.example.com\r\n";
  CU_ASSERT_NOT_EQUAL(validate_resource(&pr, why, sizeof(why)), 0);
  CU_ASSERT(strstr(why, "passthrough host") != NULL);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("validate", NULL, NULL);
  CU_add_test(s, "paths_allow_rfc3986_path_characters_only",
              paths_allow_rfc3986_path_characters_only);
  CU_add_test(s, "hosts_are_dns_names_or_one_leading_wildcard",
              hosts_are_dns_names_or_one_leading_wildcard);
  CU_add_test(s, "names_are_visible_ascii_without_quotes", names_are_visible_ascii_without_quotes);
  CU_add_test(s, "kubernetes_names_follow_dns_1123", kubernetes_names_follow_dns_1123);
  CU_add_test(s, "redirects_allow_known_schemes_statuses_and_a_query",
              redirects_allow_known_schemes_statuses_and_a_query);
  CU_add_test(s, "quote_escapes_control_bytes_and_bounds_length",
              quote_escapes_control_bytes_and_bounds_length);
  CU_add_test(s, "resource_with_crlf_rewrite_target_is_rejected_with_an_escaped_reason",
              resource_with_crlf_rewrite_target_is_rejected_with_an_escaped_reason);
  CU_add_test(s, "issue_20_policy_values_are_checked", issue_20_policy_values_are_checked);
  CU_add_test(s, "gateway_api_fields_are_checked", gateway_api_fields_are_checked);
  CU_add_test(s, "resource_fields_that_reach_logs_are_checked",
              resource_fields_that_reach_logs_are_checked);
}
