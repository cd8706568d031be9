"""SQL text -> DAG of relational operators: parse, qualify against the catalog, type-check, lower.

sqlglot does the parsing and name qualification; this module checks that the statement is a
query built from the constructs sqlmpc supports and lowers it to the operators of `dag`.
Every rejection is a `SqlError` carrying the line and column of the offending construct.
"""

from __future__ import annotations

import itertools
import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError, SqlglotError
from sqlglot.optimizer.qualify import qualify

from .. import sqltypes
from ..catalog import Catalog
from ..ir.dag import (AggCall, Aggregate, Dag, Distinct, Field, Filter, Join, Limit, Output, Project,
                  Scan, SemiJoin, Sort, Union, col)
from ..errors import ParseError, SchemaError, SqlError, UnsupportedError

# Aggregate functions we lower, by sqlglot class.
AGGREGATES = {
    exp.Sum: "sum", exp.Count: "count", exp.Avg: "avg", exp.Min: "min", exp.Max: "max",
    exp.Stddev: "stddev_samp", exp.StddevSamp: "stddev_samp", exp.StddevPop: "stddev_pop",
    exp.Variance: "var_samp", exp.VariancePop: "var_pop",
}
# Row-wise expression nodes a lowered plan may contain; anything else is rejected by name.
ALLOWED_EXPRESSIONS = (
    exp.Column, exp.Literal, exp.Boolean, exp.Paren, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Neg,
    exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.And, exp.Or, exp.Not, exp.Case, exp.If,
    exp.In, exp.Between, exp.Is, exp.Null, exp.Cast, exp.DataType, exp.Abs, exp.Pow, exp.Sqrt,
    exp.Identifier, exp.Star, exp.Distinct, exp.Tuple, exp.Coalesce, exp.Nullif, exp.Round,
    exp.Mod, exp.DataTypeParam,
)
STATEMENT_NAMES = {exp.Delete: "DELETE", exp.Drop: "DROP", exp.Insert: "INSERT",
                   exp.Update: "UPDATE", exp.Create: "CREATE", exp.Merge: "MERGE"}
DEFAULT_DIALECT = None  # sqlglot's own, a permissive common dialect
SEMI_POSITION = "here: only as a condition of WHERE on its own or joined to others by AND"


def parse_sql(sql: str, dialect: str | None = DEFAULT_DIALECT) -> exp.Query:
    """Parse exactly one query statement, or raise a ParseError / UnsupportedError."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except sqlglot.errors.ParseError as e:
        err = e.errors[0] if e.errors else {}
        line, end, highlight = err.get("line"), err.get("col"), err.get("highlight") or ""
        start = end - len(highlight) + 1 if end is not None else None
        desc = err.get("description", str(e)).split(". Line")[0]
        desc = re.sub(r"<Token token_type: [^,]+, text: ([^,]+), line.*?>", r"'\1'", desc)
        if desc.startswith("Required keyword"):  # sqlglot's wording for a clause left empty
            clause = re.search(r"\.(\w+)'>", err.get("description", ""))
            what = CLAUSE_NAMES.get(clause.group(1), "a clause") if clause else "a clause"
            desc = f"incomplete SQL: {what} is missing what should follow it"
            if start is None and end is None and err.get("line") is None:
                line = None
        raise ParseError(desc, sql=sql, line=line, col=start) from None
    except sqlglot.errors.TokenError as e:
        quote = _unterminated_quote(sql)
        if quote is None:
            raise ParseError(str(e).splitlines()[0], sql=sql) from None
        raise ParseError("unterminated string: the quote opened here is never closed",
                         **_offset_pos(sql, quote)) from None
    except SqlglotError as e:
        raise ParseError(str(e).splitlines()[0], sql=sql) from None
    except ValueError as e:  # e.g. an unknown dialect
        raise ParseError(str(e)) from None
    if not statements:
        raise ParseError("empty SQL: no statement found", sql=sql)
    if len(statements) > 1:
        raise UnsupportedError(f"{len(statements)} statements found; sqlmpc compiles exactly one "
                               f"query", **_pos(statements[1], sql))
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        name = next((n for cls, n in STATEMENT_NAMES.items() if isinstance(tree, cls)),
                    type(tree).__name__.upper())
        raise UnsupportedError(f"{name} statement: sqlmpc compiles queries (SELECT) only",
                               **_keyword_pos(sql, name))
    return tree


CLAUSE_NAMES = {"Where": "WHERE", "Having": "HAVING", "Group": "GROUP BY", "Order": "ORDER BY",
                "Limit": "LIMIT", "From": "FROM", "Join": "JOIN", "Select": "SELECT"}


def _unterminated_quote(sql: str) -> int | None:
    """Offset of a string or quoted identifier's opening quote that is never closed."""
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if sql.startswith("--", i):
            i = sql.find("\n", i)
            if i < 0:
                return None
        elif ch in "'\"`":
            j = i + 1
            while j < n and not (sql[j] == ch and not sql.startswith(ch * 2, j)):
                j += 2 if sql.startswith(ch * 2, j) or sql[j] == "\\" else 1
            if j >= n:
                return i
            i = j
        i += 1
    return None


def _offset_pos(sql: str, offset: int) -> dict:
    before = sql[:offset]
    return {"sql": sql, "line": before.count("\n") + 1,
            "col": offset - (before.rfind("\n") + 1) + 1}


def _keyword_pos(sql: str, keyword: str) -> dict:
    """sql/line/col of the first occurrence of a keyword (statements carry no positions)."""
    m = re.search(rf"\b{re.escape(keyword)}\b", sql, re.I)
    if m is None:
        return {"sql": sql}
    before = sql[:m.start()]
    return {"sql": sql, "line": before.count("\n") + 1,
            "col": m.start() - (before.rfind("\n") + 1) + 1}


