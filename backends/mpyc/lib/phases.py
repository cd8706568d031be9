"""When a secure program reached each phase (for --stats): read by the party's runtime.

The program calls :func:`mark` at fixed points (connected, revealed); the runtime that loaded
the program reads ``TIMES``. Times are this party's own clock: nothing about the data.
"""

from __future__ import annotations

import time

__all__ = ["TIMES", "mark"]

TIMES: dict[str, float] = {}  # phase -> time.perf_counter()


def mark(phase: str) -> None:
    """Note when a phase of the protocol was reached (reveals nothing)."""
    TIMES[phase] = time.perf_counter()
