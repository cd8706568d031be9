"""Render the MPC part of a plan as one readable MPyC program that every compute party runs.

A visitor with one `visit_<Operator>` method per secure operator emits a few lines of Python
over `secure_ops`; `UNSUPPORTED` lists what cannot run in MPC (the compiler reports it with
the construct's name instead of generating something wrong). Row expressions become calls on
secure arrays (`ops.lt`, `ops.where`, ...); columns known in the clear (public keys) are plain
numpy arrays in a parallel dict.
"""

from __future__ import annotations

import ast
import textwrap
from datetime import date
from pathlib import Path

import jinja2
from sqlglot import exp

from ...compiler.ir.dag import (Aggregate, Dag, Distinct, Filter, Join, Limit, Output, Project,
                             Reveal, SemiJoin, Share, Sort, Union)
from ...compiler.errors import UnsupportedError
from ...compiler.analyses.nullability import Nullability, divisor_may_be_zero
from ...compiler.passes.infer_unique import join_unique_side
from ...compiler.ir.dag import RECIPIENT, SECURE
from ...compiler.passes.use_domains import domain_tuples, onehot_columns
from ...compiler.ir.plan import Plan
from ...compiler.analyses.owner_bits import input_bit_columns
from ...compiler.sqltypes import INTEGRAL_TYPES, cast_type
from . import encoding

SECFXP_BITS = 96       # l: total bits of the one secure fixed-point type
SECFXP_FRACTION = 32   # f: fractional bits (ints exact up to 2^63, fractions to 2^-32)
UNSUPPORTED = ("SQRT inside MPC (allowed only as the last step, after the reveal)",
               "ROUND / MOD inside MPC", "CAST to int of a non-integer inside MPC",
               "NULL literals inside MPC")

