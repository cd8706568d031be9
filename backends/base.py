"""What a backend is: the two protocols the runtime and explain rely on.

A *local engine* renders a party's local job (compiler/ir/plan.py `LocalJob`) into a program
that party's auditor can read before it runs: the job's data (its files, column types, checks
and queries in the engine's SQL dialect) plus one call into the engine's fixed, importable job
module, its *jobkit* (backends/<engine>/jobkit.py). Every rendered program binds PARTY, INPUTS
and OUTPUTS (backends/local_program.py) and runs standalone as
`python local_job_<party>.py --out DIR`, writing DIR/<node>.parquet. The runtime
(runtime/engines/) decides how and where the program runs: an engine without a runner module
of its own there is run in the party's process through its jobkit's

    run_job(PARTY, INPUTS, OUTPUTS, *, con=None) -> {node: pyarrow.Table}

(`con`: a connection the caller opened with the jobkit's `connect()` and may interrupt).

The *secure backend* renders the secure part of a plan into one program for all compute
parties and describes, operator by operator, the algorithm it uses and what it reveals, which
`explain` prints instead of keeping its own copy.

Backends render and describe; they never start processes, open sockets or threads, or `exec`
(tests/test_layers.py). A jobkit is the code a program runs at the party: it may import its
engine's library (which opens the engine's own connections), nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlmpc.compiler.ir.dag import Dag
    from sqlmpc.compiler.ir.plan import LocalJob, Plan


@dataclass(frozen=True)
class RenderedProgram:
    """A generated program: its file name and its text."""

    name: str
    text: str


class LocalEngine(Protocol):
    """One local engine (Spark, DuckDB, ...): see the module docstring."""

    name: str            # the catalog's `engine = "..."` value
    dialect: str         # sqlglot's name of the engine's SQL dialect
    title: str           # how explain names it, e.g. "DuckDB, embedded"
    jobkit: str          # the module name of its fixed program code (see above)
    #: the keys a party's catalog section may set for this engine, each with a one-line help
    option_keys: Mapping[str, str]

    def check_option(self, key: str, value: object) -> str | None:
        """Why a party's catalog setting `key = value` is wrong for this engine, or None."""

    def unsupported(self, job: LocalJob) -> str | None:
        """Why this engine cannot run `job`, or None."""

    def render(self, job: LocalJob) -> RenderedProgram:
        """The auditable program of `job`."""

    def describe(self, options: Mapping[str, object]) -> str:
        """One line for explain: the engine and where it runs (from the party's settings)."""


@dataclass(frozen=True)
class OperatorDescription:
    """What the secure backend does for one operator, in words for explain."""

    how: str = ""       # the algorithm's tags as printed, e.g. "[secret keys: PK-FK sort join]"
    cost: str = ""      # the algorithm, its public output length and what it reveals
    # what the operator opens beyond its inputs' public lengths: (what, to whom) where whom is
    # "compute" (every compute party) or "nobody" (a note that nothing is revealed)
    reveals: list[tuple[str, str]] = field(default_factory=list)


#: labels(node, columns) -> the columns of `node` in readable words ("fare, sum(distance)")
Labels = Callable[[int, "list[str] | tuple[str, ...]"], str]


class SecureBackend(Protocol):
    """The MPC backend: renders the secure job and describes its operators."""

    name: str

    def unsupported(self, plan: Plan) -> str | None:
        """Why this backend cannot run the secure part of `plan`, or None."""

    def render(self, plan: Plan) -> RenderedProgram:
        """The one secure program every compute party runs."""

    def describe(self, dag: Dag, node: int, labels: Labels) -> OperatorDescription:
        """The algorithm and leakage of the secure operator `node`."""
