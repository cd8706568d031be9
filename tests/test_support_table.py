"""The README's table of supported SQL is the one the probe queries give today."""

from __future__ import annotations

import tomllib

from support_table import PROBES, README, readme_table, table


def test_readme_table_is_generated_from_the_probes():
    assert readme_table(README.read_text()) == table(), \
        "README.md's support table is stale: run `python -m tests.support_table --write`"


def test_every_probe_names_a_construct_and_both_queries():
    probes = tomllib.loads(PROBES.read_text())["probe"]
    names = [p["construct"] for p in probes]
    assert len(names) == len(set(names))
    assert all(set(p) == {"construct", "local", "mpc"} for p in probes)
