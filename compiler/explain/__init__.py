"""Explain a plan in words a data owner's lawyer can follow, and as JSON, DOT or PNG.

The text says, party by party, what runs in the clear on that party's own data, exactly what
leaves the party (which columns, how many rows, secret-shared or in the clear), what runs in
MPC, and what each recipient learns. Every leak a protocol makes is listed under "What is
revealed, to whom".
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from sqlglot import exp

from ..ir.dag import (Aggregate, Dag, Distinct, Filter, Join, Limit, Output, Project, Reveal, Scan,
                  SemiJoin, Share, Sort, Union, substitute)
from ..errors import SqlmpcError
from ..analyses.owner_bits import sorts_on_owner_bits
from ..analyses.padding import describe_padding, exactly_one_row
from ..passes.infer_unique import join_unique_side
from ..passes.mark_boundary import RECIPIENT, SECURE
from ..passes.use_domains import ATTR as DOMAIN, ONEHOT_PREFIX, domain_tuples
from ..ir.plan import Plan, recipient_nodes, secure_nodes

FORMATS = ("text", "json", "dot", "png")
SECURITY_MODEL = ("MPyC: Shamir secret sharing among {m} compute parties, passive (semi-honest) "
                  "adversaries, honest majority (any {t} of them may be curious without learning "
                  "anything beyond what is listed as revealed).")
AGG_WORDS = {"sum": "sum", "count": "count", "count_star": "number of rows", "min": "minimum",
             "max": "maximum"}


def explain(plan: Plan, fmt: str = "text", out: Path | None = None, *, secure=None,
            engines: Mapping[str, str] | None = None) -> str:
    """The plan rendered as `fmt`; for png, writes `out` and returns its path.

    ``secure`` is the secure backend (backends/base.py SecureBackend) whose operator
    descriptions explain prints; ``engines`` says in words which engine runs each party's
    local job ({party: "DuckDB, embedded"}). The runtime passes both: the compiler itself
    names no backend."""
    if fmt == "text":
        return explain_text(plan, secure=secure, engines=engines)
    if fmt == "json":
        d = plan.to_dict()
        d["explain"] = explain_text(plan, secure=secure, engines=engines).splitlines()
        d["revealed"] = revealed(plan)
        return json.dumps(d, indent=2, default=str)
    if fmt == "dot":
        return explain_dot(plan)
    if fmt == "png":
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
    raise SqlmpcError(f"unknown explain format {fmt!r} (use {', '.join(FORMATS)})")


# --- readable labels for internal columns ----------------------------------------------------
def labels(dag: Dag) -> dict[int, dict[str, str]]:
    """For each node, a readable label per output column (e.g. `sum(fare)` for `__agg0`)."""
    out: dict[int, dict[str, str]] = {}
    for n in dag.topo():
        op = dag.op(n)
        ins = dag.inputs(n)
        src = out[ins[0]] if ins else {}
        if isinstance(op, Scan):
            lab = {f.name: c for c, f in zip(op.columns, dag.schema(n))}
        elif isinstance(op, Project):
            lab = {name: (f"one-hot {name[len(ONEHOT_PREFIX):]}" if name.startswith(ONEHOT_PREFIX)
                          else _label_expr(e, src)) for name, e in op.exprs}
        elif isinstance(op, Aggregate):
            lab = {k: src.get(k, _short(k)) for k in op.keys}
            for a in op.aggs:
                if a.name == "__rows":
                    lab[a.name] = "number of rows"
                elif a.func == "count_star":
                    lab[a.name] = "count(*)" if op.stage != "final" else src.get(a.name, "count")
                elif op.stage == "final":
                    lab[a.name] = src.get(a.arg, a.name)
                else:
                    lab[a.name] = f"{a.func}({src.get(a.arg, _short(a.arg))})"
        elif isinstance(op, Union):
            lab = dict(zip(dag.names(n), (src.get(x, _short(x)) for x in dag.names(ins[0]))))
        elif isinstance(op, Join):
            lab = {**out[ins[0]], **out[ins[1]]}
        else:
            lab = dict(src)
        for name in dag.names(n):
            lab.setdefault(name, _short(name))
        out[n] = lab
    return out


def _short(name: str) -> str:
    if name.startswith("__"):
        return name.strip("_")
    return name.split(".", 1)[1] if "." in name else name


def _label_expr(e: exp.Expression, src: dict[str, str]) -> str:
    if isinstance(e, exp.Column):
        return src.get(e.name, _short(e.name))
    mapping = {c.name: exp.column(exp.Identifier(this=src.get(c.name, _short(c.name)),
                                                 quoted=False)) for c in e.find_all(exp.Column)}
    return substitute(e, mapping).sql()


def _names(names, lab: dict[str, str]) -> str:
    return ", ".join(lab.get(n, _short(n)) for n in names)


def describe(dag: Dag, n: int, lab: dict[int, dict[str, str]]) -> str:
    """One operator in plain words."""
    op = dag.op(n)
    ins = dag.inputs(n)
    src = lab[ins[0]] if ins else {}
    if isinstance(op, Scan):
        return f"reads its part of {op.table} (columns {', '.join(op.columns)})"
    if isinstance(op, Filter):
        return f"keeps the rows where {_label_expr(op.predicate, src)}"
    if isinstance(op, Project) and _onehot_names(dag.names(n)):
        return _describe_onehot(dag, n, lab)
    if isinstance(op, Project):
        shown = [f"{lab[n][name]}" for name, e in op.exprs]
        return "computes " + ", ".join(shown)
    if isinstance(op, Aggregate):
        if not op.aggs:
            return f"keeps one row per distinct ({_names(op.keys, src)})"
        what = ", ".join(lab[n][a.name] if op.stage != "final" else
                         f"{'sum' if a.func == 'sum' else a.func} of the parties' "
                         f"{lab[n][a.name]}" for a in op.aggs if a.name != "__rows")
        per = f" per ({_names(op.keys, src)})" if op.keys else " over all rows"
        return f"{what}{per}"
    if isinstance(op, Join):
        if not op.left_keys:
            if any(exactly_one_row(dag, i) for i in ins):
                return "pairs every row with the single row of a subquery result"
            return "pairs every row of one input with every row of the other (a cross join)"
        pairs = ", ".join(f"{lab[ins[0]].get(a, a)} = {lab[ins[1]].get(b, b)}"
                          for a, b in zip(op.left_keys, op.right_keys))
        return f"joins rows where {pairs}"
    if isinstance(op, SemiJoin):
        if not op.left_keys:
            return f"keeps its rows only if the subquery has {'no' if op.anti else 'any'} rows"
        pairs = ", ".join(f"{lab[ins[0]].get(a, a)} = {lab[ins[1]].get(b, b)}"
                          for a, b in zip(op.left_keys, op.right_keys))
        return f"keeps the rows {'without' if op.anti else 'with'} a subquery row where {pairs}"
    if isinstance(op, Union):
        return f"combines the rows of {len(ins)} inputs"
    if isinstance(op, Distinct):
        return "removes duplicate rows"
    if isinstance(op, Sort):
        return "sorts by " + ", ".join(f"{src.get(k, k)}{' descending' if d else ''}"
                                       for k, d in op.keys)
    if isinstance(op, Limit):
        return f"keeps the first {op.n} rows"
    if isinstance(op, Share):
        return f"{op.party}'s rows enter MPC"
    if isinstance(op, Reveal):
        return "opens the result to " + ", ".join(op.recipients)
    return type(op).__name__


def _onehot_names(names) -> list[str]:
    return [c for c in names if c.startswith(ONEHOT_PREFIX)]


def _describe_onehot(dag: Dag, n: int, lab: dict[int, dict[str, str]]) -> str:
    """The owner's local step of the one-hot group-by (use_domains): which key tuples."""
    op = dag.op(n)
    keys = [_label_expr(e.args["ifs"][0].this, lab[dag.inputs(n)[0]])
            for name, e in op.exprs if name == f"{ONEHOT_PREFIX}0"]
    count = len(_onehot_names(dag.names(n)))
    return (f"adds {count} one-hot columns, one per value of the declared public domain "
            f"(1 where the row's key is that value, else 0; the first: {keys[0]})")


