"""Core HTTPRoute cases, ported from upstream's conformance/tests/httproute-*.{yaml,go}
(kubernetes-sigs/gateway-api, Apache-2.0): same manifests, same expectations."""
import copy

import yaml

from cases import case
from checks import (expect, gateway_programmed, listener, resolved_refs, route_condition,
                    routes_accepted)
from harness import APP, INFRA, WEB, Failure

SAME = INFRA + "/same-namespace"


def route(name, spec, ns=INFRA, kind="HTTPRoute", api="gateway.networking.k8s.io/v1"):
    return yaml.safe_dump({"apiVersion": api, "kind": kind,
                           "metadata": {"name": name, "namespace": ns}, "spec": spec}) + "---\n"


def backend(name, port=8080, ns=None, weight=None):
    b = {"name": name, "port": port}
    if ns:
        b["namespace"] = ns
    if weight is not None:
        b["weight"] = weight
    return b


@case("HTTPRouteSimpleSameNamespace", manifests=route(
    "gateway-conformance-infra-test",
    {"parentRefs": [{"name": "same-namespace"}],
     "rules": [{"backendRefs": [backend("infra-backend-v1")]}]}))
def simple_same_namespace(e):
    routes_accepted(e, SAME, [INFRA + "/gateway-conformance-infra-test"])
    expect(e, {"path": "/", "backend": "infra-backend-v1", "namespace": INFRA})


@case("HTTPRouteCrossNamespace", manifests=route(
    "cross-namespace",
    {"parentRefs": [{"name": "backend-namespaces", "namespace": INFRA}],
     "rules": [{"backendRefs": [backend("web-backend")]}]}, ns=WEB))
def cross_namespace(e):
    routes_accepted(e, INFRA + "/backend-namespaces", [WEB + "/cross-namespace"])
    expect(e, {"path": "/", "backend": "web-backend", "namespace": WEB})


@case("HTTPRouteExactPathMatching", manifests=route(
    "exact-matching",
    {"parentRefs": [{"name": "same-namespace"}],
     "rules": [{"matches": [{"path": {"type": "Exact", "value": "/one"}}],
                "backendRefs": [backend("infra-backend-v1")]},
               {"matches": [{"path": {"type": "Exact", "value": "/two"}}],
                "backendRefs": [backend("infra-backend-v2")]}]}))
def exact_path(e):
    routes_accepted(e, SAME, [INFRA + "/exact-matching"])
    expect(e, {"path": "/one", "backend": "infra-backend-v1", "namespace": INFRA})
    expect(e, {"path": "/two", "backend": "infra-backend-v2", "namespace": INFRA})
    for p in ("/", "/one/example", "/two/"):
        expect(e, {"path": p, "status": 404})


@case("HTTPRouteMatching", manifests=route(
    "matching",
    {"parentRefs": [{"name": "same-namespace"}],
     "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}},
                            {"headers": [{"name": "version", "value": "one"}]}],
                "backendRefs": [backend("infra-backend-v1")]},
               {"matches": [{"path": {"type": "PathPrefix", "value": "/v2"}},
                            {"headers": [{"name": "version", "value": "two"}]}],
                "backendRefs": [backend("infra-backend-v2")]}]}))
def matching(e):
    routes_accepted(e, SAME, [INFRA + "/matching"])
    v1 = {"backend": "infra-backend-v1", "namespace": INFRA}
    v2 = {"backend": "infra-backend-v2", "namespace": INFRA}
    expect(e, dict(v1, path="/"))
    expect(e, dict(v1, path="/example"))
    expect(e, dict(v1, path="/", headers={"Version": "one"}))
    expect(e, dict(v2, path="/v2"))
    expect(e, dict(v2, path="/v2/example"))
    expect(e, dict(v2, path="/", headers={"Version": "two"}))


