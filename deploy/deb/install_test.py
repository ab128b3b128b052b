#!/usr/bin/env python3
"""Installs the edge .debs into a fresh root and runs the cluster from the
installed units' command lines.

Usage: install_test.py BIN_DIR   (as root; a missing ability is a loud skip)

1. deploy/deb/build.sh --bin-dir=BIN_DIR: the three packages.
2. In a private mount + network namespace (no route out; loopback only):
   an overlay whose lower layer is this machine's root and whose upper layer
   is empty, so dpkg sees a real system and changes nothing outside; there,
   `dpkg -i` of the three packages (maintainer scripts run), then checks of
   what they installed (user, permissions, conffiles) and
   `systemd-analyze verify` of every unit (any warning fails).
3. Writes the operator's part (/etc/edge/*.env, manifests of three backends)
   and starts edge-syncd, edge-l7proxy@1..3 and edge-l4lb the way systemd
   would from the installed unit files: EnvironmentFile= read and $VAR
   expanded into ExecStart= split on whitespace, %i replaced, run as User=
   (or a fresh unprivileged uid for DynamicUser=) with exactly the unit's
   AmbientCapabilities= and bounding set, NoNewPrivileges, and the unit's
   State/Cache/LogsDirectory= created and owned like systemd does.
4. Requests through l4lb on :80 (it needs its CAP_NET_BIND_SERVICE) must be
   answered by the backends through the l7 replicas; edge-l4lb-keepalived
   must render a configuration keepalived accepts.
Waits poll with deadlines; every process is stopped by PID.
"""
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

if os.environ.get("TEST_SRCDIR"):  # under bazel test: $0 is named after the target
    ROOT = os.path.join(os.environ["TEST_SRCDIR"], os.environ.get("TEST_WORKSPACE", "edge"))
else:
    ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
HERE = os.path.join(ROOT, "deploy", "deb")
DEADLINE = 60
failures = []


def ok(msg):
    print("ok  ", msg, flush=True)


def fail(msg):
    failures.append(msg)
    print("FAIL", msg, flush=True)


def check(cond, msg):
    (ok if cond else fail)(msg)
    return cond


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, **kw)


def poll(cond, what, procs=(), timeout=DEADLINE):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        for name, p in procs:
            if p.poll() is not None:
                raise SystemExit("%s exited (status %s)" % (name, p.returncode))
        time.sleep(0.1)
    raise SystemExit("timed out: " + what)


# ---- the host side ---------------------------------------------------------

def host_main(bin_dir):
    if os.geteuid() != 0 or run(["unshare", "--mount", "--net", "true"]).returncode != 0:
        # the shared skip helper: loud, and a failure under CI=true
        return subprocess.run(["bash", "-c", '. "$1"; edge_platform_skip "$2"', "_",
                               os.path.join(ROOT, "tests/lib/skip.sh"),
                               "needs root and unshare --mount --net"]).returncode
    tmp = tempfile.mkdtemp(prefix="edge-deb-")
    out = os.path.join(tmp, "deb")
    r = run(["bash", os.path.join(HERE, "build.sh"), "--bin-dir=" + bin_dir, "--out=" + out])
    if not check(r.returncode == 0, "build.sh built the packages"):
        print(r.stdout, r.stderr)
        return 1
    debs = sorted(os.path.join(out, f) for f in os.listdir(out) if f.endswith(".deb"))
    check([os.path.basename(d).split("_")[0] for d in debs] ==
          ["edge-l4lb", "edge-l7proxy", "edge-syncd"], "three packages: %s" %
          " ".join(os.path.basename(d) for d in debs))
    for d in debs:
        info = run(["dpkg-deb", "--info", d]).stdout
        check("Depends: " in info and "libuv1" in info, "%s declares its libraries"
              % os.path.basename(d))
        check("conffiles" in info, "%s has conffiles" % os.path.basename(d))
    # everything else happens in a namespace of its own
    r = subprocess.run(["unshare", "--mount", "--net", "--fork", sys.executable,
                        os.path.abspath(__file__), "--inside", tmp] + debs)
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures or r.returncode != 0 else 0


# ---- inside the namespace ----------------------------------------------------

def make_root(tmp):
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    up, work, root = (os.path.join(tmp, d) for d in ("upper", "work", "root"))
    for d in (up, work, root):
        os.makedirs(d)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    "lowerdir=/,upperdir=%s,workdir=%s" % (up, work), root], check=True)
    subprocess.run(["mount", "-t", "proc", "proc", os.path.join(root, "proc")], check=True)
    subprocess.run(["mount", "--rbind", "/dev", os.path.join(root, "dev")], check=True)
    for d in ("tmp", "run"):
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", os.path.join(root, d)], check=True)
    return root


