"""Slow tests: the radix-sort based operators with 3 real MPyC parties (``-M3``), against
plaintext. Parties 1 and 2 input rows, party 0 (a helper without data) receives the results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import defaultdict

import pytest

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent('''
    import json, os
    import numpy as np
    from mpyc.runtime import mpc
    from sqlmpc.backends.mpyc.lib import bits as bitconv
    from sqlmpc.backends.mpyc.lib import join as lib_join
    from sqlmpc.backends.mpyc.lib import keyspec, radix
    from sqlmpc.backends.mpyc import ops
    from sqlmpc.backends.mpyc.lib import shuffle as shf
    from sqlmpc.backends.mpyc.lib import smallfield as sf

    N = int(os.environ["N"])
    lib_join.NESTED_LOOP_MAX = 0  # the PK-FK join even on tiny inputs

    def data(pid):
        rng = np.random.default_rng(7 + pid)
        keys = rng.integers(0, 40, N)
        vals = rng.integers(-100, 100, N)
        return np.stack([keys, vals], 1).astype(object)

    async def main():
        secfxp = mpc.SecFxp(96, 32)
        await mpc.start()
        res = {}
        mine = data(mpc.pid) if mpc.pid in (1, 2) else None
        t = await ops.share_input(secfxp, mine, ["k", "v"], [1, 2], integral=[True, True],
                                  key_bits={"k": 6})
        t = ops.filter_rows(t, ops.gt(t.columns["v"], -50))
        g = ops.aggregate(t, ["k"], [("s", "sum", "v"), ("c", "count", None),
                                     ("mx", "max", "v")])
        out = await ops.reveal(g, [0], ["k", "s", "c", "mx"], ordered=False)
        res["groupby"] = None if out is None else sorted(list(map(int, r)) for r in out)
        d = ops.distinct(t, ["k"])
        out = await ops.reveal(d, [0], ["k"], ordered=False)
        res["distinct"] = None if out is None else sorted(int(r[0]) for r in out)
        o = ops.order_by(t, [("v", True), ("k", False)], limit=7, key_bits={"v": (-100, 100)})
        out = await ops.reveal(o, [0], ["v", "k"], ordered=True)
        res["top"] = None if out is None else [list(map(int, r)) for r in out]
        # PK-FK: party 1's distinct keys (first row per key) as PK, party 2's rows as FK
        pk = None
        if mpc.pid == 1:
            seen = {}
            for k, v in data(1):
                seen.setdefault(int(k), int(v))
            pk = np.array([[k, v] for k, v in seen.items()], dtype=object)
        fk = data(2) if mpc.pid == 2 else None
        lt = await ops.share_input(secfxp, pk, ["a", "x"], [1], integral=[True, True],
                                   types=["int", "int"])
        rt = await ops.share_input(secfxp, fk, ["b", "y"], [2], integral=[True, True],
                                   key_bits={"b": 6})
        lt = ops.filter_rows(lt, ops.ne(lt.columns["a"], 3))
        j = ops.join(lt, rt, ["a"], ["b"], unique="left", key_bits={"a": 6})
        out = await ops.reveal(j, [0], ["a", "x", "y"], ordered=True)
        res["join"] = None if out is None else [list(map(int, r)) for r in out]
        # the sort itself: stable, 3 parties
        o = ops.order_by(t, [("k", False)], key_bits={"k": 6})
        out = await ops.reveal(o, [0], ["k", "v"], ordered=True)
        res["sorted"] = None if out is None else [list(map(int, r)) for r in out]
        # the conversions themselves: bits of big-field values, daBits, an opened XOR
        field = secfxp.field
        xs = [0, 1, 5, 2**40 + 3, 2**62 - 1]
        b = await bitconv.small_bits(field.array(np.array(xs, dtype=object), check=False), 64)
        opened = await sf.open_(b)
        big = await bitconv.small_to_big_bits(np.ascontiguousarray(b[:3]), field)
        big = np.asarray((await mpc.output(big)).value, dtype=object)
        xor = await sf.open_xor(b[0], b[2])
        if mpc.pid == 0:
            res["bits"] = [sum(int(opened[i][j]) << i for i in range(64)) for j in range(len(xs))]
            res["dabits"] = [[int(v) for v in row] for row in big]
            res["xor"] = [int(v) for v in xor]
        await mpc.shutdown()
        with open(os.path.join(os.environ["OUT_DIR"], f"party{mpc.pid}.json"), "w") as fh:
            json.dump(res, fh)

    mpc.run(main())
''')


def data(pid: int, n: int):
    import numpy as np

    rng = np.random.default_rng(7 + pid)
    keys = rng.integers(0, 40, n)
    vals = rng.integers(-100, 100, n)
    return [(int(k), int(v)) for k, v in zip(keys, vals, strict=True)]


@pytest.mark.parametrize("n", [1, 150])
def test_radix_operators_three_parties(tmp_path, n):
    script = tmp_path / "radix3.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OUT_DIR=str(tmp_path), N=str(n))
    proc = subprocess.run([sys.executable, str(script), "-M3", "--no-log"], check=False,
                          env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = {p: json.loads((tmp_path / f"party{p}.json").read_text()) for p in range(3)}
    rows = [r for r in data(1, n) + data(2, n) if r[1] > -50]
    g = defaultdict(list)
    for k, v in rows:
        g[k].append(v)
    r0 = res[0]
    assert r0["groupby"] == sorted([k, sum(v), len(v), max(v)] for k, v in g.items())
    assert r0["distinct"] == sorted(g)
    assert r0["top"] == [[v, k] for k, v in sorted(rows, key=lambda r: (-r[1], r[0]))[:7]]
    pk = {}
    for k, v in data(1, n):
        pk.setdefault(k, v)
    exp = [[k, pk[k], v] for k, v in data(2, n) if k in pk and k != 3]
    assert r0["join"] == exp  # FK order kept
    assert r0["sorted"] == [[k, v] for k, v in sorted(rows, key=lambda r: r[0])]  # stable
    xs = [0, 1, 5, 2**40 + 3, 2**62 - 1]
    assert r0["bits"] == xs
    assert r0["dabits"] == [[(x >> i) & 1 for x in xs] for i in range(3)]
    assert r0["xor"] == [(x & 1) ^ ((x >> 2) & 1) for x in xs]
    for p in (1, 2):
        assert all(v is None for v in res[p].values())
