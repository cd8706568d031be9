"""MPyC's finite-field arrays with the constructor of backends/mpyc/lib/fieldarrays.py behave
exactly as with MPyC's own: the same values, the same copying or sharing of the caller's
array."""

from __future__ import annotations

import numpy as np
from mpyc import finfields
from mpyc.runtime import mpc
from sqlmpc.backends.mpyc.lib import fieldarrays


def _made(init, raw, **kwargs):
    field = mpc.SecFxp(96, 32).field
    a = object.__new__(field.array)
    init(a, raw, **kwargs)
    return a


def test_the_installed_constructor_does_what_mpycs_does():
    assert finfields.FiniteFieldArray.__init__ is fieldarrays._init
    assert fieldarrays.MPYC_INIT is not fieldarrays._init
    p = mpc.SecFxp(96, 32).field.modulus
    for kwargs in ({}, {"check": False}, {"copy": True}, {"check": True, "copy": False}):
        for make in (lambda: np.array([p + 5, -1, 7], dtype=object), lambda: [p + 5, -1, 7],
                     lambda: np.array([[1, p], [2, 3]], dtype=object)):
            ours_raw, theirs_raw = make(), make()
            ours = _made(fieldarrays._init, ours_raw, **kwargs)
            theirs = _made(fieldarrays.MPYC_INIT, theirs_raw, **kwargs)
            assert ours.value.tolist() == theirs.value.tolist()
            assert np.asarray(ours_raw).tolist() == np.asarray(theirs_raw).tolist()
            assert (ours.value is ours_raw) == (theirs.value is theirs_raw)
