"""One timed run of each mode (plaintext, sqlmpc, all-secure), cold or warm, on one engine."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlmpc.runtime.engines.spark import party_environment

from .common import QUERY, REPO, BenchError
from .data import catalog_files, hhi_of_csv
from .model import isolated_estimate, rounds_of
from .plaintext import duckdb_hhi, spark_hhi, spark_inputs
from .probe import clear_probes, read_probes
from .processes import Processes


class Runner:
    """Times single runs; each gets its own folder under `root`. Keeps the warm plaintext
    session (a Spark Connect session or a DuckDB connection) open between runs."""

    def __init__(self, procs: Processes, root: Path, sql: str, engine: str) -> None:
        self.procs = procs
        self.root = root
        self.sql = sql
        self.engine = engine
        self.count = 0
        self.plain_session = None
        self.inputs: dict[Path, list[dict]] = {}  # the Spark reader's INPUTS per catalog
        self.agents: dict[str, str] | None = None  # warm phase: party -> agent address
        self.agent_catalog: Path | None = None  # the agents' catalog (with MPyC ports)
        self.probe_dir: Path | None = None  # where the agents report (benchmarks.taxi.probe)

    def _dir(self, label: str) -> Path:
        self.count += 1
        d = self.root / f"run{self.count:04d}-{label}"
        d.mkdir(parents=True)
        return d

    def _subprocess(self, cmd: list[str], cwd: Path, timeout: float,
                    env: dict[str, str] | None = None) -> tuple[float, str, str]:
        t0 = time.perf_counter()
        proc = self.procs.start(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True,
                                env=env or party_environment(PYTHONUNBUFFERED="1"))
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
        """Cold: its own process (benchmarks.taxi.plaintext). Warm: in this process, on the
        open session (Spark Connect server `server`, or one DuckDB connection)."""
        if phase == "cold":
            d = self._dir("plaintext")
            path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
            env = party_environment(PYTHONUNBUFFERED="1", PYTHONPATH=path)
            sec, out, _ = self._subprocess([sys.executable, "-m", "benchmarks.taxi.plaintext",
                                            str(catalog), "--engine", self.engine], d, timeout,
                                           env)
            return {"seconds": sec, "hhi": json.loads(out.strip().splitlines()[-1])["hhi"]}
        files = catalog_files(catalog)
        if self.engine == "duckdb":
            session = self._plain_session(None)
            t0 = time.perf_counter()
            hhi = duckdb_hhi(session, files, self.sql)
            return {"seconds": time.perf_counter() - t0, "hhi": hhi}
        if catalog not in self.inputs:  # compiled before timing, as the agents' plans are
            self.inputs[catalog] = spark_inputs(catalog, self.sql, self._dir("plaintext"))
        t0 = time.perf_counter()
        hhi = spark_hhi(self._plain_session(server), files, self.sql, self.inputs[catalog])
        return {"seconds": time.perf_counter() - t0, "hhi": hhi}

    def _plain_session(self, server: str | None):
        if self.plain_session is None:
            if self.engine == "duckdb":
                import duckdb
                self.plain_session = duckdb.connect()
            else:
                from pyspark.sql import SparkSession
                self.plain_session = SparkSession.builder.remote(server).getOrCreate()
        return self.plain_session

    def close(self) -> None:
        """Close the warm plaintext session (before its server stops)."""
        if self.plain_session is not None:
            try:
                if self.engine == "duckdb":
                    self.plain_session.close()
                else:
                    self.plain_session.stop()
            except Exception:  # noqa: BLE001, S110 -- the server may be gone already
                pass
            self.plain_session = None

    def sqlmpc(self, phase: str, catalog: Path, all_secure: bool, timeout: float,
               isolated: bool = False, wan_ms: float = 0.0) -> dict:
        """Cold: `sqlmpc run` in its own process. Warm: `sqlmpc.run_sql` through the agents,
        which report their rounds (and with `isolated`, run their local jobs one at a time:
        the record's seconds are then the one-machine-per-party estimate, benchmarks.taxi.model,
        and `measured` the run's own wall time). With `wan_ms` (and `isolated`) the agents
        delay every MPyC message by half that round trip (benchmarks.taxi.probe), and the
        estimate adds one round trip for the client's request and answer."""
        if wan_ms and not isolated:
            raise BenchError("a WAN is simulated for the isolated estimate only")
        d = self._dir("wan" if wan_ms else "isolated" if isolated else
                      "all-secure" if all_secure else "sqlmpc")
        stats = d / "stats.json"
        probe_dir = self.probe_dir if phase == "warm" and self.agents else None
        if probe_dir is not None:
            clear_probes(probe_dir, serialize=isolated, latency_ms=wan_ms / 2)
        elif isolated:
            raise BenchError("--isolated needs the warm phase with party agents")
        if phase == "cold":
            sec, hhi = self._sqlmpc_cold(d, stats, catalog, all_secure, timeout)
        else:
            sec, hhi = self._sqlmpc_warm(d, stats, catalog, all_secure, timeout)
        rec = {"seconds": sec, "hhi": hhi}
        rec.update(breakdown(stats, sec))
        if probe_dir is not None:
            probes = read_probes(probe_dir)
            rec.update(rounds_of(probes))
            if isolated:
                if "secure_span" not in rec:
                    raise BenchError("--isolated: the run's --stats has no party timings")
                est = isolated_estimate(json.loads(stats.read_text()).get("parties") or {},
                                        probes, rec["launcher"], rec["secure_span"])
                rec.update(measured=sec, seconds=est["seconds"] + wan_ms / 1000.0,
                           local_span=est["local_isolated"], local_jobs=est["local_jobs"])
        shutil.rmtree(d / "work", ignore_errors=True)
        return rec

    def _sqlmpc_cold(self, d: Path, stats: Path, catalog: Path, all_secure: bool,
                     timeout: float) -> tuple[float, float]:
        result = d / "result.csv"
        cmd = [sys.executable, "-m", "sqlmpc.runtime.cli", "run", str(QUERY),
               "--catalog", str(catalog), "--engine", self.engine, "--out", str(result),
               "--quiet", "--stats", str(stats), "--workdir", str(d / "work"),
               "--timeout", str(timeout)]
        if all_secure:
            cmd.append("--all-secure")
        try:
            sec, _, _ = self._subprocess(cmd, d, timeout + 30)
        except BenchError as e:
            if "longer than" in str(e):
                raise TimeoutError(str(e)) from None
            raise
        return sec, hhi_of_csv(result)

    def _sqlmpc_warm(self, d: Path, stats: Path, catalog: Path, all_secure: bool,
                     timeout: float) -> tuple[float, float]:
        import sqlmpc
        t0 = time.perf_counter()
        try:
            df = sqlmpc.run_sql(self.sql, self.agent_catalog or catalog, all_secure=all_secure,
                                stats=stats, quiet=True, timeout=timeout, workdir=d / "work",
                                agents=self.agents, engine=self.engine,
                                insecure_plaintext=True)
        except sqlmpc.SqlmpcError as e:
            if "longer than" in str(e):
                raise TimeoutError(str(e)) from None
            raise BenchError(str(e)) from None
        return time.perf_counter() - t0, float(df.iloc[0, 0])


def breakdown(stats_path: Path, wall: float) -> dict:
    """Where an sqlmpc run's time went, from its --stats file (the parties' timings)."""
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
        # (process start-up and imports, the engine's work); secure: from there to the revealed
        # result (sharing, MPyC start-up and connections, protocol, reveal); launcher:
        # compiling, writing the programs, spawning, reading the result: outside the parties
        out["local_span"] = local_done - spawned
        out["secure_span"] = end - local_done
        out["launcher"] = max(wall - (end - spawned), 0.0)
        out["startup"] = max(x["start"] - x.get("spawned", x["start"]) for x in t)
        out["parties"] = {name: {k: round(v, 3) for k, v in p.get("seconds", {}).items()}
                          for name, p in parties.items()}
        # the most processor time one party's secure part took (its own thread, waits for
        # peers and for a core excluded): what the secure part needs with a machine per party
        cpu = [p["seconds"]["secure_cpu"] for p in parties.values()
               if "secure_cpu" in p.get("seconds", {})]
        if cpu:
            out["secure_cpu"] = max(cpu)
    return out
