"""Core Gateway and GatewayClass cases, ported from upstream's
conformance/tests/gateway*.{yaml,go} (kubernetes-sigs/gateway-api, Apache-2.0)."""
import checks
from cases import case
from cases_http import backend, route
from checks import expect, gateway_condition, gateway_programmed, listener, routes_accepted
from harness import INFRA, WEB, Failure

GW = "gateway.networking.k8s.io/v1"


def gateway(name, listeners, ns=INFRA):
    import yaml
    return yaml.safe_dump({"apiVersion": GW, "kind": "Gateway",
                           "metadata": {"name": name, "namespace": ns},
                           "spec": {"gatewayClassName": "{GATEWAY_CLASS_NAME}",
                                    "listeners": listeners}}) + "---\n"


def http_listener(name="http", **kw):
    return dict({"name": name, "port": 80, "protocol": "HTTP"}, **kw)


def https_listener(secret, ns=None, name="https", **kw):
    ref = {"group": "", "kind": "Secret", "name": secret}
    if ns:
        ref["namespace"] = ns
    return dict({"name": name, "port": 443, "protocol": "HTTPS",
                 "tls": {"certificateRefs": [ref]}}, **kw)


@case("GatewayClassObservedGenerationBump", features=("Gateway",))
def class_generation(e):
    def accepted():
        st = e.status("GatewayClass", "", "edge") or {}
        c = checks.cond(st.get("conditions"), "Accepted")
        return c if c and c["status"] == "True" else None
    first = checks.poll(accepted, checks.STATUS_S, "GatewayClass edge Accepted")
    gen = first["observedGeneration"]
    e.apply({"apiVersion": GW, "kind": "GatewayClass",
             "metadata": {"name": "edge", "generation": gen + 1},
             "spec": {"controllerName": "edge.dev/gateway-controller",
                      "description": "bumped by the conformance runner"}}, keep=True)
    checks.poll(lambda: (accepted() or {}).get("observedGeneration", 0) > gen, checks.STATUS_S,
                "GatewayClass observedGeneration above %d" % gen)


@case("GatewayObservedGenerationBump", features=("Gateway",),
      manifests=gateway("gateway-observed-generation-bump", [http_listener()]))
def gateway_generation(e):
    gw = INFRA + "/gateway-observed-generation-bump"
    st = gateway_programmed(e, gw)
    gen = checks.cond(st["conditions"], "Programmed")["observedGeneration"]
    e.apply(gateway("gateway-observed-generation-bump",
                    [http_listener(), http_listener("http-2", hostname="second.example.com")])
            .replace("  namespace:", "  generation: %d\n  namespace:" % (gen + 1)))

    def bumped():
        s = e.status("Gateway", INFRA, "gateway-observed-generation-bump") or {}
        cs = s.get("conditions", []) + [c for l in s.get("listeners", [])
                                        for c in l["conditions"]]
        return cs and all(c["observedGeneration"] > gen for c in cs) and \
            len(s.get("listeners", [])) == 2
    checks.poll(bumped, checks.STATUS_S, "observedGeneration above %d everywhere" % gen)


@case("GatewayWithAttachedRoutes", features=("Gateway", "HTTPRoute"), manifests="".join([
    gateway("gateway-with-one-attached-route", [http_listener(
        allowedRoutes={"namespaces": {"from": "Same"}})]),
    gateway("gateway-with-two-attached-routes", [http_listener(
        allowedRoutes={"namespaces": {"from": "Same"}})]),
    route("http-route-1", {"parentRefs": [{"name": "gateway-with-one-attached-route"},
                                          {"name": "gateway-with-two-attached-routes"}],
                           "rules": [{"backendRefs": [backend("infra-backend-v1")]}]}),
    route("http-route-2", {"parentRefs": [{"name": "gateway-with-two-attached-routes"}],
                           "rules": [{"backendRefs": [backend("infra-backend-v1")]}]}),
]))
def attached_routes(e):
    listener(e, INFRA + "/gateway-with-one-attached-route", "http", 1,
             {"Accepted": ("True", None), "ResolvedRefs": ("True", None),
              "Programmed": ("True", None)})
    listener(e, INFRA + "/gateway-with-two-attached-routes", "http", 2)


@case("GatewayInvalidRouteKind", features=("Gateway",), manifests="".join([
    gateway("gateway-only-invalid-route-kind", [http_listener(
        allowedRoutes={"kinds": [{"kind": "InvalidRoute"}]})]),
    gateway("gateway-supported-and-invalid-route-kind", [http_listener(
        allowedRoutes={"kinds": [{"kind": "InvalidRoute"}, {"kind": "HTTPRoute"}]})]),
]))
def invalid_route_kind(e):
    l = listener(e, INFRA + "/gateway-only-invalid-route-kind", "http", 0,
                 {"ResolvedRefs": ("False", "InvalidRouteKinds")})
    if l.get("supportedKinds"):
        raise Failure("supportedKinds %s, want none" % l["supportedKinds"])
    l = listener(e, INFRA + "/gateway-supported-and-invalid-route-kind", "http", 0,
                 {"ResolvedRefs": ("False", "InvalidRouteKinds")})
    if [k["kind"] for k in l.get("supportedKinds", [])] != ["HTTPRoute"]:
        raise Failure("supportedKinds %s, want [HTTPRoute]" % l.get("supportedKinds"))


