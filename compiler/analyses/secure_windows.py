"""Which window functions the secure backend computes on rows of several parties.

Ranking windows (ROW_NUMBER, RANK, DENSE_RANK), LAG / LEAD of a column by a small whole
offset (with a number or no default) and SUM / COUNT / MIN / MAX OVER (AVG is SUM / COUNT)
with the usual frames, over
plain-column keys, run inside MPC: one oblivious
sort by the partition and order keys, then segmented prefix sums or shifts
(backends/mpyc/lib/window.py); so do MEDIAN and PERCENTILE_CONT / _DISC over all rows or
per group (a sort and an oblivious selection). Other window functions, frames, and expressions as keys run
only in a party's local job; `secure_window_problem` says why a window cannot run in MPC and
`secure_window_call` gives the secure operator's arguments for one that can.
"""

from __future__ import annotations

from sqlglot import exp

# window function class -> the secure operator's name for it
SECURE_WINDOW_FUNCTIONS = {exp.RowNumber: "row_number", exp.Rank: "rank",
                           exp.DenseRank: "dense_rank", exp.Lag: "lag", exp.Lead: "lead"}
# LAG / LEAD offsets inside MPC: each row boundary crossed costs one multiplication per row
MAX_SECURE_OFFSET = 16


def secure_window_problem(w: exp.Window, types: dict[str, str]) -> str | None:
    """Why window `w` (over internal columns of the given types) cannot run inside MPC, or
    None."""
    func = w.this
    if isinstance(func, (exp.Median, exp.WithinGroup, exp.Min, exp.Max)) and \
            any(types.get(c.name) == "text" for c in func.find_all(exp.Column)):
        return "inside MPC MIN / MAX OVER, MEDIAN and PERCENTILE of a number or date"
    if isinstance(func, (exp.Median, exp.WithinGroup)):
        return _quantile_problem(w)
    if isinstance(func, (exp.Sum, exp.Count, exp.Min, exp.Max)):
        return _aggregate_problem(w)
    if type(func) not in SECURE_WINDOW_FUNCTIONS:
        return ("inside MPC only ROW_NUMBER, RANK, DENSE_RANK, LAG, LEAD, SUM, COUNT, AVG, MIN "
                "and MAX")
    if w.args.get("spec") is not None:
        return "a window frame is not available inside MPC"
    order = w.args.get("order")
    keys = list(w.args.get("partition_by") or []) + \
        [o.this for o in (order.expressions if order is not None else [])]
    if not all(isinstance(k, exp.Column) for k in keys):
        return "inside MPC the PARTITION BY and ORDER BY keys must be columns"
    if isinstance(func, (exp.Lag, exp.Lead)):
        return _offset_problem(func)
    return None


def _aggregate_problem(w: exp.Window) -> str | None:
    """SUM / COUNT / MIN / MAX (AVG: SUM / COUNT, frontend/windows.py) of a column (COUNT(*)
    too) over column keys, with the default frame or one from UNBOUNDED PRECEDING to CURRENT
    ROW / UNBOUNDED FOLLOWING, run in MPC."""
    arg = w.this.this
    if not isinstance(arg, exp.Column) and not (isinstance(w.this, exp.Count)
                                                and isinstance(arg, exp.Star)):
        return "inside MPC SUM / COUNT / MIN / MAX OVER take a column"
    if aggregate_frame(w) is None:
        return ("inside MPC the frame of an aggregate OVER is the default or from UNBOUNDED "
                "PRECEDING to CURRENT ROW or UNBOUNDED FOLLOWING")
    order = w.args.get("order")
    keys = list(w.args.get("partition_by") or []) + \
        [o.this for o in (order.expressions if order is not None else [])]
    if not all(isinstance(k, exp.Column) for k in keys):
        return "inside MPC the PARTITION BY and ORDER BY keys must be columns"
    return None


