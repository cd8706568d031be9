"""No silent overflow inside MPC (issue 13): compile-time bounds, secure checks that open one
bit, and error messages that name the operation, never a value."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from mpyc.runtime import mpc

import sqlmpc
from sqlmpc.backends.mpyc.codegen import render_secure_job
from sqlmpc.backends.mpyc.lib import overflow
from sqlmpc.backends.mpyc.lib.table import const
from sqlmpc.compiler.analyses.bounds import (PART_ROWS, Bounds, fits, type_bound,
                                             unproven_operations)
from sqlmpc.compiler.ir.dag import Aggregate, Project

CATALOG = """
[parties.a]
[parties.b]
[parties.c]

[tables.x]
columns = {{ k = "int", d = "{dtype}" }}
parts = {{ a = "x.csv" }}

[tables.y]
columns = {{ k = "int", d = "{dtype}" }}
parts = {{ b = "y.csv" }}

[tables.z]
columns = {{ v = "int", small = "decimal(10,2)" }}
parts = {{ a = "za.csv", b = "zb.csv" }}

[result]
recipients = ["c"]
"""

LIMIT = 1 << 63
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.name for p in (ROOT / "examples").iterdir()
                  if (p / "query.sql").is_file() and (p / "catalog.toml").is_file())


def _catalog(tmp_path, x_d="1000000000000000", y_d="4000000000000000",
             z=("9000000000000000000", "9000000000000000000"), dtype="decimal(20,2)"):
    (tmp_path / "catalog.toml").write_text(CATALOG.format(dtype=dtype))
    (tmp_path / "x.csv").write_text(f"k,d\n1,{x_d}\n")
    (tmp_path / "y.csv").write_text(f"k,d\n1,{y_d}\n")
    (tmp_path / "za.csv").write_text(f"v,small\n{z[0]},1.50\n")
    (tmp_path / "zb.csv").write_text(f"v,small\n{z[1]},2.25\n")
    return tmp_path / "catalog.toml"


def _run(sql: str, catalog, *extra: str) -> subprocess.CompletedProcess:
    q = catalog.parent / "q.sql"
    q.write_text(sql)
    return subprocess.run([sys.executable, "-m", "sqlmpc", "run", str(q), "--catalog",
                           str(catalog), "--out", str(catalog.parent / "r.csv"), *extra],
                          capture_output=True, text=True, timeout=300)


# --- the bounds analysis -------------------------------------------------------------------

def test_type_bounds():
    assert type_bound("decimal(20,2)") == (Fraction(10) ** 18, Fraction(1, 100))
    assert type_bound("int") == (Fraction(1 << 63), Fraction(1))
    assert type_bound("float") == (None, None)
    assert not fits(None, LIMIT) and fits(Fraction(LIMIT), LIMIT)
    assert not fits(Fraction(LIMIT + 1), LIMIT)


def test_bounds_of_a_product_and_its_sum(tmp_path):
    plan = sqlmpc.compile_sql("SELECT SUM(x.d * y.d) AS s FROM x JOIN y ON x.k = y.k",
                              _catalog(tmp_path))
    b = Bounds(plan.dag, share_limit=LIMIT)
    proj = next(n for n in plan.dag.topo() if isinstance(plan.dag.op(n), Project)
                and plan.dag.attr(n, "placement") == "secure"
                and "*" in plan.dag.op(n).text)  # the product, not the join's narrowing
    (col,) = plan.dag.names(proj)
    assert b.value(proj, col) == Fraction(10) ** 36  # |d| < 10^18 on both sides
    agg = next(n for n in plan.dag.topo() if isinstance(plan.dag.op(n), Aggregate))
    (out,) = [a.name for a in plan.dag.op(agg).aggs]
    assert b.value(agg, out) == b.total(proj, col) and not fits(b.value(agg, out), LIMIT)


def test_bounds_of_a_local_sum_use_the_part_rows(tmp_path):
    plan = sqlmpc.compile_sql("SELECT SUM(small) AS s FROM z", _catalog(tmp_path))
    b = Bounds(plan.dag, share_limit=LIMIT)
    root = plan.dag.topo()[-1]
    (col,) = plan.dag.names(root)
    # two parts, each < 2^31 rows of |small| < 10^8
    assert b.value(root, col) == 2 * PART_ROWS * Fraction(10) ** 8
    assert fits(b.value(root, col), LIMIT)


def test_bounds_of_expressions(tmp_path):
    from sqlglot import parse_one

    from sqlmpc.compiler.analyses.bounds import expression_bound
    cols = {"a": (Fraction(10), Fraction(100), Fraction(1, 100)),
            "b": (Fraction(3), Fraction(30), Fraction(1))}
    rows = Fraction(10)
    assert expression_bound(parse_one("a + b"), cols, rows)[0] == 13
    assert expression_bound(parse_one("a * b"), cols, rows)[0] == 30
    assert expression_bound(parse_one("a / b"), cols, rows)[0] == 10  # |b| >= 1 when not 0
    assert expression_bound(parse_one("b / a"), cols, rows)[0] == 300  # |a| >= 0.01
    assert expression_bound(parse_one("CASE WHEN a > 1 THEN a ELSE b END"), cols, rows)[0] == 10
    assert expression_bound(parse_one("COALESCE(b, a)"), cols, rows)[0] == 10
    assert expression_bound(parse_one("unknown * 2"), cols, rows)[0] is None


# --- which programs get a check ---------------------------------------------------------------

def test_a_proven_query_has_no_check(tmp_path):
    src = render_secure_job(sqlmpc.compile_sql("SELECT SUM(small) AS s FROM z",
                                               _catalog(tmp_path), all_secure=True))
    assert "check_" not in src and "checked_mul" not in src and "overflows" not in src


def test_an_unproven_product_and_sum_are_checked(tmp_path):
    src = render_secure_job(sqlmpc.compile_sql(
        "SELECT SUM(x.d * y.d) AS s FROM x JOIN y ON x.k = y.k", _catalog(tmp_path)))
    assert "ops.checked_mul(_checks, 'x.d * y.d'" in src
    assert "ops.check_sum(_checks, 'SUM(x.d * y.d)'" in src
    assert src.index("await ops.check_overflow(_checks)") < src.index("await ops.reveal(")
    assert "whether SUM(x.d * y.d) overflows the secure type's range: one bit" in src


_CHECK_RE = re.compile(r"ops\.(?:checked_mul|checked_div(?:_zero)?|checked_power|check_fits|check_sum)\(_checks, ('(?:[^'\\]|\\.)*')")
_EXPLAIN_RE = re.compile(r"whether (.*) overflows the secure type's range \(\|value\| < 2\^63\): "
                         r"one bit, to the compute parties$", re.M)


def _checks_and_explained(sql: str, catalog) -> tuple[set[str], set[str]]:
    """The operations the program checks, and those explain says open a bit."""
    src = render_secure_job(sqlmpc.compile_sql(sql, catalog))
    checked = {ast.literal_eval(m) for m in _CHECK_RE.findall(src)}
    text = sqlmpc.explain_sql(sql, catalog)
    return checked, set(_EXPLAIN_RE.findall(text))


def test_explain_lists_each_check(tmp_path):
    checked, explained = _checks_and_explained(
        "SELECT SUM(x.d * y.d) AS s FROM x JOIN y ON x.k = y.k", _catalog(tmp_path))
    assert checked == explained == {"x.d * y.d", "SUM(x.d * y.d)"}
    proven = sqlmpc.explain_sql("SELECT SUM(small) AS s FROM z", _catalog(tmp_path),
                                all_secure=True)
    assert "overflows" not in proven


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_check_is_in_its_explain(name):
    folder = ROOT / "examples" / name
    checked, explained = _checks_and_explained((folder / "query.sql").read_text(),
                                               folder / "catalog.toml")
    assert checked == explained


def test_unproven_operations_is_the_one_rule(tmp_path):
    plan = sqlmpc.compile_sql("SELECT SUM(x.d * y.d) AS s FROM x JOIN y ON x.k = y.k",
                              _catalog(tmp_path))
    found = unproven_operations(plan.dag, LIMIT)
    kinds = sorted((u.what, u.kind) for ops_ in found.values() for u in ops_)
    assert kinds == [("SUM(x.d * y.d)", "sum"), ("x.d * y.d", "arithmetic")]
    # a wider range proves them all: nothing left to check
    assert unproven_operations(plan.dag, 1 << 200) == {}


# --- the secure checks themselves (one party, in this process) ------------------------------

def test_checked_mul_and_check_fits_in_mpc():
    async def main():
        await mpc.start()
        secfxp = mpc.SecFxp(96, 32)
        a = secfxp.array(np.array([1e15, 3.5, -2.25, 1e15]))
        b = secfxp.array(np.array([4e15, 2.0, 1e9, 4e15]))
        valid = const(secfxp, np.array([1, 1, 1, 0], dtype=object), integral=True)
        checks = []
        prod = await mpc.output(overflow.checked_mul(checks, "x.d * y.d", valid, a, b))
        with pytest.raises(overflow.SecureOverflow, match="x.d \\* y.d does not fit"):
            await overflow.check_overflow(checks)
        ok = []  # the same without the overflowing valid row: no overflow, exact products
        prod2 = await mpc.output(overflow.checked_mul(ok, "p", valid[1:], a[1:], b[1:]))
        await overflow.check_overflow(ok)
        v2 = const(secfxp, np.array([1, 1], dtype=object), integral=True)
        big = secfxp.array(np.array([float(2 ** 62), 5.0]))
        sums = []
        overflow.check_fits(sums, "SUM(v)", v2, big + big, 2)
        with pytest.raises(overflow.SecureOverflow, match="SUM\\(v\\)"):
            await overflow.check_overflow(sums)
        fine = []
        overflow.check_fits(fine, "SUM(w)", v2, big - big * 2, 2)  # -2^62 fits
        await overflow.check_overflow(fine)
        await mpc.shutdown()
        return prod, prod2

    prod, prod2 = mpc.run(main())
    assert abs(prod[1] - 7.0) < 1e-6 and abs(prod[2] + 2.25e9) < 1e-3
    assert prod[0] == 0 and abs(prod[3]) < 1e-6  # overflowing rows are zeroed
    assert abs(prod2[0] - 7.0) < 1e-6 and abs(prod2[2]) < 1e-6


def test_a_checked_square_is_exact_to_its_boundary():
    """x * x (one array twice) is checked by comparing |x| with sqrt(2^63) in the type's own
    field: 3037000499^2 < 2^63 <= 3037000500^2; an invalid row's overflow does not count."""
    vals = [3.5, -2.25, 3037000499.0, -3037000499.0, 3037000500.0, -1e10, 0.0, 1e12]

    async def main():
        await mpc.start()
        secfxp = mpc.SecFxp(96, 32)
        x = secfxp.array(np.array(vals))
        valid = const(secfxp, np.array([1, 1, 1, 1, 1, 1, 1, 0], dtype=object),
                      integral=True)
        checks = []
        sq = await mpc.output(overflow.checked_mul(checks, "s * s", valid, x, x))
        count = await mpc.output(checks[0][1])
        with pytest.raises(overflow.SecureOverflow, match="s \\* s does not fit"):
            await overflow.check_overflow(checks)
        fine = []
        y = secfxp.array(np.array(vals[:4]))
        sq2 = await mpc.output(overflow.checked_mul(fine, "t * t", valid[:4], y, y))
        await overflow.check_overflow(fine)
        await mpc.shutdown()
        return sq, count, sq2

    sq, count, sq2 = mpc.run(main())
    want = [v * v for v in vals[:4]]
    assert [float(v) for v in sq[:4]] == pytest.approx(want, rel=1e-12)
    assert list(sq[4:]) == [0, 0, 0, 0]  # zeroed: overflowing rows (and 0 * 0)
    assert count == 2  # rows 4 and 5; row 7 overflows too but is not valid
    assert [float(v) for v in sq2] == pytest.approx(want, rel=1e-12)


