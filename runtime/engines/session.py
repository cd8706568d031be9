"""What every engine session shares: the interface, the program loader, the in-process run.

An engine session runs a party's rendered local program (backends/<engine>, written to a file
by the runtime) and hands back its outputs as DataFrames with the plan's column names and
types. `InProcessSession` runs any engine whose program runs in the party's own process (an
embedded engine such as DuckDB) through its jobkit's `connect()` and `run_job()`
(backends/base.py); engines that need more (Spark: a cluster, a warm session, a subprocess)
have a runner module of their own here.
"""

from __future__ import annotations

import importlib
import os
import shutil
import threading
import types
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ...backends import validate
from ...compiler.errors import DataError, PartyError, SqlmpcError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from ...backends.base import LocalEngine
    from ...compiler.ir.plan import LocalJob


class EngineSession(Protocol):
    """A party's engine, opened once (`open_engine`) and used for one or many local jobs."""

    name: str

    def run(self, job: LocalJob, program: Path, folder: Path) -> dict[int, pd.DataFrame]:
        """Run the rendered program `program` of `job` (its work files go under `folder`);
        {output node: DataFrame}. DataError / PartyError with one-line messages."""

    def interrupt(self) -> None:
        """Stop this session's running job (a stopped query), best effort, from any thread."""

    def close(self) -> None:
        """Release the engine (a warm Spark session, a subprocess still running)."""


#: set by pyspark once a Spark Connect session exists, never unset by stop()
CONNECT_MODE_VARIABLES = ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE")


def party_environment(**extra: str) -> dict[str, str]:
    """The environment for a process that runs a party's engine: this one's, minus what would
    take its Spark elsewhere than its plan says (local, a cluster or a Connect server, chosen
    by the catalog and the command line): a caller's JVM (PYSPARK_GATEWAY_PORT) and pyspark's
    Connect-only marker (set once the caller opened a Connect session)."""
    env = {k: v for k, v in os.environ.items()
           if k not in CONNECT_MODE_VARIABLES and k != "PYSPARK_GATEWAY_PORT"}
    return env | extra


def restore_environment(saved: Mapping[str, str | None]) -> None:
    """Put environment variables back as `saved` ({name: value or None for unset})."""
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def load_program(program: Path, job: LocalJob) -> types.ModuleType:
    """The rendered program at `program` loaded as a module, not run: its PARTY, INPUTS and
    OUTPUTS (the same audited file a party runs by hand). Compiled once per distinct text (a
    party agent runs the same query's program again and again)."""
    try:
        text = Path(program).read_text()
    except OSError as e:
        raise PartyError(f"party {job.party}: cannot read its local program {program}: "
                         f"{e.strerror}") from None
    code = _CODE.get(text)
    if code is None:
        code = compile(text, str(program), "exec")
        if len(_CODE) >= 32:
            _CODE.pop(next(iter(_CODE)))
        _CODE[text] = code
    module = types.ModuleType(f"sqlmpc_local_job_{job.party}")
    module.__file__ = str(program)
    # data and imports only: its main() runs when the file is run as __main__, not here
    exec(code, module.__dict__)  # noqa: S102 -- the runtime wrote this file from its own plan
    if getattr(module, "PARTY", None) != job.party or not hasattr(module, "OUTPUTS"):
        raise PartyError(f"party {job.party}: {program} is not the local program of party "
                         f"{job.party}")
    return module


#: compiled programs by text (insertion-ordered: the oldest is dropped first)
_CODE: dict[str, types.CodeType] = {}


def to_frames(job: LocalJob, tables: Mapping[int, pa.Table]) -> dict[int, pd.DataFrame]:
    """The engine's output tables as DataFrames with the plan's names and plain types."""
    frames = {}
    for out in job.outputs:
        if out.node not in tables:
            raise PartyError(f"party {job.party}: the local job gave no output for node "
                             f"{out.node}")
        frames[out.node] = validate.to_frame(tables[out.node], out.columns)
    return frames


class InProcessSession:
    """An engine embedded in the party's process (DuckDB): one connection per job, which
    interrupt() interrupts. Warm (an agent's), the engine's database stays open and each job
    gets a connection of its own to it (its jobkit's ``cursor()``: opening a database takes
    about 10 ms), whose temporary views and tables vanish with it; nothing else lives between
    jobs. Not warm, each job opens a database of its own."""

    def __init__(self, engine: LocalEngine, party: str, *, workdir: Path, warm: bool = False,
                 quiet: bool = True) -> None:
        self.name = engine.name
        self.party = party
        self.workdir = Path(workdir)
        self.quiet = quiet
        try:
            self.jobkit = importlib.import_module(engine.jobkit)
        except ImportError as e:
            raise PartyError(f"party {party}: the {engine.name} engine cannot be loaded: "
                             f"{e}") from None
        self._lock = threading.Lock()
        self._con = None
        self._interrupted = False
        self._db = None  # warm: the database every job connects to
        if warm:  # the engine's library is loaded now, not during the first query
            if hasattr(self.jobkit, "cursor"):
                self._spill = self.workdir / f"{engine.name}-spill"
                self._db = self.jobkit.open_database(str(self._spill))
            else:
                self._connect(None).close()

    def _connect(self, folder: Path | None):
        try:
            return self.jobkit.connect(temp_dir=None if folder is None else str(folder))
        except PartyError as e:
            raise PartyError(f"party {self.party}: {e}") from None

    def run(self, job: LocalJob, program: Path, folder: Path) -> dict[int, pd.DataFrame]:
        validate.preflight(job)  # missing files and columns: the same message on every engine
        module = load_program(program, job)
        con = self._connect(folder) if self._db is None else self.jobkit.cursor(self._db)
        with self._lock:
            self._con, self._interrupted = con, False
        try:
            tables = self.jobkit.run_job(module.PARTY, module.INPUTS, module.OUTPUTS, con=con)
        except Exception as e:
            if self._interrupted:
                raise PartyError(f"party {job.party}: the local job was interrupted") from None
            if isinstance(e, SqlmpcError):
                raise
            raise DataError(f"party {job.party}: the local job failed in {self.name}: "
                            f"{validate.one_line(e)}") from None
        finally:
            with self._lock:
                self._con = None
            con.close()
        if not self.quiet:
            for out in job.outputs:
                print(f"party {job.party}: output node {out.node}: {tables[out.node].num_rows} "
                      f"rows")
        return to_frames(job, tables)

    def interrupt(self) -> None:
        with self._lock:
            if self._con is not None:
                self._interrupted = True
                self._con.interrupt()

    def close(self) -> None:
        self.interrupt()
        if self._db is not None:
            self._db.close()
            self._db = None
            shutil.rmtree(self._spill, ignore_errors=True)


__all__ = ["CONNECT_MODE_VARIABLES", "EngineSession", "InProcessSession", "load_program",
           "party_environment", "restore_environment", "to_frames"]
