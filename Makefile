# Every target creates .venv on first use and installs the project with its test extras.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint fmt bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# compat: a plain path entry; the default import-hook finder costs ~15 ms on every start.
	$(PY) -m pip install -q -e '.[test]' --config-settings editable_mode=compat 2>/dev/null \
	  || $(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

lint: $(STAMP)
	$(VENV)/bin/ruff check engine cli tests benchmarks scripts
	$(VENV)/bin/ruff format --check engine cli tests benchmarks scripts
	$(VENV)/bin/mypy

fmt: $(STAMP)
	$(VENV)/bin/ruff format engine cli tests benchmarks scripts
	$(VENV)/bin/ruff check --fix engine cli tests benchmarks scripts

test: $(STAMP) lint
	HF_HUB_DISABLE_XET=1 $(VENV)/bin/pytest -q -n 2 tests

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
