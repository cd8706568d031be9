"""Deterministic NYC-taxi-like trip records, one Parquet file per party, plus a catalog.

The generated table ``trips`` has the NYC TLC *yellow* trip-record schema: the columns of the
monthly ``yellow_tripdata_YYYY-MM.parquet`` files with their Parquet types, except that
passenger_count and RatecodeID are int64 here (nullable doubles in the real files) and that
no value is NULL:

    VendorID int64, tpep_pickup_datetime timestamp[us], tpep_dropoff_datetime timestamp[us],
    passenger_count int64, trip_distance double, RatecodeID int64, store_and_fwd_flag string,
    PULocationID int64, DOLocationID int64, payment_type int64, fare_amount double, extra double,
    mta_tax double, tip_amount double, tolls_amount double, improvement_surcharge double,
    total_amount double, congestion_surcharge double, airport_fee double

with realistic value distributions: log-normal distances, fare ~ 3 + 2.5 * distance + noise,
about 0.5% zero or negative fares (refunds, disputes, no-charge trips, where every money column
is negated as in the real files), rare huge fare and distance outliers, mostly one passenger,
mostly card (1) or cash (2) payments, tips mostly on card payments, RatecodeID mostly 1 (JFK
trips at the 70 dollar flat fare), store_and_fwd_flag mostly 'N', location ids 1..265 skewed
towards Manhattan zones, pickups within one calendar month, dropoff never before pickup.

Layouts
-------
``company``   party ``companyI`` is one taxi company holding only its own trips; VendorID = I.
              The per-company revenue is local, only the market-concentration arithmetic
              (e.g. the Herfindahl-Hirschman index) needs MPC.
``platform``  party ``platformI`` is a dispatch platform holding trips of many companies
              (VendorID in 1..C, with a skewed mix that differs per platform), so revenue per
              company must be combined across parties.

Rows are split across the parties unevenly (weights 1, 1/1.5, 1/2, ...) but deterministically,
and the total is exactly ``--rows``. With two data parties a third party ``helper`` (holding no
data) is declared so that MPyC has an honest majority.

Usage::

    python -m sqlmpc.datasets.taxi --rows 5000000 --parties 3 --layout company --out data/taxi
    python -m sqlmpc.datasets.taxi --rows 1000000 --parties 3 --layout platform --companies 5 \\
        --out data/taxi-platform --seed 7 --jobs 3

    from sqlmpc.datasets.taxi import generate
    catalog = generate(1_000_000, 3, "company", Path("data/taxi"))

writes ``OUT/<party>/trips.parquet`` and ``OUT/catalog.toml``. Output is a pure function of
(rows, parties, layout, companies, seed, month): every block of ``BLOCK_ROWS`` rows has its own
random stream seeded from (seed, party, block), so the chunk (row group) size and the number of
parallel jobs do not change a single value.

Using the real TLC files instead
--------------------------------
Download the monthly ``yellow_tripdata_YYYY-MM.parquet`` files from the NYC TLC "Trip Record
Data" page yourself (this module never downloads anything), then split them by VendorID into
one file per party and keep the catalog that ``write_catalog`` produces. The real files store
passenger_count and RatecodeID as nullable doubles, have NULLs (about 3% of rows) in
passenger_count, RatecodeID, store_and_fwd_flag, congestion_surcharge and airport_fee, and
spell the last column ``Airport_fee`` up to 2022; normalise that while splitting. With DuckDB::

    import duckdb
    from pathlib import Path
    from sqlmpc.datasets.taxi import write_catalog

    out = Path("data/tlc")
    vendors = {"company1": 1, "company2": 2}   # 1 = Creative Mobile Technologies, 2 = Curb/VeriFone
    for party, vendor in vendors.items():
        (out / party).mkdir(parents=True, exist_ok=True)
        duckdb.sql(f'''
            COPY (
              SELECT VendorID::BIGINT AS VendorID, tpep_pickup_datetime, tpep_dropoff_datetime,
                     coalesce(passenger_count, 1)::BIGINT AS passenger_count, trip_distance,
                     coalesce(RatecodeID, 1)::BIGINT AS RatecodeID,
                     coalesce(store_and_fwd_flag, 'N') AS store_and_fwd_flag,
                     PULocationID::BIGINT AS PULocationID, DOLocationID::BIGINT AS DOLocationID,
                     payment_type::BIGINT AS payment_type, fare_amount, extra, mta_tax,
                     tip_amount, tolls_amount, improvement_surcharge, total_amount,
                     coalesce(congestion_surcharge, 0) AS congestion_surcharge,
                     coalesce(airport_fee, 0) AS airport_fee
              FROM read_parquet('yellow_tripdata_2023-*.parquet', union_by_name = true)
              WHERE VendorID = {vendor}
            ) TO '{out / party / "trips.parquet"}' (FORMAT parquet, COMPRESSION zstd)''')
    write_catalog(out, list(vendors), helper=len(vendors) == 2)

or with pyarrow alone (one month, for a quick test)::

    import pyarrow.compute as pc, pyarrow.parquet as pq
    t = pq.read_table("yellow_tripdata_2023-01.parquet")
    for party, vendor in vendors.items():
        pq.write_table(t.filter(pc.equal(t["VendorID"], vendor)), out / party / "trips.parquet")

(then cast and fill the columns as in the DuckDB version, so that the Parquet types are the
ones this module writes and the catalog declares).
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
import functools
import json
import operator
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = [
    "BLOCK_ROWS",
    "CATALOG_TYPES",
    "LAYOUTS",
    "SCHEMA",
    "generate",
    "generate_block",
    "main",
    "party_names",
    "split_rows",
    "vendor_ids",
    "write_catalog",
    "write_layout_catalog",
]

LAYOUTS = ("company", "platform")
TABLE = "trips"
FILE_NAME = "trips.parquet"
HELPER = "helper"

#: Rows per independently seeded random stream: the unit of determinism.
BLOCK_ROWS = 1 << 16
#: Default Parquet row-group (write chunk) size; memory stays bounded by a few of these.
CHUNK_ROWS = 1 << 20

SCHEMA = pa.schema(
    [
        ("VendorID", pa.int64()),
        ("tpep_pickup_datetime", pa.timestamp("us")),
        ("tpep_dropoff_datetime", pa.timestamp("us")),
        ("passenger_count", pa.int64()),
        ("trip_distance", pa.float64()),
        ("RatecodeID", pa.int64()),
        ("store_and_fwd_flag", pa.string()),
        ("PULocationID", pa.int64()),
        ("DOLocationID", pa.int64()),
        ("payment_type", pa.int64()),
        ("fare_amount", pa.float64()),
        ("extra", pa.float64()),
        ("mta_tax", pa.float64()),
        ("tip_amount", pa.float64()),
        ("tolls_amount", pa.float64()),
        ("improvement_surcharge", pa.float64()),
        ("total_amount", pa.float64()),
        ("congestion_surcharge", pa.float64()),
        ("airport_fee", pa.float64()),
    ]
)

#: The SQL type each column has in the catalog (what a query sees).
CATALOG_TYPES: dict[str, str] = {
    "VendorID": "int",
    "tpep_pickup_datetime": "date",
    "tpep_dropoff_datetime": "date",
    "passenger_count": "int",
    "trip_distance": "float",
    "RatecodeID": "int",
    "store_and_fwd_flag": "text",
    "PULocationID": "int",
    "DOLocationID": "int",
    "payment_type": "int",
    "fare_amount": "float",
    "extra": "float",
    "mta_tax": "float",
    "tip_amount": "float",
    "tolls_amount": "float",
    "improvement_surcharge": "float",
    "total_amount": "float",
    "congestion_surcharge": "float",
    "airport_fee": "float",
}

_MONEY = (
    "fare_amount",
    "extra",
    "mta_tax",
    "tip_amount",
    "tolls_amount",
    "improvement_surcharge",
    "congestion_surcharge",
    "airport_fee",
)

# --- fixed distributions (constants, not seeded) -------------------------------------------

_N_ZONES = 265
_JFK, _LGA, _EWR = 132, 138, 1
# Manhattan taxi zones (congestion surcharge applies to trips touching them).
_MANHATTAN = np.array(
    [4, 12, 13, 24, 41, 42, 43, 45, 48, 50, 68, 74, 75, 79, 87, 88, 90, 100, 103, 104, 105, 107,
     113, 114, 116, 120, 125, 127, 128, 137, 140, 141, 142, 143, 144, 148, 151, 152, 153, 158,
     161, 162, 163, 164, 166, 170, 186, 194, 202, 209, 211, 224, 229, 230, 231, 232, 233, 234,
     236, 237, 238, 239, 243, 244, 246, 249, 261, 262, 263]
)  # fmt: skip
# The busiest pickup zones, most popular first (Upper East Side, Midtown, ...).
_POPULAR = [237, 161, 236, 162, 132, 230, 186, 142, 170, 163, 68, 239, 138, 48, 234, 79, 107,
            141, 140, 249, 113, 164, 229, 100, 263, 43, 246, 238, 90, 151, 262, 233, 137, 50,
            231, 125, 75, 166, 74, 144, 87, 224, 148, 158, 13, 143, 114, 211, 45, 209, 65, 4,
            261, 97, 24, 41, 42, 33, 244, 7]  # fmt: skip


def _zone_weights() -> np.ndarray:
    w = np.full(_N_ZONES, 0.02)
    in_manhattan = np.isin(np.arange(1, _N_ZONES + 1), _MANHATTAN)
    w[in_manhattan] = 0.25
    for rank, zone in enumerate(_POPULAR):
        w[zone - 1] = 4.0 / (1.0 + rank) ** 0.7
    w[264 - 1] = 0.9  # "NV" / unknown zones present in the real files
    w[265 - 1] = 0.3
    return w


_TABLE_SIZE = 1 << 16


def _table(weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """Lookup table of a categorical distribution: index ``k`` fills about ``p_k * 2**16`` slots.

    Drawing is one table lookup of a uniform 16-bit integer, much faster than a CDF search;
    probabilities are quantised to 2**-16, which is plenty for a synthetic generator.
    """
    w = np.asarray(weights, dtype=np.float64)
    cdf = np.cumsum(w / w.sum())
    cdf[-1] = 1.0
    slots = (np.arange(_TABLE_SIZE, dtype=np.float64) + 0.5) / _TABLE_SIZE
    return np.searchsorted(cdf, slots, side="right").astype(np.int32)


_ZONE_TABLE = _table(_zone_weights())
# Pickup share by hour of day (NYC yellow cabs, roughly).
_HOUR_TABLE = _table([2.9, 2.0, 1.3, 0.9, 0.6, 0.6, 1.5, 2.8, 3.8, 4.2, 4.4, 4.7,
                  5.0, 5.1, 5.5, 5.7, 5.6, 6.4, 6.8, 6.1, 5.4, 5.4, 5.2, 4.0])  # fmt: skip
_PASSENGERS = np.array([0, 1, 2, 3, 4, 5, 6])
_PASSENGER_TABLE = _table([0.018, 0.745, 0.145, 0.037, 0.02, 0.022, 0.013])
_RATECODES = np.array([1, 2, 3, 4, 5, 6, 99])
_RATECODE_TABLE = _table([0.942, 0.036, 0.004, 0.002, 0.011, 0.0001, 0.005])
_PAYMENTS = np.array([1, 2, 3, 4])
_PAYMENT_TABLE = _table([0.78, 0.195, 0.008, 0.017])
_TIP_PCTS = np.array([0.15, 0.18, 0.2, 0.22, 0.25, 0.3])
_TIP_PCT_TABLE = _table([0.1, 0.1, 0.35, 0.1, 0.2, 0.15])
_REFUND_PAYMENT_TABLE = _table([0.1, 0.1, 0.4, 0.4])  # zero/negative fares: mostly 3 and 4

_P_NEGATIVE = 0.003  # refunds / disputes: every money column negated
_P_ZERO = 0.002  # zero fare
_P_FARE_OUTLIER = 1e-5
_P_DISTANCE_OUTLIER = 1e-5
_P_STORE_AND_FWD = 0.004
_FLAG_VALUES = pa.array(["N", "Y"], pa.string())


def _draw(rng: np.random.Generator, table: np.ndarray, n: int) -> np.ndarray:
    """Indices drawn from a categorical distribution given by its lookup table (``_table``)."""
    return table[rng.integers(0, _TABLE_SIZE, n, dtype=np.uint16)]


def _round2(x: np.ndarray) -> np.ndarray:
    return np.round(x, 2)


@functools.lru_cache(maxsize=256)
def _vendor_table(platform: int, companies: int) -> np.ndarray:
    """Skewed company mix of one platform: platform I favours company I (cyclically)."""
    k = np.arange(companies)
    rank = (k - (platform - 1)) % companies + 1
    exponent = 1.0 + 0.15 * ((platform - 1) % 3)
    return _table(1.0 / rank.astype(np.float64) ** exponent)


def _month_start(month: str) -> dt.datetime:
    try:
        year, mon = (int(p) for p in month.split("-"))
        return dt.datetime(year, mon, 1)
    except ValueError:
        raise ValueError(f"month must be YYYY-MM, got {month!r}") from None


# --- one block ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    rows: int
    parties: int
    layout: str
    seed: int
    companies: int
    month: str


def generate_block(
    n: int,
    *,
    seed: int,
    party: int,
    block: int,
    layout: str = "company",
    companies: int = 5,
    month: str = "2023-01",
) -> pa.Table:
    """``n`` trip records of block ``block`` of party ``party`` (1-based); a pure function.

    The stages below draw from one generator in a fixed order (the files depend on it)."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, party, block, 0x7A31])))
    start = _month_start(month)
    if layout == "company":
        vendor = np.full(n, party, dtype=np.int64)
    elif layout == "platform":
        vendor = _draw(rng, _vendor_table(party, companies), n).astype(np.int64) + 1
    else:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    ride = _draw_ride(rng, n, start)
    place = _draw_places(rng, n, ride)
    money = _draw_charges(rng, n, ride, place)
    _draw_refunds(rng, n, ride, place, money)
    return _trip_table(start, vendor, ride, place, money)


