# Two commands on a fresh machine: `make demo`, then `make test`.
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cpvae-installed
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
export UV_PYTHON_DOWNLOADS := never
export CPVAE_LAKE ?= $(CURDIR)/data_lake
export DAGSTER_HOME ?= $(CURDIR)/data_lake/dagster_home
# address of the Dagster UI (`make ui HOST=0.0.0.0` to serve other machines)
HOST ?= 127.0.0.1
PORT ?= 3000
# the local instance: executor limits and the training pool (copied into DAGSTER_HOME if absent)
LOCAL_INSTANCE := deploy/dagster.local.yaml

.PHONY: install system-packages demo test ui sql check lock bench instance clean

# uv (pinned, from the package index) installs exactly the versions in uv.lock
$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set (as on this project's machines) Python never
# caches bytecode, so every process compiled TensorFlow's sources again: `import tensorflow` 28 s, 11 s
# with the .pyc written once here; each Dagster run process pays that import. Likewise numba's disk
# cache of the UMAP code generation QC runs (beside umap's sources): compiled here once, not in each
# run process (cpvae demo's two workers compiled it side by side, 95 step-seconds of a fresh demo)
$(STAMP): $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	$(BIN)/python -m compileall -q cpvae_assets
	rm -f cpvae_assets/models/__pycache__/umap_distances.*.nb[ic]  # it inlines umap's kernel: new umap, new code
	$(BIN)/python -c "from cpvae_assets.models.generation import fill_numba_cache; fill_numba_cache()"
	touch $(STAMP)

install: $(STAMP)

# $(DAGSTER_HOME)/dagster.yaml from deploy/dagster.local.yaml, unless one is there already
instance:
	@mkdir -p "$(DAGSTER_HOME)"
	@test -f "$(DAGSTER_HOME)/dagster.yaml" || cp $(LOCAL_INSTANCE) "$(DAGSTER_HOME)/dagster.yaml"

demo: install instance
	$(BIN)/cpvae demo

# what the tests need from the system (Chromium, the PostgreSQL server), installed only where missing
system-packages:
	@bash deploy/system-packages.sh

# two workers, a test file each at a time (pytest-xdist; files with the most tests first, so the two
# one-test daemon files come last and one worker runs them while the other finishes the rest: 882 s on
# a fresh clone, 947 s with the two daemon sessions side by side): `make test TEST_WORKERS=0` runs in
# this process
TEST_WORKERS ?= 2
test: install system-packages
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

ui: install instance
	$(BIN)/dg dev --host $(HOST) --port $(PORT)

sql: install
	@$(BIN)/cpvae sql "$(Q)"

check: install
	$(BIN)/dg check defs

bench: install
	$(BIN)/python bench/run_all.py

lock: $(UV)
	$(UV) lock

clean:
	rm -rf $(VENV) $(TOOLS)
