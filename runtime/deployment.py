"""The deployment part of one member's catalog: its own identity, the agents, who each serves.

    dep = Deployment.of(catalog, identity_dir=args.identity)
    dep.identity            # sqlmpc.runtime.identity.Identity, or None (plaintext only)
    dep.agents              # {party: "host:port"} from the parties' `agent` keys
    dep.analysts("bank_a")  # the analysts bank_a's agent serves
    dep.limit("max_connections")
    dep.mpc_addresses(plan) # "host:port" of every compute party, in MPyC id order

and what an agent accepts from a request: a query id (short hex, checked by check_query_id)
and options that cannot widen what a query reveals (check_options). The plan digest
(plan_digest) is what every compute party must agree on before any share is sent.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..compiler.catalog import Catalog
from ..compiler.errors import SqlmpcError
from .kept import PerObject

#: the limits an agent enforces unless the catalog's [deployment] section sets them
DEFAULT_LIMITS: dict[str, float] = {
    "max_connections": 16,        # concurrent connections; an idle one is dropped for a new one
    "request_timeout": 10.0,      # seconds to finish the TLS handshake and send the request line
    "idle_timeout": 60.0,         # seconds a send to a client may block (a client that stops
                                  # reading is dropped)
    "max_query_seconds": 3600.0,  # the most a client may ask as its query's timeout
    "max_join_bound": 1_000_000,  # the largest --join-bound a client may ask for
    "connect_timeout": 60.0,      # seconds for the MPyC connections between the parties
}
#: the longest request line an agent reads (bytes, with its newline)
MAX_REQUEST_BYTES = 1 << 20
QUERY_ID = re.compile(r"^[0-9a-f]{8,32}$")
#: the optimising passes a client may switch off. Left out: infer_unique and use_domains,
#: without which a join or a grouping may reveal its size where it would not otherwise
DISABLE_ALLOWED = frozenset({"push_down_predicates", "push_down_projections", "split_aggregates",
                             "use_public_keys", "push_up_reveal"})
PAD_INPUTS = (None, "pow2")


class DeploymentError(SqlmpcError):
    """A deployment setting or a request's option that cannot be used (one line)."""


@dataclass
class Deployment:
    """One member's view of its deployment, from its own catalog (see the module docstring)."""

    catalog: Catalog
    identity: object | None = None   # an Identity
    identity_dir: Path | None = None
    agents: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, catalog: Catalog, identity_dir: str | Path | None = None) -> Deployment:
        """The deployment of `catalog`; `identity_dir` (e.g. --identity) wins over the
        catalog's [deployment] identity. An identity folder that is given must load."""
        from .identity import Identity
        folder = Path(identity_dir) if identity_dir else catalog.deployment.identity
        identity = Identity.from_folder(folder) if folder else None
        agents = {name: p.agent for name, p in catalog.parties.items() if p.agent}
        return cls(catalog, identity, Path(folder).resolve() if folder else None, agents)

    def analysts(self, party: str) -> tuple[str, ...]:
        return self.catalog.parties[party].analysts

    def limit(self, key: str) -> float:
        return self.catalog.deployment.limit(key, DEFAULT_LIMITS[key])

    def mpc_addresses(self, plan) -> list[str]:
        """host:port of every compute party of `plan` from this catalog (MPyC id order); a
        compute party without a port is an error (an agent never takes addresses from a
        client)."""
        if not plan.needs_mpc:
            return []
        out = []
        for name in plan.compute_parties:
            party = self.catalog.parties[name]
            if party.port is None:
                raise DeploymentError(f"party {name} has no port in the catalog "
                                      f"{self.catalog.path} (an agent needs every compute "
                                      f"party's host and port)")
            host = "127.0.0.1" if party.host == "localhost" else party.host
            out.append(f"{host}:{party.port}")
        return out


def check_query_id(value: object) -> str:
    """A client's query id: 8 to 32 lower-case hex digits."""
    if not isinstance(value, str) or not QUERY_ID.match(value):
        raise DeploymentError("the query id must be 8 to 32 lower-case hex digits")
    return value


