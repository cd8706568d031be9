"""One party as its own process: `python -m sqlmpc.runtime.party SPEC.json`, and `sqlmpc party`.

The launcher (`sqlmpc run`) starts one such process per party. SPEC.json (runtime/party_run.py
`PartySpec`) names the plan folder, this party, every compute party's address, the party's
local engine and its settings, and the folder where it may write. The process reads only its
own parts, sends only the shares the plan lists, and writes the result (result.csv) only if it
is a recipient, plus its statistics (stats.json). It parses no SQL. Progress lines on stderr
start with `sqlmpc-progress:`; a failure ends in one `sqlmpc-error:` line and exit status 1.

`sqlmpc party NAME --catalog C.toml QUERY.sql` runs one party of a real deployment on its own
machine (every party runs the same command on its machine), with plain progress lines and the
result on stdout (or --out) at a recipient. Its MPyC channels are mutual TLS with the party's
identity (--identity DIR, else the catalog's [deployment] identity; --ssl insists on one).
Without an identity the parties talk in plaintext only when every party is on this machine
(loopback), or with --insecure-plaintext, which prints a warning line.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

from ..compiler.errors import PartyError, SqlmpcError
from .config import party_engine
from .deployment import plan_digest
from .mpc_session import CONNECT_TIMEOUT
from .party_run import PartyPlan, PartyRun, PartySpec
from .report import Reporter, StderrReporter, named
from .workspace import (
    LOCAL_HOSTS,
    mpc_id,
    parse_address,
    party_addresses,
    prepare,
    private_folder,
    read_result,
    run_folder,
    scrub_party_folder,
    write_result,
)

#: the line `sqlmpc party --insecure-plaintext` prints
PLAINTEXT_WARNING = ("sqlmpc: warning: MPyC between the parties runs WITHOUT TLS "
                     "(--insecure-plaintext): anyone on the network can read and join it")


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


def party_identity(catalog, args: Any, addresses: list[str]) -> str | None:
    """The party's identity folder for MPyC over mutual TLS (None: plaintext).

    --identity wins over the catalog's [deployment] identity; --ssl without either is an
    error. Without an identity, plaintext only between parties all on this machine, or with
    --insecure-plaintext (a warning line)."""
    given = getattr(args, "identity", None)
    deployment = getattr(catalog, "deployment", None)
    folder = given or getattr(deployment, "identity", None)
    if folder is not None:
        return str(Path(folder).resolve())
    if getattr(args, "ssl", False):
        raise SqlmpcError("--ssl needs this party's identity: give --identity DIR or "
                          "[deployment] identity in the catalog (`sqlmpc keys` makes test ones)")
    if getattr(args, "insecure_plaintext", False):
        print(PLAINTEXT_WARNING, file=sys.stderr, flush=True)
        return None
    if all(parse_address(a)[0] in LOCAL_HOSTS for a in addresses):
        return None  # every party on this machine: nothing crosses a network
    raise SqlmpcError("no identity for MPyC over TLS between machines: give --identity DIR or "
                      "[deployment] identity in the catalog; to run without TLS, pass "
                      "--insecure-plaintext")


def run_party_cli(plan, catalog, args) -> int:
    """`sqlmpc party NAME ...`: run one party of a deployment on this machine."""
    name = args.name
    if name not in plan.compute_parties and name not in plan.local_jobs:
        raise SqlmpcError(f"unknown party {name!r} (parties of this query: "
                          f"{', '.join(plan.compute_parties or list(plan.local_jobs))})")
    signal.signal(signal.SIGTERM, _terminated)
    with run_folder(args.workdir) as root:
        addresses = party_addresses(plan, catalog, base_port=args.base_port)
        identity_dir = party_identity(catalog, args, addresses) if plan.needs_mpc else None
        plan_dir = prepare(plan, root, catalog)
        defaults = {"spark_master": args.spark_master}
        engine, engine_options = party_engine(plan, catalog, name, defaults)
        spec = PartySpec(party=name, pid=mpc_id(plan, name), addresses=addresses,
                         plan_dir=plan_dir, workdir=private_folder(root / name), engine=engine,
                         engine_options=engine_options, identity_dir=identity_dir,
                         connect_timeout=CONNECT_TIMEOUT,
                         # from the plan compiled from this party's own catalog: its peers
                         # run with it only when theirs is the same
                         plan_digest=plan_digest(plan))
        reporter = StderrReporter(name, progress_prefix=None if args.quiet else "sqlmpc:",
                                  error_prefix="sqlmpc: error:")
        try:
            code = run_process(spec, reporter)
            result = root / name / "result.csv"
            if code == 0 and result.exists():
                if args.out:
                    write_result(read_result(result, plan), args.out)
                else:
                    sys.stdout.write(result.read_text())
            return code
        finally:
            scrub_party_folder(root / name)  # the party's plaintext intermediates end here


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