_env = jinja2.Environment(loader=jinja2.PackageLoader("sqlmpc.backends.mpyc", "templates"),
                          undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def render_secure_job(plan: Plan) -> str:
    """The MPyC program (Python source) for `plan`; raises UnsupportedError for what MPC lacks."""
    gen = _Codegen(plan)
    body = gen.body()
    post = gen.post()
    src = _env.get_template("secure_job.py.j2").render(
        sql=plan.sql.strip(), parties=plan.compute_parties, helpers=plan.helpers,
        recipients=plan.recipients, recipient_ids=[plan.compute_parties.index(r)
                                                   for r in plan.recipients],
        shares=gen.shares, body=body, post=post, bits=SECFXP_BITS, frac=SECFXP_FRACTION,
        m=len(plan.compute_parties), revealed=gen.revealed_text,
        result_columns=[n for n, _ in plan.result_columns])
    ast.parse(src)  # a generated program must at least be valid Python
    return src


class _Codegen:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.dag: Dag = plan.dag
        self.pid = {p: i for i, p in enumerate(plan.compute_parties)}
        self.shares: list[dict] = []
        self.revealed_text: list[str] = []
        self.nullable = Nullability(self.dag)
        self.input_bits = input_bit_columns(self.dag)

    # --- driver -----------------------------------------------------------------------------
    def body(self) -> str:
        lines: list[str] = []
        for n in self.dag.topo():
            if self.dag.attr(n, "placement") != SECURE:
                continue
            op = self.dag.op(n)
            visit = getattr(self, f"visit_{type(op).__name__}", None)
            if visit is None:
                raise UnsupportedError(f"{type(op).__name__} inside MPC")
            lines.append(f"# node {n}: {type(op).__name__}"
                         + (f"  {getattr(op, 'text', '')}" if getattr(op, "text", "") else ""))
            lines += visit(n, op)
        return textwrap.indent("\n".join(lines), " " * 4)

    def post(self) -> str:
        """Plain-text steps the recipients run on the revealed result (see push_up_reveal)."""
        lines = []
        for n in self.dag.topo():
            op = self.dag.op(n)
            if self.dag.attr(n, "placement") != RECIPIENT or isinstance(op, Output):
                continue
            (src,) = self.dag.inputs(n)
            if isinstance(op, Sort):
                keys = [k for k, _ in op.keys]
                asc = [not d for _, d in op.keys]
                lines.append(f"df = df.sort_values({keys!r}, ascending={asc!r}, kind='stable')"
                             f".reset_index(drop=True)")
            elif isinstance(op, Project):
                parts = ", ".join(f"{name!r}: {self.plain(e)}" for name, e in op.exprs)
                lines.append(f"df = pd.DataFrame({{{parts}}})")
            else:
                raise UnsupportedError(f"{type(op).__name__} after the reveal")
        return textwrap.indent("\n".join(lines), " " * 4) if lines else ""

    def t(self, n: int) -> str:
        return f"t{n}"

    def p(self, n: int) -> str:
        return f"p{n}"

    def public(self, n: int) -> frozenset[str]:
        return self.dag.attr(n, "public") or frozenset()

    # --- visitors ---------------------------------------------------------------------------
    def visit_Share(self, n: int, op: Share) -> list[str]:
        cols = [f.name for f in self.dag.schema(n)]
        types = [f.sql_type for f in self.dag.schema(n)]
        integral = [t in INTEGRAL_TYPES for t in types]
        (src,) = self.dag.inputs(n)
        nullable = [c for c in cols if c in self.nullable(src)]
        self.shares.append({"node": n, "party": op.party, "columns": cols, "types": types,
                            "public": list(op.public_columns), "nullable": nullable})
        pid = self.pid[op.party]
        # padded input sizes (compiler/padding.py): the LocalOutput of this share says how
        pad = next((o.pad for o in getattr(self.plan.local_jobs.get(op.party), "outputs", [])
                    if o.node == n), None)
        # key columns of later sorts: the owner inputs their bits too (radix.py, "Key bits
        # input by their owners"); public, decided from the plan alone
        bits = [c for c in cols if c in self.input_bits.get(n, ())]
        padding = f", input_bits={bits!r}" if bits else ""
        padding += f", pad_to={pad!r}" if pad is not None else ""
        lines = [f"{self.t(n)} = await ops.share_input(secfxp, mine({n}, {pid}), {cols!r}, "
                 f"senders=[{pid}], integral={integral!r}, types={types!r}, extra=extra({n}, {pid})"
                 f"{padding})"]
        lines.append(f"{self.p(n)} = await support.share_public(public({n}, {pid}), "
                     f"{list(op.public_columns)!r}, sender={pid})")
        return lines

    def visit_Union(self, n: int, op: Union) -> list[str]:
        names = self.dag.names(n)
        parts = []
        for i in self.dag.inputs(n):
            mapping = dict(zip(names, self.dag.names(i)))
            parts.append(f"support.rename({self.t(i)}, {mapping!r})")
        pub = sorted(self.public(n))
        lines = [f"{self.t(n)} = ops.concat([{', '.join(parts)}])"]
        if pub:
            pieces = []
            for i in self.dag.inputs(n):
                mapping = dict(zip(names, self.dag.names(i)))
                pieces.append(f"{{c: {self.p(i)}[m] for c, m in {({c: mapping[c] for c in pub})!r}"
                              f".items()}}")
            lines.append(f"{self.p(n)} = support.concat_public([{', '.join(pieces)}])")
        else:
            lines.append(f"{self.p(n)} = {{}}")
        return lines

    def visit_Filter(self, n: int, op: Filter) -> list[str]:
        (src,) = self.dag.inputs(n)
        pred = self.expr(src).condition(op.predicate)
        return [f"{self.t(n)} = ops.filter_rows({self.t(src)}, support.flags(secfxp, {pred}, "
                f"{self.t(src)}.n))",
                f"{self.p(n)} = {self.p(src)}"]

    def visit_Project(self, n: int, op: Project) -> list[str]:
        (src,) = self.dag.inputs(n)
        ex = self.expr(src)
        self._project_parts(ex, src, op)  # a first pass counts the repeated secure calls
        ex.share_repeated(prefix=f"_c{n}_")
        parts = self._project_parts(ex, src, op)
        items = ", ".join(parts)
        pub = self.public(n)
        lines = ex.defs + [f"{self.t(n)} = ops.project({self.t(src)}, {{{items}}})"]
        if pub:
            pitems = ", ".join(f"{name!r}: {self.plain(e, src_var=self.p(src))}"
                               for name, e in op.exprs if name in pub)
            lines.append(f"{self.p(n)} = {{{pitems}}}")
        else:
            lines.append(f"{self.p(n)} = {{}}")
        return lines

    def _project_parts(self, ex: "_Expr", src: int, op: Project) -> list[str]:
        t = self.t(src)
        parts = []
        for name, e in op.exprs:
            while isinstance(e, exp.Paren):
                e = e.this
            if isinstance(e, exp.Column):  # a copy keeps the column's text pieces, NULL flag
                parts.append(f"{name!r}: {t}.columns[{e.name!r}]")
                if self.dag.types(src).get(e.name) == "text" or e.name in self.nullable(src):
                    parts.append(f"**support.carry({t}, {name!r}, {e.name!r})")
                continue
            if ex.is_text(e):
                parts.append(f"**support.text_columns(secfxp, {name!r}, {ex.text(e)}, {t}.n)")
            else:
                parts.append(f"{name!r}: support.column(secfxp, {ex.code(e)}, {t}.n)")
            null = ex.null(e)
            if null is not None:
                parts.append(f"{name + '~null'!r}: support.column(secfxp, {null}, {t}.n)")
        return parts

    def visit_Aggregate(self, n: int, op: Aggregate) -> list[str]:
        (src,) = self.dag.inputs(n)
        aggs = [(a.name, "count" if a.func == "count_star" else a.func, a.arg) for a in op.aggs]
        if self.dag.attr(n, "public_keys"):
            keys = "{" + ", ".join(f"{k!r}: {self.p(src)}[{k!r}]" for k in op.keys) + "}"
            return [f"{self.t(n)} = ops.aggregate_public_keys({self.t(src)}, {keys}, {aggs!r})",
                    f"{self.p(n)} = {{}}"]
        domain = self.dag.attr(n, "domain")
        if domain:  # use_domains: the owners shared one-hot columns of the declared domain
            types = [self.dag.types(src)[k] for k in op.keys]
            return ["from sqlmpc.backends.mpyc import onehot  # GROUP BY over a public domain",
                    f"{self.t(n)} = onehot.aggregate_domain({self.t(src)}, "
                    f"{onehot_columns(domain)!r}, {domain_tuples(domain)!r}, {list(op.keys)!r}, "
                    f"{aggs!r}, types={types!r})",
                    f"{self.p(n)} = {{}}"]
        return [f"{self.t(n)} = ops.aggregate({self.t(src)}, {list(op.keys)!r}, {aggs!r})",
                f"{self.p(n)} = {{}}"]

    def visit_Join(self, n: int, op: Join) -> list[str]:
        left, right = self.dag.inputs(n)
        if not op.left_keys:
            return [f"{self.t(n)} = support.cross_join({self.t(left)}, {self.t(right)})",
                    f"{self.p(n)} = {{}}"]
        # a side unique on its join keys (infer_unique) licenses the linear PK-FK join
        side = join_unique_side(self.dag, n)
        unique = f", unique={side!r}" if side else ""
        # no unique side: the many-to-many join (mmjoin.py) opens its size M, hence await
        call = "ops.join" if side else "await ops.join_many"
        if not side and self.plan.join_bound:  # padded output: reveals only M <= bound
            unique = f", max_rows={self.plan.join_bound}"
        return [f"{self.t(n)} = {call}({self.t(left)}, {self.t(right)}, "
                f"{list(op.left_keys)!r}, {list(op.right_keys)!r}{unique})",
                f"{self.p(n)} = {{}}"]

    def visit_SemiJoin(self, n: int, op: SemiJoin) -> list[str]:
        left, right = self.dag.inputs(n)
        # left's rows stay in place (only valid flags change): its public columns stay public
        extra = (", anti=True" if op.anti else "") + (f", not_in={op.not_in}" if op.not_in else "")
        return [f"{self.t(n)} = ops.semi_join({self.t(left)}, {self.t(right)}, "
                f"{list(op.left_keys)!r}, {list(op.right_keys)!r}{extra})",
                f"{self.p(n)} = {self.p(left)}"]

    def visit_Distinct(self, n: int, op: Distinct) -> list[str]:
        (src,) = self.dag.inputs(n)
        return [f"{self.t(n)} = ops.distinct({self.t(src)}, {self.dag.names(src)!r})",
                f"{self.p(n)} = {{}}"]

    def visit_Sort(self, n: int, op: Sort) -> list[str]:
        (src,) = self.dag.inputs(n)
        consumers = self.dag.consumers(n)
        if consumers and all(isinstance(self.dag.op(c), Limit) for c in consumers):
            # the LIMIT above sorts with the same keys: one sort (on the input's columns,
            # which may still have their owners' key bits), not two
            return [f"{self.t(n)} = {self.t(src)}  # sorted by the LIMIT below",
                    f"{self.p(n)} = {{}}"]
        return [f"{self.t(n)} = ops.order_by({self.t(src)}, {list(op.keys)!r})",
                f"{self.p(n)} = {{}}"]

    def visit_Limit(self, n: int, op: Limit) -> list[str]:
        (src,) = self.dag.inputs(n)
        below = self.dag.op(src)
        keys = list(below.keys) if isinstance(below, Sort) else []
        return [f"{self.t(n)} = ops.order_by({self.t(src)}, {keys!r}, limit={op.n})",
                f"{self.p(n)} = {{}}"]

    def visit_Reveal(self, n: int, op: Reveal) -> list[str]:
        (src,) = self.dag.inputs(n)
        ordered = isinstance(self.dag.op(src), (Sort, Limit))
        ids = [self.pid[r] for r in op.recipients]
        cols = self.dag.names(n)
        types = [f.sql_type for f in self.dag.schema(n)]
        self.revealed_text.append(f"the valid rows of ({', '.join(cols)}) to "
                                  f"{', '.join(op.recipients)}")
        return [f"rows = await ops.reveal({self.t(src)}, receivers={ids!r}, columns={cols!r}, "
                f"ordered={ordered})",
                f"result = support.decode(rows, {cols!r}, {types!r})"]

    # --- expressions --------------------------------------------------------------------------
    def expr(self, src: int) -> "_Expr":
        """Translator of expressions over node `src`'s secret columns."""
        t = self.t(src)
        return _Expr(lambda c: f"{t}.columns[{c!r}]", self.dag.types(src), secure=True,
                     table=t, nullable=self.nullable(src))

    def secure(self, e: exp.Expression, src: int) -> str:
        """Python over secure arrays for expression `e` evaluated on node `src`'s columns."""
        return self.expr(src).code(e)

    def plain(self, e: exp.Expression, src_var: str = "df") -> str:
        """Python over numpy/pandas columns (the recipients' post-processing, public columns)."""
        return _Expr(lambda c: f"{src_var}[{c!r}]", {}, secure=False).code(e)


class _Expr:
    """Translate a row expression into Python: secure (ops.*) or plain (numpy)."""

    def __init__(self, column, types: dict[str, str], secure: bool, table: str = "",
                 nullable: frozenset[str] = frozenset()) -> None:
        self.column = column
        self.types = types
        self.secure = secure
        self.table = table
        self.nullable = nullable
        # common subexpressions: secure calls that occur more than once in one projection
        # (e.g. a share squared: share * share) are computed once, into a named variable
        self.seen: dict[str, int] = {}
        self.repeated: dict[str, str] | None = None
        self.defs: list[str] = []

    def share_repeated(self, prefix: str) -> None:
        """After a counting pass: name every secure call seen more than once."""
        self.repeated = {text: f"{prefix}{i}"
                         for i, text in enumerate(t for t, k in self.seen.items() if k > 1)}

    def call(self, text: str) -> str:
        """A secure call's code, or the name of its variable when it repeats (then its
        definition goes to self.defs, before the first use)."""
        if not self.secure:
            return text
        if self.repeated is None:
            self.seen[text] = self.seen.get(text, 0) + 1
            return text
        var = self.repeated.get(text)
        if var is None:
            return text
        line = f"{var} = {text}"
        if line not in self.defs:
            self.defs.append(line)
        return var

    # --- SQL NULL (secure): a 0/1 flag expression, or None when e cannot be NULL ---------
    def null(self, e: exp.Expression) -> str | None:
        if isinstance(e, exp.Paren):
            return self.null(e.this)
        if isinstance(e, exp.Column):
            return self.column(e.name + "~null") if e.name in self.nullable else None
        if isinstance(e, (exp.Literal, exp.Boolean, exp.Is)):
            return None
        if isinstance(e, exp.Nullif):
            flags = [f for f in (self.null(e.this), self.null(e.expression)) if f is not None]
            flags.append(self.call(f"ops.eq({self.code(e.this)}, {self.code(e.expression)})"))
            return flags[0] if len(flags) == 1 else f"support.null_or({', '.join(flags)})"
        if isinstance(e, exp.Coalesce):
            flags = [self.null(a) for a in [e.this, *e.expressions]]
            if any(f is None for f in flags):
                return None
            return " * ".join(f"({f})" for f in flags)
        if isinstance(e, (exp.Case, exp.If)):
            ifs, default = _case_parts(e)
            out = self.null(default) if default is not None else "1"
            for cond, value in reversed(ifs):
                v = self.null(value)
                if v is None and out is None:
                    continue
                out = f"ops.where({self.condition(cond)}, {v or 0}, {out or 0})"
            return out
        flags = [self.null(c) for c in e.iter_expressions()]
        if isinstance(e, exp.Div) and divisor_may_be_zero(e.expression):
            flags.append(self.call(f"ops.eq({self.code(e.expression)}, 0)"))  # x/0: NULL
        flags = [f for f in flags if f is not None]
        if not flags:
            return None
        return flags[0] if len(flags) == 1 else f"support.null_or({', '.join(flags)})"

    def condition(self, e: exp.Expression) -> str:
        """A 0/1 condition where NULL counts as false (WHERE, CASE WHEN)."""
        value = self.code(e)
        null = self.null(e) if self.secure else None
        return value if null is None else f"ops.and_({value}, ops.not_({null}))"

    # --- texts (secure): a list of 7-byte pieces (see encoding.py) --------------------------
    def is_text(self, e: exp.Expression) -> bool:
        if isinstance(e, (exp.Paren, exp.Cast)):
            return self.is_text(e.this)
        if isinstance(e, exp.Column):
            return self.types.get(e.name) == "text"
        if isinstance(e, exp.Literal):
            return e.is_string
        if isinstance(e, (exp.Case, exp.If)):
            ifs, default = _case_parts(e)
            return any(self.is_text(v) for v in [v for _, v in ifs] + [default] if v is not None)
        if isinstance(e, exp.Coalesce):
            return self.is_text(e.this)
        return False

    def text(self, e: exp.Expression) -> str:
        if isinstance(e, (exp.Paren, exp.Cast)):
            return self.text(e.this)
        if isinstance(e, exp.Column):
            return f"support.parts({self.table}, {e.name!r})"
        if isinstance(e, exp.Literal) and e.is_string:
            return repr(encoding.text_pieces(e.this))
        if isinstance(e, (exp.Case, exp.If)):
            ifs, default = _case_parts(e)
            out = self.text(default) if default is not None else "[0]"  # NULL: flag in null()
            for cond, value in reversed(ifs):
                out = f"ops.text_where({self.condition(cond)}, {self.text(value)}, {out})"
            return out
        if isinstance(e, exp.Coalesce):
            out = self.text(e.expressions[-1]) if e.expressions else self.text(e.this)
            for a in reversed([e.this, *e.expressions][:-1]):
                null = self.null(a)
                out = self.text(a) if null is None else \
                    f"ops.text_where({null}, {out}, {self.text(a)})"
            return out
        raise UnsupportedError(f"text expression {e.sql()} inside MPC")

    def code(self, e: exp.Expression) -> str:
        s = self.secure
        if isinstance(e, exp.Paren):
            return self.code(e.this)
        if isinstance(e, exp.Column):
            return self.column(e.name)
        if isinstance(e, exp.Literal):
            if e.is_string:
                return repr(encoding.encode_column([e.this], "text")[0]) if s else repr(e.this)
            return e.this
        if isinstance(e, exp.Boolean):
            return "1" if e.this else "0"
        if isinstance(e, exp.Null):
            raise UnsupportedError("NULL literal inside MPC" if s else "NULL after the reveal")
        if isinstance(e, exp.Cast):
            target = cast_type(e.to)
            if target == "date" and isinstance(e.this, exp.Literal) and e.this.is_string:
                days = (date.fromisoformat(e.this.this) - date(1970, 1, 1)).days
                return str(days) if s else f"pd.Timestamp({e.this.this!r}).date()"
            if target == "int" and s and self.types.get(getattr(e.this, "name", ""), "") != "int" \
                    and not isinstance(e.this, exp.Column):
                raise UnsupportedError("CAST to int of a computed value inside MPC")
            return self.code(e.this)
        binary = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*"}
        for cls, sym in binary.items():
            if isinstance(e, cls):
                return f"({self.code(e.this)} {sym} {self.code(e.expression)})"
        if isinstance(e, exp.Div):
            a, b = self.code(e.this), self.code(e.expression)
            return self.call(f"ops.div({a}, {b})") if s else f"support.plain_div({a}, {b})"
        if isinstance(e, exp.Neg):
            return f"(-{self.code(e.this)})"
        cmp = {exp.LT: ("lt", "<"), exp.LTE: ("le", "<="), exp.GT: ("gt", ">"),
               exp.GTE: ("ge", ">="), exp.EQ: ("eq", "=="), exp.NEQ: ("ne", "!=")}
        for cls, (fn, sym) in cmp.items():
            if isinstance(e, cls):
                if s and self.is_text(e.this) and self.is_text(e.expression):
                    return self.call(f"ops.text_compare({fn!r}, {self.text(e.this)}, "
                                     f"{self.text(e.expression)})")
                a, b = self.code(e.this), self.code(e.expression)
                return self.call(f"ops.{fn}({a}, {b})") if s else f"({a} {sym} {b})"
        if isinstance(e, exp.And):
            a, b = self.code(e.this), self.code(e.expression)
            return f"ops.and_({a}, {b})" if s else f"({a} & {b})"
        if isinstance(e, exp.Or):
            a, b = self.code(e.this), self.code(e.expression)
            return f"ops.or_({a}, {b})" if s else f"({a} | {b})"
        if isinstance(e, exp.Not):
            return f"ops.not_({self.code(e.this)})" if s else f"(~{self.code(e.this)})"
        if isinstance(e, exp.Is):
            if not s:
                return f"pd.isna({self.code(e.this)})"
            return self.null(e.this) or "0"  # NULL flags exist exactly where NULLs can be
        if isinstance(e, exp.In):
            x = e.this
            terms = [exp.EQ(this=x.copy(), expression=v.copy()) for v in e.expressions]
            return self.code(_fold(exp.Or, terms))
        if isinstance(e, exp.Between):
            ge = exp.GTE(this=e.this.copy(), expression=e.args["low"].copy())
            le = exp.LTE(this=e.this.copy(), expression=e.args["high"].copy())
            return self.code(exp.And(this=ge, expression=le))
        if isinstance(e, (exp.Case, exp.If)):
            if isinstance(e, exp.If):
                ifs = [(e.this, e.args["true"])]
                default = e.args.get("false")
            else:
                base = e.this
                ifs = [((exp.EQ(this=base.copy(), expression=i.this.copy()) if base is not None
                         else i.this), i.args["true"]) for i in e.args.get("ifs") or []]
                default = e.args.get("default")
            if default is None:  # NULL: the value 0 with a NULL flag (see null())
                out = "0" if s else "None"
            else:
                out = self.code(default)
            for cond, value in reversed(ifs):
                c = self.condition(cond) if s else self.code(cond)
                v = self.code(value)
                out = f"ops.where({c}, {v}, {out})" if s else f"np.where({c}, {v}, {out})"
            return out
        if isinstance(e, exp.Abs):
            return f"ops.abs_({self.code(e.this)})" if s else f"np.abs({self.code(e.this)})"
        if isinstance(e, exp.Nullif):  # the value; its NULL flag comes from null()
            if not s:
                return f"support.plain_nullif({self.code(e.this)}, {self.code(e.expression)})"
            return self.code(e.this)
        if isinstance(e, exp.Coalesce):
            args = [e.this, *e.expressions]
            if not s:
                return f"support.plain_coalesce({', '.join(self.code(a) for a in args)})"
            out = self.code(args[-1])
            for a in reversed(args[:-1]):
                null = self.null(a)
                out = self.code(a) if null is None else f"ops.where({null}, {out}, {self.code(a)})"
            return out
        if isinstance(e, exp.Pow):
            power = e.expression
            if isinstance(power, exp.Literal) and not power.is_string and power.this.isdigit() \
                    and 1 <= int(power.this) <= 8:
                base = self.code(e.this)
                return f"support.power({base}, {power.this})" if s else \
                    f"({base} ** {power.this})"
            if s:
                raise UnsupportedError("POWER with an exponent other than a whole number 1..8 "
                                       "inside MPC")
            return f"np.power({self.code(e.this)}, {self.code(power)})"
        if isinstance(e, exp.Sqrt):
            if s:
                raise UnsupportedError("SQRT (or STDDEV) inside MPC: only allowed as the last "
                                       "step, computed by the recipients after the reveal")
            return f"np.sqrt(np.maximum({self.code(e.this)}, 0))"
        if isinstance(e, exp.Round) and not s:
            digits = self.code(e.args["decimals"]) if e.args.get("decimals") else 0
            return f"np.round({self.code(e.this)}, {digits})"
        raise UnsupportedError(f"{type(e).__name__.upper()} inside MPC")


def _case_parts(e: exp.Expression) -> tuple[list, exp.Expression | None]:
    """[(condition, value)], default of a CASE (simple or searched) or IF."""
    if isinstance(e, exp.If):
        return [(e.this, e.args["true"])], e.args.get("false")
    base = e.this
    ifs = [((exp.EQ(this=base.copy(), expression=i.this.copy()) if base is not None else i.this),
            i.args["true"]) for i in e.args.get("ifs") or []]
    return ifs, e.args.get("default")


def _fold(cls, terms):
    out = terms[0]
    for t in terms[1:]:
        out = cls(this=out, expression=t)
    return out


def write_secure_job(plan: Plan, path: Path) -> Path:
    path.write_text(render_secure_job(plan))
    return path
