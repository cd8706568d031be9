"""The plan as a graph: Graphviz DOT text, or a PNG drawn by Graphviz's `dot`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..errors import SqlmpcError
from ..ir.dag import RECIPIENT, ROWS_PREFIX, SECURE, Filter, Scan
from ..ir.plan import Plan
from ..analyses.labels import labels
from .words import describe

__all__ = ["explain_dot", "explain_png"]


def explain_dot(plan: Plan) -> str:
    """The plan's operators, grouped by where they run (each party, MPC, the recipients)."""
    dag = plan.dag
    lab = labels(dag)
    policies = {v["owner"]: v for v in dag.g.graph.get("policies", [])}
    colors = {SECURE: "#f4cccc", RECIPIENT: "#d9ead3"}
    lines = ["digraph plan {", '  rankdir=BT; node [shape=box, style="rounded,filled", '
             'fontname="Helvetica", fontsize=10];']
    groups: dict[str, list[int]] = {}
    for n in dag.topo():
        groups.setdefault(dag.attr(n, "placement") or "?", []).append(n)
    for i, (place, nodes) in enumerate(groups.items()):
        title = {SECURE: "MPC (secret-shared)", RECIPIENT: "recipients, in the clear"}.get(
            place, place.replace("local:", "at ") + ", in the clear")
        lines.append(f'  subgraph cluster_{i} {{ label="{title}"; style=dashed;')
        for n in nodes:
            text = describe(dag, n, lab).replace('"', "'")
            fill = colors.get(place, "#cfe2f3")
            extra, border = _policy_marks(dag, n, policies)
            lines.append(f'    n{n} [label="{type(dag.op(n)).__name__}\\n{text[:80]}{extra}", '
                         f'fillcolor="{fill}"{border}];')
        lines.append("  }")
    for a, b in dag.g.edges():
        lines.append(f"  n{a} -> n{b};")
    lines.append("}")
    return "\n".join(lines) + "\n"


#: border colours: an owner's scan under its policy, without one; a min_group suppression
POLICY_COLORS = {"policy": "#38761d", "none": "#999999", "suppress": "#e69138"}


def _policy_marks(dag, n: int, policies: dict[str, dict]) -> tuple[str, str]:
    """(extra label lines, border attributes) showing what each owner's policy allows: a
    scan of an owner with a policy gets a green border and the uses its policy allows (grey
    and "no policy" otherwise); the filter that suppresses small groups an orange one."""
    op = dag.op(n)
    if isinstance(op, Scan) and op.party in policies:
        v = policies[op.party]
        mine = [c for c in v["columns"] if c.startswith(f"{op.table}.")]
        if not v["policy"]:
            return f"\\n{op.party}: no policy", f', color="{POLICY_COLORS["none"]}"'
        text = "\\n".join(["", f"{op.party}'s policy allows:"] + [m[:60] for m in mine])
        return text, f', color="{POLICY_COLORS["policy"]}", penwidth=2'
    if isinstance(op, Filter) and ROWS_PREFIX in op.predicate.sql():
        return ("\\nmin_group: small groups dropped here",
                f', color="{POLICY_COLORS["suppress"]}", penwidth=2')
    return "", ""


def explain_png(plan: Plan, out: Path | None = None) -> str:
    """Draw the plan into `out` (default plan.png) with Graphviz; returns the path."""
    dot = shutil.which("dot")
    if dot is None:
        raise SqlmpcError("Graphviz 'dot' is not installed, so no PNG can be drawn "
                          "(install it: apt-get install graphviz, or use --format dot)")
    target = out or Path("plan.png")
    proc = subprocess.run([dot, "-Tpng", "-o", str(target)], input=explain_dot(plan),
                          text=True, capture_output=True)
    if proc.returncode != 0:
        raise SqlmpcError(f"Graphviz failed: {proc.stderr.strip().splitlines()[-1:]}")
    return str(target)
