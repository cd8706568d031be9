"""One query's MPyC run inside this process: the party processes and the party agents alike.

    session = MpcSession(plan.compute_parties, pid, addresses, identity_dir=None,
                         plan_digest=digest, log=print)
    session.connect_early()                  # optional: MPyC connects while the local job runs
    frames = session.run_blocking(local_job)
    frame = session.run_program(module.main, inputs)   # raises Cancelled with one line
    session.close()

MPyC reads its options (-M/-I/-P) from sys.argv when first imported and would wait forever
for a peer that died. Here it is imported once with its own command line switched off, and
before each query the runtime gets what `mpyc.runtime.setup()` derives from -M/-I/-P (the
parties, this party's id, the TLS switch, fresh PRSS keys, a reset program counter), a fresh
event loop (nothing of an earlier, cancelled protocol can run again), one connect watchdog
(`connect_timeout` seconds from the start of the secure part) and hooks that turn a lost peer
into a cancelled query with one clear line. `mpc.start()`/`mpc.shutdown()` can be repeated in
one process (MPyC 0.11), so a long-lived agent runs query after query this way.

The connections are made here, not by MPyC's `Runtime.start` (which listens on every interface
and, with TLS, accepts any certificate of its CA for any party number):

* party i listens only on its own host from its address (never 0.0.0.0) and accepts the
  parties with lower ids; it dials the parties with higher ids (as MPyC does);
* with an identity folder (`identity_dir`, runtime/identity.py) every connection is mutual TLS
  trusting the deployment CA only, and each side checks the peer's certificate: the listening
  side that it is `sqlmpc:party:<names[j]>` for the id j the peer announces, the dialling side
  that it is the party it dialled. A peer with the wrong name, an id out of range or already
  connected, or a certificate of no party is closed with one line in the party's log and never
  becomes a peer;
* MPyC's messages are decoded by runtime/restricted_pickle.py (plain data only); a refused
  message ends the query with one line naming the party that sent it;
* once every peer is connected, and before the program's `await mpc.start()` returns (so before
  any share of data is sent), the parties exchange their plan digests (`plan_digest`, the
  sha256 of the plan they are about to run, runtime/deployment.py) with each other, not only
  with whoever asked them to run: a party whose peer runs another plan stops with one line
  naming that peer. This holds against a dishonest analyst who sends different parties
  different queries or options, and against differing catalogs.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import restricted_pickle
from .identity import Identity, IdentityError, client_context, peer_identity, server_context
from .workspace import parse_address

#: seconds a party waits for the others to connect, counted from the start of its secure part
#: (the others may still run their local jobs)
CONNECT_TIMEOUT = 900.0
#: seconds between dials of a peer that is not listening yet: short at first (its agent may
#: be a few milliseconds behind), doubling up to the longest (one that is long in starting)
DIAL_FIRST_PAUSE = 0.005
DIAL_MAX_PAUSE = 0.1


def dial_pauses() -> Iterator[float]:
    """The pauses between one peer's dials: DIAL_FIRST_PAUSE, doubling to DIAL_MAX_PAUSE."""
    pause = DIAL_FIRST_PAUSE
    while True:
        yield pause
        pause = min(2 * pause, DIAL_MAX_PAUSE)
#: the MPyC message label of the plan-digest exchange. MPyC's own labels are hashes of its
#: program counter; only the first message with this label from each peer is taken as its
#: digest, so even a (2**-64) collision later in the protocol is delivered normally
PLAN_PC = -0x5EC_D16E57
PLAN_TAG = b"sqlmpc-plan:"
#: seconds a lost connection before the plans were compared waits for the digests still to come
LOST_GRACE = 2.0
DIFFERENT_PLAN = ("party {who} runs a different plan (its catalog, options or query differ); "
                  "stopped before any data was shared")


class Cancelled(Exception):
    """The query's secure part was stopped: a lost peer, a connect timeout, a stop from outside
    (the message says which)."""


