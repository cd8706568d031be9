"""Load and validate catalog.toml: parties, logical tables as unions of per-party parts, trust.

    >>> cat = Catalog.from_toml_text('''
    ... [parties.a]
    ... [parties.b]
    ... [tables.t]
    ... columns = { k = "int", v = "decimal(10,2)" }
    ... parts = { a = "a.csv", b = "b.csv" }
    ... ''', path="inline.toml")
    >>> cat.tables["t"].columns["v"].sql_type
    'decimal(10,2)'

Optional per table: `primary_key = ["id"]` and `unique = [["a", "b"], ...]` declare keys
unique over the UNION of ALL parts (each owner's local job checks its own part; uniqueness
across parts is the declarer's promise: if broken, PK-FK joins give wrong sums, never a
leak); `pad_rows = N` is a public upper bound on the rows of each part, to which shares are
padded so their real counts stay hidden (compiler/analyses/padding.py). The reference of
every section and key is docs/catalog.md.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from .errors import CatalogError
from .sqltypes import normalize_type

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PUBLIC = "*"
DEFAULT_HOST = "localhost"
PART_SUFFIXES = (".csv", ".parquet")  # the data file formats a part may have


@dataclass(frozen=True)
class Party:
    """A party: a data owner, a helper compute party, or a result recipient."""

    name: str
    host: str = DEFAULT_HOST
    port: int | None = None
    # the local engine that runs this party's jobs, by name (None: the default engine), and
    # that engine's own settings from the party's section; their meaning belongs to the
    # engine's backend, which checks them (sqlmpc.backends.check_catalog)
    engine: str | None = None
    engine_options: tuple[tuple[str, object], ...] = ()
    # a party agent's address ("host:port"; None: no agent declared) and the analysts that
    # party's agent serves (empty: it serves nobody); docs/deployment.md
    agent: str | None = None
    analysts: tuple[str, ...] = ()

    def option(self, key: str, default: object = None) -> object:
        return dict(self.engine_options).get(key, default)


@dataclass(frozen=True)
class CatalogColumn:
    """A column of a logical table, with the parties allowed to see it in the clear."""

    name: str
    sql_type: str
    trust: frozenset[str] = frozenset()  # besides the holder; contains PUBLIC for everyone


@dataclass(frozen=True)
class Table:
    """A logical table: the UNION ALL of its parts, one part per holding party."""

    name: str
    columns: dict[str, CatalogColumn]
    parts: dict[str, Path]  # party -> data file (absolute)
    domains: dict[str, tuple] = field(default_factory=dict)  # column -> declared public values
    # Keys declared unique over the UNION of ALL parts (primary_key and unique): the declarer's
    # promise across parties; each owner's local job checks its own part for duplicates.
    unique: tuple[tuple[str, ...], ...] = ()
    # Public upper bound on the rows of each part: shares padded to it hide the real counts.
    pad_rows: int | None = None
    # Co-location: (other table, ((this column, other column), ...)): every key value's rows
    # of both tables are held by one party, so the two join part by part (declarer's promise)
    colocated: tuple[str, tuple[tuple[str, str], ...]] | None = None
    # column -> (lo, hi): a declared public range every value lies in (each owner's local job
    # checks its part); compiler/analyses/bounds.py proves arithmetic fits from it
    ranges: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)


@dataclass(frozen=True)
class Deployment:
    """The [deployment] section of one member's copy of the catalog: where its own identity
    folder is (absolute; None: none declared) and the limits its agent enforces (names from
    DEPLOYMENT_LIMITS, values checked positive numbers; the runtime fills in the defaults)."""

    identity: Path | None = None
    limits: tuple[tuple[str, float], ...] = ()

    def limit(self, key: str, default: float) -> float:
        return dict(self.limits).get(key, default)


#: what an owner's policy lets a query do with one of its columns, from most to least open
POLICY_LEVELS = ("public", "aggregate", "join_key", "none")
#: what an owner's policy lets the compute parties learn of its row counts (compiler/analyses/policy.py)
POLICY_SIZES = ("shown", "rounded", "hidden")


@dataclass(frozen=True)
class Policy:
    """An owner's [policy.OWNER] section: who may receive anything computed from its rows,
    the smallest group of its rows an aggregate may reveal (None: no minimum), and what each
    of its columns may be used for ({(table, column): one of POLICY_LEVELS}); a column it
    does not list is "none" (compiler/analyses/policy.py checks queries against it)."""

    owner: str
    recipients: tuple[str, ...]
    min_group: int | None = None
    columns: tuple[tuple[tuple[str, str], str], ...] = ()
    sizes: str = "shown"  # one of POLICY_SIZES

    def level(self, table: str, column: str) -> str:
        return dict(self.columns).get((table, column), "none")


@dataclass
class Catalog:
    """A validated catalog; every path in it is absolute."""

    path: Path
    parties: dict[str, Party]
    tables: dict[str, Table]
    recipients: tuple[str, ...]
    deployment: Deployment = field(default_factory=Deployment)
    policies: dict[str, Policy] = field(default_factory=dict)  # owner -> its [policy.OWNER]

    @classmethod
    def load(cls, path: str | Path, *,
             engine_options: Mapping[str, Collection[str]] | None = None) -> "Catalog":
        """Read and check a catalog. ``engine_options`` ({engine name: the keys a party's
        section may set for it}) makes a party's unknown keys errors and names each party's
        engine from its keys when it names none; without it, keys other than host, port and
        engine are kept as engine options unchecked."""
        p = Path(path)
        try:
            text = p.read_text()
        except FileNotFoundError:
            raise CatalogError(str(path), None, "file not found") from None
        except (OSError, UnicodeDecodeError) as e:
            raise CatalogError(str(path), None, f"cannot read: {e}") from None
        return cls.from_toml_text(text, path=p, engine_options=engine_options)

    @classmethod
    def from_toml_text(cls, text: str, *, path: str | Path,
                       engine_options: Mapping[str, Collection[str]] | None = None
                       ) -> "Catalog":
        path = Path(path)
        where = str(path)
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise CatalogError(where, None, f"malformed TOML: {e}") from None
        return _build(doc, path, engine_options)

    # --- questions the compiler asks -------------------------------------------------------
    def table(self, name: str) -> Table:
        return self.tables[name]

    def column_trust(self, table: str, column: str, holder: str) -> frozenset[str]:
        """Parties that may see `column` of `holder`'s part of `table` in the clear. A column
        declared public ("*") has PUBLIC in its set too: only such a column may be shown to a
        helper compute party that the catalog does not list. When the holder has a policy, a
        column it does not declare "public" there is shown to nobody, whatever `trust` says."""
        policy = self.policies.get(holder)
        if policy is not None and policy.level(table, column) != "public":
            return frozenset({holder})  # an owner's policy bounds its trust entries
        declared = self.tables[table].columns[column].trust
        if PUBLIC in declared:
            return frozenset(self.parties) | {PUBLIC}
        return frozenset(declared) | {holder}

    def colocation(self, a: str, b: str) -> tuple[tuple[str, str], ...] | None:
        """The declared co-location key pairs (column of a, column of b) of tables a and b,
        declared on either of them, or None."""
        for x, y, flip in ((a, b, False), (b, a, True)):
            spec = self.tables[x].colocated if x in self.tables else None
            if spec is not None and spec[0] == y:
                return tuple((q, p) if flip else (p, q) for p, q in spec[1])
        return None

    @property
    def data_owners(self) -> tuple[str, ...]:
        owners = {party for t in self.tables.values() for party in t.parts}
        return tuple(p for p in self.parties if p in owners)


def _check_keys(where: str, path: str, doc: dict, allowed: set[str]) -> None:
    for key in doc:
        if key not in allowed:
            raise CatalogError(path, where, f"unknown key {key!r} (allowed: "
                                            f"{', '.join(sorted(allowed))})")


def _domain_values(where: str, loc: str, values: list, sql_type: str) -> tuple:
    """A column's declared public values, each checked against the column type (dates as
    ISO text); a value listed twice is an error (it would make two groups of one)."""
    out: list = []
    for v in values:
        kind = sql_type.split("(")[0]
        ok = {"int": isinstance(v, int) and not isinstance(v, bool),
              "bool": isinstance(v, bool),
              "text": isinstance(v, str),
              "decimal": isinstance(v, (int, float)) and not isinstance(v, bool),
              "float": isinstance(v, (int, float)) and not isinstance(v, bool)}.get(kind)
        if kind == "date":
            ok = type(v) is date or isinstance(v, str)  # not a TOML date-time
            if isinstance(v, str):
                try:
                    v = date.fromisoformat(v)
                except ValueError:
                    ok = False
            if ok:
                v = v.isoformat()
        if not ok:
            raise CatalogError(where, loc, f"value {v!r} is not a {sql_type}")
        if v in out:
            raise CatalogError(where, loc, f"value {v!r} is listed twice")
        out.append(v)
    return tuple(out)


def _unique_keys(where: str, loc: str, spec: dict, typed: dict[str, str]
                 ) -> tuple[tuple[str, ...], ...]:
    """The table's declared keys: `primary_key = ["id"]` and `unique = [["a", "b"], ...]`."""
    raw: list[tuple[str, object]] = []
    if "primary_key" in spec:
        raw.append((f"{loc} primary_key", spec["primary_key"]))
    if "unique" in spec:
        keys = spec["unique"]
        if not isinstance(keys, list) or not keys:
            raise CatalogError(where, f"{loc} unique", "must be a non-empty list of column "
                                                       "lists, e.g. unique = [[\"a\", \"b\"]]")
        raw += [(f"{loc} unique", k) for k in keys]
    out: list[tuple[str, ...]] = []
    for place, key in raw:
        if not isinstance(key, list) or not key or not all(isinstance(c, str) for c in key):
            raise CatalogError(where, place, f"a key must be a non-empty list of column names, "
                                             f"got {key!r}")
        for c in key:
            if c not in typed:
                raise CatalogError(where, place, f"unknown column {c!r}")
        if len(set(key)) != len(key):
            raise CatalogError(where, place, f"a column is listed twice in {key!r}")
        if tuple(key) not in out:
            out.append(tuple(key))
    return tuple(out)


