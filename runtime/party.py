"""One party's process: run its local job, share into MPC, run the secure job, keep its result.

The launcher (or `sqlmpc party` on a party's own machine) starts this as its own OS process:

    python -m sqlmpc.runtime.party SPEC.json

SPEC.json names the plan folder, this party, every compute party's address, the local engine
and where this party may write. The process reads only its own parts, sends only the shares
the plan lists, and writes the result only if it is a recipient. It parses no SQL: the local
SQL goes to Spark (or DuckDB) as written by the compiler. Progress lines on stderr start with
`sqlmpc-progress:`; a failure ends in one `sqlmpc-error:` line and exit status 1.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import time
from pathlib import Path

PROGRESS = "sqlmpc-progress:"
ERROR = "sqlmpc-error:"
# line prefixes on stderr: machine-readable under the launcher, plain for `sqlmpc party`
PREFIX = {"progress": PROGRESS, "error": ERROR}
SECFXP = (96, 32)


def progress(party: str, message: str) -> None:
    if PREFIX["progress"] is None:
        return
    print(f"{PREFIX['progress']} {party}: {message}", file=sys.stderr, flush=True)


def load_local_job(plan_doc: dict, party: str):
    from ..compiler.ir.plan import LocalJob, LocalOutput, PartInput
    d = plan_doc["local_jobs"].get(party)
    if d is None:
        return None
    return LocalJob(party, [PartInput(**i) for i in d["inputs"]],
                    [LocalOutput(**{**o, "columns": [tuple(c) for c in o["columns"]]})
                     for o in d["outputs"]])


def run_local(job, spec: dict) -> dict:
    workdir = Path(spec["workdir"])
    if spec.get("engine", "spark") == "duckdb":
        from .engines.duckdb import run_local_job
        return run_local_job(job, workdir=workdir)
    from .engines.spark import run_local_job
    master = spec.get("spark_master")
    remote = master if master and master.startswith("sc://") else None
    return run_local_job(job, workdir=workdir, master=None if remote else master, remote=remote,
                         quiet=True)


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    party = spec["party"]
    plan_dir = Path(spec["plan_dir"])
    workdir = Path(spec["workdir"])
    workdir.mkdir(parents=True, exist_ok=True)
    stats = {"party": party, "shared_rows": 0, "seconds": {}}
    t0 = time.perf_counter()
    # wall-clock marks (time.time()) so that the launcher can line the parties up
    stats["t"] = {"spawned": spec.get("spawned") or time.time(), "start": time.time()}
    # SIGTERM (the launcher stopping the run) unwinds like an error, so that a running local
    # job's own process group (Spark's JVM) is stopped too (backends/spark/runner.py)
    signal.signal(signal.SIGTERM, _terminated)
    # MPyC reads its options from sys.argv when first imported: set them before any import.
    if spec["addresses"]:
        sys.argv = [str(plan_dir / "secure_job.py"), "-M", str(len(spec["addresses"])),
                    "-I", str(spec["pid"]), "--log-level", "warning"]
        for addr in spec["addresses"]:
            sys.argv += ["-P", addr]
        if spec.get("ssl"):
            sys.argv.append("--ssl")
    try:
        plan_doc = json.loads((plan_dir / "plan.json").read_text())
        job = load_local_job(plan_doc, party)
        frames = {}
        if job is not None:
            progress(party, f"local job: running on {spec.get('engine', 'spark')} "
                            f"({len(job.inputs)} data file(s))")
            frames = run_local(job, spec)
            progress(party, "local job: done")
        stats["seconds"]["local"] = time.perf_counter() - t0
        stats["t"]["local_done"] = time.time()
        if not plan_doc["needs_mpc"]:
            (result_node,) = [o for o in job.outputs if o.kind == "result"]
            df = frames[result_node.node]
            df.columns = [c for c, _ in plan_doc["result_columns"]]
            df.to_csv(workdir / "result.csv", index=False)
            stats["seconds"]["secure"] = 0.0
            return _finish(workdir, stats, t0)
        from ..backends.mpyc.encoding import EncodingError
        try:
            inputs, stats["shared_rows"] = encode_shares(job, frames)
        except EncodingError as e:
            raise _user_error(f"{party}: cannot share its rows into MPC: {e}")
        if spec.get("ssl"):
            os.chdir(spec["ssl_dir"])  # MPyC looks for its certificates in ./.config
        progress(party, f"secure job: connecting to {len(spec['addresses']) - 1} other "
                        f"compute parties")
        t1 = time.perf_counter()
        stats["t"]["secure_start"] = time.time()
        module = _load_program(plan_dir / "secure_job.py")
        from mpyc.runtime import mpc
        from ..backends.mpyc import support
        from .agent import memoise_numpy_version
        memoise_numpy_version()  # MPyC re-parses numpy's version in every field array
        _watch_peers(mpc, plan_doc["compute_parties"], party,
                     float(spec.get("connect_timeout") or CONNECT_TIMEOUT))
        frame = mpc.run(module.main(inputs))
        end = time.perf_counter()
        connected = support.TIMES.get("connected", t1)
        stats["seconds"]["connect_wait"] = connected - t1
        stats["seconds"]["secure"] = end - connected
        if frame is not None:
            frame.to_csv(workdir / "result.csv", index=False)
            stats["revealed_rows"] = len(frame)
        progress(party, "secure job: done")
        return _finish(workdir, stats, t0)
    except _UserError as e:
        print(f"{PREFIX['error']} {_named(party, str(e))}", file=sys.stderr, flush=True)
        return 1
    except Exception as e:  # noqa: BLE001 -- one line, never a traceback (SQLMPC_DEBUG shows it)
        if os.environ.get("SQLMPC_DEBUG"):
            raise
        from ..compiler.errors import SqlmpcError
        msg = str(e) if isinstance(e, SqlmpcError) else f"{type(e).__name__}: {e}"
        print(f"{PREFIX['error']} {_named(party, _one_line(msg))}", file=sys.stderr, flush=True)
        return 1


class _UserError(Exception):
    pass


def _named(party: str, msg: str) -> str:
    """`party NAME: message`, without repeating the name when the message already has it."""
    for prefix in (f"party {party}: ", f"{party}: "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return f"party {party}: {msg}"


def encode_shares(job, frames: dict) -> tuple[dict, int]:
    """This party's rows of every "share" output of its local job, encoded for input into MPC
    ({node: encoded}, and how many rows in all); an EncodingError names the bad column."""
    from ..backends.mpyc.support import encode_frame
    inputs, rows = {}, 0
    for o in job.outputs if job else []:
        if o.kind == "share":
            df = frames[o.node]
            inputs[o.node] = encode_frame(df, [c for c, _ in o.columns],
                                          [t for _, t in o.columns], o.public_columns,
                                          *SECFXP, nullable=o.nullable)
            rows += len(df)
    return inputs, rows


def _user_error(msg: str) -> _UserError:
    return _UserError(msg)


def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[0] if lines else "failed"


def _terminated(signum, frame):
    raise SystemExit(128 + signum)


def _finish(workdir: Path, stats: dict, t0: float) -> int:
    stats["seconds"]["total"] = time.perf_counter() - t0
    stats["t"]["end"] = time.time()
    (workdir / "stats.json").write_text(json.dumps(stats))
    return 0


CONNECT_TIMEOUT = 900.0  # seconds a party waits for the others (their local jobs run first)


def _watch_peers(mpc, names: list[str], party: str, connect_timeout: float) -> None:
    """Exit with one clear line when a peer's connection drops before the protocol's end, or
    when the peers are not all connected within connect_timeout seconds.

    MPyC itself would wait forever for messages from a party that died.
    """
    import threading

    import mpyc.asyncoro as asyncoro

    state = {"shutdown": False}
    original_lost = asyncoro.MessageExchanger.connection_lost
    original_shutdown = mpc.shutdown

    def fail(message: str) -> None:
        print(f"{PREFIX['error']} {party}: {message}; stopped without a result", file=sys.stderr,
              flush=True)
        os._exit(1)

    def connection_lost(self, exc):
        if not state["shutdown"]:
            peer = getattr(self, "peer_pid", None)
            who = names[peer] if isinstance(peer, int) and peer < len(names) else "a party"
            fail(f"lost the connection to party {who} (it stopped or died)")
        return original_lost(self, exc)

    async def shutdown():
        state["shutdown"] = True
        return await original_shutdown()

    asyncoro.MessageExchanger.connection_lost = connection_lost
    mpc.shutdown = shutdown
    start = time.monotonic()

    def watchdog() -> None:
        from ..backends.mpyc import support
        while "connected" not in support.TIMES:
            if time.monotonic() - start > connect_timeout:
                missing = [names[p.pid] for p in mpc.parties
                           if p.pid != mpc.pid and p.protocol is None]
                fail(f"could not connect to {', '.join(missing) or 'the other parties'} within "
                     f"{connect_timeout:g} s")
            time.sleep(0.5)

    threading.Thread(target=watchdog, daemon=True).start()


def _load_program(path: Path):
    spec = importlib.util.spec_from_file_location("sqlmpc_secure_job", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_party_cli(plan, catalog, args) -> int:
    """`sqlmpc party NAME ...`: run one party of a deployment on this machine."""
    from .launcher import party_addresses, prepare
    from ..compiler.errors import SqlmpcError
    if args.name not in plan.compute_parties:
        raise SqlmpcError(f"unknown party {args.name!r} (parties: "
                          f"{', '.join(plan.compute_parties)})")
    workdir, plan_dir = prepare(plan, args.workdir)
    addresses = party_addresses(plan, catalog, base_port=args.base_port)
    spec = {"party": args.name, "pid": plan.compute_parties.index(args.name),
            "addresses": addresses, "plan_dir": str(plan_dir),
            "workdir": str(workdir / args.name), "engine": args.engine,
            "spark_master": _master(catalog, args.name, args.spark_master), "ssl": args.ssl}
    path = workdir / f"{args.name}.spec.json"
    path.write_text(json.dumps(spec))
    PREFIX["progress"] = None if args.quiet else "sqlmpc:"
    PREFIX["error"] = "sqlmpc: error:"
    code = main(str(path))
    result = workdir / args.name / "result.csv"
    if code == 0 and result.exists():
        if args.out:
            args.out.write_bytes(result.read_bytes())
        else:
            sys.stdout.write(result.read_text())
    return code


def _master(catalog, party: str, default: str | None) -> str | None:
    p = catalog.parties.get(party)
    return (p.option("spark_master") if p else None) or default


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
