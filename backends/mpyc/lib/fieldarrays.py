"""Finite-field arrays made without parsing NumPy's version each time (a speed fix of MPyC 0.11).

MPyC 0.11's ``FiniteFieldArray.__init__`` compares ``np.lib.NumpyVersion(np.__version__)``
with '2.0.0b1' every time it makes an array, to choose NumPy's ``copy`` argument. Parsing the
version string takes about 20 us, and a secure division of three numbers makes some 300
arrays at every party: a third of its local work. :func:`install` (done on import) puts in a
constructor that makes the same choice once, at import, and does exactly what MPyC's does
otherwise.
"""

from __future__ import annotations

import numpy as np
from mpyc import finfields

__all__ = ["install"]

_NUMPY_2 = np.lib.NumpyVersion(np.__version__) >= "2.0.0b1"
#: MPyC's own constructor (for the tests that compare the two)
MPYC_INIT = getattr(finfields.FiniteFieldArray.__init__, "mpyc_init",
                    finfields.FiniteFieldArray.__init__)


def _init(self, value, check=True, copy=False):
    if _NUMPY_2 and copy is False:
        copy = None
    value = np.array(value, dtype=object, copy=copy)
    if check:
        value %= self.field.modulus  # in place: keeps the shape, as MPyC does
    self.value = value


_init.mpyc_init = MPYC_INIT


def install() -> None:
    """Replace MPyC's array constructor (idempotent)."""
    finfields.FiniteFieldArray.__init__ = _init


install()
