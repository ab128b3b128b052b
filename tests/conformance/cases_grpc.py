"""Core GRPCRoute cases, ported from upstream's conformance/tests/grpcroute-*.{yaml,go}
(kubernetes-sigs/gateway-api, Apache-2.0). The backends are grpc_echo_backend (who
served the call and what reached it); calls are unary with an empty request message."""
import yaml

from cases import case
from checks import expect_grpc, resolved_refs, routes_accepted
from harness import INFRA

SAME = INFRA + "/same-namespace"
SVC = "/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho/"
G = ("Gateway", "GRPCRoute")


def groute(name, spec):
    return yaml.safe_dump({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
                           "metadata": {"name": name, "namespace": INFRA},
                           "spec": spec}) + "---\n"


def gbackend(name):
    return [{"name": name, "port": 8080}]


def method(svc, m):
    return {"method": {"type": "Exact", "service": svc, "method": m}}


ECHO = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho"


@case("GRPCExactMethodMatching", profile="GATEWAY-GRPC", features=G, manifests=groute(
    "exact-matching", {"parentRefs": [{"name": "same-namespace"}], "rules": [
        {"matches": [method(ECHO, "Echo")], "backendRefs": gbackend("grpc-infra-backend-v1")},
        {"matches": [method(ECHO, "EchoTwo")], "backendRefs": gbackend("grpc-infra-backend-v2")},
    ]}))
def exact_method(e):
    routes_accepted(e, SAME, [INFRA + "/exact-matching"], kind="GRPCRoute")
    expect_grpc(e, "127.0.0.1", SVC + "Echo", backend="grpc-infra-backend-v1", ns=INFRA)
    expect_grpc(e, "127.0.0.1", SVC + "EchoTwo", backend="grpc-infra-backend-v2", ns=INFRA)
    # no rule: the proxy answers as gRPC (HTTP 404 maps to UNIMPLEMENTED)
    expect_grpc(e, "127.0.0.1", SVC + "EchoThree", grpc_status=12)


@case("GRPCRouteHeaderMatching", profile="GATEWAY-GRPC", features=G, manifests=groute(
    "grpc-header-matching", {"parentRefs": [{"name": "same-namespace"}], "rules": [
        {"matches": [{"headers": [{"name": "version", "value": "one"}]}],
         "backendRefs": gbackend("grpc-infra-backend-v1")},
        {"matches": [{"headers": [{"name": "version", "value": "two"}]}],
         "backendRefs": gbackend("grpc-infra-backend-v2")},
        {"matches": [{"headers": [{"name": "version", "value": "two"},
                                  {"name": "color", "value": "orange"}]}],
         "backendRefs": gbackend("grpc-infra-backend-v1")},
        {"matches": [{"headers": [{"name": "color", "value": "blue"}]},
                     {"headers": [{"name": "color", "value": "green"}]}],
         "backendRefs": gbackend("grpc-infra-backend-v1")},
        {"matches": [{"headers": [{"name": "color", "value": "red"}]},
                     {"headers": [{"name": "color", "value": "yellow"}]}],
         "backendRefs": gbackend("grpc-infra-backend-v2")},
    ]}))
def header_matching(e):
    routes_accepted(e, SAME, [INFRA + "/grpc-header-matching"], kind="GRPCRoute")
    resolved_refs(e, SAME, INFRA + "/grpc-header-matching", kind="GRPCRoute")
    v1, v2 = "grpc-infra-backend-v1", "grpc-infra-backend-v2"
    for md, be in [({"version": "one"}, v1), ({"version": "two"}, v2),
                   ({"version": "two", "color": "orange"}, v1),
                   ({"version": "two", "color": "blue"}, v2), ({"color": "blue"}, v1),
                   ({"color": "green"}, v1), ({"color": "red"}, v2), ({"color": "yellow"}, v2)]:
        expect_grpc(e, "127.0.0.1", SVC + "Echo", backend=be, metadata=md)
    for md in ({"color": "orange"}, {"some-other-header": "one"}, {"color": "purple"}):
        expect_grpc(e, "127.0.0.1", SVC + "Echo", metadata=md, grpc_status=12)


GW = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: grpcroute-listener-hostname-matching
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
    return groute(name, {"parentRefs": [{"name": "grpcroute-listener-hostname-matching",
                                         "sectionName": s} for s in sections],
                         "rules": [{"backendRefs": gbackend(be)}]})


@case("GRPCRouteListenerHostnameMatching", profile="GATEWAY-GRPC", features=G, manifests=GW +
      _lroute("backend-v1", ["listener-1"], "grpc-infra-backend-v1") +
      _lroute("backend-v2", ["listener-2"], "grpc-infra-backend-v2") +
      _lroute("backend-v3", ["listener-3", "listener-4"], "grpc-infra-backend-v3"))
