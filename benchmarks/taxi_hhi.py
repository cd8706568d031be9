"""The taxi market-concentration experiment: HHI over companies' revenue, sqlmpc vs plaintext.

    python -m benchmarks.taxi_hhi --rows 1000000,5000000 [--engine spark|duckdb] [--parties 3]
        [--layout company] [--repeat 3] [--all-secure-limit 120] [--all-secure-rows 1000,3000]
        [--phases cold,warm] [--isolated] [--rtt MS] [--wan MS] [--json FILE] [--plot FILE.png]
        [--quick]

For every size in --rows (plus the small --all-secure-rows sizes) the script generates trips
with the NYC TLC yellow-trip schema (sqlmpc.datasets.taxi, cached under --data) and computes the
Herfindahl-Hirschman index of examples/taxi/query.sql three ways, all on the same --engine
(default spark):

  plaintext   the insecure computation: the very same SQL text over the union of all parties'
              Parquet files, as ONE Spark job or in ONE embedded DuckDB connection.
  sqlmpc      `sqlmpc run`: every party its own OS process running its generated local job
              over its own file; one row per company and party is secret-shared into MPyC,
              which combines the revenues, computes the shares and the sum of their squares.
  all-secure  `sqlmpc run --all-secure`: every trip row is secret-shared and the filter, the
              group-by and the arithmetic run in MPC. Only for the sizes where it finishes
              within --all-secure-limit seconds (after the first size that does not, the larger
              ones are skipped).

Each is timed in two phases:

  cold  end to end from nothing: a fresh process (`python -m sqlmpc.runtime.cli run ...`, or
        `python -m benchmarks.taxi.plaintext`) that starts its engine (Spark local[*], or
        DuckDB) and stops it.
  warm  every party's engine is already up: on Spark one Spark Connect server per party (and
        one for the plaintext baseline), started here from the pyspark package; on DuckDB the
        plaintext connection stays open; and every party's sqlmpc agent runs (`sqlmpc agent
        NAME`: the party's long-lived process, its imports done and its engine open), as each
        organisation would run them. The time runs from submitting the query
        (`sqlmpc.run_sql(..., agents=...)`: compile, write the plan, ask the agents) to having
        the result; every party is still its own OS process. Agents serve one catalog, so they
        are started (untimed) for each size; --warmup (default 10) untimed runs of plaintext
        and sqlmpc per size, interleaved, let every JVM's JIT settle first (after 3 runs
        sqlmpc's three JVMs were still compiling: its runs got faster for about 10 more).
        --no-agents: a new process per party and query. The agents run through
        benchmarks.taxi.probe, which counts each party's MPyC communication rounds (a send
        after a receipt starts one) and times its local job.
  isolated  (--isolated, warm with agents) one machine per party, simulated: the same sqlmpc
        run, but the parties' local jobs run one at a time, each with the machine to itself
        and its engine warm; the secure part runs with all parties at once. Its seconds are
        launcher + the slowest party's local part (alone) + the secure part
        (benchmarks/taxi/model.py); `measured` keeps the serialised run's own wall time.

--rtt MS adds, for every warm run with agents, MS per measured round of the secure part plus
one for the client's request: a WAN between the organisations (bandwidth, connection set-up
and TLS are left out; the output says so).

  wan   (--wan MS, warm with agents) the isolated run over a simulated WAN: every MPyC message
        reaches its party MS/2 milliseconds after it arrived (benchmarks.taxi.probe), so the
        protocol's own critical path sets the secure part's time, measured; seconds = the
        isolated estimate with that secure part + MS for the client's request and answer.

Reported numbers are medians of --repeat runs; within a repeat the modes run one after another
in a rotating order, so machine drift hits all of them alike. All modes must agree on the HHI
to HHI_RTOL (relative; sqlmpc computes in fixed point with 32 fractional bits, the engines in
doubles), else the script fails. Every server and process it started is stopped at the end
(also on errors and Ctrl-C). The parts live in benchmarks/taxi/.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from textwrap import fill as wrap

from benchmarks.taxi.common import DEFAULT_DATA, ENGINES, HHI_RTOL, PHASES, QUERY, BenchError, log
from benchmarks.taxi.data import data_parties, ensure_data, parse_sizes, warm_catalog
from benchmarks.taxi.model import ISOLATED_NOTE, RTT_NOTE, WAN_NOTE
from benchmarks.taxi.processes import Processes, kill_strays
from benchmarks.taxi.report import check_agreement, plot, require_matplotlib, summarise, table
from benchmarks.taxi.runs import Runner
from benchmarks.taxi.servers import ConnectServers, PartyAgents, check_spark_client

QUICK = {"rows": [20_000], "all_secure_rows": [200], "repeat": 1, "phases": "cold"}


class Experiment:
    """Every run of one invocation: the sizes x phases x modes, with the servers, agents and
    processes they need, and the raw results {(rows, mode, phase): [run records]}."""

    def __init__(self, args, procs: Processes, root: Path) -> None:
        self.args = args
        self.procs = procs
        self.root = root
        self.sql = QUERY.read_text()
        sizes = set(args.rows)
        self.secure_sizes = set(args.all_secure_rows)
        self.sizes = sorted(sizes | self.secure_sizes)
        self.catalogs = {n: ensure_data(args.data, n, args.parties, args.layout, args.companies)
                         for n in self.sizes}
        self.parties = data_parties(self.catalogs[self.sizes[0]])
        self.runner = Runner(procs, root, self.sql, args.engine)
        self.agents = PartyAgents(procs, root / "agents", args.engine)
        self.servers: ConnectServers | None = None
        self.warm_files: list[Path] = []
        self.results: dict[tuple, list[dict]] = {}
        self.secure_ok = {"cold": math.inf, "warm": math.inf}  # all-secure skipped above this

    def run(self) -> None:
        for phase in self.args.phases:
            catalogs, plain_server = self.start_phase(phase)
            for n in self.sizes:
                self.run_size(n, phase, catalogs[n], plain_server)
            self.stop_phase()

    def start_phase(self, phase: str) -> tuple[dict[int, Path], str | None]:
        """The catalogs of this phase and the plaintext Spark Connect server (warm, Spark);
        in the warm phase, the servers are up and warmed up when this returns."""
        if phase == "cold":
            return self.catalogs, None
        catalogs, plain_server = self.catalogs, None
        if self.args.engine == "spark":
            self.servers = ConnectServers(self.procs, self.parties + ["plaintext"],
                                          self.root / "servers")
            log(f"starting {len(self.parties) + 1} Spark Connect servers "
                f"({', '.join(self.parties)}, plaintext) ...")
            log(f"servers up in {self.servers.start():.1f} s")
            plain_server = self.servers.url("plaintext")
            masters = {p: self.servers.url(p) for p in self.parties}
            catalogs = {n: warm_catalog(c, masters, f"{os.getpid()}")
                        for n, c in self.catalogs.items()}
            self.warm_files += list(catalogs.values())
        n0 = self.sizes[0]
        t0 = time.perf_counter()
        # JIT, class loading, first-query set-up (with agents: per size, in run_size)
        for mode in ("plaintext",) if self.args.agents else ("plaintext", "sqlmpc"):
            self.one(n0, mode, "warm-up", catalogs[n0], plain_server)
        self.drop_warm_up()
        log(f"{self.args.engine} warmed up in {time.perf_counter() - t0:.1f} s")
        return catalogs, plain_server

    def run_size(self, n: int, phase: str, catalog: Path, plain_server: str | None) -> None:
        """--repeat rounds at `n` rows, the modes in a rotating order (drift hits every mode
        alike); in the warm phase with agents, fresh agents and --warmup untimed runs first."""
        if phase == "warm" and self.args.agents:
            log(f"agents for {n:,} rows up in {self.agents.start(catalog, self.sql):.1f} s")
            self.runner.agents = dict(self.agents.addresses)
            self.runner.agent_catalog = self.agents.catalog
            self.runner.probe_dir = self.agents.probe_dir
            for _ in range(max(self.args.warmup, 1)):  # this size's files, fresh agents
                for mode in ("plaintext", "sqlmpc"):
                    self.one(n, mode, "warm-up", catalog, plain_server)
            self.drop_warm_up()
        for r in range(self.args.repeat):
            modes = self.modes_for(n, phase)
            k = r % len(modes)
            for mode in modes[k:] + modes[:k]:
                if mode == "all-secure" and n > self.secure_ok[phase]:
                    continue
                self.one(n, mode, phase, catalog, plain_server)

    def modes_for(self, n: int, phase: str) -> list[str]:
        modes = ["plaintext", "sqlmpc"]
        if phase == "warm" and self.args.isolated:
            modes.append("isolated")
        if phase == "warm" and self.args.wan is not None:
            modes.append("wan")
        if (n in self.secure_sizes or self.args.all_secure_all) and n <= self.secure_ok[phase]:
            modes.append("all-secure")
        return modes

    def one(self, n: int, mode: str, phase: str, catalog: Path, plain_server: str | None) -> None:
        """One timed run, recorded under (n, mode, phase); an all-secure run over its limit
        is dropped and marks this size and larger ones as too big for all-secure."""
        args = self.args
        try:
            if mode == "plaintext":
                rec = self.runner.plaintext(phase, catalog, plain_server, args.timeout)
            else:
                limit = args.all_secure_limit if mode == "all-secure" else args.timeout
                rec = self.runner.sqlmpc(phase, catalog, mode == "all-secure", limit,
                                         isolated=mode in ("isolated", "wan"),
                                         wan_ms=args.wan if mode == "wan" else 0.0)
        except TimeoutError:
            if mode != "all-secure":
                raise BenchError(f"{mode} ({phase}) at {n:,} rows took longer than "
                                 f"{args.timeout:g} s") from None
            log(f"all-secure ({phase}) at {n:,} rows: over {args.all_secure_limit:g} s; "
                f"skipping it at this size and above")
            self.secure_ok[phase] = min(self.secure_ok[phase], n - 1)
            self.results.pop((n, mode, phase), None)
            return
        rec["load"] = os.getloadavg()[0]  # this machine is shared: note how busy it was
        self.results.setdefault((n, mode, phase), []).append(rec)
        extra = ""
        if "secure_span" in rec:
            extra = (f" (local {rec['local_span']:.2f} s, secure {rec['secure_span']:.2f} s, "
                     f"launcher {rec['launcher']:.2f} s"
                     + (f", {rec['rounds']} rounds" if "rounds" in rec else "")
                     + (f", measured {rec['measured']:.2f} s" if "measured" in rec else "")
                     + ")")
        log(f"{phase:4} {mode:10} {n:>11,} rows: {rec['seconds']:8.2f} s  "
            f"HHI {rec['hhi']:.6f}{extra}")

    def drop_warm_up(self) -> None:
        for key in [k for k in self.results if k[2] == "warm-up"]:
            del self.results[key]

    def stop_phase(self) -> None:
        """Agents, the plaintext session and the Spark Connect servers of the phase."""
        self.runner.agents = None
        self.agents.stop()
        self.runner.close()
        if self.servers is not None:
            self.servers.stop()
            self.servers = None

    def close(self) -> None:
        """Stop everything this experiment started (also after errors and Ctrl-C)."""
        self.stop_phase()
        for f in self.warm_files:
            f.unlink(missing_ok=True)


def run_experiment(args) -> list[dict]:
    """Run every measurement of `args` and return the summarised records."""
    procs = Processes()
    try:
        if args.workdir:
            Path(args.workdir).mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix="taxi-hhi-", dir=args.workdir))
    except OSError as e:
        raise BenchError(f"cannot create a run folder in {args.workdir or 'the temp folder'}: "
                         f"{e.strerror or e}") from None
    experiment = None
    try:
        experiment = Experiment(args, procs, root)
        experiment.run()
    finally:
        if experiment is not None:
            experiment.close()
        procs.stop_all()
        left = kill_strays(root)
        if left:
            log(f"stopped {left} leftover process(es) of this benchmark")
        if not args.keep_workdir:
            shutil.rmtree(root, ignore_errors=True)
    return summarise(experiment.results, args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.taxi_hhi",
                                description="HHI of taxi trips: plaintext vs sqlmpc vs "
                                "all-secure, cold and warm, on Spark or DuckDB.")
    p.add_argument("--rows", type=parse_sizes, default=None,
                   help="comma-separated total row counts, e.g. 1000000,5000000 or 1m,5m")
    p.add_argument("--engine", choices=ENGINES, default="spark",
                   help="the local engine of every party and of the plaintext baseline "
                   "(default spark)")
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
    p.add_argument("--isolated", action="store_true",
                   help="warm phase: also estimate one machine per party (mode isolated): "
                   "the parties' local jobs run one at a time, each with the machine to "
                   "itself; seconds = launcher + slowest party's local part + the secure part "
                   "run with all parties at once")
    p.add_argument("--rtt", type=float, default=None, metavar="MS",
                   help="also show sqlmpc's time with MS milliseconds of network round trip "
                   "per measured MPC communication round (+1 for the client's request): a "
                   "WAN between the organisations (warm phase with agents)")
    p.add_argument("--wan", type=float, default=None, metavar="MS",
                   help="warm phase: also run the isolated estimate over a simulated WAN (mode "
                   "wan): every MPyC message reaches its party MS/2 ms late, so the secure "
                   "part's time is measured, not modelled; + MS for the client's request")
    p.add_argument("--phases", default=None,
                   help="cold, warm or cold,warm (default both; --quick: cold)")
    p.add_argument("--timeout", type=float, default=1800.0,
                   help="seconds a plaintext or sqlmpc run may take (default 1800)")
    p.add_argument("--json", type=Path, default=None, help="write the records here")
    p.add_argument("--plot", type=Path, default=None,
                   help="write a PNG plot here (needs matplotlib: pip install sqlmpc[plot])")
    p.add_argument("--quick", action="store_true",
                   help="CI: 20,000 rows (all-secure at 200), one repeat, cold phase only "
                   "unless --phases says otherwise (under 2 minutes on a quiet 2-core machine)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help=f"where generated data is cached (default {DEFAULT_DATA})")
    p.add_argument("--workdir", type=Path, default=None,
                   help="parent of the temporary run folder (default the system temp)")
    p.add_argument("--keep-workdir", action="store_true", help="keep the run folder")
    return p


def settle_args(args) -> str | None:
    """Fill in the defaults (and --quick's); the one line saying what is wrong, or None."""
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
        return f"--phases takes cold and/or warm, got {bad or args.phases}"
    if not 2 <= args.parties <= 5 or args.repeat < 1:
        return "--parties must be 2..5 and --repeat at least 1"
    for flag, given in (("--isolated", args.isolated), ("--rtt", args.rtt is not None),
                        ("--wan", args.wan is not None)):
        if given and ("warm" not in args.phases or not args.agents):
            return f"{flag} needs the warm phase with party agents (--phases warm, no --no-agents)"
    for flag, ms in (("--rtt", args.rtt), ("--wan", args.wan)):
        if ms is not None and not 0 <= ms <= 10_000:
            return f"{flag} takes milliseconds between 0 and 10000, got {ms:g}"
    args.data = args.data.resolve()
    return None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    problem = settle_args(args)
    if problem is None and args.plot:
        problem = require_matplotlib()  # before the long run, not after it
    if problem:
        print(f"taxi_hhi: error: {problem}", file=sys.stderr)
        return 2

    def interrupted(signum, frame):  # SIGTERM: stop like Ctrl-C, through the `finally`s
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    t0 = time.perf_counter()
    try:
        if args.engine == "spark":
            check_spark_client(connect="warm" in args.phases)
        records = run_experiment(args)
        check_agreement(records)
    except BenchError as e:
        print(f"taxi_hhi: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("taxi_hhi: interrupted; every server and party process was stopped",
              file=sys.stderr)
        return 130
    print(f"\nHHI of {args.layout}-layout taxi trips on {args.engine}, {args.parties} parties, "
          f"{os.cpu_count()} cores; medians of {args.repeat} run(s); ratio = seconds / "
          f"plaintext seconds (same rows, same phase); local/secure/launch = sqlmpc's time "
          f"up to the last party's local output / from there to the result / outside the "
          f"party processes; cpu = the most processor seconds any one party's secure part "
          f"took (its waits for peers and for a core left out: what it needs with a machine "
          f"of its own)")
    print(table(records, args.rtt))
    if args.isolated:
        print(wrap(ISOLATED_NOTE))
    if args.rtt is not None:
        print(wrap(RTT_NOTE))
    if args.wan is not None:
        print(wrap(WAN_NOTE.format(ms=args.wan)))
    print(f"all modes agree on the HHI to {HHI_RTOL:g} (relative); total "
          f"{time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(records, indent=2) + "\n")
        print(f"records written to {args.json}")
    if args.plot:
        print(plot(records, args.plot, f"taxi HHI on {args.engine}, {args.layout} layout, "
                                       f"{args.parties} parties"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
