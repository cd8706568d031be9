"""The `sqlmpc` command line: compile, explain, run, party (one party of a real deployment),
agent (one party's long-lived process) and keys (identities for a test deployment).

Every user error ends in one line on stderr (plus a caret line under the SQL for SQL errors)
and a non-zero exit status; a traceback is shown only with SQLMPC_DEBUG=1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..compiler.errors import SqlmpcError

EXIT_USER_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("query", help="file with one SQL query")
    p.add_argument("--catalog", required=True, help="catalog.toml naming parties and tables")
    p.add_argument("--dialect", default=None,
                   help="SQL dialect of the query (sqlglot name, e.g. postgres, spark, duckdb)")
    p.add_argument("--all-secure", action="store_true",
                   help="no push-down: every operator after the scans in MPC (the baseline)")
    p.add_argument("--disable", action="append", default=[], metavar="PASS",
                   help="switch off one optimising pass (repeatable)")
    p.add_argument("--pad-inputs", choices=("pow2",), default=None,
                   help="hide each party's shared row count: pad it with dummy rows to the next "
                        "power of two (reveals only ceil(log2 n)); a table's pad_rows wins")
    p.add_argument("--join-bound", type=int, default=None, metavar="ROWS",
                   help="secure many-to-many joins pad their output to ROWS rows and reveal only "
                        "whether their size fits (default: they reveal their size)")


def _engine_option(p: argparse.ArgumentParser, who: str) -> None:
    from ..backends import DEFAULT_ENGINE, LOCAL_ENGINES
    p.add_argument("--engine", choices=tuple(LOCAL_ENGINES), default=None,
                   help=f"local engine of {who} (default: the catalog's `engine` of each "
                        f"party, else {DEFAULT_ENGINE})")


def _run_options(p: argparse.ArgumentParser) -> None:
    _engine_option(p, "every party")
    p.add_argument("--spark-master", default=None,
                   help="Spark master URL for every party on Spark (spark://HOST:PORT, "
                        "sc://HOST:PORT or local[N]); a party's spark_master in the catalog wins")
    p.add_argument("--ssl", action="store_true", help="MPyC channels with mutual TLS")
    p.add_argument("--stats", type=Path, default=None, help="write run statistics as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds before the run is abandoned (default: none)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sqlmpc",
        description="Compile SQL over several parties' tables into local jobs (each party's "
                    "own engine) and MPyC secure protocols; explain and run them.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile", help="write the plan and every party's program to a folder")
    _common(c)
    _engine_option(c, "every party")
    c.add_argument("--out", type=Path, required=True, help="output folder")
    e = sub.add_parser("explain", help="show what each party computes, shares and learns")
    _common(e)
    _engine_option(e, "every party")
    e.add_argument("--format", choices=("text", "json", "dot", "png"), default="text")
    e.add_argument("--out", type=Path, default=None, help="write to this file (png: required)")
    r = sub.add_parser("run", help="run every party as its own process on this machine")
    _common(r)
    _run_options(r)
    r.add_argument("--out", type=Path, default=None,
                   help="result file: Parquet if it ends in .parquet, else CSV (default: print "
                        "the result as CSV on stdout)")
    r.add_argument("--workdir", type=Path, default=None,
                   help="folder for the parties' private working files, kept after the run "
                        "(default: a temporary folder, removed when the run ends)")
    r.add_argument("--agents", default=None, metavar="NAME=HOST:PORT,...",
                   help="run through these running `sqlmpc agent` processes (one per party) "
                        "instead of starting party processes (default: the catalog's `agent` "
                        "addresses, when it names them)")
    r.add_argument("--identity", type=Path, default=None, metavar="DIR",
                   help="the analyst's identity folder for the agents (default: the catalog's "
                        "[deployment] identity)")
    r.add_argument("--insecure-plaintext", action="store_true",
                   help="talk to the agents without TLS (a warning line; testing only)")
    pa = sub.add_parser("party", help="run ONE party of a deployment (its own machine)")
    pa.add_argument("name", help="this party's name in the catalog")
    _common(pa)
    _run_options(pa)
    pa.add_argument("--out", type=Path, default=None,
                    help="result file (.parquet or CSV), if this party receives it")
    pa.add_argument("--workdir", type=Path, default=None)
    pa.add_argument("--base-port", type=int, default=None,
                    help="first port when the catalog gives none (party i uses base+i)")
    ag = sub.add_parser("agent", help="run ONE party as a long-lived agent serving queries")
    ag.add_argument("name", help="this party's name in the catalog")
    ag.add_argument("--catalog", required=True, help="catalog.toml naming parties and tables")
    ag.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT",
                    help="address to serve on (default 127.0.0.1, any free port)")
    _engine_option(ag, "this party, kept open between queries")
    ag.add_argument("--spark-master", default=None,
                    help="Spark master (sc://HOST:PORT, spark://HOST:PORT or local[N]); the "
                         "party's spark_master in the catalog wins")
    ag.add_argument("--workdir", type=Path, default=None,
                    help="folder for per-query working files (default: a temp dir)")
    ag.add_argument("--keep-work", action="store_true", help="keep per-query working files")
    ag.add_argument("--quiet", action="store_true", help="no status lines")
    ag.add_argument("--identity", type=Path, default=None, metavar="DIR",
                    help="this party's identity folder (default: the catalog's [deployment] "
                         "identity)")
    ag.add_argument("--insecure-plaintext", action="store_true",
                    help="serve without TLS and without checking who asks (a warning line; "
                         "testing only)")
    ag.add_argument("--audit-log", type=Path, default=None, metavar="FILE",
                    help="append one JSON line per request here (default: "
                         "agent-NAME-audit.jsonl next to the catalog)")
    k = sub.add_parser("keys", help="make identities (CA, keys, certificates) for a test "
                                    "deployment")
    k.add_argument("out", type=Path, help="folder for the keys (private: keep it out of git)")
    k.add_argument("--catalog", required=True, help="catalog.toml naming the parties")
    k.add_argument("--analyst", action="append", default=[], metavar="NAME",
                   help="an analyst to make an identity for (repeatable)")
    k.add_argument("--days", type=int, default=365, help="validity of the certificates")
    from ..contributors.commands import add_commands
    add_commands(sub)  # contributor mode: provider, codes, contribute, server-keys, server
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except SqlmpcError as err:
        _print_error(err)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("sqlmpc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `sqlmpc explain ... | head`
        sys.stderr.close()
        return 0
    except OSError as err:  # a file we were asked to write or read
        print(f"sqlmpc: error: {err.filename or ''}: {err.strerror}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as err:  # a bug: still one line unless debugging
        if os.environ.get("SQLMPC_DEBUG"):
            raise
        print(f"sqlmpc: internal error: {type(err).__name__}: {err} (set SQLMPC_DEBUG=1 for "
              f"details)", file=sys.stderr)
        return EXIT_INTERNAL


def _print_error(err: SqlmpcError) -> None:
    print(f"sqlmpc: error: {err}", file=sys.stderr)
    detail = err.detail()
    if detail:
        print(detail, file=sys.stderr)


def read_query(path: str) -> str:
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise SqlmpcError(f"query file {path} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SqlmpcError(f"cannot read query file {path}: {e}") from None
    return text


def _compile(args):
    from .config import compile_plan, load_catalog
    catalog = load_catalog(args.catalog)
    sql = read_query(args.query)
    return compile_plan(sql, catalog, engine=getattr(args, "engine", None),
                        dialect=args.dialect, all_secure=args.all_secure,
                        disable=tuple(args.disable), pad_inputs=args.pad_inputs,
                        join_bound=args.join_bound), catalog


def _dispatch(args) -> int:
    if args.command == "explain":
        from .config import explain_plan
        plan, catalog = _compile(args)
        if args.format == "png":
            path = explain_plan(plan, catalog, "png", args.out or Path("plan.png"))
            print(f"wrote {path}")
            return 0
        text = explain_plan(plan, catalog, args.format)
        if args.out:
            args.out.write_text(text + "\n")
            print(f"wrote {args.out}")
        else:
            print(text)
        return 0
    if args.command == "compile":
        from .artifacts import write_artifacts
        plan, catalog = _compile(args)
        files = write_artifacts(plan, args.out, catalog)
        for f in files:
            print(f)
        return 0
    if args.command == "run":
        return _run(args)
    if args.command == "keys":
        return _keys(args)
    if args.command == "agent":
        from .agent.server import serve
        return serve(args)
    from ..contributors.commands import COMMANDS, run_command
    if args.command in COMMANDS:
        return run_command(args)
    if args.command == "party":
        from .party import run_party_cli
        plan, catalog = _compile(args)
        return run_party_cli(plan, catalog, args)
    raise SqlmpcError(f"unknown command {args.command}")


def _run(args) -> int:
    """`sqlmpc run`: every party as its own process here, or through --agents."""
    from .api import run_compiled
    from .workspace import RunOptions, write_result
    plan, catalog = _compile(args)
    agents = None
    if args.agents:
        from .agent.protocol import parse_agents
        agents = parse_agents(args.agents)
    elif any(p.agent for p in catalog.parties.values()):
        agents = {}  # the catalog's agent addresses
    options = RunOptions(ssl=args.ssl, stats_path=args.stats, quiet=args.quiet,
                         timeout=args.timeout, workdir=args.workdir,
                         engine_defaults={"spark_master": args.spark_master},
                         compile_options={"dialect": args.dialect,
                                          "disable": list(args.disable),
                                          "pad_inputs": args.pad_inputs,
                                          "join_bound": args.join_bound})
    if agents is None and (args.identity or args.insecure_plaintext):
        raise SqlmpcError("--identity and --insecure-plaintext are for runs through agents "
                          "(--agents, or `agent` addresses in the catalog)")
    result = run_compiled(plan, catalog, options, agents=agents, identity=args.identity,
                          insecure_plaintext=args.insecure_plaintext)
    if args.out:
        write_result(result, args.out)
        if not args.quiet:
            print(f"sqlmpc: wrote {len(result)} row(s) to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(result.to_csv(index=False))
    return 0


def _keys(args) -> int:
    """`sqlmpc keys OUT --catalog C --analyst NAME...`: a CA and every catalog party's and
    analyst's key and certificate, each in its own private folder."""
    from .config import load_catalog
    from .identity import make_test_identities
    catalog = load_catalog(args.catalog)
    keys = make_test_identities(args.out, list(catalog.parties), list(args.analyst),
                                days=args.days)
    print(f"CA certificate: {keys.ca} (its key: {keys.ca_key}; keep it offline)")
    for role, members in (("party", keys.parties), ("analyst", keys.analysts)):
        for name, identity in members.items():
            print(f"{role} {name}: {identity.cert.parent}")
    return 0


def _version() -> str:
    from .. import __version__
    return __version__


if __name__ == "__main__":
    sys.exit(main())
