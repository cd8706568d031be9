"""The plan in words a data owner's lawyer can follow.

Party by party: what runs in the clear on that party's own data, exactly what leaves the party
(which columns, how many rows, secret-shared or in the clear); then what runs in MPC (each
operator's algorithm and cost in the secure backend's own words), what each recipient learns,
and the full leak list ("What is revealed, to whom").
"""

from __future__ import annotations

from collections.abc import Mapping

from ..analyses.padding import describe_padding
from ..analyses.policy import verdict_lines
from ..ir.dag import Dag, Project, Reveal, Share
from ..ir.plan import LocalOutput, Plan, recipient_nodes, secure_nodes
from ..analyses.labels import labels, names, short
from .revealed import Describer, column_words, revealed, secure_backend_of
from .words import describe, is_rename, local_chain, onehot_columns_text

__all__ = ["SECURITY_MODEL", "explain_text"]

SECURITY_MODEL = ("MPyC: Shamir secret sharing among {m} compute parties, passive (semi-honest) "
                  "adversaries, honest majority (any {t} of them may be curious without learning "
                  "anything beyond what is listed as revealed).")


def explain_text(plan: Plan, *, secure: Describer | None = None,
                 engines: Mapping[str, str] | None = None) -> str:
    """The plan in words (see the module docstring). ``secure``: the secure backend that
    describes the secure operators (required when the plan runs in MPC); ``engines``: each
    party's engine in words ({party: "DuckDB, embedded"})."""
    secure = secure_backend_of(plan, secure)
    dag = plan.dag
    lab = labels(dag)
    lines = _header(plan)
    step = 0
    for party in [p for p in plan.parties if p in plan.local_jobs]:
        step += 1
        lines += _local_steps(plan, party, step, lab, engines)
    if plan.needs_mpc:
        step += 1
        lines += _mpc_steps(plan, step, lab, secure)
    post = [n for n in recipient_nodes(dag)
            if not (isinstance(dag.op(n), Project) and is_rename(dag, n))]
    if post:
        lines.append(f"   then {', '.join(plan.recipients)}, in the clear, on the result: " +
                     "; ".join(describe(dag, n, lab) for n in post))
    lines.append("")
    lines.append("What is revealed, to whom:")
    for item in revealed(plan, secure):
        to = ", ".join(item["to"]) if item["to"] else "no one"
        lines.append(f"  - to {to}: {item['what']}")
    lines.append("  Nothing else: no party sees another party's rows.")
    verdicts = dag.g.graph.get("policies")
    if verdicts is not None:  # a plan compile_query made; [policy.OWNER] in the catalog
        lines += ["", "Owners' policies:"] + [f"  - {line}" for line in verdict_lines(verdicts)]
    return "\n".join(lines)


def _header(plan: Plan) -> list[str]:
    lines = ["Query plan" + (" (--all-secure: every operator after the scans in MPC)"
                             if plan.all_secure else ""),
             f"  parties: {', '.join(plan.parties)}; result to: {', '.join(plan.recipients)}"]
    if not plan.needs_mpc:
        lines.append("  no MPC needed: the result is computed by its only recipient from its "
                     "own data")
        return lines
    m = len(plan.compute_parties)
    lines.append(f"  MPC among: {', '.join(plan.compute_parties)}")
    if plan.helpers:
        lines.append(f"  {', '.join(plan.helpers)}: a helper compute party added because MPC "
                     f"needs an honest majority of at least 3 parties; it holds no data and "
                     f"learns nothing but the row counts listed below")
    lines.append("  " + SECURITY_MODEL.format(m=m, t=(m - 1) // 2))
    return lines


def _local_steps(plan: Plan, party: str, step: int, lab: dict[int, dict[str, str]],
                 engines: Mapping[str, str] | None) -> list[str]:
    """What `party` computes in the clear, and what leaves it."""
    dag = plan.dag
    engine = (engines or {}).get(party) or plan.engines.get(party) or "the default engine"
    lines = ["", f"{step}. At {party}, in the clear, on its own data only ({engine}):"]
    done: set[int] = set()
    for o in plan.local_jobs[party].outputs:
        for n in local_chain(dag, o.node if o.kind == "result" else dag.inputs(o.node)[0]):
            if n in done:
                continue
            done.add(n)
            if isinstance(dag.op(n), Project) and is_rename(dag, n):
                continue
            lines.append(f"     - {describe(dag, n, lab)}")
        if o.kind == "share":
            lines.append(_share_line(party, o, lab))
        else:
            lines.append(f"   -> the result stays at {party} (its only recipient)")
    return lines


def _share_line(party: str, o: LocalOutput, lab: dict[int, dict[str, str]]) -> str:
    """What leaves `party` in share output `o`: columns, rows, padding, clear columns."""
    cols = [lab[o.node].get(c, short(c)) for c, _ in o.columns]
    cols = onehot_columns_text([c for c, _ in o.columns], cols)
    padded = getattr(o, "pad", None)
    clear = ", ".join(lab[o.node].get(c, c) for c in o.public_columns)
    return (f"   -> only this leaves {party}: {len(o.columns)} column(s) ({', '.join(cols)}), "
            f"{o.rows}, secret-shared"
            + (f" (size revealed: {describe_padding(padded)})" if padded is not None else "")
            + (f"; in the clear: {clear}" if o.public_columns else ""))


def _mpc_steps(plan: Plan, step: int, lab: dict[int, dict[str, str]],
               secure: Describer) -> list[str]:
    """What runs in MPC, in the secure backend's words, and what is opened to whom."""
    dag: Dag = plan.dag
    words = column_words(lab)
    lines = ["", f"{step}. In MPC (values stay secret-shared; no party sees them):"]
    sec = [n for n in secure_nodes(dag) if not isinstance(dag.op(n), (Share, Reveal))]
    if not sec:
        lines.append("     - nothing but passing the shared rows on to the reveal")
    for n in sec:
        if isinstance(dag.op(n), Project) and is_rename(dag, n):
            continue
        d = secure.describe(dag, n, words)
        lines.append(f"     - {describe(dag, n, lab)}{' ' + d.how if d.how else ''}")
        lines.append(f"         {d.cost}")
    rev = next(n for n in dag.topo() if isinstance(dag.op(n), Reveal))
    lines += ["", f"{step + 1}. Revealed to {', '.join(plan.recipients)} only: the result "
                  f"({names(dag.names(rev), lab[rev])})"]
    return lines
