"""Expectations the ported cases use, with the semantics of upstream's
conformance/utils (kubernetes and http packages): statuses that must
eventually hold, and requests that must eventually get the expected answer
a few times in a row (RequiredConsecutiveSuccesses = 3,
MaxTimeToConsistency = 30 s by default, as upstream)."""
import json
import time

from harness import CONTROLLER, Failure, poll

CONSECUTIVE = 3
CONSISTENCY_S = 30
STATUS_S = 30


def cond(conds, type_):
    for c in conds or []:
        if c.get("type") == type_:
            return c
    return None


def _parent(st, gw_ns, gw_name, section=None):
    for p in (st or {}).get("parents", []):
        ref = p.get("parentRef", {})
        if p.get("controllerName") != CONTROLLER:
            continue
        if ref.get("name") == gw_name and ref.get("namespace", gw_ns) == gw_ns and \
                (section is None or ref.get("sectionName") == section):
            return p
    return None


def route_condition(e, kind, ns, name, gw, type_, status="True", reason=None, section=None):
    """The route's condition for parent gw ("ns/name") eventually is status (and reason)."""
    gw_ns, gw_name = gw.split("/")

    def ok():
        p = _parent(e.status(kind, ns, name), gw_ns, gw_name, section)
        c = cond(p and p.get("conditions"), type_)
        return c if c and c["status"] == status and (reason is None or
                                                      c["reason"] == reason) else None
    return poll(ok, STATUS_S, "%s %s/%s: %s=%s%s for %s" % (
        kind, ns, name, type_, status, " (%s)" % reason if reason else "", gw))


def routes_accepted(e, gw, routes, kind="HTTPRoute"):
    """GatewayAndRoutesMustBeAccepted: the Gateway is programmed and each route is accepted by
    it (routes: "ns/name"). Returns the Gateway address (always 127.0.0.1 here)."""
    gateway_programmed(e, gw)
    for r in routes:
        ns, name = r.split("/")
        route_condition(e, kind, ns, name, gw, "Accepted", "True")
    return "127.0.0.1"


def resolved_refs(e, gw, route, kind="HTTPRoute", status="True", reason=None):
    ns, name = route.split("/")
    return route_condition(e, kind, ns, name, gw, "ResolvedRefs", status, reason)


def gateway_programmed(e, gw):
    ns, name = gw.split("/")

    def ok():
        st = e.status("Gateway", ns, name)
        c = cond(st and st.get("conditions"), "Programmed")
        return st if c and c["status"] == "True" and st.get("addresses") else None
    return poll(ok, STATUS_S, "Gateway %s Programmed with an address" % gw)


def gateway_condition(e, gw, type_, status, reason=None):
    ns, name = gw.split("/")

    def ok():
        c = cond((e.status("Gateway", ns, name) or {}).get("conditions"), type_)
        return c if c and c["status"] == status and (reason is None or
                                                      c["reason"] == reason) else None
    return poll(ok, STATUS_S, "Gateway %s %s=%s (%s)" % (gw, type_, status, reason))


def listener(e, gw, name, attached=None, conditions=None):
    """A listener's status eventually has attachedRoutes and conditions {type: (status,
    reason or None)}."""
    ns, gname = gw.split("/")

    def ok():
        st = e.status("Gateway", ns, gname) or {}
        for l in st.get("listeners", []):
            if l["name"] != name:
                continue
            if attached is not None and l.get("attachedRoutes") != attached:
                return None
            for t, (s, r) in (conditions or {}).items():
                c = cond(l.get("conditions"), t)
                if not c or c["status"] != s or (r and c["reason"] != r):
                    return None
            return l
        return None
    return poll(ok, STATUS_S, "Gateway %s listener %s attachedRoutes=%s %s" % (
        gw, name, attached, conditions or ""))


def no_parent_status(e, kind, ns, name, gw, settle_version):
    """The route has no parent status from us for gw, once syncd has seen a newer state."""
    gw_ns, gw_name = gw.split("/")
    poll(lambda: (e.version() or 0) > settle_version, STATUS_S, "syncd took the change")
    if _parent(e.status(kind, ns, name), gw_ns, gw_name):
        raise Failure("%s %s/%s has a parent status for %s" % (kind, ns, name, gw))


# ---- requests -------------------------------------------------------------------------


