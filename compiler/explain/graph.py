"""The plan as a graph: Graphviz DOT text, or a PNG drawn by Graphviz's `dot`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..errors import SqlmpcError
from ..ir.dag import RECIPIENT, SECURE
from ..ir.plan import Plan
from ..analyses.labels import labels
from .words import describe

__all__ = ["explain_dot", "explain_png"]


def explain_dot(plan: Plan) -> str:
    """The plan's operators, grouped by where they run (each party, MPC, the recipients)."""
    dag = plan.dag
    lab = labels(dag)
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
            lines.append(f'    n{n} [label="{type(dag.op(n)).__name__}\\n{text[:80]}", '
                         f'fillcolor="{fill}"];')
        lines.append("  }")
    for a, b in dag.g.edges():
        lines.append(f"  n{a} -> n{b};")
    lines.append("}")
    return "\n".join(lines) + "\n"


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
