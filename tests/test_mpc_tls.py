"""The MPyC channel between parties (runtime/mpc_session.py): it listens on the party's own host
only, with identities every connection is mutual TLS and each peer must hold the certificate
of the party whose MPyC id it claims, and a peer's pickle is refused without running.

Real sockets on 127.0.0.1: the party under test runs its MpcSession in this process (the MPyC
runtime is one per process), the peers are raw TLS sockets in a thread or a party process.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlmpc.runtime.identity import (
    IdentityError,
    client_context,
    make_test_identities,
    server_context,
)
from sqlmpc.runtime.mpc_session import Cancelled, MpcSession
from sqlmpc.runtime.workspace import free_port

NAMES = ["alice", "bob", "carol"]


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return make_test_identities(tmp_path_factory.mktemp("keys"), NAMES, ["ana"])


def folder(keys, party: str) -> str:
    return str(keys.parties[party].cert.parent)


async def _connected(_inputs):
    from mpyc.runtime import mpc
    await mpc.start()
    return "connected"


def _dial(port: int, ctx: ssl.SSLContext, tries: int = 200) -> ssl.SSLSocket:
    for _ in range(tries):
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=5)
            break
        except OSError:
            time.sleep(0.05)
    else:
        raise AssertionError(f"nobody listens on {port}")
    return ctx.wrap_socket(raw)


def _closed_by_peer(s: socket.socket) -> bool:
    """Whether the other end closed the connection (it sends nothing before our peers do)."""
    s.settimeout(5)
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, ssl.SSLError, OSError):
        return True


def _anonymous() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_the_party_listens_only_on_its_own_host():
    """Also without TLS: MPyC's own start listens on every interface (0.0.0.0)."""
    ports = [free_port(), free_port()]
    session = MpcSession(["a", "b"], 1, [f"127.0.0.1:{p}" for p in ports], connect_timeout=5)
    try:
        session.connect_early()
        loop = session.query.loop
        loop.run_until_complete(__import__("asyncio").sleep(0.3))
        bound = [s.getsockname()[:2] for srv in session.query.servers for s in srv.sockets]
        assert bound == [("127.0.0.1", ports[1])]
    finally:
        session.close()


def test_an_identity_folder_of_another_party_is_refused(keys):
    with pytest.raises(IdentityError, match="is party 'bob', not party 'alice'"):
        MpcSession(NAMES, 0, ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"],
                   identity_dir=folder(keys, "bob"))


def test_listening_party_accepts_only_the_party_its_certificate_names(keys):
    """carol (id 2) listens for alice (0) and bob (1). Refused, each with one log line and
    never a peer: bob's certificate claiming alice's id, an analyst's certificate, an id out of
    range, carol's own id, no client certificate, and a second alice. The real alice is taken."""
    ports = [free_port() for _ in NAMES]
    lines: list[str] = []
    session = MpcSession(NAMES, 2, [f"127.0.0.1:{p}" for p in ports],
                         identity_dir=folder(keys, "carol"), connect_timeout=8, log=lines.append)
    alice, bob = client_context(keys.parties["alice"]), client_context(keys.parties["bob"])
    analyst = client_context(keys.analysts["ana"])
    prss = os.urandom(16)  # alice's PRSS key for the subset {alice, carol}
    outcome: dict = {}
    done = threading.Event()

    def peers() -> None:
        try:
            for name, ctx, claim in [("bob as alice", bob, 0), ("analyst", analyst, 0),
                                     ("out of range", alice, 7), ("own id", alice, 2)]:
                s = _dial(ports[2], ctx)
                s.sendall(claim.to_bytes(2, "little") + prss)
                outcome[name] = _closed_by_peer(s)
                s.close()
            try:
                s = _dial(ports[2], _anonymous())
                s.sendall((0).to_bytes(2, "little") + prss)
                outcome["no certificate"] = _closed_by_peer(s)
            except (ssl.SSLError, OSError):
                outcome["no certificate"] = True
            real = _dial(ports[2], alice)
            real.sendall((0).to_bytes(2, "little") + prss)
            time.sleep(0.5)
            second = _dial(ports[2], alice)
            second.sendall((0).to_bytes(2, "little") + prss)
            outcome["second alice"] = _closed_by_peer(second)
            done.wait(30)  # keep the real alice connected until carol gives up on bob
            real.close()
        except Exception as e:  # noqa: BLE001 -- reported by the assertions below
            outcome["error"] = repr(e)

    thread = threading.Thread(target=peers, daemon=True)
    thread.start()
    try:
        with pytest.raises(Cancelled) as stopped:
            session.run_program(_connected, {})
        bound = [s.getsockname()[:2] for srv in session.query.servers for s in srv.sockets]
        connected = [p.pid for p in session.mpc.parties if p.protocol is not None]
    finally:
        done.set()
        session.close()
        thread.join(10)
    assert "error" not in outcome, outcome
    assert outcome == {k: True for k in ["bob as alice", "analyst", "out of range", "own id",
                                         "no certificate", "second alice"]}
    assert bound == [("127.0.0.1", ports[2])]
    assert 0 in connected and 1 not in connected  # the real alice is carol's peer, nobody else
    message = str(stopped.value)
    assert message.startswith("could not connect to bob within 8 s"), message
    assert all("\n" not in line and line.startswith("refused a connection: ") for line in lines)
    text = "\n".join(lines)
    assert "claiming to be party alice presented the certificate of party 'bob'" in text
    assert "claiming to be party alice presented the certificate of analyst 'ana'" in text
    assert "claims MPyC id 7; only ids below 2 connect" in text
    assert "claims MPyC id 2; only ids below 2 connect" in text
    assert "claims to be party alice, already connected" in text
    assert len(lines) == 5, lines  # the certificate-less one never completes its handshake


