"""Benchmark of the secure operators (3 MPyC parties on this machine) against the baseline.

    python -m benchmarks.secure_ops --rows 1000,10000 --json out.json \\
        [--baseline-limit 120] [--plot out.png] [--ops groupby,join,distinct,topk]
        [--extract-bits] [--no-baseline]

Operators (secret 30-bit keys, declared with ``key_bits``; parties 1 and 2 each input half of
the rows, party 0 is a helper without data and the only receiver):

* groupby  -- SUM and COUNT per key over N rows (N/10 distinct keys), unordered reveal
* join     -- PK-FK join of N PK rows with N FK rows (10 % of FK keys have no partner),
              ordered reveal of the matched rows
* join-mm  -- many-to-many join of N + N rows, keys drawn from N values on both sides (so
              about N joined rows, duplicates on both sides; ``join_many``, M revealed),
              unordered reveal (radix compaction in both); baseline: the n x m nested loop
* distinct -- DISTINCT over N keys (N/4 distinct), unordered reveal
* topk     -- ORDER BY value DESC LIMIT 10 over N rows, ordered reveal

Implementations: "sqlmpc" = the operators as they are (radix sort, resharing shuffle,
sort-based PK-FK join), with the key columns' bits input by their owners (``share_input``'s
``input_bits``, as generated programs do for keys that come straight from an input);
"sqlmpc-extract" (only with ``--extract-bits``) = the same without owner bits: the sort
extracts the key bits inside MPC (the path of computed keys); "baseline" = the same
operators with ``method="network"``: Batcher's odd-even merge network on secfxp comparisons
(what ``mpc.np_sort`` runs), with the n x m nested-loop join. A baseline size is skipped
once a smaller size took longer than ``--baseline-limit`` seconds (or was stopped at that
limit).

Seconds are measured at party 0 from a barrier after the input to the end of the reveal
(input and process start excluded; "input_seconds" is the input itself, from a barrier
after the start, so owner bits' extra input round shows there; "load" the 1-minute load
average at the end). The machine is shared: compare numbers of one run.
Each measurement is one subprocess ``python benchmarks/secure_ops.py --bench-job ... -M3``.
JSON: a list of {"op", "impl", "rows", "seconds"} records (plus "ok": the answer matched
plaintext, "status").
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

OPS = ("groupby", "join", "distinct", "topk", "join-mm")
KEY_BITS = 30


# ------------------------------------------------------------------------------ the worker


def _data(op: str, n: int, pid: int):
    """Deterministic rows of party pid (1 or 2), and the full data (for checking)."""
    import numpy as np

    rng = np.random.default_rng(12345)
    half = [n // 2, n - n // 2]
    if op == "join":
        pk = rng.choice(1 << KEY_BITS, size=n, replace=False)
        pv = rng.integers(0, 1000, n)
        hit = rng.random(n) < 0.9
        fk = np.where(hit, rng.choice(pk, n), rng.integers(0, 1 << KEY_BITS, n))
        fv = rng.integers(0, 1000, n)
        return {"pk": np.stack([pk, pv], 1), "fk": np.stack([fk, fv], 1)}
    if op == "join-mm":  # both sides draw keys from the same N values: M about N
        domain = rng.choice(1 << KEY_BITS, size=n, replace=False)
        return {"pk": np.stack([rng.choice(domain, n), rng.integers(0, 1000, n)], 1),
                "fk": np.stack([rng.choice(domain, n), rng.integers(0, 1000, n)], 1)}
    groups = max(1, n // (10 if op == "groupby" else 4))
    domain = rng.choice(1 << KEY_BITS, size=groups, replace=False)
    keys = rng.choice(domain, n)
    vals = rng.integers(0, 1000, n)
    rows = np.stack([keys, vals], 1)
    return {"rows": rows, "parts": [rows[: half[0]], rows[half[0]:]]}


def _worker(op: str, impl: str, n: int, out: str) -> None:
    import numpy as np
    from mpyc.runtime import mpc

    from sqlmpc.backends.mpyc import ops

    method = "network" if impl == "baseline" else "radix"
    owner_bits = impl == "sqlmpc"  # the owners input their key columns' bits too
    secfxp = mpc.SecFxp(96, 32)
    kb = {"k": KEY_BITS, "a": KEY_BITS, "b": KEY_BITS}

    async def main():
        await mpc.start()
        d = _data(op, n, mpc.pid)
        await mpc.barrier()
        t_in = time.perf_counter()
        if op.startswith("join"):
            pk = d["pk"].astype(object) if mpc.pid == 1 else None
            fk = d["fk"].astype(object) if mpc.pid == 2 else None
            left = await ops.share_input(secfxp, pk, ["a", "x"], [1], integral=[True, True],
                                         key_bits={"a": KEY_BITS},
                                         input_bits=["a"] if owner_bits else None)
            right = await ops.share_input(secfxp, fk, ["b", "y"], [2], integral=[True, True],
                                          key_bits={"b": KEY_BITS},
                                          input_bits=["b"] if owner_bits else None)
        else:
            mine = d["parts"][mpc.pid - 1].astype(object) if mpc.pid in (1, 2) else None
            key = "v" if op == "topk" else "k"
            t = await ops.share_input(secfxp, mine, ["k", "v"], [1, 2], integral=[True, True],
                                      key_bits={"k": KEY_BITS, "v": 10},
                                      input_bits=[key] if owner_bits else None)
        await mpc.barrier()
        await mpc.output(mpc.np_sum(left.valid if op.startswith("join") else t.valid))  # sync
        t0 = time.perf_counter()
        input_secs = t0 - t_in
        if op == "groupby":
            g = ops.aggregate(t, ["k"], [("s", "sum", "v"), ("c", "count", None)],
                              key_bits=kb, method=method)
            res = await ops.reveal(g, [0], ["k", "s", "c"], ordered=False, method=method)
        elif op == "join":
            j = ops.join(left, right, ["a"], ["b"], unique="left", key_bits=kb, method=method)
            res = await ops.reveal(j, [0], ["a", "x", "y"], ordered=False, method=method)
        elif op == "join-mm":
            j = await ops.join_many(left, right, ["a"], ["b"], key_bits=kb, method=method)
            # the radix reveal for both: a network sort of the nested loop's n*m rows would
            # swamp the comparison of the joins themselves
            res = await ops.reveal(j, [0], ["a", "x", "y"], ordered=False)
        elif op == "distinct":
            g = ops.distinct(t, ["k"], key_bits=kb, method=method)
            res = await ops.reveal(g, [0], ["k"], ordered=False, method=method)
        else:
            g = ops.order_by(t, [("v", True)], limit=10, key_bits={"v": 10}, method=method)
            res = await ops.reveal(g, [0], ["v"], ordered=True, method=method)
        secs = time.perf_counter() - t0
        await mpc.shutdown()
        if mpc.pid == 0:
            ok = _check(op, d, np.asarray(res, dtype=object))
            Path(out).write_text(json.dumps({"seconds": secs, "ok": ok,
                                             "input_seconds": input_secs}))

    mpc.run(main())


def _check(op: str, d: dict, res) -> bool:
    from collections import Counter, defaultdict

    got = sorted(tuple(int(x) for x in r) for r in res.tolist())
    if op == "join":
        pk = {int(a): int(x) for a, x in d["pk"]}
        exp = sorted((int(b), pk[int(b)], int(y)) for b, y in d["fk"] if int(b) in pk)
    elif op == "join-mm":
        by = defaultdict(list)
        for a, x in d["pk"]:
            by[int(a)].append(int(x))
        exp = sorted((int(b), x, int(y)) for b, y in d["fk"] for x in by[int(b)])
    elif op == "groupby":
        s, c = defaultdict(int), Counter()
        for k, v in d["rows"]:
            s[int(k)] += int(v)
            c[int(k)] += 1
        exp = sorted((k, s[k], c[k]) for k in s)
    elif op == "distinct":
        exp = sorted((int(k),) for k in set(d["rows"][:, 0].tolist()))
    else:
        exp = sorted((int(v),) for v in sorted(d["rows"][:, 1].tolist(), reverse=True)[:10])
    return got == exp


# ------------------------------------------------------------------------------ the driver


def _run_one(op: str, impl: str, n: int, limit: float | None) -> dict:
    tmp = Path("/tmp/sqlmpc_secure_ops_bench")
    tmp.mkdir(exist_ok=True)
    out = tmp / f"{os.getpid()}_{op}_{impl}_{n}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--bench-job", op, impl, str(n),
           str(out), "-M3", "--no-log"]
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    t0 = time.perf_counter()
    try:
        _, err = proc.communicate(timeout=None if limit is None else limit + 60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the worker's own process group (its parties)
        proc.communicate()
        return {"op": op, "impl": impl, "rows": n, "seconds": None, "status": "timeout"}
    except BaseException:  # Ctrl-C or SIGTERM: never leave the worker's parties running
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not out.exists():
        why = err.strip()[-2000:] or (f"killed by signal {-proc.returncode} (out of memory?)"
                                      if proc.returncode < 0 else
                                      f"exit status {proc.returncode}, no output")
        return {"op": op, "impl": impl, "rows": n, "seconds": None, "status": "error",
                "error": why}
    r = json.loads(out.read_text())
    out.unlink(missing_ok=True)
    return {"op": op, "impl": impl, "rows": n, "seconds": round(r["seconds"], 3),
            "ok": r["ok"], "input_seconds": round(r["input_seconds"], 3), "wall": round(wall, 2),
            "load": round(os.getloadavg()[0], 2), "status": "ok"}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", default="1000,10000", help="comma-separated row counts")
    ap.add_argument("--json", required=True, help="output JSON file")
    ap.add_argument("--baseline-limit", type=float, default=120.0,
                    help="skip the baseline at sizes above one that took longer (seconds)")
    ap.add_argument("--plot", help="PNG plot of seconds vs rows (needs matplotlib)")
    ap.add_argument("--ops", default=",".join(OPS))
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--extract-bits", action="store_true",
                    help="also run impl 'sqlmpc-extract': key bits extracted in MPC instead "
                         "of input by the owners (the old path), for comparison")
    a = ap.parse_args(argv)
    if a.plot:  # checked before the long run, not after it
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("secure_ops: error: --plot needs matplotlib: pip install sqlmpc[plot]",
                  file=sys.stderr)
            raise SystemExit(2) from None

    def terminated(signum, frame):  # SIGTERM: stop like Ctrl-C, killing the running worker
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, terminated)
    sizes = sorted(int(x) for x in a.rows.split(","))
    records = []
    for op in a.ops.split(","):
        base_ok = not a.no_baseline
        for n in sizes:
            for impl in ("sqlmpc", "sqlmpc-extract") if a.extract_bits else ("sqlmpc",):
                r = _run_one(op, impl, n, None)
                records.append(r)
                print(json.dumps(r), flush=True)
            if base_ok:
                b = _run_one(op, "baseline", n, a.baseline_limit)
                records.append(b)
                print(json.dumps(b), flush=True)
                if b["seconds"] is None or b["seconds"] > a.baseline_limit:
                    base_ok = False
            Path(a.json).write_text(json.dumps(records, indent=1))
    _table(records)
    if a.plot:
        _plot(records, a.plot)


def _table(records: list[dict]) -> None:
    print(f"\n{'op':10} {'rows':>8} {'sqlmpc s':>10} {'extract s':>10} {'baseline s':>11} "
          f"{'ratio':>7}  ok")
    by = {(r["op"], r["impl"], r["rows"]): r for r in records}
    for op, n in sorted({(r["op"], r["rows"]) for r in records}):
        s = by.get((op, "sqlmpc", n), {})
        x = by.get((op, "sqlmpc-extract", n), {})
        b = by.get((op, "baseline", n), {})
        ss, xs, bs = s.get("seconds"), x.get("seconds"), b.get("seconds")
        ratio = f"{bs / ss:7.1f}" if ss and bs else "      -"
        bstr = f"{bs:11.2f}" if bs else f"{b.get('status', '-'):>11}"
        xstr = f"{xs:10.2f}" if xs else f"{x.get('status', '-'):>10}"
        sstr = f"{ss:10.2f}" if ss else f"{s.get('status', '-'):>10}"
        print(f"{op:10} {n:8d} {sstr} {xstr} {bstr} {ratio}  "
              f"{s.get('ok')}/{x.get('ok', '-')}/{b.get('ok', '-')}")


def _plot(records: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for op in dict.fromkeys(r["op"] for r in records):
        for impl, style in (("sqlmpc", "-o"), ("sqlmpc-extract", ":s"), ("baseline", "--x")):
            pts = sorted((r["rows"], r["seconds"]) for r in records
                         if r["op"] == op and r["impl"] == impl and r["seconds"])
            if pts:
                ax.plot(*zip(*pts), style, label=f"{op} ({impl})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows (per side for join)")
    ax.set_ylabel("seconds (3 parties)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--bench-job":
        import mpyc.runtime  # noqa: F401  (parses and strips MPyC's own options: -M3, -I i)

        op, impl, n, out = sys.argv[2:6]
        _worker(op, impl, int(n), out)
    else:
        try:
            main()
        except KeyboardInterrupt:
            print("secure_ops: stopped (records so far are in the --json file)", file=sys.stderr)
            sys.exit(130)
