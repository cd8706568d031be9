"""`sqlmpc agent NAME`: one party's long-lived process, started once, serving many queries.

A deployment runs one agent per party next to that party's engine, the way each organisation
keeps its cluster running (docs/deployment.md, examples/deployment/):

    sqlmpc agent bank_a --catalog bank_a.toml --identity keys/bank_a/identity
    sqlmpc run query.sql --catalog analyst.toml --identity keys/analysts/alice

The agent decides, the client only asks. Every connection is mutual TLS with the agent's own
identity, and its peer must be an analyst its OWN catalog lists for its party (`analysts`);
anyone else is refused with one line and an audit entry. From a request it takes only the SQL
text, a query id and options that cannot widen what is revealed (deployment.check_options);
it compiles the plan itself with its own catalog (plan_check.py), runs only when the client's
plan digest equals its own, and before any share is sent checks with its peers that they all
run that plan (runtime/mpc_session.py: a client cannot ask parties for different plans),
reaches its peers at
the addresses of its own catalog, and returns a result only as a recipient its own catalog
names. Every served, refused or failed request is one JSON line in its audit log.

An agent imports everything once (pandas, pyarrow, MPyC, the compiler) and opens its party's
engine once (warm: a Spark session, a DuckDB connection); per query it runs the same per-party
sequence as a party process (runtime/party_run.py) in-process. One query at a time: a request
while a query runs waits BUSY_WAIT seconds, then is refused as busy. The network cannot stop
it: the operator sends SIGTERM or SIGINT. guard.py bounds what a hostile network can make it
hold: connections, request size, the time to send a request.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import json
import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path

from ...compiler.errors import PartyError, SqlmpcError
from ..config import engine_options, load_catalog
from ..deployment import (
    MAX_REQUEST_BYTES,
    Deployment,
    check_options,
    check_query_id,
    compile_switches,
    query_sha256,
)
from ..mpc_session import load_mpc
from ..party_run import PartyPlan, PartyRun, PartySpec
from ..report import failure_line
from ..workspace import (
    mpc_id,
    parse_address,
    private_folder,
    runners,
    scrub_party_folder,
)
from .guard import AuditLog, ConnectionSlots, RequestTooLong, read_request_line
from .plan_check import PlanChecker
from .protocol import JsonLinesReporter, error_reply, ok_reply, send, validate_request

BUSY_WAIT = 10.0  # a new query waits this long for the one before it to finish
CLIENT_GONE = "the client closed the connection (the run was stopped elsewhere)"
PLAINTEXT_WARNING = ("sqlmpc: warning: agent {name} serves WITHOUT TLS (--insecure-plaintext): "
                     "anyone who can connect may ask it queries, and the network sees "
                     "everything")


class Agent:
    """One party's long-lived process: see the module docstring.

    `identity`: the party's identity folder (None: the catalog's [deployment] identity);
    without one the agent starts only with `insecure_plaintext`. `audit_log`: the audit file
    (default: agent-NAME-audit.jsonl next to the catalog).
    """

    def __init__(self, name: str, catalog_path: Path, *, engine: str | None = None,
                 spark_master: str | None = None, listen: str = "127.0.0.1:0",
                 workdir: Path | None = None, quiet: bool = False,
                 keep_work: bool = False, identity: str | Path | None = None,
                 insecure_plaintext: bool = False, audit_log: Path | None = None) -> None:
        from ...backends import party_engines
        self.name = name
        self.catalog_path = Path(catalog_path).resolve()
        self.catalog = load_catalog(self.catalog_path)
        if name not in self.catalog.parties:
            raise SqlmpcError(f"unknown party {name!r} in {catalog_path} (parties: "
                              f"{', '.join(self.catalog.parties)})")
        self.deployment = Deployment.of(self.catalog, identity)
        self.tls = self._tls_context(insecure_plaintext)
        self.engine = party_engines(self.catalog, engine)[name]
        self.engine_options = engine_options(self.catalog, name, self.engine,
                                             {"spark_master": spark_master})
        self.checker = PlanChecker(name, self.catalog, self.catalog_path, engine)
        self.listen = parse_address(listen, "--listen")
        self.own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"sqlmpc-agent-{name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o700)  # per-query files hold the party's plaintext rows
        self.audit = AuditLog(audit_log or self.catalog_path.parent / f"agent-{name}-audit.jsonl")
        self.slots = ConnectionSlots(int(self.deployment.limit("max_connections")))
        self.quiet = quiet
        self.log_stream = sys.stderr  # kept: a local job running in-process may capture stderr
        self.keep_work = keep_work
        self.queries = 0
        self.busy = threading.Lock()
        self.engine_session = None
        self.sock: socket.socket | None = None
        self.address: str | None = None
        self.stopping = threading.Event()

    def _tls_context(self, insecure_plaintext: bool) -> ssl.SSLContext | None:
        from ..identity import server_context
        identity = self.deployment.identity
        if identity is None:
            if not insecure_plaintext:
                raise SqlmpcError(f"agent {self.name}: no identity (give --identity DIR or "
                                  f"[deployment] identity in {self.catalog_path}); to serve "
                                  f"without TLS, pass --insecure-plaintext")
            print(PLAINTEXT_WARNING.format(name=self.name), file=sys.stderr, flush=True)
            return None
        if (identity.role, identity.name) != ("party", self.name):
            raise SqlmpcError(f"agent {self.name}: the identity in "
                              f"{self.deployment.identity_dir} is {identity.role} "
                              f"{identity.name!r}, not party {self.name!r}")
        return server_context(identity)

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
        self.sock.listen(64)
        # the imported modules live as long as the agent: keep them out of every garbage
        # collection of the queries (MPyC makes many short-lived objects)
        gc.collect()
        gc.freeze()
        host, port = self.sock.getsockname()[:2]
        self.address = f"{host}:{port}"
        self.log(f"agent {self.name} serving on {self.address} "
                 f"({'mutual TLS' if self.tls else 'PLAINTEXT'}; engine {self.engine_label()}; "
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
        self.sock.settimeout(0.5)  # wake up to notice a stop
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self.stopping.is_set():
                    break
                raise
            if not self.slots.admit(conn):  # every slot holds a request being served
                conn.close()
                continue
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

    def handle(self, raw: socket.socket) -> None:
        """One request on one connection (see protocol.py); never raises."""
        conn = raw
        peer = {"address": _peer_address(raw)}
        try:
            deadline = time.monotonic() + self.deployment.limit("request_timeout")
            conn, not_allowed = self._accept_peer(raw, peer, deadline)
            if conn is None:
                return
            try:
                line = read_request_line(conn, MAX_REQUEST_BYTES, deadline)
            except RequestTooLong as e:
                self._refuse(conn, peer, None, not_allowed or str(e))
                return
            if not_allowed:  # its request was read: the refusal reaches it, the audit has it
                self._refuse(conn, peer, _parsed(line), not_allowed)
                return
            if not self.slots.serving_now(raw):
                return  # dropped for a newer connection while it was idle
            conn.settimeout(self.deployment.limit("idle_timeout"))
            self._dispatch(conn, peer, line)
        except (OSError, EOFError, ValueError):
            pass  # the client went away, timed out or broke TLS; nothing to tell
        finally:
            self.slots.release(raw)
            try:
                conn.close()
            except OSError:
                pass

    def _accept_peer(self, raw: socket.socket, peer: dict, deadline: float):
        """(the connection, None) for an allowed analyst over TLS (or anyone without TLS);
        (the connection, why it is refused) for another member of the deployment; (None,
        None) after an audit entry when the TLS handshake fails (no certificate of the
        deployment's CA)."""
        from ..identity import IdentityError, PeerNotAllowedError, peer_identity
        if self.tls is None:
            peer["role"], peer["name"] = "unauthenticated", None
            return raw, None
        raw.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            conn = self.tls.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as e:
            reason = getattr(e, "reason", None) or type(e).__name__
            self.audit.write({"peer": peer, "verdict": "refused",
                              "reason": f"TLS handshake failed ({reason})"})
            return None, None
        try:
            peer["role"], peer["name"] = peer_identity(conn)
            allowed = self.deployment.analysts(self.name)
            if peer["role"] != "analyst" or peer["name"] not in allowed:
                raise PeerNotAllowedError(f"the peer is {peer['role']} {peer['name']!r}, not "
                                          f"an analyst party {self.name}'s catalog lists")
        except (IdentityError, PermissionError) as e:
            return conn, f"party {self.name}: not served: {e}"
        return conn, None

    def _refuse(self, conn, peer: dict, req: dict | None, reason: str) -> None:
        self.audit.write({"peer": peer, **_request_facts(req), "verdict": "refused",
                          "reason": reason})
        try:
            send(conn, error_reply(reason))
        except OSError:
            pass

    def _dispatch(self, conn, peer: dict, line: bytes) -> None:
        try:
            req = json.loads(line)
        except (ValueError, RecursionError):
            self._refuse(conn, peer, None, "a request must be one JSON object on one line")
            return
        try:
            op = validate_request(req, self.name)
        except ValueError as e:
            self._refuse(conn, peer, req if isinstance(req, dict) else None, str(e))
            return
        if op == "ping":
            send(conn, {"ok": True, "party": self.name, "pid": os.getpid(),
                        "queries": self.queries, "busy": self.busy.locked()})
        else:
            self.serve_run(conn, peer, req)

    def serve_run(self, conn, peer: dict, req: dict) -> None:
        # a query that was just stopped elsewhere may still be winding down: wait a little
        if not self.busy.acquire(timeout=BUSY_WAIT):
            self._refuse(conn, peer, req, f"party {self.name}: its agent is busy with another "
                                          f"query (one at a time); try again")
            return
        try:
            self.queries += 1
            reply, facts = _profiled(lambda: self.run_query(conn, req),
                                     f"{self.name}-q{self.queries:05d}", self.log)
        finally:
            self.busy.release()
        verdict = "served" if reply.get("ok") else facts.pop("verdict", "failed")
        self.audit.write({"peer": peer, **_request_facts(req), "verdict": verdict,
                          "reason": reply.get("error"), **facts})
        try:
            send(conn, reply)
        except OSError:
            pass

    def _checked_plan(self, req: dict):
        """(plan, checked options, its plan digest) for a request; a PartyError (refusal)
        otherwise."""
        if req["party"] != self.name:
            raise PartyError(f"this agent serves party {self.name}, not {req['party']!r}")
        try:
            query_id = check_query_id(req["query_id"])
            options = check_options(req.get("options"), self.deployment)
        except SqlmpcError as e:
            raise PartyError(f"party {self.name}: {e}") from None
        plan = self.checker.own_plan(req["sql"], compile_switches(options))
        if self.name not in runners(plan):
            raise PartyError(f"party {self.name} takes no part in this query")
        digest = self.checker.check_digest(plan, query_id, req["digest"])
        return plan, options, digest

    def run_query(self, conn, req: dict) -> tuple[dict, dict]:
        """Run this party's part of the client's query; (the final reply, audit facts)."""
        t0, started = time.perf_counter(), time.time()
        holder: dict[str, PartyRun] = {}
        facts: dict = {}
        client_gone, finished = threading.Event(), threading.Event()

        def watch_client() -> None:  # the client hung up = it gave up on the query
            if _wait_hangup(conn, finished):
                client_gone.set()
                stop_run(CLIENT_GONE, "interrupting its local job")

        def stop_run(reason: str, note: str) -> None:
            run = holder.get("run")
            if run is not None:
                if run.job_running:
                    self.log(f"agent {self.name}: the query was stopped; {note}")
                run.stop(reason)

        folder = self.workdir / f"q{self.queries:05d}-{os.getpid()}"
        timer = None
        try:
            try:
                plan, options, digest = self._checked_plan(req)
            except SqlmpcError as e:
                facts["verdict"] = "refused"
                return error_reply(failure_line(self.name, e)), facts
            facts["revealed"] = self.checker.revealed(plan, _revealed)
            plan_seconds = time.perf_counter() - t0
            private_folder(folder)  # the query's rows, programs and outputs: the owner's only
            run = PartyRun(self._spec(plan, folder, req.get("sent"), digest),
                           PartyPlan.from_plan(plan, self.name, folder),
                           JsonLinesReporter(self.name, lambda m: send(conn, m)),
                           engine=self.engine_session)
            holder["run"] = run
            threading.Thread(target=watch_client, daemon=True).start()
            if options.get("timeout"):
                timer = threading.Timer(options["timeout"], stop_run, args=(
                    f"the query took longer than its timeout of {options['timeout']:g} s",
                    "its timeout passed"))
                timer.daemon = True
                timer.start()
            outcome = run.execute()
            if not outcome.ok:
                return error_reply(outcome.error), facts
            stats = outcome.stats
            stats["seconds"]["plan"] = plan_seconds
            stats["seconds"]["total"] = time.perf_counter() - t0
            stats["t"]["start"] = started
            # a result leaves only a recipient its own catalog names
            own = outcome.result if self.name in plan.recipients else None
            return ok_reply(stats, None if own is None else own.to_csv(index=False)), facts
        except Exception as e:  # noqa: BLE001 -- one line back; the agent stays up
            if os.environ.get("SQLMPC_DEBUG"):
                import traceback
                traceback.print_exc()
            return error_reply(failure_line(self.name, e)), facts
        finally:
            finished.set()
            if timer is not None:
                timer.cancel()
            if not self.keep_work:
                shutil.rmtree(folder, ignore_errors=True)
            else:  # kept for a look afterwards, but not the plaintext intermediates
                scrub_party_folder(folder)

    def _spec(self, plan, folder: Path, sent, digest: str) -> PartySpec:
        """This party's spec from its own catalog and identity (nothing from the client but
        the wall clock it sent, for --stats). `digest`: its own plan's, which its peers must
        share before any data is (the client's may have been a lie to all of them)."""
        fields = {f.name for f in dataclasses.fields(PartySpec)}
        extra = {}
        if "identity_dir" in fields:  # MPyC over mutual TLS with the party's own identity
            extra["identity_dir"] = self.deployment.identity_dir
        return PartySpec(plan_digest=digest, party=self.name, pid=mpc_id(plan, self.name),
                         addresses=self.deployment.mpc_addresses(plan),
                         plan_dir=folder, workdir=folder, engine=self.engine,
                         engine_options=self.engine_options,
                         connect_timeout=self.deployment.limit("connect_timeout"),
                         spawned=sent if isinstance(sent, (int, float)) else None, **extra)


def _wait_hangup(conn, finished: threading.Event) -> bool:
    """Whether the peer of `conn` hung up before `finished` was set. Polls for the hang-up
    without reading (a TLS socket must not be read in one thread while another writes)."""
    import select
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLRDHUP | select.POLLHUP | select.POLLERR)
    while not finished.is_set():
        try:
            if poller.poll(500):
                return True
        except (OSError, ValueError):
            return True
    return False


