"""THE per-party sequence of one query: own parts -> local job -> share -> MPC -> reveal -> report.

Every way of running a party uses it: the party processes of `sqlmpc run`
(`python -m sqlmpc.runtime.party SPEC.json`), `sqlmpc party NAME` on a party's own machine, and
the long-lived party agent (`sqlmpc agent`), which adds only its server loop.

    spec = PartySpec(party="yellow", pid=0, addresses=[...], plan_dir=..., workdir=...,
                     engine="duckdb")
    outcome = PartyRun(spec, PartyPlan.from_folder(spec.plan_dir, "yellow"), reporter).execute()
    outcome.result, outcome.stats, outcome.error       # error: one line naming the party

1. The party's local job reads only its own parts on its own engine (runtime/engines), from the
   program its engine's backend renders (runtime/artifacts.py). A party without data (a helper)
   never opens an engine.
2. The rows of every "share" output are encoded for MPC (the plan's columns and types).
3. The secure program runs in this process over MPyC (runtime/mpc_session.py), which connects
   to the peers (mutual TLS with the party's identity_dir) while the local job still runs.
4. Only a recipient's program reveals the result; the outcome carries it and the statistics
   (seconds per step, wall-clock marks, shared and revealed rows).

A failure of any kind becomes `outcome.error`, one line naming the party; `stop(reason)`
(from any thread) interrupts the running local job and cancels the protocol.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..compiler.errors import PartyError, SqlmpcError
from ..compiler.ir.plan import LocalJob, LocalOutput, PartInput
from .mpc_session import CONNECT_TIMEOUT, Cancelled, MpcSession
from .report import Reporter, failure_line, named

#: the secure program's one fixed-point type (bits, fractional bits): shares are encoded for it
SECFXP = (96, 32)
#: a stopped query's local job is interrupted again and again until it returns, this long
INTERRUPT_WAIT = 60.0
#: a Cancelled message that already says how the query ended (a peer with another plan)
SAID_STOPPED = "stopped before any data was shared"


@dataclass
class PartySpec:
    """What one party needs to know to run its part of one query.

    `plan_dir` holds plan.json and the secure program (runtime/artifacts.py); `workdir` is the
    party's own folder (its program, its outputs, its result); `engine` and `engine_options`
    are its local engine and that engine's settings (None: a party without a local job).
    """

    party: str
    pid: int
    addresses: list[str]
    plan_dir: Path
    workdir: Path
    engine: str | None = None
    engine_options: dict[str, Any] = field(default_factory=dict)
    identity_dir: str | None = None  # the party's identity folder: MPyC over mutual TLS
    # sha256 of the plan it runs (runtime/deployment.plan_digest): every compute party checks
    # that its peers run the same plan before any share is sent (runtime/mpc_session.py)
    plan_digest: str | None = None
    connect_timeout: float = CONNECT_TIMEOUT
    spawned: float | None = None  # wall clock when the party was asked to run (for --stats)

    def to_json(self) -> str:
        doc = asdict(self)
        for key in ("plan_dir", "workdir", "identity_dir"):
            doc[key] = None if doc[key] is None else str(doc[key])
        return json.dumps(doc)

    @classmethod
    def from_json(cls, text: str) -> PartySpec:
        try:
            doc = json.loads(text)
            spec = cls(**doc)
        except (ValueError, TypeError) as e:
            raise PartyError(f"not a party specification: {e}") from None
        spec.plan_dir, spec.workdir = Path(spec.plan_dir), Path(spec.workdir)
        spec.identity_dir = str(spec.identity_dir) if spec.identity_dir else None
        return spec


@dataclass
class PartyPlan:
    """What one party needs of a compiled plan: its local job, the compute parties, the result's
    columns, and the secure program's file."""

    party: str
    job: LocalJob | None
    needs_mpc: bool
    compute_parties: list[str]
    result_columns: list[tuple[str, str]]
    secure_program: Path | None

    @classmethod
    def from_folder(cls, plan_dir: Path, party: str) -> PartyPlan:
        """From the files `sqlmpc compile` writes (plan.json, the secure program)."""
        from .artifacts import SECURE_PROGRAM
        try:
            doc = json.loads((Path(plan_dir) / "plan.json").read_text())
        except (OSError, ValueError) as e:
            raise PartyError(f"cannot read the plan {Path(plan_dir) / 'plan.json'}: {e}") \
                from None
        return cls(party, local_job_from_doc(doc, party), bool(doc["needs_mpc"]),
                   list(doc["compute_parties"]), [tuple(c) for c in doc["result_columns"]],
                   Path(plan_dir) / SECURE_PROGRAM if doc["needs_mpc"] else None)

    @classmethod
    def from_plan(cls, plan, party: str, folder: Path) -> PartyPlan:
        """From a compiled Plan; the secure program is rendered into `folder`."""
        from .artifacts import secure_program
        program = None
        if plan.needs_mpc:
            rendered = secure_program(plan)
            program = Path(folder) / rendered.name
            program.parent.mkdir(parents=True, exist_ok=True)
            program.write_text(rendered.text)
        return cls(party, plan.local_jobs.get(party), plan.needs_mpc,
                   list(plan.compute_parties), list(plan.result_columns), program)


