"""report — turns the rows of a load-test run into a Markdown table, JSON
and a PNG plot (gnuplot).

Ratios: for every edge row, edge's CPU per unit and rate divided by the same
figures of each peer measured in the same run with the same variant
(CPU ratio < 1 and rate ratio > 1 favour edge). Peers measured in the same
invocation on the same machine are the only fair yardstick (DESIGN §10).

Callers: loadtest.py.
"""

import json
import os
import shutil
import subprocess

PEERS = ("nginx", "haproxy")
UNIT_RATE = {"req": "req/s", "conn": "conn/s", "handshake": "hs/s", "MB": "MiB/s"}


def add_ratios(rows):
    """Sets row["ratios"] = {peer: {"cpu": x, "rate": y}} on edge rows."""
    for r in rows:
        if not r["proxy"].startswith("edge") or r["status"] != "ok":
            continue
        r["ratios"] = {}
        for peer in PEERS:
            p = [x for x in rows if x["proxy"] == peer and x["variant"] == r["variant"]
                 and x["status"] == "ok"]
            if not p:
                continue
            p = p[0]
            r["ratios"][peer] = {
                "cpu": r["cpu_us"] / p["cpu_us"] if r["cpu_us"] and p["cpu_us"] else None,
                "rate": r["rate"] / p["rate"] if r["rate"] and p["rate"] else None,
            }


def _f(v, fmt="%.1f"):
    return "—" if v is None else fmt % v


def _ratio(r, peer, key):
    v = r.get("ratios", {}).get(peer, {}).get(key)
    return "—" if v is None else "%.2f×" % v


def markdown(run):
    out = ["# edge load test — %s" % run["started"], "",
           "`%s`  " % run["command"],
           "%s; %s s per side%s%s; client and proxies share the machine (%s cores): "
           "compare the ratios, not the absolute figures." %
           (run["machine"], _f(run["duration"], "%g"),
            ", median of %d interleaved runs" % run["repeat"] if run.get("repeat", 1) > 1 else "",
            " (quick mode)" if run["quick"] else "", run["cores"]), ""]
    out += summary(run)
    for sc in run["scenarios"]:
        out += ["## %s" % sc["name"], "", sc["description"] + ("  " if sc.get("elapsed_s") else ""),
                ]
        if sc.get("elapsed_s") is not None:
            out[-1] += "(%.0f s)" % sc["elapsed_s"]
        out.append("")
        if sc.get("error"):
            out += ["**failed:** %s" % sc["error"], ""]
        rows = sc["rows"]
        if not rows:
            continue
        if any(r.get("kind") == "hostile" for r in rows):
            import hostile
            out += hostile.markdown(rows) + [""]
            continue
        out += ["| proxy | variant | rate | p50 ms | p99 ms | p99.9 ms | errors | CPU µs/unit "
                "| RSS MB (peak) | CPU vs nginx | CPU vs HAProxy | rate vs nginx "
                "| rate vs HAProxy |",
                "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        notes = []
        for r in rows:
            if r["status"] != "ok":
                out.append("| %s | %s | %s: %s | | | | | | | | | | |" %
                           (r["proxy"], r["variant"], r["status"],
                            _cell(r["reason"].splitlines()[0] if r["reason"] else "")))
                if r["status"] == "failed" and "\n" in r["reason"]:
                    notes.append("%s failed: %s" % (" ".join(x for x in (r["proxy"], r["variant"]) if x),
                                                       _cell(r["reason"][-400:])))
                continue
            unit = UNIT_RATE.get(r["unit"], r["unit"] + "/s")
            rate = "%s %s" % (_f(r["rate"], "%.0f" if r["rate"] and r["rate"] >= 100 else "%.1f"),
                              unit)
            err = "%d" % r["errors"] if r["errors"] is not None else "—"
            if r["error_detail"]:
                err += " (%s)" % r["error_detail"]
            mem = "%s (%s)" % (_f(r["rss_mb"]), _f(r["hwm_mb"]))
            cpu = "%s /%s" % (_f(r["cpu_us"], "%.1f" if (r["cpu_us"] or 0) < 1000 else "%.0f"),
                              r["unit"])
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["proxy"], r["variant"], rate, _f(r["p50"], "%.2f"), _f(r["p99"], "%.2f"),
                _f(r["p999"], "%.2f"), err, cpu, mem, _ratio(r, "nginx", "cpu"),
                _ratio(r, "haproxy", "cpu"), _ratio(r, "nginx", "rate"),
                _ratio(r, "haproxy", "rate")))
            if r.get("note"):
                notes.append("%s: %s" % (" ".join(x for x in (r["proxy"], r["variant"]) if x),
                                         r["note"]))
        out.append("")
        for n in notes:
            out.append("- " + n)
        if notes:
            out.append("")
    if run.get("plot"):
        out += ["![plot](%s)" % os.path.basename(run["plot"]), ""]
    return "\n".join(out)