@case("GatewayInvalidTLSConfiguration", features=("Gateway",), manifests="".join([
    gateway("gateway-certificate-nonexistent-secret",
            [https_listener("nonexistent-certificate", hostname="secure.test.com")]),
    gateway("gateway-certificate-unsupported-group", [dict(
        https_listener("tls-validity-checks-certificate", hostname="secure.test.com"),
        tls={"certificateRefs": [{"group": "wrong.group.company.io", "kind": "Secret",
                                  "name": "tls-validity-checks-certificate"}]})]),
    gateway("gateway-certificate-unsupported-kind", [dict(
        https_listener("tls-validity-checks-certificate", hostname="secure.test.com"),
        tls={"certificateRefs": [{"group": "", "kind": "WrongKind",
                                  "name": "tls-validity-checks-certificate"}]})]),
    gateway("gateway-certificate-malformed-secret",
            [https_listener("malformed-certificate", hostname="secure.test.com")]),
    """apiVersion: v1
kind: Secret
metadata: {name: malformed-certificate, namespace: gateway-conformance-infra}
type: kubernetes.io/tls
data: {tls.crt: bm90IGEgY2VydGlmaWNhdGU=, tls.key: bm90IGEga2V5}
---
"""]))
def invalid_tls(e):
    for name in ("gateway-certificate-nonexistent-secret", "gateway-certificate-unsupported-group",
                 "gateway-certificate-unsupported-kind", "gateway-certificate-malformed-secret"):
        listener(e, INFRA + "/" + name, "https", 0,
                 {"ResolvedRefs": ("False", "InvalidCertificateRef"),
                  "Programmed": ("False", None)})


def _secret_gateway(name):
    return gateway(name, [https_listener("certificate", ns=WEB, hostname="secure.test.com")])


def _web_secret(e):
    from harness import tls_secret
    return [tls_secret("certificate", WEB, e.gateway_cert, e.gateway_cert.replace(".crt", ".key"))]


def _grant(to_name=None, from_ns=INFRA):
    to = {"group": "", "kind": "Secret"}
    if to_name:
        to["name"] = to_name
    import yaml
    return yaml.safe_dump({"apiVersion": "gateway.networking.k8s.io/v1beta1",
                           "kind": "ReferenceGrant",
                           "metadata": {"name": "grant", "namespace": WEB},
                           "spec": {"from": [{"group": "gateway.networking.k8s.io",
                                              "kind": "Gateway", "namespace": from_ns}],
                                    "to": [to]}}) + "---\n"


@case("GatewaySecretMissingReferenceGrant", features=("Gateway", "ReferenceGrant"),
      manifests=_secret_gateway("gateway-secret-missing-reference-grant"))
def secret_missing_grant(e):
    e.apply(_web_secret(e))
    listener(e, INFRA + "/gateway-secret-missing-reference-grant", "https", 0,
             {"ResolvedRefs": ("False", "RefNotPermitted"), "Programmed": ("False", None)})


@case("GatewaySecretInvalidReferenceGrant", features=("Gateway", "ReferenceGrant"),
      manifests=_secret_gateway("gateway-secret-invalid-reference-grant") +
      _grant("not-the-certificate"))
def secret_invalid_grant(e):
    e.apply(_web_secret(e))
    listener(e, INFRA + "/gateway-secret-invalid-reference-grant", "https", 0,
             {"ResolvedRefs": ("False", "RefNotPermitted"), "Programmed": ("False", None)})


@case("GatewaySecretReferenceGrantAllInNamespace", features=("Gateway", "ReferenceGrant"),
      manifests=_secret_gateway("gateway-secret-reference-grant-all-in-namespace") + _grant())
def secret_grant_all(e):
    e.apply(_web_secret(e))
    listener(e, INFRA + "/gateway-secret-reference-grant-all-in-namespace", "https", 0,
             {"ResolvedRefs": ("True", None), "Programmed": ("True", None),
              "Accepted": ("True", None)})


@case("GatewaySecretReferenceGrantSpecific", features=("Gateway", "ReferenceGrant"),
      manifests=_secret_gateway("gateway-secret-reference-grant-specific") +
      _grant("certificate"))
def secret_grant_specific(e):
    e.apply(_web_secret(e))
    listener(e, INFRA + "/gateway-secret-reference-grant-specific", "https", 0,
             {"ResolvedRefs": ("True", None), "Programmed": ("True", None)})


@case("GatewayModifyListeners", features=("Gateway",),
      manifests=gateway("gateway-add-listener", [http_listener()]))
def modify_listeners(e):
    gw = INFRA + "/gateway-add-listener"
    gateway_programmed(e, gw)
    e.apply(gateway("gateway-add-listener",
                    [http_listener(), http_listener("http-second", hostname="second.example.com")])
            .replace("  namespace:", "  generation: 2\n  namespace:"))
    listener(e, gw, "http-second", 0, {"Accepted": ("True", None), "Programmed": ("True", None)})
    gateway_condition(e, gw, "Programmed", "True")