def test_dialling_party_checks_whom_it_reached(keys):
    """alice (id 0) dials bob's address, where carol's certificate answers: alice closes the
    connection before saying who she is or sending a key, logs one line, and never connects."""
    ports = [free_port(), free_port()]
    lines: list[str] = []
    session = MpcSession(["alice", "bob"], 0, [f"127.0.0.1:{p}" for p in ports],
                         identity_dir=folder(keys, "alice"), connect_timeout=3, log=lines.append)
    impostor = server_context(keys.parties["carol"])
    received: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", ports[1]))
    listener.settimeout(0.5)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except OSError:
                continue
            try:
                with impostor.wrap_socket(raw, server_side=True) as s:
                    s.settimeout(2)
                    received.append(s.recv(100))
            except (ssl.SSLError, OSError):
                received.append(b"")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(Cancelled, match="could not connect to bob within 3 s .last refused: "
                                            "a peer from 127.0.0.1:.* answering as party bob "
                                            "presented the certificate of party 'carol'"):
            session.run_program(_connected, {})
    finally:
        stop.set()
        session.close()
        thread.join(5)
        listener.close()
    assert received and set(received) == {b""}  # alice never told the impostor anything
    assert len(lines) == 1 and "party 'carol'" in lines[0]


PARTY_SCRIPT = """
import json, sys
from sqlmpc.runtime.mpc_session import Cancelled, MpcSession
names, pid, addresses = json.loads(sys.argv[1])
session = MpcSession(names, pid, addresses, connect_timeout=60)
mpc = session.mpc

async def main(_inputs):
    await mpc.start()
    got = await mpc.transfer(mpc.pid * 10)
    await mpc.shutdown()
    return got

try:
    print(json.dumps({"result": session.run_program(main, {})}))
except Cancelled as e:
    print(json.dumps({"error": str(e)}))
finally:
    session.close()
"""


