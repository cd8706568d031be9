"""Tests of the plaintext <-> number encoding of SQL types (no MPC involved)."""

from __future__ import annotations

import datetime
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmpc.backends.mpyc.lib import encoding as enc
from sqlmpc.backends.mpyc.lib.encoding import MAX_TEXT_BYTES, EncodingError
from sqlmpc.backends.mpyc.lib.inputs_file import dump_inputs, load_inputs


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
    assert e.dtype == object and list(e) == [Decimal("1.25"), Decimal("-3.1"), 0]
    dec = enc.decode_column([1.2500000001, -3.0999999, 0.004], "decimal(10,2)")
    assert dec == [Decimal("1.25"), Decimal("-3.10"), Decimal("0.00")]
    assert all(isinstance(d, Decimal) for d in dec)
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


# --- exact decimals above 2^53 (float64 would lose their last digits) ------------------------

BIG = [Decimal("12345678901234567.89"), Decimal("-4611686018427387903.75"),  # ~ -2^62
       Decimal("4611686018427387904.01"), Decimal("0.01"), Decimal("9007199254740993")]


def test_decimal_encoding_is_exact_near_2_62():
    e = enc.encode_column(BIG + ["4611686018427387905.5", 7], "decimal(22,2)")
    assert e.dtype == object
    assert list(e) == BIG[:4] + [9007199254740993, Decimal("4611686018427387905.5"), 7]
    assert isinstance(e[4], int)  # integral decimals travel as Python ints
    enc.check_range(e)  # below 2^63: fits
    with pytest.raises(EncodingError, match="row 0 is out of range"):
        enc.check_range(enc.encode_column([Decimal("9223372036854775808.00")], "decimal(22,2)"))
    # just below 2^63 (float64 would round it up to 2^63 and reject it)
    enc.check_range(enc.encode_column([Decimal("9223372036854775807.99")], "decimal(22,2)"))


def test_decimal_field_scaling_is_exact():
    from mpyc.runtime import mpc

    from sqlmpc.backends.mpyc.lib.table import to_field_matrix
    secfxp = mpc.SecFxp(96, 32)
    f = secfxp.frac_length
    vals = enc.encode_column(BIG, "decimal(22,2)")
    field = to_field_matrix(secfxp, np.array(vals, dtype=object))
    p = secfxp.field.modulus
    raw = [int(v) if int(v) < p // 2 else int(v) - p for v in field.value]
    for x, r in zip(BIG, raw, strict=True):
        assert abs(Fraction(r, 1 << f) - Fraction(x)) <= Fraction(1, 1 << (f + 1))


def test_decimal_decoding_is_exact_near_2_62():
    f = 32
    # a revealed fixed-point value comes back as an exact Fraction (reveal._field_to_number)
    got = [Fraction(round(Fraction(x) * (1 << f)), 1 << f) for x in BIG]
    assert enc.decode_column(got, "decimal(22,2)") == [
        Decimal("12345678901234567.89"), Decimal("-4611686018427387903.75"),
        Decimal("4611686018427387904.01"), Decimal("0.01"), Decimal("9007199254740993.00")]
    assert enc.decode_column([(1 << 62) + 1], "decimal(20,2)") == [Decimal((1 << 62) + 1)]
    assert enc.decode_column([Fraction((1 << 64) + 3, 2)], "int") == [(1 << 63) + 2]
    assert enc.decode_column([Fraction(5, 4)], "float") == [1.25]


def test_field_to_number_keeps_fractions_exact():
    from sqlmpc.backends.mpyc.lib.reveal import _field_to_number
    x = ((1 << 62) + 3) * (1 << 32) + (1 << 31)  # 2^62 + 3.5 at f = 32
    assert _field_to_number(x, 32) == Fraction(2 * ((1 << 62) + 3) + 1, 2)
    assert _field_to_number((1 << 62) << 32, 32) == 1 << 62
    assert isinstance(_field_to_number((1 << 62) << 32, 32), int)


def test_inputs_file_keeps_decimals_exact(tmp_path):
    rows = np.empty((2, 2), dtype=object)
    rows[:, 0] = [Decimal("12345678901234567.89"), 3]
    rows[:, 1] = [(1 << 62) + 1, Decimal("-0.01")]
    dump_inputs({5: {"rows": rows, "extra": [], "public": {}}}, tmp_path / "in.json")
    back = load_inputs(tmp_path / "in.json")[5]["rows"]
    assert back.tolist() == rows.tolist()
    assert isinstance(back[0, 0], Decimal)


def test_decimal_result_frame_is_exact():
    from sqlmpc.backends.mpyc.lib.result import decode
    rows = np.empty((2, 1), dtype=object)
    rows[:, 0] = [Fraction(1234567890123456790, 100), None]
    df = decode(rows, ["s"], ["decimal(20,2)"])
    assert df["s"].tolist() == [Decimal("12345678901234567.90"), None]
    assert df.to_csv(index=False).splitlines()[:2] == ["s", "12345678901234567.90"]
