"""The taxi market-concentration experiment: HHI over companies' revenue, sqlmpc vs plaintext.

    python -m benchmarks.taxi_hhi --rows 1000000,5000000 [--parties 3] [--layout company]
        [--repeat 3] [--all-secure-limit 120] [--all-secure-rows 1000,3000]
        [--phases cold,warm] [--json FILE] [--plot FILE.png] [--quick]

For every size in --rows (plus the small --all-secure-rows sizes) the script generates trips
with the NYC TLC yellow-trip schema (sqlmpc.datasets.taxi, cached under --data) and computes the
Herfindahl-Hirschman index of examples/taxi/query.sql three ways:

  plaintext   the insecure computation: ONE Spark job over the union of all parties' Parquet
              files, running the very same SQL text.
  sqlmpc      `sqlmpc run`: every party its own OS process running its generated local Spark
              job over its own file; one row per company and party is secret-shared into MPyC,
              which combines the revenues, computes the shares and the sum of their squares.
  all-secure  `sqlmpc run --all-secure`: every trip row is secret-shared and the filter, the
              group-by and the arithmetic run in MPC. Only for the sizes where it finishes
              within --all-secure-limit seconds (after the first size that does not, the larger
              ones are skipped).

Each is timed in two phases:

  cold  end to end from nothing: a fresh process (`python -m sqlmpc.runtime.cli run ...`, or the
        plaintext job) that starts its own Spark (local[*]) and stops it.
  warm  every party's Spark is already up: one Spark Connect server per party (and one for the
        plaintext baseline), started here from the pyspark package, and every party's sqlmpc
        agent too (`sqlmpc agent NAME`, runtime/agent.py: the party's long-lived process, with
        its imports done and its Spark Connect session open), as each organisation would run
        both. The time runs from submitting the query (`sqlmpc.run_sql(..., agents=...)`:
        compile, write the plan, ask the agents) to having the result; every party is still
        its own OS process. Agents serve one catalog, so they are started (untimed) for each
        size; --warmup (default 10) untimed runs of plaintext and sqlmpc per size, interleaved,
        let every JVM's JIT settle first (after 3 runs sqlmpc's three JVMs were still
        compiling: its runs got faster for about 10 more; plaintext's too, less).
        --no-agents: the earlier warm mode, a new process per party and query.

Reported numbers are medians of --repeat runs; within a repeat the modes run one after another
in a rotating order, so machine drift hits all of them alike. All modes must agree on the HHI
to HHI_RTOL (relative; sqlmpc computes in fixed point with 32 fractional bits, Spark in
doubles), else the script fails. Every server and process it started is stopped at the end
(also on errors and Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from sqlmpc.runtime.engines.spark import party_environment

REPO = Path(__file__).resolve().parents[1]
QUERY = REPO / "examples" / "taxi" / "query.sql"
DEFAULT_DATA = REPO / "out" / "taxi-bench"
MODES = ("plaintext", "sqlmpc", "all-secure")
PHASES = ("cold", "warm")
#: sqlmpc's secure part computes in fixed point with 32 fractional bits (SecFxp(96, 32)):
#: revenue shares (0..100) squared and summed agree with Spark's doubles to ~1e-8 relative.
HHI_RTOL = 1e-6
CONNECT_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
#: Spark settings shared by the plaintext job, the Connect servers and (for local mode) the
#: generated local jobs, so every mode runs on identically configured Spark.
SPARK_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}
QUICK = {"rows": [20_000], "all_secure_rows": [200], "repeat": 1, "phases": "cold"}


class BenchError(Exception):
    """A failed run or a disagreement, reported as one line."""


# --- helpers ------------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[taxi_hhi {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_home() -> Path:
    import pyspark
    return Path(pyspark.__file__).resolve().parent


def parse_sizes(text: str) -> list[int]:
    sizes = []
    for item in text.split(","):
        item = item.strip().replace("_", "").lower()
        if not item:
            continue
        scale = 1
        if item[-1] in "km":
            scale = 1_000 if item[-1] == "k" else 1_000_000
            item = item[:-1]
        try:
            value = int(float(item) * scale)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a row count: {item!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"row counts must be positive, got {value}")
        sizes.append(value)
    return sizes


def catalog_files(catalog: Path) -> list[str]:
    """Absolute paths of every part of table trips, in catalog order."""
    doc = tomllib.loads(catalog.read_text())
    return [str((catalog.parent / p).resolve()) for p in doc["tables"]["trips"]["parts"].values()]


def data_parties(catalog: Path) -> list[str]:
    doc = tomllib.loads(catalog.read_text())
    return list(doc["tables"]["trips"]["parts"])


def ensure_data(data: Path, rows: int, parties: int, layout: str, companies: int) -> Path:
    """Generate (once) and return the catalog of this size; reused across runs of the script."""
    from sqlmpc.datasets.taxi import generate, write_layout_catalog
    out = data / f"{layout}-p{parties}-c{companies}-{rows}"
    done = out / ".complete"
    if done.exists():  # the catalog is rewritten: cached data follow this version's catalog
        return write_layout_catalog(out, parties, layout, companies)
    t0 = time.perf_counter()
    shutil.rmtree(out, ignore_errors=True)
    catalog = generate(rows, parties, layout, out, companies=companies, quiet=True,
                       jobs=min(parties, os.cpu_count() or 1))
    done.write_text("ok\n")
    log(f"generated {rows:,} rows ({layout}, {parties} parties) in "
        f"{time.perf_counter() - t0:.1f} s -> {out}")
    return catalog


def warm_catalog(catalog: Path, masters: dict[str, str], tag: str) -> Path:
    """A copy of `catalog` (same folder, so the relative parts still resolve) in which every
    data party's `spark_master` names its own Spark Connect server."""
    lines = []
    for line in catalog.read_text().splitlines():
        lines.append(line)
        stripped = line.strip()
        if stripped.startswith("[parties.") and stripped.endswith("]"):
            name = stripped[len("[parties."):-1]
            if name in masters:
                lines.append(f'spark_master = "{masters[name]}"')
    path = catalog.with_name(f"catalog.warm-{tag}.toml")
    path.write_text("\n".join(lines) + "\n")
    return path


