"""How a running party tells what it does: progress lines and one one-line error.

A party process started by `sqlmpc run` writes machine-readable lines on stderr, which the
launcher relays (`sqlmpc-progress: NAME: ...`) or keeps as the run's error
(`sqlmpc-error: party NAME: ...`); `sqlmpc party NAME` on a party's own machine writes the
same lines for a person (`sqlmpc: NAME: ...`, `sqlmpc: error: party NAME: ...`). A party agent
sends progress as JSON lines to its client instead (runtime/agent/protocol.py), and its final
reply carries the error. Either way an error is one line that names the party, never a
traceback (SQLMPC_DEBUG=1 shows it).
"""

from __future__ import annotations

import sys
from typing import Protocol, TextIO

#: stderr line prefixes of a party process under the launcher
PROGRESS_PREFIX = "sqlmpc-progress:"
ERROR_PREFIX = "sqlmpc-error:"
#: what the other parties say when one party fails or dies (their lost connection to it, their
#: cancelled protocol): told only when nothing more telling arrives
ECHOES = ("lost the connection to party", "stopped without a result")
#: after the first party's failure, how long a run waits for a more telling report (the
#: failing party's own error arrives just after the others noticed its connection go)
FAILURE_GRACE = 0.5


def one_line(text: object) -> str:
    """The first non-blank line of `text` (a Java or Python trace is cut to its message)."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[0] if lines else "failed"


def named(party: str, message: str) -> str:
    """`party NAME: message`, without repeating the name when the message already has it."""
    for prefix in (f"party {party}: ", f"{party}: "):
        message = message.removeprefix(prefix)
    return f"party {party}: {message}"


def failure_line(party: str, error: BaseException) -> str:
    """One line for a failure of `party`: our own errors say what is wrong as they are; any
    other exception (a bug, a library's error) is shown with its type."""
    from ..compiler.errors import SqlmpcError
    text = str(error) if isinstance(error, SqlmpcError) else f"{type(error).__name__}: {error}"
    return named(party, one_line(text))


def is_echo(message: str) -> bool:
    """Whether a party's error only reports the end of the protocol (a lost connection, a
    cancelled protocol), likely caused by another party's failure."""
    return any(echo in message for echo in ECHOES)


class Reporter(Protocol):
    """Where one party's progress and its final error go."""

    def progress(self, message: str) -> None:
        """One step of the party's run, e.g. "local job: done"."""

    def failure(self, message: str) -> None:
        """The party's one-line error (already naming the party)."""


class StderrReporter:
    """Progress and error lines on stderr (or `stream`), each `PREFIX NAME: message`.

    `progress_prefix=None` keeps progress quiet (`sqlmpc party --quiet`).
    """

    def __init__(self, party: str, *, progress_prefix: str | None = PROGRESS_PREFIX,
                 error_prefix: str = ERROR_PREFIX, stream: TextIO | None = None) -> None:
        self.party = party
        self.progress_prefix = progress_prefix
        self.error_prefix = error_prefix
        self.stream = stream

    def progress(self, message: str) -> None:
        if self.progress_prefix is not None:
            print(f"{self.progress_prefix} {self.party}: {message}",
                  file=self.stream or sys.stderr, flush=True)

    def failure(self, message: str) -> None:
        print(f"{self.error_prefix} {message}", file=self.stream or sys.stderr, flush=True)

