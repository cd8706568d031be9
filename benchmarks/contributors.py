"""Contributor mode at scale: many contributors submitting at once to a local provider, and
(optionally) the servers' computation over all of them.

    python -m benchmarks.contributors [--contributors 1000] [--rows 50] [--clients 200]
                                      [--compute] [--kill-at N]

Submit phase: a fresh session and provider (`sqlmpc provider`, its own process) on this
machine; every contributor's submission (random rows of the pay-equity schema, shared and
sealed exactly as `sqlmpc contribute` does) is built first, then `--clients` threads post them
at once, each timing its requests. `--kill-at N` kills the provider (-9) after N accepted
submissions and restarts it; the submissions refused while it was down are retried. Reported:
accepted submissions (all must be: the provider's status count is checked), throughput, p50,
p99 and max latency of a submit, and what the store holds.

Compute phase (`--compute`): closes the session and runs the three servers (`sqlmpc server`,
one process each); shows their log lines with the seconds since they started (fetch, opening
the boxes, the MPC), reports their wall time and the load average, and checks the result
against DuckDB's answer over the same plain rows with the same suppression.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SQLMPC = str(Path(sys.executable).parent / "sqlmpc")
SERVERS = ("provider", "s2", "s3")
#: the pay-equity analytic of examples/pay_equity_contributors (75 cells)
QUERY = (Path(__file__).resolve().parents[1] / "examples" / "pay_equity_contributors" /
         "query.sql").read_text()


def write_session(folder: Path, ports: list[int], max_rows: int) -> Path:
    from sqlmpc.contributors.sealing import make_server_keys
    for name in SERVERS:
        make_server_keys(name, folder / "keys")
    (folder / "query.sql").write_text(QUERY)
    servers = "\n".join(f'[servers.{n}]\nmpc = "127.0.0.1:{p}"\npublic_key = "keys/{n}.pub"'
                        for n, p in zip(SERVERS, ports))
    (folder / "session.toml").write_text(f"""[session]
name = "bench"
min_contributors = 3
analytic = "query.sql"
max_rows = {max_rows}
[table]
name = "payroll"
[table.columns]
gender = {{ type = "text", values = ["F", "M", "X"] }}
ethnicity = {{ type = "text", values = ["Asian", "Black", "Hispanic", "White", "Other"] }}
job_level = {{ type = "text", values = ["L1", "L2", "L3", "L4", "L5"] }}
salary = {{ type = "decimal(12,2)", min = 0, max = 10000000 }}
{servers}
[result]
recipients = ["s2"]
""")
    return folder / "session.toml"


def start_provider(session: Path, port: int, db: Path, log) -> subprocess.Popen:
    from sqlmpc.contributors.client import request
    proc = subprocess.Popen([SQLMPC, "provider", str(session), "--listen", f"127.0.0.1:{port}",
                             "--db", str(db), "--open", "--quiet"], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    for _ in range(200):
        try:
            request(f"http://127.0.0.1:{port}/api/session", timeout=1)
            return proc
        except Exception:  # noqa: BLE001 -- not up yet
            time.sleep(0.1)
    raise SystemExit("the provider did not start")


def build_bodies(info: dict, codes: list[str], rows: int, seed: int
                 ) -> tuple[list[dict], list[tuple]]:
    """Every contributor's sealed submission, as `sqlmpc contribute` builds it, and the
    plain rows (contributor, cell texts...) for checking the result."""
    from sqlmpc.contributors.client import encode_cell, sealed_submission
    rng = random.Random(seed)
    cols = info["table"]["columns"]
    bodies, plain = [], []
    for i, code in enumerate(codes):
        encoded = [[] for _ in cols]
        for _ in range(rows):
            cells = [rng.choice(c["values"]) if "values" in c else
                     f"{rng.uniform(20000, 200000):.2f}" for c in cols]
            plain.append((i, *cells))
            for j, (c, text) in enumerate(zip(cols, cells)):
                encoded[j].append(encode_cell(c, text, "bench"))
        bodies.append(sealed_submission(info, code, encoded))
    return bodies, plain


def check_result(path: Path, plain: list[tuple], k: int) -> str:
    """Compare the recipient's CSV with DuckDB's answer to the same analytic over the plain
    rows, cells of fewer than k contributors dropped; a line saying it matches (else exit)."""
    import duckdb
    import pandas as pd
    con = duckdb.connect()
    con.execute("CREATE TABLE rows (contributor INT, gender TEXT, ethnicity TEXT, "
                "job_level TEXT, salary DECIMAL(12,2))")
    con.executemany("INSERT INTO rows VALUES (?, ?, ?, ?, ?)", plain)
    con.execute(f"CREATE VIEW payroll AS SELECT * FROM rows WHERE (gender, ethnicity, "
                f"job_level) IN (SELECT gender, ethnicity, job_level FROM rows GROUP BY ALL "
                f"HAVING COUNT(DISTINCT contributor) >= {k})")
    want = con.execute(QUERY).df()
    keys = ["gender", "ethnicity", "job_level"]
    # ORDER BY a categorical column follows its declared values, DuckDB's the text: compare
    # the cells in one order
    got = pd.read_csv(path).sort_values(keys, ignore_index=True)
    want = want.sort_values(keys, ignore_index=True)
    if len(got) != len(want) or (got[keys].values != want[keys].values).any():
        raise SystemExit(f"the result's cells differ from DuckDB's ({path})")
    for c in ("headcount", "total_pay", "avg_pay", "spread"):
        expect = want[c].astype(float).values
        if (abs(got[c].values - expect) > 1e-9 * abs(expect) + 0.005).any():
            raise SystemExit(f"the result's {c} differs from DuckDB's ({path})")
    return f"  result: {len(got)} cells, equal to DuckDB's over the same rows"


def post_all(url: str, bodies: list[dict], clients: int, on_accept) -> list[float]:
    """Post every body from `clients` threads; each retried until accepted; latencies."""
    from sqlmpc.contributors.client import ContributeError, request
    latencies: list[float] = []
    lock = threading.Lock()

    def one(body: dict) -> None:
        while True:
            t0 = time.perf_counter()
            try:
                request(f"{url}/api/submit", "POST", body, timeout=120)
            except ContributeError:  # the provider is down (a kill): retry
                time.sleep(0.2)
                continue
            with lock:
                latencies.append(time.perf_counter() - t0)
                on_accept(len(latencies))
            return

    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(one, bodies))
    return latencies


def timed_lines(stream, t0: float) -> None:
    """Echo a server's log lines, each with the seconds since the servers started."""
    for line in stream:
        print(f"  {time.perf_counter() - t0:6.1f} s  {line.rstrip()}", flush=True)


