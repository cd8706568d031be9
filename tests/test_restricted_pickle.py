"""MPyC's messages decoded by sqlmpc.runtime.restricted_pickle: a peer's pickle that names
anything but numpy's array reconstruction is refused before it runs, malformed arrays that
crash numpy are refused before numpy sees them, and MPyC still computes after install()
(1 party in this process; 3 real parties, one of them malicious, in the slow test)."""

from __future__ import annotations

import builtins
import copyreg
import json
import os
import pathlib
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import time

import mpyc.runtime
import numpy as np
import pytest
from mpc_helpers import run
from mpyc.runtime import mpc
from sqlmpc.compiler.errors import SqlmpcError
from sqlmpc.runtime import restricted_pickle as rp
from sqlmpc.runtime.restricted_pickle import RestrictedPickleError, loads


class Reduces:
    """Pickles as a call of func(*args) (and a state, if given): what a malicious peer sends."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args,
                                                                   self.state)


@pytest.fixture
def restore_mpyc_pickle(monkeypatch):
    """Undo install() after the test (monkeypatch puts back the name it saved)."""
    monkeypatch.setattr(mpyc.runtime, "pickle", mpyc.runtime.pickle)
    monkeypatch.setattr(rp, "_limit", rp._limit)


# --- refusals -----------------------------------------------------------------------------------
def malicious(marker: pathlib.Path) -> list[tuple[object, str]]:
    """(object to pickle, the global its pickle names): each would write marker if loaded."""
    return [
        (Reduces(os.system, (f"touch {marker}",)), f"{os.system.__module__}.system"),
        (Reduces(pathlib.Path.write_text, (marker, "pwned")), "pathlib.Path.write_text"),
        (Reduces(builtins.exec, (f"open({str(marker)!r}, 'w').write('x')",)), "builtins.exec"),
        (Reduces(subprocess.run, (["touch", str(marker)],)), "subprocess.run"),
    ]


@pytest.mark.parametrize("case", range(4))
@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_a_pickle_naming_code_is_refused_and_nothing_runs(tmp_path, case, protocol):
    marker = tmp_path / "marker"
    obj, name = malicious(marker)[case]
    data = pickle.dumps(obj, protocol=protocol)
    with pytest.raises(RestrictedPickleError) as err:
        loads(data)
    if protocol >= 4:  # older protocols name Python 2 modules, or getattr for qualified names
        assert str(err.value) == f"a peer sent a pickle naming {name}; refused"
    assert re.fullmatch(r"a peer sent a pickle naming \S+; refused", str(err.value))
    assert not marker.exists()
    pickle.loads(data)  # the test's own check: the same bytes do run code when unrestricted
    assert marker.exists()


@pytest.mark.parametrize("obj, name", [
    (Reduces(copyreg._reconstructor, (object, object, None)), "copyreg._reconstructor"),
    (Reduces(getattr, ("text", "upper")), "builtins.getattr"),
    (Reduces(np.load, ("x.npy",)), "numpy.load"),
    (np.int64(3), "numpy._core.multiarray.scalar"),
    (bytearray(b"x"), "builtins.bytearray"),
])
def test_everything_outside_the_whitelist_is_refused(obj, name):
    with pytest.raises(RestrictedPickleError, match=f"^a peer sent a pickle naming {name}; "):
        loads(pickle.dumps(obj, protocol=4))


def test_a_peer_chosen_name_is_shown_on_one_line():
    data = b"c" + b"os\nsys\x1btem" + b"\n(S'x'\ntR."  # protocol 0 GLOBAL with a control char
    with pytest.raises(RestrictedPickleError) as err:
        loads(data)
    assert str(err.value) == "a peer sent a pickle naming os.sys?tem; refused"


# Crafted arrays, decoded in a child process: with numpy's own functions whitelisted as they
# are, the first two crash the process (a segmentation fault in numpy 2.4).
CRAFTED = textwrap.dedent('''
    import pickle, sys
    import numpy as np
    from numpy._core.multiarray import _reconstruct
    from sqlmpc.runtime.restricted_pickle import RestrictedPickleError, loads

    class Reduces:
        def __init__(self, *r):
            self.r = r
        def __reduce__(self):
            return self.r

    O = np.dtype("O")
    def array(shape, dtype, entries, fortran=False):
        return Reduces(_reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dtype, fortran, entries))

    class ForgedDtype:  # the object dtype with a state saying it holds no objects
        def __reduce__(self):
            return (np.dtype, ("O8", False, True), (3, "|", None, None, None, -1, -1, 0))

    class ForgedStruct:  # a structured dtype with an object field, flags saying no objects
        def __reduce__(self):
            return (np.dtype, ("V8", False, True),
                    (3, "|", None, ("x",), {"x": (O, 0)}, 8, 1, 0))

    cases = {
        "short list": array((100000,), O, [1, 2]),
        "forged dtype, bytes as pointers": array((1,), ForgedDtype(), b"A" * 8),
        "structured dtype": array((1,), ForgedStruct(), b"A" * 8),
        "huge shape": array((1 << 40,), O, []),
        "negative shape": array((-1,), O, []),
        "not ints": array((1,), O, ["text"]),
        "int64 array": np.arange(3),
        "ndarray called": Reduces(np.ndarray, ((1 << 40,),)),
        "reconstruct of a huge array": Reduces(_reconstruct, (np.ndarray, (1 << 40,), b"b")),
    }
    out = {}
    for name, obj in cases.items():
        try:
            loads(pickle.dumps(obj, protocol=4))
            out[name] = "accepted"
        except RestrictedPickleError as e:
            out[name] = str(e)
    # numpy must ignore a pickled state on its shared object dtype (restricted_pickle relies
    # on it): a forged state leaves the flags alone
    d = np.dtype("O8")
    d.__setstate__((3, "|", None, None, None, -1, -1, 0))
    out["object dtype flags"] = int(np.dtype(object).flags)
    print(repr(out))
''')


def test_crafted_arrays_are_refused_before_numpy_sees_them():
    proc = subprocess.run([sys.executable, "-c", CRAFTED], check=False, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    got = eval(proc.stdout)  # a dict of str -> str | int printed by the child above
    refused = "a peer sent {}; refused".format
    assert got == {
        "short list": refused("a numpy object array of shape (100000,) without exactly "
                              "100000 entries"),
        "forged dtype, bytes as pointers": refused("a numpy object array of shape (1,) without "
                                                   "exactly 1 entries"),
        "structured dtype": refused("a numpy dtype 'V8' (only object arrays are accepted)"),
        "huge shape": refused("a numpy object array of shape (1099511627776,) without exactly "
                              "1099511627776 entries"),
        "negative shape": refused("a numpy array with a malformed shape"),
        "not ints": refused("a numpy object array with entries other than ints"),
        "int64 array": refused("a numpy dtype 'i8' (only object arrays are accepted)"),
        "ndarray called": refused("a malformed pickle (TypeError: '_NdarrayToken' object is "
                                  "not callable)"),
        "reconstruct of a huge array": refused("a numpy array pickle not written by "
                                               "ndarray.__reduce__"),
        "object dtype flags": 63,
    }


def test_message_size_is_bounded(restore_mpyc_pickle):
    data = rp.dumps(list(range(1000)))
    with pytest.raises(RestrictedPickleError) as err:
        loads(data, max_bytes=len(data) - 1)
    assert str(err.value) == (f"a peer sent a {len(data)}-byte message, more than the limit of "
                              f"{len(data) - 1} bytes; refused")
    assert loads(data, max_bytes=len(data)) == list(range(1000))
    assert rp.max_message_bytes() == rp.MAX_MESSAGE_BYTES == 1 << 30
    rp.install(max_message_bytes=100)
    assert rp.max_message_bytes() == 100
    with pytest.raises(RestrictedPickleError, match="more than the limit of 100 bytes"):
        mpyc.runtime.pickle.loads(data)
    with pytest.raises(SqlmpcError, match="must be a positive number of bytes, not 0"):
        rp.install(max_message_bytes=0)


def test_garbage_and_non_bytes_are_one_line():
    with pytest.raises(RestrictedPickleError) as err:
        loads(b"\x80\x04garbage")
    assert str(err.value).startswith("a peer sent a malformed pickle (")
    assert "\n" not in str(err.value)
    with pytest.raises(RestrictedPickleError, match="^a peer message must be bytes, not str$"):
        loads("text")


# --- what MPyC sends still decodes --------------------------------------------------------------
@pytest.mark.parametrize("value", [
    np.array([1, 2**160 + 7, -5, 0], dtype=object),
    np.array([[1, 2, 3], [4, 5, 6]], dtype=object),
    np.asfortranarray(np.array([[1, 2], [3, 4]], dtype=object)),
    np.empty((0, 4), dtype=object),
    np.array(7, dtype=object),
    (3, ["vendor", "day"]),
    {(0, 1, 2): b"\x00" * 16, (1,): b"seed"},
    {"vendor": ["yellow", None, "green"], "fare": [1.5, -2.0], "flag": [True, False]},
    12,
])
def test_round_trip(value):
    got = loads(rp.dumps(value))
    if isinstance(value, np.ndarray):
        assert type(got) is np.ndarray and got.dtype == object and got.shape == value.shape
        assert got.tolist() == value.tolist()
        assert got.flags.f_contiguous == value.flags.f_contiguous
    else:
        assert got == value and type(got) is type(value)


def test_arrays_inside_payloads_come_back_as_plain_shared_arrays():
    a = np.array([1, 2], dtype=object)
    got = loads(rp.dumps((5, [a, a], {"k": (a,)})))
    assert type(got) is tuple and got[0] == 5
    assert all(type(x) is np.ndarray for x in (got[1][0], got[1][1], got[2]["k"][0]))
    assert got[1][0] is got[1][1] is got[2]["k"][0] and got[1][0].tolist() == [1, 2]


def test_install_makes_mpyc_refuse_code(tmp_path, restore_mpyc_pickle):
    marker = tmp_path / "marker"
    evil = pickle.dumps(Reduces(os.system, (f"touch {marker}",)))
    rp.install()
    rp.install()  # idempotent
    assert rp.installed()
    assert mpyc.runtime.pickle.dumps is rp.dumps
    assert mpyc.runtime.pickle.loads(rp.dumps([1, "a"])) == [1, "a"]
    with pytest.raises(RestrictedPickleError, match="naming posix.system|naming nt.system"):
        mpyc.runtime.pickle.loads(evil)
    assert not marker.exists()


class Tagged(bytes):
    """A message tagged with its sender, as runtime/mpc_session.py's channel tags them."""


