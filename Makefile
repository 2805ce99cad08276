# Two entry points for a fresh machine (Python 3.11+, no GPU needed):
#   make run    set up .venv and run the pipeline on config/config.yaml
#   make test   set up .venv, run the quality gate (ruff, snakefmt, mypy, snakemake --lint) and the tests
PYTHON ?= python3
VENV ?= .venv
CORES ?= 8
# A CPU build of PyTorch is installed first so that nothing pulls a multi-GB CUDA
# build. On a GPU machine use e.g. `make TORCH_SPEC='torch==2.13.0' TORCH_INDEX=... run`.
TORCH_SPEC ?= torch==2.13.0
# Every other package is pinned by the lock (refresh it with `make lock`).
LOCK ?= requirements/lock.txt
PIP_INSTALL_ARGS ?=
PYTEST_ARGS ?=
# pytest workers (pytest-xdist); whole test files go to one worker, the longest files first
TEST_WORKERS ?= 2

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FORMATTED := Snakefile workflow/rules

.PHONY: run test gate services fmt lint dryrun bench lock clean-venv

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(PIP_INSTALL_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q $(PIP_INSTALL_ARGS) -c $(LOCK) -e ".[test,dev,slurm]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)

test: gate services
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# Test services from Debian packages (root + apt): Chromium renders the report, a one-node Slurm
# on loopback runs the cluster test. Where one cannot be set up, its test is skipped and says why.
services:
	-@bash tests/setup_chromium.sh || echo "Chromium set-up failed: the report's browser test will be skipped"
	-@bash tests/slurm/setup.sh || echo "Slurm set-up failed: tests/test_slurm.py will be skipped"

# The quality gate: lint, formatting, types and the workflow linter report nothing.
gate: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check $(FORMATTED)
	$(BIN)/mypy
	$(BIN)/snakemake --lint

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/snakefmt $(FORMATTED)

lint: gate

dryrun: $(STAMP)
	$(BIN)/snakemake -n

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py

# Progress of the latest run (local or Slurm) from its logs and outputs: jobs, progress lines, ETAs.
.PHONY: status
status: $(STAMP)
	$(BIN)/python -m sgd_privacy.status

# Regenerate the lock from the current environment (after changing pyproject.toml and testing).
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v -i -E '^(torch|nvidia-|triton)' > $(LOCK)

clean-venv:
	rm -rf $(VENV)
