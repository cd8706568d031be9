"""A run's folder, the parties' addresses and the run's options: what every way of running a
query (party processes, `sqlmpc party`, party agents) sets up the same way.

    with run_folder(options.workdir) as root:          # temporary unless --workdir
        plan_dir = prepare(plan, root, catalog)        # plan.json, explain.txt, every program
        addresses = party_addresses(plan, catalog)     # MPyC id order

The run folder:

    ROOT/plan/              what `sqlmpc compile` writes (runtime/artifacts.py)
    ROOT/<party>/           that party's private working files (its program, outputs, result)
    ROOT/<party>/identity/  `run --ssl`: the party's throwaway key and certificate (only there)

Every folder of a run is its owner's only (0700). When a run ends, each party's folder keeps
only what is not a party's plaintext data: its statistics and logs, and the result at a
recipient (`scrub_party_folder`), also with --workdir.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..compiler.catalog import Catalog
from ..compiler.errors import PartyError, SqlmpcError
from ..compiler.ir.plan import Plan

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass
class RunOptions:
    """How to run a compiled plan (the `sqlmpc run` switches); the plan says what to run.

    `engine_defaults` are engine settings for every party (e.g. {"spark_master": ...} from
    --spark-master); a party's own catalog settings win, and each engine takes only its keys.
    `compile_options` are the compile switches a party agent needs to compile the same plan.
    """

    ssl: bool = False
    stats_path: Path | None = None
    quiet: bool = False
    timeout: float | None = None
    workdir: Path | None = None
    engine_defaults: dict[str, object] = field(default_factory=dict)
    connect_timeout: float | None = None
    compile_options: dict[str, object] = field(default_factory=dict)


def parse_address(text: str, what: str = "address") -> tuple[str, int]:
    """"HOST:PORT" -> (host, port), with localhost as 127.0.0.1; a bad one is a one-line
    SqlmpcError naming `what`."""
    host, sep, port = str(text).strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SqlmpcError(f"{what} must be HOST:PORT, got {text!r}")
    return ("127.0.0.1" if host == "localhost" else host), int(port)


@contextlib.contextmanager
def run_folder(workdir: Path | None) -> Iterator[Path]:
    """The run's folder: `workdir` (created, kept afterwards) or a temporary one that is removed
    when the run ends, whatever happens."""
    if workdir is not None:
        yield private_folder(workdir)
        return
    with tempfile.TemporaryDirectory(prefix="sqlmpc-run-") as tmp:  # made 0700
        yield Path(tmp)


def private_folder(path: Path) -> Path:
    """`path`, made if missing, entered and read by its owner only (0700)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    except OSError as e:
        raise SqlmpcError(f"cannot make the private folder {path}: {e.strerror or e}") from None
    return path


#: what a party's folder keeps after a run: statistics, logs, the recipient's result
KEPT_AFTER_RUN = ("stats.json", "result.csv", "*.log")


def scrub_party_folder(folder: Path) -> None:
    """Delete everything in a party's folder but KEPT_AFTER_RUN: its pre-MPC rows, local job
    outputs, Parquet files, program and keys are gone once the run ended."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if not entry.is_symlink() and entry.is_file() and \
                any(entry.match(pattern) for pattern in KEPT_AFTER_RUN):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()


def prepare(plan: Plan, root: Path, catalog: Catalog | None = None) -> Path:
    """Write the compiled plan and every program into `root/plan`; return that folder."""
    from .artifacts import write_artifacts
    plan_dir = Path(root) / "plan"
    write_artifacts(plan, plan_dir, catalog)
    return plan_dir


def runners(plan: Plan) -> list[str]:
    """The parties that run something: every compute party when the plan needs MPC, else the
    parties with a local job."""
    return list(plan.compute_parties) if plan.needs_mpc else list(plan.local_jobs)


def receiver(plan: Plan) -> str:
    """The party whose result the run returns (a recipient; without MPC the one local job)."""
    if not plan.needs_mpc:
        return runners(plan)[0]
    return next(r for r in plan.recipients if r in plan.compute_parties)


def mpc_id(plan: Plan, party: str) -> int:
    return plan.compute_parties.index(party) if plan.needs_mpc else 0


#: free ports are chosen from here up to the kernel's ephemeral range
PRIVATE_PORTS_FROM = 20000
_port_choice = random.SystemRandom()  # never the seeded global generator: runs would collide


def ephemeral_ports() -> tuple[int, int]:
    """The kernel's range of source ports for outgoing connections (Linux's default when it
    cannot be read)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1", avoid: Collection[int] = ()) -> int:
    """A port nobody listens on now, not in `avoid`.

    Chosen below the ephemeral range when there is room: a port the kernel hands out for
    bind(0) lies in that range, where every outgoing connection on this machine (a party
    dialling another one included) takes its source port, so it could be gone before the
    party listens on it. Below the range only an explicit bind takes a port.
    """
    low, _ = ephemeral_ports()
    for _ in range(200):
        port = _port_choice.randrange(PRIVATE_PORTS_FROM, low) \
            if low - PRIVATE_PORTS_FROM >= 1000 else 0
        if port in avoid:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            port = s.getsockname()[1]
        if port not in avoid:
            return port
    raise PartyError(f"no free port on {host}")


