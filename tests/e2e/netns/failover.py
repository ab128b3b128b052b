"""failover — the syncd-failover fault of the netns e2e runner (issue 18).

Two syncd replicas serve the cluster. Under load through the VIP, while
routes change every churn_ms (an Ingress rewritten with a new path), the
replica serving most l7proxies is killed (SIGKILL). The fault passes when:

  - no request fails (the load's max_failed_percent, checked by the runner);
  - every l7proxy is SYNCED on the surviving replica within synced_within
    seconds of the kill (polled on the survivor's Status; the measured time
    per proxy is reported);
  - no proxy whose state the survivor already had gets a full push (the
    proxy's version at reconnection, from the survivor's node_connected
    line, against the versions the survivor logged before that line; a
    full push is logged as push_full);
  - both l4lbs hold every l7proxy in their Maglev tables throughout, the
    same members as before the kill (sampled every 0.2 s);
  - no accepted change is lost: after the churn stops, every proxy serves
    its last change.

Reports: failover time per proxy, how each resynced (none, delta, full),
bytes and pushes the survivor sent from the kill until every proxy was
SYNCED, changes made, samples taken. Called by runner.run_fault with the
runner's cluster and constants (env); every loop is bounded by a deadline.
"""
import json
import os
import re
import signal
import subprocess
import threading
import time


class TableSame:
    """Samples each l4lb's table members (/config: backends in_table) every
    0.2 s until stop(); records every sample where the two differ from each
    other or from the first sample."""

    def __init__(self, env):
        self.env = env
        self.first = None
        self.samples = 0
        self.bad = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def members(self, lb):
        env = self.env
        p = subprocess.run(["curl", "-fsS", "-m", "1",
                            f"http://{env['HOSTS'][lb]}:{env['ADMIN']}/config"],
                           capture_output=True, text=True)
        try:
            return tuple(sorted(b["name"] for b in json.loads(p.stdout)["backends"]
                                if b.get("in_table")))
        except (ValueError, KeyError):
            return None

    def _run(self):
        while not self._stop.is_set():
            seen = {lb: self.members(lb) for lb in self.env["LBS"]}
            if None not in seen.values():
                self.samples += 1
                tables = set(seen.values())
                if self.first is None:
                    self.first = next(iter(tables))
                if len(tables) != 1 or self.first not in tables:
                    self.bad.append(seen)
            self._stop.wait(0.2)

    def start(self):
        self._t.start()
        return self

    def stop(self):
        self._stop.set()
        self._t.join(5)


class Churn:
    """Rewrites one Ingress every interval (a new path each time) until
    stop(); `last` is the index of the last change written."""

    def __init__(self, cl, write_yaml, service, interval):
        self.cl, self.write_yaml, self.service, self.interval = cl, write_yaml, service, interval
        self.last = -1
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def doc(self, i):
        return [{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                 "metadata": {"name": "failover-churn", "namespace": "default"},
                 "spec": {"ingressClassName": "edge", "rules": [{
                     "host": "churn.failover.test", "http": {"paths": [{
                         "path": f"/v{i}", "pathType": "Prefix", "backend": {"service": {
                             "name": self.service, "port": {"number": 80}}}}]}}]}}]

    def _run(self):
        i = 0
        while not self._stop.is_set() and i < 100000:
            self.write_yaml(os.path.join(self.cl.manifests, "30-extra.yaml"), self.doc(i))
            self.last = i
            i += 1
            self._stop.wait(self.interval)

    def start(self):
        self._t.start()
        return self

    def stop(self):
        self._stop.set()
        self._t.join(5)


def metric(env, host, name):
    p = subprocess.run(["curl", "-fsS", "-m", "2", f"http://{host}:7001/metrics"],
                       capture_output=True, text=True)
    total = 0.0
    for m in re.finditer(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), p.stdout, re.M):
        total += float(m.group(1))
    return total


def resync_report(log_text, mark, moved):
    """From the survivor's whole log (mark: the byte offset at the kill):
    per moved proxy, (last_applied, resync, whether the survivor had logged
    that version before the proxy connected, full pushes to it after)."""
    before, after = log_text[:mark], log_text[mark:]
    versions = set(re.findall(r"msg=(?:version|state_restored) version=(\d+)", before))
    lines = after.splitlines()
    out = {}
    for i, ln in enumerate(lines):
        m = re.search(r"msg=version version=(\d+)", ln)
        if m:
            versions.add(m.group(1))
            continue
        m = re.search(r"msg=node_connected node=(\S+) .*last_applied=(\d+) .*resync=(\w+)", ln)
        if m and m.group(1) in moved and m.group(1) not in out:
            node = m.group(1)
            fulls = [ln2 for ln2 in lines[i + 1:]
                     if "msg=push_full" in ln2 and f"node={node} " in ln2]
            out[node] = (m.group(2), m.group(3), m.group(2) in versions, fulls)
    return out