# --- whole runs ---------------------------------------------------------------------------

@pytest.mark.slow
def test_product_overflow_stops_with_a_clear_line(tmp_path):
    r = _run("SELECT SUM(x.d * y.d) AS s FROM x JOIN y ON x.k = y.k", _catalog(tmp_path))
    assert r.returncode != 0
    line = [ln for ln in r.stderr.splitlines() if "error" in ln]
    assert line and "overflow: x.d * y.d does not fit the secure type's range" in line[-1]
    assert "1000000000000000" not in r.stderr and "4000000000000000" not in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "r.csv").exists()


@pytest.mark.slow
def test_checked_product_that_fits_is_exact(tmp_path):
    r = _run("SELECT SUM(x.d * y.d) AS s FROM x JOIN y ON x.k = y.k",
             _catalog(tmp_path, x_d="1000000.25", y_d="4000.5"))
    assert r.returncode == 0, r.stderr
    assert abs(float((tmp_path / "r.csv").read_text().split()[1]) - 1000000.25 * 4000.5) <= 0.005 + 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("all_secure", [False, True])
def test_sum_above_2_63_stops_with_a_clear_line(tmp_path, all_secure):
    r = _run("SELECT SUM(v) AS s FROM z", _catalog(tmp_path),
             *(["--all-secure"] if all_secure else []))
    assert r.returncode != 0
    assert "overflow: SUM(" in r.stderr and "nothing was revealed" in r.stderr
    assert "9000000000000000000" not in r.stderr and "18000000000000000000" not in r.stderr