def hhi_of_csv(path: Path) -> float:
    import pandas as pd
    df = pd.read_csv(path)
    return float(df.iloc[0, 0])


# --- the plaintext computation ----------------------------------------------------------------


def check_connect_client() -> None:
    """The warm phase talks to Spark Connect servers: the client needs grpcio & co."""
    try:
        from pyspark.sql.connect.utils import check_dependencies
        try:
            check_dependencies()
        except TypeError:  # pyspark 3.5 takes the module name
            check_dependencies("pyspark.sql.connect.session")
    except ImportError as e:
        raise BenchError(f"the warm phase needs Spark Connect's client packages: pip install "
                         f"-e '.[connect]' (or use --phases cold): {e}") from None


def spark_reading(catalog: Path, sql: str, folder: Path):
    """sqlmpc's generated local-job program for `sql` (its first party's), loaded as a module:
    the plaintext job reads its files with the same functions (schema from the Parquet footer,
    the query in one Spark Connect round trip), so both modes use Spark alike."""
    import importlib.util

    from sqlmpc.backends.spark.codegen import render_local_job
    from sqlmpc.compiler.catalog import Catalog
    from sqlmpc.compiler.planner import compile_query

    plan = compile_query(sql, Catalog.load(catalog))
    job = next(iter(plan.local_jobs.values()))
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / "plaintext_reader.py"
    program.write_text(render_local_job(job))
    spec = importlib.util.spec_from_file_location("taxi_hhi_plaintext_reader", program)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plaintext_hhi(spark, files: list[str], sql: str, reading) -> float:
    """The insecure computation: the same SQL over the union of every party's file."""
    part = dict(reading.INPUTS[0], path=files[0])  # the columns the query reads
    footer = reading.local_parquet_schema(part)
    schema = footer and reading.read_schema(footer, part)
    trips = (spark.read.schema(schema) if schema else spark.read).parquet(*files)
    rows = reading.query_frame(spark, sql, {"trips": trips}).collect()
    return float(rows[0][0])


