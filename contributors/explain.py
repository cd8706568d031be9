"""What a contributor-mode session computes and what it reveals to whom, in plain words
(`sqlmpc server NAME SESSION.toml --explain`)."""

from __future__ import annotations

from .analytic import compile_session
from .session import Session


def explain_session(session_path: str) -> str:
    """The session's explanation: parties, inputs, the analytic, every leak."""
    s = Session.load(session_path)
    plan = compile_session(s)
    contrib = plan.dag.g.graph["contributors"]
    keys = [k.split(".", 1)[-1] for k in contrib["domains"]] or ["(no GROUP BY: one cell)"]
    cells = 1
    for d in contrib["domains"].values():
        cells *= d
    servers = ", ".join(v.name for v in s.servers)
    lines = [
        (f"Session {s.name}: table {s.table} ({', '.join(s.column_names)}), analytic "
         f"{s.analytic_path.name}"),
        (f"Compute servers: {servers} (Shamir threshold t = {s.threshold}: any {s.threshold} "
         f"of them learn nothing; semi-honest, honest majority)."),
        ("Contributors: each validates its rows locally, Shamir-shares every value in MPyC's "
         "SecFxp(96, 32) field and seals one share vector per server (X25519 sealed boxes); "
         "the provider stores only the sealed boxes."),
        (f"In MPC: the analytic over every contributor's latest submission, grouped by "
         f"{', '.join(keys)} ({cells} cells, one-hot over the declared values); a cell with "
         f"rows from fewer than {s.min_contributors} contributors is suppressed inside MPC "
         f"(never opened)."),
        "Revealed:",
        ("  to the provider: the participation codes used, when each submitted, the row count "
         "of each submission and the sizes of the sealed boxes"),
        ("  to the compute servers: the number of contributors, the rows of each contributor "
         "(so which rows came from which submission), whether each overflow check passed, "
         "and the number of result cells that are opened (so which cells are suppressed may "
         "be inferred)"),
        (f"  to the recipients ({', '.join(s.recipients)}): the cells with at least "
         f"{s.min_contributors} contributors, as the analytic computes them"
         + (" (its last columns, such as averages and spreads, finished by the recipients "
            "from the cells' sums, counts and sums of squares, which the result determines)"
            if contrib.get("finished_in_clear") else "")),
        ("Not checked by the servers: that a contributor's values lie in the declared "
         "values or ranges (the page and `sqlmpc contribute` check them before sharing; the "
         "compiler relies on the declared ranges to prove that sums and squares fit; a "
         "dishonest contributor can skew or spoil the result, but learns nothing)."),
    ]
    return "\n".join(lines)