FLOAT_CATALOG = """
[parties.a]
[parties.b]
[parties.c]

[tables.w]
columns = { g = "int", f = "float" }
parts = { a = "wa.csv", b = "wb.csv" }

[result]
recipients = ["c"]
"""


def _float_catalog(tmp_path) -> Path:
    (tmp_path / "catalog.toml").write_text(FLOAT_CATALOG)
    (tmp_path / "wa.csv").write_text("g,f\n1,6e18\n2,1.5\n")
    (tmp_path / "wb.csv").write_text("g,f\n1,7e18\n2,2.25\n")
    return tmp_path / "catalog.toml"


def test_a_float_sum_only_revealed_needs_no_check_but_one_computed_on_does(tmp_path):
    cat = _float_catalog(tmp_path)
    for sql in ("SELECT SUM(f) AS s FROM w", "SELECT g, SUM(f) AS s FROM w GROUP BY g"):
        assert not unproven_operations(sqlmpc.compile_sql(sql, cat, all_secure=True).dag, LIMIT)
        assert "overflows" not in sqlmpc.explain_sql(sql, cat, all_secure=True)
    computed = "SELECT g, SUM(f) AS s FROM w GROUP BY g HAVING SUM(f) > 1"
    checked, explained = _checks_and_explained(computed, cat)
    assert checked == explained == {"SUM(f)"}
    # a whole-number sum stays checked: its result column holds 64 bits
    whole = sqlmpc.compile_sql("SELECT SUM(v) AS s FROM z", _catalog(tmp_path), all_secure=True)
    assert unproven_operations(whole.dag, LIMIT)