PARTY_KEYS = ("host", "port", "engine", "agent", "analysts")


def _party_engine(where: str, loc: str, spec: dict,
                  engine_options: Mapping[str, Collection[str]] | None
                  ) -> tuple[str | None, tuple[tuple[str, object], ...]]:
    """A party section's engine name and that engine's settings (the keys besides PARTY_KEYS).

    With the engines' option keys known, an unknown engine or key is an error, and a party
    naming no engine runs on the one engine its settings belong to (else the default)."""
    engine = spec.get("engine")
    if engine is not None and not (isinstance(engine, str) and NAME_RE.match(engine)):
        raise CatalogError(where, loc, f"engine must be an engine's name, got {engine!r}")
    options = tuple((k, v) for k, v in spec.items() if k not in PARTY_KEYS)
    if engine_options is None:
        return engine, options
    if engine is not None and engine not in engine_options:
        raise CatalogError(where, loc, f"unknown engine {engine!r} (engines: "
                                       f"{', '.join(engine_options)})")
    for key, _ in options:
        owners = [e for e, keys in engine_options.items() if key in keys]
        if not owners or (engine is not None and engine not in owners):
            allowed = [*PARTY_KEYS, *(k for e, keys in engine_options.items()
                                       if engine in (None, e) for k in keys)]
            raise CatalogError(where, loc, f"unknown key {key!r} (allowed: "
                                           f"{', '.join(dict.fromkeys(allowed))})")
        if engine is None:
            engine = owners[0]
    return engine, options


