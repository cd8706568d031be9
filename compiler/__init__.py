"""sqlmpc.compiler: SQL text and a catalog -> an optimised, placed plan (no engine named here).

Layers, bottom up; a module imports only from its own layer and the ones below it (checked by
tests/test_passes.py and tests/test_layers.py):

    errors, sqltypes, catalog   the error hierarchy, the six column types, the catalog loader
    ir/          dag.py (operators, placement, the DAG), plan.py (Plan, LocalJob ...), render.py
    analyses/    facts read off a DAG: nullability, padding, unique keys, declared domains,
                 owner-input key bits
    frontend/    SQL -> DAG: parse, resolve, lower, subqueries, aggregates, typecheck
    passes/      one rewrite per module, run in order by passes.optimize
    planner.py   compile_query: frontend -> passes -> Plan (one local job per party + MPC)
    explain/     the plan in words, JSON, dot or PNG
"""
