"""Unpickling what MPyC peers send, allowing only what MPyC's protocols exchange.

MPyC 0.11 serialises with pickle: ``mpc.transfer`` payloads, and the shares of secure
numpy arrays in ``input_``, ``output`` and ``_reshare`` (``mpyc/runtime.py`` calls
``pickle.dumps`` / ``pickle.loads``). Its scalar shares use ``field.to_bytes`` /
``field.from_bytes``, which decode data only. An unrestricted ``pickle.loads`` runs whatever a
peer's pickle names (``os.system``, ``builtins.eval``, ...). After :func:`install`, MPyC's
runtime decodes every message with :func:`loads`, which builds only plain data.

What the protocols really send (every global named by the pickles MPyC loaded while running
the secure-operation, radix, fixed-point division, join, one-hot and padding tests with 1
party, the 3-party runs and the example queries end to end): object arrays (dtype ``O8``) of
Python ints -- MPyC keeps the shares of every field as Python ints in numpy object arrays --
and ``mpc.transfer`` payloads of ints, strings, bytes, None, floats, bools, lists, tuples and
dicts (sizes, column names, shuffle seeds when PRSS is off, public key columns). The
built-in types need no global: pickle has opcodes for them. The whole whitelist,
:data:`ALLOWED_GLOBALS`:

* ``numpy._core.multiarray._reconstruct`` -- how ``ndarray.__reduce__`` starts every array:
  an empty array, filled by the state that follows. Accepted only with the arguments numpy
  writes, ``(numpy.ndarray, (0,), b"b")``, and filled only through the checks below.
  ``numpy.core.multiarray._reconstruct`` is the same entry as written by numpy 1.x peers.
* ``numpy.ndarray`` -- only as the class argument of ``_reconstruct``; it resolves to an
  inert token, so a pickle cannot call ``numpy.ndarray(shape)`` to allocate memory.
* ``numpy.dtype`` -- only ``dtype("O8", False, True)``, which resolves to numpy's shared
  built-in object dtype. numpy ignores ``__setstate__`` on its built-in dtypes, so the dtype
  state that follows in the pickle cannot forge the dtype's flags.

Why the array state is checked rather than passed to numpy (both crash a party with numpy
2.4, found while writing this module): numpy's ``ndarray.__setstate__`` trusts its input --
an object array whose state lists fewer entries than its shape makes numpy read past the
list (a segmentation fault), and a dtype rebuilt from a pickle may claim to hold no objects
while it does, which turns raw bytes into object pointers. Here an array's state must be
version 1, a shape of non-negative ints, the built-in object dtype and a list of exactly
``prod(shape)`` Python ints; anything else is refused before numpy sees it.

Messages are bounded (``max_message_bytes``, 1 GiB unless configured): a larger message is
refused before decoding. MPyC's own framing already holds a message in memory by then
(its header counts at most 4 GiB), so the bound limits the decoded objects, not the
receive buffer.

Scope: this covers MPyC's runtime only. Code that calls ``pickle.loads`` itself on bytes
from ``mpc._receive_message`` must call :func:`loads` (or send raw array bytes) instead.
"""

from __future__ import annotations

import io
import math
import pickle
import sys
import types
from collections.abc import Callable
from typing import Any

import numpy as np

from ..compiler.errors import SqlmpcError

__all__ = ["ALLOWED_GLOBALS", "MAX_MESSAGE_BYTES", "PICKLE_PROTOCOL", "RestrictedPickleError",
           "dumps", "install", "installed", "loads", "max_message_bytes", "on_refused"]

# The default bound on one message; protocols here send at most a few MB per message.
MAX_MESSAGE_BYTES = 1 << 30

# What dumps() writes, whatever Python's default: protocol 5 (Python 3.14's default) would
# pickle contiguous arrays through numpy._core.numeric._frombuffer, outside the whitelist.
PICKLE_PROTOCOL = 4

# Every global a peer's pickle may name: (module, name) -> what it resolves to here. The
# module docstring says why each is needed and how it is restricted.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
})

# The dtypes an array may have, by the code numpy writes in dtype.__reduce__; each must be
# numpy's shared built-in instance (checked below), whose __setstate__ numpy ignores.
_DTYPES: dict[str, np.dtype] = {"O8": np.dtype("O8")}
assert all(np.dtype(code) is dt for code, dt in _DTYPES.items()), "numpy dtypes not shared"

# The object dtype's flags, checked again on every array: numpy must not have let a pickled
# dtype state change them (see _builtin_dtype).
_OBJECT_FLAGS = _DTYPES["O8"].flags

# Python types allowed as the entries of an object array: MPyC's field shares are ints.
_OBJECT_ENTRY_TYPES = frozenset({int})

