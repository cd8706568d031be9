"""A party agent that reports what the benchmark measures inside it.

    python -m benchmarks.taxi.probe agent NAME --catalog ... (the arguments of `sqlmpc agent`)

runs `sqlmpc agent` unchanged except for three instruments, active when the environment
variable TAXI_HHI_PROBE_DIR names a folder:

- Rounds. Every MPyC message this party sends is counted, and a send that follows at least one
  receipt since this party's previous send starts a new communication round: a message that
  depends on a peer's message needs one more network trip. Counted per query, from the first
  connection (the plan digests the parties exchange are a round) to the revealed result.
  Independent steps of the protocol that interleave can only add rounds, so the count is an
  upper bound on the protocol's depth as this party saw it.
- One local job at a time. While the folder holds a file `serialize`, each party's local job
  (rendering its program and running it on its warm engine) holds an exclusive lock on
  `local-job.lock` there, so the parties' jobs run one after another, each with the machine to
  itself; the secure part afterwards still runs with all parties at once.
- A network between the parties. While the folder holds a file `latency` (a number of
  milliseconds, L), every MPyC message reaches this party's protocol L ms after it arrived,
  in the order the bytes arrived (the delivery, not the socket, waits): a WAN with a round
  trip of 2 L between any two parties, where the protocol's own dependencies decide how long
  the secure part takes (as on a real network), not a count of rounds. Connections are made
  at once (in a deployment, while the local jobs run); bandwidth is this machine's.

Per query it writes <party>.job.json ({"wait": seconds waiting for the lock, "job": seconds
running}) and <party>.mpc.json ({"messages", "rounds", "bytes"}) into the folder, before the
agent replies to its client. Without TAXI_HHI_PROBE_DIR it is `sqlmpc agent`.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import sys
import time
from collections import deque
from pathlib import Path

PROBE_ENV = "TAXI_HHI_PROBE_DIR"
SERIALIZE = "serialize"
LATENCY = "latency"
LOCK = "local-job.lock"


class RoundCounter:
    """Messages sent and rounds (sends after a receipt) of one party in one query."""

    def __init__(self) -> None:
        self.messages = 0
        self.rounds = 0
        self.bytes = 0
        self.received = True  # the first send opens the first round

    def sent(self, size: int) -> None:
        if self.received:
            self.rounds += 1
            self.received = False
        self.messages += 1
        self.bytes += size

    def receipt(self) -> None:
        self.received = True

    def as_dict(self) -> dict:
        return {"messages": self.messages, "rounds": self.rounds, "bytes": self.bytes}


class DelayedDelivery:
    """Hands received bytes to `deliver` `delay` seconds after they arrived, in arrival order
    (every arrival schedules a drain of what is due; an early drain delivers nothing)."""

    def __init__(self, deliver, delay: float) -> None:
        self.deliver = deliver
        self.delay = delay
        self.due: deque[tuple[float, bytes]] = deque()

    def arrived(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.due.append((loop.time() + self.delay, data))
        loop.call_at(self.due[-1][0], self.drain)

    def drain(self) -> None:
        now = asyncio.get_running_loop().time()
        while self.due and self.due[0][0] <= now:
            self.deliver(self.due.popleft()[1])


def latency_of(folder: Path) -> float:
    """The one-way delay (seconds) the folder's `latency` file asks for; 0 without one."""
    try:
        return float((folder / LATENCY).read_text()) / 1000.0
    except (OSError, ValueError):
        return 0.0


def install(folder: Path) -> None:
    """Wrap the runtime's MPyC session and local job step with the two instruments."""
    from sqlmpc.runtime import mpc_session, party_run

    counters: dict[int, tuple[str, RoundCounter]] = {}  # id(session) -> party, counter
    current: list[RoundCounter] = [RoundCounter()]  # the running query's (one at a time)
    delay: list[float] = [0.0]  # the running query's one-way latency (seconds)
    delayed: dict[int, DelayedDelivery] = {}  # the running query's, by connection
    patched: list[bool] = [False]

    def patch_exchanger() -> None:
        cls = mpc_session._exchanger_class()  # MPyC's message exchanger as the runtime uses it
        send, received = cls.send, cls.data_received

        def counted_send(self, pc, payload):
            current[0].sent(12 + len(payload))
            return send(self, pc, payload)

        def counted_receipt(self, data):
            if not delay[0]:
                current[0].receipt()
                return received(self, data)
            wire = delayed.get(id(self))  # (it holds the connection: the id stays its own)
            if wire is None:
                def deliver(chunk, exchanger=self):
                    current[0].receipt()
                    received(exchanger, chunk)
                wire = delayed[id(self)] = DelayedDelivery(deliver, delay[0])
            wire.arrived(data)
            return None

        cls.send, cls.data_received = counted_send, counted_receipt
        patched[0] = True

    session_init = mpc_session.MpcSession.__init__
    run_program = mpc_session.MpcSession.run_program

    def init(self, names, pid, *args, **kwargs):
        session_init(self, names, pid, *args, **kwargs)
        if not patched[0]:
            patch_exchanger()
        current[0] = RoundCounter()
        delay[0] = latency_of(folder)
        delayed.clear()  # the previous query's connections are closed
        counters[id(self)] = (names[pid], current[0])

    def run(self, main, inputs):
        try:
            return run_program(self, main, inputs)
        finally:
            party, counter = counters.pop(id(self), (None, None))
            if party is not None:
                write(folder / f"{party}.mpc.json", counter.as_dict())

    run_job = party_run.PartyRun._run_job

    def serial_job(self, job):
        waited = time.perf_counter()
        with open(folder / LOCK, "a+") as lock:
            if (folder / SERIALIZE).exists():
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            started = time.perf_counter()
            try:
                return run_job(self, job)
            finally:
                write(folder / f"{self.spec.party}.job.json",
                      {"wait": started - waited, "job": time.perf_counter() - started})

    mpc_session.MpcSession.__init__ = init
    mpc_session.MpcSession.run_program = run
    party_run.PartyRun._run_job = serial_job


def write(path: Path, doc: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


def read_probes(folder: Path) -> dict[str, dict]:
    """{party: {"wait", "job", "messages", "rounds", "bytes"}} of the last query."""
    out: dict[str, dict] = {}
    for f in sorted(folder.glob("*.json")):
        party = f.name.split(".")[0]
        out.setdefault(party, {}).update(json.loads(f.read_text()))
    return out


def clear_probes(folder: Path, serialize: bool, latency_ms: float = 0.0) -> None:
    """Before a query: no reports of the previous one; the local jobs serialised or not; the
    MPyC messages delayed by latency_ms (one way) or not."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in folder.glob("*.json"):
        f.unlink()
    flag = folder / SERIALIZE
    if serialize:
        flag.touch()
    else:
        flag.unlink(missing_ok=True)
    if latency_ms:
        (folder / LATENCY).write_text(f"{latency_ms:g}")
    else:
        (folder / LATENCY).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    folder = os.environ.get(PROBE_ENV)
    if folder:
        install(Path(folder))
    from sqlmpc.runtime.cli import main as cli_main
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
