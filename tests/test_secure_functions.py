"""Secure SQL functions: EXTRACT / DATE_TRUNC / INTERVAL months on secret dates, LIKE on
secret texts, MEDIAN / PERCENTILE per group, COUNT(DISTINCT) FILTER across parties.

Protocol tests run the operators of backends/mpyc/lib (intdiv.py, dates.py, text_match.py,
window.py) in this process (one MPyC party) against Python's datetime, plain string tests
and DuckDB; one slow test runs them with 3 MPyC parties. Differential tests (slow) run
`sqlmpc run` with 3 parties and compare with DuckDB over the union of the parts, on a small
data set of dates around leap days, month ends and century years, and texts of 0 to 20
bytes.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from mpc_helpers import obj, run
from mpyc.runtime import mpc

import sqlmpc
from sqlmpc.backends.mpyc import ops
from sqlmpc.backends.mpyc.codegen import render_secure_job
from sqlmpc.backends.mpyc.lib import dates, encoding, intdiv, text_match
from sqlmpc.backends.mpyc.lib.window import window
from sqlmpc.compiler.catalog import Catalog
from sqlmpc.compiler.errors import UnsupportedError
from sqlmpc.compiler.planner import compile_query

secfxp = mpc.SecFxp(96, 32)
EPOCH = dt.date(1970, 1, 1)
WIDE = (-(1 << 31), 1 << 31)  # the range the compiler gives a date column (bounds.py)


def days(d: dt.date) -> int:
    return (d - EPOCH).days


def date_range(a: dt.date, b: dt.date) -> list[int]:
    return list(range(days(a), days(b) + 1))


#: every day around the leap days of 1900 (none), 2000 and 2024, around New Year 1970
#: (negative days), and every month's first and last day of 1995 .. 2005
CALENDAR_DAYS = sorted(set(
    date_range(dt.date(1899, 12, 20), dt.date(1900, 3, 5))
    + date_range(dt.date(1999, 12, 20), dt.date(2000, 3, 5))
    + date_range(dt.date(2023, 12, 20), dt.date(2024, 3, 5))
    + date_range(dt.date(1969, 12, 1), dt.date(1970, 1, 31))
    + [days(dt.date(y, m, d)) for y in range(1995, 2006) for m in range(1, 13)
       for d in (1, calendar.monthrange(y, m)[1])]
    + [days(dt.date(1, 1, 1)), days(dt.date(9999, 12, 31)), days(dt.date(1600, 2, 29))]))
MONTH_STEPS = (1, -1, 12, -13, 25)


def add_months(d: dt.date, n: int) -> dt.date:
    year, month = divmod(d.year * 12 + d.month - 1 + n, 12)
    return dt.date(year, month + 1, min(d.day, calendar.monthrange(year, month + 1)[1]))


def calendar_expected(x: int) -> dict[str, int]:
    """What each secure calendar function must give for day x (Python's datetime)."""
    d = EPOCH + dt.timedelta(days=x)
    want = {"year": d.year, "month": d.month, "day": d.day, "quarter": (d.month - 1) // 3 + 1,
            "doy": d.timetuple().tm_yday, "dow": d.isoweekday() % 7, "isodow": d.isoweekday(),
            "month_start": days(d.replace(day=1)), "year_start": days(d.replace(month=1, day=1)),
            "quarter_start": days(d.replace(month=(d.month - 1) // 3 * 3 + 1, day=1))}
    for n in MONTH_STEPS:
        if 1 <= d.year + n // 12 - 1 and d.year + n // 12 + 1 <= 9999:
            want[f"plus{n}"] = days(add_months(d, n))
    return want


async def secure_calendar(values: list[int], lo: int, hi: int) -> dict[str, list[int]]:
    """Every secure calendar function over the secret days `values`, opened."""
    x = secfxp.array(np.array(values, dtype=object))
    x.integral = True
    c = dates.civil(x, lo, hi)
    outs = {"year": c.year, "month": c.month, "day": c.day, "quarter": dates.quarter(c),
            "doy": dates.day_of_year(c), "dow": dates.day_of_week(x, lo, hi),
            "isodow": dates.day_of_week(x, lo, hi, iso=True),
            "month_start": dates.trunc(c, "month"), "year_start": dates.trunc(c, "year"),
            "quarter_start": dates.trunc(c, "quarter")}
    for n in MONTH_STEPS:
        outs[f"plus{n}"] = dates.add_months(c, n)
    return {k: [int(v) for v in await mpc.output(a)] for k, a in outs.items()}


def mismatches(values: list[int], got: dict[str, list[int]]) -> list[tuple]:
    bad = []
    for i, x in enumerate(values):
        for k, v in calendar_expected(x).items():
            if got[k][i] != v:
                bad.append((str(EPOCH + dt.timedelta(days=x)), k, got[k][i], v))
    return bad


# --- exact division ----------------------------------------------------------------------------
def test_divisor_plan_is_exact_over_its_whole_range():
    """The magic multiplier gives floor(x / c) for every x of a range (checked exhaustively
    on small ranges, at the ends of wide ones)."""
    for c in (1, 2, 3, 5, 7, 12, 31, 153, 365, 1460, 4800, 36524, 146096, 146097):
        for lo, hi in ((-3000, 3000), (0, 146096), (-(1 << 31), 1 << 31)):
            _, base, m, s, _ = intdiv.divisor_plan(c, lo, hi)
            xs = range(lo, hi + 1) if hi - lo <= 6000 else \
                [lo, lo + 1, hi - 1, hi] + [random.Random(c).randint(lo, hi) for _ in range(500)]
            assert all(((x - base) * m >> s) + base // c == x // c for x in xs), (c, lo, hi)


def test_floor_divide_secret_values():
    rng = random.Random(1)
    values = [rng.randint(-(1 << 31), 1 << 31) for _ in range(60)] + [0, -1, 1, -(1 << 31)]
    divisors = (1, 7, 365, 146097, 1 << 20)

    async def body():
        x = secfxp.array(np.array(values, dtype=object))
        x.integral = True
        qs = intdiv.floor_divide_many([(x, c, *WIDE) for c in divisors])
        return [[int(v) for v in await mpc.output(q)] for q in qs]
    for c, got in zip(divisors, run(body)):
        assert got == [v // c for v in values], c


# --- calendar functions ------------------------------------------------------------------------
def test_calendar_functions_match_python_datetime():
    """Year, month, day, quarter, day of year and week, DATE_TRUNC and +/- months on every day
    around leap days and month ends (1 party, the compiler's range of dates)."""
    got = run(lambda: secure_calendar(CALENDAR_DAYS, *WIDE))
    assert mismatches(CALENDAR_DAYS, got) == []


def test_calendar_functions_on_a_narrow_range():
    """A tight public range (keyspec's type range of dates) gives the same answers."""
    values = date_range(dt.date(2000, 2, 20), dt.date(2000, 3, 2)) + [-(1 << 19), (1 << 19) - 1]
    got = run(lambda: secure_calendar(values, -(1 << 19), (1 << 19) - 1))
    assert mismatches(values, got) == []


def test_plain_calendar_functions_match_python_datetime():
    """The recipients' / public columns' versions, on day numbers and on dates."""
    for x in CALENDAR_DAYS[::7]:
        want = calendar_expected(x)
        d = EPOCH + dt.timedelta(days=x)
        for part in ("year", "month", "day", "quarter", "doy", "dow", "isodow"):
            assert dates.plain_date_part(part, x) == want[part] == \
                dates.plain_date_part(part, [d])[0]
        assert dates.plain_trunc("month", x) == want["month_start"]
        assert dates.plain_trunc("year", [d])[0] == EPOCH + dt.timedelta(want["year_start"])
        if "plus1" in want:
            assert dates.plain_add_months(x, 1) == want["plus1"]


# --- LIKE ----------------------------------------------------------------------------------------
TEXTS = ["", "a", "ap", "apple", "apples!", "apple pie", "apricot tart", "banana split",
         "Apple", "é", "éclair", "abcdefg", "abcdefgh", "abcdefghijklmn", "ab_c%"]
PATTERNS = [("equal", ""), ("equal", "apple"), ("equal", "abcdefg"), ("equal", "abcdefgh"),
            ("equal", "a" * 30), ("prefix", ""), ("prefix", "a"), ("prefix", "ap"),
            ("prefix", "apple"), ("prefix", "apple "), ("prefix", "abcdefg"),
            ("prefix", "abcdefgh"), ("prefix", "é"), ("prefix", "abcdefghijklmno"),
            ("prefix", "ab_c")]


def test_like_matches_python_strings():
    async def body():
        pieces = [secfxp.array(p) for p in encoding.encode_text(TEXTS)]
        out = {}
        for kind, text in PATTERNS:
            r = text_match.like(pieces, kind, text)
            out[kind, text] = [int(v) for v in await mpc.output(r)]
        return out
    for (kind, text), got in run(body).items():
        want = [int(v == text if kind == "equal" else v.startswith(text)) for v in TEXTS]
        assert got == want, (kind, text)


# --- MEDIAN / PERCENTILE per group ---------------------------------------------------------------
@pytest.mark.parametrize("func, p", [("percentile_cont", 0.5), ("percentile_cont", 0.1),
                                      ("percentile_cont", 1.0), ("percentile_disc", 0.5),
                                      ("percentile_disc", 0.0), ("percentile_disc", 0.75)])
def test_group_quantiles_match_duckdb(func, p):
    """Groups of several sizes (one with only NULLs, one whose key is NULL beside the key 0),
    NULL values and filtered-out rows."""
    import duckdb
    rng = random.Random(int(p * 100) + len(func))
    # keys up to 0: the NULL key's rows (value 0, flag 1) sort right after the key 0's
    rows = [(rng.randint(-4, -1), rng.randint(-9, 9), i, rng.random() < 0.75,
             rng.random() < 0.2) for i in range(17)] + \
        [(-5, 5, 17, True, True), (-6, 3, 18, False, False), (0, 2, 19, True, False),
         (0, 8, 20, True, False), (None, 7, 21, True, False), (None, 1, 22, True, False)]
    con = duckdb.connect()
    con.execute("CREATE TABLE t (g INT, v INT, i INT, ok BOOL, missing BOOL)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", rows)
    want = dict(con.execute(
        f"SELECT g, {func.replace('percentile', 'quantile')}(CASE WHEN missing THEN NULL "
        f"ELSE v END, {p}) FROM t WHERE ok GROUP BY g").fetchall())

    async def body():
        t = await ops.share_input(
            secfxp, obj([(r[0] or 0, int(r[0] is None)) + r[1:3] + (int(r[4]),) for r in rows],
                        5), ["g", "g~null", "v", "i", "v~null"], [0], integral=[True] * 5,
            types=["int", "bool", "int", "int", "bool"])
        t = ops.filter_rows(t, ops.const(secfxp, [int(r[3]) for r in rows]))
        w = window(t, ["g"], [], [("q", func, "v", p)])
        got = await ops.reveal(w, [0], ["g", "g~null", "q", "q~null"], ordered=False)
        return [(None if int(gn) else int(g), None if int(f) else round(float(q), 6))
                for g, gn, q, f in got.tolist()]
    got = run(body)
    expected = {g: None if v is None else round(float(v), 6) for g, v in want.items()}
    assert dict(got) == expected
    assert len(got) == sum(r[3] for r in rows)  # every valid row carries its group's value


# --- the compiler: what runs in MPC, what is refused ----------------------------------------------
@pytest.fixture(scope="module")
def tiny() -> Catalog:
    return Catalog.load(os.path.join(os.path.dirname(__file__), "fixtures", "tiny",
                                     "catalog.toml"))


def secure_texts(plan) -> list[str]:
    return [plan.dag.op(n).text for n in plan.dag.topo()
            if plan.dag.attr(n, "placement") == "secure" and getattr(plan.dag.op(n), "text", "")]


def test_calendar_and_like_compile_into_mpc(tiny):
    plan = compile_query(
        "SELECT vendor, YEAR(MAX(pickup)) AS y, EXTRACT(DOW FROM MAX(pickup)) AS w, "
        "DATE_TRUNC('quarter', MAX(pickup)) AS q, MAX(pickup) + INTERVAL '2' YEAR AS later "
        "FROM trips GROUP BY vendor HAVING vendor NOT LIKE 'Y%'", tiny)
    texts = " ".join(secure_texts(plan))
    assert "NOT LIKE 'Y%'" in texts and "ADD_MONTHS" in texts and "YEAR(" in texts
    program = render_secure_job(plan)
    assert "ops.add_months(" in program and "ops.like(" in program
    assert program.count("ops.civil(") == 1  # one conversion of MAX(pickup) for all parts
    explained = sqlmpc.explain_sql(plan.sql, tiny.path)
    assert "rounds of exact divisions by public constants" in explained
    assert "nothing from NOT LIKE inside MPC" in explained


@pytest.mark.parametrize("sql, message", [
    ("SELECT vendor FROM trips GROUP BY vendor HAVING vendor LIKE '%Y%'",
     "LIKE '%Y%' on trips.vendor, whose rows come from green, yellow: not available inside "
     "MPC (inside MPC only LIKE 'abc' and LIKE 'abc%' (a prefix) are available)"),
    ("SELECT vendor FROM trips GROUP BY vendor HAVING vendor LIKE 'Y_'",
     "LIKE 'Y_' on trips.vendor"),
    ("SELECT vendor FROM trips GROUP BY vendor HAVING vendor NOT LIKE 'a%b'",
     "NOT LIKE 'a%b' on trips.vendor"),
    ("SELECT EXTRACT(EPOCH FROM MAX(pickup)) AS e FROM trips",
     "EXTRACT on __agg0, whose rows come from green, yellow: not available inside MPC "
     "(inside MPC EXTRACT of YEAR, QUARTER, MONTH, DAY, DOW, ISODOW or DOY)"),
    ("SELECT DATE_TRUNC('hour', MAX(pickup)) AS e FROM trips", "DATE_TRUNC('hour'"),
    ("SELECT YEAR(MAX(vendor)) AS e FROM trips", "(inside MPC it applies to a date)"),
])
def test_other_patterns_and_parts_are_refused_with_their_position(tiny, sql, message):
    with pytest.raises(UnsupportedError) as info:
        compile_query("\n" + sql, tiny)
    text = str(info.value)
    if "DATE_TRUNC" in message:
        assert "DATE_TRUNC" in text and "'day', 'week', 'month', 'quarter' or 'year'" in text
    else:
        assert message in text
    assert info.value.line == 2 and info.value.col > 1
    assert "\n" not in text.split(" at line")[0]


def test_count_distinct_filter_counts_values_not_the_null_group(tiny):
    """COUNT(DISTINCT x) FILTER (WHERE ...): x is NULL on the rows the filter drops; the
    DISTINCT keeps them as one NULL row, which the count must skip, and the NULL flag must
    travel with the shared rows."""
    plan = compile_query("SELECT COUNT(DISTINCT vendor) FILTER (WHERE fare > 8) AS v "
                         "FROM trips", tiny)
    shares = [o for job in plan.local_jobs.values() for o in job.outputs if o.kind == "share"]
    assert shares and all(o.nullable for o in shares)  # the NULL flag column is shared
    assert "'count', '__arg0'" in render_secure_job(plan)


def test_group_medians_compile_into_mpc(tiny):
    plan = compile_query("SELECT vendor, MEDIAN(fare) AS m, PERCENTILE_DISC(0.9) WITHIN GROUP "
                         "(ORDER BY pickup) AS late FROM trips GROUP BY vendor", tiny)
    program = render_secure_job(plan)
    assert "'percentile_cont'" in program and "'percentile_disc'" in program


# --- 3 MPyC parties ------------------------------------------------------------------------------
THREE_PARTIES = textwrap.dedent('''
    import json, os, sys
    import numpy as np
    from mpyc.runtime import mpc
    from sqlmpc.backends.mpyc.lib import dates, encoding, text_match

    DAYS = json.loads(os.environ["DAYS"])
    TEXTS = json.loads(os.environ["TEXTS"])

    async def main():
        secfxp = mpc.SecFxp(96, 32)
        await mpc.start()
        mine = np.array(DAYS, dtype=object) if mpc.pid == 1 else None
        x = mpc.input(secfxp.array(mine) if mine is not None else
                      secfxp.array(np.zeros(len(DAYS), dtype=object)), senders=1)
        x.integral = True
        c = dates.civil(x, -(1 << 31), 1 << 31)
        outs = {"year": c.year, "month": c.month, "day": c.day, "plus1": dates.add_months(c, 1),
                "minus13": dates.add_months(c, -13), "year_start": dates.trunc(c, "year"),
                "dow": dates.day_of_week(x, -(1 << 31), 1 << 31)}
        res = {k: [int(v) for v in await mpc.output(a)] for k, a in outs.items()}
        pieces = [secfxp.array(p) for p in encoding.encode_text(TEXTS)]
        pieces = [mpc.input(p, senders=2) for p in pieces]
        for kind, text in (("prefix", "ap"), ("equal", "apple"), ("prefix", "abcdefgh")):
            r = text_match.like(pieces, kind, text)
            res[kind + ":" + text] = [int(v) for v in await mpc.output(r)]
        await mpc.shutdown()
        with open(os.path.join(os.environ["OUT_DIR"], f"party{mpc.pid}.json"), "w") as fh:
            json.dump(res, fh)

    mpc.run(main())
''')


@pytest.mark.slow
def test_three_parties_compute_the_same(tmp_path):
    """The bit extractions and daBits with 3 parties (threshold 1), not one."""
    values = date_range(dt.date(1999, 12, 25), dt.date(2000, 3, 3)) + \
        [days(dt.date(1900, 2, 28)), days(dt.date(2024, 1, 31)), days(dt.date(1969, 12, 31))]
    script = tmp_path / "three.py"
    script.write_text(THREE_PARTIES)
    env = dict(os.environ, OUT_DIR=str(tmp_path), DAYS=json.dumps(values),
               TEXTS=json.dumps(TEXTS))
    proc = subprocess.run([sys.executable, str(script), "-M3", "--no-log"], env=env,
                          capture_output=True, text=True, timeout=170, cwd=tmp_path,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads((tmp_path / "party0.json").read_text())
    for i, x in enumerate(values):
        d = EPOCH + dt.timedelta(days=x)
        assert (got["year"][i], got["month"][i], got["day"][i]) == (d.year, d.month, d.day)
        assert got["plus1"][i] == days(add_months(d, 1))
        assert got["minus13"][i] == days(add_months(d, -13))
        assert got["year_start"][i] == days(d.replace(month=1, day=1))
        assert got["dow"][i] == d.isoweekday() % 7
    assert got["prefix:ap"] == [int(t.startswith("ap")) for t in TEXTS]
    assert got["equal:apple"] == [int(t == "apple") for t in TEXTS]
    assert got["prefix:abcdefgh"] == [int(t.startswith("abcdefgh")) for t in TEXTS]


# --- differential: sqlmpc run (3 parties) vs DuckDB over the union --------------------------------
EVENT_DAYS = ["2024-01-31", "2024-02-29", "2023-01-31", "2023-02-28", "2000-02-29", "1900-02-28",
              "1900-03-01", "1999-12-31", "2100-02-28", "2024-12-31", "1969-12-31", "1970-01-01",
              "2024-03-31", "2024-05-31", "1600-02-29", "2023-12-31", "2001-03-01", "2020-08-31"]
NOTES = ["apple", "apricot tart", "ap", "b", "banana split", "Apple", "apple pie a la mode",
         "éclair", "apples", "a"]


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    """3 parties, each its part of events (id, grp, note, day, amount)."""
    root = tmp_path_factory.mktemp("events")
    rng = random.Random(7)
    parties = ["east", "west", "north"]
    for k, party in enumerate(parties):
        (root / party).mkdir()
        lines = ["id,grp,note,day,amount"]
        for i in range(k, len(EVENT_DAYS), 3):
            lines.append(f"{i},{i % 3},{NOTES[i % len(NOTES)]},{EVENT_DAYS[i]},"
                         f"{rng.randint(-500, 5000) / 100:.2f}")
        (root / party / "events.csv").write_text("\n".join(lines) + "\n")
    parts = ", ".join(f'{p} = "{p}/events.csv"' for p in parties)
    (root / "catalog.toml").write_text(
        "".join(f"[parties.{p}]\n" for p in parties) +
        '\n[tables.events]\ncolumns = { id = "int", grp = "int", note = "text", day = "date", '
        f'amount = "decimal(10,2)" }}\nparts = {{ {parts} }}\n')
    return root / "catalog.toml"


DIFFERENTIAL = [
    pytest.param("""SELECT id, EXTRACT(YEAR FROM day) AS y, MONTH(day) AS m, DAY(day) AS d,
                           QUARTER(day) AS q, DAYOFWEEK(day) AS dw, ISODOW(day) AS iw,
                           DAYOFYEAR(day) AS dy FROM events""", True, id="date-parts"),
    pytest.param("""SELECT id, CAST(DATE_TRUNC('month', day) AS DATE) AS tm,
                           CAST(DATE_TRUNC('year', day) AS DATE) AS ty,
                           CAST(DATE_TRUNC('week', day) AS DATE) AS tw,
                           CAST(day + INTERVAL '1' MONTH AS DATE) AS next_month,
                           CAST(day - INTERVAL 1 MONTH AS DATE) AS last_month,
                           CAST(day + INTERVAL '1' YEAR AS DATE) AS next_year,
                           CAST(day - INTERVAL '13' MONTH AS DATE) AS back13 FROM events""",
                 True, id="date-trunc-and-months"),
    pytest.param("""SELECT grp, YEAR(MAX(day)) AS y, CAST(MIN(day) + INTERVAL '1' MONTH AS DATE)
                           AS after_first, COUNT(*) AS n FROM events GROUP BY grp""", False,
                 id="calendar-after-aggregate"),
    pytest.param("""SELECT id, note LIKE 'ap%' AS ap, note NOT LIKE 'apple' AS not_apple,
                           CASE WHEN note LIKE 'apple pie%' THEN 1 ELSE 0 END AS pie
                    FROM events WHERE note LIKE 'a%' OR note LIKE 'b'""", True, id="like"),
    pytest.param("""SELECT grp, COUNT(DISTINCT note) FILTER (WHERE amount > 10) AS notes,
                           COUNT(DISTINCT grp) FILTER (WHERE amount < 0) AS g, COUNT(*) AS n
                    FROM events GROUP BY grp""", False, id="count-distinct-filter"),
    pytest.param("""SELECT CASE WHEN amount > 10 THEN grp END AS g, COUNT(*) AS n
                    FROM events GROUP BY CASE WHEN amount > 10 THEN grp END""", False,
                 id="null-group-key"),
    # DuckDB's MEDIAN of a DECIMAL is a DECIMAL cut towards zero; sqlmpc's is a DOUBLE
    pytest.param("""SELECT grp, MEDIAN(CAST(amount AS DOUBLE)) AS med, PERCENTILE_DISC(0.25) WITHIN GROUP
                           (ORDER BY day) AS early FROM events GROUP BY grp""", False,
                 id="median-per-group"),
]


@pytest.mark.slow
@pytest.mark.parametrize("sql, all_secure", DIFFERENTIAL)
def test_matches_duckdb(events, reference, same_result, sql, all_secure, tmp_path):
    result = sqlmpc.run_sql(sql, events, engine="duckdb", all_secure=all_secure, quiet=True,
                            workdir=tmp_path)
    same_result(result, reference(events, sql), False)
