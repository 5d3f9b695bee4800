# The two commands: `make run` starts the whole network, `make test` runs every test.
# Everything needed is installed from PyPI, npm and Debian by these targets; nothing by hand.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 3000

.PHONY: run run-scale test setup setup-test chromium nginx golang rustcrates clean bench

# Listens on 127.0.0.1 only; `make run ONE_HOST=0.0.0.0` serves other machines too (make passes ONE_* through).
run: setup
	$(VENV)/bin/one up --port $(PORT)

# Scale mode on this machine: three coordinator replicas (PORT+1..PORT+3) on Postgres and Redis behind nginx on
# PORT, and two CPU workers, each connected to a different replica (README "Running several coordinators").
run-scale: setup nginx
	$(VENV)/bin/one up-scale --port $(PORT)

test: setup-test
	$(PY) -m pytest -q -ra $(PYTEST_ARGS)

setup: $(VENV)/.installed node_modules/.installed

setup-test: setup $(VENV)/.installed-test chromium nginx golang rustcrates sdk/typescript/node_modules/.installed

# Both distributions, editable: the coordinator (pyproject.toml) and the node worker with its local engines
# (worker/pyproject.toml), which brings `one worker` and `one-worker`.
$(VENV)/.installed: pyproject.toml worker/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[audit,scale]' -e './worker[ml]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q -e '.[audit,scale,test]' -e './worker[ml]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# Debian chromium for the browser tests (Playwright drives it; it never downloads a browser).
chromium:
	@command -v chromium >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# Debian nginx for the front door before coordinator replicas (make run-scale and its tests). It runs as our child
# process with a config of its own (backend/dev/frontdoor.py); the system service is never used. In /usr/sbin,
# which a user's PATH may lack.
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx; }

# The TypeScript SDK's own npm packages (the official openai client, pinned in its lock file).
sdk/typescript/node_modules/.installed: sdk/typescript/package.json sdk/typescript/package-lock.json
	cd sdk/typescript && npm ci --no-audit --no-fund
	touch $@

# Go from Debian for the Go SDK's tests (standard library only: no module is fetched from anywhere).
golang:
	@command -v go >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q golang-go; }

# The Rust SDK's crates, from Debian's packaged sources (a directory registry, sdk/rust/.cargo/config.toml): nothing
# is fetched from crates.io.
rustcrates:
	@ls -d /usr/share/cargo/registry/ring-* /usr/share/cargo/registry/sha2-* /usr/share/cargo/registry/serde_json-* >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q librust-ring-dev librust-sha2-dev librust-serde-json-dev; }

clean:
	rm -rf $(VENV) node_modules .web .states test-output

# Benchmarks (not part of `make test`): LiteLLM lives in its own venv so its pins never touch ours.
.venv-bench/.installed: bench/requirements-litellm.txt
	test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install -q -r bench/requirements-litellm.txt
	touch $@

# Issue 19's speed goals, each benchmark printing its figures beside a baseline measured in the same run; then one
# table of every goal from the results just written (bench/README.md says what each measures).
bench: setup-test .venv-bench/.installed
	$(PY) bench/gateway.py
	$(PY) bench/relay.py
	$(PY) bench/receipts.py
	$(PY) bench/scheduler.py
	$(PY) bench/browser_worker.py
	$(PY) bench/goals.py
