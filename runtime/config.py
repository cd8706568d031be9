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
