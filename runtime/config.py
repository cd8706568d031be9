"""Loading a deployment's catalog with every engine's settings checked by its backend."""

from __future__ import annotations

import json
from pathlib import Path

from ..backends import check_catalog, engine_option_keys
from ..compiler.catalog import Catalog


def load_catalog(path: str | Path) -> Catalog:
    """The catalog at `path`; a CatalogError names the first problem (engines' keys too)."""
    catalog = Catalog.load(path, engine_options=engine_option_keys())
    check_catalog(catalog)
    return catalog


#: compiled plans a process keeps: a query run again (a dashboard's, an agent's recurring
#: one) skips the compile, about 25 ms for the taxi HHI
PLAN_CACHE = 32
_plans: dict[str, list[tuple[Catalog, object]]] = {}


def compile_plan(sql: str, catalog: Catalog, *, engine: str | None = None, **options):
    """Compile `sql` with each party's engine recorded in the plan (`engine` overrides all).

    The same query, options and catalog (equal in every field: any change to the catalog
    compiles anew) give the plan compiled before; plans are never changed once compiled."""
    from ..backends import party_engines
    from ..compiler.planner import compile_query
    key = json.dumps([sql, engine, options], sort_keys=True, default=list)
    for known, plan in _plans.get(key, []):
        if known == catalog:
            return plan
    plan = compile_query(sql, catalog, engines=party_engines(catalog, engine), **options)
    if key not in _plans and len(_plans) >= PLAN_CACHE:
        _plans.pop(next(iter(_plans)))  # the oldest query first
    _plans.setdefault(key, []).append((catalog, plan))
    del _plans[key][:-2]  # a query's plans for its last two catalogs
    return plan


def engine_titles(plan, catalog: Catalog) -> dict[str, str]:
    """{party: its engine in words} for explain, e.g. "DuckDB, embedded"."""
    from ..backends import engine_settings, local_engine
    return {p: local_engine(name).describe(engine_settings(catalog, p))
            for p, name in plan.engines.items()}


def explain_plan(plan, catalog: Catalog, fmt: str = "text", out: Path | None = None) -> str:
    from ..backends import secure_backend
    from ..compiler.explain import explain
    return explain(plan, fmt, out, secure=secure_backend(), engines=engine_titles(plan, catalog))


def engine_options(catalog: Catalog, party: str, engine: str | None,
                   defaults: dict | None = None) -> dict:
    """The settings of `party`'s engine: its catalog settings over `defaults` (e.g.
    --spark-master for every party), the engine taking only its own keys."""
    from ..backends import engine_settings, local_engine
    keys = local_engine(engine).option_keys
    options = {k: v for k, v in (defaults or {}).items() if k in keys and v is not None}
    options.update({k: v for k, v in engine_settings(catalog, party).items() if k in keys})
    return options


def party_engine(plan, catalog: Catalog, party: str,
                 defaults: dict | None = None) -> tuple[str | None, dict]:
    """(engine name, its settings) of `party` in `plan` (see engine_options); (None, {}) for a
    party without a local job in this plan, which never opens an engine."""
    from ..backends import local_engine
    if party not in plan.local_jobs:
        return None, {}
    name = local_engine(plan.engines.get(party)).name
    return name, engine_options(catalog, party, name, defaults)
