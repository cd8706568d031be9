"""sqlmpc: compile SQL over several parties' tables into local Spark jobs and MPyC protocols."""

__version__ = "0.1.0"