def _onehot_columns_text(names: list[str], labels: list[str]) -> list[str]:
    """A share's column labels with its one-hot columns summed up in one entry."""
    count = len(_onehot_names(names))
    kept = [lbl for c, lbl in zip(names, labels) if not c.startswith(ONEHOT_PREFIX)]
    return kept + ([f"{count} one-hot columns of the declared domain"] if count else [])


def revealed(plan: Plan) -> list[dict]:
    """Every piece of information opened by the protocol, and to whom (the leak list)."""
    dag = plan.dag
    lab = labels(dag)
    items = []
    compute = plan.compute_parties
    for party, job in plan.local_jobs.items():
        for o in job.outputs:
            if o.kind == "share":
                pad = getattr(o, "pad", None)
                if pad is None:
                    items.append({"what": f"how many rows {party} secret-shares into MPC "
                                          f"({o.rows})", "to": compute})
                else:  # compiler/padding.py: dummy rows with a secret valid flag 0
                    items.append({"what": f"how many rows {party} secret-shares into MPC "
                                          f"({o.rows}): {describe_padding(pad)}",
                                  "to": compute})
                texts = [lab[o.node].get(c, _short(c)) for c, t in o.columns
                         if t == "text" and c not in o.public_columns]
                if texts:
                    items.append({"what": f"how long {party}'s longest shared {', '.join(texts)} "
                                          f"is, in 7-byte pieces (texts travel as ceil(bytes/7) "
                                          f"secret numbers)", "to": compute})
                if o.public_columns:
                    cols = ", ".join(lab[o.node].get(c, _short(c)) for c in o.public_columns)
                    items.append({"what": f"the values of {cols} in {party}'s shared rows, in "
                                          f"the clear (declared public \"*\" by the owners; "
                                          f"used to group without secure comparisons)",
                                  "to": compute})
    for n in secure_nodes(dag):
        op = dag.op(n)
        if isinstance(op, Join) and op.left_keys and join_unique_side(dag, n):
            items.append({"what": "nothing about which rows match: the PK-FK join sorts both "
                                  "inputs obliviously (only uniformly random permutations are "
                                  "opened); its size is the length of the other input, already "
                                  "known", "to": []})
        elif isinstance(op, Join) and op.left_keys and dag.g.graph.get("join_bound"):
            keys = _names(op.left_keys, lab[dag.inputs(n)[0]])
            items.append({"what": f"whether the join on ({keys}) has at most "
                                  f"{dag.g.graph['join_bound']} rows (--join-bound; the run "
                                  f"stops if not; its output is padded to that length)",
                          "to": compute})
        elif isinstance(op, Join) and op.left_keys:
            keys = _names(op.left_keys, lab[dag.inputs(n)[0]])
            items.append({"what": f"the number of joined rows M of the join on ({keys}) (the "
                                  f"sort-based many-to-many join, no side known unique; nothing "
                                  f"about which rows match; nothing at all when left x right is at "
                                  f"most {NESTED_LOOP_MAX}: a nested loop then)", "to": compute})
        if isinstance(op, Aggregate) and dag.attr(n, DOMAIN):
            keys = _names(op.keys, lab[dag.inputs(n)[0]])
            items.append({"what": f"nothing new from the one-hot group-by on ({keys}): its "
                                  f"domain is public (declared in the catalog), the one-hot "
                                  f"columns each owner computes are secret-shared like the rest "
                                  f"of its rows, and the output length "
                                  f"({len(domain_tuples(dag.attr(n, DOMAIN)))} rows) follows "
                                  f"from the domain", "to": []})
        if isinstance(op, SemiJoin):
            items.append({"what": "nothing about which rows match: the secure semi-join (IN / "
                                  "EXISTS) sorts both inputs obliviously and only clears secret "
                                  "validity flags of the left rows; its size is the left input's "
                                  "length, already known", "to": []})
    for n in dag.topo():
        op = dag.op(n)
        if isinstance(op, Reveal):
            cols = _names(dag.names(n), lab[n])
            items.append({"what": f"the result rows ({cols}) and their number", "to":
                          list(op.recipients)})
        if isinstance(op, Output) and not plan.needs_mpc:
            items.append({"what": "the result, computed at its only recipient from its own data",
                          "to": list(op.recipients)})
    return items


