# Two commands set everything up on a fresh machine (Python 3.11; Java 17 for the Spark tests):
#   make demo   creates .venv, installs sqlmpc (core: embedded DuckDB, no Spark), explains and
#               runs the HHI example (examples/hhi), every party its own OS process
#   make test   installs sqlmpc with every extra the suite needs ([test]: Spark, Spark Connect,
#               matplotlib, Playwright), the contributor page's npm libraries and Debian's
#               chromium (when missing and root), and runs the whole suite, Spark and MPyC
#               party processes and the browser test included
#
# sqlmpc goes into .venv as a regular (non-editable) package, rebuilt from this working tree
# whenever a source file changed, so the tests exercise what a user installs (templates and
# every subpackage listed in pyproject.toml). `make dev` installs it editable instead (edits
# take effect at once; setuptools then prints a note about editable installs); once it is
# editable, `make demo` and `make test` keep it so and only install the missing dependencies.

PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
PIP = $(BIN)/python -m pip
PYTEST_ARGS ?=
# everything that goes into the package: a change reinstalls it before the next demo or test
# (the folders too: their times change when a module is added or removed)
SOURCES := pyproject.toml $(shell find sqlmpc_pkg compiler backends runtime datasets contributors \
	\( -name '*.py' -o -name '*.j2' -o -name '*.js' -o -name '*.html' -o -name '*.css' -o -type d \) \
	-not -path '*/__pycache__*' -not -path '*/node_modules*' 2>/dev/null)
HHI = examples/hhi/query.sql --catalog examples/hhi/catalog.toml
WEB = contributors/web

.PHONY: demo test test-fast dev explain bench clean web browser

# prints the requirements of the core package plus those of the extra given as argv[1] ("[test]")
LIST_REQUIREMENTS = import sys, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
	x = sys.argv[1].strip("[]"); print("\n".join(p["dependencies"] + (p["optional-dependencies"][x] if x else [])))

# $(1): the extras to install, e.g. [test]; empty for the core package. setuptools builds in
# ./build, whose leftovers (a module since removed) would go into the wheel: it starts afresh.
define install_sqlmpc
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@if $(PIP) show sqlmpc 2>/dev/null | grep -qxF "Editable project location: $(CURDIR)"; then \
	  echo "sqlmpc is installed editable in $(VENV) (make dev): installing its dependencies only"; \
	  $(BIN)/python -c '$(LIST_REQUIREMENTS)' "$(1)" > $(VENV)/requirements.txt && \
	  $(PIP) install -q -r $(VENV)/requirements.txt; \
	else \
	  echo "installing sqlmpc$(1) into $(VENV) ..."; \
	  rm -rf build && $(PIP) install -q ".$(1)"; \
	fi
endef

$(VENV)/.installed-core: $(SOURCES)
	$(call install_sqlmpc,)
	@touch $@

# the test install carries the contributor page's vendored libraries (npm) and needs a
# Chromium for the page's browser test (Debian's package; installed when missing and root)
$(VENV)/.installed-test: $(SOURCES) $(WEB)/vendor/VERSIONS.txt | browser
	$(call install_sqlmpc,[test])
	@touch $@ $(VENV)/.installed-core

demo: $(VENV)/.installed-core
	@echo
	@echo "== 1/2  sqlmpc explain: what each party computes, what leaves it, who learns what =="
	@$(BIN)/sqlmpc explain $(HHI)
	@echo
	@echo "== 2/2  sqlmpc run: each party its own OS process (embedded DuckDB), MPyC between them =="
	@$(BIN)/sqlmpc run $(HHI) --quiet --out out/hhi.csv --stats out/hhi-stats.json
	@echo
	@echo "HHI of the three companies' revenue, revealed to the regulator only: $$(tail -n 1 out/hhi.csv)"
	@echo "Output: out/hhi.csv (the result), out/hhi-stats.json (each party's timings and rows shared)"
	@echo
	@echo "Next, try:"
	@echo "  $(BIN)/sqlmpc explain examples/pay_equity/query.sql --catalog examples/pay_equity/catalog.toml"
	@echo "  $(BIN)/pip install -q '.[spark]' && $(BIN)/sqlmpc run $(HHI) --engine spark   # Java 17"
	@echo "  make test   # the whole suite, Spark included (about 17 minutes on 2 cores)"

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

dev: web
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) install -q -e ".[test]"
	@touch $(VENV)/.installed-test $(VENV)/.installed-core

explain: $(VENV)/.installed-core
	$(BIN)/sqlmpc explain $(HHI)

# the contributor page's browser libraries (npm registry, versions pinned by the lock file),
# copied into contributors/web/vendor/ (generated, not committed)
web: $(WEB)/vendor/VERSIONS.txt

browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium (the contributor page's browser test) ..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "the browser test needs /usr/bin/chromium: install Debian's chromium package" >&2; exit 1; \
	  fi; }

$(WEB)/vendor/VERSIONS.txt: $(WEB)/package.json $(WEB)/package-lock.json $(WEB)/build-vendor.mjs
	cd $(WEB) && npm ci --no-audit --no-fund && npm run build

bench: $(VENV)/.installed-test
	$(BIN)/python -m benchmarks.taxi_hhi --quick

clean:
	rm -rf $(VENV) out build *.egg-info $(WEB)/vendor $(WEB)/node_modules
