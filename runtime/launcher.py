"""`sqlmpc run`: start every party as its own OS process on this machine and collect the result.

Each party process (runtime/party.py) reads only its own parts, runs its local job, shares
into MPC over TCP and, if it is a recipient, writes the result into its own folder. The
launcher only starts processes, relays their progress lines, and reads a recipient's result
file. When any party fails or dies, every other party is stopped at once (their whole process
groups, Spark included), no result is written, and the error names the party.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

from .engines.spark import party_environment
from ..compiler.catalog import Catalog
from ..compiler.errors import PartyError, SqlmpcError
from ..compiler.ir.plan import Plan
from .artifacts import write_artifacts
from .party import ERROR, PROGRESS

POLL_SECONDS = 0.1
# set when a party's stderr ends (it exited): _wait() looks at once instead of after a poll
_PARTY_ENDED = threading.Event()
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def prepare(plan: Plan, workdir: Path | None) -> tuple[Path, Path]:
    """Create the run folder and write the compiled programs into `<workdir>/plan`."""
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="sqlmpc-run-"))
    plan_dir = root / "plan"
    write_artifacts(plan, plan_dir)
    return root, plan_dir


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def party_addresses(plan: Plan, catalog: Catalog, base_port: int | None = None) -> list[str]:
    """host:port of every compute party, in MPyC id order (catalog values, else free ports)."""
    out = []
    for i, name in enumerate(plan.compute_parties):
        p = catalog.parties.get(name)
        host = p.host if p else "localhost"
        host = "127.0.0.1" if host == "localhost" else host
        if p and p.port:
            port = p.port
        elif base_port:
            port = base_port + i
        else:
            port = free_port()
        out.append(f"{host}:{port}")
    return out


def check_ports(plan: Plan, addresses: list[str]) -> None:
    """Fail early, with the party's name, when a local listening port is already taken."""
    for i, (name, addr) in enumerate(zip(plan.compute_parties, addresses)):
        host, port = addr.rsplit(":", 1)
        if i == 0:  # MPyC's party 0 only connects; it does not listen
            continue
        if host not in LOCAL_HOSTS:
            raise PartyError(f"party {name}: host {host} is not this machine; `sqlmpc run` "
                             f"starts every party here (run `sqlmpc party {name} ...` on {host})")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, int(port)))
            except OSError:
                raise PartyError(f"party {name}: port {port} on {host} is already in use "
                                 f"(change its port in the catalog or free it)") from None


def run_plan(plan: Plan, catalog: Catalog, *, engine: str = "spark",
             spark_master: str | None = None, ssl: bool = False, stats_path: Path | None = None,
             quiet: bool = False, timeout: float | None = None,
             workdir: Path | None = None, agents: dict[str, str] | None = None,
             options: dict | None = None) -> pd.DataFrame:
    """Run every party of `plan` as its own process; return the recipients' result.

    With `agents` ({party: "host:port"}) the parties are already running `sqlmpc agent`
    processes instead (runtime/agent.py); `options` (dialect, disable) let them recompile.
    Without `workdir` the run folder (plans, party logs, intermediate files) is temporary and
    removed when the run ends, whatever happens; a given `workdir` is kept.
    """
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="sqlmpc-run-") as tmp:
            return run_plan(plan, catalog, engine=engine, spark_master=spark_master, ssl=ssl,
                            stats_path=stats_path, quiet=quiet, timeout=timeout,
                            workdir=Path(tmp), agents=agents, options=options)
    if agents:
        from .agent import run_with_agents
        return run_with_agents(plan, catalog, agents, ssl=ssl, stats_path=stats_path,
                               quiet=quiet, timeout=timeout, workdir=workdir, options=options)
    t0 = time.perf_counter()
    root, plan_dir = prepare(plan, workdir)
    runners = plan.compute_parties if plan.needs_mpc else list(plan.local_jobs)
    addresses = party_addresses(plan, catalog) if plan.needs_mpc else []
    if plan.needs_mpc:
        check_ports(plan, addresses)
    ssl_dir = None
    if ssl and plan.needs_mpc:
        from .tls import make_certificates
        ssl_dir = make_certificates(root / "tls", len(plan.compute_parties))
    procs: dict[str, subprocess.Popen] = {}
    errors: dict[str, str] = {}
    tails: dict[str, list[str]] = {}
    threads = []
    restore = _stop_on_signals()  # SIGTERM/SIGHUP to the launcher must not orphan the parties
    try:
        _spawn_and_wait(plan, catalog, runners, addresses, root, plan_dir, engine, ssl, ssl_dir,
                        spark_master, quiet, timeout, t0, procs, errors, tails, threads)
    finally:
        _stop_all(procs)
        restore()
    receiver = next(r for r in plan.recipients if r in runners or not plan.needs_mpc)
    result_file = root / receiver / "result.csv"
    if not plan.needs_mpc:
        result_file = root / runners[0] / "result.csv"
    if not result_file.exists():
        raise PartyError(f"party {receiver}: finished without a result")
    text_columns = {n: str for n, t in plan.result_columns if t == "text"}
    result = pd.read_csv(result_file, keep_default_na=False, na_values=[""], dtype=text_columns)
    if stats_path:
        write_stats(stats_path, root, runners, time.perf_counter() - t0, len(result))
    return result


