"""`sqlmpc agent NAME`: one party's long-lived process, started once, serving many queries.

A deployment runs one agent per party next to that party's engine, the way each organisation
keeps its cluster running:

    sqlmpc agent company1 --catalog catalog.toml --listen 127.0.0.1:7401
    sqlmpc agent company2 --catalog catalog.toml --listen 127.0.0.1:7402   # ... one per party
    sqlmpc run query.sql --catalog catalog.toml \
        --agents company1=127.0.0.1:7401,company2=127.0.0.1:7402,...

An agent imports everything once (pandas, pyarrow, MPyC, the compiler) and opens its party's
engine once (warm: a Spark session, a DuckDB connection) and keeps it; per query it runs the
same per-party sequence as a party process (runtime/party_run.py) in-process. The wire format
is in protocol.py, the client in client.py.

What an agent runs is what IT compiles (plan_check.py): no program text from the client is
executed, and its local job reads only its own parts of its own catalog, on the engine its own
catalog (or its --engine) names. The result is sent back only by a recipient's agent. One query
at a time: a request while a query runs waits BUSY_WAIT seconds, then is refused as busy.
Agents listen on localhost by default and trust whoever can connect (no authentication): bind
them to addresses only the parties' own hosts can reach.
"""

from __future__ import annotations

import faulthandler
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from ...compiler.errors import PartyError, SqlmpcError
from ..config import engine_options, load_catalog
from ..mpc_session import CONNECT_TIMEOUT, load_mpc
from ..party_run import PartyPlan, PartyRun, PartySpec
from ..report import failure_line
from .plan_check import PlanChecker
from .protocol import (
    PROTOCOL_VERSION,
    JsonLinesReporter,
    error_reply,
    ok_reply,
    parse_address,
    send,
)

BUSY_WAIT = 10.0  # a new query waits this long for the one before it to finish
CLIENT_GONE = "the client closed the connection (the run was stopped elsewhere)"


