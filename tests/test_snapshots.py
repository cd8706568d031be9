"""Snapshots of every generated program: a change to code generation shows as a diff.

For each example workflow (examples/<name>/query.sql + catalog.toml) the programs an auditor
reads before running them are rendered: each data owner's local job on its catalog engine
and on every other engine, and the one secure job. They are compared with
tests/snapshots/<example>/<file>; the repository's path is written as <REPO> so the snapshots
do not depend on where the clone lives. Regenerate with SQLMPC_UPDATE_SNAPSHOTS=1 and review
the diff like any other code change.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sqlmpc.backends import LOCAL_ENGINES, local_engine, secure_backend
from sqlmpc.runtime.config import compile_plan, load_catalog

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = ROOT / "examples"
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
UPDATE = bool(os.environ.get("SQLMPC_UPDATE_SNAPSHOTS"))
EXAMPLES = sorted(p.name for p in EXAMPLES_DIR.iterdir()
                  if (p / "query.sql").is_file() and (p / "catalog.toml").is_file())


def rendered_programs(name: str) -> dict[str, str]:
    """{snapshot file name: program text} for one example."""
    folder = EXAMPLES_DIR / name
    catalog = load_catalog(folder / "catalog.toml")
    plan = compile_plan((folder / "query.sql").read_text(), catalog)
    programs = {}
    for party, job in plan.local_jobs.items():
        for engine in LOCAL_ENGINES:
            program = local_engine(engine).render(job)
            programs[f"{party}.{engine}.{program.name}"] = program.text
    if plan.needs_mpc:
        program = secure_backend().render(plan)
        programs[program.name] = program.text
    return {k: v.replace(str(ROOT), "<REPO>") for k, v in programs.items()}


@pytest.mark.parametrize("name", EXAMPLES)
def test_generated_programs_match_snapshots(name: str) -> None:
    programs = rendered_programs(name)
    folder = SNAPSHOTS / name
    if UPDATE:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            if old.name not in programs:
                old.unlink()
        for file, text in programs.items():
            (folder / file).write_text(text)
    stored = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    assert stored == sorted(programs), (f"programs of {name} differ from tests/snapshots/{name}"
                                        f" (SQLMPC_UPDATE_SNAPSHOTS=1 regenerates them)")
    for file, text in programs.items():
        expected = (folder / file).read_text()
        assert text == expected, (f"{name}/{file} differs from its snapshot; review the change "
                                  f"and regenerate with SQLMPC_UPDATE_SNAPSHOTS=1")


def test_every_snapshot_folder_is_an_example() -> None:
    if SNAPSHOTS.is_dir():
        assert sorted(p.name for p in SNAPSHOTS.iterdir()) == EXAMPLES
