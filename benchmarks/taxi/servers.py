"""Long-lived processes of the warm phase, started before timing: one Spark Connect server per
party (and one for the plaintext baseline) and one `sqlmpc agent` per compute party."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from sqlmpc.runtime.engines.spark import party_environment

from .common import REPO, BenchError, free_port
from .probe import PROBE_ENV
from .processes import Processes

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


def spark_home() -> Path:
    import pyspark
    return Path(pyspark.__file__).resolve().parent


def check_spark_client(connect: bool) -> None:
    """pyspark (and for Spark Connect, its client packages) before anything starts."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise BenchError("--engine spark needs pyspark: pip install sqlmpc[spark] (or use "
                         "--engine duckdb)") from None
    if not connect:
        return
    try:
        from pyspark.sql.connect.utils import check_dependencies
        try:
            check_dependencies()
        except TypeError:  # pyspark 3.5 takes the module name
            check_dependencies("pyspark.sql.connect.session")
    except ImportError as e:
        raise BenchError(f"the warm phase on Spark needs Spark Connect's client packages: "
                         f"pip install sqlmpc[connect] (or use --phases cold): {e}") from None


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
        """Start every server and wait until each accepts connections; the seconds it took."""
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
            with open(self.logdir / f"connect-{name}.log", "w") as out:
                self.handles[name] = self.procs.start(cmd, stdout=out, stderr=subprocess.STDOUT,
                                                      stdin=subprocess.DEVNULL, env=env,
                                                      cwd=self.logdir)
        self._wait(set(self.names), t0, timeout)
        return time.perf_counter() - t0

    def _wait(self, waiting: set[str], t0: float, timeout: float) -> None:
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

    def stop(self) -> None:
        for proc in list(self.handles.values()):
            self.procs.stop(proc, grace=20.0)
        self.handles.clear()


class PartyAgents:
    """One `sqlmpc agent` per compute party of the query, each its own process (and process
    group) on `engine`, serving one catalog; started before timing like the Spark Connect
    servers. Each runs through benchmarks.taxi.probe: it reports its MPyC rounds and local
    job times into `probe_dir`, and runs its local job alone when the benchmark asks."""

    def __init__(self, procs: Processes, logdir: Path, engine: str) -> None:
        self.procs = procs
        self.logdir = logdir
        self.engine = engine
        self.handles: dict[str, subprocess.Popen] = {}
        self.addresses: dict[str, str] = {}
        self.catalog: Path | None = None  # the catalog the agents serve (with MPyC ports)
        self.probe_dir = logdir / "probe"

    def start(self, catalog: Path, sql: str, timeout: float = 300.0) -> float:
        """(Re)start one agent per compute party for `catalog`; the seconds until all serve."""
        import sqlmpc
        from sqlmpc.runtime.agent import wait_ready
        t0 = time.perf_counter()
        self.stop()
        names = sqlmpc.compile_sql(sql, catalog, engine=self.engine).compute_parties
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.catalog = with_mpc_ports(catalog)
        self.probe_dir.mkdir(parents=True, exist_ok=True)
        path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        env = party_environment(PYTHONUNBUFFERED="1", PYTHONPATH=path,
                                **{PROBE_ENV: str(self.probe_dir)})
        for name in names:
            addr = f"127.0.0.1:{free_port()}"
            with open(self.logdir / f"agent-{name}.log", "a") as out:
                self.handles[name] = self.procs.start(
                    [sys.executable, "-m", "benchmarks.taxi.probe", "agent", name, "--catalog",
                     str(self.catalog), "--listen", addr, "--engine", self.engine,
                     "--workdir", str(self.logdir / name), "--insecure-plaintext",
                     "--audit-log", str(self.logdir / f"agent-{name}.audit")],
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=env, cwd=self.logdir)
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
        for proc in self.handles.values():  # an agent stops on SIGTERM (no network stop)
            self.procs.stop(proc, grace=10.0)
        self.handles.clear()
        self.addresses.clear()


def with_mpc_ports(catalog: Path) -> Path:
    """A copy of `catalog` (next to it, so its relative parts resolve) in which every party has
    an MPyC address on 127.0.0.1: an agent takes its peers' addresses only from its own
    catalog. The benchmark's agents all run on this machine, in plaintext on loopback
    (--insecure-plaintext): it measures the protocol, not a deployment's TLS."""
    import re
    text = re.sub(r"^\[parties\.(\w+)\]\s*$",
                  lambda m: f'{m.group(0)}\nhost = "127.0.0.1"\nport = {free_port()}',
                  catalog.read_text(), flags=re.MULTILINE)
    out = catalog.with_name(f"{catalog.stem}-agents.toml")
    out.write_text(text)
    return out