def _build(doc: dict, path: Path,
           engine_options: Mapping[str, Collection[str]] | None = None) -> Catalog:
    """A Catalog from a parsed TOML document; CatalogError names the first problem."""
    where = str(path)
    _check_keys("top level", where, doc, {"parties", "tables", "result", "deployment", "policy"})
    parties = _parties(where, doc.get("parties"), engine_options)
    raw_tables = doc.get("tables")
    if not isinstance(raw_tables, dict) or not raw_tables:
        raise CatalogError(where, "[tables]", "no tables declared (add a [tables.NAME] section)")
    tables = {name: _table(where, name, spec, parties, path.parent)
              for name, spec in raw_tables.items()}
    for name, spec in raw_tables.items():
        if isinstance(spec, dict) and "colocated" in spec:
            tables[name] = replace(tables[name], colocated=_colocated(
                where, f"[tables.{name}]", spec["colocated"], tables[name], tables))
    recipients = _recipients(where, doc.get("result", {}), parties)
    deployment = _deployment(where, doc.get("deployment", {}), path.parent)
    policies = _policies(where, doc.get("policy", {}), parties, tables)
    return Catalog(path.resolve(), parties, tables, recipients, deployment, policies)


# --- [parties] ---------------------------------------------------------------------------------
def _parties(where: str, raw: Any, engine_options: Mapping[str, Collection[str]] | None
             ) -> dict[str, Party]:
    if not isinstance(raw, dict) or not raw:
        raise CatalogError(where, "[parties]", "no parties declared (add a [parties.NAME] section)")
    parties = {name: _party(where, name, spec, engine_options) for name, spec in raw.items()}
    ports = [(p.host, p.port) for p in parties.values() if p.port is not None]
    if len(ports) != len(set(ports)):
        raise CatalogError(where, "[parties]", "two parties share the same host and port")
    return parties


