# Two commands do all the set-up on a fresh machine (Python 3.11 + Java 17):
#   make demo   -- creates .venv, installs sqlmpc, runs the HHI example (Spark local mode, 4 parties)
#   make test   -- creates .venv, installs sqlmpc with test extras, runs the test suite
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install demo explain test test-fast bench clean

$(BIN)/sqlmpc: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $(BIN)/sqlmpc

install: $(BIN)/sqlmpc

demo: install
	$(BIN)/sqlmpc explain examples/hhi/query.sql --catalog examples/hhi/catalog.toml
	$(BIN)/sqlmpc run examples/hhi/query.sql --catalog examples/hhi/catalog.toml --stats out/hhi-stats.json --out out/hhi.csv
	cat out/hhi.csv

explain: install
	$(BIN)/sqlmpc explain examples/hhi/query.sql --catalog examples/hhi/catalog.toml

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m benchmarks.taxi_hhi --quick

clean:
	rm -rf $(VENV) out build *.egg-info
