# Two entry points for a fresh machine (Python 3.11+, no GPU needed):
#   make run    set up .venv and run the pipeline on config/config.yaml
#   make test   set up .venv, run the quality gate (ruff, snakefmt, mypy, snakemake --lint) and the tests
# For iteration: `make test-fast` runs the unit tests only (no Snakemake run, no services, no gate);
# `make golden` rewrites tests/data/golden.csv from a fresh run of the shared test pipeline (tests/README.md).
PYTHON ?= python3
VENV ?= .venv
CORES ?= 8
# PyTorch build: TORCH=cpu (default; nothing pulls a multi-GB CUDA build) or TORCH=cuda (for a GPU
# node). TORCH_SPEC pins the version for both. TORCH_CPU_INDEX / TORCH_CUDA_INDEX: the package index
# serving that build, passed to pip as --index-url (empty: pip's configured index); for cuda set
# TORCH_CUDA_INDEX to your site's or PyTorch's CUDA wheel index (README, "Installing for a GPU").
# The venv's stamp is keyed on TORCH, TORCH_SPEC and PIP_INSTALL_ARGS: changing any of them reinstalls torch.
TORCH ?= cpu
TORCH_SPEC ?= torch==2.13.0
TORCH_CPU_INDEX ?=
TORCH_CUDA_INDEX ?=
# Every other package is pinned by the lock (refresh it with `make lock`).
LOCK ?= requirements/lock.txt
PIP_INSTALL_ARGS ?=
PYTEST_ARGS ?=
# pytest workers (pytest-xdist); whole test files go to one worker, the longest files first (the order
# tests/conftest.py sets: --no-loadscope-reorder stops pytest-xdist from re-sorting files by test count)
TEST_WORKERS ?= 2
PYTEST_XDIST := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

BIN := $(VENV)/bin
ifeq ($(filter $(TORCH),cpu cuda),)
$(error TORCH must be cpu or cuda, got '$(TORCH)')
endif
TORCH_INDEX := $(if $(filter cuda,$(TORCH)),$(TORCH_CUDA_INDEX),$(TORCH_CPU_INDEX))
TORCH_INDEX_ARGS := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
TORCH_KEY := $(shell printf '%s' '$(TORCH) $(TORCH_SPEC) $(PIP_INSTALL_ARGS) $(TORCH_INDEX_ARGS)' | cksum | cut -d' ' -f1)
STAMP := $(VENV)/.installed-$(TORCH)-$(TORCH_KEY)
# stamps of other torch choices (and the unkeyed stamp of older Makefiles): their torch is replaced
OTHER_STAMPS := $(filter-out $(STAMP),$(wildcard $(VENV)/.installed $(VENV)/.installed-*))
# after a TORCH=cuda install: stop if pip still installed a CPU-only build
CUDA_BUILD_CHECK := $(BIN)/python -c "import sys, torch; sys.exit(0 if torch.version.cuda else 'TORCH=cuda installed torch ' + torch.__version__ + ', a CPU-only build: set TORCH_CUDA_INDEX to a CUDA wheel index (README, Installing for a GPU)')"
FORMATTED := Snakefile workflow/rules
# After pip, on every core at once: the byte code of every installed module (pip installs with
# --no-compile because its own compile step runs on one core; files that do not compile on this Python,
# e.g. torch's py312 test helpers, are skipped as pip skips them, hence `|| true`; the packages' own test
# suites, about 30% of the files, are left out: nothing imports them), the numba kernels of umap and
# pynndescent (README, "Job start-up"), which every embedding job would otherwise compile, and the
# trainer's compiled step (sgd_privacy.train.fused, float32 and float64), which every training job would.
UMAP_WARM_UP = $(BIN)/python -W ignore -m sgd_privacy.analysis.clusters resources/numba_cache
COMPILE = { $(BIN)/python -m compileall -q -j 0 -x '/tests/' $$($(BIN)/python -c "import sysconfig; print(sysconfig.get_path('purelib'))") >/dev/null 2>&1 || true; } & \
	$(BIN)/python -m sgd_privacy.train.fused & fused=$$!; \
	$(UMAP_WARM_UP); status=$$?; \
	wait $$fused || status=1; wait; exit $$status

.PHONY: run test test-fast golden gate services fmt lint dryrun bench lock clean-venv

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(if $(OTHER_STAMPS),$(BIN)/python -m pip uninstall -q -y torch)
	$(BIN)/python -m pip install -q --no-compile $(PIP_INSTALL_ARGS) $(TORCH_INDEX_ARGS) "$(TORCH_SPEC)"
	$(if $(filter cuda,$(TORCH)),$(CUDA_BUILD_CHECK))
	$(BIN)/python -m pip install -q --no-compile $(PIP_INSTALL_ARGS) -c $(LOCK) -e ".[test,dev,slurm]"
	$(COMPILE)
	rm -f $(OTHER_STAMPS)
	touch $(STAMP)

# umap's kernel folder records the set-up's warm-up (tests/test_umap_cache.py reads it); a .venv made before
# the record existed gets it here: the warm-up again, loading the kernels it finds.
WARM_UP := resources/numba_cache/warm_up.json
$(WARM_UP): | $(STAMP)
	$(UMAP_WARM_UP)

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)

test: services gate $(WARM_UP)
	$(BIN)/python -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

# Unit tests only: no Snakemake call (markers slow, snakemake), no Slurm (marker slurm); under 3 minutes.
test-fast: $(STAMP) $(WARM_UP)
	$(BIN)/python -m pytest $(PYTEST_XDIST) -m "not slow and not slurm and not snakemake" $(PYTEST_ARGS)

# Rerun the shared test pipeline and rewrite the values in tests/data/golden.csv; review `git diff`.
golden: $(STAMP)
	$(BIN)/python tests/update_golden.py

# Test services from Debian packages (root + apt): Chromium renders the report, a one-node Slurm
# on loopback runs the cluster test. Where one cannot be set up, its test is skipped and says why;
# in CI (CI=true) a service that cannot be set up fails the run instead.
IN_CI = case "$${CI:-}" in true|TRUE|True|1|yes) echo "CI=true: every test service must be set up"; exit 1;; esac
services:
	@bash tests/setup_chromium.sh || { echo "Chromium set-up failed: the report's browser test will be skipped"; $(IN_CI); }
	@bash tests/slurm/setup.sh || { echo "Slurm set-up failed: tests/test_slurm.py will be skipped"; $(IN_CI); }

# The quality gate: lint, formatting, types and the workflow linter report nothing.
gate: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check $(FORMATTED)
	$(BIN)/mypy --num-workers auto
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
