"""Catalog loading and validation: every mistake names the file, the table/column and the problem;
trust "*" expansion, part paths relative to the catalog's folder, default recipients."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlmpc.compiler.catalog import Catalog, normalize_type
from sqlmpc.compiler.errors import CatalogError

GOOD = """
[parties.a]
[parties.b]
host = "10.0.0.2"
port = 9102
[parties.c]

[tables.t]
columns = { k = "int", v = "decimal(10,2)", s = "text" }
parts = { a = "a/t.csv", b = "/data/b/t.parquet" }

[tables.t.trust]
k = "*"
s = ["c"]
"""


def write(tmp_path: Path, text: str, name: str = "catalog.toml") -> Path:
    folder = tmp_path / "cat"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_good_catalog(tmp_path):
    cat = Catalog.load(write(tmp_path, GOOD))
    assert list(cat.parties) == ["a", "b", "c"]
    assert (cat.parties["b"].host, cat.parties["b"].port) == ("10.0.0.2", 9102)
    assert (cat.parties["a"].host, cat.parties["a"].port) == ("localhost", None)
    t = cat.tables["t"]
    assert {c: col.sql_type for c, col in t.columns.items()} == {
        "k": "int", "v": "decimal(10,2)", "s": "text"}
    assert cat.data_owners == ("a", "b")


def test_default_recipients_are_every_party_in_order(tmp_path):
    assert Catalog.load(write(tmp_path, GOOD)).recipients == ("a", "b", "c")


def test_declared_recipients(tmp_path):
    cat = Catalog.load(write(tmp_path, GOOD + '\n[result]\nrecipients = ["c", "a"]\n'))
    assert cat.recipients == ("c", "a")


def test_trust_star_means_every_party(tmp_path):
    cat = Catalog.load(write(tmp_path, GOOD))
    assert cat.column_trust("t", "k", "a") == frozenset({"a", "b", "c"})


def test_trust_list_adds_the_holder(tmp_path):
    cat = Catalog.load(write(tmp_path, GOOD))
    assert cat.column_trust("t", "s", "a") == frozenset({"a", "c"})
    assert cat.column_trust("t", "s", "b") == frozenset({"b", "c"})


def test_untrusted_column_is_visible_to_its_holder_only(tmp_path):
    cat = Catalog.load(write(tmp_path, GOOD))
    assert cat.column_trust("t", "v", "b") == frozenset({"b"})


def test_relative_part_paths_resolve_against_the_catalog_folder(tmp_path, monkeypatch):
    path = write(tmp_path, GOOD)
    monkeypatch.chdir(tmp_path)  # not the catalog's folder
    cat = Catalog.load(Path("cat") / "catalog.toml")
    assert cat.tables["t"].parts["a"] == (tmp_path / "cat" / "a" / "t.csv").resolve()
    assert cat.tables["t"].parts["b"] == Path("/data/b/t.parquet")
    assert cat.path == path.resolve()


def test_type_spellings_are_normalized(tmp_path):
    text = GOOD.replace('{ k = "int", v = "decimal(10,2)", s = "text" }',
                        '{ k = "BIGINT", v = "DECIMAL(10, 2)", s = "string" }')
    cols = Catalog.load(write(tmp_path, text)).tables["t"].columns
    assert [c.sql_type for c in cols.values()] == ["int", "decimal(10,2)", "text"]


@pytest.mark.parametrize("text,expected", [
    ("decimal(38,38)", "decimal(38,38)"), ("decimal(39,2)", None), ("decimal(5,6)", None),
    ("double", "float"), ("boolean", "bool"), ("date", "date"), ("timestamp", None), (3, None),
])
def test_normalize_type(text, expected):
    assert normalize_type(text) == expected


# --- every error names the file, where, and the problem -------------------------------------
def _replace(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


ERRORS = {
    "malformed TOML": (
        GOOD + "\n[tables.u\n", None,
        "malformed TOML: Expected ']' at the end of a table declaration (at line 16, column 10)"),
    "no parties": (
        GOOD.replace("[parties.a]\n[parties.b]\nhost = \"10.0.0.2\"\nport = 9102\n[parties.c]\n",
                     ""), "[parties]", "no parties declared (add a [parties.NAME] section)"),
    "unknown top-level key": (
        "colour = 1\n" + GOOD, "top level", "unknown key 'colour' (allowed: parties, result, "
                                             "tables)"),
    "bad party name": (
        _replace("[parties.c]", '[parties."c d"]'), "[parties.c d]",
        "a party name must be a plain identifier"),
    "port out of range": (
        _replace("port = 9102", "port = 70000"), "[parties.b]",
        "port must be an integer in 1..65535, got 70000"),
    "no tables": (
        GOOD[:GOOD.index("[tables.t]")], "[tables]",
        "no tables declared (add a [tables.NAME] section)"),
    "bad column type": (
        _replace('s = "text" }', 's = "varchar(20)" }'), "[tables.t] column 's'",
        "unknown type 'varchar(20)' (use int, decimal(p,s), float, text, date or bool)"),
    "duplicate column": (
        _replace('s = "text" }', 's = "text", K = "int" }'), "[tables.t] column 'K'",
        "duplicate column (same name as 'k'; names are case-insensitive)"),
    "empty columns": (
        _replace('columns = { k = "int", v = "decimal(10,2)", s = "text" }', "columns = {}"),
        "[tables.t] columns", 'missing or empty; write columns = { name = "type", ... }'),
    "part for an undeclared party": (
        _replace('b = "/data/b/t.parquet"', 'b = "/data/b/t.parquet", z = "z.csv"'),
        "[tables.t] parts", "part for undeclared party 'z' (declared: a, b, c)"),
    "unsupported part file type": (
        _replace('a = "a/t.csv"', 'a = "a/t.xlsx"'), "[tables.t] parts.a",
        "unsupported file type '.xlsx' (use .csv or .parquet)"),
    "trust for an unknown column": (
        _replace('k = "*"', 'x = "*"'), "[tables.t.trust]", "unknown column 'x'"),
    "trust for an unknown party": (
        _replace('s = ["c"]', 's = ["c", "q"]'), "[tables.t.trust] s", "unknown party 'q'"),
    "table named like a party": (
        GOOD.replace("[tables.t]", "[tables.a]").replace("[tables.t.trust]", "[tables.a.trust]"),
        "[tables.a]", "a table may not have the same name as a party"),
    "unknown recipient": (
        GOOD + '\n[result]\nrecipients = ["a", "nobody"]\n', "[result] recipients",
        "unknown party 'nobody'"),
    "recipient listed twice": (
        GOOD + '\n[result]\nrecipients = ["a", "a"]\n', "[result] recipients",
        "a party is listed twice"),
    "empty recipients": (
        GOOD + "\n[result]\nrecipients = []\n", "[result] recipients",
        "must be a non-empty list of party names"),
}


@pytest.mark.parametrize("text,where,problem", ERRORS.values(), ids=list(ERRORS))
def test_catalog_error_names_file_place_and_problem(text, where, problem, tmp_path):
    path = write(tmp_path, text)
    with pytest.raises(CatalogError) as info:
        Catalog.load(path)
    err = info.value
    location = f"{path}: {where}: " if where else f"{path}: "
    assert str(err).startswith(f"catalog error: {location}{problem}")
    assert "\n" not in str(err)
    assert (err.path, err.where) == (str(path), where)


def test_missing_catalog_file(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(CatalogError) as info:
        Catalog.load(missing)
    assert str(info.value) == f"catalog error: {missing}: file not found"


def test_the_tiny_test_catalog_loads():
    cat = Catalog.load(Path(__file__).parent / "fixtures" / "tiny" / "catalog.toml")
    assert cat.recipients == ("regulator",)
    assert all(p.exists() for t in cat.tables.values() for p in t.parts.values())