def _draw_ride(rng: np.random.Generator, n: int, start: dt.datetime) -> dict[str, np.ndarray]:
    """When, how far and how long: pickup and dropoff second, rate code, distance."""
    days = calendar.monthrange(start.year, start.month)[1]
    # Pickup time: uniform day of the month, diurnal hour, uniform second in the hour.
    day = rng.integers(0, days, n)
    hour = _draw(rng, _HOUR_TABLE, n)
    pickup_s = day * 86400 + hour * 3600 + rng.integers(0, 3600, n)
    weekday = (start.weekday() + day) % 7

    ratecode = _RATECODES[_draw(rng, _RATECODE_TABLE, n)]
    airport = (ratecode == 2) | (ratecode == 3)

    # Distance (miles): log-normal, airport runs ~17 miles, some zero, rare absurd outliers.
    distance = rng.lognormal(np.log(1.9), 0.85, n)
    distance = np.where(airport, rng.lognormal(np.log(17.0), 0.2, n), distance)
    distance = np.where(rng.random(n) < 0.012, 0.0, distance)
    d_outlier = rng.random(n) < _P_DISTANCE_OUTLIER
    distance = np.where(d_outlier, 10.0 ** rng.uniform(2.5, 5.5, n), distance)
    distance = _round2(distance)

    # Duration: speed log-normal around 11 mph, plus a little time at the kerb.
    speed = np.clip(rng.lognormal(np.log(11.0), 0.35, n), 2.0, 45.0)
    plain_distance = np.minimum(distance, 60.0)
    idle_min = rng.gamma(1.5, 1.6, n)
    duration_s = np.round((plain_distance / speed) * 3600.0 + idle_min * 60.0)
    duration_s = np.where(rng.random(n) < 0.001, 0.0, duration_s).astype(np.int64)
    return {"hour": hour, "weekday": weekday, "pickup_s": pickup_s,
            "dropoff_s": pickup_s + duration_s, "ratecode": ratecode, "airport": airport,
            "distance": distance, "plain_distance": plain_distance, "idle_min": idle_min}


