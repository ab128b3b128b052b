"""loadtest — the runner behind tests/load/run.sh: lists and runs the named
load-testing scenarios, then writes the report (Markdown table, JSON, PNG
plot) to tests/load/results/<timestamp>/ and prints it.

  loadtest.py list
  loadtest.py SCENARIO... | all  [--quick] [--json] [--duration=S] [--conns=N]
                                 [--repeat=N] [--out=DIR] [--bin-dir=DIR] [--keep]

--quick runs each side for ~2 s (no warm-up) and is the regression guard:
the exit status is non-zero when a scenario failed: a side that should run
did not (a missing tool or binary, a broken feature), measured nothing,
or saw errors it should not have (failover bounds its own: recovery time,
errors per connection, every connection after it). Timings are never
asserted. Only sides that never apply to a peer (nginx-light has no TCP
proxy, edge-only chains) are "n/a" rows; there are no skips.

Invariants: each scenario runs in its own temporary directory and every
process it started is stopped (by PID) before the next one begins; logs of
a failed scenario are copied next to the report.

Callers: tests/load/run.sh (which builds the binaries first).
"""

import argparse
import datetime
import glob
import os
import platform
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import report  # noqa: E402
from scenarios import SCENARIOS, Ctx  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def parse(argv):
    p = argparse.ArgumentParser(prog="tests/load/run.sh",
                                description="edge load-testing scenarios, side by side with "
                                            "nginx and HAProxy")
    p.add_argument("scenarios", nargs="*", help="'list', 'all' or scenario names")
    p.add_argument("--quick", action="store_true",
                   help="~2 s per side; only checks that every scenario completes with zero "
                        "unexpected errors (exit status)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds of load per side (default 10, quick 2)")
    p.add_argument("--conns", type=int, default=50, help="client connections (default 50)")
    p.add_argument("--repeat", type=int, default=1,
                   help="measure each side N times, interleaved with the others, and report "
                        "the medians (default 1; 3 for figures you act on)")
    p.add_argument("--out", default=None, help="report directory (default "
                                               "tests/load/results/<timestamp>)")
    p.add_argument("--bin-dir", default=os.environ.get("EDGE_BIN_DIR", ""),
                   help="where l7proxy/l7proxy and l4lb/l4lb are (bazel-bin)")
    p.add_argument("--attacks", default="",
                   help="hostile only: comma-separated attacks to run (default: all of them)")
    p.add_argument("--keep", action="store_true", help="keep the scenarios' work directories")
    p.add_argument("--dry-run", action="store_true",
                   help="only check the arguments (run.sh does, before building)")
    a = p.parse_args(argv)
    if not a.scenarios:
        p.error("name a scenario, 'all' or 'list'")
    return a


def find_bins(bin_dir):
    bins = {}
    for name, rel in (("l7proxy", "l7proxy/l7proxy"), ("l4lb", "l4lb/l4lb"),
                      ("syncd", "syncd/syncd"), ("syncd_bench", "tests/load/syncd_bench")):
        for cand in ([os.path.join(bin_dir, rel), os.path.join(bin_dir, name)]
                     if bin_dir else []):
            if os.access(cand, os.X_OK) and os.path.isfile(cand):
                bins[name] = cand
                break
    return bins


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, Linux %s" % (cpu, platform.release())


