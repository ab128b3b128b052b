"""HTTPRoute redirect (core: hostname and status) and extended cases, ported from
upstream's conformance/tests/httproute-*.{yaml,go} (kubernetes-sigs/gateway-api,
Apache-2.0)."""
import json
import time

from cases import case
from cases_http import SAME, backend, route
import checks
from checks import (expect, listener, poll, resolved_refs, route_condition, routes_accepted,
                    STATUS_S)
from harness import INFRA, Failure

V1, V2, V3 = "infra-backend-v1", "infra-backend-v2", "infra-backend-v3"


def rule(path=None, headers=None, method=None, query=None, filters=None, to=V1, ptype="PathPrefix"):
    m = {}
    if path:
        m["path"] = {"type": ptype, "value": path}
    if headers:
        m["headers"] = [{"name": k, "value": v} for k, v in headers.items()]
    if method:
        m["method"] = method
    if query:
        m["queryParams"] = [{"name": k, "value": v} for k, v in query.items()]
    r = {"matches": [m]}
    if filters:
        r["filters"] = filters
    if to:
        r["backendRefs"] = [backend(to)]
    return r


def one(name, rules, hostnames=None):
    spec = {"parentRefs": [{"name": "same-namespace"}], "rules": rules}
    if hostnames:
        spec["hostnames"] = hostnames
    return route(name, spec)


def ok(name):
    def wait(e):
        routes_accepted(e, SAME, [INFRA + "/" + name])
        resolved_refs(e, SAME, INFRA + "/" + name)
    return wait


def at(be, **kw):
    return dict({"backend": be, "namespace": INFRA}, **kw)


@case("HTTPRouteQueryParamMatching",
      features=("Gateway", "HTTPRoute", "HTTPRouteQueryParamMatching"), manifests=one(
          "query-param-matching", [
              rule(query={"animal": "whale"}, to=V1),
              rule(query={"animal": "dolphin"}, to=V2),
              {"matches": [{"queryParams": [{"name": "animal", "value": "dolphin"},
                                            {"name": "color", "value": "blue"}]},
                           {"queryParams": [{"name": "ANIMAL", "value": "Whale"}]}],
               "backendRefs": [backend(V3)]},
              rule(path="/path1", query={"animal": "whale"}, to=V1),
              rule(headers={"version": "one"}, query={"animal": "whale"}, to=V2),
              rule(path="/path2", headers={"version": "two"}, query={"animal": "whale"}, to=V3),
              {"matches": [{"path": {"type": "PathPrefix", "value": "/path3"},
                            "queryParams": [{"name": "animal", "value": "shark"}]},
                           {"path": {"type": "PathPrefix", "value": "/path4"},
                            "headers": [{"name": "version", "value": "three"}],
                            "queryParams": [{"name": "animal", "value": "kraken"}]}],
               "backendRefs": [backend(V1)]},
              rule(path="/path5", to=V1),
              rule(query={"animal": "hydra"}, to=V2),
              rule(headers={"version": "four"}, to=V3)]))
def query_params(e):
    ok("query-param-matching")(e)
    for path, be in [("/?animal=whale", V1), ("/?animal=dolphin", V2),
                     ("/?animal=dolphin&color=blue", V3), ("/?ANIMAL=Whale", V3),
                     ("/?animal=whale&otherparam=irrelevant", V1),
                     ("/?animal=dolphin&color=yellow", V2), ("/path1?animal=whale", V1),
                     ("/path3?animal=shark", V1), ("/path5?animal=hydra", V1)]:
        expect(e, at(be, path=path))
    expect(e, at(V2, path="/?animal=whale", headers={"version": "one"}))
    expect(e, at(V3, path="/path2?animal=whale", headers={"version": "two"}))
    expect(e, at(V1, path="/path4?animal=kraken", headers={"version": "three"}))
    expect(e, at(V3, path="/?animal=hydra", headers={"version": "four"}))
    for path in ("/?color=blue", "/?animal=dog", "/?animal=whaledolphin", "/", "/?animal=shark",
                 "/path4?animal=kraken"):
        expect(e, {"path": path, "status": 404})


