"""`sqlmpc run` through running party agents (the catalog's `agent` addresses, or --agents).

    result = run_with_agents(plan, catalog, {"bank_a": "127.0.0.1:7401", ...}, options,
                             identity="keys/analysts/alice")

The client only asks: it sends each agent the SQL text, a fresh query id, checked compile
switches and the plan digest it computed from its own compile (runtime/deployment.py); each
agent compiles the query itself with its own catalog and runs only when its digest equals the
client's. Every connection is mutual TLS with the analyst's identity, and each agent's
certificate must be that party's (`insecure_plaintext` skips TLS, with a warning line).

The same contract as a run with party processes (runtime/launcher.py): the recipients' result
as a DataFrame, a PartyError naming the party when any agent fails or dies (no result then),
--stats in the same form. Closing the connections (a failure elsewhere, a signal, a timeout)
cancels whatever the agents still run for this query. Also ping and wait_ready.
"""

from __future__ import annotations

import json
import queue
import secrets
import socket
import sys
import threading
import time
from pathlib import Path

from ...compiler.catalog import Catalog
from ...compiler.errors import PartyError, SqlmpcError
from ...compiler.ir.plan import Plan
from ..deployment import Deployment, plan_digest
from ..report import FAILURE_GRACE, is_echo
from ..workspace import (
    RunOptions,
    read_result,
    receiver,
    run_folder,
    runners,
    stop_on_signals,
    write_stats,
)
from .protocol import parse_address, read_messages, run_request, send, simple_request

CONNECT_SECONDS = 5.0   # a client's TCP connect to an agent
PLAINTEXT_WARNING = ("sqlmpc: warning: talking to the agents WITHOUT TLS "
                     "(--insecure-plaintext): anyone on the network sees the query and result")


def connect(address: str, timeout: float, *, tls=None, party: str | None = None
            ) -> socket.socket:
    """A connection to the agent at `address`: mutual TLS with the `tls` client context when
    given, and then the agent's certificate must be party `party`'s."""
    from ..identity import IdentityError, peer_identity
    host, port = parse_address(address)
    s = socket.create_connection((host, port), timeout=timeout)
    if tls is None:
        return s
    try:
        s = tls.wrap_socket(s)
        role, name = peer_identity(s)
    except (OSError, IdentityError) as e:
        s.close()
        raise PartyError(f"party {party or address}: TLS with its agent at {address} failed: "
                         f"{getattr(e, 'reason', None) or e}") from None
    if party is not None and (role, name) != ("party", party):
        s.close()
        raise PartyError(f"party {party}: the agent at {address} is {role} {name!r}, not "
                         f"party {party!r}; not asked")
    return s


def client_tls(catalog: Catalog | None, identity: str | Path | None,
               insecure_plaintext: bool):
    """The analyst's TLS client context (None with insecure_plaintext: a warning line)."""
    from ..identity import client_context
    dep = Deployment.of(catalog, identity) if catalog is not None else None
    if dep is None and identity:
        from ..identity import Identity
        return client_context(Identity.from_folder(identity))
    if dep is not None and dep.identity is not None:
        if dep.identity.role != "analyst":
            raise SqlmpcError(f"the identity in {dep.identity_dir} is {dep.identity.role} "
                              f"{dep.identity.name!r}; queries are asked by an analyst")
        return client_context(dep.identity)
    if not insecure_plaintext:
        raise SqlmpcError("no analyst identity to talk to the agents with (give --identity DIR "
                          "or [deployment] identity in the catalog); to talk without TLS, pass "
                          "--insecure-plaintext")
    print(PLAINTEXT_WARNING, file=sys.stderr, flush=True)
    return None


# --- small requests ----------------------------------------------------------------------------
def request(address: str, message: dict, timeout: float = 10.0, *, tls=None,
            party: str | None = None) -> dict:
    """Send one request, return the final reply (progress lines skipped)."""
    with connect(address, timeout, tls=tls, party=party) as s:
        send(s, message)
        for reply in read_messages(s):
            if "progress" not in reply:
                return reply
    raise PartyError(f"the agent at {address} closed the connection without an answer")


def ping(address: str, timeout: float = 5.0, *, tls=None) -> dict:
    """{"ok", "party", "pid", "queries", "busy"} of the agent at `address`."""
    return request(address, simple_request("ping"), timeout, tls=tls)


