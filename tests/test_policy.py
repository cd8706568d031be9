"""Owners' policies ([policy.OWNER] in the catalog): what a query reveals of each owner's columns,
derived from the optimised plan (compiler/analyses/policy.py), allowed or refused at compile
time with one line naming the owner, the column, the rule and the place in the SQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmpc.compiler.analyses.policy import AGGREGATE, AS_IS, COMPARE, derive
from sqlmpc.compiler.catalog import Catalog
from sqlmpc.compiler.errors import CatalogError, PolicyError
from sqlmpc.compiler.frontend import lower_sql
from sqlmpc.compiler.ir.dag import Filter
from sqlmpc.compiler.passes import optimize
from sqlmpc.compiler.planner import compile_query
from sqlmpc.runtime import cli
from sqlmpc.runtime.agent.plan_check import PlanChecker
from sqlmpc.runtime.config import compile_plan, explain_plan

BASE = """\
[parties.bank_a]
[parties.bank_b]
[parties.regulator]
[parties.press]

[tables.accounts]
columns = { branch = "text", amount = "decimal(12,2)", ssn = "text", memo = "text" }
parts = { bank_a = "a.csv", bank_b = "b.csv" }

[tables.people]
columns = { ssn = "text", age = "int" }
parts = { regulator = "p.csv" }
"""
TO_REGULATOR = '\n[result]\nrecipients = ["regulator"]\n'
# the example policy, without min_group
POLICY = """
[policy.bank_a]
recipients = ["regulator"]
[policy.bank_a.columns]
"accounts.branch" = "public"
"accounts.amount" = "aggregate"
"accounts.ssn"    = "join_key"
"accounts.memo"   = "none"
"""
WITH_MIN_GROUP = POLICY.replace('recipients = ["regulator"]\n',
                                'recipients = ["regulator"]\nmin_group = 5\n')


def catalog(tmp_path: Path, text: str) -> Catalog:
    path = tmp_path / "catalog.toml"
    path.write_text(text)
    return Catalog.load(path)


# --- the table: (query, the refusal's exact message or None when allowed) ---------------------
AMOUNT_ROWS = ('refused by bank_a\'s policy: accounts.amount may leave only inside aggregates '
               '("aggregate"); the query returns it row by row (line {at}); return an aggregate '
               'of it (e.g. SUM, AVG) instead, or ask bank_a to allow it in '
               '[policy.bank_a.columns]')
SSN = ('refused by bank_a\'s policy: accounts.ssn may only be compared, in joins, IN, GROUP BY '
       'and COUNT(DISTINCT), never returned ("join_key"); the query returns {how}(line {at}); '
       '{fix}, or ask bank_a to allow it in [policy.bank_a.columns]')
MEMO = ('refused by bank_a\'s policy: accounts.memo may not be read by any query ("none"); the '
        'query {how} (line {at}); remove it from the query, or ask bank_a to allow it in '
        '[policy.bank_a.columns]')
CASES = [
    # the acceptance queries
    ("SELECT branch, SUM(amount) FROM accounts GROUP BY branch", None),
    ("SELECT amount FROM accounts", AMOUNT_ROWS.format(at="1:8")),
    ("SELECT ssn, COUNT(*) FROM accounts GROUP BY ssn",
     SSN.format(how="it ", at="1:8", fix="compare it without returning it (drop it from SELECT)")),
    ("SELECT memo FROM accounts", MEMO.format(how="returns it", at="1:8")),
    ("SELECT COUNT(*) FROM accounts WHERE memo = 'x'", MEMO.format(how="reads it", at="1:37")),
    # aggregates, comparisons, joins and IN are allowed on "aggregate" and "join_key" columns
    ("SELECT AVG(amount), STDDEV_SAMP(amount) FROM accounts WHERE amount > 10", None),
    ("SELECT MIN(amount), MAX(amount), COUNT(*) FROM accounts", None),
    ("SELECT branch, SUM(amount) AS s FROM accounts GROUP BY branch HAVING SUM(amount) > 5",
     None),
    ("SELECT COUNT(*) FROM accounts GROUP BY ssn", None),
    ("SELECT COUNT(DISTINCT ssn) FROM accounts", None),
    ("SELECT p.age, SUM(a.amount) FROM accounts a JOIN people p ON a.ssn = p.ssn GROUP BY p.age",
     None),
    ("SELECT branch FROM accounts WHERE ssn IN (SELECT ssn FROM people)", None),
    ("SELECT branch, COUNT(*) FROM accounts GROUP BY branch ORDER BY COUNT(*) DESC LIMIT 2", None),
    # returned through an expression, an alias, on a later line, or as the order of the rows
    ("SELECT branch, amount * 2 AS x FROM accounts", AMOUNT_ROWS.format(at="1:16")),
    ("SELECT a.branch,\n       a.amount\nFROM accounts AS a", AMOUNT_ROWS.format(at="2:10")),
    ("SELECT branch FROM accounts ORDER BY amount", AMOUNT_ROWS.format(at="1:38")),
    ("SELECT SUM(amount) FROM accounts WHERE memo IS NULL", MEMO.format(how="reads it",
                                                                        at="1:40")),
    ("SELECT CASE WHEN memo = 'x' THEN 1 ELSE 0 END AS m FROM accounts",
     MEMO.format(how="returns it", at="1:18")),
    ("SELECT SUM(CASE WHEN memo = 'x' THEN 1 ELSE 0 END) AS m FROM accounts",
     MEMO.format(how="returns an aggregate of it", at="1:22")),
    ("SELECT MAX(ssn) FROM accounts",
     SSN.format(how="an aggregate of it ", at="1:12",
                fix="compare it without returning it (e.g. COUNT(DISTINCT ...))")),
    # bank_b set no policy: its rows are not restricted, bank_a's still are
    ("SELECT memo FROM bank_b.accounts", None),
    ("SELECT age FROM people", None),
]


@pytest.mark.parametrize("sql,refusal", CASES, ids=[c[0][:60] for c in CASES])
def test_policy_table(tmp_path, sql, refusal):
    cat = catalog(tmp_path, BASE + TO_REGULATOR + POLICY)
    if refusal is None:
        plan = compile_query(sql, cat)
        (verdict,) = [v for v in plan.dag.g.graph["policies"] if v["owner"] == "bank_a"]
        assert verdict["policy"] and verdict["allowed"]
        return
    with pytest.raises(PolicyError) as info:
        compile_query(sql, cat)
    assert str(info.value) == refusal
    assert "\n" not in str(info.value) and info.value.owner == "bank_a"


def test_star_is_refused_without_a_position(tmp_path):
    cat = catalog(tmp_path, BASE + TO_REGULATOR + POLICY)
    with pytest.raises(PolicyError, match=r"accounts\.amount may leave only inside aggregates "
                                          r"\(\"aggregate\"\); the query returns it row by row; "):
        compile_query("SELECT * FROM accounts", cat)


def test_recipients_outside_the_policy_are_refused(tmp_path):
    cat = catalog(tmp_path, BASE + '\n[result]\nrecipients = ["regulator", "press"]\n' + POLICY)
    with pytest.raises(PolicyError) as info:
        compile_query("SELECT branch, SUM(amount) FROM accounts GROUP BY branch", cat)
    assert str(info.value) == (
        "refused by bank_a's policy: the result goes to press, but bank_a lets only regulator "
        "receive results computed from its rows (recipients); name recipients among them in "
        "[result], or ask bank_a to add press to [policy.bank_a] recipients")
    # default recipients (every party) are outside too; a query not reading bank_a's rows is not
    with pytest.raises(PolicyError, match="the result goes to bank_b, press, but bank_a lets"):
        compile_query("SELECT COUNT(*) FROM accounts", catalog(tmp_path, BASE + POLICY))
    compile_query("SELECT COUNT(*) FROM bank_b.accounts", catalog(tmp_path, BASE + POLICY))


def test_a_result_for_the_owner_alone_is_not_restricted(tmp_path):
    cat = catalog(tmp_path, BASE + '\n[result]\nrecipients = ["bank_a"]\n' + POLICY)
    plan = compile_query("SELECT memo, amount FROM bank_a.accounts", cat)
    assert not plan.needs_mpc


def _refused_min_group(why: str) -> str:
    return (f"refused by bank_a's policy: min_group = 5 lets an aggregate reveal only groups of "
            f"none or at least 5 of bank_a's rows, and this query passes bank_a's rows through "
            f"{why}, so they cannot be counted; aggregate bank_a's rows before that step, or ask "
            f"bank_a to remove min_group")


@pytest.mark.parametrize("sql", [
    "SELECT branch, SUM(amount) FROM accounts GROUP BY branch",
    "SELECT SUM(amount) FROM accounts",
    "SELECT COUNT(*) FROM accounts",
    "SELECT branch FROM accounts GROUP BY branch",
    "SELECT branch, AVG(amount) AS a FROM accounts GROUP BY branch HAVING COUNT(*) > 2",
    # a nested aggregate: the inner groups' counts add up in the outer one
    "SELECT SUM(s) FROM (SELECT branch, SUM(amount) AS s FROM accounts GROUP BY branch) t",
])
def test_min_group_suppresses_small_groups(tmp_path, sql):
    cat = catalog(tmp_path, BASE + TO_REGULATOR + WITH_MIN_GROUP)
    plan = compile_query(sql, cat)
    dag = plan.dag
    assert dag.g.graph["min_group"] == {"bank_a": 5}
    filters = [dag.op(n).predicate.sql() for n in dag.g if isinstance(dag.op(n), Filter)]
    assert '"__rows_bank_a" = 0 OR "__rows_bank_a" >= 5' in filters
    assert not [f for f in dag.schema(dag.root) if f.name.startswith("__rows_")]
    (verdict,) = [v for v in dag.g.graph["policies"] if v["owner"] == "bank_a"]
    assert verdict["min_group"] == 5


@pytest.mark.parametrize("sql, why", [
    # people is not unique on ssn: one row of bank_a could count several times
    ("SELECT p.age, COUNT(*) FROM accounts a JOIN people p ON a.ssn = p.ssn GROUP BY p.age",
     "a join that may repeat its rows (neither side is unique on the join keys)"),
    ("SELECT DISTINCT branch FROM (SELECT branch, amount FROM accounts) t",
     "a SELECT DISTINCT over its rows"),
])
def test_min_group_refuses_what_it_cannot_count(tmp_path, sql, why):
    cat = catalog(tmp_path, BASE + TO_REGULATOR + WITH_MIN_GROUP)
    with pytest.raises(PolicyError) as info:
        compile_query(sql, cat)
    assert str(info.value) == _refused_min_group(why)


def test_min_group_counts_through_a_join_that_does_not_repeat_rows(tmp_path):
    unique_people = BASE.replace('parts = { regulator = "p.csv" }',
                                 'parts = { regulator = "p.csv" }\nprimary_key = ["ssn"]')
    cat = catalog(tmp_path, unique_people + TO_REGULATOR + WITH_MIN_GROUP)
    plan = compile_query("SELECT p.age, COUNT(*) FROM accounts a JOIN people p "
                         "ON a.ssn = p.ssn GROUP BY p.age", cat)
    assert plan.dag.g.graph["min_group"] == {"bank_a": 5}


def test_min_group_allows_what_aggregates_none_of_the_owners_rows(tmp_path):
    cat = catalog(tmp_path, BASE + TO_REGULATOR + WITH_MIN_GROUP)
    plan = compile_query("SELECT branch FROM accounts", cat)    # public, row by row: no group
    assert plan.dag.g.graph["min_group"] == {}
    plan = compile_query("SELECT SUM(amount) FROM bank_b.accounts", cat)
    assert "min_group" not in plan.dag.g.graph or plan.dag.g.graph["min_group"] == {}


# --- the derivation alone -----------------------------------------------------------------------
def _use(tmp_path, sql):
    cat = catalog(tmp_path, BASE + TO_REGULATOR)
    return derive(optimize(lower_sql(sql, cat), catalog=cat))


def test_derivation_per_owner_and_column(tmp_path):
    use = _use(tmp_path, "SELECT a.branch, SUM(a.amount) AS s FROM accounts a JOIN people p "
                         "ON a.ssn = p.ssn WHERE p.age > 30 GROUP BY a.branch")
    expected = {}
    for bank in ("bank_a", "bank_b"):
        expected |= {(bank, "accounts", "branch"): AS_IS, (bank, "accounts", "amount"): AGGREGATE,
                     (bank, "accounts", "ssn"): COMPARE}
    expected |= {("regulator", "people", "ssn"): COMPARE, ("regulator", "people", "age"): COMPARE}
    assert use.columns == expected
    assert use.owners == {"bank_a", "bank_b", "regulator"}
    assert use.grouped == {"bank_a", "bank_b", "regulator"}
    assert use.recipients == ("regulator",)


def test_derivation_without_aggregates_groups_nothing(tmp_path):
    use = _use(tmp_path, "SELECT branch FROM accounts WHERE amount > 3")
    assert use.grouped == set()
    assert use.columns[("bank_a", "accounts", "amount")] == COMPARE
    assert use.columns[("bank_a", "accounts", "branch")] == AS_IS
    assert ("bank_a", "accounts", "memo") not in use.columns


# --- sizes: what the plan shows of an owner's row counts besides the result ------------------
SIZES_BASE = BASE.replace('memo = "text" }', 'memo = "text", n = "int" }') + """
[tables.loans]
columns = { ssn = "text", n = "int" }
parts = { bank_b = "l.csv" }
"""
SIZES_POLICY = POLICY + '"accounts.n" = "public"\n'


def _sizes_catalog(tmp_path: Path, sizes: str, pad_rows: bool = False) -> Catalog:
    text = SIZES_BASE
    if pad_rows:
        text = text.replace('parts = { bank_a = "a.csv", bank_b = "b.csv" }',
                            'parts = { bank_a = "a.csv", bank_b = "b.csv" }\npad_rows = 1000')
    policy = SIZES_POLICY.replace('recipients = ["regulator"]\n',
                                  f'recipients = ["regulator"]\nsizes = "{sizes}"\n')
    return catalog(tmp_path, text + TO_REGULATOR + policy)


SHARE_SUM = "SELECT n, COUNT(*) FROM accounts GROUP BY n"  # bank_a shares its groups
M_TO_M = ("SELECT SUM(a.n) FROM accounts a JOIN loans l ON a.ssn = l.ssn")  # neither side unique
ROUNDED = ('refused by bank_a\'s policy: sizes = "rounded" lets the compute parties learn the '
           'number of its shared rows only rounded up to a power of two (or padded to a public '
           'bound) and no join size, but ')
HIDDEN = ('refused by bank_a\'s policy: sizes = "hidden" lets the compute parties learn nothing '
          'of its row counts beyond public bounds (pad_rows, declared domains), but ')


@pytest.mark.parametrize("sizes,sql,options,refusal", [
    ("shown", SHARE_SUM, {}, None),
    ("shown", M_TO_M, {}, None),
    ("rounded", SHARE_SUM, {}, ROUNDED + "this plan shares bank_a's rows of accounts with their "
     "exact count; run with --pad-inputs pow2, or declare pad_rows on accounts, or ask bank_a "
     "to set sizes = \"shown\" in [policy.bank_a]"),
    ("rounded", SHARE_SUM, {"pad_inputs": "pow2"}, None),
    ("rounded", M_TO_M, {"pad_inputs": "pow2"}, ROUNDED + "the secure join on (ssn) reveals "
     "its number of joined rows, which depends on bank_a's rows; run with --join-bound N (a "
     "public bound: only whether the join fits is revealed), or ask bank_a to set sizes = "
     "\"shown\" in [policy.bank_a]"),
    ("rounded", M_TO_M, {"pad_inputs": "pow2", "join_bound": 500}, None),
    ("hidden", SHARE_SUM, {"pad_inputs": "pow2"}, HIDDEN + "this plan shares bank_a's rows of "
     "accounts with their rounded count; declare pad_rows (a public bound on each part's rows) "
     "on accounts, or domains for the columns it groups by, or ask bank_a to set sizes = \"shown\" in [policy.bank_a]"),
    ("hidden", "SELECT COUNT(*) FROM accounts", {}, None),   # one row: its count says nothing
])
def test_sizes_policy(tmp_path, sizes, sql, options, refusal):
    cat = _sizes_catalog(tmp_path, sizes)
    if refusal is None:
        assert compile_query(sql, cat, **options).needs_mpc
    else:
        with pytest.raises(PolicyError) as info:
            compile_query(sql, cat, **options)
        assert str(info.value) == refusal


def test_hidden_sizes_allow_a_declared_bound_and_refuse_text_lengths(tmp_path):
    cat = _sizes_catalog(tmp_path, "hidden", pad_rows=True)
    plan = compile_query(SHARE_SUM, cat)
    (share,) = [o for o in plan.local_jobs["bank_a"].outputs if o.kind == "share"]
    assert share.pad == 1000
    with pytest.raises(PolicyError, match=r"but sharing bank_a's secret text ssn shows how long "
                                          r"the longest is \(in 7-byte pieces\); leave text columns out of what crosses, or ask "
                                          r"bank_a to set sizes = \"rounded\" in"):
        compile_query("SELECT COUNT(*) FROM accounts a WHERE a.ssn IN "
                      "(SELECT ssn FROM loans)", cat)


def test_a_text_piece_holds_what_the_compiler_assumes():
    from sqlmpc.backends.mpyc.lib.encoding import MAX_TEXT_BYTES
    from sqlmpc.compiler.analyses.padding import TEXT_PIECE_BYTES
    assert TEXT_PIECE_BYTES == MAX_TEXT_BYTES


def test_keys_grouped_in_the_clear_show_the_count(tmp_path):
    """n is public to everyone ("*" in trust): the plan groups by its clear values, one per
    shared row; "rounded" refuses that and says how to avoid it."""
    cat = _sizes_catalog(tmp_path, "rounded")
    path = tmp_path / "catalog.toml"
    path.write_text(path.read_text().replace(
        'parts = { bank_a = "a.csv", bank_b = "b.csv" }',
        'parts = { bank_a = "a.csv", bank_b = "b.csv" }\n[tables.accounts.trust]\nn = "*"'))
    cat = Catalog.load(path)
    sql = "SELECT n, COUNT(*) FROM accounts GROUP BY n"
    with pytest.raises(PolicyError, match=r"but this plan sends bank_a's values of n in the clear"
                                          r" to group by them, one per shared row, which shows "
                                          r"their number; run with --disable use_public_keys"):
        compile_query(sql, cat, pad_inputs="pow2")
    assert compile_query(sql, cat, pad_inputs="pow2", disable=("use_public_keys",)).needs_mpc


def test_explain_states_each_owners_sizes(tmp_path):
    cat = _sizes_catalog(tmp_path, "rounded")
    text = explain_plan(compile_plan(SHARE_SUM, cat, pad_inputs="pow2"), cat)
    assert ('bank_a\'s sizes = "rounded": the compute parties learn the number of bank_a\'s '
            'shared rows at most rounded up to a power of two, and no join size') in text


def test_an_agent_refuses_sizes_its_own_policy_hides(tmp_path):
    client = _sizes_catalog(tmp_path, "shown")
    compile_plan(SHARE_SUM, client)
    own = tmp_path / "bank_a"
    own.mkdir()
    (own / "catalog.toml").write_text(
        (tmp_path / "catalog.toml").read_text().replace('sizes = "shown"', 'sizes = "rounded"'))
    checker = PlanChecker("bank_a", Catalog.load(own / "catalog.toml"), own / "catalog.toml")
    with pytest.raises(PolicyError, match=r'^refused by bank_a\'s policy: sizes = "rounded"'):
        checker.own_plan(SHARE_SUM, {})


# --- explain, the command line and the agents ----------------------------------------------------
def test_explain_says_each_owners_verdict(tmp_path):
    cat = catalog(tmp_path, BASE + TO_REGULATOR + POLICY)
    plan = compile_plan("SELECT branch, SUM(amount) FROM accounts GROUP BY branch", cat)
    text = explain_plan(plan, cat)
    assert text.endswith(
        "Owners' policies:\n"
        "  - bank_a's policy: allows this query (columns used: accounts.amount in aggregates "
        "(aggregate), accounts.branch as is (public))\n"
        "  - bank_a's sizes = \"shown\": the compute parties may learn how many of bank_a's "
        "rows are shared and the size of a secure join over them (the leak list says which)\n"
        "  - bank_b has set no policy\n"
        "  - regulator has set no policy")
    doc = json.loads(explain_plan(plan, cat, "json"))
    assert [(v["owner"], v["policy"], v["allowed"]) for v in doc["policies"]] == [
        ("bank_a", True, True), ("bank_b", False, True), ("regulator", False, True)]


def test_cli_refusal_is_one_line_and_a_caret(tmp_path, capsys):
    (tmp_path / "catalog.toml").write_text(BASE + TO_REGULATOR + POLICY)
    (tmp_path / "q.sql").write_text("SELECT amount FROM accounts")
    for command in ("explain", "compile"):
        extra = ["--out", str(tmp_path / "out")] if command == "compile" else []
        rc = cli.main([command, str(tmp_path / "q.sql"), "--catalog",
                       str(tmp_path / "catalog.toml"), *extra])
        err = capsys.readouterr().err
        assert rc != 0 and "Traceback" not in err
        message, snippet, caret = err.rstrip("\n").split("\n")
        assert message == "sqlmpc: error: " + AMOUNT_ROWS.format(at="1:8")
        assert snippet == "  SELECT amount FROM accounts" and caret == "         ^"


def test_an_agent_refuses_what_its_own_policy_forbids(tmp_path):
    """The client's catalog has no policy and compiles; bank_a's agent compiles from its own
    copy, which has one, and refuses."""
    client = catalog(tmp_path, BASE + TO_REGULATOR)
    sql = "SELECT amount FROM accounts"
    compile_plan(sql, client)
    own = tmp_path / "bank_a"
    own.mkdir()
    (own / "catalog.toml").write_text(BASE + TO_REGULATOR + POLICY)
    checker = PlanChecker("bank_a", Catalog.load(own / "catalog.toml"), own / "catalog.toml")
    with pytest.raises(PolicyError, match=r"^refused by bank_a's policy: accounts\.amount"):
        checker.own_plan(sql, {})


# --- the catalog section ------------------------------------------------------------------------
def test_policy_section_is_read(tmp_path):
    cat = catalog(tmp_path, BASE + WITH_MIN_GROUP.replace('"accounts.memo"   = "none"\n',
                                                          'accounts.memo = "none"\n'))
    policy = cat.policies["bank_a"]
    assert policy.recipients == ("regulator",) and policy.min_group == 5
    assert policy.level("accounts", "amount") == "aggregate"
    assert policy.level("accounts", "memo") == "none"
    assert policy.level("people", "age") == "none"   # not listed: denied
    assert set(cat.policies) == {"bank_a"}


POLICY_ERRORS = {
    "unknown owner": ('[policy.nobody]\nrecipients = ["regulator"]\n', "[policy.nobody]",
                      "unknown party 'nobody'"),
    "owner without data": ('[policy.press]\nrecipients = ["regulator"]\n', "[policy.press]",
                           "press holds no part of any table, so it has no data to set a "
                           "policy for"),
    "no recipients": ("[policy.bank_a]\nmin_group = 5\n", "[policy.bank_a] recipients",
                      "must be a non-empty list of the parties that may receive results "
                      "computed from bank_a's rows"),
    "unknown recipient": ('[policy.bank_a]\nrecipients = ["nobody"]\n',
                          "[policy.bank_a] recipients", "unknown party 'nobody'"),
    "bad min_group": ('[policy.bank_a]\nrecipients = ["regulator"]\nmin_group = 0\n',
                      "[policy.bank_a] min_group", "must be an integer >= 1 (the fewest of "
                      "bank_a's rows a revealed group may aggregate), got 0"),
    "unknown key": ('[policy.bank_a]\nrecipients = ["regulator"]\nmin_rows = 5\n',
                    "[policy.bank_a]", "unknown key 'min_rows' (allowed: columns, min_group, "
                    "recipients, sizes)"),
    "unknown sizes": ('[policy.bank_a]\nrecipients = ["regulator"]\nsizes = "padded"\n',
                      "[policy.bank_a] sizes", "must be one of 'shown', 'rounded', 'hidden' "
                      "(what the compute parties may learn of bank_a's row counts), got "
                      "'padded'"),
    "column without table": ('[policy.bank_a]\nrecipients = ["regulator"]\n'
                             '[policy.bank_a.columns]\namount = "public"\n',
                             "[policy.bank_a.columns]",
                             "'amount' must name a column as \"table.column\""),
    "unknown table": ('[policy.bank_a]\nrecipients = ["regulator"]\n'
                      '[policy.bank_a.columns]\n"acounts.amount" = "public"\n',
                      "[policy.bank_a.columns] acounts.amount", "unknown table 'acounts'"),
    "unknown column": ('[policy.bank_a]\nrecipients = ["regulator"]\n'
                       '[policy.bank_a.columns]\n"accounts.amt" = "public"\n',
                       "[policy.bank_a.columns] accounts.amt",
                       "unknown column 'amt' of accounts"),
    "a table the owner does not hold": ('[policy.bank_a]\nrecipients = ["regulator"]\n'
                                        '[policy.bank_a.columns]\n"people.age" = "public"\n',
                                        "[policy.bank_a.columns] people.age",
                                        "bank_a holds no part of people"),
    "unknown level": ('[policy.bank_a]\nrecipients = ["regulator"]\n'
                      '[policy.bank_a.columns]\n"accounts.amount" = "aggregated"\n',
                      "[policy.bank_a.columns] accounts.amount",
                      "must be one of 'public', 'aggregate', 'join_key', 'none', got "
                      "'aggregated'"),
}


@pytest.mark.parametrize("section,where,problem", POLICY_ERRORS.values(), ids=list(POLICY_ERRORS))
def test_policy_section_errors(tmp_path, section, where, problem):
    with pytest.raises(CatalogError) as info:
        catalog(tmp_path, BASE + section)
    assert str(info.value) == f"catalog error: {tmp_path / 'catalog.toml'}: {where}: {problem}"


def test_a_policy_bounds_the_owners_trust_entries():
    """trust lets the regulator see distance in the clear; yellow's policy says "aggregate":
    the policy wins, for yellow's part only (green has no policy)."""
    cat = Catalog.load(Path(__file__).parent / "fixtures" / "tiny" / "catalog_min_group.toml")
    assert cat.column_trust("trips", "distance", "yellow") == frozenset({"yellow"})
    assert "regulator" in cat.column_trust("trips", "distance", "green")
    assert "regulator" in cat.column_trust("trips", "vendor", "yellow")  # "public" and "*"
