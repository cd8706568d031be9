"""Run a party's local job as its generated PySpark program, in a subprocess.

    frames = run_local_job(job, workdir=Path("work/yellow"))                # local[*]
    frames = run_local_job(job, workdir=..., master="spark://10.0.0.5:7077")  # standalone cluster

The program is written to `workdir/local_job_<party>.py` (the same text `sqlmpc compile`
writes for the party's auditor) and run with this Python; its outputs come back as Parquet
files `workdir/out/<node>.parquet` and are returned as DataFrames with the plan's column names
and types. Failures arrive as the program's one line `sqlmpc-local-job-error: ...` and become a
DataError (exit status 3) or a PartyError (4: Spark did not start, cluster unreachable).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import types
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from sqlmpc.compiler.errors import DataError, PartyError
from sqlmpc.compiler.ir.plan import LocalJob

from ...backends import validate
from ...backends.spark.codegen import ERROR_PREFIX, EXIT_DATA, EXIT_START, program_name, render_local_job


def run_local_job(job: LocalJob, *, workdir: Path, master: str | None = None,
                  remote: str | None = None, quiet: bool = True,
                  timeout: float | None = None) -> dict[int, pd.DataFrame]:
    """Run `job` with Spark; one DataFrame per output node, columns as LocalOutput.columns."""
    if master and remote:
        raise PartyError(f"party {job.party}: give a Spark master or a Spark Connect remote, "
                         f"not both")
    validate.preflight(job)  # missing files and columns fail before Spark's slow start
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    program = workdir / program_name(job)
    program.write_text(render_local_job(job))
    out = workdir / "out"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, str(program), "--out", str(out)]
    if master:
        cmd += ["--master", master]
    if remote:
        cmd += ["--remote", remote]
    if remote and timeout is None and os.environ.get("SQLMPC_SPARK_SUBPROCESS") != "1":
        status, error, tail = _run_in_process(program, cmd[2:], cwd=workdir, quiet=quiet,
                                              party=job.party)
    else:
        status, error, tail = _run(cmd, cwd=workdir, quiet=quiet, timeout=timeout,
                                   party=job.party)
    if status != 0:
        message = error or (f"party {job.party}: the local Spark job failed (exit status "
                            f"{status})" + (f": {tail}" if tail else ""))
        if not message.startswith(f"party {job.party}"):
            message = f"party {job.party}: {message}"
        if status == EXIT_DATA:
            raise DataError(message)
        raise PartyError(message) if status == EXIT_START or error is None else DataError(message)
    results = {}
    for o in job.outputs:
        path = out / f"{o.node}.parquet"
        try:
            table = pq.read_table(path)
        except (OSError, ValueError) as e:
            raise PartyError(f"party {job.party}: the local Spark job wrote no readable output "
                             f"for node {o.node}: {e}") from None
        results[o.node] = validate.to_frame(table, o.columns)
    return results


def _run(cmd: list[str], *, cwd: Path, quiet: bool, timeout: float | None,
         party: str) -> tuple[int, str | None, str]:
    """Run the program; (exit status, its error line or None, its last stderr line)."""
    env = party_environment()
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, text=True, errors="replace",
                                stdout=subprocess.DEVNULL if quiet else None,
                                stderr=subprocess.PIPE, start_new_session=True)
    except OSError as e:
        raise PartyError(f"party {party}: cannot start the local Spark job: {e}") from None
    found: list[str] = []
    last: list[str] = []

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith(ERROR_PREFIX):
                found.append(line[len(ERROR_PREFIX):].strip())
            elif line.strip():
                last[:] = [line.strip()]
            if not quiet:
                sys.stderr.write(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        status = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise PartyError(f"party {party}: the local Spark job did not finish within "
                         f"{timeout:g} s") from None
    except BaseException:
        _kill(proc)
        raise
    reader.join(timeout=10)
    return status, (found[0] if found else None), (last[0] if last else "")


class _Lines(io.TextIOBase):
    """A stderr stand-in that keeps the program's lines (and passes them on unless quiet)."""

    def __init__(self, passthrough) -> None:
        self.text: list[str] = []
        self.passthrough = passthrough

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self.text.append(s)
        if self.passthrough is not None:
            self.passthrough.write(s)
        return len(s)


def _run_in_process(program: Path, argv: list[str], *, cwd: Path, quiet: bool,
                    party: str) -> tuple[int, str | None, str]:
    """Run the program's main() in this process; same results as _run().

    Only for Spark Connect (--remote): the program is then just a Spark client, with no JVM
    of its own to stop, so a second Python start-up and a second import of pyspark, pandas
    and pyarrow (about a second per party, the largest part of a warm run's fixed cost) buy
    nothing. The same audited file is executed. SQLMPC_SPARK_SUBPROCESS=1 turns this off.
    """
    module = types.ModuleType(f"sqlmpc_local_job_{party}")
    module.__file__ = str(program)
    err = _Lines(None if quiet else sys.stderr)
    out = sys.stderr if not quiet else io.StringIO()  # never into the caller's stdout
    here = os.getcwd()
    # pyspark marks the whole process as a Spark Connect client once a remote session exists
    # (these variables); the caller's later local-mode sessions and subprocesses must not be
    env = {k: os.environ.get(k) for k in CONNECT_MODE_VARIABLES}
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            os.chdir(cwd)
            try:
                exec(_compiled(program), module.__dict__)
                status = module.main(argv)
            except Exception as e:  # noqa: BLE001 -- the program reports its own; a safety net
                status = EXIT_DATA
                err.write(f"{ERROR_PREFIX}party {party}: the local job failed: "
                          f"{type(e).__name__}: {e}\n")
    finally:
        os.chdir(here)
        restore_environment(env)
    lines = [ln.strip() for ln in "".join(err.text).splitlines() if ln.strip()]
    found = [ln[len(ERROR_PREFIX.strip()):].strip() for ln in lines
             if ln.startswith(ERROR_PREFIX.strip())]
    return int(status or 0), (found[0] if found else None), (lines[-1] if lines else "")


#: set by pyspark when a Spark Connect session is created, never unset by stop()
CONNECT_MODE_VARIABLES = ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE")


def party_environment(**extra: str) -> dict[str, str]:
    """The environment for a process that runs a party's Spark: this one's, minus what would
    take its Spark elsewhere than its plan says (local, a cluster or a Connect server, chosen
    by the catalog and the command line): a caller's JVM (PYSPARK_GATEWAY_PORT) and pyspark's
    Connect-only marker (set once the caller opened a Connect session)."""
    env = {k: v for k, v in os.environ.items()
           if k not in CONNECT_MODE_VARIABLES and k != "PYSPARK_GATEWAY_PORT"}
    return env | extra


def restore_environment(saved: dict[str, str | None]) -> None:
    """Put environment variables back as `saved` ({name: value or None for unset})."""
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _compiled(program: Path) -> types.CodeType:
    """The program's code object; compiled once per distinct text (an agent runs the same
    query's program again and again)."""
    text = program.read_text()
    code = _CODE.get(text)
    if code is None:
        code = compile(text, str(program), "exec")
        if len(_CODE) >= 32:
            _CODE.pop(next(iter(_CODE)))
        _CODE[text] = code
    return code


#: compiled programs by text (insertion-ordered: the oldest is dropped first)
_CODE: dict[str, types.CodeType] = {}


def _kill(proc: subprocess.Popen) -> None:
    """Stop the program and the JVM it started (its own process group)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


__all__ = ["run_local_job"]
