# One command each, from a fresh clone (see README).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo run test lint bench screenshots install install-dev broker migrate clean cluster cluster-stop

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

# The checkout's own: a secret key (config/settings.py reads it) and collectstatic's target folder.
.secret_key:
	PYTHON=$(PYTHON) scripts/ensure_secret_key.sh

staticfiles:
	mkdir -p $@

install: $(VENV)/.installed .secret_key staticfiles
install-dev: $(VENV)/.installed-dev install

broker: install
	scripts/ensure_rabbitmq.sh

migrate: install
	$(PY) manage.py migrate --noinput

## make demo: the whole system, the seed scenario's orders, live progress, a summary; exits 0 when all are final
demo: broker
	$(PY) manage.py demo

## make run: the same system in the foreground until Ctrl-C
run: broker migrate
	$(PY) manage.py setup_broker
	$(PY) manage.py load_demo_data
	rm -rf .run/prometheus  # metric files of processes from an earlier run
	$(VENV)/bin/honcho start

## make cluster: a three-node RabbitMQ cluster of the checkout's own (ports 5681-5683, data in
## .run/rabbitmq-cluster/), beside any broker already running; prints the RABBITMQ_URL to use
cluster:
	@scripts/rabbitmq_cluster.sh start >/dev/null
	@scripts/rabbitmq_cluster.sh status
	@echo "export RABBITMQ_URL=$$(scripts/rabbitmq_cluster.sh url)"
	@echo "then: make run (or make demo) with it; stop the cluster with: make cluster-stop"

cluster-stop:
	scripts/rabbitmq_cluster.sh stop

## make test: RabbitMQ and PostgreSQL made reachable, then the whole pytest suite against them
test: install-dev
	scripts/ensure_rabbitmq.sh
	scripts/ensure_chromium.sh
	DATABASE_URL=$$(scripts/ensure_postgres.sh) && export DATABASE_URL && \
	  RABBITMQ_URL=$$(scripts/test_vhost.sh) && export RABBITMQ_URL && \
	  $(PY) -m pytest $(PYTEST_ARGS)

## make screenshots: docs/img/stock.png and docs/img/dashboard.png, from the browser tests (Chromium)
screenshots: install-dev
	scripts/ensure_rabbitmq.sh
	scripts/ensure_chromium.sh
	DATABASE_URL=$$(scripts/ensure_postgres.sh) && export DATABASE_URL && \
	  RABBITMQ_URL=$$(scripts/test_vhost.sh) && export RABBITMQ_URL && \
	  $(PY) scripts/screenshots.py

## make lint: ruff (its rules are in pyproject.toml)
lint: install-dev
	$(VENV)/bin/ruff check .

## make bench: the benchmarks in bench/, figures printed and written to bench/results/
bench: install-dev
	scripts/ensure_rabbitmq.sh
	DATABASE_URL=$$(scripts/ensure_postgres.sh) && export DATABASE_URL && \
	  RABBITMQ_URL=$$(TEST_VHOST=logistics_bench scripts/test_vhost.sh) && export RABBITMQ_URL && \
	  $(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf .run .pytest_cache .ruff_cache
