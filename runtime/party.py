"""One party as its own process: `python -m sqlmpc.runtime.party SPEC.json`, and `sqlmpc party`.

The launcher (`sqlmpc run`) starts one such process per party. SPEC.json (runtime/party_run.py
`PartySpec`) names the plan folder, this party, every compute party's address, the party's
local engine and its settings, and the folder where it may write. The process reads only its
own parts, sends only the shares the plan lists, and writes the result (result.csv) only if it
is a recipient, plus its statistics (stats.json). It parses no SQL. Progress lines on stderr
start with `sqlmpc-progress:`; a failure ends in one `sqlmpc-error:` line and exit status 1.

`sqlmpc party NAME --catalog C.toml QUERY.sql` runs one party of a real deployment on its own
machine (every party runs the same command on its machine), with plain progress lines and the
result on stdout (or --out) at a recipient.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from ..compiler.errors import PartyError, SqlmpcError
from .config import party_engine
from .mpc_session import CONNECT_TIMEOUT
from .party_run import PartyPlan, PartyRun, PartySpec
from .report import Reporter, StderrReporter, named
from .workspace import mpc_id, party_addresses, prepare, read_result, run_folder, write_result


def run_process(spec: PartySpec, reporter: Reporter) -> int:
    """Run one party to its end in this process; its files into spec.workdir; exit status."""
    try:
        plan = PartyPlan.from_folder(spec.plan_dir, spec.party)
    except SqlmpcError as e:
        reporter.failure(named(spec.party, str(e)))
        return 1
    outcome = PartyRun(spec, plan, reporter).execute()
    outcome.write(spec.workdir)
    if not outcome.ok:
        reporter.failure(outcome.error)
        return 1
    return 0


def main(spec_path: str) -> int:
    """`python -m sqlmpc.runtime.party SPEC.json` (the launcher's party processes)."""
    # SIGTERM (the launcher stopping the run) unwinds like an error, so that a running local
    # job is interrupted and its engine's processes stopped too
    signal.signal(signal.SIGTERM, _terminated)
    try:
        spec = PartySpec.from_json(Path(spec_path).read_text())
    except (OSError, PartyError) as e:
        StderrReporter("?").failure(f"cannot read the party specification {spec_path}: {e}")
        return 1
    return run_process(spec, StderrReporter(spec.party))


def _terminated(signum, frame):
    raise SystemExit(128 + signum)


def run_party_cli(plan, catalog, args) -> int:
    """`sqlmpc party NAME ...`: run one party of a deployment on this machine."""
    name = args.name
    if name not in plan.compute_parties and name not in plan.local_jobs:
        raise SqlmpcError(f"unknown party {name!r} (parties of this query: "
                          f"{', '.join(plan.compute_parties or list(plan.local_jobs))})")
    signal.signal(signal.SIGTERM, _terminated)
    with run_folder(args.workdir) as root:
        plan_dir = prepare(plan, root, catalog)
        defaults = {"spark_master": args.spark_master}
        engine, engine_options = party_engine(plan, catalog, name, defaults)
        spec = PartySpec(party=name, pid=mpc_id(plan, name),
                         addresses=party_addresses(plan, catalog, base_port=args.base_port),
                         plan_dir=plan_dir, workdir=root / name, engine=engine,
                         engine_options=engine_options, ssl=args.ssl,
                         connect_timeout=CONNECT_TIMEOUT)
        reporter = StderrReporter(name, progress_prefix=None if args.quiet else "sqlmpc:",
                                  error_prefix="sqlmpc: error:")
        code = run_process(spec, reporter)
        result = root / name / "result.csv"
        if code == 0 and result.exists():
            if args.out:
                write_result(read_result(result, plan), args.out)
            else:
                sys.stdout.write(result.read_text())
        return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