def main(argv: list[str] | None = None) -> None:
    from sqlmpc.contributors.client import request
    from sqlmpc.runtime.workspace import free_port
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contributors", type=int, default=1000)
    ap.add_argument("--rows", type=int, default=50)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--kill-at", type=int, default=None)
    ap.add_argument("--compute", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sqlmpc-bench-contrib-") as tmp:
        folder = Path(tmp)
        ports = [free_port() for _ in range(4)]
        session = write_session(folder, ports[:3], args.rows)
        db, url = folder / "p.db", f"http://127.0.0.1:{ports[3]}"
        log = (folder / "provider.log").open("ab")
        procs = [start_provider(session, ports[3], db, log)]
        try:  # the provider stops whatever happens (a lost submission, Ctrl-C)
            token = (folder / "p.db.analyst-token").read_text().strip()
            codes = request(f"{url}/api/analyst/codes", "POST", {"count": args.contributors},
                            token=token)["codes"]
            info = request(f"{url}/api/session")
            t0 = time.perf_counter()
            bodies, plain = build_bodies(info, codes, args.rows, seed=1)
            built = time.perf_counter() - t0
            size = sum(len(str(b)) for b in bodies) / len(bodies)

            def on_accept(n: int) -> None:
                if args.kill_at is not None and n == args.kill_at:
                    os.killpg(procs[-1].pid, signal.SIGKILL)
                    procs[-1].wait()
                    procs.append(start_provider(session, ports[3], db, log))

            t0 = time.perf_counter()
            lat = sorted(post_all(url, bodies, args.clients, on_accept))
            wall = time.perf_counter() - t0
            token = (folder / "p.db.analyst-token").read_text().strip()
            status = request(f"{url}/api/analyst/status", token=token)
            q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000
            print(f"contributors {args.contributors} x {args.rows} rows, {args.clients} clients"
                  f"{f', provider killed at {args.kill_at}' if args.kill_at else ''}")
            print(f"  built the sealed submissions in {built:.1f} s ({size / 1024:.0f} KiB each)")
            print(f"  accepted {status['contributors']} contributors / {status['submissions']} "
                  f"submissions in {wall:.1f} s ({len(lat) / wall:.0f} per s); latency ms: "
                  f"p50 {q(0.5):.0f}, p99 {q(0.99):.0f}, max {lat[-1] * 1000:.0f}")
            print(f"  store: {sum(p.stat().st_size for p in folder.glob('p.db*')) / 2**20:.1f} MiB")
            assert status["contributors"] == args.contributors, "a submission was lost"
            if args.compute:
                request(f"{url}/api/analyst/close", "POST", {}, token=token)
                t0 = time.perf_counter()
                servers = [subprocess.Popen([SQLMPC, "server", n, str(session), "--key",
                                             str(folder / "keys" / f"{n}.key"), "--provider", url,
                                             "--out", str(folder / f"result-{n}.csv")],
                                            stderr=subprocess.PIPE, text=True)
                           for n in SERVERS]
                readers = [threading.Thread(target=timed_lines, args=(s.stderr, t0)) for s in servers]
                for r in readers:
                    r.start()
                codes_ = [s.wait() for s in servers]
                for r in readers:
                    r.join()
                print(f"  compute: {time.perf_counter() - t0:.1f} s (exit codes {codes_}; load "
                      f"average {os.getloadavg()[0]:.1f})")
                print(check_result(folder / "result-s2.csv", plain, 3))
        finally:
            os.killpg(procs[-1].pid, signal.SIGTERM)
            procs[-1].wait()
            log.close()


if __name__ == "__main__":
    main()
