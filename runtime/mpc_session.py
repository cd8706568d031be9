"""One query's MPyC run inside this process: the party processes and the party agents alike.

    session = MpcSession(plan.compute_parties, pid, addresses, ssl=False)
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
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

from .workspace import parse_address

#: seconds a party waits for the others to connect, counted from the start of its secure part
#: (the others may still run their local jobs)
CONNECT_TIMEOUT = 900.0


class Cancelled(Exception):
    """The query's secure part was stopped: a lost peer, a connect timeout, a stop from outside
    (the message says which)."""


class MpcQuery:
    """The state of the running query that MPyC's connection callbacks consult."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.error: str | None = None
        self.shutting_down = False
        self.task: asyncio.Task | None = None
        self.servers: list = []
        self.loop: asyncio.AbstractEventLoop | None = None

    def fail(self, message: str) -> None:
        """Record the first failure and cancel the protocol (from any thread)."""
        if self.error is None:
            self.error = message
        if self.task is not None and self.loop is not None:
            try:
                self.loop.call_soon_threadsafe(self.task.cancel)
            except RuntimeError:  # the query's loop is closed: it is over already
                pass


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
            q.fail(f"lost the connection to party {who} (it stopped or died)")
            return None
        return original_lost(self, exc)

    async def shutdown(self):
        q = _RUNNING["query"]
        if q is not None:
            q.shutting_down = True
        return await original_shutdown(self)

    asyncoro.MessageExchanger.connection_lost = connection_lost
    mpc.shutdown = shutdown.__get__(mpc)


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

    def __init__(self, names: list[str], pid: int, addresses: list[str], *, ssl: bool = False,
                 connect_timeout: float = CONNECT_TIMEOUT) -> None:
        if not 0 <= pid < len(addresses) or len(addresses) != len(names):
            raise ValueError(f"MPyC id {pid} of {len(addresses)} addresses for "
                             f"{len(names)} parties")
        self.mpc = load_mpc()
        self.query = MpcQuery(list(names))
        self.pid = pid
        self.addresses = list(addresses)
        self.ssl = ssl
        self.connect_timeout = float(connect_timeout)
        self.started: asyncio.Task | None = None  # mpc.start() begun early
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
        configure_mpc(self.mpc, self.pid, self.addresses, self.ssl)
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(asyncoro.exception_handler)  # as mpyc.runtime.Runtime does
        asyncio.set_event_loop(loop)
        original_create_server = loop.create_server

        async def create_server(*args, **kwargs):
            server = await original_create_server(*args, **kwargs)
            q.servers.append(server)
            return server

        loop.create_server = create_server
        self.mpc._loop = loop
        q.loop = loop
        _RUNNING["query"] = q
        return loop

    def connect_early(self) -> None:
        """Listen and connect to the peers now, while this party's local job runs
        (`run_blocking`): neither the connections nor MPyC's connect retries then wait for the
        slowest local job."""
        loop = self._open()
        self.started = loop.create_task(self.mpc.start())

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
        if self.started is not None:
            started = self.started
            mpc.start = lambda: started  # the program's `await mpc.start()`: begun already
        t1 = time.perf_counter()
        q.task = loop.create_task(main(inputs))
        if q.error is not None:
            q.fail(q.error)  # stopped before the task existed: cancel it now

        def check_connected() -> None:
            if "connected" not in marks:
                missing = [q.names[p.pid] for p in mpc.parties
                           if p.pid != mpc.pid and p.protocol is None]
                q.fail(f"could not connect to {', '.join(missing) or 'the other parties'} "
                       f"within {self.connect_timeout:g} s")

        timer = loop.call_later(self.connect_timeout, check_connected)
        try:
            frame = loop.run_until_complete(q.task)
        except asyncio.CancelledError:
            q.fail("the secure job was cancelled")
            raise Cancelled(q.error) from None
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