@case("HTTPRouteMethodMatching", features=("Gateway", "HTTPRoute", "HTTPRouteMethodMatching"),
      manifests=one("method-matching", [
          rule(method="POST", to=V1),
          rule(method="GET", to=V2),
          rule(path="/path1", method="GET", to=V1),
          rule(headers={"version": "one"}, method="PUT", to=V2),
          rule(path="/path2", headers={"version": "two"}, method="POST", to=V3),
          {"matches": [{"path": {"type": "PathPrefix", "value": "/path3"}, "method": "PATCH"},
                       {"path": {"type": "PathPrefix", "value": "/path4"},
                        "headers": [{"name": "version", "value": "three"}],
                        "method": "DELETE"}],
           "backendRefs": [backend(V1)]},
          rule(path="/path5", to=V1),
          rule(method="PATCH", to=V2),
          rule(headers={"version": "four"}, to=V3)]))
def methods(e):
    ok("method-matching")(e)
    expect(e, at(V1, method="POST", path="/"))
    expect(e, at(V2, method="GET", path="/"))
    expect(e, {"method": "HEAD", "path": "/", "status": 404})
    expect(e, at(V1, method="GET", path="/path1"))
    expect(e, at(V2, method="PUT", path="/", headers={"version": "one"}))
    expect(e, at(V3, method="POST", path="/path2", headers={"version": "two"}))
    expect(e, at(V1, method="PATCH", path="/path3"))
    expect(e, at(V1, method="DELETE", path="/path4", headers={"version": "three"}))
    expect(e, {"method": "PUT", "path": "/", "status": 404})
    expect(e, {"method": "DELETE", "path": "/path4", "status": 404})
    expect(e, at(V1, method="PATCH", path="/path5"))
    expect(e, at(V2, method="PATCH", path="/", headers={"version": "four"}))


def redirect(**kw):
    return [{"type": "RequestRedirect", "requestRedirect": kw}]


@case("HTTPRouteRedirectHostAndStatus", manifests=one("redirect-host-and-status", [
    rule(path="/hostname-redirect", filters=redirect(hostname="example.org"), to=None),
    rule(path="/host-and-status", filters=redirect(hostname="example.org", statusCode=301),
         to=None)]))
def redirect_host_status(e):
    routes_accepted(e, SAME, [INFRA + "/redirect-host-and-status"])
    expect(e, {"path": "/hostname-redirect", "status": 302, "redirect": {"host": "example.org"}})
    expect(e, {"path": "/host-and-status", "status": 301, "redirect": {"host": "example.org"}})


@case("HTTPRouteRedirectPath",
      features=("Gateway", "HTTPRoute", "HTTPRoutePathRedirect"), manifests=one("redirect-path", [
          rule(path="/original-prefix", to=None, filters=redirect(path={
              "type": "ReplacePrefixMatch", "replacePrefixMatch": "/replacement-prefix"})),
          rule(path="/full", to=None, filters=redirect(path={
              "type": "ReplaceFullPath", "replaceFullPath": "/full-path-replacement"})),
          rule(path="/path-and-host", to=None, filters=redirect(hostname="example.org", path={
              "type": "ReplacePrefixMatch", "replacePrefixMatch": "/replacement-prefix"})),
          rule(path="/path-and-status", to=None, filters=redirect(statusCode=301, path={
              "type": "ReplacePrefixMatch", "replacePrefixMatch": "/replacement-prefix"})),
          rule(path="/full-path-and-host", to=None, filters=redirect(hostname="example.org", path={
              "type": "ReplaceFullPath", "replaceFullPath": "/replacement-full"})),
          rule(path="/full-path-and-status", to=None, filters=redirect(statusCode=301, path={
              "type": "ReplaceFullPath", "replaceFullPath": "/replacement-full"}))]))
def redirect_path(e):
    routes_accepted(e, SAME, [INFRA + "/redirect-path"])
    for path, code, rd in [
            ("/original-prefix/lemon", 302, {"path": "/replacement-prefix/lemon"}),
            ("/full/path/original", 302, {"path": "/full-path-replacement"}),
            ("/path-and-host", 302, {"host": "example.org", "path": "/replacement-prefix"}),
            ("/path-and-status", 301, {"path": "/replacement-prefix"}),
            ("/full-path-and-host", 302, {"host": "example.org", "path": "/replacement-full"}),
            ("/full-path-and-status", 301, {"path": "/replacement-full"})]:
        expect(e, {"path": path, "status": code, "redirect": rd})


