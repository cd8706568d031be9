"""The party agents' wire format: one connection per request (mutual TLS unless the agent runs
with --insecure-plaintext), JSON lines (never pickle). Version 2:

    {"op": "run", "version": 2, "party": NAME, "sql": TEXT, "query_id": HEX,
     "digest": SHA256_HEX, "options": {"dialect": null, "all_secure": false, "disable": [],
     "pad_inputs": null, "join_bound": null, "timeout": null}, "sent": WALL_CLOCK}

The agent compiles `sql` itself with its own catalog; `digest` is the plan digest the client
computed (runtime/deployment.plan_digest): the agent runs only when its own equals it, so every
compute party runs the same plan. Plan folders, MPyC addresses, ports and TLS files are never
taken from a client. The client reads `{"progress": TEXT}` lines, then one final
`{"ok": true, "stats": {...}, "result": CSV_TEXT_OR_NULL}` or `{"ok": false, "error": LINE}`.
`{"op": "ping", "version": 2}` answers `{"ok": true, "party": NAME, "pid": OS_PID,
"queries": N, "busy": BOOL}`. There is no network `stop`: the operator stops an agent with
SIGTERM or SIGINT. Closing the connection during a query cancels it (the agent stays up).
A request line is at most deployment.MAX_REQUEST_BYTES long.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

from ...compiler.errors import SqlmpcError
from ..workspace import parse_address

PROTOCOL_VERSION = 2

__all__ = ["PROTOCOL_VERSION", "REQUEST_FIELDS", "JsonLinesReporter", "error_reply", "ok_reply",
           "parse_address", "parse_agents", "progress_message", "read_messages", "run_request",
           "send", "simple_request", "validate_request"]


def send(sock: socket.socket, message: dict) -> None:
    """One message: a JSON object on one line."""
    sock.sendall((json.dumps(message) + "\n").encode())


def read_messages(sock: socket.socket):
    """The JSON messages arriving on `sock`, one per line (a line that is not JSON is
    skipped), until the other side closes."""
    with sock.makefile("r", encoding="utf-8") as f:
        for line in f:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                yield message


def parse_agents(text: str) -> dict[str, str]:
    """`name=host:port,name=host:port` -> {name: "host:port"}."""
    agents = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, addr = item.partition("=")
        if not sep or not name.strip():
            raise SqlmpcError(f"--agents takes NAME=HOST:PORT[,NAME=HOST:PORT...], got {item!r}")
        parse_address(addr, f"the agent address of {name.strip()}")
        agents[name.strip()] = addr.strip()
    if not agents:
        raise SqlmpcError("--agents names no agent (NAME=HOST:PORT,...)")
    return agents


# --- messages ----------------------------------------------------------------------------------
def simple_request(op: str) -> dict:
    """A "ping" request."""
    return {"op": op, "version": PROTOCOL_VERSION}


def run_request(*, party: str, sql: str, query_id: str, digest: str, options: dict,
                sent: float) -> dict:
    """Ask an agent to run its party's part of `sql` (which it compiles itself with `options`
    and its own catalog, and runs only when its plan digest equals `digest`)."""
    return {"op": "run", "version": PROTOCOL_VERSION, "party": party, "sql": sql,
            "query_id": query_id, "digest": digest, "options": options, "sent": sent}


#: the fields of each request and their JSON types (a request with others is refused)
REQUEST_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "ping": {"op": (str,), "version": (int,)},
    "run": {"op": (str,), "version": (int,), "party": (str,), "sql": (str,),
            "query_id": (str,), "digest": (str,), "options": (dict, type(None)),
            "sent": (int, float, type(None))},
}


def validate_request(req: object, party: str) -> str:
    """The op of a request that has the expected form; otherwise a ValueError with one line
    (not a JSON object, an old version, an unknown op, a missing, extra or mistyped field)."""
    if not isinstance(req, dict):
        raise ValueError(f"a request must be a JSON object, not {type(req).__name__}")
    version, op = req.get("version"), req.get("op")
    if version != PROTOCOL_VERSION:
        raise ValueError(f"party {party}: its agent speaks protocol version {PROTOCOL_VERSION}, "
                         f"the client {version!r} (use the same sqlmpc on both sides; version "
                         f"2 agents compile the query themselves and take no plan folder, "
                         f"addresses or TLS files from a client)")
    if op == "stop":
        raise ValueError("stop is not accepted over the network (the agent's operator stops it "
                         "with SIGTERM or SIGINT)")
    fields = REQUEST_FIELDS.get(op) if isinstance(op, str) else None
    if fields is None:
        raise ValueError(f"party {party}: unknown agent request {op!r}"[:200])
    for key in req:
        if key not in fields:
            raise ValueError(f"field {key!r} is not accepted in a {op} request"[:200])
    for key, kinds in fields.items():
        value = req.get(key)
        if key not in req and type(None) not in kinds:
            raise ValueError(f"a {op} request needs the field {key!r}")
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise ValueError(f"field {key!r} of a {op} request has the wrong type")
    return op


def progress_message(text: str) -> dict:
    return {"progress": text}


def ok_reply(stats: dict, result_csv: str | None) -> dict:
    return {"ok": True, "stats": stats, "result": result_csv}


def error_reply(message: str) -> dict:
    return {"ok": False, "error": message}


class JsonLinesReporter:
    """A party agent's reporter (runtime/report.py): progress as `{"progress": "NAME: ..."}`
    lines to the client, the error as the final reply."""

    def __init__(self, party: str, send_message: Callable[[dict], None]) -> None:
        self.party = party
        self.send_message = send_message

    def progress(self, message: str) -> None:
        try:
            self.send_message(progress_message(f"{self.party}: {message}"))
        except OSError:  # the client went away; the query is being stopped anyway
            pass

    def failure(self, message: str) -> None:
        try:
            self.send_message(error_reply(message))
        except OSError:
            pass
