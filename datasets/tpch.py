"""TPC-H data split over three parties, plus its catalog.

The rows come from ``tpchgen-cli`` (a maintained, deterministic implementation of TPC-H's
dbgen: the same scale factor always gives the same rows); this module splits them:

    party   holds
    shop0   its orders (o_orderkey % 3 == 0) and their lineitems; customer
    shop1   its orders (o_orderkey % 3 == 1) and their lineitems; part, partsupp
    shop2   its orders (o_orderkey % 3 == 2) and their lineitems; supplier, nation, region

A party's lineitems belong to its own orders only, which the catalog declares
(``colocated``), so the lineitem-orders join runs locally at each party. nation and region
are TPC-H's fixed reference lists: every column is public (trust ``"*"``). The numbers' ranges
are the specification's (``RANGES``, declared in the catalog and checked by each owner).

Usage::

    python -m sqlmpc.datasets.tpch --scale 0.01 --out data/tpch

    from sqlmpc.datasets.tpch import generate
    catalog = generate(0.01, Path("data/tpch"))   # OUT/<party>/<table>.parquet, OUT/catalog.toml
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PARTIES = ("shop0", "shop1", "shop2")
#: table -> the party holding all of it (orders and lineitem are split by order key instead)
HOLDER = {"customer": "shop0", "part": "shop1", "partsupp": "shop1", "supplier": "shop2",
          "nation": "shop2", "region": "shop2"}
SPLIT_KEY = {"orders": "o_orderkey", "lineitem": "l_orderkey"}
#: column -> catalog type; the key and money types of the TPC-H specification
COLUMNS = {
    "nation": {"n_nationkey": "int", "n_name": "text", "n_regionkey": "int", "n_comment": "text"},
    "region": {"r_regionkey": "int", "r_name": "text", "r_comment": "text"},
    "part": {"p_partkey": "int", "p_name": "text", "p_mfgr": "text", "p_brand": "text",
             "p_type": "text", "p_size": "int", "p_container": "text",
             "p_retailprice": "decimal(15,2)", "p_comment": "text"},
    "supplier": {"s_suppkey": "int", "s_name": "text", "s_address": "text",
                 "s_nationkey": "int", "s_phone": "text", "s_acctbal": "decimal(15,2)",
                 "s_comment": "text"},
    "partsupp": {"ps_partkey": "int", "ps_suppkey": "int", "ps_availqty": "int",
                 "ps_supplycost": "decimal(15,2)", "ps_comment": "text"},
    "customer": {"c_custkey": "int", "c_name": "text", "c_address": "text",
                 "c_nationkey": "int", "c_phone": "text", "c_acctbal": "decimal(15,2)",
                 "c_mktsegment": "text", "c_comment": "text"},
    "orders": {"o_orderkey": "int", "o_custkey": "int", "o_orderstatus": "text",
               "o_totalprice": "decimal(15,2)", "o_orderdate": "date",
               "o_orderpriority": "text", "o_clerk": "text", "o_shippriority": "int",
               "o_comment": "text"},
    "lineitem": {"l_orderkey": "int", "l_partkey": "int", "l_suppkey": "int",
                 "l_linenumber": "int", "l_quantity": "decimal(15,2)",
                 "l_extendedprice": "decimal(15,2)", "l_discount": "decimal(15,2)",
                 "l_tax": "decimal(15,2)", "l_returnflag": "text", "l_linestatus": "text",
                 "l_shipdate": "date", "l_commitdate": "date", "l_receiptdate": "date",
                 "l_shipinstruct": "text", "l_shipmode": "text", "l_comment": "text"},
}
PRIMARY_KEYS = {"nation": ["n_nationkey"], "region": ["r_regionkey"], "part": ["p_partkey"],
                "supplier": ["s_suppkey"], "partsupp": ["ps_partkey", "ps_suppkey"],
                "customer": ["c_custkey"], "orders": ["o_orderkey"],
                "lineitem": ["l_orderkey", "l_linenumber"]}
DUCKDB_TYPES = {"int": "BIGINT", "text": "VARCHAR", "date": "DATE",
                "decimal(15,2)": "DECIMAL(15,2)"}


def generate(scale: float, out: Path) -> Path:
    """Write OUT/<party>/<table>.parquet and OUT/catalog.toml for TPC-H at `scale`; the
    catalog's path."""
    import duckdb
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        _run_generator(scale, Path(tmp))
        con = duckdb.connect()
        for table, columns in COLUMNS.items():
            select = ", ".join(f"CAST({c} AS {DUCKDB_TYPES[t]}) AS {c}" for c, t in
                               columns.items())
            source = f"read_parquet('{Path(tmp) / (table + '.parquet')}')"
            for party, where in _parts(table):
                (out / party).mkdir(exist_ok=True)
                target = out / party / f"{table}.parquet"
                con.execute(f"COPY (SELECT {select} FROM {source} WHERE {where} "
                            f"ORDER BY ALL) TO '{target}' (FORMAT PARQUET)")
        keys = {t: k for t, k in PRIMARY_KEYS.items() if _unique(con, out, t, k)}
        con.close()
    catalog = out / "catalog.toml"
    catalog.write_text(catalog_text(scale, keys))
    return catalog