def aggregate_frame(w: exp.Window) -> str | None:
    """The secure operator's frame of a SUM / COUNT window ("partition", "peers" or "rows";
    lib/window.py FRAMES), or None when it has none of them."""
    spec, order = w.args.get("spec"), w.args.get("order")
    if spec is None:
        return "peers" if order is not None and order.expressions else "partition"
    args = {k: (v.upper() if isinstance(v, str) else v) for k, v in spec.args.items()
            if v is not None}
    if args.get("start") != "UNBOUNDED" or args.get("start_side") != "PRECEDING":
        return None
    if args.get("end") == "UNBOUNDED" and args.get("end_side") == "FOLLOWING":
        return "partition"
    if args.get("end") in (None, "CURRENT ROW"):
        return "rows" if args.get("kind") == "ROWS" else "peers"
    return None


def _quantile_problem(w: exp.Window) -> str | None:
    """MEDIAN / PERCENTILE_CONT / _DISC (frontend/ordered_sets.py) of a column, ascending,
    over all rows or per group of column keys, run in MPC."""
    if not all(isinstance(k, exp.Column) for k in w.args.get("partition_by") or []):
        return "inside MPC MEDIAN / PERCENTILE per group of columns"
    func = w.this
    if isinstance(func, exp.WithinGroup):
        (item,) = func.expression.expressions
        if not isinstance(func.this, (exp.PercentileCont, exp.PercentileDisc)) or \
                item.args.get("desc"):
            return "inside MPC only PERCENTILE_CONT / _DISC WITHIN GROUP (ORDER BY x ASC)"
        value = item.this
    else:
        value = func.this
    if not isinstance(value, exp.Column):
        return "inside MPC MEDIAN / PERCENTILE of a column"
    return None


def _offset_problem(func: exp.Expression) -> str | None:
    if not isinstance(func.this, exp.Column):
        return "inside MPC LAG / LEAD take a column"
    offset, default = func.args.get("offset"), func.args.get("default")
    if offset is not None and not (isinstance(offset, exp.Literal) and offset.this.isdigit()
                                   and 1 <= int(offset.this) <= MAX_SECURE_OFFSET):
        return f"inside MPC the LAG / LEAD offset is a whole number from 1 to " \
               f"{MAX_SECURE_OFFSET}"
    if default is not None and _number(default) is None:
        return "inside MPC the LAG / LEAD default is a number"
    return None


def _number(e: exp.Expression) -> int | float | None:
    """The value of a number literal (possibly negated), else None."""
    sign = 1
    while isinstance(e, (exp.Neg, exp.Paren)):
        sign = -sign if isinstance(e, exp.Neg) else sign
        e = e.this
    if not isinstance(e, exp.Literal) or e.is_string:
        return None
    value = float(e.this)
    return sign * (int(value) if value.is_integer() and "." not in e.this else value)


def secure_window_call(name: str, w: exp.Window) -> tuple:
    """The function tuple of backends/mpyc/lib/window.py for window `w` (no problem left):
    (name, ranking function) or (name, "lag" | "lead", column, offset, default or None)."""
    func = w.this
    if isinstance(func, exp.Median):
        return (name, "percentile_cont", func.this.name, 0.5)
    if isinstance(func, exp.WithinGroup):
        kind = "percentile_cont" if isinstance(func.this, exp.PercentileCont) else \
            "percentile_disc"
        return (name, kind, func.expression.expressions[0].this.name,
                float(func.this.this.this))
    if isinstance(func, (exp.Sum, exp.Count, exp.Min, exp.Max)):
        arg = func.this.name if isinstance(func.this, exp.Column) else None
        return (name, func.key.lower(), arg, aggregate_frame(w))
    kind = SECURE_WINDOW_FUNCTIONS[type(func)]
    if not isinstance(func, (exp.Lag, exp.Lead)):
        return (name, kind)
    offset, default = func.args.get("offset"), func.args.get("default")
    value = _number(default) if default is not None else None
    return (name, kind, func.this.name, int(offset.this) if offset is not None else 1, value)
