"""The state one query's lowering shares, and row expressions lowered against a node's columns.

`LoweringContext` holds the catalog, the SQL text (for error positions), the DAG being built
and the counter behind fresh column names. The query-level lowering (lower.py) extends it;
subqueries.py and aggregates.py are functions over it, and reach back into query lowering only
through its `query` method.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod

from sqlglot import exp

from ..catalog import Catalog
from ..errors import SchemaError, SqlError, UnsupportedError
from ..ir.dag import Dag, Filter, col
from ..ir.portable import PORTABLE_EXPRESSIONS, fold_constants
from .parse import node_position
from .trees import SUBQUERY_TABLE, construct_name, find_like, internal_name
from .typecheck import coerce_date_literals, type_of

# Row-wise expression nodes a lowered plan may contain anywhere (in MPC too); besides them,
# any function or operator of SQL may appear where it runs in a party's local engine (the
# analyses/secure_expressions check rejects it, with a reason, where it would run in MPC).
ALLOWED_EXPRESSIONS = PORTABLE_EXPRESSIONS
# nodes that are never a row-wise expression of their own
NOT_ROW_WISE = (exp.Window, exp.AggFunc, exp.Query, exp.Subquery, exp.Lambda, exp.Placeholder)
# the other nodes a local engine's expression may hold (functions, LIKE, ||, INTERVAL, ...)
LOCAL_EXPRESSIONS = (exp.Func, exp.Binary, exp.Unary, exp.Predicate, exp.Interval, exp.Var)
# CTE name -> the DAG node of its lowered query
Ctes = dict[str, int]


class LoweringContext(ABC):
    """Lowers one qualified query tree into `dag`; every error carries its SQL position."""

    def __init__(self, catalog: Catalog, sql: str) -> None:
        self.catalog = catalog
        self.sql = sql
        self.dag = Dag()
        self.fresh = itertools.count()

    @abstractmethod
    def query(self, q: exp.Expression, ctes: Ctes) -> int:
        """Lower a query (SELECT, UNION, subquery) to the node of its result."""

    def error(self, cls: type[SqlError], message: str, node: exp.Expression) -> SqlError:
        return cls(message, **node_position(node, self.sql))

    def fresh_name(self, prefix: str) -> str:
        """A column name no query can spell: `__<prefix><n>`."""
        return f"__{prefix}{next(self.fresh)}"

    def add_filter(self, node: int, pred: exp.Expression) -> int:
        """A Filter on `pred` above `node`."""
        return self.dag.add(Filter(pred, pred.sql()), self.dag.schema(node), [node])

    def row_expr(self, e: exp.Expression, node: int, clause: str, check: bool = True
                 ) -> exp.Expression:
        """`e` with every column replaced by the internal column of `node` it names; with
        `check`, also that it is made of supported constructs and well typed."""
        names = set(self.dag.names(node))

        def swap(x: exp.Expression) -> exp.Expression:
            if isinstance(x, exp.Column):
                if x.table == SUBQUERY_TABLE:
                    return col(x.name)
                name = internal_name(x)
                if name not in names:
                    raise self.error(SchemaError, f"column {x.sql()} is not available in {clause}",
                                     x)
                out = col(name)  # keeps its SQL position (from the table name on), for errors
                starts = [i.meta["start"] for i in (x.args.get("table"), x.this)
                          if i is not None and i.meta.get("start") is not None]
                if starts:
                    out.this.meta["start"] = min(starts)
                return out
            if isinstance(x, exp.AggFunc):
                raise self.error(SchemaError, f"aggregate function in {clause}", x)
            return x

        out = fold_constants(coerce_date_literals(e.copy().transform(swap), self.dag.types(node)))
        if check:
            self.check_expression(out, clause, original=e)
            self.type_of(out, self.dag.types(node), clause, original=e)
        return out

    def check_expression(self, e: exp.Expression, clause: str,
                         original: exp.Expression | None = None) -> None:
        """Every node of `e` is a supported row-wise construct (no subquery left in it)."""
        for x in e.walk():
            if isinstance(x, exp.Subquery):
                raise self.error(UnsupportedError, f"subquery in {clause}", original or x)
            if isinstance(x, NOT_ROW_WISE) or not isinstance(x, ALLOWED_EXPRESSIONS +
                                                               LOCAL_EXPRESSIONS):
                where = find_like(original, x) if original is not None else x
                raise self.error(UnsupportedError, f"{construct_name(x)} in {clause}", where)

    def type_of(self, e: exp.Expression, types: dict[str, str], where: str,
                original: exp.Expression | None = None) -> str:
        """The SQL type of a lowered expression; raises SchemaError on a type mismatch."""
        return type_of(e, types, where, sql=self.sql, original=original)

    def require_bool(self, pred: exp.Expression, original: exp.Expression, node: int,
                     clause: str) -> None:
        t = self.type_of(pred, self.dag.types(node), clause, original=original)
        if t != "bool":
            raise self.error(SchemaError, f"{clause} condition is {t}, not a boolean", original)
