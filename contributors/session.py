"""The session file of contributor mode (TOML): parsed and checked into a :class:`Session`.

    [session]   name, min_contributors, analytic (SQL file, relative to the session file),
                max_rows (rows one submission may have; default 1000)
    [table]     name, [table.columns]: name = {type, values | min, max}
    [servers.NAME]  mpc = "host:port", public_key = "keys/NAME.pub" (base64 X25519, 32 bytes)
    [result]    recipients = [server names]

Every problem is one line naming the file and the key (SessionError). Categorical text columns
(``values``) are encoded as the index of the value; ``int``, ``decimal(p,s)`` and ``float``
columns are numbers; ``min``/``max`` bound them (checked by the contributor's client and the
page before anything is sent; the servers cannot check them on shares).
"""

from __future__ import annotations

import base64
import binascii
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..compiler.errors import SqlmpcError
from ..compiler.sqltypes import normalize_type

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SESSION_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NUMBER_TYPES = ("int", "float")  # and decimal(p,s)
DEFAULT_MAX_ROWS = 1000
#: the largest |value| a column may declare: v * 2^32 stays far inside SecFxp(96, 32)'s range,
#: so sums of many contributors' values and their squares (a spread) cannot wrap
MAX_ABS_VALUE = 10**12
KEYS = {"session": {"name", "min_contributors", "analytic", "max_rows"},
        "table": {"name", "columns"}, "result": {"recipients"}}


class SessionError(SqlmpcError):
    """The session file is malformed or inconsistent."""

    def __init__(self, path: str | Path, where: str | None, problem: str) -> None:
        location = f"{path}: {where}: " if where else f"{path}: "
        super().__init__(f"session error: {location}{problem}")


@dataclass(frozen=True)
class Column:
    """A column of the contributors' table."""

    name: str
    sql_type: str                 # "text" for categorical columns, else a number type
    values: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None

    @property
    def categorical(self) -> bool:
        return self.values is not None

    def describe(self) -> dict[str, Any]:
        """The column as GET /api/session shows it."""
        out: dict[str, Any] = {"name": self.name, "type": self.sql_type}
        if self.values is not None:
            out["values"] = list(self.values)
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        return out


@dataclass(frozen=True)
class Server:
    """A compute server: its MPyC address and its X25519 public key (32 bytes)."""

    name: str
    mpc: str
    public_key: bytes

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(self.public_key).decode()


