#!/usr/bin/env python3
"""Validates every tests/e2e/scenarios/*.yaml against the format in
lib/scenario.py (keys, capabilities, fault kinds, Kubernetes objects) and
checks that every Service an Ingress names is either a declared backend or
defined in the scenario. No network, no root: the fast half of the e2e
suite. Usage: check_scenarios.py REPO_ROOT"""
import glob
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import scenario as sc  # noqa: E402


def services_named(obj):
    spec = obj.get("spec") or {}
    out = []
    if spec.get("defaultBackend"):
        out.append(spec["defaultBackend"]["service"]["name"])
    for rule in spec.get("rules") or []:
        for p in (rule.get("http") or {}).get("paths") or []:
            out.append(p["backend"]["service"]["name"])
    return out


def main(root):
    files = sorted(glob.glob(os.path.join(root, "tests/e2e/scenarios/*.yaml")))
    failed = 0
    names = set()
    for f in files:
        try:
            s = sc.load(f, root)
            if s["name"] in names:
                raise sc.ScenarioError(f"{os.path.basename(f)}: duplicate name {s['name']}")
            names.add(s["name"])
            known = set(s["backends"]) | {o["metadata"]["name"] for o in s["object_list"]
                                          if o["kind"] == "Service"}
            for o in s["object_list"]:
                if o["kind"] != "Ingress":
                    continue
                cls = (o.get("spec") or {}).get("ingressClassName", "edge")
                for svc in services_named(o):
                    if svc not in known and cls == "edge":
                        raise sc.ScenarioError(f"{os.path.basename(f)}: Ingress "
                                               f"{o['metadata']['name']} names unknown Service {svc}")
            print(f"ok    {s['name']}: {len(s['requests'])} requests, {len(s['faults'])} faults")
        except sc.ScenarioError as e:
            print(f"FAIL  {e}")
            failed += 1
    # The validator itself must reject a broken scenario.
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as t:
        t.write("name: Bad Name\nrequests: [{host: x}]\n")
        t.flush()
        try:
            sc.load(t.name, root)
            print("FAIL  a scenario with a bad name and no expect was accepted")
            failed += 1
        except sc.ScenarioError:
            pass
    print(f"{len(files) - failed} passed, {failed} failed")
    return 1 if failed or not files else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