def chroot(root, *argv, **kw):
    return run(["chroot", root] + list(argv), **kw)


def unit_file(root, name):
    with open(os.path.join(root, "lib/systemd/system", name)) as f:
        return f.read()


def parse_unit(text, instance=None):
    """[Service] keys -> list of values (repeatable keys keep every value)."""
    keys = {}
    section = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        if section != "Service" or "=" not in line:
            continue
        k, v = line.split("=", 1)
        if instance is not None:
            v = v.replace("%i", instance)
        keys.setdefault(k.strip(), []).append(v.strip())
    return keys


def read_env(root, path):
    env = {}
    for line in open(os.path.join(root, path.lstrip("/"))):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        k, v = line.split("=", 1)
        env[k.strip()] = " ".join(shlex.split(v))  # systemd removes the quotes
    return env


def exec_argv(unit, env):
    """ExecStart= as systemd expands it: $VAR splits on whitespace, ${VAR} not."""
    cmd = unit["ExecStart"][-1]
    out = []
    for word in cmd.split():
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if m:
            out += env.get(m.group(1), "").split()
        else:
            out.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}",
                              lambda mm: env.get(mm.group(1), ""), word))
    return out


def caps(unit, key):
    v = " ".join(unit.get(key, [])).split()
    return [c.lower().replace("cap_", "") for c in v]


def start_unit(root, name, instance, uid_pool, logs):
    unit = parse_unit(unit_file(root, name), instance)
    env = {}
    for f in unit.get("EnvironmentFile", []):
        env.update(read_env(root, f.lstrip("-")))
    argv = exec_argv(unit, env)
    if unit.get("DynamicUser", ["no"])[-1] == "yes":
        uid = gid = uid_pool.pop(0)
        who = ["--reuid=%d" % uid, "--regid=%d" % gid, "--clear-groups"]
    else:
        user = unit["User"][-1]
        pw = chroot(root, "getent", "passwd", user).stdout.split(":")
        uid, gid = int(pw[2]), int(pw[3])
        who = ["--reuid=%d" % uid, "--regid=%d" % gid, "--clear-groups"]
    for key, base, mode_key in (("StateDirectory", "var/lib", "StateDirectoryMode"),
                                ("CacheDirectory", "var/cache", "CacheDirectoryMode"),
                                ("LogsDirectory", "var/log", "LogsDirectoryMode")):
        for d in " ".join(unit.get(key, [])).split():
            path = os.path.join(root, base, d)
            os.makedirs(path, exist_ok=True)
            os.chown(path, uid, gid)
            os.chmod(path, int(unit.get(mode_key, ["0755"])[-1], 8))
    amb = caps(unit, "AmbientCapabilities")
    bound = caps(unit, "CapabilityBoundingSet")
    pv = ["setpriv"] + who
    pv += ["--bounding-set=-all" + "".join(",+" + c for c in bound)]
    pv += ["--inh-caps=-all" + "".join(",+" + c for c in amb)]
    pv += ["--ambient-caps=-all" + "".join(",+" + c for c in amb)]
    if unit.get("NoNewPrivileges", ["no"])[-1] == "yes":
        pv.append("--no-new-privs")
    label = name.replace("@.service", "@" + (instance or "")).replace(".service", "")
    f = open(os.path.join(logs, label + ".log"), "w")
    umask = int(unit.get("UMask", ["0022"])[-1], 8)
    p = subprocess.Popen(["chroot", root] + pv + ["--"] + argv, stdout=f, stderr=subprocess.STDOUT,
                         preexec_fn=lambda: os.umask(umask))
    print("     started %s as uid %d: %s" % (label, uid, " ".join(argv)), flush=True)
    return label, p, uid


def http_get(url, host=None, timeout=3):
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read().decode()  # names case-insensitive (RFC 9110)
    except urllib.error.HTTPError as e:
        return e.code, {}, ""
    except OSError:
        return 0, {}, ""


MANIFESTS = """apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: edge
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: edge.dev/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  ports: [{name: http, port: 80, targetPort: 18080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: default
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: 18080}]
endpoints:
  - addresses: ["127.0.1.1"]
  - addresses: ["127.0.1.2"]
  - addresses: ["127.0.1.3"]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: default}
spec:
  ingressClassName: edge
  rules:
    - host: web.example.test
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"""