def _stop_on_signals():
    """Turn SIGTERM/SIGHUP into an exception (so `finally` stops every party); returns undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        raise PartyError(f"stopped by signal {signal.Signals(signum).name}; every party was "
                         f"stopped and no result written")
    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}

    def restore():
        for sig, h in old.items():
            signal.signal(sig, h)
    return restore


def _spawn_and_wait(plan, catalog, runners, addresses, root, plan_dir, engine, ssl, ssl_dir,
                    spark_master, quiet, timeout, t0, procs, errors, tails, threads) -> None:
    for name in runners:
        party_dir = root / name
        party_dir.mkdir(parents=True, exist_ok=True)
        p = catalog.parties.get(name)
        spec = {"party": name, "pid": plan.compute_parties.index(name) if plan.needs_mpc else 0,
                "addresses": addresses, "plan_dir": str(plan_dir), "workdir": str(party_dir),
                "engine": plan.engines.get(name) or engine, "ssl": ssl, "ssl_dir": str(ssl_dir) if ssl_dir else None,
                "spark_master": (p.option("spark_master") if p else None) or spark_master}
        spec["spawned"] = time.time()  # wall clock: the party's process start-up shows in stats
        spec_path = root / f"{name}.spec.json"
        spec_path.write_text(json.dumps(spec))
        env = party_environment(PYTHONUNBUFFERED="1")
        # SQLMPC_PROFILE=DIR: each party runs under cProfile and writes DIR/<party>.prof
        profile = os.environ.get("SQLMPC_PROFILE")
        prof = ["-m", "cProfile", "-o", str(Path(profile) / f"{name}.prof")] if profile else []
        proc = subprocess.Popen([sys.executable, *prof, "-m", "sqlmpc.runtime.party",
                                 str(spec_path)],
                                cwd=party_dir, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)
        procs[name] = proc
        tails[name] = []
        th = threading.Thread(target=_relay, args=(name, proc, quiet, errors, tails[name]),
                              daemon=True)
        th.start()
        threads.append(th)
    _wait(procs, errors, tails, threads, timeout, t0)


def _relay(name: str, proc: subprocess.Popen, quiet: bool, errors: dict, tail: list) -> None:
    for line in proc.stderr:
        line = line.rstrip("\n")
        if line.startswith(PROGRESS):
            if not quiet:
                print(f"sqlmpc: {line[len(PROGRESS):].strip()}", file=sys.stderr, flush=True)
        elif line.startswith(ERROR):
            errors.setdefault(name, line[len(ERROR):].strip())
        elif line.strip():
            tail.append(line)
            del tail[:-20]
    _PARTY_ENDED.set()


def _wait(procs, errors, tails, threads, timeout, t0) -> None:
    while True:
        running = [n for n, p in procs.items() if p.poll() is None]
        failed = [n for n, p in procs.items() if p.returncode not in (None, 0)]
        if failed:
            name = failed[0]
            procs[name].wait()
            for th in threads:
                th.join(timeout=1)
            code = procs[name].returncode
            if name in errors:
                msg = errors[name]
                raise PartyError(msg if msg.startswith(f"{name}") or msg.startswith("party ")
                                 else f"party {name}: {msg}")
            if code < 0:
                raise PartyError(f"party {name} died (killed by signal "
                                 f"{signal.Signals(-code).name}); the run was stopped and no "
                                 f"result written")
            last = tails[name][-1] if tails[name] else "no message"
            raise PartyError(f"party {name} failed (exit status {code}): {last}")
        if not running:
            for th in threads:
                th.join(timeout=1)
            return
        if timeout is not None and time.perf_counter() - t0 > timeout:
            raise PartyError(f"the run took longer than {timeout:g} s (still running: "
                             f"{', '.join(running)}); stopped")
        _PARTY_ENDED.wait(POLL_SECONDS)
        _PARTY_ENDED.clear()


def _stop_all(procs: dict[str, subprocess.Popen]) -> None:
    for p in procs.values():
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.time() + 5
    for p in procs.values():
        try:
            p.wait(timeout=max(deadline - time.time(), 0.1))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
    for p in procs.values():  # Spark's JVM and other children in the party's group
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def write_stats(path: Path, root: Path, runners: list[str], total: float, revealed: int) -> None:
    shared, local, secure, parties = {}, [], [], {}
    for name in runners:
        f = root / name / "stats.json"
        if not f.exists():
            continue
        s = json.loads(f.read_text())
        parties[name] = {"seconds": s.get("seconds", {}), "t": s.get("t", {})}
        shared[name] = s.get("shared_rows", 0)
        local.append(s["seconds"].get("local", 0.0))
        secure.append(s["seconds"].get("secure", 0.0))
    doc = {"shared_rows": shared, "revealed_rows": revealed,
           "seconds": {"local": max(local, default=0.0), "secure": max(secure, default=0.0),
                       "total": total},
           "parties": parties}  # each party's own seconds and wall-clock marks (party.py)
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(doc, indent=2) + "\n")
    except OSError as e:
        raise SqlmpcError(f"cannot write stats file {path}: {e.strerror}") from None
