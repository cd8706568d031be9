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
    # every catalog party, and "*": also a helper compute party the catalog does not list
    assert cat.column_trust("t", "k", "a") == frozenset({"a", "b", "c", "*"})


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
        "colour = 1\n" + GOOD, "top level", "unknown key 'colour' (allowed: deployment, "
                                             "parties, policy, result, tables)"),
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


# --- more sections: domains, keys, pad_rows ------------------------------------------------------
MORE_ERRORS = {
    "domain value of the wrong type": (
        GOOD + '\n[tables.t.domains]\nk = [1, "two"]\n', "[tables.t.domains] k",
        "value 'two' is not a int"),
    "domain value listed twice": (
        GOOD + '\n[tables.t.domains]\ns = ["x", "x"]\n', "[tables.t.domains] s",
        "value 'x' is listed twice"),
    "domain of an unknown column": (
        GOOD + '\n[tables.t.domains]\nq = [1]\n', "[tables.t.domains]", "unknown column 'q'"),
    "key of an unknown column": (
        _replace('[tables.t.trust]', 'primary_key = ["id"]\n\n[tables.t.trust]'),
        "[tables.t] primary_key", "unknown column 'id'"),
    "unique that is not a list of lists": (
        _replace('[tables.t.trust]', 'unique = ["k"]\n\n[tables.t.trust]'), "[tables.t] unique",
        "a key must be a non-empty list of column names, got 'k'"),
    "pad_rows not positive": (
        _replace('[tables.t.trust]', 'pad_rows = 0\n\n[tables.t.trust]'), "[tables.t] pad_rows",
        "must be a positive integer (a public upper bound on the rows of each part), got 0"),
    "engine that is not a name": (
        _replace("port = 9102", 'port = 9102\nengine = "spark 3"'), "[parties.b]",
        "engine must be an engine's name, got 'spark 3'"),
}


@pytest.mark.parametrize("text,where,problem", MORE_ERRORS.values(), ids=list(MORE_ERRORS))
def test_catalog_error_in_domains_keys_and_pad_rows(text, where, problem, tmp_path):
    path = write(tmp_path, text)
    with pytest.raises(CatalogError) as info:
        Catalog.load(path)
    assert str(info.value) == f"catalog error: {path}: {where}: {problem}"


def test_declared_domains_keys_and_bound(tmp_path):
    text = _replace('[tables.t.trust]', 'primary_key = ["k"]\nunique = [["s", "v"], ["k"]]\n'
                                        'pad_rows = 50\n\n[tables.t.trust]')
    cat = Catalog.load(write(tmp_path, text + '\n[tables.t.domains]\ns = ["x", "y"]\n'))
    table = cat.tables["t"]
    assert table.unique == (("k",), ("s", "v"))  # the repeated key once
    assert table.pad_rows == 50
    assert table.domains == {"s": ("x", "y")}


# --- engines: named, implied by a setting, or the default ----------------------------------------
ENGINE_KEYS = {"duckdb": (), "spark": ("spark_master",)}  # what the backends declare


def test_party_engine_named_implied_or_default(tmp_path):
    text = _replace("[parties.c]", '[parties.c]\nspark_master = "local[2]"').replace(
        "port = 9102", 'port = 9102\nengine = "duckdb"')
    cat = Catalog.load(write(tmp_path, text), engine_options=ENGINE_KEYS)
    assert cat.parties["a"].engine is None  # the default engine
    assert cat.parties["b"].engine == "duckdb"
    assert cat.parties["c"].engine == "spark"  # its setting is Spark's
    assert cat.parties["c"].option("spark_master") == "local[2]"


@pytest.mark.parametrize("section,problem", [
    ('engine = "duckdb"\nspark_master = "local[2]"',
     "unknown key 'spark_master' (allowed: host, port, engine, agent, analysts)"),
    ('engine = "flink"', "unknown engine 'flink' (engines: duckdb, spark)"),
    ('colour = "red"', "unknown key 'colour' (allowed: host, port, engine, agent, analysts, spark_master)"),
], ids=["another engine's key", "unknown engine", "nobody's key"])
def test_party_engine_errors(section, problem, tmp_path):
    path = write(tmp_path, _replace("[parties.c]", f"[parties.c]\n{section}"))
    with pytest.raises(CatalogError) as info:
        Catalog.load(path, engine_options=ENGINE_KEYS)
    assert str(info.value) == f"catalog error: {path}: [parties.c]: {problem}"