def wait_ready(address: str, timeout: float = 120.0, proc=None, *, tls=None) -> dict:
    """Ping until the agent answers (or its process `proc` exits, or timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ping(address, timeout=2.0, tls=tls)
        except (OSError, ValueError, PartyError):
            pass
        if proc is not None and proc.poll() is not None:
            raise PartyError(f"the agent at {address} exited (status {proc.returncode}) "
                             f"before it was ready")
        if time.monotonic() > deadline:
            raise PartyError(f"the agent at {address} was not ready within {timeout:g} s")
        time.sleep(0.1)


# --- a query through the agents ----------------------------------------------------------------
def run_with_agents(plan: Plan, catalog: Catalog, agents: dict[str, str] | None,
                    options: RunOptions | None = None, *, identity: str | Path | None = None,
                    insecure_plaintext: bool = False):
    """Run `plan` through running agents (one per party: `agents`, else the catalog's agent
    addresses); return the result."""
    options = options or RunOptions()
    t0 = time.perf_counter()
    agents = {**{n: p.agent for n, p in catalog.parties.items() if p.agent}, **(agents or {})}
    names = runners(plan)
    missing = [r for r in names if r not in agents]
    if missing:
        raise PartyError(f"party {missing[0]}: no agent given (add {missing[0]}=HOST:PORT to "
                         f"--agents or agent = \"HOST:PORT\" to its catalog section; every "
                         f"party of this query needs one: {', '.join(names)})")
    tls = client_tls(catalog, identity, insecure_plaintext)
    query_id = secrets.token_hex(8)
    digest = plan_digest(plan, query_id)
    switches = {**dict(options.compile_options), "all_secure": bool(plan.all_secure),
                "timeout": options.timeout}
    with run_folder(options.workdir) as root:
        run = AgentRun(agents, quiet=options.quiet, tls=tls)
        restore = stop_on_signals()
        try:
            for name in names:
                run.send(name, run_request(party=name, sql=plan.sql, query_id=query_id,
                                           digest=digest, options=switches, sent=time.time()))
            run.collect(names, options.timeout, t0)
        finally:
            run.close()  # closing cancels whatever an agent still runs for us
            restore()
        for name, reply in run.replies.items():
            folder = root / name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "stats.json").write_text(json.dumps(reply.get("stats") or {}))
        who = receiver(plan)
        text = (run.replies.get(who) or {}).get("result")
        if text is None:
            raise PartyError(f"party {who}: finished without a result")
        result_file = root / who / "result.csv"
        result_file.write_text(text)
        result = read_result(result_file, plan)
        if options.stats_path:
            write_stats(options.stats_path, root, names, time.perf_counter() - t0, len(result))
        return result


class AgentRun:
    """One query's connections to the agents, their replies, and the first failure."""

    def __init__(self, agents: dict[str, str], *, quiet: bool, tls=None) -> None:
        self.agents = agents
        self.tls = tls
        self.quiet = quiet
        self.events: queue.Queue = queue.Queue()
        self.socks: dict[str, socket.socket] = {}
        self.replies: dict[str, dict] = {}
        self.done: set[str] = set()
        # (priority, arrival, message): a dead agent says most, then a party's own error (bad
        # data, a failed job), then what others saw of it (a lost connection)
        self.failures: list[tuple[int, int, str]] = []

    def send(self, name: str, message: dict) -> None:
        """Connect to `name`'s agent, send the request, read its replies in a thread."""
        try:
            s = connect(self.agents[name], CONNECT_SECONDS, tls=self.tls, party=name)
        except OSError as e:
            raise PartyError(f"party {name}: cannot reach its agent at {self.agents[name]} "
                             f"({e.strerror or e}); is `sqlmpc agent {name}` running?") from None
        s.settimeout(None)
        self.socks[name] = s
        send(s, message)
        threading.Thread(target=self._read, args=(name, s), daemon=True).start()

    def _read(self, name: str, sock: socket.socket) -> None:
        try:
            for message in read_messages(sock):
                self.events.put((name, message))
        except OSError:
            pass
        self.events.put((name, None))  # end of the stream: after a final reply, or it died

    def collect(self, names: list[str], timeout: float | None, t0: float) -> None:
        """Until every agent replied; a PartyError with the most telling failure, or when the
        run takes longer than `timeout` seconds (from perf_counter `t0`)."""
        while len(self.done) < len(names) and not self.failures:
            wait = None if timeout is None else max(timeout - (time.perf_counter() - t0), 0)
            try:
                name, message = self.events.get(timeout=wait)
            except queue.Empty:
                running = [r for r in names if r not in self.done]
                raise PartyError(f"the run took longer than {timeout:g} s (still running: "
                                 f"{', '.join(running)}); stopped") from None
            self._take(name, message)
        if self.failures:
            deadline = time.monotonic() + FAILURE_GRACE
            while time.monotonic() < deadline:
                try:
                    name, message = self.events.get(
                        timeout=max(deadline - time.monotonic(), 0.01))
                except queue.Empty:
                    break
                self._take(name, message)
            raise PartyError(min(self.failures)[2])

    def _take(self, name: str, message: dict | None) -> None:
        if message is None:
            if name not in self.done:
                self.failures.append((0, len(self.failures), f"party {name}: its agent at "
                                      f"{self.agents[name]} stopped or died during the query; "
                                      f"the run was stopped and no result written"))
                self.done.add(name)
            return
        if "progress" in message:
            if not self.quiet:
                print(f"sqlmpc: {message['progress']}", file=sys.stderr, flush=True)
            return
        self.done.add(name)
        if message.get("ok"):
            self.replies[name] = message
        else:
            err = str(message.get("error") or "failed")
            self.failures.append((2 if is_echo(err) else 1, len(self.failures),
                                  err if err.startswith("party ") else f"party {name}: {err}"))

    def close(self) -> None:
        for s in self.socks.values():
            try:  # shutdown first: the reader thread's makefile() would keep it open
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
