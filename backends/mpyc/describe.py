"""What the MPC backend does for each secure operator, in words: explain prints these texts.

For every secure operator of a placed plan, :func:`describe` says which algorithm runs
(``how``: the bracketed tags after the operator's line), its cost line (``cost``: the
algorithm where it matters, the public output length and what it reveals) and what it opens
beyond its inputs' public lengths (``reveals``: (what, to whom), whom "compute" for every
compute party, "nobody" for a note that nothing is revealed). A Share node's reveals are what
the input protocol shows of the owner's shared rows beyond their number.

The texts follow the operators of ``lib/`` (each one's docstring has the details) and read
the very thresholds they use (``lib/limits.py``); this module imports neither MPyC nor the
operators themselves, so explaining a plan stays light.
"""

from __future__ import annotations

from ...compiler.analyses.bounds import unproven_operations
from ...compiler.analyses.domains import DOMAIN_ATTR, domain_tuples
from ...compiler.analyses.owner_bits import sorts_on_owner_bits
from ...compiler.analyses.padding import ONE_PIECE_TEXTS
from ...compiler.analyses.unique_keys import join_unique_side
from ...compiler.ir.dag import (Aggregate, Dag, Distinct, Filter, Join, Limit, Project, SemiJoin,
                                Share, Union, Window)
from ..base import Labels, OperatorDescription
from .function_costs import function_costs, function_reveals
from .lib.limits import NESTED_LOOP_MAX, RANGE_BITS, SEMIJOIN_NESTED_LOOP_MAX

__all__ = ["COMPUTE", "NOBODY", "describe"]

COMPUTE = "compute"  # revealed to every compute party
NOBODY = "nobody"    # a note that nothing is revealed
NOTHING = "reveals nothing beyond public lengths"


def describe(dag: Dag, node: int, labels: Labels) -> OperatorDescription:
    """The algorithm, cost and leakage of the secure operator ``node`` (see the module
    docstring); ``labels(node, columns)`` names columns in readable words."""
    if isinstance(dag.op(node), Share):
        return OperatorDescription(reveals=_share_reveals(dag, node, labels))
    return OperatorDescription(how=_how(dag, node), cost=_cost(dag, node, labels),
                               reveals=_reveals(dag, node, labels) + _overflow_reveals(dag, node))


def _overflow_reveals(dag: Dag, node: int) -> list[tuple[str, str]]:
    """One opened bit per secure overflow check of the operator (lib/overflow.py): the
    operations the compile-time bounds leave unproven, by the rule the program follows."""
    return [(f"whether {u.what} overflows the secure type's range (|value| < 2^{RANGE_BITS}): "
             f"one bit, to the compute parties", COMPUTE)
            for u in unproven_operations(dag, 1 << RANGE_BITS).get(node, [])]


def _share_reveals(dag: Dag, node: int, labels: Labels) -> list[tuple[str, str]]:
    """What ``share_input`` shows of an owner's shared rows besides their number: the number
    of 7-byte pieces of its longest text in each secret text column (lib/input.py)."""
    op = dag.op(node)
    (src,) = dag.inputs(node)
    short = dag.g.graph.get(ONE_PIECE_TEXTS, {}).get(node, ())  # one piece whatever the value
    texts = [f.name for f in dag.schema(src)
             if f.sql_type == "text" and f.name not in op.public_columns and f.name not in short]
    if not texts:
        return []
    return [(f"how long {op.party}'s longest shared {labels(node, texts)} is, in 7-byte pieces "
             f"(texts travel as ceil(bytes/7) secret numbers)", COMPUTE)]


def _how(dag: Dag, node: int) -> str:
    """The operator's algorithm tags, as explain prints them after its line."""
    op = dag.op(node)
    tags = []
    if isinstance(op, Aggregate) and op.keys:
        if dag.attr(node, "public_keys"):
            tags.append("public keys: grouped by the clear key values")
        elif dag.attr(node, DOMAIN_ATTR):
            size = len(domain_tuples(dag.attr(node, DOMAIN_ATTR)))
            tags.append(f"group-by over a declared public domain of {size} values: one-hot "
                        f"columns computed by each owner, one secure matrix product")
        else:
            tags.append("secret keys: oblivious sort and segmented sums")
    if isinstance(op, Join) and op.left_keys:
        if join_unique_side(dag, node):
            tags.append("secret keys: PK-FK sort join, linear per key bit")
        elif dag.g.graph.get("join_bound"):
            tags.append("secret keys: sort-based many-to-many join, padded")
        else:
            tags.append("secret keys: sort-based many-to-many join, M revealed")
    if isinstance(op, (Filter, SemiJoin)):
        tags.append("the row count stays hidden: rows are flagged, not dropped")
    if isinstance(op, Window):
        tags.append("secret keys: oblivious sort by partition and order keys, segmented "
                    "prefix sums")
    if node in sorts_on_owner_bits(dag):  # sorts on input columns: their owners input the bits
        tags.append("key bits input by owners")
    return " ".join(f"[{tag}]" for tag in tags)