def listener_hostname(e):
    gw = INFRA + "/grpcroute-listener-hostname-matching"
    routes_accepted(e, gw, [INFRA + "/backend-v1", INFRA + "/backend-v2", INFRA + "/backend-v3"],
                    kind="GRPCRoute")
    expect_grpc(e, "bar.com", SVC + "Echo", backend="grpc-infra-backend-v1")
    expect_grpc(e, "foo.bar.com", SVC + "Echo", backend="grpc-infra-backend-v2")
    for h in ("baz.bar.com", "boo.bar.com", "multiple.prefixes.bar.com",
              "multiple.prefixes.foo.com"):
        expect_grpc(e, h, SVC + "Echo", backend="grpc-infra-backend-v3")
    for h in ("foo.com", "no.matching.host"):
        expect_grpc(e, h, SVC + "Echo", grpc_status=12)


@case("GRPCRouteRequestHeaderModifier", profile="GATEWAY-GRPC", features=G, manifests=groute(
    "grpc-request-header-modifier", {"parentRefs": [{"name": "same-namespace"}], "rules": [{
        "matches": [method(ECHO, "Echo")],
        "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
            "set": [{"name": "X-Header-Set", "value": "set-overwrites-values"}],
            "add": [{"name": "X-Header-Add", "value": "header-val-1"}],
            "remove": ["X-Header-Remove"]}}],
        "backendRefs": gbackend("grpc-infra-backend-v1")}]}))
def grpc_header_modifier(e):
    routes_accepted(e, SAME, [INFRA + "/grpc-request-header-modifier"], kind="GRPCRoute")
    echo = expect_grpc(e, "127.0.0.1", SVC + "Echo", backend="grpc-infra-backend-v1",
                       metadata={"X-Header-Set": "some-other-value", "X-Header-Remove": "val"})
    from harness import Failure
    hs = {k.lower(): ",".join(v) for k, v in echo["headers"].items()}
    if hs.get("x-header-set") != "set-overwrites-values" or \
            hs.get("x-header-add") != "header-val-1" or "x-header-remove" in hs:
        raise Failure("metadata at the backend: %s" % hs)


@case("GRPCRouteWeight", profile="GATEWAY-GRPC", features=G, manifests=groute(
    "weighted-backends", {"parentRefs": [{"name": "same-namespace"}], "rules": [{
        "backendRefs": [{"name": "grpc-infra-backend-v1", "port": 8080, "weight": 70},
                        {"name": "grpc-infra-backend-v2", "port": 8080, "weight": 30},
                        {"name": "grpc-infra-backend-v3", "port": 8080, "weight": 0}]}]}))
def grpc_weight(e):
    from harness import Failure
    routes_accepted(e, SAME, [INFRA + "/weighted-backends"], kind="GRPCRoute")
    expect_grpc(e, "127.0.0.1", SVC + "Echo", backend="grpc-infra-backend")
    want = {"grpc-infra-backend-v1": 0.7, "grpc-infra-backend-v2": 0.3,
            "grpc-infra-backend-v3": 0.0}
    why = ""
    for _ in range(5):
        seen = {}
        for _ in range(200):
            st, gs, echo = e.grpc("127.0.0.1", SVC + "Echo")
            if st != 200 or gs != 0 or not echo:
                raise Failure("a call got HTTP %s grpc-status %s" % (st, gs))
            key = next((b for b in want if echo["pod"].startswith(b)), echo["pod"])
            seen[key] = seen.get(key, 0) + 1
        if all(abs(seen.get(b, 0) / 200.0 - w) <= 0.1 for b, w in want.items()):
            return
        why = str(seen)
    raise Failure("weighted distribution never within 10 points: " + why)


@case("GRPCRouteAllBackendsWeightZero", profile="GATEWAY-GRPC", features=G, manifests=groute(
    "all-backends-weight-zero", {"parentRefs": [{"name": "same-namespace"}], "rules": [
        {"backendRefs": [dict(gbackend("grpc-infra-backend-v1")[0], weight=0),
                         dict(gbackend("grpc-infra-backend-v2")[0], weight=0)]}]}))
def all_weights_zero(e):
    """Every backend weighted 0: the call fails as gRPC, UNAVAILABLE (14), never served."""
    routes_accepted(e, SAME, [INFRA + "/all-backends-weight-zero"], kind="GRPCRoute")
    expect_grpc(e, "127.0.0.1", SVC + "Echo", grpc_status=14)
