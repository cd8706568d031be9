"""Long-lived party agents: each party's sqlmpc process, started once, serving many queries.

A deployment runs one agent per party next to that party's Spark, the way each organisation
keeps its cluster running:

    sqlmpc agent company1 --catalog catalog.toml --listen 127.0.0.1:7401
    sqlmpc agent company2 --catalog catalog.toml --listen 127.0.0.1:7402   # ... one per party
    sqlmpc run query.sql --catalog catalog.toml \
        --agents company1=127.0.0.1:7401,company2=127.0.0.1:7402,...

An agent imports everything once (pandas, pyarrow, MPyC, the compiler), opens its party's
Spark session once (Spark Connect `sc://` or an in-process local/standalone driver) and keeps
it; per query it only compiles, runs its own local job and the secure job in-process. That
removes the process start-up, the imports and the Spark session set-up from every query.

Protocol: one TCP connection per request, JSON lines (never pickle). The client sends one line

    {"op": "run", "version": 1, "party": NAME, "plan_dir": PATH, "pid": I,
     "addresses": ["host:port", ...], "ssl": false, "ssl_dir": null,
     "options": {"dialect": null, "disable": []}, "sent": WALL_CLOCK}

and reads `{"progress": TEXT}` lines, then one final `{"ok": true, "stats": {...},
"result": CSV_TEXT_OR_NULL}` or `{"ok": false, "error": ONE_LINE}`. `{"op": "ping"}` answers
`{"ok": true, "party": NAME, "pid": OS_PID, "queries": N}`; `{"op": "stop"}` stops the agent.
Closing the connection during a query cancels it (the agent stays up).

What an agent runs is what IT compiles: it reads the client's plan.json, compiles the plan's SQL
itself with its own catalog, refuses to run when the two plans differ, and renders its own
local job and secure job from its own plan. No program text from the client is executed, and
its local job reads only its own parts of its own catalog. The result is sent back only by a
recipient's agent. One query at a time: a request while a query runs is refused as busy.
Agents listen on localhost by default and trust whoever can connect (no authentication):
bind them to addresses only the parties' own hosts can reach.

MPyC in one process for many queries: `mpc.start()`/`mpc.shutdown()` can be repeated in one
process (MPyC 0.11). Before each query the agent sets the runtime's party list, its own id,
the TLS switch and fresh PRSS keys (the `threshold` setter), and resets the program counter,
exactly what `mpyc.runtime.setup()` does from -M/-I/-P at import. A lost peer or a vanished
client cancels the running protocol; the agent then closes its MPyC connections and its
listening socket and is ready for the next query.
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import os
import queue
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..compiler.errors import PartyError, SqlmpcError

PROTOCOL_VERSION = 1
CONNECT_SECONDS = 5.0      # a client's TCP connect to an agent
CONNECT_TIMEOUT = 900.0    # an agent's wait for its MPyC peers (their local jobs run first)
FAILURE_GRACE = 0.5        # after one party fails, wait this long for a more telling report
BUSY_WAIT = 10.0           # a new query waits this long for the one before it to finish
INTERRUPT_WAIT = 60.0      # a stopped query's Spark jobs are interrupted until gone, this long
PLAN_CACHE = 32            # compiled plans an agent keeps (recurring queries skip the compile)
#: Spark Connect errors after which the agent opens a new session and retries the job once
#: (the server restarted, or expired the agent's idle session)
SESSION_GONE = ("INVALID_HANDLE", "SESSION_NOT_FOUND", "SESSION_CLOSED", "UNAVAILABLE")


class Cancelled(Exception):
    """The running query was cancelled (lost peer, client gone, connect timeout)."""


# --- wire format -------------------------------------------------------------------------------
def _send(sock: socket.socket, obj: dict) -> None:
    sock.sendall((json.dumps(obj) + "\n").encode())


def parse_address(text: str, what: str = "address") -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SqlmpcError(f"{what} must be HOST:PORT, got {text!r}")
    return ("127.0.0.1" if host == "localhost" else host), int(port)


def parse_agents(text: str) -> dict[str, str]:
    """`name=host:port,name=host:port` -> {name: "host:port"}."""
    agents = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, addr = item.partition("=")
        if not sep or not name.strip():
            raise SqlmpcError(f"--agents takes NAME=HOST:PORT[,NAME=HOST:PORT...], got {item!r}")
        parse_address(addr, f"the agent address of {name.strip()}")
        agents[name.strip()] = addr.strip()
    if not agents:
        raise SqlmpcError("--agents names no agent (NAME=HOST:PORT,...)")
    return agents


def request(address: str, obj: dict, timeout: float = 10.0) -> dict:
    """Send one request, return the final reply (progress lines skipped)."""
    host, port = parse_address(address)
    with socket.create_connection((host, port), timeout=timeout) as s:
        _send(s, obj)
        with s.makefile("r", encoding="utf-8") as f:
            for line in f:
                msg = json.loads(line)
                if "progress" not in msg:
                    return msg
    raise PartyError(f"the agent at {address} closed the connection without an answer")


def ping(address: str, timeout: float = 5.0) -> dict:
    return request(address, {"op": "ping", "version": PROTOCOL_VERSION}, timeout)


def stop(address: str, timeout: float = 10.0) -> dict:
    return request(address, {"op": "stop", "version": PROTOCOL_VERSION}, timeout)


def wait_ready(address: str, timeout: float = 120.0, proc=None) -> dict:
    """Ping until the agent answers (or its process `proc` exits, or timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ping(address, timeout=2.0)
        except (OSError, ValueError):
            pass
        if proc is not None and proc.poll() is not None:
            raise PartyError(f"the agent at {address} exited (status {proc.returncode}) "
                             f"before it was ready")
        if time.monotonic() > deadline:
            raise PartyError(f"the agent at {address} was not ready within {timeout:g} s")
        time.sleep(0.1)


# --- MPyC, restarted in one process ------------------------------------------------------------
class _MpcQuery:
    """The state of the running query that MPyC's connection callbacks consult."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.error: str | None = None
        self.shutting_down = False
        self.task: asyncio.Task | None = None
        self.servers: list = []
        self.loop = None

    def fail(self, message: str) -> None:
        """Record the first failure and cancel the protocol (from any thread)."""
        if self.error is None:
            self.error = message
        if self.task is not None and self.loop is not None:
            try:
                self.loop.call_soon_threadsafe(self.task.cancel)
            except RuntimeError:  # the query's loop is closed: it is over already
                pass


_CURRENT: dict[str, _MpcQuery | None] = {"query": None}


def _install_mpc_hooks(mpc) -> None:
    """Once per process: peers dropping out and shutdown mark the current query."""
    import mpyc.asyncoro as asyncoro

    original_lost = asyncoro.MessageExchanger.connection_lost
    original_shutdown = type(mpc).shutdown

    def connection_lost(self, exc):
        q = _CURRENT["query"]
        if q is None:  # a late close after a failed query: nothing to tell MPyC
            return None
        if not q.shutting_down:
            peer = getattr(self, "peer_pid", None)
            who = q.names[peer] if isinstance(peer, int) and peer < len(q.names) else "a party"
            q.fail(f"lost the connection to party {who} (it stopped or died)")
            return None
        return original_lost(self, exc)

    async def shutdown(self):
        q = _CURRENT["query"]
        if q is not None:
            q.shutting_down = True
        return await original_shutdown(self)

    asyncoro.MessageExchanger.connection_lost = connection_lost
    mpc.shutdown = shutdown.__get__(mpc)


def _fresh_loop(mpc, q: _MpcQuery):
    """A new event loop for one query, so nothing of an earlier (cancelled) protocol can ever
    run again; every listening socket MPyC opens on it is remembered (a cancelled start()
    would leave it open)."""
    import mpyc.asyncoro as asyncoro
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(asyncoro.exception_handler)  # as mpyc.runtime.Runtime does
    asyncio.set_event_loop(loop)
    original_create_server = loop.create_server

    async def create_server(*args, **kwargs):
        server = await original_create_server(*args, **kwargs)
        q.servers.append(server)
        return server

    loop.create_server = create_server
    mpc._loop = loop
    q.loop = loop
    return loop


def configure_mpc(mpc, pid: int, addresses: list[str], ssl: bool) -> None:
    """Point the MPyC runtime at this query's parties: what `mpyc.runtime.setup()` derives
    from -M/-I/-P, plus a reset program counter and fresh PRSS keys."""
    from mpyc.runtime import Party
    parties = []
    for i, addr in enumerate(addresses):
        host, port = parse_address(addr)
        parties.append(Party(i, host, port))
    m = len(parties)
    mpc.pid = pid
    mpc.parties = tuple(parties)
    mpc.options.M = m
    mpc.options.index = pid
    mpc.options.ssl = bool(ssl)
    mpc.options.no_async = False if m > 1 else mpc.options.no_async
    mpc.options.threshold = (m - 1) // 2
    mpc._program_counter = [0, 0]
    mpc._pc_level = 0
    mpc.threshold = (m - 1) // 2  # the setter draws new PRSS keys for these parties


def _close_loop(mpc, q: _MpcQuery, failed: bool) -> None:
    """Close the query's loop. After a failure first close its MPyC connections and listening
    socket and cancel what is left of the protocol; the loop is never run again afterwards."""
    loop = q.loop
    if loop is None:
        return
    if failed:
        loop.set_exception_handler(lambda _loop, _context: None)  # leftovers of a dead protocol
        for server in q.servers:
            server.close()
        for peer in mpc.parties:
            transport = getattr(peer.protocol, "transport", None)
            if peer.pid != mpc.pid and transport is not None:
                transport.abort()
        for task in asyncio.all_tasks(loop):
            task.cancel()
        try:  # one short turn so the aborted sockets are really closed
            loop.run_until_complete(asyncio.sleep(0.01))
        except BaseException:  # noqa: BLE001 -- MPyC may stop the loop from a callback
            pass
        for peer in mpc.parties:
            peer.protocol = None
    loop.close()


def memoise_numpy_version() -> None:
    """MPyC 0.11 parses `numpy.lib.NumpyVersion(np.__version__)` and compares it with a version
    string in every finite-field array constructor: thousands of regex parses per query (about
    a tenth of HHI's secure time in a profile). The answer never changes within a process, so
    the same version strings give the same (already parsed) object and remembered answers."""
    import numpy as np
    real = np.lib.NumpyVersion
    if getattr(real, "_sqlmpc_memo", False):
        return

    class Memo(real):
        _sqlmpc_memo = True
        _parsed: dict = {}
        __module__ = real.__module__

        def __new__(cls, vstring):
            obj = cls._parsed.get(vstring)
            if obj is None:
                obj = cls._parsed[vstring] = super().__new__(cls)
            return obj

        def __init__(self, vstring):
            if "_answers" not in self.__dict__:
                super().__init__(vstring)
                self._answers = {}

        def _compare(self, other):
            if not isinstance(other, str):
                return super()._compare(other)
            if other not in self._answers:
                self._answers[other] = super()._compare(other)
            return self._answers[other]

    np.lib.NumpyVersion = Memo


# --- the agent (server side) -------------------------------------------------------------------
class Agent:
    """One party's long-lived process: see the module docstring."""

    def __init__(self, name: str, catalog_path: Path, *, engine: str | None = None,
                 spark_master: str | None = None, listen: str = "127.0.0.1:0",
                 workdir: Path | None = None, quiet: bool = False,
                 keep_work: bool = False) -> None:
        from .config import load_catalog
        self.name = name
        self.catalog_path = Path(catalog_path).resolve()
        self.catalog = load_catalog(self.catalog_path)
        if name not in self.catalog.parties:
            raise SqlmpcError(f"unknown party {name!r} in {catalog_path} (parties: "
                              f"{', '.join(self.catalog.parties)})")
        p = self.catalog.parties[name]
        from ..backends import party_engines
        self.engine = party_engines(self.catalog, engine)[name]
        self.master = p.option("spark_master") or spark_master
        self.listen = parse_address(listen, "--listen")
        self.own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"sqlmpc-agent-{name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.quiet = quiet
        self.log_stream = sys.stderr
        self.keep_work = keep_work
        self.queries = 0
        self.busy = threading.Lock()
        self.session = None
        # the query whose local job runs now: a client that goes away stops its Spark jobs
        self.local_query = None
        self.interrupt_lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.stopping = threading.Event()
        self.mpc = None
        # compiled plans by (query, options): a recurring query is checked
        # against the plan compiled the first time (the catalog is read once, at start-up)
        self.plans: dict[str, tuple] = {}
        self.verified: dict[tuple[str, str], object] = {}  # (plan text, options) -> its plan

    # -- start-up: everything a query needs, once --
    def start(self) -> str:
        """Import, open Spark, bind the socket; returns the address it serves on."""
        t0 = time.perf_counter()
        argv = sys.argv
        sys.argv = [argv[0], "--log-level", "warning"]  # MPyC parses sys.argv at import
        try:
            from mpyc.runtime import mpc
        finally:
            sys.argv = argv
        import pandas  # noqa: F401 -- imported now, not during the first query
        import pyarrow.parquet  # noqa: F401

        from ..backends.mpyc import secure_ops, support  # noqa: F401
        from ..backends.mpyc.codegen import render_secure_job  # noqa: F401
        from ..compiler.planner import compile_query  # noqa: F401
        self.mpc = mpc
        _install_mpc_hooks(mpc)
        memoise_numpy_version()
        if self.engine == "duckdb":
            import duckdb  # noqa: F401
        elif self._holds_data():  # a party without data (a helper) never runs a local job
            self._open_spark()
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
        import gc
        gc.collect()
        gc.freeze()
        host, port = self.sock.getsockname()[:2]
        self.address = f"{host}:{port}"
        self._log(f"agent {self.name} serving on {self.address} (engine {self.engine}"
                  f"{', Spark ' + self._spark_label() if self.engine == 'spark' else ''}; "
                  f"ready in {time.perf_counter() - t0:.1f} s)")
        return self.address

    def _spark_label(self) -> str:
        return (self.master or "local[*]") if self._holds_data() else "not needed (no data)"

    def _holds_data(self) -> bool:
        return any(self.name in t.parts for t in self.catalog.tables.values())

    def _open_spark(self) -> None:
        """Open this party's Spark session once; the generated local jobs' getOrCreate() then
        find it, and their spark.stop() is made a no-op so it survives the query."""
        from pyspark.sql import SparkSession
        master = self.master
        try:
            if master and master.startswith("sc://"):
                session = SparkSession.builder.remote(master).getOrCreate()
            else:
                builder = (SparkSession.builder.appName(f"sqlmpc agent ({self.name})")
                           .master(master or "local[*]")
                           .config("spark.ui.enabled", "false")
                           .config("spark.ui.showConsoleProgress", "false")
                           .config("spark.sql.session.timeZone", "UTC")
                           .config("spark.sql.legacy.parquet.nanosAsLong", "true"))
                if not master or master.startswith("local"):
                    builder = (builder.config("spark.sql.shuffle.partitions", "4")
                               .config("spark.driver.host", "127.0.0.1")
                               .config("spark.driver.bindAddress", "127.0.0.1"))
                session = builder.getOrCreate()
                session.sparkContext.setLogLevel("ERROR")
            session.sql("SELECT 1").collect()  # first-query set-up (plans, RPC) happens now
        except Exception as e:  # noqa: BLE001 -- one line, no Java trace
            from .party import _one_line
            raise PartyError(f"agent {self.name}: cannot open Spark ({master or 'local[*]'}): "
                             f"{_one_line(str(e))}") from None
        session.stop = lambda *a, **k: None  # the generated program stops it after its job
        self.session = session

    def _close_spark(self) -> None:
        if self.session is not None:
            try:
                type(self.session).stop(self.session)
            except Exception:  # noqa: BLE001 -- best effort at exit
                pass
            self.session = None

    def _log(self, message: str) -> None:
        if not self.quiet:  # not sys.stderr: a local job running now captures that one
            print(f"sqlmpc: {message}", file=self.log_stream, flush=True)

    # -- serving --
    def serve_forever(self) -> None:
        assert self.sock is not None
        self.sock.settimeout(0.5)  # wake up to notice stop requests
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                if self.stopping.is_set():
                    break
                raise
            conn.settimeout(None)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self.stopping.set()
        if self.sock is not None:
            self.sock.close()
        # let a running query fail or finish first, but do not hang a stop on it
        locked = self.busy.acquire(timeout=5)
        try:
            self._close_spark()
        finally:
            if locked:
                self.busy.release()
        if self.own_workdir and not self.keep_work:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _handle(self, conn: socket.socket) -> None:
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
                    _send(conn, {"ok": False, "error": f"party {self.name}: its agent speaks "
                                 f"protocol version {PROTOCOL_VERSION}, the client "
                                 f"{req.get('version')!r} (use the same sqlmpc on both sides)"})
                elif op == "ping":
                    _send(conn, {"ok": True, "party": self.name, "pid": os.getpid(),
                                 "queries": self.queries, "busy": self.busy.locked()})
                elif op == "stop":
                    _send(conn, {"ok": True, "party": self.name})
                    self.stopping.set()
                elif op == "run":
                    self._serve_run(conn, req)
                else:
                    _send(conn, {"ok": False, "error": f"party {self.name}: unknown agent "
                                 f"request {op!r}"})
            except OSError:  # the client went away; nothing to tell
                pass

    def _serve_run(self, conn: socket.socket, req: dict) -> None:
        # a query that was just stopped elsewhere may still be winding down: wait a little
        if not self.busy.acquire(timeout=BUSY_WAIT):
            _send(conn, {"ok": False, "error": f"party {self.name}: its agent is busy with "
                         f"another query (one at a time); try again"})
            return
        try:
            self.queries += 1
            reply = self._run_query(conn, req)
        finally:
            self.busy.release()
        try:
            _send(conn, reply)
        except OSError:
            pass

    def _run_query(self, conn: socket.socket, req: dict) -> dict:
        from .party import _named, _one_line
        from ..compiler.errors import SqlmpcError as _Err
        q = _MpcQuery([])
        client_gone = threading.Event()

        def watch_client() -> None:  # EOF on the request socket = the client gave up
            try:
                while conn.recv(4096):
                    pass
            except OSError:
                pass
            client_gone.set()
            self._interrupt_local_job(q)  # first: q.fail() lets the query end while Spark works
            q.fail("the client closed the connection (the run was stopped elsewhere)")

        threading.Thread(target=watch_client, daemon=True).start()

        def progress(message: str) -> None:
            try:
                _send(conn, {"progress": f"{self.name}: {message}"})
            except OSError:
                pass

        folder = self.workdir / f"q{self.queries:05d}-{os.getpid()}"
        here = os.getcwd()
        try:
            if req.get("party") != self.name:
                raise PartyError(f"this agent serves party {self.name}, not "
                                 f"{req.get('party')!r}")
            stats = self._execute(req, folder, q, client_gone, progress)
            return {"ok": True, "stats": stats, "result": stats.pop("_result", None)}
        except Cancelled:
            return {"ok": False, "error": _named(self.name, f"{q.error}; stopped without a "
                                                           f"result")}
        except _Err as e:
            return {"ok": False, "error": _named(self.name, _one_line(str(e)))}
        except Exception as e:  # noqa: BLE001 -- one line back; the agent stays up
            if os.environ.get("SQLMPC_DEBUG"):
                import traceback
                traceback.print_exc()
            return {"ok": False, "error": _named(self.name, _one_line(
                f"{type(e).__name__}: {e}"))}
        finally:
            os.chdir(here)
            if not self.keep_work:
                shutil.rmtree(folder, ignore_errors=True)

    def _own_plan(self, req: dict):
        """Compile the client's query with this agent's catalog; refuse a different plan."""
        from ..compiler.planner import compile_query
        plan_dir = Path(req["plan_dir"])
        opts = req.get("options") or {}
        try:
            text = (plan_dir / "plan.json").read_text()
            # a plan text already compared (the same query again) needs no second comparison
            verified = self.verified.get((text, json.dumps(opts, sort_keys=True)))
            if verified is not None:
                return verified
            theirs = json.loads(text)
        except (OSError, ValueError) as e:
            raise PartyError(f"cannot read the plan {plan_dir / 'plan.json'}: {e}") from None

        key = json.dumps([theirs.get("sql", ""), bool(theirs.get("all_secure")), opts],
                         sort_keys=True)
        if key not in self.plans:
            plan = compile_query(theirs.get("sql", ""), self.catalog,
                                 dialect=opts.get("dialect"),
                                 all_secure=bool(theirs.get("all_secure")),
                                 disable=tuple(opts.get("disable") or ()),
                                 pad_inputs=opts.get("pad_inputs"),
                                 join_bound=opts.get("join_bound"))
            if len(self.plans) >= PLAN_CACHE:
                self.plans.pop(next(iter(self.plans)))
            self.plans[key] = (plan, json.loads(plan.to_json()))
        plan, mine = self.plans[key]
        where = _first_difference(_comparable(theirs, self.name), _comparable(mine, self.name))
        if where is not None:
            raise PartyError(f"the plan in {plan_dir} differs from the one this agent compiles "
                             f"from its query with its catalog {self.catalog_path} (at {where}: "
                             f"a different catalog, option or sqlmpc version); not run")
        if len(self.verified) >= PLAN_CACHE:
            self.verified.pop(next(iter(self.verified)))
        self.verified[(text, json.dumps(opts, sort_keys=True))] = plan
        return plan

    def _execute(self, req: dict, folder: Path, q: _MpcQuery, client_gone: threading.Event,
                 progress) -> dict:
        from .party import _load_program, encode_shares
        stats: dict = {"party": self.name, "shared_rows": 0, "seconds": {}}
        t0 = time.perf_counter()
        stats["t"] = {"spawned": req.get("sent") or time.time(), "start": time.time()}
        plan = self._own_plan(req)
        stats["seconds"]["plan"] = time.perf_counter() - t0
        folder.mkdir(parents=True, exist_ok=True)
        job = plan.local_jobs.get(self.name)
        mpc = self.mpc
        if plan.needs_mpc:
            addresses = list(req["addresses"])
            pid = int(req["pid"])
            if plan.compute_parties[pid] != self.name or len(addresses) != \
                    len(plan.compute_parties):
                raise PartyError(f"the request gives MPyC id {pid} of {len(addresses)} parties; "
                                 f"the plan has {self.name} as id "
                                 f"{plan.compute_parties.index(self.name)} of "
                                 f"{len(plan.compute_parties)}")
        # Without TLS, MPyC listens and connects to its peers while Spark works, so neither
        # the connections nor MPyC's 0.1 s connect retries wait for the slowest local job.
        # (With TLS it starts afterwards: MPyC reads its certificates from the working
        # directory, which the local job changes.)
        early = plan.needs_mpc and job is not None and not req.get("ssl")
        loop = None
        if early:
            configure_mpc(mpc, pid, addresses, False)
            q.names = list(plan.compute_parties)
            loop = _fresh_loop(mpc, q)
            _CURRENT["query"] = q
            started = loop.create_task(mpc.start())
        failed = True
        try:
            frames = {}
            if job is not None:
                progress(f"local job: running on {self.engine} ({len(job.inputs)} data "
                         f"file(s))")
                t_job = time.perf_counter()
                with self.interrupt_lock:
                    self.local_query = q
                try:
                    if early:
                        frames = loop.run_until_complete(
                            loop.run_in_executor(None, self._run_local_tracked, job, folder, q))
                    else:
                        frames = self._run_local_tracked(job, folder, q)
                except BaseException:
                    # the query ends (a lost peer, a stop) while the job's thread may still
                    # be in Spark: stop it before the next query can start
                    self._interrupt_local_job(q)
                    raise
                stats["seconds"]["local_job"] = time.perf_counter() - t_job
                progress("local job: done")
            stats["seconds"]["local"] = time.perf_counter() - t0
            stats["t"]["local_done"] = time.time()
            if client_gone.is_set() or q.error is not None:
                raise Cancelled()
            if not plan.needs_mpc:
                (node,) = [o for o in job.outputs if o.kind == "result"]
                df = frames[node.node]
                df.columns = [c for c, _ in plan.result_columns]
                stats["_result"] = df.to_csv(index=False)
                stats["seconds"]["secure"] = 0.0
                failed = False
                return self._finish(stats, t0)
            from ..backends.mpyc import support
            from ..backends.mpyc.codegen import render_secure_job
            from ..backends.mpyc.encoding import EncodingError
            try:
                inputs, stats["shared_rows"] = encode_shares(job, frames)
            except EncodingError as e:
                raise PartyError(f"{self.name}: cannot share its rows into MPC: {e}") from None
            program = folder / "secure_job.py"
            program.write_text(render_secure_job(plan))  # its own rendering, not the client's
            if req.get("ssl"):
                os.chdir(req["ssl_dir"])  # MPyC reads its certificates from ./.config
            progress(f"secure job: connecting to {len(addresses) - 1} other compute parties")
            t1 = time.perf_counter()
            stats["t"]["secure_start"] = time.time()
            if not early:
                configure_mpc(mpc, pid, addresses, bool(req.get("ssl")))
            support.TIMES.clear()
            module = _load_program(program)
            if not early:
                q.names = list(plan.compute_parties)
                loop = _fresh_loop(mpc, q)
                _CURRENT["query"] = q
            else:
                mpc.start = lambda: started  # the program's `await mpc.start()`: done above
            timeout = float(req.get("connect_timeout") or CONNECT_TIMEOUT)
            q.task = loop.create_task(module.main(inputs))
            if client_gone.is_set():
                q.fail("the client closed the connection (the run was stopped elsewhere)")

            def check_connected() -> None:
                if "connected" not in support.TIMES:
                    missing = [q.names[p.pid] for p in mpc.parties
                               if p.pid != mpc.pid and p.protocol is None]
                    q.fail(f"could not connect to {', '.join(missing) or 'the other parties'} "
                           f"within {timeout:g} s")
            timer = loop.call_later(timeout, check_connected)
            try:
                frame = loop.run_until_complete(q.task)
            except asyncio.CancelledError:
                q.fail("the secure job was cancelled")
                raise Cancelled() from None
            finally:
                timer.cancel()
            if q.error is not None:  # a failure after the protocol's last step
                raise Cancelled()
            failed = False
        finally:
            mpc.__dict__.pop("start", None)
            if loop is not None:
                _close_loop(mpc, q, failed)
            _CURRENT["query"] = None
        end = time.perf_counter()
        connected = support.TIMES.get("connected", t1)
        stats["seconds"]["connect_wait"] = connected - t1
        stats["seconds"]["secure"] = end - connected
        if frame is not None:
            stats["_result"] = frame.to_csv(index=False)
            stats["revealed_rows"] = len(frame)
        progress("secure job: done")
        return self._finish(stats, t0)

    @staticmethod
    def _finish(stats: dict, t0: float) -> dict:
        stats["seconds"]["total"] = time.perf_counter() - t0
        stats["t"]["end"] = time.time()
        return stats

    def _run_local_tracked(self, job, folder: Path, q) -> dict:
        """_run_local for query `q`, marking when it has returned (in whichever thread)."""
        try:
            return self._run_local(job, folder)
        finally:
            with self.interrupt_lock:
                if self.local_query is q:
                    self.local_query = None

    def _interrupt_local_job(self, q, wait: float = INTERRUPT_WAIT) -> None:
        """Stop the Spark jobs of query `q`'s local job if it runs now (the query was stopped
        elsewhere), so the party's cluster is free at once for the next query. Interrupts
        again until the job has returned (after one interrupt it may start its next Spark
        action), at most `wait` seconds; never once another query's job runs."""
        deadline = time.monotonic() + wait
        logged = False
        while time.monotonic() < deadline:
            with self.interrupt_lock:
                if self.local_query is not q or self.session is None:
                    return
                if not logged:
                    self._log(f"agent {self.name}: the query was stopped; interrupting its "
                              f"Spark jobs")
                    logged = True
                try:
                    interrupt = getattr(self.session, "interruptAll", None)
                    if interrupt is not None:
                        interrupt()
                    else:
                        self.session.sparkContext.cancelAllJobs()
                except Exception:  # noqa: BLE001 -- best effort: the job then runs to its end
                    return
            time.sleep(0.2)

    def _run_local(self, job, folder: Path) -> dict:
        if self.engine == "duckdb":
            from .engines.duckdb import run_local_job
            return run_local_job(job, workdir=folder)
        try:
            return _spark_in_process(job, folder, self.master)
        except SqlmpcError as e:
            if not any(k in str(e) for k in SESSION_GONE):
                raise
        self._log(f"agent {self.name}: Spark session lost; opening a new one")
        self.session = None
        self._open_spark()
        return _spark_in_process(job, folder, self.master)


def _comparable(doc: dict, me: str) -> dict:
    """A plan document without what may differ between the parties' own catalogs: the catalog's
    path and where the OTHER parties keep their files."""
    doc = json.loads(json.dumps(doc))
    doc.pop("catalog", None)
    doc.pop("engines", None)  # each party runs its job on the engine its own owner chose
    for party, job in (doc.get("local_jobs") or {}).items():
        if party != me:
            for part in job.get("inputs", []):
                part.pop("path", None)
    return doc


def _first_difference(a, b, path: str = "plan") -> str | None:
    """The path of the first place where two JSON documents differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                return f"{path}.{k}"
            found = _first_difference(a[k], b[k], f"{path}.{k}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path} (length {len(a)} vs {len(b)})"
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else path


def _spark_in_process(job, folder: Path, master: str | None) -> dict:
    """Run the party's generated PySpark program inside the agent (its warm session), like
    backends/spark/runner.run_local_job does for Spark Connect; same errors, same outputs."""
    import pyarrow.parquet as pq

    from ..backends import validate
    from ..backends.spark.codegen import EXIT_DATA, EXIT_START, program_name, render_local_job
    from .engines.spark import _run_in_process
    from ..compiler.errors import DataError
    validate.preflight(job)
    folder = Path(folder).resolve()
    program = folder / program_name(job)
    program.write_text(render_local_job(job))
    out = folder / "out"
    argv = ["--out", str(out)]
    if master and master.startswith("sc://"):
        argv += ["--remote", master]
    else:
        argv += ["--master", master or "local[*]"]
    status, error, tail = _run_in_process(program, argv, cwd=folder, quiet=True, party=job.party)
    if status != 0:
        message = error or (f"party {job.party}: the local Spark job failed (exit status "
                            f"{status})" + (f": {tail}" if tail else ""))
        if status == EXIT_START:
            raise PartyError(message)
        raise DataError(message) if status == EXIT_DATA or error else PartyError(message)
    frames = {}
    for o in job.outputs:
        try:
            table = pq.read_table(out / f"{o.node}.parquet")
        except (OSError, ValueError) as e:
            raise PartyError(f"party {job.party}: the local Spark job wrote no readable output "
                             f"for node {o.node}: {e}") from None
        frames[o.node] = validate.to_frame(table, o.columns)
    return frames


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
    agent._log(f"agent {agent.name} stopped after {agent.queries} quer"
               f"{'y' if agent.queries == 1 else 'ies'}")
    return 0


# --- the client --------------------------------------------------------------------------------
def run_with_agents(plan, catalog, agents: dict[str, str], *, ssl: bool = False,
                    stats_path: Path | None = None, quiet: bool = False,
                    timeout: float | None = None, workdir: Path | None = None,
                    options: dict | None = None):
    """Run `plan` through already running agents (one per party); return the result.

    Same contract as launcher.run_plan: the recipients' result as a DataFrame, a PartyError
    naming the party when any agent fails or dies (no result then), --stats in the same form.
    """
    import pandas as pd

    from .launcher import LOCAL_HOSTS, _stop_on_signals, party_addresses, prepare, write_stats
    t0 = time.perf_counter()
    runners = plan.compute_parties if plan.needs_mpc else list(plan.local_jobs)
    missing = [r for r in runners if r not in agents]
    if missing:
        raise PartyError(f"party {missing[0]}: no agent given (add {missing[0]}=HOST:PORT to "
                         f"--agents; every party of this query needs one: {', '.join(runners)})")
    root, plan_dir = prepare(plan, workdir)
    addresses = party_addresses(plan, catalog) if plan.needs_mpc else []
    for i, addr in enumerate(addresses):
        host = addr.rsplit(":", 1)[0]
        if i and host in LOCAL_HOSTS:
            _check_port_free(plan.compute_parties[i], addr)
    ssl_dir = None
    if ssl and plan.needs_mpc:
        from .tls import make_certificates
        ssl_dir = make_certificates(root / "tls", len(plan.compute_parties))
    events: queue.Queue = queue.Queue()
    socks: dict[str, socket.socket] = {}
    replies: dict[str, dict] = {}
    restore = _stop_on_signals()
    try:
        for name in runners:
            host, port = parse_address(agents[name])
            try:
                s = socket.create_connection((host, port), timeout=CONNECT_SECONDS)
            except OSError as e:
                raise PartyError(f"party {name}: cannot reach its agent at {agents[name]} "
                                 f"({e.strerror or e}); is `sqlmpc agent {name}` running?"
                                 ) from None
            s.settimeout(None)
            socks[name] = s
            _send(s, {"op": "run", "version": PROTOCOL_VERSION, "party": name,
                      "plan_dir": str(plan_dir.resolve()),
                      "pid": plan.compute_parties.index(name) if plan.needs_mpc else 0,
                      "addresses": addresses, "ssl": bool(ssl),
                      "ssl_dir": str(ssl_dir.resolve()) if ssl_dir else None,
                      "options": options or {}, "sent": time.time()})
            threading.Thread(target=_read_replies, args=(name, s, events), daemon=True).start()
        _collect(runners, agents, events, replies, quiet, timeout, t0)
    finally:
        for s in socks.values():  # closing cancels whatever an agent still runs for us
            try:  # shutdown first: the reader thread's makefile() would keep it open
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        restore()
    for name, reply in replies.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "stats.json").write_text(json.dumps(reply.get("stats") or {}))
    receiver = next(r for r in plan.recipients if r in runners or not plan.needs_mpc)
    if not plan.needs_mpc:
        receiver = runners[0]
    text = (replies.get(receiver) or {}).get("result")
    if text is None:
        raise PartyError(f"party {receiver}: finished without a result")
    result_file = root / receiver / "result.csv"
    result_file.write_text(text)
    text_columns = {n: str for n, t in plan.result_columns if t == "text"}
    result = pd.read_csv(result_file, keep_default_na=False, na_values=[""], dtype=text_columns)
    if stats_path:
        write_stats(stats_path, root, runners, time.perf_counter() - t0, len(result))
    return result


def _check_port_free(name: str, addr: str) -> None:
    host, port = addr.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, int(port)))
        except OSError:
            raise PartyError(f"party {name}: port {port} on {host} is already in use "
                             f"(change its port in the catalog or free it)") from None


def _read_replies(name: str, sock: socket.socket, events: queue.Queue) -> None:
    try:
        with sock.makefile("r", encoding="utf-8") as f:
            for line in f:
                try:
                    events.put((name, json.loads(line)))
                except ValueError:
                    continue
    except OSError:
        pass
    events.put((name, None))  # end of the stream: after a final reply, or the agent died


def _collect(runners, agents, events: queue.Queue, replies: dict, quiet: bool,
             timeout: float | None, t0: float) -> None:
    done: set[str] = set()
    # (priority, arrival, message): a dead agent says most, then a party's own error (bad
    # data, a failed job), then what others saw of it (a lost connection)
    failures: list[tuple[int, int, str]] = []
    while len(done) < len(runners) and not failures:
        wait = None if timeout is None else max(timeout - (time.perf_counter() - t0), 0)
        try:
            name, msg = events.get(timeout=wait)
        except queue.Empty:
            running = [r for r in runners if r not in done]
            raise PartyError(f"the run took longer than {timeout:g} s (still running: "
                             f"{', '.join(running)}); stopped") from None
        _take(name, msg, agents, done, replies, failures, quiet)
    if failures:
        deadline = time.monotonic() + FAILURE_GRACE
        while time.monotonic() < deadline:
            try:
                name, msg = events.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                break
            _take(name, msg, agents, done, replies, failures, quiet)
        raise PartyError(min(failures)[2])


def _take(name, msg, agents, done, replies, failures, quiet) -> None:
    if msg is None:
        if name not in done:
            failures.append((0, len(failures), f"party {name}: its agent at {agents[name]} "
                             f"stopped or died during the query; the run was stopped and no "
                             f"result written"))
            done.add(name)
        return
    if "progress" in msg:
        if not quiet:
            print(f"sqlmpc: {msg['progress']}", file=sys.stderr, flush=True)
        return
    done.add(name)
    if msg.get("ok"):
        replies[name] = msg
    else:
        err = str(msg.get("error") or "failed")
        echo = any(k in err for k in ("lost the connection to party", "stopped without a result"))
        failures.append((2 if echo else 1, len(failures),
                         err if err.startswith("party ") else f"party {name}: {err}"))