@case("HTTPRouteRedirectPort",
      features=("Gateway", "HTTPRoute", "HTTPRoutePortRedirect"), manifests=one("redirect-port", [
          rule(path="/port", to=None, filters=redirect(port=8083)),
          rule(path="/port-and-host", to=None, filters=redirect(hostname="example.org", port=8083)),
          rule(path="/port-and-status", to=None, filters=redirect(port=8083, statusCode=301)),
          rule(path="/port-and-host-and-status", to=None,
               filters=redirect(port=8083, hostname="example.org", statusCode=302))]))
def redirect_port(e):
    routes_accepted(e, SAME, [INFRA + "/redirect-port"])
    expect(e, {"path": "/port", "status": 302, "redirect": {"port": "8083", "path": "/port"}})
    expect(e, {"path": "/port-and-host", "status": 302, "redirect": {
        "host": "example.org", "port": "8083", "path": "/port-and-host"}})
    expect(e, {"path": "/port-and-status", "status": 301, "redirect": {
        "port": "8083", "path": "/port-and-status"}})
    expect(e, {"path": "/port-and-host-and-status", "status": 302, "redirect": {
        "host": "example.org", "port": "8083", "path": "/port-and-host-and-status"}})


@case("HTTPRouteRedirectScheme",
      features=("Gateway", "HTTPRoute", "HTTPRouteSchemeRedirect"),
      manifests=one("redirect-scheme", [
          rule(path="/scheme", to=None, filters=redirect(scheme="https")),
          rule(path="/scheme-and-host", to=None,
               filters=redirect(scheme="https", hostname="example.org")),
          rule(path="/scheme-and-status", to=None, filters=redirect(scheme="https",
                                                                      statusCode=301)),
          rule(path="/scheme-and-host-and-status", to=None,
               filters=redirect(scheme="https", hostname="example.org", statusCode=302))]))
def redirect_scheme(e):
    routes_accepted(e, SAME, [INFRA + "/redirect-scheme"])
    expect(e, {"path": "/scheme", "status": 302, "redirect": {"scheme": "https",
                                                              "path": "/scheme"}})
    expect(e, {"path": "/scheme-and-host", "status": 302, "redirect": {
        "scheme": "https", "host": "example.org", "path": "/scheme-and-host"}})
    expect(e, {"path": "/scheme-and-status", "status": 301, "redirect": {
        "scheme": "https", "path": "/scheme-and-status"}})
    expect(e, {"path": "/scheme-and-host-and-status", "status": 302, "redirect": {
        "scheme": "https", "host": "example.org", "path": "/scheme-and-host-and-status"}})


for _code, _feat in ((303, "HTTPRoute303RedirectStatusCode"),
                     (307, "HTTPRoute307RedirectStatusCode"),
                     (308, "HTTPRoute308RedirectStatusCode")):
    def _make(code):
        def run(e):
            routes_accepted(e, SAME, [INFRA + "/redirect-%d" % code])
            expect(e, {"path": "/%d-redirect" % code, "status": code,
                       "redirect": {"host": "example.org", "path": "/%d-redirect" % code}})
        return run
    case("HTTPRoute%dRedirect" % _code, features=("Gateway", "HTTPRoute", _feat),
         manifests=one("redirect-%d" % _code, [rule(
             path="/%d-redirect" % _code, to=None,
             filters=redirect(hostname="example.org", statusCode=_code))]))(_make(_code))


def rewrite(**kw):
    return [{"type": "URLRewrite", "urlRewrite": kw}]


@case("HTTPRouteRewriteHost", features=("Gateway", "HTTPRoute", "HTTPRouteHostRewrite"),
      manifests=one("rewrite-host", [
          rule(path="/one", filters=rewrite(hostname="one.example.org")),
          rule(filters=rewrite(hostname="example.org"), to=V2)], hostnames=["rewrite.example"]))
def rewrite_host(e):
    ok("rewrite-host")(e)
    expect(e, at(V1, host="rewrite.example", path="/one",
                 expected_request={"path": "/one", "host": "one.example.org"}))
    expect(e, at(V2, host="rewrite.example", path="/",
                 expected_request={"path": "/", "host": "example.org"}))


