"""TLSRoute cases (experimental channel), ported from upstream's
conformance/tests/tlsroute-*.{yaml,go} (kubernetes-sigs/gateway-api, Apache-2.0).
Passthrough proof: the certificate the client sees is the backend's own (the
proxy never terminates), and the backend reports the server name it got."""
import socket
import ssl
import json

import yaml

from cases import case
from checks import poll, routes_accepted, STATUS_S
from harness import INFRA, Failure

T = ("Gateway", "TLSRoute")
GW = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-tlsroute
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: https
    port: 443
    protocol: TLS
    hostname: "*.example.com"
    allowedRoutes:
      namespaces: {from: Same}
      kinds: [{kind: TLSRoute}]
    tls: {mode: Passthrough}
---
"""


def troute(name, hostnames, backend="tls-backend", ns=INFRA):
    return yaml.safe_dump({"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TLSRoute",
                           "metadata": {"name": name, "namespace": INFRA},
                           "spec": {"parentRefs": [{"name": "gateway-tlsroute"}],
                                    "hostnames": hostnames,
                                    "rules": [{"backendRefs": [
                                        {"name": backend, "port": 443, "namespace": ns}]}]}}) \
        + "---\n"


def tls_get(sni, path="/"):
    """A TLS connection to :443 with SNI; returns (peer certificate DER, status, echo JSON)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", 443), 5) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            der = s.getpeercert(binary_form=True)
            s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" %
                       (path, sni)).encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return der, int(head.split()[1]), json.loads(body or b"null")


def backend_der(e):
    with open(e.backend_cert[0]) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


@case("TLSRouteSimpleSameNamespace", profile="GATEWAY-TLS", features=T,
      manifests=GW + troute("gateway-conformance-infra-test", ["abc.example.com"]))
def simple(e):
    routes_accepted(e, INFRA + "/gateway-tlsroute", [INFRA + "/gateway-conformance-infra-test"],
                    kind="TLSRoute")
    want = backend_der(e)

    def ok():
        der, status, echo = tls_get("abc.example.com")
        if der != want:
            raise Failure("the client saw the proxy's certificate: TLS was terminated")
        return status == 200 and echo and echo["pod"].startswith("tls-backend") and \
            echo["tls"].get("serverName") == "abc.example.com"
    poll(ok, STATUS_S, "abc.example.com passed through to tls-backend")


@case("TLSRouteInvalidReferenceGrant", profile="GATEWAY-TLS",
      features=("Gateway", "TLSRoute", "ReferenceGrant"), manifests=GW + """apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: reference-grant-wrong-namespace, namespace: gateway-conformance-app-backend}
spec:
  from: [{group: gateway.networking.k8s.io, kind: TLSRoute, namespace: default}]
  to: [{group: "", kind: Service, name: tls-backend}]
---
""" + troute("gateway-conformance-infra-test", ["abc.example.com"],
             ns="gateway-conformance-app-backend"))
def invalid_grant(e):
    from checks import resolved_refs
    resolved_refs(e, INFRA + "/gateway-tlsroute", INFRA + "/gateway-conformance-infra-test",
                  kind="TLSRoute", status="False", reason="RefNotPermitted")


def gateway(name, listener_spec):
    spec = {"gatewayClassName": "{GATEWAY_CLASS_NAME}", "listeners": [listener_spec]}
    return yaml.safe_dump({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                           "metadata": {"name": name, "namespace": INFRA},
                           "spec": spec}) + "---\n"


def lst(name, port, protocol, kinds, tls=None):
    d = {"name": name, "port": port, "protocol": protocol,
         "allowedRoutes": {"namespaces": {"from": "Same"},
                           "kinds": [{"kind": k} for k in kinds]}}
    if tls:
        d["tls"] = tls
    return d


def parent_route(name, parent, section=None):
    ref = {"name": parent}
    if section:
        ref["sectionName"] = section
    return yaml.safe_dump({"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TLSRoute",
                           "metadata": {"name": name, "namespace": INFRA},
                           "spec": {"parentRefs": [ref], "hostnames": ["tls.example.com"],
                                    "rules": [{"backendRefs": [
                                        {"name": "tls-backend", "port": 443}]}]}}) + "---\n"


