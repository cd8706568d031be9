"""Random secret bits from the parties' coin flips (backends/mpyc/lib/randombits.py): 0/1 (or
+-1) values of the asked type, about half of them ones, and MPyC's comparisons built on them
still right; with 3 real parties (slow) too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from mpc_helpers import run
from mpyc.runtime import mpc
from sqlmpc.backends.mpyc.lib import randombits

secfxp = mpc.SecFxp(96, 32)
N = 4000


def test_installed_on_the_runtime():
    assert mpc.np_random_bits.__func__ is randombits.np_random_bits


def test_secure_bits_are_zero_or_one_and_about_half_ones():
    async def body():
        bits = mpc.np_random_bits(secfxp, N)
        assert bits.integral
        return [int(b) for b in await mpc.output(bits)]
    got = run(body)
    assert set(got) <= {0, 1}
    assert abs(sum(got) - N / 2) < 5 * (N ** 0.5) / 2  # five standard deviations


def test_field_bits_signed_and_unsigned():
    field = secfxp.field

    async def body():
        plain = await mpc.np_random_bits(field, N)
        signed = await mpc.np_random_bits(field, N, signed=True)
        return ([int(v) for v in plain.value],
                [int(v) if v < field.modulus // 2 else int(v) - field.modulus
                 for v in signed.value])
    plain, signed = run(body)  # 1 party: its shares are the values
    assert set(plain) <= {0, 1} and set(signed) <= {-1, 1}
    assert abs(sum(plain) - N / 2) < 5 * (N ** 0.5) / 2
    assert abs(sum(signed)) < 5 * N ** 0.5


def test_comparisons_on_them_are_right():
    values = np.array([-3.5, -1e-6, 0.0, 1e-6, 2.0 ** 40, -(2.0 ** 40)])

    async def body():
        x = secfxp.array(values)
        return ([int(v) for v in await mpc.output(mpc.np_sgn(x))],
                [int(v) for v in await mpc.output(x < 0)])
    sgn, neg = run(body)
    assert sgn == [-1, -1, 0, 1, 1, -1]
    assert neg == [1, 1, 0, 0, 0, 1]


SCRIPT = textwrap.dedent('''
    import json, sys
    import numpy as np
    from mpyc.runtime import mpc
    from sqlmpc.backends.mpyc import ops  # installs the coin-flip bits
    secfxp = mpc.SecFxp(96, 32)
    async def main():
        await mpc.start()
        bits = [int(b) for b in await mpc.output(mpc.np_random_bits(secfxp, 2000))]
        x = secfxp.array(np.array([-3.5, 0.0, 7.25, -(2.0 ** 50)]))
        sgn = [int(v) for v in await mpc.output(mpc.np_sgn(x))]
        await mpc.shutdown()
        if mpc.pid == 0:
            print(json.dumps([bits, sgn]))
    mpc.run(main())
''')


@pytest.mark.slow
def test_three_parties(tmp_path):
    script = tmp_path / "bits.py"
    script.write_text(SCRIPT)
    port = 21000 + os.getpid() % 20000
    procs = [subprocess.Popen([sys.executable, str(script), "-M3", f"-I{i}", "-B", str(port),
                               "--no-log"], stdout=subprocess.PIPE, text=True)
             for i in range(3)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    bits, sgn = json.loads(outs[0].strip().splitlines()[-1])
    assert set(bits) <= {0, 1} and abs(sum(bits) - 1000) < 5 * (2000 ** 0.5) / 2
    assert sgn == [-1, 0, 1, -1]
