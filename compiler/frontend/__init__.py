"""SQL text -> DAG of relational operators: parse, qualify against the catalog, type-check, lower.

    dag = lower_sql("SELECT vendor, SUM(fare) FROM trips GROUP BY vendor", catalog)

sqlglot does the parsing and name qualification; the modules here check that the statement is
a query built from the constructs sqlmpc supports and lower it to the operators of
compiler/ir/dag.py. Every rejection is a `SqlError` carrying the line and column of the
offending construct. One job per module, in pipeline order:

    parse.py       SQL text -> one sqlglot query tree; error positions
    resolve.py     table names against the catalog (`party.table`), columns qualified
    lower.py       queries, sources, joins, WHERE, the select list, ORDER BY, LIMIT -> operators
    subqueries.py  scalar subqueries (cross joins), IN / EXISTS (semi-joins), correlation
    decorrelate.py correlated scalar subqueries and non-equality correlations as joins
    setops.py      INTERSECT / EXCEPT (null-safe semi-joins / anti-joins over DISTINCT rows)
    paging.py      LIMIT and OFFSET
    aggregates.py  GROUP BY and aggregate functions
    grouping_sets.py  GROUPING SETS / ROLLUP / CUBE as a union of group-bys
    ordered_sets.py   MEDIAN / PERCENTILE_CONT / PERCENTILE_DISC (through a window)
    windows.py     window functions (OVER) as a Window operator
    typecheck.py   the SQL type of a row expression
    context.py     what one query's lowering shares; row expressions against a node's columns
    trees.py       small functions over sqlglot trees the others share
"""

from __future__ import annotations

from ..catalog import Catalog
from ..ir.dag import Dag, Output
from ..ir.dag import RANGES
from .lower import Lowerer
from .parse import DEFAULT_DIALECT, parse_sql
from .resolve import resolve_names

__all__ = ["DEFAULT_DIALECT", "lower_sql", "parse_sql"]


def lower_sql(sql: str, catalog: Catalog, *, dialect: str | None = DEFAULT_DIALECT) -> Dag:
    """Compile SQL text to a DAG of operators ending in an Output node."""
    tree = parse_sql(sql, dialect)
    tree = resolve_names(tree, catalog, sql, dialect)
    lowerer = Lowerer(catalog, sql)
    root = lowerer.query(tree, {})
    dag = lowerer.dag
    out = dag.add(Output(catalog.recipients), dag.schema(root), [root])
    dag.root = out
    dag.g.graph["sql"] = sql  # the positions of later refusals (passes) point into it
    # declared public ranges (catalog `ranges`): the bounds analysis proves arithmetic from them
    dag.g.graph[RANGES] = {t.name: dict(t.ranges) for t in catalog.tables.values() if t.ranges}
    dag.check()
    return dag