class MpcQuery:
    """The state of the running query that MPyC's connection callbacks consult."""

    def __init__(self, names: list[str], log: Callable[[str], None] | None = None) -> None:
        self.names = names
        self.log = log or _log_to_stderr
        self.refusals: list[str] = []  # connections refused, in order (each logged once)
        self.error: str | None = None
        self.shutting_down = False
        self.task: asyncio.Task | None = None
        self.servers: list = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.on_lost: Callable[[str], bool] | None = None

    def fail(self, message: str) -> None:
        """Record the first failure and cancel the protocol (from any thread)."""
        if self.error is None:
            self.error = message
        if self.task is not None and self.loop is not None:
            try:
                self.loop.call_soon_threadsafe(self.task.cancel)
            except RuntimeError:  # the query's loop is closed: it is over already
                pass

    def lost(self, message: str) -> None:
        """A peer's connection was lost: the query fails, unless the session waits for a
        better reason (MpcSession.peer_lost)."""
        if self.on_lost is None or not self.on_lost(message):
            self.fail(message)

    def refuse(self, message: str) -> None:
        """A connection that never becomes a peer: one line in the party's log (once)."""
        if message not in self.refusals:
            self.refusals.append(message)
            self.log(f"refused a connection: {message}")


def _log_to_stderr(message: str) -> None:
    print(f"sqlmpc: {message}", file=sys.stderr, flush=True)


#: the query whose protocol runs in this process now (the MPyC hooks look here)
_RUNNING: dict[str, MpcQuery | None] = {"query": None}
_LOADED: dict[str, Any] = {}


def load_mpc():
    """MPyC's runtime object, imported once per process with MPyC's command line parsing
    switched off (the runtime configures it per query) and the lost-peer hooks installed."""
    if "mpc" in _LOADED:
        return _LOADED["mpc"]
    argv = sys.argv
    sys.argv = [argv[0] if argv else "sqlmpc", "--log-level", "warning"]
    try:
        from mpyc.runtime import mpc
    finally:
        sys.argv = argv
    _install_hooks(mpc)
    restricted_pickle.install()  # nothing a peer sends is executed
    restricted_pickle.on_refused(_refused_message)
    memoise_numpy_version()  # MPyC re-parses numpy's version in every field array
    _LOADED["mpc"] = mpc
    return mpc


def _install_hooks(mpc) -> None:
    """Once per process: peers dropping out and shutdown mark the running query."""
    from mpyc import asyncoro

    original_lost = asyncoro.MessageExchanger.connection_lost
    original_shutdown = type(mpc).shutdown

    def connection_lost(self, exc):
        q = _RUNNING["query"]
        if q is None:  # a late close after a failed query: nothing to tell MPyC
            return None
        if not q.shutting_down:
            peer = getattr(self, "peer_pid", None)
            who = q.names[peer] if isinstance(peer, int) and peer < len(q.names) else "a party"
            q.lost(f"lost the connection to party {who} (it stopped or died)")
            return None
        return original_lost(self, exc)

    async def shutdown(self):
        q = _RUNNING["query"]
        if q is not None:
            q.shutting_down = True
        return await original_shutdown(self)

    asyncoro.MessageExchanger.connection_lost = connection_lost
    mpc.shutdown = shutdown.__get__(mpc)


def _refused_message(peer: Any, error: Exception) -> None:
    """A peer's message failed the restricted unpickler: the running query ends, naming it."""
    q = _RUNNING["query"]
    if q is None:
        return
    who = f"party {q.names[peer]}" if isinstance(peer, int) and 0 <= peer < len(q.names) \
        else "a party"
    q.fail(f"{who} {str(error).removeprefix('a peer ')}")


def configure_mpc(mpc, pid: int, addresses: list[str], ssl: bool = False) -> None:
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


class PeerPayload(bytes):
    """One message from a peer, tagged with the sender's MPyC id (for one-line refusals)."""

    peer: int


