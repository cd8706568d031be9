"""Secure relational operators over MPyC secure fixed-point arrays: what a generated program
calls, in one namespace (the operators themselves live in ``lib/``, one job per module).

Generated MPyC programs call these functions between ``await mpc.start()`` and
``await mpc.shutdown()``::

    from sqlmpc.backends.mpyc import ops
    secfxp = mpc.SecFxp(96, 32)
    t = await ops.share_input(secfxp, my_rows, ["k", "v"], senders=[0, 1])
    g = ops.aggregate(t, ["k"], [("total", "sum", "v"), ("n", "count", None)])
    rows = await ops.reveal(g, receivers=[2], columns=["k", "total", "n"], ordered=False)

Importing this module loads numpy, MPyC and ``lib/`` only: a party's secure program needs no
compiler, no runtime and no pandas (a recipient's result frame loads pandas when it is built).

Security model: MPyC's Shamir secret sharing, passive (semi-honest) adversaries, honest
majority (t < m/2). Every value in a :class:`SecTable` is secret-shared; so is the ``valid``
flag of every row, so a table's *number of rows* is secret as well: filters, joins, group-bys
never drop rows, they clear ``valid`` flags. What *is* public is each table's length ``n``
(the padded number of rows); each operator's docstring states its output length, which is a
function of public input lengths only (and of a public LIMIT) -- that is all it reveals.
Nothing is opened to anybody except in :func:`share_input` (the input row counts, to all
parties), :func:`join_many` (the size of a many-to-many join, to the compute parties, unless
bounded) and :func:`reveal` (the result, to its receivers only).

Cost model (see ``measured-here.md``): additions and multiplications by public numbers are
local and free; a secret x secret multiplication costs one round of communication (vectorised:
one round for a whole array); every comparison or equality test costs about a millisecond per
element with 96-bit numbers. Operators are therefore written as a few vectorised calls per
round, never as Python loops over secure scalars. Every operator that needs order (GROUP BY on
secret keys, DISTINCT, ORDER BY/LIMIT, reveal's compaction, the PK-FK join) uses the
oblivious radix sort of ``lib/radix.py`` (Asharov et al., CCS 2022): one pass per key bit,
each pass a linear resharing shuffle (``lib/shuffle.py``, Laur-Willemson-Zhang), one
multiplication and the opening of a uniformly random permutation -- no comparisons; sorting
permutations, key bits and positions live in the small field GF(2^31-1) on int64 arrays
(``lib/smallfield.py``), only the payload rows stay in secfxp's field. Cost: linear in n per
key bit, so key widths matter: ``key_bits`` arguments or the catalog types given to
:func:`share_input` (text 56 bits, date 20, bool 1; ints 64 unless told). Key columns that
come straight from an owner's input can have their bits input by the owner (``share_input``'s
``input_bits``; generated programs do it for every such sort key): the sorts then skip
extracting them inside MPC (``lib/radix.py``, "Key bits input by their owners"). The former
Batcher merge-exchange network (what ``mpc.np_sort`` runs: ~n log2(n)^2 / 4 secfxp
compare-exchanges) remains available as ``method="network"`` (the benchmark baseline).

Numbers: one secure type per program, ``secfxp = mpc.SecFxp(l, f)``; ints are exact up to
2^(l-f-1), fractions to 2^-f. Comparisons are exact when |a - b| < 2^(l-f-1) (see
``lib/encoding.py``). Booleans are secfxp 0/1 values.
"""

from __future__ import annotations

from .lib.aggregate import aggregate
from .lib.dates import (add_months, civil, day_of_week, day_of_year, plain_add_months,
                        plain_date_part, plain_trunc, quarter, trunc)
from .lib.encoding import COMPANION, NULL_FLAG
from .lib.expr import (abs_, and_, column, div, div_zero, eq, flags, ge, gt, le, lt, ne, neg, not_,
                       null_or, or_, parts, power, text_columns, text_compare, text_literal,
                       text_where, where)
from .lib.input import share_input, started, taken
from .lib import fieldarrays  # noqa: F401 -- installs MPyC's array constructor without its version parse
from .lib import randombits  # noqa: F401 -- installs random bits from the parties' coin flips
from .lib import truncation  # noqa: F401 -- installs exact array truncation (see its docstring)
from .lib.inputs_file import load_inputs
from .lib.join import NESTED_LOOP_MAX, join, join_many
from .lib.mmjoin import JoinTooLarge
from .lib.onehot import aggregate_domain
from .lib.overflow import (SecureOverflow, check_fits, check_overflow, check_sum, checked_div,
                           checked_div_zero, checked_mul, checked_power)
from .lib.phases import mark
from .lib.preshared import aggregate_contributed, preshared_input
from .lib.public import concat_public, share_public
from .lib.public_keys import aggregate_public_keys, public_group_keys
from .lib.result import (decode, plain_coalesce, plain_date, plain_div, plain_frame, plain_isna,
                         plain_nullif)
from .lib.reveal import reveal
from .lib.rows import carry, concat, cross_join, filter_rows, project, rename
from .lib.semijoin import semi_join
from .lib.sort import distinct, order_by
from .lib.text_match import like, plain_like
from .lib.table import (KeyBits, SecTable, const, null_flag, pieces, to_field_matrix,
                        with_companions)
from .lib.window import window

__all__ = [
    # the secure table
    "COMPANION", "NULL_FLAG", "KeyBits", "SecTable", "const", "null_flag", "pieces",
    "to_field_matrix", "with_companions",
    # input, public columns, progress
    "concat_public", "load_inputs", "mark", "preshared_input", "share_input", "share_public",
    "started", "taken",
    # row expressions
    "abs_", "and_", "column", "div", "div_zero", "eq", "flags", "ge", "gt", "le", "lt", "ne", "neg",
    "not_", "null_or", "or_", "parts", "power", "text_columns", "text_compare",
    "text_literal", "text_where", "where",
    # calendar and text functions
    "add_months", "civil", "day_of_week", "day_of_year", "like", "plain_add_months",
    "plain_date_part", "plain_like", "plain_trunc", "quarter", "trunc",
    # overflow checks
    "SecureOverflow", "check_fits", "check_overflow", "check_sum", "checked_div",
    "checked_div_zero", "checked_mul", "checked_power",
    # relational operators
    "NESTED_LOOP_MAX", "JoinTooLarge", "aggregate", "aggregate_contributed", "aggregate_domain",
    "aggregate_public_keys", "carry", "concat", "cross_join", "distinct", "filter_rows",
    "public_group_keys", "join", "join_many", "order_by", "project", "rename", "semi_join", "window",
    # the result
    "decode", "plain_coalesce", "plain_date", "plain_div", "plain_frame", "plain_isna",
    "plain_nullif", "reveal",
]