class Agent:
    """One party's long-lived process: see the module docstring."""

    def __init__(self, name: str, catalog_path: Path, *, engine: str | None = None,
                 spark_master: str | None = None, listen: str = "127.0.0.1:0",
                 workdir: Path | None = None, quiet: bool = False,
                 keep_work: bool = False) -> None:
        from ...backends import party_engines
        self.name = name
        self.catalog_path = Path(catalog_path).resolve()
        self.catalog = load_catalog(self.catalog_path)
        if name not in self.catalog.parties:
            raise SqlmpcError(f"unknown party {name!r} in {catalog_path} (parties: "
                              f"{', '.join(self.catalog.parties)})")
        self.engine = party_engines(self.catalog, engine)[name]
        self.engine_options = engine_options(self.catalog, name, self.engine,
                                             {"spark_master": spark_master})
        self.checker = PlanChecker(name, self.catalog, self.catalog_path, engine)
        self.listen = parse_address(listen, "--listen")
        self.own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"sqlmpc-agent-{name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.quiet = quiet
        self.log_stream = sys.stderr  # kept: a local job running in-process may capture stderr
        self.keep_work = keep_work
        self.queries = 0
        self.busy = threading.Lock()
        self.engine_session = None
        self.sock: socket.socket | None = None
        self.address: str | None = None
        self.stopping = threading.Event()

    # -- start-up: everything a query needs, once --
    def start(self) -> str:
        """Import, open the party's engine, bind the socket; returns the address it serves on."""
        t0 = time.perf_counter()
        load_mpc()
        import gc

        import pandas  # noqa: F401 -- imported now, not during the first query
        import pyarrow.parquet  # noqa: F401

        from ...compiler.planner import compile_query  # noqa: F401
        if self.holds_data():  # a party without data (a helper) never runs a local job
            from ..engines import open_engine
            self.engine_session = open_engine(self.engine, self.name, self.engine_options,
                                              workdir=self.workdir, warm=True, quiet=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind(self.listen)
        except OSError as e:
            raise PartyError(f"agent {self.name}: cannot listen on {self.listen[0]}:"
                             f"{self.listen[1]}: {e.strerror}") from None
        self.sock.listen(16)
        # the imported modules live as long as the agent: keep them out of every garbage
        # collection of the queries (MPyC makes many short-lived objects)
        gc.collect()
        gc.freeze()
        host, port = self.sock.getsockname()[:2]
        self.address = f"{host}:{port}"
        self.log(f"agent {self.name} serving on {self.address} (engine {self.engine_label()}; "
                 f"ready in {time.perf_counter() - t0:.1f} s)")
        return self.address

    def holds_data(self) -> bool:
        """Whether any table of its catalog has a part at this party."""
        return any(self.name in t.parts for t in self.catalog.tables.values())

    def engine_label(self) -> str:
        from ...backends import local_engine
        if not self.holds_data():
            return "not needed (no data)"
        return local_engine(self.engine).describe(self.engine_options)

    def log(self, message: str) -> None:
        if not self.quiet:
            print(f"sqlmpc: {message}", file=self.log_stream, flush=True)

    # -- serving --
    def serve_forever(self) -> None:
        assert self.sock is not None
        self.sock.settimeout(0.5)  # wake up to notice stop requests
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self.stopping.is_set():
                    break
                raise
            conn.settimeout(None)
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self.stopping.set()
        if self.sock is not None:
            self.sock.close()
        # let a running query fail or finish first, but do not hang a stop on it
        locked = self.busy.acquire(timeout=5)
        try:
            if self.engine_session is not None:
                self.engine_session.close()
                self.engine_session = None
        finally:
            if locked:
                self.busy.release()
        if self.own_workdir and not self.keep_work:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def handle(self, conn: socket.socket) -> None:
        """One request on one connection (see protocol.py)."""
        import json
        with conn:
            try:
                with conn.makefile("r", encoding="utf-8") as f:
                    line = f.readline()
                req = json.loads(line) if line.strip() else {}
            except (OSError, ValueError):
                return
            try:
                op = req.get("op")
                if req.get("version") != PROTOCOL_VERSION:
                    send(conn, error_reply(
                        f"party {self.name}: its agent speaks protocol version "
                        f"{PROTOCOL_VERSION}, the client {req.get('version')!r} (use the same "
                        f"sqlmpc on both sides)"))
                elif op == "ping":
                    send(conn, {"ok": True, "party": self.name, "pid": os.getpid(),
                                "queries": self.queries, "busy": self.busy.locked()})
                elif op == "stop":
                    send(conn, {"ok": True, "party": self.name})
                    self.stopping.set()
                elif op == "run":
                    self.serve_run(conn, req)
                else:
                    send(conn, error_reply(f"party {self.name}: unknown agent request {op!r}"))
            except OSError:  # the client went away; nothing to tell
                pass

    def serve_run(self, conn: socket.socket, req: dict) -> None:
        # a query that was just stopped elsewhere may still be winding down: wait a little
        if not self.busy.acquire(timeout=BUSY_WAIT):
            send(conn, error_reply(f"party {self.name}: its agent is busy with another query "
                                   f"(one at a time); try again"))
            return
        try:
            self.queries += 1
            reply = self.run_query(conn, req)
        finally:
            self.busy.release()
        try:
            send(conn, reply)
        except OSError:
            pass

    def run_query(self, conn: socket.socket, req: dict) -> dict:
        """Run this party's part of the client's query; the final reply."""
        t0, started = time.perf_counter(), time.time()
        holder: dict[str, PartyRun] = {}
        client_gone = threading.Event()

        def watch_client() -> None:  # EOF on the request socket = the client gave up
            try:
                while conn.recv(4096):
                    pass
            except OSError:
                pass
            client_gone.set()
            run = holder.get("run")
            if run is not None:
                if run.job_running:
                    self.log(f"agent {self.name}: the query was stopped; interrupting its "
                             f"local job")
                run.stop(CLIENT_GONE)

        threading.Thread(target=watch_client, daemon=True).start()
        folder = self.workdir / f"q{self.queries:05d}-{os.getpid()}"
        try:
            plan = self._plan_for(req)
            plan_seconds = time.perf_counter() - t0
            run = PartyRun(self._spec(req, plan, folder), PartyPlan.from_plan(plan, self.name,
                                                                              folder),
                           JsonLinesReporter(self.name, lambda m: send(conn, m)),
                           engine=self.engine_session)
            holder["run"] = run
            if client_gone.is_set():
                run.stop(CLIENT_GONE)
            outcome = run.execute()
            if not outcome.ok:
                return error_reply(outcome.error)
            stats = outcome.stats
            stats["seconds"]["plan"] = plan_seconds
            stats["seconds"]["total"] = time.perf_counter() - t0
            stats["t"]["start"] = started
            result = None if outcome.result is None else outcome.result.to_csv(index=False)
            return ok_reply(stats, result)
        except Exception as e:  # noqa: BLE001 -- one line back; the agent stays up
            if os.environ.get("SQLMPC_DEBUG"):
                import traceback
                traceback.print_exc()
            return error_reply(failure_line(self.name, e))
        finally:
            if not self.keep_work:
                shutil.rmtree(folder, ignore_errors=True)

    def _plan_for(self, req: dict):
        """The agent's own plan for the request; a PartyError if it is not for this party or
        the client's plan or MPyC ids differ from it."""
        if req.get("party") != self.name:
            raise PartyError(f"this agent serves party {self.name}, not {req.get('party')!r}")
        plan = self.checker.own_plan(Path(req["plan_dir"]), req.get("options"))
        if plan.needs_mpc:
            pid, addresses = int(req["pid"]), list(req["addresses"])
            if not 0 <= pid < len(plan.compute_parties) \
                    or plan.compute_parties[pid] != self.name \
                    or len(addresses) != len(plan.compute_parties):
                raise PartyError(f"the request gives MPyC id {pid} of {len(addresses)} parties; "
                                 f"the plan has {self.name} as id "
                                 f"{plan.compute_parties.index(self.name)} of "
                                 f"{len(plan.compute_parties)}")
        return plan

    def _spec(self, req: dict, plan, folder: Path) -> PartySpec:
        return PartySpec(party=self.name, pid=int(req.get("pid") or 0),
                         addresses=list(req.get("addresses") or []),
                         plan_dir=Path(req["plan_dir"]), workdir=folder, engine=self.engine,
                         engine_options=self.engine_options, ssl=bool(req.get("ssl")),
                         ssl_dir=Path(req["ssl_dir"]) if req.get("ssl_dir") else None,
                         connect_timeout=float(req.get("connect_timeout") or CONNECT_TIMEOUT),
                         spawned=req.get("sent"))


def serve(args) -> int:
    """`sqlmpc agent NAME --catalog C.toml ...`: run an agent in the foreground until stopped
    (SIGTERM, SIGINT or a stop request)."""
    agent = Agent(args.name, Path(args.catalog), engine=args.engine,
                  spark_master=args.spark_master, listen=args.listen,
                  workdir=args.workdir, quiet=args.quiet, keep_work=args.keep_work)

    def terminated(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, terminated)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1`: where is it?
    try:
        agent.start()
        agent.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        agent.close()
    agent.log(f"agent {agent.name} stopped after {agent.queries} quer"
              f"{'y' if agent.queries == 1 else 'ies'}")
    return 0