def inside_main(tmp, debs):
    root = make_root(tmp)
    os.makedirs(os.path.join(root, "pkg"), exist_ok=True)
    for d in debs:
        shutil.copy(d, os.path.join(root, "pkg"))
    r = chroot(root, "sh", "-c", "dpkg -i /pkg/*.deb")
    if not check(r.returncode == 0, "dpkg -i installed edge-syncd, edge-l7proxy, edge-l4lb"):
        print(r.stdout, r.stderr)
        return 1
    q = chroot(root, "dpkg-query", "-W", "-f=${Package} ${Status}\n", "edge-syncd",
               "edge-l7proxy", "edge-l4lb").stdout
    check(q.count("install ok installed") == 3, "dpkg reports the three installed")
    check(chroot(root, "getent", "passwd", "edge-syncd").returncode == 0,
          "postinst created the edge-syncd system user")
    st = os.stat(os.path.join(root, "etc/edge/manifests"))
    grp = chroot(root, "getent", "group", "edge-syncd").stdout.split(":")
    check(oct(st.st_mode & 0o777) == "0o750" and st.st_uid == 0 and str(st.st_gid) == grp[2],
          "/etc/edge/manifests is 0750 root:edge-syncd")
    conf = chroot(root, "dpkg-query", "-W", "-f=${Conffiles}\n", "edge-l4lb").stdout
    check("/etc/edge/l4lb.env" in conf and "/etc/edge/keepalived.env" in conf,
          "edge-l4lb conffiles: l4lb.env, keepalived.env")
    units = ["edge-syncd.service", "edge-l7proxy.service", "edge-l7proxy@.service",
             "edge-l4lb.service"]
    for u in units:
        target = u.replace("@.service", "@1.service")
        if "@" in u:  # verify an instance: the template needs its env file
            with open(os.path.join(root, "etc/edge/l7proxy-1.env"), "w") as f:
                f.write('L7PROXY_OPTS="--http=127.0.0.1:1"\n')
        r = chroot(root, "sh", "-c", "cd /lib/systemd/system && systemd-analyze verify %s" % target)
        msg = (r.stdout + r.stderr).strip()
        check(r.returncode == 0 and msg == "", "systemd-analyze verify %s%s" %
              (target, ": " + msg if msg else " (no warning)"))
        text = unit_file(root, u)
        for want in ("ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet="):
            check(want in text, "%s has %s" % (u, want))
    check("DynamicUser=yes" in unit_file(root, "edge-l7proxy.service") and
          "DynamicUser=yes" in unit_file(root, "edge-l4lb.service") and
          "User=edge-syncd" in unit_file(root, "edge-syncd.service"),
          "l7proxy/l4lb run as DynamicUser, syncd as edge-syncd")

    # ---- the operator's part: settings and manifests
    etc = os.path.join(root, "etc/edge")
    with open(os.path.join(etc, "manifests/web.yaml"), "w") as f:
        f.write(MANIFESTS)
    os.chown(os.path.join(etc, "manifests/web.yaml"), 0, int(grp[2]))
    os.chmod(os.path.join(etc, "manifests/web.yaml"), 0o640)
    for i in (1, 2, 3):
        with open(os.path.join(etc, "l7proxy-%d.env" % i), "w") as f:
            f.write('L7PROXY_OPTS="--syncd=127.0.0.1:7000 --insecure --node-id=l7-%d '
                    '--http=127.0.0.1:81%d0 --advertise=127.0.0.1:81%d0 --admin=127.0.0.1:99%d1 '
                    '--workers=1 --proxy-protocol --proxy-protocol-trusted=127.0.0.1/32 '
                    '--cache-dir=/var/cache/edge-l7proxy/%d --access-log-format=json '
                    '--access-log-path=/var/log/edge-l7proxy/%d/access.log"\n' % (i, i, i, i, i, i))
    with open(os.path.join(etc, "l4lb.env"), "w") as f:
        f.write('L4LB_OPTS="--listen=127.0.0.1:80 --syncd=127.0.0.1:7000 --insecure '
                '--admin=127.0.0.1:9100 --node-id=lb-a --workers=1 --check-interval=200ms '
                '--cache-dir=/var/cache/edge-l4lb"\n')
    # syncd.env: the packaged default (127.0.0.1:7000, /etc/edge/manifests)
    ka = open(os.path.join(etc, "keepalived.env")).read()  # the packaged example,
    # keepalived wants a real interface for VRRP: a veth pair inside this
    # namespace (which has no route out) stands in for eth0
    subprocess.run(["ip", "link", "add", "edge0", "type", "veth", "peer", "name", "edge1"],
                   check=True)
    subprocess.run(["ip", "addr", "add", "192.0.2.11/24", "dev", "edge0"], check=True)
    subprocess.run(["ip", "link", "set", "edge0", "up"], check=True)
    ka = ka.replace("IFACE=eth0", "IFACE=edge0")
    with open(os.path.join(etc, "keepalived.env"), "w") as f:
        f.write(ka)

    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    procs = []
    backend = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "deploy/local/backend.py")] +
        ["web-%d=127.0.1.%d:18080" % (i, i) for i in (1, 2, 3)],
        stdout=open(os.path.join(logs, "backend.log"), "w"), stderr=subprocess.STDOUT)
    procs.append(("backend", backend))
    uids = [61184 + k for k in range(10)]  # systemd's DynamicUser range
    try:
        name, p, uid = start_unit(root, "edge-syncd.service", None, uids, logs)
        procs.append((name, p))
        poll(lambda: http_get("http://127.0.0.1:7001/readyz")[0] == 200, "syncd ready", procs)
        ok("edge-syncd is ready (the packaged syncd.env, reading the 0640 manifests)")
        for i in ("1", "2", "3"):
            name, p, _ = start_unit(root, "edge-l7proxy@.service", i, uids, logs)
            procs.append((name, p))
        name, p, l4uid = start_unit(root, "edge-l4lb.service", None, uids, logs)
        procs.append((name, p))
        for port in (9911, 9921, 9931, 9100):
            poll(lambda: http_get("http://127.0.0.1:%d/readyz" % port)[0] == 200,
                 "/readyz on %d" % port, procs)
        ok("edge-l7proxy@1..3 and edge-l4lb are ready")
        check(run(["ss", "-ltnp", "sport = :80"]).stdout.count("l4lb") >= 1,
              "l4lb (uid %d) bound port 80 with its ambient CAP_NET_BIND_SERVICE" % l4uid)
        seen = set()
        good = 0
        for _ in range(30):
            st, hdrs, body = http_get("http://127.0.0.1:80/x", "web.example.test")
            good += st == 200
            seen.add(hdrs.get("X-Backend", ""))
        check(good == 30, "30 of 30 requests through l4lb -> l7proxy -> backend answered 200")
        check(len(seen - {""}) == 3, "all three backends answered: %s" % sorted(seen))
        served = [i for i in (1, 2, 3)
                  if os.path.exists(os.path.join(root, "var/log/edge-l7proxy/%d/access.log" % i))
                  and os.path.getsize(os.path.join(root, "var/log/edge-l7proxy/%d/access.log" % i))]
        check(len(served) >= 2, "access logs written by replicas %s under LogsDirectory" % served)
        state = os.path.join(root, "var/lib/edge-syncd")
        files = os.listdir(state)
        owned = all(os.stat(os.path.join(state, f)).st_uid == uid for f in files)
        check(files and owned, "syncd's state in /var/lib/edge-syncd is owned by edge-syncd: %s"
              % files)
        r = chroot(root, "edge-l4lb-keepalived", "/etc/edge/keepalived.env",
                   "/tmp/keepalived.conf")
        check(r.returncode == 0 and "wrote" in r.stdout,
              "edge-l4lb-keepalived renders a configuration keepalived --config-test accepts%s"
              % ("" if r.returncode == 0 else ": " + r.stderr.strip()))
        path = os.path.join(root, "tmp/keepalived.conf")
        rendered = open(path).read() if os.path.exists(path) else ""
        check("/usr/lib/edge/check_l4lb.sh 127.0.0.1:9100" in rendered and "192.0.2.10/24" in rendered,
              "the rendered keepalived.conf tracks l4lb's /readyz and holds the VIP")
    finally:
        for name, p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in reversed(procs):
            try:
                rc = p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait()
                fail("%s did not stop on SIGTERM" % name)
            if name != "backend" and rc != 0:
                fail("%s exited with status %d (see %s)" % (name, rc, logs))
    if failures:
        for f in sorted(os.listdir(logs)):
            print("---- %s" % f)
            print(open(os.path.join(logs, f)).read()[-2000:])
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--inside":
        sys.exit(inside_main(sys.argv[2], sys.argv[3:]))
    rc = host_main(os.path.abspath(sys.argv[1]))
    print("deb install test: %s" % ("FAILED" if rc else "passed"))
    sys.exit(rc)
