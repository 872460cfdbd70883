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
# TensorFlow: no oneDNN banner, no GPU probing on machines without one
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: install demo test ui sql check lock clean

# uv (pinned, from the package index) installs exactly the versions in uv.lock
$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

$(STAMP): $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON)
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/cpvae demo

test: install
	$(BIN)/python -m pytest

ui: install
	mkdir -p "$(DAGSTER_HOME)" && test -f "$(DAGSTER_HOME)/dagster.yaml" || printf 'telemetry:\n  enabled: false\n' > "$(DAGSTER_HOME)/dagster.yaml"
	$(BIN)/dg dev --host 127.0.0.1 --port 3000

sql: install
	@$(BIN)/cpvae sql "$(Q)"

check: install
	$(BIN)/dg check defs

lock: $(UV)
	$(UV) lock

clean:
	rm -rf $(VENV) $(TOOLS)
