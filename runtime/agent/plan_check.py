"""A party agent runs only what it compiles itself, and only when every party runs the same plan.

The agent takes the query's SQL text and checked compile switches from the client, compiles
the plan itself with its own catalog, and compares its plan digest (runtime/deployment.py:
the query id and the plan without what may differ between the members' own catalogs) with the
one the client computed and sent to every compute party: equal digests at every agent mean
the same plan everywhere. It then runs its own plan: its own local job from its own parts, and
the secure program it renders itself.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...compiler.catalog import Catalog
from ...compiler.errors import PartyError

LEAK_CACHE = 32  # plans whose leak list an agent keeps (for the audit log)


def comparable(doc: dict, me: str) -> dict:
    """A plan document without what may differ between the parties' own catalogs: the
    catalog's path, each party's engine, and where the OTHER parties keep their files."""
    doc = json.loads(json.dumps(doc))
    doc.pop("catalog", None)
    doc.pop("engines", None)  # each party runs its job on the engine its own owner chose
    for party, job in (doc.get("local_jobs") or {}).items():
        if party != me:
            for part in job.get("inputs", []):
                part.pop("path", None)
    return doc


def first_difference(a, b, path: str = "plan") -> str | None:
    """The path of the first place where two JSON documents differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                return f"{path}.{k}"
            found = first_difference(a[k], b[k], f"{path}.{k}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path} (length {len(a)} vs {len(b)})"
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else path


class PlanChecker:
    """One agent's own plans, compiled once per (query, switches) from its own catalog.

    `engine`: the agent's --engine (None: its catalog's choice for its party).
    """

    def __init__(self, party: str, catalog: Catalog, catalog_path: Path,
                 engine: str | None = None) -> None:
        self.party = party
        self.catalog = catalog
        self.catalog_path = catalog_path
        self.engine = engine
        self.leaks: dict[int, tuple] = {}       # id(plan) -> (plan, its leak list)

    def own_plan(self, sql: str, switches: dict):
        """The plan this agent compiles for `sql` with checked compile `switches`
        (runtime/deployment.compile_switches)."""
        from ..config import compile_plan  # it keeps the plans of recurring queries
        return compile_plan(sql, self.catalog, engine=self.engine, **switches)

    def revealed(self, plan, listing) -> list[dict]:
        """`listing(plan)` (explain's leak list, for the audit log), computed once per plan:
        it takes about as long as the local job of a small query."""
        held = self.leaks.get(id(plan))
        if held is None or held[0] is not plan:  # the plan is held, so its id is not reused
            held = (plan, listing(plan))
            _remember(self.leaks, id(plan), held)
        return held[1]

    def check_digest(self, plan, query_id: str, theirs: str) -> str:
        """This agent's plan digest; a PartyError when the client's differs (the client, and
        so the other parties, would run another plan: a different catalog, option or sqlmpc
        version)."""
        from ..deployment import plan_digest
        mine = plan_digest(plan, query_id)
        if mine != theirs:
            raise PartyError(f"the plan the client sent this query for differs from the one "
                             f"this agent compiles with its catalog {self.catalog_path} (a "
                             f"different catalog, option or sqlmpc version); not run")
        return mine


def _remember(cache: dict, key, value) -> None:
    """Keep at most LEAK_CACHE entries, the oldest dropped first."""
    if key not in cache and len(cache) >= LEAK_CACHE:
        cache.pop(next(iter(cache)))
    cache[key] = value
