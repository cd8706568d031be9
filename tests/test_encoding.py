"""Tests of the plaintext <-> number encoding of SQL types (no MPC involved)."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmpc.backends.mpyc.lib import encoding as enc
from sqlmpc.backends.mpyc.lib.encoding import MAX_TEXT_BYTES, EncodingError


def test_int_roundtrip_exact_beyond_float53():
    vals = [0, -1, 2**62 + 1, -(2**62) - 3, 12345]
    e = enc.encode_column(vals, "int")
    assert e.dtype == object and all(isinstance(x, int) for x in e)
    assert list(e) == vals
    assert enc.decode_column(e, "int") == vals
    assert enc.decode_column([2.6, -2.6], "int") == [3, -3]


def test_int_from_pandas_and_numpy():
    s = pd.Series([1, 2, 3], dtype="int64")
    assert list(enc.encode_column(s, "int")) == [1, 2, 3]
    assert list(enc.encode_column(np.array([4, 5], dtype=np.int64), "int")) == [4, 5]
    with pytest.raises(EncodingError):
        enc.encode_column([1.5], "int")


def test_decimal_and_float():
    e = enc.encode_column(pd.Series([1.25, -3.1, 0.0]), "decimal(10,2)")
    assert e.dtype == np.float64
    dec = enc.decode_column([1.2500000001, -3.0999999, 0.004], "decimal(10,2)")
    assert dec == [1.25, -3.1, 0.0]
    assert enc.decode_column([0.1], "float") == [0.1]
    assert enc.encode_column(["2.5"], "float").tolist() == [2.5]
    with pytest.raises(EncodingError):
        enc.encode_column([float("inf")], "float")


def test_bool():
    assert list(enc.encode_column([True, False, "true", "0"], "bool")) == [1, 0, 1, 0]
    assert enc.decode_column([1, 0, 1.0], "bool") == [True, False, True]


def test_date_inputs_and_roundtrip():
    d = datetime.date(2024, 2, 29)
    days = (d - datetime.date(1970, 1, 1)).days
    inputs = [d, "2024-02-29", np.datetime64("2024-02-29"), pd.Timestamp("2024-02-29 13:00"),
              datetime.datetime(2024, 2, 29, 1, 2)]
    assert list(enc.encode_column(inputs, "date")) == [days] * 5
    assert list(enc.encode_column(pd.Series(pd.to_datetime(["2024-02-29"])), "date")) == [days]
    assert enc.decode_column([days, 0, -1], "date") == [d, datetime.date(1970, 1, 1),
                                                        datetime.date(1969, 12, 31)]
    with pytest.raises(EncodingError):
        enc.encode_column(["29/02/2024"], "date")


def test_text_order_equality_and_roundtrip():
    words = ["", "a", "ab", "abc", "b", "ba", "yellow", "green", "Zürich", "€uro"]
    e = enc.encode_column(words, "text")
    assert all(isinstance(x, int) and 0 <= x < 2**56 for x in e)
    assert enc.decode_column(e, "text") == words
    by_num = [w for _, w in sorted(zip(e, words, strict=True))]
    assert by_num == sorted(words, key=lambda w: w.encode("utf-8"))
    assert len(set(e)) == len(words)


def test_one_piece_encoding_refuses_long_text():
    with pytest.raises(EncodingError, match=r"8 bytes.*one piece of 7"):
        enc.encode_column(["abcdefgh"], "text")
    with pytest.raises(EncodingError, match=r"9 bytes"):
        enc.encode_column(["€€€"], "text")  # 3 chars, 9 bytes
    assert MAX_TEXT_BYTES == 7


def _joined(pieces_per_column: list) -> list[int]:
    """Join piece columns like ops.reveal does (piece 0 most significant)."""
    out = [0] * len(pieces_per_column[0])
    for col in pieces_per_column:
        out = [(x << enc.PIECE_BITS) | int(y) for x, y in zip(out, col, strict=True)]
    return out


def test_long_texts_as_pieces_keep_order_equality_and_roundtrip():
    words = ["", "a", "Engineering", "Engineer", "Engineering Manager", "Zürich Hauptbahnhof",
             "abcdefg", "abcdefgh", "€" * 10, "x" * 50]
    pieces = enc.encode_text(words)
    assert len(pieces) == 8  # ceil(50 / 7)
    assert all(0 <= x < 2**56 for col in pieces for x in col)
    joined = _joined(pieces)
    assert enc.decode_column(joined, "text") == words
    # lexicographic order of the piece tuples = binary collation of the strings
    tuples = list(zip(*pieces, strict=True))
    by_pieces = [w for _, w in sorted(zip(tuples, words, strict=True))]
    assert by_pieces == sorted(words, key=lambda w: w.encode("utf-8"))
    assert len(set(tuples)) == len(words)
    # a text's pieces do not depend on the other values of the column, but for zero padding
    assert enc.text_pieces("Engineering", 3) == [col[2] for col in pieces][:0] + \
        [col[words.index("Engineering")] for col in pieces][:3]


def test_short_texts_stay_one_piece():
    (only,) = enc.encode_text(["M", "F", "abcdefg"])
    assert list(only) == list(enc.encode_column(["M", "F", "abcdefg"], "text"))


def test_nulls_rejected():
    for vals, t in [([1, None], "int"), ([1.0, float("nan")], "float"), ([None], "text"),
                    (pd.Series([1.0, None]), "decimal(5,2)"), ([pd.NaT], "date")]:
        with pytest.raises(EncodingError, match="NULL"):
            enc.encode_column(vals, t)


def test_unknown_type():
    with pytest.raises(EncodingError):
        enc.encode_column([1], "blob")


def test_check_range():
    enc.check_range([2**63 - 1, -(2**63) + 1, 0.5], 96, 32)
    with pytest.raises(EncodingError, match="row 1") as err:
        enc.check_range([1, 2**63 + 12345], 96, 32)
    assert str(2**63 + 12345) not in str(err.value)  # never the value itself
    with pytest.raises(EncodingError, match="out of range"):
        enc.check_range(np.array([1.0, -1e30]), 96, 32)
    with pytest.raises(EncodingError, match="NULL"):
        enc.check_range([1, None])
    with pytest.raises(EncodingError, match="NULL"):
        enc.check_range(np.array([np.nan]))
    enc.check_range(enc.encode_column(["zzzzzzz"], "text"), 96, 32)
    with pytest.raises(EncodingError):
        enc.check_range([2**31], 64, 32)


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=0, max_size=7).filter(lambda s: "\0" not in s and len(s.encode()) <= 7))
def test_text_roundtrip_property(s):
    assert enc.decode_column(enc.encode_column([s], "text"), "text") == [s]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(max_size=3).filter(lambda s: "\0" not in s), min_size=2, max_size=2))
def test_text_order_property(pair):
    a, b = pair
    if len(a.encode()) > 7 or len(b.encode()) > 7:
        return
    ea, eb = enc.encode_column([a, b], "text")
    assert (ea < eb) == (a.encode() < b.encode())
    assert (ea == eb) == (a == b)
