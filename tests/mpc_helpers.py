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
