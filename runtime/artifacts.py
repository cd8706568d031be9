"""A compiled plan's files, and the programs the parties run: rendered in one place.

    write_artifacts(plan, out, catalog)

    out/plan.json              the physical plan (local jobs, secure job, data edges, DAG)
    out/explain.txt            the plain-language explanation (each party's engine named)
    out/<party>/local_job.py   that party's local program, for its engine (reads only its parts)
    out/secure_job.py          the secure program every compute party runs

The runtime runs exactly these texts: a party renders its local program with its engine's
backend (`local_program`) and the secure program with the secure backend (`secure_program`),
so what an auditor reads in `out/` is what runs.
"""

from __future__ import annotations

from pathlib import Path

from ..backends.base import RenderedProgram
from ..compiler.catalog import Catalog
from ..compiler.errors import SqlmpcError
from ..compiler.ir.plan import LocalJob, Plan
from .kept import PerObject

#: file names in the plan folder (the engine's own name is used in a party's working folder)
LOCAL_PROGRAM = "local_job.py"
SECURE_PROGRAM = "secure_job.py"


#: rendered programs kept, by the plan or job they render (an agent's recurring query renders
#: once: for the taxi HHI about 6 ms for the secure program, 2 ms for a DuckDB local job)
PROGRAM_CACHE = 32
_programs = PerObject(PROGRAM_CACHE)


def local_program(job: LocalJob, engine: str | None) -> RenderedProgram:
    """The program of `job` for the local engine called `engine` (None: the default)."""
    from ..backends import local_engine
    backend = local_engine(engine)
    problem = backend.unsupported(job)
    if problem:
        raise SqlmpcError(f"party {job.party}: its engine {backend.name} cannot run its local "
                          f"job: {problem}")
    return _programs.get(job, backend.name, lambda: backend.render(job))


def secure_program(plan: Plan) -> RenderedProgram:
    """The one secure program of `plan`, from the secure backend."""
    from ..backends import secure_backend
    return _programs.get(plan, None, lambda: secure_backend().render(plan))


def write_artifacts(plan: Plan, out: Path, catalog: Catalog) -> list[Path]:
    """Write the plan, its explanation and every program into `out`; the files written."""
    from .config import explain_plan
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SqlmpcError(f"cannot create output folder {out}: {e.strerror}") from None
    files = [out / "plan.json", out / "explain.txt"]
    files[0].write_text(plan.to_json())
    files[1].write_text(explain_plan(plan, catalog) + "\n")
    for party, job in plan.local_jobs.items():
        folder = out / party
        folder.mkdir(exist_ok=True)
        path = folder / LOCAL_PROGRAM
        path.write_text(local_program(job, plan.engines.get(party)).text)
        files.append(path)
    if plan.needs_mpc:
        path = out / SECURE_PROGRAM
        path.write_text(secure_program(plan).text)
        files.append(path)
    return files