def _exchanger_class():
    """MPyC's MessageExchanger with the checks of the module docstring (made once, after
    MPyC is imported)."""
    if "exchanger" in _LOADED:
        return _LOADED["exchanger"]
    import struct

    from mpyc import asyncoro

    class CheckedExchanger(asyncoro.MessageExchanger):
        """One connection with a peer; `session` decides whether the peer may be one."""

        def __init__(self, session: MpcSession, peer_pid: int | None = None) -> None:
            super().__init__(session.mpc, peer_pid)
            self.session = session
            self.refused = False

        def connection_made(self, transport) -> None:
            self.transport = transport
            if self.peer_pid is None:  # we listen: the peer announces its id first
                return
            problem = self.session.identity_problem(transport, self.peer_pid, dialled=True)
            if problem is not None:
                self._refuse(problem)
                return
            super().connection_made(transport)

        def _refuse(self, problem: str) -> None:
            self.refused = True
            self.session.query.refuse(problem)
            self.bytes.clear()
            self.transport.abort()

        def data_received(self, data) -> None:
            if self.refused:
                return
            self.bytes.extend(data)
            data = self.bytes
            if self.peer_pid is None:
                if len(data) < 2:
                    return
                claimed = int.from_bytes(data[:2], "little")
                problem = self.session.identity_problem(self.transport, claimed, dialled=False)
                if problem is not None:
                    self._refuse(problem)
                    return
                rt = self.runtime
                keys = 0 if rt.options.no_prss else rt._prss_keys_from_peer(claimed)
                if len(data) < keys + 2:
                    return
                self.peer_pid = claimed
                del data[:2]
                if keys:
                    rt._prss_keys_from_peer(claimed, data)
                    del data[:keys]
                rt.set_protocol(claimed, self)
            # MPyC's framing (8-byte pc, 4-byte size, payload); payloads carry their sender
            while len(data) >= 12:
                pc, size = struct.unpack_from("<qI", data)
                if len(data) < size + 12:
                    break
                with memoryview(data) as view:
                    payload = PeerPayload(view[12:size + 12])
                payload.peer = self.peer_pid
                del data[:size + 12]
                if pc == PLAN_PC and self.session.take_plan(self.peer_pid, payload):
                    continue
                if pc in self.buffers:
                    self.buffers.pop(pc).set_result(payload)
                else:
                    self.buffers[pc] = payload

        def connection_lost(self, exc) -> None:
            if self.refused or self.peer_pid is None:
                return None  # never a peer (refused, or closed before saying who it is)
            return super().connection_lost(exc)

    _LOADED["exchanger"] = CheckedExchanger
    return CheckedExchanger


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


def protocol_marks() -> dict[str, float]:
    """When the secure program reached its phases ("connected", "revealed": perf_counter)."""
    from ..backends.mpyc import support
    return support.TIMES


