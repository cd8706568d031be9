"""What a Parquet footer proves (backends/footer.py): ranges of integer columns; never of
floating-point ones (a footer's min and max leave NaN out)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from sqlmpc.backends import footer


def test_footer_proves_an_integer_range_only(tmp_path):
    path = tmp_path / "r.parquet"
    table = pa.table({
        "v": pa.array([1, 2, 2, 3, 5, 5, 4, 4], pa.int64()),   # row groups 1..2 .. 4..4
        "f": pa.array([1.0, 2.0, float("nan"), 3.0, 5.0, 5.0, 4.0, 4.0]),
    })
    pq.write_table(table, path, row_group_size=2)
    part = {"format": "parquet", "path": str(path)}
    assert footer.footer_proves_range(part, "v", 1, 5)
    assert footer.footer_proves_range(part, "v", -10, 10)
    assert not footer.footer_proves_range(part, "v", 2, 5)   # the first row group holds 1
    assert not footer.footer_proves_range(part, "v", 1, 4)   # 5..5
    assert not footer.footer_proves_range(part, "f", -1e9, 1e9)  # a NaN hides from min/max
    assert not footer.footer_proves_range(dict(part, format="csv"), "v", 1, 5)
    assert not footer.footer_proves_range(part, "nope", 1, 5)
    assert footer.footer_rows(part) == 8
