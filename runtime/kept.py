"""Values a process derives once per compiled object (a plan, one of its jobs) and keeps.

Plans are never changed once compiled (runtime/config.compile_plan keeps them), so what is
derived from one (its rendered programs, its digest) holds for as long as the object lives:

    programs = PerObject(32)
    text = programs.get(plan, "duckdb", lambda: render(plan))   # rendered once per plan
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["PerObject"]


class PerObject:
    """At most `size` values, each for one (object, key); the oldest is dropped first. The
    object itself is held with its value, so its id is not reused while the entry lives."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._held: dict[tuple[int, Hashable], tuple[object, Any]] = {}

    def get(self, source: object, key: Hashable, make: Callable[[], Any]) -> Any:
        """The value for (source, key): made by make() the first time."""
        slot = (id(source), key)
        held = self._held.get(slot)
        if held is None or held[0] is not source:
            if len(self._held) >= self.size:
                self._held.pop(next(iter(self._held)))
            held = self._held[slot] = (source, make())
        return held[1]

    def __len__(self) -> int:
        return len(self._held)
