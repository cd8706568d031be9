"""Long-lived party agents: each party's sqlmpc process, started once, serving many queries.

    server.py     `sqlmpc agent NAME`: the agent (its server loop around runtime/party_run.py)
    client.py     `sqlmpc run --agents ...`: a query through running agents; ping, stop
    protocol.py   the wire format (JSON lines) both sides speak
    plan_check.py an agent runs only the plan it compiles itself

The names below are importable from here too (loaded on first use).
"""

from __future__ import annotations

import importlib

#: name -> the module of this package that defines it
_EXPORTS = {
    "Agent": "server", "serve": "server",
    "run_with_agents": "client", "request": "client", "ping": "client", "stop": "client",
    "wait_ready": "client",
    "parse_agents": "protocol", "parse_address": "protocol", "PROTOCOL_VERSION": "protocol",
}

__all__ = ["PROTOCOL_VERSION", "Agent", "parse_address", "parse_agents", "ping", "request",
           "run_with_agents", "serve", "stop", "wait_ready"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
