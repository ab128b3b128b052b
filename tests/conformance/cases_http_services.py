"""HTTPRouteServiceTypes (core), ported from upstream's conformance/tests/
httproute-service-types.{yaml,go} (kubernetes-sigs/gateway-api, Apache-2.0): one
HTTPRoute whose rules point at a headless Service with a selector, Services
without a selector whose Endpoints or EndpointSlices are written by hand, and
headless variants of those; every path must reach infra-backend-v1.

Upstream patches the hand-written Endpoints and EndpointSlices with the pod's
address after the route is accepted; a cluster's controllers then do the rest:
the EndpointSlice controller makes the slice of the selector Service, and the
EndpointSlice mirroring controller mirrors a selector-less Service's Endpoints
into a slice. There is no kube-controller-manager here, so after the same
patches the runner writes those slices the way the controllers do
(`endpointslice.kubernetes.io/managed-by` says which); edge reads EndpointSlices
only, as kube-proxy does. Called by cases.py (registration); runs in the
runner's thread.
"""
import yaml

from cases import case
from checks import expect, resolved_refs, routes_accepted
from harness import INFRA

SAME = INFRA + "/same-namespace"
ROUTE = "service-types"
MANUAL_ENDPOINTS = ["manual-endpoints", "headless-manual-endpoints"]
MANUAL_SLICES = ["manual-endpointslices", "headless-manual-endpointslices"]
MANAGED = ["headless"]
PORT = {"name": "first-port", "protocol": "TCP", "port": 8080, "targetPort": 3000}
SLICE_PORT = {"name": "first-port", "port": 3000, "protocol": "TCP"}
CONTROLLER = "endpointslice-controller.k8s.io"
MIRROR = "endpointslicemirroring-controller.k8s.io"


def doc(kind, name, api="v1", **body):
    d = {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": INFRA}}
    d.update(body)
    return d


def service(name, headless=False, selector=None):
    spec = {"ports": [dict(PORT)]}
    if headless:
        spec["clusterIP"] = "None"
    if selector:
        spec["selector"] = selector
    return doc("Service", name, spec=spec)


def endpoint_slice(name, service_name, endpoints=None, managed_by=None):
    labels = {"kubernetes.io/service-name": service_name}
    if managed_by:
        labels["endpointslice.kubernetes.io/managed-by"] = managed_by
    d = doc("EndpointSlice", name, api="discovery.k8s.io/v1", addressType="IPv4",
            ports=[dict(SLICE_PORT)])
    d["metadata"]["labels"] = labels
    if endpoints is not None:
        d["endpoints"] = endpoints
    return d


def manifests():
    rules = [{"matches": [{"path": {"type": "Exact", "value": "/" + n}}],
              "backendRefs": [{"name": n, "port": 8080}]}
             for n in ["manual-endpoints", "manual-endpointslices", "headless",
                       "headless-manual-endpoints", "headless-manual-endpointslices"]]
    docs = [doc("HTTPRoute", ROUTE, api="gateway.networking.k8s.io/v1",
                spec={"parentRefs": [{"name": "same-namespace"}], "rules": rules}),
            service("manual-endpoints"), doc("Endpoints", "manual-endpoints"),
            service("manual-endpointslices"),
            endpoint_slice("manual-endpointslices", "manual-endpointslices"),
            service("headless", headless=True, selector={"app": "infra-backend-v1"}),
            service("headless-manual-endpoints", headless=True),
            doc("Endpoints", "headless-manual-endpoints"),
            service("headless-manual-endpointslices", headless=True),
            endpoint_slice("headless-manual-endpointslices", "headless-manual-endpointslices")]
    return yaml.safe_dump_all(docs)


def pod_endpoints(e):
    """The pods of infra-backend-v1 as EndpointSlice endpoints (ready, serving)."""
    return [{"addresses": [addr],
             "conditions": {"ready": True, "serving": True, "terminating": False},
             "targetRef": {"kind": "Pod", "name": pod, "namespace": INFRA}}
            for pod, addr, _ in e.pods[("infra-backend-v1", INFRA)]]


def patches(e):
    """Upstream's setupEndpoints and setupEndpointSlices, then the controllers' slices."""
    pods = e.pods[("infra-backend-v1", INFRA)]
    subsets = [{"addresses": [{"ip": addr, "targetRef": {"kind": "Pod", "name": pod,
                                                          "namespace": INFRA}}
                              for pod, addr, _ in pods],
                "ports": [dict(SLICE_PORT)]}]
    docs = [doc("Endpoints", n, subsets=subsets) for n in MANUAL_ENDPOINTS]
    docs += [endpoint_slice(n, n, pod_endpoints(e)) for n in MANUAL_SLICES]
    docs += [endpoint_slice(n + "-mirrored", n, pod_endpoints(e), MIRROR)
             for n in MANUAL_ENDPOINTS]
    docs += [endpoint_slice(n + "-managed", n, pod_endpoints(e), CONTROLLER) for n in MANAGED]
    return docs


@case("HTTPRouteServiceTypes", manifests=manifests())
def service_types(e):
    routes_accepted(e, SAME, [INFRA + "/" + ROUTE])
    resolved_refs(e, SAME, INFRA + "/" + ROUTE)
    e.apply(patches(e))
    for n in MANAGED + MANUAL_ENDPOINTS + MANUAL_SLICES:
        expect(e, {"path": "/" + n, "backend": "infra-backend-v1", "namespace": INFRA})
