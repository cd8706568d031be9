"""Shared fixtures: the generated test data sets and a plaintext DuckDB reference engine.

`pytest -m "not slow"` runs only the fast tests (the `slow` marker, declared in pyproject.toml,
marks every test that starts party processes). `--run-spark` is not needed: Spark cases are
`slow` like every multi-process run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlmpc.runtime.engines.reference import (  # noqa: F401 -- tests import these from here
    FLOAT_ABS_TOL, FLOAT_REL_TOL, assert_same_result, duck_type as _duck_type, duckdb_reference,
    normalize as _norm, reference_connection)


@pytest.fixture(scope="session")
def datasets(tmp_path_factory) -> dict[str, Path]:
    """{"taxi": catalog path, "medical": ..., "pay": ...}, generated once per session."""
    from sqlmpc.datasets.testdata import generate_all
    return generate_all(tmp_path_factory.mktemp("testdata"))


@pytest.fixture
def reference():
    return duckdb_reference


@pytest.fixture
def same_result():
    return assert_same_result
