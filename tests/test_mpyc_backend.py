"""The MPC backend as a SecureBackend (backends/base.py): render, unsupported, describe; what
explain reads from it; and what a generated program loads."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sqlmpc.backends import secure_backend
from sqlmpc.backends.base import OperatorDescription, RenderedProgram
from sqlmpc.backends.mpyc import BACKEND
from sqlmpc.backends.mpyc.lib import limits
from sqlmpc.compiler.catalog import Catalog
from sqlmpc.compiler.errors import SqlmpcError
from sqlmpc.compiler.explain import explain, explain_text, revealed
from sqlmpc.compiler.analyses.labels import labels, names
from sqlmpc.compiler.ir.dag import Aggregate, Join, SemiJoin, Share
from sqlmpc.compiler.planner import compile_query

FIXTURES = Path(__file__).parent / "fixtures" / "tiny"
PKFK = "SELECT t.vendor, z.borough FROM trips t JOIN zones z ON t.zone = z.zone"
SUMS = "SELECT vendor, SUM(fare) AS s FROM trips GROUP BY vendor"


@pytest.fixture(scope="module")
def tiny() -> Catalog:
    return Catalog.load(FIXTURES / "catalog.toml")


def words(plan):
    lab = labels(plan.dag)
    return lambda node, columns: names(columns, lab[node])


def nodes(plan, kind) -> list[int]:
    return [n for n in plan.dag.topo() if isinstance(plan.dag.op(n), kind)
            and plan.dag.attr(n, "placement") == "secure"]


def test_the_registry_names_this_backend_and_it_renders_the_program(tiny):
    assert secure_backend() is BACKEND and BACKEND.name == "mpyc"
    program = BACKEND.render(compile_query(SUMS, tiny))
    assert isinstance(program, RenderedProgram) and program.name == "secure_job.py"
    ast.parse(program.text)
    assert "from sqlmpc.backends.mpyc import ops" in program.text


def test_unsupported_names_what_mpc_lacks(tiny):
    assert BACKEND.unsupported(compile_query(SUMS, tiny)) is None
    plan = compile_query("SELECT zone FROM trips GROUP BY zone HAVING ROUND(SUM(fare)) > 3", tiny)
    assert BACKEND.unsupported(plan) == "unsupported: ROUND inside MPC"


def test_describe_a_secret_join_and_a_group_by(tiny):
    plan = compile_query("SELECT t.vendor, t.fare FROM trips t JOIN trips u ON t.fare = u.fare",
                         tiny)
    (join,) = nodes(plan, Join)
    d = BACKEND.describe(plan.dag, join, words(plan))
    assert isinstance(d, OperatorDescription)
    assert d.how.startswith("[secret keys: sort-based many-to-many join, M revealed]")
    assert f"when that is at most {limits.NESTED_LOOP_MAX}: a nested loop" in d.cost
    ((what, whom),) = d.reveals
    assert whom == "compute" and what.startswith("the number of joined rows M of the join on")
    plan = compile_query("SELECT fare, COUNT(*) AS n FROM trips GROUP BY fare", tiny)
    agg = nodes(plan, Aggregate)[-1]
    d = BACKEND.describe(plan.dag, agg, words(plan))
    assert "[secret keys: oblivious sort and segmented sums]" in d.how
    assert d.cost.endswith("reveals nothing beyond public lengths") and d.reveals == []


def test_describe_a_share_reveals_its_text_lengths_only(tiny):
    plan = compile_query("SELECT vendor, COUNT(*) AS n FROM trips WHERE vendor <> 'x' "
                         "GROUP BY vendor", tiny)
    plan_all = compile_query("SELECT borough, SUM(fare) AS s FROM trips t JOIN zones z "
                             "ON t.zone = z.zone GROUP BY borough", tiny, all_secure=True)
    for p in (plan, plan_all):
        for share in nodes(p, Share):
            d = BACKEND.describe(p.dag, share, words(p))
            assert d.how == "" and d.cost == ""
            texts = [f.name for f in p.dag.schema(share) if f.sql_type == "text"
                     and f.name not in p.dag.op(share).public_columns]
            assert len(d.reveals) == (1 if texts else 0)
            for what, whom in d.reveals:
                assert whom == "compute" and "in 7-byte pieces" in what


def test_semi_join_description_uses_the_semi_join_threshold(tiny):
    plan = compile_query("SELECT vendor FROM trips WHERE fare IN (SELECT fare FROM trips "
                         "WHERE vendor = 'x')", tiny, all_secure=True)
    (semi,) = nodes(plan, SemiJoin)
    d = BACKEND.describe(plan.dag, semi, words(plan))
    assert f"at most {limits.SEMIJOIN_NESTED_LOOP_MAX})" in d.cost
    assert d.reveals and all(whom == "nobody" for _, whom in d.reveals)


def test_explain_needs_the_backend_for_a_plan_in_mpc(tiny):
    plan = compile_query(PKFK, tiny)
    assert plan.needs_mpc
    for call in (lambda: explain(plan), lambda: explain(plan, "json"),
                 lambda: explain_text(plan), lambda: revealed(plan)):
        with pytest.raises(SqlmpcError, match="needs the secure backend"):
            call()
    text = explain(plan, secure=BACKEND)
    (join,) = nodes(plan, Join)
    d = BACKEND.describe(plan.dag, join, words(plan))
    assert f" {d.how}\n         {d.cost}\n" in text  # the backend's words, as they are
    assert f"  - to yellow, green, regulator: {d.reveals[0][0]}\n" in text
    assert explain(plan, "dot").startswith("digraph plan")  # no operator leakage in a graph
    doc = json.loads(explain(plan, "json", secure=BACKEND))
    assert doc["revealed"] == revealed(plan, BACKEND)


def test_explain_of_a_plan_without_mpc_needs_no_backend(tiny):
    plan = compile_query("SELECT borough FROM zones", tiny)
    assert not plan.needs_mpc
    assert "no MPC needed" in explain(plan)


PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("secure_job", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps(sorted(sys.modules)))
"""


