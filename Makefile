# Every habit of the project is a target here. `make local` and `make test` install what they
# need into .venv on a fresh machine (Python 3.11+, Node 20+; no AWS account, no Docker).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := 1
export CDK_DISABLE_VERSION_CHECK := 1
export npm_config_update_notifier := false

.PHONY: install browser local test lint format unit integration infra e2e fuzz bench soak synth deploy clean
CDK := node_modules/.bin/cdk
CDK_ARGS ?=

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

local: install  ## run the whole system on this machine (Ctrl-C stops it)
	$(PY) -m tollgate.local

# Debian's Chromium for the statement page's browser check (a no-op once installed; as root
# or with password-less sudo; see .ci/install-chromium).
browser:  ## install Debian's chromium if /usr/bin/chromium is missing
	@test -x /usr/bin/chromium || .ci/install-chromium

test: install lint browser  ## lint, type-check, then every test
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy functions tollgate infra app.py

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

unit integration infra e2e: install
	$(PY) -m pytest tests/$@
integration: browser

bench: install  ## print the benchmark report (bench/REPORT.md)
	$(PY) -m bench

SOAK_ARGS ?=
soak: install  ## load + faults on the whole local stack, then every invariant checked (docs/soak.md)
	$(PY) -m tollgate.local.soak $(SOAK_ARGS)

fuzz: install  ## the bad-input suites with many more cases (hypothesis "deep" profile)
	TOLLGATE_FUZZ_PROFILE=deep $(PY) -m pytest tests/fuzz

$(CDK): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The dependencies are fetched once per change of requirements.txt and kept in .bundle/: a
# synth with nothing changed needs no network (docs/deploy.md). The rm drops what an
# interrupted or failed bundling of an older version left in cdk.out/.
synth: install $(CDK)  ## bundle the code asset (no Docker), run cdk-nag, write cdk.out/
	rm -rf cdk.out/bundling-temp-* cdk.out/asset.*-building
	$(CDK) synth --no-notices --quiet $(CDK_ARGS)

deploy: install $(CDK)  ## deploy to the AWS account of your credentials (npx cdk bootstrap once first)
	$(CDK) deploy --no-notices $(CDK_ARGS)

clean:
	rm -rf $(VENV) cdk.out .bundle node_modules .pytest_cache .mypy_cache .ruff_cache