@case("HTTPRouteMatchingAcrossRoutes", manifests=route(
    "matching-part1",
    {"parentRefs": [{"name": "same-namespace"}], "hostnames": ["example.com", "example.net"],
     "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}},
                            {"headers": [{"name": "version", "value": "one"}]}],
                "backendRefs": [backend("infra-backend-v1")]}]}) + route(
    "matching-part2",
    {"parentRefs": [{"name": "same-namespace"}], "hostnames": ["*.com"],
     "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/v2"}},
                            {"headers": [{"name": "version", "value": "two"}]}],
                "backendRefs": [backend("infra-backend-v2")]}]}))
def matching_across_routes(e):
    routes_accepted(e, SAME, [INFRA + "/matching-part1", INFRA + "/matching-part2"])
    resolved_refs(e, SAME, INFRA + "/matching-part1")
    v1 = {"backend": "infra-backend-v1", "namespace": INFRA}
    v2 = {"backend": "infra-backend-v2", "namespace": INFRA}
    expect(e, dict(v1, host="example.com", path="/"))
    expect(e, dict(v1, host="example.com", path="/example"))
    expect(e, dict(v1, host="example.net", path="/example"))
    expect(e, dict(v1, host="example.com", path="/example", headers={"Version": "one"}))
    expect(e, dict(v2, host="example.com", path="/v2"))
    expect(e, dict(v1, host="example.net", path="/v2"))
    expect(e, dict(v2, host="example.com", path="/v2/example"))
    expect(e, dict(v2, host="example.com", path="/", headers={"Version": "two"}))


@case("HTTPRouteHeaderMatching", manifests=route(
    "header-matching",
    {"parentRefs": [{"name": "same-namespace"}],
     "rules": [{"matches": [{"headers": [{"name": "version", "value": "one"}]}],
                "backendRefs": [backend("infra-backend-v1")]},
               {"matches": [{"headers": [{"name": "version", "value": "two"}]}],
                "backendRefs": [backend("infra-backend-v2")]},
               {"matches": [{"headers": [{"name": "version", "value": "two"},
                                         {"name": "color", "value": "orange"}]}],
                "backendRefs": [backend("infra-backend-v1")]},
               {"matches": [{"headers": [{"name": "color", "value": "blue"}]},
                            {"headers": [{"name": "color", "value": "green"}]}],
                "backendRefs": [backend("infra-backend-v1")]},
               {"matches": [{"headers": [{"name": "color", "value": "red"}]},
                            {"headers": [{"name": "color", "value": "yellow"}]}],
                "backendRefs": [backend("infra-backend-v2")]}]}))
def header_matching(e):
    routes_accepted(e, SAME, [INFRA + "/header-matching"])
    resolved_refs(e, SAME, INFRA + "/header-matching")
    v1 = {"backend": "infra-backend-v1", "namespace": INFRA, "path": "/"}
    v2 = {"backend": "infra-backend-v2", "namespace": INFRA, "path": "/"}
    expect(e, dict(v1, headers={"Version": "one"}))
    expect(e, dict(v2, headers={"Version": "two"}))
    expect(e, dict(v1, headers={"Version": "two", "Color": "orange"}))
    expect(e, dict(v2, headers={"Version": "two", "Color": "blue"}))
    expect(e, {"path": "/", "headers": {"Color": "orange"}, "status": 404})
    expect(e, {"path": "/", "headers": {"Some-Other-Header": "one"}, "status": 404})
    expect(e, dict(v1, headers={"Color": "blue"}))
    expect(e, dict(v1, headers={"Color": "green"}))
    expect(e, dict(v2, headers={"Color": "red"}))
    expect(e, dict(v2, headers={"Color": "yellow"}))
    expect(e, {"path": "/", "headers": {"Color": "purple"}, "status": 404})