def plaintext_job(catalog: Path, remote: str | None) -> int:
    """`taxi_hhi.py --plaintext-job CATALOG`: the cold plaintext run, in its own process."""
    from pyspark.sql import SparkSession
    builder = SparkSession.builder
    if remote:
        builder = builder.remote(remote)
    else:
        builder = builder.master("local[*]").appName("taxi_hhi plaintext")
        for k, v in SPARK_CONF.items():
            builder = builder.config(k, v)
    spark = builder.getOrCreate()
    if not remote:
        spark.sparkContext.setLogLevel("ERROR")
    try:
        sql = QUERY.read_text()
        reading = spark_reading(catalog, sql, Path.cwd())  # the run's folder
        hhi = plaintext_hhi(spark, catalog_files(catalog), sql, reading)
    finally:
        spark.stop()
    print(json.dumps({"hhi": hhi}))
    return 0


# --- processes ----------------------------------------------------------------------------------


class Processes:
    """Every process group this script starts, stopped by id at the end."""

    def __init__(self) -> None:
        self.groups: list[subprocess.Popen] = []

    def start(self, cmd: list[str], **kw) -> subprocess.Popen:
        proc = subprocess.Popen(cmd, start_new_session=True, **kw)
        self.groups.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, first: int = signal.SIGTERM,
             grace: float = 15.0) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, first)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        try:  # whatever is left in its group (a JVM), and a process that ignored the signal
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if proc in self.groups:
            self.groups.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.groups):
            self.stop(proc, grace=10.0)


def stray_pids(root: Path) -> list[int]:
    """Processes (not this one) whose command line or working folder lies under `root`: the
    party processes and local jobs of runs this script started (all of them work under it)."""
    found = []
    mark = str(root)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if mark in cmd or cwd.startswith(mark):
            found.append(int(entry.name))
    return found


def kill_strays(root: Path) -> int:
    pids = stray_pids(root)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)


class ConnectServers:
    """One Spark Connect server per name, each its own JVM (local[*]) on its own port."""

    def __init__(self, procs: Processes, names: list[str], logdir: Path) -> None:
        self.procs = procs
        self.names = names
        self.logdir = logdir
        self.ports: dict[str, int] = {}
        self.handles: dict[str, subprocess.Popen] = {}

    def url(self, name: str) -> str:
        return f"sc://127.0.0.1:{self.ports[name]}"

    def start(self, timeout: float = 600.0) -> float:
        t0 = time.perf_counter()
        home = spark_home()
        env = party_environment(SPARK_HOME=str(home), PYSPARK_PYTHON=sys.executable)
        self.logdir.mkdir(parents=True, exist_ok=True)
        for name in self.names:
            port = free_port()
            self.ports[name] = port
            conf = dict(SPARK_CONF, **{"spark.connect.grpc.binding.port": str(port),
                                       "spark.connect.grpc.binding.address": "127.0.0.1"})
            cmd = [str(home / "bin" / "spark-submit"), "--master", "local[*]",
                   "--name", f"taxi_hhi {name}", "--class", CONNECT_CLASS]
            for k, v in conf.items():
                cmd += ["--conf", f"{k}={v}"]
            out = open(self.logdir / f"connect-{name}.log", "w")
            self.handles[name] = self.procs.start(cmd, stdout=out, stderr=subprocess.STDOUT,
                                                  stdin=subprocess.DEVNULL, env=env,
                                                  cwd=self.logdir)
            out.close()
        waiting = set(self.names)
        while waiting:
            for name in list(waiting):
                proc = self.handles[name]
                if proc.poll() is not None:
                    tail = (self.logdir / f"connect-{name}.log").read_text().splitlines()[-3:]
                    raise BenchError(f"the Spark Connect server of {name} exited "
                                     f"({proc.returncode}): {' | '.join(tail)}")
                try:
                    socket.create_connection(("127.0.0.1", self.ports[name]), timeout=1).close()
                    waiting.discard(name)
                except OSError:
                    pass
            if time.perf_counter() - t0 > timeout:
                raise BenchError(f"Spark Connect servers not up after {timeout:g} s: "
                                 f"{', '.join(sorted(waiting))}")
            time.sleep(0.5)
        return time.perf_counter() - t0

    def stop(self) -> None:
        for proc in list(self.handles.values()):
            self.procs.stop(proc, grace=20.0)
        self.handles.clear()