@dataclass(frozen=True)
class Session:
    """A checked session file; paths are absolute."""

    path: Path
    name: str
    min_contributors: int
    analytic_path: Path
    analytic: str
    max_rows: int
    table: str
    columns: tuple[Column, ...]
    servers: tuple[Server, ...]
    recipients: tuple[str, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def threshold(self) -> int:
        """Shamir threshold t: any t servers learn nothing; t + 1 reconstruct (t < m/2)."""
        return (len(self.servers) - 1) // 2

    def server(self, name: str) -> Server:
        for s in self.servers:
            if s.name == name:
                return s
        raise SessionError(self.path, "[servers]", f"no server called {name!r}")

    @classmethod
    def load(cls, path: str | Path) -> Session:
        p = Path(path)
        try:
            doc = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise SessionError(path, None, "file not found") from None
        except (OSError, UnicodeDecodeError) as e:
            raise SessionError(path, None, f"cannot read it: {e}") from None
        except tomllib.TOMLDecodeError as e:
            raise SessionError(path, None, f"not valid TOML: {e}") from None
        return parse_session(doc, p.resolve())


def parse_session(doc: dict, path: Path) -> Session:
    """The checked Session of a parsed TOML document read from `path`."""
    for section in doc:
        if section not in ("session", "table", "servers", "result"):
            raise SessionError(path, f"[{section}]", "unknown section")
    for section, allowed in KEYS.items():
        body = doc.get(section)
        if not isinstance(body, dict):
            raise SessionError(path, f"[{section}]", "missing section")
        for key in body:
            if key not in allowed:
                raise SessionError(path, f"[{section}] {key}", "unknown key")
    head = doc["session"]
    name = _text(path, "[session] name", head.get("name"))
    if not SESSION_NAME_RE.match(name):
        raise SessionError(path, "[session] name", "use letters, digits, '-', '_', '.' (<= 64)")
    k = head.get("min_contributors", 1)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise SessionError(path, "[session] min_contributors", "must be a whole number >= 1")
    max_rows = head.get("max_rows", DEFAULT_MAX_ROWS)
    if not isinstance(max_rows, int) or isinstance(max_rows, bool) or not 1 <= max_rows <= 10**6:
        raise SessionError(path, "[session] max_rows", "must be a whole number in [1, 10^6]")
    analytic_path = (path.parent / _text(path, "[session] analytic", head.get("analytic")))
    try:
        analytic = analytic_path.read_text()
    except OSError:
        raise SessionError(path, "[session] analytic", f"cannot read {analytic_path}") from None
    table = _name(path, "[table] name", doc["table"].get("name"))
    columns = _columns(path, doc["table"].get("columns"))
    servers = _servers(path, doc.get("servers"))
    recipients = doc["result"].get("recipients")
    if not isinstance(recipients, list) or not recipients:
        raise SessionError(path, "[result] recipients", "must be a non-empty list of servers")
    for r in recipients:
        if r not in {s.name for s in servers}:
            raise SessionError(path, "[result] recipients", f"{r!r} is not a server")
    return Session(path, name, k, analytic_path.resolve(), analytic, max_rows, table, columns,
                   servers, tuple(dict.fromkeys(recipients)))


def _text(path: Path, where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SessionError(path, where, "must be a non-empty string")
    return value


def _name(path: Path, where: str, value: Any) -> str:
    text = _text(path, where, value)
    if not NAME_RE.match(text) or text.startswith("__"):
        raise SessionError(path, where, f"{text!r} is not a plain SQL name")
    return text


def _columns(path: Path, spec: Any) -> tuple[Column, ...]:
    if not isinstance(spec, dict) or not spec:
        raise SessionError(path, "[table.columns]", "must list at least one column")
    out = []
    for cname, body in spec.items():
        where = f"[table.columns] {cname}"
        _name(path, where, cname)
        if isinstance(body, str):
            body = {"type": body}
        if not isinstance(body, dict):
            raise SessionError(path, where, "must be {type = ..., ...}")
        unknown = set(body) - {"type", "values", "min", "max"}
        if unknown:
            raise SessionError(path, where, f"unknown key {min(unknown)!r}")
        sql_type = normalize_type(body.get("type"))
        if sql_type is None:
            raise SessionError(path, where, f"unknown type {body.get('type')!r}")
        if "values" in body:
            out.append(_categorical(path, where, cname, sql_type, body))
            continue
        if sql_type not in NUMBER_TYPES and not sql_type.startswith("decimal"):
            raise SessionError(path, where, f"type {sql_type} needs `values` (categorical) or "
                                            f"must be int, decimal(p,s) or float")
        lo, hi = body.get("min"), body.get("max")
        for key, v in (("min", lo), ("max", hi)):
            if v is not None and (not isinstance(v, int | float) or isinstance(v, bool)
                                  or abs(v) > MAX_ABS_VALUE):
                raise SessionError(path, f"{where} {key}", f"must be a number within "
                                                           f"+-{MAX_ABS_VALUE}")
        if lo is None or hi is None:
            raise SessionError(path, where, "a number column needs both min and max (the "
                                            "values' range keeps sums exact)")
        if lo > hi:
            raise SessionError(path, where, "min is larger than max")
        out.append(Column(cname, sql_type, None, lo, hi))
    return tuple(out)


def _categorical(path: Path, where: str, cname: str, sql_type: str, body: dict) -> Column:
    values = body["values"]
    if sql_type != "text":
        raise SessionError(path, where, "`values` is for text columns")
    if not isinstance(values, list) or not values or \
            not all(isinstance(v, str) and v.strip() for v in values):
        raise SessionError(path, f"{where} values", "must be a non-empty list of strings")
    if len({v.strip().lower() for v in values}) != len(values):
        raise SessionError(path, f"{where} values", "has duplicates (case is ignored)")
    if "min" in body or "max" in body:
        raise SessionError(path, where, "a categorical column takes no min/max")
    return Column(cname, "text", tuple(values))


def _servers(path: Path, spec: Any) -> tuple[Server, ...]:
    if not isinstance(spec, dict) or len(spec) < 3:
        raise SessionError(path, "[servers]", "needs at least 3 compute servers (an honest "
                                              "majority: t < m/2)")
    out = []
    for sname, body in spec.items():
        where = f"[servers.{sname}]"
        _name(path, where, sname)
        if not isinstance(body, dict) or set(body) - {"mpc", "public_key"}:
            raise SessionError(path, where, "takes mpc = \"host:port\" and public_key")
        mpc = _text(path, f"{where} mpc", body.get("mpc"))
        host, _, port = mpc.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SessionError(path, f"{where} mpc", f"{mpc!r} is not host:port")
        key_file = path.parent / _text(path, f"{where} public_key", body.get("public_key"))
        out.append(Server(sname, mpc, read_public_key(key_file, path, f"{where} public_key")))
    if len({s.public_key for s in out}) != len(out):
        raise SessionError(path, "[servers]", "two servers have the same public key")
    return tuple(out)


def read_public_key(key_file: Path, path: Path | str, where: str) -> bytes:
    """A base64 X25519 public key file's 32 bytes."""
    try:
        raw = base64.b64decode(key_file.read_text().strip(), validate=True)
    except OSError:
        raise SessionError(path, where, f"cannot read {key_file}") from None
    except (binascii.Error, ValueError):
        raise SessionError(path, where, f"{key_file} is not base64") from None
    if len(raw) != 32:
        raise SessionError(path, where, f"{key_file} is not an X25519 public key (32 bytes)")
    return raw