class Reduces:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _party_process(names: list[str], pid: int, addresses: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", PARTY_SCRIPT,
                             json.dumps([names, pid, addresses])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_peers_pickle_is_refused_and_nothing_runs(tmp_path, monkeypatch):
    """alice plays her part in this process but sends a pickle that would run a shell command;
    bob, a party process, refuses it: one line naming alice, his run ends, the command never
    ran. A control run with an honest alice gives the right answer."""
    import mpyc.runtime
    names = ["alice", "bob"]
    marker = tmp_path / "pwned"

    def run(evil: bool) -> tuple[dict, str]:
        addresses = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
        bob = _party_process(names, 1, addresses)
        alice = MpcSession(names, 0, addresses, connect_timeout=60)
        real = mpyc.runtime.pickle
        if evil:
            monkeypatch.setattr(mpyc.runtime, "pickle", type("P", (), {
                "dumps": staticmethod(lambda obj: pickle.dumps(
                    Reduces(os.system, (f"touch {marker}",)))),
                "loads": staticmethod(real.loads)}))

        async def main(_inputs):
            await alice.mpc.start()
            got = await alice.mpc.transfer(0)
            await alice.mpc.shutdown()
            return got
        try:
            alice.run_program(main, {})
        except Cancelled:
            pass
        finally:
            alice.close()
            monkeypatch.setattr(mpyc.runtime, "pickle", real)
        out, err = bob.communicate(timeout=120)
        return json.loads(out.strip().splitlines()[-1]), err

    reply, err = run(evil=True)
    assert not marker.exists()
    assert reply.get("error", "").startswith("party alice sent a pickle naming "), reply
    assert "system" in reply["error"] and reply["error"].endswith("refused")
    assert "Traceback" not in err, err
    honest, err = run(evil=False)
    assert honest == {"result": [0, 10]}, (honest, err)
    assert not marker.exists()


# --- the parties agree on the plan with each other before any share is sent --------------------
def _frame(pc: int, payload: bytes) -> bytes:
    import struct
    return struct.pack("<qI", pc, len(payload)) + payload


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    import struct
    out = []
    while len(data) >= 12:
        pc, size = struct.unpack_from("<qI", data)
        out.append((pc, data[12:12 + size]))
        data = data[12 + size:]
    return out


def _peer_alice(port: int, plan: bytes | None, got: dict, hold: threading.Event) -> None:
    """A raw MPyC party 0 of two (plaintext): says who it is, sends its PRSS key and (unless
    None) `plan` as its plan-digest message, then records everything bob sends until bob closes
    or `hold` is set."""
    from sqlmpc.runtime.mpc_session import PLAN_PC
    try:
        for _ in range(200):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                time.sleep(0.05)
        s.sendall((0).to_bytes(2, "little") + os.urandom(16)
                  + (b"" if plan is None else _frame(PLAN_PC, plan)))
        s.settimeout(0.2)
        data = b""
        while not hold.is_set():
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        got["frames"] = _frames(data)
        s.close()
    except Exception as e:  # noqa: BLE001 -- reported by the test's assertions
        got["error"] = repr(e)


def _bob_with_peer(plan: bytes | None, digest: str = "b" * 64, timeout: float = 10):
    """bob (MPyC id 1 of two) in this process, alice a raw peer sending `plan`: (what bob's
    program returned or the Cancelled it raised, whether bob's program went past
    `mpc.start()`, the frames alice received)."""
    ports = [free_port(), free_port()]
    session = MpcSession(["alice", "bob"], 1, [f"127.0.0.1:{p}" for p in ports],
                         plan_digest=digest, connect_timeout=timeout)
    reached: list[str] = []

    async def program(_inputs):
        await session.mpc.start()
        reached.append("past start")  # where a generated program inputs its shares
        return "connected"

    got: dict = {}
    hold = threading.Event()
    thread = threading.Thread(target=_peer_alice, args=(ports[1], plan, got, hold), daemon=True)
    thread.start()
    try:
        try:
            outcome = session.run_program(program, {})
        except Cancelled as e:
            outcome = e
    finally:
        session.close()  # a failed query aborts its connections: alice sees bob close
        hold.set()
        thread.join(10)
    assert "error" not in got, got
    return outcome, reached, got["frames"]


def test_a_peer_with_another_plan_stops_the_party_before_its_program_runs():
    """alice says she runs a different plan than bob: bob stops with one line naming her, his
    program never gets past `mpc.start()` (so no share is input), and all alice ever received
    from bob is his own plan digest."""
    from sqlmpc.runtime.mpc_session import PLAN_PC, PLAN_TAG
    outcome, reached, frames = _bob_with_peer(PLAN_TAG + b"a" * 64)
    assert isinstance(outcome, Cancelled), outcome
    assert str(outcome) == ("party alice runs a different plan (its catalog, options or query "
                            "differ); stopped before any data was shared")
    assert reached == []
    assert frames == [(PLAN_PC, PLAN_TAG + b"b" * 64)]


def test_a_peer_with_the_same_plan_lets_the_program_run():
    """The control: alice sends bob's own digest, and bob's program runs past `mpc.start()`."""
    from sqlmpc.runtime.mpc_session import PLAN_PC, PLAN_TAG
    outcome, reached, frames = _bob_with_peer(PLAN_TAG + b"b" * 64)
    assert outcome == "connected" and reached == ["past start"]
    assert frames[0] == (PLAN_PC, PLAN_TAG + b"b" * 64)


def test_a_peer_that_never_says_its_plan_is_a_timeout_naming_it():
    outcome, reached, frames = _bob_with_peer(None, timeout=1)
    assert isinstance(outcome, Cancelled), outcome
    assert str(outcome) == "alice connected but did not say which plan it runs within 1 s"
    assert reached == []


def test_a_peer_without_a_plan_disagrees_with_one_with_a_plan():
    """A party given no digest (an old spec) does not run with one that has a digest."""
    from sqlmpc.runtime.mpc_session import PLAN_TAG
    outcome, reached, _ = _bob_with_peer(PLAN_TAG)
    assert isinstance(outcome, Cancelled) and "party alice runs a different plan" in str(outcome)
    assert reached == []


PLAN_PARTY_SCRIPT = """
import json, sys
from sqlmpc.runtime.mpc_session import Cancelled, MpcSession
names, pid, addresses, identity, digest = json.loads(sys.argv[1])
session = MpcSession(names, pid, addresses, identity_dir=identity, plan_digest=digest,
                     connect_timeout=60)
mpc = session.mpc

async def main(_inputs):
    await mpc.start()
    print("past start: inputting shares", file=sys.stderr, flush=True)
    got = await mpc.transfer(mpc.pid * 10)
    await mpc.shutdown()
    return got

try:
    print(json.dumps({"result": session.run_program(main, {})}))
except Cancelled as e:
    print(json.dumps({"error": str(e)}))
finally:
    session.close()
"""


def _three_parties(keys, digests: dict[str, str]) -> dict[str, tuple[dict, str]]:
    """alice, bob and carol as party processes over mutual TLS, each with its plan digest:
    {name: (its JSON reply, its stderr)}."""
    addresses = [f"127.0.0.1:{free_port()}" for _ in NAMES]
    procs = {name: subprocess.Popen(
        [sys.executable, "-c", PLAN_PARTY_SCRIPT,
         json.dumps([NAMES, pid, addresses, folder(keys, name), digests[name]])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for pid, name in enumerate(NAMES)}
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        out[name] = (json.loads(stdout.strip().splitlines()[-1]), stderr)
    return out


@pytest.mark.slow
def test_three_parties_one_with_another_plan_all_stop_before_sharing(keys):
    """carol was sent another query (a different plan digest) than alice and bob: all three
    stop with one line naming a party with another plan (alice and bob name carol), and none
    gets past `mpc.start()`, where the shares would be input. The control run with equal
    digests transfers."""
    line = ("runs a different plan (its catalog, options or query differ); stopped before any "
            "data was shared")
    runs = _three_parties(keys, {"alice": "a" * 64, "bob": "a" * 64, "carol": "c" * 64})
    for name, (reply, err) in runs.items():
        assert "past start" not in err, (name, err)
        assert "Traceback" not in err, (name, err)
        assert reply.get("error", "").endswith(line), (name, reply)
    assert runs["alice"][0]["error"] == f"party carol {line}"
    assert runs["bob"][0]["error"] == f"party carol {line}"
    assert runs["carol"][0]["error"] in (f"party alice {line}", f"party bob {line}")
    honest = _three_parties(keys, {name: "a" * 64 for name in NAMES})
    for name, (reply, err) in honest.items():
        assert reply == {"result": [0, 10, 20]}, (name, reply, err)


def test_a_peer_not_listening_yet_is_dialled_again_soon_then_less_often():
    """Its agent may be milliseconds behind: the first pauses are short (a fixed 0.1 s cost
    a run at least that much), then they grow to DIAL_MAX_PAUSE for one long in starting."""
    from itertools import islice

    from sqlmpc.runtime.mpc_session import DIAL_MAX_PAUSE, dial_pauses
    pauses = list(islice(dial_pauses(), 12))
    assert pauses[0] <= 0.01 and sum(pauses[:4]) < 0.1
    assert all(a <= b for a, b in zip(pauses, pauses[1:])) and pauses[-1] == DIAL_MAX_PAUSE
