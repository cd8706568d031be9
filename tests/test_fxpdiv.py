"""Secure fixed-point division (backends/mpyc/lib/fxpdiv.py) against exact rational arithmetic:
1 party in this process (fast) and 3 real MPyC parties (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mpyc.runtime import mpc
from mpc_helpers import run
from sqlmpc.backends.mpyc.lib import fxpdiv
from sqlmpc.backends.mpyc import ops

secfxp = mpc.SecFxp(96, 32)
F = 32
ULP = Fraction(1, 1 << F)


def quantised(x: float) -> Fraction:
    """The value secfxp(96, 32) holds for x (nearest multiple of 2^-32)."""
    return Fraction(round(Fraction(x) * (1 << F)), 1 << F)


def assert_close(a: list[float], b: list[float], got: list[float]) -> None:
    for x, y, q in zip(a, b, got, strict=True):
        xq, yq = quantised(x), quantised(y)
        if yq == 0:  # 0, up to the truncations' few units of 2^-f (the SQL layer: NULL)
            assert abs(Fraction(q)) <= 4 * ULP, f"{x} / 0 gave {q}, expected 0"
            continue
        exact = xq / yq
        # 1/b to 2f + 28 fraction bits and ~2f - 1 relative bits, then the final truncation's
        # few units of 2^-f (and the float the test reads it as: 53 bits)
        tol = (abs(xq) * Fraction(1, 1 << (2 * F + 26)) + abs(exact) * Fraction(1, 1 << 51)
               + 4 * ULP)
        assert abs(Fraction(q) - exact) <= tol, f"{x} / {y}: got {q}, exact {float(exact)}"


def divide(a: list[float], b: list[float]) -> list[float]:
    async def body():
        q = fxpdiv.divide(secfxp.array(np.array(a, dtype=float)),
                          secfxp.array(np.array(b, dtype=float)))
        return [float(v) for v in await mpc.output(q)]
    return run(body)


CASES = [
    (1.5e10, 2.74e8), (9.1e9, 2.74e8), (-3.3e7, 2.74e8), (1.0, 3.0), (7.0, -2.0), (0.0, 5.0),
    (5.5, 2.0 ** -32), (-3.0, -(2.0 ** -32)), (2.0 ** 40, 3.0), (1.0, 2.0 ** 30),
    (-1.0, 2.0 ** 31 + 1), (123.25, 0.5), (1e-3, 7e-6), (2.0 ** 20, 2.0 ** 20),
    (-(2.0 ** 29), 1.0), (1.0, -1.0), (6.0, 4.0), (6.0, -4.0),  # powers of two, both signs
]


def test_divide_edge_values_signs_and_powers_of_two():
    a, b = zip(*CASES, strict=True)
    assert_close(list(a), list(b), divide(list(a), list(b)))


def test_zero_divisor_gives_zero():
    assert divide([12345.678, -1.0, 0.0], [0.0, 0.0, 0.0]) == [0.0, 0.0, 0.0]


def divide_with_zero(a: list[float], b: list[float]) -> tuple[list[float], list[float]]:
    async def body():
        q, z = fxpdiv.divide_with_zero(secfxp.array(np.array(a, dtype=float)),
                                       secfxp.array(np.array(b, dtype=float)))
        return [float(v) for v in await mpc.output(q)], [float(v) for v in await mpc.output(z)]
    return run(body)


# divisors 0 and their neighbours: 2^-32 is the smallest, -2^-32 (the integer -1) a row
# of its own in the protocol's one-hot; a divisor below half a unit is held as 0
ZEROS = [(5.0, 0.0), (-5.0, 0.0), (0.0, 0.0), (3.0, 2.0 ** -32), (3.0, -(2.0 ** -32)),
         (1.0, 2.0 ** -34), (2.0, -1.0), (1.0, 2.0 ** 40)]


def test_the_zero_flags_come_with_the_quotients():
    a, b = [list(x) for x in zip(*(CASES + ZEROS), strict=True)]
    q, z = divide_with_zero(a, b)
    assert_close(a, b, q)
    assert z == [1.0 if quantised(y) == 0 else 0.0 for y in b]


def test_checked_division_with_zero_flags_counts_the_overflows():
    a = [1.0, 7.0, 2.0 ** 60, 4.0, 3.0]
    b = [3.0, 0.0, 2.0 ** -20, -2.0, 2.0 ** -34]  # 2^80 does not fit; 2^-34 is held as 0

    async def body(valid_rows):
        checks = []
        valid = secfxp.array(np.array(valid_rows, dtype=float), integral=True)
        q, z = ops.checked_div_zero(checks, "a / b", valid, secfxp.array(np.array(a)),
                                    secfxp.array(np.array(b)))
        out = [float(v) for v in await mpc.output(q)], [float(v) for v in await mpc.output(z)]
        try:
            await ops.check_overflow(checks)
        except ops.SecureOverflow as e:
            return out, str(e)
        return out, None
    (q, z), error = run(lambda: body([1, 1, 0, 1, 1]))  # the row that overflows is not valid
    assert error is None and z == [0.0, 1.0, 0.0, 0.0, 1.0]
    assert q[0] == pytest.approx(1 / 3) and q[1] == 0.0 and q[2] == 0.0 and q[3] == -2.0
    (q, z), error = run(lambda: body([1, 1, 1, 1, 1]))
    assert error is not None and "a / b" in error and z == [0.0, 1.0, 0.0, 0.0, 1.0]


def test_a_public_divisor_is_tested_in_the_clear():
    async def body():
        q, z = ops.div_zero(secfxp.array(np.array([6.0, 3.0])), np.array([2.0, 4.0]))
        return [float(v) for v in await mpc.output(q)], list(z)
    q, z = run(body)
    assert q == [3.0, 0.75] and z == [0, 0]


def test_ops_div_uses_it_and_broadcasts():
    async def body():
        a = secfxp.array(np.array([10.0, -20.0, 30.0]))
        b = secfxp.array(np.array([4.0]))
        return [float(v) for v in await mpc.output(ops.div(a, b))]
    assert run(body) == [2.5, -5.0, 7.5]


def test_negative_results_after_a_big_field_product_stay_negative():
    """Regression: the secure field type over secfxp's own field (``bits.big_mul``, used by
    daBits with 3 parties and by the many-to-many join) was made unsigned, so every negative
    number opened afterwards came back as about 2^128."""
    from sqlmpc.backends.mpyc.lib import bits

    async def body():
        field = secfxp.field
        x = field.array(np.array([3, 4], dtype=object), check=False)
        await bits.big_mul(x, x)
        a = secfxp.array(np.array([-1.0, 7.0]))
        q = fxpdiv.divide(secfxp.array(np.array([1.0, 7.0])), secfxp.array(np.array([-1.0, -2.0])))
        return [float(v) for v in await mpc.output(a)] + [float(v) for v in await mpc.output(q)]
    assert run(body) == [-1.0, 7.0, -1.0, -3.5]


def test_types_it_does_not_support_fall_back_to_mpyc():
    assert fxpdiv.supported(secfxp)
    assert not fxpdiv.supported(mpc.SecFxp(32, 16))

    async def body():
        t = mpc.SecFxp(32, 16)
        q = ops.div(t.array(np.array([7.0, -9.0])), t.array(np.array([2.0, 4.0])))
        return [float(v) for v in await mpc.output(q)]
    assert np.allclose(run(body), [3.5, -2.25], atol=1e-3)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(
    st.floats(-1e12, 1e12, allow_nan=False).filter(lambda x: abs(x) >= 1e-9 or x == 0),
    st.one_of(st.floats(1e-6, 1e9), st.floats(-1e9, -1e-6),
              st.sampled_from([1.0, -1.0, 0.5, 2.0 ** 20]))),
    min_size=1, max_size=12))
def test_property_divide(pairs):
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    # keep quotients inside secfxp(96, 32)'s range, as the type requires
    keep = [(x, y) for x, y in zip(a, b, strict=True)
            if quantised(y) != 0 and abs(quantised(x) / quantised(y)) < 2 ** 62]
    if not keep:
        return
    a, b = [x for x, _ in keep], [y for _, y in keep]
    assert_close(a, b, divide(a, b))


SCRIPT = textwrap.dedent('''
    import json, sys
    import numpy as np
    from mpyc.runtime import mpc
    from sqlmpc.backends.mpyc.lib import fxpdiv
    A, B = json.loads(sys.argv[-1])

    async def main():
        secfxp = mpc.SecFxp(96, 32)
        await mpc.start()
        # party 1 inputs the dividends, party 2 the divisors; nobody else sees them
        a = mpc.input(secfxp.array(np.array(A if mpc.pid == 1 else [0.0] * len(A))), senders=1)
        b = mpc.input(secfxp.array(np.array(B if mpc.pid == 2 else [0.0] * len(B))), senders=2)
        q = await mpc.output(fxpdiv.divide(a, b))
        q2, z = fxpdiv.divide_with_zero(a, b)
        q2, z = await mpc.output(q2), await mpc.output(z)
        await mpc.shutdown()
        if mpc.pid == 0:
            print(json.dumps([[float(v) for v in q], [float(v) for v in q2],
                              [float(v) for v in z]]))
    mpc.run(main())
''')


@pytest.mark.slow
def test_three_parties(tmp_path):
    a, b = [list(x) for x in zip(*(CASES + ZEROS), strict=True)]
    script = tmp_path / "div.py"
    script.write_text(SCRIPT)
    port = 20000 + os.getpid() % 20000
    arg = json.dumps([a, b])
    procs = [subprocess.Popen([sys.executable, str(script), "-M3", f"-I{i}", "-B", str(port),
                               "--no-log", arg], stdout=subprocess.PIPE, text=True)
             for i in range(3)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    q, q2, z = json.loads(outs[0].strip().splitlines()[-1])
    assert_close(a, b, q)
    assert_close(a, b, q2)
    assert z == [1.0 if quantised(y) == 0 else 0.0 for y in b]


def test_without_prss_the_products_are_taken_before_they_open(monkeypatch):
    """masks.open_product's fallback (no PRSS keys: a product round, then the opening) gives
    the same quotients as the fused opening, checked and unchecked."""
    from sqlmpc.backends.mpyc.lib import masks
    monkeypatch.setattr(masks, "fused_opening", lambda: False)
    a, b = [list(x) for x in zip(*(CASES + ZEROS), strict=True)]
    assert_close(a, b, divide(a, b))
    q, z = divide_with_zero(a, b)
    assert_close(a, b, q)
    assert z == [1.0 if quantised(y) == 0 else 0.0 for y in b]

    async def body():
        checks = []
        valid = secfxp.array(np.ones(len(a)), integral=True)
        q = ops.checked_div(checks, "a / b", valid, secfxp.array(np.array(a)),
                            secfxp.array(np.array(b)))
        p = ops.checked_mul(checks, "a * b", valid, secfxp.array(np.array(a)),
                            secfxp.array(np.array(b)))
        await ops.check_overflow(checks)
        return [float(v) for v in await mpc.output(q)], [float(v) for v in await mpc.output(p)]
    q, p = run(body)
    assert_close(a, b, q)
    for x, y, got in zip(a, b, p, strict=True):
        exact = quantised(x) * quantised(y)
        assert abs(Fraction(got) - exact) <= 2 * ULP + abs(exact) * Fraction(1, 1 << 51)
