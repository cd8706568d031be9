"""What every part of the taxi experiment shares: the query, the modes, one error type, logging."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
QUERY = REPO / "examples" / "taxi" / "query.sql"
DEFAULT_DATA = REPO / "out" / "taxi-bench"
MODES = ("plaintext", "sqlmpc", "isolated", "wan", "all-secure")
PHASES = ("cold", "warm")
#: local engines the experiment runs on: the plaintext baseline and every party use the same
ENGINES = ("spark", "duckdb")
#: sqlmpc's secure part computes in fixed point with 32 fractional bits (SecFxp(96, 32)):
#: revenue shares (0..100) squared and summed agree with the engines' doubles to ~1e-8 relative.
HHI_RTOL = 1e-6


class BenchError(Exception):
    """A failed run or a disagreement, reported as one line."""


def log(msg: str) -> None:
    print(f"[taxi_hhi {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