HOSTNAME_GW = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: httproute-hostname-intersection
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - {name: listener-1, hostname: very.specific.com, port: 80, protocol: HTTP,
     allowedRoutes: {namespaces: {from: Same}}}
  - {name: listener-2, hostname: "*.wildcard.io", port: 80, protocol: HTTP,
     allowedRoutes: {namespaces: {from: Same}}}
  - {name: listener-3, hostname: "*.anotherwildcard.io", port: 80, protocol: HTTP,
     allowedRoutes: {namespaces: {from: Same}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: httproute-hostname-intersection-all
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - {name: listener-1, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Same}}}
---
"""


def _hroute(name, gw, hostnames, path, be):
    return route(name, {"parentRefs": [{"name": gw}], "hostnames": hostnames,
                        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": path}}],
                                   "backendRefs": [backend(be)]}]})


@case("HTTPRouteHostnameIntersection", manifests=HOSTNAME_GW + "".join([
    _hroute("specific-host-matches-listener-specific-host", "httproute-hostname-intersection",
            ["non.matching.com", "*.nonmatchingwildcard.io", "very.specific.com"], "/s1",
            "infra-backend-v1"),
    _hroute("specific-host-matches-listener-wildcard-host", "httproute-hostname-intersection",
            ["non.matching.com", "wildcard.io", "foo.wildcard.io", "bar.wildcard.io",
             "foo.bar.wildcard.io"], "/s2", "infra-backend-v2"),
    _hroute("wildcard-host-matches-listener-specific-host", "httproute-hostname-intersection",
            ["non.matching.com", "*.specific.com"], "/s3", "infra-backend-v3"),
    _hroute("wildcard-host-matches-listener-wildcard-host", "httproute-hostname-intersection",
            ["*.anotherwildcard.io"], "/s4", "infra-backend-v1"),
    _hroute("no-intersecting-hosts", "httproute-hostname-intersection",
            ["specific.but.wrong.com", "wildcard.io"], "/s5", "infra-backend-v2"),
    _hroute("httproute-hostname-intersection-all", "httproute-hostname-intersection-all",
            ["first.com", "*.first.com", "second.com", "*.second.com"], "/", "infra-backend-v2"),
]))
def hostname_intersection(e):
    gw = INFRA + "/httproute-hostname-intersection"
    routes_accepted(e, gw, [INFRA + "/" + n for n in (
        "specific-host-matches-listener-specific-host",
        "specific-host-matches-listener-wildcard-host",
        "wildcard-host-matches-listener-specific-host",
        "wildcard-host-matches-listener-wildcard-host")])
    ns = {"namespace": INFRA}
    for host, path, be in [("very.specific.com", "/s1", "infra-backend-v1"),
                           ("very.specific.com:1234", "/s1", "infra-backend-v1"),
                           ("foo.wildcard.io", "/s2", "infra-backend-v2"),
                           ("bar.wildcard.io", "/s2", "infra-backend-v2"),
                           ("foo.bar.wildcard.io", "/s2", "infra-backend-v2"),
                           ("very.specific.com", "/s3", "infra-backend-v3"),
                           ("foo.anotherwildcard.io", "/s4", "infra-backend-v1"),
                           ("bar.anotherwildcard.io", "/s4", "infra-backend-v1"),
                           ("foo.bar.anotherwildcard.io", "/s4", "infra-backend-v1")]:
        expect(e, dict(ns, host=host, path=path, backend=be))
    for host, path in [("non.matching.com", "/s1"), ("foo.nonmatchingwildcard.io", "/s1"),
                       ("foo.wildcard.io", "/s1"), ("very.specific.com", "/non-matching-prefix"),
                       ("non.matching.com", "/s2"), ("wildcard.io", "/s2"),
                       ("very.specific.com", "/s2"), ("non.matching.com", "/s3"),
                       ("foo.specific.com", "/s3"), ("foo.wildcard.io", "/s3"),
                       ("anotherwildcard.io", "/s4"), ("foo.wildcard.io", "/s4"),
                       ("very.specific.com", "/s4"), ("specific.but.wrong.com", "/s5"),
                       ("wildcard.io", "/s5")]:
        expect(e, {"host": host, "path": path, "status": 404})
    route_condition(e, "HTTPRoute", INFRA, "no-intersecting-hosts", gw, "Accepted", "False",
                    "NoMatchingListenerHostname")
    listener(e, gw, "listener-1", 2, {"Accepted": ("True", None), "ResolvedRefs": ("True", None)})
    listener(e, gw, "listener-2", 1)
    listener(e, gw, "listener-3", 1)
    allgw = INFRA + "/httproute-hostname-intersection-all"
    routes_accepted(e, allgw, [INFRA + "/httproute-hostname-intersection-all"])
    for host in ("first.com", "sub.first.com", "second.com", "sub.second.com"):
        expect(e, dict(ns, host=host, path="/", backend="infra-backend-v2"))
    for host in ("third.com", "sub.third.com"):
        expect(e, {"host": host, "path": "/", "status": 404})


LISTENER_GW = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: httproute-listener-hostname-matching
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - {name: listener-1, port: 80, protocol: HTTP, hostname: bar.com}
  - {name: listener-2, port: 80, protocol: HTTP, hostname: foo.bar.com}
  - {name: listener-3, port: 80, protocol: HTTP, hostname: "*.bar.com"}
  - {name: listener-4, port: 80, protocol: HTTP, hostname: "*.foo.com"}
---
"""


