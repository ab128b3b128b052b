"""The case registry: features, profiles, and what edge claims.

Each case is a port of one upstream conformance test (same ShortName, same
manifests, same requests and expectations); the cases live in
cases_http.py, cases_gateway.py, cases_grpc.py and cases_tls.py and
register themselves here with @case. Features edge does not claim are
listed with the reason in README.md; their cases are reported as skipped.
"""

PROFILES = ["GATEWAY-HTTP", "GATEWAY-GRPC", "GATEWAY-TLS"]

CORE = {"Gateway", "HTTPRoute", "GRPCRoute", "TLSRoute", "ReferenceGrant"}

# Extended features and the profile that reports them (upstream's pkg/features).
FEATURE_PROFILE = {
    "GatewayPort8080": "GATEWAY-HTTP",
    "GatewayStaticAddresses": "GATEWAY-HTTP",
    "GatewayHTTPListenerIsolation": "GATEWAY-HTTP",
    "GatewayInfrastructurePropagation": "GATEWAY-HTTP",
    "HTTPRouteQueryParamMatching": "GATEWAY-HTTP",
    "HTTPRouteMethodMatching": "GATEWAY-HTTP",
    "HTTPRouteResponseHeaderModification": "GATEWAY-HTTP",
    "HTTPRoutePortRedirect": "GATEWAY-HTTP",
    "HTTPRouteSchemeRedirect": "GATEWAY-HTTP",
    "HTTPRoutePathRedirect": "GATEWAY-HTTP",
    "HTTPRouteHostRewrite": "GATEWAY-HTTP",
    "HTTPRoutePathRewrite": "GATEWAY-HTTP",
    "HTTPRouteRequestMirror": "GATEWAY-HTTP",
    "HTTPRouteRequestMultipleMirrors": "GATEWAY-HTTP",
    "HTTPRouteRequestPercentageMirror": "GATEWAY-HTTP",
    "HTTPRouteRequestTimeout": "GATEWAY-HTTP",
    "HTTPRouteBackendTimeout": "GATEWAY-HTTP",
    "HTTPRouteParentRefPort": "GATEWAY-HTTP",
    "HTTPRouteBackendProtocolH2C": "GATEWAY-HTTP",
    "HTTPRouteBackendProtocolWebSocket": "GATEWAY-HTTP",
    "HTTPRouteBackendRequestHeaderModification": "GATEWAY-HTTP",
    "HTTPRouteDestinationPortMatching": "GATEWAY-HTTP",
    "HTTPRouteNamedRouteRule": "GATEWAY-HTTP",
    "HTTPRouteCORS": "GATEWAY-HTTP",
    "HTTPRoute303RedirectStatusCode": "GATEWAY-HTTP",
    "HTTPRoute307RedirectStatusCode": "GATEWAY-HTTP",
    "HTTPRoute308RedirectStatusCode": "GATEWAY-HTTP",
    "GRPCRouteNamedRouteRule": "GATEWAY-GRPC",
}

# What edge implements (README.md lists the rest with the reason).
CLAIMED = CORE | {
    "HTTPRouteQueryParamMatching",
    "HTTPRouteMethodMatching",
    "HTTPRouteResponseHeaderModification",
    "HTTPRoutePortRedirect",
    "HTTPRouteSchemeRedirect",
    "HTTPRoutePathRedirect",
    "HTTPRouteHostRewrite",
    "HTTPRoutePathRewrite",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteBackendTimeout",
    "HTTPRouteParentRefPort",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
}

ALL = []


class Case:
    def __init__(self, name, profile, features, manifests, fn):
        self.name, self.profile, self.features = name, profile, features
        self.manifests, self.fn = manifests, fn
        self.level = "extended" if any(f not in CORE for f in features) else "core"

    def run(self, edge):
        if self.manifests:
            edge.apply(self.manifests)
        self.fn(edge)


def case(name, profile="GATEWAY-HTTP", features=("Gateway", "HTTPRoute"), manifests=""):
    def register(fn):
        ALL.append(Case(name, profile, list(features), manifests, fn))
        return fn
    return register


import cases_gateway  # noqa: E402,F401
import cases_http  # noqa: E402,F401
import cases_http_services  # noqa: E402,F401
import cases_http_extended  # noqa: E402,F401
import cases_grpc  # noqa: E402,F401
import cases_tls  # noqa: E402,F401