def test_without_the_engines_keys_other_party_keys_are_kept_unchecked(tmp_path):
    cat = Catalog.load(write(tmp_path, _replace("[parties.c]", '[parties.c]\ncolour = "red"')))
    assert cat.parties["c"].engine_options == (("colour", "red"),)


# --- docs/catalog.md says what the loader does ---------------------------------------------------
DOCS = Path(__file__).resolve().parents[1] / "docs" / "catalog.md"


def _docs_blocks(language: str) -> list[str]:
    """The fenced code blocks of docs/catalog.md in `language` ("" for plain ones)."""
    blocks, current, lang = [], None, ""
    for line in DOCS.read_text().splitlines(keepends=True):
        if current is None and line.startswith("```"):
            current, lang = [], line[3:].strip()
        elif current is not None and line.strip() == "```":
            if lang == language:
                blocks.append("".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def test_docs_example_catalog_loads_and_its_query_compiles(tmp_path):
    from sqlmpc.compiler.planner import compile_query
    from sqlmpc.runtime.config import load_catalog  # the engines' settings checked too

    (example,) = _docs_blocks("toml")
    cat = load_catalog(write(tmp_path, example))
    assert {p: cat.parties[p].engine for p in cat.parties} == {
        "yellow": "spark", "green": None, "regulator": None}
    (sql,) = _docs_blocks("sql")
    plan = compile_query(sql, cat)
    assert plan.recipients == ["regulator"]


def test_docs_error_examples_are_what_the_loader_says(tmp_path):
    """Each example line of the docs' error list comes from the catalog below it here, and the
    docs list no other: the reference cannot drift from the loader."""
    base = ('[parties.yellow]\n[parties.green]\n[parties.regulator]\n\n[tables.trips]\n'
            'columns = { vendor = "text", fare = "decimal(10,2)", pickup = "date" }\n'
            'parts = { yellow = "yellow/trips.csv", green = "green/trips.parquet" }\n')
    broken = {
        "file not found": None,
        "malformed TOML": "bad toml [[",
        "no parties declared": base[base.index("[tables"):],
        "port must be": base.replace("[parties.yellow]", "[parties.yellow]\nport = 0"),
        "unknown key 'spark_master'": base.replace(
            "[parties.yellow]", '[parties.yellow]\nengine = "duckdb"\nspark_master = "local[4]"'),
        "unknown type 'money'": base.replace('"decimal(10,2)"', '"money"'),
        "undeclared party 'blue'": base.replace('green = "green/trips.parquet"',
                                                'blue = "blue/trips.csv"'),
        "unsupported file type": base.replace("green/trips.parquet", "green/trips.txt"),
        "[tables.trips.trust]": base + '[tables.trips.trust]\nvendor = ["auditor"]\n',
        "value '2024-02-30'": base + '[tables.trips.domains]\npickup = ["2024-02-30"]\n',
        "pad_rows": base + "pad_rows = 0\n",
        "[result]": base + '[result]\nrecipients = ["auditor"]\n',
        "[policy.yellow.columns]": base + '[policy.yellow]\nrecipients = ["regulator"]\n'
                                          '[policy.yellow.columns]\n"trips.fare" = "secret"\n',
    }
    (listing,) = [b for b in _docs_blocks("") if b.startswith("catalog error: catalog.toml")]
    lines = listing.splitlines()
    assert len(lines) == len(broken)
    from sqlmpc.runtime.config import load_catalog

    for line in lines:
        (text,) = [t for marker, t in broken.items() if marker in line]
        path = tmp_path / "catalog.toml"
        path.unlink(missing_ok=True)
        if text is not None:
            path.write_text(text)
        with pytest.raises(CatalogError) as info:
            load_catalog(path)
        assert str(info.value).replace(str(path), "catalog.toml") == line