def _pos(node: exp.Expression, sql: str | None) -> dict:
    """sql/line/col keyword arguments for an error at `node` (its first token with a position)."""
    start = None
    for n in node.walk():
        if n.meta.get("start") is not None:
            s = n.meta["start"]
            start = s if start is None else min(start, s)
    if start is None or sql is None:
        return {"sql": sql}
    before = sql[:start]
    line = before.count("\n") + 1
    column = start - (before.rfind("\n") + 1) + 1
    return {"sql": sql, "line": line, "col": column}


def lower_sql(sql: str, catalog: Catalog, *, dialect: str | None = DEFAULT_DIALECT) -> Dag:
    """Compile SQL text to a DAG of operators ending in an Output node."""
    tree = parse_sql(sql, dialect)
    tree = _resolve_tables(tree, catalog, sql)
    schema = _qualify_schema(catalog)
    _check_positions(tree, sql)
    try:
        tree = qualify(tree, schema=schema, dialect=dialect, validate_qualify_columns=True,
                       quote_identifiers=False, identify=False)
    except OptimizeError as e:
        _check_ambiguous(tree, schema, sql, str(e))
        raise _schema_error(str(e), sql) from None
    except SqlglotError as e:
        raise SchemaError(str(e).splitlines()[0], sql=sql) from None
    lowerer = _Lowerer(catalog, sql)
    root = lowerer.query(tree, {})
    dag = lowerer.dag
    out = dag.add(Output(catalog.recipients), dag.schema(root), [root])
    dag.root = out
    dag.check()
    return dag


def _check_positions(tree: exp.Expression, sql: str) -> None:
    """ORDER BY 5 / GROUP BY 5 beyond the select list: an error at the number (sqlglot's
    own message has no position)."""
    for select in tree.find_all(exp.Select):
        width = len(select.expressions)
        for clause, items in (("ORDER BY", [o.this for o in (select.args.get("order") or
                                                              exp.Order()).expressions]),
                              ("GROUP BY", list((select.args.get("group") or
                                                 exp.Group()).expressions))):
            for item in items:
                if isinstance(item, exp.Literal) and item.is_int and \
                        not 1 <= int(item.this) <= width:
                    raise SchemaError(f"{clause} position {item.this} is not in the select list "
                                      f"(it has {width} column{'s' if width != 1 else ''})",
                                      **_pos(item, sql))


def _check_ambiguous(tree: exp.Expression, schema: dict, sql: str, message: str) -> None:
    """Turn sqlglot's "Column 'k' could not be resolved" into "ambiguous" when k is a column
    of more than one table of that SELECT."""
    m = re.search(r"Column '([^']+)' could not be resolved", message)
    if not m:
        return
    name = m.group(1).lower()
    for column in tree.find_all(exp.Column):
        if column.table or column.name.lower() != name:
            continue
        select = column.find_ancestor(exp.Select)
        if select is None:
            continue
        tables = [t for t in select.find_all(exp.Table) if t.find_ancestor(exp.Select) is select]
        having = [t.alias_or_name for t in tables
                  if name in {c.lower() for c in _table_columns(schema, t.name)}]
        if len(having) > 1:
            raise SchemaError(f"column {column.name} is ambiguous: it is a column of "
                              f"{' and '.join(having)}; qualify it (e.g. {having[0]}.{column.name})",
                              **_pos(column, sql))


def _table_columns(schema: dict, table: str) -> list[str]:
    for name, columns in schema.items():
        if name.lower() == table.lower():
            return list(columns)
    return []


def _schema_error(message: str, sql: str) -> SchemaError:
    m = re.search(r"^(.*?)\.? Line: (\d+), Col: (\d+)", message, re.S)
    if not m:
        return SchemaError(message.splitlines()[0], sql=sql)
    problem, line, end = m.group(1), int(m.group(2)), int(m.group(3))
    name = re.search(r"'([^']+)'", problem)
    start = end - len(name.group(1)) + 1 if name else end
    return SchemaError(problem, sql=sql, line=line, col=max(start, 1))


PARTY_TABLE_SEP = "__at__"


def _resolve_tables(tree: exp.Expression, catalog: Catalog, sql: str) -> exp.Expression:
    """Check table names; rewrite `party.table` to a private name keeping the alias `table`."""
    cte_names = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    tables = {t.lower(): t for t in catalog.tables}
    parties = {p.lower(): p for p in catalog.parties}
    for table in list(tree.find_all(exp.Table)):
        name, db = table.name, table.text("db")
        if table.args.get("sample") is not None:
            raise UnsupportedError("TABLESAMPLE", **_pos(table, sql))
        if table.text("catalog"):
            raise UnsupportedError(f"three-part table name {table.sql()!r}", **_pos(table, sql))
        if not db and name.lower() in cte_names:
            continue
        if name.lower() not in tables:
            known = ", ".join(sorted(catalog.tables))
            raise SchemaError(f"unknown table {table.sql()!r} (catalog tables: {known})",
                              **_pos(table, sql))
        real = tables[name.lower()]
        if db:
            if db.lower() not in parties:
                raise SchemaError(f"unknown party {db!r} in {table.sql()!r}", **_pos(table, sql))
            party = parties[db.lower()]
            if party not in catalog.tables[real].parts:
                raise SchemaError(f"party {party!r} holds no part of table {real!r}",
                                  **_pos(table, sql))
            alias = table.alias or name
            new = exp.Table(this=exp.to_identifier(f"{party}{PARTY_TABLE_SEP}{real}"),
                            alias=exp.TableAlias(this=exp.to_identifier(alias)))
            new.meta.update(table.this.meta)
            table.replace(new)
    return tree


def _qualify_schema(catalog: Catalog) -> dict:
    schema: dict[str, dict[str, str]] = {}
    for t in catalog.tables.values():
        cols = {c.name: _glot_type(c.sql_type) for c in t.columns.values()}
        schema[t.name] = cols
        for party in t.parts:
            schema[f"{party}{PARTY_TABLE_SEP}{t.name}"] = cols
    return schema