def test_refusal_hook_hears_the_sender(tmp_path, restore_mpyc_pickle):
    marker = tmp_path / "marker"
    heard = []
    rp.install()
    rp.on_refused(lambda peer, error: heard.append((peer, str(error))))
    try:
        evil = Tagged(pickle.dumps(Reduces(os.system, (f"touch {marker}",))))
        evil.peer = 2
        with pytest.raises(RestrictedPickleError):
            mpyc.runtime.pickle.loads(evil)
        assert mpyc.runtime.pickle.loads(Tagged(rp.dumps(7))) == 7  # plain data: no refusal
    finally:
        rp.on_refused(None)
    assert len(heard) == 1 and heard[0][0] == 2 and "system" in heard[0][1]
    assert not marker.exists()


def test_one_party_mpyc_computes_with_restricted_loads(restore_mpyc_pickle, monkeypatch):
    rp.install()
    decoded = []
    monkeypatch.setattr(mpyc.runtime.pickle, "loads",
                        lambda data: decoded.append(len(data)) or loads(data))
    secfxp, secint = mpc.SecFxp(96, 32), mpc.SecInt(64)

    async def body():
        x = mpc.input(secfxp.array(np.array([1.5, -2.25, 4.0])), senders=0)
        k = mpc.input(secint.array(np.array([3, 9, -4])), senders=0)
        y = x * x + x
        total = mpc.np_sum(k)
        less = k < 5
        return (await mpc.output(y), await mpc.output(total), await mpc.output(less),
                await mpc.transfer({"pid": mpc.pid, "names": ["a", "b"]}))

    y, total, less, sent = run(body)
    assert [float(v) for v in y] == [3.75, 2.8125, 20.0]
    assert int(total) == 8 and [int(v) for v in less] == [1, 0, 1]
    assert sent == [{"pid": 0, "names": ["a", "b"]}]
    assert decoded  # MPyC really went through the restricted loads


