"""Slow tests: 3 real MPyC parties (``python script.py -M3``; MPyC spawns parties 1 and 2 on
localhost itself). Parties 1 and 2 input rows, party 0 (a helper compute party without data)
is the only receiver. Each party writes what it got to a JSON file; the test checks that party
0's answers equal a plaintext computation and that parties 1 and 2 got None.
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
    import json, os, sys
    import numpy as np
    from mpyc.runtime import mpc
    from sqlmpc.backends.mpyc.lib import encoding as enc
    from sqlmpc.backends.mpyc import ops

    N_ROWS = {1: int(os.environ["N1"]), 2: int(os.environ["N2"])}

    def rows_of(pid):
        # deterministic per party: (vendor text, day date, fare decimal, key int)
        rng = np.random.default_rng(pid)
        n = N_ROWS.get(pid, 0)
        vendors = rng.choice(["yellow", "green", "blue"], n)
        days = rng.choice(["2024-01-01", "2024-01-02"], n)
        fares = np.round(rng.uniform(-5, 50, n), 2)
        keys = rng.integers(0, 4, n)
        return vendors, days, fares, keys

    async def main():
        secfxp = mpc.SecFxp(96, 32)
        await mpc.start()
        mine = None
        if mpc.pid in (1, 2):
            v, d, f, k = rows_of(mpc.pid)
            mine = np.empty((len(v), 4), dtype=object)
            mine[:, 0] = enc.encode_column(v, "text")
            mine[:, 1] = enc.encode_column(d, "date")
            mine[:, 2] = enc.encode_column(f, "decimal(10,2)")
            mine[:, 3] = enc.encode_column(k, "int")
        t = await ops.share_input(secfxp, mine, ["vendor", "day", "fare", "k"], [1, 2],
                                  integral=[True, True, False, True])
        res = {"n": t.n}
        t = ops.filter_rows(t, ops.gt(t.columns["fare"], 0))
        g = ops.aggregate(t, ["vendor", "day"], [("s", "sum", "fare"), ("c", "count", None),
                                                 ("mx", "max", "fare")])
        out = await ops.reveal(g, [0], ["vendor", "day", "s", "c", "mx"], ordered=False)
        if out is not None:
            out = list(zip(enc.decode_column(out[:, 0], "text"),
                           [x.isoformat() for x in enc.decode_column(out[:, 1], "date")],
                           enc.decode_column(out[:, 2], "decimal(10,2)"),
                           enc.decode_column(out[:, 3], "int"),
                           enc.decode_column(out[:, 4], "decimal(10,2)")))
        res["groupby"] = out
        tot = ops.aggregate(t, [], [("s", "sum", "fare"), ("c", "count", None)])
        out = await ops.reveal(tot, [0], ["s", "c"], ordered=True)
        res["total"] = None if out is None else [float(out[0, 0]), int(out[0, 1])]
        top = ops.order_by(t, [("fare", True)], limit=3)
        out = await ops.reveal(top, [0], ["fare"], ordered=True)
        res["top"] = None if out is None else enc.decode_column(out[:, 0], "decimal(10,2)")
        d = ops.distinct(t, ["k"])
        out = await ops.reveal(d, [0], ["k"], ordered=False)
        res["distinct"] = None if out is None else sorted(int(x) for x in out[:, 0])
        await mpc.shutdown()
        with open(os.path.join(os.environ["OUT_DIR"], f"party{mpc.pid}.json"), "w") as fh:
            json.dump(res, fh, default=float)  # decimal columns decode to Decimal

    mpc.run(main())
''')


def rows_of(pid: int, n: int):
    import numpy as np

    rng = np.random.default_rng(pid)
    vendors = rng.choice(["yellow", "green", "blue"], n)
    days = rng.choice(["2024-01-01", "2024-01-02"], n)
    fares = np.round(rng.uniform(-5, 50, n), 2)
    keys = rng.integers(0, 4, n)
    return list(zip(vendors.tolist(), days.tolist(), fares.tolist(), keys.tolist(), strict=True))


def run_parties(tmp_path, n1: int, n2: int) -> dict[int, dict]:
    script = tmp_path / "three_party.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OUT_DIR=str(tmp_path), N1=str(n1), N2=str(n2))
    proc = subprocess.run([sys.executable, str(script), "-M3", "--no-log"], check=False,
                          env=env,
                          capture_output=True, text=True, timeout=170, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {p: json.loads((tmp_path / f"party{p}.json").read_text()) for p in range(3)}


def expected(n1: int, n2: int):
    rows = [r for r in rows_of(1, n1) + rows_of(2, n2) if r[2] > 0]
    g = defaultdict(list)
    for v, d, f, _ in rows:
        g[(v, d)].append(f)
    groupby = sorted((v, d, round(sum(fs), 2), len(fs), max(fs)) for (v, d), fs in g.items())
    total = [sum(r[2] for r in rows), len(rows)]
    top = sorted((r[2] for r in rows), reverse=True)[:3]
    distinct = sorted({r[3] for r in rows})
    return groupby, total, top, distinct


@pytest.mark.parametrize("n1,n2", [(12, 9), (10, 0)])
def test_three_parties_reveal_only_to_party0(tmp_path, n1, n2):
    res = run_parties(tmp_path, n1, n2)
    groupby, total, top, distinct = expected(n1, n2)
    r0 = res[0]
    assert r0["n"] == n1 + n2
    assert sorted(tuple(x) for x in r0["groupby"]) == groupby
    assert r0["total"][0] == pytest.approx(total[0], abs=1e-6)
    assert r0["total"][1] == total[1]
    assert r0["top"] == top
    assert r0["distinct"] == distinct
    for p in (1, 2):
        assert res[p]["n"] == n1 + n2  # the one public size
        assert all(res[p][k] is None for k in ("groupby", "total", "top", "distinct"))