def _glot_type(t: str) -> str:
    return {"int": "BIGINT", "float": "DOUBLE", "text": "VARCHAR", "date": "DATE",
            "bool": "BOOLEAN"}.get(t, t.upper())


class _Lowerer:
    """Lowers one qualified query tree; `env` maps (alias, column) to internal names."""

    def __init__(self, catalog: Catalog, sql: str) -> None:
        self.catalog = catalog
        self.sql = sql
        self.dag = Dag()
        self.fresh = itertools.count()

    def error(self, cls, message: str, node: exp.Expression) -> SqlError:
        return cls(message, **_pos(node, self.sql))

    # --- queries ---------------------------------------------------------------------------
    def query(self, q: exp.Expression, ctes: dict[str, int]) -> int:
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
            raise self.error(UnsupportedError, f"{type(q).__name__.upper()}", q)
        if isinstance(q, exp.Select):
            return self.select(q, ctes)
        raise self.error(UnsupportedError, f"{type(q).__name__} as a query", q)

    def union(self, q: exp.Union, ctes: dict[str, int]) -> int:
        left = self.query(q.this, ctes)
        right = self.query(q.expression, ctes)
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
        node = self.dag.add(Union(), fields, [left, right])
        if q.args.get("distinct"):
            node = self.dag.add(Distinct(), fields, [node])
        order, limit = q.args.get("order"), q.args.get("limit")
        if order is not None:
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
            node = self.dag.add(Sort(tuple(keys)), fields, [node])
        if limit is not None:
            node = self.dag.add(Limit(self.limit_value(limit)), fields, [node])
        return node

    def limit_value(self, limit: exp.Expression) -> int:
        value = limit.expression if isinstance(limit, exp.Limit) else limit
        if not (isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit()):
            raise self.error(UnsupportedError, "LIMIT must be a whole number", limit)
        return int(value.this)

    # --- sources -----------------------------------------------------------------------------
    def source(self, src: exp.Expression, ctes: dict[str, int]) -> tuple[int, str]:
        """Lower a FROM/JOIN source; output columns are named `alias.column`."""
        alias = src.alias_or_name
        if isinstance(src, exp.Table):
            name = src.name
            if name.lower() in ctes and not src.text("db"):
                return self.rename(ctes[name.lower()], alias), alias
            if PARTY_TABLE_SEP in name:
                party, table = name.split(PARTY_TABLE_SEP)
                return self.scan(table, party, alias), alias
            table = next(t for t in self.catalog.tables if t.lower() == name.lower())
            scans = [self.scan(table, party, alias) for party in self.catalog.tables[table].parts]
            if len(scans) == 1:
                return scans[0], alias
            return self.dag.add(Union(), self.dag.schema(scans[0]), scans), alias
        if isinstance(src, exp.Subquery):
            return self.rename(self.query(src.this, ctes), alias), alias
        raise self.error(UnsupportedError, f"{type(src).__name__} in FROM", src)

    def scan(self, table: str, party: str, alias: str) -> int:
        cols = self.catalog.tables[table].columns
        fields = [Field(f"{alias}.{c.lower()}", cols[c].sql_type) for c in cols]
        return self.dag.add(Scan(table, party, alias, tuple(cols)), fields)

    def rename(self, node: int, alias: str) -> int:
        exprs = tuple((f"{alias}.{f.name}", col(f.name)) for f in self.dag.schema(node))
        fields = [Field(n, f.sql_type) for (n, _), f in zip(exprs, self.dag.schema(node))]
        return self.dag.add(Project(exprs, _render(exprs)), fields, [node])

    # --- SELECT --------------------------------------------------------------------------------
    def select(self, s: exp.Select, ctes: dict[str, int]) -> int:
        for key in ("laterals", "pivots", "qualify", "windows", "connect", "match", "prewhere"):
            if s.args.get(key):
                raise self.error(UnsupportedError, key.upper().rstrip("S"), s.args[key]
                                 if isinstance(s.args[key], exp.Expression) else s)
        for node in s.find_all(exp.Window):
            raise self.error(UnsupportedError, "window function (OVER)", node)
        if s.args.get("distinct") is not None and s.args["distinct"].args.get("on"):
            raise self.error(UnsupportedError, "DISTINCT ON", s.args["distinct"])
        if s.args.get("offset") is not None:
            raise self.error(UnsupportedError, "OFFSET", s.args["offset"])
        from_ = s.args.get("from_") or s.args.get("from")
        if from_ is None:
            raise self.error(UnsupportedError, "SELECT without FROM", s)
        node, _ = self.source(from_.this, ctes)
        for j in s.args.get("joins") or []:
            node = self.join(node, j, ctes)

        where = s.args.get("where")
        if where is not None:
            terms = _conjuncts(where.this)
            semis = [t for t in terms if _semi_term(t) is not None]
            rest = [t for t in terms if _semi_term(t) is None]
            if rest:
                cond = rest[0] if len(rest) == 1 else exp.and_(*rest, copy=False)
                node = self.attach_subqueries(node, cond, ctes)
                pred = self.row_expr(cond, node, "WHERE")
                self.require_bool(pred, cond, node, "WHERE")
                node = self.dag.add(Filter(pred, pred.sql()), self.dag.schema(node), [node])
            for term in semis:  # after the filter: the semi-joins see fewer left rows
                node = self.semi_join(node, term, ctes)

        outputs = list(s.expressions)
        order = s.args.get("order")
        order_items = list(order.expressions) if order is not None else []
        having = s.args.get("having")
        group = s.args.get("group")
        is_agg = group is not None or any(
            _has_aggregate(e) for e in outputs + ([having.this] if having else []) +
            [o.this for o in order_items])
        out_names = _unique([e.alias_or_name.lower() for e in outputs])

        if is_agg:
            node, rewrite = self.aggregate(node, s, outputs, having, order_items, ctes)
            if having is not None:
                pred = rewrite(having.this, "HAVING")
                self.require_bool(pred, having.this, node, "HAVING")
                node = self.dag.add(Filter(pred, pred.sql()), self.dag.schema(node), [node])
        else:
            if having is not None:
                raise self.error(SchemaError, "HAVING without GROUP BY or aggregates", having)
            for e in outputs + [o.this for o in order_items]:
                node = self.attach_subqueries(node, e, ctes)

            def rewrite(e: exp.Expression, clause: str, _n=node) -> exp.Expression:
                return self.row_expr(e, _n, clause)

        exprs = [(name, rewrite(e.unalias() if isinstance(e, exp.Alias) else e, "SELECT"))
                 for name, e in zip(out_names, outputs)]
        visible = len(exprs)
        sort_keys: list[tuple[str, bool]] = []
        for i, o in enumerate(order_items):
            target, desc = o.this, bool(o.args.get("desc"))
            name = self.order_target(target, out_names, outputs)
            if name is None:
                expr = rewrite(target, "ORDER BY")
                match = next((n for n, e in exprs[:visible] if e.sql() == expr.sql()), None)
                if match is None:
                    if s.args.get("distinct") is not None:
                        raise self.error(SchemaError, "with SELECT DISTINCT, ORDER BY items must "
                                                      "appear in the select list", o)
                    match = f"__order{i}"
                    exprs.append((match, expr))
                name = match
            sort_keys.append((name, desc))
        types = self.dag.types(node)
        fields = [Field(n, self.type_of(e, types, n)) for n, e in exprs]
        node = self.dag.add(Project(tuple(exprs), _render(exprs)), fields, [node])
        if s.args.get("distinct") is not None:
            node = self.dag.add(Distinct(), fields, [node])
        if sort_keys:
            node = self.dag.add(Sort(tuple(sort_keys)), fields, [node])
        if s.args.get("limit") is not None:
            node = self.dag.add(Limit(self.limit_value(s.args["limit"])), fields, [node])
        if visible < len(exprs):
            keep = tuple((n, col(n)) for n, _ in exprs[:visible])
            node = self.dag.add(Project(keep, _render(keep)), fields[:visible], [node])
        return node

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

    def join(self, left: int, j: exp.Join, ctes: dict[str, int]) -> int:
        side, kind = (j.args.get("side") or "").upper(), (j.args.get("kind") or "").upper()
        if side or kind in ("OUTER", "SEMI", "ANTI", "NATURAL", "ASOF"):
            raise self.error(UnsupportedError, f"{(side + ' ' + kind).strip()} JOIN (only inner "
                                               f"and cross joins)", j)
        right, _ = self.source(j.this, ctes)
        fields = self.dag.schema(left) + self.dag.schema(right)
        lnames, rnames = set(self.dag.names(left)), set(self.dag.names(right))
        on = j.args.get("on")
        if j.args.get("using"):
            raise self.error(UnsupportedError, "JOIN ... USING (write ON a.k = b.k)", j)
        lkeys, rkeys, rest = [], [], []
        if on is not None:
            for conj in on.flatten() if isinstance(on, exp.And) else [on]:
                if isinstance(conj, exp.EQ) and isinstance(conj.this, exp.Column) and \
                        isinstance(conj.expression, exp.Column):
                    a, b = _internal(conj.this), _internal(conj.expression)
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
        types = {f.name: f.sql_type for f in fields}
        for a, b in zip(lkeys, rkeys):
            ta, tb = types[a], types[b]
            if ta != tb and not (sqltypes.is_numeric(ta) and sqltypes.is_numeric(tb)):
                raise self.error(SchemaError, f"join key types differ: {a} {ta} vs {b} {tb}", on)
        node = self.dag.add(Join(tuple(lkeys), tuple(rkeys)), fields, [left, right])
        for conj in rest:
            pred = self.row_expr(conj, node, "JOIN ON")
            node = self.dag.add(Filter(pred, pred.sql()), fields, [node])
        return node

    def attach_subqueries(self, node: int, e: exp.Expression, ctes: dict[str, int]) -> int:
        """Cross-join each uncorrelated scalar subquery in `e`; it becomes a column `__sqN`."""
        for sub in list(e.find_all(exp.Subquery)):
            if isinstance(sub.parent, exp.In):
                raise self.error(UnsupportedError, f"IN (subquery) {SEMI_POSITION}", sub.parent)
            inner = sub.this
            if not isinstance(inner, exp.Select) or inner.args.get("group") is not None or not \
                    any(_has_aggregate(x) for x in inner.expressions):
                raise self.error(UnsupportedError, "scalar subquery that is not a single aggregate "
                                                   "(one row: an aggregate without GROUP BY)", sub)
            from_ = inner.args.get("from_") or inner.args.get("from")
            own = {src.alias_or_name.lower() for src in ([from_.this] if from_ else []) +
                   [j.this for j in inner.args.get("joins") or []]}
            outer_names = set(self.dag.names(node))
            for c in inner.find_all(exp.Column):
                if c.table and c.table.lower() not in own and _internal(c) in outer_names:
                    raise self.error(UnsupportedError, f"correlated subquery (it reads the outer "
                                                       f"column {c.sql()}): only uncorrelated "
                                                       f"scalar subqueries, or [NOT] IN / EXISTS "
                                                       f"in WHERE", sub)
            sq = self.query(inner, ctes)
            if len(self.dag.schema(sq)) != 1:
                raise self.error(SchemaError, "scalar subquery must return one column", sub)
            name = f"__sq{next(self.fresh)}"
            f = self.dag.schema(sq)[0]
            renamed = self.dag.add(Project(((name, col(f.name)),), name), [Field(name, f.sql_type)],
                                   [sq])
            fields = self.dag.schema(node) + (Field(name, f.sql_type),)
            node = self.dag.add(Join((), ()), fields, [node, renamed])
            sub.replace(exp.Column(this=exp.Identifier(this=name, quoted=True),
                                   table=exp.Identifier(this="__subquery__")))
        for e2 in e.find_all(exp.Exists):
            raise self.error(UnsupportedError, f"EXISTS (subquery) {SEMI_POSITION}", e2)
        return node

    # --- IN / EXISTS subqueries: semi-joins ------------------------------------------------------
    def semi_join(self, node: int, term: exp.Expression, ctes: dict[str, int]) -> int:
        """Lower one WHERE term `[NOT] x IN (SELECT ...)` or `[NOT] EXISTS (SELECT ...)`."""
        anti, pred = _semi_term(term)
        if isinstance(pred, exp.In):
            query = pred.args["query"]
            inner = query.this if isinstance(query, exp.Subquery) else query
            lhs = list(pred.this.expressions) if isinstance(pred.this, exp.Tuple) else [pred.this]
        else:
            inner = pred.this.this if isinstance(pred.this, exp.Subquery) else pred.this
            lhs = []
        inner, pairs = self.split_correlation(inner, node, pred, keep_select=bool(lhs))
        right = self.query(inner, ctes)
        rnames = self.dag.names(right)
        if lhs and len(rnames) - len(pairs) != len(lhs):
            raise self.error(SchemaError, f"IN compares {len(lhs)} value(s) with a subquery of "
                                          f"{len(rnames) - len(pairs)} column(s)", pred)
        # the compared values: columns of `node`, or computed into extra columns `__inkN`
        lkeys, extra = [], []
        for item in lhs:
            e = self.row_expr(item, node, "WHERE")
            if isinstance(e, exp.Column):
                lkeys.append(e.name)
            else:
                name = f"__ink{next(self.fresh)}"
                extra.append((name, e))
                lkeys.append(name)
        if extra:
            keep = [(f.name, col(f.name)) for f in self.dag.schema(node)]
            types = self.dag.types(node)
            fields = list(self.dag.schema(node)) + [Field(n, self.type_of(e, types, "WHERE"))
                                                    for n, e in extra]
            node = self.dag.add(Project(tuple(keep + extra), _render(extra)), fields, [node])
        lkeys += [outer for outer, _ in pairs]
        rkeys = rnames[:len(lhs)] + rnames[len(rnames) - len(pairs):]
        ltypes, rtypes = self.dag.types(node), self.dag.types(right)
        for a, b in zip(lkeys, rkeys):
            if not _comparable(ltypes[a], rtypes[b]):
                raise self.error(SchemaError, f"{'IN' if lhs else 'EXISTS'} compares "
                                              f"{ltypes[a]} with {rtypes[b]}", pred)
        op = SemiJoin(tuple(lkeys), tuple(rkeys), anti, len(lhs) if anti and lhs else 0)
        return self.dag.add(op, self.dag.schema(node), [node, right])

    def split_correlation(self, inner: exp.Expression, node: int, pred: exp.Expression,
                          keep_select: bool) -> tuple[exp.Expression, list[tuple[str, str]]]:
        """`inner` without its correlation terms, selecting (its own columns if keep_select,
        then) the inner columns of the correlation; and the pairs (outer column, inner
        output column) those terms equate. Only `inner.col = outer.col` terms of the
        subquery's WHERE may name the outer query's columns."""
        outer_names = set(self.dag.names(node))
        if not isinstance(inner, exp.Select):
            for c in inner.find_all(exp.Column):
                if c.table and _internal(c) in outer_names and not _in_scope(c, inner):
                    raise self.error(UnsupportedError, "correlated subquery that is not a "
                                                       "simple SELECT", c)
            return inner, []
        from_ = inner.args.get("from_") or inner.args.get("from")
        sources = ([from_.this] if from_ is not None else []) + \
            [j.this for j in inner.args.get("joins") or []]
        own = {src.alias_or_name.lower() for src in sources}

        def is_outer(c: exp.Column) -> bool:
            return bool(c.table) and c.table.lower() not in own and _internal(c) in outer_names

        where = inner.args.get("where")
        pairs: list[tuple[str, exp.Column]] = []
        keep: list[exp.Expression] = []
        for term in _conjuncts(where.this) if where is not None else []:
            refs = [c for c in term.find_all(exp.Column) if is_outer(c)]
            if not refs:
                keep.append(term)
                continue
            sides = (term.this, term.expression) if isinstance(term, exp.EQ) else ()
            if len(sides) == 2 and all(isinstance(x, exp.Column) for x in sides) and \
                    is_outer(sides[0]) != is_outer(sides[1]):
                o, i = sides if is_outer(sides[0]) else sides[::-1]
                pairs.append((_internal(o), i))
                continue
            raise self.error(UnsupportedError, "correlated subquery condition other than "
                                               "inner.column = outer.column", term)
        if not pairs:
            self.reject_outer(inner, is_outer)
            return inner, []
        for key, what in (("group", "GROUP BY"), ("having", "HAVING"), ("limit", "LIMIT"),
                          ("offset", "OFFSET")):
            if inner.args.get(key) is not None:
                raise self.error(UnsupportedError, f"{what} in a correlated subquery",
                                 inner.args[key])
        if any(_has_aggregate(x) for x in inner.expressions):
            raise self.error(UnsupportedError, "aggregate in a correlated subquery", inner)
        new = inner.copy()
        new.set("where", exp.Where(this=exp.and_(*keep)) if keep else None)
        new.set("order", None)  # row order does not matter to IN / EXISTS
        corr = [exp.alias_(i.copy(), f"__corr{k}") for k, (_, i) in enumerate(pairs)]
        new.set("expressions", (list(new.expressions) if keep_select else []) + corr)
        self.reject_outer(new, is_outer)
        return new, [(o, f"__corr{k}") for k, (o, _) in enumerate(pairs)]

    def reject_outer(self, inner: exp.Expression, is_outer) -> None:
        for c in inner.find_all(exp.Column):
            if is_outer(c):
                raise self.error(UnsupportedError, f"outer column {c.sql()} in a subquery "
                                                   f"outside its WHERE's equality conditions",
                                 c)

    # --- aggregation -------------------------------------------------------------------------
    def aggregate(self, node: int, s: exp.Select, outputs, having, order_items, ctes):
        group = s.args.get("group")
        group_exprs = list(group.expressions) if group is not None else []
        for key in ("rollup", "cube", "grouping_sets"):
            if group is not None and group.args.get(key):
                raise self.error(UnsupportedError, f"GROUP BY {key.upper()}", group)
        sources = outputs + ([having.this] if having is not None else []) + \
            [o.this for o in order_items]
        for e in sources:  # scalar subqueries inside aggregate arguments join below the GROUP BY
            for a in _aggregates_in(e):
                node = self.attach_subqueries(node, a, ctes)
        in_types = self.dag.types(node)
        pre: list[tuple[str, exp.Expression]] = []
        pre_names: dict[str, str] = {}  # sql of a pre-projected expression -> column

        def pre_column(e: exp.Expression, prefix: str, clause: str) -> str:
            lowered = self.row_expr(e, node, clause)
            key = lowered.sql()
            if key not in pre_names:
                name = lowered.name if isinstance(lowered, exp.Column) else \
                    f"__{prefix}{next(self.fresh)}"
                pre_names[key] = name
                pre.append((name, lowered))
            return pre_names[key]

        key_cols = []
        base = node  # the rows being grouped: GROUP BY expressions are lowered against it
        resolved = []
        for g in group_exprs:
            if isinstance(g, exp.Literal) and not g.is_string:
                k = int(g.this)
                if not 1 <= k <= len(outputs):
                    raise self.error(SchemaError, f"GROUP BY position {k} is not in the select "
                                                  f"list", g)
                g = outputs[k - 1].unalias()
            elif isinstance(g, exp.Column) and not g.table:
                # GROUP BY an output alias (an input column of the same name wins)
                try:
                    self.row_expr(g, node, "GROUP BY", check=False)
                except SqlError:
                    alias = next((o for o in outputs if isinstance(o, exp.Alias)
                                  and o.alias.lower() == g.name.lower()), None)
                    if alias is not None:
                        g = alias.unalias()
            if _has_aggregate(g):
                raise self.error(SchemaError, "aggregate function in GROUP BY", g)
            resolved.append(g)
            key_cols.append(pre_column(g, "key", "GROUP BY"))
        group_sql = {self.row_expr(g, node, "GROUP BY").sql(): c
                     for g, c in zip(resolved, key_cols)}
        key_cols = list(dict.fromkeys(key_cols))
        aggs: list[AggCall] = []
        agg_names: dict[str, str] = {}
        for e in sources:
            for a in _aggregates_in(e):
                sig = a.sql()
                if sig in agg_names:
                    continue
                func = AGGREGATES.get(type(a))
                if func is None:
                    raise self.error(UnsupportedError, f"aggregate function {a.key.upper()}", a)
                arg = a.this
                distinct = isinstance(arg, exp.Distinct)
                if distinct:
                    if func != "count" or len(arg.expressions) != 1:
                        raise self.error(UnsupportedError, "DISTINCT inside an aggregate other than"
                                                           " COUNT(DISTINCT x)", a)
                    arg = arg.expressions[0]
                    func = "count_distinct"
                if isinstance(arg, exp.Star):
                    func, arg_col = "count_star", None
                else:
                    if _has_aggregate(arg):
                        raise self.error(SchemaError, "nested aggregate functions", a)
                    arg_col = pre_column(arg, "arg", a.key.upper())
                    t = self.type_of(self.row_expr(arg, node, "aggregate"), in_types, a.key)
                    if func in ("sum", "avg", "stddev_samp", "stddev_pop", "var_samp",
                                "var_pop") and not sqltypes.is_numeric(t):
                        raise self.error(SchemaError, f"{a.key.upper()} of {t} (needs a number)",
                                         a)
                name = f"__agg{next(self.fresh)}"
                agg_names[sig] = name
                aggs.append(AggCall(name, func, arg_col))
        types = dict(in_types)
        if pre:
            pre_fields = [Field(n, self.type_of(e, in_types, n)) for n, e in pre]
            keep = [(f.name, col(f.name)) for f in self.dag.schema(node)
                    if f.name not in {n for n, _ in pre}]
            proj = tuple(keep) + tuple(pre)
            fields = [f for f in self.dag.schema(node) if f.name not in {n for n, _ in pre}] + \
                pre_fields
            node = self.dag.add(Project(proj, _render(pre)), fields, [node])
            types = self.dag.types(node)
        out_fields = [Field(k, types[k]) for k in key_cols] + \
            [Field(a.name, _agg_type(a.func, types.get(a.arg))) for a in aggs]
        node = self.dag.add(Aggregate(tuple(key_cols), tuple(aggs)), out_fields, [node])
        for e in sources:
            node = self.attach_subqueries(node, e, ctes)
        agg_node = node
        key_set = set(key_cols)

        def rewrite(e: exp.Expression, clause: str) -> exp.Expression:
            def swap(x: exp.Expression) -> exp.Expression:
                if isinstance(x, exp.AggFunc) or type(x) in AGGREGATES:
                    return col(agg_names[x.sql()])
                if not isinstance(x, exp.Column) and x.find(exp.Column) is not None:
                    try:
                        lowered = self.row_expr(x, base, clause, check=False)
                    except SqlError:
                        return x
                    if lowered.sql() in group_sql:
                        return col(group_sql[lowered.sql()])
                if isinstance(x, exp.Column):
                    if x.table == "__subquery__":
                        return col(x.name)
                    name = _internal(x)
                    if name in group_sql.values() or name in key_set:
                        return col(name)
                    lowered = col(name).sql()
                    if lowered in group_sql:
                        return col(group_sql[lowered])
                    raise self.error(SchemaError, f"column {x.sql()} must appear in GROUP BY or "
                                                  f"be used in an aggregate function", x)
                return x
            out = e.copy().transform(swap)
            self.check_expression(out, clause)
            return out

        return node, rewrite

    # --- expressions ---------------------------------------------------------------------------
    def row_expr(self, e: exp.Expression, node: int, clause: str, check: bool = True
                 ) -> exp.Expression:
        """`e` with every column replaced by the internal column of `node` it names."""
        names = set(self.dag.names(node))

        def swap(x: exp.Expression) -> exp.Expression:
            if isinstance(x, exp.Column):
                if x.table == "__subquery__":
                    return col(x.name)
                name = _internal(x)
                if name not in names:
                    raise self.error(SchemaError, f"column {x.sql()} is not available in {clause}",
                                     x)
                return col(name)
            if isinstance(x, (exp.AggFunc,)) or type(x) in AGGREGATES:
                raise self.error(SchemaError, f"aggregate function in {clause}", x)
            return x

        out = _coerce_date_literals(e.copy().transform(swap), self.dag.types(node))
        if check:
            self.check_expression(out, clause, original=e)
            self.type_of(out, self.dag.types(node), clause, original=e)
        return out

    def check_expression(self, e: exp.Expression, clause: str,
                         original: exp.Expression | None = None) -> None:
        for x in e.walk():
            if isinstance(x, exp.Subquery):
                raise self.error(UnsupportedError, f"subquery in {clause}", original or x)
            if not isinstance(x, ALLOWED_EXPRESSIONS):
                where = _find_like(original, x) if original is not None else x
                raise self.error(UnsupportedError, f"{_construct_name(x)} in {clause}", where)

    def require_bool(self, pred: exp.Expression, original: exp.Expression, node: int,
                     clause: str) -> None:
        t = self.type_of(pred, self.dag.types(node), clause, original=original)
        if t != "bool":
            raise self.error(SchemaError, f"{clause} condition is {t}, not a boolean", original)

    def type_of(self, e: exp.Expression, types: dict[str, str], where: str,
                original: exp.Expression | None = None) -> str:
        """The SQL type of a lowered expression; raises SchemaError on a type mismatch."""
        orig = original if original is not None else e

        def bad(msg: str, x: exp.Expression) -> SqlError:
            return self.error(SchemaError, msg, _find_like(orig, x) or orig)

        def t(x: exp.Expression) -> str:
            if isinstance(x, exp.Column):
                return types.get(x.name, "int")
            if isinstance(x, exp.Paren):
                return t(x.this)
            if isinstance(x, exp.Literal):
                return sqltypes.literal_type(x)
            if isinstance(x, exp.Boolean):
                return "bool"
            if isinstance(x, exp.Null):
                return "null"
            if isinstance(x, (exp.Add, exp.Sub, exp.Mul, exp.Mod)):
                a, b = t(x.this), t(x.expression)
                if a == "date" and b == "int" and isinstance(x, (exp.Add, exp.Sub)):
                    return "date"
                for side in (a, b):
                    if not sqltypes.is_numeric(side) and side != "null":
                        raise bad(f"arithmetic on {side}: {x.sql()}", x)
                return sqltypes.combine_numeric(a if a != "null" else b, b if b != "null" else a)
            if isinstance(x, exp.Div):
                for side in (t(x.this), t(x.expression)):
                    if not sqltypes.is_numeric(side) and side != "null":
                        raise bad(f"division of {side}: {x.sql()}", x)
                return "float"
            if isinstance(x, exp.Neg):
                a = t(x.this)
                if not sqltypes.is_numeric(a):
                    raise bad(f"negation of {a}", x)
                return a
            if isinstance(x, (exp.Abs, exp.Round)):
                a = t(x.this)
                if not sqltypes.is_numeric(a):
                    raise bad(f"{x.key.upper()} of {a}", x)
                return a
            if isinstance(x, (exp.Pow, exp.Sqrt)):
                a = t(x.this)
                if not sqltypes.is_numeric(a):
                    raise bad(f"{x.key.upper()} of {a}", x)
                return "float"
            if isinstance(x, (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)):
                a, b = t(x.this), t(x.expression)
                if not _comparable(a, b):
                    raise bad(f"cannot compare {a} with {b}: {x.sql()}", x)
                return "bool"
            if isinstance(x, (exp.And, exp.Or)):
                for side in (x.this, x.expression):
                    if t(side) not in ("bool", "null"):
                        raise bad(f"{x.key.upper()} of a non-boolean: {side.sql()}", side)
                return "bool"
            if isinstance(x, exp.Not):
                if t(x.this) not in ("bool", "null"):
                    raise bad(f"NOT of a non-boolean: {x.this.sql()}", x)
                return "bool"
            if isinstance(x, exp.Is):
                t(x.this)
                return "bool"
            if isinstance(x, exp.In):
                a = t(x.this)
                for item in x.expressions:
                    if not _comparable(a, t(item)):
                        raise bad(f"IN list mixes {a} and {t(item)}", item)
                return "bool"
            if isinstance(x, exp.Between):
                a = t(x.this)
                for side in (x.args["low"], x.args["high"]):
                    if not _comparable(a, t(side)):
                        raise bad(f"BETWEEN compares {a} with {t(side)}", x)
                return "bool"
            if isinstance(x, (exp.Case, exp.If)):
                branches = ([i.args["true"] for i in x.args.get("ifs") or []]
                            if isinstance(x, exp.Case) else [x.args["true"]])
                if x.args.get("default") is not None:
                    branches.append(x.args["default"])
                if isinstance(x, exp.If) and x.args.get("false") is not None:
                    branches.append(x.args["false"])
                conds = ([i.this for i in x.args.get("ifs") or []] if isinstance(x, exp.Case)
                         else [x.this])
                for c in conds:
                    if x.this is not None and isinstance(x, exp.Case):
                        break
                    if t(c) not in ("bool", "null"):
                        raise bad(f"CASE WHEN condition is {t(c)}, not a boolean", c)
                return _unify([t(b) for b in branches], lambda m: bad(m, x))
            if isinstance(x, exp.Coalesce):
                return _unify([t(x.this)] + [t(y) for y in x.expressions], lambda m: bad(m, x))
            if isinstance(x, exp.Nullif):
                a, b = t(x.this), t(x.expression)
                if not _comparable(a, b):
                    raise bad(f"NULLIF compares {a} with {b}", x)
                return a
            if isinstance(x, exp.Cast):
                target = sqltypes.cast_type(x.to)
                if target is None:
                    raise self.error(UnsupportedError, f"CAST to {x.to.sql()}",
                                     _find_like(orig, x) or orig)
                t(x.this)
                return target
            raise self.error(UnsupportedError, f"{_construct_name(x)} in {where}",
                             _find_like(orig, x) or orig)

        return t(e)


