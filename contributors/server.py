"""A compute server: `sqlmpc server NAME SESSION.toml --key KEYFILE --provider URL`.

Waits until the analyst closes the session, proves to the provider that it holds its private
key (a sealed challenge), fetches the latest sealed box of every contributor for itself, opens
and checks each (session, columns, row count, every share a field element), and runs the
session's compiled analytic in MPyC with the other servers (runtime/mpc_session.py: restricted
message decoding, plan digests compared before any share moves) on the shares as they are. A
box that does not open or check is dropped (the servers then agree to drop that contributor,
backends/mpyc/lib/preshared.py). A recipient writes the result CSV; the others learn nothing.
A server that dies during the computation makes the others stop with one line; running the
servers again retries (the provider keeps the boxes).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

from ..compiler.errors import SqlmpcError
from .client import request
from .field import MODULUS
from .sealing import load_private_key, unseal
from .session import Session

POLL_SECONDS = 1.0


def open_boxes(session: Session, boxes: list[dict], key, log=print) -> dict:
    """{"contributors": [[index, rows]...], "shares": rows x columns of ints} of the boxes
    that open and check; a line in the log for each one dropped (no value in it)."""
    listed, matrix, seen, indexes = [], [], set(), set()
    k = len(session.columns)
    for entry in boxes:
        idx = entry.get("code_index")
        try:
            doc = json.loads(unseal(str(entry.get("box", "")), key))
            rows = check_payload(session, doc)
            if not isinstance(idx, int) or doc["code"] in seen or idx in indexes:
                raise ValueError("a code or index served twice")
        except (ValueError, TypeError, KeyError) as e:
            log(f"contributor #{idx}: submission dropped: {e}")
            continue
        seen.add(doc["code"])
        indexes.add(idx)
        # the code is sealed by the contributor: a provider serving another submission under
        # this index to another server is caught when the servers compare their lists
        tag = hashlib.sha256(f"{session.name}\0{doc['code']}".encode()).hexdigest()[:32]
        listed.append([idx, rows, tag])
        shares = doc["shares"]
        matrix += [[int(shares[j][r]) for j in range(k)] for r in range(rows)]
    return {"contributors": listed, "shares": matrix}


def check_payload(session: Session, doc: dict) -> int:
    """The row count of a well-formed payload for this session; ValueError otherwise."""
    if not isinstance(doc, dict) or doc.get("session") != session.name:
        raise ValueError("not for this session")
    if not isinstance(doc.get("code"), str) or not doc["code"]:
        raise ValueError("no participation code")
    if doc.get("columns") != session.column_names:
        raise ValueError("its columns are not the session's")
    rows = doc.get("rows")
    if not isinstance(rows, int) or isinstance(rows, bool) or not 1 <= rows <= session.max_rows:
        raise ValueError("bad row count")
    shares = doc.get("shares")
    if not isinstance(shares, list) or len(shares) != len(session.columns):
        raise ValueError("not one share list per column")
    for column in shares:
        if not isinstance(column, list) or len(column) != rows:
            raise ValueError("a share list has the wrong length")
        for x in column:
            if not isinstance(x, str) or not x.isdigit() or len(x) > 60 or int(x) >= MODULUS:
                raise ValueError("a share is not a field element")
    return rows


def fetch_boxes(provider: str, name: str, key, wait: float, log=print) -> list[dict]:
    """This server's boxes, once the session is closed (waiting up to `wait` seconds)."""
    base = provider.rstrip("/")
    deadline = time.monotonic() + wait
    said = False
    while True:
        status = request(f"{base}/api/session").get("status")
        if status == "closed":
            break
        if time.monotonic() > deadline:
            raise SqlmpcError(f"the session is still {status} after {wait:g} s; the analyst "
                              f"closes it (POST /api/analyst/close)")
        if not said:
            log(f"waiting for the session to close (it is {status})")
            said = True
        time.sleep(POLL_SECONDS)
    started = time.monotonic()
    challenge = request(f"{base}/api/server/{name}/challenge", "POST", {})["challenge"]
    try:
        answer = unseal(challenge, key).decode()
    except ValueError:
        raise SqlmpcError("the provider's challenge does not open with this key") from None
    boxes = request(f"{base}/api/server/{name}/shares", token=answer)
    log(f"fetched {len(boxes)} box(es) in {time.monotonic() - started:.1f} s")
    return boxes


def run_server(name: str, session_path: str, key_file: Path, provider: str, *,
               out: Path | None = None, wait: float = 3600.0, log=None) -> Path | None:
    """One server's whole part; the result file it wrote (recipients) or None."""
    log = log or (lambda line: print(f"sqlmpc server {name}: {line}", file=sys.stderr,
                                     flush=True))
    session = Session.load(session_path)
    me = session.server(name)
    key = load_private_key(Path(key_file))
    if bytes(key.public_key) != me.public_key:
        raise SqlmpcError(f"{key_file} is not the key of server {name} (its public key "
                          f"differs from the session's)")
    if name in session.recipients and out is None:
        raise SqlmpcError(f"server {name} receives the result: give --out RESULT.csv")
    from ..runtime.mpc_session import Cancelled, MpcSession, load_mpc
    load_mpc()  # before anything imports MPyC: it must not read this process's command line
    from ..runtime.artifacts import secure_program
    from ..runtime.party_run import load_program
    from .analytic import compile_session, decode_result
    plan = compile_session(session)  # before waiting: a bad analytic fails at once
    program = secure_program(plan).text
    boxes = fetch_boxes(provider, name, key, wait, log)
    fetched = time.monotonic()
    mine = open_boxes(session, boxes, key, log)
    log(f"{len(mine['contributors'])} contributor(s), {len(mine['shares'])} row(s) (boxes "
        f"opened in {time.monotonic() - fetched:.1f} s)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"sqlmpc-server-{name}-") as work:
        path = Path(work) / "secure_job.py"
        path.write_text(program)
        module = load_program(path)
        names = [s.name for s in session.servers]
        pid = names.index(name)
        digest = hashlib.sha256(program.encode()).hexdigest()
        mpc_session = MpcSession(names, pid, [s.mpc for s in session.servers],
                                 plan_digest=digest, log=log, connect_timeout=wait)
        share_node = plan.dag.g.graph["contributors"]["share"]
        try:
            frame = mpc_session.run_program(module.main, {share_node: mine})
        except Cancelled as e:
            # MPyC's coroutines still waiting on the lost peer are dropped unawaited: their
            # interpreter-exit warnings would follow the one line below
            warnings.filterwarnings("ignore", message="coroutine .* was never awaited",
                                    category=RuntimeWarning)
            raise SqlmpcError(f"the computation stopped: {e} (run the servers again to "
                              f"retry)") from None
        finally:
            mpc_session.close()
    log(f"computed in {time.monotonic() - started:.1f} s")
    if frame is None:
        log("done (this server receives no result)")
        return None
    result = decode_result(frame, session, plan)
    result.to_csv(out, index=False)
    log(f"wrote {len(result)} row(s) to {out}")
    return out
