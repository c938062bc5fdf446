# Relais: `make up` brings the native stack up, `make test` runs every test. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha1sum | cut -c1-12)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_STAMP := /tmp/.relais-apt-updated

.PHONY: up down status logs admin dlq test lint audit lock bench deps system-deps clean

# Every dependency at the exact version and hash of requirements.lock, then the project itself.
$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $@

deps: $(STAMP)

# Debian packages the native stack, the tests and the benchmark need: nginx; promtool and amtool
# (prometheus, prometheus-alertmanager) for the rule tests; the NGINX, PostgreSQL and Redis
# exporters Prometheus scrapes; wrk for `make bench`.
system-deps:
	@missing=""; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v amtool >/dev/null || missing="$$missing prometheus-alertmanager"; \
	command -v prometheus-nginx-exporter >/dev/null || missing="$$missing prometheus-nginx-exporter"; \
	command -v prometheus-postgres-exporter >/dev/null || missing="$$missing prometheus-postgres-exporter"; \
	command -v prometheus-redis-exporter >/dev/null || missing="$$missing prometheus-redis-exporter"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  [ -f $(APT_STAMP) ] || { $(SUDO) apt-get update -qq && touch $(APT_STAMP); }; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

up: deps system-deps
	$(PY) -m devstack up

down: deps
	$(PY) -m devstack down

status: deps
	$(PY) -m devstack status

logs: deps
	$(PY) -m devstack logs $(if $(FOLLOW),--follow)

# An existing customer account is promoted only with PROMOTE=1 (registration is open).
admin: deps
	@test -n "$(EMAIL)" -a -n "$(PASSWORD)" || { echo "usage: make admin EMAIL=... PASSWORD=... [PROMOTE=1]"; exit 2; }
	@ADMIN_PASSWORD='$(PASSWORD)' $(PY) -m devstack admin --email '$(EMAIL)' $(if $(PROMOTE),--promote)

# Dead-lettered messages: `make dlq` lists them, `make dlq REQUEUE=1 [ID=<message id>]` requeues.
dlq: deps
	$(PY) -m scripts.dlq $(if $(REQUEUE),requeue,list) $(if $(ID),--id '$(ID)')

# requirements.lock again from pyproject.toml: the newest versions its ranges allow, hashed,
# for every platform. Commit it; `make up` and `make test` install from it.
lock: deps
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--generate-hashes --no-header --quiet -o requirements.lock

# Known vulnerabilities in what requirements.lock installs (pip-audit, PyPI's advisories).
audit: deps
	$(PY) -m scripts.audit requirements.lock

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test: deps system-deps lint audit
	$(VENV)/bin/pytest

bench: deps system-deps
	$(PY) -m scripts.bench

clean: down
	rm -rf var
