"""SQL's LIKE on secret texts, for the patterns MPC can afford: 'abc' and 'abc%'.

A secret text is a list of 7-byte pieces, piece 0 the most significant, each a number below
2^56 with the bytes big-endian and zero bytes after the text's end (``encoding.py``). So

* ``x LIKE 'abc'`` (no wildcard) is x = 'abc': every piece equals the pattern's piece
  (zero pieces past its end);
* ``x LIKE 'abc%'`` (a prefix of b bytes) holds when pieces 0 .. b//7 - 1 equal the
  pattern's, and the top 8 (b mod 7) bits of piece b//7 equal the pattern's last bytes: a
  comparison of the piece truncated by 2^(8 (7 - b mod 7)), i.e. of its top bits.

Both are the test "these bits of the pieces equal these public bits": one bit extraction of
the pieces involved (``bits.small_bits``: a masked opening and an adder in the small field),
then the product of the matching bits (b or 1 - b per public bit; a product tree of
ceil(log2 #bits) rounds in the small field) and one daBit back into secfxp's field. No
big-field comparison, vectorised over all rows; reveals nothing. A pattern longer than the
column's pieces can hold matches no row (the piece count is public, see ``encoding.py``).

Which patterns have a secure form is decided by the compiler
(``compiler.analyses.secure_expressions.like_pattern``); the others are refused there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from mpyc import asyncoro
from mpyc.runtime import mpc
from mpyc.sectypes import SecureObject

from . import smallfield as sf
from .bits import small_bits, small_to_big_bits
from .encoding import MAX_TEXT_BYTES, PIECE_BITS, is_null, text_pieces
from .table import const, sec_type_of

__all__ = ["like", "plain_like"]


def like(pieces: Sequence[Any], kind: str, text: str) -> Any:
    """x LIKE pattern for a secret text x given as its pieces: ``kind`` "equal" (pattern
    ``text`` without wildcards) or "prefix" (pattern ``text%``). Secret 0/1 per row."""
    stype = sec_type_of(*pieces)
    if stype is None:  # a constant text: decided in the clear
        value = _join(pieces)
        return int(plain_like([value], kind, text)[0])
    n = next(p for p in pieces if isinstance(p, SecureObject)).shape[0]
    checks = _bit_checks(len(pieces), kind, text)
    if checks is None:  # the pattern is longer than any value of the column
        return const(stype.sectype, np.zeros(n, dtype=object), integral=True)
    cols = [pieces[i] if isinstance(pieces[i], SecureObject) else
            const(stype.sectype, np.full(n, int(pieces[i]), dtype=object), integral=True)
            for i, _, _ in checks]
    if not cols:  # 'x LIKE '%'': every row (the NULL flag decides the rest)
        return const(stype.sectype, np.ones(n, dtype=object), integral=True)
    out = _match(mpc.np_stack(cols), [(low, value) for _, low, value in checks], stype, n)
    out.integral = True
    return out


def _bit_checks(k: int, kind: str, text: str) -> list[tuple[int, int, int]] | None:
    """[(piece index, lowest bit checked, the pattern's value of bits low..55)] for a text of
    k pieces, or None when no value of k pieces matches."""
    raw = text.encode("utf-8")
    want = text_pieces(text) if raw else []
    if kind == "equal":
        if len(want) > k:
            return None
        want = want + [0] * (k - len(want))  # the rest of the text must be empty
        return [(i, 0, w) for i, w in enumerate(want)]
    full, rest = divmod(len(raw), MAX_TEXT_BYTES)
    if full + (rest > 0) > k:
        return None
    checks = [(i, 0, want[i]) for i in range(full)]
    if rest:
        low = 8 * (MAX_TEXT_BYTES - rest)
        checks.append((full, low, want[full] >> low))
    return checks


@asyncoro.mpc_coro
async def _match(xs, checks: list[tuple[int, int]], stype: type, n: int):
    """1 where every row of xs (secfxp (c, n), integers in [0, 2^56)) has bits low..55 equal
    to the public value of its check (low, value); secfxp 0/1 (n,)."""
    await mpc.returnType((stype, True, (n,)))
    field = stype.sectype.field
    f = stype.frac_length
    if n == 0:
        return field.array(np.zeros(n, dtype=object), check=False)
    xv = (await mpc.gather(xs)).value.reshape(-1)
    bits = await small_bits(field.array(xv, check=False), PIECE_BITS, scaled=f)
    agree = []  # per checked bit: 1 where the secret bit equals the pattern's
    for i, (low, value) in enumerate(checks):
        for j in range(low, PIECE_BITS):
            b = bits[j, i * n:(i + 1) * n]
            agree.append(b if (value >> (j - low)) & 1 else (1 - b) % sf.P)
    e = np.stack(agree)
    while e.shape[0] > 1:  # product tree: all bits agree
        h = e.shape[0] // 2
        e = np.concatenate([await sf.mul(e[:h], e[h:2 * h]), e[2 * h:]], axis=0)
    big = await small_to_big_bits(np.ascontiguousarray(e[0]), field)
    return field.array(big.value * (1 << f) % field.modulus, check=False)


def _join(pieces: Sequence[Any]) -> str:
    """The text of constant pieces."""
    raw = b"".join(int(p).to_bytes(MAX_TEXT_BYTES, "big") for p in pieces)
    return raw.rstrip(b"\x00").decode("utf-8", errors="replace")


def plain_like(values: Any, kind: str, text: str) -> np.ndarray:
    """x LIKE pattern in the clear (public text columns are strings): a bool array."""
    def one(v: Any) -> bool:
        if is_null(v):
            return False
        s = str(v)
        return s == text if kind == "equal" else s.startswith(text)
    return np.array([one(v) for v in np.asarray(values, dtype=object).reshape(-1)], dtype=bool)
