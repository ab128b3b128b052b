#!/usr/bin/env python3
"""A small Kubernetes API server for tests, speaking the real list/watch wire protocol.

No real API server can run on the build machines, so syncd's kubernetes
source is tested against this one. It serves, for Ingress, IngressClass,
Service, EndpointSlice, Endpoints, Secret, Namespace and the Gateway API kinds
(GatewayClass, Gateway, HTTPRoute, GRPCRoute, ReferenceGrant, TLSRoute;
objects are stored at the version listed in KINDS, as an API server
converts them):

  GET  <collection>                  a List with metadata.resourceVersion
  GET  <collection>?watch=1&resourceVersion=N
                                     a chunked stream of JSON lines
                                     {"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR,
                                      "object": ...}; HTTP 410 when N is older
                                     than the compacted history
  PATCH .../[namespaces/NS/]PLURAL/NAME/status    (merge-patch, recorded;
                                     metadata.generation moves only with spec)

and a control API for tests:

  POST /_test/apply          {"objects": [...]} (or one object): create or update
  POST /_test/delete         {"kind": K, "namespace": NS, "name": N}
  POST /_test/expire         compact the history: open watches get an ERROR
                             event with a Status of code 410 (not with
                             {"silent": true}), later watches from an old
                             resourceVersion get HTTP 410
  POST /_test/drop-watches   close every open watch stream
  POST /_test/bookmark       send a BOOKMARK on every open watch
  GET  /_test/status-patches every status PATCH received, in order (with
                             "by": the request's Authorization header)
  GET  /_test/stats          request counters (lists and watches per kind)
  POST /_test/crds           {"installed": false}: the Gateway API kinds answer
                             404 (CRDs not installed), true: served again

Leases (coordination.k8s.io/v1), with the API server's semantics for the
operations a leader elector uses:

  GET    .../namespaces/NS/leases[/NAME]   the Lease (404 NotFound) or a list
  POST   .../namespaces/NS/leases          create: 201, 409 AlreadyExists
  PUT    .../namespaces/NS/leases/NAME     update: metadata.resourceVersion is
                                     required (422 Invalid without it) and
                                     must be the current one (409 Conflict:
                                     "the object has been modified"); 404
                                     when there is none
  DELETE .../namespaces/NS/leases/NAME
  GET  /_test/lease-writes   every accepted Lease write (holder, renewTime,
                             leaseTransitions, resourceVersion, server time),
                             and the number of 409 answers

It binds 127.0.0.1 on a port chosen by the kernel and prints the port on
stdout (one line), then serves until killed. Standard library only.
"""
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

GW = "gateway.networking.k8s.io"
# kind -> (collection path, apiVersion)
KINDS = {
    "Ingress": ("/apis/networking.k8s.io/v1/ingresses", "networking.k8s.io/v1"),
    "IngressClass": ("/apis/networking.k8s.io/v1/ingressclasses", "networking.k8s.io/v1"),
    "Service": ("/api/v1/services", "v1"),
    "EndpointSlice": ("/apis/discovery.k8s.io/v1/endpointslices", "discovery.k8s.io/v1"),
    # Stored and served; syncd reads EndpointSlices only (HTTPRouteServiceTypes applies both).
    "Endpoints": ("/api/v1/endpoints", "v1"),
    "Secret": ("/api/v1/secrets", "v1"),
    "ConfigMap": ("/api/v1/configmaps", "v1"),
    "Namespace": ("/api/v1/namespaces", "v1"),
    "GatewayClass": ("/apis/%s/v1/gatewayclasses" % GW, GW + "/v1"),
    "Gateway": ("/apis/%s/v1/gateways" % GW, GW + "/v1"),
    "HTTPRoute": ("/apis/%s/v1/httproutes" % GW, GW + "/v1"),
    "GRPCRoute": ("/apis/%s/v1/grpcroutes" % GW, GW + "/v1"),
    "ReferenceGrant": ("/apis/%s/v1beta1/referencegrants" % GW, GW + "/v1beta1"),
    "TLSRoute": ("/apis/%s/v1alpha2/tlsroutes" % GW, GW + "/v1alpha2"),
}
PATH_TO_KIND = {v[0]: k for k, v in KINDS.items()}
PLURAL_TO_KIND = {v[0].rsplit("/", 1)[1]: k for k, v in KINDS.items()}
CLUSTER_SCOPED = {"IngressClass", "Namespace", "GatewayClass"}
GATEWAY_KINDS = {k for k, v in KINDS.items() if v[1].startswith(GW)}


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