@case("HTTPRouteRewritePath", features=("Gateway", "HTTPRoute", "HTTPRoutePathRewrite"),
      manifests=one("rewrite-path", [
          rule(path="/prefix/one", filters=rewrite(path={"type": "ReplacePrefixMatch",
                                                         "replacePrefixMatch": "/one"})),
          rule(path="/full/one", filters=rewrite(path={"type": "ReplaceFullPath",
                                                       "replaceFullPath": "/one"})),
          rule(path="/full/rewrite-path-and-modify-headers", filters=rewrite(path={
              "type": "ReplaceFullPath", "replaceFullPath": "/test"}) + [{
                  "type": "RequestHeaderModifier", "requestHeaderModifier": {
                      "set": [{"name": "X-Header-Set", "value": "set-overwrites-values"}],
                      "add": [{"name": "X-Header-Add", "value": "header-val-1"}],
                      "remove": ["X-Header-Remove"]}}]),
          rule(path="/prefix/rewrite-path-and-modify-headers", filters=rewrite(path={
              "type": "ReplacePrefixMatch", "replacePrefixMatch": "/prefix"}) + [{
                  "type": "RequestHeaderModifier", "requestHeaderModifier": {
                      "set": [{"name": "X-Header-Set", "value": "set-overwrites-values"}],
                      "add": [{"name": "X-Header-Add", "value": "header-val-1"}],
                      "remove": ["X-Header-Remove"]}}]),
          rule(path="/strip-prefix", filters=rewrite(path={"type": "ReplacePrefixMatch",
                                                           "replacePrefixMatch": "/"}))]))
def rewrite_path(e):
    ok("rewrite-path")(e)
    for path, want in [("/prefix/one/two", "/one/two"), ("/full/one/two", "/one"),
                       ("/prefix/one", "/one"), ("/strip-prefix/three", "/three"),
                       ("/strip-prefix", "/")]:
        expect(e, at(V1, path=path, expected_request={"path": want}))
    mod = {"X-Header-Set": "set-overwrites-values", "X-Header-Add": "header-val-1"}
    expect(e, at(V1, path="/full/rewrite-path-and-modify-headers/test",
                 headers={"X-Header-Remove": "remove-val"},
                 expected_request={"path": "/test", "headers": mod,
                                   "absent_headers": ["X-Header-Remove"]}))
    expect(e, at(V1, path="/prefix/rewrite-path-and-modify-headers/one",
                 headers={"X-Header-Remove": "remove-val"},
                 expected_request={"path": "/prefix/one", "headers": mod,
                                   "absent_headers": ["X-Header-Remove"]}))


def respmod(**kw):
    return [{"type": "ResponseHeaderModifier", "responseHeaderModifier": kw}]


@case("HTTPRouteResponseHeaderModifier",
      features=("Gateway", "HTTPRoute", "HTTPRouteResponseHeaderModification"),
      manifests=one("response-header-modifier", [
          rule(path="/set", filters=respmod(set=[{"name": "X-Header-Set",
                                                  "value": "set-overwrites-values"}])),
          rule(path="/add", filters=respmod(add=[{"name": "X-Header-Add",
                                                  "value": "add-appends-values"}])),
          rule(path="/remove", filters=respmod(remove=["X-Header-Remove"])),
          rule(path="/multiple", filters=respmod(
              set=[{"name": "X-Header-Set-1", "value": "header-set-1"},
                   {"name": "X-Header-Set-2", "value": "header-set-2"}],
              add=[{"name": "X-Header-Add-1", "value": "header-add-1"},
                   {"name": "X-Header-Add-2", "value": "header-add-2"},
                   {"name": "X-Header-Add-3", "value": "header-add-3"}],
              remove=["X-Header-Remove-1", "X-Header-Remove-2"])),
          rule(path="/case-insensitivity", filters=respmod(
              set=[{"name": "X-Header-Set", "value": "header-set"}],
              add=[{"name": "X-Header-Add", "value": "header-add"}],
              remove=["X-Header-Remove"]))]))