class PartyAgents:
    """One `sqlmpc agent` per compute party of the query, each its own process (and process
    group), serving one catalog; started before timing like the Spark Connect servers."""

    def __init__(self, procs: Processes, logdir: Path) -> None:
        self.procs = procs
        self.logdir = logdir
        self.handles: dict[str, subprocess.Popen] = {}
        self.addresses: dict[str, str] = {}

    def start(self, catalog: Path, sql: str, timeout: float = 300.0) -> float:
        import sqlmpc
        from sqlmpc.runtime.agent import wait_ready
        t0 = time.perf_counter()
        self.stop()
        names = sqlmpc.compile_sql(sql, catalog).compute_parties
        self.logdir.mkdir(parents=True, exist_ok=True)
        for name in names:
            addr = f"127.0.0.1:{free_port()}"
            out = open(self.logdir / f"agent-{name}.log", "a")
            self.handles[name] = self.procs.start(
                [sys.executable, "-m", "sqlmpc.runtime.cli", "agent", name, "--catalog",
                 str(catalog), "--listen", addr, "--workdir", str(self.logdir / name)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=party_environment(PYTHONUNBUFFERED="1"), cwd=self.logdir)
            out.close()
            self.addresses[name] = addr
        try:
            for name in names:
                wait_ready(self.addresses[name], timeout=timeout, proc=self.handles[name])
        except Exception as e:  # noqa: BLE001 -- one line, with the agent's last words
            log_file = self.logdir / f"agent-{name}.log"
            tail = log_file.read_text().splitlines()[-2:] if log_file.exists() else []
            raise BenchError(f"agent {name}: {e} {' | '.join(tail)}") from None
        return time.perf_counter() - t0

    def stop(self) -> None:
        from sqlmpc.runtime.agent import stop
        for name, proc in list(self.handles.items()):
            if proc.poll() is None:
                try:
                    stop(self.addresses[name], timeout=5)
                    proc.wait(timeout=20)
                except Exception:  # noqa: BLE001 -- then by signal, below
                    pass
            self.procs.stop(proc, grace=10.0)
        self.handles.clear()
        self.addresses.clear()


# --- one timed run of each mode -------------------------------------------------------------


class Runner:
    def __init__(self, procs: Processes, root: Path, sql: str) -> None:
        self.procs = procs
        self.root = root
        self.sql = sql
        self.count = 0
        self.plain_session = None
        self.readings: dict[Path, object] = {}
        self.agents: dict[str, str] | None = None  # warm phase: party -> agent address

    def _dir(self, label: str) -> Path:
        self.count += 1
        d = self.root / f"run{self.count:04d}-{label}"
        d.mkdir(parents=True)
        return d

    def _subprocess(self, cmd: list[str], cwd: Path, timeout: float) -> tuple[float, str, str]:
        t0 = time.perf_counter()
        proc = self.procs.start(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True,
                                env=party_environment(PYTHONUNBUFFERED="1"))
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # SIGINT: the CLI's launcher stops its party processes in its `finally`
            self.procs.stop(proc, first=signal.SIGINT, grace=20.0)
            raise TimeoutError(f"did not finish within {timeout:g} s") from None
        finally:
            if proc.poll() is not None and proc in self.procs.groups:
                self.procs.stop(proc, grace=1.0)  # nothing left running in its group
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            last = [ln for ln in err.splitlines() if ln.strip()][-1:] or ["no message"]
            raise BenchError(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}): {last[0]}")
        return elapsed, out, err

    def plaintext(self, phase: str, catalog: Path, server: str | None,
                  timeout: float) -> dict:
        if phase == "cold":
            d = self._dir("plaintext")
            sec, out, _ = self._subprocess([sys.executable, str(Path(__file__).resolve()),
                                            "--plaintext-job", str(catalog)], d, timeout)
            return {"seconds": sec, "hhi": json.loads(out.strip().splitlines()[-1])["hhi"]}
        files = catalog_files(catalog)
        if catalog not in self.readings:  # compiled before timing, as the agents' plans are
            self.readings[catalog] = spark_reading(catalog, self.sql, self._dir("plaintext"))
        t0 = time.perf_counter()
        hhi = plaintext_hhi(self._plain_session(server), files, self.sql,
                            self.readings[catalog])
        return {"seconds": time.perf_counter() - t0, "hhi": hhi}

    def _plain_session(self, server: str):
        if self.plain_session is None:
            from pyspark.sql import SparkSession
            self.plain_session = SparkSession.builder.remote(server).getOrCreate()
        return self.plain_session

    def close(self) -> None:
        if self.plain_session is not None:
            try:
                self.plain_session.stop()
            except Exception:  # noqa: BLE001 -- the server may be gone already
                pass
            self.plain_session = None

    def sqlmpc(self, phase: str, catalog: Path, all_secure: bool, timeout: float) -> dict:
        d = self._dir("all-secure" if all_secure else "sqlmpc")
        stats = d / "stats.json"
        if phase == "cold":
            result = d / "result.csv"
            cmd = [sys.executable, "-m", "sqlmpc.runtime.cli", "run", str(QUERY),
                   "--catalog", str(catalog), "--out", str(result), "--quiet",
                   "--stats", str(stats), "--workdir", str(d / "work"),
                   "--timeout", str(timeout)]
            if all_secure:
                cmd.append("--all-secure")
            try:
                sec, _, _ = self._subprocess(cmd, d, timeout + 30)
            except BenchError as e:
                if "longer than" in str(e):
                    raise TimeoutError(str(e)) from None
                raise
            hhi = hhi_of_csv(result)
        else:
            import sqlmpc
            t0 = time.perf_counter()
            try:
                df = sqlmpc.run_sql(self.sql, catalog, all_secure=all_secure, stats=stats,
                                    quiet=True, timeout=timeout, workdir=d / "work",
                                    agents=self.agents)
            except sqlmpc.SqlmpcError as e:
                if "longer than" in str(e):
                    raise TimeoutError(str(e)) from None
                raise BenchError(str(e)) from None
            sec = time.perf_counter() - t0
            hhi = float(df.iloc[0, 0])
        rec = {"seconds": sec, "hhi": hhi}
        rec.update(breakdown(stats, sec))
        shutil.rmtree(d / "work", ignore_errors=True)
        return rec