def _lroute(name, sections, be):
    return route(name, {"parentRefs": [{"name": "httproute-listener-hostname-matching",
                                        "sectionName": s} for s in sections],
                        "rules": [{"backendRefs": [backend(be)]}]})


@case("HTTPRouteListenerHostnameMatching", manifests=LISTENER_GW +
      _lroute("backend-v1", ["listener-1"], "infra-backend-v1") +
      _lroute("backend-v2", ["listener-2"], "infra-backend-v2") +
      _lroute("backend-v3", ["listener-3", "listener-4"], "infra-backend-v3"))
def listener_hostname_matching(e):
    gw = INFRA + "/httproute-listener-hostname-matching"
    routes_accepted(e, gw, [INFRA + "/backend-v1", INFRA + "/backend-v2", INFRA + "/backend-v3"])
    ns = {"namespace": INFRA, "path": "/"}
    expect(e, dict(ns, host="bar.com", backend="infra-backend-v1"))
    expect(e, dict(ns, host="foo.bar.com", backend="infra-backend-v2"))
    for h in ("baz.bar.com", "boo.bar.com", "multiple.prefixes.bar.com",
              "multiple.prefixes.foo.com"):
        expect(e, dict(ns, host=h, backend="infra-backend-v3"))
    for h in ("foo.com", "no.matching.host"):
        expect(e, {"host": h, "path": "/", "status": 404})


@case("HTTPRouteInvalidNonExistentBackendRef", manifests=route(
    "invalid-nonexistent-backend-ref",
    {"parentRefs": [{"name": "same-namespace"}],
     "rules": [{"backendRefs": [backend("nonexistent-backend")]}]}))
def invalid_nonexistent_backend(e):
    r = INFRA + "/invalid-nonexistent-backend-ref"
    routes_accepted(e, SAME, [r])
    resolved_refs(e, SAME, r, status="False", reason="BackendNotFound")
    expect(e, {"path": "/", "status": 500})


@case("HTTPRouteInvalidBackendRefUnknownKind", manifests=route(
    "invalid-backend-ref-unknown-kind",
    {"parentRefs": [{"name": "same-namespace"}],
     "rules": [{"backendRefs": [{"group": "unknownkind.example.com", "kind": "NonExistent",
                                 "name": "infra-backend-v1", "port": 8080}]}]}))
def invalid_unknown_kind(e):
    r = INFRA + "/invalid-backend-ref-unknown-kind"
    routes_accepted(e, SAME, [r])
    resolved_refs(e, SAME, r, status="False", reason="InvalidKind")
    expect(e, {"path": "/", "status": 500})


