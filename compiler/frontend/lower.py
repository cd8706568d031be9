"""Lower a qualified query tree to the operators of the DAG (compiler/ir/dag.py).

FROM sources become scans (a logical table: the union of its parties' parts), joins become
equi-joins (other join conditions: filters above them), WHERE a filter and semi-joins, then
GROUP BY (aggregates.py), the select list a projection, DISTINCT, ORDER BY and LIMIT. Output
columns of a source are named `alias.column`.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from .. import sqltypes
from ..errors import SchemaError, UnsupportedError
from ..ir.dag import JOIN_POSITIONS, Distinct, Field, Join, Project, Scan, Sort, Union, col
from .aggregates import lower_aggregate
from .context import Ctes, LoweringContext
from .joins import lower_inner_joins
from .parse import node_position
from .resolve import split_party_table
from .paging import limit_operator
from .setops import set_operation
from .subqueries import attach_subqueries, semi_join, semi_term
from .windows import lower_windows, reject_misplaced_windows
from .trees import conjuncts, has_aggregate, internal_name, render_projection, unique_names

# SELECT clauses sqlmpc does not compile, by sqlglot's argument name
UNSUPPORTED_CLAUSES = ("laterals", "pivots", "qualify", "windows", "connect", "match", "prewhere")
# join kinds other than inner and cross
UNSUPPORTED_JOIN_KINDS = ("OUTER", "SEMI", "ANTI", "NATURAL", "ASOF")
# lowers an expression of the select list / ORDER BY over the rows the projection reads
Rewrite = Callable[[exp.Expression, str], exp.Expression]


class Lowerer(LoweringContext):
    """Lowers one qualified query tree; CTE names map to the nodes of their lowered queries."""

    # --- queries -----------------------------------------------------------------------------
    def query(self, q: exp.Expression, ctes: Ctes) -> int:
        ctes = dict(ctes)
        with_ = q.args.get("with") or q.args.get("with_")
        if with_ is not None:
            if with_.args.get("recursive"):
                raise self.error(UnsupportedError, "WITH RECURSIVE", with_)
            for cte in with_.expressions:
                ctes[cte.alias_or_name.lower()] = self.query(cte.this, ctes)
        if isinstance(q, exp.Subquery):
            return self.query(q.this, ctes)
        if isinstance(q, exp.Union):
            return self.union(q, ctes)
        if isinstance(q, (exp.Intersect, exp.Except)):
            return set_operation(self, q, ctes)
        if isinstance(q, exp.Select):
            return self.select(q, ctes)
        raise self.error(UnsupportedError, f"{type(q).__name__} as a query", q)

    def union(self, q: exp.Union, ctes: Ctes) -> int:
        left = self.query(q.this, ctes)
        right = self.query(q.expression, ctes)
        fields = self._union_fields(q, left, right)
        node = self.dag.add(Union(), fields, [left, right])
        if q.args.get("distinct"):
            node = self.dag.add(Distinct(), fields, [node])
        order, limit = q.args.get("order"), q.args.get("limit")
        if order is not None:
            node = self.dag.add(Sort(self._union_sort_keys(order, fields)), fields, [node])
        if limit is not None or q.args.get("offset") is not None:
            node = self.dag.add(limit_operator(self, q), fields, [node])
        return node

    def _union_fields(self, q: exp.Union, left: int, right: int) -> list[Field]:
        """The union's columns: the left side's names, types matched by position (numbers
        widen)."""
        ls, rs = self.dag.schema(left), self.dag.schema(right)
        if len(ls) != len(rs):
            raise self.error(SchemaError, f"UNION of {len(ls)} and {len(rs)} columns", q)
        fields = []
        for a, b in zip(ls, rs):
            t = a.sql_type
            if a.sql_type != b.sql_type:
                if sqltypes.is_numeric(a.sql_type) and sqltypes.is_numeric(b.sql_type):
                    t = sqltypes.combine_numeric(a.sql_type, b.sql_type)
                else:
                    raise self.error(SchemaError, f"UNION column {a.name!r}: {a.sql_type} vs "
                                                  f"{b.sql_type}", q)
            fields.append(Field(a.name, t))
        return fields

    def _union_sort_keys(self, order: exp.Order, fields: list[Field]
                         ) -> tuple[tuple[str, bool], ...]:
        keys = []
        names = [f.name for f in fields]
        for o in order.expressions:
            target = o.this
            if isinstance(target, exp.Literal) and not target.is_string:
                keys.append((names[int(target.this) - 1], bool(o.args.get("desc"))))
            elif isinstance(target, exp.Column) and target.name in names:
                keys.append((target.name, bool(o.args.get("desc"))))
            else:
                raise self.error(UnsupportedError, "ORDER BY of a UNION must name an output "
                                                   "column", o)
        return tuple(keys)

    def limit_value(self, limit: exp.Expression) -> int:
        value = limit.expression if isinstance(limit, exp.Limit) else limit
        if not (isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit()):
            raise self.error(UnsupportedError, "LIMIT must be a whole number", limit)
        return int(value.this)

    # --- sources -----------------------------------------------------------------------------
    def source(self, src: exp.Expression, ctes: Ctes) -> int:
        """Lower a FROM/JOIN source; output columns are named `alias.column`."""
        alias = src.alias_or_name
        if isinstance(src, exp.Table):
            name = src.name
            if name.lower() in ctes and not src.text("db"):
                return self.rename(ctes[name.lower()], alias)
            part = split_party_table(name)
            if part is not None:
                party, table = part
                return self.scan(table, party, alias)
            table = next(t for t in self.catalog.tables if t.lower() == name.lower())
            scans = [self.scan(table, party, alias) for party in self.catalog.tables[table].parts]
            if len(scans) == 1:
                return scans[0]
            return self.dag.add(Union(), self.dag.schema(scans[0]), scans)
        if isinstance(src, exp.Subquery):
            return self.rename(self.query(src.this, ctes), alias)
        raise self.error(UnsupportedError, f"{type(src).__name__} in FROM", src)

    def scan(self, table: str, party: str, alias: str) -> int:
        cols = self.catalog.tables[table].columns
        fields = [Field(f"{alias}.{c.lower()}", cols[c].sql_type) for c in cols]
        return self.dag.add(Scan(table, party, alias, tuple(cols)), fields)

    def rename(self, node: int, alias: str) -> int:
        exprs = tuple((f"{alias}.{f.name}", col(f.name)) for f in self.dag.schema(node))
        fields = [Field(n, f.sql_type) for (n, _), f in zip(exprs, self.dag.schema(node))]
        return self.dag.add(Project(exprs, render_projection(exprs)), fields, [node])

    @staticmethod
    def _inner(j: exp.Join) -> bool:
        """An inner or cross join written with ON or a comma (not USING, not NATURAL)."""
        side, kind = (j.args.get("side") or "").upper(), (j.args.get("kind") or "").upper()
        return not side and kind in ("", "INNER", "CROSS") and not j.args.get("using") and \
            not j.args.get("method")

    def join(self, left: int, j: exp.Join, ctes: Ctes) -> int:
        """One join of a FROM clause that has an outer join (else joins.py joins them all):
        inner, or LEFT / RIGHT / FULL [OUTER] on key equalities, whose other ON terms may
        test only the side the join fills with NULLs (they filter it before the join)."""
        side, kind = (j.args.get("side") or "").upper(), (j.args.get("kind") or "").upper()
        if j.args.get("method"):  # NATURAL, ASOF: join conditions sqlmpc does not derive
            kind = str(j.args["method"]).upper()
        if kind in UNSUPPORTED_JOIN_KINDS and not (side and kind == "OUTER"):
            raise self.error(UnsupportedError, f"{(side + ' ' + kind).strip()} JOIN (only inner, "
                                               f"cross and outer equi-joins)", j)
        right = self.source(j.this, ctes)
        on = j.args.get("on")
        if j.args.get("using"):
            raise self.error(UnsupportedError, "JOIN ... USING (write ON a.k = b.k)", j)
        lkeys, rkeys, rest = self._join_keys(on, left, right)
        if side:
            if not lkeys:
                raise self.error(UnsupportedError, f"{side} JOIN without an equality between "
                                                   f"the two sides", j)
            left, right, rest = self._outer_terms(side, left, right, rest)
        fields = self.dag.schema(left) + self.dag.schema(right)
        types = {f.name: f.sql_type for f in fields}
        for a, b in zip(lkeys, rkeys):
            ta, tb = types[a], types[b]
            if ta != tb and not (sqltypes.is_numeric(ta) and sqltypes.is_numeric(tb)):
                raise self.error(SchemaError, f"join key types differ: {a} {ta} vs {b} {tb}", on)
        node = self.dag.add(Join(tuple(lkeys), tuple(rkeys), side.lower() or "inner"), fields,
                            [left, right])
        if side:  # where a refusal to run it inside MPC points (analyses/secure_expressions)
            self.dag.g.graph.setdefault(JOIN_POSITIONS, {})[node] = node_position(j, self.sql)
        for conj in rest:
            node = self.add_filter(node, self.row_expr(conj, node, "JOIN ON"))
        return node

    def _outer_terms(self, side: str, left: int, right: int, rest: list[exp.Expression]
                     ) -> tuple[int, int, list[exp.Expression]]:
        """An outer join's ON terms besides its keys become filters of the side it fills
        with NULLs (LEFT: the right side): a row there that fails them matches nothing."""
        target = {"LEFT": 1, "RIGHT": 0}.get(side)
        sides = [left, right]
        for term in rest:
            used = {internal_name(c) for c in term.find_all(exp.Column)}
            if target is None or not used or not used <= set(self.dag.names(sides[target])):
                raise self.error(UnsupportedError, f"a condition of {side} JOIN ... ON other "
                                                   f"than key equalities and tests of the "
                                                   f"joined side's own columns", term)
            pred = self.row_expr(term, sides[target], "JOIN ON")
            sides[target] = self.add_filter(sides[target], pred)
        return sides[0], sides[1], []

    def _join_keys(self, on: exp.Expression | None, left: int, right: int
                   ) -> tuple[list[str], list[str], list[exp.Expression]]:
        """The equi-join keys of an ON condition (left, right) and its other terms."""
        lnames, rnames = set(self.dag.names(left)), set(self.dag.names(right))
        lkeys, rkeys, rest = [], [], []
        if on is None:
            return lkeys, rkeys, rest
        for conj in on.flatten() if isinstance(on, exp.And) else [on]:
            if isinstance(conj, exp.EQ) and isinstance(conj.this, exp.Column) and \
                    isinstance(conj.expression, exp.Column):
                a, b = internal_name(conj.this), internal_name(conj.expression)
                if a in lnames and b in rnames:
                    lkeys.append(a), rkeys.append(b)
                    continue
                if b in lnames and a in rnames:
                    lkeys.append(b), rkeys.append(a)
                    continue
            rest.append(conj)
        if not lkeys and rest:
            raise self.error(UnsupportedError, "join without an equality between the two "
                                               "sides (only equi-joins)", on)
        return lkeys, rkeys, rest

    # --- SELECT --------------------------------------------------------------------------------
    def select(self, s: exp.Select, ctes: Ctes) -> int:
        self._reject_clauses(s)
        from_ = s.args.get("from_") or s.args.get("from")
        if from_ is None:
            raise self.error(UnsupportedError, "SELECT without FROM", s)
        joins = s.args.get("joins") or []
        where = s.args.get("where")
        if all(self._inner(j) for j in joins):
            node, terms = lower_inner_joins(self, from_.this, joins,
                                            where.this if where is not None else None, ctes)
            where = exp.Where(this=exp.and_(*terms, copy=True)) if terms else None
        else:
            node = self.source(from_.this, ctes)
            for j in joins:
                node = self.join(node, j, ctes)
        if where is not None:
            node = self.where(node, where, ctes)
        outputs = list(s.expressions)
        order = s.args.get("order")
        order_items = list(order.expressions) if order is not None else []
        node, rewrite = self.grouping(node, s, outputs, order_items, ctes)
        node, rewrite = lower_windows(self, node, outputs, order_items, rewrite)
        out_names = unique_names([e.alias_or_name.lower() for e in outputs])
        exprs = [(name, rewrite(e.unalias() if isinstance(e, exp.Alias) else e, "SELECT"))
                 for name, e in zip(out_names, outputs)]
        visible = len(exprs)
        sort_keys = self.sort_keys(s, order_items, out_names, outputs, exprs, rewrite)
        return self.finish_select(s, node, exprs, visible, sort_keys)

    def _reject_clauses(self, s: exp.Select) -> None:
        for key in UNSUPPORTED_CLAUSES:
            if s.args.get(key):
                raise self.error(UnsupportedError, key.upper().rstrip("S"), s.args[key]
                                 if isinstance(s.args[key], exp.Expression) else s)
        reject_misplaced_windows(self, s)
        if s.args.get("distinct") is not None and s.args["distinct"].args.get("on"):
            raise self.error(UnsupportedError, "DISTINCT ON", s.args["distinct"])

    def where(self, node: int, where: exp.Where, ctes: Ctes) -> int:
        """A filter on the plain terms of WHERE, then one semi-join per IN / EXISTS term
        (after the filter: the semi-joins see fewer left rows)."""
        terms = conjuncts(where.this)
        semis = [t for t in terms if semi_term(t) is not None]
        rest = [t for t in terms if semi_term(t) is None]
        if rest:
            cond = rest[0] if len(rest) == 1 else exp.and_(*rest, copy=False)
            node = attach_subqueries(self, node, cond, ctes)
            pred = self.row_expr(cond, node, "WHERE")
            self.require_bool(pred, cond, node, "WHERE")
            node = self.add_filter(node, pred)
        for term in semis:
            node = semi_join(self, node, term, ctes)
        return node

    def grouping(self, node: int, s: exp.Select, outputs: list[exp.Expression],
                 order_items: list[exp.Ordered], ctes: Ctes) -> tuple[int, Rewrite]:
        """The rows the select list reads (aggregated, and filtered by HAVING, when the query
        groups) and how its expressions are lowered over them."""
        having = s.args.get("having")
        sources = outputs + ([having.this] if having else []) + [o.this for o in order_items]
        if s.args.get("group") is not None or any(has_aggregate(e) for e in sources):
            node, rewrite = lower_aggregate(self, node, s, outputs, sources, ctes)
            if having is not None:
                pred = rewrite(having.this, "HAVING")
                self.require_bool(pred, having.this, node, "HAVING")
                node = self.add_filter(node, pred)
            return node, rewrite
        if having is not None:
            raise self.error(SchemaError, "HAVING without GROUP BY or aggregates", having)
        for e in outputs + [o.this for o in order_items]:
            node = attach_subqueries(self, node, e, ctes)

        def rewrite_rows(e: exp.Expression, clause: str, _n: int = node) -> exp.Expression:
            return self.row_expr(e, _n, clause)
        return node, rewrite_rows

    def sort_keys(self, s: exp.Select, order_items: list[exp.Ordered], out_names: list[str],
                  outputs: list[exp.Expression], exprs: list[tuple[str, exp.Expression]],
                  rewrite: Rewrite) -> list[tuple[str, bool]]:
        """(column, descending) per ORDER BY item; an item that is not an output column is
        appended to `exprs` as a hidden column `__orderN`."""
        visible = len(exprs)
        keys: list[tuple[str, bool]] = []
        for i, o in enumerate(order_items):
            target, desc = o.this, bool(o.args.get("desc"))
            name = self.order_target(target, out_names, outputs)
            if name is None:
                expr = rewrite(target, "ORDER BY")
                name = next((n for n, e in exprs[:visible] if e.sql() == expr.sql()), None)
                if name is None:
                    if s.args.get("distinct") is not None:
                        raise self.error(SchemaError, "with SELECT DISTINCT, ORDER BY items must "
                                                      "appear in the select list", o)
                    name = f"__order{i}"
                    exprs.append((name, expr))
            keys.append((name, desc))
        return keys

    def order_target(self, target: exp.Expression, names: list[str],
                     outputs: list[exp.Expression]) -> str | None:
        """The output column an ORDER BY item names (by position or alias), if it names one."""
        if isinstance(target, exp.Literal) and not target.is_string:
            k = int(target.this)
            if not 1 <= k <= len(names):
                raise self.error(SchemaError, f"ORDER BY position {k} is not in the select list",
                                 target)
            return names[k - 1]
        if isinstance(target, exp.Column) and not target.table and target.name.lower() in names:
            return target.name.lower()
        for name, out in zip(names, outputs):
            if isinstance(out, exp.Alias) and out.this == target:
                return name
        return None

    def finish_select(self, s: exp.Select, node: int, exprs: list[tuple[str, exp.Expression]],
                      visible: int, sort_keys: list[tuple[str, bool]]) -> int:
        """Project, DISTINCT, ORDER BY, LIMIT; hidden ORDER BY columns dropped at the end."""
        types = self.dag.types(node)
        fields = [Field(n, self.type_of(e, types, n)) for n, e in exprs]
        node = self.dag.add(Project(tuple(exprs), render_projection(exprs)), fields, [node])
        if s.args.get("distinct") is not None:
            node = self.dag.add(Distinct(), fields, [node])
        if sort_keys:
            node = self.dag.add(Sort(tuple(sort_keys)), fields, [node])
        if s.args.get("limit") is not None or s.args.get("offset") is not None:
            node = self.dag.add(limit_operator(self, s), fields, [node])
        if visible < len(exprs):
            keep = tuple((n, col(n)) for n, _ in exprs[:visible])
            node = self.dag.add(Project(keep, render_projection(keep)), fields[:visible], [node])
        return node