def breakdown(stats_path: Path, wall: float) -> dict:
    """Where an sqlmpc run's time went, from its --stats file (runtime/party.py timings)."""
    if not stats_path.exists():
        return {}
    doc = json.loads(stats_path.read_text())
    out = {"local": doc["seconds"].get("local"), "secure": doc["seconds"].get("secure"),
           "shared_rows": sum(doc.get("shared_rows", {}).values())}
    parties = doc.get("parties") or {}
    t = [p.get("t") for p in parties.values() if p.get("t")]
    if t:
        spawned = min(x.get("spawned", x["start"]) for x in t)
        local_done = max(x["local_done"] for x in t)
        end = max(x["end"] for x in t)
        # local: from spawning the first party process to the last party's local output
        # (process start-up and imports, Spark work); secure: from there to the revealed result
        # (sharing, MPyC start-up and connections, protocol, reveal); launcher: compiling,
        # writing the programs, spawning, reading the result: outside the parties' lifetimes
        out["local_span"] = local_done - spawned
        out["secure_span"] = end - local_done
        out["launcher"] = max(wall - (end - spawned), 0.0)
        out["startup"] = max(x["start"] - x.get("spawned", x["start"]) for x in t)
        out["parties"] = {name: {k: round(v, 3) for k, v in p.get("seconds", {}).items()}
                          for name, p in parties.items()}
    return out


# --- the experiment -----------------------------------------------------------------------------


