"""sqlmpc.backends: local engines (one folder each) and the secure backend (mpyc/).

    engine = local_engine("duckdb")          # a LocalEngine (backends/base.py)
    engine.render(job)                      # the party's auditable program

Adding an engine: its own folder with an ``ENGINE`` object, and one line in LOCAL_ENGINES.
Nothing here imports an engine's library: a backend module imports only what renders.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .base import LocalEngine, SecureBackend


class Catalog(Protocol):
    """What the engine checks read of a catalog (compiler/catalog.py): its file and its
    parties (each with .name, .engine and .engine_options)."""

    path: Any
    parties: Mapping[str, Any]

#: engine name -> the module holding its ENGINE object
LOCAL_ENGINES = {
    "duckdb": "sqlmpc.backends.duckdb",
    "spark": "sqlmpc.backends.spark",
}
DEFAULT_ENGINE = "duckdb"


def local_engine(name: str | None) -> LocalEngine:
    """The local engine called `name` (None: the default engine)."""
    name = name or DEFAULT_ENGINE
    if name not in LOCAL_ENGINES:
        from sqlmpc.compiler.errors import SqlmpcError
        raise SqlmpcError(f"unknown engine {name!r} (engines: {', '.join(LOCAL_ENGINES)})")
    return importlib.import_module(LOCAL_ENGINES[name]).ENGINE


def secure_backend() -> SecureBackend:
    from .mpyc import BACKEND
    return BACKEND


def engine_option_keys() -> dict[str, tuple[str, ...]]:
    """{engine: the catalog keys a party may set for it} (Catalog.load's engine_options)."""
    return {name: tuple(local_engine(name).option_keys) for name in LOCAL_ENGINES}


def check_catalog(catalog: Catalog) -> None:
    """Let each party's engine check that party's settings; CatalogError names the first bad
    one."""
    from sqlmpc.compiler.errors import CatalogError
    for party in catalog.parties.values():
        engine = local_engine(party.engine)
        for key, value in party.engine_options:
            problem = engine.check_option(key, value)
            if problem:
                raise CatalogError(str(catalog.path), f"[parties.{party.name}]", problem)


def party_engines(catalog: Catalog, override: str | None = None) -> dict[str, str]:
    """{party: engine name}: `override` for every party, else the catalog's, else the
    default."""
    if override is not None:
        local_engine(override)  # an unknown name fails here, with the list of engines
    return {p: override or party.engine or DEFAULT_ENGINE
            for p, party in catalog.parties.items()}


def engine_settings(catalog: Catalog, party: str) -> Mapping[str, object]:
    p = catalog.parties.get(party)
    return dict(p.engine_options) if p else {}