@pytest.mark.slow
@pytest.mark.parametrize("all_secure", [False, True])
def test_a_revealed_float_sum_above_2_63_is_right(tmp_path, all_secure):
    """6e18 + 7e18 = 1.3e19 > 2^63: the field holds it exactly and the recipient gets it, as
    DuckDB does; the groups' sums alike."""
    cat = _float_catalog(tmp_path)
    r = _run("SELECT g, SUM(f) AS s FROM w GROUP BY g ORDER BY g", cat,
             *(["--all-secure"] if all_secure else []))
    assert r.returncode == 0, r.stderr
    rows = [line.split(",") for line in (tmp_path / "r.csv").read_text().split()[1:]]
    assert [int(g) for g, _ in rows] == [1, 2]
    assert abs(float(rows[0][1]) - 1.3e19) <= 1.3e19 * 1e-12
    assert abs(float(rows[1][1]) - 3.75) <= 1e-6


# --- exact decimals above 2^53 through the real runtime ---------------------------------------

BIG_CATALOG = """
[parties.a]
[parties.b]
[parties.c]

[tables.t]
columns = { d = "decimal(20,2)" }
parts = { a = "ta.csv", b = "tb.csv" }

[result]
recipients = ["c"]
"""


@pytest.mark.slow
@pytest.mark.parametrize("all_secure", [False, True])
def test_decimal_sum_above_2_53_is_exact(tmp_path, all_secure):
    """12345678901234567.89 (> 2^53: float64 holds only ...567.88 or ...567.90 nearby) plus
    0.01 from another party: exactly 12345678901234567.90, on DuckDB through MPC."""
    (tmp_path / "catalog.toml").write_text(BIG_CATALOG)
    (tmp_path / "ta.csv").write_text("d\n12345678901234567.89\n")
    (tmp_path / "tb.csv").write_text("d\n0.01\n")
    r = _run("SELECT SUM(d) AS s FROM t", tmp_path / "catalog.toml", "--engine", "duckdb",
             *(["--all-secure"] if all_secure else []))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "r.csv").read_text().split() == ["s", "12345678901234567.90"]


# --- quotients and powers --------------------------------------------------------------------

