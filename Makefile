# Relais: `make up` brings the native stack up, `make test` runs every test. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha1sum | cut -c1-12)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_STAMP := /tmp/.relais-apt-updated
# PyTorch's CPU build (torch==2.13.0+cpu) is a wheel in this folder, not on PyPI's index.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels)

.PHONY: bench-backup archiving backup backups restore-check restore-test failover-drill up down restart status logs alerts admin seed mail sandbox-settle sandbox-outage gameday ai-worker dlq test test-images test-ansible test-all compose-init compose-nginx lint audit lock bench profile bench-ai bench-gateway loadtest capacity deps system-deps clean

# Every dependency at the exact version and hash of requirements.lock, then the project itself.
$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes $(FIND_LINKS) -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $@

deps: $(STAMP)

# Debian packages the native stack, the tests and the benchmark need: nginx; promtool and amtool
# (prometheus, prometheus-alertmanager) for the rule tests; the NGINX, PostgreSQL and Redis
# exporters Prometheus scrapes, and the process exporter (CPU of every process of the stack, for
# `make capacity`); wrk for `make bench`; espeak-ng, whose speech the AI tests
# transcribe; pgBackRest, which keeps the PostgreSQL backups.
system-deps:
	@missing=""; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v amtool >/dev/null || missing="$$missing prometheus-alertmanager"; \
	command -v prometheus-nginx-exporter >/dev/null || missing="$$missing prometheus-nginx-exporter"; \
	command -v prometheus-postgres-exporter >/dev/null || missing="$$missing prometheus-postgres-exporter"; \
	command -v prometheus-redis-exporter >/dev/null || missing="$$missing prometheus-redis-exporter"; \
	command -v prometheus-process-exporter >/dev/null || missing="$$missing prometheus-process-exporter"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	command -v pgbackrest >/dev/null || missing="$$missing pgbackrest"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  [ -f $(APT_STAMP) ] || { $(SUDO) apt-get update -qq && touch $(APT_STAMP); }; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

up: deps system-deps
	$(PY) -m devstack up

down: deps
	$(PY) -m devstack down

# A running stack keeps the configuration it was started with: this applies a new one.
restart: deps system-deps
	$(PY) -m devstack restart

status: deps
	$(PY) -m devstack status

# The last LINES lines (default 50) of every log, or of SERVICE's (core, core-1, nginx, …).
logs: deps
	@$(PY) -m devstack logs $(if $(FOLLOW),--follow) $(if $(LINES),--lines '$(LINES)') $(if $(SERVICE),--service '$(SERVICE)')

# The admin's password comes from ADMIN_PASSWORD in the environment, else a prompt: make would
# mangle a `$` or a quote given on its command line. An existing customer account is promoted
# only with PROMOTE=1 (registration is open), an existing account's password is changed only
# with RESET_PASSWORD=1.
admin: deps
	@test -n "$(EMAIL)" || { echo "usage: [ADMIN_PASSWORD=...] make admin EMAIL=... [PROMOTE=1] [RESET_PASSWORD=1]"; exit 2; }
	@$(if $(filter command line,$(origin PASSWORD) $(origin ADMIN_PASSWORD)),echo "give the password in the environment (ADMIN_PASSWORD='...' make admin EMAIL=...) or at the prompt: make mangles \$$ and quotes on its command line" >&2; exit 2)
	@$(PY) -m devstack admin --email '$(EMAIL)' $(if $(PROMOTE),--promote) $(if $(RESET_PASSWORD),--reset-password)

# The development outbox (core's `outbox` e-mail adapter): the last messages, newest first, with
# their verification and password reset links. `TO=` one address's, `LAST=` how many (10).
mail: deps
	@$(PY) -m devstack mail $(if $(TO),--to '$(TO)') $(if $(LAST),--last '$(LAST)')

# One more AI worker in the foreground (Ctrl-C stops it), sharing the running stack's queues:
# `NUMBER=` picks its ports (2: 8302 and metrics 9302, the default).
ai-worker: deps
	$(PY) -m devstack ai-worker $(if $(NUMBER),--number '$(NUMBER)')

# Dead-lettered messages: `make dlq` lists them (`ID=` one of them), with their age and reason;
# `make dlq REQUEUE=1 [ID=<message id>]` requeues; `make dlq DISCARD=1 ID=<message id>` drops
# one (a poison message that can never succeed).
dlq: deps
	$(PY) -m scripts.dlq $(if $(REQUEUE),requeue,$(if $(DISCARD),discard,list)) $(if $(ID),--id '$(ID)')