def _party(where: str, name: str, spec: Any,
           engine_options: Mapping[str, Collection[str]] | None) -> Party:
    """One [parties.NAME] section: host, port, engine and the engine's settings."""
    loc = f"[parties.{name}]"
    if not NAME_RE.match(name):
        raise CatalogError(where, loc, "a party name must be a plain identifier")
    if not isinstance(spec, dict):
        raise CatalogError(where, loc, "must be a table (a [parties.NAME] section)")
    host = spec.get("host", DEFAULT_HOST)
    if not isinstance(host, str) or not host:
        raise CatalogError(where, loc, f"host must be a non-empty string, got {host!r}")
    port = spec.get("port")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool)
                             or not 1 <= port <= 65535):
        raise CatalogError(where, loc, f"port must be an integer in 1..65535, got {port!r}")
    engine, options = _party_engine(where, loc, spec, engine_options)
    return Party(name, host, port, engine, options, _agent_address(where, loc, spec.get("agent")),
                 _analysts(where, loc, spec.get("analysts", [])))


def _agent_address(where: str, loc: str, agent: Any) -> str | None:
    """`agent = "host:port"`: where the party's agent listens."""
    if agent is None:
        return None
    host, sep, port = agent.rpartition(":") if isinstance(agent, str) else ("", "", "")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise CatalogError(where, f"{loc} agent", f"must be \"HOST:PORT\" (its agent's "
                                                  f"address), got {agent!r}")
    return agent


def _analysts(where: str, loc: str, names: Any) -> tuple[str, ...]:
    """`analysts = ["alice", ...]`: the analysts the party's agent serves."""
    if not isinstance(names, list) or not all(isinstance(n, str) and NAME_RE.match(n)
                                              for n in names):
        raise CatalogError(where, f"{loc} analysts", f"must be a list of analyst names (plain "
                                                     f"identifiers), got {names!r}")
    if len(set(names)) != len(names):
        raise CatalogError(where, f"{loc} analysts", "an analyst is listed twice")
    return tuple(names)


