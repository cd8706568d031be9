"""Explain a plan in words a data owner's lawyer can follow, and as JSON, DOT or PNG.

The text says, party by party, what runs in the clear on that party's own data, exactly what
leaves the party (which columns, how many rows, secret-shared or in the clear), what runs in
MPC, and what each recipient learns. Every leak a protocol makes is listed under "What is
revealed, to whom".

    labels.py    readable names for a plan's columns
    words.py     each operator in plain words
    text.py      the text (explain_text)
    revealed.py  the leak list
    graph.py     DOT and PNG

How a secure operator runs and what it reveals comes from the secure backend (backends/base.py
``SecureBackend.describe``), which the caller passes: the compiler names no backend, and a
plan that runs in MPC cannot be explained without one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from ..errors import SqlmpcError
from ..ir.plan import Plan
from .graph import explain_dot, explain_png
from ..analyses.labels import labels
from .revealed import Describer, revealed
from .text import explain_text

__all__ = ["FORMATS", "explain", "explain_dot", "explain_text", "labels", "revealed"]

FORMATS = ("text", "json", "dot", "png")


def explain(plan: Plan, fmt: str = "text", out: Path | None = None, *,
            secure: Describer | None = None, engines: Mapping[str, str] | None = None) -> str:
    """The plan rendered as `fmt`; for png, writes `out` and returns its path.

    ``secure`` is the secure backend (backends/base.py SecureBackend) whose operator
    descriptions explain prints (required for text and json when the plan runs in MPC);
    ``engines`` says in words which engine runs each party's local job ({party: "DuckDB,
    embedded"}). The runtime passes both: the compiler itself names no backend."""
    if fmt == "text":
        return explain_text(plan, secure=secure, engines=engines)
    if fmt == "json":
        d = plan.to_dict()
        d["explain"] = explain_text(plan, secure=secure, engines=engines).splitlines()
        d["revealed"] = revealed(plan, secure)
        d["policies"] = plan.dag.g.graph.get("policies", [])
        return json.dumps(d, indent=2, default=str)
    if fmt == "dot":
        return explain_dot(plan)
    if fmt == "png":
        return explain_png(plan, out)
    raise SqlmpcError(f"unknown explain format {fmt!r} (use {', '.join(FORMATS)})")