def _peer_address(conn: socket.socket) -> str:
    try:
        host, port = conn.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "unknown"


def _parsed(line: bytes) -> dict | None:
    """The request line as a JSON object, for the audit of a refused request (None if not)."""
    try:
        req = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return req if isinstance(req, dict) else None


def _request_facts(req: dict | None) -> dict:
    """What the audit log records of a request: op, query id and the SQL's sha256."""
    if not isinstance(req, dict):
        return {}
    facts: dict = {"op": str(req.get("op"))[:32]}
    if isinstance(req.get("query_id"), str):
        facts["query_id"] = req["query_id"][:64]
    if isinstance(req.get("sql"), str):
        facts["query_sha256"] = query_sha256(req["sql"])
    return facts


def _revealed(plan) -> list[dict]:
    """What the plan reveals to whom (explain's leak list)."""
    from ...backends import secure_backend
    from ...compiler.explain import revealed
    try:
        return revealed(plan, secure_backend())
    except Exception as e:  # noqa: BLE001 -- the audit notes it; the query is not affected
        return [{"what": f"(could not be listed: {type(e).__name__})", "to": []}]


def serve(args) -> int:
    """`sqlmpc agent NAME --catalog C.toml ...`: run an agent in the foreground until its
    operator stops it (SIGTERM or SIGINT)."""
    agent = Agent(args.name, Path(args.catalog), engine=args.engine,
                  spark_master=args.spark_master, listen=args.listen,
                  workdir=args.workdir, quiet=args.quiet, keep_work=args.keep_work,
                  identity=args.identity, insecure_plaintext=args.insecure_plaintext,
                  audit_log=args.audit_log)

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


def _profiled(call, name: str, log):
    """call(); under SQLMPC_PROFILE=DIR (as with `sqlmpc run`) each query this agent serves
    is profiled (the thread that checks it and runs its secure part) into
    DIR/<party>-q<N>.prof; a profile that cannot be written is one line in the agent's log."""
    folder = os.environ.get("SQLMPC_PROFILE")
    if not folder:
        return call()
    import cProfile
    profile = cProfile.Profile()
    try:
        return profile.runcall(call)
    finally:
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            profile.dump_stats(str(Path(folder) / f"{name}.prof"))
        except OSError as e:
            log(f"{name}: cannot write its profile into {folder}: {e.strerror or e}")