@case("HTTPRouteInvalidCrossNamespaceBackendRef", manifests=route(
    "invalid-cross-namespace-backend-ref",
    {"parentRefs": [{"name": "same-namespace"}],
     "rules": [{"backendRefs": [backend("web-backend", ns=WEB)]}]}))
def invalid_cross_ns_backend(e):
    r = INFRA + "/invalid-cross-namespace-backend-ref"
    routes_accepted(e, SAME, [r])
    resolved_refs(e, SAME, r, status="False", reason="RefNotPermitted")
    expect(e, {"path": "/", "status": 500})


@case("HTTPRouteInvalidCrossNamespaceParentRef", manifests=route(
    "invalid-cross-namespace-parent-ref",
    {"parentRefs": [{"name": "same-namespace", "namespace": INFRA}],
     "rules": [{"backendRefs": [backend("web-backend")]}]}, ns=WEB))
def invalid_cross_ns_parent(e):
    route_condition(e, "HTTPRoute", WEB, "invalid-cross-namespace-parent-ref", SAME, "Accepted",
                    "False", "NotAllowedByListeners")
    expect(e, {"path": "/", "status": 404})


@case("HTTPRouteInvalidParentRefNotMatchingSectionName", manifests=route(
    "httproute-not-matching-section-name",
    {"parentRefs": [{"name": "same-namespace", "sectionName": "unknown-section"}],
     "rules": [{"backendRefs": [backend("infra-backend-v1")]}]}))
def not_matching_section(e):
    route_condition(e, "HTTPRoute", INFRA, "httproute-not-matching-section-name", SAME,
                    "Accepted", "False", "NoMatchingParent", section="unknown-section")


@case("HTTPRouteInvalidParentRefNotMatchingListenerPort",
      features=("Gateway", "HTTPRoute", "HTTPRouteParentRefPort"), manifests=route(
          "httproute-listener-not-matching-route-port",
          {"parentRefs": [{"name": "same-namespace", "port": 81}],
           "rules": [{"backendRefs": [backend("infra-backend-v1")]}]}))
def not_matching_port(e):
    import checks
    gw_ns, gw_name = SAME.split("/")

    def ok():
        st = e.status("HTTPRoute", INFRA, "httproute-listener-not-matching-route-port") or {}
        for p in st.get("parents", []):
            if p["parentRef"]["name"] == gw_name:
                c = checks.cond(p["conditions"], "Accepted")
                return c if c and c["status"] == "False" and c["reason"] == "NoMatchingParent" \
                    else None
        return None
    checks.poll(ok, checks.STATUS_S, "Accepted=False NoMatchingParent for port 81")


REFGRANT = """apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata:
  name: reference-grant
  namespace: gateway-conformance-web-backend
spec:
  from:
  - group: gateway.networking.k8s.io
    kind: HTTPRoute
    namespace: gateway-conformance-infra
  to:
  - group: ""
    kind: Service
    name: web-backend
---
"""


@case("HTTPRouteReferenceGrant", features=("Gateway", "HTTPRoute", "ReferenceGrant"),
      manifests=REFGRANT + route(
          "reference-grant",
          {"parentRefs": [{"name": "same-namespace"}],
           "rules": [{"backendRefs": [backend("web-backend", ns=WEB)]}]}))
def reference_grant(e):
    r = INFRA + "/reference-grant"
    routes_accepted(e, SAME, [r])
    resolved_refs(e, SAME, r)
    expect(e, {"path": "/", "backend": "web-backend", "namespace": WEB})


@case("HTTPRouteInvalidReferenceGrant", features=("Gateway", "HTTPRoute", "ReferenceGrant"),
      manifests=REFGRANT.replace("kind: HTTPRoute\n    namespace: gateway-conformance-infra",
                                 "kind: HTTPRoute\n    namespace: default") + route(
          "invalid-reference-grant",
          {"parentRefs": [{"name": "same-namespace"}],
           "rules": [{"backendRefs": [backend("web-backend", ns=WEB)]}]}))