def syncd_failover(cl, scen, fl, out, env):
    """Runs the fault (module docstring). Returns the note for the fault
    line, or None after FAIL lines were added to out."""
    wait_until, hosts = env["wait_until"], env["HOSTS"]
    replicas, syncds = env["REPLICAS"], env["SYNCDS"]
    for s in syncds:  # a replica an earlier fault killed comes back first
        if not cl.procs[s].alive():
            cl.start_syncd(s)
            if not wait_until(lambda: cl.readyz(s), 20):
                out.append(f"    FAIL {s} not ready after its restart:\n" + cl.procs[s].tail())
                return None
    if not wait_until(cl.replicas_synced, 20):
        out.append("    FAIL replicas not SYNCED on both syncd replicas before the kill")
        return None
    st = cl.status_json() or {}
    serving = {}
    for n in st.get("nodes", []):
        if n.get("kind") == "l7proxy" and n.get("replica"):
            serving.setdefault(n["replica"], []).append(n["node_id"])
    victim = max(syncds, key=lambda s: (len(serving.get(s, [])), -syncds.index(s)))
    survivor = [s for s in syncds if s != victim][0]
    moved = set(serving.get(victim, []))
    service = next(iter(scen["backends"]))
    tables = TableSame(env).start()
    churn = Churn(cl, env["write_yaml"], service, fl["churn_ms"] / 1000.0).start()
    time.sleep(0.5)  # the churn running before the kill (a duration, not a wait)
    mark = cl.procs[survivor].log_size()
    bytes0 = metric(env, hosts[survivor], "edge_syncd_push_bytes_total")
    pushes0 = metric(env, hosts[survivor], "edge_syncd_pushes_total")
    t0 = time.monotonic()
    cl.procs[victim].signal(signal.SIGKILL)
    synced_at = {r: 0.0 for r in replicas if r not in moved}
    deadline = t0 + fl["synced_within"]
    try:
        while len(synced_at) < len(replicas) and time.monotonic() < deadline + 10:
            now = time.monotonic()
            s = cl.status_json([survivor]) or {}
            for n in s.get("nodes", []):
                if (n.get("kind") == "l7proxy" and n["node_id"] not in synced_at
                        and n["state"] == "SYNCED"):
                    synced_at[n["node_id"]] = now - t0
            time.sleep(0.05)
        bytes1 = metric(env, hosts[survivor], "edge_syncd_push_bytes_total")
        pushes1 = metric(env, hosts[survivor], "edge_syncd_pushes_total")
        time.sleep(fl["duration"])
    finally:
        churn.stop()
    ok = True
    late = {r: t for r, t in synced_at.items() if t > fl["synced_within"]}
    missing = [r for r in replicas if r not in synced_at]
    per_proxy = ", ".join(f"{r} {synced_at[r]:.2f}s" if r in moved else f"{r} (on {survivor})"
                          for r in replicas if r in synced_at)
    if missing or late:
        out.append(f"    FAIL not SYNCED on {survivor} within {fl['synced_within']}s: "
                   f"missing {missing}, late {late}")
        ok = False
    lost = []
    try:
        cl.write_marker()
        cl.wait_generation(replicas, timeout=30)
    except RuntimeError as e:
        lost.append(str(e))
    for r in replicas:
        a = env["send"]({"host": "churn.failover.test", "path": f"/v{churn.last}/x",
                         "expect": {}}, hosts[r], 80)
        if a.status != 200:
            lost.append(f"{r}:{a.status or a.error}")
    tables.stop()
    resync = resync_report(cl.procs[survivor].log_since(0), mark, moved)
    full_known = {n: r for n, r in resync.items() if r[2] and r[3]}
    if full_known:
        out.append(f"    FAIL full push to proxies whose state {survivor} had: "
                   f"{ {n: r[3][0] for n, r in full_known.items()} }")
        ok = False
    if tables.bad or not tables.samples or tables.first != tuple(sorted(replicas)):
        out.append(f"    FAIL l4lb tables differ, changed or miss a replica ({tables.samples} "
                   f"samples, first {tables.first}): {tables.bad[:3]}")
        ok = False
    if lost:
        out.append(f"    FAIL the last change (/v{churn.last}) not served: {lost}")
        ok = False
    if not ok:
        return None
    how = ", ".join(f"{n} {r[1]}{'' if r[2] else ' (state unknown to ' + survivor + ')'}"
                    for n, r in sorted(resync.items()))
    return (f"killed {victim} (served {','.join(sorted(moved)) or 'none'}); SYNCED on "
            f"{survivor}: {per_proxy}; resync: {how or 'none needed'}; {survivor} pushed "
            f"{int(bytes1 - bytes0)} bytes in {int(pushes1 - pushes0)} pushes from the kill until "
            f"all SYNCED (routes changing every {fl['churn_ms']} ms), 0 full; "
            f"{churn.last + 1} changes, the last served by every proxy; l4lb tables identical "
            f"in {tables.samples} samples")