def test_an_unproven_quotient_and_power_are_checked_and_explained(tmp_path):
    catalog = _catalog(tmp_path, dtype="decimal(20,4)")
    sql = "SELECT x.d / y.d AS q, POWER(x.d - y.d, 2) AS p FROM x JOIN y ON x.k = y.k"
    checked, explained = _checks_and_explained(sql, catalog)
    assert checked == explained == {"x.d / y.d", "POWER(x.d - y.d, 2)"}
    # an integer divisor cannot make a quotient bigger than its dividend: proven, no check
    proven, _ = _checks_and_explained("SELECT x.d / y.k AS q FROM x JOIN y ON x.k = y.k",
                                      catalog)
    assert proven == set()


@pytest.mark.parametrize("name", EXAMPLES)
def test_checks_are_named_as_the_analyst_wrote_them(name):
    """No compiler-made column name (__agg1__sum, __sq2) in what explain says is checked."""
    folder = ROOT / "examples" / name
    _, explained = _checks_and_explained((folder / "query.sql").read_text(),
                                         folder / "catalog.toml")
    assert not [w for w in explained if "__" in w or "AS DOUBLE" in w]


def test_checked_div_and_power_in_mpc():
    async def main():
        await mpc.start()
        secfxp = mpc.SecFxp(96, 32)
        a = secfxp.array(np.array([9e15, 7.0, -12.5, 9e15, -3.0]))
        b = secfxp.array(np.array([1e-4, 2.0, 0.0, 1e-4, -0.25]))
        valid = const(secfxp, np.array([1, 1, 1, 0, 1], dtype=object), integral=True)
        checks = []
        q = await mpc.output(overflow.checked_div(checks, "x.d / y.d", valid, a, b))
        with pytest.raises(overflow.SecureOverflow, match="x.d / y.d does not fit"):
            await overflow.check_overflow(checks)
        fine = []  # without the first row, only an invalid row overflows: no error
        q2 = await mpc.output(overflow.checked_div(fine, "x.d / y.d", valid[1:], a[1:], b[1:]))
        await overflow.check_overflow(fine)
        public = []  # a public divisor: a checked product by its reciprocal
        q3 = await mpc.output(overflow.checked_div(public, "x.d / 0.0001", valid, a, 1e-4))
        with pytest.raises(overflow.SecureOverflow, match="x.d / 0.0001"):
            await overflow.check_overflow(public)
        powers = []
        big = secfxp.array(np.array([3e9, 2.0]))
        v2 = const(secfxp, np.array([1, 1], dtype=object), integral=True)
        p = await mpc.output(overflow.checked_power(powers, "POWER(v, 3)", v2, big, 3))
        with pytest.raises(overflow.SecureOverflow, match="POWER"):
            await overflow.check_overflow(powers)
        await mpc.shutdown()
        return q, q2, q3, p

    q, q2, q3, p = mpc.run(main())
    assert q[0] == 0 and q[3] == 0  # overflowing rows are zeroed, valid or not
    assert abs(q[1] - 3.5) < 1e-6 and q[2] == 0 and abs(q[4] - 12.0) < 1e-6
    assert abs(q2[0] - 3.5) < 1e-6 and abs(q2[3] - 12.0) < 1e-6
    assert abs(q3[1] - 70000.0) < 1e-3
    assert p[0] == 0 and abs(p[1] - 8.0) < 1e-6


@pytest.mark.slow
def test_quotient_overflow_stops_with_a_clear_line(tmp_path):
    catalog = _catalog(tmp_path, x_d="9000000000000000", y_d="0.0001", dtype="decimal(20,4)")
    r = _run("SELECT x.d / y.d AS q FROM x JOIN y ON x.k = y.k", catalog)
    assert r.returncode != 0
    assert "overflow: x.d / y.d does not fit the secure type's range" in r.stderr
    assert "9000000000000000" not in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.slow
def test_checked_quotient_that_fits_is_right(tmp_path):
    catalog = _catalog(tmp_path, x_d="9000000000000", y_d="0.0004", dtype="decimal(20,4)")
    r = _run("SELECT x.d / y.d AS q FROM x JOIN y ON x.k = y.k", catalog)
    assert r.returncode == 0, r.stderr
    got = float((tmp_path / "r.csv").read_text().split()[1])
    # the divisor is held with 32 fraction bits: 0.0004 to a relative 2^-32 / 0.0004
    assert abs(got - 9e12 / 4e-4) <= (2 ** -32 / 4e-4) * 9e12 / 4e-4
