# ai-data-agent: the single entry point. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
BASE_IMAGE ?= ai-data-agent/base:bookworm
SANDBOX_IMAGE ?= python:3.12-slim

# No registry may be reachable: never let testcontainers pull its reaper.
export TESTCONTAINERS_RYUK_DISABLED := true
# `docker-compose` (v1) when it is there, else the `docker compose` plugin (looked up when
# a recipe runs, after `compose` may have installed it).
COMPOSE = $(shell command -v docker-compose >/dev/null 2>&1 && echo docker-compose || echo docker compose)
# The docker CLI here talks to the engine ai-data-agent uses.
ifneq ($(AI_DATA_AGENT_DOCKER_HOST),)
export DOCKER_HOST := $(AI_DATA_AGENT_DOCKER_HOST)
endif

.PHONY: help setup engine images test test-quick test-slow soak bench lint typecheck format run-sample example-mcp doctor sweep \
  controller-image compose compose-up compose-down clean \
  postgres chromium firefox test-cluster

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## create .venv with the project and its dev tools

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# Every target that needs an engine lists `engine` first: it answers at once,
# or one is started as CI does, or make stops within seconds saying what to do.
engine: ## make sure a Docker engine answers: start one as CI does (root), else say what to do
	@bash scripts/ensure-docker.sh

images: engine ## make a sandbox image available (pull, else build the local Debian base)
	@if docker image inspect $(SANDBOX_IMAGE) >/dev/null 2>&1; then \
	  echo "images: $(SANDBOX_IMAGE) present"; \
	elif err=$$(docker pull -q $(SANDBOX_IMAGE) 2>&1 >/dev/null); then \
	  echo "images: pulled $(SANDBOX_IMAGE)"; \
	else \
	  echo "images: $(SANDBOX_IMAGE) cannot be pulled ($$err); using the local base $(BASE_IMAGE)"; \
	  images/base/build.sh $(BASE_IMAGE); \
	fi

test: engine setup images postgres chromium firefox compose ## the whole suite with coverage: unit, integration (the console in Chromium and Firefox, the compose deployment too), cluster; one report
	$(BIN)/coverage erase
	@# The unit tests need no engine and the cluster's bring their own PostgreSQL and
	@# private engines: sharing nothing, they run side by side (the cluster suite mostly
	@# waits on nodes and containers). Its output follows once both have ended.
	@log=$$(mktemp); \
	$(BIN)/coverage run -m pytest tests/cluster -q -m "cluster and not slow" >$$log 2>&1 & cluster=$$!; \
	$(BIN)/coverage run -m pytest tests/unit -q; unit=$$?; \
	wait $$cluster; status=$$?; echo "--- tests/cluster ---"; cat $$log; rm -f $$log; \
	test $$unit -eq 0 && test $$status -eq 0
	$(BIN)/coverage run -m pytest tests/integration -q -m "integration and not slow"
	$(BIN)/coverage combine -q
	$(BIN)/coverage report

postgres: ## make PostgreSQL's server programs available (apt-get as root) for test-cluster
	@bash scripts/install-postgres.sh

chromium: ## make Debian's chromium and chromium-driver available (apt-get as root) for the console's browser tests
	@bash scripts/install-chromium.sh

firefox: ## make Debian's firefox-esr available (apt-get as root) for the console's Firefox test
	@bash scripts/install-firefox.sh

compose: ## make docker-compose (or docker compose) available (apt-get as root) for the compose test
	@bash scripts/install-compose.sh

test-cluster: engine setup images postgres ## API nodes, workers and a throwaway PostgreSQL on private engines (root)
	$(BIN)/pytest tests/cluster -q -m "cluster and not slow"

soak: engine setup images ## 10-minute soak: mixed benign and hostile runs with random daemon kills (BATTERY_SOAK_SECONDS)
	$(BIN)/pytest tests/integration/chaos/test_soak.py -m slow -q

test-slow: engine setup images ## the slow tests: Docker restarts with runs in flight, and the soak
	$(BIN)/pytest tests/integration -m slow -q

test-quick: setup ## unit tests only (no Docker)
	$(BIN)/pytest tests/unit -q

lint: setup ## ruff (lint and format check) and mypy
	$(BIN)/ruff check src tests bench scripts samples examples
	$(BIN)/ruff format --check src tests bench scripts samples examples
	$(BIN)/mypy

typecheck: setup ## mypy, strict, on src/
	$(BIN)/mypy

format: setup ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format src tests bench scripts samples examples
	$(BIN)/ruff check --fix src tests bench scripts samples examples

run-sample: engine setup images ## sample analysis: a CSV in, pandas + matplotlib, a table and a chart out
	$(BIN)/ai-data-agent run samples/analysis.py -r samples/requirements.txt \
	  --file samples/data/sales.csv:data/sales.csv --output-dir sample-output
	@echo "run-sample: the summary table and the chart are in $(CURDIR)/sample-output"

example-mcp: engine setup images ## a scripted agent drives the MCP server over stdio: session, CSV, explore, plot
	$(BIN)/python examples/mcp_agent.py

bench: engine setup images ## benchmark against the raw Docker floor (table; bench/results.json)
	$(BIN)/python -m bench.run

doctor: engine setup images ## check this machine end to end
	$(BIN)/ai-data-agent doctor

sweep: engine setup ## remove sandbox containers left by dead controllers
	$(BIN)/ai-data-agent sweep

controller-image: engine setup images ## build ai-data-agent/controller:latest offline (host wheelhouse, no pulls)
	images/controller/build.sh

compose-up: controller-image compose ## start the controller with compose (needs DOCKER_GID, AI_DATA_AGENT_API_TOKENS)
	$(COMPOSE) up -d

compose-down: engine compose ## stop the compose controller (SIGTERM, then its grace period)
	$(COMPOSE) down

clean: ## remove the venv, caches and build leftovers (images stay)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache src/*.egg-info build sample-output \
	  images/controller/wheelhouse .coverage .coverage.* example-output