class MpcSession:
    """One query's MPyC protocol in this process: see the module docstring.

    Used from one thread; `stop()` may be called from any thread.
    """

    def __init__(self, names: list[str], pid: int, addresses: list[str], *,
                 identity_dir: str | Path | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT,
                 plan_digest: str | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        if not 0 <= pid < len(addresses) or len(addresses) != len(names):
            raise ValueError(f"MPyC id {pid} of {len(addresses)} addresses for "
                             f"{len(names)} parties")
        self.mpc = load_mpc()
        self.query = MpcQuery(list(names), log)
        self.query.on_lost = self.peer_lost
        self.pid = pid
        self.addresses = list(addresses)
        # the party's own identity, checked now: a bad folder is one line before anything runs
        self.identity: Identity | None = None
        if identity_dir is not None:
            self.identity = Identity.from_folder(identity_dir)
            if self.identity.role != "party" or self.identity.name != names[pid]:
                raise IdentityError(f"identity: {identity_dir} is {self.identity.role} "
                                    f"{self.identity.name!r}, not party {names[pid]!r}")
        self.connect_timeout = float(connect_timeout)
        # what this party tells its peers it runs (None: a session without a plan, e.g. a
        # test program; it then agrees only with peers that have none either)
        self.plan_message = PLAN_TAG + (plan_digest or "").encode()
        self.peer_plans: dict[int, bytes] = {}   # MPyC id -> the digest message it sent
        self.plans_agreed: asyncio.Future | None = None  # made once all peers are connected
        self.lost: str | None = None  # a lost peer while the plans were compared
        self.started: asyncio.Task | None = None  # the connections, begun early or on demand
        self.saved: dict | None = None  # the runtime's settings before this query
        self.connected_at: float | None = None
        self.completed = False

    @property
    def error(self) -> str | None:
        """Why the query was stopped (a lost peer, a stop from outside), or None."""
        return self.query.error

    def stop(self, reason: str) -> None:
        """Stop the query (from any thread): the protocol is cancelled, `run_program` raises
        Cancelled(reason); the first reason wins."""
        self.query.fail(reason)

    def _open(self) -> asyncio.AbstractEventLoop:
        """Configure MPyC for this query and give it a fresh event loop; every listening socket
        MPyC opens on it is remembered (a cancelled start() would leave it open)."""
        from mpyc import asyncoro
        q = self.query
        if q.loop is not None:
            return q.loop
        self.saved = _settings(self.mpc)
        configure_mpc(self.mpc, self.pid, self.addresses, self.identity is not None)
        loop = asyncio.new_event_loop()
        def handler(loop, context):  # as mpyc.runtime.Runtime, quiet once the query failed
            if q.error is None:
                asyncoro.exception_handler(loop, context)
        loop.set_exception_handler(handler)
        asyncio.set_event_loop(loop)
        original_create_server = loop.create_server

        async def create_server(*args, **kwargs):
            server = await original_create_server(*args, **kwargs)
            q.servers.append(server)
            return server

        loop.create_server = create_server
        self.mpc._loop = loop
        # the program's `await mpc.start()`: this session's connections, begun at most once
        self.mpc.start = self._start_task
        q.loop = loop
        _RUNNING["query"] = q
        return loop

    def _start_task(self) -> asyncio.Task:
        if self.started is None:
            self.started = self.query.loop.create_task(self._connect())
            # a start that failed while the local job ran is reported by the query's error;
            # its exception must not also be printed as "never retrieved"
            self.started.add_done_callback(lambda t: t.cancelled() or t.exception())
        return self.started

    async def _connect(self) -> None:
        """What MPyC's Runtime.start does, with the checks of the module docstring: listen on
        the own host for the lower ids, dial the higher ids, until every peer is connected."""
        from mpyc.runtime import Future
        mpc = self.mpc
        if len(mpc.parties) == 1:
            mpc.start_time = time.time()
            return
        loop = self.query.loop
        for peer in mpc.parties:
            peer.protocol = Future(loop=loop) if peer.pid == mpc.pid else None
        server_tls = client_tls = None
        if self.identity is not None:
            server_tls, client_tls = server_context(self.identity), client_context(self.identity)
        exchanger = _exchanger_class()
        server = None
        if mpc.pid:
            me = mpc.parties[mpc.pid]
            server = await loop.create_server(lambda: exchanger(self), host=me.host,
                                              port=me.port, ssl=server_tls)
        for peer in mpc.parties[mpc.pid + 1:]:
            pauses = dial_pauses()
            while peer.protocol is None:
                try:
                    await loop.create_connection(lambda pid=peer.pid: exchanger(self, pid),
                                                 peer.host, peer.port, ssl=client_tls)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 -- not listening yet, or a failed handshake
                    pass
                if peer.protocol is None:  # refused (the log says why) or not there: retry
                    await asyncio.sleep(next(pauses))
        await mpc.parties[mpc.pid].protocol
        if server is not None:
            server.close()
        await self._agree_on_the_plan()
        mpc.start_time = time.time()

    async def _agree_on_the_plan(self) -> None:
        """Send this party's plan digest to every peer (all are connected now) and wait until
        every peer's has arrived (take_plan): nothing of the program, so no share, runs before
        all agree. The verdict waits until ours was sent to all: a party that stopped earlier
        would leave the others only a lost connection to report, not the plan that differs."""
        mpc = self.mpc
        self.plans_agreed = self.query.loop.create_future()
        for peer in mpc.parties:
            if peer.pid != mpc.pid and peer.protocol is not None:  # None: lost (reported)
                peer.protocol.send(PLAN_PC, self.plan_message)
        self._check_plans()
        await self.plans_agreed

    def take_plan(self, pid: int, message: bytes) -> bool:
        """A peer's plan-digest message (from the connection's data): whether it was taken
        as its digest (only its first one is)."""
        if pid in self.peer_plans:
            return False
        self.peer_plans[pid] = bytes(message)
        self._check_plans()
        return True

    def _check_plans(self) -> None:
        """Once ours is sent and every peer's has arrived: the first peer (in MPyC id order)
        with another plan ends the query, else a peer lost meanwhile does, else the program
        goes on."""
        agreed = self.plans_agreed
        if agreed is None or agreed.done() or len(self.peer_plans) < len(self.addresses) - 1:
            return
        for pid in sorted(self.peer_plans):
            if self.peer_plans[pid] != self.plan_message:
                self._stop(DIFFERENT_PLAN.format(who=self.query.names[pid]))
                return
        if self.lost is not None:
            self._stop(self.lost)
            return
        agreed.set_result(None)

    def _stop(self, message: str) -> None:
        """End the query with `message`, also when it is still connecting (no program yet)."""
        self.query.fail(message)
        if self.plans_agreed is not None and not self.plans_agreed.done():
            self.plans_agreed.set_exception(Cancelled(message))

    def peer_lost(self, message: str) -> bool:
        """A peer's connection was lost before the parties agreed on the plan: whether the
        failure waits (LOST_GRACE s) for the plan digests still on their way. A peer that
        found another plan stops at once; the digest that tells why may arrive just after."""
        agreed = self.plans_agreed
        if agreed is not None and agreed.done():
            return False
        if self.lost is None:
            self.lost = message
            self.query.loop.call_later(LOST_GRACE, self._stop, message)
        return True

    def plan_silent(self) -> list[str]:
        """The connected peers that have not (yet) said which plan they run."""
        return [self.query.names[p.pid] for p in self.mpc.parties
                if p.pid != self.mpc.pid and p.protocol is not None
                and p.pid not in self.peer_plans]

    def identity_problem(self, transport, pid: int, *, dialled: bool) -> str | None:
        """Why the connection on `transport` may not be MPyC party `pid` (None: it may).
        `dialled`: we dialled party pid; else the peer connected to us and claims pid."""
        names, mpc = self.query.names, self.mpc
        where = _peer_address(transport)
        if not dialled:
            if not 0 <= pid < mpc.pid:
                return (f"a peer from {where} claims MPyC id {pid}; only ids below "
                        f"{mpc.pid} connect to this party")
            if mpc.parties[pid].protocol is not None:
                return f"a peer from {where} claims to be party {names[pid]}, already connected"
        if self.identity is None:
            return None
        try:
            role, name = peer_identity(transport)
        except IdentityError as e:
            return f"a peer from {where} claiming to be party {names[pid]}: {e}"
        if role != "party" or name != names[pid]:
            return (f"a peer from {where} {'answering as' if dialled else 'claiming to be'} "
                    f"party {names[pid]} presented the certificate of {role} {name!r}")
        return None

    def connect_early(self) -> None:
        """Listen and connect to the peers now, while this party's local job runs
        (`run_blocking`): neither the connections nor the connect retries then wait for the
        slowest local job."""
        self._open()
        self._start_task()

    def run_blocking(self, work: Callable[..., Any], *args: Any) -> Any:
        """`work(*args)`; in a worker thread while the event loop serves MPyC's early
        connections, else here."""
        if self.started is None:
            return work(*args)
        loop = self.query.loop
        return loop.run_until_complete(loop.run_in_executor(None, work, *args))

    def run_program(self, main: Callable[[dict], Any], inputs: dict):
        """Run the secure program's `main(inputs)` to its end; its revealed frame or None.

        Raises Cancelled when a peer is lost, the peers do not all connect within
        connect_timeout seconds, or `stop()` was called.
        """
        mpc = self.mpc
        q = self.query
        marks = protocol_marks()
        marks.clear()
        loop = self._open()
        t1 = time.perf_counter()
        q.task = loop.create_task(main(inputs))
        if q.error is not None:
            q.fail(q.error)  # stopped before the task existed: cancel it now

        def check_connected() -> None:
            if "connected" not in marks:
                missing = [q.names[p.pid] for p in mpc.parties
                           if p.pid != mpc.pid and p.protocol is None]
                silent = self.plan_silent()
                if not missing and silent:
                    q.fail(f"{', '.join(silent)} connected but did not say which plan "
                           f"{'it runs' if len(silent) == 1 else 'they run'} within "
                           f"{self.connect_timeout:g} s")
                    return
                refused = f" (last refused: {q.refusals[-1]})" if q.refusals else ""
                q.fail(f"could not connect to {', '.join(missing) or 'the other parties'} "
                       f"within {self.connect_timeout:g} s{refused}")

        timer = loop.call_later(self.connect_timeout, check_connected)
        try:
            frame = loop.run_until_complete(q.task)
        except asyncio.CancelledError:
            q.fail("the secure job was cancelled")
            raise Cancelled(q.error) from None
        except Exception:
            if q.error is not None:  # what the failure caused (e.g. a refused message's error)
                raise Cancelled(q.error) from None
            raise
        finally:
            timer.cancel()
            self.connected_at = marks.get("connected", t1)
        if q.error is not None:  # a failure after the protocol's last step
            raise Cancelled(q.error)
        self.completed = True
        return frame

    def close(self) -> None:
        """End the query. After a failure first close its MPyC connections and listening
        sockets and cancel what is left of the protocol; the loop never runs again. The MPyC
        runtime gets back the settings and event loop it had before."""
        mpc = self.mpc
        q = self.query
        mpc.__dict__.pop("start", None)
        loop = q.loop
        try:
            if loop is None:
                return
            if not self.completed:
                loop.set_exception_handler(lambda _loop, _context: None)  # a dead protocol
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
        finally:
            if _RUNNING["query"] is q:
                _RUNNING["query"] = None
            if self.saved is not None:
                _restore(mpc, self.saved)
                self.saved = None


def _peer_address(transport) -> str:
    """host:port of the other end of a connection, for log lines."""
    peer = transport.get_extra_info("peername") if transport is not None else None
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"


_OPTIONS = ("M", "index", "ssl", "no_async", "threshold")


def _settings(mpc) -> dict:
    """What configure_mpc and a query change in the runtime (to put back afterwards)."""
    return {"pid": mpc.pid, "parties": mpc.parties, "threshold": mpc.threshold,
            "program_counter": list(mpc._program_counter), "pc_level": mpc._pc_level,
            "loop": mpc._loop, "options": {k: getattr(mpc.options, k) for k in _OPTIONS}}


def _restore(mpc, saved: dict) -> None:
    mpc.pid = saved["pid"]
    mpc.parties = saved["parties"]
    for key, value in saved["options"].items():
        setattr(mpc.options, key, value)
    mpc._program_counter = saved["program_counter"]
    mpc._pc_level = saved["pc_level"]
    mpc._loop = saved["loop"]
    asyncio.set_event_loop(saved["loop"])
    mpc.threshold = saved["threshold"]
