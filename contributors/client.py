"""The command-line contributor: `sqlmpc contribute URL --code CODE --file DATA.csv`.

Reads the session from the provider (GET /api/session), checks every cell of the CSV against
the schema locally (allowed values, types, ranges; the whole file or nothing), encodes and
Shamir-shares each value (field.py), seals one share vector per server (sealing.py), submits
and prints the receipt. No plaintext value leaves this process. The same encryption as the
page (contributors/web/).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..compiler.errors import SqlmpcError
from .field import MODULUS, encode_number, parse_decimal, share_values
from .sealing import seal

TIMEOUT = 60.0


class ContributeError(SqlmpcError):
    """A contribution was refused (locally or by the provider); one line."""


def request(url: str, method: str = "GET", body: Any = None,
            token: str | None = None, timeout: float = TIMEOUT) -> Any:
    """One JSON request; the decoded answer, or ContributeError with the provider's line."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read()).get("error", e.reason)
        except (ValueError, AttributeError):
            message = e.reason
        raise ContributeError(f"{url}: {e.code}: {message}") from None
    except (urllib.error.URLError, OSError) as e:
        raise ContributeError(f"cannot reach {url}: {getattr(e, 'reason', e)}") from None


def encode_cell(column: dict, text: str, where: str) -> int:
    """One cell's field element; ContributeError naming the place (never the value of
    another cell)."""
    text = (text or "").strip()
    if not text:
        raise ContributeError(f"{where}: empty cell")
    values = column.get("values")
    if values is not None:
        by_text = {v.strip().lower(): i for i, v in enumerate(values)}
        if text.lower() not in by_text:
            raise ContributeError(f"{where}: {text!r} is not one of {', '.join(values)}")
        return encode_number(by_text[text.lower()])
    number = parse_decimal(text)
    if number is None:
        raise ContributeError(f"{where}: {text!r} is not a number")
    sql_type = column["type"]
    if sql_type == "int" and number != number.to_integral_value():
        raise ContributeError(f"{where}: {text!r} is not a whole number")
    if sql_type.startswith("decimal"):
        scale = int(sql_type.split(",")[1].rstrip(")"))
        if -number.as_tuple().exponent > scale:
            raise ContributeError(f"{where}: {text!r} has more than {scale} decimals")
    lo, hi = column.get("min"), column.get("max")
    if (lo is not None and number < Decimal(str(lo))) or \
            (hi is not None and number > Decimal(str(hi))):
        raise ContributeError(f"{where}: {text} is outside [{lo}, {hi}]")
    return encode_number(number)


def read_rows(path: Path, info: dict) -> list[list[int]]:
    """The CSV's rows encoded column by column in schema order (header names, any order)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ContributeError(f"cannot read {path}: {e}") from None
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    columns = info["table"]["columns"]
    names = [c["name"].lower() for c in columns]
    missing = [n for n in names if n not in header]
    extra = [h for h in header if h not in names]
    if missing or extra:
        raise ContributeError(f"{path}: the header must name the columns "
                              f"{', '.join(c['name'] for c in columns)}"
                              f"{' (missing ' + ', '.join(missing) + ')' if missing else ''}"
                              f"{' (unknown ' + ', '.join(extra) + ')' if extra else ''}")
    where = [header.index(n) for n in names]
    encoded: list[list[int]] = [[] for _ in columns]
    count = 0
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise ContributeError(f"{path}:{line}: {len(row)} cells, expected {len(header)}")
        count += 1
        for j, (col, i) in enumerate(zip(columns, where, strict=True)):
            encoded[j].append(encode_cell(col, row[i], f"{path}:{line}: {col['name']}"))
    if count == 0:
        raise ContributeError(f"{path}: no rows")
    if count > info["max_rows"]:
        raise ContributeError(f"{path}: {count} rows, at most {info['max_rows']} allowed")
    return encoded


def sealed_submission(info: dict, code: str, encoded: list[list[int]]) -> dict:
    """The POST /api/submit body: each server's shares, sealed to its key."""
    if int(info["field"]["modulus"]) != MODULUS:
        raise ContributeError("the provider's field is not this client's (update sqlmpc)")
    servers = info["servers"]
    m, t = len(servers), int(info["field"]["threshold"])
    if t < 0 or 2 * t >= m:
        raise ContributeError(f"the session's threshold {t} is no honest majority of {m}")
    rows = len(encoded[0])
    per_server: list[list[list[str]]] = [[] for _ in servers]
    for column in encoded:
        shares = share_values(column, m, t)
        for i in range(m):
            per_server[i].append([str(x) for x in shares[i]])
    names = [c["name"] for c in info["table"]["columns"]]
    boxes = {}
    for i, s in enumerate(servers):
        payload = {"session": info["name"], "code": code, "columns": names, "rows": rows,
                   "shares": per_server[i]}
        boxes[s["name"]] = seal(payload, base64.b64decode(s["public_key"]))
    return {"code": code, "rows": rows, "shares": boxes}


def contribute(url: str, code: str, file: Path) -> dict:
    """Validate, share, seal and submit `file`; the provider's receipt."""
    base = url.rstrip("/")
    info = request(f"{base}/api/session")
    if info.get("status") != "open":
        raise ContributeError(f"session {info.get('name')} is {info.get('status')}, not open")
    encoded = read_rows(Path(file), info)
    body = sealed_submission(info, code, encoded)
    return request(f"{base}/api/submit", "POST", body)["receipt"]