class State:
    def __init__(self):
        self.cond = threading.Condition()
        self.rv = 100
        self.objects = {k: {} for k in KINDS}  # kind -> "ns/name" -> object
        self.history = []  # (rv, kind, type, object)
        self.compacted = 0  # watches from a resourceVersion below this get 410
        self.drop_gen = 0
        self.expire_gen = 0
        self.bookmark_gen = 0
        self.patches = []
        self.crds_installed = True
        self.stats = {"lists": {k: 0 for k in KINDS}, "watches": {k: 0 for k in KINDS},
                      "watch_410": 0, "authorization": ""}

    def _next_rv(self):
        self.rv += 1
        return self.rv

    def apply(self, obj):
        kind = obj.get("kind")
        if kind not in KINDS:
            raise ValueError("unsupported kind %r" % kind)
        md = obj.setdefault("metadata", {})
        md.setdefault("namespace", "default")
        if kind in CLUSTER_SCOPED:
            md.pop("namespace", None)
        key = "%s/%s" % (md.get("namespace", ""), md["name"])
        existing = self.objects[kind].get(key)
        old_gen = (existing or {}).get("metadata", {}).get("generation", 0)
        md["generation"] = old_gen + 1 if not existing or existing.get("spec") != obj.get(
            "spec") else old_gen
        md["creationTimestamp"] = (existing or {}).get("metadata", {}).get(
            "creationTimestamp") or md.get("creationTimestamp") or time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if existing and "status" in existing and "status" not in obj:
            obj["status"] = existing["status"]
        md["resourceVersion"] = str(self._next_rv())
        obj["apiVersion"] = KINDS[kind][1]
        self.objects[kind][key] = obj
        self.history.append((self.rv, kind, "MODIFIED" if existing else "ADDED", obj))

    def delete(self, kind, ns, name):
        key = "%s/%s" % (ns if kind not in CLUSTER_SCOPED else "", name)
        obj = self.objects[kind].pop(key, None)
        if obj is None:
            return False
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["resourceVersion"] = str(self._next_rv())
        self.history.append((self.rv, kind, "DELETED", obj))
        return True


STATE = State()


# ---- Leases ------------------------------------------------------------------
LEASES_PREFIX = "/apis/coordination.k8s.io/v1/namespaces/"
MICROTIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")


