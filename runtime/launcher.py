"""`sqlmpc run`: start every party as its own OS process on this machine and collect the result.

Each party process (`python -m sqlmpc.runtime.party SPEC.json`, runtime/party.py) reads only
its own parts, runs its local job, shares into MPC over TCP and, if it is a recipient, writes
the result into its own folder. The launcher only starts processes, relays their progress
lines, and reads a recipient's result file. When any party fails or dies, every other party
is stopped at once (their whole process groups, their engines included), no result is
written, and the error names the party.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..compiler.catalog import Catalog
from ..compiler.errors import PartyError
from ..compiler.ir.plan import Plan
from .config import party_engine
from .deployment import plan_digest
from .mpc_session import CONNECT_TIMEOUT
from .party_run import PartySpec
from .report import ERROR_PREFIX, FAILURE_GRACE, PROGRESS_PREFIX, is_echo
from .workspace import (
    RunOptions,
    check_ports,
    mpc_id,
    party_addresses,
    prepare,
    private_folder,
    read_result,
    receiver,
    run_folder,
    runners,
    scrub_party_folder,
    stop_on_signals,
    throwaway_identities,
    write_stats,
)

POLL_SECONDS = 0.1
STOP_GRACE = 5.0   # seconds a stopped party gets to end on its own before it is killed
TAIL_LINES = 20    # a party's last lines of other output, for a failure without an error line
PORT_ATTEMPTS = 3  # runs on freshly chosen ports before a taken port is an error


def run_plan(plan: Plan, catalog: Catalog, options: RunOptions | None = None):
    """Run every party of `plan` as its own process here; return the recipients' result (a
    pandas DataFrame). A PartyError names the party when any fails or dies (no result then).

    Without `options.workdir` the run folder (plans, party folders, intermediate files) is
    temporary and removed when the run ends, whatever happens; a given workdir is kept, but
    each party's folder keeps only its statistics, logs and (at a recipient) the result.
    With `options.ssl` the parties' MPyC channels are mutual TLS with throwaway identities
    made in the run folder (each party's key only in its own folder).
    """
    options = options or RunOptions()
    t0 = time.perf_counter()
    with run_folder(options.workdir) as root:
        plan_dir = prepare(plan, root, catalog)
        names = runners(plan)
        identities = throwaway_identities(plan, root, options.ssl)
        for attempt in range(1, PORT_ATTEMPTS + 1):
            addresses = party_addresses(plan, catalog)
            check_ports(plan, addresses, all_here=True)
            try:
                _run_parties(plan, catalog, options, root, plan_dir, addresses, identities, t0)
                break
            except PartyError as e:
                # a free port chosen here can still be taken before its party listens on it
                # (another program's bind): then the run starts again on other free ports
                if not (port_taken(e) and attempt < PORT_ATTEMPTS
                        and not any(p.port for p in catalog.parties.values())):
                    raise
        result_file = root / receiver(plan) / "result.csv"
        if not result_file.exists():
            raise PartyError(f"party {receiver(plan)}: finished without a result")
        result = read_result(result_file, plan)
        if options.stats_path:
            write_stats(options.stats_path, root, names, time.perf_counter() - t0, len(result))
        return result


def port_taken(error: PartyError | str) -> bool:
    """Whether a party failed because its listening port was taken."""
    return "address already in use" in str(error)


def _run_parties(plan: Plan, catalog: Catalog, options: RunOptions, root: Path,
                 plan_dir: Path, addresses: list[str], identities: dict[str, str],
                 t0: float) -> None:
    """Start every party as its own process and wait until all have ended well."""
    names = runners(plan)
    digest = plan_digest(plan)  # the parties check it with each other before sharing
    processes = PartyProcesses(quiet=options.quiet)
    restore = stop_on_signals()  # SIGTERM/SIGHUP to the launcher must not orphan parties
    try:
        for name in names:
            engine, engine_options = party_engine(plan, catalog, name, options.engine_defaults)
            spec = PartySpec(party=name, pid=mpc_id(plan, name), addresses=addresses,
                             plan_dir=plan_dir, workdir=root / name, engine=engine,
                             engine_options=engine_options,
                             identity_dir=identities.get(name),
                             plan_digest=digest,
                             connect_timeout=options.connect_timeout or CONNECT_TIMEOUT)
            processes.spawn(spec, root)
        processes.wait(options.timeout, t0)
    finally:
        processes.stop_all()
        restore()
        for name in names:  # a party's plaintext intermediates end with the run
            scrub_party_folder(root / name)


class PartyProcesses:
    """The party processes of one run: started, watched (their stderr relayed), stopped."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.procs: dict[str, subprocess.Popen] = {}
        self.errors: dict[str, str] = {}
        self.tails: dict[str, list[str]] = {}
        self.threads: list[threading.Thread] = []
        # set when a party's stderr ends (it exited): wait() looks at once, not after a poll
        self.ended = threading.Event()

    def spawn(self, spec: PartySpec, root: Path) -> None:
        """Start the party of `spec` as `python -m sqlmpc.runtime.party ROOT/NAME.spec.json`
        in its own process group (so that stopping it stops its engine's processes too)."""
        from .engines import party_environment
        name = spec.party
        private_folder(spec.workdir)
        spec.spawned = time.time()  # wall clock: the party's start-up shows in --stats
        spec_path = Path(root) / f"{name}.spec.json"
        spec_path.write_text(spec.to_json())
        env = party_environment(PYTHONUNBUFFERED="1")
        # SQLMPC_PROFILE=DIR: each party runs under cProfile and writes DIR/<party>.prof
        profile = os.environ.get("SQLMPC_PROFILE")
        if profile:
            Path(profile).mkdir(parents=True, exist_ok=True)
        prof = ["-m", "cProfile", "-o", str(Path(profile).resolve() / f"{name}.prof")] if profile else []
        proc = subprocess.Popen([sys.executable, *prof, "-m", "sqlmpc.runtime.party",
                                 str(spec_path)],
                                cwd=spec.workdir, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)
        self.procs[name] = proc
        self.tails[name] = []
        thread = threading.Thread(target=self._relay, args=(name, proc), daemon=True)
        thread.start()
        self.threads.append(thread)

    def _relay(self, name: str, proc: subprocess.Popen) -> None:
        tail = self.tails[name]
        for line in proc.stderr:
            line = line.rstrip("\n")
            if line.startswith(PROGRESS_PREFIX):
                if not self.quiet:
                    print(f"sqlmpc: {line[len(PROGRESS_PREFIX):].strip()}", file=sys.stderr,
                          flush=True)
            elif line.startswith(ERROR_PREFIX):
                self.errors.setdefault(name, line[len(ERROR_PREFIX):].strip())
            elif line.strip():
                tail.append(line)
                del tail[:-TAIL_LINES]
        self.ended.set()

    def wait(self, timeout: float | None, t0: float) -> None:
        """Until every party has ended well; a PartyError for the most telling failure when
        any failed or died, or when the run takes longer than `timeout` seconds (from
        perf_counter `t0`)."""
        while True:
            running = [n for n, p in self.procs.items() if p.poll() is None]
            if any(p.returncode not in (None, 0) for p in self.procs.values()):
                raise self._failure()
            if not running:
                self._join_relays()
                return
            if timeout is not None and time.perf_counter() - t0 > timeout:
                raise PartyError(f"the run took longer than {timeout:g} s (still running: "
                                 f"{', '.join(running)}); stopped")
            self.ended.wait(POLL_SECONDS)
            self.ended.clear()

    def _join_relays(self) -> None:
        for thread in self.threads:
            thread.join(timeout=1)

    def _failure(self) -> PartyError:
        """The most telling failure: a party whose port was taken says most (the others then
        wait for it or lose it), then a party that died, then a party's own error (bad data,
        a failed job), then what the others saw of it (a lost connection). The
        others' reports often come first: wait FAILURE_GRACE seconds for the rest."""
        deadline = time.monotonic() + FAILURE_GRACE
        while time.monotonic() < deadline and any(p.poll() is None for p in self.procs.values()):
            self.ended.wait(POLL_SECONDS / 2)
            self.ended.clear()
        failed = [n for n, p in self.procs.items() if p.returncode not in (None, 0)]
        for name in failed:
            self.procs[name].wait()
        self._join_relays()
        reports = [self._report(name) for name in failed]
        return PartyError(min(reports)[1])

    def _report(self, name: str) -> tuple[int, str]:
        """(priority, message) of a failed party: see _failure."""
        code = self.procs[name].returncode
        if name in self.errors:
            msg = self.errors[name]
            msg = msg if msg.startswith((name, "party ")) else f"party {name}: {msg}"
            if port_taken(msg):  # the cause of whatever the others then saw
                return -1, msg
            return (2 if is_echo(msg) else 1), msg
        if code < 0:
            return 0, (f"party {name} died (killed by signal {signal.Signals(-code).name}); "
                       f"the run was stopped and no result written")
        last = self.tails[name][-1] if self.tails[name] else "no message"
        return 1, f"party {name} failed (exit status {code}): {last}"

    def stop_all(self) -> None:
        """Stop every party still running (SIGTERM to its group, SIGKILL after STOP_GRACE s),
        then whatever is left in their groups."""
        for p in self.procs.values():
            if p.poll() is None:
                _signal_group(p, signal.SIGTERM)
        deadline = time.time() + STOP_GRACE
        for p in self.procs.values():
            try:
                p.wait(timeout=max(deadline - time.time(), 0.1))
            except subprocess.TimeoutExpired:
                _signal_group(p, signal.SIGKILL)
                p.wait()
        for p in self.procs.values():  # an engine's processes left in the party's group
            _signal_group(p, signal.SIGKILL)


def _signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