def run_experiment(args) -> list[dict]:
    sql = QUERY.read_text()
    sizes = sorted(set(args.rows))
    secure_sizes = sorted(set(args.all_secure_rows))
    all_sizes = sorted(set(sizes) | set(secure_sizes))
    catalogs = {n: ensure_data(args.data, n, args.parties, args.layout, args.companies)
                for n in all_sizes}
    parties = data_parties(catalogs[all_sizes[0]])
    procs = Processes()
    try:
        if args.workdir:
            Path(args.workdir).mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix="taxi-hhi-", dir=args.workdir))
    except OSError as e:
        raise BenchError(f"cannot create a run folder in {args.workdir or 'the temp folder'}: "
                         f"{e.strerror or e}") from None
    runner = Runner(procs, root, sql)
    results: dict[tuple, list[dict]] = {}
    secure_ok = {"cold": math.inf, "warm": math.inf}  # all-secure skipped at sizes above this
    warm_files: list[Path] = []
    servers = None
    agents = PartyAgents(procs, root / "agents")

    def modes_for(n: int, phase: str) -> list[str]:
        ms = ["plaintext", "sqlmpc"]
        if (n in secure_sizes or args.all_secure_all) and n <= secure_ok[phase]:
            ms.append("all-secure")
        return ms

    def one(n: int, mode: str, phase: str, catalog: Path, plain_server: str | None) -> None:
        key = (n, mode, phase)
        try:
            if mode == "plaintext":
                rec = runner.plaintext(phase, catalog, plain_server, args.timeout)
            else:
                limit = args.all_secure_limit if mode == "all-secure" else args.timeout
                rec = runner.sqlmpc(phase, catalog, mode == "all-secure", limit)
        except TimeoutError:
            if mode != "all-secure":
                raise BenchError(f"{mode} ({phase}) at {n:,} rows took longer than "
                                 f"{args.timeout:g} s") from None
            log(f"all-secure ({phase}) at {n:,} rows: over {args.all_secure_limit:g} s; "
                f"skipping it at this size and above")
            secure_ok[phase] = min(secure_ok[phase], n - 1)
            results.pop(key, None)
            return
        rec["load"] = os.getloadavg()[0]  # this machine is shared: note how busy it was
        results.setdefault(key, []).append(rec)
        extra = ""
        if "secure_span" in rec:
            extra = (f" (local {rec['local_span']:.2f} s, secure {rec['secure_span']:.2f} s, "
                     f"launcher {rec['launcher']:.2f} s)")
        log(f"{phase:4} {mode:10} {n:>11,} rows: {rec['seconds']:8.2f} s  "
            f"HHI {rec['hhi']:.6f}{extra}")

    try:
        for phase in args.phases:
            plain_server = None
            cats = catalogs
            if phase == "warm":
                check_connect_client()
                servers = ConnectServers(procs, parties + ["plaintext"], root / "servers")
                log(f"starting {len(parties) + 1} Spark Connect servers "
                    f"({', '.join(parties)}, plaintext) ...")
                log(f"servers up in {servers.start():.1f} s")
                plain_server = servers.url("plaintext")
                masters = {p: servers.url(p) for p in parties}
                cats = {n: warm_catalog(c, masters, f"{os.getpid()}") for n, c in catalogs.items()}
                warm_files += list(cats.values())
                n0 = all_sizes[0]
                t0 = time.perf_counter()
                # JIT, class loading, first-query set-up (with agents: per size, below)
                for mode in ("plaintext",) if args.agents else ("plaintext", "sqlmpc"):
                    one(n0, mode, "warm-up", cats[n0], plain_server)
                for key in [k for k in results if k[2] == "warm-up"]:
                    del results[key]
                log(f"servers warmed up in {time.perf_counter() - t0:.1f} s")
            for n in all_sizes:
                if phase == "warm" and args.agents:
                    log(f"agents for {n:,} rows up in {agents.start(cats[n], sql):.1f} s")
                    runner.agents = dict(agents.addresses)
                    for _ in range(max(args.warmup, 1)):  # this size's files, fresh agents
                        for mode in ("plaintext", "sqlmpc"):
                            one(n, mode, "warm-up", cats[n], plain_server)
                    for key in [k for k in results if k[2] == "warm-up"]:
                        del results[key]
                for r in range(args.repeat):
                    ms = modes_for(n, phase)
                    k = r % len(ms)
                    for mode in ms[k:] + ms[:k]:  # rotate: drift hits every mode alike
                        if mode == "all-secure" and n > secure_ok[phase]:
                            continue
                        one(n, mode, phase, cats[n], plain_server)
            runner.agents = None
            agents.stop()
            if servers is not None:
                runner.close()
                servers.stop()
                servers = None
    finally:
        runner.close()
        runner.agents = None
        agents.stop()
        if servers is not None:
            servers.stop()
        procs.stop_all()
        left = kill_strays(root)
        if left:
            log(f"stopped {left} leftover process(es) of this benchmark")
        for f in warm_files:
            f.unlink(missing_ok=True)
        if not args.keep_workdir:
            shutil.rmtree(root, ignore_errors=True)
    return summarise(results, args)