# How deep loads() looks into lists, tuples and dicts to hand back plain numpy arrays.
_MAX_NESTING = 64

_limit = MAX_MESSAGE_BYTES


class RestrictedPickleError(SqlmpcError, pickle.UnpicklingError):
    """A peer's message is not plain data of the kinds MPyC exchanges; it was not decoded."""


def _shown(text: object, width: int = 80) -> str:
    """A peer-chosen string made safe for a one-line message: printable, at most width chars."""
    s = "".join(c if c.isprintable() else "?" for c in str(text))
    return s if len(s) <= width else s[:width - 3] + "..."


def _refuse(what: str) -> RestrictedPickleError:
    return RestrictedPickleError(f"a peer sent {what}; refused")


class _NdarrayToken:
    """What ``numpy.ndarray`` resolves to: not callable and not a type, so a pickle can name
    the class only where ``_reconstruct`` expects it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<numpy.ndarray, as a pickle argument only>"


_NDARRAY = _NdarrayToken()


class _CheckedArray(np.ndarray):
    """An array being unpickled: its ``__setstate__`` checks the state before numpy's runs.
    loads() hands back plain ``numpy.ndarray`` views of these; pickling one writes a plain
    ndarray, so an array left inside a deeply nested payload is still safe to send on."""

    def __setstate__(self, state: Any) -> None:
        np.ndarray.__setstate__(self, _checked_array_state(state))

    def __reduce_ex__(self, protocol):  # type: ignore[override]
        return self.view(np.ndarray).__reduce_ex__(protocol)

    def __reduce__(self):  # type: ignore[override]
        return self.view(np.ndarray).__reduce__()


def _checked_array_state(state: Any) -> tuple:
    """The state numpy's ndarray.__reduce__ writes, (1, shape, dtype, fortran, entries), with
    every part checked; raises RestrictedPickleError otherwise."""
    if type(state) is not tuple or len(state) != 5:
        raise _refuse("a numpy array state that is not a 5-tuple")
    version, shape, dtype, fortran, entries = state
    if type(version) is not int or version != 1:
        raise _refuse(f"a numpy array state of version {_shown(version)}")
    if type(shape) is not tuple or not all(type(d) is int and d >= 0 for d in shape):
        raise _refuse("a numpy array with a malformed shape")
    if not any(dtype is dt for dt in _DTYPES.values()) or dtype.flags != _OBJECT_FLAGS:
        raise _refuse("a numpy array of a dtype other than object")
    if type(fortran) is not bool:
        raise _refuse("a numpy array with a malformed order flag")
    size = math.prod(shape)
    if type(entries) is not list or len(entries) != size:
        raise _refuse(f"a numpy object array of shape {_shown(shape)} without exactly "
                      f"{size} entries")
    if not set(map(type, entries)) <= _OBJECT_ENTRY_TYPES:
        raise _refuse("a numpy object array with entries other than ints")
    return (1, shape, dtype, fortran, entries)


def _builtin_dtype(code: Any, align: Any = False, copy: Any = False) -> np.dtype:
    """``numpy.dtype`` as a pickle may call it: only the object dtype, as numpy's shared
    instance (numpy writes ``dtype("O8", False, True)``; copy is ignored on purpose)."""
    dtype = _DTYPES.get(code) if type(code) is str else None
    if dtype is None or align is not False:
        raise _refuse(f"a numpy dtype {_shown(code)!r} (only object arrays are accepted)")
    return dtype


class _RestrictedUnpickler(pickle.Unpickler):
    """The C unpickler, with globals resolved only through ALLOWED_GLOBALS."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.arrays: list[_CheckedArray] = []

    def _reconstruct(self, subtype: Any, shape: Any, typecode: Any) -> _CheckedArray:
        if subtype is not _NDARRAY or type(shape) is not tuple or shape != (0,) \
                or type(typecode) is not bytes or typecode != b"b":
            raise _refuse("a numpy array pickle not written by ndarray.__reduce__")
        array = _CheckedArray((0,), dtype="b")
        self.arrays.append(array)
        return array

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise _refuse(f"a pickle naming {_shown(module)}.{_shown(name)}")
        if name == "_reconstruct":
            return self._reconstruct
        return _NDARRAY if name == "ndarray" else _builtin_dtype

    def persistent_load(self, pid: Any) -> Any:
        raise _refuse("a pickle with a persistent id")


