"""Analyses of a DAG that passes, the planner, explain and the backends read."""
