"""The compiler passes, in order. Each is `pass(dag, **context) -> Dag`, pure and tested alone.

Order dependencies:
- suppress_small_groups first: it adds the owners' row counts to the aggregates the analyst
  wrote (and filters their groups), which the later passes then treat like any others.
- decompose_aggregates next: later passes only know SUM / COUNT / MIN / MAX / DISTINCT.
- use_colocation before the push-downs: it matches joins of whole tables (unions of scans),
  and the filters above it then move onto each party's own join.
- push_down_expressions after push_down_predicates (filters already moved below joins) and
  before push_down_projections (which moves the projections it adds below unions).
- push_down_predicates, then push_down_projections, then split_aggregates: filters and
  projections must sit below the union of parts before an aggregate over it can be split.
- prune_columns after the push-downs (they move column uses) and before ownership.
- propagate_ownership before mark_boundary (placement reads owners), and mark_boundary before
  use_public_keys and push_up_reveal (both act on the MPC part).
- use_domains after use_public_keys: keys grouped in the clear need no one-hot columns; after
  the push-downs and prune_columns, which therefore never see the one-hot columns it adds.
- secure_outer_joins after use_colocation (a co-located outer join stays local) and before
  propagate_ownership (the nodes it adds need owners).
- secure_date_arithmetic after push_up_reveal: it rewrites only what stays in MPC.
- infer_unique last: an analysis (no rewrite) whose `unique` attribute the MPyC code generator
  and explain read on the final plan, so every node a pass inserted or moved has it.

Optimising passes (OPTIONAL) can be switched off one by one; `--all-secure` switches off all
of them but push_up_reveal (a final square root cannot run in MPC) and places every operator
after the scans in MPC: the benchmarks' baseline.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable

from ..catalog import Catalog
from ..errors import SqlmpcError
from ..ir.dag import Dag
from .decompose_aggregates import decompose_aggregates
from .infer_unique import infer_unique
from .mark_boundary import mark_boundary
from .propagate_ownership import propagate_ownership
from .prune_columns import prune_columns
from .push_down_expressions import push_down_expressions
from .push_down_predicates import push_down_predicates
from .push_down_projections import push_down_projections
from .push_up_reveal import push_up_reveal
from .refuse_secure_windows import refuse_secure_windows
from .secure_date_arithmetic import secure_date_arithmetic
from .secure_outer_joins import secure_outer_joins
from .split_aggregates import split_aggregates
from .suppress_small_groups import suppress_small_groups
from .use_colocation import use_colocation
from .use_domains import use_domains
from .use_public_keys import use_public_keys

PASSES = (
    suppress_small_groups,
    decompose_aggregates,
    use_colocation,
    push_down_predicates,
    push_down_expressions,
    push_down_projections,
    split_aggregates,
    prune_columns,
    secure_outer_joins,
    propagate_ownership,
    mark_boundary,
    refuse_secure_windows,
    use_public_keys,
    use_domains,
    push_up_reveal,
    secure_date_arithmetic,
    infer_unique,
)
OPTIONAL = frozenset({"use_colocation", "push_down_predicates", "push_down_projections", "split_aggregates",
                      "use_public_keys", "use_domains", "push_up_reveal", "infer_unique"})


def optimize(dag: Dag, *, catalog: Catalog, all_secure: bool = False,
             disable: Iterable[str] = ()) -> Dag:
    """Run PASSES in order; each pass gets only the context its parameters name."""
    disabled = set(disable)
    unknown = disabled - OPTIONAL
    if unknown:
        raise SqlmpcError(f"cannot disable pass(es) {', '.join(sorted(unknown))}; optional "
                          f"passes: {', '.join(sorted(OPTIONAL))}")
    if all_secure:  # push_up_reveal stays: a final square root cannot run in MPC at all
        disabled |= OPTIONAL - {"push_up_reveal"}
    context = {"catalog": catalog, "all_secure": all_secure}
    for rule in PASSES:
        if rule.__name__ in disabled:
            continue
        params = inspect.signature(rule).parameters
        dag = rule(dag, **{k: v for k, v in context.items() if k in params})
    return dag
