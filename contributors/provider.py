"""The service provider: the contributor page, the JSON API and the store of sealed boxes.

    sqlmpc provider SESSION.toml --listen HOST:PORT --db FILE [--open]

A Starlette application served by uvicorn. It serves ``web/`` (the contributor page) at ``/``
and ``/static/...``, and the API of docs/contributors.md:

    GET  /api/session                 the schema, servers' public keys, field, status
    POST /api/submit                  {"code", "rows", "shares": {server: sealed box}}
    POST /api/analyst/open|pause|close, GET /api/analyst/status, POST /api/analyst/codes,
    POST /api/analyst/revoke          (Authorization: Bearer <the analyst token>)
    POST /api/server/NAME/challenge, GET /api/server/NAME/shares   (the compute servers)

The provider never holds anything it could read: a submission is one sealed box per server.
It checks what it can without reading them (the code, the status, the server set, the row
count, the box sizes, the body size) and stores the whole submission in one transaction or
nothing. Every error is ``{"error": "one line"}`` with a 4xx status. A compute server proves
it holds its private key by opening a challenge sealed to its public key (single use, 120 s);
the shares are served only once the session is closed. The analyst token is written to a
0600 file next to the database at start (``FILE.analyst-token``). Logs name requests, never
values.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import secrets
import time
from pathlib import Path

from nacl.public import PublicKey, SealedBox
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from .field import FRAC_BITS, MODULUS
from .session import Session
from .store import Store, StoreError

WEB = Path(__file__).resolve().parent / "web"
CHALLENGE_SECONDS = 120
#: JSON bytes per share value (a decimal string of a 160-bit field element, quotes, comma)
BYTES_PER_VALUE = 52
SEAL_OVERHEAD = 48  # crypto_box_seal: ephemeral public key + MAC


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def limits(session: Session) -> tuple[int, int]:
    """(largest sealed box in base64 characters, largest request body in bytes)."""
    k = len(session.columns)
    payload = session.max_rows * k * BYTES_PER_VALUE + 512 + 64 * k + len(session.name)
    box = (payload + SEAL_OVERHEAD) * 4 // 3 + 8
    body = len(session.servers) * (box + 64) + 1024
    return box, body


class Provider:
    """The application state: the session, the store, the tokens, the open challenges."""

    def __init__(self, session: Session, store: Store, analyst_token: str) -> None:
        self.session = session
        self.store = store
        self.analyst_token = analyst_token
        self.challenges: dict[str, tuple[str, float]] = {}  # answer -> (server, expiry)
        self.max_box, self.max_body = limits(session)

    # --- helpers ----------------------------------------------------------------------------
    async def body_json(self, request: Request) -> dict:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            raise ApiError(413, f"request body too large (at most {self.max_body} bytes)")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise ApiError(413, f"request body too large (at most {self.max_body} bytes)")
            chunks.append(chunk)
        try:
            doc = json.loads(b"".join(chunks) or b"null")
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "the body is not JSON") from None
        if not isinstance(doc, dict):
            raise ApiError(400, "the body must be a JSON object")
        return doc

    def check_analyst(self, request: Request) -> None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.analyst_token}".encode()):
            raise ApiError(401, "analyst token required (Authorization: Bearer ...)")

    def server_name(self, request: Request) -> str:
        name = request.path_params["name"]
        if name not in {s.name for s in self.session.servers}:
            raise ApiError(404, "no such server in this session")
        return name

    # --- endpoints ----------------------------------------------------------------------------
    async def session_info(self, request: Request) -> dict:
        s = self.session
        return {"name": s.name, "status": self.store.status,
                "table": {"name": s.table, "columns": [c.describe() for c in s.columns]},
                "servers": [{"name": v.name, "public_key": v.public_key_b64}
                            for v in s.servers],
                "field": {"modulus": str(MODULUS), "frac_bits": FRAC_BITS,
                          "threshold": s.threshold},
                "max_rows": s.max_rows}

    async def submit(self, request: Request) -> dict:
        doc = await self.body_json(request)
        code, rows, shares = doc.get("code"), doc.get("rows"), doc.get("shares")
        if not isinstance(code, str) or not 0 < len(code) <= 200:
            raise ApiError(400, "`code` must be a string")
        self.store.check_code(code)
        if self.store.status != "open":
            raise ApiError(409, f"the session is {self.store.status}, not open")
        unknown = sorted(set(doc) - {"code", "rows", "shares"})
        if unknown:
            raise ApiError(400, f"unknown field {unknown[0]!r}")
        if not isinstance(rows, int) or isinstance(rows, bool) or \
                not 1 <= rows <= self.session.max_rows:
            raise ApiError(400, f"`rows` must be a whole number in [1, {self.session.max_rows}]")
        names = [v.name for v in self.session.servers]
        if not isinstance(shares, dict) or sorted(shares) != sorted(names):
            raise ApiError(400, f"`shares` must hold one sealed box for each server: "
                                f"{', '.join(names)}")
        for name, box in shares.items():
            if not isinstance(box, str) or len(box) > self.max_box:
                raise ApiError(400, f"the box for {name} is not a sealed box of this session")
            try:
                raw = base64.b64decode(box, validate=True)
            except (binascii.Error, ValueError):
                raise ApiError(400, f"the box for {name} is not base64") from None
            if len(raw) <= SEAL_OVERHEAD + rows:
                raise ApiError(400, f"the box for {name} is too small for {rows} rows")
        receipt = self.store.submit(code, rows, {n: shares[n] for n in names})
        return {"receipt": receipt.as_json()}

    async def analyst(self, request: Request) -> dict:
        self.check_analyst(request)
        action = request.path_params["action"]
        if action == "status" and request.method == "GET":
            return {"status": self.store.status, **self.store.counts()}
        if request.method != "POST":
            raise ApiError(405, "use POST")
        if action in ("open", "pause", "close"):
            to = {"open": "open", "pause": "paused", "close": "closed"}[action]
            return {"status": self.store.move(to)}
        doc = await self.body_json(request)
        if action == "codes":
            count = doc.get("count")
            if not isinstance(count, int) or isinstance(count, bool):
                raise ApiError(400, "`count` must be a whole number")
            return {"codes": self.store.new_codes(count)}
        if action == "revoke":
            self.store.revoke(str(doc.get("code", "")))
            return {"revoked": True}
        raise ApiError(404, "no such analyst action")

    async def challenge(self, request: Request) -> dict:
        name = self.server_name(request)
        now = time.monotonic()
        self.challenges = {a: v for a, v in self.challenges.items() if v[1] > now}
        answer = secrets.token_hex(32)
        self.challenges[answer] = (name, now + CHALLENGE_SECONDS)
        key = PublicKey(self.session.server(name).public_key)
        sealed = SealedBox(key).encrypt(answer.encode())
        return {"challenge": base64.b64encode(sealed).decode()}

    async def server_shares(self, request: Request) -> list:
        name = self.server_name(request)
        given = request.headers.get("authorization", "").removeprefix("Bearer ")
        entry = self.challenges.pop(given, None)
        if entry is None or entry[0] != name or entry[1] < time.monotonic():
            raise ApiError(401, "answer a fresh challenge first (POST .../challenge)")
        if self.store.status != "closed":
            raise ApiError(409, f"the session is {self.store.status}; shares are served "
                                f"once it is closed")
        return self.store.latest_boxes(name)


def _json(handler):
    async def endpoint(request: Request) -> Response:
        try:
            return JSONResponse(await handler(request))
        except ApiError as e:
            return JSONResponse({"error": e.message}, status_code=e.status)
        except StoreError as e:
            return JSONResponse({"error": e.message}, status_code=e.status)
    return endpoint


def build_app(provider: Provider) -> Starlette:
    """The Starlette application of `provider`."""
    async def index(request: Request) -> Response:
        page = WEB / "index.html"
        if not page.is_file():
            return JSONResponse({"error": "the contributor page is not built"}, 404)
        return FileResponse(page)

    routes = [
        Route("/", index),
        Route("/api/session", _json(provider.session_info)),
        Route("/api/submit", _json(provider.submit), methods=["POST"]),
        Route("/api/analyst/{action}", _json(provider.analyst), methods=["GET", "POST"]),
        Route("/api/server/{name}/challenge", _json(provider.challenge), methods=["POST"]),
        Route("/api/server/{name}/shares", _json(provider.server_shares)),
    ]
    routes.append(Route("/static/{path:path}", static))
    return Starlette(routes=routes)


#: what the page is made of: its own files and the vendored libraries, nothing else of web/
#: (not its build files, not node_modules)
STATIC_SUFFIXES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html",
                   ".txt": "text/plain"}


async def static(request: Request) -> Response:
    """One file of the page (or of vendor/), by an exact relative path."""
    rel = Path(request.path_params["path"])
    target = (WEB / rel).resolve()
    inside = target.is_relative_to(WEB.resolve()) and ".." not in rel.parts
    allowed = len(rel.parts) == 1 or (len(rel.parts) >= 2 and rel.parts[0] == "vendor")
    if not (inside and allowed and target.suffix in STATIC_SUFFIXES and target.is_file()
            and rel.name != "build-vendor.mjs"):
        return JSONResponse({"error": "not found"}, 404)
    return FileResponse(target, media_type=STATIC_SUFFIXES[target.suffix])


def write_token(path: Path) -> str:
    """A fresh analyst token in a new 0600 file (replacing an older one)."""
    token = secrets.token_urlsafe(32)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def serve(session_path: str, listen: str, db: Path, *, open_now: bool = False,
          quiet: bool = False) -> int:
    """Run the provider until interrupted (`sqlmpc provider`)."""
    import uvicorn

    from ..compiler.errors import SqlmpcError
    session = Session.load(session_path)
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise SqlmpcError(f"--listen {listen!r} is not HOST:PORT")
    store = Store(db, session.name)
    if open_now and store.status == "setup":
        store.move("open")
    token_file = db.with_name(db.name + ".analyst-token")
    provider = Provider(session, store, write_token(token_file))
    print(f"sqlmpc provider: session {session.name} ({store.status}) on http://{host}:{port}/ "
          f"; analyst token in {token_file}", flush=True)
    uvicorn.run(build_app(provider), host=host, port=int(port),
                log_level="warning" if quiet else "info", access_log=not quiet)
    store.close()
    return 0
