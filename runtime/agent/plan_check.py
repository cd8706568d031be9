"""A party agent runs only what it compiles itself: the client's plan checked against its own.

The agent reads the client's plan.json, compiles the plan's SQL itself with its own catalog
and the client's compile switches, and refuses to run when the two plans differ anywhere but
in what may differ between the parties' own catalogs (the catalog's path, where the OTHER
parties keep their files, each party's engine). It then runs its own plan: its own local job
from its own parts, and the secure program it renders itself.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...compiler.catalog import Catalog
from ...compiler.errors import PartyError

PLAN_CACHE = 32  # compiled plans an agent keeps (a recurring query skips the compile)


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
    """One agent's own plans: compiled once per (query, switches), compared with the client's.

    `engine`: the agent's --engine (None: its catalog's choice for its party).
    """

    def __init__(self, party: str, catalog: Catalog, catalog_path: Path,
                 engine: str | None = None) -> None:
        self.party = party
        self.catalog = catalog
        self.catalog_path = catalog_path
        self.engine = engine
        self.plans: dict[str, tuple] = {}      # compile key -> (plan, its JSON document)
        self.verified: dict[tuple[str, str], object] = {}  # (plan text, switches) -> plan

    def own_plan(self, plan_dir: Path, options: dict | None):
        """The plan this agent compiles for the client's plan in `plan_dir`; a PartyError when
        the client's differs (a different catalog, switch or sqlmpc version)."""
        plan_dir = Path(plan_dir)
        opts = options or {}
        switches = json.dumps(opts, sort_keys=True)
        try:
            text = (plan_dir / "plan.json").read_text()
            # a plan text compared before (the same query again) needs no second comparison
            if (text, switches) in self.verified:
                return self.verified[(text, switches)]
            theirs = json.loads(text)
        except (OSError, ValueError) as e:
            raise PartyError(f"cannot read the plan {plan_dir / 'plan.json'}: {e}") from None
        plan, mine = self._compiled(theirs.get("sql", ""), bool(theirs.get("all_secure")), opts)
        where = first_difference(comparable(theirs, self.party), comparable(mine, self.party))
        if where is not None:
            raise PartyError(f"the plan in {plan_dir} differs from the one this agent compiles "
                             f"from its query with its catalog {self.catalog_path} (at {where}: "
                             f"a different catalog, option or sqlmpc version); not run")
        _remember(self.verified, (text, switches), plan)
        return plan

    def _compiled(self, sql: str, all_secure: bool, opts: dict):
        from ..config import compile_plan
        key = json.dumps([sql, all_secure, opts], sort_keys=True)
        if key not in self.plans:
            plan = compile_plan(sql, self.catalog, engine=self.engine,
                                dialect=opts.get("dialect"), all_secure=all_secure,
                                disable=tuple(opts.get("disable") or ()),
                                pad_inputs=opts.get("pad_inputs"),
                                join_bound=opts.get("join_bound"))
            _remember(self.plans, key, (plan, json.loads(plan.to_json())))
        return self.plans[key]


def _remember(cache: dict, key, value) -> None:
    """Keep at most PLAN_CACHE entries, the oldest dropped first."""
    if key not in cache and len(cache) >= PLAN_CACHE:
        cache.pop(next(iter(cache)))
    cache[key] = value