def invalid_reference_grant(e):
    r = INFRA + "/invalid-reference-grant"
    routes_accepted(e, SAME, [r])
    resolved_refs(e, SAME, r, status="False", reason="RefNotPermitted")
    expect(e, {"path": "/", "status": 500})


@case("HTTPRoutePartiallyInvalidViaInvalidReferenceGrant",
      features=("Gateway", "HTTPRoute", "ReferenceGrant"), manifests=REFGRANT.replace(
          "name: web-backend", "name: not-the-service-for-this-route") + route(
          "invalid-reference-grant",
          {"parentRefs": [{"name": "same-namespace"}],
           "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}],
                      "backendRefs": [backend("web-backend", ns=WEB)]},
                     {"backendRefs": [backend("infra-backend-v1")]}]}))
def partially_invalid(e):
    r = INFRA + "/invalid-reference-grant"
    routes_accepted(e, SAME, [r])
    resolved_refs(e, SAME, r, status="False", reason="RefNotPermitted")
    expect(e, {"path": "/v2", "status": 500})
    expect(e, {"path": "/", "backend": "infra-backend-v1", "namespace": INFRA})


@case("HTTPRouteRequestHeaderModifier", manifests=route(
    "request-header-modifier",
    {"parentRefs": [{"name": "same-namespace"}],
     "rules": [
         {"matches": [{"path": {"type": "PathPrefix", "value": "/set"}}],
          "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
              "set": [{"name": "X-Header-Set", "value": "set-overwrites-values"}]}}],
          "backendRefs": [backend("infra-backend-v1")]},
         {"matches": [{"path": {"type": "PathPrefix", "value": "/add"}}],
          "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
              "add": [{"name": "X-Header-Add", "value": "add-appends-values"}]}}],
          "backendRefs": [backend("infra-backend-v1")]},
         {"matches": [{"path": {"type": "PathPrefix", "value": "/remove"}}],
          "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
              "remove": ["X-Header-Remove"]}}],
          "backendRefs": [backend("infra-backend-v1")]},
         {"matches": [{"path": {"type": "PathPrefix", "value": "/multiple"}}],
          "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
              "set": [{"name": "X-Header-Set-1", "value": "header-set-1"},
                      {"name": "X-Header-Set-2", "value": "header-set-2"}],
              "add": [{"name": "X-Header-Add-1", "value": "header-add-1"},
                      {"name": "X-Header-Add-2", "value": "header-add-2"},
                      {"name": "X-Header-Add-3", "value": "header-add-3"}],
              "remove": ["X-Header-Remove-1", "X-Header-Remove-2"]}}],
          "backendRefs": [backend("infra-backend-v1")]},
         {"matches": [{"path": {"type": "PathPrefix", "value": "/case-insensitivity"}}],
          "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
              "set": [{"name": "X-Header-Set", "value": "header-set"}],
              "add": [{"name": "X-Header-Add", "value": "header-add"}],
              "remove": ["X-Header-Remove"]}}],
          "backendRefs": [backend("infra-backend-v1")]}]}))