def loaded_by(code: str, *args: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         check=True, timeout=120)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def heavy(modules: set[str]) -> list[str]:
    """What a party's secure program must not load: pandas, sqlglot, networkx, jinja2, the
    runtime, and any of the compiler but its error types."""
    return sorted(m for m in modules
                  if m.split(".")[0] in ("pandas", "sqlglot", "networkx", "jinja2")
                  or m.startswith("sqlmpc.runtime")
                  or (m.startswith("sqlmpc.compiler.") and m != "sqlmpc.compiler.errors"))


def test_the_ops_facade_loads_only_numpy_mpyc_and_the_library():
    modules = loaded_by("import json, sys\nimport sqlmpc.backends.mpyc.ops\n"
                        "print(json.dumps(sorted(sys.modules)))")
    assert heavy(modules) == []
    assert "mpyc.runtime" in modules and "sqlmpc.backends.mpyc.lib.join" in modules


def test_a_generated_program_loads_only_numpy_mpyc_and_the_library(tiny, tmp_path):
    plan = compile_query("SELECT vendor, SUM(fare) / SUM(distance) AS r FROM trips "
                         "GROUP BY vendor ORDER BY r DESC LIMIT 3", tiny)
    program = BACKEND.render(plan).text
    tops = set()
    for node in ast.walk(ast.parse(program)):
        if isinstance(node, ast.Import):
            tops |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            tops.add(node.module)
    assert tops == {"argparse", "numpy", "mpyc.runtime", "sqlmpc.backends.mpyc"}
    path = tmp_path / "secure_job.py"
    path.write_text(program)
    assert heavy(loaded_by(PROBE, str(path))) == []


def test_describing_loads_no_mpyc():
    modules = loaded_by("import json, sys\nfrom sqlmpc.backends.mpyc import describe\n"
                        "print(json.dumps(sorted(sys.modules)))")
    assert not any(m.split(".")[0] == "mpyc" for m in modules)
