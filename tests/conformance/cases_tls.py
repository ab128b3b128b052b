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
