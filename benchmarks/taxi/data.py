"""The experiment's data: generated trips per size (cached), their catalogs and files."""

from __future__ import annotations

import argparse
import os
import shutil
import time
import tomllib
from pathlib import Path

from .common import log


def parse_sizes(text: str) -> list[int]:
    """Row counts from "1000000,5m,20k,1_000"; argparse's type for --rows."""
    sizes = []
    for item in text.split(","):
        item = item.strip().replace("_", "").lower()
        if not item:
            continue
        scale = 1
        if item[-1] in "km":
            scale = 1_000 if item[-1] == "k" else 1_000_000
            item = item[:-1]
        try:
            value = int(float(item) * scale)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a row count: {item!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"row counts must be positive, got {value}")
        sizes.append(value)
    return sizes


def catalog_files(catalog: Path) -> list[str]:
    """Absolute paths of every part of table trips, in catalog order."""
    doc = tomllib.loads(catalog.read_text())
    return [str((catalog.parent / p).resolve()) for p in doc["tables"]["trips"]["parts"].values()]


def data_parties(catalog: Path) -> list[str]:
    """The parties holding a part of table trips, in catalog order."""
    doc = tomllib.loads(catalog.read_text())
    return list(doc["tables"]["trips"]["parts"])


def ensure_data(data: Path, rows: int, parties: int, layout: str, companies: int) -> Path:
    """Generate (once) and return the catalog of this size; reused across runs of the script."""
    from sqlmpc.datasets.taxi import generate, write_layout_catalog
    out = data / f"{layout}-p{parties}-c{companies}-{rows}"
    done = out / ".complete"
    if done.exists():  # the catalog is rewritten: cached data follow this version's catalog
        return write_layout_catalog(out, parties, layout, companies)
    t0 = time.perf_counter()
    shutil.rmtree(out, ignore_errors=True)
    catalog = generate(rows, parties, layout, out, companies=companies, quiet=True,
                       jobs=min(parties, os.cpu_count() or 1))
    done.write_text("ok\n")
    log(f"generated {rows:,} rows ({layout}, {parties} parties) in "
        f"{time.perf_counter() - t0:.1f} s -> {out}")
    return catalog


def warm_catalog(catalog: Path, masters: dict[str, str], tag: str) -> Path:
    """A copy of `catalog` (same folder, so the relative parts still resolve) in which every
    data party's `spark_master` names its own Spark Connect server."""
    lines = []
    for line in catalog.read_text().splitlines():
        lines.append(line)
        stripped = line.strip()
        if stripped.startswith("[parties.") and stripped.endswith("]"):
            name = stripped[len("[parties."):-1]
            if name in masters:
                lines.append(f'spark_master = "{masters[name]}"')
    path = catalog.with_name(f"catalog.warm-{tag}.toml")
    path.write_text("\n".join(lines) + "\n")
    return path


def hhi_of_csv(path: Path) -> float:
    """The HHI in a result CSV (one row, one column, a header)."""
    import pandas as pd
    df = pd.read_csv(path)
    return float(df.iloc[0, 0])
