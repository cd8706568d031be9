"""Loading a deployment's catalog with every engine's settings checked by its backend."""

from __future__ import annotations

from pathlib import Path

from ..backends import check_catalog, engine_option_keys
from ..compiler.catalog import Catalog


def load_catalog(path: str | Path) -> Catalog:
    """The catalog at `path`; a CatalogError names the first problem (engines' keys too)."""
    catalog = Catalog.load(path, engine_options=engine_option_keys())
    check_catalog(catalog)
    return catalog


def compile_plan(sql: str, catalog: Catalog, *, engine: str | None = None, **options):
    """Compile `sql` with each party's engine recorded in the plan (`engine` overrides all)."""
    from ..backends import party_engines
    from ..compiler.planner import compile_query
    return compile_query(sql, catalog, engines=party_engines(catalog, engine), **options)


def engine_titles(plan, catalog: Catalog) -> dict[str, str]:
    """{party: its engine in words} for explain, e.g. "DuckDB, embedded"."""
    from ..backends import engine_settings, local_engine
    return {p: local_engine(name).describe(engine_settings(catalog, p))
            for p, name in plan.engines.items()}


def explain_plan(plan, catalog: Catalog, fmt: str = "text", out: Path | None = None) -> str:
    from ..compiler.explain import explain
    return explain(plan, fmt, out, engines=engine_titles(plan, catalog))
