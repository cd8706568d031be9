"""Render the MPC part of a plan as one readable MPyC program that every compute party runs.

A visitor with one `visit_<Operator>` method per secure operator emits a few lines of Python
over the operator library's facade (`ops.py`, imported by the program as
`from sqlmpc.backends.mpyc import ops`); `UNSUPPORTED` lists what cannot run in MPC (the
compiler reports it with the construct's name instead of generating something wrong). Row
expressions (expressions.py) become calls on secure arrays (`ops.lt`, `ops.where`, ...);
columns known in the clear (public keys) are plain numpy arrays in a parallel dict.
"""

from __future__ import annotations

import ast
import textwrap

import jinja2
from sqlglot import exp

from ...compiler.analyses.bounds import Bounds, expression_fits, unproven_operations
from ...compiler.analyses.domains import DOMAIN_ATTR, domain_tuples, onehot_columns
from ...compiler.analyses.nullability import Nullability
from ...compiler.analyses.labels import labels
from ...compiler.analyses.owner_bits import input_bit_columns
from ...compiler.analyses.unique_keys import join_unique_side
from ...compiler.errors import SqlmpcError, UnsupportedError
from ...compiler.ir.dag import (RECIPIENT, SECURE, Aggregate, Dag, Distinct, Filter, Join, Limit,
                                Output, Project, Reveal, SemiJoin, Share, Sort, Union, Window)
from ...compiler.analyses.secure_windows import secure_window_call
from ...compiler.ir.plan import Plan
from ...compiler.sqltypes import INTEGRAL_TYPES
from .expressions import Expr
from .lib.encoding import NULL_FLAG
from .lib.limits import RANGE_BITS, SECFXP_BITS, SECFXP_FRACTION