# What fires now, and the last notifications the local receiver took (who, what, when).
alerts: deps
	@$(PY) -m devstack alerts

# A demo catalog and an admin (ADMIN_EMAIL, ADMIN_PASSWORD or a prompt), created once: running
# it again changes nothing.
seed: deps
	@$(PY) -m devstack seed $(if $(ADMIN_EMAIL),--email '$(ADMIN_EMAIL)')

# Settle a sandbox payment that waits (tok_timeout, 3-D Secure) by the provider's own signed
# webhook: `make sandbox-settle ID=<payment id> OUTCOME=succeeded|failed`.
sandbox-settle: deps
	@test -n "$(ID)" -a -n "$(OUTCOME)" || { echo "usage: make sandbox-settle ID=<payment id> OUTCOME=succeeded|failed"; exit 2; }
	@$(PY) -m devstack sandbox-settle --payment '$(ID)' --outcome '$(OUTCOME)'

# A provider outage: every sandbox charge fails (`processing_error`, the platform's failure) for
# SECONDS (default 60; 0 ends it).
sandbox-outage: deps
	@$(PY) -m devstack sandbox-outage $(if $(SECONDS),--seconds '$(SECONDS)')

# PostgreSQL's WAL archived continuously into pgBackRest's repository (BACKUP_REPO), the stanza
# made: `make up` and `make test` do it first (the first time, PostgreSQL restarts once).
archiving: deps system-deps
	@$(PY) -m devstack archiving

# A base backup of the stack's PostgreSQL (`TYPE=full`, the default, `diff` or `incr`) into
# pgBackRest's repository, and a logical dump of each schema beside it; retention
# (BACKUP_RETENTION full backups) applied.
backup: deps system-deps
	@$(PY) -m devstack backup $(if $(TYPE),--type '$(TYPE)')

# The backups, what they restore to, their dumps; `VERIFY=1` checks every checksum.
backups: deps
	@$(PY) -m devstack backups $(if $(VERIFY),--verify)

# The newest backup restored into a scratch cluster (`PORT=`, 5499), WAL replayed to `TARGET=`
# (a time with its zone; default: all of it), the stack's data checked in it, then removed.
restore-check: deps system-deps
	@$(PY) -m devstack restore-check $(if $(PORT),--port '$(PORT)') $(if $(TARGET),--target '$(TARGET)')

# The proof that backups restore (CI runs it): a stack of its own writes orders, is backed up,
# writes more; restored to a noted time, it holds exactly what it held then, and the ledger's
# invariants hold. Prints the backup's and the restore's times.
restore-test: deps system-deps archiving
	$(VENV)/bin/pytest -p no:randomly -s -m restore tests/test_restore.py

# A streaming replica promoted under a trickle of checkouts, on clusters and a stack of the
# drill's own: the seconds without writes and the confirmed checkouts lost, measured
# (var/reports/failover-drill.json).
failover-drill: deps system-deps
	$(PY) -m scripts.failover_drill

# requirements.lock again from pyproject.toml: the newest versions its ranges allow, hashed,
# for every platform. Commit it; `make up` and `make test` install from it. Then each service's
# own lock (requirements/<service>.lock: the chassis and that service's group alone, at the same
# versions), what its image installs; and what the load tests' image adds to Locust's.
SERVICE_LOCKS := core payments ai gateway
lock: deps
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--generate-hashes --no-header --quiet $(FIND_LINKS) -o requirements.lock
	@mkdir -p requirements
	@for service in $(SERVICE_LOCKS); do \
	  extra=$$([ $$service = gateway ] || echo "--extra $$service"); \
	  $(VENV)/bin/uv pip compile pyproject.toml $$extra --universal --python-version 3.11 \
	    --generate-hashes --no-header --quiet $(FIND_LINKS) -c requirements.lock \
	    -o requirements/$$service.lock || exit 1; \
	  echo "requirements/$$service.lock"; \
	done
	$(VENV)/bin/uv pip compile loadtests/requirements.in --universal --python-version 3.11 \
		--generate-hashes --no-header --quiet -c requirements.lock -o requirements/loadtests.lock
	@echo requirements/loadtests.lock
	$(VENV)/bin/uv pip compile requirements/supervisor.in --universal --python-version 3.11 \
		--generate-hashes --no-header --quiet -c requirements.lock -o requirements/supervisor.lock
	@echo requirements/supervisor.lock

