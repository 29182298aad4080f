# The README's two commands: `make up` runs the platform, `make test` runs every test.
# Prerequisites: Python 3.11+ with headers, Node 20+, make, a C compiler (README). Everything
# else is installed from here.

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY_PATHS := pacsflow tests dags plugins $(wildcard bench)

.PHONY: up test test-tools viewer lint typecheck pytest bench bench-dicomweb bench-cstore bench-dispatch bench-radiomics bench-search clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

# The tests also sign in against a real slapd, which needs the `ldap` extra: python-ldap builds
# from source against the headers test-tools installs. `make up` does without it.
$(VENV)/.synced-ldap: $(VENV)/.synced | test-tools
	$(UV) sync --frozen --python $(PYTHON) --extra ldap
	touch $@

# OHIF, fetched from npm by viewer/fetch.sh; its index.html is the stamp (dist is put in place whole).
viewer: viewer/dist/index.html

viewer/dist/index.html: viewer/fetch.sh viewer/app-config.js
	viewer/fetch.sh
	touch $@

up: $(VENV)/.synced viewer
	$(VENV)/bin/pacsflow up

test: lint typecheck pytest

test-tools:
	scripts/install-test-tools.sh
	scripts/install-helm.sh

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check $(PY_PATHS)
	$(VENV)/bin/ruff format --check $(PY_PATHS)

typecheck: $(VENV)/.synced
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy bench/*.py dags/*.py plugins/*.py

pytest: $(VENV)/.synced-ldap test-tools viewer
	$(VENV)/bin/python -m pytest

# Benchmarks (run as root; see bench/README.md). `make -k bench` runs them all even when
# one misses a target.
bench: bench-dicomweb bench-cstore bench-dispatch bench-radiomics bench-search

bench-dicomweb: $(VENV)/.synced
	$(VENV)/bin/python bench/bench_dicomweb.py

bench-cstore: $(VENV)/.synced test-tools
	$(VENV)/bin/python bench/bench_cstore.py

bench-dispatch: $(VENV)/.synced
	$(VENV)/bin/python bench/bench_dispatch.py

bench-radiomics: $(VENV)/.synced
	$(VENV)/bin/python bench/bench_radiomics.py

bench-search: $(VENV)/.synced
	$(VENV)/bin/python bench/bench_search.py

clean:
	rm -rf $(TOOLS) $(VENV) .pytest_cache .mypy_cache .ruff_cache