def request_header_modifier(e):
    r = INFRA + "/request-header-modifier"
    routes_accepted(e, SAME, [r])
    resolved_refs(e, SAME, r)
    v1 = {"backend": "infra-backend-v1", "namespace": INFRA}
    expect(e, dict(v1, path="/set", headers={"Some-Other-Header": "val"}, expected_request={
        "path": "/set", "headers": {"Some-Other-Header": "val",
                                    "X-Header-Set": "set-overwrites-values"}}))
    expect(e, dict(v1, path="/set", headers={"Some-Other-Header": "val",
                                             "X-Header-Set": "some-other-value"},
                   expected_request={"path": "/set", "headers": {
                       "Some-Other-Header": "val", "X-Header-Set": "set-overwrites-values"}}))
    expect(e, dict(v1, path="/add", headers={"Some-Other-Header": "val"}, expected_request={
        "path": "/add", "headers": {"Some-Other-Header": "val",
                                    "X-Header-Add": "add-appends-values"}}))
    expect(e, dict(v1, path="/add", headers={"Some-Other-Header": "val",
                                             "X-Header-Add": "some-other-value"},
                   expected_request={"path": "/add", "headers": {
                       "Some-Other-Header": "val",
                       "X-Header-Add": "some-other-value,add-appends-values"}}))
    expect(e, dict(v1, path="/remove", headers={"X-Header-Remove": "val"}, expected_request={
        "path": "/remove", "absent_headers": ["X-Header-Remove"]}))
    expect(e, dict(v1, path="/multiple", headers={
        "X-Header-Set-2": "set-val-2", "X-Header-Add-2": "add-val-2",
        "X-Header-Remove-2": "remove-val-2", "Another-Header": "another-header-val"},
        expected_request={"path": "/multiple", "headers": {
            "X-Header-Set-1": "header-set-1", "X-Header-Set-2": "header-set-2",
            "X-Header-Add-1": "header-add-1", "X-Header-Add-2": "add-val-2,header-add-2",
            "X-Header-Add-3": "header-add-3", "Another-Header": "another-header-val"},
            "absent_headers": ["X-Header-Remove-1", "X-Header-Remove-2"]}))
    expect(e, dict(v1, path="/case-insensitivity", headers={
        "x-header-set": "original-val-set", "x-header-add": "original-val-add",
        "x-header-remove": "original-val-remove", "Another-Header": "another-header-val"},
        expected_request={"path": "/case-insensitivity", "headers": {
            "X-Header-Set": "header-set", "X-Header-Add": "original-val-add,header-add",
            "Another-Header": "another-header-val"},
            "absent_headers": ["x-header-remove", "X-Header-Remove"]}))


@case("HTTPRouteWeight", manifests=route(
    "weighted-backends",
    {"parentRefs": [{"name": "same-namespace"}],
     "rules": [{"backendRefs": [backend("infra-backend-v1", weight=70),
                                backend("infra-backend-v2", weight=30),
                                backend("infra-backend-v3", weight=0)]}]}))
def weight(e):
    """Upstream: 500 requests, each backend within 5 points of its weight, up to 10 tries."""
    import json
    r = INFRA + "/weighted-backends"
    routes_accepted(e, SAME, [r])
    resolved_refs(e, SAME, r)
    expect(e, {"path": "/", "namespace": INFRA, "backend": ""})
    want = {"infra-backend-v1": 0.7, "infra-backend-v2": 0.3, "infra-backend-v3": 0.0}
    why = ""
    for _ in range(10):
        seen = {}
        for _ in range(500):
            status, _, body = e.http("127.0.0.1", "/")
            if status != 200:
                raise Failure("a request got %d" % status)
            pod = json.loads(body)["pod"]
            key = next((b for b in want if pod.startswith(b)), pod)
            seen[key] = seen.get(key, 0) + 1
        bad = [b for b, w in want.items() if abs(seen.get(b, 0) / 500.0 - w) > 0.05]
        if len(seen) == 2 and not bad:
            return
        why = "distribution %s" % seen
    raise Failure("weighted distribution never within 5 points: " + why)


@case("HTTPRouteHTTPSListener", manifests=route(
    "httproute-https-test",
    {"parentRefs": [{"name": "same-namespace-with-https-listener"}],
     "hostnames": ["example.org"], "rules": [{"backendRefs": [backend("infra-backend-v1")]}]}))
def https_listener(e):
    gw = INFRA + "/same-namespace-with-https-listener"
    routes_accepted(e, gw, [INFRA + "/httproute-https-test"])
    expect(e, {"host": "example.org", "path": "/", "backend": "infra-backend-v1",
               "namespace": INFRA}, https=True)
    expect(e, {"host": "unknown-example.org", "path": "/", "status": 404}, https=True)