def party_addresses(plan: Plan, catalog: Catalog, base_port: int | None = None) -> list[str]:
    """host:port of every compute party, in MPyC id order (catalog values, else base_port + id,
    else free ports); none without MPC."""
    if not plan.needs_mpc:
        return []
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
            port = free_port(avoid={int(a.rsplit(":", 1)[1]) for a in out})
        out.append(f"{host}:{port}")
    return out


def check_ports(plan: Plan, addresses: list[str], *, all_here: bool) -> None:
    """Fail early, with the party's name, when a listening port on this machine is taken.

    `all_here`: every party must run on this machine (`sqlmpc run` without agents).
    """
    for i, (name, addr) in enumerate(zip(plan.compute_parties, addresses)):
        host, port = addr.rsplit(":", 1)
        if i == 0:  # MPyC's party 0 only connects; it does not listen
            continue
        if host not in LOCAL_HOSTS:
            if all_here:
                raise PartyError(f"party {name}: host {host} is not this machine; `sqlmpc run` "
                                 f"starts every party here (run `sqlmpc party {name} ...` on "
                                 f"{host})")
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, int(port)))
            except OSError:
                raise PartyError(f"party {name}: port {port} on {host} is already in use "
                                 f"(change its port in the catalog or free it)") from None


def throwaway_identities(plan: Plan, root: Path, ssl: bool) -> dict[str, str]:
    """`run --ssl` with MPC: throwaway identities for every compute party, each party's key
    only in its own folder (ROOT/<party>/identity); {party: identity folder}. The CA's key is
    deleted once they are made, so nothing can make more."""
    if not (ssl and plan.needs_mpc):
        return {}
    from .identity import make_test_identities
    keys = make_test_identities(Path(root), list(plan.compute_parties), [], days=2)
    with contextlib.suppress(OSError):
        keys.ca_key.unlink()
    return {name: str(ident.cert.parent) for name, ident in keys.parties.items()}


def read_result(path: Path, plan: Plan):
    """The result CSV a recipient wrote, as a DataFrame (text columns stay text, decimal
    columns exact decimal.Decimal values: float64 would lose digits above 2^53)."""
    import decimal

    import pandas as pd
    # integers with NULLs (an outer join's) stay integers: pandas' nullable Int64
    text_columns = {n: (str if t == "text" else "Int64") for n, t in plan.result_columns
                    if t in ("text", "int")}
    exact = {n: (lambda s: decimal.Decimal(s) if s.strip() else None)
             for n, t in plan.result_columns if t.startswith("decimal")}
    return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=text_columns,
                       converters=exact)


def write_stats(path: Path, root: Path, names: list[str], total: float, revealed: int) -> None:
    """--stats: shared and revealed rows, the slowest party's local and secure seconds, the
    total, and each party's own seconds and wall-clock marks (from ROOT/<party>/stats.json).
    A party's shared rows are what its stats say it sent into MPC: the padded count when
    its input is padded (report.shared_rows), never a count the padding hides."""
    shared, local, secure, parties = {}, [], [], {}
    for name in names:
        f = Path(root) / name / "stats.json"
        if not f.exists():
            continue
        s = json.loads(f.read_text())
        parties[name] = {"seconds": s.get("seconds", {}), "t": s.get("t", {})}
        shared[name] = s.get("shared_rows", 0)
        local.append(s.get("seconds", {}).get("local", 0.0))
        secure.append(s.get("seconds", {}).get("secure", 0.0))
    doc = {"shared_rows": shared, "revealed_rows": revealed,
           "seconds": {"local": max(local, default=0.0), "secure": max(secure, default=0.0),
                       "total": total},
           "parties": parties}
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(doc, indent=2) + "\n")
    except OSError as e:
        raise SqlmpcError(f"cannot write stats file {path}: {e.strerror}") from None


def stop_on_signals() -> Callable[[], None]:
    """Turn SIGTERM/SIGHUP into a PartyError (so `finally` stops every party); returns the
    undo. Only the main thread can take signals: elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        raise PartyError(f"stopped by signal {signal.Signals(signum).name}; every party was "
                         f"stopped and no result written")
    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}

    def restore() -> None:
        for sig, h in old.items():
            signal.signal(sig, h)
    return restore


def write_result(frame, path: Path) -> Path:
    """Write a result table: Parquet when `path` ends in .parquet, else CSV with a header."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
    except OSError as e:
        raise SqlmpcError(f"cannot write the result to {path}: {e.strerror or e}") from None
    return path
