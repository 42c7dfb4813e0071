# One command each, from a fresh clone (see README).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo run tutorial test test-quick lint typecheck bench screenshots install install-dev broker migrate clean cluster cluster-stop pg-ha pg-ha-stop messages

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

# The translations (locale/<lang>/LC_MESSAGES/django.po) compiled to the .mo files Django reads,
# with Babel (a pinned requirement): no gettext needed on the machine.
messages: $(VENV)/.installed
	$(VENV)/bin/pybabel -q compile -d locale -D django

install: $(VENV)/.installed .secret_key staticfiles messages
install-dev: $(VENV)/.installed-dev install

broker: install
	scripts/ensure_rabbitmq.sh

migrate: install
	$(PY) manage.py migrate --noinput

# The demo's world: simulated actors and the simulated payment provider. The product's defaults are
# production's (neither); these targets ask for it, unless the variables are set already.
demo run tutorial bench: export SIM_ACTORS ?= 1
demo run tutorial bench: export PAYMENT_PROVIDER ?= simulated

## make demo: the whole system, the seed scenario's orders, live progress, a summary; exits 0 when all are final
demo: broker
	$(PY) manage.py demo

## make run: the same system in the foreground until Ctrl-C
run: broker migrate
	$(PY) manage.py setup_broker
	$(PY) manage.py load_demo_data
	rm -rf .run/prometheus  # metric files of processes from an earlier run
	$(VENV)/bin/honcho start

## make tutorial: `make run` plus the course's own API (its e-shop on 127.0.0.1:5001, its customer
## service on 127.0.0.1:5002) for the course's test_integration.py; docs/tutorial.md. The demo's world
## on (above); SIM_TIME_SCALE 0.5 unless set (an order delivered in about 5 s, well inside the client's waits).
TUTORIAL_TIME_SCALE := 0.5
tutorial: broker migrate
	$(PY) manage.py setup_broker
	$(PY) manage.py load_demo_data
	rm -rf .run/prometheus  # metric files of processes from an earlier run
	mkdir -p .run && cat Procfile Procfile.tutorial > .run/Procfile.tutorial
	SIM_TIME_SCALE=$${SIM_TIME_SCALE:-$(TUTORIAL_TIME_SCALE)} \
	  $(VENV)/bin/honcho -f .run/Procfile.tutorial -d . start

## make cluster: a three-node RabbitMQ cluster of the checkout's own (ports 5681-5683, data in
## .run/rabbitmq-cluster/), beside any broker already running; prints the RABBITMQ_URL to use
cluster:
	@scripts/rabbitmq_cluster.sh start >/dev/null
	@scripts/rabbitmq_cluster.sh status
	@echo "export RABBITMQ_URL=$$(scripts/rabbitmq_cluster.sh url)"
	@echo "then: make run (or make demo) with it; stop the cluster with: make cluster-stop"

cluster-stop:
	scripts/rabbitmq_cluster.sh stop

## make pg-ha: a PostgreSQL primary with a synchronous standby of the checkout's own (ports
## 55461-55462, data in .run/pg-ha/), beside any server already running; prints the DATABASE_URL
pg-ha:
	@scripts/pg_ha.sh start >/dev/null
	@scripts/pg_ha.sh status
	@echo "export DATABASE_URL='$$(scripts/pg_ha.sh url)'"
	@echo "then: make run with it; promote the standby: scripts/pg_ha.sh promote; stop: make pg-ha-stop"

pg-ha-stop:
	scripts/pg_ha.sh stop

## make test: RabbitMQ, PostgreSQL and a Redis of its own made reachable, then the whole pytest suite against
## them, in TEST_WORKERS processes (pytest-xdist: a test database and a RabbitMQ vhost each; the fault and
## tutorial tests one after another on one of them). PYTEST_ARGS is added (say -n 0, or a test's path).
## pytest is exec'd: a SIGTERM to make reaches it, and it stops every process the tests started.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup
test: install-dev
	scripts/ensure_rabbitmq.sh
	scripts/ensure_chromium.sh
	DATABASE_URL=$$(scripts/ensure_postgres.sh) && export DATABASE_URL && \
	  RABBITMQ_URL=$$(scripts/test_vhost.sh) && export RABBITMQ_URL && \
	  REDIS_URL=$$(scripts/ensure_redis.sh) && export REDIS_URL && \
	  exec $(PYTEST) $(PYTEST_ARGS)

## make test-quick: the loop between commits: the suite less the slow tests (fault, browser, deploy,
## tutorial: the marker "slow", given by folder in tests/conftest.py)
test-quick: install-dev
	scripts/ensure_rabbitmq.sh
	DATABASE_URL=$$(scripts/ensure_postgres.sh) && export DATABASE_URL && \
	  RABBITMQ_URL=$$(scripts/test_vhost.sh) && export RABBITMQ_URL && \
	  REDIS_URL=$$(scripts/ensure_redis.sh) && export REDIS_URL && \
	  exec $(PYTEST) -m "not slow" $(PYTEST_ARGS)

## make screenshots: docs/img/stock.png and docs/img/dashboard.png, from the browser tests (Chromium)
screenshots: install-dev
	scripts/ensure_rabbitmq.sh
	scripts/ensure_chromium.sh
	DATABASE_URL=$$(scripts/ensure_postgres.sh) && export DATABASE_URL && \
	  RABBITMQ_URL=$$(scripts/test_vhost.sh) && export RABBITMQ_URL && \
	  $(PY) scripts/screenshots.py

## make lint: ruff, then mypy (the rules of both are in pyproject.toml)
lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

## make typecheck: mypy alone (its files and settings are in pyproject.toml)
typecheck: install-dev
	$(VENV)/bin/mypy

## make bench: the benchmarks in bench/, figures printed and written to bench/results/
bench: install-dev
	scripts/ensure_rabbitmq.sh
	DATABASE_URL=$$(scripts/ensure_postgres.sh) && export DATABASE_URL && \
	  RABBITMQ_URL=$$(TEST_VHOST=logistics_bench scripts/test_vhost.sh) && export RABBITMQ_URL && \
	  exec $(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf .run .pytest_cache .ruff_cache .mypy_cache