# --- [tables] ----------------------------------------------------------------------------------
TABLE_KEYS = {"columns", "parts", "trust", "domains", "primary_key", "unique", "pad_rows",
              "colocated", "ranges"}
#: column types a declared range may bound
RANGE_TYPES = ("int", "decimal", "float")


def _table(where: str, tname: str, spec: Any, parties: dict[str, Party], base: Path) -> Table:
    """One [tables.NAME] section; part paths are resolved against `base` (the catalog's
    folder)."""
    loc = f"[tables.{tname}]"
    if not NAME_RE.match(tname):
        raise CatalogError(where, loc, "a table name must be a plain identifier")
    if tname.lower() in (p.lower() for p in parties):
        raise CatalogError(where, loc, "a table may not have the same name as a party")
    if not isinstance(spec, dict):
        raise CatalogError(where, loc, "must be a table section")
    _check_keys(loc, where, spec, TABLE_KEYS)
    typed = _column_types(where, loc, spec.get("columns"))
    trusts = _trust(where, tname, spec.get("trust", {}), typed, parties)
    domains = _domains(where, tname, spec.get("domains", {}), typed)
    parts = _parts(where, loc, spec.get("parts"), parties, base)
    columns = {c: CatalogColumn(c, t, trusts.get(c, frozenset())) for c, t in typed.items()}
    unique = _unique_keys(where, loc, spec, typed)
    pad_rows = _pad_rows(where, loc, spec.get("pad_rows"))
    ranges = _ranges(where, tname, spec.get("ranges", {}), typed)
    return Table(tname, columns, parts, domains, unique, pad_rows, ranges=ranges)


def _colocated(where: str, loc: str, spec: Any, table: Table, tables: dict[str, Table]
               ) -> tuple[str, tuple[tuple[str, str], ...]]:
    """`colocated = { with = "orders", on = { l_orderkey = "o_orderkey" } }`: the table's rows
    and the other table's rows with equal keys are held by the same party."""
    loc = f"{loc} colocated"
    if not isinstance(spec, dict) or set(spec) != {"with", "on"} or \
            not isinstance(spec["on"], dict) or not spec["on"]:
        raise CatalogError(where, loc, 'must be { with = "TABLE", on = { column = '
                                       '"other_column", ... } }')
    other = spec["with"]
    if other not in tables or other == table.name:
        raise CatalogError(where, loc, f"with = {other!r} is not another declared table")
    if set(tables[other].parts) != set(table.parts):
        raise CatalogError(where, loc, f"{table.name} and {other} must have parts at the same "
                                       f"parties to be co-located")
    pairs = []
    for mine, theirs in spec["on"].items():
        if mine not in table.columns or not isinstance(theirs, str) or \
                theirs not in tables[other].columns:
            raise CatalogError(where, loc, f"on: {mine} = {theirs!r} must pair a column of "
                                           f"{table.name} with a column of {other}")
        pairs.append((mine, theirs))
    return other, tuple(pairs)


def _column_types(where: str, loc: str, cols: Any) -> dict[str, str]:
    """{column: canonical type} of a table's `columns`; names are case-insensitive."""
    if not isinstance(cols, dict) or not cols:
        raise CatalogError(where, f"{loc} columns",
                           "missing or empty; write columns = { name = \"type\", ... }")
    seen: dict[str, str] = {}
    typed: dict[str, str] = {}
    for cname, ctype in cols.items():
        place = f"{loc} column {cname!r}"
        if not NAME_RE.match(cname):
            raise CatalogError(where, place, "a column name must be a plain identifier")
        if cname.lower() in seen:
            raise CatalogError(where, place, f"duplicate column (same name as "
                                             f"{seen[cname.lower()]!r}; names are "
                                             f"case-insensitive)")
        seen[cname.lower()] = cname
        norm = normalize_type(ctype)
        if norm is None:
            raise CatalogError(where, place, f"unknown type {ctype!r} (use int, decimal(p,s), "
                                             f"float, text, date or bool)")
        typed[cname] = norm
    return typed