def summarise(results: dict[tuple, list[dict]], args) -> list[dict]:
    records = []
    for (n, mode, phase), runs in sorted(results.items(),
                                         key=lambda kv: (PHASES.index(kv[0][2]), kv[0][0],
                                                         MODES.index(kv[0][1]))):
        secs = [r["seconds"] for r in runs]
        for r in runs[1:]:  # every run, not only the first, must give the same index
            if not math.isclose(r["hhi"], runs[0]["hhi"], rel_tol=HHI_RTOL, abs_tol=HHI_RTOL):
                raise BenchError(f"{mode} ({phase}) at {n:,} rows gave HHI {runs[0]['hhi']!r} "
                                 f"and {r['hhi']!r} in two runs")
        rec = {"rows": n, "mode": mode, "phase": phase, "seconds": statistics.median(secs),
               "hhi": runs[0]["hhi"], "runs": secs, "layout": args.layout,
               "parties": args.parties}
        if phase == "warm" and mode != "plaintext":
            rec["agents"] = bool(getattr(args, "agents", False))  # long-lived party agents
        for k in ("local_span", "secure_span", "launcher", "startup", "shared_rows", "load"):
            vals = [r[k] for r in runs if k in r]
            if vals:
                rec[k] = statistics.median(vals)
        if any("parties" in r for r in runs):
            rec["party_seconds"] = [r.get("parties") for r in runs]
        records.append(rec)
    return records


def check_agreement(records: list[dict]) -> None:
    by_rows: dict[int, list[dict]] = {}
    for r in records:
        by_rows.setdefault(r["rows"], []).append(r)
    problems = []
    for n, recs in by_rows.items():
        ref = [r for r in recs if r["mode"] == "plaintext"] or recs
        want = ref[0]["hhi"]
        for r in recs:
            if not math.isclose(r["hhi"], want, rel_tol=HHI_RTOL, abs_tol=HHI_RTOL):
                problems.append(f"{n:,} rows: {r['mode']} ({r['phase']}) HHI {r['hhi']!r} vs "
                                f"{ref[0]['mode']} {want!r}")
    if problems:
        raise BenchError("modes disagree on the HHI (tolerance " f"{HHI_RTOL:g} relative): "
                         + "; ".join(problems))


def table(records: list[dict]) -> str:
    plain = {(r["rows"], r["phase"]): r["seconds"] for r in records if r["mode"] == "plaintext"}
    head = f"{'rows':>12}  {'mode':<10}  {'phase':<5}  {'seconds':>9}  {'ratio':>7}  " \
           f"{'HHI':>14}  {'local':>7}  {'secure':>7}  {'launch':>7}"
    lines = [head, "-" * len(head)]
    for r in records:
        base = plain.get((r["rows"], r["phase"]))
        ratio = f"{r['seconds'] / base:7.3f}" if base else f"{'-':>7}"
        parts = [f"{r[k]:7.2f}" if k in r else f"{'':>7}"
                 for k in ("local_span", "secure_span", "launcher")]
        lines.append(f"{r['rows']:>12,}  {r['mode']:<10}  {r['phase']:<5}  {r['seconds']:9.2f}  "
                     f"{ratio}  {r['hhi']:14.6f}  " + "  ".join(parts))
    return "\n".join(lines)


