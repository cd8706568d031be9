"""The layers of sqlmpc, checked on the source: every module's imports, names and sizes.

    compiler/   SQL -> DAG -> passes -> plan; imports sqlglot, networkx, the standard library
                and itself; no backend, no runtime, and it names no engine
    backends/   render programs and describe operators (they import the compiler's ir only);
                never start processes, open sockets, start threads or exec
    backends/mpyc/lib/   the secure operators: import only each other, never the ops facade
    runtime/    entry points (party, launcher, agent server and client) share the lifecycle
                modules and never import each other; cli and api are the front
    everywhere  no import cycles, no other module's _private names, files <= 800 lines,
                functions <= 80 lines unless the docstring says "Long because ..."

Each rule is a function over a `Tree` (modules -> parsed source), so the rules are tested on
small trees that break them (the `test_rule_catches_*` tests) as well as on the real one.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_FILE_LINES = 800
MAX_FUNCTION_LINES = 80
LONG_REASON = "Long because"

ENGINE_NAMES = ("spark", "duckdb")  # tested below to be every registered engine
STDLIB = set(sys.stdlib_module_names) | {"__future__"}
COMPILER_LIBS = {"sqlglot", "networkx"}
#: what a backend's rendering code may import besides the standard library and the compiler's ir
BACKEND_LIBS = {"jinja2", "sqlglot", "numpy", "mpyc", "gmpy2", "pyarrow", "pandas"}
#: the compiler modules a backend may import (its intermediate representation)
COMPILER_FOR_BACKENDS = ("sqlmpc.compiler.ir", "sqlmpc.compiler.errors",
                         "sqlmpc.compiler.sqltypes", "sqlmpc.compiler.analyses")
#: modules that start processes, open sockets or start threads
SIDE_EFFECT_MODULES = {"subprocess", "socket", "threading", "multiprocessing", "socketserver",
                       "concurrent", "http", "ssl", "selectors", "asyncio.subprocess"}
SIDE_EFFECT_CALLS = {"exec", "eval", "compile", "__import__", "os.system", "os.popen",
                     "os.fork", "os.spawnl", "os.spawnv", "os.execv", "os.execve", "os.execl",
                     "os.posix_spawn", "create_connection", "start_new_thread"}
#: the code a generated program runs at the party (it drives its engine's library, which opens
#: the engine's own connections); its own imports are still checked
PROGRAM_SIDE = ("jobkit",)
RUNTIME_ENTRIES = ("sqlmpc.runtime.party", "sqlmpc.runtime.launcher",
                   "sqlmpc.runtime.agent.server", "sqlmpc.runtime.agent.client")
RUNTIME_FRONT = ("sqlmpc.runtime.cli", "sqlmpc.runtime.api", "sqlmpc.runtime.__main__",
                 "sqlmpc.runtime.agent.__main__", "sqlmpc.runtime.agent")


# --- the source tree -------------------------------------------------------------------------
@dataclass
class Module:
    name: str
    path: Path
    source: str
    tree: ast.Module = field(init=False)

    def __post_init__(self) -> None:
        self.tree = ast.parse(self.source, filename=str(self.path))

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


@dataclass
class Import:
    """One import statement's target, resolved to an absolute module name."""

    module: str          # the imported module (or the package the names come from)
    names: tuple[str, ...]
    line: int
    lazy: bool           # inside a function (still an import, still checked)


