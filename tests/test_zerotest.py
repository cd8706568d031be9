"""The zero test of small whole numbers (backends/mpyc/lib/zerotest.py): exact for every value
in [0, bound], any shape, any bound; MPyC's own test where the field has no room for the mask.
1 party in this process; the 3-party runs of every aggregate go through it too."""

from __future__ import annotations

import numpy as np
import pytest
from mpyc.runtime import mpc

from mpc_helpers import run
from sqlmpc.backends.mpyc.lib import zerotest
from sqlmpc.backends.mpyc.lib.zerotest import is_zero_count


def _tested(values: list[int], bound: int, stype=None) -> list[int]:
    stype = stype or mpc.SecFxp(96, 32)

    async def body():
        x = stype.array(np.array(values, dtype=float), integral=True)
        z = is_zero_count(x, bound)
        assert z.integral
        return [int(v) for v in await mpc.output(z)]
    return run(body)


@pytest.mark.parametrize("bound", [0, 1, 2, 7, 8, 9, 1000, (1 << 31) - 1])
def test_every_value_up_to_the_bound(bound):
    values = sorted({0, 1, bound // 2, max(bound - 1, 0), bound})
    assert _tested(values, bound) == [int(v == 0) for v in values]


def test_a_matrix_keeps_its_shape():
    async def body():
        x = mpc.SecFxp(96, 32).array(np.array([[0.0, 3.0, 1.0], [2.0, 0.0, 0.0]]),
                                     integral=True)
        z = await mpc.output(is_zero_count(x, 3))
        return [[int(v) for v in row] for row in z]
    assert run(body) == [[1, 0, 0], [0, 1, 1]]


def test_without_room_for_the_mask_it_is_mpyc_s_test(monkeypatch):
    called = []
    real = mpc.np_equal
    monkeypatch.setattr(mpc, "np_equal", lambda a, b: called.append(1) or real(a, b))
    small = mpc.SecFxp(16, 8)  # a field of some 50 bits: 8 + 31 + 30 + 3 > its size
    assert _tested([0, 5], (1 << 31) - 1, small) == [1, 0] and called
    called.clear()
    assert _tested([0, 5], 9) == [1, 0] and not called


def test_the_opened_value_hides_the_count(monkeypatch):
    """What opens is x + r with r's k random bits above x's m: the same count opens as
    different numbers, and 0 and the bound open alike (both far below r's range)."""
    opened: list[int] = []
    real = zerotest.open_ints

    async def spy(x):
        values = await real(x)
        opened.extend(int(c) for c in values)
        return values
    monkeypatch.setattr(zerotest, "open_ints", spy)
    for _ in range(3):
        _tested([0, 0, 9, 9], 9)
    assert len(opened) == 12 and len(set(opened)) == 12
    k = mpc.options.sec_param
    assert all(c < 1 << (4 + k + 4) for c in opened)
    assert sum(c >= 1 << (4 + k - 4) for c in opened) >= 10  # r's high part dominates
