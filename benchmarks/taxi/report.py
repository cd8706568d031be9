"""The experiment's results: medians per measurement, the agreement check, table and plot."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from .common import HHI_RTOL, MODES, PHASES, BenchError
from .model import with_rtt

PLOT_NEEDS = "--plot needs matplotlib: pip install sqlmpc[plot]"


def require_matplotlib() -> str | None:
    """None if --plot can draw, else the one line saying what to install (checked before the
    long run, not after it)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return PLOT_NEEDS
    return None


def summarise(results: dict[tuple, list[dict]], args) -> list[dict]:
    """One record per (rows, mode, phase): the median of its runs, every run's seconds, and
    the medians of sqlmpc's time breakdown. Every run must give the same HHI."""
    records = []
    for (n, mode, phase), runs in sorted(results.items(),
                                         key=lambda kv: (PHASES.index(kv[0][2]), kv[0][0],
                                                         MODES.index(kv[0][1]))):
        secs = [r["seconds"] for r in runs]
        for r in runs[1:]:  # every run, not only the first, must give the same index
            if not math.isclose(r["hhi"], runs[0]["hhi"], rel_tol=HHI_RTOL, abs_tol=HHI_RTOL):
                raise BenchError(f"{mode} ({phase}) at {n:,} rows gave HHI {runs[0]['hhi']!r} "
                                 f"and {r['hhi']!r} in two runs")
        rec = {"rows": n, "mode": mode, "phase": phase, "seconds": statistics.median(secs),
               "hhi": runs[0]["hhi"], "runs": secs, "layout": args.layout,
               "parties": args.parties, "engine": args.engine}
        if phase == "warm" and mode != "plaintext":
            rec["agents"] = bool(getattr(args, "agents", False))  # long-lived party agents
        for k in ("local_span", "secure_span", "launcher", "startup", "shared_rows", "load",
                  "rounds", "messages", "mpc_bytes", "measured", "secure_cpu"):
            vals = [r[k] for r in runs if k in r]
            if vals:
                rec[k] = statistics.median(vals)
        if any("parties" in r for r in runs):
            rec["party_seconds"] = [r.get("parties") for r in runs]
        if any("local_jobs" in r for r in runs):  # isolated: each party's job run alone
            rec["local_jobs"] = [r.get("local_jobs") for r in runs]
        rtt = getattr(args, "rtt", None)
        if rtt is not None and "rounds" in rec and mode != "wan":  # wan: measured instead
            rec["rtt_ms"] = rtt
            rec["seconds_rtt"] = with_rtt(rec["seconds"], rec["rounds"], rtt)
        if mode == "wan":
            rec["wan_ms"] = args.wan
        records.append(rec)
    return records


def check_agreement(records: list[dict]) -> None:
    """Every mode gives the plaintext HHI at every size, else a BenchError naming them."""
    by_rows: dict[int, list[dict]] = {}
    for r in records:
        by_rows.setdefault(r["rows"], []).append(r)
    problems = []
    for n, recs in by_rows.items():
        ref = [r for r in recs if r["mode"] == "plaintext"] or recs
        want = ref[0]["hhi"]
        for r in recs:
            if not math.isclose(r["hhi"], want, rel_tol=HHI_RTOL, abs_tol=HHI_RTOL):
                problems.append(f"{n:,} rows: {r['mode']} ({r['phase']}) HHI {r['hhi']!r} vs "
                                f"{ref[0]['mode']} {want!r}")
    if problems:
        raise BenchError("modes disagree on the HHI (tolerance " f"{HHI_RTOL:g} relative): "
                         + "; ".join(problems))


def table(records: list[dict], rtt: float | None = None) -> str:
    """The records as a text table; ratio = seconds / plaintext seconds (same rows and phase);
    rounds = the secure part's communication rounds (warm runs with agents); cpu = the most
    processor seconds one party's secure part took; with `rtt`
    (milliseconds), seconds and ratio with that round trip per round added."""
    plain = {(r["rows"], r["phase"]): r["seconds"] for r in records if r["mode"] == "plaintext"}
    head = f"{'rows':>12}  {'mode':<10}  {'phase':<5}  {'seconds':>9}  {'ratio':>7}  " \
           f"{'HHI':>14}  {'local':>7}  {'secure':>7}  {'launch':>7}  {'rounds':>6}  {'cpu':>6}"
    if rtt is not None:
        head += f"  {f'+{rtt:g}ms s':>10}  {'ratio':>7}"
    lines = [head, "-" * len(head)]
    for r in records:
        base = plain.get((r["rows"], r["phase"]))
        ratio = f"{r['seconds'] / base:7.3f}" if base else f"{'-':>7}"
        parts = [f"{r[k]:7.2f}" if k in r else f"{'':>7}"
                 for k in ("local_span", "secure_span", "launcher")]
        line = (f"{r['rows']:>12,}  {r['mode']:<10}  {r['phase']:<5}  {r['seconds']:9.2f}  "
                f"{ratio}  {r['hhi']:14.6f}  " + "  ".join(parts)
                + (f"  {r['rounds']:>6g}" if "rounds" in r else f"  {'':>6}")
                + (f"  {r['secure_cpu']:6.3f}" if "secure_cpu" in r else f"  {'':>6}"))
        if rtt is not None and "seconds_rtt" in r:
            wan_ratio = f"{r['seconds_rtt'] / base:7.3f}" if base else f"{'-':>7}"
            line += f"  {r['seconds_rtt']:10.2f}  {wan_ratio}"
        lines.append(line)
    return "\n".join(lines)


def plot(records: list[dict], path: Path, title: str) -> str:
    """Seconds against rows (log-log), one line per mode and phase; what was written."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"plaintext": "o", "sqlmpc": "s", "isolated": "D", "wan": "v", "all-secure": "^"}
    for phase in PHASES:
        for mode in MODES:
            pts = sorted((r["rows"], r["seconds"]) for r in records
                         if r["mode"] == mode and r["phase"] == phase)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=styles[mode],
                        linestyle="-" if phase == "warm" else "--", label=f"{mode} ({phase})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("trip rows (all parties)")
    ax.set_ylabel("seconds (median)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"plot written to {path}"
