# Sensor platform: the two everyday commands are `make up` and `make test`.
# Every target installs what it needs (Python venv, pinned CDK CLI, PostgreSQL server) on first use.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ENV ?= dev
PORT ?= 8000
PROFILE ?= embedded
PYTHON ?= python3

VENV := .venv
PY := $(VENV)/bin/python
CDK := node_modules/.bin/cdk
STAMPS := .make

# Offline, quiet, reproducible CDK: no telemetry or version check, caches inside the repo.
export CDK_DISABLE_CLI_TELEMETRY := true
export CDK_DISABLE_VERSION_CHECK := 1
export CDK_HOME := $(CURDIR)/.cdk-home
export JSII_RUNTIME_PACKAGE_CACHE_ROOT := $(CURDIR)/.jsii-cache
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
CDK_FLAGS := --no-notices -c env=$(ENV)

.PHONY: help up test lint synth diff deploy bench-ingest drill-bluegreen snapshot-update lock deps vendor postgres clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

up: deps $(if $(filter full,$(PROFILE)),postgres) ## Run the platform locally (PROFILE=embedded|full, PORT=8000); Ctrl-C stops
	$(PY) -m app.devstack --profile $(PROFILE) --port $(PORT)

test: deps postgres ## The whole suite: lint, unit, synth, cdk-nag, cfn-lint, snapshots
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

lint: deps ## ruff, then synth both environments and cfn-lint every template
	$(VENV)/bin/ruff check .
	$(MAKE) --no-print-directory synth ENV=dev
	$(MAKE) --no-print-directory synth ENV=prod
	$(VENV)/bin/cfn-lint --non-zero-exit-code error cdk.out/dev/*.template.json cdk.out/prod/*.template.json

CDK_OUT ?= cdk.out/$(ENV)
synth: deps ## Synthesize ENV's stacks into cdk.out/ENV/ (cdk-nag runs; findings fail the synth)
	$(CDK) synth $(CDK_FLAGS) --quiet -o $(CDK_OUT)
	@ls $(CDK_OUT)/*.template.json

diff: deps ## Show what `make deploy ENV=...` would change (needs AWS credentials)
	$(PY) -m cdk.preflight --env $(ENV)
	$(CDK) diff $(CDK_FLAGS) --all

# Production (`production: true`) needs CONFIRM_STATEFUL=Sensor-<env>-Data (or the name typed at the
# prompt) before anything runs; DRY_RUN=1 prints the cdk commands only. See runbooks/deploy.md.
CONFIRM_STATEFUL ?=
REQUIRE_APPROVAL ?= broadening
deploy: deps ## Deploy ENV's stacks one by one in dependency order; production: CONFIRM_STATEFUL=Sensor-ENV-Data (needs AWS credentials)
	$(PY) -m cdk.preflight --env $(ENV)
	$(PY) -m cdk.deploy_plan deploy --env $(ENV) --cdk $(CDK) --out $(CDK_OUT) --require-approval $(REQUIRE_APPROVAL) \
		$(if $(CONFIRM_STATEFUL),--confirm-stateful $(CONFIRM_STATEFUL)) $(if $(DRY_RUN),--dry-run)

.PHONY: rollback-help
rollback-help: deps ## Print the exact rollback commands (ECS service, Lambda aliases) for ENV
	@$(PY) -m cdk.deploy_plan rollback-help --env $(ENV)

bench-ingest: deps postgres ## Measure ingest throughput into PostgreSQL (one app process); appends to docs/benchmarks.md
	$(PY) -m loadtests.bench_ingest --duration 20 --concurrency 32 --batch-size 100

drill-bluegreen: deps postgres ## Blue->green switch behind HAProxy under Locust load (200 users): 0 failed; appends to docs/reliability.md
	$(PY) -m loadtests.drill_bluegreen --users 200 --spawn-rate 50 --warmup 15 --switch-budget 20 --after 20

snapshot-update: deps ## Re-record template snapshots after an intended change (review the diff!)
	$(PY) -m pytest tests/infra/test_snapshots.py --snapshot-update -q

lock: deps ## Re-pin every Python package (transitive) into constraints.txt
	{ head -2 constraints.txt; $(VENV)/bin/pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

deps: $(STAMPS)/venv $(STAMPS)/node vendor ## Install the Python venv and the pinned CDK CLI (idempotent)

$(STAMPS)/venv: requirements-dev.txt app/requirements.txt lambda/archiver/requirements.txt lambda/api/requirements.txt constraints.txt
	@mkdir -p $(STAMPS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	@touch $@

$(STAMPS)/node: package.json package-lock.json
	@mkdir -p $(STAMPS)
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The dashboard serves Chart.js from the pinned npm package (package-lock.json), never from a CDN.
vendor: $(STAMPS)/node ## Copy the pinned Chart.js into app/static/vendor/ for the dashboard
	@mkdir -p app/static/vendor
	cp node_modules/chart.js/dist/chart.umd.min.js app/static/vendor/chart.umd.min.js

# PostgreSQL refuses to run as root, so tests start it as the `postgres` user this package creates.
postgres: ## Install the PostgreSQL server with apt when its binaries are missing
	@if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then exit 0; fi; \
	echo "PostgreSQL server binaries not found: installing them with apt-get"; \
	SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; \
	ls /usr/lib/postgresql/*/bin/pg_ctl

clean: ## Remove generated files (keeps .venv and node_modules)
	rm -rf cdk.out .pytest_cache .ruff_cache