def _coerce_date_literals(e: exp.Expression, types: dict[str, str]) -> exp.Expression:
    """'2020-01-31' compared with a date column becomes CAST('2020-01-31' AS DATE)."""
    def is_date(x: exp.Expression) -> bool:
        return (isinstance(x, exp.Column) and types.get(x.name) == "date") or \
            (isinstance(x, exp.Cast) and sqltypes.cast_type(x.to) == "date")

    def swap(x: exp.Expression) -> exp.Expression:
        if isinstance(x, exp.Literal) and x.is_string and re.fullmatch(r"\d{4}-\d{2}-\d{2}", x.this):
            p = x.parent
            sides = []
            if isinstance(p, (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)):
                sides = [p.this, p.expression]
            elif isinstance(p, (exp.Between, exp.In)):
                sides = [p.this]
            if any(is_date(s) for s in sides if s is not x):
                return exp.Cast(this=x.copy(), to=exp.DataType.build("DATE"))
        return x
    return e.transform(swap)


def _conjuncts(e: exp.Expression) -> list[exp.Expression]:
    """The terms of a condition joined by AND (parentheses around a conjunction dissolve)."""
    if isinstance(e, exp.Paren):
        inner = _conjuncts(e.this)
        return inner if isinstance(e.this, exp.And) else [e]
    if isinstance(e, exp.And):
        return _conjuncts(e.this) + _conjuncts(e.expression)
    return [e]


