"""Columns the plan declares public: they travel in the clear, beside the secret table.

A column every owner declared public ("*" in the catalog's trust section) is sent in the
clear so that, for example, a GROUP BY on it needs no secure comparison
(``public_keys.py``). Nothing secret is opened here: only what the owners made public.
"""

from __future__ import annotations

import numpy as np
from mpyc.runtime import mpc

__all__ = ["concat_public", "share_public"]


async def share_public(values: dict | None, columns: list[str], sender: int) -> dict:
    """Send the columns a plan declares public from `sender` to every compute party in the clear."""
    if not columns:
        return {}
    got = await mpc.transfer(values if mpc.pid == sender else None, senders=sender)
    return {c: np.asarray(got[c], dtype=object) for c in columns}


def concat_public(parts: list[dict]) -> dict:
    """UNION ALL of public columns, in the order of the secret parts."""
    if not parts:
        return {}
    return {c: np.concatenate([np.asarray(p[c], dtype=object) for p in parts]) for c in parts[0]}
