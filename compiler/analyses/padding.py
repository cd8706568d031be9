"""Padded input sizes: how many rows each party's share into MPC claims to have.

By default a share reveals its exact row count n_i to every compute party (share_input sends
it in the clear). Padding hides it, by sending dummy rows whose secret valid flag is 0; two
opt-ins pad any share, and small public bounds are padded to by default:

- `pad_rows = B` on a catalog table (a public upper bound on the rows of each of its parts;
  each owner's local job checks its part, backends/validate.py): a share computed from such
  tables is padded to a bound derived from the plan (a filter, projection, sort or grouped
  aggregate keeps at most its input's rows, a local join at most the product, a local union
  the sum, a LIMIT n at most n). Reveals nothing beyond the bound. Every table the share reads
  must then declare one: a bound cannot come from an unbounded table.
- `--pad-inputs pow2`: every count rounded up to the next power of two (n = 0 counts as 1), so
  only ceil(log2 n_i) is revealed. A declared bound wins where there is one.
- By default (no option), a share whose rows the plan bounds by a public number B <=
  MAX_DEFAULT_PAD is padded to B: groups (GROUP BY, DISTINCT) of keys the catalog declares a
  domain for (`[tables.T.domains]`; B = the number of key tuples the domains allow), a local
  LIMIT n, totals kept only when non-empty. Its size then no longer tells, e.g., how many
  distinct keys the owner has (which companies a taxi platform serves). It costs at most B
  dummy rows; each owner's local job checks every value lies in its domain (a value outside
  stops the job with one line, before anything is shared).

A share of a whole-table aggregate (exactly one row) is never padded: its size says nothing.
Nor is a share with public columns (use_public_keys: key values every owner declared "*" go
in the clear, one per row, which shows the count anyway); `--disable use_public_keys` pads it.
"""

from __future__ import annotations

from ..catalog import Catalog
from ..errors import SqlmpcError
from ..ir.dag import Aggregate, Dag, Distinct, Filter, Join, Limit, Project, Scan, Sort, Union
from .domains import declared_values
from .nullability import Nullability

PAD_MODES = ("pow2",)
#: bytes of text one secret number carries (backends/mpyc/lib/encoding.py MAX_TEXT_BYTES): a
#: longer text travels as more numbers, and how many shows
TEXT_PIECE_BYTES = 7
#: the DAG's record {share node: its text columns whose declared domain fits one number}
ONE_PIECE_TEXTS = "one_piece_texts"
MAX_PAD_ROWS = 10_000_000  # a derived bound beyond this would cost more than it hides
MAX_DEFAULT_PAD = 1024  # padding without an option costs at most this many dummy rows per share


def share_padding(dag: Dag, share: int, catalog: Catalog, mode: str | None = None
                  ) -> int | str | None:
    """The `pad_to` of the Share node `share`: an int (a public bound), "pow2", or None (the
    exact count is revealed)."""
    if mode is not None and mode not in PAD_MODES:
        raise SqlmpcError(f"unknown --pad-inputs mode {mode!r} (use {', '.join(PAD_MODES)})")
    (node,) = dag.inputs(share)
    if exactly_one_row(dag, node) or dag.op(share).public_columns:
        return None
    declared = _declaring_tables(dag, node, catalog)
    if declared:
        bound = _bound(dag, node, catalog)
        if bound is None:
            missing = sorted(_scanned(dag, node) - declared)
            raise SqlmpcError(
                f"cannot hide the number of rows shared from table(s) {', '.join(sorted(declared))}"
                f" (pad_rows): the same rows also depend on table(s) {', '.join(missing)}, which "
                f"declare no pad_rows; declare it there too, or use --pad-inputs pow2")
        if bound > MAX_PAD_ROWS:
            raise SqlmpcError(
                f"the padded size of a share from table(s) {', '.join(sorted(declared))} would be "
                f"{bound:,} rows (a local join multiplies the pad_rows bounds), more than "
                f"{MAX_PAD_ROWS:,}; use --pad-inputs pow2 instead")
        return bound
    bound = _bound(dag, node, catalog)  # without pad_rows: from domains, a LIMIT, 1-row totals
    if bound is not None and bound <= MAX_DEFAULT_PAD:
        return bound
    return mode


def one_piece_texts(dag: Dag, share: int, catalog: Catalog) -> list[str]:
    """The text columns of the Share node `share` whose every declared value fits one secret
    number: how long the longest shared value is tells nothing about them."""
    (node,) = dag.inputs(share)
    return [f.name for f in dag.schema(node) if f.sql_type == "text" and
            (values := declared_values(dag, catalog, node, f.name)) is not None and
            all(len(str(v).encode()) <= TEXT_PIECE_BYTES for v in values)]


def describe_padding(pad: int | str | None) -> str:
    """What a share's size reveals, for explain."""
    if pad is None:
        return "exactly"
    if pad == "pow2":
        return "rounded up to a power of two (only ceil(log2 n) is revealed)"
    return f"nothing beyond the public bound {pad:,} (padded with dummy rows)"


def exactly_one_row(dag: Dag, node: int) -> bool:
    """Whether a node always has exactly one row (a whole-table aggregate, maybe projected)."""
    op = dag.op(node)
    if isinstance(op, Aggregate):
        return not op.keys
    if isinstance(op, (Project, Sort)):
        return exactly_one_row(dag, dag.inputs(node)[0])
    return False


def _scanned(dag: Dag, node: int) -> set[str]:
    op = dag.op(node)
    if isinstance(op, Scan):
        return {op.table}
    return set().union(*(_scanned(dag, i) for i in dag.inputs(node)))


def _declaring_tables(dag: Dag, node: int, catalog: Catalog) -> set[str]:
    return {t for t in _scanned(dag, node) if catalog.tables[t].pad_rows is not None}


def _bound(dag: Dag, node: int, catalog: Catalog) -> int | None:
    """An upper bound on the rows of a local node, or None when none follows from the catalog."""
    op = dag.op(node)
    ins = dag.inputs(node)
    if isinstance(op, Scan):
        return catalog.tables[op.table].pad_rows
    if isinstance(op, Aggregate) and not op.keys:
        return 1
    if isinstance(op, (Aggregate, Distinct)):  # at most one row per key tuple
        keys = op.keys if isinstance(op, Aggregate) else dag.names(node)
        bounds = [_bound(dag, ins[0], catalog), _domain_size(dag, node, keys, catalog)]
        return min((b for b in bounds if b is not None), default=None)
    if isinstance(op, (Filter, Project, Sort)) or \
            type(op).__name__ == "SemiJoin":  # a subset of its first input's rows
        return _bound(dag, ins[0], catalog)
    if isinstance(op, Limit):
        inner = _bound(dag, ins[0], catalog)
        return op.n if inner is None else min(op.n, inner)
    bounds = [_bound(dag, i, catalog) for i in ins]
    if any(b is None for b in bounds):
        return None
    if isinstance(op, Union):
        return sum(bounds)
    if isinstance(op, Join):
        left, right = bounds
        return left * right
    return None


def _domain_size(dag: Dag, node: int, keys, catalog: Catalog) -> int | None:
    """How many key tuples the catalog's domains allow at a local grouping node (a NULL key is
    one more value), or None when a key has no declared domain."""
    nullable = Nullability(dag)(node)
    size = 1
    for k in keys:
        values = declared_values(dag, catalog, node, k)
        if values is None:
            return None
        size *= len(values) + (k in nullable)
    return size


__all__ = ["MAX_DEFAULT_PAD", "PAD_MODES", "describe_padding", "exactly_one_row",
           "share_padding"]
