"""Fast tests of the deterministic NYC-taxi-like trip generator (sqlmpc.datasets.taxi)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from sqlmpc.datasets import taxi
from sqlmpc.datasets.taxi import (
    BLOCK_ROWS,
    CATALOG_TYPES,
    SCHEMA,
    generate,
    generate_block,
    main,
    split_rows,
)


def _read(catalog: Path) -> dict[str, pa.Table]:
    cat = tomllib.loads(catalog.read_text())
    parts = cat["tables"]["trips"]["parts"]
    return {party: pq.read_table(catalog.parent / rel) for party, rel in parts.items()}


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(60_000, 3, "company", tmp_path_factory.mktemp("company"), seed=3)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("platform")
    return generate(60_000, 3, "platform", out, seed=3, companies=5)


def test_determinism_same_seed_identical_files(tmp_path: Path) -> None:
    a = generate(20_000, 2, "platform", tmp_path / "a", seed=11)
    b = generate(20_000, 2, "platform", tmp_path / "b", seed=11)
    c = generate(20_000, 2, "platform", tmp_path / "c", seed=12)
    for party in ("platform1", "platform2"):
        fa = (a.parent / party / "trips.parquet").read_bytes()
        fb = (b.parent / party / "trips.parquet").read_bytes()
        fc = (c.parent / party / "trips.parquet").read_bytes()
        assert fa == fb
        assert fa != fc
    assert a.read_text() == b.read_text()


def test_row_totals_and_uneven_split(company: Path) -> None:
    tables = _read(company)
    counts = [t.num_rows for t in tables.values()]
    assert sum(counts) == 60_000
    assert counts == split_rows(60_000, 3)
    assert counts[0] > counts[1] > counts[2] > 0
    for rows in (0, 1, 2, 7, 1000, 999_999):
        for parties in (1, 2, 3, 5):
            split = split_rows(rows, parties)
            assert sum(split) == rows and len(split) == parties and min(split) >= 0


def test_schema_is_the_tlc_yellow_schema(company: Path) -> None:
    for table in _read(company).values():
        assert table.schema.equals(SCHEMA, check_metadata=False)
    assert list(CATALOG_TYPES) == SCHEMA.names


def test_company_layout_one_vendor_per_party(company: Path) -> None:
    for i, (party, table) in enumerate(_read(company).items(), start=1):
        assert party == f"company{i}"
        assert pc.unique(table["VendorID"]).to_pylist() == [i]


def test_platform_layout_several_vendors_per_party(platform: Path) -> None:
    tables = _read(platform)
    assert list(tables) == ["platform1", "platform2", "platform3"]
    favourites = []
    for table in tables.values():
        vendors = table["VendorID"].to_numpy()
        assert set(np.unique(vendors)) == {1, 2, 3, 4, 5}
        counts = np.bincount(vendors, minlength=6)[1:]
        favourites.append(int(np.argmax(counts)) + 1)
    # The mix differs per platform: each platform has its own biggest company.
    assert favourites == [1, 2, 3]


def test_value_distributions(platform: Path) -> None:
    t = pa.concat_tables(_read(platform).values())
    n = t.num_rows
    fare = t["fare_amount"].to_numpy()
    dist = t["trip_distance"].to_numpy()
    assert 0.001 < np.mean(fare < 0) < 0.01
    assert 0.0005 < np.mean(fare == 0) < 0.01
    assert np.all(dist >= 0)
    assert 1.2 < np.median(dist) < 3.0  # skewed: median well below the mean
    assert np.mean(dist) > np.median(dist)
    # fare ~ 3 + 2.5 * distance for ordinary metered trips
    ok = (t["RatecodeID"].to_numpy() == 1) & (fare > 0) & (fare < 400) & (dist < 50)
    slope, intercept = np.polyfit(dist[ok], fare[ok], 1)
    assert 2.2 < slope < 2.8 and 2.0 < intercept < 6.0

    pickup = t["tpep_pickup_datetime"].cast(pa.int64()).to_numpy()
    dropoff = t["tpep_dropoff_datetime"].cast(pa.int64()).to_numpy()
    assert np.all(dropoff >= pickup)
    lo = pa.scalar(dt.datetime(2023, 1, 1), pa.timestamp("us")).value
    hi = pa.scalar(dt.datetime(2023, 2, 1), pa.timestamp("us")).value
    assert lo <= pickup.min() and pickup.max() < hi

    for col in ("PULocationID", "DOLocationID"):
        loc = t[col].to_numpy()
        assert loc.min() >= 1 and loc.max() <= 265
        assert len(np.unique(loc)) > 200

    passengers = t["passenger_count"].to_numpy()
    assert np.mean(passengers == 1) > 0.6
    payment = t["payment_type"].to_numpy()
    assert np.mean((payment == 1) | (payment == 2)) > 0.95
    tip = t["tip_amount"].to_numpy()
    assert np.mean(tip[payment == 1] > 0) > 0.7
    assert np.all(tip[payment == 2] == 0)
    assert np.mean(t["RatecodeID"].to_numpy() == 1) > 0.9
    flags = t["store_and_fwd_flag"].value_counts().to_pylist()
    counts = {f["values"]: f["counts"] for f in flags}
    assert set(counts) == {"N", "Y"} and counts["Y"] < 0.02 * n

    parts = [
        "fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount",
        "improvement_surcharge", "congestion_surcharge", "airport_fee",
    ]  # fmt: skip
    total = sum(t[c].to_numpy() for c in parts)
    assert np.allclose(total, t["total_amount"].to_numpy(), atol=0.011)


def test_rare_huge_outliers_exist() -> None:
    # Outliers are ~1e-5 per row: look across enough blocks to see some.
    fares = np.concatenate(
        [generate_block(BLOCK_ROWS, seed=0, party=1, block=b)["fare_amount"].to_numpy()
         for b in range(6)]
    )  # fmt: skip
    assert fares.max() > 500


def test_catalog_parses_and_names_existing_files(company: Path) -> None:
    cat = tomllib.loads(company.read_text())
    assert list(cat["parties"]) == ["company1", "company2", "company3"]
    table = cat["tables"]["trips"]
    assert table["columns"] == CATALOG_TYPES
    assert table["columns"]["tpep_pickup_datetime"] == "date"
    assert table["columns"]["store_and_fwd_flag"] == "text"
    for party, rel in table["parts"].items():
        assert party in cat["parties"]
        assert rel == f"{party}/trips.parquet"
        assert (company.parent / rel).is_file()
    assert cat["result"]["recipients"] == ["company1"]
    assert table["domains"] == {"VendorID": [1, 2, 3]}  # company i has VendorID i


def test_declared_vendor_codes_hold_every_generated_vendor(platform: Path) -> None:
    cat = tomllib.loads(platform.read_text())
    codes = set(cat["tables"]["trips"]["domains"]["VendorID"])
    assert codes == {1, 2, 3, 4, 5}
    for table in _read(platform).values():
        assert set(table["VendorID"].to_pylist()) <= codes


def test_two_parties_get_a_helper(tmp_path: Path) -> None:
    cat = tomllib.loads(generate(500, 2, "company", tmp_path).read_text())
    assert list(cat["parties"]) == ["company1", "company2", "helper"]
    assert "helper" not in cat["tables"]["trips"]["parts"]


def test_chunked_writing_matches_one_chunk(tmp_path: Path) -> None:
    rows = 2 * BLOCK_ROWS + 1234
    one = generate(rows, 1, "platform", tmp_path / "one", seed=5, chunk_rows=10 * BLOCK_ROWS)
    small = generate(rows, 1, "platform", tmp_path / "small", seed=5, chunk_rows=10_007)
    t_one = pq.read_table(one.parent / "platform1" / "trips.parquet")
    t_small = pq.read_table(small.parent / "platform1" / "trips.parquet")
    assert t_one.num_rows == t_small.num_rows == rows
    assert t_one.equals(t_small)
    meta = pq.ParquetFile(small.parent / "platform1" / "trips.parquet").metadata
    assert meta.num_row_groups == -(-rows // 10_007)
    assert pq.ParquetFile(one.parent / "platform1" / "trips.parquet").metadata.num_row_groups == 1


def test_parallel_jobs_match_serial(tmp_path: Path) -> None:
    serial = generate(9_000, 3, "company", tmp_path / "s", seed=2)
    parallel = generate(9_000, 3, "company", tmp_path / "p", seed=2, jobs=3)
    for party in ("company1", "company2", "company3"):
        rel = f"{party}/trips.parquet"
        assert (serial.parent / rel).read_bytes() == (parallel.parent / rel).read_bytes()


def test_zero_rows_writes_empty_files(tmp_path: Path) -> None:
    tables = _read(generate(0, 3, "platform", tmp_path))
    assert [t.num_rows for t in tables.values()] == [0, 0, 0]


def test_api_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="layout"):
        generate(10, 2, "fleet", tmp_path)
    with pytest.raises(ValueError, match="rows"):
        generate(-1, 2, "company", tmp_path)
    with pytest.raises(ValueError, match="parties"):
        generate(10, 0, "company", tmp_path)


def test_cli_writes_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--rows", "3000", "--parties", "3", "--layout", "platform", "--out", str(tmp_path)]
    assert main([*argv, "--seed", "1", "--companies", "4"]) == 0
    err = capsys.readouterr().err
    assert "platform1:" in err and err.strip().splitlines()[-1].startswith("wrote 3,000 rows")
    assert sum(t.num_rows for t in _read(tmp_path / "catalog.toml").values()) == 3000
    assert main([*argv, "--quiet"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["--rows", "10", "--parties", "2", "--layout", "fleet", "--out", "x"],
        ["--rows", "-5", "--parties", "2", "--layout", "company", "--out", "x"],
        ["--rows", "10", "--parties", "0", "--layout", "company", "--out", "x"],
        ["--parties", "2", "--layout", "company", "--out", "x"],
    ],
)
def test_cli_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("python -m sqlmpc.datasets.taxi: error:")


def test_runs_as_module(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sqlmpc.datasets.taxi", "--rows", "100", "--parties", "2",
         "--layout", "company", "--out", str(tmp_path), "--quiet"],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "catalog.toml").is_file()
    assert taxi.__doc__ and "yellow_tripdata" in taxi.__doc__