# Known vulnerabilities in what requirements.lock installs (pip-audit, PyPI's advisories).
audit: deps
	$(PY) -m scripts.audit requirements.lock

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test: deps system-deps archiving lint audit
	$(VENV)/bin/pytest

# Each service's image built with podman (on a base made from Debian's archive: no registry is
# reachable here), migrated and started against this machine's PostgreSQL, Redis and RabbitMQ,
# healthy by its own HEALTHCHECK, and a checkout across the containers. Installs podman, runc
# and debootstrap if they are missing.
test-images: deps
	$(VENV)/bin/pytest -p no:randomly -m images tests/test_images.py

# infra/ansible's site.yml run for real against the local inventory with names, ports and
# folders of its own: twice (the second changes nothing), a checkout through the NGINX it
# provisioned, and a rolling deploy of core under a trickle of requests that fails none.
test-ansible: deps system-deps
	$(VENV)/bin/pytest -p no:randomly -m ansible tests/test_ansible_run.py

# The compose stack's own files under var/compose/ (RELAIS_COMPOSE_DIR elsewhere): its secrets,
# made once and kept, and the API document. Then `docker compose up -d`.
compose-init: deps
	$(PY) -m devstack.compose init $(if $(RELAIS_COMPOSE_DIR),--dir '$(RELAIS_COMPOSE_DIR)')

# infra/compose/nginx.conf again from NGINX' template (a test fails while it is stale).
compose-nginx: deps
	$(PY) -m devstack.compose nginx

# The game day: a stack of its own, every fault of scripts/gameday/faults.py one at a time with
# the alert it must raise (rules on a clock sixty times faster), the stack restored after each;
# the report under var/reports/ (and docs/gamedays/latest.md, committed). FAULTS=a,b picks some.
gameday: deps system-deps
	$(PY) -m scripts.gameday $(if $(FAULTS),--faults '$(FAULTS)',--publish docs/gamedays/latest.md)

# Everything CI runs: the tests, then the slow end-to-end suites and the full game day.
test-all: test restore-test failover-drill test-images test-ansible gameday

bench: deps system-deps
	$(PY) -m scripts.bench
	$(PY) -m scripts.bench_ai
	$(PY) -m services.ai.catalog_bench
	$(PY) -m scripts.bench_gateway
	$(PY) -m scripts.bench_backup

# What backups and restores cost for the benchmark's data set (part of `make bench`).
bench-backup: deps system-deps
	$(PY) -m scripts.bench_backup

# Flame graphs of the cached read and the paid checkout under load (py-spy), with the commands
# and CPU per operation, written to docs/perf/ (PROFILE_OUT elsewhere).
profile: deps system-deps
	$(PY) -m scripts.profile

# Load with Locust against the stack: a short headless step load, distributed (a master and
# LOADTEST_WORKERS=2 workers), SLO gates from loadtests/gates.yml, reports under var/reports;
# UI=1 opens Locust's web UI instead. The local stack is (re)started with LOADTEST_LIMITS=1 first
# unless it runs so (all load comes from one address); LOADTEST_HOST=... loads another stack.
loadtest: deps system-deps
	@[ -n "$(LOADTEST_HOST)" ] || $(PY) -m scripts.capacity --prepare
	bash loadtests/run.sh

# Step the load until an SLO gate breaks (restarting the stack with LOADTEST_LIMITS=1 if need
# be) and write the capacity report, plots and all, to docs/capacity/ (CAPACITY_OUT elsewhere):
# the highest throughput within the SLOs per journey, and the first resource to saturate.
capacity: deps system-deps
	$(PY) -m scripts.capacity

# The realtime gateway's part alone: 5,000 idle sockets through NGINX (memory per socket against
# bare aiohttp), push latency at 200 events/s against the broker's own.
bench-gateway: deps system-deps
	$(PY) -m scripts.bench_gateway

# The AI part of the benchmark alone: text analyses over RPC through NGINX against in-process;
# embeddings micro-batched against one at a time, search at 10k products, training on 100k
# orders (in the worker's process).
bench-ai: deps system-deps
	$(PY) -m scripts.bench_ai
	$(PY) -m services.ai.catalog_bench

clean: down
	$(PY) -m devstack remove-replica
	rm -rf var
