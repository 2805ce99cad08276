# Two entry points for a fresh machine (Python 3.11+, no GPU needed):
#   make run    set up .venv and run the pipeline on config/config.yaml
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
CORES ?= 8
# A CPU build of PyTorch is installed first so that nothing pulls a multi-GB CUDA
# build. On a GPU machine use e.g. `make TORCH_SPEC='torch>=2.2' run`.
TORCH_SPEC ?= torch==2.13.0
PIP_INSTALL_ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint dryrun bench clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(PIP_INSTALL_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q $(PIP_INSTALL_ARGS) -e ".[test,slurm]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/snakemake --lint

dryrun: $(STAMP)
	$(BIN)/snakemake -n

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py

clean-venv:
	rm -rf $(VENV)
