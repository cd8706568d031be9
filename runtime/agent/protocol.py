"""The party agents' wire format: one TCP connection per request, JSON lines (never pickle).

The client sends one line

    {"op": "run", "version": 1, "party": NAME, "plan_dir": PATH, "pid": I,
     "addresses": ["host:port", ...], "ssl": false, "ssl_dir": null,
     "options": {"dialect": null, "disable": [], ...}, "sent": WALL_CLOCK}

and reads `{"progress": TEXT}` lines, then one final `{"ok": true, "stats": {...},
"result": CSV_TEXT_OR_NULL}` or `{"ok": false, "error": ONE_LINE}`. `{"op": "ping"}` answers
`{"ok": true, "party": NAME, "pid": OS_PID, "queries": N, "busy": BOOL}`; `{"op": "stop"}`
stops the agent. Closing the connection during a query cancels it (the agent stays up).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

from ...compiler.errors import SqlmpcError
from ..workspace import parse_address

PROTOCOL_VERSION = 1

__all__ = ["PROTOCOL_VERSION", "JsonLinesReporter", "error_reply", "ok_reply", "parse_address",
           "parse_agents", "progress_message", "read_messages", "run_request", "send",
           "simple_request"]


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
    """A "ping" or "stop" request."""
    return {"op": op, "version": PROTOCOL_VERSION}


def run_request(*, party: str, plan_dir: str, pid: int, addresses: list[str], ssl: bool,
                ssl_dir: str | None, options: dict, sent: float) -> dict:
    """Ask an agent to run its party's part of the plan in `plan_dir` (which it compiles
    again itself with `options` and its own catalog)."""
    return {"op": "run", "version": PROTOCOL_VERSION, "party": party, "plan_dir": plan_dir,
            "pid": pid, "addresses": addresses, "ssl": ssl, "ssl_dir": ssl_dir,
            "options": options, "sent": sent}


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