TERMINATE = {"mode": "Terminate", "certificateRefs": [
    {"name": "tls-validity-checks-certificate", "namespace": INFRA}]}
NO_LISTENER = [  # (route, its Gateway, the expected Accepted=False reason)
    ("tlsroute-no-matching-listener", "gateway-http-only", "NotAllowedByListeners"),
    ("tlsroute-not-allowed-kind", "gateway-tls-httproute-only", "NotAllowedByListeners"),
    ("tlsroute-wrong-protocol", "gateway-https-only", "NotAllowedByListeners"),
    ("tlsroute-no-matching-section-name", "gateway-tlsroute-tls-passthrough-only",
     "NoMatchingParent"),
]


@case("TLSRouteInvalidNoMatchingListener", profile="GATEWAY-TLS", features=T, manifests=(
    gateway("gateway-http-only", lst("http", 80, "HTTP", ["TLSRoute"])) +
    gateway("gateway-tls-httproute-only", lst("http", 80, "HTTP", ["HTTPRoute"])) +
    gateway("gateway-https-only", lst("https", 443, "HTTPS", ["TLSRoute"], TERMINATE)) +
    gateway("gateway-tlsroute-tls-passthrough-only",
            lst("tls", 443, "TLS", ["TLSRoute"], {"mode": "Passthrough"})) +
    parent_route("tlsroute-no-matching-listener", "gateway-http-only") +
    parent_route("tlsroute-not-allowed-kind", "gateway-tls-httproute-only") +
    parent_route("tlsroute-wrong-protocol", "gateway-https-only") +
    parent_route("tlsroute-no-matching-section-name", "gateway-tlsroute-tls-passthrough-only",
                 section="nonexistent-listener")))
def no_matching_listener(e):
    """A TLSRoute on an HTTP listener, on a listener allowing only HTTPRoute, on an HTTPS
    (terminating) listener, or naming a listener that does not exist is not accepted, and no
    Gateway counts it."""
    from checks import cond, listener, route_condition
    for name, gw, reason in NO_LISTENER:
        route_condition(e, "TLSRoute", INFRA, name, INFRA + "/" + gw, "Accepted", "False",
                        reason)
    for name, _, _ in NO_LISTENER:
        for p in (e.status("TLSRoute", INFRA, name) or {}).get("parents", []):
            c = cond(p.get("conditions"), "Accepted")
            if c and c["status"] == "True":
                raise Failure("TLSRoute %s accepted by %s" % (name, p["parentRef"]))
    for gw, lname in [("gateway-http-only", "http"), ("gateway-tls-httproute-only", "http"),
                      ("gateway-https-only", "https")]:
        listener(e, INFRA + "/" + gw, lname, attached=0)


@case("TLSRouteListenerPassthroughSupportedKinds", profile="GATEWAY-TLS", features=T,
      manifests=gateway("gateway-tlsroute-passthrough-supported-kind",
                        lst("tls-passthrough", 443, "TLS", ["TCPRoute", "TLSRoute"],
                            {"mode": "Passthrough"})))
def passthrough_supported_kinds(e):
    """A Passthrough listener asked for TCPRoute and TLSRoute: ResolvedRefs=False
    InvalidRouteKinds (TCPRoute is not served), supportedKinds exactly [TLSRoute]."""
    from checks import listener
    l = listener(e, INFRA + "/gateway-tlsroute-passthrough-supported-kind", "tls-passthrough",
                 attached=0, conditions={"ResolvedRefs": ("False", "InvalidRouteKinds")})
    kinds = [(k.get("group"), k["kind"]) for k in l.get("supportedKinds", [])]
    if kinds != [("gateway.networking.k8s.io", "TLSRoute")]:
        raise Failure("supportedKinds %s, want [gateway.networking.k8s.io/TLSRoute]" % kinds)