class Tree:
    """sqlmpc's modules by dotted name, from pyproject's package-dir mapping."""

    def __init__(self, modules: dict[str, Module]) -> None:
        self.modules = modules

    @classmethod
    def from_repo(cls, repo: Path = REPO) -> "Tree":
        config = tomllib.loads((repo / "pyproject.toml").read_text())
        package_dir = config["tool"]["setuptools"]["package-dir"]
        modules = {}
        for package, folder in package_dir.items():
            for path in sorted((repo / folder).glob("*.py")):
                name = package if path.name == "__init__.py" else f"{package}.{path.stem}"
                modules[name] = Module(name, path, path.read_text())
        return cls(modules)

    @classmethod
    def from_sources(cls, sources: dict[str, str]) -> "Tree":
        """A small tree for the rules' own tests: {"sqlmpc.compiler.x": "source", ...}; a
        name ending in ".__init__" is a package."""
        modules = {}
        for name, text in sources.items():
            real = name.removesuffix(".__init__")
            path = Path(*name.split(".")).with_suffix(".py")
            modules[real] = Module(real, path, text)
        return cls(modules)

    def imports(self, module: Module) -> list[Import]:
        found = []
        lazy_nodes = {id(n) for f in ast.walk(module.tree)
                      if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                      for n in ast.walk(f) if n is not f}
        for node in ast.walk(module.tree):
            lazy = id(node) in lazy_nodes
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found.append(Import(alias.name, (), node.lineno, lazy))
            elif isinstance(node, ast.ImportFrom):
                base = self._absolute(module, node)
                names = tuple(a.name for a in node.names)
                # `from pkg import submodule` imports the submodule
                subs = [n for n in names if f"{base}.{n}" in self.modules]
                for n in subs:
                    found.append(Import(f"{base}.{n}", (), node.lineno, lazy))
                rest = tuple(n for n in names if n not in subs)
                if rest or not subs:
                    found.append(Import(base, rest, node.lineno, lazy))
        return found

    def _absolute(self, module: Module, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        parts = module.name.split(".")
        package = parts if module.is_package else parts[:-1]
        base = package[:len(package) - node.level + 1]
        return ".".join(base + ([node.module] if node.module else []))

    def owner(self, name: str) -> str | None:
        """The module of this tree that `name` (a module or a name in it) refers to."""
        while name:
            if name in self.modules:
                return name
            name = name.rpartition(".")[0]
        return None

    def graph(self) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_nodes_from(self.modules)
        for m in self.modules.values():
            for imp in self.imports(m):
                target = self.owner(imp.module)
                if target and target != m.name:
                    g.add_edge(m.name, target, line=imp.line)
        return g


def _top(name: str) -> str:
    return name.split(".")[0]


def _in(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _where(m: Module, line: int) -> str:
    return f"{m.path}:{line}"


# --- the rules: each returns the list of violations, one line each ----------------------------
def compiler_imports(tree: Tree) -> list[str]:
    bad = []
    for m in tree.modules.values():
        if not _in(m.name, "sqlmpc.compiler"):
            continue
        for imp in tree.imports(m):
            top = _top(imp.module)
            if top == "sqlmpc":
                if not _in(imp.module, "sqlmpc.compiler"):
                    bad.append(f"{_where(m, imp.line)}: the compiler imports {imp.module}")
            elif top not in STDLIB and top not in COMPILER_LIBS:
                bad.append(f"{_where(m, imp.line)}: the compiler imports {imp.module}")
    return bad


def _code_names(m: Module) -> list[tuple[str, int]]:
    """Identifiers, attribute names and non-docstring string constants of a module."""
    docstrings = set()
    for node in ast.walk(m.tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    out = []
    for node in ast.walk(m.tree):
        if isinstance(node, ast.Name):
            out.append((node.id, node.lineno))
        elif isinstance(node, ast.Attribute):
            out.append((node.attr, node.lineno))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.append((node.name, node.lineno))
        elif isinstance(node, ast.arg):
            out.append((node.arg, node.lineno))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings:
            out.append((node.value, node.lineno))
    return out


def compiler_names_no_engine(tree: Tree, engines=ENGINE_NAMES) -> list[str]:
    bad = []
    for m in tree.modules.values():
        if not _in(m.name, "sqlmpc.compiler"):
            continue
        for text, line in _code_names(m):
            low = text.lower()
            for engine in engines:
                if engine in low:
                    bad.append(f"{_where(m, line)}: the compiler names the engine {engine!r} "
                               f"({text[:60]!r})")
    return bad


def backend_imports(tree: Tree) -> list[str]:
    bad = []
    for m in tree.modules.values():
        if not _in(m.name, "sqlmpc.backends"):
            continue
        program_side = m.name.rsplit(".", 1)[-1] in PROGRAM_SIDE
        engine = m.name.split(".")[2] if m.name.count(".") >= 2 else ""
        for imp in tree.imports(m):
            top = _top(imp.module)
            if top == "sqlmpc":
                ok = _in(imp.module, "sqlmpc.backends") or any(
                    _in(imp.module, p) for p in COMPILER_FOR_BACKENDS)
                if not ok:
                    bad.append(f"{_where(m, imp.line)}: a backend imports {imp.module}")
            elif imp.module in SIDE_EFFECT_MODULES or top in SIDE_EFFECT_MODULES:
                bad.append(f"{_where(m, imp.line)}: a backend imports {imp.module} (backends "
                           f"render and describe; the runtime starts and connects)")
            elif top not in STDLIB and top not in BACKEND_LIBS and not (
                    program_side and (top == engine or top == f"py{engine}")):
                bad.append(f"{_where(m, imp.line)}: a backend imports {imp.module}")
    return bad


def _call_name(node: ast.Call) -> str:
    f = node.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
        return f"{f.value.id}.{f.attr}"
    if isinstance(f, ast.Attribute):
        return f.attr
    return ""


def backend_side_effects(tree: Tree) -> list[str]:
    bad = []
    for m in tree.modules.values():
        if not _in(m.name, "sqlmpc.backends"):
            continue
        for node in ast.walk(m.tree):
            if isinstance(node, ast.Call):
                name = _call_name(node)
                if name in SIDE_EFFECT_CALLS or name.split(".")[-1] in (
                        "create_connection", "start_new_thread"):
                    bad.append(f"{_where(m, node.lineno)}: a backend calls {name}()")
    return bad


def mpyc_lib_imports(tree: Tree) -> list[str]:
    bad = []
    lib = "sqlmpc.backends.mpyc.lib"
    for m in tree.modules.values():
        if not _in(m.name, lib):
            continue
        for imp in tree.imports(m):
            if _top(imp.module) == "sqlmpc" and not _in(imp.module, lib) \
                    and imp.module != "sqlmpc.compiler.errors":
                bad.append(f"{_where(m, imp.line)}: the MPyC operator library imports "
                           f"{imp.module} (only its own modules)")
    return bad


def private_names(tree: Tree) -> list[str]:
    """No module uses another module's _private names (import or attribute)."""
    bad = []
    for m in tree.modules.values():
        aliases: dict[str, str] = {}
        for node in ast.walk(m.tree):
            if isinstance(node, ast.ImportFrom):
                base = tree._absolute(m, node)
                for a in node.names:
                    target = tree.owner(f"{base}.{a.name}") or tree.owner(base)
                    full = f"{base}.{a.name}"
                    if full in tree.modules:
                        aliases[a.asname or a.name] = full
                    elif target and target != m.name and a.name.startswith("_") \
                            and not a.name.startswith("__"):
                        bad.append(f"{_where(m, node.lineno)}: imports the private {a.name} "
                                   f"of {target}")
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if tree.owner(a.name) == a.name:
                        aliases[a.asname or a.name] = a.name
        for node in ast.walk(m.tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in aliases and node.attr.startswith("_") \
                    and not node.attr.startswith("__"):
                bad.append(f"{_where(m, node.lineno)}: uses the private {node.attr} of "
                           f"{aliases[node.value.id]}")
    return bad


def runtime_entries(tree: Tree) -> list[str]:
    bad = []
    entries = [e for e in RUNTIME_ENTRIES if e in tree.modules]
    for m in tree.modules.values():
        if not _in(m.name, "sqlmpc.runtime") or m.name in RUNTIME_FRONT:
            continue
        for imp in tree.imports(m):
            target = tree.owner(imp.module)
            if target in entries and target != m.name:
                role = "runtime entry point" if m.name in entries else "shared runtime module"
                bad.append(f"{_where(m, imp.line)}: the {role} {m.name} imports the entry "
                           f"point {target}")
            elif target in RUNTIME_FRONT and target != m.name:
                bad.append(f"{_where(m, imp.line)}: {m.name} imports the front {target}")
    return bad


def import_cycles(tree: Tree) -> list[str]:
    g = tree.graph()
    return [" -> ".join(c + [c[0]]) for c in nx.simple_cycles(g)][:20]


def sizes(tree: Tree) -> list[str]:
    bad = []
    for m in tree.modules.values():
        lines = m.source.count("\n")
        if lines > MAX_FILE_LINES:
            bad.append(f"{m.path}: {lines} lines (at most {MAX_FILE_LINES})")
        for node in ast.walk(m.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                doc = ast.get_docstring(node) or ""
                if length > MAX_FUNCTION_LINES and LONG_REASON not in doc:
                    bad.append(f"{_where(m, node.lineno)}: {node.name}() has {length} lines "
                               f"(at most {MAX_FUNCTION_LINES}, or say why: "
                               f"'{LONG_REASON} ...' in its docstring)")
    return bad


RULES = [compiler_imports, compiler_names_no_engine, backend_imports, backend_side_effects,
         mpyc_lib_imports, private_names, runtime_entries, import_cycles, sizes]


# --- the real tree -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def repo_tree() -> Tree:
    return Tree.from_repo()


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_layer_rule_holds(repo_tree: Tree, rule) -> None:
    violations = rule(repo_tree)
    assert not violations, "\n".join(violations)


def test_tree_covers_every_package() -> None:
    """Every folder with an __init__.py under the top-level folders is an installed package."""
    tree = Tree.from_repo()
    for top in ("compiler", "backends", "runtime", "datasets"):
        for init in (REPO / top).rglob("__init__.py"):
            name = "sqlmpc." + ".".join(init.parent.relative_to(REPO).parts)
            assert name in tree.modules, f"{init.parent} is not in pyproject's package-dir"


def test_engine_names_are_the_registered_engines() -> None:
    from sqlmpc.backends import LOCAL_ENGINES
    assert set(ENGINE_NAMES) == set(LOCAL_ENGINES)


# --- each rule fails when broken ---------------------------------------------------------------
BROKEN = {
    compiler_imports: {"sqlmpc.compiler.x": "from sqlmpc.runtime import api\n",
                       "sqlmpc.runtime.api": ""},
    compiler_names_no_engine: {"sqlmpc.compiler.x": "DIALECT = 'spark'\n"},
    backend_imports: {"sqlmpc.backends.x": "from ..runtime import launcher\n",
                      "sqlmpc.backends.__init__": "", "sqlmpc.runtime.launcher": ""},
    backend_side_effects: {"sqlmpc.backends.x": "def f(text):\n    exec(text)\n"},
    mpyc_lib_imports: {"sqlmpc.backends.mpyc.lib.join": "from .. import ops\n",
                       "sqlmpc.backends.mpyc.ops": "", "sqlmpc.backends.mpyc.__init__": "",
                       "sqlmpc.backends.mpyc.lib.__init__": ""},
    private_names: {"sqlmpc.backends.mpyc.lib.join": "from .radix import _split\n",
                    "sqlmpc.backends.mpyc.lib.radix": "def _split():\n    pass\n",
                    "sqlmpc.backends.mpyc.lib.__init__": ""},
    runtime_entries: {"sqlmpc.runtime.launcher": "from .party import main\n",
                      "sqlmpc.runtime.party": "def main():\n    pass\n",
                      "sqlmpc.runtime.__init__": ""},
    import_cycles: {"sqlmpc.compiler.a": "from . import b\n",
                    "sqlmpc.compiler.b": "def f():\n    from .a import g\n",
                    "sqlmpc.compiler.__init__": ""},
    sizes: {"sqlmpc.compiler.x": "def f():\n" + "    x = 1\n" * 90},
}


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_rule_catches_a_broken_tree(rule) -> None:
    assert rule(Tree.from_sources(BROKEN[rule])), f"{rule.__name__} missed its broken example"


def test_lazy_import_cycle_is_a_cycle() -> None:
    tree = Tree.from_sources(BROKEN[import_cycles])
    (cycle,) = import_cycles(tree)
    assert set(cycle.split(" -> ")) == {"sqlmpc.compiler.a", "sqlmpc.compiler.b"}


def test_long_function_with_a_reason_passes() -> None:
    body = "def f():\n    \"\"\"Long because it is one protocol.\"\"\"\n" + "    x = 1\n" * 90
    assert sizes(Tree.from_sources({"sqlmpc.compiler.x": body})) == []


def test_backend_may_use_engine_library_only_in_program_side_code() -> None:
    src = "import pyspark\n"
    assert backend_imports(Tree.from_sources({"sqlmpc.backends.spark.jobkit": src})) == []
    assert backend_imports(Tree.from_sources({"sqlmpc.backends.spark.codegen": src}))
    assert backend_imports(Tree.from_sources({"sqlmpc.backends.duckdb.jobkit": src}))