def summary(run):
    """One line per scenario and variant: each proxy's CPU per unit and
    edge's ratios — the figures to read first (and to paste in a README)."""
    out = ["## Summary: proxy CPU µs per unit (lower is better) and edge's ratios", "",
           "| scenario | unit | edge | nginx | HAProxy | edge/nginx | edge/HAProxy |",
           "|---|---|--:|--:|--:|--:|--:|"]
    for sc in run["scenarios"]:
        if any(r.get("kind") == "hostile" for r in sc["rows"]):
            continue  # its own table (hostile.markdown)
        variants = []
        for r in sc["rows"]:
            if r["variant"] not in variants:
                variants.append(r["variant"])
        for v in variants:
            rows = [r for r in sc["rows"] if r["variant"] == v]
            if not any(r["status"] != "n/a" for r in rows) and not any(
                    r["proxy"] == "edge" for r in rows):
                continue  # only peers, none applicable: nothing to read
            cells = []
            for proxy in ("edge",) + PEERS:
                r = next((x for x in rows if x["proxy"] == proxy), None)
                if r is None or r["status"] == "n/a":
                    cells.append("n/a" if r else "—")
                elif r["status"] != "ok":
                    cells.append(r["status"])
                else:
                    cells.append(_f(r["cpu_us"], "%.1f" if (r["cpu_us"] or 0) < 1000 else "%.0f"))
            edge = next((x for x in rows if x["proxy"] == "edge"), {})
            unit = next((x["unit"] for x in rows), "req")
            out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                sc["name"] + (" (%s)" % v if v else ""), unit, cells[0], cells[1], cells[2],
                _ratio(edge, "nginx", "cpu"), _ratio(edge, "haproxy", "cpu")))
    return out + [""]


def _cell(s):
    return s.replace("|", "\\|").replace("\n", " ")


def to_json(run):
    return json.dumps(run, indent=2, sort_keys=False)


def plot(run, outdir):
    """Writes outdir/plot.png (throughput, CPU per unit and latency
    percentiles per scenario and proxy). Returns its path, or None with a
    reason when gnuplot is missing or failed."""
    if not shutil.which("gnuplot"):
        return None, "gnuplot not installed"
    labels, per_proxy = [], []
    lat = []
    for sc in run["scenarios"]:
        if any(r.get("kind") == "hostile" for r in sc["rows"]):
            continue
        variants = []
        for r in sc["rows"]:
            if r["variant"] not in variants:
                variants.append(r["variant"])
        for v in variants:
            ok = {r["proxy"]: r for r in sc["rows"] if r["variant"] == v and r["status"] == "ok"}
            if not ok:
                continue
            label = sc["name"] + (" " + v if v else "")
            labels.append(label)
            per_proxy.append(ok)
            for proxy in ("edge",) + PEERS:
                r = ok.get(proxy)
                if r and r["p50"] is not None:
                    lat.append(("%s / %s" % (label, proxy), r["p50"], r["p99"], r["p999"]))
    if not labels:
        return None, "no measured rows"
    data = os.path.join(outdir, "plot.dat")
    latf = os.path.join(outdir, "latency.dat")
    with open(data, "w") as f:
        f.write("# label edge nginx haproxy edge_cpu nginx_cpu haproxy_cpu\n")
        for label, ok in zip(labels, per_proxy):
            vals = []
            for key in ("rate", "cpu_us"):
                for proxy in ("edge",) + PEERS:
                    r = ok.get(proxy)
                    vals.append("%g" % r[key] if r and r[key] else "-")
            f.write('"%s" %s\n' % (label, " ".join(vals)))
    with open(latf, "w") as f:
        f.write("# label p50 p99 p999\n")
        for label, a, b, c in lat:
            f.write('"%s" %g %g %g\n' % (label, max(a, 1e-3), max(b, 1e-3), max(c, 1e-3)))
    png = os.path.join(outdir, "plot.png")
    height = 900 + 22 * len(lat)
    script = """
set terminal pngcairo size 1400,%(h)d font "sans,9"
set output "%(png)s"
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set key top right
set grid ytics
set logscale y
set xtics rotate by -30 left
set multiplot layout 3,1 title "edge vs nginx vs HAProxy — %(title)s (1 worker each; compare ratios)"
set size 1,0.28
set origin 0,0.70
set title "throughput (units/s; log scale)"
plot "%(data)s" using 2:xtic(1) title "edge" lc rgb "#1f77b4", "" using 3 title "nginx" lc rgb "#2ca02c", "" using 4 title "HAProxy" lc rgb "#d62728"
set origin 0,0.40
set title "proxy CPU µs per unit (log scale; lower is better)"
plot "%(data)s" using 5:xtic(1) title "edge" lc rgb "#1f77b4", "" using 6 title "nginx" lc rgb "#2ca02c", "" using 7 title "HAProxy" lc rgb "#d62728"
set origin 0,0.0
set size 1,0.38
set title "latency percentiles, ms (log scale)"
set xtics rotate by -45 left font "sans,7"
plot "%(lat)s" using 2:xtic(1) title "p50" lc rgb "#9ecae1", "" using 3 title "p99" lc rgb "#3182bd", "" using 4 title "p99.9" lc rgb "#08519c"
unset multiplot
""" % {"h": height, "png": png, "data": data, "lat": latf, "title": run["started"]}
    gp = os.path.join(outdir, "plot.gp")
    with open(gp, "w") as f:
        f.write(script)
    r = subprocess.run(["gnuplot", gp], capture_output=True, text=True, timeout=60)
    if r.returncode != 0 or not os.path.exists(png):
        return None, "gnuplot failed: " + r.stderr[-300:]
    return png, ""