#: the DAG attribute of contributor mode (contributors/analytic.py sets it): {"share": the
#: share node, "domains": {key column: number of values}, "min_contributors": k, "options":
#: keyword arguments of aggregate_contributed ("products": columns a projection leaves to it)}
PRESHARED = "contributors"

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
        # compile-time bounds: arithmetic they prove to fit needs no check at run time
        self.bounds = Bounds(self.dag, share_limit=1 << RANGE_BITS)
        # the operations they leave unproven (one rule, shared with explain's leak list)
        self.unproven = unproven_operations(self.dag, 1 << RANGE_BITS)
        self.checked: list[str] = []  # operations checked for overflow inside MPC
        self.started: list[int] = []  # inputs started and not yet awaited (visit_Share)
        self.labels = labels(self.dag)  # readable column names for the checks' messages

    # --- driver -----------------------------------------------------------------------------
    def body(self) -> str:
        lines: list[str] = []
        # the inputs first, all started at once (their rounds overlap), then the operators
        secure = [n for n in self.dag.topo() if self.dag.attr(n, "placement") == SECURE]
        shares = [n for n in secure if isinstance(self.dag.op(n), Share)]
        for n in shares + [n for n in secure if n not in shares]:
            op = self.dag.op(n)
            if not isinstance(op, Share):
                lines += self._take_inputs()
            visit = getattr(self, f"visit_{type(op).__name__}", None)
            if visit is None:
                raise UnsupportedError(f"{type(op).__name__} inside MPC")
            lines.append(f"# node {n}: {type(op).__name__}"
                         + (f"  {getattr(op, 'text', '')}" if getattr(op, "text", "") else ""))
            lines += visit(n, op)
        lines += self._take_inputs()
        listed = {u.what for ops_ in self.unproven.values() for u in ops_}
        if not set(self.checked) <= listed:  # explain would miss an opened bit: never ship that
            raise SqlmpcError(f"internal error: overflow checks not listed by the bounds "
                              f"analysis: {sorted(set(self.checked) - listed)}")
        if self.checked:
            lines.insert(0, "_checks = []  # overflow checks (lib/overflow.py): one bit each, "
                            "opened before the reveal")
        return textwrap.indent("\n".join(lines), " " * 4)

    def _take_inputs(self) -> list[str]:
        """Await the inputs started so far (visit_Share)."""
        lines = [f"{self.t(n)}, {self.p(n)} = await ops.taken(_in{n})" for n in self.started]
        self.started = []
        return lines

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
                lines.append(f"df = ops.plain_frame({{{parts}}})")
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
        if self.dag.g.graph.get(PRESHARED):  # contributor mode: the servers hold the shares
            return [f"{self.t(n)}, o{n} = await ops.preshared_input(secfxp, inputs.get({n}), "
                    f"{cols!r}, integral={integral!r})", f"{self.p(n)} = {{}}"]
        pid = self.pid[op.party]
        # padded input sizes (compiler/padding.py): the LocalOutput of this share says how
        pad = next((o.pad for o in getattr(self.plan.local_jobs.get(op.party), "outputs", [])
                    if o.node == n), None)
        # key columns of later sorts: the owner inputs their bits too (radix.py, "Key bits
        # input by their owners"); public, decided from the plan alone
        bits = [c for c in cols if c in self.input_bits.get(n, ())]
        padding = f", input_bits={bits!r}" if bits else ""
        padding += f", pad_to={pad!r}" if pad is not None else ""
        self.started.append(n)
        return [f"_in{n} = ops.started(ops.share_input(secfxp, mine({n}, {pid}), {cols!r}, "
                f"senders=[{pid}], integral={integral!r}, types={types!r}, extra=extra({n}, {pid})"
                f"{padding}), ops.share_public(public({n}, {pid}), "
                f"{list(op.public_columns)!r}, sender={pid}))"]

    def visit_Union(self, n: int, op: Union) -> list[str]:
        names = self.dag.names(n)
        parts = []
        for i in self.dag.inputs(n):
            mapping = dict(zip(names, self.dag.names(i)))
            parts.append(f"ops.rename({self.t(i)}, {mapping!r})")
        pub = sorted(self.public(n))
        lines = [f"{self.t(n)} = ops.concat([{', '.join(parts)}])"]
        if pub:
            pieces = []
            for i in self.dag.inputs(n):
                mapping = dict(zip(names, self.dag.names(i)))
                pieces.append(f"{{c: {self.p(i)}[m] for c, m in {({c: mapping[c] for c in pub})!r}"
                              f".items()}}")
            lines.append(f"{self.p(n)} = ops.concat_public([{', '.join(pieces)}])")
        else:
            lines.append(f"{self.p(n)} = {{}}")
        return lines

    def visit_Filter(self, n: int, op: Filter) -> list[str]:
        (src,) = self.dag.inputs(n)
        ex = self.expr(src)
        ex.condition(op.predicate)  # a first pass counts the repeated secure calls
        ex.share_repeated(prefix=f"_c{n}_")
        pred = ex.condition(op.predicate)
        return ex.defs + [f"{self.t(n)} = ops.filter_rows({self.t(src)}, ops.flags(secfxp, "
                          f"{pred}, {self.t(src)}.n))",
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

    def _project_parts(self, ex: Expr, src: int, op: Project) -> list[str]:
        t = self.t(src)
        parts = []
        contrib = self.dag.g.graph.get(PRESHARED) or {}
        deferred = contrib.get("options", {}).get("products", {})
        for name, e in op.exprs:
            while isinstance(e, exp.Paren):
                e = e.this
            if name in deferred:  # contributor mode: aggregate_contributed sums this product
                continue
            if isinstance(e, exp.Column):  # a copy keeps the column's text pieces, NULL flag
                parts.append(f"{name!r}: {t}.columns[{e.name!r}]")
                if self.dag.types(src).get(e.name) == "text" or e.name in self.nullable(src):
                    parts.append(f"**ops.carry({t}, {name!r}, {e.name!r})")
                continue
            if ex.is_text(e):
                parts.append(f"**ops.text_columns(secfxp, {name!r}, {ex.text(e)}, {t}.n)")
            else:
                parts.append(f"{name!r}: ops.column(secfxp, {ex.code(e)}, {t}.n)")
            null = ex.null(e)
            if null is not None:
                parts.append(f"{name + NULL_FLAG!r}: ops.column(secfxp, {null}, {t}.n)")
        return parts

    def visit_Aggregate(self, n: int, op: Aggregate) -> list[str]:
        (src,) = self.dag.inputs(n)
        aggs = [(a.name, "count" if a.func == "count_star" else a.func, a.arg) for a in op.aggs]
        contrib = self.dag.g.graph.get(PRESHARED)
        if contrib:  # contributor mode: categorical keys, cells of too few contributors dropped
            sizes = [contrib["domains"][k] for k in op.keys]
            options = "".join(f", {k}={v!r}" for k, v in contrib.get("options", {}).items())
            return [f"{self.t(n)} = await ops.aggregate_contributed({self.t(src)}, "
                    f"o{contrib['share']}, {list(op.keys)!r}, {sizes!r}, {aggs!r}, "
                    f"{contrib['min_contributors']!r}, types={['int'] * len(sizes)!r}"
                    f"{options})",
                    *self._sum_checks(n, op, src), f"{self.p(n)} = {{}}"]
        if self.dag.attr(n, "public_keys"):
            keys = "{" + ", ".join(f"{k!r}: {self.p(src)}[{k!r}]" for k in op.keys) + "}"
            return [f"{self.t(n)} = ops.aggregate_public_keys({self.t(src)}, {keys}, {aggs!r})",
                    f"{self.p(n)} = ops.public_group_keys({keys})"]
        domain = self.dag.attr(n, DOMAIN_ATTR)
        if domain:  # use_domains: the owners shared one-hot columns of the declared domain
            types = [self.dag.types(src)[k] for k in op.keys]
            return [f"{self.t(n)} = ops.aggregate_domain({self.t(src)}, "
                    f"{onehot_columns(domain)!r}, {domain_tuples(domain)!r}, {list(op.keys)!r}, "
                    f"{aggs!r}, types={types!r})",
                    f"{self.p(n)} = {{}}"]
        return [f"{self.t(n)} = ops.aggregate({self.t(src)}, {list(op.keys)!r}, {aggs!r})",
                *self._sum_checks(n, op, src), f"{self.p(n)} = {{}}"]

    def _sum_checks(self, n: int, op: Aggregate, src: int) -> list[str]:
        """A secure check for every SUM the bounds cannot prove to fit (lib/overflow.py)."""
        lines = []
        for u in self.unproven.get(n, []):
            if u.kind != "sum":
                continue
            if u.what not in self.checked:
                self.checked.append(u.what)
            lines.append(f"{self.t(n)} = ops.check_sum(_checks, {u.what!r}, {self.t(n)}, "
                         f"{u.column!r}, {self.t(src)}.n)")
        return lines

    def visit_Join(self, n: int, op: Join) -> list[str]:
        left, right = self.dag.inputs(n)
        if not op.left_keys:
            return [f"{self.t(n)} = ops.cross_join({self.t(left)}, {self.t(right)})",
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
        nullable = [k for k in op.left_keys if k in self.nullable(left)] + \
            [k for k in op.right_keys if k in self.nullable(right)]
        if op.null_safe and nullable:  # the secure semi-join never matches a NULL key
            raise UnsupportedError(f"INTERSECT / EXCEPT inside MPC over a column that may be "
                                   f"NULL ({', '.join(nullable)})")
        # left's rows stay in place (only valid flags change): its public columns stay public
        extra = (", anti=True" if op.anti else "") + (f", not_in={op.not_in}" if op.not_in else "")
        return [f"{self.t(n)} = ops.semi_join({self.t(left)}, {self.t(right)}, "
                f"{list(op.left_keys)!r}, {list(op.right_keys)!r}{extra})",
                f"{self.p(n)} = {self.p(left)}"]

    def visit_Window(self, n: int, op: Window) -> list[str]:
        """Windows (lib/window.py): one secure sort per window;
        what else MPC cannot do was refused at compile time (refuse_secure_windows)."""
        (src,) = self.dag.inputs(n)
        lines, table = [], self.t(src)
        for name, w in op.exprs:
            part = [p.name for p in w.args.get("partition_by") or []]
            order = w.args.get("order")
            keys = [(o.this.name, bool(o.args.get("desc"))) for o in
                    (order.expressions if order is not None else [])]
            call = secure_window_call(name, w)
            lines.append(f"{self.t(n)} = ops.window({table}, {part!r}, {keys!r}, [{call!r}])")
            table = self.t(n)
        for u in self.unproven.get(n, []):  # a SUM OVER the bounds cannot prove to fit
            if u.what not in self.checked:
                self.checked.append(u.what)
            lines.append(f"{self.t(n)} = ops.check_sum(_checks, {u.what!r}, {self.t(n)}, "
                         f"{u.column!r}, {self.t(src)}.n)")
        return lines + [f"{self.p(n)} = {{}}"]

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
        skip = f", offset={op.offset}" if op.offset else ""
        return [f"{self.t(n)} = ops.order_by({self.t(src)}, {keys!r}, limit={op.n}{skip})",
                f"{self.p(n)} = {{}}"]

    def visit_Reveal(self, n: int, op: Reveal) -> list[str]:
        (src,) = self.dag.inputs(n)
        below = src
        while isinstance(self.dag.op(below), Project):  # one dropping hidden ORDER BY columns
            below = self.dag.inputs(below)[0]
        ordered = isinstance(self.dag.op(below), (Sort, Limit))
        ids = [self.pid[r] for r in op.recipients]
        cols = self.dag.names(n)
        types = [f.sql_type for f in self.dag.schema(n)]
        self.revealed_text.append(f"the valid rows of ({', '.join(cols)}) to "
                                  f"{', '.join(op.recipients)}")
        check = []
        if self.checked:
            self.revealed_text[:0] = [f"whether {w} overflows the secure type's range: one "
                                      f"bit, to the compute parties" for w in self.checked]
            check = ["await ops.check_overflow(_checks)  # stops the run if one overflowed"]
        return check + [f"rows = await ops.reveal({self.t(src)}, receivers={ids!r}, columns={cols!r}, "
                f"ordered={ordered})",
                f"result = ops.decode(rows, {cols!r}, {types!r})"]

    # --- expressions --------------------------------------------------------------------------
    def expr(self, src: int) -> Expr:
        """Translator of expressions over node `src`'s secret columns."""
        t = self.t(src)
        ex = Expr(lambda c: f"{t}.columns[{c!r}]", self.dag.types(src), secure=True,
                  table=t, nullable=self.nullable(src),
                  proven=lambda e: expression_fits(self.bounds, src, e, 1 << RANGE_BITS),
                  counted_only=lambda e: self.bounds.counted_rows_only(src, e, 1 << RANGE_BITS),
                  labels=self.labels[src], bound=lambda e: self.bounds.expression(src, e)[0])
        ex.checked = self.checked  # one list for the whole program
        return ex

    def secure(self, e: exp.Expression, src: int) -> str:
        """Python over secure arrays for expression `e` evaluated on node `src`'s columns."""
        return self.expr(src).code(e)

    def plain(self, e: exp.Expression, src_var: str = "df") -> str:
        """Python over numpy/pandas columns (the recipients' post-processing, public columns)."""
        return Expr(lambda c: f"{src_var}[{c!r}]", {}, secure=False).code(e)
