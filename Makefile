# AVATAR OnE: `make demo` runs the platform's main job, `make test` runs the tests.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install up down status demo test test-fast schemas bench clean console console-test

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

# the web console (console/): built into console/dist, which the gateway serves at /. `make up` builds it when
# npm is here and the sources changed (a no-op otherwise; CONSOLE=0 skips it); without npm the API still works.
CONSOLE_SRC := $(shell find console/src -type f 2>/dev/null) console/index.html console/vite.config.ts \
               console/tsconfig.json console/package.json console/package-lock.json
CONSOLE ?= 1

console/node_modules/.package-lock.json: console/package-lock.json
	@cd console && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund

console/dist/index.html: console/node_modules/.package-lock.json $(CONSOLE_SRC)
	@cd console && npm run build --silent

console: console/dist/index.html  ## build the web console (npm ci + vite build)

console-test: console/node_modules/.package-lock.json  ## the console's unit tests (Vitest); the browser tests run in `make test`
	@cd console && npm test

up: $(STAMP)             ## start local servers, the S3 server, the six services and the gateway (and build the console when npm is here)
	@if [ "$(CONSOLE)" = 1 ] && command -v npm >/dev/null; then \
	  $(MAKE) --no-print-directory console || echo "warning: the console did not build (see make console); the API works without it"; fi
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