def response_header_modifier(e):
    ok("response-header-modifier")(e)
    expect(e, at(V1, path="/set", backend_set_response_headers={"Some-Other-Header": "val"},
                 response_headers={"Some-Other-Header": "val",
                                   "X-Header-Set": "set-overwrites-values"}))
    expect(e, at(V1, path="/set", backend_set_response_headers={
        "Some-Other-Header": "val", "X-Header-Set": "some-other-value"},
        response_headers={"Some-Other-Header": "val", "X-Header-Set": "set-overwrites-values"}))
    expect(e, at(V1, path="/add", backend_set_response_headers={"Some-Other-Header": "val"},
                 response_headers={"Some-Other-Header": "val",
                                   "X-Header-Add": "add-appends-values"}))
    expect(e, at(V1, path="/add", backend_set_response_headers={
        "Some-Other-Header": "val", "X-Header-Add": "some-other-value"},
        response_headers={"Some-Other-Header": "val",
                          "X-Header-Add": "some-other-value,add-appends-values"}))
    expect(e, at(V1, path="/remove", backend_set_response_headers={"X-Header-Remove": "val"},
                 absent_response_headers=["X-Header-Remove"]))
    expect(e, at(V1, path="/multiple", backend_set_response_headers={
        "X-Header-Set-2": "set-val-2", "X-Header-Add-2": "add-val-2",
        "X-Header-Remove-2": "remove-val-2", "Another-Header": "another-header-val"},
        response_headers={"X-Header-Set-1": "header-set-1", "X-Header-Set-2": "header-set-2",
                          "X-Header-Add-1": "header-add-1",
                          "X-Header-Add-2": "add-val-2,header-add-2",
                          "X-Header-Add-3": "header-add-3",
                          "Another-Header": "another-header-val"},
        absent_response_headers=["X-Header-Remove-1", "X-Header-Remove-2"]))
    expect(e, at(V1, path="/case-insensitivity", backend_set_response_headers={
        "x-header-set": "original-val-set", "x-header-add": "original-val-add",
        "x-header-remove": "original-val-remove", "Another-Header": "another-header-val"},
        response_headers={"X-Header-Set": "header-set",
                          "X-Header-Add": "original-val-add,header-add",
                          "Another-Header": "another-header-val"},
        absent_response_headers=["x-header-remove", "X-Header-Remove"]))


def mirror(be, **kw):
    return [{"type": "RequestMirror", "requestMirror": dict({"backendRef": backend(be)}, **kw)}]


def _mirrored_to(e, pods, path, before):
    """Every pod in pods eventually logged a copy of a request for path (after offset before)."""
    def seen():
        got = {r["pod"] for r in e.echo_requests(before) if r["path"] == path}
        return all(any(g.startswith(p) for g in got) for p in pods)
    poll(seen, STATUS_S, "mirrored copies of %s at %s" % (path, ", ".join(pods)))


@case("HTTPRouteRequestMirror", features=("Gateway", "HTTPRoute", "HTTPRouteRequestMirror"),
      manifests=one("request-mirror", [rule(path="/mirror", filters=mirror(V2))]))
def request_mirror(e):
    ok("request-mirror")(e)
    before = e.echo_log_size()
    expect(e, at(V1, path="/mirror"))
    _mirrored_to(e, [V2], "/mirror", before)


@case("HTTPRouteRequestMultipleMirrors",
      features=("Gateway", "HTTPRoute", "HTTPRouteRequestMirror",
                "HTTPRouteRequestMultipleMirrors"),
      manifests=one("request-multiple-mirrors", [rule(path="/multi-mirror",
                                                      filters=mirror(V2) + mirror(V3))]))
def multiple_mirrors(e):
    ok("request-multiple-mirrors")(e)
    before = e.echo_log_size()
    expect(e, at(V1, path="/multi-mirror"))
    _mirrored_to(e, [V2, V3], "/multi-mirror", before)


@case("HTTPRouteRequestPercentageMirror",
      features=("Gateway", "HTTPRoute", "HTTPRouteRequestMirror",
                "HTTPRouteRequestPercentageMirror"),
      manifests=one("request-percentage-mirror", [
          rule(path="/percent-mirror", filters=mirror(V2, percent=20)),
          rule(path="/percent-mirror-fraction", filters=mirror(
              V2, fraction={"numerator": 25, "denominator": 50})),
          rule(path="/percent-mirror-and-modify-headers", filters=mirror(V2, percent=35) + [{
              "type": "RequestHeaderModifier", "requestHeaderModifier": {
                  "set": [{"name": "X-Header-Set", "value": "set-overwrites-values"}]}}])]))
