# AVATAR OnE: `make demo` runs the platform's main job, `make test` runs the tests.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install up down status demo test test-fast schemas bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

up: $(STAMP)             ## start local servers, the S3 server and the six services; wait until all are ready
	@$(PY) -m services.kit.stack up $(foreach service,$(SPLIT),--split $(service)) $(if $(NICE),--background-nice $(NICE))

down:                    ## stop what `make up` started
	@$(PY) -m services.kit.stack down

status:
	@$(PY) -m services.kit.stack status

demo: up                 ## the main job: drive one training request end to end and print its timeline
	@$(PY) -m services.kit.demo

schemas: $(STAMP)        ## regenerate contracts/schemas (JSON Schemas + AsyncAPI)
	@$(PY) -m contracts.export

test: $(STAMP)           ## the whole suite against real PostgreSQL, RabbitMQ, Redis and an S3 server
	@$(PY) -m contracts.export --check
	@$(PY) -m pytest -q -p no:cacheprovider

test-fast: $(STAMP)
	@$(PY) -m pytest -q -p no:cacheprovider tests/unit

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean: down
	rm -rf .run
