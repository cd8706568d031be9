"""Small deterministic data sets for the differential and failure tests.

Each generator writes one CSV file per (party, table) and a ``catalog.toml`` in the DESIGN.md
format into a folder, and returns the catalog's path. The output is a pure function of the
seed (numpy's seeded generator; no clock, no hashing of Python objects).

    from sqlmpc.datasets.testdata import generate_all
    catalogs = generate_all(Path("/tmp/testdata"))   # {"taxi": path, "medical": path, "pay": path}

Families (see ../shared/reference/peers.md):

``taxi``     three taxi companies (yellow, green, blue), table ``trips``
             (vendor text, fare decimal(10,2), distance float, pickup date, passengers int);
             includes refunds (negative fares), an exact duplicate row and a zero-distance trip.
``medical``  two hospitals (hosp_a, hosp_b); the compiler adds a helper compute party.
             ``diagnoses`` (patient_id int, code text, day date) and ``medications``
             (patient_id int, drug text, dose float); patient ids overlap across hospitals.
``pay``      four employers (emp1..emp4), table ``pay`` (gender text, ethnicity text,
             job_level int, salary decimal(12,2), tenure float, full_time bool); emp4's part is
             empty (header only); includes duplicate rows.

Keep them small: every row that enters MPC costs time in the secure part. The drug names are
up to 20 bytes long, so secret texts of several 7-byte pieces are exercised.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

SEED = 20240611


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header)] + [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def _money(x: float) -> str:
    return f"{x:.2f}"


def _flt(x: float) -> str:
    return repr(float(x))


def _day(base: dt.date, offset: int) -> str:
    return (base + dt.timedelta(days=int(offset))).isoformat()


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


# --- taxi -----------------------------------------------------------------------------------
TAXI_PARTIES = {"yellow": 24, "green": 18, "blue": 14}
TAXI_COLUMNS = {"vendor": "text", "fare": "decimal(10,2)", "distance": "float",
                "pickup": "date", "passengers": "int"}


def generate_taxi(out: Path, seed: int = SEED, rows: int | None = None) -> Path:
    out = Path(out)
    rng = np.random.default_rng([seed, 1])
    base = dt.date(2024, 3, 1)
    parts = {}
    sizes = {p: rows or n for p, n in TAXI_PARTIES.items()}
    for i, (party, n) in enumerate(sizes.items()):
        rows = []
        vendors = ["CMT", "VTS", "DDS"]
        for r in range(n):
            distance = round(float(rng.lognormal(0.8, 0.6)), 2)
            fare = round(3.0 + 2.5 * distance + float(rng.normal(0, 1.5)), 2)
            if r % 9 == 4:  # refunds
                fare = -abs(fare)
            if r == 2:
                distance = 0.0
            pickup = _day(base, rng.integers(0, 31))
            passengers = int(rng.choice([1, 1, 1, 2, 2, 3, 4, 5, 6]))
            vendor = vendors[int(rng.integers(0, 3))] if party != "blue" else "DDS"
            rows.append([vendor, _money(fare), _flt(distance), pickup, str(passengers)])
        rows.append(list(rows[1]))  # an exact duplicate
        path = out / party / "trips.csv"
        _write_csv(path, list(TAXI_COLUMNS), rows)
        parts[party] = f"{party}/trips.csv"
    text = "".join(f"[parties.{p}]\n" for p in TAXI_PARTIES)
    text += "\n[tables.trips]\ncolumns = { " + ", ".join(
        f'{c} = "{t}"' for c, t in TAXI_COLUMNS.items()) + " }\n"
    text += "parts = { " + ", ".join(f'{p} = "{f}"' for p, f in parts.items()) + " }\n"
    cat = out / "catalog.toml"
    cat.write_text(text)
    return cat


# --- medical --------------------------------------------------------------------------------
MEDICAL_PARTIES = {"hosp_a": (16, 12), "hosp_b": (12, 10)}
DIAG_COLUMNS = {"patient_id": "int", "code": "text", "day": "date"}
MED_COLUMNS = {"patient_id": "int", "drug": "text", "dose": "float"}


def generate_medical(out: Path, seed: int = SEED, rows: int | None = None) -> Path:
    out = Path(out)
    rng = np.random.default_rng([seed, 2])
    base = dt.date(2023, 1, 1)
    codes = ["I21", "E11", "J45", "C50", "I10"]
    # drug names longer than 7 bytes exercise multi-piece secret texts (encoding.py)
    drugs = ["aspirin", "heparin sodium", "insulin glargine", "atorvastatin calcium"]
    diag_parts, med_parts = {}, {}
    sizes = {p: (rows, rows) if rows else n for p, n in MEDICAL_PARTIES.items()}
    span = max(20, (rows or 0) // 4)  # about 4 rows per patient and table at any size
    for h, (party, (nd, nm)) in enumerate(sizes.items()):
        # patients 100..119 at hosp_a, 110..129 at hosp_b: 110..119 at both (by default)
        lo = 100 + (span // 2) * h
        drows = []
        for _ in range(nd):
            drows.append([str(int(rng.integers(lo, lo + span))), codes[int(rng.integers(0, 5))],
                          _day(base, rng.integers(0, 365))])
        drows.append(list(drows[0]))  # duplicate diagnosis row
        mrows = []
        for _ in range(nm):
            mrows.append([str(int(rng.integers(lo, lo + span))), drugs[int(rng.integers(0, 4))],
                          _flt(round(float(rng.uniform(0.5, 40.0)), 3))])
        _write_csv(out / party / "diagnoses.csv", list(DIAG_COLUMNS), drows)
        _write_csv(out / party / "medications.csv", list(MED_COLUMNS), mrows)
        diag_parts[party] = f"{party}/diagnoses.csv"
        med_parts[party] = f"{party}/medications.csv"
    text = "".join(f"[parties.{p}]\n" for p in MEDICAL_PARTIES)
    for name, cols, parts in (("diagnoses", DIAG_COLUMNS, diag_parts),
                              ("medications", MED_COLUMNS, med_parts)):
        text += f"\n[tables.{name}]\ncolumns = {{ " + ", ".join(
            f'{c} = "{t}"' for c, t in cols.items()) + " }\n"
        text += "parts = { " + ", ".join(f'{p} = "{f}"' for p, f in parts.items()) + " }\n"
    cat = out / "catalog.toml"
    cat.write_text(text)
    return cat


# --- pay equity -----------------------------------------------------------------------------
PAY_PARTIES = {"emp1": 14, "emp2": 12, "emp3": 10, "emp4": 0}
PAY_COLUMNS = {"gender": "text", "ethnicity": "text", "job_level": "int",
               "salary": "decimal(12,2)", "tenure": "float", "full_time": "bool"}


def generate_pay(out: Path, seed: int = SEED, rows: int | None = None) -> Path:
    out = Path(out)
    rng = np.random.default_rng([seed, 3])
    parts = {}
    sizes = {p: (rows if rows and n else n) for p, n in PAY_PARTIES.items()}  # emp4 stays empty
    for party, n in sizes.items():
        rows = []
        for _ in range(n):
            gender = ["F", "M"][int(rng.integers(0, 2))]
            eth = ["Asian", "Black", "Latino", "White"][int(rng.integers(0, 4))]
            level = int(rng.integers(1, 4))
            salary = round(30000 + 15000 * level + float(rng.normal(0, 6000)), 2)
            tenure = round(float(rng.uniform(0, 20)), 1)
            full = bool(rng.random() < 0.8)
            rows.append([gender, eth, str(level), _money(salary), _flt(tenure),
                         "true" if full else "false"])
        if rows:
            rows.append(list(rows[-1]))  # duplicate
        _write_csv(out / party / "pay.csv", list(PAY_COLUMNS), rows)
        parts[party] = f"{party}/pay.csv"
    text = "".join(f"[parties.{p}]\n" for p in PAY_PARTIES)
    text += "\n[tables.pay]\ncolumns = { " + ", ".join(
        f'{c} = "{t}"' for c, t in PAY_COLUMNS.items()) + " }\n"
    text += "parts = { " + ", ".join(f'{p} = "{f}"' for p, f in parts.items()) + " }\n"
    text += f"\n[result]\nrecipients = {_toml_list(['emp1'])}\n"
    cat = out / "catalog.toml"
    cat.write_text(text)
    return cat


GENERATORS = {"taxi": generate_taxi, "medical": generate_medical, "pay": generate_pay}


def generate_all(out: Path, seed: int = SEED, rows: int | None = None) -> dict[str, Path]:
    """Every data set in its own sub-folder of `out`; {name: catalog path}. ``rows`` (optional)
    gives every party that many rows per table instead of the small defaults."""
    return {name: gen(Path(out) / name, seed, rows) for name, gen in GENERATORS.items()}


if __name__ == "__main__":  # pragma: no cover
    import sys
    for name, path in generate_all(Path(sys.argv[1] if len(sys.argv) > 1 else "testdata")).items():
        print(name, path)