NESTED_LOOP_MAX = 256  # = backends.mpyc.secure_ops.NESTED_LOOP_MAX (tested to agree)
NOTHING = "reveals nothing beyond public lengths"


def secure_cost(dag: Dag, n: int, lab: dict[int, dict[str, str]]) -> str:
    """A secure operator's algorithm (joins), public output length and what it reveals (see
    each operator's docstring in backends/mpyc/secure_ops.py)."""
    op = dag.op(n)
    if isinstance(op, Join) and not op.left_keys:
        return f"output length: left x right input lengths; {NOTHING}"
    if isinstance(op, Join):
        side = join_unique_side(dag, n)
        bound = dag.g.graph.get("join_bound")
        if side is None and bound:
            return (f"algorithm: sort-based many-to-many join padded to {bound} rows "
                    f"(--join-bound): only whether M <= {bound} is revealed; output length: "
                    f"{bound}")
        if side is None:
            return (f"algorithm: sort-based many-to-many join: the number of joined rows M is "
                    f"revealed to the compute parties (no side is known to be unique on its "
                    f"join keys; linear per key bit and per bit of M); output length: M "
                    f"(left x right, revealing nothing, when that is at most {NESTED_LOOP_MAX}: "
                    f"a nested loop is faster there)")
        u, other = (1, "left") if side == "right" else (0, "right")
        keys = op.right_keys if side == "right" else op.left_keys
        return (f"algorithm: PK-FK sort join, the {side} input unique on "
                f"({_names(keys, lab[dag.inputs(n)[u]])}); output length: the {other} input's "
                f"length (left x right when that is at most {NESTED_LOOP_MAX}: a nested loop is "
                f"faster there); {NOTHING}")
    if isinstance(op, SemiJoin):
        return (f"algorithm: semi-join by an oblivious radix sort of both inputs' keys "
                f"(linear per key bit; a nested loop when left x right is at most "
                f"{NESTED_LOOP_MAX}); output length: the left input's length; {NOTHING}")
    if isinstance(op, Union):
        return f"output length: the sum of the input lengths; {NOTHING}"
    if isinstance(op, Aggregate) and not op.keys:
        return f"output length: 1; {NOTHING}"
    if isinstance(op, Aggregate) and dag.attr(n, DOMAIN):
        return (f"output length: {len(domain_tuples(dag.attr(n, DOMAIN)))}, the declared domain's "
                f"size (which groups are empty stays secret); {NOTHING}")
    if isinstance(op, Aggregate) and dag.attr(n, "public_keys"):
        return (f"output length: the number of distinct public key values (sent in the clear, "
                f"see below); {NOTHING}")
    if isinstance(op, Aggregate) or isinstance(op, Distinct):
        return f"output length: its input's length (the number of groups stays secret); {NOTHING}"
    if isinstance(op, Limit):
        return f"output length: at most {op.n} (the number of valid rows stays secret); {NOTHING}"
    return f"output length: its input's length; {NOTHING}"