def _trust(where: str, tname: str, spec: Any, typed: dict[str, str],
           parties: dict[str, Party]) -> dict[str, frozenset[str]]:
    """[tables.NAME.trust]: column = "*" or a list of the parties that may see it."""
    if not isinstance(spec, dict):
        raise CatalogError(where, f"[tables.{tname}].trust", "must be a table of column = parties")
    trusts: dict[str, frozenset[str]] = {}
    for cname, who in spec.items():
        if cname not in typed:
            raise CatalogError(where, f"[tables.{tname}.trust]", f"unknown column {cname!r}")
        place = f"[tables.{tname}.trust] {cname}"
        names = [who] if isinstance(who, str) else who
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise CatalogError(where, place, "must be \"*\" or a list of party names")
        for n in names:
            if n != PUBLIC and n not in parties:
                raise CatalogError(where, place, f"unknown party {n!r}")
        trusts[cname] = frozenset(names)
    return trusts


def _domains(where: str, tname: str, spec: Any, typed: dict[str, str]) -> dict[str, tuple]:
    """[tables.NAME.domains]: column = [every value it may take] (public)."""
    if not isinstance(spec, dict):
        raise CatalogError(where, f"[tables.{tname}].domains",
                           "must be a table of column = [values]")
    domains: dict[str, tuple] = {}
    for cname, values in spec.items():
        if cname not in typed:
            raise CatalogError(where, f"[tables.{tname}.domains]", f"unknown column {cname!r}")
        place = f"[tables.{tname}.domains] {cname}"
        if not isinstance(values, list) or not values:
            raise CatalogError(where, place, "must be a non-empty list of values")
        domains[cname] = _domain_values(where, place, values, typed[cname])
    return domains


def _ranges(where: str, tname: str, spec: Any, typed: dict[str, str]
            ) -> dict[str, tuple[Decimal, Decimal]]:
    """[tables.NAME.ranges]: column = [lo, hi] (public; lo <= every value <= hi)."""
    if not isinstance(spec, dict):
        raise CatalogError(where, f"[tables.{tname}].ranges", "must be a table of column = [lo, hi]")
    ranges: dict[str, tuple[Decimal, Decimal]] = {}
    for cname, bounds in spec.items():
        place = f"[tables.{tname}.ranges] {cname}"
        if cname not in typed:
            raise CatalogError(where, f"[tables.{tname}.ranges]", f"unknown column {cname!r}")
        kind = typed[cname].split("(")[0]
        if kind not in RANGE_TYPES:
            raise CatalogError(where, place, f"a range bounds a number column (int, decimal, "
                                             f"float), not a {typed[cname]}")
        if not (isinstance(bounds, list) and len(bounds) == 2 and all(
                isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)):
            raise CatalogError(where, place, f"must be [lo, hi], two numbers, got {bounds!r}")
        if kind == "int" and not all(isinstance(b, int) for b in bounds):
            raise CatalogError(where, place, f"an int column's range takes integers, got {bounds!r}")
        lo, hi = (Decimal(str(b)) for b in bounds)
        if not lo.is_finite() or not hi.is_finite() or lo > hi:
            raise CatalogError(where, place, f"must be [lo, hi] with lo <= hi, got {bounds!r}")
        ranges[cname] = (lo, hi)
    return ranges


