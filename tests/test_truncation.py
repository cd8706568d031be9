"""Products of secure fixed-point arrays: MPyC 0.11 truncates them with a mask 32 bits too
short, so large negative products came out wrong; backends/mpyc/lib/truncation.py fixes it."""

import numpy as np
from mpyc.runtime import mpc

from mpc_helpers import run
from sqlmpc.backends.mpyc import ops  # noqa: F401 -- installs the fix, as generated programs do
from sqlmpc.backends.mpyc.lib import truncation

secfxp = mpc.SecFxp(96, 32)


def test_large_products_of_either_sign_are_exact():
    a = [-3e9, 3e9, -1.5, 2.0 ** 40 + 0.25, -(2.0 ** 31)]
    b = [3e9, -3e9, 2.5, -(2.0 ** 20), 2.0 ** 31]

    async def body():
        return await mpc.output(secfxp.array(np.array(a)) * secfxp.array(np.array(b)))

    got = run(body)
    assert list(got) == [x * y for x, y in zip(a, b)]  # was 7.9e28 for -3e9 * 3e9


def test_generated_programs_get_the_fix_once():
    """ops (what every generated secure program imports) installs it; installing again keeps
    one wrapper, not a chain."""
    fixed = mpc.np_trunc
    assert getattr(fixed, "sqlmpc_fixed", False)
    truncation.install()
    assert mpc.np_trunc is fixed
