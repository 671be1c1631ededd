# Every target bootstraps .venv itself: a fresh clone needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint clean constraints

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstall only when pyproject.toml changed (the stamp is older than it).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/harness run scenarios/quickstart.toml

test: $(STAMP)
	$(BIN)/ruff check harness mockserver tests bench
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not measure" --durations=15
	$(BIN)/python -m pytest -q -m measure --durations=15

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# the versions the suite passed with, for the Docker image (pip install -c constraints.txt)
constraints: $(STAMP)
	{ echo "# The versions the test suite passed with (make constraints): the image installs with these"; \
	  echo "# pins (pip install -c), so a rebuild months later runs what was tested."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^loadharness'; } > constraints.txt

lint: $(STAMP)
	$(BIN)/ruff check harness mockserver tests bench

clean:
	rm -rf $(VENV) .pytest_cache