def _parts(where: str, loc: str, spec: Any, parties: dict[str, Party], base: Path
           ) -> dict[str, Path]:
    """{party: absolute data file} of a table's `parts` (.csv or .parquet)."""
    if not isinstance(spec, dict) or not spec:
        raise CatalogError(where, f"{loc} parts",
                           "missing or empty; write parts = { party = \"file.csv\" }")
    parts: dict[str, Path] = {}
    for party, file in spec.items():
        if party not in parties:
            raise CatalogError(where, f"{loc} parts", f"part for undeclared party {party!r} "
                                                      f"(declared: {', '.join(parties)})")
        if not isinstance(file, str) or not file:
            raise CatalogError(where, f"{loc} parts.{party}", "must be a file path string")
        fp = Path(file)
        if fp.suffix.lower() not in PART_SUFFIXES:
            raise CatalogError(where, f"{loc} parts.{party}",
                               f"unsupported file type {fp.suffix or '(none)'!r} "
                               f"(use .csv or .parquet)")
        parts[party] = fp if fp.is_absolute() else (base / fp).resolve()
    return parts


def _pad_rows(where: str, loc: str, pad_rows: Any) -> int | None:
    if pad_rows is not None and (not isinstance(pad_rows, int) or isinstance(pad_rows, bool)
                                 or pad_rows < 1):
        raise CatalogError(where, f"{loc} pad_rows",
                           f"must be a positive integer (a public upper bound on the rows of "
                           f"each part), got {pad_rows!r}")
    return pad_rows


# --- [result] ----------------------------------------------------------------------------------
def _recipients(where: str, result: Any, parties: dict[str, Party]) -> tuple[str, ...]:
    """[result] recipients (default: every party, in declaration order)."""
    if not isinstance(result, dict):
        raise CatalogError(where, "[result]", "must be a table section")
    _check_keys("[result]", where, result, {"recipients"})
    recipients = result.get("recipients", list(parties))
    if not isinstance(recipients, list) or not recipients or \
            not all(isinstance(r, str) for r in recipients):
        raise CatalogError(where, "[result] recipients", "must be a non-empty list of party names")
    for r in recipients:
        if r not in parties:
            raise CatalogError(where, "[result] recipients", f"unknown party {r!r}")
    if len(set(recipients)) != len(recipients):
        raise CatalogError(where, "[result] recipients", "a party is listed twice")
    return tuple(recipients)


# --- [deployment] ------------------------------------------------------------------------------
#: the limits a [deployment] section may set (what each means: docs/deployment.md)
DEPLOYMENT_LIMITS = ("max_connections", "request_timeout", "idle_timeout", "max_query_seconds",
                     "max_join_bound", "connect_timeout")


