"""sqlmpc.runtime: running compiled plans, one OS process (or party agent) per party.

Entry points (they never import each other):
    party.py          `python -m sqlmpc.runtime.party SPEC.json`, `sqlmpc party NAME`
    launcher.py       `sqlmpc run`: every party as its own process on this machine
    agent/server.py   `sqlmpc agent NAME`: one party's long-lived process
    agent/client.py   `sqlmpc run --agents ...`: a query through running agents
The front: cli.py (the command line) and api.py (the Python API).

Shared (they import no entry point):
    party_run.py      THE per-party sequence: own parts -> local job -> share -> MPC -> reveal
    mpc_session.py    one query's MPyC protocol in a process (connect, watchdog, lost peers)
    engines/          how a party runs its local engine (DuckDB, Spark)
    workspace.py      the run folder, the parties' addresses, RunOptions, results, --stats
    artifacts.py      the plan's files and every program, rendered by the backends
    config.py         the catalog, compiling with each party's engine, explain
    report.py         progress lines and one-line errors
    identity.py       the deployment's identities, mutual TLS contexts, peer checks
    restricted_pickle.py  MPyC's messages decoded as plain data only
"""