def percentage_mirror(e):
    """About the given share of requests is mirrored (upstream allows a wide tolerance)."""
    ok("request-percentage-mirror")(e)
    for path, want in [("/percent-mirror", 0.20), ("/percent-mirror-fraction", 0.50),
                       ("/percent-mirror-and-modify-headers", 0.35)]:
        expect(e, at(V1, path=path))
        before = e.echo_log_size()
        for _ in range(200):
            status, _, _ = e.http("127.0.0.1", path)
            if status != 200:
                raise Failure("%s answered %d" % (path, status))
        # the mirrors are fire-and-forget: wait until the count has not moved for 1.5 s (a
        # loaded machine delays copies; they are never waited for)
        counts, since = [], [time.monotonic()]

        def settled():
            n = sum(1 for r in e.echo_requests(before)
                    if r["path"] == path and r["pod"].startswith(V2))
            if counts and n != counts[-1]:
                since[0] = time.monotonic()
            counts.append(n)
            return len(counts) > 5 and time.monotonic() - since[0] >= 1.5
        poll(settled, STATUS_S, "mirrored copies of %s to settle" % path)
        share = counts[-1] / 200.0
        if abs(share - want) > 0.1:
            raise Failure("%s mirrored %.0f%%, want about %.0f%%" % (path, share * 100,
                                                                     want * 100))


@case("HTTPRouteRequestTimeout",
      features=("Gateway", "HTTPRoute", "HTTPRouteRequestTimeout"), manifests=one(
          "request-timeout", [dict(rule(path="/request-timeout"), timeouts={"request": "500ms"}),
                              rule(path="/disable-request-timeout")]))
def request_timeout(e):
    ok("request-timeout")(e)
    expect(e, {"path": "/request-timeout?delay=1s", "status": 504})
    expect(e, at(V1, path="/disable-request-timeout?delay=1s"))


@case("HTTPRouteBackendRequestTimeout",
      features=("Gateway", "HTTPRoute", "HTTPRouteBackendTimeout"), manifests=one(
          "backend-request-timeout", [dict(rule(path="/backend-timeout"),
                                           timeouts={"request": "3s", "backendRequest": "500ms"}),
                                      rule(path="/no-timeout")]))
def backend_timeout(e):
    ok("backend-request-timeout")(e)
    expect(e, {"path": "/backend-timeout?delay=1s", "status": 504})
    expect(e, at(V1, path="/no-timeout?delay=1s"))


SECTION_PORT_GW = INFRA + "/gw-with-one-section-name-not-matching-port-route"


@case("HTTPRouteInvalidParentRefSectionNameNotMatchingPort",
      features=("Gateway", "HTTPRoute", "HTTPRouteParentRefPort"), manifests="""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw-with-one-section-name-not-matching-port-route
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes:
      kinds: [{kind: HTTPRoute}]
      namespaces: {from: All}
---
""" + route("httproute-listener-section-name-not-matching-port",
            {"parentRefs": [{"name": "gw-with-one-section-name-not-matching-port-route",
                             "namespace": INFRA, "sectionName": "http", "port": 81}],
             "rules": [{"backendRefs": [dict(backend("infra-backend-v1"), kind="Service")]}]}))
def section_name_not_matching_port(e):
    """The listener named by sectionName is on 80, the parentRef asks for 81: no match."""
    name = "httproute-listener-section-name-not-matching-port"
    route_condition(e, "HTTPRoute", INFRA, name, SECTION_PORT_GW, "Accepted", "False",
                    "NoMatchingParent", section="http")
    for p in (e.status("HTTPRoute", INFRA, name) or {}).get("parents", []):
        c = checks.cond(p.get("conditions"), "Accepted")
        if c and c["status"] == "True":
            raise Failure("parent %s accepted the route" % p["parentRef"])
    listener(e, SECTION_PORT_GW, "http", attached=0)
