# fleetpulse: the two commands a new user needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

# Debian packages the test suite uses (installed when missing; CI runs as root). A test
# whose program is missing skips, or fails when CI=true (tests/support/programs.py).
# influxdb: the InfluxDB store tests start their own `influxd` (never the service).
# chromium: the status page is tested in a real headless browser (tests/browser).
# prometheus, prometheus-node-exporter, collectd-core (+ libyajl2, which its write_http
# plugin needs): the other senders, started by tests/senders.
# nginx-light, redis-server, memcached: the agent's service discovery and probes (tests/agent).
# monitoring-plugins-basic: the agent's exec checks run the real Nagios plugins.
SYSTEM_PACKAGES ?= influxdb chromium prometheus prometheus-node-exporter collectd-core libyajl2 \
	nginx-light redis-server memcached monitoring-plugins-basic

.PHONY: help run demo test venv lint typecheck unit agent clean system-deps deploy

help:
	@echo "make run    set up .venv and start the whole stack locally on an embedded AWS"
	@echo "make demo   a one-minute scripted story on the same stack: host down, CPU alert, silence"
	@echo "make test   set up .venv, then ruff, mypy and the test suite"
	@echo "make agent  build the single-file agent, dist/fleetpulse-agent.pyz"
	@echo "make deploy STAGE=prod [PARAMS='AlertEmail=ops@example.com ...'] [DRY_RUN=1]"
	@echo "           deploy a stage to AWS (docs/DEPLOY.md)"

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "fleetpulse needs Python 3.11 (set PYTHON=...)"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt -c constraints.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

venv: $(STAMP)

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing \
			|| echo "warning: could not install$$missing; the tests that need them will skip (fail when CI=true)"; \
	fi

# vermin: the agent runs on the hosts' own Python, so nothing newer than 3.8 may slip in.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/vermin -t=3.8- --no-tips --violations --eval-annotations agent/fleetpulse_agent

# The agent gets a lighter pass of its own (agent/mypy.ini).
typecheck: venv
	$(BIN)/mypy
	MYPYPATH=agent $(BIN)/mypy --config-file agent/mypy.ini -p fleetpulse_agent

unit: venv system-deps
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck unit

agent: dist/fleetpulse-agent.pyz

dist/fleetpulse-agent.pyz: $(STAMP) $(shell find agent/fleetpulse_agent -name '*.py')
	@mkdir -p dist
	$(BIN)/python -c 'from fleetpulse.agentbuild import main; main()' $@

run: venv
	$(BIN)/fleetpulse local up

demo: venv
	$(BIN)/fleetpulse local demo

# Deploy a stage to AWS with the operator's credentials (docs/DEPLOY.md); never part of
# `make test`. PARAMS are stack parameters (Key=Value, space-separated); DRY_RUN=1 prints
# the steps instead of running them.
STAGE ?=
PARAMS ?=
DRY_RUN ?=
DEPLOY_RUN = $(if $(DRY_RUN),@echo ,)

deploy: $(if $(DRY_RUN),,venv)
	@test -n "$(STAGE)" || { echo "usage: make deploy STAGE=prod [PARAMS='Key=Value ...'] [DRY_RUN=1]" >&2; exit 2; }
	@echo "# 1/4 stack fleetpulse-$(STAGE): tables, Timestream, topic, email, queue, log groups"
	$(DEPLOY_RUN)$(BIN)/fleetpulse --stage $(STAGE) deploy stack $(addprefix --parameter ,$(PARAMS))
	@echo "# 2/4 the stack's outputs into .chalice/config.json and .chalice/policy-$(STAGE).json"
	$(DEPLOY_RUN)$(BIN)/fleetpulse --stage $(STAGE) deploy config
	@echo "# 3/4 functions, roles, API, schedule, the notifiers' subscriptions"
	$(DEPLOY_RUN)$(BIN)/chalice deploy --stage $(STAGE)
	@echo "# 4/4 the notifiers' filter policies, retries and on-failure queue"
	$(DEPLOY_RUN)$(BIN)/fleetpulse --stage $(STAGE) deploy finish

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