def _plain(obj: Any, seen: dict[int, Any], depth: int) -> Any:
    """obj with every _CheckedArray in it (through lists, tuples and dicts) replaced by a
    plain ndarray view; lists and dicts are changed in place, shared objects stay shared."""
    kind = type(obj)
    if kind is _CheckedArray:
        if id(obj) not in seen:
            seen[id(obj)] = obj.view(np.ndarray)
        return seen[id(obj)]
    if kind not in (list, tuple, dict) or depth > _MAX_NESTING:
        return obj  # anything left over is a checked array: safe, only not a plain ndarray
    if id(obj) in seen:
        return seen[id(obj)]
    seen[id(obj)] = obj
    if kind is list:
        obj[:] = [_plain(x, seen, depth + 1) for x in obj]
    elif kind is dict:
        for key, value in obj.items():
            obj[key] = _plain(value, seen, depth + 1)
    else:
        items = tuple(_plain(x, seen, depth + 1) for x in obj)
        if any(a is not b for a, b in zip(items, obj)):
            seen[id(obj)] = obj = items
    return obj


def loads(data: bytes | bytearray | memoryview, *, max_bytes: int | None = None) -> Any:
    """Decode one message from a peer, allowing only the globals in ALLOWED_GLOBALS.

    Raises RestrictedPickleError (one line, naming what was refused) for a message that is too
    large, names any other global, or holds a malformed array; nothing it names is called.

    >>> loads(dumps((3, ["a", b"b"], {"k": None})))
    (3, ['a', b'b'], {'k': None})
    """
    limit = _limit if max_bytes is None else max_bytes
    try:
        size = memoryview(data).nbytes
    except TypeError:
        raise RestrictedPickleError(f"a peer message must be bytes, not "
                                    f"{type(data).__name__}") from None
    if size > limit:
        raise _refuse(f"a {size}-byte message, more than the limit of {limit} bytes")
    unpickler = _RestrictedUnpickler(bytes(data) if not isinstance(data, bytes) else data)
    try:
        obj = unpickler.load()
    except RestrictedPickleError:
        raise
    except Exception as e:  # noqa: BLE001 -- any failure to decode a peer's bytes: one line
        first = (str(e).splitlines() or [""])[0]
        raise _refuse(f"a malformed pickle ({type(e).__name__}: {_shown(first)})") from None
    if not unpickler.arrays:
        return obj
    if type(obj) is _CheckedArray:
        return obj.view(np.ndarray)
    return _plain(obj, {}, 0)


def dumps(obj: Any) -> bytes:
    """Pickle obj with PICKLE_PROTOCOL (what loads() reads, whatever Python's default)."""
    return pickle.dumps(obj, protocol=PICKLE_PROTOCOL)


def max_message_bytes() -> int:
    """The current bound on one message, in bytes."""
    return _limit


# Told about every refused message MPyC's runtime received (see on_refused).
_refusal_hooks: list[Callable[[Any, RestrictedPickleError], None]] = []


def on_refused(hook: Callable[[Any, RestrictedPickleError], None] | None) -> None:
    """Call hook(peer, error) for every message MPyC's runtime refuses from now on (None: no
    hook). `peer` is the message's `peer` attribute when the channel tagged it with the
    sender, else None. The error is raised to MPyC afterwards all the same."""
    _refusal_hooks[:] = [hook] if hook is not None else []


def _mpyc_loads(data: Any) -> Any:
    """loads() for MPyC's runtime: a refusal is also told to the hook, naming the sender."""
    try:
        return loads(data)
    except RestrictedPickleError as e:
        for hook in list(_refusal_hooks):
            hook(getattr(data, "peer", None), e)
        raise


# What mpyc.runtime's name `pickle` is bound to after install(): only the two functions the
# runtime calls.
_MPYC_PICKLE = types.SimpleNamespace(dumps=dumps, loads=_mpyc_loads)


def install(*, max_message_bytes: int | None = None) -> None:
    """Make MPyC's runtime decode peers' messages with loads() (and encode with dumps()).

    Replaces the name ``pickle`` in ``mpyc.runtime`` with a namespace holding only ``dumps``
    and ``loads``; call it in every party before ``mpc.start()``. Idempotent; a given
    max_message_bytes (a positive int) replaces the bound for every later message.
    """
    global _limit
    if max_message_bytes is not None:
        if type(max_message_bytes) is not int or max_message_bytes <= 0:
            raise SqlmpcError(f"max_message_bytes must be a positive number of bytes, not "
                              f"{max_message_bytes!r}")
        _limit = max_message_bytes
    import mpyc.runtime  # here: importing it reads MPyC's command-line options

    mpyc.runtime.pickle = _MPYC_PICKLE


def installed() -> bool:
    """Whether MPyC's runtime currently decodes with loads()."""
    runtime = sys.modules.get("mpyc.runtime")
    return runtime is not None and getattr(runtime, "pickle", None) is _MPYC_PICKLE
