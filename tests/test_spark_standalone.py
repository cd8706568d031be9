"""A local job on a real standalone Spark cluster (one master, one worker) started from pyspark.

The cluster runs from the pyspark package (SPARK_HOME = its directory) with
`bin/spark-class org.apache.spark.deploy.master.Master` / `...worker.Worker` as subprocesses in
their own process groups, on 127.0.0.1 and free ports, and is stopped in the fixture's teardown.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyspark
import pytest
from sqlmpc.runtime.engines.spark import run_local_job
from sqlmpc.runtime.workspace import free_port
from test_duckdb_backend import check_sample, sample_job, write_data

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("java") is None and not os.environ.get("JAVA_HOME"),
                                 reason="Java is not installed (a Spark cluster needs a JVM)")]

SPARK_HOME = Path(pyspark.__file__).parent


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def wait_for(check, what: str, timeout: float, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{what}: a cluster process exited with status {p.returncode}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{what}: not ready after {timeout:.0f} s")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("cluster")
    port, ui, worker_ui = free_port(), free_port(), free_port()
    env = dict(os.environ, SPARK_HOME=str(SPARK_HOME), SPARK_LOCAL_IP="127.0.0.1",
               SPARK_LOG_DIR=str(root / "logs"), SPARK_WORKER_DIR=str(root / "work"))
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    procs: list[subprocess.Popen] = []
    try:
        with (root / "master.log").open("w") as log:
            procs.append(subprocess.Popen(
                [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                 "--port", str(port), "--webui-port", str(ui)],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        wait_for(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True,
                 "Spark master", 120, procs)
        url = f"spark://127.0.0.1:{port}"
        with (root / "worker.log").open("w") as log:
            procs.append(subprocess.Popen(
                [spark_class, "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1",
                 "--cores", "1", "--memory", "1536m", "--webui-port", str(worker_ui),
                 "--work-dir", str(root / "work")],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

        def worker_alive() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=2) as r:
                return json.load(r).get("aliveworkers", 0) >= 1

        wait_for(worker_alive, "Spark worker", 120, procs)
        yield url
    finally:
        for p in reversed(procs):
            stop(p)


def test_job_on_standalone_cluster(cluster: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")  # the driver, reachable by the executor
    write_data(tmp_path)
    job = sample_job(tmp_path)
    start = time.monotonic()
    results = run_local_job(job, workdir=tmp_path / "work", master=cluster, timeout=600)
    print(f"job on {cluster}: {time.monotonic() - start:.1f} s")
    check_sample(results, job)