def check_options(options: object, dep: Deployment) -> dict:
    """The compile switches and timeout of a request, each checked; an unknown or out-of-range
    one is an error (never silently dropped: the client would think it applied)."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise DeploymentError("options must be a JSON object")
    known = {"dialect", "all_secure", "disable", "pad_inputs", "join_bound", "timeout"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise DeploymentError(f"option {unknown[0]!r} is not accepted (options: "
                              f"{', '.join(sorted(known))})")
    out: dict = {}
    dialect = options.get("dialect")
    if dialect is not None:
        from sqlglot.dialects.dialect import Dialect
        if not isinstance(dialect, str) or not re.match(r"^[a-z0-9_]{1,32}$", dialect) \
                or Dialect.get(dialect) is None:
            raise DeploymentError(f"dialect {dialect!r} is not a known SQL dialect")
    out["dialect"] = dialect
    all_secure = options.get("all_secure", False)
    if not isinstance(all_secure, bool):
        raise DeploymentError("all_secure must be true or false")
    out["all_secure"] = all_secure
    disable = options.get("disable") or []
    if not isinstance(disable, list) or not all(isinstance(d, str) for d in disable) \
            or len(disable) > len(DISABLE_ALLOWED):
        raise DeploymentError("disable must be a short list of pass names")
    for name in disable:
        if name not in DISABLE_ALLOWED:
            raise DeploymentError(f"the pass {name!r} may not be switched off by a client "
                                  f"(allowed: {', '.join(sorted(DISABLE_ALLOWED))})")
    out["disable"] = sorted(set(disable))
    pad = options.get("pad_inputs")
    if pad not in PAD_INPUTS:
        raise DeploymentError(f"pad_inputs must be null or \"pow2\", got {pad!r}")
    out["pad_inputs"] = pad
    out["join_bound"] = _bounded_number(options.get("join_bound"), "join_bound",
                                        dep.limit("max_join_bound"), integer=True)
    out["timeout"] = _bounded_number(options.get("timeout"), "timeout",
                                     dep.limit("max_query_seconds"), integer=False)
    return out


def _bounded_number(value: object, name: str, most: float, *, integer: bool):
    if value is None:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not 0 < value <= most:
        raise DeploymentError(f"{name} must be a {'whole ' if integer else ''}number above 0 "
                              f"and at most {most:g}, got {value!r}")
    return value


def compile_switches(options: dict) -> dict:
    """The compile_plan keyword arguments among checked options."""
    return {"dialect": options.get("dialect"), "all_secure": bool(options.get("all_secure")),
            "disable": tuple(options.get("disable") or ()),
            "pad_inputs": options.get("pad_inputs"), "join_bound": options.get("join_bound")}


def comparable_doc(plan) -> dict:
    """A plan's JSON document without what may differ between the members' own catalogs: the
    catalog's path, the engines, and where each party keeps its files."""
    doc = json.loads(plan.to_json())
    doc.pop("catalog", None)
    doc.pop("engines", None)
    for job in (doc.get("local_jobs") or {}).values():
        for part in job.get("inputs", []):
            part.pop("path", None)
    return doc


#: the query id of a run that has none (`sqlmpc run`, `sqlmpc party`): its parties agree on
#: the plan alone
NO_QUERY_ID = ""


#: the comparable documents of the plans a process digested last (serialising a plan takes
#: about 5 ms for the taxi HHI: an agent's recurring query, a client's, does it once)
_comparable = PerObject(32)


def plan_digest(plan, query_id: str = NO_QUERY_ID) -> str:
    """sha256 of (query id, the comparable plan): equal at two members iff they would run the
    same plan for the same query."""
    doc = _comparable.get(plan, None, lambda: json.dumps(comparable_doc(plan), sort_keys=True,
                                                         separators=(",", ":")))
    # = json.dumps([query_id, comparable_doc(plan)], sort_keys=True, separators=(",", ":"))
    text = f"[{json.dumps(query_id)},{doc}]"
    return hashlib.sha256(text.encode()).hexdigest()


def query_sha256(sql: str) -> str:
    return hashlib.sha256(sql.encode()).hexdigest()