# --- 3 parties, one of them malicious -----------------------------------------------------------
THREE_PARTIES = textwrap.dedent('''
    import json, os, pickle, sys
    import numpy as np
    import mpyc.runtime
    from mpyc.runtime import mpc
    from numpy._core.multiarray import _reconstruct
    from sqlmpc.runtime import restricted_pickle as rp

    OUT = os.environ["OUT_DIR"]
    rp.install()
    namespace = mpyc.runtime.pickle
    calls = [0]

    def recording(data):
        """rp.loads, counted; a refusal is written to partN.refused (MPyC's own error handling
        then stops this party: children of -M3 write no stderr to read)."""
        calls[0] += 1
        try:
            return rp.loads(data)
        except rp.RestrictedPickleError as e:
            with open(os.path.join(OUT, f"party{mpc.pid}.refused"), "w") as fh:
                fh.write(str(e))
            raise

    namespace.loads = recording

    class Reduces:
        def __init__(self, *r):
            self.r = r
        def __reduce__(self):
            return self.r

    EVIL = {  # what party 1 sends once it turns malicious
        "command": Reduces(os.system, ("touch " + os.environ["MARKER"],)),
        # an object array whose state lists 2 of its 100000 entries: numpy's own unpickling
        # reads past the list (a segmentation fault)
        "crash": Reduces(_reconstruct, (np.ndarray, (0,), b"b"),
                         (1, (100000,), np.dtype("O"), False, [1, 2])),
    }[os.environ["EVIL"]]

    async def main():
        secint = mpc.SecInt(64)
        await mpc.start()
        with open(os.path.join(OUT, f"party{mpc.pid}.pid"), "w") as fh:
            fh.write(str(os.getpid()))
        res = {"installed": rp.installed()}
        mine = secint.array(np.array([mpc.pid + 1, 10 * mpc.pid]))
        xs = mpc.input(mine, senders=[0, 1, 2])
        res["sum"] = [int(v) for v in await mpc.output(xs[0] + xs[1] + xs[2])]
        res["product"] = [int(v) for v in await mpc.output(xs[1] * xs[2])]
        res["less"] = [int(v) for v in await mpc.output(xs[2] < xs[1])]
        res["transfer"] = await mpc.transfer({"pid": mpc.pid, "names": ["a", "b"]})
        res["calls"] = calls[0]
        with open(os.path.join(OUT, f"party{mpc.pid}.json"), "w") as fh:
            json.dump(res, fh)
        if mpc.pid == 1:
            namespace.dumps = lambda _: pickle.dumps(EVIL)
        await mpc.transfer("hello", senders=[1], receivers=[0, 2])
        if mpc.pid != 1:
            print(f"party {mpc.pid} accepted the message", file=sys.stderr)
        await mpc.shutdown()

    mpc.run(main())
''')


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("evil, refusal", [
    ("command", f"a peer sent a pickle naming {os.system.__module__}.system; refused"),
    ("crash", ("a peer sent a numpy object array of shape (100000,) without exactly 100000 "
              "entries; refused")),
])
def test_three_parties_exchange_with_restricted_loads_and_refuse_a_malicious_peer(
        tmp_path, evil, refusal):
    """All three parties compute with the restricted loads; then party 1 sends parties 0 and 2
    a pickle that would run a command, or one that crashes numpy's unpickling: both stop with
    the one-line refusal, before anything runs or crashes."""
    script = tmp_path / "three_party.py"
    script.write_text(THREE_PARTIES)
    marker = tmp_path / "marker"
    env = dict(os.environ, OUT_DIR=str(tmp_path), MARKER=str(marker), EVIL=evil)
    try:
        proc = subprocess.run([sys.executable, str(script), "-M3", "--no-log"], check=False,
                              env=env, capture_output=True, text=True, timeout=170, cwd=tmp_path)
    finally:  # parties 1 and 2 are started by party 0, without output; party 2 stops by
        # itself (refused), the attacker may wait for its peers forever
        pids = {f.name: int(f.read_text()) for f in tmp_path.glob("party*.pid")}
        deadline = time.monotonic() + 60
        while alive(pids.get("party2.pid")) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in filter(alive, pids.values()):
            os.kill(pid, signal.SIGKILL)
    res = {p: json.loads((tmp_path / f"party{p}.json").read_text()) for p in range(3)}
    for r in res.values():
        assert r["installed"] and r["calls"] > 0
        assert r["sum"] == [6, 30] and r["product"] == [6, 200] and r["less"] == [0, 0]
        assert r["transfer"] == [{"pid": q, "names": ["a", "b"]} for q in range(3)]
    assert proc.returncode == 1, proc.stderr[-3000:]  # party 0 stopped with an error
    assert f"RestrictedPickleError: {refusal}" in proc.stderr
    assert "accepted the message" not in proc.stderr
    for p in (0, 2):
        assert (tmp_path / f"party{p}.refused").read_text() == refusal
    assert not (tmp_path / "party1.refused").exists()
    assert not marker.exists()