def run_scenario(sc, args, duration, bins, outdir):
    work = tempfile.mkdtemp(prefix="edge-load-%s-" % sc.name)
    env = harness.Env(work, bins)
    ctx = Ctx(sc.name, env, duration, args.quick, args.conns, args.repeat)
    ctx.only = [a for a in args.attacks.split(",") if a] or None
    t0 = time.monotonic()
    res = {"name": sc.name, "description": sc.description, "rows": [], "error": "",
           "expect_errors": sc.expect_errors}
    try:
        res["rows"] = sc.fn(ctx)
    except Exception as e:  # a broken scenario must not stop the others
        res["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        env.close()
    res["elapsed_s"] = time.monotonic() - t0
    failed = res["error"] or any(r["status"] == "failed" for r in res["rows"])
    if failed:
        dest = os.path.join(outdir, "logs", sc.name)
        os.makedirs(dest, exist_ok=True)
        for f in glob.glob(os.path.join(work, "*.log")) + glob.glob(
                os.path.join(work, "*", "error.log")):
            shutil.copy(f, os.path.join(dest, os.path.relpath(f, work).replace("/", "_")))
    if args.keep:
        print("[load] %s: work directory kept: %s" % (sc.name, work), file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)
    report.add_ratios(res["rows"])
    return res


def problems(res):
    """Reasons this scenario fails the regression guard (empty: fine)."""
    out = []
    if res["error"]:
        out.append(res["error"])
    if not res["error"] and not any(r["status"] in ("ok", "failed") for r in res["rows"]):
        out.append("no side measured anything")
    for r in res["rows"]:
        label = "%s %s" % (r["proxy"], r["variant"])
        if r["status"] == "failed":
            out.append("%s failed: %s" % (label.strip(), r["reason"].splitlines()[0]))
        elif r["status"] == "ok" and not r.get("requests"):
            out.append("%s measured nothing" % label.strip())
        elif r["status"] == "ok" and r["errors"] and not res["expect_errors"]:
            out.append("%s: %d errors (%s)" % (label.strip(), r["errors"], r["error_detail"]))
        elif r["status"] not in ("ok", "n/a", "failed"):
            out.append("%s: status %s" % (label.strip(), r["status"]))
    return out


def main(argv):
    args = parse(argv)
    if args.scenarios == ["list"]:
        if args.dry_run:
            return 0
        for name, sc in SCENARIOS.items():
            print("%-20s %s" % (name, sc.description))
        return 0
    names = ([n for n, sc in SCENARIOS.items() if sc.in_all] if args.scenarios == ["all"]
             else args.scenarios)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print("run.sh: unknown scenario %s (try: run.sh list)" % ", ".join(unknown),
              file=sys.stderr)
        return 2
    duration = args.duration if args.duration is not None else (2.0 if args.quick else 10.0)
    if duration <= 0 or duration > 600:
        print("run.sh: --duration must be in (0, 600] seconds", file=sys.stderr)
        return 2
    if args.conns < 1 or args.conns > 5000:
        print("run.sh: --conns must be in [1, 5000]", file=sys.stderr)
        return 2
    if args.repeat < 1 or args.repeat > 20:
        print("run.sh: --repeat must be in [1, 20]", file=sys.stderr)
        return 2
    if args.dry_run:
        return 0
    stamp = datetime.datetime.utcnow().strftime("%Y%m%dT%H%M%SZ")
    outdir = args.out or os.path.join(HERE, "results", stamp)
    os.makedirs(outdir, exist_ok=True)
    bins = find_bins(args.bin_dir)

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    run = {"command": "tests/load/run.sh " + " ".join(argv), "started": stamp,
           "quick": args.quick, "duration": duration, "conns": args.conns,
           "repeat": args.repeat,
           "machine": machine(), "cores": os.cpu_count(), "binaries": bins, "scenarios": []}
    t0 = time.monotonic()
    bad = []
    try:
        for name in names:
            print("[load] %s ..." % name, file=sys.stderr, flush=True)
            res = run_scenario(SCENARIOS[name], args, duration, bins, outdir)
            run["scenarios"].append(res)
            for r in res["rows"]:
                print("[load]   %-8s %-14s %s" % (r["proxy"], r["variant"], _brief(r)),
                      file=sys.stderr, flush=True)
            bad += ["%s: %s" % (name, p) for p in problems(res)]
    except KeyboardInterrupt:
        print("[load] interrupted; writing the partial report", file=sys.stderr)
        bad.append("interrupted")
    run["elapsed_s"] = time.monotonic() - t0
    run["problems"] = bad
    png, why = report.plot(run, outdir)
    run["plot"] = png
    if not png:
        print("[load] no plot: %s" % why, file=sys.stderr)
    md = report.markdown(run)
    if bad:
        md += "\n## Problems\n\n" + "\n".join("- " + b for b in bad) + "\n"
    md += "\nTotal: %.0f s.\n" % run["elapsed_s"]
    with open(os.path.join(outdir, "report.md"), "w") as f:
        f.write(md)
    with open(os.path.join(outdir, "report.json"), "w") as f:
        f.write(report.to_json(run))
    print(report.to_json(run) if args.json else md)
    print("[load] report: %s/report.md (%.0f s)%s" %
          (outdir, run["elapsed_s"], "; PROBLEMS:\n  " + "\n  ".join(bad) if bad else ""),
          file=sys.stderr)
    return 1 if bad else 0


def _brief(r):
    if r["status"] != "ok":
        return "%s: %s" % (r["status"], (r["reason"] or "").splitlines()[0][:150]
                           if r["reason"] else "")
    return "%.0f %s/s, p99 %.2f ms, errors %s, cpu %.1f us/%s" % (
        r["rate"] or 0, r["unit"], r["p99"] or 0, r["errors"], r["cpu_us"] or 0, r["unit"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