def explain_text(plan: Plan, *, secure=None, engines: Mapping[str, str] | None = None) -> str:
    dag = plan.dag
    lab = labels(dag)
    lines: list[str] = []
    owners = [p for p in plan.parties if p in plan.local_jobs]
    lines.append("Query plan" + (" (--all-secure: every operator after the scans in MPC)"
                                 if plan.all_secure else ""))
    lines.append(f"  parties: {', '.join(plan.parties)}; result to: {', '.join(plan.recipients)}")
    if plan.needs_mpc:
        m = len(plan.compute_parties)
        lines.append(f"  MPC among: {', '.join(plan.compute_parties)}")
        if plan.helpers:
            lines.append(f"  {', '.join(plan.helpers)}: a helper compute party added because MPC "
                         f"needs an honest majority of at least 3 parties; it holds no data and "
                         f"learns nothing but the row counts listed below")
        lines.append("  " + SECURITY_MODEL.format(m=m, t=(m - 1) // 2))
    else:
        lines.append("  no MPC needed: the result is computed by its only recipient from its "
                     "own data")
    step = 0
    for party in owners:
        job = plan.local_jobs[party]
        step += 1
        lines.append("")
        engine = (engines or {}).get(party) or plan.engines.get(party) or "the default engine"
        lines.append(f"{step}. At {party}, in the clear, on its own data only ({engine}):")
        done: set[int] = set()
        for o in job.outputs:
            chain = _local_chain(dag, o.node if o.kind == "result" else dag.inputs(o.node)[0])
            for n in chain:
                if n in done:
                    continue
                done.add(n)
                text = describe(dag, n, lab)
                if isinstance(dag.op(n), Project) and _is_rename(dag, n):
                    continue
                lines.append(f"     - {text}")
            if o.kind == "share":
                cols = [lab[o.node].get(c, _short(c)) for c, _ in o.columns]
                secret = [c for (c, _), lbl in zip(o.columns, cols) if c not in o.public_columns]
                cols = _onehot_columns_text([c for c, _ in o.columns], cols)
                padded = getattr(o, "pad", None)
                lines.append(f"   -> only this leaves {party}: {len(o.columns)} column(s) "
                             f"({', '.join(cols)}), {o.rows}, secret-shared"
                             + (f" (size revealed: {describe_padding(padded)})"
                                if padded is not None else "")
                             + (f"; in the clear: {', '.join(lab[o.node].get(c, c) for c in o.public_columns)}"
                                if o.public_columns else "")
                             + ("" if secret else ""))
            else:
                lines.append(f"   -> the result stays at {party} (its only recipient)")
    sec = [n for n in secure_nodes(dag) if not isinstance(dag.op(n), (Share, Reveal))]
    if plan.needs_mpc:
        step += 1
        lines.append("")
        lines.append(f"{step}. In MPC (values stay secret-shared; no party sees them):")
        if not sec:
            lines.append("     - nothing but passing the shared rows on to the reveal")
        owner_bits = sorts_on_owner_bits(dag)
        for n in sec:
            how = ""
            op = dag.op(n)
            if isinstance(op, Aggregate) and op.keys:
                how = (" [public keys: grouped by the clear key values]"
                       if dag.attr(n, "public_keys") else
                       f" [group-by over a declared public domain of "
                       f"{len(domain_tuples(dag.attr(n, DOMAIN)))} values: one-hot columns "
                       f"computed by each owner, one secure matrix product]"
                       if dag.attr(n, DOMAIN) else
                       " [secret keys: oblivious sort and segmented sums]")
            if isinstance(op, Join) and op.left_keys:
                how = (" [secret keys: PK-FK sort join, linear per key bit]"
                       if join_unique_side(dag, n) else
                       (" [secret keys: sort-based many-to-many join, padded]"
                        if dag.g.graph.get("join_bound") else
                        " [secret keys: sort-based many-to-many join, M revealed]"))
            if isinstance(op, (Filter, SemiJoin)):
                how = " [the row count stays hidden: rows are flagged, not dropped]"
            if isinstance(op, Project) and _is_rename(dag, n):
                continue
            if n in owner_bits:  # sorts on input columns: their owners input the key bits
                how += " [key bits input by owners]"
            lines.append(f"     - {describe(dag, n, lab)}{how}")
            lines.append(f"         {secure_cost(dag, n, lab)}")
        rev = next(n for n in dag.topo() if isinstance(dag.op(n), Reveal))
        step += 1
        lines.append("")
        lines.append(f"{step}. Revealed to {', '.join(plan.recipients)} only: the result "
                     f"({_names(dag.names(rev), lab[rev])})")
    post = [n for n in recipient_nodes(dag)
            if not (isinstance(dag.op(n), Project) and _is_rename(dag, n))]
    if post:
        lines.append(f"   then {', '.join(plan.recipients)}, in the clear, on the result: " +
                     "; ".join(describe(dag, n, lab) for n in post))
    lines.append("")
    lines.append("What is revealed, to whom:")
    for item in revealed(plan):
        to = ", ".join(item["to"]) if item["to"] else "no one"
        lines.append(f"  - to {to}: {item['what']}")
    lines.append("  Nothing else: no party sees another party's rows.")
    return "\n".join(lines)


def _local_chain(dag: Dag, node: int) -> list[int]:
    """The local nodes computing `node`, inputs first."""
    import networkx as nx
    nodes = nx.ancestors(dag.g, node) | {node}
    return [n for n in dag.topo() if n in nodes]


def _is_rename(dag: Dag, n: int) -> bool:
    op = dag.op(n)
    return all(isinstance(e, exp.Column) for _, e in op.exprs)


def explain_dot(plan: Plan) -> str:
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
