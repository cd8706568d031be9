"""The contributor-mode subcommands of `sqlmpc` (runtime/cli.py adds them):

    sqlmpc provider SESSION.toml --listen HOST:PORT --db FILE [--open]
    sqlmpc codes SESSION.toml --count N --db FILE
    sqlmpc contribute URL --code CODE --file DATA.csv
    sqlmpc server-keys NAME --out DIR
    sqlmpc server NAME SESSION.toml --key KEYFILE --provider URL [--out RESULT.csv] [--explain]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

COMMANDS = ("provider", "codes", "contribute", "server-keys", "server")


def add_commands(sub: Any) -> None:
    """Add the contributor-mode subcommands to `sub` (the `sqlmpc` parser's subparsers)."""
    p = sub.add_parser("provider", help="contributor mode: run the service provider (the "
                                        "contributor page, the API, the store of sealed boxes)")
    p.add_argument("session", help="the session file (TOML)")
    p.add_argument("--listen", default="127.0.0.1:8700", metavar="HOST:PORT")
    p.add_argument("--db", type=Path, required=True, help="the SQLite store (created if new)")
    p.add_argument("--open", action="store_true", help="open the session for submissions "
                                                       "at start (else POST /api/analyst/open)")
    p.add_argument("--quiet", action="store_true", help="no access log")
    c = sub.add_parser("codes", help="contributor mode: make participation codes")
    c.add_argument("session", help="the session file (TOML)")
    c.add_argument("--count", type=int, required=True)
    c.add_argument("--db", type=Path, required=True, help="the provider's SQLite store")
    k = sub.add_parser("contribute", help="contributor mode: validate, share, seal and submit "
                                          "a CSV file")
    k.add_argument("url", help="the provider's address, e.g. http://127.0.0.1:8700")
    k.add_argument("--code", required=True, help="your participation code")
    k.add_argument("--file", type=Path, required=True, help="your rows (CSV with a header)")
    g = sub.add_parser("server-keys", help="contributor mode: make a compute server's X25519 "
                                           "key pair (NAME.key private 0600, NAME.pub)")
    g.add_argument("name")
    g.add_argument("--out", type=Path, required=True, help="folder for the key files")
    s = sub.add_parser("server", help="contributor mode: run one compute server at close")
    s.add_argument("name", help="this server's name in the session")
    s.add_argument("session", help="the session file (TOML)")
    s.add_argument("--key", type=Path, required=False, help="this server's private key file")
    s.add_argument("--provider", required=False, help="the provider's address")
    s.add_argument("--out", type=Path, default=None, help="the result CSV (recipients)")
    s.add_argument("--wait", type=float, default=3600.0,
                   help="seconds to wait for the close and for the other servers")
    s.add_argument("--explain", action="store_true",
                   help="show what the servers compute and what is revealed, then stop")


def run_command(args: argparse.Namespace) -> int:
    """Run one of COMMANDS; SqlmpcError for every user error."""
    from ..compiler.errors import SqlmpcError
    if args.command == "provider":
        from .provider import serve
        return serve(args.session, args.listen, args.db, open_now=args.open, quiet=args.quiet)
    if args.command == "codes":
        from .session import Session
        from .store import Store
        session = Session.load(args.session)
        store = Store(args.db, session.name)
        for code in store.new_codes(args.count):
            print(code)
        store.close()
        return 0
    if args.command == "contribute":
        from .client import contribute
        r = contribute(args.url, args.code, args.file)
        print(f"submitted {r['rows']} row(s) as submission {r['submission']} at "
              f"{r['submitted_at']}" + (f" (replaces {r['replaces']})" if r["replaces"]
                                        else ""))
        return 0
    if args.command == "server-keys":
        from .sealing import make_server_keys
        private, public = make_server_keys(args.name, args.out)
        print(f"private key: {private} (keep it secret)\npublic key: {public}")
        return 0
    if args.command == "server":
        if args.explain:
            from ..runtime.mpc_session import load_mpc
            load_mpc()  # first: MPyC must not read this process's command line
            from .explain import explain_session
            print(explain_session(args.session))
            return 0
        if args.key is None or args.provider is None:
            raise SqlmpcError("server: --key and --provider are required")
        from .server import run_server
        run_server(args.name, args.session, args.key, args.provider, out=args.out,
                   wait=args.wait)
        return 0
    raise SqlmpcError(f"unknown command {args.command}")
