"""How a party runs its Spark: a warm session in the party agent, else the program as is.

    session = open_session("yellow", {"spark_master": "sc://10.0.0.5:15002"}, workdir=w)
    frames = session.run(job, program, folder)     # {node: DataFrame}
    session.close()

- warm (a party agent): one Spark session for the agent's life, opened at once: Spark
  Connect (`sc://`) or a driver in the agent's process (local[N] or a standalone cluster
  `spark://`). Each job runs the program's values in it (jobkit.run_job); a Connect server
  that restarted or expired the session (SESSION_GONE) gets a new session and the job is
  retried once. interrupt() interrupts the session's running Spark jobs.
- not warm (`sqlmpc run`'s party process): Spark Connect in this process, for the job's
  length (the program is then only a Spark client: a second Python start-up buys nothing);
  local mode and standalone clusters run the program itself, `python local_job_X.py --out
  DIR [--master URL]`, in its own process group (its JVM included), which interrupt() and
  close() stop. SQLMPC_SPARK_SUBPROCESS=1 runs Spark Connect jobs that way too.

Failures are the program's one line (`sqlmpc-local-job-error: ...`, exit status 3 or 4), or the
same message raised in process: DataError for bad data and failed queries, PartyError when
Spark cannot start or be reached (a cluster or server that is not listening fails at once).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from ...backends import validate
from ...backends.validate import ERROR_PREFIX, EXIT_DATA, EXIT_START
from ...compiler.errors import DataError, PartyError, SqlmpcError
from .session import (
    CONNECT_MODE_VARIABLES,
    load_program,
    party_environment,
    restore_environment,
    to_frames,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from ...compiler.ir.plan import LocalJob

#: Spark Connect errors after which a warm session is opened again and the job retried once
#: (the server restarted, or expired the party's idle session)
SESSION_GONE = ("INVALID_HANDLE", "SESSION_NOT_FOUND", "SESSION_CLOSED", "UNAVAILABLE")


def check_reachable(party: str, url: str) -> None:
    """Fail at once (instead of Spark's minute of retries) when a standalone master or a Spark
    Connect server is not listening."""
    default_port = 15002 if url.startswith("sc://") else 7077
    for address in urlparse(url).netloc.split(","):
        host, _, port = address.rpartition(":")
        host, port = (host, port) if host else (address, "")
        try:
            socket.create_connection((host, int(port or default_port)), timeout=5).close()
        except (OSError, ValueError) as e:
            raise PartyError(f"party {party}: cannot reach Spark at {url}: "
                             f"{validate.one_line(e)}") from None


class SparkEngineSession:
    """A party's Spark (see the module docstring)."""

    name = "spark"

    def __init__(self, party: str, master: str | None = None, remote: str | None = None, *,
                 workdir: Path, warm: bool = False, quiet: bool = True,
                 timeout: float | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        if master and remote:
            raise PartyError(f"party {party}: give a Spark master or a Spark Connect remote, "
                             f"not both")
        self.party, self.master, self.remote = party, master, remote
        self.workdir, self.warm, self.quiet, self.timeout = Path(workdir), warm, quiet, timeout
        self.log = log
        self.spark = None          # the warm session
        self._lock = threading.Lock()
        self._active = None        # the session whose job runs now (in this process)
        self._proc: subprocess.Popen | None = None  # the program's process, when it runs
        self._interrupted = False
        if warm:
            self.spark = self._open()

    # -- the session --
    def _open(self):
        """A Spark session for this party, ready for its first query."""
        from ...backends.spark import jobkit

        if self.remote or (self.master or "").startswith("spark://"):
            check_reachable(self.party, self.remote or self.master)
        spark = jobkit.start_spark(self.party, master=self.master or "local[*]",
                                   remote=self.remote, app_name=f"sqlmpc agent ({self.party})")
        try:
            spark.sql("SELECT 1").collect()  # first-query set-up (plans, RPC) happens now
        except Exception as e:  # noqa: BLE001 -- one line, no Java trace
            jobkit.stop_quietly(spark)
            raise PartyError(f"party {self.party}: cannot open Spark "
                             f"({self.remote or self.master or 'local[*]'}): "
                             f"{validate.one_line(e)}") from None
        return spark

    def close(self) -> None:
        self.interrupt()
        with self._lock:
            spark, self.spark = self.spark, None
        if spark is not None:
            from ...backends.spark import jobkit
            jobkit.stop_quietly(spark)

    def interrupt(self) -> None:
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._interrupted = True
                _signal_group(self._proc, signal.SIGTERM)
            elif self._active is not None:
                self._interrupted = True
                with contextlib.suppress(Exception):  # best effort: the job runs to its end
                    interrupt = getattr(self._active, "interruptAll", None)
                    if interrupt is not None:
                        interrupt()
                    else:
                        self._active.sparkContext.cancelAllJobs()

    # -- a job --
    def run(self, job: LocalJob, program: Path, folder: Path) -> dict[int, pd.DataFrame]:
        validate.preflight(job)  # missing files and columns fail before Spark's slow start
        folder = Path(folder).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        self._interrupted = False
        if self.warm:
            return to_frames(job, self._run_warm(job, program))
        if self.remote and self.timeout is None and \
                os.environ.get("SQLMPC_SPARK_SUBPROCESS") != "1":
            return to_frames(job, self._run_connect(job, program))
        return self._run_program(job, program, folder)

    def _run_warm(self, job: LocalJob, program: Path) -> dict[int, pa.Table]:
        if self.spark is None:
            self.spark = self._open()
        try:
            return self._run_in(self.spark, job, program)
        except SqlmpcError as e:
            if self._interrupted or not any(k in str(e) for k in SESSION_GONE):
                raise
        if self.log is not None:
            self.log(f"party {self.party}: the Spark session was lost; opening a new one")
        from ...backends.spark import jobkit
        jobkit.stop_quietly(self.spark)
        self.spark = self._open()
        return self._run_in(self.spark, job, program)

    def _run_connect(self, job: LocalJob, program: Path) -> dict[int, pa.Table]:
        """A Spark Connect session in this process for one job; the caller's environment is
        left as it was (pyspark would mark the whole process as a Connect client, and the
        caller's later local-mode sessions and subprocesses must not be)."""
        from ...backends.spark import jobkit

        saved = {k: os.environ.get(k) for k in CONNECT_MODE_VARIABLES}
        try:
            check_reachable(self.party, self.remote)
            spark = jobkit.start_spark(self.party, remote=self.remote)
            try:
                return self._run_in(spark, job, program)
            finally:
                jobkit.stop_quietly(spark)
        finally:
            restore_environment(saved)

    def _run_in(self, spark, job: LocalJob, program: Path) -> dict[int, pa.Table]:
        """The program's values run in `spark`; Spark's own errors as one DataError line."""
        from ...backends.spark import jobkit

        module = load_program(program, job)
        with self._lock:
            self._active = spark
        try:
            return jobkit.run_job(spark, module.PARTY, module.INPUTS, module.OUTPUTS)
        except SqlmpcError:
            raise
        except Exception as e:  # noqa: BLE001 -- a Spark error: one line, never a Java trace
            if self._interrupted:
                raise PartyError(f"party {job.party}: the local job was interrupted") from None
            raise DataError(f"party {job.party}: the local job failed in Spark: "
                            f"{validate.one_line(e)}") from None
        finally:
            with self._lock:
                self._active = None

    def _run_program(self, job: LocalJob, program: Path,
                     folder: Path) -> dict[int, pd.DataFrame]:
        """`python program --out folder/out [...]` in its own process group; its outputs."""
        import shutil

        import pyarrow.parquet as pq

        target = self.master or self.remote
        if target and target.startswith(("spark://", "sc://")):
            check_reachable(self.party, target)
        out = folder / "out"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, str(Path(program).resolve()), "--out", str(out)]
        if self.master:
            cmd += ["--master", self.master]
        if self.remote:
            cmd += ["--remote", self.remote]
        status, error, tail = self._run_process(cmd, folder)
        if status != 0:
            if self._interrupted:
                raise PartyError(f"party {job.party}: the local job was interrupted")
            message = error or (f"party {job.party}: the local Spark job failed (exit status "
                                f"{status})" + (f": {tail}" if tail else ""))
            if not message.startswith(f"party {job.party}"):
                message = f"party {job.party}: {message}"
            if status == EXIT_DATA:
                raise DataError(message)
            raise PartyError(message) if status == EXIT_START or error is None \
                else DataError(message)
        tables = {}
        for o in job.outputs:
            try:
                tables[o.node] = pq.read_table(out / f"{o.node}.parquet")
            except (OSError, ValueError) as e:
                raise PartyError(f"party {job.party}: the local Spark job wrote no readable "
                                 f"output for node {o.node}: {e}") from None
        return to_frames(job, tables)

    def _run_process(self, cmd: list[str], cwd: Path) -> tuple[int, str | None, str]:
        """Run the program; (exit status, its error line or None, its last stderr line)."""
        env = party_environment()
        env.setdefault("PYSPARK_PYTHON", sys.executable)
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, text=True, errors="replace",
                                    stdout=subprocess.DEVNULL if self.quiet else None,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as e:
            raise PartyError(f"party {self.party}: cannot start the local Spark job: {e}") \
                from None
        with self._lock:
            self._proc = proc
        found: list[str] = []
        last: list[str] = []

        def pump() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                if line.startswith(ERROR_PREFIX):
                    found.append(line[len(ERROR_PREFIX):].strip())
                elif line.strip():
                    last[:] = [line.strip()]
                if not self.quiet:
                    sys.stderr.write(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            status = proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _stop(proc)
            raise PartyError(f"party {self.party}: the local Spark job did not finish within "
                             f"{self.timeout:g} s") from None
        except BaseException:
            _stop(proc)
            raise
        finally:
            with self._lock:
                self._proc = None
        reader.join(timeout=10)
        return status, (found[0] if found else None), (last[0] if last else "")


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _stop(proc: subprocess.Popen) -> None:
    """Stop the program and the JVM it started (its own process group)."""
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()


def open_session(party: str, options: Mapping[str, object], *, workdir: Path,
                 warm: bool = False, quiet: bool = True) -> SparkEngineSession:
    """The Spark of `party` with its catalog settings (`spark_master`: local[N],
    spark://HOST:PORT or sc://HOST:PORT; default local[*])."""
    master = options.get("spark_master") or None
    if master is not None and not isinstance(master, str):
        raise PartyError(f"party {party}: spark_master must be text, got {master!r}")
    remote = master if master and master.startswith("sc://") else None
    return SparkEngineSession(party, None if remote else master, remote, workdir=workdir,
                              warm=warm, quiet=quiet)


def run_local_job(job: LocalJob, *, workdir: Path, master: str | None = None,
                  remote: str | None = None, quiet: bool = True,
                  timeout: float | None = None) -> dict[int, pd.DataFrame]:
    """Render `job` to workdir/local_job_<party>.py and run it once (`sqlmpc run`'s way);
    one DataFrame per output node, columns as LocalOutput.columns."""
    from ...backends.spark import ENGINE

    session = SparkEngineSession(job.party, master, remote, workdir=workdir, quiet=quiet,
                                 timeout=timeout)
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    rendered = ENGINE.render(job)
    program = workdir / rendered.name
    program.write_text(rendered.text)
    try:
        return session.run(job, program, workdir)
    finally:
        session.close()


__all__ = ["SESSION_GONE", "SparkEngineSession", "open_session", "run_local_job"]
