#!/usr/bin/env python3
"""One table from the JSON lines of the Go peer and examples/peerbench.

Usage: compare_table.py RESULTS.jsonl [--criterion target/criterion]

Each measurement row gives the peer's median, ours, their ratio and, where
DESIGN.md sets one, the target and whether it holds. "Ours" is the median
over repetitions of examples/peerbench (the peer's method); with
--criterion, a second column gives criterion's median for the same
measurement (cargo bench, same machine, same run of this script).
"""
import json
import os
import sys


def load(path):
    lines = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                lines.append(json.loads(line))
    return lines


def find(lines, **match):
    """The last line whose fields equal `match`."""
    for line in reversed(lines):
        if all(line.get(k) == v for k, v in match.items()):
            return line
    return None


def med(line, field):
    if line is None or field not in line:
        return None
    v = line[field]
    return v["median"] if isinstance(v, dict) else v


def criterion(root, *parts):
    """criterion's median point estimate (ns) for group/function/param."""
    if root is None:
        return None
    path = os.path.join(root, *parts, "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"]
    except (OSError, KeyError, ValueError):
        return None


def fmt(v, unit):
    if v is None:
        return "–"
    if unit == "ms":
        return f"{v / 1e6:.3g} ms" if v < 1e8 else f"{v / 1e6:,.0f} ms"
    if unit == "us":
        return f"{v / 1e3:.3g} µs"
    if unit == "ns":
        return f"{v:.3g} ns"
    if unit == "B":
        return f"{v:,.1f} B"
    if unit == "/s":
        return f"{v / 1e6:.3g} M/s"
    if unit == "x":
        return f"{v:.3g}×"
    return f"{v:.4g}"