def plot(records: list[dict], path: Path, title: str) -> str:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return (f"--plot {path}: matplotlib is not installed (pip install matplotlib); "
                f"no plot written")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"plaintext": "o", "sqlmpc": "s", "all-secure": "^"}
    for phase in PHASES:
        for mode in MODES:
            pts = sorted((r["rows"], r["seconds"]) for r in records
                         if r["mode"] == mode and r["phase"] == phase)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=styles[mode],
                        linestyle="-" if phase == "warm" else "--", label=f"{mode} ({phase})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("trip rows (all parties)")
    ax.set_ylabel("seconds (median)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"plot written to {path}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.taxi_hhi",
                                description="HHI of taxi trips: plaintext Spark vs sqlmpc vs "
                                "all-secure, cold and warm.")
    p.add_argument("--rows", type=parse_sizes, default=None,
                   help="comma-separated total row counts, e.g. 1000000,5000000 or 1m,5m")
    p.add_argument("--parties", type=int, default=3, help="data parties (2..5; default 3)")
    p.add_argument("--layout", choices=("company", "platform"), default="company")
    p.add_argument("--companies", type=int, default=5,
                   help="companies (VendorIDs) in the platform layout (default 5)")
    p.add_argument("--repeat", type=int, default=None, help="runs per measurement (default 3)")
    p.add_argument("--warmup", type=int, default=10,
                   help="warm phase: untimed runs of plaintext and sqlmpc per size before "
                   "timing, interleaved (default 10: the JVMs' JIT settles, as in a deployment "
                   "that has been up for a while)")
    p.add_argument("--all-secure-limit", type=float, default=120.0,
                   help="seconds an all-secure run may take (default 120)")
    p.add_argument("--all-secure-rows", type=parse_sizes, default=None,
                   help="small sizes at which all-secure is tried (default 1000,3000); all "
                   "modes run there too")
    p.add_argument("--all-secure-all", action="store_true",
                   help="also try all-secure at every --rows size (until one exceeds the limit)")
    p.add_argument("--no-all-secure", action="store_true", help="skip the all-secure mode")
    p.add_argument("--no-agents", dest="agents", action="store_false",
                   help="warm phase without party agents: a new process per party and query")
    p.add_argument("--phases", default=None,
                   help="cold, warm or cold,warm (default both; --quick: cold)")
    p.add_argument("--timeout", type=float, default=1800.0,
                   help="seconds a plaintext or sqlmpc run may take (default 1800)")
    p.add_argument("--json", type=Path, default=None, help="write the records here")
    p.add_argument("--plot", type=Path, default=None, help="write a PNG plot here")
    p.add_argument("--quick", action="store_true",
                   help="CI: 20,000 rows (all-secure at 200), one repeat, cold phase only "
                   "unless --phases says otherwise (under 2 minutes on a quiet 2-core machine)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help=f"where generated data is cached (default {DEFAULT_DATA})")
    p.add_argument("--workdir", type=Path, default=None,
                   help="parent of the temporary run folder (default the system temp)")
    p.add_argument("--keep-workdir", action="store_true", help="keep the run folder")
    p.add_argument("--plaintext-job", type=Path, default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.plaintext_job:
        return plaintext_job(args.plaintext_job, None)
    if args.quick:
        args.rows = args.rows or QUICK["rows"]
        args.all_secure_rows = args.all_secure_rows or QUICK["all_secure_rows"]
        args.repeat = args.repeat or QUICK["repeat"]
        args.phases = args.phases or QUICK["phases"]
    args.rows = args.rows or [1_000_000, 5_000_000]
    args.all_secure_rows = [] if args.no_all_secure else (args.all_secure_rows or [1000, 3000])
    args.repeat = args.repeat or 3
    args.phases = [p.strip() for p in (args.phases or "cold,warm").split(",") if p.strip()]
    bad = [p for p in args.phases if p not in PHASES]
    if bad or not args.phases:
        print(f"taxi_hhi: error: --phases takes cold and/or warm, got {bad or args.phases}",
              file=sys.stderr)
        return 2
    if not 2 <= args.parties <= 5 or args.repeat < 1:
        print("taxi_hhi: error: --parties must be 2..5 and --repeat at least 1", file=sys.stderr)
        return 2
    args.data = args.data.resolve()

    def interrupted(signum, frame):  # SIGTERM: stop like Ctrl-C, through the `finally`s
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    t0 = time.perf_counter()
    try:
        records = run_experiment(args)
        check_agreement(records)
    except BenchError as e:
        print(f"taxi_hhi: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("taxi_hhi: interrupted; every server and party process was stopped",
              file=sys.stderr)
        return 130
    print(f"\nHHI of {args.layout}-layout taxi trips, {args.parties} parties, "
          f"{os.cpu_count()} cores; medians of {args.repeat} run(s); ratio = seconds / "
          f"plaintext seconds (same rows, same phase); local/secure/launch = sqlmpc's time "
          f"up to the last party's local output / from there to the result / outside the "
          f"party processes")
    print(table(records))
    print(f"all modes agree on the HHI to {HHI_RTOL:g} (relative); total "
          f"{time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(records, indent=2) + "\n")
        print(f"records written to {args.json}")
    if args.plot:
        print(plot(records, args.plot, f"taxi HHI, {args.layout} layout, {args.parties} parties"))
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):  # run as a file (the cold plaintext job): find sqlmpc anyway
        sys.path.insert(0, str(REPO))
    sys.exit(main())