def _unique(con, out: Path, table: str, key: list[str]) -> bool:
    """Whether `key` is unique over all parts of `table` (below scale factor 0.01 dbgen's
    supplier formula repeats some (ps_partkey, ps_suppkey) pairs: no key is declared then)."""
    files = [str(out / p / f"{table}.parquet") for p, _ in _parts(table)]
    cols = ", ".join(key)
    (dupes,) = con.execute(f"SELECT COUNT(*) FROM (SELECT {cols} FROM read_parquet({files}) "
                           f"GROUP BY {cols} HAVING COUNT(*) > 1)").fetchone()
    return dupes == 0


def _run_generator(scale: float, folder: Path) -> None:
    """tpchgen-cli's Parquet files at `scale` in `folder` (installed next to this Python)."""
    exe = Path(sys.executable).parent / "tpchgen-cli"
    cmd = str(exe) if exe.exists() else shutil.which("tpchgen-cli")
    if cmd is None:
        raise SystemExit("tpchgen-cli is not installed: pip install tpchgen-cli")
    subprocess.run([cmd, "parquet", "-s", str(scale), f"--output-dir={folder}"], check=True,
                   capture_output=True)


def _parts(table: str) -> list[tuple[str, str]]:
    """(party, SQL condition on the generated table) for each part of `table`."""
    if table in SPLIT_KEY:
        return [(p, f"{SPLIT_KEY[table]} % {len(PARTIES)} = {i}") for i, p in enumerate(PARTIES)]
    return [(HOLDER[table], "true")]


#: the value ranges TPC-H's specification (4.2.3) gives its generated numbers: public, checked by
#: each owner's local job, and what lets the compiler prove products such as
#: l_extendedprice * (1 - l_discount) fit the secure type (no overflow check inside MPC)
RANGES = {
    "lineitem": {"l_quantity": [1, 50], "l_extendedprice": [0, 104950],  # 50 x the top price
                 "l_discount": [0, 0.1], "l_tax": [0, 0.08]},
    "orders": {"o_totalprice": [0, 1000000]},     # at most 7 lineitems of 104950 x 1.08
    "part": {"p_size": [1, 50], "p_retailprice": [900, 2100]},
    "partsupp": {"ps_availqty": [1, 9999], "ps_supplycost": [1, 1000]},
    "customer": {"c_acctbal": [-999.99, 9999.99]},
    "supplier": {"s_acctbal": [-999.99, 9999.99]},
}


def catalog_text(scale: float, keys: dict[str, list[str]] | None = None) -> str:
    """The catalog of the split: parties, tables, primary `keys` (default: TPC-H's),
    co-location and public columns."""
    keys = PRIMARY_KEYS if keys is None else keys
    lines = [f"# TPC-H at scale factor {scale}, split over three parties (datasets/tpch.py):",
             "#   shop0, shop1, shop2 each hold their own orders (o_orderkey % 3) and the",
             "#   lineitems of those orders; shop0 holds customer; shop1 part and partsupp;",
             "#   shop2 supplier, nation and region. nation and region are public reference",
             "#   lists (trust \"*\").", ""]
    lines += [f"[parties.{p}]" for p in PARTIES] + [""]
    for table, columns in COLUMNS.items():
        cols = ", ".join(f'{c} = "{t}"' for c, t in columns.items())
        parts = ", ".join(f'{p} = "{p}/{table}.parquet"' for p, _ in _parts(table))
        lines += [f"[tables.{table}]", f"columns = {{ {cols} }}", f"parts = {{ {parts} }}"]
        if table in keys:
            lines.append("primary_key = [" + ", ".join(f'"{k}"' for k in keys[table]) + "]")
        if table == "lineitem":
            lines.append('colocated = { with = "orders", on = { l_orderkey = "o_orderkey" } }')
        if table in RANGES:
            lines += [f"[tables.{table}.ranges]"] + [f"{c} = {r}" for c, r in RANGES[table].items()]
        if table in ("nation", "region"):
            lines += [f"[tables.{table}.trust]"] + [f'{c} = "*"' for c in columns]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=0.01, help="TPC-H scale factor (1 = 1 GB)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    args = p.parse_args(argv)
    print(generate(args.scale, args.out))


if __name__ == "__main__":
    main()