def _deployment(where: str, spec: Any, base: Path) -> Deployment:
    """[deployment]: `identity` (a folder, relative to the catalog) and limits."""
    if not isinstance(spec, dict):
        raise CatalogError(where, "[deployment]", "must be a table section")
    _check_keys("[deployment]", where, spec, {"identity", *DEPLOYMENT_LIMITS})
    identity = spec.get("identity")
    if identity is not None:
        if not isinstance(identity, str) or not identity:
            raise CatalogError(where, "[deployment] identity", "must be a folder path string")
        identity = Path(identity) if Path(identity).is_absolute() \
            else (base / identity).resolve()
    limits = []
    for key in DEPLOYMENT_LIMITS:
        if key in spec:
            value = spec[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise CatalogError(where, f"[deployment] {key}",
                                   f"must be a positive number, got {value!r}")
            limits.append((key, value))
    return Deployment(identity, tuple(limits))


# --- [policy.OWNER] ----------------------------------------------------------------------------
def _policies(where: str, spec: Any, parties: dict[str, Party], tables: dict[str, Table]
              ) -> dict[str, Policy]:
    """Every [policy.OWNER] section (none: no owner has set a policy)."""
    if not isinstance(spec, dict):
        raise CatalogError(where, "[policy]", "must hold [policy.OWNER] sections")
    return {owner: _policy(where, owner, rules, parties, tables) for owner, rules in spec.items()}


def _policy(where: str, owner: str, spec: Any, parties: dict[str, Party],
            tables: dict[str, Table]) -> Policy:
    """One [policy.OWNER] section: recipients, min_group and [policy.OWNER.columns]."""
    loc = f"[policy.{owner}]"
    if owner not in parties:
        raise CatalogError(where, loc, f"unknown party {owner!r}")
    held = [t.name for t in tables.values() if owner in t.parts]
    if not held:
        raise CatalogError(where, loc, f"{owner} holds no part of any table, so it has no data "
                                       f"to set a policy for")
    if not isinstance(spec, dict):
        raise CatalogError(where, loc, "must be a table section")
    _check_keys(loc, where, spec, {"recipients", "min_group", "columns", "sizes"})
    recipients = spec.get("recipients")
    if not isinstance(recipients, list) or not recipients or \
            not all(isinstance(r, str) for r in recipients):
        raise CatalogError(where, f"{loc} recipients", f"must be a non-empty list of the parties "
                                                       f"that may receive results computed from "
                                                       f"{owner}'s rows")
    for r in recipients:
        if r not in parties:
            raise CatalogError(where, f"{loc} recipients", f"unknown party {r!r}")
    if len(set(recipients)) != len(recipients):
        raise CatalogError(where, f"{loc} recipients", "a party is listed twice")
    min_group = spec.get("min_group")
    if min_group is not None and (not isinstance(min_group, int) or isinstance(min_group, bool)
                                  or min_group < 1):
        raise CatalogError(where, f"{loc} min_group", f"must be an integer >= 1 (the fewest of "
                                                      f"{owner}'s rows a revealed group may "
                                                      f"aggregate), got {min_group!r}")
    sizes = spec.get("sizes", "shown")
    if sizes not in POLICY_SIZES:
        raise CatalogError(where, f"{loc} sizes", f"must be one of "
                                                  f"{', '.join(map(repr, POLICY_SIZES))} (what the "
                                                  f"compute parties may learn of {owner}'s row "
                                                  f"counts), got {sizes!r}")
    columns = _policy_columns(where, owner, spec.get("columns", {}), tables)
    return Policy(owner, tuple(recipients), min_group, columns, sizes)


def _policy_columns(where: str, owner: str, spec: Any, tables: dict[str, Table]
                    ) -> tuple[tuple[tuple[str, str], str], ...]:
    """[policy.OWNER.columns]: "table.column" = one of POLICY_LEVELS, for the owner's tables."""
    loc = f"[policy.{owner}.columns]"
    if not isinstance(spec, dict):
        raise CatalogError(where, loc, 'must be a table of "table.column" = "public" | '
                                       '"aggregate" | "join_key" | "none"')
    # an unquoted key (accounts.amount = ...) is a TOML table {accounts: {amount: ...}}
    flat: list[tuple[str, Any]] = []
    for key, value in spec.items():
        if isinstance(value, dict):
            flat += [(f"{key}.{c}", v) for c, v in value.items()]
        else:
            flat.append((key, value))
    out: list[tuple[tuple[str, str], str]] = []
    for key, level in flat:
        table, dot, column = key.partition(".")
        if not dot or not table or not column:
            raise CatalogError(where, loc, f"{key!r} must name a column as \"table.column\"")
        if table not in tables:
            raise CatalogError(where, f"{loc} {key}", f"unknown table {table!r}")
        if column not in tables[table].columns:
            raise CatalogError(where, f"{loc} {key}", f"unknown column {column!r} of {table}")
        if owner not in tables[table].parts:
            raise CatalogError(where, f"{loc} {key}", f"{owner} holds no part of {table}")
        if level not in POLICY_LEVELS:
            raise CatalogError(where, f"{loc} {key}", f"must be one of "
                                                      f"{', '.join(map(repr, POLICY_LEVELS))}, "
                                                      f"got {level!r}")
        out.append(((table, column), level))
    return tuple(out)
