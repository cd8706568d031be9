"""Shared helpers of the 1-party (in-process) MPyC tests."""

import numpy as np
from mpyc.runtime import mpc


def run(body):
    """Run ``await body()`` inside a fresh MPyC session; return its result."""

    async def main():
        await mpc.start()
        try:
            return await body()
        finally:
            await mpc.shutdown()

    return mpc.run(main())


def obj(rows, k):
    """Rows as a 2-D object matrix (Python ints stay exact)."""
    a = np.empty((len(rows), k), dtype=object)
    for i, r in enumerate(rows):
        a[i, :] = list(r)
    return a


async def text_table(rows, types):
    """Share rows (Python values) of the given SQL types as the generated programs do: text
    pieces and NULL flags included (1 party, secfxp(96, 32))."""
    import pandas as pd
    from sqlmpc.backends.mpyc import ops
    from sqlmpc.backends.mpyc import support
    cols = [f"c{i}" for i in range(len(types))]
    df = pd.DataFrame(rows, columns=cols)
    nullable = [c for c in cols if df[c].isna().any()]
    d = support.encode_frame(df, cols, types, [], 96, 32, nullable=nullable)
    return await ops.share_input(mpc.SecFxp(96, 32), d["rows"], cols, [0], types=types,
                                 integral=[t != "float" for t in types], extra=d["extra"])
