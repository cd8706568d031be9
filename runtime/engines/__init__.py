"""How a party runs its local engine: one interface for every engine.

    session = open_engine("spark", "yellow", {"spark_master": "sc://10.0.0.5:15002"},
                          workdir=Path("work/yellow"), warm=True)
    program = folder / rendered.name       # rendered = local_engine("spark").render(job)
    program.write_text(rendered.text)
    frames = session.run(job, program, folder)   # {output node: DataFrame}
    session.interrupt()                           # from another thread: a stopped query
    session.close()

`warm=True` is a party agent's: the engine stays open between queries (Spark: one session,
reopened once when a Spark Connect server lost it). `warm=False` is `sqlmpc run`'s party
process: one job, then close(). A party without data (a helper) opens no engine.

An engine with a runner module here named after it (spark.py: clusters, warm sessions,
subprocesses) is opened by that module's `open_session`; any other engine runs in the party's
process through its backend's jobkit (session.InProcessSession). Adding an engine therefore
needs its backend folder and its line in backends.LOCAL_ENGINES, and nothing here.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from pathlib import Path

from ...backends import local_engine
from .session import EngineSession, InProcessSession, party_environment


def open_engine(name: str, party: str, options: Mapping[str, object], *, workdir: Path,
                warm: bool = False, quiet: bool = True) -> EngineSession:
    """The engine `name` for `party`, with the party's catalog settings `options` (e.g.
    spark_master); its work files go under `workdir`. SqlmpcError for an unknown engine,
    PartyError when a warm engine cannot be opened (one line each)."""
    engine = local_engine(name)
    runner = f"{__name__}.{engine.name}"
    if importlib.util.find_spec(runner) is not None:
        module = importlib.import_module(runner)
        opener = getattr(module, "open_session", None)
        if opener is not None:
            return opener(party, options, workdir=Path(workdir), warm=warm, quiet=quiet)
    return InProcessSession(engine, party, workdir=Path(workdir), warm=warm, quiet=quiet)


__all__ = ["EngineSession", "open_engine", "party_environment"]
