"""A three-party agent deployment on 127.0.0.1: make the keys, start the agents of bank_a, bank_b
and the regulator, run query.sql through them as the analyst alice, stop the agents.

    python examples/deployment/run.py            # from anywhere; prints the regulator's result
    python examples/deployment/run.py --keep     # leave the agents running (stop: Ctrl-C)

Every step is the documented command line (README.md in this folder): `sqlmpc keys`,
`sqlmpc agent NAME --catalog NAME.toml`, `sqlmpc run query.sql --catalog analyst.toml`.
The keys go to keys/ here (ignored by git: private keys are never committed); each agent's
audit log is agent-NAME-audit.jsonl here.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTIES = ("bank_a", "bank_b", "regulator")
ANALYSTS = ("alice", "mallory")
SQLMPC = [sys.executable, "-c", "import sys; from sqlmpc.runtime.cli import main; sys.exit(main())"]


def sqlmpc(*args: str, folder: Path = HERE, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(SQLMPC + list(args), cwd=folder, text=True, **kw)


def make_keys(folder: Path = HERE) -> None:
    """`sqlmpc keys keys --catalog bank_a.toml --analyst alice --analyst mallory`."""
    args = ["keys", "keys", "--catalog", "bank_a.toml"]
    for analyst in ANALYSTS:
        args += ["--analyst", analyst]
    sqlmpc(*args, folder=folder, check=True, capture_output=True)


def agent_address(folder: Path, party: str) -> str:
    """The party's `agent` address in its own catalog."""
    import tomllib
    doc = tomllib.loads((folder / f"{party}.toml").read_text())
    return doc["parties"][party]["agent"]


def start_agents(folder: Path = HERE, timeout: float = 120.0) -> dict[str, subprocess.Popen]:
    """`sqlmpc agent NAME --catalog NAME.toml --listen ADDRESS` per party, until each listens."""
    procs = {}
    for party in PARTIES:
        log = open(folder / f"agent-{party}.log", "w")
        procs[party] = subprocess.Popen(
            SQLMPC + ["agent", party, "--catalog", f"{party}.toml", "--listen",
                      agent_address(folder, party)],
            cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
    deadline = time.monotonic() + timeout
    for party, proc in procs.items():
        host, port = agent_address(folder, party).rsplit(":", 1)
        while True:
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    stop_agents(procs)
                    log_text = (folder / f"agent-{party}.log").read_text().strip()
                    raise SystemExit(f"run.py: the agent of {party} did not start: {log_text}")
                time.sleep(0.2)
    return procs


def stop_agents(procs: dict[str, subprocess.Popen]) -> None:
    """SIGTERM, as an operator stops an agent (the network cannot)."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_query(folder: Path = HERE) -> subprocess.CompletedProcess:
    """`sqlmpc run query.sql --catalog analyst.toml` (alice's identity from the catalog)."""
    return sqlmpc("run", "query.sql", "--catalog", "analyst.toml", "--quiet", folder=folder,
                  capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the agents running")
    args = parser.parse_args()
    make_keys()
    print(f"keys made in {HERE / 'keys'}", file=sys.stderr)
    procs = start_agents()
    print("agents running: " + ", ".join(f"{p} at {agent_address(HERE, p)}" for p in procs),
          file=sys.stderr)
    try:
        done = run_query()
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        if args.keep and done.returncode == 0:
            print("agents left running; Ctrl-C stops them", file=sys.stderr)
            signal.pause()
        return done.returncode
    except KeyboardInterrupt:
        return 130
    finally:
        stop_agents(procs)


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())