def local_job_from_doc(doc: dict, party: str) -> LocalJob | None:
    """`party`'s LocalJob from a plan.json document (None: it has no data in the query)."""
    d = doc["local_jobs"].get(party)
    if d is None:
        return None
    return LocalJob(party, [PartInput(**i) for i in d["inputs"]],
                    [LocalOutput(**{**o, "columns": [tuple(c) for c in o["columns"]]})
                     for o in d["outputs"]])


@dataclass
class PartyOutcome:
    """How one party's run ended: its statistics, the result it received, or its error."""

    stats: dict
    result: Any = None        # a pandas DataFrame at a recipient, else None
    error: str | None = None  # one line naming the party

    @property
    def ok(self) -> bool:
        return self.error is None

    def write(self, folder: Path) -> None:
        """stats.json and (at a recipient) result.csv into the party's folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "stats.json").write_text(json.dumps(self.stats))
        if self.result is not None:
            self.result.to_csv(folder / "result.csv", index=False)


def announced_rows(rows: int, pad: int | str | None) -> int:
    """How many rows the other parties learn this party shares: its row count, or with
    padding the padded count ("pow2": the next power of two; a number: that public bound).
    Statistics report this, never a count the padding hides."""
    if pad is None:
        return rows
    if pad == "pow2":
        return 1 << max(rows - 1, 0).bit_length()
    return max(int(pad), rows)


def encode_shares(job: LocalJob | None, frames: dict) -> tuple[dict, int]:
    """This party's rows of every "share" output of its local job, encoded for input into MPC
    ({node: encoded}, and how many rows in all as the others learn it: padded counts where
    the output is padded); an EncodingError names the bad column."""
    from ..backends.mpyc.support import encode_frame
    inputs, rows = {}, 0
    for o in job.outputs if job else []:
        if o.kind == "share":
            df = frames[o.node]
            inputs[o.node] = encode_frame(df, [c for c, _ in o.columns],
                                          [t for _, t in o.columns], o.public_columns,
                                          *SECFXP, nullable=o.nullable)
            rows += announced_rows(len(df), o.pad)
    return inputs, rows


def load_program(path: Path):
    """The secure program at `path` as a module (its `main(inputs)` is the protocol)."""
    spec = importlib.util.spec_from_file_location("sqlmpc_secure_job", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class PartyRun:
    """One party's run of one query: see the module docstring.

    `engine`: an engine session opened beforehand and kept afterwards (a party agent's warm
    one); without it the run opens its party's engine itself when it has a local job, and
    closes it at the end.
    """

    def __init__(self, spec: PartySpec, plan: PartyPlan, reporter: Reporter, *,
                 engine=None) -> None:
        self.spec = spec
        self.plan = plan
        self.reporter = reporter
        self.engine = engine
        self.own_engine = engine is None
        self.session: MpcSession | None = None
        self.stopped: str | None = None
        self.job_running = False
        self.lock = threading.Lock()
        self.t0 = time.perf_counter()
        self.stats: dict = {"party": spec.party, "shared_rows": 0, "seconds": {},
                            "t": {"spawned": spec.spawned or time.time(), "start": time.time()}}

    # -- the sequence --
    def execute(self) -> PartyOutcome:
        """Run the party's part to its end; never raises for a failure of the query (a stop
        by a signal, SystemExit or KeyboardInterrupt, still propagates after the clean-up)."""
        here = os.getcwd()
        try:
            Path(self.spec.workdir).mkdir(parents=True, exist_ok=True)
            if self.plan.needs_mpc:
                self.session = MpcSession(self.plan.compute_parties, self.spec.pid,
                                          self.spec.addresses,
                                          identity_dir=self.spec.identity_dir,
                                          connect_timeout=self.spec.connect_timeout,
                                          plan_digest=self.spec.plan_digest,
                                          log=self.reporter.progress)
                if self.stopped:
                    self.session.stop(self.stopped)
            frames = self._local_step()
            if not self.plan.needs_mpc:
                return self._finish(self._plaintext_result(frames))
            inputs = self._share_step(frames)
            return self._finish(self._secure_step(inputs))
        except Cancelled as e:
            said = str(e) if str(e).endswith(SAID_STOPPED) else f"{e}; stopped without a result"
            return self._failed(named(self.spec.party, said))
        except Exception as e:  # noqa: BLE001 -- one line, never a traceback
            if self.stopped:  # what the stop caused (an interrupted job) is not the news
                return self._failed(named(self.spec.party, f"{self.stopped}; stopped without "
                                                           f"a result"))
            if os.environ.get("SQLMPC_DEBUG") and not isinstance(e, SqlmpcError):
                raise
            return self._failed(failure_line(self.spec.party, e))
        finally:
            os.chdir(here)
            if self.session is not None:
                self.session.close()
            if self.own_engine and self.engine is not None:
                self.engine.close()

    def _local_step(self) -> dict:
        """The local job on the party's engine ({output node: DataFrame}); with MPC, the
        connections to the peers are made meanwhile."""
        job = self.plan.job
        frames: dict = {}
        if job is not None:
            if self.session is not None:
                self.session.connect_early()
            self.reporter.progress(f"local job: running on {self.spec.engine} "
                                   f"({len(job.inputs)} data file(s))")
            started = time.perf_counter()
            try:
                if self.session is not None:
                    frames = self.session.run_blocking(self._run_job, job)
                else:
                    frames = self._run_job(job)
            except BaseException:
                # the query ends (a lost peer, a stop, a signal) while the job may still run
                # in its thread or process: stop it before anything else can start
                self.interrupt_job()
                raise
            self.stats["seconds"]["local_job"] = time.perf_counter() - started
            self.reporter.progress("local job: done")
        self.stats["seconds"]["local"] = time.perf_counter() - self.t0
        self.stats["t"]["local_done"] = time.time()
        if self.stopped:
            raise Cancelled(self.stopped)
        if self.session is not None and self.session.error:
            raise Cancelled(self.session.error)
        return frames

    def _run_job(self, job: LocalJob) -> dict:
        """The party's program, rendered by its engine's backend and written into its folder,
        run by its engine session (opened here unless given)."""
        from .artifacts import local_program
        rendered = local_program(job, self.spec.engine)
        folder = Path(self.spec.workdir)
        program = folder / rendered.name
        program.write_text(rendered.text)
        if self.engine is None:
            from .engines import open_engine
            self.engine = open_engine(self.spec.engine, self.spec.party,
                                      self.spec.engine_options, workdir=self.spec.workdir)
        with self.lock:
            if self.stopped:
                raise Cancelled(self.stopped)
            self.job_running = True
        try:
            return self.engine.run(job, program, folder)
        finally:
            with self.lock:
                self.job_running = False

    def _plaintext_result(self, frames: dict):
        """Without MPC the one local job computes the result itself."""
        (node,) = [o for o in self.plan.job.outputs if o.kind == "result"]
        df = frames[node.node]
        df.columns = [c for c, _ in self.plan.result_columns]
        for c, t in self.plan.result_columns:  # an outer join's NULLs keep integers integral
            if t == "int" and df[c].dtype.kind == "f":
                df[c] = df[c].astype("Int64")
        self.stats["seconds"]["secure"] = 0.0
        return df

    def _share_step(self, frames: dict) -> dict:
        from ..backends.mpyc.lib.encoding import EncodingError
        try:
            inputs, self.stats["shared_rows"] = encode_shares(self.plan.job, frames)
        except EncodingError as e:
            raise PartyError(f"{self.spec.party}: cannot share its rows into MPC: {e}") from None
        return inputs

    def _secure_step(self, inputs: dict):
        """The secure program over MPyC; the revealed result at a recipient, else None."""
        session = self.session
        module = load_program(self.plan.secure_program)
        self.reporter.progress(f"secure job: connecting to {len(self.spec.addresses) - 1} "
                               f"other compute parties")
        t1 = time.perf_counter()
        cpu = time.thread_time()
        self.stats["t"]["secure_start"] = time.time()
        frame = session.run_program(module.main, inputs)
        end = time.perf_counter()
        self.stats["seconds"]["secure_cpu"] = time.thread_time() - cpu
        connected = session.connected_at or t1
        self.stats["seconds"]["connect_wait"] = connected - t1
        self.stats["seconds"]["secure"] = end - connected
        if frame is not None:
            self.stats["revealed_rows"] = len(frame)
        self.reporter.progress("secure job: done")
        return frame

    def _finish(self, result) -> PartyOutcome:
        self.stats["seconds"]["total"] = time.perf_counter() - self.t0
        self.stats["t"]["end"] = time.time()
        return PartyOutcome(self.stats, result)

    def _failed(self, message: str) -> PartyOutcome:
        self.stats["seconds"]["total"] = time.perf_counter() - self.t0
        self.stats["t"]["end"] = time.time()
        return PartyOutcome(self.stats, None, message)

    # -- stopping from outside --
    def stop(self, reason: str) -> None:
        """Stop this run from any thread: its local job is interrupted (until it returned), the
        protocol cancelled; the outcome's error then says `reason`."""
        with self.lock:
            if self.stopped is None:
                self.stopped = reason
        self.interrupt_job()
        if self.session is not None:
            self.session.stop(reason)

    def interrupt_job(self, wait: float = INTERRUPT_WAIT) -> bool:
        """Interrupt this run's local job while it runs, again and again until it returned
        (after one interrupt it may start its next engine action), at most `wait` seconds;
        never anything of another run. Whether it had to interrupt."""
        deadline = time.monotonic() + wait
        interrupted = False
        while time.monotonic() < deadline:
            with self.lock:
                if not self.job_running or self.engine is None:
                    return interrupted
                if not interrupted:
                    self.reporter.progress("stopped: interrupting the local job")
                interrupted = True
                try:
                    self.engine.interrupt()
                except Exception:  # noqa: BLE001 -- best effort: the job then runs to its end
                    return interrupted
            time.sleep(0.2)
        return interrupted