def _draw_places(rng: np.random.Generator, n: int,
                 ride: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Where and who: pickup and dropoff zones, passengers, store-and-forward flag, payment."""
    # Locations: skewed towards Manhattan; JFK/Newark runs start or end at the airport.
    pu = _draw(rng, _ZONE_TABLE, n).astype(np.int64) + 1
    do = _draw(rng, _ZONE_TABLE, n).astype(np.int64) + 1
    to_airport = rng.random(n) < 0.5
    airport = ride["airport"]
    airport_zone = np.where(ride["ratecode"] == 2, _JFK, _EWR)
    pu = np.where(airport & ~to_airport, airport_zone, pu)
    do = np.where(airport & to_airport, airport_zone, do)

    passengers = _PASSENGERS[_draw(rng, _PASSENGER_TABLE, n)]
    flag_y = rng.random(n) < _P_STORE_AND_FWD
    payment = _PAYMENTS[_draw(rng, _PAYMENT_TABLE, n)]
    return {"pu": pu, "do": do, "passengers": passengers, "flag_y": flag_y, "payment": payment}


def _draw_charges(rng: np.random.Generator, n: int, ride: dict[str, np.ndarray],
                  place: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The money columns (_MONEY) of ordinary trips: fare, surcharges, tolls, tips."""
    ratecode, hour, weekday = ride["ratecode"], ride["hour"], ride["weekday"]
    pu, do = place["pu"], place["do"]
    # Fare: 3 + 2.5 * distance + waiting-time noise; flat JFK, Newark surcharge, negotiated.
    noise = 0.45 * ride["idle_min"] + rng.normal(0.0, 0.6, n)
    fare = np.maximum(3.0 + 2.5 * ride["plain_distance"] + noise, 3.0)
    fare = np.where(ratecode == 2, 70.0, fare)
    fare = np.where(ratecode == 3, fare + 20.0, fare)
    fare = np.where(ratecode == 5, np.round(rng.uniform(10.0, 120.0, n)), fare)
    fare = _round2(fare)

    rush = (hour >= 16) & (hour < 20) & (weekday < 5)
    overnight = (hour >= 20) | (hour < 6)
    extra = np.where(rush, 2.5, np.where(overnight, 1.0, 0.0))
    extra = np.where(ratecode == 5, 0.0, extra)
    mta_tax = np.where((ratecode == 5) | (rng.random(n) < 0.01), 0.0, 0.5)
    improvement = np.where(rng.random(n) < 0.01, 0.3, 1.0)
    touches_manhattan = np.isin(pu, _MANHATTAN) | np.isin(do, _MANHATTAN)
    congestion = np.where(touches_manhattan & (rng.random(n) < 0.96), 2.5, 0.0)
    airport_fee = np.where((pu == _JFK) | (pu == _LGA), 1.25, 0.0)
    toll_p = np.where(ride["airport"] | (ride["distance"] > 8.0), 0.45, 0.015)
    tolls = np.where(rng.random(n) < toll_p, 6.55, 0.0)
    tolls = np.where(rng.random(n) < 0.02 * (tolls > 0), 13.1, tolls)

    # Tips: mostly on card payments, as a percentage of the metered amount.
    pct = np.where(rng.random(n) < 0.6, _TIP_PCTS[_draw(rng, _TIP_PCT_TABLE, n)],
                   rng.uniform(0.05, 0.4, n))  # fmt: skip
    tips_card = (place["payment"] == 1) & (rng.random(n) < 0.88)
    tip = np.where(tips_card, _round2(pct * (fare + extra + mta_tax + tolls)), 0.0)
    return {"fare_amount": fare, "extra": extra, "mta_tax": mta_tax, "tip_amount": tip,
            "tolls_amount": tolls, "improvement_surcharge": improvement,
            "congestion_surcharge": congestion, "airport_fee": airport_fee}


def _draw_refunds(rng: np.random.Generator, n: int, ride: dict[str, np.ndarray],
                  place: dict[str, np.ndarray], money: dict[str, np.ndarray]) -> None:
    """Zero fares, refunds/disputes (negated money) and rare huge fare outliers, in place;
    adds the total."""
    u = rng.random(n)
    zero = u < _P_ZERO
    negative = (u >= _P_ZERO) & (u < _P_ZERO + _P_NEGATIVE)
    f_outlier = rng.random(n) < _P_FARE_OUTLIER
    money["fare_amount"] = np.where(f_outlier, _round2(10.0 ** rng.uniform(2.7, 5.7, n)),
                                    money["fare_amount"])

    alt_payment = _PAYMENTS[_draw(rng, _REFUND_PAYMENT_TABLE, n)]
    payment = np.where(zero | negative, alt_payment, place["payment"])
    place["payment"] = payment
    money["tip_amount"] = np.where(zero | (negative & (payment != 1)), 0.0, money["tip_amount"])
    ride["distance"] = np.where(zero & (rng.random(n) < 0.5), 0.0, ride["distance"])
    for name in _MONEY:
        col = money[name]
        if name != "improvement_surcharge":
            col = np.where(zero, 0.0, col)
        money[name] = np.where(negative, -col, col) + 0.0  # + 0.0 turns -0.0 into 0.0
    total = money["fare_amount"].copy()
    for name in _MONEY[1:]:
        total += money[name]
    money["total_amount"] = _round2(total)


def _trip_table(start: dt.datetime, vendor: np.ndarray, ride: dict[str, np.ndarray],
                place: dict[str, np.ndarray], money: dict[str, np.ndarray]) -> pa.Table:
    """The drawn columns as an Arrow table with the TLC schema (SCHEMA)."""
    epoch_us = int((start - dt.datetime(1970, 1, 1)).total_seconds()) * 1_000_000
    flag = pc.take(_FLAG_VALUES, pa.array(place["flag_y"].astype(np.int8)))
    columns: dict[str, pa.Array] = {
        "VendorID": pa.array(vendor, pa.int64()),
        "tpep_pickup_datetime": pa.array(epoch_us + ride["pickup_s"] * 1_000_000,
                                         pa.timestamp("us")),
        "tpep_dropoff_datetime": pa.array(epoch_us + ride["dropoff_s"] * 1_000_000,
                                          pa.timestamp("us")),
        "passenger_count": pa.array(place["passengers"].astype(np.int64), pa.int64()),
        "trip_distance": pa.array(ride["distance"], pa.float64()),
        "RatecodeID": pa.array(ride["ratecode"].astype(np.int64), pa.int64()),
        "store_and_fwd_flag": flag,
        "PULocationID": pa.array(place["pu"], pa.int64()),
        "DOLocationID": pa.array(place["do"], pa.int64()),
        "payment_type": pa.array(place["payment"].astype(np.int64), pa.int64()),
        **{name: pa.array(money[name], pa.float64()) for name in _MONEY[:6]},
        "total_amount": pa.array(money["total_amount"], pa.float64()),
        **{name: pa.array(money[name], pa.float64()) for name in _MONEY[6:]},
    }
    return pa.Table.from_arrays([columns[f.name] for f in SCHEMA], schema=SCHEMA)


# --- parties, files, catalog ----------------------------------------------------------------


def party_names(parties: int, layout: str) -> list[str]:
    """``company1..companyP`` or ``platform1..platformP``."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    return [f"{layout}{i}" for i in range(1, parties + 1)]


def split_rows(rows: int, parties: int) -> list[int]:
    """Uneven deterministic split of ``rows`` over parties: weights 1/(1 + (i-1)/2), sum exact."""
    weights = np.array([1.0 / (1.0 + 0.5 * i) for i in range(parties)])
    exact = rows * weights / weights.sum()
    counts = np.floor(exact).astype(np.int64)
    remainder = rows - int(counts.sum())
    # Largest remainder; ties go to the earlier party.
    order = sorted(range(parties), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[:remainder]:
        counts[i] += 1
    return [int(c) for c in counts]


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string of printable text is a valid TOML basic string


#: public bounds of the money columns the queries sum: 10 million dollars either way, far beyond
#: any trip (the generator's outliers stay under 1 million, refunds are negated fares)
MONEY_RANGES: dict[str, tuple[float, float]] = {"fare_amount": (-1e7, 1e7)}


def write_catalog(
    out: Path,
    parties: Sequence[str],
    *,
    helper: bool | None = None,
    recipients: Sequence[str] | None = None,
    columns: dict[str, str] | None = None,
    vendor_ids: Sequence[int] | None = None,
    ranges: dict[str, tuple[float, float]] | None = None,
) -> Path:
    """Write ``out/catalog.toml`` naming ``out/<party>/trips.parquet`` for every data party.

    ``helper`` (default: exactly two data parties) adds a data-less compute party ``helper``
    so that MPyC has an honest majority. ``recipients`` defaults to the first party.
    ``vendor_ids``: the public list of VendorID codes (the TLC publishes its list: 1, 2, 6,
    7), declared as the column's domain, so a secure GROUP BY VendorID sums one-hot columns
    instead of sorting (compiler/passes/use_domains.py). Each party's job checks its data
    against it. ``ranges`` (default ``MONEY_RANGES``): public bounds of columns, declared in
    the catalog and checked by each party's job; the secure part then needs no overflow check
    of what they prove (a sum of fares, a share times 100).
    """
    out = Path(out)
    ranges = MONEY_RANGES if ranges is None else ranges
    parties = list(parties)
    if helper is None:
        helper = len(parties) == 2
    recipients = list(recipients) if recipients is not None else parties[:1]
    columns = columns if columns is not None else CATALOG_TYPES
    lines = ["# generated by sqlmpc.datasets.taxi: NYC TLC yellow-trip schema", ""]
    for p in parties + ([HELPER] if helper else []):
        lines.append(f"[parties.{p}]")
    lines += ["", f"[tables.{TABLE}]"]
    cols = ", ".join(f"{name} = {_toml_str(typ)}" for name, typ in columns.items())
    lines.append(f"columns = {{ {cols} }}")
    parts = ", ".join(f"{p} = {_toml_str(f'{p}/{FILE_NAME}')}" for p in parties)
    lines.append(f"parts = {{ {parts} }}")
    if vendor_ids:
        lines += ["", f"[tables.{TABLE}.domains]",
                  "# the public VendorID codes: the group-by per company sums one-hot columns",
                  f"VendorID = [{', '.join(str(int(v)) for v in vendor_ids)}]"]
    if ranges:
        lines += ["", f"[tables.{TABLE}.ranges]",
                  "# public bounds, checked by each party's job: sums of them need no secure "
                  "overflow check"]
        lines += [f"{c} = [{lo!r}, {hi!r}]" for c, (lo, hi) in ranges.items()]
    lines += ["", "[result]", f"recipients = [{', '.join(_toml_str(r) for r in recipients)}]", ""]
    path = out / "catalog.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _write_party(
    spec: _Spec, index: int, name: str, rows: int, out: Path, chunk_rows: int, quiet: bool
) -> int:
    """Write one party's file block by block; returns the number of rows written."""
    path = out / name / FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    written = 0
    buffered: list[pa.Table] = []
    n_buffered = 0
    with pq.ParquetWriter(tmp, SCHEMA, compression="zstd") as writer:

        def flush(table: pa.Table) -> None:
            nonlocal written
            writer.write_table(table, row_group_size=chunk_rows)
            written += table.num_rows
            if not quiet:
                print(f"{name}: {written:,}/{rows:,} rows", file=sys.stderr, flush=True)

        for block in range(-(-rows // BLOCK_ROWS)):
            n = min(BLOCK_ROWS, rows - block * BLOCK_ROWS)
            buffered.append(
                generate_block(
                    n,
                    seed=spec.seed,
                    party=index,
                    block=block,
                    layout=spec.layout,
                    companies=spec.companies,
                    month=spec.month,
                )
            )
            n_buffered += n
            while n_buffered >= chunk_rows:
                table = pa.concat_tables(buffered)
                flush(table.slice(0, chunk_rows))
                rest = table.slice(chunk_rows)
                buffered, n_buffered = [rest], rest.num_rows
        if n_buffered:
            flush(pa.concat_tables(buffered))
        if rows == 0:
            writer.write_table(SCHEMA.empty_table())
    os.replace(tmp, path)
    return written


def _write_party_star(args: tuple) -> int:
    return _write_party(*args)


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {number}")
    return number


def vendor_ids(parties: int, layout: str, companies: int = 5) -> list[int]:
    """The VendorID codes of generated data: one per company (party) or ``companies``."""
    return list(range(1, (parties if layout == "company" else companies) + 1))


def write_layout_catalog(out: Path, parties: int, layout: str, companies: int = 5) -> Path:
    """The catalog of generated data (``generate`` writes it; rewrite it for cached data)."""
    return write_catalog(out, party_names(parties, layout),
                         vendor_ids=vendor_ids(parties, layout, companies))


def generate(
    rows: int,
    parties: int,
    layout: str,
    out: Path,
    seed: int = 0,
    companies: int = 5,
    quiet: bool = True,
    *,
    month: str = "2023-01",
    chunk_rows: int = CHUNK_ROWS,
    jobs: int = 1,
) -> Path:
    """Write ``out/<party>/trips.parquet`` for every party and ``out/catalog.toml``.

    Returns the catalog path. The data depend only on (rows, parties, layout, seed, companies,
    month); ``chunk_rows`` (Parquet row-group size) and ``jobs`` (parties written in parallel
    processes) change neither the values nor the row order.
    """
    rows = _check_int("rows", rows, 0)
    parties = _check_int("parties", parties, 1)
    seed = _check_int("seed", seed, 0)
    companies = _check_int("companies", companies, 1)
    chunk_rows = _check_int("chunk_rows", chunk_rows, 1)
    jobs = _check_int("jobs", jobs, 1)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    _month_start(month)

    out = Path(out)
    spec = _Spec(rows, parties, layout, seed, companies, month)
    names = party_names(parties, layout)
    counts = split_rows(rows, parties)
    tasks = [
        (spec, i, name, n, out, chunk_rows, quiet)
        for i, (name, n) in enumerate(zip(names, counts, strict=True), start=1)
    ]
    t0 = time.perf_counter()
    if jobs == 1 or parties == 1:
        written = [_write_party_star(t) for t in tasks]
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, parties)) as pool:
            written = list(pool.map(_write_party_star, tasks))
    catalog = write_layout_catalog(out, parties, layout, companies)
    elapsed = time.perf_counter() - t0
    if not quiet:
        size = sum((out / n / FILE_NAME).stat().st_size for n in names)
        rate = sum(written) / elapsed if elapsed > 0 else float("inf")
        print(
            f"wrote {sum(written):,} rows ({layout} layout, {parties} parties: "
            + ", ".join(f"{n}={c:,}" for n, c in zip(names, written, strict=True))
            + f") {size / 1e6:,.1f} MB in {elapsed:.1f} s ({rate:,.0f} rows/s); "
            f"catalog {catalog}",
            file=sys.stderr,
        )
    return catalog


# --- command line ---------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _month(text: str) -> str:
    try:
        _month_start(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sqlmpc.datasets.taxi",
        description="Generate NYC-taxi-like yellow trip records, one Parquet file per party, "
        "and a catalog.toml.",
    )
    p.add_argument("--rows", type=_non_negative, required=True, help="total rows (all parties)")
    p.add_argument("--parties", type=_positive, required=True, help="number of data parties")
    p.add_argument("--layout", choices=LAYOUTS, required=True,
                   help="company: one company per party (VendorID = party index); "
                   "platform: each party holds trips of many companies")  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--seed", type=_non_negative, default=0, help="random seed (default 0)")
    p.add_argument("--companies", type=_positive, default=5,
                   help="companies (VendorIDs) in the platform layout (default 5)")  # fmt: skip
    p.add_argument("--month", type=_month, default="2023-01",
                   help="month of the pickups, YYYY-MM (default 2023-01)")  # fmt: skip
    p.add_argument("--chunk-rows", type=_positive, default=CHUNK_ROWS,
                   help=f"rows per Parquet row group / write chunk (default {CHUNK_ROWS})")  # fmt: skip
    p.add_argument("--jobs", type=_positive, default=1,
                   help="parties written in parallel processes (default 1)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress or summary on stderr")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        generate(
            args.rows,
            args.parties,
            args.layout,
            args.out,
            seed=args.seed,
            companies=args.companies,
            quiet=args.quiet,
            month=args.month,
            chunk_rows=args.chunk_rows,
            jobs=args.jobs,
        )
    except (OSError, TypeError, ValueError) as exc:
        print(f"sqlmpc.datasets.taxi: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