class Leases:
    """Lease objects under STATE.cond; resourceVersions from the shared counter."""

    def __init__(self):
        self.objects = {}  # "ns/name" -> Lease
        self.writes = []
        self.conflicts = 0

    @staticmethod
    def parse_path(path):
        """(namespace, name or None) for .../namespaces/NS/leases[/NAME], else None."""
        if not path.startswith(LEASES_PREFIX):
            return None
        parts = path[len(LEASES_PREFIX):].split("/")
        if len(parts) == 2 and parts[1] == "leases" and parts[0]:
            return parts[0], None
        if len(parts) == 3 and parts[1] == "leases" and parts[0] and parts[2]:
            return parts[0], parts[2]
        return None

    @staticmethod
    def invalid(obj, ns, name):
        """Why obj is not a valid Lease for ns/name (None when it is)."""
        if not isinstance(obj, dict) or obj.get("kind", "Lease") != "Lease":
            return "not a Lease"
        md = obj.get("metadata")
        if not isinstance(md, dict) or not md.get("name"):
            return "metadata.name: Required value"
        if name is not None and md["name"] != name:
            return "the name of the object (%s) does not match the name on the URL (%s)" % (
                md["name"], name)
        if md.get("namespace", ns) != ns:
            return "the namespace of the object does not match the namespace on the request"
        spec = obj.get("spec", {})
        if not isinstance(spec, dict):
            return "spec: not an object"
        for field in ("leaseDurationSeconds", "leaseTransitions"):
            v = spec.get(field)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
                return "spec.%s: not an integer" % field
        if spec.get("holderIdentity") is not None and not isinstance(spec["holderIdentity"], str):
            return "spec.holderIdentity: not a string"
        for field in ("acquireTime", "renewTime"):
            v = spec.get(field)
            if v is not None and (not isinstance(v, str) or not MICROTIME.match(v)):
                return "spec.%s: not a MicroTime: %r" % (field, v)
        return None

    def store(self, key, obj):
        obj["apiVersion"] = "coordination.k8s.io/v1"
        obj["kind"] = "Lease"
        obj["metadata"]["resourceVersion"] = str(STATE._next_rv())
        self.objects[key] = obj
        spec = obj.get("spec", {})
        self.writes.append({"holder": spec.get("holderIdentity", ""),
                            "renewTime": spec.get("renewTime", ""),
                            "acquireTime": spec.get("acquireTime", ""),
                            "leaseTransitions": spec.get("leaseTransitions", 0),
                            "leaseDurationSeconds": spec.get("leaseDurationSeconds", 0),
                            "resourceVersion": obj["metadata"]["resourceVersion"],
                            "at": time.time()})
        return obj

    def handle(self, h, method, ns, name):
        """Serves one Lease request; h is the Handler."""
        if name is None and method not in ("GET", "POST"):
            return h._status(405, "MethodNotAllowed", "%s to a collection" % method)
        body = None
        if method in ("POST", "PUT"):
            try:
                body = h._body()
            except ValueError:
                return h._status(400, "BadRequest", "body is not JSON")
        with STATE.cond:
            if method == "GET" and name is None:
                items = [o for k, o in sorted(self.objects.items()) if k.startswith(ns + "/")]
                return h._send_json(200, {"kind": "LeaseList", "apiVersion":
                                          "coordination.k8s.io/v1", "metadata":
                                          {"resourceVersion": str(STATE.rv)}, "items": items})
            key = "%s/%s" % (ns, name if name is not None else
                             ((body or {}).get("metadata") or {}).get("name", ""))
            cur = self.objects.get(key)
            if method == "GET":
                if cur is None:
                    return h._status(404, "NotFound", 'leases "%s" not found' % name)
                return h._send_json(200, cur)
            if method == "DELETE":
                if cur is None:
                    return h._status(404, "NotFound", 'leases "%s" not found' % name)
                del self.objects[key]
                return h._send_json(200, {"kind": "Status", "status": "Success"})
            why = self.invalid(body, ns, name)
            if why:
                return h._status(422 if "Required" in why else 400,
                                 "Invalid" if "Required" in why else "BadRequest", why)
            obj = json.loads(json.dumps(body))
            obj["metadata"]["namespace"] = ns
            if method == "POST":
                if name is not None:
                    return h._status(405, "MethodNotAllowed", "POST to a collection")
                if cur is not None:
                    return h._status(409, "AlreadyExists",
                                     'leases "%s" already exists' % obj["metadata"]["name"])
                obj["metadata"].pop("resourceVersion", None)
                return h._send_json(201, self.store(key, obj))
            # PUT: optimistic concurrency on resourceVersion
            if cur is None:
                return h._status(404, "NotFound", 'leases "%s" not found' % name)
            rv = obj["metadata"].get("resourceVersion")
            if not rv:
                return h._status(422, "Invalid", "metadata.resourceVersion: Invalid value: 0x0: "
                                 "must be specified for an update")
            if rv != cur["metadata"]["resourceVersion"]:
                self.conflicts += 1
                return h._status(409, "Conflict", 'Operation cannot be fulfilled on leases.'
                                 'coordination.k8s.io "%s": the object has been modified; please '
                                 'apply your changes to the latest version and try again' % name)
            return h._send_json(200, self.store(key, obj))


LEASES = Leases()