def _semi_term(e: exp.Expression) -> tuple[bool, exp.Expression] | None:
    """(negated, the IN / EXISTS node) when `e` is `[NOT] x IN (SELECT ...)` or
    `[NOT] EXISTS (SELECT ...)`, else None."""
    anti = False
    while isinstance(e, exp.Paren):
        e = e.this
    if isinstance(e, exp.Not):
        anti, e = True, e.this
        while isinstance(e, exp.Paren):
            e = e.this
    if isinstance(e, exp.In) and e.args.get("query") is not None:
        return anti, e
    if isinstance(e, exp.Exists):
        return anti, e
    return None


def _in_scope(c: exp.Column, query: exp.Expression) -> bool:
    """True when a table of `query` (at any depth) has the alias that `c` names."""
    return any(t.alias_or_name.lower() == c.table.lower() for t in query.find_all(exp.Table))


def _comparable(a: str, b: str) -> bool:
    if "null" in (a, b) or a == b:
        return True
    return sqltypes.is_numeric(a) and sqltypes.is_numeric(b)


def _unify(types: list[str], fail) -> str:
    real = [x for x in types if x != "null"]
    if not real:
        return "int"
    out = real[0]
    for x in real[1:]:
        if x == out:
            continue
        if sqltypes.is_numeric(x) and sqltypes.is_numeric(out):
            out = sqltypes.combine_numeric(x, out)
        else:
            raise fail(f"CASE branches mix {out} and {x}")
    return out


