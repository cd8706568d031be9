"""Contributor mode end to end (slow: the provider and three compute servers as processes).

50 contributors submit through the CLI contributor's code (10 of them twice), the provider is
killed (-9) and restarted halfway, the analyst closes, the three servers compute; the result
equals DuckDB's over the latest submissions with the same suppression, and the provider's
database and log contain none of the submitted values (as text or as field elements).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from contributors_helpers import QUERY, SERVERS, expected, make_session, write_rows
from sqlmpc.contributors.client import contribute, request
from sqlmpc.contributors.field import encode_number
from sqlmpc.runtime.workspace import free_port

pytestmark = pytest.mark.slow
SQLMPC = str(Path(sys.executable).parent / "sqlmpc")
K = 3
#: the helpers' analytic with the spread: a sum of squares (summed untruncated, truncated
#: once per cell) and the average and variance finished by the recipient
SPREAD_QUERY = QUERY.replace("AVG(salary) AS avg_pay",
                             "AVG(salary) AS avg_pay, STDDEV_POP(salary) AS spread")


def start_provider(folder: Path, port: int, log) -> subprocess.Popen:
    proc = subprocess.Popen([SQLMPC, "provider", str(folder / "session.toml"), "--listen",
                             f"127.0.0.1:{port}", "--db", str(folder / "p.db"), "--open"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            request(f"{url}/api/session", timeout=1)
            return proc
        except Exception:  # noqa: BLE001 -- not listening yet
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the provider did not start")


def analyst(folder: Path, url: str, action: str, body=None):
    token = (folder / "p.db.analyst-token").read_text().strip()
    return request(f"{url}/api/analyst/{action}", "POST", body or {}, token=token)


def run_servers(folder: Path, url: str, timeout: float = 60) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen([SQLMPC, "server", n, str(folder / "session.toml"), "--key",
                               str(folder / "keys" / f"{n}.key"), "--provider", url, "--out",
                               str(folder / f"result-{n}.csv"), "--wait", "30"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in SERVERS]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


def test_whole_flow_with_resubmissions_and_a_provider_restart(tmp_path) -> None:
    rng = random.Random(16)
    ports = [free_port() for _ in range(4)]
    folder = tmp_path / "session"
    make_session(folder, k=K, ports=ports[:3], query=SPREAD_QUERY)
    url = f"http://127.0.0.1:{ports[3]}"
    log_path = tmp_path / "provider.log"
    with log_path.open("ab") as log:
        provider = start_provider(folder, ports[3], log)
        codes = analyst(folder, url, "codes", {"count": 50})["codes"]
        latest: dict[int, list[tuple]] = {}
        submitted: list[tuple] = []  # every row ever sent, replaced ones included
        order = list(range(50)) + rng.sample(range(50), 10)  # 10 resubmit later
        for step, i in enumerate(order):
            if step == 30:  # kill -9 mid-way; nothing accepted may be lost
                os.killpg(provider.pid, signal.SIGKILL)
                provider.wait()
                provider = start_provider(folder, ports[3], log)
            path = tmp_path / f"c{i}.csv"
            # contributors 0 and 1 (fewer than K) are the only ones in the cell (X, L3)
            latest[i] = write_rows(path, rng, rng.randint(2, 4), rare=3 if i < 2 else 0)
            submitted += latest[i]
            receipt = contribute(url, codes[i], path)
            assert receipt["rows"] == len(latest[i])
        status = request(f"{url}/api/analyst/status",
                         token=(folder / "p.db.analyst-token").read_text().strip())
        assert status == {"status": "open", "contributors": 50, "submissions": 60}
        analyst(folder, url, "close")
        try:
            runs = run_servers(folder, url)
        finally:
            os.killpg(provider.pid, signal.SIGTERM)
            provider.wait(timeout=10)
    for r in runs:
        assert r.returncode == 0, r.stderr
    assert not (folder / "result-provider.csv").exists()  # recipients only
    got = pd.read_csv(folder / "result-s2.csv")
    want = expected(latest, K, SPREAD_QUERY)
    assert len(want) == 6  # the (X, L3) cell, from 2 contributors, is suppressed
    assert list(got.columns) == list(want.columns)
    assert got[["gender", "job_level"]].values.tolist() == \
        want[["gender", "job_level"]].values.tolist()
    assert got["headcount"].tolist() == want["headcount"].tolist()
    assert [Decimal(str(x)) for x in got["total_pay"]] == \
        [Decimal(str(x)) for x in want["total_pay"]]
    assert got["avg_pay"].tolist() == pytest.approx(want["avg_pay"].tolist(), rel=1e-9)
    assert got["spread"].tolist() == pytest.approx(want["spread"].tolist(), rel=1e-9)

    # the provider holds nothing it could read: no value as text or as field element
    stored = b"".join(p.read_bytes() for p in folder.glob("p.db*")) + log_path.read_bytes()
    for _, _, salary in submitted:
        assert salary.encode() not in stored
        assert str(encode_number(Decimal(salary))).encode() not in stored


def test_a_server_dying_fails_the_close_cleanly_and_a_retry_succeeds(tmp_path) -> None:
    rng = random.Random(7)
    ports = [free_port() for _ in range(4)]
    folder = tmp_path / "session"
    make_session(folder, k=1, ports=ports[:3])
    url = f"http://127.0.0.1:{ports[3]}"
    with (tmp_path / "provider.log").open("ab") as log:
        provider = start_provider(folder, ports[3], log)
        try:
            latest = {}
            for i, code in enumerate(analyst(folder, url, "codes", {"count": 20})["codes"]):
                latest[i] = write_rows(tmp_path / f"c{i}.csv", rng, 10)
                contribute(url, code, tmp_path / f"c{i}.csv")
            analyst(folder, url, "close")
            procs = [subprocess.Popen([SQLMPC, "server", n, str(folder / "session.toml"),
                                       "--key", str(folder / "keys" / f"{n}.key"), "--provider",
                                       url, "--out", str(folder / f"result-{n}.csv"), "--wait",
                                       "10"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True) for n in SERVERS[:2]]
            time.sleep(4)  # the two are connected to each other, waiting for s3
            dying = subprocess.Popen([SQLMPC, "server", "s3", str(folder / "session.toml"),
                                      "--key", str(folder / "keys" / "s3.key"), "--provider",
                                      url, "--wait", "10"], stderr=subprocess.PIPE, text=True)
            for line in dying.stderr:  # it has opened its boxes: it joins the MPC now
                if "contributor(s)" in line:
                    # killed at once: the computation itself takes well under a second, so a
                    # later kill can come after the others have finished
                    dying.kill()
                    break
            dying.wait()
            for p in procs:
                _, stderr = p.communicate(timeout=60)
                assert p.returncode == 1
                lines = stderr.strip().splitlines()
                assert "computation stopped" in lines[-1] and "retry" in lines[-1]
                assert "Traceback" not in stderr
            assert not (folder / "result-s2.csv").exists()
            runs = run_servers(folder, url)
        finally:
            os.killpg(provider.pid, signal.SIGTERM)
            provider.wait(timeout=10)
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    got = pd.read_csv(folder / "result-s2.csv")
    assert got["headcount"].tolist() == expected(latest, 1)["headcount"].tolist()