def selected(kind, obj, query):
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, query.get("labelSelector", [""])[0].split(",")):
        key, eq, want = term.partition("=")  # "key" (exists) or "key=value"
        if key not in labels or (eq and labels[key] != want):
            return False
    sel = query.get("fieldSelector", [""])[0]
    if not sel:
        return True
    for term in sel.split(","):
        field, _, want = term.partition("=")
        if field == "type" and obj.get("type") != want:
            return False
    return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def _send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code, reason, message):
        self._send_json(code, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                               "status": "Failure", "message": message, "reason": reason,
                               "code": code})

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"null") if n else None

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _leases(self, method):
        """True when the request was a Lease request (and was answered)."""
        where = Leases.parse_path(urlparse(self.path).path)
        if where is None:
            return False
        LEASES.handle(self, method, *where)
        return True

    def do_PUT(self):
        if not self._leases("PUT"):
            self._status(404, "NotFound", "no such path %s" % self.path)

    def do_DELETE(self):
        if not self._leases("DELETE"):
            self._status(404, "NotFound", "no such path %s" % self.path)

    def do_GET(self):
        if self._leases("GET"):
            return
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path == "/_test/lease-writes":
            with STATE.cond:
                return self._send_json(200, {"writes": LEASES.writes,
                                             "conflicts": LEASES.conflicts})
        if url.path == "/_test/status-patches":
            with STATE.cond:
                return self._send_json(200, STATE.patches)
        if url.path == "/_test/stats":
            with STATE.cond:
                return self._send_json(200, STATE.stats)
        kind = PATH_TO_KIND.get(url.path)
        if kind is None or (kind in GATEWAY_KINDS and not STATE.crds_installed):
            return self._status(404, "NotFound", "no such path %s" % url.path)
        if query.get("watch", ["0"])[0] in ("1", "true"):
            return self._watch(kind, query)
        with STATE.cond:
            STATE.stats["lists"][kind] += 1
            STATE.stats["authorization"] = self.headers.get("Authorization", "")
            items = []
            for obj in STATE.objects[kind].values():
                if selected(kind, obj, query):
                    item = json.loads(json.dumps(obj))
                    item.pop("kind", None)  # typed lists carry no kind/apiVersion per item
                    item.pop("apiVersion", None)
                    items.append(item)
            body = {"kind": kind + "List", "apiVersion": KINDS[kind][1],
                    "metadata": {"resourceVersion": str(STATE.rv)}, "items": items}
        self._send_json(200, body)

    def _watch(self, kind, query):
        rv_s = query.get("resourceVersion", [""])[0]
        timeout = float(query.get("timeoutSeconds", ["300"])[0])
        bookmarks = query.get("allowWatchBookmarks", ["false"])[0] == "true"
        with STATE.cond:
            STATE.stats["watches"][kind] += 1
            if rv_s and int(rv_s) < STATE.compacted:
                STATE.stats["watch_410"] += 1
                return self._status(410, "Expired", "too old resource version: %s (%d)" %
                                    (rv_s, STATE.compacted))
            start_rv = int(rv_s) if rv_s else None
            drop_gen, expire_gen, bm_gen = STATE.drop_gen, STATE.expire_gen, STATE.bookmark_gen
            pending = []
            if start_rv is None:  # no resourceVersion: synthetic ADDED for what exists now
                pending = [("ADDED", o) for o in STATE.objects[kind].values()
                           if selected(kind, o, query)]
                start_rv = STATE.rv
            pos = len(STATE.history)
            for i, (rv, k, _, _) in enumerate(STATE.history):
                if rv > start_rv:
                    pos = i
                    break
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        deadline = time.time() + timeout
        try:
            for t, o in pending:
                self._chunk((json.dumps({"type": t, "object": o}) + "\n").encode())
            while time.time() < deadline:
                out = []
                with STATE.cond:
                    while pos < len(STATE.history):
                        rv, k, t, o = STATE.history[pos]
                        pos += 1
                        if k == kind and selected(kind, o, query):
                            out.append({"type": t, "object": o})
                    if STATE.expire_gen != expire_gen:
                        out.append({"type": "ERROR", "object": {
                            "kind": "Status", "apiVersion": "v1", "status": "Failure",
                            "message": "too old resource version", "reason": "Expired",
                            "code": 410}})
                    elif STATE.bookmark_gen != bm_gen and bookmarks:
                        bm_gen = STATE.bookmark_gen
                        out.append({"type": "BOOKMARK", "object": {
                            "kind": kind, "apiVersion": KINDS[kind][1],
                            "metadata": {"resourceVersion": str(STATE.rv)}}})
                    dropped = STATE.drop_gen != drop_gen
                    expired = STATE.expire_gen != expire_gen
                    if not out and not dropped:
                        STATE.cond.wait(0.2)
                for ev in out:
                    self._chunk((json.dumps(ev) + "\n").encode())
                if dropped or expired:
                    break
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def do_PATCH(self):
        url = urlparse(self.path)
        parts = url.path.strip("/").split("/")
        # apis/GROUP/VERSION/[namespaces/NS/]PLURAL/NAME/status (api/v1/... for the core group)
        core = parts[:1] == ["api"]
        base = 2 if core else 3
        ns = ""
        if len(parts) > base + 1 and parts[base] == "namespaces":
            ns = parts[base + 1]
            base += 2
        if len(parts) != base + 3 or parts[-1] != "status" or parts[0] not in ("api", "apis"):
            return self._status(404, "NotFound", "no such path %s" % url.path)
        kind = PLURAL_TO_KIND.get(parts[base])
        name = parts[base + 1]
        if kind is None or (kind in GATEWAY_KINDS and not STATE.crds_installed):
            return self._status(404, "NotFound", "no such path %s" % url.path)
        if self.headers.get("Content-Type") != "application/merge-patch+json":
            return self._status(415, "UnsupportedMediaType", "want merge-patch+json")
        try:
            body = self._body()
        except ValueError:
            return self._status(400, "BadRequest", "body is not JSON")
        with STATE.cond:
            obj = STATE.objects[kind].get("%s/%s" % (ns, name))
            if obj is None:
                return self._status(404, "NotFound", "%s %s/%s not found" % (kind, ns, name))
            STATE.patches.append({"kind": kind, "namespace": ns, "name": name, "body": body,
                                  "by": self.headers.get("Authorization", "")})
            obj = json.loads(json.dumps(obj))
            obj["status"] = merge_patch(obj.get("status", {}), (body or {}).get("status", {}))
            STATE.apply(obj)
            STATE.cond.notify_all()
            out = obj
        self._send_json(200, out)

    def do_POST(self):
        if self._leases("POST"):
            return
        url = urlparse(self.path)
        try:
            body = self._body()
        except ValueError:
            return self._status(400, "BadRequest", "body is not JSON")
        with STATE.cond:
            try:
                if url.path == "/_test/apply":
                    objs = body.get("objects", [body]) if isinstance(body, dict) else body
                    for o in objs:
                        STATE.apply(o)
                elif url.path == "/_test/delete":
                    if not STATE.delete(body["kind"], body.get("namespace", "default"),
                                        body["name"]):
                        return self._status(404, "NotFound", "no such object")
                elif url.path == "/_test/expire":
                    STATE.compacted = STATE._next_rv()  # every earlier version is gone
                    if not (isinstance(body, dict) and body.get("silent")):
                        STATE.expire_gen += 1
                elif url.path == "/_test/drop-watches":
                    STATE.drop_gen += 1
                elif url.path == "/_test/crds":
                    STATE.crds_installed = bool(body.get("installed", True))
                    STATE.drop_gen += 1  # open watches of those kinds end, as on a CRD removal
                elif url.path == "/_test/bookmark":
                    STATE._next_rv()
                    STATE.bookmark_gen += 1
                else:
                    return self._status(404, "NotFound", "no such path %s" % url.path)
            except (KeyError, ValueError, AttributeError, TypeError) as e:
                return self._status(400, "BadRequest", str(e))
            STATE.cond.notify_all()
            rv = STATE.rv
        self._send_json(200, {"resourceVersion": str(rv)})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
