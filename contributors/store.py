"""The provider's embedded store: SQLite in WAL mode, sealed boxes and metadata only.

Tables: ``state`` (the session's name and status), ``codes`` (participation codes, their
public index, revoked flag), ``submissions`` (append-only history: one row per accepted
submission, code, time, row count) and ``boxes`` (one sealed box per submission and server).
The latest submission of a code is the one with the highest id; earlier ones stay as history.
A submission is written in one transaction (BEGIN IMMEDIATE ... COMMIT): a crash mid-request
leaves the previous one in force. Nothing here can be read without a server's private key.
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..compiler.errors import SqlmpcError

STATUSES = ("setup", "open", "paused", "closed")
#: status -> the statuses an analyst may move it to ("closed" is final)
MOVES = {"setup": {"open", "closed"}, "open": {"paused", "closed"},
         "paused": {"open", "closed"}, "closed": set()}
SCHEMA = """
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS codes (code TEXT PRIMARY KEY, idx INTEGER NOT NULL UNIQUE,
    revoked INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS submissions (id INTEGER PRIMARY KEY AUTOINCREMENT,
    code TEXT NOT NULL REFERENCES codes(code), submitted_at TEXT NOT NULL,
    rows INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS submissions_by_code ON submissions (code, id);
CREATE TABLE IF NOT EXISTS boxes (submission INTEGER NOT NULL REFERENCES submissions(id),
    server TEXT NOT NULL, box TEXT NOT NULL, PRIMARY KEY (submission, server));
"""


class StoreError(SqlmpcError):
    """The store refuses an operation (the message is safe to show to the caller)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Receipt:
    submission: int
    submitted_at: str
    rows: int
    replaces: int | None

    def as_json(self) -> dict:
        return {"submission": self.submission, "submitted_at": self.submitted_at,
                "rows": self.rows, "replaces": self.replaces}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Store:
    """One session's store in one SQLite file (one connection per Store; not shared across
    threads)."""

    def __init__(self, path: str | Path, session_name: str) -> None:
        self.path = Path(path)
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                      check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")  # an accepted submission survives a crash
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(SCHEMA)
        except sqlite3.Error as e:
            raise SqlmpcError(f"store {self.path}: {e}") from None
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO state VALUES ('session', ?)", (session_name,))
            self.db.execute("INSERT OR IGNORE INTO state VALUES ('status', 'setup')")
        stored = self.db.execute("SELECT value FROM state WHERE key='session'").fetchone()[0]
        if stored != session_name:
            raise SqlmpcError(f"store {self.path} belongs to session {stored!r}, not "
                              f"{session_name!r}")

    def close(self) -> None:
        self.db.close()

    # --- status ---------------------------------------------------------------------------
    @property
    def status(self) -> str:
        return self.db.execute("SELECT value FROM state WHERE key='status'").fetchone()[0]

    def move(self, to: str) -> str:
        """Change the status (open, paused, closed); StoreError (409) if not allowed."""
        current = self.status
        if to not in MOVES[current]:
            raise StoreError(f"the session is {current}; it cannot become {to}", 409)
        with self.db:
            self.db.execute("UPDATE state SET value=? WHERE key='status'", (to,))
        return to

    def counts(self) -> dict[str, int]:
        """How many codes have a submission, and how many submissions there are (no values)."""
        contributors = self.db.execute("SELECT COUNT(DISTINCT code) FROM submissions").fetchone()
        submissions = self.db.execute("SELECT COUNT(*) FROM submissions").fetchone()
        return {"contributors": contributors[0], "submissions": submissions[0]}

    # --- codes ----------------------------------------------------------------------------
    def new_codes(self, count: int) -> list[str]:
        """`count` fresh participation codes (random, 20 characters)."""
        if not 1 <= count <= 100_000:
            raise StoreError("count must be in [1, 100000]")
        out = []
        self.db.execute("BEGIN IMMEDIATE")
        try:
            nxt = self.db.execute("SELECT COALESCE(MAX(idx), -1) + 1 FROM codes").fetchone()[0]
            for i in range(count):
                code = secrets.token_urlsafe(15)
                self.db.execute("INSERT INTO codes VALUES (?, ?, 0, ?)", (code, nxt + i, now()))
                out.append(code)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return out

    def revoke(self, code: str) -> None:
        with self.db:
            cur = self.db.execute("UPDATE codes SET revoked=1 WHERE code=?", (code,))
        if cur.rowcount == 0:
            raise StoreError("unknown code", 404)

    def check_code(self, code: str) -> int:
        """The code's index; StoreError 403 if unknown or revoked."""
        row = self.db.execute("SELECT idx, revoked FROM codes WHERE code=?", (code,)).fetchone()
        if row is None or row[1]:
            raise StoreError("unknown or revoked participation code", 403)
        return int(row[0])

    # --- submissions ----------------------------------------------------------------------
    def submit(self, code: str, rows: int, boxes: dict[str, str]) -> Receipt:
        """Store one complete submission (all boxes) in one transaction; its receipt."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.check_code(code)
            if self.status != "open":
                raise StoreError(f"the session is {self.status}, not open", 409)
            prev = self.db.execute("SELECT MAX(id) FROM submissions WHERE code=?",
                                   (code,)).fetchone()[0]
            at = now()
            cur = self.db.execute("INSERT INTO submissions (code, submitted_at, rows) "
                                  "VALUES (?, ?, ?)", (code, at, rows))
            sid = cur.lastrowid
            self.db.executemany("INSERT INTO boxes VALUES (?, ?, ?)",
                                [(sid, server, box) for server, box in boxes.items()])
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return Receipt(sid, at, rows, prev)

    def latest_boxes(self, server: str) -> list[dict]:
        """The latest submission's box of every code with one (not revoked), for `server`."""
        rows = self.db.execute(
            "SELECT c.idx, b.box FROM codes c "
            "JOIN submissions s ON s.id = (SELECT MAX(id) FROM submissions WHERE code = c.code) "
            "JOIN boxes b ON b.submission = s.id AND b.server = ? "
            "WHERE c.revoked = 0 ORDER BY c.idx", (server,)).fetchall()
        return [{"code_index": idx, "box": box} for idx, box in rows]