def compare(exp, status, headers, body):
    """upstream CompareRequest: None when the answer is as expected, else why not."""
    want = exp.get("status", 200)
    if status != want:
        return "status %d, want %d" % (status, want)
    if status == 200 and exp.get("backend") is not None:
        try:
            got = json.loads(body)
        except ValueError:
            return "body is not the echo backend's JSON: %r" % body[:80]
        req = exp.get("expected_request", {})
        path = req.get("path", exp.get("path", "/"))
        if got.get("path") != path:
            return "backend saw path %r, want %r" % (got.get("path"), path)
        method = req.get("method", exp.get("method", "GET"))
        if got.get("method") != method:
            return "backend saw method %s, want %s" % (got.get("method"), method)
        if req.get("host") and got.get("host") != req["host"]:
            return "backend saw host %r, want %r" % (got.get("host"), req["host"])
        if not got.get("pod", "").startswith(exp["backend"]):
            return "served by %s, want %s" % (got.get("pod"), exp["backend"])
        if exp.get("namespace") and got.get("namespace") != exp["namespace"]:
            return "namespace %s, want %s" % (got.get("namespace"), exp["namespace"])
        seen = {k.lower(): ",".join(v) for k, v in got.get("headers", {}).items()}
        for k, v in req.get("headers", {}).items():
            if seen.get(k.lower()) != v:
                return "backend saw %s: %r, want %r" % (k, seen.get(k.lower()), v)
        for k in req.get("absent_headers", []):
            if k.lower() in seen:
                return "backend saw %s, want it absent" % k
    if status == 200:
        for k, v in exp.get("response_headers", {}).items():
            if ",".join(headers.get(k.lower(), [])) != v:
                return "response %s: %r, want %r" % (k, headers.get(k.lower()), v)
        for k in exp.get("absent_response_headers", []):
            if k.lower() in headers:
                return "response has %s, want it absent" % k
    if 300 <= status < 400 and exp.get("redirect"):
        loc = (headers.get("location") or [""])[0]
        rd = exp["redirect"]
        scheme, _, rest = loc.partition("://")
        hostport, _, path = rest.partition("/")
        path = "/" + path
        host, _, port = hostport.partition(":")
        if rd.get("scheme", "http") != scheme:
            return "redirect scheme %r in %r, want %r" % (scheme, loc, rd.get("scheme", "http"))
        if rd.get("host") and host != rd["host"]:
            return "redirect host %r in %r, want %r" % (host, loc, rd["host"])
        want_port = rd.get("port", "")
        if want_port == "":
            if port not in ("", {"http": "80", "https": "443"}.get(scheme, "")):
                return "redirect port %r in %r, want none or the scheme's" % (port, loc)
        elif port != want_port:
            return "redirect port %r in %r, want %r" % (port, loc, want_port)
        want_path = rd.get("path", exp.get("path", "/"))
        if path != want_path:
            return "redirect path %r in %r, want %r" % (path, loc, want_path)
    return None


def expect(e, exp, https=False):
    """MakeRequestAndExpectEventuallyConsistentResponse. exp: path, host (default the Gateway
    address), method, headers, status, backend, namespace, expected_request {path, host, method,
    headers, absent_headers}, response_headers, absent_response_headers, redirect {scheme, host,
    port, path}, backend_set_response_headers."""
    host = exp.get("host", "127.0.0.1")
    headers = dict(exp.get("headers", {}))
    if exp.get("backend_set_response_headers"):
        headers["X-Echo-Set-Header"] = ",".join(
            "%s:%s" % kv for kv in exp["backend_set_response_headers"].items())
    end = time.monotonic() + CONSISTENCY_S
    streak, why = 0, "no request made"
    while time.monotonic() < end:
        try:
            status, hdrs, body = e.http(host, exp.get("path", "/"), exp.get("method", "GET"),
                                        headers, https=https, sni=exp.get("sni"))
            why = compare(exp, status, hdrs, body)
        except (OSError, Failure) as err:
            why = "request failed: %s" % err
        if why is None:
            streak += 1
            if streak >= CONSECUTIVE:
                return
            continue
        streak = 0
        time.sleep(0.2)
    raise Failure("%s %s%s (%s): %s" % (exp.get("method", "GET"), host, exp.get("path", "/"),
                                        ", ".join("%s: %s" % kv for kv in
                                                  exp.get("headers", {}).items()), why))


def expect_grpc(e, host, method, backend=None, metadata=None, status=200, grpc_status=0,
                ns=None):
    """A gRPC call eventually answered by backend (or with grpc_status), 3 times in a row."""
    end = time.monotonic() + CONSISTENCY_S
    streak, why = 0, "no call made"
    while time.monotonic() < end:
        try:
            st, gs, echo = e.grpc(host, method, metadata)
            if st != status:
                why = "HTTP status %s, want %s" % (st, status)
            elif gs != grpc_status:
                why = "grpc-status %s, want %s" % (gs, grpc_status)
            elif backend and not (echo and echo.get("pod", "").startswith(backend)):
                why = "served by %s, want %s" % (echo and echo.get("pod"), backend)
            elif ns and echo and echo.get("namespace") != ns:
                why = "namespace %s, want %s" % (echo.get("namespace"), ns)
            else:
                why = None
        except (OSError, Failure) as err:
            why = "call failed: %s" % err
        if why is None:
            streak += 1
            if streak >= CONSECUTIVE:
                return echo
            continue
        streak = 0
        time.sleep(0.2)
    raise Failure("gRPC %s%s: %s" % (host, method, why))
