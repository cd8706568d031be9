"""Qualify the names of a parsed query against the catalog.

Table names are checked against the catalog (`party.table` names one party's part and is
rewritten to a private table name that keeps `table` as its alias); sqlglot's `qualify` then
gives every column its table, and its complaints become `SchemaError`s with a position.
"""

from __future__ import annotations

import re

from sqlglot import exp
from sqlglot.errors import OptimizeError, SqlglotError
from sqlglot.optimizer.qualify import qualify

from ..catalog import Catalog
from ..errors import SchemaError, UnsupportedError
from ..ir.portable import fold_constants
from .parse import node_position

# joins party and table in the private name of one party's part (`yellow.trips`)
PARTY_TABLE_SEP = "__at__"
# our column types -> the type names sqlglot's qualify understands
GLOT_TYPES = {"int": "BIGINT", "float": "DOUBLE", "text": "VARCHAR", "date": "DATE",
              "bool": "BOOLEAN"}


def party_table_name(party: str, table: str) -> str:
    """The private table name of `party`'s part of `table`."""
    return f"{party}{PARTY_TABLE_SEP}{table}"


def split_party_table(name: str) -> tuple[str, str] | None:
    """(party, table) of a private part name, or None for a logical table's name."""
    if PARTY_TABLE_SEP not in name:
        return None
    party, table = name.split(PARTY_TABLE_SEP)
    return party, table


def resolve_names(tree: exp.Expression, catalog: Catalog, sql: str,
                  dialect: str | None) -> exp.Expression:
    """The query with its tables checked and every column qualified by its table."""
    tree = resolve_tables(tree, catalog, sql)
    schema = qualify_schema(catalog)
    check_positions(tree, sql)
    try:
        tree = qualify(tree, schema=schema, dialect=dialect, validate_qualify_columns=True,
                       quote_identifiers=False, identify=False)
        return fold_constants(tree.transform(filtered_aggregate))
    except OptimizeError as e:
        _check_ambiguous(tree, schema, sql, str(e))
        raise _schema_error(str(e), sql) from None
    except SqlglotError as e:
        raise SchemaError(str(e).splitlines()[0], sql=sql) from None


def filtered_aggregate(x: exp.Expression) -> exp.Expression:
    """`AGG(x) FILTER (WHERE c)` -> `AGG(CASE WHEN c THEN x END)` (COUNT(*): of THEN 1): the
    rows failing c give NULL, which every aggregate skips."""
    if not (isinstance(x, exp.Filter) and isinstance(x.this, exp.AggFunc)):
        return x
    agg, cond = x.this.copy(), x.expression.this.copy()
    distinct = isinstance(agg.this, exp.Distinct)
    target = (agg.this.expressions[0] if len(agg.this.expressions) == 1 else None) \
        if distinct else agg.this
    if target is None:
        return x
    value = exp.Literal.number(1) if isinstance(target, exp.Star) else target.copy()
    case = exp.Case(ifs=[exp.If(this=cond, true=value)])
    if distinct:
        agg.this.set("expressions", [case])
    else:
        agg.set("this", case)
    agg.meta.update(x.meta)
    return agg


def resolve_tables(tree: exp.Expression, catalog: Catalog, sql: str) -> exp.Expression:
    """Check table names; rewrite `party.table` to a private name keeping the alias `table`."""
    cte_names = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    tables = {t.lower(): t for t in catalog.tables}
    for table in list(tree.find_all(exp.Table)):
        name, db = table.name, table.text("db")
        if table.args.get("sample") is not None:
            raise UnsupportedError("TABLESAMPLE", **node_position(table, sql))
        if table.text("catalog"):
            raise UnsupportedError(f"three-part table name {table.sql()!r}",
                                   **node_position(table, sql))
        if not db and name.lower() in cte_names:
            continue
        if name.lower() not in tables:
            known = ", ".join(sorted(catalog.tables))
            raise SchemaError(f"unknown table {table.sql()!r} (catalog tables: {known})",
                              **node_position(table, sql))
        if db:
            _replace_party_table(table, tables[name.lower()], catalog, sql)
    return tree


def _replace_party_table(table: exp.Table, real: str, catalog: Catalog, sql: str) -> None:
    """`party.table [alias]` -> the part's private name, aliased `alias` (else `table`)."""
    db = table.text("db")
    parties = {p.lower(): p for p in catalog.parties}
    if db.lower() not in parties:
        raise SchemaError(f"unknown party {db!r} in {table.sql()!r}",
                          **node_position(table, sql))
    party = parties[db.lower()]
    if party not in catalog.tables[real].parts:
        raise SchemaError(f"party {party!r} holds no part of table {real!r}",
                          **node_position(table, sql))
    alias = table.alias or table.name
    new = exp.Table(this=exp.to_identifier(party_table_name(party, real)),
                    alias=exp.TableAlias(this=exp.to_identifier(alias)))
    new.meta.update(table.this.meta)
    table.replace(new)


def qualify_schema(catalog: Catalog) -> dict[str, dict[str, str]]:
    """{table: {column: sqlglot type}} for every logical table and every party's part."""
    schema: dict[str, dict[str, str]] = {}
    for t in catalog.tables.values():
        cols = {c.name: GLOT_TYPES.get(c.sql_type, c.sql_type.upper())
                for c in t.columns.values()}
        schema[t.name] = cols
        for party in t.parts:
            schema[party_table_name(party, t.name)] = cols
    return schema


def check_positions(tree: exp.Expression, sql: str) -> None:
    """ORDER BY 5 / GROUP BY 5 beyond the select list: an error at the number (sqlglot's
    own message has no position)."""
    for select in tree.find_all(exp.Select):
        width = len(select.expressions)
        order = [o.this for o in (select.args.get("order") or exp.Order()).expressions]
        group = list((select.args.get("group") or exp.Group()).expressions)
        for clause, items in (("ORDER BY", order), ("GROUP BY", group)):
            for item in items:
                if isinstance(item, exp.Literal) and item.is_int and \
                        not 1 <= int(item.this) <= width:
                    raise SchemaError(f"{clause} position {item.this} is not in the select list "
                                      f"(it has {width} column{'s' if width != 1 else ''})",
                                      **node_position(item, sql))


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
                              f"{' and '.join(having)}; qualify it "
                              f"(e.g. {having[0]}.{column.name})", **node_position(column, sql))


def _table_columns(schema: dict, table: str) -> list[str]:
    for name, columns in schema.items():
        if name.lower() == table.lower():
            return list(columns)
    return []


def _schema_error(message: str, sql: str) -> SchemaError:
    """sqlglot's "... Line: L, Col: C" message as a SchemaError at the start of the name."""
    m = re.search(r"^(.*?)\.? Line: (\d+), Col: (\d+)", message, re.S)
    if not m:
        return SchemaError(message.splitlines()[0], sql=sql)
    problem, line, end = m.group(1), int(m.group(2)), int(m.group(3))
    name = re.search(r"'([^']+)'", problem)
    start = end - len(name.group(1)) + 1 if name else end
    return SchemaError(problem, sql=sql, line=line, col=max(start, 1))