def _agg_type(func: str, arg_type: str | None) -> str:
    if func in ("count", "count_star", "count_distinct"):
        return "int"
    if func in ("avg", "var_samp", "var_pop", "stddev_samp", "stddev_pop"):
        return "float"
    if func == "sum" and arg_type and arg_type.startswith("decimal"):
        return f"decimal(38,{sqltypes.decimal_scale(arg_type)})"
    return arg_type or "int"


def _internal(c: exp.Column) -> str:
    return f"{c.table}.{c.name}".lower() if c.table else c.name.lower()


def _has_aggregate(e: exp.Expression) -> bool:
    return bool(_aggregates_in(e))


def _aggregates_in(e: exp.Expression) -> list[exp.Expression]:
    """Aggregate calls in `e`, not looking into subqueries."""
    found = []
    for x in e.walk(prune=lambda n: isinstance(n, exp.Subquery)):
        if isinstance(x, exp.AggFunc) and not any(isinstance(p, exp.AggFunc)
                                                  for p in _ancestors(x, e)):
            found.append(x)
    return found


def _ancestors(x: exp.Expression, stop: exp.Expression):
    p = x.parent
    while p is not None and p is not stop.parent:
        yield p
        p = p.parent


def _find_like(original: exp.Expression | None, x: exp.Expression) -> exp.Expression | None:
    """The node of the user's expression that corresponds to a node of a lowered copy."""
    if original is None:
        return None
    text = x.sql()
    for n in original.walk():
        if type(n) is type(x) and n.meta and n.sql() == text:
            return n
    for n in original.walk():
        if type(n) is type(x) and n.meta:
            return n
    for n in original.walk():
        if type(n) is type(x):
            return n
    return original


def _construct_name(x: exp.Expression) -> str:
    if isinstance(x, exp.Anonymous):
        return f"function {x.name.upper()}"
    if isinstance(x, exp.Func):
        return f"function {x.sql_name()}"
    return type(x).__name__.upper()


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if n in seen:
            seen[n] += 1
            n = f"{n}_{seen[n]}"
        else:
            seen[n] = 0
        out.append(n)
    return out


def _render(exprs) -> str:
    return ", ".join(f"{e.sql()} AS {n}" for n, e in exprs)
