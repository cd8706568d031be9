"""The Python API: the same as the command line, returning Python objects.

    >>> import sqlmpc
    >>> plan = sqlmpc.compile_sql("SELECT SUM(fare) FROM trips", "catalog.toml")  # doctest: +SKIP
    >>> print(sqlmpc.explain_sql("SELECT SUM(fare) FROM trips", "catalog.toml"))  # doctest: +SKIP
    >>> df = sqlmpc.run_sql("SELECT SUM(fare) FROM trips", "catalog.toml")      # doctest: +SKIP

Errors are `sqlmpc.SqlmpcError` (and subclasses) with one-line messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..compiler.catalog import Catalog
from ..compiler.ir.plan import Plan
from .config import compile_plan, explain_plan, load_catalog
from .workspace import RunOptions

if TYPE_CHECKING:
    import pandas as pd


def _catalog(catalog: str | Path | Catalog) -> Catalog:
    return catalog if isinstance(catalog, Catalog) else load_catalog(catalog)


def compile_sql(sql: str, catalog: str | Path | Catalog, *, dialect: str | None = None,
                all_secure: bool = False, disable: tuple[str, ...] = (),
                pad_inputs: str | None = None, join_bound: int | None = None,
                engine: str | None = None) -> Plan:
    """Compile SQL against a catalog into a physical plan (options as the CLI's)."""
    return compile_plan(sql, _catalog(catalog), engine=engine, dialect=dialect,
                        all_secure=all_secure, disable=disable, pad_inputs=pad_inputs,
                        join_bound=join_bound)


def explain_sql(sql: str, catalog: str | Path | Catalog, *, fmt: str = "text",
                **options) -> str:
    """The plan explained as text (default), json or dot."""
    cat = _catalog(catalog)
    return explain_plan(compile_sql(sql, cat, **options), cat, fmt)


def run_sql(sql: str, catalog: str | Path | Catalog, *, dialect: str | None = None,
            all_secure: bool = False, disable: tuple[str, ...] = (), engine: str | None = None,
            spark_master: str | None = None, ssl: bool = False, stats: str | Path | None = None,
            quiet: bool = True, timeout: float | None = None,
            workdir: str | Path | None = None,
            agents: dict[str, str] | None = None, pad_inputs: str | None = None,
            join_bound: int | None = None, identity: str | Path | None = None,
            insecure_plaintext: bool = False) -> pd.DataFrame:
    """Run the query with every party as its own process on this machine; return the result.

    Each party runs on its own engine (the catalog's `engine`, else embedded DuckDB; `engine`
    overrides every party's). `agents` ({party: "host:port"}) runs it through already running
    `sqlmpc agent` processes (one per party, runtime/agent/) instead of starting new ones; they
    use their own engines, so `engine` and `spark_master` do not apply to them. `agents={}`
    uses the catalog's `agent` addresses. `identity` is the analyst's identity folder for the
    agents (default: the catalog's [deployment] identity); `insecure_plaintext` talks to them
    without TLS.
    """
    cat = _catalog(catalog)
    switches = {"dialect": dialect, "disable": list(disable), "pad_inputs": pad_inputs,
                "join_bound": join_bound}
    plan = compile_plan(sql, cat, engine=engine, dialect=dialect, all_secure=all_secure,
                        disable=tuple(disable), pad_inputs=pad_inputs, join_bound=join_bound)
    options = RunOptions(ssl=ssl, stats_path=Path(stats) if stats else None, quiet=quiet,
                         timeout=timeout, workdir=Path(workdir) if workdir else None,
                         engine_defaults={"spark_master": spark_master},
                         compile_options=switches)
    return run_compiled(plan, cat, options, agents=agents, identity=identity,
                        insecure_plaintext=insecure_plaintext)


def run_compiled(plan: Plan, catalog: Catalog, options: RunOptions,
                 agents: dict[str, str] | None = None, *, identity: str | Path | None = None,
                 insecure_plaintext: bool = False) -> pd.DataFrame:
    """Run a compiled plan: through agents when `agents` is given (a dict, {} for the
    catalog's addresses), else one process per party here."""
    if agents is not None:
        from .agent.client import run_with_agents
        return run_with_agents(plan, catalog, agents, options, identity=identity,
                               insecure_plaintext=insecure_plaintext)
    from .launcher import run_plan
    return run_plan(plan, catalog, options)