def main():
    args = sys.argv[1:]
    crit_root = None
    if "--criterion" in args:
        i = args.index("--criterion")
        crit_root = args[i + 1]
        del args[i : i + 2]
    lines = load(args[0])
    go = find(lines, bench="env", lang="go")
    rust = find(lines, bench="env", lang="rust")
    rows = []  # (measurement, peer, ours, unit, ratio text, target text, pass, criterion)

    def row(name, peer, ours, unit, ratio=None, target="", ok=None, crit=None):
        rows.append((name, peer, ours, unit, ratio, target, ok, crit))

    for r in (1000, 10000):
        p = find(lines, bench="provider", lang="go", R=r)
        o = find(lines, bench="provider", lang="rust", R=r)
        if p or o:
            pm, om = med(p, "ns_per_get_current_metrics"), med(o, "ns_per_get_current_metrics")
            row(f"provider: one current_metrics call (R={r:,})", pm, om, "ns",
                om / pm if pm and om else None)
            pm, om = med(p, "ns_per_get_monitored_ids"), med(o, "ns_per_get_monitored_ids")
            row(f"provider: list the ids (R={r:,})", pm, om, "us", om / pm if pm and om else None)

    targets = {(10000, 1000): 1 / 4, (10000, 0): 1 / 20}
    for r in (1000, 10000):
        for a in (0, 100, 1000):
            p = find(lines, bench="tick", lang="go", R=r, A=a)
            o = find(lines, bench="tick", lang="rust", R=r, A=a)
            if not (p or o):
                continue
            pm, om = med(p, "ns_per_tick"), med(o, "ns_per_tick")
            ratio = om / pm if pm and om else None
            t = targets.get((r, a))
            row(f"tick, R={r:,} A={a:,} (peer in memory; ours durable)", pm, om, "ms", ratio,
                f"≤ 1/{round(1 / t)} of peer" if t else "",
                (ratio <= t) if (t and ratio) else None,
                criterion(crit_root, "tick", f"R{r}", f"A{a}"))

    p = find(lines, bench="tick", lang="go", R=10000, A=0) or find(lines, bench="tick", lang="go", A=0)
    o = find(lines, bench="heap", lang="rust")
    pm, om = med(p, "heap_bytes_per_point"), med(o, "heap_bytes_per_point")
    if pm or om:
        row(f"heap per buffered point (R={(o or {}).get('R', '?'):,}, full buffers)", pm, om, "B",
            om / pm if pm and om else None, "≤ 80 B", om is not None and om <= 80)

    p = find(lines, bench="summary", lang="go")
    o = find(lines, bench="summary", lang="rust")
    if p or o:
        pm, om = med(p, "ns_per_compute_summary"), med(o, "ns_per_compute_summary")
        row("summary of 500 points × 8 metrics (computation only)", pm, om, "us",
            om / pm if pm and om else None)

    pc = med(find(lines, bench="complete", lang="go"), "ns_per_stop_recording")
    ours_complete = {}
    for w in (100, 1000):
        save = med(find(lines, bench="persist", lang="go", W=w), "save_ms")
        o = find(lines, bench="complete", lang="rust", W=w)
        om = med(o, "ns_per_stop_recording")
        if om is None and save is None:
            continue
        ours_complete[w] = om
        pm = pc + save * 1e6 if (pc is not None and save is not None) else None
        ratio = om / pm if pm and om else None
        row(f"complete a 500-point window, {w:,} stored (peer: completeWindow + whole-file save)",
            pm, om, "ms", ratio, "≥ 50× faster",
            (ratio <= 1 / 50) if ratio else None,
            criterion(crit_root, "complete", "stop_recording", str(w)))
    if ours_complete.get(100) and ours_complete.get(1000):
        g = ours_complete[1000] / ours_complete[100]
        row("complete: 1,000 stored ÷ 100 stored (flat)", None, g, "x", None, "≤ 1.5×", g <= 1.5)

    ours_open = {}
    for w in (100, 1000):
        p = find(lines, bench="persist", lang="go", W=w)
        o = find(lines, bench="persist", lang="rust", W=w)
        if not (p or o):
            continue
        pm = med(p, "load_ms")
        om = med(o, "open_ms")
        pm = pm * 1e6 if pm is not None else None
        om = om * 1e6 if om is not None else None
        ours_open[w] = om
        ratio = om / pm if pm and om else None
        row(f"open with {w:,} stored windows of 500 points (peer: loadFromDisk)", pm, om, "ms",
            ratio, "< 50 ms" if w == 1000 else "",
            (om < 50e6) if (w == 1000 and om) else None,
            criterion(crit_root, "open", "stored_windows", str(w)))
    if ours_open.get(100) and ours_open.get(1000):
        g = ours_open[1000] / ours_open[100]
        row("open: 1,000 stored ÷ 100 stored (flat)", None, g, "x", None, "≤ 1.5×", g <= 1.5)
    for w in (100, 1000):
        p = find(lines, bench="persist", lang="go", W=w)
        o = find(lines, bench="persist", lang="rust", W=w)
        if p or o:
            pm, om = med(p, "file_bytes_per_point"), med(o, "file_bytes_per_point")
            row(f"bytes per stored point on disk, {w:,} windows (peer: JSON file; ours: db file)",
                pm, om, "B", om / pm if pm and om else None)

    for w in (100, 1000):
        o = find(lines, bench="read", lang="rust", W=w)
        if o:
            row(f"read window(id), 500 points, {w:,} stored", None, med(o, "window_us") * 1e3, "us",
                crit=criterion(crit_root, "read", "window", str(w)))
            row(f"read recent_windows(100) with points, {w:,} stored", None,
                med(o, "recent_windows_100_ms") * 1e6, "ms",
                crit=criterion(crit_root, "read", "recent_windows_100", str(w)))

    for o in [l for l in lines if l.get("bench") == "storm" and l.get("lang") == "rust"]:
        row(f"tick closing {o['A']:,} windows of 501 points recorded together", None,
            med(o, "ns_closing_tick"), "ms")

    o = find(lines, bench="ingest", lang="rust")
    sq = find(lines, bench="sqlite", layout="normalized")
    if o:
        om, raw, speed = med(o, "values_per_s"), med(o, "raw_rusqlite_values_per_s"), med(o, "speed_vs_raw")
        crit = None
        c_ours = criterion(crit_root, "ingest", "push_samples")
        c_raw = criterion(crit_root, "ingest", "raw_rusqlite")
        if c_ours and c_raw:
            crit = c_raw / c_ours
        row("bulk ingest, values/s (peer column: raw rusqlite, same rows, same run)", raw, om, "/s",
            speed, "≥ 50% of raw", speed >= 0.5 if speed else None, crit)
        if sq:
            row("  reference: Python sqlite3, normalized rows, 10k-row transactions",
                med(sq, "values_per_s"), None, "/s")

    pf = find(lines, bench="persist", lang="go", W=100)
    for o in [l for l in lines if l.get("bench") == "disk" and l.get("lang") == "rust"]:
        peer_pp = pf["file_bytes"] / 500 if pf else None  # whole file per 500-point completion
        row(f"disk bytes written per point, A={o['A']:,} (peer: whole-file save per completion at W=100)",
            peer_pp, o["write_bytes_per_point"], "B",
            o["write_bytes_per_point"] / peer_pp if peer_pp else None)
        row(f"  … ours ÷ stored size per point ({o['stored_bytes_per_point']:.0f} B), A={o['A']:,}",
            None, o["write_amplification"], "x", None, "≤ 3×", o["write_amplification"] <= 3)

    head = ["measurement", "peer (Go) median", "ours median", "ours ÷ peer", "target", "pass"]
    if crit_root:
        head.append("ours, criterion median")
    print(f"Peer: {go.get('go') if go else '?'}; ours: {rust.get('rustc') if rust else '?'}, "
          f"SQLite {rust.get('sqlite') if rust else '?'}; {rust.get('cpu_model') if rust else '?'}, "
          f"{rust.get('num_cpu') if rust else '?'} CPUs; {rust.get('time') if rust else ''}")
    print()
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, peer, ours, unit, ratio, target, ok, crit in rows:
        if ratio is None:
            ratio_text = "–"
        elif "ingest" in name:
            ratio_text = f"{ratio:.0%} of raw"
        else:
            ratio_text = f"1/{1 / ratio:.3g}" if ratio < 1 else f"{ratio:.3g}"
        cells = [name, fmt(peer, unit), fmt(ours, unit), ratio_text,
                 target, "" if ok is None else ("pass" if ok else "**FAIL**")]
        if crit_root:
            if crit is not None and "ingest" in name:
                cells.append(f"{crit:.0%} of raw")
            else:
                cells.append(fmt(crit, unit) if crit is not None else "–")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
