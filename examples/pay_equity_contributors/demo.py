"""The pay-equity contributor-mode example on this machine, in three commands:

    python examples/pay_equity_contributors/demo.py start       # keys, provider, codes, servers
    python examples/pay_equity_contributors/demo.py contribute  # the sample employers submit
    python examples/pay_equity_contributors/demo.py close       # close, compute, show the result

`start` makes the three servers' keys (keys/, once), starts the provider on
http://127.0.0.1:8700/ (the contributor page; the session is open), writes 10 participation
codes to run/codes.txt and starts the three compute servers, which wait for the close.
`contribute` submits employers/*.csv with the CLI contributor (one code each; run it again to
resubmit: the latest submission counts). Contribute from the page with the other codes.
`close` closes the session as the analyst, waits for the servers and prints run/result.csv
(what the recipient s2 received), then stops the provider. Every command prints what it runs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUN = HERE / "run"
URL = "http://127.0.0.1:8700"
SERVERS = ("provider", "s2", "s3")
SQLMPC = shutil.which("sqlmpc") or str(Path(sys.executable).parent / "sqlmpc")


def sh(*args: str, log: Path | None = None) -> subprocess.Popen | None:
    """Run `sqlmpc args` (in the background with its output in `log`, else in the
    foreground, stopping on failure)."""
    print("$ sqlmpc " + " ".join(args), flush=True)
    if log is None:
        subprocess.run([SQLMPC, *args], check=True)
        return None
    return subprocess.Popen([SQLMPC, *args], stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def start() -> None:
    RUN.mkdir(exist_ok=True)
    for name in SERVERS:
        if not (HERE / "keys" / f"{name}.key").exists():
            sh("server-keys", name, "--out", str(HERE / "keys"))
    session = str(HERE / "session.toml")
    provider = sh("provider", session, "--listen", URL.removeprefix("http://"), "--db",
                  str(RUN / "provider.db"), "--open", log=RUN / "provider.log")
    (RUN / "provider.pid").write_text(str(provider.pid))
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{URL}/api/session", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    else:
        sys.exit(f"the provider did not start: see {RUN / 'provider.log'}")
    codes = subprocess.run([SQLMPC, "codes", session, "--count", "10", "--db",
                            str(RUN / "provider.db")], check=True, capture_output=True,
                           text=True).stdout.split()
    (RUN / "codes.txt").write_text("\n".join(codes) + "\n")
    pids = []
    for name in SERVERS:
        out = ["--out", str(RUN / "result.csv")] if name == "s2" else []
        p = sh("server", name, session, "--key", str(HERE / "keys" / f"{name}.key"),
               "--provider", URL, *out, log=RUN / f"server-{name}.log")
        pids.append(p.pid)
    (RUN / "servers.pid").write_text(json.dumps(pids))
    print(f"\nThe contributor page: {URL}/  (codes in {RUN / 'codes.txt'}:)")
    print("\n".join(codes))


def contribute() -> None:
    codes = (RUN / "codes.txt").read_text().split()
    for code, path in zip(codes, sorted((HERE / "employers").glob("*.csv"))):
        sh("contribute", URL, "--code", code, "--file", str(path))


def close() -> None:
    token = (RUN / "provider.db.analyst-token").read_text().strip()
    req = urllib.request.Request(f"{URL}/api/analyst/close", data=b"{}", method="POST",
                                 headers={"Authorization": f"Bearer {token}"})
    print(json.loads(urllib.request.urlopen(req).read()))
    for pid in json.loads((RUN / "servers.pid").read_text()):
        while _alive(pid):
            time.sleep(0.5)
    os.kill(int((RUN / "provider.pid").read_text()), signal.SIGTERM)
    result = RUN / "result.csv"
    if not result.exists():
        sys.exit(f"no result: see {RUN}/server-*.log")
    print(result.read_text())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # our own child may be a zombie until reaped
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True


if __name__ == "__main__":
    commands = {"start": start, "contribute": contribute, "close": close}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: python {sys.argv[0]} start | contribute | close")
    commands[sys.argv[1]]()