def _cost(dag: Dag, node: int, labels: Labels) -> str:
    """The operator's algorithm (joins), public output length and what it reveals (see each
    operator's docstring in lib/)."""
    op = dag.op(node)
    if isinstance(op, Join):
        return _join_cost(dag, node, labels)
    if isinstance(op, SemiJoin):
        return (f"algorithm: semi-join by an oblivious radix sort of both inputs' keys "
                f"(linear per key bit; a nested loop when left x right is at most "
                f"{SEMIJOIN_NESTED_LOOP_MAX}); output length: the left input's length; {NOTHING}")
    if isinstance(op, Union):
        return f"output length: the sum of the input lengths; {NOTHING}"
    if isinstance(op, Window):
        return (f"algorithm: one oblivious radix sort per window by (partition keys, order "
                f"keys), then segmented prefix scans (log2 n rounds; MEDIAN / PERCENTILE: an "
                f"oblivious selection, n comparisons); output length: its input's length "
                f"(the rows in sorted order); {NOTHING}")
    if isinstance(op, Aggregate) and not op.keys:
        return f"output length: 1; {NOTHING}"
    if isinstance(op, Aggregate) and dag.attr(node, DOMAIN_ATTR):
        size = len(domain_tuples(dag.attr(node, DOMAIN_ATTR)))
        return (f"output length: {size}, the declared domain's size (which groups are empty "
                f"stays secret); {NOTHING}")
    if isinstance(op, Aggregate) and dag.attr(node, "public_keys"):
        return (f"output length: the number of distinct public key values (sent in the clear, "
                f"see below); {NOTHING}")
    if isinstance(op, Aggregate) or isinstance(op, Distinct):
        return f"output length: its input's length (the number of groups stays secret); {NOTHING}"
    if isinstance(op, Limit):
        return f"output length: at most {op.n} (the number of valid rows stays secret); {NOTHING}"
    functions = function_costs(_expressions(op))  # EXTRACT, DATE_TRUNC, LIKE, ...
    return f"output length: its input's length; {NOTHING}" + \
        (f"; {functions}" if functions else "")


def _expressions(op: object) -> list:
    """The row expressions of a filter or projection (none for other operators)."""
    if isinstance(op, Filter):
        return [op.predicate]
    return [e for _, e in op.exprs] if isinstance(op, Project) else []


def _join_cost(dag: Dag, node: int, labels: Labels) -> str:
    """A join's algorithm (lib/join.py, lib/mmjoin.py): chosen from public facts only."""
    op = dag.op(node)
    if not op.left_keys:
        return f"output length: left x right input lengths; {NOTHING}"
    side = join_unique_side(dag, node)
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
            f"({labels(dag.inputs(node)[u], keys)}); output length: the {other} input's "
            f"length (left x right when that is at most {NESTED_LOOP_MAX}: a nested loop is "
            f"faster there); {NOTHING}")


def _reveals(dag: Dag, node: int, labels: Labels) -> list[tuple[str, str]]:
    """What the operator opens beyond public lengths (or a note that it opens nothing)."""
    op = dag.op(node)
    if isinstance(op, Join) and op.left_keys:
        keys = labels(dag.inputs(node)[0], op.left_keys)
        if join_unique_side(dag, node):
            return [("nothing about which rows match: the PK-FK join sorts both inputs "
                     "obliviously (only uniformly random permutations are opened); its size is "
                     "the length of the other input, already known", NOBODY)]
        if dag.g.graph.get("join_bound"):
            return [(f"whether the join on ({keys}) has at most {dag.g.graph['join_bound']} "
                     f"rows (--join-bound; the run stops if not; its output is padded to that "
                     f"length)", COMPUTE)]
        return [(f"the number of joined rows M of the join on ({keys}) (the sort-based "
                 f"many-to-many join, no side known unique; nothing about which rows match; "
                 f"nothing at all when left x right is at most {NESTED_LOOP_MAX}: a nested "
                 f"loop then)", COMPUTE)]
    if isinstance(op, Aggregate) and dag.attr(node, DOMAIN_ATTR):
        keys = labels(dag.inputs(node)[0], op.keys)
        size = len(domain_tuples(dag.attr(node, DOMAIN_ATTR)))
        return [(f"nothing new from the one-hot group-by on ({keys}): its domain is public "
                 f"(declared in the catalog), the one-hot columns each owner computes are "
                 f"secret-shared like the rest of its rows, and the output length ({size} rows) "
                 f"follows from the domain", NOBODY)]
    if isinstance(op, SemiJoin) and op.null_safe:
        return [("nothing about which rows are common to both inputs (INTERSECT / EXCEPT: a "
                 "private set operation): the secure semi-join sorts both inputs obliviously "
                 "and only clears secret validity flags; the recipients learn the result "
                 "rows, the compute parties only the public input lengths", NOBODY)]
    if isinstance(op, SemiJoin):
        return [("nothing about which rows match: the secure semi-join (IN / EXISTS) sorts "
                 "both inputs obliviously and only clears secret validity flags of the left "
                 "rows; its size is the left input's length, already known", NOBODY)]
    if isinstance(op, Window):
        return [("nothing about the rows' order or partitions: the window sorts its rows "
                 "obliviously (only uniformly random permutations are opened) and computes "
                 "ranks, shifts, running aggregates and quantiles on secret values", NOBODY)]
    return [(what, NOBODY) for what in function_reveals(_expressions(op))]