@case("HTTPRouteDisallowedKind", features=("Gateway", "HTTPRoute", "TLSRoute"), manifests="""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: tlsroutes-only
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: tls
    port: 443
    protocol: TLS
    tls: {mode: Passthrough}
    allowedRoutes:
      namespaces: {from: Same}
      kinds: [{kind: TLSRoute}]
---
""" + route("disallowed-kind", {"parentRefs": [{"name": "tlsroutes-only"}],
                                 "hostnames": ["disallowed-kind.com"],
                                 "rules": [{"backendRefs": [backend("infra-backend-v1")]}]}))
def disallowed_kind(e):
    route_condition(e, "HTTPRoute", INFRA, "disallowed-kind", INFRA + "/tlsroutes-only",
                    "Accepted", "False", "NotAllowedByListeners")
    expect(e, {"host": "disallowed-kind.com", "path": "/", "status": 404})


@case("HTTPRouteObservedGenerationBump", manifests=route(
    "observed-generation-bump",
    {"parentRefs": [{"name": "same-namespace"}],
     "rules": [{"backendRefs": [backend("infra-backend-v1")]}]}))
def route_generation_bump(e):
    import checks
    r = "observed-generation-bump"
    first = route_condition(e, "HTTPRoute", INFRA, r, SAME, "Accepted")
    gen = first["observedGeneration"]
    e.apply(route(r, {"parentRefs": [{"name": "same-namespace"}],
                      "rules": [{"backendRefs": [backend("infra-backend-v2")]}]})
            .replace("  namespace:", "  generation: %d\n  namespace:" % (gen + 1)))

    def bumped():
        st = e.status("HTTPRoute", INFRA, r) or {}
        for p in st.get("parents", []):
            for c in p["conditions"]:
                if c["observedGeneration"] <= gen:
                    return None
            return True
        return None
    checks.poll(bumped, checks.STATUS_S, "observedGeneration above %d on every condition" % gen)


@case("HTTPRoutePathMatchOrder", manifests=route(
    "path-matching-order",
    {"parentRefs": [{"name": "same-namespace"}],
     "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/match"}}],
                "backendRefs": [backend("infra-backend-v3")]},
               {"matches": [{"path": {"type": "Exact", "value": "/match"}}],
                "backendRefs": [backend("infra-backend-v1")]},
               {"matches": [{"path": {"type": "PathPrefix", "value": "/match/prefix"}}],
                "backendRefs": [backend("infra-backend-v1")]},
               {"matches": [{"path": {"type": "Exact", "value": "/match/exact"}}],
                "backendRefs": [backend("infra-backend-v2")]},
               {"matches": [{"path": {"type": "PathPrefix", "value": "/match/prefix/one"}}],
                "backendRefs": [backend("infra-backend-v2")]},
               {"matches": [{"path": {"type": "Exact", "value": "/match/exact/one"}}],
                "backendRefs": [backend("infra-backend-v3")]}]}))
def path_match_order(e):
    routes_accepted(e, SAME, [INFRA + "/path-matching-order"])
    resolved_refs(e, SAME, INFRA + "/path-matching-order")
    for path, be in [("/match/exact/one", "infra-backend-v3"), ("/match/exact", "infra-backend-v2"),
                     ("/match", "infra-backend-v1"), ("/match/prefix/one/any", "infra-backend-v2"),
                     ("/match/prefix/any", "infra-backend-v1"), ("/match/any", "infra-backend-v3")]:
        expect(e, {"path": path, "backend": be, "namespace": INFRA})


@case("HTTPRouteAllBackendsWeightZero", manifests=route(
    "all-backends-weight-zero",
    {"parentRefs": [{"name": "same-namespace"}],
     "rules": [{"backendRefs": [backend("infra-backend-v1", weight=0),
                                backend("infra-backend-v2", weight=0)]}]}))
def all_weights_zero(e):
    routes_accepted(e, SAME, [INFRA + "/all-backends-weight-zero"])
    expect(e, {"path": "/", "status": 500})
